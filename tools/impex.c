/*
 * impex - Hyper-V export and import on Linux, on the command line.
 */
#include "cli.h"
#include "cmd_demo.h"
#include "cmd_export.h"
#include "cmd_import.h"
#include "cmd_status.h"
#include "cmd_store.h"
#include "cmd_vhd.h"
#include "complete.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Every top-level command, in the order impex --help lists them. */
static struct cli_command commands[32];

static const struct cli_command impex = {.name = "impex", .sub = commands};

/* Add the commands of a module's table to the top level. */
static void gather(const struct cli_command *table)
{
	static size_t count;

	/* The last entry of commands stays empty: it ends the table. */
	for (; table->name && count + 1 < sizeof(commands) / sizeof(commands[0]); table++)
		commands[count++] = *table;
}

int main(int argc, char **argv)
{
	int rc;

	gather(cmd_vhd_commands);
	gather(cmd_store_commands);
	gather(cmd_export_commands);
	gather(cmd_import_commands);
	gather(cmd_status_commands);
	gather(cmd_demo_commands);
	/* The shell's completion asks here (tools/impex.bash-completion); not in the help. */
	if (argc > 1 && strcmp(argv[1], "__complete") == 0)
		rc = complete_run(&impex, argc - 2, argv + 2);
	else
		rc = cli_dispatch(&impex, "impex", argc, argv);
	/* Output that never reached its file (a full disk, a closed pipe) is a failure. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("cannot write the output: %s", strerror(errno ? errno : EIO));
		return CLI_FAIL;
	}
	return rc;
}
