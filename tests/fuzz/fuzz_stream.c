/*
 * fuzz_stream - the synthesized VHD over a chain: a small valid base disk,
 * base.vhd, is made once; the input is a child, child.vhd, written next to
 * it. If the chain opens, stream_new_vhd builds the merged dynamic VHD, which
 * is read whole in chunks of odd sizes (or, when large, its first and last
 * MiB); a raw stream is read too.
 *
 * Checked beyond "no crash": the chunks add up to stream_size; the footer
 * copy equals the footer; the synthesized file opens with vhd_open as a
 * dynamic disk of the chain's size, with the same allocated blocks and the
 * chain's merged content; reads past the end are refused; the raw stream
 * reads what chain_read reads.
 */
#include "chain.h"
#include "error.h"
#include "fuzzsupport.h"
#include "stream.h"
#include "vhd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Streams up to this size are read whole and checked; larger ones sampled. */
#define READ_WHOLE_LIMIT (4u * 1024 * 1024)
#define SAMPLE_BYTES	 (1024u * 1024)
#define COMPARE_LIMIT	 (1024u * 1024)

/* The base disk: fixed identity so that seed children can name it. */
static const uint8_t base_uuid[16] = {0x5e, 0xed, 0xba, 0x5e, 0x00, 0x00, 0x40, 0x00,
				      0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
#define BASE_SIZE      (1024u * 1024)
#define BASE_BLOCK     4096u
#define BASE_TIMESTAMP 0x30000000u

static char base_path[FUZZ_PATH_MAX], child_path[FUZZ_PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct error *err)
{
	fprintf(stderr, "fuzz_stream: %s: %s\n", what, error_message(err));
	abort();
}

/* base.vhd: 1 MiB dynamic, 4 KiB blocks, data in the first and last
 * sectors, a partial block, and a run across a block boundary. */
static void make_base(void)
{
	static const struct {
		uint64_t offset;
		uint32_t len;
	} writes[] = {
		{0, 512},
		{8192 + 1024, 1536},
		{65536 - 1024, 4096},
		{BASE_SIZE - 512, 512},
	};
	struct vhd_create_options o = {
		.type = VHD_TYPE_DYNAMIC,
		.size = BASE_SIZE,
		.block_size = BASE_BLOCK,
		.uuid = base_uuid,
		.timestamp = BASE_TIMESTAMP,
	};
	uint8_t buf[4096];
	struct vhd *vhd;
	struct error err;

	error_clear(&err);
	if (vhd_create(base_path, &o, &err) < 0)
		die("cannot create the base disk", &err);
	if (vhd_open(&vhd, base_path, VHD_OPEN_WRITE, &err) < 0)
		die("cannot open the base disk", &err);
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		for (uint32_t j = 0; j < writes[i].len; j++)
			buf[j] = (uint8_t)(0xB0 + i + j * 7);
		if (vhd_write(vhd, buf, writes[i].len, writes[i].offset, &err) < 0)
			die("cannot write the base disk", &err);
	}
	vhd_close(vhd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_scratch_dir();

	fuzz_path(base_path, dir, "base.vhd");
	fuzz_path(child_path, dir, "child.vhd");
	make_base();
	return 0;
}

/* Read [@from, @to) of @stream into @out in chunks of odd sizes. */
static void read_chunks(struct stream *stream, uint8_t *out, uint64_t from, uint64_t to)
{
	static const size_t chunks[] = {1, 511, 513, 4097, 3, 65537, 1023, 200000, 7};
	uint64_t pos = from;
	struct error err;

	for (unsigned i = 0; pos < to; i++) {
		size_t n = chunks[i % (sizeof(chunks) / sizeof(chunks[0]))];

		if (n > to - pos)
			n = (size_t)(to - pos);
		error_clear(&err);
		if (stream_read(stream, out + (pos - from), n, pos, &err) < 0)
			return;
		pos += n;
	}
	FUZZ_CHECK(pos == to);
}

/* The synthesized VHD (all of it, in @image) opens and holds the chain's content. */
static void check_image(struct chain *chain, struct stream *stream, const uint8_t *image,
			size_t size)
{
	static uint8_t want[COMPARE_LIMIT], got[COMPARE_LIMIT];
	uint64_t disk = chain_size(chain), len = disk < COMPARE_LIMIT ? disk : COMPARE_LIMIT;
	struct vhd *vhd = NULL;
	struct error err;
	const char *path;
	int rc;

	FUZZ_CHECK(memcmp(image, image + size - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE) == 0);
	fuzz_write_memfile(image, size, &path);
	error_clear(&err);
	rc = vhd_open(&vhd, path, VHD_OPEN_READ, &err);
	if (rc < 0)
		fprintf(stderr, "the synthesized VHD does not open: %s\n", error_message(&err));
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(vhd_disk_type(vhd) == VHD_TYPE_DYNAMIC);
	FUZZ_CHECK(vhd_size(vhd) == disk);
	FUZZ_CHECK(memcmp(vhd_footer(vhd)->uuid, stream_uuid(stream), 16) == 0);
	for (uint32_t b = 0; b < vhd_block_count(vhd) && b < 4096; b++) {
		uint64_t start = (uint64_t)b * vhd_block_size(vhd);
		uint64_t n =
			disk - start < vhd_block_size(vhd) ? disk - start : vhd_block_size(vhd);

		FUZZ_CHECK((vhd_block_offset(vhd, b) >= 0) ==
			   chain_range_allocated(chain, start, n));
	}
	/* The merged content, compared where the cheap bound allows. */
	error_clear(&err);
	rc = chain_read(chain, want, (size_t)len, 0, &err);
	if (rc == 0) {
		error_clear(&err);
		FUZZ_CHECK(vhd_read(vhd, got, (size_t)len, 0, &err) == 0);
		FUZZ_CHECK(memcmp(want, got, (size_t)len) == 0);
	}
	vhd_close(vhd);
}

static void check_vhd_stream(struct chain *chain)
{
	struct stream_vhd_options o = {.seed = "fuzz"};
	struct stream *stream = NULL;
	struct error err;
	uint64_t size;
	uint8_t *image = NULL, byte;
	bool data;
	uint64_t end;

	error_clear(&err);
	if (stream_new_vhd(&stream, chain, &o, &err) < 0)
		return;
	size = stream_size(stream);
	FUZZ_CHECK(size >= VHD_FOOTER_SIZE + VHD_HEADER_SIZE + VHD_SECTOR_SIZE + VHD_FOOTER_SIZE);
	FUZZ_CHECK(size % VHD_SECTOR_SIZE == 0);
	FUZZ_CHECK(stream_allocated_bytes(stream) == size);
	stream_extent(stream, 0, &data, &end);
	FUZZ_CHECK(data && end == size);
	error_clear(&err);
	FUZZ_CHECK(stream_read(stream, &byte, 1, size, &err) == -EINVAL);
	error_clear(&err);
	FUZZ_CHECK(stream_read(stream, &byte, 0, size, &err) == 0);

	if (size <= READ_WHOLE_LIMIT) {
		image = malloc((size_t)size);
		if (!image)
			goto out;
		read_chunks(stream, image, 0, size);
		check_image(chain, stream, image, (size_t)size);
	} else {
		image = malloc(SAMPLE_BYTES);
		if (!image)
			goto out;
		read_chunks(stream, image, 0, SAMPLE_BYTES);
		read_chunks(stream, image, size - SAMPLE_BYTES, size);
	}
out:
	free(image);
	stream_free(stream);
}

static void check_raw_stream(struct chain *chain)
{
	static uint8_t a[8192], b[8192];
	struct stream *stream = NULL;
	struct error err;
	uint64_t size;
	size_t n;

	error_clear(&err);
	if (stream_new_raw(&stream, chain, &err) < 0)
		return;
	size = stream_size(stream);
	FUZZ_CHECK(size == chain_size(chain));
	FUZZ_CHECK(stream_allocated_bytes(stream) <= size);
	n = size < sizeof(a) ? (size_t)size : sizeof(a);
	error_clear(&err);
	if (stream_read(stream, a, n, size - n, &err) == 0) {
		error_clear(&err);
		FUZZ_CHECK(chain_read(chain, b, n, size - n, &err) == 0);
		FUZZ_CHECK(memcmp(a, b, n) == 0);
	}
	stream_free(stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chain_options options = {
		.allow = fuzz_allow_inside,
		.allow_ctx = (void *)fuzz_scratch_dir(),
	};
	struct chain *chain = NULL;
	struct error err;
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	fuzz_fix_checksums(copy, size);
	fuzz_write_file(child_path, copy, size);
	error_clear(&err);
	if (chain_open(&chain, child_path, &options, &err) == 0) {
		check_vhd_stream(chain);
		check_raw_stream(chain);
	}
	chain_close(chain);
	free(copy);
	return 0;
}
