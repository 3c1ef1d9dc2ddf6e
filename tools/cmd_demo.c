/*
 * impex demo STORE: a realistic store made with the same core as every
 * other command. Three VMs on two switches; "blog" has an IDE disk
 * partitioned as a real guest's is (a GPT written here, one partition holding
 * an ext4 file system made by mkfs.ext4 -d from a folder of files) and a
 * SCSI data disk, a tree of snapshots with a branch, files that change
 * between snapshots (only the sectors that differ are written, so writes
 * are 512-byte granular), and saved state on the VM and on one snapshot;
 * "db" is a generation 2 VM with a VHDX disk and two checkpoints.
 */
#include "cmd_demo.h"

#include "cli.h"
#include "disk.h"
#include "error.h"
#include "fsutil.h"
#include "partition.h"
#include "pathbuf.h"
#include "store.h"
#include "vhd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB	    (1024ull * 1024)
#define SYSTEM_DISK (64 * MiB)
#define DATA_DISK   (32 * MiB)
/* The system disk's one partition: from 1 MiB, leaving room for the backup GPT at the end. */
#define ROOT_START (1 * MiB)
#define ROOT_SIZE  (SYSTEM_DISK - 2 * MiB)

extern char **environ;

struct demo {
	struct store *store;
	struct pathbuf work;  /* scratch folder: the guest's files and file system images */
	struct pathbuf image; /* the file system as last written to the system disk, or "" */
	struct error err;
};

/* @out made the path @name (a path relative to it) in the scratch folder. Returns 0 or -ENOMEM. */
static int scratch_path(struct demo *d, const char *name, struct pathbuf *out)
{
	if (pathbuf_setf(out, "%s/%s", d->work.buf, name) < 0)
		return error_set(&d->err, ENOMEM, "out of memory");
	return 0;
}

static int run_quiet(char *const argv[])
{
	pid_t pid;
	int status, rc;
	posix_spawn_file_actions_t actions;

	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	if (rc != 0)
		return -rc;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Write @text as the file @name (a path relative to it) of the scratch folder. */
static int write_text(struct demo *d, const char *name, const char *text)
{
	struct pathbuf path = PATHBUF_INIT;
	int rc = scratch_path(d, name, &path);

	if (rc == 0 && (rc = fsutil_write_atomic(path.buf, text, strlen(text))) < 0)
		error_errno(&d->err, -rc, "cannot write", path.buf);
	pathbuf_release(&path);
	return rc;
}

/* Remove the file @name (a path relative to it) of the scratch folder, if it is there. */
static int remove_text(struct demo *d, const char *name)
{
	struct pathbuf path = PATHBUF_INIT;
	int rc = scratch_path(d, name, &path);

	if (rc == 0)
		unlink(path.buf);
	pathbuf_release(&path);
	return rc;
}

/* The disk @index of the current state of VM @vm, as a path into @out. */
static int current_disk(struct demo *d, const char *vm, size_t index, struct pathbuf *out)
{
	struct store_vm *vms = NULL;
	const struct store_vm *found;
	size_t count = 0;
	int rc = store_list(d->store, &vms, &count, &d->err);

	if (rc == 0) {
		found = store_find_vm(vms, count, vm);
		if (found && index < found->disk_count && found->disks[index].path)
			rc = pathbuf_setf(out, "%s", found->disks[index].path) < 0
				     ? error_set(&d->err, ENOMEM, "out of memory")
				     : 0;
		else
			rc = error_set(&d->err, ENOENT, "VM '%s' has no disk %zu", vm, index);
	}
	store_vms_free(vms, count);
	return rc;
}

/* Write into @disk the sectors where the file @next differs from @prev (or
 * from zeros when @prev is NULL). Returns the sectors written, or -errno. */
static int64_t write_changes(struct demo *d, const char *disk, const char *prev, const char *next)
{
	uint8_t *a = malloc(MiB), *b = malloc(MiB);
	int fa = prev ? open(prev, O_RDONLY | O_CLOEXEC) : -1;
	int fb = open(next, O_RDONLY | O_CLOEXEC);
	struct disk *vhd = NULL;
	struct stat st;
	int64_t written = 0;
	int rc = 0;

	if (!a || !b || fb < 0 || (prev && fa < 0) || fstat(fb, &st) < 0) {
		rc = error_set(&d->err, errno ? errno : ENOMEM, "cannot read the image '%s'", next);
		goto out;
	}
	rc = disk_open(&vhd, disk, DISK_OPEN_WRITE, &d->err);
	for (uint64_t at = 0; rc == 0 && at < (uint64_t)st.st_size; at += MiB) {
		size_t n =
			(uint64_t)st.st_size - at < MiB ? (size_t)((uint64_t)st.st_size - at) : MiB;

		rc = fsutil_pread_full(fb, b, n, at);
		if (rc == 0 && prev)
			rc = fsutil_pread_full(fa, a, n, at);
		else if (rc == 0)
			memset(a, 0, n);
		/* Runs of differing sectors, each one write. */
		for (size_t s = 0; rc == 0 && s < n; s += 512) {
			size_t e = s;

			while (e < n && memcmp(a + e, b + e, 512) != 0)
				e += 512;
			if (e > s) {
				rc = disk_write(vhd, b + s, e - s, at + s, &d->err);
				written += (int64_t)(e - s) / 512;
				s = e;
			}
		}
		if (rc == -ENODATA)
			rc = error_set(&d->err, EIO, "'%s' is shorter than it was", next);
	}
	if (rc == 0 && vhd)
		rc = disk_flush(vhd, &d->err);
out:
	disk_close(vhd);
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(a);
	free(b);
	return rc < 0 ? rc : written;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* A GPT header for sector @lba (the other at @alternate), its 128 entries at @entries. */
static void gpt_header(uint8_t *h, uint64_t lba, uint64_t alternate, uint64_t entries,
		       uint32_t entries_crc)
{
	/* The disk's GUID, fixed: the same image every time. */
	static const uint8_t disk_guid[16] = {0x3c, 0x8e, 0x61, 0x0b, 0x5d, 0x2f, 0x4e, 0x41,
					      0x9a, 0x07, 0x6d, 0x1e, 0x42, 0xb8, 0x95, 0x2c};
	uint64_t sectors = SYSTEM_DISK / 512;

	memset(h, 0, 512);
	memcpy(h, "EFI PART", 8);
	put_le32(h + 8, 0x00010000);
	put_le32(h + 12, 92);
	put_le64(h + 24, lba);
	put_le64(h + 32, alternate);
	put_le64(h + 40, 34);		/* after the primary's entries */
	put_le64(h + 48, sectors - 34); /* before the backup's */
	memcpy(h + 56, disk_guid, 16);
	put_le64(h + 72, entries);
	put_le32(h + 80, 128);
	put_le32(h + 84, 128);
	put_le32(h + 88, entries_crc);
	put_le32(h + 16, partition_crc32(0, h, 92));
}

/*
 * Partition the system disk image @fd (SYSTEM_DISK bytes) as an installer
 * would: a protective MBR, a GPT and its backup, one Linux partition
 * "blog-root" from ROOT_START, ROOT_SIZE long, with fixed GUIDs.
 */
static int write_gpt(int fd)
{
	/* The type "Linux file system data" and the partition's own GUID, as stored. */
	static const uint8_t linux_data[16] = {0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
					       0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4};
	static const uint8_t root_guid[16] = {0x5e, 0x1a, 0x7c, 0x2d, 0x0b, 0x6f, 0x4a, 0x93,
					      0x8c, 0x51, 0x2e, 0x9d, 0x3f, 0x70, 0xa4, 0x16};
	uint8_t mbr[512] = {0}, header[512], entries[128 * 128] = {0};
	uint64_t last = SYSTEM_DISK / 512 - 1;
	const char *name = "blog-root";
	uint32_t crc;
	int rc;

	/* The protective MBR: one partition of type 0xEE over the whole disk. */
	mbr[446 + 4] = 0xEE;
	put_le32(mbr + 446 + 8, 1);
	put_le32(mbr + 446 + 12, (uint32_t)last);
	mbr[510] = 0x55;
	mbr[511] = 0xAA;
	memcpy(entries, linux_data, 16);
	memcpy(entries + 16, root_guid, 16);
	put_le64(entries + 32, ROOT_START / 512);
	put_le64(entries + 40, (ROOT_START + ROOT_SIZE) / 512 - 1);
	for (size_t i = 0; name[i]; i++)
		entries[56 + 2 * i] = (uint8_t)name[i]; /* UTF-16LE */
	crc = partition_crc32(0, entries, sizeof(entries));
	rc = fsutil_pwrite_full(fd, mbr, 512, 0);
	gpt_header(header, 1, last, 2, crc);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, header, 512, 512);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, entries, sizeof(entries), 2 * 512);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, entries, sizeof(entries), (last - 32) * 512);
	gpt_header(header, last, 1, last - 32, crc);
	if (rc == 0)
		rc = fsutil_pwrite_full(fd, header, 512, last * 512);
	return rc;
}

/* Make the system disk's image (a GPT, the folder "files" as an ext4 file system in its
 * partition) and write what changed into the system disk. */
static int update_guest_files(struct demo *d, const char *vm)
{
	struct pathbuf disk = PATHBUF_INIT, next = PATHBUF_INIT, files = PATHBUF_INIT;
	char size[32], extended[160];
	int64_t sectors;
	int fd = -1, rc;

	snprintf(size, sizeof(size), "%lluk", (unsigned long long)(ROOT_SIZE / 1024));
	snprintf(extended, sizeof(extended),
		 "offset=%llu,nodiscard,root_owner=0:0,hash_seed=2b5a8e1c-0d3f-4a7b-9c6e-"
		 "1f2d3e4a5b6c",
		 (unsigned long long)ROOT_START);
	rc = scratch_path(d, "files", &files);
	if (rc == 0)
		rc = scratch_path(d, "next.img", &next);
	if (rc < 0)
		goto out;
	unlink(next.buf);
	fd = open(next.buf, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, SYSTEM_DISK) < 0) {
		rc = error_errno(&d->err, errno, "cannot create", next.buf);
		goto out;
	}
	{
		/* Fixed UUID, hash seed and times: the same files give the same image. The file
		 * system lies in the partition (offset=), of its size. */
		char *argv[] = {"mkfs.ext4",
				"-q",
				"-F",
				"-b",
				"4096",
				"-L",
				"blog-root",
				"-U",
				"6c1d2a8e-4b0f-4c61-9a3e-7d5b8f2c1e90",
				"-E",
				extended,
				"-d",
				files.buf,
				next.buf,
				size,
				NULL};

		rc = run_quiet(argv);
	}
	if (rc < 0) {
		rc = error_set(&d->err, -rc,
			       "mkfs.ext4 failed to make the guest's file system (is e2fsprogs "
			       "installed?)");
		goto out;
	}
	rc = write_gpt(fd);
	close(fd);
	fd = -1;
	if (rc < 0) {
		rc = error_errno(&d->err, -rc, "cannot write", next.buf);
		goto out;
	}
	rc = current_disk(d, vm, 0, &disk);
	if (rc < 0)
		goto out;
	sectors = write_changes(d, disk.buf, d->image.len ? d->image.buf : NULL, next.buf);
	if (sectors < 0) {
		rc = (int)sectors;
		goto out;
	}
	if (!d->image.len && (rc = scratch_path(d, "current.img", &d->image)) < 0)
		goto out;
	if (rename(next.buf, d->image.buf) < 0) {
		rc = error_errno(&d->err, errno, "cannot keep", next.buf);
		goto out;
	}
	printf("  %s: guest files written, %lld sectors changed\n", vm, (long long)sectors);
out:
	if (fd >= 0)
		close(fd);
	pathbuf_release(&disk);
	pathbuf_release(&next);
	pathbuf_release(&files);
	return rc;
}

/* Write @count bytes of pattern @seed at @offset of disk @index of @vm. */
static int write_pattern(struct demo *d, const char *vm, size_t index, uint64_t offset,
			 size_t count, unsigned seed)
{
	struct pathbuf disk = PATHBUF_INIT;
	struct disk *vhd = NULL;
	uint8_t *buf = malloc(count);
	int rc = buf ? current_disk(d, vm, index, &disk) : error_set(&d->err, ENOMEM, "no memory");

	for (size_t i = 0; buf && i < count; i++)
		buf[i] = (uint8_t)(seed * 131 + i / 512);
	if (rc == 0)
		rc = disk_open(&vhd, disk.buf, DISK_OPEN_WRITE, &d->err);
	if (rc == 0)
		rc = disk_write(vhd, buf, count, offset, &d->err);
	if (rc == 0)
		rc = disk_flush(vhd, &d->err);
	disk_close(vhd);
	free(buf);
	pathbuf_release(&disk);
	return rc;
}

static int snapshot(struct demo *d, const char *vm, const char *name)
{
	char id[37];
	int rc = store_snapshot_vm(d->store, vm, name, id, &d->err);

	if (rc == 0)
		printf("  %s: snapshot '%s' %s\n", vm, name, id);
	return rc;
}

static int new_vm(struct demo *d, const char *name, int generation,
		  const struct store_new_disk *disks, size_t disk_count,
		  const char *const *switches, size_t switch_count)
{
	struct store_new_vm spec = {
		.name = name,
		.generation = generation,
		.memory_mib = 256,
		.disks = disks,
		.disk_count = disk_count,
		.switches = switches,
		.switch_count = switch_count,
	};
	char id[37];
	int rc = store_create_vm(d->store, &spec, id, &d->err);

	if (rc == 0)
		printf("  %s: new generation %d VM %s, %zu disk%s\n", name, generation, id,
		       disk_count, disk_count == 1 ? "" : "s");
	return rc;
}

/* Keep a copy of the current file system image as @name, or (@save false)
 * make the copy current again. */
static int keep_image(struct demo *d, const char *name, bool save)
{
	struct pathbuf copy = PATHBUF_INIT;
	int rc = scratch_path(d, name, &copy);

	if (rc == 0) {
		rc = save ? fsutil_copy_file(d->image.buf, copy.buf)
			  : fsutil_copy_file(copy.buf, d->image.buf);
		if (rc < 0)
			error_errno(&d->err, -rc, "cannot copy", save ? d->image.buf : copy.buf);
	}
	pathbuf_release(&copy);
	return rc;
}

/* The story of the blog VM: install, post, save, update, then go back and branch. */
static int make_blog(struct demo *d)
{
	static const struct store_new_disk disks[] = {{CONFIG_BUS_IDE, SYSTEM_DISK},
						      {CONFIG_BUS_SCSI, DATA_DISK}};
	static const char *const switches[] = {"External", "Internal"};
	struct pathbuf files = PATHBUF_INIT, posts = PATHBUF_INIT;
	int rc = new_vm(d, "blog", 1, disks, 2, switches, 2);

	if (rc == 0)
		rc = scratch_path(d, "files", &files);
	if (rc == 0)
		rc = scratch_path(d, "files/posts", &posts);
	if (rc == 0 && (mkdir(files.buf, 0755) < 0 || mkdir(posts.buf, 0755) < 0))
		rc = error_errno(&d->err, errno, "cannot create", posts.buf);
	if (rc == 0)
		rc = write_text(d, "files/index.html", "<h1>My blog</h1>\n<p>Installed.</p>\n");
	if (rc == 0)
		rc = write_text(d, "files/motd", "Welcome to blog, version 1\n");
	if (rc == 0)
		rc = update_guest_files(d, "blog");
	if (rc == 0)
		rc = write_pattern(d, "blog", 1, 0, 512, 1); /* the first sector of the data disk */
	if (rc == 0)
		rc = snapshot(d, "blog", "installed");
	if (rc == 0)
		rc = write_text(d, "files/posts/hello.txt", "Hello, world: the first post.\n");
	if (rc == 0)
		rc = update_guest_files(d, "blog");
	if (rc == 0)
		rc = write_pattern(d, "blog", 1, 2 * MiB - 1024, 2048, 2); /* across a block */
	if (rc == 0)
		rc = snapshot(d, "blog", "first post");
	if (rc == 0)
		rc = keep_image(d, "first-post.img", true);
	if (rc == 0)
		rc = store_save_state(d->store, "blog", &d->err);
	if (rc == 0)
		rc = snapshot(d, "blog", "running, saved");
	if (rc == 0)
		rc = write_text(d, "files/motd", "Welcome to blog, version 2 (updated)\n");
	if (rc == 0)
		rc = write_text(d, "files/posts/update.txt", "We moved to version 2.\n");
	if (rc == 0)
		rc = update_guest_files(d, "blog");
	if (rc == 0)
		rc = write_pattern(d, "blog", 1, DATA_DISK - 512, 512, 3); /* the last sector */
	if (rc == 0)
		rc = snapshot(d, "blog", "version 2");
	if (rc == 0) {
		/* Back to the first post, and a different future from there. */
		rc = store_apply_snapshot(d->store, "blog", "first post", &d->err);
		printf("  blog: applied 'first post'\n");
	}
	if (rc == 0)
		rc = remove_text(d, "files/posts/update.txt");
	if (rc == 0)
		rc = write_text(d, "files/motd", "Welcome to blog, version 1 with a theme\n");
	if (rc == 0)
		rc = write_text(d, "files/posts/theme.txt", "A new theme, instead of version 2.\n");
	if (rc == 0)
		rc = keep_image(d, "first-post.img", false); /* what the disk holds again */
	if (rc == 0)
		rc = update_guest_files(d, "blog");
	if (rc == 0)
		rc = snapshot(d, "blog", "new theme");
	if (rc == 0)
		rc = write_pattern(d, "blog", 1, 5 * 512, 3 * 512, 4);
	if (rc == 0)
		rc = store_save_state(d->store, "blog", &d->err);
	pathbuf_release(&files);
	pathbuf_release(&posts);
	return rc;
}

/* A database server (generation 2, SCSI only: a VHDX disk, Hyper-V's default there, and two
 * checkpoints, AVHDX) and a gateway without snapshots. */
static int make_others(struct demo *d)
{
	static const struct store_new_disk db_disks[] = {{CONFIG_BUS_SCSI, 48 * MiB}};
	static const struct store_new_disk gw_disks[] = {{CONFIG_BUS_IDE, 16 * MiB}};
	static const char *const internal[] = {"Internal"};
	static const char *const both[] = {"External", "Internal"};
	int rc = new_vm(d, "db", 2, db_disks, 1, internal, 1);

	if (rc == 0)
		rc = write_pattern(d, "db", 0, 0, 64 * 1024, 5);
	if (rc == 0)
		rc = snapshot(d, "db", "schema");
	if (rc == 0)
		rc = write_pattern(d, "db", 0, 4096 + 512, 1024, 6);
	if (rc == 0)
		rc = snapshot(d, "db", "data loaded");
	if (rc == 0)
		rc = write_pattern(d, "db", 0, 3 * MiB - 512, 2048, 7);
	if (rc == 0)
		rc = new_vm(d, "gateway", 1, gw_disks, 1, both, 2);
	if (rc == 0)
		rc = write_pattern(d, "gateway", 0, 8 * MiB, 4096, 7);
	return rc;
}

static const char usage_demo[] = "impex demo STORE";

int cmd_demo(int argc, char **argv)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_parse p = {
		.usage = usage_demo,
		.options = options,
		.min_operands = 1,
		.max_operands = 1,
	};
	struct cli_common common = {0};
	struct store_options o = {0};
	struct demo d = {.work = PATHBUF_INIT, .image = PATHBUF_INIT};
	const char *root, *tmp = getenv("TMPDIR");
	int first, rc;

	rc = cli_parse(argc, argv, &p, &common, &first);
	if (rc)
		return rc;
	root = argv[first];
	{
		char **names = NULL;
		size_t count = 0;

		/* A new store only: the demo never mixes its VMs into real ones. */
		if (fsutil_list_names(root, NULL, &names, &count) == 0 && count) {
			fsutil_names_free(names, count);
			cli_error("'%s' is not empty: the demo makes a new store", root);
			return CLI_FAIL;
		}
	}
	error_clear(&d.err);
	if (pathbuf_setf(&d.work, "%s/impex-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 ||
	    !mkdtemp(d.work.buf)) {
		cli_error("cannot create a scratch folder: %s",
			  strerror(d.work.err ? ENOMEM : errno));
		pathbuf_release(&d.work);
		return CLI_FAIL;
	}
	o.roots = &root;
	o.root_count = 1;
	printf("Making a demo store in '%s':\n", root);
	rc = store_init(root, &d.err);
	if (rc == 0)
		rc = store_open(&d.store, &o, &d.err);
	if (rc == 0)
		rc = store_add_switch(d.store, "External", NULL, &d.err);
	if (rc == 0)
		rc = store_add_switch(d.store, "Internal", NULL, &d.err);
	if (rc == 0)
		printf("  switches 'External' and 'Internal'\n");
	if (rc == 0)
		rc = make_blog(&d);
	if (rc == 0)
		rc = make_others(&d);
	store_free(d.store);
	fsutil_remove_tree(d.work.buf);
	pathbuf_release(&d.work);
	pathbuf_release(&d.image);
	if (rc < 0)
		return cli_fail(&d.err);
	printf("Done: 3 VMs; see them with: impex vm list --store '%s'\n", root);
	return CLI_OK;
}

const struct cli_command cmd_demo_commands[] = {
	{.name = "demo",
	 .usage = usage_demo,
	 .summary = "make a new store of three VMs with disks, files, snapshots and saved state",
	 .operands = "dir",
	 .run = cmd_demo,
	 .section = "Other"},
	{0},
};
