/*
 * store_vm.c - making VMs in a store: disks, adapters and a configuration
 * laid out as Hyper-V writes one.
 */
#include "store.h"

#include "config.h"
#include "error.h"
#include "hyperv.h"
#include "pathbuf.h"
#include "rollback.h"
#include "vhd.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* @text escaped for XML character data. */
static void put_escaped(FILE *out, const char *text)
{
	for (; *text; text++) {
		switch (*text) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		default:
			fputc(*text, out);
		}
	}
}

/* One typed leaf on its own line, CRLF-terminated. */
static void leaf(FILE *out, int depth, const char *name, const char *type, const char *value)
{
	fprintf(out, "%*s<%s type=\"%s\">", depth * 2, "", name, type);
	put_escaped(out, value);
	fprintf(out, "</%s>\r\n", name);
}

static void open_tag(FILE *out, int depth, const char *name)
{
	fprintf(out, "%*s<%s>\r\n", depth * 2, "", name);
}

static void close_tag(FILE *out, int depth, const char *name)
{
	fprintf(out, "%*s</%s>\r\n", depth * 2, "", name);
}

/*
 * A file name made of @name that Linux and Windows both take (the store may
 * go back to Hyper-V): no control characters, no '/' '\\' ':' '*' '?' '"'
 * '<' '>' '|', no leading or trailing dot or space, no name Windows
 * reserves for devices (CON, NUL, COM1, ...).
 */
static void safe_file_name(const char *name, char *out, size_t cap)
{
	static const char *const reserved[] = {"CON", "PRN", "AUX", "NUL", "COM", "LPT"};
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)name; *p && n + 1 < cap; p++)
		out[n++] = (*p < 0x20 || *p == 0x7f || strchr("/\\:*?\"<>|", *p)) ? '_' : (char)*p;
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '.' || out[n - 1] == ' '))
		out[--n] = '_';
	if (!out[0] || out[0] == '.' || out[0] == ' ')
		out[0] = '_';
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		size_t len = strlen(reserved[i]);
		bool numbered = len == 3 && (i >= 4) && out[3] >= '1' && out[3] <= '9';

		if (strncasecmp(out, reserved[i], len) == 0 &&
		    (out[len + numbered] == '\0' || out[len + numbered] == '.') && n + 1 < cap) {
			memmove(out + 1, out, n + 1);
			out[0] = '_';
			break;
		}
	}
}

struct vm_draft {
	char id[37];
	struct rollback disks; /* the disks made, one for each of the spec's, removed on failure */
	char ide_instance[37], scsi_instance[37];
};

/* Drives a controller has: Hyper-V's emulated IDE has two controllers of
 * two drives; a synthetic SCSI controller takes 64. */
#define IDE_DRIVES	2
#define IDE_CONTROLLERS 2
#define SCSI_DRIVES	64

/* Write one controller node with the disks of @spec on @bus, filling each
 * controller's drives in turn. */
static void write_controller(FILE *out, const struct store *s, const struct store_new_vm *spec,
			     const struct vm_draft *d, enum config_bus bus, const char *node)
{
	unsigned per = bus == CONFIG_BUS_IDE ? IDE_DRIVES : SCSI_DRIVES, n = 0, open = UINT_MAX;
	char controller[32];

	fprintf(out, "  <_%s_>\r\n", node);
	for (size_t i = 0; i < spec->disk_count; i++) {
		char name[16], *written;

		if (spec->disks[i].bus != bus)
			continue;
		if (open != n / per) {
			if (open != UINT_MAX)
				close_tag(out, 2, controller);
			open = n / per;
			snprintf(controller, sizeof(controller), "controller%u", open);
			open_tag(out, 2, controller);
		}
		snprintf(name, sizeof(name), "drive%u", n++ % per);
		written = store_written_path(s, d->disks.paths[i]);
		open_tag(out, 3, name);
		leaf(out, 4, "pathname", "string", written ? written : d->disks.paths[i]);
		leaf(out, 4, "type", "string", "VHD");
		close_tag(out, 3, name);
		free(written);
	}
	if (open != UINT_MAX)
		close_tag(out, 2, controller);
	fprintf(out, "  </_%s_>\r\n", node);
}

static void write_manifest_entry(FILE *out, unsigned n, const char *type, const char *instance,
				 const char *name)
{
	char tag[16];

	snprintf(tag, sizeof(tag), "vdev%03u", n);
	open_tag(out, 2, tag);
	leaf(out, 3, "device", "string", type);
	leaf(out, 3, "flags", "integer", "1");
	leaf(out, 3, "instance", "string", instance);
	leaf(out, 3, "name", "string", name);
	close_tag(out, 2, tag);
}

/* The configuration text (UTF-8, CRLF) of the VM. */
static char *vm_text(const struct store *s, const struct store_new_vm *spec, struct vm_draft *d,
		     const struct store_switch *const *switches, size_t *len)
{
	bool ide = false, scsi = false;
	char(*nics)[37] = calloc(spec->switch_count ? spec->switch_count : 1, 37);
	char number[32];
	unsigned vdev = 0;
	char *text = NULL;
	FILE *out;

	if (!nics)
		return NULL;
	for (size_t i = 0; i < spec->disk_count; i++) {
		ide |= spec->disks[i].bus == CONFIG_BUS_IDE;
		scsi |= spec->disks[i].bus == CONFIG_BUS_SCSI;
	}
	out = open_memstream(&text, len);
	if (!out) {
		free(nics);
		return NULL;
	}
	fputs("<?xml version=\"1.0\" encoding=\"UTF-16\" standalone=\"yes\"?>\r\n", out);
	open_tag(out, 0, "configuration");
	if (ide)
		write_controller(out, s, spec, d, CONFIG_BUS_IDE, CONFIG_IDE_TYPE);
	if (scsi)
		write_controller(out, s, spec, d, CONFIG_BUS_SCSI, d->scsi_instance);
	for (size_t i = 0; i < spec->switch_count; i++) {
		char mac[18], port[37];
		uint8_t r[3];
		uuid_t u;

		store_new_guid(nics[i], false);
		store_new_guid(port, true);
		uuid_generate_random(u);
		memcpy(r, u, 3);
		snprintf(mac, sizeof(mac), "00-15-5D-%02X-%02X-%02X", r[0], r[1], r[2]);
		fprintf(out, "  <_%s_>\r\n", nics[i]);
		/* As Hyper-V 2012 R2 writes a connected adapter: the switch's GUID in
		 * SwitchName and in HostResources, its name in AltSwitchName. */
		open_tag(out, 2, "Connection");
		leaf(out, 3, "AltPortName", "string", "Network Adapter");
		leaf(out, 3, "AltSwitchName", "string", switches[i]->name);
		leaf(out, 3, "AuthorizationScope", "string", "");
		open_tag(out, 3, "HostResources");
		leaf(out, 4, "HostResource", "string", switches[i]->id);
		close_tag(out, 3, "HostResources");
		leaf(out, 3, "TestReplicaSwitchName", "string", "");
		close_tag(out, 2, "Connection");
		leaf(out, 2, "FriendlyName", "string", "Network Adapter");
		leaf(out, 2, "IsConnected", "bool", "True");
		leaf(out, 2, "MacAddress", "string", mac);
		leaf(out, 2, "MacAddressIsStatic", "bool", "False");
		leaf(out, 2, "PortName", "string", port);
		leaf(out, 2, "SwitchName", "string", switches[i]->id);
		fprintf(out, "  </_%s_>\r\n", nics[i]);
	}
	open_tag(out, 1, "global_settings");
	open_tag(out, 2, "snapshots");
	leaf(out, 3, "current", "string", "");
	open_tag(out, 3, "list");
	leaf(out, 4, "size", "integer", "0");
	close_tag(out, 3, "list");
	close_tag(out, 2, "snapshots");
	close_tag(out, 1, "global_settings");
	open_tag(out, 1, "manifest");
	snprintf(number, sizeof(number), "%zu", (size_t)ide + (size_t)scsi + spec->switch_count);
	leaf(out, 2, "size", "integer", number);
	if (ide)
		write_manifest_entry(out, ++vdev, CONFIG_IDE_TYPE, CONFIG_IDE_TYPE,
				     "Microsoft Emulated IDE Controller");
	if (scsi)
		write_manifest_entry(out, ++vdev, CONFIG_SCSI_TYPE, d->scsi_instance,
				     "Microsoft Synthetic SCSI Controller");
	for (size_t i = 0; i < spec->switch_count; i++)
		write_manifest_entry(out, ++vdev, CONFIG_NIC_TYPE, nics[i],
				     "Microsoft Synthetic Ethernet Port");
	close_tag(out, 1, "manifest");
	open_tag(out, 1, "properties");
	leaf(out, 2, "global_id", "string", d->id);
	leaf(out, 2, "name", "string", spec->name);
	leaf(out, 2, "subtype", "integer", spec->generation == 2 ? "1" : "0");
	leaf(out, 2, "type_id", "string", CONFIG_TYPE_VM);
	leaf(out, 2, "version", "integer", "1280");
	close_tag(out, 1, "properties");
	open_tag(out, 1, "settings");
	open_tag(out, 2, "global");
	leaf(out, 3, "logical_id", "string", d->id);
	close_tag(out, 2, "global");
	open_tag(out, 2, "memory");
	open_tag(out, 3, "bank");
	snprintf(number, sizeof(number), "%llu",
		 (unsigned long long)(spec->memory_mib ? spec->memory_mib : 512));
	leaf(out, 4, "size", "integer", number);
	close_tag(out, 3, "bank");
	close_tag(out, 2, "memory");
	close_tag(out, 1, "settings");
	close_tag(out, 0, "configuration");
	free(nics);
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int store_create_vm_unlocked(struct store *s, const struct store_new_vm *spec,
				    char id_out[37], struct error *err)
{
	struct vm_draft d = {.disks = ROLLBACK_INIT};
	struct store_switch *all = NULL;
	const struct store_switch **chosen = NULL;
	struct store_vm *vms = NULL;
	struct config *config = NULL;
	size_t n_all = 0, n_vms = 0, len = 0;
	struct pathbuf path = PATHBUF_INIT;
	char base[NAME_MAX - 16], *text = NULL;
	enum disk_format format = spec->disk_format ? spec->disk_format
				  : spec->generation == 2 ? DISK_FORMAT_VHDX
							  : DISK_FORMAT_VHD;
	const char *ext = format == DISK_FORMAT_VHDX ? ".vhdx" : ".vhd";
	int rc;

	rc = store_check_name(spec->name, "VM", err);
	if (rc < 0)
		return rc;
	{
		size_t ide = 0, scsi = 0;

		for (size_t i = 0; i < spec->disk_count; i++) {
			ide += spec->disks[i].bus == CONFIG_BUS_IDE;
			scsi += spec->disks[i].bus == CONFIG_BUS_SCSI;
		}
		if (ide && spec->generation == 2)
			return error_set(err, EINVAL, "a generation 2 VM has no IDE controller");
		if (ide > IDE_DRIVES * IDE_CONTROLLERS)
			return error_set(err, EINVAL,
					 "%zu IDE disks: Hyper-V's two IDE controllers take %d",
					 ide, IDE_DRIVES * IDE_CONTROLLERS);
		if (scsi > SCSI_DRIVES)
			return error_set(err, EINVAL,
					 "%zu SCSI disks: one SCSI controller takes %d", scsi,
					 SCSI_DRIVES);
	}
	rc = store_list(s, &vms, &n_vms, err);
	if (rc < 0)
		return rc;
	if (store_find_vm(vms, n_vms, spec->name)) {
		store_vms_free(vms, n_vms);
		return error_set(err, EEXIST, "a VM named '%s' exists already", spec->name);
	}
	store_vms_free(vms, n_vms);
	rc = store_switches(s, &all, &n_all, err);
	if (rc < 0)
		return rc;
	chosen = calloc(spec->switch_count ? spec->switch_count : 1, sizeof(*chosen));
	if (!chosen) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < spec->switch_count; i++) {
		chosen[i] = store_find_switch(all, n_all, spec->switches[i]);
		if (!chosen[i]) {
			rc = error_set(err, ENOENT,
				       "no virtual switch '%s' in the store (impex switch add)",
				       spec->switches[i]);
			goto out;
		}
	}
	store_new_guid(d.id, true);
	store_new_guid(d.scsi_instance, false);
	safe_file_name(spec->name, base, sizeof(base));
	for (size_t i = 0; i < spec->disk_count; i++) {
		struct disk_create_options o = {.format = format,
						.type = VHD_TYPE_DYNAMIC,
						.size = spec->disks[i].size};

		if (i == 0)
			rc = pathbuf_setf(&path, "%s/%s/%s%s", store_root(s, 0), HYPERV_DISKS_DIR,
					  base, ext);
		else
			rc = pathbuf_setf(&path, "%s/%s/%s_%zu%s", store_root(s, 0),
					  HYPERV_DISKS_DIR, base, i + 1, ext);
		rc = rc < 0 ? error_set(err, ENOMEM, "out of memory")
			    : disk_create(path.buf, &o, err);
		if (rc == -EEXIST) {
			/* Another VM's name made the same file name: add this VM's GUID. */
			rc = pathbuf_setf(&path, "%s/%s/%s_%zu_%.8s%s", store_root(s, 0),
					  HYPERV_DISKS_DIR, base, i + 1, d.id, ext);
			rc = rc < 0 ? error_set(err, ENOMEM, "out of memory")
				    : disk_create(path.buf, &o, err);
		}
		if (rc < 0)
			goto out;
		if (rollback_add(&d.disks, path.buf) < 0) {
			unlink(path.buf);
			rc = error_set(err, ENOMEM, "out of memory");
			goto out;
		}
	}
	text = vm_text(s, spec, &d, chosen, &len);
	if (!text) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	rc = pathbuf_setf(&path, "%s/%s/%s.xml", store_root(s, 0), HYPERV_VMS_DIR, d.id) < 0
		     ? error_set(err, ENOMEM, "out of memory")
		     : config_parse(&config, text, len, path.buf, err);
	if (rc == 0)
		rc = config_set_filetime(config, "properties/creation_time", time(NULL), err);
	if (rc == 0) {
		config_set_encoding(config, CONFIG_UTF16LE);
		rc = config_save(config, path.buf, err);
	}
	if (rc == 0 && id_out)
		memcpy(id_out, d.id, 37);
out:
	config_free(config);
	free(text);
	rollback_finish(&d.disks, rc < 0, NULL, NULL);
	pathbuf_release(&path);
	free(chosen);
	store_switches_free(all, n_all);
	return rc;
}

int store_create_vm(struct store *s, const struct store_new_vm *spec, char id_out[37],
		    struct error *err)
{
	int lock = store_lock(s, err), rc;

	if (lock < 0)
		return lock;
	rc = store_create_vm_unlocked(s, spec, id_out, err);
	store_unlock(lock);
	return rc;
}
