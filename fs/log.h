/*
 * Where the daemon's messages go (docs/impexfs.1, MESSAGES): standard error
 * while it mounts, and all along with -f or -d; once it is in the background,
 * syslog (the journal), ident "impexfs" with its pid, facility daemon, each
 * line led by the mount point. libfuse's own messages take the same way.
 */
#ifndef IMPEXFS_LOG_H
#define IMPEXFS_LOG_H

#include <fuse_log.h>

/**
 * Take every message of the daemon, libfuse's too (fuse_set_log_func), and
 * lead each one sent to syslog with @mountpoint (copied). Messages go to
 * standard error until fslog_background(). Call once, before any thread.
 */
void fslog_init(const char *mountpoint);

/**
 * The daemon is in the background (after fuse_daemonize(), without -f):
 * messages go to syslog from now on. Call before any thread is started.
 */
void fslog_background(void);

/**
 * Say @fmt (printf's; one line, no "impexfs: " before it and no newline
 * after it) at @level: "impexfs: MESSAGE" on standard error, or
 * "impexfs[PID]: MOUNTPOINT: MESSAGE" in syslog. Thread-safe.
 */
void fslog(enum fuse_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
