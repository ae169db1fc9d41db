/* SPDX-License-Identifier: MIT */
/*
 * Write-protecting a page table the guest uses (issue #14), on the "events"
 * payload (64-bit, identity-mapped by its own page tables): what
 * CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK) answers must be what happens.
 *
 *   - it answers -EOPNOTSUPP (no page-walk hook under nested paging, or a
 *     host whose paging kvmi-vm cannot tell, such as kvm_pvm): SET_PAGE_ACCESS
 *     refuses r-x for the top-level page table of the paused vCPU's CR3, and
 *     for a batch holding it besides a data page, while the data page alone
 *     is accepted; the guest runs on;
 *   - it answers 0: the same protection is accepted; once the vCPU runs, its
 *     page walk through that page arrives as a PF event with
 *     KVMI_EVENT_PF_FLAG_PAGE_WALK at that page; CONTINUE lets the guest on
 *     and kvmi-vm lifts the protection itself (no second event); the guest
 *     still answers a pause.
 *
 * usage: test_ptwalk KVMI_VM GUEST_DIR      (TAP; host KVM and the box)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

#include "itest.h"

#define MBOX_GPA   0x300000ull          /* tests/guest/tests/events.c */
#define DATA_GPA   0x310000ull
#define MBOX_MAGIC 0x4556454e54534d42ull
#define ADDR_MASK  0x000ffffffffff000ull
#define R KVMI_PAGE_ACCESS_R
#define W KVMI_PAGE_ACCESS_W
#define X KVMI_PAGE_ACCESS_X

static const char *vmm;
static char guest_elf[512];

static int wait_magic(struct kvmi_dom *dom)
{
	for (int i = 0; i < 250; i++) {
		uint64_t v = 0;

		if (kvmi_dom_read_physical(dom, MBOX_GPA, &v, sizeof(v)) == 0 && v == MBOX_MAGIC)
			return 0;
		usleep(20000);
	}
	return -ETIMEDOUT;
}

/* Pauses vCPU 0; its PAUSE_VCPU event (held until replied), or NULL. */
static struct kvmi_event_msg *pause0(struct kvmi_dom *dom)
{
	struct kvmi_event_msg *ev;

	if (kvmi_dom_pause_vcpu(dom, 0, true))
		return NULL;
	ev = itest_next_event(dom, 10000);
	if (ev && ev->event != KVMI_EVENT_PAUSE_VCPU) {
		diag("unexpected event %s", kvmi_event_name(ev->event));
		kvmi_event_free(ev);
		return NULL;
	}
	return ev;
}

static int protect(struct kvmi_dom *dom, uint64_t a, uint64_t b, uint8_t access)
{
	uint64_t gpa[2] = { a, b };
	uint8_t acc[2] = { access, access };

	return kvmi_dom_set_page_access(dom, gpa, acc, b ? 2 : 1, 0);
}

/* The page walk reaches the tool; CONTINUE lifts the protection. */
static void walk_event(struct kvmi_dom *dom, struct kvmi_event_msg *paused, uint64_t root)
{
	struct kvmi_event_msg *ev, *again;

	ok(kvmi_dom_control_events(dom, 0, KVMI_EVENT_PF, true) == 0, "PF events on vCPU 0");
	kvmi_dom_reply_event(dom, paused, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
	ev = itest_next_event(dom, 10000);
	ok(ev && ev->event == KVMI_EVENT_PF && (ev->specific.pf.gpa & ~0xfffull) == root &&
	   ev->specific.pf.access == W && (ev->specific.pf.flags & KVMI_EVENT_PF_FLAG_PAGE_WALK),
	   "the vCPU's page walk through it arrives as a PF event with KVMI_EVENT_PF_FLAG_PAGE_WALK (%s, gpa %#llx, "
	   "access %u, flags %#x)", ev ? kvmi_event_name(ev->event) : "none",
	   ev ? (unsigned long long)ev->specific.pf.gpa : 0ull, ev ? ev->specific.pf.access : 0,
	   ev ? ev->specific.pf.flags : 0);
	if (ev)
		kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
	kvmi_event_free(ev);
	again = pause0(dom);
	ok(again != NULL, "after CONTINUE the guest runs on (PAUSE_VCPU, no second PF event: kvmi-vm lifted the "
	   "protection)");
	if (again) {
		kvmi_dom_reply_event(dom, again, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(again);
	}
}

static void test_guard(void)
{
	static const char *const extra[] = { "-v", NULL };
	struct itest_vm_opts o = { .vmm = vmm, .elf = guest_elf, .timeout_s = "60", .vcpus = "1", .extra = extra };
	struct kvmi_event_msg *ev;
	struct itest_group g;
	uint64_t root;
	int check, err;

	if (!itest_group_start(&g, "ptwalk", &o))
		return;
	ok(wait_magic(g.dom) == 0, "the payload set up its pages");
	check = kvmi_dom_check_event(g.dom, KVMI_X_EVENT_PF_PAGE_WALK);
	ok(check == 0 || check == -EOPNOTSUPP, "CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK) answers 0 or -EOPNOTSUPP (%d)",
	   check);
	itest_show_log(g.log, "page walk", 3);
	ev = pause0(g.dom);
	ok(ev != NULL, "vCPU 0 paused");
	if (!ev) {
		itest_group_end(&g);
		return;
	}
	root = ev->common.arch.sregs.cr3 & ADDR_MASK;
	err = protect(g.dom, DATA_GPA, 0, R | X);
	ok(err == 0, "a data page is write-protected (%d)", err);
	protect(g.dom, DATA_GPA, 0, R | W | X);
	err = protect(g.dom, DATA_GPA, root, R | X);
	if (check) {
		ok(err == -EOPNOTSUPP, "write-protecting the top-level page table (CR3 %#llx) with a data page is "
		   "refused: -EOPNOTSUPP (%d)", (unsigned long long)root, err);
		ok(itest_log_has(g.log, "SET_PAGE_ACCESS refused"), "kvmi-vm says why in its log");
		kvmi_dom_reply_event(g.dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev);
		ev = pause0(g.dom);
		ok(ev != NULL, "the guest runs on");
		if (ev)
			kvmi_dom_reply_event(g.dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
	} else {
		ok(err == 0, "write-protecting the top-level page table (CR3 %#llx) is accepted (%d)",
		   (unsigned long long)root, err);
		protect(g.dom, DATA_GPA, 0, R | W | X);
		walk_event(g.dom, ev, root);
	}
	kvmi_event_free(ev);
	itest_group_end(&g);
}

int main(int argc, char **argv)
{
	int err;

	if (argc != 3) {
		fprintf(stderr, "usage: %s KVMI_VM GUEST_DIR\n", argv[0]);
		return ITEST_EXIT_USAGE;
	}
	vmm = argv[1];
	snprintf(guest_elf, sizeof(guest_elf), "%s/events.elf", argv[2]);
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("1..0 # SKIP no usable /dev/kvm\n");
		return ITEST_EXIT_PASS;
	}
	err = itest_init("test_ptwalk");
	if (err) {
		printf("1..0 # SKIP no scratch directory: %s\n", strerror(-err));
		return ITEST_EXIT_SETUP;
	}
	test_guard();
	return itest_done();
}
