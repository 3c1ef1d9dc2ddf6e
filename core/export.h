/*
 * export.h - the export side in one include: what the export mount and
 * `impex export` present for a store. Each part has its own module:
 *
 *   export_name.h        names of export folders: safe, unique, stable
 *   export_node.h        the nodes of a planned tree, who may read what,
 *                        the identity of sources
 *   export_plan.h        the plan of one VM's (or snapshot's) export folder,
 *                        and the planner that makes plans
 *   export_disks.h       the disks of an export folder: chains' files
 *                        relocated, merged disks, raw images
 *   export_tree.h        the mount's tree: vms/ snapshots/ raw/ by-id/, latest
 *   export_partitions.h  the partitions of raw images, read on request
 *   export_file.h        reading and seeking a planned file
 *   export_write.h       copying a plan to disk
 */
#ifndef IMPEX_EXPORT_H
#define IMPEX_EXPORT_H

#include "export_disks.h"
#include "export_file.h"
#include "export_name.h"
#include "export_node.h"
#include "export_partitions.h"
#include "export_plan.h"
#include "export_tree.h"
#include "export_write.h"

#endif
