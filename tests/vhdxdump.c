/*
 * vhdxdump - a test-only window on core/vhdx: what vhdx_open makes of a
 * file, its extents and its content read alone (the parent's sectors as
 * zeros), for the integration tests to compare with models built
 * independently (tests/vhdxcraft.py, qemu-img).
 *
 *   vhdxdump info FILE                   key=value lines
 *   vhdxdump map FILE [FIRST COUNT]      one extent a line: first count kind offset
 *   vhdxdump read FILE [OFFSET LENGTH]   the bytes, to standard output
 *   vhdxdump block FILE BLOCK            the block's state and file offset
 *   vhdxdump threads FILE THREADS READS  reads from several threads at once, each
 *                                        checked against the same read made alone
 *   vhdxdump relocate FILE PARENT OUT    the patches of vhdx_relocation, one a line
 *                                        ("OFFSET LENGTH"), and OUT: the file as
 *                                        vhdx_pread reads it with them laid over
 *
 * A failure prints "vhdxdump: MESSAGE" to standard error and exits 1.
 */
#include "error.h"
#include "vhdx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1024u * 1024)

static int fail(const struct error *err)
{
	fprintf(stderr, "vhdxdump: %s\n", error_message(err));
	return 1;
}

static uint64_t number(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*s == '\0' || *end != '\0') {
		fprintf(stderr, "vhdxdump: '%s' is not a number\n", s);
		exit(2);
	}
	return v;
}

static const char *type_name(enum vhd_type type)
{
	return type == VHD_TYPE_FIXED	  ? "fixed"
	       : type == VHD_TYPE_DYNAMIC ? "dynamic"
					  : "differencing";
}

static int info(struct vhdx *vhdx)
{
	char guid[39];
	uint64_t head = 0;
	bool replayed = vhdx_log_replayed(vhdx, &head);

	printf("size=%" PRIu64 "\n", vhdx_size(vhdx));
	printf("type=%s\n", type_name(vhdx_disk_type(vhdx)));
	printf("logical_sector_size=%u\n", vhdx_logical_sector_size(vhdx));
	printf("physical_sector_size=%u\n", vhdx_physical_sector_size(vhdx));
	printf("block_size=%u\n", vhdx_block_size(vhdx));
	printf("block_count=%" PRIu64 "\n", vhdx_block_count(vhdx));
	printf("chunk_ratio=%u\n", vhdx_chunk_ratio(vhdx));
	printf("has_parent=%d\n", vhdx_has_parent(vhdx));
	printf("leave_allocated=%d\n", vhdx_leave_allocated(vhdx));
	vhdx_guid_format(vhdx_disk_id(vhdx), guid);
	printf("disk_id=%s\n", guid);
	vhdx_guid_format(vhdx_data_write_guid(vhdx), guid);
	printf("data_write_guid=%s\n", guid);
	vhdx_guid_format(vhdx_file_write_guid(vhdx), guid);
	printf("file_write_guid=%s\n", guid);
	vhdx_guid_format(vhdx_log_guid(vhdx), guid);
	printf("log_guid=%s\n", guid);
	printf("current_header=%d\n", vhdx_current_header_index(vhdx));
	printf("sequence_number=%" PRIu64 "\n", vhdx_current_header(vhdx)->sequence_number);
	printf("log_replayed=%d\n", replayed);
	printf("log_head_sequence=%" PRIu64 "\n", head);
	printf("file_size=%" PRIu64 "\n", vhdx_file_size(vhdx));
	printf("locator_count=%zu\n", vhdx_locator_count(vhdx));
	for (size_t i = 0; i < vhdx_locator_count(vhdx); i++) {
		const struct vhdx_locator_entry *e = vhdx_locator_entry(vhdx, i);

		printf("locator.%s=%s\n", e->key, e->value);
	}
	/* The lookup by key agrees with the listing. */
	for (size_t i = 0; i < vhdx_locator_count(vhdx); i++) {
		const struct vhdx_locator_entry *e = vhdx_locator_entry(vhdx, i);

		if (vhdx_locator_get(vhdx, e->key) != e->value) {
			fprintf(stderr, "vhdxdump: lookup of '%s' disagrees\n", e->key);
			return 1;
		}
	}
	if (vhdx_locator_entry(vhdx, vhdx_locator_count(vhdx)) ||
	    vhdx_locator_get(vhdx, "no such key")) {
		fprintf(stderr, "vhdxdump: lookup past the locator found something\n");
		return 1;
	}
	return 0;
}

static int map(struct vhdx *vhdx, uint64_t first, uint64_t count)
{
	static const char *const kinds[] = {"here", "zero", "parent"};
	uint64_t end = first + count;
	struct error err;

	while (first < end) {
		struct vhd_extent ext;

		error_clear(&err);
		if (vhdx_map(vhdx, first, end - first, &ext, &err) < 0)
			return fail(&err);
		printf("%" PRIu64 " %" PRIu64 " %s %" PRIu64 "\n", first, ext.sectors,
		       kinds[ext.kind], ext.kind == VHD_EXTENT_DATA ? ext.file_offset : 0);
		first += ext.sectors;
	}
	return 0;
}

static int dump(struct vhdx *vhdx, uint64_t offset, uint64_t length)
{
	uint8_t *buf = malloc(CHUNK);
	struct error err;
	int rc = 0;

	if (!buf)
		return 1;
	while (length) {
		size_t n = length < CHUNK ? (size_t)length : CHUNK;

		error_clear(&err);
		if (vhdx_read(vhdx, buf, n, offset, &err) < 0) {
			rc = fail(&err);
			break;
		}
		if (fwrite(buf, 1, n, stdout) != n) {
			rc = 1;
			break;
		}
		offset += n;
		length -= n;
	}
	free(buf);
	return rc;
}

struct worker {
	struct vhdx *vhdx;
	const uint8_t *whole; /* the disk read alone, up to limit */
	uint64_t limit;
	unsigned seed;
	unsigned reads;
	int failed;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint32_t sector = vhdx_logical_sector_size(w->vhdx);
	uint64_t sectors = w->limit / sector;
	uint8_t *buf = malloc(64 * (size_t)sector);

	for (unsigned i = 0; buf && i < w->reads && !w->failed; i++) {
		uint64_t first = (uint64_t)rand_r(&w->seed) % sectors;
		uint64_t n = 1 + (uint64_t)rand_r(&w->seed) % 64;
		struct error err;

		if (n > sectors - first)
			n = sectors - first;
		error_clear(&err);
		if (vhdx_read(w->vhdx, buf, n * sector, first * sector, &err) < 0 ||
		    memcmp(buf, w->whole + first * sector, n * sector) != 0)
			w->failed = 1;
	}
	free(buf);
	return NULL;
}

static int threads(struct vhdx *vhdx, unsigned count, unsigned reads)
{
	uint64_t limit = vhdx_size(vhdx) < 64 * CHUNK ? vhdx_size(vhdx) : 64 * CHUNK;
	struct worker w[16];
	pthread_t t[16];
	uint8_t *whole = malloc(limit);
	struct error err;
	int rc = 0;

	if (!whole || count > 16)
		return 1;
	error_clear(&err);
	if (vhdx_read(vhdx, whole, limit, 0, &err) < 0) {
		free(whole);
		return fail(&err);
	}
	for (unsigned i = 0; i < count; i++) {
		w[i] = (struct worker){vhdx, whole, limit, 1234u + i, reads, 0};
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (unsigned i = 0; i < count; i++) {
		pthread_join(t[i], NULL);
		if (w[i].failed)
			rc = 1;
	}
	free(whole);
	printf(rc ? "mismatch\n" : "ok\n");
	return rc;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static int relocate(struct vhdx *vhdx, const char *parent_name, const char *out)
{
	struct vhd_patch patches[VHDX_RELOCATION_MAX_PATCHES];
	uint64_t size = vhdx_replayed_file_size(vhdx);
	size_t count = 0;
	uint8_t *buf = NULL;
	struct error err;
	int fd = -1, rc = 0;

	error_clear(&err);
	if (vhdx_relocation(vhdx, parent_name, patches, VHDX_RELOCATION_MAX_PATCHES, &count, &err) <
	    0)
		return fail(&err);
	for (size_t i = 0; i < count; i++)
		printf("%" PRIu64 " %zu\n", patches[i].offset, patches[i].len);
	buf = malloc(CHUNK);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (!buf || fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		fprintf(stderr, "vhdxdump: cannot write '%s': %s\n", out, strerror(errno));
		rc = 1;
		goto out;
	}
	/* Holes stay holes: only chunks with something in them are written. */
	for (uint64_t at = 0; at < size; at += CHUNK) {
		size_t n = size - at < CHUNK ? (size_t)(size - at) : CHUNK;

		error_clear(&err);
		if (vhdx_pread(vhdx, buf, n, at, &err) < 0) {
			rc = fail(&err);
			goto out;
		}
		vhd_patches_apply(patches, count, buf, n, at);
		if (!all_zero(buf, n) && pwrite(fd, buf, n, (off_t)at) != (ssize_t)n) {
			fprintf(stderr, "vhdxdump: cannot write '%s': %s\n", out, strerror(errno));
			rc = 1;
			goto out;
		}
	}
out:
	if (fd >= 0 && close(fd) < 0)
		rc = 1;
	free(buf);
	for (size_t i = 0; i < count; i++)
		free(patches[i].bytes);
	return rc;
}

int main(int argc, char **argv)
{
	struct vhdx *vhdx = NULL;
	struct error err;
	int rc;

	if (argc < 3) {
		fprintf(stderr,
			"usage: vhdxdump info|map|read|block|threads|relocate FILE [ARGS]\n");
		return 2;
	}
	error_clear(&err);
	if (vhdx_open(&vhdx, argv[2], VHDX_OPEN_READ, &err) < 0)
		return fail(&err);
	if (strcmp(argv[1], "info") == 0) {
		rc = info(vhdx);
	} else if (strcmp(argv[1], "map") == 0) {
		uint64_t total = vhdx_size(vhdx) / vhdx_logical_sector_size(vhdx);

		rc = map(vhdx, argc > 3 ? number(argv[3]) : 0, argc > 4 ? number(argv[4]) : total);
	} else if (strcmp(argv[1], "read") == 0) {
		rc = dump(vhdx, argc > 3 ? number(argv[3]) : 0,
			  argc > 4 ? number(argv[4]) : vhdx_size(vhdx));
	} else if (strcmp(argv[1], "block") == 0 && argc > 3) {
		int state;
		uint64_t offset;

		rc = vhdx_block_state(vhdx, number(argv[3]), &state, &offset, &err);
		if (rc < 0)
			rc = fail(&err);
		else
			printf("%d %" PRIu64 "\n", state, offset);
	} else if (strcmp(argv[1], "relocate") == 0 && argc > 4) {
		rc = relocate(vhdx, argv[3], argv[4]);
	} else if (strcmp(argv[1], "threads") == 0 && argc > 4) {
		rc = threads(vhdx, (unsigned)number(argv[3]), (unsigned)number(argv[4]));
	} else {
		fprintf(stderr, "vhdxdump: unknown command '%s'\n", argv[1]);
		rc = 2;
	}
	vhdx_close(vhdx);
	if (fflush(stdout) != 0)
		rc = 1;
	return rc;
}
