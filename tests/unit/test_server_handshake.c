/* SPDX-License-Identifier: MIT */
/*
 * test_server_handshake.c - the VMM side of the handshake (bytes against
 * the libkvmi vectors, cookie check, timeout, short reads, size limits,
 * nothing read past the answer), SHA-1 cookies, address parsing and the
 * connect / reconnect loop.
 */
#include "test_server_util.h"
#include "test_wire_vectors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const uint8_t vec_uuid[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
				      0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };

static const struct wire_vector *find(const char *name)
{
	for (size_t i = 0; i < wire_vectors_count; i++)
		if (!strcmp(wire_vectors[i].name, name))
			return &wire_vectors[i];
	return NULL;
}

static void vector_config(struct kvmi_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->uuid, vec_uuid, 16);
	strcpy(cfg->name, "vector-vm");
	cfg->start_time_ms = 1700000000123;
	cfg->max_gpa = 0x23fffffffull;
	cfg->max_vcpus = 4;
}

struct session {
	struct kvmi_server *srv;
	struct kvmi_backend fake;
	int tool, vmm;
	pthread_t thread;
	int ret;
};

static void *session_thread(void *opaque)
{
	struct session *s = opaque;

	s->ret = kvmi_server_session(s->srv, s->vmm);
	shutdown(s->vmm, SHUT_RDWR);
	return NULL;
}

static int session_start(struct session *s, struct kvmi_server_config *cfg)
{
	int sv[2];

	fake_init(&s->fake);
	s->fake.features = (struct kvmi_features){ .spp = 1, .vmfunc = 1, .eptp = 1 };
	cfg->ops = &s->fake.ops;
	cfg->backend = &s->fake;
	if (kvmi_server_create(cfg, &s->srv))
		return -1;
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	s->tool = sv[0];
	s->vmm = sv[1];
	return pthread_create(&s->thread, NULL, session_thread, s);
}

static int session_end(struct session *s)
{
	shutdown(s->tool, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->tool);
	close(s->vmm);
	kvmi_server_destroy(s->srv);
	fake_destroy(&s->fake);
	return s->ret;
}

static int rd(int fd, void *buf, size_t len)
{
	struct harness h = { .tool = fd };

	return h_read(&h, buf, len);
}

static void wr(int fd, const void *buf, size_t len)
{
	struct harness h = { .tool = fd };

	if (h_send(&h, buf, len))
		tap_diag("write to the VMM failed");
}

static bool eof(int fd)
{
	struct harness h = { .tool = fd };

	return h_closed(&h);
}

static void test_vector_handshake(void)
{
	const struct wire_vector *v104 = find("handshake/struct-size-104-qemu-max_gpa");
	const struct wire_vector *basic = find("handshake/basic-sha1-cookie");
	const struct wire_vector *nocb = find("handshake/no-handshake-cb");
	struct kvmi_server_config cfg;
	struct kvmi_handshake_params p = { 0 };
	struct kvmi_handshake_vmm hello;
	struct session s;
	uint8_t got[256];

	if (!v104 || !basic || !nocb) {
		tap_skip("no vectors", "handshake vectors");
		return;
	}
	memcpy(p.uuid, vec_uuid, 16);
	strcpy(p.name, "vector-vm");
	p.start_time_ms = 1700000000123;
	p.max_gpa = 0x23fffffffull;
	kvmi_srv_handshake_encode(&p, &hello);
	tap_ok(v104->hs_reply_prefix == sizeof(hello) && !memcmp(&hello, v104->reply, sizeof(hello)),
	       "encoded VMM handshake == QEMU's 104-byte form in the vectors");
	tap_ok(!memcmp((uint8_t *)&hello + 4, basic->reply + 4, 92) && hello.struct_size == 104,
	       "its first 96 bytes are libkvmi's struct (struct_size aside)");

	/* a full session with key "secret" */
	vector_config(&cfg);
	cfg.key = "secret";
	cfg.key_len = 6;
	session_start(&s, &cfg);
	tap_ok(rd(s.tool, got, 104) == 0 && !memcmp(got, v104->reply, 104), "session: hello sent");
	wr(s.tool, basic->request, basic->request_len);
	tap_ok(rd(s.tool, got, basic->reply_len - 96) == 0 &&
	       !memcmp(got, basic->reply + 96, basic->reply_len - 96),
	       "session: cookie SHA-1(\"secret\") accepted, GET_VERSION answered byte-identically");
	tap_ok(session_end(&s) == 0, "session: ends cleanly when the tool leaves");

	/* the tool sends no cookie, the VMM has a key: rejected */
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	wr(s.tool, nocb->request, nocb->request_len);
	tap_ok(eof(s.tool), "zero cookie with a key configured: connection closed, no reply");
	tap_ok(session_end(&s) == -EACCES, "  ... session returns -EACCES");

	/* no key: any tool is accepted */
	vector_config(&cfg);
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	wr(s.tool, nocb->request, nocb->request_len);
	tap_ok(rd(s.tool, got, nocb->reply_len - 96) == 0 &&
	       !memcmp(got, nocb->reply + 96, nocb->reply_len - 96),
	       "no key configured: zero cookie accepted");
	tap_ok(session_end(&s) == 0, "  ... session ends cleanly");
}

static int fixed_hash(const void *key, size_t len, uint8_t out[KVMI_COOKIE_HASH_SIZE])
{
	(void)key;
	(void)len;
	memset(out, 0x5a, KVMI_COOKIE_HASH_SIZE);
	return 0;
}

static void test_answers(void)
{
	struct kvmi_server_config cfg;
	struct session s;
	uint8_t got[256], ans[64];
	uint32_t size;
	static const uint8_t get_version[8] = { 2, 0, 0, 0, 1, 0, 0, 0 };

	/* a longer answer: the extra bytes are consumed, nothing more */
	vector_config(&cfg);
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	memset(ans, 0x77, sizeof(ans));
	size = 40;
	memcpy(ans, &size, 4);
	memcpy(ans + 40, get_version, 8);
	wr(s.tool, ans, 48);
	tap_ok(rd(s.tool, got, 32) == 0 && got[0] == 2 && got[4] == 1,
	       "40-byte answer: extra 16 bytes skipped, the GET_VERSION behind it answered");
	session_end(&s);

	/* too small / too large */
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	size = 23;
	memset(ans, 0, sizeof(ans));
	memcpy(ans, &size, 4);
	wr(s.tool, ans, 24);
	tap_ok(eof(s.tool), "answer struct_size 23: closed");
	tap_ok(session_end(&s) == -EPROTO, "  ... -EPROTO");
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	size = KVMI_HANDSHAKE_TOOL_MAX_SIZE + 1;
	memcpy(ans, &size, 4);
	wr(s.tool, ans, 24);
	tap_ok(eof(s.tool), "answer struct_size 4097: closed before reading it");
	tap_ok(session_end(&s) == -EPROTO, "  ... -EPROTO");

	/* short read: 10 bytes then EOF */
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	size = 24;
	memcpy(ans, &size, 4);
	wr(s.tool, ans, 10);
	shutdown(s.tool, SHUT_WR);
	tap_ok(session_end(&s) == -ECONNRESET, "answer cut short: -ECONNRESET");

	/* timeout */
	vector_config(&cfg);
	cfg.handshake_timeout_ms = 50;
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	pthread_join(s.thread, NULL);
	tap_ok(s.ret == -ETIMEDOUT, "tool silent: handshake times out (-ETIMEDOUT)");
	tap_ok(eof(s.tool), "  ... connection dropped");
	close(s.tool);
	close(s.vmm);
	kvmi_server_destroy(s.srv);
	fake_destroy(&s.fake);

	/* injected hash function */
	vector_config(&cfg);
	cfg.key = "anything";
	cfg.key_len = 8;
	cfg.hash = fixed_hash;
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	size = 24;
	memcpy(ans, &size, 4);
	memset(ans + 4, 0x5a, 20);
	memcpy(ans + 24, get_version, 8);
	wr(s.tool, ans, 32);
	tap_ok(rd(s.tool, got, 32) == 0 && got[0] == 2, "injected hash: matching cookie accepted");
	session_end(&s);
	session_start(&s, &cfg);
	rd(s.tool, got, 104);
	ans[23] ^= 1;
	wr(s.tool, ans, 32);
	tap_ok(eof(s.tool) && session_end(&s) == -EACCES, "injected hash: one bit off -> -EACCES");
}

static void test_pure(void)
{
	uint8_t h[KVMI_COOKIE_HASH_SIZE], buf[64] = { 0 }, want[KVMI_COOKIE_HASH_SIZE];
	struct kvmi_handshake_params p = { 0 };
	struct kvmi_handshake_vmm hello;
	struct kvmi_handshake_tool a;
	uint32_t size = 24;

	hex_to_bin("e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4", want, sizeof(want));
	tap_ok(kvmi_srv_cookie_sha1("secret", 6, h) == 0 && !memcmp(h, want, 20),
	       "SHA-1(\"secret\") via libcrypto");

	memcpy(buf, &size, 4);
	memcpy(buf + 4, want, 20);
	tap_ok(kvmi_srv_handshake_check_answer(buf, 24, want, &a) == 0 && a.struct_size == 24,
	       "check_answer: good");
	tap_ok(kvmi_srv_handshake_check_answer(buf, 24, NULL, NULL) == 0, "check_answer: no key");
	tap_ok(kvmi_srv_handshake_check_answer(buf, 23, want, NULL) == -EPROTO,
	       "check_answer: length != struct_size");
	tap_ok(kvmi_srv_handshake_check_answer(buf, 3, want, NULL) == -EPROTO, "check_answer: 3 bytes");
	buf[10] ^= 0x80;
	tap_ok(kvmi_srv_handshake_check_answer(buf, 24, want, NULL) == -EACCES,
	       "check_answer: wrong cookie");

	memset(p.name, 'x', sizeof(p.name));
	kvmi_srv_handshake_encode(&p, &hello);
	tap_ok(hello.name[62] == 'x' && hello.name[63] == '\0' && hello.padding1 == 0,
	       "64-character name: 63 kept, NUL-terminated");
}

static void test_addr(void)
{
	struct kvmi_addr a;

	tap_ok(kvmi_srv_addr_parse("unix:/run/kvmi.sock", &a) == 0 && a.family == AF_UNIX &&
	       !strcmp(a.path, "/run/kvmi.sock"), "unix:PATH");
	tap_ok(kvmi_srv_addr_parse("vsock:2:1234", &a) == 0 && a.family == 40 && a.cid == 2 &&
	       a.port == 1234, "vsock:CID:PORT");
	tap_ok(kvmi_srv_addr_parse("vsock:0x3:0x10", &a) == 0 && a.cid == 3 && a.port == 16,
	       "vsock with hex numbers");
	tap_ok(kvmi_srv_addr_parse("unix:", &a) == -EINVAL, "unix: without a path");
	tap_ok(kvmi_srv_addr_parse("vsock:2", &a) == -EINVAL, "vsock without a port");
	tap_ok(kvmi_srv_addr_parse("vsock:2:-1", &a) == -EINVAL, "vsock negative port");
	tap_ok(kvmi_srv_addr_parse("vsock:2:4294967296", &a) == -EINVAL, "vsock port > u32");
	tap_ok(kvmi_srv_addr_parse("tcp:1.2.3.4:5", &a) == -EINVAL, "unknown transport");
	{
		char longp[200] = "unix:";

		memset(longp + 5, 'a', 150);
		tap_ok(kvmi_srv_addr_parse(longp, &a) == -EINVAL, "unix path too long");
	}
}

/* kvmi_server_run: connect, serve, reconnect after the tool leaves, stop. */
struct run_args {
	struct kvmi_server *srv;
	struct kvmi_addr addr;
	int ret;
};

static void *run_thread(void *opaque)
{
	struct run_args *r = opaque;

	r->ret = kvmi_server_run(r->srv, &r->addr);
	return NULL;
}

static void test_run_loop(void)
{
	struct kvmi_server_config cfg;
	struct kvmi_backend fake;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct run_args r;
	pthread_t th;
	char path[108];
	uint8_t got[128], ans[32] = { 24 };
	int lfd, i;

	snprintf(path, sizeof(path), "/tmp/kvmi-test-%d.sock", (int)getpid());
	unlink(path);
	strcpy(un.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bind(lfd, (struct sockaddr *)&un, sizeof(un));
	listen(lfd, 4);

	fake_init(&fake);
	vector_config(&cfg);
	cfg.ops = &fake.ops;
	cfg.backend = &fake;
	kvmi_server_create(&cfg, &r.srv);
	{
		char spec[128];

		snprintf(spec, sizeof(spec), "unix:%s", path);
		kvmi_srv_addr_parse(spec, &r.addr);
	}
	pthread_create(&th, NULL, run_thread, &r);

	memcpy(ans + 24, "\x02\x00\x00\x00\x01\x00\x00\x00", 8);
	for (i = 0; i < 2; i++) {
		int fd = accept(lfd, NULL, NULL);

		tap_ok(fd >= 0 && rd(fd, got, 104) == 0 && !memcmp(got + 32, "vector-vm", 10),
		       "run loop: connection %d, hello received", i + 1);
		wr(fd, ans, 32);
		tap_ok(rd(fd, got, 32) == 0 && got[0] == 2, "run loop: connection %d served", i + 1);
		close(fd);
	}
	{
		int fd = accept(lfd, NULL, NULL);

		tap_ok(fd >= 0 && rd(fd, got, 104) == 0, "run loop: reconnects a third time");
		kvmi_server_stop(r.srv);
		pthread_join(th, NULL);
		tap_ok(r.ret == 0 && kvmi_server_sessions(r.srv) == 2,
		       "run loop: stop during a handshake ends it; 2 sessions served");
		close(fd);
	}
	kvmi_server_destroy(r.srv);
	fake_destroy(&fake);
	close(lfd);
	unlink(path);
}

int main(void)
{
	test_vector_handshake();
	test_answers();
	test_pure();
	test_addr();
	test_run_loop();
	return tap_done();
}
