/* SPDX-License-Identifier: MIT */
/*
 * Introspection in kvmi-vm: kvmi-vm as a frontend of the introspection
 * engine (src/engine/engine.h).  This file implements the engine's host
 * interface on top of struct vm (kicks, stops, memslot ids) and hands the
 * engine the VM's RAM regions and vCPUs; the vCPU loop (vcpu.c) calls the
 * engine before and after every KVM_RUN.
 */
#ifndef KVMI_VM_INTROSPECT_H
#define KVMI_VM_INTROSPECT_H

struct vm;
struct intro_options;

/* Validates the options and attaches an engine to vm.  0 or -errno, with
 * a message logged. */
int introspect_create(struct vm *vm, const struct intro_options *o);
/* Starts the connection thread (the guest runs whether or not a tool is there). */
int introspect_start(struct vm *vm);
/* VM shutdown: UNHOOK if the tool asked for it (bounded wait), disconnect,
 * join the thread. */
void introspect_stop(struct vm *vm);
void introspect_destroy(struct vm *vm);
/* The VM is stopping: vCPUs waiting for the tool go on. */
void introspect_vm_stopping(struct vm *vm);
/* vm_recreate_region() with the engine: the region's slots go and come
 * back with the tool's restrictions in force. */
int introspect_recreate_region(struct vm *vm, unsigned idx);

#endif
