/*
 * export_name.h - the names of export folders: the folders of VMs and
 * snapshots get names that are safe as file names, unique among their
 * siblings, and stable while the store changes around them. Pure functions
 * of their input: no locks, no files.
 */
#ifndef IMPEX_EXPORT_NAME_H
#define IMPEX_EXPORT_NAME_H

#include <stddef.h>
#include <stdint.h>

/* Names are cut to this many bytes (at a character boundary). */
#define EXPORT_NAME_MAX 200

/* The longest name export_assign_names() gives: a safe name, " (", a GUID, ")". */
#define EXPORT_ASSIGNED_NAME_MAX (EXPORT_NAME_MAX + 39)

/* One thing to name: a VM or a snapshot among its siblings. */
struct export_name {
	const char *name;      /* as the configuration says it */
	const char *id;	       /* its GUID */
	int64_t creation_time; /* Unix seconds; orders clashes */
	char *out;	       /* the name given (new string, caller frees) */
};

/**
 * Write into @out (EXPORT_NAME_MAX + 1 bytes at least) @name made safe as
 * a file name: control characters, '/' and bytes that are not UTF-8 become
 * '_'; "" becomes "_", "." and ".." get a '_' in front; at most
 * EXPORT_NAME_MAX bytes.
 */
void export_safe_name(const char *name, char *out);

/**
 * Give each of the @count @names its folder name: its safe name, unless
 * that clashes (ignoring ASCII case, as the file systems copies land on may)
 * with another's. Of clashing names, the oldest (creation time, then GUID)
 * keeps it; every other gets " (" and the first 8 characters of its GUID
 * ")" after it, or its whole GUID should that clash too. So a name changes
 * only when an older namesake appears, never because of a newer one.
 * Returns 0 or -ENOMEM (then no .out is set).
 */
int export_assign_names(struct export_name *names, size_t count);

#endif
