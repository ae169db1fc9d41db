/* SPDX-License-Identifier: MIT */
/* Unit tests for the page-access tracker and the memslot layout it drives. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "pagetrack.h"
#include "tap.h"

static void test_update(void)
{
	struct pagetrack pt;
	struct pt_entry a[] = { { 10, PT_R | PT_X }, { 5, 0 }, { 10, PT_R }, { 7, PT_RWX } };
	struct pt_entry b[] = { { 5, PT_RWX }, { 6, PT_W }, { 0x7fff, 0xff } };

	pagetrack_init(&pt);
	ok(pagetrack_get(&pt, 3) == PT_RWX, "untracked frame reads as rwx");
	ok(pagetrack_update(&pt, a, 4) == 0 && pt.n == 2, "batch: rwx entries are not stored");
	ok(pagetrack_get(&pt, 10) == PT_R, "batch: the last change for a frame wins");
	ok(pagetrack_get(&pt, 5) == 0, "batch: no-access frame");
	ok(pagetrack_update(&pt, b, 3) == 0 && pt.n == 2, "second batch merges (5 and 0x7fff forgotten, 6 added)");
	ok(pagetrack_get(&pt, 5) == PT_RWX, "rwx forgets a frame");
	ok(pagetrack_get(&pt, 0x7fff) == PT_RWX, "bits beyond rwx are masked");
	ok(pt.n == 2 && pt.e[0].gfn == 6 && pt.e[1].gfn == 10, "entries stay sorted");
	pagetrack_destroy(&pt);
}

static void test_layout(void)
{
	struct pagetrack pt;
	struct pt_segment *s;
	size_t n;
	/* frames 2,3 write-protected (adjacent, one RO slot), 5 read-protected,
	 * 6 exec-protected (both holes, merged), 9 rw (rwx minus nothing) */
	struct pt_entry e[] = {
		{ 2, PT_R | PT_X }, { 3, PT_R | PT_X }, { 5, PT_W | PT_X }, { 6, PT_R | PT_W },
	};

	pagetrack_init(&pt);
	pagetrack_update(&pt, e, 4);
	ok(pagetrack_layout(&pt, 0, 16 * 4096, &s, &n) == 0, "layout computed");
	ok(n == 5, "layout: rw | ro ro | rw | hole hole | rw  -> 5 segments (got %zu)", n);
	ok(n == 5 && s[0].kind == PT_MAP_RW && s[0].gpa == 0 && s[0].size == 2 * 4096 &&
	   s[1].kind == PT_MAP_RO && s[1].gpa == 2 * 4096 && s[1].size == 2 * 4096 &&
	   s[2].kind == PT_MAP_RW && s[2].size == 4096 &&
	   s[3].kind == PT_HOLE && s[3].gpa == 5 * 4096 && s[3].size == 2 * 4096 &&
	   s[4].kind == PT_MAP_RW && s[4].gpa == 7 * 4096 && s[4].size == 9 * 4096,
	   "layout: segment bounds and kinds");
	free(s);
	ok(pagetrack_layout(&pt, 8 * 4096, 8 * 4096, &s, &n) == 0 && n == 1 && s[0].kind == PT_MAP_RW,
	   "layout of a range without restrictions is one slot");
	free(s);
	ok(pt_kind_of(PT_R | PT_W) == PT_HOLE && pt_kind_of(PT_X) == PT_HOLE &&
	   pt_kind_of(PT_R | PT_X) == PT_MAP_RO && pt_kind_of(PT_RWX) == PT_MAP_RW,
	   "kinds: no R or no X -> hole; no W -> read-only");
	pagetrack_destroy(&pt);
}

static void test_apply(void)
{
	struct guest_memory mem;
	struct pagetrack pt;
	unsigned rm, ad;
	struct pt_entry e1[] = { { 0x10, PT_R | PT_X } };
	struct pt_entry e2[] = { { 0x10, PT_RWX } };
	struct pt_entry many[100];

	pagetrack_init(&pt);
	ok(guest_memory_init(&mem, -1, 16 << 20, 1024) == 0 && mem.nr_slots_used == 1,
	   "apply: memory starts as one slot");
	pagetrack_update(&pt, e1, 1);
	ok(guest_memory_apply_tracking(&mem, &pt, &rm, &ad) == 0 && rm == 1 && ad == 3 &&
	   mem.nr_slots_used == 3, "apply: one write-protected page splits 1 slot into 3");
	ok(memslot_map_find(&mem, 0x10000) && (memslot_map_find(&mem, 0x10000)->flags & 2),
	   "apply: the protected page is in a read-only slot");
	ok(guest_memory_apply_tracking(&mem, &pt, &rm, &ad) == 0 && rm == 0 && ad == 0,
	   "apply: unchanged rights change no slot");
	pagetrack_update(&pt, e2, 1);
	ok(guest_memory_apply_tracking(&mem, &pt, &rm, &ad) == 0 && rm == 3 && ad == 1 &&
	   mem.nr_slots_used == 1, "apply: forgetting the page merges back to one slot");
	for (unsigned i = 0; i < 100; i++)
		many[i] = (struct pt_entry){ 0x100 + 2 * i, 0 };
	pagetrack_update(&pt, many, 100);
	ok(guest_memory_apply_tracking(&mem, &pt, &rm, &ad) == 0 && mem.nr_slots_used == 101 &&
	   !memslot_map_find(&mem, 0x100000) && memslot_map_find(&mem, 0x101000),
	   "apply: 100 scattered no-access pages -> 101 slots, the pages are holes");
	guest_memory_destroy(&mem);
	pagetrack_destroy(&pt);
}

/* Slot counts follow the number of distinct ranges, not of pages. */
static void test_coalescing(void)
{
	static struct pt_entry e[10000];
	struct guest_memory mem;
	struct pagetrack pt;
	unsigned rm, ad;

	pagetrack_init(&pt);
	ok(guest_memory_init(&mem, -1, 256 << 20, 32764) == 0, "coalescing: 256 MiB");
	for (unsigned i = 0; i < 511; i++)
		e[i] = (struct pt_entry){ 0x1000 + i, PT_R | PT_X };
	pagetrack_update(&pt, e, 511);
	ok(guest_memory_apply_tracking(&mem, &pt, &rm, &ad) == 0 && mem.nr_slots_used == 3,
	   "511 adjacent write-protected pages: 3 slots (got %u)", mem.nr_slots_used);
	for (unsigned i = 0; i < 10000; i++)
		e[i] = (struct pt_entry){ 0x2000 + i, PT_R | PT_X };
	pagetrack_update(&pt, e, 10000);
	ok(guest_memory_apply_tracking(&mem, &pt, &rm, &ad) == 0 && mem.nr_slots_used == 5,
	   "plus 10,000 adjacent ones elsewhere: 5 slots (got %u)", mem.nr_slots_used);
	pagetrack_clear(&pt);
	for (unsigned i = 0; i < 10000; i++)
		e[i] = (struct pt_entry){ 0x8000 + 2 * i, PT_R | PT_X };
	pagetrack_update(&pt, e, 10000);
	ok(guest_memory_apply_tracking(&mem, &pt, &rm, &ad) == 0 && mem.nr_slots_used == 20001,
	   "10,000 scattered pages: one slot per range, 20,001 (got %u)", mem.nr_slots_used);
	pagetrack_clear(&pt);
	ok(guest_memory_apply_tracking(&mem, &pt, &rm, &ad) == 0 && mem.nr_slots_used == 1,
	   "all forgotten: back to 1 slot");
	guest_memory_destroy(&mem);
	pagetrack_destroy(&pt);
}

/* A re-created region gets its restrictions back before anything runs. */
static void test_recreate(void)
{
	struct pt_entry e = { 0x300, PT_R | PT_X };
	struct guest_memory mem;
	struct pagetrack pt;
	const struct memslot *s;
	unsigned slots = 0;

	pagetrack_init(&pt);
	ok(guest_memory_init(&mem, -1, 64 << 20, 64) == 0, "recreate: 64 MiB");
	pagetrack_update(&pt, &e, 1);
	guest_memory_apply_tracking(&mem, &pt, NULL, NULL);
	ok(guest_memory_recreate_region(&mem, 0, &pt, &slots) == 0 && slots == 3 && mem.nr_slots_used == 3,
	   "re-created with the tracker: 3 slots (got %u)", slots);
	s = memslot_map_find(&mem, 0x300000);
	ok(s && (s->flags & KVM_MEM_READONLY) && s->size == 0x1000, "the write-protected page is a read-only slot again");
	ok(guest_memory_recreate_region(&mem, 0, NULL, &slots) == 0 && slots == 1 && mem.nr_slots_used == 1,
	   "re-created without restrictions: 1 slot");
	ok(guest_memory_recreate_region(&mem, 5, &pt, &slots) == -EINVAL, "an unknown region: -EINVAL");
	guest_memory_destroy(&mem);
	pagetrack_destroy(&pt);
}

int main(void)
{
	test_recreate();
	test_coalescing();
	test_update();
	test_layout();
	test_apply();
	return tap_done();
}
