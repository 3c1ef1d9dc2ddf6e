/*
 * export_plan.c - the plan of one VM's export folder, or of one snapshot's
 * (see export_plan.h): its configurations with their edits, its saved state,
 * and its disks (export_disks.c).
 */
#include "export_plan.h"

#include "chain.h"
#include "config.h"
#include "error.h"
#include "export_disks.h"
#include "export_name.h"
#include "fsutil.h"
#include "hash.h"
#include "hyperv.h"
#include "pathbuf.h"
#include "savedstate.h"
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

void export_settings_default(struct export_settings *settings)
{
	settings->copy_vm_storage = true;
	settings->copy_vm_runtime_information = true;
	settings->copy_snapshot_configuration = EXPORT_SNAPSHOTS_ALL;
	settings->create_vm_export_subdirectory = false;
}

/* ---- the planner ---- */

struct export_planner {
	struct store *store; /* borrowed */
	struct export_settings settings;
	struct export_notes notes;
	/* While one VM is planned (export_plan_vm() and export_plan_snapshot(), or one VM of
	 * export_plan_store()): the chains of the VM and its snapshots share their files,
	 * which are then opened once. None between plans: a file changed in the store is
	 * opened anew. Reads (export_open) never use it. */
	struct chain_cache *cache;
	/* While one VM is planned too: the configurations read that are read again, its
	 * snapshots' (its folder and theirs edit them), unedited. */
	struct read_config *configs;
	size_t config_count;
};

struct read_config {
	char *path;
	struct stat st; /* of the file read */
	struct config *config;
};

static void forget_configs(struct export_planner *p)
{
	for (size_t i = 0; i < p->config_count; i++) {
		free(p->configs[i].path);
		config_free(p->configs[i].config);
	}
	free(p->configs);
	p->configs = NULL;
	p->config_count = 0;
}

int export_planner_new(struct store *store, const struct export_settings *settings,
		       const struct export_notes *notes, struct export_planner **out,
		       struct error *err)
{
	struct export_planner *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return error_set(err, ENOMEM, "out of memory");
	p->store = store;
	p->settings = *settings;
	if (notes)
		p->notes = *notes;
	*out = p;
	return 0;
}

void export_planner_free(struct export_planner *p)
{
	if (!p)
		return;
	chain_cache_free(p->cache);
	forget_configs(p);
	free(p);
}

int export_planner_vm_begin(struct export_planner *p, bool *opened)
{
	*opened = false;
	if (p->cache)
		return 0;
	if (chain_cache_new(&p->cache) < 0)
		return -ENOMEM;
	*opened = true;
	return 0;
}

void export_planner_vm_end(struct export_planner *p, bool opened)
{
	if (!opened)
		return;
	chain_cache_free(p->cache);
	p->cache = NULL;
	forget_configs(p);
}

int export_planner_open_chain(struct export_planner *p, const struct store_disk *disk, bool partial,
			      struct chain **chain, struct error *err)
{
	return partial ? store_open_chain_partial(p->store, disk, p->cache, chain, err)
		       : store_open_chain_cached(p->store, disk, p->cache, chain, err);
}

struct store *export_planner_store(const struct export_planner *p)
{
	return p->store;
}

const struct export_notes *export_planner_notes(const struct export_planner *p)
{
	return &p->notes;
}

/* ---- configurations ---- */

/* Note an edit: @key set to @value (with @type, or the type it has), or removed (@value NULL). */
void export_edits_add(struct export_edits *e, const char *key, const char *type, const char *value)
{
	struct export_edit *grown =
		e->failed ? NULL : realloc(e->list, (e->count + 1) * sizeof(*grown));

	if (!grown) {
		e->failed = true;
		return;
	}
	e->list = grown;
	grown += e->count++;
	grown->optional = false;
	grown->key = strdup(key);
	grown->type = type ? strdup(type) : NULL;
	grown->value = value ? strdup(value) : NULL;
	if (!grown->key || (type && !grown->type) || (value && !grown->value))
		e->failed = true;
}

/* The bytes of @config with @edits made (it is edited), or only their length if @bytes is
 * NULL. */
static int make_edited(struct config *config, const struct export_edit *edits, size_t count,
		       char **bytes, size_t *len, struct error *err)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < count; i++) {
		char *had = NULL;

		if (edits[i].optional && config_get(config, edits[i].key, &had, NULL) == -ENOENT)
			continue;
		free(had);
		if (edits[i].value)
			rc = config_set(config, edits[i].key, edits[i].type, edits[i].value, err);
		else
			config_remove(config, edits[i].key);
	}
	if (rc < 0)
		return rc;
	return bytes ? config_serialize(config, bytes, len, err)
		     : config_serialized_size(config, len, err);
}

/* The bytes of configuration @path with @edits made. */
int export_config_make(const char *path, const struct export_edit *edits, size_t count,
		       char **bytes, size_t *len, struct error *err)
{
	struct config *config = NULL;
	int rc = config_load(&config, path, err);

	if (rc == 0)
		rc = make_edited(config, edits, count, bytes, len, err);
	config_free(config);
	return rc;
}

/* Configuration @path into *@config (the caller's), the file read as *@st: read now, or the
 * copy of its reading kept by @p; kept for a later call if @again (the plan reads it again). */
static int read_config(struct export_planner *p, const char *path, bool again, struct stat *st,
		       struct config **config, struct error *err)
{
	struct read_config *kept = NULL, *grown;
	int fd, rc;

	*config = NULL;
	for (size_t i = 0; i < p->config_count && !kept; i++)
		if (strcmp(p->configs[i].path, path) == 0)
			kept = &p->configs[i];
	if (kept) {
		*st = kept->st;
		if (again)
			return config_copy(kept->config, config) < 0
				       ? error_set(err, ENOMEM, "out of memory")
				       : 0;
		/* Its last reading: the kept one itself. */
		*config = kept->config;
		free(kept->path);
		*kept = p->configs[--p->config_count];
		return 0;
	}
	fd = fsutil_open_source(path, false);
	if (fd < 0)
		return error_errno(err, -fd, "cannot open", path);
	rc = fstat(fd, st) < 0 ? error_errno(err, errno, "cannot stat", path) : 0;
	if (rc == 0)
		rc = config_load_fd(config, fd, path, err);
	close(fd);
	if (rc < 0 || !again || !p->cache) /* no VM being planned: nothing kept */
		return rc;
	grown = realloc(p->configs, (p->config_count + 1) * sizeof(*grown));
	if (grown)
		p->configs = grown;
	kept = grown ? &grown[p->config_count] : NULL;
	if (kept && (kept->path = strdup(path)) && config_copy(*config, &kept->config) == 0) {
		kept->st = *st;
		p->config_count++;
	} else if (kept) {
		free(kept->path);
	}
	return 0; /* kept or not, it was read */
}

/* The configuration @path with the edits of @e as the node @name of @dir; takes the edits.
 * @again: the plan of @p reads it again. */
static int add_config(struct export_planner *p, struct export_node *dir, const char *name,
		      const char *path, bool again, struct export_edits *e, struct error *err)
{
	struct export_node *node = NULL;
	struct config *config = NULL;
	struct stat st;
	size_t len = 0;
	int rc = e->failed ? error_set(err, ENOMEM, "out of memory") : 0;

	if (rc == 0)
		rc = read_config(p, path, again, &st, &config, err);
	/* Made again on open: the plan keeps only its size. */
	if (rc == 0)
		rc = make_edited(config, e->list, e->count, NULL, &len, err);
	config_free(config);
	if (rc == 0 &&
	    (!(node = export_node_new(name, EXPORT_FILE)) || !(node->path = strdup(path))))
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc < 0) {
		export_node_free(node);
		export_edits_free(e->list, e->count);
		*e = (struct export_edits){0};
		return rc;
	}
	node->source = EXPORT_SOURCE_CONFIG;
	node->edits = e->list;
	node->edit_count = e->count;
	*e = (struct export_edits){0};
	node->size = len;
	node->allocated = len;
	node->mtime = st.st_mtim;
	node->stamp = export_stamp_mix(HASH_START, &st);
	export_access_own(node, &st);
	return export_node_add(dir, node) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
}

/* The files of the saved-state folder @from under @dir/@name; files named
 * after @old_id (if not NULL) are named after @new_id instead. */
static int add_saved_state(struct export_node *dir, const char *name, const char *from,
			   const char *old_id, const char *new_id, struct error *err)
{
	struct export_node *state = export_subdir(dir, name);
	const struct savedstate_rename rename = {old_id, new_id};
	struct savedstate_file *files = NULL;
	struct pathbuf path = PATHBUF_INIT;
	size_t count = 0;
	struct stat folder;
	int rc;

	if (!state)
		return error_set(err, ENOMEM, "out of memory");
	if (stat(from, &folder) < 0)
		return error_errno(err, errno, "cannot stat", from);
	export_access_own(state, &folder);
	/* What a copy of a saved state carries, and under which names: one rule (core/savedstate.h). */
	rc = savedstate_files(from, &rename, old_id ? 1 : 0, &files, &count, err);
	for (size_t i = 0; i < count && rc == 0; i++) {
		if (pathbuf_setf(&path, "%s/%s", from, files[i].name) < 0)
			rc = error_set(err, ENOMEM, "out of memory");
		else
			rc = export_add_file(state, files[i].as, path.buf, err);
	}
	pathbuf_release(&path);
	free(files);
	return rc;
}

/* The edits that make a configuration that of an independent VM @id named @name. */
static void edit_independent(struct export_edits *e, const char *id, const char *name)
{
	export_edits_add(e, "properties/global_id", "string", id);
	/* A VM's configuration's type (a snapshot's is "Snapshots"), not a folder's name. */
	export_edits_add(e, "properties/type_id", "string", CONFIG_TYPE_VM);
	export_edits_add(e, "properties/name", "string", name);
	export_edits_add(e, STORE_KEY_PARENT, NULL, NULL);
	export_edits_add(e, STORE_KEY_CURRENT, NULL, NULL);
	export_edits_add(e, STORE_KEY_COUNT, NULL, NULL);
	/* Its VM's GUID, where the configuration has it, is now its own. */
	export_edits_add(e, STORE_KEY_VM_ID, NULL, id);
	if (!e->failed)
		e->list[e->count - 1].optional = true;
}

/* A folder named after the VM around @folder, for create_vm_export_subdirectory. */
static int wrap(struct export_node **folder, const char *outer, const char *vm_name,
		struct error *err)
{
	struct export_node *around = export_node_new(outer, EXPORT_DIR);
	char inner[EXPORT_NAME_MAX + 2];

	export_safe_name(vm_name, inner);
	free((*folder)->name);
	(*folder)->name = strdup(inner);
	if (!around || !(*folder)->name) {
		export_node_free(*folder);
		export_node_free(around);
		*folder = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	if (export_node_add(around, *folder) < 0) { /* it freed the folder */
		export_node_free(around);
		*folder = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	*folder = around;
	return 0;
}

/* The folders every export has; *@root named @name. */
static int plan_begin(const char *name, struct export_node **root, struct error *err)
{
	*root = export_node_new(name, EXPORT_DIR);
	if (!*root || !export_subdir(*root, HYPERV_VMS_DIR) ||
	    !export_subdir(*root, HYPERV_DISKS_DIR) ||
	    !export_subdir(*root, HYPERV_SNAPSHOTS_DIR)) {
		export_node_free(*root);
		*root = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* The time of the configuration in "Virtual Machines" of the export @root (the VM it
 * makes has it), or 0 if it has none. */
static struct timespec config_time(const struct export_node *root)
{
	for (size_t i = 0; i < root->child_count; i++) {
		const struct export_node *vms = root->children[i];

		if (vms->type != EXPORT_DIR || strcmp(vms->name, HYPERV_VMS_DIR) != 0)
			continue;
		for (size_t k = 0; k < vms->child_count; k++)
			if (vms->children[k]->source == EXPORT_SOURCE_CONFIG)
				return vms->children[k]->mtime;
	}
	return (struct timespec){0, 0};
}

/* Finish @root (or free it on @rc < 0) into *@out, wrapped if asked: a folder of it that
 * holds nothing has the time of the configuration of the VM it makes. */
static int plan_end(int rc, struct export_node *root, const struct export_settings *settings,
		    const char *name, const char *vm_name, struct export_node **out,
		    struct error *err)
{
	struct timespec empty = {0, 0};

	if (rc == 0)
		empty = config_time(root);
	if (rc == 0 && settings->create_vm_export_subdirectory)
		rc = wrap(&root, name, vm_name, err);
	if (rc < 0) {
		export_node_free(root);
		return rc;
	}
	export_finish(root, empty);
	*out = root;
	return 0;
}

/* A state's export as an independent VM @st->id named @vm_name: configuration @config_path,
 * merged disks (with @storage; @st prepared then), the saved state in @state (of GUID
 * @old_id) unless left out. */
static int plan_merged(struct export_planner *p, struct export_state *st, const char *config_path,
		       const char *state, const char *old_id, const char *vm_name, bool storage,
		       struct export_node *root, struct error *err)
{
	struct export_edits e = {0};
	char file[64];
	int rc = 0;

	if (storage) {
		rc = export_add_merged_disks(root, p, st, err);
		if (rc < 0)
			return rc;
	}
	edit_independent(&e, st->id, vm_name);
	if (storage) {
		int *index = calloc(st->disk_count ? st->disk_count : 1, sizeof(*index));

		for (size_t i = 0; index && i < st->disk_count; i++)
			index[i] = st->names.files[i].path ? (int)i : -1;
		if (!index)
			e.failed = true;
		else
			export_edit_disk_paths(&e, st->disks, st->disk_count, &st->names, index);
		free(index);
		if (st->carry)
			rc = export_carry_left_out(root, p, st, &e, err);
	}
	snprintf(file, sizeof(file), "%s.xml", st->id);
	if (rc == 0)
		rc = add_config(p, export_subdir(root, HYPERV_VMS_DIR), file, config_path, false,
				&e, err);
	else
		export_edits_free(e.list, e.count);
	if (rc == 0 && state && p->settings.copy_vm_runtime_information)
		rc = add_saved_state(export_subdir(root, HYPERV_VMS_DIR), st->id, state, old_id,
				     st->id, err);
	return rc;
}

/* export_plan_vm() with the planner's cache open. */
static int plan_vm(struct export_planner *p, const struct store_vm *vm, const char *name,
		   struct export_node **out, struct error *err)
{
	const struct export_settings *settings = &p->settings;
	struct export_node *root = NULL, *vms, *disks, *snaps;
	struct export_disk_files d = {0};
	struct export_edits e = {0};
	int *tops = NULL; /* each drive's file in @d: the VM's, then each snapshot's in turn */
	size_t drives = vm->disk_count, at = 0;
	char file[64];
	int rc = plan_begin(name, &root, err);

	*out = NULL;
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < vm->snapshot_count; i++)
		drives += vm->snapshots[i].disk_count;
	vms = export_subdir(root, HYPERV_VMS_DIR);
	disks = export_subdir(root, HYPERV_DISKS_DIR);
	snaps = export_subdir(root, HYPERV_SNAPSHOTS_DIR);
	if (vm->problem) {
		rc = error_set(err, EINVAL, "VM '%s' cannot be exported: %s", vm->name,
			       vm->problem);
		goto out;
	}
	if (settings->copy_snapshot_configuration == EXPORT_SNAPSHOTS_NONE) {
		/* The VM alone: its current disks merged, so that it stands alone. */
		struct export_state st = {.id = vm->id,
					  .disks = vm->disks,
					  .disk_count = vm->disk_count,
					  .carry = true};

		if (settings->copy_vm_storage)
			rc = export_state_prepare(p, &st, err);
		if (rc == 0)
			rc = plan_merged(p, &st, vm->config_path, vm->saved_state, NULL, vm->name,
					 settings->copy_vm_storage, root, err);
		export_state_free(&st);
		goto out;
	}
	if (settings->copy_vm_storage) {
		tops = calloc(drives ? drives : 1, sizeof(*tops));
		if (!tops)
			rc = error_set(err, ENOMEM, "out of memory");
		for (size_t i = 0; i < vm->disk_count && rc >= 0; i++)
			rc = export_collect_chain(p, &vm->disks[i], &d, &p->notes, &tops[at++],
						  err);
		for (size_t i = 0; i < vm->snapshot_count && rc >= 0; i++)
			for (size_t k = 0; k < vm->snapshots[i].disk_count && rc >= 0; k++)
				rc = export_collect_chain(p, &vm->snapshots[i].disks[k], &d,
							  &p->notes, &tops[at++], err);
		if (rc >= 0)
			rc = export_name_files(&d, false) < 0
				     ? error_set(err, ENOMEM, "out of memory")
				     : 0;
		if (rc >= 0)
			rc = export_add_disks(disks, &d, err);
		if (rc < 0)
			goto out;
		export_edit_disk_paths(&e, vm->disks, vm->disk_count, &d, tops);
	}
	at = vm->disk_count;
	snprintf(file, sizeof(file), "%s.xml", vm->id);
	rc = add_config(p, vms, file, vm->config_path, false, &e, err);
	if (rc == 0 && vm->saved_state && settings->copy_vm_runtime_information)
		rc = add_saved_state(vms, vm->id, vm->saved_state, NULL, NULL, err);
	for (size_t i = 0; i < vm->snapshot_count && rc == 0; i++) {
		const struct store_snapshot *snap = &vm->snapshots[i];

		if (settings->copy_vm_storage)
			export_edit_disk_paths(&e, snap->disks, snap->disk_count, &d, tops + at);
		at += snap->disk_count;
		snprintf(file, sizeof(file), "%s.xml", snap->id);
		/* Read again for the snapshot's own folder (export_tree.c). */
		rc = add_config(p, snaps, file, snap->config_path, true, &e, err);
		if (rc == 0 && snap->saved_state && settings->copy_vm_runtime_information)
			rc = add_saved_state(snaps, snap->id, snap->saved_state, NULL, NULL, err);
	}
out:
	free(tops);
	export_edits_free(e.list, e.count);
	export_disk_files_free(&d);
	return plan_end(rc, root, settings, name, vm->name, out, err);
}

int export_plan_vm(struct export_planner *p, const struct store_vm *vm, const char *name,
		   struct export_node **out, struct error *err)
{
	bool opened;
	int rc;

	*out = NULL;
	if (export_planner_vm_begin(p, &opened) < 0)
		return error_set(err, ENOMEM, "out of memory");
	rc = plan_vm(p, vm, name, out, err);
	export_planner_vm_end(p, opened);
	return rc;
}

void export_snapshot_vm_id(const char *vm_id, const char *snap_id, char out[37])
{
	/* A namespace of impexfs's own for the GUIDs of exported snapshots. */
	static const uint8_t space[16] = {0x3c, 0x8e, 0x51, 0x7d, 0x0b, 0x6a, 0x4f, 0x2e,
					  0x9d, 0x14, 0xa7, 0x62, 0xc0, 0x5b, 0x38, 0xe1};
	char seed[80];
	uuid_t uuid;

	snprintf(seed, sizeof(seed), "%s/%s", vm_id, snap_id);
	for (char *p = seed; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	uuid_generate_sha1(uuid, space, seed, strlen(seed));
	uuid_unparse_upper(uuid, out);
}

/* export_plan_snapshot() with @st (whose id is the new GUID) prepared, or failed with @rc. */
int export_plan_snapshot_state(int rc, struct export_planner *p, const struct store_vm *vm,
			       const struct store_snapshot *snap, struct export_state *st,
			       const char *name, struct export_node **out, struct error *err)
{
	struct export_node *root = NULL;

	*out = NULL;
	if (rc == 0)
		rc = plan_begin(name, &root, err);
	if (rc == 0)
		rc = plan_merged(p, st, snap->config_path, snap->saved_state, snap->id, vm->name,
				 true, root, err);
	return plan_end(rc, root, &p->settings, name, vm->name, out, err);
}

/* Check that @snap can be exported, and prepare its state @st. */
int export_snapshot_prepare(struct export_planner *p, const struct store_vm *vm,
			    const struct store_snapshot *snap, struct export_state *st,
			    struct error *err)
{
	st->disks = snap->disks;
	st->disk_count = snap->disk_count;
	if (snap->problem)
		return error_set(err, EINVAL, "snapshot '%s' of VM '%s' cannot be exported: %s",
				 snap->name, vm->name, snap->problem);
	return export_state_prepare(p, st, err);
}

int export_plan_snapshot(struct export_planner *p, const struct store_vm *vm,
			 const struct store_snapshot *snap, const char *name,
			 struct export_node **out, struct error *err)
{
	char id[37];
	struct export_state st = {.id = id};
	bool opened;
	int rc;

	*out = NULL;
	if (export_planner_vm_begin(p, &opened) < 0)
		return error_set(err, ENOMEM, "out of memory");
	export_snapshot_vm_id(vm->id, snap->id, id);
	rc = export_snapshot_prepare(p, vm, snap, &st, err);
	rc = export_plan_snapshot_state(rc, p, vm, snap, &st, name, out, err);
	export_state_free(&st);
	export_planner_vm_end(p, opened);
	return rc;
}
