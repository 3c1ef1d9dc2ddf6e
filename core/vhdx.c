/*
 * vhdx.c - one VHDX file: GUIDs, reading the file as the replayed log
 * leaves it, opening (the header section, the metadata and the BAT checked
 * in turn by vhdx_headers.c, vhdx_metadata.c and vhdx_bat.c) and closing,
 * and the getters (vhdx.h).
 */
#include "vhdx.h"
#include "vhdx_internal.h"

#include "bigendian.h"
#include "error.h"
#include "vhdx_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The file type identifier's signature ([MS-VHDX] 2.2.1). */
#define FILE_ID_SIGNATURE "vhdxfile"

/* ---- GUIDs ---- */

void vhdx_guid_from_uuid(const uint8_t uuid[16], uint8_t out[16])
{
	uint8_t u[16];

	memcpy(u, uuid, 16); /* @out may be @uuid */
	for (int i = 0; i < 4; i++)
		out[i] = u[3 - i];
	out[4] = u[5];
	out[5] = u[4];
	out[6] = u[7];
	out[7] = u[6];
	memcpy(out + 8, u + 8, 8);
}

void vhdx_guid_format(const uint8_t g[16], char out[39])
{
	snprintf(out, 39, "{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}", le32_load(g),
		 le16_load(g + 4), le16_load(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14],
		 g[15]);
}

int vhdx_guid_parse(const char *text, uint8_t raw[16])
{
	/* Byte of each pair of hex digits, in text order, in Microsoft's layout. */
	static const int place[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
	const char *p = text;
	int n = 0;

	if (strlen(text) != 38 || text[0] != '{' || text[37] != '}')
		return -EINVAL;
	p++;
	for (int i = 1; i < 37; i++) {
		if (i == 9 || i == 14 || i == 19 || i == 24) {
			if (*p++ != '-')
				return -EINVAL;
			continue;
		}
		if (vhd_hex_digit(p[0]) < 0 || vhd_hex_digit(p[1]) < 0)
			return -EINVAL;
		raw[place[n++]] = (uint8_t)(vhd_hex_digit(p[0]) << 4 | vhd_hex_digit(p[1]));
		p += 2;
		i++;
	}
	return n == 16 ? 0 : -EINVAL;
}

void vhdx_guid_constant(const char *text, uint8_t raw[16])
{
	if (vhdx_guid_parse(text, raw) < 0)
		abort(); /* the constants of vhdx.h are well-formed */
}

/* ---- reading the file ---- */

int vhdx_pread(struct vhdx *vhdx, void *buf, size_t len, uint64_t offset, struct error *err)
{
	uint8_t *out = buf;
	size_t inside = 0;
	int rc;

	if (offset > vhdx->data_end || len > vhdx->data_end - offset)
		return error_set(err, EIO, "'%s' ends before byte %llu (the file was truncated)",
				 vhdx->io.path, (unsigned long long)(offset + len));
	if (offset < vhdx->io.size)
		inside = vhdx->io.size - offset < len ? (size_t)(vhdx->io.size - offset) : len;
	if (inside) {
		rc = vhd_io_pread(&vhdx->io, out, inside, offset, err);
		if (rc < 0)
			return rc;
	}
	/* Past the file's end but within the size the log gives it. */
	memset(out + inside, 0, len - inside);
	if (vhdx->overlay)
		vhdx_overlay_apply(vhdx->overlay, out, len, offset);
	return 0;
}

int vhdx_direct_fd(const struct vhdx *vhdx, uint64_t offset, size_t len)
{
	if (vhdx->overlay || offset > vhdx->io.size || len > vhdx->io.size - offset)
		return -1;
	return vhdx->io.fd;
}

/* ---- opening ---- */

int vhdx_open(struct vhdx **out, const char *path, int flags, struct error *err)
{
	return vhdx_open_fd(out, path, -1, flags, err);
}

int vhdx_open_fd(struct vhdx **out, const char *path, int fd, int flags, struct error *err)
{
	struct vhdx *vhdx;
	uint8_t id[8];
	int rc;

	*out = NULL;
	vhdx = flags & ~VHDX_OPEN_WRITE ? NULL : calloc(1, sizeof(*vhdx));
	if (!vhdx) {
		if (fd >= 0)
			close(fd);
		if (flags & ~VHDX_OPEN_WRITE)
			return error_set(err, EINVAL, "cannot open '%s': unknown flags 0x%x", path,
					 flags);
		return error_set(err, ENOMEM, "out of memory");
	}
	vhdx->io.fd = -1;
	rc = vhd_io_open(&vhdx->io, path, fd, flags & VHDX_OPEN_WRITE, !(flags & VHDX_OPEN_WRITE),
			 err);
	if (rc < 0)
		goto fail;
	vhdx->data_end = vhdx->io.size;
	if (vhdx->io.size < 8 || vhdx_pread(vhdx, id, sizeof(id), 0, NULL) < 0 ||
	    memcmp(id, FILE_ID_SIGNATURE, 8) != 0) {
		rc = error_set(err, EINVAL, "'%s' is not a VHDX file (no '%s' signature)", path,
			       FILE_ID_SIGNATURE);
		goto fail;
	}
	if (vhdx->io.size < VHDX_HEADER_AREA) {
		rc = error_set(err, EINVAL,
			       "'%s' is %llu bytes, shorter than the 1 MiB header section of a "
			       "VHDX (truncated?)",
			       path, (unsigned long long)vhdx->io.size);
		goto fail;
	}
	if (vhdx->io.size > VHDX_MAX_FILE_SIZE) {
		rc = error_set(err, EINVAL, "'%s' is %llu bytes, more than any VHDX needs", path,
			       (unsigned long long)vhdx->io.size);
		goto fail;
	}
	rc = vhdx_header_section_read(vhdx, err);
	if (rc == 0)
		rc = vhdx_metadata_read(vhdx, err);
	if (rc == 0)
		rc = vhdx_bat_check(vhdx, err);
	if (rc == 0)
		rc = vhdx_caches_init(vhdx, err);
	if (rc == 0 && vhdx->io.writable)
		rc = vhdx_write_prepare(vhdx, err);
	if (rc < 0)
		goto fail;
	*out = vhdx;
	return 0;
fail:
	vhdx_close(vhdx);
	return rc;
}

void vhdx_close(struct vhdx *vhdx)
{
	if (!vhdx)
		return;
	if (vhdx->io.writable)
		vhdx_write_release(vhdx);
	vhd_io_close(&vhdx->io);
	for (size_t i = 0; i < vhdx->locator_count; i++) {
		free((char *)vhdx->locator[i].key);
		free((char *)vhdx->locator[i].value);
	}
	free(vhdx->locator);
	free(vhdx->regions);
	vhdx_overlay_free(vhdx->overlay);
	vhd_cache_release(&vhdx->pages);
	vhd_cache_release(&vhdx->bitmaps);
	free(vhdx);
}

/* ---- getters ---- */

const char *vhdx_path(const struct vhdx *vhdx)
{
	return vhdx->io.path;
}

int vhdx_fd(const struct vhdx *vhdx)
{
	return vhdx->io.fd;
}

enum vhd_type vhdx_disk_type(const struct vhdx *vhdx)
{
	if (vhdx->has_parent)
		return VHD_TYPE_DIFFERENCING;
	return vhdx->leave_allocated ? VHD_TYPE_FIXED : VHD_TYPE_DYNAMIC;
}

uint64_t vhdx_size(const struct vhdx *vhdx)
{
	return vhdx->size;
}

uint32_t vhdx_logical_sector_size(const struct vhdx *vhdx)
{
	return vhdx->logical;
}

uint32_t vhdx_physical_sector_size(const struct vhdx *vhdx)
{
	return vhdx->physical;
}

uint32_t vhdx_block_size(const struct vhdx *vhdx)
{
	return vhdx->block_size;
}

uint64_t vhdx_block_count(const struct vhdx *vhdx)
{
	return vhdx->block_count;
}

uint32_t vhdx_chunk_ratio(const struct vhdx *vhdx)
{
	return vhdx->chunk_ratio;
}

bool vhdx_has_parent(const struct vhdx *vhdx)
{
	return vhdx->has_parent;
}

bool vhdx_leave_allocated(const struct vhdx *vhdx)
{
	return vhdx->leave_allocated;
}

const uint8_t *vhdx_disk_id(const struct vhdx *vhdx)
{
	return vhdx->disk_id;
}

const struct vhdx_header *vhdx_current_header(const struct vhdx *vhdx)
{
	return &vhdx->header;
}

int vhdx_current_header_index(const struct vhdx *vhdx)
{
	return vhdx->header_index;
}

const uint8_t *vhdx_data_write_guid(const struct vhdx *vhdx)
{
	return vhdx->header.data_write_guid;
}

const uint8_t *vhdx_file_write_guid(const struct vhdx *vhdx)
{
	return vhdx->header.file_write_guid;
}

const uint8_t *vhdx_log_guid(const struct vhdx *vhdx)
{
	return vhdx->header.log_guid;
}

bool vhdx_log_replayed(const struct vhdx *vhdx, uint64_t *head_sequence)
{
	if (head_sequence)
		*head_sequence = vhdx->overlay ? vhdx->log_info.head_sequence : 0;
	return vhdx->overlay != NULL;
}

uint64_t vhdx_file_size(const struct vhdx *vhdx)
{
	return vhdx->io.size;
}

uint64_t vhdx_replayed_file_size(const struct vhdx *vhdx)
{
	return vhdx->data_end;
}

void vhdx_metadata_region(const struct vhdx *vhdx, uint64_t *offset, uint32_t *length)
{
	*offset = vhdx->metadata_offset;
	*length = vhdx->metadata_length;
}

struct timespec vhdx_file_mtime(const struct vhdx *vhdx)
{
	return vhdx->io.st.st_mtim;
}

void vhdx_file_id(const struct vhdx *vhdx, dev_t *dev, ino_t *ino)
{
	*dev = vhdx->io.st.st_dev;
	*ino = vhdx->io.st.st_ino;
}

size_t vhdx_locator_count(const struct vhdx *vhdx)
{
	return vhdx->locator_count;
}

const struct vhdx_locator_entry *vhdx_locator_entry(const struct vhdx *vhdx, size_t index)
{
	return index < vhdx->locator_count ? &vhdx->locator[index] : NULL;
}

bool vhdx_locator_place(const struct vhdx *vhdx, uint32_t *offset, uint32_t *length)
{
	*offset = vhdx->locator_offset;
	*length = vhdx->locator_length;
	return vhdx->has_parent;
}

const char *vhdx_locator_get(const struct vhdx *vhdx, const char *key)
{
	for (size_t i = 0; i < vhdx->locator_count; i++)
		if (strcmp(vhdx->locator[i].key, key) == 0)
			return vhdx->locator[i].value;
	return NULL;
}
