/*
 * cmd_store.h - what the commands on a store share (impex store, vm, switch,
 * export, import-settings, compare, import): their options, opening the
 * store they name, and the names vm show gives disks; and the top-level
 * table of the groups store, vm and switch.
 *
 * The commands in cmd_vm.c, cmd_vm_show.c, cmd_export.c and cmd_import.c
 * begin with cmd_store_begin() (or cmd_store_parse()) and end with
 * cmd_store_end(). Single-threaded, as the whole CLI is.
 */
#ifndef IMPEX_CMD_STORE_H
#define IMPEX_CMD_STORE_H

#include "cli.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>

struct store;
struct store_disk;
struct store_vm;

/* The most --disk and --switch options vm new takes. */
#define CMD_STORE_MAX_ITEMS 64

/* The options of the store commands; each takes those its usage names. */
struct cmd_store_args {
	struct cli_common common; /* --store, --pathmap, --allow-outside, --json */
	bool verbose;		  /* vm show: each disk's file and chain */
	bool ascii;		  /* vm show: the tree in ASCII */
	bool disks_too;		  /* vm delete --disks */
	bool no_storage;	  /* export --no-vm-storage */
	bool no_runtime;	  /* export --no-runtime-information */
	const char *snapshots;	  /* export --copy-snapshot-configuration: "all", "none" or NULL */
	bool subdirectory;	  /* export --create-vm-export-subdirectory */
	const char *settings;	  /* import --settings FILE */
	bool progress;		  /* -p, --progress */
	const char *generation;	  /* vm new --generation */
	const char *disk_format;  /* vm new --disk-format */
	const char *memory;	  /* vm new --memory */
	const char *disks[CMD_STORE_MAX_ITEMS]; /* vm new --disk */
	size_t disk_count;
	const char *switches[CMD_STORE_MAX_ITEMS]; /* vm new --switch */
	size_t switch_count;
	int first; /* the index of the first operand in argv */
};

/*
 * The top-level commands of the store: the groups store, vm (cmd_vm.h) and
 * switch; ended by one without a name.
 */
extern const struct cli_command cmd_store_commands[];

/**
 * Parse the options of a store command whose usage is @usage into @a (made
 * empty first), with @min to @max operands. Returns 0, CLI_HELP, or an exit
 * status after the message; cmd_store_end() frees what @a holds, whatever
 * it returns.
 */
int cmd_store_parse(int argc, char **argv, const char *usage, int min, int max,
		    struct cmd_store_args *a);

/**
 * cmd_store_parse(), then open the store the options name (--store, else
 * $IMPEX_STORE) into *@store, its notice said as a warning. Returns 0,
 * CLI_HELP, or an exit status after the message. *@store must be NULL on
 * entry; cmd_store_end() frees it.
 */
int cmd_store_begin(int argc, char **argv, const char *usage, int min, int max,
		    struct cmd_store_args *a, struct store **store);

/** Free @store (NULL-safe) and what @a holds. Returns @rc. */
int cmd_store_end(struct cmd_store_args *a, struct store *store, int rc);

/**
 * The VMs of @store into *@vms, *@count (caller frees with store_vms_free).
 * Returns 0, or CLI_FAIL after the message.
 */
int cmd_store_list_vms(struct store *store, struct store_vm **vms, size_t *count);

/**
 * The VMs of @store into *@vms, *@count (caller frees with store_vms_free,
 * also on failure), and in *@vm the one @name names (a name or a GUID, as
 * store_pick_vm() takes it; borrowed from *@vms). Returns 0, or CLI_FAIL
 * after the message.
 */
int cmd_store_pick_vm(struct store *store, const char *name, struct store_vm **vms,
		      size_t *count, const struct store_vm **vm);

/** "ide" or "scsi". */
const char *cmd_store_bus_name(enum config_bus bus);

/** "ide0:1", "scsi0:3": where @d sits, as vm show names it, into @buf. Returns @buf. */
const char *cmd_store_disk_label(const struct store_disk *d, char *buf, size_t cap);

/** @text, or NULL (JSON null) when it is NULL or empty: an absent value. */
const char *cmd_store_or_null(const char *text);

#endif
