/* SPDX-License-Identifier: MIT */
/*
 * pf.c - guest accesses to RAM that exit because page tracking left the
 * page read-only or out of the slots (KVM_EXIT_MMIO at a RAM address).
 * Allowed accesses complete silently; forbidden ones become a PF event
 * with pre-read / pre-write semantics.
 *
 * A load answered RETRY must run again: KVM has not committed it yet, so
 * the engine lets KVM finish the instruction without the guest running on
 * (KVMI_RUN_FINISH: KVM_RUN with immediate_exit) and then puts the
 * registers back as they were before it (eng_finish_exit).
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

#include "regs.h"
#include "util.h"

#define FINISH_ROUNDS 16

/* Reads may be served from the tool's ctx_data window (a guest-virtual
 * range): true when it covers this access. */
static bool ctx_covers(struct kvmi_engine_vcpu *v, const struct kvmi_event_pf_reply *r, uint64_t gpa,
		       unsigned len, const uint8_t **data)
{
	uint64_t ctx_gpa;

	if (!r->ctx_size || r->ctx_size > KVMI_PF_CTX_DATA_SIZE)
		return false;
	kvmi_vcpu_translate_gva(v, r->ctx_addr, &ctx_gpa);
	if (ctx_gpa == KVMI_UNMAPPED_GVA || (ctx_gpa >> 12) != ((ctx_gpa + r->ctx_size - 1) >> 12))
		return false;
	if (gpa < ctx_gpa || gpa + len > ctx_gpa + r->ctx_size)
		return false;
	*data = r->ctx_data + (gpa - ctx_gpa);
	return true;
}

static void complete_access(struct kvmi_engine_vcpu *v, void *hva, const uint8_t *read_data)
{
	struct kvm_run *run = v->run;

	if (run->mmio.is_write) {
		memcpy(hva, run->mmio.data, run->mmio.len);
		if (v->e->ops->ram_written)
			v->e->ops->ram_written(v->e->host, run->mmio.phys_addr, run->mmio.len);
	} else {
		memcpy(run->mmio.data, read_data ? read_data : hva, run->mmio.len);
	}
}

/* RETRY of a store: KVM emulated the whole store before exiting (RIP is
 * already past it), so it cannot run again: perform it if the tool
 * granted W meanwhile, as a re-execution would, else drop it. */
static bool w_granted(struct kvmi_engine_vcpu *v)
{
	return eng_rights(v->e, v->run->mmio.phys_addr >> 12, UINT32_MAX) & PT_W;
}

static void retry_store(struct kvmi_engine_vcpu *v, void *hva)
{
	if (w_granted(v))
		complete_access(v, hva, NULL);
}

/* RETRY of a load: complete it without running the guest, then restore
 * the registers it started with (or those the tool set meanwhile). */
static void retry_load(struct kvmi_engine_vcpu *v, void *hva, const struct kvm_regs *before, bool regs_applied)
{
	v->finish.regs = *before;
	if (regs_applied && eng_get_regs(v, &v->finish.regs) < 0) {
		complete_access(v, hva, NULL);
		return;
	}
	memcpy(v->run->mmio.data, hva, v->run->mmio.len);
	v->finish.active = true;
	v->finish.rounds = 0;
}

static void raise_pf(struct kvmi_engine_vcpu *v, void *hva, uint8_t need, const struct kvm_regs *regs)
{
	struct kvm_run *run = v->run;
	struct kvmi_event_pf ev = { .gva = KVMI_UNMAPPED_GVA, .gpa = run->mmio.phys_addr, .access = need };
	struct kvmi_event_pf_reply rpl;
	const uint8_t *ctx = NULL;
	struct kvmi_raised r;

	/* gva: KVM's MMIO exit does not tell it. */
	r = eng_raise(v, KVMI_EVENT_PF, NULL, &ev, sizeof(ev), &rpl, sizeof(rpl));
	switch (r.outcome) {
	case KVMI_RETRY:
		if (run->mmio.is_write)
			retry_store(v, hva);
		else
			retry_load(v, hva, regs, r.regs_applied);
		break;
	case KVMI_CRASH:
		break;
	case KVMI_CONTINUE:
		if (rpl.rep_complete) {
			v->rep_complete = true;
			v->rep_rip = regs->rip;
		}
		if (!run->mmio.is_write && ctx_covers(v, &rpl, run->mmio.phys_addr, run->mmio.len, &ctx))
			complete_access(v, hva, ctx);
		else
			complete_access(v, hva, NULL);
		break;
	case KVMI_NO_TOOL:
	case KVMI_SUSPENDED:    /* not on exits: a PF reply has a part */
		complete_access(v, hva, NULL);
		break;
	}
}

/*
 * A guest write to the frontend's ROM (a read-only region, e.g. flash):
 * the frontend emulates it.  If the tool write-protected the page, the PF
 * event comes first; RETRY with the page still protected drops the write,
 * as for RAM.
 */
static enum kvmi_exit_owner rom_write(struct kvmi_engine_vcpu *v)
{
	uint64_t gfn = v->run->mmio.phys_addr >> 12;
	struct kvmi_event_pf ev = { .gva = KVMI_UNMAPPED_GVA, .gpa = v->run->mmio.phys_addr, .access = PT_W };
	struct kvmi_event_pf_reply rpl;
	enum kvmi_outcome out;

	if ((eng_rights(v->e, gfn, v->idx) & PT_W) || !eng_event_wanted(v, KVMI_EVENT_PF))
		return KVMI_EXIT_FRONTEND;
	out = eng_raise(v, KVMI_EVENT_PF, NULL, &ev, sizeof(ev), &rpl, sizeof(rpl)).outcome;
	if (out == KVMI_CRASH || (out == KVMI_RETRY && !w_granted(v)))
		return KVMI_EXIT_ENGINE;
	return KVMI_EXIT_FRONTEND;
}

enum kvmi_exit_owner eng_pf_exit(struct kvmi_engine_vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t gpa = run->mmio.phys_addr;
	uint8_t need = run->mmio.is_write ? PT_W : PT_R;
	struct kvm_regs regs;
	uint32_t flags = 0;
	void *hva;

	if (run->mmio.len > sizeof(run->mmio.data))
		return KVMI_EXIT_FRONTEND;
	hva = eng_gpa_to_hva(v->e, gpa, run->mmio.len, &flags);
	if (!hva)
		return KVMI_EXIT_FRONTEND;       /* not RAM: a device */
	if (run->mmio.is_write && (flags & KVM_MEM_READONLY))
		return rom_write(v);
	if ((eng_rights(v->e, gpa >> 12, v->idx) & need) || !eng_event_wanted(v, KVMI_EVENT_PF) ||
	    eng_get_regs(v, &regs) < 0) {
		complete_access(v, hva, NULL);
		return KVMI_EXIT_ENGINE;
	}
	/* rep_complete: the rest of this (string) instruction goes through. */
	if (v->rep_complete && regs.rip == v->rep_rip) {
		complete_access(v, hva, NULL);
		return KVMI_EXIT_ENGINE;
	}
	v->rep_complete = false;
	raise_pf(v, hva, need, &regs);
	return KVMI_EXIT_ENGINE;
}

/*
 * The KVM_RUN of a KVMI_RUN_FINISH returned.  -EINTR: KVM completed the
 * load and stopped before the next instruction; restore the registers.  A
 * read-modify-write instruction exits once more for its store: drop it
 * (the instruction is being undone) and finish again.
 */
enum kvmi_exit_owner eng_finish_exit(struct kvmi_engine_vcpu *v, int ret, int err)
{
	struct kvm_run *run = v->run;

	if (ret < 0 && err == EINTR) {
		v->finish.active = false;
		if (eng_set_regs(v, &v->finish.regs) < 0)
			pr_err("vcpu %u: cannot restore the registers of a retried read", v->idx);
		return KVMI_EXIT_ENGINE;
	}
	if (ret == 0 && run->exit_reason == KVM_EXIT_MMIO && ++v->finish.rounds < FINISH_ROUNDS) {
		if (!run->mmio.is_write) {
			void *hva = eng_gpa_to_hva(v->e, run->mmio.phys_addr, run->mmio.len, NULL);

			if (hva)
				memcpy(run->mmio.data, hva, run->mmio.len);
		}
		return KVMI_EXIT_ENGINE;
	}
	v->finish.active = false;
	pr_err("vcpu %u: cannot retry a read (KVM_RUN %d, errno %d, exit %u); it completes", v->idx, ret,
	       ret < 0 ? err : 0, ret == 0 ? run->exit_reason : 0);
	return KVMI_EXIT_FRONTEND;
}
