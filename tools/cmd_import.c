/*
 * impex import-settings, compare and import: an export folder read as
 * Import-VM reads it, and imported into the store.
 */
#include "cmd_import.h"

#include "asuser.h"
#include "cli.h"
#include "cmd_store.h"
#include "error.h"
#include "fsutil.h"
#include "import.h"
#include "json.h"
#include "pathmap.h"
#include "progress.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_import_settings[] =
	"impex import-settings [STORE OPTIONS] [--settings FILE] DIR";
static const char usage_import[] =
	"impex import [STORE OPTIONS] [-p|--progress] [--settings FILE] DIR";
static const char usage_compare[] = "impex compare [STORE OPTIONS] [--settings FILE] [--json] DIR";

/*
 * What the import commands read, in one process: the export folder beneath
 * it, never through a link in it; the store, its path map's folders, the
 * targets and the folders the user's own settings name, beneath each, as
 * this user; nothing else (docs/SECURITY.md). A link swapped into the folder
 * while it is read leads nowhere.
 */
#define SCOPE_MAX 64
static struct asuser_scope folder_scope = {.folder_fd = -1};
static char folder_scope_path[PATH_MAX];
static const char *scope_paths[SCOPE_MAX];
static int scope_fds[SCOPE_MAX];

/* Trust the folder @path (of the file @path when @file) for folder_scope. */
static void scope_trust(const char *path, bool file)
{
	char dir[PATH_MAX], real[PATH_MAX];
	char *copy;
	int fd;

	if (!path || !path[0] || folder_scope.trusted_count == SCOPE_MAX ||
	    (file ? fsutil_dirname(path, dir, sizeof(dir))
		  : (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir) ? -1 : 0)) < 0)
		return;
	fd = fsutil_open_trusted_folder(dir, false, real);
	if (fd < 0)
		return; /* nothing there to read */
	if (!(copy = strdup(real))) {
		close(fd);
		return;
	}
	scope_paths[folder_scope.trusted_count] = copy;
	scope_fds[folder_scope.trusted_count++] = fd;
}

/* Set folder_scope for the folder @dir, the store @store, the settings @given. */
static int scope_set(const char *dir, const struct store *store, const struct pathmap *map,
		     const struct import_settings *given, struct error *err)
{
	folder_scope.folder_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (folder_scope.folder_fd < 0)
		return error_errno(err, errno, "cannot open", dir);
	snprintf(folder_scope_path, sizeof(folder_scope_path), "%s", dir);
	folder_scope.folder = folder_scope_path;
	folder_scope.trusted = scope_paths;
	folder_scope.trusted_fds = scope_fds;
	folder_scope.others = ASUSER_OTHERS_REFUSED;
	for (size_t i = 0; store_root(store, i); i++)
		scope_trust(store_root(store, i), false);
	for (size_t i = 0; i < pathmap_count(map); i++)
		scope_trust(pathmap_target(map, i), false);
	scope_trust(given->target_vm_data_root, false);
	scope_trust(given->target_vhd_data_root, false);
	scope_trust(given->target_snapshot_data_root, false);
	scope_trust(given->source_vm_data_root, false);
	scope_trust(given->source_vhd_data_root, false);
	scope_trust(given->source_snapshot_data_root, false);
	for (size_t i = 0; i < given->resource_count; i++) {
		scope_trust(given->resources[i].source, true);
		scope_trust(given->resources[i].target, true);
	}
	asuser_scope_set(&folder_scope);
	return 0;
}

static void scope_end(void)
{
	asuser_scope_set(NULL);
	for (size_t i = 0; i < folder_scope.trusted_count; i++) {
		free((char *)scope_paths[i]);
		close(scope_fds[i]);
	}
	folder_scope.trusted_count = 0;
	if (folder_scope.folder_fd >= 0)
		close(folder_scope.folder_fd);
	folder_scope.folder_fd = -1;
}

/*
 * The target roots of the user's own document @given (not the folder's) made if
 * missing, as Import-VM makes them; before scope_set(), which trusts only folders that
 * are there. Returns 0 or -errno with @err set.
 */
static int make_targets(const struct import_settings *given, struct error *err)
{
	const char *roots[] = {given->target_vm_data_root, given->target_vhd_data_root,
			       given->target_snapshot_data_root};
	char real[PATH_MAX];

	for (size_t k = 0; k < 3; k++) {
		int fd = roots[k] && roots[k][0] == '/'
				 ? fsutil_open_trusted_folder(roots[k], true, real)
				 : 0;

		if (fd < 0)
			return error_errno(err, -fd, "cannot make the target root", roots[k]);
		if (roots[k] && roots[k][0] == '/')
			close(fd);
	}
	return 0;
}

/*
 * Parse the options of an import command, open the store, resolve DIR into
 * @dir, and make the settings for importing it: the defaults, with the
 * document --settings names (if any) laid over them. Returns 0, or the exit
 * status after the fault is printed; end_import() frees what it made.
 */
static int begin_import(int argc, char **argv, const char *usage, bool import,
			struct cmd_store_args *a, struct store **store, char dir[PATH_MAX],
			struct import_settings *settings)
{
	struct import_settings given = {0};
	const char *path;
	struct error err;
	int rc = cmd_store_begin(argc, argv, usage, 1, 1, a, store);

	memset(settings, 0, sizeof(*settings));
	if (rc)
		return rc;
	error_clear(&err);
	if (!realpath(argv[a->first], dir)) {
		error_errno(&err, errno, "cannot resolve", argv[a->first]);
		return cli_fail(&err);
	}
	path = a->settings;
	rc = path ? import_settings_load(path, &given, &err) : 0;
	if (rc == 0 && import && given.create_copy)
		rc = make_targets(&given, &err);
	if (rc == 0)
		rc = scope_set(dir, *store, a->common.pathmap, &given, &err);
	if (rc == 0)
		rc = import_settings_layered(dir, store_root(*store, 0), &given, &path,
					     path ? 1 : 0, settings, &err);
	import_settings_free(&given);
	return rc < 0 ? cli_fail(&err) : 0;
}

static int end_import(struct cmd_store_args *a, struct store *store,
		      struct import_settings *settings, int rc)
{
	import_settings_free(settings);
	scope_end();
	return cmd_store_end(a, store, rc);
}

static int cmd_import_settings(int argc, char **argv)
{
	struct import_settings settings;
	struct cmd_store_args a;
	struct store *store = NULL;
	struct error err;
	char dir[PATH_MAX];
	int rc = begin_import(argc, argv, usage_import_settings, false, &a, &store, dir, &settings);

	if (rc)
		return end_import(&a, store, &settings, rc);
	error_clear(&err);
	if (import_settings_write(&settings, stdout) < 0) {
		error_set(&err, EINVAL, "a path of '%s' cannot be written on one line", dir);
		rc = cli_fail(&err);
	}
	return end_import(&a, store, &settings, rc);
}

/* ---- compare ---- */

static const char *severity_name(enum import_severity severity)
{
	return severity == IMPORT_ERROR ? "error" : "warning";
}

static int cmd_compare(int argc, char **argv)
{
	struct import_settings settings;
	struct import_report report;
	struct cmd_store_args a;
	struct store *store = NULL;
	struct error err;
	char dir[PATH_MAX];
	int rc = begin_import(argc, argv, usage_compare, false, &a, &store, dir, &settings);

	if (rc)
		return end_import(&a, store, &settings, rc);
	error_clear(&err);
	if (import_compare(dir, store, &settings, 0, &report, &err) < 0)
		return end_import(&a, store, &settings, cli_fail(&err));
	if (a.common.json) {
		struct jsonw j;

		jsonw_init(&j, stdout);
		jsonw_begin_object(&j, NULL);
		jsonw_bool(&j, "importable", report.errors == 0);
		jsonw_begin_array(&j, "issues");
		for (size_t i = 0; i < report.count; i++) {
			jsonw_begin_object(&j, NULL);
			jsonw_string(&j, "id", report.issues[i].id);
			jsonw_string(&j, "severity", severity_name(report.issues[i].severity));
			jsonw_string(&j, "file", cmd_store_or_null(report.issues[i].file));
			jsonw_string(&j, "message", report.issues[i].message);
			jsonw_end_object(&j);
		}
		jsonw_end_array(&j);
		jsonw_end_object(&j);
		jsonw_finish(&j);
	} else {
		for (size_t i = 0; i < report.count; i++)
			printf("%-7s  %-15s  %s\n", severity_name(report.issues[i].severity),
			       report.issues[i].id, report.issues[i].message);
		printf("%s: %zu error%s, %zu warning%s\n",
		       report.errors ? "the import would fail" : "the import would succeed",
		       report.errors, report.errors == 1 ? "" : "s", report.count - report.errors,
		       report.count - report.errors == 1 ? "" : "s");
	}
	rc = report.errors ? CLI_FAIL : CLI_OK;
	import_report_free(&report);
	return end_import(&a, store, &settings, rc);
}

/* ---- import ---- */

/* The bar of an import: the file being written named on it. */
static int show_progress(void *ctx, uint64_t done, uint64_t total, const char *file)
{
	progress_label(ctx, file);
	return progress_update(ctx, done, total);
}

/* What the import's recovery left alone, and why. */
static void show_notice(void *ctx, const char *message)
{
	(void)ctx;
	cli_warning("%s", message);
}

static int cmd_import(int argc, char **argv)
{
	struct import_settings settings;
	struct cmd_store_args a;
	struct store *store = NULL;
	struct error err;
	char dir[PATH_MAX], id[37];
	int rc = begin_import(argc, argv, usage_import, true, &a, &store, dir, &settings);

	if (rc)
		return end_import(&a, store, &settings, rc);
	error_clear(&err);
	/* Disks copied to a folder outside the store: a folder of the store from now on. */
	if (settings.create_copy && settings.target_vhd_data_root &&
	    store_record_folder(store, settings.target_vhd_data_root, &err) < 0)
		return end_import(&a, store, &settings, cli_fail(&err));
	{
		struct progress bar;
		struct import_progress progress = {show_progress, show_notice, &bar};

		progress_catch_signals();
		progress_begin(&bar, progress_wanted(a.progress, true));
		rc = import_run(dir, store, &settings, 0, &progress, id, &err);
		progress_end(&bar);
	}
	if (rc < 0 && progress_interrupted()) {
		cli_error("interrupted: nothing imported");
		rc = CLI_FAIL;
	} else if (rc < 0) {
		rc = cli_fail(&err);
	} else {
		printf("%s  %s\n", id, settings.name);
		rc = CLI_OK;
	}
	return end_import(&a, store, &settings, rc);
}

const struct cli_command cmd_import_commands[] = {
	{.name = "import-settings",
	 .usage = usage_import_settings,
	 .summary = "print the import settings for the export folder DIR, with their defaults\n"
		    "(and a document laid over them: docs/IMPORT.md)",
	 .operands = "dir",
	 .run = cmd_import_settings,
	 .section = "Export and import"},
	{.name = "compare",
	 .usage = usage_compare,
	 .summary =
		 "what importing DIR would meet (Compare-VM): exit 0 if it would succeed, 1 if not",
	 .operands = "dir",
	 .run = cmd_compare,
	 .section = "Export and import"},
	{.name = "import",
	 .usage = usage_import,
	 .summary = "import DIR: copy on import (or registration in place), new IDs, the VM's\n"
		    "configuration written last",
	 .operands = "dir",
	 .run = cmd_import,
	 .section = "Export and import"},
	{0},
};
