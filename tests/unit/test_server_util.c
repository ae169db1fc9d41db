/* SPDX-License-Identifier: MIT */
/*
 * test_server_util.c - TAP output, the scripted fake backend and the
 * socketpair harness shared by the protocol-server unit tests.
 */
#include "test_server_util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- TAP ------------------------------------------------------------ */

int tap_n, tap_failed;

void tap_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

void tap_skip(const char *why, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("ok %d - ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", why);
}

int tap_done(void)
{
	printf("1..%d\n", tap_n);
	if (tap_failed)
		printf("# %d of %d failed\n", tap_failed, tap_n);
	return tap_failed ? 1 : 0;
}

void tap_hexdiff(const char *what, const uint8_t *got, size_t got_len,
		 const uint8_t *want, size_t want_len)
{
	size_t i, n = got_len < want_len ? got_len : want_len;

	for (i = 0; i < n && got[i] == want[i]; i++)
		;
	if (i == n && got_len == want_len)
		return;
	tap_diag("%s: got %zu bytes, want %zu; first difference at offset %zu", what,
		 got_len, want_len, i);
	if (i < got_len)
		tap_diag("  got  byte 0x%02x", got[i]);
	if (i < want_len)
		tap_diag("  want byte 0x%02x", want[i]);
}

size_t hex_to_bin(const char *hex, uint8_t *out, size_t max)
{
	size_t n = 0;

	while (hex[0] && hex[1] && n < max) {
		unsigned v;

		if (sscanf(hex, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

/* ---- fake backend --------------------------------------------------- */

static struct fake_call *record(struct kvmi_backend *f, enum fake_op op, unsigned vcpu,
				uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
	struct fake_call *c;

	f->total_calls++;
	if (f->ncalls >= FAKE_MAX_CALLS)
		f->ncalls = FAKE_MAX_CALLS - 1;
	c = &f->calls[f->ncalls++];
	memset(c, 0, sizeof(*c));
	c->op = op;
	c->vcpu = vcpu;
	c->a[0] = a0;
	c->a[1] = a1;
	c->a[2] = a2;
	c->a[3] = a3;
	return c;
}

static void copy_data(struct fake_call *c, const void *p, size_t len)
{
	if (len > sizeof(c->data))
		len = sizeof(c->data);
	memcpy(c->data, p, len);
	c->len = len;
}

/* Copies the script at offset `off` into out (zero-filled past its end). */
static void script(struct kvmi_backend *f, size_t off, void *out, size_t len)
{
	memset(out, 0, len);
	if (f->script && off < f->script_len)
		memcpy(out, f->script + off, f->script_len - off < len ? f->script_len - off : len);
}

#define SIMPLE(name, op, ...) \
	do { \
		int _e; \
		pthread_mutex_lock(&b->lock); \
		record(b, op, __VA_ARGS__); \
		_e = b->err; \
		pthread_mutex_unlock(&b->lock); \
		return _e; \
	} while (0)

#define OUT(off, ptr, len) \
	do { \
		int _e; \
		pthread_mutex_lock(&b->lock); \
		_e = b->err; \
		if (!_e) \
			script(b, off, ptr, len); \
		pthread_mutex_unlock(&b->lock); \
		return _e; \
	} while (0)

static unsigned f_vcpu_count(struct kvmi_backend *b) { return b->vcpus; }

static int f_check_command(struct kvmi_backend *b, unsigned id)
{
	return id < KVMI_NUM_MESSAGES ? b->check_command_err[id] : 0;
}

static int f_check_event(struct kvmi_backend *b, unsigned id)
{
	if (id == KVMI_X_EVENT_PF_PAGE_WALK)
		return b->check_pf_walk_err;
	return id < KVMI_NUM_EVENTS ? b->check_event_err[id] : 0;
}

static void f_get_features(struct kvmi_backend *b, struct kvmi_features *feat)
{
	*feat = b->features;
}

static int f_get_event_arch(struct kvmi_backend *b, unsigned vcpu, struct kvmi_event_arch *arch)
{
	(void)vcpu;
	pthread_mutex_lock(&b->lock);
	*arch = b->arch;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static void f_session_start(struct kvmi_backend *b)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_SESSION_START, 0, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
}

static void f_session_end(struct kvmi_backend *b)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_SESSION_END, 0, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
}

static int f_pause_vcpu(struct kvmi_backend *b, unsigned vcpu, bool wait)
{ SIMPLE(pause, FOP_PAUSE, vcpu, wait, 0, 0, 0); }

static void f_pause_wait(struct kvmi_backend *b)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_PAUSE_WAIT, 0, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
}

static int f_control_vm_events(struct kvmi_backend *b, unsigned id, bool enable)
{ SIMPLE(cve, FOP_CONTROL_VM_EVENTS, 0, id, enable, 0, 0); }

static int f_read_physical(struct kvmi_backend *b, uint64_t gpa, void *buf, size_t size)
{
	int e;

	pthread_mutex_lock(&b->lock);
	record(b, FOP_READ, 0, gpa, size, 0, 0);
	e = b->err;
	if (!e)
		script(b, 0, buf, size);
	pthread_mutex_unlock(&b->lock);
	return e;
}

static int f_write_physical(struct kvmi_backend *b, uint64_t gpa, const void *buf, size_t size)
{
	int e;

	pthread_mutex_lock(&b->lock);
	copy_data(record(b, FOP_WRITE, 0, gpa, size, 0, 0), buf, size);
	e = b->err;
	pthread_mutex_unlock(&b->lock);
	return e;
}

static int f_set_page_access(struct kvmi_backend *b, uint16_t view,
			     const struct kvmi_page_access_entry *e, unsigned count)
{
	int r;

	pthread_mutex_lock(&b->lock);
	copy_data(record(b, FOP_SET_PAGE_ACCESS, 0, view, count, 0, 0), e, count * sizeof(*e));
	r = b->err;
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int f_get_map_token(struct kvmi_backend *b, struct kvmi_map_mem_token *t)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_GET_MAP_TOKEN, 0, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, t, sizeof(*t));
}

/* Any token is good; the descriptor is a fresh empty memfd. */
static int f_map_memory(struct kvmi_backend *b, const struct kvmi_map_mem_token *t, uint64_t gpa,
			uint64_t len, bool readonly, int *fd, uint64_t *offset)
{
	int e;

	pthread_mutex_lock(&b->lock);
	copy_data(record(b, FOP_MAP_MEMORY, 0, gpa, len, readonly, 0), t, sizeof(*t));
	e = b->err;
	pthread_mutex_unlock(&b->lock);
	if (e)
		return e;
	*fd = memfd_create("fake-map", MFD_CLOEXEC);
	*offset = gpa;
	return *fd < 0 ? -KVM_ENOMEM : 0;
}

static int f_get_max_gfn(struct kvmi_backend *b, uint64_t *gfn)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_GET_MAX_GFN, 0, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, gfn, sizeof(*gfn));
}

static int f_control_spp(struct kvmi_backend *b, bool enable)
{ SIMPLE(spp, FOP_CONTROL_SPP, 0, enable, 0, 0, 0); }

static int f_set_page_write_bitmap(struct kvmi_backend *b, uint16_t view,
				   const struct kvmi_page_write_bitmap_entry *e, unsigned count)
{
	int r;

	pthread_mutex_lock(&b->lock);
	copy_data(record(b, FOP_SET_PAGE_WRITE_BITMAP, 0, view, count, 0, 0), e,
		  count * sizeof(*e));
	r = b->err;
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int f_set_page_sve(struct kvmi_backend *b, uint16_t view, uint64_t gpa, bool suppress)
{ SIMPLE(sve, FOP_SET_PAGE_SVE, 0, view, gpa, suppress, 0); }

static int f_get_next_available_gfn(struct kvmi_backend *b, uint64_t *gfn)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_GET_NEXT_GFN, 0, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, gfn, sizeof(*gfn));
}

static int f_query_physical(struct kvmi_backend *b, uint64_t gfn, struct kvmi_query_physical_reply *r)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_QUERY_PHYSICAL, 0, gfn, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, r, sizeof(*r));
}

static int f_create_ept_view(struct kvmi_backend *b, uint16_t *view)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_CREATE_VIEW, 0, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, view, sizeof(*view));
}

static int f_destroy_ept_view(struct kvmi_backend *b, uint16_t view)
{ SIMPLE(dv, FOP_DESTROY_VIEW, 0, view, 0, 0, 0); }

static int f_get_tsc_speed(struct kvmi_backend *b, unsigned vcpu, uint64_t *hz)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_TSC, vcpu, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, hz, sizeof(*hz));
}

static int f_control_events(struct kvmi_backend *b, unsigned vcpu, unsigned id, bool enable)
{ SIMPLE(ce, FOP_CONTROL_EVENTS, vcpu, id, enable, 0, 0); }

static int f_control_cr(struct kvmi_backend *b, unsigned vcpu, unsigned cr, bool enable)
{ SIMPLE(cr, FOP_CONTROL_CR, vcpu, cr, enable, 0, 0); }

static int f_control_msr(struct kvmi_backend *b, unsigned vcpu, uint32_t msr, bool enable)
{ SIMPLE(msr, FOP_CONTROL_MSR, vcpu, msr, enable, 0, 0); }

static int f_get_registers(struct kvmi_backend *b, unsigned vcpu, uint32_t *mode,
			   struct kvmi_x86_regs *regs, struct kvmi_x86_sregs *sregs,
			   struct kvmi_x86_msr_entry *msrs, unsigned nmsrs)
{
	struct fake_call *c;
	unsigned i;
	int e;

	pthread_mutex_lock(&b->lock);
	c = record(b, FOP_GET_REGISTERS, vcpu, nmsrs, 0, 0, 0);
	copy_data(c, msrs, nmsrs * sizeof(*msrs));
	e = b->err;
	if (!e) {
		script(b, 0, mode, sizeof(*mode));
		script(b, offsetof(struct kvmi_get_registers_reply, regs), regs, sizeof(*regs));
		script(b, offsetof(struct kvmi_get_registers_reply, sregs), sregs, sizeof(*sregs));
		for (i = 0; i < nmsrs; i++)
			script(b, sizeof(struct kvmi_get_registers_reply) + i * sizeof(*msrs) + 8,
			       &msrs[i].data, sizeof(msrs[i].data));
	}
	pthread_mutex_unlock(&b->lock);
	return e;
}

static int f_set_registers(struct kvmi_backend *b, unsigned vcpu, const struct kvmi_x86_regs *regs)
{
	int e;

	pthread_mutex_lock(&b->lock);
	copy_data(record(b, FOP_SET_REGISTERS, vcpu, regs->rip, 0, 0, 0), regs, sizeof(*regs));
	e = b->err;
	pthread_mutex_unlock(&b->lock);
	return e;
}

static int f_get_cpuid(struct kvmi_backend *b, unsigned vcpu, uint32_t function, uint32_t index,
		       struct kvmi_get_cpuid_reply *r)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_GET_CPUID, vcpu, function, index, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, r, sizeof(*r));
}

static int f_get_xsave(struct kvmi_backend *b, unsigned vcpu, void *buf, size_t size)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_GET_XSAVE, vcpu, size, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, buf, size);
}

static int f_set_xsave(struct kvmi_backend *b, unsigned vcpu, const void *buf, size_t size)
{
	int e;

	pthread_mutex_lock(&b->lock);
	copy_data(record(b, FOP_SET_XSAVE, vcpu, size, 0, 0, 0), buf, size);
	e = b->err;
	pthread_mutex_unlock(&b->lock);
	return e;
}

static int f_get_xcr(struct kvmi_backend *b, unsigned vcpu, unsigned xcr, uint64_t *value)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_GET_XCR, vcpu, xcr, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, value, sizeof(*value));
}

static int f_inject_exception(struct kvmi_backend *b, unsigned vcpu, uint8_t vector,
			      uint32_t error_code, uint64_t address)
{ SIMPLE(inj, FOP_INJECT, vcpu, vector, error_code, address, 0); }

static int f_get_mtrr_type(struct kvmi_backend *b, unsigned vcpu, uint64_t gpa, uint8_t *type)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_MTRR, vcpu, gpa, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, type, sizeof(*type));
}

static int f_translate_gva(struct kvmi_backend *b, unsigned vcpu, uint64_t gva, uint64_t *gpa)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_TRANSLATE, vcpu, gva, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, gpa, sizeof(*gpa));
}

static int f_control_singlestep(struct kvmi_backend *b, unsigned vcpu, bool enable)
{ SIMPLE(ss, FOP_SINGLESTEP, vcpu, enable, 0, 0, 0); }

static int f_set_ve_info_page(struct kvmi_backend *b, unsigned vcpu, uint64_t gpa, bool trig)
{ SIMPLE(ve, FOP_SET_VE, vcpu, gpa, trig, 0, 0); }

static int f_disable_ve(struct kvmi_backend *b, unsigned vcpu)
{ SIMPLE(dve, FOP_DISABLE_VE, vcpu, 0, 0, 0, 0); }

static int f_switch_ept_view(struct kvmi_backend *b, unsigned vcpu, uint16_t view)
{ SIMPLE(sw, FOP_SWITCH_VIEW, vcpu, view, 0, 0, 0); }

static int f_get_ept_view(struct kvmi_backend *b, unsigned vcpu, uint16_t *view)
{
	pthread_mutex_lock(&b->lock);
	record(b, FOP_GET_VIEW, vcpu, 0, 0, 0, 0);
	pthread_mutex_unlock(&b->lock);
	OUT(0, view, sizeof(*view));
}

static int f_control_ept_view(struct kvmi_backend *b, unsigned vcpu, uint16_t view, bool visible)
{ SIMPLE(cv, FOP_CONTROL_VIEW, vcpu, view, visible, 0, 0); }

static int f_alloc_gfn(struct kvmi_backend *b, unsigned vcpu, uint64_t gfn)
{ SIMPLE(ag, FOP_ALLOC_GFN, vcpu, gfn, 0, 0, 0); }

static int f_free_gfn(struct kvmi_backend *b, unsigned vcpu, uint64_t gfn)
{ SIMPLE(fg, FOP_FREE_GFN, vcpu, gfn, 0, 0, 0); }

static int f_change_gfn(struct kvmi_backend *b, unsigned vcpu, uint16_t view, uint64_t o, uint64_t n)
{ SIMPLE(cg, FOP_CHANGE_GFN, vcpu, view, o, n, 0); }

/* threaded mode */
static int f_queue_vcpu_job(struct kvmi_backend *b, unsigned vcpu, struct kvmi_vcpu_job *job)
{
	struct fake_job *fj = calloc(1, sizeof(*fj)), **tail;

	if (!fj)
		return -KVM_ENOMEM;
	fj->job = job;
	pthread_mutex_lock(&b->lock);
	for (tail = &b->jobs[vcpu]; *tail; tail = &(*tail)->next)
		;
	*tail = fj;
	b->wakes[vcpu]++;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

unsigned fake_run_jobs(struct kvmi_backend *b, unsigned vcpu)
{
	unsigned n = 0;

	for (;;) {
		struct fake_job *fj;

		pthread_mutex_lock(&b->lock);
		fj = b->jobs[vcpu];
		if (fj)
			b->jobs[vcpu] = fj->next;
		pthread_mutex_unlock(&b->lock);
		if (!fj)
			return n;
		kvmi_vcpu_job_run(fj->job);
		free(fj);
		n++;
	}
}

unsigned fake_pending_jobs(struct kvmi_backend *b, unsigned vcpu)
{
	struct fake_job *fj;
	unsigned n = 0;

	pthread_mutex_lock(&b->lock);
	for (fj = b->jobs[vcpu]; fj; fj = fj->next)
		n++;
	pthread_mutex_unlock(&b->lock);
	return n;
}

static int f_wait_reply(struct kvmi_backend *b, unsigned vcpu, bool (*done)(void *), void *ctx)
{
	atomic_fetch_add(&b->wait_reply_calls, 1);
	for (;;) {
		fake_run_jobs(b, vcpu);
		if (done(ctx))
			return 0;
		pthread_mutex_lock(&b->lock);
		while (!b->jobs[vcpu] && !b->wakes[vcpu])
			pthread_cond_wait(&b->cond, &b->lock);
		b->wakes[vcpu] = 0;
		pthread_mutex_unlock(&b->lock);
	}
}

static void f_wake_vcpu(struct kvmi_backend *b, unsigned vcpu)
{
	pthread_mutex_lock(&b->lock);
	b->wakes[vcpu]++;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

void fake_init(struct kvmi_backend *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->vcpus = 4;
	f->ops = (struct kvmi_backend_ops){
		.vcpu_count = f_vcpu_count,
		.check_command = f_check_command,
		.check_event = f_check_event,
		.get_features = f_get_features,
		.get_event_arch = f_get_event_arch,
		.session_start = f_session_start,
		.session_end = f_session_end,
		.pause_vcpu = f_pause_vcpu,
		.pause_wait = f_pause_wait,
		.control_vm_events = f_control_vm_events,
		.read_physical = f_read_physical,
		.write_physical = f_write_physical,
		.set_page_access = f_set_page_access,
		.get_map_token = f_get_map_token,
		.map_memory = f_map_memory,
		.get_max_gfn = f_get_max_gfn,
		.control_spp = f_control_spp,
		.set_page_write_bitmap = f_set_page_write_bitmap,
		.set_page_sve = f_set_page_sve,
		.get_next_available_gfn = f_get_next_available_gfn,
		.query_physical = f_query_physical,
		.create_ept_view = f_create_ept_view,
		.destroy_ept_view = f_destroy_ept_view,
		.get_tsc_speed = f_get_tsc_speed,
		.control_events = f_control_events,
		.control_cr = f_control_cr,
		.control_msr = f_control_msr,
		.get_registers = f_get_registers,
		.set_registers = f_set_registers,
		.get_cpuid = f_get_cpuid,
		.get_xsave = f_get_xsave,
		.set_xsave = f_set_xsave,
		.get_xcr = f_get_xcr,
		.inject_exception = f_inject_exception,
		.get_mtrr_type = f_get_mtrr_type,
		.translate_gva = f_translate_gva,
		.control_singlestep = f_control_singlestep,
		.set_ve_info_page = f_set_ve_info_page,
		.disable_ve = f_disable_ve,
		.switch_ept_view = f_switch_ept_view,
		.get_ept_view = f_get_ept_view,
		.control_ept_view = f_control_ept_view,
		.alloc_gfn = f_alloc_gfn,
		.free_gfn = f_free_gfn,
		.change_gfn = f_change_gfn,
	};
}

void fake_make_threaded(struct kvmi_backend *f)
{
	f->threaded = true;
	f->ops.queue_vcpu_job = f_queue_vcpu_job;
	f->ops.wait_reply = f_wait_reply;
	f->ops.wake_vcpu = f_wake_vcpu;
}

void fake_destroy(struct kvmi_backend *f)
{
	unsigned i;

	for (i = 0; i < FAKE_MAX_VCPUS; i++) {
		while (f->jobs[i]) {
			struct fake_job *fj = f->jobs[i];

			f->jobs[i] = fj->next;
			kvmi_vcpu_job_cancel(fj->job);
			free(fj);
		}
	}
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
}

struct fake_call fake_call(struct kvmi_backend *f, unsigned i)
{
	struct fake_call c;

	memset(&c, 0, sizeof(c));
	pthread_mutex_lock(&f->lock);
	if (i < f->ncalls)
		c = f->calls[i];
	pthread_mutex_unlock(&f->lock);
	return c;
}

unsigned fake_ncalls(struct kvmi_backend *f)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->ncalls;
	pthread_mutex_unlock(&f->lock);
	return n;
}

void fake_reset_calls(struct kvmi_backend *f)
{
	pthread_mutex_lock(&f->lock);
	f->ncalls = 0;
	pthread_mutex_unlock(&f->lock);
}

bool fake_find(struct kvmi_backend *f, enum fake_op op, struct fake_call *out)
{
	bool found = false;
	unsigned i;

	pthread_mutex_lock(&f->lock);
	for (i = f->ncalls; i-- > 0;) {
		if (f->calls[i].op == op) {
			if (out)
				*out = f->calls[i];
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return found;
}

/* ---- harness -------------------------------------------------------- */

static void *serve_thread(void *opaque)
{
	struct harness *h = opaque;

	h->serve_ret = kvmi_server_serve(h->srv, h->vmm, h->vmm);
	return NULL;
}

int h_start(struct harness *h, struct kvmi_backend *fake, const struct kvmi_server_config *cfg)
{
	struct kvmi_server_config c;
	int sv[2], err;

	memset(h, 0, sizeof(*h));
	if (cfg)
		c = *cfg;
	else
		memset(&c, 0, sizeof(c));
	c.ops = &fake->ops;
	c.backend = fake;
	if (!c.max_vcpus)
		c.max_vcpus = FAKE_MAX_VCPUS;
	err = kvmi_server_create(&c, &h->srv);
	if (err)
		return err;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		kvmi_server_destroy(h->srv);
		return -errno;
	}
	h->fake = fake;
	h->tool = sv[0];
	h->vmm = sv[1];
	if (pthread_create(&h->thread, NULL, serve_thread, h)) {
		close(sv[0]);
		close(sv[1]);
		kvmi_server_destroy(h->srv);
		return -EAGAIN;
	}
	h->running = true;
	/* Events are only sent to a connected tool: wait for the session. */
	while (!kvmi_server_connected(h->srv))
		usleep(100);
	return 0;
}

int h_join(struct harness *h)
{
	if (h->running) {
		pthread_join(h->thread, NULL);
		h->running = false;
	}
	return h->serve_ret;
}

int h_stop(struct harness *h)
{
	int ret;

	if (h->tool >= 0)
		shutdown(h->tool, SHUT_RDWR);
	ret = h_join(h);
	close(h->tool);
	close(h->vmm);
	kvmi_server_destroy(h->srv);
	h->tool = h->vmm = -1;
	return ret;
}

int h_send(struct harness *h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(h->tool, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int h_read(struct harness *h, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = h->tool, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 5000) <= 0)
			return -ETIMEDOUT;
		n = read(h->tool, p, len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int h_recv(struct harness *h, struct kvmi_msg_hdr *hdr, uint8_t *payload)
{
	int err = h_read(h, hdr, sizeof(*hdr));

	if (err)
		return err;
	return h_read(h, payload, hdr->size);
}

bool h_closed(struct harness *h)
{
	uint8_t buf[256];

	for (;;) {
		struct pollfd pfd = { .fd = h->tool, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 5000) <= 0)
			return false;
		n = read(h->tool, buf, sizeof(buf));
		if (n == 0)
			return true;
		if (n < 0)
			return errno == ECONNRESET;
	}
}

int h_cmd(struct harness *h, uint16_t id, uint32_t seq, const void *p1, size_t l1,
	  const void *p2, size_t l2)
{
	uint8_t buf[8 + 65536];
	struct kvmi_msg_hdr hdr = { .id = id, .size = (uint16_t)(l1 + l2), .seq = seq };

	memcpy(buf, &hdr, sizeof(hdr));
	if (l1)
		memcpy(buf + 8, p1, l1);
	if (l2)
		memcpy(buf + 8 + l1, p2, l2);
	return h_send(h, buf, 8 + l1 + l2);
}

static uint32_t next_seq = 1000;

int h_call(struct harness *h, uint16_t id, const void *p1, size_t l1, const void *p2, size_t l2,
	   void *data, size_t *len)
{
	static uint8_t payload[65536];
	struct kvmi_msg_hdr hdr;
	struct kvmi_error_code ec;
	uint32_t seq = ++next_seq;

	if (h_cmd(h, id, seq, p1, l1, p2, l2))
		return 1 << 20;
	if (h_recv(h, &hdr, payload))
		return 1 << 20;
	if (hdr.id != id || hdr.seq != seq || hdr.size < sizeof(ec)) {
		tap_diag("unexpected message id %u seq %u size %u (wanted id %u seq %u)",
			 hdr.id, hdr.seq, hdr.size, id, seq);
		return 1 << 20;
	}
	memcpy(&ec, payload, sizeof(ec));
	if (data && len) {
		size_t n = hdr.size - sizeof(ec);

		if (n > *len)
			n = *len;
		memcpy(data, payload + sizeof(ec), n);
		*len = hdr.size - sizeof(ec);
	}
	return ec.err;
}

int h_vcpu_call(struct harness *h, uint16_t id, uint16_t vcpu, const void *req, size_t len,
		void *data, size_t *dlen)
{
	struct kvmi_vcpu_hdr vh = { .vcpu = vcpu };

	return h_call(h, id, &vh, sizeof(vh), req, len, data, dlen);
}

bool h_sync(struct harness *h)
{
	static uint8_t payload[65536];
	struct kvmi_check_command cc = { .id = KVMI_GET_VERSION };
	struct kvmi_msg_hdr hdr;
	uint32_t seq = 0x5eed0000u + (++next_seq);

	if (h_cmd(h, KVMI_CHECK_COMMAND, seq, &cc, sizeof(cc), NULL, 0))
		return false;
	if (h_recv(h, &hdr, payload))
		return false;
	if (hdr.id != KVMI_CHECK_COMMAND || hdr.seq != seq) {
		tap_diag("sync: got id %u seq %u first", hdr.id, hdr.seq);
		return false;
	}
	return true;
}

/* ---- event helpers -------------------------------------------------- */

static void *ev_thread_fn(void *opaque)
{
	struct ev_thread *t = opaque;

	if (t->pauses)
		t->ret = kvmi_vcpu_handle_pauses(t->srv, t->vcpu, &t->res);
	else
		t->ret = kvmi_vcpu_event(t->srv, t->vcpu, t->event, t->len ? t->data : NULL, t->len,
					 t->rpl_len ? t->rpl : NULL, t->rpl_len, &t->res);
	return NULL;
}

void ev_start(struct ev_thread *t, struct kvmi_server *srv, unsigned vcpu, unsigned event,
	      const void *data, size_t len, size_t rpl_len)
{
	memset(t, 0, sizeof(*t));
	t->srv = srv;
	t->vcpu = vcpu;
	t->event = event;
	if (len > sizeof(t->data))
		len = sizeof(t->data);
	if (len)
		memcpy(t->data, data, len);
	t->len = len;
	t->rpl_len = rpl_len;
	memset(t->rpl, 0xee, sizeof(t->rpl));
	pthread_create(&t->thread, NULL, ev_thread_fn, t);
}

void ev_start_pauses(struct ev_thread *t, struct kvmi_server *srv, unsigned vcpu)
{
	memset(t, 0, sizeof(*t));
	t->srv = srv;
	t->vcpu = vcpu;
	t->pauses = true;
	pthread_create(&t->thread, NULL, ev_thread_fn, t);
}

void ev_join(struct ev_thread *t)
{
	pthread_join(t->thread, NULL);
}

uint32_t h_read_event(struct harness *h, struct kvmi_event *ev, uint8_t *spec, size_t *spec_len)
{
	static uint8_t payload[65536];
	struct kvmi_msg_hdr hdr;

	if (h_recv(h, &hdr, payload) || hdr.id != KVMI_EVENT || hdr.size < sizeof(*ev))
		return 0;
	memcpy(ev, payload, sizeof(*ev));
	if (spec && spec_len) {
		*spec_len = hdr.size - sizeof(*ev);
		memcpy(spec, payload + sizeof(*ev), *spec_len);
	}
	return hdr.seq;
}

int h_event_reply(struct harness *h, uint32_t seq, uint16_t vcpu, uint8_t action, uint8_t event,
		  const void *spec, size_t len)
{
	uint8_t buf[16 + 512];
	struct kvmi_vcpu_hdr vh = { .vcpu = vcpu };
	struct kvmi_event_reply er = { .action = action, .event = event };

	memcpy(buf, &vh, 8);
	memcpy(buf + 8, &er, 8);
	if (len)
		memcpy(buf + 16, spec, len);
	return h_cmd(h, KVMI_EVENT_REPLY, seq, buf, 16 + len, NULL, 0);
}
