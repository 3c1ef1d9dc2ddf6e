/*
 * fuzz_config - configuration files: the input is parsed as a configuration
 * (byte-order mark sniffing, UTF-16 decoding, the libxml2 parse with no DTD,
 * the checks on root, depth and size); what parses goes through the
 * Hyper-V view (identity, drives, adapters), the path access, an edit, and
 * serialization.
 *
 * Checked beyond "no crash": every refusal comes with a message naming the
 * file; serializing is stable (parse(serialize(x)) serializes to the same
 * bytes); an edit reads back as written; a configuration reads back after a
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
	check_stable(c);

	/* An edit reads back as written, text that needs escaping included. */
	if (config_set(c, "properties/impexfs_fuzz", "string", "a&b<c>\"d'", &err) == 0) {
		FUZZ_CHECK(config_get(c, "properties/impexfs_fuzz", &value, NULL) == 0);
		FUZZ_CHECK(strcmp(value, "a&b<c>\"d'") == 0);
		free(value);
		check_stable(c);
	}
	config_set_encoding(c, config_encoding(c) == CONFIG_UTF16LE ? CONFIG_UTF8 : CONFIG_UTF16LE);
	check_stable(c);
	config_free(c);
	return 0;
}
