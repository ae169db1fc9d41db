/* SPDX-License-Identifier: MIT */
/*
 * ptwalk.c - guest page walks through write-protected pages (issue #14).
 *
 * Under nested paging (AMD NPT, Intel EPT) every access of the guest's own
 * page walker to a guest page table is a write for the nested tables, so a
 * page table in a read-only memslot cannot be walked: KVM handles the fault
 * itself (it emulates the instruction at RIP, installs no mapping) and
 * nothing reaches userspace.  Two answers, decided at start-up:
 *
 *   - the page-walk hook (bpf_events.c, kvm_mmu_page_fault) stops the vCPU
 *     at such a fault; eng_ptwalk_event() raises a pre-write PF event with
 *     KVMI_EVENT_PF_FLAG_PAGE_WALK.  RETRY enters the guest again as it
 *     is; CONTINUE (or nobody listening) grants W on the page: a page that
 *     is walked cannot stay write-protected there;
 *   - where the hook is missing (no BPF privilege, kvm_pvm, a kernel without
 *     the function), eng_ptwalk_guard() refuses SET_PAGE_ACCESS that takes
 *     W from a page table of a vCPU's current address space: the tool gets
 *     -KVM_EOPNOTSUPP instead of a guest that stalls without an event.
 *
 * Without nested paging (kvm_amd npt=0, kvm_intel ept=0) KVM walks guest
 * page tables in software and neither is needed.
 */
#include "kvm_ioctl.h"
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bpf_events.h"
#include "util.h"

#define CR0_PG   (1ull << 31)
#define CR4_PSE  (1ull << 4)
#define CR4_PAE  (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define PTE_P    0x1ull
#define PTE_PS   0x80ull
#define ADDR_MASK 0x000ffffffffff000ull
/* Table pages a guard check reads at most per vCPU (each 512 entries):
 * every table down to the page directories of a few GiB of 4 KiB pages. */
#define GUARD_BUDGET 4096

void eng_ptwalk_init(struct kvmi_engine *e)
{
	e->ptwalk_ok = e->npt == KVMI_NPT_OFF || bpf_events_ptwalk_available(e->bpf);
	e->ptwalk_guard = !e->ptwalk_ok && e->cfg.ptwalk != KVMI_PTWALK_UNGUARDED;
	if (e->ptwalk_guard)
		pr_info("introspection: nested paging %s and no page-walk hook: SET_PAGE_ACCESS refuses to "
			"write-protect page tables in use (docs/limitations.md)", kvmi_nested_paging_name(e->npt));
	else if (!e->ptwalk_ok)
		pr_warn("introspection: nested paging %s, no page-walk hook and no refusal: write-protected page "
			"tables stall the guest", kvmi_nested_paging_name(e->npt));
}

/* ---- the event ------------------------------------------------------- */

void eng_ptwalk_event(struct kvmi_engine_vcpu *v, uint64_t gpa, uint64_t error_code)
{
	struct kvmi_event_pf ev = {
		.gva = KVMI_UNMAPPED_GVA, .gpa = gpa, .access = KVMI_PAGE_ACCESS_W,
		.flags = KVMI_EVENT_PF_FLAG_PAGE_WALK,
	};
	struct kvmi_event_pf_reply rpl;
	enum kvmi_outcome out = KVMI_NO_TOOL;

	/* Lifted meanwhile (by the tool, or another vCPU's walk event). */
	if (eng_rights(v->e, gpa >> 12, v->idx) & PT_W)
		return;
	pr_debug("vcpu %u: guest page walk at gpa 0x%llx (error code 0x%llx) through a write-protected page", v->idx,
		 (unsigned long long)gpa, (unsigned long long)error_code);
	if (eng_event_wanted(v, KVMI_EVENT_PF))
		out = eng_raise(v, KVMI_EVENT_PF, NULL, &ev, sizeof(ev), &rpl, sizeof(rpl)).outcome;
	if (out == KVMI_RETRY || out == KVMI_CRASH)
		return;
	if (eng_grant_w(v->e, gpa >> 12))
		pr_err("vcpu %u: cannot make page 0x%llx writable for the guest's page walk", v->idx,
		       (unsigned long long)gpa & ~0xfffull);
}

/* ---- the guard --------------------------------------------------------- */

struct guard {
	struct kvmi_engine *e;
	const uint64_t *gfns;           /* sorted: the pages losing W */
	size_t n;
	unsigned budget;
	uint64_t hit;                   /* a gfn of gfns that is a page table, or ~0 */
};

/* How a paging mode lays out its tables. */
struct pgmode {
	unsigned levels, entry_size, entries;
	bool large_ok[6];               /* PS makes an entry of this level a leaf */
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool in_set(const struct guard *g, uint64_t gfn)
{
	return bsearch(&gfn, g->gfns, g->n, sizeof(*g->gfns), cmp_u64) != NULL;
}

/* The table at gpa (entries [first, first + count)) at level: itself and
 * the tables it points to, down to the last level's tables (not read). */
static void visit(struct guard *g, const struct pgmode *m, uint64_t gpa, unsigned level, unsigned first,
		  unsigned count)
{
	const uint8_t *t;

	if (g->hit != ~0ull)
		return;
	if (in_set(g, gpa >> 12)) {
		g->hit = gpa >> 12;
		return;
	}
	if (level == 1 || !g->budget)
		return;
	g->budget--;
	t = eng_gpa_to_hva_locked(g->e, gpa & ~0xfffull, 4096);
	if (!t)
		return;
	for (unsigned i = first; i < first + count && g->hit == ~0ull; i++) {
		uint64_t pte = 0;

		memcpy(&pte, t + (size_t)i * m->entry_size, m->entry_size);
		if (!(pte & PTE_P) || (m->large_ok[level] && (pte & PTE_PS)))
			continue;
		visit(g, m, pte & (m->entry_size == 4 ? 0xfffff000ull : ADDR_MASK), level - 1, 0, m->entries);
	}
}

/* One vCPU's address space, from its control registers. */
static void guard_vcpu(struct guard *g, const struct kvm_sregs *s)
{
	struct pgmode m = { .levels = 2, .entry_size = 4, .entries = 1024 };

	if (!(s->cr0 & CR0_PG))
		return;
	g->budget = GUARD_BUDGET;
	if (s->efer & EFER_LMA) {
		m = (struct pgmode){ (s->cr4 & CR4_LA57) ? 5 : 4, 8, 512, { false, false, true, true } };
		visit(g, &m, s->cr3 & ADDR_MASK, m.levels, 0, m.entries);
	} else if (s->cr4 & CR4_PAE) {
		/* the 4 PDPTEs at CR3 (32-byte aligned) */
		m = (struct pgmode){ 3, 8, 512, { false, false, true, false } };
		visit(g, &m, s->cr3 & 0xfffff000ull, 3, (unsigned)((s->cr3 & 0xfe0) / 8), 4);
	} else {
		m.large_ok[2] = s->cr4 & CR4_PSE;
		visit(g, &m, s->cr3 & 0xfffff000ull, 2, 0, m.entries);
	}
}

/* The gfns pe takes W from, sorted; NULL if none (or no memory: *n = 0). */
static uint64_t *losing_w(const struct pt_entry *pe, size_t n, size_t *out)
{
	uint64_t *gfns = malloc((n ? n : 1) * sizeof(*gfns));
	size_t k = 0;

	for (size_t i = 0; gfns && i < n; i++)
		if (!(pe[i].access & PT_W))
			gfns[k++] = pe[i].gfn;
	*out = gfns ? k : 0;
	if (gfns && k)
		qsort(gfns, k, sizeof(*gfns), cmp_u64);
	return gfns;
}

/*
 * The vCPUs are held out of guest mode, so their control registers stand
 * still; they are read with KVM_GET_SREGS from this thread (KVM serialises
 * it with the vCPU's own ioctls; nothing is written).
 */
int eng_ptwalk_guard(struct kvmi_engine *e, const struct pt_entry *pe, size_t n)
{
	struct guard g = { .e = e, .hit = ~0ull };
	unsigned who = 0;

	if (!e->ptwalk_guard)
		return 0;
	g.gfns = losing_w(pe, n, &g.n);
	for (unsigned i = 0; g.n && g.hit == ~0ull && i < atomic_load(&e->nr_vcpus); i++) {
		struct kvm_sregs s;

		if (!e->vcpus[i] || kvm_ioctl(e->vcpus[i]->fd, KVM_GET_SREGS, &s) < 0)
			continue;
		guard_vcpu(&g, &s);
		who = i;
	}
	free((void *)g.gfns);
	if (g.hit == ~0ull)
		return 0;
	pr_warn("introspection: SET_PAGE_ACCESS refused: page 0x%llx is a page table of vCPU %u's address space, "
		"and this host cannot report the guest's page walks through it (docs/limitations.md)",
		(unsigned long long)g.hit << 12, who);
	return -EOPNOTSUPP;
}
