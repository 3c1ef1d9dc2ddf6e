#include "json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void json_init(struct json *j, FILE *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->first[0] = true;
}

/* Length of the valid UTF-8 sequence at @p, or 0 if it is not one. */
static size_t utf8_sequence(const unsigned char *p)
{
	size_t n;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xE0) == 0xC0) {
		n = 2;
		cp = p[0] & 0x1F;
	} else if ((p[0] & 0xF0) == 0xE0) {
		n = 3;
		cp = p[0] & 0x0F;
	} else if ((p[0] & 0xF8) == 0xF0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void json_write_escaped(FILE *out, const char *value)
{
	const unsigned char *p = (const unsigned char *)value;

	fputc('"', out);
	while (*p) {
		size_t n;

		switch (*p) {
		case '"':
			fputs("\\\"", out);
			p++;
			continue;
		case '\\':
			fputs("\\\\", out);
			p++;
			continue;
		case '\n':
			fputs("\\n", out);
			p++;
			continue;
		case '\r':
			fputs("\\r", out);
			p++;
			continue;
		case '\t':
			fputs("\\t", out);
			p++;
			continue;
		default:
			break;
		}
		if (*p < 0x20) {
			fprintf(out, "\\u%04x", *p);
			p++;
			continue;
		}
		n = utf8_sequence(p);
		if (n == 0) {
			fputs("\\ufffd", out);
			p++;
			continue;
		}
		fwrite(p, 1, n, out);
		p += n;
	}
	fputc('"', out);
}

static void indent(struct json *j)
{
	fputc('\n', j->out);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->out);
}

/* Separator, indentation and member name before a value. */
static void member(struct json *j, const char *key)
{
	if (j->depth > 0) {
		if (!j->first[j->depth])
			fputc(',', j->out);
		indent(j);
	}
	j->first[j->depth] = false;
	if (key) {
		json_write_escaped(j->out, key);
		fputs(": ", j->out);
	}
}

static void open_container(struct json *j, const char *key, char c)
{
	member(j, key);
	fputc(c, j->out);
	if (j->depth + 1 < JSON_MAX_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
}

static void close_container(struct json *j, char c)
{
	bool empty = j->first[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (!empty)
		indent(j);
	fputc(c, j->out);
}

void json_begin_object(struct json *j, const char *key)
{
	open_container(j, key, '{');
}

void json_end_object(struct json *j)
{
	close_container(j, '}');
}

void json_begin_array(struct json *j, const char *key)
{
	open_container(j, key, '[');
}

void json_end_array(struct json *j)
{
	close_container(j, ']');
}

void json_string(struct json *j, const char *key, const char *value)
{
	member(j, key);
	if (value)
		json_write_escaped(j->out, value);
	else
		fputs("null", j->out);
}

void json_uint(struct json *j, const char *key, uint64_t value)
{
	member(j, key);
	fprintf(j->out, "%" PRIu64, value);
}

void json_int(struct json *j, const char *key, int64_t value)
{
	member(j, key);
	fprintf(j->out, "%" PRId64, value);
}

void json_bool(struct json *j, const char *key, bool value)
{
	member(j, key);
	fputs(value ? "true" : "false", j->out);
}

void json_finish(struct json *j)
{
	fputc('\n', j->out);
	fflush(j->out);
}

/* ---- reading ---- */

struct reader {
	const char *p, *end;
	int depth;
};

static void skip_space(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static struct json_value *value_new(enum json_type type)
{
	struct json_value *v = calloc(1, sizeof(*v));

	if (v)
		v->type = type;
	return v;
}

/* Append the code point @cp to @out (UTF-8). */
static void put_utf8(char *out, size_t *n, uint32_t cp)
{
	if (cp < 0x80) {
		out[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*n)++] = (char)(0xC0 | (cp >> 6));
		out[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		out[(*n)++] = (char)(0xE0 | (cp >> 12));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		out[(*n)++] = (char)(0xF0 | (cp >> 18));
		out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*n)++] = (char)(0x80 | (cp & 0x3F));
	}
}

static int hex4(const char *p, uint32_t *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		*out = *out << 4 | (uint32_t)d;
	}
	return 0;
}

/* A string literal at r->p (after its quote has been checked), into a new string. */
static char *read_string(struct reader *r)
{
	const char *start = ++r->p;
	size_t n = 0;
	char *out;

	while (r->p < r->end && *r->p != '"')
		r->p += *r->p == '\\' && r->p + 1 < r->end ? 2 : 1;
	if (r->p >= r->end || !(out = malloc((size_t)(r->p - start) + 1)))
		return NULL;
	for (const char *p = start; p < r->p; p++) {
		uint32_t cp, low;

		if ((unsigned char)*p < 0x20) {
			free(out);
			return NULL;
		}
		if (*p != '\\') {
			out[n++] = *p;
			continue;
		}
		switch (*++p) {
		case '"':
		case '\\':
		case '/':
			out[n++] = *p;
			break;
		case 'b':
			out[n++] = '\b';
			break;
		case 'f':
			out[n++] = '\f';
			break;
		case 'n':
			out[n++] = '\n';
			break;
		case 'r':
			out[n++] = '\r';
			break;
		case 't':
			out[n++] = '\t';
			break;
		case 'u':
			if (r->p - p < 5 || hex4(p + 1, &cp) < 0) {
				free(out);
				return NULL;
			}
			p += 4;
			if (cp >= 0xD800 && cp < 0xDC00 && r->p - p >= 7 && p[1] == '\\' &&
			    p[2] == 'u' && hex4(p + 3, &low) == 0 && low >= 0xDC00 &&
			    low < 0xE000) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
				p += 6;
			} else if (cp >= 0xD800 && cp < 0xE000) {
				cp = 0xFFFD;
			}
			if (cp == 0) {
				free(out); /* a NUL cannot be held */
				return NULL;
			}
			put_utf8(out, &n, cp); /* at most 4 bytes for 6 or 12 read */
			break;
		default:
			free(out);
			return NULL;
		}
	}
	out[n] = '\0';
	r->p++;
	return out;
}

static struct json_value *read_value(struct reader *r);

/* Append @item to the array or object @v (with @key for an object). */
static int add_item(struct json_value *v, char *key, struct json_value *item)
{
	struct json_value **items = realloc(v->items, (v->count + 1) * sizeof(*items));
	char **keys =
		v->type == JSON_OBJECT ? realloc(v->keys, (v->count + 1) * sizeof(*keys)) : NULL;

	if (items)
		v->items = items;
	if (keys)
		v->keys = keys;
	if (!items || (v->type == JSON_OBJECT && !keys))
		return -1;
	if (keys)
		keys[v->count] = key;
	items[v->count++] = item;
	return 0;
}

static struct json_value *read_container(struct reader *r, enum json_type type)
{
	struct json_value *v = value_new(type);
	char close = type == JSON_OBJECT ? '}' : ']';

	r->p++;
	if (!v || ++r->depth > JSON_MAX_DEPTH)
		goto bad;
	skip_space(r);
	if (r->p < r->end && *r->p == close) {
		r->p++;
		r->depth--;
		return v;
	}
	for (;;) {
		char *key = NULL;
		struct json_value *item;

		skip_space(r);
		if (type == JSON_OBJECT) {
			if (r->p >= r->end || *r->p != '"' || !(key = read_string(r)))
				goto bad;
			skip_space(r);
			if (r->p >= r->end || *r->p != ':') {
				free(key);
				goto bad;
			}
			r->p++;
		}
		item = read_value(r);
		if (!item || add_item(v, key, item) < 0) {
			free(key);
			json_value_free(item);
			goto bad;
		}
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == close) {
			r->p++;
			r->depth--;
			return v;
		}
		goto bad;
	}
bad:
	json_value_free(v);
	return NULL;
}

static struct json_value *read_value(struct reader *r)
{
	static const struct {
		const char *word;
		enum json_type type;
		bool value;
	} words[] = {
		{"true", JSON_BOOL, true}, {"false", JSON_BOOL, false}, {"null", JSON_NULL, false}};
	struct json_value *v;

	skip_space(r);
	if (r->p >= r->end)
		return NULL;
	if (*r->p == '{')
		return read_container(r, JSON_OBJECT);
	if (*r->p == '[')
		return read_container(r, JSON_ARRAY);
	if (*r->p == '"') {
		char *text = read_string(r);

		if (!text || !(v = value_new(JSON_STRING))) {
			free(text);
			return NULL;
		}
		v->string = text;
		return v;
	}
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i].word);

		if ((size_t)(r->end - r->p) >= n && memcmp(r->p, words[i].word, n) == 0) {
			r->p += n;
			if ((v = value_new(words[i].type)))
				v->boolean = words[i].value;
			return v;
		}
	}
	if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) {
		char buf[64], *stop;
		size_t n = 0;

		while (r->p + n < r->end && n < sizeof(buf) - 1 &&
		       strchr("+-.eE0123456789", r->p[n]))
			n++;
		memcpy(buf, r->p, n);
		buf[n] = '\0';
		if (!(v = value_new(JSON_NUMBER)))
			return NULL;
		v->number = strtod(buf, &stop);
		if (stop != buf + n || n == 0) {
			free(v);
			return NULL;
		}
		r->p += n;
		return v;
	}
	return NULL;
}

struct json_value *json_parse(const char *text, size_t len)
{
	struct reader r = {text, text + len, 0};
	struct json_value *v = read_value(&r);

	skip_space(&r);
	if (v && r.p != r.end) {
		json_value_free(v);
		return NULL;
	}
	return v;
}

void json_value_free(struct json_value *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->count; i++) {
		json_value_free(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->string);
	free(v);
}

const struct json_value *json_get(const struct json_value *object, const char *key)
{
	for (size_t i = 0; object && object->type == JSON_OBJECT && i < object->count; i++)
		if (strcmp(object->keys[i], key) == 0)
			return object->items[i];
	return NULL;
}

const char *json_get_string(const struct json_value *object, const char *key)
{
	const struct json_value *v = json_get(object, key);

	return v && v->type == JSON_STRING ? v->string : NULL;
}

double json_get_number(const struct json_value *object, const char *key)
{
	const struct json_value *v = json_get(object, key);

	return v && v->type == JSON_NUMBER ? v->number : 0;
}
