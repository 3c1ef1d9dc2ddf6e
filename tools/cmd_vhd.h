/* cmd_vhd.h - the "impex vhd" commands. */
#ifndef IMPEX_CMD_VHD_H
#define IMPEX_CMD_VHD_H

#include <stdio.h>

/** Run "impex vhd ARGS": @argv[0] is "vhd". Returns the exit status. */
int cmd_vhd(int argc, char **argv);

/** Print the vhd commands' synopsis to @out. */
void cmd_vhd_help(FILE *out);

#endif
