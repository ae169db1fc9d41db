/* SPDX-License-Identifier: MIT */
/*
 * events.c - VMM->tool events and the tool's replies.
 *
 * A vCPU thread raises an event with kvmi_vcpu_event(): the message is the
 * common header (struct kvmi_event, 544 bytes, state from the backend)
 * plus the event-specific part. The vCPU then waits; the introspection
 * thread validates the EVENT_REPLY (seq, size, padding; a shorter
 * specific part is zero-filled, a longer one closes the connection) and
 * wakes it. A reply is acted upon only once every command the tool sent
 * for that vCPU before it has run, so "SET_REGISTERS + EVENT_REPLY"
 * batches behave. When the tool goes away every waiter continues as if it
 * had answered CONTINUE.
 *
 * Lock order: a backend may call the wait predicate under its own lock, so
 * the server never calls a backend op while holding srv->lock.
 */
#include "internal.h"
#include "../common/spin_wait.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define EVENT_DATA_MAX 64u

size_t kvmi_srv_event_encode(void *buf, uint32_t seq, uint16_t vcpu, uint8_t event,
			 const struct kvmi_event_arch *arch, const void *data, size_t len)
{
	struct kvmi_msg_hdr hdr = {
		.id = KVMI_EVENT,
		.size = (uint16_t)(sizeof(struct kvmi_event) + len),
		.seq = seq,
	};
	struct kvmi_event ev;
	uint8_t *p = buf;

	memset(&ev, 0, sizeof(ev));
	ev.size = sizeof(ev);
	ev.vcpu = vcpu;
	ev.event = event;
	if (arch) {
		ev.arch = *arch;
		ev.arch.padding1 = 0;
		ev.arch.padding2 = 0;
	}
	memcpy(p, &hdr, sizeof(hdr));
	memcpy(p + sizeof(hdr), &ev, sizeof(ev));
	if (len)
		memcpy(p + sizeof(hdr) + sizeof(ev), data, len);
	return sizeof(hdr) + sizeof(ev) + len;
}

static void wake(struct kvmi_server *srv, unsigned vcpu)
{
	if (srv->ops->wait_reply) {
		srv->ops->wake_vcpu(srv->b, vcpu);
		return;
	}
	kvmi_mutex_lock(&srv->lock);
	pthread_cond_broadcast(&srv->vcpus[vcpu].cond);
	kvmi_mutex_unlock(&srv->lock);
}

bool kvmi_vcpu_event_enabled(struct kvmi_server *srv, unsigned vcpu, unsigned event)
{
	if (event >= KVMI_NUM_EVENTS)
		return false;
	/* UNHOOK, CREATE_VCPU: switched on for the whole VM */
	if (!ks_is_vcpu_event(event))
		return atomic_load(&srv->vm_events) & (1ull << event);
	if (vcpu >= srv->cfg.max_vcpus)
		return false;
	return atomic_load(&srv->vcpus[vcpu].events) & (1ull << event);
}

/* Sent without CONTROL_EVENTS: one per PAUSE_VCPU / INJECT_EXCEPTION. */
static bool always_on(unsigned event)
{
	return event == KVMI_EVENT_PAUSE_VCPU || event == KVMI_EVENT_TRAP;
}

struct wait_ctx {
	struct kvmi_server *srv;
	struct kvmi_vcpu_state *v;
};

static bool reply_ready_locked(const struct kvmi_vcpu_state *v)
{
	return v->aborted || (v->replied && v->jobs == 0);
}

static bool reply_ready(void *opaque)
{
	struct wait_ctx *w = opaque;
	bool done;

	kvmi_mutex_lock(&w->srv->lock);
	done = reply_ready_locked(w->v);
	kvmi_mutex_unlock(&w->srv->lock);
	return done;
}

void ks_job_done(struct kvmi_server *srv, unsigned vcpu, uint64_t session)
{
	struct kvmi_vcpu_state *v = &srv->vcpus[vcpu];
	bool notify = false;

	kvmi_mutex_lock(&srv->lock);
	if (srv->connected && srv->session == session && v->jobs) {
		v->jobs--;
		notify = !v->jobs && v->waiting && v->replied;
	}
	kvmi_mutex_unlock(&srv->lock);
	if (notify)
		wake(srv, vcpu);
}

/*
 * rx_lock held: act on the event replies at the head of the stream and
 * read more while only replies come.  Stops (true) at anything else, at
 * the end of the stream or on an error: the introspection thread takes
 * over from there.
 */
static bool take_replies(struct kvmi_server *srv, uint64_t session)
{
	/* aligned copy: the handlers read the payload through structs */
	union {
		uint64_t align;
		uint8_t b[sizeof(struct kvmi_vcpu_hdr) + sizeof(struct kvmi_event_reply) +
			  sizeof(struct kvmi_event_pf_reply) + 64];
	} buf;
	struct kvmi_msg_hdr hdr;
	const uint8_t *payload;
	bool read_once = false;

	for (;;) {
		if (ks_rx_head(srv, &hdr, &payload)) {
			if (hdr.id != KVMI_EVENT_REPLY || hdr.size > sizeof(buf.b))
				return true;
			memset(buf.b, 0, sizeof(buf.b));
			memcpy(buf.b, payload, hdr.size);
			ks_rx_consume(srv, sizeof(hdr) + hdr.size);
			if (ks_handle_event_reply(srv, &hdr, buf.b) == KVMI_CLOSE) {
				srv->rx_proto_error = true;
				ks_drop_connection(srv, session);
				return true;
			}
			continue;
		}
		/* something else has started: not ours */
		if (kvmi_proto_frame_hdr(srv->inbuf + srv->in_start, srv->in_end - srv->in_start,
					 &hdr) &&
		    (hdr.id != KVMI_EVENT_REPLY || hdr.size > sizeof(buf.b)))
			return true;
		if (read_once)
			return false;   /* nothing more yet: look again later */
		switch (ks_rx_fill(srv, srv->rfd)) {
		case -EAGAIN:
			return false;
		case 0:
			return true;    /* EOF: the introspection thread ends the session */
		default:
			if (srv->in_end == srv->in_start)
				return true;
			read_once = true;
		}
	}
}

/*
 * Spins for the reply, reading the stream itself (see stream.c), for at
 * most the KVMI_SPIN_US budget.  True when the reply is there; false to
 * fall back to the sleeping wait, with the introspection thread reading.
 * Bytes this vCPU read but did not act upon (a command behind the reply,
 * say) are the introspection thread's: it is kicked, as it may sleep in
 * poll() on a socket that no longer has them.
 */
static bool spin_for_reply(struct kvmi_server *srv, struct kvmi_vcpu_state *v, uint64_t session,
			   uint64_t budget_ns)
{
	uint64_t end = kvmi_spin_now_ns() + budget_ns;
	bool done = false, handover = false;

	for (unsigned i = 1;; i++) {
		kvmi_mutex_lock(&srv->lock);
		done = reply_ready_locked(v);
		/* commands for this vCPU run in the sleeping wait */
		handover = !done && v->jobs;
		kvmi_mutex_unlock(&srv->lock);
		if (done || handover)
			break;
		if (kvmi_mutex_trylock(&srv->rx_lock) == 0) {
			handover = take_replies(srv, session);
			kvmi_mutex_unlock(&srv->rx_lock);
			if (handover) {
				ks_kick_intro(srv);
				break;
			}
		}
		/* each turn makes a system call: yield more often than
		 * kvmi_spin_relax() would */
		kvmi_spin_relax(i * 8);
		if (kvmi_spin_now_ns() >= end)
			break;
	}
	kvmi_mutex_lock(&srv->lock);
	done = reply_ready_locked(v);
	kvmi_mutex_unlock(&srv->lock);
	if (!handover) {
		kvmi_mutex_lock(&srv->rx_lock);
		handover = srv->in_end != srv->in_start;
		kvmi_mutex_unlock(&srv->rx_lock);
		if (handover)
			ks_kick_intro(srv);
	}
	return done;
}

/* Is event `event` of `vcpu` to be sent at all? 1 if so, 0 if not, or
 * -EINVAL for a request no tool could answer. */
static int event_wanted(struct kvmi_server *srv, unsigned vcpu, unsigned event, size_t len, bool have_arch)
{
	if (vcpu >= srv->cfg.max_vcpus || event >= KVMI_NUM_EVENTS ||
	    !kvmi_proto_event_needs_reply(event) || len > EVENT_DATA_MAX)
		return -EINVAL;
	if (!always_on(event) && !kvmi_vcpu_event_enabled(srv, vcpu, event))
		return 0;
	if (!kvmi_policy_event_allowed(&srv->policy, event) || (!have_arch && !srv->ops->get_event_arch))
		return 0;
	return kvmi_server_connected(srv);
}

/* Marks v as waiting for the reply to a new event: 1 with its seq and
 * session, 0 when nobody is connected, -EBUSY when v already waits. */
static int begin_wait(struct kvmi_server *srv, struct kvmi_vcpu_state *v, unsigned event,
		      size_t rpl_len, uint32_t *seq, uint64_t *session)
{
	int ret = 1;

	kvmi_mutex_lock(&srv->lock);
	if (!srv->connected) {
		ret = 0;
	} else if (v->waiting) {
		ret = -EBUSY;
	} else {
		*seq = ++srv->ev_seq;
		*session = srv->session;
		v->waiting = true;
		v->replied = false;
		v->aborted = false;
		v->regs_pending = false;
		v->event = (uint8_t)event;
		v->seq = *seq;
		v->rpl_len = rpl_len < sizeof(v->rpl) ? rpl_len : sizeof(v->rpl);
		memset(v->rpl, 0, v->rpl_len);
	}
	kvmi_mutex_unlock(&srv->lock);
	return ret;
}

/*
 * Sends the event and, when this vCPU may read the stream itself, spins
 * for the reply (*got). The reader slot is taken before the event goes
 * out, so that the introspection thread keeps off the socket when the
 * reply comes. Only the one event in flight spins: with several vCPUs
 * waiting at once, spinners would take the CPUs the tool and the other
 * vCPUs need (measured: 4 vCPUs on 2 CPUs, p99 from 0.3 to 5 ms).
 */
static int send_event(struct kvmi_server *srv, struct kvmi_vcpu_state *v, uint64_t session,
		      const uint8_t *msg, size_t n, bool *got)
{
	uint64_t spin_ns = kvmi_spin_budget_ns();
	bool direct = spin_ns && srv->rx_socket && !atomic_load(&srv->vcpu_sleepers) &&
		      kvmi_spin_slot_get(&srv->vcpu_readers);
	int err = ks_send_msg(srv, session, (const void *)msg, msg + sizeof(struct kvmi_msg_hdr),
			      n - sizeof(struct kvmi_msg_hdr), NULL, 0);

	*got = false;
	if (direct) {
		*got = !err && spin_for_reply(srv, v, session, spin_ns);
		/* The last reader to leave hands the socket back to the
		 * introspection thread if a vCPU sleeps on a reply. */
		if (atomic_fetch_sub(&srv->vcpu_readers, 1) == 1 && atomic_load(&srv->vcpu_sleepers))
			ks_kick_intro(srv);
	}
	return err;
}

/*
 * Until the reply is there (spinning got it already, or a command queued
 * for this vCPU since still has to run) or the tool goes. A vCPU that
 * sleeps with no reader left (its own spin ended, or the last reader left
 * before it saw us) wakes the introspection thread itself: that may be
 * parked.
 */
static int wait_for_reply(struct kvmi_server *srv, unsigned vcpu, struct kvmi_vcpu_state *v,
			  bool got)
{
	struct wait_ctx w = { .srv = srv, .v = v };
	int err = 0;

	if (!got) {
		atomic_fetch_add(&srv->vcpu_sleepers, 1);
		if (!atomic_load(&srv->vcpu_readers) && !reply_ready(&w))
			ks_kick_intro(srv);
	}
	if (srv->ops->wait_reply) {
		err = srv->ops->wait_reply(srv->b, vcpu, reply_ready, &w);
		if (err && err != -EINTR)
			ks_log(srv, KVMI_SRV_LOG_INFO, "vCPU %u stopped waiting for a reply", vcpu);
	} else {
		kvmi_mutex_lock(&srv->lock);
		while (!reply_ready_locked(v))
			kvmi_cond_wait(&v->cond, &srv->lock);
		kvmi_mutex_unlock(&srv->lock);
	}
	if (!got)
		atomic_fetch_sub(&srv->vcpu_sleepers, 1);
	return err == -EINTR ? -EINTR : 0;
}

/* The wait is over: what the tool answered, if it did, into res; v is
 * free for the next event. The registers of a SET_REGISTERS that came
 * with the reply go to *regs (true). */
static bool end_wait(struct kvmi_server *srv, struct kvmi_vcpu_state *v,
		     struct kvmi_event_result *res, struct kvmi_x86_regs *regs, void *rpl, size_t rpl_len)
{
	bool set_regs = false;

	kvmi_mutex_lock(&srv->lock);
	if (v->replied && !v->aborted && v->jobs == 0) {
		res->delivered = true;
		res->action = v->action;
		if (rpl_len)
			memcpy(rpl, v->rpl, rpl_len < v->rpl_len ? rpl_len : v->rpl_len);
		if (v->regs_pending) {
			*regs = v->regs;
			set_regs = true;
		}
	}
	v->waiting = false;
	v->replied = false;
	v->aborted = false;
	v->regs_pending = false;
	v->rpl_len = 0;
	kvmi_mutex_unlock(&srv->lock);
	return set_regs;
}

/* The reply is there (or never will be): act on it. */
static int finish_event(struct kvmi_server *srv, unsigned vcpu, struct kvmi_vcpu_state *v, unsigned event,
			const void *data, size_t len, void *rpl, size_t rpl_len, struct kvmi_event_result *res)
{
	struct kvmi_x86_regs regs;
	bool set_regs;

	if (rpl_len)
		memset(rpl, 0, rpl_len);
	set_regs = end_wait(srv, v, res, &regs, rpl, rpl_len);

	if (res->delivered && res->action > KVMI_EVENT_ACTION_CRASH) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "unsupported action %u for event %s; continuing",
		       res->action, kvmi_proto_event_name(event));
		res->action = KVMI_EVENT_ACTION_CONTINUE;
	}
	if (res->delivered && kvmi_policy_filter_reply(&srv->policy, event, data, len, rpl, rpl_len))
		ks_log(srv, KVMI_SRV_LOG_WARN, "%s reply: a write the policy denies was dropped",
		       kvmi_proto_event_name(event));
	if (set_regs && srv->ops->set_registers)
		res->regs_applied = srv->ops->set_registers(srv->b, vcpu, &regs) == 0;
	if (!res->delivered && rpl_len)
		memset(rpl, 0, rpl_len);
	return 0;
}

int kvmi_vcpu_event(struct kvmi_server *srv, unsigned vcpu, unsigned event,
		    const void *data, size_t len, void *rpl, size_t rpl_len,
		    struct kvmi_event_result *res)
{
	return kvmi_vcpu_event_arch(srv, vcpu, event, NULL, data, len, rpl, rpl_len, res);
}

int kvmi_vcpu_event_arch(struct kvmi_server *srv, unsigned vcpu, unsigned event,
			 const struct kvmi_event_arch *given, const void *data, size_t len,
			 void *rpl, size_t rpl_len, struct kvmi_event_result *res)
{
	uint8_t msg[sizeof(struct kvmi_msg_hdr) + sizeof(struct kvmi_event) + EVENT_DATA_MAX];
	struct kvmi_vcpu_state *v;
	struct kvmi_event_arch arch;
	uint64_t session;
	uint32_t seq;
	bool got;
	size_t n;
	int err;

	res->action = KVMI_EVENT_ACTION_CONTINUE;
	res->delivered = false;
	res->regs_applied = false;
	if (rpl_len)
		memset(rpl, 0, rpl_len);
	err = event_wanted(srv, vcpu, event, len, given != NULL);
	if (err <= 0)
		return err;
	if (given) {
		arch = *given;
	} else {
		memset(&arch, 0, sizeof(arch));
		err = srv->ops->get_event_arch(srv->b, vcpu, &arch);
		if (err)
			return err;
	}
	v = &srv->vcpus[vcpu];
	err = begin_wait(srv, v, event, rpl_len, &seq, &session);
	if (err <= 0)
		return err;

	n = kvmi_srv_event_encode(msg, seq, (uint16_t)vcpu, (uint8_t)event, &arch, data, len);
	err = send_event(srv, v, session, msg, n, &got);
	if (!err && wait_for_reply(srv, vcpu, v, got) == -EINTR) {
		kvmi_mutex_lock(&srv->lock);
		v->suspended = true;
		kvmi_mutex_unlock(&srv->lock);
		return -EINTR;
	}
	return finish_event(srv, vcpu, v, event, data, len, rpl, rpl_len, res);
}

int kvmi_vcpu_event_resume(struct kvmi_server *srv, unsigned vcpu, void *rpl, size_t rpl_len,
			   struct kvmi_event_result *res)
{
	struct kvmi_vcpu_state *v = &srv->vcpus[vcpu];
	bool suspended;
	unsigned event;

	kvmi_mutex_lock(&srv->lock);
	suspended = v->suspended;
	v->suspended = false;
	event = v->event;
	kvmi_mutex_unlock(&srv->lock);
	if (!suspended)
		return -ENOENT;
	res->action = KVMI_EVENT_ACTION_CONTINUE;
	res->delivered = false;
	res->regs_applied = false;
	if (wait_for_reply(srv, vcpu, v, false) == -EINTR) {
		kvmi_mutex_lock(&srv->lock);
		v->suspended = true;
		kvmi_mutex_unlock(&srv->lock);
		return -EINTR;
	}
	return finish_event(srv, vcpu, v, event, NULL, 0, rpl, rpl_len, res);
}


/*
 * EVENT_REPLY: any violation (unknown vCPU, nobody waiting, wrong seq,
 * padding, longer than expected) leaves the tool and the VMM out of step,
 * so the connection is closed; the waiting vCPU then continues.
 */
int ks_handle_event_reply(struct kvmi_server *srv, const struct kvmi_msg_hdr *hdr,
			    const uint8_t *payload)
{
	const struct kvmi_vcpu_hdr *vh = (const void *)payload;
	const struct kvmi_event_reply *er = (const void *)(payload + sizeof(*vh));
	const uint8_t *spec = payload + sizeof(*vh) + sizeof(*er);
	size_t spec_len, expected;
	struct kvmi_vcpu_state *v;
	const char *why = NULL;
	bool notify;

	if (hdr->size < sizeof(*vh) + sizeof(*er)) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "event reply too short (%u); closing", hdr->size);
		return KVMI_CLOSE;
	}
	if (vh->padding1 || vh->padding2 || er->padding1 || er->padding2) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "event reply with non-zero padding; closing");
		return KVMI_CLOSE;
	}
	if (vh->vcpu >= srv->cfg.max_vcpus) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "event reply for unknown vCPU %u; closing", vh->vcpu);
		return KVMI_CLOSE;
	}
	spec_len = hdr->size - sizeof(*vh) - sizeof(*er);
	v = &srv->vcpus[vh->vcpu];

	kvmi_mutex_lock(&srv->lock);
	expected = kvmi_proto_event_reply_size(v->event);
	if (!v->waiting || v->replied || v->aborted)
		why = "no event pending";
	else if (v->seq != hdr->seq)
		why = "wrong seq";
	else if (spec_len > expected)
		why = "longer than expected";
	if (!why && v->event == KVMI_EVENT_PF) {
		struct kvmi_event_pf_reply pf = { 0 };

		memcpy(&pf, spec, spec_len);
		/* byte 12 (libkvmi: singlestep, K7: must be 0) is ignored */
		if (pf.ctx_size > KVMI_PF_CTX_DATA_SIZE || pf.padding)
			why = "bad PF reply";
	}
	if (why) {
		kvmi_mutex_unlock(&srv->lock);
		ks_log(srv, KVMI_SRV_LOG_WARN, "event reply seq %u vCPU %u: %s; closing",
			 hdr->seq, vh->vcpu, why);
		return KVMI_CLOSE;
	}
	if (v->rpl_len)
		memcpy(v->rpl, spec, spec_len < v->rpl_len ? spec_len : v->rpl_len);
	/* er->event is not checked: the kernel only traces it. */
	v->action = er->action;
	v->replied = true;
	notify = v->jobs == 0;
	kvmi_mutex_unlock(&srv->lock);
	if (notify)
		wake(srv, vh->vcpu);
	return 0;
}

void ks_events_session_end(struct kvmi_server *srv)
{
	unsigned i, n = srv->cfg.max_vcpus;
	bool waiting;

	for (i = 0; i < n; i++) {
		struct kvmi_vcpu_state *v = &srv->vcpus[i];

		kvmi_mutex_lock(&srv->lock);
		waiting = v->waiting;
		/* A reply that arrived before the tool left (and has no
		 * commands to wait for) stands: a veto followed at once by
		 * a disconnect must still veto. */
		if (waiting && !(v->replied && v->jobs == 0))
			v->aborted = true;
		v->jobs = 0;
		v->pauses = 0;
		atomic_store(&v->events, 0);
		kvmi_mutex_unlock(&srv->lock);
		if (waiting)
			wake(srv, i);
	}
	atomic_store(&srv->vm_events, 0);
}

/* A VM event from the introspection thread (no vCPU state). */
static int send_vm_event(struct kvmi_server *srv, unsigned event, const void *data, size_t len,
			 uint64_t want_session, uint64_t *session_out)
{
	uint8_t msg[sizeof(struct kvmi_msg_hdr) + sizeof(struct kvmi_event) + EVENT_DATA_MAX];
	uint64_t session;
	uint32_t seq;
	size_t n;

	kvmi_mutex_lock(&srv->lock);
	if (!srv->connected || (want_session && want_session != srv->session)) {
		kvmi_mutex_unlock(&srv->lock);
		return -ENOTCONN;
	}
	seq = ++srv->ev_seq;
	session = srv->session;
	kvmi_mutex_unlock(&srv->lock);
	if (session_out)
		*session_out = session;
	n = kvmi_srv_event_encode(msg, seq, 0, (uint8_t)event, NULL, data, len);
	return ks_send_msg(srv, session, (const void *)msg, msg + sizeof(struct kvmi_msg_hdr),
			     n - sizeof(struct kvmi_msg_hdr), NULL, 0);
}

int ks_send_cmd_error(struct kvmi_server *srv, const struct kvmi_reply_ctx *ctx, int err)
{
	struct kvmi_event_cmd_error ce = {
		.err = err,
		.msg_seq = ctx->seq,
		.msg_id = ctx->id,
	};

	return send_vm_event(srv, KVMI_EVENT_CMD_ERROR, &ce, sizeof(ce), ctx->session, NULL);
}

int kvmi_server_unhook(struct kvmi_server *srv, int timeout_ms)
{
	struct timespec ts;
	uint64_t session;
	int err;

	if (!kvmi_vcpu_event_enabled(srv, 0, KVMI_EVENT_UNHOOK) ||
	    !kvmi_policy_event_allowed(&srv->policy, KVMI_EVENT_UNHOOK))
		return -ENOENT;
	err = send_vm_event(srv, KVMI_EVENT_UNHOOK, NULL, 0, 0, &session);
	if (err)
		return err == -ENOTCONN ? -ENOENT : err;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	err = 0;
	kvmi_mutex_lock(&srv->lock);
	while (srv->connected && srv->session == session && !err)
		err = kvmi_cond_timedwait(&srv->cond, &srv->lock, &ts);
	err = srv->connected && srv->session == session ? -ETIMEDOUT : 0;
	kvmi_mutex_unlock(&srv->lock);
	return err;
}
