/*
 * impex store, vm and switch commands; export and import.
 */
#ifndef IMPEX_CMD_STORE_H
#define IMPEX_CMD_STORE_H

#include "cli.h"

/*
 * The top-level commands of this module: the groups store, vm and switch,
 * and export, import-settings, compare and import; ended by one without a name.
 */
extern const struct cli_command cmd_store_commands[];

/** Run "impex export ARGS" (argv[0] is "export"). Returns the exit status. */
int cmd_export(int argc, char **argv);

/** Run "impex import-settings ARGS". Returns the exit status. */
int cmd_import_settings(int argc, char **argv);

/** Run "impex compare ARGS". Returns the exit status. */
int cmd_compare(int argc, char **argv);

/** Run "impex import ARGS". Returns the exit status. */
int cmd_import(int argc, char **argv);

#endif
