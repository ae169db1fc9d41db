/* Scripted fake VMM for the client-library unit tests (test_client_fake.h). */
#include "test_client_fake.h"
#include "test_client_json.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int fake_init(struct fake_vmm *f)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	f->fd = sv[0];
	f->tool_fd = sv[1];
	f->timeout_ms = 3000;
	f->ok = true;
	if (pipe2(f->gate, O_CLOEXEC) || pipe2(f->notify, O_CLOEXEC))
		return -errno;
	return 0;
}

int fake_init_connect(struct fake_vmm *f, const char *addr)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path;
	socklen_t len;
	size_t n;
	int fd;

	memset(f, 0, sizeof(*f));
	f->fd = f->tool_fd = -1;
	if (strncmp(addr, "unix:", 5))
		return -EINVAL;
	path = addr + 5;
	n = strlen(path);
	if (n >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@') {
		sun.sun_path[0] = 0;
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		len = sizeof(sun);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, len)) {
		int err = -errno;

		close(fd);
		return err;
	}
	f->fd = fd;
	f->timeout_ms = 3000;
	f->ok = true;
	if (pipe2(f->gate, O_CLOEXEC) || pipe2(f->notify, O_CLOEXEC))
		return -errno;
	return 0;
}

static struct fake_step *add(struct fake_vmm *f, enum fake_op op, const char *what)
{
	struct fake_step *s;

	if (f->nsteps == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		f->steps = realloc(f->steps, f->cap * sizeof(*f->steps));
		if (!f->steps)
			abort();
	}
	s = &f->steps[f->nsteps++];
	memset(s, 0, sizeof(*s));
	s->op = op;
	s->fd = -1;
	snprintf(s->what, sizeof(s->what), "%s", what ? what : "");
	return s;
}

static void add_bytes(struct fake_vmm *f, enum fake_op op, const void *b, size_t len,
		      const char *what)
{
	struct fake_step *s = add(f, op, what);

	s->bytes = malloc(len ? len : 1);
	if (!s->bytes)
		abort();
	if (len)
		memcpy(s->bytes, b, len);
	s->len = len;
}

void fake_expect(struct fake_vmm *f, const void *bytes, size_t len, const char *what)
{
	if (len)
		add_bytes(f, FAKE_EXPECT, bytes, len, what);
}

void fake_send(struct fake_vmm *f, const void *bytes, size_t len, const char *what)
{
	if (len)
		add_bytes(f, FAKE_SEND, bytes, len, what);
}

void fake_send_fd(struct fake_vmm *f, const void *bytes, size_t len, int fd, const char *what)
{
	add_bytes(f, FAKE_SEND_FD, bytes, len, what);
	f->steps[f->nsteps - 1].fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (f->steps[f->nsteps - 1].fd < 0)
		abort();
}

void fake_expect_hex(struct fake_vmm *f, const char *hex, const char *what)
{
	size_t len;
	uint8_t *b = hex_decode(hex, &len);

	fake_expect(f, b, len, what);
	free(b);
}

void fake_send_hex(struct fake_vmm *f, const char *hex, const char *what)
{
	size_t len;
	uint8_t *b = hex_decode(hex, &len);

	fake_send(f, b, len, what);
	free(b);
}

void fake_sleep(struct fake_vmm *f, unsigned int ms)
{
	add(f, FAKE_SLEEP_MS, "sleep")->len = ms;
}

void fake_shutdown(struct fake_vmm *f)
{
	add(f, FAKE_SHUTDOWN, "shutdown");
}

void fake_expect_eof(struct fake_vmm *f)
{
	add(f, FAKE_EXPECT_EOF, "eof");
}

void fake_gate(struct fake_vmm *f)
{
	add(f, FAKE_GATE, "gate");
}

void fake_notify(struct fake_vmm *f)
{
	add(f, FAKE_NOTIFY, "notify");
}

bool fake_wait_notify(struct fake_vmm *f)
{
	struct pollfd pfd = { .fd = f->notify[0], .events = POLLIN };
	char c;

	return poll(&pfd, 1, 10000) == 1 && read(f->notify[0], &c, 1) == 1;
}

void fake_open_gate(struct fake_vmm *f)
{
	char c = 1;

	if (write(f->gate[1], &c, 1) != 1)
		abort();
}

static int read_some(int fd, uint8_t *buf, size_t len, int timeout_ms, size_t *got)
{
	*got = 0;
	while (*got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int r = poll(&pfd, 1, timeout_ms);

		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		n = recv(fd, buf + *got, len - *got, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		*got += (size_t)n;
	}
	return 0;
}

static void fail(struct fake_vmm *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct fake_vmm *f, const char *fmt, ...)
{
	va_list ap;

	f->ok = false;
	va_start(ap, fmt);
	vsnprintf(f->error, sizeof(f->error), fmt, ap);
	va_end(ap);
}

static void hexdump_around(char *out, size_t cap, const uint8_t *b, size_t len, size_t at)
{
	size_t start = at > 8 ? at - 8 : 0, end = at + 16 < len ? at + 16 : len;
	size_t o = 0;

	out[0] = 0;
	for (size_t i = start; i < end && o + 4 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02x", b[i]);
}

static bool run_expect(struct fake_vmm *f, const struct fake_step *s)
{
	uint8_t *buf = malloc(s->len);
	size_t got = 0;
	int err;

	if (!buf)
		abort();
	err = read_some(f->fd, buf, s->len, f->timeout_ms, &got);
	for (size_t i = 0; i < got; i++) {
		if (buf[i] != s->bytes[i]) {
			char want[80], have[80];

			hexdump_around(want, sizeof(want), s->bytes, s->len, i);
			hexdump_around(have, sizeof(have), buf, got, i);
			fail(f, "%s: byte %zu of %zu differs: want ..%s.. got ..%s..",
			     s->what, i, s->len, want, have);
			free(buf);
			return false;
		}
	}
	free(buf);
	if (err) {
		fail(f, "%s: got %zu of %zu expected bytes (%s)", s->what, got, s->len,
		     strerror(-err));
		return false;
	}
	return true;
}

static void *fake_script(struct fake_vmm *f);

static void *fake_main(void *arg)
{
	struct fake_vmm *f = arg;

	fake_script(f);
	/* A failed script hangs up, so that the tool fails fast too. */
	if (!f->ok)
		shutdown(f->fd, SHUT_RDWR);
	return NULL;
}

static void *fake_script(struct fake_vmm *f)
{
	for (size_t i = 0; i < f->nsteps; i++) {
		const struct fake_step *s = &f->steps[i];

		switch (s->op) {
		case FAKE_EXPECT:
			if (!run_expect(f, s))
				return NULL;
			break;
		case FAKE_SEND: {
			size_t off = 0;

			while (off < s->len) {
				ssize_t n = send(f->fd, s->bytes + off, s->len - off, MSG_NOSIGNAL);

				if (n < 0) {
					fail(f, "%s: send: %s", s->what, strerror(errno));
					return NULL;
				}
				off += (size_t)n;
			}
			break;
		}
		case FAKE_SEND_FD: {
			union {
				struct cmsghdr align;
				char buf[CMSG_SPACE(sizeof(int))];
			} ctl;
			struct iovec iov = { .iov_base = s->bytes, .iov_len = s->len };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
					     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
			struct cmsghdr *c;
			ssize_t n;

			memset(&ctl, 0, sizeof(ctl));
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &s->fd, sizeof(int));
			n = sendmsg(f->fd, &mh, MSG_NOSIGNAL);
			if (n != (ssize_t)s->len) {
				fail(f, "%s: sendmsg: %s", s->what, n < 0 ? strerror(errno) : "short");
				return NULL;
			}
			break;
		}
		case FAKE_SLEEP_MS: {
			struct timespec ts = { .tv_sec = (time_t)(s->len / 1000),
					       .tv_nsec = (long)(s->len % 1000) * 1000000 };
			nanosleep(&ts, NULL);
			break;
		}
		case FAKE_SHUTDOWN:
			shutdown(f->fd, SHUT_RDWR);
			break;
		case FAKE_GATE: {
			char c;
			struct pollfd pfd = { .fd = f->gate[0], .events = POLLIN };

			if (poll(&pfd, 1, 10000) != 1 || read(f->gate[0], &c, 1) != 1) {
				fail(f, "the test never opened the gate");
				return NULL;
			}
			break;
		}
		case FAKE_NOTIFY: {
			char c = 1;

			if (write(f->notify[1], &c, 1) != 1) {
				fail(f, "notify failed");
				return NULL;
			}
			break;
		}
		case FAKE_EXPECT_EOF: {
			uint8_t b;
			size_t got;
			int err = read_some(f->fd, &b, 1, f->timeout_ms, &got);

			if (err != -ECONNRESET) {
				fail(f, "expected the tool to close, got %s",
				     err ? strerror(-err) : "a byte");
				return NULL;
			}
			break;
		}
		}
		f->steps_done = i + 1;
	}
	return NULL;
}

int fake_start(struct fake_vmm *f)
{
	int err = pthread_create(&f->thread, NULL, fake_main, f);

	if (err)
		return -err;
	f->running = true;
	return 0;
}

bool fake_join(struct fake_vmm *f)
{
	if (f->running) {
		pthread_join(f->thread, NULL);
		f->running = false;
	}
	return f->ok && f->steps_done == f->nsteps;
}

size_t fake_drain(struct fake_vmm *f, uint8_t *buf, size_t cap, int ms)
{
	size_t got = 0;

	read_some(f->fd, buf, cap, ms, &got);
	return got;
}

void fake_destroy(struct fake_vmm *f)
{
	if (f->running) {
		shutdown(f->fd, SHUT_RDWR);
		fake_join(f);
	}
	for (size_t i = 0; i < f->nsteps; i++) {
		free(f->steps[i].bytes);
		if (f->steps[i].fd >= 0)
			close(f->steps[i].fd);
	}
	free(f->steps);
	if (f->fd >= 0)
		close(f->fd);
	if (f->gate[0] > 0) {
		close(f->gate[0]);
		close(f->gate[1]);
	}
	if (f->notify[0] > 0) {
		close(f->notify[0]);
		close(f->notify[1]);
	}
	/* tool_fd is owned by the library once handed over. */
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}
