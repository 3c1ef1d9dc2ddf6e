/*
 * savedstate.c - what of a saved-state folder a copy carries, and the copy
 * into a store's folder (see savedstate.h).
 */
#include "savedstate.h"

#include "beneath.h"
#include "error.h"
#include "fsutil.h"
#include "pathbuf.h"
#include "rollback.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

bool savedstate_rename_ids(char *name, const struct savedstate_rename *renames, size_t count)
{
	size_t n = strlen(name);
	bool renamed = false;

	for (size_t i = 0; i + 36 <= n; i++) {
		const char *to = NULL;
		bool lower = false;

		for (size_t k = 0; k < count && !to; k++)
			if (strncasecmp(name + i, renames[k].old_id, 36) == 0)
				to = renames[k].new_id;
		if (!to)
			continue;
		for (int k = 0; k < 36; k++)
			lower = lower || islower((unsigned char)name[i + k]);
		for (int k = 0; k < 36; k++)
			name[i + k] = (char)(lower ? tolower((unsigned char)to[k])
						   : toupper((unsigned char)to[k]));
		renamed = true;
		i += 35;
	}
	return renamed;
}

static int compare_files(const void *a, const void *b)
{
	return strcmp(((const struct savedstate_file *)a)->name,
		      ((const struct savedstate_file *)b)->name);
}

/* savedstate_files() of the folder open as @d, named @folder in messages. */
static int list_open(DIR *d, const char *folder, const struct savedstate_rename *renames,
		     size_t rename_count, struct savedstate_file **out, size_t *out_count,
		     struct error *err)
{
	struct savedstate_file *files = NULL;
	size_t count = 0, cap = 0;
	struct dirent *e;
	int rc = 0;

	while (rc == 0 && (e = readdir(d))) {
		struct savedstate_file *f;
		struct stat st;

		/* Not state: a hidden name (a writer's temporary file), a name not plain. */
		if (e->d_name[0] == '.' || !beneath_plain_name(e->d_name))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				rc = error_set(err, errno, "cannot stat '%s/%s': %s", folder,
					       e->d_name, strerror(errno));
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (count == cap) {
			struct savedstate_file *grown;

			cap = cap ? cap * 2 : 4;
			grown = realloc(files, cap * sizeof(*grown));
			if (!grown) {
				rc = error_set(err, ENOMEM, "out of memory");
				break;
			}
			files = grown;
		}
		f = &files[count++];
		/* A plain name fits: at most NAME_MAX bytes. */
		strcpy(f->name, e->d_name);
		strcpy(f->as, e->d_name);
		savedstate_rename_ids(f->as, renames, rename_count);
		f->size = (uint64_t)st.st_size;
	}
	if (rc < 0) {
		free(files);
		return rc;
	}
	if (count)
		qsort(files, count, sizeof(*files), compare_files);
	*out = files;
	*out_count = count;
	return 0;
}

/* Open the saved-state folder @folder as a source, no link followed, into *@d. */
static int open_folder(const char *folder, DIR **d, struct error *err)
{
	*d = fsutil_opendir_nofollow(folder);
	return *d ? 0 : error_errno(err, errno, "cannot read the saved state in", folder);
}

int savedstate_files(const char *folder, const struct savedstate_rename *renames,
		     size_t rename_count, struct savedstate_file **files, size_t *count,
		     struct error *err)
{
	DIR *d;
	int rc = open_folder(folder, &d, err);

	*files = NULL;
	*count = 0;
	if (rc < 0)
		return rc;
	rc = list_open(d, folder, renames, rename_count, files, count, err);
	closedir(d);
	return rc;
}

/* Whether @name is a .vsv file's, which marks a saved state (docs/FORMAT.md). */
static bool is_vsv(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcasecmp(name + n - 4, ".vsv") == 0;
}

/*
 * The copy below serves the store's own commands (snapshot, apply), which
 * write the admin's store: its path calls carry the door's marker. The
 * import only lists (savedstate_files()) and writes through core/beneath.
 *
 * Copy the file @f of the folder open as @dirfd (named @from) into the
 * folder @to: written under a temporary name, fsynced, then given its name,
 * never over another. Noted in @made once named.
 */
static int copy_one(int dirfd, const char *from, const struct savedstate_file *f, const char *to,
		    struct rollback *made, struct error *err)
{
	struct pathbuf path = PATHBUF_INIT;
	char temp[PATH_MAX];
	struct stat st;
	int in, out = -1, rc;

	if (pathbuf_join(&path, to) < 0 || pathbuf_join(&path, f->as) < 0)
		return error_set(err, ENOMEM, "out of memory");
	/* Opened as it was listed: no link, nothing but a regular file. */
	in = openat(dirfd, f->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	rc = in < 0 || fstat(in, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL;
	if (rc) {
		rc = error_set(err, rc, "cannot copy '%s/%s': %s", from, f->name,
			       rc == EINVAL ? "not a regular file" : strerror(rc));
		goto out;
	}
	out = fsutil_make_partial(path.buf, false, temp, sizeof(temp));
	if (out < 0) {
		rc = error_errno(err, -out, "cannot create", path.buf);
		goto out;
	}
	rc = fsutil_copy_data(in, out, (uint64_t)st.st_size, NULL, NULL);
	if (rc == 0 && (fchmod(out, 0644) < 0 || fsync(out) < 0))
		rc = -errno;
	if (rc == 0)
		rc = fsutil_publish(temp, path.buf);
	if (rc < 0) {
		unlink(temp); /* door: the store's commands only (above) */
		rc = error_errno(err, rc == -ENODATA ? EIO : -rc, "cannot copy the saved state to",
				 path.buf);
	} else if (rollback_add(made, path.buf) < 0) {
		unlink(path.buf); /* door: the store's commands only (above) */
		rc = error_set(err, ENOMEM, "out of memory");
	}
out:
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	pathbuf_release(&path);
	return rc;
}

int savedstate_copy(const char *from, const char *to, const struct savedstate_rename *renames,
		    size_t rename_count, struct rollback *made, struct error *err)
{
	struct savedstate_file *files = NULL;
	size_t count = 0;
	struct stat st;
	DIR *d;
	int rc = open_folder(from, &d, err);

	if (rc < 0)
		return rc;
	rc = list_open(d, from, renames, rename_count, &files, &count, err);
	/* door: the store's commands only (above copy_one()) */
	if (rc == 0 && mkdir(to, 0755) == 0) {
		if (rollback_add(made, to) < 0) {
			rmdir(to); /* door: the store's commands only */
			rc = error_set(err, ENOMEM, "out of memory");
		}
	} else if (rc == 0 && errno != EEXIST) {
		rc = error_errno(err, errno, "cannot create", to);
	} else if (rc == 0 && (lstat(to, &st) < 0 || !S_ISDIR(st.st_mode))) { /* door: as above */
		/* Taken by a file or a link: never written through. */
		rc = error_set(err, ENOTDIR, "cannot copy the saved state to '%s': not a folder",
			       to);
	}
	/* The .vsv last: a saved state is seen only once it is whole. */
	for (int vsv = 0; vsv < 2 && rc == 0; vsv++)
		for (size_t i = 0; i < count && rc == 0; i++)
			if (is_vsv(files[i].as) == (vsv == 1))
				rc = copy_one(dirfd(d), from, &files[i], to, made, err);
	free(files);
	closedir(d);
	return rc;
}
