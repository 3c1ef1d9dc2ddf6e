/*
 * cli.h - what the impex commands share: exit codes, messages, sizes, the
 * options every command knows, and the table of commands with its
 * dispatcher and help.
 */
#ifndef IMPEX_CLI_H
#define IMPEX_CLI_H

#include "disk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct error;
struct pathmap;

/*
 * The exit status of every impex command: one rule, said by impex --help
 * and in impex(1) (EXIT STATUS).
 */
#define CLI_OK	  0 /* done */
#define CLI_FAIL  1 /* failed, or problems found (a damaged chain, an import that would fail) */
#define CLI_USAGE 2 /* a wrong command line: a message and the usage on standard error */
/* What option parsing returns once it printed the help: the command stops, impex exits 0. */
#define CLI_HELP (-1)
/* What a command's cli_parse.take returns for an option that is not its own. */
#define CLI_NOT_OWN (-2)

/** Print "impex: MESSAGE" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Print "impex: warning: MESSAGE" to stderr. */
void cli_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Print a usage error and a hint to stderr; returns CLI_USAGE. */
int cli_usage(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Print the failure in @err ("impex: message"); returns CLI_FAIL. */
int cli_fail(const struct error *err);

/**
 * Parse a size or offset: bytes, or a number with K, M, G, T (powers of
 * 1024, optionally followed by "iB" or "B"). Returns 0 or -EINVAL.
 */
int cli_parse_size(const char *text, uint64_t *out);

/**
 * The disk format @text names, "vhd" or "vhdx" (as --format and
 * --disk-format take it), into *@format. Returns 0 or -EINVAL.
 */
int cli_parse_disk_format(const char *text, enum disk_format *format);

/** "2 GiB", "512 KiB", "1.5 MiB", "100 bytes" into @buf. Returns @buf. */
const char *cli_format_size(uint64_t bytes, char *buf, size_t cap);

/**
 * Add "--pathmap" values to *@map (created on first use; caller frees with
 * pathmap_free). Returns 0 or CLI_USAGE after printing the fault.
 */
int cli_add_pathmap(struct pathmap **map, const char *spec);

/* ---- the common options ---- */

#define CLI_MAX_STORES 16

/*
 * The options every level of impex knows: they may stand anywhere on the
 * line, before the command (impex --store DIR vm list), between a group and
 * its command (impex vm --store DIR list) or among the command's own
 * options and operands. A command takes those its usage names.
 */
struct cli_common {
	const char *stores[CLI_MAX_STORES]; /* --store DIR, repeatable */
	size_t store_count;
	struct pathmap *pathmap; /* --pathmap WIN=DIR, repeatable */
	bool allow_outside;	 /* --allow-outside */
	bool json;		 /* --json */
};

/* The getopt_long values of the common options ('h' is -h and --help). */
enum {
	CLI_OPTION_STORE = 0x100,
	CLI_OPTION_PATHMAP,
	CLI_OPTION_ALLOW_OUTSIDE,
	CLI_OPTION_JSON,
	CLI_OPTION_REFUSED, /* an option the command's usage does not name */
};

/* Their entries in a getopt_long table: the one table of them. */
/* clang-format off */
#define CLI_COMMON_OPTIONS                                                 \
	{"store", required_argument, NULL, CLI_OPTION_STORE},              \
	{"pathmap", required_argument, NULL, CLI_OPTION_PATHMAP},          \
	{"allow-outside", no_argument, NULL, CLI_OPTION_ALLOW_OUTSIDE},    \
	{"json", no_argument, NULL, CLI_OPTION_JSON},                      \
	{"help", no_argument, NULL, 'h'}
/* clang-format on */

/* What "[STORE OPTIONS]" in a usage stands for. */
#define CLI_STORE_OPTIONS "[--store DIR]... [--pathmap WIN=DIR]... [--allow-outside]"

struct option;

/** Make getopt_long start over, quietly: call before each command's loop. */
void cli_options_begin(void);

/**
 * getopt_long over @argv with @options (which hold CLI_COMMON_OPTIONS), in
 * getopt_long's default order: options and operands mixed, "--" ends the
 * options. An option @usage does not name comes back as CLI_OPTION_REFUSED;
 * -h and --help always come back as 'h'. Returns as getopt_long does.
 */
int cli_getopt(int argc, char **argv, const struct option *options, const char *usage);

/**
 * Handle the cli_getopt result @c that every command shares: the common
 * options into @common, 'h' (prints the command's help to stdout), ':' (a
 * missing value), refused and unknown options. Returns 0 to go on,
 * CLI_HELP once the help is printed, or CLI_USAGE, CLI_FAIL after the
 * message.
 */
int cli_common_option(int c, const char *usage, char **argv, struct cli_common *common);

/* What a command's option parsing needs: cli_parse(). */
struct cli_parse {
	const char *usage;	      /* the command's: it takes the options its usage names */
	const struct option *options; /* getopt_long's table, holding CLI_COMMON_OPTIONS */
	int min_operands, max_operands;
	/* Take the command's own option @c (optarg is its value): returns 0, an exit status after
	 * the message, or CLI_NOT_OWN when @c is none of its own (cli_common_option() takes it).
	 * NULL for a command without options of its own. */
	int (*take)(void *ctx, int c, const char *usage);
	void *ctx;
};

/**
 * Parse @argv (argv[0] the command's name) as @p says: options and operands
 * in any order, "--" ends the options; the common options into @common
 * (cli_common_option()), the command's own to @p->take; then there must be
 * @p->min_operands to @p->max_operands operands, the first at *@first.
 * Returns 0, CLI_HELP once the help is printed, or an exit status after the
 * message. @common's pathmap is the caller's to free, whatever it returns.
 */
int cli_parse(int argc, char **argv, const struct cli_parse *p, struct cli_common *common,
	      int *first);

/**
 * Whether @usage names the option @name ("store", "json"), "[STORE
 * OPTIONS]" standing for CLI_STORE_OPTIONS. When it does and @value is
 * given, *@value is the placeholder of its value ("DIR", "vhd|vhdx", up to
 * the closing ']', @value_len long), or NULL for an option without one.
 */
bool cli_usage_option(const char *usage, const char *name, const char **value, size_t *value_len);

/* ---- commands ---- */

/*
 * A command of impex: a leaf that runs, or a group of commands (impex vm,
 * impex vhd; impex itself). Tables of them end with an entry without a name.
 */
struct cli_command {
	const char *name; /* the word that names it: "show" */
	/* A leaf's usage, "impex vm show [STORE OPTIONS] [--json] NAME|GUID": it
	 * takes the options it names, and no other. */
	const char *usage;
	const char *summary; /* what it does: lines of text with '\n' between them */
	/* A leaf's operands for the shell's completion, space-separated: vm,
	 * snapshot (of the vm before it), vm/snapshot, disk (of that vm), file,
	 * dir, or - (anything). */
	const char *operands;
	/* A leaf: argv[0] is its name; returns the exit status, or CLI_HELP. */
	int (*run)(int argc, char **argv);
	const struct cli_command *sub; /* a group's commands */
	const char *section;	       /* the heading it comes under in impex --help */
};

/**
 * Run the command that @argv names in @group (@argv[0] names the group,
 * @path is its words: "impex", "impex vm"): the common options before the
 * command word are carried to it; "help [COMMAND...]", -h and --help print
 * help to stdout. Returns the exit status.
 */
int cli_dispatch(const struct cli_command *group, const char *path, int argc, char **argv);

/** Print the help of @command (@path its words) to @out. */
void cli_help(FILE *out, const struct cli_command *command, const char *path);

#endif
