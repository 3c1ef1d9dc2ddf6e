/*
 * The export mount's handlers: thin over core/export.
 *
 * The tree (a "generation") is planned from the store before mounting, and
 * planned again when the store's folders change (looked at every few
 * seconds by a thread: no inotify, which NFS and SMB lack) or when an open
 * found a source changed. The new tree replaces the old one at once; files
 * open in the old one keep reading from it until closed. Inode numbers come
 * from the paths (a hash), so they stay the same across trees and mounts.
 *
 * The partitions of the images in raw/<vm>/<state>/ are read when that
 * folder is first listed or looked in (expand()), not when the tree is
 * planned, and added to the tree served; a new tree carries over those of
 * images that did not change. What the kernel is told of a new tree is
 * worked out under the lock and told after it is released: the kernel may
 * wait for a lookup in flight before it takes the news, and that lookup may
 * be waiting for the lock to add partitions.
 */
#define FUSE_USE_VERSION 314

#include "exportfs.h"

#include "error.h"
#include "export.h"
#include "log.h"
#include "mountinfo.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* Entries and attributes change only with the store: the kernel is told when they do. */
#define EXPORTFS_MAX_REQUEST (256 * 1024)
#define TIMEOUT 3600.0

struct generation {
	struct export_node *root;
	struct export_node **table; /* open addressing by inode number */
	size_t mask;
	size_t count;  /* nodes in the table: at most half its slots */
	unsigned refs; /* the mount's, and one per open file */
	atomic_bool told; /* the kernel has been told what changed from the tree before */
};

/* An open file: the tree it was opened in stays until it is closed. */
struct handle {
	struct generation *gen;
	struct export_file *file;
	struct handle *prev, *next; /* the open files, for the end of the session */
};

static pthread_mutex_t ref_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Every open file. A lazy unmount may end the session with files open whose
 * RELEASE never comes: they are closed with the mount.
 */
static struct handle *open_files;

static void handle_link(struct handle *h)
{
	pthread_mutex_lock(&ref_lock);
	h->prev = NULL;
	h->next = open_files;
	if (open_files)
		open_files->prev = h;
	open_files = h;
	pthread_mutex_unlock(&ref_lock);
}

static void handle_unlink(struct handle *h)
{
	pthread_mutex_lock(&ref_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		open_files = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&ref_lock);
}

static void gen_free(struct generation *gen)
{
	if (!gen)
		return;
	export_node_free(gen->root);
	free(gen->table);
	free(gen);
}

static void gen_ref(struct generation *gen)
{
	pthread_mutex_lock(&ref_lock);
	gen->refs++;
	pthread_mutex_unlock(&ref_lock);
}

static void gen_unref(struct generation *gen)
{
	bool last;

	pthread_mutex_lock(&ref_lock);
	last = --gen->refs == 0;
	pthread_mutex_unlock(&ref_lock);
	if (last)
		gen_free(gen);
}

static size_t slot_of(uint64_t ino, size_t mask)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
}

static struct export_node *gen_find(const struct generation *gen, uint64_t ino)
{
	for (size_t at = slot_of(ino, gen->mask);; at = (at + 1) & gen->mask) {
		struct export_node *node = gen->table[at];

		if (!node || node->ino == ino)
			return node;
	}
}

/* FNV-1a of @path: the inode number it gets, unless another path has it. */
static uint64_t path_hash(const char *path)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * The inode number a partition of folder @parent gets, unless another has it:
 * from the folder's number and its name, so that it is the same whether the
 * partitions were read in this tree or carried over from the one before.
 */
static uint64_t partition_hash(uint64_t parent, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (int i = 0; i < 8; i++) {
		h ^= (parent >> (8 * i)) & 0xFF;
		h *= 0x100000001b3ULL;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Give @node inode number @ino, or the next free one, and put it in @gen's table (which has
 * room). */
static void place(struct generation *gen, struct export_node *node, uint64_t ino)
{
	size_t at;

	if (ino <= FUSE_ROOT_ID)
		ino += 2;
	/* Two paths of one hash: the later one takes the next free number. */
	while (gen_find(gen, ino))
		ino = ino + 1 > FUSE_ROOT_ID ? ino + 1 : FUSE_ROOT_ID + 1;
	node->ino = ino;
	for (at = slot_of(ino, gen->mask); gen->table[at]; at = (at + 1) & gen->mask)
		;
	gen->table[at] = node;
	gen->count++;
}

/* Number @node (at @path, in the folder numbered @parent) and everything under it into
 * @gen's table. */
static void number(struct generation *gen, struct export_node *node, uint64_t parent, char *path,
		   size_t len)
{
	if (len == 0) {
		node->ino = FUSE_ROOT_ID;
		gen->table[slot_of(FUSE_ROOT_ID, gen->mask)] = node;
		gen->count++;
	} else {
		place(gen, node,
		      node->source == EXPORT_SOURCE_PARTITION ? partition_hash(parent, node->name)
							      : path_hash(path));
	}
	for (size_t i = 0; i < node->child_count; i++) {
		size_t n = strlen(node->children[i]->name);

		if (len + 1 + n >= PATH_MAX)
			continue; /* deeper than any path: not reachable */
		path[len] = '/';
		memcpy(path + len + 1, node->children[i]->name, n + 1);
		number(gen, node->children[i], node->ino, path, len + 1 + n);
		path[len] = '\0';
	}
}

static size_t count_nodes(const struct export_node *node)
{
	size_t n = 1;

	for (size_t i = 0; i < node->child_count; i++)
		n += count_nodes(node->children[i]);
	return n;
}

/* FNV-1a of @text (with its NUL) over @h. */
static uint64_t hash_text(uint64_t h, const char *text)
{
	const unsigned char *p = (const unsigned char *)text;

	do {
		h ^= *p;
		h *= 0x100000001b3ULL;
	} while (*p++);
	return h;
}

/*
 * Whether the fault @what, @why is new: not logged before by this mount. It
 * is remembered (when memory allows: else it is said again). The planner's.
 */
static bool first_time(struct exportfs *fs, const char *what, const struct error *why)
{
	uint64_t h = hash_text(hash_text(0xcbf29ce484222325ULL, what), error_message(why));
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
static void note_omitted(void *ctx, const char *what, enum export_omission how,
			 const struct error *why)
{
	struct exportfs *fs = ctx;

	if (how == EXPORT_PARTITIONS) {
		/* Said when a folder's partitions are read: once for its images as they are. */
		fuse_log(FUSE_LOG_WARNING, "impexfs: %s\n", error_message(why));
	} else if (how == EXPORT_UNREADABLE) {
		if (first_time(fs, what, why))
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
 * Plan the store's tree anew, over @previous (the tree served, or NULL);
 * *@faults counts the VMs that could not be planned now.
 */
static int gen_make(struct exportfs *fs, const struct generation *previous, struct generation **out,
		    size_t *faults, struct error *err)
{
	struct generation *gen = calloc(1, sizeof(*gen));
	struct store_vm *vms = NULL;
	size_t count = 0, cap = 16;
	char *path = malloc(PATH_MAX);
	int rc = gen && path ? store_list(fs->store, &vms, &count, err)
			     : error_set(err, ENOMEM, "out of memory");

	*faults = 0;
	if (rc == 0)
		rc = export_plan_store(fs->planner, vms, count, previous ? previous->root : NULL,
				       &gen->root, faults, err);
	store_vms_free(vms, count);
	if (rc == 0) {
		size_t nodes = count_nodes(gen->root);

		while (cap < nodes * 2)
			cap *= 2;
		gen->mask = cap - 1;
		gen->table = calloc(cap, sizeof(*gen->table));
		if (!gen->table)
			rc = error_set(err, ENOMEM, "out of memory");
	}
	if (rc == 0) {
		path[0] = '\0';
		number(gen, gen->root, 0, path, 0);
		gen->refs = 1;
		*out = gen;
	} else {
		gen_free(gen);
	}
	free(path);
	return rc;
}

/* The identity of the folders whose change means VMs or snapshots came or went. */
static uint64_t folders_stamp(const struct exportfs *fs)
{
	static const char *const watched[] = {"", "/Virtual Machines", "/Snapshots"};
	uint64_t h = 0xcbf29ce484222325ULL;
	const char *root;

	for (size_t r = 0; (root = store_root(fs->store, r)); r++)
		for (size_t i = 0; i < sizeof(watched) / sizeof(*watched); i++) {
			char path[PATH_MAX];
			struct stat st;

			snprintf(path, sizeof(path), "%s%s", root, watched[i]);
			/* door: the store's own folders (the administrator's), their times only */
			if (stat(path, &st) < 0)
				memset(&st, 0, sizeof(st));
			h = (h ^ (uint64_t)st.st_ino) * 0x100000001b3ULL;
			h = (h ^ (uint64_t)st.st_mtim.tv_sec) * 0x100000001b3ULL;
			h = (h ^ (uint64_t)st.st_mtim.tv_nsec) * 0x100000001b3ULL;
		}
	return h;
}

int exportfs_init(struct exportfs *fs, struct error *err)
{
	struct export_notes notes = {note_omitted, fs};
	pthread_condattr_t clock;
	size_t faults = 0;
	int rc;

	pthread_rwlock_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->expand_lock, NULL);
	pthread_mutex_init(&fs->wake_lock, NULL);
	/* Timed waits on the monotonic clock: a change of the time of day stalls none. */
	pthread_condattr_init(&clock);
	pthread_condattr_setclock(&clock, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->wake, &clock);
	pthread_condattr_destroy(&clock);
	fs->folders = folders_stamp(fs);
	rc = export_planner_new(fs->store, &fs->settings, &notes, &fs->planner, err);
	if (rc == 0)
		rc = gen_make(fs, NULL, &fs->current, &faults, err);
	/* What could not be read now is tried again at the next looks. */
	fs->stale = faults > 0;
	if (rc == 0)
		atomic_store(&fs->current->told, true); /* the kernel knows no other */
	return rc;
}

/* Whether folders @a and @b hold the same names (files hold none). */
static bool same_names(const struct export_node *a, const struct export_node *b)
{
	if (a->child_count != b->child_count)
		return false;
	for (size_t i = 0; i < a->child_count; i++)
		if (strcmp(a->children[i]->name, b->children[i]->name) != 0)
			return false;
	return true;
}

/* Whether @now shows anything other than @was did: bytes, size, time, kind, access or names. */
static bool differs(const struct export_node *was, const struct export_node *now)
{
	return was->type != now->type || was->size != now->size || was->mode != now->mode ||
	       was->uid != now->uid || was->gid != now->gid ||
	       was->mtime.tv_sec != now->mtime.tv_sec || was->mtime.tv_nsec != now->mtime.tv_nsec ||
	       export_node_identity(was) != export_node_identity(now) || !same_names(was, now);
}

/* Mark what is new or changed in @gen against @old, before @gen is served. */
static void mark_renewed(const struct generation *old, struct export_node *node)
{
	const struct export_node *was = gen_find(old, node->ino);

	node->renewed = !was || strcmp(was->name, node->name) != 0 || differs(was, node);
	node->replaced = was && strcmp(was->name, node->name) == 0 && differs(was, node);
	for (size_t i = 0; i < node->child_count; i++)
		mark_renewed(old, node->children[i]);
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
static int notices_init(struct notices *n, const struct export_node *old)
{
	n->count = 0;
	n->cap = 1 + 2 * count_nodes(old);
	n->items = malloc(n->cap * sizeof(*n->items));
	return n->items ? 0 : -ENOMEM;
}

static void notice(struct notices *n, uint64_t parent, uint64_t ino, const char *name)
{
	if (n->count < n->cap)
		n->items[n->count++] = (struct notice){parent, ino, name};
}

/* What the kernel must be told of what changed from @old to @now under @node (of @old), into
 * @n (with the lock held: the trees do not change meanwhile). */
static void invalidate(struct notices *n, const struct generation *now, struct export_node *node)
{
	const struct export_node *same = gen_find(now, node->ino);

	if (node->ino == FUSE_ROOT_ID && differs(node, same))
		notice(n, 0, FUSE_ROOT_ID, NULL);
	for (size_t i = 0; i < node->child_count; i++) {
		struct export_node *child = node->children[i];

		same = gen_find(now, child->ino);
		if (!same || same->type != child->type || strcmp(same->name, child->name) != 0) {
			notice(n, node->ino, 0, child->name);
			continue;
		}
		if (differs(child, same)) {
			/* The entry too: it waits for lookups of the parent in flight. */
			notice(n, 0, child->ino, NULL);
			notice(n, node->ino, 0, child->name);
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
	struct generation *previous = fs->previous;
	struct notices n;
	int rc;

	if (!previous || stopping(fs))
		return;
	/* The tree before changes no more; the one served may gain partitions. */
	pthread_rwlock_rdlock(&fs->lock);
	rc = notices_init(&n, previous->root);
	if (rc == 0)
		invalidate(&n, fs->current, previous->root);
	pthread_rwlock_unlock(&fs->lock);
	if (rc < 0)
		return; /* at a later look */
	fs->previous = NULL;
	tell(fs, &n);
	free(n.items);
	gen_unref(previous);
}

/* Ask for the tree to be made again at the next look (a file was found changed or gone). */
static void mark_stale(struct exportfs *fs)
{
	pthread_mutex_lock(&ref_lock);
	fs->stale = true;
	pthread_mutex_unlock(&ref_lock);
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

/* Plan the tree again if the store's folders changed (or a file did); swap it in. */
static void revalidate(struct exportfs *fs)
{
	uint64_t folders = folders_stamp(fs);
	struct generation *gen = NULL, *old;
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
	pthread_mutex_lock(&ref_lock);
	stale = fs->stale;
	fs->stale = false;
	pthread_mutex_unlock(&ref_lock);
	if (folders == fs->folders && !stale)
		return;
	error_clear(&err);
	/* The tree served is read (what it showed, the partitions it read): none are added
	 * to it meanwhile. */
	pthread_rwlock_rdlock(&fs->lock);
	rc = gen_make(fs, fs->current, &gen, &faults, &err);
	pthread_rwlock_unlock(&fs->lock);
	fs->failures = rc < 0 || faults ? fs->failures + 1 : 0;
	fs->wait = backoff(fs->failures);
	if (rc < 0) {
		/* Keep serving what was there; try again later (sooner if the store changes). */
		fslog(FUSE_LOG_ERR, "cannot read the store again: %s", error_message(&err));
		fs->folders = folders;
		mark_stale(fs);
		return;
	}
	if (stopping(fs)) {
		gen_unref(gen);
		return;
	}
	/* VMs shown as they were are planned again later. */
	if (faults)
		mark_stale(fs);
	fs->folders = folders;
	pthread_rwlock_wrlock(&fs->lock);
	if (notices_init(&n, fs->current->root) < 0) {
		/* Keep serving what was there: nothing could be told of the change. */
		pthread_rwlock_unlock(&fs->lock);
		gen_unref(gen);
		mark_stale(fs);
		return;
	}
	mark_renewed(fs->current, gen->root);
	old = fs->current;
	fs->current = gen;
	invalidate(&n, gen, old->root);
	pthread_rwlock_unlock(&fs->lock);
	tell(fs, &n);
	free(n.items);
	atomic_store(&gen->told, true);
	/* One not told again for want of memory (retell()) has been told once: let it go. */
	if (fs->previous)
		gen_unref(fs->previous);
	fs->previous = old;
	if (fs->verbose)
		fslog(FUSE_LOG_INFO, "the store changed; tree made again");
}

/*
 * Raise the mount's readahead: the kernel's 128 KiB halves FUSE's throughput.
 * Once, at the first lookup (no file is read before one): the kernel sets the
 * readahead when it reads the reply to FUSE_INIT, and sends no other request
 * before, so what is written here stays.
 */
static void raise_readahead(struct exportfs *fs)
{
	struct mountinfo_entry mount;
	char path[128], value[32];
	int fd, n;

	if (!fs->readahead_kb || atomic_exchange(&fs->readahead_done, true) ||
	    mountinfo_find(fs->mountpoint, &mount) < 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(mount.device),
		 minor(mount.device));
	fd = open(path, O_WRONLY | O_CLOEXEC); /* door: /sys, the kernel's */
	if (fd < 0)
		return; /* not root: the kernel's default stays */
	n = snprintf(value, sizeof(value), "%u\n", fs->readahead_kb);
	if (write(fd, value, (size_t)n) != n && fs->verbose)
		fslog(FUSE_LOG_WARNING, "cannot raise readahead");
	close(fd);
}

static void *revalidating(void *data)
{
	struct exportfs *fs = data;

	pthread_mutex_lock(&fs->wake_lock);
	while (!fs->stop) {
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += fs->revalidate;
		pthread_cond_timedwait(&fs->wake, &fs->wake_lock, &until);
		if (fs->stop)
			break;
		pthread_mutex_unlock(&fs->wake_lock);
		revalidate(fs);
		pthread_mutex_lock(&fs->wake_lock);
	}
	fs->ended = true;
	pthread_cond_broadcast(&fs->wake);
	pthread_mutex_unlock(&fs->wake_lock);
	return NULL;
}

int exportfs_start(struct exportfs *fs, struct fuse_session *se, const char *mountpoint)
{
	fs->session = se;
	fs->mountpoint = mountpoint;
	if (pthread_create(&fs->thread, NULL, revalidating, fs) != 0)
		return -EAGAIN;
	fs->thread_started = true;
	return 0;
}

bool exportfs_stop(struct exportfs *fs, int wait_ms)
{
	struct timespec until;
	bool ended;

	if (!fs->thread_started)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&fs->wake_lock);
	fs->stop = true;
	pthread_cond_broadcast(&fs->wake);
	while (!fs->ended) {
		if (wait_ms < 0)
			pthread_cond_wait(&fs->wake, &fs->wake_lock);
		else if (pthread_cond_timedwait(&fs->wake, &fs->wake_lock, &until) == ETIMEDOUT)
			break;
	}
	ended = fs->ended;
	pthread_mutex_unlock(&fs->wake_lock);
	if (!ended)
		return false;
	pthread_join(fs->thread, NULL);
	fs->thread_started = false;
	return true;
}

void exportfs_release(struct exportfs *fs)
{
	exportfs_stop(fs, -1);
	while (open_files) {
		struct handle *h = open_files;

		handle_unlink(h);
		export_close(h->file);
		gen_unref(h->gen);
		free(h);
	}
	if (fs->previous)
		gen_unref(fs->previous);
	fs->previous = NULL;
	if (fs->current)
		gen_unref(fs->current);
	fs->current = NULL;
	export_planner_free(fs->planner);
	fs->planner = NULL;
	free(fs->logged);
	fs->logged = NULL;
	fs->logged_count = fs->logged_cap = 0;
}

/* ---- the handlers ---- */

static void fill_attr(struct exportfs *fs, const struct export_node *node, struct stat *st)
{
	/* Read-only: no write bits; and never setuid, setgid or sticky. */
	mode_t mode = node->mode & 0555 & ~fs->umask;

	memset(st, 0, sizeof(*st));
	st->st_ino = node->ino;
	st->st_uid = fs->set_uid ? fs->uid : node->uid;
	st->st_gid = fs->set_gid ? fs->gid : node->gid;
	st->st_mtim = node->mtime;
	st->st_ctim = node->mtime;
	st->st_atim = node->mtime;
	st->st_blksize = 1 << 20;
	if (node->type == EXPORT_DIR) {
		st->st_mode = S_IFDIR | mode;
		st->st_nlink = 2;
	} else if (node->type == EXPORT_LINK) {
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
	} else {
		st->st_mode = S_IFREG | mode;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
		/* What the source really holds: cp keeps a sparse copy sparse. */
		st->st_blocks = (blkcnt_t)((node->allocated + 511) / 512);
	}
}

/*
 * The node @ino of the current tree, with the read lock held (release with
 * done()). Replies made from the tree are sent before the lock is released:
 * a reply from a tree being replaced then reaches the kernel before the news
 * of what changed, which would otherwise be overtaken and lost.
 */
static struct export_node *node_of(struct exportfs *fs, fuse_ino_t ino)
{
	pthread_rwlock_rdlock(&fs->lock);
	return gen_find(fs->current, ino);
}

static void done(struct exportfs *fs)
{
	pthread_rwlock_unlock(&fs->lock);
}

/*
 * Give @gen (the tree served; the write lock held) the partitions @parts that
 * export_read_partitions() read of its folder @dir: numbered, in its table
 * (grown as needed), new to the kernel (renewed: it may keep pages of another
 * file that had the number). Returns 0, or -ENOMEM with nothing changed
 * (@parts freed either way).
 */
static int gen_adopt(struct generation *gen, struct export_node *dir, struct export_node *parts)
{
	size_t need = 2 * (gen->count + parts->child_count), cap = gen->mask + 1;

	if (need > cap) {
		struct export_node **table, **old = gen->table;
		size_t old_cap = cap;

		while (cap < need)
			cap *= 2;
		table = calloc(cap, sizeof(*table));
		if (!table) {
			export_node_free(parts);
			return -ENOMEM;
		}
		gen->table = table;
		gen->mask = cap - 1;
		gen->count = 0;
		for (size_t i = 0; i < old_cap; i++) {
			size_t at;

			if (!old[i])
				continue;
			for (at = slot_of(old[i]->ino, gen->mask); table[at];
			     at = (at + 1) & gen->mask)
				;
			table[at] = old[i];
			gen->count++;
		}
		free(old);
	}
	if (export_add_partitions(dir, parts) < 0) {
		export_node_free(parts);
		return -ENOMEM;
	}
	/* The new ones are those not numbered yet. */
	for (size_t i = 0; i < dir->child_count; i++) {
		struct export_node *child = dir->children[i];

		if (child->source != EXPORT_SOURCE_PARTITION || child->ino)
			continue;
		place(gen, child, partition_hash(dir->ino, child->name));
		child->renewed = true;
	}
	return 0;
}

/*
 * Before folder @ino is listed or looked in: if it is a folder of raw/ states
 * whose images' partitions are not read yet, read them (without the tree's
 * lock, one folder at a time under expand_lock) and add them to the tree
 * served (under the write lock), again if a new tree came meanwhile. Returns
 * 0, or a positive errno to reply with (a source changed: EIO, the tree made
 * again at the next look; out of memory or descriptors: that errno).
 */
static int expand(struct exportfs *fs, fuse_ino_t ino)
{
	struct export_notes notes = {note_omitted, fs};

	for (int tries = 0; tries < 4; tries++) {
		struct export_node *dir = node_of(fs, ino), *parts = NULL;
		struct generation *gen;
		struct error err;
		int rc = 0;

		if (!dir || !dir->partitions_pending) {
			done(fs);
			return 0;
		}
		gen = fs->current;
		gen_ref(gen);
		done(fs);
		pthread_mutex_lock(&fs->expand_lock);
		/* Another thread may have read them meanwhile. */
		if (dir->partitions_pending) {
			error_clear(&err);
			rc = export_read_partitions(dir, &notes, &parts, &err);
			if (rc < 0) {
				fuse_log(FUSE_LOG_ERR, "impexfs: %s\n", error_message(&err));
				if (!error_is_transient(rc) || rc == -EIO)
					mark_stale(fs);
			} else {
				pthread_rwlock_wrlock(&fs->lock);
				if (fs->current == gen)
					rc = gen_adopt(gen, dir, parts);
				else
					export_node_free(parts); /* a new tree: read there */
				pthread_rwlock_unlock(&fs->lock);
			}
		}
		pthread_mutex_unlock(&fs->expand_lock);
		gen_unref(gen);
		if (rc < 0)
			return rc == -ESTALE || !error_is_transient(rc) ? EIO : -rc;
	}
	return 0;
}

static void exportfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *dir, *child;
	struct fuse_entry_param e;
	int rc;

	raise_readahead(fs);
	rc = expand(fs, parent);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	dir = node_of(fs, parent);
	if (!dir || dir->type != EXPORT_DIR) {
		done(fs);
		fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
		return;
	}
	child = export_child(dir, name);
	if (!child) {
		done(fs);
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = child->ino;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fill_attr(fs, child, &e.attr);
	fuse_reply_entry(req, &e);
	done(fs);
}

static void exportfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *node = node_of(fs, ino);
	struct stat st;

	(void)fi;
	if (!node) {
		done(fs);
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fs, node, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
	done(fs);
}

static void exportfs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *node = node_of(fs, ino);
	char target[PATH_MAX];

	if (!node || node->type != EXPORT_LINK) {
		done(fs);
		fuse_reply_err(req, node ? EINVAL : ENOENT);
		return;
	}
	snprintf(target, sizeof(target), "%s", node->path);
	fuse_reply_readlink(req, target);
	done(fs);
}

/* Listings always come with attributes: a find or ls -l then needs no lookups. */
static void exportfs_op_init(void *data, struct fuse_conn_info *conn)
{
	(void)data;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/*
	 * The kernel's request size limit (max_pages) follows max_write, and it
	 * gives every READDIR a buffer that large: with libfuse's 1 MiB, a find of
	 * a big store spends most of its time allocating them. 256 KiB halves the
	 * time of such a find and reads as fast as 1 MiB with readahead raised
	 * (docs/PERFORMANCE.md). Nothing is written through this mount.
	 */
	conn->max_write = EXPORTFS_MAX_REQUEST;
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
}

/*
 * No OPENDIR, no RELEASEDIR: a folder is listed with two requests, not four
 * (a find of a big store takes half the time). The kernel then keeps
 * listings as it keeps files' pages; it is told when a folder's names change.
 */
static void exportfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

/* READDIR, and READDIRPLUS (@plus) whose entries spare the kernel a lookup each. */
static void list(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct export_node *dir;
	char *buf = malloc(size);
	size_t used = 0;

	int rc = buf ? expand(fs, ino) : ENOMEM;

	if (rc) {
		free(buf);
		fuse_reply_err(req, rc);
		return;
	}
	dir = node_of(fs, ino);
	if (!dir || dir->type != EXPORT_DIR) {
		done(fs);
		free(buf);
		fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
		return;
	}
	/* Offsets: 0 ".", 1 "..", then the children from 2. */
	for (off_t i = off; i < (off_t)dir->child_count + 2; i++) {
		const struct export_node *child = i < 2 ? dir : dir->children[i - 2];
		const char *name = i == 0 ? "." : i == 1 ? ".." : child->name;
		struct fuse_entry_param e;
		size_t len;

		memset(&e, 0, sizeof(e));
		fill_attr(fs, child, &e.attr);
		if (plus && i >= 2) {
			e.ino = child->ino;
			e.attr_timeout = TIMEOUT;
			e.entry_timeout = TIMEOUT;
		}
		len = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, i + 1)
			   : fuse_add_direntry(req, buf + used, size - used, name, &e.attr, i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	done(fs);
	free(buf);
}

static void exportfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
				struct fuse_file_info *fi)
{
	(void)fi;
	list(req, ino, size, off, false);
}

static void exportfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
				    struct fuse_file_info *fi)
{
	(void)fi;
	list(req, ino, size, off, true);
}

static void exportfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct exportfs *fs = fuse_req_userdata(req);
	struct handle *h = calloc(1, sizeof(*h));
	struct export_node *node;
	struct error err;
	int rc;

	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	node = node_of(fs, ino);
	if (!node || node->type != EXPORT_FILE || (fi->flags & O_ACCMODE) != O_RDONLY) {
		done(fs);
		free(h);
		fuse_reply_err(req, !node ? ENOENT : node->type == EXPORT_DIR ? EISDIR : EROFS);
		return;
	}
	/*
	 * A file that replaced one of its name, before the kernel is told: the kernel may still
	 * hold the size of the one replaced, and its reads would give the new bytes at the old
	 * size. Such an open fails as a read of a changed file does.
	 */
	if (node->replaced && !atomic_load(&fs->current->told)) {
		done(fs);
		free(h);
		fuse_reply_err(req, EIO);
		return;
	}
	h->gen = fs->current;
	gen_ref(h->gen);
	done(fs);
	/* The sources stay open for the reads: no open per request. */
	error_clear(&err);
	rc = export_open(node, &h->file, &err);
	if (rc < 0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		/* A source changed or gone: the tree is made again at the next look. Out of
		 * descriptors or memory, the tree is as right as it was: the reader gets
		 * EMFILE (or ENOMEM...), the tree does not change. */
		if (!error_is_transient(rc) || rc == -EIO)
			mark_stale(fs);
		gen_unref(h->gen);
		free(h);
		fuse_reply_err(req, rc == -ESTALE ? EIO : -rc);
		return;
	}
	handle_link(h);
	fi->fh = (uint64_t)(uintptr_t)h;
	/* The kernel keeps what it has of a file the new tree did not change. */
	fi->keep_cache = !node->renewed;
	fuse_reply_open(req, fi);
}

static void exportfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)ino;
	handle_unlink(h);
	export_close(h->file);
	gen_unref(h->gen);
	free(h);
	fuse_reply_err(req, 0);
}

static void exportfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			     struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	uint64_t file_size = export_file_node(h->file)->size;
	struct error err;
	char *buf;

	(void)ino;
	if ((uint64_t)off >= file_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > file_size - (uint64_t)off)
		size = (size_t)(file_size - (uint64_t)off);
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	error_clear(&err);
	if (export_read_at(h->file, buf, size, (uint64_t)off, &err) < 0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		if (err.code == ESTALE)
			mark_stale(fuse_req_userdata(req));
		/* ESTALE would make the kernel retry the lookup: a changed source is EIO. */
		fuse_reply_err(req, err.code && err.code != ESTALE ? err.code : EIO);
	} else {
		fuse_reply_buf(req, buf, size);
	}
	free(buf);
}

static void exportfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			      struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct error err;
	int64_t at;

	(void)ino;
	if ((whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	error_clear(&err);
	at = export_seek(h->file, (uint64_t)off, whence == SEEK_DATA, &err);
	if (at < 0)
		fuse_reply_err(req, (int)-at);
	else
		fuse_reply_lseek(req, (off_t)at);
}

const struct fuse_lowlevel_ops exportfs_ops = {
	.init = exportfs_op_init,
	.lookup = exportfs_op_lookup,
	.getattr = exportfs_op_getattr,
	.readlink = exportfs_op_readlink,
	.opendir = exportfs_op_opendir,
	.readdir = exportfs_op_readdir,
	.readdirplus = exportfs_op_readdirplus,
	.open = exportfs_op_open,
	.read = exportfs_op_read,
	.release = exportfs_op_release,
	.lseek = exportfs_op_lseek,
};
