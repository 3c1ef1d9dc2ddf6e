#include "cli.h"

#include "error.h"
#include "hyperv.h"
#include "impex_config.h"
#include "pathmap.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "impex: " and @prefix, the message, then @end, on standard error. */
static void say(const char *prefix, const char *end, const char *fmt, va_list ap)
{
	fprintf(stderr, "impex: %s", prefix);
	vfprintf(stderr, fmt, ap);
	fputs(end, stderr);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("", "\n", fmt, ap);
	va_end(ap);
}

void cli_warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("warning: ", "\n", fmt, ap);
	va_end(ap);
}

int cli_usage(const char *usage, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("", "", fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	return CLI_USAGE;
}

int cli_fail(const struct error *err)
{
	cli_error("%s", error_message(err));
	return CLI_FAIL;
}

int cli_parse_size(const char *text, uint64_t *out)
{
	char *end;
	uint64_t value, unit = 1;

	if (!text[0] || text[0] == '-' || text[0] == '+')
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || end == text)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		unit = 1ull << 10;
		break;
	case 'm':
	case 'M':
		unit = 1ull << 20;
		break;
	case 'g':
	case 'G':
		unit = 1ull << 30;
		break;
	case 't':
	case 'T':
		unit = 1ull << 40;
		break;
	case '\0':
		break;
	default:
		return -EINVAL;
	}
	if (unit > 1) {
		end++;
		if (strcasecmp(end, "iB") != 0 && strcasecmp(end, "B") != 0 && *end)
			return -EINVAL;
	} else if (*end) {
		return -EINVAL;
	}
	if (value > UINT64_MAX / unit)
		return -EINVAL;
	*out = value * unit;
	return 0;
}

int cli_parse_disk_format(const char *text, enum disk_format *format)
{
	if (strcmp(text, "vhd") == 0)
		*format = DISK_FORMAT_VHD;
	else if (strcmp(text, "vhdx") == 0)
		*format = DISK_FORMAT_VHDX;
	else
		return -EINVAL;
	return 0;
}

const char *cli_format_size(uint64_t bytes, char *buf, size_t cap)
{
	static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, cap, "%" PRIu64 " bytes", bytes);
		return buf;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (v == (double)(uint64_t)v)
		snprintf(buf, cap, "%" PRIu64 " %s", (uint64_t)v, units[u]);
	else
		snprintf(buf, cap, "%.1f %s", v, units[u]);
	return buf;
}

/* ---- options ---- */

/* The option cli_getopt refused last (a name in the caller's table). */
static const char *refused_option;

/* The leaf command being run and its words ("impex vm show"), for its help and messages. */
static const struct cli_command *current;
static char current_path[128];

void cli_options_begin(void)
{
	/* 0, not 1: glibc then reads the ordering ('+' or not) of the next optstring anew. */
	optind = 0;
	opterr = 0;
}

/* Whether @text names "--@name" (not a longer option); its value placeholder, if any, in
 * *@value (up to the closing ']'). */
static bool find_option(const char *text, const char *name, const char **value, size_t *value_len)
{
	size_t n = strlen(name);

	for (const char *p = strstr(text, "--"); p; p = strstr(p + 2, "--")) {
		const char *after = p + 2 + n;

		if (strncmp(p + 2, name, n) != 0 || (*after >= 'a' && *after <= 'z') ||
		    (*after >= '0' && *after <= '9') || *after == '-')
			continue;
		if (value) {
			bool has = *after == ' ' || *after == '=';

			*value = has ? after + 1 : NULL;
			*value_len = has ? strcspn(after + 1, "]") : 0;
		}
		return true;
	}
	return false;
}

bool cli_usage_option(const char *usage, const char *name, const char **value, size_t *value_len)
{
	if (find_option(usage, name, value, value_len))
		return true;
	return strstr(usage, "[STORE OPTIONS]") &&
	       find_option(CLI_STORE_OPTIONS, name, value, value_len);
}

/*
 * The short options of @usage for getopt: -h, and each option of @options
 * whose usage names it as "-X|--NAME" (its val being X), with ':' where it
 * takes a value. Into @buf.
 */
static const char *short_options(const struct option *options, const char *usage, char *buf,
				 size_t cap)
{
	size_t n = 0;

	buf[n++] = ':';
	buf[n++] = 'h';
	for (size_t i = 0; options[i].name && n + 3 < cap; i++) {
		char form[64];
		int c = options[i].val;

		if (c <= 0 || c > 127 || !isalnum(c))
			continue;
		snprintf(form, sizeof(form), "-%c|--%s", c, options[i].name);
		if (!strstr(usage, form))
			continue;
		buf[n++] = (char)c;
		if (options[i].has_arg == required_argument)
			buf[n++] = ':';
	}
	buf[n] = '\0';
	return buf;
}

int cli_getopt(int argc, char **argv, const struct option *options, const char *usage)
{
	char shorts[64];
	int index = -1;
	int c = getopt_long(argc, argv, short_options(options, usage, shorts, sizeof(shorts)),
			    options, &index);

	if (c != -1 && c != 'h' && c != '?' && c != ':' && index >= 0 &&
	    !cli_usage_option(usage, options[index].name, NULL, NULL)) {
		refused_option = options[index].name;
		return CLI_OPTION_REFUSED;
	}
	return c;
}

/* The word of @argv that holds the unknown short option @c, or NULL. */
static const char *short_option_word(char **argv, int c)
{
	const char *words[2] = {argv[optind], optind > 0 ? argv[optind - 1] : NULL};

	for (int i = 0; i < 2; i++)
		if (words[i] && words[i][0] == '-' && words[i][1] == c)
			return words[i];
	return NULL;
}

int cli_common_option(int c, const char *usage, char **argv, struct cli_common *common)
{
	const char *word;

	switch (c) {
	case CLI_OPTION_STORE:
		if (common->store_count == CLI_MAX_STORES)
			return cli_usage(usage, "at most %d stores", CLI_MAX_STORES);
		common->stores[common->store_count++] = optarg;
		return 0;
	case CLI_OPTION_PATHMAP:
		return cli_add_pathmap(&common->pathmap, optarg);
	case CLI_OPTION_ALLOW_OUTSIDE:
		common->allow_outside = true;
		return 0;
	case CLI_OPTION_JSON:
		common->json = true;
		return 0;
	case 'h':
		if (current && current->usage == usage)
			cli_help(stdout, current, current_path);
		else
			printf("usage: %s\n", usage);
		return CLI_HELP;
	case CLI_OPTION_REFUSED:
		return cli_usage(usage, "'%s' takes no option '--%s'",
				 current ? current_path : "this command", refused_option);
	case ':':
		return cli_usage(usage, "option '%s' needs a value", argv[optind - 1]);
	default:
		if (!optopt)
			return cli_usage(usage, "unknown option '%s'", argv[optind - 1]);
		word = short_option_word(argv, optopt);
		if (word && word[2])
			return cli_usage(usage,
					 "unknown option '-%c' in '%s' (operands that start "
					 "with '-' go after '--')",
					 optopt, word);
		if (optopt >= '0' && optopt <= '9')
			return cli_usage(usage,
					 "unknown option '-%c' (operands that start with '-' go "
					 "after '--')",
					 optopt);
		return cli_usage(usage, "unknown option '-%c'", optopt);
	}
}

int cli_parse(int argc, char **argv, const struct cli_parse *p, struct cli_common *common,
	      int *first)
{
	int c, rc, n;

	cli_options_begin();
	/* Options and operands in any order; "--" ends the options. */
	while ((c = cli_getopt(argc, argv, p->options, p->usage)) != -1) {
		rc = p->take ? p->take(p->ctx, c, p->usage) : CLI_NOT_OWN;
		if (rc == CLI_NOT_OWN)
			rc = cli_common_option(c, p->usage, argv, common);
		if (rc)
			return rc;
	}
	*first = optind;
	n = argc - optind;
	if (n < p->min_operands)
		return cli_usage(p->usage, "missing operand");
	if (n > p->max_operands)
		return cli_usage(p->usage, "too many operands");
	return 0;
}

/* ---- commands and their help ---- */

static const char global_help[] =
	"Options may stand anywhere: before the command (impex --store DIR vm list),\n"
	"after it, before or after its operands; after '--' every word is an operand.\n"
	"A command takes those its usage names:\n"
	"  --store DIR        a store's folder (one with '" HYPERV_VMS_DIR "'); repeatable:\n"
	"                     one store of several folders (the first takes new VMs);\n"
	"                     else $IMPEX_STORE\n"
	"  --pathmap WIN=DIR  a Windows folder the configurations name, and the Linux\n"
	"                     folder it is; repeatable, or several joined by ';'\n"
	"  --allow-outside    let disks and parents lie outside the store's folders\n"
	"  --json             JSON on standard output (docs/JSON.md: each member always\n"
	"                     there, null for what is absent)\n"
	"  -h, --help         this help; after a command, that command's\n"
	"  --version          the version of impex\n";

static const char store_help[] =
	"STORE OPTIONS: --store DIR (repeatable; else $IMPEX_STORE), --pathmap WIN=DIR\n"
	"(repeatable), --allow-outside. VMs and snapshots are named by GUID or by name,\n"
	"in another case too when only one has it.\n";

static const char order_help[] =
	"Options go before or after the operands; after '--' every word is an operand.\n";

static const char exit_help[] =
	"Exit status: 0 done; 1 failed, or problems found (vhd info, vhd check: a damaged\n"
	"disk or chain; vm show: a problem; compare: the import would fail; export: a\n"
	"disk that cannot be read; status --wait: an import not registered); 2 a usage\n"
	"error, with a message and the usage on standard error.\n";

/* The lines of @text, each after @indent. */
static void print_lines(FILE *out, const char *text, const char *indent)
{
	while (text && *text) {
		size_t n = strcspn(text, "\n");

		fprintf(out, "%s%.*s\n", indent, (int)n, text);
		text += n + (text[n] == '\n');
	}
}

/* The usage and summary of @command, or of each command of a group. Returns whether one
 * takes the store options. */
static bool print_listing(FILE *out, const struct cli_command *command)
{
	bool store = false;

	if (command->sub) {
		for (const struct cli_command *c = command->sub; c->name; c++)
			store |= print_listing(out, c);
		return store;
	}
	fprintf(out, "  %s\n", command->usage);
	print_lines(out, command->summary, "      ");
	return strstr(command->usage, "[STORE OPTIONS]") != NULL;
}

void cli_help(FILE *out, const struct cli_command *command, const char *path)
{
	const char *section = NULL;

	if (!command->sub) {
		fprintf(out, "usage: %s\n\n", command->usage);
		print_lines(out, command->summary, "  ");
		fputc('\n', out);
		if (strstr(command->usage, "[STORE OPTIONS]"))
			fputs(store_help, out);
		fputs(order_help, out);
		return;
	}
	if (strchr(path, ' ')) {
		fprintf(out, "usage: %s [OPTIONS] COMMAND [ARGS]\n       %s help COMMAND\n\n", path,
			path);
		print_lines(out, command->summary, "");
		if (print_listing(out, command))
			fprintf(out, "\n%s", store_help);
		fprintf(out, "\n%s", order_help);
		return;
	}
	fprintf(out,
		"usage: %s [OPTIONS] COMMAND [ARGS]\n       %s help [COMMAND...]\n"
		"       %s --version\n\n%s",
		path, path, path, global_help);
	for (const struct cli_command *c = command->sub; c->name; c++) {
		if (c->section && (!section || strcmp(section, c->section) != 0)) {
			section = c->section;
			fprintf(out, "\n%s:\n", section);
		}
		print_listing(out, c);
	}
	fprintf(out, "\n%s", exit_help);
}

/* The command @name of @group, or NULL. */
static const struct cli_command *find_command(const struct cli_command *group, const char *name)
{
	for (const struct cli_command *c = group->sub; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* Words of the common options met before the command: given to it after its name. */
static char **carried;
static size_t carried_count;

static int carry(char **words, int count)
{
	char **grown = realloc(carried, (carried_count + (size_t)count) * sizeof(*grown));

	if (!grown) {
		cli_error("out of memory");
		return CLI_FAIL;
	}
	carried = grown;
	for (int i = 0; i < count; i++)
		carried[carried_count++] = words[i];
	return 0;
}

/* Run the leaf @command (@path its words) with @argv, the carried options after its name. */
static int run_leaf(const struct cli_command *command, const char *path, int argc, char **argv)
{
	char **args = malloc((carried_count + (size_t)argc + 1) * sizeof(*args));
	size_t n = 0;
	int rc;

	if (!args) {
		cli_error("out of memory");
		return CLI_FAIL;
	}
	args[n++] = argv[0];
	for (size_t i = 0; i < carried_count; i++)
		args[n++] = carried[i];
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	current = command;
	snprintf(current_path, sizeof(current_path), "%s", path);
	rc = command->run((int)n, args);
	free(args);
	return rc == CLI_HELP ? CLI_OK : rc;
}

/* "help [COMMAND...]" in @group: the help of the command @argv names, on stdout. */
static int help_command(const struct cli_command *group, const char *path, int argc, char **argv)
{
	char words[128];

	snprintf(words, sizeof(words), "%s", path);
	for (int i = 0; i < argc; i++) {
		const struct cli_command *c = group->sub ? find_command(group, argv[i]) : NULL;

		if (!c) {
			cli_error("no command '%s %s'", words, argv[i]);
			cli_help(stderr, group, words);
			return CLI_USAGE;
		}
		group = c;
		snprintf(words + strlen(words), sizeof(words) - strlen(words), " %s", c->name);
	}
	cli_help(stdout, group, words);
	return CLI_OK;
}

static int dispatch(const struct cli_command *group, const char *path, int argc, char **argv)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const struct cli_command *command;
	bool top = !strchr(path, ' ');
	char usage[128], words[128];
	int c;

	snprintf(usage, sizeof(usage), "%s [OPTIONS] COMMAND [ARGS]", path);
	cli_options_begin();
	for (;;) {
		int at = optind ? optind : 1;

		/* '+': the first word that is no option is the command. */
		c = getopt_long(argc, argv, "+:h", options, NULL);
		if (c == -1)
			break;
		if (c == 'h') {
			cli_help(stdout, group, path);
			return CLI_OK;
		}
		if (c == 'V' && top) {
			printf("impex %s\n", IMPEX_VERSION);
			return CLI_OK;
		}
		if (c == ':')
			return cli_usage(usage, "option '%s' needs a value", argv[optind - 1]);
		if (c == '?' && optopt)
			return cli_usage(usage, "unknown option '-%c'", optopt);
		if (c == '?' || c == 'V')
			return cli_usage(usage,
					 "unknown option '%s' (before the command: --store, "
					 "--pathmap, --allow-outside, --json, --help)",
					 argv[optind - 1]);
		if (carry(argv + at, optind - at))
			return CLI_FAIL;
	}
	if (optind >= argc) {
		if (!top)
			cli_error("missing %s command", group->name);
		cli_help(stderr, group, path);
		return CLI_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0)
		return help_command(group, path, argc - optind - 1, argv + optind + 1);
	command = find_command(group, argv[optind]);
	if (!command) {
		if (top)
			cli_error("unknown command '%s'", argv[optind]);
		else
			cli_error("unknown %s command '%s'", group->name, argv[optind]);
		cli_help(stderr, group, path);
		return CLI_USAGE;
	}
	snprintf(words, sizeof(words), "%s %s", path, command->name);
	if (command->sub)
		return dispatch(command, words, argc - optind, argv + optind);
	return run_leaf(command, words, argc - optind, argv + optind);
}

int cli_dispatch(const struct cli_command *group, const char *path, int argc, char **argv)
{
	int rc = dispatch(group, path, argc, argv);

	free(carried);
	carried = NULL;
	carried_count = 0;
	return rc;
}

int cli_add_pathmap(struct pathmap **map, const char *spec)
{
	struct error err;

	error_clear(&err);
	if (!*map) {
		*map = pathmap_new();
		if (!*map) {
			cli_error("out of memory");
			return CLI_FAIL;
		}
	}
	if (pathmap_add_list(*map, spec, &err) < 0) {
		cli_error("%s", error_message(&err));
		fputs("usage: --pathmap 'WINDOWS_PATH=LINUX_DIR', e.g. --pathmap "
		      "'C:\\VMs=/srv/vms'\n",
		      stderr);
		return CLI_USAGE;
	}
	return 0;
}
