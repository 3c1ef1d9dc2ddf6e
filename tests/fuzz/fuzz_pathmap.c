/*
 * fuzz_pathmap - the string handling of parent paths: the input is split at
 * NUL bytes into a path map ("WIN=DIR;..."), a Windows path, a Linux path,
 * a folder and a relative path, fed to pathmap_normalize_windows,
 * pathmap_to_linux, pathmap_to_windows, pathmap_join_relative,
 * pathmap_windows_relative and pathmap_basename; every field, and the whole
 * input taken as UTF-16 in both byte orders (and as UTF-8), goes through the
 * utf16 module.
 *
 * Checked beyond "no crash": normalizing is idempotent and leaves no '/';
 * with a single map entry, mapping to Linux and back gives the normalized
 * path (ignoring ASCII case); joined and relative paths have the promised
 * form; UTF-8 -> UTF-16 -> UTF-8 and UTF-16 -> UTF-8 -> UTF-16 round trips
 * are exact, for the fixed-buffer and the allocating conversions. The file
 * system is only looked at (pathmap_add resolves each Linux folder with
 * realpath).
 */
#include "error.h"
#include "fuzzsupport.h"
#include "pathmap.h"
#include "utf16.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum field {
	FIELD_MAP,
	FIELD_WINDOWS,
	FIELD_LINUX,
	FIELD_DIR,
	FIELD_RELATIVE,
	FIELD_COUNT,
};

#define UTF16_MAX 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_windows(const struct pathmap *map, const char *win)
{
	char norm[PATH_MAX], again[PATH_MAX], linux_path[PATH_MAX], back[PATH_MAX], small[8];
	bool absolute = pathmap_is_windows_absolute(win);
	size_t len;
	int rc;

	rc = pathmap_normalize_windows(win, norm, sizeof(norm));
	if (!absolute)
		FUZZ_CHECK(rc == -EINVAL);
	if (rc == 0) {
		FUZZ_CHECK(strchr(norm, '/') == NULL);
		FUZZ_CHECK(pathmap_is_windows_absolute(norm));
		FUZZ_CHECK(pathmap_normalize_windows(norm, again, sizeof(again)) == 0);
		FUZZ_CHECK(strcmp(norm, again) == 0);
	}
	pathmap_normalize_windows(win, small, sizeof(small));
	rc = pathmap_to_linux(map, win, linux_path, sizeof(linux_path));
	if (rc == 0) {
		FUZZ_CHECK(linux_path[0] == '/');
		if (pathmap_count(map) == 1) {
			FUZZ_CHECK(pathmap_normalize_windows(win, norm, sizeof(norm)) == 0);
			FUZZ_CHECK(pathmap_to_windows(map, linux_path, back, sizeof(back)) == 0);
			/* The mapped folder itself comes back as its prefix, "C:\VMs\". */
			len = strlen(back);
			if (len > 1 && back[len - 1] == '\\' && norm[strlen(norm) - 1] != '\\')
				back[len - 1] = '\0';
			FUZZ_CHECK(strcasecmp(norm, back) == 0);
		}
	}
	pathmap_to_linux(map, win, small, sizeof(small));
	FUZZ_CHECK(strlen(pathmap_basename(win)) <= strlen(win));
}

static void check_linux(const struct pathmap *map, const char *path, const char *dir,
			const char *rel)
{
	char out[PATH_MAX], small[8];
	size_t dlen = strlen(dir);
	int rc;

	if (pathmap_to_windows(map, path, out, sizeof(out)) == 0)
		FUZZ_CHECK(pathmap_is_windows_absolute(out));
	pathmap_to_windows(map, path, small, sizeof(small));

	rc = pathmap_join_relative(dir, rel, out, sizeof(out));
	if (rc == 0) {
		FUZZ_CHECK(strncmp(out, dir, dlen) == 0 && out[dlen] == '/');
		FUZZ_CHECK(strchr(out + dlen, '\\') == NULL);
	}
	pathmap_join_relative(dir, rel, small, sizeof(small));

	rc = pathmap_windows_relative(dir, path, out, sizeof(out));
	if (rc == 0) {
		FUZZ_CHECK(strncmp(out, ".\\", 2) == 0 || strncmp(out, "..\\", 3) == 0);
		FUZZ_CHECK(strchr(out, '/') == NULL);
	}
	pathmap_windows_relative(dir, path, small, sizeof(small));
}

/* UTF-8 -> UTF-16 -> UTF-8 gives back the string. */
static void check_utf8(const char *text)
{
	static uint8_t utf16[UTF16_MAX];
	static char back[UTF16_MAX];
	static const enum utf16_order orders[] = {UTF16_BE, UTF16_LE};
	struct error err;
	size_t len;

	for (int i = 0; i < 2; i++) {
		error_clear(&err);
		if (utf16_encode(text, orders[i], utf16, sizeof(utf16), &len, &err) < 0)
			continue;
		FUZZ_CHECK(len % 2 == 0);
		error_clear(&err);
		FUZZ_CHECK(utf16_decode(utf16, len, orders[i], back, sizeof(back), &err) == 0);
		FUZZ_CHECK(strcmp(text, back) == 0);
	}
}

/* UTF-16 -> UTF-8 -> UTF-16 gives back the text up to its first NUL unit. */
static void check_utf16(const uint8_t *data, size_t size)
{
	static char text[4 * UTF16_MAX];
	static uint8_t back[2 * UTF16_MAX];
	static const enum utf16_order orders[] = {UTF16_BE, UTF16_LE};
	char small[5];
	struct error err;
	size_t units, len;

	if (size > UTF16_MAX)
		size = UTF16_MAX;
	for (units = 0; units < size / 2; units++)
		if (data[2 * units] == 0 && data[2 * units + 1] == 0)
			break;
	for (int i = 0; i < 2; i++) {
		error_clear(&err);
		utf16_decode(data, size, orders[i], small, sizeof(small), &err);
		error_clear(&err);
		if (utf16_decode(data, size, orders[i], text, sizeof(text), &err) < 0) {
			FUZZ_CHECK(err.code != 0);
			continue;
		}
		error_clear(&err);
		FUZZ_CHECK(utf16_encode(text, orders[i], back, sizeof(back), &len, &err) == 0);
		FUZZ_CHECK(len == units * 2);
		FUZZ_CHECK(memcmp(back, data, len) == 0);
	}
}

/* The whole input, NULs included, through the allocating conversions and back. */
static void check_alloc(const uint8_t *data, size_t size)
{
	static const enum utf16_order orders[] = {UTF16_BE, UTF16_LE};
	struct error err;

	if (size > UTF16_MAX)
		size = UTF16_MAX;
	for (int i = 0; i < 2; i++) {
		char *text = NULL, *back = NULL;
		size_t text_len, back_len;
		int rc;

		error_clear(&err);
		rc = utf16_decode_alloc(data, size, orders[i], &text, &text_len, &err);
		FUZZ_CHECK(rc == 0 || rc == -EILSEQ);
		if (rc == 0) {
			FUZZ_CHECK(text[text_len] == '\0');
			error_clear(&err);
			FUZZ_CHECK(utf16_encode_alloc(text, text_len, orders[i], &back, &back_len,
						      &err) == 0);
			FUZZ_CHECK(back_len == size && memcmp(back, data, size) == 0);
			free(back);
			back = NULL;
		}
		free(text);
		text = NULL;
		/* The input as UTF-8. */
		error_clear(&err);
		rc = utf16_encode_alloc((const char *)data, size, orders[i], &text, &text_len,
					&err);
		FUZZ_CHECK(rc == 0 || rc == -EILSEQ);
		if (rc == 0) {
			error_clear(&err);
			FUZZ_CHECK(utf16_decode_alloc(text, text_len, orders[i], &back, &back_len,
						      &err) == 0);
			FUZZ_CHECK(back_len == size && memcmp(back, data, size) == 0);
		}
		free(text);
		free(back);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *fields[FIELD_COUNT];
	struct pathmap *map;
	struct error err;
	char *text;
	size_t at = 0;

	check_utf16(data, size);
	check_alloc(data, size);
	/* NUL-terminated fields; missing ones are empty. */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (int i = 0; i < FIELD_COUNT; i++) {
		fields[i] = at <= size ? text + at : "";
		if (at <= size)
			at += strlen(text + at) + 1;
	}
	map = pathmap_new();
	if (!map)
		goto out;
	error_clear(&err);
	if (pathmap_add_list(map, fields[FIELD_MAP], &err) < 0)
		FUZZ_CHECK(err.code != 0 && err.message[0] != '\0');
	check_windows(map, fields[FIELD_WINDOWS]);
	check_linux(map, fields[FIELD_LINUX], fields[FIELD_DIR], fields[FIELD_RELATIVE]);
	for (int i = 0; i < FIELD_COUNT; i++)
		check_utf8(fields[i]);
	check_windows(map, fields[FIELD_LINUX]);
	check_linux(map, fields[FIELD_WINDOWS], fields[FIELD_DIR], fields[FIELD_WINDOWS]);
out:
	pathmap_free(map);
	free(text);
	return 0;
}
