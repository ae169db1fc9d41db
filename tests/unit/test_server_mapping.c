/* SPDX-License-Identifier: MIT */
/*
 * test_server_mapping.c - GET_MAP_TOKEN and the kvmi extension
 * KVMI_X_MAP_MEMORY in the protocol server, without KVM:
 *   - the token table (maptoken.c): random, single use, expiry, the limit
 *     of outstanding tokens, forged tokens, clearing;
 *   - the extension command through the dispatcher on a socketpair, with a
 *     backend that keeps real tokens and hands out a memfd: the reply is a
 *     normal KVMI reply with the descriptor attached, mappable, read-only
 *     on request;
 *   - every refusal: request size, padding, flags, alignment, overflow
 *     (validated before the token is looked at), unknown/reused tokens,
 *     policy, missing backend ops, replies switched off, and a connection
 *     that is not AF_UNIX (TCP loopback) -- with CHECK_COMMAND telling the
 *     truth in each case and the backend never called when it must not be.
 */
#include "test_server_util.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_SIZE (64u * 4096u)
#define RAM_GPA   0x100000ull     /* the fake's RAM: [RAM_GPA, RAM_GPA + FILE_SIZE) */

/* The fake's mapping state (one backend at a time). */
static struct kvmi_map_tokens tokens;
static int ram_fd = -1;
static unsigned map_calls;
static bool last_readonly;
static bool give_no_fd;

static int m_get_map_token(struct kvmi_backend *b, struct kvmi_map_mem_token *t)
{
	(void)b;
	return kvmi_map_tokens_issue(&tokens, t);
}

static int m_map_memory(struct kvmi_backend *b, const struct kvmi_map_mem_token *t, uint64_t gpa,
			uint64_t len, bool readonly, int *fd, uint64_t *offset)
{
	int err;

	(void)b;
	map_calls++;
	last_readonly = readonly;
	err = kvmi_map_tokens_redeem(&tokens, t);
	if (err)
		return err;
	if (gpa < RAM_GPA || gpa - RAM_GPA >= FILE_SIZE || len > FILE_SIZE - (gpa - RAM_GPA))
		return -KVM_ENOENT;
	if (give_no_fd)
		return 0;
	*fd = dup(ram_fd);
	*offset = gpa - RAM_GPA;
	return *fd < 0 ? -KVM_ENOMEM : 0;
}

static void fake_with_mapping(struct kvmi_backend *f)
{
	fake_init(f);
	f->ops.get_map_token = m_get_map_token;
	f->ops.map_memory = m_map_memory;
	kvmi_map_tokens_init(&tokens, 0);
	map_calls = 0;
	give_no_fd = false;
}

/* ---- token table ---------------------------------------------------- */

static void test_token_table(void)
{
	struct kvmi_map_tokens t;
	struct kvmi_map_mem_token a, b, z = { { 0 } };
	unsigned issued = 0;
	int err = 0;

	kvmi_map_tokens_init(&t, 0);
	tap_ok(kvmi_map_tokens_redeem(&t, &z) == -KVM_EPERM, "empty table: the all-zero token is refused");
	tap_ok(kvmi_map_tokens_issue(&t, &a) == 0 && kvmi_map_tokens_issue(&t, &b) == 0 &&
	       memcmp(&a, &b, sizeof(a)) && memcmp(&a, &z, sizeof(a)),
	       "two tokens: distinct, not zero");
	tap_ok(kvmi_map_tokens_outstanding(&t) == 2, "two outstanding");
	a.token[3] ^= 0x8000000000000000ull;
	tap_ok(kvmi_map_tokens_redeem(&t, &a) == -KVM_EPERM, "a token with one bit flipped: EPERM");
	a.token[3] ^= 0x8000000000000000ull;
	tap_ok(kvmi_map_tokens_redeem(&t, &a) == 0, "the real token: redeemed");
	tap_ok(kvmi_map_tokens_redeem(&t, &a) == -KVM_EPERM, "the same token again: EPERM");
	tap_ok(kvmi_map_tokens_redeem(&t, &z) == -KVM_EPERM, "a freed slot does not match zeros");
	tap_ok(kvmi_map_tokens_outstanding(&t) == 1, "one outstanding");
	kvmi_map_tokens_clear(&t);
	tap_ok(kvmi_map_tokens_redeem(&t, &b) == -KVM_EPERM && kvmi_map_tokens_outstanding(&t) == 0,
	       "clear (session end) drops every token");

	while (issued < 2 * KVMI_MAP_TOKENS_MAX && !(err = kvmi_map_tokens_issue(&t, &a)))
		issued++;
	tap_ok(issued == KVMI_MAP_TOKENS_MAX && err == -KVM_EAGAIN,
	       "at most %u outstanding, then EAGAIN (%u issued, %d)", KVMI_MAP_TOKENS_MAX, issued, err);
	tap_ok(kvmi_map_tokens_redeem(&t, &a) == 0 && kvmi_map_tokens_issue(&t, &b) == 0,
	       "redeeming one makes room for one");

	kvmi_map_tokens_init(&t, 20);
	for (unsigned i = 0; i < KVMI_MAP_TOKENS_MAX; i++)
		kvmi_map_tokens_issue(&t, &a);
	usleep(40000);
	tap_ok(kvmi_map_tokens_redeem(&t, &a) == -KVM_EPERM, "an expired token: EPERM");
	tap_ok(kvmi_map_tokens_outstanding(&t) == 0 && kvmi_map_tokens_issue(&t, &b) == 0,
	       "expired tokens do not count against the limit");
}

/* ---- the command on a socketpair ------------------------------------ */

static uint32_t seq_no = 50000;

/* Sends KVMI_X_MAP_MEMORY and reads the reply with recvmsg. Returns the
 * reply's err (or 1 << 20 when no reply came); *fd = passed descriptor. */
static int x_map(struct harness *h, const void *req, size_t len, struct kvmi_x_map_memory_reply *rpl,
		 int *fd)
{
	uint8_t buf[8 + 8 + 64];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = 8 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct kvmi_msg_hdr hdr;
	struct kvmi_error_code ec;
	struct pollfd p = { .fd = h->tool, .events = POLLIN };
	uint32_t seq = ++seq_no;
	ssize_t n;

	*fd = -1;
	if (h_cmd(h, KVMI_X_MAP_MEMORY, seq, req, len, NULL, 0))
		return 1 << 20;
	if (poll(&p, 1, 5000) != 1)
		return 1 << 20;
	/* The header alone first: the descriptor rides on the first byte. */
	n = recvmsg(h->tool, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	if (n != 8)
		return 1 << 20;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			if (*fd >= 0)
				close(*fd);
			memcpy(fd, CMSG_DATA(c), sizeof(int));
		}
	memcpy(&hdr, buf, sizeof(hdr));
	if (hdr.id != KVMI_X_MAP_MEMORY || hdr.seq != seq || hdr.size < sizeof(ec) || hdr.size > 8 + 64 ||
	    h_read(h, buf + 8, hdr.size))
		return 1 << 20;
	memcpy(&ec, buf + 8, sizeof(ec));
	if (rpl) {
		memset(rpl, 0xee, sizeof(*rpl));
		if (!ec.err && hdr.size == sizeof(ec) + sizeof(*rpl))
			memcpy(rpl, buf + 16, sizeof(*rpl));
	}
	if (!ec.err && hdr.size != sizeof(ec) + sizeof(*rpl))
		return 1 << 21;
	return ec.err;
}

static int get_token(struct harness *h, struct kvmi_map_mem_token *t)
{
	size_t len = sizeof(*t);

	return h_call(h, KVMI_GET_MAP_TOKEN, NULL, 0, NULL, 0, t, &len);
}

static int check_cmd(struct harness *h, uint16_t id)
{
	struct kvmi_check_command c = { .id = id };

	return h_call(h, KVMI_CHECK_COMMAND, &c, sizeof(c), NULL, 0, NULL, NULL);
}

static void test_redeem(void)
{
	struct kvmi_backend f;
	struct harness h;
	struct kvmi_x_map_memory req = { .gpa = RAM_GPA + 0x2000, .length = 0x3000 };
	struct kvmi_x_map_memory_reply rpl;
	struct stat st;
	uint8_t *p;
	int fd, err;

	fake_with_mapping(&f);
	if (h_start(&h, &f, NULL)) {
		tap_ok(false, "start the server");
		return;
	}
	tap_ok(check_cmd(&h, KVMI_X_MAP_MEMORY) == 0, "CHECK_COMMAND KVMI_X_MAP_MEMORY on a unix socket: 0");
	tap_ok(check_cmd(&h, KVMI_X_MAP_MEMORY + 1) == -KVM_EINVAL, "CHECK_COMMAND of another id near it: EINVAL");
	tap_ok(get_token(&h, &req.token) == 0, "GET_MAP_TOKEN");
	err = x_map(&h, &req, sizeof(req), &rpl, &fd);
	tap_ok(err == 0 && fd >= 0, "redeem: a normal reply with a descriptor attached (%d)", err);
	tap_ok(rpl.fd_offset == 0x2000 && rpl.length == 0x3000, "reply: fd_offset and length");
	tap_ok(map_calls == 1 && !last_readonly, "the backend was asked once, read-write");
	if (fd >= 0) {
		tap_ok(fstat(fd, &st) == 0 && st.st_size == FILE_SIZE, "the descriptor is the backend's file");
		p = mmap(NULL, rpl.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)rpl.fd_offset);
		tap_ok(p != MAP_FAILED && p[0] == 0x22 && p[0x2fff] == 0x44,
		       "mapping it shows the file's bytes at gpa's offset");
		if (p != MAP_FAILED)
			munmap(p, rpl.length);
		close(fd);
	}
	err = x_map(&h, &req, sizeof(req), &rpl, &fd);
	tap_ok(err == -KVM_EPERM && fd < 0, "the same token again: EPERM, no descriptor");
	memset(&req.token, 0x42, sizeof(req.token));
	tap_ok(x_map(&h, &req, sizeof(req), &rpl, &fd) == -KVM_EPERM && fd < 0, "a forged token: EPERM");

	get_token(&h, &req.token);
	req.flags = KVMI_X_MAP_READONLY;
	err = x_map(&h, &req, sizeof(req), &rpl, &fd);
	tap_ok(err == 0 && fd >= 0 && last_readonly, "KVMI_X_MAP_READONLY reaches the backend");
	if (fd >= 0)
		close(fd);
	req.flags = 0;

	get_token(&h, &req.token);
	req.gpa = RAM_GPA + FILE_SIZE - 0x1000;
	req.length = 0x2000;
	tap_ok(x_map(&h, &req, sizeof(req), &rpl, &fd) == -KVM_ENOENT && fd < 0,
	       "a range leaving the backend's RAM: its ENOENT");
	req.gpa = RAM_GPA;
	req.length = 0x1000;
	tap_ok(x_map(&h, &req, sizeof(req), &rpl, &fd) == -KVM_EPERM, "...which spent the token");

	/* Validation comes before the backend and before the token. */
	get_token(&h, &req.token);
	map_calls = 0;
	{
		struct kvmi_x_map_memory bad;
		uint8_t big[sizeof(req) + 8] = { 0 };

		memcpy(big, &req, sizeof(req));
		tap_ok(x_map(&h, &req, sizeof(req) - 1, NULL, &fd) == -KVM_EINVAL, "short request: EINVAL");
		tap_ok(x_map(&h, big, sizeof(big), NULL, &fd) == -KVM_EINVAL, "long request: EINVAL");
		bad = req;
		bad.padding = 1;
		tap_ok(x_map(&h, &bad, sizeof(bad), NULL, &fd) == -KVM_EINVAL, "padding: EINVAL");
		bad = req;
		bad.flags = 2;
		tap_ok(x_map(&h, &bad, sizeof(bad), NULL, &fd) == -KVM_EINVAL, "unknown flag: EINVAL");
		bad = req;
		bad.gpa |= 0x10;
		tap_ok(x_map(&h, &bad, sizeof(bad), NULL, &fd) == -KVM_EINVAL, "misaligned gpa: EINVAL");
		bad = req;
		bad.length = 0x1800;
		tap_ok(x_map(&h, &bad, sizeof(bad), NULL, &fd) == -KVM_EINVAL, "misaligned length: EINVAL");
		bad = req;
		bad.length = 0;
		tap_ok(x_map(&h, &bad, sizeof(bad), NULL, &fd) == -KVM_EINVAL, "zero length: EINVAL");
		bad = req;
		bad.gpa = 0xfffffffffffff000ull;
		bad.length = 0x2000;
		tap_ok(x_map(&h, &bad, sizeof(bad), NULL, &fd) == -KVM_EINVAL, "a range that wraps: EINVAL");
	}
	tap_ok(map_calls == 0, "none of them reached the backend");
	tap_ok(x_map(&h, &req, sizeof(req), &rpl, &fd) == 0 && fd >= 0, "the token survived them");
	if (fd >= 0)
		close(fd);

	/* A backend that "succeeds" without a descriptor is a backend bug,
	 * not a reply without one. */
	give_no_fd = true;
	get_token(&h, &req.token);
	tap_ok(x_map(&h, &req, sizeof(req), &rpl, &fd) == -KVM_EINVAL && fd < 0,
	       "backend success without a descriptor: EINVAL");
	give_no_fd = false;

	/* Replies off: a data reply cannot be suppressed, the server closes. */
	{
		struct kvmi_control_cmd_response off = { .enable = 0, .now = 1 };

		get_token(&h, &req.token);
		h_cmd(&h, KVMI_CONTROL_CMD_RESPONSE, 7, &off, sizeof(off), NULL, 0);
		h_cmd(&h, KVMI_X_MAP_MEMORY, 8, &req, sizeof(req), NULL, 0);
		tap_ok(h_closed(&h), "with replies off KVMI_X_MAP_MEMORY closes the connection");
	}
	h_stop(&h);
	fake_destroy(&f);
}

static void test_policy_and_ops(void)
{
	struct kvmi_backend f;
	struct harness h;
	struct kvmi_policy pol;
	struct kvmi_server_config cfg;
	struct kvmi_x_map_memory req = { .gpa = RAM_GPA, .length = 0x1000 };
	int fd;

	/* Policy: GET_MAP_TOKEN denied denies the extension too. */
	fake_with_mapping(&f);
	kvmi_policy_allow_all(&pol);
	pol.commands &= ~(1ull << KVMI_GET_MAP_TOKEN);
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = &pol;
	tap_ok(!kvmi_policy_command_allowed(&pol, KVMI_X_MAP_MEMORY),
	       "policy: KVMI_X_MAP_MEMORY follows GET_MAP_TOKEN");
	if (!h_start(&h, &f, &cfg)) {
		kvmi_map_tokens_issue(&tokens, &req.token);
		tap_ok(check_cmd(&h, KVMI_X_MAP_MEMORY) == -KVM_EPERM, "CHECK_COMMAND under that policy: EPERM");
		tap_ok(x_map(&h, &req, sizeof(req), NULL, &fd) == -KVM_EPERM && map_calls == 0,
		       "the command under that policy: EPERM, backend not called");
		h_stop(&h);
	}
	fake_destroy(&f);

	/* No map_memory op: not implemented. */
	fake_with_mapping(&f);
	f.ops.map_memory = NULL;
	if (!h_start(&h, &f, NULL)) {
		tap_ok(check_cmd(&h, KVMI_X_MAP_MEMORY) == -KVM_ENOSYS, "no map_memory op: CHECK_COMMAND ENOSYS");
		tap_ok(x_map(&h, &req, sizeof(req), NULL, &fd) == -KVM_ENOSYS, "no map_memory op: ENOSYS");
		h_stop(&h);
	}
	fake_destroy(&f);

	/* map_memory without get_map_token: nothing could be redeemed. */
	fake_with_mapping(&f);
	f.ops.get_map_token = NULL;
	if (!h_start(&h, &f, NULL)) {
		tap_ok(check_cmd(&h, KVMI_X_MAP_MEMORY) == -KVM_ENOSYS,
		       "no get_map_token op: CHECK_COMMAND KVMI_X_MAP_MEMORY ENOSYS");
		h_stop(&h);
	}
	fake_destroy(&f);
}

static void *serve(void *arg)
{
	struct harness *h = arg;

	h->serve_ret = kvmi_server_serve(h->srv, h->vmm, h->vmm);
	return NULL;
}

/* The same server on a TCP connection: descriptors cannot travel. */
static void test_not_unix(void)
{
	struct kvmi_backend f;
	struct harness h;
	struct kvmi_server_config cfg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct kvmi_x_map_memory req = { .gpa = RAM_GPA, .length = 0x1000 };
	struct kvmi_map_mem_token t;
	int l, fd;

	fake_with_mapping(&f);
	memset(&h, 0, sizeof(h));
	memset(&cfg, 0, sizeof(cfg));
	cfg.ops = &f.ops;
	cfg.backend = &f;
	cfg.max_vcpus = FAKE_MAX_VCPUS;
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sa, &len) ||
	    (h.tool = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(h.tool, (struct sockaddr *)&sa, sizeof(sa)) ||
	    (h.vmm = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0 || kvmi_server_create(&cfg, &h.srv) ||
	    pthread_create(&h.thread, NULL, serve, &h)) {
		tap_skip("no TCP loopback", "KVMI_X_MAP_MEMORY over TCP");
		if (l >= 0)
			close(l);
		fake_destroy(&f);
		return;
	}
	close(l);
	h.fake = &f;
	h.running = true;
	while (!kvmi_server_connected(h.srv))
		usleep(100);
	tap_ok(check_cmd(&h, KVMI_X_MAP_MEMORY) == -KVM_EOPNOTSUPP,
	       "CHECK_COMMAND KVMI_X_MAP_MEMORY over TCP: EOPNOTSUPP");
	tap_ok(get_token(&h, &t) == 0, "GET_MAP_TOKEN over TCP still works");
	req.token = t;
	tap_ok(x_map(&h, &req, sizeof(req), NULL, &fd) == -KVM_EOPNOTSUPP && fd < 0 && map_calls == 0,
	       "redeeming over TCP: EOPNOTSUPP, backend not called");
	tap_ok(kvmi_map_tokens_redeem(&tokens, &t) == 0, "...and the token was not spent by it");
	h_stop(&h);
	fake_destroy(&f);
}

int main(void)
{
	uint8_t page[4096];

	ram_fd = memfd_create("fake-ram", MFD_CLOEXEC);
	if (ram_fd < 0 || ftruncate(ram_fd, FILE_SIZE)) {
		printf("1..0 # SKIP no memfd\n");
		return 0;
	}
	/* Markers: page 2 starts with 0x22, page 4 ends with 0x44. */
	memset(page, 0, sizeof(page));
	page[0] = 0x22;
	if (pwrite(ram_fd, page, 1, 0x2000) != 1)
		return 1;
	page[0] = 0x44;
	if (pwrite(ram_fd, page, 1, 0x4fff) != 1)
		return 1;
	test_token_table();
	test_redeem();
	test_policy_and_ops();
	test_not_unix();
	close(ram_fd);
	return tap_done();
}
