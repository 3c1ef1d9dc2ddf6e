/*
 * impex vm: the table of the vm group, and the commands that change a VM:
 * new, snapshot, apply, write, save, delete (list and show: cmd_vm_show.c).
 */
#include "cmd_vm.h"

#include "cli.h"
#include "cmd_store.h"
#include "cmd_vhd.h"
#include "cmd_vm_show.h"
#include "disk.h"
#include "error.h"
#include "pathmap.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char usage_new[] = "impex vm new [STORE OPTIONS] [--generation 1|2] [--memory SIZE] "
				"[--disk ide|scsi:SIZE]... [--disk-format vhd|vhdx] "
				"[--switch NAME]... NAME";
static const char usage_snapshot[] = "impex vm snapshot [STORE OPTIONS] VM SNAPSHOT";
static const char usage_apply[] = "impex vm apply [STORE OPTIONS] VM SNAPSHOT";
static const char usage_write[] = "impex vm write [STORE OPTIONS] VM DISK OFFSET FILE|-";
static const char usage_save[] = "impex vm save [STORE OPTIONS] VM";
static const char usage_delete[] = "impex vm delete [STORE OPTIONS] [--disks] VM";

/* ---- vm new ---- */

static int vm_new(int argc, char **argv)
{
	struct store_new_disk disks[CMD_STORE_MAX_ITEMS];
	struct store_new_vm spec = {0};
	struct cmd_store_args a;
	struct store *store = NULL;
	struct error err;
	char id[37];
	int rc = cmd_store_begin(argc, argv, usage_new, 1, 1, &a, &store);
	if (rc)
		goto out;
	spec.name = argv[a.first];
	spec.generation = 1;
	if (a.generation) {
		if (strcmp(a.generation, "1") != 0 && strcmp(a.generation, "2") != 0) {
			rc = cli_usage(usage_new, "generation '%s': want 1 or 2", a.generation);
			goto out;
		}
		spec.generation = a.generation[0] - '0';
	}
	if (a.disk_format && cli_parse_disk_format(a.disk_format, &spec.disk_format) < 0) {
		rc = cli_usage(usage_new, "disk format '%s': want vhd or vhdx", a.disk_format);
		goto out;
	}
	if (a.memory) {
		uint64_t bytes;

		if (cli_parse_size(a.memory, &bytes) < 0 || bytes < 32 << 20 || bytes % (1 << 20)) {
			rc = cli_usage(usage_new,
				       "'%s' is not a memory size (whole MiB, 32M or more)",
				       a.memory);
			goto out;
		}
		spec.memory_mib = bytes >> 20;
	}
	for (size_t i = 0; i < a.disk_count; i++) {
		const char *colon = strchr(a.disks[i], ':');
		size_t n = colon ? (size_t)(colon - a.disks[i]) : 0;

		if (colon && n == 3 && strncmp(a.disks[i], "ide", 3) == 0)
			disks[i].bus = CONFIG_BUS_IDE;
		else if (colon && n == 4 && strncmp(a.disks[i], "scsi", 4) == 0)
			disks[i].bus = CONFIG_BUS_SCSI;
		else {
			rc = cli_usage(usage_new, "disk '%s': want ide:SIZE or scsi:SIZE",
				       a.disks[i]);
			goto out;
		}
		if (cli_parse_size(colon + 1, &disks[i].size) < 0) {
			rc = cli_usage(usage_new, "disk '%s': '%s' is not a size", a.disks[i],
				       colon + 1);
			goto out;
		}
	}
	spec.disks = disks;
	spec.disk_count = a.disk_count;
	spec.switches = a.switches;
	spec.switch_count = a.switch_count;
	error_clear(&err);
	if (store_create_vm(store, &spec, id, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	printf("%s  %s\n", id, spec.name);
	rc = CLI_OK;
out:
	return cmd_store_end(&a, store, rc);
}

/* ---- vm snapshot, apply, write, save, delete ---- */

/* Run @change on the store: the commands that change one VM. */
static int change_vm(int argc, char **argv, const char *usage, int operands,
		     int (*change)(struct store *store, char **operands,
				   const struct cmd_store_args *a, struct error *err))
{
	struct cmd_store_args a;
	struct store *store = NULL;
	struct error err;
	int rc = cmd_store_begin(argc, argv, usage, operands, operands, &a, &store);

	if (rc == 0) {
		error_clear(&err);
		rc = change(store, argv + a.first, &a, &err) < 0 ? cli_fail(&err) : CLI_OK;
	}
	return cmd_store_end(&a, store, rc);
}

static int do_snapshot(struct store *store, char **op, const struct cmd_store_args *a,
		       struct error *err)
{
	char id[37];
	int rc = store_snapshot_vm(store, op[0], op[1], id, err);

	(void)a;
	if (rc == 0)
		printf("%s  %s\n", id, op[1]);
	return rc;
}

static int do_apply(struct store *store, char **op, const struct cmd_store_args *a,
		    struct error *err)
{
	(void)a;
	return store_apply_snapshot(store, op[0], op[1], err);
}

static int do_save(struct store *store, char **op, const struct cmd_store_args *a,
		   struct error *err)
{
	(void)a;
	return store_save_state(store, op[0], err);
}

static int do_delete(struct store *store, char **op, const struct cmd_store_args *a,
		     struct error *err)
{
	return store_delete_vm(store, op[0], a->disks_too, err);
}

static int vm_snapshot(int argc, char **argv)
{
	return change_vm(argc, argv, usage_snapshot, 2, do_snapshot);
}

static int vm_apply(int argc, char **argv)
{
	return change_vm(argc, argv, usage_apply, 2, do_apply);
}

static int vm_save(int argc, char **argv)
{
	return change_vm(argc, argv, usage_save, 1, do_save);
}

static int vm_delete(int argc, char **argv)
{
	return change_vm(argc, argv, usage_delete, 1, do_delete);
}

/*
 * The current disk of @vm that @what names as vm show lists it: its index
 * (0, 1, ...), its place ("ide0:1", any case), or its file name as the
 * configuration writes it (any case, when no other disk of the VM has it).
 * Returns the index, or -1 after a message listing the disks.
 */
static long pick_disk(const struct store_vm *vm, const char *what)
{
	char label[48], *end, *list = NULL;
	size_t len = 0, named = 0;
	long found = -1;
	unsigned long index;
	FILE *f;

	errno = 0;
	index = strtoul(what, &end, 10);
	if (what[0] >= '0' && what[0] <= '9' && !*end && !errno)
		found = index < vm->disk_count ? (long)index : -1;
	for (size_t i = 0; found < 0 && i < vm->disk_count; i++)
		if (strcasecmp(cmd_store_disk_label(&vm->disks[i], label, sizeof(label)), what) ==
		    0)
			found = (long)i;
	for (size_t i = 0; found < 0 && i < vm->disk_count; i++)
		if (store_same_name(pathmap_basename(vm->disks[i].written), what))
			named++;
	for (size_t i = 0; found < 0 && named == 1 && i < vm->disk_count; i++)
		if (store_same_name(pathmap_basename(vm->disks[i].written), what))
			found = (long)i;
	if (found >= 0)
		return found;
	f = open_memstream(&list, &len);
	for (size_t i = 0; f && i < vm->disk_count; i++)
		fprintf(f, "%s%zu (%s, '%s')", i ? ", " : "", i,
			cmd_store_disk_label(&vm->disks[i], label, sizeof(label)),
			pathmap_basename(vm->disks[i].written));
	if (f)
		fclose(f);
	if (named > 1)
		cli_error(
			"VM '%s' has %zu disks named '%s': give the index or the place of one: %s",
			vm->name, named, what, list ? list : "");
	else
		cli_error("VM '%s' has no disk '%s': %s%s", vm->name, what,
			  vm->disk_count ? "its disks are " : "it has none", list ? list : "");
	free(list);
	return -1;
}

/* Write into the current disk DISK of a VM (as vm show names it: index, place or file name). */
static int vm_write(int argc, char **argv)
{
	struct cmd_store_args a;
	struct store *store = NULL;
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	size_t count = 0;
	long index;
	int rc = cmd_store_begin(argc, argv, usage_write, 4, 4, &a, &store);

	if (rc == 0)
		rc = cmd_store_pick_vm(store, argv[a.first], &vms, &count, &vm);
	if (rc)
		goto out;
	if ((index = pick_disk(vm, argv[a.first + 1])) < 0) {
		/* A disk the VM lacks is a fact of the store: a failure. */
		rc = CLI_FAIL;
	} else if (!vm->disks[index].path) {
		cli_error("%s", vm->disks[index].problem);
		rc = CLI_FAIL;
	} else {
		rc = cmd_vhd_write_input(vm->disks[index].path, argv[a.first + 2],
					 argv[a.first + 3], usage_write);
	}
out:
	store_vms_free(vms, count);
	return cmd_store_end(&a, store, rc);
}

const struct cli_command cmd_vm_commands[] = {
	{.name = "list",
	 .usage = cmd_vm_list_usage,
	 .summary = "list the VMs, their disks and snapshots",
	 .operands = "",
	 .run = cmd_vm_list},
	{.name = "show",
	 .usage = cmd_vm_show_usage,
	 .summary = "show a VM: disks, adapters, the snapshot tree with Now; -v: each disk's\n"
		    "file and chain; --ascii: the tree without box drawing (so too when the\n"
		    "locale is not UTF-8); exit 1 on a problem",
	 .operands = "vm",
	 .run = cmd_vm_show},
	{.name = "new",
	 .usage = usage_new,
	 .summary = "create a VM with new dynamic disks and adapters",
	 .operands = "-",
	 .run = vm_new},
	{.name = "snapshot",
	 .usage = usage_snapshot,
	 .summary = "take a snapshot: freeze each disk, go on in a new differencing disk",
	 .operands = "vm -",
	 .run = vm_snapshot},
	{.name = "apply",
	 .usage = usage_apply,
	 .summary = "apply a snapshot: its state becomes the VM's, the current one is discarded",
	 .operands = "vm snapshot",
	 .run = vm_apply},
	{.name = "write",
	 .usage = usage_write,
	 .summary = "write guest data into a current disk (DISK as vm show lists it: its\n"
		    "index, its place such as ide0:0, or its file name)",
	 .operands = "vm disk - file",
	 .run = vm_write},
	{.name = "save",
	 .usage = usage_save,
	 .summary = "give the VM a saved state (opaque .vsv and .bin files)",
	 .operands = "vm",
	 .run = vm_save},
	{.name = "delete",
	 .usage = usage_delete,
	 .summary = "delete a VM, its snapshots and saved state (--disks: its disks too)",
	 .operands = "vm",
	 .run = vm_delete},
	{0},
};
