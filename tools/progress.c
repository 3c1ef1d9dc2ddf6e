#include "progress.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define REDRAW_NS 250000000ll /* at most four lines a second */
#define BAR_WIDTH 20
#define GIB	  (1024.0 * 1024 * 1024)
#define MIB	  (1024.0 * 1024)

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

void progress_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a write blocked on a pipe returns. The handler is reset
	 * once it ran, so that a second Ctrl-C kills a job slow to stop. */
	sa.sa_flags = (int)SA_RESETHAND;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

bool progress_interrupted(void)
{
	return interrupted != 0;
}

bool progress_wanted(bool forced, bool output_ok)
{
	const char *ci = getenv("CI");

	if (forced)
		return true;
	if (ci && ci[0] && strcmp(ci, "0") != 0 && strcmp(ci, "false") != 0)
		return false;
	return output_ok && isatty(STDERR_FILENO);
}

void progress_begin(struct progress *p, bool shown)
{
	memset(p, 0, sizeof(*p));
	p->shown = shown;
	clock_gettime(CLOCK_MONOTONIC, &p->start);
}

void progress_label(struct progress *p, const char *label)
{
	const char *slash = label ? strrchr(label, '/') : NULL;

	snprintf(p->label, sizeof(p->label), "%s", slash ? slash + 1 : label ? label : "");
}

static long long elapsed_ns(const struct timespec *from, const struct timespec *to)
{
	return (long long)(to->tv_sec - from->tv_sec) * 1000000000ll +
	       (to->tv_nsec - from->tv_nsec);
}

/* " 42% [========            ] 1.2/2.9 GiB  85.3 MiB/s  disk.vhd", as wide as the terminal allows.
 */
static void draw(struct progress *p, const struct timespec *now)
{
	static const struct {
		double size;
		const char *name;
	} units[] = {{GIB, "GiB"}, {MIB, "MiB"}, {1024.0, "KiB"}};
	char line[256];
	int percent = p->total ? (int)(p->done * 100 / p->total) : 100;
	int fill = percent * BAR_WIDTH / 100, n;
	double seconds = (double)elapsed_ns(&p->start, now) / 1e9;
	double per_second = seconds > 0.001 ? (double)p->done / seconds : 0;
	size_t cols = 80, len, u = 0, r = 0;
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		cols = ws.ws_col;
	/* The unit that fits the total, and the rate: GiB, MiB, KiB for small ones. */
	while (u < 2 && (double)p->total < units[u].size)
		u++;
	while (r < 2 && per_second < units[r].size)
		r++;
	n = snprintf(line, sizeof(line), "%3d%% [%.*s%*s] %.1f/%.1f %s  %.1f %s/s%s%s", percent,
		     fill, "====================", BAR_WIDTH - fill, "",
		     (double)p->done / units[u].size, (double)p->total / units[u].size,
		     units[u].name, per_second / units[r].size, units[r].name,
		     p->label[0] ? "  " : "", p->label);
	len = n < 0 ? 0 : (size_t)n >= sizeof(line) ? sizeof(line) - 1 : (size_t)n;
	if (len > cols - 1)
		len = cols - 1;
	/* What the line before had beyond this one is blanked: no terminal escapes, so that a
	 * forced line reads the same in a log file. */
	fprintf(stderr, "\r%.*s%*s", (int)len, line, p->width > len ? (int)(p->width - len) : 0,
		"");
	fflush(stderr);
	p->width = len;
	p->drawn = *now;
}

int progress_update(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	struct timespec now;

	p->done = done;
	p->total = total;
	if (interrupted)
		return -EINTR;
	if (!p->shown)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((p->drawn.tv_sec == 0 && p->drawn.tv_nsec == 0) ||
	    elapsed_ns(&p->drawn, &now) >= REDRAW_NS)
		draw(p, &now);
	return 0;
}

void progress_end(struct progress *p)
{
	struct timespec now;

	/* A job that failed before its first byte shows no line at all. */
	if (!p->shown || (p->drawn.tv_sec == 0 && p->drawn.tv_nsec == 0))
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	draw(p, &now);
	fputc('\n', stderr);
	fflush(stderr);
	p->shown = false;
}
