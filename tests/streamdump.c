/*
 * streamdump - a test-only window on core/stream: the file synthesized over
 * a chain, for the integration tests to check with qemu-img, vhdiinfo and
 * tests/vhdxdump against content built independently.
 *
 *   streamdump [OPTIONS] info SOURCE          size=, allocated=, uuid= lines
 *   streamdump [OPTIONS] read SOURCE [OFFSET LENGTH]
 *                                             the bytes, to standard output
 *   streamdump [OPTIONS] write SOURCE OUT     the file into OUT (new), its data extents
 *                                             only (holes left unwritten), then sized
 *   streamdump [OPTIONS] compact SOURCE OUT   stream_write_compact into OUT (new)
 *   streamdump [OPTIONS] extents SOURCE       one run a line: data|hole START END
 *   streamdump [OPTIONS] ranges SOURCE COUNT SEED
 *                                             COUNT reads at odd offsets and lengths (and
 *                                             across every part's edges) compared with the
 *                                             whole file read at once; every hole reads as
 *                                             zeros; the extents add up to the allocated bytes
 *
 * SOURCE is the top of a chain, opened with chain_open; with --fake it is
 * ignored ("-") and the chain is made up: SPEC is SIZE:START+LEN,... (bytes,
 * ranges sorted and apart), a disk whose allocated ranges read as
 * fake_byte() below and the rest as zeros. The chain functions are wrapped
 * (-Wl,--wrap) to serve it, as no file format can make a 64 TiB chain yet.
 *
 * Options: --format vhdx|vhd|raw (vhdx), --block N, --logical N, --physical
 * N, --seed TEXT, --top-id HEX32, --piece N (bytes a read, 1 MiB).
 *
 * A failure prints "streamdump: MESSAGE" to standard error and exits 1.
 */
#include "chain.h"
#include "error.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the made-up chain ---- */

#define FAKE_MAX_RANGES 64

static struct fake {
	uint64_t size;
	unsigned count;
	uint64_t start[FAKE_MAX_RANGES], end[FAKE_MAX_RANGES];
} fake;
/* The pointer handed to the stream for the made-up chain. */
static struct chain *const fake_chain = (struct chain *)&fake;

/* Content of byte @x of an allocated range (tests/integration mirrors it). */
static uint8_t fake_byte(uint64_t x)
{
	return (uint8_t)((x >> 9) * 131 + (x & 511) * 7 + 1);
}

uint64_t __real_chain_size(const struct chain *c);
int __real_chain_read(struct chain *c, void *buf, size_t len, uint64_t offset, struct error *err);
void __real_chain_extent(const struct chain *c, uint64_t offset, bool *allocated, uint64_t *end);
uint64_t __wrap_chain_size(const struct chain *c);
int __wrap_chain_read(struct chain *c, void *buf, size_t len, uint64_t offset, struct error *err);
void __wrap_chain_extent(const struct chain *c, uint64_t offset, bool *allocated, uint64_t *end);

uint64_t __wrap_chain_size(const struct chain *c)
{
	return c == fake_chain ? fake.size : __real_chain_size(c);
}

int __wrap_chain_read(struct chain *c, void *buf, size_t len, uint64_t offset, struct error *err)
{
	uint8_t *out = buf;

	if (c != fake_chain)
		return __real_chain_read(c, buf, len, offset, err);
	if (offset > fake.size || len > fake.size - offset)
		return error_set(err, EINVAL, "read past the end of the made-up disk");
	memset(buf, 0, len);
	for (unsigned i = 0; i < fake.count; i++)
		for (uint64_t x = fake.start[i] > offset ? fake.start[i] : offset;
		     x < fake.end[i] && x < offset + len; x++)
			out[x - offset] = fake_byte(x);
	return 0;
}

void __wrap_chain_extent(const struct chain *c, uint64_t offset, bool *allocated, uint64_t *end)
{
	if (c != fake_chain) {
		__real_chain_extent(c, offset, allocated, end);
		return;
	}
	*allocated = false;
	*end = fake.size;
	if (offset >= fake.size)
		return;
	for (unsigned i = 0; i < fake.count; i++) {
		if (offset < fake.start[i]) {
			*end = fake.start[i];
			return;
		}
		if (offset < fake.end[i]) {
			*allocated = true;
			*end = fake.end[i];
			return;
		}
	}
}

/* ---- helpers ---- */

static void die(const char *what, const char *subject)
{
	fprintf(stderr, "streamdump: %s '%s'\n", what, subject);
	exit(1);
}

static int fail(const struct error *err)
{
	fprintf(stderr, "streamdump: %s\n", error_message(err));
	return 1;
}

static uint64_t number(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (*s == '\0' || *end != '\0' || errno)
		die("not a number:", s);
	return v;
}

static void parse_fake(char *spec)
{
	char *colon = strchr(spec, ':'), *item, *save = NULL;

	if (colon)
		*colon = '\0';
	fake.size = number(spec);
	if (!colon)
		return;
	for (item = strtok_r(colon + 1, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *plus = strchr(item, '+');

		if (!plus || fake.count == FAKE_MAX_RANGES)
			die("bad range", item);
		*plus = '\0';
		fake.start[fake.count] = number(item);
		fake.end[fake.count] = fake.start[fake.count] + number(plus + 1);
		if (fake.end[fake.count] > fake.size ||
		    (fake.count && fake.start[fake.count] <= fake.end[fake.count - 1]))
			die("range out of order or outside the disk:", item);
		fake.count++;
	}
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

static void parse_hex16(const char *text, uint8_t out[16])
{
	if (strlen(text) != 32)
		die("not 32 hex digits:", text);
	for (int i = 0; i < 16; i++) {
		int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			die("not 32 hex digits:", text);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
}

/* Read [offset, offset+len) of the stream in pieces of @piece bytes into @buf. */
static int read_range(struct stream *s, uint8_t *buf, uint64_t offset, uint64_t len, size_t piece)
{
	struct error err;

	while (len) {
		size_t n = len < piece ? (size_t)len : piece;

		error_clear(&err);
		if (stream_read(s, buf, n, offset, &err) < 0)
			return fail(&err);
		buf += n;
		offset += n;
		len -= n;
	}
	return 0;
}

/* ---- commands ---- */

static int cmd_info(struct stream *s)
{
	const uint8_t *u = stream_uuid(s);

	printf("size=%" PRIu64 "\n", stream_size(s));
	printf("allocated=%" PRIu64 "\n", stream_allocated_bytes(s));
	printf("uuid=");
	for (int i = 0; i < 16; i++)
		printf("%02x", u[i]);
	printf("\n");
	return 0;
}

static int cmd_read(struct stream *s, uint64_t offset, uint64_t length, size_t piece)
{
	uint8_t *buf = malloc(piece);
	int rc = 0;

	if (!buf)
		return 1;
	while (length && rc == 0) {
		size_t n = length < piece ? (size_t)length : piece;

		rc = read_range(s, buf, offset, n, piece);
		if (rc == 0 && fwrite(buf, 1, n, stdout) != n)
			rc = 1;
		offset += n;
		length -= n;
	}
	free(buf);
	return rc;
}

static int cmd_write(struct stream *s, const char *out, size_t piece)
{
	int fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0644);
	uint8_t *buf = malloc(piece);
	uint64_t pos = 0;
	int rc = 0;

	if (fd < 0 || !buf)
		die("cannot create", out);
	while (pos < stream_size(s) && rc == 0) {
		bool data;
		uint64_t end;

		stream_extent(s, pos, &data, &end);
		if (end <= pos)
			die("an extent does not advance in", "write");
		for (; data && pos < end && rc == 0;) {
			size_t n = end - pos < piece ? (size_t)(end - pos) : piece;

			rc = read_range(s, buf, pos, n, piece);
			if (rc == 0 && pwrite(fd, buf, n, (off_t)pos) != (ssize_t)n)
				die("cannot write", out);
			pos += n;
		}
		pos = end;
	}
	if (rc == 0 && (ftruncate(fd, (off_t)stream_size(s)) < 0 || close(fd) < 0))
		die("cannot write", out);
	free(buf);
	return rc;
}

static int cmd_compact(struct stream *s, const char *out)
{
	int fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0644);
	struct error err;

	if (fd < 0)
		die("cannot create", out);
	error_clear(&err);
	if (stream_write_compact(s, fd, NULL, NULL, &err) < 0)
		return fail(&err);
	if (close(fd) < 0)
		die("cannot write", out);
	printf("size=%" PRIu64 "\n", stream_size(s));
	return 0;
}

static int cmd_extents(struct stream *s)
{
	for (uint64_t pos = 0; pos < stream_size(s);) {
		bool data;
		uint64_t end;

		stream_extent(s, pos, &data, &end);
		printf("%s %" PRIu64 " %" PRIu64 "\n", data ? "data" : "hole", pos, end);
		pos = end;
	}
	return 0;
}

static int check_range(struct stream *s, const uint8_t *whole, uint8_t *buf, uint64_t at,
		       uint64_t n)
{
	struct error err;

	if (at > stream_size(s) || n > stream_size(s) - at)
		return 0;
	error_clear(&err);
	if (stream_read(s, buf, n, at, &err) < 0)
		return fail(&err);
	if (memcmp(buf, whole + at, n) != 0) {
		fprintf(stderr,
			"streamdump: %" PRIu64 " bytes at %" PRIu64 " differ from the whole\n", n,
			at);
		return 1;
	}
	return 0;
}

/* The extents tile the file, holes read as zeros (in @whole), the data adds up
 * to the allocated bytes; their starts go to @edges (up to 64). */
static int check_extents(struct stream *s, const uint8_t *whole, uint64_t *edges,
			 unsigned *edge_count)
{
	uint64_t size = stream_size(s), data_bytes = 0;

	for (uint64_t pos = 0; pos < size;) {
		bool data;
		uint64_t end;

		stream_extent(s, pos, &data, &end);
		if (end <= pos || end > size) {
			fprintf(stderr, "streamdump: extent at %" PRIu64 " ends at %" PRIu64 "\n",
				pos, end);
			return 1;
		}
		if (*edge_count < 64)
			edges[(*edge_count)++] = pos;
		if (data)
			data_bytes += end - pos;
		for (uint64_t i = pos; !data && i < end; i++)
			if (whole[i]) {
				fprintf(stderr,
					"streamdump: byte %" PRIu64 " of a hole is not zero\n", i);
				return 1;
			}
		pos = end;
	}
	if (data_bytes != stream_allocated_bytes(s)) {
		fprintf(stderr,
			"streamdump: data extents hold %" PRIu64 " bytes, allocated says %" PRIu64
			"\n",
			data_bytes, stream_allocated_bytes(s));
		return 1;
	}
	return 0;
}

static int cmd_ranges(struct stream *s, unsigned count, unsigned seed)
{
	uint64_t size = stream_size(s), edges[64];
	uint8_t *whole = malloc(size ? size : 1), *buf = malloc(3 * 1024 * 1024);
	unsigned edge_count = 0, checked = 0;
	struct error err;
	int rc = 1;

	if (!whole || !buf)
		goto out;
	error_clear(&err);
	if (stream_read(s, whole, size, 0, &err) < 0) {
		rc = fail(&err);
		goto out;
	}
	rc = check_extents(s, whole, edges, &edge_count);
	/* Windows over every extent's start and the file's own edges. */
	for (unsigned e = 0; e < edge_count && rc == 0; e++)
		for (uint64_t back = 0; back < 3 && rc == 0; back++) {
			uint64_t at = edges[e] > back * 511 ? edges[e] - back * 511 : 0;

			rc = check_range(s, whole, buf, at, 1 + back * 4097);
			checked++;
		}
	srand(seed);
	for (unsigned i = 0; i < count && rc == 0; i++) {
		uint64_t at = ((uint64_t)rand() << 31 | (uint64_t)rand()) % size;
		uint64_t n = 1 + (uint64_t)rand() % (i % 4 == 0 ? 3 * 1024 * 1024 : 70000);

		if (n > size - at)
			n = size - at;
		rc = check_range(s, whole, buf, at, n);
		checked++;
	}
	if (rc == 0)
		rc = check_range(s, whole, buf, size, 0);
	if (rc == 0 && stream_read(s, buf, 1, size, &err) != -EINVAL) {
		fprintf(stderr, "streamdump: a read past the end was not refused\n");
		rc = 1;
	}
	if (rc == 0)
		printf("ok %u reads, %u extents, %" PRIu64 " data bytes\n", checked, edge_count,
		       stream_allocated_bytes(s));
out:
	free(whole);
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	struct stream_vhdx_options xo = {0};
	struct stream_vhd_options vo = {0};
	const char *format = "vhdx", *cmd, *source;
	uint8_t top_id[16];
	struct chain *chain = NULL;
	struct stream *s = NULL;
	size_t piece = 1024 * 1024;
	struct error err;
	int i = 1, rc;

	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		const char *opt = argv[i], *val = argv[i + 1];

		if (strcmp(opt, "--format") == 0)
			format = val;
		else if (strcmp(opt, "--block") == 0)
			xo.block_size = (uint32_t)number(val);
		else if (strcmp(opt, "--logical") == 0)
			xo.logical_sector_size = (uint32_t)number(val);
		else if (strcmp(opt, "--physical") == 0)
			xo.physical_sector_size = (uint32_t)number(val);
		else if (strcmp(opt, "--seed") == 0)
			xo.seed = vo.seed = val;
		else if (strcmp(opt, "--top-id") == 0) {
			parse_hex16(val, top_id);
			xo.top_id = top_id;
		} else if (strcmp(opt, "--piece") == 0)
			piece = (size_t)number(val);
		else if (strcmp(opt, "--fake") == 0) {
			char *spec = strdup(val);

			parse_fake(spec);
			free(spec);
			chain = fake_chain;
		} else
			die("unknown option", opt);
	}
	if (argc - i < 2 || piece == 0)
		die("usage:",
		    "streamdump [OPTIONS] info|read|write|compact|extents|ranges SOURCE ...");
	cmd = argv[i];
	source = argv[i + 1];
	error_clear(&err);
	if (!chain && chain_open(&chain, source, NULL, &err) < 0)
		return fail(&err);
	if (strcmp(format, "vhdx") == 0)
		rc = stream_new_vhdx(&s, chain, &xo, &err);
	else if (strcmp(format, "vhd") == 0 && chain != fake_chain)
		rc = stream_new_vhd(&s, chain, &vo, &err);
	else if (strcmp(format, "raw") == 0)
		rc = stream_new_raw(&s, chain, &err);
	else
		die("unknown format (or vhd over a made-up chain):", format);
	if (rc < 0) {
		rc = fail(&err);
		goto out;
	}
	if (strcmp(cmd, "info") == 0)
		rc = cmd_info(s);
	else if (strcmp(cmd, "read") == 0 && argc - i == 4)
		rc = cmd_read(s, number(argv[i + 2]), number(argv[i + 3]), piece);
	else if (strcmp(cmd, "read") == 0)
		rc = cmd_read(s, 0, stream_size(s), piece);
	else if (strcmp(cmd, "write") == 0 && argc - i == 3)
		rc = cmd_write(s, argv[i + 2], piece);
	else if (strcmp(cmd, "compact") == 0 && argc - i == 3)
		rc = cmd_compact(s, argv[i + 2]);
	else if (strcmp(cmd, "extents") == 0)
		rc = cmd_extents(s);
	else if (strcmp(cmd, "ranges") == 0 && argc - i == 4)
		rc = cmd_ranges(s, (unsigned)number(argv[i + 2]), (unsigned)number(argv[i + 3]));
	else
		die("bad command or operands:", cmd);
out:
	stream_free(s);
	if (chain != fake_chain)
		chain_close(chain);
	return rc;
}
