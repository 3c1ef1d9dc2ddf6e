/* cmd_import.h - impex import-settings, compare and import. */
#ifndef IMPEX_CMD_IMPORT_H
#define IMPEX_CMD_IMPORT_H

#include "cli.h"

/*
 * The top-level commands of this module (import-settings, compare, import),
 * ended by one without a name.
 */
extern const struct cli_command cmd_import_commands[];

#endif
