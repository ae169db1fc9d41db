/* SPDX-License-Identifier: MIT */
/*
 * test_server_negative.c - every validation rule of the protocol server:
 * for every command a valid request first (so the failures below fail for
 * the reason under test), then short and long sizes, each padding byte,
 * bad vCPU indices and vCPU-header padding; unknown and disallowed ids;
 * oversize and truncated messages; field checks; CONTROL_CMD_RESPONSE;
 * PAUSE_VCPU; and what CHECK_COMMAND / CHECK_EVENT report.
 */
#include "test_server_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define CLOSE 12345     /* expected outcome: the server closes the connection */
#define NO_REPLY 999999

struct sample {
	uint16_t id;
	bool vcpu;
	uint8_t req[160];
	uint16_t size;
	int ok;                 /* expected err of the valid request */
	int pad_result;         /* -KVM_EINVAL or CLOSE */
	int8_t pads[24];        /* padding byte offsets in req, -1 ends */
	bool var;               /* no generic short/long checks */
};

#define PADS(...) { __VA_ARGS__, -1 }

static const struct sample samples[] = {
	{ KVMI_CHECK_COMMAND, false, { 2 }, 8, 0, -KVM_EINVAL, PADS(2, 3, 4, 5, 6, 7), false },
	{ KVMI_CHECK_EVENT, false, { 10 }, 8, 0, -KVM_EINVAL, PADS(2, 3, 4, 5, 6, 7), false },
	{ KVMI_GET_GUEST_INFO, false, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_GET_VCPU_INFO, true, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_PAUSE_VCPU, true, { 0 }, 8, 0, CLOSE, PADS(1, 2, 3, 4, 5, 6, 7), false },
	{ KVMI_CONTROL_VM_EVENTS, false, { 0, 0, 1 }, 8, 0, -KVM_EINVAL, PADS(3, 4, 5, 6, 7), false },
	{ KVMI_CONTROL_EVENTS, true, { 6, 0, 1 }, 8, 0, -KVM_EINVAL, PADS(3, 4, 5, 6, 7), false },
	{ KVMI_CONTROL_CR, true, { 1, 0, 0, 0, 3 }, 8, 0, -KVM_EINVAL, PADS(1, 2, 3), false },
	{ KVMI_CONTROL_MSR, true, { 1, 0, 0, 0, 0x81, 0, 0, 0xc0 }, 8, 0, -KVM_EINVAL, PADS(1, 2, 3), false },
	{ KVMI_GET_REGISTERS, true, { 1, 0, 0, 0, 0, 0, 0, 0, 0x74, 1, 0, 0 }, 12, 0, -KVM_EINVAL,
	  PADS(2, 3, 4, 5, 6, 7), false },
	{ KVMI_SET_REGISTERS, true, { 0 }, 144, -KVM_EOPNOTSUPP, 0, PADS(-1), false },
	{ KVMI_GET_CPUID, true, { 1 }, 8, 0, 0, PADS(-1), false },
	{ KVMI_GET_XSAVE, true, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_READ_PHYSICAL, false, { 0, 0x10, 0, 0, 0, 0, 0, 0, 8 }, 16, 0, 0, PADS(-1), false },
	{ KVMI_INJECT_EXCEPTION, true, { 14, 0, 0, 0, 2 }, 16, 0, -KVM_EINVAL, PADS(1, 2, 3), false },
	{ KVMI_SET_PAGE_ACCESS, false, { 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 1 }, 24, 0,
	  -KVM_EINVAL, PADS(4, 5, 6, 7, 17, 18, 19, 20, 21, 22, 23), true },
	{ KVMI_GET_MAP_TOKEN, false, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_GET_MTRR_TYPE, true, { 0, 0, 1 }, 8, 0, 0, PADS(-1), false },
	{ KVMI_CONTROL_SPP, false, { 1 }, 8, 0, -KVM_EINVAL, PADS(1, 2, 3, 4, 5, 6, 7), false },
	{ KVMI_SET_PAGE_WRITE_BITMAP, false,
	  { 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x50, 0, 0, 0, 0, 0, 0, 0xff, 0xff }, 24, 0, -KVM_EINVAL,
	  PADS(4, 5, 6, 7, 20, 21, 22, 23), true },
	{ KVMI_CONTROL_CMD_RESPONSE, false, { 1, 1 }, 8, 0, CLOSE, PADS(3, 4, 5, 6, 7), false },
	{ KVMI_SET_VE_INFO_PAGE, true, { 0, 0x70 }, 16, 0, -KVM_EINVAL,
	  PADS(9, 10, 11, 12, 13, 14, 15), false },
	{ KVMI_GET_MAX_GFN, false, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_SET_PAGE_SVE, false, { 0, 0, 1 }, 16, 0, -KVM_EINVAL, PADS(3, 4, 5, 6, 7), false },
	{ KVMI_GET_NEXT_AVAILABLE_GFN, false, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_SWITCH_EPT_VIEW, true, { 1 }, 8, 0, -KVM_EINVAL, PADS(2, 3, 4, 5, 6, 7), false },
	{ KVMI_DISABLE_VE, true, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_GET_EPT_VIEW, true, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_VCPU_TRANSLATE_GVA, true, { 0x34, 0x12 }, 8, 0, 0, PADS(-1), false },
	{ KVMI_CONTROL_EPT_VIEW, true, { 1, 0, 1 }, 8, 0, -KVM_EINVAL, PADS(3, 4, 5, 6, 7), false },
	{ KVMI_VCPU_GET_XCR, true, { 0 }, 8, 0, -KVM_EINVAL, PADS(1, 2, 3, 4, 5, 6, 7), false },
	{ KVMI_QUERY_PHYSICAL, false, { 0x11 }, 8, 0, 0, PADS(-1), false },
	{ KVMI_VCPU_ALLOC_GFN, true, { 0, 0, 2 }, 8, 0, 0, PADS(-1), false },
	{ KVMI_VCPU_FREE_GFN, true, { 0, 0, 2 }, 8, 0, 0, PADS(-1), false },
	{ KVMI_CREATE_EPT_VIEW, false, { 0 }, 0, 0, 0, PADS(-1), false },
	{ KVMI_DESTROY_EPT_VIEW, false, { 1 }, 8, 0, -KVM_EINVAL, PADS(2, 3, 4, 5, 6, 7), false },
	{ KVMI_VCPU_CHANGE_GFN, true, { 1, 0, 0, 0, 0, 0, 0, 0, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0x78, 0x56 },
	  24, 0, -KVM_EINVAL, PADS(2, 3, 4, 5, 6, 7), true },
	{ KVMI_VCPU_CONTROL_SINGLESTEP, true, { 1 }, 8, 0, -KVM_EINVAL, PADS(1, 2, 3, 4, 5, 6, 7), false },
};

static const char *name(unsigned id)
{
	const char *n = kvmi_srv_command_name(id);

	return n ? n : "?";
}

/* Sends one request on a fresh server; returns the reply's err, CLOSE if
 * the server closed the connection without replying, or CLOSE + err - 1
 * style is avoided: `then_closed` reports whether it closed after a reply. */
static int run(const struct sample *s, uint16_t vcpu, uint16_t vpad, const uint8_t *req,
	       size_t size, bool *then_closed)
{
	static uint8_t msg[8 + 8 + 8192], payload[65536];
	struct kvmi_vcpu_hdr vh = { .vcpu = vcpu, .padding1 = vpad };
	struct kvmi_backend fake;
	struct kvmi_msg_hdr hdr = { .id = s->id, .seq = 77 };
	struct kvmi_error_code ec;
	struct harness h;
	size_t n = 0;
	int ret;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	if (s->vcpu) {
		memcpy(msg + 8, &vh, sizeof(vh));
		n = sizeof(vh);
	}
	memcpy(msg + 8 + n, req, size);
	n += size;
	hdr.size = (uint16_t)n;
	memcpy(msg, &hdr, sizeof(hdr));
	h_send(&h, msg, 8 + n);

	if (h_recv(&h, &hdr, payload)) {
		ret = CLOSE;
	} else if (hdr.id != s->id || hdr.seq != 77 || hdr.size < 8) {
		ret = NO_REPLY;
	} else {
		memcpy(&ec, payload, sizeof(ec));
		ret = ec.err;
	}
	if (then_closed)
		*then_closed = ret != CLOSE && ret != NO_REPLY ? !h_sync(&h) : ret == CLOSE;
	h_stop(&h);
	fake_destroy(&fake);
	return ret;
}

static void test_sample(const struct sample *s)
{
	uint8_t req[256];
	bool closed;
	int err;
	unsigned i;

	err = run(s, 1, 0, s->req, s->size, &closed);
	tap_ok(err == s->ok && !closed, "%s: valid request -> %d", name(s->id), err);

	if (!s->var) {
		if (s->size) {
			err = run(s, 1, 0, s->req, s->size - 1u, &closed);
			tap_ok(err == -KVM_EINVAL && !closed, "%s: size %u (short) -> -KVM_EINVAL",
			       name(s->id), s->size - 1u);
		}
		memset(req, 0, sizeof(req));
		memcpy(req, s->req, s->size);
		err = run(s, 1, 0, req, s->size + 1u, &closed);
		tap_ok(err == -KVM_EINVAL && !closed, "%s: size %u (long) -> -KVM_EINVAL", name(s->id),
		       s->size + 1u);
		err = run(s, 1, 0, req, s->size + 8u, &closed);
		tap_ok(err == -KVM_EINVAL && !closed, "%s: size %u (long) -> -KVM_EINVAL", name(s->id),
		       s->size + 8u);
	}
	for (i = 0; s->pads[i] >= 0; i++) {
		memcpy(req, s->req, s->size);
		req[s->pads[i]] = 0x01;
		err = run(s, 1, 0, req, s->size, &closed);
		if (s->pad_result == CLOSE)
			tap_ok(closed, "%s: padding byte %d -> connection closed (%d)", name(s->id),
			       s->pads[i], err);
		else
			tap_ok(err == s->pad_result && !closed, "%s: padding byte %d -> %d",
			       name(s->id), s->pads[i], err);
	}
	if (s->vcpu) {
		err = run(s, 4, 0, s->req, s->size, &closed);
		tap_ok(err == -KVM_EINVAL && !closed, "%s: vCPU 4 of 4 -> -KVM_EINVAL", name(s->id));
		err = run(s, 0xffff, 0, s->req, s->size, &closed);
		tap_ok(err == -KVM_EINVAL && !closed, "%s: vCPU 65535 -> -KVM_EINVAL", name(s->id));
		err = run(s, 1, 1, s->req, s->size, &closed);
		tap_ok(err == CLOSE, "%s: vCPU header padding -> connection closed", name(s->id));
	}
}

/* A vCPU command whose payload is shorter than the vCPU header. */
static void test_short_vcpu_header(void)
{
	struct sample s = { .id = KVMI_GET_VCPU_INFO, .vcpu = false, .size = 4 };
	bool closed;

	tap_ok(run(&s, 0, 0, s.req, 4, &closed) == -KVM_EINVAL && !closed,
	       "vCPU command with a 4-byte payload -> -KVM_EINVAL");
}

static void test_var_sizes(void)
{
	struct sample w = { .id = KVMI_WRITE_PHYSICAL, .size = 20 };
	struct sample x = { .id = KVMI_VCPU_SET_XSAVE, .vcpu = true };
	struct sample c = { .id = KVMI_VCPU_CHANGE_GFN, .vcpu = true };
	struct sample r = { .id = KVMI_GET_REGISTERS, .vcpu = true };
	struct sample p = { .id = KVMI_SET_PAGE_ACCESS };
	static uint8_t buf[8192];
	bool closed;

	/* WRITE_PHYSICAL {gpa, size, data[size]} */
	memset(buf, 0, sizeof(buf));
	buf[1] = 0x10;
	buf[8] = 4;
	tap_ok(run(&w, 0, 0, buf, 20, &closed) == 0 && !closed, "WRITE_PHYSICAL: 4 data bytes -> 0");
	tap_ok(run(&w, 0, 0, buf, 19, &closed) == CLOSE, "WRITE_PHYSICAL: data missing -> closed");
	tap_ok(run(&w, 0, 0, buf, 8, &closed) == CLOSE, "WRITE_PHYSICAL: 8-byte payload -> closed");
	tap_ok(run(&w, 0, 0, buf, 21, &closed) == -KVM_EINVAL && !closed,
	       "WRITE_PHYSICAL: extra byte -> -KVM_EINVAL");
	buf[8] = 0;
	tap_ok(run(&w, 0, 0, buf, 16, &closed) == -KVM_EINVAL && !closed,
	       "WRITE_PHYSICAL: size 0 -> -KVM_EINVAL");
	buf[0] = 0xff;
	buf[1] = 0x0f;
	buf[8] = 2;
	tap_ok(run(&w, 0, 0, buf, 18, &closed) == -KVM_EINVAL && !closed,
	       "WRITE_PHYSICAL: crosses a page -> -KVM_EINVAL");

	/* SET_XSAVE: 0..4096 bytes */
	memset(buf, 0, sizeof(buf));
	tap_ok(run(&x, 0, 0, buf, 0, &closed) == 0, "SET_XSAVE: 0 bytes -> 0");
	tap_ok(run(&x, 0, 0, buf, 4096, &closed) == 0, "SET_XSAVE: 4096 bytes -> 0");
	tap_ok(run(&x, 0, 0, buf, 4097, &closed) == -KVM_EINVAL && !closed,
	       "SET_XSAVE: 4097 bytes -> -KVM_EINVAL");

	/* CHANGE_GFN: 24 (libkvmi master) or 16 (kernel) bytes */
	tap_ok(run(&c, 0, 0, buf, 16, &closed) == 0, "CHANGE_GFN: 16-byte kernel form -> 0");
	tap_ok(run(&c, 0, 0, buf, 23, &closed) == -KVM_EINVAL, "CHANGE_GFN: 23 bytes -> -KVM_EINVAL");
	tap_ok(run(&c, 0, 0, buf, 25, &closed) == -KVM_EINVAL, "CHANGE_GFN: 25 bytes -> -KVM_EINVAL");
	memset(buf + 16, 0xff, 8);
	tap_ok(run(&c, 0, 0, buf, 24, &closed) == -KVM_EPERM, "CHANGE_GFN: new_gfn ~0 -> -KVM_EPERM");
	memset(buf, 0, 24);
	buf[0] = 3;
	tap_ok(run(&c, 0, 0, buf, 24, &closed) == -KVM_EINVAL, "CHANGE_GFN: view 3 -> -KVM_EINVAL");

	/* GET_REGISTERS {nmsrs; msrs_idx[nmsrs]} */
	memset(buf, 0, sizeof(buf));
	buf[0] = 2;
	tap_ok(run(&r, 0, 0, buf, 16, &closed) == 0, "GET_REGISTERS: 2 MSRs -> 0");
	tap_ok(run(&r, 0, 0, buf, 12, &closed) == -KVM_EINVAL, "GET_REGISTERS: 1 of 2 indices -> -KVM_EINVAL");
	tap_ok(run(&r, 0, 0, buf, 20, &closed) == -KVM_EINVAL, "GET_REGISTERS: 3 indices for 2 -> -KVM_EINVAL");
	tap_ok(run(&r, 0, 0, buf, 4, &closed) == -KVM_EINVAL, "GET_REGISTERS: 4-byte request -> -KVM_EINVAL");
	/* (8184 - 8 - 472) / 16 = 481 MSRs fit in one reply; 482 do not. */
	buf[0] = 481 & 0xff;
	buf[1] = 481 >> 8;
	tap_ok(run(&r, 0, 0, buf, 8 + 4 * 481, &closed) == 0, "GET_REGISTERS: 481 MSRs -> 0");
	buf[0] = 482 & 0xff;
	buf[1] = 482 >> 8;
	tap_ok(run(&r, 0, 0, buf, 8 + 4 * 482, &closed) == -KVM_ENOMEM,
	       "GET_REGISTERS: 482 MSRs -> -KVM_ENOMEM");

	/* SET_PAGE_ACCESS {view, count, entries[count]} */
	memset(buf, 0, sizeof(buf));
	buf[2] = 2;
	tap_ok(run(&p, 0, 0, buf, 8 + 32, &closed) == 0, "SET_PAGE_ACCESS: 2 entries -> 0");
	tap_ok(run(&p, 0, 0, buf, 8 + 16, &closed) == -KVM_EINVAL, "SET_PAGE_ACCESS: count 2, 1 entry -> -KVM_EINVAL");
	tap_ok(run(&p, 0, 0, buf, 8 + 48, &closed) == -KVM_EINVAL, "SET_PAGE_ACCESS: count 2, 3 entries -> -KVM_EINVAL");
	tap_ok(run(&p, 0, 0, buf, 4, &closed) == -KVM_EINVAL, "SET_PAGE_ACCESS: 4-byte request -> -KVM_EINVAL");
	buf[0] = 3;
	tap_ok(run(&p, 0, 0, buf, 8 + 32, &closed) == -KVM_EINVAL, "SET_PAGE_ACCESS: view 3 -> -KVM_EINVAL");
}

/* Bad entries fail the command but the good ones are still applied. */
static void test_page_access_partial(void)
{
	struct {
		struct kvmi_set_page_access h;
		struct kvmi_page_access_entry e[3];
	} req = { .h = { .count = 3 } };
	struct kvmi_backend fake;
	struct harness h;
	struct fake_call c;
	struct kvmi_page_access_entry got[2];

	req.e[0].gpa = 0x1000;
	req.e[0].access = 1;
	req.e[1].gpa = 0x2000;
	req.e[1].access = KVMI_PAGE_ACCESS_SVE;   /* not allowed here */
	req.e[2].gpa = 0x3000;
	req.e[2].access = 7;
	fake_init(&fake);
	h_start(&h, &fake, NULL);
	tap_ok(h_call(&h, KVMI_SET_PAGE_ACCESS, &req, sizeof(req), NULL, 0, NULL, NULL) == -KVM_EINVAL,
	       "SET_PAGE_ACCESS: SVE bit in one entry -> -KVM_EINVAL");
	tap_ok(fake_find(&fake, FOP_SET_PAGE_ACCESS, &c) && c.a[1] == 2 &&
	       (memcpy(got, c.data, sizeof(got)), got[0].gpa == 0x1000 && got[1].gpa == 0x3000),
	       "SET_PAGE_ACCESS: the two valid entries were applied");
	h_stop(&h);
	fake_destroy(&fake);
}

static void test_fields(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct kvmi_control_cr cr = { .enable = 1, .cr = 2 };
	struct kvmi_control_msr msr = { .enable = 1 };
	struct kvmi_get_xcr xcr = { .xcr = 1 };
	struct kvmi_read_physical rp = { .gpa = 0x1000, .size = 0 };
	struct kvmi_inject_exception inj = { .nr = 32 };
	struct kvmi_control_events ce = { .event_id = KVMI_EVENT_UNHOOK, .enable = 1 };
	struct kvmi_control_vm_events cve = { .event_id = KVMI_EVENT_PF, .enable = 1 };
	struct kvmi_pause_vcpu pv = { .wait = 2 };
	static const uint32_t good_msrs[] = { 0, 0x1fff, 0xc0000000u, 0xc0001fffu };
	static const uint32_t bad_msrs[] = { 0x2000, 0xbfffffffu, 0xc0002000u, 0xffffffffu };
	unsigned i;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	tap_ok(h_vcpu_call(&h, KVMI_CONTROL_CR, 0, &cr, sizeof(cr), NULL, NULL) == -KVM_EINVAL,
	       "CONTROL_CR: cr2 -> -KVM_EINVAL");
	cr.cr = 4;
	cr.enable = 2;
	tap_ok(h_vcpu_call(&h, KVMI_CONTROL_CR, 0, &cr, sizeof(cr), NULL, NULL) == -KVM_EINVAL,
	       "CONTROL_CR: enable 2 -> -KVM_EINVAL");
	for (i = 0; i < 4; i++) {
		msr.msr = good_msrs[i];
		tap_ok(h_vcpu_call(&h, KVMI_CONTROL_MSR, 0, &msr, sizeof(msr), NULL, NULL) == 0,
		       "CONTROL_MSR: %#x -> 0", good_msrs[i]);
		msr.msr = bad_msrs[i];
		tap_ok(h_vcpu_call(&h, KVMI_CONTROL_MSR, 0, &msr, sizeof(msr), NULL, NULL) == -KVM_EINVAL,
		       "CONTROL_MSR: %#x -> -KVM_EINVAL", bad_msrs[i]);
	}
	tap_ok(h_vcpu_call(&h, KVMI_VCPU_GET_XCR, 0, &xcr, sizeof(xcr), NULL, NULL) == -KVM_EINVAL,
	       "GET_XCR: xcr1 -> -KVM_EINVAL");
	tap_ok(h_call(&h, KVMI_READ_PHYSICAL, &rp, sizeof(rp), NULL, 0, NULL, NULL) == -KVM_EINVAL,
	       "READ_PHYSICAL: size 0 -> -KVM_EINVAL");
	rp.size = 4097;
	tap_ok(h_call(&h, KVMI_READ_PHYSICAL, &rp, sizeof(rp), NULL, 0, NULL, NULL) == -KVM_EINVAL,
	       "READ_PHYSICAL: size 4097 -> -KVM_EINVAL");
	rp.gpa = 0x1ff8;
	rp.size = 16;
	tap_ok(h_call(&h, KVMI_READ_PHYSICAL, &rp, sizeof(rp), NULL, 0, NULL, NULL) == -KVM_EINVAL,
	       "READ_PHYSICAL: crossing a page -> -KVM_EINVAL");
	rp.size = 8;
	fake.err = -KVM_ENOENT;
	tap_ok(h_call(&h, KVMI_READ_PHYSICAL, &rp, sizeof(rp), NULL, 0, NULL, NULL) == -KVM_ENOENT,
	       "READ_PHYSICAL: no memory there -> -KVM_ENOENT from the backend");
	fake.err = -EIO;
	tap_ok(h_call(&h, KVMI_READ_PHYSICAL, &rp, sizeof(rp), NULL, 0, NULL, NULL) == -KVM_EFAULT,
	       "backend -EIO travels as -KVM_EFAULT");
	fake.err = -ENOSYS;
	tap_ok(h_call(&h, KVMI_READ_PHYSICAL, &rp, sizeof(rp), NULL, 0, NULL, NULL) == -KVM_ENOSYS,
	       "backend -ENOSYS travels as -KVM_ENOSYS");
	fake.err = 0;
	tap_ok(h_vcpu_call(&h, KVMI_INJECT_EXCEPTION, 0, &inj, sizeof(inj), NULL, NULL) == -KVM_EINVAL,
	       "INJECT_EXCEPTION: vector 32 -> -KVM_EINVAL");
	tap_ok(h_vcpu_call(&h, KVMI_CONTROL_EVENTS, 0, &ce, sizeof(ce), NULL, NULL) == -KVM_EINVAL,
	       "CONTROL_EVENTS: a VM event -> -KVM_EINVAL");
	ce.event_id = KVMI_NUM_EVENTS;
	tap_ok(h_vcpu_call(&h, KVMI_CONTROL_EVENTS, 0, &ce, sizeof(ce), NULL, NULL) == -KVM_EINVAL,
	       "CONTROL_EVENTS: event 14 -> -KVM_EINVAL");
	ce.event_id = KVMI_EVENT_PF;
	ce.enable = 2;
	tap_ok(h_vcpu_call(&h, KVMI_CONTROL_EVENTS, 0, &ce, sizeof(ce), NULL, NULL) == -KVM_EINVAL,
	       "CONTROL_EVENTS: enable 2 -> -KVM_EINVAL");
	tap_ok(h_call(&h, KVMI_CONTROL_VM_EVENTS, &cve, sizeof(cve), NULL, 0, NULL, NULL) == -KVM_EINVAL,
	       "CONTROL_VM_EVENTS: a vCPU event -> -KVM_EINVAL");
	fake.check_event_err[KVMI_EVENT_CR] = -KVM_EOPNOTSUPP;
	ce.event_id = KVMI_EVENT_CR;
	ce.enable = 1;
	tap_ok(h_vcpu_call(&h, KVMI_CONTROL_EVENTS, 0, &ce, sizeof(ce), NULL, NULL) == -KVM_EOPNOTSUPP,
	       "CONTROL_EVENTS: event the host cannot deliver -> -KVM_EOPNOTSUPP");
	tap_ok(!kvmi_vcpu_event_enabled(h.srv, 0, KVMI_EVENT_CR), "  ... and it stays disabled");
	ce.enable = 0;
	tap_ok(h_vcpu_call(&h, KVMI_CONTROL_EVENTS, 0, &ce, sizeof(ce), NULL, NULL) == 0,
	       "CONTROL_EVENTS: disabling it -> 0");
	tap_ok(h_vcpu_call(&h, KVMI_PAUSE_VCPU, 0, &pv, sizeof(pv), NULL, NULL) == -KVM_EINVAL,
	       "PAUSE_VCPU: wait 2 -> -KVM_EINVAL");
	tap_ok(h_sync(&h), "field errors keep the connection");
	h_stop(&h);
	fake_destroy(&fake);
}

static void test_unknown_ids(void)
{
	static const uint16_t ids[] = { KVMI_CONTROL_VE, KVMI_GET_PAGE_ACCESS,
					KVMI_GET_PAGE_WRITE_BITMAP, 40, 45, 59, 61, 62, 64, 100, 65535 };
	uint8_t junk[40] = { 1, 2, 3 };
	struct kvmi_backend fake;
	struct harness h;
	unsigned i;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		tap_ok(h_call(&h, ids[i], junk, sizeof(junk), NULL, 0, NULL, NULL) == -KVM_ENOSYS,
		       "unknown id %u (40-byte payload consumed) -> -KVM_ENOSYS", ids[i]);
	tap_ok(h_sync(&h), "unknown ids keep the stream in sync");
	/* The extension id of CHECK_EVENT is a property of PF, no event. */
	tap_ok(h_call(&h, KVMI_CHECK_EVENT, &(struct kvmi_check_event){ .id = KVMI_X_EVENT_PF_PAGE_WALK }, 8, NULL, 0,
		      NULL, NULL) == 0, "CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK) -> the backend's answer (0)");
	fake.check_pf_walk_err = -KVM_EOPNOTSUPP;
	tap_ok(h_call(&h, KVMI_CHECK_EVENT, &(struct kvmi_check_event){ .id = KVMI_X_EVENT_PF_PAGE_WALK }, 8, NULL, 0,
		      NULL, NULL) == -KVM_EOPNOTSUPP, "CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK) -> -KVM_EOPNOTSUPP when "
	       "the backend cannot report page walks");
	tap_ok(h_call(&h, KVMI_CHECK_EVENT, &(struct kvmi_check_event){ .id = KVMI_X_EVENT_PF_PAGE_WALK + 1 }, 8, NULL,
		      0, NULL, NULL) == -KVM_EINVAL, "CHECK_EVENT(0x4b07) -> -KVM_EINVAL");
	h_stop(&h);
	fake_destroy(&fake);
}

/* id 1 is the VMM's event id: an error reply would carry it and read as
 * an event, so no reply of any kind comes, the connection closes. */
static void test_event_id_from_tool(void)
{
	uint8_t junk[40] = { 1, 2, 3 };
	struct kvmi_msg_hdr hdr;
	uint8_t payload[1024];
	struct kvmi_backend fake;
	struct harness h;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	h_cmd(&h, KVMI_EVENT, 99, junk, sizeof(junk), NULL, 0);
	tap_ok(h_recv(&h, &hdr, payload) < 0 && h_closed(&h),
	       "a message with id 1 (KVMI_EVENT) from the tool: no reply with id 1, the connection closes");
	h_stop(&h);
	fake_destroy(&fake);
}

static void test_policy_denials(void)
{
	struct kvmi_policy pol = { 0 };
	struct kvmi_server_config cfg = { .policy = &pol };
	struct kvmi_backend fake;
	struct harness h;
	struct kvmi_check_command cc = { .id = KVMI_GET_REGISTERS };
	struct kvmi_check_event chk = { .id = KVMI_EVENT_PF };
	struct kvmi_control_events ce = { .event_id = KVMI_EVENT_PF, .enable = 1 };
	struct kvmi_control_vm_events cve = { .event_id = KVMI_EVENT_UNHOOK, .enable = 1 };
	struct kvmi_pause_vcpu pv = { 0 };
	struct kvmi_get_version_reply ver;
	size_t len = sizeof(ver);
	uint8_t regs_req[8] = { 0 };
	bool closed;

	/* nothing allowed but what is always allowed + CONTROL_EVENTS */
	pol.commands = 1ull << KVMI_CONTROL_EVENTS | 1ull << KVMI_CONTROL_VM_EVENTS |
		       1ull << KVMI_PAUSE_VCPU;
	fake_init(&fake);
	h_start(&h, &fake, &cfg);
	tap_ok(h_call(&h, KVMI_GET_VERSION, NULL, 0, NULL, 0, &ver, &len) == 0 && ver.version == 1,
	       "policy: GET_VERSION always allowed");
	tap_ok(h_call(&h, KVMI_CHECK_COMMAND, &cc, sizeof(cc), NULL, 0, NULL, NULL) == -KVM_EPERM,
	       "policy: CHECK_COMMAND(GET_REGISTERS) -> -KVM_EPERM");
	cc.id = KVMI_CHECK_EVENT;
	tap_ok(h_call(&h, KVMI_CHECK_COMMAND, &cc, sizeof(cc), NULL, 0, NULL, NULL) == 0,
	       "policy: CHECK_COMMAND(CHECK_EVENT) -> 0 (always allowed)");
	tap_ok(h_call(&h, KVMI_CHECK_EVENT, &chk, sizeof(chk), NULL, 0, NULL, NULL) == -KVM_EPERM,
	       "policy: CHECK_EVENT(PF) -> -KVM_EPERM");
	chk.id = KVMI_X_EVENT_PF_PAGE_WALK;
	tap_ok(h_call(&h, KVMI_CHECK_EVENT, &chk, sizeof(chk), NULL, 0, NULL, NULL) == -KVM_EPERM,
	       "policy: CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK) follows PF -> -KVM_EPERM");
	tap_ok(h_vcpu_call(&h, KVMI_GET_REGISTERS, 0, regs_req, sizeof(regs_req), NULL, NULL) == -KVM_EPERM,
	       "policy: GET_REGISTERS -> -KVM_EPERM");
	tap_ok(!fake_find(&fake, FOP_GET_REGISTERS, NULL), "policy: backend not asked");
	tap_ok(h_vcpu_call(&h, KVMI_CONTROL_EVENTS, 0, &ce, sizeof(ce), NULL, NULL) == -KVM_EPERM,
	       "policy: enabling a disallowed event -> -KVM_EPERM");
	tap_ok(h_call(&h, KVMI_CONTROL_VM_EVENTS, &cve, sizeof(cve), NULL, 0, NULL, NULL) == -KVM_EPERM,
	       "policy: enabling disallowed UNHOOK -> -KVM_EPERM");
	tap_ok(h_sync(&h), "policy: denials keep the connection");
	h_stop(&h);
	fake_destroy(&fake);

	/* PAUSE_VCPU with the PAUSE_VCPU event disallowed: EPERM and close */
	{
		struct sample s = { .id = KVMI_PAUSE_VCPU, .vcpu = true };
		struct kvmi_server_config c2 = { .policy = &pol };
		struct kvmi_backend f2;
		struct harness h2;
		static uint8_t payload[65536];
		struct kvmi_msg_hdr hdr;
		struct kvmi_vcpu_hdr vh = { 0 };
		struct kvmi_error_code ec = { 0 };

		(void)s;
		fake_init(&f2);
		h_start(&h2, &f2, &c2);
		h_cmd(&h2, KVMI_PAUSE_VCPU, 5, &vh, sizeof(vh), &pv, sizeof(pv));
		closed = h_recv(&h2, &hdr, payload) == 0 && (memcpy(&ec, payload, 8), ec.err == -KVM_EPERM);
		tap_ok(closed && h_closed(&h2), "policy: PAUSE_VCPU without its event -> -KVM_EPERM, then closed");
		h_stop(&h2);
		fake_destroy(&f2);
	}
}

static void test_framing(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct kvmi_msg_hdr hdr = { .id = KVMI_GET_VERSION, .size = KVMI_MSG_SIZE + 1, .seq = 1 };
	static uint8_t big[8 + KVMI_MSG_SIZE];

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	h_send(&h, &hdr, sizeof(hdr));
	tap_ok(h_closed(&h), "message of 8185 bytes -> closed before reading the payload");
	tap_ok(h_join(&h) == -EPROTO, "  ... serve() reports a protocol error");
	h_stop(&h);

	/* 8184 is fine: an unknown id of maximal size is consumed and answered */
	h_start(&h, &fake, NULL);
	hdr.id = 50;
	hdr.size = KVMI_MSG_SIZE;
	memcpy(big, &hdr, sizeof(hdr));
	h_send(&h, big, sizeof(big));
	{
		static uint8_t payload[65536];
		struct kvmi_error_code ec = { 0 };

		tap_ok(h_recv(&h, &hdr, payload) == 0 && hdr.id == 50 &&
		       (memcpy(&ec, payload, 8), ec.err == -KVM_ENOSYS),
		       "message of 8184 bytes is read whole");
	}
	tap_ok(h_sync(&h), "  ... and the stream stays in sync");
	h_stop(&h);

	/* truncated: the header promises 16 bytes, 8 arrive, then EOF */
	h_start(&h, &fake, NULL);
	hdr.id = KVMI_READ_PHYSICAL;
	hdr.size = 16;
	memcpy(big, &hdr, sizeof(hdr));
	h_send(&h, big, 16);
	shutdown(h.tool, SHUT_WR);
	tap_ok(h_closed(&h), "truncated message -> closed, nothing answered");
	tap_ok(h_join(&h) == -EPROTO, "  ... serve() reports a protocol error");
	tap_ok(!fake_find(&fake, FOP_READ, NULL), "  ... and the backend was not asked");
	h_stop(&h);

	/* a truncated header at EOF is just a goodbye */
	h_start(&h, &fake, NULL);
	shutdown(h.tool, SHUT_WR);
	tap_ok(h_join(&h) == 0, "EOF between messages -> serve() returns 0");
	tap_ok(fake_find(&fake, FOP_SESSION_END, NULL), "  ... and session_end() ran");
	h_stop(&h);
	fake_destroy(&fake);
}

/* CHECK_COMMAND tells the truth with a backend that implements nothing. */
static void test_check_truth(void)
{
	struct kvmi_backend fake;
	struct harness h;
	unsigned id;
	int err, want;

	fake_init(&fake);
	{
		unsigned (*count)(struct kvmi_backend *) = fake.ops.vcpu_count;

		memset(&fake.ops, 0, sizeof(fake.ops));
		fake.ops.vcpu_count = count;
	}
	h_start(&h, &fake, NULL);
	for (id = 0; id < 70; id++) {
		struct kvmi_check_command cc = { .id = (uint16_t)id };

		switch (id) {
		case KVMI_EVENT_REPLY: case KVMI_GET_VERSION: case KVMI_CHECK_COMMAND:
		case KVMI_CHECK_EVENT: case KVMI_GET_GUEST_INFO: case KVMI_CONTROL_VM_EVENTS:
		case KVMI_CONTROL_EVENTS: case KVMI_CONTROL_CMD_RESPONSE:
			want = 0;
			break;
		default:
			want = id < KVMI_NUM_MESSAGES ? -KVM_ENOSYS : -KVM_EINVAL;
		}
		err = h_call(&h, KVMI_CHECK_COMMAND, &cc, sizeof(cc), NULL, 0, NULL, NULL);
		if (err != want)
			tap_diag("CHECK_COMMAND(%u) = %d, want %d", id, err, want);
		if (id == KVMI_GET_REGISTERS || id == KVMI_GET_VERSION || id == 40 || id == 64)
			tap_ok(err == want, "minimal backend: CHECK_COMMAND(%u) -> %d", id, err);
		else if (err != want)
			tap_ok(false, "minimal backend: CHECK_COMMAND(%u)", id);
	}
	for (id = 0; id < 16; id++) {
		struct kvmi_check_event ce = { .id = (uint16_t)id };

		want = id >= KVMI_NUM_EVENTS ? -KVM_EINVAL :
		       id == KVMI_EVENT_CMD_ERROR || id == KVMI_EVENT_UNHOOK ? 0 : -KVM_EOPNOTSUPP;
		err = h_call(&h, KVMI_CHECK_EVENT, &ce, sizeof(ce), NULL, 0, NULL, NULL);
		tap_ok(err == want, "minimal backend: CHECK_EVENT(%u) -> %d", id, err);
	}
	{
		uint8_t req[8] = { 0 };

		tap_ok(h_vcpu_call(&h, KVMI_GET_REGISTERS, 0, req, 8, NULL, NULL) == -KVM_ENOSYS,
		       "minimal backend: GET_REGISTERS -> -KVM_ENOSYS");
	}
	h_stop(&h);
	fake_destroy(&fake);

	/* The host lacks a capability: -KVM_EOPNOTSUPP both ways. */
	fake_init(&fake);
	fake.check_command_err[KVMI_GET_XSAVE] = -KVM_EOPNOTSUPP;
	h_start(&h, &fake, NULL);
	{
		struct kvmi_check_command cc = { .id = KVMI_GET_XSAVE };

		tap_ok(h_call(&h, KVMI_CHECK_COMMAND, &cc, sizeof(cc), NULL, 0, NULL, NULL) == -KVM_EOPNOTSUPP,
		       "host without XSAVE: CHECK_COMMAND -> -KVM_EOPNOTSUPP");
		tap_ok(h_vcpu_call(&h, KVMI_GET_XSAVE, 0, NULL, 0, NULL, NULL) == -KVM_EOPNOTSUPP,
		       "host without XSAVE: GET_XSAVE -> -KVM_EOPNOTSUPP");
		tap_ok(!fake_find(&fake, FOP_GET_XSAVE, NULL), "  ... backend op not called");
	}
	h_stop(&h);
	fake_destroy(&fake);
}

static int control_cmd_response(struct harness *h, uint32_t seq, uint8_t enable, uint8_t now,
				uint8_t flags)
{
	struct kvmi_control_cmd_response r = { .enable = enable, .now = now, .flags = flags };

	return h_cmd(h, KVMI_CONTROL_CMD_RESPONSE, seq, &r, sizeof(r), NULL, 0);
}

static void test_cmd_response(void)
{
	static uint8_t payload[65536];
	struct kvmi_backend fake;
	struct harness h;
	struct kvmi_msg_hdr hdr;
	struct kvmi_check_command cc = { .id = 2 };
	struct kvmi_control_cmd_response bad = { .enable = 1, .now = 1, .padding2 = 1 };
	struct kvmi_write_physical rp = { .gpa = 0x1000, .size = 0 };  /* fails, no data */
	struct kvmi_event ev;
	struct kvmi_event_cmd_error ce;
	bool ok;

	fake_init(&fake);

	/* {enable=0, now=0}: this one is answered, the next is not */
	h_start(&h, &fake, NULL);
	control_cmd_response(&h, 10, 0, 0, 0);
	ok = h_recv(&h, &hdr, payload) == 0 && hdr.id == KVMI_CONTROL_CMD_RESPONSE && hdr.seq == 10;
	tap_ok(ok, "CMD_RESPONSE {0, now=0}: answered itself");
	h_cmd(&h, KVMI_CHECK_COMMAND, 11, &cc, sizeof(cc), NULL, 0);
	control_cmd_response(&h, 12, 1, 0, 0);   /* re-enable from the next message */
	tap_ok(h_sync(&h), "  ... the command in between and {1, now=0} were not answered");
	h_stop(&h);

	/* replies off: a command whose reply carries data closes */
	h_start(&h, &fake, NULL);
	control_cmd_response(&h, 20, 0, 1, 0);
	h_cmd(&h, KVMI_GET_VERSION, 21, NULL, 0, NULL, 0);
	tap_ok(h_closed(&h), "replies off + GET_VERSION (has data) -> closed");
	h_stop(&h);

	/* replies off: an unknown command closes */
	h_start(&h, &fake, NULL);
	control_cmd_response(&h, 20, 0, 1, 0);
	h_cmd(&h, 50, 21, NULL, 0, NULL, 0);
	tap_ok(h_closed(&h), "replies off + unknown id -> closed");
	h_stop(&h);

	/* replies off: a failing command stays silent */
	h_start(&h, &fake, NULL);
	control_cmd_response(&h, 20, 0, 1, 0);
	h_cmd(&h, KVMI_WRITE_PHYSICAL, 21, &rp, sizeof(rp), NULL, 0);
	control_cmd_response(&h, 22, 1, 1, 0);
	ok = h_recv(&h, &hdr, payload) == 0 && hdr.seq == 22;
	tap_ok(ok, "replies off + failing command: silent; suffix answered");
	h_stop(&h);

	/* flags bit 0: failures become CMD_ERROR events */
	h_start(&h, &fake, NULL);
	control_cmd_response(&h, 30, 0, 1, KVMI_CMD_RESPONSE_FLAG_CMD_ERROR_EVENT);
	h_cmd(&h, KVMI_WRITE_PHYSICAL, 31, &rp, sizeof(rp), NULL, 0);
	ok = h_recv(&h, &hdr, payload) == 0 && hdr.id == KVMI_EVENT &&
	     hdr.size == sizeof(ev) + sizeof(ce);
	if (ok) {
		memcpy(&ev, payload, sizeof(ev));
		memcpy(&ce, payload + sizeof(ev), sizeof(ce));
		ok = ev.event == KVMI_EVENT_CMD_ERROR && ev.size == sizeof(ev) && ce.err == -KVM_EINVAL &&
		     ce.msg_seq == 31 && ce.msg_id == KVMI_WRITE_PHYSICAL;
	}
	tap_ok(ok, "replies off + flags bit0: failing command -> CMD_ERROR event {err, seq, id}");
	h_stop(&h);

	/* replies off: a command that would reply with data closes, even
	 * if it is going to fail */
	{
		struct kvmi_read_physical r0 = { .gpa = 0x1000, .size = 0 };

		h_start(&h, &fake, NULL);
		control_cmd_response(&h, 35, 0, 1, 0);
		h_cmd(&h, KVMI_READ_PHYSICAL, 36, &r0, sizeof(r0), NULL, 0);
		tap_ok(h_closed(&h), "replies off + READ_PHYSICAL -> closed");
		h_stop(&h);
	}

	/* flags bit 0 with CMD_ERROR disallowed: -KVM_EPERM, nothing changes */
	{
		struct kvmi_policy pol;
		struct kvmi_server_config cfg = { .policy = &pol };
		int err;

		kvmi_policy_allow_all(&pol);
		pol.events &= ~(1ull << KVMI_EVENT_CMD_ERROR);
		h_start(&h, &fake, &cfg);
		control_cmd_response(&h, 40, 0, 1, KVMI_CMD_RESPONSE_FLAG_CMD_ERROR_EVENT);
		ok = h_recv(&h, &hdr, payload) == 0 && hdr.seq == 40 &&
		     (memcpy(&err, payload, 4), err == -KVM_EPERM);
		tap_ok(ok && h_sync(&h), "flags bit0 with CMD_ERROR disallowed -> -KVM_EPERM, replies stay on");
		h_stop(&h);
	}

	/* malformed CONTROL_CMD_RESPONSE closes */
	h_start(&h, &fake, NULL);
	h_cmd(&h, KVMI_CONTROL_CMD_RESPONSE, 50, &bad, sizeof(bad), NULL, 0);
	tap_ok(h_closed(&h), "CMD_RESPONSE with padding -> closed");
	h_stop(&h);
	h_start(&h, &fake, NULL);
	control_cmd_response(&h, 51, 2, 1, 0);
	tap_ok(h_closed(&h), "CMD_RESPONSE enable=2 -> closed");
	h_stop(&h);
	h_start(&h, &fake, NULL);
	control_cmd_response(&h, 52, 0, 1, 0x80);
	tap_ok(h_closed(&h), "CMD_RESPONSE unknown flag -> closed");
	h_stop(&h);
	fake_destroy(&fake);
}

static void test_pause_limit(void)
{
	struct kvmi_backend fake;
	struct harness h;
	struct kvmi_pause_vcpu pv = { 0 };
	unsigned i;
	int err = 0;

	fake_init(&fake);
	h_start(&h, &fake, NULL);
	for (i = 0; i < KVMI_MAX_PAUSE_REQUESTS && !err; i++)
		err = h_vcpu_call(&h, KVMI_PAUSE_VCPU, 2, &pv, sizeof(pv), NULL, NULL);
	tap_ok(!err && kvmi_vcpu_pending_pauses(h.srv, 2) == KVMI_MAX_PAUSE_REQUESTS,
	       "PAUSE_VCPU: 1001 requests queued");
	tap_ok(h_vcpu_call(&h, KVMI_PAUSE_VCPU, 2, &pv, sizeof(pv), NULL, NULL) == -KVM_EBUSY,
	       "PAUSE_VCPU: request 1002 -> -KVM_EBUSY");
	fake.err = -KVM_EAGAIN;
	tap_ok(h_vcpu_call(&h, KVMI_PAUSE_VCPU, 3, &pv, sizeof(pv), NULL, NULL) == -KVM_EAGAIN &&
	       kvmi_vcpu_pending_pauses(h.srv, 3) == 0,
	       "PAUSE_VCPU: backend refuses -> error, nothing queued");
	h_stop(&h);
	fake_destroy(&fake);
}

/* Every error the server can put on the wire is one libkvmi maps. */
static void test_errno_map(void)
{
	static const int mapped[] = { 0, -1000, -14, -7, -1, -95, -11, -16, -22, -2, -12 };
	bool ok = true;
	int e;

	for (e = -1100; e <= 0; e++) {
		int w = kvmi_srv_errno_to_wire(e);
		bool found = false;

		for (unsigned i = 0; i < sizeof(mapped) / sizeof(mapped[0]); i++)
			found |= w == mapped[i];
		ok &= found;
	}
	tap_ok(ok, "kvmi_srv_errno_to_wire: only codes libkvmi maps");
}

int main(void)
{
	unsigned i;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		test_sample(&samples[i]);
	test_short_vcpu_header();
	test_var_sizes();
	test_page_access_partial();
	test_fields();
	test_unknown_ids();
	test_event_id_from_tool();
	test_policy_denials();
	test_framing();
	test_check_truth();
	test_cmd_response();
	test_pause_limit();
	test_errno_map();
	return tap_done();
}
