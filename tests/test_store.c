/*
 * Unit tests of core/store: resolving disk paths in their order, with
 * confinement; names; switches.txt; a VM made, snapshotted, applied and
 * deleted through the core API, checked on the files it leaves; a saved
 * state carried whole by a snapshot and back by an apply.
 */
#include <dirent.h>
#include <errno.h>
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

#include "config.h"
#include "error.h"
#include "pathmap.h"
#include "store.h"
#include "support.h"
#include "vhd.h"

#define MiB (1024ull * 1024)

static void make_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void make_disk(const char *path)
{
	struct vhd_create_options o = {.type = VHD_TYPE_DYNAMIC, .size = 4 * MiB};
	struct error err;

	if (vhd_create(path, &o, &err) != 0)
		fail_msg("%s", err.message);
}

static struct store *open_store(const char *root, const struct pathmap *map, bool outside)
{
	const char *roots[] = {root};
	struct store_options o = {.roots = roots, .root_count = 1, .pathmap = map, .allow_outside = outside};
	struct store *s = NULL;
	struct error err;

	if (store_open(&s, &o, &err) != 0)
		fail_msg("%s", err.message);
	return s;
}

static void test_open_and_names(void **state)
{
	char *dir = *state;
	const char *roots[] = {support_path(dir, "none")};
	struct store_options o = {.roots = roots, .root_count = 1};
	struct store *s = NULL;
	struct error err;

	assert_int_equal(store_open(&s, &o, &err), -ENOENT);
	assert_non_null(strstr(err.message, "none"));
	o.root_count = 0;
	assert_int_equal(store_open(&s, &o, &err), -EINVAL);
	assert_int_equal(store_check_name("blog", "VM", &err), 0);
	assert_int_equal(store_check_name("", "VM", &err), -EINVAL);
	assert_int_equal(store_check_name("a\nb", "VM", &err), -EINVAL);
	assert_non_null(strstr(err.message, "control"));
	assert_int_equal(store_check_name("caf\xC3\xA9 <&> ../x", "VM", &err), 0);
	assert_int_equal(store_check_name("x\xFFy", "VM", &err), -EINVAL);
	assert_non_null(strstr(err.message, "UTF-8"));
}

/* Names as Hyper-V takes them: GUID, exact name, then the one name in another case. */
static void test_pick_by_name(void **state)
{
	struct store_snapshot snaps[3] = {
		{.id = "11111111-0000-0000-0000-000000000001", .name = "alpha"},
		{.id = "11111111-0000-0000-0000-000000000002", .name = "ALPHA"},
		{.id = "11111111-0000-0000-0000-000000000003", .name = "\xC3\x84rger \xCE\xA3"},
	};
	struct store_vm vms[3] = {
		{.id = "22222222-0000-0000-0000-000000000001", .name = "web"},
		{.id = "22222222-0000-0000-0000-000000000002", .name = "Web"},
		{.id = "22222222-0000-0000-0000-000000000003",
		 .name = "blog",
		 .snapshots = snaps,
		 .snapshot_count = 3},
	};
	const struct store_snapshot *snap;
	const struct store_vm *vm;
	struct error err;

	(void)state;
	assert_true(store_same_name("Blog", "bLOG"));
	assert_true(store_same_name("\xC3\x84rger", "\xC3\xA4RGER")); /* Ä, ä */
	assert_false(store_same_name("blog", "blo"));
	assert_false(store_same_name("a\xFF", "a\xFE"));
	assert_int_equal(store_pick_vm(vms, 3, "BLOG", &vm, &err), 0);
	assert_ptr_equal(vm, &vms[2]);
	assert_int_equal(store_pick_vm(vms, 3, "22222222-0000-0000-0000-000000000001", &vm, &err),
			 0);
	assert_ptr_equal(vm, &vms[0]);
	assert_int_equal(store_pick_vm(vms, 3, "Web", &vm, &err), 0);
	assert_ptr_equal(vm, &vms[1]);
	assert_int_equal(store_pick_vm(vms, 3, "WEB", &vm, &err), -EINVAL);
	assert_null(vm);
	assert_non_null(strstr(err.message, "'web' (22222222-0000-0000-0000-000000000001)"));
	assert_non_null(strstr(err.message, "'Web' (22222222-0000-0000-0000-000000000002)"));
	assert_int_equal(store_pick_vm(vms, 3, "nothing", &vm, &err), -ENOENT);
	assert_int_equal(store_pick_snapshot(&vms[2], "alpha", &snap, &err), 0);
	assert_ptr_equal(snap, &snaps[0]);
	assert_int_equal(store_pick_snapshot(&vms[2], "Alpha", &snap, &err), -EINVAL);
	assert_non_null(strstr(err.message, "2 snapshots"));
	assert_int_equal(store_pick_snapshot(&vms[2], "\xC3\xA4RGER \xCF\x83", &snap, &err), 0);
	assert_ptr_equal(snap, &snaps[2]);
	assert_int_equal(store_pick_snapshot(&vms[2], "beta", &snap, &err), -ENOENT);
	assert_non_null(strstr(err.message, "no snapshot 'beta'"));
}

/* A folder without "Virtual Machines" is no store; store_init() makes one. */
static void test_check(void **state)
{
	char *dir = *state;
	char root[PATH_MAX];
	struct store *s;
	struct error err;

	snprintf(root, sizeof(root), "%s/root", dir);
	assert_int_equal(mkdir(root, 0755), 0);
	s = open_store(root, NULL, false);
	assert_int_equal(store_check(s, &err), -ENOENT);
	assert_non_null(
		strstr(err.message, "is not a Hyper-V store: no 'Virtual Machines' folder"));
	store_free(s);
	make_file(support_path(root, "Virtual Machines"), "a file\n");
	s = open_store(root, NULL, false);
	assert_int_equal(store_check(s, &err), -ENOTDIR);
	store_free(s);
	assert_int_equal(unlink(support_path(root, "Virtual Machines")), 0);
	assert_int_equal(store_init(root, &err), 0);
	s = open_store(root, NULL, false);
	assert_int_equal(store_check(s, &err), 0);
	store_free(s);
}

static void test_resolve_order(void **state)
{
	char *dir = *state;
	char store[PATH_MAX], other[PATH_MAX], spec[PATH_MAX + 16], config[PATH_MAX];
	struct pathmap *map = pathmap_new();
	struct store *s;
	struct error err;
	char *path, *how;

	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(other, sizeof(other), "%s/mapped", dir);
	assert_int_equal(store_init(store, &err), 0);
	assert_int_equal(mkdir(other, 0755), 0);
	assert_int_equal(mkdir(support_path(store, "Virtual Machines/vm"), 0755), 0);
	assert_true(snprintf(config, sizeof(config), "%s/Virtual Machines/vm/x.xml", store) < (int)sizeof(config));
	make_disk(support_path(other, "mapped.vhd"));
	make_disk(support_path(store, "Virtual Machines/vm/Next.vhd"));
	make_disk(support_path(store, "Virtual Hard Disks/pool.vhd"));
	snprintf(spec, sizeof(spec), "C:\\Hyper-V=%s", other);
	assert_int_equal(pathmap_add(map, spec, &err), 0);
	s = open_store(store, map, false);

	/* Through the path map, with the name's case differing. */
	assert_int_equal(store_resolve(s, config, "c:\\hyper-v\\MAPPED.VHD", &path, &how, &err), 0);
	assert_string_equal(how, "through the path map");
	assert_non_null(strstr(path, "/mapped/mapped.vhd"));
	free(path);
	free(how);
	/* Not covered by the map: by its name next to the configuration. */
	assert_int_equal(store_resolve(s, config, "D:\\old\\next.vhd", &path, &how, &err), 0);
	assert_string_equal(how, "next to the configuration");
	free(path);
	free(how);
	/* Then in Virtual Hard Disks. */
	assert_int_equal(store_resolve(s, config, "E:\\x\\pool.vhd", &path, &how, &err), 0);
	assert_string_equal(how, "in Virtual Hard Disks");
	free(path);
	free(how);
	/* A Linux path as written. */
	assert_int_equal(
		store_resolve(s, config, support_path(other, "mapped.vhd"), &path, &how, &err), 0);
	assert_string_equal(how, "as written");
	free(path);
	free(how);
	/* Missing: every place tried is listed. */
	assert_int_equal(store_resolve(s, config, "F:\\gone.vhd", &path, &how, &err), -ENOENT);
	assert_non_null(strstr(err.message, "no path map entry"));
	assert_non_null(strstr(err.message, "Virtual Hard Disks/gone.vhd"));
	assert_null(path);
	store_free(s);

	/* Without the map, its folder is outside the store. */
	s = open_store(store, NULL, false);
	assert_int_equal(
		store_resolve(s, config, support_path(other, "mapped.vhd"), &path, &how, &err),
		-EACCES);
	assert_non_null(strstr(err.message, "outside the store"));
	store_free(s);
	s = open_store(store, NULL, true);
	assert_int_equal(
		store_resolve(s, config, support_path(other, "mapped.vhd"), &path, &how, &err), 0);
	free(path);
	free(how);
	store_free(s);

	/* A link inside the store that leads out of it is outside too. */
	assert_int_equal(symlink(support_path(other, "mapped.vhd"),
				 support_path(store, "Virtual Hard Disks/link.vhd")),
			 0);
	s = open_store(store, NULL, false);
	assert_int_equal(store_resolve(s, config, "link.vhd", &path, &how, &err), -EACCES);
	store_free(s);
	pathmap_free(map);
}

static void test_written_path(void **state)
{
	char *dir = *state;
	char spec[PATH_MAX + 16];
	struct pathmap *map = pathmap_new();
	struct store *s;
	struct error err;
	char *w;

	snprintf(spec, sizeof(spec), "C:\\VMs=%s", dir);
	assert_int_equal(pathmap_add(map, spec, &err), 0);
	s = open_store(dir, map, false);
	w = store_written_path(s, support_path(dir, "Virtual Hard Disks/a.vhd"));
	assert_string_equal(w, "C:\\VMs\\Virtual Hard Disks\\a.vhd");
	free(w);
	w = store_written_path(s, "/elsewhere/b.vhd");
	assert_string_equal(w, "/elsewhere/b.vhd");
	free(w);
	store_free(s);
	pathmap_free(map);
}

static void test_switches(void **state)
{
	char *dir = *state;
	struct store_switch *list;
	struct store *s;
	struct error err;
	size_t n;
	char id[37];

	assert_int_equal(store_init(dir, &err), 0);
	s = open_store(dir, NULL, false);
	assert_int_equal(store_add_switch(s, "External", id, &err), 0);
	assert_int_equal(store_add_switch(s, "External", NULL, &err), -EEXIST);
	assert_int_equal(store_add_switch(s, "two\nlines", NULL, &err), -EINVAL);
	assert_int_equal(store_switches(s, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].id, id);
	assert_string_equal(list[0].name, "External");
	store_switches_free(list, n);
	make_file(support_path(dir, "switches.txt"), "# x\n\nnot-a-guid name\n");
	assert_int_equal(store_switches(s, &list, &n, &err), -EINVAL);
	assert_non_null(strstr(err.message, "line 3"));
	store_free(s);
}

/* The VM's only disk, as store_list resolves it now. Caller frees. */
static char *current_disk(struct store *s, const char *vm)
{
	struct store_vm *vms;
	size_t count;
	struct error err;
	char *path;

	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_non_null(store_find_vm(vms, count, vm));
	path = strdup(store_find_vm(vms, count, vm)->disks[0].path);
	store_vms_free(vms, count);
	return path;
}

static void test_vm_life(void **state)
{
	char *dir = *state;
	struct store_new_disk disk = {CONFIG_BUS_IDE, 8 * MiB};
	struct store_new_vm spec = {
		.name = "blog", .generation = 1, .disks = &disk, .disk_count = 1};
	struct store_vm *vms;
	const struct store_vm *vm;
	struct store *s;
	struct error err;
	size_t count;
	char id[37], snap[37], branch[37], *base, *first, *path;
	struct stat st;

	assert_int_equal(store_init(dir, &err), 0);
	s = open_store(dir, NULL, false);
	assert_int_equal(store_create_vm(s, &spec, id, &err), 0);
	assert_int_equal(store_create_vm(s, &spec, NULL, &err), -EEXIST);
	base = current_disk(s, "blog");
	assert_non_null(strstr(base, "/Virtual Hard Disks/blog.vhd"));

	assert_int_equal(store_snapshot_vm(s, "blog", "one", snap, &err), 0);
	first = current_disk(s, id);
	/* <stem>_<GUID>.avhd next to the frozen disk */
	assert_non_null(strstr(first, "/Virtual Hard Disks/blog_"));
	assert_non_null(strstr(first, snap));
	assert_int_equal(store_snapshot_vm(s, "blog", "two", branch, &err), 0);
	path = current_disk(s, id);
	/* the stem drops the GUID an earlier snapshot added */
	assert_null(strstr(path, snap));
	assert_non_null(strstr(path, branch));
	free(path);

	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	vm = store_find_vm(vms, count, "blog");
	assert_int_equal(vm->snapshot_count, 2);
	assert_string_equal(vm->snapshots[0].name, "one");
	assert_string_equal(vm->snapshots[0].parent_id, "");
	assert_string_equal(vm->snapshots[1].parent_id, snap);
	assert_false(vm->snapshots[1].parent_inferred);
	assert_string_equal(vm->current_snapshot_id, branch);
	assert_string_equal(vm->snapshots[0].disks[0].path, base);
	store_vms_free(vms, count);

	/* Apply "one": the state left behind (its disk no snapshot holds) goes. */
	path = current_disk(s, id);
	assert_int_equal(store_apply_snapshot(s, "blog", "one", &err), 0);
	assert_int_equal(stat(path, &st), -1);
	free(path);
	assert_int_equal(stat(first, &st), 0); /* snapshot "two" holds it */
	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	vm = store_find_vm(vms, count, "blog");
	assert_string_equal(vm->current_snapshot_id, snap);
	assert_string_equal(vm->name, "blog");
	assert_string_equal(vm->id, id);
	store_vms_free(vms, count);
	assert_int_equal(store_apply_snapshot(s, "blog", "none", &err), -ENOENT);
	/* Two snapshots named alike: the name is refused, the GUID is not. */
	assert_int_equal(store_snapshot_vm(s, "blog", "one", NULL, &err), 0);
	assert_int_equal(store_apply_snapshot(s, "blog", "one", &err), -EINVAL);
	assert_non_null(strstr(err.message, "2 snapshots are named 'one'"));
	assert_int_equal(store_apply_snapshot(s, "blog", snap, &err), 0);

	assert_int_equal(store_save_state(s, "blog", &err), 0);
	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_non_null(store_find_vm(vms, count, "blog")->saved_state);
	store_vms_free(vms, count);

	assert_int_equal(store_delete_vm(s, "blog", true, &err), 0);
	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_int_equal(count, 0);
	store_vms_free(vms, count);
	assert_int_equal(stat(base, &st), -1);
	assert_int_equal(stat(first, &st), -1);
	assert_int_equal(store_delete_vm(s, "blog", false, &err), -ENOENT);
	free(base);
	free(first);
	store_free(s);
}

static void test_ambiguous_and_unfinished(void **state)
{
	char *dir = *state;
	struct store_new_disk disk = {CONFIG_BUS_IDE, 4 * MiB};
	struct store_new_vm spec = {
		.name = "one", .generation = 1, .disks = &disk, .disk_count = 1};
	char a[37], b[37], snap[37], path[PATH_MAX];
	const struct store_vm *vm;
	struct store_vm *vms;
	struct config *c;
	struct store *s;
	struct error err;
	size_t count;

	assert_int_equal(store_init(dir, &err), 0);
	s = open_store(dir, NULL, false);
	assert_int_equal(store_create_vm(s, &spec, a, &err), 0);
	spec.name = "two";
	assert_int_equal(store_create_vm(s, &spec, b, &err), 0);
	/* Hyper-V allows two VMs one name: a name then picks neither. */
	snprintf(path, sizeof(path), "%s/Virtual Machines/%s.xml", dir, b);
	assert_int_equal(config_load(&c, path, &err), 0);
	assert_int_equal(config_set(c, "properties/name", NULL, "one", &err), 0);
	assert_int_equal(config_save(c, path, &err), 0);
	config_free(c);
	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_int_equal(store_pick_vm(vms, count, "one", &vm, &err), -EINVAL);
	assert_non_null(strstr(err.message, "GUID"));
	assert_int_equal(store_pick_vm(vms, count, b, &vm, &err), 0);
	assert_string_equal(vm->id, b);
	assert_int_equal(store_pick_vm(vms, count, "none", &vm, &err), -ENOENT);
	store_vms_free(vms, count);
	assert_int_equal(store_snapshot_vm(s, "one", "x", NULL, &err), -EINVAL);

	/* A snapshot configuration holding the VM's current disk is one a crash
	 * cut short before the VM moved on: not listed. */
	assert_int_equal(store_snapshot_vm(s, a, "kept", snap, &err), 0);
	snprintf(path, sizeof(path), "%s/Virtual Machines/%s.xml", dir, a);
	assert_int_equal(config_load(&c, path, &err), 0);
	snprintf(path, sizeof(path), "%s/Snapshots/%s.xml", dir,
		 "0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B");
	assert_int_equal(config_set(c, "properties/global_id", NULL,
				    "0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B", &err),
			 0);
	assert_int_equal(config_save(c, path, &err), 0);
	config_free(c);
	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_int_equal(store_pick_vm(vms, count, a, &vm, &err), 0);
	assert_int_equal(vm->snapshot_count, 1);
	assert_string_equal(vm->snapshots[0].id, snap);
	assert_null(vm->problem);
	store_vms_free(vms, count);

	/* A snapshot the VM counts that cannot be read is the VM's problem. */
	snprintf(path, sizeof(path), "%s/Snapshots/%s.xml", dir, snap);
	make_file(path, "<configuration><unclosed></configuration>");
	assert_int_equal(store_list(s, &vms, &count, &err), 0);
	assert_int_equal(store_pick_vm(vms, count, a, &vm, &err), 0);
	assert_int_equal(vm->snapshot_count, 0);
	assert_non_null(vm->problem);
	assert_non_null(strstr(vm->problem, "counts 1 snapshots"));
	store_vms_free(vms, count);
	store_free(s);
}

static void test_disk_file_names(void **state)
{
	char *dir = *state;
	struct store_new_disk disk = {CONFIG_BUS_SCSI, 4 * MiB};
	struct store_new_vm spec = {
		.generation = 2, .disks = &disk, .disk_count = 1, .disk_format = DISK_FORMAT_VHD};
	static const char *const names[][2] = {
		{"a:b*c?d", "a_b_c_d.vhd"},
		{"web <1> |x|", "web _1_ _x_.vhd"},
		{"trailing. ", "trailing__.vhd"},
		{"CON", "_CON.vhd"},
		{"com1", "_com1.vhd"},
		{"console", "console.vhd"},
		{"../up", "_._up.vhd"},
	};
	struct store *s;
	struct error err;
	char id[37], *path;

	assert_int_equal(store_init(dir, &err), 0);
	s = open_store(dir, NULL, false);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		spec.name = names[i][0];
		assert_int_equal(store_create_vm(s, &spec, id, &err), 0);
		path = current_disk(s, id);
		assert_string_equal(strrchr(path, '/') + 1, names[i][1]);
		free(path);
	}
	store_free(s);
}

/* The names in @dir, sorted, as "a b c" (an independent reading: readdir). */
static char *names_in(const char *dir)
{
	struct dirent **list;
	char *text = calloc(1, 4096);
	int n = scandir(dir, &list, NULL, alphasort);

	assert_non_null(text);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.' || strlen(list[i]->d_name) > 2) {
			assert_true(strlen(text) + strlen(list[i]->d_name) + 2 < 4096);
			if (text[0])
				strcat(text, " ");
			strcat(text, list[i]->d_name);
		}
		free(list[i]);
	}
	free(list);
	return text;
}

/*
 * A snapshot carries the saved state whole, by the rule of core/savedstate:
 * every plain regular file, the VM's GUID in a name made the snapshot's,
 * other names kept (a second .vsv no longer lands on the first); a link
 * goes not (once its target's bytes were copied over the .bin). Applied,
 * the snapshot's state comes back under the VM's GUID.
 */
static void test_saved_state_whole(void **state)
{
	char *dir = *state, *names, *text, expected[512];
	struct store_new_disk disk = {CONFIG_BUS_IDE, 8 * MiB};
	struct store_new_vm spec = {
		.name = "blog", .generation = 1, .disks = &disk, .disk_count = 1, .memory_mib = 1};
	char id[37], snap[37], folder[PATH_MAX], path[PATH_MAX + 64];
	struct store *s;
	struct error err;

	assert_int_equal(store_init(dir, &err), 0);
	s = open_store(dir, NULL, false);
	assert_int_equal(store_create_vm(s, &spec, id, &err), 0);
	assert_int_equal(store_save_state(s, "blog", &err), 0);
	assert_true(snprintf(folder, sizeof(folder), "%s/Virtual Machines/%s", dir, id) <
		    (int)sizeof(folder));
	snprintf(path, sizeof(path), "%s/%s.vmrs", folder, id);
	make_file(path, "runtime");
	snprintf(path, sizeof(path), "%s/extra.vsv", folder);
	make_file(path, "a second state file");
	make_file(support_path(dir, "secret"), "not the VM's");
	snprintf(path, sizeof(path), "%s/link.bin", folder);
	assert_int_equal(symlink(support_path(dir, "secret"), path), 0);

	assert_int_equal(store_snapshot_vm(s, "blog", "one", snap, &err), 0);
	snprintf(folder, sizeof(folder), "%s/Snapshots/%s", dir, snap);
	names = names_in(folder);
	snprintf(expected, sizeof(expected), "%s.bin %s.vmrs %s.vsv extra.vsv", snap, snap, snap);
	assert_string_equal(names, expected);
	free(names);
	snprintf(path, sizeof(path), "%s/%s.vmrs", folder, snap);
	text = support_read_text(path);
	assert_string_equal(text, "runtime");
	free(text);
	snprintf(path, sizeof(path), "%s/%s.bin", folder, snap);
	assert_int_equal(support_file_size(path), 1 * MiB);

	/* Applied: the VM's own state is set aside and gone, the snapshot's named after the VM. */
	assert_int_equal(store_apply_snapshot(s, "blog", snap, &err), 0);
	snprintf(folder, sizeof(folder), "%s/Virtual Machines/%s", dir, id);
	names = names_in(folder);
	snprintf(expected, sizeof(expected), "%s.bin %s.vmrs %s.vsv extra.vsv", id, id, id);
	assert_string_equal(names, expected);
	free(names);
	snprintf(path, sizeof(path), "%s/extra.vsv", folder);
	text = support_read_text(path);
	assert_string_equal(text, "a second state file");
	free(text);
	names = names_in(support_path(dir, "Virtual Machines"));
	snprintf(expected, sizeof(expected), "%s %s.xml", id, id);
	assert_string_equal(names, expected);
	free(names);
	store_free(s);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, support_setup_dir, support_teardown_dir)
	const struct CMUnitTest tests[] = {
		T(test_open_and_names),	   T(test_resolve_order), T(test_written_path),
		T(test_switches),	   T(test_vm_life),	  T(test_ambiguous_and_unfinished),
		T(test_disk_file_names),   T(test_pick_by_name),  T(test_check),
		T(test_saved_state_whole),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
