/*
 * vhdxwrite - a test-only driver of the VHDX writer (core/vhdx_create.c,
 * core/vhdx_write.c) for tests/integration/test_vhdx_write.py:
 *
 *   vhdxwrite create FILE SIZE fixed|dynamic [BLOCK [LOGICAL [PHYSICAL]]]
 *   vhdxwrite diff FILE PARENT [PATHMAP]
 *   vhdxwrite write FILE SRC OFFSET,LENGTH[,SRCOFFSET]...
 *        one session: each write takes LENGTH bytes of SRC at SRCOFFSET
 *        (default OFFSET); then vhdx_flush and close
 *   vhdxwrite pattern FILE PLAN [FIRST]
 *        one session: write number i (from FIRST, default 0) of PLAN, a file of
 *        lines "SECTOR COUNT", fills each sector s with the 16-byte pattern
 *        (i + 1, s) repeated (little-endian 64-bit numbers); prints "i" after
 *        each write returns
 *   vhdxwrite open FILE     open for writing, then close
 *
 * Failure injection, for crash tests, through IMPEX_FAIL_AT=N[:MODE[:SEED]]:
 * the calls to pwrite, fdatasync, fsync and ftruncate are counted (all of
 * them, core's included: they are wrapped at link time), and at call N:
 *   crash  (default) the call writes half of its bytes if it is a pwrite,
 *          then the process exits with status 3 at once, as if cut off;
 *   lose   as crash, but first undo, 4 KiB piece by piece at random (SEED),
 *          the pwrites not yet made durable by a sync: what a host that loses
 *          its power may lose;
 *   reorder as crash, but first undo every pwrite not yet made durable but
 *          the last: the disk wrote the newest first, then the power went;
 *   eio    the call and every later one fail with EIO.
 * IMPEX_FAIL_COUNT=1 prints the number of calls made at exit instead.
 *
 * A failure prints "vhdxwrite: MESSAGE" to standard error and exits 1.
 */
#include "error.h"
#include "fsutil.h"
#include "pathmap.h"
#include "vhdx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- failure injection ---- */

ssize_t __real_pwrite64(int fd, const void *buf, size_t len, off_t offset);
int __real_fdatasync(int fd);
int __real_fsync(int fd);
int __real_ftruncate64(int fd, off_t len);

enum fail_mode { FAIL_NONE, FAIL_CRASH, FAIL_LOSE, FAIL_REORDER, FAIL_EIO };

static long fail_at;
static long calls;
static enum fail_mode fail_mode;
static unsigned fail_seed;
static bool failing;

/* Writes since the last sync, with what they replaced (for FAIL_LOSE). */
struct undo {
	int fd;
	off_t offset;
	size_t len;
	uint8_t *old;
};
static struct undo *undo;
static size_t undo_count, undo_cap;

static void fail_setup(void)
{
	const char *spec = getenv("IMPEX_FAIL_AT");
	char mode[16] = "crash";

	if (!spec)
		return;
	fail_seed = 1;
	if (sscanf(spec, "%ld:%15[a-z]:%u", &fail_at, mode, &fail_seed) < 1 || fail_at < 1) {
		fprintf(stderr, "vhdxwrite: bad IMPEX_FAIL_AT '%s'\n", spec);
		exit(2);
	}
	fail_mode = strcmp(mode, "lose") == 0	   ? FAIL_LOSE
		    : strcmp(mode, "reorder") == 0 ? FAIL_REORDER
		    : strcmp(mode, "eio") == 0	   ? FAIL_EIO
						   : FAIL_CRASH;
}

static void count_report(void)
{
	if (getenv("IMPEX_FAIL_COUNT"))
		fprintf(stderr, "calls=%ld\n", calls);
}

/* The power goes: unsynced writes lost piece by piece (FAIL_LOSE), then out. */
static void crash(void)
{
	/* Newest first, so that a piece undone gets what was there before any
	 * unsynced write. */
	for (size_t i = undo_count; i-- > 0;) {
		struct undo *u = &undo[i];

		if (fail_mode == FAIL_REORDER && i + 1 < undo_count) {
			__real_pwrite64(u->fd, u->old, u->len, u->offset);
			continue;
		}
		for (size_t at = 0; fail_mode == FAIL_LOSE && at < u->len; at += 4096) {
			size_t n = u->len - at < 4096 ? u->len - at : 4096;

			if (rand_r(&fail_seed) % 2)
				__real_pwrite64(u->fd, u->old + at, n, u->offset + (off_t)at);
		}
	}
	_exit(3);
}

/* Whether this call is the one to fail (or one after it, for FAIL_EIO). */
static bool fail_now(void)
{
	if (failing)
		return true;
	calls++;
	if (fail_mode == FAIL_NONE || calls < fail_at)
		return false;
	failing = true;
	return true;
}

static void undo_forget(void)
{
	for (size_t i = 0; i < undo_count; i++)
		free(undo[i].old);
	undo_count = 0;
}

static void undo_record(int fd, size_t len, off_t offset)
{
	struct stat st;
	uint8_t *old;

	if ((fail_mode != FAIL_LOSE && fail_mode != FAIL_REORDER) || fstat(fd, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return;
	old = calloc(1, len ? len : 1);
	if (!old)
		abort();
	/* Past the end of the file the old content is zeros. */
	if (pread(fd, old, len, offset) < 0)
		abort();
	if (undo_count == undo_cap) {
		undo_cap = undo_cap ? 2 * undo_cap : 64;
		undo = realloc(undo, undo_cap * sizeof(*undo));
		if (!undo)
			abort();
	}
	undo[undo_count++] = (struct undo){fd, offset, len, old};
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t offset);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t offset)
{
	if (fail_now()) {
		if (fail_mode == FAIL_EIO) {
			errno = EIO;
			return -1;
		}
		undo_record(fd, len / 2 / 512 * 512, offset);
		__real_pwrite64(fd, buf, len / 2 / 512 * 512, offset);
		crash();
	}
	undo_record(fd, len, offset);
	return __real_pwrite64(fd, buf, len, offset);
}

/* For a call that writes nothing itself: whether it is the one to fail. In
 * FAIL_EIO mode it then fails (true, errno EIO); in the others the process
 * crashes there. */
static bool fails_here(void)
{
	if (!fail_now())
		return false;
	if (fail_mode != FAIL_EIO)
		crash();
	errno = EIO;
	return true;
}

int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
	if (fails_here())
		return -1;
	undo_forget();
	return __real_fdatasync(fd);
}

int __wrap_fsync(int fd);
int __wrap_fsync(int fd)
{
	if (fails_here())
		return -1;
	undo_forget();
	return __real_fsync(fd);
}

int __wrap_ftruncate64(int fd, off_t len);
int __wrap_ftruncate64(int fd, off_t len)
{
	if (fails_here())
		return -1;
	return __real_ftruncate64(fd, len);
}

/* ---- commands ---- */

static int fail(const struct error *err)
{
	fprintf(stderr, "vhdxwrite: %s\n", error_message(err));
	return 1;
}

static uint64_t number(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (*s == '\0' || *end != '\0' || errno) {
		fprintf(stderr, "vhdxwrite: '%s' is not a number\n", s);
		exit(2);
	}
	return v;
}

static int create(int argc, char **argv)
{
	struct vhdx_create_options o;
	struct error err;

	if (argc < 5)
		return 2;
	memset(&o, 0, sizeof(o));
	o.size = number(argv[3]);
	o.type = strcmp(argv[4], "fixed") == 0	   ? VHD_TYPE_FIXED
		 : strcmp(argv[4], "dynamic") == 0 ? VHD_TYPE_DYNAMIC
						   : VHD_TYPE_DIFFERENCING;
	o.block_size = argc > 5 ? (uint32_t)number(argv[5]) : 0;
	o.logical_sector_size = argc > 6 ? (uint32_t)number(argv[6]) : 0;
	o.physical_sector_size = argc > 7 ? (uint32_t)number(argv[7]) : 0;
	error_clear(&err);
	return vhdx_create(argv[2], &o, &err) < 0 ? fail(&err) : 0;
}

static int diff(int argc, char **argv)
{
	struct pathmap *map = NULL;
	struct error err;
	int rc;

	if (argc < 4)
		return 2;
	error_clear(&err);
	if (argc > 4) {
		map = pathmap_new();
		if (!map || pathmap_add_list(map, argv[4], &err) < 0)
			return fail(&err);
	}
	rc = vhdx_create_differencing(argv[2], argv[3], map, &err);
	pathmap_free(map);
	return rc < 0 ? fail(&err) : 0;
}

static int write_list(int argc, char **argv)
{
	struct vhdx *vhdx = NULL;
	struct error err;
	int src, rc = 0;

	if (argc < 4)
		return 2;
	src = fsutil_open_source(argv[3], false);
	if (src < 0) {
		fprintf(stderr, "vhdxwrite: cannot open '%s'\n", argv[3]);
		return 1;
	}
	error_clear(&err);
	if (vhdx_open(&vhdx, argv[2], VHDX_OPEN_WRITE, &err) < 0) {
		close(src);
		return fail(&err);
	}
	for (int i = 4; i < argc && rc == 0; i++) {
		unsigned long long offset, length, from;
		uint8_t *buf;
		int n = sscanf(argv[i], "%llu,%llu,%llu", &offset, &length, &from);

		if (n < 2) {
			fprintf(stderr, "vhdxwrite: bad write '%s'\n", argv[i]);
			rc = 2;
			break;
		}
		if (n < 3)
			from = offset;
		buf = malloc(length ? length : 1);
		if (!buf || fsutil_pread_full(src, buf, length, from) < 0) {
			fprintf(stderr, "vhdxwrite: cannot read %llu bytes of '%s'\n", length,
				argv[3]);
			free(buf);
			rc = 1;
			break;
		}
		if (vhdx_write(vhdx, buf, length, offset, &err) < 0)
			rc = fail(&err);
		free(buf);
	}
	if (rc == 0 && vhdx_flush(vhdx, &err) < 0)
		rc = fail(&err);
	vhdx_close(vhdx);
	close(src);
	return rc;
}

static int pattern(int argc, char **argv)
{
	struct vhdx *vhdx = NULL;
	struct error err;
	unsigned long long sector, count;
	uint64_t index = 0, first = argc > 4 ? number(argv[4]) : 0;
	FILE *plan;
	int rc = 0;

	if (argc < 4)
		return 2;
	plan = fopen(argv[3], "r");
	if (!plan) {
		fprintf(stderr, "vhdxwrite: cannot open '%s'\n", argv[3]);
		return 1;
	}
	error_clear(&err);
	if (vhdx_open(&vhdx, argv[2], VHDX_OPEN_WRITE, &err) < 0) {
		fclose(plan);
		return fail(&err);
	}
	while (rc == 0 && fscanf(plan, "%llu %llu", &sector, &count) == 2) {
		uint32_t logical = vhdx_logical_sector_size(vhdx);
		uint8_t *buf;

		if (index++ < first)
			continue;
		buf = malloc(count * logical);
		if (!buf) {
			rc = 1;
			break;
		}
		for (uint64_t s = 0; s < count; s++)
			for (uint32_t at = 0; at < logical; at += 16) {
				uint64_t mark[2] = {index, sector + s}; /* index is i + 1 */

				memcpy(buf + s * logical + at, mark, 16);
			}
		if (vhdx_write(vhdx, buf, count * logical, sector * logical, &err) < 0)
			rc = fail(&err);
		else
			printf("%" PRIu64 "\n", index - 1);
		fflush(stdout);
		free(buf);
	}
	if (rc == 0 && vhdx_flush(vhdx, &err) < 0)
		rc = fail(&err);
	vhdx_close(vhdx);
	fclose(plan);
	return rc;
}

int main(int argc, char **argv)
{
	struct vhdx *vhdx = NULL;
	struct error err;
	int rc;

	fail_setup();
	if (argc < 3) {
		fprintf(stderr, "usage: vhdxwrite create|diff|write|pattern|open FILE [ARGS]\n");
		return 2;
	}
	if (strcmp(argv[1], "create") == 0) {
		rc = create(argc, argv);
	} else if (strcmp(argv[1], "diff") == 0) {
		rc = diff(argc, argv);
	} else if (strcmp(argv[1], "write") == 0) {
		rc = write_list(argc, argv);
	} else if (strcmp(argv[1], "pattern") == 0) {
		rc = pattern(argc, argv);
	} else if (strcmp(argv[1], "open") == 0) {
		error_clear(&err);
		rc = vhdx_open(&vhdx, argv[2], VHDX_OPEN_WRITE, &err) < 0 ? fail(&err) : 0;
		vhdx_close(vhdx);
	} else {
		fprintf(stderr, "vhdxwrite: unknown command '%s'\n", argv[1]);
		rc = 2;
	}
	if (rc == 2)
		fprintf(stderr, "vhdxwrite: bad arguments\n");
	count_report();
	undo_forget();
	free(undo);
	return rc;
}
