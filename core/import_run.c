/*
 * The import itself (impex import): copy on import, or registration in
 * place, with the settings of core/import.
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
#include "import.h"

#include "asuser.h"
#include "beneath.h"
#include "chain.h"
#include "config.h"
#include "disk.h"
#include "error.h"
#include "export.h"
#include "fsutil.h"
#include "journal.h"
#include "pathmap.h"
#include "staging.h"
#include "store.h"
#include "vhd.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* At most this many roots an import writes in, or a recovery looks at: the store's and the
 * three targets. */
#define RECOVER_ROOTS 64

/* One disk file to copy. */
struct job {
	char *source; /* its real path */
	char *target; /* where it goes */
	char *temp;   /* where it is written first */
	int parent;   /* the job of its parent, or -1 */
	bool renamed; /* in place at its target */
};

struct run {
	struct store *store;	  /* the target store */
	struct store *folder;	  /* the export folder */
	const struct import_settings *s;
	const struct store_vm *vm;
	char vm_id[37];
	char (*snap_ids)[37]; /* new GUIDs, as vm->snapshots */
	struct job *jobs;
	size_t job_count;
	char **made; /* files and folders made, for a rollback (folders after their files) */
	size_t made_count;
	struct store_switch *switches;
	size_t switch_count;
	const struct import_progress *progress;
	unsigned flags;
	char dir_real[PATH_MAX]; /* the folder's real path (IMPORT_ADOPT) */
	char (*state_temp)[PATH_MAX]; /* saved-state folders, as written */
	char (*state_final)[PATH_MAX]; /* and their names */
	size_t state_count;
	uint64_t done, total; /* bytes copied, and to copy */
	const char *file;     /* the file being written */
	int journal_fd;	      /* the journal folder of the target VM root, or -1 */
	bool journaled;	      /* a journal was written */
	struct journal_root places[RECOVER_ROOTS]; /* the roots it writes in, open */
	size_t place_count;
};

/*
 * Where the absolute @path lies for a write: the descriptor of the target
 * root or store root (or, for IMPORT_ADOPT, the import folder of the
 * thread's scope) that holds it by name, with the rest in *@rel. Every
 * write of an import resolves beneath one of them, following no link
 * (core/beneath.h). -EXDEV with a message for a path under none.
 */
static int place(const struct run *r, const char *path, const char **rel, struct error *err)
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

/* Open the roots @s writes in (its targets, the store's roots) into @roots; returns how many. */
static size_t open_places(const struct store *store, const struct import_settings *s,
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

static void close_places(struct journal_root *roots, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (roots[i].fd >= 0)
			close(roots[i].fd);
}

/* mkdir of @path (a target folder) with @mode: 0, -EEXIST, or -errno with a message. */
static int make_folder(const struct run *r, const char *path, struct error *err)
{
	const char *rel;
	int fd, rc;

	/* A target root itself (disks straight in target_vhd_data_root): there already. */
	for (size_t i = 0; i < r->place_count; i++)
		if (r->places[i].fd >= 0 && beneath_lexically(path, r->places[i].path, &rel) &&
		    !rel[0])
			return -EEXIST;
	fd = place(r, path, &rel, err);
	if (fd < 0)
		return fd;
	rc = beneath_mkdir(fd, rel, 0755);
	return rc < 0 && rc != -EEXIST ? error_errno(err, -rc, "cannot create", path) : rc;
}

/* Write @config as the new file @path, never over one. */
static int save_new(const struct run *r, const struct config *config, const char *path,
		    struct error *err)
{
	const char *rel;
	int fd = place(r, path, &rel, err);

	return fd < 0 ? fd : config_save_new_at(config, fd, rel, path, err);
}

/* Whether a name @path exists (as anything, links included). */
static bool exists(const struct run *r, const char *path)
{
	struct stat st;
	const char *rel;
	int fd = place(r, path, &rel, NULL);

	return fd >= 0 && beneath_stat(fd, rel, &st) == 0;
}

/* fsync the folder holding @path, so that its new name is durable. */
static void sync_folder_of(const struct run *r, const char *path)
{
	char name[NAME_MAX + 1];
	const char *rel;
	int fd = place(r, path, &rel, NULL), parent;

	if (fd >= 0 && (parent = beneath_parent(fd, rel, name)) >= 0) {
		int dir = beneath_open(parent, ".", O_RDONLY | O_DIRECTORY, 0);

		if (dir >= 0) {
			fsync(dir);
			close(dir);
		}
		close(parent);
	}
}

/* @bytes more copied: told to the caller, whose negative errno stops the import. */
static int advance(void *ctx, uint64_t bytes)
{
	struct run *r = ctx;

	r->done += bytes;
	if (r->progress && r->progress->report)
		return r->progress->report(r->progress->ctx, r->done, r->total, r->file);
	return 0;
}

/*
 * Write @node into the new file @dest (never over a name), counting its
 * bytes; @shown names it in the progress. 0, -EEXIST (nothing made), or a
 * negative errno with a message.
 */
static int write_counted(struct run *r, const struct export_node *node, const char *dest,
			 const char *shown, struct error *err)
{
	const char *rel;
	int root = place(r, dest, &rel, err), fd, rc;

	if (root < 0)
		return root;
	fd = beneath_open(root, rel, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return error_errno(err, -fd, "cannot create", dest);
	r->file = shown;
	rc = export_write_file_fd(node, fd, dest, advance, r, err);
	close(fd);
	return rc;
}

/* Bytes of the file at @path, for the total. */
static uint64_t size_of(const char *path)
{
	struct stat st;

	return fsutil_stat_source(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int remember(struct run *r, const char *path)
{
	char **grown = realloc(r->made, (r->made_count + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	r->made = grown;
	if (!(r->made[r->made_count] = strdup(path)))
		return -ENOMEM;
	r->made_count++;
	return 0;
}

/* Remove what was made, newest first: files, or folders with what they hold, never through a
 * link. */
static void roll_back(struct run *r)
{
	for (size_t i = r->made_count; i-- > 0;) {
		const char *rel;
		int fd = place(r, r->made[i], &rel, NULL);

		if (fd >= 0)
			beneath_remove_tree(fd, rel, NULL);
	}
	if (r->journaled)
		journal_remove(r->journal_fd, r->vm_id);
}

/* Whether @name is a temporary name of an import: ".<name>.impex-import". */
static bool temporary(const char *name)
{
	size_t n = strlen(name), tail = strlen(".impex-import");

	return name[0] == '.' && n > tail + 1 && strcmp(name + n - tail, ".impex-import") == 0;
}

/*
 * Remove the temporary files and folders an import that was killed left in
 * @dir. The store's lock is held: no other import of this store is writing
 * them, but a running import mount, which holds an exclusive flock on each
 * folder it fills (importfs.c) from before its first file: a folder whose
 * lock cannot be taken is left alone, and one whose lock is taken is removed
 * with the lock held, so that no mount can take it meanwhile. A lock ends
 * with its process: a killed mount's folders are free.
 */
static void sweep(int dirfd)
{
	char **names = NULL;
	size_t count = 0;

	if (dirfd < 0 || fsutil_list_names_at(dirfd, temporary, &names, &count) < 0)
		return;
	for (size_t i = 0; i < count; i++) {
		struct stat st;
		int fd;

		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISDIR(st.st_mode)) {
			unlinkat(dirfd, names[i], 0);
			continue;
		}
		fd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			beneath_remove_tree(dirfd, names[i], NULL);
		close(fd);
	}
	fsutil_names_free(names, count);
}

/* sweep() of the folder @rel beneath @rootfd. */
static void sweep_at(int rootfd, const char *rel)
{
	int fd = rootfd < 0 ? -1 : beneath_open(rootfd, rel, O_RDONLY | O_DIRECTORY, 0);

	if (fd >= 0) {
		sweep(fd);
		close(fd);
	}
}

/* The journal's entry for what is at @made, to be placed at @placed. */
static int entry_of(const struct run *r, const char *made, const char *placed,
		    struct journal_entry *e, struct error *err)
{
	const char *rel;
	struct stat st;
	int fd = place(r, made, &rel, err), rc;

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
static int write_journal(struct run *r, struct error *err)
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
static const char *mapped_snapshot(const struct run *r, const char *old)
{
	for (size_t i = 0; old && i < r->vm->snapshot_count; i++)
		if (strcasecmp(r->vm->snapshots[i].id, old) == 0)
			return r->snap_ids[i];
	return old ? old : "";
}

/* Whether the 36 characters at @p have the form of a GUID (8-4-4-4-12 hexadecimal digits). */
static bool guid_at(const char *p)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? p[i] != '-' : !isxdigit((unsigned char)p[i]))
			return false;
	}
	return true;
}

/* The new GUID of the VM or snapshot whose old GUID are the 36 characters at @p (any
 * case), or NULL. */
static const char *new_id_at(const struct run *r, const char *p)
{
	if (strncasecmp(p, r->vm->id, 36) == 0)
		return r->vm_id;
	for (size_t i = 0; i < r->vm->snapshot_count; i++)
		if (strncasecmp(p, r->vm->snapshots[i].id, 36) == 0)
			return r->snap_ids[i];
	return NULL;
}

/*
 * With generate_new_id, replace in @text every old GUID of the VM and its
 * snapshots (any case, braced or not: the braces stay) by its new one,
 * written in the case of the old. Returns whether any was.
 */
static bool renew_ids(const struct run *r, char *text)
{
	size_t n = strlen(text);
	bool renewed = false;

	if (!r->s->generate_new_id)
		return false;
	for (size_t i = 0; i + 36 <= n; i++) {
		const char *id = guid_at(text + i) ? new_id_at(r, text + i) : NULL;
		bool lower = false;

		if (!id)
			continue;
		for (int k = 0; k < 36; k++)
			lower = lower || islower((unsigned char)text[i + k]);
		for (int k = 0; k < 36; k++)
			text[i + k] = (char)(lower ? tolower((unsigned char)id[k])
						   : toupper((unsigned char)id[k]));
		renewed = true;
		i += 35;
	}
	return renewed;
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
	if (renew_ids(ctx, *value))
		return 1;
	free(*value);
	*value = NULL;
	return 0;
}

/* Give @config the new GUIDs wherever a value names an old one, and its VM's new GUID as
 * the VM it belongs to (where it says). */
static int new_ids(struct run *r, struct config *config, struct error *err)
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

/* The resource of the settings for the disk a configuration records as @written. */
static const struct import_resource *resource_of(const struct run *r, const char *written)
{
	for (size_t i = 0; written && i < r->s->resource_count; i++)
		if (strcmp(r->s->resources[i].current, written) == 0)
			return &r->s->resources[i];
	return NULL;
}

/* The resource whose disk is the file at the real path @real, or NULL. */
static const struct import_resource *resource_at(const struct run *r, const char *real)
{
	for (size_t i = 0; i < r->s->resource_count; i++) {
		const struct import_resource *res = &r->s->resources[i];
		char other[PATH_MAX];

		if (res->source && res->source[0] &&
		    fsutil_real_path_source(res->source, other, sizeof(other)) == 0 &&
		    strcmp(other, real) == 0)
			return res;
	}
	return NULL;
}

/* Whether a job of @ctx (the run) is to write @path. */
static bool job_target(void *ctx, const char *path)
{
	const struct run *r = ctx;

	for (size_t i = 0; i < r->job_count; i++)
		if (r->jobs[i].target && strcmp(r->jobs[i].target, path) == 0)
			return true;
	return false;
}

/* A free name for @want: taken by no file and no job (see import_free_name()). */
static char *free_target(struct run *r, const char *want)
{
	if (strchr(want, '\n'))
		return NULL; /* the journal holds a name a line */
	return import_free_name(want, job_target, r);
}

static int find_job(const struct run *r, const char *source)
{
	for (size_t i = 0; i < r->job_count; i++)
		if (strcmp(r->jobs[i].source, source) == 0)
			return (int)i;
	return -1;
}

/* The jobs of @disk's chain (the disk read where its resource says); returns the top's. */
static int plan_chain(struct run *r, const struct store_disk *disk, struct error *err)
{
	const struct import_resource *res = resource_of(r, disk->written);
	struct store_disk at = *disk;
	struct chain *chain = NULL;
	int rc, below = -1, top = -1;

	if (res && res->source && res->source[0])
		at.path = res->source;
	rc = store_open_chain(r->folder, &at, &chain, err);
	if (rc < 0)
		return rc;
	for (unsigned level = chain_depth(chain); level-- > 0 && rc == 0;) {
		/* The job's key: the name of the file the chain holds open. */
		char name[PATH_MAX], *real = NULL;
		int j;

		rc = fsutil_fd_path(disk_fd(chain_level(chain, level)), name, sizeof(name));
		if (rc == 0 && !(real = strdup(name)))
			rc = -ENOMEM;
		if (rc < 0) {
			rc = error_errno(err, -rc, "cannot resolve", disk_path(chain_level(chain, level)));
			break;
		}
		j = find_job(r, real);
		if (j < 0) {
			struct job *grown = realloc(r->jobs, (r->job_count + 1) * sizeof(*grown));
			char want[PATH_MAX];

			if (!grown) {
				free(real);
				rc = error_set(err, ENOMEM, "out of memory");
				break;
			}
			r->jobs = grown;
			j = (int)r->job_count;
			memset(&r->jobs[j], 0, sizeof(r->jobs[j]));
			r->jobs[j].source = real;
			r->jobs[j].parent = below;
			const struct import_resource *own = level == 0 ? res : resource_at(r, real);

			const char *why = import_target_refusal(pathmap_basename(real));

			/* A file a resource names goes where it says; other parents to the VHD root. */
			if (own && own->target && own->target[0])
				snprintf(want, sizeof(want), "%s", own->target);
			else if (why) {
				rc = error_set(err, EINVAL, "the disk '%s' cannot keep its name: %s",
					       real, why);
				free(real);
				r->jobs[j].source = NULL;
				break;
			} else
				snprintf(want, sizeof(want), "%s/%s", r->s->target_vhd_data_root,
					 pathmap_basename(real));
			/* "<name>_<GUID>.avhd": named after the new GUID, as its configuration. */
			renew_ids(r, strrchr(want, '/') ? strrchr(want, '/') + 1 : want);
			r->jobs[j].target = free_target(r, want);
			r->job_count++;
			if (!r->jobs[j].target)
				rc = error_set(err, ENOMEM, "no free name for '%s'", want);
		} else {
			free(real);
		}
		below = j;
		top = j;
	}
	chain_close(chain);
	return rc < 0 ? rc : top;
}

/* Whether the disk @source is read otherwise than it lies (a VHDX log replayed in memory): it is
 * then copied as read, never adopted as it lies. */
static bool read_replayed(const char *source)
{
	struct disk *disk = NULL;
	bool replayed = disk_open(&disk, source, DISK_OPEN_READ, NULL) == 0 &&
			disk_view_replayed(disk);

	disk_close(disk);
	return replayed;
}

/* Whether @source is adopted into @target_dir rather than copied (IMPORT_ADOPT). */
static bool adoptable(const struct run *r, const char *source, const char *target_dir)
{
	return (r->flags & IMPORT_ADOPT) && import_adoptable(r->dir_real, source, target_dir) &&
	       !read_replayed(source);
}

/*
 * Link the import's file @source as @temp in the store, and give it to the
 * owner of the folder it lands in: the store's now, its importer must not
 * be able to change it (a parent locator) later.
 */
static int give_to_store(const struct run *r, const char *source, const char *temp,
			 struct error *err)
{
	char name[NAME_MAX + 1];
	const char *from, *to;
	int fromfd = place(r, source, &from, err), tofd = fromfd < 0 ? -1 : place(r, temp, &to, err);
	int parent, rc;
	struct stat owner;

	if (fromfd < 0 || tofd < 0)
		return fromfd < 0 ? fromfd : tofd;
	rc = beneath_link(fromfd, from, tofd, to);
	if (rc < 0)
		return error_errno(err, -rc, "cannot link", temp);
	if (geteuid() != 0)
		return 0;
	parent = beneath_parent(tofd, to, name);
	rc = parent < 0 ? parent : fstat(parent, &owner) < 0 ? -errno : 0;
	if (rc == 0 && fchownat(parent, name, owner.st_uid, owner.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	if (parent >= 0)
		close(parent);
	return rc < 0 ? error_errno(err, -rc, "cannot give to the store's owner", temp) : 0;
}

/*
 * Adopt @source as @temp: a differencing disk is first changed where it is
 * to name @parent_name in its folder (as a copy would), and made durable;
 * then it takes the name @temp too. Its data is not written again.
 */
static int adopt_file(struct run *r, const char *source, const char *parent_name, const char *temp,
		      struct error *err)
{
	int rc = 0;

	if (parent_name) {
		struct vhd_patch patches[DISK_MAX_PATCHES] = {{0}};
		struct disk *disk = NULL;
		size_t count = 0;
		int fd = -1;

		rc = disk_open(&disk, source, DISK_OPEN_READ, err);
		if (rc == 0)
			rc = disk_patches(disk, parent_name, patches, DISK_MAX_PATCHES, &count, err);
		disk_close(disk);
		/* Opened as its sources are: beneath the import's folder, no link followed. */
		if (rc == 0 && (fd = fsutil_open_source(source, true)) < 0)
			rc = error_errno(err, -fd, "cannot open", source);
		for (size_t i = 0; rc == 0 && i < count; i++)
			if (patches[i].len &&
			    (rc = fsutil_pwrite_full(fd, patches[i].bytes, patches[i].len,
						     patches[i].offset)) < 0)
				rc = error_errno(err, -rc, "cannot write", source);
		if (rc == 0 && fsync(fd) < 0)
			rc = error_errno(err, errno, "cannot write", source);
		if (fd >= 0)
			close(fd);
		for (size_t i = 0; i < count; i++)
			free(patches[i].bytes);
		if (rc < 0)
			return rc;
	}
	rc = give_to_store(r, source, temp, err);
	if (rc < 0)
		return rc;
	r->file = temp;
	rc = advance(r, size_of(source));
	return rc < 0 ? error_errno(err, -rc, "cannot write", temp) : 0;
}

/*
 * Give the copy @copy the permission bits of @source, less set-user-ID,
 * set-group-ID, sticky and write by group or others: a copy is never wider
 * than what it copies (docs/SECURITY.md).
 */
static int keep_mode(const struct run *r, const char *source, const char *copy,
		     struct error *err)
{
	const char *rel;
	struct stat st;
	int fd, rc = fsutil_stat_source(source, &st);

	if (rc < 0)
		return error_errno(err, -rc, "cannot stat", source);
	fd = place(r, copy, &rel, err);
	if (fd < 0)
		return fd;
	rc = beneath_chmod(fd, rel, st.st_mode & 0755);
	return rc < 0 ? error_errno(err, -rc, "cannot set the mode of", copy) : 0;
}

/* Write each disk under its temporary name, differencing disks naming their parents' new files. */
static int copy_disks(struct run *r, struct error *err)
{
	for (size_t i = 0; i < r->job_count; i++) {
		struct job *j = &r->jobs[i];
		const char *parent = j->parent >= 0 ? r->jobs[j->parent].target : NULL;
		struct export_node *node = NULL;
		char dir[PATH_MAX], parent_dir[PATH_MAX];
		int rc = 0;

		if (fsutil_dirname(j->target, dir, sizeof(dir)) < 0)
			return error_set(err, ENAMETOOLONG, "'%s' is too long a path", j->target);
		if (parent && (fsutil_dirname(parent, parent_dir, sizeof(parent_dir)) < 0 ||
			       strcmp(dir, parent_dir) != 0))
			return error_set(err, EINVAL,
					 "'%s' would go to '%s', its parent to '%s': a differencing "
					 "disk and its parent must share a folder",
					 j->source, j->target, parent);
		rc = make_folder(r, dir, err);
		if (rc == 0)
			remember(r, dir);
		else if (rc != -EEXIST)
			return rc;
		if (asprintf(&j->temp, "%s/.%s.impex-import", dir, pathmap_basename(j->target)) < 0) {
			j->temp = NULL;
			return error_set(err, ENOMEM, "out of memory");
		}
		if (adoptable(r, j->source, dir)) {
			rc = adopt_file(r, j->source, parent ? pathmap_basename(parent) : NULL,
					j->temp, err);
			if (rc == 0)
				remember(r, j->temp);
			if (rc < 0)
				return rc;
			continue;
		}
		rc = export_node_for_file(j->source, parent ? pathmap_basename(parent) : NULL, &node,
					  err);
		if (rc == 0) {
			rc = write_counted(r, node, j->temp, j->target, err);
			if (rc == 0)
				rc = keep_mode(r, j->source, j->temp, err);
			/* Made here unless its name was taken (then it is not ours). */
			if (rc != -EEXIST && exists(r, j->temp))
				remember(r, j->temp);
		}
		export_node_free(node);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Give each parent the modification time its child records (a copy made
 * without keeping times, cp -r into an import mount, would otherwise make
 * every chain warn that its parent changed). Where children disagree the
 * last one wins: Hyper-V's never do.
 */
static void restore_parent_times(struct run *r)
{
	for (size_t i = 0; i < r->job_count; i++) {
		const struct job *j = &r->jobs[i];
		struct disk *disk = NULL;
		struct error err;

		if (j->parent < 0 || !j->temp || !r->jobs[j->parent].temp)
			continue;
		error_clear(&err);
		/* VHD alone records its parent's time; VHDX links by DataWriteGuid. */
		if (disk_open(&disk, j->temp, DISK_OPEN_READ, &err) == 0 && disk_vhd(disk)) {
			struct timespec times[2] = {
				{.tv_nsec = UTIME_OMIT},
				{.tv_sec = vhd_time_to_unix(
					 vhd_header(disk_vhd(disk))->parent_timestamp)},
			};
			const char *rel;
			int fd = place(r, r->jobs[j->parent].temp, &rel, NULL);

			if (fd >= 0)
				beneath_utimens(fd, rel, times);
		}
		disk_close(disk);
	}
}

/* Copy the saved state in @from into the new folder @to, an old GUID in a file's name made the
 * new one. */
static int copy_state(struct run *r, const char *from, const char *to, struct error *err)
{
	char **names = NULL;
	size_t count = 0;
	int rc;

	char final[PATH_MAX], parent[PATH_MAX];

	/* Written under a temporary name, renamed with the disks: a killed import leaves
	 * only names the next one sweeps. */
	snprintf(final, sizeof(final), "%s", to);
	if (fsutil_dirname(final, parent, sizeof(parent)) < 0 ||
	    snprintf(r->state_temp[r->state_count], PATH_MAX, "%s/.%s.impex-import", parent,
		     pathmap_basename(final)) >= PATH_MAX)
		return error_set(err, ENAMETOOLONG, "'%s' is too long a path", final);
	snprintf(r->state_final[r->state_count], PATH_MAX, "%s", final);
	to = r->state_temp[r->state_count];
	rc = make_folder(r, to, err);
	if (rc < 0)
		return rc == -EEXIST ? error_errno(err, EEXIST, "cannot create", to) : rc;
	r->state_count++;
	rc = remember(r, to) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
	if (rc == 0 && (rc = fsutil_list_names(from, NULL, &names, &count)) < 0)
		rc = error_errno(err, -rc, "cannot read", from);
	for (size_t i = 0; i < count && rc == 0; i++) {
		struct export_node *node = NULL;
		char src[PATH_MAX], dst[PATH_MAX];
		const char *name = names[i];
		struct stat st;

		snprintf(src, sizeof(src), "%s/%s", from, name);
		if (fsutil_stat_source(src, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (snprintf(dst, sizeof(dst), "%s/%s", to, name) >= (int)sizeof(dst)) {
			rc = error_set(err, ENAMETOOLONG, "'%s/%s' is too long a path", to, name);
			break;
		}
		renew_ids(r, dst + strlen(to) + 1);
		if (adoptable(r, src, to)) {
			rc = adopt_file(r, src, NULL, dst, err);
			if (rc == 0)
				remember(r, dst);
			continue;
		}
		rc = export_node_for_file(src, NULL, &node, err);
		if (rc == 0) {
			rc = write_counted(r, node, dst, dst, err);
			if (rc == 0)
				rc = keep_mode(r, src, dst, err);
			if (rc != -EEXIST && exists(r, dst))
				remember(r, dst);
		}
		export_node_free(node);
	}
	fsutil_names_free(names, count);
	return rc;
}

/* The path a configuration records for @disk after the import. */
static const char *new_disk_path(const struct run *r, const struct store_disk *disk, char *buf,
				 size_t cap)
{
	const struct import_resource *res = resource_of(r, disk->written);
	const char *source = res && res->source && res->source[0] ? res->source : disk->path;
	char real[PATH_MAX];
	int j = source && fsutil_real_path_source(source, real, sizeof(real)) == 0
			? find_job(r, real)
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
static int rewrite(struct run *r, struct config *config, const char *id,
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
static int place_states(struct run *r, struct error *err)
{
	for (size_t i = 0; i < r->state_count; i++) {
		const char *from, *to;
		int fromfd = place(r, r->state_temp[i], &from, err);
		int tofd = fromfd < 0 ? -1 : place(r, r->state_final[i], &to, err), rc;

		if (fromfd < 0 || tofd < 0)
			return fromfd < 0 ? fromfd : tofd;
		rc = beneath_rename(fromfd, from, tofd, to, RENAME_NOREPLACE);
		if (rc == -EEXIST)
			return error_set(err, EEXIST, "'%s' exists: not replaced", r->state_final[i]);
		if (rc < 0)
			return error_errno(err, -rc, "cannot place", r->state_final[i]);
		if (remember(r, r->state_final[i]) < 0)
			return error_set(err, ENOMEM, "out of memory");
		sync_folder_of(r, r->state_final[i]);
	}
	return 0;
}

/* Link every disk into place (never over a file), and drop its temporary name. */
static int place_disks(struct run *r, struct error *err)
{
	for (size_t i = 0; i < r->job_count; i++) {
		struct job *j = &r->jobs[i];
		const char *from, *to;
		int fromfd = place(r, j->temp, &from, err);
		int tofd = fromfd < 0 ? -1 : place(r, j->target, &to, err), rc;

		if (fromfd < 0 || tofd < 0)
			return fromfd < 0 ? fromfd : tofd;
		rc = beneath_link(fromfd, from, tofd, to);
		if (rc < 0)
			return error_errno(err, -rc, "cannot place", j->target);
		j->renamed = true;
		if (remember(r, j->target) < 0)
			return error_set(err, ENOMEM, "out of memory");
		beneath_unlink(fromfd, from, 0);
		sync_folder_of(r, j->target);
	}
	return 0;
}

/* The bytes of @from's files, for the total. */
static uint64_t folder_bytes(const char *from)
{
	char **names = NULL, path[PATH_MAX];
	size_t count = 0;
	uint64_t total = 0;

	if (from && fsutil_list_names(from, NULL, &names, &count) == 0)
		for (size_t i = 0; i < count; i++) {
			snprintf(path, sizeof(path), "%s/%s", from, names[i]);
			total += size_of(path);
		}
	fsutil_names_free(names, count);
	return total;
}


/*
 * What killed imports left in the store and at the targets of @s; the
 * store's lock is held. @report (may be NULL) hears of what is left alone.
 */
/* Whether @path, an entry of open_places(), is a VM root: @s's target VM root or the store's. */
static bool vm_root(const struct import_settings *s, const char *path)
{
	return path != s->target_vhd_data_root && path != s->target_snapshot_data_root;
}

static void recover_all(struct store *store, const struct import_settings *s,
			void (*report)(void *ctx, const char *message), void *ctx)
{
	struct journal_root roots[RECOVER_ROOTS];
	size_t count = open_places(store, s, roots, RECOVER_ROOTS);
	char message[PATH_MAX + 128];

	/* The journals of the VM roots: the target VM root and the store's roots. */
	for (size_t i = 0; i < count; i++) {
		bool seen = false;
		int fd;

		if (!vm_root(s, roots[i].path))
			continue;
		for (size_t k = 0; k < i; k++)
			seen = seen || (vm_root(s, roots[k].path) &&
					strcmp(roots[k].path, roots[i].path) == 0);
		if (seen || roots[i].fd < 0)
			continue;
		fd = journal_folder_open(roots[i].fd, roots[i].path, false, NULL);
		if (fd == -EPERM && report) {
			snprintf(message, sizeof(message),
				 "'%s/%s' is not this process's own: its journals are left alone",
				 roots[i].path, JOURNAL_FOLDER);
			report(ctx, message);
		}
		if (fd >= 0) {
			journal_recover(fd, roots[i].fd, roots, count, report, ctx);
			close(fd);
		}
	}
	/* Then temporary names, and staging folders no mount holds. */
	for (size_t i = 0; i < count; i++) {
		int staging;

		if (roots[i].fd < 0)
			continue;
		if (roots[i].path == s->target_vm_data_root)
			sweep_at(roots[i].fd, "Virtual Machines");
		if (roots[i].path == s->target_snapshot_data_root)
			sweep_at(roots[i].fd, "Snapshots");
		if (roots[i].path != s->target_vhd_data_root)
			continue;
		sweep(roots[i].fd);
		staging = beneath_private_folder(roots[i].fd, roots[i].path, STAGING_FOLDER, false,
						 NULL);
		if (staging >= 0 && staging_sweep(staging) && report) {
			snprintf(message, sizeof(message),
				 "some import folders in '%s/%s' could not be removed", roots[i].path,
				 STAGING_FOLDER);
			report(ctx, message);
		}
		if (staging >= 0)
			close(staging);
	}
	close_places(roots, count);
}

int import_recover(struct store *store, const struct import_settings *s,
		   void (*report)(void *ctx, const char *message), void *ctx, struct error *err)
{
	int lock = store_lock(store, err);

	if (lock < 0)
		return lock;
	recover_all(store, s, report, ctx);
	store_unlock(lock);
	return 0;
}

int import_run(const char *dir, struct store *store, const struct import_settings *s,
	       unsigned flags, const struct import_progress *progress, char id_out[37],
	       struct error *err)
{
	struct import_report report = {0};
	struct run r = {
		.store = store, .s = s, .progress = progress, .flags = flags, .journal_fd = -1};
	struct store_vm *vms = NULL;
	struct config *config = NULL;
	size_t count = 0;
	char path[PATH_MAX];
	int lock = -1, rc;

	/* First what killed imports left (their files take space the report counts). */
	if ((lock = store_lock(store, err)) < 0) {
		rc = lock;
		goto out;
	}
	recover_all(store, s, progress ? progress->notice : NULL, progress ? progress->ctx : NULL);
	r.place_count = open_places(store, s, r.places, RECOVER_ROOTS);
	/* The folder's name, a key compared with its files' names. */
	if ((flags & IMPORT_ADOPT) &&
	    (rc = fsutil_real_path_source(dir, r.dir_real, sizeof(r.dir_real))) < 0) {
		rc = error_errno(err, -rc, "cannot resolve", dir);
		goto out;
	}
	rc = import_compare(dir, store, s, flags, &report, err);
	for (size_t i = 0; rc == 0 && i < report.count; i++)
		if (report.issues[i].severity == IMPORT_ERROR)
			rc = error_set(err, ECANCELED, "the import would fail: %s (%s)",
				       report.issues[i].message, report.issues[i].id);
	import_report_free(&report);
	if (rc == 0)
		rc = import_open_folder(dir, s, &r.folder, err);
	if (rc == 0)
		rc = store_list(r.folder, &vms, &count, err);
	if (rc == 0)
		rc = import_pick_vm(vms, count, s->vm, dir, err);
	if (rc < 0)
		goto out;
	r.vm = &vms[rc];
	rc = 0;
	r.snap_ids = calloc(r.vm->snapshot_count + 1, sizeof(*r.snap_ids));
	r.state_temp = calloc(r.vm->snapshot_count + 1, sizeof(*r.state_temp));
	r.state_final = calloc(r.vm->snapshot_count + 1, sizeof(*r.state_final));
	if (!r.snap_ids || !r.state_temp || !r.state_final) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (s->generate_new_id) {
		store_new_guid(r.vm_id, true);
		for (size_t i = 0; i < r.vm->snapshot_count; i++)
			store_new_guid(r.snap_ids[i], true);
	} else {
		snprintf(r.vm_id, sizeof(r.vm_id), "%s", r.vm->id);
		for (size_t i = 0; i < r.vm->snapshot_count; i++)
			snprintf(r.snap_ids[i], 37, "%s", r.vm->snapshots[i].id);
	}
	rc = store_switches(store, &r.switches, &r.switch_count, err);
	/* The target roots' folders, for the journal and the saved state. */
	snprintf(path, sizeof(path), "%s/Virtual Machines", s->target_vm_data_root);
	if (rc == 0 && make_folder(&r, path, NULL) == 0)
		remember(&r, path);
	snprintf(path, sizeof(path), "%s/Snapshots", s->target_snapshot_data_root);
	if (rc == 0 && make_folder(&r, path, NULL) == 0)
		remember(&r, path);
	/* The disks: every file of every chain, written under temporary names. */
	for (size_t i = 0; rc >= 0 && s->create_copy && i < r.vm->disk_count; i++)
		rc = plan_chain(&r, &r.vm->disks[i], err);
	for (size_t i = 0; rc >= 0 && s->create_copy && i < r.vm->snapshot_count; i++)
		for (size_t k = 0; rc >= 0 && k < r.vm->snapshots[i].disk_count; k++)
			rc = plan_chain(&r, &r.vm->snapshots[i].disks[k], err);
	for (size_t i = 0; rc >= 0 && i < r.job_count; i++) {
		char folder[PATH_MAX];
		const char *rel;
		int fd;

		if (fsutil_dirname(r.jobs[i].target, folder, sizeof(folder)) == 0 &&
		    strcmp(folder, s->target_vhd_data_root) != 0 &&
		    (fd = place(&r, folder, &rel, NULL)) >= 0)
			sweep_at(fd, rel);
	}
	if (rc >= 0) {
		for (size_t i = 0; i < r.job_count; i++)
			r.total += size_of(r.jobs[i].source);
		r.total += folder_bytes(r.vm->saved_state);
		for (size_t i = 0; i < r.vm->snapshot_count; i++)
			r.total += folder_bytes(r.vm->snapshots[i].saved_state);
		rc = copy_disks(&r, err);
		if (rc == 0)
			restore_parent_times(&r);
	}
	/* Saved state, in folders named after the new GUIDs. */
	if (rc == 0 && r.vm->saved_state) {
		snprintf(path, sizeof(path), "%s/Virtual Machines/%s", s->target_vm_data_root, r.vm_id);
		rc = copy_state(&r, r.vm->saved_state, path, err);
	}
	for (size_t i = 0; rc == 0 && i < r.vm->snapshot_count; i++)
		if (r.vm->snapshots[i].saved_state) {
			snprintf(path, sizeof(path), "%s/Snapshots/%s", s->target_snapshot_data_root,
				 r.snap_ids[i]);
			rc = copy_state(&r, r.vm->snapshots[i].saved_state, path, err);
		}
	/* The caller's last word before anything takes a name in the store. */
	if (rc == 0 && (rc = advance(&r, 0)) < 0)
		rc = error_set(err, -rc, "the import stopped: %s", strerror(-rc));
	if (rc == 0) {
		/* open_places() put the target VM root first. */
		r.journal_fd = r.place_count && r.places[0].fd >= 0 &&
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
	for (size_t i = 0; rc == 0 && i < r.vm->snapshot_count; i++) {
		const struct store_snapshot *snap = &r.vm->snapshots[i];

		rc = config_load(&config, snap->config_path, err);
		if (rc == 0)
			rc = new_ids(&r, config, err);
		if (rc == 0)
			rc = rewrite(&r, config, r.snap_ids[i], snap->disks, snap->disk_count, err);
		if (rc == 0 && snap->parent_id && snap->parent_id[0])
			rc = config_set(config, STORE_KEY_PARENT, "string",
					mapped_snapshot(&r, snap->parent_id), err);
		snprintf(path, sizeof(path), "%s/Snapshots", s->target_snapshot_data_root);
		if (rc == 0 && make_folder(&r, path, NULL) == 0)
			remember(&r, path);
		snprintf(path, sizeof(path), "%s/Snapshots/%s.xml", s->target_snapshot_data_root,
			 r.snap_ids[i]);
		if (rc == 0 && (rc = save_new(&r, config, path, err)) == 0) {
			remember(&r, path);
			struct journal_entry e;

			rc = entry_of(&r, path, path, &e, err);
			if (rc == 0)
				rc = journal_add(r.journal_fd, r.vm_id, &e, err);
		}
		config_free(config);
		config = NULL;
	}
	if (rc == 0)
		rc = config_load(&config, r.vm->config_path, err);
	if (rc == 0)
		rc = new_ids(&r, config, err);
	if (rc == 0)
		rc = rewrite(&r, config, r.vm_id, r.vm->disks, r.vm->disk_count, err);
	if (rc == 0 && s->name && s->name[0])
		rc = config_set(config, "properties/name", "string", s->name, err);
	if (rc == 0 && r.vm->current_snapshot_id && r.vm->current_snapshot_id[0])
		rc = config_set(config, STORE_KEY_CURRENT, "string",
				mapped_snapshot(&r, r.vm->current_snapshot_id), err);
	snprintf(path, sizeof(path), "%s/Virtual Machines/%s.xml", s->target_vm_data_root, r.vm_id);
	if (rc == 0)
		rc = save_new(&r, config, path, err);
	config_free(config);
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
	store_unlock(lock);
	if (r.journal_fd >= 0)
		close(r.journal_fd);
	close_places(r.places, r.place_count);
	for (size_t i = 0; i < r.job_count; i++) {
		free(r.jobs[i].source);
		free(r.jobs[i].target);
		free(r.jobs[i].temp);
	}
	free(r.jobs);
	for (size_t i = 0; i < r.made_count; i++)
		free(r.made[i]);
	free(r.made);
	free(r.snap_ids);
	free(r.state_temp);
	free(r.state_final);
	store_switches_free(r.switches, r.switch_count);
	store_vms_free(vms, count);
	store_free(r.folder);
	return rc < 0 ? rc : 0;
}
