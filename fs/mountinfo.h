/*
 * What the kernel says is mounted where: /proc/self/mountinfo, read, never
 * the mounts themselves (a request to a FUSE mount may not be answered yet,
 * or ever: a dead daemon's).
 */
#ifndef IMPEXFS_MOUNTINFO_H
#define IMPEXFS_MOUNTINFO_H

#include <limits.h>
#include <sys/types.h>

struct mountinfo_entry {
	dev_t device;	       /* the file system's device number */
	char type[64];	       /* "fuse.impexfs", "ext4", ... (cut short if longer) */
	char source[PATH_MAX]; /* what mount(8) and df show as the source */
};

/**
 * The mount at @point (a real path, as libfuse resolves a mount point), the
 * last one mounted there: the one a lookup of @point reaches. Returns 0 with
 * it in *@entry, -ENOENT if nothing is mounted at @point, or -errno if the
 * table cannot be read.
 */
int mountinfo_find(const char *point, struct mountinfo_entry *entry);

#endif
