/*
 * staging.c - the daemon's folder of import folders.
 */
#include "staging.h"

#include "beneath.h"
#include "error.h"
#include "fsutil.h"

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

int staging_open(int rootfd, const char *root, struct error *err)
{
	return beneath_private_folder(rootfd, root, STAGING_FOLDER, true, err);
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

size_t staging_sweep(int stagingfd)
{
	char **names = NULL;
	size_t count = 0, left = 0;

	if (fsutil_list_names_at(stagingfd, NULL, &names, &count) < 0)
		return 0;
	for (size_t i = 0; i < count; i++) {
		int fd = openat(stagingfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0) {
			/* Not a folder: nothing of a mount, it goes. */
			if (errno == ENOTDIR || errno == ELOOP)
				left += beneath_remove_tree(stagingfd, names[i], NULL) < 0;
			continue;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			left += beneath_remove_tree(stagingfd, names[i], NULL) < 0;
		close(fd);
	}
	fsutil_names_free(names, count);
	return left;
}
