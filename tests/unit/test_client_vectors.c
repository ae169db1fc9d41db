/* Unit test: the client library against the 188 wire vectors recorded from
 * the unmodified libkvmi (libkvmi-wire.json, see its README).
 *
 * For every vector a scripted fake VMM (test_client_fake.c) replays the
 * recorded VMM bytes and compares, byte for byte, what our library writes
 * with what libkvmi wrote for the equivalent call.  After each case the
 * fake also requires a clean EOF, so no stray byte goes unnoticed.
 *
 * Where libkvmi's behaviour is a bug we deliberately do not copy (it leaves
 * unread bytes in the stream and desynchronizes, lets the u16 size field
 * wrap, rejects the kernel's CMD_ERROR event, shares one seq counter between
 * all domains), the case asserts our behaviour and says so in a comment.
 *
 * Output is TAP.  Argument 1 (or $KVMI_VECTORS) is the JSON file; without
 * it the test is skipped (exit 77). */
#include <kvmi/kvmi.h>

#include "test_client_fake.h"
#include "test_client_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct tj *root;
static int tap_n, tap_failed;

struct run {
	const char *name;
	const struct tj *v;
	struct fake_vmm f;
	struct kvmi_dom *dom;
	bool failed;
	char why[1024];
	int io_timeout_ms;
	/* handshake runs */
	struct kvmi_listener *l;
	bool hs_called;
	struct kvmi_hello hs_hello;
	int hs_ret;
	int connect_calls;
	int connect_ret;
};

static void failf(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed)
		return;
	r->failed = true;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

#define CHECK(cond, ...) do { if (!(cond)) { failf(r, __VA_ARGS__); return; } } while (0)
/* Evaluates each argument once (they are often the call under test). */
#define CHECK_RET(got, want) do { \
	int got_ = (got), want_ = (want); \
	CHECK(got_ == want_, "%s returned %d (%s), expected %d (%s)", #got, \
	      got_, strerror(-got_), want_, strerror(-want_)); \
} while (0)
#define CHECK_EQ(got, want) do { \
	uint64_t got_ = (uint64_t)(got), want_ = (uint64_t)(want); \
	CHECK(got_ == want_, "%s = 0x%llx, expected 0x%llx", #got, \
	      (unsigned long long)got_, (unsigned long long)want_); \
} while (0)

static const struct tj *vec(const char *name)
{
	for (size_t i = 0; i < root->n; i++)
		if (!strcmp(tj_str(tj_get(root->kids[i], "name")), name))
			return root->kids[i];
	return NULL;
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && !strcmp(s + a - b, suf);
}

/* Expected return value of the recorded call: 0 or -errno. */
static int recorded_ret(const struct tj *result)
{
	static const struct { const char *name; int val; } names[] = {
		{ "EINVAL", EINVAL }, { "ENOMSG", ENOMSG }, { "ENODATA", ENODATA },
		{ "EPIPE", EPIPE }, { "ETIMEDOUT", ETIMEDOUT }, { "E2BIG", E2BIG },
		{ "ENOSYS", ENOSYS }, { "EFAULT", EFAULT }, { "EPERM", EPERM },
		{ "EOPNOTSUPP", EOPNOTSUPP }, { "EAGAIN", EAGAIN }, { "EBUSY", EBUSY },
		{ "ENOENT", ENOENT }, { "ENOMEM", ENOMEM }, { "EPROTO", EPROTO },
		{ "EBADF", EBADF },
	};
	const char *e = tj_str(tj_get(result, "errno"));

	if (!e)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i].name, e))
			return -names[i].val;
	return -9999;
}

static uint64_t out_u64(const struct run *r, const char *key)
{
	uint64_t v = 0;

	tj_u64(tj_get(tj_get(tj_get(r->v, "result"), "out"), key), &v);
	return v;
}

/* Reply data of the first recorded reply (after header and error code). */
static uint8_t *reply_data(const struct run *r, size_t *len)
{
	size_t n;
	uint8_t *b = tj_hex(tj_get(r->v, "reply_hex"), &n);

	if (n < 16) {
		*len = 0;
		return b;
	}
	memmove(b, b + 16, n - 16);
	*len = n - 16;
	return b;
}

/* ---- scripts ---------------------------------------------------------- */

static void script_transcript(struct fake_vmm *f, const struct tj *t, bool split_sends)
{
	const char *prev = "";

	for (size_t i = 0; t && i < t->n; i++) {
		const struct tj *c = tj_at(t, i);
		const char *dir = tj_str(tj_get(c, "dir"));
		const char *hex = tj_str(tj_get(c, "hex"));

		if (!strcmp(dir, "tool->vmm")) {
			fake_expect_hex(f, hex, "tool->vmm chunk");
		} else if (!strcmp(dir, "vmm->tool")) {
			if (split_sends && !strcmp(prev, "vmm->tool"))
				fake_sleep(f, 50);
			fake_send_hex(f, hex, "vmm->tool chunk");
		} else if (!strcmp(dir, "eof")) {
			fake_expect_eof(f);
		}
		prev = dir;
	}
}

static bool transcript_has_eof(const struct tj *t)
{
	for (size_t i = 0; t && i < t->n; i++)
		if (!strcmp(tj_str(tj_get(tj_at(t, i), "dir")), "eof"))
			return true;
	return false;
}

static void script_plain(struct fake_vmm *f, const struct tj *v)
{
	fake_expect_hex(f, tj_str(tj_get(v, "request_hex")), "request");
	fake_send_hex(f, tj_str(tj_get(v, "reply_hex")), "reply");
}

static void script_handshake(struct fake_vmm *f)
{
	script_transcript(f, tj_get(vec("handshake/basic-sha1-cookie"), "transcript"), false);
}

static void script_followups(struct fake_vmm *f, const struct tj *v)
{
	const struct tj *fu = tj_get(v, "followup");

	for (size_t i = 0; fu && i < fu->n; i++) {
		const struct tj *c = tj_at(fu, i);

		if (tj_get(c, "request_hex"))
			script_plain(f, c);
	}
}

/* The fake's verdict comes first: a byte mismatch explains the rest. */
static void check_fake(struct run *r, struct fake_vmm *f)
{
	char prev[sizeof(r->why)];

	if (fake_join(f))
		return;
	if (r->failed) {
		snprintf(prev, sizeof(prev), "%s", r->why);
		snprintf(r->why, sizeof(r->why), "fake VMM: %.400s (step %zu of %zu); then: %.400s",
			 f->error, f->steps_done, f->nsteps, prev);
	} else {
		failf(r, "fake VMM: %s (step %zu of %zu)", f->error, f->steps_done, f->nsteps);
	}
}

/* ---- the connected-domain runner ---------------------------------------- */

typedef void (*case_fn)(struct run *r);

enum {
	F_EVENT_FIRST = 1,      /* send event_hex before the transcript */
	F_NO_SCRIPT = 2,        /* the case builds the whole script itself */
	F_NO_EOF = 4,           /* the case's script already ends the stream */
	F_SHORT_TIMEOUT = 8,    /* io_timeout 300 ms instead of 3 s */
};

static void tap(struct run *r)
{
	tap_n++;
	if (r->failed) {
		tap_failed++;
		printf("not ok %d - %s\n#   %s\n", tap_n, r->name, r->why);
	} else {
		printf("ok %d - %s\n", tap_n, r->name);
	}
	fflush(stdout);
}

static struct kvmi_config test_config(struct run *r)
{
	struct kvmi_config cfg = {
		.size = sizeof(cfg),
		.key = "secret",
		.key_len = 6,
		.io_timeout_ms = r->io_timeout_ms ? r->io_timeout_ms : 3000,
		.handshake_timeout_ms = 3000,
	};
	return cfg;
}

static void run_connected(const char *name, case_fn script, case_fn fn, unsigned int flags)
{
	struct run r = { .name = name };
	struct kvmi_config cfg;
	const struct tj *t;
	int err;

	r.v = vec(name);
	if (flags & F_SHORT_TIMEOUT)
		r.io_timeout_ms = 300;
	if (!r.v) {
		failf(&r, "no such vector");
		tap(&r);
		return;
	}
	if (fake_init(&r.f)) {
		failf(&r, "socketpair failed");
		tap(&r);
		return;
	}
	script_handshake(&r.f);
	if (flags & F_EVENT_FIRST)
		fake_send_hex(&r.f, tj_str(tj_get(r.v, "event_hex")), "event");
	t = tj_get(r.v, "transcript");
	if (script) {
		script(&r);
	} else if (!(flags & F_NO_SCRIPT)) {
		if (t)
			script_transcript(&r.f, t, true);
		else
			script_plain(&r.f, r.v);
		script_followups(&r.f, r.v);
	}
	if (!(flags & F_NO_EOF) && !transcript_has_eof(t))
		fake_expect_eof(&r.f);
	fake_start(&r.f);

	if (fn == NULL) {
		failf(&r, "no case function");
		goto out;
	}
	cfg = test_config(&r);
	err = kvmi_dom_open_fd(r.f.tool_fd, &cfg, &r.dom);
	if (err) {
		failf(&r, "handshake failed: %s", strerror(-err));
		goto out;
	}
	fn(&r);

	/* Recorded followups: the next command must work (unlike libkvmi
	 * after a desync, our stream always stays in step). */
	if (!r.failed && !script && !(flags & F_NO_SCRIPT)) {
		const struct tj *fu = tj_get(r.v, "followup");

		for (size_t i = 0; fu && i < fu->n; i++) {
			const char *call = tj_str(tj_get(tj_at(fu, i), "call"));

			if (call && !strncmp(call, "kvmi_check_command(dom, id=2)", 29)) {
				err = kvmi_dom_check_command(r.dom, 2);
				if (err) {
					failf(&r, "followup %zu: check_command: %s", i, strerror(-err));
					break;
				}
			}
		}
	}
out:
	if (r.dom)
		kvmi_dom_close(r.dom);
	check_fake(&r, &r.f);
	fake_destroy(&r.f);
	tap(&r);
}

/* ---- cmd vectors ---------------------------------------------------------------- */

#define WANT (recorded_ret(tj_get(r->v, "result")))
#define OK_CASE (has_suffix(r->name, "/ok"))

static void c_check_command(struct run *r)
{
	CHECK_RET(kvmi_dom_check_command(r->dom, KVMI_GET_REGISTERS), WANT);
}

static void c_check_event(struct run *r)
{
	CHECK_RET(kvmi_dom_check_event(r->dom, KVMI_EVENT_PF), WANT);
}

static void c_get_vcpu_count(struct run *r)
{
	uint32_t n = 0xdeadbeef;

	CHECK_RET(kvmi_dom_get_guest_info(r->dom, &n), WANT);
	if (OK_CASE || has_suffix(r->name, "no-data") || strstr(r->name, "reply"))
		CHECK_EQ(n, out_u64(r, "count"));
}

static void c_get_tsc_speed(struct run *r)
{
	uint64_t s = 0;

	CHECK_RET(kvmi_dom_get_vcpu_info(r->dom, 0, &s), WANT);
	if (OK_CASE)
		CHECK_EQ(s, out_u64(r, "speed"));
}

static void c_control_events(struct run *r)
{
	CHECK_RET(kvmi_dom_control_events(r->dom, 1, KVMI_EVENT_PF, true), WANT);
}

static void c_control_events_disable(struct run *r)
{
	CHECK_RET(kvmi_dom_control_events(r->dom, 0, KVMI_EVENT_CR, false), WANT);
}

static void c_control_vm_events(struct run *r)
{
	CHECK_RET(kvmi_dom_control_vm_events(r->dom, KVMI_EVENT_UNHOOK, true), WANT);
}

static void c_control_cr(struct run *r)
{
	CHECK_RET(kvmi_dom_control_cr(r->dom, 0, 3, true), WANT);
}

static void c_control_msr(struct run *r)
{
	CHECK_RET(kvmi_dom_control_msr(r->dom, 1, 0xc0000081, true), WANT);
}

static void c_control_singlestep(struct run *r)
{
	CHECK_RET(kvmi_dom_control_singlestep(r->dom, 2, true), WANT);
}

static void c_pause_all_1(struct run *r)
{
	CHECK_RET(kvmi_dom_pause_vcpus(r->dom, 1), WANT);
}

static void c_pause_all_2(struct run *r)
{
	CHECK_RET(kvmi_dom_pause_vcpus(r->dom, 2), WANT);
}

static void check_regs_reply(struct run *r, const struct kvmi_x86_regs *regs,
			     const struct kvmi_x86_sregs *sregs, uint32_t mode)
{
	size_t n;
	uint8_t *d = reply_data(r, &n);

	if (n < sizeof(struct kvmi_get_registers_reply)) {
		free(d);
		CHECK(0, "short recorded reply");
	}
	if (memcmp(regs, d + offsetof(struct kvmi_get_registers_reply, regs), sizeof(*regs)) ||
	    memcmp(sregs, d + offsetof(struct kvmi_get_registers_reply, sregs), sizeof(*sregs))) {
		free(d);
		CHECK(0, "regs/sregs differ from the reply bytes");
	}
	free(d);
	CHECK_EQ(mode, out_u64(r, "mode"));
	CHECK_EQ(regs->rip, 0xffffffff81001234ull);
	CHECK_EQ(sregs->cr3, 0x1aa000);
}

static void c_get_registers_0(struct run *r)
{
	struct kvmi_x86_regs regs;
	struct kvmi_x86_sregs sregs;
	uint32_t mode = 0;

	CHECK_RET(kvmi_dom_get_registers(r->dom, 1, &regs, &sregs, NULL, 0, &mode), WANT);
	if (OK_CASE)
		check_regs_reply(r, &regs, &sregs, mode);
}

static void c_get_registers_2(struct run *r)
{
	struct kvmi_x86_regs regs;
	struct kvmi_x86_sregs sregs;
	struct kvmi_x86_msr_entry msrs[2] = { { .index = 0xc0000080 }, { .index = 0x174 } };
	uint32_t mode = 0;

	CHECK_RET(kvmi_dom_get_registers(r->dom, 1, &regs, &sregs, msrs, 2, &mode), WANT);
	if (!OK_CASE)
		return;
	check_regs_reply(r, &regs, &sregs, mode);
	CHECK_EQ(msrs[0].index, 0xc0000080);
	CHECK_EQ(msrs[0].data, 0xd01);
	CHECK_EQ(msrs[1].index, 0x174);
	CHECK_EQ(msrs[1].data, 0x10);
}

/* rax..r15 = base + 0x0101*(k+1), rip, rflags 0x246 */
static void fill_regs(struct kvmi_x86_regs *regs, uint64_t base, uint64_t rip)
{
	uint64_t *g = &regs->rax;

	for (int k = 0; k < 16; k++)
		g[k] = base + 0x0101ull * (uint64_t)(k + 1);
	regs->rip = rip;
	regs->rflags = 0x246;
}

static void c_set_registers(struct run *r)
{
	struct kvmi_x86_regs regs;

	fill_regs(&regs, 0x2000000000000000ull, 0xffffffff81001235ull);
	CHECK_RET(kvmi_dom_set_registers(r->dom, 1, &regs), WANT);
}

static void c_get_cpuid(struct run *r)
{
	struct kvmi_get_cpuid_reply leaf;

	CHECK_RET(kvmi_dom_get_cpuid(r->dom, 0, 1, 0, &leaf), WANT);
	if (!OK_CASE)
		return;
	CHECK_EQ(leaf.eax, out_u64(r, "eax"));
	CHECK_EQ(leaf.ebx, out_u64(r, "ebx"));
	CHECK_EQ(leaf.ecx, out_u64(r, "ecx"));
	CHECK_EQ(leaf.edx, out_u64(r, "edx"));
}

static void c_get_xsave(struct run *r)
{
	static uint8_t buf[4096];
	size_t received = 0, n;
	uint8_t *d;
	bool same;

	CHECK_RET(kvmi_dom_get_xsave(r->dom, 0, buf, sizeof(buf), &received), WANT);
	if (!OK_CASE)
		return;
	d = reply_data(r, &n);
	same = n == sizeof(buf) && !memcmp(buf, d, n);
	free(d);
	CHECK(same, "xsave buffer differs from the reply data");
	CHECK_EQ(received, 4096);
}

static void xsave_pattern(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 5 + 1) & 0xff);
}

static void c_set_xsave_4096(struct run *r)
{
	static uint8_t buf[4096];

	xsave_pattern(buf, sizeof(buf));
	CHECK_RET(kvmi_dom_set_xsave(r->dom, 0, buf, sizeof(buf)), WANT);
}

static void c_set_xsave_512(struct run *r)
{
	uint8_t buf[512];

	xsave_pattern(buf, sizeof(buf));
	CHECK_RET(kvmi_dom_set_xsave(r->dom, 1, buf, sizeof(buf)), WANT);
}

static void c_get_xcr(struct run *r)
{
	uint64_t v = 0;

	CHECK_RET(kvmi_dom_get_xcr(r->dom, 0, 0, &v), WANT);
	if (OK_CASE)
		CHECK_EQ(v, out_u64(r, "value"));
}

static void c_get_mtrr_type(struct run *r)
{
	uint8_t t = 0;

	CHECK_RET(kvmi_dom_get_mtrr_type(r->dom, 0x100000, &t), WANT);
	if (OK_CASE)
		CHECK_EQ(t, out_u64(r, "type"));
}

static void c_inject_exception(struct run *r)
{
	CHECK_RET(kvmi_dom_inject_exception(r->dom, 1, 14, 2, 0x7fff0000), WANT);
}

static void check_buf_is_reply(struct run *r, const uint8_t *buf, size_t size)
{
	size_t n;
	uint8_t *d = reply_data(r, &n);
	bool same = n == size && !memcmp(buf, d, n);

	free(d);
	CHECK(same, "buffer differs from the reply data");
}

static void c_read_physical_8(struct run *r)
{
	uint8_t buf[8];

	CHECK_RET(kvmi_dom_read_physical(r->dom, 0x1000, buf, sizeof(buf)), WANT);
	if (OK_CASE)
		check_buf_is_reply(r, buf, sizeof(buf));
}

static void c_read_physical_4096(struct run *r)
{
	static uint8_t buf[4096];

	CHECK_RET(kvmi_dom_read_physical(r->dom, 0x2000, buf, sizeof(buf)), WANT);
	if (OK_CASE)
		check_buf_is_reply(r, buf, sizeof(buf));
}

static void c_write_physical_8(struct run *r)
{
	static const uint8_t b[8] = { 0xcc, 0x90, 0x90, 0x90, 0x0f, 0x0b, 0xeb, 0xfe };

	CHECK_RET(kvmi_dom_write_physical(r->dom, 0x3000, b, sizeof(b)), WANT);
}

static void c_write_physical_4096(struct run *r)
{
	static uint8_t b[4096];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)((i * 11 + 0x22) & 0xff);
	CHECK_RET(kvmi_dom_write_physical(r->dom, 0x4000, b, sizeof(b)), WANT);
}

static void c_set_page_access_1(struct run *r)
{
	uint64_t gpa[] = { 0x1000 };
	uint8_t access[] = { KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X };

	CHECK_RET(kvmi_dom_set_page_access(r->dom, gpa, access, 1, 0), WANT);
}

static void c_set_page_access_3(struct run *r)
{
	uint64_t gpa[] = { 0x1000, 0x2000, 0x3000 };
	uint8_t access[] = { 0, KVMI_PAGE_ACCESS_R, 7 };

	CHECK_RET(kvmi_dom_set_page_access(r->dom, gpa, access, 3, 2), WANT);
}

/* Commands without a typed wrapper go through kvmi_dom_command(), built
 * from the kvmi-wire.h structs: this also checks those layouts. */
static void c_set_page_write_bitmap_1(struct run *r)
{
	struct {
		struct kvmi_set_page_write_bitmap h;
		struct kvmi_page_write_bitmap_entry e[1];
	} req = { .h = { .count = 1 }, .e = { { .gpa = 0x5000, .bitmap = 0xffff } } };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_SET_PAGE_WRITE_BITMAP, &req, sizeof(req),
				   NULL, 0, NULL), WANT);
}

static void c_set_page_write_bitmap_2(struct run *r)
{
	struct {
		struct kvmi_set_page_write_bitmap h;
		struct kvmi_page_write_bitmap_entry e[2];
	} req = { .h = { .count = 2 },
		  .e = { { .gpa = 0x5000, .bitmap = 0xffff }, { .gpa = 0x6000, .bitmap = 0x80000001 } } };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_SET_PAGE_WRITE_BITMAP, &req, sizeof(req),
				   NULL, 0, NULL), WANT);
}

static void c_get_max_gfn(struct run *r)
{
	uint64_t gfn = 0;

	CHECK_RET(kvmi_dom_get_max_gfn(r->dom, &gfn), WANT);
	if (OK_CASE)
		CHECK_EQ(gfn, out_u64(r, "gfn"));
}

static void c_get_next_available_gfn(struct run *r)
{
	struct kvmi_get_next_available_gfn_reply rpl;

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_GET_NEXT_AVAILABLE_GFN, NULL, 0,
				   &rpl, sizeof(rpl), NULL), WANT);
	if (OK_CASE)
		CHECK_EQ(rpl.gfn, out_u64(r, "gfn"));
}

static void c_translate_gva(struct run *r)
{
	uint64_t gpa = 0;

	CHECK_RET(kvmi_dom_translate_gva(r->dom, 0, 0xffffffff81001234ull, &gpa), WANT);
	if (OK_CASE)
		CHECK_EQ(gpa, out_u64(r, "gpa"));
}

#define VCPU_REQ(type) struct { struct kvmi_vcpu_hdr h; struct type b; }

static void c_set_ve_info_page(struct run *r)
{
	VCPU_REQ(kvmi_set_ve_info_page) req = { .h = { .vcpu = 1 }, .b = { .gpa = 0x7000 } };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_SET_VE_INFO_PAGE, &req, sizeof(req), NULL, 0, NULL),
		  WANT);
}

static void c_switch_ept_view(struct run *r)
{
	VCPU_REQ(kvmi_switch_ept_view) req = { .h = { .vcpu = 1 }, .b = { .view = 2 } };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_SWITCH_EPT_VIEW, &req, sizeof(req), NULL, 0, NULL),
		  WANT);
}

static void c_disable_ve(struct run *r)
{
	struct kvmi_vcpu_hdr req = { .vcpu = 1 };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_DISABLE_VE, &req, sizeof(req), NULL, 0, NULL),
		  WANT);
}

static void c_get_ept_view(struct run *r)
{
	struct kvmi_vcpu_hdr req = { .vcpu = 1 };
	struct kvmi_get_ept_view_reply rpl;

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_GET_EPT_VIEW, &req, sizeof(req),
				   &rpl, sizeof(rpl), NULL), WANT);
	if (OK_CASE)
		CHECK_EQ(rpl.view, out_u64(r, "view"));
}

static void c_control_ept_view(struct run *r)
{
	VCPU_REQ(kvmi_control_ept_view) req = { .h = { .vcpu = 1 }, .b = { .view = 2, .visible = 1 } };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_CONTROL_EPT_VIEW, &req, sizeof(req), NULL, 0, NULL),
		  WANT);
}

static void c_create_ept_view(struct run *r)
{
	struct kvmi_create_ept_view_reply rpl;

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_CREATE_EPT_VIEW, NULL, 0, &rpl, sizeof(rpl), NULL),
		  WANT);
	if (OK_CASE)
		CHECK_EQ(rpl.view, out_u64(r, "view"));
}

static void c_destroy_ept_view(struct run *r)
{
	struct kvmi_destroy_ept_view req = { .view = 1 };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_DESTROY_EPT_VIEW, &req, sizeof(req), NULL, 0, NULL),
		  WANT);
}

static void c_change_gfn(struct run *r)
{
	VCPU_REQ(kvmi_change_gfn) req = {
		.h = { .vcpu = 1 }, .b = { .view = 2, .old_gfn = 0x1234, .new_gfn = 0x5678 },
	};

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_VCPU_CHANGE_GFN, &req, sizeof(req), NULL, 0, NULL),
		  WANT);
}

static void c_alloc_gfn(struct run *r)
{
	VCPU_REQ(kvmi_alloc_gfn) req = { .b = { .gfn = 0x20000 } };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_VCPU_ALLOC_GFN, &req, sizeof(req), NULL, 0, NULL),
		  WANT);
}

static void c_free_gfn(struct run *r)
{
	VCPU_REQ(kvmi_free_gfn) req = { .b = { .gfn = 0x20000 } };

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_VCPU_FREE_GFN, &req, sizeof(req), NULL, 0, NULL),
		  WANT);
}

/* libkvmi's kvmi_map_physical_page() starts with GET_MAP_TOKEN; we only
 * offer the token itself (the mapping goes over SCM_RIGHTS later). */
static void c_map_token(struct run *r)
{
	struct kvmi_map_mem_token tok;
	int want = OK_CASE ? 0 : -EINVAL;

	CHECK_RET(kvmi_dom_get_map_token(r->dom, &tok), want);
	if (OK_CASE)
		check_buf_is_reply(r, (const uint8_t *)&tok, sizeof(tok));
}

/* ---- event and event-rules vectors ---------------------------------------------- */

static struct kvmi_event_msg *pop_checked(struct run *r, const char *hex)
{
	struct kvmi_event_msg *ev = NULL;
	struct kvmi_event want_common;
	struct kvmi_msg_hdr hdr;
	uint8_t *b;
	size_t n, common, cn;
	int err;

	err = kvmi_dom_wait_event(r->dom, 2000);
	if (err) {
		failf(r, "wait_event: %s", strerror(-err));
		return NULL;
	}
	err = kvmi_dom_pop_event(r->dom, &ev);
	if (err) {
		failf(r, "pop_event: %s", strerror(-err));
		return NULL;
	}
	b = hex_decode(hex, &n);
	memcpy(&hdr, b, sizeof(hdr));
	common = (uint16_t)(b[8] | b[9] << 8);
	cn = common < sizeof(want_common) ? common : sizeof(want_common);
	memset(&want_common, 0, sizeof(want_common));
	memcpy(&want_common, b + 8, cn);
	if (ev->seq != hdr.seq)
		failf(r, "seq %u, expected %u", ev->seq, hdr.seq);
	else if (memcmp(&ev->common, &want_common, sizeof(want_common)))
		failf(r, "decoded common part differs (size %zu)", common);
	else if (ev->vcpu != want_common.vcpu || ev->event != want_common.event)
		failf(r, "vcpu/event fields differ");
	else if (ev->common_size != common || ev->specific_size != hdr.size - common)
		failf(r, "sizes %u/%u, expected %zu/%zu", ev->common_size, ev->specific_size,
		      common, hdr.size - common);
	free(b);
	if (r->failed) {
		kvmi_event_free(ev);
		return NULL;
	}
	return ev;
}

static void check_specific(struct run *r, const struct kvmi_event_msg *ev)
{
	const struct tj *d = tj_get(r->v, "decoded");
	size_t n;
	uint8_t *want = tj_hex(tj_get(d, "specific_union_hex"), &n);
	bool same = n <= sizeof(ev->specific) && !memcmp(&ev->specific, want, n);

	free(want);
	CHECK(same, "specific part differs from libkvmi's decoded union");
}

static void c_event_accepted(struct run *r)
{
	struct kvmi_event_msg *ev = pop_checked(r, tj_str(tj_get(r->v, "event_hex")));

	if (!ev)
		return;
	check_specific(r, ev);
	CHECK_EQ(kvmi_dom_pending_events(r->dom), 0);
	CHECK(kvmi_dom_is_connected(r->dom), "disconnected");
	if (!strcmp(r->name, "event/PF")) {
		CHECK_EQ(ev->specific.pf.gva, 0xffffffff81001234ull);
		CHECK_EQ(ev->specific.pf.view, 1);
		CHECK_EQ(ev->common.arch.view, 1);
		CHECK_EQ(ev->common.arch.mode, 8);
		CHECK_EQ(ev->common.arch.regs.rip, 0xffffffff81001234ull);
	}
	kvmi_event_free(ev);
}

static void script_event_then_followups(struct run *r)
{
	const struct tj *fu = tj_get(r->v, "followup");

	fake_send_hex(&r->f, tj_str(tj_get(r->v, "event_hex")), "event");
	for (size_t i = 0; fu && i < fu->n; i++) {
		const char *hex = tj_str(tj_get(tj_at(fu, i), "event_hex"));

		if (hex) {
			fake_gate(&r->f);
			fake_send_hex(&r->f, hex, "followup event");
		}
	}
}

/* The next valid event after a bad one is still received. */
static void check_followup_event(struct run *r)
{
	const struct tj *fu = tj_at(tj_get(r->v, "followup"), 0);
	struct kvmi_event_msg *ev;

	fake_open_gate(&r->f);
	ev = pop_checked(r, tj_str(tj_get(fu, "event_hex")));
	if (ev)
		kvmi_event_free(ev);
}

/* libkvmi: EINVAL from kvmi_wait_event.  Ours: -EBADMSG, once. */
static void c_event_rejected(struct run *r)
{
	struct kvmi_event_msg *ev = NULL;

	CHECK_RET(kvmi_dom_wait_event(r->dom, 2000), -EBADMSG);
	CHECK_EQ(kvmi_dom_pending_events(r->dom), 0);
	CHECK_RET(kvmi_dom_pop_event(r->dom, &ev), -EAGAIN);
	CHECK(ev == NULL, "pop on empty queue returned an event");
	CHECK(kvmi_dom_is_connected(r->dom), "disconnected");
	check_followup_event(r);
}

/* libkvmi rejects the payload without reading it and never recovers; we
 * consume it, report -EBADMSG and keep going. */
static void c_event_8185(struct run *r)
{
	c_event_rejected(r);
	if (r->failed)
		return;
	CHECK_RET(kvmi_dom_wait_event(r->dom, 100), -ETIMEDOUT);
}

/* libkvmi rejects ids it does not know (12 is the kernel's CMD_ERROR);
 * we deliver them so that the tool sees them (and could reply). */
static void c_event_unknown(struct run *r)
{
	struct kvmi_event_msg *ev = pop_checked(r, tj_str(tj_get(r->v, "event_hex")));
	size_t n;
	uint8_t *b;

	if (!ev)
		return;
	b = hex_decode(tj_str(tj_get(r->v, "event_hex")), &n);
	if (ev->specific_size && memcmp(&ev->specific, b + 8 + ev->common_size,
					ev->specific_size < 16 ? ev->specific_size : 16))
		failf(r, "raw specific bytes differ");
	free(b);
	if (ev->event == KVMI_EVENT_CMD_ERROR)
		CHECK(!kvmi_event_needs_reply(ev), "CMD_ERROR must not need a reply");
	kvmi_event_free(ev);
	check_followup_event(r);
}

static void c_pop_empty(struct run *r)
{
	struct kvmi_event_msg *ev = (struct kvmi_event_msg *)1;

	CHECK_RET(kvmi_dom_pop_event(r->dom, &ev), -EAGAIN);
	CHECK(ev == NULL, "ev not NULL");
}

static void c_wait_timeout(struct run *r)
{
	CHECK_RET(kvmi_dom_wait_event(r->dom, 100), -ETIMEDOUT);
	CHECK(kvmi_dom_is_connected(r->dom), "disconnected");
	CHECK_RET(kvmi_dom_wait_event(r->dom, 0), -ETIMEDOUT);
}

static void c_two_events(struct run *r)
{
	struct kvmi_event_msg *ev;

	CHECK_RET(kvmi_dom_wait_event(r->dom, 2000), 0);
	CHECK_RET(kvmi_dom_wait_event(r->dom, 2000), 0);
	CHECK_RET(kvmi_dom_pop_event(r->dom, &ev), 0);
	CHECK_EQ(ev->seq, 0x301);
	CHECK_EQ(ev->vcpu, 0);
	kvmi_event_free(ev);
	CHECK_RET(kvmi_dom_wait_event(r->dom, 2000), 0);
	CHECK_RET(kvmi_dom_pop_event(r->dom, &ev), 0);
	CHECK_EQ(ev->seq, 0x302);
	CHECK_EQ(ev->vcpu, 1);
	kvmi_event_free(ev);
}

/* libkvmi drops a half-written event and loses the stream; we wait for the
 * rest (within io_timeout). */
static void script_split(struct run *r)
{
	size_t n;
	uint8_t *b = hex_decode(tj_str(tj_get(r->v, "event_hex")), &n);

	fake_send(&r->f, b, 100, "first 100 bytes");
	fake_sleep(&r->f, 150);
	fake_send(&r->f, b + 100, 552 - 100, "rest of the event");
	fake_send_hex(&r->f, tj_str(tj_get(tj_get(r->v, "result"), "then_valid_pause_event_hex")),
		      "next event");
	free(b);
}

static void c_split(struct run *r)
{
	size_t n;
	uint8_t *b = hex_decode(tj_str(tj_get(r->v, "event_hex")), &n);
	char *hex1 = malloc(552 * 2 + 1);
	struct kvmi_event_msg *ev;

	for (size_t i = 0; i < 552; i++)
		sprintf(hex1 + 2 * i, "%02x", b[i]);
	free(b);
	ev = pop_checked(r, hex1);
	free(hex1);
	if (!ev)
		return;
	kvmi_event_free(ev);
	ev = pop_checked(r, tj_str(tj_get(tj_get(r->v, "result"), "then_valid_pause_event_hex")));
	if (ev)
		kvmi_event_free(ev);
}

static void script_stray(struct run *r)
{
	fake_send_hex(&r->f, tj_str(tj_get(r->v, "event_hex")), "stray reply");
	fake_send_hex(&r->f, tj_str(tj_get(tj_get(r->v, "result"), "then_valid_pause_event_hex")),
		      "next event");
}

/* libkvmi: EINVAL twice (it reads the stray payload as a header); we drop
 * the stray reply whole and return the next event. */
static void c_stray(struct run *r)
{
	struct kvmi_event_msg *ev =
		pop_checked(r, tj_str(tj_get(tj_get(r->v, "result"), "then_valid_pause_event_hex")));

	if (!ev)
		return;
	CHECK_EQ(ev->seq, 1282);
	CHECK_EQ(ev->common_size, 544);
	kvmi_event_free(ev);
}

/* ---- reply_event vectors ---------------------------------------------------------- */

static void c_reply_event(struct run *r)
{
	struct kvmi_event_msg *ev = pop_checked(r, tj_str(tj_get(r->v, "event_hex")));
	uint8_t action = strstr(r->name, "retry") ? KVMI_EVENT_ACTION_RETRY
						   : KVMI_EVENT_ACTION_CONTINUE;
	uint8_t *req;
	size_t n;
	int err;

	if (!ev)
		return;
	req = tj_hex(tj_get(r->v, "request_hex"), &n);
	if (has_suffix(r->name, "empty-data"))
		err = kvmi_dom_reply_event_raw(r->dom, ev->seq, NULL, 0);
	else    /* the caller's event-specific reply part is what follows byte 24 */
		err = kvmi_dom_reply_event(r->dom, ev, action, n > 24 ? req + 24 : NULL,
					   n > 24 ? n - 24 : 0);
	free(req);
	kvmi_event_free(ev);
	CHECK_RET(err, 0);
}

/* ---- batch vectors ---------------------------------------------------------------- */

static void c_batch_regs_page_access(struct run *r)
{
	struct kvmi_batch *b;
	struct kvmi_x86_regs regs;
	uint64_t gpa[] = { 0x1000 };
	uint8_t access[] = { KVMI_PAGE_ACCESS_R };
	int err;

	fill_regs(&regs, 0x2000000000000000ull, 0xffffffff81001235ull);
	CHECK_RET(kvmi_batch_new(r->dom, &b), 0);
	err = kvmi_batch_set_registers(b, 1, &regs);
	if (!err)
		err = kvmi_batch_set_page_access(b, gpa, access, 1, 0);
	if (!err)
		err = kvmi_batch_submit(b);
	kvmi_batch_destroy(b);
	CHECK_RET(err, 0);
}

static void c_batch_pause_x2(struct run *r)
{
	struct kvmi_batch *b;
	int err;

	CHECK_RET(kvmi_batch_new(r->dom, &b), 0);
	err = kvmi_batch_pause_vcpu(b, 0, false);
	if (!err)
		err = kvmi_batch_pause_vcpu(b, 1, false);
	if (!err)
		err = kvmi_batch_submit(b);
	kvmi_batch_destroy(b);
	CHECK_RET(err, 0);
}

static void c_batch_reply_only(struct run *r)
{
	struct kvmi_event_msg *ev = pop_checked(r, tj_str(tj_get(r->v, "event_hex")));
	struct kvmi_batch *b;
	int err;

	if (!ev)
		return;
	err = kvmi_batch_new(r->dom, &b);
	if (!err) {
		err = kvmi_batch_reply_event(b, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		if (!err)
			err = kvmi_batch_submit(b);
		kvmi_batch_destroy(b);
	}
	kvmi_event_free(ev);
	CHECK_RET(err, 0);
}

static void c_batch_regs_reply(struct run *r)
{
	struct kvmi_event_msg *ev = pop_checked(r, tj_str(tj_get(r->v, "event_hex")));
	struct kvmi_x86_regs regs;
	struct kvmi_batch *b;
	int err;

	if (!ev)
		return;
	fill_regs(&regs, 0x2000000000000000ull, 0xffffffff81001235ull);
	err = kvmi_batch_new(r->dom, &b);
	if (!err) {
		err = kvmi_batch_set_registers(b, 1, &regs);
		if (!err)
			err = kvmi_batch_reply_event(b, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		if (!err)
			err = kvmi_batch_submit(b);
		kvmi_batch_destroy(b);
	}
	kvmi_event_free(ev);
	CHECK_RET(err, 0);
}

static void c_batch_spp(struct run *r)
{
	struct {
		struct kvmi_set_page_write_bitmap h;
		struct kvmi_page_write_bitmap_entry e;
	} req = { .h = { .view = 1, .count = 1 }, .e = { .gpa = 0x5000, .bitmap = 0xffff0000 } };
	struct kvmi_batch *b;
	int err;

	CHECK_RET(kvmi_batch_new(r->dom, &b), 0);
	err = kvmi_batch_add(b, KVMI_SET_PAGE_WRITE_BITMAP, &req, sizeof(req));
	if (!err)
		err = kvmi_batch_submit(b);
	kvmi_batch_destroy(b);
	CHECK_RET(err, 0);
}

static void c_batch_empty(struct run *r)
{
	struct kvmi_batch *b;
	int err;

	CHECK_RET(kvmi_batch_new(r->dom, &b), 0);
	err = kvmi_batch_submit(b);
	kvmi_batch_destroy(b);
	CHECK_RET(err, 0);
}

static void c_pause_0(struct run *r)
{
	CHECK_RET(kvmi_dom_pause_vcpus(r->dom, 0), 0);
}

/* ---- reply-rules vectors ---------------------------------------------------------- */

/* libkvmi leaves the unread bytes in the stream and fails every later call
 * with ENOMSG; we consume the message, so the recorded followups succeed
 * (checked by the runner). */
static void c_check_command_13(struct run *r)
{
	int want = WANT;

	if (has_suffix(r->name, "peer-closes-instead-of-replying"))
		want = -ECONNRESET;     /* libkvmi: EPIPE */
	CHECK_RET(kvmi_dom_check_command(r->dom, KVMI_GET_REGISTERS), want);
	if (want == -ECONNRESET)
		CHECK(!kvmi_dom_is_connected(r->dom), "still connected after the peer closed");
}

static void script_peer_closes(struct run *r)
{
	fake_expect_hex(&r->f, tj_str(tj_get(r->v, "request_hex")), "request");
	fake_shutdown(&r->f);
}

static void script_request_only(struct run *r)
{
	fake_expect_hex(&r->f, tj_str(tj_get(r->v, "request_hex")), "request");
}

/* libkvmi marks the domain disconnected after a timeout; we keep it (a late
 * reply is recognized by its seq and dropped). */
static void c_timeout(struct run *r)
{
	CHECK_RET(kvmi_dom_check_command(r->dom, KVMI_GET_REGISTERS), -ETIMEDOUT);
	CHECK(kvmi_dom_is_connected(r->dom), "disconnected after a timeout");
}

/* libkvmi: E2BIG and a desync; ours: -EPROTO, stream in step. */
static void c_regs_mismatch(struct run *r)
{
	struct kvmi_x86_msr_entry msrs[2] = { { .index = 0xc0000080 }, { .index = 0x174 } };

	CHECK_RET(kvmi_dom_get_registers(r->dom, 1, NULL, NULL, msrs, 2, NULL), -EPROTO);
}

static void c_regs_verbatim(struct run *r)
{
	struct kvmi_x86_msr_entry msrs[2] = { { .index = 0xc0000080 }, { .index = 0x174 } };
	uint32_t mode = 0;

	CHECK_RET(kvmi_dom_get_registers(r->dom, 1, NULL, NULL, msrs, 2, &mode), 0);
	CHECK_EQ(msrs[0].index, out_u64(r, "entry0_index_after"));
	CHECK_EQ(msrs[0].data, out_u64(r, "entry0_data_after"));
	CHECK_EQ(msrs[1].index, out_u64(r, "entry1_index_after"));
	CHECK_EQ(msrs[1].data, out_u64(r, "entry1_data_after"));
	CHECK_EQ(mode, out_u64(r, "mode"));
}

static void c_xsave_shorter(struct run *r)
{
	static uint8_t buf[4096];
	size_t received = 0, n;
	uint8_t *d;
	bool same, zero = true;

	memset(buf, 0xcc, sizeof(buf));
	CHECK_RET(kvmi_dom_get_xsave(r->dom, 0, buf, sizeof(buf), &received), 0);
	CHECK_EQ(received, 1024);
	d = reply_data(r, &n);
	same = n == 1024 && !memcmp(buf, d, 1024);
	free(d);
	for (size_t i = 1024; i < sizeof(buf); i++)
		zero &= buf[i] == 0;
	CHECK(same, "first 1024 bytes differ");
	CHECK(zero, "bytes 1024..4095 not zero-filled");
}

static void c_xsave_longer(struct run *r)
{
	uint8_t buf[528];
	size_t received = 0, n;
	uint8_t *d;
	bool same, untouched = true;

	memset(buf, 0xcc, sizeof(buf));
	CHECK_RET(kvmi_dom_get_xsave(r->dom, 0, buf, 512, &received), 0);
	CHECK_EQ(received, 4096);
	d = reply_data(r, &n);
	same = !memcmp(buf, d, 512);
	free(d);
	for (size_t i = 512; i < sizeof(buf); i++)
		untouched &= buf[i] == 0xcc;
	CHECK(same, "first 512 bytes differ");
	CHECK(untouched, "bytes past the buffer were written");
}

static void c_read_short(struct run *r)
{
	uint8_t buf[8];
	static const uint8_t want[8] = { 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0 };

	memset(buf, 0xcc, sizeof(buf));
	CHECK_RET(kvmi_dom_read_physical(r->dom, 0x1000, buf, sizeof(buf)), 0);
	CHECK(!memcmp(buf, want, 8), "not deadbeef00000000");
}

static void c_read_16384(struct run *r)
{
	static uint8_t buf[16384];

	CHECK_RET(kvmi_dom_read_physical(r->dom, 0x10000, buf, sizeof(buf)), 0);
	check_buf_is_reply(r, buf, sizeof(buf));
}

static void script_two_pieces(struct run *r)
{
	size_t n;
	uint8_t *b = tj_hex(tj_get(r->v, "reply_hex"), &n);

	fake_expect_hex(&r->f, tj_str(tj_get(r->v, "request_hex")), "request");
	fake_send(&r->f, b, 8, "reply header");
	fake_sleep(&r->f, 200);
	fake_send(&r->f, b + 8, n - 8, "reply payload");
	free(b);
}

/* libkvmi lets the u16 size field wrap and sends garbage; we refuse. */
static void c_write_wraps(struct run *r)
{
	uint8_t *buf = calloc(1, 65520);

	CHECK(buf, "calloc");
	CHECK_RET(kvmi_dom_write_physical(r->dom, 0x100000, buf, 65520), -E2BIG);
	free(buf);
}

static void c_event_before_reply(struct run *r)
{
	struct kvmi_event_msg *ev;
	uint32_t n = 0;

	CHECK_RET(kvmi_dom_get_guest_info(r->dom, &n), 0);
	CHECK_EQ(n, out_u64(r, "count"));
	CHECK_EQ(kvmi_dom_pending_events(r->dom), out_u64(r, "kvmi_get_pending_events_after"));
	CHECK_RET(kvmi_dom_pop_event(r->dom, &ev), 0);
	CHECK_EQ(ev->seq, out_u64(r, "popped_seq"));
	CHECK_EQ(ev->event, out_u64(r, "popped_event"));
	CHECK_EQ(ev->vcpu, out_u64(r, "popped_vcpu"));
	kvmi_event_free(ev);
}

/* ---- misc, shim ------------------------------------------------------------- */

static void c_cached(struct run *r)
{
	uint32_t version = 0;
	struct kvmi_features f;

	CHECK_RET(kvmi_dom_get_version(r->dom, &version, &f), 0);
	CHECK_EQ(version, 1);
	CHECK_EQ(f.spp, 1);
	CHECK_EQ(f.vmfunc, 1);
	CHECK_EQ(f.eptp, 1);
	CHECK_EQ(f.ve, 0);
	CHECK_EQ(kvmi_dom_pending_events(r->dom), 0);
	CHECK(kvmi_dom_is_connected(r->dom), "not connected");
	CHECK_EQ(kvmi_dom_hello(r->dom)->start_time_ms, out_u64(r, "starttime"));
}

static void c_close(struct run *r)
{
	kvmi_dom_close(r->dom);
	r->dom = NULL;
}

static void c_query_physical(struct run *r)
{
	struct kvmi_query_physical req = { .gfn = 0x11 };
	struct kvmi_query_physical_reply rpl;

	CHECK_RET(kvmi_dom_command(r->dom, KVMI_QUERY_PHYSICAL, &req, sizeof(req),
				   &rpl, sizeof(rpl), NULL), WANT);
	if (OK_CASE) {
		CHECK_EQ(rpl.gfn, 0x10);
		CHECK_EQ(rpl.size, 4);
	}
}

static void c_errno_map(struct run *r)
{
	CHECK_RET(kvmi_dom_check_command(r->dom, KVMI_GET_REGISTERS), WANT);
}

/* ---- handshake vectors: through a real listener ------------------------------------ */

static int hs_cb(const struct kvmi_hello *hello, uint8_t cookie[KVMI_COOKIE_HASH_SIZE], void *ctx)
{
	struct run *r = ctx;
	static const uint8_t sha1_secret[20] = {
		0xe5, 0xe9, 0xfa, 0x1b, 0xa3, 0x1e, 0xcd, 0x1a, 0xe8, 0x4f,
		0x75, 0xca, 0xaa, 0x47, 0x4f, 0x3a, 0x66, 0x3f, 0x05, 0xf4,
	};

	r->hs_called = true;
	r->hs_hello = *hello;
	if (memcmp(cookie, sha1_secret, 20))
		failf(r, "cookie passed to the callback is not SHA-1(\"secret\")");
	return r->hs_ret;
}

static int connect_cb(struct kvmi_dom *dom, void *ctx)
{
	struct run *r = ctx;

	(void)dom;
	r->connect_calls++;
	return r->connect_ret;
}

static void run_handshake(const char *name)
{
	static int counter;
	struct run r = { .name = name };
	struct kvmi_config cfg = { .size = sizeof(cfg), .ctx = &r, .handshake_timeout_ms = 3000,
				   .io_timeout_ms = 3000, .on_connect = connect_cb };
	const struct tj *out;
	char addr[96];
	int err, want = 0;
	uint64_t u;

	r.v = vec(name);
	out = tj_get(tj_get(r.v, "result"), "out");
	if (strcmp(name, "handshake/no-handshake-cb")) {
		cfg.key = "secret";
		cfg.key_len = 6;
		cfg.on_handshake = hs_cb;
	}
	if (has_suffix(name, "handshake-cb-returns-negative"))
		r.hs_ret = -1;
	if (has_suffix(name, "accept-cb-returns-nonzero"))
		r.connect_ret = 1;

	snprintf(addr, sizeof(addr), "unix:@kvmi-client-test-%d-%d", (int)getpid(), counter++);
	err = kvmi_listener_open(addr, &cfg, &r.l);
	if (err) {
		failf(&r, "listener: %s", strerror(-err));
		tap(&r);
		return;
	}
	if (fake_init_connect(&r.f, addr)) {
		failf(&r, "connect failed");
		goto out;
	}
	if (has_suffix(name, "no-reply-vmm-closes")) {
		/* The recorded VMM shut its socket down instead of answering. */
		const struct tj *t = tj_get(r.v, "transcript");

		fake_send_hex(&r.f, tj_str(tj_get(tj_at(t, 0), "hex")), "handshake");
		fake_expect_hex(&r.f, tj_str(tj_get(tj_at(t, 1), "hex")), "answer");
		fake_shutdown(&r.f);
	} else {
		script_transcript(&r.f, tj_get(r.v, "transcript"), true);
	}
	if (!transcript_has_eof(tj_get(r.v, "transcript")))
		fake_expect_eof(&r.f);
	fake_start(&r.f);

	if (strstr(name, "struct-size-31"))
		want = -ENODATA;
	else if (strstr(name, "struct-size-65537"))
		want = -E2BIG;
	else if (strstr(name, "cb-returns") || strstr(name, "accept-cb"))
		want = -ECONNREFUSED;
	else if (strstr(name, "version-0") || strstr(name, "error-code-only"))
		want = -EPROTO;
	else if (strstr(name, "get-version-error"))
		want = -EPERM;
	else if (strstr(name, "no-reply-vmm-closes"))
		want = -ECONNRESET;

	err = kvmi_listener_accept(r.l, 3000, &r.dom);
	if (err != want) {
		failf(&r, "accept returned %d (%s), expected %d", err, strerror(-err), want);
		goto out;
	}

	tj_u64(tj_get(out, "handshake_cb_called"), &u);
	if (cfg.on_handshake && r.hs_called != (bool)u)
		failf(&r, "handshake callback called: %d, libkvmi: %d", r.hs_called, (int)u);
	tj_u64(tj_get(out, "accept_cb_calls"), &u);
	if ((uint64_t)r.connect_calls != u)
		failf(&r, "connect callback calls %d, libkvmi %d", r.connect_calls, (int)u);
	if (r.hs_called) {
		const struct tj *rec = tj_get(out, "handshake_cb_received");
		size_t n;
		uint8_t *uuid = tj_hex(tj_get(rec, "uuid"), &n);
		uint64_t st = 0;

		tj_u64(tj_get(rec, "start_time"), &st);
		if (memcmp(r.hs_hello.uuid, uuid, 16))
			failf(&r, "uuid differs");
		if ((uint64_t)r.hs_hello.start_time_ms != st)
			failf(&r, "start_time differs");
		if (strcmp(r.hs_hello.name, tj_str(tj_get(rec, "name"))))
			failf(&r, "name '%s' differs", r.hs_hello.name);
		free(uuid);
	}
	if (r.dom) {
		const struct tj *cq = tj_get(out, "cached_queries_after_accept");
		uint32_t version;
		struct kvmi_features f;

		kvmi_dom_get_version(r.dom, &version, &f);
		if (cq) {
			tj_u64(tj_get(cq, "version"), &u);
			if (version != u)
				failf(&r, "version %u, libkvmi %u", version, (unsigned)u);
			tj_u64(tj_get(cq, "kvmi_spp_support"), &u);
			if (f.spp != u)
				failf(&r, "spp %u", f.spp);
			tj_u64(tj_get(cq, "kvmi_ve_support"), &u);
			if (f.ve != u)
				failf(&r, "ve %u", f.ve);
		}
		if (strstr(name, "struct-size-104")) {
			/* We also read QEMU's max_gpa extension. */
			size_t n;
			uint8_t *b = tj_hex(tj_get(r.v, "reply_hex"), &n);
			uint64_t mg;

			memcpy(&mg, b + 96, 8);
			free(b);
			if (r.hs_hello.max_gpa != mg || r.hs_hello.struct_size != 104)
				failf(&r, "max_gpa/struct_size not decoded");
		}
		kvmi_dom_close(r.dom);
	}
out:
	kvmi_listener_close(r.l);
	check_fake(&r, &r.f);
	fake_destroy(&r.f);
	tap(&r);
}

/* ---- seq/global-counter-two-domains --------------------------------------- */

static void patch_seq(uint8_t *b, size_t off, uint32_t seq)
{
	memcpy(b + off + 4, &seq, 4);
}

static void script_patched(struct fake_vmm *f, const struct tj *step, size_t req_off,
			   size_t rpl_off, uint32_t seq)
{
	size_t nq, np;
	uint8_t *q = tj_hex(tj_get(step, "request_hex"), &nq);
	uint8_t *p = tj_hex(tj_get(step, "reply_hex"), &np);

	patch_seq(q, req_off, seq);
	patch_seq(p, rpl_off, seq);
	if (req_off)    /* handshake: VMM speaks first */
		fake_send(f, p, rpl_off, "handshake");
	fake_expect(f, q, nq, "request");
	fake_send(f, p + rpl_off, np - rpl_off, "reply");
	free(q);
	free(p);
}

/* libkvmi uses one seq counter for all domains (A: 1,2  B: 3,4  A: 5).
 * Ours counts per domain (A: 1,2  B: 1,2  A: 3); the bytes are otherwise
 * identical (bytes 4..7 adjusted as the vectors README describes). */
static void run_seq(void)
{
	struct run r = { .name = "seq/global-counter-two-domains" };
	struct fake_vmm fb;
	struct kvmi_config cfg = { .size = sizeof(cfg), .key = "secret", .key_len = 6 };
	struct kvmi_dom *da = NULL, *db = NULL;
	const struct tj *fu;
	char addr[96];
	uint32_t n;
	int err;

	r.v = vec(r.name);
	fu = tj_get(r.v, "followup");
	snprintf(addr, sizeof(addr), "unix:@kvmi-client-test-seq-%d", (int)getpid());
	if (kvmi_listener_open(addr, &cfg, &r.l) || fake_init_connect(&r.f, addr) ||
	    fake_init_connect(&fb, addr)) {
		failf(&r, "setup failed");
		tap(&r);
		return;
	}
	script_patched(&r.f, r.v, 24, 96, 1);
	script_patched(&r.f, tj_at(fu, 0), 0, 0, 2);
	script_patched(&r.f, tj_at(fu, 3), 0, 0, 3);
	fake_expect_eof(&r.f);
	script_patched(&fb, tj_at(fu, 1), 24, 96, 1);
	script_patched(&fb, tj_at(fu, 2), 0, 0, 2);
	fake_expect_eof(&fb);
	fake_start(&r.f);
	fake_start(&fb);

	err = kvmi_listener_accept(r.l, 3000, &da);
	if (!err)
		err = kvmi_dom_get_guest_info(da, &n);
	if (!err)
		err = kvmi_listener_accept(r.l, 3000, &db);
	if (!err)
		err = kvmi_dom_get_guest_info(db, &n);
	if (!err)
		err = kvmi_dom_get_guest_info(da, &n);
	if (err)
		failf(&r, "%s", strerror(-err));
	if (!err && (strcmp(kvmi_dom_name(da), "vm-A") || strcmp(kvmi_dom_name(db), "vm-B")))
		failf(&r, "names differ");
	kvmi_dom_close(da);
	kvmi_dom_close(db);
	kvmi_listener_close(r.l);
	check_fake(&r, &r.f);
	check_fake(&r, &fb);
	fake_destroy(&r.f);
	fake_destroy(&fb);
	tap(&r);
}

/* ---- the table ------------------------------------------------------------ */

static const struct {
	const char *name;       /* "x/" prefix: both /ok and /err-EINVAL */
	case_fn fn;
	case_fn script;
	unsigned int flags;
} cases[] = {
	{ .name = "cmd/check_command/", .fn = c_check_command },
	{ .name = "cmd/check_event/", .fn = c_check_event },
	{ .name = "cmd/get_vcpu_count/", .fn = c_get_vcpu_count },
	{ .name = "cmd/get_tsc_speed/", .fn = c_get_tsc_speed },
	{ .name = "cmd/control_events/", .fn = c_control_events },
	{ .name = "cmd/control_events_disable/", .fn = c_control_events_disable },
	{ .name = "cmd/control_vm_events/", .fn = c_control_vm_events },
	{ .name = "cmd/control_cr/", .fn = c_control_cr },
	{ .name = "cmd/control_msr/", .fn = c_control_msr },
	{ .name = "cmd/control_singlestep/", .fn = c_control_singlestep },
	{ .name = "cmd/pause_all_vcpus_count1/", .fn = c_pause_all_1 },
	{ .name = "cmd/pause_all_vcpus_count2/", .fn = c_pause_all_2 },
	{ .name = "cmd/get_registers_nmsrs0/", .fn = c_get_registers_0 },
	{ .name = "cmd/get_registers_nmsrs2/", .fn = c_get_registers_2 },
	{ .name = "cmd/set_registers/", .fn = c_set_registers },
	{ .name = "cmd/get_cpuid/", .fn = c_get_cpuid },
	{ .name = "cmd/get_xsave/", .fn = c_get_xsave },
	{ .name = "cmd/set_xsave_4096/", .fn = c_set_xsave_4096 },
	{ .name = "cmd/set_xsave_512/", .fn = c_set_xsave_512 },
	{ .name = "cmd/get_xcr/", .fn = c_get_xcr },
	{ .name = "cmd/get_mtrr_type/", .fn = c_get_mtrr_type },
	{ .name = "cmd/inject_exception/", .fn = c_inject_exception },
	{ .name = "cmd/read_physical_8/", .fn = c_read_physical_8 },
	{ .name = "cmd/read_physical_4096/", .fn = c_read_physical_4096 },
	{ .name = "cmd/write_physical_8/", .fn = c_write_physical_8 },
	{ .name = "cmd/write_physical_4096/", .fn = c_write_physical_4096 },
	{ .name = "cmd/set_page_access_1/", .fn = c_set_page_access_1 },
	{ .name = "cmd/set_page_access_3/", .fn = c_set_page_access_3 },
	{ .name = "cmd/set_page_write_bitmap_1/", .fn = c_set_page_write_bitmap_1 },
	{ .name = "cmd/set_page_write_bitmap_2/", .fn = c_set_page_write_bitmap_2 },
	{ .name = "cmd/get_maximum_gfn/", .fn = c_get_max_gfn },
	{ .name = "cmd/get_next_available_gfn/", .fn = c_get_next_available_gfn },
	{ .name = "cmd/translate_gva/", .fn = c_translate_gva },
	{ .name = "cmd/set_ve_info_page/", .fn = c_set_ve_info_page },
	{ .name = "cmd/switch_ept_view/", .fn = c_switch_ept_view },
	{ .name = "cmd/disable_ve/", .fn = c_disable_ve },
	{ .name = "cmd/get_ept_view/", .fn = c_get_ept_view },
	{ .name = "cmd/control_ept_view/", .fn = c_control_ept_view },
	{ .name = "cmd/create_ept_view/", .fn = c_create_ept_view },
	{ .name = "cmd/destroy_ept_view/", .fn = c_destroy_ept_view },
	{ .name = "cmd/change_gfn/", .fn = c_change_gfn },
	{ .name = "cmd/alloc_gfn/", .fn = c_alloc_gfn },
	{ .name = "cmd/free_gfn/", .fn = c_free_gfn },
	{ .name = "cmd/map_physical_page_v1/", .fn = c_map_token },

	{ .name = "event/", .fn = c_event_accepted, .script = script_event_then_followups },
	{ .name = "event-rules/common-size-8-no-arch", .fn = c_event_accepted, .script = script_event_then_followups },
	{ .name = "event-rules/common-size-40-partial-arch", .fn = c_event_accepted, .script = script_event_then_followups },
	{ .name = "event-rules/common-size-560-larger", .fn = c_event_accepted, .script = script_event_then_followups },
	{ .name = "event-rules/specific-shorter-8-of-24", .fn = c_event_accepted, .script = script_event_then_followups },
	{ .name = "event-rules/specific-longer-32-of-24", .fn = c_event_accepted, .script = script_event_then_followups },
	{ .name = "event-rules/no-specific-event-with-extra-bytes", .fn = c_event_accepted, .script = script_event_then_followups },
	{ .name = "event-rules/common-size-7-rejected", .fn = c_event_rejected, .script = script_event_then_followups },
	{ .name = "event-rules/common-size-exceeds-message-rejected", .fn = c_event_rejected, .script = script_event_then_followups },
	{ .name = "event-rules/unknown-event-id-12-rejected", .fn = c_event_unknown, .script = script_event_then_followups },
	{ .name = "event-rules/unknown-event-id-14-rejected", .fn = c_event_unknown, .script = script_event_then_followups },
	{ .name = "event-rules/message-size-8184-accepted", .fn = c_event_accepted, .script = script_event_then_followups },
	{ .name = "event-rules/message-size-8185-rejected-desync", .fn = c_event_8185, .script = script_event_then_followups },
	{ .name = "event-rules/pop-empty-queue", .fn = c_pop_empty, .flags = F_NO_SCRIPT },
	{ .name = "event-rules/wait-timeout", .fn = c_wait_timeout, .flags = F_NO_SCRIPT },
	{ .name = "event-rules/two-events-one-write", .fn = c_two_events, .script = script_event_then_followups },
	{ .name = "event-rules/event-split-across-writes", .fn = c_split, .script = script_split },
	{ .name = "event-rules/non-event-message-while-waiting", .fn = c_stray, .script = script_stray },

	{ .name = "reply_event/", .fn = c_reply_event, .flags = F_EVENT_FIRST },

	{ .name = "batch/registers-and-page-access", .fn = c_batch_regs_page_access },
	{ .name = "batch/queue-pause-vcpu-x2", .fn = c_batch_pause_x2 },
	{ .name = "batch/reply-event-only-sent-bare", .fn = c_batch_reply_only, .flags = F_EVENT_FIRST },
	{ .name = "batch/registers-then-reply-event-no-wait", .fn = c_batch_regs_reply, .flags = F_EVENT_FIRST },
	{ .name = "batch/queue-spp-access", .fn = c_batch_spp },
	{ .name = "batch/empty-commit", .fn = c_batch_empty },
	{ .name = "batch/error-on-suffix", .fn = c_pause_all_2 },
	{ .name = "batch/pause-all-vcpus-count0", .fn = c_pause_0 },

	{ .name = "reply-rules/short-reply-no-data", .fn = c_get_vcpu_count },
	{ .name = "reply-rules/short-reply-4-of-16", .fn = c_get_vcpu_count },
	{ .name = "reply-rules/long-reply-extra-bytes-discarded", .fn = c_get_vcpu_count },
	{ .name = "reply-rules/wrong-seq-ENOMSG", .fn = c_check_command_13 },
	{ .name = "reply-rules/wrong-id-ENOMSG", .fn = c_check_command_13 },
	{ .name = "reply-rules/reply-size-4-ENODATA", .fn = c_check_command_13 },
	{ .name = "reply-rules/error-reply-with-trailing-data-desync", .fn = c_check_command_13 },
	{ .name = "reply-rules/error-code-padding-ignored", .fn = c_get_vcpu_count },
	{ .name = "reply-rules/event-before-reply-queued", .fn = c_event_before_reply },
	{ .name = "reply-rules/peer-closes-instead-of-replying", .fn = c_check_command_13, .script = script_peer_closes, .flags = F_NO_EOF },
	{ .name = "reply-rules/no-reply-timeout", .fn = c_timeout, .script = script_request_only, .flags = F_SHORT_TIMEOUT },
	{ .name = "reply-rules/get_registers-size-mismatch-E2BIG", .fn = c_regs_mismatch },
	{ .name = "reply-rules/get_registers-reply-msr-entries-copied-verbatim", .fn = c_regs_verbatim },
	{ .name = "reply-rules/get_xsave-reply-shorter-than-buffer", .fn = c_xsave_shorter },
	{ .name = "reply-rules/get_xsave-reply-longer-than-buffer", .fn = c_xsave_longer },
	{ .name = "reply-rules/read_physical-short-reply-zero-filled", .fn = c_read_short },
	{ .name = "reply-rules/read_physical-16384-reply-over-8KiB", .fn = c_read_16384 },
	{ .name = "reply-rules/reply-in-two-pieces", .fn = c_get_vcpu_count, .script = script_two_pieces },
	{ .name = "reply-rules/write_physical-65520-size-field-wraps", .fn = c_write_wraps, .flags = F_NO_SCRIPT },
	{ .name = "reply-rules/errno-map/", .fn = c_errno_map },

	{ .name = "misc/cached-queries-no-wire-traffic", .fn = c_cached },
	{ .name = "misc/domain-close", .fn = c_close },
	{ .name = "shim/map_physical_page-host-query-physical/", .fn = c_query_physical },
};

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : getenv("KVMI_VECTORS");
	const char *filter = getenv("KVMI_VECTOR_FILTER");   /* substring, for debugging */
	size_t covered = 0;

	if (!path || access(path, R_OK)) {
		printf("1..0 # SKIP libkvmi-wire.json not found (argument 1 or $KVMI_VECTORS)\n");
		return 77;
	}
	root = tj_load(path);
	if (!root || root->type != TJ_ARR) {
		printf("Bail out! cannot parse %s\n", path);
		return 1;
	}

	for (size_t i = 0; i < root->n; i++) {
		const char *name = tj_str(tj_get(root->kids[i], "name"));
		bool done = false;

		if (filter && !strstr(name, filter))
			continue;
		if (!strncmp(name, "handshake/", 10)) {
			run_handshake(name);
			done = true;
		} else if (!strcmp(name, "seq/global-counter-two-domains")) {
			run_seq();
			done = true;
		}
		for (size_t c = 0; !done && c < sizeof(cases) / sizeof(cases[0]); c++) {
			size_t len = strlen(cases[c].name);
			bool prefix = cases[c].name[len - 1] == '/';

			if (prefix ? strncmp(name, cases[c].name, len) : strcmp(name, cases[c].name))
				continue;
			run_connected(name, cases[c].script, cases[c].fn, cases[c].flags);
			done = true;
		}
		if (done) {
			covered++;
		} else {
			tap_n++;
			tap_failed++;
			printf("not ok %d - %s\n#   no test case for this vector\n", tap_n, name);
		}
	}
	printf("1..%d\n", tap_n);
	fprintf(stderr, "%zu of %zu vectors covered, %d failed\n", covered, root->n, tap_failed);
	tj_free(root);
	return tap_failed ? 1 : 0;
}
