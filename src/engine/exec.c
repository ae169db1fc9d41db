/* SPDX-License-Identifier: MIT */
/*
 * exec.c - instruction fetches from pages a tool execute- or
 * read-protected.  Such a page is out of every memslot, so KVM cannot
 * fetch from it and reports an emulation failure.  Without X that is a
 * pre-exec PF event (gva = RIP); CONTINUE then runs the one instruction as
 * a single step with the page mapped back and every other vCPU held out of
 * guest mode, and the debug exit puts the restriction back.  Also here: an
 * int3 that a host's emulator rejects (the BREAKPOINT event), also when it
 * is the instruction of such a step.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

#include "regs.h"
#include "util.h"

static bool step_slot_free(void *ctx)
{
	struct kvmi_engine *e = ctx;

	return atomic_load(&e->stepper) < 0;
}

/* Sets gfn's rights and the slot layout; pt_lock held for writing, every
 * vCPU out of guest mode. */
static int set_rights_locked(struct kvmi_engine *e, uint64_t gfn, uint8_t access)
{
	struct pt_entry pe = { gfn, access };
	int err = pagetrack_update(&e->pt, &pe, 1);

	return err ? err : eng_apply_tracking(e, NULL, NULL);
}

/* Opens gfn for vCPU v's step (its rights plus R and X: a fetch needs a
 * mapping).  *rights gets the real rights.  Under hold. */
static int open_page(struct kvmi_engine_vcpu *v, uint64_t gfn, uint8_t *rights)
{
	struct kvmi_engine *e = v->e;
	int err = 0;

	kvmi_rwlock_wrlock(&e->pt_lock);
	*rights = pagetrack_get(&e->pt, gfn);
	if ((*rights & (PT_R | PT_X)) != (PT_R | PT_X)) {
		err = set_rights_locked(e, gfn, *rights | PT_R | PT_X);
		if (!err) {
			e->step_vcpu = (int)v->idx;
			e->step_gfn = gfn;
			e->step_orig = *rights;
		}
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	return err;
}

static void step_done(struct kvmi_engine *e)
{
	kvmi_engine_release(e);
	atomic_store(&e->stepper, -1);
	eng_wake_all(e);
}

/*
 * Runs the instruction at rip, on execute-protected page gfn, once.  One
 * vCPU steps at a time; the others wait for their turn serving their
 * jobs.  Returns false if the VM is stopping.
 */
static bool exec_step_begin(struct kvmi_engine_vcpu *v, uint64_t gfn, uint64_t rip)
{
	struct kvmi_engine *e = v->e;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint8_t rights;
	int none = -1, err;

	while (!atomic_compare_exchange_strong(&e->stepper, &none, (int)v->idx)) {
		none = -1;
		if (!eng_wait(v, step_slot_free, e))
			return false;
	}
	kvmi_engine_hold(e);
	err = open_page(v, gfn, &rights);
	if ((rights & (PT_R | PT_X)) == (PT_R | PT_X) || err) {
		/* Lifted meanwhile (the instruction just runs), or the slot
		 * could not be mapped (the guest would loop: stop it). */
		if (err) {
			pr_err("vcpu %u: cannot map page %#llx for an execute step: %s", v->idx,
			       (unsigned long long)(gfn << 12), strerror(-err));
			eng_request_stop(e, KVMI_STOP_HOST);
		}
		step_done(e);
		return !err;
	}
	v->exec_tf = eng_get_regs(v, &regs) == 0 && (regs.rflags & RFLAGS_TF);
	memset(&sregs, 0, sizeof(sregs));
	eng_get_sregs(v, &sregs);
	v->exec_cs = sregs.cs;
	v->exec_ss = sregs.ss;
	v->exec_step = true;
	v->exec_rip = rip;
	if (eng_update_guest_debug(v))
		pr_warn("vcpu %u: cannot single-step; the page stays open until the next exit", v->idx);
	atomic_store(&v->hold_exempt, true);
	return true;
}

int eng_read_guest_virt(struct kvmi_engine_vcpu *v, uint64_t gva, void *buf, size_t len)
{
	uint8_t *out = buf;

	while (len) {
		size_t n = 0x1000 - (gva & 0xfff);
		uint64_t gpa;

		if (n > len)
			n = len;
		if (kvmi_vcpu_translate_gva(v, gva, &gpa) || gpa == KVMI_UNMAPPED_GVA ||
		    eng_read_phys(v->e, gpa, out, n))
			return -EFAULT;
		out += n;
		gva += n;
		len -= n;
	}
	return 0;
}

/* The handler address of IDT gate 1 and its IST index. */
static int db_gate(struct kvmi_engine_vcpu *v, const struct kvm_sregs *sregs, uint64_t *handler, unsigned *ist)
{
	uint8_t g[16];

	if (sregs->idt.limit < 2 * 16 - 1 || eng_read_guest_virt(v, sregs->idt.base + 16, g, sizeof(g)))
		return -EFAULT;
	*handler = (uint64_t)(g[0] | g[1] << 8) | (uint64_t)(g[6] | g[7] << 8) << 16 |
		   (uint64_t)(g[8] | g[9] << 8 | g[10] << 16 | (uint32_t)g[11] << 24) << 32;
	*ist = g[4] & 7;
	return 0;
}

/*
 * Some hosts (docs/test-hosts.md: kvm_pvm) do not exit after a single step
 * at CPL 3: the guest takes a #DB through its IDT and the exit comes at the
 * first instruction of its handler.  The guest did not ask for that trap:
 * undo its delivery like an iretq would (RIP, RFLAGS without TF and RSP
 * from the frame, CS/SS as before the step).
 */
static void undo_db_delivery(struct kvmi_engine_vcpu *v)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t frame[5], handler, top;
	unsigned ist;

	if ((v->exec_cs.selector & 3) == 0 || v->exec_tf)
		return;
	if (eng_get_regs(v, &regs) < 0 || eng_get_sregs(v, &sregs) < 0 || (sregs.cs.selector & 3) != 0 ||
	    db_gate(v, &sregs, &handler, &ist))
		return;
	/* The exit may come after the handler's first instruction: find the
	 * frame where the CPU put it, at the top of the ring-0 (or IST) stack
	 * named by the TSS. */
	if (regs.rip - handler >= 16 ||
	    eng_read_guest_virt(v, sregs.tr.base + (ist ? 0x24 + 8 * (ist - 1) : 4), &top, sizeof(top)) ||
	    eng_read_guest_virt(v, (top & ~0xfull) - sizeof(frame), frame, sizeof(frame)) || (frame[1] & 3) != 3)
		return;
	regs.rip = frame[0];
	regs.rflags = frame[2] & ~RFLAGS_TF;
	regs.rsp = frame[3];
	sregs.cs = v->exec_cs;
	sregs.ss = v->exec_ss;
	if (eng_set_sregs(v, &sregs) < 0 || eng_set_regs(v, &regs) < 0)
		pr_err("vcpu %u: cannot undo the #DB of an execute step", v->idx);
	else
		pr_debug("vcpu %u: undid the guest #DB of a CPL 3 step (host quirk)", v->idx);
}

/* The stepped instruction is done (debug exit) or abandoned: restore. */
void eng_exec_step_end(struct kvmi_engine_vcpu *v)
{
	struct kvmi_engine *e = v->e;

	if (v->run->exit_reason == KVM_EXIT_DEBUG)
		undo_db_delivery(v);
	v->exec_step = false;
	eng_update_guest_debug(v);
	if (!v->singlestep)
		kvmi_vcpu_drop_step_trap(v, v->exec_tf);
	/* The restriction goes back unless the tool set the page's rights
	 * meanwhile, or its session ended (eng_step_superseded). */
	kvmi_rwlock_wrlock(&e->pt_lock);
	if (e->step_vcpu == (int)v->idx) {
		e->step_vcpu = -1;
		if (set_rights_locked(e, e->step_gfn, e->step_orig))
			pr_err("vcpu %u: cannot restore the restriction of page %#llx", v->idx,
			       (unsigned long long)(e->step_gfn << 12));
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	atomic_store(&v->hold_exempt, false);
	step_done(e);
}

/*
 * A guest int3 at RIP (debug exit or, on hosts whose emulator rejects it,
 * an emulation failure): the BREAKPOINT event.  CONTINUE (or nobody
 * listening) delivers the #BP to the guest as the CPU would have; RETRY
 * re-enters without it (the tool removed its breakpoint or moved RIP).
 */
void eng_handle_int3(struct kvmi_engine_vcpu *v, uint64_t rip)
{
	struct kvmi_event_breakpoint ev;
	struct kvmi_raised r = { KVMI_NO_TOOL, false };
	uint64_t gpa = KVMI_UNMAPPED_GVA;

	kvmi_vcpu_translate_gva(v, rip, &gpa);
	memset(&ev, 0, sizeof(ev));
	ev.gpa = gpa;
	ev.insn_len = 1;
	if (v->breakpoints)
		r = eng_raise(v, KVMI_EVENT_BREAKPOINT, NULL, &ev, sizeof(ev), NULL, 0);
	if (r.outcome == KVMI_RETRY || r.outcome == KVMI_CRASH)
		return;
	if (r.regs_applied)
		return; /* the tool moved the vCPU: nothing to deliver at RIP */
	if (kvmi_vcpu_reinject_bp(v, v->e->bp_path == KVMI_INT3_EMULATION))
		pr_err("vcpu %u: cannot deliver #BP to the guest", v->idx);
}

/*
 * An emulation failure that tracking did not cause.  KVM's own answer at
 * CPL > 0, which KVM_CAP_EXIT_ON_EMULATION_FAILURE turned into an exit, is
 * a #UD for the guest; at CPL 0 it is the frontend's (kvmi-vm stops).
 */
static enum kvmi_exit_owner not_ours(struct kvmi_engine_vcpu *v, uint64_t rip, const char *why)
{
	struct kvm_sregs sregs;

	pr_debug("vcpu %u: emulation failure at %#llx not caused by tracking (%s)", v->idx,
		 (unsigned long long)rip, why);
	if (!v->e->exit_on_emulation_failure || eng_get_sregs(v, &sregs) < 0 || (sregs.cs.selector & 3) == 0)
		return KVMI_EXIT_FRONTEND;
	return kvmi_vcpu_inject_exception(v, 6, 0, 0) == 0 ? KVMI_EXIT_ENGINE : KVMI_EXIT_FRONTEND;
}

/*
 * The page at RIP is mapped: not a fetch problem.  An int3 the emulator
 * rejected, or a fetch that raced with a layout change?  stepped: the
 * instruction failed in its own execute step (after its pre-exec event),
 * where no layout change could race with it: an int3, or a failure that
 * is not tracking's (an instruction that straddles into another
 * protected page is taken for one: docs/limitations.md).
 */
static enum kvmi_exit_owner mapped_failure(struct kvmi_engine_vcpu *v, uint64_t rip, bool stepped)
{
	uint8_t byte;

	if (v->e->bp_path == KVMI_INT3_EMULATION && eng_read_guest_virt(v, rip, &byte, 1) == 0 && byte == 0xcc) {
		eng_handle_int3(v, rip);
		return KVMI_EXIT_ENGINE;
	}
	/* A fetch can fail while the slot layout changes under it (another
	 * vCPU's step, the tool lifting a restriction): run the instruction
	 * once more before calling it KVM's failure. */
	if (!stepped && v->failed_rip != rip) {
		v->failed_rip = rip;
		return KVMI_EXIT_ENGINE;
	}
	v->failed_rip = 0;
	return not_ours(v, rip, stepped ? "it failed in its execute step" : "its page is mapped");
}

/*
 * An emulation failure while vCPU v steps: ends the step.  True if it was
 * the stepped instruction itself that failed, on its page mapped for the
 * step; false if the fetch failed (the tool took the page away meanwhile)
 * or the failure is elsewhere: then it is a new fetch like any other.
 */
static bool step_failed(struct kvmi_engine_vcpu *v, uint64_t rip, uint64_t gfn)
{
	bool mapped = rip == v->exec_rip && pt_kind_of(eng_rights(v->e, gfn, v->idx)) != PT_HOLE;

	eng_exec_step_end(v);
	return mapped;
}

/* Pre-exec PF event.  True: re-enter as is (RETRY, or the tool moved the
 * vCPU; a CRASH stops the VM); false: step the instruction. */
static bool raise_exec_pf(struct kvmi_engine_vcpu *v, uint64_t rip, uint64_t gpa)
{
	struct kvmi_event_pf ev = { .gva = rip, .gpa = gpa, .access = KVMI_PAGE_ACCESS_X };
	struct kvmi_event_pf_reply rpl;
	struct kvmi_raised r = eng_raise(v, KVMI_EVENT_PF, NULL, &ev, sizeof(ev), &rpl, sizeof(rpl));

	return r.outcome == KVMI_CRASH || r.outcome == KVMI_RETRY || (r.outcome == KVMI_CONTINUE && r.regs_applied);
}

enum kvmi_exit_owner eng_emulation_failure(struct kvmi_engine_vcpu *v)
{
	struct kvm_regs regs;
	uint64_t gpa;
	uint8_t rights;

	if (eng_get_regs(v, &regs) < 0)
		return KVMI_EXIT_FRONTEND;
	kvmi_vcpu_translate_gva(v, regs.rip, &gpa);
	if (gpa == KVMI_UNMAPPED_GVA)
		return not_ours(v, regs.rip, "RIP does not translate");
	if (v->exec_step && step_failed(v, regs.rip, gpa >> 12))
		return mapped_failure(v, regs.rip, true);
	rights = eng_rights(v->e, gpa >> 12, v->idx);
	if ((rights & (PT_R | PT_X)) == (PT_R | PT_X))
		return mapped_failure(v, regs.rip, false);
	v->failed_rip = 0;
	/* KVM may have queued a #UD for the failed fetch: it is ours, drop it. */
	kvmi_vcpu_drop_exception(v, 6);
	if (!(rights & PT_X) && raise_exec_pf(v, regs.rip, gpa))
		return KVMI_EXIT_ENGINE;
	exec_step_begin(v, gpa >> 12, regs.rip);
	return KVMI_EXIT_ENGINE;
}
