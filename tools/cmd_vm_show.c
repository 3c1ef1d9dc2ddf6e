/*
 * impex vm list and vm show: the VMs of a store as a table, as text (the
 * disks, the adapters and the snapshot tree as Hyper-V Manager draws it) or
 * as JSON (docs/JSON.md).
 */
#include "cmd_vm_show.h"

#include "chain.h"
#include "cli.h"
#include "cmd_store.h"
#include "disk.h"
#include "error.h"
#include "json.h"
#include "store.h"
#include "vhd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char cmd_vm_list_usage[] = "impex vm list [STORE OPTIONS] [--json]";
const char cmd_vm_show_usage[] =
	"impex vm show [STORE OPTIONS] [--json] [-v|--verbose] [--ascii] NAME|GUID";

/* The time @t (Unix seconds) as vm show writes it into @buf, or "" when there is none (0). */
static const char *time_text(int64_t t, char *buf, size_t cap)
{
	return t ? vhd_format_utc((time_t)t, buf, cap) : "";
}

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
		jsonw_string(j, "label", cmd_store_disk_label(&disks[i], label, sizeof(label)));
		jsonw_string(j, "bus", cmd_store_bus_name(disks[i].bus));
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
	jsonw_string(j, "id", cmd_store_or_null(vm->id));
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
	jsonw_string(j, "current_snapshot", cmd_store_or_null(vm->current_snapshot_id));
	jsonw_string(j, "current_snapshot_name", current ? current->name : NULL);
	jsonw_uint(j, "snapshot_count", vm->snapshot_count);
	failed = json_disks(j, store, vm->disks, vm->disk_count);
	jsonw_begin_array(j, "adapters");
	for (size_t i = 0; i < vm->adapter_count; i++) {
		jsonw_begin_object(j, NULL);
		jsonw_string(j, "name", cmd_store_or_null(vm->adapters[i].friendly_name));
		jsonw_string(j, "mac", cmd_store_or_null(vm->adapters[i].mac));
		jsonw_bool(j, "static_mac", vm->adapters[i].static_mac);
		jsonw_string(j, "switch_id", cmd_store_or_null(vm->adapters[i].switch_id));
		jsonw_string(j, "switch", cmd_store_or_null(vm->adapters[i].switch_name));
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
		jsonw_string(j, "parent", cmd_store_or_null(s->parent_id));
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

int cmd_vm_list(int argc, char **argv)
{
	struct cmd_store_args a;
	struct store *store = NULL;
	struct store_vm *vms = NULL;
	size_t count = 0;
	int rc = cmd_store_begin(argc, argv, cmd_vm_list_usage, 0, 0, &a, &store);
	if (rc)
		goto out;
	rc = cmd_store_list_vms(store, &vms, &count);
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
	return cmd_store_end(&a, store, rc);
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
		printf("%s%ld  %s  %s\n", indent, index,
		       cmd_store_disk_label(d, label, sizeof(label)), d->written);
	else
		printf("%s%s  %s\n", indent, cmd_store_disk_label(d, label, sizeof(label)),
		       d->written);
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

int cmd_vm_show(int argc, char **argv)
{
	struct cmd_store_args a;
	struct store *store = NULL;
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	size_t count = 0;
	char when[40];
	bool failed = false;
	int rc = cmd_store_begin(argc, argv, cmd_vm_show_usage, 1, 1, &a, &store);

	if (rc)
		goto out;
	rc = cmd_store_pick_vm(store, argv[a.first], &vms, &count, &vm);
	if (rc)
		goto out;
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
	return cmd_store_end(&a, store, rc);
}
