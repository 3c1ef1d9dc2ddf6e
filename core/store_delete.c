/*
 * store_delete.c - deleting a VM (impex vm delete): its configuration
 * first, from then on the VM does not exist; then its snapshots' and its
 * saved-state folders, and with its disks the files of its chains that no
 * other VM uses. What cannot be removed is named in the message.
 */
#include "store.h"

#include "chain.h"
#include "config.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "pathbuf.h"
#include "pathmap.h"
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A list of paths: files to delete, configurations found. */
struct paths {
	char **list;
	size_t count;
};

/* Add a copy of @path to @p. Returns 0 or -ENOMEM. */
static int paths_add(struct paths *p, const char *path)
{
	char **grown = realloc(p->list, (p->count + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	p->list = grown;
	if (!(p->list[p->count] = strdup(path)))
		return -ENOMEM;
	p->count++;
	return 0;
}

static void paths_release(struct paths *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->list[i]);
	free(p->list);
	p->list = NULL;
	p->count = 0;
}

/* Add the files of @disk's chain to @files (no duplicates). */
static void collect_chain(struct store *s, const struct store_disk *disk, struct paths *files)
{
	struct chain *chain = NULL;
	struct error ignored;

	if (store_open_chain(s, disk, &chain, &ignored) < 0)
		return;
	for (unsigned level = 0; level < chain_depth(chain); level++) {
		const char *path = disk_path(chain_level(chain, level));
		bool known = false;

		for (size_t i = 0; i < files->count && !known; i++)
			known = strcmp(files->list[i], path) == 0;
		if (!known)
			paths_add(files, path);
	}
	chain_close(chain);
}

/* What a deletion could not remove, named for its message. */
struct leftovers {
	char text[800]; /* "'path' (why); ...", as many as fit */
	size_t count;
	int code;  /* the errno of the first */
	bool full; /* "; ..." ends the text */
};

static void left_behind(struct leftovers *left, const char *path, const char *why, int code)
{
	size_t n = strlen(left->text);
	size_t room = sizeof(left->text) - n - 6; /* 6 kept for "; ..." */
	int written;

	if (left->count++ == 0)
		left->code = code;
	if (left->full)
		return;
	written = snprintf(left->text + n, room, "%s'%s' (%s)", n ? "; " : "", path, why);
	if (written < 0 || (size_t)written >= room) {
		/* No room for it: "..." says there is more. */
		strcpy(left->text + n, n ? "; ..." : "...");
		left->full = true;
	}
}

/* Remove the file or empty folder @path; one that stays is noted in @left. */
static void remove_noting(const char *path, struct leftovers *left)
{
	if (remove(path) < 0 && errno != ENOENT)
		left_behind(left, path, strerror(errno), errno);
}

/* fsutil_remove_tree_noting()'s note: what stays goes into the leftovers. */
static void note_left(void *ctx, const char *path, int code)
{
	left_behind(ctx, path, strerror(code), code);
}

/* Remove the saved-state folder @dir with everything in it (the VM's own: an import copies
 * all of its source's; a link there goes as itself); what stays is noted in @left. */
static void remove_state_folder(const char *dir, struct leftovers *left)
{
	fsutil_remove_tree_noting(dir, note_left, left);
}

/*
 * remove_state_folder() of the saved state of the configuration at
 * @config_path, whose GUID is @id: @known where the listing found it, else
 * "<its folder>/<id>", which may hold files though no .vsv.
 */
static void remove_state_of(const char *known, const char *config_path, const char *id,
			    struct leftovers *left)
{
	struct pathbuf folder = PATHBUF_INIT;
	const char *slash = strrchr(config_path, '/');

	if (known) {
		remove_state_folder(known, left);
		return;
	}
	if (slash)
		pathbuf_add(&folder, config_path, (size_t)(slash - config_path) + 1);
	if (pathbuf_addf(&folder, "%.36s", id) == 0)
		remove_state_folder(folder.buf, left);
	else
		left_behind(left, config_path, "its saved state: out of memory", ENOMEM);
	pathbuf_release(&folder);
}

/* Is @name "<GUID>.xml"? */
static bool is_config_file(const char *name)
{
	char id[37];

	if (strlen(name) != 40 || strcasecmp(name + 36, ".xml") != 0)
		return false;
	memcpy(id, name, 36);
	id[36] = '\0';
	return config_guid_valid(id);
}

/* Whether @path is the configuration of a snapshot of some VM of @vms. */
static bool attached(const struct store_vm *vms, size_t count, const char *path)
{
	for (size_t i = 0; i < count; i++)
		for (size_t j = 0; j < vms[i].snapshot_count; j++)
			if (strcmp(vms[i].snapshots[j].config_path, path) == 0)
				return true;
	return false;
}

/* Whether a VHD drive of @config names one of the files of @gone (blanked entries skipped). */
static bool names_one_of(struct store *s, const struct config *config, const struct paths *gone)
{
	struct config_drive *drives = NULL;
	size_t n = 0;
	bool found = false;

	if (config_drives(config, &drives, &n, NULL) < 0)
		return false;
	for (size_t i = 0; i < n && !found; i++) {
		char *path = NULL, *how = NULL;

		if (strcasecmp(drives[i].type, "VHD") == 0 && drives[i].pathname[0] &&
		    store_resolve(s, config_name(config), drives[i].pathname, &path, &how, NULL) ==
			    0)
			for (size_t k = 0; k < gone->count && !found; k++)
				found = gone->list[k][0] && strcmp(gone->list[k], path) == 0;
		free(path);
		free(how);
	}
	config_drives_free(drives, n);
	return found;
}

/*
 * The snapshot configurations of the store that the listing @vms gave no VM
 * but that are @vm's: naming it as their VM (a snapshot a crash cut short)
 * into @ours, to be deleted with it; naming one of the disks @gone, to be
 * deleted, into @strays (they would name files no longer there).
 */
static void find_unlisted(struct store *s, const struct store_vm *vms, size_t count,
			  const struct store_vm *vm, const struct paths *gone, struct paths *ours,
			  struct paths *strays)
{
	struct pathbuf dir = PATHBUF_INIT, path = PATHBUF_INIT;

	for (size_t r = 0; store_root(s, r); r++) {
		char **names = NULL;
		size_t n = 0;

		if (pathbuf_setf(&dir, "%s/%s", store_root(s, r), HYPERV_SNAPSHOTS_DIR) < 0 ||
		    fsutil_list_names(dir.buf, is_config_file, &names, &n) < 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			struct config *config = NULL;
			char *owner = NULL;

			if (pathbuf_setf(&path, "%s/%s", dir.buf, names[i]) < 0 ||
			    attached(vms, count, path.buf) ||
			    config_load(&config, path.buf, NULL) < 0)
				continue;
			if (config_get(config, STORE_KEY_VM_ID, &owner, NULL) == 0 &&
			    strcasecmp(owner, vm->id) == 0)
				paths_add(ours, path.buf);
			else if (names_one_of(s, config, gone))
				paths_add(strays, path.buf);
			free(owner);
			config_free(config);
		}
		fsutil_names_free(names, n);
	}
	pathbuf_release(&dir);
	pathbuf_release(&path);
}

static int store_delete_vm_unlocked(struct store *s, const char *vm_name, bool disks,
				    struct error *err)
{
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	struct paths files = {0}, ours = {0}, strays = {0};
	struct leftovers left = {.full = false};
	size_t count = 0;
	int rc = store_list(s, &vms, &count, err);

	if (rc == 0)
		rc = store_pick_vm(vms, count, vm_name, &vm, err);
	if (rc < 0)
		goto out;
	if (disks) {
		/* The files of the chains of its current disks and of its snapshots'
		 * disks, all found before anything goes; a file another VM uses
		 * stays, and if another VM's chains cannot all be read, nothing
		 * goes: which files they need cannot be told. */
		bool uncertain = false;

		for (size_t i = 0; i < vm->disk_count; i++)
			collect_chain(s, &vm->disks[i], &files);
		for (size_t i = 0; i < vm->snapshot_count; i++)
			for (size_t k = 0; k < vm->snapshots[i].disk_count; k++)
				collect_chain(s, &vm->snapshots[i].disks[k], &files);
		for (size_t i = 0; i < files.count; i++)
			if (store_used_elsewhere(s, vms, count, vm, files.list[i], &uncertain))
				files.list[i][0] = '\0';
		if (uncertain) {
			rc = error_set(
				err, EBUSY,
				"not deleting VM '%s' with its disks: the chains of other VMs "
				"cannot all be read, so the files they need cannot be told "
				"(vm list shows the problems)",
				vm->name);
			goto out;
		}
	}
	find_unlisted(s, vms, count, vm, &files, &ours, &strays);
	/* The configuration first: from then on the VM does not exist, and what
	 * is left of it (snapshots without a VM) is ignored until removed. */
	if (unlink(vm->config_path) < 0) {
		rc = error_errno(err, errno, "cannot remove", vm->config_path);
		goto out;
	}
	fsutil_fsync_parent(vm->config_path);
	for (size_t i = 0; i < vm->snapshot_count; i++) {
		remove_noting(vm->snapshots[i].config_path, &left);
		remove_state_of(vm->snapshots[i].saved_state, vm->snapshots[i].config_path,
				vm->snapshots[i].id, &left);
	}
	for (size_t i = 0; i < ours.count; i++) {
		remove_noting(ours.list[i], &left);
		/* Named after its file: "<GUID>.xml". */
		remove_state_of(NULL, ours.list[i], pathmap_basename(ours.list[i]), &left);
	}
	remove_state_of(vm->saved_state, vm->config_path, vm->id, &left);
	for (size_t i = 0; i < files.count; i++)
		if (files.list[i][0])
			remove_noting(files.list[i], &left);
	for (size_t i = 0; i < strays.count; i++)
		left_behind(&left, strays.list[i],
			    "a snapshot configuration of no VM, naming a deleted disk", ENOTEMPTY);
	if (left.count)
		rc = error_set(err, left.code, "VM '%s' is deleted, but left behind: %s", vm->name,
			       left.text);
out:
	paths_release(&files);
	paths_release(&ours);
	paths_release(&strays);
	store_vms_free(vms, count);
	return rc;
}

int store_delete_vm(struct store *s, const char *vm_name, bool disks, struct error *err)
{
	int lock = store_lock(s, err), rc;

	if (lock < 0)
		return lock;
	rc = store_delete_vm_unlocked(s, vm_name, disks, err);
	store_unlock(lock);
	return rc;
}
