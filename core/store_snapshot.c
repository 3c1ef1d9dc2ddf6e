/*
 * Snapshots of a store's VMs, taken and applied as Hyper-V does, and the
 * other changes the impex tool makes to VMs: saved state, deletion.
 *
 * Every change writes new files first and the VM's configuration last,
 * crash-safely: until that rename the VM is as it was, and what was made
 * for it is removed on failure.
 */
#include "store.h"

#include "chain.h"
#include "config.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "pathmap.h"
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

/* Files made along the way, removed if the change fails. */
struct made {
	char **paths;
	size_t count;
};

static int made_add(struct made *m, const char *path)
{
	char **grown = realloc(m->paths, (m->count + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	m->paths = grown;
	m->paths[m->count] = strdup(path);
	if (!m->paths[m->count])
		return -ENOMEM;
	m->count++;
	return 0;
}

/* Forget the list; on failure remove its files first (last made first). */
static void made_finish(struct made *m, bool failed)
{
	for (size_t i = m->count; i-- > 0;) {
		if (failed)
			remove(m->paths[i]);
		free(m->paths[i]);
	}
	free(m->paths);
	m->paths = NULL;
	m->count = 0;
}

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

/* @folder ("Virtual Machines" or "Snapshots") of the root holding @vm, joined
 * with @name, into @out. Returns 0 or -ENAMETOOLONG. */
static int vm_place(const struct store_vm *vm, const char *folder, const char *name, char *out,
		    size_t cap)
{
	char dir[PATH_MAX], root[PATH_MAX];

	if (fsutil_dirname(vm->config_path, dir, sizeof(dir)) < 0 ||
	    fsutil_dirname(dir, root, sizeof(root)) < 0 ||
	    snprintf(out, cap, "%s/%s/%s", root, folder, name) >= (int)cap)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * The path of a new differencing disk over @base for snapshot or state @id:
 * "<folder>/<stem>_<id>.avhd" (".avhdx" over a VHDX), the stem being @base's
 * name without its extension and without a "_<GUID>" an earlier snapshot
 * added.
 */
static void avhd_path(const char *base, const char *id, char *out, size_t cap)
{
	enum disk_format format = DISK_FORMAT_VHD;
	char dir[PATH_MAX], stem[NAME_MAX + 1];
	const char *name = strrchr(base, '/');
	char *dot;
	size_t n;

	fsutil_dirname(base, dir, sizeof(dir));
	snprintf(stem, sizeof(stem), "%s", name ? name + 1 : base);
	dot = strrchr(stem, '.');
	if (dot && dot != stem)
		*dot = '\0';
	n = strlen(stem);
	if (n > 37 && stem[n - 37] == '_' && config_guid_valid(stem + n - 36))
		stem[n - 37] = '\0';
	disk_probe(base, &format, NULL);
	snprintf(out, cap, "%s/%s_%s%s", dir, stem, id, disk_child_extension(format));
}

/* Stack a new differencing disk on each of @disks for @id; record the new paths. */
static int stack_disks(struct store *s, const struct store_disk *disks, size_t count,
		       const char *id, struct config *config, struct made *made, struct error *err)
{
	for (size_t i = 0; i < count; i++) {
		char path[PATH_MAX], key[512], *written;
		int rc;

		avhd_path(disks[i].path, id, path, sizeof(path));
		rc = disk_create_differencing(path, disks[i].path, store_pathmap(s), err);
		if (rc < 0)
			return rc;
		if (made_add(made, path) < 0)
			return error_set(err, ENOMEM, "out of memory");
		written = store_written_path(s, path);
		snprintf(key, sizeof(key), "%s/pathname", disks[i].key);
		rc = written ? config_set(config, key, NULL, written, err)
			     : error_set(err, ENOMEM, "out of memory");
		free(written);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Copy the saved state in folder @from into folder @to, files named @id.vsv/.bin. */
static int copy_saved_state(const char *from, const char *to, const char *id, struct made *made,
			    struct error *err)
{
	char **names = NULL;
	size_t count = 0;
	int rc;

	if (mkdir(to, 0755) < 0 && errno != EEXIST)
		return error_errno(err, errno, "cannot create", to);
	if (made_add(made, to) < 0)
		return error_set(err, ENOMEM, "out of memory");
	rc = fsutil_list_names(from, NULL, &names, &count);
	if (rc < 0)
		return error_errno(err, -rc, "cannot read", from);
	for (size_t i = 0; i < count && rc == 0; i++) {
		const char *ext = strrchr(names[i], '.');
		char src[PATH_MAX], dst[PATH_MAX];

		if (!ext || (strcasecmp(ext, ".vsv") != 0 && strcasecmp(ext, ".bin") != 0))
			continue;
		snprintf(src, sizeof(src), "%s/%s", from, names[i]);
		snprintf(dst, sizeof(dst), "%s/%s%s", to, id, ext);
		rc = fsutil_copy_file(src, dst);
		if (rc < 0)
			rc = error_errno(err, -rc, "cannot copy the saved state to", dst);
		else if (made_add(made, dst) < 0)
			rc = error_set(err, ENOMEM, "out of memory");
	}
	fsutil_names_free(names, count);
	return rc;
}

/* Remove the saved-state files of folder @dir, then the folder if empty. */
static void remove_saved_state(const char *dir)
{
	char **names = NULL;
	size_t count = 0;

	if (fsutil_list_names(dir, NULL, &names, &count) < 0)
		return;
	for (size_t i = 0; i < count; i++) {
		const char *ext = strrchr(names[i], '.');
		char path[PATH_MAX];

		if (ext && (strcasecmp(ext, ".vsv") == 0 || strcasecmp(ext, ".bin") == 0)) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			unlink(path);
		}
	}
	fsutil_names_free(names, count);
	rmdir(dir);
}

static int store_snapshot_vm_unlocked(struct store *s, const char *vm_name, const char *name,
				      char id_out[37], struct error *err)
{
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	struct config *vm_config = NULL, *snap_config = NULL;
	struct made made = {0};
	char id[37], path[PATH_MAX];
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
		rc = config_set(snap_config, "properties/type_id", "string", "Snapshots", err);
	if (rc == 0) {
		/* To 100 ns, as Hyper-V: snapshots taken within a second stay in order. */
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		rc = config_set_filetime_ns(snap_config, "properties/creation_time", &now, err);
	}
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
		rc = vm_place(vm, "Snapshots", id, path, sizeof(path));
		if (rc == 0)
			rc = copy_saved_state(vm->saved_state, path, id, &made, err);
		else
			rc = error_set(err, -rc, "the path of the snapshot's folder is too long");
		if (rc < 0)
			goto out;
	}
	/* The snapshot's configuration holds the VM's current disks: it is made
	 * visible only after the VM has moved to its new disks (the listing also
	 * ignores a snapshot holding a VM's current disk, should a crash come
	 * between the two renames). */
	{
		char file[64];

		snprintf(file, sizeof(file), "%s.xml", id);
		rc = vm_place(vm, "Snapshots", file, path, sizeof(path));
	}
	if (rc < 0) {
		rc = error_set(err, -rc, "the path of the snapshot's configuration is too long");
		goto out;
	}
	rc = config_save(snap_config, path, err);
	if (rc < 0 || (rc = made_add(&made, path)) < 0)
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
	made_finish(&made, rc < 0);
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

/* Does a VM other than @vm use @path: in the chain of one of its disks or
 * of one of its snapshots' disks? */
static bool used_elsewhere(struct store *s, const struct store_vm *vms, size_t count,
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
	struct made made = {0};
	char state_id[37], path[PATH_MAX], aside[PATH_MAX], *created = NULL;
	size_t count = 0;
	int rc;

	rc = find_vm(s, vm_name, &vms, &count, &vm, err);
	if (rc < 0)
		goto out;
	/* By GUID, else by a name only one snapshot has. */
	for (size_t i = 0; i < vm->snapshot_count && !snap; i++)
		if (strcasecmp(vm->snapshots[i].id, snapshot) == 0)
			snap = &vm->snapshots[i];
	for (size_t i = 0; i < vm->snapshot_count && !snap; i++) {
		if (strcmp(vm->snapshots[i].name, snapshot) != 0)
			continue;
		for (size_t j = i + 1; j < vm->snapshot_count; j++)
			if (strcmp(vm->snapshots[j].name, snapshot) == 0) {
				rc = error_set(err, EINVAL,
					       "VM '%s' has several snapshots named '%s': give the "
					       "GUID of the one to apply",
					       vm->name, snapshot);
				goto out;
			}
		snap = &vm->snapshots[i];
	}
	if (!snap) {
		rc = error_set(err, ENOENT, "VM '%s' has no snapshot '%s'", vm->name, snapshot);
		goto out;
	}
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
		rc = config_set(config, "properties/type_id", "string", "Virtual Machines", err);
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
		if (snprintf(aside, sizeof(aside), "%s.old", vm->saved_state) >=
			    (int)sizeof(aside) ||
		    rename(vm->saved_state, aside) < 0) {
			rc = error_errno(err, errno ? errno : ENAMETOOLONG,
					 "cannot set aside the saved state in", vm->saved_state);
			goto out;
		}
	}
	rc = config_save(config, vm->config_path, err); /* the commit */
	if (rc < 0) {
		if (vm->saved_state)
			rename(aside, vm->saved_state);
		goto out;
	}
	made_finish(&made, false);
	if (vm->saved_state)
		remove_saved_state(aside);
	if (snap->saved_state) {
		if (vm_place(vm, "Virtual Machines", vm->id, path, sizeof(path)) < 0 ||
		    copy_saved_state(snap->saved_state, path, vm->id, &made, err) < 0) {
			made_finish(&made, true);
			rc = error_prefix(err,
					  "the snapshot was applied, but its saved state could "
					  "not be restored (the VM will start afresh)");
		}
		made_finish(&made, false);
	}
	/* The state left behind is gone, as Hyper-V's Apply discards it: its
	 * differencing disks that no snapshot holds. */
	for (size_t i = 0; i < vm->disk_count; i++) {
		struct disk *disk = NULL;
		bool uncertain = false;

		if (disk_open(&disk, vm->disks[i].path, DISK_OPEN_READ, NULL) == 0 &&
		    disk_type(disk) == VHD_TYPE_DIFFERENCING &&
		    !used_by_snapshot(vms, count, vm->disks[i].path) &&
		    !used_elsewhere(s, vms, count, vm, vm->disks[i].path, &uncertain) && !uncertain)
			unlink(vm->disks[i].path);
		disk_close(disk);
	}
out:
	made_finish(&made, rc < 0);
	free(created);
	config_free(config);
	config_free(old);
	store_vms_free(vms, count);
	return rc;
}

static int store_save_state_unlocked(struct store *s, const char *vm_name, struct error *err)
{
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	struct config *config = NULL;
	struct made made = {0};
	char dir[PATH_MAX], path[PATH_MAX];
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
	if (vm_place(vm, "Virtual Machines", vm->id, dir, sizeof(dir)) < 0) {
		rc = error_set(err, ENAMETOOLONG, "the path of the VM's folder is too long");
		goto out;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = error_errno(err, errno, "cannot create", dir);
		goto out;
	}
	/* Opaque to impexfs: a small .vsv and a .bin the size of the memory,
	 * sparse but for a first MiB of data, so copies have bytes to carry. */
	for (int part = 0; part < 2 && rc == 0; part++) {
		uint64_t size = part ? (uint64_t)memory_mib << 20 : sizeof(header);
		uuid_t noise;

		snprintf(path, sizeof(path), "%s/%s.%s.tmp", dir, vm->id, part ? "bin" : "vsv");
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = error_errno(err, errno, "cannot create", path);
			break;
		}
		if (made_add(&made, path) < 0) {
			close(fd);
			unlink(path);
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		for (size_t at = 0; at < (part ? (size_t)1 << 20 : sizeof(header)) && rc == 0;
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
			rc = error_errno(err, -rc, "cannot write", path);
	}
	/* Both files are whole: put them in place. */
	for (int part = 0; part < 2 && rc == 0; part++) {
		char final[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s.%s.tmp", dir, vm->id, part ? "bin" : "vsv");
		snprintf(final, sizeof(final), "%s/%s.%s", dir, vm->id, part ? "bin" : "vsv");
		if (rename(path, final) < 0)
			rc = error_errno(err, errno, "cannot write", final);
	}
	if (rc == 0)
		fsutil_fsync_parent(path);
out:
	made_finish(&made, rc < 0);
	config_free(config);
	store_vms_free(vms, count);
	return rc;
}

/* Add the files of @disk's chain to @files (no duplicates). */
static void collect_chain(struct store *s, const struct store_disk *disk, struct made *files)
{
	struct chain *chain = NULL;
	struct error ignored;

	if (store_open_chain(s, disk, &chain, &ignored) < 0)
		return;
	for (unsigned level = 0; level < chain_depth(chain); level++) {
		const char *path = disk_path(chain_level(chain, level));
		bool known = false;

		for (size_t i = 0; i < files->count && !known; i++)
			known = strcmp(files->paths[i], path) == 0;
		if (!known)
			made_add(files, path);
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

	if (left->count++ == 0)
		left->code = code;
	if (left->full)
		return;
	/* Room is kept for "; ..." */
	if (n + strlen(path) + strlen(why) + 8 + 6 < sizeof(left->text)) {
		snprintf(left->text + n, sizeof(left->text) - n, "%s'%s' (%s)", n ? "; " : "", path,
			 why);
	} else {
		snprintf(left->text + n, sizeof(left->text) - n, "%s...", n ? "; " : "");
		left->full = true;
	}
}

/* Remove the file or empty folder @path; one that stays is noted in @left. */
static void remove_noting(const char *path, struct leftovers *left)
{
	if (remove(path) < 0 && errno != ENOENT)
		left_behind(left, path, strerror(errno), errno);
}

/* Remove the saved-state folder @dir with every file in it (the VM's own: an import copies
 * all of its source's); what stays is noted in @left. */
static void remove_state_folder(const char *dir, struct leftovers *left)
{
	char **names = NULL, path[PATH_MAX];
	size_t count = 0;
	struct stat st;
	int rc;

	if (lstat(dir, &st) < 0) {
		if (errno != ENOENT)
			left_behind(left, dir, strerror(errno), errno);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		/* Not a folder of its own (a link): the name goes, not what it leads to. */
		remove_noting(dir, left);
		return;
	}
	rc = fsutil_list_names(dir, NULL, &names, &count);
	if (rc < 0)
		left_behind(left, dir, strerror(-rc), -rc);
	for (size_t i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		remove_noting(path, left);
	}
	fsutil_names_free(names, count);
	if (rc == 0)
		remove_noting(dir, left);
}

/*
 * remove_state_folder() of the saved state of the configuration at
 * @config_path, whose GUID is @id: @known where the listing found it, else
 * "<its folder>/<id>", which may hold files though no .vsv.
 */
static void remove_state_of(const char *known, const char *config_path, const char *id,
			    struct leftovers *left)
{
	char dir[PATH_MAX], folder[PATH_MAX];

	if (known)
		remove_state_folder(known, left);
	else if (fsutil_dirname(config_path, dir, sizeof(dir)) == 0 &&
		 snprintf(folder, sizeof(folder), "%s/%.36s", dir, id) < (int)sizeof(folder))
		remove_state_folder(folder, left);
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
static bool names_one_of(struct store *s, const struct config *config, const struct made *gone)
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
				found = gone->paths[k][0] && strcmp(gone->paths[k], path) == 0;
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
			  const struct store_vm *vm, const struct made *gone, struct made *ours,
			  struct made *strays)
{
	for (size_t r = 0; store_root(s, r); r++) {
		char dir[PATH_MAX], path[PATH_MAX], **names = NULL;
		size_t n = 0;

		snprintf(dir, sizeof(dir), "%s/Snapshots", store_root(s, r));
		if (fsutil_list_names(dir, is_config_file, &names, &n) < 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			struct config *config = NULL;
			char *owner = NULL;

			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			if (attached(vms, count, path) || config_load(&config, path, NULL) < 0)
				continue;
			if (config_get(config, STORE_KEY_VM_ID, &owner, NULL) == 0 &&
			    strcasecmp(owner, vm->id) == 0)
				made_add(ours, path);
			else if (names_one_of(s, config, gone))
				made_add(strays, path);
			free(owner);
			config_free(config);
		}
		fsutil_names_free(names, n);
	}
}

static int store_delete_vm_unlocked(struct store *s, const char *vm_name, bool disks,
				    struct error *err)
{
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	struct made files = {0}, ours = {0}, strays = {0};
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
			if (used_elsewhere(s, vms, count, vm, files.paths[i], &uncertain))
				files.paths[i][0] = '\0';
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
		remove_noting(ours.paths[i], &left);
		/* Named after its file: "<GUID>.xml". */
		remove_state_of(NULL, ours.paths[i], pathmap_basename(ours.paths[i]), &left);
	}
	remove_state_of(vm->saved_state, vm->config_path, vm->id, &left);
	for (size_t i = 0; i < files.count; i++)
		if (files.paths[i][0])
			remove_noting(files.paths[i], &left);
	for (size_t i = 0; i < strays.count; i++)
		left_behind(&left, strays.paths[i],
			    "a snapshot configuration of no VM, naming a deleted disk", ENOTEMPTY);
	if (left.count)
		rc = error_set(err, left.code, "VM '%s' is deleted, but left behind: %s", vm->name,
			       left.text);
out:
	made_finish(&files, false);
	made_finish(&ours, false);
	made_finish(&strays, false);
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

int store_delete_vm(struct store *s, const char *vm_name, bool disks, struct error *err)
{
	int lock = store_lock(s, err), rc;

	if (lock < 0)
		return lock;
	rc = store_delete_vm_unlocked(s, vm_name, disks, err);
	store_unlock(lock);
	return rc;
}
