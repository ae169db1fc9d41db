/* SPDX-License-Identifier: MIT */
/*
 * CR, XSETBV and HYPERCALL events through BPF on KVM's hooks (issue #6),
 * end to end: kvmi-vm runs the "cr_events" payload and this test, as the
 * introspection tool, enables the events, vetoes and rewrites CR writes and
 * checks what the guest read back, checks the agent hypercall's registers
 * and RAX, and then runs kvmi-vm once more without the capabilities BPF
 * needs: every such event must then be refused and the guest run as before.
 *
 * Meant for the real-KVM box (run as root there).  What the host offers is
 * taken from the host: with kvm_amd/kvm_intel loaded, CR0/CR4, XSETBV (with
 * kvm.force_emulation_prefix=1 on hosts that do not intercept XSETBV) and
 * HYPERCALL must be available, CR3 exactly when nested paging is off.
 * Elsewhere the test only checks that the VMM refuses what it cannot do.
 *
 * usage: test_cr_events KVMI_VM GUEST_DIR      (TAP)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

#include "itest.h"

#define MBOX_GPA   0x300000ull
#define PML4_COPY  0x301000ull
#define MBOX_MAGIC 0x4b564d4943524556ull

#define STEP_CR0     0x01
#define STEP_CR4     0x02
#define STEP_CR3     0x04
#define STEP_XSETBV  0x08
#define STEP_FEP     0x10
#define STEP_HC      0x20

#define CR0_WP  (1ull << 16)
#define CR4_DE  (1ull << 3)
#define CR4_PCE (1ull << 8)
#define KVM_ENOSYS_RAX 0xfffffffffffffc18ull  /* -1000 */

struct mbox {
	uint64_t magic, go, steps, phase;
	uint64_t cr0[3], cr4[2], cr3[3], xcr0[2];
	uint64_t fep_ud, hc[2], done;
};

static const char *vmm, *guest_dir;
static char sock_path[256], addr[280];


/* Drops what loading BPF programs and attaching kprobes need, from the
 * bounding set too, so that root's exec does not get them back. */
static void drop_bpf_caps(void)
{
	static const int caps[] = { 21 /* SYS_ADMIN */, 38 /* PERFMON */, 39 /* BPF */ };

	for (unsigned i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		prctl(PR_CAPBSET_DROP, caps[i], 0, 0, 0);
}

/* kvmi-vm, or kvmi-qemu with stock QEMU (the distro box), on cr_events.elf. */
static pid_t start_vmm(const char *log, bool unprivileged)
{
	char guest[512];
	pid_t pid;

	snprintf(guest, sizeof(guest), "%s/cr_events.elf", guest_dir);
	itest_child_hook = unprivileged ? drop_bpf_caps : NULL;
	pid = itest_start_guest(log, vmm, guest, addr, "60", "1", (const char *)NULL);
	itest_child_hook = NULL;
	return pid;
}

static int read_mbox(struct kvmi_dom *dom, struct mbox *m)
{
	return kvmi_dom_read_physical(dom, MBOX_GPA, m, sizeof(*m));
}

static int write_word(struct kvmi_dom *dom, size_t off, uint64_t v)
{
	return kvmi_dom_write_physical(dom, MBOX_GPA + off, &v, sizeof(v));
}

static int wait_mbox(struct kvmi_dom *dom, struct mbox *m, size_t off, uint64_t want)
{
	for (int i = 0; i < 500; i++) {
		uint64_t v;

		if (read_mbox(dom, m) == 0) {
			memcpy(&v, (char *)m + off, sizeof(v));
			if (v == want)
				return 0;
		}
		usleep(20000);
	}
	return -ETIMEDOUT;
}

/* What the tool saw. */
struct seen {
	unsigned cr0, cr3, cr4, xsetbv, hc, other;
	struct kvmi_event_cr cr0_ev[3], cr3_ev[2], cr4_ev[4];
	struct kvmi_x86_regs hc_regs;
};

/* Answers events until the guest reaches phase 1: the second CR0 write is
 * vetoed, the first CR4 write that sets PCE is rewritten to set DE. */
static void serve_events(struct kvmi_dom *dom, struct seen *s)
{
	struct timespec t0, t;
	struct mbox m;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct kvmi_event_msg *ev = NULL;
		struct kvmi_event_cr_reply rpl;

		if (kvmi_dom_next_event(dom, 200, &ev) || !ev) {
			if (read_mbox(dom, &m) == 0 && m.phase == 1)
				return;
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (t.tv_sec - t0.tv_sec > 30)
				return;
			continue;
		}
		switch (ev->event) {
		case KVMI_EVENT_CR:
			rpl.new_val = ev->specific.cr.new_value;
			if (ev->specific.cr.cr == 0) {
				if (s->cr0 < 3)
					s->cr0_ev[s->cr0] = ev->specific.cr;
				if (s->cr0 == 1)
					rpl.new_val = ev->specific.cr.old_value;          /* veto */
				s->cr0++;
			} else if (ev->specific.cr.cr == 4) {
				if (s->cr4 < 4)
					s->cr4_ev[s->cr4] = ev->specific.cr;
				if ((ev->specific.cr.new_value & CR4_PCE) && !(ev->specific.cr.old_value & CR4_PCE))
					rpl.new_val = ev->specific.cr.old_value | CR4_DE; /* rewrite */
				s->cr4++;
			} else if (ev->specific.cr.cr == 3) {
				if (s->cr3 < 2)
					s->cr3_ev[s->cr3] = ev->specific.cr;
				s->cr3++;
			}
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, &rpl, sizeof(rpl));
			break;
		case KVMI_EVENT_XSETBV:
			s->xsetbv++;
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			break;
		case KVMI_EVENT_HYPERCALL:
			s->hc++;
			s->hc_regs = ev->common.arch.regs;
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			break;
		default:
			s->other++;
			if (kvmi_event_needs_reply(ev))
				kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			break;
		}
		kvmi_event_free(ev);
	}
}

static void test_events(bool expect, int npt)
{
	char logbuf[256];
	const char *log = itest_file(logbuf, sizeof(logbuf), "test_cr_events.log");
	struct kvmi_listener *l = NULL;
	struct kvmi_dom *dom = NULL;
	struct seen s;
	struct mbox m;
	bool cr3 = npt == 0, fep = itest_module_param("/sys/module/kvm/parameters/force_emulation_prefix") == 1;
	uint64_t steps = STEP_CR0 | STEP_CR4 | STEP_XSETBV | STEP_HC;
	pid_t pid;
	int ret, status;

	memset(&s, 0, sizeof(s));
	ret = kvmi_listener_open(addr, NULL, &l);
	ok(ret == 0, "listen on %s", addr);
	if (ret)
		return;
	pid = start_vmm(log, false);
	ret = kvmi_listener_accept(l, 30000, &dom);
	ok(ret == 0 && dom, "the VMM connects (%d)", ret);
	if (ret)
		goto out;
	itest_show_log(log, "KVM hooks", 0);
	itest_show_log(log, "events unavailable", 0);
	if (!expect) {
		/* Not a real KVM: whatever the host offers must be reported
		 * consistently; nothing more to drive (no hypercall here). */
		ret = kvmi_dom_check_event(dom, KVMI_EVENT_CR);
		ok(ret == 0 || ret == -EOPNOTSUPP, "CHECK_EVENT CR answers (%d)", ret);
		ok(ret == 0 || kvmi_dom_control_cr(dom, 0, 0, true) == -EOPNOTSUPP,
		   "CONTROL_CR(0) refused when CR events are not deliverable");
		write_word(dom, offsetof(struct mbox, go), 3);
		goto out;
	}
	ok(kvmi_dom_check_command(dom, KVMI_CONTROL_CR) == 0, "CHECK_COMMAND CONTROL_CR: available");
	ok(kvmi_dom_check_event(dom, KVMI_EVENT_CR) == 0, "CHECK_EVENT CR: deliverable");
	ok(kvmi_dom_check_event(dom, KVMI_EVENT_HYPERCALL) == 0, "CHECK_EVENT HYPERCALL: deliverable");
	ret = kvmi_dom_check_event(dom, KVMI_EVENT_XSETBV);
	ok(fep ? ret == 0 : (ret == 0 || ret == -EOPNOTSUPP),
	   "CHECK_EVENT XSETBV: %s (%d; force_emulation_prefix=%d)", ret ? "refused" : "deliverable", ret, fep);
	if (ret == 0)
		steps |= fep ? STEP_FEP : 0;
	else
		steps &= ~(uint64_t)STEP_XSETBV;
	ok(kvmi_dom_check_event(dom, KVMI_EVENT_DESCRIPTOR) == -EOPNOTSUPP, "CHECK_EVENT DESCRIPTOR: still refused");
	ok(wait_mbox(dom, &m, offsetof(struct mbox, magic), MBOX_MAGIC) == 0, "the guest publishes its mailbox");

	ok(kvmi_dom_control_cr(dom, 0, 0, true) == 0, "CONTROL_CR(0) on");
	ok(kvmi_dom_control_cr(dom, 0, 4, true) == 0, "CONTROL_CR(4) on");
	ret = kvmi_dom_control_cr(dom, 0, 3, true);
	ok(cr3 ? ret == 0 : ret == -EOPNOTSUPP, "CONTROL_CR(3): %s with npt=%d (%d)",
	   cr3 ? "available" : "refused", npt, ret);
	if (cr3 && ret == 0)
		steps |= STEP_CR3;
	ok(kvmi_dom_control_events(dom, 0, KVMI_EVENT_CR, true) == 0, "CONTROL_EVENTS CR on");
	ok(!(steps & STEP_XSETBV) || kvmi_dom_control_events(dom, 0, KVMI_EVENT_XSETBV, true) == 0,
	   "CONTROL_EVENTS XSETBV on");
	ok(kvmi_dom_control_events(dom, 0, KVMI_EVENT_HYPERCALL, true) == 0, "CONTROL_EVENTS HYPERCALL on");

	write_word(dom, offsetof(struct mbox, steps), steps);
	write_word(dom, offsetof(struct mbox, go), 1);
	serve_events(dom, &s);
	ok(read_mbox(dom, &m) == 0 && m.phase == 1, "the guest ran its writes while the tool answered (steps %#llx)",
	   (unsigned long long)steps);

	/* CR0.WP: allowed, vetoed, allowed. */
	ok(s.cr0 == 3, "three CR0 events (%u)", s.cr0);
	ok((s.cr0_ev[0].old_value & CR0_WP) && s.cr0_ev[0].new_value == (s.cr0_ev[0].old_value & ~CR0_WP),
	   "CR0 event 1: old %#llx new %#llx (WP cleared)", (unsigned long long)s.cr0_ev[0].old_value,
	   (unsigned long long)s.cr0_ev[0].new_value);
	ok(s.cr0_ev[1].old_value == s.cr0_ev[0].new_value && s.cr0_ev[1].new_value == (s.cr0_ev[1].old_value | CR0_WP),
	   "CR0 event 2: old %#llx new %#llx (WP set)", (unsigned long long)s.cr0_ev[1].old_value,
	   (unsigned long long)s.cr0_ev[1].new_value);
	ok(s.cr0_ev[2].old_value == s.cr0_ev[1].old_value, "CR0 event 3 starts from the vetoed value");
	ok(!(m.cr0[0] & CR0_WP) && !(m.cr0[1] & CR0_WP) && (m.cr0[2] & CR0_WP),
	   "the guest saw WP off, still off after the veto, on after the allowed write (%#llx %#llx %#llx)",
	   (unsigned long long)m.cr0[0], (unsigned long long)m.cr0[1], (unsigned long long)m.cr0[2]);
	/* CR4: PCE rewritten to DE, then DE cleared. */
	ok(s.cr4 >= 2 && (s.cr4_ev[0].new_value & CR4_PCE), "CR4 events: %u, the first sets PCE (old %#llx new %#llx)",
	   s.cr4, (unsigned long long)s.cr4_ev[0].old_value, (unsigned long long)s.cr4_ev[0].new_value);
	ok((m.cr4[0] & CR4_DE) && !(m.cr4[0] & CR4_PCE), "the guest sees the rewritten CR4: DE, no PCE (%#llx)",
	   (unsigned long long)m.cr4[0]);
	ok(s.cr4_ev[1].old_value == m.cr4[0] && !(m.cr4[1] & CR4_DE),
	   "CR4 event 2: old value = the rewritten one; the guest cleared DE (%#llx)", (unsigned long long)m.cr4[1]);
	if (steps & STEP_CR3) {
		ok(s.cr3 == 2 && s.cr3_ev[0].old_value == m.cr3[0] && s.cr3_ev[0].new_value == m.cr3[1] &&
		   (m.cr3[1] & ~0xfffull) == PML4_COPY && s.cr3_ev[1].new_value == m.cr3[0],
		   "CR3 events (npt=0): %#llx -> %#llx -> back (%u events)", (unsigned long long)s.cr3_ev[0].old_value,
		   (unsigned long long)s.cr3_ev[0].new_value, s.cr3);
	} else {
		ok(s.cr3 == 0, "no CR3 events while CR3 is not controlled (%u)", s.cr3);
	}
	if (steps & STEP_XSETBV)
		ok(s.xsetbv >= 1 && m.fep_ud == 0, "XSETBV events: %u (native write %s; XCR0 %#llx then %#llx)",
		   s.xsetbv, s.xsetbv >= 2 ? "intercepted" : "not intercepted by this host",
		   (unsigned long long)m.xcr0[0], (unsigned long long)m.xcr0[1]);
	/* The agent hypercall. */
	ok(s.hc == 1 && s.hc_regs.rax == 34 && s.hc_regs.rdi == 24 && s.hc_regs.rsi == 0 &&
	   s.hc_regs.rbx == 0x1234abcd,
	   "one HYPERCALL event with RAX=34 RDI=24 RSI=0 and the guest's RBX (rax %#llx rbx %#llx)",
	   (unsigned long long)s.hc_regs.rax, (unsigned long long)s.hc_regs.rbx);
	ok(m.hc[0] == 0, "the guest sees RAX = 0 after the delivered event (%#llx)", (unsigned long long)m.hc[0]);
	ok(kvmi_dom_control_events(dom, 0, KVMI_EVENT_HYPERCALL, false) == 0, "CONTROL_EVENTS HYPERCALL off");
	write_word(dom, offsetof(struct mbox, go), 2);
	ret = wait_mbox(dom, &m, offsetof(struct mbox, done), 1);
	ok(ret == 0 && m.hc[1] == KVM_ENOSYS_RAX,
	   "nobody listens: the guest sees -KVM_ENOSYS (%#llx)", (unsigned long long)m.hc[1]);
	ok(kvmi_dom_pending_events(dom) == 0 && s.other == 0, "no stray events (%u)", s.other);
	write_word(dom, offsetof(struct mbox, go), 3);
out:
	if (dom)
		kvmi_dom_close(dom);
	status = itest_wait(pid, 30);
	ok(status == KVMI_VM_EXIT_OK, "the VMM ends with status 0 (got %d)", status);
	if (status != 0)
		itest_show_log(log, NULL, 0);
	kvmi_listener_close(l);
}

/* Without CAP_SYS_ADMIN / CAP_BPF / CAP_PERFMON: refused, the guest runs. */
static void test_unprivileged(void)
{
	char logbuf[256];
	const char *log = itest_file(logbuf, sizeof(logbuf), "test_cr_events-nopriv.log");
	struct kvmi_listener *l = NULL;
	struct kvmi_dom *dom = NULL;
	struct mbox m;
	pid_t pid;
	int ret, status;

	ret = kvmi_listener_open(addr, NULL, &l);
	if (ret) {
		ok(0, "listen for the unprivileged run (%d)", ret);
		return;
	}
	pid = start_vmm(log, true);
	ret = kvmi_listener_accept(l, 30000, &dom);
	ok(ret == 0 && dom, "unprivileged VMM connects (%d)", ret);
	if (ret)
		goto out;
	itest_show_log(log, "events unavailable", 0);
	ok(kvmi_dom_check_event(dom, KVMI_EVENT_CR) == -EOPNOTSUPP &&
	   kvmi_dom_check_event(dom, KVMI_EVENT_XSETBV) == -EOPNOTSUPP &&
	   kvmi_dom_check_event(dom, KVMI_EVENT_HYPERCALL) == -EOPNOTSUPP,
	   "unprivileged: CHECK_EVENT CR/XSETBV/HYPERCALL refused");
	ok(kvmi_dom_check_command(dom, KVMI_CONTROL_CR) == -EOPNOTSUPP, "unprivileged: CHECK_COMMAND CONTROL_CR refused");
	ok(kvmi_dom_control_cr(dom, 0, 0, true) == -EOPNOTSUPP &&
	   kvmi_dom_control_events(dom, 0, KVMI_EVENT_HYPERCALL, true) == -EOPNOTSUPP,
	   "unprivileged: CONTROL_CR and CONTROL_EVENTS refused");
	ret = wait_mbox(dom, &m, offsetof(struct mbox, magic), MBOX_MAGIC);
	write_word(dom, offsetof(struct mbox, steps), STEP_CR0 | STEP_CR4 | STEP_HC);
	write_word(dom, offsetof(struct mbox, go), 2);
	if (ret == 0)
		ret = wait_mbox(dom, &m, offsetof(struct mbox, done), 1);
	ok(ret == 0 && (m.cr0[2] & CR0_WP) &&
	   (m.cr4[0] & CR4_PCE) && m.hc[0] == KVM_ENOSYS_RAX && m.hc[1] == KVM_ENOSYS_RAX,
	   "unprivileged: the guest runs as before (its writes stand, hypercalls answer -KVM_ENOSYS: %#llx %#llx;"
	   " cr0 %#llx cr4 %#llx)", (unsigned long long)m.hc[0], (unsigned long long)m.hc[1],
	   (unsigned long long)m.cr0[2], (unsigned long long)m.cr4[0]);
	write_word(dom, offsetof(struct mbox, go), 3);
out:
	if (dom)
		kvmi_dom_close(dom);
	status = itest_wait(pid, 30);
	ok(status == KVMI_VM_EXIT_OK, "unprivileged VMM ends with status 0 (got %d)", status);
	if (status != 0)
		itest_show_log(log, NULL, 0);
	kvmi_listener_close(l);
}

int main(int argc, char **argv)
{
	int npt;
	bool real_kvm;

	if (argc != 3) {
		fprintf(stderr, "usage: %s KVMI_VM GUEST_DIR\n", argv[0]);
		return ITEST_EXIT_USAGE;
	}
	vmm = argv[1];
	guest_dir = argv[2];
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("1..0 # SKIP no usable /dev/kvm\n");
		return ITEST_EXIT_PASS;
	}
	real_kvm = access("/sys/module/kvm_amd", F_OK) == 0 || access("/sys/module/kvm_intel", F_OK) == 0;
	if (!real_kvm || getuid() != 0) {
		/* The payload's hypercall never returns on some software
		 * hypervisors; this test belongs in the real-KVM box. */
		printf("1..0 # SKIP needs root and kvm_amd/kvm_intel (the real-KVM box)\n");
		return ITEST_EXIT_PASS;
	}
	npt = itest_module_param("/sys/module/kvm_amd/parameters/npt");
	if (npt < 0)
		npt = itest_module_param("/sys/module/kvm_intel/parameters/ept");
	if (itest_init("test_cr_events") || !itest_path(sock_path, sizeof(sock_path), "cr.sock")) {
		printf("1..0 # SKIP no scratch directory\n");
		return ITEST_EXIT_SETUP;
	}
	snprintf(addr, sizeof(addr), "unix:%s", sock_path);
	diag("nested paging %d, force_emulation_prefix %d", npt,
	     itest_module_param("/sys/module/kvm/parameters/force_emulation_prefix"));
	test_events(true, npt);
	test_unprivileged();
	unlink(sock_path);
	return itest_done();
}
