/*
 * impex export: a VM's export folder as Export-VM lays it out, or a
 * snapshot's as a VM of its own, written from the store.
 */
#include "cmd_export.h"

#include "cli.h"
#include "cmd_store.h"
#include "error.h"
#include "export.h"
#include "progress.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_export[] =
	"impex export [STORE OPTIONS] [--no-vm-storage] [--no-runtime-information]\n"
	"                    [--copy-snapshot-configuration=all|none] [-p|--progress]\n"
	"                    [--create-vm-export-subdirectory] VM [SNAPSHOT] DEST";

/*
 * The VM, and the snapshot if any, that @what names: a VM's name or GUID,
 * or that, '/' and a snapshot's name or GUID (VM names may hold '/': each
 * place is tried), as store_pick_vm() and store_pick_snapshot() take them;
 * with @snapshot (the operand after VM), that snapshot of the VM @what.
 */
static int pick_export(const struct store_vm *vms, size_t count, const char *what,
		       const char *snapshot, const struct store_vm **vm,
		       const struct store_snapshot **snap, struct error *err)
{
	int rc = store_pick_vm(vms, count, what, vm, err);

	*snap = NULL;
	if (rc == 0 && snapshot)
		return store_pick_snapshot(*vm, snapshot, snap, err);
	if (rc != -ENOENT || snapshot)
		return rc;
	for (const char *slash = strchr(what, '/'); slash; slash = strchr(slash + 1, '/')) {
		char *name = strndup(what, (size_t)(slash - what));

		if (!name)
			return error_set(err, ENOMEM, "out of memory");
		rc = store_pick_vm(vms, count, name, vm, err);
		free(name);
		if (rc == -ENOENT)
			continue;
		return rc < 0 ? rc : store_pick_snapshot(*vm, slash + 1, snap, err);
	}
	return error_set(err, ENOENT, "no VM '%s' in the store", what);
}

/* The disks an export could not read, each said once (a plan meets a disk in each state). */
struct export_faults {
	char **said;
	size_t count;
	bool failed; /* out of memory: some may be missing */
};

static void note_fault(void *ctx, const char *what, enum export_omission how,
		       const struct error *why)
{
	struct export_faults *f = ctx;
	char **grown, *text = NULL;

	if (how != EXPORT_UNREADABLE)
		return;
	if (asprintf(&text, "disk '%s' cannot be read: %s", what, error_message(why)) < 0) {
		f->failed = true;
		return;
	}
	for (size_t i = 0; i < f->count; i++)
		if (strcmp(f->said[i], text) == 0) {
			free(text);
			return;
		}
	grown = realloc(f->said, (f->count + 1) * sizeof(*grown));
	if (!grown) {
		free(text);
		f->failed = true;
		return;
	}
	f->said = grown;
	f->said[f->count++] = text;
}

static int cmd_export(int argc, char **argv)
{
	struct export_settings settings;
	struct export_node *plan = NULL;
	struct export_planner *planner = NULL;
	struct cmd_store_args a;
	struct store *store = NULL;
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	const struct store_snapshot *snap;
	struct export_faults faults = {0};
	struct export_notes notes = {note_fault, &faults};
	struct progress bar;
	size_t count = 0;
	struct error err;
	const char *dest;
	int rc = cmd_store_begin(argc, argv, usage_export, 2, 3, &a, &store);
	int operands = argc - a.first;

	if (rc == 0)
		rc = cmd_store_list_vms(store, &vms, &count);
	if (rc)
		goto out;
	dest = argv[a.first + operands - 1];
	export_settings_default(&settings);
	settings.copy_vm_storage = !a.no_storage;
	settings.copy_vm_runtime_information = !a.no_runtime;
	if (a.snapshots && strcmp(a.snapshots, "none") == 0)
		settings.copy_snapshot_configuration = EXPORT_SNAPSHOTS_NONE;
	settings.create_vm_export_subdirectory = a.subdirectory;
	error_clear(&err);
	progress_catch_signals();
	progress_begin(&bar, progress_wanted(a.progress, true));
	if (pick_export(vms, count, argv[a.first], operands == 3 ? argv[a.first + 1] : NULL, &vm,
			&snap, &err) < 0 ||
	    export_planner_new(store, &settings, &notes, &planner, &err) < 0 ||
	    (snap ? export_plan_snapshot(planner, vm, snap, vm->name, &plan, &err)
		  : export_plan_vm(planner, vm, vm->name, &plan, &err)) < 0 ||
	    export_write(plan, dest, progress_update, &bar, &err) < 0) {
		progress_end(&bar);
		if (progress_interrupted())
			cli_error("interrupted: '%s' is not written", dest);
		rc = progress_interrupted() ? CLI_FAIL : cli_fail(&err);
		goto out;
	}
	progress_end(&bar);
	if (snap)
		printf("exported snapshot '%s' of '%s' to '%s'\n", snap->name, vm->name, dest);
	else
		printf("exported '%s' to '%s'\n", vm->name, dest);
	/* What could not be read is said after what was written: the folder is there, not whole. */
	fflush(stdout);
	for (size_t i = 0; i < faults.count; i++)
		cli_error("%s; %s", faults.said[i],
			  snap ? "it is left out" : "its files are copied as they lie");
	if (faults.failed)
		cli_error("out of memory: not every disk that cannot be read is named");
	rc = faults.count || faults.failed ? CLI_FAIL : CLI_OK;
out:
	for (size_t i = 0; i < faults.count; i++)
		free(faults.said[i]);
	free(faults.said);
	export_node_free(plan);
	export_planner_free(planner);
	store_vms_free(vms, count);
	return cmd_store_end(&a, store, rc);
}

const struct cli_command cmd_export_commands[] = {
	{.name = "export",
	 .usage = usage_export,
	 .summary = "write a VM's export folder as Export-VM lays it out, or a snapshot's as\n"
		    "a VM of its own (VM SNAPSHOT, or VM/SNAPSHOT); exit 1 if a disk cannot be\n"
		    "read",
	 .operands = "vm/snapshot dir",
	 .run = cmd_export,
	 .section = "Export and import"},
	{0},
};
