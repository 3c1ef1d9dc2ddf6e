/*
 * import_settings.c - the import settings document (core/import.h): read,
 * written, defaults filled from an export folder, documents laid over them.
 */
#include "import.h"

#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "hyperv.h"
#include "pathmap.h"
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The document's largest size: a few KiB a disk at most. */
#define DOCUMENT_MAX (1 << 20)

void import_settings_free(struct import_settings *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->vm);
	free(s->source_vm_data_root);
	free(s->source_vhd_data_root);
	free(s->source_snapshot_data_root);
	free(s->target_vm_data_root);
	free(s->target_vhd_data_root);
	free(s->target_snapshot_data_root);
	free(s->security_scope);
	for (size_t i = 0; i < s->resource_count; i++) {
		free(s->resources[i].current);
		free(s->resources[i].source);
		free(s->resources[i].target);
	}
	free(s->resources);
	for (size_t i = 0; i < s->network_count; i++) {
		free(s->networks[i].source);
		free(s->networks[i].target);
	}
	free(s->networks);
	memset(s, 0, sizeof(*s));
}

/* ---- the keys of the document ---- */

enum kind { TEXT, BOOL };

struct key {
	const char *name;
	size_t offset;
	enum kind kind;
};

#define KEY(name, kind)                                                                            \
	{                                                                                          \
		#name, offsetof(struct import_settings, name), kind                                \
	}

static const struct key keys[] = {
	KEY(create_copy, BOOL),
	KEY(generate_new_id, BOOL),
	KEY(name, TEXT),
	KEY(vm, TEXT),
	KEY(source_vm_data_root, TEXT),
	KEY(source_vhd_data_root, TEXT),
	KEY(source_snapshot_data_root, TEXT),
	KEY(target_vm_data_root, TEXT),
	KEY(target_vhd_data_root, TEXT),
	KEY(target_snapshot_data_root, TEXT),
	KEY(security_scope, TEXT),
	KEY(disconnect_unknown_switches, BOOL),
};

#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))

static char **text_field(struct import_settings *s, const struct key *k)
{
	return (char **)((char *)s + k->offset);
}

static bool *bool_field(struct import_settings *s, const struct key *k)
{
	return (bool *)((char *)s + k->offset);
}

/* ---- writing ---- */

/* Whether @value can stand on one line of the document as it is. */
static bool writable(const char *value)
{
	size_t n = strlen(value);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
			return false;
	return n == 0 || (value[0] != ' ' && value[n - 1] != ' ');
}

static int put(FILE *out, const char *key, const char *value)
{
	value = value ? value : "";
	if (!writable(value))
		return -EINVAL;
	return fprintf(out, "%s =%s%s\n", key, value[0] ? " " : "", value) < 0 ? -EIO : 0;
}

int import_settings_write(const struct import_settings *s, FILE *out)
{
	int rc = 0;

	fprintf(out, "# impex import settings (Hyper-V's import setting data); docs/IMPORT.md\n");
	for (size_t i = 0; i < KEY_COUNT && rc == 0; i++) {
		const struct key *k = &keys[i];
		struct import_settings *w = (struct import_settings *)s;

		if (k->kind == BOOL)
			rc = put(out, k->name, *bool_field(w, k) ? "true" : "false");
		else
			rc = put(out, k->name, *text_field(w, k));
	}
	if (rc == 0 && s->resource_count)
		fprintf(out, "# each disk: as recorded, where it is read now, where its copy goes\n");
	for (size_t i = 0; i < s->resource_count && rc == 0; i++) {
		char key[64];

		snprintf(key, sizeof(key), "resource.%zu.current", i + 1);
		rc = put(out, key, s->resources[i].current);
		snprintf(key, sizeof(key), "resource.%zu.source", i + 1);
		if (rc == 0)
			rc = put(out, key, s->resources[i].source);
		snprintf(key, sizeof(key), "resource.%zu.target", i + 1);
		if (rc == 0)
			rc = put(out, key, s->resources[i].target);
	}
	if (rc == 0 && s->network_count)
		fprintf(out, "# each switch an adapter names, and the switch here (empty: "
			     "disconnected); a switch not here is an error\n"
			     "# unless disconnect_unknown_switches = true\n");
	for (size_t i = 0; i < s->network_count && rc == 0; i++) {
		char key[64];

		snprintf(key, sizeof(key), "network.%zu.source", i + 1);
		rc = put(out, key, s->networks[i].source);
		snprintf(key, sizeof(key), "network.%zu.target", i + 1);
		if (rc == 0)
			rc = put(out, key, s->networks[i].target);
	}
	if (rc == 0 && (fflush(out) != 0 || ferror(out)))
		rc = -EIO;
	return rc;
}

/* ---- parsing ---- */

/* Grow *@items (of @size bytes each, *@count of them) to hold index @n (0-based), zeroed. */
static int grow(void **items, size_t size, size_t *count, size_t n)
{
	void *grown;

	if (n < *count)
		return 0;
	grown = realloc(*items, (n + 1) * size);
	if (!grown)
		return -ENOMEM;
	memset((char *)grown + *count * size, 0, (n + 1 - *count) * size);
	*items = grown;
	*count = n + 1;
	return 0;
}

/* "resource.N.FIELD" or "network.N.FIELD": the field's slot, or NULL (*@bad says why). */
static char **item_field(struct import_settings *s, const char *key, const char **bad)
{
	const char *dot;
	char *end;
	unsigned long n;
	bool resource = strncmp(key, "resource.", 9) == 0;

	*bad = "unknown key";
	if (!resource && strncmp(key, "network.", 8) != 0)
		return NULL;
	key += resource ? 9 : 8;
	if (*key < '1' || *key > '9')
		return NULL;
	n = strtoul(key, &end, 10);
	if (*end != '.' || n > IMPORT_MAX_ITEMS) {
		*bad = n > IMPORT_MAX_ITEMS ? "too many items" : "unknown key";
		return NULL;
	}
	dot = end + 1;
	*bad = "out of memory";
	if (resource) {
		if (grow((void **)&s->resources, sizeof(*s->resources), &s->resource_count, n - 1) < 0)
			return NULL;
		*bad = "unknown key";
		if (strcmp(dot, "current") == 0)
			return &s->resources[n - 1].current;
		if (strcmp(dot, "source") == 0)
			return &s->resources[n - 1].source;
		if (strcmp(dot, "target") == 0)
			return &s->resources[n - 1].target;
		return NULL;
	}
	if (grow((void **)&s->networks, sizeof(*s->networks), &s->network_count, n - 1) < 0)
		return NULL;
	*bad = "unknown key";
	if (strcmp(dot, "source") == 0)
		return &s->networks[n - 1].source;
	if (strcmp(dot, "target") == 0)
		return &s->networks[n - 1].target;
	return NULL;
}

/* Set the key @key of @s from @value (line @line of @name); @given marks the scalar keys set. */
static int set_key(struct import_settings *s, const char *key, const char *value, bool *given,
		   const char *name, unsigned line, struct error *err)
{
	const char *bad = NULL;
	char **field = NULL;

	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (strcmp(keys[i].name, key) != 0)
			continue;
		if (given[i])
			return error_set(err, EINVAL, "%s, line %u: '%s' is given twice", name, line,
					 key);
		given[i] = true;
		if (keys[i].kind == BOOL) {
			if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
				return error_set(err, EINVAL,
						 "%s, line %u: '%s' is true or false, not '%s'", name,
						 line, key, value);
			*bool_field(s, &keys[i]) = strcmp(value, "true") == 0;
			if (strcmp(key, "create_copy") == 0)
				s->create_copy_given = true;
			else if (strcmp(key, "generate_new_id") == 0)
				s->generate_new_id_given = true;
			else
				s->disconnect_unknown_switches_given = true;
			return 0;
		}
		field = text_field(s, &keys[i]);
		break;
	}
	if (!field)
		field = item_field(s, key, &bad);
	if (!field)
		return error_set(err, bad[0] == 'o' ? ENOMEM : EINVAL, "%s, line %u: %s '%s'", name,
				 line, bad, key);
	if (*field)
		return error_set(err, EINVAL, "%s, line %u: '%s' is given twice", name, line, key);
	*field = strdup(value);
	return *field ? 0 : error_set(err, ENOMEM, "out of memory");
}

int import_settings_parse(const char *text, size_t len, const char *name,
			  struct import_settings *out, struct error *err)
{
	bool given[KEY_COUNT] = {0};
	const char *p = text, *end = text + len;
	unsigned line = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->create_copy = true;
	out->generate_new_id = true;
	if (memchr(text, '\0', len))
		return error_set(err, EINVAL, "%s: a NUL byte: not a settings document", name);
	while (p < end && rc == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char buf[PATH_MAX + 128], *eq, *key, *value;

		line++;
		if (n && p[n - 1] == '\r')
			n--;
		if (n >= sizeof(buf)) {
			rc = error_set(err, EINVAL, "%s, line %u: longer than %zu bytes", name, line,
				       sizeof(buf) - 1);
			break;
		}
		memcpy(buf, p, n);
		buf[n] = '\0';
		p = nl ? nl + 1 : end;
		key = buf + strspn(buf, " \t");
		if (*key == '\0' || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			rc = error_set(err, EINVAL, "%s, line %u: no '=' (want KEY = VALUE)", name,
				       line);
			break;
		}
		value = eq + 1 + strspn(eq + 1, " \t");
		while (eq > key && (eq[-1] == ' ' || eq[-1] == '\t'))
			eq--;
		*eq = '\0';
		for (size_t k = strlen(value); k && (value[k - 1] == ' ' || value[k - 1] == '\t');)
			value[--k] = '\0';
		for (const char *c = value; *c && rc == 0; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				rc = error_set(err, EINVAL, "%s, line %u: a control character", name,
					       line);
		if (rc == 0)
			rc = set_key(out, key, value, given, name, line, err);
	}
	/* Numbers need not follow each other: the items never given go. */
	for (size_t i = out->resource_count; i-- > 0;)
		if (!out->resources[i].current && !out->resources[i].source &&
		    !out->resources[i].target)
			memmove(&out->resources[i], &out->resources[i + 1],
				(--out->resource_count - i) * sizeof(*out->resources));
	for (size_t i = out->network_count; i-- > 0;)
		if (!out->networks[i].source && !out->networks[i].target)
			memmove(&out->networks[i], &out->networks[i + 1],
				(--out->network_count - i) * sizeof(*out->networks));
	/* Every item whole: a resource knows at least what it is, a network both sides. */
	for (size_t i = 0; rc == 0 && i < out->resource_count; i++)
		if (!out->resources[i].current)
			rc = error_set(err, EINVAL, "%s: resource.%zu has no 'current'", name, i + 1);
	for (size_t i = 0; rc == 0 && i < out->network_count; i++)
		if (!out->networks[i].source || !out->networks[i].target)
			rc = error_set(err, EINVAL, "%s: network.%zu needs 'source' and 'target'",
				       name, i + 1);
	if (rc < 0)
		import_settings_free(out);
	return rc;
}

int import_settings_load(const char *path, struct import_settings *out, struct error *err)
{
	struct stat st;
	int fd = fsutil_open_regular(path, &st), rc;

	memset(out, 0, sizeof(*out));
	if (fd < 0)
		return error_errno(err, -fd, "cannot open", path);
	rc = import_settings_load_fd(fd, path, out, err);
	close(fd);
	return rc;
}

int import_settings_load_fd(int fd, const char *path, struct import_settings *out,
			    struct error *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = fsutil_read_whole(fd, DOCUMENT_MAX, &text, &len);
	if (rc == -EFBIG)
		rc = error_set(err, EFBIG, "'%s' is larger than %d bytes: not a settings document",
			       path, DOCUMENT_MAX);
	else if (rc < 0)
		rc = error_errno(err, -rc, "cannot read", path);
	else
		rc = import_settings_parse(text, len, path, out, err);
	free(text);
	return rc;
}

/* ---- defaults from an export folder ---- */

static int set_text(char **field, const char *value)
{
	free(*field);
	*field = strdup(value ? value : "");
	return *field ? 0 : -ENOMEM;
}

static int join(char **field, const char *dir, const char *name)
{
	free(*field);
	*field = NULL;
	if (asprintf(field, "%s%s%s", dir, dir[0] && strcmp(dir, "/") != 0 ? "/" : "", name) < 0) {
		*field = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Add the disk @disk (as a configuration records it) unless it is there already. */
static int add_resource(struct import_settings *s, const struct store_disk *disk)
{
	struct import_resource *r;

	if (!disk->written)
		return 0;
	for (size_t i = 0; i < s->resource_count; i++)
		if (strcmp(s->resources[i].current, disk->written) == 0)
			return 0;
	if (s->resource_count == IMPORT_MAX_ITEMS ||
	    grow((void **)&s->resources, sizeof(*s->resources), &s->resource_count,
		 s->resource_count) < 0)
		return -ENOMEM;
	r = &s->resources[s->resource_count - 1];
	if (set_text(&r->current, disk->written) < 0 || set_text(&r->source, disk->path) < 0 ||
	    join(&r->target, s->target_vhd_data_root,
		 pathmap_basename(disk->path ? disk->path : disk->written)) < 0)
		return -ENOMEM;
	return 0;
}

/* Map the switch @name (an adapter's) to the switch of that name, unless it is there already. */
static int add_network(struct import_settings *s, const char *name)
{
	struct import_network *n;

	if (!name || !name[0])
		return 0;
	for (size_t i = 0; i < s->network_count; i++)
		if (strcmp(s->networks[i].source, name) == 0)
			return 0;
	if (s->network_count == IMPORT_MAX_ITEMS ||
	    grow((void **)&s->networks, sizeof(*s->networks), &s->network_count,
		 s->network_count) < 0)
		return -ENOMEM;
	n = &s->networks[s->network_count - 1];
	return set_text(&n->source, name) < 0 || set_text(&n->target, name) < 0 ? -ENOMEM : 0;
}

int import_pick_vm(const struct store_vm *vms, size_t count, const char *want, const char *dir,
		   struct error *err)
{
	if (want && want[0]) {
		for (size_t i = 0; i < count; i++)
			if (strcasecmp(vms[i].id, want) == 0)
				return (int)i;
		return error_set(err, EINVAL, "'%s' holds no VM configuration '%s' (vm = %s)", dir,
				 want, want);
	}
	if (count == 0)
		return error_set(err, ENOENT,
				 "'%s' holds no VM configuration: no .xml file in its '" HYPERV_VMS_DIR
				 "'",
				 dir);
	if (count != 1)
		return error_set(err, EINVAL,
				 "'%s' holds %zu VM configurations in '" HYPERV_VMS_DIR "', not one: "
				 "name the one to import with 'vm = GUID' in the settings",
				 dir, count);
	return 0;
}

/* import_settings_defaults() for the VM @pick of the folder (a GUID, or NULL: its only one). */
static int defaults_for(const char *dir, const char *store_root, const char *pick,
			struct import_settings *out, struct error *err)
{
	const char *roots[1] = {dir};
	struct store_options o = {.roots = roots, .root_count = 1};
	struct store *folder = NULL;
	struct store_vm *vms = NULL;
	const struct store_vm *vm;
	size_t count = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = store_open(&folder, &o, err);
	if (rc == 0)
		rc = store_list(folder, &vms, &count, err);
	if (rc < 0)
		goto out;
	rc = import_pick_vm(vms, count, pick, dir, err);
	if (rc < 0)
		goto out;
	vm = &vms[rc];
	rc = 0;
	if (vm->problem) {
		rc = error_set(err, EINVAL, "the VM of '%s' cannot be read: %s", dir, vm->problem);
		goto out;
	}
	out->create_copy = true;
	out->generate_new_id = true;
	rc = set_text(&out->name, vm->name);
	if (rc == 0)
		rc = set_text(&out->vm, vm->id);
	if (rc == 0)
		rc = set_text(&out->source_vm_data_root, dir);
	if (rc == 0)
		rc = join(&out->source_vhd_data_root, dir, HYPERV_DISKS_DIR);
	if (rc == 0)
		rc = set_text(&out->source_snapshot_data_root, dir);
	if (rc == 0)
		rc = set_text(&out->target_vm_data_root, store_root);
	if (rc == 0)
		rc = join(&out->target_vhd_data_root, store_root, HYPERV_DISKS_DIR);
	if (rc == 0)
		rc = set_text(&out->target_snapshot_data_root, store_root);
	if (rc == 0)
		rc = set_text(&out->security_scope, "");
	for (size_t i = 0; rc == 0 && i < vm->disk_count; i++)
		rc = add_resource(out, &vm->disks[i]);
	for (size_t i = 0; rc == 0 && i < vm->snapshot_count; i++)
		for (size_t k = 0; rc == 0 && k < vm->snapshots[i].disk_count; k++)
			rc = add_resource(out, &vm->snapshots[i].disks[k]);
	for (size_t i = 0; rc == 0 && i < vm->adapter_count; i++)
		rc = add_network(out, config_adapter_switch(&vm->adapters[i]));
	for (size_t i = 0; rc == 0 && i < vm->snapshot_count; i++)
		for (size_t k = 0; rc == 0 && k < vm->snapshots[i].adapter_count; k++)
			rc = add_network(out, config_adapter_switch(&vm->snapshots[i].adapters[k]));
	if (rc < 0)
		rc = error_set(err, ENOMEM, "out of memory");
out:
	store_vms_free(vms, count);
	store_free(folder);
	if (rc < 0)
		import_settings_free(out);
	return rc;
}

int import_settings_defaults(const char *dir, const char *store_root, struct import_settings *out,
			     struct error *err)
{
	return defaults_for(dir, store_root, NULL, out, err);
}

int import_settings_layered(const char *dir, const char *store_root,
			    const struct import_settings *given, const char *const *names,
			    size_t count, struct import_settings *out, struct error *err)
{
	const char *pick = NULL;
	int rc;

	for (size_t i = 0; i < count; i++)
		if (given[i].vm && given[i].vm[0])
			pick = given[i].vm;
	rc = defaults_for(dir, store_root, pick, out, err);

	for (size_t i = 0; rc == 0 && i < count; i++)
		rc = import_settings_merge(out, &given[i], names[i], err);
	if (rc < 0 && count)
		import_settings_free(out);
	return rc;
}

/* ---- merging a document over the defaults ---- */

/* *@field = a copy of @value if it is given (not NULL). */
static int take(char **field, const char *value)
{
	return value ? set_text(field, value) : 0;
}

int import_settings_merge(struct import_settings *s, const struct import_settings *g,
			  const char *name, struct error *err)
{
	int rc = 0;

	if (g->create_copy_given)
		s->create_copy = g->create_copy;
	if (g->generate_new_id_given)
		s->generate_new_id = g->generate_new_id;
	if (g->disconnect_unknown_switches_given)
		s->disconnect_unknown_switches = g->disconnect_unknown_switches;
	for (size_t i = 0; i < KEY_COUNT && rc == 0; i++)
		if (keys[i].kind == TEXT)
			rc = take(text_field(s, &keys[i]),
				  *text_field((struct import_settings *)g, &keys[i]));
	/* A new VHD root moves the disks no resource line places. */
	for (size_t i = 0; g->target_vhd_data_root && i < s->resource_count && rc == 0; i++) {
		char *base = strdup(pathmap_basename(s->resources[i].target));

		rc = base ? join(&s->resources[i].target, s->target_vhd_data_root, base) : -ENOMEM;
		free(base);
	}
	for (size_t i = 0; i < g->resource_count && rc == 0; i++) {
		struct import_resource *r = NULL;

		for (size_t k = 0; k < s->resource_count && !r; k++)
			if (strcmp(s->resources[k].current, g->resources[i].current) == 0)
				r = &s->resources[k];
		if (!r)
			return error_set(err, EINVAL,
					 "%s: resource.%zu.current '%s' is no disk of the export", name,
					 i + 1, g->resources[i].current);
		rc = take(&r->source, g->resources[i].source);
		if (rc == 0)
			rc = take(&r->target, g->resources[i].target);
	}
	for (size_t i = 0; i < g->network_count && rc == 0; i++) {
		struct import_network *n = NULL;

		for (size_t k = 0; k < s->network_count && !n; k++)
			if (strcmp(s->networks[k].source, g->networks[i].source) == 0)
				n = &s->networks[k];
		if (!n)
			return error_set(err, EINVAL,
					 "%s: network.%zu.source '%s' is no switch the VM's adapters "
					 "name",
					 name, i + 1, g->networks[i].source);
		rc = take(&n->target, g->networks[i].target);
	}
	if (rc < 0)
		return error_set(err, ENOMEM, "out of memory");
	/* Places are absolute: a relative one would depend on where the command runs. */
	for (size_t i = 0; i < KEY_COUNT; i++) {
		const char *v = keys[i].kind == TEXT && strstr(keys[i].name, "_root")
					? *text_field(s, &keys[i])
					: NULL;

		if (v && v[0] != '/')
			return error_set(err, EINVAL, "%s: %s '%s' is not an absolute path", name,
					 keys[i].name, v);
	}
	for (size_t i = 0; i < s->resource_count; i++)
		if ((s->resources[i].source && s->resources[i].source[0] &&
		     s->resources[i].source[0] != '/') ||
		    (s->resources[i].target && s->resources[i].target[0] &&
		     s->resources[i].target[0] != '/'))
			return error_set(err, EINVAL, "%s: the places of '%s' must be absolute paths",
					 name, s->resources[i].current);
	return 0;
}
