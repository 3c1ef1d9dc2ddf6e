#include "import.h"

#include "beneath.h"
#include "disk.h"

#include "chain.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "pathmap.h"
#include "store.h"
#include "vhd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
				 "'%s' holds no VM configuration: no .xml file in its 'Virtual "
				 "Machines'",
				 dir);
	if (count != 1)
		return error_set(err, EINVAL,
				 "'%s' holds %zu VM configurations in 'Virtual Machines', not one: "
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
		rc = join(&out->source_vhd_data_root, dir, "Virtual Hard Disks");
	if (rc == 0)
		rc = set_text(&out->source_snapshot_data_root, dir);
	if (rc == 0)
		rc = set_text(&out->target_vm_data_root, store_root);
	if (rc == 0)
		rc = join(&out->target_vhd_data_root, store_root, "Virtual Hard Disks");
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
		if (strcasecmp(name, "Virtual Machines") == 0 || strcasecmp(name, "Snapshots") == 0)
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
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s", want);
	for (unsigned n = 2; n < 100000; n++) {
		if (!fsutil_name_taken(path) && !(taken && taken(ctx, path)))
			return strdup(path);
		snprintf(path, sizeof(path), "%.*s (%u)%s", stem, want, n,
			 dot && dot != base ? dot : "");
	}
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
