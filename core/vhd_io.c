/*
 * vhd_io.c - the file beneath a VHD or VHDX image (vhd_io.h).
 */
#include "vhd_io.h"

#include "error.h"
#include "fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vhd_io_open(struct vhd_io *io, const char *path, int fd, bool writable, bool block_ok,
		struct error *err)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->writable = writable;
	io->path = strdup(path);
	if (!io->path)
		return error_set(err, ENOMEM, "out of memory");
	if (io->fd < 0)
		io->fd = fsutil_open_source(path, writable);
	if (io->fd < 0)
		return error_errno(err, -io->fd, "cannot open", path);
	if (fstat(io->fd, &io->st) < 0)
		return error_errno(err, errno, "cannot stat", path);
	if (!S_ISREG(io->st.st_mode) && !(block_ok && S_ISBLK(io->st.st_mode)))
		return error_set(err, EINVAL, "'%s' is not a regular file", path);
	io->size = (uint64_t)io->st.st_size;
	if (S_ISBLK(io->st.st_mode)) {
		off_t end = lseek(io->fd, 0, SEEK_END);

		io->size = end > 0 ? (uint64_t)end : 0;
	}
	return 0;
}

void vhd_io_close(struct vhd_io *io)
{
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
	free(io->path);
	io->path = NULL;
}

int vhd_io_pread(const struct vhd_io *io, void *buf, size_t len, uint64_t offset, struct error *err)
{
	return fsutil_pread_named(io->fd, buf, len, offset, io->path, err);
}

int vhd_io_read_disk(const struct vhd_io *io, const struct vhd_io_format *format, void *disk,
		     uint64_t size, uint32_t sector_size, void *buf, size_t len, uint64_t offset,
		     struct error *err)
{
	uint8_t *out = buf;
	uint64_t sector, end;

	if (offset % sector_size || len % sector_size || offset > size || len > size - offset)
		return error_set(err, EINVAL, "read of %zu bytes at %llu is outside '%s'", len,
				 (unsigned long long)offset, io->path);
	sector = offset / sector_size;
	end = sector + len / sector_size;
	while (sector < end) {
		struct vhd_extent ext;
		size_t bytes;
		int rc = format->map(disk, sector, end - sector, &ext, err);

		if (rc < 0)
			return rc;
		bytes = (size_t)ext.sectors * sector_size;
		if (ext.kind == VHD_EXTENT_DATA) {
			rc = format->pread(disk, out, bytes, ext.file_offset, err);
			if (rc < 0)
				return rc;
		} else {
			memset(out, 0, bytes);
		}
		out += bytes;
		sector += ext.sectors;
	}
	return 0;
}
