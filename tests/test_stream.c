/*
 * Unit tests of core/stream: a chain presented as one independent dynamic
 * VHD (or raw disk), built on demand. The bytes served are parsed here field
 * by field, with checksums computed from scratch, and the data compared with
 * content the test computed from its own writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chain.h"
#include "error.h"
#include "segments.h"
#include "stream.h"
#include "support.h"
#include "disk.h"
#include "vhd.h"
#include "vhdx.h"

#define MiB	    (1024ull * 1024)
#define DISK	    (10 * MiB) /* five 2 MiB blocks */
#define BLOCK_BYTES (512 + 2 * MiB)
#define DATA_START  (512 + 1024 + 512)

struct fixture {
	char *dir;
	uint8_t *expect; /* the merged disk, computed from the writes */
	struct chain *chain;
};

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void write_at(const char *path, uint64_t offset, size_t len, uint32_t seed, uint8_t *mirror)
{
	uint8_t *data = calloc(1, len);
	struct vhd *vhd;
	struct error err;

	assert_non_null(data);
	if (seed)
		support_fill(data, len, seed);
	assert_int_equal(vhd_open(&vhd, path, VHD_OPEN_WRITE, &err), 0);
	assert_int_equal(vhd_write(vhd, data, len, offset, &err), 0);
	vhd_close(vhd);
	memcpy(mirror + offset, data, len);
	free(data);
}

/* base: data in blocks 0 and 3; child: more in block 3, zeros written over block 4. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vhd_create_options o = {.type = VHD_TYPE_DYNAMIC, .size = DISK};
	const char *base, *child;
	struct error err;

	f->dir = support_tempdir();
	f->expect = calloc(1, DISK);
	base = support_path(f->dir, "base.vhd");
	child = support_path(f->dir, "child.vhd");
	assert_int_equal(vhd_create(base, &o, &err), 0);
	write_at(base, 4096, 64 * 1024, 1, f->expect);
	write_at(base, 6 * MiB + 512, 3 * 512, 2, f->expect);
	assert_int_equal(vhd_create_differencing(child, base, NULL, &err), 0);
	write_at(child, 7 * MiB, 8192, 3, f->expect);
	write_at(child, 8 * MiB, MiB, 0, f->expect);
	assert_int_equal(chain_open(&f->chain, child, NULL, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	chain_close(f->chain);
	support_remove_tree(f->dir);
	free(f->expect);
	free(f);
	return 0;
}

static uint8_t *read_all(struct stream *s)
{
	uint8_t *buf = malloc(stream_size(s));
	struct error err;

	assert_non_null(buf);
	assert_int_equal(stream_read(s, buf, stream_size(s), 0, &err), 0);
	return buf;
}

/* Parse a dynamic VHD image in memory and check it against @expect. */
static void check_image(const uint8_t *img, uint64_t size, const uint8_t *expect,
			unsigned want_blocks)
{
	const uint8_t *footer = img + size - 512, *header = img + 512;
	unsigned seen = 0;

	assert_memory_equal(footer, "conectix", 8);
	assert_memory_equal(img, footer, 512);
	assert_int_equal(be32(footer + 64), support_checksum(footer, 512, 64));
	assert_int_equal(be32(footer + 60), 3);
	assert_int_equal(be32(footer + 52), DISK); /* low half of the current size */
	assert_memory_equal(header, "cxsparse", 8);
	assert_int_equal(be32(header + 36), support_checksum(header, 1024, 36));
	assert_int_equal(be32(header + 28), 5);
	assert_int_equal(be32(header + 32), 2 * MiB);
	for (uint32_t b = 0; b < 5; b++) {
		uint32_t entry = be32(img + 1536 + 4 * b);
		const uint8_t *block;

		if (entry == 0xFFFFFFFFu) {
			for (uint64_t i = 0; i < 2 * MiB; i++)
				if (expect[b * 2 * MiB + i])
					fail_msg("block %u unallocated but holds data", b);
			continue;
		}
		seen++;
		/* blocks in disk order right after the BAT, each bitmap full */
		assert_int_equal((uint64_t)entry * 512, DATA_START + (seen - 1) * BLOCK_BYTES);
		block = img + (uint64_t)entry * 512;
		for (int i = 0; i < 512; i++)
			assert_int_equal(block[i], 0xFF);
		assert_memory_equal(block + 512, expect + b * 2 * MiB, 2 * MiB);
	}
	for (int i = 5 * 4; i < 512; i++)
		assert_int_equal(img[1536 + i], 0xFF);
	assert_int_equal(seen, want_blocks);
	assert_int_equal(size, DATA_START + want_blocks * BLOCK_BYTES + 512);
}

static void test_vhd_layout(void **state)
{
	struct fixture *f = *state;
	struct stream *s;
	struct error err;
	uint8_t *img;

	assert_int_equal(stream_new_vhd(&s, f->chain, NULL, &err), 0);
	/* Blocks 0, 3 and 4 are allocated somewhere in the chain. */
	assert_int_equal(stream_size(s), DATA_START + 3 * BLOCK_BYTES + 512);
	img = read_all(s);
	check_image(img, stream_size(s), f->expect, 3);
	free(img);
	stream_free(s);
}

static void test_chunked_reads(void **state)
{
	struct fixture *f = *state;
	struct stream *s;
	struct error err;
	uint8_t *whole, *piece = malloc(100000);
	uint64_t size;
	const size_t sizes[] = {1, 511, 777, 4096, 65537, 99999};

	assert_int_equal(stream_new_vhd(&s, f->chain, NULL, &err), 0);
	whole = read_all(s);
	size = stream_size(s);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t step = sizes[k];
		/* a sweep across the metadata, and a window over each boundary */
		uint64_t starts[] = {0,
				     1500,
				     DATA_START - 3,
				     DATA_START + 510,
				     DATA_START + BLOCK_BYTES - 100,
				     size - step};

		for (size_t j = 0; j < sizeof(starts) / sizeof(starts[0]); j++) {
			uint64_t at = starts[j];

			if (at + step > size)
				continue;
			assert_int_equal(stream_read(s, piece, step, at, &err), 0);
			assert_memory_equal(piece, whole + at, step);
		}
	}
	for (uint64_t at = 0; at < 8192; at += 13) {
		assert_int_equal(stream_read(s, piece, 13, at, &err), 0);
		assert_memory_equal(piece, whole + at, 13);
	}
	assert_int_equal(stream_read(s, piece, 2, size - 1, &err), -EINVAL);
	assert_int_equal(stream_read(s, piece, 0, size, &err), 0);
	free(whole);
	free(piece);
	stream_free(s);
}

static void test_uuid_and_timestamp(void **state)
{
	struct fixture *f = *state;
	struct stream_vhd_options a = {.seed = "vm-1/disk-0"}, b = {.seed = "vm-2/disk-0"};
	struct stream_vhd_options t = {.timestamp = 4242};
	struct stream *s1, *s2, *s3, *s4;
	struct error err;
	uint8_t footer[512];

	assert_int_equal(stream_new_vhd(&s1, f->chain, &a, &err), 0);
	assert_int_equal(stream_new_vhd(&s2, f->chain, &a, &err), 0);
	assert_int_equal(stream_new_vhd(&s3, f->chain, &b, &err), 0);
	assert_int_equal(stream_new_vhd(&s4, f->chain, &t, &err), 0);
	assert_memory_equal(stream_uuid(s1), stream_uuid(s2), 16);
	assert_memory_not_equal(stream_uuid(s1), stream_uuid(s3), 16);
	assert_memory_not_equal(stream_uuid(s4), vhd_footer(disk_vhd(chain_level(f->chain, 0)))->uuid, 16);
	/* a name-based (version 5) UUID, in the footer */
	assert_int_equal(stream_uuid(s1)[6] >> 4, 5);
	assert_int_equal(stream_read(s1, footer, 512, 0, &err), 0);
	assert_memory_equal(footer + 68, stream_uuid(s1), 16);
	assert_int_equal(be32(footer + 24), vhd_footer(disk_vhd(chain_level(f->chain, 0)))->timestamp);
	assert_int_equal(stream_read(s4, footer, 512, 0, &err), 0);
	assert_int_equal(be32(footer + 24), 4242);
	stream_free(s1);
	stream_free(s2);
	stream_free(s3);
	stream_free(s4);
}

static void test_compact(void **state)
{
	struct fixture *f = *state;
	const char *out = support_path(f->dir, "flat.vhd");
	struct stream *s;
	struct error err;
	uint64_t size;
	uint8_t *img;
	int fd;

	assert_int_equal(stream_new_vhd(&s, f->chain, NULL, &err), 0);
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(stream_write_compact(s, fd, NULL, NULL, &err), 0);
	close(fd);
	/* Block 4 was written with zeros only: dropped. */
	size = support_file_size(out);
	assert_int_equal(size, DATA_START + 2 * BLOCK_BYTES + 512);
	assert_int_equal(stream_size(s), size);
	img = malloc(size);
	support_read(out, 0, img, size);
	check_image(img, size, f->expect, 2);
	free(img);
	stream_free(s);
}

static void test_raw(void **state)
{
	struct fixture *f = *state;
	struct stream *s;
	struct error err;
	uint8_t *img;
	bool data;
	uint64_t end;

	assert_int_equal(stream_new_raw(&s, f->chain, &err), 0);
	assert_int_equal(stream_size(s), DISK);
	assert_int_equal(stream_allocated_bytes(s), 6 * MiB);
	img = read_all(s);
	assert_memory_equal(img, f->expect, DISK);
	stream_extent(s, 0, &data, &end);
	assert_true(data);
	assert_int_equal(end, 2 * MiB);
	stream_extent(s, 2 * MiB, &data, &end);
	assert_false(data);
	assert_int_equal(end, 6 * MiB);
	assert_int_equal(stream_write_compact(s, 1, NULL, NULL, &err), -EINVAL);
	free(img);
	stream_free(s);
}

/* A VHDX of 1 MiB blocks over the chain: blocks 0-1, 6-7 and 8-9 are stored
 * (the 2 MiB VHD blocks 0, 3 and 4), right after a 1 MiB BAT at 3 MiB. */
static void test_vhdx_layout(void **state)
{
	struct fixture *f = *state;
	struct stream_vhdx_options o = {.seed = "vm/disk", .block_size = MiB};
	const uint64_t stored[] = {0, 1, 6, 7, 8, 9};
	struct stream *s;
	struct error err;
	uint8_t *img;
	bool data;
	uint64_t end;

	assert_int_equal(stream_new_vhdx(&s, f->chain, &o, &err), 0);
	assert_int_equal(stream_size(s), 4 * MiB + 6 * MiB);
	img = read_all(s);
	assert_memory_equal(img, "vhdxfile", 8);
	assert_memory_equal(img + 64 * 1024, "head", 4);
	assert_memory_equal(img + 192 * 1024, "regi", 4);
	assert_memory_equal(img + 2 * MiB, "metadata", 8);
	for (uint64_t b = 0, k = 0; b < 10; b++) {
		uint64_t entry = le64(img + 3 * MiB + 8 * b);

		if (k < 6 && stored[k] == b) {
			assert_int_equal(entry, (4 + k) * MiB | 6); /* FULLY_PRESENT */
			assert_memory_equal(img + (4 + k) * MiB, f->expect + b * MiB, MiB);
			k++;
		} else {
			assert_int_equal(entry, 0); /* NOT_PRESENT */
		}
	}
	/* The log is a hole; the stored blocks are data where the chain allocates. */
	stream_extent(s, MiB, &data, &end);
	assert_false(data);
	assert_int_equal(end, 2 * MiB);
	stream_extent(s, 4 * MiB, &data, &end);
	assert_true(data);
	assert_int_equal(end, 10 * MiB);
	assert_memory_equal(stream_uuid(s), img + 2 * MiB + 64 * 1024 + 16, 16);
	free(img);
	stream_free(s);
}

static void test_vhdx_compact(void **state)
{
	struct fixture *f = *state;
	struct stream_vhdx_options o = {.seed = "vm/disk", .block_size = MiB};
	const char *out = support_path(f->dir, "flat.vhdx");
	uint8_t *got = malloc(DISK);
	struct stream *s;
	struct vhdx *vhdx;
	struct error err;
	int fd;

	assert_int_equal(stream_new_vhdx(&s, f->chain, &o, &err), 0);
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(stream_write_compact(s, fd, NULL, NULL, &err), 0);
	close(fd);
	/* Blocks 1, 8 and 9 hold only zeros: left out. */
	assert_int_equal(support_file_size(out), 4 * MiB + 3 * MiB);
	assert_int_equal(stream_size(s), 4 * MiB + 3 * MiB);
	assert_int_equal(vhdx_open(&vhdx, out, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(vhdx_size(vhdx), DISK);
	assert_int_equal(vhdx_block_size(vhdx), MiB);
	assert_int_equal(vhdx_read(vhdx, got, DISK, 0, &err), 0);
	assert_memory_equal(got, f->expect, DISK);
	vhdx_close(vhdx);
	stream_free(s);
	free(got);
}

/* Copy @from to @to with the bytes of @s instead (the stream of a file). */
static void write_stream(struct stream *s, const char *to)
{
	uint8_t *all = read_all(s);
	FILE *f = fopen(to, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(all, 1, stream_size(s), f), stream_size(s));
	fclose(f);
	free(all);
}

static void test_relocated_child(void **state)
{
	struct fixture *f = *state;
	const char *child = support_path(f->dir, "child.vhd");
	char a[4096], c[4096], cmd[9000], name[400];
	struct vhd_patch patches[2];
	struct stream_file file;
	struct chain *moved;
	struct stream *s;
	struct error err;
	struct disk *disk;
	uint8_t *got = malloc(DISK);
	char text[512];

	/* An export folder: the child and its parent, renamed, side by side. */
	snprintf(a, sizeof(a), "%s/export", f->dir);
	assert_int_equal(mkdir(a, 0755), 0);
	snprintf(c, sizeof(c), "%s/export/renamed base.vhd", f->dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", support_path(f->dir, "base.vhd"), c);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(disk_open(&disk, child, DISK_OPEN_READ, &err), 0);
	assert_int_equal(vhd_relocation(disk_vhd(disk), "renamed base.vhd", patches, &err), 0);
	file = (struct stream_file){disk, -1, disk_file_size(disk), disk_path(disk)};
	assert_int_equal(stream_new_patched(&s, &file, patches, 2, &err), 0);
	assert_int_equal(stream_size(s), disk_file_size(disk));
	snprintf(c, sizeof(c), "%s/export/child.vhd", f->dir);
	write_stream(s, c);
	stream_free(s);
	free(patches[0].bytes);
	free(patches[1].bytes);

	/* It is found by its new relative locator, and reads as before. */
	assert_int_equal(chain_open(&moved, c, NULL, &err), 0);
	assert_int_equal(chain_depth(moved), 2);
	assert_string_equal(chain_level_how(moved, 1),
			    "relative locator W2ru '.\\renamed base.vhd'");
	assert_int_equal(chain_read(moved, got, DISK, 0, &err), 0);
	assert_memory_equal(got, f->expect, DISK);
	assert_int_equal(vhd_parent_name(disk_vhd(chain_level(moved, 0)), text, sizeof(text), &err), 0);
	assert_string_equal(text, "renamed base.vhd");
	assert_int_equal(vhd_locator_path(disk_vhd(chain_level(moved, 0)), 1, text, sizeof(text), &err),
			 -ENOENT); /* the absolute locators are gone */
	chain_close(moved);

	/* No room: 255 characters fit the parent name field (510 bytes) but not,
	 * with ".\\" before them, a 512-byte locator: the caller merges instead. A
	 * name too long for the field, and a disk that is not differencing, are
	 * refused. */
	memset(name, 'n', 255);
	name[255] = '\0';
	assert_int_equal(vhd_relocation(disk_vhd(disk), name, patches, &err), -ENOSPC);
	memset(name, 'n', 300);
	name[300] = '\0';
	assert_int_equal(vhd_relocation(disk_vhd(disk), name, patches, &err), -ENAMETOOLONG);
	disk_close(disk);
	assert_int_equal(disk_open(&disk, support_path(f->dir, "base.vhd"), DISK_OPEN_READ, &err),
			 0);
	assert_int_equal(vhd_relocation(disk_vhd(disk), "x.vhd", patches, &err), -EINVAL);
	disk_close(disk);
	free(got);
}

/* ---- a file with patches laid over it ---- */

/* The edges of the reads of check_patched: around each patch's ends, and the file's. */
static size_t patched_edges(const struct vhd_patch *p, size_t count, uint64_t size, uint64_t *out)
{
	size_t n = 0;

	out[n++] = 0;
	out[n++] = 1;
	out[n++] = size / 2;
	out[n++] = size - 1;
	out[n++] = size;
	for (size_t i = 0; i < count; i++)
		for (int d = -1; d <= 1; d++) {
			if (p[i].offset + d <= size && (d >= 0 || p[i].offset > 0))
				out[n++] = p[i].offset + d;
			if (p[i].offset + p[i].len + d <= size)
				out[n++] = p[i].offset + p[i].len + d;
		}
	return n;
}

/*
 * The patched stream of @file (whose own bytes, read by the test, are @bytes)
 * with patches at its start, in its middle (two side by side) and at its end:
 * every read between two edges (inside a patch, across one's start or end,
 * over several) gives the bytes the test lays over @bytes itself.
 */
static void check_patched(const struct stream_file *file, const uint8_t *bytes)
{
	uint64_t size = file->size, edges[64];
	struct vhd_patch p[4] = {
		{0, 512, NULL},
		{size / 3, 100, NULL},
		{size / 3 + 100, 50, NULL},
		{size - 300, 300, NULL},
	};
	uint8_t *expect = malloc(size), *got = malloc(size);
	struct stream *s;
	struct error err;
	size_t n;

	assert_non_null(expect);
	assert_non_null(got);
	memcpy(expect, bytes, size);
	for (size_t i = 0; i < 4; i++) {
		p[i].bytes = malloc(p[i].len);
		assert_non_null(p[i].bytes);
		support_fill(p[i].bytes, p[i].len, 100 + (uint32_t)i);
		for (size_t k = 0; k < p[i].len; k++)
			expect[p[i].offset + k] = p[i].bytes[k];
	}
	assert_int_equal(stream_new_patched(&s, file, p, 4, &err), 0);
	assert_int_equal(stream_size(s), size);
	n = patched_edges(p, 4, size, edges);
	for (size_t a = 0; a < n; a++)
		for (size_t b = 0; b < n; b++) {
			if (edges[a] >= edges[b])
				continue;
			memset(got, 0xEE, size);
			assert_int_equal(
				stream_read(s, got, (size_t)(edges[b] - edges[a]), edges[a], &err),
				0);
			assert_memory_equal(got, expect + edges[a], (size_t)(edges[b] - edges[a]));
		}
	/* Data throughout; nothing past the end. */
	{
		bool data;
		uint64_t end;

		stream_extent(s, 0, &data, &end);
		assert_true(data);
		assert_int_equal(end, size);
	}
	assert_int_equal(stream_read(s, got, 2, size - 1, &err), -EINVAL);
	stream_free(s);

	/* A patch past the end is refused. */
	p[3].offset = size - 299;
	assert_int_equal(stream_new_patched(&s, file, p, 4, &err), -EINVAL);
	assert_non_null(strstr(error_message(&err), file->path));
	for (size_t i = 0; i < 4; i++)
		free(p[i].bytes);
	free(expect);
	free(got);
}

static void test_patched_reads(void **state)
{
	struct fixture *f = *state;
	const char *path = support_path(f->dir, "plain.bin");
	uint64_t size = 70001;
	uint8_t *bytes = malloc(size), small[16];
	struct stream_file file;
	struct vhd_patch none = {0, 0, NULL};
	struct disk *disk;
	struct stream *s;
	struct error err;
	int fd;

	/* A file read by descriptor. */
	assert_non_null(bytes);
	support_fill(bytes, size, 9);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, size), (ssize_t)size);
	file = (struct stream_file){NULL, fd, size, path};
	check_patched(&file, bytes);

	/* Shorter than it was: the read fails, naming the file. */
	assert_int_equal(stream_new_patched(&s, &file, &none, 0, &err), 0);
	assert_int_equal(ftruncate(fd, 1000), 0);
	assert_int_equal(stream_read(s, small, sizeof(small), size - 16, &err), -EIO);
	assert_non_null(strstr(error_message(&err), "ends before byte"));
	assert_non_null(strstr(error_message(&err), path));
	stream_free(s);
	close(fd);
	free(bytes);

	/* A disk read through the disk module: the VHD's own file bytes, read by the test. */
	path = support_path(f->dir, "base.vhd");
	size = support_file_size(path);
	bytes = malloc(size);
	assert_non_null(bytes);
	support_read(path, 0, bytes, size);
	assert_int_equal(disk_open(&disk, path, DISK_OPEN_READ, &err), 0);
	file = (struct stream_file){disk, -1, disk_file_size(disk), disk_path(disk)};
	assert_int_equal(file.size, size);
	check_patched(&file, bytes);
	disk_close(disk);
	free(bytes);
}

/*
 * stream_map() of @s, put together from its pieces, gives what stream_read()
 * gives, for reads of 128 KiB and of odd sizes all over the file; returns how
 * many pieces were file runs, those a splice takes from the files.
 */
static size_t check_map(struct stream *s)
{
	const size_t sizes[] = {128 * 1024, 4096 * 3 + 7, 65537, 9000};
	uint8_t *want = malloc(128 * 1024), *got = malloc(128 * 1024);
	uint64_t size = stream_size(s);
	struct segments segs;
	struct error err;
	size_t runs = 0;

	assert_non_null(want);
	assert_non_null(got);
	assert_int_equal(segments_init(&segs, 128 * 1024, 0), 0);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		for (uint64_t at = 0; at < size; at += sizes[k] + 511 * k) {
			size_t n = size - at < sizes[k] ? (size_t)(size - at) : sizes[k];

			assert_int_equal(segments_reset(&segs, n), 0);
			assert_int_equal(stream_map(s, &segs, at, n, &err), 0);
			assert_int_equal(stream_read(s, want, n, at, &err), 0);
			memset(got, 0xEE, n);
			support_put_together(&segs, got, n);
			assert_memory_equal(got, want, n);
			for (size_t i = 0; i < segs.count; i++)
				runs += segs.items[i].kind == SEGMENT_FILE;
		}
	segments_free(&segs);
	free(want);
	free(got);
	return runs;
}

/* Every kind of stream, described as pieces, is what it reads as; the chain's and the
 * file's data come as runs of their files, not copies. */
static void test_mapped_reads(void **state)
{
	struct fixture *f = *state;
	const char *path = support_path(f->dir, "base.vhd");
	struct vhd_patch p = {600, 100, NULL};
	struct stream_file file;
	struct stream *s;
	struct error err;
	int fd;

	assert_int_equal(stream_new_vhd(&s, f->chain, NULL, &err), 0);
	assert_true(check_map(s) > 0);
	stream_free(s);
	assert_int_equal(stream_new_raw(&s, f->chain, &err), 0);
	assert_true(check_map(s) > 0);
	stream_free(s);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	p.bytes = malloc(p.len);
	assert_non_null(p.bytes);
	support_fill(p.bytes, p.len, 77);
	file = (struct stream_file){NULL, fd, support_file_size(path), path};
	assert_int_equal(stream_new_patched(&s, &file, &p, 1, &err), 0);
	assert_true(check_map(s) > 0);
	stream_free(s);
	free(p.bytes);
	close(fd);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_vhd_layout),  T(test_chunked_reads), T(test_uuid_and_timestamp),
		T(test_compact),     T(test_raw),	    T(test_relocated_child),
		T(test_vhdx_layout), T(test_vhdx_compact),  T(test_patched_reads),
		T(test_mapped_reads),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
