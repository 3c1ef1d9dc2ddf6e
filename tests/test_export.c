/*
 * Unit tests of core/export: the names of export folders; the partitions of
 * raw images (read on request, not when planned, carried over to a new plan
 * while the image stays) and the "latest" links of a planned store.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "disk.h"
#include "error.h"
#include "export.h"
#include "store.h"
#include "support.h"

#define MiB (1024 * 1024)

static void safe(const char *in, const char *want)
{
	char out[EXPORT_NAME_MAX + 2];

	export_safe_name(in, out);
	assert_string_equal(out, want);
}

static void test_safe_names(void **state)
{
	char long_name[400], want[EXPORT_NAME_MAX + 1];

	(void)state;
	safe("blog", "blog");
	safe("web/db", "web_db");
	safe("tab\there\x7f", "tab_here_");
	safe("", "_");
	safe(".", "_.");
	safe("..", "_..");
	safe("...", "...");
	safe("caf\xC3\xA9 \xE2\x82\xAC", "caf\xC3\xA9 \xE2\x82\xAC");
	safe("bad\xFF\xC3", "bad__");  /* not UTF-8, and a cut sequence */
	safe("\xED\xA0\x80x", "___x"); /* a surrogate, as UTF-8 */
	safe("\xC0\xAF", "__");	       /* an overlong '/' */
	/* Cut at EXPORT_NAME_MAX bytes, never inside a character. */
	memset(long_name, 'a', 199);
	strcpy(long_name + 199, "\xC3\xA9tail");
	memset(want, 'a', 199);
	want[199] = '\0';
	safe(long_name, want);
}

static void test_clashes(void **state)
{
	struct export_name n[] = {
		{"blog", "BBBBBBBB-0000-4000-8000-000000000002", 200, NULL},
		{"Blog", "AAAAAAAA-0000-4000-8000-000000000001", 100, NULL}, /* the oldest */
		{"blog", "CCCCCCCC-0000-4000-8000-000000000003", 200, NULL},
		{"db", "DDDDDDDD-0000-4000-8000-000000000004", 300, NULL},
		{"x/y", "EEEEEEEE-0000-4000-8000-000000000005", 1, NULL},
		{"x_y", "EEEEEEEE-1111-4000-8000-000000000006", 2, NULL},
		{"x_Y", "FFFFFFFF-0000-4000-8000-000000000007", 3, NULL},
	};
	size_t count = sizeof(n) / sizeof(n[0]);

	(void)state;
	assert_int_equal(export_assign_names(n, count), 0);
	assert_string_equal(n[1].out, "Blog");
	assert_string_equal(n[0].out, "blog (BBBBBBBB)");
	assert_string_equal(n[2].out, "blog (CCCCCCCC)");
	assert_string_equal(n[3].out, "db");
	assert_string_equal(n[4].out, "x_y");
	/* Alike in 8 characters with another namesake: the whole GUID. */
	assert_string_equal(n[5].out, "x_y (EEEEEEEE-1111-4000-8000-000000000006)");
	assert_string_equal(n[6].out, "x_Y (FFFFFFFF)");
	for (size_t i = 0; i < count; i++)
		free(n[i].out);

	/* A newer namesake never renames an older one. */
	assert_int_equal(export_assign_names(n + 3, 1), 0);
	assert_string_equal(n[3].out, "db");
	free(n[3].out);
	assert_int_equal(export_assign_names(NULL, 0), 0);
}

/* A suffixed name that another thing has as its own name: the whole GUID instead. */
static void test_suffix_taken(void **state)
{
	struct export_name n[] = {
		{"x", "AAAAAAAA-0000-4000-8000-000000000001", 1, NULL},
		{"x", "12345678-0000-4000-8000-000000000002", 2, NULL},
		{"x (12345678)", "BBBBBBBB-0000-4000-8000-000000000003", 3, NULL},
	};

	(void)state;
	assert_int_equal(export_assign_names(n, 3), 0);
	assert_string_equal(n[0].out, "x");
	assert_string_equal(n[1].out, "x (12345678-0000-4000-8000-000000000002)");
	assert_string_equal(n[2].out, "x (12345678)");
	for (size_t i = 0; i < 3; i++)
		free(n[i].out);
}

/* ---- partitions and latest ---- */

/* Write @len bytes at @offset of VM @vm's current disk. */
static void vm_write(struct store *s, const char *vm, const void *buf, size_t len, uint64_t offset)
{
	struct store_vm *vms = NULL;
	size_t count = 0;
	struct disk *d = NULL;
	struct error err;

	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_non_null(store_find_vm(vms, count, vm));
	assert_int_equal(
		disk_open(&d, store_find_vm(vms, count, vm)->disks[0].path, DISK_OPEN_WRITE, &err),
		0);
	assert_int_equal(disk_write(d, buf, len, offset, &err), 0);
	assert_int_equal(disk_flush(d, &err), 0);
	disk_close(d);
	store_vms_free(vms, count);
}

/* The store's tree, planned over @previous (may be NULL). */
static struct export_node *plan(struct store *s, const struct export_node *previous)
{
	struct export_settings settings;
	struct export_planner *planner = NULL;
	struct export_node *root = NULL;
	struct store_vm *vms = NULL;
	size_t count = 0, faults = 0;
	struct error err;

	export_settings_default(&settings);
	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_int_equal(export_planner_new(s, &settings, NULL, &planner, &err), 0);
	assert_int_equal(export_plan_store(planner, vms, count, previous, &root, &faults, &err), 0);
	assert_int_equal(faults, 0);
	export_planner_free(planner);
	store_vms_free(vms, count);
	return root;
}

static struct export_node *at(struct export_node *root, const char *a, const char *b, const char *c)
{
	struct export_node *n = export_child(root, a);

	n = n && b ? export_child(n, b) : n;
	n = n && c ? export_child(n, c) : n;
	assert_non_null(n);
	return n;
}

struct said {
	char text[ERROR_MESSAGE_MAX];
	char what[256];
	unsigned count;
};

static void note(void *ctx, const char *what, enum export_omission how, const struct error *why)
{
	struct said *said = ctx;

	assert_int_equal(how, EXPORT_PARTITIONS);
	snprintf(said->text, sizeof(said->text), "%s", error_message(why));
	snprintf(said->what, sizeof(said->what), "%s", what);
	said->count++;
}

/* Read the partitions of @dir into it. */
static void read_partitions(struct export_node *dir, struct said *said)
{
	struct export_notes notes = {note, said};
	struct export_node *parts = NULL;
	struct error err;

	assert_true(dir->partitions_pending);
	assert_int_equal(export_read_partitions(dir, &notes, &parts, &err), 0);
	assert_int_equal(export_add_partitions(dir, parts), 0);
	assert_false(dir->partitions_pending);
}

static void test_partitions_and_latest(void **state)
{
	const char *root = *state;
	struct store_options o = {.roots = &root, .root_count = 1};
	struct store_new_disk disk = {CONFIG_BUS_IDE, 8 * MiB};
	struct store_new_vm spec = {
		.name = "web", .generation = 1, .disks = &disk, .disk_count = 1};
	uint8_t mbr[512] = {0}, data[4096];
	struct export_node *one, *two, *three, *dir, *part;
	struct said said = {0};
	struct store *s;
	struct error err;
	char id[37];

	assert_int_equal(store_init(root, &err), 0);
	assert_int_equal(store_open(&s, &o, &err), 0);
	assert_int_equal(store_create_vm(s, &spec, id, &err), 0);
	/* An MBR: partition 1 at 1 MiB (2 MiB long), partition 2 past the disk's end. */
	mbr[446 + 4] = 0x83;
	mbr[446 + 8 + 1] = 0x08;  /* 2048 */
	mbr[446 + 12 + 1] = 0x10; /* 4096 sectors */
	mbr[446 + 16 + 4] = 0x83;
	mbr[446 + 16 + 8 + 1] = 0x3C; /* 15360 */
	mbr[446 + 16 + 12 + 1] = 0x10;
	mbr[510] = 0x55;
	mbr[511] = 0xAA;
	vm_write(s, "web", mbr, sizeof(mbr), 0);
	support_fill(data, sizeof(data), 7);
	vm_write(s, "web", data, sizeof(data), MiB + 8192);
	assert_int_equal(store_snapshot_vm(s, "web", "first", id, &err), 0);
	assert_int_equal(store_snapshot_vm(s, "web", "second", id, &err), 0);

	one = plan(s, NULL);
	/* Planned, not read: the folder holds the image alone. */
	dir = at(one, "raw", "web", "current");
	assert_int_equal(dir->child_count, 1);
	assert_string_equal(dir->children[0]->name, "web.img");
	assert_string_equal(dir->path, "raw/web/current");
	read_partitions(dir, &said);
	assert_int_equal(dir->child_count, 2);
	part = export_child(dir, "web-part1.img");
	assert_non_null(part);
	assert_int_equal(part->source, EXPORT_SOURCE_PARTITION);
	assert_int_equal(part->start, MiB);
	assert_int_equal(part->size, 2 * MiB);
	/* The one block written, of the image's 2 MiB blocks: the first, from 1 MiB on. */
	assert_int_equal(part->allocated, MiB);
	{
		uint8_t got[4096];

		assert_int_equal(export_read(part, got, sizeof(got), 8192, &err), 0);
		assert_memory_equal(got, data, sizeof(got));
	}
	assert_int_equal(said.count, 1);
	assert_string_equal(said.what, "raw/web/current/web.img");
	assert_non_null(strstr(said.text, "partition 2 of 'raw/web/current/web.img'"));
	assert_non_null(strstr(said.text, "past the disk's end"));

	/* latest: the newest snapshot, in both folders. */
	assert_int_equal(at(one, "raw", "web", "latest")->type, EXPORT_LINK);
	assert_string_equal(at(one, "raw", "web", "latest")->path, "second");
	assert_string_equal(at(one, "snapshots", "web", "latest")->path, "second");
	assert_true(at(one, "snapshots", "web", "latest")->mtime.tv_sec ==
		    at(one, "snapshots", "web", "second")->mtime.tv_sec);

	/* Planned again: the partitions read are carried over, the table not read again. */
	two = plan(s, one);
	dir = at(two, "raw", "web", "current");
	assert_false(dir->partitions_pending);
	assert_int_equal(dir->child_count, 2);
	assert_int_equal(export_child(dir, "web-part1.img")->start, MiB);
	/* Those of a folder not read yet are not. */
	assert_true(at(two, "raw", "web", "first")->partitions_pending);

	/* The image changed: read again. */
	vm_write(s, "web", data, 512, 3 * MiB);
	three = plan(s, two);
	dir = at(three, "raw", "web", "current");
	assert_true(dir->partitions_pending);
	assert_int_equal(dir->child_count, 1);
	read_partitions(dir, &said);
	assert_int_equal(export_child(dir, "web-part1.img")->allocated, 2 * MiB);
	assert_int_equal(said.count, 2);

	export_node_free(one);
	export_node_free(two);
	export_node_free(three);
	store_free(s);
}

/*
 * A VM that cannot be read for the moment is shown as the tree before showed
 * it, its by-id link too, however long its name: here a name cut to
 * EXPORT_NAME_MAX bytes with the GUID of a clash after it.
 */
static void test_kept_long_name(void **state)
{
	const char *root = *state;
	struct store_options o = {.roots = &root, .root_count = 1};
	char name[EXPORT_NAME_MAX + 1], ids[2][37];
	struct store_new_vm spec = {.name = name, .generation = 1};
	struct export_settings settings;
	struct export_planner *planner = NULL;
	struct export_node *one, *two = NULL;
	const struct export_node *was, *now;
	struct store_vm *vms = NULL;
	size_t count = 0, faults = 0, newer = 0;
	struct store *s;
	struct error err;

	memset(name, 'v', EXPORT_NAME_MAX);
	name[EXPORT_NAME_MAX] = '\0';
	assert_int_equal(store_init(root, &err), 0);
	assert_int_equal(store_open(&s, &o, &err), 0);
	assert_int_equal(store_create_vm(s, &spec, ids[0], &err), 0);
	/* The same name but for case: a clash among folders (the store takes it). */
	memset(name, 'V', EXPORT_NAME_MAX);
	assert_int_equal(store_create_vm(s, &spec, ids[1], &err), 0);
	one = plan(s, NULL);
	/* The one that lost the clash: "<200 v> (<8 of its GUID>)". */
	if (strlen(at(one, "by-id", ids[1], NULL)->path) >
	    strlen(at(one, "by-id", ids[0], NULL)->path))
		newer = 1;
	was = at(one, "by-id", ids[newer], NULL);
	assert_int_equal(strlen(was->path), strlen("../vms/") + EXPORT_NAME_MAX + 11);

	/* Planned again while its configuration cannot be read (EIO). */
	export_settings_default(&settings);
	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_int_equal(count, 2);
	for (size_t i = 0; i < count; i++) {
		if (strcmp(vms[i].id, ids[newer]) != 0)
			continue;
		free(vms[i].problem);
		vms[i].problem = strdup("cannot read the configuration: Input/output error");
		vms[i].problem_code = EIO;
	}
	assert_int_equal(export_planner_new(s, &settings, NULL, &planner, &err), 0);
	assert_int_equal(export_plan_store(planner, vms, count, one, &two, &faults, &err), 0);
	assert_int_equal(faults, 1);
	now = export_child(export_child(two, "by-id"), ids[newer]);
	assert_non_null(now);
	assert_string_equal(now->path, was->path);
	assert_non_null(export_child(export_child(two, "vms"), was->path + strlen("../vms/")));
	export_planner_free(planner);
	store_vms_free(vms, count);
	export_node_free(one);
	export_node_free(two);
	store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safe_names),
		cmocka_unit_test(test_clashes),
		cmocka_unit_test(test_suffix_taken),
		cmocka_unit_test_setup_teardown(test_partitions_and_latest, support_setup_dir,
						support_teardown_dir),
		cmocka_unit_test_setup_teardown(test_kept_long_name, support_setup_dir,
						support_teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
