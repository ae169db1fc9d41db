/* SPDX-License-Identifier: MIT */
/*
 * test_server_util.h - shared pieces of the protocol-server unit tests:
 * TAP output, a scripted fake backend (struct kvmi_backend), and a harness
 * that runs kvmi_server_serve() on one end of a socketpair while the test
 * plays the introspection tool on the other end.
 */
#ifndef TEST_SERVER_UTIL_H
#define TEST_SERVER_UTIL_H

#include "introspection.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- TAP ---- */
extern int tap_n, tap_failed;
void tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tap_done(void);
void tap_hexdiff(const char *what, const uint8_t *got, size_t got_len,
		 const uint8_t *want, size_t want_len);

/* ---- fake backend ---- */
enum fake_op {
	FOP_NONE, FOP_PAUSE, FOP_CONTROL_VM_EVENTS, FOP_READ, FOP_WRITE, FOP_SET_PAGE_ACCESS,
	FOP_GET_MAP_TOKEN, FOP_GET_MAX_GFN, FOP_CONTROL_SPP, FOP_SET_PAGE_WRITE_BITMAP,
	FOP_SET_PAGE_SVE, FOP_GET_NEXT_GFN, FOP_QUERY_PHYSICAL, FOP_CREATE_VIEW,
	FOP_DESTROY_VIEW, FOP_TSC, FOP_CONTROL_EVENTS, FOP_CONTROL_CR, FOP_CONTROL_MSR,
	FOP_GET_REGISTERS, FOP_SET_REGISTERS, FOP_GET_CPUID, FOP_GET_XSAVE, FOP_SET_XSAVE,
	FOP_GET_XCR, FOP_INJECT, FOP_MTRR, FOP_TRANSLATE, FOP_SINGLESTEP, FOP_SET_VE,
	FOP_DISABLE_VE, FOP_SWITCH_VIEW, FOP_GET_VIEW, FOP_CONTROL_VIEW, FOP_ALLOC_GFN,
	FOP_FREE_GFN, FOP_CHANGE_GFN, FOP_SESSION_START, FOP_SESSION_END, FOP_MAP_MEMORY,
	FOP_PAUSE_WAIT,
};

struct fake_call {
	enum fake_op op;
	unsigned vcpu;
	uint64_t a[4];
	uint8_t data[4096];
	size_t len;
};

#define FAKE_MAX_CALLS 64
#define FAKE_MAX_VCPUS 8

struct fake_job {
	struct fake_job *next;
	struct kvmi_vcpu_job *job;
};

struct kvmi_backend {
	struct kvmi_backend_ops ops;    /* what the server gets; tests may NULL ops */
	unsigned vcpus;
	/* scripted answer for the next op: data copied out, or err returned */
	const uint8_t *script;
	size_t script_len;
	int err;
	struct kvmi_features features;
	struct kvmi_event_arch arch;
	int check_command_err[KVMI_NUM_MESSAGES];
	int check_event_err[KVMI_NUM_EVENTS];
	int check_pf_walk_err;          /* CHECK_EVENT(KVMI_X_EVENT_PF_PAGE_WALK) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct fake_call calls[FAKE_MAX_CALLS];
	unsigned ncalls;
	unsigned total_calls;            /* not capped at FAKE_MAX_CALLS */
	atomic_uint wait_reply_calls;    /* threaded mode: sleeping waits begun */
	/* threaded mode: jobs wait in per-vCPU queues (like the VMM) */
	bool threaded;
	struct fake_job *jobs[FAKE_MAX_VCPUS];
	unsigned wakes[FAKE_MAX_VCPUS];
};

/* All ops set; every event supported; 4 vCPUs. */
void fake_init(struct kvmi_backend *f);
void fake_destroy(struct kvmi_backend *f);
/* Threaded mode: queue_vcpu_job/wait_reply/wake_vcpu like a VMM. */
void fake_make_threaded(struct kvmi_backend *f);
/* vCPU thread (threaded mode): run queued jobs; returns how many ran. */
unsigned fake_run_jobs(struct kvmi_backend *f, unsigned vcpu);
unsigned fake_pending_jobs(struct kvmi_backend *f, unsigned vcpu);
/* Copy of call i (or an op == FOP_NONE call if out of range). */
struct fake_call fake_call(struct kvmi_backend *f, unsigned i);
unsigned fake_ncalls(struct kvmi_backend *f);
void fake_reset_calls(struct kvmi_backend *f);
/* Finds the last call of kind op; false if none. */
bool fake_find(struct kvmi_backend *f, enum fake_op op, struct fake_call *out);

/* ---- harness ---- */
struct harness {
	struct kvmi_server *srv;
	struct kvmi_backend *fake;
	int tool;               /* the tool's end */
	int vmm;                /* the server's end */
	pthread_t thread;
	int serve_ret;
	bool running;
};

/* Starts a server on a socketpair. cfg may be NULL (defaults). */
int h_start(struct harness *h, struct kvmi_backend *fake, const struct kvmi_server_config *cfg);
/* Closes the tool end, waits for serve() to return, destroys. Returns serve()'s result. */
int h_stop(struct harness *h);
/* Waits for serve() to return (the server closed); returns its result. */
int h_join(struct harness *h);
int h_send(struct harness *h, const void *buf, size_t len);
/* Reads exactly len bytes (5 s timeout). 0, -ETIMEDOUT or -ECONNRESET. */
int h_read(struct harness *h, void *buf, size_t len);
/* Reads one framed message; payload must hold 65535 bytes. */
int h_recv(struct harness *h, struct kvmi_msg_hdr *hdr, uint8_t *payload);
/* true if the server closed the connection (EOF within 5 s). */
bool h_closed(struct harness *h);
/* Sends a message built from parts. */
int h_cmd(struct harness *h, uint16_t id, uint32_t seq, const void *p1, size_t l1,
	  const void *p2, size_t l2);
/* Sends a command and reads its reply; returns the reply's err, or a
 * large positive value (1 << 20) if no valid reply came. data/len optional. */
int h_call(struct harness *h, uint16_t id, const void *p1, size_t l1, const void *p2, size_t l2,
	   void *data, size_t *len);
/* Sends CHECK_COMMAND(GET_VERSION) with a marker seq and expects that the
 * very next message is its reply: proves nothing else was sent before. */
bool h_sync(struct harness *h);
int h_vcpu_call(struct harness *h, uint16_t id, uint16_t vcpu, const void *req, size_t len,
		void *data, size_t *dlen);

/* A vCPU thread raising one event (kvmi_vcpu_event) in the background. */
struct ev_thread {
	pthread_t thread;
	struct kvmi_server *srv;
	unsigned vcpu, event;
	uint8_t data[64];
	size_t len;
	uint8_t rpl[512];
	size_t rpl_len;
	bool pauses;                    /* kvmi_vcpu_handle_pauses instead */
	struct kvmi_event_result res;
	int ret;
};
void ev_start(struct ev_thread *t, struct kvmi_server *srv, unsigned vcpu, unsigned event,
	      const void *data, size_t len, size_t rpl_len);
/* Same, running kvmi_vcpu_handle_pauses(). */
void ev_start_pauses(struct ev_thread *t, struct kvmi_server *srv, unsigned vcpu);
void ev_join(struct ev_thread *t);
/* Reads one event message; returns its seq (0 on failure). */
uint32_t h_read_event(struct harness *h, struct kvmi_event *ev, uint8_t *spec, size_t *spec_len);
/* Sends an EVENT_REPLY: vcpu hdr + {action, event} + spec. */
int h_event_reply(struct harness *h, uint32_t seq, uint16_t vcpu, uint8_t action, uint8_t event,
		  const void *spec, size_t len);

/* hex helpers */
size_t hex_to_bin(const char *hex, uint8_t *out, size_t max);

#endif
