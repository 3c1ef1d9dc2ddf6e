/*
 * progress.h - the progress line of impex's long jobs (export, import, vhd
 * flatten, vhd cat) on standard error, and their interruption by SIGINT or
 * SIGTERM: the handler only sets a flag, which the copy loops see through
 * the progress callbacks, so that they stop, remove what they made, and the
 * command exits 1.
 */
#ifndef IMPEX_PROGRESS_H
#define IMPEX_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One job's line. Caller-owned: progress_begin() fills it, progress_end() ends the line. */
struct progress {
	bool shown;	       /* drawn at all */
	uint64_t done, total;  /* bytes */
	char label[64];	       /* what is being written (a file's name), or "" */
	struct timespec start; /* CLOCK_MONOTONIC */
	struct timespec drawn; /* when the line was last drawn; zero: never */
	size_t width;	       /* characters of the line last drawn */
};

/**
 * Whether a job shows its line: @forced (-p, --progress), or standard error
 * a terminal, @output_ok (what the job writes is not that terminal) and not
 * in CI (CI set to anything but "", "0" or "false").
 */
bool progress_wanted(bool forced, bool output_ok);

/** Start @p: nothing drawn yet; drawn from now on only if @shown. */
void progress_begin(struct progress *p, bool shown);

/**
 * The core's callback (@ctx a struct progress): @done of @total bytes.
 * Redraws the line at most four times a second. Returns 0, or -EINTR once
 * SIGINT or SIGTERM came: the job stops.
 */
int progress_update(void *ctx, uint64_t done, uint64_t total);

/** Name @label (may be NULL) on the line: the file being written. */
void progress_label(struct progress *p, const char *label);

/**
 * Draw the line as it stands (the final state) and end it with a newline,
 * if it was drawn at all (a job that failed before its first update has
 * none).
 */
void progress_end(struct progress *p);

/**
 * From now on SIGINT and SIGTERM set the flag progress_interrupted() reads
 * and nothing more; a second one acts as if impex caught neither (it dies).
 */
void progress_catch_signals(void);

/** Whether SIGINT or SIGTERM came since progress_catch_signals(). */
bool progress_interrupted(void);

#endif
