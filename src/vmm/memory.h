/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM and the memslot map.
 *
 * All guest RAM lives in one memfd, mapped once into the VMM.  It is cut into
 * regions by the guest-physical layout (below the 32-bit PCI hole, above
 * 4 GiB), one memslot each.  Every KVM memslot id the VM uses comes from the
 * memslot map: the introspection engine, which splits regions into
 * read-only or absent pieces, asks it for ids too (introspect.c).
 */
#ifndef KVMI_VM_MEMORY_H
#define KVMI_VM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_PAGE_SIZE    4096ull
#define GUEST_LOW_RAM_END  0xc0000000ull  /* start of the 32-bit hole */
#define GUEST_HIGH_RAM     0x100000000ull /* RAM above the hole restarts at 4 GiB */
#define GUEST_MIN_RAM      (2ull << 20)
#define GUEST_MAX_RAM      (1ull << 40)
#define GUEST_MAX_REGIONS  2

struct mem_region {
	uint64_t gpa, size;
	uint8_t *hva;
	uint64_t fd_offset; /* offset of this region in the memfd */
	uint32_t slot_id;   /* the region's own memslot */
};

struct memslot {
	uint32_t id;
	uint32_t flags;     /* KVM_MEM_* */
	uint64_t gpa, size;
	uint8_t *hva;
	bool used;          /* the id is taken (size 0: no KVM slot yet) */
};

struct guest_memory {
	int vm_fd;
	int memfd;
	uint8_t *base;       /* mapping of the whole memfd */
	uint64_t size;       /* total RAM */
	struct mem_region regions[GUEST_MAX_REGIONS];
	unsigned nr_regions;

	struct memslot *slots;  /* indexed by KVM slot id */
	unsigned nr_slots_max;  /* KVM_CAP_NR_MEMSLOTS */
	unsigned nr_slots_used;
	unsigned free_hint;     /* where the search for a free slot id starts */
};

/* Creates the memfd, maps it and registers one memslot per region. */
int guest_memory_init(struct guest_memory *mem, int vm_fd, uint64_t ram_size, unsigned max_slots);
void guest_memory_destroy(struct guest_memory *mem);

/* Host pointer for [gpa, gpa+len) if the whole range is RAM of one region, else NULL. */
void *gpa_to_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len);
/* 0 or -EFAULT when the range is not RAM. */
int guest_read(const struct guest_memory *mem, uint64_t gpa, void *buf, uint64_t len);
int guest_write(const struct guest_memory *mem, uint64_t gpa, const void *buf, uint64_t len);
/* Highest RAM address + 1 below 4 GiB (for e820 and the payload loader). */
uint64_t guest_low_ram_end(const struct guest_memory *mem);

/* Deletes the region's memslot and creates it again, as a remap or
 * hot-plug would (without introspection; see vm_recreate_region()). */
int guest_memory_recreate_region(struct guest_memory *mem, unsigned idx);

/* Memslot map: the only code that issues KVM_SET_USER_MEMORY_REGION.
 * alloc/free take and give back an id; set creates, changes or (size 0)
 * deletes the KVM slot of a taken id.  0 or -errno. */
int memslot_alloc(struct guest_memory *mem, uint32_t *slot_id);
void memslot_free(struct guest_memory *mem, uint32_t slot_id);
int memslot_set(struct guest_memory *mem, uint32_t slot_id, uint32_t flags, uint64_t gpa, uint64_t size,
		uint8_t *hva);
int memslot_map_add(struct guest_memory *mem, uint64_t gpa, uint64_t size, uint8_t *hva,
		    uint32_t flags, uint32_t *slot_id);
int memslot_map_remove(struct guest_memory *mem, uint32_t slot_id);
const struct memslot *memslot_map_find(const struct guest_memory *mem, uint64_t gpa);

#endif
