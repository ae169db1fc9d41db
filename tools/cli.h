/* The `kvmi` command-line tool: shared session state and helpers.
 *
 * One session = one connected guest.  Verbs (one file each, verb_*.c) run
 * against it in script order.  Events that a verb does not consume go
 * through cli_handle_event(): PAUSE_VCPU events are held (the vCPU stays
 * paused until `resume`), everything else is printed and continued. */
#ifndef KVMI_CLI_H
#define KVMI_CLI_H

#include <kvmi/kvmi.h>

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_MAX_HELD 1024

struct cli {
	struct kvmi_dom *dom;
	const char *name;                  /* guest name, for messages */
	FILE *out;
	int wait_ms;                       /* how long verbs wait for events */
	struct kvmi_event_msg *held[CLI_MAX_HELD];   /* paused vCPUs */
	unsigned int nheld;
	unsigned int traps_expected;       /* injections not yet reported */
	bool unhooking;                    /* the VMM sent UNHOOK */
};

struct cli_verb {
	const char *name;
	const char *args;                  /* usage, "" if none */
	const char *help;
	int min_args, max_args;            /* max < 0: any number */
	int (*run)(struct cli *c, int argc, char **argv);
};

extern const struct cli_verb verb_info, verb_check, verb_regs, verb_read, verb_write,
	verb_translate, verb_pause, verb_resume, verb_inject, verb_trace, verb_events,
	verb_sleep, verb_string;

extern volatile sig_atomic_t cli_stop;     /* set by SIGINT/SIGTERM */

/* Print "kvmi: <what>: <error in words>" on stderr; returns err. */
int cli_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a usage problem on stderr; returns -EINVAL. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_u16(const char *s, uint16_t *out);
int cli_parse_vcpu(struct cli *c, const char *s, uint16_t *vcpu);
/* "cc 90 90" or "cc9090" or "0xcc,0x90" -> bytes; malloc'd. */
int cli_parse_hex(int argc, char **argv, uint8_t **out, size_t *len);
int cli_parse_seconds(const char *s, int *ms);

void cli_hexdump(FILE *f, uint64_t addr, const uint8_t *buf, size_t len);

/* Wait up to @timeout_ms for an event; events @want rejects go through
 * cli_handle_event().  Returns 0 with *ev set, -ETIMEDOUT, -EINTR (stop
 * requested), or a library error. */
int cli_wait_for(struct cli *c, int timeout_ms,
		 bool (*want)(const struct kvmi_event_msg *ev, void *arg), void *arg,
		 struct kvmi_event_msg **ev);
/* Default treatment of an event (see the header comment); takes ownership. */
void cli_handle_event(struct cli *c, struct kvmi_event_msg *ev);
/* CONTINUE, with the event's own reply part where it has one. */
int cli_continue(struct cli *c, const struct kvmi_event_msg *ev);
/* One line describing an event, for humans. */
void cli_print_event(struct cli *c, const struct kvmi_event_msg *ev);
/* One JSON object per line, for `trace`. */
void cli_print_event_json(struct cli *c, const struct kvmi_event_msg *ev);
/* Reply CONTINUE to every held event; returns how many were released. */
unsigned int cli_release_held(struct cli *c);

const char *cli_mode_name(uint32_t mode);

#endif
