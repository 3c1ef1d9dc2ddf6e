/*
 * impex vhd info and vhd check: what a VHD or VHDX file is, and whether it
 * and its whole chain can be read; as text or as JSON (docs/JSON.md).
 */
#include "cmd_vhd_info.h"

#include "chain.h"
#include "cli.h"
#include "cmd_vhd.h"
#include "disk.h"
#include "error.h"
#include "json.h"
#include "pathmap.h"
#include "vhd.h"
#include "vhdx.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cmd_vhd_info_usage[] = "impex vhd info [--json] [--pathmap WIN=DIR] FILE";
const char cmd_vhd_check_usage[] = "impex vhd check [--json] [--pathmap WIN=DIR] FILE";

static void creator_text(const struct vhd_footer *f, char *app, char *os)
{
	for (int i = 0; i < 4; i++) {
		app[i] = (f->creator_app[i] >= 0x20 && f->creator_app[i] < 0x7f) ? f->creator_app[i]
										 : '?';
		os[i] = (f->creator_os[i] >= 0x20 && f->creator_os[i] < 0x7f) ? f->creator_os[i]
									      : '?';
	}
	app[4] = os[4] = '\0';
}

/* ---- info ---- */

static void info_chain_human(struct chain *chain, const struct error *chain_err);
static void info_chain_json(struct jsonw *j, struct chain *chain, const struct error *chain_err);

static void info_human(struct vhd *vhd, struct chain *chain, const struct error *chain_err)
{
	const struct vhd_footer *f = vhd_footer(vhd);
	const struct vhd_header *h = vhd_header(vhd);
	char size[32], uuid[37], when[64], app[5], os[5];

	creator_text(f, app, os);
	vhd_uuid_format(f->uuid, uuid);
	printf("'%s': %s VHD\n", vhd_path(vhd), vhd_type_name(f->disk_type));
	printf("  disk size:    %s (%" PRIu64 " bytes)\n",
	       cli_format_size(f->current_size, size, sizeof(size)), f->current_size);
	printf("  geometry:     %u/%u/%u (cylinders/heads/sectors)\n", f->geometry.cylinders,
	       f->geometry.heads, f->geometry.sectors);
	printf("  creator:      '%s' version 0x%08x on '%s'\n", app, f->creator_version, os);
	printf("  uuid:         %s\n", uuid);
	printf("  timestamp:    %s\n",
	       vhd_format_utc(vhd_time_to_unix(f->timestamp), when, sizeof(when)));
	printf("  file size:    %" PRIu64 " bytes\n", vhd_file_size(vhd));
	if (f->saved_state)
		printf("  saved state:  yes\n");
	if (h) {
		printf("  block size:   %s, %u blocks, %u allocated\n",
		       cli_format_size(h->block_size, size, sizeof(size)), vhd_block_count(vhd),
		       vhd_allocated_blocks(vhd));
	}
	if (f->disk_type == VHD_TYPE_DIFFERENCING) {
		char name[1024];
		struct error e;

		error_clear(&e);
		vhd_uuid_format(h->parent_uuid, uuid);
		printf("  parent uuid:  %s\n", uuid);
		printf("  parent time:  %s\n",
		       vhd_format_utc(vhd_time_to_unix(h->parent_timestamp), when, sizeof(when)));
		if (vhd_parent_name(vhd, name, sizeof(name), &e) == 0)
			printf("  parent name:  '%s'\n", name);
		else
			printf("  parent name:  unreadable: %s\n", error_message(&e));
		for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
			char path[4096], code[5];

			if (h->locators[i].code == VHD_PLATFORM_NONE)
				continue;
			error_clear(&e);
			vhd_platform_name(h->locators[i].code, code);
			if (vhd_locator_path(vhd, i, path, sizeof(path), &e) == 0)
				printf("  locator %d:    %s '%s'\n", i, code, path);
			else
				printf("  locator %d:    %s (%s)\n", i, code,
				       e.code ? error_message(&e) : "not a path");
		}
	}
	info_chain_human(chain, chain_err);
}

/* The chain of the file, its warnings and its problem, as text. */
static void info_chain_human(struct chain *chain, const struct error *chain_err)
{
	if (chain && chain_depth(chain) > 1) {
		printf("chain (%u levels):\n", chain_depth(chain));
		for (unsigned i = 0; i < chain_depth(chain); i++) {
			struct disk *level = chain_level(chain, i);

			printf("  %u  '%s'  %s", i, disk_path(level),
			       vhd_type_name(disk_type(level)));
			if (i > 0)
				printf(", found by %s", chain_level_how(chain, i));
			printf("\n");
		}
	}
	if (chain)
		for (unsigned i = 0; i < chain_warning_count(chain); i++)
			printf("warning: %s\n", chain_warning(chain, i));
	if (chain_err)
		printf("problem: %s\n", error_message(chain_err));
}

static void info_json(struct vhd *vhd, struct chain *chain, const struct error *chain_err)
{
	const struct vhd_footer *f = vhd_footer(vhd);
	const struct vhd_header *h = vhd_header(vhd);
	char uuid[37], app[5], os[5];
	struct jsonw j;

	jsonw_init(&j, stdout);
	creator_text(f, app, os);
	jsonw_begin_object(&j, NULL);
	jsonw_string(&j, "path", vhd_path(vhd));
	jsonw_string(&j, "format", "VHD");
	jsonw_string(&j, "type", vhd_type_name(f->disk_type));
	jsonw_uint(&j, "size", f->current_size);
	jsonw_uint(&j, "original_size", f->original_size);
	jsonw_begin_object(&j, "geometry");
	jsonw_uint(&j, "cylinders", f->geometry.cylinders);
	jsonw_uint(&j, "heads", f->geometry.heads);
	jsonw_uint(&j, "sectors", f->geometry.sectors);
	jsonw_end_object(&j);
	jsonw_begin_object(&j, "creator");
	jsonw_string(&j, "application", app);
	jsonw_uint(&j, "version", f->creator_version);
	jsonw_string(&j, "host", os);
	jsonw_end_object(&j);
	vhd_uuid_format(f->uuid, uuid);
	jsonw_string(&j, "uuid", uuid);
	jsonw_int(&j, "timestamp", vhd_time_to_unix(f->timestamp));
	jsonw_bool(&j, "saved_state", f->saved_state != 0);
	jsonw_uint(&j, "file_size", vhd_file_size(vhd));
	if (h) {
		jsonw_uint(&j, "block_size", h->block_size);
		jsonw_uint(&j, "blocks", vhd_block_count(vhd));
		jsonw_uint(&j, "allocated_blocks", vhd_allocated_blocks(vhd));
	} else {
		/* A fixed disk has no blocks. */
		jsonw_string(&j, "block_size", NULL);
		jsonw_string(&j, "blocks", NULL);
		jsonw_string(&j, "allocated_blocks", NULL);
	}
	if (f->disk_type != VHD_TYPE_DIFFERENCING) {
		jsonw_string(&j, "parent", NULL);
	} else {
		char name[1024];

		jsonw_begin_object(&j, "parent");
		vhd_uuid_format(h->parent_uuid, uuid);
		jsonw_string(&j, "uuid", uuid);
		jsonw_int(&j, "timestamp", vhd_time_to_unix(h->parent_timestamp));
		jsonw_string(&j, "name",
			     vhd_parent_name(vhd, name, sizeof(name), NULL) == 0 ? name : NULL);
		jsonw_begin_array(&j, "locators");
		for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
			char path[4096], code[5];

			if (h->locators[i].code == VHD_PLATFORM_NONE)
				continue;
			jsonw_begin_object(&j, NULL);
			jsonw_uint(&j, "index", (uint64_t)i);
			jsonw_string(&j, "platform", vhd_platform_name(h->locators[i].code, code));
			jsonw_string(&j, "path",
				     vhd_locator_path(vhd, i, path, sizeof(path), NULL) == 0
					     ? path
					     : NULL);
			jsonw_end_object(&j);
		}
		jsonw_end_array(&j);
		jsonw_end_object(&j);
	}
	info_chain_json(&j, chain, chain_err);
	jsonw_end_object(&j);
	jsonw_finish(&j);
}

/* The chain of the file, its warnings and its problem, as members of the open object. */
static void info_chain_json(struct jsonw *j, struct chain *chain, const struct error *chain_err)
{
	jsonw_begin_array(j, "chain");
	for (unsigned i = 0; chain && i < chain_depth(chain); i++) {
		struct disk *level = chain_level(chain, i);
		char id[40];

		jsonw_begin_object(j, NULL);
		jsonw_string(j, "path", disk_path(level));
		jsonw_string(j, "type", vhd_type_name(disk_type(level)));
		disk_id_format(level, disk_link_id(level), id);
		/* A VHD is known by its UUID, a VHDX by its DataWriteGuid: the other is null. */
		jsonw_string(j, "uuid", disk_vhdx(level) ? NULL : id);
		jsonw_string(j, "data_write_guid", disk_vhdx(level) ? id : NULL);
		jsonw_string(j, "found_by", i ? chain_level_how(chain, i) : NULL);
		jsonw_end_object(j);
	}
	jsonw_end_array(j);
	jsonw_begin_array(j, "warnings");
	for (unsigned i = 0; chain && i < chain_warning_count(chain); i++)
		jsonw_string(j, NULL, chain_warning(chain, i));
	jsonw_end_array(j);
	jsonw_string(j, "error", chain_err ? error_message(chain_err) : NULL);
}

/* ---- info of a VHDX ---- */

static void vhdx_human(struct vhdx *x, struct chain *chain, const struct error *chain_err)
{
	char size[32], guid[40];
	uint64_t head = 0;

	printf("'%s': %s VHDX\n", vhdx_path(x), vhd_type_name(vhdx_disk_type(x)));
	printf("  disk size:    %s (%" PRIu64 " bytes)\n",
	       cli_format_size(vhdx_size(x), size, sizeof(size)), vhdx_size(x));
	printf("  sectors:      %u bytes logical, %u physical\n", vhdx_logical_sector_size(x),
	       vhdx_physical_sector_size(x));
	printf("  block size:   %s, %" PRIu64 " blocks, %u per chunk\n",
	       cli_format_size(vhdx_block_size(x), size, sizeof(size)), vhdx_block_count(x),
	       vhdx_chunk_ratio(x));
	vhdx_guid_format(vhdx_disk_id(x), guid);
	printf("  disk id:      %s\n", guid);
	vhdx_guid_format(vhdx_data_write_guid(x), guid);
	printf("  data write:   %s\n", guid);
	vhdx_guid_format(vhdx_file_write_guid(x), guid);
	printf("  file write:   %s\n", guid);
	printf("  file size:    %" PRIu64 " bytes\n", vhdx_file_size(x));
	if (vhdx_log_replayed(x, &head))
		printf("  log:          not empty, replayed in memory (head sequence %" PRIu64
		       "); the file is not written\n",
		       head);
	for (size_t i = 0; i < vhdx_locator_count(x); i++) {
		const struct vhdx_locator_entry *e = vhdx_locator_entry(x, i);

		printf("  %-13s '%s'\n", e->key, e->value);
	}
	info_chain_human(chain, chain_err);
}

static void vhdx_json(struct vhdx *x, struct chain *chain, const struct error *chain_err)
{
	char guid[40];
	uint64_t head = 0;
	struct jsonw j;

	jsonw_init(&j, stdout);
	jsonw_begin_object(&j, NULL);
	jsonw_string(&j, "path", vhdx_path(x));
	jsonw_string(&j, "format", "VHDX");
	jsonw_string(&j, "type", vhd_type_name(vhdx_disk_type(x)));
	jsonw_uint(&j, "size", vhdx_size(x));
	jsonw_uint(&j, "logical_sector_size", vhdx_logical_sector_size(x));
	jsonw_uint(&j, "physical_sector_size", vhdx_physical_sector_size(x));
	jsonw_uint(&j, "block_size", vhdx_block_size(x));
	jsonw_uint(&j, "blocks", vhdx_block_count(x));
	jsonw_uint(&j, "chunk_ratio", vhdx_chunk_ratio(x));
	vhdx_guid_format(vhdx_disk_id(x), guid);
	jsonw_string(&j, "disk_id", guid);
	vhdx_guid_format(vhdx_data_write_guid(x), guid);
	jsonw_string(&j, "data_write_guid", guid);
	vhdx_guid_format(vhdx_file_write_guid(x), guid);
	jsonw_string(&j, "file_write_guid", guid);
	jsonw_uint(&j, "file_size", vhdx_file_size(x));
	jsonw_bool(&j, "log_replayed", vhdx_log_replayed(x, &head));
	if (vhdx_disk_type(x) != VHD_TYPE_DIFFERENCING) {
		jsonw_string(&j, "parent_locator", NULL);
	} else {
		jsonw_begin_object(&j, "parent_locator");
		for (size_t i = 0; i < vhdx_locator_count(x); i++) {
			const struct vhdx_locator_entry *e = vhdx_locator_entry(x, i);

			jsonw_string(&j, e->key, e->value);
		}
		jsonw_end_object(&j);
	}
	info_chain_json(&j, chain, chain_err);
	jsonw_end_object(&j);
	jsonw_finish(&j);
}

int cmd_vhd_info(int argc, char **argv)
{
	struct chain_options copts = {0};
	struct cmd_vhd_args a;
	struct disk *disk = NULL;
	struct chain *chain = NULL;
	struct error err, chain_err;
	int rc;

	rc = cmd_vhd_parse(argc, argv, cmd_vhd_info_usage, 1, 1, &a);
	if (rc)
		goto out;
	error_clear(&err);
	error_clear(&chain_err);
	if (disk_open(&disk, argv[a.first], DISK_OPEN_READ, &err) < 0) {
		if (a.common.json) {
			struct jsonw j;

			/* The members both formats have, null, and why. */
			jsonw_init(&j, stdout);
			jsonw_begin_object(&j, NULL);
			jsonw_string(&j, "path", argv[a.first]);
			jsonw_string(&j, "format", NULL);
			jsonw_string(&j, "type", NULL);
			jsonw_string(&j, "size", NULL);
			jsonw_string(&j, "block_size", NULL);
			jsonw_string(&j, "blocks", NULL);
			jsonw_string(&j, "file_size", NULL);
			jsonw_begin_array(&j, "chain");
			jsonw_end_array(&j);
			jsonw_begin_array(&j, "warnings");
			jsonw_end_array(&j);
			jsonw_string(&j, "error", error_message(&err));
			jsonw_end_object(&j);
			jsonw_finish(&j);
		}
		rc = cli_fail(&err);
		goto out;
	}
	copts.pathmap = a.common.pathmap;
	rc = chain_open(&chain, argv[a.first], &copts, &chain_err);
	if (disk_vhdx(disk) && a.common.json)
		vhdx_json(disk_vhdx(disk), chain, rc < 0 ? &chain_err : NULL);
	else if (disk_vhdx(disk))
		vhdx_human(disk_vhdx(disk), chain, rc < 0 ? &chain_err : NULL);
	else if (a.common.json)
		info_json(disk_vhd(disk), chain, rc < 0 ? &chain_err : NULL);
	else
		info_human(disk_vhd(disk), chain, rc < 0 ? &chain_err : NULL);
	/* The report went to standard output; the failure goes to standard error too. */
	rc = rc < 0 ? cli_fail(&chain_err) : CLI_OK;
out:
	chain_close(chain);
	disk_close(disk);
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- check ---- */

/* The footer copy at the start of a dynamic file should equal the footer. */
static bool footer_copy_matches(struct vhd *vhd)
{
	uint8_t copy[VHD_FOOTER_SIZE], tail[VHD_FOOTER_SIZE];

	if (vhd_disk_type(vhd) == VHD_TYPE_FIXED)
		return true;
	if (vhd_pread(vhd, copy, sizeof(copy), 0, NULL) < 0 ||
	    vhd_pread(vhd, tail, sizeof(tail), vhd_file_size(vhd) - VHD_FOOTER_SIZE, NULL) < 0)
		return false;
	return memcmp(copy, tail, sizeof(copy)) == 0;
}

/* vhd check --json: the chain of @path (NULL when it did not open), the warnings and the fault. */
static void check_json(const char *path, struct chain *chain, const char *const *warnings,
		       size_t warning_count, const struct error *err)
{
	struct jsonw j;

	jsonw_init(&j, stdout);
	jsonw_begin_object(&j, NULL);
	jsonw_string(&j, "path", path);
	jsonw_bool(&j, "ok", chain != NULL);
	jsonw_string(&j, "format", chain ? disk_format_name(chain_format(chain)) : NULL);
	jsonw_string(&j, "type", chain ? vhd_type_name(disk_type(chain_level(chain, 0))) : NULL);
	if (chain) {
		jsonw_uint(&j, "size", chain_size(chain));
		jsonw_uint(&j, "levels", chain_depth(chain));
	} else {
		jsonw_string(&j, "size", NULL);
		jsonw_string(&j, "levels", NULL);
	}
	jsonw_begin_array(&j, "chain");
	for (unsigned i = 0; chain && i < chain_depth(chain); i++) {
		struct disk *level = chain_level(chain, i);

		jsonw_begin_object(&j, NULL);
		jsonw_string(&j, "path", disk_path(level));
		jsonw_string(&j, "format", disk_vhdx(level) ? "VHDX" : "VHD");
		jsonw_string(&j, "type", vhd_type_name(disk_type(level)));
		jsonw_end_object(&j);
	}
	jsonw_end_array(&j);
	jsonw_begin_array(&j, "warnings");
	for (size_t i = 0; i < warning_count; i++)
		jsonw_string(&j, NULL, warnings[i]);
	jsonw_end_array(&j);
	jsonw_string(&j, "error", chain ? NULL : error_message(err));
	jsonw_end_object(&j);
	jsonw_finish(&j);
}

int cmd_vhd_check(int argc, char **argv)
{
	struct chain_options copts = {0};
	struct chain *chain = NULL;
	struct cmd_vhd_args a;
	struct error err;
	char size[32], **copies = NULL;
	const char **warnings = NULL;
	size_t warning_count = 0, copy_count = 0;
	int rc;

	rc = cmd_vhd_parse(argc, argv, cmd_vhd_check_usage, 1, 1, &a);
	if (rc)
		goto out;
	error_clear(&err);
	copts.pathmap = a.common.pathmap;
	if (chain_open(&chain, argv[a.first], &copts, &err) < 0) {
		if (a.common.json)
			check_json(argv[a.first], NULL, NULL, 0, &err);
		rc = cli_fail(&err);
		goto out;
	}
	/* The chain's warnings, then each footer copy that differs (a VHD's). */
	warnings = calloc(chain_warning_count(chain) + chain_depth(chain) + 1, sizeof(*warnings));
	copies = calloc(chain_depth(chain) + 1, sizeof(*copies));
	if (!warnings || !copies) {
		cli_error("out of memory");
		rc = CLI_FAIL;
		goto out;
	}
	for (unsigned i = 0; i < chain_warning_count(chain); i++)
		warnings[warning_count++] = chain_warning(chain, i);
	for (unsigned i = 0; i < chain_depth(chain); i++)
		if (disk_vhd(chain_level(chain, i)) &&
		    !footer_copy_matches(disk_vhd(chain_level(chain, i))) &&
		    asprintf(&copies[copy_count],
			     "the footer copy at the start of '%s' differs from its footer",
			     disk_path(chain_level(chain, i))) >= 0)
			warnings[warning_count++] = copies[copy_count++];
	if (a.common.json) {
		check_json(argv[a.first], chain, warnings, warning_count, NULL);
	} else {
		for (size_t i = 0; i < warning_count; i++)
			cli_warning("%s", warnings[i]);
		printf("'%s': ok, %s %s of %s, %u level%s\n", argv[a.first],
		       vhd_type_name(disk_type(chain_level(chain, 0))),
		       disk_format_name(chain_format(chain)),
		       cli_format_size(chain_size(chain), size, sizeof(size)), chain_depth(chain),
		       chain_depth(chain) == 1 ? "" : "s");
	}
	rc = CLI_OK;
out:
	for (size_t i = 0; i < copy_count; i++)
		free(copies[i]);
	free(copies);
	free(warnings);
	chain_close(chain);
	pathmap_free(a.common.pathmap);
	return rc;
}
