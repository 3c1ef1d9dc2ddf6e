/*
 * json.h - a streaming JSON writer for the machine-readable output of the
 * tools (--json) and status files. Strings are escaped per RFC 8259; bytes
 * that are not valid UTF-8 (file names may hold any) become U+FFFD.
 *
 * Written here rather than taken from libjansson (which impex status uses
 * to read): jansson refuses a string that is not valid UTF-8 (json_string
 * returns NULL), where a file name must still be shown; and it builds the
 * whole document in memory before it writes, where this writes as it goes.
 */
#ifndef IMPEX_JSON_H
#define IMPEX_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

struct json {
	FILE *out;
	int depth;
	bool first[JSON_MAX_DEPTH]; /* no member written yet at this depth */
};

/** Start writing to @out (pretty-printed, two spaces an indent). */
void json_init(struct json *json, FILE *out);

/* Each value takes the member name @key inside an object, NULL inside an array or at the top. */
void json_begin_object(struct json *json, const char *key);
void json_end_object(struct json *json);
void json_begin_array(struct json *json, const char *key);
void json_end_array(struct json *json);
void json_string(struct json *json, const char *key, const char *value); /* NULL writes null */
void json_uint(struct json *json, const char *key, uint64_t value);
void json_int(struct json *json, const char *key, int64_t value);
void json_bool(struct json *json, const char *key, bool value);

/** Finish the document with a newline. */
void json_finish(struct json *json);

/** Write @value as a JSON string literal (with quotes) to @out. */
void json_write_escaped(FILE *out, const char *value);

#endif
