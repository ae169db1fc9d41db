/* SPDX-License-Identifier: MIT */
/*
 * Address-keyed I/O bus.  Devices register a range and two callbacks; the
 * exit router looks the address up and never touches a device's state.
 * One bus for port I/O and one for MMIO per VM.
 */
#ifndef KVMI_VM_BUS_H
#define KVMI_VM_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct vcpu;

struct bus_dev_ops {
	/* offset is relative to the registered base; len is 1, 2, 4 or 8. */
	void (*read)(void *opaque, struct vcpu *vcpu, uint64_t offset, void *data, unsigned len);
	void (*write)(void *opaque, struct vcpu *vcpu, uint64_t offset, const void *data, unsigned len);
};

struct bus_range {
	uint64_t base, len;
	const struct bus_dev_ops *ops;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name;
	struct bus_range *ranges; /* sorted by base, never overlapping */
	unsigned nr, cap;
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);
/* 0, -EEXIST on overlap, -ENOMEM. Registration happens before vCPUs start. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_dev_ops *ops,
		 void *opaque, const char *name);
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

/* Dispatch one access.  Unclaimed reads return all-ones, unclaimed writes are
 * dropped (like an open bus); returns false when nothing claimed it. */
bool bus_read(const struct bus *bus, struct vcpu *vcpu, uint64_t addr, void *data, unsigned len);
bool bus_write(const struct bus *bus, struct vcpu *vcpu, uint64_t addr, const void *data, unsigned len);

#endif
