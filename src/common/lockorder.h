/* SPDX-License-Identifier: MIT */
/*
 * Ranked locks and a lockdep-style lock-order checker.
 *
 * What it owns: struct kvmi_mutex and struct kvmi_rwlock, a pthread lock
 * plus a rank and a name, and the calls that take, release and wait on them.
 * It does not know any component's lock order: the ranks are plain unsigned
 * numbers chosen by the user (a component writes its order once, as an enum
 * of ranks in its own header, lower rank = taken first).
 *
 * Use:
 *	struct kvmi_mutex m;
 *	kvmi_mutex_init(&m, MY_RANK_VM, "vm->lock");
 *	kvmi_mutex_lock(&m);  ...  kvmi_mutex_unlock(&m);
 *	kvmi_cond_wait(&cond, &m);       (the checker sees release + re-take)
 *	static struct kvmi_mutex g = KVMI_MUTEX_INITIALIZER(MY_RANK_G, "g");
 * Every call returns what the pthread call returns (trylock: 0 or EBUSY).
 * The plain names are macros that pass __FILE__/__LINE__ to the *_at()
 * functions; a helper that takes a lock for its caller can take a file and
 * a line itself and call the *_at() form, so reports name the caller.
 *
 * Rule checked (KVMI_LOCKCHECK defined non-zero, Meson option lockcheck):
 * a thread may block on a lock only if its rank is strictly greater than
 * the rank of every lock the thread already holds.  So two locks of the
 * same rank never nest, and re-taking a held lock is reported.  A trylock
 * never blocks, so it is not checked, but a lock it gets counts as held.
 * Locks may be released in any order.  Also reported: releasing (or waiting
 * on a condition with) a lock the thread does not hold, destroying a lock
 * the thread holds, and holding more than KVMI_LOCKCHECK_MAX_HELD locks.
 * A report is one line on stderr naming the locks, their ranks and where
 * each was taken, then a line per lock the thread holds; then the process
 * aborts.  State is per thread
 * (_Thread_local): no global lock, no allocation on the lock path.  A lock
 * shared by code built with and without the checker confuses it: the
 * switch is meant for the whole build.
 *
 * Cost when disabled: every call is an always-inline wrapper around the
 * pthread call; the rank and the name stay in the structs (a word and a
 * pointer each) and the file/line arguments are dropped by the compiler.
 */
#ifndef KVMI_COMMON_LOCKORDER_H
#define KVMI_COMMON_LOCKORDER_H

#include <pthread.h>
#include <time.h>

#if defined(KVMI_LOCKCHECK) && KVMI_LOCKCHECK
#define KVMI_LOCKCHECK_ENABLED 1
#else
#define KVMI_LOCKCHECK_ENABLED 0
#endif

/* Most locks one thread may hold at once before the checker reports. */
#define KVMI_LOCKCHECK_MAX_HELD 16

struct kvmi_mutex {
	pthread_mutex_t m;
	unsigned rank;
	const char *name;
};

struct kvmi_rwlock {
	pthread_rwlock_t l;
	unsigned rank;
	const char *name;
};

#define KVMI_MUTEX_INITIALIZER(rank_, name_) \
	{ PTHREAD_MUTEX_INITIALIZER, (rank_), (name_) }
#define KVMI_RWLOCK_INITIALIZER(rank_, name_) \
	{ PTHREAD_RWLOCK_INITIALIZER, (rank_), (name_) }

static inline int kvmi_mutex_init(struct kvmi_mutex *mu, unsigned rank,
				  const char *name)
{
	mu->rank = rank;
	mu->name = name;
	return pthread_mutex_init(&mu->m, NULL);
}

static inline int kvmi_rwlock_init(struct kvmi_rwlock *rw, unsigned rank,
				   const char *name)
{
	rw->rank = rank;
	rw->name = name;
	return pthread_rwlock_init(&rw->l, NULL);
}

/* The checker (lockorder.c); always built, called only when enabled. */
int kvmi_lockcheck_mutex_lock(struct kvmi_mutex *mu, const char *file, int line);
int kvmi_lockcheck_mutex_trylock(struct kvmi_mutex *mu, const char *file, int line);
int kvmi_lockcheck_mutex_unlock(struct kvmi_mutex *mu, const char *file, int line);
int kvmi_lockcheck_mutex_destroy(struct kvmi_mutex *mu, const char *file, int line);
void kvmi_lockcheck_mutex_assert_held(const struct kvmi_mutex *mu,
				      const char *file, int line);
int kvmi_lockcheck_rwlock_rdlock(struct kvmi_rwlock *rw, const char *file, int line);
int kvmi_lockcheck_rwlock_wrlock(struct kvmi_rwlock *rw, const char *file, int line);
int kvmi_lockcheck_rwlock_unlock(struct kvmi_rwlock *rw, const char *file, int line);
int kvmi_lockcheck_rwlock_destroy(struct kvmi_rwlock *rw, const char *file, int line);
int kvmi_lockcheck_cond_wait(pthread_cond_t *c, struct kvmi_mutex *mu,
			     const char *file, int line);
int kvmi_lockcheck_cond_timedwait(pthread_cond_t *c, struct kvmi_mutex *mu,
				  const struct timespec *abstime,
				  const char *file, int line);
/* How many locks the calling thread holds, as the checker sees it. */
unsigned kvmi_lockcheck_held_count(void);

/*
 * The *_at() wrappers: with the checker, a call into lockorder.c; without,
 * the pthread call alone (file and line unused).
 */
#if KVMI_LOCKCHECK_ENABLED
#define KVMI_LOCK_FN static inline
#else
#define KVMI_LOCK_FN static inline __attribute__((always_inline))
#endif

KVMI_LOCK_FN int kvmi_mutex_lock_at(struct kvmi_mutex *mu, const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_mutex_lock(mu, file, line);
#else
	(void)file; (void)line;
	return pthread_mutex_lock(&mu->m);
#endif
}

KVMI_LOCK_FN int kvmi_mutex_trylock_at(struct kvmi_mutex *mu, const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_mutex_trylock(mu, file, line);
#else
	(void)file; (void)line;
	return pthread_mutex_trylock(&mu->m);
#endif
}

KVMI_LOCK_FN int kvmi_mutex_unlock_at(struct kvmi_mutex *mu, const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_mutex_unlock(mu, file, line);
#else
	(void)file; (void)line;
	return pthread_mutex_unlock(&mu->m);
#endif
}

KVMI_LOCK_FN int kvmi_mutex_destroy_at(struct kvmi_mutex *mu, const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_mutex_destroy(mu, file, line);
#else
	(void)file; (void)line;
	return pthread_mutex_destroy(&mu->m);
#endif
}

/* Reports unless the calling thread holds mu (no-op when disabled). */
KVMI_LOCK_FN void kvmi_mutex_assert_held_at(const struct kvmi_mutex *mu,
					    const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	kvmi_lockcheck_mutex_assert_held(mu, file, line);
#else
	(void)mu; (void)file; (void)line;
#endif
}

KVMI_LOCK_FN int kvmi_rwlock_rdlock_at(struct kvmi_rwlock *rw, const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_rwlock_rdlock(rw, file, line);
#else
	(void)file; (void)line;
	return pthread_rwlock_rdlock(&rw->l);
#endif
}

KVMI_LOCK_FN int kvmi_rwlock_wrlock_at(struct kvmi_rwlock *rw, const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_rwlock_wrlock(rw, file, line);
#else
	(void)file; (void)line;
	return pthread_rwlock_wrlock(&rw->l);
#endif
}

KVMI_LOCK_FN int kvmi_rwlock_unlock_at(struct kvmi_rwlock *rw, const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_rwlock_unlock(rw, file, line);
#else
	(void)file; (void)line;
	return pthread_rwlock_unlock(&rw->l);
#endif
}

KVMI_LOCK_FN int kvmi_rwlock_destroy_at(struct kvmi_rwlock *rw, const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_rwlock_destroy(rw, file, line);
#else
	(void)file; (void)line;
	return pthread_rwlock_destroy(&rw->l);
#endif
}

KVMI_LOCK_FN int kvmi_cond_wait_at(pthread_cond_t *c, struct kvmi_mutex *mu,
				   const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_cond_wait(c, mu, file, line);
#else
	(void)file; (void)line;
	return pthread_cond_wait(c, &mu->m);
#endif
}

KVMI_LOCK_FN int kvmi_cond_timedwait_at(pthread_cond_t *c, struct kvmi_mutex *mu,
					const struct timespec *abstime,
					const char *file, int line)
{
#if KVMI_LOCKCHECK_ENABLED
	return kvmi_lockcheck_cond_timedwait(c, mu, abstime, file, line);
#else
	(void)file; (void)line;
	return pthread_cond_timedwait(c, &mu->m, abstime);
#endif
}

#undef KVMI_LOCK_FN

#define kvmi_mutex_lock(mu)        kvmi_mutex_lock_at((mu), __FILE__, __LINE__)
#define kvmi_mutex_trylock(mu)     kvmi_mutex_trylock_at((mu), __FILE__, __LINE__)
#define kvmi_mutex_unlock(mu)      kvmi_mutex_unlock_at((mu), __FILE__, __LINE__)
#define kvmi_mutex_destroy(mu)     kvmi_mutex_destroy_at((mu), __FILE__, __LINE__)
#define kvmi_mutex_assert_held(mu) kvmi_mutex_assert_held_at((mu), __FILE__, __LINE__)
#define kvmi_rwlock_rdlock(rw)     kvmi_rwlock_rdlock_at((rw), __FILE__, __LINE__)
#define kvmi_rwlock_wrlock(rw)     kvmi_rwlock_wrlock_at((rw), __FILE__, __LINE__)
#define kvmi_rwlock_unlock(rw)     kvmi_rwlock_unlock_at((rw), __FILE__, __LINE__)
#define kvmi_rwlock_destroy(rw)    kvmi_rwlock_destroy_at((rw), __FILE__, __LINE__)
#define kvmi_cond_wait(c, mu)      kvmi_cond_wait_at((c), (mu), __FILE__, __LINE__)
#define kvmi_cond_timedwait(c, mu, abstime) \
	kvmi_cond_timedwait_at((c), (mu), (abstime), __FILE__, __LINE__)

#endif
