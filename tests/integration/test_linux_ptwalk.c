/* SPDX-License-Identifier: MIT */
/*
 * Write-protected guest page tables under nested paging (issue #14): kvmi-vm
 * boots the box's Debian kernel (2 vCPUs, `quiet`) with kvm_amd npt=1 and
 * this test, as the tool, does what process-following tools do:
 *
 *   - pause every vCPU (repeatedly, until the kernel runs on its own page
 *     table init_top_pgt, found in the box's /proc/kallsyms: the guest runs
 *     the box's kernel image with nokaslr);
 *   - enable PF events, and write-protect (r-x) the page-table pages reached
 *     from each vCPU's CR3: the PML4, every PDPT and page directory, and
 *     page tables up to PROTECT_MAX pages (at least PROTECT_MIN); resume;
 *   - a PF event with KVMI_EVENT_PF_FLAG_PAGE_WALK (the guest's page walker
 *     needs the page): on even-numbered pages lift the protection and reply
 *     RETRY, on odd ones reply CONTINUE, which makes kvmi-vm lift it;
 *   - a PF event without the flag (a store by the guest): CONTINUE, the page
 *     stays protected.
 *
 * The guest must reach its marker; every PF event must be on a protected
 * page; no event may come for a page after its lift (CONTINUE included);
 * and no store may reach a protected page without its event: the tool keeps
 * a copy of each protected page, compares it at every event and while idle,
 * and takes a new copy after each store it let through (at the next event
 * of that vCPU or while idle: the store lands after the reply, at a moment
 * the tool does not see; a second store to that page in between would go
 * unnoticed).
 *
 * KVMI_PTWALK (passed on to kvmi-vm) selects what is expected: unset, the
 * page-walk hook; "off", no hook: CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK) and
 * SET_PAGE_ACCESS answer -EOPNOTSUPP and the guest boots unprotected;
 * "unguarded" (neither hook nor refusal, the state before issue #14) is a
 * negative control that is expected to fail.
 *
 * Box only: root, kvm_amd (or kvm_intel) with nested paging on.  Skips
 * elsewhere.
 *
 * usage: test_linux_ptwalk KVMI_VM LINUX_DIR      (TAP)
 * Environment: KVMI_LINUX_PTWALK_TIMEOUT (s, default 300): kvmi-vm's --timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

#include "itest.h"

#define GUEST_MARKER    "KVMI-LINUX-GUEST-OK"
#define GUEST_RAM       (256ull << 20)
#define KERNEL_MAP      0xffffffff80000000ull   /* __START_KERNEL_map */
#define ADDR_MASK       0x000ffffffffff000ull
#define EFER_LMA        (1ull << 10)
#define PROTECT_MIN     20
#define PROTECT_MAX     40
#define MAX_VCPUS       8
#define PAGE            4096

static struct itest_linux lt;           /* arguments, socket, timeout */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* The physical address of a kernel-image symbol (nokaslr), or 0. */
static uint64_t kernel_symbol_pa(const char *name)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	char line[256], sym[128];
	unsigned long long a;
	uint64_t pa = 0;
	char type;

	if (!f)
		return 0;
	while (!pa && fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %c %127s", &a, &type, sym) == 3 && !strcmp(sym, name) && a >= KERNEL_MAP)
			pa = a - KERNEL_MAP;
	fclose(f);
	return pa;
}

struct page {
	uint64_t gpa;
	unsigned level;                 /* 4 PML4, 3 PDPT, 2 PD, 1 PT */
	bool on;                        /* still write-protected */
	int stale;                      /* vCPU + 1 whose store (CONTINUE) may still land */
	uint8_t copy[PAGE];             /* its contents while protected */
};

/* What the tool saw. */
struct seen {
	unsigned vcpus, polls;
	uint64_t root[MAX_VCPUS];       /* CR3 when protecting; 0: paging off */
	struct page pages[PROTECT_MAX];
	unsigned npages, per_level[5];
	int check_err, protect_err;
	bool protected_;
	unsigned walks, walk_retry, walk_continue, stores, not_write, outside, after_lift, silent;
	unsigned idle_checks, other_events, errors;
	double t_protect;
};

static int find_page(const struct seen *s, uint64_t gpa)
{
	for (unsigned i = 0; i < s->npages; i++)
		if (s->pages[i].gpa == (gpa & ~0xfffull))
			return (int)i;
	return -1;
}

/* At most this many pages of a level (the kernel preallocates dozens of
 * PDPTs for its vmalloc area): page tables fill the rest. */
static const unsigned level_quota[5] = { 0, PROTECT_MAX, 8, 12, MAX_VCPUS };

static void add_page(struct seen *s, uint64_t gpa, unsigned level)
{
	if (s->npages >= PROTECT_MAX || gpa >= GUEST_RAM || find_page(s, gpa) >= 0 ||
	    s->per_level[level] >= level_quota[level])
		return;
	s->pages[s->npages].gpa = gpa;
	s->pages[s->npages++].level = level;
	s->per_level[level]++;
}

/* The tables below one table page: level 4..2 entries (present, not large)
 * point at tables; PT pages are added only while room is left after the
 * upper levels (they come last). */
static void collect(struct kvmi_dom *dom, struct seen *s, uint64_t table, unsigned level, bool pts)
{
	uint64_t e[512];

	if (kvmi_dom_read_physical(dom, table, e, sizeof(e))) {
		s->errors++;
		return;
	}
	for (unsigned i = 0; i < 512; i++) {
		uint64_t next = e[i] & ADDR_MASK;

		if (!(e[i] & 1) || (level <= 3 && (e[i] & 0x80)) || next >= GUEST_RAM)
			continue;
		if (level - 1 == 1) {
			if (pts)
				add_page(s, next, 1);
			continue;
		}
		if (!pts)
			add_page(s, next, level - 1);
		collect(dom, s, next, level - 1, pts);
	}
}

static int check_copy(struct kvmi_dom *dom, struct seen *s, unsigned i)
{
	uint8_t now[PAGE];

	if (s->pages[i].stale) {
		/* a store it let through has landed by now: copy again */
		s->pages[i].stale = 0;
		if (kvmi_dom_read_physical(dom, s->pages[i].gpa, s->pages[i].copy, PAGE))
			s->errors++;
		return 0;
	}
	if (kvmi_dom_read_physical(dom, s->pages[i].gpa, now, PAGE)) {
		s->errors++;
		return -1;
	}
	if (memcmp(now, s->pages[i].copy, PAGE)) {
		unsigned off = 0;

		while (off < PAGE - 8 && !memcmp(now + off, s->pages[i].copy + off, 8))
			off += 8;
		s->silent++;
		diag("page %#llx changed while write-protected without a PF event: at +%#x %#llx -> %#llx",
		     (unsigned long long)s->pages[i].gpa, off, *(unsigned long long *)(s->pages[i].copy + off),
		     *(unsigned long long *)(now + off));
		memcpy(s->pages[i].copy, now, PAGE);
		return 1;
	}
	return 0;
}

/* With every vCPU paused: the pages, their copies, the protection; none
 * while the kernel has fewer than PROTECT_MIN table pages (early boot). */
static void protect(struct kvmi_dom *dom, struct seen *s, struct kvmi_event_msg **held)
{
	uint64_t gpa[PROTECT_MAX];
	uint8_t acc[PROTECT_MAX];

	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned v = 0; v < s->vcpus; v++) {
			const struct kvmi_event_arch *a = &held[v]->common.arch;

			if (!(a->sregs.efer & EFER_LMA))
				continue;
			s->root[v] = a->sregs.cr3 & ADDR_MASK;
			if (!pass)
				add_page(s, s->root[v], 4);
			collect(dom, s, s->root[v], 4, pass == 1);
		}
	if (s->npages < PROTECT_MIN) {
		s->npages = 0;
		memset(s->per_level, 0, sizeof(s->per_level));
		return;
	}
	for (unsigned i = 0; i < s->npages; i++) {
		gpa[i] = s->pages[i].gpa;
		acc[i] = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X;
		if (kvmi_dom_read_physical(dom, gpa[i], s->pages[i].copy, PAGE))
			s->errors++;
	}
	for (unsigned v = 0; v < s->vcpus; v++)
		if (kvmi_dom_control_events(dom, (uint16_t)v, KVMI_EVENT_PF, true))
			s->errors++;
	s->protect_err = kvmi_dom_set_page_access(dom, gpa, acc, s->npages, 0);
	s->protected_ = true;
	s->t_protect = now_s();
	for (unsigned i = 0; !s->protect_err && i < s->npages; i++)
		s->pages[i].on = true;
	diag("write-protect %u pages (PML4 %u, PDPT %u, PD %u, PT %u) from CR3 %#llx / %#llx: %d", s->npages,
	     s->per_level[4], s->per_level[3], s->per_level[2], s->per_level[1], (unsigned long long)s->root[0],
	     (unsigned long long)s->root[1], s->protect_err);
}

/* Pause-all until vCPU 0 runs on init_top_pgt, then protect.  0 or -1. */
static int attach(struct kvmi_dom *dom, struct seen *s, uint64_t init_pgt, double deadline)
{
	while (!s->protected_ && now_s() < deadline) {
		struct kvmi_event_msg *held[MAX_VCPUS] = { 0 };
		unsigned n = 0, got = 0;

		if (kvmi_dom_pause_all(dom, &n) || n < 1 || n > MAX_VCPUS)
			return -1;
		s->vcpus = n;
		s->polls++;
		while (got < n) {
			struct kvmi_event_msg *ev = itest_next_event(dom, 10000);

			if (!ev)
				return -1;
			if (ev->event != KVMI_EVENT_PAUSE_VCPU || ev->vcpu >= n || held[ev->vcpu]) {
				s->other_events++;
				if (kvmi_event_needs_reply(ev))
					kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
				kvmi_event_free(ev);
				continue;
			}
			held[ev->vcpu] = ev;
			got++;
		}
		if ((held[0]->common.arch.sregs.cr3 & ADDR_MASK) == init_pgt)
			protect(dom, s, held);
		for (unsigned v = 0; v < n; v++) {
			kvmi_dom_reply_event(dom, held[v], KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			kvmi_event_free(held[v]);
		}
		if (!s->protected_)
			usleep(200 * 1000);
	}
	return s->protected_ ? 0 : -1;
}

static void lift(struct kvmi_dom *dom, struct seen *s, unsigned i)
{
	uint8_t rwx = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X;

	if (kvmi_dom_set_page_access(dom, &s->pages[i].gpa, &rwx, 1, 0))
		s->errors++;
}

static void on_pf(struct kvmi_dom *dom, struct seen *s, const struct kvmi_event_msg *ev)
{
	const struct kvmi_event_pf *pf = &ev->specific.pf;
	int i = find_page(s, pf->gpa);
	bool walk = pf->flags & KVMI_EVENT_PF_FLAG_PAGE_WALK;

	if (!(pf->access & KVMI_PAGE_ACCESS_W))
		s->not_write++;
	if (i < 0) {
		s->outside++;
		diag("PF event outside the protected pages: gpa %#llx access %u flags %#x",
		     (unsigned long long)pf->gpa, pf->access, pf->flags);
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		return;
	}
	/* The vCPU of a store let through has run on since: it landed. */
	for (unsigned k = 0; k < s->npages; k++)
		if (s->pages[k].stale == ev->vcpu + 1 && k != (unsigned)i)
			check_copy(dom, s, k);
	if (!s->pages[i].on)
		s->after_lift++;
	else
		check_copy(dom, s, (unsigned)i);
	if (s->walks + s->stores < 6 || (walk && s->walks < 12))
		diag("PF event on vCPU %u: gpa %#llx (level %u page %d), %s, rip %#llx", ev->vcpu,
		     (unsigned long long)pf->gpa, s->pages[i].level, i, walk ? "page walk" : "store",
		     (unsigned long long)ev->common.arch.regs.rip);
	if (walk) {
		s->walks++;
		s->pages[i].on = false;
		if (i % 2 == 0) {
			s->walk_retry++;
			lift(dom, s, (unsigned)i);
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_RETRY, NULL, 0);
		} else {
			s->walk_continue++;
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		}
		return;
	}
	s->stores++;
	/* The store lands after the reply, at a moment the tool cannot see:
	 * the copy is taken again at the vCPU's next event, or when idle. */
	s->pages[i].stale = ev->vcpu + 1;
	kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
}

/* Serves events until kvmi-vm ends; its exit status. */
static int serve(struct kvmi_dom *dom, struct seen *s, pid_t pid, double deadline)
{
	unsigned idle = 0;

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
		if (err == -ETIMEDOUT || (!err && !ev)) {
			/* quiet for a second: no protected page changed */
			if (++idle % 5 == 0 && s->protected_ && !s->protect_err) {
				s->idle_checks++;
				for (unsigned i = 0; i < s->npages; i++)
					if (s->pages[i].on)
						check_copy(dom, s, i);
			}
			continue;
		}
		if (err)
			break;
		idle = 0;
		if (ev->event == KVMI_EVENT_PF) {
			on_pf(dom, s, ev);
		} else {
			s->other_events++;
			diag("unexpected event %s on vCPU %u", kvmi_event_name(ev->event), ev->vcpu);
			if (kvmi_event_needs_reply(ev))
				kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		}
		kvmi_event_free(ev);
	}
	kvmi_dom_close(dom);
	return itest_wait(pid, deadline > now_s() ? (int)(deadline - now_s()) + 5 : 5);
}

/* The assertions of the hook's case (and of the negative control). */
static void report_hooked(const struct seen *s)
{
	unsigned roots = 0;

	for (unsigned v = 0; v < s->vcpus; v++)
		roots += s->root[v] != 0;
	ok(s->check_err == 0, "CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK): page walks are reported (%d)", s->check_err);
	ok(s->protected_ && s->npages >= PROTECT_MIN && s->per_level[4] >= 1 && s->per_level[1] >= 1,
	   "%u page-table pages from the CR3 of %u vCPU(s) in long mode (PML4 %u, PDPT %u, PD %u, PT %u)", s->npages,
	   roots, s->per_level[4], s->per_level[3], s->per_level[2], s->per_level[1]);
	ok(s->protect_err == 0, "SET_PAGE_ACCESS r-x on them (%d)", s->protect_err);
	ok(s->walks > 0 && s->walk_retry > 0 && s->walk_continue > 0,
	   "page walks arrive as PF events with KVMI_EVENT_PF_FLAG_PAGE_WALK: %u (%u lift+RETRY, %u CONTINUE)", s->walks,
	   s->walk_retry, s->walk_continue);
	ok(s->outside == 0 && s->not_write == 0, "every PF event is a write access to a protected page (%u outside, "
	   "%u not W)", s->outside, s->not_write);
	ok(s->after_lift == 0, "no event on a page after its lift, by the tool (RETRY) or by kvmi-vm (CONTINUE): %u",
	   s->after_lift);
	/* How many stores come depends on when the protection went on (0-1
	 * in three boots): the assertion is that none came without its event. */
	ok(s->silent == 0, "no protected page changed without a PF event (%u pages; %u stores came as PF events "
	   "without the flag; checked at every event and %u times while idle)", s->silent, s->stores, s->idle_checks);
}

static void test_linux(unsigned timeout_s, const char *mode)
{
	char logbuf[256];
	const char *log = itest_file(logbuf, sizeof(logbuf), "test_linux_ptwalk.log");
	uint64_t init_pgt = kernel_symbol_pa("init_top_pgt");
	struct kvmi_listener *l = NULL;
	struct kvmi_dom *dom = NULL;
	struct seen *s = calloc(1, sizeof(*s));
	bool off = !strcmp(mode, "off");
	double t0, t1;
	pid_t pid;
	int ret, status;

	ok(s && init_pgt, "init_top_pgt in /proc/kallsyms (pa %#llx)", (unsigned long long)init_pgt);
	if (!s || !init_pgt || kvmi_listener_open(lt.addr, NULL, &l)) {
		ok(0, "listen on %s", lt.addr);
		free(s);
		return;
	}
	/* BPF run-time statistics: kvmi-vm logs the hook's cost at detach. */
	if (write_file("/proc/sys/kernel/bpf_stats_enabled", "1\n"))
		diag("cannot enable BPF statistics");
	t0 = now_s();
	pid = itest_linux_start(&lt, log);
	ret = kvmi_listener_accept(l, 60000, &dom);
	ok(ret == 0 && dom, "the VMM (Linux guest, %s vCPUs, KVMI_PTWALK=%s) connects (%d)", ITEST_LINUX_VCPUS, mode, ret);
	if (ret || !dom) {
		status = itest_wait(pid, 5);
		goto out;
	}
	itest_show_log(log, "KVM hooks", 5);
	itest_show_log(log, "page walk", 5);
	s->check_err = kvmi_dom_check_event(dom, KVMI_X_EVENT_PF_PAGE_WALK);
	if (attach(dom, s, init_pgt, t0 + timeout_s))
		ok(0, "pause-all until the kernel runs on init_top_pgt (%u polls)", s->polls);
	status = serve(dom, s, pid, t0 + timeout_s + 30);
	t1 = now_s();
	diag("kvmi-vm ran %.1f s (protected after %.1f s, %u polls); PF events: %u walks, %u stores", t1 - t0,
	     s->t_protect - t0, s->polls, s->walks, s->stores);
	if (off) {
		ok(s->check_err == -EOPNOTSUPP, "without the hook CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK) answers "
		   "-EOPNOTSUPP (%d)", s->check_err);
		ok(s->npages >= PROTECT_MIN && s->protect_err == -EOPNOTSUPP,
		   "SET_PAGE_ACCESS refuses to write-protect %u page tables in use (%d)", s->npages, s->protect_err);
		ok(s->walks + s->stores == 0, "no PF events (%u)", s->walks + s->stores);
	} else {
		report_hooked(s);
	}
	ok(s->other_events == 0 && s->errors == 0, "no stray events (%u), no failed commands (%u)", s->other_events,
	   s->errors);
	ok(itest_log_has(log, GUEST_MARKER), "the guest boots to its marker (%s) (%.1f s)", GUEST_MARKER, t1 - t0);
	itest_show_log(log, "reached /init", 1);
	itest_show_log(log, "page-walk hook detached", 3);
out:
	itest_linux_end_run(status, log, l);
	free(s);
}

int main(int argc, char **argv)
{
	static const struct itest_linux_test test = {
		"test_linux_ptwalk", "lptw.sock", "KVMI_LINUX_PTWALK_TIMEOUT", 300, 1,
	};
	const char *mode = getenv("KVMI_PTWALK");
	int rc = itest_linux_setup(&lt, argc, argv, &test);

	if (rc >= 0)
		return rc;
	diag("nested paging on; kvmi-vm --timeout %u; KVMI_PTWALK=%s", lt.timeout_s, mode ? mode : "(unset)");
	test_linux(lt.timeout_s, mode && *mode ? mode : "auto");
	return itest_linux_done(&lt);
}
