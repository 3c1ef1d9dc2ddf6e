#include "stream.h"

#include "bigendian.h"
#include "chain.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "segments.h"
#include "stream_internal.h"
#include "vhd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* Namespace of the name-based UUIDs impexfs gives synthesized disks. */
static const uint8_t stream_namespace[16] = {0x6b, 0x1f, 0x4e, 0x0a, 0x93, 0x2d, 0x4c, 0x51,
					     0xa7, 0x3e, 0x58, 0xc4, 0x0d, 0x9b, 0x72, 0xe6};

#define TABLE_OFFSET ((uint64_t)VHD_FOOTER_SIZE + VHD_HEADER_SIZE)
/* All-zero bytes parts are data up to their bytes rounded up to this. */
#define DATA_GRAIN 4096u

void stream_name_uuid(uint8_t out[16], const void *name, size_t len)
{
	uuid_generate_sha1(out, stream_namespace, name, len);
}

int stream_alloc(struct stream **out, enum stream_kind kind, struct chain *chain, struct error *err)
{
	struct stream *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return error_set(err, ENOMEM, "out of memory");
	s->kind = kind;
	s->chain = chain;
	s->disk_size = chain ? chain_size(chain) : 0;
	*out = s;
	return 0;
}

void stream_free(struct stream *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->part_count; i++)
		free(s->parts[i].bytes);
	free(s->stored);
	free(s->rank_dir);
	free(s->prefix);
	free(s);
}

/* ---- the stored blocks ---- */

#define GROUP_WORDS (STREAM_GROUP_BLOCKS / 64)

static uint64_t word_count(const struct stream *s)
{
	return (s->block_count + 63) / 64;
}

static uint64_t group_count(const struct stream *s)
{
	return (s->block_count + STREAM_GROUP_BLOCKS - 1) / STREAM_GROUP_BLOCKS;
}

/* Count the stored blocks before each group, after the bitmap changed. */
static void rank_rebuild(struct stream *s)
{
	uint64_t count = 0, words = word_count(s);

	for (uint64_t w = 0; w < words; w++) {
		if (w % GROUP_WORDS == 0)
			s->rank_dir[w / GROUP_WORDS] = (uint32_t)count;
		count += (uint64_t)__builtin_popcountll(s->stored[w]);
	}
	s->rank_dir[group_count(s)] = (uint32_t)count;
	s->stored_count = count;
}

int stream_blocks_init(struct stream *s, uint32_t block_size, const uint8_t *prefix,
		       uint32_t prefix_len, struct error *err)
{
	uint64_t pos = 0;

	s->block_size = block_size;
	s->block_count = (s->disk_size + block_size - 1) / block_size;
	s->prefix_len = prefix_len;
	s->block_bytes = (uint64_t)prefix_len + block_size;
	s->stored = calloc(word_count(s) ? word_count(s) : 1, sizeof(*s->stored));
	s->rank_dir = calloc(group_count(s) + 1, sizeof(*s->rank_dir));
	s->prefix = malloc(prefix_len ? prefix_len : 1);
	if (!s->stored || !s->rank_dir || !s->prefix)
		return error_set(err, ENOMEM, "out of memory for the block map of a %llu-byte disk",
				 (unsigned long long)s->disk_size);
	if (prefix_len)
		memcpy(s->prefix, prefix, prefix_len);
	/* From the allocation tables alone: a block is stored when some level
	 * allocates any of it. */
	while (pos < s->disk_size) {
		bool allocated;
		uint64_t end;

		chain_extent(s->chain, pos, &allocated, &end);
		if (end <= pos)
			end = pos + 1;
		if (allocated)
			for (uint64_t b = pos / block_size; b <= (end - 1) / block_size; b++)
				s->stored[b / 64] |= 1ull << (b % 64);
		pos = end;
	}
	rank_rebuild(s);
	return 0;
}

bool stream_block_stored(const struct stream *s, uint64_t block)
{
	return block < s->block_count && (s->stored[block / 64] >> (block % 64)) & 1;
}

uint64_t stream_block_rank(const struct stream *s, uint64_t block)
{
	uint64_t rank = s->rank_dir[block / STREAM_GROUP_BLOCKS];

	for (uint64_t w = block / STREAM_GROUP_BLOCKS * GROUP_WORDS; w < block / 64; w++)
		rank += (uint64_t)__builtin_popcountll(s->stored[w]);
	if (block % 64)
		rank += (uint64_t)__builtin_popcountll(s->stored[block / 64] &
						       ((1ull << (block % 64)) - 1));
	return rank;
}

uint64_t stream_block_select(const struct stream *s, uint64_t index)
{
	uint64_t lo = 0, hi = group_count(s), left;

	/* The last group with fewer than @index + 1 stored blocks before it. */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (s->rank_dir[mid] <= index)
			lo = mid;
		else
			hi = mid;
	}
	left = index - s->rank_dir[lo];
	for (uint64_t w = lo * GROUP_WORDS; w < word_count(s); w++) {
		uint64_t bits = s->stored[w];
		uint64_t here = (uint64_t)__builtin_popcountll(bits);

		if (left >= here) {
			left -= here;
			continue;
		}
		while (left--)
			bits &= bits - 1;
		return w * 64 + (uint64_t)__builtin_ctzll(bits);
	}
	return s->block_count; /* not reached for index < stored_count */
}

/* The first block at or after @block that is not stored, or block_count. */
static uint64_t next_unstored(const struct stream *s, uint64_t block)
{
	uint64_t w = block / 64;
	uint64_t free_bits = ~s->stored[w] & (~0ull << (block % 64));

	while (!free_bits && ++w < word_count(s))
		free_bits = ~s->stored[w];
	if (!free_bits)
		return s->block_count;
	block = w * 64 + (uint64_t)__builtin_ctzll(free_bits);
	return block < s->block_count ? block : s->block_count;
}

/* ---- parts ---- */

static struct stream_part *add_part(struct stream *s, enum stream_part_kind kind, uint64_t length)
{
	struct stream_part *p = &s->parts[s->part_count++];

	if (s->part_count > STREAM_MAX_PARTS)
		abort(); /* the formats here use a fixed handful */
	p->kind = kind;
	p->length = length;
	return p;
}

int stream_add_bytes(struct stream *s, const void *bytes, size_t bytes_len, uint64_t length,
		     struct error *err)
{
	struct stream_part *p = add_part(s, STREAM_PART_BYTES, length);

	p->bytes = malloc(bytes_len ? bytes_len : 1);
	if (!p->bytes)
		return error_set(err, ENOMEM, "out of memory");
	if (bytes_len)
		memcpy(p->bytes, bytes, bytes_len);
	p->bytes_len = bytes_len;
	return 0;
}

void stream_add_table(struct stream *s, uint64_t length)
{
	add_part(s, STREAM_PART_TABLE, length);
}

void stream_add_blocks(struct stream *s)
{
	s->blocks_part = add_part(s, STREAM_PART_BLOCKS, 0);
}

uint64_t stream_blocks_at(const struct stream *s)
{
	return s->blocks_part->offset;
}

void stream_layout(struct stream *s)
{
	uint64_t pos = 0;

	for (unsigned i = 0; i < s->part_count; i++) {
		struct stream_part *p = &s->parts[i];

		if (p->kind == STREAM_PART_BLOCKS)
			p->length = s->stored_count * s->block_bytes;
		p->offset = pos;
		pos += p->length;
	}
	s->size = pos;
	s->allocated_bytes = s->size;
	if (s->sparse) {
		s->allocated_bytes = 0;
		for (pos = 0; pos < s->size;) {
			bool data;
			uint64_t end;

			stream_extent(s, pos, &data, &end);
			if (data)
				s->allocated_bytes += end - pos;
			pos = end;
		}
	}
}

/* The part holding byte @offset of the file (inside it). */
static const struct stream_part *part_at(const struct stream *s, uint64_t offset)
{
	unsigned i = 0;

	while (i + 1 < s->part_count && offset >= s->parts[i].offset + s->parts[i].length)
		i++;
	return &s->parts[i];
}

/* ---- the raw disk ---- */

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

/* ---- the dynamic VHD ---- */

/* The BAT: one big-endian sector offset a block, 0xFFFFFFFF for blocks not
 * stored and in the padding of its last sector. */
static void vhd_table_read(const struct stream *s, uint8_t *buf, uint64_t at, size_t len)
{
	uint64_t entry = at / 4, blocks_at = stream_blocks_at(s);
	uint64_t rank = stream_block_rank(s, entry < s->block_count ? entry : s->block_count);
	size_t i = 0;

	while (i < len) {
		uint32_t value = VHD_UNALLOCATED;
		uint8_t bytes[4];

		if (stream_block_stored(s, entry))
			value = (uint32_t)((blocks_at + rank++ * s->block_bytes) / VHD_SECTOR_SIZE);
		if ((at + i) % 4 == 0 && len - i >= 4) {
			be32_store(buf + i, value);
			i += 4;
		} else {
			be32_store(bytes, value);
			for (uint64_t j = (at + i) % 4; j < 4 && i < len; j++)
				buf[i++] = bytes[j];
		}
		entry++;
	}
}

int stream_new_vhd(struct stream **out, struct chain *chain, const struct stream_vhd_options *o,
		   struct error *err)
{
	struct disk *top = chain_level(chain, 0);
	const struct vhd_footer *top_footer = disk_vhd(top) ? vhd_footer(disk_vhd(top)) : NULL;
	uint8_t footer_bytes[VHD_FOOTER_SIZE], header_bytes[VHD_HEADER_SIZE];
	uint8_t bitmap[VHD_MAX_BLOCK / VHD_SECTOR_SIZE / 8];
	struct vhd_footer footer;
	struct vhd_header header;
	struct stream *s;
	uint32_t block_size, bitmap_size, spb, timestamp;
	int rc;

	*out = NULL;
	rc = stream_alloc(&s, STREAM_VHD, chain, err);
	if (rc < 0)
		return rc;
	/* The top VHD's block size, unless it has none (fixed) or one that
	 * QEMU cannot read (below 4 KiB); a VHDX chain takes VHD's usual 2 MiB. */
	block_size = top_footer && disk_block_size(top) >= VHD_MIN_CREATE_BLOCK ? disk_block_size(top)
										: VHD_DEFAULT_BLOCK;
	if (s->disk_size % VHD_SECTOR_SIZE || s->disk_size > VHD_MAX_SIZE) {
		rc = error_set(err, EFBIG, "a %llu-byte disk does not fit in a VHD",
			       (unsigned long long)s->disk_size);
		goto fail;
	}
	/* Full bitmaps: every sector of every block is held by the new disk. */
	bitmap_size = vhd_bitmap_size(block_size);
	memset(bitmap, 0, bitmap_size);
	spb = block_size / VHD_SECTOR_SIZE;
	for (uint32_t i = 0; i < spb; i++)
		bitmap[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
	rc = stream_blocks_init(s, block_size, bitmap, bitmap_size, err);
	if (rc < 0)
		goto fail;

	if (o && o->seed && o->seed[0])
		stream_name_uuid(s->uuid, o->seed, strlen(o->seed));
	else
		stream_name_uuid(s->uuid, disk_id(top), 16);
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
	vhd_footer_encode(&footer, footer_bytes);
	vhd_header_init(&header, (uint32_t)s->block_count, block_size);
	vhd_header_encode(&header, header_bytes);

	/* The footer's copy, the header, the BAT, the blocks, the footer. */
	rc = stream_add_bytes(s, footer_bytes, VHD_FOOTER_SIZE, VHD_FOOTER_SIZE, err);
	if (rc == 0)
		rc = stream_add_bytes(s, header_bytes, VHD_HEADER_SIZE, VHD_HEADER_SIZE, err);
	if (rc < 0)
		goto fail;
	stream_add_table(s, vhd_bat_bytes((uint32_t)s->block_count));
	stream_add_blocks(s);
	rc = stream_add_bytes(s, footer_bytes, VHD_FOOTER_SIZE, VHD_FOOTER_SIZE, err);
	if (rc < 0)
		goto fail;
	s->table_read = vhd_table_read;
	stream_layout(s);
	if (s->stored_count &&
	    (stream_blocks_at(s) + (s->stored_count - 1) * s->block_bytes) / VHD_SECTOR_SIZE >=
		    VHD_UNALLOCATED) {
		rc = error_set(err, EFBIG, "merged disk is too large for a VHD");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	stream_free(s);
	return rc;
}

/* ---- getters ---- */

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

/* ---- reading ---- */

/* @len bytes at @at of bytes part @p: its bytes, then zeros. */
static void map_bytes(const struct stream_part *p, struct segments *segs, uint64_t at, size_t len)
{
	size_t n = 0;

	if (at < p->bytes_len) {
		n = p->bytes_len - at < len ? (size_t)(p->bytes_len - at) : len;
		segments_bytes(segs, p->bytes + at, n);
	}
	segments_zero(segs, len - n);
}

/* Up to *@len bytes at @at of the stored blocks, within one block's prefix
 * or data; *@len becomes what was described. */
static int map_blocks(struct stream *s, struct segments *segs, uint64_t at, size_t *len,
		      struct error *err)
{
	uint64_t in = at % s->block_bytes;
	uint64_t block = stream_block_select(s, at / s->block_bytes);
	uint64_t disk_at;
	size_t n, inside = 0;
	int rc;

	if (in < s->prefix_len) {
		n = s->prefix_len - in < *len ? (size_t)(s->prefix_len - in) : *len;
		segments_bytes(segs, s->prefix + in, n);
		*len = n;
		return 0;
	}
	in -= s->prefix_len;
	n = s->block_size - in < *len ? (size_t)(s->block_size - in) : *len;
	disk_at = block * s->block_size + in;
	if (disk_at < s->disk_size)
		inside = s->disk_size - disk_at < n ? (size_t)(s->disk_size - disk_at) : n;
	if (inside) {
		rc = chain_map(s->chain, segs, disk_at, inside, err);
		if (rc < 0)
			return rc;
	}
	segments_zero(segs, n - inside); /* past the end of the disk */
	*len = n;
	return 0;
}

/* The file's bytes: as they lie, or as the disk module reads them (a replayed log). */
static int map_file(struct stream *s, struct segments *segs, uint64_t offset, size_t len,
		    struct error *err)
{
	int fd = s->file.disk ? disk_direct_fd(s->file.disk, offset, len) : s->file.fd;

	if (len == 0)
		return 0;
	if (fd >= 0)
		return segments_file(segs, fd, offset, len, s->file.path, err);
	return disk_pread(s->file.disk, segments_make(segs, len), len, offset, err);
}

/* The file's bytes, with the patches laid over them: the part of the read the
 * patches touch is made in memory, the rest taken from the file as it lies. */
static int map_patched(struct stream *s, struct segments *segs, uint64_t offset, size_t len,
		       struct error *err)
{
	uint64_t end = offset + len, lo = end, hi = offset;
	uint8_t *made;
	int rc;

	for (size_t i = 0; i < s->patch_count; i++) {
		const struct vhd_patch *p = &s->patches[i];
		uint64_t from = offset > p->offset ? offset : p->offset;
		uint64_t to = end < p->offset + p->len ? end : p->offset + p->len;

		if (from < to) {
			lo = from < lo ? from : lo;
			hi = to > hi ? to : hi;
		}
	}
	if (lo >= hi)
		return map_file(s, segs, offset, len, err);
	rc = map_file(s, segs, offset, (size_t)(lo - offset), err);
	if (rc < 0)
		return rc;
	made = segments_make(segs, (size_t)(hi - lo));
	rc = s->file.disk ? disk_pread(s->file.disk, made, (size_t)(hi - lo), lo, err)
			  : fsutil_pread_named(s->file.fd, made, (size_t)(hi - lo), lo,
					       s->file.path, err);
	if (rc < 0)
		return rc;
	vhd_patches_apply(s->patches, s->patch_count, made, (size_t)(hi - lo), lo);
	return map_file(s, segs, hi, (size_t)(end - hi), err);
}

int stream_new_patched(struct stream **out, const struct stream_file *file,
		       const struct vhd_patch *patches, size_t count, struct error *err)
{
	struct stream *s;
	int rc;

	*out = NULL;
	for (size_t i = 0; i < count; i++)
		if (patches[i].offset > file->size ||
		    patches[i].len > file->size - patches[i].offset)
			return error_set(err, EINVAL, "a patch lies outside '%s'", file->path);
	rc = stream_alloc(&s, STREAM_PATCHED, NULL, err);
	if (rc < 0)
		return rc;
	s->file = *file;
	s->patches = patches;
	s->patch_count = count;
	s->size = s->allocated_bytes = file->size;
	*out = s;
	return 0;
}

int stream_map(struct stream *s, struct segments *segs, uint64_t offset, size_t len,
	       struct error *err)
{
	if (offset > s->size || len > s->size - offset)
		return error_set(err, EINVAL, "read of %zu bytes at %llu is past the end (%llu)",
				 len, (unsigned long long)offset, (unsigned long long)s->size);
	if (s->kind == STREAM_RAW)
		return chain_map(s->chain, segs, offset, len, err);
	if (s->kind == STREAM_PATCHED)
		return map_patched(s, segs, offset, len, err);
	while (len) {
		const struct stream_part *p = part_at(s, offset);
		uint64_t at = offset - p->offset;
		size_t n = p->length - at < len ? (size_t)(p->length - at) : len;
		int rc;

		switch (p->kind) {
		case STREAM_PART_BYTES:
			map_bytes(p, segs, at, n);
			break;
		case STREAM_PART_TABLE:
			s->table_read(s, segments_make(segs, n), at, n);
			break;
		case STREAM_PART_BLOCKS:
			rc = map_blocks(s, segs, at, &n, err);
			if (rc < 0)
				return rc;
			break;
		}
		offset += n;
		len -= n;
	}
	return 0;
}

int stream_read(struct stream *s, void *buf, size_t len, uint64_t offset, struct error *err)
{
	struct segments segs;

	segments_init_flat(&segs, buf, len);
	return stream_map(s, &segs, offset, len, err);
}

/* ---- extents ---- */

/* Whether the stored blocks are data at @at (inside them), and until where
 * (from the file's start). A block is data where some level allocates its
 * sectors; past the disk's end, and where no level allocates, it reads as
 * zeros: a hole. */
static bool blocks_extent(const struct stream *s, const struct stream_part *p, uint64_t at,
			  uint64_t *end)
{
	uint64_t index = at / s->block_bytes, in = at % s->block_bytes;
	uint64_t block = stream_block_select(s, index);
	uint64_t block_at = p->offset + index * s->block_bytes;
	uint64_t start = block * s->block_size, disk_at, chain_end, last;
	bool allocated;

	if (in < s->prefix_len) {
		*end = block_at + s->prefix_len;
		return true;
	}
	disk_at = start + (in - s->prefix_len);
	if (disk_at >= s->disk_size) {
		*end = block_at + s->block_bytes;
		return false;
	}
	chain_extent(s->chain, disk_at, &allocated, &chain_end);
	if (chain_end <= disk_at)
		chain_end = disk_at + 1;
	if (!allocated) {
		if (chain_end > start + s->block_size)
			chain_end = start + s->block_size;
		*end = block_at + s->prefix_len + (chain_end - start);
		return false;
	}
	/* Data over the following blocks too, as long as they are stored (they
	 * lie one after the other in the file). */
	last = next_unstored(s, block);
	if (chain_end > last * s->block_size)
		chain_end = last * s->block_size;
	last = (chain_end - 1) / s->block_size;
	*end = block_at + (last - block) * s->block_bytes + s->prefix_len +
	       (chain_end - last * s->block_size);
	return true;
}

/* Whether byte @offset (inside the file) is data, and until where within its part. */
static bool piece_extent(const struct stream *s, uint64_t offset, uint64_t *end)
{
	const struct stream_part *p = part_at(s, offset);
	uint64_t at = offset - p->offset, data_len, table_end;
	bool data;

	switch (p->kind) {
	case STREAM_PART_BYTES:
		data_len = (p->bytes_len + DATA_GRAIN - 1) / DATA_GRAIN * DATA_GRAIN;
		if (data_len > p->length)
			data_len = p->length;
		if (at < data_len) {
			*end = p->offset + data_len;
			return true;
		}
		*end = p->offset + p->length;
		return false;
	case STREAM_PART_TABLE:
		if (!s->table_data) {
			*end = p->offset + p->length;
			return true;
		}
		data = s->table_data(s, at, &table_end);
		if (table_end <= at)
			table_end = at + 1;
		*end = p->offset + (table_end < p->length ? table_end : p->length);
		return data;
	case STREAM_PART_BLOCKS:
		break;
	}
	return blocks_extent(s, p, at, end);
}

void stream_extent(const struct stream *s, uint64_t offset, bool *data, uint64_t *end)
{
	if (s->kind == STREAM_RAW) {
		chain_extent(s->chain, offset, data, end);
		return;
	}
	*data = offset < s->size;
	*end = s->size;
	if (offset >= s->size || !s->sparse)
		return;
	*data = piece_extent(s, offset, end);
	while (*end < s->size) {
		uint64_t next;

		if (piece_extent(s, *end, &next) != *data)
			break;
		*end = next;
	}
}

/* ---- writing ---- */

/* Blocks written between two starts of writeback. */
#define WRITEBACK_BLOCKS 32
/* Runs of zeros this long (and aligned) inside a block stay holes. */
#define HOLE_GRAIN 4096u
/* The parts other than blocks are written in pieces of this size. */
#define PIECE_BYTES (1024u * 1024)

/* Write a block at @pos of an empty file: its prefix, then the @data_len
 * bytes of data after it except the all-zero runs of HOLE_GRAIN bytes, which
 * read back as zeros anyway. The file is sized at the end. */
static int write_block(int fd, const uint8_t *block, uint32_t prefix_len, size_t data_len,
		       uint64_t pos)
{
	const uint8_t *data = block + prefix_len;
	size_t at = 0;
	int rc = fsutil_pwrite_full(fd, block, prefix_len, pos);

	pos += prefix_len;
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

/* Write the stored blocks at their new places, dropping those whose merged
 * content is all zeros; @progress is told the bytes of disk gone through. */
static int write_blocks(struct stream *s, int fd, uint8_t *block,
			int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
			struct error *err)
{
	uint64_t pos = stream_blocks_at(s), written = 0, done = 0;
	uint64_t total = s->stored_count * s->block_size, last = (s->disk_size - 1) / s->block_size;
	int rc;

	/* The last block may be shorter than the others. */
	if (s->disk_size && stream_block_stored(s, last))
		total -= s->block_size - (s->disk_size - last * s->block_size);
	memcpy(block, s->prefix, s->prefix_len);
	for (uint64_t w = 0; w < word_count(s); w++) {
		uint64_t bits = s->stored[w];

		while (bits) {
			uint64_t b = w * 64 + (uint64_t)__builtin_ctzll(bits);
			uint64_t start = b * s->block_size;
			size_t n = s->disk_size - start < s->block_size
					   ? (size_t)(s->disk_size - start)
					   : s->block_size;

			bits &= bits - 1;
			if (progress && (rc = progress(ctx, done, total)) < 0)
				return error_set(err, -rc, "writing stopped: %s", strerror(-rc));
			done += n;
			rc = chain_read(s->chain, block + s->prefix_len, n, start, err);
			if (rc < 0)
				return rc;
			if (fsutil_all_zero(block + s->prefix_len, n)) {
				s->stored[w] &= ~(1ull << (b % 64));
				continue;
			}
			rc = write_block(fd, block, s->prefix_len, n, pos);
			if (rc < 0)
				return error_set(err, -rc, "cannot write block %llu: %s",
						 (unsigned long long)b, strerror(-rc));
			pos += s->block_bytes;
			/* Start writeback as we go, so the caller's fsync has little left to wait
			 * for. */
			if (++written % WRITEBACK_BLOCKS == 0)
				sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		}
	}
	if (progress && (rc = progress(ctx, done, total)) < 0)
		return error_set(err, -rc, "writing stopped: %s", strerror(-rc));
	return 0;
}

/* Write every part but the blocks (reads that cannot fail: no chain), leaving
 * holes and all-zero pieces unwritten, and size the file. */
static int write_metadata(struct stream *s, int fd, uint8_t *piece, struct error *err)
{
	int rc = 0;

	for (unsigned i = 0; i < s->part_count && rc == 0; i++) {
		const struct stream_part *p = &s->parts[i];
		uint64_t at = p->offset, part_end = p->offset + p->length;

		if (p->kind == STREAM_PART_BLOCKS)
			continue;
		while (at < part_end && rc == 0) {
			bool data = true;
			uint64_t end = part_end;

			if (s->sparse)
				stream_extent(s, at, &data, &end);
			if (end > part_end)
				end = part_end;
			while (data && at < end && rc == 0) {
				size_t n =
					end - at < PIECE_BYTES ? (size_t)(end - at) : PIECE_BYTES;

				stream_read(s, piece, n, at, NULL);
				if (!fsutil_all_zero(piece, n))
					rc = fsutil_pwrite_full(fd, piece, n, at);
				at += n;
			}
			at = end;
		}
	}
	if (rc == 0 && ftruncate(fd, (off_t)s->size) < 0)
		rc = -errno;
	if (rc < 0)
		return error_set(err, -rc, "cannot write the metadata: %s", strerror(-rc));
	return 0;
}

int stream_write_compact(struct stream *s, int fd,
			 int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
			 struct error *err)
{
	uint8_t *block = NULL, *piece = NULL;
	int rc;

	if (s->kind != STREAM_VHD && s->kind != STREAM_VHDX)
		return error_set(err, EINVAL, "only a VHD or VHDX stream can be written compacted");
	block = malloc(s->block_bytes);
	piece = malloc(PIECE_BYTES);
	if (!block || !piece) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	rc = write_blocks(s, fd, block, progress, ctx, err);
	/* The layout follows the blocks dropped, whatever happened. */
	rank_rebuild(s);
	stream_layout(s);
	if (rc == 0)
		rc = write_metadata(s, fd, piece, err);
out:
	free(block);
	free(piece);
	return rc;
}
