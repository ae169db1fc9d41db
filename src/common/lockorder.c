/* SPDX-License-Identifier: MIT */
/*
 * The lock-order checker behind lockorder.h (see there for the rule).
 *
 * Each thread keeps the locks it holds in a small _Thread_local array, in
 * the order it took them.  Taking a lock that may block first compares its
 * rank with every held one; releasing removes the entry wherever it is.  A
 * report formats one line into a stack buffer, writes it with a single
 * write(2) (so it is not interleaved with other threads' output), lists
 * the locks the thread holds and aborts.
 *
 * Always compiled; only code built with KVMI_LOCKCHECK calls it, so a
 * static link without the checker leaves this object out.
 */
#include "lockorder.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum lc_mode { LC_MUTEX, LC_READ, LC_WRITE };

struct lc_held {
	const void *lock;
	const char *name;
	const char *file;
	int line;
	unsigned rank;
	enum lc_mode mode;
};

static _Thread_local struct lc_held lc_held[KVMI_LOCKCHECK_MAX_HELD];
static _Thread_local unsigned lc_nheld;

static const char *lc_name(const char *name)
{
	return name ? name : "(unnamed)";
}

static const char *lc_mode_str(enum lc_mode mode)
{
	switch (mode) {
	case LC_READ:
		return ", read";
	case LC_WRITE:
		return ", write";
	case LC_MUTEX:
		break;
	}
	return "";
}

static void lc_write_all(const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(STDERR_FILENO, buf, len);

		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Formats "kvmi lockcheck: thread T: <fmt>\n" and writes it at once. */
__attribute__((format(printf, 1, 2)))
static void lc_line(const char *fmt, ...)
{
	char buf[1024];
	size_t len;
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "kvmi lockcheck: thread %d: ", (int)gettid());
	len = n < 0 ? 0 : (size_t)n;
	if (len < sizeof(buf)) {
		va_start(ap, fmt);
		n = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
		va_end(ap);
		len += n < 0 ? 0 : (size_t)n;
	}
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	lc_write_all(buf, len);
}

/* After the report's line: what the thread holds, then abort. */
__attribute__((noreturn))
static void lc_fail(void)
{
	for (unsigned i = 0; i < lc_nheld; i++) {
		const struct lc_held *h = &lc_held[i];

		lc_line("  holds \"%s\" (rank %u%s) taken at %s:%d", lc_name(h->name),
			h->rank, lc_mode_str(h->mode), h->file, h->line);
	}
	abort();
}

static struct lc_held *lc_find(const void *lock)
{
	for (unsigned i = lc_nheld; i-- > 0;)
		if (lc_held[i].lock == lock)
			return &lc_held[i];
	return NULL;
}

static void lc_remove(struct lc_held *h)
{
	size_t i = (size_t)(h - lc_held);

	memmove(h, h + 1, (lc_nheld - i - 1) * sizeof(*h));
	lc_nheld--;
}

/* Before a call that may block on lock: every held rank must be lower. */
static void lc_check_order(const void *lock, unsigned rank, const char *name,
			   enum lc_mode mode, const char *what,
			   const char *file, int line)
{
	const struct lc_held *self = lc_find(lock), *worst = NULL;

	if (self) {
		lc_line("lock order: %s \"%s\" (rank %u%s) at %s:%d while already "
			"holding it (taken at %s:%d): self-deadlock", what,
			lc_name(name), rank, lc_mode_str(mode), file, line,
			self->file, self->line);
		lc_fail();
	}
	for (unsigned i = 0; i < lc_nheld; i++)
		if (lc_held[i].rank >= rank && (!worst || lc_held[i].rank > worst->rank))
			worst = &lc_held[i];
	if (worst) {
		lc_line("lock order inversion: %s \"%s\" (rank %u%s) at %s:%d while "
			"holding \"%s\" (rank %u%s) taken at %s:%d; a lock must rank "
			"above every lock held", what, lc_name(name), rank,
			lc_mode_str(mode), file, line, lc_name(worst->name),
			worst->rank, lc_mode_str(worst->mode), worst->file, worst->line);
		lc_fail();
	}
}

static void lc_push(const void *lock, unsigned rank, const char *name,
		    enum lc_mode mode, const char *file, int line)
{
	if (lc_nheld == KVMI_LOCKCHECK_MAX_HELD) {
		lc_line("took \"%s\" (rank %u%s) at %s:%d while holding %d locks "
			"already (KVMI_LOCKCHECK_MAX_HELD)", lc_name(name), rank,
			lc_mode_str(mode), file, line, KVMI_LOCKCHECK_MAX_HELD);
		lc_fail();
	}
	lc_held[lc_nheld++] = (struct lc_held){
		.lock = lock, .name = name, .file = file, .line = line,
		.rank = rank, .mode = mode,
	};
}

/* Drops lock from the held set; reports if the thread does not hold it. */
static void lc_release(const void *lock, unsigned rank, const char *name,
		       const char *what, const char *file, int line)
{
	struct lc_held *h = lc_find(lock);

	if (!h) {
		lc_line("%s \"%s\" (rank %u) at %s:%d but this thread does not hold it",
			what, lc_name(name), rank, file, line);
		lc_fail();
	}
	lc_remove(h);
}

static void lc_check_not_held(const void *lock, unsigned rank, const char *name,
			      const char *file, int line)
{
	const struct lc_held *h = lc_find(lock);

	if (h) {
		lc_line("destroys \"%s\" (rank %u) at %s:%d while holding it "
			"(taken at %s:%d)", lc_name(name), rank, file, line,
			h->file, h->line);
		lc_fail();
	}
}

int kvmi_lockcheck_mutex_lock(struct kvmi_mutex *mu, const char *file, int line)
{
	int r;

	lc_check_order(mu, mu->rank, mu->name, LC_MUTEX, "takes", file, line);
	r = pthread_mutex_lock(&mu->m);
	if (r == 0)
		lc_push(mu, mu->rank, mu->name, LC_MUTEX, file, line);
	return r;
}

int kvmi_lockcheck_mutex_trylock(struct kvmi_mutex *mu, const char *file, int line)
{
	int r = pthread_mutex_trylock(&mu->m);

	if (r == 0)
		lc_push(mu, mu->rank, mu->name, LC_MUTEX, file, line);
	return r;
}

int kvmi_lockcheck_mutex_unlock(struct kvmi_mutex *mu, const char *file, int line)
{
	lc_release(mu, mu->rank, mu->name, "releases", file, line);
	return pthread_mutex_unlock(&mu->m);
}

int kvmi_lockcheck_mutex_destroy(struct kvmi_mutex *mu, const char *file, int line)
{
	lc_check_not_held(mu, mu->rank, mu->name, file, line);
	return pthread_mutex_destroy(&mu->m);
}

void kvmi_lockcheck_mutex_assert_held(const struct kvmi_mutex *mu,
				      const char *file, int line)
{
	if (!lc_find(mu)) {
		lc_line("expects \"%s\" (rank %u) held at %s:%d but this thread "
			"does not hold it", lc_name(mu->name), mu->rank, file, line);
		lc_fail();
	}
}

int kvmi_lockcheck_rwlock_rdlock(struct kvmi_rwlock *rw, const char *file, int line)
{
	int r;

	lc_check_order(rw, rw->rank, rw->name, LC_READ, "takes", file, line);
	r = pthread_rwlock_rdlock(&rw->l);
	if (r == 0)
		lc_push(rw, rw->rank, rw->name, LC_READ, file, line);
	return r;
}

int kvmi_lockcheck_rwlock_wrlock(struct kvmi_rwlock *rw, const char *file, int line)
{
	int r;

	lc_check_order(rw, rw->rank, rw->name, LC_WRITE, "takes", file, line);
	r = pthread_rwlock_wrlock(&rw->l);
	if (r == 0)
		lc_push(rw, rw->rank, rw->name, LC_WRITE, file, line);
	return r;
}

int kvmi_lockcheck_rwlock_unlock(struct kvmi_rwlock *rw, const char *file, int line)
{
	lc_release(rw, rw->rank, rw->name, "releases", file, line);
	return pthread_rwlock_unlock(&rw->l);
}

int kvmi_lockcheck_rwlock_destroy(struct kvmi_rwlock *rw, const char *file, int line)
{
	lc_check_not_held(rw, rw->rank, rw->name, file, line);
	return pthread_rwlock_destroy(&rw->l);
}

/*
 * A condition wait releases mu and takes it again before returning, so on
 * the way in mu leaves the held set and its re-take is checked against
 * what stays held (it blocks); on the way out it is held again, now taken
 * at the wait.  pthread_cond_(timed)wait returns with mu held, error or
 * not.
 */
static void lc_wait_enter(struct kvmi_mutex *mu, const char *file, int line)
{
	lc_release(mu, mu->rank, mu->name, "waits on a condition with", file, line);
	lc_check_order(mu, mu->rank, mu->name, LC_MUTEX,
		       "re-takes after a condition wait", file, line);
}

int kvmi_lockcheck_cond_wait(pthread_cond_t *c, struct kvmi_mutex *mu,
			     const char *file, int line)
{
	int r;

	lc_wait_enter(mu, file, line);
	r = pthread_cond_wait(c, &mu->m);
	lc_push(mu, mu->rank, mu->name, LC_MUTEX, file, line);
	return r;
}

int kvmi_lockcheck_cond_timedwait(pthread_cond_t *c, struct kvmi_mutex *mu,
				  const struct timespec *abstime,
				  const char *file, int line)
{
	int r;

	lc_wait_enter(mu, file, line);
	r = pthread_cond_timedwait(c, &mu->m, abstime);
	lc_push(mu, mu->rank, mu->name, LC_MUTEX, file, line);
	return r;
}

unsigned kvmi_lockcheck_held_count(void)
{
	return lc_nheld;
}
