/*
 * impex demo: a realistic generated store.
 */
#ifndef IMPEX_CMD_DEMO_H
#define IMPEX_CMD_DEMO_H

#include "cli.h"

/* The top-level commands of this module ("demo"), ended by one without a name. */
extern const struct cli_command cmd_demo_commands[];

/** Run "impex demo STORE" (argv[0] is "demo"). Returns the exit status. */
int cmd_demo(int argc, char **argv);

#endif
