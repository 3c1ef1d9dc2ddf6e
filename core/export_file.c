/*
 * export_file.c - reading and seeking a planned file (see export_file.h).
 */
#include "export_file.h"

#include "chain.h"
#include "disk.h"
#include "error.h"
#include "export_disks.h"
#include "export_plan.h"
#include "fsutil.h"
#include "hash.h"
#include "lease.h"
#include "segments.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Set up by export_open(), then only read: several threads may read at once. */
struct export_file {
	const struct export_node *node; /* borrowed: the tree outlives its open files */
	int fd;				/* FILE, RELOCATED */
	struct disk *disk;		/* RELOCATED and replayed: reads through the disk module */
	char *bytes;			/* CONFIG */
	struct chain *chain;		/* MERGED, RAW, PARTITION */
	/* MERGED, RAW, PARTITION: the chain's; FILE, RELOCATED: the file (@disk, else @fd)
	 * with the node's patches laid over it */
	struct stream *stream;
	/* Leases on the sources (lease.h): reads under them need no check */
	struct lease_guard *guard;
};

const struct export_node *export_file_node(const struct export_file *f)
{
	return f->node;
}

int export_file_fd(const struct export_file *f)
{
	return f->disk ? -1 : f->fd;
}

void export_close(struct export_file *f)
{
	if (!f)
		return;
	/* First: it waits for the reads in flight, which may still splice from the
	 * descriptors, and leaves the lease table before their numbers are free. */
	lease_guard_free(f->guard);
	if (f->fd >= 0)
		close(f->fd);
	free(f->bytes);
	disk_close(f->disk);
	stream_free(f->stream);
	chain_close(f->chain);
	free(f);
}

/* The sources' identity now, from the open files. */
static int file_stamp(const struct export_file *f, uint64_t *stamp)
{
	struct stat st;

	if (f->chain)
		return export_chain_stamp(f->chain, stamp, NULL, NULL);
	if (fstat(f->fd, &st) < 0)
		return -errno;
	*stamp = export_stamp_mix(HASH_START, &st);
	return 0;
}

int export_file_check_unchanged(const struct export_file *f, struct error *err)
{
	uint64_t now = 0;
	int rc = file_stamp(f, &now);

	if (rc < 0)
		return error_errno(err, -rc, "cannot stat", f->node->path);
	if (now != f->node->stamp)
		return error_set(err, ESTALE,
				 "'%s' has changed since it was listed: '%s' must be opened again",
				 f->node->path, f->node->name);
	return 0;
}

/* Lease the sources @f reads (when the lease service runs): the file's
 * descriptor, or each level of the chain. Taken before the sources are
 * checked against the plan, so that nothing changes between the check and
 * the lease. Without a lease, reads are checked one by one. */
static void lease_sources(struct export_file *f)
{
	f->guard = lease_guard_new();
	if (!f->guard)
		return;
	if (f->chain) {
		for (unsigned i = 0; i < chain_depth(f->chain); i++)
			lease_guard_add(f->guard, disk_fd(chain_level(f->chain, i)));
	} else {
		lease_guard_add(f->guard, f->fd);
	}
}

/* The disk behind @f's file (opened as @st) read through the disk module, as planned. */
static int open_replayed(struct export_file *f, const struct stat *st, struct error *err)
{
	dev_t dev;
	ino_t ino;
	int rc = disk_open(&f->disk, f->node->path, DISK_OPEN_READ, err);

	if (rc < 0)
		return rc;
	disk_file_id(f->disk, &dev, &ino);
	if (dev != st->st_dev || ino != st->st_ino || disk_view_size(f->disk) != f->node->size)
		return error_set(err, ESTALE, "'%s' has changed since it was listed",
				 f->node->path);
	return 0;
}

int export_open(const struct export_node *node, struct export_file **out, struct error *err)
{
	struct export_file *f;
	struct stat st;
	size_t len = 0;
	int rc = 0;

	*out = NULL;
	if (node->type != EXPORT_FILE)
		return error_set(err, EISDIR, "'%s' is not a file", node->name);
	f = calloc(1, sizeof(*f));
	if (!f)
		return error_set(err, ENOMEM, "out of memory");
	f->node = node;
	f->fd = -1;
	switch (node->source) {
	case EXPORT_SOURCE_CONFIG:
		/* Made again, from a file that must not change while it is read. */
		if (stat(node->path, &st) < 0)
			rc = error_errno(err, errno, "cannot stat", node->path);
		else if (export_stamp_mix(HASH_START, &st) != node->stamp)
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       node->path);
		if (rc == 0)
			rc = export_config_make(node->path, node->edits, node->edit_count,
						&f->bytes, &len, err);
		/* And the same after: a rewrite while it was read is never served. */
		if (rc == 0 &&
		    (stat(node->path, &st) < 0 || export_stamp_mix(HASH_START, &st) != node->stamp))
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       node->path);
		if (rc == 0 && len != node->size)
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       node->path);
		break;
	case EXPORT_SOURCE_MERGED:
	case EXPORT_SOURCE_RAW:
	case EXPORT_SOURCE_PARTITION: {
		rc = export_open_chain(node->store, node->path, &f->chain, err);
		if (rc == 0) {
			lease_sources(f);
			rc = export_file_check_unchanged(f, err);
		}
		if (rc == 0)
			rc = node->source == EXPORT_SOURCE_MERGED
				     ? stream_new_merged(&f->stream, f->chain, node->seed, err)
				     : stream_new_raw(&f->stream, f->chain, err);
		/* A partition: a window that must lie inside the disk. */
		if (rc == 0 && (node->source == EXPORT_SOURCE_PARTITION
					? node->start > stream_size(f->stream) ||
						  node->size > stream_size(f->stream) - node->start
					: stream_size(f->stream) != node->size))
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       node->path);
		break;
	}
	default:
		f->fd = fsutil_open_regular(node->path, &st);
		if (f->fd < 0) {
			rc = error_errno(err, -f->fd, "cannot open", node->path);
		} else {
			lease_sources(f);
			rc = export_file_check_unchanged(f, err);
		}
		if (rc == 0 && node->replayed)
			rc = open_replayed(f, &st, err);
		if (rc == 0) {
			const struct stream_file file = {f->disk, f->fd, node->size, node->path};

			rc = stream_new_patched(&f->stream, &file, node->patches, node->patch_count,
						err);
		}
		break;
	}
	if (rc < 0) {
		export_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

int export_map_at(struct export_file *f, struct segments *segs, uint64_t offset, size_t len,
		  struct error *err)
{
	const struct export_node *node = f->node;

	if (offset > node->size || len > node->size - offset)
		return error_set(err, EINVAL, "read of %zu bytes at %llu is outside '%s'", len,
				 (unsigned long long)offset, node->name);
	if (node->source == EXPORT_SOURCE_CONFIG) {
		segments_bytes(segs, f->bytes + offset, len);
		return 0;
	}
	/* A chain's stream (a partition's from its start), or the file's with its patches. */
	return stream_map(f->stream, segs, node->start + offset, len, err);
}

/* Whether @ctx's sources are as planned (lease_guard_renew()). */
static bool sources_unchanged(void *ctx)
{
	struct error err;

	return export_file_check_unchanged(ctx, &err) == 0;
}

bool export_read_begin(struct export_file *f)
{
	if (lease_guard_enter(f->guard))
		return true;
	/* A writer that opened a source and has closed it unchanged: leased again. */
	return lease_guard_renew(f->guard, sources_unchanged, f) && lease_guard_enter(f->guard);
}

void export_read_end(struct export_file *f)
{
	lease_guard_leave(f->guard);
}

int export_read_at(struct export_file *f, void *buf, size_t len, uint64_t offset, struct error *err)
{
	struct segments segs;
	int rc;

	segments_init_flat(&segs, buf, len);
	/* Under leases nothing can change; else checked after the read: bytes read
	 * while a source changed are never given. */
	if (export_read_begin(f)) {
		rc = export_map_at(f, &segs, offset, len, err);
		export_read_end(f);
		return rc;
	}
	rc = export_map_at(f, &segs, offset, len, err);
	if (rc == 0 && f->node->source != EXPORT_SOURCE_CONFIG)
		rc = export_file_check_unchanged(f, err);
	return rc;
}

int export_read(const struct export_node *node, void *buf, size_t len, uint64_t offset,
		struct error *err)
{
	struct export_file *f = NULL;
	int rc = export_open(node, &f, err);

	if (rc == 0)
		rc = export_read_at(f, buf, len, offset, err);
	export_close(f);
	return rc;
}

/* lseek of the source at @offset, within the planned size: -ENXIO past the last data. */
static int64_t seek_source(const struct export_file *f, uint64_t offset, bool data,
			   struct error *err)
{
	uint64_t size = f->node->size;
	off_t at = lseek(f->fd, (off_t)offset, data ? SEEK_DATA : SEEK_HOLE);

	if (at < 0) {
		/* A source without hole support is all data. */
		if (errno == EINVAL)
			return data ? (int64_t)offset : (int64_t)size;
		return errno == ENXIO ? -ENXIO
				      : error_errno(err, errno, "cannot seek in", f->node->path);
	}
	if ((uint64_t)at >= size)
		return data ? -ENXIO : (int64_t)size;
	return (int64_t)at;
}

/* SEEK_DATA/SEEK_HOLE of a file served from the store: the source's runs, the patches laid
 * over it (a relocated header) being data wherever the source has holes. */
static int64_t seek_file(const struct export_file *f, uint64_t offset, bool data, struct error *err)
{
	const struct vhd_patch *p = f->node->patches;
	int64_t at;

	/* A replayed file is data throughout: its holes are not the file's. */
	if (f->disk)
		return data ? (int64_t)offset : (int64_t)f->node->size;
	at = seek_source(f, offset, data, err);

	if (at < 0 && at != -ENXIO)
		return at;
	for (size_t i = 0; i < f->node->patch_count; i++) {
		uint64_t start = p[i].offset, end = p[i].offset + p[i].len;

		if (!p[i].bytes || end <= offset)
			continue;
		if (data) {
			/* The first data: the source's, or a patch's that starts before it. */
			uint64_t from = start > offset ? start : offset;

			if (at == -ENXIO || from < (uint64_t)at)
				at = (int64_t)from;
		} else if (start <= (uint64_t)at && (uint64_t)at < end) {
			/* A hole that begins inside a patch begins after it, or later. */
			return seek_file(f, end, false, err);
		}
	}
	return at;
}

int64_t export_seek(struct export_file *f, uint64_t offset, bool data, struct error *err)
{
	const struct export_node *node = f->node;

	if (offset >= node->size)
		return -ENXIO;
	switch (node->source) {
	case EXPORT_SOURCE_CONFIG:
		return data ? (int64_t)offset : (int64_t)node->size;
	case EXPORT_SOURCE_MERGED:
	case EXPORT_SOURCE_RAW:
	case EXPORT_SOURCE_PARTITION:
		/* Runs of data and holes from the allocation tables (a partition's: inside its
		 * window, @start on in the disk). */
		while (offset < node->size) {
			bool is_data;
			uint64_t end;

			stream_extent(f->stream, node->start + offset, &is_data, &end);
			if (is_data == data)
				return (int64_t)offset;
			if (end <= node->start + offset)
				break;
			offset = end - node->start;
		}
		return data ? -ENXIO : (int64_t)node->size;
	default:
		return seek_file(f, offset, data, err);
	}
}
