/*
 * Unit tests of core/fsutil's copies: a file copied by its runs of data keeps
 * its bytes and its holes, between file systems too (where the kernel refuses
 * copy_file_range), and a source shorter than asked is reported. The expected
 * content is what was written to the source; the holes are the source's own,
 * as SEEK_DATA/SEEK_HOLE report them.
 *
 * And its removal of a tree: everything under it goes, a link as itself
 * (what it names stays), and what cannot go (an immutable folder) is named,
 * file by file, by its path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "support.h"

#define MiB (1u << 20)
#define SIZE (40 * MiB)

/* A file in @dir of SIZE bytes: data at 0 (1 MiB), 9 MiB (12 MiB: over a copy piece) and at
 * its last byte, holes between. Returns its descriptor, open for reading. */
static int sparse_source(const char *dir, char *path, size_t cap)
{
	static const uint64_t at[] = {0, 9 * MiB, SIZE - 1};
	static const uint64_t len[] = {MiB, 12 * MiB, 1};
	int fd;

	snprintf(path, cap, "%s/impex-fsutil-XXXXXX", dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	for (size_t i = 0; i < 3; i++) {
		uint8_t *buf = malloc(len[i]);

		assert_non_null(buf);
		for (uint64_t k = 0; k < len[i]; k++)
			buf[k] = (uint8_t)((at[i] + k) * 2654435761u >> 13) | 1;
		assert_int_equal(fsutil_pwrite_full(fd, buf, len[i], at[i]), 0);
		free(buf);
	}
	assert_int_equal(fsync(fd), 0);
	return fd;
}

/* Whether byte ranges of @a and @b are the same, and their data runs. */
static void assert_same(int a, int b)
{
	uint8_t *x = malloc(MiB), *y = malloc(MiB);
	struct stat sa, sb;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	assert_int_equal(sa.st_size, sb.st_size);
	for (off_t at = 0; at < sa.st_size; at += MiB) {
		assert_int_equal(fsutil_pread_full(a, x, MiB, (uint64_t)at), 0);
		assert_int_equal(fsutil_pread_full(b, y, MiB, (uint64_t)at), 0);
		assert_memory_equal(x, y, MiB);
	}
	/* The copy's data runs lie within the source's: holes stayed holes. */
	for (off_t at = 0; at < sa.st_size;) {
		off_t data = lseek(b, at, SEEK_DATA), hole;

		if (data < 0)
			break;
		hole = lseek(b, data, SEEK_HOLE);
		assert_true(lseek(a, data, SEEK_DATA) == data);
		assert_true(lseek(a, data, SEEK_HOLE) >= hole);
		at = hole;
	}
	assert_true(sb.st_blocks <= sa.st_blocks + 64);
	free(x);
	free(y);
}

static int count(void *ctx, uint64_t bytes)
{
	*(uint64_t *)ctx += bytes;
	return 0;
}

/* A sparse file of @from_dir copied into a new file of @to_dir. */
static void copy_between(const char *from_dir, const char *to_dir)
{
	char src[256], dst[256];
	int in = sparse_source(from_dir, src, sizeof(src)), out;
	uint64_t told = 0;

	snprintf(dst, sizeof(dst), "%s/impex-fsutil-XXXXXX", to_dir);
	out = mkstemp(dst);
	assert_true(out >= 0);
	assert_int_equal(fsutil_copy_data(in, out, SIZE, count, &told), 0);
	assert_same(in, out);
	/* Progress counts every byte once, holes included. */
	assert_int_equal(told, SIZE);
	close(out);
	unlink(dst);
	close(in);
	unlink(src);
}

/* Within one file system: copy_file_range does the copy. */
static void test_copy_keeps_bytes_and_holes(void **state)
{
	(void)state;
	copy_between("/var/tmp", "/var/tmp");
}

/* From tmpfs to the disk's file system: the kernel refuses copy_file_range (EXDEV), the copy
 * is made by hand. */
static void test_copy_between_file_systems(void **state)
{
	struct stat a, b;

	(void)state;
	if (stat("/dev/shm", &a) < 0 || stat("/var/tmp", &b) < 0 || a.st_dev == b.st_dev)
		skip();
	copy_between("/dev/shm", "/var/tmp");
	copy_between("/var/tmp", "/dev/shm");
}

/* A source shorter than the size asked for: -ENODATA, not a copy padded with zeros. */
static void test_short_source(void **state)
{
	char src[256], dst[256];
	int in, out;

	(void)state;
	in = sparse_source("/var/tmp", src, sizeof(src));
	snprintf(dst, sizeof(dst), "/var/tmp/impex-fsutil-XXXXXX");
	out = mkstemp(dst);
	assert_true(out >= 0);
	assert_int_equal(fsutil_copy_data(in, out, SIZE + 1, NULL, NULL), -ENODATA);
	assert_int_equal(fsutil_copy_range(in, out, SIZE - 1, 2), -ENODATA);
	close(out);
	unlink(dst);
	close(in);
	unlink(src);
}

/* fsutil_copy_file: a new file whole under its name, the same bytes and holes. */
static void test_copy_file(void **state)
{
	char src[256], dst[256];
	int in, out;

	(void)state;
	in = sparse_source("/var/tmp", src, sizeof(src));
	assert_true(snprintf(dst, sizeof(dst), "%s.copy", src) < (int)sizeof(dst));
	assert_int_equal(fsutil_copy_file(src, dst), 0);
	out = open(dst, O_RDONLY);
	assert_true(out >= 0);
	assert_same(in, out);
	close(out);
	unlink(dst);
	close(in);
	unlink(src);
}

/* fsutil_remove_tree: the tree goes, to any depth (deeper than the 64 levels its own walk
 * once stopped at); a link goes as itself. */
static void test_remove_tree(void **state)
{
	const char *dir = *state;
	char outside[512], tree[512], deep[1024];
	struct stat st;

	assert_true(snprintf(outside, sizeof(outside), "%s/outside", dir) < (int)sizeof(outside));
	assert_true(snprintf(tree, sizeof(tree), "%s/tree", dir) < (int)sizeof(tree));
	assert_int_equal(mkdir(outside, 0755), 0);
	support_write_text(support_path(outside, "keep"), "not in the tree");
	assert_int_equal(mkdir(tree, 0755), 0);
	strcpy(deep, tree);
	for (int i = 0; i < 100; i++) {
		assert_true(strlen(deep) + 3 < sizeof(deep));
		strcat(deep, "/d");
		assert_int_equal(mkdir(deep, 0755), 0);
		support_write_text(support_path(deep, "f"), "a file");
	}
	assert_int_equal(symlink(outside, support_path(tree, "to-outside")), 0);
	assert_int_equal(symlink(support_path(outside, "keep"), support_path(tree, "to-keep")), 0);
	assert_int_equal(fsutil_remove_tree(tree), 0);
	assert_int_equal(lstat(tree, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(support_path(outside, "keep"), &st), 0);
	/* A link named alone goes, not what it names; a name that is not there is no fault. */
	assert_int_equal(symlink(outside, tree), 0);
	assert_int_equal(fsutil_remove_tree(tree), 0);
	assert_int_equal(lstat(tree, &st), -1);
	assert_int_equal(stat(support_path(outside, "keep"), &st), 0);
	assert_int_equal(fsutil_remove_tree(tree), 0);
}

/* What fsutil_remove_tree_noting() told: "path (errno)" lines. */
struct told {
	char text[2048];
};

static void note(void *ctx, const char *path, int code)
{
	struct told *t = ctx;
	size_t n = strlen(t->text);

	assert_true(snprintf(t->text + n, sizeof(t->text) - n, "%s (%d)\n", path, code) <
		    (int)(sizeof(t->text) - n));
}

/* Set or clear the immutable flag of @path; false where the file system has none. */
static bool immutable(const char *path, bool on)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY), flags = 0;
	bool done;

	assert_true(fd >= 0);
	done = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
	flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
	done = done && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
	close(fd);
	return done;
}

/* fsutil_remove_tree_noting: each file that stays is named by its path, then its folders, each
 * with the errno of its own removal (an immutable folder refuses with EPERM). */
static void test_remove_tree_noting(void **state)
{
	const char *dir = *state;
	char tree[512], stuck[600], expected[2048];
	struct told told = {{0}};
	struct stat st;

	assert_true(snprintf(tree, sizeof(tree), "%s/tree", dir) < (int)sizeof(tree));
	assert_true(snprintf(stuck, sizeof(stuck), "%s/stuck", tree) < (int)sizeof(stuck));
	assert_int_equal(mkdir(tree, 0755), 0);
	support_write_text(support_path(tree, "goes"), "a file");
	assert_int_equal(mkdir(stuck, 0755), 0);
	support_write_text(support_path(stuck, "a.vsv"), "state");
	if (!immutable(stuck, true))
		skip();
	assert_int_equal(fsutil_remove_tree_noting(tree, note, &told), -EPERM);
	assert_true(immutable(stuck, false));
	assert_true(snprintf(expected, sizeof(expected), "%s/a.vsv (%d)\n%s (%d)\n%s (%d)\n", stuck,
			     EPERM, stuck, EPERM, tree, ENOTEMPTY) < (int)sizeof(expected));
	assert_string_equal(told.text, expected);
	assert_int_equal(lstat(support_path(tree, "goes"), &st), -1);
	assert_int_equal(stat(support_path(stuck, "a.vsv"), &st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_keeps_bytes_and_holes),
		cmocka_unit_test(test_copy_between_file_systems),
		cmocka_unit_test(test_short_source),
		cmocka_unit_test(test_copy_file),
		cmocka_unit_test_setup_teardown(test_remove_tree, support_setup_dir,
						support_teardown_dir),
		cmocka_unit_test_setup_teardown(test_remove_tree_noting, support_setup_dir,
						support_teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
