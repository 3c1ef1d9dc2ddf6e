#include "pathmap.h"

#include "error.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct pathmap_entry {
	char *windows; /* normalized, ends with '\' */
	char *target;  /* absolute, no trailing '/' (except "/") */
	char *real;    /* target with links resolved, when it exists and differs; else NULL */
};

/* Filled by pathmap_add() before the map is shared, then read-only: threads read it without
 * a lock. */
struct pathmap {
	struct pathmap_entry *entries;
	size_t count;
};

struct pathmap *pathmap_new(void)
{
	return calloc(1, sizeof(struct pathmap));
}

void pathmap_free(struct pathmap *map)
{
	if (!map)
		return;
	for (size_t i = 0; i < map->count; i++) {
		free(map->entries[i].windows);
		free(map->entries[i].target);
		free(map->entries[i].real);
	}
	free(map->entries);
	free(map);
}

size_t pathmap_count(const struct pathmap *map)
{
	return map ? map->count : 0;
}

const char *pathmap_target(const struct pathmap *map, size_t i)
{
	return map->entries[i].target;
}

static bool is_sep(char c)
{
	return c == '\\' || c == '/';
}

bool pathmap_is_windows_absolute(const char *path)
{
	if (((path[0] >= 'A' && path[0] <= 'Z') || (path[0] >= 'a' && path[0] <= 'z')) &&
	    path[1] == ':' && (is_sep(path[2]) || path[2] == '\0'))
		return true;
	return is_sep(path[0]) && is_sep(path[1]) && path[2] && !is_sep(path[2]);
}

/* Length of the root of an absolute Windows path: "C:" (2) or "\\server\share" */
static size_t windows_root_length(const char *path)
{
	size_t i;

	if (path[1] == ':')
		return 2;
	/* UNC: \\server\share */
	i = 2;
	while (path[i] && !is_sep(path[i]))
		i++;
	if (!path[i])
		return 0; /* no share */
	i++;
	if (!path[i] || is_sep(path[i]))
		return 0;
	while (path[i] && !is_sep(path[i]))
		i++;
	return i;
}

int pathmap_normalize_windows(const char *path, char *out, size_t cap)
{
	size_t root, len, i;

	if (!pathmap_is_windows_absolute(path))
		return -EINVAL;
	root = windows_root_length(path);
	if (root == 0)
		return -EINVAL;
	if (root + 2 > cap)
		return -ENAMETOOLONG;
	for (i = 0; i < root; i++)
		out[i] = is_sep(path[i]) ? '\\' : path[i];
	if (root == 2)
		out[0] = (char)(out[0] >= 'a' && out[0] <= 'z' ? out[0] - 'a' + 'A' : out[0]);
	len = root;
	out[len++] = '\\';
	i = root;
	while (path[i]) {
		size_t start, n;

		while (is_sep(path[i]))
			i++;
		start = i;
		while (path[i] && !is_sep(path[i]))
			i++;
		n = i - start;
		if (n == 0 || (n == 1 && path[start] == '.'))
			continue;
		if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
			if (len == root + 1)
				return -EINVAL; /* above the drive or share */
			len--; /* drop the trailing '\' */
			while (out[len - 1] != '\\')
				len--;
			continue;
		}
		if (len + n + 2 > cap)
			return -ENAMETOOLONG;
		memcpy(out + len, path + start, n);
		len += n;
		out[len++] = '\\';
	}
	/* No trailing separator except for the bare root. */
	if (len > root + 1 && !is_sep(path[strlen(path) - 1]))
		len--;
	out[len] = '\0';
	return 0;
}

int pathmap_add(struct pathmap *map, const char *spec, struct error *err)
{
	const char *eq = strchr(spec, '=');
	char windows[PATH_MAX], prefix[PATH_MAX];
	char *linux_dir = NULL, *win = NULL;
	struct pathmap_entry *grown;
	size_t n, len;

	if (!eq)
		return error_set(err, EINVAL, "path map entry '%s' has no '=' (want WINDOWS=LINUX)",
				 spec);
	n = (size_t)(eq - spec);
	if (n == 0 || n >= sizeof(prefix))
		return error_set(err, EINVAL, "path map entry '%s' has no Windows path", spec);
	memcpy(prefix, spec, n);
	prefix[n] = '\0';
	if (pathmap_normalize_windows(prefix, windows, sizeof(windows) - 1) < 0)
		return error_set(err, EINVAL,
				 "path map entry '%s': '%s' is not an absolute Windows path (C:\\ or "
				 "\\\\server\\share)",
				 spec, prefix);
	len = strlen(windows);
	if (windows[len - 1] != '\\') {
		windows[len++] = '\\';
		windows[len] = '\0';
	}
	if (eq[1] != '/')
		return error_set(err, EINVAL, "path map entry '%s': '%s' is not an absolute Linux path",
				 spec, eq + 1);
	win = strdup(windows);
	linux_dir = strdup(eq + 1);
	if (!win || !linux_dir)
		goto nomem;
	len = strlen(linux_dir);
	while (len > 1 && linux_dir[len - 1] == '/')
		linux_dir[--len] = '\0';
	grown = realloc(map->entries, (map->count + 1) * sizeof(*grown));
	if (!grown)
		goto nomem;
	map->entries = grown;
	map->entries[map->count].windows = win;
	map->entries[map->count].target = linux_dir;
	{
		/* Callers hand real paths to pathmap_to_windows: match those too. */
		char real[PATH_MAX];

		map->entries[map->count].real =
			realpath(linux_dir, real) && strcmp(real, linux_dir) != 0 ? strdup(real)
										 : NULL;
	}
	map->count++;
	return 0;
nomem:
	free(win);
	free(linux_dir);
	return error_set(err, ENOMEM, "out of memory");
}

int pathmap_add_list(struct pathmap *map, const char *specs, struct error *err)
{
	char *copy = strdup(specs), *save = NULL, *tok;
	int rc = 0;

	if (!copy)
		return error_set(err, ENOMEM, "out of memory");
	for (tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		if (!*tok)
			continue;
		rc = pathmap_add(map, tok, err);
		if (rc < 0)
			break;
	}
	free(copy);
	return rc;
}

int pathmap_to_linux(const struct pathmap *map, const char *win, char *out, size_t cap)
{
	char norm[PATH_MAX];
	const struct pathmap_entry *best = NULL;
	size_t best_len = 0, i, len;
	int rc;

	if (!map || map->count == 0)
		return -ENOENT;
	rc = pathmap_normalize_windows(win, norm, sizeof(norm) - 1);
	if (rc < 0)
		return rc;
	len = strlen(norm);
	norm[len] = '\\'; /* compare whole components: "C:\VMs" against "C:\VMs\" */
	norm[len + 1] = '\0';
	for (i = 0; i < map->count; i++) {
		size_t plen = strlen(map->entries[i].windows);

		if (plen > len + 1 || plen <= best_len)
			continue;
		if (strncasecmp(norm, map->entries[i].windows, plen) == 0) {
			best = &map->entries[i];
			best_len = plen;
		}
	}
	if (!best)
		return -ENOENT;
	norm[len] = '\0';
	{
		const char *rest = best_len <= len ? norm + best_len : "";
		int n = snprintf(out, cap, "%s%s%s", best->target,
				 (*rest && strcmp(best->target, "/") != 0) ? "/" : "", rest);

		if (n < 0 || (size_t)n >= cap)
			return -ENAMETOOLONG;
		for (char *p = out + strlen(best->target); *p; p++)
			if (*p == '\\')
				*p = '/';
	}
	return 0;
}

int pathmap_to_windows(const struct pathmap *map, const char *path, char *out, size_t cap)
{
	const struct pathmap_entry *best = NULL;
	size_t best_len = 0, i;
	const char *rest;
	int n;

	if (!map || path[0] != '/')
		return -ENOENT;
	for (i = 0; i < map->count * 2; i++) {
		const char *target = i % 2 ? map->entries[i / 2].real : map->entries[i / 2].target;
		size_t tlen;
		bool root;

		if (!target || !fsutil_path_within(path, target))
			continue;
		tlen = strlen(target);
		root = strcmp(target, "/") == 0;
		if (!best || tlen > best_len) {
			best = &map->entries[i / 2];
			best_len = root ? 0 : tlen;
		}
	}
	if (!best)
		return -ENOENT;
	rest = path + best_len;
	while (*rest == '/')
		rest++;
	n = snprintf(out, cap, "%s%s", best->windows, rest);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	for (char *p = out + strlen(best->windows); *p; p++)
		if (*p == '/')
			*p = '\\';
	return 0;
}

const char *pathmap_basename(const char *path)
{
	const char *base = path;

	for (const char *p = path; *p; p++)
		if (is_sep(*p))
			base = p + 1;
	return base;
}

int pathmap_join_relative(const char *dir, const char *rel, char *out, size_t cap)
{
	size_t len;
	int n;

	if (!rel[0] || is_sep(rel[0]) || pathmap_is_windows_absolute(rel))
		return -EINVAL;
	while (rel[0] == '.' && is_sep(rel[1]))
		rel += 2;
	n = snprintf(out, cap, "%s/%s", dir, rel);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	len = strlen(dir) + 1;
	for (char *p = out + len; *p; p++)
		if (*p == '\\')
			*p = '/';
	return 0;
}

/* Look for @name in @dir ignoring ASCII case; the first match in name order. */
static int find_entry_case_insensitive(const char *dir, const char *name, char *found, size_t cap)
{
	DIR *d = fsutil_opendir(dir[0] ? dir : "/");
	struct dirent *e;
	int rc = -ENOENT;

	if (!d)
		return -ENOENT;
	while ((e = readdir(d)) != NULL) {
		if (strcasecmp(e->d_name, name) != 0)
			continue;
		if (rc == 0 && strcmp(e->d_name, found) >= 0)
			continue;
		if (strlen(e->d_name) >= cap)
			continue;
		strcpy(found, e->d_name);
		rc = 0;
	}
	closedir(d);
	return rc;
}

int pathmap_find_case_insensitive(const char *path, char *out, size_t cap)
{
	struct stat st;
	char built[PATH_MAX] = "";
	size_t blen = 0;
	const char *p = path;

	if (strlen(path) >= cap)
		return -ENAMETOOLONG;
	if (lstat(path, &st) == 0) {
		strcpy(out, path);
		return 0;
	}
	if (path[0] != '/')
		return -ENOENT;
	while (*p) {
		char comp[NAME_MAX + 1], found[NAME_MAX + 1];
		size_t n;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (n == 0)
			break;
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		if (blen + n + 2 > sizeof(built))
			return -ENAMETOOLONG;
		built[blen] = '/';
		memcpy(built + blen + 1, comp, n + 1);
		if (lstat(built, &st) != 0) {
			built[blen] = '\0';
			if (find_entry_case_insensitive(built, comp, found, sizeof(found)) < 0)
				return -ENOENT;
			built[blen] = '/';
			memcpy(built + blen + 1, found, n + 1);
		}
		blen += n + 1;
	}
	if (blen + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(out, built, blen + 1);
	return 0;
}

int pathmap_windows_relative(const char *from_dir, const char *to, char *out, size_t cap)
{
	const char *a = from_dir, *b = to;
	size_t n = 0;
	unsigned ups = 0;

	if (from_dir[0] != '/' || to[0] != '/')
		return -EINVAL;
	/* Skip the folders both paths share. */
	for (;;) {
		size_t la, lb;

		while (*a == '/')
			a++;
		while (*b == '/')
			b++;
		la = strcspn(a, "/");
		lb = strcspn(b, "/");
		if (la == 0 || b[lb] == '\0' || la != lb || memcmp(a, b, la) != 0)
			break;
		a += la;
		b += lb;
	}
	/* Climb out of the folders of @from_dir that remain. */
	while (*a) {
		size_t la;

		while (*a == '/')
			a++;
		la = strcspn(a, "/");
		if (la)
			ups++;
		a += la;
	}
	if (ups == 0) {
		if (cap < 3)
			return -ENAMETOOLONG;
		out[n++] = '.';
		out[n++] = '\\';
	}
	for (unsigned u = 0; u < ups; u++) {
		if (n + 4 > cap)
			return -ENAMETOOLONG;
		memcpy(out + n, "..\\", 3);
		n += 3;
	}
	for (; *b; b++) {
		if (n + 2 > cap)
			return -ENAMETOOLONG;
		out[n++] = *b == '/' ? '\\' : *b;
	}
	out[n] = '\0';
	return 0;
}

int pathmap_child_places(const char *child, const char *parent, char *parent_real,
			 char *child_dir, struct error *err)
{
	int rc;

	if (!realpath(parent, parent_real))
		return error_errno(err, errno, "cannot resolve", parent);
	if (strchr(parent_real, '\\'))
		return error_set(err, EINVAL,
				 "the path of parent '%s' holds a backslash, which Windows paths "
				 "cannot hold",
				 parent_real);
	rc = fsutil_real_dirname(child, child_dir);
	return rc < 0 ? error_errno(err, -rc, "cannot resolve the folder of", child) : 0;
}
