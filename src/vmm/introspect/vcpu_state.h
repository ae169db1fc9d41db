/* SPDX-License-Identifier: MIT */
/*
 * vCPU state in KVMI wire form, read and written through KVM ioctls.
 * Every function here runs on the vCPU's own thread (the architecture rule:
 * a vCPU's registers are touched only by its thread) and returns 0 or a
 * negative KVM_E* code ready for a command reply.
 */
#ifndef KVMI_VM_INTROSPECT_VCPU_STATE_H
#define KVMI_VM_INTROSPECT_VCPU_STATE_H

#include <kvmi/kvmi-wire.h>

#include <stdbool.h>

struct vcpu;
struct vm;

/* 2, 4 or 8 from CR0.PE, EFER.LMA, CS.L and CS.DB. */
unsigned kvmi_cpu_mode(const struct kvmi_x86_sregs *sregs);

/* The common part of every event: regs, sregs, the nine MSRs, mode, view. */
int kvmi_vcpu_fill_event_arch(struct vcpu *vcpu, struct kvmi_event_arch *arch);
/* The value of MSR @index, when the event header carries it. */
bool kvmi_event_arch_msr(const struct kvmi_event_arch *a, uint32_t index, uint64_t *value);

/* GET_REGISTERS: msrs[i].data is read for every msrs[i].index. */
int kvmi_vcpu_get_registers(struct vcpu *vcpu, uint32_t *mode, struct kvmi_x86_regs *regs,
			    struct kvmi_x86_sregs *sregs, struct kvmi_x86_msr_entry *msrs, unsigned nmsrs);
int kvmi_vcpu_get_msr(struct vcpu *vcpu, uint32_t index, uint64_t *value);
int kvmi_vcpu_set_msr(struct vcpu *vcpu, uint32_t index, uint64_t value);
int kvmi_vcpu_set_regs(struct vcpu *vcpu, const struct kvmi_x86_regs *regs);
int kvmi_vcpu_get_cpuid(struct vcpu *vcpu, uint32_t function, uint32_t index,
			struct kvmi_get_cpuid_reply *reply);
int kvmi_vcpu_get_xsave(struct vcpu *vcpu, void *region /* KVMI_XSAVE_SIZE */);
int kvmi_vcpu_set_xsave(struct vcpu *vcpu, const void *region, size_t size);
int kvmi_vcpu_get_xcr(struct vcpu *vcpu, uint8_t xcr, uint64_t *value);
int kvmi_vcpu_get_tsc_speed(struct vcpu *vcpu, uint64_t *hz);
int kvmi_vcpu_drop_exception(struct vcpu *vcpu, uint8_t vector);
int kvmi_vcpu_drop_step_trap(struct vcpu *vcpu, bool guest_tf);
int kvmi_vcpu_reinject_bp(struct vcpu *vcpu, bool skip_first);
int kvmi_vcpu_translate_gva(struct vcpu *vcpu, uint64_t gva, uint64_t *gpa);
int kvmi_vcpu_get_mtrr_type(struct vcpu *vcpu, uint64_t gpa, uint8_t *type);
/* Queues an exception for the next entry; -KVM_EBUSY if one is pending. */
int kvmi_vcpu_inject_exception(struct vcpu *vcpu, uint8_t vector, uint32_t error_code,
			       uint64_t address);

/* Highest guest-physical frame that is RAM, + 1. */
uint64_t kvmi_vm_max_gfn(const struct vm *vm);

#endif
