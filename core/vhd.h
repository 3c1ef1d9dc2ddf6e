/*
 * vhd.h - one VHD file: parse, validate, read, create, write.
 *
 * Fixed, dynamic and differencing disks as Microsoft's "Virtual Hard Disk
 * Image Format Specification" 1.0 describes them (docs/VHD.md says how
 * impexfs reads and writes them). This module knows one file; parents are
 * the chain module's business: a differencing disk read alone yields its own
 * sectors and reports the others as VHD_EXTENT_PARENT.
 *
 * The module's rooms: core/vhd_layout.c (the on-disk structures, and the
 * small pieces VHDX uses too), core/vhd.c (opening, validating, reading),
 * core/vhd_create.c (new files), core/vhd_write.c (writing, relocating);
 * core/vhd_internal.h is what they share. Beneath them, core/vhd_io.h (the
 * file) and core/vhd_cache.h (the bitmap cache) serve VHDX as well.
 *
 * Thread safety: reads (vhd_map, vhd_pread, vhd_read, the getters) may run
 * from several threads at once on one struct vhd: what they share is set at
 * open, and the sector bitmap cache has a lock per slot (vhd_cache.h), held
 * across the bitmap's read but by no other reader. vhd_write must not run
 * concurrently with anything else on the same struct vhd.
 */
#ifndef IMPEX_VHD_H
#define IMPEX_VHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct error;
struct pathmap;

#define VHD_SECTOR_SIZE	     512u
#define VHD_FOOTER_SIZE	     512u
#define VHD_HEADER_SIZE	     1024u
#define VHD_LOCATOR_COUNT    8
#define VHD_PARENT_NAME_SIZE 512u
#define VHD_DEFAULT_BLOCK    (2u * 1024 * 1024)
#define VHD_MIN_BLOCK	     VHD_SECTOR_SIZE
#define VHD_MAX_BLOCK	     (256u * 1024 * 1024)
/* Smallest block size impexfs creates: QEMU sizes a block's bitmap wrongly
 * (as none) for blocks below 4 KiB, so it would misread such files. */
#define VHD_MIN_CREATE_BLOCK 4096u
/* The largest disk impexfs opens (the format's limit) and creates (QEMU's). */
#define VHD_MAX_SIZE	    (2048ull * 1024 * 1024 * 1024)
#define VHD_MAX_CREATE_SIZE (2040ull * 1024 * 1024 * 1024)
/* At most this many BAT entries are loaded: 64 MiB of table, enough for a
 * 2 TiB disk with 128 KiB blocks. */
#define VHD_MAX_BAT_ENTRIES (1u << 24)
/* A locator's data is a path: 32 KiB UTF-16 characters at most on Windows. */
#define VHD_MAX_LOCATOR_BYTES 65536u
#define VHD_UNALLOCATED	      0xFFFFFFFFu
/* VHD timestamps count seconds from 2000-01-01 00:00:00 UTC. */
#define VHD_EPOCH 946684800

enum vhd_type {
	VHD_TYPE_FIXED = 2,
	VHD_TYPE_DYNAMIC = 3,
	VHD_TYPE_DIFFERENCING = 4,
};

/* Parent locator platform codes. */
#define VHD_PLATFORM_NONE 0x00000000u
#define VHD_PLATFORM_WI2R 0x57693272u /* "Wi2r" relative, deprecated */
#define VHD_PLATFORM_WI2K 0x5769326Bu /* "Wi2k" absolute, deprecated */
#define VHD_PLATFORM_W2RU 0x57327275u /* "W2ru" relative, UTF-16LE */
#define VHD_PLATFORM_W2KU 0x57326B75u /* "W2ku" absolute, UTF-16LE */
#define VHD_PLATFORM_MAC  0x4D616320u /* "Mac " alias blob */
#define VHD_PLATFORM_MACX 0x4D616358u /* "MacX" file URL, UTF-8 */

struct vhd_geometry {
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
};

struct vhd_footer {
	char cookie[8];
	uint32_t features;
	uint32_t version;
	uint64_t data_offset;
	uint32_t timestamp;
	char creator_app[4];
	uint32_t creator_version;
	char creator_os[4];
	uint64_t original_size;
	uint64_t current_size;
	struct vhd_geometry geometry;
	uint32_t disk_type;
	uint32_t checksum;
	uint8_t uuid[16];
	uint8_t saved_state;
};

struct vhd_locator {
	uint32_t code;
	uint32_t data_space; /* as stored: sectors or bytes, see vhd_locator_space_bytes */
	uint32_t data_length;
	uint64_t data_offset;
};

struct vhd_header {
	char cookie[8];
	uint64_t data_offset;
	uint64_t table_offset;
	uint32_t version;
	uint32_t max_table_entries;
	uint32_t block_size;
	uint32_t checksum;
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	uint8_t parent_name[VHD_PARENT_NAME_SIZE]; /* UTF-16BE, zero-padded */
	struct vhd_locator locators[VHD_LOCATOR_COUNT];
};

/* What one run of sectors of a single file holds. */
enum vhd_extent_kind {
	VHD_EXTENT_DATA,   /* stored in this file at file_offset */
	VHD_EXTENT_ZERO,   /* not allocated in a fixed or dynamic disk: zeros */
	VHD_EXTENT_PARENT, /* not held by this differencing disk: read the parent */
};

struct vhd_extent {
	enum vhd_extent_kind kind;
	uint64_t sectors;     /* length of the run, >= 1 */
	uint64_t file_offset; /* for VHD_EXTENT_DATA */
};

struct vhd;

/* ---- the on-disk structures (core/vhd_layout.c) ---- */

/** The one's complement of the byte sum of @raw, the 4 bytes at @checksum_at taken as zero. */
uint32_t vhd_checksum(const uint8_t *raw, size_t len, size_t checksum_at);

/** Decode a 512-byte footer. No validation: see vhd_open. */
void vhd_footer_decode(const uint8_t raw[VHD_FOOTER_SIZE], struct vhd_footer *footer);

/** Encode @footer into @raw (512 bytes), computing and storing the checksum. */
void vhd_footer_encode(const struct vhd_footer *footer, uint8_t raw[VHD_FOOTER_SIZE]);

/** Decode a 1024-byte dynamic disk header. No validation. */
void vhd_header_decode(const uint8_t raw[VHD_HEADER_SIZE], struct vhd_header *header);

/** Encode @header into @raw (1024 bytes), computing and storing the checksum. */
void vhd_header_encode(const struct vhd_header *header, uint8_t raw[VHD_HEADER_SIZE]);

/** CHS geometry for a disk of @size bytes, by the specification's algorithm. */
void vhd_geometry_for_size(uint64_t size, struct vhd_geometry *geometry);

/** Bytes that a locator's data space stands for: below 512 it counts sectors, else bytes. */
uint64_t vhd_locator_space_bytes(uint32_t data_space);

/** Bytes of the sector bitmap in front of each block of @block_size bytes. */
uint32_t vhd_bitmap_size(uint32_t block_size);

/**
 * Whether sector @bit of a sector bitmap is set: most significant bit first
 * as VHD stores it, or least significant bit first (@lsb_first) as VHDX does.
 */
bool vhd_bitmap_test(const uint8_t *bitmap, uint32_t bit, bool lsb_first);

/** How many bits from @first (at most to @limit) equal bit @first, in that bit order. */
uint32_t vhd_bitmap_run(const uint8_t *bitmap, uint32_t first, uint32_t limit, bool lsb_first);

/** "fixed", "dynamic", "differencing" or "unknown". Static string. */
const char *vhd_type_name(uint32_t type);

/** A platform code as its four characters ("W2ru"); "" for none. Static or @buf (5 bytes). */
const char *vhd_platform_name(uint32_t code, char buf[5]);

/** Unix time of a VHD timestamp, and back (clamped to the format's range). */
time_t vhd_time_to_unix(uint32_t vhd_time);
uint32_t vhd_time_from_unix(time_t unix_time);

/** Format Unix time @t as "2026-11-26 17:45:42 UTC" into @buf; returns @buf. */
const char *vhd_format_utc(time_t t, char *buf, size_t cap);

/** Format a UUID as 36 lower-case characters in the byte order stored. */
void vhd_uuid_format(const uint8_t uuid[16], char out[37]);

/**
 * Fill @footer for a new disk made by impexfs: creator "win " (so that every
 * reader takes the size from the footer, not the geometry), host "Wi2k", the
 * specification's geometry for @size, @uuid and @timestamp (VHD time).
 * The checksum is computed by vhd_footer_encode.
 */
void vhd_footer_init(struct vhd_footer *footer, enum vhd_type type, uint64_t size,
		     const uint8_t uuid[16], uint32_t timestamp);

/**
 * Fill @header for a new dynamic or differencing disk: @block_count BAT
 * entries of @block_size bytes, the table right after the header (offset
 * 1536), no parent.
 */
void vhd_header_init(struct vhd_header *header, uint32_t block_count, uint32_t block_size);

/** Bytes of the BAT for @block_count entries, padded to whole sectors. */
uint64_t vhd_bat_bytes(uint32_t block_count);

/* ---- small pieces both formats use, VHD and VHDX (core/vhd_layout.c) ---- */

/* One field of an on-disk structure: where it lies in the raw bytes, and
 * which member of the decoded struct holds it. */
struct vhd_field {
	uint16_t at;	 /* offset in the raw bytes */
	uint16_t size;	 /* bytes: of the member */
	bool bytes;	 /* copied as they are; else an integer of 1, 2, 4 or 8 bytes */
	uint16_t member; /* offsetof the member */
};

#define VHD_FIELD_INT(at, type, m)   {(at), sizeof(((type *)0)->m), false, offsetof(type, m)}
#define VHD_FIELD_BYTES(at, type, m) {(at), sizeof(((type *)0)->m), true, offsetof(type, m)}

/** Decode the @count @fields of @raw into the struct at @out (big-endian integers, or little). */
void vhd_fields_decode(const struct vhd_field *fields, size_t count, bool little_endian,
		       const uint8_t *raw, void *out);

/** Encode the @count @fields of the struct at @in into @raw; other bytes are left as they are. */
void vhd_fields_encode(const struct vhd_field *fields, size_t count, bool little_endian,
		       const void *in, uint8_t *raw);

/**
 * Whether [@a, @a + @alen) and [@b, @b + @blen) share a byte, computed
 * without sums that could wrap (hostile offsets are safe). An empty range
 * meets nothing.
 */
bool vhd_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen);

/** Whether @v is a power of two (0 is not). */
bool vhd_is_power_of_two(uint64_t v);

/** Whether the 16 bytes of a UUID or GUID @id are all zero. */
bool vhd_id_is_zero(const uint8_t id[16]);

/** The value of hexadecimal digit @c (either case), or -1. */
int vhd_hex_digit(char c);

/* ---- opening and reading (core/vhd.c) ---- */

enum vhd_open_flags {
	VHD_OPEN_READ = 0,
	VHD_OPEN_WRITE = 1, /* open read-write, for vhd_write */
};

/**
 * Open and validate the VHD at @path: footer (cookie, checksum, version,
 * type, size), and for dynamic and differencing disks the header (cookie,
 * checksum, block size), the BAT (size against the disk size, every entry
 * inside the file and clear of the metadata and of every other block) and the
 * parent locators (inside the file, sane lengths).
 * On success *@out is the open disk; caller frees with vhd_close().
 * Returns 0, or a negative errno with a message naming the file and fault:
 * -ENOENT/-EACCES/... from the system, -EINVAL for a malformed file,
 * -ENOMEM.
 */
int vhd_open(struct vhd **out, const char *path, int flags, struct error *err);

/** vhd_open() of @path already opened as @fd (fsutil_open_source(), for writing with
 * VHD_OPEN_WRITE), which it takes, whatever it returns; -1 opens @path. */
int vhd_open_fd(struct vhd **out, const char *path, int fd, int flags, struct error *err);

/** Close @vhd and free it. NULL-safe. */
void vhd_close(struct vhd *vhd);

/** The path given to vhd_open. Borrowed, valid until vhd_close. */
const char *vhd_path(const struct vhd *vhd);

/** The decoded footer (the one at the end of the file). Borrowed. */
const struct vhd_footer *vhd_footer(const struct vhd *vhd);

/** The decoded dynamic header, or NULL for a fixed disk. Borrowed. */
const struct vhd_header *vhd_header(const struct vhd *vhd);

/** The file descriptor (read-only unless opened for writing). Borrowed. */
int vhd_fd(const struct vhd *vhd);

enum vhd_type vhd_disk_type(const struct vhd *vhd);

/** Disk size in bytes (the footer's current size). */
uint64_t vhd_size(const struct vhd *vhd);

/** Block size in bytes; 0 for a fixed disk. */
uint32_t vhd_block_size(const struct vhd *vhd);

/** Number of blocks of the disk (BAT entries in use); 0 for a fixed disk. */
uint32_t vhd_block_count(const struct vhd *vhd);

/** Number of allocated blocks; 0 for a fixed disk. */
uint32_t vhd_allocated_blocks(const struct vhd *vhd);

/** File offset of block @block's bitmap, or -1 if it is not allocated (or out of range). */
int64_t vhd_block_offset(const struct vhd *vhd, uint32_t block);

/** Size of the file in bytes when it was opened (or after the last write). */
uint64_t vhd_file_size(const struct vhd *vhd);

/** The file's modification time when opened. */
struct timespec vhd_file_mtime(const struct vhd *vhd);

/** Device and inode of the open file, to detect cycles in chains. */
void vhd_file_id(const struct vhd *vhd, dev_t *dev, ino_t *ino);

/**
 * The Parent Unicode Name as UTF-8 into @out (@cap bytes); "" when empty.
 * Returns 0, -EILSEQ with a message for invalid UTF-16, -ENAMETOOLONG.
 */
int vhd_parent_name(const struct vhd *vhd, char *out, size_t cap, struct error *err);

/**
 * The path that locator @index holds, as UTF-8 into @out: UTF-16LE for the
 * W2ru/W2ku codes, the local path of a MacX file URL (percent-decoded), bytes
 * for the deprecated Wi2r/Wi2k codes. Returns 0, -ENOENT for an unused or
 * unknown-platform entry, -EINVAL/-EILSEQ with a message for unreadable data.
 */
int vhd_locator_path(const struct vhd *vhd, int index, char *out, size_t cap, struct error *err);

/**
 * Describe the run of sectors starting at @sector, at most @count long:
 * stored here, zeros, or the parent's. Runs end at block boundaries where the
 * state changes, and within a differencing block where the sector bitmap does.
 * Returns 0, -EINVAL if @sector is past the end, -EIO on a read error.
 */
int vhd_map(struct vhd *vhd, uint64_t sector, uint64_t count, struct vhd_extent *extent,
	    struct error *err);

/**
 * Read exactly @len bytes at file offset @offset (a VHD_EXTENT_DATA run).
 * Returns 0, -EIO with a message on a short read or error.
 */
int vhd_pread(struct vhd *vhd, void *buf, size_t len, uint64_t offset, struct error *err);

/**
 * The descriptor vhd_pread() would read @len bytes at @offset from, when
 * they lie within the file as it was opened; -1 otherwise. Borrowed.
 */
int vhd_direct_fd(const struct vhd *vhd, uint64_t offset, size_t len);

/**
 * Read @len bytes of disk content at @offset, this file alone: sectors that a
 * differencing disk leaves to its parent read as zeros (use the chain module
 * for merged content). @offset + @len must not pass the disk size.
 * Returns 0 or a negative errno with a message.
 */
int vhd_read(struct vhd *vhd, void *buf, size_t len, uint64_t offset, struct error *err);

/* ---- relocating a differencing disk (core/vhd_write.c) ---- */

/* Bytes to put over a file at @offset. */
struct vhd_patch {
	uint64_t offset;
	size_t len;
	uint8_t *bytes;
};

/**
 * What to change in differencing disk @vhd so that it names its parent by
 * @parent_name alone, in its own folder, as an export lays disks out: the
 * Parent Unicode Name becomes @parent_name, one W2ru locator ".\<name>"
 * takes the data space of the largest locator (the others are emptied: their
 * absolute paths mean nothing where the copy lands). Fills @patches[0] (the
 * header) and @patches[1] (the locator's data space), bytes owned by the
 * caller (free each .bytes). Returns 0, -EINVAL for a disk that is not a
 * differencing one, -ENOSPC when no locator has room for the new path (the
 * caller merges the chain instead), -ENAMETOOLONG, -ENOMEM.
 */
int vhd_relocation(const struct vhd *vhd, const char *parent_name, struct vhd_patch patches[2],
		   struct error *err);

/** Lay the @count @patches over @buf, which holds @len bytes of the file at @offset. */
void vhd_patches_apply(const struct vhd_patch *patches, size_t count, uint8_t *buf, size_t len,
		       uint64_t offset);

/* ---- creating (core/vhd_create.c) and writing (core/vhd_write.c) ---- */

struct vhd_create_options {
	enum vhd_type type;  /* VHD_TYPE_FIXED or VHD_TYPE_DYNAMIC */
	uint64_t size;	     /* bytes: a whole number of MiB */
	uint32_t block_size; /* dynamic only; 0 means 2 MiB */
	const uint8_t *uuid; /* 16 bytes, or NULL for a random UUID */
	uint32_t timestamp;  /* VHD time, or 0 for now */
};

/**
 * Create a new fixed or dynamic VHD at @path (which must not exist), with
 * creator "win ", the geometry of the specification, an empty BAT.
 * The file is complete and fsynced on return; on failure nothing is left.
 * Returns 0, -EEXIST, -EINVAL with a message for a bad size, or a system errno.
 */
int vhd_create(const char *path, const struct vhd_create_options *options, struct error *err);

/**
 * Check @options as vhd_create would, without creating anything: a size of
 * whole MiB up to 2040 GiB, a fixed or dynamic type, a block size (dynamic
 * only, 0 for the default) a power of two from 4 KiB to 256 MiB, at most
 * VHD_MAX_BAT_ENTRIES blocks.
 * Returns 0 or -EINVAL with a message.
 */
int vhd_create_check(const struct vhd_create_options *options, struct error *err);

/**
 * Create a differencing VHD at @path over the VHD at @parent_path: same size
 * and geometry, 2 MiB blocks, the parent's UUID and modification time, the
 * Parent Unicode Name (the parent's file name) and three locators: W2ru (the
 * parent relative to the child's folder), W2ku (the absolute Windows path,
 * only when @map covers the parent) and MacX (the absolute Linux path).
 * Returns 0 or a negative errno with a message; on failure nothing is left.
 */
int vhd_create_differencing(const char *path, const char *parent_path, const struct pathmap *map,
			    struct error *err);

/**
 * Write @len bytes at disk offset @offset, both whole sectors. Dynamic and
 * differencing disks get blocks allocated at the end of the file, bitmaps,
 * BAT and the trailing footer updated; the new footer and data are durable
 * before the BAT points to them. The file is valid and fsynced on return.
 * Returns 0, -EINVAL for unaligned or out-of-range writes, -EBADF if the disk
 * was not opened for writing, or a system errno with a message.
 */
int vhd_write(struct vhd *vhd, const void *buf, size_t len, uint64_t offset, struct error *err);

#endif
