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

#endif
