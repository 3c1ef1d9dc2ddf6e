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
#include "export.h"
#include "exportfs.h"
#include "fsutil.h"
#include "help.h"
#include "impex_config.h"
#include "importfs.h"
#include "log.h"
#include "loop.h"
#include "mountinfo.h"
#include "pathmap.h"
#include "store.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <grp.h>
#include <libxml/parser.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct options {
	char *store;
	char *pathmap;
	int import;
	unsigned revalidate;
	unsigned readahead;
	int copy_reads;
	int verbose;
	struct export_settings settings;
	/* What the export mount shows of owners and modes (uid=, gid=, umask=) */
	bool set_uid, set_gid;
	uid_t uid;
	gid_t gid;
	mode_t umask;
	char *bad;	 /* an option whose value is wrong */
	const char *why; /* what is wrong with it, if there is more to say */
	/* The import mount's */
	char *settings_file;
	char *more_roots; /* roots=DIR:DIR */
	char *sources;	  /* sources=DIR:DIR */
	unsigned settle;
	char *doc;     /* the import settings given as options, as a document */
	size_t doc_len;
	char *export_only, *import_only; /* an option given to the other mode */
	bool fsname;			 /* -o fsname= given: the user's, kept */
	char *point;			 /* the mount point operand, as given */
};

enum {
	KEY_STORAGE = 100,
	KEY_RUNTIME,
	KEY_SNAPSHOTS,
	KEY_SUBDIRECTORY,
	KEY_IMPORT_SETTING,
	KEY_UID,
	KEY_GID,
	KEY_UMASK,
	KEY_FSNAME,
};

#define OPTION(text, field, value)                                                                 \
	{                                                                                          \
		text, offsetof(struct options, field), value                                       \
	}

/* A BOOL option, alone ("copy_vm_storage": true) or with its value ("copy_vm_storage=no"). */
#define BOOL_KEY(text, key) FUSE_OPT_KEY(text, key), FUSE_OPT_KEY(text "=", key)

/* pathmap= is not here: take_pathmaps() takes it out first, as written. */
static const struct fuse_opt option_spec[] = {
	OPTION("import", import, 1),
	OPTION("export", import, 0),
	OPTION("revalidate=%u", revalidate, 0),
	OPTION("readahead=%u", readahead, 0),
	OPTION("verbose", verbose, 1),
	OPTION("copy_reads", copy_reads, 1),
	BOOL_KEY("copy_vm_storage", KEY_STORAGE),
	BOOL_KEY("copy_vm_runtime_information", KEY_RUNTIME),
	FUSE_OPT_KEY("copy_snapshot_configuration=", KEY_SNAPSHOTS),
	BOOL_KEY("create_vm_export_subdirectory", KEY_SUBDIRECTORY),
	FUSE_OPT_KEY("uid=", KEY_UID),
	FUSE_OPT_KEY("gid=", KEY_GID),
	FUSE_OPT_KEY("umask=", KEY_UMASK),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	OPTION("settings=%s", settings_file, 0),
	OPTION("settle=%u", settle, 0),
	OPTION("roots=%s", more_roots, 0),
	OPTION("sources=%s", sources, 0),
	FUSE_OPT_KEY("create_copy=", KEY_IMPORT_SETTING),
	FUSE_OPT_KEY("generate_new_id=", KEY_IMPORT_SETTING),
	FUSE_OPT_KEY("security_scope=", KEY_IMPORT_SETTING),
	FUSE_OPT_KEY("target_vm_data_root=", KEY_IMPORT_SETTING),
	FUSE_OPT_KEY("target_vhd_data_root=", KEY_IMPORT_SETTING),
	FUSE_OPT_KEY("target_snapshot_data_root=", KEY_IMPORT_SETTING),
	FUSE_OPT_KEY("disconnect_unknown_switches=", KEY_IMPORT_SETTING),
	FUSE_OPT_END,
};

/* BOOL as mount options write it; -1 if it is none. */
static int parse_bool(const char *text)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0)
			return 1;
		if (strcasecmp(text, no[i]) == 0)
			return 0;
	}
	return -1;
}

/*
 * A user (or with @group, a group) named by number or by name, into *@id.
 * Returns NULL, or what is wrong with @text.
 */
static const char *parse_owner(const char *text, bool group, unsigned *id)
{
	unsigned long long value;
	char *end;

	if (!*text)
		return group ? "no group given" : "no user given";
	if (strspn(text, "0123456789") == strlen(text)) {
		errno = 0;
		value = strtoull(text, &end, 10);
		/* (uid_t)-1 means "no change" to chown(2): never an owner. */
		if (errno || value >= UINT32_MAX)
			return "the number is out of range";
		*id = (unsigned)value;
		return NULL;
	}
	if (group) {
		struct group *g = getgrnam(text);

		if (!g)
			return "no such group, and not a number";
		*id = g->gr_gid;
	} else {
		struct passwd *p = getpwnam(text);

		if (!p)
			return "no such user, and not a number";
		*id = p->pw_uid;
	}
	return NULL;
}

/* An octal mask of permission bits (at most 0777) into *@mask; NULL, or what is wrong. */
static const char *parse_umask(const char *text, mode_t *mask)
{
	unsigned long value;

	if (!*text || strspn(text, "01234567") != strlen(text) || strlen(text) > 4)
		return "not an octal number such as 022";
	value = strtoul(text, NULL, 8);
	if (value > 0777)
		return "more than 0777";
	*mask = (mode_t)value;
	return NULL;
}

/* Keep a copy of @arg in *@first unless it holds one: the first of its kind is said. */
static void note_first(char **first, const char *arg)
{
	if (!*first)
		*first = strdup(arg);
}

/* Note @arg as a bad option (the first one only), with @why if not NULL. */
static void bad_option(struct options *o, const char *arg, const char *why)
{
	if (o->bad)
		return;
	o->bad = strdup(arg);
	o->why = why;
}

/* The store operand (after an optional "export" or "import"), and the export settings. */
static int take_option(void *data, const char *arg, int key, struct fuse_args *args)
{
	struct options *o = data;
	const char *eq = strchr(arg, '=');
	int value = eq ? parse_bool(eq + 1) : 1;

	(void)args;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
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
		if (!o->point)
			o->point = strdup(arg);
		return 1;
	case KEY_IMPORT_SETTING: {
		/* "key=value" becomes the document line "key = value". */
		size_t n = strlen(arg) + 4;
		char *grown = realloc(o->doc, o->doc_len + n + 1);

		note_first(&o->import_only, arg);
		if (!grown || strchr(arg, '\n')) {
			bad_option(o, arg, NULL);
			if (grown)
				o->doc = grown;
			return 0;
		}
		o->doc = grown;
		o->doc_len += (size_t)sprintf(o->doc + o->doc_len, "%.*s = %s\n", (int)(eq - arg),
					      arg, eq + 1);
		return 0;
	}
	case KEY_UID:
	case KEY_GID:
	case KEY_UMASK: {
		unsigned id = 0;
		const char *why = key == KEY_UMASK ? parse_umask(eq + 1, &o->umask)
						   : parse_owner(eq + 1, key == KEY_GID, &id);

		note_first(&o->export_only, arg);
		if (why)
			bad_option(o, arg, why);
		else if (key == KEY_UID)
			o->uid = id, o->set_uid = true;
		else if (key == KEY_GID)
			o->gid = id, o->set_gid = true;
		return 0;
	}
	case KEY_FSNAME:
		o->fsname = true;
		return 1; /* for libfuse */
	case KEY_SNAPSHOTS:
		note_first(&o->export_only, arg);
		if (strcmp(eq + 1, "all") == 0)
			o->settings.copy_snapshot_configuration = EXPORT_SNAPSHOTS_ALL;
		else if (strcmp(eq + 1, "none") == 0)
			o->settings.copy_snapshot_configuration = EXPORT_SNAPSHOTS_NONE;
		else
			bad_option(o, arg, NULL);
		return 0;
	case KEY_STORAGE:
	case KEY_RUNTIME:
	case KEY_SUBDIRECTORY:
		note_first(&o->export_only, arg);
		if (value < 0)
			bad_option(o, arg, NULL);
		else if (key == KEY_STORAGE)
			o->settings.copy_vm_storage = value;
		else if (key == KEY_RUNTIME)
			o->settings.copy_vm_runtime_information = value;
		else
			o->settings.create_vm_export_subdirectory = value;
		return 0;
	default:
		return 1;
	}
}

/* Append the path map entries @value (@len bytes) to o->pathmap, ';' before them. */
static int append_pathmap(struct options *o, const char *value, size_t len)
{
	size_t had = o->pathmap ? strlen(o->pathmap) : 0;
	char *grown = realloc(o->pathmap, had + len + 2);

	if (!grown)
		return -ENOMEM;
	if (had)
		grown[had++] = ';';
	memcpy(grown + had, value, len);
	grown[had + len] = '\0';
	o->pathmap = grown;
	return 0;
}

/*
 * The option group @group (what follows an -o) without its "pathmap="
 * options, whose values go to o->pathmap as written: a value runs to the
 * next comma, backslashes and all. The other options are split where
 * libfuse splits them ('\' quotes the character after it) and kept with
 * their escapes, for libfuse to read. Returns the group left (caller
 * frees; "" if nothing is), or NULL for ENOMEM.
 */
static char *take_pathmaps_of(const char *group, struct options *o)
{
	char *rest = malloc(strlen(group) + 1);
	const char *s = group;
	size_t n = 0, kept = 0;

	if (!rest)
		return NULL;
	while (*s) {
		const char *end = s;

		if (strncmp(s, "pathmap=", 8) == 0) {
			end = s + strcspn(s, ",");
			if (append_pathmap(o, s + 8, (size_t)(end - s - 8)) < 0) {
				free(rest);
				return NULL;
			}
		} else {
			for (; *end && *end != ','; end++)
				if (end[0] == '\\' && end[1])
					end++;
			if (kept++)
				rest[n++] = ',';
			memcpy(rest + n, s, (size_t)(end - s));
			n += (size_t)(end - s);
		}
		s = *end ? end + 1 : end;
	}
	rest[n] = '\0';
	return rest;
}

/*
 * @argv (@argc) into @args with every "pathmap=" taken out of the -o
 * option groups, before libfuse parses them: its parser reads a backslash
 * as an escape, and Windows paths are made of backslashes
 * ("pathmap=D:\Hyper-V=/srv/hyperv" would become "D:Hyper-V"). Arguments are
 * read as libfuse reads them: "-o GROUP" or "-oGROUP" from the second on,
 * and none after "--". Returns 0, or -ENOMEM.
 */
static int take_pathmaps(int argc, char **argv, struct fuse_args *args, struct options *o)
{
	bool operands = false;

	for (int i = 0; i < argc; i++) {
		const char *group = NULL;
		char *rest;
		int rc = 0;

		if (i > 0 && !operands && strcmp(argv[i], "--") == 0)
			operands = true;
		else if (i > 0 && !operands && strncmp(argv[i], "-o", 2) == 0)
			group = argv[i][2] ? argv[i] + 2 : i + 1 < argc ? argv[++i] : NULL;
		if (!group) {
			if (fuse_opt_add_arg(args, argv[i]) < 0)
				return -ENOMEM;
			continue;
		}
		rest = take_pathmaps_of(group, o);
		if (!rest)
			return -ENOMEM;
		if (*rest && (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, rest) < 0))
			rc = -ENOMEM;
		free(rest);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Whether @a and @b are one inside the other (the kernel would deadlock serving that). */
static bool nested(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];

	/* door: the command line's store and mount point, compared, never opened */
	if (!realpath(a, ra) || !realpath(b, rb))
		return false;
	return fsutil_path_within(ra, rb) || fsutil_path_within(rb, ra);
}

/*
 * "-ofsname=SOURCE" added to @args, SOURCE the real path of @store (as given if it has
 * none), with ',' and '\' escaped for libfuse's option parser: the source that mount(8),
 * findmnt and df show, and the one `mount -a` compares with an fstab line's first field
 * (which it makes a real path) to find the line mounted already. Returns 0 or -ENOMEM.
 */
static int add_fsname(struct fuse_args *args, const char *store)
{
	char real[PATH_MAX], *arg;
	/* door: the command line's store, named as the source, never opened */
	const char *name = realpath(store, real) ? real : store;
	size_t n = strlen("-ofsname=");
	int rc;

	arg = malloc(n + 2 * strlen(name) + 1);
	if (!arg)
		return -ENOMEM;
	memcpy(arg, "-ofsname=", n);
	for (const char *c = name; *c; c++) {
		if (*c == ',' || *c == '\\')
			arg[n++] = '\\';
		arg[n++] = *c;
	}
	arg[n] = '\0';
	rc = fuse_opt_add_arg(args, arg);
	free(arg);
	return rc < 0 ? -ENOMEM : 0;
}

/*
 * Whether impexfs may mount at @mountpoint (the real path libfuse made of
 * it): not where a daemon died ("Transport endpoint is not connected"), nor
 * over an impexfs mount (a second `mount -a`, a second start), which would
 * hide the first. Returns 0, or 1 after saying why not.
 */
static int mount_point_taken(const char *mountpoint)
{
	struct mountinfo_entry mount;
	bool found = mountinfo_find(mountpoint, &mount) == 0;
	struct statx st;

	/* Asked, not taken from the kernel's cache: a daemon killed a moment ago still has
	 * its attributes there. door: the command line's mount point, looked at */
	if (statx(AT_FDCWD, mountpoint, AT_STATX_FORCE_SYNC, STATX_TYPE, &st) < 0 &&
	    errno == ENOTCONN) {
		fslog(FUSE_LOG_ERR,
		      "the mount point '%s' is a dead mount%s%s%s (%s): unmount it with "
		      "'fusermount3 -u' first",
		      mountpoint, found ? " of '" : "", found ? mount.source : "", found ? "'" : "",
		      strerror(ENOTCONN));
		return 1;
	}
	if (found && strcmp(mount.type, "fuse.impexfs") == 0) {
		fslog(FUSE_LOG_ERR,
		      "'%s' is an impexfs mount already (of '%s'): a second one would hide it",
		      mountpoint, mount.source);
		return 1;
	}
	return 0;
}

/*
 * Every open file of the export mount holds its sources open: the soft limit
 * (often 1,024) would let one reader exhaust the daemon's descriptors. Raised
 * to the hard limit; what is then still short fails the reader's open with
 * EMFILE and leaves the tree alone.
 */
static void raise_descriptor_limit(void)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
	}
}

/* How the session loop runs, as the command line @cmd says. */
static struct fsloop_options fsloop_of(const struct fuse_cmdline_opts *cmd)
{
	return (struct fsloop_options){
		.singlethread = cmd->singlethread,
		.clone_fd = cmd->clone_fd,
		.max_threads = cmd->max_threads,
		.max_idle_threads = cmd->max_idle_threads,
	};
}

/* The import mount: importfs_main() mounts, serves and unmounts. Returns the exit status. */
static int serve_import(const struct options *o, const struct fuse_cmdline_opts *cmd,
			const struct pathmap *map, struct fuse_args *args)
{
	struct importfs_options io = {
		.store = o->store,
		.more_roots = o->more_roots,
		.sources = o->sources,
		.mountpoint = cmd->mountpoint,
		.pathmap = map,
		.settings_file = o->settings_file,
		.settings_text = o->doc ? o->doc : "",
		.settle_ms = o->settle ? o->settle : 500,
		.verbose = o->verbose || cmd->debug,
		.foreground = cmd->foreground,
		.debug = cmd->debug,
		.loop = fsloop_of(cmd),
	};

	xmlInitParser();
	/* The kernel checks each request against the modes: with allow_other, other
	 * users must not act as the daemon's user. */
	fuse_opt_add_arg(args, "-odefault_permissions");
	return importfs_main(&io, args);
}

/*
 * The export mount: open the store, mount read-only, go to the background
 * unless told not to, serve until unmounted. Returns the exit status: 0, 1
 * for a store or a mount that failed, 2 for an option libfuse refused.
 */
static int serve_export(const struct options *o, const struct fuse_cmdline_opts *cmd,
			const struct pathmap *map, struct fuse_args *args)
{
	const struct fsloop_options loop = fsloop_of(cmd);
	const char *roots[1] = {o->store};
	struct store_options so = {
		.roots = roots, .root_count = 1, .pathmap = map, .recorded = true};
	struct exportfs fs = {
		.settings = o->settings,
		.set_uid = o->set_uid,
		.uid = o->uid,
		.set_gid = o->set_gid,
		.gid = o->gid,
		.umask = o->umask,
		.revalidate = o->revalidate,
		.readahead_kb = o->readahead,
		.copy_reads = o->copy_reads,
		.verbose = o->verbose || cmd->debug,
	};
	struct fuse_session *se = NULL;
	struct error err;
	int rc = 1;

	raise_descriptor_limit();
	/* libxml2 is made ready here, before any thread may use it. */
	xmlInitParser();
	error_clear(&err);
	if (store_open(&fs.store, &so, &err) < 0 || exportfs_init(&fs, &err) < 0) {
		fslog(FUSE_LOG_ERR, "%s", error_message(&err));
		goto out;
	}
	if (store_notice(fs.store))
		fslog(FUSE_LOG_WARNING, "warning: %s", store_notice(fs.store));
	fuse_opt_add_arg(args, "-oro");
	/* The kernel checks each access against the modes and owners shown, which are
	 * the sources': with allow_other, no user reads through the mount what the
	 * store does not let them read (the daemon itself checks nothing). */
	fuse_opt_add_arg(args, "-odefault_permissions");
	se = fuse_session_new(args, &exportfs_ops, sizeof(exportfs_ops), &fs);
	if (!se) {
		rc = 2; /* libfuse said why: an option it does not know, mostly */
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, cmd->mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(cmd->foreground);
	if (!cmd->foreground)
		fslog_background();
	if (exportfs_start(&fs, se, cmd->mountpoint) < 0) {
		fslog(FUSE_LOG_ERR, "cannot start the revalidating thread");
		goto out_unmount;
	}
	rc = fsloop_run(NULL, se, &loop);
	/* Before the session's device is closed, unless held in the kernel (exportfs.h). */
	exportfs_stop(&fs, 2000);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out:
	exportfs_release(&fs);
	if (se)
		fuse_session_destroy(se);
	store_free(fs.store);
	return rc;
}

/* Free what the option parsing made in @o. */
static void options_release(struct options *o)
{
	free(o->store);
	free(o->point);
	free(o->pathmap);
	free(o->bad);
	free(o->settings_file);
	free(o->more_roots);
	free(o->sources);
	free(o->doc);
	free(o->export_only);
	free(o->import_only);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_cmdline_opts cmd = {0};
	struct options o = {.revalidate = 2, .readahead = 1024};
	struct pathmap *map = NULL;
	struct error err;
	int rc = 1;

	export_settings_default(&o.settings);
	if (take_pathmaps(argc, argv, &args, &o) < 0) {
		fslog(FUSE_LOG_ERR, "out of memory");
		goto out;
	}
	if (fuse_opt_parse(&args, &o, option_spec, take_option) != 0) {
		rc = 2;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &cmd) != 0) {
		struct stat st;

		/* libfuse said why: a mount point that is not there is a mount that fails,
		 * anything else a bad option or operand (door: the command line's, looked at) */
		rc = o.point && stat(o.point, &st) < 0 ? 1 : 2;
		goto out;
	}
	if (cmd.show_help) {
		fshelp_print(argv[0]);
		fuse_lowlevel_help();
		rc = 0;
		goto out;
	}
	if (cmd.show_version) {
		printf("impexfs %s\n", IMPEX_VERSION);
		rc = 0;
		goto out;
	}
	rc = 2;
	if (o.bad) {
		fslog(FUSE_LOG_ERR, "bad option '%s'%s%s", o.bad, o.why ? ": " : "",
		      o.why ? o.why : "");
		goto out;
	}
	if (!o.store || !cmd.mountpoint) {
		fslog(FUSE_LOG_ERR, "missing %s (impexfs --help says more)",
		      o.store ? "MOUNTPOINT" : "STORE");
		goto out;
	}
	fslog_init(cmd.mountpoint);
	if (!o.import_only && (o.settings_file || o.more_roots || o.settle || o.sources))
		o.import_only = strdup(o.settings_file ? "settings="
				       : o.more_roots  ? "roots="
				       : o.sources     ? "sources="
						       : "settle=");
	if (!o.export_only && o.copy_reads)
		o.export_only = strdup("copy_reads");
	if (o.import ? o.export_only != NULL : o.import_only != NULL) {
		fslog(FUSE_LOG_ERR, "the option '%s' is for the %s mount",
		      o.import ? o.export_only : o.import_only, o.import ? "export" : "import");
		goto out;
	}
	if (o.revalidate == 0) {
		fslog(FUSE_LOG_ERR, "revalidate must be at least 1 second");
		goto out;
	}
	if (nested(o.store, cmd.mountpoint)) {
		fslog(FUSE_LOG_ERR, "the mount point '%s' and the store '%s' lie one inside the other",
		      cmd.mountpoint, o.store);
		goto out;
	}
	error_clear(&err);
	if (o.pathmap) {
		map = pathmap_new();
		if (!map || pathmap_add_list(map, o.pathmap, &err) < 0) {
			fslog(FUSE_LOG_ERR, "%s", map ? error_message(&err) : "out of memory");
			goto out;
		}
	}
	rc = 1;
	if (mount_point_taken(cmd.mountpoint))
		goto out;
	if ((!o.fsname && add_fsname(&args, o.store) < 0) ||
	    fuse_opt_add_arg(&args, "-osubtype=impexfs") < 0) {
		fslog(FUSE_LOG_ERR, "out of memory");
		goto out;
	}
	rc = o.import ? serve_import(&o, &cmd, map, &args) : serve_export(&o, &cmd, map, &args);
out:
	pathmap_free(map);
	free(cmd.mountpoint);
	options_release(&o);
	fuse_opt_free_args(&args);
	return rc;
}
