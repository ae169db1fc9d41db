/* Unit test: client-library behaviour that the libkvmi vectors do not cover:
 * threads, callbacks, disconnects, timeouts, the listener, helpers.
 * Each case scripts a fake VMM (test_client_fake.c); output is TAP. */
#include <kvmi/kvmi.h>

#include "test_client_fake.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int tap_n, tap_failed;
static const char *cur;
static char why[512];
static bool failed;

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
	va_list ap;

	if (failed)
		return;
	failed = true;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
}

#define CHECK(cond, ...) do { if (!(cond)) { failf(__VA_ARGS__); return; } } while (0)
#define CHECK_RET(got, want) do { \
	int got_ = (got), want_ = (want); \
	CHECK(got_ == want_, "line %d: %s returned %d (%s), expected %d", __LINE__, #got, \
	      got_, strerror(-got_), want_); \
} while (0)

static void run(const char *name, void (*fn)(void))
{
	cur = name;
	failed = false;
	why[0] = 0;
	fn();
	tap_n++;
	if (failed) {
		tap_failed++;
		printf("not ok %d - %s\n#   %s\n", tap_n, name, why);
	} else {
		printf("ok %d - %s\n", tap_n, name);
	}
	fflush(stdout);
}

/* ---- message builders --------------------------------------------------- */

static void send_hello(struct fake_vmm *f, const char *name)
{
	struct kvmi_handshake_vmm h = { .struct_size = sizeof(h), .start_time = 1234 };

	for (int i = 0; i < 16; i++)
		h.uuid[i] = (uint8_t)(0x10 + i);
	snprintf(h.name, sizeof(h.name), "%s", name);
	h.max_gpa = 0x100000000ull;
	fake_send(f, &h, sizeof(h), "hello");
}

static void expect_msg(struct fake_vmm *f, uint16_t id, uint32_t seq, const void *p, size_t n)
{
	uint8_t buf[8192];
	struct kvmi_msg_hdr h = { .id = id, .size = (uint16_t)n, .seq = seq };

	memcpy(buf, &h, sizeof(h));
	if (n)
		memcpy(buf + sizeof(h), p, n);
	fake_expect(f, buf, sizeof(h) + n, "request");
}

static void send_reply(struct fake_vmm *f, uint16_t id, uint32_t seq, int32_t err,
		       const void *data, size_t n)
{
	uint8_t buf[8192];
	struct kvmi_msg_hdr h = { .id = id, .size = (uint16_t)(8 + n), .seq = seq };
	struct kvmi_error_code ec = { .err = err };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + 8, &ec, sizeof(ec));
	if (n)
		memcpy(buf + 16, data, n);
	fake_send(f, buf, 16 + n, "reply");
}

static void handshake_ok(struct fake_vmm *f, bool keyed)
{
	struct kvmi_handshake_tool ans = { .struct_size = sizeof(ans) };
	struct kvmi_get_version_reply v = { .version = 1, .features = { .singlestep = 1 } };

	send_hello(f, "api-vm");
	if (keyed)
		kvmi_cookie_hash("k3y", 3, ans.cookie_hash);
	fake_expect(f, &ans, sizeof(ans), "answer");
	expect_msg(f, KVMI_GET_VERSION, 1, NULL, 0);
	send_reply(f, KVMI_GET_VERSION, 1, 0, &v, sizeof(v));
}

static void send_event(struct fake_vmm *f, uint32_t seq, uint16_t vcpu, uint8_t id,
		       const void *specific, size_t n)
{
	uint8_t buf[1024];
	struct kvmi_msg_hdr h = { .id = KVMI_EVENT, .size = (uint16_t)(sizeof(struct kvmi_event) + n),
				  .seq = seq };
	struct kvmi_event ev = { .size = sizeof(ev), .vcpu = vcpu, .event = id };

	ev.arch.mode = 8;
	ev.arch.regs.rip = 0xffffffff81000000ull + vcpu;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + 8, &ev, sizeof(ev));
	if (n)
		memcpy(buf + 8 + sizeof(ev), specific, n);
	fake_send(f, buf, 8 + sizeof(ev) + n, "event");
}

static void expect_event_reply(struct fake_vmm *f, uint32_t seq, uint16_t vcpu, uint8_t id,
			       uint8_t action, const void *specific, size_t n)
{
	uint8_t buf[512];
	struct kvmi_vcpu_hdr vh = { .vcpu = vcpu };
	struct kvmi_event_reply r = { .action = action, .event = id };

	memcpy(buf, &vh, 8);
	memcpy(buf + 8, &r, 8);
	if (n)
		memcpy(buf + 16, specific, n);
	expect_msg(f, KVMI_EVENT_REPLY, seq, buf, 16 + n);
}

struct conn {
	struct fake_vmm f;
	struct kvmi_dom *dom;
	struct kvmi_config cfg;
};

static int conn_open(struct conn *c)
{
	int err;

	fake_start(&c->f);
	err = kvmi_dom_open_fd(c->f.tool_fd, &c->cfg, &c->dom);
	if (err)
		failf("handshake: %s", strerror(-err));
	return err;
}

static void conn_init(struct conn *c)
{
	memset(c, 0, sizeof(*c));
	fake_init(&c->f);
	c->cfg.size = sizeof(c->cfg);
	c->cfg.io_timeout_ms = 3000;
	handshake_ok(&c->f, false);
}

static void conn_done(struct conn *c)
{
	if (c->dom)
		kvmi_dom_close(c->dom);
	if (!fake_join(&c->f))
		failf("fake VMM: %s (step %zu of %zu)", c->f.error, c->f.steps_done, c->f.nsteps);
	fake_destroy(&c->f);
}

/* ---- cases ---------------------------------------------------------------- */

static void t_names(void)
{
	char u[37];
	uint8_t uuid[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
			     0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	uint8_t h[20];
	static const uint8_t sha1_secret[20] = {
		0xe5, 0xe9, 0xfa, 0x1b, 0xa3, 0x1e, 0xcd, 0x1a, 0xe8, 0x4f,
		0x75, 0xca, 0xaa, 0x47, 0x4f, 0x3a, 0x66, 0x3f, 0x05, 0xf4,
	};

	CHECK(!strcmp(kvmi_command_name(KVMI_GET_REGISTERS), "GET_REGISTERS"), "command name");
	CHECK(!strcmp(kvmi_command_name(KVMI_VCPU_CONTROL_SINGLESTEP), "CONTROL_SINGLESTEP"),
	      "command name 63");
	CHECK(kvmi_command_name(40) == NULL && kvmi_command_name(64) == NULL, "unnamed ids");
	CHECK(!strcmp(kvmi_event_name(KVMI_EVENT_PF), "PF"), "event name");
	CHECK(kvmi_event_name(KVMI_NUM_EVENTS) == NULL, "event past the end");
	CHECK(strstr(kvmi_strerror(-EPERM), "policy") != NULL, "EPERM in words");
	CHECK(strstr(kvmi_strerror(-ENOSYS), "not implemented") != NULL, "ENOSYS in words");
	kvmi_uuid_str(uuid, u);
	CHECK(!strcmp(u, "00112233-4455-6677-8899-aabbccddeeff"), "uuid %s", u);
	CHECK_RET(kvmi_cookie_hash("secret", 6, h), 0);
	CHECK(!memcmp(h, sha1_secret, 20), "SHA-1(secret)");
}

static void t_bad_addresses(void)
{
	static const char too_long[] = "unix:/this/path/is/way/too/long/for/a/sockaddr_un/"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	static const char *const bad[] = {
		"", "tcp:1.2.3.4:5", "unix:", "vsock:", "vsock:3", "vsock:3:0", "vsock:x:5",
		"vsock:3:99999999999", too_long,
	};
	struct kvmi_listener *l = (struct kvmi_listener *)1;
	struct kvmi_config bad_cfg = { .size = 1 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = kvmi_listener_open(bad[i], NULL, &l);

		CHECK(err < 0 && l == NULL, "'%s' accepted (%d)", bad[i], err);
	}
	CHECK_RET(kvmi_listener_open("unix:@kvmi-x", &bad_cfg, &l), -EINVAL);
}

static void t_unix_path_listener(void)
{
	char path[64], addr[80];
	struct kvmi_listener *l, *l2;
	struct kvmi_dom *dom;
	struct stat st;
	FILE *stale;
	bool ok;

	snprintf(path, sizeof(path), "/tmp/kvmi-client-test-%d.sock", (int)getpid());
	snprintf(addr, sizeof(addr), "unix:%s", path);
	/* A regular file in the way is not removed. */
	stale = fopen(path, "w");
	CHECK(stale, "create %s", path);
	fclose(stale);
	CHECK(kvmi_listener_open(addr, NULL, &l) == -EADDRINUSE, "bound over a regular file");
	unlink(path);

	CHECK_RET(kvmi_listener_open(addr, NULL, &l), 0);
	CHECK(!stat(path, &st) && S_ISSOCK(st.st_mode), "socket file missing");
	CHECK_RET(kvmi_listener_accept(l, 50, &dom), -ETIMEDOUT);
	kvmi_listener_close(l);
	CHECK(stat(path, &st) && errno == ENOENT, "socket file left behind");
	/* A live listener is not stolen from. */
	CHECK_RET(kvmi_listener_open(addr, NULL, &l), 0);
	if (kvmi_listener_open(addr, NULL, &l2) != -EADDRINUSE) {
		kvmi_listener_close(l);
		CHECK(0, "took over a live listener's socket");
	}
	/* An old listener does not unlink a newer one's socket. */
	unlink(path);
	if (kvmi_listener_open(addr, NULL, &l2)) {
		kvmi_listener_close(l);
		CHECK(0, "second listener");
	}
	kvmi_listener_close(l);
	ok = !stat(path, &st);
	kvmi_listener_close(l2);
	CHECK(ok, "closing the old listener removed the new socket");
	/* A stale socket (nobody listening) is replaced. */
	{
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		strcpy(sun.sun_path, path);
		CHECK(fd >= 0 && !bind(fd, (struct sockaddr *)&sun, sizeof(sun)), "stale socket");
		close(fd);
	}
	CHECK_RET(kvmi_listener_open(addr, NULL, &l), 0);
	kvmi_listener_close(l);
	CHECK(stat(path, &st) && errno == ENOENT, "socket file left behind");
}

static void t_keyed_handshake(void)
{
	struct conn c;
	uint32_t version;
	struct kvmi_features f;
	const struct kvmi_hello *h;

	memset(&c, 0, sizeof(c));
	fake_init(&c.f);
	handshake_ok(&c.f, true);
	fake_expect_eof(&c.f);
	c.cfg = (struct kvmi_config){ .size = sizeof(c.cfg), .key = "k3y", .key_len = 3 };
	if (conn_open(&c) == 0) {
		h = kvmi_dom_hello(c.dom);
		kvmi_dom_get_version(c.dom, &version, &f);
		if (strcmp(kvmi_dom_name(c.dom), "api-vm") || h->struct_size != 104 ||
		    h->max_gpa != 0x100000000ull || h->start_time_ms != 1234 || h->uuid[15] != 0x1f)
			failf("hello not decoded");
		else if (version != 1 || f.singlestep != 1)
			failf("version/features not cached");
	}
	conn_done(&c);
}

static void t_handshake_timeout(void)
{
	struct fake_vmm f;
	struct kvmi_config cfg = { .size = sizeof(cfg), .handshake_timeout_ms = 100 };
	struct kvmi_dom *dom;

	fake_init(&f);
	fake_start(&f);
	CHECK_RET(kvmi_dom_open_fd(f.tool_fd, &cfg, &dom), -ETIMEDOUT);
	fake_join(&f);
	fake_destroy(&f);
}

struct bg_cmd {
	struct kvmi_dom *dom;
	uint32_t count;
	int err;
};

static void *bg_guest_info(void *arg)
{
	struct bg_cmd *b = arg;

	b->err = kvmi_dom_get_guest_info(b->dom, &b->count);
	return NULL;
}

/* An event reply goes out while another thread waits for its command reply
 * (the protocol's multiplexing: a vCPU in an event keeps serving commands). */
static void t_reply_while_command_in_flight(void)
{
	struct conn c;
	struct kvmi_event_pf pf = { .gva = 0x1000, .gpa = 0x2000, .access = KVMI_PAGE_ACCESS_W };
	struct kvmi_event_pf_reply pfr = { .ctx_size = 0, .rep_complete = 1 };
	struct kvmi_get_guest_info_reply gi = { .vcpu_count = 3 };
	struct kvmi_event_msg *ev = NULL;
	struct bg_cmd b = { 0 };
	pthread_t t;

	conn_init(&c);
	send_event(&c.f, 77, 2, KVMI_EVENT_PF, &pf, sizeof(pf));
	expect_msg(&c.f, KVMI_GET_GUEST_INFO, 2, NULL, 0);
	fake_notify(&c.f);
	expect_event_reply(&c.f, 77, 2, KVMI_EVENT_PF, KVMI_EVENT_ACTION_RETRY, &pfr, sizeof(pfr));
	send_reply(&c.f, KVMI_GET_GUEST_INFO, 2, 0, &gi, sizeof(gi));
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;

	if (kvmi_dom_next_event(c.dom, 2000, &ev)) {
		failf("no event");
		goto out;
	}
	if (ev->event != KVMI_EVENT_PF || ev->vcpu != 2 || ev->specific.pf.gpa != 0x2000 ||
	    ev->common.arch.regs.rip != 0xffffffff81000002ull || !kvmi_event_needs_reply(ev))
		failf("event not decoded");
	b.dom = c.dom;
	pthread_create(&t, NULL, bg_guest_info, &b);
	if (!fake_wait_notify(&c.f))
		failf("command never sent");
	else if (kvmi_dom_reply_event(c.dom, ev, KVMI_EVENT_ACTION_RETRY, &pfr, sizeof(pfr)))
		failf("reply_event failed");
	pthread_join(t, NULL);
	if (!failed && (b.err || b.count != 3))
		failf("background command: %d, count %u", b.err, b.count);
out:
	kvmi_event_free(ev);
	conn_done(&c);
}

struct disc {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	bool close_it;
};

static void on_disc(struct kvmi_dom *dom, void *ctx)
{
	struct disc *d = ctx;
	bool close_it = d->close_it;    /* d may be gone once calls is seen */

	if (close_it)
		kvmi_dom_close(dom);
	pthread_mutex_lock(&d->lock);
	d->calls++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void wait_disc(struct disc *d)
{
	pthread_mutex_lock(&d->lock);
	while (!d->calls)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

static void disconnect_case(bool close_in_callback)
{
	struct disc d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, close_in_callback };
	struct kvmi_event_msg ev = { .seq = 5 };
	struct conn c;

	conn_init(&c);
	c.cfg.on_disconnect = on_disc;
	c.cfg.ctx = &d;
	fake_gate(&c.f);
	fake_shutdown(&c.f);
	if (conn_open(&c))
		goto out;
	fake_open_gate(&c.f);
	wait_disc(&d);
	if (close_in_callback) {
		c.dom = NULL;   /* the callback freed it */
		goto out;
	}
	if (kvmi_dom_is_connected(c.dom))
		failf("still connected");
	else if (kvmi_dom_wait_event(c.dom, -1) != -ENOTCONN)
		failf("wait_event did not report the disconnect");
	else if (kvmi_dom_check_command(c.dom, 2) != -ENOTCONN)
		failf("command after disconnect");
	else if (kvmi_dom_reply_event(c.dom, &ev, 0, NULL, 0) != -ENOTCONN)
		failf("event reply after disconnect");
	else if (d.calls != 1)
		failf("callback called %d times", d.calls);
out:
	conn_done(&c);
}

static void t_disconnect_callback(void)
{
	disconnect_case(false);
}

static void t_disconnect_callback_closes(void)
{
	disconnect_case(true);
}

/* A reply that comes after the timeout is recognized and dropped. */
static void t_late_reply_dropped(void)
{
	struct kvmi_check_command req = { .id = 13 };
	struct conn c;

	conn_init(&c);
	c.cfg.io_timeout_ms = 150;
	expect_msg(&c.f, KVMI_CHECK_COMMAND, 2, &req, sizeof(req));
	fake_gate(&c.f);
	send_reply(&c.f, KVMI_CHECK_COMMAND, 2, 0, NULL, 0);
	expect_msg(&c.f, KVMI_CHECK_COMMAND, 3, &req, sizeof(req));
	send_reply(&c.f, KVMI_CHECK_COMMAND, 3, -KVM_EPERM, NULL, 0);
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	if (kvmi_dom_check_command(c.dom, 13) != -ETIMEDOUT)
		failf("no timeout");
	fake_open_gate(&c.f);
	if (!failed && kvmi_dom_check_command(c.dom, 13) != -EPERM)
		failf("second command did not get its own reply");
out:
	conn_done(&c);
}

static void t_pause_all(void)
{
	struct kvmi_get_guest_info_reply gi = { .vcpu_count = 2 };
	uint8_t batch[16 + 24 + 24 + 16];
	struct kvmi_msg_hdr h;
	struct kvmi_control_cmd_response cr = { .enable = 0, .now = 1 };
	struct kvmi_vcpu_hdr vh = { 0 };
	struct kvmi_pause_vcpu p = { .wait = 1 };
	struct conn c;
	unsigned int n = 0;
	size_t o = 0;

	/* GET_GUEST_INFO (seq 2), then the libkvmi pause batch (seqs 3..6). */
	h = (struct kvmi_msg_hdr){ KVMI_CONTROL_CMD_RESPONSE, 8, 3 };
	memcpy(batch + o, &h, 8); memcpy(batch + o + 8, &cr, 8); o += 16;
	for (uint16_t v = 0; v < 2; v++) {
		h = (struct kvmi_msg_hdr){ KVMI_PAUSE_VCPU, 16, 4u + v };
		vh.vcpu = v;
		memcpy(batch + o, &h, 8); memcpy(batch + o + 8, &vh, 8);
		memcpy(batch + o + 16, &p, 8); o += 24;
	}
	cr = (struct kvmi_control_cmd_response){ .enable = 1, .now = 1 };
	h = (struct kvmi_msg_hdr){ KVMI_CONTROL_CMD_RESPONSE, 8, 6 };
	memcpy(batch + o, &h, 8); memcpy(batch + o + 8, &cr, 8); o += 16;

	conn_init(&c);
	expect_msg(&c.f, KVMI_GET_GUEST_INFO, 2, NULL, 0);
	send_reply(&c.f, KVMI_GET_GUEST_INFO, 2, 0, &gi, sizeof(gi));
	fake_expect(&c.f, batch, o, "pause batch");
	send_reply(&c.f, KVMI_CONTROL_CMD_RESPONSE, 6, 0, NULL, 0);
	fake_expect_eof(&c.f);
	if (!conn_open(&c)) {
		int err = kvmi_dom_pause_all(c.dom, &n);

		if (err || n != 2)
			failf("pause_all: %d, %u vCPUs", err, n);
	}
	conn_done(&c);
}

/* A batch can be refilled after submit: it gets a fresh leading seq. */
static void t_batch_refill(void)
{
	struct kvmi_control_cmd_response off = { .enable = 0, .now = 1 };
	struct kvmi_control_cmd_response on = { .enable = 1, .now = 1 };
	struct kvmi_vcpu_hdr vh = { .vcpu = 1 };
	struct kvmi_control_events ce = { .event_id = KVMI_EVENT_BREAKPOINT, .enable = 1 };
	uint8_t buf[48], pay[16];
	struct kvmi_batch *b = NULL;
	struct conn c;

	memcpy(pay, &vh, 8);
	memcpy(pay + 8, &ce, 8);
	conn_init(&c);
	for (uint32_t round = 0; round < 2; round++) {
		uint32_t base = 2 + round * 3;
		struct kvmi_msg_hdr h1 = { KVMI_CONTROL_CMD_RESPONSE, 8, base };
		struct kvmi_msg_hdr h2 = { KVMI_CONTROL_EVENTS, 16, base + 1 };
		struct kvmi_msg_hdr h3 = { KVMI_CONTROL_CMD_RESPONSE, 8, base + 2 };

		memcpy(buf, &h1, 8); memcpy(buf + 8, &off, 8);
		memcpy(buf + 16, &h2, 8); memcpy(buf + 24, pay, 16);
		fake_expect(&c.f, buf, 40, "batch");
		memcpy(buf, &h3, 8); memcpy(buf + 8, &on, 8);
		fake_expect(&c.f, buf, 16, "batch end");
		send_reply(&c.f, KVMI_CONTROL_CMD_RESPONSE, base + 2, round ? -KVM_EPERM : 0, NULL, 0);
	}
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	if (kvmi_batch_new(c.dom, &b))
		goto out;
	if (kvmi_batch_control_events(b, 1, KVMI_EVENT_BREAKPOINT, true) || kvmi_batch_submit(b))
		failf("first round");
	else if (kvmi_batch_control_events(b, 1, KVMI_EVENT_BREAKPOINT, true) ||
		 kvmi_batch_submit(b) != -EPERM)
		failf("second round did not report the VMM's error");
out:
	kvmi_batch_destroy(b);
	conn_done(&c);
}

struct accepted {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct kvmi_dom *dom;
};

static int on_conn(struct kvmi_dom *dom, void *ctx)
{
	struct accepted *a = ctx;

	pthread_mutex_lock(&a->lock);
	a->dom = dom;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

static void t_listener_thread(void)
{
	struct accepted a = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL };
	struct kvmi_config cfg = { .size = sizeof(cfg), .on_connect = on_conn, .ctx = &a };
	struct kvmi_get_guest_info_reply gi = { .vcpu_count = 4 };
	struct kvmi_listener *l;
	struct fake_vmm f;
	char addr[64];
	uint32_t n = 0;

	snprintf(addr, sizeof(addr), "unix:@kvmi-api-%d", (int)getpid());
	CHECK_RET(kvmi_listener_open(addr, &cfg, &l), 0);
	if (kvmi_listener_start(l)) {
		kvmi_listener_close(l);
		CHECK(0, "listener_start");
	}
	if (fake_init_connect(&f, addr)) {
		kvmi_listener_close(l);
		CHECK(0, "connect");
	}
	handshake_ok(&f, false);
	expect_msg(&f, KVMI_GET_GUEST_INFO, 2, NULL, 0);
	send_reply(&f, KVMI_GET_GUEST_INFO, 2, 0, &gi, sizeof(gi));
	fake_expect_eof(&f);
	fake_start(&f);

	pthread_mutex_lock(&a.lock);
	while (!a.dom)
		pthread_cond_wait(&a.cond, &a.lock);
	pthread_mutex_unlock(&a.lock);
	if (kvmi_dom_get_guest_info(a.dom, &n) || n != 4)
		failf("command on the accepted domain");
	kvmi_listener_close(l);        /* domains stay usable */
	if (!kvmi_dom_is_connected(a.dom))
		failf("listener_close dropped the domain");
	kvmi_dom_close(a.dom);
	if (!fake_join(&f))
		failf("fake VMM: %s", f.error);
	fake_destroy(&f);
}

static void t_arg_checks(void)
{
	struct conn c;
	uint8_t big[KVMI_MSG_SIZE];
	struct kvmi_event_msg ev = { .seq = 1 };

	conn_init(&c);
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	memset(big, 0, sizeof(big));
	if (kvmi_dom_write_physical(c.dom, 0, big, sizeof(big)) != -E2BIG)
		failf("oversized write accepted");
	else if (kvmi_dom_set_xsave(c.dom, 0, big, sizeof(big)) != -E2BIG)
		failf("oversized xsave accepted");
	else if (kvmi_dom_set_page_access(c.dom, NULL, NULL, 0, 0) != -EINVAL)
		failf("empty page access accepted");
	else if (kvmi_dom_reply_event(c.dom, &ev, 0, NULL, 5) != -EINVAL)
		failf("NULL specific with a size accepted");
	else if (kvmi_dom_command(c.dom, KVMI_EVENT_REPLY, NULL, 0, NULL, 0, NULL) != -EINVAL)
		failf("raw EVENT_REPLY as a command accepted");
	else if (kvmi_dom_get_registers(c.dom, 0, NULL, NULL, NULL, 3, NULL) != -EINVAL)
		failf("MSR count without an array accepted");
out:
	conn_done(&c);
}

static void t_unhook_no_reply(void)
{
	struct conn c;
	struct kvmi_event_msg *ev = NULL;

	conn_init(&c);
	send_event(&c.f, 9, 0, KVMI_EVENT_UNHOOK, NULL, 0);
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	if (kvmi_dom_next_event(c.dom, 2000, &ev))
		failf("no UNHOOK");
	else if (ev->event != KVMI_EVENT_UNHOOK || kvmi_event_needs_reply(ev))
		failf("UNHOOK needs no reply");
	kvmi_event_free(ev);
out:
	conn_done(&c);
}

int main(void)
{
	run("names, strerror, uuid, cookie hash", t_names);
	run("listener rejects bad addresses and configs", t_bad_addresses);
	run("unix path listener: creates, replaces stale, unlinks", t_unix_path_listener);
	run("keyed handshake: SHA-1 cookie, hello fields, cached version", t_keyed_handshake);
	run("handshake times out on a silent VMM", t_handshake_timeout);
	run("event reply while another thread's command is in flight", t_reply_while_command_in_flight);
	run("disconnect: callback once, then -ENOTCONN everywhere", t_disconnect_callback);
	run("disconnect callback may close the domain", t_disconnect_callback_closes);
	run("a reply after the timeout is dropped, not misdelivered", t_late_reply_dropped);
	run("pause_all = GET_GUEST_INFO + libkvmi pause batch", t_pause_all);
	run("a batch can be refilled; suffix errors are reported", t_batch_refill);
	run("listener accept thread hands domains to on_connect", t_listener_thread);
	run("argument checks reject what the VMM would drop the socket for", t_arg_checks);
	run("UNHOOK is delivered and needs no reply", t_unhook_no_reply);
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
