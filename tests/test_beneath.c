/*
 * Unit tests of core/beneath (names resolved beneath a folder, never
 * through a link) and core/asuser (one thread acting as another user, and
 * source scopes). Each resolution test runs twice: with openat2, and with
 * the component walk kept for kernels without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asuser.h"
#include "beneath.h"
#include "fsutil.h"
#include "support.h"

struct fixture {
	char *dir;     /* the folder operations stay beneath */
	char *outside; /* a folder beside it, holding a decoy */
	int fd;
};

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *top = support_tempdir();

	f->dir = strdup(support_path(top, "in"));
	f->outside = strdup(support_path(top, "out"));
	free(top);
	assert_int_equal(mkdir(f->dir, 0755), 0);
	assert_int_equal(mkdir(f->outside, 0700), 0);
	assert_int_equal(mkdir(support_path(f->dir, "a"), 0755), 0);
	put(support_path(f->dir, "a/file"), "inside", 0644);
	put(support_path(f->outside, "decoy"), "decoy", 0600);
	assert_int_equal(symlink(f->outside, support_path(f->dir, "link")), 0);
	assert_int_equal(symlink(support_path(f->outside, "decoy"), support_path(f->dir, "a/flink")), 0);
	f->fd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(f->fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *top = strdup(f->dir);

	close(f->fd);
	*strrchr(top, '/') = '\0';
	support_remove_tree(top);
	free(f->dir);
	free(f->outside);
	free(f);
	beneath_force_walk(false);
	return 0;
}

static void read_text(int fd, const char *want)
{
	char buf[64] = "";

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, sizeof(buf) - 1, 0), (ssize_t)strlen(want));
	assert_string_equal(buf, want);
	close(fd);
}

static void resolution(struct fixture *f)
{
	char name[NAME_MAX + 1];
	struct stat st;
	int fd;

	read_text(beneath_open(f->fd, "a/file", O_RDONLY, 0), "inside");
	read_text(beneath_open(f->fd, "./a//file", O_RDONLY, 0), "inside");
	fd = beneath_open(f->fd, "a/file", O_PATH | O_NOATIME | O_NONBLOCK, 0);
	assert_true(fd >= 0); /* flags open() ignores with O_PATH are dropped, not refused */
	close(fd);
	/* A link anywhere on the way, or at the end, is never followed. */
	assert_int_equal(beneath_open(f->fd, "link/decoy", O_RDONLY, 0), -ELOOP);
	assert_int_equal(beneath_open(f->fd, "a/flink", O_RDONLY, 0), -ELOOP);
	assert_int_equal(beneath_open(f->fd, "a/flink", O_WRONLY | O_TRUNC, 0), -ELOOP);
	assert_int_equal(beneath_open(f->fd, "a/flink", O_PATH | O_NOFOLLOW, 0), -ELOOP);
	assert_int_equal(beneath_open(f->fd, "link", O_RDONLY | O_DIRECTORY, 0), -ELOOP);
	/* Nothing leaves the folder. */
	assert_int_equal(beneath_open(f->fd, "../out/decoy", O_RDONLY, 0), -EXDEV);
	assert_int_equal(beneath_open(f->fd, "a/../../out/decoy", O_RDONLY, 0), -EXDEV);
	assert_int_equal(beneath_open(f->fd, f->outside, O_RDONLY, 0), -EXDEV);
	assert_int_equal(beneath_open(f->fd, "a/missing", O_RDONLY, 0), -ENOENT);
	/* Creation, and the calls on a last component. */
	fd = beneath_open(f->fd, "a/new", O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(beneath_mkdir(f->fd, "a/sub", 0700), 0);
	assert_int_equal(beneath_mkdir(f->fd, "link/sub", 0700), -ELOOP);
	assert_int_equal(beneath_rename(f->fd, "a/new", f->fd, "a/sub/moved", RENAME_NOREPLACE), 0);
	assert_int_equal(beneath_link(f->fd, "a/sub/moved", f->fd, "a/linked"), 0);
	assert_int_equal(beneath_link(f->fd, "a/flink", f->fd, "a/l2"), 0);
	assert_int_equal(beneath_stat(f->fd, "a/l2", &st), 0);
	assert_true(S_ISLNK(st.st_mode)); /* the link itself, not its target */
	assert_int_equal(beneath_unlink(f->fd, "a/l2", 0), 0);
	assert_int_equal(beneath_stat(f->fd, "a/linked", &st), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(beneath_unlink(f->fd, "link/decoy", 0), -ELOOP);
	assert_int_equal(beneath_parent(f->fd, "a/..", name), -EINVAL);
	assert_int_equal(beneath_parent(f->fd, "", name), -EINVAL);
	fd = beneath_parent(f->fd, "a/sub/moved", name);
	assert_true(fd >= 0);
	assert_string_equal(name, "moved");
	close(fd);
	/* The decoy is untouched. */
	read_text(open(support_path(f->outside, "decoy"), O_RDONLY), "decoy");
}

static void test_openat2(void **state)
{
	beneath_force_walk(false);
	resolution(*state);
}

static void test_walk(void **state)
{
	beneath_force_walk(true);
	resolution(*state);
}

/* A tree far deeper than a path can name, with a link out and folders that refuse writes. */
static void removal(struct fixture *f)
{
	char left[PATH_MAX];
	int cur = dup(f->fd);
	struct stat st;

	assert_int_equal(beneath_mkdir(f->fd, "deep", 0755), 0);
	close(cur);
	cur = beneath_open(f->fd, "deep", O_RDONLY | O_DIRECTORY, 0);
	for (int i = 0; i < 3000; i++) {
		int next;

		assert_int_equal(mkdirat(cur, "d", 0755), 0);
		if (i % 500 == 0) {
			int fd = openat(cur, "f", O_WRONLY | O_CREAT, 0600);

			assert_true(fd >= 0);
			close(fd);
			assert_int_equal(symlinkat(f->outside, cur, "out"), 0);
		}
		next = openat(cur, "d", O_RDONLY | O_DIRECTORY);
		assert_true(next >= 0);
		if (i % 700 == 0)
			fchmod(cur, 0555);
		close(cur);
		cur = next;
	}
	close(cur);
	assert_int_equal(beneath_remove_tree(f->fd, "deep", left), 0);
	assert_int_equal(beneath_stat(f->fd, "deep", &st), -ENOENT);
	read_text(open(support_path(f->outside, "decoy"), O_RDONLY), "decoy");
	/* A link named alone is removed as itself. */
	assert_int_equal(beneath_remove_tree(f->fd, "link", NULL), 0);
	read_text(open(support_path(f->outside, "decoy"), O_RDONLY), "decoy");
	assert_int_equal(beneath_remove_tree(f->fd, "missing", NULL), 0);
	assert_int_equal(beneath_remove_tree(f->fd, "link/decoy", NULL), 0);
	read_text(open(support_path(f->outside, "decoy"), O_RDONLY), "decoy");
}

static void test_remove_openat2(void **state)
{
	beneath_force_walk(false);
	removal(*state);
}

static void test_remove_walk(void **state)
{
	beneath_force_walk(true);
	removal(*state);
}

static void test_lexically(void **state)
{
	const char *rel = NULL;

	(void)state;
	assert_true(beneath_lexically("/srv/vms/a/b", "/srv/vms", &rel));
	assert_string_equal(rel, "a/b");
	assert_true(beneath_lexically("/srv/vms", "/srv/vms/", &rel));
	assert_string_equal(rel, "");
	assert_true(beneath_lexically("/x", "/", &rel));
	assert_string_equal(rel, "x");
	assert_false(beneath_lexically("/srv/vmsx/a", "/srv/vms", NULL));
	assert_false(beneath_lexically("/srv/vms/../etc", "/srv/vms", NULL));
	assert_false(beneath_lexically("/srv/vms/./a", "/srv/vms", NULL));
	assert_false(beneath_lexically("srv/vms/a", "/srv/vms", NULL));
	assert_true(beneath_plain_name("blog.vhd"));
	assert_true(beneath_plain_name("..x"));
	assert_false(beneath_plain_name(""));
	assert_false(beneath_plain_name(".."));
	assert_false(beneath_plain_name("a/b"));
	assert_false(beneath_plain_name("a\nb"));
}

/* ---- credentials ---- */

struct other {
	const char *path;
	int go[2]; /* a thread takes its creator's credentials: it starts before the switch */
	int rc;
};

static void *open_elsewhere(void *arg)
{
	struct other *o = arg;
	char c;
	int fd = read(o->go[0], &c, 1) == 1 ? open(o->path, O_RDONLY) : -1;

	o->rc = fd < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void test_asuser(void **state)
{
	struct fixture *f = *state;
	struct asuser nobody;
	struct asuser_saved saved;
	const char *secret = support_path(f->outside, "decoy");
	struct other other = {.path = secret, .rc = 1};
	pthread_t thread;
	int fd, err;

	if (geteuid() != 0)
		skip();
	assert_int_equal(pipe(other.go), 0);
	assert_int_equal(pthread_create(&thread, NULL, open_elsewhere, &other), 0);
	assert_int_equal(asuser_lookup(65534, 65534, &nobody), 0);
	assert_int_equal(asuser_enter(&nobody, &saved), 0);
	fd = open(secret, O_RDONLY);
	err = fd < 0 ? errno : 0;
	/* Only this thread: another one keeps root's credentials. */
	assert_int_equal(write(other.go[1], "x", 1), 1);
	pthread_join(thread, NULL);
	asuser_leave(&saved);
	close(other.go[0]);
	close(other.go[1]);
	assert_int_equal(err, EACCES);
	assert_int_equal(other.rc, 0);
	read_text(open(secret, O_RDONLY), "decoy");
}

static void test_scope(void **state)
{
	struct fixture *f = *state;
	struct asuser nobody;
	char path[PATH_MAX], other[PATH_MAX];
	int outside_fd = open(f->outside, O_RDONLY | O_DIRECTORY);
	const int fds[] = {outside_fd};
	const char *allowed[] = {f->outside};
	struct asuser_scope scope = {
		.folder_fd = f->fd, .folder = f->dir, .others = ASUSER_OTHERS_REFUSED};
	int fd;

	if (geteuid() != 0)
		skip();
	assert_true(outside_fd >= 0);
	snprintf(path, sizeof(path), "%s/a/file", f->dir);
	snprintf(other, sizeof(other), "%s/decoy", f->outside);
	/* The folder's own files: beneath it, no link followed. */
	read_text(asuser_scope_open(&scope, path, O_RDONLY), "inside");
	snprintf(path, sizeof(path), "%s/link/decoy", f->dir);
	assert_int_equal(asuser_scope_open(&scope, path, O_RDONLY), -ELOOP);
	/* Named elsewhere with no user: only beneath the allowed folders. */
	assert_int_equal(asuser_scope_open(&scope, other, O_RDONLY), -EACCES);
	scope.trusted_fds = fds;
	scope.trusted = allowed;
	scope.trusted_count = 1;
	read_text(asuser_scope_open(&scope, other, O_RDONLY), "decoy");
	/* Named by a user: as that user. */
	assert_int_equal(asuser_lookup(65534, 65534, &nobody), 0);
	scope.trusted_count = 0;
	scope.others = ASUSER_OTHERS_AS_USER;
	scope.user = &nobody;
	assert_int_equal(asuser_scope_open(&scope, other, O_RDONLY), -EACCES);
	/* And through fsutil, while the scope is the thread's. */
	asuser_scope_set(&scope);
	assert_int_equal(fsutil_open_source(other, false), -EACCES);
	asuser_scope_set(NULL);
	fd = fsutil_open_source(other, false);
	read_text(fd, "decoy");
	close(outside_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_openat2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_openat2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_walk, setup, teardown),
		cmocka_unit_test(test_lexically),
		cmocka_unit_test_setup_teardown(test_asuser, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
