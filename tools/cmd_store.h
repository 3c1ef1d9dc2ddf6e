/*
 * impex store, vm and switch commands.
 */
#ifndef IMPEX_CMD_STORE_H
#define IMPEX_CMD_STORE_H

#include <stdio.h>

/** Print the store commands' synopsis to @out. */
void cmd_store_help(FILE *out);

/** Run "impex store|vm|switch ARGS" (argv[0] is the group). Returns the exit status. */
int cmd_store(int argc, char **argv);
int cmd_vm(int argc, char **argv);
int cmd_switch(int argc, char **argv);

/** Run "impex export ARGS" (argv[0] is "export"). Returns the exit status. */
int cmd_export(int argc, char **argv);

/** Run "impex import-settings ARGS". Returns the exit status. */
int cmd_import_settings(int argc, char **argv);

/** Run "impex compare ARGS". Returns the exit status. */
int cmd_compare(int argc, char **argv);

/** Run "impex import ARGS". Returns the exit status. */
int cmd_import(int argc, char **argv);

#endif
