/*
 * vhdx_write.c - changing a VHDX opened with VHDX_OPEN_WRITE: the headers
 * (two-header protocol), a log left to replay (replayed for real), disk
 * data, and the BAT and sector bitmaps through the log ([MS-VHDX] 2.2.2.1,
 * 2.3). docs/VHDX.md, "Writing", says what is written in which order.
 *
 * The order of one vhdx_write, for each batch of blocks whose metadata
 * changes fit one log entry:
 *   1. new blocks (and sector bitmap blocks) get space at the end of the
 *      file (ftruncate), the data goes to its place; fdatasync;
 *   2. the log entry (the new 4 KiB sectors of the BAT and of the bitmaps,
 *      and a zero descriptor for each new bitmap block) at the log's head;
 *      fdatasync; the first entry of a session is followed by the headers
 *      naming its LogGuid (each header written and synced in turn);
 *   3. the entry's sectors at their places; fdatasync.
 * A crash before 2 is complete leaves the BAT as it was (the new space is
 * unused); after it, a reader replays the entry (vhdx_log.c) and sees the
 * BAT of 3, pointing at data made durable in 1.
 */
#include "vhdx.h"
#include "vhdx_internal.h"

#include "bigendian.h"
#include "crc32c.h"
#include "error.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define SECTOR VHDX_LOG_SECTOR
/* At most this many 4 KiB sectors of metadata and new bitmap blocks in one
 * log entry: with its descriptors, 130 sectors, well inside a 1 MiB log. */
#define ENTRY_MAX_SECTORS 128
#define ENTRY_MAX_ZEROS	  16
/* The largest file the writer makes: as large as the reader opens. */
#define WRITE_MAX_FILE VHDX_MAX_FILE_SIZE

static uint64_t mib_down(uint64_t v)
{
	return v / VHDX_MIB * VHDX_MIB;
}

static uint64_t mib_up(uint64_t v)
{
	return (v + VHDX_MIB - 1) / VHDX_MIB * VHDX_MIB;
}

static int sync_file(struct vhdx *vhdx, struct error *err)
{
	if (fdatasync(vhdx->io.fd) < 0)
		return error_errno(err, errno, "cannot sync", vhdx->io.path);
	return 0;
}

static int write_at(struct vhdx *vhdx, const void *buf, size_t len, uint64_t offset,
		    const char *what, struct error *err)
{
	int rc = fsutil_pwrite_full(vhdx->io.fd, buf, len, offset);

	if (rc < 0)
		return error_set(err, -rc, "cannot write %s of '%s' at byte %llu: %s", what,
				 vhdx->io.path, (unsigned long long)offset, strerror(-rc));
	return 0;
}

/* Zeros over [offset, offset+len) of the file: a hole punched where the file
 * system can, written zeros where it cannot. */
static int zero_range(struct vhdx *vhdx, uint64_t offset, uint64_t len, struct error *err)
{
	static const uint8_t zeros[64 * 1024];

	if (len == 0)
		return 0;
	if (fallocate(vhdx->io.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
		      (off_t)len) == 0)
		return 0;
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int rc = write_at(vhdx, zeros, n, offset, "zeros", err);

		if (rc < 0)
			return rc;
		offset += n;
		len -= n;
	}
	return 0;
}

/* ---- the headers ---- */

/*
 * Make @h the current header ([MS-VHDX] 2.2.2.1): written over the header
 * that is not current with the next sequence number, synced; then once more
 * over the other, so that both hold it. A crash leaves one valid current
 * header, the old or the new.
 */
static int header_write(struct vhdx *vhdx, struct vhdx_header h, struct error *err)
{
	uint8_t raw[VHDX_HEADER_SIZE];

	if (vhdx->header.sequence_number > UINT64_MAX - 2)
		return error_set(err, EINVAL,
				 "cannot update the headers of '%s': the sequence number is at its "
				 "limit",
				 vhdx->io.path);
	for (int round = 0; round < 2; round++) {
		int slot = vhdx->header_index == 1 ? 2 : 1;
		int rc;

		h.sequence_number = vhdx->header.sequence_number + 1;
		vhdx_header_encode(&h, raw);
		rc = write_at(vhdx, raw, sizeof(raw), slot == 1 ? VHDX_HEADER1_AT : VHDX_HEADER2_AT,
			      "a header", err);
		if (rc == 0)
			rc = sync_file(vhdx, err);
		if (rc < 0)
			return rc;
		vhdx->header = h;
		vhdx->header_index = slot;
	}
	return 0;
}

/* ---- the session ---- */

int vhdx_write_prepare(struct vhdx *vhdx, struct error *err)
{
	if (vhdx->header.log_version != 0)
		return error_set(err, ENOTSUP,
				 "'%s' has a log of version %u; impexfs writes log version 0",
				 vhdx->io.path, vhdx->header.log_version);
	if (vhdx->header.sequence_number > UINT64_MAX - 16)
		return error_set(err, EINVAL,
				 "'%s' cannot be written: the sequence number of its headers is "
				 "at its limit",
				 vhdx->io.path);
	uuid_generate_random(vhdx->log_guid);
	vhdx->log_head = 0;
	vhdx->log_sequence = 0;
	return 0;
}

struct replay_ctx {
	struct vhdx *vhdx;
	uint64_t old_size; /* the file's size before the replay: past it, zeros already */
	struct error *err;
};

static int replay_run(void *arg, uint64_t offset, uint64_t len, const uint8_t *data)
{
	struct replay_ctx *c = arg;

	if (data)
		return write_at(c->vhdx, data, (size_t)len, offset, "the replayed log", c->err);
	if (offset >= c->old_size)
		return 0;
	if (len > c->old_size - offset)
		len = c->old_size - offset;
	return zero_range(c->vhdx, offset, len, c->err);
}

/*
 * Replay for real the log that vhdx_open replayed in memory ([MS-VHDX]
 * 2.3.3): its writes at their places, the file extended to the head's
 * LastFileOffset, synced; then the headers with LogGuid zero. A crash before
 * the headers leaves the log to replay again, to the same result.
 */
static int replay_for_real(struct vhdx *vhdx, struct error *err)
{
	struct replay_ctx c = {vhdx, vhdx->io.size, err};
	struct vhdx_header h;
	struct stat st;
	int rc;

	rc = vhdx_overlay_foreach(vhdx->overlay, replay_run, &c);
	if (rc < 0)
		return rc;
	if (fstat(vhdx->io.fd, &st) < 0)
		return error_errno(err, errno, "cannot stat", vhdx->io.path);
	if ((uint64_t)st.st_size < vhdx->data_end && ftruncate(vhdx->io.fd, (off_t)vhdx->data_end) < 0)
		return error_errno(err, errno, "cannot extend", vhdx->io.path);
	rc = sync_file(vhdx, err);
	if (rc < 0)
		return rc;
	h = vhdx->header;
	memset(h.log_guid, 0, 16);
	rc = header_write(vhdx, h, err);
	if (rc < 0)
		return rc;
	vhdx_overlay_free(vhdx->overlay);
	vhdx->overlay = NULL;
	vhdx->io.size = vhdx->data_end;
	vhdx_caches_drop(vhdx);
	return 0;
}

/*
 * Before the first change of the session: a new FileWriteGuid and, for a
 * change of disk data (@data), a new DataWriteGuid, in both headers before
 * anything else is written ([MS-VHDX] 2.2.2); then a log left to replay is
 * replayed.
 */
static int begin_change(struct vhdx *vhdx, bool data, struct error *err)
{
	int rc;

	if (!vhdx->session || (data && !vhdx->data_changed)) {
		struct vhdx_header h = vhdx->header;

		if (!vhdx->session)
			uuid_generate_random(h.file_write_guid);
		if (data && !vhdx->data_changed)
			uuid_generate_random(h.data_write_guid);
		rc = header_write(vhdx, h, err);
		if (rc < 0)
			return rc;
		vhdx->session = true;
		vhdx->data_changed |= data;
	}
	if (vhdx->overlay) {
		rc = replay_for_real(vhdx, err);
		if (rc < 0)
			return rc;
	}
	if (!vhdx->alloc_end)
		vhdx->alloc_end = mib_up(vhdx->io.size);
	return 0;
}

int vhdx_flush(struct vhdx *vhdx, struct error *err)
{
	struct vhdx_header h;
	int rc;

	if (!vhdx->io.writable)
		return 0;
	if (vhdx->failed)
		return error_set(err, EIO,
				 "an earlier change to '%s' failed: its log is left for the next "
				 "open to replay",
				 vhdx->io.path);
	if (vhdx->overlay) {
		/* Opened with a log to replay and not written since: replay it, so
		 * that the file is left with none. */
		rc = begin_change(vhdx, false, err);
		if (rc < 0) {
			vhdx->failed = true;
			return rc;
		}
	}
	if (!vhdx->log_open)
		return 0;
	h = vhdx->header;
	memset(h.log_guid, 0, 16);
	rc = header_write(vhdx, h, err);
	if (rc < 0)
		return rc;
	/* The next entries start a new log: a new LogGuid, so that none of
	 * these is ever taken for one of them. */
	vhdx->log_open = false;
	uuid_generate_random(vhdx->log_guid);
	vhdx->log_head = 0;
	vhdx->log_sequence = 0;
	return 0;
}

void vhdx_write_release(struct vhdx *vhdx)
{
	/* Only the log this writer opened: a log the file came with stays for a
	 * later open to replay, unless vhdx_flush replayed it. */
	if (!vhdx->failed && vhdx->log_open)
		vhdx_flush(vhdx, NULL);
}

/* ---- one log entry's worth of metadata changes ---- */

struct batch {
	size_t count;			       /* sectors changed */
	uint64_t offset[ENTRY_MAX_SECTORS];    /* their file offsets */
	uint8_t *data;			       /* their new content, count * SECTOR */
	size_t zeros;			       /* new sector bitmap blocks */
	uint64_t zero_offset[ENTRY_MAX_ZEROS]; /* each VHDX_BITMAP_BLOCK long */
	bool wrote;			       /* data written since the last sync */
};

static uint8_t *batch_find(struct batch *b, uint64_t offset)
{
	for (size_t i = 0; i < b->count; i++)
		if (b->offset[i] == offset)
			return b->data + i * SECTOR;
	return NULL;
}

/* The batch's copy of the file sector at @offset, read in if it has none yet. */
static int batch_sector(struct vhdx *vhdx, struct batch *b, uint64_t offset, uint8_t **out,
			struct error *err)
{
	uint8_t *p = batch_find(b, offset);
	int rc;

	if (!p) {
		if (b->count == ENTRY_MAX_SECTORS)
			return error_set(err, EIO,
					 "too many metadata changes for one log entry "
					 "(impexfs fault)");
		p = b->data + b->count * SECTOR;
		rc = vhdx_pread(vhdx, p, SECTOR, offset, err);
		if (rc < 0)
			return rc;
		b->offset[b->count++] = offset;
	}
	*out = p;
	return 0;
}

static int entry_get(struct vhdx *vhdx, struct batch *b, uint64_t index, uint64_t *entry,
		     struct error *err)
{
	uint64_t at = vhdx->bat_offset + index * 8;
	const uint8_t *p = batch_find(b, at / SECTOR * SECTOR);

	if (p) {
		*entry = le64_load(p + at % SECTOR);
		return 0;
	}
	return vhdx_bat_get(vhdx, index, entry, err);
}

static int entry_set(struct vhdx *vhdx, struct batch *b, uint64_t index, uint64_t entry,
		     struct error *err)
{
	uint64_t at = vhdx->bat_offset + index * 8;
	uint8_t *p = NULL;
	int rc = batch_sector(vhdx, b, at / SECTOR * SECTOR, &p, err);

	if (rc == 0)
		le64_store(p + at % SECTOR, entry);
	return rc;
}

/* Set bits [first, first+count) of the sector bitmap block at @bitmap (least
 * significant bit first: bit 0 of byte 0 is the chunk's first sector). */
static int bits_set(struct vhdx *vhdx, struct batch *b, uint64_t bitmap, uint64_t first,
		    uint64_t count, struct error *err)
{
	uint64_t bit = first, end = first + count;

	while (bit < end) {
		uint64_t sector = bitmap + bit / 8 / SECTOR * SECTOR;
		uint64_t last = ((bit / 8 / SECTOR) + 1) * SECTOR * 8; /* first bit of the next */
		uint8_t *p = NULL;
		int rc = batch_sector(vhdx, b, sector, &p, err);

		if (rc < 0)
			return rc;
		for (; bit < end && bit < last; bit++) {
			uint64_t byte = bit / 8 - (sector - bitmap);

			p[byte] |= (uint8_t)(1u << (bit % 8));
		}
	}
	return 0;
}

/* Whether every bit of [first, first+count) of the bitmap at @bitmap is set,
 * as the batch leaves it. */
static int bits_all(struct vhdx *vhdx, struct batch *b, uint64_t bitmap, uint64_t first,
		    uint64_t count, bool *all, struct error *err)
{
	uint8_t buf[SECTOR];
	uint64_t bit = first, end = first + count;

	*all = true;
	while (bit < end && *all) {
		uint64_t sector = bitmap + bit / 8 / SECTOR * SECTOR;
		uint64_t last = ((bit / 8 / SECTOR) + 1) * SECTOR * 8;
		const uint8_t *p = batch_find(b, sector);

		if (!p) {
			int rc = vhdx_pread(vhdx, buf, SECTOR, sector, err);

			if (rc < 0)
				return rc;
			p = buf;
		}
		for (; bit < end && bit < last; bit++)
			if (!(p[bit / 8 - (sector - bitmap)] & (1u << (bit % 8)))) {
				*all = false;
				break;
			}
	}
	return 0;
}

/* Space for @bytes at the end of the file (whole MiB), the file extended over it:
 * zeros until written. */
static int allocate(struct vhdx *vhdx, uint64_t bytes, uint64_t *offset, struct error *err)
{
	uint64_t at = vhdx->alloc_end;

	if (at > WRITE_MAX_FILE || bytes > WRITE_MAX_FILE - at)
		return error_set(err, EFBIG, "'%s' would grow past %llu bytes", vhdx->io.path,
				 (unsigned long long)WRITE_MAX_FILE);
	if (ftruncate(vhdx->io.fd, (off_t)(at + bytes)) < 0)
		return error_errno(err, errno, "cannot extend", vhdx->io.path);
	vhdx->alloc_end = at + bytes;
	vhdx->io.size = vhdx->data_end = at + bytes;
	*offset = at;
	return 0;
}

/* Write the log entry of @b at the log's head ([MS-VHDX] 2.3.1): its header,
 * the zero and data descriptors, the data sectors; checksummed. */
static int log_append(struct vhdx *vhdx, struct batch *b, struct error *err)
{
	uint32_t log_sectors = vhdx->header.log_length / SECTOR;
	uint64_t descriptors = b->zeros + b->count;
	uint64_t desc_sectors = vhdx_log_descriptor_sectors(descriptors);
	uint64_t total = desc_sectors + b->count, seq = vhdx->log_sequence + 1;
	uint32_t head = vhdx->log_head / SECTOR;
	uint8_t *raw;
	int rc = 0;

	if (total > log_sectors)
		return error_set(err, ENOSPC,
				 "the log of '%s' (%u bytes) is too small for an entry", vhdx->io.path,
				 vhdx->header.log_length);
	raw = calloc((size_t)total, SECTOR);
	if (!raw)
		return error_set(err, ENOMEM, "out of memory");
	memcpy(raw, "loge", 4);
	le32_store(raw + 8, (uint32_t)(total * SECTOR));
	/* Tail: this entry. Every earlier entry is applied and synced, so a
	 * replay needs none of them. */
	le32_store(raw + 12, vhdx->log_head);
	le64_store(raw + 16, seq);
	le32_store(raw + 24, (uint32_t)descriptors);
	memcpy(raw + 32, vhdx->log_guid, 16);
	le64_store(raw + 48, mib_down(vhdx->io.size)); /* FlushedFileOffset: synced */
	le64_store(raw + 56, mib_up(vhdx->io.size));	 /* LastFileOffset */
	for (uint64_t i = 0; i < descriptors; i++) {
		uint64_t sector_index;
		size_t at;
		uint8_t *d;

		vhdx_log_descriptor_place(i, &sector_index, &at);
		d = raw + sector_index * SECTOR + at;
		if (i < b->zeros) {
			memcpy(d, "zero", 4);
			le64_store(d + 8, VHDX_BITMAP_BLOCK);
			le64_store(d + 16, b->zero_offset[i]);
		} else {
			size_t k = (size_t)(i - b->zeros);
			const uint8_t *sector = b->data + k * SECTOR;
			uint8_t *out = raw + (desc_sectors + k) * SECTOR;

			memcpy(d, "desc", 4);
			memcpy(d + 4, sector + SECTOR - 4, 4); /* TrailingBytes */
			memcpy(d + 8, sector, 8);	       /* LeadingBytes */
			le64_store(d + 16, b->offset[k]);
			memcpy(out, "data", 4);
			le32_store(out + 4, (uint32_t)(seq >> 32));
			memcpy(out + 8, sector + 8, SECTOR - 12);
			le32_store(out + SECTOR - 4, (uint32_t)seq);
		}
		le64_store(d + 24, seq);
	}
	le32_store(raw + 4, crc32c(0, raw, (size_t)(total * SECTOR)));
	/* Round the circular log: in one piece or two. */
	for (uint64_t done = 0; done < total && rc == 0;) {
		uint32_t at = (uint32_t)((head + done) % log_sectors);
		uint64_t n = total - done < log_sectors - at ? total - done : log_sectors - at;

		rc = write_at(vhdx, raw + done * SECTOR, (size_t)(n * SECTOR),
			      vhdx->header.log_offset + (uint64_t)at * SECTOR, "the log", err);
		done += n;
	}
	free(raw);
	if (rc == 0)
		rc = sync_file(vhdx, err);
	if (rc < 0)
		return rc;
	vhdx->log_sequence = seq;
	vhdx->log_head = (uint32_t)((head + total) % log_sectors) * SECTOR;
	return 0;
}

/* Make the batch's changes: the data synced, the log entry written and synced
 * (the headers naming the log first if they do not yet), the changes applied
 * and synced. */
static int commit(struct vhdx *vhdx, struct batch *b, struct error *err)
{
	int rc;

	if (b->count == 0 && b->zeros == 0) {
		rc = b->wrote ? sync_file(vhdx, err) : 0;
		b->wrote = false;
		return rc;
	}
	rc = sync_file(vhdx, err);
	if (rc < 0)
		return rc;
	b->wrote = false;
	if (vhdx->header.log_length == 0)
		return error_set(err, ENOTSUP,
				 "'%s' has no log: impexfs changes the metadata of a VHDX only "
				 "through its log",
				 vhdx->io.path);
	rc = log_append(vhdx, b, err);
	if (rc < 0)
		return rc;
	if (!vhdx->log_open) {
		/* Only now: a header naming a LogGuid with no valid entry would be a
		 * file that no reader can replay. */
		struct vhdx_header h = vhdx->header;

		memcpy(h.log_guid, vhdx->log_guid, 16);
		rc = header_write(vhdx, h, err);
		if (rc < 0)
			return rc;
		vhdx->log_open = true;
	}
	for (size_t i = 0; i < b->zeros && rc == 0; i++)
		rc = zero_range(vhdx, b->zero_offset[i], VHDX_BITMAP_BLOCK, err);
	for (size_t i = 0; i < b->count && rc == 0; i++)
		rc = write_at(vhdx, b->data + i * SECTOR, SECTOR, b->offset[i], "metadata", err);
	if (rc == 0)
		rc = sync_file(vhdx, err);
	vhdx_caches_drop(vhdx);
	b->count = 0;
	b->zeros = 0;
	return rc;
}

/* ---- writing ---- */

/* Sectors of the disk in block @block (the last block may be short). */
static uint32_t block_sectors(const struct vhdx *vhdx, uint64_t block)
{
	uint64_t total = vhdx->size / vhdx->logical, first = block * vhdx->sectors_per_block;

	return total - first < vhdx->sectors_per_block ? (uint32_t)(total - first)
						       : vhdx->sectors_per_block;
}

/* The sector bitmap block of @chunk, allocated (through the batch) if it has none. */
static int chunk_bitmap(struct vhdx *vhdx, struct batch *b, uint64_t chunk, uint64_t *offset,
			struct error *err)
{
	uint64_t index = vhdx_bitmap_entry(vhdx, chunk), entry;
	int rc = entry_get(vhdx, b, index, &entry, err);

	if (rc < 0)
		return rc;
	if ((entry & VHDX_BAT_STATE_MASK) == VHDX_BITMAP_PRESENT) {
		*offset = (entry >> VHDX_BAT_OFFSET_SHIFT) << VHDX_BAT_OFFSET_SHIFT;
		return 0;
	}
	rc = allocate(vhdx, VHDX_BITMAP_BLOCK, offset, err);
	if (rc == 0)
		rc = entry_set(vhdx, b, index, *offset | VHDX_BITMAP_PRESENT, err);
	if (rc == 0)
		b->zero_offset[b->zeros++] = *offset;
	return rc;
}

/* Write @count sectors from @in at sector @first of block @block. */
static int write_block(struct vhdx *vhdx, struct batch *b, uint64_t block, uint32_t first,
		       uint32_t count, const uint8_t *in, struct error *err)
{
	uint64_t index = vhdx_payload_entry(vhdx, block), entry, at;
	uint64_t chunk = block / vhdx->chunk_ratio;
	uint64_t bit = (block % vhdx->chunk_ratio) * vhdx->sectors_per_block;
	uint32_t sectors = block_sectors(vhdx, block);
	uint64_t bitmap;
	unsigned state;
	bool all;
	int rc;

	rc = entry_get(vhdx, b, index, &entry, err);
	if (rc < 0)
		return rc;
	state = entry & VHDX_BAT_STATE_MASK;
	at = (entry >> VHDX_BAT_OFFSET_SHIFT) << VHDX_BAT_OFFSET_SHIFT;
	if (state == VHDX_BLOCK_FULLY_PRESENT || state == VHDX_BLOCK_PARTIALLY_PRESENT) {
		rc = write_at(vhdx, in, (size_t)count * vhdx->logical,
			      at + (uint64_t)first * vhdx->logical, "data", err);
		b->wrote = true;
		if (rc < 0 || state == VHDX_BLOCK_FULLY_PRESENT)
			return rc;
		/* Partially present: the written sectors become this file's, and a
		 * block with every sector here becomes fully present. */
		rc = chunk_bitmap(vhdx, b, chunk, &bitmap, err);
		if (rc == 0)
			rc = bits_set(vhdx, b, bitmap, bit + first, count, err);
		if (rc == 0)
			rc = bits_all(vhdx, b, bitmap, bit, sectors, &all, err);
		if (rc == 0 && all)
			rc = entry_set(vhdx, b, index, at | VHDX_BLOCK_FULLY_PRESENT, err);
		return rc;
	}
	/* Not stored: a new block, zeros but where written. In a differencing
	 * disk a NOT_PRESENT block is the parent's where not written: partially
	 * present, unless written whole. Other states read as zeros: fully. */
	rc = allocate(vhdx, vhdx->block_size, &at, err);
	if (rc == 0)
		rc = write_at(vhdx, in, (size_t)count * vhdx->logical,
			      at + (uint64_t)first * vhdx->logical, "data", err);
	if (rc < 0)
		return rc;
	b->wrote = true;
	if (vhdx->has_parent && state == VHDX_BLOCK_NOT_PRESENT && count < sectors) {
		rc = chunk_bitmap(vhdx, b, chunk, &bitmap, err);
		if (rc == 0)
			rc = bits_set(vhdx, b, bitmap, bit + first, count, err);
		if (rc == 0)
			rc = entry_set(vhdx, b, index, at | VHDX_BLOCK_PARTIALLY_PRESENT, err);
		return rc;
	}
	return entry_set(vhdx, b, index, at | VHDX_BLOCK_FULLY_PRESENT, err);
}

int vhdx_write(struct vhdx *vhdx, const void *buf, size_t len, uint64_t offset, struct error *err)
{
	const uint8_t *in = buf;
	struct batch b;
	uint64_t sector, end;
	/* The most sectors one block can add to a batch: its BAT entry's, its
	 * chunk's bitmap entry's, and the sectors of its bits. */
	uint64_t bits_sectors = (vhdx->sectors_per_block / 8 + SECTOR - 1) / SECTOR + 1;
	uint64_t worst = 2 + bits_sectors;
	int rc;

	if (!vhdx->io.writable)
		return error_set(err, EBADF, "'%s' was not opened for writing", vhdx->io.path);
	if (offset % vhdx->logical || len % vhdx->logical)
		return error_set(
			err, EINVAL,
			"writes to '%s' must be whole %u-byte sectors (offset %llu, length "
			"%zu)",
			vhdx->io.path, vhdx->logical, (unsigned long long)offset, len);
	if (offset > vhdx->size || len > vhdx->size - offset)
		return error_set(err, EINVAL,
				 "a write of %zu bytes at %llu does not fit in '%s' (%llu bytes)",
				 len, (unsigned long long)offset, vhdx->io.path,
				 (unsigned long long)vhdx->size);
	if (vhdx->failed)
		return error_set(err, EIO,
				 "an earlier change to '%s' failed: reopen it to replay its log",
				 vhdx->io.path);
	if (len == 0)
		return 0;
	memset(&b, 0, sizeof(b));
	b.data = malloc((size_t)ENTRY_MAX_SECTORS * SECTOR);
	if (!b.data)
		return error_set(err, ENOMEM, "out of memory");
	rc = begin_change(vhdx, true, err);
	if (rc < 0)
		goto out;
	sector = offset / vhdx->logical;
	end = sector + len / vhdx->logical;
	while (sector < end) {
		uint64_t block = sector / vhdx->sectors_per_block;
		uint32_t first = (uint32_t)(sector % vhdx->sectors_per_block);
		uint32_t count = vhdx->sectors_per_block - first;

		if (count > end - sector)
			count = (uint32_t)(end - sector);
		if (b.count + worst > ENTRY_MAX_SECTORS || b.zeros == ENTRY_MAX_ZEROS) {
			rc = commit(vhdx, &b, err);
			if (rc < 0)
				goto out;
		}
		rc = write_block(vhdx, &b, block, first, count, in, err);
		if (rc < 0)
			goto out;
		in += (size_t)count * vhdx->logical;
		sector += count;
	}
	rc = commit(vhdx, &b, err);
out:
	/* After a failure the file is valid, but what this writer knows of it may
	 * not be (an entry written, not applied): no more changes until a reopen
	 * replays the log, and the log is left named in the headers. */
	if (rc < 0)
		vhdx->failed = true;
	free(b.data);
	return rc;
}
