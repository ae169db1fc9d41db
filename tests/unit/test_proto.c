/* SPDX-License-Identifier: MIT */
/*
 * test_proto.c - src/proto, what the server, the client and the CLI share:
 * the command and event tables against the wire structs of
 * include/kvmi/kvmi-wire.h (written out again here, so that a slip in the
 * table shows), names through the lookups, framing, the address parser
 * and the timed I/O on socketpairs and pipes.
 */
#include "kvmi-proto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static int n, failed;

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ok(int cond, const char *fmt, ...)
{
	va_list ap;

	n++;
	if (!cond)
		failed++;
	printf("%sok %d - ", cond ? "" : "not ", n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- events ---------------------------------------------------------- */

#define S(t) sizeof(struct t)

static const struct {
	unsigned id;
	size_t data, reply;
	bool vm, vcpu, reply_needed;
} want_events[] = {
	{ KVMI_EVENT_UNHOOK, 0, 0, true, false, false },
	{ KVMI_EVENT_CR, S(kvmi_event_cr), S(kvmi_event_cr_reply), false, true, true },
	{ KVMI_EVENT_MSR, S(kvmi_event_msr), S(kvmi_event_msr_reply), false, true, true },
	{ KVMI_EVENT_XSETBV, 0, 0, false, true, true },
	{ KVMI_EVENT_BREAKPOINT, S(kvmi_event_breakpoint), 0, false, true, true },
	{ KVMI_EVENT_HYPERCALL, 0, 0, false, true, true },
	{ KVMI_EVENT_PF, S(kvmi_event_pf), S(kvmi_event_pf_reply), false, true, true },
	{ KVMI_EVENT_TRAP, S(kvmi_event_trap), 0, false, true, true },
	{ KVMI_EVENT_DESCRIPTOR, S(kvmi_event_descriptor), 0, false, true, true },
	{ KVMI_EVENT_CREATE_VCPU, 0, 0, true, false, true },
	{ KVMI_EVENT_PAUSE_VCPU, 0, 0, false, true, true },
	{ KVMI_EVENT_SINGLESTEP, S(kvmi_event_singlestep), 0, false, true, true },
	{ KVMI_EVENT_CMD_ERROR, S(kvmi_event_cmd_error), 0, true, true, false },
	{ KVMI_EVENT_CPUID, S(kvmi_event_cpuid), 0, false, true, true },
};

static void test_events(void)
{
	ok(sizeof(want_events) / sizeof(want_events[0]) == KVMI_NUM_EVENTS, "every event listed");
	for (size_t i = 0; i < sizeof(want_events) / sizeof(want_events[0]); i++) {
		unsigned id = want_events[i].id;
		const struct kvmi_proto_event *e = kvmi_proto_event(id);

		ok(e && e->id == id && e->data_size == want_events[i].data &&
		   kvmi_proto_event_data_size(id) == want_events[i].data,
		   "event %u: specific part %zu bytes", id, want_events[i].data);
		ok(e && e->reply_size == want_events[i].reply &&
		   kvmi_proto_event_reply_size(id) == want_events[i].reply,
		   "event %u: reply part %zu bytes", id, want_events[i].reply);
		ok(e && !!(e->flags & KVMI_PROTO_EV_VM) == want_events[i].vm &&
		   !!(e->flags & KVMI_PROTO_EV_VCPU) == want_events[i].vcpu &&
		   kvmi_proto_event_needs_reply(id) == want_events[i].reply_needed,
		   "event %u: kind and reply", id);
	}
	ok(!kvmi_proto_event(KVMI_NUM_EVENTS) && !kvmi_proto_event_name(KVMI_NUM_EVENTS) &&
	   kvmi_proto_event_data_size(200) == 0 && kvmi_proto_event_reply_size(200) == 0,
	   "unknown event: no entry, sizes 0");
	ok(kvmi_proto_event_needs_reply(KVMI_NUM_EVENTS) && kvmi_proto_event_needs_reply(255),
	   "an unknown event is answered: it may hold a vCPU");
}

/* ---- commands -------------------------------------------------------- */

#define VM   KVMI_PROTO_VM
#define VCPU KVMI_PROTO_VCPU
#define VREQ KVMI_PROTO_VAR_REQ
#define VRPL KVMI_PROTO_VAR_REPLY
#define WMEM KVMI_PROTO_WRITES_MEM
#define WREGS KVMI_PROTO_WRITES_REGS

static const struct {
	unsigned id;
	uint8_t scope, flags;
	size_t req, reply;
} want_cmds[] = {
	{ KVMI_GET_VERSION, VM, 0, 0, S(kvmi_get_version_reply) },
	{ KVMI_CHECK_COMMAND, VM, 0, S(kvmi_check_command), 0 },
	{ KVMI_CHECK_EVENT, VM, 0, S(kvmi_check_event), 0 },
	{ KVMI_GET_GUEST_INFO, VM, 0, 0, S(kvmi_get_guest_info_reply) },
	{ KVMI_GET_VCPU_INFO, VCPU, 0, 0, S(kvmi_get_vcpu_info_reply) },
	{ KVMI_PAUSE_VCPU, VCPU, 0, S(kvmi_pause_vcpu), 0 },
	{ KVMI_CONTROL_VM_EVENTS, VM, 0, S(kvmi_control_vm_events), 0 },
	{ KVMI_CONTROL_EVENTS, VCPU, 0, S(kvmi_control_events), 0 },
	{ KVMI_CONTROL_CR, VCPU, 0, S(kvmi_control_cr), 0 },
	{ KVMI_CONTROL_MSR, VCPU, 0, S(kvmi_control_msr), 0 },
	{ KVMI_GET_REGISTERS, VCPU, VREQ | VRPL, S(kvmi_get_registers), S(kvmi_get_registers_reply) },
	{ KVMI_SET_REGISTERS, VCPU, WREGS, S(kvmi_x86_regs), 0 },
	{ KVMI_GET_CPUID, VCPU, 0, S(kvmi_get_cpuid), S(kvmi_get_cpuid_reply) },
	{ KVMI_GET_XSAVE, VCPU, 0, 0, KVMI_XSAVE_SIZE },
	{ KVMI_READ_PHYSICAL, VM, VRPL, S(kvmi_read_physical), 0 },
	{ KVMI_WRITE_PHYSICAL, VM, VREQ | WMEM, S(kvmi_write_physical), 0 },
	{ KVMI_INJECT_EXCEPTION, VCPU, 0, S(kvmi_inject_exception), 0 },
	{ KVMI_SET_PAGE_ACCESS, VM, VREQ, S(kvmi_set_page_access), 0 },
	{ KVMI_GET_MAP_TOKEN, VM, 0, 0, S(kvmi_get_map_token_reply) },
	{ KVMI_GET_MTRR_TYPE, VCPU, 0, S(kvmi_get_mtrr_type), S(kvmi_get_mtrr_type_reply) },
	{ KVMI_CONTROL_SPP, VM, 0, S(kvmi_control_spp), 0 },
	{ KVMI_SET_PAGE_WRITE_BITMAP, VM, VREQ, S(kvmi_set_page_write_bitmap), 0 },
	{ KVMI_CONTROL_CMD_RESPONSE, VM, 0, S(kvmi_control_cmd_response), 0 },
	{ KVMI_SET_VE_INFO_PAGE, VCPU, WMEM, S(kvmi_set_ve_info_page), 0 },
	{ KVMI_GET_MAX_GFN, VM, 0, 0, S(kvmi_get_max_gfn_reply) },
	{ KVMI_SET_PAGE_SVE, VM, 0, S(kvmi_set_page_sve), 0 },
	{ KVMI_GET_NEXT_AVAILABLE_GFN, VM, 0, 0, S(kvmi_get_next_available_gfn_reply) },
	{ KVMI_SWITCH_EPT_VIEW, VCPU, 0, S(kvmi_switch_ept_view), 0 },
	{ KVMI_DISABLE_VE, VCPU, 0, 0, 0 },
	{ KVMI_GET_EPT_VIEW, VCPU, 0, 0, S(kvmi_get_ept_view_reply) },
	{ KVMI_VCPU_TRANSLATE_GVA, VCPU, 0, S(kvmi_translate_gva), S(kvmi_translate_gva_reply) },
	{ KVMI_CONTROL_EPT_VIEW, VCPU, 0, S(kvmi_control_ept_view), 0 },
	{ KVMI_VCPU_GET_XCR, VCPU, 0, S(kvmi_get_xcr), S(kvmi_get_xcr_reply) },
	{ KVMI_VCPU_SET_XSAVE, VCPU, VREQ | WREGS, 0, 0 },
	{ KVMI_QUERY_PHYSICAL, VM, 0, S(kvmi_query_physical), S(kvmi_query_physical_reply) },
	{ KVMI_VCPU_ALLOC_GFN, VCPU, 0, S(kvmi_alloc_gfn), 0 },
	{ KVMI_VCPU_FREE_GFN, VCPU, 0, S(kvmi_free_gfn), 0 },
	{ KVMI_CREATE_EPT_VIEW, VM, 0, 0, S(kvmi_create_ept_view_reply) },
	{ KVMI_DESTROY_EPT_VIEW, VM, 0, S(kvmi_destroy_ept_view), 0 },
	{ KVMI_VCPU_CHANGE_GFN, VCPU, VREQ | WMEM, S(kvmi_change_gfn_v1), 0 },
	{ KVMI_VCPU_CONTROL_SINGLESTEP, VCPU, 0, S(kvmi_control_singlestep), 0 },
	{ KVMI_X_MAP_MEMORY, VM, WMEM, S(kvmi_x_map_memory), S(kvmi_x_map_memory_reply) },
};

static void test_command_sizes(void)
{
	for (size_t i = 0; i < sizeof(want_cmds) / sizeof(want_cmds[0]); i++) {
		unsigned id = want_cmds[i].id;
		const struct kvmi_proto_cmd *c = kvmi_proto_command(id);

		ok(c && c->id == id && c->scope == want_cmds[i].scope &&
		   c->flags == want_cmds[i].flags && c->req_size == want_cmds[i].req &&
		   c->reply_size == want_cmds[i].reply,
		   "%s: scope %u, request %zu, reply %zu, flags %#x", c ? c->name : "?",
		   want_cmds[i].scope, want_cmds[i].req, want_cmds[i].reply, want_cmds[i].flags);
		ok(c && kvmi_proto_reply_has_data(c) == (want_cmds[i].reply || (want_cmds[i].flags & VRPL)),
		   "%s: reply data", c ? c->name : "?");
	}
	ok(kvmi_proto_command(KVMI_EVENT_REPLY)->flags & KVMI_PROTO_NO_REPLY &&
	   kvmi_proto_command(KVMI_EVENT)->flags & KVMI_PROTO_NO_REPLY, "EVENT_REPLY, EVENT: no reply");
	ok(kvmi_proto_command(KVMI_CONTROL_VE)->flags & KVMI_PROTO_RESERVED &&
	   kvmi_proto_command(KVMI_GET_PAGE_ACCESS)->flags & KVMI_PROTO_RESERVED &&
	   kvmi_proto_command(KVMI_GET_PAGE_WRITE_BITMAP)->flags & KVMI_PROTO_RESERVED,
	   "reserved ids: a name, no layout");
}

/* What a request writes: the row, except a read-only map grant. */
static void test_command_writes(void)
{
	const struct kvmi_proto_cmd *map = kvmi_proto_command(KVMI_X_MAP_MEMORY);
	struct kvmi_x_map_memory req = { .flags = KVMI_X_MAP_READONLY };
	unsigned n = 0;

	for (unsigned id = 0; id < KVMI_NUM_MESSAGES; id++) {
		const struct kvmi_proto_cmd *c = kvmi_proto_command(id);

		n += c && kvmi_proto_command_writes(c, NULL, 0) != 0;
	}
	ok(n == 5, "five KVMI commands write guest memory or registers (%u)", n);
	ok(kvmi_proto_command_writes(kvmi_proto_command(KVMI_VCPU_SET_XSAVE), NULL, 0) == WREGS &&
	   kvmi_proto_command_writes(kvmi_proto_command(KVMI_SET_REGISTERS), "", 0) == WREGS,
	   "SET_XSAVE and SET_REGISTERS write registers, whatever the request");
	ok(kvmi_proto_command_writes(kvmi_proto_command(KVMI_WRITE_PHYSICAL), NULL, 0) == WMEM &&
	   kvmi_proto_command_writes(kvmi_proto_command(KVMI_GET_REGISTERS), NULL, 0) == 0,
	   "WRITE_PHYSICAL writes memory, GET_REGISTERS nothing");
	ok(kvmi_proto_command_writes(map, &req, sizeof(req)) == 0, "a read-only map grant writes nothing");
	req.flags = 0;
	ok(kvmi_proto_command_writes(map, &req, sizeof(req)) == WMEM, "a read-write map grant writes memory");
	req.flags = KVMI_X_MAP_READONLY;
	ok(kvmi_proto_command_writes(map, &req, sizeof(req) - 1) == WMEM,
	   "a map request too short to say counts as read-write");
	ok(kvmi_proto_command_writes(map, NULL, 0) == 0, "the least a map request writes: nothing");
}

static void test_command_ids(void)
{
	unsigned named = 0;

	for (unsigned id = 0; id < KVMI_NUM_MESSAGES; id++) {
		const struct kvmi_proto_cmd *c = kvmi_proto_command(id);

		if (!c)
			continue;
		named++;
		ok(c->id == id && !strncmp(c->name, "KVMI_", 5) &&
		   !strcmp(c->name + strlen(c->name) - strlen(c->short_name), c->short_name),
		   "%u: %s, short %s", id, c->name, c->short_name);
	}
	/* KVMI_EVENT_REPLY .. KVMI_QUERY_PHYSICAL (0..39), 41..44, 60, 63 */
	ok(named == 46, "46 named ids (%u)", named);
	ok(!kvmi_proto_command(40) && !kvmi_proto_command(KVMI_NUM_MESSAGES) &&
	   !kvmi_proto_command_name(50) && !kvmi_proto_command_short_name(0x4b02),
	   "unnamed ids: no entry");
	ok(!strcmp(kvmi_proto_command_name(KVMI_X_MAP_MEMORY), "KVMI_X_MAP_MEMORY") &&
	   !strcmp(kvmi_proto_command_short_name(KVMI_X_MAP_MEMORY), "X_MAP_MEMORY"),
	   "extension KVMI_X_MAP_MEMORY");
	ok(!strcmp(kvmi_proto_command_short_name(KVMI_VCPU_TRANSLATE_GVA), "TRANSLATE_GVA") &&
	   !strcmp(kvmi_proto_command_short_name(KVMI_GET_VCPU_INFO), "GET_VCPU_INFO") &&
	   !strcmp(kvmi_proto_event_short_name(KVMI_EVENT_PF), "PF") &&
	   !strcmp(kvmi_proto_event_name(KVMI_EVENT_PF), "KVMI_EVENT_PF"),
	   "short names drop KVMI_, KVMI_VCPU_, KVMI_EVENT_");
}

/* ---- names as people write them -------------------------------------- */

static void lower(char *dst, const char *src, size_t size)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < size; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

static void test_names(void)
{
	char buf[64];
	bool all = true;

	for (unsigned id = 0; id < KVMI_NUM_MESSAGES; id++) {
		const struct kvmi_proto_cmd *c = kvmi_proto_command(id);

		if (!c)
			continue;
		lower(buf, c->short_name, sizeof(buf));
		all &= kvmi_proto_command_by_name(c->name) == (int)id &&
		       kvmi_proto_command_by_name(c->name + 5) == (int)id &&
		       kvmi_proto_command_by_name(buf) == (int)id &&
		       (!c->alias || kvmi_proto_command_by_name(c->alias) == (int)id);
	}
	ok(all, "every command name, short name and alias finds its id");
	all = true;
	for (unsigned id = 0; id < KVMI_NUM_EVENTS; id++) {
		const char *name = kvmi_proto_event_name(id);

		lower(buf, kvmi_proto_event_short_name(id), sizeof(buf));
		all &= kvmi_proto_event_by_name(name) == (int)id &&
		       kvmi_proto_event_by_name(name + 5) == (int)id &&
		       kvmi_proto_event_by_name(buf) == (int)id;
	}
	ok(all, "every event name finds its id");
	ok(kvmi_proto_command_by_name("vcpu_get_info") == KVMI_GET_VCPU_INFO &&
	   kvmi_proto_command_by_name("vm_get_info") == KVMI_GET_GUEST_INFO &&
	   kvmi_proto_command_by_name("get_info") == -1,
	   "kernel aliases only whole");
	ok(kvmi_proto_command_by_name("vcpu_translate_gva") == KVMI_VCPU_TRANSLATE_GVA &&
	   kvmi_proto_command_by_name("Translate_GVA") == KVMI_VCPU_TRANSLATE_GVA,
	   "libkvmi's KVMI_VCPU_* names with or without VCPU_");
	ok(kvmi_proto_event_by_name("page_fault") == KVMI_EVENT_PF &&
	   kvmi_proto_event_by_name("KVMI_EVENT_page_fault") == KVMI_EVENT_PF &&
	   kvmi_proto_event_by_name("event_pf") == KVMI_EVENT_PF, "page_fault is PF");
	ok(kvmi_proto_command_by_name("") == -1 && kvmi_proto_command_by_name("bogus") == -1 &&
	   kvmi_proto_command_by_name("13") == -1 && kvmi_proto_command_by_name("x_map_memory") == -1 &&
	   kvmi_proto_event_by_name("") == -1 && kvmi_proto_event_by_name("cr3") == -1,
	   "no id for other words (numbers and extensions are not names here)");
}

/* ---- framing ------------------------------------------------------- */

static void test_frame(void)
{
	uint8_t buf[64] = { 0 };
	struct kvmi_msg_hdr h = { .id = KVMI_GET_VERSION, .size = 16, .seq = 7 }, got;

	memcpy(buf + 1, &h, sizeof(h));  /* unaligned on purpose */
	ok(!kvmi_proto_frame_hdr(buf + 1, 7, &got) && kvmi_proto_frame_need(buf + 1, 7) == 8,
	   "partial header: need 8");
	ok(kvmi_proto_frame_hdr(buf + 1, 8, &got) && got.seq == 7 &&
	   kvmi_proto_frame_need(buf + 1, 8) == 24, "header there: need 24");
	ok(kvmi_proto_frame(buf + 1, 23, 100, &got) == 0, "partial payload: 0");
	ok(kvmi_proto_frame(buf + 1, 24, 100, &got) == 24 && got.id == KVMI_GET_VERSION,
	   "whole message: its length");
	ok(kvmi_proto_frame(buf + 1, 40, 16, &got) == 24, "size == max is fine");
	ok(kvmi_proto_frame(buf + 1, 8, 15, &got) == -EMSGSIZE, "size > max: -EMSGSIZE at once");
	h.size = 0;
	memcpy(buf, &h, sizeof(h));
	ok(kvmi_proto_frame(buf, 8, 0, &got) == 8, "empty payload");
}

/* ---- addresses ------------------------------------------------------- */

static void test_addr_parse(void)
{
	static const char *const bad[] = {
		"", "tcp:1.2.3.4:5", "unix:", "vsock:", "vsock:3", "vsock:3:0", "vsock:x:5",
		"vsock:3:99999999999", "vsock:2:4294967296", "vsock:2:-1", "vsock:-0:5",
		"vsock: 2:5", "vsock:+2:5", "vsock:2:5:6", "vsock:any:5", "vsock::5", "UNIX:/a",
		"vsock:1:000000000000000000000000000000000000000000000000000000000000001",
	};
	char longp[200] = "unix:";
	struct kvmi_addr a;

	ok(kvmi_proto_addr_parse("unix:/run/kvmi.sock", 0, &a) == 0 && a.family == AF_UNIX &&
	   !strcmp(a.path, "/run/kvmi.sock"), "unix:PATH");
	ok(kvmi_proto_addr_parse("unix:@kvmi", 0, &a) == 0 && !strcmp(a.path, "@kvmi"),
	   "unix:@NAME kept as written");
	ok(kvmi_proto_addr_parse("vsock:2:1234", 0, &a) == 0 && a.family == AF_VSOCK &&
	   a.cid == 2 && a.port == 1234, "vsock:CID:PORT");
	ok(kvmi_proto_addr_parse("vsock:0x3:0x10", 0, &a) == 0 && a.cid == 3 && a.port == 16,
	   "hex numbers");
	ok(kvmi_proto_addr_parse("vsock:4294967295:1", 0, &a) == 0 && a.cid == UINT32_MAX,
	   "CID up to u32");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(kvmi_proto_addr_parse(bad[i], 0, &a) == -EINVAL, "'%s' refused", bad[i]);
	ok(kvmi_proto_addr_parse(NULL, 0, &a) == -EINVAL, "NULL refused");
	memset(longp + 5, 'a', 108);
	ok(kvmi_proto_addr_parse(longp, 0, &a) == -ENAMETOOLONG, "108-byte path: -ENAMETOOLONG");
	longp[5 + 107] = '\0';
	ok(kvmi_proto_addr_parse(longp, 0, &a) == 0, "107-byte path fits");
	ok(kvmi_proto_addr_parse("vsock:any:5", KVMI_PROTO_ADDR_LISTEN, &a) == 0 &&
	   a.cid == VMADDR_CID_ANY && a.port == 5, "listening: CID any");
	ok(kvmi_proto_addr_parse("vsock:-1:5", KVMI_PROTO_ADDR_LISTEN, &a) == 0 &&
	   a.cid == VMADDR_CID_ANY && kvmi_proto_addr_parse("vsock::5", KVMI_PROTO_ADDR_LISTEN, &a) == 0 &&
	   a.cid == VMADDR_CID_ANY, "listening: CID -1 or empty");
	ok(kvmi_proto_addr_parse("vsock:any:0", KVMI_PROTO_ADDR_LISTEN, &a) == -EINVAL &&
	   kvmi_proto_addr_parse("vsock:-2:5", KVMI_PROTO_ADDR_LISTEN, &a) == -EINVAL,
	   "listening: port 0 and other negative CIDs refused");
}

static void test_addr_sockaddr(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
	struct sockaddr_vm *svm = (struct sockaddr_vm *)&ss;
	struct kvmi_addr a;
	socklen_t len;

	kvmi_proto_addr_parse("unix:/tmp/x.sock", 0, &a);
	len = kvmi_proto_addr_sockaddr(&a, &ss);
	ok(len == sizeof(*sun) && sun->sun_family == AF_UNIX && !strcmp(sun->sun_path, "/tmp/x.sock"),
	   "path: whole sockaddr_un");
	kvmi_proto_addr_parse("unix:@kvmi-x", 0, &a);
	len = kvmi_proto_addr_sockaddr(&a, &ss);
	ok(len == offsetof(struct sockaddr_un, sun_path) + 7 && sun->sun_path[0] == '\0' &&
	   !memcmp(sun->sun_path + 1, "kvmi-x", 6), "abstract: leading NUL, no terminator");
	kvmi_proto_addr_parse("vsock:3:77", 0, &a);
	len = kvmi_proto_addr_sockaddr(&a, &ss);
	ok(len == sizeof(*svm) && svm->svm_family == AF_VSOCK && svm->svm_cid == 3 &&
	   svm->svm_port == 77, "vsock");
	memset(&a, 0, sizeof(a));
	ok(kvmi_proto_addr_sockaddr(&a, &ss) == 0, "no family: 0");
}

/* ---- timed I/O ---------------------------------------------------- */

static void test_read(void)
{
	char buf[8];
	int sv[2], p[2];
	int64_t t0;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	t0 = kvmi_proto_now_ms();
	ok(kvmi_proto_read_full(sv[0], buf, 4, kvmi_proto_deadline(50)) == -ETIMEDOUT &&
	   kvmi_proto_now_ms() - t0 >= 40, "nothing comes: -ETIMEDOUT at the deadline");
	ok(write(sv[1], "abcd", 4) == 4 &&
	   kvmi_proto_read_full(sv[0], buf, 4, kvmi_proto_now_ms() - 1) == 0 &&
	   !memcmp(buf, "abcd", 4), "a passed deadline still takes what is there");
	ok(write(sv[1], "ab", 2) == 2 && close(sv[1]) == 0 &&
	   kvmi_proto_read_full(sv[0], buf, 4, -1) == -ECONNRESET, "EOF first: -ECONNRESET");
	close(sv[0]);

	pipe2(p, O_CLOEXEC);
	ok(write(p[1], "xyz", 3) == 3 && kvmi_proto_read_full(p[0], buf, 3, 1000) == 0 &&
	   !memcmp(buf, "xyz", 3), "a pipe reads too");
	close(p[0]);
	close(p[1]);
	ok(kvmi_proto_deadline(-5) == -1 && kvmi_proto_poll_ms(-1) == -1 &&
	   kvmi_proto_poll_ms(kvmi_proto_now_ms() - 5) == 0 &&
	   kvmi_proto_poll_ms(kvmi_proto_deadline(10000)) > 9000, "deadlines");
}

static int received_fd(int sock, char *buf, size_t len)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
	struct cmsghdr *c;
	int fd = -1;

	if (recvmsg(sock, &mh, MSG_WAITALL) != (ssize_t)len)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

static void test_write(void)
{
	char one[] = "hdr", two[] = "", three[] = "body";
	struct iovec iov[3] = { { one, 3 }, { two, 0 }, { three, 4 } };
	char buf[16] = { 0 };
	int sv[2], p[2], fd;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	pipe2(p, O_CLOEXEC);
	ok(kvmi_proto_writev_full(sv[0], iov, 3, p[1], 1000) == 0, "writev with a descriptor");
	fd = received_fd(sv[1], buf, 7);
	ok(fd >= 0 && !memcmp(buf, "hdrbody", 7), "bytes and the descriptor arrive");
	if (fd >= 0) {
		ok(write(fd, "!", 1) == 1 && read(p[0], buf, 1) == 1 && buf[0] == '!',
		   "the descriptor is the pipe");
		close(fd);
	}
	ok(kvmi_proto_write_full(p[1], "pipe", 4, 1000) == 0 && read(p[0], buf, 4) == 4 &&
	   !memcmp(buf, "pipe", 4), "a pipe is written with write()");
	iov[0] = (struct iovec){ one, 3 };
	ok(kvmi_proto_writev_full(p[1], iov, 1, sv[0], 1000) == -ENOTSOCK,
	   "no descriptor across a pipe");
	close(sv[1]);
	ok(kvmi_proto_write_full(sv[0], "x", 1, 1000) == -ECONNRESET, "peer gone: -ECONNRESET");
	close(sv[0]);
	close(p[0]);
	close(p[1]);
}

static void test_write_timeout(void)
{
	static char big[1 << 16];
	int sv[2], err = 0;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	/* Nobody reads: the buffers fill up and the deadline ends it. */
	for (int i = 0; i < 64 && !err; i++)
		err = kvmi_proto_write_full(sv[0], big, sizeof(big), kvmi_proto_deadline(50));
	ok(err == -ETIMEDOUT, "a peer that does not read: -ETIMEDOUT");
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_events();
	test_command_sizes();
	test_command_writes();
	test_command_ids();
	test_names();
	test_frame();
	test_addr_parse();
	test_addr_sockaddr();
	test_read();
	test_write();
	test_write_timeout();
	printf("1..%d\n", n);
	return failed ? 1 : 0;
}
