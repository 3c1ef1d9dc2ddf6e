/*
 * Unit tests of core/partition: MBR with logical partitions, GPT at 512- and
 * 4096-byte sectors, the backup header, and each hostile table (an EBR chain
 * that loops or runs on, too many partitions, partitions past the end or over
 * another, absurd entry sizes and counts, damaged headers). The tables are
 * written here, field by field, with a CRC32 of the test's own.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "partition.h"

/* ---- a disk in memory ---- */

struct disk {
	uint8_t *bytes;
	uint64_t size;
	uint32_t sector;
	int fail_at; /* a read touching this sector fails with EIO (-1: none) */
	unsigned reads;
	char faults[16][ERROR_MESSAGE_MAX];
	size_t fault_count;
};

static struct disk *disk_new(uint64_t sectors, uint32_t sector)
{
	struct disk *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->size = sectors * sector;
	d->sector = sector;
	d->bytes = calloc(1, d->size);
	d->fail_at = -1;
	assert_non_null(d->bytes);
	return d;
}

static void disk_free(struct disk *d)
{
	free(d->bytes);
	free(d);
}

static int disk_read(void *ctx, void *buf, size_t len, uint64_t offset, struct error *err)
{
	struct disk *d = ctx;

	d->reads++;
	assert_true(offset <= d->size && len <= d->size - offset);
	if (d->fail_at >= 0 && offset <= (uint64_t)d->fail_at * d->sector &&
	    (uint64_t)d->fail_at * d->sector < offset + len)
		return error_set(err, EIO, "cannot read sector %d", d->fail_at);
	memcpy(buf, d->bytes + offset, len);
	return 0;
}

static void disk_fault(void *ctx, const char *message)
{
	struct disk *d = ctx;

	if (d->fault_count < 16)
		snprintf(d->faults[d->fault_count], ERROR_MESSAGE_MAX, "%s", message);
	d->fault_count++;
}

/* Read @d's table into @t; the call must succeed. */
static void read_table(struct disk *d, struct partition_table *t)
{
	struct partition_disk pd = {disk_read, disk_fault, d, d->size, d->sector, "disk.img"};
	struct error err;

	error_clear(&err);
	assert_int_equal(partition_read_table(&pd, t, &err), 0);
}

/* Whether a fault said holds every one of the (NULL-ended) phrases, and names the disk. */
static bool said(const struct disk *d, ...)
{
	for (size_t i = 0; i < d->fault_count && i < 16; i++) {
		const char *phrase;
		bool all = strstr(d->faults[i], "'disk.img'") != NULL;
		va_list ap;

		va_start(ap, d);
		while ((phrase = va_arg(ap, const char *)))
			all = all && strstr(d->faults[i], phrase) != NULL;
		va_end(ap);
		if (all)
			return true;
	}
	return false;
}

static void expect_part(const struct partition_table *t, size_t i, unsigned number, uint64_t first,
			uint64_t count, uint32_t sector)
{
	assert_true(i < t->count);
	assert_int_equal(t->parts[i].number, number);
	assert_int_equal(t->parts[i].offset, first * sector);
	assert_int_equal(t->parts[i].length, count * sector);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* CRC32 bit by bit (IEEE 802.3, reflected): not the module's table. */
static uint32_t crc32_bits(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xFFFFFFFFu;

	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* ---- MBR and EBR ---- */

/* Entry @slot of the table in sector @lba. */
static void mbr_set(struct disk *d, uint64_t lba, unsigned slot, uint8_t type, uint32_t start,
		    uint32_t count)
{
	uint8_t *s = d->bytes + lba * d->sector, *e = s + 446 + 16 * slot;

	memset(e, 0, 16);
	e[4] = type;
	put32(e + 8, start);
	put32(e + 12, count);
	s[510] = 0x55;
	s[511] = 0xAA;
}

/* ---- GPT ---- */

static const uint8_t linux_data[16] = {0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47,
				       0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4};

struct gpt_spec {
	uint32_t count, size; /* entries */
	uint64_t first_usable, last_usable;
};

/* Entry @i of the array at sector @lba (entries of @size bytes). */
static void gpt_entry(struct disk *d, uint64_t lba, uint32_t size, uint32_t i, uint64_t first,
		      uint64_t last)
{
	uint8_t *e = d->bytes + lba * d->sector + (uint64_t)i * size;

	memcpy(e, linux_data, 16);
	e[16] = (uint8_t)(i + 1);
	put64(e + 32, first);
	put64(e + 40, last);
}

/* The header at @lba naming @alternate, its entries at @entries (already written there). */
static void gpt_header(struct disk *d, uint64_t lba, uint64_t alternate, uint64_t entries,
		       const struct gpt_spec *g)
{
	uint8_t *h = d->bytes + lba * d->sector;
	size_t bytes = (size_t)g->count * g->size;

	memset(h, 0, d->sector);
	memcpy(h, "EFI PART", 8);
	put32(h + 8, 0x00010000);
	put32(h + 12, 92);
	put64(h + 24, lba);
	put64(h + 32, alternate);
	put64(h + 40, g->first_usable);
	put64(h + 48, g->last_usable);
	memset(h + 56, 0x5A, 16);
	put64(h + 72, entries);
	put32(h + 80, g->count);
	put32(h + 84, g->size);
	put32(h + 88, crc32_bits(d->bytes + entries * d->sector, bytes));
	put32(h + 16, crc32_bits(h, 92));
}

/* Entry sectors of @g. */
static uint64_t gpt_array_sectors(const struct disk *d, const struct gpt_spec *g)
{
	return ((uint64_t)g->count * g->size + d->sector - 1) / d->sector;
}

/*
 * A whole GPT on @d: the protective MBR, the primary at 1 (entries at 2), the
 * backup at the last sector (entries before it), @n partitions of @parts
 * ({first, last} pairs, 0 0: an unused entry).
 */
static void gpt_write(struct disk *d, const struct gpt_spec *spec, const uint64_t (*parts)[2],
		      size_t n)
{
	uint64_t last = d->size / d->sector - 1, array = gpt_array_sectors(d, spec);
	uint64_t sectors = d->size / d->sector;

	mbr_set(d, 0, 0, 0xEE, 1, sectors - 1 > 0xFFFFFFFF ? 0xFFFFFFFF : (uint32_t)(sectors - 1));
	for (size_t i = 0; i < n; i++)
		if (parts[i][0] || parts[i][1]) {
			gpt_entry(d, 2, spec->size, (uint32_t)i, parts[i][0], parts[i][1]);
			gpt_entry(d, last - array, spec->size, (uint32_t)i, parts[i][0],
				  parts[i][1]);
		}
	gpt_header(d, 1, last, 2, spec);
	gpt_header(d, last, 1, last - array, spec);
}

static const struct gpt_spec usual = {128, 128, 34, 0};

/* The usual GPT of a disk of @sectors: 128 entries, usable from 34 (512) or 6 (4096). */
static struct gpt_spec usual_for(const struct disk *d)
{
	struct gpt_spec g = usual;
	uint64_t array = gpt_array_sectors(d, &g);

	g.first_usable = 2 + array;
	g.last_usable = d->size / d->sector - 2 - array;
	return g;
}

/* ---- the tests ---- */

static void test_crc32(void **state)
{
	(void)state;
	assert_int_equal(partition_crc32(0, "123456789", 9), 0xCBF43926u);
	/* Going on from a CRC is the CRC of the whole. */
	assert_int_equal(partition_crc32(partition_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

static void test_no_table(void **state)
{
	struct disk *d = disk_new(2048, 512);
	struct partition_table t;

	(void)state;
	read_table(d, &t);
	assert_int_equal(t.scheme, PARTITION_NONE);
	assert_int_equal(t.count, 0);
	/* A file system's boot sector: a signature, but boot code where entries would be. */
	memcpy(d->bytes, "\xEB\x52\x90NTFS    ", 11);
	memset(d->bytes + 446, 0x33, 64);
	d->bytes[510] = 0x55;
	d->bytes[511] = 0xAA;
	read_table(d, &t);
	assert_int_equal(t.scheme, PARTITION_NONE);
	assert_int_equal(t.count, 0);
	assert_int_equal(d->fault_count, 0);
	disk_free(d);
}

/* Primary 1 and 2, extended 3 with logical 5, 6, 7 (an empty slot 4), at @sector bytes. */
static void mbr_with_logicals(uint32_t sector)
{
	struct disk *d = disk_new(4096, sector);
	struct partition_table t;

	mbr_set(d, 0, 0, 0x83, 2048, 500);
	mbr_set(d, 0, 1, 0x07, 2548, 500);
	mbr_set(d, 0, 2, 0x05, 3048, 1000); /* extended: 3048..4047 */
	/* EBR 1 at 3048: a partition 8 sectors on, then the next EBR at +300. */
	mbr_set(d, 3048, 0, 0x83, 8, 200);
	mbr_set(d, 3048, 1, 0x05, 300, 300);
	/* EBR 2 at 3348. */
	mbr_set(d, 3348, 0, 0x82, 2, 100);
	mbr_set(d, 3348, 1, 0x05, 600, 400);
	/* EBR 3 at 3648: the last. */
	mbr_set(d, 3648, 0, 0x83, 1, 399);
	read_table(d, &t);
	assert_int_equal(t.scheme, PARTITION_MBR);
	assert_int_equal(t.count, 5);
	expect_part(&t, 0, 1, 2048, 500, sector);
	expect_part(&t, 1, 2, 2548, 500, sector);
	expect_part(&t, 2, 5, 3056, 200, sector);
	expect_part(&t, 3, 6, 3350, 100, sector);
	expect_part(&t, 4, 7, 3649, 399, sector);
	assert_int_equal(t.parts[0].type, 0x83);
	assert_int_equal(t.parts[1].type, 0x07);
	assert_int_equal(t.parts[3].type, 0x82);
	assert_int_equal(d->fault_count, 0);
	disk_free(d);
}

static void test_mbr_logical(void **state)
{
	(void)state;
	mbr_with_logicals(512);
}

static void test_mbr_logical_4096(void **state)
{
	(void)state;
	mbr_with_logicals(4096);
}

static void test_mbr_ebr_loop(void **state)
{
	struct disk *d = disk_new(4096, 512);
	struct partition_table t;

	mbr_set(d, 0, 0, 0x05, 1000, 2000);
	mbr_set(d, 1000, 0, 0x83, 1, 99);
	mbr_set(d, 1000, 1, 0x05, 100, 100);
	mbr_set(d, 1100, 0, 0x83, 1, 99);
	mbr_set(d, 1100, 1, 0x05, 0, 100); /* back to the first EBR */
	read_table(d, &t);
	assert_int_equal(t.count, 2);
	expect_part(&t, 0, 5, 1001, 99, 512);
	expect_part(&t, 1, 6, 1101, 99, 512);
	assert_true(said(d, "loops back to sector 1000", NULL));
	/* An EBR naming itself. */
	mbr_set(d, 1000, 1, 0x05, 0, 100);
	d->fault_count = 0;
	read_table(d, &t);
	assert_int_equal(t.count, 1);
	assert_true(said(d, "loops back to sector 1000", NULL));
	disk_free(d);
}

static void test_mbr_ebr_chain_bounded(void **state)
{
	struct disk *d = disk_new(8192, 512);
	struct partition_table t;

	/* 300 EBRs, each after the one before, each with a partition of one sector. */
	mbr_set(d, 0, 0, 0x0F, 1000, 7000);
	for (uint32_t i = 0; i < 300; i++) {
		mbr_set(d, 1000 + 2 * i, 0, 0x83, 1, 1);
		mbr_set(d, 1000 + 2 * i, 1, 0x05, 2 * (i + 1), 2);
	}
	read_table(d, &t);
	assert_int_equal(t.count, PARTITION_MAX);
	expect_part(&t, 0, 5, 1001, 1, 512);
	expect_part(&t, PARTITION_MAX - 1, 5 + PARTITION_MAX - 1, 1001 + 2 * (PARTITION_MAX - 1), 1,
		    512);
	assert_true(said(d, "longer than 128", "sector 1256", NULL));
	/* Bounded: the EBRs read, not the 300. */
	assert_true(d->reads <= PARTITION_MAX + 1);
	disk_free(d);
}

static void test_mbr_past_end_and_overlap(void **state)
{
	struct disk *d = disk_new(4096, 512);
	struct partition_table t;

	mbr_set(d, 0, 0, 0x83, 2048, 1000);
	mbr_set(d, 0, 1, 0x83, 3000, 2000); /* past the end (4096) */
	mbr_set(d, 0, 2, 0x83, 2500, 100);  /* over partition 1 */
	mbr_set(d, 0, 3, 0x83, 0, 10);	    /* over the table */
	read_table(d, &t);
	assert_int_equal(t.count, 1);
	expect_part(&t, 0, 1, 2048, 1000, 512);
	assert_true(said(d, "partition 2 ", "past the disk's end", NULL));
	assert_true(said(d, "partition 3 ", "overlaps partition 1", NULL));
	assert_true(said(d, "partition 4 ", "sector 0", NULL));
	disk_free(d);
}

static void test_mbr_logical_outside_extended(void **state)
{
	struct disk *d = disk_new(4096, 512);
	struct partition_table t;

	mbr_set(d, 0, 0, 0x83, 100, 400);   /* over the extended partition */
	mbr_set(d, 0, 1, 0x05, 400, 1000);  /* 400..1399 */
	mbr_set(d, 0, 2, 0x05, 2000, 100);  /* a second one */
	mbr_set(d, 400, 0, 0x83, 1, 2000);  /* beyond the extended partition */
	mbr_set(d, 400, 1, 0x05, 500, 500); /* EBR at 900 */
	mbr_set(d, 900, 0, 0x83, 1, 10);
	mbr_set(d, 900, 1, 0x05, 5000, 10); /* the chain leads off the disk */
	read_table(d, &t);
	assert_int_equal(t.count, 1);
	expect_part(&t, 0, 6, 901, 10, 512);
	assert_true(said(d, "partition 1 ", "overlaps the extended partition 2", NULL));
	assert_true(said(d, "partition 3 ", "second extended", NULL));
	assert_true(said(d, "partition 5 ", "outside its extended partition", NULL));
	assert_true(said(d, "sector 5400", "outside its extended partition", NULL));
	disk_free(d);
}

static void test_mbr_ebr_without_signature(void **state)
{
	struct disk *d = disk_new(4096, 512);
	struct partition_table t;

	mbr_set(d, 0, 0, 0x83, 100, 200);
	mbr_set(d, 0, 1, 0x05, 1000, 1000);
	read_table(d, &t);
	assert_int_equal(t.count, 1);
	assert_true(said(d, "no boot signature", NULL));
	disk_free(d);
}

/* Partitions 1 and 3 (entry 2 unused) of a disk of @sector bytes. */
static void gpt_basic(uint32_t sector)
{
	struct disk *d = disk_new(sector == 512 ? 20480 : 2560, sector);
	struct gpt_spec g = usual_for(d);
	const uint64_t parts[3][2] = {{g.first_usable, g.first_usable + 99},
				      {0, 0},
				      {g.first_usable + 200, g.last_usable}};
	struct partition_table t;

	gpt_write(d, &g, parts, 3);
	read_table(d, &t);
	assert_int_equal(t.scheme, PARTITION_GPT);
	assert_false(t.backup_used);
	assert_int_equal(t.count, 2);
	expect_part(&t, 0, 1, g.first_usable, 100, sector);
	expect_part(&t, 1, 3, g.first_usable + 200, g.last_usable - g.first_usable - 199, sector);
	assert_memory_equal(t.parts[0].guid, linux_data, 16);
	assert_int_equal(d->fault_count, 0);
	disk_free(d);
}

static void test_gpt(void **state)
{
	(void)state;
	gpt_basic(512);
}

static void test_gpt_4096(void **state)
{
	(void)state;
	gpt_basic(4096);
}

/* A GPT of two partitions on 8 MiB. */
static struct disk *gpt_two(struct gpt_spec *g)
{
	struct disk *d = disk_new(16384, 512);
	uint64_t parts[2][2];

	*g = usual_for(d);
	parts[0][0] = 2048, parts[0][1] = 4095;
	parts[1][0] = 4096, parts[1][1] = 8191;
	gpt_write(d, g, (const uint64_t(*)[2])parts, 2);
	return d;
}

static void test_gpt_primary_damaged(void **state)
{
	struct gpt_spec g;
	struct disk *d = gpt_two(&g);
	struct partition_table t;

	(void)state;
	d->bytes[512 + 60] ^= 1; /* the disk GUID: the header's CRC32 fails */
	read_table(d, &t);
	assert_true(t.backup_used);
	assert_int_equal(t.count, 2);
	expect_part(&t, 1, 2, 4096, 4096, 512);
	assert_true(said(d, "primary GPT header", "CRC32", "backup", "is used", NULL));
	/* The entries damaged instead: the same. */
	d->bytes[512 + 60] ^= 1;
	d->bytes[2 * 512 + 40] ^= 1;
	d->fault_count = 0;
	read_table(d, &t);
	assert_true(t.backup_used);
	expect_part(&t, 1, 2, 4096, 4096, 512);
	assert_true(said(d, "primary GPT header", "partition entries", "backup", NULL));
	disk_free(d);
}

static void test_gpt_backup_missing(void **state)
{
	struct gpt_spec g;
	struct disk *d = gpt_two(&g);
	struct partition_table t;

	(void)state;
	memset(d->bytes + d->size - 512, 0, 512);
	read_table(d, &t);
	assert_false(t.backup_used);
	assert_int_equal(t.count, 2);
	assert_true(said(d, "backup GPT header", "16383", "missing", "primary is used", NULL));
	/* Both gone: no partitions, said. */
	memset(d->bytes + 512, 0, 8);
	d->fault_count = 0;
	read_table(d, &t);
	assert_int_equal(t.scheme, PARTITION_GPT);
	assert_int_equal(t.count, 0);
	assert_true(said(d, "neither GPT header", NULL));
	disk_free(d);
}

static void test_gpt_backup_differs(void **state)
{
	struct gpt_spec g;
	struct disk *d = gpt_two(&g);
	uint64_t last = d->size / 512 - 1;
	struct partition_table t;

	(void)state;
	/* The backup's entry array changed and its header made to match it. */
	d->bytes[(last - 32) * 512 + 40] ^= 4;
	gpt_header(d, last, 1, last - 32, &g);
	read_table(d, &t);
	assert_false(t.backup_used);
	expect_part(&t, 0, 1, 2048, 2048, 512);
	assert_true(said(d, "does not match the primary", NULL));
	disk_free(d);
}

static void test_gpt_hostile_entries(void **state)
{
	struct disk *d = disk_new(16384, 512);
	struct gpt_spec g = usual_for(d);
	uint64_t end = d->size / 512;
	const uint64_t parts[6][2] = {
		{2048, 4095},	  /* kept */
		{3000, 5000},	  /* over partition 1 */
		{9000, end + 10}, /* past the end */
		{8000, 7000},	  /* ends before it starts */
		{1, 10},	  /* over the header: outside the usable sectors */
		{0, UINT64_MAX},  /* from 0 to the last sector there is */
	};
	struct partition_table t;

	(void)state;
	gpt_write(d, &g, parts, 6);
	read_table(d, &t);
	assert_int_equal(t.count, 1);
	expect_part(&t, 0, 1, 2048, 2048, 512);
	assert_true(said(d, "partition 2 ", "overlaps partition 1", NULL));
	assert_true(said(d, "partition 3 ", "past the disk's end", NULL));
	assert_true(said(d, "partition 4 ", "before it starts", NULL));
	assert_true(said(d, "partition 5 ", "outside the usable sectors", NULL));
	assert_true(said(d, "partition 6 ", "left out", NULL));
	disk_free(d);
}

static void test_gpt_too_many(void **state)
{
	struct disk *d = disk_new(16384, 512);
	struct gpt_spec g = {256, 128, 0, 0};
	uint64_t(*parts)[2] = calloc(256, sizeof(*parts));
	struct partition_table t;

	(void)state;
	g.first_usable = 2 + gpt_array_sectors(d, &g);
	g.last_usable = 16383 - 1 - gpt_array_sectors(d, &g);
	for (uint64_t i = 0; i < 200; i++)
		parts[i][0] = parts[i][1] = 100 + i;
	gpt_write(d, &g, (const uint64_t(*)[2])parts, 200);
	read_table(d, &t);
	assert_int_equal(t.count, PARTITION_MAX);
	expect_part(&t, PARTITION_MAX - 1, PARTITION_MAX, 100 + PARTITION_MAX - 1, 1, 512);
	assert_true(said(d, "more than 128 partitions", "partition 129 ", NULL));
	assert_int_equal(d->fault_count, 1);
	free(parts);
	disk_free(d);
}

static void test_gpt_absurd_header(void **state)
{
	struct gpt_spec g;
	struct disk *d = gpt_two(&g);
	uint64_t last = d->size / 512 - 1;
	struct partition_table t;
	static const struct {
		uint32_t count, size;
		const char *says;
	} absurd[] = {
		{0x7FFFFFFF, 128, "more than"}, /* 256 GiB of entries */
		{128, 100, "100 bytes each"},	/* not 128 times a power of two */
		{128, 384, "384 bytes each"},
		{16, 1u << 20, "bytes each"}, /* a MiB an entry */
		{0xFFFFFFFF, 0xFFFFFFFF, "bytes each"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(absurd) / sizeof(*absurd); i++) {
		struct gpt_spec bad = g;

		bad.count = absurd[i].count;
		bad.size = absurd[i].size;
		/* Both headers say so, with sound CRC32s (of what lies there). */
		put32(d->bytes + 512 + 80, bad.count);
		put32(d->bytes + 512 + 84, bad.size);
		put32(d->bytes + 512 + 16, 0);
		put32(d->bytes + 512 + 16, crc32_bits(d->bytes + 512, 92));
		memcpy(d->bytes + last * 512, d->bytes + 512, 512);
		put64(d->bytes + last * 512 + 24, last);
		put64(d->bytes + last * 512 + 32, 1);
		put64(d->bytes + last * 512 + 72, last - 32);
		put32(d->bytes + last * 512 + 16, 0);
		put32(d->bytes + last * 512 + 16, crc32_bits(d->bytes + last * 512, 92));
		d->fault_count = 0;
		d->reads = 0;
		read_table(d, &t);
		assert_int_equal(t.count, 0);
		assert_true(said(d, "neither GPT header", absurd[i].says, NULL));
		/* The header was read, never the entries it claims. */
		assert_int_equal(d->reads, 3);
	}
	disk_free(d);
}

static void test_gpt_header_fields(void **state)
{
	struct gpt_spec g;
	struct disk *d = gpt_two(&g);
	struct partition_table t;
	uint8_t *h = d->bytes + 512;

	(void)state;
	/* The primary claims to live elsewhere. */
	put64(h + 24, 7);
	put32(h + 16, 0);
	put32(h + 16, crc32_bits(h, 92));
	read_table(d, &t);
	assert_true(t.backup_used);
	assert_int_equal(t.count, 2);
	assert_true(said(d, "another sector (7)", NULL));
	/* Entries over sector 0 or the header. */
	put64(h + 24, 1);
	put64(h + 72, 1);
	put32(h + 16, 0);
	put32(h + 16, crc32_bits(h, 92));
	d->fault_count = 0;
	read_table(d, &t);
	assert_true(t.backup_used);
	assert_true(said(d, "over the header", NULL));
	/* A header size past the sector. */
	put64(h + 72, 2);
	put32(h + 12, 600);
	d->fault_count = 0;
	read_table(d, &t);
	assert_true(t.backup_used);
	assert_true(said(d, "600 bytes", NULL));
	disk_free(d);
}

static void test_read_errors_and_sizes(void **state)
{
	struct gpt_spec g;
	struct disk *d = gpt_two(&g);
	struct partition_disk pd = {disk_read, disk_fault, d, d->size, 512, "disk.img"};
	struct partition_table t;
	struct error err;

	(void)state;
	error_clear(&err);
	d->fail_at = 2; /* the primary's entries */
	assert_int_equal(partition_read_table(&pd, &t, &err), -EIO);
	assert_string_equal(err.message, "cannot read sector 2");
	pd.sector_size = 1024;
	assert_int_equal(partition_read_table(&pd, &t, &err), -EINVAL);
	assert_non_null(strstr(err.message, "'disk.img'"));
	/* Less than a sector: nothing to read. */
	pd.sector_size = 512;
	pd.size = 100;
	d->fail_at = -1;
	assert_int_equal(partition_read_table(&pd, &t, &err), 0);
	assert_int_equal(t.scheme, PARTITION_NONE);
	/* A protective MBR on a disk of one sector: no header anywhere, said. */
	pd.size = 512;
	d->fault_count = 0;
	assert_int_equal(partition_read_table(&pd, &t, &err), 0);
	assert_int_equal(t.scheme, PARTITION_GPT);
	assert_int_equal(t.count, 0);
	assert_true(said(d, "neither GPT header", NULL));
	disk_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_no_table),
		cmocka_unit_test(test_mbr_logical),
		cmocka_unit_test(test_mbr_logical_4096),
		cmocka_unit_test(test_mbr_ebr_loop),
		cmocka_unit_test(test_mbr_ebr_chain_bounded),
		cmocka_unit_test(test_mbr_past_end_and_overlap),
		cmocka_unit_test(test_mbr_logical_outside_extended),
		cmocka_unit_test(test_mbr_ebr_without_signature),
		cmocka_unit_test(test_gpt),
		cmocka_unit_test(test_gpt_4096),
		cmocka_unit_test(test_gpt_primary_damaged),
		cmocka_unit_test(test_gpt_backup_missing),
		cmocka_unit_test(test_gpt_backup_differs),
		cmocka_unit_test(test_gpt_hostile_entries),
		cmocka_unit_test(test_gpt_too_many),
		cmocka_unit_test(test_gpt_absurd_header),
		cmocka_unit_test(test_gpt_header_fields),
		cmocka_unit_test(test_read_errors_and_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
