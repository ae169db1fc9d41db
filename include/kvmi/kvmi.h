/* SPDX-License-Identifier: MIT */
/*
 * kvmi.h - the kvmi client library (libkvmi-client): the introspection
 * tool's side of the KVMI wire protocol (include/kvmi/kvmi-wire.h).
 *
 * The tool listens; each VMM (kvmi-vm, or QEMU with the KVM-VMI patches)
 * connects, sends its handshake, and becomes one struct kvmi_dom.  Every
 * command is a typed function on that handle.  The request bytes are the
 * same as Bitdefender's libkvmi sends for the equivalent call.
 *
 * Conventions
 *   - Every function that can fail returns 0 or a negative errno.  Error
 *     codes from the VMM are mapped -KVM_Exxx -> -Exxx (any other value:
 *     -EPROTO).  kvmi_strerror() gives a sentence for each.
 *   - Handles are opaque and typed; all functions on one struct kvmi_dom
 *     are thread-safe (commands are serialized; events can be waited for
 *     and replied to from other threads while a command is in flight).
 *     The thread that waits for a message (an event, a command's reply)
 *     reads the socket itself when no other thread does; a background
 *     thread per domain reads while no API call has waited for a while.
 *   - Decoding is tolerant: fixed-size replies and events that are shorter
 *     than expected are zero-filled, longer ones are truncated.  A reply
 *     whose id or seq does not match the request is rejected (-ENOMSG).
 *     Every message is consumed whole, so the stream never desynchronizes.
 *   - Names do not clash with libkvmi (libkvmi.so, <kvmi/libkvmi.h>): this
 *     library is libkvmi-client.so.0 and its functions are kvmi_listener_*,
 *     kvmi_dom_*, kvmi_batch_*, kvmi_event_*.
 *
 * Compiles as C11 and as C++.
 */
#ifndef KVMI_CLIENT_H
#define KVMI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kvmi/kvmi-wire.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVMI_CLIENT_VERSION_MAJOR 0
#define KVMI_CLIENT_VERSION_MINOR 1

struct kvmi_listener;   /* a listening socket (+ optional accept thread) */
struct kvmi_dom;        /* one connected guest */
struct kvmi_batch;      /* commands sent together, replies suppressed */

/* ------------------------------------------------------------------ */
/* Connection setup                                                    */
/* ------------------------------------------------------------------ */

/* What the VMM said about itself in its handshake. */
struct kvmi_hello {
	uint32_t struct_size;           /* as sent by the VMM */
	uint8_t  uuid[16];
	int64_t  start_time_ms;         /* VM start, ms since the epoch */
	char     name[KVMI_HANDSHAKE_NAME_SIZE];   /* always NUL-terminated */
	uint64_t max_gpa;               /* 0 unless the VMM sent the 104-byte form */
};

enum kvmi_log_level {
	KVMI_LOG_ERROR,
	KVMI_LOG_WARNING,
	KVMI_LOG_INFO,
	KVMI_LOG_DEBUG,
};

/* Called before the tool answers the handshake.  @cookie_hash holds
 * SHA-1(cfg.key) (or zeros without a key) and may be changed.  Return < 0
 * to refuse the VMM: nothing is sent and the connection is closed. */
typedef int (*kvmi_handshake_fn)(const struct kvmi_hello *hello,
				 uint8_t cookie_hash[KVMI_COOKIE_HASH_SIZE], void *ctx);
/* Called with each new domain (after GET_VERSION succeeded).  Return 0 to
 * keep it (the callee then owns it and must kvmi_dom_close() it), non-zero
 * to have the library close it. */
typedef int (*kvmi_connect_fn)(struct kvmi_dom *dom, void *ctx);
/* Called once, from the domain's background reader thread (whichever
 * thread saw the end of the stream), when the VMM goes away (not after
 * kvmi_dom_close()).  The callee may kvmi_dom_close(dom). */
typedef void (*kvmi_disconnect_fn)(struct kvmi_dom *dom, void *ctx);
typedef void (*kvmi_log_fn)(int level, const char *msg, void *ctx);

struct kvmi_config {
	size_t size;                    /* = sizeof(struct kvmi_config) */
	const void *key;                /* cookie = SHA-1(key); NULL: zero cookie.
					 * Not copied: keep it valid while the
					 * listener (or kvmi_dom_open_fd) uses it. */
	size_t key_len;
	int handshake_timeout_ms;       /* 0: 10000 */
	int io_timeout_ms;              /* per command / message; 0: 15000; < 0: none */
	kvmi_handshake_fn on_handshake; /* optional */
	kvmi_connect_fn on_connect;     /* required by kvmi_listener_start() */
	kvmi_disconnect_fn on_disconnect; /* optional */
	kvmi_log_fn log;                /* optional */
	void *ctx;                      /* passed to every callback */
	/* Since 0.3, filled by kvmi_config_expect_guest() (zero: any guest). */
	unsigned int expect;            /* KVMI_EXPECT_NAME | KVMI_EXPECT_UUID */
	char expect_name[KVMI_HANDSHAKE_NAME_SIZE];
	uint8_t expect_uuid[16];
};

#define KVMI_EXPECT_NAME (1u << 0)
#define KVMI_EXPECT_UUID (1u << 1)

/* Since 0.3 (KVMI_CLIENT_0.3).  Accept only the guest with this name
 * (NULL: any name) and this UUID (NULL: any; "01234567-89ab-cdef-0123-
 * 456789abcdef" or the 32 hex digits alone, either case).  A VMM whose
 * handshake carries another name or UUID is refused before the tool
 * answers it (so it learns nothing, not even the cookie): the listener's
 * accept and kvmi_dom_open_fd() fail with -EACCES, and cfg->log gets a line
 * naming what was expected and what came.  The strings are copied into
 * @cfg (whose size must cover the expect fields); a later call replaces
 * both.  0, or -EINVAL for a name of 64 bytes or more or a malformed UUID
 * (@cfg is then unchanged). */
int kvmi_config_expect_guest(struct kvmi_config *cfg, const char *name, const char *uuid);

/* Listen on "unix:PATH", "unix:@ABSTRACT" or "vsock:CID:PORT" (CID "any"
 * or -1 for VMADDR_CID_ANY).  A stale unix socket file is replaced.
 * @cfg may be NULL (defaults, no key). */
int kvmi_listener_open(const char *addr, const struct kvmi_config *cfg,
		       struct kvmi_listener **out);
int kvmi_listener_fd(const struct kvmi_listener *l);
/* Wait up to @timeout_ms (-1: forever) for one VMM, run the handshake and
 * GET_VERSION, call cfg.on_connect if set, and return the new domain.
 * -ETIMEDOUT when nobody connected; a VMM that fails the handshake gives
 * that error (the listener stays usable). */
int kvmi_listener_accept(struct kvmi_listener *l, int timeout_ms, struct kvmi_dom **out);
/* Accept in a background thread; every domain goes to cfg.on_connect. */
int kvmi_listener_start(struct kvmi_listener *l);
/* Stop the accept thread, close the socket (unlinking a unix path).
 * Domains already handed out stay open. */
void kvmi_listener_close(struct kvmi_listener *l);

/* Run the handshake on an already connected socket (takes ownership of @fd
 * even on failure).  For VMMs reached some other way, and for tests. */
int kvmi_dom_open_fd(int fd, const struct kvmi_config *cfg, struct kvmi_dom **out);

/* Close the connection and free the domain.  The VMM treats pending events
 * as CONTINUE and resumes paused vCPUs.  No message is sent. */
void kvmi_dom_close(struct kvmi_dom *dom);
/* Shut the socket down without freeing (wakes every waiter with an error). */
int kvmi_dom_shutdown(struct kvmi_dom *dom);
bool kvmi_dom_is_connected(struct kvmi_dom *dom);
int kvmi_dom_fd(const struct kvmi_dom *dom);
const struct kvmi_hello *kvmi_dom_hello(const struct kvmi_dom *dom);
const char *kvmi_dom_name(const struct kvmi_dom *dom);
void kvmi_dom_set_user(struct kvmi_dom *dom, void *user);
void *kvmi_dom_user(const struct kvmi_dom *dom);

/* SHA-1 of a key, as the VMM expects it in the handshake. */
int kvmi_cookie_hash(const void *key, size_t key_len,
		     uint8_t hash[KVMI_COOKIE_HASH_SIZE]);

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

/* Cached from the GET_VERSION done at connect; sends nothing. */
int kvmi_dom_get_version(const struct kvmi_dom *dom, uint32_t *version,
			 struct kvmi_features *features);

/* 0: the VMM allows (and implements) the command / event; -EPERM: denied
 * by its policy; -EINVAL: unknown id; other errors as usual. */
int kvmi_dom_check_command(struct kvmi_dom *dom, uint16_t id);
int kvmi_dom_check_event(struct kvmi_dom *dom, uint16_t id);

int kvmi_dom_get_guest_info(struct kvmi_dom *dom, uint32_t *vcpu_count);
int kvmi_dom_get_vcpu_info(struct kvmi_dom *dom, uint16_t vcpu, uint64_t *tsc_speed_hz);

/* One PAUSE_VCPU.  The vCPU then sends a KVMI_EVENT_PAUSE_VCPU event and
 * stays stopped until that event is replied to. */
int kvmi_dom_pause_vcpu(struct kvmi_dom *dom, uint16_t vcpu, bool wait);
/* Pause vCPUs 0..count-1 in one batch (wait=1 each), exactly as libkvmi's
 * kvmi_pause_all_vcpus(); returns when every vCPU is out of guest mode.
 * count == 0 sends nothing. */
int kvmi_dom_pause_vcpus(struct kvmi_dom *dom, unsigned int count);
/* GET_GUEST_INFO + kvmi_dom_pause_vcpus(); *count (optional) = vCPUs paused. */
int kvmi_dom_pause_all(struct kvmi_dom *dom, unsigned int *count);

int kvmi_dom_control_vm_events(struct kvmi_dom *dom, uint16_t event_id, bool enable);
int kvmi_dom_control_events(struct kvmi_dom *dom, uint16_t vcpu, uint16_t event_id,
			    bool enable);
int kvmi_dom_control_cr(struct kvmi_dom *dom, uint16_t vcpu, uint32_t cr, bool enable);
int kvmi_dom_control_msr(struct kvmi_dom *dom, uint16_t vcpu, uint32_t msr, bool enable);
int kvmi_dom_control_singlestep(struct kvmi_dom *dom, uint16_t vcpu, bool enable);

/* Registers of a vCPU.  @regs, @sregs, @mode may be NULL.  @msrs[i].index
 * names the MSRs to read (nmsrs may be 0); on return each entry holds what
 * the VMM sent (index included).  A reply too short for @nmsrs entries is
 * -EPROTO. */
int kvmi_dom_get_registers(struct kvmi_dom *dom, uint16_t vcpu,
			   struct kvmi_x86_regs *regs, struct kvmi_x86_sregs *sregs,
			   struct kvmi_x86_msr_entry *msrs, unsigned int nmsrs,
			   uint32_t *mode);
/* Only valid while the vCPU waits for an event reply; applied with it. */
int kvmi_dom_set_registers(struct kvmi_dom *dom, uint16_t vcpu,
			   const struct kvmi_x86_regs *regs);
int kvmi_dom_get_cpuid(struct kvmi_dom *dom, uint16_t vcpu, uint32_t function,
		       uint32_t index, struct kvmi_get_cpuid_reply *leaf);
/* @received (optional) = bytes the VMM sent; @buf is zero-filled past them. */
int kvmi_dom_get_xsave(struct kvmi_dom *dom, uint16_t vcpu, void *buf, size_t size,
		       size_t *received);
int kvmi_dom_set_xsave(struct kvmi_dom *dom, uint16_t vcpu, const void *buf, size_t size);
int kvmi_dom_get_xcr(struct kvmi_dom *dom, uint16_t vcpu, uint8_t xcr, uint64_t *value);

/* Guest-physical memory, one request each (the VMM allows at most one page
 * that does not cross a page boundary).  A short read is zero-filled. */
int kvmi_dom_read_physical(struct kvmi_dom *dom, uint64_t gpa, void *buf, size_t size);
/* Any size and alignment: one READ_PHYSICAL per 4 KiB page, up to 64 of
 * them on the wire at once (pipelined).  The first error wins; the buffer
 * is then partly filled. */
int kvmi_dom_read_physical_bulk(struct kvmi_dom *dom, uint64_t gpa, void *buf, size_t size);
int kvmi_dom_write_physical(struct kvmi_dom *dom, uint64_t gpa, const void *buf,
			    size_t size);

/* Injected at the next guest entry; a KVMI_EVENT_TRAP reports the result. */
int kvmi_dom_inject_exception(struct kvmi_dom *dom, uint16_t vcpu, uint8_t vector,
			      uint32_t error_code, uint64_t address);
/* Sent for vCPU 0, as libkvmi does. */
int kvmi_dom_get_mtrr_type(struct kvmi_dom *dom, uint64_t gpa, uint8_t *type);
int kvmi_dom_get_max_gfn(struct kvmi_dom *dom, uint64_t *gfn);
/* *gpa = KVMI_UNMAPPED_GVA when the address has no translation. */
int kvmi_dom_translate_gva(struct kvmi_dom *dom, uint16_t vcpu, uint64_t gva,
			   uint64_t *gpa);
/* @access[i] is a KVMI_PAGE_ACCESS_* mask for @gpa[i]; count <= 511. */
int kvmi_dom_set_page_access(struct kvmi_dom *dom, const uint64_t *gpa,
			     const uint8_t *access, unsigned int count, uint16_t view);
int kvmi_dom_get_map_token(struct kvmi_dom *dom, struct kvmi_map_mem_token *token);

/*
 * Zero-copy guest memory (kvmi extension KVMI_X_MAP_MEMORY, kvmi-vm only).
 * Maps guest-physical [gpa, gpa + len) into this process: *addr points at
 * the guest's RAM itself, so a read through it costs what a memcpy does
 * and sees the guest's stores as they happen.  gpa and len must be 4 KiB
 * aligned and lie in one RAM region (QUERY_PHYSICAL / -ENOENT otherwise);
 * @prot is PROT_READ or PROT_READ | PROT_WRITE (<sys/mman.h>).
 *
 *   - Unix sockets only: the VMM passes the guest-RAM file descriptor with
 *     the reply (SCM_RIGHTS), which vsock and TCP cannot; there the call
 *     fails with -EOPNOTSUPP.  The descriptor is closed before returning.
 *   - PROT_READ asks the VMM for a read-only descriptor: the mapping can
 *     never be made writable.
 *   - Writes land in guest RAM directly: they bypass page-access
 *     restrictions (SET_PAGE_ACCESS) and raise no event, and nothing
 *     orders them against the running vCPUs (pause them if that matters).
 *   - The mapping is the guest's memory file: it stays valid and coherent
 *     while the VM lives, whatever happens to the VM's memory slots, and
 *     also after this connection closes (unmap it yourself).
 *   - The admin policy allows it together with GET_MAP_TOKEN (-EPERM).
 *
 * kvmi_dom_map_physical() takes a fresh token with GET_MAP_TOKEN and
 * redeems it.  kvmi_dom_map_physical_token() redeems a token the caller
 * already holds: tokens are single use (-EPERM when unknown, used, or older
 * than the VMM's time limit, 60 s for kvmi-vm).  Free with
 * kvmi_dom_unmap_physical(addr, len).
 */
int kvmi_dom_map_physical(struct kvmi_dom *dom, uint64_t gpa, size_t len, int prot,
			  void **addr);
int kvmi_dom_map_physical_token(struct kvmi_dom *dom, const struct kvmi_map_mem_token *token,
				uint64_t gpa, size_t len, int prot, void **addr);
int kvmi_dom_unmap_physical(void *addr, size_t len);

/* Any command by id, for ids without a typed wrapper.  @req is the whole
 * payload (with the kvmi_vcpu_hdr for vCPU commands).  The reply data is
 * copied as with the typed calls; @received (optional) = data bytes sent. */
int kvmi_dom_command(struct kvmi_dom *dom, uint16_t id, const void *req, size_t req_size,
		     void *rpl, size_t rpl_size, size_t *received);

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

/* One event as received.  Missing bytes are zero; extra bytes dropped. */
struct kvmi_event_msg {
	uint32_t seq;                   /* message seq, echoed by the reply */
	uint16_t vcpu;                  /* = common.vcpu */
	uint8_t  event;                 /* = common.event (enum kvmi_event_id) */
	uint8_t  padding;
	uint32_t common_size;           /* common.size as sent (>= 8) */
	uint32_t specific_size;         /* bytes of the specific part sent */
	struct kvmi_event common;       /* 544 bytes; common.arch holds the registers */
	union {
		struct kvmi_event_cr cr;
		struct kvmi_event_msr msr;
		struct kvmi_event_breakpoint breakpoint;
		struct kvmi_event_pf pf;
		struct kvmi_event_trap trap;
		struct kvmi_event_descriptor descriptor;
		struct kvmi_event_singlestep singlestep;
		struct kvmi_event_cmd_error cmd_error;
		struct kvmi_event_cpuid cpuid;
		uint8_t raw[64];        /* any id, including ones unknown here */
	} specific;
};

/* 0 once at least one event is queued; -ETIMEDOUT after @timeout_ms (0:
 * just check; -1: forever); -ENOTCONN when the VMM is gone and the queue
 * is empty; -EBADMSG (reported once) after a malformed event was dropped. */
int kvmi_dom_wait_event(struct kvmi_dom *dom, int timeout_ms);
/* Dequeue the oldest event (free it with kvmi_event_free); -EAGAIN if none. */
int kvmi_dom_pop_event(struct kvmi_dom *dom, struct kvmi_event_msg **ev);
/* wait + pop, skipping -EBADMSG. */
int kvmi_dom_next_event(struct kvmi_dom *dom, int timeout_ms, struct kvmi_event_msg **ev);
unsigned int kvmi_dom_pending_events(struct kvmi_dom *dom);
void kvmi_event_free(struct kvmi_event_msg *ev);

/*
 * Since 0.4 (KVMI_CLIENT_0.4): one thread waiting on many domains.  A
 * descriptor (an eventfd, owned by the domain, closed by kvmi_dom_close())
 * that polls readable (POLLIN, EPOLLIN) exactly while kvmi_dom_pop_event()
 * has an event to give, a malformed event is to be reported, or the VMM is
 * gone; kvmi_dom_next_event(dom, 0, &ev) then says which.  Never read or
 * write it: the library keeps its level.  Put the descriptors of all the
 * domains in one poll()/epoll set and take one event per readiness (the
 * level stays up while more are queued).
 *
 * From the first call on, the domain's background reader thread reads the
 * socket whenever no API call waits (without it, only after 2 ms of API
 * idleness): every event then costs a wake-up of that thread and one of
 * the thread in poll().  A single domain served by one thread is faster
 * with kvmi_dom_next_event() alone.  Returns the descriptor (the same one
 * on every call) or a negative errno.
 */
int kvmi_dom_event_fd(struct kvmi_dom *dom);

/* True for events the VMM waits a reply for (all but UNHOOK, CMD_ERROR). */
bool kvmi_event_needs_reply(const struct kvmi_event_msg *ev);

/* Reply to @ev: kvmi_vcpu_hdr{ev->vcpu} + kvmi_event_reply{action,
 * ev->event} + @specific (the event's reply struct, e.g.
 * struct kvmi_event_pf_reply; NULL/0 when the event has none). */
int kvmi_dom_reply_event(struct kvmi_dom *dom, const struct kvmi_event_msg *ev,
			 uint8_t action, const void *specific, size_t specific_size);
/* libkvmi-style: header {KVMI_EVENT_REPLY, size, seq} + @data as given. */
int kvmi_dom_reply_event_raw(struct kvmi_dom *dom, uint32_t seq, const void *data,
			     size_t size);

/* ------------------------------------------------------------------ */
/* Batches: CONTROL_CMD_RESPONSE{enable=0,now=1} + queued messages +    */
/* CONTROL_CMD_RESPONSE{enable=1,now=wait}, in one write, as libkvmi.  */
/* ------------------------------------------------------------------ */

int kvmi_batch_new(struct kvmi_dom *dom, struct kvmi_batch **out);
int kvmi_batch_set_registers(struct kvmi_batch *b, uint16_t vcpu,
			     const struct kvmi_x86_regs *regs);
int kvmi_batch_set_page_access(struct kvmi_batch *b, const uint64_t *gpa,
			       const uint8_t *access, unsigned int count, uint16_t view);
int kvmi_batch_pause_vcpu(struct kvmi_batch *b, uint16_t vcpu, bool wait);
int kvmi_batch_control_events(struct kvmi_batch *b, uint16_t vcpu, uint16_t event_id,
			      bool enable);
/* Queue an event reply.  The batch is then sent without waiting for any
 * answer (the vCPU resumes as soon as the VMM reads the reply). */
int kvmi_batch_reply_event(struct kvmi_batch *b, const struct kvmi_event_msg *ev,
			   uint8_t action, const void *specific, size_t specific_size);
/* Any message (payload as for kvmi_dom_command). */
int kvmi_batch_add(struct kvmi_batch *b, uint16_t id, const void *req, size_t req_size);
/* Send the batch.  Empty: nothing sent.  Only an event reply: sent bare.
 * Otherwise waits for the reply to the closing CONTROL_CMD_RESPONSE unless
 * an event reply is queued.  The batch may be refilled afterwards. */
int kvmi_batch_submit(struct kvmi_batch *b);
void kvmi_batch_destroy(struct kvmi_batch *b);

/* ------------------------------------------------------------------ */
/* Names and messages                                                  */
/* ------------------------------------------------------------------ */

/* "GET_REGISTERS", "PF", ... or NULL for ids without a name. */
const char *kvmi_command_name(uint16_t id);
const char *kvmi_event_name(uint16_t id);
/* A sentence for a negative errno returned by this library. */
const char *kvmi_strerror(int err);
/* "00112233-4455-6677-8899-aabbccddeeff" */
void kvmi_uuid_str(const uint8_t uuid[16], char out[37]);
/* Since 0.3: the reverse ("00112233-4455-..." or 32 hex digits, either
 * case).  0 or -EINVAL. */
int kvmi_uuid_parse(const char *str, uint8_t uuid[16]);

#ifdef __cplusplus
}
#endif

#endif /* KVMI_CLIENT_H */
