/*
 * json.h - the JSON writer (prefix jsonw_): a streaming writer for the
 * machine-readable output of the tools (--json) and status files. Strings
 * are escaped per RFC 8259; bytes that are not valid UTF-8 (file names may
 * hold any) become U+FFFD (core/utf8.h decides what is valid).
 *
 * Written here rather than taken from libjansson (which impex status uses
 * to read): jansson refuses a string that is not valid UTF-8 (json_string
 * returns NULL), where a file name must still be shown; and it builds the
 * whole document in memory before it writes, where this writes as it goes.
 * Its names carry the prefix jsonw_ so that a file may include both.
 * A writer belongs to one thread at a time.
 */
#ifndef IMPEX_JSON_H
#define IMPEX_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSONW_MAX_DEPTH 32

struct jsonw {
	FILE *out;
	int depth;
	bool first[JSONW_MAX_DEPTH]; /* no member written yet at this depth */
};

/** Start writing to @out (pretty-printed, two spaces an indent). */
void jsonw_init(struct jsonw *json, FILE *out);

/* Each value takes the member name @key inside an object, NULL inside an array or at the top. */
void jsonw_begin_object(struct jsonw *json, const char *key);
void jsonw_end_object(struct jsonw *json);
void jsonw_begin_array(struct jsonw *json, const char *key);
void jsonw_end_array(struct jsonw *json);
void jsonw_string(struct jsonw *json, const char *key, const char *value); /* NULL writes null */
void jsonw_uint(struct jsonw *json, const char *key, uint64_t value);
void jsonw_int(struct jsonw *json, const char *key, int64_t value);
void jsonw_bool(struct jsonw *json, const char *key, bool value);

/** Finish the document with a newline. */
void jsonw_finish(struct jsonw *json);

/** Write @value as a JSON string literal (with quotes) to @out. */
void jsonw_write_escaped(FILE *out, const char *value);

#endif
