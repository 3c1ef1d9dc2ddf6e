/*
 * The import mount (impexfs -o import STORE MOUNTPOINT), on libfuse's
 * path-based API.
 *
 * Each folder made at the root is one import. Its files are written once,
 * straight into a folder of its own in the daemon's staging folder of the
 * target VHD root (core/staging.h: root-only, so no user reaches it but
 * through the mount; this process holds an exclusive flock on the import's
 * folder), so that an import is an export folder on the targets' file
 * system. Every name is resolved beneath the import's folder descriptor,
 * never through a link (core/beneath.h). When nothing of
 * it is open for writing and it has been quiet for the settle time, it is
 * checked: its settings (the defaults, the mount's, its own document) and
 * Compare's report. With no error it is registered by core/import_run,
 * which links the files into place (IMPORT_ADOPT), the VM's configuration
 * last. From then on the folder shows what it held, read-only, until
 * unmount. A killed mount leaves a folder no lock holds, which the next
 * mount (or import) removes with what a killed registration left.
 *
 * The policy is the core's (core/import_mount.h, core/import_job.h); this
 * file mounts and serves, fs/importfs_internal.h says where the rest is.
 */
#define FUSE_USE_VERSION 314

#include "importfs_internal.h"

#include "error.h"
#include "import_mount.h"
#include "log.h"

#include <errno.h>
#include <fuse.h>
#include <stdlib.h>
#include <string.h>

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct importfs *fs = fuse_get_context()->private_data;

	cfg->nullpath_ok = 0; /* readdir finds its folder by path */
	cfg->use_ino = 0;
	/*
	 * Names and attributes are kept ten seconds: every change to an import's names and
	 * attributes comes through this mount (its folder is the daemon's alone), so the kernel
	 * learns each from its reply, and sizes grown by writes from the writes themselves.
	 * Without it each lookup and permission check asks again for every folder on the way
	 * (ls -lR of a 30,000-file import: about 19 requests a file). The status file is read
	 * with direct_io, to its end whatever size was last shown.
	 */
	cfg->attr_timeout = 10;
	cfg->entry_timeout = 10;
	cfg->negative_timeout = 0;
	/*
	 * Writes are spliced from the kernel to their files (importfs_op_write_buf). libfuse
	 * splices a request only into a pipe that holds it whole, header included, and a
	 * pipe grows past /proc/sys/fs/pipe-max-size (1 MiB) only with CAP_SYS_RESOURCE: so
	 * writes of 1 MiB less a page, which a pipe of the default size limit takes.
	 */
	conn->max_write = (1 << 20) - 4096;
#ifdef __SANITIZE_THREAD__
	/* ThreadSanitizer sees read(2) and writev(2) of /dev/fuse order a request after the
	 * reply before it, not splice(2): under it, writes are read, so that it sees the order. */
	conn->want &= ~FUSE_CAP_SPLICE_READ;
#else
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want |= FUSE_CAP_SPLICE_READ;
#endif
	return fs;
}

static const struct fuse_operations ops = {
	.init = op_init,
	.getattr = importfs_op_getattr,
	.readdir = importfs_op_readdir,
	.mkdir = importfs_op_mkdir,
	.rmdir = importfs_op_rmdir,
	.unlink = importfs_op_unlink,
	.rename = importfs_op_rename,
	.link = importfs_op_link,
	.symlink = importfs_op_link,
	.mknod = importfs_op_mknod,
	.chmod = importfs_op_chmod,
	.chown = importfs_op_chown,
	.truncate = importfs_op_truncate,
	.utimens = importfs_op_utimens,
	.create = importfs_op_create,
	.open = importfs_op_open,
	.read = importfs_op_read,
	.write_buf = importfs_op_write_buf,
	.flush = importfs_op_flush,
	.release = importfs_op_release,
	.fsync = importfs_op_fsync,
	.statfs = importfs_op_statfs,
	.setxattr = importfs_op_setxattr,
	.getxattr = importfs_op_getxattr,
	.listxattr = importfs_op_listxattr,
	.removexattr = importfs_op_removexattr,
};

/* ---- the mount ---- */

/* Tell the log what a recovery left alone. */
static void log_notice(void *ctx, const char *message)
{
	(void)ctx;
	fslog(FUSE_LOG_WARNING, "%s", message);
}

/* Unmounted: imports not registered are rolled back. */
static void shut_down(struct importfs *fs)
{
	importfs_checker_stop(fs);
	importfs_handles_drop(fs);
	for (size_t i = 0; i < fs->count; i++) {
		struct importfs_import *imp = fs->imports[i];
		enum import_state state = import_job_state(imp->job);
		struct error err;

		error_clear(&err);
		if (import_job_folder_fd(imp->job) >= 0) {
			if (import_job_remove_folder(imp->job, &err) < 0)
				fslog(FUSE_LOG_ERR, "import '%s': %s", imp->name,
				      error_message(&err));
			if (state != IMPORT_STATE_REGISTERED && !imp->gone &&
			    atomic_load(&imp->files) > 0)
				fslog(FUSE_LOG_WARNING,
				      "import '%s' was not complete at unmount: rolled back",
				      imp->name);
		}
		import_job_free(imp->job);
		importfs_view_discard(&imp->view);
		pthread_rwlock_destroy(&imp->rw);
		free(imp->name);
		free(imp);
	}
	free(fs->imports);
	fs->imports = NULL;
	fs->count = 0;
}

int importfs_main(const struct importfs_options *o, struct fuse_args *args)
{
	struct importfs fs = {.o = o};
	struct import_mount_options mo = {
		.store = o->store,
		.more_roots = o->more_roots,
		.sources = o->sources,
		.pathmap = o->pathmap,
		.settings_file = o->settings_file,
		.settings_text = o->settings_text,
		.notice = log_notice,
	};
	pthread_condattr_t clock;
	struct fuse *fuse = NULL;
	bool bad_settings;
	struct error err;
	int rc;

	error_clear(&err);
	pthread_mutex_init(&fs.mu, NULL);
	openfiles_init(&fs.open);
	/* Timed waits on the monotonic clock: a change of the time of day does not stall them. */
	pthread_condattr_init(&clock);
	pthread_condattr_setclock(&clock, CLOCK_MONOTONIC);
	pthread_cond_init(&fs.wake, &clock);
	pthread_condattr_destroy(&clock);
	/* The root's times, shown as a time of day: the wall clock. */
	clock_gettime(CLOCK_REALTIME, &fs.started);
	if (import_mount_open(&fs.mount, &mo, &bad_settings, &err) < 0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		rc = bad_settings ? 2 : 1;
		goto out;
	}
	rc = 2;
	fuse = fuse_new(args, &ops, sizeof(ops), &fs);
	if (!fuse)
		goto out;
	rc = 1;
	if (fuse_mount(fuse, o->mountpoint) != 0)
		goto out;
	if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out_unmount;
	fuse_daemonize(o->foreground);
	if (!o->foreground)
		fslog_background();
	if (importfs_checker_start(&fs) < 0) {
		fslog(FUSE_LOG_ERR, "cannot start the checking thread");
		goto out_signals;
	}
	rc = fsloop_run(fuse, NULL, &o->loop);
out_signals:
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out:
	shut_down(&fs);
	if (fuse)
		fuse_destroy(fuse);
	import_mount_free(fs.mount);
	pthread_cond_destroy(&fs.wake);
	pthread_mutex_destroy(&fs.mu);
	pthread_mutex_destroy(&fs.open.lock);
	return rc;
}
