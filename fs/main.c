/*
 * impexfs - Hyper-V export and import as file systems.
 *
 *   impexfs [-o options] STORE MOUNTPOINT
 *   impexfs export STORE MOUNTPOINT
 *
 * Mounts first, then goes to the background, so that a mount that fails
 * says why on the terminal and in the exit status.
 */
#define FUSE_USE_VERSION 314

#include "error.h"
#include "exportfs.h"
#include "impex_config.h"
#include "pathmap.h"
#include "store.h"

#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct options {
	char *store;
	char *pathmap;
	int import;
};

#define OPTION(text, field, value)                                                                 \
	{                                                                                          \
		text, offsetof(struct options, field), value                                       \
	}

static const struct fuse_opt option_spec[] = {
	OPTION("pathmap=%s", pathmap, 0),
	OPTION("import", import, 1),
	FUSE_OPT_END,
};

static void usage(const char *program)
{
	printf("usage: %s [-o options] STORE MOUNTPOINT\n"
	       "       %s export STORE MOUNTPOINT\n\n"
	       "Serves the VMs of a Hyper-V store as export folders, read-only:\n"
	       "  MOUNTPOINT/vms/<name>/   each VM as Export-VM lays it out\n\n"
	       "impexfs options:\n"
	       "    -o pathmap=WIN=DIR[;WIN=DIR...]   where the store's Windows paths live\n"
	       "    -f                                stay in the foreground\n"
	       "    -d                                debug output (implies -f)\n"
	       "    -h, --help                        this text\n"
	       "    -V, --version                     the version\n\n"
	       "Unmount with: fusermount3 -u MOUNTPOINT\n",
	       program, program);
}

/* The first operand is the store (after an optional "export"); the rest
 * goes to libfuse. */
static int take_operand(void *data, const char *arg, int key, struct fuse_args *args)
{
	struct options *o = data;

	(void)args;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (!o->store && strcmp(arg, "export") == 0)
		return 0;
	if (!o->store && strcmp(arg, "import") == 0) {
		o->import = 1;
		return 0;
	}
	if (!o->store) {
		o->store = strdup(arg);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = {0};
	struct options o = {0};
	struct store_options so = {0};
	struct pathmap *map = NULL;
	struct store *store = NULL;
	struct exportfs fs = {0};
	struct fuse_session *se = NULL;
	struct error err;
	const char *roots[1];
	int rc = 1;

	if (fuse_opt_parse(&args, &o, option_spec, take_operand) != 0 ||
	    fuse_parse_cmdline(&args, &cmd) != 0)
		return 2;
	if (cmd.show_help) {
		usage(argv[0]);
		fuse_lowlevel_help();
		rc = 0;
		goto out;
	}
	if (cmd.show_version) {
		printf("impexfs %s\n", IMPEX_VERSION);
		rc = 0;
		goto out;
	}
	if (!o.store || !cmd.mountpoint) {
		fprintf(stderr, "impexfs: missing %s\n", o.store ? "MOUNTPOINT" : "STORE");
		usage(argv[0]);
		rc = 2;
		goto out;
	}
	if (o.import) {
		fprintf(stderr, "impexfs: the import mount is not built yet\n");
		rc = 2;
		goto out;
	}
	error_clear(&err);
	if (o.pathmap) {
		map = pathmap_new();
		if (!map || pathmap_add_list(map, o.pathmap, &err) < 0) {
			fprintf(stderr, "impexfs: %s\n",
				map ? error_message(&err) : "out of memory");
			rc = 2;
			goto out;
		}
	}
	roots[0] = o.store;
	so.roots = roots;
	so.root_count = 1;
	so.pathmap = map;
	fs.uid = getuid();
	fs.gid = getgid();
	if (store_open(&store, &so, &err) < 0 || exportfs_build(&fs, store, &err) < 0) {
		fprintf(stderr, "impexfs: %s\n", error_message(&err));
		goto out;
	}
	fuse_opt_add_arg(&args, "-oro");
	fuse_opt_add_arg(&args, "-ofsname=impexfs");
	fuse_opt_add_arg(&args, "-osubtype=impexfs");
	se = fuse_session_new(&args, &exportfs_ops, sizeof(exportfs_ops), &fs);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, cmd.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(cmd.foreground);
	rc = fuse_session_loop(se) == 0 ? 0 : 1;
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out:
	if (se)
		fuse_session_destroy(se);
	exportfs_release(&fs);
	store_free(store);
	pathmap_free(map);
	free(cmd.mountpoint);
	free(o.store);
	free(o.pathmap);
	fuse_opt_free_args(&args);
	return rc;
}
