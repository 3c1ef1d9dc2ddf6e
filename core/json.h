/*
 * json.h - a streaming JSON writer for the machine-readable output of the
 * tools (--json) and status files. Strings are escaped per RFC 8259; bytes
 * that are not valid UTF-8 (file names may hold any) become U+FFFD.
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

/* ---- reading (impex status reads the import mount's status file) ---- */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_value {
	enum json_type type;
	bool boolean;
	double number;
	char *string;		   /* JSON_STRING: UTF-8, no NUL inside */
	struct json_value **items; /* JSON_ARRAY, JSON_OBJECT: @count of them */
	char **keys;		   /* JSON_OBJECT: the member names */
	size_t count;
};

/**
 * Parse the RFC 8259 document @text (@len bytes), at most JSON_MAX_DEPTH
 * deep. Returns the value (free with json_value_free()) or NULL for a text
 * that is not one document (or out of memory).
 */
struct json_value *json_parse(const char *text, size_t len);

void json_value_free(struct json_value *value);

/** The member @key of @object (NULL if it is none, or @object is not an object). */
const struct json_value *json_get(const struct json_value *object, const char *key);
/** The string member @key, or NULL. */
const char *json_get_string(const struct json_value *object, const char *key);
/** The number member @key, or 0. */
double json_get_number(const struct json_value *object, const char *key);

#endif
