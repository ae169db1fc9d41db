/* SPDX-License-Identifier: MIT */
/* Guest RAM (one memfd) and the memslot map. */
#include "memory.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int memslot_alloc(struct guest_memory *mem, uint32_t *slot_id)
{
	for (unsigned k = 0; k < mem->nr_slots_max; k++) {
		unsigned i = (mem->free_hint + k) % mem->nr_slots_max;
		struct memslot *s = &mem->slots[i];

		if (s->used)
			continue;
		*s = (struct memslot){ .id = i, .used = true };
		mem->nr_slots_used++;
		mem->free_hint = (i + 1) % mem->nr_slots_max;
		*slot_id = i;
		return 0;
	}
	return -ENOSPC;
}

void memslot_free(struct guest_memory *mem, uint32_t slot_id)
{
	if (slot_id >= mem->nr_slots_max || !mem->slots[slot_id].used)
		return;
	mem->slots[slot_id].used = false;
	mem->slots[slot_id].size = 0;
	mem->nr_slots_used--;
	if (slot_id < mem->free_hint)
		mem->free_hint = slot_id;
}

int memslot_set(struct guest_memory *mem, uint32_t slot_id, uint32_t flags, uint64_t gpa, uint64_t size,
		uint8_t *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot_id, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva,
	};
	struct memslot *s;

	if (slot_id >= mem->nr_slots_max || !mem->slots[slot_id].used)
		return -ENOENT;
	if ((gpa | size) & (GUEST_PAGE_SIZE - 1))
		return -EINVAL;
	/* unit tests run the map without KVM */
	if (mem->vm_fd >= 0 && ioctl(mem->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	s = &mem->slots[slot_id];
	s->flags = flags;
	s->gpa = gpa;
	s->size = size;
	s->hva = hva;
	return 0;
}

int memslot_map_add(struct guest_memory *mem, uint64_t gpa, uint64_t size, uint8_t *hva,
		    uint32_t flags, uint32_t *slot_id)
{
	uint32_t id;
	int err;

	if (!size || (gpa | size) & (GUEST_PAGE_SIZE - 1))
		return -EINVAL;
	err = memslot_alloc(mem, &id);
	if (err)
		return err;
	err = memslot_set(mem, id, flags, gpa, size, hva);
	if (err) {
		memslot_free(mem, id);
		return err;
	}
	if (slot_id)
		*slot_id = id;
	return 0;
}

int memslot_map_remove(struct guest_memory *mem, uint32_t slot_id)
{
	const struct memslot *s;
	int err;

	if (slot_id >= mem->nr_slots_max || !mem->slots[slot_id].used)
		return -ENOENT;
	s = &mem->slots[slot_id];
	err = memslot_set(mem, slot_id, s->flags, s->gpa, 0, s->hva);
	if (err)
		return err;
	memslot_free(mem, slot_id);
	return 0;
}

const struct memslot *memslot_map_find(const struct guest_memory *mem, uint64_t gpa)
{
	for (unsigned i = 0; i < mem->nr_slots_max; i++) {
		const struct memslot *s = &mem->slots[i];

		if (s->used && s->size && gpa >= s->gpa && gpa - s->gpa < s->size)
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
	/* A memfd's inode is created 0777: a tool given a read-only
	 * descriptor (KVMI_X_MAP_READONLY) could reopen it for writing
	 * through /proc/self/fd.  Read for the owner only: our own mapping
	 * and descriptor keep their rights, the engine's read-only reopen
	 * still works, and anyone else needs to be root (docs/security.md). */
	if (fchmod(mem->memfd, 0400) < 0) {
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

	for (unsigned i = 0; i < mem->nr_regions; i++) {
		struct mem_region *r = &mem->regions[i];

		err = memslot_map_add(mem, r->gpa, r->size, r->hva, 0, &r->slot_id);
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

int guest_memory_recreate_region(struct guest_memory *mem, unsigned idx)
{
	struct mem_region *r;
	const struct memslot *s;
	int err;

	if (idx >= mem->nr_regions)
		return -EINVAL;
	r = &mem->regions[idx];
	s = &mem->slots[r->slot_id];
	err = memslot_set(mem, r->slot_id, s->flags, r->gpa, 0, r->hva);
	return err ? err : memslot_set(mem, r->slot_id, 0, r->gpa, r->size, r->hva);
}

void guest_memory_destroy(struct guest_memory *mem)
{
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
