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
#define CLI_MAX_MSRS 16

struct cli {
	struct kvmi_dom *dom;
	const char *name;                  /* guest name, for messages */
	FILE *out;
	int wait_ms;                       /* how long verbs wait for events */
	struct kvmi_event_msg *held[CLI_MAX_HELD];   /* paused vCPUs */
	unsigned int nheld;
	unsigned int traps_expected;       /* injections not yet reported */
	bool unhooking;                    /* the VMM sent UNHOOK */
	/* Session-wide settings of `msr watch` and `protect`: they stay until
	 * undone or the end of the session, and a vCPU that reports
	 * CREATE_VCPU gets them before its reply (cli_setup_vcpu). */
	uint32_t msrs[CLI_MAX_MSRS];       /* watched MSRs */
	unsigned int nmsrs;
	bool pf_on;                        /* PF events enabled on every vCPU */
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
	verb_sleep, verb_string, verb_protect, verb_msr, verb_step, verb_wait_create;

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

/* "lstar", "sysenter_eip", ... or a number -> MSR index. */
int cli_parse_msr(const char *s, uint32_t *msr);
/* Name of a common MSR, NULL for others; table entry i (NULL past the end). */
const char *cli_msr_name(uint32_t msr);
const char *cli_msr_table(unsigned int i, uint32_t *msr);
/* "rwx", "r-x", "---", "rw", "" -> KVMI_PAGE_ACCESS_* mask. */
int cli_parse_perms(const char *s, uint8_t *access);
/* "r", "w", "x" (or several letters) for a KVMI_PAGE_ACCESS_* mask. */
const char *cli_access_str(uint8_t access, char buf[4]);

/* GET_GUEST_INFO's vCPU count (with the error message). */
int cli_vcpu_count(struct cli *c, uint32_t *n);
/* SET_PAGE_ACCESS for @n pages (gfn << 12 addresses), in messages of at
 * most 511 entries. */
int cli_set_access(struct cli *c, const uint64_t *gpas, size_t n, uint8_t access);
/* Turn the session's watches (MSRs, PF events) on one vCPU on. */
int cli_setup_vcpu(struct cli *c, uint16_t vcpu);

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
/* One JSON object per line, for `trace` and `step`; @reply (NULL: left
 * out) says how the tool answered: "continue", "veto", "lift", "none". */
void cli_print_event_json(struct cli *c, const struct kvmi_event_msg *ev, const char *reply);
/* Reply CONTINUE to every held event; returns how many were released. */
unsigned int cli_release_held(struct cli *c);

const char *cli_mode_name(uint32_t mode);

#endif
