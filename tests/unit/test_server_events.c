/* SPDX-License-Identifier: MIT */
/*
 * test_server_events.c - the event machinery: enabling, sending,
 * EVENT_REPLY validation (seq, size, padding, shorter zero-filled, longer
 * rejected), actions, a tool that goes away mid-event, vCPU commands
 * served while a vCPU waits, SET_REGISTERS applied with the reply,
 * PAUSE_VCPU events, UNHOOK, and old-session jobs.
 */
#include "test_server_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int enable(struct harness *h, unsigned vcpu, unsigned event, bool on)
{
	if (event == KVMI_EVENT_UNHOOK || event == KVMI_EVENT_CREATE_VCPU) {
		struct kvmi_control_vm_events c = { .event_id = (uint16_t)event, .enable = on };

		return h_call(h, KVMI_CONTROL_VM_EVENTS, &c, sizeof(c), NULL, 0, NULL, NULL);
	} else {
		struct kvmi_control_events c = { .event_id = (uint16_t)event, .enable = on };

		return h_vcpu_call(h, KVMI_CONTROL_EVENTS, (uint16_t)vcpu, &c, sizeof(c), NULL, NULL);
	}
}

static const struct kvmi_event_cr cr_data = { .cr = 3, .old_value = 0x1000, .new_value = 0x2000 };

/* Starts a CR event on vCPU 1 and reads it; returns its seq. */
static uint32_t cr_event(struct harness *h, struct ev_thread *t)
{
	struct kvmi_event ev;
	uint8_t spec[64];
	size_t n = 0;
	uint32_t seq;

	ev_start(t, h->srv, 1, KVMI_EVENT_CR, &cr_data, sizeof(cr_data),
		 sizeof(struct kvmi_event_cr_reply));
	seq = h_read_event(h, &ev, spec, &n);
	if (seq && (ev.event != KVMI_EVENT_CR || ev.vcpu != 1 || n != sizeof(cr_data) ||
		    memcmp(spec, &cr_data, n)))
		return 0;
	return seq;
}

static void test_basic_reply(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct ev_thread t;
	struct kvmi_event_cr_reply r = { .new_val = 0x3000 }, got;
	uint32_t seq, seq2;

	fake_init(&fake);
	fake.arch.mode = 8;
	fake.arch.regs.rip = 0x1234;
	h_start(&h, &fake, NULL);

	/* not enabled: not sent */
	memset(&t, 0, sizeof(t));
	tap_ok(kvmi_vcpu_event(h.srv, 1, KVMI_EVENT_CR, &cr_data, sizeof(cr_data), &got,
			       sizeof(got), &t.res) == 0 && !t.res.delivered &&
	       t.res.action == KVMI_EVENT_ACTION_CONTINUE, "CR event not enabled: not sent, CONTINUE");
	tap_ok(h_sync(&h), "  ... nothing on the wire");

	tap_ok(enable(&h, 1, KVMI_EVENT_CR, true) == 0, "CONTROL_EVENTS(CR) on vCPU 1");
	tap_ok(kvmi_vcpu_event_enabled(h.srv, 1, KVMI_EVENT_CR) &&
	       !kvmi_vcpu_event_enabled(h.srv, 0, KVMI_EVENT_CR), "enable state is per vCPU");

	seq = cr_event(&h, &t);
	tap_ok(seq == 1, "first event of the session has seq 1 and the CR payload");
	h_event_reply(&h, seq, 1, KVMI_EVENT_ACTION_CONTINUE, KVMI_EVENT_CR, &r, sizeof(r));
	ev_join(&t);
	memcpy(&got, t.rpl, sizeof(got));
	tap_ok(t.ret == 0 && t.res.delivered && t.res.action == KVMI_EVENT_ACTION_CONTINUE &&
	       got.new_val == 0x3000, "CONTINUE with new_val delivered");

	/* shorter reply-specific part: zero-filled */
	seq2 = cr_event(&h, &t);
	tap_ok(seq2 == 2, "event seqs increase");
	h_event_reply(&h, seq2, 1, KVMI_EVENT_ACTION_RETRY, KVMI_EVENT_CR, &r, 4);
	ev_join(&t);
	memcpy(&got, t.rpl, sizeof(got));
	tap_ok(t.res.delivered && t.res.action == KVMI_EVENT_ACTION_RETRY && got.new_val == 0x3000,
	       "4 of 8 reply bytes: accepted, rest zero-filled");
	seq = cr_event(&h, &t);
	h_event_reply(&h, seq, 1, KVMI_EVENT_ACTION_CRASH, KVMI_EVENT_CR, NULL, 0);
	ev_join(&t);
	memcpy(&got, t.rpl, sizeof(got));
	tap_ok(t.res.delivered && t.res.action == KVMI_EVENT_ACTION_CRASH && got.new_val == 0,
	       "CRASH delivered; no specific part -> zeros");
	seq = cr_event(&h, &t);
	h_event_reply(&h, seq, 1, 7, KVMI_EVENT_CR, NULL, 0);
	ev_join(&t);
	tap_ok(t.res.delivered && t.res.action == KVMI_EVENT_ACTION_CONTINUE,
	       "unknown action 7: logged, acts as CONTINUE");
	/* the reply's event byte is not checked (the kernel only traces it) */
	seq = cr_event(&h, &t);
	h_event_reply(&h, seq, 1, KVMI_EVENT_ACTION_CONTINUE, 99, NULL, 0);
	ev_join(&t);
	tap_ok(t.res.delivered, "reply with a different event byte accepted");

	tap_ok(enable(&h, 1, KVMI_EVENT_CR, false) == 0 &&
	       !kvmi_vcpu_event_enabled(h.srv, 1, KVMI_EVENT_CR), "CONTROL_EVENTS disable");
	tap_ok(h_sync(&h), "connection in sync after all replies");
	h_stop(&h);
	fake_destroy(&fake);
}

/* Each violation closes the connection and the vCPU continues. */
static void test_bad_replies(void)
{
	static const struct {
		const char *what;
		int kind;
	} cases[] = {
		{ "wrong seq", 0 }, { "size 8 (no kvmi_event_reply)", 1 },
		{ "specific part longer than expected", 2 }, { "vCPU header padding", 3 },
		{ "kvmi_event_reply padding", 4 }, { "vCPU not waiting", 5 },
		{ "vCPU beyond max_vcpus", 6 }, { "a second reply to the same event", 7 },
	};
	unsigned i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kvmi_backend fake;
		struct harness h;
		struct ev_thread t;
		uint8_t buf[64] = { 0 };
		uint32_t seq;

		fake_init(&fake);
		h_start(&h, &fake, NULL);
		enable(&h, 1, KVMI_EVENT_CR, true);
		seq = cr_event(&h, &t);
		switch (cases[i].kind) {
		case 0:
			h_event_reply(&h, seq + 1, 1, 0, KVMI_EVENT_CR, NULL, 0);
			break;
		case 1:
			buf[0] = 1;
			h_cmd(&h, KVMI_EVENT_REPLY, seq, buf, 8, NULL, 0);
			break;
		case 2:
			h_event_reply(&h, seq, 1, 0, KVMI_EVENT_CR, buf, 9);
			break;
		case 3:
			buf[0] = 1;
			buf[4] = 1;
			h_cmd(&h, KVMI_EVENT_REPLY, seq, buf, 16, NULL, 0);
			break;
		case 4:
			buf[0] = 1;
			buf[8 + 3] = 1;
			h_cmd(&h, KVMI_EVENT_REPLY, seq, buf, 16, NULL, 0);
			break;
		case 5:
			h_event_reply(&h, seq, 2, 0, KVMI_EVENT_CR, NULL, 0);
			break;
		case 6:
			h_event_reply(&h, seq, 100, 0, KVMI_EVENT_CR, NULL, 0);
			break;
		case 7:
			/* run jobs gate: a second reply arrives before the vCPU
			 * consumed the first one, or after; either way the
			 * second has nothing to answer */
			h_event_reply(&h, seq, 1, 0, KVMI_EVENT_CR, NULL, 0);
			ev_join(&t);
			h_event_reply(&h, seq, 1, 0, KVMI_EVENT_CR, NULL, 0);
			tap_ok(h_closed(&h), "event reply: %s -> connection closed", cases[i].what);
			h_stop(&h);
			fake_destroy(&fake);
			continue;
		}
		tap_ok(h_closed(&h), "event reply: %s -> connection closed", cases[i].what);
		ev_join(&t);
		tap_ok(t.ret == 0 && !t.res.delivered && t.res.action == KVMI_EVENT_ACTION_CONTINUE,
		       "  ... the vCPU continues as if CONTINUE");
		tap_ok(h_join(&h) == -EPROTO, "  ... serve() reports a protocol error");
		h_stop(&h);
		fake_destroy(&fake);
	}
}

static void test_pf_reply(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct ev_thread t;
	struct kvmi_event_pf pf = { .gva = 0x1000, .gpa = 0x2000, .access = KVMI_PAGE_ACCESS_W };
	struct kvmi_event_pf_reply r, got;
	struct kvmi_event ev;
	uint32_t seq;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	enable(&h, 0, KVMI_EVENT_PF, true);

	memset(&r, 0, sizeof(r));
	r.ctx_addr = 0x1000;
	r.ctx_size = 4;
	r.singlestep = 1;        /* libkvmi's field; the K7 kernel wants 0 */
	r.rep_complete = 1;
	memcpy(r.ctx_data, "\x90\x90\x90\x90", 4);
	ev_start(&t, h.srv, 0, KVMI_EVENT_PF, &pf, sizeof(pf), sizeof(got));
	seq = h_read_event(&h, &ev, NULL, NULL);
	h_event_reply(&h, seq, 0, KVMI_EVENT_ACTION_CONTINUE, KVMI_EVENT_PF, &r, sizeof(r));
	ev_join(&t);
	memcpy(&got, t.rpl, sizeof(got));
	tap_ok(t.res.delivered && !memcmp(&got, &r, sizeof(r)),
	       "PF reply (272 bytes, singlestep byte set) delivered whole");

	ev_start(&t, h.srv, 0, KVMI_EVENT_PF, &pf, sizeof(pf), sizeof(got));
	seq = h_read_event(&h, &ev, NULL, NULL);
	r.ctx_size = KVMI_PF_CTX_DATA_SIZE + 1;
	h_event_reply(&h, seq, 0, KVMI_EVENT_ACTION_CONTINUE, KVMI_EVENT_PF, &r, sizeof(r));
	tap_ok(h_closed(&h), "PF reply with ctx_size 257 -> connection closed");
	ev_join(&t);
	tap_ok(!t.res.delivered, "  ... the vCPU continues");
	h_stop(&h);
	fake_destroy(&fake);
}

static void test_disconnect_mid_event(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct ev_thread t;
	struct kvmi_x86_regs regs = { .rip = 0xdead };
	struct kvmi_vcpu_hdr vh = { .vcpu = 1 };
	static uint8_t payload[65536];
	struct kvmi_msg_hdr hdr;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	enable(&h, 1, KVMI_EVENT_CR, true);
	cr_event(&h, &t);
	/* SET_REGISTERS while waiting, then the tool dies */
	h_cmd(&h, KVMI_SET_REGISTERS, 9, &vh, sizeof(vh), &regs, sizeof(regs));
	h_recv(&h, &hdr, payload);
	shutdown(h.tool, SHUT_RDWR);
	ev_join(&t);
	tap_ok(t.ret == 0 && !t.res.delivered && t.res.action == KVMI_EVENT_ACTION_CONTINUE &&
	       !t.res.regs_applied, "tool gone mid-event: vCPU continues, stashed registers dropped");
	tap_ok(h_join(&h) == 0, "serve() returns 0");
	tap_ok(fake_find(&fake, FOP_SESSION_END, NULL) && !fake_find(&fake, FOP_SET_REGISTERS, NULL),
	       "session_end() ran; set_registers() did not");
	tap_ok(!kvmi_vcpu_event_enabled(h.srv, 1, KVMI_EVENT_CR), "event enables are reset");
	tap_ok(!kvmi_server_connected(h.srv), "not connected");
	memset(&t, 0, sizeof(t));
	tap_ok(kvmi_vcpu_event(h.srv, 1, KVMI_EVENT_PAUSE_VCPU, NULL, 0, NULL, 0, &t.res) == 0 &&
	       !t.res.delivered, "events without a tool return at once");
	h_stop(&h);
	fake_destroy(&fake);
}

/* Threaded backend: vCPU commands run on the vCPU thread while it waits,
 * and a reply takes effect only after the commands sent before it. */
static void test_threaded(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct ev_thread t;
	struct kvmi_vcpu_hdr vh = { .vcpu = 1 };
	struct kvmi_get_registers gr = { 0 };
	struct kvmi_x86_regs regs = { .rip = 0xfeed };
	struct kvmi_control_cr ccr = { .enable = 1, .cr = 4 };
	struct kvmi_get_registers_reply rr;
	size_t len = sizeof(rr);
	struct fake_call c;
	uint8_t batch[512];
	size_t n = 0;
	uint32_t seq;
	struct {
		struct kvmi_msg_hdr h;
		struct kvmi_vcpu_hdr v;
		struct kvmi_event_reply r;
	} er = { { KVMI_EVENT_REPLY, 16, 0 }, { 1, 0, 0 }, { 0, KVMI_EVENT_PAUSE_VCPU, 0, 0 } };
	struct kvmi_msg_hdr mh;
	struct kvmi_event ev;
	uint8_t script[472] = { 8 };

	fake_init(&fake);
	fake_make_threaded(&fake);
	fake.script = script;
	fake.script_len = sizeof(script);
	h_start(&h, &fake, NULL);

	ev_start(&t, h.srv, 1, KVMI_EVENT_PAUSE_VCPU, NULL, 0, 0);
	seq = h_read_event(&h, &ev, NULL, NULL);
	tap_ok(seq && ev.event == KVMI_EVENT_PAUSE_VCPU, "threaded: PAUSE_VCPU event sent without enabling");
	tap_ok(h_vcpu_call(&h, KVMI_GET_REGISTERS, 1, &gr, sizeof(gr), &rr, &len) == 0 &&
	       len == sizeof(rr) && rr.mode == 8, "threaded: GET_REGISTERS served while the vCPU waits");
	tap_ok(fake_find(&fake, FOP_GET_REGISTERS, &c) && c.vcpu == 1, "  ... by the backend, for vCPU 1");

	/* SET_REGISTERS + CONTROL_CR + EVENT_REPLY in one write */
	mh = (struct kvmi_msg_hdr){ KVMI_SET_REGISTERS, sizeof(vh) + sizeof(regs), 50 };
	memcpy(batch + n, &mh, 8);
	memcpy(batch + n + 8, &vh, 8);
	memcpy(batch + n + 16, &regs, sizeof(regs));
	n += 16 + sizeof(regs);
	mh = (struct kvmi_msg_hdr){ KVMI_CONTROL_CR, sizeof(vh) + sizeof(ccr), 51 };
	memcpy(batch + n, &mh, 8);
	memcpy(batch + n + 8, &vh, 8);
	memcpy(batch + n + 16, &ccr, sizeof(ccr));
	n += 16 + sizeof(ccr);
	er.h.seq = seq;
	memcpy(batch + n, &er, sizeof(er));
	n += sizeof(er);
	h_send(&h, batch, n);
	ev_join(&t);
	tap_ok(t.res.delivered && t.res.regs_applied, "threaded: SET_REGISTERS applied with the reply");
	tap_ok(fake_find(&fake, FOP_SET_REGISTERS, &c) && c.a[0] == 0xfeed && c.vcpu == 1,
	       "  ... the tool's registers, on vCPU 1");
	tap_ok(fake_find(&fake, FOP_CONTROL_CR, &c) && c.a[0] == 4,
	       "threaded: the CONTROL_CR sent before the reply ran before the event ended");
	{
		static uint8_t payload[65536];
		struct kvmi_msg_hdr a, b;

		tap_ok(h_recv(&h, &a, payload) == 0 && h_recv(&h, &b, payload) == 0 &&
		       a.seq == 50 && b.seq == 51, "threaded: both commands answered");
	}

	/* Jobs of a finished session never touch the guest. */
	tap_ok(h_cmd(&h, KVMI_CONTROL_CR, 60, &vh, sizeof(vh), &ccr, sizeof(ccr)) == 0, "queued a job");
	while (!fake_pending_jobs(&fake, 1))
		usleep(1000);
	shutdown(h.tool, SHUT_RDWR);
	h_join(&h);
	fake_reset_calls(&fake);
	tap_ok(fake_run_jobs(&fake, 1) == 1 && !fake_find(&fake, FOP_CONTROL_CR, NULL),
	       "threaded: a job from a closed session runs as a no-op");
	h_stop(&h);
	fake_destroy(&fake);
}

/* One PAUSE_VCPU message. */
struct pause_req {
	struct kvmi_msg_hdr h;
	struct kvmi_vcpu_hdr v;
	struct kvmi_pause_vcpu p;
};

static void test_pauses(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct ev_thread t;
	struct kvmi_event ev;
	struct kvmi_fake_batch {
		struct kvmi_msg_hdr h1;
		struct kvmi_control_cmd_response off;
		struct pause_req p2, p3;
		struct kvmi_msg_hdr h4;
		struct kvmi_control_cmd_response on;
	} b = {
		{ KVMI_CONTROL_CMD_RESPONSE, 8, 2 }, { 0, 1, 0, 0, 0 },
		{ { KVMI_PAUSE_VCPU, 16, 3 }, { 1, 0, 0 }, { 1, 0, 0, 0 } },
		{ { KVMI_PAUSE_VCPU, 16, 4 }, { 1, 0, 0 }, { 1, 0, 0, 0 } },
		{ KVMI_CONTROL_CMD_RESPONSE, 8, 5 }, { 1, 1, 0, 0, 0 },
	};
	static uint8_t payload[65536];
	struct kvmi_msg_hdr hdr;
	uint32_t s1, s2;
	struct fake_call c;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	h_send(&h, &b, sizeof(b));
	tap_ok(h_recv(&h, &hdr, payload) == 0 && hdr.seq == 5, "pause x2 batch: suffix answered");
	tap_ok(kvmi_vcpu_pending_pauses(h.srv, 1) == 2, "two pause requests pending on vCPU 1");
	tap_ok(fake_find(&fake, FOP_PAUSE, &c) && c.vcpu == 1 && c.a[0] == 1, "backend asked to kick (wait=1)");

	ev_start_pauses(&t, h.srv, 1);
	s1 = h_read_event(&h, &ev, NULL, NULL);
	tap_ok(s1 && ev.event == KVMI_EVENT_PAUSE_VCPU && ev.vcpu == 1, "first PAUSE_VCPU event");
	h_event_reply(&h, s1, 1, KVMI_EVENT_ACTION_CONTINUE, KVMI_EVENT_PAUSE_VCPU, NULL, 0);
	s2 = h_read_event(&h, &ev, NULL, NULL);
	tap_ok(s2 == s1 + 1 && ev.event == KVMI_EVENT_PAUSE_VCPU, "second PAUSE_VCPU event");
	h_event_reply(&h, s2, 1, KVMI_EVENT_ACTION_CONTINUE, KVMI_EVENT_PAUSE_VCPU, NULL, 0);
	ev_join(&t);
	tap_ok(t.ret == 0 && t.res.delivered && kvmi_vcpu_pending_pauses(h.srv, 1) == 0,
	       "one event per request, none left");

	/* CRASH stops the series */
	{
		struct kvmi_pause_vcpu p = { 0 };

		h_vcpu_call(&h, KVMI_PAUSE_VCPU, 2, &p, sizeof(p), NULL, NULL);
		h_vcpu_call(&h, KVMI_PAUSE_VCPU, 2, &p, sizeof(p), NULL, NULL);
	}
	ev_start_pauses(&t, h.srv, 2);
	s1 = h_read_event(&h, &ev, NULL, NULL);
	h_event_reply(&h, s1, 2, KVMI_EVENT_ACTION_CRASH, KVMI_EVENT_PAUSE_VCPU, NULL, 0);
	ev_join(&t);
	tap_ok(t.res.action == KVMI_EVENT_ACTION_CRASH && kvmi_vcpu_pending_pauses(h.srv, 2) == 1,
	       "CRASH on a pause event stops the series");
	tap_ok(h_sync(&h), "no further event sent");
	shutdown(h.tool, SHUT_RDWR);
	h_join(&h);
	tap_ok(kvmi_vcpu_pending_pauses(h.srv, 2) == 0, "disconnect drops pending pauses");
	h_stop(&h);
	fake_destroy(&fake);
}

/* A pipelined pause-all: every vCPU is kicked before the one wait, the
 * replies follow it in order, and a command behind the pauses runs after
 * it. */
static void test_pause_batch(void)
{
	struct kvmi_backend fake;
	struct harness h;
	const struct pause_req b[] = {
		{ { KVMI_PAUSE_VCPU, 16, 10 }, { 0, 0, 0 }, { 1, 0, 0, 0 } },
		{ { KVMI_PAUSE_VCPU, 16, 11 }, { 1, 0, 0 }, { 1, 0, 0, 0 } },
		{ { KVMI_PAUSE_VCPU, 16, 12 }, { 2, 0, 0 }, { 0, 0, 0, 0 } },
	};
	static uint8_t payload[65536];
	struct kvmi_msg_hdr r1, r2, r3;
	char order[FAKE_MAX_CALLS + 1];
	unsigned n = 0;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	h_send(&h, &b, sizeof(b));
	tap_ok(h_recv(&h, &r1, payload) == 0 && h_recv(&h, &r2, payload) == 0 && h_recv(&h, &r3, payload) == 0,
	       "pause-all batch: three replies");
	tap_ok(r1.seq == 10 && r2.seq == 11 && r3.seq == 12, "replies in request order (%u %u %u)", r1.seq,
	       r2.seq, r3.seq);
	/* the calls are read once the server thread has ended (it records
	 * the session's end too) */
	shutdown(h.tool, SHUT_RDWR);
	h_join(&h);
	for (unsigned i = 0; i < fake.ncalls; i++)
		if (fake.calls[i].op == FOP_PAUSE || fake.calls[i].op == FOP_PAUSE_WAIT)
			order[n++] = fake.calls[i].op == FOP_PAUSE ? (char)('0' + fake.calls[i].vcpu) : 'w';
	order[n] = 0;
	tap_ok(!strcmp(order, "012w"), "every vCPU kicked before the one wait (%s)", order);
	h_stop(&h);
	fake_destroy(&fake);
}

static void *unhook_thread(void *opaque)
{
	struct harness *h = opaque;

	return (void *)(intptr_t)kvmi_server_unhook(h->srv, 5000);
}

static void test_unhook_and_vm_events(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct kvmi_event ev;
	struct ev_thread t;
	pthread_t th;
	void *ret;
	uint32_t seq;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	tap_ok(kvmi_server_unhook(h.srv, 100) == -ENOENT, "UNHOOK not enabled -> -ENOENT, nothing sent");
	tap_ok(h_sync(&h), "  ... nothing on the wire");
	memset(&t, 0, sizeof(t));
	tap_ok(kvmi_vcpu_event(h.srv, 0, KVMI_EVENT_UNHOOK, NULL, 0, NULL, 0, &t.res) == -EINVAL,
	       "UNHOOK is not a vCPU event");

	/* CREATE_VCPU is a VM event sent from the new vCPU */
	ev_start(&t, h.srv, 3, KVMI_EVENT_CREATE_VCPU, NULL, 0, 0);
	ev_join(&t);
	tap_ok(!t.res.delivered, "CREATE_VCPU not enabled: not sent");
	tap_ok(enable(&h, 0, KVMI_EVENT_CREATE_VCPU, true) == 0, "CONTROL_VM_EVENTS(CREATE_VCPU)");
	ev_start(&t, h.srv, 3, KVMI_EVENT_CREATE_VCPU, NULL, 0, 0);
	seq = h_read_event(&h, &ev, NULL, NULL);
	tap_ok(seq && ev.event == KVMI_EVENT_CREATE_VCPU && ev.vcpu == 3, "CREATE_VCPU from vCPU 3");
	h_event_reply(&h, seq, 3, KVMI_EVENT_ACTION_CONTINUE, KVMI_EVENT_CREATE_VCPU, NULL, 0);
	ev_join(&t);
	tap_ok(t.res.delivered, "  ... replied");

	tap_ok(enable(&h, 0, KVMI_EVENT_UNHOOK, true) == 0, "CONTROL_VM_EVENTS(UNHOOK)");
	pthread_create(&th, NULL, unhook_thread, &h);
	seq = h_read_event(&h, &ev, NULL, NULL);
	tap_ok(seq && ev.event == KVMI_EVENT_UNHOOK && ev.vcpu == 0 && ev.size == sizeof(ev),
	       "UNHOOK event sent");
	close(h.tool);
	h.tool = -1;
	pthread_join(th, &ret);
	tap_ok((intptr_t)ret == 0, "kvmi_server_unhook returns once the tool closed");
	h_join(&h);
	{
		int sv = socket(AF_UNIX, SOCK_STREAM, 0);

		h.tool = sv;  /* h_stop closes it */
	}
	h_stop(&h);
	fake_destroy(&fake);
}

static void test_trap_policy(void)
{
	struct kvmi_policy pol;
	struct kvmi_server_config cfg = { .policy = &pol };
	struct kvmi_backend fake;
	struct harness h;
	struct ev_thread t;
	struct kvmi_event_trap trap = { .vector = 14, .error_code = 2, .cr2 = 0x1000 };
	struct kvmi_event ev;
	uint8_t spec[32];
	size_t n = 0;
	uint32_t seq;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	ev_start(&t, h.srv, 0, KVMI_EVENT_TRAP, &trap, sizeof(trap), 0);
	seq = h_read_event(&h, &ev, spec, &n);
	tap_ok(seq && ev.event == KVMI_EVENT_TRAP && n == sizeof(trap) && !memcmp(spec, &trap, n),
	       "TRAP is sent without enabling");
	h_event_reply(&h, seq, 0, 0, KVMI_EVENT_TRAP, NULL, 0);
	ev_join(&t);
	h_stop(&h);

	kvmi_policy_allow_all(&pol);
	pol.events &= ~(1ull << KVMI_EVENT_TRAP);
	h_start(&h, &fake, &cfg);
	ev_start(&t, h.srv, 0, KVMI_EVENT_TRAP, &trap, sizeof(trap), 0);
	ev_join(&t);
	tap_ok(!t.res.delivered && h_sync(&h), "TRAP disallowed by policy: not sent");
	h_stop(&h);
	fake_destroy(&fake);
}

static void *serve_stop_thread(void *opaque)
{
	struct kvmi_server *srv = opaque;

	usleep(20000);
	kvmi_server_stop(srv);
	return NULL;
}

static void test_stop(void)
{
	struct kvmi_backend fake;
	struct harness h;
	pthread_t th;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	tap_ok(h_sync(&h), "server up");
	pthread_create(&th, NULL, serve_stop_thread, h.srv);
	tap_ok(h_join(&h) == 0, "kvmi_server_stop ends serve()");
	pthread_join(th, NULL);
	tap_ok(h_closed(&h), "  ... and closes the connection");
	h_stop(&h);
	fake_destroy(&fake);
}

/* A tool that stops reading is dropped after send_timeout_ms. */
static void test_stuck_tool(void)
{
	struct kvmi_server_config cfg = { .send_timeout_ms = 100 };
	struct kvmi_backend fake;
	struct harness h;
	static uint8_t reqs[1000 * 16];
	unsigned i;

	for (i = 0; i < 1000; i++) {
		struct kvmi_msg_hdr hdr = { KVMI_GET_XSAVE, 8, i };

		memcpy(reqs + 16 * i, &hdr, 8);
		memset(reqs + 16 * i + 8, 0, 8);
	}
	fake_init(&fake);
	h_start(&h, &fake, &cfg);
	h_send(&h, reqs, sizeof(reqs));     /* 16 KB in, 4 MB of replies out */
	h_join(&h);
	tap_ok(!kvmi_server_connected(h.srv) && fake.total_calls < 1000,
	       "tool not reading 4 MB of replies: dropped after the send timeout (%u of 1000 served)",
	       fake.total_calls);
	h_stop(&h);
	fake_destroy(&fake);
}


/*
 * The vCPU that waits reads its reply off the socket itself (KVMI_SPIN_US):
 * a command that came in the same read, right behind the reply, must still
 * reach the introspection thread, and every reply of a pipelined batch
 * must come back, in order.
 */
static void test_reply_and_command_in_one_write(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct ev_thread t;
	struct kvmi_event_cr_reply r = { .new_val = 0x2000 };
	int lost = 0, wrong = 0, rounds = 200;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	tap_ok(enable(&h, 1, KVMI_EVENT_CR, true) == 0, "CONTROL_EVENTS(CR) on vCPU 1");
	for (int i = 0; i < rounds; i++) {
		uint8_t buf[2 * sizeof(struct kvmi_msg_hdr) + 16 + sizeof(r)];
		struct kvmi_msg_hdr rh = { .id = KVMI_EVENT_REPLY, .size = 16 + sizeof(r) };
		struct kvmi_msg_hdr ch = { .id = KVMI_GET_VERSION, .size = 0, .seq = 0x7000 + (uint32_t)i };
		struct kvmi_vcpu_hdr vh = { .vcpu = 1 };
		struct kvmi_event_reply er = { .action = KVMI_EVENT_ACTION_CONTINUE, .event = KVMI_EVENT_CR };
		struct kvmi_msg_hdr got;
		uint8_t payload[65536];
		size_t n = 0;

		rh.seq = cr_event(&h, &t);
		memcpy(buf + n, &rh, sizeof(rh)); n += sizeof(rh);
		memcpy(buf + n, &vh, sizeof(vh)); n += sizeof(vh);
		memcpy(buf + n, &er, sizeof(er)); n += sizeof(er);
		memcpy(buf + n, &r, sizeof(r)); n += sizeof(r);
		memcpy(buf + n, &ch, sizeof(ch)); n += sizeof(ch);
		h_send(&h, buf, n);
		ev_join(&t);
		if (!t.res.delivered)
			wrong++;
		if (h_recv(&h, &got, payload) || got.id != KVMI_GET_VERSION || got.seq != ch.seq) {
			lost++;
			break;
		}
	}
	tap_ok(!wrong, "reply + command in one write, %d times: every reply reached its vCPU", rounds);
	tap_ok(!lost, "  ... and every command behind a reply was answered");

	/* 300 commands in one write: 300 replies, in order. */
	{
		enum { N = 300 };
		struct kvmi_msg_hdr hs[N], got;
		uint8_t payload[65536];
		bool in_order = true;

		for (int i = 0; i < N; i++)
			hs[i] = (struct kvmi_msg_hdr){ .id = KVMI_GET_VERSION, .seq = 0x9000 + (uint32_t)i };
		h_send(&h, hs, sizeof(hs));
		for (int i = 0; i < N && in_order; i++)
			in_order = h_recv(&h, &got, payload) == 0 && got.id == KVMI_GET_VERSION &&
				   got.seq == 0x9000u + (uint32_t)i;
		tap_ok(in_order, "%d pipelined commands in one write: %d replies, in order", N, N);
		tap_ok(h_sync(&h), "  ... and nothing else");
	}
	h_stop(&h);
	fake_destroy(&fake);
}

/* A vCPU whose reply is late stops spinning on the socket (KVMI_SPIN_US,
 * 50 µs by default) and sleeps in the backend's wait; the reply, 30 ms
 * later, still reaches it through the introspection thread. */
static void test_late_reply_sleeps(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct ev_thread t;
	struct timespec ts = { 0, 30 * 1000000 };
	struct kvmi_event ev;
	uint32_t seq;

	fake_init(&fake);
	fake_make_threaded(&fake);
	h_start(&h, &fake, NULL);
	ev_start(&t, h.srv, 1, KVMI_EVENT_PAUSE_VCPU, NULL, 0, 0);
	seq = h_read_event(&h, &ev, NULL, NULL);
	tap_ok(seq && ev.event == KVMI_EVENT_PAUSE_VCPU, "late reply: a PAUSE_VCPU event");
	nanosleep(&ts, NULL);
	tap_ok(atomic_load(&fake.wait_reply_calls) == 1,
	       "  ... after 30 ms without a reply the vCPU sleeps in the backend's wait");
	h_event_reply(&h, seq, 1, KVMI_EVENT_ACTION_CONTINUE, KVMI_EVENT_PAUSE_VCPU, NULL, 0);
	ev_join(&t);
	tap_ok(t.ret == 0 && t.res.delivered && t.res.action == KVMI_EVENT_ACTION_CONTINUE,
	       "  ... and the reply still reaches it");
	tap_ok(h_sync(&h), "  ... the connection stays in step");
	h_stop(&h);
	fake_destroy(&fake);
}

/*
 * A vCPU job whose handler still runs when the tool goes away: the session
 * ends only after it.  Otherwise a CONTROL_MSR could land after
 * session_end() undid the tool's changes, and the next session would
 * inherit the interception.  The handler waits up to 300 ms for the
 * session's end to show; with the job accounted for it cannot.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool in_op, ended, ended_during_op;
} race = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false };

static int slow_control_msr(struct kvmi_backend *b, unsigned vcpu, uint32_t msr, bool enable)
{
	struct timespec ts;

	(void)b;
	(void)vcpu;
	(void)msr;
	(void)enable;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 300 * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&race.lock);
	race.in_op = true;
	pthread_cond_broadcast(&race.cond);
	while (!race.ended && pthread_cond_timedwait(&race.cond, &race.lock, &ts) != ETIMEDOUT)
		;
	race.ended_during_op = race.ended;
	pthread_mutex_unlock(&race.lock);
	return 0;
}

static void noting_session_end(struct kvmi_backend *b)
{
	(void)b;
	pthread_mutex_lock(&race.lock);
	race.ended = true;
	pthread_cond_broadcast(&race.cond);
	pthread_mutex_unlock(&race.lock);
}

static void *run_vcpu0_jobs(void *arg)
{
	fake_run_jobs(arg, 0);
	return NULL;
}

static void test_job_outlives_session(void)
{
	struct kvmi_control_msr cm = { .enable = 1, .msr = 0x174 };
	struct kvmi_vcpu_hdr vh = { .vcpu = 0 };
	struct kvmi_backend fake;
	struct harness h;
	pthread_t thr;
	bool queued = false;

	fake_init(&fake);
	fake_make_threaded(&fake);
	fake.ops.control_msr = slow_control_msr;
	fake.ops.session_end = noting_session_end;
	h_start(&h, &fake, NULL);
	h_cmd(&h, KVMI_CONTROL_MSR, 77, &vh, sizeof(vh), &cm, sizeof(cm));
	for (int i = 0; i < 2000 && !queued; i++) {
		queued = fake_pending_jobs(&fake, 0) > 0;
		if (!queued)
			usleep(1000);
	}
	tap_ok(queued, "job vs session end: CONTROL_MSR queued for vCPU 0");
	pthread_create(&thr, NULL, run_vcpu0_jobs, &fake);
	pthread_mutex_lock(&race.lock);
	while (!race.in_op)
		pthread_cond_wait(&race.cond, &race.lock);
	pthread_mutex_unlock(&race.lock);
	shutdown(h.tool, SHUT_RDWR);    /* the tool goes away mid-handler */
	pthread_join(thr, NULL);
	h_stop(&h);
	tap_ok(!race.ended_during_op && race.ended,
	       "  ... the session ended only after the handler returned");
	fake_destroy(&fake);
}

int main(void)
{
	test_basic_reply();
	test_bad_replies();
	test_pf_reply();
	test_disconnect_mid_event();
	test_threaded();
	test_pauses();
	test_pause_batch();
	test_reply_and_command_in_one_write();
	test_late_reply_sleeps();
	test_unhook_and_vm_events();
	test_trap_policy();
	test_stop();
	test_stuck_tool();
	test_job_outlives_session();
	return tap_done();
}
