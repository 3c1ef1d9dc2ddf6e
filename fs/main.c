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
#include "impex_config.h"
#include "importfs.h"
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
#include <unistd.h>

struct options {
	char *store;
	char *pathmap;
	int import;
	unsigned revalidate;
	unsigned readahead;
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
};

#define OPTION(text, field, value)                                                                 \
	{                                                                                          \
		text, offsetof(struct options, field), value                                       \
	}

/* pathmap= is not here: take_pathmaps() takes it out first, as written. */
static const struct fuse_opt option_spec[] = {
	OPTION("import", import, 1),
	OPTION("export", import, 0),
	OPTION("revalidate=%u", revalidate, 0),
	OPTION("readahead=%u", readahead, 0),
	OPTION("verbose", verbose, 1),
	FUSE_OPT_KEY("copy_vm_storage", KEY_STORAGE),
	FUSE_OPT_KEY("copy_vm_storage=", KEY_STORAGE),
	FUSE_OPT_KEY("copy_vm_runtime_information", KEY_RUNTIME),
	FUSE_OPT_KEY("copy_vm_runtime_information=", KEY_RUNTIME),
	FUSE_OPT_KEY("copy_snapshot_configuration=", KEY_SNAPSHOTS),
	FUSE_OPT_KEY("create_vm_export_subdirectory", KEY_SUBDIRECTORY),
	FUSE_OPT_KEY("create_vm_export_subdirectory=", KEY_SUBDIRECTORY),
	FUSE_OPT_KEY("uid=", KEY_UID),
	FUSE_OPT_KEY("gid=", KEY_GID),
	FUSE_OPT_KEY("umask=", KEY_UMASK),
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

static void usage(const char *program)
{
	printf("usage: %s [-o options] STORE MOUNTPOINT\n"
	       "       %s export STORE MOUNTPOINT\n\n"
	       "Serves the VMs of a Hyper-V store as export folders, read-only:\n"
	       "  MOUNTPOINT/vms/<vm>/                       each VM as Export-VM lays it out\n"
	       "  MOUNTPOINT/snapshots/<vm>/<snapshot>/      each snapshot as an independent VM\n"
	       "  MOUNTPOINT/raw/<vm>/<current|snapshot>/    each disk's raw content (<disk>.img)\n"
	       "  MOUNTPOINT/by-id/<GUID>                    links to the above\n\n"
	       "impexfs options:\n"
	       "    -o copy_vm_storage=BOOL                 disks (default true)\n"
	       "    -o copy_vm_runtime_information=BOOL     saved state (default true)\n"
	       "    -o copy_snapshot_configuration=all|none snapshots in vms/ (default all)\n"
	       "    -o create_vm_export_subdirectory=BOOL   one more folder level (default false)\n"
	       "    -o pathmap=WIN=DIR[;WIN=DIR...]         where the store's Windows paths live\n"
	       "                                            (as written, to the next comma; again\n"
	       "                                            for more)\n"
	       "    -o revalidate=SECONDS                   how often to look for changes (default 2)\n"
	       "    -o readahead=KB                         the mount's readahead, as root (default 1024)\n"
	       "    -o verbose                              say what is left out and why\n"
	       "    -o allow_other                          let other users read, by the sources' modes\n"
	       "                                            (default_permissions is always on)\n"
	       "    -o uid=USER, gid=GROUP                  show everything as theirs (name or number)\n"
	       "    -o umask=MASK                           take these bits from every mode (octal)\n"
	       "import mount options (-o import):\n"
	       "    -o settings=FILE                        settings for every import\n"
	       "    -o generate_new_id=BOOL, security_scope=TEXT, target_vm_data_root=DIR,\n"
	       "       target_vhd_data_root=DIR, target_snapshot_data_root=DIR,\n"
	       "       disconnect_unknown_switches=BOOL     as in the document\n"
	       "    -o roots=DIR[:DIR...]                   the store's other roots\n"
	       "    -o sources=DIR[:DIR...]                 where root's documents may name sources\n"
	       "    -o settle=MS                            quiet time before a check (default 500)\n"
	       "    -s                                      single-threaded\n"
	       "    -f                                      stay in the foreground\n"
	       "    -d                                      debug output (implies -f)\n"
	       "    -h, --help                              this text\n"
	       "    -V, --version                           the version\n\n"
	       "Unmount with: fusermount3 -u MOUNTPOINT\n",
	       program, program);
}

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
		return 1;
	case KEY_IMPORT_SETTING: {
		/* "key=value" becomes the document line "key = value". */
		size_t n = strlen(arg) + 4;
		char *grown = realloc(o->doc, o->doc_len + n + 1);

		o->import_only = o->import_only ? o->import_only : strdup(arg);
		if (!grown || strchr(arg, '\n')) {
			o->bad = o->bad ? o->bad : strdup(arg);
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

		o->export_only = o->export_only ? o->export_only : strdup(arg);
		if (why)
			bad_option(o, arg, why);
		else if (key == KEY_UID)
			o->uid = id, o->set_uid = true;
		else if (key == KEY_GID)
			o->gid = id, o->set_gid = true;
		return 0;
	}
	case KEY_SNAPSHOTS:
		o->export_only = o->export_only ? o->export_only : strdup(arg);
		if (strcmp(eq + 1, "all") == 0)
			o->settings.copy_snapshot_configuration = EXPORT_SNAPSHOTS_ALL;
		else if (strcmp(eq + 1, "none") == 0)
			o->settings.copy_snapshot_configuration = EXPORT_SNAPSHOTS_NONE;
		else
			o->bad = o->bad ? o->bad : strdup(arg);
		return 0;
	case KEY_STORAGE:
	case KEY_RUNTIME:
	case KEY_SUBDIRECTORY:
		o->export_only = o->export_only ? o->export_only : strdup(arg);
		if (value < 0)
			o->bad = o->bad ? o->bad : strdup(arg);
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

/* Whether the path @inner is @outer or lies under it (both real paths). */
static bool inside(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	return strncmp(inner, outer, n) == 0 &&
	       (n == 1 || inner[n] == '\0' || inner[n] == '/');
}

/* Whether @a and @b are one inside the other (the kernel would deadlock serving that). */
static bool nested(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];

	/* door: the command line's store and mount point, compared, never opened */
	if (!realpath(a, ra) || !realpath(b, rb))
		return false;
	return inside(ra, rb) || inside(rb, ra);
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

/*
 * The exit status for what the session loop returned: 0 for an unmount,
 * also a lazy one, after which the kernel may answer a last read of the
 * device with ECONNABORTED (or ENODEV) rather than end of file.
 */
static int loop_ended(int rc)
{
	return rc == 0 || rc == -ECONNABORTED || rc == -ENODEV ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_cmdline_opts cmd = {0};
	struct options o = {.revalidate = 2, .readahead = 1024};
	struct store_options so = {0};
	struct pathmap *map = NULL;
	struct exportfs fs = {0};
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop = NULL;
	struct error err;
	const char *roots[1];
	int rc = 1;

	export_settings_default(&o.settings);
	if (take_pathmaps(argc, argv, &args, &o) < 0) {
		fprintf(stderr, "impexfs: out of memory\n");
		goto out;
	}
	if (fuse_opt_parse(&args, &o, option_spec, take_option) != 0 ||
	    fuse_parse_cmdline(&args, &cmd) != 0) {
		rc = 2;
		goto out;
	}
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
	rc = 2;
	if (o.bad) {
		fprintf(stderr, "impexfs: bad option '%s'%s%s\n", o.bad, o.why ? ": " : "",
			o.why ? o.why : "");
		goto out;
	}
	if (!o.store || !cmd.mountpoint) {
		fprintf(stderr, "impexfs: missing %s\n", o.store ? "MOUNTPOINT" : "STORE");
		usage(argv[0]);
		goto out;
	}
	if (!o.import_only && (o.settings_file || o.more_roots || o.settle || o.sources))
		o.import_only = strdup(o.settings_file ? "settings="
				       : o.more_roots  ? "roots="
				       : o.sources     ? "sources="
						       : "settle=");
	if (o.import ? o.export_only != NULL : o.import_only != NULL) {
		fprintf(stderr, "impexfs: the option '%s' is for the %s mount\n",
			o.import ? o.export_only : o.import_only, o.import ? "export" : "import");
		goto out;
	}
	if (o.revalidate == 0) {
		fprintf(stderr, "impexfs: revalidate must be at least 1 second\n");
		goto out;
	}
	if (nested(o.store, cmd.mountpoint)) {
		fprintf(stderr, "impexfs: the mount point '%s' and the store '%s' lie one inside "
				"the other\n",
			cmd.mountpoint, o.store);
		goto out;
	}
	error_clear(&err);
	if (o.pathmap) {
		map = pathmap_new();
		if (!map || pathmap_add_list(map, o.pathmap, &err) < 0) {
			fprintf(stderr, "impexfs: %s\n",
				map ? error_message(&err) : "out of memory");
			goto out;
		}
	}
	if (o.import) {
		struct importfs_options io = {
			.store = o.store,
			.more_roots = o.more_roots,
			.sources = o.sources,
			.mountpoint = cmd.mountpoint,
			.pathmap = map,
			.settings_file = o.settings_file,
			.settings_text = o.doc ? o.doc : "",
			.settle_ms = o.settle ? o.settle : 500,
			.verbose = o.verbose || cmd.debug,
			.foreground = cmd.foreground,
			.debug = cmd.debug,
			.singlethread = cmd.singlethread,
			.clone_fd = cmd.clone_fd,
			.max_threads = cmd.max_threads,
			.max_idle_threads = cmd.max_idle_threads,
		};

		xmlInitParser();
		fuse_opt_add_arg(&args, "-ofsname=impexfs");
		fuse_opt_add_arg(&args, "-osubtype=impexfs");
		/* The kernel checks each request against the modes: with allow_other, other
		 * users must not act as the daemon's user. */
		fuse_opt_add_arg(&args, "-odefault_permissions");
		rc = importfs_main(&io, &args);
		goto out;
	}
	rc = 1;
	raise_descriptor_limit();
	roots[0] = o.store;
	so.roots = roots;
	so.root_count = 1;
	so.pathmap = map;
	so.recorded = true;
	fs.settings = o.settings;
	fs.set_uid = o.set_uid;
	fs.uid = o.uid;
	fs.set_gid = o.set_gid;
	fs.gid = o.gid;
	fs.umask = o.umask;
	fs.revalidate = o.revalidate;
	fs.readahead_kb = o.readahead;
	fs.verbose = o.verbose || cmd.debug;
	/* libxml2 is made ready here, before any thread may use it. */
	xmlInitParser();
	if (store_open(&fs.store, &so, &err) < 0 || exportfs_init(&fs, &err) < 0) {
		fprintf(stderr, "impexfs: %s\n", error_message(&err));
		goto out;
	}
	if (store_notice(fs.store))
		fprintf(stderr, "impexfs: warning: %s\n", store_notice(fs.store));
	fuse_opt_add_arg(&args, "-oro");
	fuse_opt_add_arg(&args, "-ofsname=impexfs");
	fuse_opt_add_arg(&args, "-osubtype=impexfs");
	/* The kernel checks each access against the modes and owners shown, which are
	 * the sources': with allow_other, no user reads through the mount what the
	 * store does not let them read (the daemon itself checks nothing). */
	fuse_opt_add_arg(&args, "-odefault_permissions");
	se = fuse_session_new(&args, &exportfs_ops, sizeof(exportfs_ops), &fs);
	if (!se) {
		rc = 2; /* libfuse said why: an option it does not know, mostly */
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, cmd.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(cmd.foreground);
	if (exportfs_start(&fs, se, cmd.mountpoint) < 0) {
		fuse_log(FUSE_LOG_ERR, "impexfs: cannot start the revalidating thread\n");
		goto out_unmount;
	}
	if (cmd.singlethread) {
		rc = loop_ended(fuse_session_loop(se));
	} else {
		loop = fuse_loop_cfg_create();
		if (loop) {
			fuse_loop_cfg_set_clone_fd(loop, cmd.clone_fd);
			/* libfuse leaves these UINT_MAX unless they are given: keep its defaults. */
			if (cmd.max_threads <= 100000)
				fuse_loop_cfg_set_max_threads(loop, cmd.max_threads);
			if (cmd.max_idle_threads <= 100000)
				fuse_loop_cfg_set_idle_threads(loop, cmd.max_idle_threads);
		}
		rc = loop ? loop_ended(fuse_session_loop_mt(se, loop)) : 1;
	}
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
	fuse_loop_cfg_destroy(loop);
	store_free(fs.store);
	pathmap_free(map);
	free(cmd.mountpoint);
	free(o.store);
	free(o.pathmap);
	free(o.bad);
	free(o.settings_file);
	free(o.more_roots);
	free(o.sources);
	free(o.doc);
	free(o.export_only);
	free(o.import_only);
	fuse_opt_free_args(&args);
	return rc;
}
