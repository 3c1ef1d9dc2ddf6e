/*
 * export_tree.h - the tree the export mount shows of a whole store: vms/ (each
 * VM's export folder, export_plan.h), snapshots/ (each snapshot's as a VM of
 * its own), raw/ (each state's disks as raw images, their partitions read on
 * request: export_partitions.h) and by-id/ links, with "latest" links to the
 * newest snapshot. Planned by the planner's thread; the mount serves the
 * finished tree read-only.
 */
#ifndef IMPEX_EXPORT_TREE_H
#define IMPEX_EXPORT_TREE_H

#include <stddef.h>

#include "export_node.h"

struct error;
struct export_planner;
struct store_vm;

/**
 * The whole tree the export mount shows for @vms (store_list's @count):
 * "vms/<vm>/", "snapshots/<vm>/<snapshot>/", "raw/<vm>/<current|snapshot>/<disk>.img"
 * and "by-id/<GUID>" links; "snapshots/<vm>/latest" and "raw/<vm>/latest" link to
 * the newest snapshot's folder there (by creation time, then GUID), "current" and
 * "latest" being names no snapshot takes. The partitions of raw images are not
 * read (export_read_partitions()): a folder of raw/ states holding images is
 * marked partitions_pending, unless @previous (the tree made before, a root
 * export_plan_store() gave, or NULL; borrowed) had read its partitions and its
 * images are the same, which are then carried over. What cannot be exported
 * is left out, a disk whose chain cannot be opened only from what derives
 * from it (struct export_notes); the planner's notes are told of each VM or
 * snapshot left out (EXPORT_LEFT_OUT, EXPORT_KEPT, EXPORT_NOT_NOW). A VM
 * whose files fail for a transient reason (error_is_transient(): EMFILE,
 * EIO...) is not taken for broken: it is shown as the previous tree showed
 * it (named as it was, where that name is still free), or left out if it
 * had none; *@faults counts such VMs, so that the caller plans again later.
 * *@out is the root, named "" (caller frees with export_node_free()).
 * Returns 0 or a negative errno with a message (out of memory, a root that
 * is not a Hyper-V store (store_check()), or the store's folder cannot be
 * looked at: the previous tree should stay).
 */
int export_plan_store(struct export_planner *planner, const struct store_vm *vms, size_t count,
		      const struct export_node *previous, struct export_node **out, size_t *faults,
		      struct error *err);

/*
 * A lazy tree: export_plan_store() planning only the VMs the tree before
 * (@previous) had planned, or had found not exportable, and those whose
 * configuration cannot be read (shown as export_plan_store() shows them).
 * Every other VM is listed from its configuration alone: its folders in vms/,
 * raw/ and snapshots/ (if it has snapshots) and the by-id links of it and its
 * snapshots, named as its plan names them, are vm_pending, holding nothing,
 * their "vm" its index in @vms; export_plan_listed_vm() plans it when one of
 * them is looked at, and export_adopt() gives them what it made. A VM found
 * not exportable then is left out (left_out: shown nowhere); its folder in
 * vms/ and its by-id link stay, left out, in the trees made after, which plan
 * it again at once. *@names (caller frees with export_names_free(), @count)
 * holds each VM's name in the tree. The top folders (the root, vms, raw,
 * snapshots, by-id) have the time of the store's first root folder, in a lazy
 * tree as in a planned one.
 */
int export_plan_store_lazy(struct export_planner *planner, const struct store_vm *vms,
			   size_t count, const struct export_node *previous,
			   struct export_node **out, char ***names, size_t *faults,
			   struct error *err);

/** Free the names export_plan_store_lazy() gave. NULL-safe. */
void export_names_free(char **names, size_t count);

/**
 * Plan @vm (the @index-th VM of a lazy tree's listing, named @name there) as
 * export_plan_store() would: *@out is a new finished root whose vms/, raw/,
 * snapshots/ and by-id/ hold what the tree shows of it (a VM found not
 * exportable as export_plan_store_lazy() leaves it out). Returns 0, or a
 * negative errno with a message: out of memory, or a fault of the moment
 * (error_is_transient(): nothing is planned, try again later).
 */
int export_plan_listed_vm(struct export_planner *planner, const struct store_vm *vm, size_t index,
			  const char *name, struct export_node **out, struct error *err);

#endif
