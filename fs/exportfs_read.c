/*
 * exportfs_read.c - the export mount's replies to READ (see exportfs_read.h).
 */
#include "exportfs_read.h"

#include "error.h"
#include "export_file.h"
#include "segments.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

/* Zeros to reply from: never written, so its pages stay the zero page. */
static uint8_t zeros[EXPORTFS_MAX_REQUEST];

/* A thread's buffers, kept from one request to the next. */
struct read_space {
	struct segments segs;
	struct fuse_bufvec *bufv; /* room for a buffer per piece of @segs */
	struct iovec *iov;	  /* as many */
};

static pthread_key_t space_key;
static pthread_once_t space_once = PTHREAD_ONCE_INIT;
static bool space_ready;

static void space_free(void *data)
{
	struct read_space *rs = data;

	segments_free(&rs->segs);
	free(rs->bufv);
	free(rs->iov);
	free(rs);
}

static void space_key_make(void)
{
	space_ready = pthread_key_create(&space_key, space_free) == 0;
}

/* This thread's buffers, made at its first read; NULL when out of memory. */
static struct read_space *space_get(void)
{
	struct read_space *rs;

	pthread_once(&space_once, space_key_make);
	if (!space_ready)
		return NULL;
	rs = pthread_getspecific(space_key);
	if (rs)
		return rs;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	if (segments_init(&rs->segs, EXPORTFS_MAX_REQUEST, 0) < 0)
		goto fail;
	/* One buffer a piece (a zero run is at most a request: sizeof(zeros)). */
	rs->bufv = calloc(1, sizeof(*rs->bufv) + rs->segs.cap * sizeof(rs->bufv->buf[0]));
	rs->iov = calloc(rs->segs.cap, sizeof(*rs->iov));
	if (!rs->bufv || !rs->iov || pthread_setspecific(space_key, rs) != 0)
		goto fail;
	return rs;
fail:
	space_free(rs);
	return NULL;
}

/* Reply with the pieces: file runs as descriptors (spliced), the rest from memory. */
static void reply_pieces(fuse_req_t req, struct read_space *rs)
{
	const struct segments *s = &rs->segs;
	struct fuse_bufvec *v = rs->bufv;
	size_t n = 0;

	for (size_t i = 0; i < s->count; i++) {
		const struct segment *p = &s->items[i];
		struct fuse_buf *b = &v->buf[n++];

		*b = (struct fuse_buf){.size = p->len, .fd = -1};
		if (p->kind == SEGMENT_FILE) {
			b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
			b->fd = p->fd;
			b->pos = (off_t)p->pos;
		} else {
			/* A zero run is at most a request: sizeof(zeros). */
			b->mem = p->kind == SEGMENT_ZERO ? zeros : (void *)p->bytes;
		}
	}
	v->count = n;
	v->idx = 0;
	v->off = 0;
	fuse_reply_data(req, v, 0);
}

/* Reply with pieces that are all in memory, as they lie. */
static void reply_memory(fuse_req_t req, struct read_space *rs)
{
	const struct segments *s = &rs->segs;

	for (size_t i = 0; i < s->count; i++) {
		const struct segment *p = &s->items[i];

		rs->iov[i].iov_base = p->kind == SEGMENT_ZERO ? zeros : (void *)p->bytes;
		rs->iov[i].iov_len = p->len;
	}
	fuse_reply_iov(req, rs->iov, (int)s->count);
}

int exportfs_read_reply(fuse_req_t req, struct export_file *file, size_t size, uint64_t offset,
			bool splice, struct error *err)
{
	struct read_space *rs = space_get();
	int rc;

	if (!rs || size > EXPORTFS_MAX_REQUEST || segments_reset(&rs->segs, size) < 0)
		return error_set(err, ENOMEM, "out of memory");
	/* Under leases the sources cannot change until the reply has been copied by
	 * the kernel: the pieces may be taken from them. libfuse copies replies
	 * under two pages rather than splice them: those are copied here. */
	if (splice && size >= 2 * (size_t)getpagesize() && export_read_begin(file)) {
		rc = export_map_at(file, &rs->segs, offset, size, err);
		if (rc == 0) {
			if (segments_have_file(&rs->segs))
				reply_pieces(req, rs);
			else
				reply_memory(req, rs);
		}
		export_read_end(file);
		return rc;
	}
	rc = export_read_at(file, rs->segs.scratch, size, offset, err);
	if (rc == 0)
		fuse_reply_buf(req, (const char *)rs->segs.scratch, size);
	return rc;
}
