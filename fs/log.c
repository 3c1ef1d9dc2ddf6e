/*
 * The daemon's messages, through one function (log.h).
 */
#include "log.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

/* Set before any thread starts, read only after. */
static char mount_point[PATH_MAX] = "?";
static bool to_syslog;

/* libfuse's levels are syslog's priorities, by value (fuse_log.h). */
static int priority(enum fuse_log_level level)
{
	return (int)level >= LOG_EMERG && (int)level <= LOG_DEBUG ? (int)level : LOG_ERR;
}

/* libfuse's messages ("fuse: ...\n"; with -d, each request), as they are but for the
 * newline syslog does not want. */
static void from_libfuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char text[4096];
	size_t n;

	if (!to_syslog) {
		vfprintf(stderr, fmt, ap);
		return;
	}
	vsnprintf(text, sizeof(text), fmt, ap);
	n = strlen(text);
	if (n && text[n - 1] == '\n')
		text[--n] = '\0';
	if (n)
		syslog(priority(level), "%s: %s", mount_point, text);
}

void fslog_init(const char *mountpoint)
{
	snprintf(mount_point, sizeof(mount_point), "%s", mountpoint ? mountpoint : "?");
	fuse_set_log_func(from_libfuse);
}

void fslog_background(void)
{
	openlog("impexfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	to_syslog = true;
}

void fslog(enum fuse_log_level level, const char *fmt, ...)
{
	char text[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* One message, one line: a name from an export folder may hold a newline. */
	for (char *c = text; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	if (to_syslog)
		syslog(priority(level), "%s: %s", mount_point, text);
	else
		fprintf(stderr, "impexfs: %s\n", text);
}
