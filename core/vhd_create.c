/*
 * vhd_create.c - new VHD files: fixed, dynamic, and differencing over a VHD
 * parent, with the locators Hyper-V writes (vhd.h, "creating and writing").
 */
#include "vhd.h"
#include "vhd_internal.h"

#include "error.h"
#include "fsutil.h"
#include "pathmap.h"
#include "utf16.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* Write an empty BAT (all entries unallocated) of @bytes at @offset. */
static int write_empty_bat(int fd, uint64_t offset, uint64_t bytes)
{
	uint8_t chunk[65536];

	memset(chunk, 0xFF, sizeof(chunk));
	while (bytes) {
		size_t n = bytes < sizeof(chunk) ? (size_t)bytes : sizeof(chunk);
		int rc = fsutil_pwrite_full(fd, chunk, n, offset);

		if (rc < 0)
			return rc;
		offset += n;
		bytes -= n;
	}
	return 0;
}

/* The parts of a new dynamic or differencing file other than blocks. */
struct new_dynamic {
	struct vhd_footer footer;
	struct vhd_header header;
	const uint8_t
		*locator_data[VHD_LOCATOR_COUNT]; /* each header.locators[i].data_space long */
};

/* Write a new dynamic or differencing file with no blocks into @fd:
 * footer copy, header, empty BAT, locator data, footer. */
static int write_new_dynamic(int fd, struct new_dynamic *d)
{
	uint8_t footer[VHD_FOOTER_SIZE], header[VHD_HEADER_SIZE];
	uint64_t end = TABLE_OFFSET + vhd_bat_bytes(d->header.max_table_entries);
	int rc;

	for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
		if (!d->locator_data[i])
			continue;
		d->header.locators[i].data_offset = end;
		end += d->header.locators[i].data_space;
	}
	vhd_footer_encode(&d->footer, footer);
	vhd_header_encode(&d->header, header);
	rc = fsutil_pwrite_full(fd, footer, sizeof(footer), 0);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, header, sizeof(header), VHD_FOOTER_SIZE);
	if (rc == 0)
		rc = write_empty_bat(fd, TABLE_OFFSET, vhd_bat_bytes(d->header.max_table_entries));
	for (int i = 0; i < VHD_LOCATOR_COUNT && rc == 0; i++)
		if (d->locator_data[i])
			rc = fsutil_pwrite_full(fd, d->locator_data[i],
						d->header.locators[i].data_space,
						d->header.locators[i].data_offset);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, footer, sizeof(footer), end);
	return rc;
}

/* Create @path exclusively, let @fill write it, fsync it and its folder;
 * on any failure remove it. */
static int create_file(const char *path, int (*fill)(int fd, void *ctx), void *ctx,
		       struct error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int rc;

	if (fd < 0) {
		rc = errno;
		if (rc == EEXIST)
			return error_set(err, EEXIST, "'%s' already exists", path);
		return error_errno(err, rc, "cannot create", path);
	}
	rc = fill(fd, ctx);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = fsutil_fsync_parent(path);
	if (rc < 0) {
		unlink(path);
		return error_errno(err, -rc, "cannot write", path);
	}
	return 0;
}

static int fill_fixed(int fd, void *ctx)
{
	const struct vhd_footer *f = ctx;
	uint8_t raw[VHD_FOOTER_SIZE];

	if (ftruncate(fd, (off_t)f->current_size) < 0)
		return -errno;
	vhd_footer_encode(f, raw);
	return fsutil_pwrite_full(fd, raw, sizeof(raw), f->current_size);
}

static int fill_dynamic(int fd, void *ctx)
{
	return write_new_dynamic(fd, ctx);
}

int vhd_create_check(const struct vhd_create_options *o, struct error *err)
{
	const uint64_t mib = 1024 * 1024;

	if (o->size == 0)
		return error_set(err, EINVAL, "a disk size of 0: the smallest disk is 1 MiB");
	if (o->size % mib)
		return error_set(err, EINVAL,
				 "disk size %llu bytes is not a whole number of MiB (try %llu)",
				 (unsigned long long)o->size,
				 (unsigned long long)((o->size + mib - 1) / mib * mib));
	if (o->size > VHD_MAX_CREATE_SIZE)
		return error_set(err, EINVAL, "disk size %llu bytes is over the limit of 2040 GiB",
				 (unsigned long long)o->size);
	if (o->type != VHD_TYPE_FIXED && o->type != VHD_TYPE_DYNAMIC)
		return error_set(err, EINVAL, "can only create fixed or dynamic disks");
	if (o->type == VHD_TYPE_FIXED && o->block_size)
		return error_set(err, EINVAL, "a fixed disk has no blocks: no block size applies");
	if (o->block_size &&
	    (!vhd_is_power_of_two(o->block_size) || o->block_size < VHD_MIN_CREATE_BLOCK ||
	     o->block_size > VHD_MAX_BLOCK))
		return error_set(err, EINVAL,
				 "block size %u is not a power of two from 4 KiB to 256 MiB",
				 o->block_size);
	if (o->type == VHD_TYPE_DYNAMIC &&
	    (o->size + (o->block_size ? o->block_size : VHD_DEFAULT_BLOCK) - 1) /
			    (o->block_size ? o->block_size : VHD_DEFAULT_BLOCK) >
		    VHD_MAX_BAT_ENTRIES)
		return error_set(
			err, EINVAL,
			"a disk of %llu bytes in blocks of %u bytes needs more than %u blocks: "
			"choose larger blocks",
			(unsigned long long)o->size, o->block_size, VHD_MAX_BAT_ENTRIES);
	return 0;
}

int vhd_create(const char *path, const struct vhd_create_options *o, struct error *err)
{
	uint32_t block_size = o->block_size ? o->block_size : VHD_DEFAULT_BLOCK;
	struct new_dynamic d;
	uint8_t uuid[16];
	uint32_t now = o->timestamp ? o->timestamp : vhd_time_from_unix(time(NULL));
	int rc;

	rc = vhd_create_check(o, err);
	if (rc < 0)
		return rc;
	if (o->uuid)
		memcpy(uuid, o->uuid, 16);
	else
		uuid_generate_random(uuid);
	memset(&d, 0, sizeof(d));
	vhd_footer_init(&d.footer, o->type, o->size, uuid, now);
	if (o->type == VHD_TYPE_FIXED)
		return create_file(path, fill_fixed, &d.footer, err);
	vhd_header_init(&d.header, (uint32_t)((o->size + block_size - 1) / block_size), block_size);
	return create_file(path, fill_dynamic, &d, err);
}

/* Percent-encode an absolute path as a file URL for a MacX locator. */
static int encode_file_url(const char *path, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	int w = snprintf(out, cap, "file://");

	if (w < 0 || (size_t)w >= cap)
		return -ENAMETOOLONG;
	n = (size_t)w;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || strchr("/-._~", *p);

		if (n + 4 > cap)
			return -ENAMETOOLONG;
		if (plain) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = '\0';
	return 0;
}

/* Locator data buffers of a new differencing disk. */
struct new_locators {
	uint8_t relative[VHD_MAX_LOCATOR_BYTES];
	uint8_t absolute[VHD_MAX_LOCATOR_BYTES];
	char url[VHD_MAX_LOCATOR_BYTES];
};

static void set_locator(struct new_dynamic *d, int index, uint32_t code, const void *data,
			size_t len)
{
	struct vhd_locator *l = &d->header.locators[index];

	l->code = code;
	l->data_length = (uint32_t)len;
	/* Data space in bytes, whole sectors, as Hyper-V writes it. */
	l->data_space = (uint32_t)((len + VHD_SECTOR_SIZE - 1) / VHD_SECTOR_SIZE * VHD_SECTOR_SIZE);
	d->locator_data[index] = data;
}

int vhd_create_differencing(const char *path, const char *parent_path, const struct pathmap *map,
			    struct error *err)
{
	struct vhd *parent = NULL;
	struct new_locators *loc = NULL;
	struct new_dynamic d;
	char parent_abs[PATH_MAX], child_dir[PATH_MAX];
	char relative[PATH_MAX], windows[PATH_MAX];
	uint8_t uuid[16];
	size_t len;
	int rc, n = 0;

	rc = vhd_open(&parent, parent_path, VHD_OPEN_READ, err);
	if (rc < 0)
		return error_prefix(err, "cannot use '%s' as a parent", parent_path);
	rc = pathmap_child_places(path, parent_path, parent_abs, child_dir, err);
	if (rc < 0)
		goto out;
	loc = calloc(1, sizeof(*loc));
	if (!loc) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	memset(&d, 0, sizeof(d));
	uuid_generate_random(uuid);
	vhd_footer_init(&d.footer, VHD_TYPE_DIFFERENCING, vhd_size(parent), uuid,
			vhd_time_from_unix(time(NULL)));
	d.footer.geometry = parent->footer.geometry;
	d.footer.original_size = parent->footer.original_size;
	vhd_header_init(&d.header,
			(uint32_t)((vhd_size(parent) + VHD_DEFAULT_BLOCK - 1) / VHD_DEFAULT_BLOCK),
			VHD_DEFAULT_BLOCK);
	memcpy(d.header.parent_uuid, parent->footer.uuid, 16);
	d.header.parent_timestamp = vhd_time_from_unix(parent->io.st.st_mtim.tv_sec);
	rc = utf16_encode(pathmap_basename(parent_abs), UTF16_BE, d.header.parent_name,
			  VHD_PARENT_NAME_SIZE, &len, err);
	if (rc < 0) {
		error_prefix(err, "the parent's file name '%s'", pathmap_basename(parent_abs));
		goto out;
	}
	rc = pathmap_windows_relative(child_dir, parent_abs, relative, sizeof(relative));
	if (rc == 0)
		rc = utf16_encode(relative, UTF16_LE, loc->relative, sizeof(loc->relative), &len,
				  err);
	if (rc < 0) {
		error_set(err, -rc, "cannot record the relative path of '%s'", parent_abs);
		goto out;
	}
	set_locator(&d, n++, VHD_PLATFORM_W2RU, loc->relative, len);
	if (pathmap_to_windows(map, parent_abs, windows, sizeof(windows)) == 0) {
		rc = utf16_encode(windows, UTF16_LE, loc->absolute, sizeof(loc->absolute), &len,
				  err);
		if (rc < 0)
			goto out;
		set_locator(&d, n++, VHD_PLATFORM_W2KU, loc->absolute, len);
	}
	rc = encode_file_url(parent_abs, loc->url, sizeof(loc->url));
	if (rc < 0) {
		error_set(err, -rc, "the path of '%s' is too long for a locator", parent_abs);
		goto out;
	}
	set_locator(&d, n++, VHD_PLATFORM_MACX, loc->url, strlen(loc->url));
	rc = create_file(path, fill_dynamic, &d, err);
out:
	free(loc);
	vhd_close(parent);
	return rc;
}
