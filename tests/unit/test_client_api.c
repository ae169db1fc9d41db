/* Unit test: client-library behaviour that the libkvmi vectors do not cover:
 * threads, callbacks, disconnects, timeouts, the listener, helpers.
 * Each case scripts a fake VMM (test_client_fake.c); output is TAP. */
#include <kvmi/kvmi.h>

#include "test_client_fake.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
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

static void t_expect_guest_args(void)
{
	struct kvmi_config cfg = { .size = sizeof(cfg) }, old = { .size = offsetof(struct kvmi_config, expect) };
	uint8_t u[16];
	char name[65];

	CHECK_RET(kvmi_uuid_parse("10111213-1415-1617-1819-1a1b1c1d1e1f", u), 0);
	CHECK(u[0] == 0x10 && u[15] == 0x1f, "uuid parsed");
	CHECK_RET(kvmi_uuid_parse("101112131415161718191A1B1C1D1E1F", u), 0);
	CHECK(u[10] == 0x1a && u[15] == 0x1f, "uuid without dashes, upper case");
	CHECK_RET(kvmi_uuid_parse("10111213-1415-1617-1819-1a1b1c1d1e1", u), -EINVAL);
	CHECK_RET(kvmi_uuid_parse("10111213-1415-1617-1819-1a1b1c1d1e1f0", u), -EINVAL);
	CHECK_RET(kvmi_uuid_parse("1011121314-15-1617-1819-1a1b1c1d1e1f", u), -EINVAL);
	CHECK_RET(kvmi_uuid_parse("10111213-1415-1617-1819-1a1b1c1d1e1g", u), -EINVAL);
	CHECK_RET(kvmi_uuid_parse(NULL, u), -EINVAL);

	CHECK_RET(kvmi_config_expect_guest(&cfg, "api-vm", "10111213-1415-1617-1819-1a1b1c1d1e1f"), 0);
	CHECK(cfg.expect == (KVMI_EXPECT_NAME | KVMI_EXPECT_UUID) && !strcmp(cfg.expect_name, "api-vm") &&
	      cfg.expect_uuid[15] == 0x1f, "both expectations stored");
	memset(name, 'n', 64);
	name[64] = 0;
	CHECK_RET(kvmi_config_expect_guest(&cfg, name, NULL), -EINVAL);
	CHECK_RET(kvmi_config_expect_guest(&cfg, NULL, "not-a-uuid"), -EINVAL);
	CHECK(cfg.expect == (KVMI_EXPECT_NAME | KVMI_EXPECT_UUID), "a refused call left the config alone");
	name[63] = 0;
	CHECK_RET(kvmi_config_expect_guest(&cfg, name, NULL), 0);
	CHECK(cfg.expect == KVMI_EXPECT_NAME && !strcmp(cfg.expect_name, name), "63-byte name, UUID cleared");
	CHECK_RET(kvmi_config_expect_guest(&cfg, NULL, NULL), 0);
	CHECK(cfg.expect == 0, "cleared");
	CHECK_RET(kvmi_config_expect_guest(&old, "api-vm", NULL), -EINVAL);
	CHECK_RET(kvmi_config_expect_guest(NULL, "api-vm", NULL), -EINVAL);
}

struct log_capture {
	char last[512];
	int errors;
};

static void capture_log(int level, const char *msg, void *ctx)
{
	struct log_capture *c = ctx;

	if (level == KVMI_LOG_ERROR) {
		c->errors++;
		snprintf(c->last, sizeof(c->last), "%s", msg);
	}
}

/* kvmi_dom_open_fd() with these expectations against the "api-vm" hello;
 * a refused VMM must see the connection close without an answer. */
static void expect_case(const char *name, const char *uuid, int want, const char *log)
{
	struct log_capture lc = { "", 0 };
	struct conn c;
	int err;

	memset(&c, 0, sizeof(c));
	fake_init(&c.f);
	if (want) {
		send_hello(&c.f, "api-vm");
		fake_expect_eof(&c.f);
	} else {
		handshake_ok(&c.f, false);
	}
	c.cfg = (struct kvmi_config){ .size = sizeof(c.cfg), .log = capture_log, .ctx = &lc };
	if (kvmi_config_expect_guest(&c.cfg, name, uuid))
		failf("kvmi_config_expect_guest(%s, %s) refused", name, uuid);
	fake_start(&c.f);
	err = kvmi_dom_open_fd(c.f.tool_fd, &c.cfg, &c.dom);
	if (err != want)
		failf("expect name %s uuid %s: open gave %d (%s), wanted %d", name, uuid, err, strerror(-err), want);
	if (log && (!strstr(lc.last, log) || lc.errors != 1))
		failf("log: %d error lines, the last '%s'; wanted one with '%s'", lc.errors, lc.last, log);
	conn_done(&c);
}

static void t_expect_guest(void)
{
	expect_case("api-vm", "10111213-1415-1617-1819-1a1b1c1d1e1f", 0, NULL);
	expect_case("api-vm", NULL, 0, NULL);
	expect_case(NULL, "101112131415161718191A1B1C1D1E1F", 0, NULL);
	expect_case("other-vm", NULL, -EACCES, "refused guest 'api-vm': expected the guest named 'other-vm'");
	expect_case("api-v", NULL, -EACCES, "expected the guest named 'api-v'");
	expect_case("API-VM", NULL, -EACCES, "expected the guest named 'API-VM'");
	expect_case("", NULL, -EACCES, "expected the guest named ''");
	expect_case("api-vm", "10111213-1415-1617-1819-1a1b1c1d1e20", -EACCES,
		    "refused guest 'api-vm' with UUID 10111213-1415-1617-1819-1a1b1c1d1e1f: "
		    "expected UUID 10111213-1415-1617-1819-1a1b1c1d1e20");
}

/* The listener refuses a stale VMM and stays usable for the right one. */
static void t_expect_guest_listener(void)
{
	struct kvmi_config cfg = { .size = sizeof(cfg) };
	struct kvmi_listener *l;
	struct kvmi_dom *dom = NULL;
	struct fake_vmm stale, right;
	char addr[64];
	int err;

	snprintf(addr, sizeof(addr), "unix:@kvmi-api-expect-%d", (int)getpid());
	CHECK_RET(kvmi_config_expect_guest(&cfg, "api-vm", NULL), 0);
	CHECK_RET(kvmi_listener_open(addr, &cfg, &l), 0);
	if (fake_init_connect(&stale, addr)) {
		kvmi_listener_close(l);
		CHECK(0, "connect");
	}
	send_hello(&stale, "stale-vm");
	fake_expect_eof(&stale);
	fake_start(&stale);
	err = kvmi_listener_accept(l, 3000, &dom);
	if (err != -EACCES)
		failf("a stale guest: accept gave %d, wanted -EACCES", err);
	if (!fake_join(&stale))
		failf("stale VMM: %s", stale.error);
	fake_destroy(&stale);
	if (dom)
		kvmi_dom_close(dom);
	dom = NULL;

	if (fake_init_connect(&right, addr)) {
		kvmi_listener_close(l);
		CHECK(0, "connect");
	}
	handshake_ok(&right, false);
	fake_expect_eof(&right);
	fake_start(&right);
	err = kvmi_listener_accept(l, 3000, &dom);
	if (err || !dom || strcmp(kvmi_dom_name(dom), "api-vm"))
		failf("the right guest after a refused one: accept gave %d", err);
	if (dom)
		kvmi_dom_close(dom);
	if (!fake_join(&right))
		failf("right VMM: %s", right.error);
	fake_destroy(&right);
	kvmi_listener_close(l);
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

/* ---- reading in the waiting thread (leader/follower) -------------------- */

static size_t build_event(uint8_t *out, uint32_t seq, uint16_t vcpu, uint8_t id)
{
	struct kvmi_msg_hdr h = { .id = KVMI_EVENT, .size = sizeof(struct kvmi_event), .seq = seq };
	struct kvmi_event ev = { .size = sizeof(ev), .vcpu = vcpu, .event = id };

	ev.arch.mode = 8;
	ev.arch.regs.rip = 0xffffffff81000000ull + seq;
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), &ev, sizeof(ev));
	return sizeof(h) + sizeof(ev);
}

static size_t build_reply(uint8_t *out, uint16_t id, uint32_t seq, int32_t err, const void *data,
			  size_t n)
{
	struct kvmi_msg_hdr h = { .id = id, .size = (uint16_t)(8 + n), .seq = seq };
	struct kvmi_error_code ec = { .err = err };

	memcpy(out, &h, 8);
	memcpy(out + 8, &ec, 8);
	if (n)
		memcpy(out + 16, data, n);
	return 16 + n;
}

static bool next_seq_is(struct kvmi_dom *dom, uint32_t seq)
{
	struct kvmi_event_msg *ev = NULL;
	bool ok = kvmi_dom_next_event(dom, 3000, &ev) == 0 && ev->seq == seq &&
		  ev->common.arch.regs.rip == 0xffffffff81000000ull + seq;

	if (!ok)
		failf("expected event seq %u, got %s %u", seq, ev ? "seq" : "none", ev ? ev->seq : 0);
	kvmi_event_free(ev);
	return ok;
}

/* One thread: events and replies interleaved, several in one write. */
static void t_direct_interleaved(void)
{
	struct kvmi_get_guest_info_reply gi = { .vcpu_count = 5 };
	struct kvmi_check_command cc = { .id = 13 };
	uint8_t blob[4096];
	struct conn c;
	uint32_t n = 0;
	size_t o = 0;

	conn_init(&c);
	expect_msg(&c.f, KVMI_GET_GUEST_INFO, 2, NULL, 0);
	o += build_event(blob + o, 10, 0, KVMI_EVENT_PAUSE_VCPU);
	o += build_reply(blob + o, KVMI_GET_GUEST_INFO, 2, 0, &gi, sizeof(gi));
	o += build_event(blob + o, 11, 1, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, o, "event, reply, event");
	expect_msg(&c.f, KVMI_CHECK_COMMAND, 3, &cc, sizeof(cc));
	o = build_event(blob, 12, 0, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, o, "event");
	o = build_reply(blob, KVMI_CHECK_COMMAND, 3, -KVM_EPERM, NULL, 0);
	fake_send(&c.f, blob, o, "reply");
	fake_gate(&c.f);
	o = build_event(blob, 13, 1, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, o, "event");
	expect_event_reply(&c.f, 13, 1, KVMI_EVENT_PAUSE_VCPU, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;

	if (kvmi_dom_get_guest_info(c.dom, &n) || n != 5) {
		failf("GET_GUEST_INFO: %u", n);
		goto out;
	}
	if (kvmi_dom_check_command(c.dom, 13) != -EPERM) {
		failf("CHECK_COMMAND did not get its reply");
		goto out;
	}
	if (kvmi_dom_pending_events(c.dom) != 3) {
		failf("%u events queued, expected 3", kvmi_dom_pending_events(c.dom));
		goto out;
	}
	fake_open_gate(&c.f);
	if (!next_seq_is(c.dom, 10) || !next_seq_is(c.dom, 11) || !next_seq_is(c.dom, 12))
		goto out;
	{
		struct kvmi_event_msg *ev = NULL;

		if (kvmi_dom_next_event(c.dom, 3000, &ev) || ev->seq != 13)
			failf("event 13");
		else if (kvmi_dom_reply_event(c.dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0))
			failf("reply to event 13");
		kvmi_event_free(ev);
	}
out:
	conn_done(&c);
}

#define LEAD_ROUNDS 60

struct ev_collector {
	struct kvmi_dom *dom;
	unsigned int want;
	uint32_t seqs[LEAD_ROUNDS];
	unsigned int got;
	int err;
};

static void *collect_events(void *arg)
{
	struct ev_collector *e = arg;

	while (e->got < e->want) {
		struct kvmi_event_msg *ev;

		e->err = kvmi_dom_next_event(e->dom, 5000, &ev);
		if (e->err)
			break;
		e->seqs[e->got++] = ev->seq;
		kvmi_event_free(ev);
	}
	return NULL;
}

/* One thread waits for events while another runs commands: whoever waits
 * reads, the other gets its message handed over, and the lead changes
 * hands all the time. */
static void t_two_threads_leadership(void)
{
	struct ev_collector e = { .want = LEAD_ROUNDS };
	uint8_t blob[2048];
	struct conn c;
	pthread_t t;

	conn_init(&c);
	for (uint32_t k = 0; k < LEAD_ROUNDS; k++) {
		struct kvmi_get_guest_info_reply gi = { .vcpu_count = 100 + k };
		size_t o;

		expect_msg(&c.f, KVMI_GET_GUEST_INFO, 2 + k, NULL, 0);
		switch (k % 4) {
		case 0:
			o = build_event(blob, 1000 + k, 0, KVMI_EVENT_PAUSE_VCPU);
			fake_send(&c.f, blob, o, "event");
			o = build_reply(blob, KVMI_GET_GUEST_INFO, 2 + k, 0, &gi, sizeof(gi));
			fake_send(&c.f, blob, o, "reply");
			break;
		case 1:
			o = build_reply(blob, KVMI_GET_GUEST_INFO, 2 + k, 0, &gi, sizeof(gi));
			fake_send(&c.f, blob, o, "reply");
			fake_sleep(&c.f, 1);
			o = build_event(blob, 1000 + k, 0, KVMI_EVENT_PAUSE_VCPU);
			fake_send(&c.f, blob, o, "event");
			break;
		case 2:
			o = build_event(blob, 1000 + k, 0, KVMI_EVENT_PAUSE_VCPU);
			o += build_reply(blob + o, KVMI_GET_GUEST_INFO, 2 + k, 0, &gi, sizeof(gi));
			fake_send(&c.f, blob, o, "event + reply");
			break;
		default:
			fake_sleep(&c.f, 3);
			o = build_reply(blob, KVMI_GET_GUEST_INFO, 2 + k, 0, &gi, sizeof(gi));
			o += build_event(blob + o, 1000 + k, 0, KVMI_EVENT_PAUSE_VCPU);
			fake_send(&c.f, blob, o, "reply + event");
			break;
		}
	}
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	e.dom = c.dom;
	pthread_create(&t, NULL, collect_events, &e);
	for (uint32_t k = 0; k < LEAD_ROUNDS && !failed; k++) {
		uint32_t n = 0;
		int err = kvmi_dom_get_guest_info(c.dom, &n);

		if (err || n != 100 + k)
			failf("command %u: %d, count %u", k, err, n);
	}
	pthread_join(t, NULL);
	if (!failed && (e.err || e.got != LEAD_ROUNDS))
		failf("event thread: %d after %u events", e.err, e.got);
	for (unsigned int i = 0; i < e.got && !failed; i++)
		if (e.seqs[i] != 1000 + i)
			failf("event %u has seq %u: out of order", i, e.seqs[i]);
out:
	conn_done(&c);
}

struct disc_thread {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	pthread_t who;
};

static void on_disc_thread(struct kvmi_dom *dom, void *ctx)
{
	struct disc_thread *d = ctx;

	(void)dom;
	pthread_mutex_lock(&d->lock);
	d->calls++;
	d->who = pthread_self();
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* False if the callback never came (a liveness bound, not a timing check). */
static bool wait_disc_thread(struct disc_thread *d)
{
	struct timespec ts;
	bool called;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&d->lock);
	while (!d->calls && pthread_cond_timedwait(&d->cond, &d->lock, &ts) == 0)
		;
	called = d->calls > 0;
	pthread_mutex_unlock(&d->lock);
	if (!called)
		failf("on_disconnect was never called");
	return called;
}

/* Nobody waits: the reader thread reads (events queued, disconnect seen
 * and reported from that thread).  Then an API thread arrives while the
 * reader thread reads and gets its reply handed over. */
static void t_reader_takes_over(void)
{
	struct disc_thread d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct kvmi_get_guest_info_reply gi = { .vcpu_count = 7 };
	uint8_t blob[2048];
	struct conn c;
	uint32_t n = 0;
	size_t o;

	conn_init(&c);
	c.cfg.on_disconnect = on_disc_thread;
	c.cfg.ctx = &d;
	expect_msg(&c.f, KVMI_GET_GUEST_INFO, 2, NULL, 0);
	send_reply(&c.f, KVMI_GET_GUEST_INFO, 2, 0, &gi, sizeof(gi));
	/* The reader thread reads this reply to a waiting command ... */
	expect_msg(&c.f, KVMI_GET_GUEST_INFO, 3, NULL, 0);
	fake_sleep(&c.f, 20);
	send_reply(&c.f, KVMI_GET_GUEST_INFO, 3, 0, &gi, sizeof(gi));
	/* ... and the next one is read by the command's thread. */
	expect_msg(&c.f, KVMI_GET_GUEST_INFO, 4, NULL, 0);
	send_reply(&c.f, KVMI_GET_GUEST_INFO, 4, 0, &gi, sizeof(gi));
	fake_gate(&c.f);
	o = build_event(blob, 50, 0, KVMI_EVENT_PAUSE_VCPU);
	o += build_event(blob + o, 51, 1, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, o, "two events");
	fake_sleep(&c.f, 5);
	fake_shutdown(&c.f);
	if (conn_open(&c))
		goto out;
	if (kvmi_dom_get_guest_info(c.dom, &n) || n != 7) {
		failf("first command");
		goto out;
	}
	usleep(30000);          /* idle: the reader thread reads from now on */
	if (kvmi_dom_get_guest_info(c.dom, &n) || n != 7) {
		failf("command while the reader thread reads");
		goto out;
	}
	if (kvmi_dom_get_guest_info(c.dom, &n) || n != 7) {
		failf("command after the hand-over");
		goto out;
	}
	usleep(30000);
	fake_open_gate(&c.f);
	if (!wait_disc_thread(&d))
		goto out;
	if (pthread_equal(d.who, pthread_self()))
		failf("on_disconnect ran on the API thread");
	else if (kvmi_dom_is_connected(c.dom))
		failf("still connected");
	else if (kvmi_dom_pending_events(c.dom) != 2)
		failf("the events that came before the disconnect were not queued");
	else if (next_seq_is(c.dom, 50) && next_seq_is(c.dom, 51) &&
		 kvmi_dom_wait_event(c.dom, 0) != -ENOTCONN)
		failf("wait_event after the queue drained");
	if (!failed && d.calls != 1)
		failf("on_disconnect called %d times", d.calls);
out:
	conn_done(&c);
}

static void *wait_forever(void *arg)
{
	struct bg_cmd *w = arg;

	w->err = kvmi_dom_wait_event(w->dom, -1);
	return NULL;
}

/* kvmi_dom_shutdown() wakes the thread that reads and the one that follows;
 * the disconnect is reported once, from the reader thread. */
static void t_shutdown_wakes_all(void)
{
	struct disc_thread d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct bg_cmd a = { 0 }, b = { 0 };
	struct conn c;
	pthread_t ta, tb;

	conn_init(&c);
	c.cfg.on_disconnect = on_disc_thread;
	c.cfg.ctx = &d;
	c.cfg.io_timeout_ms = -1;
	expect_msg(&c.f, KVMI_GET_GUEST_INFO, 2, NULL, 0);
	fake_notify(&c.f);
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	a.dom = b.dom = c.dom;
	pthread_create(&ta, NULL, wait_forever, &a);
	pthread_create(&tb, NULL, bg_guest_info, &b);
	if (!fake_wait_notify(&c.f))
		failf("command never sent");
	/* A timed wait next to them gives up on its own. */
	if (kvmi_dom_wait_event(c.dom, 20) != -ETIMEDOUT)
		failf("a third waiter did not time out");
	kvmi_dom_shutdown(c.dom);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	if (!wait_disc_thread(&d))
		goto out;
	if (a.err != -ENOTCONN)
		failf("event waiter: %d", a.err);
	else if (b.err != -ECONNRESET)
		failf("command: %d", b.err);
	else if (pthread_equal(d.who, ta) || pthread_equal(d.who, tb) ||
		 pthread_equal(d.who, pthread_self()))
		failf("on_disconnect ran on an API thread");
	else if (d.calls != 1)
		failf("on_disconnect called %d times", d.calls);
out:
	conn_done(&c);
}

/* Which of @n event descriptors poll readable within @ms, as a bit mask. */
static unsigned int readable(const int *fds, unsigned int n, int ms)
{
	struct pollfd p[4];
	unsigned int mask = 0;

	for (unsigned int i = 0; i < n; i++)
		p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
	if (poll(p, n, ms) <= 0)
		return 0;
	for (unsigned int i = 0; i < n; i++)
		if (p[i].revents & POLLIN)
			mask |= 1u << i;
	return mask;
}

/* Pops the next event (it must be there: its descriptor polled readable)
 * and, with @reply, answers CONTINUE. */
static bool pop_reply(struct kvmi_dom *dom, uint32_t seq, bool reply)
{
	struct kvmi_event_msg *ev = NULL;
	bool ok = kvmi_dom_pop_event(dom, &ev) == 0 && ev->seq == seq &&
		  (!reply || kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0) == 0);

	if (!ok)
		failf("expected to pop and answer event seq %u, got %s %u", seq, ev ? "seq" : "none",
		      ev ? ev->seq : 0);
	kvmi_event_free(ev);
	return ok;
}

/* One thread polls the event descriptors of two domains: each is readable
 * exactly while its events are queued (read by the reader threads, no API
 * call waiting), a command in between still gets its reply, and a VMM that
 * goes away leaves its descriptor readable with -ENOTCONN to say why. */
static void t_event_fd_many(void)
{
	struct kvmi_get_guest_info_reply gi = { .vcpu_count = 1 };
	struct kvmi_event_msg *ev = NULL;
	struct conn a, b;
	uint8_t blob[2048];
	uint32_t n = 0;
	int fds[2];
	size_t o;

	conn_init(&a);
	conn_init(&b);
	fake_gate(&a.f);
	send_event(&a.f, 50, 0, KVMI_EVENT_PAUSE_VCPU, NULL, 0);
	expect_event_reply(&a.f, 50, 0, KVMI_EVENT_PAUSE_VCPU, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
	expect_msg(&a.f, KVMI_GET_GUEST_INFO, 2, NULL, 0);
	send_reply(&a.f, KVMI_GET_GUEST_INFO, 2, 0, &gi, sizeof(gi));
	fake_gate(&a.f);
	send_event(&a.f, 51, 0, KVMI_EVENT_PAUSE_VCPU, NULL, 0);
	fake_sleep(&a.f, 5);
	fake_shutdown(&a.f);
	fake_gate(&b.f);
	o = build_event(blob, 60, 0, KVMI_EVENT_PAUSE_VCPU);
	o += build_event(blob + o, 61, 0, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&b.f, blob, o, "two events");
	expect_event_reply(&b.f, 60, 0, KVMI_EVENT_PAUSE_VCPU, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
	expect_event_reply(&b.f, 61, 0, KVMI_EVENT_PAUSE_VCPU, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
	fake_expect_eof(&b.f);
	if (conn_open(&a) || conn_open(&b))
		goto out;
	fds[0] = kvmi_dom_event_fd(a.dom);
	fds[1] = kvmi_dom_event_fd(b.dom);
	CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[0] != fds[1], "event descriptors %d, %d", fds[0], fds[1]);
	CHECK(kvmi_dom_event_fd(a.dom) == fds[0], "a second call gave another descriptor");
	CHECK(readable(fds, 2, 30) == 0, "readable before any event");
	fake_open_gate(&b.f);
	CHECK(readable(fds, 2, 3000) == 2, "B's events did not make (only) B readable");
	if (!pop_reply(b.dom, 60, true))
		goto out;
	CHECK(readable(fds, 2, 0) == 2, "B not readable with its second event queued");
	if (!pop_reply(b.dom, 61, true))
		goto out;
	CHECK(readable(fds, 2, 0) == 0, "readable with the queues empty");
	fake_open_gate(&a.f);
	CHECK(readable(fds, 2, 3000) == 1, "A's event did not make (only) A readable");
	if (!pop_reply(a.dom, 50, true))
		goto out;
	CHECK_RET(kvmi_dom_get_guest_info(a.dom, &n), 0);
	CHECK(n == 1 && readable(fds, 2, 0) == 0, "a command left the descriptor up");
	fake_open_gate(&a.f);
	CHECK(readable(fds, 2, 3000) == 1, "A's event after a command was not seen");
	if (!pop_reply(a.dom, 51, false))
		goto out;
	CHECK(readable(fds, 2, 3000) == 1, "a VMM that went away left its descriptor down");
	CHECK_RET(kvmi_dom_next_event(a.dom, 0, &ev), -ENOTCONN);
out:
	conn_done(&a);
	conn_done(&b);
}

/* A descriptor-carrying reply right behind other messages: the descriptor
 * stays with its reply, however the reads were cut. */
static void map_reply(uint8_t *out, size_t *len, uint32_t seq, uint64_t offset)
{
	struct kvmi_x_map_memory_reply r = { .fd_offset = offset, .length = 4096 };

	*len = build_reply(out, KVMI_X_MAP_MEMORY, seq, 0, &r, sizeof(r));
}

static void expect_map(struct fake_vmm *f, uint32_t seq, uint64_t gpa)
{
	struct kvmi_x_map_memory req = { .gpa = gpa, .length = 4096, .flags = KVMI_X_MAP_READONLY };

	req.token.token[0] = 0x1234;
	expect_msg(f, KVMI_X_MAP_MEMORY, seq, &req, sizeof(req));
}

static int make_memfd(unsigned int pages)
{
	int fd = memfd_create("kvmi-test", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)pages * 4096))
		return -1;
	for (unsigned int i = 0; i < pages; i++) {
		uint8_t page[4096];

		memset(page, 0x40 + (int)i, sizeof(page));
		if (pwrite(fd, page, sizeof(page), (off_t)i * 4096) != (ssize_t)sizeof(page))
			return -1;
	}
	return fd;
}

static bool map_and_check(struct kvmi_dom *dom, uint64_t gpa, unsigned int page)
{
	struct kvmi_map_mem_token tok = { .token = { 0x1234 } };
	uint8_t *p = NULL;
	int err = kvmi_dom_map_physical_token(dom, &tok, gpa, 4096, PROT_READ, (void **)&p);
	bool ok = !err && p && p[0] == 0x40 + page && p[4095] == 0x40 + page;

	if (!ok)
		failf("map of page %u: %d (%s)", page, err, strerror(-err));
	if (p)
		kvmi_dom_unmap_physical(p, 4096);
	return ok;
}

static void t_fd_after_pipelined(void)
{
	uint8_t blob[4096];
	struct conn c;
	size_t o = 0, n;
	int mfd = make_memfd(3);

	CHECK(mfd >= 0, "memfd");
	conn_init(&c);
	/* Messages that are already waiting when the command starts ... */
	o += build_event(blob + o, 20, 0, KVMI_EVENT_PAUSE_VCPU);
	o += build_reply(blob + o, KVMI_GET_VERSION, 1, 0, NULL, 0);   /* stray, old seq */
	fake_send(&c.f, blob, o, "event + stray reply");
	expect_map(&c.f, 2, 0x5000);
	o = build_event(blob, 21, 0, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, o, "event");
	map_reply(blob, &n, 2, 4096);
	fake_send_fd(&c.f, blob, n, mfd, "reply with the descriptor");
	o = build_event(blob, 22, 0, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, o, "event right behind it");
	/* ... and the same with the reply in the middle of one write's worth. */
	expect_map(&c.f, 3, 0x6000);
	o = build_event(blob, 23, 0, KVMI_EVENT_PAUSE_VCPU);
	o += build_event(blob + o, 24, 0, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, o, "two events");
	map_reply(blob, &n, 3, 2 * 4096);
	o = build_event(blob + n, 25, 0, KVMI_EVENT_PAUSE_VCPU);
	fake_send_fd(&c.f, blob, n + o, mfd, "reply with the descriptor + event");
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	if (!map_and_check(c.dom, 0x5000, 1) || !map_and_check(c.dom, 0x6000, 2))
		goto out;
	for (uint32_t s = 20; s <= 25; s++)
		if (!next_seq_is(c.dom, s))
			break;
out:
	conn_done(&c);
	close(mfd);
}

#define MAP_ROUNDS 40

/* The descriptor-carrying reply arrives while another thread reads (its
 * read may take the event before it and the reply in one recvmsg). */
static void t_fd_while_other_thread_reads(void)
{
	struct ev_collector e = { .want = MAP_ROUNDS };
	uint8_t blob[2048];
	struct conn c;
	pthread_t t;
	size_t n, o;
	int mfd = make_memfd(MAP_ROUNDS);

	CHECK(mfd >= 0, "memfd");
	conn_init(&c);
	for (uint32_t k = 0; k < MAP_ROUNDS; k++) {
		expect_map(&c.f, 2 + k, 0x100000 + 4096ull * k);
		o = build_event(blob, 1000 + k, 0, KVMI_EVENT_PAUSE_VCPU);
		fake_send(&c.f, blob, o, "event");
		map_reply(blob, &n, 2 + k, 4096ull * k);
		fake_send_fd(&c.f, blob, n, mfd, "reply with the descriptor");
	}
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	e.dom = c.dom;
	pthread_create(&t, NULL, collect_events, &e);
	for (unsigned int k = 0; k < MAP_ROUNDS && !failed; k++)
		map_and_check(c.dom, 0x100000 + 4096ull * k, k);
	pthread_join(t, NULL);
	if (!failed && (e.err || e.got != MAP_ROUNDS))
		failf("event thread: %d after %u events", e.err, e.got);
	for (unsigned int i = 0; i < e.got && !failed; i++)
		if (e.seqs[i] != 1000 + i)
			failf("event %u has seq %u: out of order", i, e.seqs[i]);
out:
	conn_done(&c);
	close(mfd);
}

/* The pipelined bulk read: 101 replies (unaligned start, more than the
 * window of 64), an event among them, the byte stream cut at awkward
 * places (inside headers, error codes and data). */
static uint8_t pattern(uint64_t gpa)
{
	return (uint8_t)(gpa * 7 + (gpa >> 12));
}

#define BULK_GPA   (0x10000ull + 123)
#define BULK_SIZE  (100u * 4096u)

static void send_awkwardly(struct fake_vmm *f, const uint8_t *b, size_t len, unsigned int *k)
{
	static const size_t cuts[] = { 1, 7, 8, 9, 15, 16, 17, 4095, 4096, 4111, 4113, 8200, 3, 2, 30000 };

	for (size_t o = 0; o < len;) {
		size_t n = cuts[(*k)++ % (sizeof(cuts) / sizeof(cuts[0]))];

		if (n > len - o)
			n = len - o;
		fake_send(f, b + o, n, "bulk replies (a piece)");
		if (*k % 5 == 0)
			fake_sleep(f, 1);
		o += n;
	}
}

static void t_bulk_awkward_splits(void)
{
	struct kvmi_read_physical req;
	uint8_t *reqs = malloc(128 * 24), *replies = malloc(128 * (4112 + 600)), *dst = malloc(BULK_SIZE);
	uint64_t gpa = BULK_GPA;
	size_t left = BULK_SIZE, rq = 0, rp = 0, mark = 0;
	unsigned int count = 0, k = 0;
	struct conn c;

	CHECK(reqs && replies && dst, "malloc");
	conn_init(&c);
	while (left) {
		uint16_t n = (uint16_t)(4096 - (gpa & 4095));
		struct kvmi_msg_hdr h = { .id = KVMI_READ_PHYSICAL, .size = sizeof(req), .seq = 2 + count };
		uint8_t data[4096];

		if (n > left)
			n = (uint16_t)left;
		req = (struct kvmi_read_physical){ .gpa = gpa, .size = n };
		memcpy(reqs + rq, &h, 8);
		memcpy(reqs + rq + 8, &req, sizeof(req));
		rq += 24;
		for (unsigned int i = 0; i < n; i++)
			data[i] = pattern(gpa + i);
		rp += build_reply(replies + rp, KVMI_READ_PHYSICAL, 2 + count, 0, data, n);
		if (count == 40)
			rp += build_event(replies + rp, 77, 0, KVMI_EVENT_PAUSE_VCPU);
		count++;
		gpa += n;
		left -= n;
		if (count == 64)
			mark = rp;
	}
	CHECK(count == 101, "%u requests", count);
	fake_expect(&c.f, reqs, 64 * 24, "first 64 requests");
	send_awkwardly(&c.f, replies, mark, &k);
	fake_expect(&c.f, reqs + 64 * 24, (count - 64) * 24, "the other requests");
	send_awkwardly(&c.f, replies + mark, rp - mark, &k);
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	memset(dst, 0, BULK_SIZE);
	if (kvmi_dom_read_physical_bulk(c.dom, BULK_GPA, dst, BULK_SIZE)) {
		failf("bulk read failed");
		goto out;
	}
	for (size_t i = 0; i < BULK_SIZE; i++) {
		if (dst[i] != pattern(BULK_GPA + i)) {
			failf("byte %zu differs", i);
			goto out;
		}
	}
	next_seq_is(c.dom, 77);
out:
	conn_done(&c);
	free(reqs);
	free(replies);
	free(dst);
}

/* A command times out while another thread reads; its late reply is
 * dropped and the next command gets its own. */
static void t_follower_timeout_late_reply(void)
{
	struct ev_collector e = { .want = 1 };
	struct kvmi_check_command req = { .id = 13 };
	uint8_t blob[1024];
	struct conn c;
	pthread_t t;
	size_t o;

	conn_init(&c);
	c.cfg.io_timeout_ms = 150;
	expect_msg(&c.f, KVMI_CHECK_COMMAND, 2, &req, sizeof(req));
	fake_gate(&c.f);
	send_reply(&c.f, KVMI_CHECK_COMMAND, 2, 0, NULL, 0);
	expect_msg(&c.f, KVMI_CHECK_COMMAND, 3, &req, sizeof(req));
	send_reply(&c.f, KVMI_CHECK_COMMAND, 3, -KVM_EPERM, NULL, 0);
	o = build_event(blob, 1000, 0, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, o, "event");
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	e.dom = c.dom;
	pthread_create(&t, NULL, collect_events, &e);
	if (kvmi_dom_check_command(c.dom, 13) != -ETIMEDOUT)
		failf("no timeout");
	fake_open_gate(&c.f);
	if (!failed && kvmi_dom_check_command(c.dom, 13) != -EPERM)
		failf("second command did not get its own reply");
	pthread_join(t, NULL);
	if (!failed && (e.err || e.got != 1 || e.seqs[0] != 1000))
		failf("event thread: %d after %u events", e.err, e.got);
out:
	conn_done(&c);
}

/* A message that stops half-way ends the connection after io_timeout,
 * even for a thread that would wait longer. */
static void t_partial_message_times_out(void)
{
	struct disc_thread d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	uint8_t blob[1024];
	struct conn c;

	conn_init(&c);
	c.cfg.io_timeout_ms = 100;
	c.cfg.on_disconnect = on_disc_thread;
	c.cfg.ctx = &d;
	build_event(blob, 600, 0, KVMI_EVENT_PAUSE_VCPU);
	fake_send(&c.f, blob, 100, "the first 100 bytes of an event");
	fake_expect_eof(&c.f);
	if (conn_open(&c))
		goto out;
	if (kvmi_dom_wait_event(c.dom, 10000) != -ENOTCONN)
		failf("wait_event did not see the connection end");
	else if (kvmi_dom_is_connected(c.dom))
		failf("still connected");
	else if (wait_disc_thread(&d) && d.calls != 1)
		failf("on_disconnect called %d times", d.calls);
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
	run("kvmi_uuid_parse, kvmi_config_expect_guest: forms, limits, replacing", t_expect_guest_args);
	run("an unexpected guest name or UUID is refused unanswered (-EACCES, logged)", t_expect_guest);
	run("the listener refuses a stale guest and accepts the expected one next", t_expect_guest_listener);
	run("event reply while another thread's command is in flight", t_reply_while_command_in_flight);
	run("disconnect: callback once, then -ENOTCONN everywhere", t_disconnect_callback);
	run("disconnect callback may close the domain", t_disconnect_callback_closes);
	run("a reply after the timeout is dropped, not misdelivered", t_late_reply_dropped);
	run("pause_all = GET_GUEST_INFO + libkvmi pause batch", t_pause_all);
	run("a batch can be refilled; suffix errors are reported", t_batch_refill);
	run("listener accept thread hands domains to on_connect", t_listener_thread);
	run("argument checks reject what the VMM would drop the socket for", t_arg_checks);
	run("UNHOOK is delivered and needs no reply", t_unhook_no_reply);
	run("one thread reads itself: events and replies interleaved", t_direct_interleaved);
	run("two threads (events, commands) pass the lead back and forth", t_two_threads_leadership);
	run("the reader thread reads when idle, hands over, reports the disconnect",
	    t_reader_takes_over);
	run("shutdown wakes the reading and the following thread", t_shutdown_wakes_all);
	run("one thread polls the event descriptors of two domains", t_event_fd_many);
	run("a descriptor stays with its reply behind pipelined messages", t_fd_after_pipelined);
	run("a descriptor stays with its reply while another thread reads",
	    t_fd_while_other_thread_reads);
	run("bulk read: replies cut at awkward places, an event among them", t_bulk_awkward_splits);
	run("a follower's command times out, its late reply is dropped", t_follower_timeout_late_reply);
	run("a message that stops half-way ends the connection after io_timeout",
	    t_partial_message_times_out);
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
