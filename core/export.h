/*
 * Export folders: what the export mount and `impex export` present for a
 * store. This first part names things: the folders of VMs and snapshots get
 * names that are safe as file names, unique among their siblings, and stable
 * while the store changes around them.
 */
#ifndef IMPEX_EXPORT_H
#define IMPEX_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vhd.h"

struct error;
struct store;
struct store_vm;

/* Names are cut to this many bytes (at a character boundary). */
#define EXPORT_NAME_MAX 200

/* One thing to name: a VM or a snapshot among its siblings. */
struct export_name {
	const char *name;      /* as the configuration says it */
	const char *id;	       /* its GUID */
	int64_t creation_time; /* Unix seconds; orders clashes */
	char *out;	       /* the name given (new string, caller frees) */
};

/**
 * Write into @out (EXPORT_NAME_MAX + 1 bytes at least) @name made safe as
 * a file name: control characters, '/' and bytes that are not UTF-8 become
 * '_'; "" becomes "_", "." and ".." get a '_' in front; at most
 * EXPORT_NAME_MAX bytes.
 */
void export_safe_name(const char *name, char *out);

/**
 * Give each of the @count @names its folder name: its safe name, unless
 * that clashes (ignoring ASCII case, as the file systems copies land on may)
 * with another's. Of clashing names, the oldest (creation time, then GUID)
 * keeps it; every other gets " (" and the first 8 characters of its GUID
 * ")" after it, or its whole GUID should that clash too. So a name changes
 * only when an older namesake appears, never because of a newer one.
 * Returns 0 or -ENOMEM (then no .out is set).
 */
int export_assign_names(struct export_name *names, size_t count);

/* ---- the plan of an export folder ---- */

/* Hyper-V's export settings, with its defaults given by export_settings_default(). */
struct export_settings {
	bool copy_vm_storage;		  /* the disks (else configurations only) */
	bool copy_vm_runtime_information; /* saved state */
};

void export_settings_default(struct export_settings *settings);

enum export_type {
	EXPORT_DIR,
	EXPORT_FILE,
};

enum export_source {
	EXPORT_SOURCE_NONE,	 /* a folder */
	EXPORT_SOURCE_FILE,	 /* a file of the store, as it is */
	EXPORT_SOURCE_BYTES,	 /* bytes made here (a configuration) */
	EXPORT_SOURCE_RELOCATED, /* a differencing disk naming its parent in its folder */
};

/* One file or folder of an export. Owned by its parent; the root by the caller. */
struct export_node {
	char *name;
	enum export_type type;
	struct export_node **children; /* folders: in name order once finished */
	size_t child_count;
	enum export_source source;
	char *path;		     /* FILE, RELOCATED: the store's file */
	uint8_t *bytes;		     /* BYTES: the content */
	struct vhd_patch patches[2]; /* RELOCATED: laid over the file */
	uint64_t size;		     /* exact, known before any read */
	uint64_t allocated;	     /* bytes the source really holds (for st_blocks) */
	struct timespec mtime;	     /* taken from the sources */
	uint64_t ino;		     /* set by whoever serves the tree: its inode number */
};

/**
 * The export folder of @vm (listed by store_list) with @settings, as
 * Export-VM lays it out: "Virtual Machines/<GUID>.xml" with its disks'
 * paths made relative ("Virtual Hard Disks\<file>"), its saved state in
 * "Virtual Machines/<GUID>/", "Virtual Hard Disks/" with every file of
 * every chain of the VM and its snapshots (each differencing disk naming
 * its parent in that folder; files of one name get their disk's UUID in
 * it), and "Snapshots/" with the snapshots' configurations and saved state.
 * *@out is a new folder node named @name (caller frees with
 * export_node_free()). Returns 0 or a negative errno with a message.
 */
int export_plan_vm(struct store *store, const struct store_vm *vm,
		   const struct export_settings *settings, const char *name,
		   struct export_node **out, struct error *err);

/** Free @node and everything under it. NULL-safe. */
void export_node_free(struct export_node *node);

/** The child of @dir named @name, or NULL. */
struct export_node *export_child(const struct export_node *dir, const char *name);

/* What export_open() gives for a node whose bytes are in memory. */
#define EXPORT_NO_SOURCE (-1)

/**
 * Open the source of file @node for export_read_at(): its descriptor
 * (caller closes it), EXPORT_NO_SOURCE when the bytes are in memory, or a
 * negative errno other than -1 with a message.
 */
int export_open(const struct export_node *node, struct error *err);

/**
 * Read @len bytes at @offset of file @node (within its size) through @fd,
 * what export_open() gave. Returns 0 or a negative errno with a message.
 */
int export_read_at(const struct export_node *node, int fd, void *buf, size_t len, uint64_t offset,
		   struct error *err);

/** export_read_at() with the source opened and closed for the call (tools, tests). */
int export_read(const struct export_node *node, void *buf, size_t len, uint64_t offset,
		struct error *err);

/**
 * lseek's SEEK_DATA (@data true) or SEEK_HOLE from @offset in file @node:
 * the source's own holes (the relocation patches lie in its metadata,
 * which is data). Returns the offset, or -ENXIO past the last data (for
 * SEEK_DATA) or at or past the end, or another negative errno with a message.
 */
int64_t export_seek(const struct export_node *node, uint64_t offset, bool data, struct error *err);

/**
 * Write the tree under @node into the folder @dest (which must not exist),
 * files sparse where their sources have zeros. Returns 0 or a negative errno
 * with a message.
 */
int export_write(const struct export_node *node, const char *dest, struct error *err);

#endif
