/* SPDX-License-Identifier: MIT */
/*
 * test_server_vectors.c - drive the protocol server with the requests the
 * unmodified libkvmi recorded (tests/unit/test_wire_vectors.h) and check
 * that it answers exactly the recorded bytes, that every request reaches
 * the backend decoded as the call meant, and that events leave the server
 * byte-identical to the recorded layouts.
 *
 * The fake backend is scripted from each vector: the data of the recorded
 * success reply is what the backend "reads from the guest", and the
 * recorded error code is what it returns.
 */
#include "test_server_util.h"
#include "test_wire_vectors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* memcmp that accepts the NULL of an empty vector field */
static bool same(const void *a, const void *b, size_t n)
{
	return !n || !memcmp(a, b, n);
}

static const struct wire_vector *find(const char *name)
{
	for (size_t i = 0; i < wire_vectors_count; i++)
		if (!strcmp(wire_vectors[i].name, name))
			return &wire_vectors[i];
	return NULL;
}

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* Offset of the last framed message in buf (for the scripted data). */
static bool last_msg(const uint8_t *buf, size_t len, size_t *off, struct kvmi_msg_hdr *hdr)
{
	size_t o = 0;
	bool found = false;

	while (o + sizeof(*hdr) <= len) {
		struct kvmi_msg_hdr h;

		memcpy(&h, buf + o, sizeof(h));
		if (o + sizeof(h) + h.size > len)
			break;
		*off = o;
		*hdr = h;
		found = true;
		o += sizeof(h) + h.size;
	}
	return found;
}

/* What the backend must have been asked for each successful cmd vector. */
struct expect {
	const char *name;       /* vector name without the /ok suffix */
	enum fake_op op;
	unsigned vcpu;
	uint64_t a0, a1, a2;
};

static const struct expect expects[] = {
	{ "cmd/get_tsc_speed", FOP_TSC, 0, 0, 0, 0 },
	{ "cmd/control_events", FOP_CONTROL_EVENTS, 1, KVMI_EVENT_PF, 1, 0 },
	{ "cmd/control_events_disable", FOP_CONTROL_EVENTS, 0, KVMI_EVENT_CR, 0, 0 },
	{ "cmd/control_vm_events", FOP_CONTROL_VM_EVENTS, 0, KVMI_EVENT_UNHOOK, 1, 0 },
	{ "cmd/control_cr", FOP_CONTROL_CR, 0, 3, 1, 0 },
	{ "cmd/control_msr", FOP_CONTROL_MSR, 1, 0xc0000081, 1, 0 },
	{ "cmd/control_singlestep", FOP_SINGLESTEP, 2, 1, 0, 0 },
	{ "cmd/pause_all_vcpus_count1", FOP_PAUSE, 0, 1, 0, 0 },
	{ "cmd/pause_all_vcpus_count2", FOP_PAUSE, 1, 1, 0, 0 },
	{ "cmd/get_registers_nmsrs0", FOP_GET_REGISTERS, 1, 0, 0, 0 },
	{ "cmd/get_registers_nmsrs2", FOP_GET_REGISTERS, 1, 2, 0, 0 },
	{ "cmd/get_cpuid", FOP_GET_CPUID, 0, 1, 0, 0 },
	{ "cmd/get_xsave", FOP_GET_XSAVE, 0, 4096, 0, 0 },
	{ "cmd/set_xsave_4096", FOP_SET_XSAVE, 0, 4096, 0, 0 },
	{ "cmd/set_xsave_512", FOP_SET_XSAVE, 1, 512, 0, 0 },
	{ "cmd/get_xcr", FOP_GET_XCR, 0, 0, 0, 0 },
	{ "cmd/get_mtrr_type", FOP_MTRR, 0, 0x100000, 0, 0 },
	{ "cmd/inject_exception", FOP_INJECT, 1, 14, 2, 0x7fff0000 },
	{ "cmd/read_physical_8", FOP_READ, 0, 0x1000, 8, 0 },
	{ "cmd/read_physical_4096", FOP_READ, 0, 0x2000, 4096, 0 },
	{ "cmd/write_physical_8", FOP_WRITE, 0, 0x3000, 8, 0 },
	{ "cmd/write_physical_4096", FOP_WRITE, 0, 0x4000, 4096, 0 },
	{ "cmd/set_page_access_1", FOP_SET_PAGE_ACCESS, 0, 0, 1, 0 },
	{ "cmd/set_page_access_3", FOP_SET_PAGE_ACCESS, 0, 2, 3, 0 },
	{ "cmd/set_page_write_bitmap_1", FOP_SET_PAGE_WRITE_BITMAP, 0, 0, 1, 0 },
	{ "cmd/set_page_write_bitmap_2", FOP_SET_PAGE_WRITE_BITMAP, 0, 0, 2, 0 },
	{ "cmd/get_maximum_gfn", FOP_GET_MAX_GFN, 0, 0, 0, 0 },
	{ "cmd/get_next_available_gfn", FOP_GET_NEXT_GFN, 0, 0, 0, 0 },
	{ "cmd/translate_gva", FOP_TRANSLATE, 0, 0xffffffff81001234ull, 0, 0 },
	{ "cmd/set_ve_info_page", FOP_SET_VE, 1, 0x7000, 0, 0 },
	{ "cmd/switch_ept_view", FOP_SWITCH_VIEW, 1, 2, 0, 0 },
	{ "cmd/disable_ve", FOP_DISABLE_VE, 1, 0, 0, 0 },
	{ "cmd/get_ept_view", FOP_GET_VIEW, 1, 0, 0, 0 },
	{ "cmd/control_ept_view", FOP_CONTROL_VIEW, 1, 2, 1, 0 },
	{ "cmd/create_ept_view", FOP_CREATE_VIEW, 0, 0, 0, 0 },
	{ "cmd/destroy_ept_view", FOP_DESTROY_VIEW, 0, 1, 0, 0 },
	{ "cmd/change_gfn", FOP_CHANGE_GFN, 1, 2, 0x1234, 0x5678 },
	{ "cmd/alloc_gfn", FOP_ALLOC_GFN, 0, 0x20000, 0, 0 },
	{ "cmd/free_gfn", FOP_FREE_GFN, 0, 0x20000, 0, 0 },
	{ "cmd/map_physical_page_v1", FOP_GET_MAP_TOKEN, 0, 0, 0, 0 },
	{ "shim/map_physical_page-host-query-physical", FOP_QUERY_PHYSICAL, 0, 0x11, 0, 0 },
	/* answered by the server itself: no backend call */
	{ "cmd/check_command", FOP_NONE, 0, 0, 0, 0 },
	{ "cmd/check_event", FOP_NONE, 0, 0, 0, 0 },
	{ "cmd/get_vcpu_count", FOP_NONE, 0, 0, 0, 0 },
};

static const struct expect *expect_for(const char *name)
{
	for (size_t i = 0; i < sizeof(expects) / sizeof(expects[0]); i++) {
		size_t n = strlen(expects[i].name);

		if (!strncmp(name, expects[i].name, n) && name[n] == '/')
			return &expects[i];
	}
	return NULL;
}

static void check_call(struct kvmi_backend *f, const struct wire_vector *v)
{
	const struct expect *e = expect_for(v->name);
	struct fake_call c;

	if (!e) {
		tap_ok(false, "%s: no expected call listed", v->name);
		return;
	}
	if (e->op == FOP_NONE)
		return;
	if (!fake_find(f, e->op, &c)) {
		tap_ok(false, "%s: backend op %d not called", v->name, e->op);
		return;
	}
	tap_ok(c.vcpu == e->vcpu && c.a[0] == e->a0 && c.a[1] == e->a1 && c.a[2] == e->a2,
	       "%s: decoded as op %d vcpu %u (%#llx, %#llx, %#llx)", v->name, e->op, c.vcpu,
	       (unsigned long long)c.a[0], (unsigned long long)c.a[1],
	       (unsigned long long)c.a[2]);
	/* Payload-carrying requests: the data reached the backend intact. */
	if (e->op == FOP_WRITE || e->op == FOP_SET_XSAVE) {
		size_t hdr = e->op == FOP_WRITE ? 8 + 16 : 8 + 8;

		tap_ok(c.len == v->request_len - hdr &&
		       same(c.data, v->request + hdr, c.len),
		       "%s: data bytes passed through", v->name);
	}
	if (e->op == FOP_GET_REGISTERS && e->a0 == 2) {
		struct kvmi_x86_msr_entry m[2];

		memcpy(m, c.data, sizeof(m));
		tap_ok(m[0].index == 0xc0000080 && m[1].index == 0x174,
		       "%s: MSR indices decoded", v->name);
	}
	if (e->op == FOP_SET_PAGE_ACCESS || e->op == FOP_SET_PAGE_WRITE_BITMAP) {
		tap_ok(c.len == v->request_len - 16 && same(c.data, v->request + 16, c.len),
		       "%s: entries passed through", v->name);
	}
}

struct vcpu_event_args {
	struct kvmi_server *srv;
	unsigned vcpu, event;
	const void *data;
	size_t len;
	uint8_t rpl[512];
	size_t rpl_len;
	struct kvmi_event_result res;
	int ret;
};

static void *vcpu_event_thread(void *opaque)
{
	struct vcpu_event_args *a = opaque;

	a->ret = kvmi_vcpu_event(a->srv, a->vcpu, a->event, a->data, a->len, a->rpl, a->rpl_len,
				 &a->res);
	return NULL;
}

/* Raises a PAUSE_VCPU event on vcpu 1 and reads it; returns its seq. */
static uint32_t pending_pause(struct harness *h, pthread_t *t, struct vcpu_event_args *a)
{
	static uint8_t payload[65536];
	struct kvmi_msg_hdr hdr;

	memset(a, 0, sizeof(*a));
	a->srv = h->srv;
	a->vcpu = 1;
	a->event = KVMI_EVENT_PAUSE_VCPU;
	pthread_create(t, NULL, vcpu_event_thread, a);
	if (h_recv(h, &hdr, payload) || hdr.id != KVMI_EVENT)
		return 0;
	return hdr.seq;
}

static void patch_seq(uint8_t *msg, uint32_t seq)
{
	memcpy(msg + 4, &seq, sizeof(seq));
}

static void test_cmd_vector(const struct wire_vector *v)
{
	static uint8_t got[65536], want[65536];
	struct kvmi_backend fake;
	struct harness h;
	struct kvmi_msg_hdr hdr;
	size_t off = 0, want_len = v->reply_len;
	bool is_err = strstr(v->name, "/err-") != NULL;
	bool batch_err = (is_err && strstr(v->name, "pause_all_vcpus")) ||
			 strstr(v->name, "error-on-suffix");

	if (!strcmp(v->name, "cmd/get_vcpu_count/err-EINVAL")) {
		tap_skip("GET_GUEST_INFO cannot fail in kvmi-vm", "%s", v->name);
		return;
	}

	fake_init(&fake);
	memcpy(want, v->reply, v->reply_len);
	if (batch_err) {
		/* The recording VMM scripted an error on the trailing
		 * CMD_RESPONSE, which a correct server never returns for a
		 * valid one; ours fails the pauses instead, and those errors
		 * stay silent because replies are off. */
		memset(want + 8, 0, 4);
		fake.err = -KVM_EINVAL;
	} else if (last_msg(v->reply, v->reply_len, &off, &hdr)) {
		fake.err = v->last_reply_err;
		if (!fake.err) {
			fake.script = v->reply + off + 16;
			fake.script_len = hdr.size - 8;
		}
	}
	if (!strncmp(v->name, "cmd/check_command/", 18))
		fake.check_command_err[KVMI_GET_REGISTERS] = fake.err;
	if (!strncmp(v->name, "cmd/check_event/", 16))
		fake.check_event_err[KVMI_EVENT_PF] = fake.err;

	if (h_start(&h, &fake, NULL)) {
		tap_ok(false, "%s: harness", v->name);
		return;
	}
	h_send(&h, v->request, v->request_len);
	memset(got, 0, want_len);
	tap_ok(h_read(&h, got, want_len) == 0 && same(got, want, want_len),
	       "%s: reply bytes identical (%zu)", v->name, want_len);
	tap_hexdiff(v->name, got, want_len, want, want_len);
	tap_ok(h_sync(&h), "%s: nothing else sent", v->name);
	if (!is_err && !batch_err)
		check_call(&fake, v);
	h_stop(&h);
	fake_destroy(&fake);
}

/* SET_REGISTERS is only valid while the vCPU waits for an event reply. */
static void test_set_registers_vectors(void)
{
	static uint8_t got[256], reply[64];
	const struct wire_vector *ok = find("cmd/set_registers/ok");
	const struct wire_vector *bad = find("cmd/set_registers/err-EINVAL");
	struct vcpu_event_args a;
	struct kvmi_backend fake;
	struct harness h;
	struct fake_call c;
	pthread_t t;
	uint32_t seq;
	struct kvmi_error_code ec;

	if (!ok || !bad)
		return;
	fake_init(&fake);
	h_start(&h, &fake, NULL);
	seq = pending_pause(&h, &t, &a);
	tap_ok(seq != 0, "set_registers: PAUSE_VCPU event pending on vCPU 1");
	h_send(&h, ok->request, ok->request_len);
	tap_ok(h_read(&h, got, ok->reply_len) == 0 && same(got, ok->reply, ok->reply_len),
	       "%s: reply bytes identical", ok->name);
	/* CONTINUE for the pause; the registers are applied with it. */
	memcpy(reply, "\x00\x00\x10\x00", 4);
	patch_seq(reply, seq);
	memcpy(reply + 8, "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x00\x00\x00\x00", 16);
	h_send(&h, reply, 24);
	pthread_join(t, NULL);
	tap_ok(a.ret == 0 && a.res.delivered && a.res.regs_applied, "%s: applied after the reply",
	       ok->name);
	tap_ok(fake_find(&fake, FOP_SET_REGISTERS, &c) && c.vcpu == 1 && c.len == 144 &&
	       same(c.data, ok->request + 16, 144), "%s: registers decoded", ok->name);

	/* Without a pending event the command is refused. */
	h_send(&h, bad->request, bad->request_len);
	tap_ok(h_read(&h, got, 16) == 0 && same(got, bad->reply, 8) &&
	       (memcpy(&ec, got + 8, 8), ec.err == -KVM_EOPNOTSUPP),
	       "%s: outside an event -> -KVM_EOPNOTSUPP (recorded EINVAL was scripted)", bad->name);
	h_stop(&h);
	fake_destroy(&fake);
}

/* Batches that end with an event reply: the reply's seq is the event's. */
static void test_batch_with_event_reply(const char *name, bool expect_regs)
{
	static uint8_t req[65536], got[256];
	const struct wire_vector *v = find(name);
	struct vcpu_event_args a;
	struct kvmi_backend fake;
	struct harness h;
	size_t o = 0;
	uint32_t seq;
	pthread_t t;

	if (!v)
		return;
	fake_init(&fake);
	h_start(&h, &fake, NULL);
	seq = pending_pause(&h, &t, &a);
	memcpy(req, v->request, v->request_len);
	while (o + 8 <= v->request_len) {
		struct kvmi_msg_hdr hh;

		memcpy(&hh, req + o, 8);
		if (hh.id == KVMI_EVENT_REPLY)
			patch_seq(req + o, seq);
		o += 8 + hh.size;
	}
	h_send(&h, req, v->request_len);
	pthread_join(t, NULL);
	tap_ok(a.res.delivered && a.res.action == KVMI_EVENT_ACTION_CONTINUE,
	       "%s: event completed with CONTINUE", name);
	tap_ok(a.res.regs_applied == expect_regs, "%s: registers %sapplied", name,
	       expect_regs ? "" : "not ");
	if (v->followup_request_len) {
		h_send(&h, v->followup_request, v->followup_request_len);
		tap_ok(h_read(&h, got, v->followup_reply_len) == 0 &&
		       same(got, v->followup_reply, v->followup_reply_len),
		       "%s: stream in sync, next command answered identically", name);
	}
	h_stop(&h);
	fake_destroy(&fake);
}

static void test_batch_vector(const struct wire_vector *v)
{
	static uint8_t got[65536];
	struct kvmi_backend fake;
	struct harness h;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	h_send(&h, v->request, v->request_len);
	tap_ok(h_read(&h, got, v->reply_len) == 0 && same(got, v->reply, v->reply_len),
	       "%s: only the trailing CMD_RESPONSE answered, identically", v->name);
	if (v->followup_request_len) {
		h_send(&h, v->followup_request, v->followup_request_len);
		tap_ok(h_read(&h, got, v->followup_reply_len) == 0 &&
		       same(got, v->followup_reply, v->followup_reply_len),
		       "%s: followup answered identically", v->name);
	}
	tap_ok(h_sync(&h), "%s: nothing else sent", v->name);
	h_stop(&h);
	fake_destroy(&fake);
}

/* event/ *: the pure encoder and the live path both produce the bytes. */
static void test_event_vector(const struct wire_vector *v)
{
	static uint8_t buf[65536], got[65536], want[65536];
	struct kvmi_event ev;
	struct kvmi_msg_hdr hdr;
	struct kvmi_backend fake;
	struct vcpu_event_args a;
	struct harness h;
	const uint8_t *spec;
	size_t spec_len, n;
	uint8_t reply[24] = { 0 };
	pthread_t t;
	int err;

	memcpy(&hdr, v->event, sizeof(hdr));
	memcpy(&ev, v->event + 8, sizeof(ev));
	spec = v->event + 8 + sizeof(ev);
	spec_len = v->event_len - 8 - sizeof(ev);
	tap_ok(spec_len == kvmi_srv_event_data_size(ev.event), "%s: specific part is %zu bytes",
	       v->name, spec_len);

	n = kvmi_srv_event_encode(buf, hdr.seq, ev.vcpu, ev.event, &ev.arch, spec, spec_len);
	tap_ok(n == v->event_len && same(buf, v->event, n), "%s: encoder output identical",
	       v->name);

	fake_init(&fake);
	fake.arch = ev.arch;
	h_start(&h, &fake, NULL);
	if (ev.event == KVMI_EVENT_UNHOOK || ev.event == KVMI_EVENT_CREATE_VCPU) {
		struct kvmi_control_vm_events c = { .event_id = ev.event, .enable = 1 };

		err = h_call(&h, KVMI_CONTROL_VM_EVENTS, &c, sizeof(c), NULL, 0, NULL, NULL);
	} else {
		struct kvmi_control_events c = { .event_id = ev.event, .enable = 1 };

		err = h_vcpu_call(&h, KVMI_CONTROL_EVENTS, ev.vcpu, &c, sizeof(c), NULL, NULL);
	}
	tap_ok(err == 0, "%s: enabled", v->name);

	memcpy(want, v->event, v->event_len);
	if (ev.event == KVMI_EVENT_UNHOOK) {
		/* Sent from the introspection side, without vCPU state. */
		memset(want + 8 + offsetof(struct kvmi_event, arch), 0, sizeof(ev.arch));
		patch_seq(want, 1);
		tap_ok(kvmi_server_unhook(h.srv, 0) == -ETIMEDOUT, "%s: sent, tool still there",
		       v->name);
		tap_ok(h_read(&h, got, v->event_len) == 0 && same(got, want, v->event_len),
		       "%s: live event identical (arch zeroed)", v->name);
		h_stop(&h);
		fake_destroy(&fake);
		return;
	}

	memset(&a, 0, sizeof(a));
	a.srv = h.srv;
	a.vcpu = ev.vcpu;
	a.event = ev.event;
	a.data = spec;
	a.len = spec_len;
	a.rpl_len = kvmi_srv_event_reply_size(ev.event);
	pthread_create(&t, NULL, vcpu_event_thread, &a);
	patch_seq(want, 1);
	tap_ok(h_read(&h, got, v->event_len) == 0 && same(got, want, v->event_len),
	       "%s: live event identical", v->name);
	tap_hexdiff(v->name, got, v->event_len, want, v->event_len);

	memcpy(reply, "\x00\x00\x10\x00\x01\x00\x00\x00", 8);
	memcpy(reply + 8, &ev.vcpu, 2);
	reply[17] = ev.event;
	h_send(&h, reply, 24);
	pthread_join(t, NULL);
	tap_ok(a.ret == 0 && a.res.delivered && a.res.action == KVMI_EVENT_ACTION_CONTINUE,
	       "%s: reply accepted", v->name);
	h_stop(&h);
	fake_destroy(&fake);
}

/* reply_event/ *: what libkvmi sends back is accepted and decoded. */
static void test_reply_event_vector(const struct wire_vector *v)
{
	static uint8_t req[65536];
	struct kvmi_event ev;
	struct kvmi_backend fake;
	struct vcpu_event_args a;
	struct harness h;
	const uint8_t *spec;
	pthread_t t;
	uint32_t seq;
	uint8_t got_hdr[8];

	memcpy(&ev, v->event + 8, sizeof(ev));
	spec = v->event + 8 + sizeof(ev);

	fake_init(&fake);
	fake.arch = ev.arch;
	h_start(&h, &fake, NULL);
	if (ev.event != KVMI_EVENT_PAUSE_VCPU) {
		struct kvmi_control_events c = { .event_id = ev.event, .enable = 1 };

		h_vcpu_call(&h, KVMI_CONTROL_EVENTS, ev.vcpu, &c, sizeof(c), NULL, NULL);
	}
	memset(&a, 0, sizeof(a));
	a.srv = h.srv;
	a.vcpu = ev.vcpu;
	a.event = ev.event;
	a.data = spec;
	a.len = v->event_len - 8 - sizeof(ev);
	a.rpl_len = kvmi_srv_event_reply_size(ev.event);
	memset(a.rpl, 0xee, sizeof(a.rpl));
	pthread_create(&t, NULL, vcpu_event_thread, &a);
	h_read(&h, got_hdr, 8);
	memcpy(&seq, got_hdr + 4, 4);
	{
		static uint8_t rest[65536];
		h_read(&h, rest, v->event_len - 8);
	}

	memcpy(req, v->request, v->request_len);
	patch_seq(req, seq);
	h_send(&h, req, v->request_len);

	if (v->request_len < 8 + 16) {
		/* Shorter than vcpu hdr + kvmi_event_reply: the kernel shuts
		 * the socket; the vCPU continues. */
		tap_ok(h_closed(&h), "%s: connection closed", v->name);
		pthread_join(t, NULL);
		tap_ok(!a.res.delivered && a.res.action == KVMI_EVENT_ACTION_CONTINUE,
		       "%s: vCPU continues as CONTINUE", v->name);
	} else {
		uint8_t action = v->request[16];
		size_t spec_len = v->request_len - 24;

		pthread_join(t, NULL);
		tap_ok(a.res.delivered && a.res.action == action, "%s: action %u delivered",
		       v->name, action);
		tap_ok(same(a.rpl, v->request + 24, spec_len) && spec_len <= a.rpl_len,
		       "%s: reply-specific part (%zu bytes) delivered", v->name, spec_len);
		tap_ok(h_sync(&h), "%s: connection still in sync", v->name);
	}
	h_stop(&h);
	fake_destroy(&fake);
}

static void test_rule_vectors(void)
{
	static uint8_t got[64];
	const struct wire_vector *v;
	struct kvmi_backend fake;
	struct harness h;
	struct kvmi_error_code ec;

	/* u16 size wrapped to 0: WRITE_PHYSICAL without its data. */
	v = find("reply-rules/write_physical-65520-size-field-wraps");
	if (v) {
		fake_init(&fake);
		h_start(&h, &fake, NULL);
		h_send(&h, v->request, 8 + 24);
		tap_ok(h_closed(&h), "%s: connection closed, nothing answered", v->name);
		tap_ok(!fake_find(&fake, FOP_WRITE, NULL), "%s: guest memory untouched", v->name);
		h_stop(&h);
		fake_destroy(&fake);
	}

	/* libkvmi sends size 16384 unchecked: one page at most. */
	v = find("reply-rules/read_physical-16384-reply-over-8KiB");
	if (v) {
		fake_init(&fake);
		h_start(&h, &fake, NULL);
		h_send(&h, v->request, v->request_len);
		tap_ok(h_read(&h, got, 16) == 0 && same(got, "\x11\x00\x08\x00\x02\x00\x00\x00", 8) &&
		       (memcpy(&ec, got + 8, 8), ec.err == -KVM_EINVAL),
		       "%s: answered -KVM_EINVAL", v->name);
		tap_ok(!fake_find(&fake, FOP_READ, NULL), "%s: backend not asked", v->name);
		h_stop(&h);
		fake_destroy(&fake);
	}
}

int main(void)
{
	size_t i;
	unsigned cmds = 0, events = 0;

	if (!wire_vectors_count) {
		printf("1..0 # SKIP libkvmi-wire.json not available at build time\n");
		return 0;
	}
	for (i = 0; i < wire_vectors_count; i++) {
		const struct wire_vector *v = &wire_vectors[i];

		if (starts_with(v->name, "cmd/set_registers/"))
			continue;
		if (starts_with(v->name, "cmd/") || starts_with(v->name, "shim/") ||
		    !strcmp(v->name, "batch/error-on-suffix")) {
			test_cmd_vector(v);
			cmds++;
		} else if (starts_with(v->name, "event/")) {
			test_event_vector(v);
			events++;
		} else if (starts_with(v->name, "reply_event/")) {
			test_reply_event_vector(v);
		} else if (starts_with(v->name, "batch/") && !v->event_len) {
			test_batch_vector(v);
		}
	}
	test_set_registers_vectors();
	test_batch_with_event_reply("batch/reply-event-only-sent-bare", false);
	test_batch_with_event_reply("batch/registers-then-reply-event-no-wait", true);
	test_rule_vectors();
	tap_diag("%u command vectors, %u event vectors", cmds, events);
	return tap_done();
}
