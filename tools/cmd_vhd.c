/*
 * cmd_vhd.c - "impex vhd": its table and options, and the commands that
 * create, snapshot, write, read and flatten VHD and VHDX files (info and
 * check: cmd_vhd_info.c).
 */
#include "cmd_vhd.h"

#include "chain.h"
#include "cli.h"
#include "cmd_vhd_info.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
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

static const char usage_create[] =
	"impex vhd create [--format vhd|vhdx] [--type fixed|dynamic] [--block-size SIZE] "
	"[--sector-size 512|4096] FILE SIZE";
static const char usage_snapshot[] = "impex vhd snapshot [--pathmap WIN=DIR] PARENT CHILD";
static const char usage_write[] = "impex vhd write FILE OFFSET [INPUT|-]";
static const char usage_cat[] = "impex vhd cat [--pathmap WIN=DIR] [-p|--progress] FILE";
static const char usage_flatten[] = "impex vhd flatten [--pathmap WIN=DIR] [-p|--progress] "
				    "[--seed TEXT] [--format vhd|vhdx] CHILD OUT";

/* One vhd command's own option @c into the struct cmd_vhd_args @ctx (cli_parse's take). */
static int take_option(void *ctx, int c, const char *usage)
{
	struct cmd_vhd_args *a = ctx;

	(void)usage;
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
		return CLI_NOT_OWN;
	}
	return 0;
}

int cmd_vhd_parse(int argc, char **argv, const char *usage, int min, int max,
		  struct cmd_vhd_args *a)
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
	/* An operand that starts with '-' (a negative offset) goes after "--". */
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

int cmd_vhd_open_chain(char **argv, const struct cmd_vhd_args *a, struct chain **chain)
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
	else if (cli_parse_disk_format(option, format) < 0)
		return cli_usage(usage, "format '%s': want vhd or vhdx", option);
	return 0;
}

static int vhd_create_cmd(int argc, char **argv)
{
	struct disk_create_options o = {.type = VHD_TYPE_DYNAMIC};
	struct cmd_vhd_args a;
	struct error err;
	int rc;

	rc = cmd_vhd_parse(argc, argv, usage_create, 2, 2, &a);
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
	struct cmd_vhd_args a;
	struct error err;
	int rc;

	rc = cmd_vhd_parse(argc, argv, usage_snapshot, 2, 2, &a);
	/* A snapshot over a parent whose own chain is broken would be unreadable. */
	if (rc == 0)
		rc = cmd_vhd_open_chain(argv, &a, &chain);
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
	struct cmd_vhd_args a;
	int rc = cmd_vhd_parse(argc, argv, usage_write, 2, 3, &a);

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
	struct cmd_vhd_args a;
	struct progress bar = {0};
	struct error err;
	struct stat st;
	uint64_t pos = 0, size;
	bool sparse = false, to_file;
	int rc;

	rc = cmd_vhd_parse(argc, argv, usage_cat, 1, 1, &a);
	if (rc)
		goto out;
	progress_catch_signals();
	rc = cmd_vhd_open_chain(argv, &a, &chain);
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

/* The merged disk of @chain in @format (0: the chain's own). */
static int flatten_stream(struct chain *chain, enum disk_format format, const char *seed,
			  struct stream **out, struct error *err)
{
	bool vhdx = (format ? format : chain_format(chain)) == DISK_FORMAT_VHDX;
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
	struct cmd_vhd_args a;
	struct error err;
	const char *out_path = "";
	char temp[PATH_MAX] = "";
	enum disk_format format = 0; /* the chain's own */
	int fd = -1, rc, code;

	rc = cmd_vhd_parse(argc, argv, usage_flatten, 2, 2, &a);
	if (rc)
		goto out;
	if (a.format && cli_parse_disk_format(a.format, &format) < 0) {
		rc = cli_usage(usage_flatten, "format '%s': want vhd or vhdx", a.format);
		goto out;
	}
	out_path = argv[a.first + 1];
	progress_catch_signals();
	rc = cmd_vhd_open_chain(argv, &a, &chain);
	if (rc)
		goto out;
	error_clear(&err);
	if (!a.format && has_suffix(out_path, ".vhdx"))
		format = DISK_FORMAT_VHDX;
	else if (!a.format && has_suffix(out_path, ".vhd"))
		format = DISK_FORMAT_VHD;
	if (flatten_stream(chain, format, a.seed, &stream, &err) < 0) {
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
	 .usage = cmd_vhd_info_usage,
	 .summary = "show a VHD's footer, header and locators, or a VHDX's metadata, and the\n"
		    "chain; exit 1 if it is broken",
	 .operands = "file",
	 .run = cmd_vhd_info},
	{.name = "check",
	 .usage = cmd_vhd_check_usage,
	 .summary = "validate a VHD or VHDX and its whole chain; exit 1 if damaged",
	 .operands = "file",
	 .run = cmd_vhd_check},
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
