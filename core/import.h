/*
 * Import: Hyper-V's import settings (Msvm_VirtualSystemImportSettingData)
 * for an export folder, as a document a user edits.
 *
 * The document is text, one "key = value" a line ('#' starts a comment
 * line), with Hyper-V's settings under lower-case names:
 *
 *   create_copy = true                 copy to the targets (false: register in place)
 *   generate_new_id = true             new GUIDs for the VM and its snapshots
 *   name = blog                        the imported VM's name
 *   vm = GUID                          which VM of the folder (when it holds several)
 *   source_vm_data_root = DIR          where the export's files are read: configurations,
 *   source_vhd_data_root = DIR         disks,
 *   source_snapshot_data_root = DIR    snapshots' configurations and saved state
 *   target_vm_data_root = DIR          where the copies go, by kind (folder-level defaults)
 *   target_vhd_data_root = DIR
 *   target_snapshot_data_root = DIR
 *   security_scope =                   the authorization scope ("": none)
 *   resource.N.current = PATH          a disk as the configurations record it,
 *   resource.N.source = PATH           where to read it now (need not be in the folder),
 *   resource.N.target = PATH           where its copy goes (a per-disk override)
 *   network.N.source = SWITCH          an adapter's switch, by friendly name,
 *   network.N.target = SWITCH          and the switch of this host it is connected to
 *                                      ("" leaves it disconnected)
 *   disconnect_unknown_switches = false  true: an adapter whose switch this host
 *                                      lacks is disconnected (false: an error)
 *
 * See docs/IMPORT.md.
 */
#ifndef IMPEX_IMPORT_H
#define IMPEX_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config_adapter;
struct error;
struct store;
struct store_switch;
struct store_vm;

/* At most this many resources or networks in a document. */
#define IMPORT_MAX_ITEMS 4096

struct import_resource {
	char *current; /* as the configurations record it */
	char *source;  /* where it is read now ("" when not found) */
	char *target;  /* where its copy goes */
};

struct import_network {
	char *source; /* the switch an adapter names (its friendly name) */
	char *target; /* the switch of this host ("": disconnected) */
};

struct import_settings {
	bool create_copy;
	bool generate_new_id;
	char *name;
	char *vm; /* the VM's GUID: which one, when the folder holds several */
	char *source_vm_data_root;
	char *source_vhd_data_root;
	char *source_snapshot_data_root;
	char *target_vm_data_root;
	char *target_vhd_data_root;
	char *target_snapshot_data_root;
	char *security_scope;
	bool disconnect_unknown_switches; /* unknown switches disconnect, not refuse */
	struct import_resource *resources;
	size_t resource_count;
	struct import_network *networks;
	size_t network_count;
	/* Which booleans a parsed document gave (import_settings_merge() keeps the rest). */
	bool create_copy_given, generate_new_id_given, disconnect_unknown_switches_given;
};

/**
 * The settings Hyper-V would offer for importing the export folder @dir into
 * the store whose first root is @store_root: copy with new IDs, the VM's
 * name, the folder's roots as sources and the store's as targets, each disk
 * the configurations name (the VM's and its snapshots') with where it is
 * found now and where its copy would go, and each switch an adapter names
 * (the VM's and its snapshots', config_adapter_switch()) mapped to the
 * switch of that name. The folder must hold exactly one VM.
 * *@out is filled (free with import_settings_free()). Returns 0 or a
 * negative errno with a message.
 */
int import_settings_defaults(const char *dir, const char *store_root, struct import_settings *out,
			     struct error *err);

/**
 * Which of the @count VMs @vms (listed from the folder @dir) the settings
 * @want (a GUID, or NULL or "" when the folder must hold one) name. Returns
 * its index, or -EINVAL with a message.
 */
int import_pick_vm(const struct store_vm *vms, size_t count, const char *want, const char *dir,
		   struct error *err);

/**
 * The defaults for @dir (import_settings_defaults()) with the @count parsed
 * documents @given laid over them in turn (import_settings_merge(), @names
 * naming them for messages): a later one wins. Returns 0 or a negative
 * errno with a message; *@out is filled only on success.
 */
int import_settings_layered(const char *dir, const char *store_root,
			    const struct import_settings *given, const char *const *names,
			    size_t count, struct import_settings *out, struct error *err);

/**
 * Parse the document @text (@len bytes) named @name (for messages) into
 * *@out (free with import_settings_free()). Every key must be known and
 * given once; a resource or network must have both (all) its fields.
 * Returns 0 or -EINVAL with a message naming the line.
 */
int import_settings_parse(const char *text, size_t len, const char *name,
			  struct import_settings *out, struct error *err);

/** import_settings_parse() of the file @path (at most 1 MiB). */
int import_settings_load(const char *path, struct import_settings *out, struct error *err);

/** import_settings_load() of the file open on @fd, named @path in messages. */
int import_settings_load_fd(int fd, const char *path, struct import_settings *out,
			    struct error *err);

/** Write @settings as the document import_settings_parse() reads. Returns 0 or -errno. */
int import_settings_write(const struct import_settings *settings, FILE *out);

void import_settings_free(struct import_settings *settings);

/**
 * Lay the settings a document gave (@given, parsed) over @settings (the
 * defaults for the folder): what it leaves out keeps its default. Each
 * resource of @given must name (by its current path) a disk of the
 * defaults, each network a switch an adapter names. Returns 0, -EINVAL
 * with a message naming @name, -ENOMEM.
 */
int import_settings_merge(struct import_settings *settings, const struct import_settings *given,
			  const char *name, struct error *err);

/* ---- switches ---- */

/* Where an import connects an adapter (import_adapter_target()). */
enum import_connection {
	IMPORT_CONNECT,	    /* to a switch of the store */
	IMPORT_UNCONNECTED, /* nowhere: it names no switch in the export */
	IMPORT_DISCONNECT,  /* nowhere: its network line's target is empty */
	IMPORT_DROPPED,	    /* nowhere: its switch is not here (disconnect_unknown_switches) */
	IMPORT_UNKNOWN,	    /* its switch, or its network line's target, is not here: an error */
};

/**
 * Where @settings connect @adapter among the store's @count @switches: the
 * network line whose source is its switch (config_adapter_switch()) sends it
 * to that line's target, else to its own switch. *@to is the store's switch
 * for IMPORT_CONNECT (borrowed from @switches), else NULL; *@target the
 * switch it is sent to (borrowed from @settings or @adapter); *@line that
 * network line's N, 0 for none. disconnect_unknown_switches drops an
 * adapter sent to its own switch only: a target a network line names that
 * does not exist (a typo) stays IMPORT_UNKNOWN.
 */
enum import_connection import_adapter_target(const struct import_settings *settings,
					     const struct config_adapter *adapter,
					     const struct store_switch *switches, size_t count,
					     const struct store_switch **to, const char **target,
					     size_t *line);

/* ---- the compatibility report (Compare-VM) ---- */

enum import_severity {
	IMPORT_ERROR,	/* the import would fail */
	IMPORT_WARNING, /* the import would change something (docs/IMPORT.md) */
};

struct import_issue {
	const char *id; /* stable: "disk-missing", "switch-unknown", ... (docs/IMPORT.md) */
	enum import_severity severity;
	char *file; /* the file concerned ("" for none) */
	char *message;
};

struct import_report {
	struct import_issue *issues;
	size_t count;
	size_t errors;
};

/**
 * What importing the export folder @dir into @store with @settings would
 * meet, without changing anything: missing or damaged disks and broken
 * chains, adapters on switches the store lacks (an error, a warning with
 * disconnect_unknown_switches) or whose switch fields disagree, a GUID
 * already in the store, name and static
 * MAC clashes, target files that exist (renamed by the rule of
 * docs/IMPORT.md), too little space at the targets. *@out is filled (free
 * with import_report_free()). @flags: 0, or IMPORT_ADOPT (files of the folder
 * on a target's file system need no room there). Returns 0 (the issues are in the report) or a
 * negative errno with a message for a folder or store that cannot be read.
 */
int import_compare(const char *dir, struct store *store, const struct import_settings *settings,
		   unsigned flags, struct import_report *out, struct error *err);

void import_report_free(struct import_report *report);

/**
 * The name a copy meant for @want gets: @want if no file has it, else
 * "<stem> (<n>)<ext>" with the smallest n from 2 that no file has and
 * @taken (may be NULL) does not claim. A new string, or NULL.
 */
char *import_free_name(const char *want, bool (*taken)(void *ctx, const char *path), void *ctx);

/**
 * Why the place @rel (a path relative to a target root, '/'-separated; ""
 * for the root itself) may not receive a file or folder of an import whose
 * settings came from someone untrusted: a component that is not a plain name
 * (empty, ".", "..", control characters), a hidden one (a leading '.': the
 * daemon's staging and journal folders, temporary names), or the folders of
 * configurations and saved state ("Virtual Machines", "Snapshots", any
 * case). Returns NULL when it may, else the reason (static text).
 */
const char *import_target_refusal(const char *rel);

/**
 * The export folder @dir opened as a store, its files readable also in the
 * folders of the disks @settings (may be NULL) read from elsewhere.
 */
int import_open_folder(const char *dir, const struct import_settings *settings,
		       struct store **out, struct error *err);

/**
 * The permission bits a copy of a file with @mode gets: the source's, less
 * set-user-ID, set-group-ID, sticky and write by group or others. A copy is
 * never wider than what it copies (docs/SECURITY.md).
 */
static inline unsigned import_safe_mode(unsigned mode)
{
	return mode & 0755;
}

/* ---- the import (core/import_run.c, core/import_copy.c, core/import_recover.c) ---- */

struct import_progress {
	/* Called as data is copied: @done of @total bytes (sparse files count whole), @file the
	 * file being written; and once more before the first file takes its name in the store.
	 * A negative errno it returns stops the import, which is rolled back. */
	int (*report)(void *ctx, uint64_t done, uint64_t total, const char *file);
	/* Called (may be NULL) with what a recovery left alone, and why. */
	void (*notice)(void *ctx, const char *message);
	void *ctx;
};

/*
 * IMPORT_ADOPT: the folder's files are the import's own (an import mount
 * wrote them there, on the targets' file systems): each one on the file
 * system of its target takes its new name by a hard link, differencing
 * disks changed where they are, instead of being copied. The folder's names
 * are left for the caller to remove.
 */
#define IMPORT_ADOPT 1u

/**
 * Import the export folder @dir into @store with @settings (the defaults
 * with a document laid over them), with the store's lock held throughout.
 * First what killed imports left goes (import_recover()); then
 * import_compare() runs again, as the store is now: an error in its report
 * refuses the import with -ECANCELED, and nothing is changed. A caller that
 * checked the folder itself before (an import mount) takes -ECANCELED as
 * "the store changed since my check" (another import, a switch removed,
 * room taken) and checks again. With create_copy, every file of every chain
 * is copied to its target (a free name, never over a file), differencing
 * disks naming their parents' new files; saved state and configurations go
 * to the target roots, rewritten (new GUIDs with generate_new_id, the name,
 * disk paths, each adapter's switch fields naming the switch
 * import_adapter_target() gives, or cleared, the scope), the VM's
 * configuration last: that is the commit, and a failure before it leaves
 * nothing. Without create_copy the disks stay where they are read. The
 * folder is only read (IMPORT_ADOPT: its files are linked, a differencing
 * disk's parent locator patched where it is). The VM's GUID goes into @id.
 * Returns 0, -ECANCELED (the report has an error: nothing done), or another
 * negative errno with a message (everything made was removed).
 */
int import_run(const char *dir, struct store *store, const struct import_settings *settings,
	       unsigned flags, const struct import_progress *progress, char id[37],
	       struct error *err);

/**
 * Whether IMPORT_ADOPT may link @source into @target_dir rather than copy
 * it: @source lies in the import's folder @dir_real (a real path) and on
 * the file system of @target_dir (or of its nearest folder that exists).
 */
bool import_adoptable(const char *dir_real, const char *source, const char *target_dir);

/**
 * What imports killed midway left in @store and at the targets of
 * @settings: files placed under the journal of an import that never
 * committed (core/journal.h), temporary names, and the staging folders no
 * running import mount holds (core/staging.h). Takes the store's lock.
 * @report (may be NULL) is told what is left alone, and why. Returns 0 or
 * a negative errno.
 */
int import_recover(struct store *store, const struct import_settings *settings,
		   void (*report)(void *ctx, const char *message), void *ctx, struct error *err);

#endif
