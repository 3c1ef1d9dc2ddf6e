/*
 * pathbuf.c - the growable path buffer (see pathbuf.h for its invariants).
 */
#include "pathbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char pathbuf_empty[1];

void pathbuf_init(struct pathbuf *p)
{
	*p = (struct pathbuf)PATHBUF_INIT;
}

void pathbuf_release(struct pathbuf *p)
{
	if (!p)
		return;
	if (p->alloc)
		free(p->buf);
	pathbuf_init(p);
}

/* Mark @p failed: empty, with the sticky error. */
static int fail(struct pathbuf *p)
{
	pathbuf_release(p);
	p->err = -ENOMEM;
	return p->err;
}

char *pathbuf_detach(struct pathbuf *p)
{
	char *s;

	if (p->err) {
		pathbuf_release(p);
		return NULL;
	}
	s = p->alloc ? p->buf : strdup("");
	pathbuf_init(p);
	return s;
}

void pathbuf_reset(struct pathbuf *p)
{
	p->err = 0;
	pathbuf_truncate(p, 0);
}

void pathbuf_truncate(struct pathbuf *p, size_t len)
{
	if (len > p->len)
		abort(); /* a caller's bug: it never saved that length */
	p->len = len;
	if (p->alloc)
		p->buf[len] = '\0';
}

/* Make room for @more bytes after @p->len and the NUL. Returns 0 or the error. */
static int grow(struct pathbuf *p, size_t more)
{
	size_t need, alloc;
	char *buf;

	if (p->err)
		return p->err;
	if (more > SIZE_MAX - p->len - 1)
		return fail(p);
	need = p->len + more + 1;
	if (need <= p->alloc)
		return 0;
	alloc = p->alloc ? p->alloc : 64;
	while (alloc < need)
		alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
	buf = realloc(p->alloc ? p->buf : NULL, alloc);
	if (!buf)
		return fail(p);
	if (!p->alloc)
		buf[0] = '\0';
	p->buf = buf;
	p->alloc = alloc;
	return 0;
}

int pathbuf_add(struct pathbuf *p, const char *text, size_t len)
{
	int rc = grow(p, len);

	if (rc < 0)
		return rc;
	memcpy(p->buf + p->len, text, len);
	p->len += len;
	p->buf[p->len] = '\0';
	return 0;
}

int pathbuf_adds(struct pathbuf *p, const char *text)
{
	return pathbuf_add(p, text, strlen(text));
}

/* Append formatted text: vsnprintf into the room there is, and again once grown. */
static int vaddf(struct pathbuf *p, const char *fmt, va_list ap)
{
	va_list again;
	int n, rc;

	if (p->err)
		return p->err;
	va_copy(again, ap);
	n = vsnprintf(p->alloc ? p->buf + p->len : NULL, p->alloc ? p->alloc - p->len : 0, fmt, ap);
	if (n < 0) {
		va_end(again);
		return fail(p);
	}
	if (p->len + (size_t)n + 1 > p->alloc) {
		rc = grow(p, (size_t)n);
		if (rc == 0)
			vsnprintf(p->buf + p->len, p->alloc - p->len, fmt, again);
		va_end(again);
		if (rc < 0)
			return rc;
	} else {
		va_end(again);
	}
	p->len += (size_t)n;
	return 0;
}

int pathbuf_addf(struct pathbuf *p, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vaddf(p, fmt, ap);
	va_end(ap);
	return rc;
}

int pathbuf_setf(struct pathbuf *p, const char *fmt, ...)
{
	va_list ap;
	int rc;

	pathbuf_reset(p);
	va_start(ap, fmt);
	rc = vaddf(p, fmt, ap);
	va_end(ap);
	return rc;
}

int pathbuf_join(struct pathbuf *p, const char *name)
{
	if (p->err)
		return p->err;
	if (p->len && p->buf[p->len - 1] != '/' && pathbuf_add(p, "/", 1) < 0)
		return p->err;
	return pathbuf_adds(p, name);
}

int pathbuf_copy_out(const struct pathbuf *p, char *out, size_t cap)
{
	if (cap)
		out[0] = '\0';
	if (p->err)
		return p->err;
	if (p->len >= cap)
		return -ENAMETOOLONG;
	memcpy(out, p->buf, p->len + 1);
	return 0;
}
