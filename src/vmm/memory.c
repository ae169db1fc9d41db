/* SPDX-License-Identifier: MIT */
/* Guest RAM (one memfd) and the memslot map. */
#include "memory.h"
#include "pagetrack.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int memslot_apply(struct guest_memory *mem, const struct memslot *s, bool remove)
{
	struct kvm_userspace_memory_region r = {
		.slot = s->id,
		.flags = s->flags,
		.guest_phys_addr = s->gpa,
		.memory_size = remove ? 0 : s->size,
		.userspace_addr = (uint64_t)(uintptr_t)s->hva,
	};

	if (mem->vm_fd < 0) /* unit tests run the map without KVM */
		return 0;
	if (ioctl(mem->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	return 0;
}

int memslot_map_add(struct guest_memory *mem, uint64_t gpa, uint64_t size, uint8_t *hva,
		    uint32_t flags, uint32_t *slot_id)
{
	struct memslot *s = NULL;
	unsigned i;
	int err;

	if (!size || (gpa | size) & (GUEST_PAGE_SIZE - 1))
		return -EINVAL;
	for (unsigned k = 0; k < mem->nr_slots_max; k++) {
		i = (mem->free_hint + k) % mem->nr_slots_max;
		if (!mem->slots[i].used) {
			s = &mem->slots[i];
			break;
		}
	}
	if (!s)
		return -ENOSPC;
	*s = (struct memslot){ .id = i, .flags = flags, .gpa = gpa, .size = size, .hva = hva };
	err = memslot_apply(mem, s, false);
	if (err)
		return err;
	s->used = true;
	mem->nr_slots_used++;
	mem->free_hint = (s->id + 1) % mem->nr_slots_max;
	if (slot_id)
		*slot_id = s->id;
	return 0;
}

int memslot_map_remove(struct guest_memory *mem, uint32_t slot_id)
{
	struct memslot *s;
	int err;

	if (slot_id >= mem->nr_slots_max || !mem->slots[slot_id].used)
		return -ENOENT;
	s = &mem->slots[slot_id];
	err = memslot_apply(mem, s, true);
	if (err)
		return err;
	s->used = false;
	mem->nr_slots_used--;
	if (slot_id < mem->free_hint)
		mem->free_hint = slot_id;
	return 0;
}

const struct memslot *memslot_map_find(const struct guest_memory *mem, uint64_t gpa)
{
	for (unsigned i = 0; i < mem->nr_slots_max; i++) {
		const struct memslot *s = &mem->slots[i];

		if (s->used && gpa >= s->gpa && gpa - s->gpa < s->size)
			return s;
	}
	return NULL;
}

#define HUGE_2M (2ull << 20)

/*
 * Maps the memfd at a 2 MiB-aligned address and asks for transparent huge
 * pages: where the host allows them for shared memory
 * (/sys/kernel/mm/transparent_hugepage/shmem_enabled = advise or always),
 * KVM then maps guest RAM with 2 MiB pages, which saves one nested-paging
 * fault per 4 KiB page (a large part of a Linux boot's time in the box).
 */
static int map_ram(struct guest_memory *mem, uint64_t ram_size)
{
	uint8_t *resv, *aligned, *p;

	resv = mmap(NULL, ram_size + HUGE_2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED)
		return -errno;
	aligned = (uint8_t *)ALIGN_UP((uintptr_t)resv, HUGE_2M);
	p = mmap(aligned, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE | MAP_FIXED,
		 mem->memfd, 0);
	if (p == MAP_FAILED) {
		int err = -errno;

		munmap(resv, ram_size + HUGE_2M);
		return err;
	}
	/* Give back the unused head and tail of the reservation. */
	if (aligned > resv)
		munmap(resv, (size_t)(aligned - resv));
	if (resv + ram_size + HUGE_2M > aligned + ram_size)
		munmap(aligned + ram_size, (size_t)(resv + ram_size + HUGE_2M - (aligned + ram_size)));
	(void)madvise(p, ram_size, MADV_HUGEPAGE); /* advice only; fine if refused */
	mem->base = p;
	return 0;
}

int guest_memory_init(struct guest_memory *mem, int vm_fd, uint64_t ram_size, unsigned max_slots)
{
	uint64_t low, high;
	int err;

	memset(mem, 0, sizeof(*mem));
	mem->vm_fd = vm_fd;
	mem->memfd = -1;
	if (ram_size < GUEST_MIN_RAM || ram_size > GUEST_MAX_RAM || ram_size & (GUEST_PAGE_SIZE - 1))
		return -EINVAL;
	if (!max_slots)
		return -EINVAL;

	mem->slots = calloc(max_slots, sizeof(*mem->slots));
	if (!mem->slots)
		return -ENOMEM;
	mem->nr_slots_max = max_slots;

	mem->memfd = memfd_create("kvmi-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mem->memfd < 0) {
		err = -errno;
		goto err_free;
	}
	if (ftruncate(mem->memfd, (off_t)ram_size) < 0) {
		err = -errno;
		goto err_close;
	}
	/* The introspection tool may get this file (KVMI_X_MAP_MEMORY): it
	 * must not be able to shrink it under the VMM's mapping (SIGBUS). */
	if (fcntl(mem->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		err = -errno;
		goto err_close;
	}
	err = map_ram(mem, ram_size);
	if (err)
		goto err_close;
	mem->size = ram_size;

	low = MIN(ram_size, GUEST_LOW_RAM_END);
	high = ram_size - low;
	mem->regions[mem->nr_regions++] = (struct mem_region){ .gpa = 0, .size = low, .hva = mem->base };
	if (high)
		mem->regions[mem->nr_regions++] =
			(struct mem_region){
			.gpa = GUEST_HIGH_RAM, .size = high, .hva = mem->base + low, .fd_offset = low };

	{
		struct pagetrack none;

		pagetrack_init(&none);
		err = guest_memory_apply_tracking(mem, &none, NULL, NULL);
		if (err)
			goto err_unmap;
	}
	return 0;

err_unmap:
	munmap(mem->base, ram_size);
	mem->base = NULL;
err_close:
	close(mem->memfd);
	mem->memfd = -1;
err_free:
	free(mem->slots);
	mem->slots = NULL;
	return err;
}

static bool same_segment(const struct pt_segment *a, const struct pt_segment *b)
{
	return a->gpa == b->gpa && a->size == b->size && a->kind == b->kind;
}

/* Index of segment s in layout v (sorted by gpa), or n if absent. */
static size_t layout_find(const struct pt_segment *v, size_t n, const struct pt_segment *s)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].gpa < s->gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && same_segment(&v[lo], s) ? lo : n;
}

static bool layout_has(const struct pt_segment *v, size_t n, const struct pt_segment *s)
{
	return layout_find(v, n, s) < n;
}

static int apply_region(struct guest_memory *mem, struct mem_region *r, const struct pagetrack *pt,
			unsigned *removed, unsigned *added)
{
	struct pt_segment *nl;
	uint32_t *ids;
	size_t n;
	int err;

	err = pagetrack_layout(pt, r->gpa, r->size, &nl, &n);
	if (err)
		return err;
	ids = malloc((n ? n : 1) * sizeof(*ids));
	if (!ids) {
		free(nl);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->nr_layout; i++) {
		if (r->slot_ids[i] == UINT32_MAX || layout_has(nl, n, &r->layout[i]))
			continue;
		err = memslot_map_remove(mem, r->slot_ids[i]);
		if (err)
			goto fail;
		r->slot_ids[i] = UINT32_MAX;
		(*removed)++;
	}
	for (size_t i = 0; i < n; i++) {
		const struct pt_segment *s = &nl[i];
		size_t j;

		ids[i] = UINT32_MAX;
		if (s->kind == PT_HOLE)
			continue;
		/* Kept from the old layout? */
		j = layout_find(r->layout, r->nr_layout, s);
		if (j < r->nr_layout && r->slot_ids[j] != UINT32_MAX) {
			ids[i] = r->slot_ids[j];
			continue;
		}
		err = memslot_map_add(mem, s->gpa, s->size, r->hva + (s->gpa - r->gpa),
				      s->kind == PT_MAP_RO ? KVM_MEM_READONLY : 0, &ids[i]);
		if (err)
			goto fail;
		(*added)++;
	}
	free(r->layout);
	free(r->slot_ids);
	r->layout = nl;
	r->slot_ids = ids;
	r->nr_layout = n;
	return 0;

fail:
	/* Leave the map consistent with what KVM has: drop what we added. */
	for (size_t i = 0; i < n; i++) {
		bool old = false;

		for (size_t j = 0; j < r->nr_layout; j++)
			old |= r->slot_ids[j] == ids[i] && ids[i] != UINT32_MAX;
		if (ids[i] != UINT32_MAX && !old)
			memslot_map_remove(mem, ids[i]);
	}
	free(nl);
	free(ids);
	return err;
}

int guest_memory_apply_tracking(struct guest_memory *mem, const struct pagetrack *pt,
				unsigned *removed, unsigned *added)
{
	unsigned rm = 0, ad = 0;
	int err = 0;

	for (unsigned i = 0; !err && i < mem->nr_regions; i++)
		err = apply_region(mem, &mem->regions[i], pt, &rm, &ad);
	if (removed)
		*removed = rm;
	if (added)
		*added = ad;
	return err;
}

int guest_memory_recreate_region(struct guest_memory *mem, unsigned idx, const struct pagetrack *pt,
				 unsigned *slots)
{
	struct mem_region *r;
	struct pagetrack none;
	unsigned rm = 0, ad = 0;
	int err;

	if (idx >= mem->nr_regions)
		return -EINVAL;
	r = &mem->regions[idx];
	for (size_t i = 0; i < r->nr_layout; i++) {
		if (r->slot_ids[i] == UINT32_MAX)
			continue;
		err = memslot_map_remove(mem, r->slot_ids[i]);
		if (err)
			return err;
		r->slot_ids[i] = UINT32_MAX;
	}
	/* A new region: nothing is kept from the old layout, every slot is
	 * added again from the tracker, restrictions included. */
	free(r->layout);
	free(r->slot_ids);
	r->layout = NULL;
	r->slot_ids = NULL;
	r->nr_layout = 0;
	if (!pt) {
		pagetrack_init(&none);
		pt = &none;
	}
	err = apply_region(mem, r, pt, &rm, &ad);
	if (slots)
		*slots = ad;
	return err;
}

void guest_memory_destroy(struct guest_memory *mem)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		free(mem->regions[i].layout);
		free(mem->regions[i].slot_ids);
	}
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	free(mem->slots);
	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	mem->vm_fd = -1;
}

void *gpa_to_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int guest_read(const struct guest_memory *mem, uint64_t gpa, void *buf, uint64_t len)
{
	void *p = gpa_to_hva(mem, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	return 0;
}

int guest_write(const struct guest_memory *mem, uint64_t gpa, const void *buf, uint64_t len)
{
	void *p = gpa_to_hva(mem, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, buf, len);
	return 0;
}

uint64_t guest_low_ram_end(const struct guest_memory *mem)
{
	return mem->regions[0].size;
}
