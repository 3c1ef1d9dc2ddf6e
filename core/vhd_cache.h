/*
 * vhd_cache.h - a cache of equal-sized records read from a disk image (VHD
 * sector bitmaps, VHDX BAT pages and sector bitmaps), within a fixed budget
 * of memory, with one lock per slot.
 *
 * Record @key lives in slot @key mod slots (direct-mapped). A reader takes
 * the slot's lock and, on a miss, reads the record (the fill callback's
 * pread) holding that lock and no other: readers of other slots never wait
 * for that read, a reader of the same slot waits and then finds the record
 * filled. The lock stays held while the reader looks at the record
 * (vhd_cache_get ... vhd_cache_put), which is short and does no I/O.
 * (squashfuse's cache works the same way: the read happens under the
 * entry's own state, outside any cache-wide lock.)
 *
 * Lock order: a fill may take the lock of a slot of another cache (a VHDX
 * bitmap's fill looks up its BAT page); never the other way round.
 */
#ifndef IMPEX_VHD_CACHE_H
#define IMPEX_VHD_CACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct error;

struct vhd_cache_slot {
	pthread_mutex_t lock;
	uint64_t tag; /* guarded by lock: key + 1, 0 for an empty slot */
};

struct vhd_cache {
	/* Set by vhd_cache_init, then read-only. */
	uint32_t slots;
	size_t record_size;
	struct vhd_cache_slot *slot;
	uint8_t *data; /* slot i's record at i * record_size: guarded by slot[i].lock */
};

/**
 * Read the record of @key into @record (record_size bytes). Called with the
 * slot's lock held and no file-wide lock. Returns 0 or a negative errno with
 * a message in @err.
 */
typedef int (*vhd_cache_fill_fn)(void *ctx, uint64_t key, void *record, struct error *err);

/**
 * Make @cache empty, with as many slots of @record_size bytes as @budget
 * bytes hold with their bookkeeping (at least one), but no more than @keys
 * (the records there are: a small disk gets a small cache). @keys 0 makes a
 * cache of no slots, which only vhd_cache_update, vhd_cache_drop and
 * vhd_cache_release may be given. Returns 0 or -ENOMEM (nothing to release).
 */
int vhd_cache_init(struct vhd_cache *cache, size_t budget, size_t record_size, uint64_t keys);

/** Free what vhd_cache_init allocated. No reader may be inside. */
void vhd_cache_release(struct vhd_cache *cache);

/**
 * The record of @key, read by @fill(@ctx, ...) on a miss: *@record points at
 * the slot's bytes, valid until vhd_cache_put(@cache, @key), which the caller
 * must call (the slot's lock is held until then). Returns 0, or the fill's
 * negative errno (the slot is then left empty and unlocked).
 */
int vhd_cache_get(struct vhd_cache *cache, uint64_t key, vhd_cache_fill_fn fill, void *ctx,
		  const uint8_t **record, struct error *err);

/** Release the slot vhd_cache_get returned for @key. */
void vhd_cache_put(struct vhd_cache *cache, uint64_t key);

/**
 * If the record of @key is cached, put @len bytes of @bytes at @offset in it
 * (a writer changed them in the file). Takes the slot's lock.
 */
void vhd_cache_update(struct vhd_cache *cache, uint64_t key, size_t offset, const void *bytes,
		      size_t len);

/** Forget every record (the file changed under them). Takes each slot's lock in turn. */
void vhd_cache_drop(struct vhd_cache *cache);

#endif
