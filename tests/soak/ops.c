/* SPDX-License-Identifier: MIT */
/*
 * The random operations of a chaos session (one per chaos_op() call, picked
 * by weight from the round's seeded PRNG): enabling and disabling events,
 * protecting and lifting pages (one at a time and in batches of up to 511),
 * MSR interception, single-step, pauses, pipelined batches, map grants,
 * plain command round trips, and letting the guest run into the
 * restrictions while chaos.c's event thread answers.  Errors are part of
 * the game (a command refused is fine) and go to the trace; a command that
 * times out means the VMM hung and counts as a failure.
 */
#include "soak.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define R KVMI_PAGE_ACCESS_R
#define W KVMI_PAGE_ACCESS_W
#define X KVMI_PAGE_ACCESS_X

void chaos_trace(struct chaos *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->trace)
		return;
	va_start(ap, fmt);
	vfprintf(c->trace, fmt, ap);
	va_end(ap);
	fputc('\n', c->trace);
	fflush(c->trace);
}

static int result(struct chaos *c, int err)
{
	if (err == -ETIMEDOUT)
		c->timeouts++;
	return err;
}

static const char *rights(uint8_t a)
{
	static const char *const s[8] = { "---", "r--", "-w-", "rw-", "--x", "r-x", "-wx", "rwx" };

	return s[a & 7];
}

static uint16_t pick_vcpu(struct chaos *c)
{
	return (uint16_t)rng_below(&c->rng, c->vm->vcpus);
}

/* A page the guest touches: mailbox, data, code, the int3 page, a sweep page. */
static uint64_t pick_page(struct chaos *c)
{
	unsigned p = rng_below(&c->rng, 100);

	if (p < 8)
		return SOAK_MBOX_GPA;
	if (p < 38)
		return SOAK_DATA_GPA + 4096ull * rng_below(&c->rng, SOAK_DATA_PAGES);
	if (p < 58)
		return SOAK_CODE_GPA + 4096ull * rng_below(&c->rng, SOAK_CODE_PAGES);
	if (p < 63)
		return SOAK_INT3_GPA;
	return SOAK_SWEEP_GPA + 4096ull * rng_below(&c->rng, SOAK_SWEEP_PAGES);
}

static uint16_t pick_event(struct chaos *c)
{
	const struct soak_caps *k = &c->vm->caps;

	for (;;) {
		switch (rng_below(&c->rng, 6)) {
		case 0:
		case 1:
			return KVMI_EVENT_PF;
		case 2:
			if (k->msr)
				return KVMI_EVENT_MSR;
			break;
		case 3:
			if (k->singlestep)
				return KVMI_EVENT_SINGLESTEP;
			break;
		case 4:
			if (k->breakpoint)
				return KVMI_EVENT_BREAKPOINT;
			break;
		default:
			return KVMI_EVENT_PAUSE_VCPU;
		}
	}
}

static void op_events(struct chaos *c)
{
	uint16_t v = pick_vcpu(c), ev = pick_event(c);
	bool on = rng_pct(&c->rng, 75);

	chaos_trace(c, "CONTROL_EVENTS vcpu %u %s %s: %d", v, kvmi_event_name(ev), on ? "on" : "off",
		    result(c, kvmi_dom_control_events(c->dom, v, ev, on)));
}

static void op_protect(struct chaos *c)
{
	uint64_t gpa[8];
	uint8_t acc[8];
	unsigned n = 1 + rng_below(&c->rng, 8);

	for (unsigned i = 0; i < n; i++) {
		gpa[i] = pick_page(c);
		acc[i] = (uint8_t)rng_below(&c->rng, 8);
	}
	chaos_trace(c, "SET_PAGE_ACCESS %u pages, first %#llx %s: %d", n, (unsigned long long)gpa[0],
		    rights(acc[0]), result(c, kvmi_dom_set_page_access(c->dom, gpa, acc, n, 0)));
}

/* Up to 511 sweep pages in one command: adjacent, every other, or random. */
static void op_protect_many(struct chaos *c)
{
	static uint64_t gpa[511];
	static uint8_t acc[511];
	unsigned n = 1 + rng_below(&c->rng, 511), mode = rng_below(&c->rng, 3);
	unsigned start = rng_below(&c->rng, SOAK_SWEEP_PAGES - 2 * n + 1);
	uint8_t a = (uint8_t)rng_below(&c->rng, 8);
	bool mixed = rng_pct(&c->rng, 30);

	for (unsigned i = 0; i < n; i++) {
		unsigned p = mode == 0 ? start + i : mode == 1 ? start + 2 * i : rng_below(&c->rng, SOAK_SWEEP_PAGES);

		gpa[i] = SOAK_SWEEP_GPA + 4096ull * p;
		acc[i] = mixed ? (uint8_t)rng_below(&c->rng, 8) : a;
	}
	chaos_trace(c, "SET_PAGE_ACCESS %u sweep pages (%s) %s: %d", n,
		    mode == 0 ? "adjacent" : mode == 1 ? "every other" : "random", mixed ? "mixed" : rights(a),
		    result(c, kvmi_dom_set_page_access(c->dom, gpa, acc, n, 0)));
}

/* Full rights back for every page but the sweep, or for a sweep range. */
static void op_lift(struct chaos *c)
{
	static uint64_t gpa[511];
	static uint8_t acc[511];
	unsigned n = 0;

	if (rng_pct(&c->rng, 50)) {
		gpa[n++] = SOAK_MBOX_GPA;
		gpa[n++] = SOAK_INT3_GPA;
		for (unsigned i = 0; i < SOAK_DATA_PAGES; i++)
			gpa[n++] = SOAK_DATA_GPA + 4096ull * i;
		for (unsigned i = 0; i < SOAK_CODE_PAGES; i++)
			gpa[n++] = SOAK_CODE_GPA + 4096ull * i;
	} else {
		unsigned start = rng_below(&c->rng, SOAK_SWEEP_PAGES - 511);

		for (; n < 511; n++)
			gpa[n] = SOAK_SWEEP_GPA + 4096ull * (start + n);
	}
	memset(acc, R | W | X, n);
	chaos_trace(c, "SET_PAGE_ACCESS lift %u pages from %#llx: %d", n, (unsigned long long)gpa[0],
		    result(c, kvmi_dom_set_page_access(c->dom, gpa, acc, n, 0)));
}

static void op_msr(struct chaos *c)
{
	uint16_t v = pick_vcpu(c);
	uint32_t msr = rng_pct(&c->rng, 50) ? SOAK_MSR_A : SOAK_MSR_B;
	bool on = rng_pct(&c->rng, 75);

	chaos_trace(c, "CONTROL_MSR vcpu %u %#x %s: %d", v, msr, on ? "on" : "off",
		    result(c, kvmi_dom_control_msr(c->dom, v, msr, on)));
}

static void op_singlestep(struct chaos *c)
{
	uint16_t v = pick_vcpu(c);
	bool on = rng_pct(&c->rng, 65);

	chaos_trace(c, "CONTROL_SINGLESTEP vcpu %u %s: %d", v, on ? "on" : "off",
		    result(c, kvmi_dom_control_singlestep(c->dom, v, on)));
}

static void op_pause(struct chaos *c)
{
	if (rng_pct(&c->rng, 30)) {
		unsigned n = 1 + rng_below(&c->rng, c->vm->vcpus);

		chaos_trace(c, "PAUSE_VCPU x%u (batch): %d", n, result(c, kvmi_dom_pause_vcpus(c->dom, n)));
	} else {
		uint16_t v = pick_vcpu(c);
		bool wait = rng_pct(&c->rng, 50);

		chaos_trace(c, "PAUSE_VCPU vcpu %u wait %d: %d", v, wait,
			    result(c, kvmi_dom_pause_vcpu(c->dom, v, wait)));
	}
}

/* Pipelined commands: CONTROL_CMD_RESPONSE off, the lot, on again. */
static void op_batch(struct chaos *c)
{
	struct kvmi_batch *b = NULL;
	unsigned n = 2 + rng_below(&c->rng, 12);
	int err = kvmi_batch_new(c->dom, &b);

	for (unsigned i = 0; !err && i < n; i++) {
		uint64_t gpa = pick_page(c);
		uint8_t acc = (uint8_t)rng_below(&c->rng, 8);

		switch (rng_below(&c->rng, 3)) {
		case 0:
			err = kvmi_batch_control_events(b, pick_vcpu(c), pick_event(c), rng_pct(&c->rng, 75));
			break;
		case 1:
			err = kvmi_batch_set_page_access(b, &gpa, &acc, 1, 0);
			break;
		default:
			err = kvmi_batch_pause_vcpu(b, pick_vcpu(c), rng_pct(&c->rng, 50));
			break;
		}
	}
	if (!err)
		err = result(c, kvmi_batch_submit(b));
	chaos_trace(c, "batch of %u commands: %d", n, err);
	if (b)
		kvmi_batch_destroy(b);
}

/* A map grant: redeemed (and the counters read through it), or left. */
static void op_map(struct chaos *c)
{
	struct kvmi_map_mem_token tok;
	void *p = NULL;
	int err;

	if (rng_pct(&c->rng, 30)) {
		chaos_trace(c, "GET_MAP_TOKEN, not redeemed: %d", result(c, kvmi_dom_get_map_token(c->dom, &tok)));
		return;
	}
	err = result(c, kvmi_dom_map_physical(c->dom, SOAK_MBOX_GPA, 4096, PROT_READ, &p));
	if (!err) {
		const volatile struct soak_mbox *m = p;

		chaos_trace(c, "map the mailbox: vCPU 0 at ring-0 loop %llu",
			    (unsigned long long)m->vcpu[0].r0_loops);
		kvmi_dom_unmap_physical(p, 4096);
	} else {
		chaos_trace(c, "map the mailbox: %d", err);
	}
}

static void op_query(struct chaos *c)
{
	struct kvmi_x86_regs regs;
	struct soak_mbox m;
	uint64_t gpa = 0;
	uint16_t v = pick_vcpu(c);

	switch (rng_below(&c->rng, 3)) {
	case 0:
		chaos_trace(c, "GET_REGISTERS vcpu %u: %d", v,
			    result(c, kvmi_dom_get_registers(c->dom, v, &regs, NULL, NULL, 0, NULL)));
		break;
	case 1:
		chaos_trace(c, "READ_PHYSICAL mailbox: %d",
			    result(c, kvmi_dom_read_physical(c->dom, SOAK_MBOX_GPA, &m, sizeof(m))));
		break;
	default:
		chaos_trace(c, "TRANSLATE_GVA vcpu %u: %d", v,
			    result(c, kvmi_dom_translate_gva(c->dom, v, SOAK_DATA_GPA, &gpa)));
		break;
	}
}

static void op_run(struct chaos *c)
{
	unsigned ms = rng_below(&c->rng, 300);

	chaos_trace(c, "let the guest run %u ms", ms);
	usleep(ms * 1000);
}

static const struct {
	unsigned weight;
	void (*fn)(struct chaos *c);
} ops[] = {
	{ 18, op_events }, { 18, op_protect }, { 6, op_protect_many }, { 5, op_lift },
	{ 10, op_msr }, { 6, op_singlestep }, { 8, op_pause }, { 8, op_batch },
	{ 3, op_map }, { 8, op_query }, { 10, op_run },
};

void chaos_op(struct chaos *c)
{
	unsigned total = 0, pick;

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		total += ops[i].weight;
	pick = rng_below(&c->rng, total);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (pick < ops[i].weight) {
			ops[i].fn(c);
			return;
		}
		pick -= ops[i].weight;
	}
}

/* Header, vCPU header and an 8-byte body, in one write(). */
void chaos_raw_vcpu_command(struct chaos *c)
{
	static const char *const names[] = { "CONTROL_SINGLESTEP on", "CONTROL_MSR on", "CONTROL_EVENTS(PF) on",
					      "PAUSE_VCPU", "GET_REGISTERS" };
	static const uint16_t ids[] = { KVMI_VCPU_CONTROL_SINGLESTEP, KVMI_CONTROL_MSR, KVMI_CONTROL_EVENTS,
					KVMI_PAUSE_VCPU, KVMI_GET_REGISTERS };
	uint8_t msg[sizeof(struct kvmi_msg_hdr) + sizeof(struct kvmi_vcpu_hdr) + 8];
	struct kvmi_msg_hdr h = { .size = sizeof(struct kvmi_vcpu_hdr) + 8, .seq = 0x50a50000u };
	struct kvmi_vcpu_hdr vh = { .vcpu = pick_vcpu(c) };
	uint8_t body[8] = { 0 };
	unsigned k = rng_below(&c->rng, 5);
	uint32_t msr = rng_pct(&c->rng, 50) ? SOAK_MSR_A : SOAK_MSR_B;
	ssize_t n;

	h.id = ids[k];
	body[0] = 1;                    /* enable / wait */
	if (h.id == KVMI_CONTROL_MSR)
		memcpy(body + 4, &msr, 4);
	if (h.id == KVMI_CONTROL_EVENTS) {
		uint16_t ev = KVMI_EVENT_PF;

		memcpy(body, &ev, 2);
		body[2] = 1;
	}
	if (h.id == KVMI_GET_REGISTERS)
		body[0] = 0;
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &vh, sizeof(vh));
	memcpy(msg + sizeof(h) + sizeof(vh), body, sizeof(body));
	n = write(kvmi_dom_fd(c->dom), msg, sizeof(msg));
	chaos_trace(c, "raw %s vcpu %u, reply not read: %zd", names[k], vh.vcpu, n);
}
