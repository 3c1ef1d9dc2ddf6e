/*
 * store_list.c - the listing of a store (store_list()): every configuration
 * of "Virtual Machines" and "Snapshots" read, found by content, each VM with
 * its snapshots, disks resolved (store_resolve.c), its state, and the tree
 * completed (store_tree.c).
 */
#include "store.h"

#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "pathbuf.h"
#include "store_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The folder @root/@kind/<id> ("Virtual Machines" or "Snapshots") when it holds saved state
 * (a .vsv file), else NULL; a folder there that cannot be read now sets *@fault to the errno
 * (a transient one only). */
static char *saved_state_folder(const struct store *s, const char *root, const char *kind,
				const char *id, int *fault)
{
	struct pathbuf folder = PATHBUF_INIT;
	char real[PATH_MAX];
	struct dirent *e;
	DIR *d;
	bool found = false, resolved;

	/* Only a folder inside the store: its files are copied and deleted. */
	resolved = pathbuf_setf(&folder, "%s/%s/%s", root, kind, id) == 0 &&
		   realpath(folder.buf, real) && store_inside(s, real);
	pathbuf_release(&folder);
	if (!resolved)
		return NULL;
	d = fsutil_opendir(real);
	if (!d) {
		if (error_is_transient(errno))
			*fault = errno;
		return NULL;
	}
	while ((e = readdir(d)) != NULL && !found) {
		size_t n = strlen(e->d_name);

		found = n > 4 && strcasecmp(e->d_name + n - 4, ".vsv") == 0;
	}
	closedir(d);
	return found ? strdup(real) : NULL;
}

/* May @name be a configuration? "<anything>.xml" in any case (Vagrant's
 * boxes ship "vm.XML"), not hidden: writers' temporary names (".x.tmp-...",
 * rsync's ".x.XXXXXX", "x.xml.tmp-...") are not configurations until they are
 * renamed to their final name. */
static bool is_config_name(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 4 && strcasecmp(name + n - 4, ".xml") == 0;
}

/* Is @name "<GUID>.xml"? Then @id is the GUID in upper case, else "". */
static bool guid_of_name(const char *name, char id[37])
{
	id[0] = '\0';
	if (strlen(name) != 40)
		return false;
	memcpy(id, name, 36);
	id[36] = '\0';
	if (!config_guid_valid(id)) {
		id[0] = '\0';
		return false;
	}
	for (int i = 0; i < 36; i++)
		id[i] = (char)toupper((unsigned char)id[i]);
	return true;
}

/* The names in @root's folder @kind (HYPERV_VMS_DIR, HYPERV_SNAPSHOTS_DIR) that may be
 * configurations, sorted; none when the folder does not exist. Returns 0 or -errno. */
static int list_configs(const char *root, const char *kind, char ***names, size_t *count)
{
	struct pathbuf dir = PATHBUF_INIT;
	int rc = pathbuf_setf(&dir, "%s/%s", root, kind);

	*names = NULL;
	*count = 0;
	if (rc == 0)
		rc = fsutil_list_names(dir.buf, is_config_name, names, count);
	pathbuf_release(&dir);
	return rc == -ENOENT ? 0 : rc;
}

void store_snapshot_release(struct store_snapshot *snap)
{
	free(snap->name);
	free(snap->config_path);
	free(snap->parent_id);
	free(snap->saved_state);
	free(snap->problem);
	store_disks_free(snap->disks, snap->disk_count);
	config_adapters_free(snap->adapters, snap->adapter_count);
}

void store_vm_release(struct store_vm *vm)
{
	free(vm->name);
	free(vm->config_path);
	free(vm->current_snapshot_id);
	free(vm->saved_state);
	free(vm->problem);
	store_disks_free(vm->disks, vm->disk_count);
	config_adapters_free(vm->adapters, vm->adapter_count);
	for (size_t j = 0; j < vm->snapshot_count; j++)
		store_snapshot_release(&vm->snapshots[j]);
	free(vm->snapshots);
	memset(vm, 0, sizeof(*vm));
}

void store_vms_free(struct store_vm *vms, size_t count)
{
	if (!vms)
		return;
	for (size_t i = 0; i < count; i++)
		store_vm_release(&vms[i]);
	free(vms);
}

/* The leaf at @path, or a new "" when missing. */
static char *value_or_empty(const struct config *c, const char *path)
{
	char *value = NULL;

	if (config_get(c, path, &value, NULL) < 0)
		value = strdup("");
	return value;
}

/* config_load() of @path, refused when it leads outside the store (a link). */
static int load_confined(const struct store *s, const char *path, struct config **config,
			 struct error *err)
{
	char real[PATH_MAX];

	*config = NULL;
	if (!realpath(path, real))
		return error_errno(err, errno, "cannot resolve", path);
	if (!s->allow_outside && !store_inside(s, real))
		return error_set(err, EACCES, "'%s' leads to '%s', outside the store", path, real);
	return config_load(config, path, err);
}

const char *store_vm_state_name(enum store_vm_state state)
{
	switch (state) {
	case STORE_VM_OFF:
		return "off";
	case STORE_VM_SAVED:
		return "saved";
	case STORE_VM_RUNNING:
		return "running";
	default:
		return NULL;
	}
}

/*
 * What the VM of @config is doing (docs/FORMAT.md, "State"): running when
 * it was powered on after it was last powered off (properties/
 * last_powered_on_time later than last_powered_off_time) and, if it has
 * saved state (@saved: Hyper-V keeps those files beside a running VM too),
 * its state has not changed since (last_state_change_time); else saved
 * when it has saved state; else off. A time that is missing counts as 0.
 */
static enum store_vm_state vm_state(const struct config *config, bool saved)
{
	int64_t on = 0, off = 0, change = 0;

	if (config_get_int(config, "properties/last_powered_on_time", &on) < 0)
		on = 0;
	if (config_get_int(config, "properties/last_powered_off_time", &off) < 0)
		off = 0;
	if (config_get_int(config, "properties/last_state_change_time", &change) < 0)
		change = 0;
	if (on > off && (!saved || change <= on))
		return STORE_VM_RUNNING;
	return saved ? STORE_VM_SAVED : STORE_VM_OFF;
}

/*
 * Read the configuration @file of @root's "Virtual Machines" into @vm; a
 * problem goes into vm->problem. Its VM is the one its content names
 * (properties/global_id), whatever the file's name. A file that cannot be read
 * is a VM with a problem, its id taken from a "<GUID>.xml" name, else empty
 * and its name the file's: except for a transient fault of a file not named
 * by its GUID, which fails the listing (-errno, with a message) rather than
 * showing a VM that cannot be told apart from the next listing's. Returns 0,
 * -ENOMEM or that fault.
 */
static int load_vm(struct store *s, const char *root, const char *file, struct store_vm *vm,
		   struct error *failure)
{
	struct config *config = NULL;
	struct config_identity id;
	bool named = guid_of_name(file, vm->id);
	struct error err;
	int rc;

	vm->config_path = store_format_text("%s/%s/%s", root, HYPERV_VMS_DIR, file);
	vm->current_snapshot_id = strdup("");
	if (!vm->config_path || !vm->current_snapshot_id)
		return -ENOMEM;
	error_clear(&err);
	rc = load_confined(s, vm->config_path, &config, &err);
	if (rc == 0)
		rc = config_identity(config, &id, &err);
	if (rc == 0 && id.type_id && id.type_id[0] && strcmp(id.type_id, CONFIG_TYPE_VM) != 0) {
		rc = error_set(&err, EINVAL,
			       "'%s' is the configuration of a '%s' (properties/type_id), not of a "
			       "VM",
			       vm->config_path, id.type_id);
		config_identity_release(&id);
	}
	if (rc < 0 && !named && error_is_transient(err.code)) {
		config_free(config);
		return error_set(failure, err.code, "%s", err.message);
	}
	if (rc < 0) {
		vm->name = strdup(named ? vm->id : file);
		vm->problem = strdup(error_message(&err));
		vm->problem_code = err.code;
		config_free(config);
		return vm->name && vm->problem ? 0 : -ENOMEM;
	}
	if (!named)
		memcpy(vm->id, id.id, sizeof(vm->id));
	else if (strcasecmp(id.id, vm->id) != 0)
		vm->problem =
			store_format_text("'%s' says its VM is %s, not the %s of its file name",
					  vm->config_path, id.id, vm->id);
	vm->name = id.name;
	id.name = NULL;
	vm->generation = id.generation;
	vm->version = id.version;
	vm->creation_time = id.creation_time;
	config_identity_release(&id);
	free(vm->current_snapshot_id);
	vm->current_snapshot_id = value_or_empty(config, STORE_KEY_CURRENT);
	if (config_get_int(config, STORE_KEY_COUNT, &vm->expected_snapshots) < 0)
		vm->expected_snapshots = -1;
	{
		int fault = 0;

		vm->saved_state = saved_state_folder(s, root, HYPERV_VMS_DIR, vm->id, &fault);
		if (fault && !vm->problem) {
			/* Not "no saved state": a VM shown without it would be wrong. */
			vm->problem = store_format_text("cannot read the saved state of '%s': %s",
							vm->config_path, strerror(fault));
			vm->problem_code = fault;
		}
	}
	vm->state = vm_state(config, vm->saved_state != NULL);
	rc = store_resolve_disks(s, config, &vm->disks, &vm->disk_count, &err);
	if (rc == 0)
		rc = config_adapters(config, &vm->adapters, &vm->adapter_count, &err);
	if (rc < 0 && !vm->problem) {
		vm->problem = strdup(error_message(&err));
		vm->problem_code = err.code;
	}
	config_free(config);
	return vm->name && vm->current_snapshot_id ? 0 : -ENOMEM;
}

static struct store_vm *vm_by_id(struct store_vm *vms, size_t count, const char *id)
{
	if (!id[0])
		return NULL;
	for (size_t i = 0; i < count; i++)
		if (strcasecmp(vms[i].id, id) == 0)
			return &vms[i];
	return NULL;
}

/* Read one snapshot configuration and attach it to its VM (its logical_id). */
static int load_snapshot(struct store *s, const char *root, const char *file, struct store_vm *vms,
			 size_t count)
{
	struct store_snapshot snap = {0}, *grown;
	struct config *config = NULL;
	struct config_identity id;
	struct store_vm *vm;
	struct error err;
	char *vm_id = NULL;
	int rc;

	snap.config_path = store_format_text("%s/%s/%s", root, HYPERV_SNAPSHOTS_DIR, file);
	if (!snap.config_path)
		return -ENOMEM;
	error_clear(&err);
	rc = load_confined(s, snap.config_path, &config, &err);
	if (rc == 0)
		rc = config_identity(config, &id, &err);
	if (rc == 0 && config_get(config, STORE_KEY_VM_ID, &vm_id, NULL) < 0)
		rc = error_set(&err, EINVAL, "'%s' does not name its VM (%s)", snap.config_path,
			       STORE_KEY_VM_ID);
	if (rc < 0 && error_is_transient(rc)) {
		/* Whose it is cannot be told now: not an orphan, a listing to try again. */
		config_free(config);
		free(snap.config_path);
		return rc;
	}
	vm = rc == 0 ? vm_by_id(vms, count, vm_id) : NULL;
	if (!vm) {
		/* An orphan, or unreadable: it belongs to no VM that can show it.
		 * Reported on the VM when the file name says which. */
		free(vm_id);
		if (rc == 0)
			config_identity_release(&id);
		config_free(config);
		free(snap.config_path);
		return 0;
	}
	free(vm_id);
	memcpy(snap.id, id.id, 37);
	snap.name = id.name;
	snap.creation_time = id.creation_time;
	snap.creation_ticks = id.creation_ticks;
	id.name = NULL;
	config_identity_release(&id);
	if (config_get(config, STORE_KEY_PARENT, &snap.parent_id, NULL) < 0) {
		snap.parent_id = strdup("");
		snap.parent_inferred = true; /* to be inferred from the chains */
	}
	{
		int fault = 0;

		snap.saved_state =
			saved_state_folder(s, root, HYPERV_SNAPSHOTS_DIR, snap.id, &fault);
		if (fault)
			rc = -fault;
	}
	if (rc == 0 && store_resolve_disks(s, config, &snap.disks, &snap.disk_count, &err) < 0) {
		if (error_is_transient(err.code))
			rc = -err.code;
		snap.problem = strdup(error_message(&err));
	}
	if (rc == 0 && config_adapters(config, &snap.adapters, &snap.adapter_count, &err) < 0)
		rc = -err.code;
	config_free(config);
	if (rc < 0) {
		store_snapshot_release(&snap);
		return rc;
	}
	grown = realloc(vm->snapshots, (vm->snapshot_count + 1) * sizeof(*grown));
	if (!grown || !snap.parent_id) {
		store_snapshot_release(&snap);
		return -ENOMEM;
	}
	vm->snapshots = grown;
	vm->snapshots[vm->snapshot_count++] = snap;
	return 0;
}

static int compare_vms(const void *a, const void *b)
{
	const struct store_vm *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->id, y->id);
}

int store_list(struct store *s, struct store_vm **out, size_t *out_count, struct error *err)
{
	struct store_vm *vms = NULL;
	size_t count = 0;
	int rc = 0;

	*out = NULL;
	*out_count = 0;
	/* Folders recorded since the store was opened (an import mount's, meanwhile). */
	if (s->recorded && store_read_records(s, false) < 0)
		return error_set(err, ENOMEM, "out of memory");
	for (size_t r = 0; r < s->root_count && rc == 0; r++) {
		char **files = NULL;
		size_t n = 0;

		rc = list_configs(s->roots[r], HYPERV_VMS_DIR, &files, &n);
		if (rc < 0) {
			rc = error_set(err, -rc, "cannot read '%s/%s': %s", s->roots[r],
				       HYPERV_VMS_DIR, strerror(-rc));
			break;
		}
		if (n) {
			struct store_vm *grown = realloc(vms, (count + n) * sizeof(*grown));

			if (!grown) {
				fsutil_names_free(files, n);
				rc = error_set(err, ENOMEM, "out of memory");
				break;
			}
			vms = grown;
			memset(vms + count, 0, n * sizeof(*vms));
		}
		for (size_t i = 0, here = count; i < n && rc == 0; i++) {
			struct store_vm *vm = &vms[count], *first;

			rc = load_vm(s, s->roots[r], files[i], vm, err);
			first = rc == 0 && vm->id[0] ? vm_by_id(vms, count, vm->id) : NULL;
			if (first && first >= vms + here && !first->problem)
				/* Two files of one folder claim the VM: which is it? */
				first->problem = store_format_text(
					"'%s' and '%s' both describe VM %s", first->config_path,
					vm->config_path, vm->id);
			if (rc < 0 || first)
				/* A VM listed already (from another root) keeps its first place. */
				store_vm_release(vm);
			else
				count++;
		}
		fsutil_names_free(files, n);
	}
	for (size_t r = 0; r < s->root_count && rc == 0; r++) {
		char **files = NULL;
		size_t n = 0;

		rc = list_configs(s->roots[r], HYPERV_SNAPSHOTS_DIR, &files, &n);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = load_snapshot(s, s->roots[r], files[i], vms, count);
		fsutil_names_free(files, n);
		if (rc < 0)
			rc = error_set(err, -rc, "cannot read the snapshots of '%s'", s->roots[r]);
	}
	if (rc == 0)
		rc = store_refuse_claimed(vms, count);
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = store_complete_tree(s, &vms[i]);
	/* Snapshots the VM counts but that could not be read (damaged, or
	 * unreadable files) are a problem of the VM, not silence. */
	for (size_t i = 0; i < count && rc == 0; i++)
		if (!vms[i].problem && vms[i].expected_snapshots > (int64_t)vms[i].snapshot_count)
			vms[i].problem = store_format_text(
				"'%s' counts %lld snapshots, but only %zu of their configurations "
				"can be read",
				vms[i].config_path, (long long)vms[i].expected_snapshots,
				vms[i].snapshot_count);
	if (rc < 0) {
		store_vms_free(vms, count);
		return rc == -ENOMEM ? error_set(err, ENOMEM, "out of memory") : rc;
	}
	if (count)
		qsort(vms, count, sizeof(*vms), compare_vms);
	*out = vms;
	*out_count = count;
	return 0;
}
