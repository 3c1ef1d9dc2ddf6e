#include "partition.h"

#include "error.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- CRC32 ---- */

static uint32_t crc_table[256];

static void crc_table_make(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t partition_crc32(uint32_t crc, const void *data, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const uint8_t *p = data;

	pthread_once(&once, crc_table_make);
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

/* ---- reading ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* An MBR or EBR entry (16 bytes at 446 + 16 * slot). */
struct mbr_entry {
	uint8_t status;
	uint8_t type;
	uint64_t start; /* LBA (relative, as stored) */
	uint64_t count; /* sectors; 0: unused, as Linux reads it */
};

static struct mbr_entry mbr_entry(const uint8_t *sector, unsigned slot)
{
	const uint8_t *p = sector + 446 + 16 * slot;

	return (struct mbr_entry){p[0], p[4], le32(p + 8), le32(p + 12)};
}

static bool mbr_extended(uint8_t type)
{
	return type == 0x05 || type == 0x0F || type == 0x85;
}

static bool has_boot_signature(const uint8_t *sector)
{
	return sector[510] == 0x55 && sector[511] == 0xAA;
}

/* One table being read. */
struct reader {
	const struct partition_disk *disk;
	struct partition_table *table;
	struct error *err;
	uint64_t sectors; /* of the disk */
	bool full_told;	  /* "more than PARTITION_MAX" said */
	/* MBR: the extended partition's sectors, [ext_start, ext_end), and its number (0: none) */
	uint64_t ext_start, ext_end;
	unsigned ext_number;
};

static void fault(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fault(struct reader *r, const char *fmt, ...)
{
	char message[ERROR_MESSAGE_MAX];
	va_list ap;

	if (!r->disk->fault)
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	r->disk->fault(r->disk->ctx, message);
}

/* Read @count bytes at sector @lba (inside the disk) into @buf. */
static int read_at(struct reader *r, uint64_t lba, void *buf, size_t count)
{
	return r->disk->read(r->disk->ctx, buf, count, lba * r->disk->sector_size, r->err);
}

/* Whether [a, a + an) and [b, b + bn) share a sector. */
static bool overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
	return a < b + bn && b < a + an;
}

/*
 * Keep partition @number of @count sectors from @first unless a fault leaves
 * it out: it must start after sector 0, end inside the disk, lie inside
 * [@lo, @hi) (@within names that area), and share no sector with a partition
 * kept (nor, when @primary, with the extended partition).
 */
static void keep(struct reader *r, unsigned number, uint64_t first, uint64_t count, uint8_t type,
		 const uint8_t *guid, uint64_t lo, uint64_t hi, const char *within, bool primary)
{
	const char *name = r->disk->name;
	struct partition_table *t = r->table;
	struct partition *p;

	if (t->count == PARTITION_MAX) {
		if (!r->full_told)
			fault(r,
			      "'%s' has more than %d partitions: partition %u and those after it "
			      "are left out",
			      name, PARTITION_MAX, number);
		r->full_told = true;
		return;
	}
	if (first == 0) {
		fault(r,
		      "partition %u of '%s' starts at sector 0, over its partition table: "
		      "left out",
		      number, name);
		return;
	}
	if (count == 0 || first >= r->sectors || count > r->sectors - first) {
		fault(r,
		      "partition %u of '%s' (sectors %llu to %llu) ends past the disk's end "
		      "(%llu sectors): left out",
		      number, name, (unsigned long long)first,
		      (unsigned long long)(first + count - 1), (unsigned long long)r->sectors);
		return;
	}
	if (first < lo || first + count > hi) {
		fault(r, "partition %u of '%s' (sectors %llu to %llu) lies outside %s: left out",
		      number, name, (unsigned long long)first,
		      (unsigned long long)(first + count - 1), within);
		return;
	}
	if (primary && r->ext_number &&
	    overlap(first, count, r->ext_start, r->ext_end - r->ext_start)) {
		fault(r, "partition %u of '%s' overlaps the extended partition %u: left out",
		      number, name, r->ext_number);
		return;
	}
	for (size_t i = 0; i < t->count; i++) {
		const struct partition *k = &t->parts[i];
		uint64_t sector = r->disk->sector_size;

		if (overlap(first, count, k->offset / sector, k->length / sector)) {
			fault(r, "partition %u of '%s' overlaps partition %u: left out", number,
			      name, k->number);
			return;
		}
	}
	p = &t->parts[t->count++];
	memset(p, 0, sizeof(*p));
	p->number = number;
	p->offset = first * r->disk->sector_size;
	p->length = count * r->disk->sector_size;
	p->type = type;
	if (guid)
		memcpy(p->guid, guid, 16);
}

/* ---- MBR ---- */

/*
 * The logical partitions: the chain of EBRs from the extended partition's
 * first sector. Each EBR's data entries are partitions (from its own
 * sector), its first extended entry the next EBR (from the extended
 * partition's start), as Linux reads them, entries 3 and 4 only when they
 * fit (they sometimes hold garbage).
 */
static int read_logical(struct reader *r, uint8_t *sector)
{
	uint64_t visited[PARTITION_MAX], ebr = r->ext_start, ebr_size = r->ext_end - r->ext_start;
	const char *name = r->disk->name;
	size_t depth = 0;
	unsigned number = 5;

	for (;;) {
		const struct mbr_entry *link = NULL;
		struct mbr_entry e[4];
		int rc;

		if (depth == PARTITION_MAX) {
			fault(r,
			      "the chain of EBRs of '%s' is longer than %d: the logical partitions "
			      "from the one at sector %llu are left out",
			      name, PARTITION_MAX, (unsigned long long)ebr);
			return 0;
		}
		for (size_t i = 0; i < depth; i++)
			if (visited[i] == ebr) {
				fault(r,
				      "the chain of EBRs of '%s' loops back to sector %llu: the "
				      "logical partitions after it are left out",
				      name, (unsigned long long)ebr);
				return 0;
			}
		visited[depth++] = ebr;
		if (ebr < r->ext_start || ebr >= r->ext_end) {
			fault(r,
			      "the chain of EBRs of '%s' leads to sector %llu, outside its "
			      "extended "
			      "partition: the logical partitions from there are left out",
			      name, (unsigned long long)ebr);
			return 0;
		}
		rc = read_at(r, ebr, sector, r->disk->sector_size);
		if (rc < 0)
			return rc;
		if (!has_boot_signature(sector)) {
			fault(r,
			      "the EBR of '%s' at sector %llu has no boot signature: the logical "
			      "partitions from there are left out",
			      name, (unsigned long long)ebr);
			return 0;
		}
		for (unsigned i = 0; i < 4; i++)
			e[i] = mbr_entry(sector, i);
		for (unsigned i = 0; i < 4; i++) {
			if (e[i].count == 0 || mbr_extended(e[i].type))
				continue;
			/* Garbage in the last two entries is passed over, as Linux does. */
			if (i >= 2 && (e[i].start + e[i].count > ebr_size ||
				       ebr + e[i].start + e[i].count > r->ext_end))
				continue;
			keep(r, number, ebr + e[i].start, e[i].count, e[i].type, NULL, r->ext_start,
			     r->ext_end, "its extended partition", false);
			number++;
		}
		for (unsigned i = 0; i < 4 && !link; i++)
			if (e[i].count && mbr_extended(e[i].type))
				link = &e[i];
		if (!link)
			return 0;
		ebr = r->ext_start + link->start;
		ebr_size = link->count;
	}
}

static int read_mbr(struct reader *r, const struct mbr_entry *e, uint8_t *sector)
{
	const char *name = r->disk->name;

	r->table->scheme = PARTITION_MBR;
	/* The extended partition first: primary partitions must stay out of it. */
	for (unsigned slot = 0; slot < 4; slot++) {
		if (e[slot].count == 0 || !mbr_extended(e[slot].type))
			continue;
		if (r->ext_number) {
			fault(r, "partition %u of '%s' is a second extended partition: left out",
			      slot + 1, name);
		} else if (e[slot].start == 0 || e[slot].start >= r->sectors ||
			   e[slot].count > r->sectors - e[slot].start) {
			fault(r,
			      "the extended partition %u of '%s' (sectors %llu to %llu) does not "
			      "lie inside the disk (%llu sectors): its logical partitions are left "
			      "out",
			      slot + 1, name, (unsigned long long)e[slot].start,
			      (unsigned long long)(e[slot].start + e[slot].count - 1),
			      (unsigned long long)r->sectors);
		} else {
			r->ext_start = e[slot].start;
			r->ext_end = e[slot].start + e[slot].count;
			r->ext_number = slot + 1;
		}
	}
	for (unsigned slot = 0; slot < 4; slot++)
		if (e[slot].count && !mbr_extended(e[slot].type))
			keep(r, slot + 1, e[slot].start, e[slot].count, e[slot].type, NULL, 0,
			     UINT64_MAX, "the disk", true);
	return r->ext_number ? read_logical(r, sector) : 0;
}

/* ---- GPT ---- */

/* A GPT header read and checked, with its entry array. */
struct gpt {
	uint64_t lba, first_usable, last_usable, entries_lba;
	uint32_t entry_count, entry_size, entries_crc;
	uint8_t disk_guid[16];
	uint8_t *entries; /* entry_count * entry_size bytes, or NULL */
	char why[256];	  /* what is wrong with it: "" if nothing */
};

static bool invalid(struct gpt *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool invalid(struct gpt *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->why, sizeof(g->why), fmt, ap);
	va_end(ap);
	return false;
}

/*
 * Read the GPT header at sector @lba into @g, and its entries: true if it is
 * whole and sound, else false with g->why set; a negative errno if a read
 * failed. @header is a sector's buffer.
 */
static int gpt_read(struct reader *r, uint64_t lba, struct gpt *g, uint8_t *header)
{
	uint32_t sector = r->disk->sector_size, size, crc;
	uint64_t bytes, array_sectors;
	int rc;

	memset(g, 0, sizeof(*g));
	g->lba = lba;
	if (lba >= r->sectors || lba == 0)
		return invalid(g, "beyond the disk's end");
	rc = read_at(r, lba, header, sector);
	if (rc < 0)
		return rc;
	if (memcmp(header, "EFI PART", 8) != 0)
		return invalid(g, "missing (no signature)");
	size = le32(header + 12);
	if (size < 92 || size > sector)
		return invalid(g, "of a size no header has (%u bytes)", size);
	crc = le32(header + 16);
	memset(header + 16, 0, 4);
	if (partition_crc32(0, header, size) != crc)
		return invalid(g, "damaged (its CRC32 does not match)");
	if (le64(header + 24) != lba)
		return invalid(g, "that of another sector (%llu)",
			       (unsigned long long)le64(header + 24));
	g->first_usable = le64(header + 40);
	g->last_usable = le64(header + 48);
	memcpy(g->disk_guid, header + 56, 16);
	g->entries_lba = le64(header + 72);
	g->entry_count = le32(header + 80);
	g->entry_size = le32(header + 84);
	g->entries_crc = le32(header + 88);
	if (g->first_usable > g->last_usable)
		return invalid(g, "unsound: its usable sectors end (%llu) before they start (%llu)",
			       (unsigned long long)g->last_usable,
			       (unsigned long long)g->first_usable);
	if (g->entry_size < 128 || g->entry_size > PARTITION_GPT_ENTRY_MAX ||
	    (g->entry_size & (g->entry_size - 1)) != 0)
		return invalid(g, "unsound: its partition entries are %u bytes each",
			       g->entry_size);
	bytes = (uint64_t)g->entry_count * g->entry_size;
	if (bytes > PARTITION_GPT_ARRAY_MAX)
		return invalid(g,
			       "unsound: %u partition entries of %u bytes are more than %d bytes",
			       g->entry_count, g->entry_size, PARTITION_GPT_ARRAY_MAX);
	array_sectors = (bytes + sector - 1) / sector;
	if (g->entries_lba == 0 || g->entries_lba >= r->sectors ||
	    array_sectors > r->sectors - g->entries_lba ||
	    overlap(g->entries_lba, array_sectors, lba, 1))
		return invalid(g,
			       "unsound: its partition entries (sector %llu) lie outside the "
			       "disk or over the header",
			       (unsigned long long)g->entries_lba);
	if (bytes == 0)
		return partition_crc32(0, NULL, 0) == g->entries_crc
			       ? true
			       : invalid(g, "damaged (the CRC32 of its partition entries does not "
					    "match)");
	g->entries = malloc(bytes);
	if (!g->entries)
		return error_set(r->err, ENOMEM, "out of memory");
	rc = read_at(r, g->entries_lba, g->entries, bytes);
	if (rc < 0)
		return rc;
	if (partition_crc32(0, g->entries, bytes) != g->entries_crc)
		return invalid(g, "damaged (the CRC32 of its partition entries does not match)");
	return true;
}

static int read_gpt(struct reader *r, uint8_t *sector)
{
	static const uint8_t unused[16];
	const char *name = r->disk->name;
	struct gpt primary, backup;
	const struct gpt *g;
	char within[96];
	int ok_primary, ok_backup, rc = 0;

	r->table->scheme = PARTITION_GPT;
	ok_primary = gpt_read(r, 1, &primary, sector);
	ok_backup = ok_primary < 0 ? 0 : gpt_read(r, r->sectors - 1, &backup, sector);
	if (ok_primary < 0 || ok_backup < 0) {
		rc = ok_primary < 0 ? ok_primary : ok_backup;
		goto out;
	}
	if (ok_primary && ok_backup) {
		if (primary.entries_crc != backup.entries_crc ||
		    primary.entry_count != backup.entry_count ||
		    primary.entry_size != backup.entry_size ||
		    memcmp(primary.disk_guid, backup.disk_guid, 16) != 0)
			fault(r,
			      "the backup GPT of '%s' does not match the primary: the primary is "
			      "used",
			      name);
		g = &primary;
	} else if (ok_primary) {
		fault(r,
		      "the backup GPT header of '%s' at its last sector (%llu) is %s: the "
		      "primary is used",
		      name, (unsigned long long)backup.lba, backup.why);
		g = &primary;
	} else if (ok_backup) {
		fault(r,
		      "the primary GPT header of '%s' is %s: the backup at its last sector "
		      "(%llu) is used",
		      name, primary.why, (unsigned long long)backup.lba);
		r->table->backup_used = true;
		g = &backup;
	} else {
		fault(r,
		      "neither GPT header of '%s' is sound (the primary is %s; the backup at "
		      "sector %llu is %s): no partitions",
		      name, primary.why, (unsigned long long)backup.lba, backup.why);
		goto out;
	}
	snprintf(within, sizeof(within), "the usable sectors %llu to %llu",
		 (unsigned long long)g->first_usable, (unsigned long long)g->last_usable);
	for (uint32_t i = 0; i < g->entry_count; i++) {
		const uint8_t *e = g->entries + (size_t)i * g->entry_size;
		uint64_t first = le64(e + 32), last = le64(e + 40);

		if (memcmp(e, unused, 16) == 0)
			continue;
		if (last < first) {
			fault(r,
			      "partition %u of '%s' ends (sector %llu) before it starts (%llu): "
			      "left out",
			      i + 1, name, (unsigned long long)last, (unsigned long long)first);
			continue;
		}
		keep(r, i + 1, first, last - first + 1, 0, e, g->first_usable,
		     g->last_usable < UINT64_MAX ? g->last_usable + 1 : UINT64_MAX, within, false);
		/* Once full, the entries after say nothing more. */
		if (r->full_told)
			break;
	}
out:
	free(primary.entries);
	if (ok_primary >= 0)
		free(backup.entries);
	return rc;
}

int partition_read_table(const struct partition_disk *disk, struct partition_table *out,
			 struct error *err)
{
	struct reader r = {.disk = disk, .table = out, .err = err};
	struct mbr_entry e[4];
	uint8_t *sector;
	bool gpt = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if (disk->sector_size != 512 && disk->sector_size != 4096)
		return error_set(err, EINVAL, "'%s' has sectors of %u bytes: 512 or 4096 expected",
				 disk->name, disk->sector_size);
	r.sectors = disk->size / disk->sector_size;
	if (r.sectors == 0)
		return 0;
	sector = malloc(disk->sector_size);
	if (!sector)
		return error_set(err, ENOMEM, "out of memory");
	rc = read_at(&r, 0, sector, disk->sector_size);
	if (rc < 0 || !has_boot_signature(sector))
		goto out;
	for (unsigned slot = 0; slot < 4; slot++) {
		e[slot] = mbr_entry(sector, slot);
		/* Boot code or a file system's boot sector, not partition entries. */
		if (e[slot].status != 0 && e[slot].status != 0x80)
			goto out;
		gpt |= e[slot].type == 0xEE && e[slot].count != 0;
	}
	rc = gpt ? read_gpt(&r, sector) : read_mbr(&r, e, sector);
out:
	free(sector);
	return rc;
}
