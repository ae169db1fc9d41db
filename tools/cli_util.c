/* `kvmi` CLI: parsing, printing and the default event handling. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

volatile sig_atomic_t cli_stop;

int cli_err(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("kvmi: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", kvmi_strerror(err));
	return err;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("kvmi: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

int cli_parse_u16(const char *s, uint16_t *out)
{
	uint64_t v;

	if (cli_parse_u64(s, &v) || v > UINT16_MAX)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int cli_parse_vcpu(struct cli *c, const char *s, uint16_t *vcpu)
{
	(void)c;
	if (cli_parse_u16(s, vcpu))
		return cli_usage("'%s' is not a vCPU number", s);
	return 0;
}

int cli_parse_seconds(const char *s, int *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || v < 0 || v > 86400.0 * 365)
		return -EINVAL;
	*ms = (int)(v * 1000);
	return 0;
}

static const struct { uint32_t index; const char *name; } msr_names[] = {
	{ 0xc0000080, "efer" },
	{ 0xc0000081, "star" },
	{ 0xc0000082, "lstar" },
	{ 0xc0000083, "cstar" },
	{ 0xc0000084, "sfmask" },
	{ 0xc0000100, "fs_base" },
	{ 0xc0000101, "gs_base" },
	{ 0xc0000102, "kernel_gs_base" },
	{ 0x00000174, "sysenter_cs" },
	{ 0x00000175, "sysenter_esp" },
	{ 0x00000176, "sysenter_eip" },
	{ 0x00000277, "pat" },
};
#define NMSR_NAMES (sizeof(msr_names) / sizeof(msr_names[0]))

const char *cli_msr_table(unsigned int i, uint32_t *msr)
{
	if (i >= NMSR_NAMES)
		return NULL;
	*msr = msr_names[i].index;
	return msr_names[i].name;
}

const char *cli_msr_name(uint32_t msr)
{
	for (size_t i = 0; i < NMSR_NAMES; i++)
		if (msr_names[i].index == msr)
			return msr_names[i].name;
	return NULL;
}

int cli_parse_msr(const char *s, uint32_t *msr)
{
	uint64_t v;

	for (size_t i = 0; i < NMSR_NAMES; i++)
		if (!strcasecmp(s, msr_names[i].name)) {
			*msr = msr_names[i].index;
			return 0;
		}
	if (cli_parse_u64(s, &v) || v > UINT32_MAX)
		return -EINVAL;
	*msr = (uint32_t)v;
	return 0;
}

int cli_parse_perms(const char *s, uint8_t *access)
{
	static const char letters[] = "rwx";
	size_t n = strlen(s);
	uint8_t a = 0;

	if (n == 3 && strchr("r-", s[0]) && strchr("w-", s[1]) && strchr("x-", s[2])) {
		/* "r-x": one column per right, '-' where it is withheld. */
		for (size_t i = 0; i < 3; i++)
			if (s[i] != '-')
				a |= (uint8_t)(1u << i);
		*access = a;
		return 0;
	}
	/* Otherwise the letters granted, each once: "rw", "x". */
	if (n == 0 || n > 3)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const char *p = s[i] ? strchr(letters, s[i]) : NULL;
		uint8_t bit;

		if (!p)
			return -EINVAL;
		bit = (uint8_t)(1u << (p - letters));
		if (a & bit)
			return -EINVAL;
		a |= bit;
	}
	*access = a;
	return 0;
}

const char *cli_access_str(uint8_t access, char buf[4])
{
	size_t n = 0;

	if (access & KVMI_PAGE_ACCESS_R)
		buf[n++] = 'r';
	if (access & KVMI_PAGE_ACCESS_W)
		buf[n++] = 'w';
	if (access & KVMI_PAGE_ACCESS_X)
		buf[n++] = 'x';
	buf[n] = '\0';
	return buf;
}

int cli_vcpu_count(struct cli *c, uint32_t *n)
{
	int err = kvmi_dom_get_guest_info(c->dom, n);

	if (err)
		return cli_err(err, "GET_GUEST_INFO");
	return 0;
}

int cli_set_access(struct cli *c, const uint64_t *gpas, size_t n, uint8_t access)
{
	uint8_t acc[511];

	memset(acc, access, sizeof(acc));
	for (size_t done = 0; done < n;) {
		unsigned int k = n - done > 511 ? 511 : (unsigned int)(n - done);
		int err = kvmi_dom_set_page_access(c->dom, gpas + done, acc, k, 0);

		if (err)
			return cli_err(err, "SET_PAGE_ACCESS (%u pages from 0x%" PRIx64 ")", k, gpas[done]);
		done += k;
	}
	return 0;
}

int cli_setup_vcpu(struct cli *c, uint16_t vcpu)
{
	int err;

	if (c->pf_on) {
		err = kvmi_dom_control_events(c->dom, vcpu, KVMI_EVENT_PF, true);
		if (err)
			return cli_err(err, "enabling PF events on vcpu %u", vcpu);
	}
	if (c->nmsrs) {
		err = kvmi_dom_control_events(c->dom, vcpu, KVMI_EVENT_MSR, true);
		if (err)
			return cli_err(err, "enabling MSR events on vcpu %u", vcpu);
	}
	for (unsigned int i = 0; i < c->nmsrs; i++) {
		err = kvmi_dom_control_msr(c->dom, vcpu, c->msrs[i], true);
		if (err)
			return cli_err(err, "CONTROL_MSR 0x%x on vcpu %u", c->msrs[i], vcpu);
	}
	return 0;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int cli_parse_hex(int argc, char **argv, uint8_t **out, size_t *len)
{
	size_t cap = 0, n = 0;
	uint8_t *b = NULL;

	for (int i = 0; i < argc; i++) {
		const char *p = argv[i];

		while (*p) {
			int hi, lo;

			if (isspace((unsigned char)*p) || *p == ',' || *p == ':') {
				p++;
				continue;
			}
			if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
				p += 2;
			hi = hexval((unsigned char)p[0]);
			lo = hi < 0 ? -1 : hexval((unsigned char)p[1]);
			if (hi < 0 || lo < 0) {
				free(b);
				return -EINVAL;
			}
			if (n == cap) {
				uint8_t *nb;

				cap = cap ? cap * 2 : 64;
				nb = realloc(b, cap);
				if (!nb) {
					free(b);
					return -ENOMEM;
				}
				b = nb;
			}
			b[n++] = (uint8_t)(hi << 4 | lo);
			p += 2;
		}
	}
	if (!n) {
		free(b);
		return -EINVAL;
	}
	*out = b;
	*len = n;
	return 0;
}

void cli_hexdump(FILE *f, uint64_t addr, const uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len; off += 16) {
		size_t n = len - off < 16 ? len - off : 16;

		fprintf(f, "%016" PRIx64 ": ", addr + off);
		for (size_t i = 0; i < 16; i++) {
			if (i < n)
				fprintf(f, "%02x ", buf[off + i]);
			else
				fputs("   ", f);
			if (i == 7)
				fputc(' ', f);
		}
		fputs(" |", f);
		for (size_t i = 0; i < n; i++)
			fputc(isprint(buf[off + i]) ? buf[off + i] : '.', f);
		fputs("|\n", f);
	}
}

const char *cli_mode_name(uint32_t mode)
{
	switch (mode) {
	case 2: return "16-bit";
	case 4: return "32-bit";
	case 8: return "64-bit";
	default: return "unknown mode";
	}
}

static const char *event_label(uint8_t id, char *buf, size_t n)
{
	const char *name = kvmi_event_name(id);

	if (name)
		return name;
	snprintf(buf, n, "EVENT_%u", id);
	return buf;
}

void cli_print_event(struct cli *c, const struct kvmi_event_msg *ev)
{
	const struct kvmi_event_arch *a = &ev->common.arch;
	char lbl[16];

	fprintf(c->out, "event %s vcpu %u rip 0x%" PRIx64, event_label(ev->event, lbl, sizeof(lbl)),
		ev->vcpu, a->regs.rip);
	switch (ev->event) {
	case KVMI_EVENT_CR:
		fprintf(c->out, " cr%u 0x%" PRIx64 " -> 0x%" PRIx64, ev->specific.cr.cr,
			ev->specific.cr.old_value, ev->specific.cr.new_value);
		break;
	case KVMI_EVENT_MSR:
		fprintf(c->out, " msr 0x%x 0x%" PRIx64 " -> 0x%" PRIx64, ev->specific.msr.msr,
			ev->specific.msr.old_value, ev->specific.msr.new_value);
		break;
	case KVMI_EVENT_BREAKPOINT:
		fprintf(c->out, " gpa 0x%" PRIx64 " len %u", ev->specific.breakpoint.gpa,
			ev->specific.breakpoint.insn_len);
		break;
	case KVMI_EVENT_PF:
		fprintf(c->out, " gva 0x%" PRIx64 " gpa 0x%" PRIx64 " access %c%c%c%s",
			ev->specific.pf.gva, ev->specific.pf.gpa,
			ev->specific.pf.access & KVMI_PAGE_ACCESS_R ? 'r' : '-',
			ev->specific.pf.access & KVMI_PAGE_ACCESS_W ? 'w' : '-',
			ev->specific.pf.access & KVMI_PAGE_ACCESS_X ? 'x' : '-',
			ev->specific.pf.flags & KVMI_EVENT_PF_FLAG_PAGE_WALK ? " page-walk" : "");
		break;
	case KVMI_EVENT_TRAP:
		fprintf(c->out, " vector %u error_code 0x%x cr2 0x%" PRIx64, ev->specific.trap.vector,
			ev->specific.trap.error_code, ev->specific.trap.cr2);
		break;
	case KVMI_EVENT_DESCRIPTOR:
		fprintf(c->out, " descriptor %u %s", ev->specific.descriptor.descriptor,
			ev->specific.descriptor.write ? "write" : "read");
		break;
	case KVMI_EVENT_SINGLESTEP:
		fprintf(c->out, " %s", ev->specific.singlestep.failed ? "failed" : "ok");
		break;
	case KVMI_EVENT_CPUID:
		fprintf(c->out, " leaf 0x%x index 0x%x", ev->specific.cpuid.function,
			ev->specific.cpuid.index);
		break;
	case KVMI_EVENT_CMD_ERROR:
		fprintf(c->out, " command %u seq %u error %d", ev->specific.cmd_error.msg_id,
			ev->specific.cmd_error.msg_seq, ev->specific.cmd_error.err);
		break;
	}
	fputc('\n', c->out);
	fflush(c->out);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

#define JX(f, key, v) fprintf(f, ",\"" key "\":\"0x%" PRIx64 "\"", (uint64_t)(v))
#define JU(f, key, v) fprintf(f, ",\"" key "\":%" PRIu64, (uint64_t)(v))

/* The fields of the event-specific part, as JSON members. */
static void json_specific(FILE *f, const struct kvmi_event_msg *ev)
{
	const char *name;
	char acc[4];

	switch (ev->event) {
	case KVMI_EVENT_CR:
		JU(f, "cr", ev->specific.cr.cr);
		JX(f, "old_value", ev->specific.cr.old_value);
		JX(f, "new_value", ev->specific.cr.new_value);
		break;
	case KVMI_EVENT_MSR:
		JX(f, "msr", ev->specific.msr.msr);
		name = cli_msr_name(ev->specific.msr.msr);
		fputs(",\"msr_name\":", f);
		json_str(f, name ? name : "");
		JX(f, "old_value", ev->specific.msr.old_value);
		JX(f, "new_value", ev->specific.msr.new_value);
		break;
	case KVMI_EVENT_BREAKPOINT:
		JX(f, "gpa", ev->specific.breakpoint.gpa);
		JU(f, "insn_len", ev->specific.breakpoint.insn_len);
		break;
	case KVMI_EVENT_PF:
		fputs(",\"access\":", f);
		json_str(f, cli_access_str(ev->specific.pf.access, acc));
		JX(f, "gpa", ev->specific.pf.gpa);
		if (ev->specific.pf.flags & KVMI_EVENT_PF_FLAG_PAGE_WALK)
			fputs(",\"page_walk\":true", f);
		/* kvmi-vm cannot know the GVA of a read or write: null then. */
		if (ev->specific.pf.gva == KVMI_UNMAPPED_GVA)
			fputs(",\"gva\":null", f);
		else
			JX(f, "gva", ev->specific.pf.gva);
		break;
	case KVMI_EVENT_TRAP:
		JU(f, "vector", ev->specific.trap.vector);
		JX(f, "error_code", ev->specific.trap.error_code);
		JX(f, "cr2", ev->specific.trap.cr2);
		break;
	case KVMI_EVENT_DESCRIPTOR:
		JU(f, "descriptor", ev->specific.descriptor.descriptor);
		fprintf(f, ",\"write\":%s", ev->specific.descriptor.write ? "true" : "false");
		break;
	case KVMI_EVENT_SINGLESTEP:
		fprintf(f, ",\"failed\":%s", ev->specific.singlestep.failed ? "true" : "false");
		break;
	case KVMI_EVENT_CPUID:
		JX(f, "function", ev->specific.cpuid.function);
		JX(f, "index", ev->specific.cpuid.index);
		JU(f, "insn_length", ev->specific.cpuid.insn_length);
		break;
	case KVMI_EVENT_CMD_ERROR:
		fprintf(f, ",\"err\":%d", ev->specific.cmd_error.err);
		JU(f, "msg_id", ev->specific.cmd_error.msg_id);
		JU(f, "msg_seq", ev->specific.cmd_error.msg_seq);
		break;
	}
}

void cli_print_event_json(struct cli *c, const struct kvmi_event_msg *ev, const char *reply)
{
	const struct kvmi_event_arch *a = &ev->common.arch;
	FILE *f = c->out;
	char lbl[16];

	fputs("{\"guest\":", f);
	json_str(f, c->name);
	fputs(",\"event\":", f);
	json_str(f, event_label(ev->event, lbl, sizeof(lbl)));
	JU(f, "id", ev->event);
	JU(f, "seq", ev->seq);
	JU(f, "vcpu", ev->vcpu);
	JU(f, "mode", a->mode);
	JU(f, "view", a->view);
	JX(f, "rip", a->regs.rip);
	JX(f, "rsp", a->regs.rsp);
	JX(f, "rax", a->regs.rax);
	JX(f, "cr0", a->sregs.cr0);
	JX(f, "cr3", a->sregs.cr3);
	JX(f, "cr4", a->sregs.cr4);
	JX(f, "efer", a->sregs.efer);
	JU(f, "cpl", a->sregs.cs.dpl);
	json_specific(f, ev);
	if (reply) {
		fputs(",\"reply\":", f);
		json_str(f, reply);
	}
	fputs("}\n", f);
	fflush(f);
}

int cli_continue(struct cli *c, const struct kvmi_event_msg *ev)
{
	/* CR and MSR events: CONTINUE performs the write with new_val. */
	if (ev->event == KVMI_EVENT_CR) {
		struct kvmi_event_cr_reply r = { .new_val = ev->specific.cr.new_value };

		return kvmi_dom_reply_event(c->dom, ev, KVMI_EVENT_ACTION_CONTINUE, &r, sizeof(r));
	}
	if (ev->event == KVMI_EVENT_MSR) {
		struct kvmi_event_msr_reply r = { .new_val = ev->specific.msr.new_value };

		return kvmi_dom_reply_event(c->dom, ev, KVMI_EVENT_ACTION_CONTINUE, &r, sizeof(r));
	}
	if (ev->event == KVMI_EVENT_PF) {
		struct kvmi_event_pf_reply r = { 0 };

		return kvmi_dom_reply_event(c->dom, ev, KVMI_EVENT_ACTION_CONTINUE, &r, sizeof(r));
	}
	if (!kvmi_event_needs_reply(ev))
		return 0;
	return kvmi_dom_reply_event(c->dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
}

void cli_handle_event(struct cli *c, struct kvmi_event_msg *ev)
{
	int err;

	if (ev->event == KVMI_EVENT_PAUSE_VCPU && c->nheld < CLI_MAX_HELD) {
		c->held[c->nheld++] = ev;      /* stays paused until `resume` */
		return;
	}
	cli_print_event(c, ev);
	if (ev->event == KVMI_EVENT_CREATE_VCPU)
		cli_setup_vcpu(c, ev->vcpu);
	if (ev->event == KVMI_EVENT_TRAP && c->traps_expected)
		c->traps_expected--;
	if (ev->event == KVMI_EVENT_UNHOOK) {
		fprintf(c->out, "the VMM is unhooking: releasing the guest\n");
		c->unhooking = true;
	}
	err = cli_continue(c, ev);
	if (err)
		cli_err(err, "replying to a %s event", kvmi_event_name(ev->event) ?: "?");
	kvmi_event_free(ev);
}

unsigned int cli_release_held(struct cli *c)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < c->nheld; i++) {
		if (!cli_continue(c, c->held[i]))
			n++;
		kvmi_event_free(c->held[i]);
	}
	c->nheld = 0;
	return n;
}

int cli_wait_for(struct cli *c, int timeout_ms,
		 bool (*want)(const struct kvmi_event_msg *ev, void *arg), void *arg,
		 struct kvmi_event_msg **out)
{
	int64_t left = timeout_ms;

	*out = NULL;
	while (!cli_stop) {
		struct kvmi_event_msg *ev;
		/* Short slices so that Ctrl-C is noticed. */
		int slice = timeout_ms < 0 || left > 200 ? 200 : (int)left;
		int err = kvmi_dom_next_event(c->dom, slice, &ev);

		if (err == -ETIMEDOUT) {
			if (timeout_ms >= 0) {
				left -= slice;
				if (left <= 0)
					return -ETIMEDOUT;
			}
			continue;
		}
		if (err)
			return err;
		if (want && want(ev, arg)) {
			*out = ev;
			return 0;
		}
		cli_handle_event(c, ev);
		if (c->unhooking)
			return -ECONNRESET;
	}
	return -EINTR;
}
