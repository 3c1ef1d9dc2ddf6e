/*
 * partition.h - the partition table of a disk: MBR, with the logical
 * partitions of an extended partition (its chain of EBRs), and GPT (the
 * protective MBR, the primary header and its backup at the last sector, each
 * with the CRC32 of the header and of the entry array checked).
 *
 * The disk's bytes are hostile. Everything is checked before use and bounded
 * (PARTITION_MAX partitions, PARTITION_GPT_ARRAY_MAX bytes of entries, an
 * EBR chain that loops or runs on): a fault leaves out what it concerns, with
 * a message naming the disk and the fault, and keeps the rest.
 *
 * Partitions are numbered as Linux numbers them (sda1, sda5...): an MBR's
 * primary partitions 1 to 4 by slot, its logical ones from 5 in the order of
 * the EBR chain, a GPT's by entry (index + 1). A partition left out for a
 * fault keeps its number from the others. The extended partition itself (a
 * container) is not listed.
 */
#ifndef IMPEX_PARTITION_H
#define IMPEX_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct error;

/* Partitions kept of one disk; EBRs followed in one chain. */
#define PARTITION_MAX 128
/* The largest GPT entry array read, in bytes (8192 entries of 128 bytes); 16 KiB is usual. */
#define PARTITION_GPT_ARRAY_MAX (1024 * 1024)
/* The largest GPT entry: 128 bytes times a power of two, as the specification allows. */
#define PARTITION_GPT_ENTRY_MAX 4096

enum partition_scheme {
	PARTITION_NONE, /* no partition table: no MBR signature, or not an MBR's entries */
	PARTITION_MBR,
	PARTITION_GPT,
};

struct partition {
	unsigned number;  /* as Linux numbers it (above) */
	uint64_t offset;  /* bytes from the start of the disk, whole sectors */
	uint64_t length;  /* bytes, never 0 */
	uint8_t type;	  /* MBR: the type byte; GPT: 0 */
	uint8_t guid[16]; /* GPT: the type GUID as stored; MBR: zeros */
};

struct partition_table {
	enum partition_scheme scheme;
	bool backup_used; /* GPT: the primary header is damaged, the backup was read */
	size_t count;
	struct partition parts[PARTITION_MAX]; /* in number order */
};

/* A disk to read the table of. */
struct partition_disk {
	/* Read @len bytes at @offset (inside the disk): 0, or a negative errno with a message. */
	int (*read)(void *ctx, void *buf, size_t len, uint64_t offset, struct error *err);
	/* Told of each fault found, a message naming @name (may be NULL). */
	void (*fault)(void *ctx, const char *message);
	void *ctx;
	uint64_t size;	      /* bytes */
	uint32_t sector_size; /* logical: 512 or 4096 */
	const char *name;     /* the disk, in messages */
};

/**
 * Read the partition table of @disk into @out. A disk without one (no MBR
 * signature, or entries no MBR has) gives PARTITION_NONE quietly. Faults of
 * the table (a damaged GPT header, one not at the last sector, an EBR chain
 * that loops, a partition past the disk's end or over another, too many
 * partitions, an entry array of absurd size) are told to @disk->fault and
 * leave out what they concern. Memory: at most PARTITION_GPT_ARRAY_MAX bytes
 * for the call, freed before it returns.
 * Returns 0; -EINVAL for a sector size other than 512 or 4096; -ENOMEM; or
 * a failed read's errno and message in @err.
 */
int partition_read_table(const struct partition_disk *disk, struct partition_table *out,
			 struct error *err);

/**
 * The CRC32 of GPT (IEEE 802.3, reflected, as zlib's crc32) of @len bytes at
 * @data, going on from @crc (0 to start).
 */
uint32_t partition_crc32(uint32_t crc, const void *data, size_t len);

#endif
