/* Client library internals shared by the lib/ files.  Not installed.
 *
 * Internal non-static functions use the kc_ prefix so that a static link of
 * this library next to the VMM (integration tests) cannot collide. */
#ifndef KVMI_CLIENT_INTERNAL_H
#define KVMI_CLIENT_INTERNAL_H

#include <kvmi/kvmi.h>

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

/* A complete message read from the VMM (header + payload). */
struct kc_msg {
	struct kvmi_msg_hdr hdr;
	uint8_t *payload;          /* hdr.size bytes, malloc'd */
	bool has_fd;               /* a descriptor came with it (SCM_RIGHTS) */
	int fd;                    /* owned by whoever holds the message */
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
	unsigned long stray_msgs;          /* non-event messages nobody waited for */

	struct kc_bulk *bulk;              /* pipelined READ_PHYSICAL in flight (bulk.c) */

	bool reader_started;
	pthread_t reader;
};

/* transport.c */
int64_t kc_now_ms(void);
int64_t kc_deadline(int timeout_ms);

int kc_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len);
int kc_listen(const char *addr, int *out_fd);
int kc_accept(int lfd, int timeout_ms, int *out_fd);
int kc_read_full(int fd, void *buf, size_t len, int64_t deadline);
/* kc_read_full that also receives descriptors (SCM_RIGHTS, close-on-exec):
 * the first one lands in *passed (which starts at -1), any further one is
 * closed and counted in *extra. */
int kc_read_full_fds(int fd, void *buf, size_t len, int64_t deadline, int *passed,
		     unsigned int *extra);
int kc_skip(int fd, size_t len, int64_t deadline);
int kc_write_full(int fd, const void *buf, size_t len, int64_t deadline);
int kc_writev_full(int fd, struct iovec *iov, int iovcnt, int64_t deadline);

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
int kc_cond_wait(struct kvmi_dom *dom, int64_t deadline);
/* Reader thread, dom->lock held: takes a reply of the bulk read in flight. */
struct kc_msg;
bool kc_bulk_take(struct kvmi_dom *dom, struct kc_msg *m);
int kc_send(struct kvmi_dom *dom, struct iovec *iov, int iovcnt);
int kc_start_reader(struct kvmi_dom *dom);
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
