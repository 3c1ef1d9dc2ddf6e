/* cmd_export.h - impex export. */
#ifndef IMPEX_CMD_EXPORT_H
#define IMPEX_CMD_EXPORT_H

#include "cli.h"

/* The top-level commands of this module ("export"), ended by one without a name. */
extern const struct cli_command cmd_export_commands[];

#endif
