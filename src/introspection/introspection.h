/* SPDX-License-Identifier: MIT */
/*
 * introspection.h - the KVMI protocol server, as used by the VMM.
 *
 * This library speaks the KVMI wire protocol (include/kvmi/kvmi-wire.h) on
 * one connected socket per VM and knows nothing about KVM: every guest
 * operation goes through struct kvmi_backend_ops, which the VMM implements.
 *
 * Threads:
 *   - the introspection thread runs kvmi_server_run() / kvmi_server_session()
 *     / kvmi_server_serve(): it reads, validates and dispatches every message.
 *     VM-scoped commands call the backend right there.
 *   - vCPU-scoped commands are decoded and validated on the introspection
 *     thread, then packed into a struct kvmi_vcpu_job and handed to
 *     ops->queue_vcpu_job(); the VMM runs kvmi_vcpu_job_run(job) on that
 *     vCPU's thread, which calls the backend op and sends the reply.
 *   - a vCPU thread raises events with kvmi_vcpu_event(); it blocks in
 *     ops->wait_reply() (which must keep running queued jobs) until the tool
 *     replies or goes away.
 *   - replies and events may be sent from any thread; every message is
 *     written whole under one lock.
 *
 * Errors: 0 or a negative value. Values that reach the wire are -KVM_E*;
 * local failures are -errno.
 */
#ifndef KVMI_INTROSPECTION_H
#define KVMI_INTROSPECTION_H

#include <kvmi/kvmi-wire.h>
#include "../proto/kvmi-proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ranks of the server's three locks in the lock order of the whole
 * introspection path, which src/engine/engine.h writes down (the engine's
 * locks sit between them; src/common/lockorder.h checks the order). */
#define KVMI_SRV_RANK_RX   10u
#define KVMI_SRV_RANK_SEND 60u
#define KVMI_SRV_RANK_LOCK 70u

struct kvmi_server;
struct kvmi_vcpu_job;
/* Defined by the VMM; this library only passes the pointer back. */
struct kvmi_backend;

/* ------------------------------------------------------------------ */
/* Backend                                                             */
/* ------------------------------------------------------------------ */

/*
 * Guest operations. Every op returns 0 or -KVM_E* (the value is sent to the
 * tool as is; anything else is mapped, see kvmi_srv_errno_to_wire()).
 * A NULL op means "not implemented": the command answers -KVM_ENOSYS and
 * CHECK_COMMAND says so. check_command() can further say -KVM_EOPNOTSUPP
 * when this host lacks what the op needs.
 *
 * [intro] ops run on the introspection thread, [vcpu] ops run on the
 * thread that calls kvmi_vcpu_job_run() (the VMM makes that the vCPU's own
 * thread), [any] may run anywhere.
 */
struct kvmi_backend_ops {
	/* --- capabilities and routing ---------------------------------- */
	/* [intro] Online vCPUs; indices >= this answer -KVM_EINVAL. Required. */
	unsigned (*vcpu_count)(struct kvmi_backend *b);
	/* [intro] 0, or -KVM_EOPNOTSUPP if the host cannot do command `id`.
	 * Only asked for ids whose op is present; `id` may be a kvmi
	 * extension id (KVMI_X_*, >= KVMI_NUM_MESSAGES). NULL: all supported. */
	int (*check_command)(struct kvmi_backend *b, unsigned id);
	/* [intro] 0, or -KVM_EOPNOTSUPP if this host cannot deliver event `id`.
	 * NULL: only PAUSE_VCPU (with pause_vcpu), TRAP (with
	 * inject_exception) and UNHOOK are deliverable. */
	int (*check_event)(struct kvmi_backend *b, unsigned id);
	/* [intro] kvmi_features for GET_VERSION. NULL: all zero. */
	void (*get_features)(struct kvmi_backend *b, struct kvmi_features *f);

	/* [intro] Hand `job` to vCPU `vcpu`; it must later call
	 * kvmi_vcpu_job_run(job) (or kvmi_vcpu_job_cancel(job)) exactly once.
	 * Return -KVM_EAGAIN if the vCPU cannot run jobs yet; the job is then
	 * still owned by the caller. NULL: jobs run inline (tests). */
	int (*queue_vcpu_job)(struct kvmi_backend *b, unsigned vcpu, struct kvmi_vcpu_job *job);
	/* [vcpu] Sleep until done(ctx) is true, running queued jobs meanwhile;
	 * a wake_vcpu() call must make it re-check done(). Return 0, or <0 if
	 * the VM is stopping (the event then acts as CONTINUE); -EINTR: the
	 * VMM wants the thread back (see kvmi_vcpu_event_resume()).
	 * NULL: the server waits on its own condition variable (only valid when
	 * queue_vcpu_job is NULL too). */
	int (*wait_reply)(struct kvmi_backend *b, unsigned vcpu, bool (*done)(void *ctx), void *ctx);
	/* [any] Make vCPU `vcpu` re-check its wait_reply() condition. */
	void (*wake_vcpu)(struct kvmi_backend *b, unsigned vcpu);
	/* [vcpu] Fill the common event state (mode, view, regs, sregs, msrs)
	 * of the calling vCPU. Required for events. */
	int (*get_event_arch)(struct kvmi_backend *b, unsigned vcpu, struct kvmi_event_arch *arch);

	/* [intro] A tool finished the handshake / the connection is gone.
	 * session_end must undo every tool-made change (page restrictions,
	 * MSR/CR interception, breakpoints, single-step) and resume paused
	 * vCPUs; waiting events are already released as CONTINUE. */
	void (*session_start)(struct kvmi_backend *b);
	void (*session_end)(struct kvmi_backend *b);

	/* --- VM-scoped commands [intro] --------------------------------- */
	/* PAUSE_VCPU: make the vCPU leave guest mode soon (kick). With wait,
	 * return only once it is out of guest mode. The server counts the
	 * requests; the vCPU sends the events through kvmi_vcpu_handle_pauses(). */
	int (*pause_vcpu)(struct kvmi_backend *b, unsigned vcpu, bool wait);
	/* Optional: with it, pause_vcpu with wait only starts the wait (the
	 * kick, an acknowledgement armed) and returns, and pause_wait waits
	 * for every vCPU started so (within the backend's own time-out).
	 * The server answers those commands only after it, and calls it
	 * before any other message and before it waits for more bytes: the
	 * vCPUs of a pipelined pause-all leave guest mode together instead
	 * of one after another. */
	void (*pause_wait)(struct kvmi_backend *b);
	/* CONTROL_VM_EVENTS, after validation and policy (CREATE_VCPU, UNHOOK,
	 * CMD_ERROR). The server keeps the enable bits itself. May be NULL. */
	int (*control_vm_events)(struct kvmi_backend *b, unsigned id, bool enable);
	/* READ/WRITE_PHYSICAL: the range never crosses a 4 KiB page. Missing
	 * memory: -KVM_ENOENT. */
	int (*read_physical)(struct kvmi_backend *b, uint64_t gpa, void *buf, size_t size);
	int (*write_physical)(struct kvmi_backend *b, uint64_t gpa, const void *buf, size_t size);
	/* SET_PAGE_ACCESS: entries already validated (access bits in R|W|X,
	 * padding zero); apply them as one batch. */
	int (*set_page_access)(struct kvmi_backend *b, uint16_t view,
			       const struct kvmi_page_access_entry *e, unsigned count);
	/* GET_MAP_TOKEN: a fresh single-use token (kvmi_map_tokens_issue()). */
	int (*get_map_token)(struct kvmi_backend *b, struct kvmi_map_mem_token *token);
	/* KVMI_X_MAP_MEMORY (kvmi extension): redeem `token`
	 * (kvmi_map_tokens_redeem(): consumed once matched, -KVM_EPERM if
	 * unknown, used or expired), then hand out guest RAM
	 * [gpa, gpa + len): a NEW descriptor in *fd (read-only when
	 * `readonly`; the server sends it to the tool and closes it) and the
	 * offset of gpa in that file. The range must lie in one RAM region,
	 * else -KVM_ENOENT. The server has already checked that the
	 * connection is AF_UNIX, the policy, gpa/len page alignment (len > 0,
	 * no overflow) and the padding. Needs get_map_token too. */
	int (*map_memory)(struct kvmi_backend *b, const struct kvmi_map_mem_token *token,
			  uint64_t gpa, uint64_t len, bool readonly, int *fd, uint64_t *offset);
	int (*get_max_gfn)(struct kvmi_backend *b, uint64_t *gfn);
	int (*control_spp)(struct kvmi_backend *b, bool enable);
	int (*set_page_write_bitmap)(struct kvmi_backend *b, uint16_t view,
				     const struct kvmi_page_write_bitmap_entry *e, unsigned count);
	int (*set_page_sve)(struct kvmi_backend *b, uint16_t view, uint64_t gpa, bool suppress);
	int (*get_next_available_gfn)(struct kvmi_backend *b, uint64_t *gfn);
	int (*query_physical)(struct kvmi_backend *b, uint64_t gfn, struct kvmi_query_physical_reply *r);
	int (*create_ept_view)(struct kvmi_backend *b, uint16_t *view);
	int (*destroy_ept_view)(struct kvmi_backend *b, uint16_t view);

	/* --- vCPU-scoped commands [vcpu] -------------------------------- */
	int (*get_tsc_speed)(struct kvmi_backend *b, unsigned vcpu, uint64_t *hz);
	/* CONTROL_EVENTS after validation and policy; the server keeps the
	 * per-vCPU enable bits (kvmi_vcpu_event_enabled()). May be NULL. */
	int (*control_events)(struct kvmi_backend *b, unsigned vcpu, unsigned id, bool enable);
	int (*control_cr)(struct kvmi_backend *b, unsigned vcpu, unsigned cr, bool enable);
	int (*control_msr)(struct kvmi_backend *b, unsigned vcpu, uint32_t msr, bool enable);
	/* GET_REGISTERS: fill *mode (2/4/8), regs, sregs and msrs[i].data for
	 * every msrs[i].index (an unreadable MSR: -KVM_EINVAL). */
	int (*get_registers)(struct kvmi_backend *b, unsigned vcpu, uint32_t *mode,
			     struct kvmi_x86_regs *regs, struct kvmi_x86_sregs *sregs,
			     struct kvmi_x86_msr_entry *msrs, unsigned nmsrs);
	/* Applied after an event reply, on the vCPU thread, when the tool sent
	 * SET_REGISTERS while the event was pending. */
	int (*set_registers)(struct kvmi_backend *b, unsigned vcpu, const struct kvmi_x86_regs *regs);
	int (*get_cpuid)(struct kvmi_backend *b, unsigned vcpu, uint32_t function, uint32_t index,
			 struct kvmi_get_cpuid_reply *r);
	/* GET_XSAVE fills KVMI_XSAVE_SIZE bytes; SET_XSAVE gets 0..4096 bytes. */
	int (*get_xsave)(struct kvmi_backend *b, unsigned vcpu, void *buf, size_t size);
	int (*set_xsave)(struct kvmi_backend *b, unsigned vcpu, const void *buf, size_t size);
	int (*get_xcr)(struct kvmi_backend *b, unsigned vcpu, unsigned xcr, uint64_t *value);
	/* Queue the exception for the next entry (-KVM_EBUSY if one is still
	 * pending); after injecting it the VMM sends KVMI_EVENT_TRAP. */
	int (*inject_exception)(struct kvmi_backend *b, unsigned vcpu, uint8_t vector,
				uint32_t error_code, uint64_t address);
	int (*get_mtrr_type)(struct kvmi_backend *b, unsigned vcpu, uint64_t gpa, uint8_t *type);
	/* Untranslatable: *gpa = KVMI_UNMAPPED_GVA and return 0. */
	int (*translate_gva)(struct kvmi_backend *b, unsigned vcpu, uint64_t gva, uint64_t *gpa);
	int (*control_singlestep)(struct kvmi_backend *b, unsigned vcpu, bool enable);
	int (*set_ve_info_page)(struct kvmi_backend *b, unsigned vcpu, uint64_t gpa, bool trigger_vmexit);
	int (*disable_ve)(struct kvmi_backend *b, unsigned vcpu);
	int (*switch_ept_view)(struct kvmi_backend *b, unsigned vcpu, uint16_t view);
	int (*get_ept_view)(struct kvmi_backend *b, unsigned vcpu, uint16_t *view);
	int (*control_ept_view)(struct kvmi_backend *b, unsigned vcpu, uint16_t view, bool visible);
	int (*alloc_gfn)(struct kvmi_backend *b, unsigned vcpu, uint64_t gfn);
	int (*free_gfn)(struct kvmi_backend *b, unsigned vcpu, uint64_t gfn);
	int (*change_gfn)(struct kvmi_backend *b, unsigned vcpu, uint16_t view,
			  uint64_t old_gfn, uint64_t new_gfn);
};

/* ------------------------------------------------------------------ */
/* Map tokens (maptoken.c): what a backend's get_map_token/map_memory   */
/* use. Introspection thread only (no locking).                         */
/* ------------------------------------------------------------------ */

#define KVMI_MAP_TOKENS_MAX   64u       /* outstanding; more: -KVM_EAGAIN */
#define KVMI_MAP_TOKEN_TTL_MS 60000u    /* unredeemed tokens expire */

struct kvmi_map_token_slot {
	struct kvmi_map_mem_token token;
	int64_t expires_ms;             /* CLOCK_MONOTONIC */
	bool live;
};

struct kvmi_map_tokens {
	struct kvmi_map_token_slot slot[KVMI_MAP_TOKENS_MAX];
	unsigned ttl_ms;
};

/* ttl_ms 0: KVMI_MAP_TOKEN_TTL_MS. */
void kvmi_map_tokens_init(struct kvmi_map_tokens *t, unsigned ttl_ms);
/* 32 bytes from getrandom(). -KVM_EAGAIN when KVMI_MAP_TOKENS_MAX unexpired
 * tokens are outstanding (or the kernel has no randomness to give). */
int kvmi_map_tokens_issue(struct kvmi_map_tokens *t, struct kvmi_map_mem_token *out);
/* 0 if token is outstanding and unexpired. A matching token is consumed
 * either way; unknown, reused or expired: -KVM_EPERM. Constant time in
 * the token's bytes. */
int kvmi_map_tokens_redeem(struct kvmi_map_tokens *t, const struct kvmi_map_mem_token *token);
/* Drop every token (session end). */
void kvmi_map_tokens_clear(struct kvmi_map_tokens *t);
unsigned kvmi_map_tokens_outstanding(const struct kvmi_map_tokens *t);

/* ------------------------------------------------------------------ */
/* Admin policy (policy.c; format in docs/policy.md)                   */
/* ------------------------------------------------------------------ */

struct kvmi_policy {
	uint64_t commands;      /* bit id: command id allowed */
	uint64_t events;        /* bit id: event id allowed */
};

void kvmi_policy_allow_all(struct kvmi_policy *p);
/*
 * May the tool send command id at all (CHECK_COMMAND)? Always-allowed
 * commands are allowed whatever the mask says. kvmi extension commands
 * follow the command they belong to (KVMI_X_MAP_MEMORY: GET_MAP_TOKEN).
 * Writes are named once: a command that writes guest memory also needs
 * WRITE_PHYSICAL, one that writes vCPU registers SET_REGISTERS (the
 * src/proto table's KVMI_PROTO_WRITES_* attributes).
 */
bool kvmi_policy_command_allowed(const struct kvmi_policy *p, unsigned id);
/* May this request (the payload as received, len bytes) pass? The same,
 * plus what the request itself asks: a read-write map grant is a memory
 * write, a read-only one is not. */
bool kvmi_policy_request_allowed(const struct kvmi_policy *p, unsigned id, const void *req,
				 size_t len);
/*
 * The tool's reply rpl (rpl_len bytes) to event `event` with data
 * `data` (len bytes), before the vCPU acts on it: without SET_REGISTERS a
 * CR or MSR reply may only veto (the old value) or allow (the guest's),
 * any other new_val becomes the guest's; without WRITE_PHYSICAL a PF
 * reply's ctx_data is dropped (loads read guest memory). True when
 * something was dropped.
 */
bool kvmi_policy_filter_reply(const struct kvmi_policy *p, unsigned event, const void *data,
			      size_t len, void *rpl, size_t rpl_len);
bool kvmi_policy_event_allowed(const struct kvmi_policy *p, unsigned id);
/*
 * "all", "none", names ("get_registers", "KVMI_GET_REGISTERS", kernel
 * aliases like "vcpu_get_registers"; events "pf", "KVMI_EVENT_PF") or
 * numbers, comma separated, left to right from the empty set; "-NAME"
 * removes. On error returns -EINVAL and describes it in err.
 */
int kvmi_policy_parse_commands(const char *list, uint64_t *mask, char *err, size_t errlen);
int kvmi_policy_parse_events(const char *list, uint64_t *mask, char *err, size_t errlen);
/* Policy file text ("commands = LIST" / "events = LIST" lines, '#' comments). */
int kvmi_policy_parse_text(const char *text, struct kvmi_policy *p, char *err, size_t errlen);
int kvmi_policy_load_file(const char *path, struct kvmi_policy *p, char *err, size_t errlen);

/* Names for logs (libkvmi's, "KVMI_GET_REGISTERS"); NULL when unknown.
 * The table is src/proto's. */
static inline const char *kvmi_srv_command_name(unsigned id)
{
	return kvmi_proto_command_name(id);
}

static inline const char *kvmi_srv_event_name(unsigned id)
{
	return kvmi_proto_event_name(id);
}

/* ------------------------------------------------------------------ */
/* Handshake and transport                                             */
/* ------------------------------------------------------------------ */

/* Key -> cookie hash. Must write KVMI_COOKIE_HASH_SIZE bytes. */
typedef int (*kvmi_hash_fn)(const void *key, size_t key_len, uint8_t out[KVMI_COOKIE_HASH_SIZE]);
/* SHA-1 through OpenSSL libcrypto. */
int kvmi_srv_cookie_sha1(const void *key, size_t key_len, uint8_t out[KVMI_COOKIE_HASH_SIZE]);

struct kvmi_handshake_params {
	uint8_t uuid[16];
	char name[KVMI_HANDSHAKE_NAME_SIZE];
	int64_t start_time_ms;
	uint64_t max_gpa;
	/* Expected cookie hash; NULL accepts any tool. */
	const uint8_t *cookie_hash;
	int timeout_ms;                 /* whole handshake; <= 0: 10000 */
};

/*
 * VMM side of the out-of-band handshake on a connected stream socket:
 * send struct kvmi_handshake_vmm (104 bytes), read the tool's answer
 * (struct_size first, then exactly struct_size - 4 bytes; 24 <= size <=
 * KVMI_HANDSHAKE_TOOL_MAX_SIZE), check the cookie. Reads nothing beyond
 * the answer. Returns 0, -ETIMEDOUT, -ECONNRESET (EOF), -EPROTO (bad
 * size), -EACCES (cookie mismatch) or another -errno. `answer` may be NULL.
 */
#define KVMI_HANDSHAKE_TOOL_MAX_SIZE 4096u
int kvmi_srv_handshake(int fd, const struct kvmi_handshake_params *p, struct kvmi_handshake_tool *answer);
/* Pure part, for fuzzing: validates a complete answer buffer. */
int kvmi_srv_handshake_check_answer(const void *buf, size_t len, const uint8_t *cookie_hash,
				struct kvmi_handshake_tool *answer);
/* Encodes the VMM->tool struct. */
void kvmi_srv_handshake_encode(const struct kvmi_handshake_params *p, struct kvmi_handshake_vmm *out);

/* "unix:PATH", "unix:@NAME" or "vsock:CID:PORT" (struct kvmi_addr and the
 * rules: src/proto/kvmi-proto.h). 0 or -EINVAL. */
int kvmi_srv_addr_parse(const char *spec, struct kvmi_addr *addr);
/* Connected stream socket (CLOEXEC) or -errno. */
int kvmi_srv_addr_connect(const struct kvmi_addr *addr);

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

enum kvmi_srv_log_level { KVMI_SRV_LOG_ERROR, KVMI_SRV_LOG_WARN, KVMI_SRV_LOG_INFO, KVMI_SRV_LOG_DEBUG };

struct kvmi_server_config {
	const struct kvmi_backend_ops *ops;
	struct kvmi_backend *backend;
	unsigned max_vcpus;             /* size of per-vCPU state; >= vcpu_count() ever */
	const struct kvmi_policy *policy;   /* NULL: everything allowed */

	/* handshake */
	uint8_t uuid[16];
	char name[KVMI_HANDSHAKE_NAME_SIZE];
	int64_t start_time_ms;
	uint64_t max_gpa;
	const void *key;                /* NULL: tools are not authenticated */
	size_t key_len;
	kvmi_hash_fn hash;              /* NULL: kvmi_srv_cookie_sha1 */
	int handshake_timeout_ms;       /* <= 0: 10000 */
	int send_timeout_ms;            /* <= 0: 15000; a stuck tool is dropped */

	void (*log)(void *ctx, enum kvmi_srv_log_level level, const char *msg);
	void *log_ctx;
};

int kvmi_server_create(const struct kvmi_server_config *cfg, struct kvmi_server **out);
/* After every thread using srv has stopped and every queued job was run
 * or cancelled. */
void kvmi_server_destroy(struct kvmi_server *srv);

/*
 * Introspection thread: connect to addr, run a session, reconnect with
 * backoff (100 ms doubling to 5 s) until kvmi_server_stop(). Returns 0
 * after a stop, or -errno for a fatal setup error.
 */
int kvmi_server_run(struct kvmi_server *srv, const struct kvmi_addr *addr);
/* One connection: handshake, then kvmi_server_serve(). Does not close fd. */
int kvmi_server_session(struct kvmi_server *srv, int fd);
/*
 * Serve messages read from rfd, answers written to wfd (the same socket in
 * production), until EOF, a protocol violation or kvmi_server_stop().
 * Returns 0 on EOF/stop, -EPROTO after a violation that closes the
 * connection, or -errno on an I/O error. On return the session is over:
 * waiting events were released and ops->session_end() ran. Does not close
 * the fds (it shuts a socket down).
 */
int kvmi_server_serve(struct kvmi_server *srv, int rfd, int wfd);
/* Any thread: end the current session and the run loop. */
void kvmi_server_stop(struct kvmi_server *srv);
bool kvmi_server_connected(struct kvmi_server *srv);
/* The same without taking a lock (a hint that may be a moment old). */
bool kvmi_server_live(struct kvmi_server *srv);
/* Number of sessions (connections past the handshake) so far. */
uint64_t kvmi_server_sessions(struct kvmi_server *srv);

/*
 * Not on the introspection thread: if the tool enabled UNHOOK, send it and
 * wait up to timeout_ms for the tool to close the connection. Returns 0
 * once closed, -ENOENT if UNHOOK is not enabled (or nobody is connected),
 * -ETIMEDOUT otherwise (the caller may kvmi_server_stop()).
 */
int kvmi_server_unhook(struct kvmi_server *srv, int timeout_ms);

/* ------------------------------------------------------------------ */
/* vCPU side                                                           */
/* ------------------------------------------------------------------ */

/* vCPU thread: run a queued command (calls the backend op, sends the
 * reply, frees the job). */
void kvmi_vcpu_job_run(struct kvmi_vcpu_job *job);
/* Drop a queued job without running it (VM teardown); frees it. */
void kvmi_vcpu_job_cancel(struct kvmi_vcpu_job *job);

/* Is the event enabled for this vCPU (CONTROL_EVENTS) or the VM
 * (CONTROL_VM_EVENTS for VM events)? Cheap; any thread. */
bool kvmi_vcpu_event_enabled(struct kvmi_server *srv, unsigned vcpu, unsigned event);

struct kvmi_event_result {
	uint8_t action;         /* KVMI_EVENT_ACTION_*; CONTINUE when not delivered */
	bool delivered;         /* the tool replied */
	bool regs_applied;      /* SET_REGISTERS arrived and set_registers() ran */
};

/*
 * vCPU thread: send event `event` for `vcpu` (common state from
 * ops->get_event_arch plus `data`), wait for the reply and copy its
 * event-specific part into rpl (rpl_len bytes, zero-filled when the tool
 * sent less). Sent only when connected and enabled (PAUSE_VCPU and TRAP
 * need no enabling; UNHOOK and CMD_ERROR are not vCPU events). When not
 * sent, or the tool goes away, returns 0 with action CONTINUE and
 * delivered false. An unknown action is logged and reported as CONTINUE.
 */
int kvmi_vcpu_event(struct kvmi_server *srv, unsigned vcpu, unsigned event,
		    const void *data, size_t len, void *rpl, size_t rpl_len,
		    struct kvmi_event_result *res);
/* The same with the common event state given (NULL: ops->get_event_arch),
 * for a caller that had to read it anyway. */
int kvmi_vcpu_event_arch(struct kvmi_server *srv, unsigned vcpu, unsigned event,
			 const struct kvmi_event_arch *arch, const void *data, size_t len,
			 void *rpl, size_t rpl_len, struct kvmi_event_result *res);
/*
 * A backend's wait_reply() may return -EINTR: its VMM wants the vCPU's
 * thread back.  The event then stays in flight and kvmi_vcpu_event*()
 * returns -EINTR (res: not delivered); kvmi_vcpu_event_resume() waits on
 * for the same reply when the vCPU comes back (the reply's part goes to
 * rpl then), and returns as kvmi_vcpu_event() would have (-EINTR again,
 * or -ENOENT when no event was suspended).
 */
int kvmi_vcpu_event_resume(struct kvmi_server *srv, unsigned vcpu, void *rpl, size_t rpl_len,
			   struct kvmi_event_result *res);
/* vCPU thread: pending PAUSE_VCPU requests for this vCPU. */
unsigned kvmi_vcpu_pending_pauses(struct kvmi_server *srv, unsigned vcpu);
/* vCPU thread: take one pending PAUSE_VCPU request (false: none); the
 * caller then raises one PAUSE_VCPU event for it. */
bool kvmi_vcpu_take_pause(struct kvmi_server *srv, unsigned vcpu);
/*
 * vCPU thread: send one PAUSE_VCPU event per pending request, each waited
 * for. Stops early on CRASH. res reports the last reply.
 */
int kvmi_vcpu_handle_pauses(struct kvmi_server *srv, unsigned vcpu, struct kvmi_event_result *res);

/* ------------------------------------------------------------------ */
/* Pure helpers (tests, fuzzers)                                       */
/* ------------------------------------------------------------------ */

/*
 * Encode a complete event message (header + struct kvmi_event + data) into
 * buf (at least 8 + 544 + len bytes). Returns the message length.
 */
size_t kvmi_srv_event_encode(void *buf, uint32_t seq, uint16_t vcpu, uint8_t event,
			 const struct kvmi_event_arch *arch, const void *data, size_t len);
/* Expected sizes of an event's specific part and of its reply part. */
static inline size_t kvmi_srv_event_data_size(unsigned event)
{
	return kvmi_proto_event_data_size(event);
}

static inline size_t kvmi_srv_event_reply_size(unsigned event)
{
	return kvmi_proto_event_reply_size(event);
}
/* Maps a backend's -errno to a wire error (-KVM_E*). */
int kvmi_srv_errno_to_wire(int err);

#endif /* KVMI_INTROSPECTION_H */
