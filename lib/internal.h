/* Client library internals shared by the lib/ files.  Not installed.
 *
 * Internal non-static functions use the kc_ prefix so that a static link of
 * this library next to the VMM (integration tests) cannot collide. */
#ifndef KVMI_CLIENT_INTERNAL_H
#define KVMI_CLIENT_INTERNAL_H

#include <kvmi/kvmi.h>
#include "../src/proto/kvmi-proto.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define KC_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define KC_DEFAULT_IO_TIMEOUT_MS        15000
/* libkvmi's accepted range for the VMM's handshake struct_size. */
#define KC_HELLO_MIN KVMI_HANDSHAKE_VMM_MIN_SIZE
#define KC_HELLO_MAX KVMI_HANDSHAKE_VMM_MAX_SIZE
/* Replies whose (id, seq) we gave up on; late arrivals are dropped. */
#define KC_ABANDONED_SLOTS 16

/* A complete message read from the VMM (header + payload).  While it is
 * dispatched, payload points into the domain's read buffer (borrowed);
 * a reply handed to a command gets its own malloc'd copy. */
struct kc_msg {
	struct kvmi_msg_hdr hdr;
	uint8_t *payload;          /* hdr.size bytes */
	bool has_fd;               /* a descriptor came with it (SCM_RIGHTS) */
	int fd;                    /* owned by whoever holds the message */
};

/* The read buffer holds any whole message (header + u16 size) after
 * compaction, with room to read ahead. */
#define KC_RX_CAP     (128u * 1024u)
#define KC_RX_MSG_MAX (sizeof(struct kvmi_msg_hdr) + 0xffffu)
/* Descriptors received but not yet attached to their message. */
#define KC_RX_FDS     4

struct kc_rx_fd {
	int fd;                    /* -1: several came at once, the message gets none */
	uint64_t last;             /* stream offset of the last byte of the recvmsg
				    * that carried it */
};

struct kc_event_node {
	struct kc_event_node *next;
	struct kvmi_event_msg *ev;
};

struct kvmi_dom {
	int fd;
	struct kvmi_config cfg;            /* copy, size-normalized */
	struct kvmi_hello hello;
	uint32_t version;
	struct kvmi_features features;
	void *user;

	atomic_uint seq;                   /* last seq handed out */

	pthread_mutex_t cmd_lock;          /* one command/batch in flight */
	pthread_mutex_t send_lock;         /* whole messages on the wire */

	pthread_mutex_t lock;              /* everything below */
	pthread_cond_t cond;
	atomic_uint changes;               /* bumped with every broadcast of cond */
	bool connected;
	bool closing;
	bool published;                    /* handed to the user: callbacks allowed */
	int disconnect_err;                /* why the reader stopped */
	/* pending command reply */
	bool waiting;
	uint16_t wait_id;
	uint32_t wait_seq;
	bool wait_fd;                      /* the waiting command takes a descriptor */
	bool have_reply;
	struct kc_msg reply;
	struct { uint16_t id; uint32_t seq; } abandoned[KC_ABANDONED_SLOTS];
	unsigned int abandoned_next;
	/* event queue */
	struct kc_event_node *ev_head, *ev_tail;
	unsigned int ev_count;
	unsigned int bad_events;           /* malformed events dropped, not yet reported */
	int ev_fd;                         /* kvmi_dom_event_fd()'s eventfd, -1: none yet */
	bool ev_fd_set;                    /* it holds a count (polls readable) */
	unsigned long stray_msgs;          /* non-event messages nobody waited for */

	struct kc_bulk *bulk;              /* pipelined READ_PHYSICAL in flight (bulk.c) */
	int reply_err;                     /* have_reply, but it could not be kept */

	/* Reading (recv.c).  At most one thread reads the socket: the leader
	 * (leading).  An API thread that waits for a message leads when
	 * nobody else does, otherwise it follows on cond.  The reader thread
	 * leads only after the API has been idle for a while. */
	bool leading;
	bool rx_notify;                    /* the dispatch round woke someone */
	unsigned int api_waiters;          /* API threads inside kc_wait() */
	unsigned int api_gen;              /* bumped by every kc_wait() */
	uint64_t api_last_ns;              /* when the last kc_wait() ended */
	pthread_cond_t rcond;              /* the parked reader thread */
	/* Owned by the leader, no lock needed while leading: */
	uint8_t *rx_buf;                   /* KC_RX_CAP bytes */
	size_t rx_head, rx_tail;           /* bytes not dispatched yet */
	uint64_t rx_pos;                   /* stream offset of rx_buf[rx_head] */
	bool rx_partial;                   /* a message has started ... */
	uint64_t rx_partial_pos;           /* ... at this stream offset ... */
	int64_t rx_msg_deadline;           /* ... and its rest is due then (-1: never) */
	struct kc_rx_fd rx_fds[KC_RX_FDS];
	unsigned int rx_nfds;

	bool reader_started;
	pthread_t reader;
};

/* config.c */
int kc_config_copy(struct kvmi_config *dst, const struct kvmi_config *src);
void kc_log(const struct kvmi_config *cfg, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* handshake.c */
int kc_handshake(struct kvmi_dom *dom);

/* dom.c */
uint32_t kc_next_seq(struct kvmi_dom *dom);
/* dom->lock held: wake waiters / wait for a change (spinning first). */
void kc_notify(struct kvmi_dom *dom);
/* dom->lock held: the event descriptor polls readable exactly while an
 * event is queued, a malformed one is to be reported or the VMM is gone. */
void kc_event_fd_sync(struct kvmi_dom *dom);
int kc_cond_wait(struct kvmi_dom *dom, int64_t deadline);
/* The leader, dom->lock held: takes a reply of the bulk read in flight
 * (sets dom->rx_notify when the bulk reader should look). */
bool kc_bulk_take(struct kvmi_dom *dom, struct kc_msg *m);
int kc_send(struct kvmi_dom *dom, struct iovec *iov, int iovcnt);

/* recv.c */
int kc_rx_init(struct kvmi_dom *dom);
void kc_rx_free(struct kvmi_dom *dom);
int kc_start_reader(struct kvmi_dom *dom);
/* dom->lock held: what an API thread waits for. */
typedef bool (*kc_done_fn)(struct kvmi_dom *dom, const void *arg);
/* dom->lock held.  Waits until done(dom, arg): reads and dispatches
 * messages itself when no other thread reads, else waits for the reader's
 * hand-over.  @deadline in kvmi_proto_now_ms() time, -1: none; now or
 * earlier: only what is already in the socket.  Returns 0 once done,
 * -ETIMEDOUT, or -ENOTCONN when the connection is gone (done() first). */
int kc_wait(struct kvmi_dom *dom, int64_t deadline, kc_done_fn done, const void *arg);
/* dom->lock held: the domain is being closed, wait until no API thread
 * is inside kc_wait(). */
void kc_wait_quiesce(struct kvmi_dom *dom);
/* Send header(id, seq) + iov, wait for the reply with the same (id, seq).
 * Caller holds cmd_lock.  On success the reply is moved into *out. */
int kc_send_wait(struct kvmi_dom *dom, uint16_t id, uint32_t seq, int64_t deadline,
		 struct iovec *iov, int iovcnt, bool wait_reply, struct kc_msg *out);
int kc_wait_reply(struct kvmi_dom *dom, uint16_t id, uint32_t seq, int64_t deadline,
		  struct kc_msg *out);
/* Check a reply (size, kvmi_error_code) and copy its data: min(received,
 * rpl_size) bytes, the rest of rpl zero-filled. */
int kc_reply_data(const struct kc_msg *m, void *rpl, size_t rpl_size, size_t *received);
int kc_map_err(int32_t err);

/* The usual request/reply round trip: one payload built from iov. */
int kc_command(struct kvmi_dom *dom, uint16_t id, struct iovec *iov, int iovcnt,
	       void *rpl, size_t rpl_size, size_t *received);
/* Same, for a reply that carries a descriptor: *fd gets it (the caller
 * closes it), or -1 if none came (the command's error then says why, or
 * the reply is -EBADMSG). */
int kc_command_fd(struct kvmi_dom *dom, uint16_t id, struct iovec *iov, int iovcnt,
		  void *rpl, size_t rpl_size, size_t *received, int *fd);
/* Close a message's descriptor, if any. */
void kc_msg_close_fd(struct kc_msg *m);
/* Same, for vCPU-scoped commands: prepends struct kvmi_vcpu_hdr. */
int kc_vcpu_command(struct kvmi_dom *dom, uint16_t id, uint16_t vcpu,
		    const void *req, size_t req_size,
		    void *rpl, size_t rpl_size, size_t *received);

/* events.c */
int kc_decode_event(const struct kc_msg *m, struct kvmi_event_msg **out);
void kc_event_build_reply(struct iovec iov[3], struct kvmi_msg_hdr *hdr,
			  uint8_t rpl_hdr[16], const struct kvmi_event_msg *ev,
			  uint8_t action, const void *specific, size_t specific_size);

#endif
