/*
 * fuzz_config - configuration files: the input is parsed as a configuration
 * (byte-order mark sniffing, UTF-16 decoding, the libxml2 parse with no DTD,
 * the checks on root, depth and size); what parses goes through the
 * Hyper-V view (identity, drives, adapters), the path access, an edit, and
 * serialization.
 *
 * Checked beyond "no crash": every refusal comes with a message naming the
 * file; without a change, serializing gives back the input's bytes;
 * serializing is stable (parse(serialize(x)) serializes to the same bytes);
 * an edit reads back as written, and what is written after it reads back as
 * the same tree (names and values); a configuration reads back after a
 * change of encoding. Nothing is read from disk.
 */
#include "config.h"
#include "error.h"
#include "fuzzsupport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct config *c, const char *path, int depth)
{
	char **names = NULL;
	size_t count = 0;

	if (depth > 8 || config_children(c, path, &names, &count) < 0)
		return;
	for (size_t i = 0; i < count && i < 64; i++) {
		char child[1024], *value = NULL, *type = NULL;
		int64_t number;
		bool flag;
		uint8_t *bytes = NULL;
		size_t len;

		if ((size_t)snprintf(child, sizeof(child), "%s%s%s", path, *path ? "/" : "",
				     names[i]) >= sizeof(child))
			continue;
		if (config_get(c, child, &value, &type) == 0) {
			config_get_int(c, child, &number);
			config_get_bool(c, child, &flag);
			if (config_get_bytes(c, child, &bytes, &len) == 0)
				free(bytes);
		} else {
			walk(c, child, depth + 1);
		}
		free(value);
		free(type);
	}
	config_names_free(names, count);
}

/* The same element names and leaf values under @path in @a and @b. */
static void check_same_tree(const struct config *a, const struct config *b, const char *path,
			    int depth)
{
	char **names = NULL, **others = NULL;
	size_t count = 0, other_count = 0;

	if (depth > 8 || config_children(a, path, &names, &count) < 0)
		return;
	FUZZ_CHECK(config_children(b, path, &others, &other_count) == 0);
	FUZZ_CHECK(count == other_count);
	for (size_t i = 0; i < count && i < 64; i++) {
		char child[1024], *x = NULL, *y = NULL;

		FUZZ_CHECK(strcmp(names[i], others[i]) == 0);
		if ((size_t)snprintf(child, sizeof(child), "%s%s%s", path, *path ? "/" : "",
				     names[i]) >= sizeof(child))
			continue;
		if (config_get(a, child, &x, NULL) == 0) {
			FUZZ_CHECK(config_get(b, child, &y, NULL) == 0);
			FUZZ_CHECK(strcmp(x, y) == 0);
		} else {
			check_same_tree(a, b, child, depth + 1);
		}
		free(x);
		free(y);
	}
	config_names_free(names, count);
	config_names_free(others, other_count);
}

/* What @c writes reads back as @c: the same tree. */
static void check_reads_back(const struct config *c)
{
	struct config *again = NULL;
	char *bytes = NULL;
	size_t len = 0;
	struct error err;

	if (config_serialize(c, &bytes, &len, &err) < 0)
		return; /* out of memory only */
	/* A value XML cannot hold is refused when read back: never saved. */
	if (config_parse(&again, bytes, len, "again.xml", &err) == 0)
		check_same_tree(c, again, "", 0);
	config_free(again);
	free(bytes);
}

/* Serialize @c, parse the result, serialize again: the same bytes. */
static void check_stable(const struct config *c)
{
	struct config *again = NULL;
	char *first = NULL, *second = NULL;
	size_t first_len = 0, second_len = 0;
	struct error err;

	if (config_serialize(c, &first, &first_len, &err) < 0)
		return; /* out of memory only */
	FUZZ_CHECK(config_parse(&again, first, first_len, "again.xml", &err) == 0);
	FUZZ_CHECK(config_serialize(again, &second, &second_len, &err) == 0);
	FUZZ_CHECK(first_len == second_len && memcmp(first, second, first_len) == 0);
	config_free(again);
	free(first);
	free(second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	struct config_identity id;
	struct config_drive *drives = NULL;
	struct config_adapter *adapters = NULL;
	size_t count = 0;
	struct error err;
	char *value = NULL;
	int rc;

	error_clear(&err);
	rc = config_parse(&c, data, size, "fuzz.xml", &err);
	if (rc < 0) {
		FUZZ_CHECK(c == NULL);
		FUZZ_CHECK(strstr(err.message, "fuzz.xml") != NULL);
		return 0;
	}
	if (config_identity(c, &id, &err) == 0)
		config_identity_release(&id);
	if (config_drives(c, &drives, &count, &err) == 0)
		config_drives_free(drives, count);
	if (config_adapters(c, &adapters, &count, &err) == 0)
		config_adapters_free(adapters, count);
	walk(c, "", 0);
	{
		/* Unchanged: the bytes read. */
		char *same = NULL;
		size_t same_len = 0;

		if (config_serialize(c, &same, &same_len, &err) == 0) {
			FUZZ_CHECK(same_len == size && memcmp(same, data, size) == 0);
			free(same);
		}
	}
	check_stable(c);

	/* An edit reads back as written, text that needs escaping included. */
	if (config_set(c, "properties/impexfs_fuzz", "string", "a&b<c>\"d'", &err) == 0) {
		FUZZ_CHECK(config_get(c, "properties/impexfs_fuzz", &value, NULL) == 0);
		FUZZ_CHECK(strcmp(value, "a&b<c>\"d'") == 0);
		free(value);
		check_stable(c);
		check_reads_back(c);
	}
	/* Edits of what the input holds: its first leaf changed, its type too,
	 * then its first element removed. */
	{
		char **names = NULL;
		size_t count = 0;

		if (config_children(c, "", &names, &count) == 0 && count > 0) {
			char leaf[1024];
			char **inner = NULL;
			size_t inner_count = 0;

			snprintf(leaf, sizeof(leaf), "%s", names[0]);
			if (config_children(c, leaf, &inner, &inner_count) == 0 && inner_count > 0)
				snprintf(leaf, sizeof(leaf), "%s/%s", names[0], inner[0]);
			config_names_free(inner, inner_count);
			if (config_set(c, leaf, NULL, "x\ny & z", &err) == 0)
				check_reads_back(c);
			if (config_set(c, leaf, "it's", "", &err) == 0)
				check_reads_back(c);
			if (count > 1 && config_remove(c, names[count - 1]) == 0)
				check_reads_back(c);
		}
		config_names_free(names, count);
	}
	config_set_encoding(c, config_encoding(c) == CONFIG_UTF16LE ? CONFIG_UTF8 : CONFIG_UTF16LE);
	check_stable(c);
	config_free(c);
	return 0;
}
