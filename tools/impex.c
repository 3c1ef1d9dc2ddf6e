/*
 * impex - Hyper-V export and import on Linux, on the command line.
 */
#include "cli.h"
#include "cmd_demo.h"
#include "cmd_status.h"
#include "cmd_store.h"
#include "cmd_vhd.h"
#include "impex_config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: impex [--help] [--version] COMMAND [ARGS]\n\n");
	cmd_vhd_help(out);
	fputc('\n', out);
	cmd_store_help(out);
	cmd_status_help(out);
	fprintf(out, "\nimpex demo STORE\n      make a new store of three VMs with disks, files, "
		     "snapshots and saved state\n");
	fprintf(out, "\nExit status: 0 success, 1 failure, 2 usage error.\n");
}

static int run(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("impex %s\n", IMPEX_VERSION);
		return CLI_OK;
	}
	if (strcmp(argv[1], "vhd") == 0)
		return cmd_vhd(argc - 1, argv + 1);
	if (strcmp(argv[1], "demo") == 0)
		return cmd_demo(argc - 1, argv + 1);
	if (strcmp(argv[1], "store") == 0)
		return cmd_store(argc - 1, argv + 1);
	if (strcmp(argv[1], "vm") == 0)
		return cmd_vm(argc - 1, argv + 1);
	if (strcmp(argv[1], "export") == 0)
		return cmd_export(argc - 1, argv + 1);
	if (strcmp(argv[1], "import") == 0)
		return cmd_import(argc - 1, argv + 1);
	if (strcmp(argv[1], "compare") == 0)
		return cmd_compare(argc - 1, argv + 1);
	if (strcmp(argv[1], "import-settings") == 0)
		return cmd_import_settings(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "switch") == 0)
		return cmd_switch(argc - 1, argv + 1);
	cli_error("unknown command '%s'", argv[1]);
	usage(stderr);
	return CLI_USAGE;
}

int main(int argc, char **argv)
{
	int rc = run(argc, argv);

	/* Output that never reached its file (a full disk, a closed pipe) is a failure. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("cannot write the output: %s", strerror(errno ? errno : EIO));
		return CLI_FAIL;
	}
	return rc;
}
