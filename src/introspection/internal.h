/* SPDX-License-Identifier: MIT */
/*
 * internal.h - state and helpers shared by the files of the protocol
 * server. Not used outside src/introspection.
 */
#ifndef KVMI_INTROSPECTION_INTERNAL_H
#define KVMI_INTROSPECTION_INTERNAL_H

#include "introspection.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "lockorder.h"

/* PAUSE_VCPU replies held at most (a longer pause-all waits in parts). */
#define KS_PAUSE_BATCH 64

/* Handler result: close the connection (after any reply already sent). */
#define KVMI_CLOSE (-100000)

#define KVMI_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define KVMI_DEFAULT_SEND_TIMEOUT_MS      15000

/* How a reply must be treated; captured when the command is decoded, so a
 * command that runs later on a vCPU thread still obeys the
 * CONTROL_CMD_RESPONSE state it was received under. */
struct kvmi_reply_ctx {
	uint16_t id;
	uint32_t seq;
	uint64_t session;       /* replies for an older session are dropped */
	bool enabled;           /* CONTROL_CMD_RESPONSE: replies on */
	bool error_event;       /* replies off + flags bit0: failures -> CMD_ERROR */
};

/* A decoded command. For vCPU commands, req points after kvmi_vcpu_hdr. */
struct kvmi_cmd {
	struct kvmi_server *srv;
	const struct kvmi_cmd_desc *desc;
	unsigned vcpu;
	const void *req;
	size_t req_size;
	struct kvmi_reply_ctx rctx;
	bool close_after;       /* handler: close once the reply is out */
};

#define KVMI_CMD_ALWAYS_ALLOWED 0x01u   /* policy cannot deny it */
/* A vCPU-scoped command that runs on the introspection thread. Others run
 * where their scope says: VM commands there, vCPU commands on the vCPU's
 * thread (validated on the introspection thread first). */
#define KVMI_CMD_ON_INTRO       0x02u

/* How this server runs a command; what the wire says about it (scope,
 * sizes, reply data) is in the src/proto table. */
struct kvmi_cmd_desc {
	uint8_t flags;
	/* offsetof(struct kvmi_backend_ops, op) + 1, or 0 if none is needed */
	uint16_t op;
	/* [intro] size (KVMI_PROTO_VAR_REQ), padding and field checks.
	 * Returns 0, -KVM_E* (reply) or KVMI_CLOSE; may set
	 * cmd->close_after. */
	int (*validate)(struct kvmi_cmd *cmd);
	/* Does the work and replies itself (return 0), or returns the error
	 * to reply with. */
	int (*handle)(struct kvmi_cmd *cmd);
};

#define KVMI_OP(field) ((uint16_t)(offsetof(struct kvmi_backend_ops, field) + 1))

/* dispatch.c */
/* Introspection thread: check one message and run it or queue it for
 * its vCPU. 0, an I/O error, or KVMI_CLOSE. */
int ks_dispatch(struct kvmi_server *srv, const struct kvmi_msg_hdr *hdr, const uint8_t *payload);
const struct kvmi_cmd_desc *ks_cmd_lookup(unsigned id);
bool ks_backend_has_op(const struct kvmi_backend_ops *ops, uint16_t op);
/* 0, -KVM_ENOSYS, -KVM_EOPNOTSUPP: can this VMM run command id at all
 * (policy aside)? */
int ks_cmd_supported(struct kvmi_server *srv, unsigned id);
int ks_event_supported(struct kvmi_server *srv, unsigned id);
/* Ids CHECK_COMMAND may ask about: the KVMI range and our extensions. */
bool ks_is_known_id(unsigned id);
/* Event kinds, from the src/proto table: may CONTROL_VM_EVENTS /
 * CONTROL_EVENTS switch it? */
bool ks_is_vm_event(unsigned id);
bool ks_is_vcpu_event(unsigned id);

/* The longest event-specific reply part (PF: 24 bytes + its context data). */
#define KVMI_SRV_RPL_MAX 512
_Static_assert(sizeof(struct kvmi_event_pf_reply) <= KVMI_SRV_RPL_MAX, "the PF reply fits");

struct kvmi_vcpu_state {
	/* event in flight (under srv->lock) */
	bool waiting;
	bool replied;
	bool aborted;
	uint8_t event;
	uint8_t action;
	uint32_t seq;
	/* the reply's event-specific part, kept here until the vCPU takes it
	 * (the vCPU may be away from its wait: see suspended) */
	uint8_t rpl[KVMI_SRV_RPL_MAX];
	size_t rpl_len;
	bool regs_pending;
	/* the vCPU went back to its VMM while waiting (wait_reply said
	 * -EINTR): the event stays in flight, kvmi_vcpu_event_resume() waits on */
	bool suspended;
	struct kvmi_x86_regs regs;
	/* jobs queued and not yet run in this session: an event reply is
	 * only acted upon after the commands the tool sent before it */
	unsigned jobs;
	unsigned pauses;                /* PAUSE_VCPU requests not yet sent */
	atomic_uint_least64_t events;   /* CONTROL_EVENTS bits */
	/* used when ops->wait_reply is NULL */
	pthread_cond_t cond;
};

struct kvmi_server {
	struct kvmi_server_config cfg;
	const struct kvmi_backend_ops *ops;
	struct kvmi_backend *b;
	struct kvmi_policy policy;

	struct kvmi_mutex lock;         /* everything below unless noted */
	pthread_cond_t cond;            /* session end, unhook waiters */
	bool connected;
	atomic_bool live;               /* = connected, readable without the lock */
	bool dropped;                   /* connection shut down; stop dispatching */
	bool stopping;
	uint64_t session;               /* current session number, 0 = none */
	uint64_t nr_sessions;
	/* vCPU jobs of the current session whose handler runs now: the
	 * session ends only once they are done, so nothing a tool asked for
	 * lands after session_end() undid the tool's changes. */
	unsigned jobs_running;
	int rfd, wfd;
	int hs_fd;                      /* socket in handshake, or -1 */
	int stop_pipe[2];               /* wakes the run loop's sleeps */
	uint32_t ev_seq;
	bool replies_enabled;           /* introspection thread only */
	bool error_events;              /* introspection thread only */
	atomic_uint_least64_t vm_events;
	/* Replies to PAUSE_VCPU commands with wait, held until the vCPUs
	 * left guest mode (pause.c; ops->pause_wait).  Introspection thread
	 * only. */
	struct kvmi_reply_ctx pause_replies[KS_PAUSE_BATCH];
	unsigned nr_pause_replies;

	struct kvmi_mutex send_lock;    /* one whole message at a time */
	/*
	 * Replies the introspection thread makes while more requests wait in
	 * inbuf (pipelined READ_PHYSICAL, say) are gathered here and written
	 * with one system call when the batch ends; any other writer sends
	 * them first.  Under send_lock.
	 */
	uint8_t *out;
	size_t out_len;
	bool corked;                    /* introspection thread's replies go to out */
	pthread_t cork_thread;

	struct kvmi_vcpu_state *vcpus;  /* cfg.max_vcpus */

	uint8_t rbuf[KVMI_MSG_SIZE + 8];   /* introspection thread only */

	/*
	 * The tool's stream (see stream.c).
	 * Bytes read ahead of the current message (one read can bring many
	 * pipelined requests) wait in inbuf.  rx_lock covers inbuf and every
	 * read of rfd, and is held while a message is dispatched, so that
	 * messages act in stream order whoever read them.
	 */
	struct kvmi_mutex rx_lock;
	uint8_t inbuf[64 * 1024];
	size_t in_start, in_end;
	bool rx_socket;                 /* rfd takes recv(MSG_DONTWAIT) */
	bool rx_proto_error;            /* a vCPU closed the session over a bad reply */
	/* vCPU threads reading their replies themselves right now: the
	 * introspection thread keeps off the socket meanwhile, so that the
	 * tool's writes do not have to wake it. */
	atomic_uint vcpu_readers;
	/* vCPU threads asleep waiting for a reply: the last reader to leave
	 * wakes the introspection thread for them. */
	atomic_uint vcpu_sleepers;
	int kick_fd;                    /* eventfd: wakes the introspection thread */
};

/* Gathered replies of one batch of pipelined requests (see srv->out). */
#define KS_OUT_SIZE (256 * 1024)

/* pause.c: waits for the vCPUs of the PAUSE_VCPU commands whose replies
 * are held, then sends the replies (introspection thread, without
 * rx_lock: a vCPU that read the stream may need it to get out). */
int ks_pause_flush(struct kvmi_server *srv);

/* server.c */
void ks_log(struct kvmi_server *srv, enum kvmi_srv_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ks_drop_connection(struct kvmi_server *srv, uint64_t session);
/* Under srv->lock: is `session` the live, not dropped, session? */
bool ks_session_live_locked(struct kvmi_server *srv, uint64_t session);

/* send.c */
/* Whole message (header + parts) on the wire, if `session` is current. */
int ks_send_msg(struct kvmi_server *srv, uint64_t session, const struct kvmi_msg_hdr *hdr,
		  const void *p1, size_t l1, const void *p2, size_t l2);
/* Reply to a command: error code, then data when err == 0. Honours the
 * CONTROL_CMD_RESPONSE state captured in ctx. Thread-safe. */
int ks_reply(struct kvmi_server *srv, const struct kvmi_reply_ctx *ctx, int err,
	       const void *data, size_t len);
/* Same, successful, with descriptor fd attached (SCM_RIGHTS) to the
 * reply's first byte. The caller keeps fd. Replies must be enabled. */
int ks_reply_fd(struct kvmi_server *srv, const struct kvmi_reply_ctx *ctx,
		const void *data, size_t len, int fd);
/* Is the current connection an AF_UNIX socket (both directions)? */
bool ks_conn_is_unix(struct kvmi_server *srv);
/* Introspection thread: gather its replies (on) or write them now (off). */
void ks_set_cork(struct kvmi_server *srv, bool on);

/* stream.c */
/* Introspection thread: the next complete message, copied into rbuf and
 * returned with rx_lock held (the caller dispatches, then unlocks); *more
 * says whether another one is already there. 1 with a message, 0 at EOF
 * between messages, -errno (-EPROTO: a malformed stream). */
int ks_next_message(struct kvmi_server *srv, int fd, struct kvmi_msg_hdr *hdr, bool *more);
/* The stream, rx_lock held: the complete message at the head of inbuf
 * (header copied to *hdr, payload pointer to *payload), or false. */
bool ks_rx_head(struct kvmi_server *srv, struct kvmi_msg_hdr *hdr, const uint8_t **payload);
void ks_rx_consume(struct kvmi_server *srv, size_t n);
/* rx_lock held: append what has arrived without blocking: > 0 bytes, 0 at
 * EOF, -EAGAIN when nothing is there, -errno. */
ssize_t ks_rx_fill(struct kvmi_server *srv, int fd);
/* Wakes the introspection thread (to read or dispatch for a vCPU). */
void ks_kick_intro(struct kvmi_server *srv);

/* events.c */
int ks_handle_event_reply(struct kvmi_server *srv, const struct kvmi_msg_hdr *hdr,
			    const uint8_t *payload);
void ks_events_session_end(struct kvmi_server *srv);
int ks_send_cmd_error(struct kvmi_server *srv, const struct kvmi_reply_ctx *ctx, int err);
void ks_job_done(struct kvmi_server *srv, unsigned vcpu, uint64_t session);

/* Padding helpers */
static inline bool ks_zero(const void *p, size_t n)
{
	const uint8_t *b = (const uint8_t *)p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

#endif
