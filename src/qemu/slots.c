/* SPDX-License-Identifier: MIT */
/*
 * slots.c - QEMU's memslots as the engine's RAM regions, and the engine's
 * host operations.  QEMU sees the slots it created, under its ids, and a
 * KVM_CAP_NR_MEMSLOTS small enough that the ids above it are free for the
 * pieces the engine cuts (read-only pages, holes); the kernel sees the
 * pieces.  KVM_GET_DIRTY_LOG of a QEMU slot is the OR of its pieces'
 * bitmaps, of the bitmaps of pieces deleted since the last call (harvested
 * before deletion) and of the pages the engine wrote itself.
 */
#include "kq.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "util.h"

#define PAGE_SHIFT 12
#define BITS_PER_LONG (8 * sizeof(unsigned long))

static size_t bitmap_longs(uint64_t size)
{
	return ((size >> PAGE_SHIFT) + BITS_PER_LONG - 1) / BITS_PER_LONG;
}

/* How many of KVM's n slot ids QEMU is told about. */
static unsigned qemu_share(long n)
{
	return n / 2 < KQ_QEMU_SLOTS_MAX ? (unsigned)(n / 2) : KQ_QEMU_SLOTS_MAX;
}

int kq_slots_init(void)
{
	long n = kq_sys_ioctl(kq.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);

	if (n < 64)
		return -ENOSPC;
	kq.nr_kslots = (unsigned)(n > 0xffff ? 0xffff : n);
	kq.nr_qslots = qemu_share(kq.nr_kslots);
	kq.qslots = calloc(kq.nr_qslots, sizeof(*kq.qslots));
	kq.kslots = calloc(kq.nr_kslots, sizeof(*kq.kslots));
	return kq.qslots && kq.kslots ? 0 : -ENOMEM;
}

/* ---- the dirty log ---------------------------------------------------- */

/* kq.lock held.  The QEMU slot holding gpa, or NULL. */
static struct kq_slot *qslot_at(uint64_t gpa)
{
	for (unsigned i = 0; i < kq.nr_qslots; i++) {
		struct kq_slot *s = &kq.qslots[i];

		if (s->used && gpa >= s->gpa && gpa - s->gpa < s->size)
			return s;
	}
	return NULL;
}

static void mark_written(struct kq_slot *s, uint64_t first_page, uint64_t npages)
{
	for (uint64_t p = first_page; p < first_page + npages && p < (s->size >> PAGE_SHIFT); p++)
		atomic_fetch_or(&s->written[p / BITS_PER_LONG], 1ul << (p % BITS_PER_LONG));
}

/* kq.lock held.  ORs kernel slot id's dirty bitmap into s->written. */
static void harvest(uint32_t id, const struct kq_kslot *k)
{
	struct kq_slot *s = qslot_at(k->gpa);
	size_t longs = bitmap_longs(k->size);
	unsigned long *tmp;
	struct kvm_dirty_log log;
	uint64_t base;

	if (!s || !s->written || !(k->flags & KVM_MEM_LOG_DIRTY_PAGES))
		return;
	tmp = calloc(longs, sizeof(*tmp));
	if (!tmp)
		return;
	memset(&log, 0, sizeof(log));
	log.slot = id;
	log.dirty_bitmap = tmp;
	base = (k->gpa - s->gpa) >> PAGE_SHIFT;
	if (kq_sys_ioctl(kq.vm_fd, KVM_GET_DIRTY_LOG, (unsigned long)&log) == 0) {
		for (uint64_t p = 0; p < (k->size >> PAGE_SHIFT); p++)
			if (tmp[p / BITS_PER_LONG] & (1ul << (p % BITS_PER_LONG)))
				mark_written(s, base + p, 1);
	}
	free(tmp);
}

long kq_get_dirty_log(struct kvm_dirty_log *log)
{
	uint32_t id = log->slot & 0xffff;
	struct kq_slot *s;
	unsigned long *out = log->dirty_bitmap;

	if ((log->slot >> 16) || id >= kq.nr_qslots || !kq.qslots[id].used)
		return kq_sys_ioctl(kq.vm_fd, KVM_GET_DIRTY_LOG, (unsigned long)log);
	pthread_mutex_lock(&kq.lock);
	s = &kq.qslots[id];
	/* Every live piece inside the slot: its bits are harvested into
	 * s->written, which then is QEMU's answer (and starts over). */
	for (uint32_t k = 0; k < kq.nr_kslots; k++) {
		const struct kq_kslot *ks = &kq.kslots[k];

		if (ks->live && ks->gpa >= s->gpa && ks->gpa - s->gpa < s->size)
			harvest(k, ks);
	}
	for (size_t i = 0; i < bitmap_longs(s->size); i++)
		out[i] = s->written ? atomic_exchange(&s->written[i], 0) : 0;
	pthread_mutex_unlock(&kq.lock);
	return 0;
}

/* ---- host operations ---------------------------------------------------- */

static int host_slot_alloc(void *host, uint32_t *id)
{
	int err = -ENOSPC;

	(void)host;
	pthread_mutex_lock(&kq.lock);
	for (uint32_t i = kq.nr_qslots; i < kq.nr_kslots; i++) {
		if (!kq.kslots[i].allocated) {
			kq.kslots[i].allocated = true;
			*id = i;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&kq.lock);
	return err;
}

static void host_slot_free(void *host, uint32_t id)
{
	(void)host;
	pthread_mutex_lock(&kq.lock);
	if (id >= kq.nr_qslots && id < kq.nr_kslots)
		kq.kslots[id].allocated = false;
	pthread_mutex_unlock(&kq.lock);
}

static int host_slot_set(void *host, uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = id, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva,
	};
	struct kq_kslot *k;
	int err = 0;

	(void)host;
	if (id >= kq.nr_kslots)
		return -EINVAL;
	pthread_mutex_lock(&kq.lock);
	k = &kq.kslots[id];
	/* KVM forgets a slot's dirty bits with the slot (or when logging
	 * stops): keep them for QEMU's next KVM_GET_DIRTY_LOG. */
	if (k->live && (!size || !(flags & KVM_MEM_LOG_DIRTY_PAGES)))
		harvest(id, k);
	if (kq_sys_ioctl(kq.vm_fd, KVM_SET_USER_MEMORY_REGION, (unsigned long)&r) < 0) {
		err = -errno;
	} else {
		k->live = size != 0;
		k->flags = flags;
		k->gpa = gpa;
		k->size = size;
	}
	pthread_mutex_unlock(&kq.lock);
	return err;
}

static void host_ram_written(void *host, uint64_t gpa, uint64_t len)
{
	struct kq_slot *s;

	(void)host;
	if (!len || kq.no_dirty_merge)
		return;
	pthread_mutex_lock(&kq.lock);
	s = qslot_at(gpa);
	if (s && s->written)
		mark_written(s, (gpa - s->gpa) >> PAGE_SHIFT,
			     ((gpa + len - 1) >> PAGE_SHIFT) - (gpa >> PAGE_SHIFT) + 1);
	pthread_mutex_unlock(&kq.lock);
}

const struct kvmi_host_ops kq_host_ops = {
	.kick = kq_kick,
	.request_stop = kq_request_stop,
	.slot_alloc = host_slot_alloc,
	.slot_free = host_slot_free,
	.slot_set = host_slot_set,
	.ram_written = host_ram_written,
	.wants_thread = kq_wants_thread,
};

/* ---- QEMU's memslot calls ------------------------------------------------ */

/*
 * The memfd behind hva, if any (QEMU's memory-backend-memfd), for
 * zero-copy map grants: found through /proc/self/maps and the descriptor
 * table.  Its mode becomes 0400 so that a read-only grant cannot be
 * reopened for writing through /proc/PID/fd (QEMU never reopens it).
 */
static int memfd_of(void *hva, uint64_t *offset)
{
	char line[512], path[64], target[256];
	uintptr_t a = (uintptr_t)hva;
	unsigned long start, end, off, ino = 0;
	FILE *f = fopen("/proc/self/maps", "re");
	int fd = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %*s %lx %*s %lu", &start, &end, &off, &ino) == 4 && a >= start &&
		    a < end && strstr(line, "/memfd:")) {
			*offset = off + (a - start);
			break;
		}
		ino = 0;
	}
	fclose(f);
	for (int i = 0; ino && i < 4096 && fd < 0; i++) {
		struct stat st;
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strncmp(target, "/memfd:", 7) && fstat(i, &st) == 0 && st.st_ino == ino)
			fd = i;
	}
	if (fd >= 0 && fchmod(fd, 0400))
		pr_warn("memory map grants: cannot make QEMU's RAM memfd read-only for others: %s",
			strerror(errno));
	return fd;
}

static int region_add(uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvmi_ram_region r = {
		.gpa = gpa, .size = size, .hva = hva, .slot_id = id,
		.flags = flags & (KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY),
	};
	struct kq_slot *s = &kq.qslots[id];
	_Atomic(unsigned long) *written = calloc(bitmap_longs(size) + 1, sizeof(*written));
	int err;

	if (!written)
		return -ENOMEM;
	r.fd = flags & KVM_MEM_READONLY ? -1 : memfd_of(hva, &r.fd_offset);
	pthread_mutex_lock(&kq.lock);
	*s = (struct kq_slot){ .used = true, .flags = flags, .gpa = gpa, .size = size, .hva = hva,
			       .written = written };
	pthread_mutex_unlock(&kq.lock);
	err = kvmi_engine_region_add(kq.e, &r);
	if (err) {
		pthread_mutex_lock(&kq.lock);
		s->used = false;
		s->written = NULL;
		pthread_mutex_unlock(&kq.lock);
		free(written);
	}
	return err;
}

static int region_remove(uint32_t id)
{
	struct kq_slot *s = &kq.qslots[id];
	_Atomic(unsigned long) *written;
	int err = kvmi_engine_region_remove(kq.e, s->gpa);

	pthread_mutex_lock(&kq.lock);
	written = s->written;
	*s = (struct kq_slot){ 0 };
	pthread_mutex_unlock(&kq.lock);
	free(written);
	return err;
}

/* One QEMU call: create, delete, change dirty logging, or replace. */
static int set_region(uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size, void *hva)
{
	const struct kq_slot *s = &kq.qslots[id];
	int err;

	if (!s->used)
		return size ? region_add(id, flags, gpa, size, hva) : 0;
	if (!size)
		return region_remove(id);
	if (s->gpa == gpa && s->size == size && s->hva == hva &&
	    !((s->flags ^ flags) & ~(uint32_t)KVM_MEM_LOG_DIRTY_PAGES)) {
		bool on = flags & KVM_MEM_LOG_DIRTY_PAGES;

		/* QEMU logs guest RAM (not video memory, which has its own
		 * slots) only to save or migrate the VM: the tool is told
		 * first, as the KVMI design asks of the VMM. */
		if (on && !(s->flags & KVM_MEM_LOG_DIRTY_PAGES) && gpa == 0 && atomic_load(&kq.started)) {
			pr_info("QEMU starts logging guest RAM (snapshot or migration): UNHOOK");
			kvmi_engine_unhook(kq.e);
		}
		err = kvmi_engine_region_set_dirty_log(kq.e, gpa, on);
		if (!err) {
			pthread_mutex_lock(&kq.lock);
			kq.qslots[id].flags = flags;
			pthread_mutex_unlock(&kq.lock);
		}
		return err;
	}
	/* moved or resized: the guest must not run in between */
	kvmi_engine_hold(kq.e);
	err = region_remove(id);
	if (!err)
		err = region_add(id, flags, gpa, size, hva);
	kvmi_engine_release(kq.e);
	return err;
}

long kq_set_memory_region(unsigned long req, void *arg)
{
	struct kvm_userspace_memory_region *r1 = arg;
	struct kq_memory_region2 *r2 = arg;
	uint32_t slot = r1->slot, flags = r1->flags, id = slot & 0xffff;
	int err;

	/* The two layouts agree up to userspace_addr. */
	if ((uint32_t)req == (uint32_t)KQ_SET_USER_MEMORY_REGION2 && (r2->flags & KQ_MEM_GUEST_MEMFD)) {
		pr_err("QEMU asks for private guest memory (guest_memfd), which the library cannot "
		       "follow; refusing the memslot");
		errno = EOPNOTSUPP;
		return -1;
	}
	if (slot >> 16)                 /* SMM address space: not introspected */
		return kq_sys_ioctl(kq.vm_fd, req, (unsigned long)arg);
	if (id >= kq.nr_qslots) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&kq.slot_op_lock);
	err = set_region(id, flags, r1->guest_phys_addr, r1->memory_size, (void *)(uintptr_t)r1->userspace_addr);
	pthread_mutex_unlock(&kq.slot_op_lock);
	if (err) {
		pr_debug("QEMU memslot %u [%#llx, +%#llx) flags %#x: %s", id, (unsigned long long)r1->guest_phys_addr,
			 (unsigned long long)r1->memory_size, flags, strerror(-err));
		errno = -err;
		return -1;
	}
	return 0;
}

long kq_check_extension(int fd, unsigned long req, long cap)
{
	long v = kq_sys_ioctl(fd, req, (unsigned long)cap);

	switch (cap) {
	case KVM_CAP_NR_MEMSLOTS:
		/* asked before KVM_CREATE_VM too */
		return v >= 64 ? (long)qemu_share(v > 0xffff ? 0xffff : v) : v;
	/* Dirty-log variants whose bookkeeping names kernel slots or needs
	 * 64-page aligned slots: QEMU falls back to KVM_GET_DIRTY_LOG. */
	case KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2:
	case KVM_CAP_DIRTY_LOG_RING:
	case KVM_CAP_DIRTY_LOG_RING_ACQ_REL:
	case KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP:
	/* private memory cannot be read, written or split by the engine */
	case KVM_CAP_GUEST_MEMFD:
		return 0;
	default:
		return v;
	}
}
