/*
 * The import mount (impexfs -o import STORE MOUNTPOINT), on libfuse's
 * path-based API.
 *
 * Each folder made at the root is one import. Its files are written once,
 * straight into a folder of its own in the daemon's staging folder of the
 * target VHD root (core/staging.h: root-only, so no user reaches it but
 * through the mount; this process holds an exclusive flock on the import's
 * folder), so that an import is an export folder on the targets' file
 * system. Every name is resolved beneath the import's folder descriptor,
 * never through a link (core/beneath.h). When nothing of
 * it is open for writing and it has been quiet for the settle time, it is
 * checked: its settings (the defaults, the mount's, its own document) and
 * Compare's report. With no error it is registered by core/import_run,
 * which links the files into place (IMPORT_ADOPT), the VM's configuration
 * last. From then on the folder shows what it held, read-only, until
 * unmount. A killed mount leaves a folder no lock holds, which the next
 * mount (or import) removes with what a killed registration left.
 */
#define FUSE_USE_VERSION 314

#include "importfs.h"

#include "asuser.h"
#include "beneath.h"
#include "chain.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "import.h"
#include "json.h"
#include "log.h"
#include "pathmap.h"
#include "staging.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

enum state { COPYING, WAITING, REGISTERING, REGISTERED, FAILED };

static const char *const state_names[] = {"copying", "waiting", "registering", "registered",
					  "failed"};

struct issue {
	char *id, *file, *message;
	bool error;
};

/* A name of a registered or failed import, as it was: what the folder shows from then on. */
struct entry {
	char *rel; /* "" for the folder, else "/a/b" */
	struct stat st; /* changed by the copy tool's last steps: under fs->mu */
	size_t first_child, child_count; /* a folder's entries, side by side in the view */
};

/*
 * One import. Guards: "mu" is fs->mu; "rw alone" means written only with
 * rw held exclusively (so read under rw shared); "set once" fields are
 * written before the import is listed and only read after.
 */
struct imp {
	char *name;		    /* the folder at the mount's root (set once) */
	char tag[STAGING_NAME_MAX]; /* its folder's name in the staging folder (set once) */
	char staging[PATH_MAX];	    /* that folder's path, for the core and messages (set once) */
	int dirfd;		    /* that folder, holding its flock; -1 once done (rw alone) */
	uid_t owner;		    /* who made the import, or was given it by chown (mu) */
	pthread_rwlock_t rw;	    /* operations share it; a change of state takes it alone */
	enum state state;	    /* mu */
	bool gone;		    /* removed by rmdir (mu, with rw shared) */
	atomic_int writers;	    /* files open for writing */
	atomic_int failing;	    /* an errno that fails the import, 0 */
	atomic_uint_fast64_t bytes, files;
	atomic_uint_fast64_t last_ns; /* the last change, CLOCK_MONOTONIC */
	atomic_bool dirty;	      /* changed since the last check */
	int fail_errno;		      /* mu */
	struct issue *issues;	      /* of the last check, or the failure (mu) */
	size_t issue_count;	      /* mu */
	struct issue *closes; /* configurations or documents that failed their close() (mu) */
	size_t close_count;   /* mu */
	char vm_id[37];	      /* mu */
	char *vm_name;	      /* mu */
	struct entry *view;   /* once registering, registered or failed (rw alone; st: mu) */
	size_t view_count;    /* rw alone */
	size_t *view_index;   /* open addressing on rel's hash: positions + 1, 0 empty (rw alone) */
	size_t view_slots;    /* rw alone */
	double settle_to_commit; /* seconds from the last change to the commit (mu) */
	uint64_t checked_ns;	 /* the last check (the checker thread's own) */
};

/* The store's roots at most: STORE and roots=. */
#define IMPORTFS_MAX_ROOTS 16

/* How often a waiting import is checked again though nothing in it changed. */
#define RECHECK_NS (5ull * 1000000000u)

struct importfs {
	const struct importfs_options *o;
	struct store *store;
	struct import_settings given[2]; /* the mount's: the settings file, then the options */
	const char *given_names[2];
	size_t given_count;
	char staging_root[PATH_MAX]; /* the target VHD root (a real path) */
	char staging_path[PATH_MAX]; /* its staging folder */
	int staging_fd;		     /* that folder */
	char store_root[PATH_MAX];
	/* What the daemon reads as itself, beneath each, no link followed: the store's roots and the
	 * mount's target roots; then the source folders the mount allows root-made documents. */
	const char *trusted[IMPORTFS_MAX_ROOTS * 2 + 3];
	int trusted_fds[IMPORTFS_MAX_ROOTS * 2 + 3];
	size_t written_count;		   /* the first ones: the store's roots and targets */
	size_t trusted_count, own_trusted; /* all, and those but the sources= folders */
	pthread_mutex_t mu;
	pthread_cond_t wake;
	struct imp **imps; /* mu */
	size_t count;	   /* mu */
	bool stop;	   /* mu */
	pthread_t checker;
	bool checker_running;
	struct timespec started;
};

struct handle {
	struct imp *imp; /* NULL for the status file */
	int fd;
	bool writer, written;
	enum { PLAIN, CONFIG, SETTINGS } kind;
	char *rel;
	char *text; /* the status file's bytes */
	size_t len;
};

static struct importfs *fs_of(void)
{
	return fuse_get_context()->private_data;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Something changed in @imp: its check waits for quiet again. */
static void touch(struct imp *imp)
{
	atomic_store(&imp->last_ns, now_ns());
	atomic_store(&imp->dirty, true);
}

/* ---- issues ---- */

static void issue_clear(struct issue *issue)
{
	free(issue->id);
	free(issue->file);
	free(issue->message);
}

static void issues_free(struct issue *issues, size_t count)
{
	for (size_t i = 0; i < count; i++)
		issue_clear(&issues[i]);
	free(issues);
}

/* @text with the import's folder written as the mount shows it (a new string). */
static char *shown(const struct importfs *fs, const struct imp *imp, const char *text)
{
	size_t n = strlen(imp->staging);
	char *out = NULL, *hit;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	while ((hit = strstr(text, imp->staging))) {
		fwrite(text, 1, (size_t)(hit - text), f);
		fprintf(f, "%s/%s", fs->o->mountpoint, imp->name);
		text = hit + n;
	}
	fputs(text, f);
	fclose(f);
	return out;
}

static void add_issue(const struct importfs *fs, const struct imp *imp, struct issue **list,
		      size_t *count, const char *id, bool error, const char *file,
		      const char *message)
{
	struct issue *grown = realloc(*list, (*count + 1) * sizeof(*grown));

	if (!grown)
		return;
	*list = grown;
	grown[*count] = (struct issue){strdup(id), shown(fs, imp, file ? file : ""),
				       shown(fs, imp, message), error};
	(*count)++;
}

/* Forget the close() failure of @rel (written again whole, or gone). */
static void forget_close(struct importfs *fs, struct imp *imp, const char *rel)
{
	char file[PATH_MAX];

	snprintf(file, sizeof(file), "%s/%s%s", fs->o->mountpoint, imp->name, rel);
	pthread_mutex_lock(&fs->mu);
	for (size_t i = 0; i < imp->close_count;)
		if (strcmp(imp->closes[i].file, file) == 0) {
			issue_clear(&imp->closes[i]);
			imp->closes[i] = imp->closes[--imp->close_count];
		} else {
			i++;
		}
	pthread_mutex_unlock(&fs->mu);
}

/* ---- where a path leads ---- */

enum kind { K_ROOT, K_STATUS, K_IMPORT, K_NEW, K_NONE };

struct where {
	enum kind kind;
	struct imp *imp;
	const char *rel; /* in the import: "" or "/a/b" */
	const char *at;	 /* the same beneath its folder: "" or "a/b" */
	char name[NAME_MAX + 1]; /* K_NEW: the folder to make */
};

static struct imp *find_imp(struct importfs *fs, const char *name, size_t len)
{
	for (size_t i = 0; i < fs->count; i++)
		if (!fs->imps[i]->gone && strlen(fs->imps[i]->name) == len &&
		    memcmp(fs->imps[i]->name, name, len) == 0)
			return fs->imps[i];
	return NULL;
}

static int resolve(struct importfs *fs, const char *path, struct where *w)
{
	const char *name, *slash;
	size_t len;

	memset(w, 0, sizeof(*w));
	if (!path || path[0] != '/')
		return -ENOENT;
	name = path + 1;
	if (!*name) {
		w->kind = K_ROOT;
		return 0;
	}
	slash = strchr(name, '/');
	len = slash ? (size_t)(slash - name) : strlen(name);
	if (!slash && strcmp(name, IMPORTFS_STATUS) == 0) {
		w->kind = K_STATUS;
		return 0;
	}
	pthread_mutex_lock(&fs->mu);
	w->imp = find_imp(fs, name, len);
	pthread_mutex_unlock(&fs->mu);
	if (!w->imp) {
		if (slash || len > NAME_MAX)
			return slash ? -ENOENT : -ENAMETOOLONG;
		w->kind = K_NEW;
		memcpy(w->name, name, len + 1);
		return 0;
	}
	w->kind = K_IMPORT;
	w->rel = slash ? slash : "";
	w->at = slash ? slash + 1 : "";
	return strlen(w->rel) >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Whether @imp still takes changes; the caller holds its lock (shared). */
static bool live(struct importfs *fs, struct imp *imp)
{
	bool yes;

	pthread_mutex_lock(&fs->mu);
	yes = imp->state == COPYING || imp->state == WAITING;
	pthread_mutex_unlock(&fs->mu);
	return yes;
}

/* The error for a change to @imp, which no longer takes any. */
static int refused(struct importfs *fs, struct imp *imp)
{
	int rc;

	pthread_mutex_lock(&fs->mu);
	rc = imp->state == FAILED ? -imp->fail_errno : imp->state == REGISTERING ? -EBUSY : -EROFS;
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

/* FNV-1a of @text. */
static size_t hash_of(const char *text)
{
	uint64_t h = 14695981039346656037ull;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)h;
}

/* The view's entry for @rel, or NULL: by its hash, whatever the import's size. */
static struct entry *view_entry(const struct imp *imp, const char *rel)
{
	if (!imp->view_slots)
		return NULL;
	for (size_t at = hash_of(rel) & (imp->view_slots - 1);; at = (at + 1) & (imp->view_slots - 1)) {
		size_t i = imp->view_index[at];

		if (!i)
			return NULL;
		if (strcmp(imp->view[i - 1].rel, rel) == 0)
			return &imp->view[i - 1];
	}
}

/*
 * Resolve @path and, for a path in an import, take the import's lock
 * (shared): the caller ends with done().
 */
static int begin(struct importfs *fs, const char *path, struct where *w)
{
	int rc = resolve(fs, path, w);

	if (rc == 0 && w->kind == K_IMPORT)
		pthread_rwlock_rdlock(&w->imp->rw);
	return rc;
}

static int done(struct where *w, int rc)
{
	if (w->kind == K_IMPORT)
		pthread_rwlock_unlock(&w->imp->rw);
	return rc;
}

/* ---- what a file is ---- */

/* @name without rsync's temporary dressing ".<name>.XXXXXX", in @out. */
static const char *final_name(const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);

	if (n > 8 && name[0] == '.' && name[n - 7] == '.') {
		bool dressed = true;

		for (size_t i = n - 6; i < n; i++)
			dressed = dressed && ((name[i] >= 'a' && name[i] <= 'z') ||
					      (name[i] >= 'A' && name[i] <= 'Z') ||
					      (name[i] >= '0' && name[i] <= '9'));
		if (dressed && n - 8 < cap) {
			memcpy(out, name + 1, n - 8);
			out[n - 8] = '\0';
			return out;
		}
	}
	return name;
}

/* A configuration (an .xml under "Virtual Machines" or "Snapshots"), the import's settings
 * document, or data. */
static int kind_of(const char *rel)
{
	const char *base = strrchr(rel, '/');
	char buf[NAME_MAX + 1];
	const char *name = final_name(base ? base + 1 : rel, buf, sizeof(buf));
	size_t n = strlen(name);

	if (base == rel && strcmp(name, IMPORTFS_SETTINGS) == 0)
		return SETTINGS;
	if (n > 4 && strcasecmp(name + n - 4, ".xml") == 0 &&
	    (strstr(rel, "/Virtual Machines/") || strstr(rel, "/Snapshots/")))
		return CONFIG;
	return PLAIN;
}

/* ---- the status file ---- */

/*
 * The state @imp is shown in; fs->mu is held. One that takes changes and is being
 * written, or has changed since its last check, is copying, whatever that check said:
 * a folder still arriving lacks what has not arrived yet, and a script that waits for
 * the imports to settle must not take the last check for the end.
 */
static enum state shown_state(const struct imp *imp)
{
	if ((imp->state == COPYING || imp->state == WAITING) &&
	    (atomic_load(&imp->writers) > 0 || atomic_load(&imp->dirty)))
		return COPYING;
	return imp->state;
}

/* The issues of @imp (of its last check only if @checked) that are errors, or warnings. */
static void json_issues(struct json *j, const char *key, const struct imp *imp, bool errors,
			bool checked)
{
	json_begin_array(j, key);
	for (size_t k = 0; k < (checked ? 2 : 1); k++) {
		const struct issue *list = k == 0 ? imp->closes : imp->issues;
		size_t count = k == 0 ? imp->close_count : imp->issue_count;

		for (size_t i = 0; i < count; i++) {
			if (list[i].error != errors)
				continue;
			json_begin_object(j, NULL);
			json_string(j, "id", list[i].id);
			json_string(j, "severity", errors ? "error" : "warning");
			json_string(j, "file",
				    list[i].file && list[i].file[0] ? list[i].file : NULL);
			json_string(j, "message", list[i].message);
			json_end_object(j);
		}
	}
	json_end_array(j);
}

/* The status file's bytes as the user @uid sees them (a new string): root sees every import,
 * another user their own. */
static char *status_text(struct importfs *fs, uid_t uid, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	struct json j;

	if (!f)
		return NULL;
	json_init(&j, f);
	json_begin_object(&j, NULL);
	json_string(&j, "store", fs->store_root);
	json_begin_array(&j, "imports");
	pthread_mutex_lock(&fs->mu);
	for (size_t i = 0; i < fs->count; i++) {
		const struct imp *imp = fs->imps[i];
		enum state state = shown_state(imp);

		if (imp->gone || (uid != 0 && uid != getuid() && imp->owner != uid))
			continue;
		json_begin_object(&j, NULL);
		json_string(&j, "folder", imp->name);
		json_string(&j, "state", state_names[state]);
		json_uint(&j, "files", atomic_load(&imp->files));
		json_uint(&j, "bytes", atomic_load(&imp->bytes));
		json_int(&j, "writing", atomic_load(&imp->writers));
		if (imp->state == REGISTERED) {
			json_begin_object(&j, "vm");
			json_string(&j, "id", imp->vm_id);
			json_string(&j, "name", imp->vm_name);
			json_end_object(&j);
			json_uint(&j, "commit_ms", (uint64_t)(imp->settle_to_commit * 1000));
		} else {
			json_string(&j, "vm", NULL);
			json_string(&j, "commit_ms", NULL);
		}
		/* While it is copying, what its last check lacked is no news. */
		json_issues(&j, "errors", imp, true, state != COPYING);
		json_issues(&j, "warnings", imp, false, state != COPYING);
		json_end_object(&j);
	}
	pthread_mutex_unlock(&fs->mu);
	json_end_array(&j);
	json_end_object(&j);
	json_finish(&j);
	fclose(f);
	return text;
}

/* ---- attributes ---- */

static void fill_root(const struct importfs *fs, struct stat *st, mode_t type, size_t size)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = type == S_IFDIR ? S_IFDIR | 0755 : S_IFREG | 0444;
	st->st_nlink = type == S_IFDIR ? 2 : 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_size = (off_t)size;
	st->st_atim = st->st_mtim = st->st_ctim = fs->started;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct importfs *fs = fs_of();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct where w;
	int rc;

	if (h && h->fd >= 0) {
		if (fstat(h->fd, st) < 0)
			return -errno;
		st->st_blksize = 1 << 20;
		return 0;
	}
	if (h && !h->imp) {
		fill_root(fs, st, S_IFREG, h->len);
		return 0;
	}
	if (h) {
		/* A file of a registered import, open: its view. */
		const struct entry *e;

		pthread_rwlock_rdlock(&h->imp->rw);
		pthread_mutex_lock(&fs->mu);
		e = view_entry(h->imp, h->rel);
		if (e)
			*st = e->st;
		pthread_mutex_unlock(&fs->mu);
		pthread_rwlock_unlock(&h->imp->rw);
		return e ? 0 : -ENOENT;
	}
	rc = begin(fs, path, &w);
	if (rc < 0)
		return rc;
	switch (w.kind) {
	case K_ROOT:
		fill_root(fs, st, S_IFDIR, 0);
		break;
	case K_STATUS: {
		size_t len = 0;
		char *text = status_text(fs, fuse_get_context()->uid, &len);

		free(text);
		fill_root(fs, st, S_IFREG, len);
		break;
	}
	case K_IMPORT:
		if (live(fs, w.imp)) {
			rc = beneath_stat(w.imp->dirfd, w.at, st);
		} else {
			const struct entry *e;

			pthread_mutex_lock(&fs->mu);
			e = view_entry(w.imp, w.rel);
			if (e)
				*st = e->st;
			else
				rc = -ENOENT;
			pthread_mutex_unlock(&fs->mu);
		}
		if (rc == 0 && S_ISREG(st->st_mode))
			st->st_blksize = 1 << 20; /* cp writes in pieces of this size */
		break;
	default:
		rc = -ENOENT;
	}
	return done(&w, rc);
}

/* ---- folders ---- */

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct importfs *fs = fs_of();
	struct where w;
	int rc = begin(fs, path, &w);

	(void)off, (void)fi, (void)flags;
	if (rc < 0)
		return rc;
	if (w.kind == K_ROOT) {
		fill(buf, ".", NULL, 0, 0);
		fill(buf, "..", NULL, 0, 0);
		fill(buf, IMPORTFS_STATUS, NULL, 0, 0);
		pthread_mutex_lock(&fs->mu);
		for (size_t i = 0; i < fs->count; i++)
			if (!fs->imps[i]->gone)
				fill(buf, fs->imps[i]->name, NULL, 0, 0);
		pthread_mutex_unlock(&fs->mu);
	} else if (w.kind != K_IMPORT) {
		rc = -ENOTDIR;
	} else if (live(fs, w.imp)) {
		int fd = beneath_open(w.imp->dirfd, w.at, O_RDONLY | O_DIRECTORY, 0);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

		if (fd < 0)
			rc = fd;
		else if (!d) {
			rc = -errno;
			close(fd);
		}
		for (struct dirent *e; d && (e = readdir(d));)
			fill(buf, e->d_name, NULL, 0, 0);
		if (d)
			closedir(d);
	} else {
		const struct entry *e = view_entry(w.imp, w.rel);
		size_t n = strlen(w.rel);

		fill(buf, ".", NULL, 0, 0);
		fill(buf, "..", NULL, 0, 0);
		for (size_t i = 0; e && i < e->child_count; i++)
			fill(buf, w.imp->view[e->first_child + i].rel + n + 1, NULL, 0, 0);
		if (!e)
			rc = -ENOENT;
	}
	return done(&w, rc);
}

/*
 * Give what @path names to the user whose request made it, as a file
 * system that is not FUSE would (with allow_other, the daemon runs as root
 * for other users).
 */
static void own(struct imp *imp, const char *at, int fd)
{
	const struct fuse_context *ctx = fuse_get_context();
	int rc;

	if (geteuid() != 0 || !ctx || (ctx->uid == 0 && ctx->gid == 0))
		return;
	rc = fd >= 0 ? (fchown(fd, ctx->uid, ctx->gid) < 0 ? -errno : 0)
		     : beneath_chown(imp->dirfd, at, ctx->uid, ctx->gid);
	if (rc < 0)
		fslog(FUSE_LOG_WARNING, "cannot give '%s/%s' to uid %u: %s", imp->name, at,
		      (unsigned)ctx->uid, strerror(-rc));
}

/*
 * The permission bits a copy may have: the source's, less set-user-ID,
 * set-group-ID, sticky and write by group or others (docs/SECURITY.md).
 */
static mode_t safe_mode(mode_t mode)
{
	return mode & 0755;
}

/* A new import named @name, its folder made with @mode. */
static int new_import(struct importfs *fs, const char *name, mode_t mode)
{
	struct imp *imp = calloc(1, sizeof(*imp));
	struct imp **grown = NULL;
	int rc;

	if (!imp || !(imp->name = strdup(name))) {
		free(imp);
		return -ENOMEM;
	}
	imp->dirfd = staging_new(fs->staging_fd, imp->tag);
	if (imp->dirfd < 0) {
		rc = imp->dirfd;
		goto fail;
	}
	snprintf(imp->staging, sizeof(imp->staging), "%s/%s", fs->staging_path, imp->tag);
	fchmod(imp->dirfd, safe_mode(mode));
	own(imp, "", imp->dirfd);
	imp->owner = fuse_get_context()->uid;
	pthread_rwlock_init(&imp->rw, NULL);
	touch(imp);
	/* Two mkdir of one name at once: the first makes the import, the other is told. */
	pthread_mutex_lock(&fs->mu);
	rc = find_imp(fs, name, strlen(name)) ? -EEXIST : -ENOMEM;
	if (rc == -ENOMEM && (grown = realloc(fs->imps, (fs->count + 1) * sizeof(*grown)))) {
		fs->imps = grown;
		fs->imps[fs->count++] = imp;
		rc = 0;
	}
	pthread_mutex_unlock(&fs->mu);
	if (rc < 0) {
		pthread_rwlock_destroy(&imp->rw);
		goto fail;
	}
	if (fs->o->verbose)
		fslog(FUSE_LOG_INFO, "import '%s' begins in '%s'", name, imp->staging);
	return 0;
fail:
	if (imp->dirfd >= 0) {
		unlinkat(fs->staging_fd, imp->tag, AT_REMOVEDIR);
		close(imp->dirfd);
	}
	free(imp->name);
	free(imp);
	return rc;
}

static int op_mkdir(const char *path, mode_t mode)
{
	struct importfs *fs = fs_of();
	struct where w;
	int rc = begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind == K_NEW)
		rc = new_import(fs, w.name, mode);
	else if (w.kind != K_IMPORT || !w.rel[0])
		rc = -EEXIST;
	else if (!live(fs, w.imp))
		rc = refused(fs, w.imp);
	else if ((rc = beneath_mkdir(w.imp->dirfd, w.at, safe_mode(mode))) == 0) {
		own(w.imp, w.at, -1);
		touch(w.imp);
	}
	return done(&w, rc);
}

static int op_rmdir(const char *path)
{
	struct importfs *fs = fs_of();
	struct where w;
	int rc = begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind == K_ROOT)
		rc = -EBUSY;
	else if (w.kind != K_IMPORT)
		rc = w.kind == K_STATUS ? -ENOTDIR : -ENOENT;
	else if (!live(fs, w.imp))
		rc = refused(fs, w.imp);
	else if (w.rel[0]) {
		rc = beneath_unlink(w.imp->dirfd, w.at, AT_REMOVEDIR);
		if (rc == 0)
			touch(w.imp);
	} else if (unlinkat(fs->staging_fd, w.imp->tag, AT_REMOVEDIR) < 0) {
		rc = -errno;
	} else {
		/* An import given up before it held anything. */
		pthread_mutex_lock(&fs->mu);
		w.imp->gone = true;
		w.imp->state = FAILED;
		w.imp->fail_errno = ENOENT;
		pthread_mutex_unlock(&fs->mu);
		/* Its descriptor stays open until unmount: others may be using it (rw shared). */
	}
	return done(&w, rc);
}

/* ---- names ---- */

static int op_unlink(const char *path)
{
	struct importfs *fs = fs_of();
	struct where w;
	int rc = begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind != K_IMPORT || !w.rel[0])
		rc = w.kind == K_NEW ? -ENOENT : -EPERM;
	else if (!live(fs, w.imp))
		rc = refused(fs, w.imp);
	else if ((rc = beneath_unlink(w.imp->dirfd, w.at, 0)) == 0) {
		forget_close(fs, w.imp, w.rel);
		touch(w.imp);
	}
	return done(&w, rc);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
	struct importfs *fs = fs_of();
	struct where a, b;
	int rc = resolve(fs, from, &a);

	if (rc == 0)
		rc = resolve(fs, to, &b);
	if (rc < 0)
		return rc;
	if (a.kind != K_IMPORT || !a.rel[0] || b.kind != K_IMPORT || !b.rel[0])
		return -EPERM; /* the imports themselves keep their names */
	if (a.imp != b.imp)
		return -EXDEV;
	pthread_rwlock_rdlock(&a.imp->rw);
	if (!live(fs, a.imp))
		rc = refused(fs, a.imp);
	else if ((rc = beneath_rename(a.imp->dirfd, a.at, a.imp->dirfd, b.at, flags)) == 0) {
		forget_close(fs, a.imp, b.rel);
		touch(a.imp);
	}
	pthread_rwlock_unlock(&a.imp->rw);
	return rc;
}

static int op_refuse_link(const char *from, const char *to)
{
	(void)from, (void)to;
	return -EPERM; /* an export folder holds no links */
}

static int op_refuse_mknod(const char *path, mode_t mode, dev_t dev)
{
	(void)path, (void)mode, (void)dev;
	return -EPERM; /* nor devices, FIFOs or sockets */
}

/* ---- attributes set ---- */

/* Apply a change of attributes: to the file (live), or to the view of a registered import. */
static int set_attr(const char *path, struct fuse_file_info *fi, int what, mode_t mode, uid_t uid,
		    gid_t gid, off_t size, const struct timespec *tv)
{
	struct importfs *fs = fs_of();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct where w;
	int rc;

	char named[PATH_MAX];

	if (h && h->imp && h->fd < 0) {
		/* A file of a registered import, open: by its name. */
		snprintf(named, sizeof(named), "/%s%s", h->imp->name, h->rel);
		path = named;
		h = NULL;
	}
	if (h && h->fd >= 0 && h->imp) {
		pthread_rwlock_rdlock(&h->imp->rw);
		if (!live(fs, h->imp)) {
			/* Registered since it was opened: the file is the store's now. */
			snprintf(named, sizeof(named), "/%s%s", h->imp->name, h->rel);
			pthread_rwlock_unlock(&h->imp->rw);
			return what == 2 ? refused(fs, h->imp)
					 : set_attr(named, NULL, what, mode, uid, gid, size, tv);
		}
		rc = what == 0	 ? fchmod(h->fd, safe_mode(mode))
		     : what == 1 ? fchown(h->fd, uid, gid)
		     : what == 2 ? ftruncate(h->fd, size)
				 : futimens(h->fd, tv);
		rc = rc < 0 ? -errno : 0;
		if (rc == 0)
			touch(h->imp);
		pthread_rwlock_unlock(&h->imp->rw);
		return rc;
	}
	rc = begin(fs, path, &w);
	if (rc < 0)
		return rc;
	if (w.kind != K_IMPORT) {
		rc = w.kind == K_NEW ? -ENOENT : -EPERM;
	} else if (live(fs, w.imp)) {
		int dirfd = w.imp->dirfd;

		rc = what == 0	 ? beneath_chmod(dirfd, w.at, safe_mode(mode))
		     : what == 1 ? beneath_chown(dirfd, w.at, uid, gid)
		     : what == 2 ? beneath_truncate(dirfd, w.at, size)
				 : beneath_utimens(dirfd, w.at, tv);
		/* An import given to a user (chown of its folder) is theirs in the status. */
		if (rc == 0 && what == 1 && !w.rel[0] && uid != (uid_t)-1) {
			pthread_mutex_lock(&fs->mu);
			w.imp->owner = uid;
			pthread_mutex_unlock(&fs->mu);
		}
		if (rc == 0)
			touch(w.imp);
	} else if (what == 2) {
		rc = refused(fs, w.imp);
	} else {
		/* The copy tool's last steps on a registered folder: kept in its view only. */
		struct entry *e;

		pthread_mutex_lock(&fs->mu);
		e = view_entry(w.imp, w.rel);
		if (!e)
			rc = -ENOENT;
		else if (what == 0)
			e->st.st_mode = (e->st.st_mode & S_IFMT) | safe_mode(mode);
		else if (what == 1) {
			if (uid != (uid_t)-1)
				e->st.st_uid = uid;
			if (gid != (gid_t)-1)
				e->st.st_gid = gid;
		} else {
			struct timespec now;

			clock_gettime(CLOCK_REALTIME, &now);
			for (int i = 0; i < 2; i++) {
				struct timespec t = tv[i].tv_nsec == UTIME_NOW ? now : tv[i];

				if (tv[i].tv_nsec == UTIME_OMIT)
					continue;
				if (i == 0)
					e->st.st_atim = t;
				else
					e->st.st_mtim = t;
			}
		}
		pthread_mutex_unlock(&fs->mu);
	}
	return done(&w, rc);
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return set_attr(path, fi, 0, mode, 0, 0, 0, NULL);
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return set_attr(path, fi, 1, 0, uid, gid, 0, NULL);
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	return set_attr(path, fi, 2, 0, 0, 0, size, NULL);
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	return set_attr(path, fi, 3, 0, 0, 0, 0, tv);
}

/* ---- files ---- */

static struct handle *handle_new(struct imp *imp, int fd, bool writer, const char *rel)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->imp = imp;
	h->fd = fd;
	h->writer = writer;
	h->kind = rel ? kind_of(rel) : PLAIN;
	h->rel = rel ? strdup(rel) : NULL;
	if (rel && !h->rel) {
		free(h);
		return NULL;
	}
	if (imp && writer)
		atomic_fetch_add(&imp->writers, 1);
	return h;
}

/* Open (or with O_CREAT make) the file @w names, for the handle in @fi. */
static int open_file(struct importfs *fs, struct where *w, int flags, mode_t mode,
		     struct fuse_file_info *fi)
{
	bool writer = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	struct handle *h;
	int fd;

	if (!live(fs, w->imp)) {
		if (writer || (flags & O_CREAT))
			return refused(fs, w->imp);
		if (!view_entry(w->imp, w->rel))
			return -ENOENT;
		fd = -1; /* the bytes now lie in the store: reads are refused */
	} else {
		fd = beneath_open(w->imp->dirfd, w->at, flags & ~O_NOCTTY, safe_mode(mode));
		if (fd < 0)
			return fd;
		if (flags & O_CREAT)
			own(w->imp, w->at, fd); /* CREATE comes for a name that did not exist */
	}
	h = handle_new(w->imp, fd, fd >= 0 && writer, w->rel);
	if (!h) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	if (flags & (O_CREAT | O_TRUNC))
		h->written = true;
	if (flags & O_CREAT)
		atomic_fetch_add(&w->imp->files, 1);
	if (writer)
		touch(w->imp);
	fi->fh = (uintptr_t)h;
	return 0;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct importfs *fs = fs_of();
	struct where w;
	int rc = begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind == K_NEW || w.kind == K_STATUS || w.kind == K_ROOT)
		rc = w.kind == K_NEW ? -EPERM : -EEXIST; /* only folders at the root */
	else if (!w.rel[0])
		rc = -EISDIR;
	else
		rc = open_file(fs, &w, fi->flags | O_CREAT, mode, fi);
	return done(&w, rc);
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	struct importfs *fs = fs_of();
	struct where w;
	int rc = begin(fs, path, &w);

	if (rc < 0)
		return rc;
	if (w.kind == K_STATUS) {
		struct handle *h = handle_new(NULL, -1, false, NULL);

		if ((fi->flags & O_ACCMODE) != O_RDONLY)
			rc = -EACCES;
		else if (!h || !(h->text = status_text(fs, fuse_get_context()->uid, &h->len)))
			rc = -ENOMEM;
		if (rc < 0) {
			free(h);
		} else {
			fi->fh = (uintptr_t)h;
			fi->direct_io = 1;
		}
	} else if (w.kind != K_IMPORT) {
		rc = w.kind == K_ROOT ? -EISDIR : -ENOENT;
	} else {
		rc = open_file(fs, &w, fi->flags & ~O_CREAT, 0, fi);
	}
	return done(&w, rc);
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	ssize_t n;

	(void)path;
	if (!h->imp) {
		if ((size_t)off >= h->len)
			return 0;
		n = (ssize_t)(h->len - (size_t)off < size ? h->len - (size_t)off : size);
		memcpy(buf, h->text + off, (size_t)n);
		return (int)n;
	}
	if (h->fd < 0)
		return -EACCES;
	n = pread(h->fd, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

/* A write or a sync to @imp's file failed with @e: no room, or the disk: the import fails. */
static int failed_write(struct importfs *fs, struct imp *imp, int e)
{
	if (e == ENOSPC || e == EDQUOT || e == EIO || e == EFBIG) {
		int none = 0;

		atomic_compare_exchange_strong(&imp->failing, &none, e);
		pthread_cond_signal(&fs->wake);
	}
	return -e;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int failing, rc;

	(void)path;
	if (!h->imp || h->fd < 0)
		return -EBADF;
	failing = atomic_load(&h->imp->failing);
	if (failing)
		return -failing;
	rc = fsutil_pwrite_full(h->fd, buf, size, (uint64_t)off);
	if (rc < 0)
		return failed_write(fs_of(), h->imp, -rc);
	h->written = true;
	atomic_fetch_add(&h->imp->bytes, size);
	atomic_store(&h->imp->last_ns, now_ns());
	return (int)size;
}

/* A configuration or the settings document, closed: it must parse, or its close() fails. */
static int check_closed(struct importfs *fs, struct handle *h)
{
	char real[PATH_MAX];
	struct error err;
	int rc, fd;

	snprintf(real, sizeof(real), "%s%s", h->imp->staging, h->rel);
	error_clear(&err);
	fd = beneath_open(h->imp->dirfd, h->rel + 1, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		rc = error_errno(&err, -fd, "cannot read", real);
	} else if (h->kind == CONFIG) {
		struct config *config = NULL;

		rc = config_load_fd(&config, fd, real, &err);
		config_free(config);
	} else {
		struct import_settings s;

		rc = import_settings_load_fd(fd, real, &s, &err);
		import_settings_free(&s);
	}
	if (fd >= 0)
		close(fd);
	forget_close(fs, h->imp, h->rel);
	if (rc == 0)
		return 0;
	pthread_mutex_lock(&fs->mu);
	add_issue(fs, h->imp, &h->imp->closes, &h->imp->close_count,
		  h->kind == CONFIG ? "config-damaged" : "settings-invalid", true, real,
		  error_message(&err));
	pthread_mutex_unlock(&fs->mu);
	if (fs->o->verbose)
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
	return -EIO;
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
	struct importfs *fs = fs_of();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int rc = 0;

	(void)path;
	if (!h->imp || h->fd < 0 || !h->written)
		return 0;
	/* Each file is made durable as it completes: the commit has only names to place. */
	if (fsync(h->fd) < 0)
		return failed_write(fs, h->imp, errno);
	h->written = false;
	if (h->kind != PLAIN) {
		pthread_rwlock_rdlock(&h->imp->rw);
		rc = check_closed(fs, h);
		pthread_rwlock_unlock(&h->imp->rw);
	}
	touch(h->imp);
	return rc;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	struct importfs *fs = fs_of();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)path;
	if (h->fd >= 0)
		close(h->fd);
	if (h->imp && h->writer) {
		touch(h->imp);
		atomic_fetch_sub(&h->imp->writers, 1);
		pthread_cond_signal(&fs->wake);
	}
	free(h->rel);
	free(h->text);
	free(h);
	return 0;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)path;
	if (!h->imp || h->fd < 0)
		return 0;
	if ((datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0)
		return failed_write(fs_of(), h->imp, errno);
	return 0;
}

static int op_statfs(const char *path, struct statvfs *st)
{
	struct importfs *fs = fs_of();

	(void)path;
	/* Where the data really goes. */
	return fstatvfs(fs->staging_fd, st) < 0 ? -errno : 0;
}

/* ---- extended attributes (rsync -X) ---- */

/*
 * The file @path names, opened for its extended attributes: a descriptor
 * (the caller closes it, then calls done()), or -1 with the answer in *@rc.
 * Only "user." attributes are kept (rsync -X): others are taken and dropped,
 * so that root's rsync -aX of a folder with security labels completes.
 */
static int xattr_target(const char *path, struct where *w, bool change, int *rc)
{
	struct importfs *fs = fs_of();
	int fd;

	*rc = begin(fs, path, w);
	if (*rc < 0)
		return -1;
	if (w->kind != K_IMPORT) {
		*rc = done(w, w->kind == K_NEW ? -ENOENT : -ENOTSUP);
		return -1;
	}
	if (!live(fs, w->imp)) {
		*rc = done(w, change ? refused(fs, w->imp) : -ENODATA);
		return -1;
	}
	fd = beneath_open(w->imp->dirfd, w->at, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		*rc = done(w, fd);
	return fd;
}

static bool user_attribute(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static int op_setxattr(const char *path, const char *name, const char *value, size_t size,
		       int flags)
{
	struct where w;
	int rc, fd;

	fd = xattr_target(path, &w, true, &rc);
	if (fd < 0)
		return rc;
	if (!user_attribute(name)) {
		close(fd);
		return done(&w, 0); /* dropped: never planted on the store's files */
	}
	rc = fsetxattr(fd, name, value, size, flags) < 0 ? -errno : 0;
	close(fd);
	if (rc == 0)
		touch(w.imp);
	return done(&w, rc);
}

static int op_getxattr(const char *path, const char *name, char *value, size_t size)
{
	struct where w;
	int rc, fd = xattr_target(path, &w, false, &rc);
	ssize_t n;

	if (fd < 0)
		return rc;
	n = fgetxattr(fd, name, value, size);
	rc = n < 0 ? -errno : (int)n;
	close(fd);
	return done(&w, rc);
}

static int op_listxattr(const char *path, char *list, size_t size)
{
	struct where w;
	int rc, fd = xattr_target(path, &w, false, &rc);
	ssize_t n;

	if (fd < 0)
		return rc == -ENODATA ? 0 : rc;
	n = flistxattr(fd, list, size);
	rc = n < 0 ? -errno : (int)n;
	close(fd);
	return done(&w, rc);
}

static int op_removexattr(const char *path, const char *name)
{
	struct where w;
	int rc, fd = xattr_target(path, &w, true, &rc);

	if (fd < 0)
		return rc;
	rc = fremovexattr(fd, name) < 0 ? -errno : 0;
	close(fd);
	if (rc == 0)
		touch(w.imp);
	return done(&w, rc);
}

/* ---- checking and registering ---- */

/* Add an entry for @rel (stat @st) to @imp's view; false when out of memory. */
static bool view_add(struct imp *imp, const char *rel, const struct stat *st)
{
	struct entry *grown = realloc(imp->view, (imp->view_count + 1) * sizeof(*grown));

	if (!grown)
		return false;
	imp->view = grown;
	memset(&grown[imp->view_count], 0, sizeof(*grown));
	if (!(grown[imp->view_count].rel = strdup(rel)))
		return false;
	grown[imp->view_count].st = *st;
	if (S_ISREG(st->st_mode))
		grown[imp->view_count].st.st_blksize = 1 << 20;
	imp->view_count++;
	return true;
}

/*
 * Record what the folder of @imp holds (names and attributes), for its view:
 * folder by folder (no recursion, whatever the depth), each folder's entries
 * side by side, then an index by name. Its lock is held alone.
 */
static void take_view(struct imp *imp)
{
	struct stat st;

	if (fstat(imp->dirfd, &st) < 0 || !view_add(imp, "", &st))
		return;
	for (size_t i = 0; i < imp->view_count; i++) {
		char *rel = imp->view[i].rel;
		int fd;
		DIR *d;

		if (!S_ISDIR(imp->view[i].st.st_mode))
			continue;
		fd = beneath_open(imp->dirfd, rel[0] ? rel + 1 : "", O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0 || !(d = fdopendir(fd))) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		imp->view[i].first_child = imp->view_count;
		for (struct dirent *e; (e = readdir(d));) {
			char sub[PATH_MAX];

			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
			    snprintf(sub, sizeof(sub), "%s/%s", imp->view[i].rel, e->d_name) >=
				    (int)sizeof(sub) ||
			    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (!view_add(imp, sub, &st))
				break;
		}
		imp->view[i].child_count = imp->view_count - imp->view[i].first_child;
		closedir(d);
	}
	for (imp->view_slots = 16; imp->view_slots < 2 * imp->view_count;)
		imp->view_slots *= 2;
	imp->view_index = calloc(imp->view_slots, sizeof(*imp->view_index));
	if (!imp->view_index) {
		imp->view_slots = 0;
		return;
	}
	for (size_t i = 0; i < imp->view_count; i++) {
		size_t at = hash_of(imp->view[i].rel) & (imp->view_slots - 1);

		while (imp->view_index[at])
			at = (at + 1) & (imp->view_slots - 1);
		imp->view_index[at] = i + 1;
	}
}

static void discard_view(struct imp *imp)
{
	for (size_t k = 0; k < imp->view_count; k++)
		free(imp->view[k].rel);
	free(imp->view);
	free(imp->view_index);
	imp->view = NULL;
	imp->view_index = NULL;
	imp->view_count = 0;
	imp->view_slots = 0;
}

/* Remove @imp's folder, saying what could not be removed; its lock is held alone. */
static void remove_staged(struct importfs *fs, struct imp *imp)
{
	char left[PATH_MAX];
	int rc;

	if (imp->dirfd < 0)
		return;
	rc = beneath_remove_tree(fs->staging_fd, imp->tag, left);
	close(imp->dirfd);
	imp->dirfd = -1;
	if (rc < 0) {
		char message[PATH_MAX + 128];

		snprintf(message, sizeof(message), "'%s/%s' could not be removed: %s",
			 fs->staging_path, left, strerror(-rc));
		pthread_mutex_lock(&fs->mu);
		add_issue(fs, imp, &imp->issues, &imp->issue_count, "cleanup-incomplete", false, "",
			  message);
		pthread_mutex_unlock(&fs->mu);
		fslog(FUSE_LOG_ERR, "import '%s': %s", imp->name, message);
	}
}

/* The import is over (registered or failed): its view stays, its folder goes. */
static void finish(struct importfs *fs, struct imp *imp, enum state state)
{
	if (!imp->view_count)
		take_view(imp);
	pthread_mutex_lock(&fs->mu);
	imp->state = state;
	pthread_mutex_unlock(&fs->mu);
	remove_staged(fs, imp);
}

static void set_state(struct importfs *fs, struct imp *imp, enum state state, struct issue *issues,
		      size_t count)
{
	pthread_mutex_lock(&fs->mu);
	issues_free(imp->issues, imp->issue_count);
	imp->issues = issues;
	imp->issue_count = count;
	imp->state = state;
	pthread_mutex_unlock(&fs->mu);
}

/* Fail @imp with @e (its files could not be written): everything it made goes. */
static void fail_import(struct importfs *fs, struct imp *imp, int e, const char *id,
			const char *message)
{
	struct issue *issues = NULL;
	size_t count = 0;

	add_issue(fs, imp, &issues, &count, e == ENOSPC || e == EDQUOT ? "space-short" : id, true,
		  "", message);
	pthread_mutex_lock(&fs->mu);
	imp->fail_errno = e;
	pthread_mutex_unlock(&fs->mu);
	set_state(fs, imp, FAILED, issues, count);
	finish(fs, imp, FAILED);
	fslog(FUSE_LOG_ERR, "import '%s' failed and was rolled back: %s", imp->name, message);
}

/*
 * Whether the absolute @path lies where this mount may write: under the
 * store's roots or the mount's own target roots, by name, at a place an
 * untrusted document may choose (import_target_refusal()); else NULL, or the
 * reason in @why.
 */
static bool target_allowed(const struct importfs *fs, const char *path, char *why, size_t cap,
			   const char *what)
{
	const char *rel, *refusal = "it lies outside the store and the mount's target roots";

	for (size_t i = 0; i < fs->written_count; i++)
		if (beneath_lexically(path, fs->trusted[i], &rel)) {
			if (!(refusal = import_target_refusal(rel)))
				return true;
			break;
		}
	snprintf(why, cap, "%s '%s' is refused: %s", what, path, refusal);
	return false;
}

/* Whether the absolute @path lies under a folder the mount allows root's documents to read. */
static bool source_allowed(const struct importfs *fs, const char *path)
{
	for (size_t i = fs->own_trusted; i < fs->trusted_count; i++)
		if (beneath_lexically(path, fs->trusted[i], NULL))
			return true;
	return false;
}

/*
 * The import's own settings document @given (@doc), written by @user (NULL:
 * by root or the daemon's user), may send files only to plain places under
 * the mount's roots (never configurations, saved state, hidden names), and
 * may name sources only as its writer may read them: a user's are opened with
 * that user's credentials (each folder on the way, and each parent of a
 * disk's chain), root's only under the mount's sources= folders.
 * NULL, or what is wrong (in @buf).
 */
static const char *confined(const struct importfs *fs, struct imp *imp,
			    const struct import_settings *given, const struct asuser *user,
			    char *buf, size_t cap)
{
	const char *roots[] = {given->target_vm_data_root, given->target_vhd_data_root,
			       given->target_snapshot_data_root};
	const char *sources[] = {given->source_vm_data_root, given->source_vhd_data_root,
				 given->source_snapshot_data_root};
	struct asuser_scope as_user = {.folder_fd = imp->dirfd,
				       .folder = imp->staging,
				       .others = ASUSER_OTHERS_AS_USER,
				       .user = user};

	for (size_t k = 0; k < 3; k++)
		if (roots[k] && !target_allowed(fs, roots[k], buf, cap, "the target root"))
			return buf;
	for (size_t i = 0; i < given->resource_count; i++)
		if (given->resources[i].target && given->resources[i].target[0] &&
		    !target_allowed(fs, given->resources[i].target, buf, cap, "a resource target"))
			return buf;
	for (size_t k = 0; k < 3 + given->resource_count; k++) {
		const char *source = k < 3 ? sources[k] : given->resources[k - 3].source;
		struct error err;

		if (!source || !source[0] || beneath_lexically(source, imp->staging, NULL))
			continue;
		if (!user) {
			if (source_allowed(fs, source))
				continue;
			snprintf(buf, cap,
				 "the source '%s' lies under no folder of the mount's sources= "
				 "option (a document made by root names no other sources)",
				 source);
			return buf;
		}
		/* Read as its writer would: a folder opened, a disk with every parent. */
		error_clear(&err);
		asuser_scope_set(&as_user);
		if (k < 3) {
			int fd = asuser_scope_open(&as_user, source, O_RDONLY | O_DIRECTORY);

			if (fd < 0)
				error_errno(&err, -fd, "cannot open", source);
			else
				close(fd);
		} else {
			struct chain *chain = NULL;

			chain_open(&chain, source, NULL, &err);
			chain_close(chain);
		}
		asuser_scope_set(NULL);
		if (err.code) {
			snprintf(buf, cap, "the source '%s' cannot be read by uid %u: %s", source,
				 (unsigned)user->uid, error_message(&err));
			return buf;
		}
	}
	return NULL;
}

/*
 * Check @imp, quiet and closed, and say whether to register it: 1 with its
 * settings in @settings and its source scope in @scope (the writer of its
 * document in @user), 0 when it waits (the reasons in its issues). Its lock
 * is held alone.
 */
static int check(struct importfs *fs, struct imp *imp, struct import_settings *settings,
		 struct asuser *user, struct asuser_scope *scope)
{
	struct import_settings given[3];
	const char *names[3];
	struct import_report report = {0};
	struct issue *issues = NULL;
	size_t count = 0, n = 0;
	char doc[PATH_MAX];
	bool by_user = false;
	struct error err;
	int rc, fd;

	error_clear(&err);
	for (; n < fs->given_count; n++) {
		given[n] = fs->given[n];
		names[n] = fs->given_names[n];
	}
	snprintf(doc, sizeof(doc), "%s/%s", imp->staging, IMPORTFS_SETTINGS);
	fd = beneath_open(imp->dirfd, IMPORTFS_SETTINGS, O_RDONLY | O_NONBLOCK, 0);
	rc = 0;
	if (fd >= 0) {
		char why[PATH_MAX + 256];
		const char *wrong;
		struct stat st;

		/* Its writer: the owner the mount gave it at its create. */
		rc = fstat(fd, &st) < 0 ? error_errno(&err, errno, "cannot read", doc)
					: import_settings_load_fd(fd, doc, &given[n], &err);
		close(fd);
		names[n] = doc;
		if (rc < 0) {
			/* Its close() said so already, unless it was written otherwise. */
			pthread_mutex_lock(&fs->mu);
			rc = imp->close_count;
			pthread_mutex_unlock(&fs->mu);
			if (!rc)
				add_issue(fs, imp, &issues, &count, "settings-invalid", true, doc,
					  error_message(&err));
			set_state(fs, imp, WAITING, issues, count);
			return 0;
		}
		n++;
		by_user = st.st_uid != 0 && st.st_uid != geteuid();
		if (by_user)
			asuser_lookup(st.st_uid, st.st_gid, user);
		if ((wrong = confined(fs, imp, &given[n - 1], by_user ? user : NULL, why,
				      sizeof(why)))) {
			add_issue(fs, imp, &issues, &count, "settings-invalid", true, doc, wrong);
			import_settings_free(&given[n - 1]);
			set_state(fs, imp, WAITING, issues, count);
			return 0;
		}
	}
	/* What the checks and the registration read: the folder beneath its descriptor, the store
	 * and targets as the daemon, other sources as the document's writer or not at all. */
	*scope = (struct asuser_scope){
		.folder_fd = imp->dirfd,
		.folder = imp->staging,
		.trusted_fds = fs->trusted_fds,
		.trusted = fs->trusted,
		.trusted_count = by_user ? fs->own_trusted : fs->trusted_count,
		.others = by_user ? ASUSER_OTHERS_AS_USER : ASUSER_OTHERS_REFUSED,
		.user = by_user ? user : NULL,
	};
	asuser_scope_set(scope);
	rc = import_settings_layered(imp->staging, fs->store_root, given, names, n, settings, &err);
	if (n > fs->given_count)
		import_settings_free(&given[n - 1]);
	if (rc < 0) {
		/* Mostly a copy not yet whole: no configuration yet, or a part of one. */
		asuser_scope_set(NULL);
		add_issue(fs, imp, &issues, &count, "incomplete", true, "", error_message(&err));
		set_state(fs, imp, WAITING, issues, count);
		return 0;
	}
	if (!settings->create_copy) {
		add_issue(fs, imp, &issues, &count, "settings-invalid", true, doc,
			  "create_copy = false: an import mount copies; register in place with "
			  "'impex import'");
		rc = -EINVAL;
	}
	if (rc == 0 &&
	    import_compare(imp->staging, fs->store, settings, IMPORT_ADOPT, &report, &err) < 0) {
		add_issue(fs, imp, &issues, &count, "incomplete", true, "", error_message(&err));
		rc = -EINVAL;
	}
	asuser_scope_set(NULL);
	for (size_t i = 0; i < report.count; i++)
		add_issue(fs, imp, &issues, &count, report.issues[i].id,
			  report.issues[i].severity == IMPORT_ERROR, report.issues[i].file,
			  report.issues[i].message);
	rc = rc == 0 && report.errors == 0;
	import_report_free(&report);
	if (!rc) {
		import_settings_free(settings);
		set_state(fs, imp, WAITING, issues, count);
		return 0;
	}
	/* What the copy tool wrote, before the registration changes a byte; from now on the
	 * folder's operations use it, and changes are refused (EBUSY). */
	take_view(imp);
	set_state(fs, imp, REGISTERING, issues, count);
	return 1;
}

/*
 * Register @imp, checked whole (check()): no lock of the import is held, so
 * that a store lock held elsewhere stalls no operation of the mount.
 */
static void register_import(struct importfs *fs, struct imp *imp, struct import_settings *settings,
			    const struct asuser_scope *scope, uint64_t quiet_since)
{
	struct issue *issues = NULL;
	size_t count = 0;
	char id[37] = "";
	struct error err;
	int rc;

	error_clear(&err);
	asuser_scope_set(scope);
	rc = import_run(imp->staging, fs->store, settings, IMPORT_ADOPT, NULL, id, &err);
	asuser_scope_set(NULL);
	pthread_rwlock_wrlock(&imp->rw);
	if (rc == -ECANCELED) {
		/* The store changed since the check (another import): nothing was done. */
		add_issue(fs, imp, &issues, &count, "incomplete", true, "", error_message(&err));
		set_state(fs, imp, WAITING, issues, count);
		discard_view(imp);
	} else if (rc < 0) {
		fail_import(fs, imp, -rc, "import-failed", error_message(&err));
	} else {
		pthread_mutex_lock(&fs->mu);
		snprintf(imp->vm_id, sizeof(imp->vm_id), "%s", id);
		imp->vm_name = strdup(settings->name ? settings->name : "");
		imp->settle_to_commit = (double)(now_ns() - quiet_since) / 1e9;
		pthread_mutex_unlock(&fs->mu);
		finish(fs, imp, REGISTERED);
		if (fs->o->verbose)
			fslog(FUSE_LOG_INFO, "import '%s' registered VM %s", imp->name, id);
	}
	pthread_rwlock_unlock(&imp->rw);
	import_settings_free(settings);
}

static void *checker(void *arg)
{
	struct importfs *fs = arg;

	pthread_mutex_lock(&fs->mu);
	while (!fs->stop) {
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += 50 * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&fs->wake, &fs->mu, &until);
		for (size_t i = 0; i < fs->count && !fs->stop; i++) {
			struct imp *imp = fs->imps[i];
			bool open = imp->state == COPYING || imp->state == WAITING;
			int failing = atomic_load(&imp->failing);
			uint64_t last = atomic_load(&imp->last_ns);
			struct import_settings settings;
			struct asuser_scope scope;
			struct asuser user;
			int go = 0;

			if (!open || imp->gone)
				continue;
			if (!failing && (atomic_load(&imp->writers) > 0 ||
					 now_ns() - last < (uint64_t)fs->o->settle_ms * 1000000u)) {
				imp->state = COPYING;
				continue;
			}
			/* A waiting import is looked at again now and then: the store changes too
			 * (room made, a clashing VM deleted, a switch added). */
			if (!failing && !atomic_load(&imp->dirty) &&
			    !(imp->state == WAITING && now_ns() - imp->checked_ns > RECHECK_NS))
				continue;
			pthread_mutex_unlock(&fs->mu);
			pthread_rwlock_wrlock(&imp->rw);
			if (failing) {
				char message[256];

				snprintf(message, sizeof(message),
					 "a file could not be written: %s", strerror(failing));
				fail_import(fs, imp, failing, "write-failed", message);
			} else if (!imp->gone && atomic_load(&imp->writers) == 0 &&
				   atomic_load(&imp->last_ns) == last) {
				atomic_store(&imp->dirty, false);
				imp->checked_ns = now_ns();
				go = check(fs, imp, &settings, &user, &scope);
			}
			pthread_rwlock_unlock(&imp->rw);
			if (go)
				register_import(fs, imp, &settings, &scope, last);
			pthread_mutex_lock(&fs->mu);
		}
	}
	pthread_mutex_unlock(&fs->mu);
	return NULL;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct importfs *fs = fuse_get_context()->private_data;

	cfg->nullpath_ok = 0; /* readdir finds its folder by path */
	cfg->use_ino = 0;
	/*
	 * Names and attributes are kept ten seconds: every change to an import's names and
	 * attributes comes through this mount (its folder is the daemon's alone), so the kernel
	 * learns each from its reply, and sizes grown by writes from the writes themselves.
	 * Without it each lookup and permission check asks again for every folder on the way
	 * (ls -lR of a 30,000-file import: about 19 requests a file). The status file is read
	 * with direct_io, to its end whatever size was last shown.
	 */
	cfg->attr_timeout = 10;
	cfg->entry_timeout = 10;
	cfg->negative_timeout = 0;
	conn->max_write = 1 << 20;
	conn->want &= ~FUSE_CAP_SPLICE_READ; /* writes come in whole: no copy saved by splice */
	return fs;
}

static const struct fuse_operations ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.link = op_refuse_link,
	.symlink = op_refuse_link,
	.mknod = op_refuse_mknod,
	.chmod = op_chmod,
	.chown = op_chown,
	.truncate = op_truncate,
	.utimens = op_utimens,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};

/* ---- the mount ---- */

/*
 * The mount's settings: the file, then the options; their target VHD root holds the imports.
 * The target roots they name are made if missing (the administrator's), before the store's
 * roots are opened: one may be a root of the store too.
 */
static int load_settings(struct importfs *fs, struct error *err)
{
	const struct import_settings *last = NULL;
	char path[PATH_MAX];
	int rc = 0, root;

	if (fs->o->settings_file) {
		/* door: the administrator's own document, named by the mount's option. */
		rc = import_settings_load(fs->o->settings_file, &fs->given[0], err);
		if (rc < 0)
			return rc;
		fs->given_names[fs->given_count++] = fs->o->settings_file;
	}
	if (fs->o->settings_text && fs->o->settings_text[0]) {
		rc = import_settings_parse(fs->o->settings_text, strlen(fs->o->settings_text),
					   "the mount options", &fs->given[fs->given_count], err);
		if (rc < 0)
			return rc;
		fs->given_names[fs->given_count++] = "the mount options";
	}
	for (size_t i = 0; i < fs->given_count; i++) {
		const char *roots[] = {fs->given[i].target_vm_data_root,
				       fs->given[i].target_vhd_data_root,
				       fs->given[i].target_snapshot_data_root};

		for (size_t k = 0; k < 3; k++) {
			if (roots[k] && roots[k][0] != '/')
				return error_set(err, EINVAL,
						 "%s: the target root '%s' is not an absolute path",
						 fs->given_names[i], roots[k]);
			root = roots[k] ? fsutil_open_trusted_folder(roots[k], true, path) : 0;
			if (root < 0)
				return error_errno(err, -root, "cannot make the target root",
						   roots[k]);
			if (roots[k])
				close(root);
		}
		if (fs->given[i].create_copy_given && !fs->given[i].create_copy)
			return error_set(err, EINVAL,
					 "%s: create_copy = false: an import mount copies; "
					 "register in place with 'impex import'",
					 fs->given_names[i]);
		if (fs->given[i].target_vhd_data_root)
			last = &fs->given[i];
	}
	if (last)
		snprintf(path, sizeof(path), "%s", last->target_vhd_data_root);
	else
		snprintf(path, sizeof(path), "%s/Virtual Hard Disks", fs->store_root);
	/* The admin's roots are taken as they are named, links included: once. */
	root = fsutil_open_trusted_folder(path, true, fs->staging_root);
	if (root < 0)
		return error_errno(err, -root, "cannot use the target VHD root", path);
	fs->staging_fd = staging_open(root, fs->staging_root, true, err);
	close(root);
	if (fs->staging_fd < 0)
		return fs->staging_fd;
	snprintf(fs->staging_path, sizeof(fs->staging_path), "%s/%s", fs->staging_root,
		 STAGING_FOLDER);
	return 0;
}

/*
 * Whether the root open on @fd (@path) or one of its folders that imports write in may be
 * written by others than this process's user: then a local user could swap a name the
 * daemon is about to use (docs/SECURITY.md), and the mount refuses it (-EPERM).
 */
static int writable_by_others(int fd, const char *path, struct error *err)
{
	static const char *const folders[] = {"", "Virtual Machines", "Snapshots",
					      "Virtual Hard Disks"};

	for (size_t i = 0; i < sizeof(folders) / sizeof(folders[0]); i++) {
		struct stat st;

		if (beneath_stat(fd, folders[i], &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if ((st.st_mode & (S_IWGRP | S_IWOTH)) || st.st_uid != geteuid())
			return error_set(err, EPERM,
					 "'%s%s%s' may be written by others than uid %u: an import "
					 "mount writes only where no one else can",
					 path, folders[i][0] ? "/" : "", folders[i],
					 (unsigned)geteuid());
	}
	return 0;
}

/*
 * Add the folder @path (made if missing when @create) to what the daemon reads as itself;
 * one the mount @written in must be written by no one else.
 */
static int trust(struct importfs *fs, const char *path, bool create, bool written,
		 struct error *err)
{
	char real[PATH_MAX];
	char *copy;
	int fd, rc;

	if (fs->trusted_count == sizeof(fs->trusted) / sizeof(fs->trusted[0]))
		return error_set(err, EINVAL, "too many roots and source folders");
	fd = fsutil_open_trusted_folder(path, create, real);
	if (fd < 0)
		return error_errno(err, -fd, "cannot use the folder", path);
	if (written && (rc = writable_by_others(fd, real, err))) {
		close(fd);
		return rc;
	}
	if (!(copy = strdup(real))) {
		close(fd);
		return error_set(err, ENOMEM, "out of memory");
	}
	fs->trusted[fs->trusted_count] = copy;
	fs->trusted_fds[fs->trusted_count++] = fd;
	return 0;
}

/* The store's roots and the mount's target roots, then the folders of sources=. */
static int trust_roots(struct importfs *fs, struct error *err)
{
	char *list = fs->o->sources ? strdup(fs->o->sources) : NULL;
	int rc = 0;

	for (size_t i = 0; rc == 0 && store_root(fs->store, i); i++)
		rc = trust(fs, store_root(fs->store, i), false, true, err);
	for (size_t i = 0; rc == 0 && i < fs->given_count; i++) {
		const char *roots[] = {fs->given[i].target_vm_data_root,
				       fs->given[i].target_vhd_data_root,
				       fs->given[i].target_snapshot_data_root};

		for (size_t k = 0; rc == 0 && k < 3; k++)
			if (roots[k])
				rc = trust(fs, roots[k], true, true, err);
	}
	fs->written_count = fs->trusted_count;
	/* Where the store's Windows paths lie: read, never written. */
	for (size_t i = 0; rc == 0 && i < pathmap_count(fs->o->pathmap); i++)
		rc = trust(fs, pathmap_target(fs->o->pathmap, i), false, false, err);
	fs->own_trusted = fs->trusted_count;
	for (char *next = list, *at; rc == 0 && next && (at = strsep(&next, ":"));) {
		if (!*at)
			continue;
		if (at[0] != '/')
			rc = error_set(err, EINVAL, "sources=: '%s' is not an absolute path", at);
		else
			rc = trust(fs, at, false, false, err);
	}
	free(list);
	return rc;
}

/*
 * The mount's own target VHD roots (its options and settings file) that lie outside the
 * store become folders of the store before any import writes there (docs/FORMAT.md): the
 * VMs registered there are read from them later. An import's own document adds none.
 */
static int record_targets(struct importfs *fs, struct error *err)
{
	for (size_t i = 0; i < fs->given_count; i++) {
		int rc = fs->given[i].target_vhd_data_root
				 ? store_record_folder(fs->store, fs->given[i].target_vhd_data_root, err)
				 : 0;

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Tell the log what a recovery left alone. */
static void log_notice(void *ctx, const char *message)
{
	(void)ctx;
	fslog(FUSE_LOG_WARNING, "%s", message);
}

/* What killed imports left, before this mount adds its own. */
static int recover(struct importfs *fs, struct error *err)
{
	struct import_settings t = {0};
	char vm[PATH_MAX], snap[PATH_MAX];
	int rc;

	snprintf(vm, sizeof(vm), "%s", fs->store_root);
	snprintf(snap, sizeof(snap), "%s", fs->store_root);
	for (size_t i = 0; i < fs->given_count; i++) {
		if (fs->given[i].target_vm_data_root)
			snprintf(vm, sizeof(vm), "%s", fs->given[i].target_vm_data_root);
		if (fs->given[i].target_snapshot_data_root)
			snprintf(snap, sizeof(snap), "%s", fs->given[i].target_snapshot_data_root);
	}
	t.target_vm_data_root = vm;
	t.target_vhd_data_root = fs->staging_root;
	t.target_snapshot_data_root = snap;
	rc = import_recover(fs->store, &t, log_notice, NULL, err);
	return rc;
}

/* Unmounted: imports not registered are rolled back. */
static void shut_down(struct importfs *fs)
{
	if (fs->checker_running) {
		pthread_mutex_lock(&fs->mu);
		fs->stop = true;
		pthread_cond_signal(&fs->wake);
		pthread_mutex_unlock(&fs->mu);
		pthread_join(fs->checker, NULL);
	}
	for (size_t i = 0; i < fs->count; i++) {
		struct imp *imp = fs->imps[i];

		if (imp->dirfd >= 0) {
			remove_staged(fs, imp);
			if (imp->state != REGISTERED && !imp->gone && atomic_load(&imp->files) > 0)
				fslog(FUSE_LOG_WARNING,
				      "import '%s' was not complete at unmount: rolled "
				      "back",
				      imp->name);
		}
		issues_free(imp->issues, imp->issue_count);
		issues_free(imp->closes, imp->close_count);
		discard_view(imp);
		free(imp->vm_name);
		free(imp->name);
		pthread_rwlock_destroy(&imp->rw);
		free(imp);
	}
	free(fs->imps);
	for (size_t i = 0; i < fs->trusted_count; i++) {
		free((char *)fs->trusted[i]);
		close(fs->trusted_fds[i]);
	}
	if (fs->staging_fd >= 0)
		close(fs->staging_fd);
}

int importfs_main(const struct importfs_options *o, struct fuse_args *args)
{
	struct importfs fs = {.o = o, .staging_fd = -1};
	pthread_condattr_t clock;
	const char *roots[IMPORTFS_MAX_ROOTS] = {o->store};
	struct store_options so = {
		.roots = roots, .root_count = 1, .pathmap = o->pathmap, .recorded = true};
	char *more = o->more_roots ? strdup(o->more_roots) : NULL;
	struct fuse_loop_config *loop = NULL;
	struct fuse *fuse = NULL;
	struct error err;
	int rc = 2;

	error_clear(&err);
	pthread_mutex_init(&fs.mu, NULL);
	/* Timed waits on the monotonic clock: a change of the time of day does not stall them. */
	pthread_condattr_init(&clock);
	pthread_condattr_setclock(&clock, CLOCK_MONOTONIC);
	pthread_cond_init(&fs.wake, &clock);
	pthread_condattr_destroy(&clock);
	clock_gettime(CLOCK_REALTIME, &fs.started);
	rc = fsutil_open_trusted_folder(o->store, false, fs.store_root);
	if (rc < 0) {
		fslog(FUSE_LOG_ERR, "cannot use the store '%s': %s", o->store, strerror(-rc));
		rc = 1;
		goto out;
	}
	close(rc);
	/* A folder that is not a store is said to be none before anything is made in it. */
	if (store_check_root(fs.store_root, &err) < 0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		rc = 1;
		goto out;
	}
	rc = 2;
	for (char *next = more, *at; next && (at = strsep(&next, ":"));) {
		if (!*at)
			continue;
		if (so.root_count == IMPORTFS_MAX_ROOTS || at[0] != '/') {
			fslog(FUSE_LOG_ERR, "roots=: '%s' %s", at,
			      at[0] != '/' ? "is not an absolute path" : "is one root too many");
			goto out;
		}
		roots[so.root_count++] = at;
	}
	if (load_settings(&fs, &err) < 0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		goto out;
	}
	rc = 1;
	if (store_open(&fs.store, &so, &err) < 0 || trust_roots(&fs, &err) < 0 ||
	    record_targets(&fs, &err) < 0 || recover(&fs, &err) < 0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		goto out;
	}
	fuse = fuse_new(args, &ops, sizeof(ops), &fs);
	if (!fuse) {
		rc = 2;
		goto out;
	}
	if (fuse_mount(fuse, o->mountpoint) != 0)
		goto out;
	if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out_unmount;
	fuse_daemonize(o->foreground);
	if (!o->foreground)
		fslog_background();
	if (pthread_create(&fs.checker, NULL, checker, &fs) != 0) {
		fslog(FUSE_LOG_ERR, "cannot start the checking thread");
		goto out_signals;
	}
	fs.checker_running = true;
	if (o->singlethread) {
		rc = fuse_loop(fuse);
	} else {
		loop = fuse_loop_cfg_create();
		if (loop) {
			fuse_loop_cfg_set_clone_fd(loop, o->clone_fd);
			if (o->max_threads <= 100000)
				fuse_loop_cfg_set_max_threads(loop, o->max_threads);
			if (o->max_idle_threads <= 100000)
				fuse_loop_cfg_set_idle_threads(loop, o->max_idle_threads);
		}
		rc = loop ? fuse_loop_mt(fuse, loop) : 1;
	}
	rc = rc == 0 || rc == -ECONNABORTED || rc == -ENODEV ? 0 : 1;
out_signals:
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out:
	shut_down(&fs);
	if (fuse)
		fuse_destroy(fuse);
	fuse_loop_cfg_destroy(loop);
	store_free(fs.store);
	for (size_t i = 0; i < fs.given_count; i++)
		import_settings_free(&fs.given[i]);
	free(more);
	return rc;
}
