#include "stream.h"

#include "bigendian.h"
#include "chain.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "vhd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

/* Namespace of the name-based UUIDs impexfs gives synthesized disks. */
static const uint8_t stream_namespace[16] = {0x6b, 0x1f, 0x4e, 0x0a, 0x93, 0x2d, 0x4c, 0x51,
					     0xa7, 0x3e, 0x58, 0xc4, 0x0d, 0x9b, 0x72, 0xe6};

#define TABLE_OFFSET ((uint64_t)VHD_FOOTER_SIZE + VHD_HEADER_SIZE)

enum stream_kind {
	STREAM_VHD,
	STREAM_RAW,
	STREAM_PATCHED,
};

struct stream {
	enum stream_kind kind;
	struct chain *chain;
	uint64_t disk_size;
	uint64_t size;
	uint64_t allocated_bytes;

	/* STREAM_VHD layout */
	uint8_t footer[VHD_FOOTER_SIZE];
	uint8_t header[VHD_HEADER_SIZE];
	uint8_t uuid[16];
	uint32_t block_size;
	uint32_t bitmap_size;
	uint32_t block_count;
	uint64_t data_start;  /* first block, right after the BAT */
	uint64_t block_bytes; /* bitmap + block */
	uint32_t *bat;	      /* sector offset of each block, or VHD_UNALLOCATED */
	uint32_t *order;      /* allocated blocks in file order */
	uint32_t allocated;
	uint8_t *bitmap; /* the full bitmap every block carries */

	/* STREAM_PATCHED: a file with ranges replaced */
	struct disk *source;	   /* borrowed */
	struct vhd_patch *patches; /* owned, bytes included */
	size_t patch_count;
};

static int stream_alloc(struct stream **out, enum stream_kind kind, struct chain *chain,
			struct error *err)
{
	struct stream *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return error_set(err, ENOMEM, "out of memory");
	s->kind = kind;
	s->chain = chain;
	s->disk_size = chain_size(chain);
	*out = s;
	return 0;
}

void stream_free(struct stream *s)
{
	if (!s)
		return;
	free(s->bat);
	free(s->order);
	free(s->bitmap);
	for (size_t i = 0; i < s->patch_count; i++)
		free(s->patches[i].bytes);
	free(s->patches);
	free(s);
}

int stream_new_raw(struct stream **out, struct chain *chain, struct error *err)
{
	struct stream *s;
	uint64_t pos = 0;
	int rc = stream_alloc(&s, STREAM_RAW, chain, err);

	if (rc < 0)
		return rc;
	s->size = s->disk_size;
	while (pos < s->size) {
		bool allocated;
		uint64_t end;

		chain_extent(chain, pos, &allocated, &end);
		if (allocated)
			s->allocated_bytes += end - pos;
		pos = end;
	}
	*out = s;
	return 0;
}

/* Recompute the file order and the file size from the BAT. */
static void layout_from_bat(struct stream *s)
{
	s->allocated = 0;
	for (uint32_t b = 0; b < s->block_count; b++)
		if (s->bat[b] != VHD_UNALLOCATED)
			s->order[s->allocated++] = b;
	s->size = s->data_start + (uint64_t)s->allocated * s->block_bytes + VHD_FOOTER_SIZE;
	s->allocated_bytes = s->size;
}

int stream_new_vhd(struct stream **out, struct chain *chain, const struct stream_vhd_options *o,
		   struct error *err)
{
	struct disk *top = chain_level(chain, 0);
	const struct vhd_footer *top_footer = disk_vhd(top) ? vhd_footer(disk_vhd(top)) : NULL;
	struct vhd_footer footer;
	struct vhd_header header;
	struct stream *s;
	uint64_t pos;
	uint32_t spb, timestamp;
	int rc;

	rc = stream_alloc(&s, STREAM_VHD, chain, err);
	if (rc < 0)
		return rc;
	/* The top VHD's block size, unless it has none (fixed) or one that
	 * QEMU cannot read (below 4 KiB); a VHDX chain takes VHD's usual 2 MiB. */
	s->block_size = top_footer && disk_block_size(top) >= VHD_MIN_CREATE_BLOCK
				? disk_block_size(top)
				: VHD_DEFAULT_BLOCK;
	if (s->disk_size % VHD_SECTOR_SIZE || s->disk_size > VHD_MAX_SIZE) {
		stream_free(s);
		return error_set(err, EFBIG, "a %llu-byte disk does not fit in a VHD",
				 (unsigned long long)s->disk_size);
	}
	s->bitmap_size = vhd_bitmap_size(s->block_size);
	s->block_bytes = (uint64_t)s->bitmap_size + s->block_size;
	s->block_count = (uint32_t)((s->disk_size + s->block_size - 1) / s->block_size);
	s->data_start = TABLE_OFFSET + vhd_bat_bytes(s->block_count);
	s->bat = malloc((size_t)s->block_count * sizeof(*s->bat));
	s->order = malloc((size_t)s->block_count * sizeof(*s->order));
	s->bitmap = calloc(1, s->bitmap_size);
	if (!s->bat || !s->order || !s->bitmap) {
		stream_free(s);
		return error_set(err, ENOMEM,
				 "out of memory for the allocation table of a %llu-byte disk",
				 (unsigned long long)s->disk_size);
	}
	/* Full bitmaps: every sector of every block is held by the new disk. */
	spb = s->block_size / VHD_SECTOR_SIZE;
	for (uint32_t i = 0; i < spb; i++)
		s->bitmap[i >> 3] |= (uint8_t)(0x80u >> (i & 7));

	pos = s->data_start;
	for (uint32_t b = 0; b < s->block_count; b++) {
		uint64_t start = (uint64_t)b * s->block_size;
		uint64_t len =
			s->disk_size - start < s->block_size ? s->disk_size - start : s->block_size;

		if (chain_range_allocated(chain, start, len)) {
			if (pos / VHD_SECTOR_SIZE >= VHD_UNALLOCATED) {
				stream_free(s);
				return error_set(err, EFBIG, "merged disk is too large for a VHD");
			}
			s->bat[b] = (uint32_t)(pos / VHD_SECTOR_SIZE);
			pos += s->block_bytes;
		} else {
			s->bat[b] = VHD_UNALLOCATED;
		}
	}
	layout_from_bat(s);

	if (o && o->seed && o->seed[0])
		uuid_generate_sha1(s->uuid, stream_namespace, o->seed, strlen(o->seed));
	else
		uuid_generate_sha1(s->uuid, stream_namespace, (const char *)disk_id(top), 16);
	if (o && o->timestamp)
		timestamp = o->timestamp;
	else if (top_footer)
		timestamp = top_footer->timestamp;
	else
		timestamp = vhd_time_from_unix(disk_file_mtime(top).tv_sec);
	vhd_footer_init(&footer, VHD_TYPE_DYNAMIC, s->disk_size, s->uuid, timestamp);
	if (top_footer) {
		footer.geometry = top_footer->geometry;
		footer.original_size = top_footer->original_size;
	}
	vhd_footer_encode(&footer, s->footer);
	vhd_header_init(&header, s->block_count, s->block_size);
	vhd_header_encode(&header, s->header);
	*out = s;
	return 0;
}

uint64_t stream_size(const struct stream *s)
{
	return s->size;
}

uint64_t stream_allocated_bytes(const struct stream *s)
{
	return s->allocated_bytes;
}

const uint8_t *stream_uuid(const struct stream *s)
{
	return s->uuid;
}

/* Copy the part of a fixed region [region, region + region_len) that
 * [*offset, *offset + *len) covers, and advance. */
static void copy_region(const uint8_t *region, uint64_t region_at, uint64_t region_len,
			uint8_t **buf, uint64_t *offset, size_t *len)
{
	uint64_t in = *offset - region_at;
	size_t n = region_len - in < *len ? (size_t)(region_len - in) : *len;

	memcpy(*buf, region + in, n);
	*buf += n;
	*offset += n;
	*len -= n;
}

/* Bytes of the BAT region, encoded on the fly. */
static void read_bat(const struct stream *s, uint8_t **buf, uint64_t *offset, size_t *len)
{
	uint64_t in = *offset - TABLE_OFFSET;
	uint64_t region = s->data_start - TABLE_OFFSET;
	size_t n = region - in < *len ? (size_t)(region - in) : *len;

	for (size_t i = 0; i < n; i++) {
		uint64_t at = in + i;
		uint64_t entry = at / 4;
		uint8_t bytes[4];

		if (entry >= s->block_count) {
			(*buf)[i] = 0xFF; /* padding of the last sector */
			continue;
		}
		be32_store(bytes, s->bat[entry]);
		(*buf)[i] = bytes[at % 4];
	}
	*buf += n;
	*offset += n;
	*len -= n;
}

/* Bytes of the block area: bitmaps and merged data. */
static int read_blocks(struct stream *s, uint8_t **buf, uint64_t *offset, size_t *len,
		       struct error *err)
{
	uint64_t rel = *offset - s->data_start;
	uint64_t k = rel / s->block_bytes;
	uint64_t in = rel % s->block_bytes;
	uint32_t block = s->order[k];
	size_t n;
	int rc;

	if (in < s->bitmap_size) {
		copy_region(s->bitmap, *offset - in, s->bitmap_size, buf, offset, len);
		return 0;
	}
	in -= s->bitmap_size;
	n = s->block_size - in < *len ? (size_t)(s->block_size - in) : *len;
	{
		uint64_t disk_at = (uint64_t)block * s->block_size + in;
		size_t inside = 0;

		if (disk_at < s->disk_size)
			inside = s->disk_size - disk_at < n ? (size_t)(s->disk_size - disk_at) : n;
		if (inside) {
			rc = chain_read(s->chain, *buf, inside, disk_at, err);
			if (rc < 0)
				return rc;
		}
		memset(*buf + inside, 0, n - inside); /* past the end of the disk */
	}
	*buf += n;
	*offset += n;
	*len -= n;
	return 0;
}

/* The source's bytes, with the patches laid over them. */
static int read_patched(struct stream *s, uint8_t *buf, size_t len, uint64_t offset,
			struct error *err)
{
	int rc = disk_pread(s->source, buf, len, offset, err);

	if (rc == 0)
		vhd_patches_apply(s->patches, s->patch_count, buf, len, offset);
	return rc;
}

int stream_new_patched(struct stream **out, struct disk *disk, struct vhd_patch *patches,
		       size_t count, struct error *err)
{
	struct stream *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s)
		s->patches = calloc(count ? count : 1, sizeof(*s->patches));
	if (!s || !s->patches) {
		free(s);
		for (size_t i = 0; i < count; i++)
			free(patches[i].bytes);
		return error_set(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < count; i++) {
		if (patches[i].offset > disk_file_size(disk) ||
		    patches[i].len > disk_file_size(disk) - patches[i].offset) {
			s->patch_count = count; /* frees them all */
			memcpy(s->patches, patches, count * sizeof(*patches));
			stream_free(s);
			return error_set(err, EINVAL, "a patch lies outside '%s'", disk_path(disk));
		}
	}
	memcpy(s->patches, patches, count * sizeof(*patches));
	s->patch_count = count;
	s->kind = STREAM_PATCHED;
	s->source = disk;
	s->size = s->allocated_bytes = disk_file_size(disk);
	*out = s;
	return 0;
}

int stream_read(struct stream *s, void *buf, size_t len, uint64_t offset, struct error *err)
{
	uint8_t *out = buf;
	uint64_t footer_at;

	if (offset > s->size || len > s->size - offset)
		return error_set(err, EINVAL, "read of %zu bytes at %llu is past the end (%llu)",
				 len, (unsigned long long)offset, (unsigned long long)s->size);
	if (s->kind == STREAM_RAW)
		return chain_read(s->chain, buf, len, offset, err);
	if (s->kind == STREAM_PATCHED)
		return read_patched(s, buf, len, offset, err);
	footer_at = s->size - VHD_FOOTER_SIZE;
	while (len) {
		if (offset < VHD_FOOTER_SIZE) {
			copy_region(s->footer, 0, VHD_FOOTER_SIZE, &out, &offset, &len);
		} else if (offset < TABLE_OFFSET) {
			copy_region(s->header, VHD_FOOTER_SIZE, VHD_HEADER_SIZE, &out, &offset,
				    &len);
		} else if (offset < s->data_start) {
			read_bat(s, &out, &offset, &len);
		} else if (offset < footer_at) {
			int rc = read_blocks(s, &out, &offset, &len, err);

			if (rc < 0)
				return rc;
		} else {
			copy_region(s->footer, footer_at, VHD_FOOTER_SIZE, &out, &offset, &len);
		}
	}
	return 0;
}

void stream_extent(const struct stream *s, uint64_t offset, bool *data, uint64_t *end)
{
	if (s->kind == STREAM_RAW) {
		chain_extent(s->chain, offset, data, end);
		return;
	}
	*data = offset < s->size;
	*end = s->size;
}

/* Blocks written between two starts of writeback. */
#define WRITEBACK_BLOCKS 32
/* Runs of zeros this long (and aligned) inside a block stay holes. */
#define HOLE_GRAIN 4096u

/* Write a block at @pos of an empty file: its bitmap, then the @data_len
 * bytes of data after it except the all-zero runs of HOLE_GRAIN bytes, which
 * read back as zeros anyway. The footer written later sets the file size. */
static int write_block(int fd, const uint8_t *block, uint32_t bitmap_size, size_t data_len,
		       uint64_t pos)
{
	const uint8_t *data = block + bitmap_size;
	size_t at = 0;
	int rc = fsutil_pwrite_full(fd, block, bitmap_size, pos);

	pos += bitmap_size;
	while (rc == 0 && at < data_len) {
		size_t start, n;

		while (at < data_len &&
		       fsutil_all_zero(data + at,
				       data_len - at < HOLE_GRAIN ? data_len - at : HOLE_GRAIN))
			at += HOLE_GRAIN;
		if (at >= data_len)
			break;
		start = at;
		while (at < data_len &&
		       !fsutil_all_zero(data + at,
					data_len - at < HOLE_GRAIN ? data_len - at : HOLE_GRAIN))
			at += HOLE_GRAIN;
		n = (at < data_len ? at : data_len) - start;
		rc = fsutil_pwrite_full(fd, data + start, n, pos + start);
	}
	return rc;
}

int stream_write_compact(struct stream *s, int fd, struct error *err)
{
	uint8_t *block = NULL, *meta = NULL;
	uint32_t written = 0;
	uint64_t pos;
	int rc = 0;

	if (s->kind != STREAM_VHD)
		return error_set(err, EINVAL, "only a VHD stream can be written compacted");
	block = malloc(s->block_bytes);
	meta = malloc(s->data_start);
	if (!block || !meta) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	memcpy(block, s->bitmap, s->bitmap_size);
	pos = s->data_start;
	for (uint32_t k = 0; k < s->allocated; k++) {
		uint32_t b = s->order[k];
		uint64_t start = (uint64_t)b * s->block_size;
		size_t n = s->disk_size - start < s->block_size ? (size_t)(s->disk_size - start)
								: s->block_size;

		rc = chain_read(s->chain, block + s->bitmap_size, n, start, err);
		if (rc < 0)
			goto out;
		if (fsutil_all_zero(block + s->bitmap_size, n)) {
			s->bat[b] = VHD_UNALLOCATED;
			continue;
		}
		rc = write_block(fd, block, s->bitmap_size, n, pos);
		if (rc < 0) {
			rc = error_set(err, -rc, "cannot write block %u: %s", b, strerror(-rc));
			goto out;
		}
		s->bat[b] = (uint32_t)(pos / VHD_SECTOR_SIZE);
		pos += s->block_bytes;
		/* Start writeback as we go, so the caller's fsync has little left to wait for. */
		if (++written % WRITEBACK_BLOCKS == 0)
			sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	layout_from_bat(s);
	/* Footer copy, header and BAT (no chain reads: cannot fail), then the footer. */
	stream_read(s, meta, s->data_start, 0, NULL);
	rc = fsutil_pwrite_full(fd, meta, s->data_start, 0);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, s->footer, VHD_FOOTER_SIZE, s->size - VHD_FOOTER_SIZE);
	if (rc < 0)
		error_set(err, -rc, "cannot write the metadata: %s", strerror(-rc));
out:
	free(block);
	free(meta);
	return rc;
}
