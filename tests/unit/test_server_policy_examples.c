/* SPDX-License-Identifier: MIT */
/*
 * test_server_policy_examples.c - every policy example of docs/policy.md,
 * parsed as kvmi-vm parses it, against the server with its fake backend:
 * each route by which a tool could write guest memory (WRITE_PHYSICAL, a
 * read-write map grant, CHANGE_GFN, SET_VE_INFO_PAGE, a PF reply's
 * ctx_data) or vCPU registers (SET_REGISTERS outside an event and inside
 * an event-reply batch, VCPU_SET_XSAVE, a CR or MSR reply's new_val) is
 * tried, CHECK_COMMAND must agree with the answer, the events the example
 * forbids cannot be enabled, and the commands it allows still work.
 *
 * Argument: docs/policy.md. Every --allow-commands / --allow-events
 * example and policy-file line in it must be in the table below, so the
 * document and the test cannot drift apart.
 */
#include "test_server_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIT(x) (1ull << (x))
#define NO_REPLY (1 << 20)

struct example {
	const char *commands;   /* --allow-commands, or NULL */
	const char *events;     /* --allow-events, or NULL */
	const char *file;       /* policy file text, or NULL */
	/* what the example must give */
	bool mem, regs, map;    /* memory writes, register writes, map grants */
	bool control;           /* CONTROL_EVENTS and CONTROL_VM_EVENTS */
	uint64_t ev;            /* events allowed (CHECK_EVENT) */
	uint64_t works;         /* commands (of the probe list) that must succeed */
};

#define ALL_EV ((1ull << KVMI_NUM_EVENTS) - 1)
/* The read-side probes: GET_GUEST_INFO, GET_VCPU_INFO, GET_REGISTERS,
 * READ_PHYSICAL, TRANSLATE_GVA, QUERY_PHYSICAL. */
#define READS (BIT(KVMI_GET_GUEST_INFO) | BIT(KVMI_GET_VCPU_INFO) | BIT(KVMI_GET_REGISTERS) | \
	       BIT(KVMI_READ_PHYSICAL) | BIT(KVMI_VCPU_TRANSLATE_GVA))

static const char policy_file[] =
	"# /etc/kvmi/guest1.policy\n"
	"commands = all, -write_physical     # memory is read-only for the tool\n"
	"commands = -set_registers           # continues the line above\n"
	"events   = pause_vcpu, trap, pf\n";

static const struct example examples[] = {
	{ "all,-write_physical,-set_registers", "pause_vcpu,trap,pf", NULL,
	  false, false, true, true, BIT(KVMI_EVENT_PAUSE_VCPU) | BIT(KVMI_EVENT_TRAP) | BIT(KVMI_EVENT_PF),
	  READS | BIT(KVMI_QUERY_PHYSICAL) },
	{ NULL, NULL, policy_file,
	  false, false, true, true, BIT(KVMI_EVENT_PAUSE_VCPU) | BIT(KVMI_EVENT_TRAP) | BIT(KVMI_EVENT_PF),
	  READS | BIT(KVMI_QUERY_PHYSICAL) },
	{ "all,-write_physical", NULL, NULL, false, true, true, true, ALL_EV,
	  READS | BIT(KVMI_QUERY_PHYSICAL) },
	/* no CONTROL_*EVENTS: no event can be enabled, though the event list allows all */
	{ "get_guest_info,get_vcpu_info,get_registers,read_physical,translate_gva", NULL, NULL,
	  false, false, false, false, ALL_EV, READS },
	{ "all,-set_registers", "all", NULL, true, false, true, true, ALL_EV,
	  READS | BIT(KVMI_QUERY_PHYSICAL) },
	{ NULL, "none", NULL, true, true, true, true, 0, READS | BIT(KVMI_QUERY_PHYSICAL) },
	{ NULL, "pause_vcpu,trap", NULL, true, true, true, true,
	  BIT(KVMI_EVENT_PAUSE_VCPU) | BIT(KVMI_EVENT_TRAP), READS | BIT(KVMI_QUERY_PHYSICAL) },
};

static char name[160];
static const struct example *current;

/* The example under test, for the messages. */
static const char *ex_name(void)
{
	const struct example *ex = current;

	if (ex->file)
		snprintf(name, sizeof(name), "[policy file]");
	else
		snprintf(name, sizeof(name), "[%s%s%s%s]", ex->commands ? "--allow-commands " : "",
			 ex->commands ? ex->commands : "", ex->events ? " --allow-events " : "",
			 ex->events ? ex->events : "");
	return name;
}

/* As kvmi-vm builds it: the file, then the lists. */
static int build_policy(const struct example *ex, struct kvmi_policy *p)
{
	char err[256] = "", path[64];
	FILE *f;
	int ret = 0;

	kvmi_policy_allow_all(p);
	if (ex->file) {
		snprintf(path, sizeof(path), "/tmp/kvmi-policy-ex-%d", (int)getpid());
		f = fopen(path, "w");
		if (!f)
			return -errno;
		fputs(ex->file, f);
		fclose(f);
		ret = kvmi_policy_load_file(path, p, err, sizeof(err));
		unlink(path);
	}
	if (!ret && ex->commands)
		ret = kvmi_policy_parse_commands(ex->commands, &p->commands, err, sizeof(err));
	if (!ret && ex->events)
		ret = kvmi_policy_parse_events(ex->events, &p->events, err, sizeof(err));
	if (ret)
		tap_diag("%s: %s", ex_name(), err);
	return ret;
}

static int check_cmd(struct harness *h, uint16_t id)
{
	struct kvmi_check_command c = { .id = id };

	return h_call(h, KVMI_CHECK_COMMAND, &c, sizeof(c), NULL, 0, NULL, NULL);
}

static bool called(struct kvmi_backend *f, enum fake_op op)
{
	return fake_find(f, op, NULL);
}

/* One command that writes: refused with EPERM (and CHECK_COMMAND says so,
 * and the backend never hears of it) or done. */
static void route(struct harness *h, const char *what, uint16_t id, int err, bool allow,
		  enum fake_op op, int check_want)
{
	bool reached = called(h->fake, op);

	tap_ok(allow ? err == 0 && reached : err == -KVM_EPERM && !reached,
	       "%s %s: %s (%d)", ex_name(), what, allow ? "done" : "EPERM, backend not called", err);
	tap_ok(check_cmd(h, id) == check_want, "%s   CHECK_COMMAND %s: %d", ex_name(), what,
	       check_want);
	fake_reset_calls(h->fake);
}

static void memory_routes(struct harness *h, const struct example *ex)
{
	struct kvmi_write_physical wp = { .gpa = 0x1000, .size = 8 };
	struct kvmi_x_map_memory map = { .gpa = 0x1000, .length = 0x1000 };
	struct kvmi_change_gfn_v1 cg = { .old_gfn = 1, .new_gfn = 2 };
	struct kvmi_set_ve_info_page ve = { .gpa = 0x3000 };
	int perm = ex->mem ? 0 : -KVM_EPERM;
	struct fake_call c;
	int err;

	fake_reset_calls(h->fake);
	err = h_call(h, KVMI_WRITE_PHYSICAL, &wp, sizeof(wp), "12345678", 8, NULL, NULL);
	route(h, "WRITE_PHYSICAL", KVMI_WRITE_PHYSICAL, err, ex->mem, FOP_WRITE, perm);

	/* A read-write grant is a memory write; a read-only one is not. */
	err = h_call(h, KVMI_X_MAP_MEMORY, &map, sizeof(map), NULL, 0, NULL, NULL);
	route(h, "read-write map grant", KVMI_X_MAP_MEMORY, err, ex->mem && ex->map, FOP_MAP_MEMORY,
	      ex->map ? 0 : -KVM_EPERM);
	map.flags = KVMI_X_MAP_READONLY;
	err = h_call(h, KVMI_X_MAP_MEMORY, &map, sizeof(map), NULL, 0, NULL, NULL);
	tap_ok(ex->map ? err == 0 && fake_find(h->fake, FOP_MAP_MEMORY, &c) && c.a[2] == 1
		       : err == -KVM_EPERM && !called(h->fake, FOP_MAP_MEMORY),
	       "%s read-only map grant: %s (%d)", ex_name(), ex->map ? "given, read-only" : "EPERM",
	       err);
	fake_reset_calls(h->fake);

	err = h_vcpu_call(h, KVMI_VCPU_CHANGE_GFN, 1, &cg, sizeof(cg), NULL, NULL);
	route(h, "CHANGE_GFN", KVMI_VCPU_CHANGE_GFN, err, ex->mem, FOP_CHANGE_GFN, perm);
	err = h_vcpu_call(h, KVMI_SET_VE_INFO_PAGE, 1, &ve, sizeof(ve), NULL, NULL);
	route(h, "SET_VE_INFO_PAGE", KVMI_SET_VE_INFO_PAGE, err, ex->mem, FOP_SET_VE, perm);
}

static int enable(struct harness *h, unsigned event, bool on)
{
	if (!(kvmi_proto_event(event)->flags & KVMI_PROTO_EV_VCPU)) {
		struct kvmi_control_vm_events c = { .event_id = (uint16_t)event, .enable = on };

		return h_call(h, KVMI_CONTROL_VM_EVENTS, &c, sizeof(c), NULL, 0, NULL, NULL);
	} else {
		struct kvmi_control_events c = { .event_id = (uint16_t)event, .enable = on };

		return h_vcpu_call(h, KVMI_CONTROL_EVENTS, 1, &c, sizeof(c), NULL, NULL);
	}
}

/* The event the tool answers (CONTINUE), after `before` (a message
 * or nothing) in the same write: the reply's specific part in rpl. */
static bool raise_and_reply(struct harness *h, struct ev_thread *t, unsigned event, const void *data,
			    size_t len, const void *spec, size_t spec_len, size_t rpl_len)
{
	struct kvmi_event ev;
	uint8_t got[64];
	size_t n = 0;
	uint32_t seq;

	ev_start(t, h->srv, 1, event, data, len, rpl_len);
	seq = h_read_event(h, &ev, got, &n);
	if (!seq) {
		ev_join(t);
		return false;
	}
	h_event_reply(h, seq, 1, KVMI_EVENT_ACTION_CONTINUE, (uint8_t)event, spec, spec_len);
	ev_join(t);
	return t->res.delivered;
}

/* CR and MSR replies carry a value for the register; PF replies data for
 * the load. */
static void reply_routes(struct harness *h, const struct example *ex)
{
	static const struct kvmi_event_cr cr = { .cr = 4, .old_value = 0x1000, .new_value = 0x2000 };
	static const struct kvmi_event_msr msr = { .msr = 0xc0000082, .old_value = 0x10, .new_value = 0x20 };
	struct kvmi_event_cr_reply val = { .new_val = 0x6666 }, veto = { .new_val = 0x1000 };
	struct kvmi_event_msr_reply mval = { .new_val = 0x6666 };
	struct kvmi_event_pf pf = { .gpa = 0x5000, .gva = 0x7f0000005000ull, .access = 1 };
	struct kvmi_event_pf_reply pr = { .ctx_addr = 0x7f0000005000ull, .ctx_size = 8 };
	struct kvmi_event_pf_reply got_pf;
	struct ev_thread t;
	uint64_t got;

	uint64_t on = ex->control ? ex->ev : 0;

	if (on & BIT(KVMI_EVENT_CR)) {
		enable(h, KVMI_EVENT_CR, true);
		tap_ok(raise_and_reply(h, &t, KVMI_EVENT_CR, &cr, sizeof(cr), &val, sizeof(val), 8) &&
		       (memcpy(&got, t.rpl, 8), got == (ex->regs ? 0x6666u : 0x2000u)),
		       "%s CR reply with a value of the tool's: %s", ex_name(),
		       ex->regs ? "written" : "dropped, the guest's value goes in");
		tap_ok(raise_and_reply(h, &t, KVMI_EVENT_CR, &cr, sizeof(cr), &veto, sizeof(veto), 8) &&
		       (memcpy(&got, t.rpl, 8), got == 0x1000),
		       "%s CR reply keeping the old value (a veto): kept", ex_name());
		enable(h, KVMI_EVENT_CR, false);
	}
	if (on & BIT(KVMI_EVENT_MSR)) {
		enable(h, KVMI_EVENT_MSR, true);
		tap_ok(raise_and_reply(h, &t, KVMI_EVENT_MSR, &msr, sizeof(msr), &mval, sizeof(mval), 8) &&
		       (memcpy(&got, t.rpl, 8), got == (ex->regs ? 0x6666u : 0x20u)),
		       "%s MSR reply with a value of the tool's: %s", ex_name(),
		       ex->regs ? "written" : "dropped, the guest's value goes in");
		enable(h, KVMI_EVENT_MSR, false);
	}
	if (on & BIT(KVMI_EVENT_PF)) {
		memcpy(pr.ctx_data, "ABCDEFGH", 8);
		enable(h, KVMI_EVENT_PF, true);
		tap_ok(raise_and_reply(h, &t, KVMI_EVENT_PF, &pf, sizeof(pf), &pr, sizeof(pr), sizeof(pr)) &&
		       (memcpy(&got_pf, t.rpl, sizeof(got_pf)),
			ex->mem ? got_pf.ctx_size == 8 && !memcmp(got_pf.ctx_data, "ABCDEFGH", 8)
				: got_pf.ctx_size == 0 && got_pf.ctx_data[0] == 0),
		       "%s PF reply with ctx_data for the load: %s", ex_name(),
		       ex->mem ? "kept" : "dropped, the load reads guest memory");
		enable(h, KVMI_EVENT_PF, false);
	}
}

/* SET_REGISTERS + EVENT_REPLY in one write, as libkvmi sends them. */
static void batch_route(struct harness *h, const struct example *ex)
{
	static const unsigned order[] = { KVMI_EVENT_CR, KVMI_EVENT_PF, KVMI_EVENT_PAUSE_VCPU };
	static const struct kvmi_event_cr cr = { .cr = 4, .old_value = 1, .new_value = 2 };
	static const struct kvmi_event_pf pf = { .gpa = 0x5000, .access = 2 };
	struct kvmi_vcpu_hdr vh = { .vcpu = 1 };
	struct kvmi_x86_regs regs = { .rip = 0xbad };
	struct kvmi_event_reply er = { .action = KVMI_EVENT_ACTION_CONTINUE };
	struct kvmi_msg_hdr mh;
	struct kvmi_error_code ec = { .err = NO_REPLY };
	struct kvmi_event ev;
	struct ev_thread t;
	uint8_t buf[512], payload[256];
	unsigned event = KVMI_NUM_EVENTS;
	size_t n = 0;
	uint32_t seq;

	/* PAUSE_VCPU needs no enabling (here it is raised directly). */
	for (unsigned i = 0; i < 3 && event == KVMI_NUM_EVENTS; i++)
		if ((ex->ev & BIT(order[i])) && (ex->control || order[i] == KVMI_EVENT_PAUSE_VCPU))
			event = order[i];
	if (event == KVMI_NUM_EVENTS) {
		memset(&t, 0, sizeof(t));
		tap_ok(kvmi_vcpu_event(h->srv, 1, KVMI_EVENT_PAUSE_VCPU, NULL, 0, NULL, 0, &t.res) == 0 &&
		       !t.res.delivered, "%s no event reaches the tool: SET_REGISTERS has no reply to "
		       "ride on", ex_name());
		return;
	}
	if (event != KVMI_EVENT_PAUSE_VCPU)
		enable(h, event, true);
	fake_reset_calls(h->fake);
	ev_start(&t, h->srv, 1, event, event == KVMI_EVENT_CR ? (const void *)&cr : &pf,
		 kvmi_proto_event_data_size(event), kvmi_proto_event_reply_size(event));
	seq = h_read_event(h, &ev, NULL, NULL);
	mh = (struct kvmi_msg_hdr){ KVMI_SET_REGISTERS, sizeof(vh) + sizeof(regs), 77 };
	memcpy(buf, &mh, 8);
	memcpy(buf + 8, &vh, 8);
	memcpy(buf + 16, &regs, sizeof(regs));
	n = 16 + sizeof(regs);
	er.event = (uint8_t)event;
	mh = (struct kvmi_msg_hdr){ KVMI_EVENT_REPLY, 16, seq };
	memcpy(buf + n, &mh, 8);
	memcpy(buf + n + 8, &vh, 8);
	memcpy(buf + n + 16, &er, 8);
	n += 24;
	h_send(h, buf, n);
	if (!h_recv(h, &mh, payload) && mh.id == KVMI_SET_REGISTERS && mh.seq == 77)
		memcpy(&ec, payload, sizeof(ec));
	ev_join(&t);
	tap_ok(seq && t.res.delivered && (ex->regs ? ec.err == 0 && t.res.regs_applied
						   : ec.err == -KVM_EPERM && !t.res.regs_applied) &&
	       called(h->fake, FOP_SET_REGISTERS) == ex->regs,
	       "%s SET_REGISTERS + EVENT_REPLY (%s) batch: %s (%d)", ex_name(),
	       kvmi_proto_event_short_name(event), ex->regs ? "applied" : "EPERM, not applied", ec.err);
	if (event != KVMI_EVENT_PAUSE_VCPU)
		enable(h, event, false);
}

static void register_routes(struct harness *h, const struct example *ex)
{
	struct kvmi_x86_regs regs = { .rip = 0xbad };
	uint8_t xsave[64] = { 1, 2, 3 };
	int err;

	fake_reset_calls(h->fake);
	/* Outside an event SET_REGISTERS is EOPNOTSUPP when allowed. */
	err = h_vcpu_call(h, KVMI_SET_REGISTERS, 1, &regs, sizeof(regs), NULL, NULL);
	tap_ok(err == (ex->regs ? -KVM_EOPNOTSUPP : -KVM_EPERM) && !called(h->fake, FOP_SET_REGISTERS),
	       "%s SET_REGISTERS outside an event: %d", ex_name(), err);
	tap_ok(check_cmd(h, KVMI_SET_REGISTERS) == (ex->regs ? 0 : -KVM_EPERM),
	       "%s   CHECK_COMMAND SET_REGISTERS agrees", ex_name());
	err = h_vcpu_call(h, KVMI_VCPU_SET_XSAVE, 1, xsave, sizeof(xsave), NULL, NULL);
	route(h, "VCPU_SET_XSAVE", KVMI_VCPU_SET_XSAVE, err, ex->regs, FOP_SET_XSAVE,
	      ex->regs ? 0 : -KVM_EPERM);
	batch_route(h, ex);
}

static void event_rules(struct harness *h, const struct example *ex)
{
	for (unsigned id = 0; id < KVMI_NUM_EVENTS; id++) {
		struct kvmi_check_event c = { .id = (uint16_t)id };
		bool allow = ex->ev & BIT(id);
		int check = h_call(h, KVMI_CHECK_EVENT, &c, sizeof(c), NULL, 0, NULL, NULL);
		int on = enable(h, id, true);

		tap_ok(check == (allow ? 0 : -KVM_EPERM) && on == (allow && ex->control ? 0 : -KVM_EPERM),
		       "%s event %s: %s (CHECK_EVENT %d, enable %d)", ex_name(),
		       kvmi_proto_event_short_name(id),
		       allow ? ex->control ? "can be enabled" : "allowed, but CONTROL_EVENTS is not"
			     : "EPERM", check, on);
		if (on == 0)
			enable(h, id, false);
	}
}

static void still_works(struct harness *h, const struct example *ex)
{
	struct kvmi_read_physical rp = { .gpa = 0x1000, .size = 16 };
	struct kvmi_get_registers gr = { 0 };
	struct kvmi_translate_gva tg = { .gva = 0x1000 };
	struct kvmi_query_physical qp = { 0 };
	struct { unsigned id; int err; } r[6];
	uint8_t out[4096];
	size_t len;
	unsigned n = 0;

#define CALL(cmd, expr) do { len = sizeof(out); r[n].id = (cmd); r[n++].err = (expr); } while (0)
	CALL(KVMI_GET_GUEST_INFO, h_call(h, KVMI_GET_GUEST_INFO, NULL, 0, NULL, 0, out, &len));
	CALL(KVMI_GET_VCPU_INFO, h_vcpu_call(h, KVMI_GET_VCPU_INFO, 1, NULL, 0, out, &len));
	CALL(KVMI_GET_REGISTERS, h_vcpu_call(h, KVMI_GET_REGISTERS, 1, &gr, sizeof(gr), out, &len));
	CALL(KVMI_READ_PHYSICAL, h_call(h, KVMI_READ_PHYSICAL, &rp, sizeof(rp), NULL, 0, out, &len));
	CALL(KVMI_VCPU_TRANSLATE_GVA, h_vcpu_call(h, KVMI_VCPU_TRANSLATE_GVA, 1, &tg, sizeof(tg), out, &len));
	CALL(KVMI_QUERY_PHYSICAL, h_call(h, KVMI_QUERY_PHYSICAL, &qp, sizeof(qp), NULL, 0, out, &len));
#undef CALL
	for (unsigned i = 0; i < n; i++) {
		bool want = ex->works & BIT(r[i].id);

		tap_ok(want ? r[i].err == 0 : r[i].err == -KVM_EPERM, "%s %s: %s (%d)", ex_name(),
		       kvmi_proto_command_short_name(r[i].id), want ? "works" : "EPERM", r[i].err);
	}
	tap_ok(h_call(h, KVMI_GET_VERSION, NULL, 0, NULL, 0, NULL, NULL) == 0,
	       "%s GET_VERSION always works", ex_name());
}

static void run_example(const struct example *ex)
{
	struct kvmi_backend fake;
	struct kvmi_server_config cfg;
	struct kvmi_policy pol;
	struct harness h;

	current = ex;
	if (build_policy(ex, &pol)) {
		tap_ok(false, "%s parses", ex_name());
		return;
	}
	fake_init(&fake);
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = &pol;
	if (h_start(&h, &fake, &cfg)) {
		tap_ok(false, "%s start the server", ex_name());
		fake_destroy(&fake);
		return;
	}
	memory_routes(&h, ex);
	register_routes(&h, ex);
	reply_routes(&h, ex);
	event_rules(&h, ex);
	still_works(&h, ex);
	tap_ok(h_sync(&h), "%s the connection is in step at the end", ex_name());
	h_stop(&h);
	fake_destroy(&fake);
}

/* Every example of the document is in the table. */
static void check_doc(const char *path)
{
	static const char *const keys[] = { "--allow-commands ", "--allow-events " };
	static char doc[65536];
	FILE *f = fopen(path, "r");
	size_t len = f ? fread(doc, 1, sizeof(doc) - 1, f) : 0;
	unsigned found = 0, missing = 0;

	if (f)
		fclose(f);
	doc[len] = '\0';
	tap_ok(len > 0, "read %s", path);
	for (unsigned k = 0; k < 2; k++) {
		for (const char *p = strstr(doc, keys[k]); p; p = strstr(p + 1, keys[k])) {
			const char *v = p + strlen(keys[k]);
			size_t n = strcspn(v, " \t\n`");
			bool known = false;

			if (!n || *v == '\\' || *v == '`')
				continue;
			for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
				const char *want = k ? examples[i].events : examples[i].commands;

				known |= want && strlen(want) == n && !strncmp(want, v, n);
			}
			found++;
			if (!known) {
				missing++;
				tap_diag("example not in the test: %s%.*s", keys[k], (int)n, v);
			}
		}
	}
	tap_ok(found >= 6 && !missing, "each of the %u list examples of docs/policy.md is tested", found);
	missing = 0;
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		for (unsigned k = 0; k < 2; k++) {
			const char *v = k ? examples[i].events : examples[i].commands;
			char want[256];

			snprintf(want, sizeof(want), "%s%s", keys[k], v ? v : "");
			if (v && !strstr(doc, want)) {
				missing++;
				tap_diag("not in docs/policy.md: %s", want);
			}
		}
	}
	tap_ok(!missing, "each example tested here is in docs/policy.md");
	tap_ok(strstr(doc, policy_file) != NULL, "the policy file example of docs/policy.md is tested");
}

int main(int argc, char **argv)
{
	if (argc > 1)
		check_doc(argv[1]);
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++)
		run_example(&examples[i]);
	return tap_done();
}
