/*
 * import_copy.c - the data of an import (core/import_run.h): every file of
 * every chain written under a temporary name next to its target and
 * fsynced, differencing disks naming their parents' new files, or adopted
 * (IMPORT_ADOPT: linked, never written again); saved state into new
 * folders under temporary names. core/import_run.c places them at the
 * commit.
 */
#include "import_run.h"

#include "beneath.h"
#include "chain.h"
#include "disk.h"
#include "error.h"
#include "export.h"
#include "fsutil.h"
#include "pathbuf.h"
#include "pathmap.h"
#include "staging.h"
#include "store.h"
#include "vhd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* export_write_file_fd()'s progress: @bytes more copied by the run @ctx. */
static int advanced(void *ctx, uint64_t bytes)
{
	return import_run_advance(ctx, bytes);
}

/* @name is the file being written, for the progress (a copy: it outlives the caller's name). */
static void now_writing(struct import_run_state *r, const char *name)
{
	pathbuf_reset(&r->writing);
	r->file = pathbuf_adds(&r->writing, name) == 0 ? r->writing.buf : NULL;
}

/*
 * Write @node into the new file @dest (never over a name), counting its
 * bytes; @shown names it in the progress. 0, -EEXIST (nothing made), or a
 * negative errno with a message.
 */
static int write_counted(struct import_run_state *r, const struct export_node *node,
			 const char *dest, const char *shown, struct error *err)
{
	const char *rel;
	int root = import_run_place(r, dest, &rel, err), fd, rc;

	if (root < 0)
		return root;
	fd = beneath_open(root, rel, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return error_errno(err, -fd, "cannot create", dest);
	now_writing(r, shown);
	rc = export_write_file_fd(node, fd, dest, advanced, r, err);
	close(fd);
	return rc;
}

/* Bytes of the file at @path, for the total. */
static uint64_t size_of(const char *path)
{
	struct stat st;

	return fsutil_stat_source(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The resource whose disk is the file at the real path @real, or NULL. */
static const struct import_resource *resource_at(const struct import_run_state *r, const char *real)
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
	const struct import_run_state *r = ctx;

	for (size_t i = 0; i < r->job_count; i++)
		if (r->jobs[i].target && strcmp(r->jobs[i].target, path) == 0)
			return true;
	return false;
}

/* A free name for @want: taken by no file and no job (see import_free_name()). */
static char *free_target(struct import_run_state *r, const char *want)
{
	if (strchr(want, '\n'))
		return NULL; /* the journal holds a name a line */
	return import_free_name(want, job_target, r);
}

int import_copy_find_job(const struct import_run_state *r, const char *source)
{
	for (size_t i = 0; i < r->job_count; i++)
		if (strcmp(r->jobs[i].source, source) == 0)
			return (int)i;
	return -1;
}

int import_copy_plan_chain(struct import_run_state *r, const struct store_disk *disk,
			   struct error *err)
{
	const struct import_resource *res = import_run_resource_of(r, disk->written);
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
			rc = error_errno(err, -rc, "cannot resolve",
					 disk_path(chain_level(chain, level)));
			break;
		}
		j = import_copy_find_job(r, real);
		if (j < 0) {
			struct import_copy_job *grown =
				realloc(r->jobs, (r->job_count + 1) * sizeof(*grown));
			const struct import_resource *own;
			struct pathbuf want = PATHBUF_INIT;
			const char *why;
			char *base;

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
			own = level == 0 ? res : resource_at(r, real);
			why = import_target_refusal(pathmap_basename(real));
			/* A file a resource names goes where it says; other parents to the VHD
			 * root. */
			if (own && own->target && own->target[0]) {
				pathbuf_adds(&want, own->target);
			} else if (why) {
				rc = error_set(err, EINVAL,
					       "the disk '%s' cannot keep its name: %s", real, why);
				free(real);
				r->jobs[j].source = NULL;
				break;
			} else {
				pathbuf_adds(&want, r->s->target_vhd_data_root);
				pathbuf_join(&want, pathmap_basename(real));
			}
			/* "<name>_<GUID>.avhd": named after the new GUID, as its configuration. */
			base = strrchr(want.buf, '/');
			import_run_renew_ids(r, base ? base + 1 : want.buf);
			r->jobs[j].target = want.err ? NULL : free_target(r, want.buf);
			r->job_count++;
			if (!r->jobs[j].target)
				rc = error_set(err, ENOMEM, "no free name for '%s'", want.buf);
			pathbuf_release(&want);
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
	bool replayed =
		disk_open(&disk, source, DISK_OPEN_READ, NULL) == 0 && disk_view_replayed(disk);

	disk_close(disk);
	return replayed;
}

/* Whether @source is adopted into @target_dir rather than copied (IMPORT_ADOPT). */
static bool adoptable(const struct import_run_state *r, const char *source, const char *target_dir)
{
	return (r->flags & IMPORT_ADOPT) && import_adoptable(r->dir_real, source, target_dir) &&
	       !read_replayed(source);
}

/*
 * Link the import's file @source as @temp in the store, and give it to the
 * owner of the folder it lands in: the store's now, its importer must not
 * be able to change it (a parent locator) later.
 */
static int give_to_store(const struct import_run_state *r, const char *source, const char *temp,
			 struct error *err)
{
	char name[NAME_MAX + 1];
	const char *from, *to;
	int fromfd = import_run_place(r, source, &from, err),
	    tofd = fromfd < 0 ? -1 : import_run_place(r, temp, &to, err);
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
static int adopt_file(struct import_run_state *r, const char *source, const char *parent_name,
		      const char *temp, struct error *err)
{
	int rc = 0;

	if (parent_name) {
		struct vhd_patch patches[DISK_MAX_PATCHES] = {{0}};
		struct disk *disk = NULL;
		size_t count = 0;
		int fd = -1;

		rc = disk_open(&disk, source, DISK_OPEN_READ, err);
		if (rc == 0)
			rc = disk_patches(disk, parent_name, patches, DISK_MAX_PATCHES, &count,
					  err);
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
	now_writing(r, temp);
	rc = import_run_advance(r, size_of(source));
	return rc < 0 ? error_errno(err, -rc, "cannot write", temp) : 0;
}

/*
 * Give the copy @copy the permission bits of @source, made safe
 * (import_safe_mode()): a copy is never wider than what it copies.
 */
static int keep_mode(const struct import_run_state *r, const char *source, const char *copy,
		     struct error *err)
{
	const char *rel;
	struct stat st;
	int fd, rc = fsutil_stat_source(source, &st);

	if (rc < 0)
		return error_errno(err, -rc, "cannot stat", source);
	fd = import_run_place(r, copy, &rel, err);
	if (fd < 0)
		return fd;
	rc = beneath_chmod(fd, rel, import_safe_mode(st.st_mode));
	return rc < 0 ? error_errno(err, -rc, "cannot set the mode of", copy) : 0;
}

/* Write each disk under its temporary name, differencing disks naming their parents' new files. */
static int copy_disks(struct import_run_state *r, struct error *err)
{
	for (size_t i = 0; i < r->job_count; i++) {
		struct import_copy_job *j = &r->jobs[i];
		const char *parent = j->parent >= 0 ? r->jobs[j->parent].target : NULL;
		struct export_node *node = NULL;
		struct pathbuf temp = PATHBUF_INIT;
		char dir[PATH_MAX], parent_dir[PATH_MAX];
		int rc = 0;

		if (fsutil_dirname(j->target, dir, sizeof(dir)) < 0)
			return error_set(err, ENAMETOOLONG, "'%s' is too long a path", j->target);
		if (parent && (fsutil_dirname(parent, parent_dir, sizeof(parent_dir)) < 0 ||
			       strcmp(dir, parent_dir) != 0))
			return error_set(
				err, EINVAL,
				"'%s' would go to '%s', its parent to '%s': a differencing "
				"disk and its parent must share a folder",
				j->source, j->target, parent);
		rc = import_run_make_folder(r, dir, err);
		if (rc == 0)
			import_run_made(r, dir);
		else if (rc != -EEXIST)
			return rc;
		j->temp = staging_temp_name(&temp, j->target) == 0 ? pathbuf_detach(&temp) : NULL;
		pathbuf_release(&temp);
		if (!j->temp)
			return error_set(err, ENOMEM, "out of memory");
		if (adoptable(r, j->source, dir)) {
			rc = adopt_file(r, j->source, parent ? pathmap_basename(parent) : NULL,
					j->temp, err);
			if (rc == 0)
				import_run_made(r, j->temp);
			if (rc < 0)
				return rc;
			continue;
		}
		rc = export_node_for_file(j->source, parent ? pathmap_basename(parent) : NULL,
					  &node, err);
		if (rc == 0) {
			rc = write_counted(r, node, j->temp, j->target, err);
			if (rc == 0)
				rc = keep_mode(r, j->source, j->temp, err);
			/* Made here unless its name was taken (then it is not ours). */
			if (rc != -EEXIST && import_run_exists(r, j->temp))
				import_run_made(r, j->temp);
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
static void restore_parent_times(struct import_run_state *r)
{
	for (size_t i = 0; i < r->job_count; i++) {
		const struct import_copy_job *j = &r->jobs[i];
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
			int fd = import_run_place(r, r->jobs[j->parent].temp, &rel, NULL);

			if (fd >= 0)
				beneath_utimens(fd, rel, times);
		}
		disk_close(disk);
	}
}

int import_copy_state(struct import_run_state *r, const char *from, const char *to,
		      struct error *err)
{
	struct pathbuf temp = PATHBUF_INIT, src = PATHBUF_INIT, dst = PATHBUF_INIT;
	struct savedstate_file *files = NULL;
	size_t count = 0;
	int rc;

	/* Written under a temporary name, renamed with the disks: a killed import leaves
	 * only names the next one sweeps. */
	if (staging_temp_name(&temp, to) < 0 || !(r->state_final[r->state_count] = strdup(to))) {
		pathbuf_release(&temp);
		return error_set(err, ENOMEM, "out of memory");
	}
	r->state_temp[r->state_count] = pathbuf_detach(&temp);
	to = r->state_temp[r->state_count];
	if (!to) {
		free(r->state_final[r->state_count]);
		r->state_final[r->state_count] = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	rc = import_run_make_folder(r, to, err);
	if (rc < 0)
		return rc == -EEXIST ? error_errno(err, EEXIST, "cannot create", to) : rc;
	r->state_count++;
	rc = import_run_made(r, to) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
	if (rc == 0)
		rc = savedstate_files(from, r->renames, r->rename_count, &files, &count, err);
	for (size_t i = 0; i < count && rc == 0; i++) {
		struct export_node *node = NULL;

		pathbuf_setf(&src, "%s/%s", from, files[i].name);
		pathbuf_setf(&dst, "%s/%s", to, files[i].as);
		if (src.err || dst.err) {
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		if (adoptable(r, src.buf, to)) {
			rc = adopt_file(r, src.buf, NULL, dst.buf, err);
			if (rc == 0)
				import_run_made(r, dst.buf);
			continue;
		}
		rc = export_node_for_file(src.buf, NULL, &node, err);
		if (rc == 0) {
			rc = write_counted(r, node, dst.buf, dst.buf, err);
			if (rc == 0)
				rc = keep_mode(r, src.buf, dst.buf, err);
			if (rc != -EEXIST && import_run_exists(r, dst.buf))
				import_run_made(r, dst.buf);
		}
		export_node_free(node);
	}
	pathbuf_release(&src);
	pathbuf_release(&dst);
	free(files);
	return rc;
}

/* The bytes of the files a copy of the saved-state folder @from carries, for the total. */
static uint64_t folder_bytes(const char *from)
{
	struct savedstate_file *files = NULL;
	size_t count = 0;
	uint64_t total = 0;
	struct error err;

	if (from && savedstate_files(from, NULL, 0, &files, &count, &err) == 0)
		for (size_t i = 0; i < count; i++)
			total += files[i].size;
	free(files);
	return total;
}

void import_copy_count(struct import_run_state *r)
{
	for (size_t i = 0; i < r->job_count; i++)
		r->total += size_of(r->jobs[i].source);
	r->total += folder_bytes(r->vm->saved_state);
	for (size_t i = 0; i < r->vm->snapshot_count; i++)
		r->total += folder_bytes(r->vm->snapshots[i].saved_state);
}

int import_copy_disks(struct import_run_state *r, struct error *err)
{
	int rc = copy_disks(r, err);

	if (rc == 0)
		restore_parent_times(r);
	return rc;
}
