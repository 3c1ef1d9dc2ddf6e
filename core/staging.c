/*
 * staging.c - the daemon's folder of import folders, imports' temporary
 * names, and the sweep of what no running import holds (staging.h).
 */
#include "staging.h"

#include "beneath.h"
#include "error.h"
#include "fsutil.h"
#include "pathbuf.h"
#include "pathmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int staging_open(int rootfd, const char *root, bool create, struct error *err)
{
	return beneath_private_folder(rootfd, root, STAGING_FOLDER, create, err);
}

/* Whether @fd, locked, is still the folder named @name in @stagingfd. */
static bool still_named(int stagingfd, int fd, const char *name)
{
	struct stat held, named;

	return fstat(fd, &held) == 0 && held.st_nlink > 0 &&
	       fstatat(stagingfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
	       named.st_ino == held.st_ino && named.st_dev == held.st_dev;
}

int staging_new(int stagingfd, char name[STAGING_NAME_MAX])
{
	int rc = -EAGAIN;

	for (int tries = 0; tries <= 100; tries++) {
		uint32_t tag;
		int fd;

		if (getrandom(&tag, sizeof(tag), 0) != sizeof(tag)) {
			struct timespec now;

			clock_gettime(CLOCK_MONOTONIC, &now);
			tag = (uint32_t)(now.tv_nsec ^ tries);
		}
		snprintf(name, STAGING_NAME_MAX, "%08x", tag);
		if (mkdirat(stagingfd, name, 0700) < 0) {
			rc = -errno;
			if (errno == EEXIST)
				continue;
			break;
		}
		fd = openat(stagingfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			continue; /* swept already */
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && still_named(stagingfd, fd, name))
			return fd;
		close(fd); /* a sweep has it, or had it: it goes */
	}
	return rc;
}

int staging_remove(int stagingfd, const char *name, int *fd, char *left)
{
	int rc = beneath_remove_tree(stagingfd, name, left);

	/* The lock goes only now: no sweep takes the folder while it is being removed. */
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return rc;
}

int staging_remove_empty(int stagingfd, const char *name)
{
	return unlinkat(stagingfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int staging_remove_unheld(int dirfd, const char *name)
{
	struct stat st;
	int fd, rc;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	fd = S_ISDIR(st.st_mode)
		     ? openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
		     : -1;
	if (fd < 0 && S_ISDIR(st.st_mode) && errno != ENOTDIR && errno != ELOOP)
		return errno == ENOENT ? 0 : -errno;
	/* Not a folder (or no longer one): nothing of a mount, it goes. */
	if (fd < 0) {
		rc = beneath_remove_tree(dirfd, name, NULL);
		return rc < 0 ? rc : 1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return 0;
	}
	rc = beneath_remove_tree(dirfd, name, NULL);
	close(fd);
	return rc < 0 ? rc : 1;
}

size_t staging_sweep(int stagingfd)
{
	char **names = NULL;
	size_t count = 0, left = 0;

	if (fsutil_list_names_at(stagingfd, NULL, &names, &count) < 0)
		return 0;
	for (size_t i = 0; i < count; i++)
		left += staging_remove_unheld(stagingfd, names[i]) < 0;
	fsutil_names_free(names, count);
	return left;
}

bool staging_is_temp(const char *name)
{
	size_t n = strlen(name), tail = strlen(STAGING_TEMP_SUFFIX);

	return name[0] == '.' && n > tail + 1 && strcmp(name + n - tail, STAGING_TEMP_SUFFIX) == 0;
}

int staging_temp_name(struct pathbuf *out, const char *final)
{
	const char *slash = strrchr(final, '/');

	pathbuf_reset(out);
	if (!slash)
		pathbuf_adds(out, ".");
	else
		pathbuf_add(out, final, slash == final ? 1 : (size_t)(slash - final));
	pathbuf_join(out, ".");
	pathbuf_adds(out, pathmap_basename(final));
	return pathbuf_adds(out, STAGING_TEMP_SUFFIX);
}

void staging_sweep_temps(int rootfd, const char *rel)
{
	int dirfd = rootfd < 0 ? -1 : beneath_open(rootfd, rel, O_RDONLY | O_DIRECTORY, 0);
	char **names = NULL;
	size_t count = 0;

	if (dirfd >= 0 && fsutil_list_names_at(dirfd, staging_is_temp, &names, &count) == 0)
		for (size_t i = 0; i < count; i++)
			staging_remove_unheld(dirfd, names[i]);
	fsutil_names_free(names, count);
	if (dirfd >= 0)
		close(dirfd);
}
