/*
 * asuser.c - another user's credentials for one thread, and source scopes.
 */
#include "asuser.h"

#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int asuser_lookup(uid_t uid, gid_t gid, struct asuser *user)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int n = ASUSER_MAX_GROUPS;

	memset(user, 0, sizeof(*user));
	user->uid = uid;
	user->gid = gid;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0 || !found)
		return 0; /* no name: its primary group alone */
	if (getgrouplist(found->pw_name, gid, user->groups, &n) < 0)
		n = ASUSER_MAX_GROUPS; /* more than we keep: the first ones */
	user->group_count = (size_t)n;
	return 0;
}

/* The thread's own setgroups(): glibc's changes every thread of the process. */
static int thread_setgroups(size_t count, const gid_t *groups)
{
	return syscall(SYS_setgroups, count, groups) < 0 ? -errno : 0;
}

int asuser_enter(const struct asuser *user, struct asuser_saved *saved)
{
	int rc;

	memset(saved, 0, sizeof(*saved));
	saved->fsuid = (uid_t)setfsuid((uid_t)-1);
	saved->fsgid = (gid_t)setfsgid((gid_t)-1);
	saved->group_count = getgroups(ASUSER_MAX_GROUPS, saved->groups);
	if (saved->group_count < 0)
		return -errno;
	if (user->uid == saved->fsuid && geteuid() != 0)
		return 0; /* already that user: nothing to change */
	rc = thread_setgroups(user->group_count, user->groups);
	if (rc < 0)
		return rc;
	saved->entered = true;
	/* setfsgid() and setfsuid() say nothing of failure but by the value a second call shows. */
	setfsgid(user->gid);
	setfsuid(user->uid);
	if ((uid_t)setfsuid((uid_t)-1) != user->uid || (gid_t)setfsgid((gid_t)-1) != user->gid) {
		asuser_leave(saved);
		return -EPERM;
	}
	return 0;
}

void asuser_leave(struct asuser_saved *saved)
{
	if (!saved->entered)
		return;
	setfsuid(saved->fsuid);
	setfsgid(saved->fsgid);
	thread_setgroups((size_t)saved->group_count, saved->groups);
	saved->entered = false;
}

/* ---- source scopes ---- */

static __thread const struct asuser_scope *thread_scope;

const struct asuser_scope *asuser_scope_set(const struct asuser_scope *scope)
{
	const struct asuser_scope *was = thread_scope;

	thread_scope = scope;
	return was;
}

const struct asuser_scope *asuser_scope_current(void)
{
	return thread_scope;
}

/* @fd if it is a regular file or a folder, else closed and -EINVAL (a FIFO, a device). */
static int regular(int fd)
{
	struct stat st;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int scope_open(const struct asuser_scope *scope, const char *path, int flags);

int asuser_scope_open(const struct asuser_scope *scope, const char *path, int flags)
{
	/* Never a FIFO, which would hang the open without O_NONBLOCK, nor a device. */
	return regular(scope_open(scope, path, flags | O_NONBLOCK));
}

static int scope_open(const struct asuser_scope *scope, const char *path, int flags)
{
	struct asuser_saved saved;
	const char *rel;
	int fd, rc;

	if (scope->folder && beneath_lexically(path, scope->folder, &rel))
		return beneath_open(scope->folder_fd, rel, flags, 0);
	for (size_t i = 0; i < scope->trusted_count; i++)
		if (beneath_lexically(path, scope->trusted[i], &rel))
			return beneath_open(scope->trusted_fds[i], rel, flags, 0);
	switch (scope->others) {
	case ASUSER_OTHERS_PLAIN:
		/* door: the command line's user names this, with their own rights. */
		fd = open(path, flags | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	case ASUSER_OTHERS_AS_USER:
		if (!scope->user)
			return -EACCES;
		rc = asuser_enter(scope->user, &saved);
		if (rc < 0)
			return rc;
		/* door: as the user, whose rights the kernel checks on every folder on the way. */
		fd = open(path, flags | O_CLOEXEC);
		rc = fd < 0 ? -errno : fd;
		asuser_leave(&saved);
		return rc;
	default:
		return -EACCES;
	}
}
