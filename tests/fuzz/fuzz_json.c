/*
 * fuzz_json - the JSON reader (core/json) that impex status uses on an
 * import mount's status file: any input is parsed; an accepted document is
 * walked whole (every object member named, every count kept, no string
 * holding a NUL) and freed.
 */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const struct json_value *v, int depth)
{
	size_t n = 1;

	if (depth > JSON_MAX_DEPTH + 1)
		abort();
	switch (v->type) {
	case JSON_STRING:
		if (!v->string)
			abort();
		(void)strlen(v->string);
		break;
	case JSON_OBJECT:
		for (size_t i = 0; i < v->count; i++)
			if (!v->keys[i] || json_get(v, v->keys[i]) == NULL)
				abort();
		/* fall through */
	case JSON_ARRAY:
		for (size_t i = 0; i < v->count; i++)
			n += walk(v->items[i], depth + 1);
		break;
	default:
		if (v->count || v->items)
			abort();
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_value *v = json_parse((const char *)data, size);

	if (v && walk(v, 0) == 0)
		abort();
	json_value_free(v);
	return 0;
}
