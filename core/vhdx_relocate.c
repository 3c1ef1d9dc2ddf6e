/*
 * vhdx_relocate.c - the patches that make a differencing VHDX name its
 * parent by file name alone, in its own folder (vhdx.h, vhdx_relocation).
 *
 * Everything here is computed over the file as vhdx_pread reads it (a
 * replayed log included) and re-read from it: the metadata table and the
 * current header are checked against what vhdx_open found, so a file that
 * changed since is refused rather than patched blind.
 */
#include "vhdx.h"
#include "vhdx_internal.h"

#include "bigendian.h"
#include "crc32c.h"
#include "error.h"
#include "utf16.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

/* Items are put at 8-byte boundaries, as Hyper-V lays them out. */
#define ITEM_ALIGN 8u



/* Namespace of the FileWriteGuids of relocated files (SHA-1 name-based). */
static const uuid_t relocation_namespace = {0x5d, 0x3a, 0x8e, 0x21, 0x7c, 0x44, 0x4b, 0x0f,
					    0x9a, 0x61, 0x0e, 0x2b, 0xd7, 0x93, 0x58, 0xc4};

static int changed(const struct vhdx *vhdx, const char *what, struct error *err)
{
	return error_set(err, EIO, "%s of '%s' changed since it was opened", what, vhdx_path(vhdx));
}

/* ---- the new parent locator ---- */

struct pair {
	char *key; /* UTF-16LE */
	char *value;
	size_t key_len, value_len;
};

static void pairs_free(struct pair *pairs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(pairs[i].key);
		free(pairs[i].value);
	}
	free(pairs);
}

static int pair_encode(const struct vhdx *vhdx, struct pair *p, const char *key, const char *value,
		       struct error *err)
{
	int rc = utf16_encode_alloc(key, strlen(key), UTF16_LE, &p->key, &p->key_len, err);

	if (rc == 0)
		rc = utf16_encode_alloc(value, strlen(value), UTF16_LE, &p->value, &p->value_len,
					err);
	if (rc < 0)
		return error_prefix(err, "cannot encode parent locator key '%s' of '%s'", key,
				    vhdx_path(vhdx));
	if (p->key_len > UINT16_MAX || p->value_len > UINT16_MAX)
		return error_set(err, ENAMETOOLONG,
				 "parent locator key '%s' of '%s' is too long (%zu bytes)", key,
				 vhdx_path(vhdx), p->value_len);
	return 0;
}

/*
 * The locator item as it is to be: the kept pairs in their order, relative_path
 * in its place or last. *@out (caller frees) of *@len bytes.
 */
static int locator_build(const struct vhdx *vhdx, const char *relative, uint8_t **out, size_t *len,
			 struct error *err)
{
	size_t count = vhdx_locator_count(vhdx), n = 0, total;
	struct pair *pairs = calloc(count + 1, sizeof(*pairs));
	bool have_relative = false;
	uint8_t *item = NULL, type[16];
	int rc = 0;

	*out = NULL;
	if (!pairs)
		return error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < count && rc == 0; i++) {
		const struct vhdx_locator_entry *e = vhdx_locator_entry(vhdx, i);
		const char *value = e->value;

		if (strcmp(e->key, VHDX_KEY_VOLUME_PATH) == 0 ||
		    strcmp(e->key, VHDX_KEY_ABSOLUTE_WIN32_PATH) == 0)
			continue;
		if (strcmp(e->key, VHDX_KEY_RELATIVE_PATH) == 0) {
			value = relative;
			have_relative = true;
		}
		rc = pair_encode(vhdx, &pairs[n++], e->key, value, err);
	}
	if (rc == 0 && !have_relative)
		rc = pair_encode(vhdx, &pairs[n++], VHDX_KEY_RELATIVE_PATH, relative, err);
	if (rc < 0)
		goto out;
	total = LOCATOR_HEADER_SIZE + n * LOCATOR_ENTRY_SIZE;
	for (size_t i = 0; i < n; i++)
		total += pairs[i].key_len + pairs[i].value_len;
	if (total > METADATA_MAX_ITEM) {
		rc = error_set(
			err, ENOSPC,
			"the parent locator of '%s' would be %zu bytes, more than a metadata "
			"item may hold",
			vhdx_path(vhdx), total);
		goto out;
	}
	item = calloc(1, total);
	if (!item) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	vhdx_guid_constant(VHDX_GUID_LOCATOR_VHDX, type);
	memcpy(item, type, 16);
	le16_store(item + 18, (uint16_t)n);
	{
		size_t at = LOCATOR_HEADER_SIZE + n * LOCATOR_ENTRY_SIZE;

		for (size_t i = 0; i < n; i++) {
			uint8_t *e = item + LOCATOR_HEADER_SIZE + i * LOCATOR_ENTRY_SIZE;

			le32_store(e, (uint32_t)at);
			le32_store(e + 4, (uint32_t)(at + pairs[i].key_len));
			le16_store(e + 8, (uint16_t)pairs[i].key_len);
			le16_store(e + 10, (uint16_t)pairs[i].value_len);
			memcpy(item + at, pairs[i].key, pairs[i].key_len);
			at += pairs[i].key_len;
			memcpy(item + at, pairs[i].value, pairs[i].value_len);
			at += pairs[i].value_len;
		}
	}
	*out = item;
	*len = total;
out:
	pairs_free(pairs, n);
	return rc;
}

/* ---- where it goes ---- */

struct range {
	uint32_t offset, length;
};

static int range_order(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/*
 * Read the metadata table into @table (VHDX_METADATA_TABLE_SIZE bytes), find the
 * locator's entry (*@index) where vhdx_open saw it, and list the other items'
 * places into *@others (caller frees), *@count of them.
 */
static int metadata_read(struct vhdx *vhdx, uint8_t *table, uint32_t *index, struct range **others,
			 size_t *count, struct error *err)
{
	uint64_t region;
	uint32_t region_len, loc_offset, loc_length, entries;
	uint8_t locator_guid[16];
	bool found = false;
	int rc;

	*others = NULL;
	*count = 0;
	vhdx_metadata_region(vhdx, &region, &region_len);
	vhdx_locator_place(vhdx, &loc_offset, &loc_length);
	vhdx_guid_constant(VHDX_GUID_LOCATOR, locator_guid);
	rc = vhdx_pread(vhdx, table, VHDX_METADATA_TABLE_SIZE, region, err);
	if (rc < 0)
		return rc;
	entries = le16_load(table + 10);
	if (memcmp(table, "metadata", 8) != 0 || entries > METADATA_MAX_ENTRIES)
		return changed(vhdx, "the metadata table", err);
	*others = calloc(entries ? entries : 1, sizeof(**others));
	if (!*others)
		return error_set(err, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < entries; i++) {
		const uint8_t *e = table + 32 + (size_t)i * METADATA_ENTRY_SIZE;
		uint32_t offset = le32_load(e + 16), length = le32_load(e + 20), flags = le32_load(e + 24);

		if (length && (offset < VHDX_METADATA_TABLE_SIZE || offset > region_len ||
			       length > region_len - offset))
			return changed(vhdx, "the metadata table", err);
		if (!found && !(flags & VHDX_METADATA_IS_USER) && memcmp(e, locator_guid, 16) == 0 &&
		    offset == loc_offset && length == loc_length) {
			*index = i;
			found = true;
			continue;
		}
		if (length)
			(*others)[(*count)++] = (struct range){offset, length};
	}
	if (!found)
		return changed(vhdx, "the parent locator entry", err);
	qsort(*others, *count, sizeof(**others), range_order);
	return 0;
}

/* The first place of the region, after the table, clear of @others, that holds @len bytes. */
static bool find_room(const struct range *others, size_t count, uint32_t region_len, size_t len,
		      uint32_t *at)
{
	uint64_t start = VHDX_METADATA_TABLE_SIZE;

	for (size_t i = 0; i <= count; i++) {
		uint64_t end = i < count ? others[i].offset : region_len;

		if (end >= start && end - start >= len) {
			*at = (uint32_t)start;
			return true;
		}
		if (i < count) {
			uint64_t next = (uint64_t)others[i].offset + others[i].length;

			next = (next + ITEM_ALIGN - 1) / ITEM_ALIGN * ITEM_ALIGN;
			if (next > start)
				start = next;
		}
	}
	return false;
}

/* ---- the headers ---- */

/* A new FileWriteGuid, derived from the old one and @parent_name, in Microsoft's layout. */
static void derive_file_write_guid(const uint8_t old[16], const char *parent_name, uint8_t out[16])
{
	size_t name_len = strlen(parent_name);
	char *name = malloc(16 + name_len);
	uuid_t u;

	if (!name) {
		/* Any other new value would do as well: the old one with its bits flipped. */
		for (int i = 0; i < 16; i++)
			out[i] = (uint8_t)~old[i];
		return;
	}
	memcpy(name, old, 16);
	memcpy(name + 16, parent_name, name_len);
	uuid_generate_sha1(u, relocation_namespace, name, 16 + name_len);
	free(name);
	vhdx_guid_from_uuid(u, out);
}

/*
 * Both headers as they are to be, from the current one: *@raw holds header 1
 * then header 2 (2 x VHDX_HEADER_SIZE).
 */
static int headers_build(struct vhdx *vhdx, const char *parent_name, uint8_t *raw,
			 struct error *err)
{
	const struct vhdx_header *h = vhdx_current_header(vhdx);
	int cur = vhdx_current_header_index(vhdx) - 1, other = 1 - cur;
	uint8_t *current = raw + (size_t)cur * VHDX_HEADER_SIZE, guid[16];
	uint64_t seq = h->sequence_number, seq_other, seq_current;
	uint32_t stored;
	int rc;

	rc = vhdx_pread(vhdx, current, VHDX_HEADER_SIZE, VHDX_HEADER_AT(cur), err);
	if (rc < 0)
		return rc;
	stored = le32_load(current + 4);
	memset(current + 4, 0, 4);
	if (memcmp(current, "head", 4) != 0 || crc32c(0, current, VHDX_HEADER_SIZE) != stored ||
	    le64_load(current + 8) != seq || memcmp(current + 16, h->file_write_guid, 16) != 0 ||
	    memcmp(current + 48, h->log_guid, 16) != 0)
		return changed(vhdx, "the current header", err);
	/* [MS-VHDX] 2.2.2.1, done twice: the other header gets the current one's
	 * number plus one, then the current one plus two, and stays current. */
	if (seq <= UINT64_MAX - 2) {
		seq_other = seq + 1;
		seq_current = seq + 2;
	} else {
		seq_other = UINT64_MAX - 1;
		seq_current = UINT64_MAX;
	}
	derive_file_write_guid(h->file_write_guid, parent_name, guid);
	memcpy(current + 16, guid, 16);
	memset(current + 48, 0, 16); /* LogGuid: the log is empty */
	memcpy(raw + (size_t)other * VHDX_HEADER_SIZE, current, VHDX_HEADER_SIZE);
	le64_store(current + 8, seq_current);
	le64_store(raw + (size_t)other * VHDX_HEADER_SIZE + 8, seq_other);
	for (int i = 0; i < 2; i++) {
		uint8_t *p = raw + (size_t)i * VHDX_HEADER_SIZE;

		le32_store(p + 4, crc32c(0, p, VHDX_HEADER_SIZE));
	}
	return 0;
}

/* ---- putting it together ---- */

static int patch_new(struct vhd_patch *p, uint64_t offset, size_t len, struct error *err)
{
	p->offset = offset;
	p->len = len;
	p->bytes = calloc(1, len ? len : 1);
	if (!p->bytes)
		return error_set(err, ENOMEM, "out of memory");
	return 0;
}

static int check_name(const struct vhdx *vhdx, const char *parent_name, struct error *err)
{
	if (parent_name[0] == '\0' || strcmp(parent_name, ".") == 0 ||
	    strcmp(parent_name, "..") == 0 || strchr(parent_name, '/') || strchr(parent_name, '\\'))
		return error_set(err, EINVAL, "cannot name parent '%s' in '%s': not a file name",
				 parent_name, vhdx_path(vhdx));
	if (strlen(parent_name) > 4096)
		return error_set(err, ENAMETOOLONG, "parent name '%.64s...' of '%s' is too long",
				 parent_name, vhdx_path(vhdx));
	return 0;
}

int vhdx_relocation(struct vhdx *vhdx, const char *parent_name, struct vhd_patch *patches,
		    size_t max, size_t *count, struct error *err)
{
	uint8_t *table = NULL, *item = NULL, *headers = NULL;
	struct range *others = NULL;
	size_t n = 0, item_len = 0, others_count = 0;
	char *relative = NULL;
	uint64_t region;
	uint32_t region_len, loc_offset, loc_length, index = 0, at;
	int rc;

	*count = 0;
	if (max < VHDX_RELOCATION_MAX_PATCHES)
		return error_set(err, EINVAL, "relocating '%s' needs room for %d patches",
				 vhdx_path(vhdx), VHDX_RELOCATION_MAX_PATCHES);
	memset(patches, 0, max * sizeof(*patches));
	if (!vhdx_has_parent(vhdx))
		return error_set(err, EINVAL, "'%s' is not a differencing disk", vhdx_path(vhdx));
	rc = check_name(vhdx, parent_name, err);
	if (rc < 0)
		return rc;
	relative = malloc(strlen(parent_name) + 3);
	table = malloc(VHDX_METADATA_TABLE_SIZE);
	headers = malloc(2 * VHDX_HEADER_SIZE);
	if (!relative || !table || !headers) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	strcpy(relative, ".\\");
	strcat(relative, parent_name);
	rc = locator_build(vhdx, relative, &item, &item_len, err);
	if (rc == 0)
		rc = metadata_read(vhdx, table, &index, &others, &others_count, err);
	if (rc == 0)
		rc = headers_build(vhdx, parent_name, headers, err);
	if (rc < 0)
		goto out;
	vhdx_metadata_region(vhdx, &region, &region_len);
	vhdx_locator_place(vhdx, &loc_offset, &loc_length);
	/* In place when it fits, else the first free place (the old one counts as free). */
	if (item_len <= loc_length)
		at = loc_offset;
	else if (!find_room(others, others_count, region_len, item_len, &at)) {
		rc = error_set(err, ENOSPC,
			       "the metadata region of '%s' (%u bytes) has no room for a parent "
			       "locator of %zu bytes",
			       vhdx_path(vhdx), region_len, item_len);
		goto out;
	}

	/* 1, 2: the headers. */
	for (int i = 0; i < 2; i++) {
		rc = patch_new(&patches[n], VHDX_HEADER_AT(i), VHDX_HEADER_SIZE, err);
		if (rc < 0)
			goto out;
		memcpy(patches[n++].bytes, headers + (size_t)i * VHDX_HEADER_SIZE, VHDX_HEADER_SIZE);
	}
	/* 3: the locator's entry in the metadata table. */
	rc = patch_new(&patches[n], region + 32 + (uint64_t)index * METADATA_ENTRY_SIZE,
		       METADATA_ENTRY_SIZE, err);
	if (rc < 0)
		goto out;
	memcpy(patches[n].bytes, table + 32 + (size_t)index * METADATA_ENTRY_SIZE,
	       METADATA_ENTRY_SIZE);
	le32_store(patches[n].bytes + 16, at);
	le32_store(patches[n].bytes + 20, (uint32_t)item_len);
	n++;
	/* 4, 5: the item, its old place zeroed (one patch where they meet). */
	{
		uint64_t old_end = (uint64_t)loc_offset + loc_length,
			 new_end = (uint64_t)at + item_len;

		if (at <= old_end && loc_offset <= new_end) {
			uint64_t lo = at < loc_offset ? at : loc_offset;
			uint64_t hi = new_end > old_end ? new_end : old_end;

			rc = patch_new(&patches[n], region + lo, (size_t)(hi - lo), err);
			if (rc < 0)
				goto out;
			memcpy(patches[n++].bytes + (at - lo), item, item_len);
		} else {
			bool new_first = at < loc_offset;

			rc = patch_new(&patches[n + !new_first], region + at, item_len, err);
			if (rc == 0)
				rc = patch_new(&patches[n + new_first], region + loc_offset,
					       loc_length, err);
			if (rc < 0) {
				n += 2;
				goto out;
			}
			memcpy(patches[n + !new_first].bytes, item, item_len);
			n += 2;
		}
	}
	*count = n;
out:
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(patches[i].bytes);
		memset(patches, 0, max * sizeof(*patches));
	}
	free(others);
	free(item);
	free(headers);
	free(table);
	free(relative);
	return rc;
}

int vhdx_log_emptied(struct vhdx *vhdx, struct vhd_patch *patches, size_t max, size_t *count,
		     struct error *err)
{
	uint8_t *headers;
	size_t n = 0;
	int rc;

	*count = 0;
	if (max < 2)
		return error_set(err, EINVAL, "emptying the log of '%s' needs room for 2 patches",
				 vhdx_path(vhdx));
	memset(patches, 0, max * sizeof(*patches));
	if (!vhdx_log_replayed(vhdx, NULL))
		return 0;
	headers = malloc(2 * VHDX_HEADER_SIZE);
	if (!headers)
		return error_set(err, ENOMEM, "out of memory");
	rc = headers_build(vhdx, "", headers, err);
	for (int i = 0; rc == 0 && i < 2; i++) {
		rc = patch_new(&patches[n], VHDX_HEADER_AT(i), VHDX_HEADER_SIZE, err);
		if (rc == 0)
			memcpy(patches[n++].bytes, headers + (size_t)i * VHDX_HEADER_SIZE, VHDX_HEADER_SIZE);
	}
	free(headers);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(patches[i].bytes);
		memset(patches, 0, max * sizeof(*patches));
		return rc;
	}
	*count = n;
	return 0;
}
