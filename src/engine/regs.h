/* SPDX-License-Identifier: MIT */
/*
 * regs.h - vCPU state through KVM ioctls, in KVMI wire form where it goes
 * to the tool.  Every function runs on the vCPU's own thread (a vCPU's
 * registers are touched only by its thread); the kvmi_vcpu_* ones return 0
 * or a negative KVM_E* code ready for a command reply.
 *
 * The eng_get_* accessors use the copy KVM left in kvm_run at the last exit
 * (KVM_CAP_SYNC_REGS, asked for while a tool is connected) when nothing
 * changed the registers since; every setter keeps that rule true.
 */
#ifndef KVMI_ENGINE_REGS_H
#define KVMI_ENGINE_REGS_H

#include <kvmi/kvmi-wire.h>

#include <stdbool.h>
#include <stddef.h>

struct kvmi_engine_vcpu;
struct kvm_regs;
struct kvm_sregs;

/* 0 or -errno. */
int eng_get_regs(struct kvmi_engine_vcpu *vcpu, struct kvm_regs *r);
int eng_get_sregs(struct kvmi_engine_vcpu *vcpu, struct kvm_sregs *s);
int eng_set_regs(struct kvmi_engine_vcpu *vcpu, const struct kvm_regs *r);
int eng_set_sregs(struct kvmi_engine_vcpu *vcpu, const struct kvm_sregs *s);
/* Ask KVM for the registers with every exit (or stop asking). */
void eng_sync_regs(struct kvmi_engine_vcpu *vcpu, bool on);
/* After every KVM_RUN. */
void eng_regs_ran(struct kvmi_engine_vcpu *vcpu, int ret, int err);

/* 2, 4 or 8 from CR0.PE, EFER.LMA, CS.L and CS.DB. */
unsigned kvmi_cpu_mode(const struct kvmi_x86_sregs *sregs);

/* The common part of every event: regs, sregs, the nine MSRs, mode, view. */
int kvmi_vcpu_fill_event_arch(struct kvmi_engine_vcpu *vcpu, struct kvmi_event_arch *arch);
/* The value of MSR @index, when the event header carries it. */
bool kvmi_event_arch_msr(const struct kvmi_event_arch *a, uint32_t index, uint64_t *value);

/* GET_REGISTERS: msrs[i].data is read for every msrs[i].index. */
int kvmi_vcpu_get_registers(struct kvmi_engine_vcpu *vcpu, uint32_t *mode, struct kvmi_x86_regs *regs,
			    struct kvmi_x86_sregs *sregs, struct kvmi_x86_msr_entry *msrs, unsigned nmsrs);
int kvmi_vcpu_get_msr(struct kvmi_engine_vcpu *vcpu, uint32_t index, uint64_t *value);
int kvmi_vcpu_set_msr(struct kvmi_engine_vcpu *vcpu, uint32_t index, uint64_t value);
int kvmi_vcpu_set_regs(struct kvmi_engine_vcpu *vcpu, const struct kvmi_x86_regs *regs);
int kvmi_vcpu_get_cpuid(struct kvmi_engine_vcpu *vcpu, uint32_t function, uint32_t index,
			struct kvmi_get_cpuid_reply *reply);
int kvmi_vcpu_get_xsave(struct kvmi_engine_vcpu *vcpu, void *region /* KVMI_XSAVE_SIZE */);
int kvmi_vcpu_set_xsave(struct kvmi_engine_vcpu *vcpu, const void *region, size_t size);
int kvmi_vcpu_get_xcr(struct kvmi_engine_vcpu *vcpu, uint8_t xcr, uint64_t *value);
int kvmi_vcpu_get_tsc_speed(struct kvmi_engine_vcpu *vcpu, uint64_t *hz);
int kvmi_vcpu_drop_exception(struct kvmi_engine_vcpu *vcpu, uint8_t vector);
int kvmi_vcpu_drop_step_trap(struct kvmi_engine_vcpu *vcpu, bool guest_tf);
int kvmi_vcpu_reinject_bp(struct kvmi_engine_vcpu *vcpu, bool skip_first);
int kvmi_vcpu_translate_gva(struct kvmi_engine_vcpu *vcpu, uint64_t gva, uint64_t *gpa);
int kvmi_vcpu_get_mtrr_type(struct kvmi_engine_vcpu *vcpu, uint64_t gpa, uint8_t *type);
/* Queues an exception for the next entry; -KVM_EBUSY if one is pending. */
int kvmi_vcpu_inject_exception(struct kvmi_engine_vcpu *vcpu, uint8_t vector, uint32_t error_code,
			       uint64_t address);

#endif
