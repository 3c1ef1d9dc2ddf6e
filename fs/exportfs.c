/*
 * exportfs.c - the export mount's life (see exportfs.h): set up with its
 * first tree (the top folders), the revalidating thread started once mounted
 * (it lists the store at once, then looks again) and stopped before the
 * unmount, everything released at the end. The tree lists every VM from its
 * configuration and plans each when it is first looked at (exportfs_ops.c);
 * it is made again when the store changes (exportfs_renew.c); the handlers
 * serve it from the inode table (exportfs_inode.c).
 */
#define FUSE_USE_VERSION 314

#include "exportfs.h"

#include "error.h"
#include "export.h"
#include "exportfs_inode.h"
#include "exportfs_ops.h"
#include "exportfs_renew.h"
#include "lease.h"
#include "log.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

int exportfs_init(struct exportfs *fs, struct error *err)
{
	struct export_notes notes = {exportfs_note, fs};
	pthread_condattr_t clock;

	pthread_rwlock_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->expand_lock, NULL);
	pthread_mutex_init(&fs->ref_lock, NULL);
	openfiles_init(&fs->open_files);
	pthread_mutex_init(&fs->wake_lock, NULL);
	pthread_mutex_init(&fs->logged_lock, NULL);
	/* Timed waits on the monotonic clock: a change of the time of day stalls none. */
	pthread_condattr_init(&clock);
	pthread_condattr_setclock(&clock, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->wake, &clock);
	pthread_cond_init(&fs->listing, &clock);
	pthread_cond_init(&fs->ahead_wake, &clock);
	pthread_condattr_destroy(&clock);
	fs->initialized = true;
	if (export_planner_new(fs->store, &fs->settings, &notes, &fs->planner, err) < 0 ||
	    export_planner_new(fs->store, &fs->settings, &notes, &fs->lazy_planner, err) < 0)
		return -ENOMEM;
	return exportfs_renew_first(fs, err);
}

int exportfs_wait_listed(struct exportfs *fs)
{
	unsigned tries;
	bool listed;

	if (atomic_load(&fs->listed))
		return 0;
	pthread_mutex_lock(&fs->wake_lock);
	tries = fs->list_tries;
	while (!atomic_load(&fs->listed) && fs->list_tries == tries && !fs->stop)
		pthread_cond_wait(&fs->listing, &fs->wake_lock);
	listed = atomic_load(&fs->listed);
	pthread_mutex_unlock(&fs->wake_lock);
	return listed ? 0 : EIO;
}

/* The revalidating thread: a look every fs->revalidate seconds until asked to stop. */
static void *revalidating(void *data)
{
	struct exportfs *fs = data;

	pthread_mutex_lock(&fs->wake_lock);
	while (!fs->stop) {
		struct timespec until;

		/* The first look lists the store at once. */
		if (atomic_load(&fs->listed) || fs->list_tries) {
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += fs->revalidate;
			pthread_cond_timedwait(&fs->wake, &fs->wake_lock, &until);
		}
		if (fs->stop)
			break;
		pthread_mutex_unlock(&fs->wake_lock);
		exportfs_revalidate(fs);
		pthread_mutex_lock(&fs->wake_lock);
	}
	fs->ended = true;
	pthread_cond_broadcast(&fs->wake);
	pthread_mutex_unlock(&fs->wake_lock);
	return NULL;
}

void exportfs_wake_ahead(struct exportfs *fs, size_t next)
{
	pthread_mutex_lock(&fs->wake_lock);
	fs->ahead_next = next;
	fs->ahead_credit = EXPORTFS_AHEAD;
	pthread_cond_signal(&fs->ahead_wake);
	pthread_mutex_unlock(&fs->wake_lock);
}

/* The thread planning ahead: the VMs granted, until asked to stop. */
static void *planning_ahead(void *data)
{
	struct exportfs *fs = data;

	pthread_mutex_lock(&fs->wake_lock);
	while (!fs->stop) {
		size_t from = fs->ahead_next, next = from;

		if (!fs->ahead_credit) {
			pthread_cond_wait(&fs->ahead_wake, &fs->wake_lock);
			continue;
		}
		fs->ahead_credit--;
		pthread_mutex_unlock(&fs->wake_lock);
		if (!exportfs_plan_ahead(fs, &next))
			next = SIZE_MAX; /* nothing left to plan */
		pthread_mutex_lock(&fs->wake_lock);
		if (next == SIZE_MAX)
			fs->ahead_credit = 0;
		else if (fs->ahead_next == from) /* no lookup asked for another place meanwhile */
			fs->ahead_next = next;
	}
	fs->ahead_ended = true;
	pthread_cond_broadcast(&fs->wake);
	pthread_mutex_unlock(&fs->wake_lock);
	return NULL;
}

int exportfs_start(struct exportfs *fs, struct fuse_session *se, const char *mountpoint)
{
	struct error err;

	/* Here, in the process that serves (after going to the background): leases
	 * let reads be spliced; without them reads are copied and checked. */
	error_clear(&err);
	if (!fs->copy_reads && lease_service_start(&err) < 0)
		fslog(FUSE_LOG_WARNING, "warning: %s: reads are copied", error_message(&err));
	fs->session = se;
	fs->mountpoint = mountpoint;
	if (pthread_create(&fs->thread, NULL, revalidating, fs) != 0)
		return -EAGAIN;
	fs->thread_started = true;
	/* Without it, each VM is planned when looked up, as before. */
	fs->ahead_started = pthread_create(&fs->ahead_thread, NULL, planning_ahead, fs) == 0;
	return 0;
}

bool exportfs_stop(struct exportfs *fs, int wait_ms)
{
	struct timespec until;
	bool ended;

	if (!fs->thread_started)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&fs->wake_lock);
	fs->stop = true;
	pthread_cond_broadcast(&fs->wake);
	pthread_cond_broadcast(&fs->listing);
	pthread_cond_broadcast(&fs->ahead_wake);
	while (!fs->ended || (fs->ahead_started && !fs->ahead_ended)) {
		if (wait_ms < 0)
			pthread_cond_wait(&fs->wake, &fs->wake_lock);
		else if (pthread_cond_timedwait(&fs->wake, &fs->wake_lock, &until) == ETIMEDOUT)
			break;
	}
	ended = fs->ended && (!fs->ahead_started || fs->ahead_ended);
	pthread_mutex_unlock(&fs->wake_lock);
	if (!ended)
		return false;
	pthread_join(fs->thread, NULL);
	fs->thread_started = false;
	if (fs->ahead_started)
		pthread_join(fs->ahead_thread, NULL);
	fs->ahead_started = false;
	return true;
}

void exportfs_release(struct exportfs *fs)
{
	exportfs_stop(fs, -1);
	if (!fs->initialized)
		return;
	exportfs_close_open_files(fs);
	lease_service_stop();
	exportfs_gen_unref(fs, fs->previous);
	fs->previous = NULL;
	exportfs_gen_unref(fs, fs->current);
	fs->current = NULL;
	export_planner_free(fs->planner);
	fs->planner = NULL;
	export_planner_free(fs->lazy_planner);
	fs->lazy_planner = NULL;
	free(fs->logged);
	fs->logged = NULL;
	fs->logged_count = fs->logged_cap = 0;
}
