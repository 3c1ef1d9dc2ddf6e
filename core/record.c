/*
 * record.c - a store's record of the folders outside its roots that imports
 * write disks to: read by every reader of the store, added to by imports.
 */
#include "record.h"

#include "beneath.h"
#include "error.h"
#include "fsutil.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD_TEMP "." RECORD_FILE ".new"

void record_free(char **folders, size_t count)
{
	for (size_t i = 0; folders && i < count; i++)
		free(folders[i]);
	free(folders);
}

/* Whether @path may stand in a record: absolute, plain components, one line. */
static bool recordable(const char *path, size_t len)
{
	return len > 0 && len < PATH_MAX && path[0] == '/' && !memchr(path, '\n', len) &&
	       !memchr(path, '\0', len) && beneath_lexically(path, "/", NULL);
}

int record_parse(const char *text, size_t len, const char *name, char ***folders, size_t *count,
		 struct error *err)
{
	const char *at = text, *end = text + len;
	size_t n = 0, line = 1, magic = strlen(RECORD_MAGIC);
	char **list = NULL;
	int rc = 0;

	*folders = NULL;
	*count = 0;
	if (len > RECORD_MAX_BYTES)
		return error_set(err, EINVAL, "record '%s' is larger than %u bytes", name,
				 RECORD_MAX_BYTES);
	if (len < magic + 1 || memcmp(text, RECORD_MAGIC, magic) != 0 || text[magic] != '\n')
		return error_set(err, EINVAL, "'%s' is not a record of folders (no '%s' line)",
				 name, RECORD_MAGIC);
	for (at += magic + 1; at < end && rc == 0;) {
		const char *nl = memchr(at, '\n', (size_t)(end - at));
		char **grown;
		char *path;

		line++;
		/* Written whole and renamed into place: a line cut short is damage. */
		if (!nl || !recordable(at, (size_t)(nl - at))) {
			rc = error_set(
				err, EINVAL,
				"line %zu of record '%s' is not an absolute path of plain names "
				"ending in a newline",
				line, name);
			break;
		}
		path = strndup(at, (size_t)(nl - at));
		grown = path ? realloc(list, (n + 1) * sizeof(*grown)) : NULL;
		if (!grown) {
			free(path);
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		list = grown;
		list[n++] = path;
		at = nl + 1;
	}
	if (rc < 0) {
		record_free(list, n);
		return rc;
	}
	*folders = list;
	*count = n;
	return 0;
}

/* Whether @st may be trusted: its owner is @uid (or root when @root_too), no one else's bits. */
static bool private_to(const struct stat *st, bool root_too)
{
	return (st->st_uid == geteuid() || (root_too && st->st_uid == 0)) && !(st->st_mode & 077);
}

/*
 * The record in the daemon's folder open on @dirfd (@where: "<root>/<folder>", for messages)
 * into *@folders: none when missing. Its owner must be this process's user, or root too when
 * @root_too.
 */
static int read_in(int dirfd, const char *where, bool root_too, char ***folders, size_t *count,
		   struct error *err)
{
	char name[PATH_MAX + 16], *text = NULL;
	struct stat st;
	size_t len = 0;
	int fd, rc;

	*folders = NULL;
	*count = 0;
	snprintf(name, sizeof(name), "%s/%s", where, RECORD_FILE);
	fd = beneath_open(dirfd, RECORD_FILE, O_RDONLY | O_NONBLOCK, 0);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return error_set(err, -fd, "cannot open the store's record '%s': %s", name,
				 strerror(-fd));
	if (fstat(fd, &st) < 0) {
		rc = error_errno(err, errno, "cannot stat", name);
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || !private_to(&st, root_too)) {
		close(fd);
		return error_set(err, EPERM,
				 "the store's record '%s' (uid %u, mode %04o, %lu links) is not a "
				 "file of uid %u%s alone, mode 0600: not used",
				 name, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
				 (unsigned long)st.st_nlink, (unsigned)geteuid(),
				 root_too && geteuid() != 0 ? " or root" : "");
	}
	rc = fsutil_read_whole(fd, RECORD_MAX_BYTES, &text, &len);
	close(fd);
	if (rc < 0)
		return rc == -EFBIG ? error_set(err, EINVAL, "record '%s' is larger than %u bytes",
						name, RECORD_MAX_BYTES)
				    : error_errno(err, -rc, "cannot read", name);
	rc = record_parse(text, len, name, folders, count, err);
	free(text);
	return rc;
}

int record_read(int rootfd, const char *root, char ***folders, size_t *count, struct error *err)
{
	char where[PATH_MAX + 32];
	struct stat st;
	int dirfd, rc;

	*folders = NULL;
	*count = 0;
	snprintf(where, sizeof(where), "%s/%s", root, JOURNAL_FOLDER);
	dirfd = beneath_open(rootfd, JOURNAL_FOLDER, O_RDONLY | O_DIRECTORY, 0);
	if (dirfd == -ENOENT)
		return 0;
	if (dirfd < 0)
		return error_set(err, -dirfd, "cannot open '%s': %s", where, strerror(-dirfd));
	if (fstat(dirfd, &st) < 0) {
		rc = error_errno(err, errno, "cannot stat", where);
		close(dirfd);
		return rc;
	}
	if (!private_to(&st, true)) {
		rc = error_set(err, EPERM,
			       "'%s' (uid %u, mode %04o) is not a folder of uid %u%s alone: the "
			       "store's record in it is not used",
			       where, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
			       (unsigned)geteuid(), geteuid() != 0 ? " or root" : "");
		close(dirfd);
		return rc;
	}
	rc = read_in(dirfd, where, true, folders, count, err);
	close(dirfd);
	return rc;
}

/* Write @text (@len bytes) as the record in @dirfd: a temporary name, fsync, rename, fsync. */
static int replace_record(int dirfd, const char *where, const char *text, size_t len,
			  struct error *err)
{
	int fd, rc;

	/* A temporary name a write cut short left (the store's lock is held: no one else's). */
	beneath_unlink(dirfd, RECORD_TEMP, 0);
	fd = beneath_open(dirfd, RECORD_TEMP, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return error_set(err, -fd, "cannot create '%s/%s': %s", where, RECORD_TEMP,
				 strerror(-fd));
	rc = fsutil_pwrite_full(fd, text, len, 0);
	if (rc == 0 && fchmod(fd, 0600) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = beneath_rename(dirfd, RECORD_TEMP, dirfd, RECORD_FILE, 0);
	if (rc < 0) {
		beneath_unlink(dirfd, RECORD_TEMP, 0);
		return error_set(err, -rc, "cannot write the store's record '%s/%s': %s", where,
				 RECORD_FILE, strerror(-rc));
	}
	fsync(dirfd);
	return 0;
}

int record_add(int rootfd, const char *root, const char *folder, struct error *err)
{
	char where[PATH_MAX + 32], **folders = NULL, *text = NULL;
	size_t count = 0, len = 0;
	FILE *out;
	int dirfd, rc;

	if (!recordable(folder, strlen(folder)))
		return error_set(
			err, EINVAL,
			"'%s' cannot be recorded as a folder of the store: not an absolute "
			"path of plain names",
			folder);
	snprintf(where, sizeof(where), "%s/%s", root, JOURNAL_FOLDER);
	dirfd = beneath_private_folder(rootfd, root, JOURNAL_FOLDER, true, err);
	if (dirfd < 0)
		return dirfd;
	rc = read_in(dirfd, where, false, &folders, &count, err);
	for (size_t i = 0; rc == 0 && i < count; i++)
		if (strcmp(folders[i], folder) == 0)
			goto out; /* listed already */
	if (rc == 0) {
		out = open_memstream(&text, &len);
		if (!out) {
			rc = error_set(err, ENOMEM, "out of memory");
			goto out;
		}
		fprintf(out, "%s\n", RECORD_MAGIC);
		for (size_t i = 0; i < count; i++)
			fprintf(out, "%s\n", folders[i]);
		fprintf(out, "%s\n", folder);
		if (fclose(out) != 0 || !text) {
			rc = error_set(err, ENOMEM, "out of memory");
			goto out;
		}
		if (len > RECORD_MAX_BYTES)
			rc = error_set(err, EFBIG, "the store's record '%s/%s' would pass %u bytes",
				       where, RECORD_FILE, RECORD_MAX_BYTES);
		else
			rc = replace_record(dirfd, where, text, len, err);
	}
out:
	free(text);
	record_free(folders, count);
	close(dirfd);
	return rc;
}
