/*
 * lease.c - read leases on an open file's sources (see lease.h).
 */
#include "lease.h"

#include "clock.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct lease_guard {
	/* Reads in flight under the leases, and whether they may still enter:
	 * a reader counts itself then looks, the service clears @leased then
	 * looks at the count (both sequentially consistent), so either the
	 * reader sees it cleared or the service sees the reader. */
	atomic_uint inflight;
	atomic_bool leased;
	/* Some lease_guard_add() did not get its lease: never leased. Guarded by svc.mu. */
	bool failed;
	/* A lease was broken and the leases given back (or to be): leased again only by
	 * lease_guard_renew(), tried at most every RENEW_NS (when @next_renew has passed,
	 * CLOCK_MONOTONIC nanoseconds). Guarded by svc.mu. */
	bool broken;
	atomic_uint_fast64_t next_renew;
	/* Broken while reads were in flight: the leases are given back once they
	 * have ended (the service looks again every PENDING_NS). Guarded by svc.mu. */
	bool pending;
	int *fds; /* leased, in the service's table */
	unsigned count, cap;
};

/* The service. @mu guards the table and running/tid; @stop is atomic. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t ready;
	bool running;
	pid_t tid; /* the service thread, which the kernel signals */
	pthread_t thread;
	atomic_bool stop;
	struct lease_guard **by_fd; /* leased descriptor -> its guard */
	size_t cap;
	unsigned pending; /* guards whose leases wait for their reads to end */
} svc = {.mu = PTHREAD_MUTEX_INITIALIZER, .ready = PTHREAD_COND_INITIALIZER};

/* The signal a lease break sends (a real-time one, queued with its descriptor). */
static int break_signal(void)
{
	return SIGRTMIN + 3;
}

/* Until the reads in flight under @g's leases have ended (microseconds: a
 * reply's copy by the kernel). */
static void wait_reads(struct lease_guard *g)
{
	const struct timespec pause = {0, 20 * 1000};

	while (atomic_load(&g->inflight))
		nanosleep(&pause, NULL);
}

/* How often guards whose leases wait for reads in flight are looked at. */
#define PENDING_NS (2 * 1000 * 1000)

/* With svc.mu held: give @g's leases back if no read is in flight under
 * them; else it waits (pending), and the service does not: a read held up
 * (a source on a file system that hangs) holds up no other guard's writers. */
static void give_back(struct lease_guard *g)
{
	if (atomic_load(&g->inflight)) {
		if (!g->pending) {
			g->pending = true;
			svc.pending++;
		}
		return;
	}
	if (g->pending) {
		g->pending = false;
		svc.pending--;
	}
	for (unsigned i = 0; i < g->count; i++)
		fcntl(g->fds[i], F_SETLEASE, F_UNLCK);
}

/* With svc.mu held: the lease on @fd is being broken (or was lost): the
 * guard stops being leased. A signal for a descriptor whose lease stands
 * (a number reused since) changes nothing. */
static void on_break(int fd)
{
	struct lease_guard *g = fd >= 0 && (size_t)fd < svc.cap ? svc.by_fd[fd] : NULL;

	if (g && atomic_load(&g->leased) && fcntl(fd, F_GETLEASE) != F_RDLCK) {
		g->broken = true;
		atomic_store(&g->leased, false);
		give_back(g);
	}
}

/* With svc.mu held: give back the pending guards' leases whose reads have ended. */
static void on_pending(void)
{
	for (size_t fd = 0; fd < svc.cap && svc.pending; fd++) {
		struct lease_guard *g = svc.by_fd[fd];

		/* A guard is found at each of its descriptors: the first does it. */
		if (g && g->pending)
			give_back(g);
	}
}

static void *service(void *arg)
{
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, break_signal());
	sigaddset(&set, SIGIO);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_mutex_lock(&svc.mu);
	svc.tid = gettid();
	pthread_cond_broadcast(&svc.ready);
	pthread_mutex_unlock(&svc.mu);
	while (!atomic_load(&svc.stop)) {
		const struct timespec soon = {0, PENDING_NS};
		siginfo_t info;
		bool pending;
		int sig;

		pthread_mutex_lock(&svc.mu);
		pending = svc.pending > 0;
		pthread_mutex_unlock(&svc.mu);
		sig = pending ? sigtimedwait(&set, &info, &soon) : sigwaitinfo(&set, &info);
		pthread_mutex_lock(&svc.mu);
		if (sig == break_signal() && info.si_code > 0) {
			on_break(info.si_fd);
		} else if (sig == SIGIO) {
			/* The queue overflowed: look at every lease. */
			for (size_t fd = 0; fd < svc.cap; fd++)
				on_break((int)fd);
		}
		on_pending();
		pthread_mutex_unlock(&svc.mu);
	}
	return NULL;
}

int lease_service_start(struct error *err)
{
	int rc = 0;

	pthread_mutex_lock(&svc.mu);
	if (!svc.running) {
		atomic_store(&svc.stop, false);
		svc.tid = 0;
		rc = pthread_create(&svc.thread, NULL, service, NULL);
		if (rc == 0) {
			while (svc.tid == 0)
				pthread_cond_wait(&svc.ready, &svc.mu);
			svc.running = true;
		}
	}
	pthread_mutex_unlock(&svc.mu);
	return rc ? error_set(err, rc, "cannot start the lease service: %s", strerror(rc)) : 0;
}

void lease_service_stop(void)
{
	pthread_mutex_lock(&svc.mu);
	if (!svc.running) {
		pthread_mutex_unlock(&svc.mu);
		return;
	}
	svc.running = false;
	atomic_store(&svc.stop, true);
	pthread_mutex_unlock(&svc.mu);
	pthread_kill(svc.thread, break_signal());
	pthread_join(svc.thread, NULL);
	free(svc.by_fd);
	svc.by_fd = NULL;
	svc.cap = 0;
}

struct lease_guard *lease_guard_new(void)
{
	return calloc(1, sizeof(struct lease_guard));
}

/* With svc.mu held: room in the table for descriptor @fd. */
static bool table_fits(int fd)
{
	size_t cap = svc.cap ? svc.cap : 64;
	struct lease_guard **grown;

	while (cap <= (size_t)fd)
		cap *= 2;
	if (cap == svc.cap)
		return true;
	grown = realloc(svc.by_fd, cap * sizeof(*grown));
	if (!grown)
		return false;
	memset(grown + svc.cap, 0, (cap - svc.cap) * sizeof(*grown));
	svc.by_fd = grown;
	svc.cap = cap;
	return true;
}

/* With svc.mu held: a read lease on @fd, its break signalled to the service's thread. Each
 * time: giving a lease back clears whom the kernel signals (the process then, with SIGIO). */
static bool take_lease(int fd)
{
	struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = svc.tid};

	return fcntl(fd, F_SETSIG, break_signal()) == 0 && fcntl(fd, F_SETOWN_EX, &owner) == 0 &&
	       fcntl(fd, F_SETLEASE, F_RDLCK) == 0;
}

bool lease_guard_add(struct lease_guard *g, int fd)
{
	bool had = false;

	if (g->count == g->cap) {
		unsigned cap = g->cap ? g->cap * 2 : 4;
		int *grown = realloc(g->fds, cap * sizeof(*grown));

		if (grown) {
			g->fds = grown;
			g->cap = cap;
		}
	}
	pthread_mutex_lock(&svc.mu);
	/* In the table first, so that a break as soon as the lease is had finds it. */
	if (!g->failed && fd >= 0 && g->count < g->cap && svc.running && table_fits(fd) &&
	    !svc.by_fd[fd]) {
		svc.by_fd[fd] = g;
		if (take_lease(fd)) {
			g->fds[g->count++] = fd;
			had = true;
		} else {
			svc.by_fd[fd] = NULL;
		}
	}
	if (!had)
		g->failed = true;
	/* Leased while every add so far had its lease and none was given back. */
	atomic_store(&g->leased, !g->failed && !g->broken);
	pthread_mutex_unlock(&svc.mu);
	return had;
}

bool lease_guard_enter(struct lease_guard *g)
{
	if (!g)
		return false;
	atomic_fetch_add(&g->inflight, 1);
	if (atomic_load(&g->leased))
		return true;
	atomic_fetch_sub(&g->inflight, 1);
	return false;
}

void lease_guard_leave(struct lease_guard *g)
{
	atomic_fetch_sub(&g->inflight, 1);
}

/* How often lease_guard_renew() tries a guard again. */
#define RENEW_NS (1000ull * 1000 * 1000)

bool lease_guard_renew(struct lease_guard *g, bool (*unchanged)(void *ctx), void *ctx)
{
	uint64_t now = clock_monotonic_ns(), next;
	unsigned taken = 0;
	bool ok;

	if (!g || atomic_load(&g->leased))
		return false;
	/* One try a RENEW_NS, by one reader: the others read the checked way meanwhile. */
	next = atomic_load(&g->next_renew);
	if (now < next || !atomic_compare_exchange_strong(&g->next_renew, &next, now + RENEW_NS))
		return false;
	pthread_mutex_lock(&svc.mu);
	/* Broken and given back: not while reads from before the break are in flight. */
	ok = svc.running && !g->failed && g->broken && !g->pending;
	for (; ok && taken < g->count; taken++) {
		int fd = g->fds[taken];

		ok = (size_t)fd < svc.cap && svc.by_fd[fd] == g && take_lease(fd);
	}
	/* Leased again (no writer can change them now): the sources must be as planned. */
	if (ok && unchanged(ctx)) {
		g->broken = false;
		atomic_store(&g->leased, true);
	} else {
		for (unsigned i = 0; i < taken; i++)
			fcntl(g->fds[i], F_SETLEASE, F_UNLCK);
	}
	ok = atomic_load(&g->leased);
	pthread_mutex_unlock(&svc.mu);
	return ok;
}

void lease_guard_free(struct lease_guard *g)
{
	if (!g)
		return;
	/* A reader may still be between its reply and lease_guard_leave(). */
	wait_reads(g);
	pthread_mutex_lock(&svc.mu);
	if (g->pending) {
		g->pending = false;
		svc.pending--;
	}
	for (unsigned i = 0; i < g->count; i++) {
		int fd = g->fds[i];

		if ((size_t)fd < svc.cap && svc.by_fd[fd] == g)
			svc.by_fd[fd] = NULL;
		fcntl(fd, F_SETLEASE, F_UNLCK);
	}
	pthread_mutex_unlock(&svc.mu);
	free(g->fds);
	free(g);
}
