/*
 * segments.c - a read described as its pieces (see segments.h).
 */
#include "segments.h"

#include "fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Pieces a list holds; what comes after the last but one goes to scratch. */
#define SEGMENTS_CAP 256u

int segments_init(struct segments *s, size_t max_len, size_t min_splice)
{
	memset(s, 0, sizeof(*s));
	s->owned = true;
	s->min_splice = min_splice ? min_splice : SEGMENTS_MIN_SPLICE;
	s->items = calloc(SEGMENTS_CAP, sizeof(*s->items));
	if (!s->items)
		return -ENOMEM;
	s->cap = SEGMENTS_CAP;
	return segments_reset(s, max_len);
}

void segments_init_flat(struct segments *s, void *buf, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->flat = true;
	s->scratch = buf;
	s->scratch_cap = len;
}

void segments_free(struct segments *s)
{
	if (s->owned) {
		free(s->items);
		free(s->scratch);
	}
	memset(s, 0, sizeof(*s));
}

int segments_reset(struct segments *s, size_t len)
{
	s->count = 0;
	s->used = 0;
	s->total = 0;
	if (s->flat || len <= s->scratch_cap)
		return 0;
	/* Grows to the largest read met: a few times in a thread's life. */
	free(s->scratch);
	s->scratch = malloc(len);
	s->scratch_cap = s->scratch ? len : 0;
	return s->scratch ? 0 : -ENOMEM;
}

/* The last piece, if it is of @kind. */
static struct segment *last_of(struct segments *s, enum segment_kind kind)
{
	struct segment *last = s->count ? &s->items[s->count - 1] : NULL;

	return last && last->kind == kind ? last : NULL;
}

/* Whether new pieces go to scratch: flat, or a single slot left for them. */
static bool to_scratch(const struct segments *s)
{
	return s->flat || s->count + 1 >= s->cap;
}

/* @len bytes of scratch taken for bytes that follow the list's last ones. */
static uint8_t *take_scratch(struct segments *s, size_t len)
{
	uint8_t *at = s->scratch + s->used;
	struct segment *last = last_of(s, SEGMENT_BYTES);

	/* segments_reset sized scratch for the whole read: more is a caller's bug,
	 * which must not write past the buffer. */
	if (len > s->scratch_cap - s->used)
		abort();
	s->used += len;
	s->total += len;
	if (s->flat)
		return at;
	if (last && last->bytes + last->len == at) {
		last->len += len;
	} else {
		s->items[s->count++] =
			(struct segment){.kind = SEGMENT_BYTES, .fd = -1, .bytes = at, .len = len};
	}
	return at;
}

int segments_file(struct segments *s, int fd, uint64_t pos, size_t len, const char *path,
		  struct error *err)
{
	struct segment *last;

	if (len == 0)
		return 0;
	if (to_scratch(s) || len < s->min_splice)
		return fsutil_pread_named(fd, take_scratch(s, len), len, pos, path, err);
	s->total += len;
	last = last_of(s, SEGMENT_FILE);
	if (last && last->fd == fd && last->pos + last->len == pos) {
		last->len += len;
		return 0;
	}
	s->items[s->count++] = (struct segment){.kind = SEGMENT_FILE, .fd = fd, .pos = pos, .len = len};
	return 0;
}

void segments_bytes(struct segments *s, const void *bytes, size_t len)
{
	struct segment *last;

	if (len == 0)
		return;
	if (to_scratch(s)) {
		memcpy(take_scratch(s, len), bytes, len);
		return;
	}
	s->total += len;
	last = last_of(s, SEGMENT_BYTES);
	if (last && last->bytes + last->len == (const uint8_t *)bytes) {
		last->len += len;
		return;
	}
	s->items[s->count++] =
		(struct segment){.kind = SEGMENT_BYTES, .fd = -1, .bytes = bytes, .len = len};
}

uint8_t *segments_make(struct segments *s, size_t len)
{
	return take_scratch(s, len);
}

void segments_zero(struct segments *s, size_t len)
{
	struct segment *last;

	if (len == 0)
		return;
	if (to_scratch(s)) {
		memset(take_scratch(s, len), 0, len);
		return;
	}
	s->total += len;
	last = last_of(s, SEGMENT_ZERO);
	if (last) {
		last->len += len;
		return;
	}
	s->items[s->count++] = (struct segment){.kind = SEGMENT_ZERO, .fd = -1, .len = len};
}

bool segments_have_file(const struct segments *s)
{
	for (size_t i = 0; i < s->count; i++)
		if (s->items[i].kind == SEGMENT_FILE)
			return true;
	return false;
}
