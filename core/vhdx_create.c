/*
 * vhdx_create.c - new VHDX files: fixed, dynamic, and differencing (AVHDX)
 * over a VHDX parent, laid out as Hyper-V lays them out (docs/VHDX.md,
 * "Writing").
 */
#include "vhdx.h"
#include "vhdx_internal.h"

#include "bigendian.h"
#include "crc32c.h"
#include "error.h"
#include "fsutil.h"
#include "impex_config.h"
#include "pathbuf.h"
#include "pathmap.h"
#include "utf16.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* Hyper-V's layout: the log at 1 MiB, the metadata region at 2 MiB, the BAT at 3 MiB. */
#define LOG_AT	    VHDX_MIB
#define METADATA_AT (2ull * VHDX_MIB)
#define BAT_AT	    (3ull * VHDX_MIB)
#define ITEMS_AT    (64u * 1024) /* the first item, after the 64 KiB table */
#define CREATOR	    "impexfs " IMPEX_VERSION
/* Room for a parent locator: its keys and three paths of up to 32,767 UTF-16 units. */
#define LOCATOR_MAX (200u * 1024)

/* Everything a new file is made of. */
struct new_file {
	uint64_t size;
	uint32_t block_size;
	uint32_t logical;
	uint32_t physical;
	bool fixed;
	bool has_parent;
	uint8_t disk_id[16];
	const uint8_t *locator; /* the parent locator item, or NULL */
	size_t locator_len;
	/* Computed by plan(). */
	uint64_t block_count;
	uint64_t bat_entries;
	uint32_t bat_length;
	uint64_t data_at; /* the first block (fixed) */
	uint64_t file_size;
};

/* The BAT's size and the file's, as the reader (vhdx.c) and [MS-VHDX] 2.5 count them. */
static int plan(struct new_file *f, struct error *err)
{
	uint64_t ratio = VHDX_CHUNK_SECTORS * f->logical / f->block_size;
	uint64_t chunks, bytes;

	f->block_count = (f->size + f->block_size - 1) / f->block_size;
	chunks = (f->block_count + ratio - 1) / ratio;
	if (f->has_parent)
		f->bat_entries = chunks * (ratio + 1);
	else
		f->bat_entries = f->block_count + (f->block_count - 1) / ratio;
	bytes = (f->bat_entries * 8 + VHDX_MIB - 1) / VHDX_MIB * VHDX_MIB;
	if (bytes > UINT32_MAX / VHDX_MIB * VHDX_MIB)
		return error_set(
			err, EINVAL,
			"a disk of %llu bytes in %u-byte blocks needs a BAT of %llu bytes, "
			"more than a VHDX region holds: choose larger blocks",
			(unsigned long long)f->size, f->block_size, (unsigned long long)bytes);
	f->bat_length = (uint32_t)bytes;
	f->data_at = BAT_AT + f->bat_length;
	f->file_size = f->data_at + (f->fixed ? f->block_count * f->block_size : 0);
	return 0;
}

/* The file identifier, headers and region tables: the first 320 KiB. */
static void header_section(const struct new_file *f, uint8_t *raw)
{
	uint8_t file_write[16], data_write[16], *table;
	const char *creator = CREATOR;

	memset(raw, 0, VHDX_REGION2_AT + VHDX_REGION_SIZE);
	memcpy(raw, "vhdxfile", 8);
	for (size_t i = 0; creator[i]; i++) /* ASCII as UTF-16LE */
		raw[8 + 2 * i] = (uint8_t)creator[i];
	uuid_generate_random(file_write);
	uuid_generate_random(data_write);
	/* Both headers alike but for the sequence number: the second is current. */
	vhdx_header_encode_new(raw + VHDX_HEADER1_AT, 1, file_write, data_write);
	vhdx_header_encode_new(raw + VHDX_HEADER2_AT, 2, file_write, data_write);
	table = raw + VHDX_REGION1_AT;
	memcpy(table, "regi", 4);
	le32_store(table + 8, 2);
	vhdx_guid_constant(VHDX_GUID_BAT, table + 16);
	le64_store(table + 32, BAT_AT);
	le32_store(table + 40, f->bat_length);
	le32_store(table + 44, 1); /* required */
	vhdx_guid_constant(VHDX_GUID_METADATA, table + 48);
	le64_store(table + 64, METADATA_AT);
	le32_store(table + 72, VHDX_MIB);
	le32_store(table + 76, 1);
	le32_store(table + 4, crc32c(0, table, VHDX_REGION_SIZE));
	memcpy(raw + VHDX_REGION2_AT, table, VHDX_REGION_SIZE);
}

/* The metadata region's first bytes: the table and the items after it, @len bytes. */
static int metadata_region(const struct new_file *f, uint8_t *raw, size_t *len)
{
	struct {
		const char *guid;
		uint32_t flags;
		const uint8_t *data;
		uint32_t len;
	} items[6];
	uint8_t params[8], size[8], logical[4], physical[4];
	uint32_t at = ITEMS_AT;
	int n = 0;

	le32_store(params, f->block_size);
	le32_store(params + 4, (f->fixed ? FILE_PARAM_LEAVE_ALLOC : 0) |
				     (f->has_parent ? FILE_PARAM_HAS_PARENT : 0));
	le64_store(size, f->size);
	le32_store(logical, f->logical);
	le32_store(physical, f->physical);
	/* The items and flags Hyper-V writes, in its order. */
	items[n++] = (typeof(items[0])){VHDX_GUID_FILE_PARAMS, VHDX_METADATA_IS_REQUIRED, params, 8};
	items[n++] = (typeof(items[0])){
		VHDX_GUID_DISK_SIZE, VHDX_METADATA_IS_VIRTUAL_DISK | VHDX_METADATA_IS_REQUIRED, size, 8};
	items[n++] = (typeof(items[0])){
		VHDX_GUID_DISK_ID, VHDX_METADATA_IS_VIRTUAL_DISK | VHDX_METADATA_IS_REQUIRED, f->disk_id, 16};
	items[n++] = (typeof(items[0])){
		VHDX_GUID_LOGICAL, VHDX_METADATA_IS_VIRTUAL_DISK | VHDX_METADATA_IS_REQUIRED, logical, 4};
	items[n++] = (typeof(items[0])){
		VHDX_GUID_PHYSICAL, VHDX_METADATA_IS_VIRTUAL_DISK | VHDX_METADATA_IS_REQUIRED, physical, 4};
	if (f->locator)
		items[n++] = (typeof(items[0])){VHDX_GUID_LOCATOR, VHDX_METADATA_IS_REQUIRED, f->locator,
						(uint32_t)f->locator_len};
	memset(raw, 0, ITEMS_AT + 64 + LOCATOR_MAX);
	memcpy(raw, "metadata", 8);
	le16_store(raw + 10, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		uint8_t *e = raw + 32 + 32 * i;

		if (items[i].len > ITEMS_AT + 64 + LOCATOR_MAX - at)
			return -ENAMETOOLONG;
		vhdx_guid_constant(items[i].guid, e);
		le32_store(e + 16, at);
		le32_store(e + 20, items[i].len);
		le32_store(e + 24, items[i].flags);
		memcpy(raw + at, items[i].data, items[i].len);
		at += (items[i].len + 7) / 8 * 8;
	}
	*len = at;
	return 0;
}

/* Write the new file @f into @fd (empty): its size first, so the log, the BAT of
 * a dynamic disk and the blocks of a fixed one are holes that read as zeros. */
static int fill(int fd, const struct new_file *f)
{
	size_t section = VHDX_REGION2_AT + VHDX_REGION_SIZE, meta_len = 0;
	size_t meta_cap = ITEMS_AT + 64 + LOCATOR_MAX;
	uint8_t *raw = malloc(section > meta_cap ? section : meta_cap);
	int rc;

	if (!raw)
		return -ENOMEM;
	if (ftruncate(fd, (off_t)f->file_size) < 0) {
		rc = -errno;
		goto out;
	}
	header_section(f, raw);
	rc = fsutil_pwrite_full(fd, raw, section, 0);
	if (rc == 0)
		rc = metadata_region(f, raw, &meta_len);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, raw, meta_len, METADATA_AT);
	/* A fixed disk: every block FULLY_PRESENT, in order after the BAT; the
	 * sector bitmap entries between chunks stay NOT_PRESENT (zero). */
	if (rc == 0 && f->fixed) {
		uint64_t ratio = VHDX_CHUNK_SECTORS * f->logical / f->block_size;
		uint64_t page = VHDX_MIB / 8, block = 0;

		for (uint64_t first = 0; rc == 0 && first < f->bat_entries; first += page) {
			uint64_t n = f->bat_entries - first < page ? f->bat_entries - first : page;

			memset(raw, 0, (size_t)n * 8);
			for (uint64_t i = 0; i < n; i++) {
				if ((first + i) % (ratio + 1) == ratio)
					continue;
				le64_store(raw + i * 8, (f->data_at + block * f->block_size) |
								VHDX_BLOCK_FULLY_PRESENT);
				block++;
			}
			rc = fsutil_pwrite_full(fd, raw, (size_t)n * 8, BAT_AT + first * 8);
		}
	}
out:
	free(raw);
	return rc;
}

/*
 * Make @path from @f: built under a temporary name in the same folder
 * (".NAME.tmp-XXXXXXXX"), fsynced, then named @path with renameat2's
 * RENAME_NOREPLACE and the folder fsynced, so that @path never names a file
 * half made; on failure the temporary file is removed.
 */
static int create_named(const char *path, const struct new_file *f, struct error *err)
{
	struct pathbuf tmp = PATHBUF_INIT;
	const char *base = strrchr(path, '/');
	int dir_len = base ? (int)(base - path + 1) : 0;
	int fd = -1, rc;

	base = base ? base + 1 : path;
	if (fsutil_name_taken(path))
		return error_set(err, EEXIST, "'%s' already exists", path);
	for (int attempt = 0;; attempt++) {
		uint8_t tag[16];

		uuid_generate_random(tag);
		/* The name cut to 200 bytes keeps the temporary name within NAME_MAX. */
		if (pathbuf_setf(&tmp, "%.*s.%.200s.tmp-%02x%02x%02x%02x", dir_len, path, base,
				 tag[0], tag[1], tag[2], tag[3]) < 0) {
			rc = error_set(err, ENOMEM, "out of memory");
			goto out;
		}
		fd = open(tmp.buf, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0 || errno != EEXIST || attempt > 16)
			break;
	}
	if (fd < 0) {
		rc = error_errno(err, errno, "cannot create", path);
		goto out;
	}
	rc = fill(fd, f);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat2(AT_FDCWD, tmp.buf, AT_FDCWD, path, RENAME_NOREPLACE) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp.buf);
		if (rc == -EEXIST)
			rc = error_set(err, EEXIST, "'%s' already exists", path);
		else
			rc = error_errno(err, -rc, "cannot write", path);
		goto out;
	}
	rc = fsutil_fsync_parent(path);
	if (rc < 0)
		rc = error_errno(err, -rc, "cannot sync the folder of", path);
out:
	pathbuf_release(&tmp);
	return rc;
}

/* ---- fixed and dynamic ---- */

int vhdx_create_check(const struct vhdx_create_options *o, struct error *err)
{
	uint32_t logical =
		o->logical_sector_size ? o->logical_sector_size : VHDX_DEFAULT_LOGICAL_SECTOR;
	uint32_t physical =
		o->physical_sector_size ? o->physical_sector_size : VHDX_DEFAULT_PHYSICAL_SECTOR;

	if (o->type != VHD_TYPE_FIXED && o->type != VHD_TYPE_DYNAMIC)
		return error_set(err, EINVAL, "can only create fixed or dynamic disks");
	if (o->size == 0)
		return error_set(err, EINVAL, "a disk size of 0: the smallest disk is 1 MiB");
	if (o->size % VHDX_MIB)
		return error_set(
			err, EINVAL, "disk size %llu bytes is not a whole number of MiB (try %llu)",
			(unsigned long long)o->size,
			(unsigned long long)((o->size + VHDX_MIB - 1) / VHDX_MIB * VHDX_MIB));
	if (o->size > VHDX_MAX_SIZE)
		return error_set(err, EINVAL,
				 "disk size %llu bytes is over the VHDX limit of 64 TiB",
				 (unsigned long long)o->size);
	if (o->block_size && (!vhd_is_power_of_two(o->block_size) || o->block_size < VHDX_MIN_BLOCK ||
			      o->block_size > VHDX_MAX_BLOCK))
		return error_set(err, EINVAL,
				 "block size %u is not a power of two from 1 MiB to 256 MiB",
				 o->block_size);
	if (logical != 512 && logical != 4096)
		return error_set(err, EINVAL, "logical sector size %u is not 512 or 4096", logical);
	if (physical != 512 && physical != 4096)
		return error_set(err, EINVAL, "physical sector size %u is not 512 or 4096",
				 physical);
	if (physical < logical)
		return error_set(
			err, EINVAL,
			"physical sector size %u is smaller than the logical sector size %u",
			physical, logical);
	return 0;
}

int vhdx_create(const char *path, const struct vhdx_create_options *o, struct error *err)
{
	struct new_file f;
	int rc;

	rc = vhdx_create_check(o, err);
	if (rc < 0)
		return rc;
	memset(&f, 0, sizeof(f));
	f.size = o->size;
	f.fixed = o->type == VHD_TYPE_FIXED;
	f.block_size = o->block_size ? o->block_size
		       : f.fixed     ? VHDX_DEFAULT_FIXED_BLOCK
				     : VHDX_DEFAULT_DYNAMIC_BLOCK;
	f.logical = o->logical_sector_size ? o->logical_sector_size : VHDX_DEFAULT_LOGICAL_SECTOR;
	f.physical =
		o->physical_sector_size ? o->physical_sector_size : VHDX_DEFAULT_PHYSICAL_SECTOR;
	if (o->disk_id)
		memcpy(f.disk_id, o->disk_id, 16);
	else
		uuid_generate_random(f.disk_id);
	rc = plan(&f, err);
	if (rc < 0)
		return rc;
	return create_named(path, &f, err);
}

/* ---- differencing ---- */

/* The locator under construction: the item's bytes. */
struct locator {
	uint8_t item[LOCATOR_MAX];
	size_t len;
	uint16_t count;
	const char *key[4];
	const char *value[4];
};

/* Lay out the locator of @l's pairs ([MS-VHDX] 2.6.2.6): header, entries, strings. */
static int locator_build(struct locator *l, struct error *err)
{
	size_t at = 20 + 12 * (size_t)l->count;
	uint8_t type[16];

	memset(l->item, 0, sizeof(l->item));
	vhdx_guid_constant(VHDX_GUID_LOCATOR_VHDX, type);
	memcpy(l->item, type, 16);
	le16_store(l->item + 18, l->count);
	for (uint16_t i = 0; i < l->count; i++) {
		uint8_t *e = l->item + 20 + 12 * (size_t)i;
		size_t klen, vlen;
		int rc;

		rc = utf16_encode(l->key[i], UTF16_LE, l->item + at, sizeof(l->item) - at, &klen,
				  err);
		if (rc == 0)
			rc = utf16_encode(l->value[i], UTF16_LE, l->item + at + klen,
					  sizeof(l->item) - at - klen, &vlen, err);
		if (rc < 0)
			return error_prefix(err, "the parent locator's %s '%s'", l->key[i],
					    l->value[i]);
		if (klen > UINT16_MAX || vlen > UINT16_MAX)
			return error_set(err, ENAMETOOLONG,
					 "the parent locator's %s '%s' is too long", l->key[i],
					 l->value[i]);
		le32_store(e, (uint32_t)at);
		le32_store(e + 4, (uint32_t)(at + klen));
		le16_store(e + 8, (uint16_t)klen);
		le16_store(e + 10, (uint16_t)vlen);
		at += klen + vlen;
	}
	l->len = at;
	return 0;
}

/* "\\?\C:\dir\file" or "\\?\UNC\server\share\file": the Win32 file namespace form
 * Hyper-V writes for absolute_win32_path, of a Windows path from pathmap_to_windows. */
static int win32_namespace(const char *windows, char *out, size_t cap)
{
	int n;

	if (windows[0] == '\\' && windows[1] == '\\')
		n = snprintf(out, cap, "\\\\?\\UNC\\%s", windows + 2);
	else
		n = snprintf(out, cap, "\\\\?\\%s", windows);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int vhdx_create_differencing(const char *path, const char *parent_path, const struct pathmap *map,
			     struct error *err)
{
	struct vhdx *parent = NULL;
	struct locator *l = NULL;
	struct new_file f;
	char parent_abs[PATH_MAX], child_dir[PATH_MAX], relative[PATH_MAX];
	char windows[PATH_MAX], win32[PATH_MAX + 8], linkage[39];
	int rc;

	rc = vhdx_open(&parent, parent_path, VHDX_OPEN_READ, err);
	if (rc < 0)
		return error_prefix(err, "cannot use '%s' as a parent", parent_path);
	rc = pathmap_child_places(path, parent_path, parent_abs, child_dir, err);
	if (rc < 0)
		goto out;
	l = calloc(1, sizeof(*l));
	if (!l) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	/* parent_linkage: the parent's DataWriteGuid, which any write to the
	 * parent's data renews (so that a changed parent is noticed). */
	vhdx_guid_format(vhdx_data_write_guid(parent), linkage);
	l->key[l->count] = VHDX_KEY_PARENT_LINKAGE;
	l->value[l->count++] = linkage;
	rc = pathmap_windows_relative(child_dir, parent_abs, relative, sizeof(relative));
	if (rc < 0) {
		rc = error_set(err, -rc, "cannot record the path of '%s' relative to '%s'",
			       parent_abs, child_dir);
		goto out;
	}
	l->key[l->count] = VHDX_KEY_RELATIVE_PATH;
	l->value[l->count++] = relative;
	/* volume_path is left out: it names the Windows volume by its GUID, which
	 * nothing on this side knows (docs/VHDX.md). */
	if (pathmap_to_windows(map, parent_abs, windows, sizeof(windows)) == 0) {
		if (win32_namespace(windows, win32, sizeof(win32)) < 0) {
			rc = error_set(err, ENAMETOOLONG, "the Windows path of '%s' is too long",
				       parent_abs);
			goto out;
		}
		l->key[l->count] = VHDX_KEY_ABSOLUTE_WIN32_PATH;
		l->value[l->count++] = win32;
	}
	rc = locator_build(l, err);
	if (rc < 0)
		goto out;
	memset(&f, 0, sizeof(f));
	/* The IsVirtualDisk items come from the parent ([MS-VHDX] 2.6.1.2: copied
	 * when forking): size, virtual disk ID, sector sizes. */
	f.size = vhdx_size(parent);
	f.logical = vhdx_logical_sector_size(parent);
	f.physical = vhdx_physical_sector_size(parent);
	memcpy(f.disk_id, vhdx_disk_id(parent), 16);
	f.block_size = VHDX_DEFAULT_DIFFERENCING_BLOCK;
	f.has_parent = true;
	f.locator = l->item;
	f.locator_len = l->len;
	rc = plan(&f, err);
	if (rc == 0)
		rc = create_named(path, &f, err);
out:
	free(l);
	vhdx_close(parent);
	return rc;
}
