/*
 * Unit tests of core/record: the store's record of its folders outside the
 * roots. What record_add() writes is read back by the test itself (the
 * documented text, the file's and folder's modes); a record or folder that
 * someone else could have written is refused; damaged text is refused whole.
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
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "record.h"
#include "support.h"

static int parse(const char *text, char ***folders, size_t *count)
{
	struct error err;
	int rc;

	error_clear(&err);
	rc = record_parse(text, strlen(text), "test", folders, count, &err);
	if (rc < 0)
		assert_true(err.message[0] != '\0');
	return rc;
}

static void test_parses(void **state)
{
	char **folders = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(parse("impex-folders 1\n/srv/disks\n/mnt/a b\n", &folders, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(folders[0], "/srv/disks");
	assert_string_equal(folders[1], "/mnt/a b");
	record_free(folders, n);
	assert_int_equal(parse("impex-folders 1\n", &folders, &n), 0);
	assert_int_equal(n, 0);
	record_free(folders, n);
}

static void test_refuses_damage(void **state)
{
	static const char *const bad[] = {
		"",
		"impex-folders 2\n/a\n",
		"/a\n",
		"impex-folders 1\nrelative\n",
		"impex-folders 1\n/a/../etc\n",
		"impex-folders 1\n/a/./b\n",
		"impex-folders 1\n\n",
		"impex-folders 1\n/cut short",
	};
	char **folders = NULL;
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &folders, &n), -EINVAL);
		assert_null(folders);
		assert_int_equal(n, 0);
	}
}

/* The whole of @path as a new string. */
static char *slurp(const char *path)
{
	char *text = calloc(1, 4096);
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	assert_non_null(text);
	assert_true(fread(text, 1, 4095, f) < 4095);
	fclose(f);
	return text;
}

static void test_adds_and_reads_back(void **state)
{
	const char *root = *state;
	char **folders = NULL;
	size_t n = 0;
	struct error err;
	struct stat st;
	char *text;
	int fd = open(root, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	error_clear(&err);
	/* No record yet: none. */
	assert_int_equal(record_read(fd, root, &folders, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(record_add(fd, root, "/srv/one", &err), 0);
	assert_int_equal(record_add(fd, root, "/srv/two", &err), 0);
	assert_int_equal(record_add(fd, root, "/srv/one", &err), 0); /* listed already */
	text = slurp(support_path(root, ".impex-journals/folders"));
	assert_string_equal(text, "impex-folders 1\n/srv/one\n/srv/two\n");
	free(text);
	assert_int_equal(stat(support_path(root, ".impex-journals"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(support_path(root, ".impex-journals/folders"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(access(support_path(root, ".impex-journals/.folders.new"), F_OK), -1);
	assert_int_equal(record_read(fd, root, &folders, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(folders[1], "/srv/two");
	record_free(folders, n);
	/* A path that cannot stand on a line of its own is not recorded. */
	assert_int_equal(record_add(fd, root, "/srv/a\nb", &err), -EINVAL);
	assert_int_equal(record_add(fd, root, "relative", &err), -EINVAL);
	close(fd);
}

static void test_refuses_what_others_could_write(void **state)
{
	const char *root = *state;
	const char *record = support_path(root, ".impex-journals/folders");
	char **folders = NULL;
	size_t n = 0;
	struct error err;
	int fd = open(root, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	error_clear(&err);
	assert_int_equal(record_add(fd, root, "/srv/one", &err), 0);
	/* Readable or writable by others: not used, and not added to. */
	assert_int_equal(chmod(record, 0644), 0);
	assert_int_equal(record_read(fd, root, &folders, &n, &err), -EPERM);
	assert_non_null(strstr(err.message, "0644"));
	assert_int_equal(record_add(fd, root, "/srv/two", &err), -EPERM);
	assert_int_equal(chmod(record, 0600), 0);
	/* A second link: someone may change it elsewhere. */
	assert_int_equal(link(record, support_path(root, "other-name")), 0);
	assert_int_equal(record_read(fd, root, &folders, &n, &err), -EPERM);
	assert_int_equal(unlink(support_path(root, "other-name")), 0);
	/* The folder open to others. */
	assert_int_equal(chmod(support_path(root, ".impex-journals"), 0755), 0);
	assert_int_equal(record_read(fd, root, &folders, &n, &err), -EPERM);
	assert_int_equal(chmod(support_path(root, ".impex-journals"), 0700), 0);
	/* A link in place of the record. */
	assert_int_equal(rename(record, support_path(root, "real")), 0);
	assert_int_equal(symlink("../real", record), 0);
	assert_true(record_read(fd, root, &folders, &n, &err) < 0);
	assert_null(folders);
	/* Someone else's, when this test runs as root. */
	if (geteuid() == 0) {
		assert_int_equal(unlink(record), 0);
		assert_int_equal(rename(support_path(root, "real"), record), 0);
		assert_int_equal(chown(record, 1, 1), 0);
		assert_int_equal(record_read(fd, root, &folders, &n, &err), -EPERM);
		assert_int_equal(record_add(fd, root, "/srv/two", &err), -EPERM);
		assert_int_equal(chown(record, 0, 0), 0);
		assert_int_equal(chown(support_path(root, ".impex-journals"), 1, 1), 0);
		assert_int_equal(record_read(fd, root, &folders, &n, &err), -EPERM);
		assert_int_equal(record_add(fd, root, "/srv/two", &err), -EPERM);
	}
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parses),
		cmocka_unit_test(test_refuses_damage),
		cmocka_unit_test_setup_teardown(test_adds_and_reads_back, support_setup_dir,
						support_teardown_dir),
		cmocka_unit_test_setup_teardown(test_refuses_what_others_could_write,
						support_setup_dir, support_teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
