#include "export.h"

#include "chain.h"
#include "disk.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "partition.h"
#include "pathmap.h"
#include "store.h"
#include "stream.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* Length of the UTF-8 sequence at @p (at most @left bytes), or 0 if invalid. */
static size_t utf8_length(const unsigned char *p, size_t left)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2, cp = p[0] & 0x1F;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3, cp = p[0] & 0x0F;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	/* No overlong forms, surrogates or code points past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void export_safe_name(const char *name, char *out)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t left = strlen(name), n = 0;

	while (left) {
		size_t len = utf8_length(p, left);
		bool bad = len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7f || *p == '/'));

		if (bad)
			len = 1;
		if (n + len > EXPORT_NAME_MAX)
			break;
		if (bad)
			out[n] = '_';
		else
			memcpy(out + n, p, len);
		n += len;
		p += len;
		left -= len;
	}
	out[n] = '\0';
	if (n == 0) {
		strcpy(out, "_");
	} else if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
		memmove(out + 1, out, n + 1);
		out[0] = '_';
	}
}

/* The oldest first: creation time, then GUID. */
static bool older(const struct export_name *a, const struct export_name *b)
{
	if (a->creation_time != b->creation_time)
		return a->creation_time < b->creation_time;
	return strcasecmp(a->id, b->id) < 0;
}

int export_assign_names(struct export_name *names, size_t count)
{
	char(*safe)[EXPORT_NAME_MAX + 2] = calloc(count ? count : 1, sizeof(*safe));
	char buf[EXPORT_NAME_MAX + 64];

	if (!safe)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++)
		export_safe_name(names[i].name, safe[i]);
	for (size_t i = 0; i < count; i++) {
		bool keeps = true;

		/* Keeps its name when no namesake is older. */
		for (size_t j = 0; j < count && keeps; j++)
			if (j != i && strcasecmp(safe[i], safe[j]) == 0 &&
			    older(&names[j], &names[i]))
				keeps = false;
		if (keeps) {
			snprintf(buf, sizeof(buf), "%s", safe[i]);
		} else {
			bool whole = false;

			snprintf(buf, sizeof(buf), "%s (%.8s)", safe[i], names[i].id);
			/* Two GUIDs alike in 8 characters, or another thing named so: the
			 * whole GUID. */
			for (size_t j = 0; j < count; j++)
				if (j != i && ((strcasecmp(safe[i], safe[j]) == 0 &&
						strncasecmp(names[i].id, names[j].id, 8) == 0) ||
					       strcasecmp(buf, safe[j]) == 0))
					whole = true;
			if (whole)
				snprintf(buf, sizeof(buf), "%s (%s)", safe[i], names[i].id);
		}
		names[i].out = strdup(buf);
		if (!names[i].out) {
			for (size_t k = 0; k < i; k++) {
				free(names[k].out);
				names[k].out = NULL;
			}
			free(safe);
			return -ENOMEM;
		}
	}
	free(safe);
	return 0;
}

/* ---- the plan of an export folder ---- */

void export_settings_default(struct export_settings *settings)
{
	settings->copy_vm_storage = true;
	settings->copy_vm_runtime_information = true;
	settings->copy_snapshot_configuration = EXPORT_SNAPSHOTS_ALL;
	settings->create_vm_export_subdirectory = false;
}

static void edits_free(struct export_edit *edits, size_t count)
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
	edits_free(node->edits, node->edit_count);
	free(node->seed);
	for (size_t i = 0; i < node->patch_count; i++)
		free(node->patches[i].bytes);
	free(node);
}

static struct export_node *node_new(const char *name, enum export_type type)
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
static int node_add(struct export_node *dir, struct export_node *child)
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

/* A copy of @node and everything under it (not its inode number), or NULL: out of memory. */
static struct export_node *node_copy(const struct export_node *node)
{
	struct export_node *copy = node_new(node->name, node->type);
	bool failed = !copy;

	if (failed)
		return NULL;
	copy->source = node->source;
	copy->store = node->store;
	copy->stamp = node->stamp;
	copy->start = node->start;
	copy->partitions_pending = node->partitions_pending;
	copy->size = node->size;
	copy->allocated = node->allocated;
	copy->mtime = node->mtime;
	copy->mode = node->mode;
	copy->uid = node->uid;
	copy->gid = node->gid;
	copy->own_access = node->own_access;
	copy->patch_count = node->patch_count;
	copy->replayed = node->replayed;
	failed |= node->path && !(copy->path = strdup(node->path));
	failed |= node->seed && !(copy->seed = strdup(node->seed));
	for (size_t i = 0; i < node->patch_count && !failed; i++) {
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
		failed = node_add(copy, node_copy(node->children[i])) < 0;
	if (failed) {
		export_node_free(copy);
		return NULL;
	}
	return copy;
}

/* Free the children of @dir from the @keep-th on (those added since it had @keep). */
static void drop_children(struct export_node *dir, size_t keep)
{
	while (dir->child_count > keep)
		export_node_free(dir->children[--dir->child_count]);
}

/* The folder @name of @dir, made if missing (a linear search: while planning). */
static struct export_node *subdir(struct export_node *dir, const char *name)
{
	struct export_node *child = NULL;

	for (size_t i = 0; i < dir->child_count && !child; i++)
		if (strcmp(dir->children[i]->name, name) == 0)
			child = dir->children[i];
	if (child)
		return child;
	child = node_new(name, EXPORT_DIR);
	return node_add(dir, child) == 0 ? child : NULL;
}

struct export_node *export_child(const struct export_node *dir, const char *name)
{
	size_t lo = 0, hi = dir->child_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(dir->children[mid]->name, name);

		if (cmp == 0)
			return dir->children[mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int compare_nodes(const void *a, const void *b)
{
	return strcmp((*(struct export_node *const *)a)->name,
		      (*(struct export_node *const *)b)->name);
}

static bool later(struct timespec a, struct timespec b)
{
	return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

/* ---- who may read what (export.h) ---- */

/* The access of several sources, ANDed. */
struct access {
	mode_t mode;
	uid_t uid;
	gid_t gid;
	bool any; /* a source was seen */
};

/* Add a source of @mode, @uid, @gid to @a: the AND of the bits, the common owner else root. */
static void access_and(struct access *a, mode_t mode, uid_t uid, gid_t gid)
{
	mode &= 0777;
	if (!a->any) {
		*a = (struct access){mode, uid, gid, true};
		return;
	}
	a->mode &= mode;
	if (a->uid != uid)
		a->uid = 0;
	if (a->gid != gid)
		a->gid = 0;
}

/* @node's access is its one source's, @st. */
static void access_own(struct export_node *node, const struct stat *st)
{
	node->mode = st->st_mode & 0777;
	node->uid = st->st_uid;
	node->gid = st->st_gid;
	node->own_access = true;
}

static void access_set(struct export_node *node, const struct access *a)
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
	struct access a = {0};

	for (size_t i = 0; i < node->child_count; i++) {
		const struct export_node *child = node->children[i];
		mode_t mode;

		settle_access(node->children[i]);
		if (child->type == EXPORT_LINK || child->no_access)
			continue;
		mode = child->mode;
		if (child->type == EXPORT_FILE)
			mode |= (mode & 0444) >> 2;
		access_and(&a, mode, child->uid, child->gid);
	}
	node->no_access = false;
	if (node->type == EXPORT_DIR && !node->own_access) {
		if (a.any)
			access_set(node, &a);
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
		qsort(node->children, node->child_count, sizeof(*node->children), compare_nodes);
	for (size_t i = 0; i < node->child_count; i++) {
		sort_and_date(node->children[i], empty);
		if (node->type == EXPORT_DIR && later(node->children[i]->mtime, node->mtime))
			node->mtime = node->children[i]->mtime;
	}
	if (node->type == EXPORT_DIR && node->mtime.tv_sec == 0 && node->mtime.tv_nsec == 0)
		node->mtime = empty;
}

/* Sort each folder, give it the newest time (@empty when it holds nothing dated) and the
 * access of what it holds. A folder with nothing to take access from, at the top, is
 * root's and readable (it holds nothing). */
static void finish(struct export_node *node, struct timespec empty)
{
	sort_and_date(node, empty);
	settle_access(node);
	if (node->no_access) {
		struct export_node top = {.mode = 0555};

		access_inherit(node, &top);
	}
}

struct export_planner {
	struct store *store;		  /* borrowed */
	struct export_settings settings;
	struct export_notes notes;
	/* While one VM is planned (export_plan_vm() and export_plan_snapshot(), or one VM of
	 * export_plan_store()): the chains of the VM and its snapshots share their files,
	 * which are then opened once. None between plans: a file changed in the store is
	 * opened anew. Reads (export_open) never use it. */
	struct chain_cache *cache;
};

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
	free(p);
}

/*
 * Begin planning a VM: a cache for its chains, unless one is open already (a
 * VM of export_plan_store()). *@opened says whether this call opened it, for
 * planner_vm_end(). Returns 0 or -ENOMEM.
 */
static int planner_vm_begin(struct export_planner *p, bool *opened)
{
	*opened = false;
	if (p->cache)
		return 0;
	if (chain_cache_new(&p->cache) < 0)
		return -ENOMEM;
	*opened = true;
	return 0;
}

/* End what planner_vm_begin() began: the cache's files are closed if it opened it. */
static void planner_vm_end(struct export_planner *p, bool opened)
{
	if (!opened)
		return;
	chain_cache_free(p->cache);
	p->cache = NULL;
}

/* store_open_chain(), through the planner's cache. */
static int plan_open_chain(struct export_planner *p, const struct store_disk *disk,
			   struct chain **chain, struct error *err)
{
	return store_open_chain_cached(p->store, disk, p->cache, chain, err);
}

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

/* ---- the identity of sources ---- */

#define STAMP_START 0xcbf29ce484222325ULL

/* Mix one file's identity into @h: replaced, resized, written (or its times set back), it changes. */
static uint64_t stamp_mix(uint64_t h, const struct stat *st)
{
	const uint64_t v[7] = {(uint64_t)st->st_dev,	      (uint64_t)st->st_ino,
			       (uint64_t)st->st_size,	      (uint64_t)st->st_mtim.tv_sec,
			       (uint64_t)st->st_mtim.tv_nsec, (uint64_t)st->st_ctim.tv_sec,
			       (uint64_t)st->st_ctim.tv_nsec};

	for (size_t i = 0; i < 7; i++) {
		h ^= v[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

/* The identity of every file of @chain, from the open files; its newest time into *@mtime,
 * the access of its files ANDed into *@access (each if not NULL). */
static int chain_stamp(const struct chain *chain, uint64_t *stamp, struct timespec *mtime,
		       struct access *access)
{
	uint64_t h = STAMP_START;

	for (unsigned i = 0; i < chain_depth(chain); i++) {
		struct stat st;

		if (fstat(disk_fd(chain_level(chain, i)), &st) < 0)
			return -errno;
		h = stamp_mix(h, &st);
		if (access)
			access_and(access, st.st_mode, st.st_uid, st.st_gid);
		if (mtime && (i == 0 || later(st.st_mtim, *mtime)))
			*mtime = st.st_mtim;
	}
	*stamp = h;
	return 0;
}

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t hash_text(uint64_t h, const char *text)
{
	/* The NUL too, so that "ab","c" and "a","bc" differ. */
	return text ? hash_bytes(h, text, strlen(text) + 1) : hash_bytes(h, "", 1);
}

uint64_t export_node_identity(const struct export_node *node)
{
	uint64_t h = hash_bytes(STAMP_START, &node->stamp, sizeof(node->stamp));

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
static int add_file(struct export_node *dir, const char *name, const char *path, struct error *err)
{
	struct export_node *node;
	struct stat st;
	int fd = fsutil_open_regular(path, &st);

	/* Known by what was opened: a link put in its place is never followed. */
	if (fd < 0)
		return error_errno(err, -fd, "cannot open", path);
	close(fd);
	node = node_new(name, EXPORT_FILE);
	if (node) {
		node->source = EXPORT_SOURCE_FILE;
		node->path = strdup(path);
		node->size = (uint64_t)st.st_size;
		node->allocated = (uint64_t)st.st_blocks * 512;
		node->mtime = st.st_mtim;
		node->stamp = stamp_mix(STAMP_START, &st);
		access_own(node, &st);
	}
	if (!node || !node->path || node_add(dir, node) < 0) {
		if (node && !node->path)
			export_node_free(node);
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* ---- configurations ---- */

struct edits {
	struct export_edit *list;
	size_t count;
	bool failed; /* out of memory on the way */
};

/* Note an edit: @key set to @value (with @type, or the type it has), or removed (@value NULL). */
static void edit(struct edits *e, const char *key, const char *type, const char *value)
{
	struct export_edit *grown = e->failed ? NULL : realloc(e->list, (e->count + 1) * sizeof(*grown));

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

/* The bytes of configuration @path with @edits made. */
static int config_make(const char *path, const struct export_edit *edits, size_t count,
		       char **bytes, size_t *len, struct error *err)
{
	struct config *config = NULL;
	int rc = config_load(&config, path, err);

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
	if (rc == 0)
		rc = config_serialize(config, bytes, len, err);
	config_free(config);
	return rc;
}

/* The configuration @path with the edits of @e as the node @name of @dir; takes the edits. */
static int add_config(struct export_node *dir, const char *name, const char *path,
		      struct edits *e, struct error *err)
{
	struct export_node *node = NULL;
	struct stat st;
	char *bytes = NULL;
	size_t len = 0;
	int rc = e->failed ? error_set(err, ENOMEM, "out of memory") : 0;

	if (rc == 0 && stat(path, &st) < 0)
		rc = error_errno(err, errno, "cannot stat", path);
	if (rc == 0)
		rc = config_make(path, e->list, e->count, &bytes, &len, err);
	free(bytes); /* made again on open: the plan keeps only its size */
	if (rc == 0 && (!(node = node_new(name, EXPORT_FILE)) || !(node->path = strdup(path))))
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc < 0) {
		export_node_free(node);
		edits_free(e->list, e->count);
		*e = (struct edits){0};
		return rc;
	}
	node->source = EXPORT_SOURCE_CONFIG;
	node->edits = e->list;
	node->edit_count = e->count;
	*e = (struct edits){0};
	node->size = len;
	node->allocated = len;
	node->mtime = st.st_mtim;
	node->stamp = stamp_mix(STAMP_START, &st);
	access_own(node, &st);
	return node_add(dir, node) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
}

/* The files of the saved-state folder @from under @dir/@name; files named
 * after @old_id (if not NULL) are named after @new_id instead. */
static int add_saved_state(struct export_node *dir, const char *name, const char *from,
			   const char *old_id, const char *new_id, struct error *err)
{
	struct export_node *state = subdir(dir, name);
	char **names = NULL, path[PATH_MAX], renamed[NAME_MAX + 1];
	size_t count = 0;
	struct stat folder;
	int rc;

	if (!state)
		return error_set(err, ENOMEM, "out of memory");
	if (stat(from, &folder) < 0)
		return error_errno(err, errno, "cannot stat", from);
	access_own(state, &folder);
	rc = fsutil_list_names(from, NULL, &names, &count);
	if (rc < 0)
		return error_errno(err, -rc, "cannot read", from);
	for (size_t i = 0; i < count && rc == 0; i++) {
		const char *as = names[i];
		struct stat st;

		if (old_id && strncasecmp(names[i], old_id, 36) == 0) {
			snprintf(renamed, sizeof(renamed), "%s%s", new_id, names[i] + 36);
			as = renamed;
		}
		snprintf(path, sizeof(path), "%s/%s", from, names[i]);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			rc = add_file(state, as, path, err);
	}
	fsutil_names_free(names, count);
	return rc;
}

/* ---- the files of chains ---- */

/* The files of the chains in an export, with the names they get there. */
struct disk_file {
	char *path; /* real path in the store */
	char *name; /* its name in "Virtual Hard Disks" */
	int parent; /* index of its parent, or -1 */
	uint8_t uuid[16];
	bool vhdx; /* a VHDX file, or the merged disk of a VHDX chain (named .vhdx) */
};

struct disk_files {
	struct disk_file *files;
	size_t count;
};

static void disk_files_free(struct disk_files *d)
{
	for (size_t i = 0; i < d->count; i++) {
		free(d->files[i].path);
		free(d->files[i].name);
	}
	free(d->files);
}

static int find_file(const struct disk_files *d, const char *path)
{
	for (size_t i = 0; i < d->count; i++)
		if (d->files[i].path && strcmp(d->files[i].path, path) == 0)
			return (int)i;
	return -1;
}

/* The real path of @path (a new string), or a copy of it if it has none; NULL on ENOMEM. */
static char *real_or_copy(const char *path)
{
	char *real = realpath(path, NULL);

	return real ? real : strdup(path);
}

/* Add the file @path (parent @parent, UUID @uuid) to @d unless there; its index, or -ENOMEM.
 * Files are kept by their real paths: served, they are opened without following links. */
static int add_disk_file(struct disk_files *d, const char *path, int parent, const uint8_t *uuid)
{
	char *real = real_or_copy(path);
	struct disk_file *grown;
	int at;

	if (!real)
		return -ENOMEM;
	at = find_file(d, real);
	if (at >= 0) {
		free(real);
		return at;
	}
	grown = realloc(d->files, (d->count + 1) * sizeof(*grown));
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
static int collect_chain(struct export_planner *p, const struct store_disk *disk,
			 struct disk_files *d, const struct export_notes *notes, int *top,
			 struct error *err)
{
	struct chain *chain = NULL;
	struct error why;
	struct stat st;
	int rc;

	*top = -1;
	error_clear(&why);
	rc = store_open_chain_partial(p->store, disk, p->cache, &chain, &why);
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
static int name_files(struct disk_files *d, bool merged)
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
	struct stat st;
	int rc = disk_open(&disk, path, DISK_OPEN_READ, err);

	*out = NULL;
	if (rc == 0 && fstat(disk_fd(disk), &st) < 0)
		rc = error_errno(err, errno, "cannot stat", path);
	if (rc == 0 && !(node = node_new(name, EXPORT_FILE)))
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc == 0)
		rc = disk_patches(disk, parent_name, node->patches, DISK_MAX_PATCHES,
				  &node->patch_count, err);
	if (rc == 0) {
		node->source = EXPORT_SOURCE_RELOCATED;
		node->replayed = disk_view_replayed(disk);
		node->path = strdup(path);
		node->size = disk_view_size(disk);
		node->allocated = allocated_bytes(disk_fd(disk), node->size);
		node->mtime = st.st_mtim;
		node->stamp = stamp_mix(STAMP_START, &st);
		access_own(node, &st);
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
static int add_disks(struct export_node *dir, const struct disk_files *d, struct error *err)
{
	for (size_t i = 0; i < d->count; i++) {
		const struct disk_file *f = &d->files[i];
		struct export_node *node = NULL;
		int rc;

		if (!f->path)
			continue; /* a name taken, no file */
		if (f->parent < 0 && !f->vhdx) {
			rc = add_file(dir, f->name, f->path, err);
			if (rc < 0)
				return rc;
			continue;
		}
		/* A VHDX base goes through the disk module too: a log it holds is
		 * served replayed, the log emptied. */
		rc = relocated_node(f->name, f->path, f->parent < 0 ? NULL : d->files[f->parent].name,
				    &node, err);
		if (rc == 0 && node_add(dir, node) < 0)
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
	rc = add_file(&holder, pathmap_basename(path), path, err);
	if (rc == 0)
		*out = holder.children[0];
	free(holder.children);
	return rc;
}

/* The edits pointing each of @disks' drives at its file in "Virtual Hard Disks" (@index[i] in @d). */
static void edit_disk_paths(struct edits *e, const struct store_disk *disks, size_t count,
			    const struct disk_files *d, const int *index)
{
	for (size_t i = 0; i < count; i++) {
		char key[600], value[NAME_MAX + 32];
		int at = index[i];

		if (at < 0)
			continue;
		snprintf(key, sizeof(key), "%s/pathname", disks[i].key);
		snprintf(value, sizeof(value), "Virtual Hard Disks\\%s", d->files[at].name);
		edit(e, key, NULL, value);
	}
}

/* ---- merged disks ---- */

/* A chain merged: the files a state's disk becomes. */
struct merged {
	uint64_t vhd_size, vhd_allocated, raw_allocated, disk_size;
	struct timespec mtime;
	uint64_t stamp;
	struct access access; /* of the chain's files, ANDed */
};

/* Open @top's chain the way the store does. */
static int open_chain(struct store *s, const char *top, struct chain **chain, struct error *err)
{
	struct store_disk disk = {.path = (char *)top};

	return store_open_chain(s, &disk, chain, err);
}

/* Measure the merged disk and the raw view of @chain (whose top is @top). */
static int measure_chain(struct chain *chain, const char *top, struct merged *m,
			 struct error *err)
{
	struct stream *vhd = NULL, *raw = NULL;
	int rc = stream_new_merged(&vhd, chain, NULL, err);

	if (rc == 0)
		rc = stream_new_raw(&raw, chain, err);
	if (rc == 0 && chain_stamp(chain, &m->stamp, &m->mtime, &m->access) < 0)
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
static int add_chain_node(struct export_node *dir, const char *name, struct store *s,
			  const char *top, const struct merged *m, const char *seed,
			  struct error *err)
{
	struct export_node *node = node_new(name, EXPORT_FILE);

	if (node) {
		node->source = seed ? EXPORT_SOURCE_MERGED : EXPORT_SOURCE_RAW;
		node->path = strdup(top);
		node->seed = seed ? strdup(seed) : NULL;
		node->store = s;
		node->size = seed ? m->vhd_size : m->disk_size;
		node->allocated = seed ? m->vhd_allocated : m->raw_allocated;
		node->mtime = m->mtime;
		node->stamp = m->stamp;
		access_set(node, &m->access);
	}
	if (!node || !node->path || (seed && !node->seed)) {
		export_node_free(node);
		return error_set(err, ENOMEM, "out of memory");
	}
	return node_add(dir, node) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
}

/* One state of a VM (its current one, or a snapshot's) with each disk's chain measured. */
struct state {
	const char *id;		/* the GUID its export has */
	const struct store_disk *disks;
	size_t disk_count;
	struct disk_files names; /* per disk: its top named after its base; no path: left out */
	struct merged *merged;
	bool carry; /* a disk left out is carried as it lies (a VM's own folder) */
};

static void state_free(struct state *st)
{
	disk_files_free(&st->names);
	free(st->merged);
}

/* Measure every disk of @st (@disks, @count); a disk whose chain cannot be opened
 * (unreadable()) is left out. */
static int state_measure(struct export_planner *p, struct state *st, struct error *err)
{
	int rc = 0;

	st->merged = calloc(st->disk_count ? st->disk_count : 1, sizeof(*st->merged));
	st->names.files = calloc(st->disk_count ? st->disk_count : 1, sizeof(*st->names.files));
	if (!st->merged || !st->names.files)
		return error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < st->disk_count && rc == 0; i++) {
		const struct store_disk *disk = &st->disks[i];
		struct chain *chain = NULL;
		struct disk_file *f = &st->names.files[i];
		struct error why;

		error_clear(&why);
		rc = plan_open_chain(p, disk, &chain, &why);
		if (rc < 0 && unreadable(disk, &why, &p->notes)) {
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
static int state_prepare(struct export_planner *p, struct state *st, struct error *err)
{
	int rc = state_measure(p, st, err);

	if (rc == 0 && name_files(&st->names, true) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	return rc;
}

/* The seed of the merged disk of drive @key in the export with GUID @id. */
static void merged_seed(const char *id, const char *key, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", id, key);
}

/* Each disk of @st merged into "Virtual Hard Disks" of @root, named "<base>.vhd". */
static int add_merged_disks(struct export_node *root, struct export_planner *p,
			    struct state *st, struct error *err)
{
	struct export_node *disks = subdir(root, "Virtual Hard Disks");
	char seed[700];
	int rc = 0;

	if (!disks)
		return error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < st->disk_count && rc == 0; i++) {
		if (!st->names.files[i].path)
			continue; /* left out */
		merged_seed(st->id, st->disks[i].key, seed, sizeof(seed));
		rc = add_chain_node(disks, st->names.files[i].name, p->store, st->disks[i].path,
				    &st->merged[i], seed, err);
	}
	return rc;
}

/*
 * The disks of @st left out of its merged disks, carried into "Virtual Hard
 * Disks" of @root as far as they open (collect_chain()), each drive's path
 * made its top's there in @e.
 */
static int carry_left_out(struct export_node *root, struct export_planner *p,
			  const struct state *st, struct edits *e, struct error *err)
{
	struct export_node *folder = subdir(root, "Virtual Hard Disks");
	struct disk_files d = {0};
	int *tops = calloc(st->disk_count ? st->disk_count : 1, sizeof(*tops));
	int rc = 0;

	/* The merged disks' names are taken: a file carried gets another. */
	d.files = calloc(st->disk_count ? st->disk_count : 1, sizeof(*d.files));
	if (!folder || !tops || !d.files)
		rc = error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < st->disk_count; i++) {
		struct disk_file *f = &d.files[d.count];

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
			rc = collect_chain(p, &st->disks[i], &d, NULL, &tops[i], err);
	}
	if (rc == 0 && name_files(&d, NULL) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	if (rc == 0)
		rc = add_disks(folder, &d, err);
	if (rc == 0)
		edit_disk_paths(e, st->disks, st->disk_count, &d, tops);
	free(tops);
	disk_files_free(&d);
	return rc;
}

/* The edits that make a configuration that of an independent VM @id named @name. */
static void edit_independent(struct edits *e, const char *id, const char *name)
{
	edit(e, "properties/global_id", "string", id);
	edit(e, "properties/type_id", "string", "Virtual Machines");
	edit(e, "properties/name", "string", name);
	edit(e, STORE_KEY_PARENT, NULL, NULL);
	edit(e, STORE_KEY_CURRENT, NULL, NULL);
	edit(e, STORE_KEY_COUNT, NULL, NULL);
	/* Its VM's GUID, where the configuration has it, is now its own. */
	edit(e, STORE_KEY_VM_ID, NULL, id);
	if (!e->failed)
		e->list[e->count - 1].optional = true;
}

/* A folder named after the VM around @folder, for create_vm_export_subdirectory. */
static int wrap(struct export_node **folder, const char *outer, const char *vm_name,
		struct error *err)
{
	struct export_node *around = node_new(outer, EXPORT_DIR);
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
	if (node_add(around, *folder) < 0) { /* it freed the folder */
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
	*root = node_new(name, EXPORT_DIR);
	if (!*root || !subdir(*root, "Virtual Machines") || !subdir(*root, "Virtual Hard Disks") ||
	    !subdir(*root, "Snapshots")) {
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

		if (vms->type != EXPORT_DIR || strcmp(vms->name, "Virtual Machines") != 0)
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
	finish(root, empty);
	*out = root;
	return 0;
}

/* A state's export as an independent VM @st->id named @vm_name: configuration @config_path,
 * merged disks (with @storage; @st prepared then), the saved state in @state (of GUID
 * @old_id) unless left out. */
static int plan_merged(struct export_planner *p, struct state *st, const char *config_path,
		       const char *state, const char *old_id, const char *vm_name, bool storage,
		       struct export_node *root, struct error *err)
{
	struct edits e = {0};
	char file[64];
	int rc = 0;

	if (storage) {
		rc = add_merged_disks(root, p, st, err);
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
			edit_disk_paths(&e, st->disks, st->disk_count, &st->names, index);
		free(index);
		if (st->carry)
			rc = carry_left_out(root, p, st, &e, err);
	}
	snprintf(file, sizeof(file), "%s.xml", st->id);
	if (rc == 0)
		rc = add_config(subdir(root, "Virtual Machines"), file, config_path, &e, err);
	else
		edits_free(e.list, e.count);
	if (rc == 0 && state && p->settings.copy_vm_runtime_information)
		rc = add_saved_state(subdir(root, "Virtual Machines"), st->id, state, old_id,
				     st->id, err);
	return rc;
}

/* export_plan_vm() with the planner's cache open. */
static int plan_vm(struct export_planner *p, const struct store_vm *vm, const char *name,
		   struct export_node **out, struct error *err)
{
	const struct export_settings *settings = &p->settings;
	struct export_node *root = NULL, *vms, *disks, *snaps;
	struct disk_files d = {0};
	struct edits e = {0};
	int *tops = NULL; /* each drive's file in @d: the VM's, then each snapshot's in turn */
	size_t drives = vm->disk_count, at = 0;
	char file[64];
	int rc = plan_begin(name, &root, err);

	*out = NULL;
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < vm->snapshot_count; i++)
		drives += vm->snapshots[i].disk_count;
	vms = subdir(root, "Virtual Machines");
	disks = subdir(root, "Virtual Hard Disks");
	snaps = subdir(root, "Snapshots");
	if (vm->problem) {
		rc = error_set(err, EINVAL, "VM '%s' cannot be exported: %s", vm->name,
			       vm->problem);
		goto out;
	}
	if (settings->copy_snapshot_configuration == EXPORT_SNAPSHOTS_NONE) {
		/* The VM alone: its current disks merged, so that it stands alone. */
		struct state st = {.id = vm->id,
				   .disks = vm->disks,
				   .disk_count = vm->disk_count,
				   .carry = true};

		if (settings->copy_vm_storage)
			rc = state_prepare(p, &st, err);
		if (rc == 0)
			rc = plan_merged(p, &st, vm->config_path, vm->saved_state, NULL, vm->name,
					 settings->copy_vm_storage, root, err);
		state_free(&st);
		goto out;
	}
	if (settings->copy_vm_storage) {
		tops = calloc(drives ? drives : 1, sizeof(*tops));
		if (!tops)
			rc = error_set(err, ENOMEM, "out of memory");
		for (size_t i = 0; i < vm->disk_count && rc >= 0; i++)
			rc = collect_chain(p, &vm->disks[i], &d, &p->notes, &tops[at++], err);
		for (size_t i = 0; i < vm->snapshot_count && rc >= 0; i++)
			for (size_t k = 0; k < vm->snapshots[i].disk_count && rc >= 0; k++)
				rc = collect_chain(p, &vm->snapshots[i].disks[k], &d, &p->notes,
						   &tops[at++], err);
		if (rc >= 0)
			rc = name_files(&d, false) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
		if (rc >= 0)
			rc = add_disks(disks, &d, err);
		if (rc < 0)
			goto out;
		edit_disk_paths(&e, vm->disks, vm->disk_count, &d, tops);
	}
	at = vm->disk_count;
	snprintf(file, sizeof(file), "%s.xml", vm->id);
	rc = add_config(vms, file, vm->config_path, &e, err);
	if (rc == 0 && vm->saved_state && settings->copy_vm_runtime_information)
		rc = add_saved_state(vms, vm->id, vm->saved_state, NULL, NULL, err);
	for (size_t i = 0; i < vm->snapshot_count && rc == 0; i++) {
		const struct store_snapshot *snap = &vm->snapshots[i];

		if (settings->copy_vm_storage)
			edit_disk_paths(&e, snap->disks, snap->disk_count, &d, tops + at);
		at += snap->disk_count;
		snprintf(file, sizeof(file), "%s.xml", snap->id);
		rc = add_config(snaps, file, snap->config_path, &e, err);
		if (rc == 0 && snap->saved_state && settings->copy_vm_runtime_information)
			rc = add_saved_state(snaps, snap->id, snap->saved_state, NULL, NULL, err);
	}
out:
	free(tops);
	edits_free(e.list, e.count);
	disk_files_free(&d);
	return plan_end(rc, root, settings, name, vm->name, out, err);
}

int export_plan_vm(struct export_planner *p, const struct store_vm *vm, const char *name,
		   struct export_node **out, struct error *err)
{
	bool opened;
	int rc;

	*out = NULL;
	if (planner_vm_begin(p, &opened) < 0)
		return error_set(err, ENOMEM, "out of memory");
	rc = plan_vm(p, vm, name, out, err);
	planner_vm_end(p, opened);
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
static int plan_snapshot(int rc, struct export_planner *p, const struct store_vm *vm,
			 const struct store_snapshot *snap, struct state *st, const char *name,
			 struct export_node **out, struct error *err)
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
static int snapshot_prepare(struct export_planner *p, const struct store_vm *vm,
			    const struct store_snapshot *snap, struct state *st, struct error *err)
{
	st->disks = snap->disks;
	st->disk_count = snap->disk_count;
	if (snap->problem)
		return error_set(err, EINVAL, "snapshot '%s' of VM '%s' cannot be exported: %s",
				 snap->name, vm->name, snap->problem);
	return state_prepare(p, st, err);
}

int export_plan_snapshot(struct export_planner *p, const struct store_vm *vm,
			 const struct store_snapshot *snap, const char *name,
			 struct export_node **out, struct error *err)
{
	char id[37];
	struct state st = {.id = id};
	bool opened;
	int rc;

	*out = NULL;
	if (planner_vm_begin(p, &opened) < 0)
		return error_set(err, ENOMEM, "out of memory");
	export_snapshot_vm_id(vm->id, snap->id, id);
	rc = snapshot_prepare(p, vm, snap, &st, err);
	rc = plan_snapshot(rc, p, vm, snap, &st, name, out, err);
	state_free(&st);
	planner_vm_end(p, opened);
	return rc;
}

/* ---- the mount's tree ---- */

/* The modification time of the file @path, or 0 if it cannot be had. */
static struct timespec file_time(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_mtim : (struct timespec){0, 0};
}

/*
 * "raw/<vm>/<folder>/<disk>.img" for each disk of the prepared @st, whose
 * configuration is @config_path (the folder's time when it holds no disk;
 * else the newest of its images', known now for the "latest" link). The
 * folder's path is kept for messages; its partitions are read when it is
 * first listed (export_read_partitions()).
 */
static int add_raw(struct export_node *raw_vm, const char *folder, struct store *s,
		   const struct state *st, const char *config_path, struct error *err)
{
	struct export_node *dir = node_new(folder, EXPORT_DIR);
	char path[3 * (EXPORT_NAME_MAX + 8)];
	int rc = node_add(raw_vm, dir) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;

	snprintf(path, sizeof(path), "raw/%s/%s", raw_vm->name, folder);
	if (rc == 0 && !(dir->path = strdup(path)))
		rc = error_set(err, ENOMEM, "out of memory");

	for (size_t i = 0; i < st->disk_count && rc == 0; i++) {
		char name[NAME_MAX + 1];
		size_t len;

		if (!st->names.files[i].path)
			continue; /* left out */
		len = strlen(st->names.files[i].name);

		/* "<base>.vhd" or "<base>.vhdx" (name_files gave that extension) becomes
		 * "<base>.img". */
		len -= st->names.files[i].vhdx ? 5 : 4;
		snprintf(name, sizeof(name), "%.*s.img", (int)len, st->names.files[i].name);
		rc = add_chain_node(dir, name, s, st->disks[i].path, &st->merged[i], NULL, err);
		if (rc == 0 && later(st->merged[i].mtime, dir->mtime))
			dir->mtime = st->merged[i].mtime;
	}
	if (rc == 0 && dir->child_count == 0)
		dir->mtime = file_time(config_path);
	if (rc == 0)
		dir->partitions_pending = dir->child_count > 0;
	return rc;
}

/*
 * "latest" in @dir (a VM's folder of raw/ or snapshots/), linking to its
 * folder @target (the newest snapshot's). Its time and owner are the
 * target's, given once the tree is finished (settle_latest()).
 */
static int add_latest(struct export_node *dir, const char *target)
{
	struct export_node *link = node_new("latest", EXPORT_LINK);

	if (link && !(link->path = strdup(target))) {
		export_node_free(link);
		return -ENOMEM;
	}
	if (link) {
		link->size = strlen(target);
		link->mode = 0777;
		link->own_access = true;
	}
	return node_add(dir, link);
}

/* Give each "latest" link of raw/<vm>/ and snapshots/<vm>/ under the finished @root the time
 * and owner of the folder it links to. */
static void settle_latest(struct export_node *root)
{
	static const char *const tops[] = {"raw", "snapshots"};

	for (size_t t = 0; t < 2; t++) {
		const struct export_node *top = export_child(root, tops[t]);

		for (size_t i = 0; top && i < top->child_count; i++) {
			const struct export_node *vm = top->children[i];
			struct export_node *link = export_child(vm, "latest");
			const struct export_node *target;

			if (!link || link->type != EXPORT_LINK)
				continue;
			target = export_child(vm, link->path);
			if (!target)
				continue;
			link->mtime = target->mtime;
			link->uid = target->uid;
			link->gid = target->gid;
		}
	}
}

/* Whether the images (raw files) of folders @a and @b are the same: names, sizes, bytes. */
static bool same_images(const struct export_node *a, const struct export_node *b)
{
	size_t in_a = 0, in_b = 0;

	for (size_t i = 0; i < b->child_count; i++)
		in_b += b->children[i]->source == EXPORT_SOURCE_RAW;
	for (size_t i = 0; i < a->child_count; i++) {
		const struct export_node *image = a->children[i], *was;

		if (image->source != EXPORT_SOURCE_RAW)
			continue;
		in_a++;
		was = export_child(b, image->name);
		if (!was || was->source != EXPORT_SOURCE_RAW || was->size != image->size ||
		    export_node_identity(was) != export_node_identity(image))
			return false;
	}
	return in_a == in_b;
}

/*
 * The partitions the tree before (@previous, finished; may be NULL) had read
 * in a folder of raw/ states, copied into the same folder of @raw (being
 * planned) when its images are the same: a table is read once while its disk
 * stays as it is. Returns 0 or -ENOMEM.
 */
static int carry_partitions(struct export_node *raw, const struct export_node *previous)
{
	const struct export_node *was_raw = previous ? export_child(previous, "raw") : NULL;

	for (size_t i = 0; was_raw && i < raw->child_count; i++) {
		const struct export_node *was_vm = export_child(was_raw, raw->children[i]->name);

		for (size_t k = 0; was_vm && k < raw->children[i]->child_count; k++) {
			struct export_node *state = raw->children[i]->children[k];
			const struct export_node *was = export_child(was_vm, state->name);

			if (!state->partitions_pending || !was || was->type != EXPORT_DIR ||
			    was->partitions_pending || !same_images(state, was))
				continue;
			for (size_t p = 0; p < was->child_count; p++)
				if (was->children[p]->source == EXPORT_SOURCE_PARTITION &&
				    node_add(state, node_copy(was->children[p])) < 0)
					return -ENOMEM;
			state->partitions_pending = false;
		}
	}
	return 0;
}

/* "by-id/<id>" pointing at "../<where>/<name>[/<sub>]", with the time and owner of @like
 * (the folder it points at). */
static int add_link(struct export_node *by_id, const char *id, const char *where, const char *name,
		    const char *sub, const struct export_node *like)
{
	struct export_node *link = node_new(id, EXPORT_LINK);
	char target[3 * (EXPORT_NAME_MAX + 80)];

	snprintf(target, sizeof(target), "../%s/%s%s%s", where, name, sub ? "/" : "",
		 sub ? sub : "");
	if (link && !(link->path = strdup(target))) {
		export_node_free(link);
		return -ENOMEM;
	}
	if (link) {
		link->size = strlen(target);
		link->mtime = like->mtime;
		link->mode = 0777;
		link->uid = like->uid;
		link->gid = like->gid;
		link->own_access = true;
	}
	return node_add(by_id, link);
}

/* The names of @count things: "names[i].out", or -ENOMEM. */
static struct export_name *assign(size_t count, const char *(*name)(const void *, size_t),
				  const char *(*id)(const void *, size_t),
				  int64_t (*created)(const void *, size_t), const void *items,
				  size_t extra)
{
	struct export_name *names = calloc(count + extra ? count + extra : 1, sizeof(*names));

	if (!names)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		names[i].name = name(items, i);
		names[i].id = id(items, i);
		names[i].creation_time = created(items, i);
	}
	return names;
}

static const char *vm_name(const void *v, size_t i)
{
	return ((const struct store_vm *)v)[i].name;
}
static const char *vm_id(const void *v, size_t i)
{
	return ((const struct store_vm *)v)[i].id;
}
static int64_t vm_created(const void *v, size_t i)
{
	return ((const struct store_vm *)v)[i].creation_time;
}
static const char *snap_name(const void *v, size_t i)
{
	return ((const struct store_snapshot *)v)[i].name;
}
static const char *snap_id(const void *v, size_t i)
{
	return ((const struct store_snapshot *)v)[i].id;
}
static int64_t snap_created(const void *v, size_t i)
{
	return ((const struct store_snapshot *)v)[i].creation_time;
}

static void names_free(struct export_name *names, size_t count)
{
	for (size_t i = 0; names && i < count; i++)
		free(names[i].out);
	free(names);
}

struct tree {
	struct export_planner *p;
	const struct export_node *previous; /* the tree before, or NULL */
	struct export_node *vms, *snapshots, *raw, *by_id;
	size_t faults; /* VMs not planned for a transient reason */
};

/* Tell the planner's notes of @what, @how. */
static void tell_note(struct tree *t, const char *what, enum export_omission how,
		      const struct error *why)
{
	if (t->p->notes.note)
		t->p->notes.note(t->p->notes.ctx, what, how, why);
}

static void skip(struct tree *t, const char *what, const struct error *why)
{
	tell_note(t, what, EXPORT_LEFT_OUT, why);
}

/* Add folder @child to @dir if it holds anything; else free it. */
static int add_if_any(struct export_node *dir, struct export_node *child)
{
	if (child && child->child_count == 0) {
		export_node_free(child);
		return 0;
	}
	return node_add(dir, child);
}

/*
 * Whether snapshot @i of @vm was taken after its snapshot @j: by creation
 * time (to 100 ns); at the same time, the later in the store's order, which
 * puts parents before children (a child is never older than its parent).
 */
static bool newer(const struct store_vm *vm, size_t i, size_t j)
{
	const struct store_snapshot *a = &vm->snapshots[i], *b = &vm->snapshots[j];

	if (a->creation_time != b->creation_time)
		return a->creation_time > b->creation_time;
	if (a->creation_ticks != b->creation_ticks)
		return a->creation_ticks > b->creation_ticks;
	return i > j;
}

/* raw/<vm>/ and snapshots/<vm>/ of @vm into @raw_dir and @snap_dir. */
static int tree_states(struct tree *t, const struct store_vm *vm, const char *name,
		       struct export_node *raw_dir, struct export_node *snap_dir,
		       struct error *fault)
{
	struct export_node *folder = NULL;
	struct export_name *names = NULL;
	struct error err;
	struct state current = {.id = vm->id, .disks = vm->disks, .disk_count = vm->disk_count};
	size_t newest_raw = SIZE_MAX, newest_snap = SIZE_MAX, count = vm->snapshot_count;
	int rc = 0;

	error_clear(&err);
	if (state_prepare(t->p, &current, &err) == 0)
		rc = add_raw(raw_dir, "current", t->p->store, &current, vm->config_path, &err);
	else if (error_is_transient(err.code) && err.code != ENOMEM)
		*fault = err;
	else
		skip(t, name, &err);
	state_free(&current);
	if (rc < 0 || fault->code || vm->snapshot_count == 0)
		return rc;
	/* Snapshot folders, named among their siblings; "current" (raw/'s) and "latest" (the
	 * link) are the oldest. */
	names = assign(count, snap_name, snap_id, snap_created, vm->snapshots, 2);
	if (!names)
		return -ENOMEM;
	names[count] = (struct export_name){"current", "", INT64_MIN, NULL};
	names[count + 1] = (struct export_name){"latest", "", INT64_MIN, NULL};
	if (export_assign_names(names, count + 2) < 0) {
		free(names);
		return -ENOMEM;
	}
	for (size_t i = 0; i < vm->snapshot_count && rc == 0 && !fault->code; i++) {
		const struct store_snapshot *snap = &vm->snapshots[i];
		char id[37], what[2 * EXPORT_NAME_MAX + 8];
		struct state st = {.id = id};

		export_snapshot_vm_id(vm->id, snap->id, id);
		error_clear(&err);
		snprintf(what, sizeof(what), "%s/%s", name, names[i].out);
		rc = snapshot_prepare(t->p, vm, snap, &st, &err);
		if (rc == 0)
			rc = add_raw(raw_dir, names[i].out, t->p->store, &st, snap->config_path, &err);
		if (rc == 0 && (newest_raw == SIZE_MAX || newer(vm, i, newest_raw)))
			newest_raw = i;
		rc = plan_snapshot(rc, t->p, vm, snap, &st, names[i].out, &folder, &err);
		state_free(&st);
		if (rc == 0 &&
		    (node_add(snap_dir, folder) < 0 ||
		     add_link(t->by_id, snap->id, "snapshots", name, names[i].out, folder) < 0))
			rc = -ENOMEM;
		else if (rc == 0 &&
			 (newest_snap == SIZE_MAX || newer(vm, i, newest_snap)))
			newest_snap = i;
		else if (rc < 0 && err.code != ENOMEM && error_is_transient(err.code))
			*fault = err, rc = 0;
		else if (rc < 0 && err.code != ENOMEM)
			skip(t, what, &err), rc = 0;
	}
	/* "latest": the newest snapshot shown in each (one may be left out of a folder). */
	if (rc == 0 && !fault->code && newest_raw != SIZE_MAX &&
	    add_latest(raw_dir, names[newest_raw].out) < 0)
		rc = -ENOMEM;
	if (rc == 0 && !fault->code && newest_snap != SIZE_MAX &&
	    add_latest(snap_dir, names[newest_snap].out) < 0)
		rc = -ENOMEM;
	names_free(names, count + 2);
	return rc;
}

/* The name the tree before gave VM @id (its by-id link's folder), or NULL. Borrowed. */
static const char *previous_name(const struct export_node *previous, const char *id)
{
	const struct export_node *by_id = previous ? export_child(previous, "by-id") : NULL;
	const struct export_node *link = by_id ? export_child(by_id, id) : NULL;

	if (!link || link->type != EXPORT_LINK || strncmp(link->path, "../vms/", 7) != 0)
		return NULL;
	return link->path + 7;
}

/* A copy of @node renamed @name, added to @dir; absent (NULL) is nothing to copy. */
static int add_copy(struct export_node *dir, const struct export_node *node, const char *name)
{
	struct export_node *copy;

	if (!node)
		return 0;
	copy = node_copy(node);
	if (copy) {
		free(copy->name);
		copy->name = strdup(name);
		if (!copy->name) {
			export_node_free(copy);
			copy = NULL;
		}
	}
	return node_add(dir, copy);
}

/*
 * VM @vm could not be planned now (@why, a transient fault): what the tree
 * before showed of it is shown again, under @name, until it can be planned.
 */
static int keep_previous(struct tree *t, const struct store_vm *vm, const char *name,
			 const struct error *why)
{
	const char *was = previous_name(t->previous, vm->id);
	const struct export_node *by_id;
	char vm_target[EXPORT_NAME_MAX + 16], snap_prefix[EXPORT_NAME_MAX + 16];
	int rc;

	t->faults++;
	tell_note(t, name, was ? EXPORT_KEPT : EXPORT_NOT_NOW, why);
	if (!was)
		return 0;
	rc = add_copy(t->vms, export_child(export_child(t->previous, "vms"), was), name);
	if (rc == 0)
		rc = add_copy(t->raw, export_child(export_child(t->previous, "raw"), was), name);
	if (rc == 0)
		rc = add_copy(t->snapshots,
			      export_child(export_child(t->previous, "snapshots"), was), name);
	/* Its links and its snapshots', pointed at its name now. */
	snprintf(vm_target, sizeof(vm_target), "../vms/%s", was);
	snprintf(snap_prefix, sizeof(snap_prefix), "../snapshots/%s/", was);
	by_id = export_child(t->previous, "by-id");
	for (size_t i = 0; rc == 0 && by_id && i < by_id->child_count; i++) {
		const struct export_node *link = by_id->children[i];
		size_t n = strlen(snap_prefix);

		if (link->type != EXPORT_LINK)
			continue;
		if (strcmp(link->path, vm_target) == 0)
			rc = add_link(t->by_id, link->name, "vms", name, NULL, link);
		else if (strncmp(link->path, snap_prefix, n) == 0)
			rc = add_link(t->by_id, link->name, "snapshots", name, link->path + n,
				      link);
	}
	return rc;
}

/* Everything the mount shows of @vm, named @name. Only out of memory fails it. */
static int tree_vm(struct tree *t, const struct store_vm *vm, const char *name)
{
	struct export_node *folder = NULL, *raw_dir = NULL, *snap_dir = NULL;
	size_t vms_had = t->vms->child_count, links_had = t->by_id->child_count;
	struct error err, fault;
	int rc = 0;

	error_clear(&err);
	error_clear(&fault);
	if (vm->problem && error_is_transient(vm->problem_code)) {
		error_set(&fault, vm->problem_code, "%s", vm->problem);
		goto out;
	}
	if (plan_vm(t->p, vm, name, &folder, &err) == 0) {
		if (node_add(t->vms, folder) < 0 ||
		    add_link(t->by_id, vm->id, "vms", name, NULL, folder) < 0)
			return -ENOMEM;
	} else if (err.code == ENOMEM) {
		return -ENOMEM;
	} else if (error_is_transient(err.code)) {
		fault = err;
		goto out;
	} else {
		skip(t, name, &err);
	}
	if (vm->problem)
		return 0;
	raw_dir = node_new(name, EXPORT_DIR);
	snap_dir = node_new(name, EXPORT_DIR);
	rc = raw_dir && snap_dir ? tree_states(t, vm, name, raw_dir, snap_dir, &fault) : -ENOMEM;
	if (rc < 0 || fault.code)
		goto out;
	if (add_if_any(t->raw, raw_dir) < 0)
		rc = -ENOMEM;
	raw_dir = NULL;
	if (rc == 0 && add_if_any(t->snapshots, snap_dir) < 0)
		rc = -ENOMEM;
	snap_dir = NULL;
out:
	export_node_free(raw_dir);
	export_node_free(snap_dir);
	if (rc == 0 && fault.code) {
		/* Nothing half planned: the VM as the tree before had it, or not yet. */
		drop_children(t->vms, vms_had);
		drop_children(t->by_id, links_had);
		rc = keep_previous(t, vm, name, &fault);
	}
	return rc < 0 ? -ENOMEM : 0;
}

int export_plan_store(struct export_planner *p, const struct store_vm *vms, size_t count,
		      const struct export_node *previous, struct export_node **out, size_t *faults,
		      struct error *err)
{
	struct store *s = p->store;
	struct tree t = {.p = p, .previous = previous};
	struct export_node *root = NULL;
	struct export_name *names = NULL;
	struct stat st = {0};
	int rc;

	*out = NULL;
	*faults = 0;
	/* A folder that is not a store is refused, not served as a store without VMs. */
	rc = store_check(s, err);
	if (rc < 0)
		return rc;
	root = node_new("", EXPORT_DIR);
	names = assign(count, vm_name, vm_id, vm_created, vms, 0);
	/* A VM whose configuration cannot be read now keeps the name it had. */
	for (size_t i = 0; names && i < count; i++) {
		const char *was = previous_name(t.previous, vms[i].id);

		if (was && vms[i].problem && error_is_transient(vms[i].problem_code))
			names[i].name = was;
	}
	if (!root || !names || !(t.vms = subdir(root, "vms")) ||
	    !(t.snapshots = subdir(root, "snapshots")) || !(t.raw = subdir(root, "raw")) ||
	    !(t.by_id = subdir(root, "by-id")) || export_assign_names(names, count) < 0)
		rc = -ENOMEM;
	if (rc == 0) {
		/* The top folders: whoever may list the store's VMs; empty, the store's time. */
		const char *top = store_root(s, 0);

		if (stat(top, &st) < 0) {
			rc = error_errno(err, errno, "cannot stat", top);
			names_free(names, count);
			export_node_free(root);
			return rc;
		}
		access_own(root, &st);
		access_own(t.vms, &st);
		access_own(t.snapshots, &st);
		access_own(t.raw, &st);
		access_own(t.by_id, &st);
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		bool opened;

		if (planner_vm_begin(p, &opened) < 0) {
			rc = -ENOMEM;
			break;
		}
		rc = tree_vm(&t, &vms[i], names[i].out);
		planner_vm_end(p, opened);
	}
	names_free(names, count);
	if (rc == 0)
		rc = carry_partitions(t.raw, t.previous);
	if (rc < 0) {
		export_node_free(root);
		return error_set(err, ENOMEM, "out of memory");
	}
	finish(root, st.st_mtim);
	settle_latest(root);
	*out = root;
	*faults = t.faults;
	return 0;
}

/* ---- partitions ---- */

/* A raw image's table being read. */
struct table_reading {
	struct stream *stream;
	const struct export_notes *notes;
	const char *what; /* the image's path in the tree */
};

static int table_read(void *ctx, void *buf, size_t len, uint64_t offset, struct error *err)
{
	struct table_reading *r = ctx;

	return stream_read(r->stream, buf, len, offset, err);
}

/* Tell @r's notes of the fault @message of the image @r->what. */
static void table_fault(void *ctx, const char *message)
{
	struct table_reading *r = ctx;
	struct error why;

	if (!r->notes || !r->notes->note)
		return;
	error_set(&why, EINVAL, "%s", message);
	r->notes->note(r->notes->ctx, r->what, EXPORT_PARTITIONS, &why);
}

/* Bytes of [@start, @start + @len) of @stream in blocks some level allocates. */
static uint64_t window_allocated(const struct stream *stream, uint64_t start, uint64_t len)
{
	uint64_t at = start, end = start + len, total = 0;

	while (at < end) {
		bool data;
		uint64_t next;

		stream_extent(stream, at, &data, &next);
		if (next > end)
			next = end;
		if (next <= at)
			break;
		if (data)
			total += next - at;
		at = next;
	}
	return total;
}

/* The node of partition @p of raw image @image (read through @stream), named @name. */
static struct export_node *partition_node(const struct export_node *image,
					  const struct partition *p, const char *name,
					  const struct stream *stream)
{
	struct export_node *node = node_new(name, EXPORT_FILE);

	if (node && !(node->path = strdup(image->path))) {
		export_node_free(node);
		return NULL;
	}
	if (node) {
		node->source = EXPORT_SOURCE_PARTITION;
		node->store = image->store;
		node->stamp = image->stamp;
		node->start = p->offset;
		node->size = p->length;
		node->allocated = window_allocated(stream, p->offset, p->length);
		node->mtime = image->mtime;
		node->mode = image->mode;
		node->uid = image->uid;
		node->gid = image->gid;
	}
	return node;
}

/* Whether @dir (finished) or @more (being made) has a child named @name. */
static bool name_taken(const struct export_node *dir, const struct export_node *more,
		       const char *name)
{
	if (export_child(dir, name))
		return true;
	for (size_t i = 0; i < more->child_count; i++)
		if (strcmp(more->children[i]->name, name) == 0)
			return true;
	return false;
}

/*
 * The partitions of @image, of @dir, into @into. A table that cannot be read
 * (a damaged sector) is said and left out; what fails to open, or has changed
 * since planned, fails the call.
 */
static int image_partitions(const struct export_node *dir, const struct export_node *image,
			    struct export_node *into, const struct export_notes *notes,
			    struct error *err)
{
	struct partition_table *table = malloc(sizeof(*table));
	char what[PATH_MAX];
	struct table_reading reading = {.notes = notes, .what = what};
	struct chain *chain = NULL;
	struct stream *stream = NULL;
	struct partition_disk disk;
	struct error why;
	uint64_t stamp = 0;
	size_t stem = strlen(image->name) - 4; /* "<disk>.img" */
	int rc;

	snprintf(what, sizeof(what), "%s/%s", dir->path ? dir->path : dir->name, image->name);
	if (!table)
		return error_set(err, ENOMEM, "out of memory");
	rc = open_chain(image->store, image->path, &chain, err);
	if (rc == 0 && (rc = chain_stamp(chain, &stamp, NULL, NULL)) < 0)
		rc = error_errno(err, -rc, "cannot stat", image->path);
	if (rc == 0 && stamp == image->stamp)
		rc = stream_new_raw(&stream, chain, err);
	else if (rc == 0)
		rc = error_set(err, ESTALE, "'%s' has changed since it was listed", image->path);
	if (rc == 0 && stream_size(stream) != image->size)
		rc = error_set(err, ESTALE, "'%s' has changed since it was listed", image->path);
	if (rc == 0) {
		reading.stream = stream;
		disk = (struct partition_disk){
			table_read, table_fault, &reading, image->size, chain_sector_size(chain),
			what};
		error_clear(&why);
		rc = partition_read_table(&disk, table, &why);
		/* Bytes read while the disk changed say nothing. */
		if (rc == 0 &&
		    (chain_stamp(chain, &stamp, NULL, NULL) < 0 || stamp != image->stamp))
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       image->path);
		else if (rc == -ENOMEM)
			*err = why;
		else if (rc < 0) {
			error_prefix(&why, "cannot read the partition table of '%s'", what);
			table_fault(&reading, error_message(&why));
			table->count = 0;
			rc = 0;
		}
	}
	for (size_t i = 0; rc == 0 && i < table->count; i++) {
		const struct partition *p = &table->parts[i];
		char name[NAME_MAX + 32];
		struct export_node *node;

		if (snprintf(name, sizeof(name), "%.*s-part%u.img", (int)stem, image->name,
			     p->number) > NAME_MAX) {
			error_set(&why, ENAMETOOLONG,
				  "partition %u of '%s' would have too long a name: left out",
				  p->number, what);
			table_fault(&reading, error_message(&why));
			continue;
		}
		if (name_taken(dir, into, name)) {
			error_set(&why, EEXIST,
				  "partition %u of '%s' would be named '%s', as another file is: "
				  "left out",
				  p->number, what, name);
			table_fault(&reading, error_message(&why));
			continue;
		}
		node = partition_node(image, p, name, stream);
		if (node_add(into, node) < 0)
			rc = error_set(err, ENOMEM, "out of memory");
	}
	stream_free(stream);
	chain_close(chain);
	free(table);
	return rc;
}

int export_read_partitions(const struct export_node *dir, const struct export_notes *notes,
			   struct export_node **out, struct error *err)
{
	struct export_node *into = node_new(dir->name, EXPORT_DIR);
	int rc = into ? 0 : error_set(err, ENOMEM, "out of memory");

	*out = NULL;
	for (size_t i = 0; rc == 0 && i < dir->child_count; i++)
		if (dir->children[i]->source == EXPORT_SOURCE_RAW)
			rc = image_partitions(dir, dir->children[i], into, notes, err);
	if (rc < 0) {
		export_node_free(into);
		return rc;
	}
	*out = into;
	return 0;
}

int export_add_partitions(struct export_node *dir, struct export_node *parts)
{
	size_t n = parts->child_count;

	if (n) {
		struct export_node **grown =
			realloc(dir->children, (dir->child_count + n) * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		memcpy(grown + dir->child_count, parts->children, n * sizeof(*grown));
		dir->children = grown;
		dir->child_count += n;
		qsort(dir->children, dir->child_count, sizeof(*dir->children), compare_nodes);
		parts->child_count = 0;
	}
	dir->partitions_pending = false;
	export_node_free(parts);
	return 0;
}

/* ---- reading and writing ---- */

struct export_file {
	const struct export_node *node;
	int fd;		       /* FILE, RELOCATED */
	struct disk *disk;     /* RELOCATED and replayed: reads through the disk module */
	char *bytes;	       /* CONFIG */
	struct chain *chain;   /* MERGED, RAW */
	struct stream *stream; /* MERGED, RAW */
};

const struct export_node *export_file_node(const struct export_file *f)
{
	return f->node;
}

void export_close(struct export_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->bytes);
	disk_close(f->disk);
	stream_free(f->stream);
	chain_close(f->chain);
	free(f);
}

/* The sources' identity now, from the open files. */
static int file_stamp(const struct export_file *f, uint64_t *stamp)
{
	struct stat st;

	if (f->chain)
		return chain_stamp(f->chain, stamp, NULL, NULL);
	if (fstat(f->fd, &st) < 0)
		return -errno;
	*stamp = stamp_mix(STAMP_START, &st);
	return 0;
}

/* -ESTALE with a message unless the sources of @f are still what the plan saw. */
static int check_unchanged(const struct export_file *f, struct error *err)
{
	uint64_t now = 0;
	int rc = file_stamp(f, &now);

	if (rc < 0)
		return error_errno(err, -rc, "cannot stat", f->node->path);
	if (now != f->node->stamp)
		return error_set(err, ESTALE,
				 "'%s' has changed since it was listed: '%s' must be opened again",
				 f->node->path, f->node->name);
	return 0;
}

/* The disk behind @f's file (opened as @st) read through the disk module, as planned. */
static int open_replayed(struct export_file *f, const struct stat *st, struct error *err)
{
	dev_t dev;
	ino_t ino;
	int rc = disk_open(&f->disk, f->node->path, DISK_OPEN_READ, err);

	if (rc < 0)
		return rc;
	disk_file_id(f->disk, &dev, &ino);
	if (dev != st->st_dev || ino != st->st_ino || disk_view_size(f->disk) != f->node->size)
		return error_set(err, ESTALE, "'%s' has changed since it was listed",
				 f->node->path);
	return 0;
}

int export_open(const struct export_node *node, struct export_file **out, struct error *err)
{
	struct export_file *f;
	struct stat st;
	size_t len = 0;
	int rc = 0;

	*out = NULL;
	if (node->type != EXPORT_FILE)
		return error_set(err, EISDIR, "'%s' is not a file", node->name);
	f = calloc(1, sizeof(*f));
	if (!f)
		return error_set(err, ENOMEM, "out of memory");
	f->node = node;
	f->fd = -1;
	switch (node->source) {
	case EXPORT_SOURCE_CONFIG:
		/* Made again, from a file that must not change while it is read. */
		if (stat(node->path, &st) < 0)
			rc = error_errno(err, errno, "cannot stat", node->path);
		else if (stamp_mix(STAMP_START, &st) != node->stamp)
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       node->path);
		if (rc == 0)
			rc = config_make(node->path, node->edits, node->edit_count, &f->bytes, &len,
					 err);
		/* And the same after: a rewrite while it was read is never served. */
		if (rc == 0 && (stat(node->path, &st) < 0 || stamp_mix(STAMP_START, &st) != node->stamp))
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       node->path);
		if (rc == 0 && len != node->size)
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       node->path);
		break;
	case EXPORT_SOURCE_MERGED:
	case EXPORT_SOURCE_RAW:
	case EXPORT_SOURCE_PARTITION: {
		rc = open_chain(node->store, node->path, &f->chain, err);
		if (rc == 0)
			rc = check_unchanged(f, err);
		if (rc == 0)
			rc = node->source == EXPORT_SOURCE_MERGED
				     ? stream_new_merged(&f->stream, f->chain, node->seed, err)
				     : stream_new_raw(&f->stream, f->chain, err);
		/* A partition: a window that must lie inside the disk. */
		if (rc == 0 && (node->source == EXPORT_SOURCE_PARTITION
					? node->start > stream_size(f->stream) ||
						  node->size > stream_size(f->stream) - node->start
					: stream_size(f->stream) != node->size))
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       node->path);
		break;
	}
	default:
		f->fd = fsutil_open_regular(node->path, &st);
		if (f->fd < 0)
			rc = error_errno(err, -f->fd, "cannot open", node->path);
		else
			rc = check_unchanged(f, err);
		if (rc == 0 && node->replayed)
			rc = open_replayed(f, &st, err);
		break;
	}
	if (rc < 0) {
		export_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

int export_read_at(struct export_file *f, void *buf, size_t len, uint64_t offset,
		   struct error *err)
{
	const struct export_node *node = f->node;
	int rc;

	if (offset > node->size || len > node->size - offset)
		return error_set(err, EINVAL, "read of %zu bytes at %llu is outside '%s'", len,
				 (unsigned long long)offset, node->name);
	switch (node->source) {
	case EXPORT_SOURCE_CONFIG:
		memcpy(buf, f->bytes + offset, len);
		return 0;
	case EXPORT_SOURCE_MERGED:
	case EXPORT_SOURCE_RAW:
	case EXPORT_SOURCE_PARTITION:
		rc = stream_read(f->stream, buf, len, node->start + offset, err);
		break;
	default:
		if (f->disk) {
			rc = disk_pread(f->disk, buf, len, offset, err);
			if (rc < 0)
				return rc;
		} else if ((rc = fsutil_pread_full(f->fd, buf, len, offset)) < 0) {
			return error_errno(err, rc == -ENODATA ? EIO : -rc, "cannot read",
					   node->path);
		}
		if (node->source == EXPORT_SOURCE_RELOCATED)
			vhd_patches_apply(node->patches, node->patch_count, buf, len, offset);
		break;
	}
	/* Checked after the read: bytes read while a source changed are never given. */
	return rc < 0 ? rc : check_unchanged(f, err);
}

int export_read(const struct export_node *node, void *buf, size_t len, uint64_t offset,
		struct error *err)
{
	struct export_file *f = NULL;
	int rc = export_open(node, &f, err);

	if (rc == 0)
		rc = export_read_at(f, buf, len, offset, err);
	export_close(f);
	return rc;
}

/* lseek of the source at @offset, within the planned size: -ENXIO past the last data. */
static int64_t seek_source(const struct export_file *f, uint64_t offset, bool data,
			   struct error *err)
{
	uint64_t size = f->node->size;
	off_t at = lseek(f->fd, (off_t)offset, data ? SEEK_DATA : SEEK_HOLE);

	if (at < 0) {
		/* A source without hole support is all data. */
		if (errno == EINVAL)
			return data ? (int64_t)offset : (int64_t)size;
		return errno == ENXIO ? -ENXIO
				      : error_errno(err, errno, "cannot seek in", f->node->path);
	}
	if ((uint64_t)at >= size)
		return data ? -ENXIO : (int64_t)size;
	return (int64_t)at;
}

/* SEEK_DATA/SEEK_HOLE of a file served from the store: the source's runs, the patches laid
 * over it (a relocated header) being data wherever the source has holes. */
static int64_t seek_file(const struct export_file *f, uint64_t offset, bool data,
			 struct error *err)
{
	const struct vhd_patch *p = f->node->patches;
	int64_t at;

	/* A replayed file is data throughout: its holes are not the file's. */
	if (f->disk)
		return data ? (int64_t)offset : (int64_t)f->node->size;
	at = seek_source(f, offset, data, err);

	if (at < 0 && at != -ENXIO)
		return at;
	for (size_t i = 0; i < f->node->patch_count; i++) {
		uint64_t start = p[i].offset, end = p[i].offset + p[i].len;

		if (!p[i].bytes || end <= offset)
			continue;
		if (data) {
			/* The first data: the source's, or a patch's that starts before it. */
			uint64_t from = start > offset ? start : offset;

			if (at == -ENXIO || from < (uint64_t)at)
				at = (int64_t)from;
		} else if (start <= (uint64_t)at && (uint64_t)at < end) {
			/* A hole that begins inside a patch begins after it, or later. */
			return seek_file(f, end, false, err);
		}
	}
	return at;
}

int64_t export_seek(struct export_file *f, uint64_t offset, bool data, struct error *err)
{
	const struct export_node *node = f->node;

	if (offset >= node->size)
		return -ENXIO;
	switch (node->source) {
	case EXPORT_SOURCE_CONFIG:
		return data ? (int64_t)offset : (int64_t)node->size;
	case EXPORT_SOURCE_MERGED:
	case EXPORT_SOURCE_RAW:
	case EXPORT_SOURCE_PARTITION:
		/* Runs of data and holes from the allocation tables (a partition's: inside its
		 * window, @start on in the disk). */
		while (offset < node->size) {
			bool is_data;
			uint64_t end;

			stream_extent(f->stream, node->start + offset, &is_data, &end);
			if (is_data == data)
				return (int64_t)offset;
			if (end <= node->start + offset)
				break;
			offset = end - node->start;
		}
		return data ? -ENXIO : (int64_t)node->size;
	default:
		return seek_file(f, offset, data, err);
	}
}

int export_write_file_progress(const struct export_node *node, const char *dest,
			       int (*progress)(void *ctx, uint64_t bytes), void *ctx,
			       struct error *err)
{
	int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), rc;

	if (fd < 0)
		return error_errno(err, errno, "cannot create", dest);
	rc = export_write_file_fd(node, fd, dest, progress, ctx, err);
	close(fd);
	return rc;
}

/* @progress's word on @bytes more done (0: go on), made an error of writing @dest. */
static int tell(int (*progress)(void *ctx, uint64_t bytes), void *ctx, uint64_t bytes,
		const char *dest, struct error *err)
{
	int rc = progress ? progress(ctx, bytes) : 0;

	return rc < 0 ? error_errno(err, -rc, "cannot write", dest) : 0;
}

/*
 * Write the file @f serves, read from its source as it lies, into @fd (new,
 * empty; named @dest in messages): the source's runs of data copied by
 * copy_file_range, its holes kept, then the patches laid over them, then the
 * source checked unchanged since it was listed.
 */
static int copy_as_it_lies(const struct export_file *f, int fd, const char *dest,
			   int (*progress)(void *ctx, uint64_t bytes), void *ctx,
			   struct error *err)
{
	const struct export_node *node = f->node;
	int rc = fsutil_copy_data(f->fd, fd, node->size, progress, ctx);

	if (rc == -ENODATA)
		return error_set(err, EIO, "'%s' is shorter than when it was listed", node->path);
	if (rc < 0)
		return error_set(err, -rc, "cannot copy '%s' to '%s': %s", node->path, dest,
				 strerror(-rc));
	for (size_t i = 0; i < node->patch_count; i++) {
		const struct vhd_patch *p = &node->patches[i];

		if (!p->bytes || p->offset >= node->size)
			continue;
		rc = fsutil_pwrite_full(fd, p->bytes,
					p->len < node->size - p->offset ? p->len
									: (size_t)(node->size - p->offset),
					p->offset);
		if (rc < 0)
			return error_errno(err, -rc, "cannot write", dest);
	}
	return check_unchanged(f, err);
}

int export_write_file_fd(const struct export_node *node, int fd, const char *dest,
			 int (*progress)(void *ctx, uint64_t bytes), void *ctx, struct error *err)
{
	struct export_file *f = NULL;
	uint8_t *buf = NULL;
	int rc = export_open(node, &f, err);
	uint64_t at = 0;

	if (rc == 0 && f->fd >= 0 && !f->disk) {
		/* A file served as it lies (its patches laid over after): copied in the kernel. */
		rc = copy_as_it_lies(f, fd, dest, progress, ctx, err);
		at = node->size;
	} else if (rc == 0 && !(buf = malloc(1 << 20))) {
		rc = error_set(err, ENOMEM, "out of memory");
	}
	while (rc == 0 && at < node->size) {
		int64_t data = export_seek(f, at, true, err);
		size_t n;

		/* Holes are skipped: the new file keeps them. */
		if (data == -ENXIO || (data > (int64_t)at && (uint64_t)data >= node->size)) {
			rc = tell(progress, ctx, node->size - at, dest, err);
			break;
		}
		if (data < 0) {
			rc = (int)data;
			break;
		}
		if ((uint64_t)data > at) {
			if ((rc = tell(progress, ctx, (uint64_t)data - at, dest, err)) < 0)
				break;
			at = (uint64_t)data;
		}
		n = node->size - at < (1 << 20) ? (size_t)(node->size - at) : (1 << 20);
		rc = export_read_at(f, buf, n, at, err);
		if (rc == 0 && (rc = fsutil_pwrite_sparse(fd, buf, n, at)) < 0)
			rc = error_errno(err, -rc, "cannot write", dest);
		at += n;
		if (rc == 0)
			rc = tell(progress, ctx, n, dest, err);
	}
	if (rc == 0 && (ftruncate(fd, (off_t)node->size) < 0 || fsync(fd) < 0))
		rc = error_errno(err, errno, "cannot write", dest);
	if (rc == 0) {
		const struct timespec times[2] = {node->mtime, node->mtime};

		futimens(fd, times);
	}
	export_close(f);
	free(buf);
	return rc;
}

int export_write_file(const struct export_node *node, const char *dest, struct error *err)
{
	return export_write_file_progress(node, dest, NULL, NULL, err);
}

/* A tree's bytes written so far, told to the caller of export_write(). */
struct tally {
	int (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
	uint64_t done, total;
};

static int tally_add(void *ctx, uint64_t bytes)
{
	struct tally *t = ctx;

	t->done += bytes;
	return t->progress ? t->progress(t->ctx, t->done, t->total) : 0;
}

/* The bytes of the files under @node. */
static uint64_t tree_bytes(const struct export_node *node)
{
	uint64_t sum = node->type == EXPORT_FILE ? node->size : 0;

	for (size_t i = 0; node->type == EXPORT_DIR && i < node->child_count; i++)
		sum += tree_bytes(node->children[i]);
	return sum;
}

/*
 * Write @node at @path, named @shown in messages (its final name); @fd:
 * @path made already (a new folder: 0; a new file open: its fd), or -1.
 */
static int write_tree(const struct export_node *node, const char *path, const char *shown, int fd,
		      struct tally *t, struct error *err)
{
	struct timespec times[2];
	int rc = 0;

	if (node->type == EXPORT_LINK) {
		if (symlink(node->path, path) < 0)
			return error_errno(err, errno, "cannot create", shown);
		return 0;
	}
	if (node->type == EXPORT_FILE) {
		int made = fd >= 0 ? fd : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (made < 0)
			return error_errno(err, errno, "cannot create", shown);
		rc = export_write_file_fd(node, made, shown, tally_add, t, err);
		if (fd < 0)
			close(made);
	} else {
		if (fd < 0 && mkdir(path, 0755) < 0)
			return error_errno(err, errno, "cannot create", shown);
		for (size_t i = 0; i < node->child_count && rc == 0; i++) {
			const char *name = node->children[i]->name;
			char sub[PATH_MAX], sub_shown[PATH_MAX];

			if (snprintf(sub, sizeof(sub), "%s/%s", path, name) >= (int)sizeof(sub) ||
			    snprintf(sub_shown, sizeof(sub_shown), "%s/%s", shown, name) >=
				    (int)sizeof(sub_shown))
				return error_set(err, ENAMETOOLONG, "'%s' is too long a path",
						 shown);
			rc = write_tree(node->children[i], sub, sub_shown, -1, t, err);
		}
	}
	if (rc == 0) {
		times[0] = node->mtime;
		times[1] = node->mtime;
		utimensat(AT_FDCWD, path, times, 0);
	}
	return rc;
}

int export_write(const struct export_node *node, const char *dest,
		 int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
		 struct error *err)
{
	struct tally t = {progress, ctx, 0, tree_bytes(node)};
	char temp[PATH_MAX];
	int fd, rc;

	if (node->type == EXPORT_LINK)
		return write_tree(node, dest, dest, -1, &t, err);
	if (fsutil_name_taken(dest))
		return error_errno(err, EEXIST, "cannot create", dest);
	/* Written under a temporary name beside @dest, named @dest once whole. */
	fd = fsutil_make_partial(dest, node->type == EXPORT_DIR, temp, sizeof(temp));
	if (fd < 0)
		return error_errno(err, -fd, "cannot create", dest);
	rc = write_tree(node, temp, dest, fd, &t, err);
	if (node->type == EXPORT_FILE)
		close(fd);
	/* The last word before the name is given: a job stopped now leaves nothing. */
	if (rc == 0 && progress && (rc = progress(ctx, t.done, t.total)) < 0)
		rc = error_errno(err, -rc, "cannot write", dest);
	if (rc == 0 && (rc = fsutil_publish(temp, dest)) < 0)
		rc = error_errno(err, -rc, "cannot create", dest);
	if (rc < 0)
		fsutil_remove_tree(temp);
	return rc;
}
