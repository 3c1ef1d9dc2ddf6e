/*
 * disk.h - one virtual disk file, VHD or VHDX, behind one interface.
 *
 * Chains, streams, the export plan, the import and the tools go through this
 * module and do not know the format: open (the format is found from the
 * file's content), the disk's size and sectors, map a run of sectors to
 * "here in this file", "zeros" or "the parent's", read, and what a
 * differencing disk says of its parent (the identity it links to and the
 * places it names). The format modules (vhd.h, vhdx.h) stay reachable for
 * what only one format has (disk_vhd(), disk_vhdx()).
 *
 * Sectors are the disk's logical sectors: 512 bytes for VHD, 512 or 4096
 * for VHDX.
 *
 * Thread safety: as the format modules: reads and getters may run from
 * several threads at once on one struct disk.
 */
#ifndef IMPEX_DISK_H
#define IMPEX_DISK_H

#include "vhd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct error;
struct pathmap;
struct vhdx;
struct disk;

enum disk_format {
	DISK_FORMAT_VHD = 1,
	DISK_FORMAT_VHDX = 2,
};

enum disk_open_flags {
	DISK_OPEN_READ = 0,
	DISK_OPEN_WRITE = 1,
};

/* The largest logical sector of any format. */
#define DISK_MAX_SECTOR_SIZE 4096u

/* "VHD" or "VHDX". Static string. */
const char *disk_format_name(enum disk_format format);

/**
 * Which format the file at @path holds, from its content: a VHDX file
 * identifier ("vhdxfile") at offset 0 is VHDX; a file named *.vhdx or
 * *.avhdx is VHDX too (so that a damaged one is reported in VHDX terms);
 * anything else is VHD. Returns 0, or a negative errno with a message
 * naming the file when it cannot be read.
 */
int disk_probe(const char *path, enum disk_format *format, struct error *err);

/**
 * Open and validate the disk at @path, VHD or VHDX (disk_probe), as
 * vhd_open() and vhdx_open() do. *@out is freed with disk_close().
 * Returns 0 or a negative errno with a message naming the file and the fault.
 */
int disk_open(struct disk **out, const char *path, int flags, struct error *err);

/** Close @disk and free it. NULL-safe. */
void disk_close(struct disk *disk);

enum disk_format disk_format(const struct disk *disk);

/** The format's own handle, or NULL when @disk is of the other format. Borrowed. */
struct vhd *disk_vhd(const struct disk *disk);
struct vhdx *disk_vhdx(const struct disk *disk);

/** The path given to disk_open. Borrowed, valid until disk_close. */
const char *disk_path(const struct disk *disk);

/** The file descriptor. Borrowed. */
int disk_fd(const struct disk *disk);

/** Fixed, dynamic or differencing. */
enum vhd_type disk_type(const struct disk *disk);

/** Disk size in bytes: a whole number of logical sectors. */
uint64_t disk_size(const struct disk *disk);

/** Logical sector size in bytes: 512 or 4096. */
uint32_t disk_sector_size(const struct disk *disk);

/** Block size in bytes; 0 for a fixed VHD (which has no blocks). */
uint32_t disk_block_size(const struct disk *disk);

/** Number of blocks; 0 for a fixed VHD. */
uint64_t disk_block_count(const struct disk *disk);

/**
 * Whether block @block holds data of this file (VHD: allocated; VHDX:
 * fully or partially present). A block that cannot be read (an I/O error)
 * counts as holding data, so the caller reads it and meets the error.
 */
bool disk_block_present(struct disk *disk, uint64_t block);

/** Size of the file in bytes when it was opened (or after the last write). */
uint64_t disk_file_size(const struct disk *disk);

/** The file's modification time when opened. */
struct timespec disk_file_mtime(const struct disk *disk);

/** Device and inode of the open file. */
void disk_file_id(const struct disk *disk, dev_t *dev, ino_t *ino);

/**
 * The identity a child links to, 16 bytes: VHD's footer UUID, VHDX's
 * DataWriteGuid. Borrowed.
 */
const uint8_t *disk_link_id(const struct disk *disk);

/**
 * The disk's own identifier, 16 bytes: VHD's footer UUID, VHDX's virtual
 * disk ID. Borrowed.
 */
const uint8_t *disk_id(const struct disk *disk);

/**
 * An identity of this format as text into @out (40 bytes): VHD's UUID as 36
 * characters, VHDX's GUID in braces.
 */
void disk_id_format(const struct disk *disk, const uint8_t id[16], char out[40]);

/**
 * The identity differencing disk @disk requires of its parent: @which 0 is
 * VHD's parent UUID or VHDX's parent_linkage; @which 1 is VHDX's
 * parent_linkage2. Returns 0, -ENOENT when there is none, -EINVAL with a
 * message when the value is unreadable.
 */
int disk_parent_link(const struct disk *disk, int which, uint8_t out[16], struct error *err);

/* Where a differencing disk says its parent is. */
enum disk_hint_kind {
	DISK_HINT_RELATIVE, /* relative to the child's folder */
	DISK_HINT_ABSOLUTE, /* an absolute Windows or Linux path */
	DISK_HINT_NAME,	    /* a name or path, VHD's Parent Unicode Name */
};

struct disk_hint {
	enum disk_hint_kind kind;
	char what[64]; /* "relative locator W2ru", "relative_path" */
};

/**
 * Hint @index of differencing disk @disk, in the order they are to be tried
 * (relative, then absolute, then names): the path as UTF-8 into @path.
 * Returns 0 with a hint; -ENODATA for an unused slot (go on with the next);
 * -ENOENT past the last; another negative errno with a message (filling
 * @hint->what) when the slot is unreadable (go on with the next).
 */
int disk_parent_hint(const struct disk *disk, unsigned index, struct disk_hint *hint, char *path,
		     size_t cap, struct error *err);

/**
 * Describe the run of sectors starting at @sector, at most @count long (as
 * vhd_map and vhdx_map). Returns 0 or a negative errno with a message.
 */
int disk_map(struct disk *disk, uint64_t sector, uint64_t count, struct vhd_extent *extent,
	     struct error *err);

/** Read exactly @len bytes of the file at @offset (a VHD_EXTENT_DATA run). */
int disk_pread(struct disk *disk, void *buf, size_t len, uint64_t offset, struct error *err);

/**
 * The descriptor to read @len bytes of the file at @offset from as they lie
 * (what disk_pread gives: within the file, no replayed log over them), or
 * -1 when they must be read with disk_pread. Borrowed.
 */
int disk_direct_fd(const struct disk *disk, uint64_t offset, size_t len);

/**
 * Read @len bytes of disk content at @offset, this file alone (whole
 * sectors): what a differencing disk leaves to its parent reads as zeros.
 */
int disk_read(struct disk *disk, void *buf, size_t len, uint64_t offset, struct error *err);

/* ---- the file as an export serves it ---- */

/* The most patches disk_patches gives. */
#define DISK_MAX_PATCHES 5

/**
 * Bytes of the file as disk_pread reads it: the file's size, or for a VHDX
 * whose log was replayed in memory the size the log gives it.
 */
uint64_t disk_view_size(const struct disk *disk);

/**
 * Whether disk_pread's view differs from the file's own bytes (a VHDX whose
 * log was replayed in memory): the file must then be read through this
 * module, never copied as it lies.
 */
bool disk_view_replayed(const struct disk *disk);

/**
 * What to lay over disk_pread's view of @disk for a copy of it in a folder of
 * its own: with @parent_name (a differencing disk), name that file as its
 * parent, in its folder (vhd_relocation, vhdx_relocation); for a VHDX whose
 * log was replayed, an empty log in any case (vhdx_log_emptied). Fills
 * @patches[0 .. *@count) (@max slots, at least DISK_MAX_PATCHES); the caller
 * frees each .bytes. *@count is 0 when nothing changes. Returns 0 or a
 * negative errno with a message (-ENOSPC: no room for the new parent's name,
 * merge the chain instead).
 */
int disk_patches(struct disk *disk, const char *parent_name, struct vhd_patch *patches,
		 size_t max, size_t *count, struct error *err);

/**
 * Write @len bytes at disk offset @offset (whole sectors), durably. The disk
 * must be opened with DISK_OPEN_WRITE. Returns 0 or a negative errno with a
 * message, as vhd_write and vhdx_write.
 */
int disk_write(struct disk *disk, const void *buf, size_t len, uint64_t offset,
	       struct error *err);

/**
 * After the last write: a VHDX's log emptied (vhdx_flush), so that readers
 * that will not replay a log (QEMU read-only) open it. Nothing for a VHD.
 * disk_close does the same but cannot report a failure.
 */
int disk_flush(struct disk *disk, struct error *err);

/* ---- creating ---- */

struct disk_create_options {
	enum disk_format format;
	enum vhd_type type;   /* VHD_TYPE_FIXED or VHD_TYPE_DYNAMIC */
	uint64_t size;	      /* bytes: a whole number of MiB */
	uint32_t block_size;  /* 0: the format's default (VHD 2 MiB; VHDX 32 MiB dynamic) */
	uint32_t sector_size; /* logical: 0 or 512; VHDX also 4096 */
};

/**
 * Create a new fixed or dynamic disk at @path (which must not exist), as
 * vhd_create or vhdx_create. Returns 0 or a negative errno with a message.
 */
int disk_create(const char *path, const struct disk_create_options *options, struct error *err);

/** Check @options as disk_create would, creating nothing. Returns 0 or -EINVAL with a message. */
int disk_create_check(const struct disk_create_options *options, struct error *err);

/**
 * Create a differencing disk at @path over @parent_path, of the parent's
 * format (vhd_create_differencing, vhdx_create_differencing).
 */
int disk_create_differencing(const char *path, const char *parent_path,
			     const struct pathmap *map, struct error *err);

/** The extension of a differencing disk of @format: ".avhd" or ".avhdx". Static. */
const char *disk_child_extension(enum disk_format format);

#endif
