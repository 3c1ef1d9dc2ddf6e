/*
 * lease.h - knowing, without a system call per read, that nobody can write
 * the files an open export file reads.
 *
 * A read lease (fcntl F_SETLEASE F_RDLCK, fcntl(2)) is given only while no
 * process has the file open for writing, and any process that then opens it
 * for writing or truncates it waits until the lease is given back (at most
 * /proc/sys/fs/lease-break-time seconds). While a guard holds a lease on
 * every source of a file, the bytes it reads cannot change under it, which
 * is what lets the FUSE driver splice them from the page cache with no copy
 * and no check after (a spliced page is read when the kernel copies it, not
 * when it is queued).
 *
 * The lease service learns of each break on a thread of its own (the
 * kernel signals that thread, F_SETSIG and F_SETOWN_EX). It marks the guard
 * unleased and gives its leases back once the reads that entered under them
 * have ended (looking again every 2 ms, never waiting on one guard: a read
 * held up holds up the writers of its own files alone, and those at most
 * for the kernel's lease-break-time): the writer can only write after them. A read
 * that finds its guard unleased falls back to reading by copy and checking
 * its sources' identity after (export_file.c), as files without a lease
 * are always read; a lease is an optimization, never the only check. Once
 * the writers have closed the files, lease_guard_renew() leases them again
 * if they are unchanged.
 *
 * A lease cannot be had (the guard is never leased) when the service is not
 * running, when some process has the file open for writing, when the daemon
 * neither owns the file nor has CAP_LEASE, or when the file system does not
 * support leases.
 *
 * Thread safety: lease_guard_enter/leave from any thread at once; the other
 * calls of a guard from one thread at a time.
 */
#ifndef IMPEX_LEASE_H
#define IMPEX_LEASE_H

#include <stdbool.h>

struct error;
struct lease_guard;

/**
 * Start the lease service (idempotent). Returns 0 or a negative errno with
 * a message; without it guards are never leased.
 */
int lease_service_start(struct error *err);

/** Stop the service. Every guard must have been freed. */
void lease_service_stop(void);

/** A new guard, leased once every lease_guard_add() has succeeded. NULL: out of memory. */
struct lease_guard *lease_guard_new(void);

/**
 * Lease @fd (open read-only, kept open by the caller until the guard is
 * freed) for @guard. Returns whether the lease was had; a guard with one
 * lease missing is never leased.
 */
bool lease_guard_add(struct lease_guard *guard, int fd);

/**
 * Begin a read under the leases: true if every source is leased and stays so
 * until lease_guard_leave(); false when the read must copy and check
 * instead (no lease, or one was broken). NULL-safe (false).
 */
bool lease_guard_enter(struct lease_guard *guard);

/** End a read that lease_guard_enter() let in. */
void lease_guard_leave(struct lease_guard *guard);

/**
 * Lease @guard's files again after a break, once their writers have closed
 * them (no lease is given while one is open for writing): then, under the
 * leases, @unchanged(@ctx) says whether the files are as they were (when not,
 * the guard stays unleased). Tried at most once a second a guard, by one
 * caller at a time; never for a guard that lacked a lease from the start.
 * Returns whether @guard is leased again.
 */
bool lease_guard_renew(struct lease_guard *guard, bool (*unchanged)(void *ctx), void *ctx);

/**
 * Give back @guard's leases and free it (not the descriptors), once the reads
 * in flight under it have ended: a reader may still be between its reply and
 * lease_guard_leave() when the file is closed. NULL-safe.
 */
void lease_guard_free(struct lease_guard *guard);

#endif
