/*
 * minfuse - the FUSE ceiling for bench/exportfs.sh.
 *
 *   minfuse [-s] [-f] [-o options] FILE MOUNTPOINT
 *
 * A minimal read-only libfuse 3 low-level file system that serves ONE file,
 * MOUNTPOINT/<basename of FILE>, read with pread() from FILE. It does no more
 * work per request than any FUSE file system must, so its throughput is the
 * most a FUSE file system can reach on this machine with this libfuse:
 *
 *   - the root directory (inode 1) and the file (inode 2);
 *   - st_blksize 1 MiB (cp and dd size their buffers from it);
 *   - keep_cache off: every open drops the file's page cache, so every run
 *     reads through FUSE (impexfs keeps its cache; the bench drops the page
 *     cache before every run, so both are measured cold);
 *   - -s runs the single-threaded loop, else the multithreaded one.
 *
 * Build: cc -O2 -o minfuse minfuse.c $(pkg-config --cflags --libs fuse3)
 * Unmount with fusermount3 -u MOUNTPOINT.
 */
#define FUSE_USE_VERSION 314
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_INO 2
#define TIMEOUT 60.0 /* nothing changes while mounted */

static struct {
	int fd;            /* the served file, open for the whole mount */
	const char *name;  /* its name in the root directory */
	struct stat st;    /* its attributes, taken at mount time */
} file;

static int fill_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 1 << 20;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else if (ino == FILE_INO) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = file.st.st_size;
		st->st_blocks = file.st.st_blocks;
		st->st_mtim = file.st.st_mtim;
		st->st_ctim = file.st.st_ctim;
		st->st_atim = file.st.st_atim;
	} else {
		return -1;
	}
	return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	if (parent != FUSE_ROOT_ID || strcmp(name, file.name) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = FILE_INO;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fill_attr(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (fill_attr(ino, &st) < 0)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	/* ".", ".." and the file, at offsets 0, 1, 2 */
	const char *names[] = {".", "..", file.name};
	const fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, FILE_INO};
	char *buf;
	size_t used = 0;

	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (off_t i = off; i < 3; i++) {
		struct stat st = {.st_ino = inos[i], .st_mode = i < 2 ? S_IFDIR : S_IFREG};
		size_t len = fuse_add_direntry(req, buf + used, size - used, names[i], &st, i + 1);

		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO) {
		fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 0; /* every run reads through FUSE */
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf;
	ssize_t got;

	(void)ino;
	(void)fi;
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	got = pread(file.fd, buf, size, off);
	if (got < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
};

/* The first operand is FILE; the mount point and options go to libfuse. */
static const char *source;

static int take_operand(void *data, const char *arg, int key, struct fuse_args *args)
{
	(void)data;
	(void)args;
	if (key == FUSE_OPT_KEY_NONOPT && !source) {
		source = arg;
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = {0};
	struct fuse_session *se = NULL;
	int rc = 1;

	if (fuse_opt_parse(&args, NULL, NULL, take_operand) != 0 ||
	    fuse_parse_cmdline(&args, &opts) != 0)
		return 2;
	if (opts.show_help || !source || !opts.mountpoint) {
		printf("usage: %s [-s] [-f] [-o options] FILE MOUNTPOINT\n", argv[0]);
		fuse_cmdline_help();
		rc = opts.show_help ? 0 : 2;
		goto out;
	}
	file.fd = open(source, O_RDONLY);
	if (file.fd < 0 || fstat(file.fd, &file.st) < 0) {
		fprintf(stderr, "minfuse: %s: %s\n", source, strerror(errno));
		goto out;
	}
	if (!S_ISREG(file.st.st_mode)) {
		fprintf(stderr, "minfuse: %s: not a regular file\n", source);
		goto out;
	}
	file.name = strrchr(source, '/') ? strrchr(source, '/') + 1 : source;
	fuse_opt_add_arg(&args, "-oro");
	fuse_opt_add_arg(&args, "-ofsname=minfuse");
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se || fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(opts.foreground);
	if (opts.singlethread) {
		rc = fuse_session_loop(se) == 0 ? 0 : 1;
	} else {
		struct fuse_loop_config *config = fuse_loop_cfg_create();

		if (!config)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(config, (unsigned int)opts.clone_fd);
		if (opts.max_threads)
			fuse_loop_cfg_set_max_threads(config, opts.max_threads);
		rc = fuse_session_loop_mt(se, config) == 0 ? 0 : 1;
		fuse_loop_cfg_destroy(config);
	}
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out:
	if (se)
		fuse_session_destroy(se);
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return rc;
}
