/* SPDX-License-Identifier: MIT */
/*
 * fuzz_decoder.c - libFuzzer target for the protocol server's message
 * path: framing, dispatch, every command's validation and handler, the
 * CONTROL_CMD_RESPONSE state machine and EVENT_REPLY validation.
 *
 * Input byte 0 chooses the setup (bit 0: a vCPU waits for a CR event
 * reply, bits 1-2: on which vCPU; bit 3: threaded backend, whose jobs a
 * thread standing in for the vCPU loops runs; bit 4: a unix socketpair
 * instead of pipes, so that KVMI_X_MAP_MEMORY gets past its AF_UNIX check
 * and its replies carry descriptors); the rest is the byte stream a tool
 * sends after the handshake. The server runs on the real framing code,
 * with the scripted fake backend of the unit tests answering every op.
 */
#include "test_server_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct run {
	struct kvmi_server *srv;
	/* pipes: tool writes in[1], server reads in[0], writes out[1], tool
	 * reads out[0]; socketpair: in[1] = out[0] (tool), in[0] = out[1] */
	int in[2], out[2];
	bool sock;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t out_bytes;
};

static void *serve_thread(void *opaque)
{
	struct run *r = opaque;

	kvmi_server_serve(r->srv, r->in[0], r->out[1]);
	return NULL;
}

static void *drain_thread(void *opaque)
{
	struct run *r = opaque;
	char buf[4096];

	ssize_t n;

	/* read(): descriptors a reply carries are dropped by the kernel. */
	while ((n = read(r->out[0], buf, sizeof(buf))) > 0) {
		pthread_mutex_lock(&r->lock);
		r->out_bytes += (size_t)n;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

/* Threaded backend: plays the vCPU threads' run loops. */
struct runner {
	struct kvmi_backend *fake;
	atomic_bool stop;
};

static void *runner_thread(void *opaque)
{
	struct runner *rn = opaque;

	while (!atomic_load(&rn->stop)) {
		unsigned v, n = 0;

		for (v = 0; v < 4; v++)
			n += fake_run_jobs(rn->fake, v);
		if (!n)
			usleep(20);
	}
	return NULL;
}

struct waiter {
	struct kvmi_server *srv;
	struct kvmi_backend *fake;
	unsigned vcpu;
};

static void *event_thread(void *opaque)
{
	static const struct kvmi_event_cr cr = { .cr = 3, .old_value = 1, .new_value = 2 };
	struct waiter *w = opaque;
	struct kvmi_event_cr_reply rpl;
	struct kvmi_event_result res;

	kvmi_vcpu_event(w->srv, w->vcpu, KVMI_EVENT_CR, &cr, sizeof(cr), &rpl, sizeof(rpl), &res);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t script[8192];
	struct kvmi_server_config cfg = { .max_vcpus = 4 };
	struct kvmi_backend fake;
	struct waiter w;
	struct run r;
	pthread_t serve, drain, ev, jobs;
	struct runner rn;
	uint8_t setup;
	bool event;
	const uint8_t *p;
	size_t left;

	if (!size)
		return 0;
	setup = data[0];
	event = setup & 1;
	fake_init(&fake);
	if (setup & 8)
		fake_make_threaded(&fake);
	memset(script, 0x5a, sizeof(script));
	fake.script = script;
	fake.script_len = sizeof(script);
	cfg.ops = &fake.ops;
	cfg.backend = &fake;
	if (kvmi_server_create(&cfg, &r.srv))
		abort();
	r.sock = setup & 0x10;
	if (r.sock) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			abort();
		r.in[1] = r.out[0] = sv[0];
		r.in[0] = r.out[1] = sv[1];
	} else if (pipe2(r.in, O_CLOEXEC) || pipe2(r.out, O_CLOEXEC)) {
		abort();
	}
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	r.out_bytes = 0;
	pthread_create(&drain, NULL, drain_thread, &r);
	rn.fake = &fake;
	atomic_init(&rn.stop, false);
	if (setup & 8)
		pthread_create(&jobs, NULL, runner_thread, &rn);
	pthread_create(&serve, NULL, serve_thread, &r);

	if (event) {
		/* Enable CR on the vCPU, then raise the event; once its bytes
		 * were written the vCPU is waiting for a reply. */
		struct {
			struct kvmi_msg_hdr h;
			struct kvmi_vcpu_hdr v;
			struct kvmi_control_events c;
		} en = { { KVMI_CONTROL_EVENTS, 16, 1 }, { (uint16_t)((setup >> 1) & 3), 0, 0 },
			 { KVMI_EVENT_CR, 1, 0, 0 } };

		if (write(r.in[1], &en, sizeof(en)) != sizeof(en))
			abort();
		pthread_mutex_lock(&r.lock);
		while (r.out_bytes < 16)
			pthread_cond_wait(&r.cond, &r.lock);
		pthread_mutex_unlock(&r.lock);
		w.srv = r.srv;
		w.fake = &fake;
		w.vcpu = en.v.vcpu;
		pthread_create(&ev, NULL, event_thread, &w);
		/* Once the CONTROL_EVENTS reply and the whole event are out,
		 * the vCPU waits for seq 1. */
		pthread_mutex_lock(&r.lock);
		while (r.out_bytes < 16 + 8 + sizeof(struct kvmi_event) + sizeof(struct kvmi_event_cr))
			pthread_cond_wait(&r.cond, &r.lock);
		pthread_mutex_unlock(&r.lock);
	}

	for (p = data + 1, left = size - 1; left;) {
		ssize_t n = r.sock ? send(r.in[1], p, left, MSG_NOSIGNAL) : write(r.in[1], p, left);

		if (n <= 0)
			break;    /* the server closed the stream */
		p += n;
		left -= (size_t)n;
	}
	if (r.sock)
		shutdown(r.in[1], SHUT_WR);
	else
		close(r.in[1]);
	pthread_join(serve, NULL);
	if (event)
		pthread_join(ev, NULL);
	if (setup & 8) {
		atomic_store(&rn.stop, true);
		pthread_join(jobs, NULL);
	}
	if (r.sock) {
		/* the server's end: the drain thread then sees EOF */
		close(r.in[0]);
		pthread_join(drain, NULL);
		close(r.in[1]);
	} else {
		close(r.in[0]);
		close(r.out[1]);
		pthread_join(drain, NULL);
		close(r.out[0]);
	}
	pthread_cond_destroy(&r.cond);
	pthread_mutex_destroy(&r.lock);
	fake_destroy(&fake);        /* cancels queued jobs: before the server goes */
	kvmi_server_destroy(r.srv);
	return 0;
}
