/* Scripted fake VMM for the client-library unit tests.
 *
 * A fake VMM owns one end of a socketpair and runs a script in its own
 * thread: "expect these exact bytes from the tool", "send these bytes",
 * "sleep", "shut the socket down".  Every mismatch is recorded with the
 * offset of the first differing byte, so a test can print a useful diff. */
#ifndef KVMI_TEST_CLIENT_FAKE_H
#define KVMI_TEST_CLIENT_FAKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fake_op { FAKE_EXPECT, FAKE_SEND, FAKE_SLEEP_MS, FAKE_SHUTDOWN, FAKE_EXPECT_EOF, FAKE_GATE, FAKE_NOTIFY,
	       FAKE_SEND_FD };

struct fake_step {
	enum fake_op op;
	uint8_t *bytes;           /* owned */
	size_t len;               /* bytes, or milliseconds for FAKE_SLEEP_MS */
	int fd;                   /* FAKE_SEND_FD: passed with the first byte (owned) */
	char what[64];
};

struct fake_vmm {
	int fd;                   /* the VMM's end */
	int tool_fd;              /* the tool's end (handed to the library) */
	struct fake_step *steps;
	size_t nsteps, cap;
	int timeout_ms;           /* per expect step */
	pthread_t thread;
	int gate[2];              /* FAKE_GATE waits for fake_open_gate() */
	int notify[2];            /* FAKE_NOTIFY wakes fake_wait_notify() */
	bool running;
	/* results */
	bool ok;
	char error[512];
	size_t steps_done;
};

int fake_init(struct fake_vmm *f);
/* Instead of a socketpair: connect to a listening tool at unix:@NAME / unix:PATH. */
int fake_init_connect(struct fake_vmm *f, const char *addr);
void fake_expect(struct fake_vmm *f, const void *bytes, size_t len, const char *what);
void fake_expect_hex(struct fake_vmm *f, const char *hex, const char *what);
void fake_send(struct fake_vmm *f, const void *bytes, size_t len, const char *what);
void fake_send_hex(struct fake_vmm *f, const char *hex, const char *what);
/* Send bytes with a dup of @fd attached to the first one (SCM_RIGHTS). */
void fake_send_fd(struct fake_vmm *f, const void *bytes, size_t len, int fd, const char *what);
void fake_sleep(struct fake_vmm *f, unsigned int ms);
void fake_shutdown(struct fake_vmm *f);
void fake_expect_eof(struct fake_vmm *f);
/* Block the script until the test calls fake_open_gate() (once per gate). */
void fake_gate(struct fake_vmm *f);
void fake_open_gate(struct fake_vmm *f);
/* Let the test know the script got this far; false after 10 s. */
void fake_notify(struct fake_vmm *f);
bool fake_wait_notify(struct fake_vmm *f);
int fake_start(struct fake_vmm *f);
/* Wait for the script to finish; returns true if every step matched. */
bool fake_join(struct fake_vmm *f);
void fake_destroy(struct fake_vmm *f);

/* Read everything the tool still sends within @ms (for diagnostics). */
size_t fake_drain(struct fake_vmm *f, uint8_t *buf, size_t cap, int ms);

#endif
