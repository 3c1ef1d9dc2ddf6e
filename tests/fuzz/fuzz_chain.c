/*
 * fuzz_chain - a differencing chain: the input is split at
 * FUZZ_FILE_SEPARATOR into up to three files, child.vhd, parent.vhd and
 * grandparent.vhd, in a private folder; chain_open resolves the child's
 * parents (locators, path map, parent name, UUID scan), then chain_read reads
 * a few ranges and chain_extent walks the allocation.
 *
 * Checked beyond "no crash": a failed open fills the error context; merged
 * reads at any alignment equal a sector-by-sector merge done here from
 * disk_map on each level; allocation runs are non-empty, alternate, and agree
 * with chain_range_allocated.
 */
#include "chain.h"
#include "disk.h"
#include "error.h"
#include "fuzzsupport.h"
#include "pathmap.h"
#include "vhd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_READ_BYTES	(64u * 1024)
#define MAX_EXTENT_RUNS 64

static const char *const file_names[] = {"child.vhd", "parent.vhd", "grandparent.vhd"};
#define FILE_COUNT (sizeof(file_names) / sizeof(file_names[0]))

static char paths[FILE_COUNT][FUZZ_PATH_MAX];
static struct pathmap *map;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_scratch_dir();
	char spec[FUZZ_PATH_MAX + 32];
	struct error err;

	for (size_t i = 0; i < FILE_COUNT; i++)
		fuzz_path(paths[i], dir, file_names[i]);
	/* W2ku locators under these prefixes lead into the scratch folder. */
	map = pathmap_new();
	snprintf(spec, sizeof(spec), "C:\\VMs=%s;\\\\nas\\vms\\=%s", dir, dir);
	if (!map || pathmap_add_list(map, spec, &err) < 0)
		abort();
	return 0;
}

/* One sector of the merged disk (of @ss bytes), the slow way. */
static int merged_sector(struct chain *chain, uint64_t sector, uint32_t ss, uint8_t *out)
{
	for (unsigned level = 0; level < chain_depth(chain); level++) {
		struct disk *disk = chain_level(chain, level);
		struct vhd_extent ext;
		struct error err;
		int rc;

		if (sector >= disk_size(disk) / ss)
			break;
		error_clear(&err);
		rc = disk_map(disk, sector, 1, &ext, &err);
		if (rc < 0)
			return rc;
		if (ext.kind == VHD_EXTENT_PARENT)
			continue;
		if (ext.kind == VHD_EXTENT_ZERO)
			break;
		return disk_pread(disk, out, ss, ext.file_offset, &err);
	}
	memset(out, 0, ss);
	return 0;
}

/* chain_read of [@offset, @offset + @len) against merged_sector. */
static void check_read(struct chain *chain, uint64_t offset, size_t len)
{
	static uint8_t got[MAX_READ_BYTES], sector[DISK_MAX_SECTOR_SIZE];
	uint64_t size = chain_size(chain);
	uint32_t ss = chain_sector_size(chain);
	struct error err;
	size_t done = 0;

	if (offset > size)
		offset = size;
	if (len > size - offset)
		len = (size_t)(size - offset);
	error_clear(&err);
	if (chain_read(chain, got, len, offset, &err) < 0)
		return;
	while (done < len) {
		uint64_t at = offset + done;
		size_t skip = (size_t)(at % ss);
		size_t n = ss - skip < len - done ? ss - skip : len - done;

		FUZZ_CHECK(merged_sector(chain, at / ss, ss, sector) == 0);
		FUZZ_CHECK(memcmp(got + done, sector + skip, n) == 0);
		done += n;
	}
}

static void check_reads(struct chain *chain, const uint8_t *data, size_t size)
{
	uint64_t disk = chain_size(chain);
	uint64_t pick = fuzz_load(data, size, 8) % disk;
	size_t pick_len =
		(size_t)(fuzz_load(data + 8, size > 8 ? size - 8 : 0, 2) % (MAX_READ_BYTES + 1));
	uint8_t byte;
	struct error err;

	check_read(chain, 0, 4096);
	check_read(chain, disk > 4096 ? disk - 4096 : 0, 4096);
	check_read(chain, disk - 1, 1);
	check_read(chain, pick, pick_len);
	check_read(chain, pick, 1);
	error_clear(&err);
	FUZZ_CHECK(chain_read(chain, &byte, 1, disk, &err) == -EINVAL);
}

static void check_extents(struct chain *chain)
{
	uint64_t size = chain_size(chain), pos = 0;
	bool previous = false;

	for (unsigned n = 0; n < MAX_EXTENT_RUNS && pos < size; n++) {
		bool allocated;
		uint64_t end;

		chain_extent(chain, pos, &allocated, &end);
		FUZZ_CHECK(end > pos && end <= size);
		if (n > 0)
			FUZZ_CHECK(allocated != previous);
		if (allocated)
			FUZZ_CHECK(chain_range_allocated(chain, pos, 1));
		else
			FUZZ_CHECK(!chain_range_allocated(chain, pos, end - pos));
		previous = allocated;
		pos = end;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *parts[FILE_COUNT];
	size_t lens[FILE_COUNT], count;
	struct chain_options options = {
		.pathmap = map,
		.allow = fuzz_allow_inside,
		.allow_ctx = (void *)fuzz_scratch_dir(),
	};
	struct chain *chain = NULL;
	struct error err;
	uint8_t *copy;
	int rc;

	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	count = fuzz_split(copy, size, parts, lens, FILE_COUNT);
	for (size_t i = 0; i < FILE_COUNT; i++) {
		if (i < count) {
			fuzz_fix_checksums((uint8_t *)parts[i], lens[i]);
			fuzz_write_file(paths[i], parts[i], lens[i]);
		} else {
			fuzz_remove_file(paths[i]);
		}
	}
	error_clear(&err);
	rc = chain_open(&chain, paths[0], &options, &err);
	if (rc < 0) {
		fuzz_check_error(rc, &err);
		goto out;
	}
	FUZZ_CHECK(chain_depth(chain) >= 1 && chain_depth(chain) <= FILE_COUNT);
	FUZZ_CHECK(chain_level(chain, chain_depth(chain)) == NULL);
	for (unsigned i = 0; i < chain_depth(chain); i++)
		FUZZ_CHECK(chain_level_how(chain, i)[0] != '\0' || i == 0);
	for (unsigned i = 0; i < chain_warning_count(chain); i++)
		FUZZ_CHECK(chain_warning(chain, i)[0] != '\0');
	check_reads(chain, parts[0], lens[0]);
	check_extents(chain);
out:
	chain_close(chain);
	free(copy);
	return 0;
}
