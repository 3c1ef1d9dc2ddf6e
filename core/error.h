/*
 * error.h - the error context that core functions fill in.
 *
 * Core functions return 0 on success or a negative errno, and when there is
 * more to say than the errno, they write a human sentence into a caller-given
 * struct error: "block 17 of 'blog.avhd' points past the end of the file".
 * Messages start lower-case and have no trailing period (see STYLE.md).
 */
#ifndef IMPEX_ERROR_H
#define IMPEX_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#define ERROR_MESSAGE_MAX 1024

struct error {
	int code;			     /* positive errno of the last failure, 0 if none */
	char message[ERROR_MESSAGE_MAX];     /* "" if none */
};

/** Reset @err to "no error". NULL-safe. */
void error_clear(struct error *err);

/**
 * Record a failure: errno @code and a printf-style message.
 * @err may be NULL (the message is dropped).
 * Returns -@code, so that callers can write `return error_set(err, EINVAL, ...)`.
 */
int error_set(struct error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * Put "prefix: " in front of the message already in @err, keeping its code,
 * so an outer layer adds context: "cannot open parent 'a.vhd' of 'b.avhd': ...".
 * If @err holds no message yet, the prefix becomes the message plus strerror(code).
 * Returns -err->code (or -EIO if no code was recorded).
 */
int error_prefix(struct error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Record a failed system call: "@what 'path': strerror(code)".
 * Returns -@code.
 */
int error_errno(struct error *err, int code, const char *what, const char *path);

/**
 * Whether errno @code (positive or negative) is a fault of the moment rather
 * than of the files: EMFILE, ENFILE, ENOMEM, EIO, EINTR. What failed so may
 * work when tried again; it must never be taken for "this is gone or broken".
 */
bool error_is_transient(int code);

/** The message, or strerror of the code when no message was set. Borrowed. */
const char *error_message(const struct error *err);

#endif
