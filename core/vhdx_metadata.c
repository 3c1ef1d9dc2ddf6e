/*
 * vhdx_metadata.c - the metadata region of a VHDX ([MS-VHDX] 2.6): its
 * table, the known items (file parameters, sizes, disk ID), and the parent
 * locator of a differencing disk with its keys and values.
 */
#include "vhdx.h"
#include "vhdx_internal.h"

#include "bigendian.h"
#include "error.h"
#include "utf16.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The known metadata items, in the order of the table in [MS-VHDX] 2.6.2. */
enum item {
	ITEM_FILE_PARAMS,
	ITEM_DISK_SIZE,
	ITEM_DISK_ID,
	ITEM_LOGICAL,
	ITEM_PHYSICAL,
	ITEM_LOCATOR,
	ITEM_COUNT,
};

static const struct {
	const char *guid;
	const char *name;
	uint32_t min_length;
} items[ITEM_COUNT] = {
	[ITEM_FILE_PARAMS] = {VHDX_GUID_FILE_PARAMS, "file parameters", 8},
	[ITEM_DISK_SIZE] = {VHDX_GUID_DISK_SIZE, "virtual disk size", 8},
	[ITEM_DISK_ID] = {VHDX_GUID_DISK_ID, "virtual disk ID", 16},
	[ITEM_LOGICAL] = {VHDX_GUID_LOGICAL, "logical sector size", 4},
	[ITEM_PHYSICAL] = {VHDX_GUID_PHYSICAL, "physical sector size", 4},
	[ITEM_LOCATOR] = {VHDX_GUID_LOCATOR, "parent locator", LOCATOR_HEADER_SIZE},
};

struct item_place {
	bool present;
	uint32_t offset; /* within the metadata region */
	uint32_t length;
};

static int read_item(struct vhdx *vhdx, const struct item_place *place, enum item which,
		     uint8_t *buf, struct error *err)
{
	if (place->length < items[which].min_length)
		return error_set(err, EINVAL,
				 "the %s metadata item of '%s' is %u bytes, too short (%u needed)",
				 items[which].name, vhdx->io.path, place->length,
				 items[which].min_length);
	return vhdx_pread(vhdx, buf, items[which].min_length, vhdx->metadata_offset + place->offset,
			  err);
}

static bool has_nul_unit(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		if (p[i] == 0 && p[i + 1] == 0)
			return true;
	return false;
}

/* Decode one key or value of the locator (@what: "key" or "value" of entry @i). */
static int locator_string(struct vhdx *vhdx, const uint8_t *item, uint32_t item_len,
			  uint32_t offset, uint16_t length, size_t i, const char *what, char **out,
			  struct error *err)
{
	size_t n;
	int rc;

	if (offset == 0 || length == 0 || length % 2 || offset > item_len ||
	    length > item_len - offset)
		return error_set(err, EINVAL,
				 "the %s of parent locator entry %zu of '%s' (offset %u, %u bytes) "
				 "lies outside the locator (%u bytes) or is empty or odd",
				 what, i, vhdx->io.path, offset, length, item_len);
	if (has_nul_unit(item + offset, length))
		return error_set(err, EINVAL,
				 "the %s of parent locator entry %zu of '%s' holds a NUL character",
				 what, i, vhdx->io.path);
	rc = utf16_decode_alloc(item + offset, length, UTF16_LE, out, &n, err);
	if (rc < 0)
		return error_prefix(err, "the %s of parent locator entry %zu of '%s'", what, i,
				    vhdx->io.path);
	return 0;
}

static int read_locator(struct vhdx *vhdx, const struct item_place *place, struct error *err)
{
	uint8_t type[16], *item = NULL;
	uint32_t len = place->length;
	uint16_t count;
	int rc;
	bool has_path = false;

	if (len < LOCATOR_HEADER_SIZE)
		return error_set(err, EINVAL, "the parent locator of '%s' is %u bytes, too short",
				 vhdx->io.path, len);
	item = malloc(len);
	if (!item)
		return error_set(err, ENOMEM, "out of memory");
	rc = vhdx_pread(vhdx, item, len, vhdx->metadata_offset + place->offset, err);
	if (rc < 0)
		goto out;
	vhdx_guid_constant(VHDX_GUID_LOCATOR_VHDX, type);
	if (memcmp(item, type, 16) != 0) {
		char name[39];

		vhdx_guid_format(item, name);
		rc = error_set(err, EINVAL,
			       "the parent locator of '%s' is of type %s, not a VHDX locator",
			       vhdx->io.path, name);
		goto out;
	}
	count = le16_load(item + 18);
	if (count > VHDX_MAX_LOCATOR_ENTRIES ||
	    LOCATOR_HEADER_SIZE + (uint32_t)count * LOCATOR_ENTRY_SIZE > len) {
		rc = error_set(err, EINVAL,
			       "the parent locator of '%s' declares %u entries, more than its %u "
			       "bytes hold (or than %u)",
			       vhdx->io.path, count, len, VHDX_MAX_LOCATOR_ENTRIES);
		goto out;
	}
	vhdx->locator = calloc(count ? count : 1, sizeof(*vhdx->locator));
	if (!vhdx->locator) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		const uint8_t *e = item + LOCATOR_HEADER_SIZE + i * LOCATOR_ENTRY_SIZE;
		char *key = NULL, *value = NULL;

		rc = locator_string(vhdx, item, len, le32_load(e), le16_load(e + 8), i, "key", &key,
				    err);
		if (rc == 0)
			rc = locator_string(vhdx, item, len, le32_load(e + 4), le16_load(e + 10), i,
					    "value", &value, err);
		if (rc < 0) {
			free(key);
			goto out;
		}
		vhdx->locator[i].key = key;
		vhdx->locator[i].value = value;
		vhdx->locator_count = i + 1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(vhdx->locator[j].key, key) == 0) {
				rc = error_set(err, EINVAL,
					       "the parent locator of '%s' has key '%s' twice",
					       vhdx->io.path, key);
				goto out;
			}
	}
	for (size_t i = 0; i < vhdx->locator_count; i++) {
		const struct vhdx_locator_entry *l = &vhdx->locator[i];
		uint8_t guid[16];

		if (strcmp(l->key, VHDX_KEY_PARENT_LINKAGE) == 0 ||
		    strcmp(l->key, VHDX_KEY_PARENT_LINKAGE2) == 0) {
			if (vhdx_guid_parse(l->value, guid) < 0) {
				rc = error_set(err, EINVAL,
					       "the parent locator of '%s' has %s '%s', not a GUID "
					       "in braces",
					       vhdx->io.path, l->key, l->value);
				goto out;
			}
		} else if (strcmp(l->key, VHDX_KEY_RELATIVE_PATH) == 0 ||
			   strcmp(l->key, VHDX_KEY_VOLUME_PATH) == 0 ||
			   strcmp(l->key, VHDX_KEY_ABSOLUTE_WIN32_PATH) == 0) {
			has_path = true;
		}
	}
	if (!vhdx_locator_get(vhdx, VHDX_KEY_PARENT_LINKAGE))
		rc = error_set(err, EINVAL, "the parent locator of '%s' has no parent_linkage",
			       vhdx->io.path);
	else if (!has_path)
		rc = error_set(err, EINVAL,
			       "the parent locator of '%s' has no relative_path, volume_path or "
			       "absolute_win32_path",
			       vhdx->io.path);
out:
	free(item);
	return rc;
}

int vhdx_metadata_read(struct vhdx *vhdx, struct error *err)
{
	struct item_place place[ITEM_COUNT];
	uint8_t known[ITEM_COUNT][16], buf[16];
	uint8_t *table;
	uint16_t count;
	int rc = 0;

	memset(place, 0, sizeof(place));
	for (int k = 0; k < ITEM_COUNT; k++)
		vhdx_guid_constant(items[k].guid, known[k]);
	table = malloc(VHDX_METADATA_TABLE_SIZE);
	if (!table)
		return error_set(err, ENOMEM, "out of memory");
	rc = vhdx_pread(vhdx, table, VHDX_METADATA_TABLE_SIZE, vhdx->metadata_offset, err);
	if (rc < 0)
		goto out;
	if (memcmp(table, "metadata", 8) != 0) {
		rc = error_set(err, EINVAL,
			       "the metadata region of '%s' has no 'metadata' signature",
			       vhdx->io.path);
		goto out;
	}
	count = le16_load(table + 10);
	if (count > METADATA_MAX_ENTRIES) {
		rc = error_set(err, EINVAL,
			       "the metadata table of '%s' declares %u entries, more than the 2047 "
			       "allowed",
			       vhdx->io.path, count);
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = table + 32 + (size_t)i * METADATA_ENTRY_SIZE;
		uint32_t offset = le32_load(e + 16), length = le32_load(e + 20),
			 flags = le32_load(e + 24);
		char name[39];
		int which = -1;

		vhdx_guid_format(e, name);
		for (uint32_t j = 0; j < i; j++) {
			const uint8_t *o = table + 32 + (size_t)j * METADATA_ENTRY_SIZE;

			if (memcmp(o, e, 16) == 0 &&
			    ((le32_load(o + 24) ^ flags) & VHDX_METADATA_IS_USER) == 0) {
				rc = error_set(err, EINVAL,
					       "the metadata table of '%s' lists item %s twice",
					       vhdx->io.path, name);
				goto out;
			}
			if (length && le32_load(o + 20) &&
			    vhd_ranges_overlap(offset, length, le32_load(o + 16),
					       le32_load(o + 20))) {
				rc = error_set(err, EINVAL,
					       "metadata items %u and %u of '%s' overlap", j, i,
					       vhdx->io.path);
				goto out;
			}
		}
		if (length > METADATA_MAX_ITEM) {
			rc = error_set(err, EINVAL,
				       "metadata item %s of '%s' is %u bytes, more than 1 MiB",
				       name, vhdx->io.path, length);
			goto out;
		}
		if (length == 0 && offset != 0) {
			rc = error_set(err, EINVAL,
				       "metadata item %s of '%s' is empty but has offset %u", name,
				       vhdx->io.path, offset);
			goto out;
		}
		if (length &&
		    (offset < VHDX_METADATA_TABLE_SIZE || offset > vhdx->metadata_length ||
		     length > vhdx->metadata_length - offset)) {
			rc = error_set(
				err, EINVAL,
				"metadata item %s of '%s' (offset %u, %u bytes) lies outside "
				"the metadata region (%u bytes) or over its table",
				name, vhdx->io.path, offset, length, vhdx->metadata_length);
			goto out;
		}
		if (!(flags & VHDX_METADATA_IS_USER))
			for (int k = 0; k < ITEM_COUNT; k++)
				if (memcmp(e, known[k], 16) == 0)
					which = k;
		if (which < 0) {
			if (flags & VHDX_METADATA_IS_REQUIRED) {
				rc = error_set(err, EINVAL,
					       "'%s' has a required metadata item %s that impexfs "
					       "does not know",
					       vhdx->io.path, name);
				goto out;
			}
			continue;
		}
		place[which] = (struct item_place){true, offset, length};
	}
	for (int k = 0; k < ITEM_COUNT; k++)
		if (k != ITEM_LOCATOR && !place[k].present) {
			rc = error_set(err, EINVAL, "'%s' has no %s metadata item", vhdx->io.path,
				       items[k].name);
			goto out;
		}
	rc = read_item(vhdx, &place[ITEM_FILE_PARAMS], ITEM_FILE_PARAMS, buf, err);
	if (rc < 0)
		goto out;
	vhdx->block_size = le32_load(buf);
	vhdx->leave_allocated = le32_load(buf + 4) & FILE_PARAM_LEAVE_ALLOC;
	vhdx->has_parent = le32_load(buf + 4) & FILE_PARAM_HAS_PARENT;
	rc = read_item(vhdx, &place[ITEM_DISK_SIZE], ITEM_DISK_SIZE, buf, err);
	if (rc < 0)
		goto out;
	vhdx->size = le64_load(buf);
	rc = read_item(vhdx, &place[ITEM_DISK_ID], ITEM_DISK_ID, vhdx->disk_id, err);
	if (rc == 0)
		rc = read_item(vhdx, &place[ITEM_LOGICAL], ITEM_LOGICAL, buf, err);
	if (rc < 0)
		goto out;
	vhdx->logical = le32_load(buf);
	rc = read_item(vhdx, &place[ITEM_PHYSICAL], ITEM_PHYSICAL, buf, err);
	if (rc < 0)
		goto out;
	vhdx->physical = le32_load(buf);

	if (!vhd_is_power_of_two(vhdx->block_size) || vhdx->block_size < VHDX_MIN_BLOCK ||
	    vhdx->block_size > VHDX_MAX_BLOCK) {
		rc = error_set(err, EINVAL,
			       "'%s' has a block size of %u bytes; want a power of two from 1 MiB "
			       "to 256 MiB",
			       vhdx->io.path, vhdx->block_size);
		goto out;
	}
	if (vhdx->logical != 512 && vhdx->logical != 4096) {
		rc = error_set(err, EINVAL,
			       "'%s' has a logical sector size of %u bytes; want 512 or 4096",
			       vhdx->io.path, vhdx->logical);
		goto out;
	}
	if (vhdx->physical != 512 && vhdx->physical != 4096) {
		rc = error_set(err, EINVAL,
			       "'%s' has a physical sector size of %u bytes; want 512 or 4096",
			       vhdx->io.path, vhdx->physical);
		goto out;
	}
	if (vhdx->size == 0 || vhdx->size % vhdx->logical || vhdx->size > VHDX_MAX_SIZE) {
		rc = error_set(err, EINVAL,
			       "'%s' has a disk size of %llu bytes; want whole %u-byte sectors, "
			       "at most 64 TiB",
			       vhdx->io.path, (unsigned long long)vhdx->size, vhdx->logical);
		goto out;
	}
	if (vhdx->has_parent && !place[ITEM_LOCATOR].present) {
		rc = error_set(err, EINVAL, "'%s' has a parent (HasParent) but no parent locator",
			       vhdx->io.path);
		goto out;
	}
	if (!vhdx->has_parent && place[ITEM_LOCATOR].present) {
		rc = error_set(err, EINVAL,
			       "'%s' has a parent locator but no parent (HasParent is clear)",
			       vhdx->io.path);
		goto out;
	}
	if (vhdx->has_parent) {
		rc = read_locator(vhdx, &place[ITEM_LOCATOR], err);
		vhdx->locator_offset = place[ITEM_LOCATOR].offset;
		vhdx->locator_length = place[ITEM_LOCATOR].length;
	}
out:
	free(table);
	return rc;
}
