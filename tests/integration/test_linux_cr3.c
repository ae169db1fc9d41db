/* SPDX-License-Identifier: MIT */
/*
 * CR3 events on a real Linux guest (issue #6, the part that needs nested
 * paging off): kvmi-vm boots the box's Debian kernel and busybox initramfs
 * and this test, as the introspection tool, runs the flow a Bitdefender-style
 * tool runs when it attaches to a running guest:
 *
 *   - pause every vCPU, enable CR3 + CR4 events (CONTROL_CR) and MSR_STAR
 *     write events (CONTROL_MSR) on each, plus PF events, then resume;
 *   - answer every CR event with CONTINUE and new_val = the written value,
 *     every MSR event likewise; collect the CR3 values the guest switches to;
 *   - at the first CR3 switch the kernel proper makes (the decompressor's
 *     come first), with the vCPU held in its CR3 event, read its CR3 and
 *     write-protect the 20 guest-physical pages starting at the page-table
 *     page it points to (the kernel's top-level page table and what follows
 *     it: the kernel writes some of them while it boots);
 *   - answer each PF event by lifting the protection of that one page
 *     (SET_PAGE_ACCESS rwx) and replying RETRY.
 *
 * The guest must keep booting to its marker and reset; the CR3 events must
 * name more than one address space, chain (each event's old value is the
 * previous new one), and the PF events must hit the protected pages only.
 *
 * Box only: needs root, kvm_amd (or kvm_intel) with nested paging off
 * (npt=0 / ept=0), and kvmi-vm's BPF hooks (tests/kvmbox/build-box.sh runs
 * it after reloading kvm_amd with npt=0).  Skips elsewhere.
 *
 * usage: test_linux_cr3 KVMI_VM LINUX_DIR      (TAP)
 *   KVMI_VM is kvmi-vm, or kvmi-qemu (then Debian's qemu-system-x86_64 runs
 *   the guest with our library: the distro box's npt=0 pass)
 *   LINUX_DIR holds vmlinuz and guest-initrd.gz (build-box.sh's /kvmi/linux)
 * Environment: KVMI_LINUX_CR3_TIMEOUT (s, default 400): kvmi-vm's --timeout.
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

#define MSR_STAR        0xc0000081u
#define KERNEL_CS       0x10ull         /* Linux x86-64 __KERNEL_CS, STAR[47:32] */
#define GUEST_MARKER    "KVMI-LINUX-GUEST-OK"
#define CR3_ADDR_MASK   0x000ffffffffff000ull
#define PROTECT_PAGES   20
#define KERNEL_TEXT     0xffffffff80000000ull   /* x86-64 kernel text mapping */
#define MAX_VCPUS       8
#define MAX_CR3         4096            /* distinct values recorded */

static struct itest_linux lt;           /* arguments, socket, timeout */


static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* What the tool saw. */
struct seen {
	unsigned vcpus;                         /* paused by the pause-all */
	uint64_t pause_cr3[MAX_VCPUS];          /* CR3 while paused */
	uint64_t pause_star[MAX_VCPUS];
	uint64_t pause_rip[MAX_VCPUS];
	uint64_t last_cr3[MAX_VCPUS];           /* new value of the last CR3 event */
	unsigned cr3_events, cr3_broken_chain, cr4_events, cr_other;
	uint64_t cr3[MAX_CR3];
	unsigned ncr3;                          /* distinct values in cr3[] */
	unsigned ncr3_at_protect;               /* ... when the protection went on */
	unsigned star_events, star_bad;
	uint64_t star_value;
	unsigned pf_events, pf_outside, pf_not_write, pf_lifted_twice;
	uint64_t pf_first_gpa;
	unsigned other_events, reply_errors;
	/* the write protection */
	bool protected_;
	unsigned prot_event;                    /* in the CR3 event with this number */
	int protect_err;
	uint64_t prot_base, prot_cr3_event, prot_cr3_sregs, prot_rip;
	bool prot_page_on[PROTECT_PAGES];
	unsigned prot_lifted, lift_errors;
};

static void note_cr3(struct seen *s, uint64_t v)
{
	for (unsigned i = 0; i < s->ncr3; i++)
		if (s->cr3[i] == v)
			return;
	if (s->ncr3 < MAX_CR3)
		s->cr3[s->ncr3++] = v;
}

static void reply(struct kvmi_dom *dom, struct seen *s, const struct kvmi_event_msg *ev, uint8_t action,
		  const void *rpl, size_t size)
{
	if (kvmi_dom_reply_event(dom, ev, action, rpl, size))
		s->reply_errors++;
}

/* With the vCPU held in its CR3 event: read CR3 back and write-protect
 * PROTECT_PAGES pages from its page-table page on. */
static void protect_page_tables(struct kvmi_dom *dom, struct seen *s, const struct kvmi_event_msg *ev)
{
	struct kvmi_x86_sregs sregs;
	struct kvmi_x86_regs regs;
	uint64_t gpa[PROTECT_PAGES];
	uint8_t acc[PROTECT_PAGES];
	int err;

	s->protected_ = true;
	s->ncr3_at_protect = s->ncr3;
	s->prot_cr3_event = ev->specific.cr.new_value;
	err = kvmi_dom_get_registers(dom, ev->vcpu, &regs, &sregs, NULL, 0, NULL);
	if (err) {
		s->protect_err = err;
		return;
	}
	s->prot_cr3_sregs = sregs.cr3;
	s->prot_rip = regs.rip;
	s->prot_base = sregs.cr3 & CR3_ADDR_MASK;
	for (unsigned i = 0; i < PROTECT_PAGES; i++) {
		gpa[i] = s->prot_base + 4096ull * i;
		acc[i] = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X;
	}
	s->protect_err = kvmi_dom_set_page_access(dom, gpa, acc, PROTECT_PAGES, 0);
	if (!s->protect_err)
		for (unsigned i = 0; i < PROTECT_PAGES; i++)
			s->prot_page_on[i] = true;
}

static void on_cr(struct kvmi_dom *dom, struct seen *s, const struct kvmi_event_msg *ev)
{
	const struct kvmi_event_cr *cr = &ev->specific.cr;
	struct kvmi_event_cr_reply rpl = { .new_val = cr->new_value };
	unsigned v = ev->vcpu < MAX_VCPUS ? ev->vcpu : 0;

	if (cr->cr == 3) {
		if (s->cr3_events < 3 || cr->old_value != s->last_cr3[v])
			diag("CR3 event %u on vCPU %u: %#llx -> %#llx (rip %#llx)", s->cr3_events + 1, ev->vcpu,
			     (unsigned long long)cr->old_value, (unsigned long long)cr->new_value,
			     (unsigned long long)ev->common.arch.regs.rip);
		if (cr->old_value != s->last_cr3[v])
			s->cr3_broken_chain++;
		s->last_cr3[v] = cr->new_value;
		s->cr3_events++;
		note_cr3(s, cr->new_value);
		/* Where the protection goes depends on what CR3 then is, not
		 * on how early the tool attached: the kernel proper's first
		 * switch is to its own top-level page table. */
		if (!s->protected_ && ev->common.arch.regs.rip >= KERNEL_TEXT) {
			s->prot_event = s->cr3_events;
			protect_page_tables(dom, s, ev);
		}
	} else if (cr->cr == 4) {
		s->cr4_events++;
	} else {
		s->cr_other++;
	}
	reply(dom, s, ev, KVMI_EVENT_ACTION_CONTINUE, &rpl, sizeof(rpl));
}

static void on_msr(struct kvmi_dom *dom, struct seen *s, const struct kvmi_event_msg *ev)
{
	const struct kvmi_event_msr *m = &ev->specific.msr;
	struct kvmi_event_msr_reply rpl = { .new_val = m->new_value };

	if (m->msr == MSR_STAR) {
		if (!s->star_events)
			diag("MSR_STAR event on vCPU %u: %#llx -> %#llx", ev->vcpu, (unsigned long long)m->old_value,
			     (unsigned long long)m->new_value);
		s->star_events++;
		s->star_value = m->new_value;
	} else {
		s->star_bad++;
	}
	reply(dom, s, ev, KVMI_EVENT_ACTION_CONTINUE, &rpl, sizeof(rpl));
}

/* A write to a protected page: lift that page's protection, RETRY. */
static void on_pf(struct kvmi_dom *dom, struct seen *s, const struct kvmi_event_msg *ev)
{
	const struct kvmi_event_pf *pf = &ev->specific.pf;
	uint64_t page = pf->gpa & ~0xfffull;
	uint8_t rwx = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X;

	if (!s->pf_events)
		s->pf_first_gpa = pf->gpa;
	s->pf_events++;
	if (!(pf->access & KVMI_PAGE_ACCESS_W))
		s->pf_not_write++;
	if (!s->protected_ || page < s->prot_base || page >= s->prot_base + PROTECT_PAGES * 4096ull) {
		s->pf_outside++;
		diag("PF event outside the protected pages: gpa %#llx access %u", (unsigned long long)pf->gpa,
		     pf->access);
	} else {
		unsigned i = (unsigned)((page - s->prot_base) / 4096);

		if (!s->prot_page_on[i])
			s->pf_lifted_twice++;
		s->prot_page_on[i] = false;
		s->prot_lifted++;
	}
	if (s->pf_events <= 5)
		diag("PF event %u on vCPU %u: gpa %#llx access %u rip %#llx cr3 %#llx", s->pf_events, ev->vcpu,
		     (unsigned long long)pf->gpa, pf->access, (unsigned long long)ev->common.arch.regs.rip,
		     (unsigned long long)ev->common.arch.sregs.cr3);
	if (kvmi_dom_set_page_access(dom, &page, &rwx, 1, 0))
		s->lift_errors++;
	reply(dom, s, ev, KVMI_EVENT_ACTION_RETRY, NULL, 0);
}

/* Pause-all and, with every vCPU held, enable the events on each. */
static int attach(struct kvmi_dom *dom, struct seen *s)
{
	struct kvmi_event_msg *held[MAX_VCPUS] = { 0 };
	unsigned n = 0, got = 0, enabled = 0;
	int err;

	err = kvmi_dom_pause_all(dom, &n);
	ok(err == 0 && n >= 1 && n <= MAX_VCPUS, "pause-all (%d; %u vCPUs)", err, n);
	if (err || n < 1 || n > MAX_VCPUS)
		return -1;
	s->vcpus = n;
	while (got < n) {
		struct kvmi_event_msg *ev = NULL;

		if (kvmi_dom_next_event(dom, 10000, &ev) || !ev)
			break;
		if (ev->event != KVMI_EVENT_PAUSE_VCPU || ev->vcpu >= n || held[ev->vcpu]) {
			diag("unexpected event %s on vCPU %u while pausing", kvmi_event_name(ev->event), ev->vcpu);
			s->other_events++;
			if (kvmi_event_needs_reply(ev))
				reply(dom, s, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			kvmi_event_free(ev);
			continue;
		}
		held[ev->vcpu] = ev;
		got++;
	}
	ok(got == n, "one PAUSE_VCPU event from each vCPU (%u of %u)", got, n);
	for (unsigned v = 0; v < n; v++) {
		if (!held[v])
			continue;
		s->pause_cr3[v] = held[v]->common.arch.sregs.cr3;
		s->pause_star[v] = held[v]->common.arch.msrs.star;
		s->pause_rip[v] = held[v]->common.arch.regs.rip;
		s->last_cr3[v] = s->pause_cr3[v];
		diag("vCPU %u paused at rip %#llx, cr0 %#llx, cr3 %#llx, cr4 %#llx, STAR %#llx", v,
		     (unsigned long long)s->pause_rip[v], (unsigned long long)held[v]->common.arch.sregs.cr0,
		     (unsigned long long)s->pause_cr3[v], (unsigned long long)held[v]->common.arch.sregs.cr4,
		     (unsigned long long)s->pause_star[v]);
		if (kvmi_dom_control_cr(dom, (uint16_t)v, 3, true) == 0 &&
		    kvmi_dom_control_cr(dom, (uint16_t)v, 4, true) == 0 &&
		    kvmi_dom_control_events(dom, (uint16_t)v, KVMI_EVENT_CR, true) == 0 &&
		    kvmi_dom_control_msr(dom, (uint16_t)v, MSR_STAR, true) == 0 &&
		    kvmi_dom_control_events(dom, (uint16_t)v, KVMI_EVENT_MSR, true) == 0 &&
		    kvmi_dom_control_events(dom, (uint16_t)v, KVMI_EVENT_PF, true) == 0)
			enabled++;
	}
	ok(enabled == n, "CONTROL_CR(3), CONTROL_CR(4), CONTROL_MSR(MSR_STAR) and CR/MSR/PF events on each paused vCPU "
	   "(%u of %u)", enabled, n);
	for (unsigned v = 0; v < n; v++) {
		if (held[v]) {
			reply(dom, s, held[v], KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			kvmi_event_free(held[v]);
		}
	}
	return got == n && enabled == n ? 0 : -1;
}

/* Serves events until kvmi-vm ends (or the deadline); closes dom and
 * returns kvmi-vm's exit status. */
static int serve(struct kvmi_dom *dom, struct seen *s, pid_t pid, double deadline)
{
	for (;;) {
		struct kvmi_event_msg *ev = NULL;
		int st, err;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			kvmi_dom_close(dom);
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (now_s() > deadline)
			break;
		err = kvmi_dom_next_event(dom, 200, &ev);
		if (err == -ETIMEDOUT || (!err && !ev))
			continue;
		if (err)
			break;          /* the connection ended: kvmi-vm is going */
		switch (ev->event) {
		case KVMI_EVENT_CR:
			on_cr(dom, s, ev);
			break;
		case KVMI_EVENT_MSR:
			on_msr(dom, s, ev);
			break;
		case KVMI_EVENT_PF:
			on_pf(dom, s, ev);
			break;
		default:
			s->other_events++;
			diag("unexpected event %s on vCPU %u", kvmi_event_name(ev->event), ev->vcpu);
			if (kvmi_event_needs_reply(ev))
				reply(dom, s, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			break;
		}
		kvmi_event_free(ev);
	}
	kvmi_dom_close(dom);
	return itest_wait(pid, deadline > now_s() ? (int)(deadline - now_s()) + 5 : 5);
}

static void test_linux(unsigned timeout_s)
{
	char logbuf[256];
	const char *log = itest_file(logbuf, sizeof(logbuf), "test_linux_cr3.log");
	struct kvmi_listener *l = NULL;
	struct kvmi_dom *dom = NULL;
	struct seen *s = calloc(1, sizeof(*s));
	bool early = true;
	double t0, t1;
	pid_t pid;
	int ret, status;

	if (!s) {
		ok(0, "memory");
		return;
	}
	ret = kvmi_listener_open(lt.addr, NULL, &l);
	ok(ret == 0, "listen on %s", lt.addr);
	if (ret) {
		free(s);
		return;
	}
	t0 = now_s();
	pid = itest_linux_start(&lt, log);
	ret = kvmi_listener_accept(l, 60000, &dom);
	ok(ret == 0 && dom, "the VMM (Linux guest, %s vCPUs) connects (%d)", ITEST_LINUX_VCPUS, ret);
	if (ret || !dom) {
		status = itest_wait(pid, 5);
		itest_show_log(log, NULL, 40);
		goto out;
	}
	itest_show_log(log, "KVM hooks", 5);
	ok(kvmi_dom_check_event(dom, KVMI_EVENT_CR) == 0 && kvmi_dom_check_command(dom, KVMI_CONTROL_CR) == 0,
	   "CR events deliverable");
	ok(kvmi_dom_check_command(dom, KVMI_CONTROL_MSR) == 0, "CONTROL_MSR available");
	if (attach(dom, s)) {
		kvmi_dom_close(dom);
		status = itest_wait(pid, (int)timeout_s + 10);
		itest_show_log(log, NULL, 40);
		goto out;
	}
	status = serve(dom, s, pid, t0 + timeout_s + 30);
	dom = NULL;
	t1 = now_s();

	/* Paused before the kernel proper set STAR up (the decompressor or
	 * early start-up): then its syscall set-up and CR4 set-up must show. */
	for (unsigned v = 0; v < s->vcpus; v++)
		early = early && s->pause_star[v] == 0;
	diag("kvmi-vm ran %.1f s; CR3 events %u (%u distinct values), CR4 events %u, MSR_STAR events %u, "
	     "PF events %u", t1 - t0, s->cr3_events, s->ncr3, s->cr4_events, s->star_events, s->pf_events);

	ok(s->ncr3 > 1, "CR3 events as address spaces switch: %u events, %u distinct CR3 values", s->cr3_events,
	   s->ncr3);
	/* The first few are the decompressor's and the kernel's own page
	 * tables; what comes later are the guest's processes. */
	ok(s->protected_ && s->ncr3 - s->ncr3_at_protect > 1,
	   "more than one new address space after CR3 event %u (the guest's processes): %u",
	   s->prot_event, s->protected_ ? s->ncr3 - s->ncr3_at_protect : 0);
	ok(s->cr3_events > 0 && s->cr3_broken_chain == 0,
	   "each CR3 event's old value is the CR3 of the pause or of the vCPU's previous CR3 event (%u breaks)",
	   s->cr3_broken_chain);
	ok(s->cr_other == 0, "no events for CRs nobody controlled (%u)", s->cr_other);
	if (early) {
		ok(s->cr4_events > 0, "CR4 events while the kernel sets CR4 up (%u)", s->cr4_events);
		ok(s->star_events >= 1 && ((s->star_value >> 32) & 0xffff) == KERNEL_CS,
		   "MSR_STAR event: the kernel's syscall set-up (%u events, STAR %#llx)", s->star_events,
		   (unsigned long long)s->star_value);
	} else {
		ok(1, "CR4 events (%u) # SKIP attached after the kernel set STAR up", s->cr4_events);
		ok(1, "MSR_STAR event (%u) # SKIP attached after the kernel set STAR up", s->star_events);
	}
	ok(s->star_bad == 0, "no MSR events for MSRs nobody controlled (%u)", s->star_bad);
	ok(s->protected_ && s->protect_err == 0 && s->prot_cr3_sregs == s->prot_cr3_event,
	   "in CR3 event %u (rip %#llx): GET_REGISTERS shows the new CR3 (%#llx, event %#llx); "
	   "write-protect %u pages from %#llx (%d)",
	   s->prot_event, (unsigned long long)s->prot_rip, (unsigned long long)s->prot_cr3_sregs,
	   (unsigned long long)s->prot_cr3_event, PROTECT_PAGES, (unsigned long long)s->prot_base, s->protect_err);
	ok(s->pf_events > 0 && s->pf_outside == 0 && s->pf_not_write == 0,
	   "PF events on the write-protected pages: %u (first at gpa %#llx; %u outside, %u not writes)",
	   s->pf_events, (unsigned long long)s->pf_first_gpa, s->pf_outside, s->pf_not_write);
	ok(s->pf_lifted_twice == 0 && s->lift_errors == 0,
	   "lifting a page's protection and replying RETRY ends its events (%u pages lifted, %u events after a lift, "
	   "%u SET_PAGE_ACCESS errors)", s->prot_lifted, s->pf_lifted_twice, s->lift_errors);
	ok(s->other_events == 0 && s->reply_errors == 0, "no stray events (%u), every reply sent (%u errors)",
	   s->other_events, s->reply_errors);
	ok(itest_log_has(log, GUEST_MARKER), "the guest keeps booting to its marker (%s) under introspection (%.1f s)",
	   GUEST_MARKER, t1 - t0);
	itest_show_log(log, "reached /init", 1);
out:
	itest_linux_end_run(status, log, l);
	free(s);
}

int main(int argc, char **argv)
{
	static const struct itest_linux_test test = {
		"test_linux_cr3", "lcr3.sock", "KVMI_LINUX_CR3_TIMEOUT", 400, 0,
	};
	int rc = itest_linux_setup(&lt, argc, argv, &test);

	if (rc >= 0)
		return rc;
	diag("nested paging off; kvmi-vm --timeout %u", lt.timeout_s);
	test_linux(lt.timeout_s);
	return itest_linux_done(&lt);
}
