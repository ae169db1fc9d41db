/* SPDX-License-Identifier: MIT */
/*
 * End to end: kvmi-vm runs the "introspect" payload on 2 vCPUs and connects
 * to this test, which listens with our client library and drives the guest
 * over the KVMI wire protocol: handshake, every implemented command, pause
 * (the guest really stops), pause-all with an event in flight, SET_REGISTERS
 * during an event (the guest sees the value), memory read/write, exception
 * injection + TRAP, disconnect while paused (the guest keeps running and the
 * VMM reconnects), admin policy, cookie authentication, a guest of another
 * name refused, UNHOOK at shutdown.
 *
 * Each group of checks (the table at the end) runs against its own
 * kvmi-vm, whose name (and for "handshake" its UUID) the listener pins with
 * kvmi_config_expect_guest(); sockets, logs and the key file live in a
 * private scratch directory (itest.h).  "The vCPU is stopped" is checked
 * against a barrier, not a sleep: the other vCPU's counter moving on, or a
 * GET_REGISTERS each paused vCPU answers from its wait.
 *
 * usage: test_introspect KVMI_VM GUEST_DIR [vsock]
 * TAP output; "1..0 # SKIP" without /dev/kvm.  With "vsock" the connection
 * uses AF_VSOCK over the loopback transport (CID 1) instead of AF_UNIX.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

#include "itest.h"

#define MBOX_GPA   0x300000ull
#define MBOX_MAGIC 0x4b564d494d424f58ull
#define MBOX_GO    0x600dull

#define NR_VCPUS   2

struct mbox {
	uint64_t magic, go, injected_ud, last_ud_rip;
	uint64_t counter[4], rbx_seen[4];
};

static const char *vmm, *guest_dir;
static char what[256];
static char guest_elf[512];
static bool use_vsock;

#define GUEST_UUID "01234567-89ab-cdef-0123-456789abcdef"

static int read_mbox(struct kvmi_dom *dom, struct mbox *m)
{
	return kvmi_dom_read_physical(dom, MBOX_GPA, m, sizeof(*m));
}

/* Waits until the guest published its mailbox. */
static int wait_mbox(struct kvmi_dom *dom, struct mbox *m)
{
	for (int i = 0; i < 300; i++) {
		if (read_mbox(dom, m) == 0 && m->magic == MBOX_MAGIC)
			return 0;
		usleep(20000);
	}
	return -ETIMEDOUT;
}

/* Every vCPU command that has a backend, on paused vCPU 0. */
static void exercise_vcpu_commands(struct kvmi_dom *dom)
{
	struct kvmi_get_cpuid_reply leaf;
	static uint8_t xsave[KVMI_XSAVE_SIZE];
	uint64_t v = 0, gpa = 0, gfn = 0, tsc = 0;
	size_t got = 0;
	uint8_t type = 0xff;
	int ret;

	ok(kvmi_dom_get_cpuid(dom, 0, 0, 0, &leaf) == 0 && leaf.eax >= 1 &&
	   (leaf.ebx == 0x68747541 || leaf.ebx == 0x756e6547), "GET_CPUID leaf 0: a vendor string");
	ok(kvmi_dom_get_cpuid(dom, 0, 0x4fffffff, 0, &leaf) == -ENOENT, "GET_CPUID of a missing leaf: ENOENT");
	ok(kvmi_dom_get_xsave(dom, 0, xsave, sizeof(xsave), &got) == 0 && got == KVMI_XSAVE_SIZE,
	   "GET_XSAVE returns %u bytes", KVMI_XSAVE_SIZE);
	ok(kvmi_dom_set_xsave(dom, 0, xsave, sizeof(xsave)) == 0, "SET_XSAVE of the same state");
	ret = kvmi_dom_get_xcr(dom, 0, 0, &v);
	ok(ret == 0, "GET_XCR 0 (%#llx)", (unsigned long long)v);
	ok(kvmi_dom_get_xcr(dom, 0, 1, &v) == -EINVAL, "GET_XCR 1: EINVAL");
	ret = kvmi_dom_get_mtrr_type(dom, MBOX_GPA, &type);
	ok(ret == 0 && type <= 6, "GET_MTRR_TYPE (%u)", type);
	/* Under QEMU the firmware ROM ends guest memory, at 4 GiB. */
	ret = kvmi_dom_get_max_gfn(dom, &gfn);
	ok(ret == 0 && gfn == (itest_is_qemu(vmm) ? 4ull << 30 : 256ull << 20) >> 12,
	   "GET_MAX_GFN = end of guest memory (256 MiB of RAM, or QEMU's firmware at 4 GiB) (%#llx)",
	   (unsigned long long)gfn);
	ok(kvmi_dom_translate_gva(dom, 0, MBOX_GPA + 0x123, &gpa) == 0 && gpa == MBOX_GPA + 0x123,
	   "TRANSLATE_GVA through the identity map");
	ok(kvmi_dom_translate_gva(dom, 0, 0xffff800000000000ull, &gpa) == 0 && gpa == KVMI_UNMAPPED_GVA,
	   "TRANSLATE_GVA of an unmapped address: ~0");
	ret = kvmi_dom_get_vcpu_info(dom, 0, &tsc);
	ok(ret == 0, "GET_VCPU_INFO (TSC %llu Hz)", (unsigned long long)tsc);
	ok(kvmi_dom_get_registers(dom, 9, NULL, NULL, NULL, 0, NULL) == -EINVAL, "bad vCPU index: EINVAL");
	ok(kvmi_dom_control_events(dom, 0, KVMI_EVENT_DESCRIPTOR, true) == -EOPNOTSUPP,
	   "an event this host cannot deliver cannot be enabled");
	ok(kvmi_dom_read_physical(dom, 0x7ff00000ull, &v, 8) == -ENOENT, "READ_PHYSICAL beyond RAM: ENOENT");
	{
		struct kvmi_query_physical q = { .gfn = MBOX_GPA >> 12 };
		struct kvmi_query_physical_reply qr = { 0 };

		/* kvmi-vm: one region [0, 256 MiB); QEMU (q35): [1 MiB, 256 MiB) */
		uint64_t first = itest_is_qemu(vmm) ? 0x100 : 0;

		ret = kvmi_dom_command(dom, KVMI_QUERY_PHYSICAL, &q, sizeof(q), &qr, sizeof(qr), NULL);
		ok(ret == 0 && qr.gfn == first && qr.size == ((256ull << 20) >> 12) - first,
		   "QUERY_PHYSICAL: the RAM region holding the mailbox (gfn %#llx, %llu pages)",
		   (unsigned long long)qr.gfn, (unsigned long long)qr.size);
		q.gfn = 0x7ff00;
		ok(kvmi_dom_command(dom, KVMI_QUERY_PHYSICAL, &q, sizeof(q), &qr, sizeof(qr), NULL) == -ENOENT,
		   "QUERY_PHYSICAL beyond RAM: ENOENT");
	}
	ok(kvmi_dom_read_physical(dom, MBOX_GPA + 4090, &v, 8) == -EINVAL, "READ_PHYSICAL across a page: EINVAL");
}

/* Polls the mailbox until its u64 at byte offset `off` reaches `min` (5 s
 * at most); the mailbox as last read in m.  0 or -ETIMEDOUT. */
static int mbox_reaches(struct kvmi_dom *dom, struct mbox *m, size_t off, uint64_t min)
{
	uint64_t v;

	for (int i = 0; i < 5000 && kvmi_dom_is_connected(dom); i++) {
		if (read_mbox(dom, m) == 0) {
			memcpy(&v, (const uint8_t *)m + off, sizeof(v));
			if (v >= min)
				return 0;
		}
		usleep(1000);
	}
	return -ETIMEDOUT;
}

#define COUNTER(v)  (offsetof(struct mbox, counter) + (v) * sizeof(uint64_t))
#define RBX_SEEN(v) (offsetof(struct mbox, rbx_seen) + (v) * sizeof(uint64_t))
#define PROGRESS    100000      /* loop iterations of a running vCPU: a few ms */

/* pause-all with an event in flight, then SET_REGISTERS during an event. */
static void test_pause_all_and_set_regs(struct kvmi_dom *dom)
{
	struct kvmi_event_msg *ev[4] = { 0 }, *e;
	struct kvmi_x86_regs regs;
	struct mbox m1, m2;
	unsigned n = 0, per_vcpu[NR_VCPUS] = { 0 };
	bool parked = true;
	int ret;

	/* vCPU 0 is paused and its event is left unanswered... */
	kvmi_dom_pause_vcpu(dom, 0, true);
	ev[n] = itest_next_event(dom, 10000);
	if (!ev[n]) {
		ok(0, "pause vCPU 0 before pause-all");
		return;
	}
	n++;
	/* ...while a pause-all (batched, as libkvmi does) goes out. */
	ret = kvmi_dom_pause_vcpus(dom, NR_VCPUS);
	ok(ret == 0, "pause-all while an event is in flight");
	e = itest_next_event(dom, 10000);
	ok(e && e->vcpu == 1 && e->event == KVMI_EVENT_PAUSE_VCPU, "vCPU 1 reports its pause");
	if (!e)
		goto out;
	ev[n++] = e;
	/* Each vCPU answers GET_REGISTERS from its event wait (a job on its
	 * own thread): the barrier that it is out of guest mode. */
	read_mbox(dom, &m1);
	for (unsigned i = 0; i < n; i++)
		parked &= kvmi_dom_get_registers(dom, ev[i]->vcpu, &regs, NULL, NULL, 0, NULL) == 0 &&
			  regs.rip == ev[i]->common.arch.regs.rip;
	read_mbox(dom, &m2);
	ok(parked && m1.counter[0] == m2.counter[0] && m1.counter[1] == m2.counter[1],
	   "every vCPU is stopped: each answers GET_REGISTERS at its event's RIP, the counters stay");

	/* SET_REGISTERS on vCPU 1 while it waits for the reply. */
	ret = kvmi_dom_get_registers(dom, 1, &regs, NULL, NULL, 0, NULL);
	regs.rbx = 0x5e7;
	ok(ret == 0 && kvmi_dom_set_registers(dom, 1, &regs) == 0, "SET_REGISTERS during the event");
	ok(kvmi_dom_reply_event(dom, ev[1], KVMI_EVENT_ACTION_CONTINUE, NULL, 0) == 0, "reply vCPU 1");
	/* vCPU 0 owes one more pause: the first reply releases the second event. */
	ok(kvmi_dom_reply_event(dom, ev[0], KVMI_EVENT_ACTION_CONTINUE, NULL, 0) == 0, "reply vCPU 0's first pause");
	e = itest_next_event(dom, 10000);
	ok(e && e->vcpu == 0 && e->event == KVMI_EVENT_PAUSE_VCPU, "vCPU 0 then reports the pause-all request");
	if (e) {
		kvmi_dom_reply_event(dom, e, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(e);
	}
	ok(kvmi_dom_set_registers(dom, 1, &regs) == -EOPNOTSUPP, "SET_REGISTERS outside an event: EOPNOTSUPP");
	ret = mbox_reaches(dom, &m2, RBX_SEEN(1), 1);
	ok(ret == 0 && m2.rbx_seen[1] == 0x5e7 && m2.rbx_seen[0] == 0, "the guest sees RBX from SET_REGISTERS (%#llx)",
	   (unsigned long long)m2.rbx_seen[1]);
	for (unsigned i = 0; i < n; i++)
		per_vcpu[ev[i]->vcpu]++;
	ok(per_vcpu[0] == 1 && per_vcpu[1] == 1 && kvmi_dom_pending_events(dom) == 0, "no stray events");
out:
	for (unsigned i = 0; i < n; i++)
		kvmi_event_free(ev[i]);
}

/* The handshake carries what kvmi-vm was given; the version, features and
 * guest info commands. */
static void g_handshake(struct itest_group *g)
{
	struct kvmi_dom *dom = g->dom;
	struct kvmi_features feat, f2;
	uint32_t version = 0, nvcpus = 0;
	struct mbox m;
	int ret;

	ok(!strcmp(kvmi_dom_name(dom), "it-vm"), "handshake carries the VM name (%s)", kvmi_dom_name(dom));
	ok(kvmi_dom_hello(dom)->uuid[0] == 0x01 && kvmi_dom_hello(dom)->uuid[15] == 0xef,
	   "handshake carries the VM UUID (the listener pinned both)");
	ok(kvmi_dom_get_version(dom, &version, &feat) == 0 && version == 1, "GET_VERSION = 1");
	ret = kvmi_dom_get_version(dom, &version, &f2);
	ok(ret == 0 && (f2.singlestep != 0) == (kvmi_dom_check_event(dom, KVMI_EVENT_SINGLESTEP) == 0) &&
	   !f2.spp && !f2.ve,
	   "features: single-step as the host offers it, no SPP/#VE (singlestep=%u)", f2.singlestep);
	ok(kvmi_dom_get_guest_info(dom, &nvcpus) == 0 && nvcpus == NR_VCPUS, "GET_GUEST_INFO: %d vCPUs", NR_VCPUS);
	ok(kvmi_dom_check_command(dom, KVMI_GET_REGISTERS) == 0, "CHECK_COMMAND GET_REGISTERS allowed");
	ok(kvmi_dom_check_event(dom, KVMI_EVENT_PAUSE_VCPU) == 0, "CHECK_EVENT PAUSE_VCPU deliverable");
	ok(wait_mbox(dom, &m) == 0, "READ_PHYSICAL sees the guest's mailbox");
}

/* A pause stops one vCPU; every vCPU command on it; an injected #UD. */
static void g_pause(struct itest_group *g)
{
	struct kvmi_dom *dom = g->dom;
	struct kvmi_event_msg *ev;
	struct kvmi_x86_regs regs;
	struct kvmi_x86_sregs sregs;
	struct kvmi_x86_msr_entry msr = { .index = 0xc0000080 };
	struct mbox m1, m2, m3;
	uint32_t mode = 0;
	int ret;

	ok(wait_mbox(dom, &m1) == 0, "pause: the guest is up (its #UD handler too)");
	ret = kvmi_dom_pause_vcpu(dom, 0, true);
	ev = itest_next_event(dom, 10000);
	ok(ret == 0 && ev && ev->event == KVMI_EVENT_PAUSE_VCPU && ev->vcpu == 0,
	   "PAUSE_VCPU(wait) -> one PAUSE_VCPU event");
	if (!ev)
		return;
	ok(ev->common.arch.mode == 8 && ev->common.arch.regs.rip >= 0x100000 &&
	   ev->common.arch.regs.rip < 0x200000, "event carries 64-bit mode and a RIP in the payload (%#llx)",
	   (unsigned long long)ev->common.arch.regs.rip);
	ret = kvmi_dom_get_registers(dom, 0, &regs, &sregs, &msr, 1, &mode);
	ok(ret == 0 && regs.rip == ev->common.arch.regs.rip && mode == 8 && (msr.data & 0x500) == 0x500,
	   "GET_REGISTERS on the paused vCPU: same RIP, EFER has LME|LMA");
	/* The other vCPU's progress is the clock. */
	read_mbox(dom, &m1);
	ret = mbox_reaches(dom, &m2, COUNTER(1), m1.counter[1] + PROGRESS);
	ok(ret == 0 && m1.counter[0] == m2.counter[0],
	   "the paused vCPU stops while the other runs on (vCPU0 %llu -> %llu, vCPU1 %llu -> %llu)",
	   (unsigned long long)m1.counter[0], (unsigned long long)m2.counter[0],
	   (unsigned long long)m1.counter[1], (unsigned long long)m2.counter[1]);
	exercise_vcpu_commands(dom);
	ok(kvmi_dom_inject_exception(dom, 0, 6, 0, 0) == 0, "INJECT_EXCEPTION #UD while paused");
	ok(kvmi_dom_inject_exception(dom, 0, 6, 0, 0) == -EBUSY, "a second injection before its TRAP is busy");
	ok(kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0) == 0, "reply CONTINUE");
	kvmi_event_free(ev);
	ev = itest_next_event(dom, 10000);
	ok(ev && ev->event == KVMI_EVENT_TRAP && ev->specific.trap.vector == 6,
	   "TRAP event reports the injected #UD (vector %d)", ev ? ev->specific.trap.vector : -1);
	if (ev) {
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev);
	}
	ret = mbox_reaches(dom, &m3, offsetof(struct mbox, injected_ud), 1);
	if (!ret)
		ret = mbox_reaches(dom, &m3, COUNTER(0), m2.counter[0] + PROGRESS);
	ok(ret == 0 && m3.injected_ud == 1,
	   "after CONTINUE the guest runs again and handled the #UD (counter %llu, #UD %llu)",
	   (unsigned long long)m3.counter[0], (unsigned long long)m3.injected_ud);
}

static void g_pause_all(struct itest_group *g)
{
	struct mbox m;

	ok(wait_mbox(g->dom, &m) == 0, "pause-all: the guest is up");
	/* Both vCPUs in their ring-3 loop, where RBX is theirs to report:
	 * vCPU 1 paused before it (under QEMU it may start late) holds the
	 * compiler's RBX, and writing it breaks the guest's C code. */
	ok(mbox_reaches(g->dom, &m, COUNTER(0), 1) == 0 && mbox_reaches(g->dom, &m, COUNTER(1), 1) == 0,
	   "pause-all: both vCPUs run their loop");
	test_pause_all_and_set_regs(g->dom);
}

/* Disconnect while paused: the vCPU must resume, the VMM reconnect. */
static void g_disconnect_paused(struct itest_group *g)
{
	struct kvmi_event_msg *ev;
	struct mbox m1, m2;
	int ret;

	ok(wait_mbox(g->dom, &m1) == 0, "disconnect-paused: the guest is up");
	kvmi_dom_pause_vcpu(g->dom, 0, true);
	ev = itest_next_event(g->dom, 10000);
	ok(ev && ev->event == KVMI_EVENT_PAUSE_VCPU, "paused");
	kvmi_event_free(ev);
	kvmi_dom_close(g->dom);
	g->dom = NULL;
	ret = itest_group_accept(g, 20);
	ok(ret == 0, "kvmi-vm reconnects after the tool went away");
	if (ret)
		return;
	read_mbox(g->dom, &m1);
	ret = mbox_reaches(g->dom, &m2, COUNTER(0), m1.counter[0] + PROGRESS);
	ok(ret == 0, "the vCPU paused at disconnect runs again (counter %llu -> %llu)",
	   (unsigned long long)m1.counter[0], (unsigned long long)m2.counter[0]);
}

/* vCPU 0 takes an injected #UD, which the payload's last assertion wants. */
static bool inject_ud(struct kvmi_dom *dom)
{
	struct kvmi_event_msg *ev = NULL;
	struct mbox m;
	bool done;

	done = wait_mbox(dom, &m) == 0 && kvmi_dom_pause_vcpu(dom, 0, true) == 0 &&
	       (ev = itest_next_event(dom, 10000)) && ev->event == KVMI_EVENT_PAUSE_VCPU &&
	       kvmi_dom_inject_exception(dom, 0, 6, 0, 0) == 0 &&
	       kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0) == 0;
	kvmi_event_free(ev);
	ev = done ? itest_next_event(dom, 10000) : NULL;
	done = ev && ev->event == KVMI_EVENT_TRAP &&
	       kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0) == 0 &&
	       mbox_reaches(dom, &m, offsetof(struct mbox, injected_ud), 1) == 0;
	kvmi_event_free(ev);
	ok(done, "the guest took an injected #UD");
	return done;
}

/* Single-step the instructions after the WRMSR (ring 0); ev is the next
 * event after the MSR event's reply.  Returns the event after the steps. */
static struct kvmi_event_msg *three_steps(struct kvmi_dom *dom, struct kvmi_event_msg *ev)
{
	uint64_t rip[3] = { 0 };
	unsigned steps = 0;

	while (ev && ev->event == KVMI_EVENT_SINGLESTEP && steps < 3) {
		rip[steps++] = ev->common.arch.regs.rip;
		if (steps == 3)
			kvmi_dom_control_singlestep(dom, 0, false);
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev);
		ev = itest_next_event(dom, 20000);
	}
	ok(steps == 3 && rip[0] != rip[1] && rip[1] != rip[2],
	   "SINGLESTEP events, one per instruction (rip %#llx, %#llx, %#llx)",
	   (unsigned long long)rip[0], (unsigned long long)rip[1], (unsigned long long)rip[2]);
	return ev;
}

/* The go word: the guest's MSR write as an event (rewritten by the tool),
 * single-steps after it, UNHOOK at shutdown, exit status 0. */
static void g_shutdown(struct itest_group *g)
{
	struct kvmi_dom *dom = g->dom;
	struct kvmi_event_msr_reply mr = { .new_val = 0x5678 };
	struct kvmi_event_msg *ev;
	uint64_t go = MBOX_GO;
	bool msr_ok, ss_ok;
	int status;

	if (!inject_ud(dom))
		return;
	ok(kvmi_dom_control_vm_events(dom, KVMI_EVENT_UNHOOK, true) == 0, "enable UNHOOK");
	msr_ok = kvmi_dom_check_event(dom, KVMI_EVENT_MSR) == 0;
	if (msr_ok) {
		ok(kvmi_dom_control_events(dom, 0, KVMI_EVENT_MSR, true) == 0 &&
		   kvmi_dom_control_msr(dom, 0, 0x175, true) == 0, "watch writes of MSR 0x175 on vCPU 0");
		ok(kvmi_dom_control_msr(dom, 0, 0x2000, true) == -EINVAL, "CONTROL_MSR outside the allowed ranges: EINVAL");
	} else {
		skip("MSR events not available on this host", "MSR event of the guest's WRMSR");
	}
	ok(kvmi_dom_write_physical(dom, MBOX_GPA + 8, &go, sizeof(go)) == 0, "WRITE_PHYSICAL the go word");
	ev = itest_next_event(dom, 20000);
	if (msr_ok) {
		ok(ev && ev->event == KVMI_EVENT_MSR && ev->vcpu == 0 && ev->specific.msr.msr == 0x175 &&
		   ev->specific.msr.new_value == 0x1234 && ev->specific.msr.old_value != 0x1234,
		   "MSR event: index, old and new value of the guest's WRMSR");
		ss_ok = kvmi_dom_check_event(dom, KVMI_EVENT_SINGLESTEP) == 0;
		if (ev && ss_ok)
			ok(kvmi_dom_control_events(dom, 0, KVMI_EVENT_SINGLESTEP, true) == 0 &&
			   kvmi_dom_control_singlestep(dom, 0, true) == 0, "CONTROL_SINGLESTEP on during the MSR event");
		if (ev)
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, &mr, sizeof(mr));
		kvmi_event_free(ev);
		ev = itest_next_event(dom, 20000);
		if (ss_ok)
			ev = three_steps(dom, ev);
	}
	ok(ev && ev->event == KVMI_EVENT_UNHOOK, "UNHOOK arrives when the guest shuts down");
	kvmi_event_free(ev);
	kvmi_dom_close(dom);
	g->dom = NULL;
	status = itest_group_wait(g, 30);
	ok(status == KVMI_VM_EXIT_OK, "guest saw the write and the injected #UD, VM exit status 0 (got %d)", status);
	if (msr_ok)
		ok(itest_log_has(g->log, "msr 0x175 = 0x5678"), "CONTINUE wrote the tool's new_val: the guest reads 0x5678");
}

/* kvmi-vm named "it-vm" while the tool waits for another guest: refused
 * unanswered, and it stays (reconnecting) for the right tool. */
static void g_wrong_guest(struct itest_group *g)
{
	int ret = itest_group_accept(g, 20);

	ok(ret == -EACCES, "a tool expecting another guest refuses kvmi-vm \"it-vm\" (%d)", ret);
	ok(itest_group_alive(g), "kvmi-vm runs on after the refusal");
}

/* Policy: a disallowed command gets -EPERM, CHECK_COMMAND says so, and the
 * guest is unaffected; a wrong cookie is refused. */
static void g_policy_and_key(struct itest_group *g)
{
	struct kvmi_config cfg = g->cfg;
	struct mbox m;
	uint64_t go = MBOX_GO;
	int ret, status;

	/* The listener has the wrong key. */
	ret = itest_group_accept(g, 20);
	ok(ret != 0 && ret != -ECHILD, "a tool with the wrong cookie is refused (%d)", ret);
	kvmi_dom_close(g->dom);
	g->dom = NULL;
	kvmi_listener_close(g->l);
	g->l = NULL;

	/* The right key: the VMM retries with backoff and gets in. */
	cfg.key = "s3cret";
	cfg.key_len = 6;
	ret = kvmi_listener_open(g->tool_addr, &cfg, &g->l);
	if (!ret)
		ret = itest_group_accept(g, 20);
	ok(ret == 0, "the same VMM retries and a tool with the right cookie is accepted");
	if (ret)
		return;
	ok(kvmi_dom_check_command(g->dom, KVMI_WRITE_PHYSICAL) == -EPERM, "CHECK_COMMAND WRITE_PHYSICAL: EPERM");
	ok(kvmi_dom_write_physical(g->dom, MBOX_GPA + 8, &go, sizeof(go)) == -EPERM,
	   "WRITE_PHYSICAL disallowed by --allow-commands: EPERM");
	ok(kvmi_dom_check_event(g->dom, KVMI_EVENT_PAUSE_VCPU) == -EPERM, "CHECK_EVENT PAUSE_VCPU: EPERM");
	ok(wait_mbox(g->dom, &m) == 0 && m.go == 0, "READ_PHYSICAL still allowed; the go word was not written");
	kvmi_dom_close(g->dom);
	g->dom = NULL;
	kill(g->pid, SIGTERM);
	status = itest_group_wait(g, 20);
	/* QEMU ends with 0 on SIGTERM, which reads as a guest shutdown */
	ok(status == (itest_is_qemu(vmm) ? KVMI_VM_EXIT_CRASH : 128 + SIGTERM),
	   "SIGTERM stops the VMM cleanly (status %d)", status);
}

static struct kvmi_event_msg *next_pf(struct kvmi_dom *dom)
{
	struct kvmi_event_msg *ev;

	while ((ev = itest_next_event(dom, 10000))) {
		if (ev->event == KVMI_EVENT_PF)
			return ev;
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev);
	}
	return NULL;
}

/* The next PF event of one vCPU; the other vCPUs' events are continued. */
static struct kvmi_event_msg *next_pf_of(struct kvmi_dom *dom, uint16_t vcpu)
{
	struct kvmi_event_msg *ev;

	while ((ev = next_pf(dom)) && ev->vcpu != vcpu) {
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev);
	}
	return ev;
}

static int set_access(struct kvmi_dom *dom, uint64_t gpa, uint8_t access)
{
	return kvmi_dom_set_page_access(dom, &gpa, &access, 1, 0);
}

/*
 * Page-access tracking on the mailbox page, which both vCPUs write (their
 * counters) and read (the go word) in a ring-3 loop: pre-write events,
 * CONTINUE completes the write, RETRY re-executes it, pre-read events with
 * the read served from the tool's ctx_data, rwx forgets the page, and the
 * restrictions vanish with the tool.
 */
static void pf_writes(struct kvmi_dom *dom)
{
	struct kvmi_event_msg *ev, *ev2;
	struct mbox m1, m2;
	unsigned writes = 0;

	ok(set_access(dom, MBOX_GPA, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X) == 0, "write-protect the mailbox page");
	for (int i = 0; i < 5; i++) {
		ev = next_pf(dom);
		if (!ev)
			break;
		if (ev->specific.pf.access == KVMI_PAGE_ACCESS_W && (ev->specific.pf.gpa >> 12) == (MBOX_GPA >> 12))
			writes++;
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev);
	}
	ok(writes == 5, "pre-write PF events name the page and the access (%u of 5)", writes);

	/* RETRY of a store: KVM has emulated the whole instruction before the
	 * exit, so it cannot run again; without W granted the store is dropped
	 * and the vCPU goes on with the next instruction. */
	ev = next_pf(dom);
	read_mbox(dom, &m1);
	if (ev)
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_RETRY, NULL, 0);
	ev2 = ev ? next_pf_of(dom, ev->vcpu) : NULL;
	read_mbox(dom, &m2);
	ok(ev && ev2 && ev2->specific.pf.gpa != ev->specific.pf.gpa &&
	   m2.counter[ev->vcpu] == m1.counter[ev->vcpu] && m2.rbx_seen[ev->vcpu] == m1.rbx_seen[ev->vcpu],
	   "RETRY of a pre-write event without W: the store is dropped, the vCPU moves on");
	if (ev2) {
		kvmi_dom_reply_event(dom, ev2, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev2);
	}
	kvmi_event_free(ev);
}

/* rwx forgets the page.  Events raised before are answered until both
 * vCPUs moved on by PROGRESS iterations, every one of them a write to the
 * page: a vCPU with an event pending cannot, so nothing can come after. */
static void pf_forget(struct kvmi_dom *dom)
{
	struct kvmi_event_msg *ev;
	struct mbox m0, m;
	bool moved = false;

	ok(set_access(dom, MBOX_GPA, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X) == 0,
	   "rwx forgets the page");
	read_mbox(dom, &m0);
	for (int i = 0; i < 5000 && !moved && kvmi_dom_is_connected(dom); i++) {
		while ((ev = itest_next_event(dom, 0))) {
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			kvmi_event_free(ev);
		}
		moved = read_mbox(dom, &m) == 0 && m.counter[0] >= m0.counter[0] + PROGRESS &&
			m.counter[1] >= m0.counter[1] + PROGRESS;
		if (!moved)
			usleep(1000);
	}
	ok(moved && (ev = itest_next_event(dom, 0)) == NULL, "no events after forgetting; the guest runs freely");
}

/* Read protection: the go word is read through the tool's ctx_data
 * window: the guest sees GO although memory still holds 0. */
static void pf_reads(struct kvmi_dom *dom)
{
	struct kvmi_event_msg *ev, *ev2;
	struct kvmi_event_pf_reply rpl;
	uint64_t go = MBOX_GO;
	unsigned reads = 0, served_mask = 0;
	struct mbox m;

	ok(set_access(dom, MBOX_GPA, KVMI_PAGE_ACCESS_X) == 0, "read/write-protect the mailbox page");
	/* RETRY of a load runs the instruction again: the same access comes
	 * back from the same vCPU at the same RIP. */
	while ((ev = next_pf(dom)) && ev->specific.pf.access != KVMI_PAGE_ACCESS_R) {
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev);
	}
	if (ev)
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_RETRY, NULL, 0);
	ev2 = ev ? next_pf_of(dom, ev->vcpu) : NULL;
	ok(ev && ev2 && ev2->common.arch.regs.rip == ev->common.arch.regs.rip &&
	   ev2->specific.pf.gpa == ev->specific.pf.gpa && ev2->specific.pf.access == KVMI_PAGE_ACCESS_R,
	   "RETRY of a pre-read event: the load runs again (same RIP, same access)");
	if (ev2) {
		kvmi_dom_reply_event(dom, ev2, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev2);
	}
	kvmi_event_free(ev);

	memset(&rpl, 0, sizeof(rpl));
	rpl.ctx_addr = MBOX_GPA + 8; /* identity map: GVA = GPA */
	rpl.ctx_size = 8;
	memcpy(rpl.ctx_data, &go, 8);
	/* Every read of the go word is served from ctx_data until each vCPU
	 * has had one (an emulator may read more than once). */
	for (int i = 0; i < 1000 && served_mask != (1u << NR_VCPUS) - 1; i++) {
		ev = next_pf(dom);
		if (!ev)
			break;
		/* vCPU 0 ends the VM soon after it sees GO (its assertion):
		 * serve the other vCPUs first. */
		if (ev->specific.pf.access == KVMI_PAGE_ACCESS_R && ev->specific.pf.gpa == MBOX_GPA + 8 &&
		    (ev->vcpu != 0 || (served_mask | 1u) == (1u << NR_VCPUS) - 1)) {
			reads++;
			served_mask |= 1u << ev->vcpu;
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, &rpl, sizeof(rpl));
		} else {
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		}
		kvmi_event_free(ev);
	}
	ok(served_mask == (1u << NR_VCPUS) - 1, "pre-read PF events for the go word from every vCPU (%u reads)", reads);
	ok(read_mbox(dom, &m) == 0 && m.go == 0, "memory still holds 0 in the go word");
}

static void g_page_access(struct itest_group *g)
{
	struct kvmi_dom *dom = g->dom;
	struct kvmi_event_msg *ev;
	struct kvmi_event_pf_reply rpl;
	uint64_t go = MBOX_GO, gpas[2] = { 0x310000, 0x311000 };
	uint8_t acc[2] = { KVMI_PAGE_ACCESS_R, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X };
	struct mbox m;
	int status;

	ok(wait_mbox(dom, &m) == 0, "page access: guest up");
	ok(kvmi_dom_check_event(dom, KVMI_EVENT_PF) == 0, "CHECK_EVENT PF: deliverable");
	ok(kvmi_dom_control_events(dom, 0, KVMI_EVENT_PF, true) == 0 &&
	   kvmi_dom_control_events(dom, 1, KVMI_EVENT_PF, true) == 0, "enable PF events on both vCPUs");
	ok(kvmi_dom_set_page_access(dom, gpas, acc, 2, 0) == 0, "two pages in one SET_PAGE_ACCESS");
	acc[0] = acc[1] = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X;
	ok(kvmi_dom_set_page_access(dom, gpas, acc, 2, 0) == 0, "... and forgotten again");
	pf_writes(dom);
	pf_forget(dom);
	pf_reads(dom);
	/* Both vCPUs leave their loops on the ctx_data value; vCPU 0 then
	 * asserts it saw an injected #UD, which this test did not inject:
	 * kvmi-vm reports the assertion (status 3) - proof the guest read GO.
	 * Events until then are answered (the go word from ctx_data). */
	memset(&rpl, 0, sizeof(rpl));
	rpl.ctx_addr = MBOX_GPA + 8;
	rpl.ctx_size = 8;
	memcpy(rpl.ctx_data, &go, 8);
	for (int i = 0; i < 10000 && itest_group_alive(g); i++) {
		ev = itest_next_event(dom, 1);
		if (ev) {
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE,
					     ev->event == KVMI_EVENT_PF ? (const void *)&rpl : NULL,
					     ev->event == KVMI_EVENT_PF ? sizeof(rpl) : 0);
			kvmi_event_free(ev);
		}
	}
	kvmi_dom_close(dom);
	g->dom = NULL;
	status = itest_group_wait(g, 30);
	ok(status == KVMI_VM_EXIT_GUEST_FAIL,
	   "the guest left its loop on the ctx_data value (exit status %d, 3 = its assertion)", status);
}

/* A CRASH reply stops the guest the way a triple fault would. */
static void g_crash(struct itest_group *g)
{
	struct kvmi_event_msg *ev;
	struct mbox m;
	int ret, status;

	ret = wait_mbox(g->dom, &m);
	if (!ret)
		ret = kvmi_dom_pause_vcpu(g->dom, 1, true);
	ev = ret ? NULL : itest_next_event(g->dom, 10000);
	ok(ev && ev->event == KVMI_EVENT_PAUSE_VCPU, "pause vCPU 1 for the CRASH test");
	if (ev) {
		ok(kvmi_dom_reply_event(g->dom, ev, KVMI_EVENT_ACTION_CRASH, NULL, 0) == 0, "reply CRASH");
		kvmi_event_free(ev);
	}
	status = itest_group_wait(g, 20);
	snprintf(what, sizeof(what), "CRASH stops the guest: the VMM's exit status 4 (got %d)", status);
	itest_qemu_race(status == KVMI_VM_EXIT_CRASH, vmm, what);
}

enum end { END_RUNNING, END_BY_GROUP };

static const struct group {
	const char *name;
	void (*run)(struct itest_group *g);
	enum end end;           /* END_RUNNING: the guest must still run after the checks */
} groups[] = {
	{ "handshake", g_handshake, END_RUNNING },
	{ "pause", g_pause, END_RUNNING },
	{ "pause-all", g_pause_all, END_RUNNING },
	{ "disconnect-paused", g_disconnect_paused, END_RUNNING },
	{ "shutdown", g_shutdown, END_BY_GROUP },
	{ "wrong-guest", g_wrong_guest, END_BY_GROUP },
	{ "policy", g_policy_and_key, END_BY_GROUP },
	{ "crash", g_crash, END_BY_GROUP },
	{ "page-access", g_page_access, END_BY_GROUP },
};

/* The listener's configuration and kvmi-vm's extra arguments of a group. */
static void group_setup(const struct group *d, struct kvmi_config *cfg, struct itest_vm_opts *o,
			const char *keyfile)
{
	static const char *const uuid[] = { "--uuid", GUEST_UUID, NULL };
	static const char *argv_policy[] = { "--introspector-key", NULL, "--allow-commands", "all,-write_physical",
					     "--allow-events", "all,-pause_vcpu", NULL };

	if (!strcmp(d->name, "handshake")) {
		o->name = "it-vm";
		o->extra = uuid;
		kvmi_config_expect_guest(cfg, "it-vm", GUEST_UUID);
	} else if (!strcmp(d->name, "wrong-guest")) {
		o->name = "it-vm";
		o->no_accept = true;
		kvmi_config_expect_guest(cfg, "some-other-vm", NULL);
	} else if (!strcmp(d->name, "policy")) {
		argv_policy[1] = keyfile;
		o->extra = argv_policy;
		o->no_accept = true;
		cfg->key = "wrong";
		cfg->key_len = 5;
		cfg->handshake_timeout_ms = 5000;
	}
}

static void run_group(const struct group *d, const char *keyfile)
{
	struct kvmi_config cfg = { .size = sizeof(cfg) };
	struct itest_vm_opts o = {
		.vmm = vmm, .elf = guest_elf, .timeout_s = "60", .vcpus = "2", .cfg = &cfg, .vsock = use_vsock,
	};
	struct itest_group g;

	group_setup(d, &cfg, &o, keyfile);
	if (!itest_group_start(&g, d->name, &o))
		return;
	d->run(&g);
	if (d->end == END_RUNNING)
		ok(itest_group_alive(&g), "%s: the guest still runs after the checks", d->name);
	itest_group_end(&g);
}

int main(int argc, char **argv)
{
	char keyfile[256];
	FILE *f;
	int err;

	if (argc != 3 && !(argc == 4 && !strcmp(argv[3], "vsock"))) {
		fprintf(stderr, "usage: %s KVMI_VM GUEST_DIR [vsock]\n", argv[0]);
		return ITEST_EXIT_USAGE;
	}
	vmm = argv[1];
	guest_dir = argv[2];
	use_vsock = argc == 4;
	snprintf(guest_elf, sizeof(guest_elf), "%s/introspect.elf", guest_dir);
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("1..0 # SKIP no usable /dev/kvm\n");
		return ITEST_EXIT_PASS;
	}
	err = itest_init("test_introspect");
	if (!err && !itest_path(keyfile, sizeof(keyfile), "introspect.key"))
		err = -ENAMETOOLONG;
	f = err ? NULL : fopen(keyfile, "w");
	if (f && fputs("s3cret", f) < 0)
		err = -EIO;
	if (f && fclose(f) && !err)
		err = -errno;
	if (!f || err) {
		printf("1..0 # SKIP no scratch directory or key file: %s\n", strerror(err ? -err : errno));
		return ITEST_EXIT_SETUP;
	}
	printf("# transport %s\n", use_vsock ? "vsock" : "unix");
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		run_group(&groups[i], keyfile);
	return itest_done();
}
