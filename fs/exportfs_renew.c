/*
 * exportfs_renew.c - the tree of the export mount planned again and swapped
 * in (see exportfs_renew.h).
 *
 * The tree is planned again when the store's folders change (looked at every
 * few seconds by a thread: no inotify, which NFS and SMB lack) or when an open
 * found a source changed. The new tree replaces the old one at once; files
 * open in the old one keep reading from it until closed. What the kernel is
 * told of a new tree is worked out under the lock and told after it is
 * released: the kernel may wait for a lookup in flight before it takes the
 * news, and that lookup may be waiting for the lock to add partitions.
 */
#define FUSE_USE_VERSION 314

#include "exportfs_renew.h"

#include "error.h"
#include "export.h"
#include "exportfs.h"
#include "exportfs_inode.h"
#include "hash.h"
#include "hyperv.h"
#include "log.h"
#include "pathbuf.h"
#include "store.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/*
 * Whether the fault @what, @why is new: not logged before by this mount. It
 * is remembered (when memory allows: else it is said again). fs->logged_lock
 * held.
 */
static bool first_time(struct exportfs *fs, const char *what, const struct error *why)
{
	uint64_t h = hash_text(hash_text(HASH_START, what), error_message(why));
	size_t at;

	h = h ? h : 1;
	if (fs->logged_count * 2 >= fs->logged_cap) {
		size_t cap = fs->logged_cap ? fs->logged_cap * 2 : 64;
		uint64_t *grown = calloc(cap, sizeof(*grown));

		if (!grown)
			return true;
		for (size_t i = 0; i < fs->logged_cap; i++) {
			if (!fs->logged[i])
				continue;
			for (at = fs->logged[i] & (cap - 1); grown[at]; at = (at + 1) & (cap - 1))
				;
			grown[at] = fs->logged[i];
		}
		free(fs->logged);
		fs->logged = grown;
		fs->logged_cap = cap;
	}
	for (at = h & (fs->logged_cap - 1); fs->logged[at]; at = (at + 1) & (fs->logged_cap - 1))
		if (fs->logged[at] == h)
			return false;
	fs->logged[at] = h;
	fs->logged_count++;
	return true;
}

/*
 * What cannot be exported is left out of the tree; say so when asked. What
 * fails for a transient reason is said always: the tree is not what the
 * store holds until it is planned again. A disk that cannot be read is said
 * once, asked or not: its VM is served without what derives from it.
 */
void exportfs_note(void *ctx, const char *what, enum export_omission how, const struct error *why)
{
	struct exportfs *fs = ctx;

	if (how == EXPORT_PARTITIONS) {
		/* Said when a folder's partitions are read: once for its images as they are. */
		fuse_log(FUSE_LOG_WARNING, "impexfs: %s\n", error_message(why));
	} else if (how == EXPORT_UNREADABLE) {
		bool first;

		pthread_mutex_lock(&fs->logged_lock);
		first = first_time(fs, what, why);
		pthread_mutex_unlock(&fs->logged_lock);
		if (first)
			fslog(FUSE_LOG_WARNING,
			      "disk '%s' cannot be read: %s; vms/ serves its files as "
			      "they lie, raw/ and snapshots/ leave it out",
			      what, error_message(why));
	} else if (how == EXPORT_KEPT)
		fslog(FUSE_LOG_WARNING, "'%s' is shown as it was, until it can be read again: %s",
		      what, error_message(why));
	else if (how == EXPORT_NOT_NOW)
		fslog(FUSE_LOG_WARNING, "'%s' is left out until it can be read: %s", what,
		      error_message(why));
	else if (fs->verbose)
		fslog(FUSE_LOG_WARNING, "'%s' is left out: %s", what, error_message(why));
}

/*
 * List the store anew into a lazy tree (export_plan_store_lazy()) over
 * @previous (the tree served, or NULL; the read lock held when it is): the
 * VMs it had planned are planned again now, the others listed; *@faults
 * counts the VMs that could not be planned now. @list: list the store (else
 * the tree of no VMs: its top folders).
 */
static int gen_make(struct exportfs *fs, const struct exportfs_gen *previous, bool list,
		    struct exportfs_gen **out, size_t *faults, struct error *err)
{
	struct export_node *root = NULL;
	struct store_vm *vms = NULL;
	char **names = NULL;
	size_t count = 0;
	int rc = list ? store_list(fs->store, &vms, &count, err) : 0;

	*out = NULL;
	*faults = 0;
	if (rc == 0)
		rc = export_plan_store_lazy(fs->planner, vms, count,
					    previous ? previous->root : NULL, &root, &names, faults,
					    err);
	if (rc < 0) {
		store_vms_free(vms, count);
		return rc;
	}
	if (exportfs_gen_new(root, vms, names, count, out) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	return rc;
}

/* The identity of the folders whose change means VMs or snapshots came or went. */
static uint64_t folders_stamp(const struct exportfs *fs)
{
	static const char *const watched[] = {"", "/" HYPERV_VMS_DIR, "/" HYPERV_SNAPSHOTS_DIR};
	struct pathbuf path = PATHBUF_INIT;
	uint64_t h = HASH_START;
	const char *root;

	for (size_t r = 0; (root = store_root(fs->store, r)); r++)
		for (size_t i = 0; i < sizeof(watched) / sizeof(*watched); i++) {
			struct stat st;
			uint64_t v[3];

			/* door: the store's own folders (the administrator's), their times only */
			if (pathbuf_setf(&path, "%s%s", root, watched[i]) < 0 ||
			    stat(path.buf, &st) < 0)
				memset(&st, 0, sizeof(st));
			v[0] = (uint64_t)st.st_ino;
			v[1] = (uint64_t)st.st_mtim.tv_sec;
			v[2] = (uint64_t)st.st_mtim.tv_nsec;
			h = hash_bytes(h, v, sizeof(v));
		}
	pathbuf_release(&path);
	return h;
}

int exportfs_renew_first(struct exportfs *fs, struct error *err)
{
	size_t faults = 0;
	int rc;

	/* The top folders; the thread lists the store at its first look. */
	rc = gen_make(fs, NULL, false, &fs->current, &faults, err);
	if (rc == 0)
		atomic_store(&fs->current->told, true); /* the kernel knows no other */
	return rc;
}

/* The next child of @dir shown from the @i-th on (left out ones are not), or its count. */
static size_t next_shown(const struct export_node *dir, size_t i)
{
	while (i < dir->child_count && dir->children[i]->left_out)
		i++;
	return i;
}

/* Whether folders @a and @b show the same names (files hold none). */
static bool same_names(const struct export_node *a, const struct export_node *b)
{
	size_t i = next_shown(a, 0), k = next_shown(b, 0);

	for (; i < a->child_count && k < b->child_count;
	     i = next_shown(a, i + 1), k = next_shown(b, k + 1))
		if (strcmp(a->children[i]->name, b->children[k]->name) != 0)
			return false;
	return i == a->child_count && k == b->child_count;
}

/* Whether @now shows anything other than @was did: bytes, size, time, kind, access or names
 * (a node pending shows nothing but its name). */
static bool differs(const struct export_node *was, const struct export_node *now)
{
	return was->type != now->type || was->vm_pending != now->vm_pending ||
	       was->size != now->size || was->mode != now->mode ||
	       was->uid != now->uid || was->gid != now->gid ||
	       was->mtime.tv_sec != now->mtime.tv_sec || was->mtime.tv_nsec != now->mtime.tv_nsec ||
	       export_node_identity(was) != export_node_identity(now) || !same_names(was, now);
}

/* Mark what is new or changed under @glue (of a new tree) against @old, before it is served. */
static void mark_renewed(const struct exportfs_gen *old, struct exportfs_node *glue)
{
	const struct exportfs_node *was = exportfs_gen_find(old, glue->ino);
	const struct export_node *node = glue->node;
	bool same_name = was && strcmp(was->node->name, node->name) == 0;

	glue->renewed = !same_name || differs(was->node, node);
	glue->replaced = same_name && differs(was->node, node);
	for (size_t i = 0; i < node->child_count; i++)
		mark_renewed(old, glue->children[i]);
}

/* What the kernel is told of a new tree: an inode (@parent 0) or the entry @name of @parent. */
struct notice {
	uint64_t parent, ino;
	const char *name; /* borrowed from the tree before, which outlives the telling */
};

struct notices {
	struct notice *items;
	size_t count, cap;
};

/* Room in @n for what a tree @old can give (an inode and an entry a node). 0 or -ENOMEM. */
static int notices_init(struct notices *n, const struct exportfs_gen *old)
{
	n->count = 0;
	n->cap = 1 + 2 * exportfs_node_count(old->top);
	n->items = malloc(n->cap * sizeof(*n->items));
	return n->items ? 0 : -ENOMEM;
}

static void notice(struct notices *n, uint64_t parent, uint64_t ino, const char *name)
{
	if (n->count < n->cap)
		n->items[n->count++] = (struct notice){parent, ino, name};
}

/* What the kernel must be told of what changed from @old to @now under @glue (of @old), into
 * @n (with the lock held: the trees do not change meanwhile). */
static void invalidate(struct notices *n, const struct exportfs_gen *now,
		       const struct exportfs_node *glue)
{
	const struct exportfs_node *same = exportfs_gen_find(now, glue->ino);

	if (glue->ino == FUSE_ROOT_ID && differs(glue->node, same->node))
		notice(n, 0, FUSE_ROOT_ID, NULL);
	for (size_t i = 0; i < glue->node->child_count; i++) {
		const struct exportfs_node *child = glue->children[i];
		const struct export_node *node = child->node;

		if (node->left_out)
			continue; /* never shown */
		same = exportfs_gen_find(now, child->ino);
		if (!same || same->node->type != node->type || same->node->left_out ||
		    strcmp(same->node->name, node->name) != 0) {
			notice(n, glue->ino, 0, node->name);
			continue;
		}
		if (differs(node, same->node)) {
			/* The entry too: it waits for lookups of the parent in flight. */
			notice(n, 0, child->ino, NULL);
			notice(n, glue->ino, 0, node->name);
		}
		invalidate(n, now, child);
	}
}

/* Tell the kernel @n, without the lock. */
static void tell(struct exportfs *fs, const struct notices *n)
{
	for (size_t i = 0; i < n->count; i++) {
		const struct notice *it = &n->items[i];

		if (it->name)
			fuse_lowlevel_notify_inval_entry(fs->session, it->parent, it->name,
							 strlen(it->name));
		else
			fuse_lowlevel_notify_inval_inode(fs->session, it->ino, 0, 0);
	}
}

/* Whether the mount is ending: the kernel is told nothing more (exportfs_stop()). */
static bool stopping(struct exportfs *fs)
{
	bool yes;

	pthread_mutex_lock(&fs->wake_lock);
	yes = fs->stop;
	pthread_mutex_unlock(&fs->wake_lock);
	return yes;
}

/* Tell the kernel once more what changed from the tree before: replies made from it
 * may have reached the kernel after the first telling. Then let it go. */
static void retell(struct exportfs *fs)
{
	struct exportfs_gen *previous = fs->previous;
	struct notices n;
	int rc;

	if (!previous || stopping(fs))
		return;
	/* The tree before changes no more; the one served may gain partitions. */
	pthread_rwlock_rdlock(&fs->lock);
	rc = notices_init(&n, previous);
	if (rc == 0)
		invalidate(&n, fs->current, previous->top);
	pthread_rwlock_unlock(&fs->lock);
	if (rc < 0)
		return; /* at a later look */
	fs->previous = NULL;
	tell(fs, &n);
	free(n.items);
	exportfs_gen_unref(fs, previous);
}

void exportfs_mark_stale(struct exportfs *fs)
{
	pthread_mutex_lock(&fs->ref_lock);
	fs->stale = true;
	pthread_mutex_unlock(&fs->ref_lock);
}

/*
 * Looks to skip before planning again after @failures plans in a row met
 * transient faults: 0, 1, 3, 7... at most 31 (a minute at the default 2 s),
 * so that a fault that lasts (a disk that always fails with EIO) does not
 * have the whole store planned at every look.
 */
static unsigned backoff(unsigned failures)
{
	return failures ? (1u << (failures < 5 ? failures : 5)) - 1 : 0;
}

void exportfs_revalidate(struct exportfs *fs)
{
	uint64_t folders = folders_stamp(fs);
	struct exportfs_gen *gen = NULL, *old;
	struct notices n;
	struct error err;
	size_t faults = 0;
	bool stale;
	int rc;

	retell(fs);
	if (fs->wait > 0 && folders == fs->folders) {
		fs->wait--;
		return;
	}
	pthread_mutex_lock(&fs->ref_lock);
	stale = fs->stale;
	fs->stale = false;
	pthread_mutex_unlock(&fs->ref_lock);
	if (folders == fs->folders && !stale && atomic_load(&fs->listed))
		return;
	error_clear(&err);
	/* The tree served is read (what it showed and planned, the partitions it read):
	 * nothing is added to it meanwhile. */
	pthread_rwlock_rdlock(&fs->lock);
	rc = gen_make(fs, fs->current, true, &gen, &faults, &err);
	pthread_rwlock_unlock(&fs->lock);
	fs->failures = rc < 0 || faults ? fs->failures + 1 : 0;
	fs->wait = backoff(fs->failures);
	if (rc < 0) {
		/* Keep serving what was there; try again later (sooner if the store changes). */
		fslog(FUSE_LOG_ERR, "cannot read the store%s: %s",
		      atomic_load(&fs->listed) ? " again" : "", error_message(&err));
		fs->folders = folders;
		exportfs_mark_stale(fs);
		pthread_mutex_lock(&fs->wake_lock);
		fs->list_tries++;
		pthread_cond_broadcast(&fs->listing);
		pthread_mutex_unlock(&fs->wake_lock);
		return;
	}
	if (stopping(fs)) {
		exportfs_gen_unref(fs, gen);
		return;
	}
	/* VMs shown as they were are planned again later. */
	if (faults)
		exportfs_mark_stale(fs);
	fs->folders = folders;
	if (!atomic_load(&fs->listed)) {
		/* The first listing: nothing in the top folders was served before it (what
		 * looks in them waits for it), so the kernel has nothing to be told. */
		pthread_rwlock_wrlock(&fs->lock);
		old = fs->current;
		fs->current = gen;
		atomic_store(&gen->told, true);
		pthread_rwlock_unlock(&fs->lock);
		exportfs_gen_unref(fs, old);
		pthread_mutex_lock(&fs->wake_lock);
		atomic_store(&fs->listed, true);
		pthread_cond_broadcast(&fs->listing);
		pthread_mutex_unlock(&fs->wake_lock);
		return;
	}
	pthread_rwlock_wrlock(&fs->lock);
	if (notices_init(&n, fs->current) < 0) {
		/* Keep serving what was there: nothing could be told of the change. */
		pthread_rwlock_unlock(&fs->lock);
		exportfs_gen_unref(fs, gen);
		exportfs_mark_stale(fs);
		return;
	}
	mark_renewed(fs->current, gen->top);
	old = fs->current;
	fs->current = gen;
	invalidate(&n, gen, old->top);
	pthread_rwlock_unlock(&fs->lock);
	tell(fs, &n);
	free(n.items);
	atomic_store(&gen->told, true);
	/* One not told again for want of memory (retell()) has been told once: let it go. */
	exportfs_gen_unref(fs, fs->previous);
	fs->previous = old;
	if (fs->verbose)
		fslog(FUSE_LOG_INFO, "the store changed; tree made again");
}
