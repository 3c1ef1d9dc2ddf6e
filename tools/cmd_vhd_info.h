/*
 * cmd_vhd_info.h - impex vhd info and vhd check, two commands of the vhd
 * group (its table is in cmd_vhd.c).
 */
#ifndef IMPEX_CMD_VHD_INFO_H
#define IMPEX_CMD_VHD_INFO_H

/* Their usages: the table's entries and the commands' messages name the same string. */
extern const char cmd_vhd_info_usage[];
extern const char cmd_vhd_check_usage[];

/**
 * Run "impex vhd info ARGS": exit 1 when the chain is broken. Returns the
 * exit status, or CLI_HELP.
 */
int cmd_vhd_info(int argc, char **argv);

/** Run "impex vhd check ARGS": exit 1 when damaged. Returns the exit status, or CLI_HELP. */
int cmd_vhd_check(int argc, char **argv);

#endif
