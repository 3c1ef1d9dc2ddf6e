/*
 * export_disks.h - the disks of an export folder: the files of the chains of
 * a VM and its snapshots carried into "Virtual Hard Disks" (each differencing
 * disk relocated to name its parent there: export_node.h's RELOCATED), and a
 * state's disks merged (MERGED) or served raw (RAW). Chains are opened
 * through the planner (export_plan.h), by one thread at a time.
 */
#ifndef IMPEX_EXPORT_DISKS_H
#define IMPEX_EXPORT_DISKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "export_node.h"

struct chain;
struct error;
struct export_edits;
struct export_notes;
struct export_planner;
struct store;
struct store_disk;

/**
 * A file node (named after @path) for the store file @path as it is, or, with
 * @parent_name, for the differencing disk @path relocated to name its parent
 * @parent_name in its own folder; a VHDX is read through the disk module (a
 * log it holds served replayed, the log emptied). *@out is freed with export_node_free().
 */
int export_node_for_file(const char *path, const char *parent_name, struct export_node **out,
			 struct error *err);

/* ---- for the export modules ---- */

/* A file of the chains in an export, with the name it gets there. */
struct export_disk_file {
	char *path; /* real path in the store */
	char *name; /* its name in "Virtual Hard Disks" */
	int parent; /* index of its parent, or -1 */
	uint8_t uuid[16];
	bool vhdx; /* a VHDX file, or the merged disk of a VHDX chain (named .vhdx) */
};

struct export_disk_files {
	struct export_disk_file *files; /* owned, with their strings */
	size_t count;
};

/** Free the files of @d (not @d). */
void export_disk_files_free(struct export_disk_files *d);

/**
 * Add the files of @disk's chain (top first) to @d, opened through @p; the
 * top's index into *@top. A chain that cannot be opened for good (struct
 * export_notes: @notes, may be NULL, is told) adds what it opened, or its top
 * file alone, as it lies; a file found nowhere, or no regular file, adds
 * nothing (-1). Returns 0 or a negative errno with a message.
 */
int export_collect_chain(struct export_planner *p, const struct store_disk *disk,
			 struct export_disk_files *d, const struct export_notes *notes, int *top,
			 struct error *err);

/**
 * Name the files of @d in "Virtual Hard Disks": the file's own (for @merged
 * disks with the extension of their format, ".vhd" or ".vhdx"), or with the
 * first 4 bytes of its UUID in hexadecimal when an earlier file has that name.
 * Returns 0 or -ENOMEM.
 */
int export_name_files(struct export_disk_files *d, bool merged);

/**
 * The files of @d as nodes of @dir: differencing disks relocated to name
 * their parent there. Returns 0 or a negative errno with a message.
 */
int export_add_disks(struct export_node *dir, const struct export_disk_files *d, struct error *err);

/**
 * Edits in @e pointing each of the @count @disks' drives at its file in
 * "Virtual Hard Disks" (@index[i] in @d; -1: none).
 */
void export_edit_disk_paths(struct export_edits *e, const struct store_disk *disks, size_t count,
			    const struct export_disk_files *d, const int *index);

/**
 * Open the chain of @top (a path) the way @s does (path map, confinement);
 * *@chain is freed with chain_close(). Returns 0 or a negative errno with a message.
 */
int export_open_chain(struct store *s, const char *top, struct chain **chain, struct error *err);

/* A chain merged: the files a state's disk becomes. */
struct export_merged {
	uint64_t vhd_size, vhd_allocated, raw_allocated, disk_size;
	struct timespec mtime;
	uint64_t stamp;
	struct export_access access; /* of the chain's files, ANDed */
};

/**
 * A node named @name of @dir made from the chain of @top (in store @s,
 * measured as @m): its merged disk (with @seed) or, @seed NULL, its raw view.
 * Returns 0 or -ENOMEM with a message.
 */
int export_add_chain_node(struct export_node *dir, const char *name, struct store *s,
			  const char *top, const struct export_merged *m, const char *seed,
			  struct error *err);

/* One state of a VM (its current one, or a snapshot's) with each disk's chain measured. */
struct export_state {
	const char *id;			/* the GUID its export has; borrowed */
	const struct store_disk *disks; /* borrowed */
	size_t disk_count;
	struct export_disk_files
		names; /* per disk: its top named after its base; no path: left out */
	struct export_merged *merged; /* per disk */
	bool carry; /* a disk left out is carried as it lies (a VM's own folder) */
};

/** Free what export_state_prepare() gave @st (not @st). */
void export_state_free(struct export_state *st);

/**
 * Measure and name the disks of @st ("<base>.vhd"), their chains opened
 * through @p; a disk whose chain cannot be opened for good is left out (the
 * planner's notes told). Returns 0 or a negative errno with a message.
 */
int export_state_prepare(struct export_planner *p, struct export_state *st, struct error *err);

/**
 * Each disk of @st merged into "Virtual Hard Disks" of @root, named
 * "<base>.vhd". Returns 0 or a negative errno with a message.
 */
int export_add_merged_disks(struct export_node *root, struct export_planner *p,
			    struct export_state *st, struct error *err);

/**
 * The disks of @st left out of its merged disks, carried into "Virtual Hard
 * Disks" of @root as far as they open (export_collect_chain()), each drive's
 * path made its top's there in @e. Returns 0 or a negative errno with a message.
 */
int export_carry_left_out(struct export_node *root, struct export_planner *p,
			  const struct export_state *st, struct export_edits *e, struct error *err);

#endif
