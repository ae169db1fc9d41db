/* SPDX-License-Identifier: MIT */
/*
 * Page-access tracker: the r/w/x rights an introspection tool set per 4 KiB
 * guest frame (default rwx = untracked), and the memslot layout that
 * enforces them on stock KVM:
 *   - rights without W (but with R and X): the frame sits in a read-only
 *     slot, so guest writes exit as MMIO and reads/fetches run natively;
 *   - rights without R or without X: the frame is left out of every slot,
 *     so every access exits (data accesses as MMIO, fetches as emulation
 *     failures);
 *   - neighbouring frames of the same kind share one slot.
 * Accesses that the rights allow but the layout still traps (a frame
 * removed for X keeps R) are completed silently by the exit handlers.
 */
#ifndef KVMI_VM_PAGETRACK_H
#define KVMI_VM_PAGETRACK_H

#include <stddef.h>
#include <stdint.h>

#define PT_R   0x1
#define PT_W   0x2
#define PT_X   0x4
#define PT_RWX 0x7

struct pt_entry {
	uint64_t gfn;
	uint8_t access;
};

struct pagetrack {
	struct pt_entry *e;   /* sorted by gfn, unique, access != PT_RWX */
	size_t n, cap;
};

enum pt_kind { PT_MAP_RW, PT_MAP_RO, PT_HOLE };

struct pt_segment {
	uint64_t gpa, size;
	enum pt_kind kind;
};

static inline enum pt_kind pt_kind_of(uint8_t access)
{
	if ((access & (PT_R | PT_X)) != (PT_R | PT_X))
		return PT_HOLE;
	return (access & PT_W) ? PT_MAP_RW : PT_MAP_RO;
}

void pagetrack_init(struct pagetrack *pt);
void pagetrack_destroy(struct pagetrack *pt);
void pagetrack_clear(struct pagetrack *pt);
/* Applies n changes in one merge (O(n log n + tracked)); for a gfn given
 * twice the last one wins; PT_RWX forgets the frame.  0 or -ENOMEM. */
int pagetrack_update(struct pagetrack *pt, const struct pt_entry *changes, size_t n);
uint8_t pagetrack_get(const struct pagetrack *pt, uint64_t gfn);
/* Index of the first tracked frame >= gfn (== pt->n if none). */
size_t pagetrack_lower_bound(const struct pagetrack *pt, uint64_t gfn);

/* Slot layout of RAM [gpa, gpa + size) (page aligned).  *out is malloc'ed. */
int pagetrack_layout(const struct pagetrack *pt, uint64_t gpa, uint64_t size,
		     struct pt_segment **out, size_t *n);

#endif
