/*
 * Unit tests of core/import_job (with core/import_mount): an import of an
 * import mount driven without FUSE. Each test builds a real store with a VM
 * (a disk, a snapshot, an adapter on switch "External"), exports it, opens
 * an import mount of a second, real store, and copies the export folder
 * into a job's folder with cp, as a user would copy it into the mount. What
 * a job comes to is read from the store, the disk and the job's status
 * object (core/import_status.h), never from the job's own fields.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* libjansson reads the status back; its own jsonw_string() (never called here) is renamed out of
 * the way of core/json.h's, as in test_json.c. */
#define json_string jansson_json_string
#include <jansson.h>
#undef json_string

#include "config.h"
#include "error.h"
#include "export.h"
#include "import.h"
#include "import_job.h"
#include "import_mount.h"
#include "import_status.h"
#include "json.h"
#include "staging.h"
#include "store.h"
#include "support.h"

#define MiB (1024ull * 1024)

struct fixture {
	char *temp;	       /* what support_tempdir() gave */
	char dir[PATH_MAX];    /* its real path */
	char source[PATH_MAX]; /* the store the VM comes from */
	char export[PATH_MAX]; /* its export folder */
	char target[PATH_MAX]; /* the store the mount imports into */
	char vm_id[37];	       /* the VM's GUID in the source store */
	struct import_mount *mount;
};

static void path_in(char *out, const char *dir, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		fail_msg("'%s/%s' is too long a path", dir, name);
}

static void run(const char *command)
{
	if (system(command) != 0)
		fail_msg("'%s' failed", command);
}

/* A store at @root: made, opened. */
static struct store *new_store(const char *root)
{
	const char *roots[] = {root};
	struct store_options o = {.roots = roots, .root_count = 1};
	struct store *s = NULL;
	struct error err;

	error_clear(&err);
	if (store_init(root, &err) < 0 || store_open(&s, &o, &err) < 0)
		fail_msg("%s", error_message(&err));
	return s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_new_disk disk = {CONFIG_BUS_IDE, 4 * MiB};
	const char *switches[] = {"External"};
	struct store_new_vm spec = {.name = "blog",
				    .generation = 1,
				    .disks = &disk,
				    .disk_count = 1,
				    .switches = switches,
				    .switch_count = 1};
	struct export_settings settings;
	struct export_node *plan = NULL;
	struct export_planner *planner = NULL;
	struct store_vm *vms = NULL;
	struct store *source;
	size_t count = 0;
	struct error err;
	char snap[37];

	assert_non_null(f);
	f->temp = support_tempdir();
	assert_non_null(realpath(f->temp, f->dir));
	path_in(f->source, f->dir, "source");
	path_in(f->export, f->dir, "export");
	path_in(f->target, f->dir, "target");
	assert_int_equal(mkdir(f->source, 0755), 0);
	assert_int_equal(mkdir(f->target, 0755), 0);
	error_clear(&err);
	source = new_store(f->source);
	assert_int_equal(store_add_switch(source, "External", NULL, &err), 0);
	assert_int_equal(store_create_vm(source, &spec, f->vm_id, &err), 0);
	assert_int_equal(store_snapshot_vm(source, "blog", "before", snap, &err), 0);
	assert_int_equal(store_list(source, &vms, &count, &err), 0);
	assert_int_equal(count, 1);
	export_settings_default(&settings);
	assert_int_equal(export_planner_new(source, &settings, NULL, &planner, &err), 0);
	assert_int_equal(export_plan_vm(planner, &vms[0], "blog", &plan, &err), 0);
	export_planner_free(planner);
	assert_int_equal(export_write(plan, f->export, NULL, NULL, &err), 0);
	export_node_free(plan);
	store_vms_free(vms, count);
	store_free(source);
	store_free(new_store(f->target));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	import_mount_free(f->mount);
	support_remove_tree(f->temp);
	free(f);
	return 0;
}

/* Open the import mount of the target store, with the mount options @options (may be NULL). */
static void open_mount(struct fixture *f, const char *options)
{
	struct import_mount_options o = {.store = f->target, .settings_text = options};
	struct error err;
	bool bad = false;

	error_clear(&err);
	if (import_mount_open(&f->mount, &o, &bad, &err) < 0)
		fail_msg("%s", error_message(&err));
}

/* A new job, the export folder copied into it as cp -a would. */
static struct import_job *copied_job(struct fixture *f, const char *shown)
{
	struct import_job *job = NULL;
	char command[4 * PATH_MAX];

	assert_int_equal(import_job_new(&job, f->mount, shown), 0);
	snprintf(command, sizeof(command), "cp -a '%s/.' '%s/'", f->export, import_job_folder(job));
	run(command);
	return job;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The job's object of the status file, parsed (caller frees with json_decref). */
static json_t *status_of(struct import_job *job)
{
	struct import_job_activity a = {.folder = "blog"};
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct jsonw j;
	json_error_t why;
	json_t *status;

	assert_non_null(out);
	jsonw_init(&j, out);
	import_job_write_status(job, &j, &a);
	jsonw_finish(&j);
	fclose(out);
	status = json_loadb(text, len, 0, &why);
	if (!status)
		fail_msg("the status is no JSON: %s: %s", why.text, text);
	free(text);
	return status;
}

static const char *state_of(json_t *status)
{
	return json_string_value(json_object_get(status, IMPORT_STATUS_STATE));
}

/* The error of @status with the id @id, or NULL. */
static json_t *error_with(json_t *status, const char *id)
{
	json_t *errors = json_object_get(status, IMPORT_STATUS_ERRORS);

	for (size_t i = 0; i < json_array_size(errors); i++) {
		json_t *issue = json_array_get(errors, i);
		const char *its = json_string_value(json_object_get(issue, IMPORT_STATUS_ISSUE_ID));

		if (its && strcmp(its, id) == 0)
			return issue;
	}
	return NULL;
}

/* The job checks as @want; with IMPORT_JOB_WAITING, an error @id is among its errors. */
static void check_is(struct import_job *job, enum import_job_result want, const char *id)
{
	enum import_job_result got = import_job_check(job);
	json_t *status = status_of(job);

	if (got != want)
		fail_msg("the check gave %d, not %d: %s", got, want,
			 json_dumps(status, JSON_COMPACT));
	if (id && !error_with(status, id))
		fail_msg("no error '%s' in %s", id, json_dumps(status, JSON_COMPACT));
	assert_string_equal(state_of(status), want == IMPORT_JOB_READY ? IMPORT_STATUS_REGISTERING
								       : IMPORT_STATUS_WAITING);
	json_decref(status);
}

/* How many VMs the target store lists now. */
static size_t vms_in(struct fixture *f)
{
	struct store_vm *vms = NULL;
	size_t count = 0;
	struct error err;

	error_clear(&err);
	assert_int_equal(store_list(f->mount->store, &vms, &count, &err), 0);
	store_vms_free(vms, count);
	return count;
}

/* How many names the folder @path holds, @except (may be NULL) left out. */
static size_t names_in(const char *path, const char *except)
{
	DIR *d = opendir(path);
	size_t n = 0;

	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		     (!except || strcmp(e->d_name, except) != 0);
	closedir(d);
	return n;
}

/* The whole export, the switch there: registered; the disks in the store; the folder goes. */
static void test_registered(void **state)
{
	struct fixture *f = *state;
	struct store_vm *vms = NULL;
	struct import_job *job;
	char id[37], staging[PATH_MAX], disk[PATH_MAX];
	size_t count = 0;
	struct error err;
	json_t *status, *vm;
	struct stat st;

	open_mount(f, NULL);
	error_clear(&err);
	assert_int_equal(store_add_switch(f->mount->store, "External", NULL, &err), 0);
	job = copied_job(f, "/mnt/blog");
	check_is(job, IMPORT_JOB_READY, NULL);
	assert_int_equal(import_job_run(job, now_ns(), id, &err), IMPORT_JOB_REGISTERED);
	status = status_of(job);
	assert_string_equal(state_of(status), IMPORT_STATUS_REGISTERED);
	vm = json_object_get(status, IMPORT_STATUS_VM);
	assert_string_equal(json_string_value(json_object_get(vm, IMPORT_STATUS_VM_ID)), id);
	assert_string_equal(json_string_value(json_object_get(vm, IMPORT_STATUS_VM_NAME)), "blog");
	json_decref(status);
	/* New IDs (Hyper-V's default), the name kept, the snapshot with it. */
	assert_int_equal(store_list(f->mount->store, &vms, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_string_equal(vms[0].id, id);
	assert_string_not_equal(vms[0].id, f->vm_id);
	assert_string_equal(vms[0].name, "blog");
	assert_int_equal(vms[0].snapshot_count, 1);
	store_vms_free(vms, count);
	path_in(disk, f->target, "Virtual Hard Disks/blog.vhd");
	assert_int_equal(stat(disk, &st), 0);
	/* The job's folder goes, and the staging folder is empty. */
	assert_int_equal(import_job_remove_folder(job, &err), 0);
	assert_int_equal(import_job_folder_fd(job), -1);
	path_in(staging, f->target, "Virtual Hard Disks/" STAGING_FOLDER);
	assert_int_equal(names_in(staging, NULL), 0);
	/* A registered import takes no change. */
	assert_false(import_job_live(job));
	assert_int_equal(import_job_refusal(job), -EROFS);
	import_job_free(job);
}

/* A copy without its disks waits for them; once they are there it is whole. */
static void test_waiting_for_a_missing_disk(void **state)
{
	struct fixture *f = *state;
	struct import_job *job;
	char command[4 * PATH_MAX];
	struct error err;

	open_mount(f, NULL);
	error_clear(&err);
	assert_int_equal(store_add_switch(f->mount->store, "External", NULL, &err), 0);
	job = copied_job(f, "/mnt/blog");
	snprintf(command, sizeof(command), "rm -f '%s/Virtual Hard Disks/'*",
		 import_job_folder(job));
	run(command);
	check_is(job, IMPORT_JOB_WAITING, "disk-missing");
	assert_true(import_job_live(job));
	assert_int_equal(vms_in(f), 0);
	snprintf(command, sizeof(command),
		 "cp -a '%s/Virtual Hard Disks/.' '%s/Virtual Hard Disks/'", f->export,
		 import_job_folder(job));
	run(command);
	check_is(job, IMPORT_JOB_READY, NULL);
	import_job_free(job);
}

/* An adapter on a switch the store lacks: it waits, and is checked whole once the switch is
 * made. */
static void test_waiting_for_an_unknown_switch(void **state)
{
	struct fixture *f = *state;
	struct import_job *job;
	struct error err;
	json_t *status;
	const char *message;

	open_mount(f, NULL);
	job = copied_job(f, "/mnt/blog");
	check_is(job, IMPORT_JOB_WAITING, "switch-unknown");
	status = status_of(job);
	message = json_string_value(
		json_object_get(error_with(status, "switch-unknown"), IMPORT_STATUS_ISSUE_MESSAGE));
	assert_non_null(strstr(message, "'External'"));
	json_decref(status);
	error_clear(&err);
	assert_int_equal(store_add_switch(f->mount->store, "External", NULL, &err), 0);
	check_is(job, IMPORT_JOB_READY, NULL);
	import_job_free(job);
}

/*
 * Two imports of one VM that keep its GUID, both checked whole: the first registers, and the
 * store has changed under the second, which is told so, waits, and then says why.
 */
static void test_store_changed_between_check_and_run(void **state)
{
	struct fixture *f = *state;
	struct import_job *first, *second;
	char id[37];
	struct error err;
	json_t *status;

	open_mount(f, "generate_new_id = false\n");
	error_clear(&err);
	assert_int_equal(store_add_switch(f->mount->store, "External", NULL, &err), 0);
	first = copied_job(f, "/mnt/one");
	second = copied_job(f, "/mnt/two");
	check_is(first, IMPORT_JOB_READY, NULL);
	check_is(second, IMPORT_JOB_READY, NULL);
	assert_int_equal(import_job_run(first, now_ns(), id, &err), IMPORT_JOB_REGISTERED);
	assert_string_equal(id, f->vm_id);
	assert_int_equal(import_job_run(second, now_ns(), id, &err), IMPORT_JOB_STORE_CHANGED);
	assert_int_equal(err.code, ECANCELED);
	status = status_of(second);
	assert_string_equal(state_of(status), IMPORT_STATUS_WAITING);
	assert_non_null(error_with(status, "incomplete"));
	json_decref(status);
	assert_true(import_job_live(second));
	assert_int_equal(vms_in(f), 1);
	check_is(second, IMPORT_JOB_WAITING, "id-exists");
	import_job_free(first);
	import_job_free(second);
}

/* Write @text as the job's own settings document. */
static void write_document(struct import_job *job, const char *text)
{
	char path[PATH_MAX];
	FILE *out;

	path_in(path, import_job_folder(job), IMPORT_JOB_SETTINGS);
	out = fopen(path, "w");
	assert_non_null(out);
	fputs(text, out);
	assert_int_equal(fclose(out), 0);
}

/* A document that sends the disks outside the mount's roots is refused, naming itself; nothing
 * is written there. */
static void test_hostile_document_refused(void **state)
{
	struct fixture *f = *state;
	struct import_job *job;
	char elsewhere[PATH_MAX], text[2 * PATH_MAX];
	const char *file, *message;
	struct error err;
	json_t *status, *issue;

	open_mount(f, NULL);
	error_clear(&err);
	assert_int_equal(store_add_switch(f->mount->store, "External", NULL, &err), 0);
	path_in(elsewhere, f->dir, "elsewhere");
	assert_int_equal(mkdir(elsewhere, 0755), 0);
	job = copied_job(f, "/mnt/blog");
	snprintf(text, sizeof(text), "target_vhd_data_root = %s\n", elsewhere);
	write_document(job, text);
	check_is(job, IMPORT_JOB_WAITING, "settings-invalid");
	status = status_of(job);
	issue = error_with(status, "settings-invalid");
	file = json_string_value(json_object_get(issue, IMPORT_STATUS_ISSUE_FILE));
	message = json_string_value(json_object_get(issue, IMPORT_STATUS_ISSUE_MESSAGE));
	/* Named as the user sees it, on the mount. */
	assert_string_equal(file, "/mnt/blog/" IMPORT_JOB_SETTINGS);
	assert_non_null(strstr(message, elsewhere));
	assert_non_null(strstr(message, "outside the store"));
	json_decref(status);
	assert_int_equal(names_in(elsewhere, NULL), 0);
	assert_int_equal(vms_in(f), 0);
	import_job_free(job);
}

/*
 * A document the check lets through but the run cannot honour (the current disk sent away
 * from its parent): the run fails, everything it made is rolled back, and the job's folder is
 * left for the caller to remove.
 */
static void test_failed_run_rolled_back(void **state)
{
	struct fixture *f = *state;
	struct import_settings defaults;
	struct import_job *job;
	char text[4 * PATH_MAX], disks[PATH_MAX], id[37];
	const char *current = NULL;
	struct error err;
	json_t *status, *issue;

	open_mount(f, NULL);
	error_clear(&err);
	assert_int_equal(store_add_switch(f->mount->store, "External", NULL, &err), 0);
	job = copied_job(f, "/mnt/blog");
	/* The differencing disk, as the configurations record it. */
	assert_int_equal(import_settings_defaults(f->export, f->target, &defaults, &err), 0);
	for (size_t i = 0; i < defaults.resource_count; i++)
		if (strstr(defaults.resources[i].current, ".avhd"))
			current = defaults.resources[i].current;
	assert_non_null(current);
	snprintf(text, sizeof(text),
		 "resource.1.current = %s\nresource.1.target = %s/Virtual Hard Disks/sub/x.avhd\n",
		 current, f->target);
	import_settings_free(&defaults);
	write_document(job, text);
	check_is(job, IMPORT_JOB_READY, NULL);
	assert_int_equal(import_job_run(job, now_ns(), id, &err), IMPORT_JOB_FAILED);
	assert_non_null(strstr(error_message(&err), "must share a folder"));
	status = status_of(job);
	assert_string_equal(state_of(status), IMPORT_STATUS_FAILED);
	issue = error_with(status, "import-failed");
	assert_non_null(issue);
	assert_non_null(
		strstr(json_string_value(json_object_get(issue, IMPORT_STATUS_ISSUE_MESSAGE)),
		       "must share a folder"));
	json_decref(status);
	assert_false(import_job_live(job));
	assert_int_equal(import_job_refusal(job), -EINVAL);
	/* Nothing in the store: no VM, no disk, only the staging folder in the VHD root. */
	assert_int_equal(vms_in(f), 0);
	path_in(disks, f->target, "Virtual Hard Disks");
	assert_int_equal(names_in(disks, STAGING_FOLDER), 0);
	/* The copy is still there until the caller removes it. */
	assert_true(import_job_folder_fd(job) >= 0);
	assert_int_equal(import_job_remove_folder(job, &err), 0);
	import_job_free(job);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_for_a_missing_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_for_an_unknown_switch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_store_changed_between_check_and_run, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_document_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_run_rolled_back, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
