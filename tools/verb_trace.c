/* `kvmi trace [WHAT...]`: enable events, print each as one JSON object per
 * line on stdout (so `jq` works), answer it, and turn the events off again
 * at the end.  Status messages go to stderr.
 *
 * WHAT: an event name (breakpoint, hypercall, xsetbv, descriptor, cpuid,
 * pf, singlestep, create_vcpu, unhook, msr), crN (CR event + CONTROL_CR N),
 * msr=INDEX (MSR event + CONTROL_MSR), count=N, seconds=S, and how to
 * answer: veto (MSR writes are refused: the reply's new value is the old
 * one) and lift=N (after N PF events at one address the restriction of its
 * page is lifted: rwx; counting per address, a one-time sweep over the
 * page does not use it up; at=GPA counts only events at GPA).  Everything
 * else is answered CONTINUE.
 * until=EVENT stops after the first event of that name, until=lift after
 * the first lift.  Without event names: every
 * quiet event the VMM allows.  PAUSE_VCPU and TRAP are always delivered,
 * and so are the events `msr watch` and `protect` enabled for the session
 * (`pf` and `msr` then enable nothing more).  A CREATE_VCPU event gets the
 * session's watches on its vCPU before the reply. */
#include "cli.h"
#include "../src/proto/kvmi-proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ITEMS 32
#define MAX_LIFT_PAGES 4096
#define UNTIL_LIFT 1000

struct item {
	uint16_t event;
	bool vm;                /* CONTROL_VM_EVENTS instead of CONTROL_EVENTS */
	int cr;                 /* >= 0: also CONTROL_CR */
	bool has_msr;
	uint32_t msr;           /* also CONTROL_MSR */
	bool session;           /* already on for the session: nothing to do */
	bool on;
};

struct addr_count {
	uint64_t gpa, n;
};

struct plan {
	struct item items[MAX_ITEMS];
	unsigned int n;
	uint64_t count;         /* 0: unlimited */
	int ms;                 /* < 0: until stopped */
	bool veto;              /* MSR writes: reply with the old value */
	uint64_t lift;          /* 0: never */
	bool lift_at_set;       /* count only PF events at lift_at (at=GPA) */
	uint64_t lift_at;
	struct addr_count addrs[MAX_LIFT_PAGES];
	unsigned int naddrs;
	int until;              /* event id to stop after; UNTIL_LIFT; -1: none */
	bool lifted;
};

static bool is_vm_event(uint16_t id)
{
	return id == KVMI_EVENT_UNHOOK || id == KVMI_EVENT_CREATE_VCPU ||
	       id == KVMI_EVENT_CMD_ERROR;
}

static int add(struct plan *p, uint16_t event, int cr, bool has_msr, uint32_t msr)
{
	if (p->n == MAX_ITEMS)
		return cli_usage("trace: too many events");
	p->items[p->n++] = (struct item){ .event = event, .vm = is_vm_event(event), .cr = cr,
					  .has_msr = has_msr, .msr = msr };
	return 0;
}

/* WHAT as an event name (the names src/proto knows, "pf" or
 * "KVMI_EVENT_PF"). */
static int add_event(struct cli *c, struct plan *p, const char *a)
{
	int id = kvmi_proto_event_by_name(a);

	if (id < 0)
		return cli_usage("trace: unknown event '%s'", a);
	if (id == KVMI_EVENT_MSR && c->nmsrs) {
		if (add(p, KVMI_EVENT_MSR, -1, false, 0))
			return -EINVAL;
		p->items[p->n - 1].session = true;      /* `msr watch` did it */
		return 0;
	}
	if (id == KVMI_EVENT_CR || id == KVMI_EVENT_MSR)
		return cli_usage("trace: say which: cr0, cr3, cr4, msr=INDEX (or `msr watch` first)");
	if (id == KVMI_EVENT_PAUSE_VCPU || id == KVMI_EVENT_TRAP)
		return 0;       /* always delivered */
	if (add(p, (uint16_t)id, -1, false, 0))
		return -EINVAL;
	if (id == KVMI_EVENT_PF && c->pf_on)
		p->items[p->n - 1].session = true;      /* `protect` did it */
	return 0;
}

static int parse(struct cli *c, struct plan *p, int argc, char **argv)
{
	p->ms = -1;
	p->until = -1;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		uint64_t v;

		if (!strncmp(a, "count=", 6)) {
			if (cli_parse_u64(a + 6, &p->count) || !p->count)
				return cli_usage("trace: bad %s", a);
			continue;
		}
		if (!strcmp(a, "veto")) {
			p->veto = true;
			continue;
		}
		if (!strncmp(a, "lift=", 5)) {
			if (cli_parse_u64(a + 5, &p->lift) || !p->lift)
				return cli_usage("trace: bad %s (lift=N: after N PF events on a page, N > 0)", a);
			continue;
		}
		if (!strncmp(a, "at=", 3)) {
			if (cli_parse_u64(a + 3, &p->lift_at))
				return cli_usage("trace: bad %s (at=GPA: lift=N counts only events at GPA)", a);
			p->lift_at_set = true;
			continue;
		}
		if (!strncmp(a, "until=", 6)) {
			if (!strcasecmp(a + 6, "lift")) {
				p->until = UNTIL_LIFT;
				continue;
			}
			p->until = kvmi_proto_event_by_name(a + 6);
			if (p->until < 0)
				return cli_usage("trace: bad %s (until=EVENT or until=lift)", a);
			continue;
		}
		if (!strncmp(a, "seconds=", 8)) {
			if (cli_parse_seconds(a + 8, &p->ms))
				return cli_usage("trace: bad %s", a);
			continue;
		}
		if (!strncasecmp(a, "msr=", 4)) {
			if (cli_parse_u64(a + 4, &v) || v > UINT32_MAX)
				return cli_usage("trace: bad %s", a);
			if (add(p, KVMI_EVENT_MSR, -1, true, (uint32_t)v))
				return -EINVAL;
			continue;
		}
		if (!strncasecmp(a, "cr", 2) && (a[2] == '0' || a[2] == '3' || a[2] == '4') && !a[3]) {
			if (add(p, KVMI_EVENT_CR, a[2] - '0', false, 0))
				return -EINVAL;
			continue;
		}
		if (add_event(c, p, a))
			return -EINVAL;
	}
	return 0;
}

/* Default set: the events that need no extra setup and are not a flood. */
static void defaults(struct cli *c, struct plan *p)
{
	static const uint16_t quiet[] = {
		KVMI_EVENT_BREAKPOINT, KVMI_EVENT_HYPERCALL, KVMI_EVENT_XSETBV,
		KVMI_EVENT_DESCRIPTOR, KVMI_EVENT_CREATE_VCPU, KVMI_EVENT_UNHOOK,
	};

	for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++)
		if (!kvmi_dom_check_event(c->dom, quiet[i]))
			add(p, quiet[i], -1, false, 0);
}

static int control(struct cli *c, struct item *it, uint32_t vcpus, bool on)
{
	int err;

	if (it->session)
		return 0;
	if (it->vm)
		return kvmi_dom_control_vm_events(c->dom, it->event, on);
	for (uint32_t v = 0; v < vcpus; v++) {
		err = kvmi_dom_control_events(c->dom, (uint16_t)v, it->event, on);
		if (err)
			return err;
		if (it->cr >= 0) {
			err = kvmi_dom_control_cr(c->dom, (uint16_t)v, (uint32_t)it->cr, on);
			if (err)
				return err;
		}
		if (it->has_msr) {
			err = kvmi_dom_control_msr(c->dom, (uint16_t)v, it->msr, on);
			if (err)
				return err;
		}
	}
	return 0;
}

/* PF events at @gpa so far, this one included. */
static uint64_t count_addr(struct plan *p, uint64_t gpa)
{
	for (unsigned int i = 0; i < p->naddrs; i++)
		if (p->addrs[i].gpa == gpa)
			return ++p->addrs[i].n;
	if (p->naddrs == MAX_LIFT_PAGES)
		return 0;                       /* too many addresses: never lifted */
	p->addrs[p->naddrs++] = (struct addr_count){ .gpa = gpa, .n = 1 };
	return 1;
}

/* Decide, print, answer. */
static int answer(struct cli *c, struct plan *p, struct kvmi_event_msg *ev)
{
	const char *how = kvmi_event_needs_reply(ev) ? "continue" : "none";
	uint64_t gpa;
	int err;

	if (ev->event == KVMI_EVENT_MSR && p->veto) {
		struct kvmi_event_msr_reply r = { .new_val = ev->specific.msr.old_value };

		cli_print_event_json(c, ev, "veto");
		return kvmi_dom_reply_event(c->dom, ev, KVMI_EVENT_ACTION_CONTINUE, &r, sizeof(r));
	}
	if (ev->event == KVMI_EVENT_PF && p->lift && !p->lifted &&
	    (!p->lift_at_set || ev->specific.pf.gpa == p->lift_at) &&
	    count_addr(p, ev->specific.pf.gpa) == p->lift) {
		gpa = ev->specific.pf.gpa & ~0xfffull;
		err = cli_set_access(c, &gpa, 1, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X);
		if (!err) {
			how = "lift";
			p->lifted = true;
		}
	}
	if (ev->event == KVMI_EVENT_CREATE_VCPU)
		cli_setup_vcpu(c, ev->vcpu);
	cli_print_event_json(c, ev, how);
	return cli_continue(c, ev);
}

static int run(struct cli *c, int argc, char **argv)
{
	struct plan p = { 0 };
	uint32_t vcpus = 0;
	uint64_t seen = 0;
	unsigned int enabled = 0;
	int ev_id;
	int64_t left;
	int err;

	if (parse(c, &p, argc, argv))
		return -EINVAL;
	if (p.n == 0)
		defaults(c, &p);
	err = kvmi_dom_get_guest_info(c->dom, &vcpus);
	if (err)
		return cli_err(err, "GET_GUEST_INFO");

	for (unsigned int i = 0; i < p.n; i++) {
		struct item *it = &p.items[i];

		err = control(c, it, vcpus, true);
		if (err) {
			cli_err(err, "enabling %s events", kvmi_event_name(it->event));
			continue;
		}
		it->on = true;
		enabled++;
	}
	fprintf(stderr, "kvmi: tracing %u event type%s (plus PAUSE_VCPU and TRAP) on %u vCPU%s; Ctrl-C stops\n",
		enabled, enabled == 1 ? "" : "s", vcpus, vcpus == 1 ? "" : "s");

	left = p.ms;
	err = 0;
	while (!cli_stop && (!p.count || seen < p.count)) {
		struct kvmi_event_msg *ev;
		int slice = p.ms < 0 || left > 200 ? 200 : (int)left;

		err = kvmi_dom_next_event(c->dom, slice, &ev);
		if (err == -ETIMEDOUT) {
			err = 0;
			if (p.ms >= 0 && (left -= slice) <= 0)
				break;
			continue;
		}
		if (err) {
			cli_err(err, "waiting for events");
			break;
		}
		seen++;
		ev_id = ev->event;
		if (ev->event == KVMI_EVENT_UNHOOK)
			c->unhooking = true;
		if (ev->event == KVMI_EVENT_TRAP && c->traps_expected)
			c->traps_expected--;
		err = answer(c, &p, ev);
		kvmi_event_free(ev);
		if (err) {
			cli_err(err, "replying to an event");
			break;
		}
		if (c->unhooking)
			break;
		if (p.until >= 0 && (p.until == UNTIL_LIFT ? p.lifted : ev_id == p.until))
			break;
	}

	if (!c->unhooking && kvmi_dom_is_connected(c->dom))
		for (unsigned int i = 0; i < p.n; i++)
			if (p.items[i].on)
				control(c, &p.items[i], vcpus, false);
	fprintf(stderr, "kvmi: %llu event%s traced\n", (unsigned long long)seen, seen == 1 ? "" : "s");
	return err;
}

const struct cli_verb verb_trace = {
	.name = "trace", .args = "[EVENT|crN|msr=INDEX|count=N|seconds=S|until=EVENT|veto|lift=N]...",
	.help = "print events as JSON lines and answer them (veto: refuse MSR writes; lift=N: unprotect a page after N PF events at one address; until=lift)",
	.min_args = 0, .max_args = -1, .run = run,
};

const struct cli_verb verb_events = {
	.name = "events", .args = "[same as trace]",
	.help = "alias of trace",
	.min_args = 0, .max_args = -1, .run = run,
};
