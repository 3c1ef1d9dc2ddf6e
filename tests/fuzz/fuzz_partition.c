/*
 * fuzz_partition - the partition table reader (core/partition) that the
 * export mount runs on every disk of raw/: any disk is read, and what it
 * keeps must be sound.
 *
 * Input: flags:u8 sectors:u32le tail:u16le, then bytes: the disk is
 * `sectors` sectors (512 bytes, or 4096 with flag bit 0) of zeros, the bytes
 * laid at its start, their last `tail` at its end (where the backup GPT
 * lives). Before reading, the CRC32s of a GPT header at sector 1 or at the
 * last sector and of the entries each names are made right (unless flag bit
 * 1), so that mutations reach past the checks. Flag bit 2 fails the reads of
 * sector 2 (a primary GPT's entries) with EIO.
 *
 * Checked beyond "no crash": partitions are in number order, at most
 * PARTITION_MAX, whole sectors, not empty, past sector 0, inside the disk, no
 * two sharing a sector; a disk without a table has none; every fault names
 * the disk; a failed read fails the call with its message; the bytes read are
 * bounded whatever the disk claims.
 */
#include "error.h"
#include "fuzzsupport.h"
#include "partition.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_disk {
	uint8_t *head, *tail;
	size_t head_len, tail_len;
	uint64_t size, read_bytes;
	uint32_t sector;
	bool fail;
	size_t faults;
};

/* Byte @at of the disk. */
static uint8_t byte_at(const struct fuzz_disk *d, uint64_t at)
{
	if (at >= d->size - d->tail_len)
		return d->tail[at - (d->size - d->tail_len)];
	return at < d->head_len ? d->head[at] : 0;
}

static uint8_t *byte_ptr(struct fuzz_disk *d, uint64_t at)
{
	if (at >= d->size - d->tail_len)
		return &d->tail[at - (d->size - d->tail_len)];
	return at < d->head_len ? &d->head[at] : NULL;
}

static int disk_read(void *ctx, void *buf, size_t len, uint64_t offset, struct error *err)
{
	struct fuzz_disk *d = ctx;
	uint8_t *out = buf;

	FUZZ_CHECK(offset <= d->size && len <= d->size - offset);
	d->read_bytes += len;
	if (d->fail && offset < 3ull * d->sector && offset + len > 2ull * d->sector)
		return error_set(err, EIO, "cannot read sector 2");
	for (size_t i = 0; i < len; i++)
		out[i] = byte_at(d, offset + i);
	return 0;
}

static void disk_fault(void *ctx, const char *message)
{
	struct fuzz_disk *d = ctx;

	FUZZ_CHECK(strstr(message, "'disk'") != NULL);
	d->faults++;
}

static uint32_t get32(const struct fuzz_disk *d, uint64_t at)
{
	return (uint32_t)byte_at(d, at) | (uint32_t)byte_at(d, at + 1) << 8 |
	       (uint32_t)byte_at(d, at + 2) << 16 | (uint32_t)byte_at(d, at + 3) << 24;
}

static uint64_t get64(const struct fuzz_disk *d, uint64_t at)
{
	return (uint64_t)get32(d, at) | (uint64_t)get32(d, at + 4) << 32;
}

static void put32(struct fuzz_disk *d, uint64_t at, uint32_t v)
{
	for (int i = 0; i < 4; i++) {
		uint8_t *p = byte_ptr(d, at + i);

		if (p)
			*p = (uint8_t)(v >> (8 * i));
	}
}

/* Make the CRC32s of the GPT header at sector @lba right, where its bytes are the input's. */
static void fix_gpt(struct fuzz_disk *d, uint64_t lba)
{
	uint64_t at = lba * d->sector, entries, bytes;
	uint32_t header_size, crc = 0;
	uint8_t header[4096];

	if (lba * d->sector + d->sector > d->size || !byte_ptr(d, at) ||
	    !byte_ptr(d, at + d->sector - 1) || byte_at(d, at) != 'E')
		return;
	entries = get64(d, at + 72);
	bytes = (uint64_t)get32(d, at + 80) * get32(d, at + 84);
	if (bytes <= PARTITION_GPT_ARRAY_MAX && entries < d->size / d->sector &&
	    bytes <= d->size - entries * d->sector) {
		for (uint64_t i = 0; i < bytes; i++) {
			uint8_t b = byte_at(d, entries * d->sector + i);

			crc = partition_crc32(crc, &b, 1);
		}
		put32(d, at + 88, crc);
	}
	header_size = get32(d, at + 12);
	if (header_size < 92 || header_size > d->sector)
		return;
	put32(d, at + 16, 0);
	for (uint32_t i = 0; i < header_size; i++)
		header[i] = byte_at(d, at + i);
	put32(d, at + 16, partition_crc32(0, header, header_size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_disk d = {0};
	struct partition_table *t = malloc(sizeof(*t));
	struct partition_disk pd;
	struct error err;
	size_t rest, tail;
	uint8_t flags;
	int rc;

	if (size < 7 || !t) {
		free(t);
		return 0;
	}
	flags = data[0];
	d.sector = flags & 1 ? 4096 : 512;
	d.size = (uint64_t)(data[1] | data[2] << 8 | data[3] << 16 | (uint32_t)data[4] << 24) *
		 d.sector;
	d.fail = flags & 4;
	tail = data[5] | data[6] << 8;
	rest = size - 7;
	tail = tail < rest ? tail : rest;
	d.head_len = rest - tail;
	d.tail_len = tail;
	/* What does not fit the disk is cut off: the head's end, the tail's start. */
	if (d.head_len > d.size)
		d.head_len = (size_t)d.size;
	if (d.tail_len > d.size)
		d.tail_len = (size_t)d.size;
	d.head = malloc(d.head_len + 1);
	d.tail = malloc(d.tail_len + 1);
	FUZZ_CHECK(d.head && d.tail);
	memcpy(d.head, data + 7, d.head_len);
	memcpy(d.tail, data + size - d.tail_len, d.tail_len);
	if (!(flags & 2) && d.size >= 2ull * d.sector) {
		fix_gpt(&d, 1);
		fix_gpt(&d, d.size / d.sector - 1);
	}

	pd = (struct partition_disk){disk_read, disk_fault, &d, d.size, d.sector, "disk"};
	error_clear(&err);
	rc = partition_read_table(&pd, t, &err);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EIO && d.fail && err.code == EIO);
		FUZZ_CHECK(strcmp(err.message, "cannot read sector 2") == 0);
	} else {
		FUZZ_CHECK(t->count <= PARTITION_MAX);
		FUZZ_CHECK(t->scheme != PARTITION_NONE || (t->count == 0 && d.faults == 0));
		FUZZ_CHECK(t->scheme == PARTITION_GPT || !t->backup_used);
		for (size_t i = 0; i < t->count; i++) {
			const struct partition *p = &t->parts[i];

			FUZZ_CHECK(p->number >= 1);
			FUZZ_CHECK(i == 0 || p->number > t->parts[i - 1].number);
			FUZZ_CHECK(p->offset % d.sector == 0 && p->length % d.sector == 0);
			FUZZ_CHECK(p->length > 0 && p->offset >= d.sector);
			FUZZ_CHECK(p->offset < d.size && p->length <= d.size - p->offset);
			for (size_t j = 0; j < i; j++)
				FUZZ_CHECK(p->offset >= t->parts[j].offset + t->parts[j].length ||
					   t->parts[j].offset >= p->offset + p->length);
		}
	}
	/* Sector 0, PARTITION_MAX EBRs, two headers and their entries at most. */
	FUZZ_CHECK(d.read_bytes <=
		   (uint64_t)(PARTITION_MAX + 3) * d.sector + 2ull * PARTITION_GPT_ARRAY_MAX);
	free(d.head);
	free(d.tail);
	free(t);
	return 0;
}
