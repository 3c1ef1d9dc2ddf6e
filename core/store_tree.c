/*
 * store_tree.c - what a listing infers beyond what the configurations say:
 * the snapshot tree from the disk chains where the tree keys are missing
 * (docs/FORMAT.md), and which VM a disk found by its name alone belongs to.
 */
#include "store.h"

#include "chain.h"
#include "disk.h"
#include "error.h"
#include "store_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The snapshot of @vm one of whose disks is @path, or NULL. */
static struct store_snapshot *snapshot_with_disk(struct store_vm *vm, const char *path,
						 const struct store_snapshot *except)
{
	for (size_t i = 0; i < vm->snapshot_count; i++) {
		if (&vm->snapshots[i] == except)
			continue;
		for (size_t j = 0; j < vm->snapshots[i].disk_count; j++)
			if (vm->snapshots[i].disks[j].path &&
			    strcmp(vm->snapshots[i].disks[j].path, path) == 0)
				return &vm->snapshots[i];
	}
	return NULL;
}

/* The nearest snapshot whose disk is an ancestor of @disk (not @except), or NULL. */
static struct store_snapshot *nearest_snapshot(struct store *s, struct store_vm *vm,
					       const struct store_disk *disk,
					       const struct store_snapshot *except)
{
	struct store_snapshot *found = NULL;
	struct chain *chain = NULL;
	struct error err;

	if (!disk->path || store_open_chain(s, disk, &chain, &err) < 0)
		return NULL;
	for (unsigned i = 1; i < chain_depth(chain) && !found; i++) {
		char real[PATH_MAX];

		if (realpath(disk_path(chain_level(chain, i)), real))
			found = snapshot_with_disk(vm, real, except);
	}
	chain_close(chain);
	return found;
}

int store_complete_tree(struct store *s, struct store_vm *vm)
{
	struct store_snapshot *ordered;
	size_t done = 0;
	bool *placed;

	/* A snapshot that holds one of the VM's current disks was cut short
	 * before the VM moved on to its new disks: it is not a snapshot. */
	for (size_t i = 0; i < vm->snapshot_count;) {
		bool current = false;

		for (size_t k = 0; k < vm->snapshots[i].disk_count; k++)
			for (size_t d = 0; d < vm->disk_count; d++)
				current |= vm->snapshots[i].disks[k].path && vm->disks[d].path &&
					   strcmp(vm->snapshots[i].disks[k].path,
						  vm->disks[d].path) == 0;
		if (!current) {
			i++;
			continue;
		}
		store_snapshot_release(&vm->snapshots[i]);
		memmove(&vm->snapshots[i], &vm->snapshots[i + 1],
			(vm->snapshot_count - i - 1) * sizeof(*vm->snapshots));
		vm->snapshot_count--;
	}

	for (size_t i = 0; i < vm->snapshot_count; i++) {
		struct store_snapshot *snap = &vm->snapshots[i], *parent;

		if (!snap->parent_inferred || snap->disk_count == 0)
			continue;
		parent = nearest_snapshot(s, vm, &snap->disks[0], snap);
		if (parent) {
			free(snap->parent_id);
			snap->parent_id = strdup(parent->id);
			if (!snap->parent_id)
				return -ENOMEM;
		}
	}
	if (!vm->current_snapshot_id[0] && vm->snapshot_count && vm->disk_count) {
		struct store_snapshot *current = nearest_snapshot(s, vm, &vm->disks[0], NULL);

		if (current) {
			free(vm->current_snapshot_id);
			vm->current_snapshot_id = strdup(current->id);
			if (!vm->current_snapshot_id)
				return -ENOMEM;
		}
	}
	if (vm->snapshot_count < 2)
		return 0;
	ordered = calloc(vm->snapshot_count, sizeof(*ordered));
	placed = calloc(vm->snapshot_count, sizeof(*placed));
	if (!ordered || !placed) {
		free(ordered);
		free(placed);
		return -ENOMEM;
	}
	/* Parents first; snapshots whose parent is unknown count as roots, and a
	 * loop (only a damaged store has one) ends up last, as it is. */
	for (bool progress = true; progress && done < vm->snapshot_count;) {
		progress = false;
		for (size_t i = 0; i < vm->snapshot_count; i++) {
			const char *parent = vm->snapshots[i].parent_id;
			bool ready = !parent[0];

			if (placed[i])
				continue;
			if (!ready) {
				size_t j;

				for (j = 0; j < vm->snapshot_count; j++)
					if (strcasecmp(vm->snapshots[j].id, parent) == 0)
						break;
				ready = j == vm->snapshot_count || placed[j];
			}
			if (ready) {
				ordered[done++] = vm->snapshots[i];
				placed[i] = true;
				progress = true;
			}
		}
	}
	for (size_t i = 0; i < vm->snapshot_count; i++)
		if (!placed[i])
			ordered[done++] = vm->snapshots[i];
	free(vm->snapshots);
	free(placed);
	vm->snapshots = ordered;
	return 0;
}

/* A disk file a configuration names by its path, and whose. */
struct claim {
	const char *path;
	const struct store_vm *vm;
};

static int compare_claims(const void *a, const void *b)
{
	return strcmp(((const struct claim *)a)->path, ((const struct claim *)b)->path);
}

/* The disks of @vm: its own (@k == 0), then each snapshot's; NULL past the last. */
static struct store_disk *disks_of(struct store_vm *vm, size_t k, size_t *count)
{
	if (k > vm->snapshot_count)
		return NULL;
	*count = k == 0 ? vm->disk_count : vm->snapshots[k - 1].disk_count;
	return k == 0 ? vm->disks : vm->snapshots[k - 1].disks;
}

/*
 * A disk found by its name alone is not used when another VM's configuration
 * (or one of its snapshots') names that very file by its path: the file is
 * that VM's, and binding it would let one VM read or write another's disk.
 */
int store_refuse_claimed(struct store_vm *vms, size_t count)
{
	struct claim *claims = NULL;
	size_t n = 0, cap = 0;
	struct store_disk *disks;
	size_t disk_count;
	int rc = 0;

	for (size_t i = 0; i < count; i++)
		for (size_t k = 0; (disks = disks_of(&vms[i], k, &disk_count)); k++)
			for (size_t d = 0; d < disk_count; d++) {
				if (!disks[d].path || disks[d].by_name)
					continue;
				if (n == cap) {
					struct claim *grown;

					cap = cap ? cap * 2 : 64;
					grown = realloc(claims, cap * sizeof(*grown));
					if (!grown) {
						free(claims);
						return -ENOMEM;
					}
					claims = grown;
				}
				claims[n++] = (struct claim){disks[d].path, &vms[i]};
			}
	if (n)
		qsort(claims, n, sizeof(*claims), compare_claims);
	for (size_t i = 0; i < count && rc == 0 && n; i++)
		for (size_t k = 0; rc == 0 && (disks = disks_of(&vms[i], k, &disk_count)); k++)
			for (size_t d = 0; d < disk_count && rc == 0; d++) {
				struct store_disk *disk = &disks[d];
				const struct store_vm *owner = NULL;
				size_t low = 0, high = n;

				if (!disk->path || !disk->by_name)
					continue;
				while (low < high) { /* the first claim not before the path */
					size_t mid = low + (high - low) / 2;

					if (strcmp(claims[mid].path, disk->path) < 0)
						low = mid + 1;
					else
						high = mid;
				}
				for (;
				     low < n && !owner && strcmp(claims[low].path, disk->path) == 0;
				     low++)
					if (strcasecmp(claims[low].vm->id, vms[i].id) != 0)
						owner = claims[low].vm;
				if (!owner)
					continue;
				disk->problem = store_format_text(
					"disk '%s' of '%s' is not used: found by its "
					"name alone as '%s', "
					"which VM '%s' (%s) names by its path",
					disk->written,
					k == 0 ? vms[i].config_path
					       : vms[i].snapshots[k - 1].config_path,
					disk->path, owner->name, owner->id);
				free(disk->path);
				free(disk->how);
				disk->path = disk->how = NULL;
				if (!disk->problem)
					rc = -ENOMEM;
			}
	free(claims);
	return rc;
}
