/*
 * import_recover.c - what imports killed midway left (core/import.h,
 * import_recover()): the journals of imports that never committed
 * (core/journal.h), then temporary names and staging folders no running
 * import holds (core/staging.h). Run by each import before it begins, and
 * by each import mount when it starts.
 */
#include "import_run.h"

#include "error.h"
#include "hyperv.h"
#include "journal.h"
#include "staging.h"
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Whether @path, an entry of import_run_open_places(), is a VM root: @s's target VM root or
 * the store's. */
static bool vm_root(const struct import_settings *s, const char *path)
{
	return path != s->target_vhd_data_root && path != s->target_snapshot_data_root;
}

void import_recover_all(struct store *store, const struct import_settings *s,
			void (*report)(void *ctx, const char *message), void *ctx)
{
	struct journal_root roots[IMPORT_RUN_ROOTS];
	size_t count = import_run_open_places(store, s, roots, IMPORT_RUN_ROOTS);
	char message[PATH_MAX + 128];

	/* The journals of the VM roots: the target VM root and the store's roots. */
	for (size_t i = 0; i < count; i++) {
		bool seen = false;
		int fd;

		if (!vm_root(s, roots[i].path))
			continue;
		for (size_t k = 0; k < i; k++)
			seen = seen || (vm_root(s, roots[k].path) &&
					strcmp(roots[k].path, roots[i].path) == 0);
		if (seen || roots[i].fd < 0)
			continue;
		fd = journal_folder_open(roots[i].fd, roots[i].path, false, NULL);
		if (fd == -EPERM && report) {
			snprintf(message, sizeof(message),
				 "'%s/%s' is not this process's own: its journals are left alone",
				 roots[i].path, JOURNAL_FOLDER);
			report(ctx, message);
		}
		if (fd >= 0) {
			journal_recover(fd, roots[i].fd, roots, count, report, ctx);
			close(fd);
		}
	}
	/* Then temporary names, and staging folders no mount holds. */
	for (size_t i = 0; i < count; i++) {
		int staging;

		if (roots[i].fd < 0)
			continue;
		if (roots[i].path == s->target_vm_data_root)
			staging_sweep_temps(roots[i].fd, HYPERV_VMS_DIR);
		if (roots[i].path == s->target_snapshot_data_root)
			staging_sweep_temps(roots[i].fd, HYPERV_SNAPSHOTS_DIR);
		if (roots[i].path != s->target_vhd_data_root)
			continue;
		staging_sweep_temps(roots[i].fd, "");
		staging = staging_open(roots[i].fd, roots[i].path, false, NULL);
		if (staging >= 0 && staging_sweep(staging) && report) {
			snprintf(message, sizeof(message),
				 "some import folders in '%s/%s' could not be removed",
				 roots[i].path, STAGING_FOLDER);
			report(ctx, message);
		}
		if (staging >= 0)
			close(staging);
	}
	import_run_close_places(roots, count);
}

int import_recover(struct store *store, const struct import_settings *s,
		   void (*report)(void *ctx, const char *message), void *ctx, struct error *err)
{
	int lock = store_lock(store, err);

	if (lock < 0)
		return lock;
	import_recover_all(store, s, report, ctx);
	store_unlock(lock);
	return 0;
}
