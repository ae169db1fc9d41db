/* SPDX-License-Identifier: MIT */
/* Start-up probes of what this host's KVM delivers to userspace, and how
 * it maps guest memory (nested paging or not). */
#ifndef KVMI_VM_INTROSPECT_PROBE_H
#define KVMI_VM_INTROSPECT_PROBE_H

#include <stdint.h>

struct kvm_segment;

enum kvmi_int3_path {
	KVMI_INT3_NONE,         /* int3 never exits: BREAKPOINT unavailable */
	KVMI_INT3_DEBUG_EXIT,   /* KVM_EXIT_DEBUG, exception 3 (hardware KVM) */
	KVMI_INT3_EMULATION,    /* an emulation failure at the int3 (ring 0) */
};

/* Runs one int3 in a throw-away VM on kvm_fd (/dev/kvm). */
enum kvmi_int3_path kvmi_probe_int3(int kvm_fd);
const char *kvmi_int3_path_name(enum kvmi_int3_path path);

/* Does the guest's page walker go through nested page tables?  Read from
 * kvm_amd's npt / kvm_intel's ept parameter; other KVMs (kvm_pvm) are
 * taken as UNKNOWN, which the engine treats like ON. */
enum kvmi_nested_paging { KVMI_NPT_OFF, KVMI_NPT_ON, KVMI_NPT_UNKNOWN };
enum kvmi_nested_paging kvmi_probe_nested_paging(void);
const char *kvmi_nested_paging_name(enum kvmi_nested_paging np);

/* A flat 4 GiB segment of the probe VMs: present, S, G; a 64-bit code
 * segment when code is set (L), else D/B (32-bit code or data). */
void kvmi_probe_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, int code);

#endif
