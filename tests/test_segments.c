/*
 * Unit tests of core/segments: a read described as pieces. Runs of a file
 * long enough stay runs (joined when they follow each other), short ones and
 * bytes made in memory go to the list's own bytes, zeros are joined, a full
 * list takes the rest in its bytes, and a flat list is the read itself. The
 * file's content is made and checked by the test.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "segments.h"
#include "support.h"

#define FILE_SIZE (1024 * 1024)

struct fixture {
	char *dir;
	const char *path;
	int fd;
	uint8_t *bytes; /* the file's content */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = support_tempdir();
	f->path = support_path(f->dir, "source.bin");
	f->bytes = malloc(FILE_SIZE);
	assert_non_null(f->bytes);
	support_fill(f->bytes, FILE_SIZE, 5);
	f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL, 0644);
	assert_true(f->fd >= 0);
	assert_int_equal(write(f->fd, f->bytes, FILE_SIZE), FILE_SIZE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->fd);
	support_remove_tree(f->dir);
	free(f->bytes);
	free(f);
	return 0;
}

static void test_pieces(void **state)
{
	struct fixture *f = *state;
	static const uint8_t header[] = "conectix";
	uint8_t expect[40000], got[40000], *made;
	struct segments s;
	struct error err;
	size_t at = 0;

	assert_int_equal(segments_init(&s, sizeof(expect), 4096), 0);
	assert_int_equal(segments_reset(&s, sizeof(expect)), 0);
	/* Bytes by reference. */
	segments_bytes(&s, header, 8);
	memcpy(expect + at, header, 8), at += 8;
	/* Two runs that follow each other in the file: one piece. */
	assert_int_equal(segments_file(&s, f->fd, 8192, 5000, f->path, &err), 0);
	assert_int_equal(segments_file(&s, f->fd, 13192, 6000, f->path, &err), 0);
	memcpy(expect + at, f->bytes + 8192, 11000), at += 11000;
	/* A run elsewhere: a piece of its own. */
	assert_int_equal(segments_file(&s, f->fd, 100000, 4096, f->path, &err), 0);
	memcpy(expect + at, f->bytes + 100000, 4096), at += 4096;
	/* Zeros, joined. */
	segments_zero(&s, 1000);
	segments_zero(&s, 24);
	memset(expect + at, 0, 1024), at += 1024;
	/* A short run, then bytes made: read into the list's bytes, one piece. */
	assert_int_equal(segments_file(&s, f->fd, 7, 100, f->path, &err), 0);
	memcpy(expect + at, f->bytes + 7, 100), at += 100;
	made = segments_make(&s, 50);
	memset(made, 0xAB, 50);
	memset(expect + at, 0xAB, 50), at += 50;
	/* A run of exactly the threshold. */
	assert_int_equal(segments_file(&s, f->fd, 500000, 4096, f->path, &err), 0);
	memcpy(expect + at, f->bytes + 500000, 4096), at += 4096;

	assert_int_equal(s.count, 6);
	assert_int_equal(s.items[0].kind, SEGMENT_BYTES);
	assert_int_equal(s.items[1].kind, SEGMENT_FILE);
	assert_int_equal(s.items[1].len, 11000);
	assert_int_equal(s.items[2].kind, SEGMENT_FILE);
	assert_int_equal(s.items[3].kind, SEGMENT_ZERO);
	assert_int_equal(s.items[3].len, 1024);
	assert_int_equal(s.items[4].kind, SEGMENT_BYTES);
	assert_int_equal(s.items[4].len, 150);
	assert_int_equal(s.items[5].kind, SEGMENT_FILE);
	assert_true(segments_have_file(&s));
	support_put_together(&s, got, at);
	assert_memory_equal(got, expect, at);

	/* Reset: empty again, nothing allocated. */
	assert_int_equal(segments_reset(&s, 100), 0);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.total, 0);
	assert_false(segments_have_file(&s));
	segments_free(&s);
}

/* More pieces than the list holds: what comes after goes to its bytes, in order. */
static void test_full_list(void **state)
{
	struct fixture *f = *state;
	size_t len = 600 * 4096;
	uint8_t *expect = malloc(len), *got = malloc(len);
	struct segments s;
	struct error err;

	assert_non_null(expect);
	assert_non_null(got);
	assert_int_equal(segments_init(&s, len, 4096), 0);
	/* 300 runs of 4 KiB of the file (every other page of its first 960 KiB)... */
	for (size_t i = 0; i < 300; i++) {
		uint64_t pos = i % 120 * 8192;

		assert_int_equal(segments_file(&s, f->fd, pos, 4096, f->path, &err), 0);
		memcpy(expect + i * 8192, f->bytes + pos, 4096);
		/* ...with zeros between them. */
		segments_zero(&s, 4096);
		memset(expect + i * 8192 + 4096, 0, 4096);
	}
	assert_true(s.count <= s.cap);
	assert_int_equal(s.items[s.count - 1].kind, SEGMENT_BYTES);
	support_put_together(&s, got, len);
	assert_memory_equal(got, expect, len);
	segments_free(&s);
	free(expect);
	free(got);
}

/* A flat list is the read: every piece copied or read in place. */
static void test_flat(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[20000], expect[20000];
	struct segments s;
	struct error err;

	memset(buf, 0xEE, sizeof(buf));
	segments_init_flat(&s, buf, sizeof(buf));
	segments_bytes(&s, "abc", 3);
	assert_int_equal(segments_file(&s, f->fd, 4096, 10000, f->path, &err), 0);
	segments_zero(&s, 5000);
	memset(segments_make(&s, 4997), 0x11, 4997);
	memcpy(expect, "abc", 3);
	memcpy(expect + 3, f->bytes + 4096, 10000);
	memset(expect + 10003, 0, 5000);
	memset(expect + 15003, 0x11, 4997);
	assert_memory_equal(buf, expect, sizeof(buf));
	assert_int_equal(s.count, 0);
	assert_int_equal(s.total, sizeof(buf));
	segments_free(&s);
}

/* A file shorter than the run: -EIO naming it, as every short read of a source. */
static void test_short_file(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[8192];
	struct segments s;
	struct error err;

	segments_init_flat(&s, buf, sizeof(buf));
	assert_int_equal(segments_file(&s, f->fd, FILE_SIZE - 100, 8192, f->path, &err), -EIO);
	assert_non_null(strstr(error_message(&err), f->path));
	assert_non_null(strstr(error_message(&err), "ends before byte"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_pieces),
		T(test_full_list),
		T(test_flat),
		T(test_short_file),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
