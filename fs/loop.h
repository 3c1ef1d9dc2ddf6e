/*
 * loop.h - the session loop of a mount, over a session of libfuse's
 * low-level API (the export mount's) or a high-level fuse (as the import
 * mount's is), in one thread or several, and the exit status its end means.
 */
#ifndef IMPEXFS_LOOP_H
#define IMPEXFS_LOOP_H

#include <stdbool.h>

struct fuse;
struct fuse_session;

/* How the loop runs, as the command line says (libfuse's fuse_cmdline_opts). */
struct fsloop_options {
	bool singlethread; /* -s: one thread */
	bool clone_fd;	   /* -o clone_fd: a device descriptor for each thread */
	/* -o max_threads=, -o max_idle_threads=; above 100000 (libfuse leaves them UINT_MAX
	 * unless given): libfuse's defaults */
	unsigned max_threads, max_idle_threads;
};

/**
 * Serve the mounted file system until it is unmounted: with @fuse (a mount
 * made by fuse_new()), libfuse's high-level loop, which also runs the cleanup
 * thread '-o remember' asks for; else the loop of the session @se. Call from
 * the thread that mounted, after fuse_daemonize(). Returns the exit status:
 * 0 after an unmount, also a lazy one (after which the kernel may answer a
 * last read of the device with ECONNABORTED or ENODEV rather than end of
 * file); 1 when the loop failed or could not be set up.
 */
int fsloop_run(struct fuse *fuse, struct fuse_session *se, const struct fsloop_options *o);

#endif
