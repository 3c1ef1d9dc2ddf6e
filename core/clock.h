/*
 * clock.h - the time of CLOCK_MONOTONIC in nanoseconds, for the intervals and
 * timeouts of the mounts (a change of the time of day moves none of them).
 */
#ifndef IMPEX_CLOCK_H
#define IMPEX_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
