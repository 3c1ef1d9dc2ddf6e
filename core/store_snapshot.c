/*
 * store_snapshot.c - snapshots of a store's VMs, taken and applied as
 * Hyper-V does, and a VM's saved state given (impex vm save).
 *
 * Every change writes new files first and the VM's configuration last,
 * crash-safely: until that rename the VM is as it was, and what was made
 * for it is removed on failure (core/rollback.h).
 */
#include "store.h"

#include "chain.h"
#include "config.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "pathbuf.h"
#include "rollback.h"
#include "savedstate.h"
#include "store_internal.h"
#include "vhd.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* The VM @name_or_id of the store, listed into *@vms; refuses a VM with problems. */
static int find_vm(struct store *s, const char *name_or_id, struct store_vm **vms, size_t *count,
		   const struct store_vm **vm, struct error *err)
{
	int rc = store_list(s, vms, count, err);

	if (rc < 0)
		return rc;
	rc = store_pick_vm(*vms, *count, name_or_id, vm, err);
	if (rc < 0)
		return rc;
	if ((*vm)->problem)
		return error_set(err, EINVAL, "VM '%s' cannot be changed: %s", (*vm)->name,
				 (*vm)->problem);
	for (size_t i = 0; i < (*vm)->disk_count; i++)
		if ((*vm)->disks[i].problem)
			return error_set(err, EINVAL, "VM '%s' cannot be changed: %s", (*vm)->name,
					 (*vm)->disks[i].problem);
	return 0;
}

/* @folder (HYPERV_VMS_DIR or HYPERV_SNAPSHOTS_DIR) of the root holding @vm, joined with
 * @name, into @out. Returns 0 or -ENOMEM. */
static int vm_place(const struct store_vm *vm, const char *folder, const char *name,
		    struct pathbuf *out)
{
	pathbuf_reset(out);
	pathbuf_adds(out, vm->config_path);
	/* Up from "<root>/Virtual Machines/<GUID>.xml" to "<root>". */
	for (int up = 0; up < 2 && !out->err; up++) {
		const char *slash = strrchr(out->buf, '/');

		pathbuf_truncate(out, !slash		  ? 0
				      : slash == out->buf ? 1
							  : (size_t)(slash - out->buf));
	}
	pathbuf_join(out, folder);
	pathbuf_join(out, name);
	return out->err;
}

/*
 * The path of a new differencing disk over @base for snapshot or state @id
 * into @out: "<folder>/<stem>_<id>.avhd" (".avhdx" over a VHDX), the stem
 * being @base's name without its extension and without a "_<GUID>" an
 * earlier snapshot added. Returns 0 or -ENOMEM.
 */
static int avhd_path(const char *base, const char *id, struct pathbuf *out)
{
	enum disk_format format = DISK_FORMAT_VHD;
	const char *name = strrchr(base, '/');
	char stem[NAME_MAX + 1], *dot;
	size_t n;

	/* The name of a file is at most NAME_MAX bytes: it fits. */
	snprintf(stem, sizeof(stem), "%.*s", NAME_MAX, name ? name + 1 : base);
	dot = strrchr(stem, '.');
	if (dot && dot != stem)
		*dot = '\0';
	n = strlen(stem);
	if (n > 37 && stem[n - 37] == '_' && config_guid_valid(stem + n - 36))
		stem[n - 37] = '\0';
	disk_probe(base, &format, NULL);
	pathbuf_reset(out);
	if (name)
		pathbuf_add(out, base, (size_t)(name - base) + 1); /* its folder, with the '/' */
	return pathbuf_addf(out, "%s_%s%s", stem, id, disk_child_extension(format));
}

/* Stack a new differencing disk on each of @disks for @id; note the new paths in @made. */
static int stack_disks(struct store *s, const struct store_disk *disks, size_t count,
		       const char *id, struct config *config, struct rollback *made,
		       struct error *err)
{
	struct pathbuf path = PATHBUF_INIT, key = PATHBUF_INIT;
	int rc = 0;

	for (size_t i = 0; i < count && rc == 0; i++) {
		char *written;

		if (avhd_path(disks[i].path, id, &path) < 0 ||
		    pathbuf_setf(&key, "%s/pathname", disks[i].key) < 0) {
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		rc = disk_create_differencing(path.buf, disks[i].path, store_pathmap(s), err);
		if (rc < 0)
			break;
		if (rollback_add(made, path.buf) < 0) {
			unlink(path.buf);
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		written = store_written_path(s, path.buf);
		rc = written ? config_set(config, key.buf, NULL, written, err)
			     : error_set(err, ENOMEM, "out of memory");
		free(written);
	}
	pathbuf_release(&path);
	pathbuf_release(&key);
	return rc;
}

/* savedstate_copy() of the saved state @from into the folder @to of the store, the files of
 * @old_id (the VM's, the snapshot's) named after @new_id. */
static int copy_state(const char *from, const char *to, const char *old_id, const char *new_id,
		      struct rollback *made, struct error *err)
{
	struct savedstate_rename rename = {old_id, new_id};

	return savedstate_copy(from, to, &rename, 1, made, err);
}

static int store_snapshot_vm_unlocked(struct store *s, const char *vm_name, const char *name,
				      char id_out[37], struct error *err)
{
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	struct config *vm_config = NULL, *snap_config = NULL;
	struct rollback made = ROLLBACK_INIT;
	struct pathbuf path = PATHBUF_INIT;
	char id[37], file[64];
	size_t count = 0;
	int rc;

	rc = store_check_name(name, "snapshot", err);
	if (rc == 0)
		rc = find_vm(s, vm_name, &vms, &count, &vm, err);
	if (rc < 0)
		goto out;
	store_new_guid(id, true);
	/* The snapshot keeps the VM's configuration and its current disks, frozen. */
	rc = config_load(&snap_config, vm->config_path, err);
	if (rc == 0)
		rc = config_load(&vm_config, vm->config_path, err);
	if (rc == 0)
		rc = config_set(snap_config, "properties/global_id", "string", id, err);
	if (rc == 0)
		rc = config_set(snap_config, "properties/name", "string", name, err);
	if (rc == 0)
		rc = config_set(snap_config, "properties/type_id", "string", CONFIG_TYPE_SNAPSHOT,
				err);
	if (rc == 0)
		/* To the 100 ns, as Hyper-V: snapshots taken within a second keep their order. */
		rc = config_set_filetime_ticks(snap_config, "properties/creation_time",
					       config_filetime_now(), err);
	if (rc == 0)
		rc = config_set(snap_config, STORE_KEY_PARENT, "string", vm->current_snapshot_id,
				err);
	/* It belongs to the VM of this GUID, whatever the VM's own file says. */
	if (rc == 0)
		rc = config_set(snap_config, STORE_KEY_VM_ID, "string", vm->id, err);
	if (rc == 0)
		config_remove(snap_config, STORE_KEY_CURRENT);
	if (rc < 0)
		goto out;
	/* The VM goes on in a new differencing disk over each of them. */
	rc = stack_disks(s, vm->disks, vm->disk_count, id, vm_config, &made, err);
	if (rc < 0)
		goto out;
	if (vm->saved_state) {
		rc = vm_place(vm, HYPERV_SNAPSHOTS_DIR, id, &path) < 0
			     ? error_set(err, ENOMEM, "out of memory")
			     : copy_state(vm->saved_state, path.buf, vm->id, id, &made, err);
		if (rc < 0)
			goto out;
	}
	/* The snapshot's configuration holds the VM's current disks: it is made
	 * visible only after the VM has moved to its new disks (the listing also
	 * ignores a snapshot holding a VM's current disk, should a crash come
	 * between the two renames). */
	snprintf(file, sizeof(file), "%s.xml", id);
	if (vm_place(vm, HYPERV_SNAPSHOTS_DIR, file, &path) < 0) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	rc = config_save(snap_config, path.buf, err);
	if (rc == 0 && rollback_add(&made, path.buf) < 0) {
		unlink(path.buf);
		rc = error_set(err, ENOMEM, "out of memory");
	}
	if (rc < 0)
		goto out;
	rc = config_set(vm_config, STORE_KEY_CURRENT, "string", id, err);
	if (rc == 0)
		rc = config_set_int(vm_config, STORE_KEY_COUNT, (int64_t)vm->snapshot_count + 1,
				    err);
	if (rc == 0)
		rc = config_save(vm_config, vm->config_path, err); /* the commit */
	if (rc == 0 && id_out)
		memcpy(id_out, id, 37);
out:
	rollback_finish(&made, rc < 0, NULL, NULL);
	pathbuf_release(&path);
	config_free(vm_config);
	config_free(snap_config);
	store_vms_free(vms, count);
	return rc;
}

/* Is @path a disk of some snapshot of @vms? */
static bool used_by_snapshot(const struct store_vm *vms, size_t count, const char *path)
{
	for (size_t i = 0; i < count; i++)
		for (size_t j = 0; j < vms[i].snapshot_count; j++)
			for (size_t k = 0; k < vms[i].snapshots[j].disk_count; k++)
				if (vms[i].snapshots[j].disks[k].path &&
				    strcmp(vms[i].snapshots[j].disks[k].path, path) == 0)
					return true;
	return false;
}

/* Is @path in the chain of @disk? A chain that cannot be read sets *@uncertain. */
static bool in_chain(struct store *s, const struct store_disk *disk, const char *path,
		     bool *uncertain)
{
	struct chain *chain = NULL;
	struct error ignored;
	bool found = false;

	if (store_open_chain(s, disk, &chain, &ignored) < 0) {
		*uncertain = true;
		return false;
	}
	for (unsigned level = 0; level < chain_depth(chain) && !found; level++)
		found = strcmp(disk_path(chain_level(chain, level)), path) == 0;
	chain_close(chain);
	return found;
}

bool store_used_elsewhere(struct store *s, const struct store_vm *vms, size_t count,
			  const struct store_vm *vm, const char *path, bool *uncertain)
{
	for (size_t v = 0; v < count; v++) {
		if (&vms[v] == vm)
			continue;
		for (size_t d = 0; d < vms[v].disk_count; d++)
			if (in_chain(s, &vms[v].disks[d], path, uncertain))
				return true;
		for (size_t i = 0; i < vms[v].snapshot_count; i++)
			for (size_t d = 0; d < vms[v].snapshots[i].disk_count; d++)
				if (in_chain(s, &vms[v].snapshots[i].disks[d], path, uncertain))
					return true;
	}
	return false;
}

static int store_apply_snapshot_unlocked(struct store *s, const char *vm_name, const char *snapshot,
					 struct error *err)
{
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	const struct store_snapshot *snap = NULL;
	struct config *config = NULL, *old = NULL;
	struct rollback made = ROLLBACK_INIT;
	struct pathbuf path = PATHBUF_INIT, aside = PATHBUF_INIT;
	char state_id[37], *created = NULL;
	size_t count = 0;
	int rc;

	rc = find_vm(s, vm_name, &vms, &count, &vm, err);
	if (rc < 0)
		goto out;
	rc = store_pick_snapshot(vm, snapshot, &snap, err);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < snap->disk_count; i++)
		if (snap->disks[i].problem) {
			rc = error_set(err, EINVAL, "snapshot '%s' cannot be applied: %s",
				       snap->name, snap->disks[i].problem);
			goto out;
		}
	/* The snapshot's configuration becomes the VM's, over new disks. */
	rc = config_load(&config, snap->config_path, err);
	if (rc == 0)
		rc = config_load(&old, vm->config_path, err);
	if (rc == 0 && config_get(old, "properties/creation_time", &created, NULL) == 0)
		rc = config_set(config, "properties/creation_time", NULL, created, err);
	if (rc == 0)
		rc = config_set(config, "properties/global_id", "string", vm->id, err);
	if (rc == 0)
		rc = config_set(config, "properties/name", "string", vm->name, err);
	if (rc == 0)
		rc = config_set(config, "properties/type_id", "string", CONFIG_TYPE_VM, err);
	if (rc == 0)
		rc = config_set(config, STORE_KEY_CURRENT, "string", snap->id, err);
	if (rc == 0)
		rc = config_set_int(config, STORE_KEY_COUNT, (int64_t)vm->snapshot_count, err);
	if (rc < 0)
		goto out;
	config_remove(config, STORE_KEY_PARENT);
	store_new_guid(state_id, true);
	rc = stack_disks(s, snap->disks, snap->disk_count, state_id, config, &made, err);
	if (rc < 0)
		goto out;
	/*
	 * Saved state must never meet disks it was not taken with. The VM's own
	 * is set aside before the commit (a crash then leaves the VM without
	 * saved state: its disks boot afresh), put back if the commit fails,
	 * and removed after it; the snapshot's comes after the commit (until
	 * then the new disks boot afresh). No crash leaves a state over the
	 * wrong disks.
	 */
	if (vm->saved_state) {
		if (pathbuf_setf(&aside, "%s.old", vm->saved_state) < 0) {
			rc = error_set(err, ENOMEM, "out of memory");
			goto out;
		}
		if (rename(vm->saved_state, aside.buf) < 0) {
			rc = error_errno(err, errno, "cannot set aside the saved state in",
					 vm->saved_state);
			goto out;
		}
	}
	rc = config_save(config, vm->config_path, err); /* the commit */
	if (rc < 0) {
		if (vm->saved_state)
			rename(aside.buf, vm->saved_state);
		goto out;
	}
	rollback_finish(&made, false, NULL, NULL);
	if (vm->saved_state)
		fsutil_remove_tree(aside.buf);
	if (snap->saved_state) {
		int copied = vm_place(vm, HYPERV_VMS_DIR, vm->id, &path) < 0
				     ? error_set(err, ENOMEM, "out of memory")
				     : copy_state(snap->saved_state, path.buf, snap->id, vm->id,
						  &made, err);

		if (copied < 0)
			rc = error_prefix(err,
					  "the snapshot was applied, but its saved state could "
					  "not be restored (the VM will start afresh)");
		rollback_finish(&made, copied < 0, NULL, NULL);
	}
	/* The state left behind is gone, as Hyper-V's Apply discards it: its
	 * differencing disks that no snapshot holds. */
	for (size_t i = 0; i < vm->disk_count; i++) {
		struct disk *disk = NULL;
		bool uncertain = false;

		if (disk_open(&disk, vm->disks[i].path, DISK_OPEN_READ, NULL) == 0 &&
		    disk_type(disk) == VHD_TYPE_DIFFERENCING &&
		    !used_by_snapshot(vms, count, vm->disks[i].path) &&
		    !store_used_elsewhere(s, vms, count, vm, vm->disks[i].path, &uncertain) &&
		    !uncertain)
			unlink(vm->disks[i].path);
		disk_close(disk);
	}
out:
	rollback_finish(&made, rc < 0, NULL, NULL);
	pathbuf_release(&path);
	pathbuf_release(&aside);
	free(created);
	config_free(config);
	config_free(old);
	store_vms_free(vms, count);
	return rc;
}

static int store_save_state_unlocked(struct store *s, const char *vm_name, struct error *err)
{
	static const char *const parts[] = {"bin",
					    "vsv"}; /* the .vsv, which marks the state, last */
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	struct config *config = NULL;
	struct rollback made = ROLLBACK_INIT;
	struct pathbuf dir = PATHBUF_INIT, path = PATHBUF_INIT, final = PATHBUF_INIT;
	int64_t memory_mib = 512;
	uint8_t header[4096];
	size_t count = 0;
	int rc, fd = -1;

	rc = find_vm(s, vm_name, &vms, &count, &vm, err);
	if (rc < 0)
		goto out;
	rc = config_load(&config, vm->config_path, err);
	if (rc < 0)
		goto out;
	config_get_int(config, "settings/memory/bank/size", &memory_mib);
	if (memory_mib <= 0 || memory_mib > 1 << 20)
		memory_mib = 512;
	if (vm_place(vm, HYPERV_VMS_DIR, vm->id, &dir) < 0) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (mkdir(dir.buf, 0755) < 0 && errno != EEXIST) {
		rc = error_errno(err, errno, "cannot create", dir.buf);
		goto out;
	}
	/* Opaque to impexfs: a small .vsv and a .bin the size of the memory,
	 * sparse but for a first MiB of data, so copies have bytes to carry. */
	for (int part = 0; part < 2 && rc == 0; part++) {
		bool bin = strcmp(parts[part], "bin") == 0;
		uint64_t size = bin ? (uint64_t)memory_mib << 20 : sizeof(header);
		uuid_t noise;

		if (pathbuf_setf(&path, "%s/%s.%s.tmp", dir.buf, vm->id, parts[part]) < 0) {
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		fd = open(path.buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = error_errno(err, errno, "cannot create", path.buf);
			break;
		}
		if (rollback_add(&made, path.buf) < 0) {
			close(fd);
			unlink(path.buf);
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		for (size_t at = 0; at < (bin ? (size_t)1 << 20 : sizeof(header)) && rc == 0;
		     at += sizeof(header)) {
			for (size_t i = 0; i < sizeof(header); i += 16) {
				uuid_generate_random(noise);
				memcpy(header + i, noise, 16);
			}
			if (at == 0)
				snprintf((char *)header, 64, "impexfs saved state of %s", vm->id);
			rc = fsutil_pwrite_full(fd, header, sizeof(header), at);
		}
		if (rc == 0 && (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0))
			rc = -errno;
		close(fd);
		fd = -1;
		if (rc < 0)
			rc = error_errno(err, -rc, "cannot write", path.buf);
	}
	/* Both files are whole: put them in place, the .vsv last. */
	for (int part = 0; part < 2 && rc == 0; part++) {
		if (pathbuf_setf(&path, "%s/%s.%s.tmp", dir.buf, vm->id, parts[part]) < 0 ||
		    pathbuf_setf(&final, "%s/%s.%s", dir.buf, vm->id, parts[part]) < 0)
			rc = error_set(err, ENOMEM, "out of memory");
		else if (rename(path.buf, final.buf) < 0)
			rc = error_errno(err, errno, "cannot write", final.buf);
	}
	if (rc == 0)
		fsutil_fsync_parent(final.buf);
out:
	rollback_finish(&made, rc < 0, NULL, NULL);
	pathbuf_release(&dir);
	pathbuf_release(&path);
	pathbuf_release(&final);
	config_free(config);
	store_vms_free(vms, count);
	return rc;
}

int store_snapshot_vm(struct store *s, const char *vm_name, const char *name, char id_out[37],
		      struct error *err)
{
	int lock = store_lock(s, err), rc;

	if (lock < 0)
		return lock;
	rc = store_snapshot_vm_unlocked(s, vm_name, name, id_out, err);
	store_unlock(lock);
	return rc;
}

int store_apply_snapshot(struct store *s, const char *vm_name, const char *snapshot,
			 struct error *err)
{
	int lock = store_lock(s, err), rc;

	if (lock < 0)
		return lock;
	rc = store_apply_snapshot_unlocked(s, vm_name, snapshot, err);
	store_unlock(lock);
	return rc;
}

int store_save_state(struct store *s, const char *vm_name, struct error *err)
{
	int lock = store_lock(s, err), rc;

	if (lock < 0)
		return lock;
	rc = store_save_state_unlocked(s, vm_name, err);
	store_unlock(lock);
	return rc;
}
