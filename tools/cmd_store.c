/*
 * impex store|vm|switch: stores of Hyper-V VMs on Linux.
 */
#include "cmd_store.h"

#include "asuser.h"
#include "chain.h"
#include "cli.h"
#include "cmd_vhd.h"
#include "disk.h"
#include "error.h"
#include "export.h"
#include "fsutil.h"
#include "import.h"
#include "json.h"
#include "pathmap.h"
#include "progress.h"
#include "store.h"
#include "vhd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_ITEMS 64

static const char usage_init[] = "impex store init DIR";
static const char usage_list[] = "impex vm list [STORE OPTIONS] [--json]";
static const char usage_show[] =
	"impex vm show [STORE OPTIONS] [--json] [-v|--verbose] [--ascii] NAME|GUID";
static const char usage_new[] = "impex vm new [STORE OPTIONS] [--generation 1|2] [--memory SIZE] "
				"[--disk ide|scsi:SIZE]... [--disk-format vhd|vhdx] "
				"[--switch NAME]... NAME";
static const char usage_snapshot[] = "impex vm snapshot [STORE OPTIONS] VM SNAPSHOT";
static const char usage_apply[] = "impex vm apply [STORE OPTIONS] VM SNAPSHOT";
static const char usage_write[] = "impex vm write [STORE OPTIONS] VM DISK OFFSET FILE|-";
static const char usage_save[] = "impex vm save [STORE OPTIONS] VM";
static const char usage_delete[] = "impex vm delete [STORE OPTIONS] [--disks] VM";
static const char usage_export[] =
	"impex export [STORE OPTIONS] [--no-vm-storage] [--no-runtime-information]\n"
	"                    [--copy-snapshot-configuration=all|none] [-p|--progress]\n"
	"                    [--create-vm-export-subdirectory] VM [SNAPSHOT] DEST";
static const char usage_import_settings[] =
	"impex import-settings [STORE OPTIONS] [--settings FILE] DIR";
static const char usage_import[] =
	"impex import [STORE OPTIONS] [-p|--progress] [--settings FILE] DIR";
static const char usage_compare[] =
	"impex compare [STORE OPTIONS] [--settings FILE] [--json] DIR";
static const char usage_switch_add[] = "impex switch add [STORE OPTIONS] NAME";
static const char usage_switch_list[] = "impex switch list [STORE OPTIONS] [--json]";

struct store_args {
	struct cli_common common; /* --store, --pathmap, --allow-outside, --json */
	bool verbose; /* vm show: each disk's file and chain */
	bool ascii;   /* vm show: the tree in ASCII */
	bool disks_too;
	bool no_storage;
	bool no_runtime;
	const char *snapshots;
	bool subdirectory;
	const char *settings;
	bool progress; /* -p, --progress */
	const char *generation;
	const char *disk_format;
	const char *memory;
	const char *disks[MAX_ITEMS];
	size_t disk_count;
	const char *switches[MAX_ITEMS];
	size_t switch_count;
	int first;
};

static int parse(int argc, char **argv, const char *usage, int min, int max, struct store_args *a)
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
	int c, n, rc;

	memset(a, 0, sizeof(*a));
	cli_options_begin();
	/* Options and operands in any order; "--" ends the options. */
	while ((c = cli_getopt(argc, argv, options, usage)) != -1) {
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
			if (a->disk_count == MAX_ITEMS)
				return cli_usage(usage, "at most %d disks", MAX_ITEMS);
			a->disks[a->disk_count++] = optarg;
			break;
		case 's':
			if (a->switch_count == MAX_ITEMS)
				return cli_usage(usage, "at most %d adapters", MAX_ITEMS);
			a->switches[a->switch_count++] = optarg;
			break;
		default:
			rc = cli_common_option(c, usage, argv, &a->common);
			if (rc)
				return rc;
		}
	}
	a->first = optind;
	n = argc - optind;
	if (n < min)
		return cli_usage(usage, "missing operand");
	if (n > max)
		return cli_usage(usage, "too many operands");
	return 0;
}

static int open_store(struct store_args *a, const char *usage, struct store **store)
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
		fprintf(stderr, "impex: warning: %s\n", store_notice(*store));
	return CLI_OK;
}

static const char *bus_name(enum config_bus bus)
{
	return bus == CONFIG_BUS_IDE ? "ide" : "scsi";
}

static const char *time_text(int64_t t, char *buf, size_t cap)
{
	return t ? vhd_format_utc((time_t)t, buf, cap) : "";
}

/* Parse the arguments and open the store they name. */
static int begin(int argc, char **argv, const char *usage, int min, int max, struct store_args *a,
		 struct store **store)
{
	int rc = parse(argc, argv, usage, min, max, a);

	return rc ? rc : open_store(a, usage, store);
}

/* The store's VMs into *@vms, or a failure status. */
static int list_vms(struct store *store, struct store_vm **vms, size_t *count)
{
	struct error err;

	error_clear(&err);
	return store_list(store, vms, count, &err) < 0 ? cli_fail(&err) : CLI_OK;
}

/* ---- store init ---- */

static int store_init_cmd(int argc, char **argv)
{
	struct store_args a;
	struct error err;
	int rc = parse(argc, argv, usage_init, 1, 1, &a);

	if (rc == 0) {
		error_clear(&err);
		rc = store_init(argv[a.first], &err) < 0 ? cli_fail(&err) : CLI_OK;
		if (rc == CLI_OK)
			printf("store ready in '%s'\n", argv[a.first]);
	}
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- vm list / show ---- */

/*
 * Open the chain of @disk when @store is given (vm show), as "chain" (the
 * files from the disk down to its base) and "chain_problem"; returns whether
 * it failed to open.
 */
static bool json_chain(struct jsonw *j, struct store *store, const struct store_disk *disk)
{
	struct chain *chain = NULL;
	struct error err;
	bool failed;

	if (!store)
		return false;
	if (!disk->path) {
		/* No file: no chain, and its problem says why. */
		jsonw_begin_array(j, "chain");
		jsonw_end_array(j);
		jsonw_string(j, "format", NULL);
		jsonw_string(j, "chain_problem", NULL);
		return false;
	}
	error_clear(&err);
	failed = store_open_chain(store, disk, &chain, &err) < 0;
	jsonw_begin_array(j, "chain");
	for (unsigned i = 0; chain && i < chain_depth(chain); i++)
		jsonw_string(j, NULL, disk_path(chain_level(chain, i)));
	jsonw_end_array(j);
	jsonw_string(j, "format", chain ? disk_format_name(chain_format(chain)) : NULL);
	jsonw_string(j, "chain_problem", failed ? error_message(&err) : NULL);
	chain_close(chain);
	return failed;
}

/* "ide0:1", "scsi0:3": where @d sits, as vm show names it. */
static const char *disk_label(const struct store_disk *d, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%u:%u", bus_name(d->bus), d->controller, d->drive);
	return buf;
}

/* @text, or NULL (JSON null) when it is empty: an absent value. */
static const char *or_null(const char *text)
{
	return text && text[0] ? text : NULL;
}

/* A time in Unix seconds as JSON, null when absent (0). */
static void json_time(struct jsonw *j, const char *key, int64_t t)
{
	if (t)
		jsonw_int(j, key, t);
	else
		jsonw_string(j, key, NULL);
}

/* The disks as JSON; with @store, their chains too. Returns whether a chain failed. */
static bool json_disks(struct jsonw *j, struct store *store, const struct store_disk *disks,
		       size_t count)
{
	bool failed = false;
	char label[48];

	jsonw_begin_array(j, "disks");
	for (size_t i = 0; i < count; i++) {
		jsonw_begin_object(j, NULL);
		jsonw_uint(j, "index", i);
		jsonw_string(j, "label", disk_label(&disks[i], label, sizeof(label)));
		jsonw_string(j, "bus", bus_name(disks[i].bus));
		jsonw_uint(j, "controller", disks[i].controller);
		jsonw_uint(j, "drive", disks[i].drive);
		jsonw_string(j, "written", disks[i].written);
		jsonw_string(j, "path", disks[i].path);
		jsonw_string(j, "found", disks[i].how);
		jsonw_string(j, "problem", disks[i].problem);
		failed |= json_chain(j, store, &disks[i]);
		jsonw_end_object(j);
	}
	jsonw_end_array(j);
	return failed;
}

/* The snapshot of @vm whose GUID is @id, or NULL. */
static const struct store_snapshot *snapshot_by_id(const struct store_vm *vm, const char *id)
{
	for (size_t i = 0; id && id[0] && i < vm->snapshot_count; i++)
		if (strcasecmp(vm->snapshots[i].id, id) == 0)
			return &vm->snapshots[i];
	return NULL;
}

/* The VM as JSON; with @store, its disks' chains too. Returns whether a chain failed. */
static bool json_vm(struct jsonw *j, struct store *store, const struct store_vm *vm)
{
	const struct store_snapshot *current = snapshot_by_id(vm, vm->current_snapshot_id);
	bool read = vm->state != STORE_VM_UNKNOWN; /* its configuration was read */
	bool failed;

	jsonw_begin_object(j, NULL);
	jsonw_string(j, "id", or_null(vm->id));
	jsonw_string(j, "name", vm->name);
	jsonw_string(j, "config", vm->config_path);
	jsonw_string(j, "state", store_vm_state_name(vm->state));
	if (read)
		jsonw_uint(j, "generation", (uint64_t)vm->generation);
	else
		jsonw_string(j, "generation", NULL);
	if (read && vm->version >= 0)
		jsonw_int(j, "version", vm->version);
	else
		jsonw_string(j, "version", NULL);
	json_time(j, "creation_time", vm->creation_time);
	jsonw_string(j, "saved_state", vm->saved_state);
	jsonw_string(j, "current_snapshot", or_null(vm->current_snapshot_id));
	jsonw_string(j, "current_snapshot_name", current ? current->name : NULL);
	jsonw_uint(j, "snapshot_count", vm->snapshot_count);
	failed = json_disks(j, store, vm->disks, vm->disk_count);
	jsonw_begin_array(j, "adapters");
	for (size_t i = 0; i < vm->adapter_count; i++) {
		jsonw_begin_object(j, NULL);
		jsonw_string(j, "name", or_null(vm->adapters[i].friendly_name));
		jsonw_string(j, "mac", or_null(vm->adapters[i].mac));
		jsonw_bool(j, "static_mac", vm->adapters[i].static_mac);
		jsonw_string(j, "switch_id", or_null(vm->adapters[i].switch_id));
		jsonw_string(j, "switch", or_null(vm->adapters[i].switch_name));
		jsonw_bool(j, "connected", vm->adapters[i].connected);
		jsonw_string(j, "problem", vm->adapters[i].problem);
		jsonw_end_object(j);
	}
	jsonw_end_array(j);
	jsonw_begin_array(j, "snapshots");
	for (size_t i = 0; i < vm->snapshot_count; i++) {
		const struct store_snapshot *s = &vm->snapshots[i];

		jsonw_begin_object(j, NULL);
		jsonw_string(j, "id", s->id);
		jsonw_string(j, "name", s->name);
		jsonw_string(j, "config", s->config_path);
		jsonw_string(j, "parent", or_null(s->parent_id));
		jsonw_bool(j, "parent_inferred", s->parent_inferred);
		json_time(j, "creation_time", s->creation_time);
		jsonw_string(j, "saved_state", s->saved_state);
		failed |= json_disks(j, store, s->disks, s->disk_count);
		jsonw_string(j, "problem", s->problem);
		jsonw_end_object(j);
	}
	jsonw_end_array(j);
	jsonw_string(j, "problem", vm->problem);
	jsonw_end_object(j);
	return failed;
}

/* Does @vm, or anything in it, have a problem? */
static bool vm_has_problem(const struct store_vm *vm)
{
	if (vm->problem)
		return true;
	for (size_t i = 0; i < vm->disk_count; i++)
		if (vm->disks[i].problem)
			return true;
	for (size_t i = 0; i < vm->snapshot_count; i++) {
		if (vm->snapshots[i].problem)
			return true;
		for (size_t k = 0; k < vm->snapshots[i].disk_count; k++)
			if (vm->snapshots[i].disks[k].problem)
				return true;
	}
	return false;
}

static int vm_list(int argc, char **argv)
{
	struct store_args a;
	struct store *store = NULL;
	struct store_vm *vms = NULL;
	size_t count = 0;
	int rc = begin(argc, argv, usage_list, 0, 0, &a, &store);
	if (rc)
		goto out;
	rc = list_vms(store, &vms, &count);
	if (rc)
		goto out;
	if (a.common.json) {
		struct jsonw j;

		jsonw_init(&j, stdout);
		jsonw_begin_array(&j, NULL);
		for (size_t i = 0; i < count; i++)
			json_vm(&j, NULL, &vms[i]);
		jsonw_end_array(&j);
		jsonw_finish(&j);
	} else {
		printf("%-36s  %-24s  %5s  %9s  %s\n", "GUID", "NAME", "DISKS", "SNAPSHOTS",
		       "STATE");
		for (size_t i = 0; i < count; i++)
			printf("%-36s  %-24s  %5zu  %9zu  %s\n", vms[i].id[0] ? vms[i].id : "-",
			       vms[i].name, vms[i].disk_count, vms[i].snapshot_count,
			       vm_has_problem(&vms[i]) ? "problem (impex vm show)"
			       : store_vm_state_name(vms[i].state)
				       ? store_vm_state_name(vms[i].state)
				       : "-");
	}
	rc = CLI_OK;
out:
	store_vms_free(vms, count);
	store_free(store);
	pathmap_free(a.common.pathmap);
	return rc;
}

/*
 * Print @d ("INDEX  LABEL  PATH", the index left out when @index is
 * negative) with @indent before each line; its problem, or its chain's,
 * always; with @verbose the file found and its chain. Returns whether
 * something is wrong with it.
 */
static bool show_disk(struct store *store, const struct store_disk *d, long index,
		      const char *indent, bool verbose)
{
	struct chain *chain = NULL;
	struct error err;
	char label[48];

	if (index >= 0)
		printf("%s%ld  %s  %s\n", indent, index, disk_label(d, label, sizeof(label)),
		       d->written);
	else
		printf("%s%s  %s\n", indent, disk_label(d, label, sizeof(label)), d->written);
	if (d->problem) {
		printf("%s  problem: %s\n", indent, d->problem);
		return true;
	}
	if (verbose)
		printf("%s  file: %s (found %s)\n", indent, d->path, d->how);
	error_clear(&err);
	if (store_open_chain(store, d, &chain, &err) < 0) {
		printf("%s  problem: %s\n", indent, error_message(&err));
		return true;
	}
	if (verbose) {
		printf("%s  format: %s, %u level%s\n", indent,
		       disk_format_name(chain_format(chain)), chain_depth(chain),
		       chain_depth(chain) == 1 ? "" : "s");
		for (unsigned i = 1; i < chain_depth(chain); i++)
			printf("%s  parent %u: %s\n", indent, i, disk_path(chain_level(chain, i)));
	}
	for (unsigned i = 0; i < chain_warning_count(chain); i++)
		printf("%s  warning: %s\n", indent, chain_warning(chain, i));
	chain_close(chain);
	return false;
}

/* Has @d something to say without -v: a problem, a chain that does not open, or warnings? */
static bool disk_has_news(struct store *store, const struct store_disk *d)
{
	struct chain *chain = NULL;
	struct error err;
	bool news;

	if (d->problem)
		return true;
	error_clear(&err);
	news = store_open_chain(store, d, &chain, &err) < 0 || chain_warning_count(chain) > 0;
	chain_close(chain);
	return news;
}

/* The lines of the snapshot tree: Unicode box drawing, or ASCII. */
struct tree_style {
	const char *branch, *last, *down, *blank;
};

static const struct tree_style tree_unicode = {"\u251c\u2500 ", "\u2514\u2500 ", "\u2502  ", "   "};
static const struct tree_style tree_ascii = {"|- ", "`- ", "|  ", "   "};

/* Whether the locale the environment names (LC_ALL, else LC_CTYPE, else LANG) is UTF-8. */
static bool utf8_locale(void)
{
	static const char *const names[] = {"LC_ALL", "LC_CTYPE", "LANG"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *value = getenv(names[i]);

		if (value && value[0])
			return strcasestr(value, "utf-8") || strcasestr(value, "utf8");
	}
	return false;
}

/* The snapshot tree of one VM as vm show draws it. */
struct tree {
	struct store *store;
	const struct store_vm *vm;
	const struct tree_style *style;
	bool verbose;
	bool *shown;  /* each snapshot drawn once, whatever loops a damaged store has */
	char *prefix; /* the lines of the levels above */
	size_t prefix_cap;
	bool failed;
};

/* Siblings in creation order (then name, then GUID, for a stable order). */
static int compare_created(const void *a, const void *b)
{
	const struct store_snapshot *x = *(const struct store_snapshot *const *)a;
	const struct store_snapshot *y = *(const struct store_snapshot *const *)b;
	int c;

	if (x->creation_ticks != y->creation_ticks)
		return x->creation_ticks < y->creation_ticks ? -1 : 1;
	c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->id, y->id);
}

/* Is @s a root: no parent, or one that is not a snapshot of the VM? */
static bool is_root(const struct store_vm *vm, const struct store_snapshot *s)
{
	return !snapshot_by_id(vm, s->parent_id);
}

/*
 * The snapshots under @parent (NULL: the roots) not drawn yet, in creation
 * order, into @out (room for every snapshot). Returns their number.
 */
static size_t children_of(const struct tree *t, const struct store_snapshot *parent,
			  const struct store_snapshot **out)
{
	size_t n = 0;

	for (size_t i = 0; i < t->vm->snapshot_count; i++) {
		const struct store_snapshot *s = &t->vm->snapshots[i];

		if (t->shown[i] || s == parent)
			continue;
		if (parent ? strcasecmp(s->parent_id, parent->id) == 0 : is_root(t->vm, s))
			out[n++] = s;
	}
	if (n > 1)
		qsort(out, n, sizeof(*out), compare_created);
	return n;
}

static void draw_nodes(struct tree *t, const struct store_snapshot *const *nodes, size_t count,
		       bool now);

/* Draw @s (last of its siblings when @last) and what lies under it. */
static void draw_snapshot(struct tree *t, const struct store_snapshot *s, bool last)
{
	size_t had = strlen(t->prefix), n;
	const struct store_snapshot **children = calloc(t->vm->snapshot_count, sizeof(*children));
	bool now = strcasecmp(s->id, t->vm->current_snapshot_id) == 0;
	char when[40], *indent = NULL;

	t->shown[s - t->vm->snapshots] = true;
	printf("%s%s%s  %s%s\n", t->prefix, last ? t->style->last : t->style->branch, s->name,
	       s->creation_time ? time_text(s->creation_time, when, sizeof(when)) : "no time",
	       s->saved_state ? "  saved state" : "");
	if (!children) {
		t->failed = true;
		return;
	}
	n = children_of(t, s, children);
	/* The lines below it: its details, then its children. */
	snprintf(t->prefix + had, t->prefix_cap - had, "%s",
		 last ? t->style->blank : t->style->down);
	if (asprintf(&indent, "%s%s", t->prefix, n || now ? t->style->down : t->style->blank) < 0) {
		indent = NULL;
		t->failed = true;
	}
	if (indent && t->verbose)
		printf("%sid: %s\n", indent, s->id);
	if (indent && s->problem)
		printf("%sproblem: %s\n", indent, s->problem);
	for (size_t k = 0; indent && k < s->disk_count; k++)
		if (t->verbose || disk_has_news(t->store, &s->disks[k]))
			t->failed |= show_disk(t->store, &s->disks[k], -1, indent, t->verbose);
	free(indent);
	draw_nodes(t, children, n, now);
	t->prefix[had] = '\0';
	free(children);
}

/* Draw @nodes as siblings, then "Now" after them when @now. */
static void draw_nodes(struct tree *t, const struct store_snapshot *const *nodes, size_t count,
		       bool now)
{
	for (size_t i = 0; i < count; i++) {
		bool last = !now;

		if (t->shown[nodes[i] - t->vm->snapshots])
			continue;
		for (size_t k = i + 1; k < count && last; k++)
			last = t->shown[nodes[k] - t->vm->snapshots];
		draw_snapshot(t, nodes[i], last);
	}
	if (now)
		printf("%s%sNow\n", t->prefix, t->style->last);
}

/*
 * Draw @vm's snapshots as Hyper-V Manager shows them: one line each, each
 * under its parent, siblings in creation order, "Now" under the snapshot
 * the VM stands on. Returns whether a disk of theirs has a problem.
 */
static bool show_tree(struct store *store, const struct store_vm *vm, bool ascii, bool verbose)
{
	struct tree t = {
		.store = store,
		.vm = vm,
		.style = ascii ? &tree_ascii : &tree_unicode,
		.verbose = verbose,
	};
	const struct store_snapshot **roots;
	bool now = !snapshot_by_id(vm, vm->current_snapshot_id);
	size_t n;

	if (vm->snapshot_count == 0) {
		printf("snapshots: none\n");
		return false;
	}
	printf("snapshots:\n");
	/* Each level adds one style string (at most 3 UTF-8 characters of 3 bytes). */
	t.prefix_cap = 3 + (vm->snapshot_count + 1) * 9;
	t.shown = calloc(vm->snapshot_count, sizeof(*t.shown));
	t.prefix = calloc(t.prefix_cap, 1);
	roots = calloc(vm->snapshot_count, sizeof(*roots));
	if (!t.shown || !t.prefix || !roots) {
		free(t.shown);
		free(t.prefix);
		free(roots);
		cli_error("out of memory");
		return true;
	}
	strcpy(t.prefix, "  ");
	n = children_of(&t, NULL, roots);
	/* Snapshots in a loop of parents (only a damaged store has one) come after
	 * the roots, each loop from its oldest snapshot: every snapshot is drawn. */
	for (size_t i = 0; i < vm->snapshot_count; i++) {
		bool *reached = calloc(vm->snapshot_count, sizeof(*reached));
		const struct store_snapshot *oldest = NULL;

		if (!reached)
			break;
		for (size_t r = 0; r < n; r++)
			reached[roots[r] - vm->snapshots] = true;
		for (bool grew = true; grew;) {
			grew = false;
			for (size_t k = 0; k < vm->snapshot_count; k++) {
				const struct store_snapshot *p;

				if (reached[k] ||
				    !(p = snapshot_by_id(vm, vm->snapshots[k].parent_id)) ||
				    !reached[p - vm->snapshots])
					continue;
				reached[k] = grew = true;
			}
		}
		for (size_t k = 0; k < vm->snapshot_count; k++) {
			const struct store_snapshot *candidate = &vm->snapshots[k];

			if (!reached[k] && (!oldest || compare_created(&candidate, &oldest) < 0))
				oldest = candidate;
		}
		free(reached);
		if (!oldest)
			break;
		roots[n++] = oldest;
	}
	draw_nodes(&t, roots, n, now);
	free(roots);
	free(t.shown);
	free(t.prefix);
	return t.failed;
}

static int vm_show(int argc, char **argv)
{
	struct store_args a;
	struct store *store = NULL;
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	size_t count = 0;
	char when[40];
	bool failed = false;
	int rc = begin(argc, argv, usage_show, 1, 1, &a, &store);

	if (rc)
		goto out;
	rc = list_vms(store, &vms, &count);
	if (rc)
		goto out;
	{
		struct error err;

		error_clear(&err);
		if (store_pick_vm(vms, count, argv[a.first], &vm, &err) < 0) {
			rc = cli_fail(&err);
			goto out;
		}
	}
	if (a.common.json) {
		struct jsonw j;

		jsonw_init(&j, stdout);
		failed = json_vm(&j, store, vm);
		jsonw_finish(&j);
	} else {
		printf("%s  %s\n", vm->name, vm->id[0] ? vm->id : "-");
		printf("  configuration: %s\n", vm->config_path);
		if (vm->problem)
			printf("  problem: %s\n", vm->problem);
		if (vm->state != STORE_VM_UNKNOWN) {
			printf("  generation %d, version %lld, created %s\n", vm->generation,
			       (long long)vm->version,
			       vm->creation_time ? time_text(vm->creation_time, when, sizeof(when))
						 : "at no time recorded");
			printf("  state: %s\n", store_vm_state_name(vm->state));
		}
		printf("  saved state: %s\n", vm->saved_state ? vm->saved_state : "none");
		printf("disks:\n");
		for (size_t i = 0; i < vm->disk_count; i++)
			failed |= show_disk(store, &vm->disks[i], (long)i, "  ", a.verbose);
		printf("adapters:\n");
		for (size_t i = 0; i < vm->adapter_count; i++) {
			const struct config_adapter *n = &vm->adapters[i];

			if (n->connected)
				printf("  %s  %s  switch '%s' %s\n", n->friendly_name, n->mac,
				       n->switch_name, n->switch_id);
			else
				printf("  %s  %s  not connected\n", n->friendly_name, n->mac);
			if (n->problem)
				printf("    problem: %s\n", n->problem);
		}
		failed |= show_tree(store, vm, a.ascii || !utf8_locale(), a.verbose);
	}
	rc = failed || vm_has_problem(vm) ? CLI_FAIL : CLI_OK;
out:
	store_vms_free(vms, count);
	store_free(store);
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- vm new ---- */

static int vm_new(int argc, char **argv)
{
	struct store_new_disk disks[MAX_ITEMS];
	struct store_new_vm spec = {0};
	struct store_args a;
	struct store *store = NULL;
	struct error err;
	char id[37];
	int rc = begin(argc, argv, usage_new, 1, 1, &a, &store);
	if (rc)
		goto out;
	spec.name = argv[a.first];
	spec.generation = 1;
	if (a.generation) {
		if (strcmp(a.generation, "1") != 0 && strcmp(a.generation, "2") != 0) {
			rc = cli_usage(usage_new, "generation '%s': want 1 or 2", a.generation);
			goto out;
		}
		spec.generation = a.generation[0] - '0';
	}
	if (a.disk_format && strcmp(a.disk_format, "vhd") == 0) {
		spec.disk_format = DISK_FORMAT_VHD;
	} else if (a.disk_format && strcmp(a.disk_format, "vhdx") == 0) {
		spec.disk_format = DISK_FORMAT_VHDX;
	} else if (a.disk_format) {
		rc = cli_usage(usage_new, "disk format '%s': want vhd or vhdx", a.disk_format);
		goto out;
	}
	if (a.memory) {
		uint64_t bytes;

		if (cli_parse_size(a.memory, &bytes) < 0 || bytes < 32 << 20 || bytes % (1 << 20)) {
			rc = cli_usage(usage_new,
				       "'%s' is not a memory size (whole MiB, 32M or more)",
				       a.memory);
			goto out;
		}
		spec.memory_mib = bytes >> 20;
	}
	for (size_t i = 0; i < a.disk_count; i++) {
		const char *colon = strchr(a.disks[i], ':');
		size_t n = colon ? (size_t)(colon - a.disks[i]) : 0;

		if (colon && n == 3 && strncmp(a.disks[i], "ide", 3) == 0)
			disks[i].bus = CONFIG_BUS_IDE;
		else if (colon && n == 4 && strncmp(a.disks[i], "scsi", 4) == 0)
			disks[i].bus = CONFIG_BUS_SCSI;
		else {
			rc = cli_usage(usage_new, "disk '%s': want ide:SIZE or scsi:SIZE",
				       a.disks[i]);
			goto out;
		}
		if (cli_parse_size(colon + 1, &disks[i].size) < 0) {
			rc = cli_usage(usage_new, "disk '%s': '%s' is not a size", a.disks[i],
				       colon + 1);
			goto out;
		}
	}
	spec.disks = disks;
	spec.disk_count = a.disk_count;
	spec.switches = a.switches;
	spec.switch_count = a.switch_count;
	error_clear(&err);
	if (store_create_vm(store, &spec, id, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	printf("%s  %s\n", id, spec.name);
	rc = CLI_OK;
out:
	store_free(store);
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- vm snapshot, apply, write, save, delete ---- */

/* Run @change on the store: the commands that change one VM. */
static int change_vm(int argc, char **argv, const char *usage, int operands,
		     int (*change)(struct store *store, char **operands, const struct store_args *a,
				   struct error *err))
{
	struct store_args a;
	struct store *store = NULL;
	struct error err;
	int rc = begin(argc, argv, usage, operands, operands, &a, &store);

	if (rc == 0) {
		error_clear(&err);
		rc = change(store, argv + a.first, &a, &err) < 0 ? cli_fail(&err) : CLI_OK;
	}
	store_free(store);
	pathmap_free(a.common.pathmap);
	return rc;
}

static int do_snapshot(struct store *store, char **op, const struct store_args *a,
		       struct error *err)
{
	char id[37];
	int rc = store_snapshot_vm(store, op[0], op[1], id, err);

	(void)a;
	if (rc == 0)
		printf("%s  %s\n", id, op[1]);
	return rc;
}

static int do_apply(struct store *store, char **op, const struct store_args *a, struct error *err)
{
	(void)a;
	return store_apply_snapshot(store, op[0], op[1], err);
}

static int do_save(struct store *store, char **op, const struct store_args *a, struct error *err)
{
	(void)a;
	return store_save_state(store, op[0], err);
}

static int do_delete(struct store *store, char **op, const struct store_args *a, struct error *err)
{
	return store_delete_vm(store, op[0], a->disks_too, err);
}

static int vm_snapshot(int argc, char **argv)
{
	return change_vm(argc, argv, usage_snapshot, 2, do_snapshot);
}

static int vm_apply(int argc, char **argv)
{
	return change_vm(argc, argv, usage_apply, 2, do_apply);
}

static int vm_save(int argc, char **argv)
{
	return change_vm(argc, argv, usage_save, 1, do_save);
}

static int vm_delete(int argc, char **argv)
{
	return change_vm(argc, argv, usage_delete, 1, do_delete);
}

/*
 * The current disk of @vm that @what names as vm show lists it: its index
 * (0, 1, ...), its place ("ide0:1", any case), or its file name as the
 * configuration writes it (any case, when no other disk of the VM has it).
 * Returns the index, or -1 after a message listing the disks.
 */
static long pick_disk(const struct store_vm *vm, const char *what)
{
	char label[48], *end, *list = NULL;
	size_t len = 0, named = 0;
	long found = -1;
	unsigned long index;
	FILE *f;

	errno = 0;
	index = strtoul(what, &end, 10);
	if (what[0] >= '0' && what[0] <= '9' && !*end && !errno)
		found = index < vm->disk_count ? (long)index : -1;
	for (size_t i = 0; found < 0 && i < vm->disk_count; i++)
		if (strcasecmp(disk_label(&vm->disks[i], label, sizeof(label)), what) == 0)
			found = (long)i;
	for (size_t i = 0; found < 0 && i < vm->disk_count; i++)
		if (store_same_name(pathmap_basename(vm->disks[i].written), what))
			named++;
	for (size_t i = 0; found < 0 && named == 1 && i < vm->disk_count; i++)
		if (store_same_name(pathmap_basename(vm->disks[i].written), what))
			found = (long)i;
	if (found >= 0)
		return found;
	f = open_memstream(&list, &len);
	for (size_t i = 0; f && i < vm->disk_count; i++)
		fprintf(f, "%s%zu (%s, '%s')", i ? ", " : "", i,
			disk_label(&vm->disks[i], label, sizeof(label)),
			pathmap_basename(vm->disks[i].written));
	if (f)
		fclose(f);
	if (named > 1)
		cli_error("VM '%s' has %zu disks named '%s': give the index or the place of one: %s",
			  vm->name, named, what, list ? list : "");
	else
		cli_error("VM '%s' has no disk '%s': %s%s", vm->name, what,
			  vm->disk_count ? "its disks are " : "it has none", list ? list : "");
	free(list);
	return -1;
}

/* Write into the current disk DISK of a VM (as vm show names it: index, place or file name). */
static int vm_write(int argc, char **argv)
{
	struct store_args a;
	struct store *store = NULL;
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	size_t count = 0;
	struct error err;
	long index;
	int rc = begin(argc, argv, usage_write, 4, 4, &a, &store);

	if (rc == 0)
		rc = list_vms(store, &vms, &count);
	if (rc)
		goto out;
	error_clear(&err);
	if (store_pick_vm(vms, count, argv[a.first], &vm, &err) < 0) {
		rc = cli_fail(&err);
	} else if ((index = pick_disk(vm, argv[a.first + 1])) < 0) {
		/* A disk the VM lacks is a fact of the store: a failure. */
		rc = CLI_FAIL;
	} else if (!vm->disks[index].path) {
		cli_error("%s", vm->disks[index].problem);
		rc = CLI_FAIL;
	} else {
		rc = cmd_vhd_write_input(vm->disks[index].path, argv[a.first + 2],
					 argv[a.first + 3], usage_write);
	}
out:
	store_vms_free(vms, count);
	store_free(store);
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- export ---- */

/*
 * The VM, and the snapshot if any, that @what names: a VM's name or GUID,
 * or that, '/' and a snapshot's name or GUID (VM names may hold '/': each
 * place is tried), as store_pick_vm() and store_pick_snapshot() take them;
 * with @snapshot (the operand after VM), that snapshot of the VM @what.
 */
static int pick_export(const struct store_vm *vms, size_t count, const char *what,
		       const char *snapshot, const struct store_vm **vm,
		       const struct store_snapshot **snap, struct error *err)
{
	int rc = store_pick_vm(vms, count, what, vm, err);

	*snap = NULL;
	if (rc == 0 && snapshot)
		return store_pick_snapshot(*vm, snapshot, snap, err);
	if (rc != -ENOENT || snapshot)
		return rc;
	for (const char *slash = strchr(what, '/'); slash; slash = strchr(slash + 1, '/')) {
		char *name = strndup(what, (size_t)(slash - what));

		if (!name)
			return error_set(err, ENOMEM, "out of memory");
		rc = store_pick_vm(vms, count, name, vm, err);
		free(name);
		if (rc == -ENOENT)
			continue;
		return rc < 0 ? rc : store_pick_snapshot(*vm, slash + 1, snap, err);
	}
	return error_set(err, ENOENT, "no VM '%s' in the store", what);
}

/* The disks an export could not read, each said once (a plan meets a disk in each state). */
struct export_faults {
	char **said;
	size_t count;
	bool failed; /* out of memory: some may be missing */
};

static void note_fault(void *ctx, const char *what, enum export_omission how,
		       const struct error *why)
{
	struct export_faults *f = ctx;
	char **grown, *text = NULL;

	if (how != EXPORT_UNREADABLE)
		return;
	if (asprintf(&text, "disk '%s' cannot be read: %s", what, error_message(why)) < 0) {
		f->failed = true;
		return;
	}
	for (size_t i = 0; i < f->count; i++)
		if (strcmp(f->said[i], text) == 0) {
			free(text);
			return;
		}
	grown = realloc(f->said, (f->count + 1) * sizeof(*grown));
	if (!grown) {
		free(text);
		f->failed = true;
		return;
	}
	f->said = grown;
	f->said[f->count++] = text;
}

int cmd_export(int argc, char **argv)
{
	struct export_settings settings;
	struct export_node *plan = NULL;
	struct store_args a;
	struct store *store = NULL;
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	const struct store_snapshot *snap;
	struct export_faults faults = {0};
	struct export_notes notes = {note_fault, &faults};
	struct progress bar;
	size_t count = 0;
	struct error err;
	const char *dest;
	int rc = begin(argc, argv, usage_export, 2, 3, &a, &store);
	int operands = argc - a.first;

	if (rc == 0)
		rc = list_vms(store, &vms, &count);
	if (rc)
		goto out;
	dest = argv[a.first + operands - 1];
	export_settings_default(&settings);
	settings.copy_vm_storage = !a.no_storage;
	settings.copy_vm_runtime_information = !a.no_runtime;
	if (a.snapshots && strcmp(a.snapshots, "none") == 0)
		settings.copy_snapshot_configuration = EXPORT_SNAPSHOTS_NONE;
	settings.create_vm_export_subdirectory = a.subdirectory;
	error_clear(&err);
	progress_catch_signals();
	progress_begin(&bar, progress_wanted(a.progress, true));
	if (pick_export(vms, count, argv[a.first], operands == 3 ? argv[a.first + 1] : NULL, &vm,
			&snap, &err) < 0 ||
	    (snap ? export_plan_snapshot(store, vm, snap, &settings, &notes, vm->name, &plan, &err)
		  : export_plan_vm(store, vm, &settings, &notes, vm->name, &plan, &err)) < 0 ||
	    export_write(plan, dest, progress_update, &bar, &err) < 0) {
		progress_end(&bar);
		if (progress_interrupted())
			cli_error("interrupted: '%s' is not written", dest);
		rc = progress_interrupted() ? CLI_FAIL : cli_fail(&err);
		goto out;
	}
	progress_end(&bar);
	if (snap)
		printf("exported snapshot '%s' of '%s' to '%s'\n", snap->name, vm->name, dest);
	else
		printf("exported '%s' to '%s'\n", vm->name, dest);
	/* What could not be read is said after what was written: the folder is there, not whole. */
	fflush(stdout);
	for (size_t i = 0; i < faults.count; i++)
		cli_error("%s; %s", faults.said[i],
			  snap ? "it is left out" : "its files are copied as they lie");
	if (faults.failed)
		cli_error("out of memory: not every disk that cannot be read is named");
	rc = faults.count || faults.failed ? CLI_FAIL : CLI_OK;
out:
	for (size_t i = 0; i < faults.count; i++)
		free(faults.said[i]);
	free(faults.said);
	export_node_free(plan);
	store_vms_free(vms, count);
	store_free(store);
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- import-settings, compare, import ---- */

/*
 * Parse the options of an import command, open the store, resolve DIR into
 * @dir, and make the settings for importing it: the defaults, with the
 * document --settings names (if any) laid over them. Returns 0, or the exit
 * status after the fault is printed; end_import() frees what it made.
 */
/* The scope the import commands read the export folder through (one a process). */
/*
 * What the import commands read, in one process: the export folder beneath
 * it, never through a link in it; the store, its path map's folders, the
 * targets and the folders the user's own settings name, beneath each, as
 * this user; nothing else (docs/SECURITY.md). A link swapped into the folder
 * while it is read leads nowhere.
 */
#define SCOPE_MAX 64
static struct asuser_scope folder_scope = {.folder_fd = -1};
static char folder_scope_path[PATH_MAX];
static const char *scope_paths[SCOPE_MAX];
static int scope_fds[SCOPE_MAX];

/* Trust the folder @path (of the file @path when @file) for folder_scope. */
static void scope_trust(const char *path, bool file)
{
	char dir[PATH_MAX], real[PATH_MAX];
	char *copy;
	int fd;

	if (!path || !path[0] || folder_scope.trusted_count == SCOPE_MAX ||
	    (file ? fsutil_dirname(path, dir, sizeof(dir))
		  : (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir) ? -1 : 0)) < 0)
		return;
	fd = fsutil_open_trusted_folder(dir, false, real);
	if (fd < 0)
		return; /* nothing there to read */
	if (!(copy = strdup(real))) {
		close(fd);
		return;
	}
	scope_paths[folder_scope.trusted_count] = copy;
	scope_fds[folder_scope.trusted_count++] = fd;
}

/* Set folder_scope for the folder @dir, the store @store, the settings @given. */
static int scope_set(const char *dir, const struct store *store, const struct pathmap *map,
		     const struct import_settings *given, struct error *err)
{
	folder_scope.folder_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (folder_scope.folder_fd < 0)
		return error_errno(err, errno, "cannot open", dir);
	snprintf(folder_scope_path, sizeof(folder_scope_path), "%s", dir);
	folder_scope.folder = folder_scope_path;
	folder_scope.trusted = scope_paths;
	folder_scope.trusted_fds = scope_fds;
	folder_scope.others = ASUSER_OTHERS_REFUSED;
	for (size_t i = 0; store_root(store, i); i++)
		scope_trust(store_root(store, i), false);
	for (size_t i = 0; i < pathmap_count(map); i++)
		scope_trust(pathmap_target(map, i), false);
	scope_trust(given->target_vm_data_root, false);
	scope_trust(given->target_vhd_data_root, false);
	scope_trust(given->target_snapshot_data_root, false);
	scope_trust(given->source_vm_data_root, false);
	scope_trust(given->source_vhd_data_root, false);
	scope_trust(given->source_snapshot_data_root, false);
	for (size_t i = 0; i < given->resource_count; i++) {
		scope_trust(given->resources[i].source, true);
		scope_trust(given->resources[i].target, true);
	}
	asuser_scope_set(&folder_scope);
	return 0;
}

static void scope_end(void)
{
	asuser_scope_set(NULL);
	for (size_t i = 0; i < folder_scope.trusted_count; i++) {
		free((char *)scope_paths[i]);
		close(scope_fds[i]);
	}
	folder_scope.trusted_count = 0;
	if (folder_scope.folder_fd >= 0)
		close(folder_scope.folder_fd);
	folder_scope.folder_fd = -1;
}

/*
 * The target roots of the user's own document @given (not the folder's) made if
 * missing, as Import-VM makes them; before scope_set(), which trusts only folders that
 * are there. Returns 0 or -errno with @err set.
 */
static int make_targets(const struct import_settings *given, struct error *err)
{
	const char *roots[] = {given->target_vm_data_root, given->target_vhd_data_root,
			       given->target_snapshot_data_root};
	char real[PATH_MAX];

	for (size_t k = 0; k < 3; k++) {
		int fd = roots[k] && roots[k][0] == '/'
				 ? fsutil_open_trusted_folder(roots[k], true, real)
				 : 0;

		if (fd < 0)
			return error_errno(err, -fd, "cannot make the target root", roots[k]);
		if (roots[k] && roots[k][0] == '/')
			close(fd);
	}
	return 0;
}

static int begin_import(int argc, char **argv, const char *usage, bool import, struct store_args *a,
			struct store **store, char dir[PATH_MAX], struct import_settings *settings)
{
	struct import_settings given = {0};
	const char *path;
	struct error err;
	int rc = begin(argc, argv, usage, 1, 1, a, store);

	memset(settings, 0, sizeof(*settings));
	if (rc)
		return rc;
	error_clear(&err);
	if (!realpath(argv[a->first], dir)) {
		error_errno(&err, errno, "cannot resolve", argv[a->first]);
		return cli_fail(&err);
	}
	path = a->settings;
	rc = path ? import_settings_load(path, &given, &err) : 0;
	if (rc == 0 && import && given.create_copy)
		rc = make_targets(&given, &err);
	if (rc == 0)
		rc = scope_set(dir, *store, a->common.pathmap, &given, &err);
	if (rc == 0)
		rc = import_settings_layered(dir, store_root(*store, 0), &given, &path, path ? 1 : 0,
					     settings, &err);
	import_settings_free(&given);
	return rc < 0 ? cli_fail(&err) : 0;
}

static int end_import(struct store_args *a, struct store *store, struct import_settings *settings,
		      int rc)
{
	import_settings_free(settings);
	store_free(store);
	pathmap_free(a->common.pathmap);
	scope_end();
	return rc;
}

int cmd_import_settings(int argc, char **argv)
{
	struct import_settings settings;
	struct store_args a;
	struct store *store = NULL;
	struct error err;
	char dir[PATH_MAX];
	int rc = begin_import(argc, argv, usage_import_settings, false, &a, &store, dir, &settings);

	if (rc)
		return end_import(&a, store, &settings, rc);
	error_clear(&err);
	if (import_settings_write(&settings, stdout) < 0) {
		error_set(&err, EINVAL, "a path of '%s' cannot be written on one line", dir);
		rc = cli_fail(&err);
	}
	return end_import(&a, store, &settings, rc);
}

/* ---- compare ---- */

static const char *severity_name(enum import_severity severity)
{
	return severity == IMPORT_ERROR ? "error" : "warning";
}

int cmd_compare(int argc, char **argv)
{
	struct import_settings settings;
	struct import_report report;
	struct store_args a;
	struct store *store = NULL;
	struct error err;
	char dir[PATH_MAX];
	int rc = begin_import(argc, argv, usage_compare, false, &a, &store, dir, &settings);

	if (rc)
		return end_import(&a, store, &settings, rc);
	error_clear(&err);
	if (import_compare(dir, store, &settings, 0, &report, &err) < 0)
		return end_import(&a, store, &settings, cli_fail(&err));
	if (a.common.json) {
		struct jsonw j;

		jsonw_init(&j, stdout);
		jsonw_begin_object(&j, NULL);
		jsonw_bool(&j, "importable", report.errors == 0);
		jsonw_begin_array(&j, "issues");
		for (size_t i = 0; i < report.count; i++) {
			jsonw_begin_object(&j, NULL);
			jsonw_string(&j, "id", report.issues[i].id);
			jsonw_string(&j, "severity", severity_name(report.issues[i].severity));
			jsonw_string(&j, "file", or_null(report.issues[i].file));
			jsonw_string(&j, "message", report.issues[i].message);
			jsonw_end_object(&j);
		}
		jsonw_end_array(&j);
		jsonw_end_object(&j);
		jsonw_finish(&j);
	} else {
		for (size_t i = 0; i < report.count; i++)
			printf("%-7s  %-15s  %s\n", severity_name(report.issues[i].severity),
			       report.issues[i].id, report.issues[i].message);
		printf("%s: %zu error%s, %zu warning%s\n",
		       report.errors ? "the import would fail" : "the import would succeed",
		       report.errors, report.errors == 1 ? "" : "s", report.count - report.errors,
		       report.count - report.errors == 1 ? "" : "s");
	}
	rc = report.errors ? CLI_FAIL : CLI_OK;
	import_report_free(&report);
	return end_import(&a, store, &settings, rc);
}

/* ---- import ---- */

/* The bar of an import: the file being written named on it. */
static int show_progress(void *ctx, uint64_t done, uint64_t total, const char *file)
{
	progress_label(ctx, file);
	return progress_update(ctx, done, total);
}

/* What the import's recovery left alone, and why. */
static void show_notice(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "impex: warning: %s\n", message);
}

int cmd_import(int argc, char **argv)
{
	struct import_settings settings;
	struct store_args a;
	struct store *store = NULL;
	struct error err;
	char dir[PATH_MAX], id[37];
	int rc = begin_import(argc, argv, usage_import, true, &a, &store, dir, &settings);

	if (rc)
		return end_import(&a, store, &settings, rc);
	error_clear(&err);
	/* Disks copied to a folder outside the store: a folder of the store from now on. */
	if (settings.create_copy && settings.target_vhd_data_root &&
	    store_record_folder(store, settings.target_vhd_data_root, &err) < 0)
		return end_import(&a, store, &settings, cli_fail(&err));
	{
		struct progress bar;
		struct import_progress progress = {show_progress, show_notice, &bar};

		progress_catch_signals();
		progress_begin(&bar, progress_wanted(a.progress, true));
		rc = import_run(dir, store, &settings, 0, &progress, id, &err);
		progress_end(&bar);
	}
	if (rc < 0 && progress_interrupted()) {
		cli_error("interrupted: nothing imported");
		rc = CLI_FAIL;
	} else if (rc < 0) {
		rc = cli_fail(&err);
	} else {
		printf("%s  %s\n", id, settings.name);
		rc = CLI_OK;
	}
	return end_import(&a, store, &settings, rc);
}

/* ---- switch add / list ---- */

static int switch_add(int argc, char **argv)
{
	struct store_args a;
	struct store *store = NULL;
	struct error err;
	char id[37];
	int rc = begin(argc, argv, usage_switch_add, 1, 1, &a, &store);
	if (rc == 0) {
		error_clear(&err);
		rc = store_add_switch(store, argv[a.first], id, &err) < 0 ? cli_fail(&err) : CLI_OK;
		if (rc == CLI_OK)
			printf("%s  %s\n", id, argv[a.first]);
	}
	store_free(store);
	pathmap_free(a.common.pathmap);
	return rc;
}

static int switch_list(int argc, char **argv)
{
	struct store_args a;
	struct store *store = NULL;
	struct store_switch *list = NULL;
	size_t n = 0;
	struct error err;
	int rc = begin(argc, argv, usage_switch_list, 0, 0, &a, &store);
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
	store_free(store);
	pathmap_free(a.common.pathmap);
	return rc;
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

static const struct cli_command vm_commands[] = {
	{.name = "list",
	 .usage = usage_list,
	 .summary = "list the VMs, their disks and snapshots",
	 .operands = "",
	 .run = vm_list},
	{.name = "show",
	 .usage = usage_show,
	 .summary = "show a VM: disks, adapters, the snapshot tree with Now; -v: each disk's\n"
		    "file and chain; --ascii: the tree without box drawing (so too when the\n"
		    "locale is not UTF-8); exit 1 on a problem",
	 .operands = "vm",
	 .run = vm_show},
	{.name = "new",
	 .usage = usage_new,
	 .summary = "create a VM with new dynamic disks and adapters",
	 .operands = "-",
	 .run = vm_new},
	{.name = "snapshot",
	 .usage = usage_snapshot,
	 .summary = "take a snapshot: freeze each disk, go on in a new differencing disk",
	 .operands = "vm -",
	 .run = vm_snapshot},
	{.name = "apply",
	 .usage = usage_apply,
	 .summary = "apply a snapshot: its state becomes the VM's, the current one is discarded",
	 .operands = "vm snapshot",
	 .run = vm_apply},
	{.name = "write",
	 .usage = usage_write,
	 .summary = "write guest data into a current disk (DISK as vm show lists it: its\n"
		    "index, its place such as ide0:0, or its file name)",
	 .operands = "vm disk - file",
	 .run = vm_write},
	{.name = "save",
	 .usage = usage_save,
	 .summary = "give the VM a saved state (opaque .vsv and .bin files)",
	 .operands = "vm",
	 .run = vm_save},
	{.name = "delete",
	 .usage = usage_delete,
	 .summary = "delete a VM, its snapshots and saved state (--disks: its disks too)",
	 .operands = "vm",
	 .run = vm_delete},
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
	 .sub = vm_commands,
	 .section = "Store commands"},
	{.name = "switch",
	 .summary = "The host's virtual switches, as a store records them:",
	 .sub = switch_commands,
	 .section = "Store commands"},
	{.name = "export",
	 .usage = usage_export,
	 .summary = "write a VM's export folder as Export-VM lays it out, or a snapshot's as\n"
		    "a VM of its own (VM SNAPSHOT, or VM/SNAPSHOT); exit 1 if a disk cannot be\n"
		    "read",
	 .operands = "vm/snapshot dir",
	 .run = cmd_export,
	 .section = "Export and import"},
	{.name = "import-settings",
	 .usage = usage_import_settings,
	 .summary = "print the import settings for the export folder DIR, with their defaults\n"
		    "(and a document laid over them: docs/IMPORT.md)",
	 .operands = "dir",
	 .run = cmd_import_settings,
	 .section = "Export and import"},
	{.name = "compare",
	 .usage = usage_compare,
	 .summary = "what importing DIR would meet (Compare-VM): exit 0 if it would succeed, 1 if not",
	 .operands = "dir",
	 .run = cmd_compare,
	 .section = "Export and import"},
	{.name = "import",
	 .usage = usage_import,
	 .summary = "import DIR: copy on import (or registration in place), new IDs, the VM's\n"
		    "configuration written last",
	 .operands = "dir",
	 .run = cmd_import,
	 .section = "Export and import"},
	{0},
};
