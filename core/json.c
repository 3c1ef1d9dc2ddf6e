#include "json.h"

#include "utf8.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void jsonw_init(struct jsonw *j, FILE *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->first[0] = true;
}

void jsonw_write_escaped(FILE *out, const char *value)
{
	const unsigned char *p = (const unsigned char *)value, *end = p + strlen(value);

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
		n = utf8_decode(p, (size_t)(end - p), NULL);
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

static void indent(struct jsonw *j)
{
	fputc('\n', j->out);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->out);
}

/* Separator, indentation and member name before a value. */
static void member(struct jsonw *j, const char *key)
{
	if (j->depth > 0) {
		if (!j->first[j->depth])
			fputc(',', j->out);
		indent(j);
	}
	j->first[j->depth] = false;
	if (key) {
		jsonw_write_escaped(j->out, key);
		fputs(": ", j->out);
	}
}

static void open_container(struct jsonw *j, const char *key, char c)
{
	member(j, key);
	fputc(c, j->out);
	if (j->depth + 1 < JSONW_MAX_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
}

static void close_container(struct jsonw *j, char c)
{
	bool empty = j->first[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (!empty)
		indent(j);
	fputc(c, j->out);
}

void jsonw_begin_object(struct jsonw *j, const char *key)
{
	open_container(j, key, '{');
}

void jsonw_end_object(struct jsonw *j)
{
	close_container(j, '}');
}

void jsonw_begin_array(struct jsonw *j, const char *key)
{
	open_container(j, key, '[');
}

void jsonw_end_array(struct jsonw *j)
{
	close_container(j, ']');
}

void jsonw_string(struct jsonw *j, const char *key, const char *value)
{
	member(j, key);
	if (value)
		jsonw_write_escaped(j->out, value);
	else
		fputs("null", j->out);
}

void jsonw_uint(struct jsonw *j, const char *key, uint64_t value)
{
	member(j, key);
	fprintf(j->out, "%" PRIu64, value);
}

void jsonw_int(struct jsonw *j, const char *key, int64_t value)
{
	member(j, key);
	fprintf(j->out, "%" PRId64, value);
}

void jsonw_bool(struct jsonw *j, const char *key, bool value)
{
	member(j, key);
	fputs(value ? "true" : "false", j->out);
}

void jsonw_finish(struct jsonw *j)
{
	fputc('\n', j->out);
	fflush(j->out);
}
