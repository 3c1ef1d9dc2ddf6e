/*
 * impex status: the imports of an import mount.
 */
#ifndef IMPEX_CMD_STATUS_H
#define IMPEX_CMD_STATUS_H

#include "cli.h"

/* The top-level commands of this module ("status"), ended by one without a name. */
extern const struct cli_command cmd_status_commands[];

/** Run "impex status ARGS" (argv[0] is "status"). Returns the exit status. */
int cmd_status(int argc, char **argv);

#endif
