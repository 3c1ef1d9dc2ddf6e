/*
 * export_node.c - the nodes of a planned export: building, copying and
 * finishing a tree, who may read what, and the identity of sources (see
 * export_node.h).
 */
#include "export_node.h"

#include "chain.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void export_edits_free(struct export_edit *edits, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(edits[i].key);
		free(edits[i].type);
		free(edits[i].value);
	}
	free(edits);
}

void export_node_free(struct export_node *node)
{
	if (!node)
		return;
	for (size_t i = 0; i < node->child_count; i++)
		export_node_free(node->children[i]);
	free(node->children);
	free(node->name);
	free(node->path);
	export_edits_free(node->edits, node->edit_count);
	free(node->seed);
	for (size_t i = 0; i < node->patch_count; i++)
		free(node->patches[i].bytes);
	free(node->patches);
	free(node);
}

struct export_node *export_node_new(const char *name, enum export_type type)
{
	struct export_node *node = calloc(1, sizeof(*node));

	if (node && !(node->name = strdup(name))) {
		free(node);
		return NULL;
	}
	if (node)
		node->type = type;
	return node;
}

/* Add @child to @dir; on failure free @child. */
int export_node_add(struct export_node *dir, struct export_node *child)
{
	struct export_node **grown;

	if (!child)
		return -ENOMEM;
	grown = realloc(dir->children, (dir->child_count + 1) * sizeof(*grown));
	if (!grown) {
		export_node_free(child);
		return -ENOMEM;
	}
	dir->children = grown;
	dir->children[dir->child_count++] = child;
	return 0;
}

void export_adopt(struct export_node *served, struct export_node *planned)
{
	served->vm_pending = false;
	if (!planned || planned->left_out) {
		served->left_out = true;
		return;
	}
	/* A pending folder holds nothing yet. */
	served->children = planned->children;
	served->child_count = planned->child_count;
	planned->children = NULL;
	planned->child_count = 0;
	served->partitions_pending = planned->partitions_pending;
	served->size = planned->size;
	served->mtime = planned->mtime;
	served->mode = planned->mode;
	served->uid = planned->uid;
	served->gid = planned->gid;
	served->own_access = planned->own_access;
}

/* A copy of @node and everything under it, or NULL: out of memory. */
struct export_node *export_node_copy(const struct export_node *node)
{
	struct export_node *copy = export_node_new(node->name, node->type);
	bool failed = !copy;

	if (failed)
		return NULL;
	copy->source = node->source;
	copy->store = node->store;
	copy->stamp = node->stamp;
	copy->start = node->start;
	copy->partitions_pending = node->partitions_pending;
	copy->vm_pending = node->vm_pending;
	copy->left_out = node->left_out;
	copy->vm = node->vm;
	copy->size = node->size;
	copy->allocated = node->allocated;
	copy->mtime = node->mtime;
	copy->mode = node->mode;
	copy->uid = node->uid;
	copy->gid = node->gid;
	copy->own_access = node->own_access;
	copy->replayed = node->replayed;
	failed |= node->path && !(copy->path = strdup(node->path));
	failed |= node->seed && !(copy->seed = strdup(node->seed));
	if (!failed && node->patch_count) {
		failed = !(copy->patches = calloc(node->patch_count, sizeof(*copy->patches)));
		copy->patch_count = failed ? 0 : node->patch_count;
	}
	for (size_t i = 0; i < copy->patch_count && !failed; i++) {
		copy->patches[i] = node->patches[i];
		copy->patches[i].bytes = NULL;
		if (node->patches[i].bytes &&
		    !(copy->patches[i].bytes = malloc(node->patches[i].len)))
			failed = true;
		else if (node->patches[i].bytes)
			memcpy(copy->patches[i].bytes, node->patches[i].bytes,
			       node->patches[i].len);
	}
	if (!failed && node->edit_count) {
		copy->edits = calloc(node->edit_count, sizeof(*copy->edits));
		failed = !copy->edits;
		for (size_t i = 0; !failed && i < node->edit_count; i++) {
			const struct export_edit *from = &node->edits[i];
			struct export_edit *to = &copy->edits[copy->edit_count++];

			to->optional = from->optional;
			failed = !(to->key = strdup(from->key)) ||
				 (from->type && !(to->type = strdup(from->type))) ||
				 (from->value && !(to->value = strdup(from->value)));
		}
	}
	for (size_t i = 0; i < node->child_count && !failed; i++)
		failed = export_node_add(copy, export_node_copy(node->children[i])) < 0;
	if (failed) {
		export_node_free(copy);
		return NULL;
	}
	return copy;
}

/* Free the children of @dir from the @keep-th on (those added since it had @keep). */
void export_drop_children(struct export_node *dir, size_t keep)
{
	while (dir->child_count > keep)
		export_node_free(dir->children[--dir->child_count]);
}

/* The folder @name of @dir, made if missing (a linear search: while planning). */
struct export_node *export_subdir(struct export_node *dir, const char *name)
{
	struct export_node *child = NULL;

	for (size_t i = 0; i < dir->child_count && !child; i++)
		if (strcmp(dir->children[i]->name, name) == 0)
			child = dir->children[i];
	if (child)
		return child;
	child = export_node_new(name, EXPORT_DIR);
	return export_node_add(dir, child) == 0 ? child : NULL;
}

size_t export_child_index(const struct export_node *dir, const char *name)
{
	size_t lo = 0, hi = dir->child_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(dir->children[mid]->name, name);

		if (cmp == 0)
			return mid;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return dir->child_count;
}

struct export_node *export_child(const struct export_node *dir, const char *name)
{
	size_t at = export_child_index(dir, name);

	return at < dir->child_count ? dir->children[at] : NULL;
}

int export_compare_nodes(const void *a, const void *b)
{
	return strcmp((*(struct export_node *const *)a)->name,
		      (*(struct export_node *const *)b)->name);
}

bool export_time_later(struct timespec a, struct timespec b)
{
	return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

/* ---- who may read what (export_node.h) ---- */

/* Add a source of @mode, @uid, @gid to @a: the AND of the bits, the common owner else root. */
void export_access_and(struct export_access *a, mode_t mode, uid_t uid, gid_t gid)
{
	mode &= 0777;
	if (!a->any) {
		*a = (struct export_access){mode, uid, gid, true};
		return;
	}
	a->mode &= mode;
	if (a->uid != uid)
		a->uid = 0;
	if (a->gid != gid)
		a->gid = 0;
}

/* @node's access is its one source's, @st. */
void export_access_own(struct export_node *node, const struct stat *st)
{
	node->mode = st->st_mode & 0777;
	node->uid = st->st_uid;
	node->gid = st->st_gid;
	node->own_access = true;
}

void export_access_set(struct export_node *node, const struct export_access *a)
{
	node->mode = a->mode;
	node->uid = a->uid;
	node->gid = a->gid;
}

/* @node (a folder holding nothing to take access from) and the folders under it: @from's. */
static void access_inherit(struct export_node *node, const struct export_node *from)
{
	node->mode = from->mode;
	node->uid = from->uid;
	node->gid = from->gid;
	node->no_access = false;
	for (size_t i = 0; i < node->child_count; i++)
		if (node->children[i]->type == EXPORT_DIR)
			access_inherit(node->children[i], from);
}

/*
 * Bottom up: a folder of the plan's own takes the AND of what it holds (a
 * file's read bits count as search bits too); one that holds nothing to take
 * it from is marked no_access, and its parent, once known, gives it its own.
 */
static void settle_access(struct export_node *node)
{
	struct export_access a = {0};

	for (size_t i = 0; i < node->child_count; i++) {
		const struct export_node *child = node->children[i];
		mode_t mode;

		settle_access(node->children[i]);
		if (child->type == EXPORT_LINK || child->no_access)
			continue;
		mode = child->mode;
		if (child->type == EXPORT_FILE)
			mode |= (mode & 0444) >> 2;
		export_access_and(&a, mode, child->uid, child->gid);
	}
	node->no_access = false;
	if (node->type == EXPORT_DIR && !node->own_access) {
		if (a.any)
			export_access_set(node, &a);
		else
			node->no_access = true;
	}
	if (node->no_access)
		return;
	for (size_t i = 0; i < node->child_count; i++)
		if (node->children[i]->no_access)
			access_inherit(node->children[i], node);
}

/*
 * Sort each folder and give it the newest time found under it; a folder that
 * holds nothing dated (nothing at all, or only such folders) and has no time
 * yet gets @empty (a time of its sources too: its VM's configuration's).
 */
static void sort_and_date(struct export_node *node, struct timespec empty)
{
	if (node->child_count)
		qsort(node->children, node->child_count, sizeof(*node->children),
		      export_compare_nodes);
	for (size_t i = 0; i < node->child_count; i++) {
		sort_and_date(node->children[i], empty);
		if (node->type == EXPORT_DIR &&
		    export_time_later(node->children[i]->mtime, node->mtime))
			node->mtime = node->children[i]->mtime;
	}
	if (node->type == EXPORT_DIR && node->mtime.tv_sec == 0 && node->mtime.tv_nsec == 0)
		node->mtime = empty;
}

/* Sort each folder, give it the newest time (@empty when it holds nothing dated) and the
 * access of what it holds. A folder with nothing to take access from, at the top, is
 * root's and readable (it holds nothing). */
void export_finish(struct export_node *node, struct timespec empty)
{
	sort_and_date(node, empty);
	settle_access(node);
	if (node->no_access) {
		struct export_node top = {.mode = 0555};

		access_inherit(node, &top);
	}
}

/* ---- the identity of sources ---- */

/* Mix one file's identity into @h: replaced, resized, written (or its times set back), it changes.
 */
uint64_t export_stamp_mix(uint64_t h, const struct stat *st)
{
	const uint64_t v[7] = {(uint64_t)st->st_dev,	      (uint64_t)st->st_ino,
			       (uint64_t)st->st_size,	      (uint64_t)st->st_mtim.tv_sec,
			       (uint64_t)st->st_mtim.tv_nsec, (uint64_t)st->st_ctim.tv_sec,
			       (uint64_t)st->st_ctim.tv_nsec};

	return hash_bytes(h, v, sizeof(v));
}

/* The identity of every file of @chain, from the open files; its newest time into *@mtime,
 * the access of its files ANDed into *@access (each if not NULL). */
int export_chain_stamp(const struct chain *chain, uint64_t *stamp, struct timespec *mtime,
		       struct export_access *access)
{
	uint64_t h = HASH_START;

	for (unsigned i = 0; i < chain_depth(chain); i++) {
		struct stat st;

		if (fstat(disk_fd(chain_level(chain, i)), &st) < 0)
			return -errno;
		h = export_stamp_mix(h, &st);
		if (access)
			export_access_and(access, st.st_mode, st.st_uid, st.st_gid);
		if (mtime && (i == 0 || export_time_later(st.st_mtim, *mtime)))
			*mtime = st.st_mtim;
	}
	*stamp = h;
	return 0;
}

uint64_t export_node_identity(const struct export_node *node)
{
	uint64_t h = hash_bytes(HASH_START, &node->stamp, sizeof(node->stamp));

	h = hash_bytes(h, &node->source, sizeof(node->source));
	h = hash_bytes(h, &node->start, sizeof(node->start));
	h = hash_text(h, node->path);
	h = hash_text(h, node->seed);
	for (size_t i = 0; i < node->edit_count; i++) {
		h = hash_text(h, node->edits[i].key);
		h = hash_text(h, node->edits[i].type);
		h = hash_text(h, node->edits[i].value);
		h = hash_bytes(h, &node->edits[i].optional, sizeof(node->edits[i].optional));
	}
	for (size_t i = 0; i < node->patch_count; i++) {
		h = hash_bytes(h, &node->patches[i].offset, sizeof(node->patches[i].offset));
		if (node->patches[i].bytes)
			h = hash_bytes(h, node->patches[i].bytes, node->patches[i].len);
	}
	return h;
}

/* A file of the store under @dir as it is, named @name. */
int export_add_file(struct export_node *dir, const char *name, const char *path, struct error *err)
{
	struct export_node *node;
	struct stat st;
	int fd = fsutil_open_regular(path, &st);

	/* Known by what was opened: a link put in its place is never followed. */
	if (fd < 0)
		return error_errno(err, -fd, "cannot open", path);
	close(fd);
	node = export_node_new(name, EXPORT_FILE);
	if (node) {
		node->source = EXPORT_SOURCE_FILE;
		node->path = strdup(path);
		node->size = (uint64_t)st.st_size;
		node->allocated = (uint64_t)st.st_blocks * 512;
		node->mtime = st.st_mtim;
		node->stamp = export_stamp_mix(HASH_START, &st);
		export_access_own(node, &st);
	}
	if (!node || !node->path || export_node_add(dir, node) < 0) {
		if (node && !node->path)
			export_node_free(node);
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}
