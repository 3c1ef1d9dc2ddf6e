/*
 * impex store|switch, and what every command on a store shares: its
 * options, opening the store, the table of the store, vm and switch groups.
 */
#include "cmd_store.h"

#include "cli.h"
#include "cmd_vm.h"
#include "error.h"
#include "json.h"
#include "pathmap.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_init[] = "impex store init DIR";
static const char usage_switch_add[] = "impex switch add [STORE OPTIONS] NAME";
static const char usage_switch_list[] = "impex switch list [STORE OPTIONS] [--json]";

/* One store command's own option @c into the struct cmd_store_args @ctx (cli_parse's take). */
static int take_option(void *ctx, int c, const char *usage)
{
	struct cmd_store_args *a = ctx;

	switch (c) {
	case 'v':
		a->verbose = true;
		break;
	case 'a':
		a->ascii = true;
		break;
	case 'p':
		a->progress = true;
		break;
	case 'D':
		a->disks_too = true;
		break;
	case 'N':
		a->no_storage = true;
		break;
	case 'R':
		a->no_runtime = true;
		break;
	case 'C':
		if (strcmp(optarg, "all") != 0 && strcmp(optarg, "none") != 0)
			return cli_usage(usage, "--copy-snapshot-configuration is all or none");
		a->snapshots = optarg;
		break;
	case 'U':
		a->subdirectory = true;
		break;
	case 'T':
		a->settings = optarg;
		break;
	case 'g':
		a->generation = optarg;
		break;
	case 'F':
		a->disk_format = optarg;
		break;
	case 'm':
		a->memory = optarg;
		break;
	case 'd':
		if (a->disk_count == CMD_STORE_MAX_ITEMS)
			return cli_usage(usage, "at most %d disks", CMD_STORE_MAX_ITEMS);
		a->disks[a->disk_count++] = optarg;
		break;
	case 's':
		if (a->switch_count == CMD_STORE_MAX_ITEMS)
			return cli_usage(usage, "at most %d adapters", CMD_STORE_MAX_ITEMS);
		a->switches[a->switch_count++] = optarg;
		break;
	default:
		return CLI_NOT_OWN;
	}
	return 0;
}

int cmd_store_parse(int argc, char **argv, const char *usage, int min, int max,
		    struct cmd_store_args *a)
{
	static const struct option options[] = {
		{"generation", required_argument, NULL, 'g'},
		{"disk-format", required_argument, NULL, 'F'},
		{"memory", required_argument, NULL, 'm'},
		{"disk", required_argument, NULL, 'd'},
		{"switch", required_argument, NULL, 's'},
		{"disks", no_argument, NULL, 'D'},
		{"no-vm-storage", no_argument, NULL, 'N'},
		{"no-runtime-information", no_argument, NULL, 'R'},
		{"copy-snapshot-configuration", required_argument, NULL, 'C'},
		{"create-vm-export-subdirectory", no_argument, NULL, 'U'},
		{"settings", required_argument, NULL, 'T'},
		{"verbose", no_argument, NULL, 'v'},
		{"ascii", no_argument, NULL, 'a'},
		{"progress", no_argument, NULL, 'p'},
		CLI_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_parse p = {
		.usage = usage,
		.options = options,
		.min_operands = min,
		.max_operands = max,
		.take = take_option,
		.ctx = a,
	};

	memset(a, 0, sizeof(*a));
	return cli_parse(argc, argv, &p, &a->common, &a->first);
}

/* Open the store @a names into *@store. Returns 0, or an exit status after the message. */
static int open_store(struct cmd_store_args *a, const char *usage, struct store **store)
{
	struct store_options o = {0};
	struct error err;
	const char *env = getenv("IMPEX_STORE");

	if (a->common.store_count == 0 && env && *env)
		a->common.stores[a->common.store_count++] = env;
	if (a->common.store_count == 0)
		return cli_usage(usage, "no store: give --store DIR or set IMPEX_STORE");
	o.roots = a->common.stores;
	o.root_count = a->common.store_count;
	o.pathmap = a->common.pathmap;
	o.allow_outside = a->common.allow_outside;
	o.recorded = true;
	error_clear(&err);
	/* A folder that is not a store is said to be one, not listed as a store without VMs. */
	if (store_open(store, &o, &err) < 0 || store_check(*store, &err) < 0)
		return cli_fail(&err);
	if (store_notice(*store))
		cli_warning("%s", store_notice(*store));
	return CLI_OK;
}

int cmd_store_begin(int argc, char **argv, const char *usage, int min, int max,
		    struct cmd_store_args *a, struct store **store)
{
	int rc = cmd_store_parse(argc, argv, usage, min, max, a);

	return rc ? rc : open_store(a, usage, store);
}

int cmd_store_end(struct cmd_store_args *a, struct store *store, int rc)
{
	store_free(store);
	pathmap_free(a->common.pathmap);
	a->common.pathmap = NULL;
	return rc;
}

int cmd_store_list_vms(struct store *store, struct store_vm **vms, size_t *count)
{
	struct error err;

	error_clear(&err);
	return store_list(store, vms, count, &err) < 0 ? cli_fail(&err) : CLI_OK;
}

int cmd_store_pick_vm(struct store *store, const char *name, struct store_vm **vms, size_t *count,
		      const struct store_vm **vm)
{
	struct error err;
	int rc = cmd_store_list_vms(store, vms, count);

	error_clear(&err);
	if (rc == 0 && store_pick_vm(*vms, *count, name, vm, &err) < 0)
		rc = cli_fail(&err);
	return rc;
}

const char *cmd_store_bus_name(enum config_bus bus)
{
	return bus == CONFIG_BUS_IDE ? "ide" : "scsi";
}

const char *cmd_store_disk_label(const struct store_disk *d, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%u:%u", cmd_store_bus_name(d->bus), d->controller, d->drive);
	return buf;
}

const char *cmd_store_or_null(const char *text)
{
	return text && text[0] ? text : NULL;
}

/* ---- store init ---- */

static int store_init_cmd(int argc, char **argv)
{
	struct cmd_store_args a;
	struct error err;
	int rc = cmd_store_parse(argc, argv, usage_init, 1, 1, &a);

	if (rc == 0) {
		error_clear(&err);
		rc = store_init(argv[a.first], &err) < 0 ? cli_fail(&err) : CLI_OK;
		if (rc == CLI_OK)
			printf("store ready in '%s'\n", argv[a.first]);
	}
	return cmd_store_end(&a, NULL, rc);
}

/* ---- switch add / list ---- */

static int switch_add(int argc, char **argv)
{
	struct cmd_store_args a;
	struct store *store = NULL;
	struct error err;
	char id[37];
	int rc = cmd_store_begin(argc, argv, usage_switch_add, 1, 1, &a, &store);

	if (rc == 0) {
		error_clear(&err);
		rc = store_add_switch(store, argv[a.first], id, &err) < 0 ? cli_fail(&err) : CLI_OK;
		if (rc == CLI_OK)
			printf("%s  %s\n", id, argv[a.first]);
	}
	return cmd_store_end(&a, store, rc);
}

static int switch_list(int argc, char **argv)
{
	struct cmd_store_args a;
	struct store *store = NULL;
	struct store_switch *list = NULL;
	size_t n = 0;
	struct error err;
	int rc = cmd_store_begin(argc, argv, usage_switch_list, 0, 0, &a, &store);

	if (rc)
		goto out;
	error_clear(&err);
	if (store_switches(store, &list, &n, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (a.common.json) {
		struct jsonw j;

		jsonw_init(&j, stdout);
		jsonw_begin_array(&j, NULL);
		for (size_t i = 0; i < n; i++) {
			jsonw_begin_object(&j, NULL);
			jsonw_string(&j, "id", list[i].id);
			jsonw_string(&j, "name", list[i].name);
			jsonw_end_object(&j);
		}
		jsonw_end_array(&j);
		jsonw_finish(&j);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s  %s\n", list[i].id, list[i].name);
	}
	rc = CLI_OK;
out:
	store_switches_free(list, n);
	return cmd_store_end(&a, store, rc);
}

/* ---- the commands ---- */

static const struct cli_command store_commands[] = {
	{.name = "init",
	 .usage = usage_init,
	 .summary = "create the folders of a new store",
	 .operands = "dir",
	 .run = store_init_cmd},
	{0},
};

static const struct cli_command switch_commands[] = {
	{.name = "add",
	 .usage = usage_switch_add,
	 .summary = "add a virtual switch of the host",
	 .operands = "-",
	 .run = switch_add},
	{.name = "list",
	 .usage = usage_switch_list,
	 .summary = "list the host's virtual switches",
	 .operands = "",
	 .run = switch_list},
	{0},
};

const struct cli_command cmd_store_commands[] = {
	{.name = "store",
	 .summary = "Stores of Hyper-V VMs:",
	 .sub = store_commands,
	 .section = "Store commands"},
	{.name = "vm",
	 .summary = "The VMs of a store:",
	 .sub = cmd_vm_commands,
	 .section = "Store commands"},
	{.name = "switch",
	 .summary = "The host's virtual switches, as a store records them:",
	 .sub = switch_commands,
	 .section = "Store commands"},
	{0},
};
