/*
 * journal.c - import journals: written before an import places its files,
 * read back by recovery.
 */
#include "journal.h"

#include "beneath.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void journal_entries_free(struct journal_entry *entries, size_t count)
{
	for (size_t i = 0; entries && i < count; i++)
		free(entries[i].path);
	free(entries);
}

/* A decimal number at *@at, up to a space; moves *@at past the space. */
static bool number(const char **at, const char *end, unsigned long long *out)
{
	const char *p = *at;
	unsigned long long v = 0;

	if (p >= end || *p < '0' || *p > '9')
		return false;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (v > (~0ull - digit) / 10)
			return false; /* past the largest 64-bit number */
		v = v * 10 + digit;
	}
	if (p >= end || *p != ' ')
		return false;
	*at = p + 1;
	*out = v;
	return true;
}

int journal_parse(const char *text, size_t len, const char *name, struct journal_entry **entries,
		  size_t *count, struct error *err)
{
	const char *at = text, *end = text + len;
	struct journal_entry *list = NULL;
	size_t n = 0, line = 1, magic = strlen(JOURNAL_MAGIC);
	int rc = 0;

	*entries = NULL;
	*count = 0;
	if (len > JOURNAL_MAX_BYTES)
		return error_set(err, EINVAL, "journal '%s' is larger than %u bytes", name,
				 JOURNAL_MAX_BYTES);
	if (len < magic + 1 || memcmp(text, JOURNAL_MAGIC, magic) != 0 || text[magic] != '\n')
		return error_set(err, EINVAL, "'%s' is not an import journal (no '%s' line)", name,
				 JOURNAL_MAGIC);
	at += magic + 1;
	while (at < end && rc == 0) {
		const char *nl = memchr(at, '\n', (size_t)(end - at));
		struct journal_entry e = {0};
		struct journal_entry *grown;

		line++;
		if (!nl) {
			/* A last line cut short: the import was killed while writing it, before
			 * placing that name. */
			break;
		}
		if (!number(&at, nl, &e.dev) || !number(&at, nl, &e.ino) || at >= nl ||
		    at[0] != '/' || memchr(at, '\0', (size_t)(nl - at)) || nl - at >= PATH_MAX) {
			rc = error_set(err, EINVAL, "line %zu of journal '%s' is not '<dev> <ino> /path'",
				       line, name);
			break;
		}
		if (!(e.path = strndup(at, (size_t)(nl - at))) ||
		    !(grown = realloc(list, (n + 1) * sizeof(*grown)))) {
			free(e.path);
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		list = grown;
		list[n++] = e;
		at = nl + 1;
	}
	if (rc < 0) {
		journal_entries_free(list, n);
		return rc;
	}
	*entries = list;
	*count = n;
	return 0;
}

int journal_folder_open(int rootfd, const char *root, bool create, struct error *err)
{
	return beneath_private_folder(rootfd, root, JOURNAL_FOLDER, create, err);
}

/* "<id>.journal" into @out, for a GUID @id. */
static int journal_name(const char *id, char out[64])
{
	if (!id || strlen(id) != 36 || strspn(id, "0123456789abcdefABCDEF-") != 36)
		return -EINVAL;
	snprintf(out, 64, "%s.journal", id);
	return 0;
}

/* Append the line of @e to @f. */
static int entry_line(FILE *f, const struct journal_entry *e)
{
	if (strchr(e->path, '\n') || e->path[0] != '/')
		return -EINVAL;
	fprintf(f, "%llu %llu %s\n", e->dev, e->ino, e->path);
	return 0;
}

/* Open the journal of @id in @folderfd with @flags, as a stream. */
static FILE *journal_stream(int folderfd, const char *id, int flags, const char *how, int *rc)
{
	char name[64];
	FILE *f;
	int fd;

	*rc = journal_name(id, name);
	if (*rc < 0)
		return NULL;
	fd = openat(folderfd, name, flags | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		*rc = -errno;
		return NULL;
	}
	if (!(f = fdopen(fd, how))) {
		*rc = -errno;
		close(fd);
	}
	return f;
}

/* Flush, fsync and close @f. */
static int finish(FILE *f)
{
	int rc = 0;

	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		rc = -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

int journal_write(int folderfd, const char *id, const struct journal_entry *entries,
		  size_t count, struct error *err)
{
	int rc;
	FILE *f = journal_stream(folderfd, id, O_CREAT | O_EXCL, "w", &rc);

	if (!f)
		return error_set(err, -rc, "cannot create the journal of %s: %s", id, strerror(-rc));
	fprintf(f, "%s\n", JOURNAL_MAGIC);
	for (size_t i = 0; i < count && rc >= 0; i++)
		rc = entry_line(f, &entries[i]);
	if (rc < 0) {
		fclose(f);
		journal_remove(folderfd, id);
		return error_set(err, -rc, "cannot write the journal of %s: %s", id, strerror(-rc));
	}
	rc = finish(f);
	if (rc == 0 && fsync(folderfd) < 0)
		rc = -errno;
	if (rc < 0)
		return error_set(err, -rc, "cannot write the journal of %s: %s", id, strerror(-rc));
	return 0;
}

int journal_add(int folderfd, const char *id, const struct journal_entry *entry,
		struct error *err)
{
	int rc;
	FILE *f = journal_stream(folderfd, id, O_APPEND, "a", &rc);

	if (!f)
		return error_set(err, -rc, "cannot write the journal of %s: %s", id, strerror(-rc));
	rc = entry_line(f, entry);
	if (rc < 0) {
		fclose(f);
		return error_set(err, -rc, "cannot write the journal of %s: %s", id, strerror(-rc));
	}
	rc = finish(f);
	return rc < 0 ? error_set(err, -rc, "cannot write the journal of %s: %s", id, strerror(-rc))
		      : 0;
}

void journal_remove(int folderfd, const char *id)
{
	char name[64];

	if (journal_name(id, name) == 0 && unlinkat(folderfd, name, 0) == 0)
		fsync(folderfd);
}

/* ---- recovery ---- */

static void say(void (*report)(void *, const char *), void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(void (*report)(void *, const char *), void *ctx, const char *fmt, ...)
{
	char message[PATH_MAX + 256];
	va_list ap;

	if (!report)
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	report(ctx, message);
}

/* Remove what @e names if it is safe and still the file the import made; 1 if left alone. */
static int undo_entry(const struct journal_entry *e, const struct journal_root *roots,
		      size_t root_count, void (*report)(void *, const char *), void *ctx)
{
	char name[NAME_MAX + 1];
	const char *rel = NULL;
	struct stat folder, st;
	size_t i;
	int parent, left = 0;

	for (i = 0; i < root_count; i++)
		if (beneath_lexically(e->path, roots[i].path, &rel) && rel[0])
			break;
	if (i == root_count) {
		say(report, ctx, "journal entry '%s' lies under no root of the store: left alone",
		    e->path);
		return 1;
	}
	parent = beneath_parent(roots[i].fd, rel, name);
	if (parent < 0) {
		if (parent == -ENOENT)
			return 0; /* its folder is gone already */
		say(report, ctx, "cannot reach '%s' without a link: %s: left alone", e->path,
		    strerror(-parent));
		return 1;
	}
	if (fstat(parent, &folder) < 0 || folder.st_uid != geteuid() ||
	    (folder.st_mode & (S_IWGRP | S_IWOTH))) {
		say(report, ctx,
		    "the folder of '%s' may be written by others than uid %u: left alone (remove "
		    "it by hand if it is an import's)",
		    e->path, (unsigned)geteuid());
		left = 1;
	} else if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		   (unsigned long long)st.st_dev == e->dev &&
		   (unsigned long long)st.st_ino == e->ino) {
		int rc = S_ISDIR(st.st_mode) ? beneath_remove_tree(parent, name, NULL)
					     : (unlinkat(parent, name, 0) < 0 ? -errno : 0);

		if (rc < 0) {
			say(report, ctx, "cannot remove '%s': %s", e->path, strerror(-rc));
			left = 1;
		}
	}
	close(parent);
	return left;
}

size_t journal_recover(int folderfd, int vmrootfd, const struct journal_root *roots, size_t count,
		       void (*report)(void *ctx, const char *message), void *ctx)
{
	int listfd = dup(folderfd);
	DIR *d = listfd >= 0 ? fdopendir(listfd) : NULL;
	size_t left = 0;
	struct dirent *e;

	if (!d) {
		if (listfd >= 0)
			close(listfd);
		return 0;
	}
	while ((e = readdir(d))) {
		char config[128], id[37];
		struct journal_entry *entries = NULL;
		size_t n = 0, len = 0;
		struct error err;
		struct stat st;
		char *text = NULL;
		int fd;

		/* Hidden names are temporary; the store's record of its folders is no journal. */
		if (e->d_name[0] == '.' || strcmp(e->d_name, RECORD_FILE) == 0)
			continue;
		snprintf(id, sizeof(id), "%.36s", e->d_name);
		if (strlen(e->d_name) != 44 || strcmp(e->d_name + 36, ".journal") != 0 ||
		    journal_name(id, config) < 0) {
			say(report, ctx, "'%s' in the journal folder is no journal: left alone",
			    e->d_name);
			left++;
			continue;
		}
		fd = openat(folderfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_uid != geteuid() || st.st_nlink != 1) {
			say(report, ctx, "journal '%s' is not a file of uid %u alone: left alone",
			    e->d_name, (unsigned)geteuid());
			if (fd >= 0)
				close(fd);
			left++;
			continue;
		}
		snprintf(config, sizeof(config), HYPERV_VMS_DIR "/%s.xml", id);
		if (beneath_stat(vmrootfd, config, &st) == 0) {
			/* Committed: the journal alone goes. */
			close(fd);
			unlinkat(folderfd, e->d_name, 0);
			continue;
		}
		error_clear(&err);
		if (fsutil_read_whole(fd, JOURNAL_MAX_BYTES, &text, &len) < 0 ||
		    journal_parse(text, len, e->d_name, &entries, &n, &err) < 0) {
			say(report, ctx, "%s: left alone", error_message(&err));
			left++;
		} else {
			size_t undone = 0;

			/* Newest first: files before the folders that hold them. */
			for (size_t i = n; i-- > 0;)
				undone += (size_t)undo_entry(&entries[i], roots, count, report, ctx);
			left += undone;
			if (!undone)
				unlinkat(folderfd, e->d_name, 0);
		}
		free(text);
		journal_entries_free(entries, n);
		close(fd);
	}
	closedir(d);
	fsync(folderfd);
	return left;
}
