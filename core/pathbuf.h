/*
 * pathbuf.h - a growable path buffer (after git's strbuf), so that a path is
 * never cut short: it is whole, or building it failed and says so.
 *
 * Invariants:
 * - @buf is never NULL and always NUL-terminated; @len is strlen(@buf).
 *   A buffer made by PATHBUF_INIT or pathbuf_init points at a shared empty
 *   string until its first append, so it costs nothing until used.
 * - An append either adds all of its text or fails with -ENOMEM. A failure
 *   is sticky: the buffer then holds the empty string, @err is -ENOMEM, and
 *   every later append does nothing and returns -ENOMEM, so a caller may
 *   build a path in several steps and check once. The empty string names
 *   nothing (open, unlink and rmdir of "" fail with ENOENT), so a path whose
 *   building failed is never taken for a shorter one.
 * - The buffer owns its memory: pathbuf_release frees it and leaves an empty
 *   buffer, pathbuf_detach hands it to the caller.
 * Not thread-safe: a buffer belongs to one thread at a time.
 */
#ifndef IMPEX_PATHBUF_H
#define IMPEX_PATHBUF_H

#include <stddef.h>

struct pathbuf {
	char *buf;
	size_t len;
	size_t alloc; /* bytes allocated at buf, 0 while it is the shared empty string */
	int err;      /* 0, or -ENOMEM once an append failed */
};

extern char pathbuf_empty[];
#define PATHBUF_INIT {.buf = pathbuf_empty, .len = 0, .alloc = 0, .err = 0}

/** Make @p an empty buffer (no allocation). */
void pathbuf_init(struct pathbuf *p);

/** Free @p's memory and leave it empty, its error cleared (NULL-safe). */
void pathbuf_release(struct pathbuf *p);

/**
 * Hand @p's string to the caller, who frees it with free(); @p is left empty.
 * Returns NULL (and releases @p) if building it failed, else a string that is
 * always allocated, even when empty.
 */
char *pathbuf_detach(struct pathbuf *p);

/** Empty @p, keeping its memory and clearing its error. */
void pathbuf_reset(struct pathbuf *p);

/** Cut @p back to its first @len bytes (@len <= @p->len), as saved from an earlier @p->len. */
void pathbuf_truncate(struct pathbuf *p, size_t len);

/** Append @len bytes of @text. Returns 0 or -ENOMEM. */
int pathbuf_add(struct pathbuf *p, const char *text, size_t len);

/** Append the string @text. Returns 0 or -ENOMEM. */
int pathbuf_adds(struct pathbuf *p, const char *text);

/** Append printf-formatted text. Returns 0 or -ENOMEM. */
int pathbuf_addf(struct pathbuf *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Append the path component @name, with a '/' before it unless @p is empty
 * or already ends in '/'. @name is taken as it is: a caller that needs one
 * component (no '/', not "." or "..") checks it first. Returns 0 or -ENOMEM.
 */
int pathbuf_join(struct pathbuf *p, const char *name);

/** Empty @p, then append printf-formatted text. Returns 0 or -ENOMEM. */
int pathbuf_setf(struct pathbuf *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Copy @p's string into the fixed buffer @out of @cap bytes, for an
 * interface that takes one. Returns 0, @p->err, or -ENAMETOOLONG if it does
 * not fit (then @out holds the empty string, never a cut path).
 */
int pathbuf_copy_out(const struct pathbuf *p, char *out, size_t cap);

#endif
