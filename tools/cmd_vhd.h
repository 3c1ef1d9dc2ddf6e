/* cmd_vhd.h - the "impex vhd" commands. */
#ifndef IMPEX_CMD_VHD_H
#define IMPEX_CMD_VHD_H

#include "cli.h"

/* The top-level commands of this module ("vhd" and its commands), ended by one without a name. */
extern const struct cli_command cmd_vhd_commands[];

/**
 * Write @input (a file; standard input when NULL or "-") into the VHD at
 * @path at @offset_text, in whole sectors; errors are printed, @usage for
 * usage errors. Returns the exit status.
 */
int cmd_vhd_write_input(const char *path, const char *offset_text, const char *input,
			const char *usage);

#endif
