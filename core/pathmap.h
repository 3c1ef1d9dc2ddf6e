/*
 * pathmap.h - mapping between the Windows paths that Hyper-V records
 * (configurations, parent locators) and the Linux paths where those files
 * sit now, e.g. "C:\=/mnt/hostc" or "\\nas\vms\=/srv/vms".
 *
 * Windows paths are compared case-insensitively (ASCII) on whole components;
 * "." and ".." are resolved lexically and may not climb above the drive or
 * share. The longest matching prefix wins.
 *
 * A map is built (pathmap_add()) before it is shared, then only read: any
 * thread may read it without a lock.
 */
#ifndef IMPEX_PATHMAP_H
#define IMPEX_PATHMAP_H

#include <stdbool.h>
#include <stddef.h>

struct error;
struct pathmap;

/** A new, empty map. Caller frees with pathmap_free(). NULL on ENOMEM. */
struct pathmap *pathmap_new(void);

/** Release @map. NULL-safe. */
void pathmap_free(struct pathmap *map);

/**
 * Add one entry "WINDOWS_PREFIX=LINUX_DIR" (split at the first '='):
 * a drive ("C:\", "C:") or a UNC share ("\\server\share\"), optionally with
 * folders under it, and an absolute Linux folder.
 * Returns 0, -EINVAL with a message for a malformed entry, -ENOMEM.
 */
int pathmap_add(struct pathmap *map, const char *spec, struct error *err);

/** Add every entry of @specs, separated by ';'. Empty entries are skipped. */
int pathmap_add_list(struct pathmap *map, const char *specs, struct error *err);

/** Number of entries in @map (0 for NULL). */
size_t pathmap_count(const struct pathmap *map);

/** The Linux folder of entry @i (as given, without a trailing '/'). Borrowed. */
const char *pathmap_target(const struct pathmap *map, size_t i);

/** Whether @path is an absolute Windows path: "C:\...", "C:/..." or "\\server\share...". */
bool pathmap_is_windows_absolute(const char *path);

/**
 * Normalize a Windows path in place of @out: '/' becomes '\', repeated
 * separators collapse, "." and ".." are resolved. Returns 0, -EINVAL if ".."
 * climbs above the root or the path is not absolute, -ENAMETOOLONG.
 */
int pathmap_normalize_windows(const char *path, char *out, size_t cap);

/**
 * Map the absolute Windows path @win to a Linux path through @map.
 * Returns 0, -ENOENT if no entry covers it (or @map is NULL), -EINVAL if the
 * path is malformed, -ENAMETOOLONG.
 */
int pathmap_to_linux(const struct pathmap *map, const char *win, char *out, size_t cap);

/**
 * Map the absolute Linux path @path to the Windows form through @map.
 * Returns 0, -ENOENT if no entry covers it, -ENAMETOOLONG.
 */
int pathmap_to_windows(const struct pathmap *map, const char *path, char *out, size_t cap);

/**
 * The last component of a Windows or Linux path (after the last '\' or '/').
 * Borrowed: points into @path.
 */
const char *pathmap_basename(const char *path);

/**
 * Turn a relative Windows path (".\base.vhd", "..\disks\base.vhd") into a
 * Linux path relative to @dir: "@dir/base.vhd". Returns 0, -EINVAL for an
 * absolute or empty path, -ENAMETOOLONG.
 */
int pathmap_join_relative(const char *dir, const char *rel, char *out, size_t cap);

/**
 * The relative Windows path from the folder @from_dir to the file @to, both
 * absolute Linux paths without "." or "..": ".\base.vhd",
 * "..\disks\base.vhd". Returns 0, -EINVAL, -ENAMETOOLONG.
 */
int pathmap_windows_relative(const char *from_dir, const char *to, char *out, size_t cap);

/**
 * Find @path on disk, matching each component case-insensitively where the
 * exact name does not exist (files copied from Windows keep names whose case
 * differs from what the configuration says). Writes the path found to @out.
 * Returns 0, -ENOENT, -ENAMETOOLONG.
 */
int pathmap_find_case_insensitive(const char *path, char *out, size_t cap);

/**
 * Where a new differencing disk at @child and its parent @parent lie, for
 * its locators: the parent's real path into @parent_real and the child's
 * real folder into @child_dir (PATH_MAX bytes each). A parent whose real
 * path holds a backslash is refused: Windows would read it as a separator
 * and the locators would lie. Returns 0 or a negative errno with a message.
 */
int pathmap_child_places(const char *child, const char *parent, char *parent_real,
			 char *child_dir, struct error *err);

#endif
