/*
 * The Hyper-V view of a configuration: identity, drives, network adapters.
 * Built on the path access of config.c; no libxml2 here.
 */
#include "config.h"

#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Windows FILETIME: 100 ns ticks since 1601-01-01. */
#define FILETIME_UNIX_EPOCH 116444736000000000LL

/* A new copy of the leaf at @path, or of "" when it is missing. NULL on ENOMEM. */
static char *get_or_empty(const struct config *c, const char *path)
{
	char *value = NULL;

	if (config_get(c, path, &value, NULL) < 0)
		value = strdup("");
	return value;
}

int config_identity(const struct config *c, struct config_identity *id, struct error *err)
{
	char *global = NULL;
	int64_t subtype = 0;
	uint8_t *bytes = NULL;
	size_t len = 0;

	memset(id, 0, sizeof(*id));
	id->version = -1;
	id->generation = 1;
	if (config_get(c, "properties/global_id", &global, NULL) < 0)
		return error_set(err, EINVAL, "'%s' has no properties/global_id", config_name(c));
	if (!config_guid_valid(global)) {
		int rc = error_set(err, EINVAL, "'%s' has a global_id that is not a GUID: '%.80s'",
				   config_name(c), global);

		free(global);
		return rc;
	}
	for (int i = 0; i < 36; i++)
		id->id[i] = (char)toupper((unsigned char)global[i]);
	free(global);
	id->name = get_or_empty(c, "properties/name");
	id->type_id = get_or_empty(c, "properties/type_id");
	if (!id->name || !id->type_id) {
		config_identity_release(id);
		return error_set(err, ENOMEM, "out of memory");
	}
	config_get_int(c, "properties/version", &id->version);
	if (config_get_int(c, "properties/subtype", &subtype) == 0 && subtype == 1)
		id->generation = 2;
	if (config_get_bytes(c, "properties/creation_time", &bytes, &len) == 0 && len == 8) {
		uint64_t ticks = 0;

		for (int i = 7; i >= 0; i--)
			ticks = ticks << 8 | bytes[i];
		if (ticks > (uint64_t)FILETIME_UNIX_EPOCH && ticks <= INT64_MAX) {
			id->creation_time = (int64_t)(ticks - FILETIME_UNIX_EPOCH) / 10000000;
			id->creation_ticks = (uint32_t)((ticks - FILETIME_UNIX_EPOCH) % 10000000);
		}
	}
	free(bytes);
	return 0;
}

void config_identity_release(struct config_identity *id)
{
	free(id->name);
	free(id->type_id);
	id->name = id->type_id = NULL;
}

/* "controller3" -> 3; -1 when @name is not @prefix followed by digits. */
static int numbered(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	char *end;
	long v;

	if (strncmp(name, prefix, n) != 0 || !isdigit((unsigned char)name[n]))
		return -1;
	v = strtol(name + n, &end, 10);
	return *end || v > 255 ? -1 : (int)v;
}

/* The manifest's device type of node @node ("_<instance>_"), or "". */
static char *device_type_of(const struct config *c, const char *node)
{
	char **vdevs = NULL;
	size_t count = 0;
	char *type = NULL;

	if (config_children(c, "manifest", &vdevs, &count) < 0)
		return strdup("");
	/* Hyper-V's manifests list tens of devices: a bounded scan keeps a
	 * hostile one from making each drive's lookup costly. */
	for (size_t i = 0; i < count && i < 1024 && !type; i++) {
		char path[256];
		char *instance = NULL;

		snprintf(path, sizeof(path), "manifest/%s/instance", vdevs[i]);
		if (config_get(c, path, &instance, NULL) < 0)
			continue;
		if (strlen(node) == strlen(instance) + 2 &&
		    strncasecmp(node + 1, instance, strlen(instance)) == 0) {
			snprintf(path, sizeof(path), "manifest/%s/device", vdevs[i]);
			type = get_or_empty(c, path);
		}
		free(instance);
	}
	config_names_free(vdevs, count);
	return type ? type : strdup("");
}

static enum config_bus bus_of(const struct config *c, const char *node)
{
	char *type;
	enum config_bus bus;

	/* The IDE controller's node carries its device type's GUID. */
	if (strncasecmp(node + 1, CONFIG_IDE_TYPE, 36) == 0)
		return CONFIG_BUS_IDE;
	type = device_type_of(c, node);
	bus = type && strcasecmp(type, CONFIG_IDE_TYPE) == 0 ? CONFIG_BUS_IDE : CONFIG_BUS_SCSI;
	free(type);
	return bus;
}

void config_drives_free(struct config_drive *drives, size_t count)
{
	if (!drives)
		return;
	for (size_t i = 0; i < count; i++) {
		free(drives[i].key);
		free(drives[i].type);
		free(drives[i].pathname);
	}
	free(drives);
}

/* Append the drives of controller @ctl (number @n) of node @node. */
static int add_drives(const struct config *c, const char *node, const char *ctl, int n,
		      struct config_drive **drives, size_t *count)
{
	char path[512], **names = NULL;
	size_t k = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", node, ctl);
	rc = config_children(c, path, &names, &k);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < k && rc == 0; i++) {
		int m = numbered(names[i], "drive");
		struct config_drive *grown, *d;

		if (m < 0)
			continue;
		grown = realloc(*drives, (*count + 1) * sizeof(**drives));
		if (!grown) {
			rc = -ENOMEM;
			break;
		}
		*drives = grown;
		d = &grown[*count];
		memset(d, 0, sizeof(*d));
		(*count)++;
		d->bus = bus_of(c, node);
		d->controller = (unsigned)n;
		d->drive = (unsigned)m;
		if (asprintf(&d->key, "%s/%s/%s", node, ctl, names[i]) < 0) {
			d->key = NULL;
			rc = -ENOMEM;
			break;
		}
		snprintf(path, sizeof(path), "%s/type", d->key);
		d->type = get_or_empty(c, path);
		snprintf(path, sizeof(path), "%s/pathname", d->key);
		d->pathname = get_or_empty(c, path);
		if (!d->type || !d->pathname)
			rc = -ENOMEM;
	}
	config_names_free(names, k);
	return rc;
}

int config_drives(const struct config *c, struct config_drive **drives, size_t *count,
		  struct error *err)
{
	char **nodes = NULL, **ctls = NULL;
	size_t n_nodes = 0, n_ctls = 0;
	int rc;

	*drives = NULL;
	*count = 0;
	rc = config_children(c, "", &nodes, &n_nodes);
	for (size_t i = 0; i < n_nodes && rc == 0; i++) {
		if (nodes[i][0] != '_')
			continue;
		rc = config_children(c, nodes[i], &ctls, &n_ctls);
		for (size_t j = 0; j < n_ctls && rc == 0; j++) {
			int n = numbered(ctls[j], "controller");

			if (n >= 0)
				rc = add_drives(c, nodes[i], ctls[j], n, drives, count);
		}
		config_names_free(ctls, n_ctls);
		ctls = NULL;
		n_ctls = 0;
	}
	config_names_free(nodes, n_nodes);
	if (rc < 0) {
		config_drives_free(*drives, *count);
		*drives = NULL;
		*count = 0;
		return error_set(err, -rc, "cannot list the drives of '%s': %s", config_name(c),
				 strerror(-rc));
	}
	return 0;
}

void config_adapters_free(struct config_adapter *adapters, size_t count)
{
	if (!adapters)
		return;
	for (size_t i = 0; i < count; i++) {
		free(adapters[i].key);
		free(adapters[i].friendly_name);
		free(adapters[i].mac);
		free(adapters[i].switch_id);
		free(adapters[i].switch_name);
		free(adapters[i].switch_resource);
		free(adapters[i].port_name);
		free(adapters[i].problem);
	}
	free(adapters);
}

const char *config_adapter_switch(const struct config_adapter *a)
{
	if (a->switch_name && a->switch_name[0])
		return a->switch_name;
	if (a->switch_id && a->switch_id[0])
		return a->switch_id;
	return a->switch_resource ? a->switch_resource : "";
}

#define RESOURCE "Connection/HostResources/HostResource"

/*
 * get_or_empty() of an adapter's field, "" also when it holds only a line end
 * and spaces: Hyper-V writes an empty string as a line end followed by the
 * closing tag's indentation (an unconnected adapter's switch fields).
 */
static char *field_or_empty(const struct config *c, const char *path)
{
	char *value = get_or_empty(c, path);

	if (value && strchr(value, '\n') && !value[strspn(value, " \t\r\n")])
		value[0] = '\0';
	return value;
}

/*
 * How the switch fields of @a disagree, as a new sentence, or NULL when they
 * agree. @resources: whether it has a Connection/HostResources container (an
 * adapter without one says nothing there); @said: whether IsConnected is given.
 */
static char *adapter_problem(const struct config_adapter *a, bool resources, bool said)
{
	const char *id = a->switch_id, *res = a->switch_resource, *name = a->switch_name;
	bool any = id[0] || res[0] || name[0];
	char *text = NULL;
	int n = 0;

	if (id[0] && res[0] && strcasecmp(id, res) != 0)
		n = asprintf(&text, "it names switch '%s' in SwitchName but '%s' in " RESOURCE, id,
			     res);
	else if (resources && !id[0] != !res[0])
		n = asprintf(&text, "it names switch '%s' in %s but none in %s", id[0] ? id : res,
			     id[0] ? "SwitchName" : RESOURCE, id[0] ? RESOURCE : "SwitchName");
	else if (name[0] && !id[0] && !res[0])
		n = asprintf(&text,
			     "it names switch '%s' in Connection/AltSwitchName but no switch GUID "
			     "(SwitchName)",
			     name);
	else if (said && a->connected && !any)
		n = asprintf(&text, "IsConnected is True but it names no switch");
	else if (said && !a->connected && any)
		n = asprintf(&text, "it names switch '%s' but IsConnected is False",
			     config_adapter_switch(a));
	return n < 0 ? NULL : text;
}

int config_adapters(const struct config *c, struct config_adapter **adapters, size_t *count,
		    struct error *err)
{
	char **nodes = NULL;
	size_t n_nodes = 0;
	int rc;

	*adapters = NULL;
	*count = 0;
	rc = config_children(c, "", &nodes, &n_nodes);
	for (size_t i = 0; i < n_nodes && rc == 0; i++) {
		char path[512], *mac = NULL, **names = NULL;
		struct config_adapter *grown, *a;
		size_t n_names = 0;
		bool flag = false, resources, said;

		snprintf(path, sizeof(path), "%s/MacAddress", nodes[i]);
		if (nodes[i][0] != '_' || config_get(c, path, &mac, NULL) < 0)
			continue;
		grown = realloc(*adapters, (*count + 1) * sizeof(**adapters));
		if (!grown) {
			free(mac);
			rc = -ENOMEM;
			break;
		}
		*adapters = grown;
		a = &grown[(*count)++];
		memset(a, 0, sizeof(*a));
		a->mac = mac;
		a->key = strdup(nodes[i]);
		snprintf(path, sizeof(path), "%s/FriendlyName", nodes[i]);
		a->friendly_name = field_or_empty(c, path);
		snprintf(path, sizeof(path), "%s/SwitchName", nodes[i]);
		a->switch_id = field_or_empty(c, path);
		snprintf(path, sizeof(path), "%s/Connection/AltSwitchName", nodes[i]);
		a->switch_name = field_or_empty(c, path);
		snprintf(path, sizeof(path), "%s/" RESOURCE, nodes[i]);
		a->switch_resource = field_or_empty(c, path);
		snprintf(path, sizeof(path), "%s/PortName", nodes[i]);
		a->port_name = field_or_empty(c, path);
		snprintf(path, sizeof(path), "%s/MacAddressIsStatic", nodes[i]);
		a->static_mac = config_get_bool(c, path, &flag) == 0 && flag;
		if (!a->key || !a->friendly_name || !a->switch_id || !a->switch_name ||
		    !a->switch_resource || !a->port_name) {
			rc = -ENOMEM;
			break;
		}
		snprintf(path, sizeof(path), "%s/IsConnected", nodes[i]);
		said = config_get_bool(c, path, &flag) == 0;
		a->connected = said ? flag : config_adapter_switch(a)[0] != '\0';
		snprintf(path, sizeof(path), "%s/Connection/HostResources", nodes[i]);
		resources = config_children(c, path, &names, &n_names) == 0;
		config_names_free(names, n_names);
		a->problem = adapter_problem(a, resources, said);
	}
	config_names_free(nodes, n_nodes);
	if (rc < 0) {
		config_adapters_free(*adapters, *count);
		*adapters = NULL;
		*count = 0;
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* Remove every HostResource of the adapter @key, unless there are at most @keep. */
static int drop_resources(struct config *c, const char *key, size_t keep)
{
	char path[512], **names = NULL;
	size_t count = 0, found = 0;

	snprintf(path, sizeof(path), "%s/Connection/HostResources", key);
	if (config_children(c, path, &names, &count) < 0)
		return 0; /* none */
	for (size_t i = 0; i < count; i++)
		found += strcmp(names[i], "HostResource") == 0;
	config_names_free(names, count);
	if (found <= keep)
		return 0;
	snprintf(path, sizeof(path), "%s/" RESOURCE, key);
	for (size_t i = 0; i < found; i++)
		if (config_remove(c, path) < 0)
			return -EIO;
	return 0;
}

int config_set_adapter_switch(struct config *c, const char *key, const char *switch_id,
			      const char *switch_name, const char *port_name, struct error *err)
{
	bool connect = switch_id && switch_id[0];
	char path[512];
	int rc;

	snprintf(path, sizeof(path), "%s/SwitchName", key);
	rc = config_set(c, path, "string", connect ? switch_id : "", err);
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/Connection/AltSwitchName", key);
		rc = config_set(c, path, "string", connect ? switch_name : "", err);
	}
	/* One HostResource naming the switch, or none: several would name several switches. */
	if (rc == 0 && drop_resources(c, key, connect ? 1 : 0) < 0)
		rc = error_set(err, EIO, "cannot empty the HostResources of adapter '%s' in '%s'",
			       key, config_name(c));
	if (rc == 0 && connect) {
		snprintf(path, sizeof(path), "%s/" RESOURCE, key);
		rc = config_set(c, path, "string", switch_id, err);
	}
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/IsConnected", key);
		rc = config_set(c, path, "bool", connect ? "True" : "False", err);
	}
	if (rc == 0 && (!connect || port_name)) {
		snprintf(path, sizeof(path), "%s/PortName", key);
		rc = config_set(c, path, "string", connect ? port_name : "", err);
	}
	return rc;
}

int config_set_filetime(struct config *c, const char *path, time_t when, struct error *err)
{
	const struct timespec at = {when, 0};

	return config_set_filetime_ns(c, path, &at, err);
}

int config_set_filetime_ns(struct config *c, const char *path, const struct timespec *when,
			   struct error *err)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int64_t ticks =
		(int64_t)when->tv_sec * 10000000 + when->tv_nsec / 100 + FILETIME_UNIX_EPOCH;
	uint8_t b[9] = {0};
	char text[16];
	size_t n = 0;

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(ticks >> (8 * i));
	/* 8 bytes: two whole groups of 3, then 2 bytes and one '=' of padding. */
	for (int i = 0; i < 9; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];

		text[n++] = alphabet[v >> 18 & 63];
		text[n++] = alphabet[v >> 12 & 63];
		text[n++] = alphabet[v >> 6 & 63];
		text[n++] = i + 2 < 8 ? alphabet[v & 63] : '=';
	}
	text[n++] = '\n'; /* Hyper-V ends its base64 with a newline */
	text[n] = '\0';
	return config_set(c, path, "bytes", text, err);
}
