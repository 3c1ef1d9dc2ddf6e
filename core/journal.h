/*
 * journal.h - what an import is about to place, so that a killed import is
 * undone (docs/FORMAT.md, "Import journals").
 *
 * Before it places its first file, an import writes (and fsyncs) a journal
 * listing every file and folder it will place, each known by the device and
 * inode it keeps; it adds each configuration as it writes it, and removes
 * the journal after its commit (the VM's configuration). A journal found
 * whose VM configuration does not exist is an import killed between the two:
 * what it lists goes, if it is still the very file the import made.
 *
 * Journals are the daemon's: they live in JOURNAL_FOLDER of the target VM
 * data root, a folder owned by the process's user, mode 0700, named
 * "<VM GUID>.journal". Recovery acts only on journals there that are regular
 * files of that user, and only on paths under the roots it is given, in
 * folders that no one but that user can write; anything else is reported
 * and left alone.
 *
 * The text: a first line "impex-journal 1", then one line a name:
 * "<dev> <ino> <absolute path>" (decimal; the path has no newline).
 */
#ifndef IMPEX_JOURNAL_H
#define IMPEX_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct error;

#define JOURNAL_FOLDER ".impex-journals"
#define JOURNAL_MAGIC "impex-journal 1"
/* At most this many bytes in a journal. */
#define JOURNAL_MAX_BYTES (16u << 20)

struct journal_entry {
	unsigned long long dev, ino;
	char *path;
};

/**
 * Parse the journal text @text (@len bytes, named @name for messages) into
 * *@entries (*@count of them; free with journal_entries_free()). Returns 0,
 * or -EINVAL with a message naming the line, or -ENOMEM.
 */
int journal_parse(const char *text, size_t len, const char *name, struct journal_entry **entries,
		  size_t *count, struct error *err);

void journal_entries_free(struct journal_entry *entries, size_t count);

/**
 * Open the journal folder of the root @rootfd (@root its path, for
 * messages), making it when @create. Returns the descriptor (caller closes)
 * or a negative errno with a message (-ENOENT: none, without @create).
 */
int journal_folder_open(int rootfd, const char *root, bool create, struct error *err);

/**
 * Write the new journal of VM @id in the folder @folderfd: the @count
 * @entries, each a file or folder by the device and inode it has now and
 * the absolute path it is to be placed at. fsynced, with its folder.
 * Returns 0 or a negative errno with a message (-EEXIST for a journal of
 * that id, -EINVAL for a path that is not absolute or holds a newline).
 */
int journal_write(int folderfd, const char *id, const struct journal_entry *entries,
		  size_t count, struct error *err);

/** Add @entry (a file made, at its place) to the journal of VM @id. Returns 0 or -errno. */
int journal_add(int folderfd, const char *id, const struct journal_entry *entry,
		struct error *err);

/** Remove the journal of VM @id: committed. */
void journal_remove(int folderfd, const char *id);

/* A root that recovery may remove names under: its path and an open descriptor of it. */
struct journal_root {
	const char *path;
	int fd;
};

/**
 * Undo the journals in the folder @folderfd of the root @vmrootfd (whose
 * "Virtual Machines/<id>.xml" is each journal's commit): for each journal
 * whose VM never committed, each listed name under one of the @count
 * @roots, in a folder owned by this process's user and writable by no one
 * else, that still has the listed device and inode, is removed; then the
 * journal. @report (may be NULL) is told each thing left alone and why.
 * Returns how many things were left alone.
 */
size_t journal_recover(int folderfd, int vmrootfd, const struct journal_root *roots, size_t count,
		       void (*report)(void *ctx, const char *message), void *ctx);

#endif
