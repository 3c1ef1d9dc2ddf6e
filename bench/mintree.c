/*
 * mintree - the FUSE ceiling for bench/mount-scale.sh's find.
 *
 *   mintree [-s] [-f] [-o options] LISTING MOUNTPOINT
 *
 * A minimal read-only libfuse 3 low-level file system that serves a tree of
 * folders, empty files (of the listed sizes) and symbolic links, all held in
 * memory, as LISTING describes it: one line per entry below the root,
 *
 *   <d|f|l> TAB <size> TAB <link target, or nothing> TAB <path>
 *
 * parents before their children (what `find ROOT -mindepth 1 -printf
 * '%y\t%s\t%l\t%P\n'` prints). It does no more per request than any FUSE
 * file system must: a lookup is a binary search of the folder's names, a
 * listing is copied out of an array. So a walk of its tree (find) costs what
 * the kernel and libfuse make it cost: the most a FUSE file system serving a
 * tree of that shape can reach on this machine with this libfuse.
 *
 * It asks the kernel what impexfs asks (fs/exportfs_ops.c, exportfs_op_init):
 * listings with attributes (READDIRPLUS, not "auto"), no OPENDIR, requests of
 * 256 KiB, an hour's timeouts; -s runs the single-threaded loop, else the
 * multithreaded one.
 *
 * Build: cc -O2 -o mintree mintree.c $(pkg-config --cflags --libs fuse3)
 * Unmount with fusermount3 -u MOUNTPOINT.
 */
#define FUSE_USE_VERSION 314
#define _GNU_SOURCE

#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT 3600.0 /* nothing changes while mounted */

struct node {
	char *name;	  /* in its folder */
	char *target;	  /* a link's */
	char type;	  /* 'd', 'f' or 'l' */
	off_t size;
	size_t parent;	  /* index of its folder */
	size_t *children; /* a folder's, by name once loaded */
	size_t count, cap;
};

/* Node i has inode number i + 1: the root is node 0 (FUSE_ROOT_ID). */
static struct node *nodes;
static size_t node_count, node_cap;
static struct timespec loaded; /* every entry's time */

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	*cap = *cap ? *cap * 2 : 64;
	while (*cap < need)
		*cap *= 2;
	p = realloc(p, *cap * size);
	if (!p) {
		perror("mintree");
		exit(1);
	}
	return p;
}

static size_t add_node(size_t parent, const char *name, char type, off_t size,
		       const char *target)
{
	struct node *dir;

	nodes = grow(nodes, &node_cap, node_count + 1, sizeof(*nodes));
	nodes[node_count] = (struct node){.name = strdup(name), .type = type, .size = size,
					  .parent = parent,
					  .target = target ? strdup(target) : NULL};
	if (node_count > 0) {
		dir = &nodes[parent];
		dir->children = grow(dir->children, &dir->cap, dir->count + 1, sizeof(size_t));
		dir->children[dir->count++] = node_count;
	}
	return node_count++;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(nodes[*(const size_t *)a].name, nodes[*(const size_t *)b].name);
}

/* The child of folder @dir named @name, or SIZE_MAX. */
static size_t child(size_t dir, const char *name)
{
	size_t lo = 0, hi = nodes[dir].count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, nodes[nodes[dir].children[mid]].name);

		if (c == 0)
			return nodes[dir].children[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return SIZE_MAX;
}

/* Read @path's listing; exits on a line it cannot place. */
static void load(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;

	if (!f) {
		fprintf(stderr, "mintree: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	clock_gettime(CLOCK_REALTIME, &loaded);
	add_node(0, "", 'd', 0, NULL);
	while ((len = getline(&line, &cap, f)) > 0) {
		char *type, *size, *target, *rel, *name, *slash;
		size_t dir = 0;

		lineno++;
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		type = strtok(line, "\t");
		size = strtok(NULL, "\t");
		target = size ? size + strlen(size) + 1 : NULL;
		rel = target ? strchr(target, '\t') : NULL;
		if (!type || !size || !rel || !strchr("dfl", type[0]) || type[1]) {
			fprintf(stderr, "mintree: %s:%zu: not '<d|f|l>\\t<size>\\t<target>\\t<path>'\n",
				path, lineno);
			exit(1);
		}
		*rel++ = '\0';
		/* Its folder: the nodes so far hold it (parents come first). */
		for (name = rel; (slash = strchr(name, '/')); name = slash + 1) {
			*slash = '\0';
			for (size_t i = nodes[dir].count; i-- > 0;)
				if (strcmp(nodes[nodes[dir].children[i]].name, name) == 0) {
					dir = nodes[dir].children[i];
					goto found;
				}
			fprintf(stderr, "mintree: %s:%zu: no folder '%s' before it\n", path, lineno,
				name);
			exit(1);
found:;
		}
		add_node(dir, name, type[0], strtoll(size, NULL, 10),
			 type[0] == 'l' ? target : NULL);
	}
	free(line);
	fclose(f);
	for (size_t i = 0; i < node_count; i++)
		if (nodes[i].count)
			qsort(nodes[i].children, nodes[i].count, sizeof(size_t), by_name);
}

static void fill_attr(size_t i, struct stat *st)
{
	const struct node *n = &nodes[i];

	memset(st, 0, sizeof(*st));
	st->st_ino = i + 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtim = st->st_ctim = st->st_atim = loaded;
	st->st_blksize = 1 << 20;
	if (n->type == 'd') {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else if (n->type == 'l') {
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(n->target);
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = n->size;
	}
}

/* The node of inode @ino, or SIZE_MAX. */
static size_t node_of(fuse_ino_t ino)
{
	return ino >= 1 && ino <= node_count ? (size_t)ino - 1 : SIZE_MAX;
}

static void op_init(void *data, struct fuse_conn_info *conn)
{
	(void)data;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	conn->max_write = 256 * 1024;
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	size_t dir = node_of(parent), found;
	struct fuse_entry_param e;

	if (dir == SIZE_MAX || nodes[dir].type != 'd') {
		fuse_reply_err(req, dir == SIZE_MAX ? ENOENT : ENOTDIR);
		return;
	}
	found = child(dir, name);
	if (found == SIZE_MAX) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = found + 1;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fill_attr(found, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	size_t i = node_of(ino);
	struct stat st;

	(void)fi;
	if (i == SIZE_MAX) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(i, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	size_t i = node_of(ino);

	if (i == SIZE_MAX || nodes[i].type != 'l')
		fuse_reply_err(req, i == SIZE_MAX ? ENOENT : EINVAL);
	else
		fuse_reply_readlink(req, nodes[i].target);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS); /* no OPENDIR, no RELEASEDIR */
}

static void list(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	size_t dir = node_of(ino), used = 0;
	char *buf;

	if (dir == SIZE_MAX || nodes[dir].type != 'd') {
		fuse_reply_err(req, dir == SIZE_MAX ? ENOENT : ENOTDIR);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Offsets: 0 ".", 1 "..", then the children from 2. */
	for (off_t i = off; i < (off_t)nodes[dir].count + 2; i++) {
		size_t which = i == 0 ? dir : i == 1 ? nodes[dir].parent : nodes[dir].children[i - 2];
		const char *name = i == 0 ? "." : i == 1 ? ".." : nodes[which].name;
		struct fuse_entry_param e;
		size_t len;

		memset(&e, 0, sizeof(e));
		fill_attr(which, &e.attr);
		if (plus && i >= 2) {
			e.ino = which + 1;
			e.attr_timeout = TIMEOUT;
			e.entry_timeout = TIMEOUT;
		}
		len = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, i + 1)
			   : fuse_add_direntry(req, buf + used, size - used, name, &e.attr, i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	list(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	list(req, ino, size, off, 1);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
};

/* The first operand is LISTING; the mount point and options go to libfuse. */
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
		printf("usage: %s [-s] [-f] [-o options] LISTING MOUNTPOINT\n", argv[0]);
		fuse_cmdline_help();
		rc = opts.show_help ? 0 : 2;
		goto out;
	}
	load(source);
	fuse_opt_add_arg(&args, "-oro");
	fuse_opt_add_arg(&args, "-ofsname=mintree");
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
