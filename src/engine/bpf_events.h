/* SPDX-License-Identifier: MIT */
/*
 * CR, XSETBV and HYPERCALL events on stock KVM through BPF programs on
 * KVM's own hooks (docs/limitations.md says what each host offers), and
 * the hook that reports guest page walks through write-protected pages.  The
 * engine asks this module what the host can deliver (commands.c), forwards
 * CONTROL_CR / CONTROL_EVENTS to it and calls bpf_events_prerun() before
 * every entry (raise.c).
 *
 * A NULL struct bpf_events means "nothing available": every function then
 * refuses or does nothing, and the engine behaves as without this module.
 */
#ifndef KVMI_ENGINE_BPF_EVENTS_H
#define KVMI_ENGINE_BPF_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "pagetrack.h"

struct bpf_events;
struct kvmi_engine;
struct kvmi_engine_vcpu;

/*
 * Start-up detection: loads the BPF object, attaches each hook and runs a
 * tiny scratch VM that writes CR0, CR4, CR3, XCR0 and makes the agent
 * hypercall; a hook counts as available only if it fired there.  Logs one
 * line with the result.  Returns NULL when nothing is available (no
 * privilege, no BPF support, no hook fired).  The hooks stay detached until
 * a tool enables one of the events.
 */
struct bpf_events *bpf_events_create(struct kvmi_engine *e);
void bpf_events_destroy(struct bpf_events *be);

/* [intro] 0 or -KVM_EOPNOTSUPP, for CHECK_EVENT of CR, XSETBV, HYPERCALL. */
int bpf_events_check_event(struct bpf_events *be, unsigned id);
/* [intro] 0 or -KVM_EOPNOTSUPP, for CHECK_COMMAND of CONTROL_CR. */
int bpf_events_check_control_cr(struct bpf_events *be);

/* [vcpu] CONTROL_CR; -KVM_EOPNOTSUPP for a CR this host cannot report. */
int bpf_events_control_cr(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu, unsigned cr, bool enable);
/* [vcpu] CONTROL_EVENTS for CR, XSETBV and HYPERCALL (others: 0). */
int bpf_events_control_event(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu, unsigned id, bool enable);

/* [vcpu] Once, on the thread that runs the vCPU: it takes the hooks' signal. */
void bpf_thread_init(void);
/* [vcpu] Before each KVM_RUN: raises the events whose hooks fired. */
void bpf_events_prerun(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu);

/* [intro] The tool left: nothing stays enabled, the hooks are detached. */
void bpf_events_session_end(struct bpf_events *be);

/*
 * Guest page walks through write-protected pages (ptwalk.c).  The hook on
 * kvm_mmu_page_fault stops a vCPU whose walk faults at a gfn of the map;
 * the map follows the page tracker, and the hook is attached while the
 * map is not empty.
 */
/* [any] The start-up self-test saw the hook fire. */
bool bpf_events_ptwalk_available(struct bpf_events *be);
/* [vcpu] Its first pre_run: the hooks know its thread from now on. */
void bpf_events_vcpu_start(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu);
/* [pt_lock held for writing, vCPUs held] The tracker (pt) changed the
 * gfns of pe: those without W are in the map, the others not.  0, or
 * -errno when the map cannot take them (it then holds part of them). */
int bpf_events_wp_update(struct bpf_events *be, const struct pagetrack *pt, const struct pt_entry *pe, size_t n);
/* [pt_lock held for writing] The tracker was cleared. */
void bpf_events_wp_clear(struct bpf_events *be);
/* [vcpu] The hook stopped this vCPU and the walk is not handled yet. */
bool bpf_events_walk_pending(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu);

#endif
