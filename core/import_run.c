/*
 * The import itself (impex import): copy on import, or registration in
 * place, with the settings of core/import. This half registers: the
 * journal, the names placed, the configurations rewritten and written, the
 * rollback, and the recovery of what killed imports left; core/import_copy.c
 * writes the data (core/import_run.h).
 *
 * Order, for a crash at any point to leave either the whole VM or no trace
 * of it: every disk is written under a temporary name next to its target
 * and fsynced, differencing disks naming their parents' new files; saved
 * state goes into new folders named after new GUIDs (invisible until a
 * configuration names them). Then the disks are renamed into place (never
 * over a file: the names were chosen free), the snapshots' configurations
 * are written, and the VM's configuration last: that write is the commit.
 * A failure before it removes everything made.
 */
#include "import_run.h"

#include "asuser.h"
#include "beneath.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "journal.h"
#include "pathbuf.h"
#include "staging.h"
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int import_run_place(const struct import_run_state *r, const char *path, const char **rel,
		     struct error *err)
{
	const struct asuser_scope *scope = asuser_scope_current();

	if (scope && scope->folder && beneath_lexically(path, scope->folder, rel) && (*rel)[0])
		return scope->folder_fd;
	for (size_t i = 0; i < r->place_count; i++)
		if (r->places[i].fd >= 0 && beneath_lexically(path, r->places[i].path, rel) &&
		    (*rel)[0])
			return r->places[i].fd;
	return error_set(err, EXDEV, "'%s' lies under no target root of the import", path);
}

size_t import_run_open_places(const struct store *store, const struct import_settings *s,
			      struct journal_root *roots, size_t cap)
{
	const char *targets[] = {s->target_vm_data_root, s->target_vhd_data_root,
				 s->target_snapshot_data_root};
	size_t count = 0;
	char real[PATH_MAX];

	for (size_t k = 0; k < 3 && count < cap; k++)
		if (targets[k])
			roots[count++].path = targets[k];
	for (size_t i = 0; store_root(store, i) && count < cap; i++)
		roots[count++].path = store_root(store, i);
	for (size_t i = 0; i < count; i++)
		roots[i].fd = fsutil_open_trusted_folder(roots[i].path, false, real);
	return count;
}

void import_run_close_places(struct journal_root *roots, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (roots[i].fd >= 0)
			close(roots[i].fd);
}

int import_run_make_folder(const struct import_run_state *r, const char *path, struct error *err)
{
	const char *rel;
	int fd, rc;

	/* A target root itself (disks straight in target_vhd_data_root): there already. */
	for (size_t i = 0; i < r->place_count; i++)
		if (r->places[i].fd >= 0 && beneath_lexically(path, r->places[i].path, &rel) &&
		    !rel[0])
			return -EEXIST;
	fd = import_run_place(r, path, &rel, err);
	if (fd < 0)
		return fd;
	rc = beneath_mkdir(fd, rel, 0755);
	return rc < 0 && rc != -EEXIST ? error_errno(err, -rc, "cannot create", path) : rc;
}

/* Write @config as the new file @path, never over one. */
static int save_new(const struct import_run_state *r, const struct config *config, const char *path,
		    struct error *err)
{
	const char *rel;
	int fd = import_run_place(r, path, &rel, err);

	return fd < 0 ? fd : config_save_new_at(config, fd, rel, path, err);
}

bool import_run_exists(const struct import_run_state *r, const char *path)
{
	struct stat st;
	const char *rel;
	int fd = import_run_place(r, path, &rel, NULL);

	return fd >= 0 && beneath_stat(fd, rel, &st) == 0;
}

/* fsync the folder holding @path, so that its new name is durable. */
static void sync_folder_of(const struct import_run_state *r, const char *path)
{
	char name[NAME_MAX + 1];
	const char *rel;
	int fd = import_run_place(r, path, &rel, NULL), parent;

	if (fd >= 0 && (parent = beneath_parent(fd, rel, name)) >= 0) {
		int dir = beneath_open(parent, ".", O_RDONLY | O_DIRECTORY, 0);

		if (dir >= 0) {
			fsync(dir);
			close(dir);
		}
		close(parent);
	}
}

int import_run_advance(struct import_run_state *r, uint64_t bytes)
{
	r->done += bytes;
	if (r->progress && r->progress->report)
		return r->progress->report(r->progress->ctx, r->done, r->total, r->file);
	return 0;
}

int import_run_made(struct import_run_state *r, const char *path)
{
	return rollback_add(&r->made, path);
}

/* rollback_undo()'s remover: @path, a file or a folder with what it holds, beneath its place,
 * never through a link. */
static void unmake(void *ctx, const char *path)
{
	const char *rel;
	int fd = import_run_place(ctx, path, &rel, NULL);

	if (fd >= 0)
		beneath_remove_tree(fd, rel, NULL);
}

/* Remove what was made, newest first. */
static void roll_back(struct import_run_state *r)
{
	rollback_undo(&r->made, unmake, r);
	if (r->journaled)
		journal_remove(r->journal_fd, r->vm_id);
}

/* The journal's entry for what is at @made, to be placed at @placed. */
static int entry_of(const struct import_run_state *r, const char *made, const char *placed,
		    struct journal_entry *e, struct error *err)
{
	const char *rel;
	struct stat st;
	int fd = import_run_place(r, made, &rel, err), rc;

	if (fd < 0)
		return fd;
	rc = beneath_stat(fd, rel, &st);
	if (rc < 0)
		return error_errno(err, -rc, "cannot stat", made);
	e->dev = (unsigned long long)st.st_dev;
	e->ino = (unsigned long long)st.st_ino;
	e->path = (char *)placed;
	return 0;
}

/* The journal: each file and folder to be placed, known by the inode it keeps when placed. */
static int write_journal(struct import_run_state *r, struct error *err)
{
	struct journal_entry *entries = calloc(r->job_count + r->state_count + 1, sizeof(*entries));
	size_t n = 0;
	int rc = entries ? 0 : error_set(err, ENOMEM, "out of memory");

	for (size_t i = 0; rc == 0 && i < r->job_count; i++)
		rc = entry_of(r, r->jobs[i].temp, r->jobs[i].target, &entries[n++], err);
	for (size_t i = 0; rc == 0 && i < r->state_count; i++)
		rc = entry_of(r, r->state_temp[i], r->state_final[i], &entries[n++], err);
	if (rc == 0)
		rc = journal_write(r->journal_fd, r->vm_id, entries, n, err);
	r->journaled = rc == 0;
	free(entries); /* the paths are borrowed */
	return rc;
}

/* The new GUID of snapshot @old ("" stays ""). */
static const char *mapped_snapshot(const struct import_run_state *r, const char *old)
{
	for (size_t i = 0; old && i < r->vm->snapshot_count; i++)
		if (strcasecmp(r->vm->snapshots[i].id, old) == 0)
			return r->snap_ids[i];
	return old ? old : "";
}

bool import_run_renew_ids(const struct import_run_state *r, char *text)
{
	return savedstate_rename_ids(text, r->renames, r->rename_count);
}

/*
 * config_edit_leaves() callback of new_ids(): a value holding an old GUID
 * gets the new one. Not a drive's path (rewrite() sets it from where its
 * file went; a path the import does not write names a file elsewhere), nor
 * opaque bytes.
 */
static int leaf_new_ids(void *ctx, const char *name, const char *type, const char *text,
			char **value)
{
	if ((type && strcmp(type, "bytes") == 0) || strcmp(name, "pathname") == 0)
		return 0;
	if (!(*value = strdup(text)))
		return -ENOMEM;
	if (import_run_renew_ids(ctx, *value))
		return 1;
	free(*value);
	*value = NULL;
	return 0;
}

/* Give @config the new GUIDs wherever a value names an old one, and its VM's new GUID as
 * the VM it belongs to (where it says). */
static int new_ids(struct import_run_state *r, struct config *config, struct error *err)
{
	char *had = NULL;
	int rc = config_edit_leaves(config, leaf_new_ids, r);

	if (rc < 0)
		return error_set(err, -rc, "cannot give '%s' its new IDs: %s", config_name(config),
				 strerror(-rc));
	if (config_get(config, STORE_KEY_VM_ID, &had, NULL) == 0)
		rc = config_set(config, STORE_KEY_VM_ID, NULL, r->vm_id, err);
	free(had);
	return rc;
}

const struct import_resource *import_run_resource_of(const struct import_run_state *r,
						     const char *written)
{
	for (size_t i = 0; written && i < r->s->resource_count; i++)
		if (strcmp(r->s->resources[i].current, written) == 0)
			return &r->s->resources[i];
	return NULL;
}

/* The path a configuration records for @disk after the import. */
static const char *new_disk_path(const struct import_run_state *r, const struct store_disk *disk,
				 char *buf, size_t cap)
{
	const struct import_resource *res = import_run_resource_of(r, disk->written);
	const char *source = res && res->source && res->source[0] ? res->source : disk->path;
	char real[PATH_MAX];
	int j = source && fsutil_real_path_source(source, real, sizeof(real)) == 0
			? import_copy_find_job(r, real)
			: -1;
	char *written;

	if (!r->s->create_copy || j < 0)
		snprintf(buf, cap, "%s", source ? source : disk->written);
	else
		snprintf(buf, cap, "%s", r->jobs[j].target);
	written = store_written_path(r->store, buf);
	if (written) {
		snprintf(buf, cap, "%s", written);
		free(written);
	}
	return buf;
}

/* Rewrite @config: its GUID @id, its disks' paths, its adapters' switches, the scope. */
static int rewrite(struct import_run_state *r, struct config *config, const char *id,
		   const struct store_disk *disks, size_t disk_count, struct error *err)
{
	struct config_adapter *adapters = NULL;
	size_t adapter_count = 0;
	int rc = config_set(config, "properties/global_id", "string", id, err);

	for (size_t i = 0; rc == 0 && i < disk_count; i++) {
		char key[600], path[PATH_MAX];

		snprintf(key, sizeof(key), "%s/pathname", disks[i].key);
		rc = config_set(config, key, NULL, new_disk_path(r, &disks[i], path, sizeof(path)),
				err);
	}
	if (rc == 0)
		rc = config_adapters(config, &adapters, &adapter_count, err);
	for (size_t i = 0; rc == 0 && i < adapter_count; i++) {
		const struct config_adapter *a = &adapters[i];
		const struct store_switch *to;
		const char *target;
		char port[37];
		size_t line;

		switch (import_adapter_target(r->s, a, r->switches, r->switch_count, &to, &target,
					      &line)) {
		case IMPORT_UNKNOWN:
			/* import_compare() said so; the store changed since. */
			rc = error_set(err, ENOENT,
				       "adapter '%s' (%s) of '%s': switch '%s' does not exist here",
				       a->friendly_name, a->mac, config_name(config), target);
			break;
		case IMPORT_UNCONNECTED:
			/* Left as the export has it, unless its fields disagree. */
			if (a->problem)
				rc = config_set_adapter_switch(config, a->key, NULL, NULL, NULL,
							       err);
			break;
		case IMPORT_CONNECT:
			/* Every field names the switch; a port for an adapter that had none. */
			if (!a->port_name[0])
				store_new_guid(port, true);
			rc = config_set_adapter_switch(config, a->key, to->id, to->name,
						       a->port_name[0] ? NULL : port, err);
			break;
		default:
			rc = config_set_adapter_switch(config, a->key, NULL, NULL, NULL, err);
			break;
		}
	}
	config_adapters_free(adapters, adapter_count);
	if (rc == 0 && r->s->security_scope && r->s->security_scope[0])
		rc = config_set(config, "properties/security_scope", "string", r->s->security_scope,
				err);
	return rc;
}

/* Rename every saved-state folder into place: never over one. */
static int place_states(struct import_run_state *r, struct error *err)
{
	for (size_t i = 0; i < r->state_count; i++) {
		const char *from, *to;
		int fromfd = import_run_place(r, r->state_temp[i], &from, err);
		int tofd = fromfd < 0 ? -1 : import_run_place(r, r->state_final[i], &to, err), rc;

		if (fromfd < 0 || tofd < 0)
			return fromfd < 0 ? fromfd : tofd;
		rc = beneath_rename(fromfd, from, tofd, to, RENAME_NOREPLACE);
		if (rc == -EEXIST)
			return error_set(err, EEXIST, "'%s' exists: not replaced",
					 r->state_final[i]);
		if (rc < 0)
			return error_errno(err, -rc, "cannot place", r->state_final[i]);
		if (import_run_made(r, r->state_final[i]) < 0)
			return error_set(err, ENOMEM, "out of memory");
		sync_folder_of(r, r->state_final[i]);
	}
	return 0;
}

/* Link every disk into place (never over a file), and drop its temporary name. */
static int place_disks(struct import_run_state *r, struct error *err)
{
	for (size_t i = 0; i < r->job_count; i++) {
		struct import_copy_job *j = &r->jobs[i];
		const char *from, *to;
		int fromfd = import_run_place(r, j->temp, &from, err);
		int tofd = fromfd < 0 ? -1 : import_run_place(r, j->target, &to, err), rc;

		if (fromfd < 0 || tofd < 0)
			return fromfd < 0 ? fromfd : tofd;
		rc = beneath_link(fromfd, from, tofd, to);
		if (rc < 0)
			return error_errno(err, -rc, "cannot place", j->target);
		j->renamed = true;
		if (import_run_made(r, j->target) < 0)
			return error_set(err, ENOMEM, "out of memory");
		beneath_unlink(fromfd, from, 0);
		sync_folder_of(r, j->target);
	}
	return 0;
}
/* Make the folder @root/@name of a target root (remembered when made): a failure is for the
 * writes in it to tell. */
static void target_folder(struct import_run_state *r, const char *root, const char *name)
{
	struct pathbuf path = PATHBUF_INIT;

	if (pathbuf_setf(&path, "%s/%s", root, name) == 0 &&
	    import_run_make_folder(r, path.buf, NULL) == 0)
		import_run_made(r, path.buf);
	pathbuf_release(&path);
}

/*
 * Check again, as the store is now (its lock held), that nothing would fail;
 * open the folder and pick its VM; choose the new GUIDs. -ECANCELED with a
 * message when the report has an error (the store changed since the caller's
 * check).
 */
static int prepare(struct import_run_state *r, const char *dir, struct store_vm **vms,
		   size_t *count, struct error *err)
{
	const struct import_settings *s = r->s;
	struct import_report report = {0};
	int rc;

	/* The folder's name, a key compared with its files' names. */
	if ((r->flags & IMPORT_ADOPT) &&
	    (rc = fsutil_real_path_source(dir, r->dir_real, sizeof(r->dir_real))) < 0)
		return error_errno(err, -rc, "cannot resolve", dir);
	rc = import_compare(dir, r->store, s, r->flags, &report, err);
	for (size_t i = 0; rc == 0 && i < report.count; i++)
		if (report.issues[i].severity == IMPORT_ERROR)
			rc = error_set(err, ECANCELED, "the import would fail: %s (%s)",
				       report.issues[i].message, report.issues[i].id);
	import_report_free(&report);
	if (rc == 0)
		rc = import_open_folder(dir, s, &r->folder, err);
	if (rc == 0)
		rc = store_list(r->folder, vms, count, err);
	if (rc == 0)
		rc = import_pick_vm(*vms, *count, s->vm, dir, err);
	if (rc < 0)
		return rc;
	r->vm = &(*vms)[rc];
	r->snap_ids = calloc(r->vm->snapshot_count + 1, sizeof(*r->snap_ids));
	r->state_temp = calloc(r->vm->snapshot_count + 1, sizeof(*r->state_temp));
	r->state_final = calloc(r->vm->snapshot_count + 1, sizeof(*r->state_final));
	r->renames = calloc(r->vm->snapshot_count + 1, sizeof(*r->renames));
	if (!r->snap_ids || !r->state_temp || !r->state_final || !r->renames)
		return error_set(err, ENOMEM, "out of memory");
	if (s->generate_new_id) {
		store_new_guid(r->vm_id, true);
		r->renames[r->rename_count++] = (struct savedstate_rename){r->vm->id, r->vm_id};
		for (size_t i = 0; i < r->vm->snapshot_count; i++) {
			store_new_guid(r->snap_ids[i], true);
			r->renames[r->rename_count++] =
				(struct savedstate_rename){r->vm->snapshots[i].id, r->snap_ids[i]};
		}
	} else {
		snprintf(r->vm_id, sizeof(r->vm_id), "%s", r->vm->id);
		for (size_t i = 0; i < r->vm->snapshot_count; i++)
			snprintf(r->snap_ids[i], 37, "%s", r->vm->snapshots[i].id);
	}
	return store_switches(r->store, &r->switches, &r->switch_count, err);
}

/* Every file of every chain, and the saved state, written under temporary names. */
static int copy_all(struct import_run_state *r, struct error *err)
{
	const struct import_settings *s = r->s;
	const struct store_vm *vm = r->vm;
	struct pathbuf path = PATHBUF_INIT;
	int rc = 0;

	for (size_t i = 0; rc >= 0 && s->create_copy && i < vm->disk_count; i++)
		rc = import_copy_plan_chain(r, &vm->disks[i], err);
	for (size_t i = 0; rc >= 0 && s->create_copy && i < vm->snapshot_count; i++)
		for (size_t k = 0; rc >= 0 && k < vm->snapshots[i].disk_count; k++)
			rc = import_copy_plan_chain(r, &vm->snapshots[i].disks[k], err);
	/* What killed imports left in the folders of the disks' own targets. */
	for (size_t i = 0; rc >= 0 && i < r->job_count; i++) {
		char folder[PATH_MAX];
		const char *rel;
		int fd;

		if (fsutil_dirname(r->jobs[i].target, folder, sizeof(folder)) == 0 &&
		    strcmp(folder, s->target_vhd_data_root) != 0 &&
		    (fd = import_run_place(r, folder, &rel, NULL)) >= 0)
			staging_sweep_temps(fd, rel);
	}
	if (rc < 0)
		return rc;
	import_copy_count(r);
	rc = import_copy_disks(r, err);
	/* Saved state, in folders named after the new GUIDs. */
	if (rc == 0 && vm->saved_state) {
		rc = pathbuf_setf(&path, "%s/%s/%s", s->target_vm_data_root, HYPERV_VMS_DIR,
				  r->vm_id);
		rc = rc < 0 ? error_set(err, ENOMEM, "out of memory")
			    : import_copy_state(r, vm->saved_state, path.buf, err);
	}
	for (size_t i = 0; rc == 0 && i < vm->snapshot_count; i++)
		if (vm->snapshots[i].saved_state) {
			rc = pathbuf_setf(&path, "%s/%s/%s", s->target_snapshot_data_root,
					  HYPERV_SNAPSHOTS_DIR, r->snap_ids[i]);
			rc = rc < 0 ? error_set(err, ENOMEM, "out of memory")
				    : import_copy_state(r, vm->snapshots[i].saved_state, path.buf,
							err);
		}
	pathbuf_release(&path);
	return rc;
}

/* Write the configuration of snapshot @i, rewritten, and add it to the journal. */
static int write_snapshot(struct import_run_state *r, size_t i, struct error *err)
{
	const struct store_snapshot *snap = &r->vm->snapshots[i];
	struct pathbuf path = PATHBUF_INIT;
	struct config *config = NULL;
	struct journal_entry e;
	int rc = config_load(&config, snap->config_path, err);

	if (rc == 0)
		rc = new_ids(r, config, err);
	if (rc == 0)
		rc = rewrite(r, config, r->snap_ids[i], snap->disks, snap->disk_count, err);
	if (rc == 0 && snap->parent_id && snap->parent_id[0])
		rc = config_set(config, STORE_KEY_PARENT, "string",
				mapped_snapshot(r, snap->parent_id), err);
	if (rc == 0)
		target_folder(r, r->s->target_snapshot_data_root, HYPERV_SNAPSHOTS_DIR);
	if (rc == 0 && pathbuf_setf(&path, "%s/%s/%s.xml", r->s->target_snapshot_data_root,
				    HYPERV_SNAPSHOTS_DIR, r->snap_ids[i]) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc == 0 && (rc = save_new(r, config, path.buf, err)) == 0) {
		import_run_made(r, path.buf);
		rc = entry_of(r, path.buf, path.buf, &e, err);
		if (rc == 0)
			rc = journal_add(r->journal_fd, r->vm_id, &e, err);
	}
	config_free(config);
	pathbuf_release(&path);
	return rc;
}

/* Write the VM's configuration, rewritten: the commit. */
static int write_vm(struct import_run_state *r, struct error *err)
{
	const struct import_settings *s = r->s;
	struct pathbuf path = PATHBUF_INIT;
	struct config *config = NULL;
	int rc = config_load(&config, r->vm->config_path, err);

	if (rc == 0)
		rc = new_ids(r, config, err);
	if (rc == 0)
		rc = rewrite(r, config, r->vm_id, r->vm->disks, r->vm->disk_count, err);
	if (rc == 0 && s->name && s->name[0])
		rc = config_set(config, "properties/name", "string", s->name, err);
	if (rc == 0 && r->vm->current_snapshot_id && r->vm->current_snapshot_id[0])
		rc = config_set(config, STORE_KEY_CURRENT, "string",
				mapped_snapshot(r, r->vm->current_snapshot_id), err);
	if (rc == 0 && pathbuf_setf(&path, "%s/%s/%s.xml", s->target_vm_data_root, HYPERV_VMS_DIR,
				    r->vm_id) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc == 0)
		rc = save_new(r, config, path.buf, err);
	config_free(config);
	pathbuf_release(&path);
	return rc;
}

int import_run(const char *dir, struct store *store, const struct import_settings *s,
	       unsigned flags, const struct import_progress *progress, char id_out[37],
	       struct error *err)
{
	struct import_run_state r = {.store = store,
				     .s = s,
				     .progress = progress,
				     .flags = flags,
				     .journal_fd = -1,
				     .made = ROLLBACK_INIT,
				     .writing = PATHBUF_INIT};
	struct store_vm *vms = NULL;
	size_t count = 0;
	int lock, rc;

	/* First what killed imports left (their files take space the report counts). */
	if ((lock = store_lock(store, err)) < 0) {
		rc = lock;
		goto out;
	}
	import_recover_all(store, s, progress ? progress->notice : NULL,
			   progress ? progress->ctx : NULL);
	r.place_count = import_run_open_places(store, s, r.places, IMPORT_RUN_ROOTS);
	rc = prepare(&r, dir, &vms, &count, err);
	if (rc < 0)
		goto out;
	/* The target roots' folders, for the journal and the saved state. */
	target_folder(&r, s->target_vm_data_root, HYPERV_VMS_DIR);
	target_folder(&r, s->target_snapshot_data_root, HYPERV_SNAPSHOTS_DIR);
	rc = copy_all(&r, err);
	/* The caller's last word before anything takes a name in the store. */
	if (rc == 0 && (rc = import_run_advance(&r, 0)) < 0)
		rc = error_set(err, -rc, "the import stopped: %s", strerror(-rc));
	if (rc == 0) {
		/* import_run_open_places() put the target VM root first. */
		r.journal_fd =
			r.place_count && r.places[0].fd >= 0 &&
					r.places[0].path == s->target_vm_data_root
				? journal_folder_open(r.places[0].fd, s->target_vm_data_root, true,
						      err)
				: error_set(err, ENOENT, "cannot open the target VM root '%s'",
					    s->target_vm_data_root);
		rc = r.journal_fd < 0 ? r.journal_fd : write_journal(&r, err);
	}
	if (rc == 0)
		rc = place_disks(&r, err);
	if (rc == 0)
		rc = place_states(&r, err);
	/* The snapshots' configurations, then the VM's: the commit. */
	for (size_t i = 0; rc == 0 && i < r.vm->snapshot_count; i++)
		rc = write_snapshot(&r, i, err);
	if (rc == 0)
		rc = write_vm(&r, err);
	if (rc == 0) {
		/* Committed: the journal goes. */
		journal_remove(r.journal_fd, r.vm_id);
		r.journaled = false;
	}
out:
	if (rc < 0)
		roll_back(&r);
	else if (id_out)
		snprintf(id_out, 37, "%s", r.vm_id);
	rollback_release(&r.made);
	pathbuf_release(&r.writing);
	store_unlock(lock);
	if (r.journal_fd >= 0)
		close(r.journal_fd);
	import_run_close_places(r.places, r.place_count);
	for (size_t i = 0; i < r.job_count; i++) {
		free(r.jobs[i].source);
		free(r.jobs[i].target);
		free(r.jobs[i].temp);
	}
	free(r.jobs);
	for (size_t i = 0; r.vm && i <= r.vm->snapshot_count; i++) {
		if (r.state_temp)
			free(r.state_temp[i]);
		if (r.state_final)
			free(r.state_final[i]);
	}
	free(r.snap_ids);
	free(r.renames);
	free(r.state_temp);
	free(r.state_final);
	store_switches_free(r.switches, r.switch_count);
	store_vms_free(vms, count);
	store_free(r.folder);
	return rc < 0 ? rc : 0;
}
