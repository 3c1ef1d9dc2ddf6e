/*
 * asuser.h - acting with another user's credentials, for one thread.
 *
 * The import mount runs as root for users it must not trust: what a user
 * names (the sources of a settings document it wrote) is opened with that
 * user's file system credentials, so the kernel checks every folder on the
 * way and the file itself as it would for that user. Linux keeps the file
 * system user and group (setfsuid, setfsgid) and the supplementary groups
 * per thread; glibc's setgroups() changes every thread of the process, so
 * the groups are set with the raw system call, for the calling thread only.
 * A thread that is not root (or lacks CAP_SETUID/CAP_SETGID) cannot switch:
 * asuser_enter() then succeeds only when @user is itself.
 *
 * Scopes: while a source scope is set on a thread (asuser_scope_set()),
 * fsutil_open_source() and fsutil_opendir() open through it: names under
 * the scope's folder beneath its descriptor, names under its trusted roots
 * beneath theirs (no link followed in either), other names as the scope
 * says: as the process, as its user, or not at all.
 */
#ifndef IMPEX_ASUSER_H
#define IMPEX_ASUSER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* At most this many supplementary groups are taken for a user. */
#define ASUSER_MAX_GROUPS 256

struct asuser {
	uid_t uid;
	gid_t gid;
	gid_t groups[ASUSER_MAX_GROUPS];
	size_t group_count;
};

/** The thread's credentials before asuser_enter(), to go back to. */
struct asuser_saved {
	uid_t fsuid;
	gid_t fsgid;
	gid_t groups[ASUSER_MAX_GROUPS];
	int group_count;
	bool entered;
};

/**
 * Fill @user for the user @uid with primary group @gid and the
 * supplementary groups the group database gives that user (none if the
 * user has no name). Returns 0 or -errno.
 */
int asuser_lookup(uid_t uid, gid_t gid, struct asuser *user);

/**
 * Take @user's file system credentials for the calling thread only; the
 * previous ones go into @saved for asuser_leave(). Returns 0 or -errno
 * (-EPERM when this thread may not switch).
 */
int asuser_enter(const struct asuser *user, struct asuser_saved *saved);

/** Go back to the credentials asuser_enter() saved. Safe when it failed. */
void asuser_leave(struct asuser_saved *saved);

/* ---- source scopes ---- */

/* What a scope does with a name outside its folder and its trusted roots. */
enum asuser_others {
	ASUSER_OTHERS_PLAIN,   /* opened as the process would (the command line, as its user) */
	ASUSER_OTHERS_AS_USER, /* opened with @user's credentials */
	ASUSER_OTHERS_REFUSED, /* -EACCES */
};

/* Filled before the threads that use it take it (asuser_scope_set()), then read-only. */
struct asuser_scope {
	int folder_fd;	    /* the export folder: its names are opened beneath it, no link followed */
	const char *folder; /* its absolute path, as names of it are written */
	const int *trusted_fds; /* folders the daemon reads as itself, beneath them, no link followed */
	const char *const *trusted;
	size_t trusted_count;
	enum asuser_others others;
	const struct asuser *user; /* for ASUSER_OTHERS_AS_USER */
};

/**
 * Set @scope (NULL: none) for the calling thread until the next call;
 * returns the one it replaces. The scope is borrowed: it must outlive its
 * use.
 */
const struct asuser_scope *asuser_scope_set(const struct asuser_scope *scope);

/** The calling thread's scope, or NULL. */
const struct asuser_scope *asuser_scope_current(void);

/**
 * open(2) of the absolute @path with @flags through @scope (see the top of
 * this file). Returns the descriptor or -errno: -EACCES for a name outside
 * the folder and the trusted roots when the scope refuses others.
 */
int asuser_scope_open(const struct asuser_scope *scope, const char *path, int flags);

#endif
