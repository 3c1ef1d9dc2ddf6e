#include "fuzzsupport.h"

#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Footer and header layout (the specification's, written here again rather
 * than taken from the core, so the fix-up does not share its bugs). */
#define FOOTER_SIZE	   512u
#define FOOTER_CHECKSUM	   64u
#define FOOTER_DATA_OFFSET 16u
#define HEADER_SIZE	   1024u
#define HEADER_CHECKSUM	   36u

static char scratch[FUZZ_PATH_MAX];
static int memfile = -1;

void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	abort();
}

static void remove_scratch(void)
{
	DIR *d = opendir(scratch);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[FUZZ_PATH_MAX];

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", scratch, e->d_name) < (int)sizeof(path))
			unlink(path);
	}
	closedir(d);
	rmdir(scratch);
}

static bool keep_files(void)
{
	const char *keep = getenv("IMPEX_FUZZ_KEEP");

	return keep && *keep && strcmp(keep, "0") != 0;
}

const char *fuzz_scratch_dir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[FUZZ_PATH_MAX];

	if (scratch[0])
		return scratch;
	if (!base || !*base)
		base = "/tmp";
	if (snprintf(tmpl, sizeof(tmpl), "%s/impex-fuzz-XXXXXX", base) >= (int)sizeof(tmpl) ||
	    !mkdtemp(tmpl) || !realpath(tmpl, scratch)) {
		perror("cannot make a scratch folder");
		abort();
	}
	if (keep_files())
		fprintf(stderr, "scratch folder (kept): %s\n", scratch);
	else
		atexit(remove_scratch);
	return scratch;
}

void fuzz_path(char *out, const char *dir, const char *name)
{
	if (snprintf(out, FUZZ_PATH_MAX, "%s/%s", dir, name) >= FUZZ_PATH_MAX) {
		fprintf(stderr, "path too long: '%s/%s'\n", dir, name);
		abort();
	}
}

static void write_all(int fd, const uint8_t *data, size_t len, const char *what)
{
	if (ftruncate(fd, 0) < 0) {
		perror(what);
		abort();
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(fd, data + done, len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			perror(what);
			abort();
		}
		done += (size_t)n;
	}
}

void fuzz_write_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		perror(path);
		abort();
	}
	write_all(fd, data, len, path);
	close(fd);
}

void fuzz_remove_file(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT) {
		perror(path);
		abort();
	}
}

void fuzz_write_memfile(const uint8_t *data, size_t len, const char **path)
{
	static char name[64];

	if (memfile < 0) {
		bool keep = keep_files();

		memfile = keep ? -1 : memfd_create("impex-fuzz", MFD_CLOEXEC);
		if (memfile < 0) {
			char file[FUZZ_PATH_MAX];

			fuzz_path(file, fuzz_scratch_dir(), "input.vhd");
			memfile = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (memfile < 0) {
				perror(file);
				abort();
			}
			if (!keep)
				unlink(file);
		}
		snprintf(name, sizeof(name), "/proc/self/fd/%d", memfile);
	}
	write_all(memfile, data, len, "memfd");
	*path = name;
}

int fuzz_allow_inside(void *ctx, const char *real_path, struct error *err)
{
	const char *dir = ctx;
	size_t n = strlen(dir);

	if (strncmp(real_path, dir, n) == 0 && real_path[n] == '/')
		return 0;
	return error_set(err, EACCES, "'%s' lies outside the scratch folder", real_path);
}

size_t fuzz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *lens, size_t max)
{
	size_t count = 0;

	while (count + 1 < max) {
		const uint8_t *sep =
			memmem(data, size, FUZZ_FILE_SEPARATOR, FUZZ_FILE_SEPARATOR_LEN);

		if (!sep)
			break;
		parts[count] = data;
		lens[count] = (size_t)(sep - data);
		count++;
		size -= lens[count - 1] + FUZZ_FILE_SEPARATOR_LEN;
		data = sep + FUZZ_FILE_SEPARATOR_LEN;
	}
	parts[count] = data;
	lens[count] = size;
	return count + 1;
}

uint64_t fuzz_load(const uint8_t *p, size_t avail, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n && i < avail; i++)
		v = v << 8 | p[i];
	return v;
}

static void store_checksum(uint8_t *raw, size_t len, size_t at)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < at || i >= at + 4)
			sum += raw[i];
	sum = ~sum;
	raw[at] = (uint8_t)(sum >> 24);
	raw[at + 1] = (uint8_t)(sum >> 16);
	raw[at + 2] = (uint8_t)(sum >> 8);
	raw[at + 3] = (uint8_t)sum;
}

void fuzz_fix_checksums(uint8_t *file, size_t len)
{
	uint8_t *footer;
	uint64_t header_at;

	if (len < FOOTER_SIZE)
		return;
	footer = file + len - FOOTER_SIZE;
	if (footer[FOOTER_SIZE - 1] != 0 || memcmp(footer, "conectix", 8) != 0)
		return;
	/* The header first: the footer is checked first, so it wins any overlap. */
	header_at = fuzz_load(footer + FOOTER_DATA_OFFSET, 8, 8);
	if (header_at < len && len - header_at >= HEADER_SIZE &&
	    memcmp(file + header_at, "cxsparse", 8) == 0)
		store_checksum(file + header_at, HEADER_SIZE, HEADER_CHECKSUM);
	store_checksum(footer, FOOTER_SIZE, FOOTER_CHECKSUM);
}

void fuzz_check_error(int rc, const struct error *err)
{
	FUZZ_CHECK(rc < 0);
	FUZZ_CHECK(err->code == -rc);
	FUZZ_CHECK(err->message[0] != '\0');
}
