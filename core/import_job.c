/*
 * import_job.c - one import of an import mount: its folder, its checks and
 * its registration (import_job.h).
 */
#include "import_job.h"

#include "asuser.h"
#include "beneath.h"
#include "chain.h"
#include "clock.h"
#include "config.h"
#include "error.h"
#include "hyperv.h"
#include "import.h"
#include "import_mount.h"
#include "json.h"
#include "pathbuf.h"
#include "staging.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct import_job {
	const struct import_mount *mount; /* set once */
	char *shown;			  /* the folder as users see it (set once) */
	char tag[STAGING_NAME_MAX];	  /* its folder's name in the staging folder (set once) */
	char *folder;			  /* that folder's path (set once) */
	int folder_fd;			  /* that folder, holding its lock; -1 once removed (see
					     import_job_remove_folder()) */
	pthread_mutex_t lock;
	enum import_state state;     /* lock */
	int fail_errno;		     /* lock */
	bool abandoned;		     /* its folder removed empty: its name is free again (lock) */
	struct import_report issues; /* of the last check, or the failure (lock) */
	struct import_report closes; /* files that failed their close() (lock) */
	char vm_id[37];		     /* lock */
	char *vm_name;		     /* lock */
	double settle_to_commit;     /* seconds from the last change to the commit (lock) */
	/* From a check that found it READY to its run: the checking thread's own. */
	struct import_settings settings;
	struct asuser user;	   /* the writer of its document, if not root */
	struct asuser_scope scope; /* what the check and the run read, and how */
};

/* ---- issues ---- */

/* @text with the job's folder written as users see it (a new string, or NULL). */
static char *shown(const struct import_job *job, const char *text)
{
	size_t n = strlen(job->folder);
	char *out = NULL, *hit;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	while ((hit = strstr(text, job->folder))) {
		fwrite(text, 1, (size_t)(hit - text), f);
		fputs(job->shown, f);
		text = hit + n;
	}
	fputs(text, f);
	fclose(f);
	return out;
}

/* Add the issue @id (static text) to @list, its file and message as users see them. */
static void add_issue(const struct import_job *job, struct import_report *list, const char *id,
		      bool error, const char *file, const char *message)
{
	struct import_issue *grown = realloc(list->issues, (list->count + 1) * sizeof(*grown));

	if (!grown)
		return;
	list->issues = grown;
	grown += list->count;
	*grown = (struct import_issue){id, error ? IMPORT_ERROR : IMPORT_WARNING,
				       shown(job, file ? file : ""), shown(job, message)};
	if (!grown->file || !grown->message) {
		free(grown->file);
		free(grown->message);
		return;
	}
	list->count++;
	list->errors += error;
}

/* Make @issues the job's and move it to @state; the lock is not held. */
static void set_state(struct import_job *job, enum import_state state, struct import_report *issues)
{
	pthread_mutex_lock(&job->lock);
	import_report_free(&job->issues);
	job->issues = *issues;
	job->state = state;
	pthread_mutex_unlock(&job->lock);
	memset(issues, 0, sizeof(*issues));
}

/* ---- the job ---- */

/* Remove the job's folder (what it holds, then its lock) unless a user removed it empty:
 * its name may be another import's since. */
static int remove_folder(struct import_job *job, char *left)
{
	bool abandoned;

	pthread_mutex_lock(&job->lock);
	abandoned = job->abandoned;
	pthread_mutex_unlock(&job->lock);
	if (!abandoned)
		return staging_remove(job->mount->staging_fd, job->tag, &job->folder_fd, left);
	close(job->folder_fd);
	job->folder_fd = -1;
	return 0;
}

int import_job_new(struct import_job **out, const struct import_mount *mount, const char *shown)
{
	struct import_job *job = calloc(1, sizeof(*job));
	int rc = -ENOMEM;

	*out = NULL;
	if (!job)
		return -ENOMEM;
	job->mount = mount;
	job->state = IMPORT_STATE_COPYING;
	pthread_mutex_init(&job->lock, NULL);
	job->folder_fd = staging_new(mount->staging_fd, job->tag);
	if (job->folder_fd < 0) {
		rc = job->folder_fd;
		goto fail;
	}
	if (!(job->shown = strdup(shown)) ||
	    asprintf(&job->folder, "%s/%s", mount->staging_path, job->tag) < 0) {
		job->folder = NULL;
		goto fail;
	}
	*out = job;
	return 0;
fail:
	import_job_free(job);
	return rc;
}

void import_job_free(struct import_job *job)
{
	if (!job)
		return;
	if (job->folder_fd >= 0)
		remove_folder(job, NULL);
	import_report_free(&job->issues);
	import_report_free(&job->closes);
	import_settings_free(&job->settings);
	pthread_mutex_destroy(&job->lock);
	free(job->vm_name);
	free(job->folder);
	free(job->shown);
	free(job);
}

int import_job_folder_fd(const struct import_job *job)
{
	return job->folder_fd;
}

const char *import_job_folder(const struct import_job *job)
{
	return job->folder;
}

enum import_state import_job_state(struct import_job *job)
{
	enum import_state state;

	pthread_mutex_lock(&job->lock);
	state = job->state;
	pthread_mutex_unlock(&job->lock);
	return state;
}

bool import_job_live(struct import_job *job)
{
	enum import_state state = import_job_state(job);

	return state == IMPORT_STATE_COPYING || state == IMPORT_STATE_WAITING;
}

int import_job_refusal(struct import_job *job)
{
	int rc;

	pthread_mutex_lock(&job->lock);
	rc = job->state == IMPORT_STATE_FAILED	      ? -job->fail_errno
	     : job->state == IMPORT_STATE_REGISTERING ? -EBUSY
						      : -EROFS;
	pthread_mutex_unlock(&job->lock);
	return rc;
}

void import_job_copying(struct import_job *job)
{
	pthread_mutex_lock(&job->lock);
	if (job->state == IMPORT_STATE_WAITING)
		job->state = IMPORT_STATE_COPYING;
	pthread_mutex_unlock(&job->lock);
}

void import_job_fail(struct import_job *job, int e, const char *id, const char *message)
{
	struct import_report issues = {0};

	add_issue(job, &issues, e == ENOSPC || e == EDQUOT ? "space-short" : id, true, "", message);
	pthread_mutex_lock(&job->lock);
	job->fail_errno = e;
	pthread_mutex_unlock(&job->lock);
	set_state(job, IMPORT_STATE_FAILED, &issues);
}

int import_job_abandon(struct import_job *job)
{
	int rc = staging_remove_empty(job->mount->staging_fd, job->tag);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&job->lock);
	job->state = IMPORT_STATE_FAILED;
	job->fail_errno = ENOENT;
	job->abandoned = true;
	pthread_mutex_unlock(&job->lock);
	return 0;
}

int import_job_remove_folder(struct import_job *job, struct error *err)
{
	char left[PATH_MAX] = "";
	int rc;

	if (job->folder_fd < 0)
		return 0;
	rc = remove_folder(job, left);
	if (rc == 0)
		return 0;
	rc = error_set(err, -rc, "'%s/%s' could not be removed: %s", job->mount->staging_path, left,
		       strerror(-rc));
	pthread_mutex_lock(&job->lock);
	add_issue(job, &job->issues, "cleanup-incomplete", false, "", error_message(err));
	pthread_mutex_unlock(&job->lock);
	return rc;
}

/* ---- what a file is ---- */

/* @name without rsync's temporary dressing ".<name>.XXXXXX", in @out. */
static const char *final_name(const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);

	if (n > 8 && name[0] == '.' && name[n - 7] == '.') {
		bool dressed = true;

		for (size_t i = n - 6; i < n; i++)
			dressed = dressed && ((name[i] >= 'a' && name[i] <= 'z') ||
					      (name[i] >= 'A' && name[i] <= 'Z') ||
					      (name[i] >= '0' && name[i] <= '9'));
		if (dressed && n - 8 < cap) {
			memcpy(out, name + 1, n - 8);
			out[n - 8] = '\0';
			return out;
		}
	}
	return name;
}

enum import_file_kind import_file_kind(const char *rel)
{
	const char *base = strrchr(rel, '/');
	char buf[NAME_MAX + 1];
	const char *name = final_name(base ? base + 1 : rel, buf, sizeof(buf));
	size_t n = strlen(name);

	if (base == rel && strcmp(name, IMPORT_JOB_SETTINGS) == 0)
		return IMPORT_FILE_SETTINGS;
	if (n > 4 && strcasecmp(name + n - 4, ".xml") == 0 &&
	    (strstr(rel, "/" HYPERV_VMS_DIR "/") || strstr(rel, "/" HYPERV_SNAPSHOTS_DIR "/")))
		return IMPORT_FILE_CONFIG;
	return IMPORT_FILE_DATA;
}

void import_job_forget_close(struct import_job *job, const char *rel)
{
	struct pathbuf file = PATHBUF_INIT;

	if (pathbuf_setf(&file, "%s%s", job->shown, rel) < 0)
		return;
	pthread_mutex_lock(&job->lock);
	for (size_t i = 0; i < job->closes.count;)
		if (strcmp(job->closes.issues[i].file, file.buf) == 0) {
			job->closes.errors -= job->closes.issues[i].severity == IMPORT_ERROR;
			free(job->closes.issues[i].file);
			free(job->closes.issues[i].message);
			job->closes.issues[i] = job->closes.issues[--job->closes.count];
		} else {
			i++;
		}
	pthread_mutex_unlock(&job->lock);
	pathbuf_release(&file);
}

int import_job_file_closed(struct import_job *job, const char *rel, enum import_file_kind kind,
			   struct error *err)
{
	struct pathbuf real = PATHBUF_INIT;
	int rc, fd;

	if (pathbuf_setf(&real, "%s%s", job->folder, rel) < 0)
		return error_set(err, ENOMEM, "out of memory");
	fd = beneath_open(job->folder_fd, rel + 1, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		rc = error_errno(err, -fd, "cannot read", real.buf);
	} else if (kind == IMPORT_FILE_CONFIG) {
		struct config *config = NULL;

		rc = config_load_fd(&config, fd, real.buf, err);
		config_free(config);
	} else {
		struct import_settings s;

		rc = import_settings_load_fd(fd, real.buf, &s, err);
		import_settings_free(&s);
	}
	if (fd >= 0)
		close(fd);
	import_job_forget_close(job, rel);
	if (rc < 0) {
		pthread_mutex_lock(&job->lock);
		add_issue(job, &job->closes,
			  kind == IMPORT_FILE_CONFIG ? "config-damaged" : "settings-invalid", true,
			  real.buf, error_message(err));
		pthread_mutex_unlock(&job->lock);
		rc = -EIO;
	}
	pathbuf_release(&real);
	return rc;
}

/* ---- the check ---- */

/*
 * The job's own settings document @given, written by @user (NULL: by root
 * or the daemon's user), may send files only to plain places under the
 * mount's roots (never configurations, saved state, hidden names), and may
 * name sources only as its writer may read them: a user's are opened with
 * that user's credentials (each folder on the way, and each parent of a
 * disk's chain), root's only under the mount's sources= folders.
 * NULL, or what is wrong (in @buf).
 */
static const char *confined(const struct import_job *job, const struct import_settings *given,
			    const struct asuser *user, char *buf, size_t cap)
{
	const struct import_mount *m = job->mount;
	const char *roots[] = {given->target_vm_data_root, given->target_vhd_data_root,
			       given->target_snapshot_data_root};
	const char *sources[] = {given->source_vm_data_root, given->source_vhd_data_root,
				 given->source_snapshot_data_root};
	struct asuser_scope as_user = {.folder_fd = job->folder_fd,
				       .folder = job->folder,
				       .others = ASUSER_OTHERS_AS_USER,
				       .user = user};

	for (size_t k = 0; k < 3; k++)
		if (roots[k] && !import_mount_may_write(m, roots[k], "the target root", buf, cap))
			return buf;
	for (size_t i = 0; i < given->resource_count; i++)
		if (given->resources[i].target && given->resources[i].target[0] &&
		    !import_mount_may_write(m, given->resources[i].target, "a resource target", buf,
					    cap))
			return buf;
	for (size_t k = 0; k < 3 + given->resource_count; k++) {
		const char *source = k < 3 ? sources[k] : given->resources[k - 3].source;
		struct error err;

		if (!source || !source[0] || beneath_lexically(source, job->folder, NULL))
			continue;
		if (!user) {
			if (import_mount_may_read(m, source))
				continue;
			snprintf(buf, cap,
				 "the source '%s' lies under no folder of the mount's sources= "
				 "option (a document made by root names no other sources)",
				 source);
			return buf;
		}
		/* Read as its writer would: a folder opened, a disk with every parent. */
		error_clear(&err);
		asuser_scope_set(&as_user);
		if (k < 3) {
			int fd = asuser_scope_open(&as_user, source, O_RDONLY | O_DIRECTORY);

			if (fd < 0)
				error_errno(&err, -fd, "cannot open", source);
			else
				close(fd);
		} else {
			struct chain *chain = NULL;

			chain_open(&chain, source, NULL, &err);
			chain_close(chain);
		}
		asuser_scope_set(NULL);
		if (err.code) {
			snprintf(buf, cap, "the source '%s' cannot be read by uid %u: %s", source,
				 (unsigned)user->uid, error_message(&err));
			return buf;
		}
	}
	return NULL;
}

/*
 * Read the job's own document into @given (when there is one: 1), checked and confined,
 * its writer into job->user; 0 when there is none; -1 when it is refused (the reason in
 * @issues). *@by_user says whether a user other than root and the daemon's wrote it.
 */
static int own_document(struct import_job *job, struct import_settings *given, const char *doc,
			bool *by_user, struct import_report *issues)
{
	char why[PATH_MAX + 256];
	const char *wrong;
	struct error err;
	struct stat st;
	int fd, rc;

	*by_user = false;
	fd = beneath_open(job->folder_fd, IMPORT_JOB_SETTINGS, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	error_clear(&err);
	/* Its writer: the owner the mount gave it at its create. */
	rc = fstat(fd, &st) < 0 ? error_errno(&err, errno, "cannot read", doc)
				: import_settings_load_fd(fd, doc, given, &err);
	close(fd);
	if (rc < 0) {
		/* Its close() said so already, unless it was written otherwise. */
		pthread_mutex_lock(&job->lock);
		rc = job->closes.count != 0;
		pthread_mutex_unlock(&job->lock);
		if (!rc)
			add_issue(job, issues, "settings-invalid", true, doc, error_message(&err));
		return -1;
	}
	*by_user = st.st_uid != 0 && st.st_uid != geteuid();
	if (*by_user)
		asuser_lookup(st.st_uid, st.st_gid, &job->user);
	if ((wrong = confined(job, given, *by_user ? &job->user : NULL, why, sizeof(why)))) {
		add_issue(job, issues, "settings-invalid", true, doc, wrong);
		import_settings_free(given);
		return -1;
	}
	return 1;
}

enum import_job_result import_job_check(struct import_job *job)
{
	const struct import_mount *m = job->mount;
	struct import_settings given[3];
	const char *names[3];
	struct import_report report = {0}, issues = {0};
	struct import_settings *settings = &job->settings;
	struct pathbuf doc = PATHBUF_INIT;
	size_t n = 0;
	bool by_user = false;
	const char *why;
	struct error err;
	int rc;

	error_clear(&err);
	import_settings_free(settings);
	for (; n < m->given_count; n++) {
		given[n] = m->given[n];
		names[n] = m->given_names[n];
	}
	if (pathbuf_setf(&doc, "%s/%s", job->folder, IMPORT_JOB_SETTINGS) < 0) {
		add_issue(job, &issues, "incomplete", true, "", "out of memory");
		goto wait;
	}
	rc = own_document(job, &given[n], doc.buf, &by_user, &issues);
	if (rc < 0)
		goto wait;
	if (rc > 0)
		names[n++] = doc.buf;
	/* What the checks and the registration read: the folder beneath its descriptor, the store
	 * and targets as the daemon, other sources as the document's writer or not at all. */
	job->scope = (struct asuser_scope){
		.folder_fd = job->folder_fd,
		.folder = job->folder,
		.trusted_fds = m->trusted_fds,
		.trusted = m->trusted,
		.trusted_count = by_user ? m->own_trusted : m->trusted_count,
		.others = by_user ? ASUSER_OTHERS_AS_USER : ASUSER_OTHERS_REFUSED,
		.user = by_user ? &job->user : NULL,
	};
	asuser_scope_set(&job->scope);
	rc = import_settings_layered(job->folder, m->store_root, given, names, n, settings, &err);
	if (n > m->given_count)
		import_settings_free(&given[n - 1]);
	if (rc < 0) {
		/* Mostly a copy not yet whole: no configuration yet, or a part of one. */
		asuser_scope_set(NULL);
		add_issue(job, &issues, "incomplete", true, "", error_message(&err));
		goto wait;
	}
	if ((why = import_mount_refusal(settings))) {
		add_issue(job, &issues, "settings-invalid", true, doc.buf, why);
		rc = -EINVAL;
	}
	if (rc == 0 &&
	    import_compare(job->folder, m->store, settings, IMPORT_ADOPT, &report, &err) < 0) {
		add_issue(job, &issues, "incomplete", true, "", error_message(&err));
		rc = -EINVAL;
	}
	asuser_scope_set(NULL);
	for (size_t i = 0; i < report.count; i++)
		add_issue(job, &issues, report.issues[i].id,
			  report.issues[i].severity == IMPORT_ERROR, report.issues[i].file,
			  report.issues[i].message);
	rc = rc == 0 && report.errors == 0 ? 0 : -EINVAL;
	import_report_free(&report);
	if (rc < 0) {
		import_settings_free(settings);
		goto wait;
	}
	pathbuf_release(&doc);
	/* From now on the folder's changes are refused (EBUSY) until the run is over. */
	set_state(job, IMPORT_STATE_REGISTERING, &issues);
	return IMPORT_JOB_READY;
wait:
	pathbuf_release(&doc);
	set_state(job, IMPORT_STATE_WAITING, &issues);
	return IMPORT_JOB_WAITING;
}

/* ---- the run ---- */

enum import_job_result import_job_run(struct import_job *job, uint64_t quiet_since, char id[37],
				      struct error *err)
{
	struct import_report issues = {0};
	int rc;

	error_clear(err);
	id[0] = '\0';
	asuser_scope_set(&job->scope);
	rc = import_run(job->folder, job->mount->store, &job->settings, IMPORT_ADOPT, NULL, id,
			err);
	asuser_scope_set(NULL);
	if (rc == -ECANCELED) {
		/* The store changed since the check (another import): nothing was done. */
		add_issue(job, &issues, "incomplete", true, "", error_message(err));
		set_state(job, IMPORT_STATE_WAITING, &issues);
		import_settings_free(&job->settings);
		return IMPORT_JOB_STORE_CHANGED;
	}
	if (rc < 0) {
		import_job_fail(job, -rc, "import-failed", error_message(err));
		import_settings_free(&job->settings);
		return IMPORT_JOB_FAILED;
	}
	pthread_mutex_lock(&job->lock);
	snprintf(job->vm_id, sizeof(job->vm_id), "%s", id);
	job->vm_name = strdup(job->settings.name ? job->settings.name : "");
	job->settle_to_commit = (double)(clock_monotonic_ns() - quiet_since) / 1e9;
	job->state = IMPORT_STATE_REGISTERED;
	pthread_mutex_unlock(&job->lock);
	import_settings_free(&job->settings);
	return IMPORT_JOB_REGISTERED;
}

/* ---- the status ---- */

/* The issues of @job (of its last check only if @checked) that are errors, or warnings; its
 * lock is held. */
static void write_issues(struct jsonw *j, const char *key, const struct import_job *job, bool errors,
			 bool checked)
{
	jsonw_begin_array(j, key);
	for (size_t k = 0; k < (checked ? 2 : 1); k++) {
		const struct import_report *list = k == 0 ? &job->closes : &job->issues;

		for (size_t i = 0; i < list->count; i++) {
			const struct import_issue *issue = &list->issues[i];

			if ((issue->severity == IMPORT_ERROR) != errors)
				continue;
			jsonw_begin_object(j, NULL);
			jsonw_string(j, IMPORT_STATUS_ISSUE_ID, issue->id);
			jsonw_string(j, IMPORT_STATUS_ISSUE_SEVERITY,
				    errors ? IMPORT_STATUS_ERROR : IMPORT_STATUS_WARNING);
			jsonw_string(j, IMPORT_STATUS_ISSUE_FILE,
				    issue->file && issue->file[0] ? issue->file : NULL);
			jsonw_string(j, IMPORT_STATUS_ISSUE_MESSAGE, issue->message);
			jsonw_end_object(j);
		}
	}
	jsonw_end_array(j);
}

void import_job_write_status(struct import_job *job, struct jsonw *j,
			     const struct import_job_activity *a)
{
	enum import_state state;

	pthread_mutex_lock(&job->lock);
	/* One that takes changes and is being written, or has changed since its last check, is
	 * copying, whatever that check said: a folder still arriving lacks what has not arrived
	 * yet, and a script that waits for the imports to settle must not take the last check
	 * for the end. */
	state = job->state;
	if ((state == IMPORT_STATE_COPYING || state == IMPORT_STATE_WAITING) && a->active)
		state = IMPORT_STATE_COPYING;
	jsonw_begin_object(j, NULL);
	jsonw_string(j, IMPORT_STATUS_FOLDER, a->folder);
	jsonw_string(j, IMPORT_STATUS_STATE, import_state_name(state));
	jsonw_uint(j, IMPORT_STATUS_FILES, a->files);
	jsonw_uint(j, IMPORT_STATUS_BYTES, a->bytes);
	jsonw_int(j, IMPORT_STATUS_WRITING, a->writing);
	if (job->state == IMPORT_STATE_REGISTERED) {
		jsonw_begin_object(j, IMPORT_STATUS_VM);
		jsonw_string(j, IMPORT_STATUS_VM_ID, job->vm_id);
		jsonw_string(j, IMPORT_STATUS_VM_NAME, job->vm_name);
		jsonw_end_object(j);
		jsonw_uint(j, IMPORT_STATUS_COMMIT_MS, (uint64_t)(job->settle_to_commit * 1000));
	} else {
		jsonw_string(j, IMPORT_STATUS_VM, NULL);
		jsonw_string(j, IMPORT_STATUS_COMMIT_MS, NULL);
	}
	/* While it is copying, what its last check lacked is no news. */
	write_issues(j, IMPORT_STATUS_ERRORS, job, true, state != IMPORT_STATE_COPYING);
	write_issues(j, IMPORT_STATUS_WARNINGS, job, false, state != IMPORT_STATE_COPYING);
	jsonw_end_object(j);
	pthread_mutex_unlock(&job->lock);
}
