/*
 * export_disks.c - the disks of an export folder (see export_disks.h): the
 * files of chains carried into "Virtual Hard Disks", each differencing disk
 * relocated to name its parent there, and the merged disks of a state.
 */
#include "export_disks.h"

#include "chain.h"
#include "disk.h"
#include "error.h"
#include "export_plan.h"
#include "fsutil.h"
#include "hash.h"
#include "hyperv.h"
#include "pathmap.h"
#include "store.h"
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

/*
 * Whether @disk, whose chain failed to open with @why, cannot be read for
 * good and so is served as far as it can be (struct export_notes): then
 * @notes is told of it, with the store's problem with the disk if it has
 * one, else @why.
 */
static bool unreadable(const struct store_disk *disk, const struct error *why,
		       const struct export_notes *notes)
{
	struct error said;

	if (disk->path ? error_is_transient(why->code) || why->code == EACCES
		       : disk->problem_code != ENOENT)
		return false;
	if (notes && notes->note) {
		error_set(&said, why->code, "%s",
			  disk->problem ? disk->problem : error_message(why));
		notes->note(notes->ctx, disk->path ? disk->path : disk->written, EXPORT_UNREADABLE,
			    &said);
	}
	return true;
}

/* ---- the files of chains ---- */

void export_disk_files_free(struct export_disk_files *d)
{
	for (size_t i = 0; i < d->count; i++) {
		free(d->files[i].path);
		free(d->files[i].name);
	}
	free(d->files);
}

static int find_file(const struct export_disk_files *d, const char *path)
{
	for (size_t i = 0; i < d->count; i++)
		if (d->files[i].path && strcmp(d->files[i].path, path) == 0)
			return (int)i;
	return -1;
}

/* Add the file @path (parent @parent, UUID @uuid) to @d unless there; its index, or -ENOMEM.
 * Files are kept by their real paths, which the store's disks and the parents of a chain
 * have (store.h, chain.h): served, they are opened without following links. */
static int add_disk_file(struct export_disk_files *d, const char *path, int parent,
			 const uint8_t *uuid)
{
	int at = find_file(d, path);
	struct export_disk_file *grown;
	char *real;

	if (at >= 0)
		return at;
	real = strdup(path);
	grown = real ? realloc(d->files, (d->count + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		free(real);
		return -ENOMEM;
	}
	d->files = grown;
	at = (int)d->count++;
	memset(&d->files[at], 0, sizeof(d->files[at]));
	d->files[at].parent = parent;
	memcpy(d->files[at].uuid, uuid, 16);
	d->files[at].path = real;
	return at;
}

/*
 * Add the files of @disk's chain (top first) to @d; the top's index into
 * *@top. A chain that cannot be opened (unreadable()) adds what it opened,
 * or its top file alone, as it lies; a file found nowhere, or no regular
 * file, adds nothing (-1).
 */
int export_collect_chain(struct export_planner *p, const struct store_disk *disk,
			 struct export_disk_files *d, const struct export_notes *notes, int *top,
			 struct error *err)
{
	struct chain *chain = NULL;
	struct error why;
	struct stat st;
	int rc;

	*top = -1;
	error_clear(&why);
	rc = export_planner_open_chain(p, disk, true, &chain, &why);
	if (rc < 0 && !unreadable(disk, &why, notes)) {
		chain_close(chain);
		*err = why;
		return rc;
	}
	rc = 0;
	/* Bottom up, so that each file knows its parent's index; the last level a chain that
	 * failed opened names no parent here: it is served as it lies. */
	for (unsigned level = chain ? chain_depth(chain) : 0; level-- > 0 && rc == 0;) {
		const struct disk *file = chain_level(chain, level);

		*top = add_disk_file(d, disk_path(file), *top, disk_id(file));
		if (*top < 0)
			rc = error_set(err, ENOMEM, "out of memory");
		else
			d->files[*top].vhdx = disk_format(file) == DISK_FORMAT_VHDX;
	}
	if (!chain && disk->path && lstat(disk->path, &st) == 0 && S_ISREG(st.st_mode)) {
		/* Not even its top opened: a UUID from its path tells namesakes apart. */
		static const uint8_t space[16] = {0x8a, 0x1f, 0x52, 0x0c, 0x6e, 0x3d, 0x4b, 0x97,
						  0xa4, 0x20, 0x5f, 0xd1, 0x7b, 0x08, 0xc6, 0x3e};
		uuid_t uuid;

		uuid_generate_sha1(uuid, space, disk->path, strlen(disk->path));
		*top = add_disk_file(d, disk->path, -1, uuid);
		if (*top < 0)
			rc = error_set(err, ENOMEM, "out of memory");
	}
	chain_close(chain);
	return rc;
}

/*
 * Names in "Virtual Hard Disks": the file's own (for @merged disks with the
 * extension of their format, ".vhd" or ".vhdx"), or with the first 4 bytes of
 * its UUID in hexadecimal when an earlier file has that name.
 */
int export_name_files(struct export_disk_files *d, bool merged)
{
	for (size_t i = 0; i < d->count; i++) {
		const char *base = d->files[i].path ? pathmap_basename(d->files[i].path) : "";
		const char *dot = strrchr(base, '.');
		int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
		const char *ext = d->files[i].vhdx ? ".vhdx" : ".vhd";
		const char *tail = merged ? ext : dot && dot != base ? dot : "";
		char name[NAME_MAX + 1];
		bool clash = false;

		if (!d->files[i].path || d->files[i].name)
			continue; /* a disk left out of a state, or named already */
		snprintf(name, sizeof(name), "%.*s%s", stem, base, tail);
		for (size_t j = 0; j < d->count && !clash; j++)
			clash = j != i && d->files[j].name &&
				strcasecmp(d->files[j].name, name) == 0;
		if (clash)
			snprintf(name, sizeof(name), "%.*s_%02x%02x%02x%02x%s", stem, base,
				 d->files[i].uuid[0], d->files[i].uuid[1], d->files[i].uuid[2],
				 d->files[i].uuid[3], tail);
		d->files[i].name = strdup(name);
		if (!d->files[i].name)
			return -ENOMEM;
	}
	return 0;
}

/* What @path really holds on disk (st_blocks), at most @size. */
static uint64_t allocated_bytes(int fd, uint64_t size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return size;
	return (uint64_t)st.st_blocks * 512 < size ? (uint64_t)st.st_blocks * 512 : size;
}

/* A node named @name for the disk @path: a differencing disk relocated to name @parent_name in its
 * folder, a VHDX whose log was replayed served replayed with an empty log (@parent_name NULL). */
static int relocated_node(const char *name, const char *path, const char *parent_name,
			  struct export_node **out, struct error *err)
{
	struct export_node *node = NULL;
	struct disk *disk = NULL;
	struct vhd_patch patches[DISK_MAX_PATCHES];
	size_t patch_count = 0;
	struct stat st;
	int rc = disk_open(&disk, path, DISK_OPEN_READ, err);

	*out = NULL;
	if (rc == 0 && fstat(disk_fd(disk), &st) < 0)
		rc = error_errno(err, errno, "cannot stat", path);
	if (rc == 0 && !(node = export_node_new(name, EXPORT_FILE)))
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc == 0)
		rc = disk_patches(disk, parent_name, patches, DISK_MAX_PATCHES, &patch_count, err);
	/* Kept in a node of their own size: most nodes have none. */
	if (rc == 0 && patch_count && !(node->patches = calloc(patch_count, sizeof(*patches)))) {
		for (size_t i = 0; i < patch_count; i++)
			free(patches[i].bytes);
		rc = error_set(err, ENOMEM, "out of memory");
	} else if (rc == 0 && patch_count) {
		memcpy(node->patches, patches, patch_count * sizeof(*patches));
		node->patch_count = patch_count;
	}
	if (rc == 0) {
		node->source = EXPORT_SOURCE_RELOCATED;
		node->replayed = disk_view_replayed(disk);
		node->path = strdup(path);
		node->size = disk_view_size(disk);
		node->allocated = allocated_bytes(disk_fd(disk), node->size);
		node->mtime = st.st_mtim;
		node->stamp = export_stamp_mix(HASH_START, &st);
		export_access_own(node, &st);
		if (!node->path)
			rc = error_set(err, ENOMEM, "out of memory");
	}
	disk_close(disk);
	if (rc < 0) {
		export_node_free(node);
		return rc;
	}
	*out = node;
	return 0;
}

/* The disk files as nodes of @dir: differencing disks relocated to name their parent there. */
int export_add_disks(struct export_node *dir, const struct export_disk_files *d, struct error *err)
{
	for (size_t i = 0; i < d->count; i++) {
		const struct export_disk_file *f = &d->files[i];
		struct export_node *node = NULL;
		int rc;

		if (!f->path)
			continue; /* a name taken, no file */
		if (f->parent < 0 && !f->vhdx) {
			rc = export_add_file(dir, f->name, f->path, err);
			if (rc < 0)
				return rc;
			continue;
		}
		/* A VHDX base goes through the disk module too: a log it holds is
		 * served replayed, the log emptied. */
		rc = relocated_node(f->name, f->path,
				    f->parent < 0 ? NULL : d->files[f->parent].name, &node, err);
		if (rc == 0 && export_node_add(dir, node) < 0)
			rc = error_set(err, ENOMEM, "out of memory");
		if (rc < 0)
			return rc;
	}
	return 0;
}

int export_node_for_file(const char *path, const char *parent_name, struct export_node **out,
			 struct error *err)
{
	struct export_node holder = {0};
	int rc;

	enum disk_format format = DISK_FORMAT_VHD;

	*out = NULL;
	/* A VHDX goes through the disk module: a log it holds is copied replayed. */
	if (parent_name || (disk_probe(path, &format, NULL) == 0 && format == DISK_FORMAT_VHDX))
		return relocated_node(pathmap_basename(path), path, parent_name, out, err);
	rc = export_add_file(&holder, pathmap_basename(path), path, err);
	if (rc == 0)
		*out = holder.children[0];
	free(holder.children);
	return rc;
}

/* The edits pointing each of @disks' drives at its file in "Virtual Hard Disks" (@index[i] in @d).
 */
void export_edit_disk_paths(struct export_edits *e, const struct store_disk *disks, size_t count,
			    const struct export_disk_files *d, const int *index)
{
	for (size_t i = 0; i < count; i++) {
		char key[600], value[NAME_MAX + 32];
		int at = index[i];

		if (at < 0)
			continue;
		snprintf(key, sizeof(key), "%s/pathname", disks[i].key);
		snprintf(value, sizeof(value), HYPERV_DISKS_DIR "\\%s", d->files[at].name);
		export_edits_add(e, key, NULL, value);
	}
}

/* ---- merged disks ---- */

/* Open @top's chain the way the store does. */
int export_open_chain(struct store *s, const char *top, struct chain **chain, struct error *err)
{
	struct store_disk disk = {.path = (char *)top};

	return store_open_chain(s, &disk, chain, err);
}

/* Measure the merged disk and the raw view of @chain (whose top is @top). */
static int measure_chain(struct chain *chain, const char *top, struct export_merged *m,
			 struct error *err)
{
	struct stream *vhd = NULL, *raw = NULL;
	int rc = stream_new_merged(&vhd, chain, NULL, err);

	if (rc == 0)
		rc = stream_new_raw(&raw, chain, err);
	if (rc == 0 && export_chain_stamp(chain, &m->stamp, &m->mtime, &m->access) < 0)
		rc = error_errno(err, errno, "cannot stat", top);
	if (rc == 0) {
		m->vhd_size = stream_size(vhd);
		m->vhd_allocated = stream_allocated_bytes(vhd);
		m->disk_size = stream_size(raw);
		m->raw_allocated = stream_allocated_bytes(raw);
	}
	stream_free(vhd);
	stream_free(raw);
	return rc;
}

/* A node of @dir made from the chain of @top: its merged VHD (with @seed) or raw view. */
int export_add_chain_node(struct export_node *dir, const char *name, struct store *s,
			  const char *top, const struct export_merged *m, const char *seed,
			  struct error *err)
{
	struct export_node *node = export_node_new(name, EXPORT_FILE);

	if (node) {
		node->source = seed ? EXPORT_SOURCE_MERGED : EXPORT_SOURCE_RAW;
		node->path = strdup(top);
		node->seed = seed ? strdup(seed) : NULL;
		node->store = s;
		node->size = seed ? m->vhd_size : m->disk_size;
		node->allocated = seed ? m->vhd_allocated : m->raw_allocated;
		node->mtime = m->mtime;
		node->stamp = m->stamp;
		export_access_set(node, &m->access);
	}
	if (!node || !node->path || (seed && !node->seed)) {
		export_node_free(node);
		return error_set(err, ENOMEM, "out of memory");
	}
	return export_node_add(dir, node) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
}

void export_state_free(struct export_state *st)
{
	export_disk_files_free(&st->names);
	free(st->merged);
}

/* Measure every disk of @st (@disks, @count); a disk whose chain cannot be opened
 * (unreadable()) is left out. */
static int state_measure(struct export_planner *p, struct export_state *st, struct error *err)
{
	int rc = 0;

	st->merged = calloc(st->disk_count ? st->disk_count : 1, sizeof(*st->merged));
	st->names.files = calloc(st->disk_count ? st->disk_count : 1, sizeof(*st->names.files));
	if (!st->merged || !st->names.files)
		return error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < st->disk_count && rc == 0; i++) {
		const struct store_disk *disk = &st->disks[i];
		struct chain *chain = NULL;
		struct export_disk_file *f = &st->names.files[i];
		struct error why;

		error_clear(&why);
		rc = export_planner_open_chain(p, disk, false, &chain, &why);
		if (rc < 0 && unreadable(disk, &why, export_planner_notes(p))) {
			st->names.count++;
			rc = 0;
			continue;
		}
		if (rc < 0) {
			*err = why;
			break;
		}
		/* Named after the chain's base: the disk, whatever snapshots stacked on it. */
		f->path = strdup(disk_path(chain_level(chain, chain_depth(chain) - 1)));
		f->parent = -1;
		memcpy(f->uuid, disk_id(chain_level(chain, 0)), 16);
		f->vhdx = chain_format(chain) == DISK_FORMAT_VHDX;
		st->names.count++;
		if (!f->path)
			rc = error_set(err, ENOMEM, "out of memory");
		else
			rc = measure_chain(chain, disk->path, &st->merged[i], err);
		chain_close(chain);
	}
	return rc;
}

/* Measure and name the disks of @st: "<base>.vhd". */
int export_state_prepare(struct export_planner *p, struct export_state *st, struct error *err)
{
	int rc = state_measure(p, st, err);

	if (rc == 0 && export_name_files(&st->names, true) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	return rc;
}

/* The seed of the merged disk of drive @key in the export with GUID @id. */
static void merged_seed(const char *id, const char *key, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", id, key);
}

/* Each disk of @st merged into "Virtual Hard Disks" of @root, named "<base>.vhd". */
int export_add_merged_disks(struct export_node *root, struct export_planner *p,
			    struct export_state *st, struct error *err)
{
	struct export_node *disks = export_subdir(root, HYPERV_DISKS_DIR);
	char seed[700];
	int rc = 0;

	if (!disks)
		return error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < st->disk_count && rc == 0; i++) {
		if (!st->names.files[i].path)
			continue; /* left out */
		merged_seed(st->id, st->disks[i].key, seed, sizeof(seed));
		rc = export_add_chain_node(disks, st->names.files[i].name, export_planner_store(p),
					   st->disks[i].path, &st->merged[i], seed, err);
	}
	return rc;
}

/*
 * The disks of @st left out of its merged disks, carried into "Virtual Hard
 * Disks" of @root as far as they open (export_collect_chain()), each drive's path
 * made its top's there in @e.
 */
int export_carry_left_out(struct export_node *root, struct export_planner *p,
			  const struct export_state *st, struct export_edits *e, struct error *err)
{
	struct export_node *folder = export_subdir(root, HYPERV_DISKS_DIR);
	struct export_disk_files d = {0};
	int *tops = calloc(st->disk_count ? st->disk_count : 1, sizeof(*tops));
	int rc = 0;

	/* The merged disks' names are taken: a file carried gets another. */
	d.files = calloc(st->disk_count ? st->disk_count : 1, sizeof(*d.files));
	if (!folder || !tops || !d.files)
		rc = error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < st->disk_count; i++) {
		struct export_disk_file *f = &d.files[d.count];

		if (!st->names.files[i].name)
			continue;
		f->parent = -1;
		f->name = strdup(st->names.files[i].name);
		d.count++;
		if (!f->name)
			rc = error_set(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; rc == 0 && i < st->disk_count; i++) {
		tops[i] = -1;
		if (!st->names.files[i].path)
			rc = export_collect_chain(p, &st->disks[i], &d, NULL, &tops[i], err);
	}
	if (rc == 0 && export_name_files(&d, NULL) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc == 0)
		rc = export_add_disks(folder, &d, err);
	if (rc == 0)
		export_edit_disk_paths(e, st->disks, st->disk_count, &d, tops);
	free(tops);
	export_disk_files_free(&d);
	return rc;
}
