/*
 * importfs_checker.c - the import mount's background thread: it watches
 * each import, and when one has nothing open for writing and has been
 * quiet for the settle time, has it checked and registered by the core
 * (core/import_job.h), then applies the outcome to what the mount shows (a
 * finished import's view, its folder gone). A failed write fails the
 * import here too.
 */
#define FUSE_USE_VERSION 314

#include "importfs_internal.h"

#include "clock.h"
#include "error.h"
#include "log.h"

#include <errno.h>
#include <fuse.h>
#include <stdio.h>
#include <string.h>

/* How long the thread sleeps when nothing wakes it. */
#define TICK_NS (50 * 1000000L)

/* The import is over (registered or failed): its view stays, its folder goes. @imp->rw is held
 * alone. */
static void finish(struct importfs_import *imp)
{
	struct error err;

	if (!importfs_view_taken(&imp->view))
		importfs_view_take(&imp->view, import_job_folder_fd(imp->job));
	error_clear(&err);
	if (import_job_remove_folder(imp->job, &err) < 0)
		fslog(FUSE_LOG_ERR, "import '%s': %s", imp->name, error_message(&err));
}

/* Fail @imp with @e (@id, @message): everything it made goes. @imp->rw is held alone. */
static void fail(struct importfs_import *imp, int e, const char *id, const char *message)
{
	import_job_fail(imp->job, e, id, message);
	finish(imp);
	fslog(FUSE_LOG_ERR, "import '%s' failed and was rolled back: %s", imp->name, message);
}

/*
 * Check @imp, quiet and closed (@last: its last change), and register it when it is whole.
 * The registration holds no lock of the import, so that a store lock held elsewhere stalls
 * no operation of the mount.
 */
static void check_and_register(struct importfs *fs, struct importfs_import *imp, uint64_t last)
{
	enum import_job_result result = IMPORT_JOB_WAITING;
	char id[37];
	struct error err;

	pthread_rwlock_wrlock(&imp->rw);
	if (!imp->gone && atomic_load(&imp->writers) == 0 && atomic_load(&imp->last_ns) == last) {
		atomic_store(&imp->dirty, false);
		imp->checked_ns = clock_monotonic_ns();
		result = import_job_check(imp->job);
		/* What the copy tool wrote, before the registration changes a byte: from now on
		 * the folder's operations use it. */
		if (result == IMPORT_JOB_READY)
			importfs_view_take(&imp->view, import_job_folder_fd(imp->job));
	}
	pthread_rwlock_unlock(&imp->rw);
	if (result != IMPORT_JOB_READY)
		return;
	error_clear(&err);
	result = import_job_run(imp->job, last, id, &err);
	pthread_rwlock_wrlock(&imp->rw);
	if (result == IMPORT_JOB_STORE_CHANGED) {
		importfs_view_discard(&imp->view); /* it takes changes again */
	} else if (result == IMPORT_JOB_FAILED) {
		finish(imp);
		fslog(FUSE_LOG_ERR, "import '%s' failed and was rolled back: %s", imp->name,
		      error_message(&err));
	} else {
		finish(imp);
		if (fs->o->verbose)
			fslog(FUSE_LOG_INFO, "import '%s' registered VM %s", imp->name, id);
	}
	pthread_rwlock_unlock(&imp->rw);
}

/* Look at @imp (fs->mu held, and let go while it is checked): fail it, check it, or wait. */
static void look_at(struct importfs *fs, struct importfs_import *imp)
{
	int failing = atomic_load(&imp->failing);
	uint64_t last = atomic_load(&imp->last_ns);
	enum import_state state = import_job_state(imp->job);
	uint64_t now = clock_monotonic_ns();

	if ((state != IMPORT_STATE_COPYING && state != IMPORT_STATE_WAITING) || imp->gone)
		return;
	if (!failing && (atomic_load(&imp->writers) > 0 ||
			 now - last < (uint64_t)fs->o->settle_ms * 1000000u)) {
		import_job_copying(imp->job);
		return;
	}
	/* A waiting import is looked at again now and then: the store changes too (room made, a
	 * clashing VM deleted, a switch added). */
	if (!failing && !atomic_load(&imp->dirty) &&
	    !(state == IMPORT_STATE_WAITING && now - imp->checked_ns > IMPORTFS_RECHECK_NS))
		return;
	pthread_mutex_unlock(&fs->mu);
	if (failing) {
		char message[256];

		snprintf(message, sizeof(message), "a file could not be written: %s",
			 strerror(failing));
		pthread_rwlock_wrlock(&imp->rw);
		fail(imp, failing, "write-failed", message);
		pthread_rwlock_unlock(&imp->rw);
	} else {
		check_and_register(fs, imp, last);
	}
	pthread_mutex_lock(&fs->mu);
}

static void *checker(void *arg)
{
	struct importfs *fs = arg;

	pthread_mutex_lock(&fs->mu);
	while (!fs->stop) {
		struct timespec until;

		/* fs->wake waits on CLOCK_MONOTONIC (importfs_main()). */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += TICK_NS;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&fs->wake, &fs->mu, &until);
		/* The list may grow while fs->mu is let go: by index, not by a pointer to it. */
		for (size_t i = 0; i < fs->count && !fs->stop; i++)
			look_at(fs, fs->imports[i]);
	}
	pthread_mutex_unlock(&fs->mu);
	return NULL;
}

int importfs_checker_start(struct importfs *fs)
{
	int rc = pthread_create(&fs->checker, NULL, checker, fs);

	if (rc != 0)
		return -rc;
	fs->checker_running = true;
	return 0;
}

void importfs_checker_stop(struct importfs *fs)
{
	if (!fs->checker_running)
		return;
	pthread_mutex_lock(&fs->mu);
	fs->stop = true;
	pthread_cond_signal(&fs->wake);
	pthread_mutex_unlock(&fs->mu);
	pthread_join(fs->checker, NULL);
	fs->checker_running = false;
}

int importfs_write_failed(struct importfs *fs, struct importfs_import *imp, int e)
{
	if (e == ENOSPC || e == EDQUOT || e == EIO || e == EFBIG) {
		int none = 0;

		atomic_compare_exchange_strong(&imp->failing, &none, e);
		pthread_cond_signal(&fs->wake);
	}
	return -e;
}
