#include "export.h"

#include "chain.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "pathmap.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Length of the UTF-8 sequence at @p (at most @left bytes), or 0 if invalid. */
static size_t utf8_length(const unsigned char *p, size_t left)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2, cp = p[0] & 0x1F;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3, cp = p[0] & 0x0F;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	/* No overlong forms, surrogates or code points past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void export_safe_name(const char *name, char *out)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t left = strlen(name), n = 0;

	while (left) {
		size_t len = utf8_length(p, left);
		bool bad = len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7f || *p == '/'));

		if (bad)
			len = 1;
		if (n + len > EXPORT_NAME_MAX)
			break;
		if (bad)
			out[n] = '_';
		else
			memcpy(out + n, p, len);
		n += len;
		p += len;
		left -= len;
	}
	out[n] = '\0';
	if (n == 0) {
		strcpy(out, "_");
	} else if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
		memmove(out + 1, out, n + 1);
		out[0] = '_';
	}
}

/* The oldest first: creation time, then GUID. */
static bool older(const struct export_name *a, const struct export_name *b)
{
	if (a->creation_time != b->creation_time)
		return a->creation_time < b->creation_time;
	return strcasecmp(a->id, b->id) < 0;
}

int export_assign_names(struct export_name *names, size_t count)
{
	char(*safe)[EXPORT_NAME_MAX + 2] = calloc(count ? count : 1, sizeof(*safe));
	char buf[EXPORT_NAME_MAX + 64];

	if (!safe)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++)
		export_safe_name(names[i].name, safe[i]);
	for (size_t i = 0; i < count; i++) {
		bool keeps = true;

		/* Keeps its name when no namesake is older. */
		for (size_t j = 0; j < count && keeps; j++)
			if (j != i && strcasecmp(safe[i], safe[j]) == 0 &&
			    older(&names[j], &names[i]))
				keeps = false;
		if (keeps) {
			snprintf(buf, sizeof(buf), "%s", safe[i]);
		} else {
			snprintf(buf, sizeof(buf), "%s (%.8s)", safe[i], names[i].id);
			/* Two GUIDs alike in 8 characters: the whole GUID. */
			for (size_t j = 0; j < count; j++)
				if (j != i && strcasecmp(safe[i], safe[j]) == 0 &&
				    strncasecmp(names[i].id, names[j].id, 8) == 0)
					snprintf(buf, sizeof(buf), "%s (%s)", safe[i], names[i].id);
		}
		names[i].out = strdup(buf);
		if (!names[i].out) {
			for (size_t k = 0; k < i; k++) {
				free(names[k].out);
				names[k].out = NULL;
			}
			free(safe);
			return -ENOMEM;
		}
	}
	free(safe);
	return 0;
}

/* ---- the plan of an export folder ---- */

void export_settings_default(struct export_settings *settings)
{
	settings->copy_vm_storage = true;
	settings->copy_vm_runtime_information = true;
}

void export_node_free(struct export_node *node)
{
	if (!node)
		return;
	for (size_t i = 0; i < node->child_count; i++)
		export_node_free(node->children[i]);
	free(node->children);
	free(node->name);
	free(node->path);
	free(node->bytes);
	free(node->patches[0].bytes);
	free(node->patches[1].bytes);
	free(node);
}

static struct export_node *node_new(const char *name, enum export_type type)
{
	struct export_node *node = calloc(1, sizeof(*node));

	if (node && !(node->name = strdup(name))) {
		free(node);
		return NULL;
	}
	if (node)
		node->type = type;
	return node;
}

/* Add @child to @dir; on failure free @child. */
static int node_add(struct export_node *dir, struct export_node *child)
{
	struct export_node **grown;

	if (!child)
		return -ENOMEM;
	grown = realloc(dir->children, (dir->child_count + 1) * sizeof(*grown));
	if (!grown) {
		export_node_free(child);
		return -ENOMEM;
	}
	dir->children = grown;
	dir->children[dir->child_count++] = child;
	return 0;
}

/* The folder @name of @dir, made if missing. */
static struct export_node *subdir(struct export_node *dir, const char *name)
{
	struct export_node *child = export_child(dir, name);

	if (child)
		return child;
	child = node_new(name, EXPORT_DIR);
	return node_add(dir, child) == 0 ? child : NULL;
}

struct export_node *export_child(const struct export_node *dir, const char *name)
{
	for (size_t i = 0; i < dir->child_count; i++)
		if (strcmp(dir->children[i]->name, name) == 0)
			return dir->children[i];
	return NULL;
}

static int compare_nodes(const void *a, const void *b)
{
	return strcmp((*(struct export_node *const *)a)->name,
		      (*(struct export_node *const *)b)->name);
}

static void finish(struct export_node *node)
{
	if (node->child_count)
		qsort(node->children, node->child_count, sizeof(*node->children), compare_nodes);
	for (size_t i = 0; i < node->child_count; i++)
		finish(node->children[i]);
}

/* A file of the store under @dir, as it is. */
static int add_file(struct export_node *dir, const char *name, const char *path, struct error *err)
{
	struct export_node *node;
	struct stat st;

	if (stat(path, &st) < 0)
		return error_errno(err, errno, "cannot stat", path);
	node = node_new(name, EXPORT_FILE);
	if (node) {
		node->source = EXPORT_SOURCE_FILE;
		node->path = strdup(path);
		node->size = (uint64_t)st.st_size;
		node->allocated = (uint64_t)st.st_blocks * 512;
		node->mtime = st.st_mtim;
	}
	if (!node || !node->path || node_add(dir, node) < 0) {
		if (node && !node->path)
			export_node_free(node);
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* The files of the chains in an export, with the names they get there. */
struct disk_file {
	char *path; /* real path in the store */
	char *name; /* its name in "Virtual Hard Disks" */
	int parent; /* index of its parent, or -1 */
	uint8_t uuid[16];
};

struct disk_files {
	struct disk_file *files;
	size_t count;
};

static void disk_files_free(struct disk_files *d)
{
	for (size_t i = 0; i < d->count; i++) {
		free(d->files[i].path);
		free(d->files[i].name);
	}
	free(d->files);
}

static int find_file(const struct disk_files *d, const char *path)
{
	for (size_t i = 0; i < d->count; i++)
		if (strcmp(d->files[i].path, path) == 0)
			return (int)i;
	return -1;
}

/* Add the files of @disk's chain (top first) to @d; returns the top's index. */
static int collect_chain(struct store *s, const struct store_disk *disk, struct disk_files *d,
			 struct error *err)
{
	struct chain *chain = NULL;
	int rc = store_open_chain(s, disk, &chain, err), top = -1, below = -1;

	if (rc < 0)
		return rc;
	/* Bottom up, so that each file knows its parent's index. */
	for (unsigned level = chain_depth(chain); level-- > 0;) {
		const char *path = vhd_path(chain_level(chain, level));
		int at = find_file(d, path);

		if (at < 0) {
			struct disk_file *grown =
				realloc(d->files, (d->count + 1) * sizeof(*grown));

			if (!grown) {
				rc = error_set(err, ENOMEM, "out of memory");
				break;
			}
			d->files = grown;
			at = (int)d->count++;
			memset(&d->files[at], 0, sizeof(d->files[at]));
			d->files[at].path = strdup(path);
			d->files[at].parent = below;
			memcpy(d->files[at].uuid, vhd_footer(chain_level(chain, level))->uuid, 16);
			if (!d->files[at].path) {
				rc = error_set(err, ENOMEM, "out of memory");
				break;
			}
		}
		below = at;
		top = at;
	}
	chain_close(chain);
	return rc < 0 ? rc : top;
}

/* Names in "Virtual Hard Disks": the file's own, or with its UUID when another has it. */
static int name_files(struct disk_files *d)
{
	for (size_t i = 0; i < d->count; i++) {
		const char *base = pathmap_basename(d->files[i].path);
		bool clash = false;
		char name[NAME_MAX + 1];

		for (size_t j = 0; j < i && !clash; j++)
			clash = strcasecmp(pathmap_basename(d->files[j].path), base) == 0;
		if (clash) {
			const char *dot = strrchr(base, '.');
			int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);

			snprintf(name, sizeof(name), "%.*s_%02x%02x%02x%02x%s", stem, base,
				 d->files[i].uuid[0], d->files[i].uuid[1], d->files[i].uuid[2],
				 d->files[i].uuid[3], dot && dot != base ? dot : "");
		} else {
			snprintf(name, sizeof(name), "%s", base);
		}
		d->files[i].name = strdup(name);
		if (!d->files[i].name)
			return -ENOMEM;
	}
	return 0;
}

/* What @path really holds on disk (st_blocks), at most @size. */
static uint64_t allocated_bytes(const char *path, uint64_t size)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return size;
	return (uint64_t)st.st_blocks * 512 < size ? (uint64_t)st.st_blocks * 512 : size;
}

/* The disk files as nodes of @dir: differencing disks relocated to name their parent there. */
static int add_disks(struct export_node *dir, const struct disk_files *d, struct error *err)
{
	for (size_t i = 0; i < d->count; i++) {
		const struct disk_file *f = &d->files[i];
		struct export_node *node;
		struct vhd *vhd = NULL;
		int rc;

		if (f->parent < 0) {
			rc = add_file(dir, f->name, f->path, err);
			if (rc < 0)
				return rc;
			continue;
		}
		rc = vhd_open(&vhd, f->path, VHD_OPEN_READ, err);
		node = rc == 0 ? node_new(f->name, EXPORT_FILE) : NULL;
		if (rc == 0 && !node)
			rc = error_set(err, ENOMEM, "out of memory");
		if (rc == 0)
			rc = vhd_relocation(vhd, d->files[f->parent].name, node->patches, err);
		if (rc == 0) {
			node->source = EXPORT_SOURCE_RELOCATED;
			node->path = strdup(f->path);
			node->size = vhd_file_size(vhd);
			node->allocated = allocated_bytes(f->path, node->size);
			node->mtime = vhd_file_mtime(vhd);
			rc = node->path ? node_add(dir, node) : -ENOMEM;
			node = NULL;
			if (rc < 0)
				rc = error_set(err, ENOMEM, "out of memory");
		}
		export_node_free(node);
		vhd_close(vhd);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The configuration at @path with each of @disks' drives pointing at its
 * file in "Virtual Hard Disks" (unless @relative is false), as a node. */
static int add_config(struct export_node *dir, const char *name, const char *path,
		      const struct store_disk *disks, size_t count, const struct disk_files *d,
		      bool relative, struct error *err)
{
	struct config *config = NULL;
	struct export_node *node;
	struct stat st;
	char *bytes = NULL;
	size_t len = 0;
	int rc = config_load(&config, path, err);

	for (size_t i = 0; rc == 0 && relative && i < count; i++) {
		char key[600], value[NAME_MAX + 32];
		int at = disks[i].path ? find_file(d, disks[i].path) : -1;

		if (at < 0)
			continue;
		snprintf(key, sizeof(key), "%s/pathname", disks[i].key);
		snprintf(value, sizeof(value), "Virtual Hard Disks\\%s", d->files[at].name);
		rc = config_set(config, key, NULL, value, err);
	}
	if (rc == 0)
		rc = config_serialize(config, &bytes, &len, err);
	config_free(config);
	if (rc < 0)
		return rc;
	node = node_new(name, EXPORT_FILE);
	if (!node || stat(path, &st) < 0) {
		free(bytes);
		export_node_free(node);
		return error_errno(err, node ? errno : ENOMEM, "cannot stat", path);
	}
	node->source = EXPORT_SOURCE_BYTES;
	node->bytes = (uint8_t *)bytes;
	node->size = len;
	node->allocated = len;
	node->mtime = st.st_mtim;
	return node_add(dir, node) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
}

/* The files of the saved-state folder @from under @dir/@name. */
static int add_saved_state(struct export_node *dir, const char *name, const char *from,
			   struct error *err)
{
	struct export_node *state = subdir(dir, name);
	char **names = NULL, path[PATH_MAX];
	size_t count = 0;
	int rc;

	if (!state)
		return error_set(err, ENOMEM, "out of memory");
	rc = fsutil_list_names(from, NULL, &names, &count);
	if (rc < 0)
		return error_errno(err, -rc, "cannot read", from);
	for (size_t i = 0; i < count && rc == 0; i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", from, names[i]);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			rc = add_file(state, names[i], path, err);
	}
	fsutil_names_free(names, count);
	return rc;
}

int export_plan_vm(struct store *s, const struct store_vm *vm,
		   const struct export_settings *settings, const char *name,
		   struct export_node **out, struct error *err)
{
	struct export_node *root = node_new(name, EXPORT_DIR), *vms, *disks, *snaps;
	struct disk_files d = {0};
	char file[64];
	int rc = 0;

	*out = NULL;
	vms = root ? subdir(root, "Virtual Machines") : NULL;
	disks = vms ? subdir(root, "Virtual Hard Disks") : NULL;
	snaps = disks ? subdir(root, "Snapshots") : NULL;
	if (!snaps) {
		export_node_free(root);
		return error_set(err, ENOMEM, "out of memory");
	}
	if (vm->problem) {
		rc = error_set(err, EINVAL, "VM '%s' cannot be exported: %s", vm->name,
			       vm->problem);
		goto out;
	}
	if (settings->copy_vm_storage) {
		for (size_t i = 0; i < vm->disk_count && rc >= 0; i++)
			rc = collect_chain(s, &vm->disks[i], &d, err);
		for (size_t i = 0; i < vm->snapshot_count && rc >= 0; i++)
			for (size_t k = 0; k < vm->snapshots[i].disk_count && rc >= 0; k++)
				rc = collect_chain(s, &vm->snapshots[i].disks[k], &d, err);
		if (rc >= 0)
			rc = name_files(&d) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
		if (rc >= 0)
			rc = add_disks(disks, &d, err);
		if (rc < 0)
			goto out;
	}
	snprintf(file, sizeof(file), "%s.xml", vm->id);
	rc = add_config(vms, file, vm->config_path, vm->disks, vm->disk_count, &d,
			settings->copy_vm_storage, err);
	if (rc == 0 && vm->saved_state && settings->copy_vm_runtime_information)
		rc = add_saved_state(vms, vm->id, vm->saved_state, err);
	for (size_t i = 0; i < vm->snapshot_count && rc == 0; i++) {
		const struct store_snapshot *snap = &vm->snapshots[i];

		snprintf(file, sizeof(file), "%s.xml", snap->id);
		rc = add_config(snaps, file, snap->config_path, snap->disks, snap->disk_count, &d,
				settings->copy_vm_storage, err);
		if (rc == 0 && snap->saved_state && settings->copy_vm_runtime_information)
			rc = add_saved_state(snaps, snap->id, snap->saved_state, err);
	}
out:
	disk_files_free(&d);
	if (rc < 0) {
		export_node_free(root);
		return rc;
	}
	finish(root);
	*out = root;
	return 0;
}

/* ---- reading and writing ---- */

int export_open(const struct export_node *node, struct error *err)
{
	int fd;

	if (node->type != EXPORT_FILE)
		return error_set(err, EISDIR, "'%s' is a folder", node->name);
	if (node->source == EXPORT_SOURCE_BYTES)
		return EXPORT_NO_SOURCE;
	fd = fsutil_open_source(node->path, false);
	/* -EPERM is -1 too: say it as EACCES so that it is never EXPORT_NO_SOURCE. */
	if (fd < 0)
		return error_errno(err, fd == -EPERM ? EACCES : -fd, "cannot open", node->path);
	return fd;
}

int export_read_at(const struct export_node *node, int fd, void *buf, size_t len, uint64_t offset,
		   struct error *err)
{
	int rc;

	if (node->type != EXPORT_FILE || offset > node->size || len > node->size - offset)
		return error_set(err, EINVAL, "read of %zu bytes at %llu is outside '%s'", len,
				 (unsigned long long)offset, node->name);
	if (node->source == EXPORT_SOURCE_BYTES) {
		memcpy(buf, node->bytes + offset, len);
		return 0;
	}
	rc = fsutil_pread_full(fd, buf, len, offset);
	if (rc < 0)
		return error_errno(err, rc == -ENODATA ? EIO : -rc, "cannot read", node->path);
	if (node->source == EXPORT_SOURCE_RELOCATED)
		vhd_patches_apply(node->patches, 2, buf, len, offset);
	return 0;
}

int export_read(const struct export_node *node, void *buf, size_t len, uint64_t offset,
		struct error *err)
{
	int fd = export_open(node, err), rc;

	if (fd < EXPORT_NO_SOURCE)
		return fd;
	rc = export_read_at(node, fd, buf, len, offset, err);
	if (fd >= 0)
		close(fd);
	return rc;
}

int64_t export_seek(const struct export_node *node, uint64_t offset, bool data, struct error *err)
{
	int fd;
	off_t at;

	if (node->type != EXPORT_FILE)
		return error_set(err, EISDIR, "'%s' is a folder", node->name);
	if (offset >= node->size)
		return -ENXIO;
	if (node->source == EXPORT_SOURCE_BYTES)
		return data ? (int64_t)offset : (int64_t)node->size;
	fd = fsutil_open_source(node->path, false);
	if (fd < 0)
		return error_errno(err, -fd, "cannot open", node->path);
	at = lseek(fd, (off_t)offset, data ? SEEK_DATA : SEEK_HOLE);
	if (at < 0) {
		int code = errno;

		close(fd);
		/* A source without hole support is all data. */
		if (code == EINVAL)
			return data ? (int64_t)offset : (int64_t)node->size;
		return code == ENXIO ? -ENXIO
				     : error_errno(err, code, "cannot seek in", node->path);
	}
	close(fd);
	return (uint64_t)at > node->size ? (int64_t)node->size : (int64_t)at;
}

int export_write(const struct export_node *node, const char *dest, struct error *err)
{
	struct timespec times[2];
	int rc = 0;

	if (node->type == EXPORT_DIR) {
		if (mkdir(dest, 0755) < 0)
			return error_errno(err, errno, "cannot create", dest);
		for (size_t i = 0; i < node->child_count && rc == 0; i++) {
			char path[PATH_MAX];

			if (snprintf(path, sizeof(path), "%s/%s", dest, node->children[i]->name) >=
			    (int)sizeof(path))
				return error_set(err, ENAMETOOLONG, "'%s' is too long a path",
						 dest);
			rc = export_write(node->children[i], path, err);
		}
	} else {
		uint8_t *buf = malloc(1 << 20);
		int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (fd < 0 || !buf) {
			free(buf);
			if (fd >= 0)
				close(fd);
			return error_errno(err, fd < 0 ? errno : ENOMEM, "cannot create", dest);
		}
		for (uint64_t at = 0; rc == 0 && at < node->size; at += 1 << 20) {
			size_t n =
				node->size - at < (1 << 20) ? (size_t)(node->size - at) : (1 << 20);

			rc = export_read(node, buf, n, at, err);
			if (rc == 0 && (rc = fsutil_pwrite_sparse(fd, buf, n, at)) < 0)
				rc = error_errno(err, -rc, "cannot write", dest);
		}
		if (rc == 0 && (ftruncate(fd, (off_t)node->size) < 0 || fsync(fd) < 0))
			rc = error_errno(err, errno, "cannot write", dest);
		close(fd);
		free(buf);
	}
	if (rc == 0) {
		times[0] = node->mtime;
		times[1] = node->mtime;
		if (node->type == EXPORT_FILE)
			utimensat(AT_FDCWD, dest, times, 0);
	}
	return rc;
}
