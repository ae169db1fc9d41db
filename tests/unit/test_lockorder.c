/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the lock-order checker (src/common/lockorder.h).
 *
 * Built twice: test_lockorder with the checker on whatever the project's
 * lockcheck option says, and test_lockorder_off (KVMI_LOCKORDER_TEST_OFF)
 * with it off and without lockorder.c linked in, which shows the disabled
 * wrappers are plain pthread calls.  Each case runs in a forked child whose
 * stderr comes back through a pipe: the parent checks how the child ended
 * (exit 0, or SIGABRT for a report) and the report's first line.
 */
#ifdef KVMI_LOCKORDER_TEST_OFF
#undef KVMI_LOCKCHECK
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lockorder.h"
#include "vmm/tap.h"

#if KVMI_LOCKCHECK_ENABLED
#define HELD() kvmi_lockcheck_held_count()
#else
#define HELD() 0u
#endif

/* ---- running a case in a child ---- */

struct child {
	int status;
	char err[4096];
};

/* A failed expectation inside a child: say where, exit 3. */
#define CHECK(cond) do {                                                        \
	if (!(cond)) {                                                          \
		fprintf(stderr, "child check failed at %s:%d: %s\n",            \
			__FILE__, __LINE__, #cond);                             \
		_exit(3);                                                       \
	}                                                                       \
} while (0)

static void run_child(void (*fn)(void), struct child *c)
{
	size_t len = 0;
	pid_t pid;
	int p[2];

	fflush(stdout);
	fflush(stderr);
	if (pipe(p)) {
		perror("pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no_core);
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		close(p[1]);
		fn();
		_exit(0);
	}
	close(p[1]);
	for (;;) {
		char sink[256];
		char *dst = len < sizeof(c->err) - 1 ? c->err + len : sink;
		size_t room = len < sizeof(c->err) - 1 ? sizeof(c->err) - 1 - len : sizeof(sink);
		ssize_t n = read(p[0], dst, room);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst != sink)
			len += (size_t)n;
	}
	c->err[len] = '\0';
	close(p[0]);
	while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR)
		;
}

static void show_stderr(const struct child *c)
{
	const char *s = c->err;

	while (*s) {
		const char *nl = strchr(s, '\n');
		int n = nl ? (int)(nl - s) : (int)strlen(s);

		printf("#   child: %.*s\n", n, s);
		s += n + (nl ? 1 : 0);
	}
}

/* The child ran to the end without a word on stderr. */
static void expect_clean(void (*fn)(void), const char *what)
{
	struct child c;
	bool good;

	run_child(fn, &c);
	good = WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0 && c.err[0] == '\0';
	ok(good, "%s", what);
	if (!good) {
		printf("#   status %#x\n", c.status);
		show_stderr(&c);
	}
}

/*
 * The child died of SIGABRT and the first line on its stderr holds every
 * string in needles (NULL-terminated).
 */
static void expect_report(void (*fn)(void), const char *what, const char *const *needles)
{
	struct child c;
	char first[sizeof(c.err)];
	bool good, has_all = true;
	char *nl;

	run_child(fn, &c);
	snprintf(first, sizeof(first), "%s", c.err);
	nl = strchr(first, '\n');
	if (nl)
		*nl = '\0';
	for (const char *const *n = needles; *n; n++)
		if (!strstr(first, *n))
			has_all = false;
	good = WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT &&
	       strncmp(first, "kvmi lockcheck: ", 16) == 0 && has_all;
	ok(good, "%s", what);
	if (!good) {
		printf("#   status %#x, wanted SIGABRT and:", c.status);
		for (const char *const *n = needles; *n; n++)
			printf(" [%s]", *n);
		printf("\n");
		show_stderr(&c);
	}
}

static char *site(const char *file, int line)
{
	static char bufs[8][256];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s:%d", file, line);
	return b;
}

/* ---- the locks (fresh in every child: each is a copy of the parent) ---- */

enum { R_OUTER = 1, R_MID = 2, R_INNER = 3 };

static struct kvmi_mutex ma = KVMI_MUTEX_INITIALIZER(R_OUTER, "a");
static struct kvmi_mutex mb = KVMI_MUTEX_INITIALIZER(R_MID, "b");
static struct kvmi_mutex mc;  /* R_INNER, "c", kvmi_mutex_init() in main */
static struct kvmi_rwlock rw; /* R_MID, "rw", kvmi_rwlock_init() in main */
static struct kvmi_mutex same5a = KVMI_MUTEX_INITIALIZER(5, "same-a");
static struct kvmi_mutex same5b = KVMI_MUTEX_INITIALIZER(5, "same-b");

/* ---- the right order ---- */

static void child_right_order(void)
{
	CHECK(kvmi_mutex_lock(&ma) == 0);
	CHECK(kvmi_rwlock_rdlock(&rw) == 0);
	CHECK(kvmi_mutex_lock(&mc) == 0);
	CHECK(HELD() == (KVMI_LOCKCHECK_ENABLED ? 3u : 0u));
	kvmi_mutex_assert_held(&ma);
	kvmi_mutex_assert_held(&mc);
	/* any release order */
	CHECK(kvmi_rwlock_unlock(&rw) == 0);
	CHECK(kvmi_mutex_unlock(&ma) == 0);
	CHECK(HELD() == (KVMI_LOCKCHECK_ENABLED ? 1u : 0u));
	/* a lower rank is fine again once the higher one is gone */
	CHECK(kvmi_mutex_unlock(&mc) == 0);
	CHECK(HELD() == 0);
	CHECK(kvmi_rwlock_wrlock(&rw) == 0);
	CHECK(kvmi_mutex_lock(&mc) == 0);
	CHECK(kvmi_mutex_unlock(&mc) == 0);
	CHECK(kvmi_rwlock_unlock(&rw) == 0);
	CHECK(HELD() == 0);
}

static void child_right_order_again(void)
{
	/* the same lock twice in a row, released in between */
	for (int i = 0; i < 3; i++) {
		CHECK(kvmi_mutex_lock(&mb) == 0);
		CHECK(kvmi_mutex_lock(&mc) == 0);
		CHECK(kvmi_mutex_unlock(&mb) == 0);
		CHECK(kvmi_mutex_unlock(&mc) == 0);
	}
	CHECK(HELD() == 0);
}

/* ---- inversions ---- */

/*
 * The parent checks the report names the lines of both kvmi_mutex_lock()
 * calls: they are INV_LINE + 3 and + 4.  Keep them there.
 */
enum { INV_LINE = __LINE__ };
static void child_inversion(void)
{
	kvmi_mutex_lock(&mb);
	kvmi_mutex_lock(&ma);
}

static void child_inversion_at(void)
{
	kvmi_mutex_lock_at(&mc, "outer.c", 11);
	kvmi_mutex_lock_at(&ma, "inner.c", 22);
}

/* The worst held lock is named: b (2) and c (3) held, a (1) wanted. */
static void child_inversion_worst(void)
{
	kvmi_mutex_lock(&mb);
	kvmi_mutex_lock(&mc);
	kvmi_mutex_lock(&ma);
}

static void child_same_rank(void)
{
	kvmi_mutex_lock(&same5a);
	kvmi_mutex_lock(&same5b);
}

static void child_self_deadlock(void)
{
	kvmi_mutex_lock(&mb);
	kvmi_mutex_lock(&mb);
}

/* ---- trylock ---- */

static void child_trylock_out_of_order(void)
{
	CHECK(kvmi_mutex_lock(&mc) == 0);
	CHECK(kvmi_mutex_trylock(&ma) == 0);
	CHECK(HELD() == (KVMI_LOCKCHECK_ENABLED ? 2u : 0u));
	kvmi_mutex_assert_held(&ma);
	/* busy: EBUSY and not recorded */
	CHECK(kvmi_mutex_trylock(&ma) == EBUSY);
	CHECK(HELD() == (KVMI_LOCKCHECK_ENABLED ? 2u : 0u));
	CHECK(kvmi_mutex_unlock(&mc) == 0);
	CHECK(kvmi_mutex_unlock(&ma) == 0);
	CHECK(HELD() == 0);
}

/* A lock got by trylock counts as held: blocking below it is reported. */
static void child_trylock_then_block(void)
{
	CHECK(kvmi_mutex_trylock_at(&mc, "try.c", 5) == 0);
	kvmi_mutex_lock_at(&mb, "block.c", 6);
}

/* ---- condition waits ---- */

static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static atomic_bool other_took_it;
static atomic_uint other_held;

static void *take_and_signal(void *arg)
{
	(void)arg;
	kvmi_mutex_lock(&mb);
	other_held = HELD();
	other_took_it = true;
	pthread_cond_signal(&cond);
	kvmi_mutex_unlock(&mb);
	return NULL;
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/*
 * Another thread takes b while this one waits on it: the wait released b.
 * After the wait b is held again and may be released (no report).  A
 * deadline keeps a broken wait from hanging the test.
 */
static void child_cond_wait(void)
{
	struct timespec dl;
	pthread_t t;

	CHECK(kvmi_mutex_lock(&ma) == 0);
	CHECK(kvmi_mutex_lock(&mb) == 0);
	CHECK(pthread_create(&t, NULL, take_and_signal, NULL) == 0);
	deadline_in(&dl, 10000);
	while (!other_took_it) {
		int r = kvmi_cond_timedwait(&cond, &mb, &dl);

		CHECK(r == 0 || r == ETIMEDOUT);
		CHECK(r == 0 || other_took_it);
		CHECK(HELD() == (KVMI_LOCKCHECK_ENABLED ? 2u : 0u));
		kvmi_mutex_assert_held(&mb);
	}
	CHECK(other_held == (KVMI_LOCKCHECK_ENABLED ? 1u : 0u));
	CHECK(kvmi_mutex_unlock(&mb) == 0);
	CHECK(pthread_join(t, NULL) == 0);

	/* plain kvmi_cond_wait: same, with a fresh taker */
	other_took_it = false;
	CHECK(kvmi_mutex_lock(&mb) == 0);
	CHECK(pthread_create(&t, NULL, take_and_signal, NULL) == 0);
	while (!other_took_it)
		CHECK(kvmi_cond_wait(&cond, &mb) == 0);
	kvmi_mutex_assert_held(&mb);
	CHECK(kvmi_mutex_unlock(&mb) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(kvmi_mutex_unlock(&ma) == 0);
	CHECK(HELD() == 0);
}

/* A timed-out wait returns with the mutex held again. */
static void child_cond_timeout(void)
{
	struct timespec past;

	clock_gettime(CLOCK_REALTIME, &past);
	past.tv_sec -= 1;
	CHECK(kvmi_mutex_lock(&mb) == 0);
	CHECK(kvmi_cond_timedwait(&cond, &mb, &past) == ETIMEDOUT);
	CHECK(HELD() == (KVMI_LOCKCHECK_ENABLED ? 1u : 0u));
	CHECK(kvmi_mutex_unlock(&mb) == 0);
	CHECK(HELD() == 0);
}

static void child_cond_not_held(void)
{
	struct timespec past;

	clock_gettime(CLOCK_REALTIME, &past);
	kvmi_cond_timedwait(&cond, &mb, &past);
}

/* The re-take after the wait blocks too: c got by trylock ranks above b. */
static void child_cond_retake_inversion(void)
{
	CHECK(kvmi_mutex_lock(&mb) == 0);
	CHECK(kvmi_mutex_trylock(&mc) == 0);
	kvmi_cond_wait(&cond, &mb);
}

/* ---- rwlocks ---- */

static void child_rw_read_inversion(void)
{
	kvmi_mutex_lock(&mc);
	kvmi_rwlock_rdlock(&rw);
}

static void child_rw_write_inversion(void)
{
	kvmi_mutex_lock(&mc);
	kvmi_rwlock_wrlock(&rw);
}

static void child_rw_held_inversion(void)
{
	kvmi_rwlock_wrlock(&rw);
	kvmi_mutex_lock(&ma);
}

static void child_rw_read_twice(void)
{
	kvmi_rwlock_rdlock(&rw);
	kvmi_rwlock_rdlock(&rw);
}

static void child_rw_unlock_not_held(void)
{
	kvmi_rwlock_unlock(&rw);
}

/* ---- releases, destroys, asserts, limits ---- */

static void child_unlock_not_held(void)
{
	kvmi_mutex_unlock_at(&ma, "unlock.c", 7);
}

static void child_destroy_held(void)
{
	kvmi_mutex_lock_at(&mb, "take.c", 1);
	kvmi_mutex_destroy_at(&mb, "destroy.c", 2);
}

static void child_assert_not_held(void)
{
	kvmi_mutex_assert_held_at(&mb, "assert.c", 3);
}

static struct kvmi_mutex many[KVMI_LOCKCHECK_MAX_HELD + 1];

static void child_max_held(void)
{
	for (int i = 0; i < KVMI_LOCKCHECK_MAX_HELD; i++)
		CHECK(kvmi_mutex_lock(&many[i]) == 0);
	CHECK(HELD() == (KVMI_LOCKCHECK_ENABLED ? KVMI_LOCKCHECK_MAX_HELD : 0u));
	for (int i = 0; i < KVMI_LOCKCHECK_MAX_HELD; i++)
		CHECK(kvmi_mutex_unlock(&many[i]) == 0);
	CHECK(HELD() == 0);
}

static void child_too_many(void)
{
	for (int i = 0; i < KVMI_LOCKCHECK_MAX_HELD + 1; i++)
		kvmi_mutex_lock(&many[i]);
}

/* ---- threads ---- */

static pthread_barrier_t bar;

/* Holds c (rank 3) until told to let go. */
static void *hold_c(void *arg)
{
	(void)arg;
	kvmi_mutex_lock(&mc);
	pthread_barrier_wait(&bar);  /* 1: c is held */
	pthread_barrier_wait(&bar);  /* 2: let go */
	kvmi_mutex_unlock(&mc);
	return NULL;
}

/* Another thread's c does not count here: a (1) and b (2) are fine. */
static void child_per_thread(void)
{
	pthread_t t;

	CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
	CHECK(pthread_create(&t, NULL, hold_c, NULL) == 0);
	pthread_barrier_wait(&bar);
	CHECK(HELD() == 0);
	CHECK(kvmi_mutex_lock(&ma) == 0);
	CHECK(kvmi_mutex_lock(&mb) == 0);
	CHECK(HELD() == (KVMI_LOCKCHECK_ENABLED ? 2u : 0u));
	CHECK(kvmi_mutex_unlock(&mb) == 0);
	CHECK(kvmi_mutex_unlock(&ma) == 0);
	pthread_barrier_wait(&bar);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(HELD() == 0);
}

/* Releasing a lock another thread holds is reported in the releaser. */
static void child_unlock_others(void)
{
	pthread_t t;

	CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
	CHECK(pthread_create(&t, NULL, hold_c, NULL) == 0);
	pthread_barrier_wait(&bar);
	kvmi_mutex_unlock_at(&mc, "other.c", 9);
}

/* ---- main ---- */

#define NEEDLES(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_checked(void)
{
	expect_report(child_inversion, "inversion aborts, naming both locks, ranks and lines",
		NEEDLES("lock order inversion", "\"a\" (rank 1)", "\"b\" (rank 2)",
			site(__FILE__, INV_LINE + 3), site(__FILE__, INV_LINE + 4)));
	expect_report(child_inversion_at, "inversion through the _at() forms names the caller's sites",
		NEEDLES("takes \"a\" (rank 1) at inner.c:22",
			"holding \"c\" (rank 3) taken at outer.c:11"));
	expect_report(child_inversion_worst, "inversion names the highest-ranked held lock",
		NEEDLES("takes \"a\" (rank 1)", "holding \"c\" (rank 3)"));
	expect_report(child_same_rank, "two locks of the same rank do not nest",
		NEEDLES("\"same-b\" (rank 5)", "\"same-a\" (rank 5)"));
	expect_report(child_self_deadlock, "taking a held lock again is reported, not a hang",
		NEEDLES("\"b\" (rank 2)", "self-deadlock"));
	expect_report(child_trylock_then_block, "a trylocked lock counts as held",
		NEEDLES("takes \"b\" (rank 2) at block.c:6",
			"holding \"c\" (rank 3) taken at try.c:5"));
	expect_report(child_cond_not_held, "condition wait without the mutex is reported",
		NEEDLES("waits on a condition with \"b\" (rank 2)", "does not hold it"));
	expect_report(child_cond_retake_inversion, "the re-take after a condition wait is checked",
		NEEDLES("re-takes after a condition wait \"b\" (rank 2)", "holding \"c\" (rank 3)"));
	expect_report(child_rw_read_inversion, "rwlock read side is checked",
		NEEDLES("takes \"rw\" (rank 2, read)", "holding \"c\" (rank 3)"));
	expect_report(child_rw_write_inversion, "rwlock write side is checked",
		NEEDLES("takes \"rw\" (rank 2, write)", "holding \"c\" (rank 3)"));
	expect_report(child_rw_held_inversion, "a held rwlock counts for later locks",
		NEEDLES("takes \"a\" (rank 1)", "holding \"rw\" (rank 2, write)"));
	expect_report(child_rw_read_twice, "a recursive read lock is reported",
		NEEDLES("\"rw\" (rank 2, read)", "self-deadlock"));
	expect_report(child_rw_unlock_not_held, "rwlock unlock without holding it is reported",
		NEEDLES("releases \"rw\" (rank 2)", "does not hold it"));
	expect_report(child_unlock_not_held, "unlock of a lock not held is reported",
		NEEDLES("releases \"a\" (rank 1) at unlock.c:7 but this thread does not hold it"));
	expect_report(child_unlock_others, "unlock of another thread's lock is reported",
		NEEDLES("releases \"c\" (rank 3) at other.c:9", "does not hold it"));
	expect_report(child_destroy_held, "destroying a held lock is reported",
		NEEDLES("destroys \"b\" (rank 2) at destroy.c:2", "taken at take.c:1"));
	expect_report(child_assert_not_held, "assert_held on a lock not held is reported",
		NEEDLES("expects \"b\" (rank 2) held at assert.c:3"));
	expect_report(child_too_many, "one lock more than KVMI_LOCKCHECK_MAX_HELD is reported",
		NEEDLES("\"m16\" (rank 17)", "KVMI_LOCKCHECK_MAX_HELD"));
}

static void test_unchecked(void)
{
	/* Without the checker the wrappers are the pthread calls: no report. */
	expect_clean(child_inversion, "checker off: an inversion goes unreported");
	expect_clean(child_trylock_then_block, "checker off: blocking below a trylocked lock goes unreported");
}

int main(void)
{
	static char names[KVMI_LOCKCHECK_MAX_HELD + 1][8];

	kvmi_mutex_init(&mc, R_INNER, "c");
	kvmi_rwlock_init(&rw, R_MID, "rw");
	for (int i = 0; i < KVMI_LOCKCHECK_MAX_HELD + 1; i++) {
		snprintf(names[i], sizeof(names[i]), "m%d", i);
		kvmi_mutex_init(&many[i], (unsigned)i + 1, names[i]);
	}

	printf("# checker %s\n", KVMI_LOCKCHECK_ENABLED ? "on" : "off");
	expect_clean(child_right_order, "right order, any release order: no report");
	expect_clean(child_right_order_again, "the same pair again and again: no report");
	expect_clean(child_trylock_out_of_order, "trylock out of order is allowed; EBUSY is not recorded");
	expect_clean(child_cond_wait, "condition wait releases the mutex and takes it back");
	expect_clean(child_cond_timeout, "a timed-out wait returns holding the mutex");
	expect_clean(child_max_held, "KVMI_LOCKCHECK_MAX_HELD locks at once are fine");
	expect_clean(child_per_thread, "another thread's locks do not count");
	if (KVMI_LOCKCHECK_ENABLED)
		test_checked();
	else
		test_unchecked();

	kvmi_mutex_destroy(&ma);
	kvmi_mutex_destroy(&mb);
	kvmi_mutex_destroy(&mc);
	kvmi_rwlock_destroy(&rw);
	for (int i = 0; i < KVMI_LOCKCHECK_MAX_HELD + 1; i++)
		kvmi_mutex_destroy(&many[i]);
	return tap_done();
}
