#include "support.h"
#include "segments.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

char *support_tempdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir;

	if (!base || !*base)
		base = "/tmp";
	assert_true(asprintf(&dir, "%s/impex-unit-XXXXXX", base) > 0);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void support_remove_tree(char *dir)
{
	if (!dir)
		return;
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

const char *support_path(const char *dir, const char *name)
{
	static char slots[8][4096];
	static int next;
	char *out = slots[next++ % 8];

	snprintf(out, sizeof(slots[0]), "%s/%s", dir, name);
	return out;
}

void support_fill(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)(x | 1);
	}
}

void support_read(const char *path, uint64_t offset, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)offset), (ssize_t)len);
	close(fd);
}

void support_patch(const char *path, uint64_t offset, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)offset), (ssize_t)len);
	close(fd);
}

uint32_t support_be32(const char *path, uint64_t offset)
{
	uint8_t b[4];

	support_read(path, offset, b, 4);
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

uint64_t support_be64(const char *path, uint64_t offset)
{
	return ((uint64_t)support_be32(path, offset) << 32) | support_be32(path, offset + 4);
}

uint64_t support_file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

void support_fix_header_checksum(const char *path)
{
	uint8_t header[1024];
	uint32_t sum;

	support_read(path, 512, header, sizeof(header));
	sum = support_checksum(header, sizeof(header), 36);
	header[36] = (uint8_t)(sum >> 24);
	header[37] = (uint8_t)(sum >> 16);
	header[38] = (uint8_t)(sum >> 8);
	header[39] = (uint8_t)sum;
	support_patch(path, 512, header, sizeof(header));
}

int support_setup_dir(void **state)
{
	*state = support_tempdir();
	return 0;
}

int support_teardown_dir(void **state)
{
	support_remove_tree(*state);
	return 0;
}

uint32_t support_checksum(const uint8_t *raw, size_t len, size_t at)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < at || i >= at + 4)
			sum += raw[i];
	return ~sum;
}

void support_write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

char *support_read_text(const char *path)
{
	uint64_t size = support_file_size(path);
	char *text = calloc(1, size + 1);

	assert_non_null(text);
	support_read(path, 0, text, size);
	return text;
}

void support_put_together(const struct segments *segs, uint8_t *out, size_t len)
{
	size_t at = 0;

	for (size_t i = 0; i < segs->count; i++) {
		const struct segment *p = &segs->items[i];

		assert_true(at + p->len <= len);
		if (p->kind == SEGMENT_FILE)
			assert_int_equal(pread(p->fd, out + at, p->len, (off_t)p->pos),
					 (ssize_t)p->len);
		else if (p->kind == SEGMENT_BYTES)
			memcpy(out + at, p->bytes, p->len);
		else
			memset(out + at, 0, p->len);
		at += p->len;
	}
	assert_int_equal(at, len);
	assert_int_equal(segs->total, len);
}
