/* cmd_vhd.h - the "impex vhd" commands. */
#ifndef IMPEX_CMD_VHD_H
#define IMPEX_CMD_VHD_H

#include <stdio.h>

/** Run "impex vhd ARGS": @argv[0] is "vhd". Returns the exit status. */
int cmd_vhd(int argc, char **argv);

/** Print the vhd commands' synopsis to @out. */
void cmd_vhd_help(FILE *out);

/**
 * Write @input (a file; standard input when NULL or "-") into the VHD at
 * @path at @offset_text, in whole sectors; errors are printed, @usage for
 * usage errors. Returns the exit status.
 */
int cmd_vhd_write_input(const char *path, const char *offset_text, const char *input,
			const char *usage);

#endif
