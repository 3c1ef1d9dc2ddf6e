/*
 * Unit tests of core/lease: read leases on the files an open export file
 * reads. A real writer (a child process) opening the file is held until the
 * reads that entered under the lease have ended, and the guard then sends
 * reads the checked way; no lease is had while the file is open for writing,
 * or without the service.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "lease.h"
#include "support.h"

struct fixture {
	char *dir;
	const char *path;
	int fd; /* read-only */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct error err;

	assert_non_null(f);
	f->dir = support_tempdir();
	f->path = support_path(f->dir, "source.vhd");
	support_write_text(f->path, "the source's bytes");
	f->fd = open(f->path, O_RDONLY);
	assert_true(f->fd >= 0);
	assert_int_equal(lease_service_start(&err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	lease_service_stop();
	close(f->fd);
	support_remove_tree(f->dir);
	free(f);
	return 0;
}

/* Wait up to @ms for a byte on @fd: the byte, or -1 when none came. */
static int byte_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, ms) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return c;
}

/* A writer: says 'r', opens @path for writing (held while a lease stands),
 * says 'o', writes and ends. Returns its pid; its words come on *@words. */
static pid_t start_writer(const char *path, int *words)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;

		close(p[0]);
		if (write(p[1], "r", 1) != 1)
			_exit(2);
		fd = open(path, O_WRONLY);
		if (fd < 0 || write(p[1], "o", 1) != 1 || write(fd, "new", 3) != 3)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	*words = p[0];
	return pid;
}

static void end_writer(pid_t pid, int words)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(words);
}

/*
 * A writer opens the leased file (with a read in flight under the lease when
 * @in_flight): it waits until no read is in flight, then goes on, and the
 * guard's reads go the checked way from then on.
 */
static void writer_meets_lease(struct fixture *f, bool in_flight)
{
	struct lease_guard *g = lease_guard_new();
	int words;
	pid_t pid;

	assert_non_null(g);
	assert_true(lease_guard_add(g, f->fd));
	assert_true(lease_guard_enter(g));
	if (!in_flight)
		lease_guard_leave(g);
	pid = start_writer(f->path, &words);
	assert_int_equal(byte_within(words, 10000), 'r');
	if (in_flight) {
		/* The writer is in open(), held by the lease while the read goes on. */
		assert_int_equal(byte_within(words, 500), -1);
		lease_guard_leave(g);
	}
	/* The lease is given back once no read is in flight (not after the kernel's 45 s). */
	assert_int_equal(byte_within(words, 10000), 'o');
	end_writer(pid, words);
	assert_false(lease_guard_enter(g));
	lease_guard_free(g);
}

static void test_lease_broken_by_writer(void **state)
{
	writer_meets_lease(*state, false);
}

static void test_writer_waits_for_reads(void **state)
{
	writer_meets_lease(*state, true);
}

/* A read held up under one file's lease holds up that file's writer alone: another
 * file's writer goes on meanwhile. */
static void test_held_read_holds_up_its_file_alone(void **state)
{
	struct fixture *f = *state;
	const char *other_path = support_path(f->dir, "other.vhd");
	struct lease_guard *held = lease_guard_new(), *g = lease_guard_new();
	int other, words, other_words;
	pid_t pid, other_pid;

	support_write_text(other_path, "another source");
	other = open(other_path, O_RDONLY);
	assert_true(other >= 0);
	assert_non_null(held);
	assert_non_null(g);
	assert_true(lease_guard_add(held, f->fd));
	assert_true(lease_guard_add(g, other));
	assert_true(lease_guard_enter(held)); /* and not left yet */
	pid = start_writer(f->path, &words);
	assert_int_equal(byte_within(words, 10000), 'r');
	other_pid = start_writer(other_path, &other_words);
	assert_int_equal(byte_within(other_words, 10000), 'r');
	assert_int_equal(byte_within(other_words, 10000), 'o');
	end_writer(other_pid, other_words);
	assert_false(lease_guard_enter(g));
	/* The first writer still waits for the read held up. */
	assert_int_equal(byte_within(words, 200), -1);
	lease_guard_leave(held);
	assert_int_equal(byte_within(words, 10000), 'o');
	end_writer(pid, words);
	lease_guard_free(held);
	lease_guard_free(g);
	close(other);
}

/* A file open for writing gets no lease: its reads are checked. */
/* lease_guard_renew()'s question, counted in *@ctx: the sources are unchanged, or not. */
static bool unchanged(void *ctx)
{
	++*(int *)ctx;
	return true;
}

static bool changed(void *ctx)
{
	++*(int *)ctx;
	return false;
}

static void test_no_lease_while_written(void **state)
{
	struct fixture *f = *state;
	struct lease_guard *g = lease_guard_new();
	int w = open(f->path, O_WRONLY);

	assert_true(w >= 0);
	assert_non_null(g);
	assert_false(lease_guard_add(g, f->fd));
	assert_false(lease_guard_enter(g));
	/* Never leased: never leased again either, written or not. */
	close(w);
	assert_false(lease_guard_renew(g, unchanged, &(int){0}));
	lease_guard_free(g);
}

/* A guard whose lease a writer broke (the writer has ended). */
static struct lease_guard *broken_guard(struct fixture *f)
{
	struct lease_guard *g = lease_guard_new();
	int words;
	pid_t pid;

	assert_non_null(g);
	assert_true(lease_guard_add(g, f->fd));
	pid = start_writer(f->path, &words);
	assert_int_equal(byte_within(words, 10000), 'r');
	assert_int_equal(byte_within(words, 10000), 'o');
	end_writer(pid, words);
	assert_false(lease_guard_enter(g));
	return g;
}

/* Once the writer has closed the file, the guard is leased again if the sources are
 * unchanged, and reads enter under it; a writer breaks the new lease as the first. */
static void test_leased_again_once_the_writer_closed(void **state)
{
	struct fixture *f = *state;
	struct lease_guard *g = broken_guard(f);
	int asked = 0, words;
	pid_t pid;

	assert_true(lease_guard_renew(g, unchanged, &asked));
	assert_int_equal(asked, 1);
	assert_true(lease_guard_enter(g));
	lease_guard_leave(g);
	pid = start_writer(f->path, &words);
	assert_int_equal(byte_within(words, 10000), 'r');
	assert_int_equal(byte_within(words, 10000), 'o');
	end_writer(pid, words);
	assert_false(lease_guard_enter(g));
	lease_guard_free(g);
}

/* No lease again while the file is open for writing; tried again a second later. */
static void test_not_leased_again_while_written(void **state)
{
	struct fixture *f = *state;
	struct lease_guard *g = broken_guard(f);
	int w = open(f->path, O_WRONLY), asked = 0;

	assert_true(w >= 0);
	assert_false(lease_guard_renew(g, unchanged, &asked));
	assert_int_equal(asked, 0);
	close(w);
	/* At most one try a second. */
	assert_false(lease_guard_renew(g, unchanged, &asked));
	usleep(1100 * 1000);
	assert_true(lease_guard_renew(g, unchanged, &asked));
	assert_true(lease_guard_enter(g));
	lease_guard_leave(g);
	lease_guard_free(g);
}

/* Sources changed since: not leased again, and the reads stay checked. */
static void test_changed_sources_stay_unleased(void **state)
{
	struct fixture *f = *state;
	struct lease_guard *g = broken_guard(f);
	int asked = 0;

	assert_false(lease_guard_renew(g, changed, &asked));
	assert_int_equal(asked, 1);
	assert_false(lease_guard_enter(g));
	/* The leases taken to look were given back: a writer opens at once. */
	{
		int w = open(f->path, O_WRONLY | O_NONBLOCK);

		assert_true(w >= 0);
		close(w);
	}
	lease_guard_free(g);
}

/* One source without a lease: the guard is not leased, whatever the others. */
static void test_one_missing_is_enough(void **state)
{
	struct fixture *f = *state;
	struct lease_guard *g = lease_guard_new();
	int other = open(f->path, O_RDONLY);

	assert_true(other >= 0);
	assert_non_null(g);
	assert_true(lease_guard_add(g, f->fd));
	assert_false(lease_guard_add(g, -1));
	assert_false(lease_guard_add(g, other));
	assert_false(lease_guard_enter(g));
	lease_guard_free(g);
	close(other);
}

/* Without the service, no lease. */
static void test_no_service(void **state)
{
	struct fixture *f = *state;
	struct lease_guard *g = lease_guard_new();

	lease_service_stop();
	assert_non_null(g);
	assert_false(lease_guard_add(g, f->fd));
	assert_false(lease_guard_enter(g));
	assert_false(lease_guard_enter(NULL));
	lease_guard_free(g);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_lease_broken_by_writer), T(test_writer_waits_for_reads),
		T(test_held_read_holds_up_its_file_alone),
		T(test_no_lease_while_written), T(test_one_missing_is_enough),
		T(test_no_service), T(test_leased_again_once_the_writer_closed),
		T(test_not_leased_again_while_written), T(test_changed_sources_stay_unleased),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
