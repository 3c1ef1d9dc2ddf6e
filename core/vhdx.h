/*
 * vhdx.h - one VHDX file: parse, validate, read, create, write.
 *
 * Fixed, dynamic and differencing (AVHDX) disks as Microsoft's [MS-VHDX]
 * describes them (docs/VHDX.md says what impexfs reads, replays and refuses).
 * The interface follows vhd.h so that both formats can be wrapped alike: this
 * module knows one file, and a differencing disk read alone yields its own
 * sectors and reports the others as VHD_EXTENT_PARENT. Sectors are the disk's
 * logical sectors (512 or 4096 bytes).
 *
 * A file whose log is not empty is read as if the log had been replayed: the
 * replay is done in memory at open (the file is never written) and every read
 * of the file through this module sees it.
 *
 * Memory: the BAT is read in pages through a cache of VHDX_BAT_CACHE_BYTES and
 * sector bitmaps through one of VHDX_BITMAP_CACHE_BYTES, whatever the disk
 * size; a replayed log takes at most VHDX_LOG_MAX_REPLAY_BYTES.
 *
 * Thread safety: reads (vhdx_map, vhdx_pread, vhdx_read, vhdx_block_state
 * and the getters) may run from several threads at once on one struct vhdx:
 * what they share is set at open, and both caches have a lock per slot
 * (vhd_cache.h), held across that slot's read but by no other reader.
 * vhdx_write and vhdx_flush must not run concurrently with anything else on
 * the same struct vhdx.
 *
 * Reading: core/vhdx.c, core/vhdx_headers.c, core/vhdx_metadata.c,
 * core/vhdx_bat.c (vhdx_internal.h says which does what).
 *
 * Writing (core/vhdx_write.c, core/vhdx_create.c) follows [MS-VHDX]: new
 * files complete before they get their name; changes to the metadata (BAT,
 * sector bitmaps) go through the log, so that the file is a valid VHDX after
 * a crash at any point (docs/VHDX.md, "Writing").
 */
#ifndef IMPEX_VHDX_H
#define IMPEX_VHDX_H

#include "vhd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct error;
struct pathmap;

#define VHDX_MIB	  (1024u * 1024)
#define VHDX_HEADER_AREA  VHDX_MIB /* file identifier, headers, region tables */
#define VHDX_HEADER_SIZE  4096u	  /* one header */
#define VHDX_MIN_BLOCK	  VHDX_MIB
#define VHDX_MAX_BLOCK	  (256u * VHDX_MIB)
#define VHDX_MAX_SIZE	  (64ull << 40) /* 64 TiB, the format's limit */
#define VHDX_BITMAP_BLOCK VHDX_MIB	/* one sector bitmap block per chunk */
/* A chunk holds 2^23 logical sectors, whatever the block size. */
#define VHDX_CHUNK_SECTORS (1ull << 23)
/* The largest file opened: a 64 TiB disk and its metadata need far less. */
#define VHDX_MAX_FILE_SIZE (1ull << 47)
/* A parent locator item holds at most this many key/value pairs. */
#define VHDX_MAX_LOCATOR_ENTRIES 256
#define VHDX_BAT_CACHE_BYTES	 VHDX_MIB
#define VHDX_BITMAP_CACHE_BYTES	 (256u * 1024)

/* The header section ([MS-VHDX] 2.2): two headers, two region tables. */
#define VHDX_HEADER1_AT	       (64u * 1024)
#define VHDX_HEADER2_AT	       (128u * 1024)
#define VHDX_HEADER_AT(i)      ((i) ? VHDX_HEADER2_AT : VHDX_HEADER1_AT) /* @i 0 or 1 */
#define VHDX_REGION1_AT	       (192u * 1024)
#define VHDX_REGION2_AT	       (256u * 1024)
#define VHDX_REGION_AT(i)      ((i) ? VHDX_REGION2_AT : VHDX_REGION1_AT)
#define VHDX_REGION_SIZE       (64u * 1024) /* one region table */
#define VHDX_CHECKSUM_AT       4	    /* the CRC-32C of a header, region table, log entry */
#define VHDX_METADATA_TABLE_SIZE (64u * 1024) /* at the start of the metadata region */

/* Metadata table entry flags ([MS-VHDX] 2.6.1.2). */
#define VHDX_METADATA_IS_USER	      1u
#define VHDX_METADATA_IS_VIRTUAL_DISK 2u
#define VHDX_METADATA_IS_REQUIRED     4u

/* A BAT entry ([MS-VHDX] 2.5): the state in bits 0-2, the file offset in MiB from bit 20. */
#define VHDX_BAT_STATE_MASK   7u
#define VHDX_BAT_OFFSET_SHIFT 20

/* Payload block states ([MS-VHDX] 2.5.1.1). */
enum vhdx_block_state {
	VHDX_BLOCK_NOT_PRESENT = 0,
	VHDX_BLOCK_UNDEFINED = 1,
	VHDX_BLOCK_ZERO = 2,
	VHDX_BLOCK_UNMAPPED = 3,
	VHDX_BLOCK_FULLY_PRESENT = 6,
	VHDX_BLOCK_PARTIALLY_PRESENT = 7,
};

/* Sector bitmap block states ([MS-VHDX] 2.5.1.2). */
#define VHDX_BITMAP_NOT_PRESENT 0
#define VHDX_BITMAP_PRESENT	6

/* The fields of a header ([MS-VHDX] 2.2.2). GUIDs as stored. */
struct vhdx_header {
	uint32_t checksum;
	uint64_t sequence_number;
	uint8_t file_write_guid[16];
	uint8_t data_write_guid[16];
	uint8_t log_guid[16];
	uint16_t log_version;
	uint16_t version;
	uint32_t log_length;
	uint64_t log_offset;
};

/* One key/value pair of the parent locator, decoded from UTF-16LE. */
struct vhdx_locator_entry {
	const char *key;   /* UTF-8, NUL-terminated */
	const char *value; /* UTF-8, NUL-terminated */
};

/* Well-known parent locator keys ([MS-VHDX] 2.6.2.6.3). */
#define VHDX_KEY_PARENT_LINKAGE	     "parent_linkage"
#define VHDX_KEY_PARENT_LINKAGE2     "parent_linkage2"
#define VHDX_KEY_RELATIVE_PATH	     "relative_path"
#define VHDX_KEY_VOLUME_PATH	     "volume_path"
#define VHDX_KEY_ABSOLUTE_WIN32_PATH "absolute_win32_path"

/* GUIDs of the regions, metadata items and locator type ([MS-VHDX] 2.2.3, 2.6). */
#define VHDX_GUID_BAT	       "{2DC27766-F623-4200-9D64-115E9BFD4A08}"
#define VHDX_GUID_METADATA     "{8B7CA206-4790-4B9A-B8FE-575F050F886E}"
#define VHDX_GUID_FILE_PARAMS  "{CAA16737-FA36-4D43-B3B6-33F0AA44E76B}"
#define VHDX_GUID_DISK_SIZE    "{2FA54224-CD1B-4876-B211-5DBED83BF4B8}"
#define VHDX_GUID_DISK_ID      "{BECA12AB-B2E6-4523-93EF-C309E000C746}"
#define VHDX_GUID_LOGICAL      "{8141BF1D-A96F-4709-BA47-F233A8FAAB5F}"
#define VHDX_GUID_PHYSICAL     "{CDA348C7-445D-4471-9CC9-E9885251C556}"
#define VHDX_GUID_LOCATOR      "{A8D35F2D-B30B-454D-ABF7-D3D84834AB0C}"
#define VHDX_GUID_LOCATOR_VHDX "{B04AEFB7-D19E-4A81-B789-25B8E9445913}"

struct vhdx;

enum vhdx_open_flags {
	VHDX_OPEN_READ = 0,
	VHDX_OPEN_WRITE = 1, /* open read-write, for vhdx_write (a regular file only) */
};

/* ---- GUIDs ---- */

/**
 * Format the GUID @raw (16 bytes in Microsoft's layout: the first three
 * fields little-endian) as "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}", lower
 * case, into @out (39 bytes).
 */
void vhdx_guid_format(const uint8_t raw[16], char out[39]);

/**
 * Encode header @h ([MS-VHDX] 2.2.2; its checksum field ignored) into @raw
 * (VHDX_HEADER_SIZE bytes), the rest zeros, with its CRC-32C computed.
 */
void vhdx_header_encode(const struct vhdx_header *h, uint8_t raw[VHDX_HEADER_SIZE]);

/**
 * The header of a file impexfs makes whole (a new disk, a synthesized one):
 * sequence number @sequence, the write GUIDs given, version 1, and an empty
 * log of VHDX_LOG_LENGTH bytes right after the header section (LogGuid zero),
 * encoded into @raw as vhdx_header_encode does.
 */
void vhdx_header_encode_new(uint8_t raw[VHDX_HEADER_SIZE], uint64_t sequence,
			    const uint8_t file_write[16], const uint8_t data_write[16]);

/**
 * The UUID @uuid (16 bytes in RFC 4122 order, as libuuid gives it) as a GUID
 * in Microsoft's layout (the first three fields little-endian), so that both
 * read as the same text.
 */
void vhdx_guid_from_uuid(const uint8_t uuid[16], uint8_t out[16]);

/**
 * Parse "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" (either case; braces
 * required) into @raw in Microsoft's layout. Returns 0 or -EINVAL.
 */
int vhdx_guid_parse(const char *text, uint8_t raw[16]);

/** One of the VHDX_GUID_* constants into @raw, as vhdx_guid_parse; aborts on a malformed one. */
void vhdx_guid_constant(const char *text, uint8_t raw[16]);

/* ---- opening ---- */

/**
 * Open and validate the VHDX at @path (@flags: VHDX_OPEN_READ, or
 * VHDX_OPEN_WRITE for vhdx_write; opening changes nothing, whatever the
 * flags: a log to replay is replayed in memory, and for real only before the
 * first change): the file identifier; both headers (signature,
 * CRC-32C; the valid one with the higher sequence number is current, one
 * damaged header is tolerated), the current one's version, log version and
 * log place; the log, replayed in memory when the current header's LogGuid is
 * not zero (vhdx_log.h); both region tables (signature, CRC-32C, one damaged
 * copy tolerated; the one used: entry count, alignment, overlaps, bounds, no
 * unknown required region, BAT and metadata present); the metadata table and
 * items (required items present, block size, sector sizes, disk size,
 * HasParent against the parent locator, the locator's entries); the BAT,
 * streamed page by page (its size for the disk size and chunk ratio, every
 * state, every allocated block inside the file and clear of the header
 * section, the log, the regions and every other block, partially present
 * blocks only in differencing disks and with their chunk's sector bitmap).
 * On success *@out is the open disk; caller frees with vhdx_close().
 * Returns 0, or a negative errno with a message naming the file and the
 * fault: -ENOENT/-EACCES/... from the system, -EINVAL for a malformed file,
 * -ENOTSUP for a log too large to replay in memory, -ENOMEM, -EIO.
 */
int vhdx_open(struct vhdx **out, const char *path, int flags, struct error *err);

/** vhdx_open() of @path already opened as @fd (fsutil_open_source(), for writing with
 * VHDX_OPEN_WRITE), which it takes, whatever it returns; -1 opens @path. */
int vhdx_open_fd(struct vhdx **out, const char *path, int fd, int flags, struct error *err);

/** Close @vhdx and free it. NULL-safe. */
void vhdx_close(struct vhdx *vhdx);

/* ---- what the file says ---- */

/** The path given to vhdx_open. Borrowed, valid until vhdx_close. */
const char *vhdx_path(const struct vhdx *vhdx);

/** The file descriptor, read-only. Borrowed. */
int vhdx_fd(const struct vhdx *vhdx);

/** Fixed (LeaveBlockAllocated), dynamic or differencing (HasParent). */
enum vhd_type vhdx_disk_type(const struct vhdx *vhdx);

/** Virtual disk size in bytes (a whole number of logical sectors). */
uint64_t vhdx_size(const struct vhdx *vhdx);

/** Logical sector size: 512 or 4096. */
uint32_t vhdx_logical_sector_size(const struct vhdx *vhdx);

/** Physical sector size: 512 or 4096. */
uint32_t vhdx_physical_sector_size(const struct vhdx *vhdx);

/** Payload block size in bytes: a power of two from 1 to 256 MiB. */
uint32_t vhdx_block_size(const struct vhdx *vhdx);

/** Payload blocks of the disk. */
uint64_t vhdx_block_count(const struct vhdx *vhdx);

/** Payload blocks per chunk (per sector bitmap block). */
uint32_t vhdx_chunk_ratio(const struct vhdx *vhdx);

/** The file parameters' HasParent flag. */
bool vhdx_has_parent(const struct vhdx *vhdx);

/** The file parameters' LeaveBlockAllocated flag. */
bool vhdx_leave_allocated(const struct vhdx *vhdx);

/** The virtual disk ID, 16 bytes as stored. Borrowed. */
const uint8_t *vhdx_disk_id(const struct vhdx *vhdx);

/** The current header (after validation). Borrowed. */
const struct vhdx_header *vhdx_current_header(const struct vhdx *vhdx);

/** Which header is current: 1 (at 64 KiB) or 2 (at 128 KiB). */
int vhdx_current_header_index(const struct vhdx *vhdx);

/** The current header's DataWriteGuid, FileWriteGuid and LogGuid, 16 bytes each. Borrowed. */
const uint8_t *vhdx_data_write_guid(const struct vhdx *vhdx);
const uint8_t *vhdx_file_write_guid(const struct vhdx *vhdx);
const uint8_t *vhdx_log_guid(const struct vhdx *vhdx);

/** Whether a log was replayed in memory at open; its head entry's sequence number, or 0. */
bool vhdx_log_replayed(const struct vhdx *vhdx, uint64_t *head_sequence);

/** Size of the file in bytes when it was opened (before any replay). */
uint64_t vhdx_file_size(const struct vhdx *vhdx);

/** Size in bytes of the file as vhdx_pread reads it: vhdx_file_size, or more when a replayed
 * log extends the file (to its head entry's LastFileOffset). */
uint64_t vhdx_replayed_file_size(const struct vhdx *vhdx);

/** File offset and length of the metadata region (as the replayed log leaves the region table). */
void vhdx_metadata_region(const struct vhdx *vhdx, uint64_t *offset, uint32_t *length);

/** The file's modification time when opened. */
struct timespec vhdx_file_mtime(const struct vhdx *vhdx);

/** Device and inode of the open file, to detect cycles in chains. */
void vhdx_file_id(const struct vhdx *vhdx, dev_t *dev, ino_t *ino);

/* ---- the parent locator ---- */

/** Number of key/value pairs of the parent locator; 0 without one. */
size_t vhdx_locator_count(const struct vhdx *vhdx);

/** Pair @index (in the order stored), or NULL past the end. Borrowed, valid until vhdx_close. */
const struct vhdx_locator_entry *vhdx_locator_entry(const struct vhdx *vhdx, size_t index);

/** The value of @key (exact, case-sensitive), or NULL. Borrowed, valid until vhdx_close. */
const char *vhdx_locator_get(const struct vhdx *vhdx, const char *key);

/** Where the parent locator item lies: its offset within the metadata region and its length,
 * as the metadata table gave them at open. Returns false (and zeros) without a locator. */
bool vhdx_locator_place(const struct vhdx *vhdx, uint32_t *offset, uint32_t *length);

/* ---- relocating a differencing disk (core/vhdx_relocate.c) ---- */

/* At most this many patches come out of vhdx_relocation. */
#define VHDX_RELOCATION_MAX_PATCHES 5

/**
 * What to change in differencing disk @vhdx so that it names its parent by
 * @parent_name alone (a file name, no folder), in its own folder, as an
 * export lays disks out: patches to lay over the file as vhdx_pread reads it
 * (the replayed log's view, vhdx_replayed_file_size bytes long).
 *
 * The parent locator keeps parent_linkage, parent_linkage2 and any key
 * impexfs does not know, drops volume_path and absolute_win32_path, and gets
 * relative_path ".\<parent_name>" (Hyper-V's form). The item is rewritten in
 * place when it fits in its old length (the rest zeroed), else put in the
 * first free space of the metadata region that holds it (the old place
 * zeroed) and its metadata table entry updated. Both headers are rewritten
 * as [MS-VHDX] 2.2.2.1 updates them twice: LogGuid zero (a replayed log is
 * served as replayed, its log empty), a FileWriteGuid derived from the old
 * one and @parent_name (the same bytes at every call), DataWriteGuid kept
 * (children link to it), sequence numbers advanced so that the header that
 * was current stays current, checksums computed.
 *
 * Fills @patches[0 .. *@count) (@max slots, at least
 * VHDX_RELOCATION_MAX_PATCHES), in file order and not overlapping; their bytes
 * are owned by the caller (free each .bytes), nothing is left on failure.
 * Returns 0; -EINVAL for a disk that is not a differencing one, a
 * @parent_name that is not a file name, or too few slots; -ENAMETOOLONG;
 * -ENOSPC when the metadata region has no room for the new locator (the
 * caller merges the chain instead); -EIO when the file changed since it was
 * opened, or on a read error; -ENOMEM. Each with a message naming the file.
 * It only reads @vhdx, so it may run beside other threads reading it.
 */
int vhdx_relocation(struct vhdx *vhdx, const char *parent_name, struct vhd_patch *patches,
		    size_t max, size_t *count, struct error *err);

/**
 * For a disk whose log was replayed in memory: the two patches (the headers,
 * as vhdx_relocation writes them, LogGuid zero) that make the file as
 * vhdx_pread reads it a clean file with an empty log, so that no reader
 * replays the log again. *@count is 0 for a disk with an empty log.
 * Returns 0 or a negative errno with a message, as vhdx_relocation.
 */
int vhdx_log_emptied(struct vhdx *vhdx, struct vhd_patch *patches, size_t max, size_t *count,
		     struct error *err);

/* ---- reading ---- */

/**
 * The BAT entry of payload block @block: its state (enum vhdx_block_state)
 * into *@state and the file offset it gives (0 when none) into *@offset.
 * Returns 0, -EINVAL past the last block, -EIO on a read error.
 */
int vhdx_block_state(struct vhdx *vhdx, uint64_t block, int *state, uint64_t *offset,
		     struct error *err);

/**
 * Describe the run of logical sectors starting at @sector, at most @count
 * long: VHD_EXTENT_DATA (stored in this file at file_offset), VHD_EXTENT_ZERO
 * or VHD_EXTENT_PARENT. A payload block reads as:
 *
 *   state               dynamic or fixed     differencing
 *   NOT_PRESENT         zeros                the parent's
 *   UNDEFINED           zeros                zeros
 *   ZERO                zeros                zeros
 *   UNMAPPED            zeros                zeros
 *   FULLY_PRESENT       here                 here
 *   PARTIALLY_PRESENT   (refused at open)    here where its sector bitmap bit is
 *                                            set, else the parent's
 *
 * Runs go on across blocks of the same kind (and, for stored data, blocks
 * adjacent in the file). Returns 0, -EINVAL if @sector is past the end or
 * @count is 0, -EIO on a read error.
 */
int vhdx_map(struct vhdx *vhdx, uint64_t sector, uint64_t count, struct vhd_extent *extent,
	     struct error *err);

/**
 * Read exactly @len bytes of the file at @offset as the replayed log leaves
 * it (a VHD_EXTENT_DATA run, or any structure): bytes past the file's end
 * but within the size the log gives it read as zeros.
 * Returns 0, -EIO with a message on a read error or past that size.
 */
int vhdx_pread(struct vhdx *vhdx, void *buf, size_t len, uint64_t offset, struct error *err);

/**
 * The descriptor vhdx_pread() would read @len bytes at @offset from as they
 * lie: within the file, and no replayed log laid over the file; -1
 * otherwise. Borrowed.
 */
int vhdx_direct_fd(const struct vhdx *vhdx, uint64_t offset, size_t len);

/**
 * Read @len bytes of disk content at @offset, this file alone: sectors that a
 * differencing disk leaves to its parent read as zeros. @offset and @len are
 * whole logical sectors inside the disk.
 * Returns 0 or a negative errno with a message.
 */
int vhdx_read(struct vhdx *vhdx, void *buf, size_t len, uint64_t offset, struct error *err);

/* ---- creating and writing ---- */

/* Hyper-V's defaults ([MS-VHDX] leaves them free; docs/VHDX.md says where they come from). */
#define VHDX_DEFAULT_DYNAMIC_BLOCK	(32u * VHDX_MIB)
#define VHDX_DEFAULT_FIXED_BLOCK	(2u * VHDX_MIB)
#define VHDX_DEFAULT_DIFFERENCING_BLOCK (2u * VHDX_MIB)
#define VHDX_DEFAULT_LOGICAL_SECTOR	512u
#define VHDX_DEFAULT_PHYSICAL_SECTOR	4096u
#define VHDX_LOG_LENGTH			VHDX_MIB

struct vhdx_create_options {
	enum vhd_type type;	       /* VHD_TYPE_FIXED or VHD_TYPE_DYNAMIC */
	uint64_t size;		       /* bytes: a whole number of MiB, at most 64 TiB */
	uint32_t block_size;	       /* 0: 32 MiB for dynamic, 2 MiB for fixed disks */
	uint32_t logical_sector_size;  /* 0: 512; or 4096 */
	uint32_t physical_sector_size; /* 0: 4096; or 512 (not below the logical size) */
	const uint8_t *disk_id;	       /* 16 bytes, or NULL for a random virtual disk ID */
};

/**
 * Check @options as vhdx_create would, without creating anything: a fixed
 * or dynamic type, a size of whole MiB from 1 MiB to 64 TiB, a block size
 * (0 for the default) a power of two from 1 to 256 MiB, sector sizes of 512
 * or 4096 bytes with the physical one not below the logical one.
 * Returns 0 or -EINVAL with a message.
 */
int vhdx_create_check(const struct vhdx_create_options *options, struct error *err);

/**
 * Create a new fixed or dynamic VHDX at @path (which must not exist): the
 * header section, a log of 1 MiB at 1 MiB, the metadata region at 2 MiB and
 * the BAT from 3 MiB, as Hyper-V lays them out; a dynamic disk has no block,
 * a fixed one has every block allocated after the BAT (the file is sparse:
 * its blocks read as zeros). The file is built under a temporary name beside
 * @path, fsynced, and given its name only when complete; on failure nothing
 * is left. Returns 0, -EEXIST, -EINVAL with a message for bad options, or a
 * system errno with a message.
 */
int vhdx_create(const char *path, const struct vhdx_create_options *options, struct error *err);

/**
 * Create a differencing VHDX (an AVHDX, as Hyper-V names a checkpoint's disk)
 * at @path over the VHDX at @parent_path, as Hyper-V does: the parent's size,
 * sector sizes and virtual disk ID (the metadata items marked IsVirtualDisk),
 * 2 MiB blocks, no block allocated, and a parent locator with
 * parent_linkage (the parent's DataWriteGuid), relative_path (the parent
 * relative to the child's folder, as ".\parent.vhdx") and, only when @map
 * covers the parent, absolute_win32_path ("\\?\C:\...\parent.vhdx").
 * Created as vhdx_create creates. Returns 0 or a negative errno with a
 * message; on failure nothing is left.
 */
int vhdx_create_differencing(const char *path, const char *parent_path, const struct pathmap *map,
			     struct error *err);

/**
 * Write @len bytes at disk offset @offset, both whole logical sectors, to
 * @vhdx opened with VHDX_OPEN_WRITE. The first change of the session
 * replays a log left to replay (for real), renews the FileWriteGuid and,
 * as this is a change of disk data, the DataWriteGuid. Blocks not stored
 * are allocated at the end of the file (whole MiB); in a differencing disk a
 * block written in part becomes PARTIALLY_PRESENT with its sectors marked in
 * its chunk's sector bitmap (allocated when the chunk has none), and a block
 * whose every sector is written FULLY_PRESENT. The data is durable before
 * the BAT points to it; BAT entries and bitmap sectors change through the
 * log (an entry written and flushed, then applied and flushed). Durable on
 * return. Returns 0, -EINVAL for unaligned or out-of-range writes, -EBADF if
 * @vhdx was not opened for writing, -ENOTSUP for a file without a log that
 * needs a metadata change, or a system errno with a message.
 */
int vhdx_write(struct vhdx *vhdx, const void *buf, size_t len, uint64_t offset, struct error *err);

/**
 * Leave @vhdx with no log to replay: a log the file came with is replayed
 * (for real, as before a write); the log this writer used (every entry of it
 * applied, as after each vhdx_write) is closed by both headers rewritten
 * with a zero LogGuid, so that readers that refuse a log to replay (QEMU
 * read-only) open the file. vhdx_close closes the writer's log the same way,
 * without saying whether it failed, and leaves a log the file came with.
 * Returns 0 (also for a file not opened for writing), -EIO after a failed
 * change (the log is then left for the next open to replay), or a system
 * errno with a message.
 */
int vhdx_flush(struct vhdx *vhdx, struct error *err);

#endif
