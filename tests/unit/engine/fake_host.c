/* SPDX-License-Identifier: MIT */
/* The unit tests' fake frontend (see fake_host.h). */
#include "fake_host.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>


static void f_kick(void *host, unsigned idx)
{
	(void)idx;
	((struct fake_host *)host)->kicks++;
}

static void f_stop(void *host, enum kvmi_stop_reason why)
{
	(void)host;
	(void)why;
}

static int f_alloc(void *host, uint32_t *id)
{
	struct fake_host *h = host;

	for (uint32_t i = 100; i < MAX_SLOTS; i++) {
		if (!h->slot[i].used) {
			h->slot[i].used = true;
			h->allocs++;
			*id = i;
			return 0;
		}
	}
	return -ENOSPC;
}

static void f_free(void *host, uint32_t id)
{
	struct fake_host *h = host;

	h->slot[id].used = false;
	h->frees++;
}

static int f_set(void *host, uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size, void *hva)
{
	struct fake_host *h = host;

	(void)hva;
	if (h->fail_set_after > 0 && --h->fail_set_after == 0)
		return -EINVAL;
	h->sets++;
	h->slot[id].flags = flags;
	h->slot[id].gpa = gpa;
	h->slot[id].size = size;
	return 0;
}

const struct kvmi_host_ops fake_ops = {
	.kick = f_kick, .request_stop = f_stop, .slot_alloc = f_alloc, .slot_free = f_free, .slot_set = f_set,
};

/* KVM slots with a size, i.e. what the guest sees. */
unsigned kvm_slots(const struct fake_host *h)
{
	unsigned n = 0;

	for (unsigned i = 0; i < MAX_SLOTS; i++)
		n += h->slot[i].size != 0;
	return n;
}

/* The slot covering gpa, or -1. */
int slot_at(const struct fake_host *h, uint64_t gpa)
{
	for (int i = 0; i < MAX_SLOTS; i++)
		if (h->slot[i].size && gpa >= h->slot[i].gpa && gpa - h->slot[i].gpa < h->slot[i].size)
			return i;
	return -1;
}

struct kvmi_engine *new_engine(struct fake_host *h, uint64_t ram, void **mem)
{
	struct kvmi_engine_config cfg;
	struct kvmi_engine *e = NULL;
	struct kvmi_ram_region r;

	memset(h, 0, sizeof(*h));
	memset(&cfg, 0, sizeof(cfg));
	cfg.ops = &fake_ops;
	cfg.host = h;
	cfg.kvm_fd = cfg.vm_fd = -1;
	cfg.max_vcpus = 1;
	kvmi_policy_allow_all(&cfg.policy);
	/* Real memory: the engine completes accesses in it (reserved only,
	 * pages come when touched). */
	*mem = mmap(NULL, ram, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (*mem == MAP_FAILED)
		return NULL;
	h->ram_size = ram;
	if (kvmi_engine_create(&cfg, &e))
		return NULL;
	/* As kvmi-vm does: the region's slot exists when the engine comes. */
	h->slot[REGION_SLOT].used = true;
	f_set(h, REGION_SLOT, 0, 0, ram, *mem);
	r = (struct kvmi_ram_region){ .gpa = 0, .size = ram, .hva = *mem, .fd = -1, .slot_id = REGION_SLOT,
				      .slot_exists = true };
	if (kvmi_engine_region_add(e, &r) || !kvmi_engine_vcpu_add(e, 0, -1, calloc(1, 4096))) {
		kvmi_engine_destroy(e);
		return NULL;
	}
	return e;
}

void free_engine(struct kvmi_engine *e, void *mem)
{
	struct kvm_run *run = e->vcpus[0] ? e->vcpus[0]->run : NULL;
	struct fake_host *h = e->host;

	kvmi_engine_destroy(e);
	free(run);
	munmap(mem, h->ram_size);
}
