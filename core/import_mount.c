/*
 * import_mount.c - what the imports of one import mount share, opened with
 * the mount's rules applied (import_mount.h).
 */
#include "import_mount.h"

#include "beneath.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "pathbuf.h"
#include "pathmap.h"
#include "staging.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *import_mount_refusal(const struct import_settings *s)
{
	return s->create_copy ? NULL
			      : "create_copy = false: an import mount copies; register in place "
				"with 'impex import'";
}

bool import_mount_may_write(const struct import_mount *m, const char *path, const char *what,
			    char *why, size_t cap)
{
	const char *rel, *refusal = "it lies outside the store and the mount's target roots";

	for (size_t i = 0; i < m->written_count; i++)
		if (beneath_lexically(path, m->trusted[i], &rel)) {
			if (!(refusal = import_target_refusal(rel)))
				return true;
			break;
		}
	snprintf(why, cap, "%s '%s' is refused: %s", what, path, refusal);
	return false;
}

bool import_mount_may_read(const struct import_mount *m, const char *path)
{
	for (size_t i = m->own_trusted; i < m->trusted_count; i++)
		if (beneath_lexically(path, m->trusted[i], NULL))
			return true;
	return false;
}

/*
 * The mount's settings: the file, then the options; their target VHD root holds the imports.
 * The target roots they name are made if missing (the administrator's), before the store's
 * roots are opened: one may be a root of the store too.
 */
static int load_settings(struct import_mount *m, const struct import_mount_options *o,
			 struct error *err)
{
	const struct import_settings *last = NULL;
	struct pathbuf vhd_root = PATHBUF_INIT;
	char real[PATH_MAX];
	int rc = 0, root;

	if (o->settings_file) {
		/* door: the administrator's own document, named by the mount's option. */
		rc = import_settings_load(o->settings_file, &m->given[0], err);
		if (rc < 0)
			return rc;
		m->given_names[m->given_count++] = o->settings_file;
	}
	if (o->settings_text && o->settings_text[0]) {
		rc = import_settings_parse(o->settings_text, strlen(o->settings_text),
					   "the mount options", &m->given[m->given_count], err);
		if (rc < 0)
			return rc;
		m->given_names[m->given_count++] = "the mount options";
	}
	for (size_t i = 0; i < m->given_count; i++) {
		const char *roots[] = {m->given[i].target_vm_data_root,
				       m->given[i].target_vhd_data_root,
				       m->given[i].target_snapshot_data_root};

		for (size_t k = 0; k < 3; k++) {
			if (roots[k] && roots[k][0] != '/')
				return error_set(err, EINVAL,
						 "%s: the target root '%s' is not an absolute path",
						 m->given_names[i], roots[k]);
			root = roots[k] ? fsutil_open_trusted_folder(roots[k], true, real) : 0;
			if (root < 0)
				return error_errno(err, -root, "cannot make the target root",
						   roots[k]);
			if (roots[k])
				close(root);
		}
		if (m->given[i].create_copy_given && import_mount_refusal(&m->given[i]))
			return error_set(err, EINVAL, "%s: %s", m->given_names[i],
					 import_mount_refusal(&m->given[i]));
		if (m->given[i].target_vhd_data_root)
			last = &m->given[i];
	}
	if (last)
		pathbuf_adds(&vhd_root, last->target_vhd_data_root);
	else
		pathbuf_setf(&vhd_root, "%s/%s", m->store_root, HYPERV_DISKS_DIR);
	if (vhd_root.err)
		return error_set(err, ENOMEM, "out of memory");
	/* The admin's roots are taken as they are named, links included: once. */
	root = fsutil_open_trusted_folder(vhd_root.buf, true, m->staging_root);
	if (root < 0) {
		rc = error_errno(err, -root, "cannot use the target VHD root", vhd_root.buf);
		pathbuf_release(&vhd_root);
		return rc;
	}
	pathbuf_release(&vhd_root);
	m->staging_fd = staging_open(root, m->staging_root, true, err);
	close(root);
	if (m->staging_fd < 0)
		return m->staging_fd;
	if (asprintf(&m->staging_path, "%s/%s", m->staging_root, STAGING_FOLDER) < 0) {
		m->staging_path = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/*
 * Whether the root open on @fd (@path) or one of its folders that imports write in may be
 * written by others than this process's user: then a local user could swap a name the
 * daemon is about to use (docs/SECURITY.md), and the mount refuses it (-EPERM).
 */
static int writable_by_others(int fd, const char *path, struct error *err)
{
	static const char *const folders[] = {"", HYPERV_VMS_DIR, HYPERV_SNAPSHOTS_DIR,
					      HYPERV_DISKS_DIR};

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
static int trust(struct import_mount *m, const char *path, bool create, bool written,
		 struct error *err)
{
	char real[PATH_MAX];
	char *copy;
	int fd, rc;

	if (m->trusted_count == IMPORT_MOUNT_MAX_TRUSTED)
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
	m->trusted[m->trusted_count] = copy;
	m->trusted_fds[m->trusted_count++] = fd;
	return 0;
}

/* The store's roots and the mount's target roots, then the folders of sources=. */
static int trust_roots(struct import_mount *m, const struct import_mount_options *o,
		       struct error *err)
{
	char *list = o->sources ? strdup(o->sources) : NULL;
	int rc = 0;

	if (o->sources && !list)
		return error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && store_root(m->store, i); i++)
		rc = trust(m, store_root(m->store, i), false, true, err);
	for (size_t i = 0; rc == 0 && i < m->given_count; i++) {
		const char *roots[] = {m->given[i].target_vm_data_root,
				       m->given[i].target_vhd_data_root,
				       m->given[i].target_snapshot_data_root};

		for (size_t k = 0; rc == 0 && k < 3; k++)
			if (roots[k])
				rc = trust(m, roots[k], true, true, err);
	}
	m->written_count = m->trusted_count;
	/* Where the store's Windows paths lie: read, never written. */
	for (size_t i = 0; rc == 0 && i < pathmap_count(o->pathmap); i++)
		rc = trust(m, pathmap_target(o->pathmap, i), false, false, err);
	m->own_trusted = m->trusted_count;
	for (char *next = list, *at; rc == 0 && next && (at = strsep(&next, ":"));) {
		if (!*at)
			continue;
		if (at[0] != '/')
			rc = error_set(err, EINVAL, "sources=: '%s' is not an absolute path", at);
		else
			rc = trust(m, at, false, false, err);
	}
	free(list);
	return rc;
}

/*
 * The mount's own target VHD roots (its options and settings file) that lie outside the
 * store become folders of the store before any import writes there (docs/FORMAT.md): the
 * VMs registered there are read from them later. An import's own document adds none.
 */
static int record_targets(struct import_mount *m, struct error *err)
{
	for (size_t i = 0; i < m->given_count; i++) {
		int rc = m->given[i].target_vhd_data_root
				 ? store_record_folder(m->store, m->given[i].target_vhd_data_root,
						       err)
				 : 0;

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* What killed imports left, before this mount adds its own. */
static int recover(struct import_mount *m, const struct import_mount_options *o, struct error *err)
{
	struct import_settings t = {0};

	t.target_vm_data_root = m->store_root;
	t.target_snapshot_data_root = m->store_root;
	for (size_t i = 0; i < m->given_count; i++) {
		if (m->given[i].target_vm_data_root)
			t.target_vm_data_root = m->given[i].target_vm_data_root;
		if (m->given[i].target_snapshot_data_root)
			t.target_snapshot_data_root = m->given[i].target_snapshot_data_root;
	}
	t.target_vhd_data_root = m->staging_root;
	return import_recover(m->store, &t, o->notice, o->ctx, err);
}

int import_mount_open(struct import_mount **out, const struct import_mount_options *o,
		      bool *bad_settings, struct error *err)
{
	struct import_mount *m = calloc(1, sizeof(*m));
	const char *roots[IMPORT_MOUNT_MAX_ROOTS] = {o->store};
	struct store_options so = {
		.roots = roots, .root_count = 1, .pathmap = o->pathmap, .recorded = true};
	char *more = NULL; /* the roots= list, cut into roots */
	int rc;

	*out = NULL;
	*bad_settings = false;
	if (!m)
		return error_set(err, ENOMEM, "out of memory");
	m->staging_fd = -1;
	rc = fsutil_open_trusted_folder(o->store, false, m->store_root);
	if (rc < 0) {
		rc = error_set(err, -rc, "cannot use the store '%s': %s", o->store, strerror(-rc));
		goto fail;
	}
	close(rc);
	/* A folder that is not a store is said to be none before anything is made in it. */
	rc = store_check_root(m->store_root, err);
	if (rc < 0)
		goto fail;
	*bad_settings = true;
	if (o->more_roots && !(more = strdup(o->more_roots))) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	for (char *next = more, *at; next && (at = strsep(&next, ":"));) {
		if (!*at)
			continue;
		if (so.root_count == IMPORT_MOUNT_MAX_ROOTS || at[0] != '/') {
			rc = error_set(err, EINVAL, "roots=: '%s' %s", at,
				       at[0] != '/' ? "is not an absolute path"
						    : "is one root too many");
			goto fail;
		}
		roots[so.root_count++] = at;
	}
	rc = load_settings(m, o, err);
	if (rc < 0)
		goto fail;
	*bad_settings = false;
	rc = store_open(&m->store, &so, err);
	if (rc == 0)
		rc = trust_roots(m, o, err);
	if (rc == 0)
		rc = record_targets(m, err);
	if (rc == 0)
		rc = recover(m, o, err);
	if (rc < 0)
		goto fail;
	free(more);
	*out = m;
	return 0;
fail:
	free(more);
	import_mount_free(m);
	return rc;
}

void import_mount_free(struct import_mount *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->trusted_count; i++) {
		free((char *)m->trusted[i]);
		close(m->trusted_fds[i]);
	}
	if (m->staging_fd >= 0)
		close(m->staging_fd);
	free(m->staging_path);
	store_free(m->store);
	for (size_t i = 0; i < m->given_count; i++)
		import_settings_free(&m->given[i]);
	free(m);
}
