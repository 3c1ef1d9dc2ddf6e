/*
 * stream_vhdx.c - a chain's merged content as a new dynamic VHDX, synthesized
 * on demand ([MS-VHDX]; docs/VHDX.md, "What impexfs synthesizes").
 *
 * The file, in parts (stream_internal.h):
 *
 *   0        file type identifier ("vhdxfile", creator "impexfs")
 *   64 KiB   header 1 (sequence number 1)
 *   128 KiB  header 2 (sequence number 2: the current one)
 *   192 KiB  region table 1: the BAT and the metadata region, both required
 *   256 KiB  region table 2, the same; then zeros to 1 MiB
 *   1 MiB    the log, 1 MiB of zeros: empty (LogGuid is zero)
 *   2 MiB    the metadata region, 1 MiB: its table, then at 64 KiB into it the
 *            file parameters, virtual disk size, disk ID, logical and physical
 *            sector sizes
 *   3 MiB    the BAT, whole MiB
 *   then     the stored blocks in disk order, one after the other
 */
#include "stream.h"

#include "bigendian.h"
#include "chain.h"
#include "crc32c.h"
#include "disk.h"
#include "error.h"
#include "stream_internal.h"
#include "vhdx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KiB 1024u

#define FILE_ID_SIZE	  (64 * KiB)
#define HEADER_SPACE	  (64 * KiB)
#define LOG_OFFSET	  VHDX_HEADER_AREA
#define LOG_LENGTH	  VHDX_LOG_LENGTH
#define METADATA_OFFSET	  (LOG_OFFSET + LOG_LENGTH)
#define METADATA_LENGTH	  VHDX_MIB
#define BAT_OFFSET	  (METADATA_OFFSET + METADATA_LENGTH)

#define CREATOR "impexfs"

#define REGION_ENTRIES	 2
#define REGION_BYTES	 (16 + REGION_ENTRIES * 32)
#define METADATA_ITEMS	 5
#define METADATA_BYTES	 (32 + METADATA_ITEMS * 32)
#define ITEM_BYTES	 (8 + 8 + 16 + 4 + 4)
#define BAT_ENTRY_BYTES	 8u
#define BAT_PAGE_BYTES	 4096u

/* A name-based UUID as a GUID stored in Microsoft's layout (the first three
 * fields little-endian), so that it reads as the same text. */
static void name_guid(uint8_t out[16], const void *name, size_t len)
{
	uint8_t u[16];

	stream_name_uuid(u, name, len);
	vhdx_guid_from_uuid(u, out);
}

/* The GUID derived from disk ID @id for @what ("DataWriteGuid", ...). */
static void derived_guid(uint8_t out[16], const uint8_t id[16], const char *what)
{
	uint8_t name[16 + 32];
	size_t n = strlen(what);

	memcpy(name, id, 16);
	memcpy(name + 16, what, n);
	name_guid(out, name, 16 + n);
}

/* ---- the BAT ---- */

/* Payload blocks before BAT entry @entry: one entry in chunk ratio + 1 is a
 * sector bitmap's. */
static uint64_t payload_before(const struct stream *s, uint64_t entry)
{
	uint64_t blocks = entry - entry / (s->chunk_ratio + 1ull);

	return blocks < s->block_count ? blocks : s->block_count;
}

/* Entries: payload blocks FULLY_PRESENT at their place or NOT_PRESENT; sector
 * bitmaps and the padding to whole MiB NOT_PRESENT (zero). */
static void vhdx_table_read(const struct stream *s, uint8_t *buf, uint64_t at, size_t len)
{
	uint64_t entry = at / BAT_ENTRY_BYTES, blocks_at = stream_blocks_at(s);
	uint64_t block = payload_before(s, entry);
	uint64_t rank = stream_block_rank(s, block);
	size_t i = 0;

	while (i < len) {
		uint64_t value = VHDX_BLOCK_NOT_PRESENT;
		uint8_t bytes[BAT_ENTRY_BYTES];

		if (entry % (s->chunk_ratio + 1ull) != s->chunk_ratio) {
			if (stream_block_stored(s, block))
				value = (blocks_at + rank++ * s->block_bytes) |
					VHDX_BLOCK_FULLY_PRESENT;
			block++;
		}
		if ((at + i) % BAT_ENTRY_BYTES == 0 && len - i >= BAT_ENTRY_BYTES) {
			le64_store(buf + i, value);
			i += BAT_ENTRY_BYTES;
		} else {
			le64_store(bytes, value);
			for (uint64_t j = (at + i) % BAT_ENTRY_BYTES;
			     j < BAT_ENTRY_BYTES && i < len; j++)
				buf[i++] = bytes[j];
		}
		entry++;
	}
}

/* A 4 KiB page of the BAT is data when it stores a block. A hole runs to the
 * page of the next stored block. */
static bool vhdx_table_data(const struct stream *s, uint64_t at, uint64_t *end)
{
	uint64_t page = at / BAT_PAGE_BYTES;
	uint64_t first = page * (BAT_PAGE_BYTES / BAT_ENTRY_BYTES);
	uint64_t rank = stream_block_rank(s, payload_before(s, first));
	uint64_t next;

	if (stream_block_rank(s, payload_before(s, first + BAT_PAGE_BYTES / BAT_ENTRY_BYTES)) >
	    rank) {
		*end = (page + 1) * BAT_PAGE_BYTES;
		return true;
	}
	if (rank >= s->stored_count) {
		*end = UINT64_MAX; /* the caller stops at the table's end */
		return false;
	}
	next = stream_block_select(s, rank);
	*end = (next + next / s->chunk_ratio) * BAT_ENTRY_BYTES / BAT_PAGE_BYTES * BAT_PAGE_BYTES;
	return false;
}

/* ---- the header section and the metadata ---- */

/* The region table's first bytes into @out (REGION_BYTES); the rest of its
 * 64 KiB is zeros, which its checksum covers. */
static int encode_region_table(uint8_t *out, uint64_t bat_length, struct error *err)
{
	uint8_t *t = calloc(1, VHDX_REGION_SIZE);

	if (!t)
		return error_set(err, ENOMEM, "out of memory");
	memcpy(t, "regi", 4);
	le32_store(t + 8, REGION_ENTRIES);
	vhdx_guid_constant(VHDX_GUID_BAT, t + 16);
	le64_store(t + 16 + 16, BAT_OFFSET);
	le32_store(t + 16 + 24, (uint32_t)bat_length);
	le32_store(t + 16 + 28, 1); /* required */
	vhdx_guid_constant(VHDX_GUID_METADATA, t + 48);
	le64_store(t + 48 + 16, METADATA_OFFSET);
	le32_store(t + 48 + 24, METADATA_LENGTH);
	le32_store(t + 48 + 28, 1);
	le32_store(t + 4, crc32c(0, t, VHDX_REGION_SIZE));
	memcpy(out, t, REGION_BYTES);
	free(t);
	return 0;
}

/* The metadata table (METADATA_BYTES into @table) and its items (ITEM_BYTES
 * into @items, which lie VHDX_METADATA_TABLE_SIZE into the region). */
static void encode_metadata(uint8_t *table, uint8_t *items, const struct stream *s,
			    uint32_t logical, uint32_t physical)
{
	static const struct {
		const char *guid;
		uint32_t length;
		uint32_t flags;
	} item[METADATA_ITEMS] = {
		{VHDX_GUID_FILE_PARAMS, 8, VHDX_METADATA_IS_REQUIRED},
		{VHDX_GUID_DISK_SIZE, 8, VHDX_METADATA_IS_REQUIRED | VHDX_METADATA_IS_VIRTUAL_DISK},
		{VHDX_GUID_DISK_ID, 16, VHDX_METADATA_IS_REQUIRED | VHDX_METADATA_IS_VIRTUAL_DISK},
		{VHDX_GUID_LOGICAL, 4, VHDX_METADATA_IS_REQUIRED | VHDX_METADATA_IS_VIRTUAL_DISK},
		{VHDX_GUID_PHYSICAL, 4, VHDX_METADATA_IS_REQUIRED | VHDX_METADATA_IS_VIRTUAL_DISK},
	};
	uint32_t offset = VHDX_METADATA_TABLE_SIZE;

	memset(table, 0, METADATA_BYTES);
	memcpy(table, "metadata", 8);
	le16_store(table + 10, METADATA_ITEMS);
	for (int i = 0; i < METADATA_ITEMS; i++) {
		uint8_t *e = table + 32 + 32 * i;

		vhdx_guid_constant(item[i].guid, e);
		le32_store(e + 16, offset);
		le32_store(e + 20, item[i].length);
		le32_store(e + 24, item[i].flags);
		offset += item[i].length;
	}
	/* File parameters: the block size; neither LeaveBlockAllocated nor
	 * HasParent (a dynamic disk). */
	le32_store(items, s->block_size);
	le32_store(items + 4, 0);
	le64_store(items + 8, s->disk_size);
	memcpy(items + 16, s->uuid, 16);
	le32_store(items + 32, logical);
	le32_store(items + 36, physical);
}

/* ---- the stream ---- */

/* The options, with their defaults, checked against the disk. */
static int check_options(const struct stream_vhdx_options *o, uint64_t disk_size,
			 uint32_t *block_size, uint32_t *logical, uint32_t *physical,
			 struct error *err)
{
	*block_size = o && o->block_size ? o->block_size : STREAM_VHDX_DEFAULT_BLOCK;
	*logical =
		o && o->logical_sector_size ? o->logical_sector_size : STREAM_VHDX_DEFAULT_LOGICAL;
	*physical = o && o->physical_sector_size ? o->physical_sector_size
						 : STREAM_VHDX_DEFAULT_PHYSICAL;
	if (!o || ((!o->seed || !o->seed[0]) && !o->top_id))
		return error_set(err, EINVAL, "a VHDX stream needs a seed or the top disk's ID");
	if (!vhd_is_power_of_two(*block_size) || *block_size < VHDX_MIN_BLOCK ||
	    *block_size > VHDX_MAX_BLOCK)
		return error_set(err, EINVAL,
				 "a VHDX block size is a power of two from 1 MiB to 256 MiB, not "
				 "%u bytes",
				 *block_size);
	if (*logical != 512 && *logical != 4096)
		return error_set(err, EINVAL,
				 "a VHDX logical sector size is 512 or 4096 bytes, not %u",
				 *logical);
	if (*physical != 512 && *physical != 4096)
		return error_set(err, EINVAL,
				 "a VHDX physical sector size is 512 or 4096 bytes, not %u",
				 *physical);
	if (disk_size > VHDX_MAX_SIZE)
		return error_set(err, EFBIG,
				 "merged disk of %llu bytes is too large for a VHDX (64 TiB at "
				 "most)",
				 (unsigned long long)disk_size);
	if (disk_size == 0 || disk_size % *logical)
		return error_set(err, EINVAL,
				 "merged disk of %llu bytes is not a whole number of %u-byte "
				 "sectors",
				 (unsigned long long)disk_size, *logical);
	return 0;
}

int stream_new_vhdx(struct stream **out, struct chain *chain, const struct stream_vhdx_options *o,
		    struct error *err)
{
	uint8_t file_id[8 + 2 * sizeof(CREATOR)], header[2][VHDX_HEADER_SIZE];
	uint8_t regions[REGION_BYTES], table[METADATA_BYTES], items[ITEM_BYTES];
	uint8_t file_write[16], data_write[16];
	uint32_t block_size, logical, physical;
	uint64_t bat_entries, bat_length;
	struct stream *s;
	int rc;

	*out = NULL;
	rc = stream_alloc(&s, STREAM_VHDX, chain, err);
	if (rc < 0)
		return rc;
	rc = check_options(o, s->disk_size, &block_size, &logical, &physical, err);
	if (rc == 0)
		rc = stream_blocks_init(s, block_size, NULL, 0, err);
	if (rc < 0)
		goto fail;
	s->sparse = true;
	s->chunk_ratio = (uint32_t)(VHDX_CHUNK_SECTORS * logical / block_size);
	/* [MS-VHDX] 2.5: a dynamic disk's BAT ends with its last payload entry. */
	bat_entries = s->block_count + (s->block_count - 1) / s->chunk_ratio;
	bat_length = (bat_entries * BAT_ENTRY_BYTES + VHDX_MIB - 1) / VHDX_MIB * VHDX_MIB;

	if (o->seed && o->seed[0])
		name_guid(s->uuid, o->seed, strlen(o->seed));
	else
		name_guid(s->uuid, o->top_id, 16);
	derived_guid(file_write, s->uuid, "FileWriteGuid");
	derived_guid(data_write, s->uuid, "DataWriteGuid");

	memset(file_id, 0, sizeof(file_id));
	memcpy(file_id, "vhdxfile", 8);
	for (size_t i = 0; i < strlen(CREATOR); i++)
		file_id[8 + 2 * i] = (uint8_t)CREATOR[i]; /* UTF-16LE */
	vhdx_header_encode_new(header[0], 1, file_write, data_write);
	vhdx_header_encode_new(header[1], 2, file_write, data_write);
	rc = encode_region_table(regions, bat_length, err);
	if (rc < 0)
		goto fail;
	encode_metadata(table, items, s, logical, physical);

	rc = stream_add_bytes(s, file_id, sizeof(file_id), FILE_ID_SIZE, err);
	if (rc == 0)
		rc = stream_add_bytes(s, header[0], VHDX_HEADER_SIZE, HEADER_SPACE, err);
	if (rc == 0)
		rc = stream_add_bytes(s, header[1], VHDX_HEADER_SIZE, HEADER_SPACE, err);
	if (rc == 0)
		rc = stream_add_bytes(s, regions, REGION_BYTES, VHDX_REGION_SIZE, err);
	if (rc == 0)
		rc = stream_add_bytes(s, regions, REGION_BYTES, LOG_OFFSET - 4 * 64 * KiB, err);
	if (rc == 0)
		rc = stream_add_bytes(s, NULL, 0, LOG_LENGTH, err);
	if (rc == 0)
		rc = stream_add_bytes(s, table, METADATA_BYTES, VHDX_METADATA_TABLE_SIZE, err);
	if (rc == 0)
		rc = stream_add_bytes(s, items, ITEM_BYTES, METADATA_LENGTH - VHDX_METADATA_TABLE_SIZE, err);
	if (rc < 0)
		goto fail;
	stream_add_table(s, bat_length);
	stream_add_blocks(s);
	s->table_read = vhdx_table_read;
	s->table_data = vhdx_table_data;
	stream_layout(s);
	*out = s;
	return 0;
fail:
	stream_free(s);
	return rc;
}

int stream_new_merged(struct stream **out, struct chain *chain, const char *seed,
		      struct error *err)
{
	struct disk *top = chain_level(chain, 0);
	struct stream_vhd_options vo = {.seed = seed};
	struct stream_vhdx_options xo = {.seed = seed, .top_id = disk_id(top)};

	if (chain_format(chain) != DISK_FORMAT_VHDX)
		return stream_new_vhd(out, chain, &vo, err);
	xo.block_size = disk_block_size(top);
	xo.logical_sector_size = disk_sector_size(top);
	xo.physical_sector_size = vhdx_physical_sector_size(disk_vhdx(top));
	return stream_new_vhdx(out, chain, &xo, err);
}
