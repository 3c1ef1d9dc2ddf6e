/*
 * vhdx_log.h - the log of a VHDX file: find its active sequence, check it,
 * and replay it into an in-memory overlay of the file's bytes.
 *
 * [MS-VHDX] 2.3: metadata updates (BAT, metadata region, region tables) go
 * through a circular log first; a file whose current header carries a
 * non-zero LogGuid may hold updates that never reached their place, and must
 * be read as if they had. The overlay holds the replayed writes; the VHDX
 * reader lays it over every read of the file, so the file itself is never
 * written (it may lie on read-only media). A real replay before a write walks
 * the same overlay (vhdx_overlay_foreach).
 *
 * Thread safety: a sealed overlay (as vhdx_log_replay returns it) is
 * immutable: vhdx_overlay_apply may run from several threads at once.
 */
#ifndef IMPEX_VHDX_LOG_H
#define IMPEX_VHDX_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct error;

#define VHDX_LOG_SECTOR 4096u
/* The file identifier and the two headers: never written through the log
 * (the region tables after them are, [MS-VHDX] 2.2.3). */
#define VHDX_LOG_PROTECTED_END (192u * 1024)
/* A replay that needs more memory than this (replayed data sectors plus
 * bookkeeping) is refused. */
#define VHDX_LOG_MAX_REPLAY_BYTES (64u * 1024 * 1024)
/* The largest LastFileOffset accepted: a 64 TiB disk and its metadata fit
 * well within it. */
#define VHDX_LOG_MAX_FILE_SIZE (1ull << 47)

struct vhdx_overlay;

/* ---- the layout of a log entry ([MS-VHDX] 2.3.1) ---- */

/** Sectors that @count descriptors take, the first one after the entry's 64-byte header. */
uint64_t vhdx_log_descriptor_sectors(uint64_t count);

/** Where descriptor @i lies: the index of its sector in the entry, and its byte offset there. */
void vhdx_log_descriptor_place(uint64_t i, uint64_t *sector, size_t *at);

/* Where the log lies and what it must match. */
struct vhdx_log_params {
	int fd;		      /* the file, read with pread */
	const char *path;     /* for messages */
	uint64_t file_size;   /* bytes of the file as it is */
	uint64_t log_offset;  /* the current header's LogOffset */
	uint32_t log_length;  /* its LogLength: a multiple of 1 MiB, > 0 */
	uint8_t log_guid[16]; /* its LogGuid, non-zero */
};

/* What a replay found, for reports and tests. */
struct vhdx_log_info {
	uint64_t head_sequence; /* SequenceNumber of the head entry */
	uint32_t tail_offset;	/* log offset of the first entry replayed */
	uint32_t head_offset;	/* log offset of the head entry */
	uint32_t entries;	/* entries replayed, tail to head */
	uint32_t data_sectors;	/* data descriptors replayed */
	uint32_t zero_ranges;	/* zero descriptors replayed */
	uint64_t flushed_file_offset;
	uint64_t last_file_offset;
};

/**
 * Find the active sequence of the log @p describes ([MS-VHDX] 2.3.3: the
 * valid sequence with the highest head SequenceNumber whose head's Tail lies
 * within it; entries are valid when their signature, CRC-32C, LogGuid,
 * lengths, descriptors and data sectors all check), then replay its entries
 * from the Tail to the head into a new overlay *@out (caller frees with
 * vhdx_overlay_free). @info (may be NULL) receives what was found.
 * Refused with -EINVAL and a message naming @p->path and the fault: no valid
 * sequence (with the first reason an entry of that LogGuid failed), a head
 * whose FlushedFileOffset passes the end of the file (truncated), a
 * descriptor aimed at the file identifier, the headers or the log itself or
 * past its entry's LastFileOffset, an absurd LastFileOffset; -ENOTSUP when the
 * replay would need more than VHDX_LOG_MAX_REPLAY_BYTES (with a message);
 * -ENOMEM; -EIO on a read error.
 */
int vhdx_log_replay(const struct vhdx_log_params *p, struct vhdx_overlay **out,
		    struct vhdx_log_info *info, struct error *err);

/**
 * An empty overlay over a file of @file_size bytes, for writes added by hand
 * (tests, and a writer that batches updates). Returns NULL when out of memory;
 * caller frees with vhdx_overlay_free.
 */
struct vhdx_overlay *vhdx_overlay_new(uint64_t file_size);

/**
 * Record a write of @len bytes of @data (NULL: zeros) at file offset @offset,
 * later writes winning over earlier ones where they overlap. Only before
 * vhdx_overlay_seal. Extends the overlay's file size to cover the write.
 * Returns 0, -ENOMEM, -EINVAL once sealed or if the write wraps past 2^64.
 */
int vhdx_overlay_add(struct vhdx_overlay *overlay, uint64_t offset, const void *data, size_t len);

/**
 * Resolve the recorded writes into runs that do not overlap, ready to be read
 * (vhdx_overlay_apply, vhdx_overlay_foreach); no write can be added after.
 * Overlays from vhdx_log_replay come sealed. Returns 0 or -ENOMEM.
 */
int vhdx_overlay_seal(struct vhdx_overlay *overlay);

/** Free @overlay. NULL-safe. */
void vhdx_overlay_free(struct vhdx_overlay *overlay);

/** The file size after the replay: the file's own, the head's LastFileOffset or the end of the
 * last write, whichever is largest. */
uint64_t vhdx_overlay_file_size(const struct vhdx_overlay *overlay);

/**
 * Lay the replayed writes over @buf, which holds @len bytes of the file at
 * @offset. Returns 0, or -EINVAL for an overlay not sealed.
 */
int vhdx_overlay_apply(const struct vhdx_overlay *overlay, uint8_t *buf, size_t len,
		       uint64_t offset);

/**
 * Call @fn for each run of replayed bytes in file order, runs not
 * overlapping: @data is NULL for zeros. Stops at and returns the first
 * non-zero result of @fn; 0 when all were visited; -EINVAL for an overlay
 * not sealed.
 */
int vhdx_overlay_foreach(const struct vhdx_overlay *overlay,
			 int (*fn)(void *ctx, uint64_t offset, uint64_t len, const uint8_t *data),
			 void *ctx);

#endif
