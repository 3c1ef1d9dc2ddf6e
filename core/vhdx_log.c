#include "vhdx_log.h"

#include "bigendian.h"
#include "crc32c.h"
#include "error.h"
#include "fsutil.h"
#include "vhd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entry header fields ([MS-VHDX] 2.3.1.1), little-endian. */
#define ENTRY_CHECKSUM_AT  4
#define ENTRY_HEADER_SIZE  64
#define DESCRIPTOR_SIZE	   32
#define FIRST_SECTOR_DESCS ((VHDX_LOG_SECTOR - ENTRY_HEADER_SIZE) / DESCRIPTOR_SIZE) /* 126 */
#define OTHER_SECTOR_DESCS (VHDX_LOG_SECTOR / DESCRIPTOR_SIZE)			     /* 128 */
#define LOG_MIB		   (1024u * 1024)
#define NO_DATA		   SIZE_MAX

/* ---- the overlay ---- */

/* One recorded write, in the order recorded (later wins). */
struct overlay_op {
	uint64_t offset;
	uint64_t len;
	size_t data_at; /* into the arena, NO_DATA for zeros */
};

/* One resolved run: the bytes of one op (from op_offset within it). */
struct overlay_run {
	uint64_t offset;
	uint64_t len;
	size_t data_at; /* arena offset of the run's first byte, NO_DATA for zeros */
};

/* Built by one thread (the replay), then sealed: from then on read-only, for
 * any number of threads (vhdx_overlay_apply). No lock. */
struct vhdx_overlay {
	uint64_t file_size;
	bool sealed;
	struct overlay_op *ops;
	size_t op_count, op_cap;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	struct overlay_run *runs;
	size_t run_count;
};

struct vhdx_overlay *vhdx_overlay_new(uint64_t file_size)
{
	struct vhdx_overlay *o = calloc(1, sizeof(*o));

	if (o)
		o->file_size = file_size;
	return o;
}

void vhdx_overlay_free(struct vhdx_overlay *o)
{
	if (!o)
		return;
	free(o->ops);
	free(o->arena);
	free(o->runs);
	free(o);
}

uint64_t vhdx_overlay_file_size(const struct vhdx_overlay *o)
{
	return o->file_size;
}

static int grow(void **p, size_t *cap, size_t need, size_t unit)
{
	size_t n = *cap ? *cap : 16;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > SIZE_MAX / 2 / unit)
			return -ENOMEM;
		n *= 2;
	}
	q = realloc(*p, n * unit);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

int vhdx_overlay_add(struct vhdx_overlay *o, uint64_t offset, const void *data, size_t len)
{
	struct overlay_op *op;

	if (o->sealed || (uint64_t)len > UINT64_MAX - offset)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (grow((void **)&o->ops, &o->op_cap, o->op_count + 1, sizeof(*o->ops)) < 0)
		return -ENOMEM;
	op = &o->ops[o->op_count];
	op->offset = offset;
	op->len = len;
	op->data_at = NO_DATA;
	if (data) {
		if (len > SIZE_MAX - o->arena_len ||
		    grow((void **)&o->arena, &o->arena_cap, o->arena_len + len, 1) < 0)
			return -ENOMEM;
		memcpy(o->arena + o->arena_len, data, len);
		op->data_at = o->arena_len;
		o->arena_len += len;
	}
	o->op_count++;
	if (offset + len > o->file_size)
		o->file_size = offset + len;
	return 0;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Op indices sorted by start offset (then index); @ctx is the op array. */
static int compare_op_start(const void *a, const void *b, void *ctx)
{
	const struct overlay_op *ops = ctx;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	uint64_t sx = ops[x].offset, sy = ops[y].offset;

	if (sx != sy)
		return sx < sy ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* A max-heap of op indices: the latest op on top. */
static void heap_push(size_t *heap, size_t *n, size_t v)
{
	size_t i = (*n)++;

	heap[i] = v;
	while (i > 0 && heap[(i - 1) / 2] < heap[i]) {
		size_t parent = (i - 1) / 2, t = heap[parent];

		heap[parent] = heap[i];
		heap[i] = t;
		i = parent;
	}
}

static void heap_pop(size_t *heap, size_t *n)
{
	size_t i = 0;

	heap[0] = heap[--(*n)];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, big = i, t;

		if (l < *n && heap[l] > heap[big])
			big = l;
		if (r < *n && heap[r] > heap[big])
			big = r;
		if (big == i)
			break;
		t = heap[i];
		heap[i] = heap[big];
		heap[big] = t;
		i = big;
	}
}

/*
 * A sweep over the elementary intervals between all op boundaries: in each,
 * the latest op that covers it wins. Kept is a heap of the ops begun so far,
 * those that ended dropped lazily when they come to the top. O(n log n).
 */
int vhdx_overlay_seal(struct vhdx_overlay *o)
{
	uint64_t *bounds = NULL;
	size_t *order = NULL, *heap = NULL;
	size_t nb = 0, heap_n = 0, next = 0, runs_cap = 0;
	int rc = -ENOMEM;

	if (o->sealed)
		return 0;
	if (o->op_count == 0) {
		o->sealed = true;
		return 0;
	}
	bounds = malloc(2 * o->op_count * sizeof(*bounds));
	order = malloc(o->op_count * sizeof(*order));
	heap = malloc(o->op_count * sizeof(*heap));
	if (!bounds || !order || !heap)
		goto out;
	for (size_t i = 0; i < o->op_count; i++) {
		bounds[nb++] = o->ops[i].offset;
		bounds[nb++] = o->ops[i].offset + o->ops[i].len;
		order[i] = i;
	}
	qsort(bounds, nb, sizeof(*bounds), compare_u64);
	qsort_r(order, o->op_count, sizeof(*order), compare_op_start, o->ops);
	for (size_t b = 0; b + 1 < nb; b++) {
		uint64_t start = bounds[b], end = bounds[b + 1];
		const struct overlay_op *op;
		struct overlay_run *last;
		size_t data_at;

		if (start == end)
			continue;
		while (next < o->op_count && o->ops[order[next]].offset <= start)
			heap_push(heap, &heap_n, order[next++]);
		while (heap_n && o->ops[heap[0]].offset + o->ops[heap[0]].len <= start)
			heap_pop(heap, &heap_n);
		if (!heap_n)
			continue;
		op = &o->ops[heap[0]];
		data_at = op->data_at == NO_DATA ? NO_DATA : op->data_at + (start - op->offset);
		last = o->run_count ? &o->runs[o->run_count - 1] : NULL;
		if (last && last->offset + last->len == start &&
		    ((last->data_at == NO_DATA && data_at == NO_DATA) ||
		     (last->data_at != NO_DATA && data_at != NO_DATA &&
		      last->data_at + last->len == data_at))) {
			last->len += end - start;
			continue;
		}
		if (grow((void **)&o->runs, &runs_cap, o->run_count + 1, sizeof(*o->runs)) < 0)
			goto out;
		o->runs[o->run_count++] = (struct overlay_run){start, end - start, data_at};
	}
	o->sealed = true;
	free(o->ops);
	o->ops = NULL;
	o->op_count = o->op_cap = 0;
	rc = 0;
out:
	free(bounds);
	free(order);
	free(heap);
	return rc;
}

/* Index of the first run that ends after @offset. */
static size_t first_run_after(const struct vhdx_overlay *o, uint64_t offset)
{
	size_t lo = 0, hi = o->run_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (o->runs[mid].offset + o->runs[mid].len <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int vhdx_overlay_apply(const struct vhdx_overlay *o, uint8_t *buf, size_t len, uint64_t offset)
{
	uint64_t end = offset + len;

	if (!o->sealed)
		return -EINVAL;
	for (size_t i = first_run_after(o, offset); i < o->run_count; i++) {
		const struct overlay_run *r = &o->runs[i];
		uint64_t from, to;

		if (r->offset >= end)
			break;
		from = r->offset > offset ? r->offset : offset;
		to = r->offset + r->len < end ? r->offset + r->len : end;
		if (r->data_at == NO_DATA)
			memset(buf + (from - offset), 0, (size_t)(to - from));
		else
			memcpy(buf + (from - offset), o->arena + r->data_at + (from - r->offset),
			       (size_t)(to - from));
	}
	return 0;
}

int vhdx_overlay_foreach(const struct vhdx_overlay *o,
			 int (*fn)(void *ctx, uint64_t offset, uint64_t len, const uint8_t *data),
			 void *ctx)
{
	if (!o->sealed)
		return -EINVAL;
	for (size_t i = 0; i < o->run_count; i++) {
		const struct overlay_run *r = &o->runs[i];
		int rc = fn(ctx, r->offset, r->len,
			    r->data_at == NO_DATA ? NULL : o->arena + r->data_at);

		if (rc)
			return rc;
	}
	return 0;
}

/* ---- scanning the log ---- */

/* What is known of the entry starting at one log sector. */
struct slot {
	uint64_t seq;	  /* 0: no valid entry starts here */
	uint32_t sectors; /* 0: not evaluated yet */
	uint32_t tail;	  /* the entry's Tail, in sectors */
};

struct scan {
	const struct vhdx_log_params *p;
	uint32_t total; /* sectors in the log */
	struct slot *slots;
	char reason[256]; /* why the first entry of our LogGuid was refused */
	uint8_t header[VHDX_LOG_SECTOR];
	uint8_t sector[VHDX_LOG_SECTOR];
};

static int read_sector(struct scan *s, uint32_t index, uint8_t *buf, struct error *err)
{
	uint64_t at = s->p->log_offset + (uint64_t)(index % s->total) * VHDX_LOG_SECTOR;
	int rc = fsutil_pread_full(s->p->fd, buf, VHDX_LOG_SECTOR, at);

	if (rc == -ENODATA)
		return error_set(err, EIO, "'%s' ends inside its log (byte %llu)", s->p->path,
				 (unsigned long long)at);
	if (rc < 0)
		return error_set(err, -rc, "cannot read the log of '%s' at byte %llu: %s",
				 s->p->path, (unsigned long long)at, strerror(-rc));
	return 0;
}

static int refuse(struct scan *s, uint32_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Remember the first reason an entry of our LogGuid was found invalid; returns 1. */
static int refuse(struct scan *s, uint32_t pos, const char *fmt, ...)
{
	if (!s->reason[0]) {
		int n = snprintf(s->reason, sizeof(s->reason), "the entry at log offset %llu ",
				 (unsigned long long)pos * VHDX_LOG_SECTOR);
		va_list ap;

		va_start(ap, fmt);
		if (n > 0 && (size_t)n < sizeof(s->reason))
			vsnprintf(s->reason + n, sizeof(s->reason) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return 1;
}

uint64_t vhdx_log_descriptor_sectors(uint64_t count)
{
	return (ENTRY_HEADER_SIZE + count * DESCRIPTOR_SIZE + VHDX_LOG_SECTOR - 1) /
	       VHDX_LOG_SECTOR;
}

void vhdx_log_descriptor_place(uint64_t i, uint64_t *sector, size_t *at)
{
	if (i < FIRST_SECTOR_DESCS) {
		*sector = 0;
		*at = ENTRY_HEADER_SIZE + (size_t)i * DESCRIPTOR_SIZE;
	} else {
		*sector = 1 + (i - FIRST_SECTOR_DESCS) / OTHER_SECTOR_DESCS;
		*at = (size_t)((i - FIRST_SECTOR_DESCS) % OTHER_SECTOR_DESCS) * DESCRIPTOR_SIZE;
	}
}

/*
 * Check the entry that starts at log sector @pos: 0 valid (its slot filled),
 * 1 not valid (an entry of our LogGuid gets its reason recorded), or a
 * negative errno for a read error. Every sector of the entry is checked for
 * its signature before the next is read, so a scan reads each sector of the
 * log about once: no sector of a valid entry but its first starts with "loge".
 */
static int evaluate(struct scan *s, uint32_t pos, struct error *err)
{
	const struct vhdx_log_params *p = s->p;
	struct slot *slot = &s->slots[pos];
	uint8_t *h = s->header;
	uint32_t length, tail, count, stored, crc, entry_sectors;
	uint64_t seq, flushed, last, desc_sectors, loaded = 0, data_count = 0;
	int rc;

	if (slot->sectors)
		return slot->seq ? 0 : 1;
	slot->sectors = 1;
	slot->seq = 0;
	rc = read_sector(s, pos, h, err);
	if (rc < 0)
		return rc;
	if (memcmp(h, "loge", 4) != 0 || memcmp(h + 32, p->log_guid, 16) != 0)
		return 1; /* not an entry, or a stale one of another LogGuid */
	stored = le32_load(h + ENTRY_CHECKSUM_AT);
	length = le32_load(h + 8);
	tail = le32_load(h + 12);
	seq = le64_load(h + 16);
	count = le32_load(h + 24);
	flushed = le64_load(h + 48);
	last = le64_load(h + 56);
	if (length == 0 || length % VHDX_LOG_SECTOR || length > p->log_length)
		return refuse(s, pos,
			      "has a length of %u bytes (want a multiple of 4 KiB up to the "
			      "log's %u)",
			      length, p->log_length);
	if (tail % VHDX_LOG_SECTOR || tail >= p->log_length)
		return refuse(s, pos, "has a Tail of %u, not a 4 KiB sector of the log", tail);
	if (seq == 0)
		return refuse(s, pos, "has sequence number 0");
	if (flushed % LOG_MIB || last % LOG_MIB)
		return refuse(s, pos,
			      "has a FlushedFileOffset or LastFileOffset that is not a "
			      "whole number of MiB");
	entry_sectors = length / VHDX_LOG_SECTOR;
	desc_sectors = vhdx_log_descriptor_sectors(count);
	if (desc_sectors > entry_sectors)
		return refuse(s, pos, "declares %u descriptors, more than its %u bytes hold", count,
			      length);
	memcpy(s->sector, h, VHDX_LOG_SECTOR);
	memset(s->sector + ENTRY_CHECKSUM_AT, 0, 4);
	crc = crc32c(0, s->sector, VHDX_LOG_SECTOR);
	memcpy(s->sector, h, VHDX_LOG_SECTOR);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t k;
		size_t at;
		const uint8_t *d;

		vhdx_log_descriptor_place(i, &k, &at);
		if (k != loaded) {
			rc = read_sector(s, pos + (uint32_t)k, s->sector, err);
			if (rc < 0)
				return rc;
			crc = crc32c(crc, s->sector, VHDX_LOG_SECTOR);
			loaded = k;
		}
		d = s->sector + at;
		if (memcmp(d, "desc", 4) == 0) {
			data_count++;
		} else if (memcmp(d, "zero", 4) == 0) {
			if (le64_load(d + 8) % VHDX_LOG_SECTOR)
				return refuse(s, pos,
					      "zeroes %llu bytes, not whole 4 KiB sectors "
					      "(descriptor %llu)",
					      (unsigned long long)le64_load(d + 8),
					      (unsigned long long)i);
		} else {
			return refuse(s, pos,
				      "has descriptor %llu without a 'desc' or 'zero' "
				      "signature",
				      (unsigned long long)i);
		}
		if (le64_load(d + 16) % VHDX_LOG_SECTOR)
			return refuse(s, pos,
				      "has descriptor %llu aimed at file offset %llu, not "
				      "a 4 KiB sector",
				      (unsigned long long)i, (unsigned long long)le64_load(d + 16));
		if (le64_load(d + 24) != seq)
			return refuse(s, pos,
				      "has descriptor %llu with sequence number %llu, not "
				      "the entry's %llu",
				      (unsigned long long)i, (unsigned long long)le64_load(d + 24),
				      (unsigned long long)seq);
	}
	if (desc_sectors + data_count != entry_sectors)
		return refuse(s, pos,
			      "is %u bytes long, but its descriptors and data sectors "
			      "take %llu",
			      length,
			      (unsigned long long)((desc_sectors + data_count) * VHDX_LOG_SECTOR));
	for (uint64_t j = 0; j < data_count; j++) {
		rc = read_sector(s, pos + (uint32_t)(desc_sectors + j), s->sector, err);
		if (rc < 0)
			return rc;
		if (memcmp(s->sector, "data", 4) != 0)
			return refuse(s, pos, "has data sector %llu without a 'data' signature",
				      (unsigned long long)j);
		if (le32_load(s->sector + 4) != (uint32_t)(seq >> 32) ||
		    le32_load(s->sector + VHDX_LOG_SECTOR - 4) != (uint32_t)seq)
			return refuse(s, pos, "has data sector %llu of another sequence number",
				      (unsigned long long)j);
		crc = crc32c(crc, s->sector, VHDX_LOG_SECTOR);
	}
	if (crc != stored)
		return refuse(s, pos, "has a wrong checksum (stored 0x%08x, computed 0x%08x)",
			      stored, crc);
	slot->seq = seq;
	slot->sectors = entry_sectors;
	slot->tail = tail / VHDX_LOG_SECTOR;
	return 0;
}

/* The active sequence: entries from the tail to the head. */
struct active {
	uint64_t head_seq;
	uint32_t tail; /* sector of the first entry to replay */
	uint32_t head; /* sector of the head entry */
	uint32_t entries;
};

/*
 * [MS-VHDX] 2.3.3, "find the active sequence": from each candidate tail,
 * extend a sequence while the next entry is valid and numbered one more; the
 * sequence counts if its head's Tail is the start of one of its entries; the
 * one with the highest head sequence number wins.
 */
static int find_active(struct scan *s, struct active *best, struct error *err)
{
	uint32_t *starts = NULL;
	uint32_t cur = 0, old = 0;
	int rc = 0;

	memset(best, 0, sizeof(*best));
	starts = malloc((size_t)s->total * sizeof(*starts));
	if (!starts)
		return error_set(err, ENOMEM, "out of memory for the log of '%s'", s->p->path);
	for (;;) {
		uint32_t n = 0, pos = cur, used = 0;
		uint64_t last_seq = 0;
		bool valid = false;

		for (;;) {
			const struct slot *e;

			rc = evaluate(s, pos, err);
			if (rc < 0)
				goto out;
			e = &s->slots[pos];
			if (rc > 0 || (n && e->seq != last_seq + 1) || e->sectors > s->total - used)
				break;
			starts[n++] = pos;
			used += e->sectors;
			last_seq = e->seq;
			pos = (pos + e->sectors) % s->total;
		}
		rc = 0;
		if (n) {
			const struct slot *head = &s->slots[starts[n - 1]];

			for (uint32_t i = 0; i < n && !valid; i++) {
				if (starts[i] != head->tail)
					continue;
				valid = true;
				if (head->seq > best->head_seq) {
					best->head_seq = head->seq;
					best->tail = starts[i];
					best->head = starts[n - 1];
					best->entries = n - i;
				}
			}
		}
		if (!valid)
			cur = cur + 1 == s->total ? 0 : cur + 1;
		else
			cur = pos;
		if (cur <= old)
			break; /* scanned the whole log (or a sequence went all the way round) */
		old = cur;
	}
out:
	free(starts);
	return rc;
}

struct replay {
	struct scan *s;
	struct vhdx_overlay *o;
	size_t budget;
	struct vhdx_log_info *info;
	uint8_t data[VHDX_LOG_SECTOR];
};

/* Check one descriptor's target: not the file identifier or headers, not the log, not past
 * the entry's LastFileOffset. */
static int check_target(struct replay *r, uint32_t pos, uint64_t seq, uint64_t index,
			uint64_t offset, uint64_t len, uint64_t last, struct error *err)
{
	const struct vhdx_log_params *p = r->s->p;
	const char *what = NULL;

	if (vhd_ranges_overlap(offset, len, 0, VHDX_LOG_PROTECTED_END))
		what = "into the file identifier or the headers";
	else if (vhd_ranges_overlap(offset, len, p->log_offset, p->log_length))
		what = "into the log itself";
	else if (len > last || offset > last - len)
		what = "past the entry's LastFileOffset";
	if (!what)
		return 0;
	return error_set(err, EINVAL,
			 "the log of '%s' writes %s: descriptor %llu of the entry at log offset "
			 "%llu (sequence %llu) is aimed at file offset %llu (%llu bytes)",
			 p->path, what, (unsigned long long)index,
			 (unsigned long long)pos * VHDX_LOG_SECTOR, (unsigned long long)seq,
			 (unsigned long long)offset, (unsigned long long)len);
}

static int charge(struct replay *r, size_t bytes, struct error *err)
{
	if (bytes > VHDX_LOG_MAX_REPLAY_BYTES - r->budget)
		return error_set(err, ENOTSUP,
				 "replaying the log of '%s' would take more than %u MiB of memory "
				 "(impexfs replays logs in memory when reading)",
				 r->s->p->path, VHDX_LOG_MAX_REPLAY_BYTES / LOG_MIB);
	r->budget += bytes;
	return 0;
}

/* Replay the (valid) entry at log sector @pos into the overlay. */
static int replay_entry(struct replay *r, uint32_t pos, struct error *err)
{
	struct scan *s = r->s;
	uint8_t *h = s->header;
	uint64_t seq, last, count, desc_sectors, loaded = 0, data_index = 0;
	int rc;

	rc = read_sector(s, pos, h, err);
	if (rc < 0)
		return rc;
	seq = le64_load(h + 16);
	count = le32_load(h + 24);
	last = le64_load(h + 56);
	if (memcmp(h, "loge", 4) != 0 || seq != s->slots[pos].seq)
		return error_set(err, EIO, "the log of '%s' changed while it was read", s->p->path);
	if (last > VHDX_LOG_MAX_FILE_SIZE)
		return error_set(
			err, EINVAL,
			"the log of '%s' claims a file of %llu bytes (LastFileOffset of the "
			"entry at log offset %llu), more than any VHDX needs",
			s->p->path, (unsigned long long)last,
			(unsigned long long)pos * VHDX_LOG_SECTOR);
	desc_sectors = vhdx_log_descriptor_sectors(count);
	memcpy(s->sector, h, VHDX_LOG_SECTOR);
	for (uint64_t i = 0; i < count; i++) {
		uint8_t d[DESCRIPTOR_SIZE];
		uint64_t k, offset;
		size_t at;

		vhdx_log_descriptor_place(i, &k, &at);
		if (k != loaded) {
			rc = read_sector(s, pos + (uint32_t)k, s->sector, err);
			if (rc < 0)
				return rc;
			loaded = k;
		}
		memcpy(d, s->sector + at, sizeof(d));
		offset = le64_load(d + 16);
		if (memcmp(d, "zero", 4) == 0) {
			uint64_t len = le64_load(d + 8);

			rc = check_target(r, pos, seq, i, offset, len, last, err);
			if (rc == 0 && len)
				rc = charge(r,
					    sizeof(struct overlay_op) + 2 * sizeof(uint64_t) +
						    sizeof(struct overlay_run) + sizeof(size_t),
					    err);
			if (rc < 0)
				return rc;
			if (len && vhdx_overlay_add(r->o, offset, NULL, len) < 0)
				return error_set(err, ENOMEM, "out of memory");
			r->info->zero_ranges++;
			continue;
		}
		if (memcmp(d, "desc", 4) != 0)
			return error_set(err, EIO, "the log of '%s' changed while it was read",
					 s->p->path);
		rc = check_target(r, pos, seq, i, offset, VHDX_LOG_SECTOR, last, err);
		if (rc == 0)
			rc = charge(r,
				    VHDX_LOG_SECTOR + sizeof(struct overlay_op) +
					    2 * sizeof(uint64_t) + sizeof(struct overlay_run) +
					    sizeof(size_t),
				    err);
		if (rc == 0)
			rc = read_sector(s, pos + (uint32_t)(desc_sectors + data_index), r->data,
					 err);
		if (rc < 0)
			return rc;
		data_index++;
		/* The first 8 and the last 4 bytes of the sector are kept in the descriptor. */
		memcpy(r->data, d + 8, 8);
		memcpy(r->data + VHDX_LOG_SECTOR - 4, d + 4, 4);
		if (vhdx_overlay_add(r->o, offset, r->data, VHDX_LOG_SECTOR) < 0)
			return error_set(err, ENOMEM, "out of memory");
		r->info->data_sectors++;
	}
	return 0;
}

int vhdx_log_replay(const struct vhdx_log_params *p, struct vhdx_overlay **out,
		    struct vhdx_log_info *info, struct error *err)
{
	struct vhdx_log_info scratch;
	struct scan *s = NULL;
	struct replay r;
	struct active best;
	uint32_t pos;
	int rc;

	*out = NULL;
	if (!info)
		info = &scratch;
	memset(info, 0, sizeof(*info));
	if (p->log_length == 0 || p->log_length % LOG_MIB || p->log_offset % LOG_MIB ||
	    p->log_offset > p->file_size || p->log_length > p->file_size - p->log_offset)
		return error_set(err, EINVAL,
				 "the log of '%s' (offset %llu, %u bytes) is not whole MiB inside "
				 "the file",
				 p->path, (unsigned long long)p->log_offset, p->log_length);
	s = calloc(1, sizeof(*s));
	if (!s)
		return error_set(err, ENOMEM, "out of memory");
	s->p = p;
	s->total = p->log_length / VHDX_LOG_SECTOR;
	s->slots = calloc(s->total, sizeof(*s->slots));
	memset(&r, 0, sizeof(r));
	r.o = vhdx_overlay_new(p->file_size);
	if (!s->slots || !r.o) {
		rc = error_set(err, ENOMEM, "out of memory for the log of '%s'", p->path);
		goto out;
	}
	rc = find_active(s, &best, err);
	if (rc < 0)
		goto out;
	if (best.entries == 0) {
		rc = error_set(err, EINVAL,
			       "the log of '%s' must be replayed (its header names a LogGuid) but "
			       "holds no valid sequence of entries of that LogGuid%s%s",
			       p->path, s->reason[0] ? ": " : "", s->reason);
		goto out;
	}
	{
		uint8_t *h = s->header;

		rc = read_sector(s, best.head, h, err);
		if (rc < 0)
			goto out;
		info->flushed_file_offset = le64_load(h + 48);
		info->last_file_offset = le64_load(h + 56);
	}
	if (info->flushed_file_offset > p->file_size) {
		rc = error_set(err, EINVAL,
			       "'%s' is truncated: %llu bytes, but its log was written when it "
			       "was at least %llu bytes (FlushedFileOffset)",
			       p->path, (unsigned long long)p->file_size,
			       (unsigned long long)info->flushed_file_offset);
		goto out;
	}
	info->head_sequence = best.head_seq;
	info->tail_offset = best.tail * VHDX_LOG_SECTOR;
	info->head_offset = best.head * VHDX_LOG_SECTOR;
	r.s = s;
	r.info = info;
	pos = best.tail;
	for (uint32_t i = 0; i < best.entries; i++) {
		rc = replay_entry(&r, pos, err);
		if (rc < 0)
			goto out;
		info->entries++;
		pos = (pos + s->slots[pos].sectors) % s->total;
	}
	/* The file is at least as large as the head entry says all structures need. */
	if (info->last_file_offset > r.o->file_size)
		r.o->file_size = info->last_file_offset;
	if (vhdx_overlay_seal(r.o) < 0) {
		rc = error_set(err, ENOMEM, "out of memory for the log of '%s'", p->path);
		goto out;
	}
	*out = r.o;
	r.o = NULL;
	rc = 0;
out:
	vhdx_overlay_free(r.o);
	if (s)
		free(s->slots);
	free(s);
	return rc;
}
