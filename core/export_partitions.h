/*
 * export_partitions.h - the partitions of raw images: a folder of raw/ states
 * (export_tree.h) shows "<disk>-part<N>.img" beside each "<disk>.img", read
 * while a VM of a lazy tree is planned (export_read_partitions_planning()),
 * else when the folder is first listed, not when the tree is planned. Reading
 * needs no lock (it reads the finished tree); adding to a tree served needs
 * its readers excluded (the mount's write lock).
 */
#ifndef IMPEX_EXPORT_PARTITIONS_H
#define IMPEX_EXPORT_PARTITIONS_H

#include "export_node.h"

struct error;
struct export_notes;
struct export_planner;

/**
 * The partitions of each raw image in @dir (a folder of raw/ states, marked
 * partitions_pending): "<disk>-part<N>.img" for partition N of "<disk>.img",
 * numbered as Linux numbers them (core/partition.h), each a window over the
 * image with its time, access and identity, its st_blocks the image's
 * allocated blocks inside the window. A fault of a table (a hostile one, a
 * sector that cannot be read, a name taken) is told to @notes
 * (EXPORT_PARTITIONS) and leaves out what it concerns; the image stays.
 * *@out is a new folder holding the partitions' nodes (for
 * export_add_partitions(), or freed with export_node_free()). Memory: a
 * partition table at a time. Returns 0; -ENOMEM, -EMFILE, -ENFILE, -EINTR
 * (try again later); -ESTALE, or the error of a chain that no longer opens,
 * for an image changed since it was planned; each with a message.
 */
int export_read_partitions(const struct export_node *dir, const struct export_notes *notes,
			   struct export_node **out, struct error *err);

/**
 * export_read_partitions() of @dir while its VM is planned by @planner (a VM
 * of a lazy tree, export_tree.h), its chains opened through the planner's
 * cache, telling the planner's notes; the partitions added to @dir. Returns
 * as export_read_partitions() does; on failure @dir is as it was.
 */
int export_read_partitions_planning(struct export_planner *planner, struct export_node *dir,
				    struct error *err);

/**
 * Move the nodes of @parts (export_read_partitions() of @dir) into @dir, in
 * name order, and clear its partitions_pending. On success @parts is freed;
 * on failure (-ENOMEM) @dir and @parts are as they were.
 */
int export_add_partitions(struct export_node *dir, struct export_node *parts);

#endif
