/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the engine's memory: the page-access tracker, and the
 * memslot layout it drives through a frontend's slot ops (a fake host that
 * records slots instead of calling KVM; the engine runs without KVM).
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
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
	static struct fake_host h;
	struct pt_entry e1[] = { { 0x10, PT_R | PT_X } };
	struct pt_entry e2[] = { { 0x10, PT_RWX } };
	struct pt_entry many[100];
	struct kvmi_engine *e;
	unsigned sets;
	void *mem;

	e = new_engine(&h, 16 << 20, &mem);
	ok(e && kvm_slots(&h) == 1, "apply: memory starts as one slot");
	if (!e)
		return;
	ok(eng_set_page_access(e, e1, 1) == 0 && kvm_slots(&h) == 3,
	   "apply: one write-protected page splits 1 slot into 3 (got %u)", kvm_slots(&h));
	ok(slot_at(&h, 0x10000) >= 0 && (h.slot[slot_at(&h, 0x10000)].flags & KVM_MEM_READONLY) &&
	   h.slot[slot_at(&h, 0x10000)].size == 0x1000, "apply: the protected page is a read-only slot");
	ok(slot_at(&h, 0) == REGION_SLOT, "apply: the region's own id serves its first slot");
	sets = h.sets;
	ok(eng_set_page_access(e, e1, 1) == 0 && h.sets == sets, "apply: unchanged rights change no slot");
	ok(eng_set_page_access(e, e2, 1) == 0 && kvm_slots(&h) == 1 && h.allocs == h.frees,
	   "apply: forgetting the page merges back to one slot, every extra id given back");
	for (unsigned i = 0; i < 100; i++)
		many[i] = (struct pt_entry){ 0x100 + 2 * i, 0 };
	ok(eng_set_page_access(e, many, 100) == 0 && kvm_slots(&h) == 101 && slot_at(&h, 0x100000) < 0 &&
	   slot_at(&h, 0x101000) >= 0, "apply: 100 scattered no-access pages -> 101 slots, the pages are holes");
	h.fail_set_after = 3;
	ok(eng_set_page_access(e, e1, 1) != 0, "apply: a failing slot change is reported");
	h.fail_set_after = 0;
	free_engine(e, mem);
}

/* Slot counts follow the number of distinct ranges, not of pages. */
static void test_coalescing(void)
{
	static struct pt_entry pe[10000];
	static struct fake_host h;
	struct kvmi_engine *e;
	void *mem;

	e = new_engine(&h, 256 << 20, &mem);
	ok(e != NULL, "coalescing: 256 MiB");
	if (!e)
		return;
	for (unsigned i = 0; i < 511; i++)
		pe[i] = (struct pt_entry){ 0x1000 + i, PT_R | PT_X };
	ok(eng_set_page_access(e, pe, 511) == 0 && kvm_slots(&h) == 3,
	   "511 adjacent write-protected pages: 3 slots (got %u)", kvm_slots(&h));
	for (unsigned i = 0; i < 10000; i++)
		pe[i] = (struct pt_entry){ 0x2000 + i, PT_R | PT_X };
	ok(eng_set_page_access(e, pe, 10000) == 0 && kvm_slots(&h) == 5,
	   "plus 10,000 adjacent ones elsewhere: 5 slots (got %u)", kvm_slots(&h));
	for (unsigned i = 0; i < 10000; i++)
		pe[i] = (struct pt_entry){ 0x2000 + i, PT_RWX };
	eng_set_page_access(e, pe, 10000);
	for (unsigned i = 0; i < 511; i++)
		pe[i] = (struct pt_entry){ 0x1000 + i, PT_RWX };
	eng_set_page_access(e, pe, 511);
	for (unsigned i = 0; i < 10000; i++)
		pe[i] = (struct pt_entry){ 0x8000 + 2 * i, PT_R | PT_X };
	ok(eng_set_page_access(e, pe, 10000) == 0 && kvm_slots(&h) == 20001,
	   "10,000 scattered pages: one slot per range, 20,001 (got %u)", kvm_slots(&h));
	eng_memory_session_end(e);
	ok(kvm_slots(&h) == 1 && h.allocs == h.frees, "the tool gone: back to 1 slot (got %u)", kvm_slots(&h));
	free_engine(e, mem);
}

/* A re-created region gets its restrictions back before anything runs. */
static void test_recreate(void)
{
	static struct fake_host h;
	struct pt_entry pe = { 0x300, PT_R | PT_X };
	struct kvmi_ram_region r;
	struct kvmi_engine *e;
	void *mem;
	int s;

	e = new_engine(&h, 64 << 20, &mem);
	ok(e != NULL, "recreate: 64 MiB");
	if (!e)
		return;
	eng_set_page_access(e, &pe, 1);
	r = (struct kvmi_ram_region){ .gpa = 0, .size = 64 << 20, .hva = mem, .fd = -1, .slot_id = REGION_SLOT };
	ok(kvmi_engine_region_remove(e, 0) == 0 && kvm_slots(&h) == 0 && h.allocs == h.frees,
	   "removed: no slot left, extra ids given back");
	ok(kvmi_engine_region_add(e, &r) == 0 && kvm_slots(&h) == 3, "re-created: 3 slots (got %u)", kvm_slots(&h));
	s = slot_at(&h, 0x300000);
	ok(s >= 0 && (h.slot[s].flags & KVM_MEM_READONLY) && h.slot[s].size == 0x1000,
	   "the write-protected page is a read-only slot again");
	pe.access = PT_RWX;
	eng_set_page_access(e, &pe, 1);
	ok(kvmi_engine_region_remove(e, 0) == 0 && kvmi_engine_region_add(e, &r) == 0 && kvm_slots(&h) == 1,
	   "re-created without restrictions: 1 slot");
	ok(kvmi_engine_region_remove(e, 0x40000000) == -ENOENT, "an unknown region: -ENOENT");
	r.size = 0x1001;
	ok(kvmi_engine_region_add(e, &r) == -EINVAL, "an unaligned region: -EINVAL");
	free_engine(e, mem);
}

/* What a frontend that owns dirty logging and ROM needs: the slots of a
 * region, dirty logging on every piece, ROM writes handed back. */
static void test_frontend_api(void)
{
	static struct fake_host h;
	struct pt_entry pe[] = { { 0x10, PT_R | PT_X }, { 0x20, PT_R | PT_X } };
	struct kvmi_slot_piece pieces[8];
	struct kvmi_ram_region rom;
	struct kvmi_engine *e;
	struct kvm_run *run;
	uint64_t covered = 0;
	bool all_dirty = true;
	void *mem;
	int n;

	e = new_engine(&h, 16 << 20, &mem);
	if (!e)
		return;
	eng_set_page_access(e, pe, 1);
	n = kvmi_engine_region_slots(e, 0, pieces, 8);
	for (int i = 0; i < n && i < 8; i++)
		covered += pieces[i].size;
	ok(n == 3 && covered == 16 << 20 && pieces[0].id == REGION_SLOT,
	   "slots: one protected page -> 3 pieces covering the region, the first under the region's id");
	ok(kvmi_engine_region_slots(e, 0, pieces, 1) == 3, "slots: too little room -> the count");
	ok(kvmi_engine_region_slots(e, 0x1000, pieces, 8) == -ENOENT, "slots: no region there -> -ENOENT");
	ok(kvmi_engine_region_set_dirty_log(e, 0, true) == 0, "dirty log on");
	eng_set_page_access(e, pe + 1, 1);
	n = kvmi_engine_region_slots(e, 0, pieces, 8);
	for (int i = 0; i < n && i < 8; i++)
		all_dirty &= (h.slot[pieces[i].id].flags & KVM_MEM_LOG_DIRTY_PAGES) != 0;
	ok(n == 5 && all_dirty && (h.slot[slot_at(&h, 0x10000)].flags & KVM_MEM_READONLY),
	   "dirty log on every piece, also one split later; the protected page stays read-only");
	ok(kvmi_engine_region_set_dirty_log(e, 0, false) == 0 &&
	   !(h.slot[slot_at(&h, 0x20000)].flags & KVM_MEM_LOG_DIRTY_PAGES), "dirty log off again");

	rom = (struct kvmi_ram_region){ .gpa = 0xfff00000, .size = 0x10000, .hva = mem, .fd = -1,
					.slot_id = 9, .flags = KVM_MEM_READONLY };
	ok(kvmi_engine_region_add(e, &rom) == 0 && (h.slot[9].flags & KVM_MEM_READONLY),
	   "a ROM region: its slot is read-only");
	run = e->vcpus[0]->run;
	memset(run, 0, sizeof(*run));
	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = 0xfff00010;
	run->mmio.len = 4;
	run->mmio.is_write = 1;
	ok(kvmi_engine_post_run(e->vcpus[0], 0, 0) == KVMI_EXIT_FRONTEND, "a guest write to ROM goes to the frontend");
	run->mmio.phys_addr = 0x10010;
	ok(kvmi_engine_post_run(e->vcpus[0], 0, 0) == KVMI_EXIT_ENGINE && memcmp((uint8_t *)mem + 0x10010,
	   run->mmio.data, 4) == 0, "a write to write-protected RAM with no tool completes in the engine");
	free_engine(e, mem);
}

int main(void)
{
	test_recreate();
	test_coalescing();
	test_update();
	test_layout();
	test_apply();
	test_frontend_api();
	return tap_done();
}
