/*
 * impex status: the imports of an import mount.
 */
#ifndef IMPEX_CMD_STATUS_H
#define IMPEX_CMD_STATUS_H

#include <stdio.h>

int cmd_status(int argc, char **argv);
void cmd_status_help(FILE *out);

#endif
