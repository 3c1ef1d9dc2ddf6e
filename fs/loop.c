/*
 * loop.c - the session loop of both mounts (see loop.h).
 */
#define FUSE_USE_VERSION 314

#include "loop.h"

#include <errno.h>
#include <fuse.h>
#include <fuse_lowlevel.h>

int fsloop_run(struct fuse *fuse, struct fuse_session *se, const struct fsloop_options *o)
{
	struct fuse_loop_config *loop;
	int rc;

	if (o->singlethread) {
		rc = fuse ? fuse_loop(fuse) : fuse_session_loop(se);
	} else {
		loop = fuse_loop_cfg_create();
		if (!loop)
			return 1;
		fuse_loop_cfg_set_clone_fd(loop, o->clone_fd);
		/* libfuse leaves these UINT_MAX unless they are given: keep its defaults. */
		if (o->max_threads <= 100000)
			fuse_loop_cfg_set_max_threads(loop, o->max_threads);
		if (o->max_idle_threads <= 100000)
			fuse_loop_cfg_set_idle_threads(loop, o->max_idle_threads);
		rc = fuse ? fuse_loop_mt(fuse, loop) : fuse_session_loop_mt(se, loop);
		fuse_loop_cfg_destroy(loop);
	}
	return rc == 0 || rc == -ECONNABORTED || rc == -ENODEV ? 0 : 1;
}
