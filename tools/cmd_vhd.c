/*
 * cmd_vhd.c - "impex vhd": inspect, check, create, snapshot, write, read
 * and flatten VHD files.
 */
#include "cmd_vhd.h"

#include "chain.h"
#include "cli.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "json.h"
#include "pathmap.h"
#include "progress.h"
#include "stream.h"
#include "vhd.h"
#include "vhdx.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK (4u * 1024 * 1024)

static const char usage_info[] = "impex vhd info [--json] [--pathmap WIN=DIR] FILE";
static const char usage_check[] = "impex vhd check [--json] [--pathmap WIN=DIR] FILE";
static const char usage_create[] =
	"impex vhd create [--format vhd|vhdx] [--type fixed|dynamic] [--block-size SIZE] "
	"[--sector-size 512|4096] FILE SIZE";
static const char usage_snapshot[] = "impex vhd snapshot [--pathmap WIN=DIR] PARENT CHILD";
static const char usage_write[] = "impex vhd write FILE OFFSET [INPUT|-]";
static const char usage_cat[] = "impex vhd cat [--pathmap WIN=DIR] [-p|--progress] FILE";
static const char usage_flatten[] = "impex vhd flatten [--pathmap WIN=DIR] [-p|--progress] "
				    "[--seed TEXT] [--format vhd|vhdx] CHILD OUT";

/* The options of the vhd commands. */
struct vhd_args {
	struct cli_common common;
	const char *type;
	const char *block_size;
	const char *seed;
	const char *format;
	const char *sector_size;
	bool progress; /* -p, --progress */
	int first;     /* index of the first operand in argv */
};

static int parse_args(int argc, char **argv, const char *usage, struct vhd_args *a)
{
	static const struct option options[] = {
		{"type", required_argument, NULL, 't'},
		{"block-size", required_argument, NULL, 'b'},
		{"seed", required_argument, NULL, 's'},
		{"format", required_argument, NULL, 'f'},
		{"sector-size", required_argument, NULL, 'S'},
		{"progress", no_argument, NULL, 'p'},
		CLI_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	int c, rc;

	memset(a, 0, sizeof(*a));
	cli_options_begin();
	/* Options and operands in any order; an operand that starts with '-' (a
	 * negative offset) goes after "--". */
	while ((c = cli_getopt(argc, argv, options, usage)) != -1) {
		switch (c) {
		case 't':
			a->type = optarg;
			break;
		case 'b':
			a->block_size = optarg;
			break;
		case 's':
			a->seed = optarg;
			break;
		case 'f':
			a->format = optarg;
			break;
		case 'S':
			a->sector_size = optarg;
			break;
		case 'p':
			a->progress = true;
			break;
		default:
			rc = cli_common_option(c, usage, argv, &a->common);
			if (rc)
				return rc;
		}
	}
	a->first = optind;
	return 0;
}

static int want_operands(int argc, const struct vhd_args *a, int min, int max, const char *usage)
{
	int n = argc - a->first;

	if (n < min)
		return cli_usage(usage, "missing operand");
	if (n > max)
		return cli_usage(usage, "too many operands");
	return 0;
}

/* Parse options, then check that there are @min to @max operands. */
static int parse_command(int argc, char **argv, const char *usage, int min, int max,
			 struct vhd_args *a)
{
	int rc = parse_args(argc, argv, usage, a);

	return rc ? rc : want_operands(argc, a, min, max, usage);
}

/* Open the chain of the first operand, printing its warnings. */
static int open_operand_chain(char **argv, const struct vhd_args *a, struct chain **chain)
{
	struct chain_options copts = {0};
	struct error err;

	error_clear(&err);
	copts.pathmap = a->common.pathmap;
	if (chain_open(chain, argv[a->first], &copts, &err) < 0)
		return cli_fail(&err);
	for (unsigned i = 0; i < chain_warning_count(*chain); i++)
		cli_warning("%s", chain_warning(*chain, i));
	return CLI_OK;
}

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

			printf("  %u  '%s'  %s", i, disk_path(level), vhd_type_name(disk_type(level)));
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

static int vhd_info(int argc, char **argv)
{
	struct chain_options copts = {0};
	struct vhd_args a;
	struct disk *disk = NULL;
	struct chain *chain = NULL;
	struct error err, chain_err;
	int rc;

	rc = parse_command(argc, argv, usage_info, 1, 1, &a);
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

static int vhd_check(int argc, char **argv)
{
	struct chain_options copts = {0};
	struct chain *chain = NULL;
	struct vhd_args a;
	struct error err;
	char size[32], **copies = NULL;
	const char **warnings = NULL;
	size_t warning_count = 0, copy_count = 0;
	int rc;

	rc = parse_command(argc, argv, usage_check, 1, 1, &a);
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

/* ---- create, snapshot ---- */

/* Whether @path ends with @suffix, in any case. */
static bool has_suffix(const char *path, const char *suffix)
{
	size_t n = strlen(path), k = strlen(suffix);

	return n > k && strcasecmp(path + n - k, suffix) == 0;
}

/* The format a new file is to have: --format, else its name's extension. */
static int new_file_format(const char *option, const char *path, const char *usage,
			   enum disk_format *format)
{
	if (!option)
		*format = has_suffix(path, ".vhdx") || has_suffix(path, ".avhdx") ? DISK_FORMAT_VHDX
										 : DISK_FORMAT_VHD;
	else if (strcmp(option, "vhd") == 0)
		*format = DISK_FORMAT_VHD;
	else if (strcmp(option, "vhdx") == 0)
		*format = DISK_FORMAT_VHDX;
	else
		return cli_usage(usage, "format '%s': want vhd or vhdx", option);
	return 0;
}

static int vhd_create_cmd(int argc, char **argv)
{
	struct disk_create_options o = {.type = VHD_TYPE_DYNAMIC};
	struct vhd_args a;
	struct error err;
	int rc;

	rc = parse_command(argc, argv, usage_create, 2, 2, &a);
	if (rc)
		goto out;
	rc = new_file_format(a.format, argv[a.first], usage_create, &o.format);
	if (rc)
		goto out;
	if (a.type && strcmp(a.type, "fixed") == 0) {
		o.type = VHD_TYPE_FIXED;
	} else if (a.type && strcmp(a.type, "dynamic") != 0) {
		rc = cli_usage(usage_create, "unknown disk type '%s' (fixed or dynamic)", a.type);
		goto out;
	}
	if (cli_parse_size(argv[a.first + 1], &o.size) < 0) {
		rc = cli_usage(usage_create, "'%s' is not a size", argv[a.first + 1]);
		goto out;
	}
	if (a.block_size) {
		uint64_t bs;

		if (cli_parse_size(a.block_size, &bs) < 0 || bs == 0 || bs > UINT32_MAX) {
			rc = cli_usage(usage_create, "'%s' is not a block size", a.block_size);
			goto out;
		}
		o.block_size = (uint32_t)bs;
	}
	if (a.sector_size) {
		uint64_t ss;

		if (cli_parse_size(a.sector_size, &ss) < 0 || ss > UINT32_MAX) {
			rc = cli_usage(usage_create, "'%s' is not a sector size", a.sector_size);
			goto out;
		}
		o.sector_size = (uint32_t)ss;
	}
	error_clear(&err);
	/* Sizes the format cannot take are usage errors, told before anything is made. */
	if (disk_create_check(&o, &err) < 0) {
		rc = cli_usage(usage_create, "%s", error_message(&err));
		goto out;
	}
	rc = disk_create(argv[a.first], &o, &err) < 0 ? cli_fail(&err) : CLI_OK;
out:
	pathmap_free(a.common.pathmap);
	return rc;
}

static int vhd_snapshot_cmd(int argc, char **argv)
{
	struct chain *chain = NULL;
	struct vhd_args a;
	struct error err;
	int rc;

	rc = parse_command(argc, argv, usage_snapshot, 2, 2, &a);
	/* A snapshot over a parent whose own chain is broken would be unreadable. */
	if (rc == 0)
		rc = open_operand_chain(argv, &a, &chain);
	if (rc == 0 && pathmap_count(a.common.pathmap)) {
		char real[PATH_MAX], windows[PATH_MAX];

		if (realpath(argv[a.first], real) &&
		    pathmap_to_windows(a.common.pathmap, real, windows, sizeof(windows)) < 0)
			cli_warning("the path map does not cover '%s': the child records no "
				    "absolute Windows path to it",
				    real);
	}
	if (rc == 0) {
		error_clear(&err);
		rc = disk_create_differencing(argv[a.first + 1], argv[a.first], a.common.pathmap,
					     &err) < 0
			     ? cli_fail(&err)
			     : CLI_OK;
	}
	chain_close(chain);
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- write ---- */

/* Read up to @len bytes, looping over short reads; returns bytes read or -errno. */
static ssize_t read_fully(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int cmd_vhd_write_input(const char *path, const char *offset_text, const char *input,
			const char *usage)
{
	const char *input_name = "standard input";
	struct disk *disk = NULL;
	uint32_t sector;
	uint8_t *buf = NULL;
	uint64_t offset, written = 0;
	struct error err;
	int in = STDIN_FILENO, rc;

	if (cli_parse_size(offset_text, &offset) < 0)
		return cli_usage(usage, "'%s' is not an offset", offset_text);
	if (offset % VHD_SECTOR_SIZE)
		return cli_usage(usage, "offset %" PRIu64 " is not a multiple of 512", offset);
	if (input && strcmp(input, "-") != 0) {
		struct stat st;

		input_name = input;
		in = open(input_name, O_RDONLY | O_CLOEXEC);
		if (in < 0) {
			cli_error("cannot open '%s': %s", input_name, strerror(errno));
			return CLI_FAIL;
		}
		if (fstat(in, &st) == 0 && S_ISREG(st.st_mode) && st.st_size % VHD_SECTOR_SIZE) {
			cli_error("'%s' is %lld bytes, not a whole number of 512-byte sectors",
				  input_name, (long long)st.st_size);
			rc = CLI_FAIL;
			goto out;
		}
	}
	error_clear(&err);
	if (disk_open(&disk, path, DISK_OPEN_WRITE, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	sector = disk_sector_size(disk);
	if (offset % sector) {
		cli_error("offset %" PRIu64 " is not a multiple of the %u-byte sectors of '%s'",
			  offset, sector, path);
		rc = CLI_FAIL;
		goto out;
	}
	buf = malloc(IO_CHUNK);
	if (!buf) {
		cli_error("out of memory");
		rc = CLI_FAIL;
		goto out;
	}
	for (;;) {
		ssize_t n = read_fully(in, buf, IO_CHUNK);

		if (n < 0) {
			cli_error("cannot read %s: %s", input_name, strerror((int)-n));
			rc = CLI_FAIL;
			goto out;
		}
		if (n == 0)
			break;
		if (n % sector) {
			cli_error("%s ends in a partial sector (%" PRIu64
				  " bytes in all); the first "
				  "%" PRIu64 " bytes were written",
				  input_name, written + (uint64_t)n, written);
			rc = CLI_FAIL;
			goto out;
		}
		if (disk_write(disk, buf, (size_t)n, offset + written, &err) < 0) {
			rc = cli_fail(&err);
			goto out;
		}
		written += (uint64_t)n;
	}
	if (disk_flush(disk, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	rc = CLI_OK;
out:
	if (in != STDIN_FILENO && in >= 0)
		close(in);
	free(buf);
	disk_close(disk);
	return rc;
}

static int vhd_write_cmd(int argc, char **argv)
{
	struct vhd_args a;
	int rc = parse_command(argc, argv, usage_write, 2, 3, &a);

	if (rc == 0)
		rc = cmd_vhd_write_input(argv[a.first], argv[a.first + 1],
					 argc - a.first == 3 ? argv[a.first + 2] : NULL,
					 usage_write);
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- cat ---- */

/* Write all of @buf to a pipe, terminal or file. Returns 0 or -errno. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0) {
			if (errno == EINTR && !progress_interrupted())
				continue;
			return -errno;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static int vhd_cat(int argc, char **argv)
{
	struct chain *chain = NULL;
	uint8_t *buf = NULL;
	struct vhd_args a;
	struct progress bar = {0};
	struct error err;
	struct stat st;
	uint64_t pos = 0, size;
	bool sparse = false, to_file;
	int rc;

	rc = parse_command(argc, argv, usage_cat, 1, 1, &a);
	if (rc)
		goto out;
	progress_catch_signals();
	rc = open_operand_chain(argv, &a, &chain);
	if (rc)
		goto out;
	error_clear(&err);
	buf = malloc(IO_CHUNK);
	if (!buf) {
		cli_error("out of memory");
		rc = CLI_FAIL;
		goto out;
	}
	size = chain_size(chain);
	to_file = fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode);
	/* Into an empty regular file (not opened for appending, where pwrite
	 * ignores the offset), skip unallocated ranges and zeros: holes. */
	sparse = to_file && lseek(STDOUT_FILENO, 0, SEEK_CUR) == 0 && st.st_size == 0 &&
		 !(fcntl(STDOUT_FILENO, F_GETFL) & O_APPEND);
	rc = CLI_FAIL;
	progress_begin(&bar, progress_wanted(a.progress, to_file));
	while (pos < size) {
		bool allocated = true;
		uint64_t end = size;

		if (progress_update(&bar, pos, size) < 0)
			goto out;
		if (sparse) {
			chain_extent(chain, pos, &allocated, &end);
			if (!allocated) {
				pos = end;
				continue;
			}
		}
		while (pos < end) {
			size_t n = end - pos < IO_CHUNK ? (size_t)(end - pos) : IO_CHUNK;
			int wrc;

			if (chain_read(chain, buf, n, pos, &err) < 0) {
				cli_fail(&err);
				goto out;
			}
			wrc = sparse ? fsutil_pwrite_sparse(STDOUT_FILENO, buf, n, pos)
				     : write_all(STDOUT_FILENO, buf, n);
			if (wrc < 0 && !progress_interrupted()) {
				cli_error("cannot write the output: %s", strerror(-wrc));
				goto out;
			}
			pos += n;
			if (wrc < 0 || progress_update(&bar, pos, size) < 0)
				goto out;
		}
	}
	if (sparse && ftruncate(STDOUT_FILENO, (off_t)size) < 0) {
		cli_error("cannot size the output: %s", strerror(errno));
		goto out;
	}
	rc = progress_update(&bar, pos, size) < 0 ? CLI_FAIL : CLI_OK;
out:
	progress_end(&bar);
	if (progress_interrupted() && rc == CLI_FAIL)
		cli_error("interrupted: %s",
			  sparse ? "the output file is left empty" : "the output is not whole");
	/* A file that was empty is left empty: none of it can be taken for the disk. */
	if (rc != CLI_OK && sparse && ftruncate(STDOUT_FILENO, 0) < 0)
		cli_error("cannot empty the output again: %s", strerror(errno));
	free(buf);
	chain_close(chain);
	pathmap_free(a.common.pathmap);
	return rc;
}

/* ---- flatten ---- */

/* The merged disk of @chain in @format ("vhd", "vhdx", or NULL: the chain's own). */
static int flatten_stream(struct chain *chain, const char *format, const char *seed,
			  struct stream **out, struct error *err)
{
	bool vhdx = format ? strcmp(format, "vhdx") == 0 : chain_format(chain) == DISK_FORMAT_VHDX;
	struct stream_vhd_options vo = {.seed = seed};
	struct stream_vhdx_options xo = {.seed = seed, .top_id = disk_id(chain_level(chain, 0))};

	if (vhdx == (chain_format(chain) == DISK_FORMAT_VHDX))
		return stream_new_merged(out, chain, seed, err);
	if (!vhdx)
		return stream_new_vhd(out, chain, &vo, err);
	/* A VHD chain made VHDX: Hyper-V's defaults (32 MiB blocks, 512-byte
	 * logical and 4 KiB physical sectors). */
	return stream_new_vhdx(out, chain, &xo, err);
}

static int vhd_flatten(int argc, char **argv)
{
	struct chain *chain = NULL;
	struct stream *stream = NULL;
	struct progress bar = {0};
	struct vhd_args a;
	struct error err;
	const char *out_path = "";
	char temp[PATH_MAX] = "";
	int fd = -1, rc, code;

	rc = parse_command(argc, argv, usage_flatten, 2, 2, &a);
	if (rc)
		goto out;
	if (a.format && strcmp(a.format, "vhd") != 0 && strcmp(a.format, "vhdx") != 0) {
		rc = cli_usage(usage_flatten, "format '%s': want vhd or vhdx", a.format);
		goto out;
	}
	out_path = argv[a.first + 1];
	progress_catch_signals();
	rc = open_operand_chain(argv, &a, &chain);
	if (rc)
		goto out;
	error_clear(&err);
	if (!a.format && has_suffix(out_path, ".vhdx"))
		a.format = "vhdx";
	else if (!a.format && has_suffix(out_path, ".vhd"))
		a.format = "vhd";
	if (flatten_stream(chain, a.format, a.seed, &stream, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	/* Written under a temporary name beside OUT, named OUT once whole. */
	rc = CLI_FAIL;
	if (fsutil_name_taken(out_path)) {
		cli_error("cannot create '%s': %s", out_path, strerror(EEXIST));
		goto out;
	}
	fd = fsutil_make_partial(out_path, false, temp, sizeof(temp));
	if (fd < 0) {
		cli_error("cannot create '%s': %s", out_path, strerror(-fd));
		temp[0] = '\0';
		goto out;
	}
	progress_begin(&bar, progress_wanted(a.progress, true));
	if (stream_write_compact(stream, fd, progress_update, &bar, &err) < 0) {
		if (!progress_interrupted()) {
			error_prefix(&err, "cannot write '%s'", out_path);
			cli_fail(&err);
		}
		goto out;
	}
	code = fsync(fd) < 0 ? errno : 0;
	if (close(fd) < 0 && !code)
		code = errno;
	fd = -1;
	/* The last word before OUT takes its name. */
	if (!code && progress_update(&bar, bar.done, bar.total) < 0)
		goto out;
	if (!code)
		code = -fsutil_publish(temp, out_path);
	if (code) {
		cli_error("cannot write '%s': %s", out_path, strerror(code));
		goto out;
	}
	temp[0] = '\0';
	rc = CLI_OK;
out:
	progress_end(&bar);
	if (fd >= 0)
		close(fd);
	if (temp[0])
		unlink(temp);
	if (progress_interrupted() && rc == CLI_FAIL)
		cli_error("interrupted: '%s' is not written", out_path);
	stream_free(stream);
	chain_close(chain);
	pathmap_free(a.common.pathmap);
	return rc;
}

static const struct cli_command vhd_commands[] = {
	{.name = "info",
	 .usage = usage_info,
	 .summary = "show a VHD's footer, header and locators, or a VHDX's metadata, and the\n"
		    "chain; exit 1 if it is broken",
	 .operands = "file",
	 .run = vhd_info},
	{.name = "check",
	 .usage = usage_check,
	 .summary = "validate a VHD or VHDX and its whole chain; exit 1 if damaged",
	 .operands = "file",
	 .run = vhd_check},
	{.name = "create",
	 .usage = usage_create,
	 .summary = "create a fixed or dynamic (default) VHD or VHDX; SIZE a whole number of MiB",
	 .operands = "file -",
	 .run = vhd_create_cmd},
	{.name = "snapshot",
	 .usage = usage_snapshot,
	 .summary = "create a differencing disk over PARENT",
	 .operands = "file file",
	 .run = vhd_snapshot_cmd},
	{.name = "write",
	 .usage = usage_write,
	 .summary = "write INPUT (a file, or standard input) at OFFSET, in whole sectors",
	 .operands = "file - file",
	 .run = vhd_write_cmd},
	{.name = "cat",
	 .usage = usage_cat,
	 .summary = "write the merged raw content of FILE's chain to standard output",
	 .operands = "file",
	 .run = vhd_cat},
	{.name = "flatten",
	 .usage = usage_flatten,
	 .summary = "write CHILD's chain merged into a new dynamic disk, without all-zero blocks",
	 .operands = "file file",
	 .run = vhd_flatten},
	{0},
};

const struct cli_command cmd_vhd_commands[] = {
	{.name = "vhd",
	 .summary = "VHD and VHDX files:",
	 .sub = vhd_commands,
	 .section = "VHD commands"},
	{0},
};
