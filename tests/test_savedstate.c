/*
 * Unit tests of core/savedstate and core/rollback: which files of a
 * saved-state folder a copy carries (regular files with plain, visible
 * names; no link, FIFO or folder) and under which names (each old GUID
 * renamed, anywhere, in the case of the old); a copy made new, never over a
 * name nor through a link, the .vsv last, and removed whole when its
 * rollback says the operation failed. Expected names are written out here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "error.h"
#include "rollback.h"
#include "savedstate.h"
#include "support.h"

#define OLD	  "0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9"
#define OLD_LOWER "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9"
#define NEW	  "ABCDEF12-3456-4789-8ABC-DEF012345678"
#define NEW_LOWER "abcdef12-3456-4789-8abc-def012345678"

/* A saved-state folder "@dir/state" with every kind of entry; its path. */
static const char *hostile_state(const char *dir)
{
	static char state[PATH_MAX];

	assert_true(snprintf(state, sizeof(state), "%s/state", dir) < (int)sizeof(state));
	assert_int_equal(mkdir(state, 0755), 0);
	support_write_text(support_path(state, OLD ".vsv"), "vsv");
	support_write_text(support_path(state, OLD_LOWER ".bin"), "bin");
	support_write_text(support_path(state, "{" OLD "}-" OLD ".txt"), "twice");
	support_write_text(support_path(state, "notes"), "kept as it is");
	support_write_text(support_path(state, ".rsync-temp.bin"), "hidden");
	support_write_text(support_path(state, "bell\007.bin"), "a control character");
	support_write_text(support_path(dir, "secret"), "not the state's");
	assert_int_equal(symlink(support_path(dir, "secret"), support_path(state, "link.bin")), 0);
	assert_int_equal(mkfifo(support_path(state, "fifo.bin"), 0600), 0);
	assert_int_equal(mkdir(support_path(state, "sub.vsv"), 0755), 0);
	return state;
}

static void test_files(void **state)
{
	const char *dir = *state, *folder = hostile_state(dir);
	struct savedstate_rename rename = {OLD, NEW};
	struct savedstate_file *files;
	struct error err;
	size_t count;
	static const char *const expected[][2] = {
		{OLD ".vsv", NEW ".vsv"},
		{OLD_LOWER ".bin", NEW_LOWER ".bin"},
		{"notes", "notes"},
		{"{" OLD "}-" OLD ".txt", "{" NEW "}-" NEW ".txt"},
	};

	assert_int_equal(savedstate_files(folder, &rename, 1, &files, &count, &err), 0);
	assert_int_equal(count, 4);
	for (size_t i = 0; i < count; i++) {
		assert_string_equal(files[i].name, expected[i][0]);
		assert_string_equal(files[i].as, expected[i][1]);
	}
	assert_int_equal(files[2].size, strlen("kept as it is"));
	free(files);
	/* No renames: names as they are. */
	assert_int_equal(savedstate_files(folder, NULL, 0, &files, &count, &err), 0);
	assert_int_equal(count, 4);
	assert_string_equal(files[0].as, OLD ".vsv");
	free(files);
	/* The folder's own name is no link either. */
	assert_int_equal(symlink(folder, support_path(dir, "via-link")), 0);
	assert_int_equal(
		savedstate_files(support_path(dir, "via-link"), NULL, 0, &files, &count, &err),
		-ENOTDIR);
	assert_non_null(strstr(err.message, "via-link"));
}

static void test_copy(void **state)
{
	const char *dir = *state, *folder = hostile_state(dir);
	struct savedstate_rename rename = {OLD, NEW};
	struct rollback made = ROLLBACK_INIT;
	char to[PATH_MAX], *text;
	struct error err;
	struct stat st;

	assert_true(snprintf(to, sizeof(to), "%s/copy", dir) < (int)sizeof(to));
	assert_int_equal(savedstate_copy(folder, to, &rename, 1, &made, &err), 0);
	/* The folder first, the .vsv last. */
	assert_int_equal(made.count, 5);
	assert_string_equal(made.paths[0], to);
	assert_string_equal(made.paths[4], support_path(to, NEW ".vsv"));
	text = support_read_text(support_path(to, "{" NEW "}-" NEW ".txt"));
	assert_string_equal(text, "twice");
	free(text);
	assert_int_equal(stat(support_path(to, NEW_LOWER ".bin"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(lstat(support_path(to, "link.bin"), &st), -1);
	assert_int_equal(lstat(support_path(to, ".rsync-temp.bin"), &st), -1);
	/* The operation failed: everything it made goes, the folder too. */
	rollback_finish(&made, true, NULL, NULL);
	assert_int_equal(made.count, 0);
	assert_int_equal(lstat(to, &st), -1);
	assert_int_equal(lstat(support_path(folder, OLD ".vsv"), &st), 0);

	/* Into a folder that exists: never over a name; the folder is not the copy's. */
	assert_int_equal(mkdir(to, 0755), 0);
	support_write_text(support_path(to, NEW ".vsv"), "there before");
	assert_int_equal(savedstate_copy(folder, to, &rename, 1, &made, &err), -EEXIST);
	rollback_finish(&made, true, NULL, NULL);
	text = support_read_text(support_path(to, NEW ".vsv"));
	assert_string_equal(text, "there before");
	free(text);
	assert_int_equal(lstat(support_path(to, "notes"), &st), -1);

	/* A link where the folder should be is not written through. */
	assert_int_equal(symlink(support_path(dir, "elsewhere"), support_path(dir, "linked")), 0);
	assert_int_equal(mkdir(support_path(dir, "elsewhere"), 0755), 0);
	assert_int_equal(
		savedstate_copy(folder, support_path(dir, "linked"), &rename, 1, &made, &err),
		-ENOTDIR);
	rollback_finish(&made, true, NULL, NULL);
	assert_int_equal(rmdir(support_path(dir, "elsewhere")), 0);
}

/* A rollback kept on success forgets its paths, and removes through its caller's remover. */
static int removed_count;

static void count_removal(void *ctx, const char *path)
{
	(void)ctx;
	(void)path;
	removed_count++;
}

static void test_rollback(void **state)
{
	const char *dir = *state;
	struct rollback made = ROLLBACK_INIT;
	struct stat st;

	support_write_text(support_path(dir, "a"), "a");
	assert_int_equal(rollback_add(&made, support_path(dir, "a")), 0);
	rollback_finish(&made, false, NULL, NULL);
	assert_int_equal(stat(support_path(dir, "a"), &st), 0);
	assert_int_equal(rollback_add(&made, support_path(dir, "a")), 0);
	assert_int_equal(rollback_add(&made, support_path(dir, "b")), 0);
	rollback_finish(&made, true, count_removal, NULL);
	assert_int_equal(removed_count, 2);
	assert_int_equal(stat(support_path(dir, "a"), &st), 0);
	assert_null(made.paths);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, support_setup_dir, support_teardown_dir)
	const struct CMUnitTest tests[] = {
		T(test_files),
		T(test_copy),
		T(test_rollback),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
