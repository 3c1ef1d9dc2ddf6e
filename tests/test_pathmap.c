/*
 * Unit tests of core/pathmap: Windows paths as Hyper-V writes them, mapped to
 * Linux folders and back.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "error.h"
#include "pathmap.h"
#include "support.h"

static void normalized(const char *in, const char *want)
{
	char out[256];

	assert_int_equal(pathmap_normalize_windows(in, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_windows_absolute(void **state)
{
	(void)state;
	assert_true(pathmap_is_windows_absolute("C:\\VMs"));
	assert_true(pathmap_is_windows_absolute("d:/disks/a.vhd"));
	assert_true(pathmap_is_windows_absolute("C:"));
	assert_true(pathmap_is_windows_absolute("\\\\server\\share\\x"));
	assert_false(pathmap_is_windows_absolute("C:relative"));
	assert_false(pathmap_is_windows_absolute(".\\base.vhd"));
	assert_false(pathmap_is_windows_absolute("\\rooted"));
	assert_false(pathmap_is_windows_absolute("\\\\\\x"));
	assert_false(pathmap_is_windows_absolute("/srv/vms"));
	assert_false(pathmap_is_windows_absolute(""));
}

static void test_normalize(void **state)
{
	char out[256], small[8];

	(void)state;
	normalized("c:/VMs//a\\.\\b\\..\\disk.vhd", "C:\\VMs\\a\\disk.vhd");
	normalized("C:\\", "C:\\");
	normalized("C:", "C:\\");
	normalized("C:\\VMs\\", "C:\\VMs\\");
	normalized("\\\\srv\\share\\x\\..\\y", "\\\\srv\\share\\y");
	assert_int_equal(pathmap_normalize_windows("C:\\..\\x", out, sizeof(out)), -EINVAL);
	assert_int_equal(pathmap_normalize_windows("\\\\srv", out, sizeof(out)), -EINVAL);
	assert_int_equal(pathmap_normalize_windows("relative\\x", out, sizeof(out)), -EINVAL);
	assert_int_equal(pathmap_normalize_windows("C:\\a-long-name", small, sizeof(small)),
			 -ENAMETOOLONG);
}

static void test_map_both_ways(void **state)
{
	struct pathmap *map = pathmap_new();
	struct error err;
	char out[PATH_MAX];

	(void)state;
	assert_int_equal(pathmap_add_list(map, "C:\\=/mnt/c;;D:\\Hyper-V\\VMs=/srv/vms/", &err), 0);
	assert_int_equal(pathmap_add(map, "\\\\nas\\vm=/net/nas", &err), 0);
	assert_int_equal(pathmap_count(map), 3);

	/* the longest Windows prefix wins, compared without case, whole components */
	assert_int_equal(pathmap_to_linux(map, "d:\\hyper-v\\vms\\a\\disk.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/vms/a/disk.vhd");
	assert_int_equal(pathmap_to_linux(map, "D:\\Hyper-V\\VMs", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/vms");
	assert_int_equal(pathmap_to_linux(map, "D:\\Hyper-V\\VMsOld\\x", out, sizeof(out)), -ENOENT);
	assert_int_equal(pathmap_to_linux(map, "C:\\Users\\x.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, "/mnt/c/Users/x.vhd");
	assert_int_equal(pathmap_to_linux(map, "\\\\NAS\\VM\\d.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, "/net/nas/d.vhd");
	assert_int_equal(pathmap_to_linux(map, "E:\\x", out, sizeof(out)), -ENOENT);
	assert_int_equal(pathmap_to_linux(NULL, "C:\\x", out, sizeof(out)), -ENOENT);
	assert_int_equal(pathmap_to_linux(map, "C:\\..\\x", out, sizeof(out)), -EINVAL);

	assert_int_equal(pathmap_to_windows(map, "/srv/vms/a/disk.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, "D:\\Hyper-V\\VMs\\a\\disk.vhd");
	assert_int_equal(pathmap_to_windows(map, "/mnt/c/x", out, sizeof(out)), 0);
	assert_string_equal(out, "C:\\x");
	assert_int_equal(pathmap_to_windows(map, "/srv/vmsx/a", out, sizeof(out)), -ENOENT);
	assert_int_equal(pathmap_to_windows(map, "relative", out, sizeof(out)), -ENOENT);
	pathmap_free(map);
}

static void test_bad_entries(void **state)
{
	struct pathmap *map = pathmap_new();
	struct error err;

	(void)state;
	assert_int_equal(pathmap_add(map, "C:\\VMs", &err), -EINVAL);
	assert_non_null(strstr(err.message, "no '='"));
	assert_int_equal(pathmap_add(map, "=/srv", &err), -EINVAL);
	assert_int_equal(pathmap_add(map, "VMs=/srv", &err), -EINVAL);
	assert_non_null(strstr(err.message, "not an absolute Windows path"));
	assert_int_equal(pathmap_add(map, "C:\\VMs=srv", &err), -EINVAL);
	assert_non_null(strstr(err.message, "not an absolute Linux path"));
	assert_int_equal(pathmap_add_list(map, "C:\\=/c;bad", &err), -EINVAL);
	assert_int_equal(pathmap_count(map), 1);
	pathmap_free(map);
	pathmap_free(NULL);
}

static void test_relative_paths(void **state)
{
	char out[PATH_MAX];

	(void)state;
	assert_string_equal(pathmap_basename("C:\\VMs\\disk.vhd"), "disk.vhd");
	assert_string_equal(pathmap_basename("/srv/a.vhd"), "a.vhd");
	assert_string_equal(pathmap_basename("plain"), "plain");
	assert_int_equal(pathmap_join_relative("/srv/vms", ".\\base.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/vms/base.vhd");
	assert_int_equal(pathmap_join_relative("/srv/vms", "..\\disks\\b.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/vms/../disks/b.vhd");
	assert_int_equal(pathmap_join_relative("/srv", "C:\\x", out, sizeof(out)), -EINVAL);
	assert_int_equal(pathmap_join_relative("/srv", "", out, sizeof(out)), -EINVAL);
	assert_int_equal(pathmap_join_relative("/srv", "\\x", out, sizeof(out)), -EINVAL);

	assert_int_equal(pathmap_windows_relative("/srv/vms", "/srv/vms/base.vhd", out, sizeof(out)),
			 0);
	assert_string_equal(out, ".\\base.vhd");
	assert_int_equal(pathmap_windows_relative("/srv/vms/snaps", "/srv/disks/a/b.vhd", out,
						  sizeof(out)),
			 0);
	assert_string_equal(out, "..\\..\\disks\\a\\b.vhd");
	assert_int_equal(pathmap_windows_relative("/", "/b.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, ".\\b.vhd");
	assert_int_equal(pathmap_windows_relative("rel", "/b.vhd", out, sizeof(out)), -EINVAL);
}

static void test_find_case_insensitive(void **state)
{
	char *dir = support_tempdir();
	char out[PATH_MAX], want[PATH_MAX], sub[PATH_MAX];
	FILE *f;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/Virtual Hard Disks", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_true(snprintf(want, sizeof(want), "%s/Base.VHD", sub) < (int)sizeof(want));
	f = fopen(want, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(pathmap_find_case_insensitive(support_path(dir, "virtual hard disks/base.vhd"),
						       out, sizeof(out)),
			 0);
	assert_string_equal(out, want);
	assert_int_equal(pathmap_find_case_insensitive(want, out, sizeof(out)), 0);
	assert_string_equal(out, want);
	assert_int_equal(pathmap_find_case_insensitive(support_path(dir, "VIRTUAL HARD DISKS/none.vhd"),
						       out, sizeof(out)),
			 -ENOENT);
	assert_int_equal(pathmap_find_case_insensitive("relative/x", out, sizeof(out)), -ENOENT);
	support_remove_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windows_absolute),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_map_both_ways),
		cmocka_unit_test(test_bad_entries),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_find_case_insensitive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
