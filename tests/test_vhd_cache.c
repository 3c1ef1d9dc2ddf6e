/*
 * test_vhd_cache.c - the record cache of the disk formats (core/vhd_cache)
 * and its use by core/vhd and core/vhdx: a reader that misses reads its
 * record holding only its slot's lock, so that a reader of another slot is
 * never kept waiting by that read.
 *
 * A read that blocks cannot be had from a real file, so pread64 is wrapped
 * (-Wl,--wrap): armed with a descriptor and an offset, the wrapper holds the
 * first read there until the test says that the other reader is done. No
 * timing decides anything: the other reader either finishes while the first
 * read is held (pass), or cannot (a file-wide lock), and the held read gives
 * up after GATE_GUARD_SECONDS so that the test fails instead of hanging.
 */
#include "error.h"
#include "support.h"
#include "vhd.h"
#include "vhd_cache.h"
#include "vhdx.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define MIB		   (1024ull * 1024)
#define GATE_GUARD_SECONDS 30

/* ---- a read that waits for the other reader ---- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	bool armed;	     /* hold the next read of fd at offset */
	int fd;
	uint64_t offset;
	bool entered;	 /* the held read has begun */
	bool other_done; /* the other reader has finished */
	bool saw_other;	 /* ... while the read was held */
} gate;

static void gate_setup(void)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&gate.lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&gate.cond, &attr);
	pthread_condattr_destroy(&attr);
}

static void gate_arm(int fd, uint64_t offset)
{
	pthread_mutex_lock(&gate.lock);
	gate.armed = true;
	gate.fd = fd;
	gate.offset = offset;
	gate.entered = gate.other_done = gate.saw_other = false;
	pthread_mutex_unlock(&gate.lock);
}

/* Wait on the gate's condition until @flag is set, at most GATE_GUARD_SECONDS. Called locked. */
static bool gate_wait(const bool *flag)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += GATE_GUARD_SECONDS;
	while (!*flag)
		if (pthread_cond_timedwait(&gate.cond, &gate.lock, &deadline) == ETIMEDOUT)
			break;
	return *flag;
}

/* The held side: called in place of a read (the wrapper) or a fill. */
static void gate_hold(void)
{
	gate.armed = false;
	gate.entered = true;
	pthread_cond_broadcast(&gate.cond);
	gate.saw_other = gate_wait(&gate.other_done);
}

ssize_t __real_pread64(int fd, void *buf, size_t n, off_t offset);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t offset);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t offset)
{
	pthread_mutex_lock(&gate.lock);
	if (gate.armed && fd == gate.fd && (uint64_t)offset == gate.offset)
		gate_hold();
	pthread_mutex_unlock(&gate.lock);
	return __real_pread64(fd, buf, n, offset);
}

/* The other reader: wait until the held read has begun, run @other, say it is done. */
static void while_held(void (*other)(void *ctx), void *ctx)
{
	bool entered;

	pthread_mutex_lock(&gate.lock);
	entered = gate_wait(&gate.entered);
	pthread_mutex_unlock(&gate.lock);
	assert_true(entered);
	other(ctx);
	pthread_mutex_lock(&gate.lock);
	gate.other_done = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

/* ---- the cache alone ---- */

struct counting {
	int fills;
	int fail; /* fail the next fill with this errno */
	bool hold;
};

static int fill_key(void *ctx, uint64_t key, void *record, struct error *err)
{
	struct counting *c = ctx;

	c->fills++;
	if (c->hold) {
		pthread_mutex_lock(&gate.lock);
		gate_hold();
		pthread_mutex_unlock(&gate.lock);
	}
	if (c->fail) {
		int code = c->fail;

		c->fail = 0;
		return error_set(err, code, "cannot read record %llu", (unsigned long long)key);
	}
	memset(record, (int)(key & 0xFF), 64);
	return 0;
}

static uint8_t first_byte(struct vhd_cache *cache, uint64_t key, struct counting *c)
{
	const uint8_t *record;
	struct error err;
	uint8_t b;

	assert_int_equal(vhd_cache_get(cache, key, fill_key, c, &record, &err), 0);
	b = record[0];
	vhd_cache_put(cache, key);
	return b;
}

static void test_cache_budget(void **state)
{
	struct vhd_cache cache;
	size_t slot = sizeof(struct vhd_cache_slot);

	(void)state;
	/* As many slots as the budget holds, bookkeeping included. */
	assert_int_equal(vhd_cache_init(&cache, 64 * 1024, 512, 1u << 20), 0);
	assert_int_equal(cache.slots, 64 * 1024 / (slot + 512));
	assert_true(cache.slots * (slot + 512) <= 64 * 1024);
	vhd_cache_release(&cache);
	/* No more slots than records. */
	assert_int_equal(vhd_cache_init(&cache, 64 * 1024, 512, 3), 0);
	assert_int_equal(cache.slots, 3);
	vhd_cache_release(&cache);
	/* At least one, whatever the budget. */
	assert_int_equal(vhd_cache_init(&cache, 100, 4096, 10), 0);
	assert_int_equal(cache.slots, 1);
	vhd_cache_release(&cache);
	/* No records, no slots: updates and drops do nothing. */
	assert_int_equal(vhd_cache_init(&cache, 64 * 1024, 512, 0), 0);
	assert_int_equal(cache.slots, 0);
	vhd_cache_update(&cache, 7, 0, "x", 1);
	vhd_cache_drop(&cache);
	vhd_cache_release(&cache);
}

static void test_cache_records(void **state)
{
	struct counting c = {0};
	struct vhd_cache cache;
	const uint8_t *record;
	struct error err;
	uint8_t byte = 0xEE;

	(void)state;
	assert_int_equal(vhd_cache_init(&cache, 4 * (sizeof(struct vhd_cache_slot) + 64), 64, 100),
			 0);
	assert_int_equal(cache.slots, 4);
	assert_int_equal(first_byte(&cache, 5, &c), 5);
	assert_int_equal(first_byte(&cache, 5, &c), 5);
	assert_int_equal(c.fills, 1);
	/* 9 takes 5's slot; 6 has its own. */
	assert_int_equal(first_byte(&cache, 9, &c), 9);
	assert_int_equal(first_byte(&cache, 6, &c), 6);
	assert_int_equal(first_byte(&cache, 5, &c), 5);
	assert_int_equal(c.fills, 4);
	/* An update reaches a cached record only. */
	vhd_cache_update(&cache, 5, 0, &byte, 1);
	vhd_cache_update(&cache, 9, 0, &byte, 1);
	assert_int_equal(first_byte(&cache, 5, &c), 0xEE);
	assert_int_equal(c.fills, 4);
	/* A failed fill leaves the slot empty and unlocked. */
	c.fail = EIO;
	assert_int_equal(vhd_cache_get(&cache, 13, fill_key, &c, &record, &err), -EIO);
	assert_string_equal(err.message, "cannot read record 13");
	assert_int_equal(first_byte(&cache, 13, &c), 13);
	assert_int_equal(c.fills, 6);
	/* A drop forgets everything. */
	vhd_cache_drop(&cache);
	assert_int_equal(first_byte(&cache, 6, &c), 6);
	assert_int_equal(c.fills, 7);
	vhd_cache_release(&cache);
}

struct cache_reader {
	struct vhd_cache *cache;
	struct counting *c;
	uint64_t key;
	uint8_t byte;
};

static void *read_record(void *arg)
{
	struct cache_reader *r = arg;

	r->byte = first_byte(r->cache, r->key, r->c);
	return NULL;
}

static void read_record_other(void *arg)
{
	read_record(arg);
}

static void test_cache_miss_waits_alone(void **state)
{
	struct counting held = {.hold = true}, plain = {0};
	struct vhd_cache cache;
	struct cache_reader a, b;
	pthread_t thread;

	(void)state;
	assert_int_equal(vhd_cache_init(&cache, 64 * 1024, 64, 100), 0);
	gate_arm(-1, 0);
	a = (struct cache_reader){&cache, &held, 1, 0};
	b = (struct cache_reader){&cache, &plain, 2, 0};
	assert_int_equal(pthread_create(&thread, NULL, read_record, &a), 0);
	while_held(read_record_other, &b);
	pthread_join(thread, NULL);
	assert_true(gate.saw_other);
	assert_int_equal(a.byte, 1);
	assert_int_equal(b.byte, 2);
	vhd_cache_release(&cache);
}

/* ---- through the formats ---- */

struct map_reader {
	struct vhd *vhd;
	struct vhdx *vhdx;
	uint64_t sector;
	struct vhd_extent ext;
	int rc;
};

static void *map_sector(void *arg)
{
	struct map_reader *r = arg;
	struct error err;

	r->rc = r->vhd ? vhd_map(r->vhd, r->sector, 1, &r->ext, &err)
		       : vhdx_map(r->vhdx, r->sector, 1, &r->ext, &err);
	if (r->rc < 0)
		print_error("map of sector %llu: %s\n", (unsigned long long)r->sector, err.message);
	return NULL;
}

static void map_sector_other(void *arg)
{
	map_sector(arg);
}

/* Map @a's sector in a thread whose read at @offset of @fd is held, and @b's meanwhile. */
static void map_beside_held_read(struct map_reader *a, struct map_reader *b, int fd,
				 uint64_t offset)
{
	pthread_t thread;

	gate_arm(fd, offset);
	assert_int_equal(pthread_create(&thread, NULL, map_sector, a), 0);
	while_held(map_sector_other, b);
	pthread_join(thread, NULL);
	assert_int_equal(a->rc, 0);
	assert_int_equal(b->rc, 0);
	/* The other reader finished while the held read waited: no file-wide lock. */
	assert_true(gate.saw_other);
}

static void test_vhd_bitmap_miss(void **state)
{
	const char *dir = *state;
	const char *base = support_path(dir, "base.vhd"), *child = support_path(dir, "child.avhd");
	struct vhd_create_options o = {.type = VHD_TYPE_DYNAMIC, .size = 16 * MIB};
	struct map_reader a = {0}, b = {0};
	struct vhd *vhd = NULL;
	uint8_t sector[512];
	struct error err;

	assert_int_equal(vhd_create(base, &o, &err), 0);
	assert_int_equal(vhd_create_differencing(child, base, NULL, &err), 0);
	/* One sector written in block 0 and one in block 1 (2 MiB blocks). */
	support_fill(sector, sizeof(sector), 1);
	assert_int_equal(vhd_open(&vhd, child, VHD_OPEN_WRITE, &err), 0);
	assert_int_equal(vhd_write(vhd, sector, 512, 0, &err), 0);
	assert_int_equal(vhd_write(vhd, sector, 512, 2 * MIB, &err), 0);
	vhd_close(vhd);
	assert_int_equal(vhd_open(&vhd, child, VHD_OPEN_READ, &err), 0);

	/* Block 0's bitmap read is held; block 1's (another slot) goes on. */
	a = (struct map_reader){.vhd = vhd, .sector = 0};
	b = (struct map_reader){.vhd = vhd, .sector = 2 * MIB / 512};
	map_beside_held_read(&a, &b, vhd_fd(vhd), (uint64_t)vhd_block_offset(vhd, 0));
	assert_int_equal(a.ext.kind, VHD_EXTENT_DATA);
	assert_int_equal(b.ext.kind, VHD_EXTENT_DATA);
	vhd_close(vhd);
}

/* Little-endian BAT entry @index of a VHDX that impexfs made (its BAT at 3 MiB). */
static uint64_t raw_bat_entry(const char *path, uint64_t index)
{
	uint8_t raw[8];
	uint64_t v = 0;

	support_read(path, 3 * MIB + index * 8, raw, sizeof(raw));
	for (int i = 7; i >= 0; i--)
		v = v << 8 | raw[i];
	return v;
}

static void test_vhdx_bitmap_miss(void **state)
{
	const char *dir = *state;
	const char *base = support_path(dir, "base.vhdx"), *child = support_path(dir, "child.avhdx");
	struct vhdx_create_options o = {.type = VHD_TYPE_DYNAMIC, .size = 64 * MIB};
	struct map_reader a, b;
	struct vhdx *vhdx = NULL;
	uint8_t sector[512];
	struct error err;
	uint64_t bitmap;

	assert_int_equal(vhdx_create(base, &o, &err), 0);
	assert_int_equal(vhdx_create_differencing(child, base, NULL, &err), 0);
	/* One sector in block 0 and one in block 1 (2 MiB blocks): both
	 * partially present, their bits in chunk 0's sector bitmap block. */
	support_fill(sector, sizeof(sector), 2);
	assert_int_equal(vhdx_open(&vhdx, child, VHDX_OPEN_WRITE, &err), 0);
	assert_int_equal(vhdx_write(vhdx, sector, 512, 0, &err), 0);
	assert_int_equal(vhdx_write(vhdx, sector, 512, 2 * MIB, &err), 0);
	vhdx_close(vhdx);
	assert_int_equal(vhdx_open(&vhdx, child, VHDX_OPEN_READ, &err), 0);
	assert_int_equal(vhdx_chunk_ratio(vhdx), 2048);
	/* Chunk 0's bitmap entry follows its 2048 payload entries; block 0's
	 * bits are the block's first 512 bytes (4096 sectors). */
	bitmap = raw_bat_entry(child, 2048);
	assert_int_equal(bitmap & 7, VHDX_BITMAP_PRESENT);
	bitmap &= ~(MIB - 1);

	a = (struct map_reader){.vhdx = vhdx, .sector = 0};
	b = (struct map_reader){.vhdx = vhdx, .sector = 2 * MIB / 512};
	map_beside_held_read(&a, &b, vhdx_fd(vhdx), bitmap);
	assert_int_equal(a.ext.kind, VHD_EXTENT_DATA);
	assert_int_equal(b.ext.kind, VHD_EXTENT_DATA);
	vhdx_close(vhdx);
}

static void test_vhdx_bat_page_miss(void **state)
{
	const char *dir = *state;
	const char *path = support_path(dir, "big.vhdx");
	/* 1 MiB blocks: 4097 BAT entries a chunk, so block 4096 is on the BAT's
	 * second page of 4096 entries (32 KiB). */
	struct vhdx_create_options o = {
		.type = VHD_TYPE_DYNAMIC, .size = 16384 * MIB, .block_size = MIB};
	struct map_reader a, b;
	struct vhdx *vhdx = NULL;
	struct error err;

	assert_int_equal(vhdx_create(path, &o, &err), 0);
	assert_int_equal(vhdx_open(&vhdx, path, VHDX_OPEN_READ, &err), 0);
	a = (struct map_reader){.vhdx = vhdx, .sector = 0};
	b = (struct map_reader){.vhdx = vhdx, .sector = 4096 * MIB / 512};
	map_beside_held_read(&a, &b, vhdx_fd(vhdx), 3 * MIB);
	assert_int_equal(a.ext.kind, VHD_EXTENT_ZERO);
	assert_int_equal(b.ext.kind, VHD_EXTENT_ZERO);
	vhdx_close(vhdx);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, support_setup_dir, support_teardown_dir)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_budget),
		cmocka_unit_test(test_cache_records),
		cmocka_unit_test(test_cache_miss_waits_alone),
		T(test_vhd_bitmap_miss),
		T(test_vhdx_bitmap_miss),
		T(test_vhdx_bat_page_miss),
	};

	gate_setup();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
