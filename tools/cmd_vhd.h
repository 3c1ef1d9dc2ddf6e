/*
 * cmd_vhd.h - the "impex vhd" commands: their table, and what they share
 * (their options, opening the chain of the file they name, writing into a
 * disk, which impex vm write does too).
 */
#ifndef IMPEX_CMD_VHD_H
#define IMPEX_CMD_VHD_H

#include "cli.h"

#include <stdbool.h>

struct chain;

/* The options of the vhd commands; each takes those its usage names. */
struct cmd_vhd_args {
	struct cli_common common; /* --pathmap, --json */
	const char *type;	  /* create --type */
	const char *block_size;	  /* create --block-size */
	const char *seed;	  /* flatten --seed */
	const char *format;	  /* create, flatten --format */
	const char *sector_size;  /* create --sector-size */
	bool progress;		  /* -p, --progress */
	int first;		  /* index of the first operand in argv */
};

/* The top-level commands of this module ("vhd" and its commands), ended by one without a name. */
extern const struct cli_command cmd_vhd_commands[];

/**
 * Parse the options of a vhd command whose usage is @usage into @a (made
 * empty first), then check that there are @min to @max operands. Returns 0,
 * CLI_HELP, or an exit status after the message; the caller frees
 * @a->common.pathmap with pathmap_free, whatever it returns.
 */
int cmd_vhd_parse(int argc, char **argv, const char *usage, int min, int max,
		  struct cmd_vhd_args *a);

/**
 * Open the chain of the first operand into *@chain (caller closes with
 * chain_close), printing its warnings. Returns 0, or CLI_FAIL after the
 * message.
 */
int cmd_vhd_open_chain(char **argv, const struct cmd_vhd_args *a, struct chain **chain);

/**
 * Write @input (a file; standard input when NULL or "-") into the VHD at
 * @path at @offset_text, in whole sectors; errors are printed, @usage for
 * usage errors. Returns the exit status.
 */
int cmd_vhd_write_input(const char *path, const char *offset_text, const char *input,
			const char *usage);

#endif
