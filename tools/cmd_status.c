/*
 * impex status [--json] [--wait] [--timeout SECONDS] MOUNTPOINT: what the
 * imports of an import mount are doing, from the status file at its root
 * (docs/IMPORT.md); with --wait, once none is copying or registering. The
 * exit status says whether all is well: 1 when an import failed or waits for
 * what it lacks (with --wait, unless every one is registered).
 */
#include "cmd_status.h"

#include "cli.h"
#include "error.h"
#include "import_status.h"

#include <errno.h>
#include <jansson.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage_status[] = "impex status [--json] [--wait] [--timeout SECONDS] MOUNTPOINT";

/* The whole status file at @path (at most 64 MiB), in *@text. */
static int slurp(const char *path, char **text, size_t *len, struct error *err)
{
	FILE *f = fopen(path, "r");
	size_t cap = 0;

	*text = NULL;
	*len = 0;
	if (!f)
		return error_errno(err, errno, "not an import mount: cannot read", path);
	for (;;) {
		char *grown;
		size_t n;

		if (*len == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > (64u << 20) || !(grown = realloc(*text, cap + 1))) {
				fclose(f);
				return error_set(err, EFBIG, "'%s' is too large", path);
			}
			*text = grown;
		}
		n = fread(*text + *len, 1, cap - *len, f);
		*len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fclose(f);
		return error_errno(err, EIO, "cannot read", path);
	}
	fclose(f);
	(*text)[*len] = '\0';
	return 0;
}

/* @text as it may go to a terminal: control characters shown as '?'. Into @buf. */
static const char *printable(const char *text, char *buf, size_t cap)
{
	size_t n = 0;

	for (; text && *text && n + 1 < cap; text++)
		buf[n++] = (unsigned char)*text < 0x20 || *text == 0x7f ? '?' : *text;
	buf[n] = '\0';
	return buf;
}

/* The string member @key of @object, or NULL. */
static const char *string_of(const json_t *object, const char *key)
{
	return json_string_value(json_object_get(object, key));
}

/* A count of the status: a whole number from 0, else 0. */
static uint64_t count_of(const json_t *object, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(object, key));

	return v > 0 ? (uint64_t)v : 0;
}

static void print_issues(const json_t *list, const char *kind)
{
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *issue = json_array_get(list, i);
		const char *file = string_of(issue, IMPORT_STATUS_ISSUE_FILE);
		char id[64], message[4096], shown[4096];

		printf("    %s %s: %s%s%s\n", kind,
		       printable(string_of(issue, IMPORT_STATUS_ISSUE_ID) ?: "?", id, sizeof(id)),
		       printable(string_of(issue, IMPORT_STATUS_ISSUE_MESSAGE), message, sizeof(message)),
		       file && file[0] ? "\n        file: " : "",
		       printable(file, shown, sizeof(shown)));
	}
}

static void print_human(const json_t *status)
{
	const json_t *imports = json_object_get(status, IMPORT_STATUS_IMPORTS);
	char size[32];

	char text[4096], more[256];

	printf("import mount of the store %s\n",
	       printable(string_of(status, IMPORT_STATUS_STORE) ?: "?", text, sizeof(text)));
	if (json_array_size(imports) == 0) {
		printf("  no import yet: copy an export folder into the mount\n");
		return;
	}
	for (size_t i = 0; i < json_array_size(imports); i++) {
		const json_t *imp = json_array_get(imports, i);
		const json_t *vm = json_object_get(imp, IMPORT_STATUS_VM);

		printf("  %-24s %-12s %6llu files %10s",
		       printable(string_of(imp, IMPORT_STATUS_FOLDER) ?: "?", text, sizeof(text)),
		       printable(string_of(imp, IMPORT_STATUS_STATE) ?: "?", more, sizeof(more)),
		       (unsigned long long)count_of(imp, IMPORT_STATUS_FILES),
		       cli_format_size(count_of(imp, IMPORT_STATUS_BYTES), size, sizeof(size)));
		if (json_is_object(vm))
			printf("  VM %s '%s'", printable(string_of(vm, IMPORT_STATUS_VM_ID) ?: "?", more, sizeof(more)),
			       printable(string_of(vm, IMPORT_STATUS_VM_NAME), text, sizeof(text)));
		putchar('\n');
		print_issues(json_object_get(imp, IMPORT_STATUS_ERRORS), "error");
		print_issues(json_object_get(imp, IMPORT_STATUS_WARNINGS), "warning");
	}
}

/* How many imports of @status are in @state. */
static size_t count_state(const json_t *status, const char *state)
{
	const json_t *imports = json_object_get(status, IMPORT_STATUS_IMPORTS);
	size_t n = 0;

	for (size_t i = 0; i < json_array_size(imports); i++) {
		const char *s = string_of(json_array_get(imports, i), IMPORT_STATUS_STATE);

		n += s && strcmp(s, state) == 0;
	}
	return n;
}

/* Whether every import of @status is registered, failed or waiting for what it lacks. */
static bool settled(const json_t *status)
{
	return count_state(status, IMPORT_STATUS_COPYING) == 0 &&
	       count_state(status, IMPORT_STATUS_REGISTERING) == 0;
}

/* Whether an import of @status failed or shows an error (one waiting for what it lacks). */
static bool any_error(const json_t *status)
{
	const json_t *imports = json_object_get(status, IMPORT_STATUS_IMPORTS);

	for (size_t i = 0; i < json_array_size(imports); i++) {
		const json_t *imp = json_array_get(imports, i);
		const char *s = string_of(imp, IMPORT_STATUS_STATE);

		if ((s && strcmp(s, IMPORT_STATUS_FAILED) == 0) ||
		    json_array_size(json_object_get(imp, IMPORT_STATUS_ERRORS)) > 0)
			return true;
	}
	return false;
}

/* CLOCK_MONOTONIC in seconds. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Whether every import of @status is registered. */
static bool all_registered(const json_t *status)
{
	return count_state(status, IMPORT_STATUS_REGISTERED) ==
	       json_array_size(json_object_get(status, IMPORT_STATUS_IMPORTS));
}

/* The status file @path parsed into *@status (caller frees with json_decref), its text in
 * *@text (caller frees). */
static int read_status(const char *path, char **text, size_t *len, json_t **status,
		       struct error *err)
{
	int rc = slurp(path, text, len, err);
	json_error_t why;

	*status = NULL;
	if (rc < 0)
		return rc;
	*status = json_loadb(*text, *len, JSON_REJECT_DUPLICATES, &why);
	if (!*status)
		return error_set(err, EINVAL,
				 "'%s' is not the status of an import mount: line %d: %s", path,
				 why.line, why.text);
	if (!json_is_object(*status))
		return error_set(err, EINVAL, "'%s' is not the status of an import mount", path);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	static const struct option options[] = {
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'},
		CLI_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const struct timespec poll = {0, 100 * 1000 * 1000};
	struct cli_common common = {0};
	json_t *status = NULL;
	char path[PATH_MAX], *text = NULL;
	size_t len = 0;
	struct error err;
	bool wait = false, timed_out = false;
	double timeout = -1, deadline = 0;
	int c, rc;

	cli_options_begin();
	while ((c = cli_getopt(argc, argv, options, usage_status)) != -1) {
		if (c == 'w') {
			wait = true;
			continue;
		}
		if (c == 't') {
			char *end;

			errno = 0;
			timeout = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(timeout) || timeout < 0 ||
			    timeout > 1e9)
				return cli_usage(usage_status,
						 "--timeout '%s': not a number of seconds", optarg);
			continue;
		}
		if ((rc = cli_common_option(c, usage_status, argv, &common)))
			return rc;
	}
	if (timeout >= 0 && !wait)
		return cli_usage(usage_status, "--timeout goes with --wait");
	if (argc - optind != 1)
		return cli_usage(usage_status, "give the mount point of one import mount");
	error_clear(&err);
	if (snprintf(path, sizeof(path), "%s/%s", argv[optind], IMPORT_STATUS_FILE) >= (int)sizeof(path)) {
		error_set(&err, ENAMETOOLONG, "'%s' is too long a path", argv[optind]);
		return cli_fail(&err);
	}
	deadline = now() + timeout;
	/* The daemon rewrites the file as imports go on: read until they have settled. */
	while ((rc = read_status(path, &text, &len, &status, &err)) == 0 && wait &&
	       !settled(status)) {
		if (timeout >= 0 && now() >= deadline) {
			timed_out = true;
			break;
		}
		json_decref(status);
		free(text);
		nanosleep(&poll, NULL);
	}
	if (rc < 0) {
		rc = cli_fail(&err);
	} else {
		if (common.json)
			fwrite(text, 1, len, stdout);
		else
			print_human(status);
		if (timed_out) {
			size_t busy =
				count_state(status, IMPORT_STATUS_COPYING) + count_state(status, IMPORT_STATUS_REGISTERING);

			cli_error("%zu import%s still copying or registering after %g seconds",
				  busy, busy == 1 ? " is" : "s are", timeout);
		}
		if (wait)
			rc = timed_out || !all_registered(status) ? CLI_FAIL : CLI_OK;
		else
			rc = any_error(status) ? CLI_FAIL : CLI_OK;
	}
	json_decref(status);
	free(text);
	return rc;
}

const struct cli_command cmd_status_commands[] = {
	{.name = "status",
	 .usage = usage_status,
	 .summary = "each import of an import mount (impexfs -o import): state, files, bytes,\n"
		    "errors and warnings, and the VM it registered; exit 1 if one failed or\n"
		    "waits for what it lacks; --wait: once none is copying or registering,\n"
		    "exit 1 unless every one is registered; --timeout: wait that long at most",
	 .operands = "dir",
	 .run = cmd_status,
	 .section = "Export and import"},
	{0},
};
