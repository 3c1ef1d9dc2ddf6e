#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A message longer than its buffer says that it was cut short: it ends in "...". */
static void mark_cut(char *message, size_t cap, int written)
{
	if (written >= 0 && (size_t)written < cap)
		return;
	memcpy(message + cap - 4, "...", 4);
}

void error_clear(struct error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->message[0] = '\0';
}

int error_set(struct error *err, int code, const char *fmt, ...)
{
	if (code <= 0)
		code = EIO;
	if (err) {
		va_list ap;

		err->code = code;
		va_start(ap, fmt);
		mark_cut(err->message, sizeof(err->message),
			 vsnprintf(err->message, sizeof(err->message), fmt, ap));
		va_end(ap);
	}
	return -code;
}

int error_prefix(struct error *err, const char *fmt, ...)
{
	char prefix[ERROR_MESSAGE_MAX];
	char old[ERROR_MESSAGE_MAX];
	va_list ap;

	if (!err)
		return -EIO;
	if (err->code <= 0)
		err->code = EIO;
	va_start(ap, fmt);
	mark_cut(prefix, sizeof(prefix), vsnprintf(prefix, sizeof(prefix), fmt, ap));
	va_end(ap);
	memcpy(old, err->message, sizeof(old));
	if (!old[0])
		mark_cut(old, sizeof(old), snprintf(old, sizeof(old), "%s", strerror(err->code)));
	mark_cut(err->message, sizeof(err->message),
		 snprintf(err->message, sizeof(err->message), "%s: %s", prefix, old));
	return -err->code;
}

int error_errno(struct error *err, int code, const char *what, const char *path)
{
	return error_set(err, code, "%s '%s': %s", what, path, strerror(code > 0 ? code : EIO));
}

bool error_is_transient(int code)
{
	if (code < 0)
		code = -code;
	return code == EMFILE || code == ENFILE || code == ENOMEM || code == EIO || code == EINTR;
}

const char *error_message(const struct error *err)
{
	if (!err)
		return "";
	if (err->message[0])
		return err->message;
	return err->code ? strerror(err->code) : "no error";
}
