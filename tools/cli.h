/*
 * cli.h - what the impex commands share: exit codes, messages, sizes.
 */
#ifndef IMPEX_CLI_H
#define IMPEX_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct error;
struct pathmap;

/* Exit status of every impex command. */
#define CLI_OK	  0
#define CLI_FAIL  1
#define CLI_USAGE 2

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

/** "2 GiB", "512 KiB", "1.5 MiB", "100 bytes" into @buf. Returns @buf. */
const char *cli_format_size(uint64_t bytes, char *buf, size_t cap);

/**
 * Add "--pathmap" values to *@map (created on first use; caller frees with
 * pathmap_free). Returns 0 or CLI_USAGE after printing the fault.
 */
int cli_add_pathmap(struct pathmap **map, const char *spec);

/* The options every command takes. */
struct cli_common {
	struct pathmap *pathmap; /* --pathmap WIN=DIR, repeatable */
	bool json;		 /* --json */
};

/* Their entries in a getopt_long table ("-p" is --progress where a command has it). */
#define CLI_OPTION_PATHMAP 256
/* clang-format off */
#define CLI_COMMON_OPTIONS                                        \
	{"pathmap", required_argument, NULL, CLI_OPTION_PATHMAP}, \
	{"json", no_argument, NULL, 'j'},                         \
	{"help", no_argument, NULL, 'h'}
/* clang-format on */

/** Make getopt_long start over, quietly: call before each command's loop. */
void cli_options_begin(void);

/**
 * Handle the getopt_long result @c that every command shares:
 * CLI_OPTION_PATHMAP (--pathmap), 'j' (--json), 'h' (--help: prints @usage
 * and exits), ':' (a missing value) and unknown options. Returns 0 to go
 * on, or an exit status (CLI_USAGE, CLI_FAIL).
 */
int cli_common_option(int c, const char *usage, char **argv, struct cli_common *common);

#endif
