/*
 * import_compare.c - what importing an export folder would meet (Compare-VM,
 * core/import.h): the compatibility report, where adapters connect, the
 * places an import may write and the names its copies take.
 */
#include "import.h"

#include "beneath.h"
#include "chain.h"
#include "config.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "pathbuf.h"
#include "pathmap.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* ---- the compatibility report ---- */

void import_report_free(struct import_report *r)
{
	for (size_t i = 0; r && i < r->count; i++) {
		free(r->issues[i].file);
		free(r->issues[i].message);
	}
	if (r) {
		free(r->issues);
		memset(r, 0, sizeof(*r));
	}
}

static void report(struct import_report *r, const char *id, enum import_severity severity,
		   const char *file, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report(struct import_report *r, const char *id, enum import_severity severity,
		   const char *file, const char *fmt, ...)
{
	struct import_issue *grown = realloc(r->issues, (r->count + 1) * sizeof(*grown));
	va_list ap;

	if (!grown)
		return; /* the report stays short; import_compare says so */
	r->issues = grown;
	grown += r->count;
	grown->id = id;
	grown->severity = severity;
	grown->file = strdup(file ? file : "");
	va_start(ap, fmt);
	if (vasprintf(&grown->message, fmt, ap) < 0)
		grown->message = NULL;
	va_end(ap);
	if (!grown->file || !grown->message) {
		free(grown->file);
		free(grown->message);
		return;
	}
	r->count++;
	if (severity == IMPORT_ERROR)
		r->errors++;
}

const char *import_target_refusal(const char *rel)
{
	char name[NAME_MAX + 1];

	for (const char *p = rel; *p;) {
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);

		if (n > NAME_MAX)
			return "a name longer than NAME_MAX";
		memcpy(name, p, n);
		name[n] = '\0';
		if (!beneath_plain_name(name))
			return "a name that is not plain (empty, '.', '..' or control characters)";
		if (name[0] == '.')
			return "a hidden name (the daemon's own folders and temporary names are hidden)";
		if (strcasecmp(name, HYPERV_VMS_DIR) == 0 || strcasecmp(name, HYPERV_SNAPSHOTS_DIR) == 0)
			return "the folders of configurations and saved state";
		p = *end ? end + 1 : end;
	}
	return NULL;
}

char *import_free_name(const char *want, bool (*taken)(void *ctx, const char *path), void *ctx)
{
	const char *base = pathmap_basename(want);
	const char *dot = strrchr(base, '.');
	int stem = dot && dot != base ? (int)(dot - want) : (int)strlen(want);
	struct pathbuf path = PATHBUF_INIT;

	pathbuf_adds(&path, want);
	for (unsigned n = 2; n < 100000 && !path.err; n++) {
		if (!fsutil_name_taken(path.buf) && !(taken && taken(ctx, path.buf)))
			return pathbuf_detach(&path);
		pathbuf_setf(&path, "%.*s (%u)%s", stem, want, n, dot && dot != base ? dot : "");
	}
	pathbuf_release(&path);
	return NULL;
}

/* A folder's file system and the bytes to be written on it. */
struct space {
	dev_t dev;
	uint64_t need;
	char *dir;
};

/* Bytes a file at @path really holds (a sparse copy keeps its holes). */
static uint64_t file_bytes(const char *path)
{
	struct stat st;

	return fsutil_stat_source(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* The nearest folder of @target that exists (where it would go) into @dir, its stat into @st. */
static int nearest_folder(const char *target, char dir[PATH_MAX], struct stat *st)
{
	int rc;

	snprintf(dir, PATH_MAX, "%s", target);
	while ((rc = fsutil_stat_source(dir, st)) < 0) {
		char *slash = strrchr(dir, '/');

		if (!slash || (slash == dir && !dir[1]))
			break;
		slash == dir ? (void)(dir[1] = '\0') : (void)(*slash = '\0');
	}
	return rc;
}

bool import_adoptable(const char *dir_real, const char *source, const char *target_dir)
{
	char dir[PATH_MAX];
	const char *rel;
	struct stat a, b;

	/* By name: the folder's files are named under its real path, and opened (through the
	 * thread's scope) following no link. */
	return dir_real && dir_real[0] && beneath_lexically(source, dir_real, &rel) && rel[0] &&
	       fsutil_stat_source(source, &a) == 0 && S_ISREG(a.st_mode) &&
	       nearest_folder(target_dir, dir, &b) == 0 && a.st_dev == b.st_dev;
}

/*
 * Count the copy of @source to @target on the file system where @target
 * goes: nothing when @adopt_dir (IMPORT_ADOPT: the folder's real path) is
 * given and @source is adopted rather than copied (import_adoptable()).
 */
static void need_copy(struct space **spaces, size_t *count, const char *target,
		      const char *source, const char *adopt_dir)
{
	char dir[PATH_MAX];
	struct stat st;
	struct space *grown;
	uint64_t bytes;

	if (nearest_folder(target, dir, &st) < 0)
		return;
	if (adopt_dir && import_adoptable(adopt_dir, source, dir))
		return;
	bytes = file_bytes(source);
	for (size_t i = 0; i < *count; i++)
		if ((*spaces)[i].dev == st.st_dev) {
			(*spaces)[i].need += bytes;
			return;
		}
	grown = realloc(*spaces, (*count + 1) * sizeof(*grown));
	if (!grown)
		return;
	*spaces = grown;
	grown[*count] = (struct space){st.st_dev, bytes, strdup(dir)};
	if (grown[*count].dir)
		(*count)++;
}

int import_open_folder(const char *dir, const struct import_settings *s, struct store **out,
		       struct error *err)
{
	const char *roots[1] = {dir};
	size_t n = 0, count = s ? s->resource_count : 0;
	char **extra = calloc(count ? count : 1, sizeof(*extra));
	struct store_options o = {.roots = roots, .root_count = 1};
	int rc;

	if (!extra)
		return error_set(err, ENOMEM, "out of memory");
	/* A disk the settings read from elsewhere: its folder (its chain's) may be read. */
	for (size_t i = 0; i < count; i++) {
		char folder[PATH_MAX];

		if (s->resources[i].source && s->resources[i].source[0] &&
		    fsutil_dirname(s->resources[i].source, folder, sizeof(folder)) == 0 &&
		    (extra[n] = strdup(folder)))
			n++;
	}
	o.extra = (const char *const *)extra;
	o.extra_count = n;
	rc = store_open(out, &o, err);
	for (size_t i = 0; i < n; i++)
		free(extra[i]);
	free(extra);
	return rc;
}

/*
 * The saved-state folder "<GUID>/" next to the configuration @config, if
 * it holds either, must hold both "<GUID>.vsv" and "<GUID>.bin": the store
 * takes a folder with a .vsv for saved state, so a copy cut short (rsync
 * sends the .bin first) would otherwise be imported without its memory,
 * or without its state at all.
 */
static void check_state(struct import_report *out, const char *config, const char *id)
{
	static const char *const parts[] = {".vsv", ".bin"};
	char folder[PATH_MAX], name[64];
	bool have[2] = {false, false};
	struct stat st;
	DIR *d;

	if (fsutil_dirname(config, folder, sizeof(folder)) < 0 ||
	    strlen(folder) + 40 >= sizeof(folder))
		return;
	strcat(folder, "/");
	strcat(folder, id);
	if (fsutil_stat_source(folder, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    !(d = fsutil_opendir(folder)))
		return;
	for (struct dirent *e; (e = readdir(d));)
		for (int i = 0; i < 2; i++) {
			snprintf(name, sizeof(name), "%s%s", id, parts[i]);
			have[i] = have[i] || strcasecmp(e->d_name, name) == 0;
		}
	closedir(d);
	for (int i = 0; i < 2; i++)
		if (!have[i] && have[!i])
			report(out, "state-incomplete", IMPORT_ERROR, folder,
			       "the saved state in '%s' has '%s%s' but no '%s%s': a copy not whole "
			       "(the .vsv and the .bin go together)",
			       folder, id, parts[!i], id, parts[i]);
}

/* ---- switches ---- */

enum import_connection import_adapter_target(const struct import_settings *s,
					     const struct config_adapter *a,
					     const struct store_switch *switches, size_t count,
					     const struct store_switch **to, const char **target,
					     size_t *line)
{
	const char *own = config_adapter_switch(a);

	*to = NULL;
	*target = own;
	*line = 0;
	if (!own[0])
		return IMPORT_UNCONNECTED;
	for (size_t i = 0; i < s->network_count && !*line; i++)
		if (s->networks[i].source && strcmp(s->networks[i].source, own) == 0) {
			*target = s->networks[i].target ? s->networks[i].target : "";
			*line = i + 1;
		}
	if (!(*target)[0])
		return IMPORT_DISCONNECT;
	*to = store_find_switch(switches, count, *target);
	if (*to)
		return IMPORT_CONNECT;
	return s->disconnect_unknown_switches && strcmp(*target, own) == 0 ? IMPORT_DROPPED
									   : IMPORT_UNKNOWN;
}

/* The adapters of configuration @k of @vm: 0 the VM's, then its snapshots'. */
static const struct config_adapter *adapters_of(const struct store_vm *vm, size_t k, size_t *count,
						const char **file)
{
	*count = k ? vm->snapshots[k - 1].adapter_count : vm->adapter_count;
	*file = k ? vm->snapshots[k - 1].config_path : vm->config_path;
	return k ? vm->snapshots[k - 1].adapters : vm->adapters;
}

/* Whether a configuration before @k of @vm has adapter @a as it is (its node, switch, fault). */
static bool adapter_seen(const struct store_vm *vm, size_t k, const struct config_adapter *a)
{
	for (size_t j = 0; j < k; j++) {
		const struct config_adapter *list;
		const char *file;
		size_t n;

		list = adapters_of(vm, j, &n, &file);
		for (size_t i = 0; i < n; i++) {
			const char *theirs = config_adapter_switch(&list[i]);

			if (strcmp(list[i].key, a->key) == 0 &&
			    strcmp(theirs, config_adapter_switch(a)) == 0 &&
			    !list[i].problem == !a->problem &&
			    (!a->problem || strcmp(list[i].problem, a->problem) == 0))
				return true;
		}
	}
	return false;
}

/*
 * Each adapter of the VM and its snapshots (each once, as the VM's
 * configuration has it when it has it) connected to a switch of this host,
 * as Compare-VM wants: a switch the host lacks is an error to resolve (map
 * it, disconnect it), unless disconnect_unknown_switches.
 */
static void check_adapters(struct import_report *out, const struct import_settings *s,
			   const struct store_vm *vm, const struct store_switch *switches,
			   size_t switch_count)
{
	for (size_t k = 0; k <= vm->snapshot_count; k++) {
		const struct config_adapter *list;
		const char *file;
		size_t n;

		list = adapters_of(vm, k, &n, &file);
		for (size_t i = 0; i < n; i++) {
			const struct config_adapter *a = &list[i];
			const struct store_switch *to;
			const char *target, *own = config_adapter_switch(a);
			char where[48] = "network.N.target";
			enum import_connection how;
			size_t line;

			if (adapter_seen(vm, k, a))
				continue;
			if (a->problem)
				report(out, "adapter-inconsistent", IMPORT_WARNING, file,
				       "adapter '%s' (%s): %s: the import writes its switch fields "
				       "anew, all naming one switch or none",
				       a->friendly_name, a->mac, a->problem);
			how = import_adapter_target(s, a, switches, switch_count, &to, &target,
						    &line);
			if (line)
				snprintf(where, sizeof(where), "network.%zu.target", line);
			switch (how) {
			case IMPORT_UNKNOWN:
				if (strcmp(target, own) != 0)
					report(out, "switch-unknown", IMPORT_ERROR, file,
					       "adapter '%s' (%s): %s '%s' is no switch here (its "
					       "switch in the export: '%s')",
					       a->friendly_name, a->mac, where, target, own);
				else
					report(out, "switch-unknown", IMPORT_ERROR, file,
					       "adapter '%s' (%s) is connected to switch '%s', "
					       "which does not exist here: map it (%s = SWITCH), "
					       "disconnect it (%s =) or set "
					       "disconnect_unknown_switches = true",
					       a->friendly_name, a->mac, own, where, where);
				break;
			case IMPORT_DROPPED:
				report(out, "switch-unknown", IMPORT_WARNING, file,
				       "adapter '%s' (%s) is connected to switch '%s', which does "
				       "not exist here: it will be disconnected "
				       "(disconnect_unknown_switches = true)",
				       a->friendly_name, a->mac, own);
				break;
			default:
				break;
			}
		}
	}
}

/*
 * Whether the file name of @path holds the GUID of @vm or of one of its
 * snapshots (any case): an import with new IDs names the copy after the
 * new GUID instead (core/import_run.c), a name no file has.
 */
static bool names_an_id(const struct store_vm *vm, const char *path)
{
	const char *name = pathmap_basename(path);
	bool found = strcasestr(name, vm->id) != NULL;

	for (size_t i = 0; i < vm->snapshot_count && !found; i++)
		found = strcasestr(name, vm->snapshots[i].id) != NULL;
	return found;
}

int import_compare(const char *dir, struct store *store, const struct import_settings *s,
		   unsigned flags, struct import_report *out, struct error *err)
{
	struct store *folder = NULL;
	struct store_vm *ours = NULL, *theirs = NULL;
	struct store_switch *switches = NULL;
	struct space *spaces = NULL;
	char **counted = NULL; /* parents counted once */
	size_t our_count = 0, their_count = 0, switch_count = 0, space_count = 0, counted_count = 0;
	const struct store_vm *vm;
	char adopt_real[PATH_MAX];
	const char *adopt_dir = flags & IMPORT_ADOPT ? adopt_real : NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	/* The folder's name, compared with its files' names. */
	if ((flags & IMPORT_ADOPT) &&
	    (rc = fsutil_real_path_source(dir, adopt_real, sizeof(adopt_real))) < 0)
		return error_errno(err, -rc, "cannot resolve", dir);
	rc = import_open_folder(dir, s, &folder, err);
	if (rc == 0)
		rc = store_list(folder, &ours, &our_count, err);
	if (rc == 0)
		rc = store_list(store, &theirs, &their_count, err);
	if (rc == 0)
		rc = store_switches(store, &switches, &switch_count, err);
	if (rc < 0)
		goto out;
	rc = import_pick_vm(ours, our_count, s->vm, dir, err);
	if (rc < 0)
		goto out;
	vm = &ours[rc];
	rc = 0;
	if (vm->problem)
		report(out, "config-damaged", IMPORT_ERROR, vm->config_path, "%s", vm->problem);
	/* Disks: each where the settings read it, whole, with its chain. */
	for (size_t i = 0; i < s->resource_count; i++) {
		const struct import_resource *r = &s->resources[i];
		struct store_disk disk = {.path = r->source};
		struct chain *chain = NULL;
		struct error e;

		if (!r->source || !r->source[0] || !fsutil_name_taken(r->source)) {
			report(out, "disk-missing", IMPORT_ERROR, r->current,
			       "disk '%s' is not found%s%s: give its place as resource.%zu.source",
			       r->current, r->source && r->source[0] ? " at " : "",
			       r->source ? r->source : "", i + 1);
			continue;
		}
		error_clear(&e);
		if (store_open_chain(folder, &disk, &chain, &e) < 0)
			report(out, e.code == ENOENT || e.code == EACCES ? "chain-broken" : "disk-damaged",
			       IMPORT_ERROR, r->source, "%s", error_message(&e));
		/* The parents are copied too (each once), to the VHD root. */
		for (unsigned level = 1; chain && s->create_copy && level < chain_depth(chain);
		     level++) {
			const char *parent = disk_path(chain_level(chain, level));
			bool seen = false;

			for (size_t k = 0; k < counted_count && !seen; k++)
				seen = strcmp(counted[k], parent) == 0;
			if (seen)
				continue;
			char **grown = realloc(counted, (counted_count + 1) * sizeof(*grown));

			if (grown && (grown[counted_count] = strdup(parent))) {
				counted = grown;
				counted_count++;
				need_copy(&spaces, &space_count, s->target_vhd_data_root, parent,
					  adopt_dir);
			} else if (grown) {
				counted = grown;
			}
		}
		chain_close(chain);
		if (s->create_copy && r->target && r->target[0]) {
			if (fsutil_name_taken(r->target) &&
			    !(s->generate_new_id && names_an_id(vm, r->target))) {
				char *renamed = import_free_name(r->target, NULL, NULL);

				report(out, "target-exists", IMPORT_WARNING, r->target,
				       "'%s' exists: the copy will be '%s'", r->target,
				       renamed ? renamed : "(no free name)");
				free(renamed);
			}
			need_copy(&spaces, &space_count, r->target, r->source, adopt_dir);
		}
	}
	/* Saved state is whole: its .vsv and its .bin together, or neither. */
	for (size_t k = 0; k <= vm->snapshot_count; k++)
		check_state(out, k == 0 ? vm->config_path : vm->snapshots[k - 1].config_path,
			    k == 0 ? vm->id : vm->snapshots[k - 1].id);
	/* Saved state is copied in any case: the VM's and each snapshot's. */
	for (size_t k = 0; k <= vm->snapshot_count; k++) {
		const char *from = k == 0 ? vm->saved_state : vm->snapshots[k - 1].saved_state;
		char **names = NULL, path[PATH_MAX];
		size_t count = 0;

		if (from && fsutil_list_names(from, NULL, &names, &count) == 0)
			for (size_t i = 0; i < count; i++) {
				snprintf(path, sizeof(path), "%s/%s", from, names[i]);
				need_copy(&spaces, &space_count,
					  k == 0 ? s->target_vm_data_root
						 : s->target_snapshot_data_root,
					  path, adopt_dir);
			}
		fsutil_names_free(names, count);
	}
	/* The configurations must land in roots of the store, or the VM would not be listed. */
	for (size_t k = 0; k < 2; k++) {
		const char *want = k == 0 ? s->target_vm_data_root : s->target_snapshot_data_root;
		char real[PATH_MAX];
		bool known = want && fsutil_real_path_source(want, real, sizeof(real)) == 0;
		bool found = false;

		for (size_t i = 0; known && store_root(store, i) && !found; i++)
			found = strcmp(store_root(store, i), real) == 0;
		if (want && !found)
			report(out, "target-not-in-store", IMPORT_ERROR, want,
			       "%s '%s' is no root of the store: the VM would not be listed (give "
			       "it with --store)",
			       k == 0 ? "target_vm_data_root" : "target_snapshot_data_root", want);
	}
	/* The name the VM gets must be one a VM can have. */
	if (s->name) {
		struct error e;

		error_clear(&e);
		if (store_check_name(s->name, "VM", &e) < 0)
			report(out, "name-invalid", IMPORT_ERROR, vm->config_path, "%s",
			       error_message(&e));
	}
	for (size_t i = 0; i < space_count; i++) {
		struct statvfs fs;

		if (fsutil_statvfs(spaces[i].dir, &fs) == 0 &&
		    (uint64_t)fs.f_bavail * fs.f_frsize < spaces[i].need)
			report(out, "space-short", IMPORT_ERROR, spaces[i].dir,
			       "the copies need %llu bytes on the file system of '%s', which has "
			       "%llu free",
			       (unsigned long long)spaces[i].need, spaces[i].dir,
			       (unsigned long long)fs.f_bavail * fs.f_frsize);
	}
	check_adapters(out, s, vm, switches, switch_count);
	/* The store's VMs: the same GUID, the same name, the same static MAC. */
	for (size_t k = 0; k < their_count; k++) {
		const struct store_vm *other = &theirs[k];

		if (strcasecmp(other->id, vm->id) == 0 && !s->generate_new_id)
			report(out, "id-exists", IMPORT_ERROR, vm->config_path,
			       "VM %s is in the store already ('%s'): import with "
			       "generate_new_id = true",
			       vm->id, other->name);
		if (s->name && strcmp(other->name, s->name) == 0)
			report(out, "name-clash", IMPORT_WARNING, vm->config_path,
			       "the store has a VM named '%s' already (%s): both will be listed",
			       s->name, other->id);
		for (size_t a = 0; a < vm->adapter_count; a++)
			for (size_t b = 0; b < other->adapter_count; b++)
				if (vm->adapters[a].static_mac && vm->adapters[a].mac &&
				    other->adapters[b].mac &&
				    strcasecmp(vm->adapters[a].mac, other->adapters[b].mac) == 0)
					report(out, "mac-clash", IMPORT_WARNING, vm->config_path,
					       "static MAC address %s is used by VM '%s' already",
					       vm->adapters[a].mac, other->name);
	}
out:
	for (size_t i = 0; i < counted_count; i++)
		free(counted[i]);
	free(counted);
	for (size_t i = 0; i < space_count; i++)
		free(spaces[i].dir);
	free(spaces);
	store_switches_free(switches, switch_count);
	store_vms_free(ours, our_count);
	store_vms_free(theirs, their_count);
	store_free(folder);
	if (rc < 0)
		import_report_free(out);
	return rc;
}
