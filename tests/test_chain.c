/*
 * Unit tests of core/chain: finding parents every way Hyper-V chains are
 * found, refusing broken chains, and merged reads checked against content
 * computed here, sector by sector, from the writes the test makes.
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

#include "chain.h"
#include "error.h"
#include "pathmap.h"
#include "support.h"
#include "vhd.h"

#define MiB (1024ull * 1024)

static void make_base(const char *path, uint64_t size)
{
	struct vhd_create_options o = { .type = VHD_TYPE_DYNAMIC, .size = size };
	struct error err;

	if (vhd_create(path, &o, &err) != 0)
		fail_msg("create %s: %s", path, err.message);
}

static void snapshot(const char *child, const char *parent, const struct pathmap *map)
{
	struct error err;

	if (vhd_create_differencing(child, parent, map, &err) != 0)
		fail_msg("snapshot %s: %s", child, err.message);
}

/* Write @len pseudo-random bytes (from @seed) at @offset of @path, and the same into @mirror. */
static void write_at(const char *path, uint64_t offset, size_t len, uint32_t seed, uint8_t *mirror)
{
	uint8_t *data = malloc(len);
	struct vhd *vhd;
	struct error err;

	assert_non_null(data);
	support_fill(data, len, seed);
	assert_int_equal(vhd_open(&vhd, path, VHD_OPEN_WRITE, &err), 0);
	if (vhd_write(vhd, data, len, offset, &err) != 0)
		fail_msg("write %s: %s", path, err.message);
	vhd_close(vhd);
	if (mirror)
		memcpy(mirror + offset, data, len);
	free(data);
}

static struct chain *open_ok(const char *path, const struct chain_options *o)
{
	struct chain *chain = NULL;
	struct error err;

	if (chain_open(&chain, path, o, &err) != 0)
		fail_msg("chain_open %s: %s", path, err.message);
	return chain;
}

static int open_fails(const char *path, const struct chain_options *o, const char *needle)
{
	struct chain *chain = NULL;
	struct error err;
	int rc = chain_open(&chain, path, o, &err);

	assert_true(rc < 0);
	assert_null(chain);
	if (!strstr(err.message, needle))
		fail_msg("message '%s' lacks '%s'", err.message, needle);
	return rc;
}

static void assert_how(const struct chain *chain, unsigned level, const char *prefix)
{
	const char *how = chain_level_how(chain, level);

	if (strncmp(how, prefix, strlen(prefix)) != 0)
		fail_msg("level %u found by '%s', expected '%s...'", level, how, prefix);
}

/* Rewrite the header's locator table of @path with zeros (checksum fixed). */
static void drop_locators(const char *path)
{
	uint8_t zero[8 * 24] = { 0 };

	support_patch(path, 512 + 576, zero, sizeof(zero));
	support_fix_header_checksum(path);
}

static void test_single_disk(void **state)
{
	const char *p = support_path(*state, "base.vhd");
	struct chain *chain;

	make_base(p, 4 * MiB);
	chain = open_ok(p, NULL);
	assert_int_equal(chain_depth(chain), 1);
	assert_int_equal(chain_size(chain), 4 * MiB);
	assert_string_equal(chain_level_how(chain, 0), "");
	assert_int_equal(chain_warning_count(chain), 0);
	chain_close(chain);
}

static void test_relative_locator_survives_move(void **state)
{
	char *dir = *state;
	char a[PATH_MAX], b[PATH_MAX];
	struct chain *chain;

	assert_true(snprintf(a, sizeof(a), "%s/a", dir) < (int)sizeof(a));
	assert_true(snprintf(b, sizeof(b), "%s/b", dir) < (int)sizeof(b));
	assert_int_equal(mkdir(a, 0755), 0);
	make_base(support_path(a, "base.vhd"), 4 * MiB);
	snapshot(support_path(a, "child.vhd"), support_path(a, "base.vhd"), NULL);
	assert_int_equal(rename(a, b), 0);
	chain = open_ok(support_path(b, "child.vhd"), NULL);
	assert_int_equal(chain_depth(chain), 2);
	assert_how(chain, 1, "relative locator W2ru '.\\base.vhd'");
	chain_close(chain);
}

static void test_absolute_locator_through_pathmap(void **state)
{
	char *dir = *state;
	char vms[PATH_MAX], moved[PATH_MAX], spec[PATH_MAX + 16], other[PATH_MAX];
	struct pathmap *map = pathmap_new();
	struct chain_options o = { 0 };
	struct chain *chain;
	struct error err;

	assert_true(snprintf(vms, sizeof(vms), "%s/vms", dir) < (int)sizeof(vms));
	assert_true(snprintf(moved, sizeof(moved), "%s/restored", dir) < (int)sizeof(moved));
	assert_true(snprintf(other, sizeof(other), "%s/elsewhere", dir) < (int)sizeof(other));
	assert_int_equal(mkdir(vms, 0755), 0);
	assert_int_equal(mkdir(other, 0755), 0);
	assert_true(snprintf(spec, sizeof(spec), "C:\\VMs=%s", vms) < (int)sizeof(spec));
	assert_int_equal(pathmap_add(map, spec, &err), 0);
	make_base(support_path(vms, "base.vhd"), 4 * MiB);
	/* The child elsewhere: its relative locator is "..\vms\base.vhd". */
	snapshot(support_path(other, "child.vhd"), support_path(vms, "base.vhd"), map);
	pathmap_free(map);

	/* The parent's folder restored under another name: relative and MacX
	 * locators break, the W2ku path C:\VMs\base.vhd maps to the new place. */
	assert_int_equal(rename(vms, moved), 0);
	map = pathmap_new();
	assert_true(snprintf(spec, sizeof(spec), "C:\\VMs=%s", moved) < (int)sizeof(spec));
	assert_int_equal(pathmap_add(map, spec, &err), 0);
	o.pathmap = map;
	chain = open_ok(support_path(other, "child.vhd"), &o);
	assert_how(chain, 1, "absolute locator W2ku 'C:\\VMs\\base.vhd' through the path map");
	chain_close(chain);
	/* Without the map it cannot be found, and the message lists what was tried. */
	assert_int_equal(open_fails(support_path(other, "child.vhd"), NULL, "cannot find the parent"),
			 -ENOENT);
	open_fails(support_path(other, "child.vhd"), NULL, "no path map entry");
	pathmap_free(map);
}

static void test_macx_locator(void **state)
{
	char *dir = *state;
	char disks[PATH_MAX], snaps[PATH_MAX], moved[PATH_MAX];
	struct chain *chain;

	assert_true(snprintf(disks, sizeof(disks), "%s/disks", dir) < (int)sizeof(disks));
	assert_true(snprintf(snaps, sizeof(snaps), "%s/snaps", dir) < (int)sizeof(snaps));
	assert_true(snprintf(moved, sizeof(moved), "%s/deeper/snaps", dir) < (int)sizeof(moved));
	assert_int_equal(mkdir(disks, 0755), 0);
	assert_int_equal(mkdir(snaps, 0755), 0);
	assert_int_equal(mkdir(support_path(dir, "deeper"), 0755), 0);
	make_base(support_path(disks, "base.vhd"), 4 * MiB);
	snapshot(support_path(snaps, "child.vhd"), support_path(disks, "base.vhd"), NULL);
	/* Moving the child one level deeper breaks "..\disks\base.vhd"; the
	 * absolute Linux path in the MacX locator still holds. */
	assert_int_equal(rename(snaps, moved), 0);
	chain = open_ok(support_path(moved, "child.vhd"), NULL);
	assert_how(chain, 1, "absolute locator MacX");
	chain_close(chain);
}

/* How a level was found is told whole, however long the path it names. */
static void test_long_how(void **state)
{
	char *dir = *state;
	char disks[PATH_MAX], snaps[PATH_MAX], moved[PATH_MAX], real[PATH_MAX];
	char name[201], expected[PATH_MAX + 64];
	struct chain *chain;

	/* Three folders of 200 characters: the parent's path is over 600. */
	memset(name, 'd', 200);
	name[200] = '\0';
	assert_true(snprintf(disks, sizeof(disks), "%s/%s", dir, name) < (int)sizeof(disks));
	assert_int_equal(mkdir(disks, 0755), 0);
	name[0] = 'e';
	assert_true(strlen(disks) + 201 < sizeof(disks));
	strcat(strcat(disks, "/"), name);
	assert_int_equal(mkdir(disks, 0755), 0);
	name[0] = 'f';
	assert_true(strlen(disks) + 201 < sizeof(disks));
	strcat(strcat(disks, "/"), name);
	assert_int_equal(mkdir(disks, 0755), 0);
	assert_true(snprintf(snaps, sizeof(snaps), "%s/snaps", dir) < (int)sizeof(snaps));
	assert_true(snprintf(moved, sizeof(moved), "%s/deeper/snaps", dir) < (int)sizeof(moved));
	assert_int_equal(mkdir(snaps, 0755), 0);
	assert_int_equal(mkdir(support_path(dir, "deeper"), 0755), 0);
	make_base(support_path(disks, "base.vhd"), 4 * MiB);
	snapshot(support_path(snaps, "child.vhd"), support_path(disks, "base.vhd"), NULL);
	assert_int_equal(rename(snaps, moved), 0);
	assert_non_null(realpath(support_path(disks, "base.vhd"), real));
	assert_true(strlen(real) > 600);
	assert_true(snprintf(expected, sizeof(expected), "absolute locator MacX '%s'", real) <
		    (int)sizeof(expected));
	chain = open_ok(support_path(moved, "child.vhd"), NULL);
	assert_string_equal(chain_level_how(chain, 1), expected);
	chain_close(chain);
}

static void test_parent_name_without_locators(void **state)
{
	char *dir = *state;
	struct chain *chain;

	make_base(support_path(dir, "Base Disk.vhd"), 4 * MiB);
	snapshot(support_path(dir, "child.vhd"), support_path(dir, "Base Disk.vhd"), NULL);
	drop_locators(support_path(dir, "child.vhd"));
	chain = open_ok(support_path(dir, "child.vhd"), NULL);
	assert_how(chain, 1, "parent name 'Base Disk.vhd'");
	chain_close(chain);
}

static void test_case_insensitive_name(void **state)
{
	char *dir = *state;
	struct chain *chain;

	make_base(support_path(dir, "base.vhd"), 4 * MiB);
	snapshot(support_path(dir, "child.vhd"), support_path(dir, "base.vhd"), NULL);
	/* Copied from Windows, the name's case changed. */
	assert_int_equal(rename(support_path(dir, "base.vhd"), support_path(dir, "BASE.VHD")), 0);
	chain = open_ok(support_path(dir, "child.vhd"), NULL);
	assert_int_equal(chain_depth(chain), 2);
	assert_how(chain, 1, "relative locator W2ru");
	chain_close(chain);
}

static void test_uuid_scan_after_rename(void **state)
{
	char *dir = *state;
	struct chain *chain;

	make_base(support_path(dir, "base.vhd"), 4 * MiB);
	make_base(support_path(dir, "another.vhd"), 4 * MiB);
	assert_int_equal(mkdir(support_path(dir, "a-folder"), 0755), 0);
	snapshot(support_path(dir, "child.vhd"), support_path(dir, "base.vhd"), NULL);
	assert_int_equal(rename(support_path(dir, "base.vhd"), support_path(dir, "zz-renamed.vhd")),
			 0);
	chain = open_ok(support_path(dir, "child.vhd"), NULL);
	assert_how(chain, 1, "UUID scan of");
	assert_non_null(strstr(disk_path(chain_level(chain, 1)), "zz-renamed.vhd"));
	chain_close(chain);
}

static void test_uuid_mismatch(void **state)
{
	char *dir = *state;

	make_base(support_path(dir, "base.vhd"), 4 * MiB);
	snapshot(support_path(dir, "child.vhd"), support_path(dir, "base.vhd"), NULL);
	assert_int_equal(unlink(support_path(dir, "base.vhd")), 0);
	make_base(support_path(dir, "base.vhd"), 4 * MiB); /* same name, new UUID */
	assert_int_equal(open_fails(support_path(dir, "child.vhd"), NULL, "does not match"),
			 -EINVAL);
	open_fails(support_path(dir, "child.vhd"), NULL, "child.vhd");
}

static void test_missing_parent(void **state)
{
	char *dir = *state;

	make_base(support_path(dir, "base.vhd"), 4 * MiB);
	snapshot(support_path(dir, "child.vhd"), support_path(dir, "base.vhd"), NULL);
	assert_int_equal(unlink(support_path(dir, "base.vhd")), 0);
	assert_int_equal(open_fails(support_path(dir, "child.vhd"), NULL, "base.vhd' (not found)"),
			 -ENOENT);
}

static void test_damaged_parent(void **state)
{
	char *dir = *state;
	uint8_t junk = 0x55;

	make_base(support_path(dir, "base.vhd"), 4 * MiB);
	snapshot(support_path(dir, "child.vhd"), support_path(dir, "base.vhd"), NULL);
	support_patch(support_path(dir, "base.vhd"), 512 + 1024 + 512 + 70, &junk, 1);
	assert_int_equal(open_fails(support_path(dir, "child.vhd"), NULL, "checksum"), -EINVAL);
	open_fails(support_path(dir, "child.vhd"), NULL, "cannot open parent");
}

static void test_cycle(void **state)
{
	char *dir = *state;
	const char *child = support_path(dir, "x.vhd"), *parent = support_path(dir, "p.vhd");
	uint8_t uuid[16];
	char cmd[3 * PATH_MAX];

	make_base(parent, 4 * MiB);
	snapshot(child, parent, NULL);
	/* x names itself as parent; p becomes a copy of x: x -> p -> p. */
	support_read(child, 68, uuid, 16);
	support_patch(child, 512 + 40, uuid, 16);
	support_fix_header_checksum(child);
	assert_true(snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", child, parent) < (int)sizeof(cmd));
	assert_int_equal(system(cmd), 0);
	assert_int_equal(open_fails(child, NULL, "loops"), -ELOOP);
	/* The copy alone is its own parent. */
	assert_int_equal(open_fails(parent, NULL, "loops"), -ELOOP);
}

/* Chains opened through one cache: each parent is found once, by the first chain that
 * needs it, and the next chains are given it (its files gone since do not matter), found
 * as the first said. */
static void test_cache_finds_each_parent_once(void **state)
{
	char *dir = *state;
	const char *top = support_path(dir, "top.vhd");
	struct chain_cache *cache;
	struct chain_options o = { 0 };
	struct chain *chain;
	char how[2][PATH_MAX];

	make_base(support_path(dir, "base.vhd"), 4 * MiB);
	snapshot(support_path(dir, "mid.vhd"), support_path(dir, "base.vhd"), NULL);
	snapshot(top, support_path(dir, "mid.vhd"), NULL);
	assert_int_equal(chain_cache_new(&cache), 0);
	o.cache = cache;
	chain = open_ok(top, &o);
	assert_int_equal(chain_depth(chain), 3);
	for (unsigned i = 0; i < 2; i++)
		snprintf(how[i], sizeof(how[i]), "%s", chain_level_how(chain, i + 1));
	chain_close(chain);
	/* The parents' files gone: no search could find them again. */
	assert_int_equal(unlink(support_path(dir, "base.vhd")), 0);
	assert_int_equal(unlink(support_path(dir, "mid.vhd")), 0);
	open_fails(top, NULL, "cannot find the parent");
	chain = open_ok(top, &o);
	assert_int_equal(chain_depth(chain), 3);
	assert_string_equal(chain_level_how(chain, 1), how[0]);
	assert_string_equal(chain_level_how(chain, 2), how[1]);
	assert_int_equal(chain_warning_count(chain), 0);
	chain_close(chain);
	chain_cache_free(cache);
}

/* A parent given by the cache that is in the chain already is a loop, said as one. */
static void test_cache_loop(void **state)
{
	char *dir = *state;
	const char *x = support_path(dir, "x.vhd"), *p = support_path(dir, "p.vhd");
	const char *y = support_path(dir, "y.vhd");
	struct chain_cache *cache;
	struct chain_options o = { 0 };
	uint8_t uuid[16];

	/* x's parent is p.vhd, which becomes y, whose parent is x. */
	make_base(p, 4 * MiB);
	snapshot(x, p, NULL);
	snapshot(y, x, NULL);
	assert_int_equal(rename(y, p), 0);
	support_read(p, 68, uuid, 16);
	support_patch(x, 512 + 40, uuid, 16);
	support_fix_header_checksum(x);
	assert_int_equal(chain_cache_new(&cache), 0);
	o.cache = cache;
	/* x -> p (kept) -> x; then p -> x (kept) -> p, the second step the cache's. */
	assert_int_equal(open_fails(x, &o, "loops"), -ELOOP);
	assert_int_equal(open_fails(p, &o, "loops"), -ELOOP);
	assert_int_equal(open_fails(x, &o, "loops"), -ELOOP);
	chain_cache_free(cache);
}

static void test_depth_limit(void **state)
{
	char *dir = *state;
	struct chain_options o = { .max_depth = 3 };
	struct chain *chain;
	char name[32], prev[32];

	make_base(support_path(dir, "l0.vhd"), 2 * MiB);
	for (int i = 1; i < 5; i++) {
		assert_true(snprintf(name, sizeof(name), "l%d.vhd", i) < (int)sizeof(name));
		assert_true(snprintf(prev, sizeof(prev), "l%d.vhd", i - 1) < (int)sizeof(prev));
		snapshot(support_path(dir, name), support_path(dir, prev), NULL);
	}
	assert_int_equal(open_fails(support_path(dir, "l4.vhd"), &o, "deeper than 3 levels"),
			 -ELOOP);
	o.max_depth = 5;
	chain = open_ok(support_path(dir, "l4.vhd"), &o);
	assert_int_equal(chain_depth(chain), 5);
	chain_close(chain);
}

static void test_timestamp_warning(void **state)
{
	char *dir = *state;
	const char *base = support_path(dir, "base.vhd");
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { 0 } };
	struct chain *chain;

	make_base(base, 4 * MiB);
	snapshot(support_path(dir, "child.vhd"), base, NULL);
	chain = open_ok(support_path(dir, "child.vhd"), NULL);
	assert_int_equal(chain_warning_count(chain), 0);
	chain_close(chain);

	times[1].tv_sec = 1600000000;
	assert_int_equal(utimensat(AT_FDCWD, base, times, 0), 0);
	chain = open_ok(support_path(dir, "child.vhd"), NULL);
	assert_int_equal(chain_warning_count(chain), 1);
	assert_non_null(strstr(chain_warning(chain, 0), "was modified at 2020-09-13 12:26:40 UTC"));
	chain_close(chain);
}

static int refuse_all(void *ctx, const char *real_path, struct error *err)
{
	int *calls = ctx;

	(*calls)++;
	return error_set(err, EACCES, "'%s' is outside the store", real_path);
}

static void test_allow_callback(void **state)
{
	char *dir = *state;
	int calls = 0;
	struct chain_options o = { .allow = refuse_all, .allow_ctx = &calls };

	make_base(support_path(dir, "base.vhd"), 4 * MiB);
	snapshot(support_path(dir, "child.vhd"), support_path(dir, "base.vhd"), NULL);
	assert_int_equal(open_fails(support_path(dir, "child.vhd"), &o, "outside the store"),
			 -EACCES);
	assert_true(calls >= 1);
}

/*
 * Three levels with overlapping writes, a block-spanning write, and partial
 * bitmap bytes in the top level: every sector must come from the nearest
 * level whose bitmap holds it.
 */
static void test_merged_read(void **state)
{
	char *dir = *state;
	const char *l0 = support_path(dir, "l0.vhd"), *l1 = support_path(dir, "l1.vhd");
	const char *l2 = support_path(dir, "l2.vhd");
	const uint64_t size = 8 * MiB;
	uint8_t *expect = calloc(1, size), *got = malloc(size), *top = malloc(4096);
	uint8_t mask = 0x5A; /* sectors 1, 3, 4, 6 of the patched byte */
	struct chain *chain;
	struct error err;
	struct vhd *vhd;
	int64_t at;

	make_base(l0, size);
	write_at(l0, 0, 3 * MiB, 1, expect);
	snapshot(l1, l0, NULL);
	write_at(l1, MiB + 3 * 512, 8 * 512, 2, expect);
	write_at(l1, 2 * MiB - 4096, 8192, 3, expect); /* spans blocks 0 and 1 */
	write_at(l1, 5 * MiB, MiB / 2, 4, expect);	/* where the base has nothing */
	snapshot(l2, l1, NULL);
	write_at(l2, 6 * MiB, 512, 5, expect);
	/* 8 sectors at 1 MiB, then only the sectors of @mask kept in the bitmap */
	support_fill(top, 4096, 6);
	write_at(l2, MiB, 4096, 6, NULL);
	assert_int_equal(vhd_open(&vhd, l2, VHD_OPEN_READ, &err), 0);
	at = vhd_block_offset(vhd, 0);
	vhd_close(vhd);
	assert_true(at > 0);
	support_patch(l2, (uint64_t)at + MiB / 512 / 8, &mask, 1);
	for (int s = 0; s < 8; s++)
		if (mask & (0x80 >> s))
			memcpy(expect + MiB + s * 512, top + s * 512, 512);

	chain = open_ok(l2, NULL);
	assert_int_equal(chain_depth(chain), 3);
	assert_int_equal(chain_read(chain, got, size, 0, &err), 0);
	for (uint64_t i = 0; i < size; i += 512)
		if (memcmp(got + i, expect + i, 512) != 0)
			fail_msg("sector %llu differs", (unsigned long long)(i / 512));
	/* Unaligned reads of every length around the patched byte and a block edge. */
	for (uint64_t off = MiB - 700; off < MiB + 5000; off += 333) {
		memset(got, 0xEE, 7000);
		assert_int_equal(chain_read(chain, got, 6999, off, &err), 0);
		assert_memory_equal(got, expect + off, 6999);
	}
	assert_int_equal(chain_read(chain, got, 100, 2 * MiB - 50, &err), 0);
	assert_memory_equal(got, expect + 2 * MiB - 50, 100);
	assert_int_equal(chain_read(chain, got, 512, size - 256, &err), -EINVAL);
	assert_int_equal(chain_read(chain, got, 256, size - 256, &err), 0);
	assert_memory_equal(got, expect + size - 256, 256);
	chain_close(chain);
	free(expect);
	free(got);
	free(top);
}

static void test_extents(void **state)
{
	char *dir = *state;
	const char *l0 = support_path(dir, "l0.vhd"), *l1 = support_path(dir, "l1.vhd");
	struct chain *chain;
	bool allocated;
	uint64_t end;

	make_base(l0, 10 * MiB);		/* blocks of 2 MiB: 0..4 */
	write_at(l0, 512, 512, 1, NULL);	/* block 0 */
	snapshot(l1, l0, NULL);
	write_at(l1, 2 * MiB, 512, 2, NULL);	/* block 1 */
	write_at(l1, 8 * MiB + 4096, 512, 3, NULL); /* block 4 */
	chain = open_ok(l1, NULL);
	chain_extent(chain, 0, &allocated, &end);
	assert_true(allocated);
	assert_int_equal(end, 4 * MiB);
	chain_extent(chain, 3 * MiB, &allocated, &end);
	assert_true(allocated);
	assert_int_equal(end, 4 * MiB);
	chain_extent(chain, 4 * MiB, &allocated, &end);
	assert_false(allocated);
	assert_int_equal(end, 8 * MiB);
	chain_extent(chain, 9 * MiB, &allocated, &end);
	assert_true(allocated);
	assert_int_equal(end, 10 * MiB);
	assert_true(chain_range_allocated(chain, 0, 1));
	assert_true(chain_range_allocated(chain, 7 * MiB, 2 * MiB));
	assert_false(chain_range_allocated(chain, 4 * MiB, 4 * MiB));
	chain_close(chain);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, support_setup_dir, support_teardown_dir)
	const struct CMUnitTest tests[] = {
		T(test_single_disk),
		T(test_relative_locator_survives_move),
		T(test_absolute_locator_through_pathmap),
		T(test_macx_locator),
		T(test_long_how),
		T(test_parent_name_without_locators),
		T(test_case_insensitive_name),
		T(test_uuid_scan_after_rename),
		T(test_uuid_mismatch),
		T(test_missing_parent),
		T(test_damaged_parent),
		T(test_cycle),
		T(test_cache_finds_each_parent_once),
		T(test_cache_loop),
		T(test_depth_limit),
		T(test_timestamp_warning),
		T(test_allow_callback),
		T(test_merged_read),
		T(test_extents),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
