#include "disk.h"

#include "error.h"
#include "fsutil.h"
#include "vhd.h"
#include "vhdx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every field set by disk_open, then read-only: the format's handle guards
 * its own state (vhd.h, vhdx.h). */
struct disk {
	enum disk_format format;
	struct vhd *vhd;
	struct vhdx *vhdx;
	uint8_t link_id[16];
};

const char *disk_format_name(enum disk_format format)
{
	return format == DISK_FORMAT_VHDX ? "VHDX" : "VHD";
}

static bool has_suffix(const char *path, const char *suffix)
{
	size_t n = strlen(path), s = strlen(suffix);

	return n > s && strcasecmp(path + n - s, suffix) == 0;
}

/* disk_probe(), keeping in *@fd (unless NULL) the file opened (fsutil_open_source(), for
 * writing if @writable) to look, or -1 if none was (the name says a VHDX). */
static int probe(const char *path, bool writable, enum disk_format *format, int *fd,
		 struct error *err)
{
	char magic[8];
	struct stat st;
	int opened, rc;

	*format = DISK_FORMAT_VHD;
	if (fd)
		*fd = -1;
	if (has_suffix(path, ".vhdx") || has_suffix(path, ".avhdx")) {
		*format = DISK_FORMAT_VHDX;
		return 0;
	}
	opened = fsutil_open_source(path, writable);
	if (opened < 0)
		return error_errno(err, -opened, "cannot open", path);
	/* Not a regular file (a FIFO would block the read): left to the VHD
	 * parser, which refuses it by name; so is a file too short for a file
	 * identifier. */
	if (fstat(opened, &st) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode))
		rc = -ENODATA;
	else
		rc = fsutil_pread_full(opened, magic, sizeof(magic), 0);
	if (rc == 0 && memcmp(magic, "vhdxfile", 8) == 0)
		*format = DISK_FORMAT_VHDX;
	else if (rc < 0 && rc != -ENODATA) {
		close(opened);
		return error_errno(err, -rc, "cannot read", path);
	}
	if (fd)
		*fd = opened;
	else
		close(opened);
	return 0;
}

int disk_probe(const char *path, enum disk_format *format, struct error *err)
{
	return probe(path, false, format, NULL, err);
}

int disk_open(struct disk **out, const char *path, int flags, struct error *err)
{
	struct disk *d;
	int fd, rc;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return error_set(err, ENOMEM, "out of memory");
	/* The file probed is the file opened. */
	rc = probe(path, flags & DISK_OPEN_WRITE, &d->format, &fd, err);
	if (rc == 0 && d->format == DISK_FORMAT_VHDX) {
		rc = vhdx_open_fd(&d->vhdx, path, fd,
				  (flags & DISK_OPEN_WRITE) ? VHDX_OPEN_WRITE : VHDX_OPEN_READ, err);
		if (rc == 0)
			memcpy(d->link_id, vhdx_data_write_guid(d->vhdx), 16);
	} else if (rc == 0) {
		rc = vhd_open_fd(&d->vhd, path, fd,
				 (flags & DISK_OPEN_WRITE) ? VHD_OPEN_WRITE : VHD_OPEN_READ, err);
		if (rc == 0)
			memcpy(d->link_id, vhd_footer(d->vhd)->uuid, 16);
	}
	if (rc < 0) {
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void disk_close(struct disk *d)
{
	if (!d)
		return;
	vhd_close(d->vhd);
	vhdx_close(d->vhdx);
	free(d);
}

enum disk_format disk_format(const struct disk *d)
{
	return d->format;
}

struct vhd *disk_vhd(const struct disk *d)
{
	return d->vhd;
}

struct vhdx *disk_vhdx(const struct disk *d)
{
	return d->vhdx;
}

const char *disk_path(const struct disk *d)
{
	return d->vhdx ? vhdx_path(d->vhdx) : vhd_path(d->vhd);
}

int disk_fd(const struct disk *d)
{
	return d->vhdx ? vhdx_fd(d->vhdx) : vhd_fd(d->vhd);
}

enum vhd_type disk_type(const struct disk *d)
{
	return d->vhdx ? vhdx_disk_type(d->vhdx) : vhd_disk_type(d->vhd);
}

uint64_t disk_size(const struct disk *d)
{
	return d->vhdx ? vhdx_size(d->vhdx) : vhd_size(d->vhd);
}

uint32_t disk_sector_size(const struct disk *d)
{
	return d->vhdx ? vhdx_logical_sector_size(d->vhdx) : VHD_SECTOR_SIZE;
}

uint32_t disk_block_size(const struct disk *d)
{
	return d->vhdx ? vhdx_block_size(d->vhdx) : vhd_block_size(d->vhd);
}

uint64_t disk_block_count(const struct disk *d)
{
	return d->vhdx ? vhdx_block_count(d->vhdx) : vhd_block_count(d->vhd);
}

bool disk_block_present(struct disk *d, uint64_t block)
{
	uint64_t offset;
	int state;

	if (!d->vhdx)
		return block <= UINT32_MAX && vhd_block_offset(d->vhd, (uint32_t)block) >= 0;
	if (vhdx_block_state(d->vhdx, block, &state, &offset, NULL) < 0)
		return block < vhdx_block_count(d->vhdx);
	return state == VHDX_BLOCK_FULLY_PRESENT || state == VHDX_BLOCK_PARTIALLY_PRESENT;
}

uint64_t disk_file_size(const struct disk *d)
{
	return d->vhdx ? vhdx_file_size(d->vhdx) : vhd_file_size(d->vhd);
}

struct timespec disk_file_mtime(const struct disk *d)
{
	return d->vhdx ? vhdx_file_mtime(d->vhdx) : vhd_file_mtime(d->vhd);
}

void disk_file_id(const struct disk *d, dev_t *dev, ino_t *ino)
{
	if (d->vhdx)
		vhdx_file_id(d->vhdx, dev, ino);
	else
		vhd_file_id(d->vhd, dev, ino);
}

const uint8_t *disk_link_id(const struct disk *d)
{
	return d->link_id;
}

const uint8_t *disk_id(const struct disk *d)
{
	return d->vhdx ? vhdx_disk_id(d->vhdx) : vhd_footer(d->vhd)->uuid;
}

void disk_id_format(const struct disk *d, const uint8_t id[16], char out[40])
{
	if (d->vhdx)
		vhdx_guid_format(id, out);
	else
		vhd_uuid_format(id, out);
}

int disk_parent_link(const struct disk *d, int which, uint8_t out[16], struct error *err)
{
	const char *key, *value;

	if (!d->vhdx) {
		if (which != 0 || vhd_disk_type(d->vhd) != VHD_TYPE_DIFFERENCING)
			return -ENOENT;
		memcpy(out, vhd_header(d->vhd)->parent_uuid, 16);
		return 0;
	}
	key = which == 0 ? VHDX_KEY_PARENT_LINKAGE : VHDX_KEY_PARENT_LINKAGE2;
	value = which <= 1 ? vhdx_locator_get(d->vhdx, key) : NULL;
	if (!value)
		return -ENOENT;
	if (vhdx_guid_parse(value, out) < 0)
		return error_set(err, EINVAL, "'%s' has a %s that is no GUID: '%s'",
				 vhdx_path(d->vhdx), key, value);
	return 0;
}

/* ---- where the parent is ---- */

static bool is_relative_code(uint32_t code)
{
	return code == VHD_PLATFORM_W2RU || code == VHD_PLATFORM_WI2R;
}

static bool is_absolute_code(uint32_t code)
{
	return code == VHD_PLATFORM_W2KU || code == VHD_PLATFORM_WI2K ||
	       code == VHD_PLATFORM_MACX;
}

/* VHD: the eight locators' relative entries, their absolute entries, then
 * the Parent Unicode Name. */
static int vhd_hint(const struct disk *d, unsigned index, struct disk_hint *hint, char *path,
		    size_t cap, struct error *err)
{
	const struct vhd_header *h = vhd_header(d->vhd);
	bool relative = index < VHD_LOCATOR_COUNT;
	unsigned i = index % VHD_LOCATOR_COUNT;
	char code[5];
	int rc;

	if (!h || index > 2 * VHD_LOCATOR_COUNT)
		return -ENOENT;
	if (index == 2 * VHD_LOCATOR_COUNT) {
		hint->kind = DISK_HINT_NAME;
		snprintf(hint->what, sizeof(hint->what), "parent name");
		rc = vhd_parent_name(d->vhd, path, cap, err);
		if (rc == 0 && !path[0])
			return -ENODATA;
		return rc;
	}
	if (relative ? !is_relative_code(h->locators[i].code)
		     : !is_absolute_code(h->locators[i].code))
		return -ENODATA;
	hint->kind = relative ? DISK_HINT_RELATIVE : DISK_HINT_ABSOLUTE;
	snprintf(hint->what, sizeof(hint->what), "%s locator %s",
		 relative ? "relative" : "absolute", vhd_platform_name(h->locators[i].code, code));
	rc = vhd_locator_path(d->vhd, (int)i, path, cap, err);
	if (rc < 0)
		snprintf(hint->what, sizeof(hint->what), "locator %u", i);
	return rc;
}

/* VHDX: relative_path, volume_path, absolute_win32_path, in the order
 * Hyper-V tries them. A "\\?\" prefix before a drive letter is dropped:
 * "\\?\C:\x" is "C:\x". */
static int vhdx_hint(const struct disk *d, unsigned index, struct disk_hint *hint, char *path,
		     size_t cap, struct error *err)
{
	static const char *const keys[] = {VHDX_KEY_RELATIVE_PATH, VHDX_KEY_VOLUME_PATH,
					   VHDX_KEY_ABSOLUTE_WIN32_PATH};
	const char *value;

	if (index >= sizeof(keys) / sizeof(keys[0]))
		return -ENOENT;
	if (vhdx_disk_type(d->vhdx) != VHD_TYPE_DIFFERENCING)
		return -ENOENT;
	hint->kind = index == 0 ? DISK_HINT_RELATIVE : DISK_HINT_ABSOLUTE;
	snprintf(hint->what, sizeof(hint->what), "%s", keys[index]);
	value = vhdx_locator_get(d->vhdx, keys[index]);
	if (!value || !value[0])
		return -ENODATA;
	if (strncmp(value, "\\\\?\\", 4) == 0 && value[4] && value[5] == ':')
		value += 4;
	if (strlen(value) >= cap)
		return error_set(err, ENAMETOOLONG, "the %s of '%s' is too long", keys[index],
				 vhdx_path(d->vhdx));
	strcpy(path, value);
	return 0;
}

int disk_parent_hint(const struct disk *d, unsigned index, struct disk_hint *hint, char *path,
		     size_t cap, struct error *err)
{
	return d->vhdx ? vhdx_hint(d, index, hint, path, cap, err)
		       : vhd_hint(d, index, hint, path, cap, err);
}

/* ---- reading and writing ---- */

int disk_map(struct disk *d, uint64_t sector, uint64_t count, struct vhd_extent *extent,
	     struct error *err)
{
	return d->vhdx ? vhdx_map(d->vhdx, sector, count, extent, err)
		       : vhd_map(d->vhd, sector, count, extent, err);
}

int disk_pread(struct disk *d, void *buf, size_t len, uint64_t offset, struct error *err)
{
	return d->vhdx ? vhdx_pread(d->vhdx, buf, len, offset, err)
		       : vhd_pread(d->vhd, buf, len, offset, err);
}

int disk_direct_fd(const struct disk *d, uint64_t offset, size_t len)
{
	return d->vhdx ? vhdx_direct_fd(d->vhdx, offset, len) : vhd_direct_fd(d->vhd, offset, len);
}

int disk_read(struct disk *d, void *buf, size_t len, uint64_t offset, struct error *err)
{
	return d->vhdx ? vhdx_read(d->vhdx, buf, len, offset, err)
		       : vhd_read(d->vhd, buf, len, offset, err);
}

int disk_write(struct disk *d, const void *buf, size_t len, uint64_t offset, struct error *err)
{
	return d->vhdx ? vhdx_write(d->vhdx, buf, len, offset, err)
		       : vhd_write(d->vhd, buf, len, offset, err);
}

int disk_flush(struct disk *d, struct error *err)
{
	return d->vhdx ? vhdx_flush(d->vhdx, err) : 0;
}

/* ---- creating ---- */

/* @path NULL: check @o alone, as the format's create_check does. */
static int create(const char *path, const struct disk_create_options *o, struct error *err)
{
	if (o->format == DISK_FORMAT_VHDX) {
		struct vhdx_create_options x = {.type = o->type,
						.size = o->size,
						.block_size = o->block_size,
						.logical_sector_size = o->sector_size};

		return path ? vhdx_create(path, &x, err) : vhdx_create_check(&x, err);
	}
	if (o->sector_size && o->sector_size != VHD_SECTOR_SIZE)
		return error_set(err, EINVAL, "a VHD has 512-byte sectors, not %u-byte ones",
				 o->sector_size);
	{
		struct vhd_create_options v = {
			.type = o->type, .size = o->size, .block_size = o->block_size};

		return path ? vhd_create(path, &v, err) : vhd_create_check(&v, err);
	}
}

int disk_create(const char *path, const struct disk_create_options *o, struct error *err)
{
	return create(path, o, err);
}

int disk_create_check(const struct disk_create_options *o, struct error *err)
{
	return create(NULL, o, err);
}

int disk_create_differencing(const char *path, const char *parent_path,
			     const struct pathmap *map, struct error *err)
{
	enum disk_format format;
	int rc = disk_probe(parent_path, &format, err);

	if (rc < 0)
		return error_prefix(err, "cannot use '%s' as a parent", parent_path);
	return format == DISK_FORMAT_VHDX ? vhdx_create_differencing(path, parent_path, map, err)
					  : vhd_create_differencing(path, parent_path, map, err);
}

const char *disk_child_extension(enum disk_format format)
{
	return format == DISK_FORMAT_VHDX ? ".avhdx" : ".avhd";
}

/* ---- the file as an export serves it ---- */

uint64_t disk_view_size(const struct disk *d)
{
	return d->vhdx ? vhdx_replayed_file_size(d->vhdx) : vhd_file_size(d->vhd);
}

bool disk_view_replayed(const struct disk *d)
{
	return d->vhdx && vhdx_log_replayed(d->vhdx, NULL);
}

int disk_patches(struct disk *d, const char *parent_name, struct vhd_patch *patches, size_t max,
		 size_t *count, struct error *err)
{
	int rc;

	*count = 0;
	if (max < DISK_MAX_PATCHES)
		return error_set(err, EINVAL, "patching '%s' needs room for %d patches",
				 disk_path(d), DISK_MAX_PATCHES);
	memset(patches, 0, max * sizeof(*patches));
	if (d->vhdx)
		return parent_name ? vhdx_relocation(d->vhdx, parent_name, patches, max, count, err)
				   : vhdx_log_emptied(d->vhdx, patches, max, count, err);
	if (!parent_name)
		return 0;
	rc = vhd_relocation(d->vhd, parent_name, patches, err);
	if (rc == 0)
		*count = 2;
	return rc;
}
