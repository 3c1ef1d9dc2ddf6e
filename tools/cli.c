#include "cli.h"

#include "error.h"
#include "pathmap.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("impex: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_warning(const char *fmt, ...)
{
	va_list ap;

	fputs("impex: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("impex: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	return CLI_USAGE;
}

int cli_fail(const struct error *err)
{
	cli_error("%s", error_message(err));
	return CLI_FAIL;
}

int cli_parse_size(const char *text, uint64_t *out)
{
	char *end;
	uint64_t value, unit = 1;

	if (!text[0] || text[0] == '-' || text[0] == '+')
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || end == text)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		unit = 1ull << 10;
		break;
	case 'm':
	case 'M':
		unit = 1ull << 20;
		break;
	case 'g':
	case 'G':
		unit = 1ull << 30;
		break;
	case 't':
	case 'T':
		unit = 1ull << 40;
		break;
	case '\0':
		break;
	default:
		return -EINVAL;
	}
	if (unit > 1) {
		end++;
		if (strcasecmp(end, "iB") != 0 && strcasecmp(end, "B") != 0 && *end)
			return -EINVAL;
	} else if (*end) {
		return -EINVAL;
	}
	if (value > UINT64_MAX / unit)
		return -EINVAL;
	*out = value * unit;
	return 0;
}

const char *cli_format_size(uint64_t bytes, char *buf, size_t cap)
{
	static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, cap, "%" PRIu64 " bytes", bytes);
		return buf;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (v == (double)(uint64_t)v)
		snprintf(buf, cap, "%" PRIu64 " %s", (uint64_t)v, units[u]);
	else
		snprintf(buf, cap, "%.1f %s", v, units[u]);
	return buf;
}

void cli_options_begin(void)
{
	optind = 1;
	opterr = 0;
}

int cli_common_option(int c, const char *usage, char **argv, struct cli_common *common)
{
	switch (c) {
	case CLI_OPTION_PATHMAP:
		return cli_add_pathmap(&common->pathmap, optarg);
	case 'j':
		common->json = true;
		return 0;
	case 'h':
		printf("usage: %s\n", usage);
		exit(CLI_OK);
	case ':':
		return cli_usage(usage, "option '%s' needs a value", argv[optind - 1]);
	default:
		if (optopt)
			return cli_usage(usage, "unknown option '-%c'", optopt);
		return cli_usage(usage, "unknown option '%s'", argv[optind - 1]);
	}
}

int cli_add_pathmap(struct pathmap **map, const char *spec)
{
	struct error err;

	error_clear(&err);
	if (!*map) {
		*map = pathmap_new();
		if (!*map) {
			cli_error("out of memory");
			return CLI_FAIL;
		}
	}
	if (pathmap_add_list(*map, spec, &err) < 0) {
		cli_error("%s", error_message(&err));
		fputs("usage: --pathmap 'WINDOWS_PATH=LINUX_DIR', e.g. --pathmap "
		      "'C:\\VMs=/srv/vms'\n",
		      stderr);
		return CLI_USAGE;
	}
	return 0;
}
