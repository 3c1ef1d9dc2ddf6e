/*
 * exportfs_inode.c - the inode table of the export mount (see exportfs_inode.h).
 */
#define FUSE_USE_VERSION 314

#include "exportfs_inode.h"

#include "export.h"
#include "exportfs.h"
#include "hash.h"
#include "store.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Free the glue of a tree (not the core's nodes); a folder's children may be NULL. NULL-safe. */
static void glue_free(struct exportfs_node *glue)
{
	if (!glue)
		return;
	for (size_t i = 0; glue->children && i < glue->node->child_count; i++)
		glue_free(glue->children[i]);
	free(glue->children);
	free(glue);
}

/* The glue of @node and everything under it, numbered 0 (glue_free() frees it), or NULL. */
static struct exportfs_node *glue_new(struct export_node *node)
{
	struct exportfs_node *glue = calloc(1, sizeof(*glue));

	if (!glue)
		return NULL;
	glue->node = node;
	if (node->child_count &&
	    !(glue->children = calloc(node->child_count, sizeof(*glue->children)))) {
		free(glue);
		return NULL;
	}
	for (size_t i = 0; i < node->child_count; i++)
		if (!(glue->children[i] = glue_new(node->children[i]))) {
			glue_free(glue);
			return NULL;
		}
	return glue;
}

void exportfs_gen_free(struct exportfs_gen *gen)
{
	if (!gen)
		return;
	glue_free(gen->top);
	export_node_free(gen->root);
	store_vms_free(gen->vms, gen->vm_count);
	export_names_free(gen->names, gen->vm_count);
	free(gen->table);
	free(gen);
}

void exportfs_gen_ref(struct exportfs *fs, struct exportfs_gen *gen)
{
	pthread_mutex_lock(&fs->ref_lock);
	gen->refs++;
	pthread_mutex_unlock(&fs->ref_lock);
}

void exportfs_gen_unref(struct exportfs *fs, struct exportfs_gen *gen)
{
	bool last;

	if (!gen)
		return;
	pthread_mutex_lock(&fs->ref_lock);
	last = --gen->refs == 0;
	pthread_mutex_unlock(&fs->ref_lock);
	if (last)
		exportfs_gen_free(gen);
}

static size_t slot_of(uint64_t ino, size_t mask)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
}

struct exportfs_node *exportfs_gen_find(const struct exportfs_gen *gen, uint64_t ino)
{
	for (size_t at = slot_of(ino, gen->mask);; at = (at + 1) & gen->mask) {
		struct exportfs_node *glue = gen->table[at];

		if (!glue || glue->ino == ino)
			return glue;
	}
}

struct exportfs_node *exportfs_node_child(const struct exportfs_node *dir, const char *name)
{
	size_t at = export_child_index(dir->node, name);

	return at < dir->node->child_count && !dir->node->children[at]->left_out
		       ? dir->children[at]
		       : NULL;
}

size_t exportfs_node_count(const struct exportfs_node *glue)
{
	size_t n = 1;

	for (size_t i = 0; i < glue->node->child_count; i++)
		n += exportfs_node_count(glue->children[i]);
	return n;
}

/*
 * The inode number a partition of folder @parent gets, unless another has it:
 * from the folder's number and its name, so that it is the same whether the
 * partitions were read in this tree or carried over from the one before.
 */
static uint64_t partition_hash(uint64_t parent, const char *name)
{
	uint8_t bytes[8];

	/* The number's bytes, least significant first, whatever the host's order. */
	for (int i = 0; i < 8; i++)
		bytes[i] = (uint8_t)(parent >> (8 * i));
	return hash_bytes(hash_bytes(HASH_START, bytes, sizeof(bytes)), name, strlen(name));
}

/* Put @glue (numbered) into @table of @mask + 1 slots, which has room. */
static void table_put(struct exportfs_node **table, size_t mask, struct exportfs_node *glue)
{
	size_t at;

	for (at = slot_of(glue->ino, mask); table[at]; at = (at + 1) & mask)
		;
	table[at] = glue;
}

/* Give @glue inode number @ino, or the next free one, and put it in @gen's table (which has
 * room). */
static void place(struct exportfs_gen *gen, struct exportfs_node *glue, uint64_t ino)
{
	if (ino <= FUSE_ROOT_ID)
		ino += 2;
	/* Two paths of one hash: the later one takes the next free number. */
	while (exportfs_gen_find(gen, ino))
		ino = ino + 1 > FUSE_ROOT_ID ? ino + 1 : FUSE_ROOT_ID + 1;
	glue->ino = ino;
	table_put(gen->table, gen->mask, glue);
	gen->count++;
}

/*
 * Number @glue and everything under it into @gen's table: @glue lies in the
 * folder numbered @parent, at a path of @len bytes whose hash is @path (the
 * root at "", then "/vms", "/vms/blog"...).
 */
static void number(struct exportfs_gen *gen, struct exportfs_node *glue, uint64_t parent,
		   uint64_t path, size_t len)
{
	const struct export_node *node = glue->node;

	if (len == 0) {
		glue->ino = FUSE_ROOT_ID;
		gen->table[slot_of(FUSE_ROOT_ID, gen->mask)] = glue;
		gen->count++;
	} else {
		place(gen, glue,
		      node->source == EXPORT_SOURCE_PARTITION ? partition_hash(parent, node->name)
							      : path);
	}
	for (size_t i = 0; i < node->child_count; i++) {
		const char *name = node->children[i]->name;
		size_t n = strlen(name);

		if (len + 1 + n >= PATH_MAX)
			continue; /* deeper than any path: not reachable */
		number(gen, glue->children[i], glue->ino,
		       hash_bytes(hash_bytes(path, "/", 1), name, n), len + 1 + n);
	}
}

/* Keep of the listing of @gen only what its pending VMs need (the others are planned: each
 * has a folder in vms/ that is not pending). Returns 0 or -ENOMEM. */
static int keep_pending(struct exportfs_gen *gen)
{
	const struct export_node *vms = export_child(gen->root, "vms");
	bool *pending = calloc(gen->vm_count ? gen->vm_count : 1, sizeof(*pending));

	if (!pending)
		return -ENOMEM;
	for (size_t i = 0; vms && i < vms->child_count; i++)
		if (vms->children[i]->vm_pending && vms->children[i]->vm < gen->vm_count)
			pending[vms->children[i]->vm] = true;
	for (size_t i = 0; i < gen->vm_count; i++)
		if (!pending[i]) {
			store_vm_release(&gen->vms[i]);
			free(gen->names[i]);
			gen->names[i] = NULL;
		}
	free(pending);
	return 0;
}

int exportfs_gen_new(struct export_node *root, struct store_vm *vms, char **names,
		     size_t vm_count, struct exportfs_gen **out)
{
	struct exportfs_gen *gen = calloc(1, sizeof(*gen));
	size_t cap = 16, nodes;

	*out = NULL;
	if (!gen) {
		export_node_free(root);
		store_vms_free(vms, vm_count);
		export_names_free(names, vm_count);
		return -ENOMEM;
	}
	gen->root = root;
	gen->vms = vms;
	gen->names = names;
	gen->vm_count = vm_count;
	gen->top = glue_new(root);
	if (!gen->top || keep_pending(gen) < 0) {
		exportfs_gen_free(gen);
		return -ENOMEM;
	}
	nodes = exportfs_node_count(gen->top);
	while (cap < nodes * 2)
		cap *= 2;
	gen->mask = cap - 1;
	gen->table = calloc(cap, sizeof(*gen->table));
	if (!gen->table) {
		exportfs_gen_free(gen);
		return -ENOMEM;
	}
	number(gen, gen->top, 0, HASH_START, 0);
	gen->refs = 1;
	*out = gen;
	return 0;
}

/* Grow @gen's table to hold @need nodes at most half full. Returns 0 or -ENOMEM (unchanged). */
static int table_grow(struct exportfs_gen *gen, size_t need)
{
	size_t cap = gen->mask + 1, old_cap = cap;
	struct exportfs_node **table;

	if (2 * need <= cap)
		return 0;
	while (cap < 2 * need)
		cap *= 2;
	table = calloc(cap, sizeof(*table));
	if (!table)
		return -ENOMEM;
	for (size_t i = 0; i < old_cap; i++)
		if (gen->table[i])
			table_put(table, cap - 1, gen->table[i]);
	free(gen->table);
	gen->table = table;
	gen->mask = cap - 1;
	return 0;
}

int exportfs_gen_adopt(struct exportfs_gen *gen, struct exportfs_node *dir,
		       struct export_node *parts)
{
	struct export_node *node = dir->node;
	size_t had = node->child_count, more = parts->child_count, made = 0;
	struct exportfs_node **children = calloc(had + more ? had + more : 1, sizeof(*children));
	struct exportfs_node **fresh = calloc(more ? more : 1, sizeof(*fresh));
	int rc = children && fresh ? table_grow(gen, gen->count + more) : -ENOMEM;

	/* Everything that can fail before the tree changes. */
	for (; rc == 0 && made < more; made++)
		if (!(fresh[made] = calloc(1, sizeof(**fresh))))
			rc = -ENOMEM;
	if (rc == 0 && export_add_partitions(node, parts) < 0)
		rc = -ENOMEM;
	if (rc < 0) {
		for (size_t i = 0; i < made; i++)
			free(fresh[i]);
		free(fresh);
		free(children);
		export_node_free(parts);
		return rc;
	}
	/* The folder's children, in their new order: those it had keep their glue. */
	made = 0;
	for (size_t i = 0; i < node->child_count; i++) {
		for (size_t k = 0; k < had && !children[i]; k++)
			if (dir->children[k]->node == node->children[i])
				children[i] = dir->children[k];
		if (children[i])
			continue;
		children[i] = fresh[made++];
		children[i]->node = node->children[i];
		place(gen, children[i], partition_hash(dir->ino, node->children[i]->name));
		children[i]->renewed = true;
	}
	free(dir->children);
	dir->children = children;
	free(fresh);
	return 0;
}

/* A pending node of VM @index and what its plan made of it. */
struct adoption {
	struct exportfs_node *served;	 /* vm_pending */
	struct export_node *planned;	 /* NULL: left out */
	struct exportfs_node **children; /* the glue of @planned's children */
	uint64_t path;			 /* the hash of @served's path in the tree (number()) */
	size_t len;			 /* that path's length */
};

/* The served node @top/@name of @gen if it is VM @index's pending one, into @a (with its
 * plan's, from @planned's @top), else nothing. */
static void adoption_find(struct exportfs_gen *gen, const char *top, const char *name,
			  size_t index, struct export_node *planned, struct adoption *a, size_t *n)
{
	const struct exportfs_node *dir = exportfs_node_child(gen->top, top);
	size_t at = dir ? export_child_index(dir->node, name) : 0;
	struct exportfs_node *served;

	if (!dir || at == dir->node->child_count)
		return;
	served = dir->children[at];
	if (!served->node->vm_pending || served->node->vm != index)
		return;
	/* "/<top>/<name>", hashed as number() hashes a path. */
	a[*n].path = hash_bytes(hash_bytes(hash_bytes(hash_bytes(HASH_START, "/", 1), top,
							strlen(top)),
					   "/", 1),
				name, strlen(name));
	a[*n].len = 2 + strlen(top) + strlen(name);
	a[*n].served = served;
	a[*n].planned = export_child(export_child(planned, top), name);
	a[*n].children = NULL;
	(*n)++;
}

int exportfs_gen_adopt_vm(struct exportfs_gen *gen, size_t index, struct export_node *planned,
			  bool *left_out)
{
	const struct store_vm *vm = &gen->vms[index];
	static const char *const tops[] = {"vms", "raw", "snapshots"};
	size_t max = 4 + vm->snapshot_count, n = 0, more = 0;
	struct adoption *a = calloc(max, sizeof(*a));
	int rc = a ? 0 : -ENOMEM;

	*left_out = false;
	for (size_t t = 0; a && t < 3; t++)
		adoption_find(gen, tops[t], gen->names[index], index, planned, a, &n);
	if (a)
		adoption_find(gen, "by-id", vm->id, index, planned, a, &n);
	for (size_t i = 0; a && i < vm->snapshot_count; i++)
		adoption_find(gen, "by-id", vm->snapshots[i].id, index, planned, a, &n);
	/* Everything that can fail before the tree changes: the glue of what comes. */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct export_node *p = a[i].planned;

		if (!p || p->left_out || !p->child_count)
			continue;
		a[i].children = calloc(p->child_count, sizeof(*a[i].children));
		if (!a[i].children) {
			rc = -ENOMEM;
			break;
		}
		for (size_t k = 0; k < p->child_count; k++) {
			a[i].children[k] = glue_new(p->children[k]);
			if (!a[i].children[k]) {
				rc = -ENOMEM;
				break;
			}
			more += exportfs_node_count(a[i].children[k]);
		}
	}
	if (rc == 0)
		rc = table_grow(gen, gen->count + more);
	if (rc < 0) {
		for (size_t i = 0; a && i < n; i++) {
			for (size_t k = 0; a[i].children && k < a[i].planned->child_count; k++)
				glue_free(a[i].children[k]);
			free(a[i].children);
		}
		free(a);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		struct exportfs_node *served = a[i].served;
		size_t len = a[i].len;
		uint64_t path = a[i].path;

		if (!a[i].planned || a[i].planned->left_out)
			*left_out = true;
		export_adopt(served->node, a[i].planned);
		/* Pending, it held nothing; its children now, in their order. */
		served->children = a[i].children;
		for (size_t k = 0; k < served->node->child_count; k++) {
			const char *name = served->node->children[k]->name;
			size_t nl = strlen(name);

			if (len + 1 + nl >= PATH_MAX)
				continue; /* deeper than any path: not reachable */
			number(gen, served->children[k], served->ino,
			       hash_bytes(hash_bytes(path, "/", 1), name, nl), len + 1 + nl);
		}
	}
	free(a);
	return 0;
}
