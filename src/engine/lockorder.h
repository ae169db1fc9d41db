/* SPDX-License-Identifier: MIT */
/* TEMPORARY stand-in until src/common/lockorder.h lands: ranked locks
 * without checking. */
#ifndef KVMI_LOCKORDER_H
#define KVMI_LOCKORDER_H
#include <pthread.h>
struct kvmi_mutex { pthread_mutex_t m; unsigned rank; const char *name; };
struct kvmi_rwlock { pthread_rwlock_t l; unsigned rank; const char *name; };
static inline void kvmi_mutex_init(struct kvmi_mutex *m, unsigned rank, const char *name)
{ pthread_mutex_init(&m->m, NULL); m->rank = rank; m->name = name; }
static inline void kvmi_mutex_destroy(struct kvmi_mutex *m) { pthread_mutex_destroy(&m->m); }
static inline void kvmi_mutex_lock(struct kvmi_mutex *m) { pthread_mutex_lock(&m->m); }
static inline int kvmi_mutex_trylock(struct kvmi_mutex *m) { return pthread_mutex_trylock(&m->m); }
static inline void kvmi_mutex_unlock(struct kvmi_mutex *m) { pthread_mutex_unlock(&m->m); }
static inline void kvmi_cond_wait(pthread_cond_t *c, struct kvmi_mutex *m) { pthread_cond_wait(c, &m->m); }
static inline void kvmi_rwlock_init(struct kvmi_rwlock *l, unsigned rank, const char *name)
{ pthread_rwlock_init(&l->l, NULL); l->rank = rank; l->name = name; }
static inline void kvmi_rwlock_destroy(struct kvmi_rwlock *l) { pthread_rwlock_destroy(&l->l); }
static inline void kvmi_rwlock_rdlock(struct kvmi_rwlock *l) { pthread_rwlock_rdlock(&l->l); }
static inline void kvmi_rwlock_wrlock(struct kvmi_rwlock *l) { pthread_rwlock_wrlock(&l->l); }
static inline void kvmi_rwlock_unlock(struct kvmi_rwlock *l) { pthread_rwlock_unlock(&l->l); }
#endif
