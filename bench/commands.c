/* SPDX-License-Identifier: MIT */
/*
 * bench-kvmi memory, its command part: round trips of single commands a
 * tool sends while a vCPU is paused (GET_REGISTERS, TRANSLATE_GVA; the
 * READ_PHYSICAL ones are memory.c's), and sixteen commands at once, as a
 * batch of the client library (kvmi_batch_*: CONTROL_CMD_RESPONSE around
 * them, one reply) and as sixteen pipelined READ_PHYSICAL of 4 KiB
 * (kvmi_dom_read_physical_bulk), each next to one command of its kind;
 * and, for the census of events.c, a number of one kind of them run while
 * vCPU 0 is paused (their vCPU ioctls are counted before its next entry).
 */
#include <stdio.h>
#include <stdlib.h>

#include <kvmi/kvmi.h>

#include "bench_kvmi.h"

#define BATCH 16

enum command {          /* the census (events.c) names the first two by number */
	CMD_GET_REGISTERS,
	CMD_TRANSLATE_GVA,
	CMD_CONTROL_EVENTS,             /* one, as the batch's commands */
	CMD_CONTROL_EVENTS_BATCH,       /* BATCH of them in one kvmi_batch */
	CMD_READ_PHYSICAL_PIPELINED,    /* BATCH pages, kvmi_dom_read_physical_bulk */
};

static int one(struct vmm *v, enum command c, struct kvmi_batch *b, uint8_t *buf)
{
	struct kvmi_x86_regs regs;
	struct kvmi_x86_sregs sregs;
	uint64_t gpa;
	uint32_t mode;
	int ret = 0;

	switch (c) {
	case CMD_GET_REGISTERS:
		return kvmi_dom_get_registers(v->dom, 0, &regs, &sregs, NULL, 0, &mode);
	case CMD_TRANSLATE_GVA:
		/* the guest maps its RAM 1:1 */
		ret = kvmi_dom_translate_gva(v->dom, 0, BENCH_MBOX_GPA, &gpa);
		return ret ? ret : gpa == BENCH_MBOX_GPA ? 0 : -1;
	case CMD_CONTROL_EVENTS:
		/* MSR events off on vCPU 0: they already are, nothing changes */
		return kvmi_dom_control_events(v->dom, 0, KVMI_EVENT_MSR, false);
	case CMD_CONTROL_EVENTS_BATCH:
		for (unsigned i = 0; i < BATCH && !ret; i++)
			ret = kvmi_batch_control_events(b, 0, KVMI_EVENT_MSR, false);
		return ret ? ret : kvmi_batch_submit(b);
	case CMD_READ_PHYSICAL_PIPELINED:
		return kvmi_dom_read_physical_bulk(v->dom, BENCH_DATA_GPA, buf, BATCH * 4096);
	}
	return -1;
}

static void timed(struct vmm *v, enum command c, unsigned n, const char *id, const char *what)
{
	double *lat = xmalloc_d(n);
	uint8_t *buf = malloc(BATCH * 4096);
	struct kvmi_batch *b = NULL;
	int ret = kvmi_batch_new(v->dom, &b);

	if (ret || !buf)
		die("%s: %s", what, ret ? kvmi_strerror(ret) : "out of memory");
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		ret = one(v, c, b, buf);
		lat[i] = (double)(now_ns() - t0) / 1e3;
		if (ret)
			die("%s: %s", what, ret < 0 ? kvmi_strerror(ret) : "wrong answer");
	}
	if (id)         /* NULL: the census, no figure */
		result_samples(id, "us", lat, n, "%s", what);
	kvmi_batch_destroy(b);
	free(buf);
	free(lat);
}

/* Census: pauses vCPU 0, runs @n commands of kind @which (CMD_*), lets
 * the vCPU go on and waits until it runs again; returns @n. */
uint64_t bench_commands_census(struct vmm *v, unsigned which, unsigned n)
{
	struct kvmi_event_msg *ev;
	uint64_t c[BENCH_MAX_VCPUS], c2[BENCH_MAX_VCPUS], args[4] = { (uint64_t)(v->tsc_hz * 2e-6) }, seq;
	int ret;

	seq = mbox_post(v, BENCH_CMD_SPIN, args);
	sleep_us(20000);
	ret = kvmi_dom_pause_vcpu(v->dom, 0, false);
	ev = ret ? NULL : next_event(v, 5000);
	if (!ev || ev->event != KVMI_EVENT_PAUSE_VCPU)
		die("census of commands: no PAUSE_VCPU event");
	read_counts(v, c);
	timed(v, (enum command)which, n, NULL, "census");
	reply_continue(v, ev);
	do {
		sleep_us(1000);
		read_counts(v, c2);
	} while (c2[0] == c[0]);
	gmem_write64(v, MBOX_FIELD(stop), seq);
	if (!mbox_done(v, seq, 10000))
		die("guest did not stop spinning (log: %s)", v->log);
	return n;
}

/* With vCPU 0 paused (its PAUSE_VCPU event held). */
void bench_commands(struct vmm *v)
{
	timed(v, CMD_GET_REGISTERS, 5000, "cmd_get_registers",
	      "GET_REGISTERS of vCPU 0 (no MSRs), one command per round trip");
	timed(v, CMD_TRANSLATE_GVA, 5000, "cmd_translate_gva",
	      "TRANSLATE_GVA on vCPU 0, one command per round trip");
	timed(v, CMD_CONTROL_EVENTS, 5000, "cmd_control_events",
	      "CONTROL_EVENTS (MSR off) on vCPU 0, one command per round trip");
	timed(v, CMD_CONTROL_EVENTS_BATCH, 2000, "cmd_batch16",
	      "16 CONTROL_EVENTS in one kvmi_batch (one write: CONTROL_CMD_RESPONSE off, the 16 commands "
	      "without replies, CONTROL_CMD_RESPONSE on, whose reply ends the wait)");
	timed(v, CMD_READ_PHYSICAL_PIPELINED, 2000, "cmd_read_phys_16x4k",
	      "16 READ_PHYSICAL of 4 KiB pipelined (kvmi_dom_read_physical_bulk of 64 KiB: all 16 on the "
	      "wire, the replies read as they come)");
}
