/* Unit test: the `kvmi` CLI end to end against a small protocol-aware fake
 * VMM (no /dev/kvm).  The fake connects to the CLI's listening socket, does
 * the handshake, and answers every command from a 64 KiB "guest memory", a
 * fixed register set and a policy; it sends PAUSE_VCPU and TRAP events the
 * way the kernel/kvmi-vm do.  Each case runs the real binary (argument 1)
 * and checks its exit status, its output and what the VMM saw.  TAP. */
#include <kvmi/kvmi-wire.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *cli_path;
static int tap_n, tap_failed;

/* ---- fake VMM ---------------------------------------------------------- */

#define NVCPUS 2
#define MEM_SIZE 0x10000

struct vmm {
	char addr[96];
	const char *key;                /* required cookie key, or NULL */
	uint64_t deny_cmds;             /* policy: denied command ids */
	uint64_t deny_events;
	int trace_events;               /* HYPERCALL events to send once enabled */
	bool msr_events;                /* an MSR event when CONTROL_MSR turns on */
	bool hangup_after_reply;        /* the guest ends right after an event reply */
	int reconnects;                 /* connect again this often after a refusal */
	/* state */
	int fd;
	uint32_t ev_seq;
	bool replies_on;
	bool paused[NVCPUS];
	bool pause_reported[NVCPUS];
	int pending_trap[NVCPUS];       /* vector + 1, sent after the pause is over */
	uint8_t mem[MEM_SIZE];
	/* what the tool did */
	int n_pause_replies;            /* EVENT_REPLY to PAUSE_VCPU, CONTINUE */
	int n_event_replies;
	int n_enable, n_disable;        /* CONTROL_EVENTS / CONTROL_VM_EVENTS */
	int n_cmds;
	int n_access_msgs, n_access_pages;      /* SET_PAGE_ACCESS */
	uint8_t last_access;
	uint64_t first_gpa, last_gpa;
	int n_msr_on;                   /* CONTROL_MSR enable=1 */
	uint64_t msr_reply;             /* new_val of the last MSR reply */
	bool rejected_cookie;
	bool answered;                  /* the tool answered the handshake */
	int n_connects;
	pthread_t thread;
};

static int xsend(struct vmm *v, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = send(v->fd, b, n, MSG_NOSIGNAL);

		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int xrecv(struct vmm *v, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		struct pollfd pfd = { .fd = v->fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, 20000) != 1)
			return -1;
		r = recv(v->fd, b, n, 0);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void reply(struct vmm *v, const struct kvmi_msg_hdr *req, int32_t err,
		  const void *data, size_t n)
{
	uint8_t buf[8192 + 16];
	struct kvmi_msg_hdr h = { .id = req->id, .size = (uint16_t)(8 + (err ? 0 : n)),
				  .seq = req->seq };
	struct kvmi_error_code ec = { .err = err };

	if (!v->replies_on)
		return;
	memcpy(buf, &h, 8);
	memcpy(buf + 8, &ec, 8);
	if (!err && n)
		memcpy(buf + 16, data, n);
	xsend(v, buf, 16 + (err ? 0 : n));
}

static void fill_regs(struct kvmi_x86_regs *r, struct kvmi_x86_sregs *s, uint16_t vcpu)
{
	memset(r, 0, sizeof(*r));
	memset(s, 0, sizeof(*s));
	r->rax = 0x1111;
	r->rip = 0xffffffff81000000ull + vcpu * 0x10;
	r->rsp = 0xffffc90000003f00ull;
	r->rflags = 0x246;
	s->cs.selector = 0x10;
	s->cs.l = 1;
	s->cs.present = 1;
	s->cs.type = 11;
	s->cr0 = 0x80050033;
	s->cr3 = 0x1aa000;
	s->cr4 = 0x3606f0;
	s->efer = 0xd01;
}

static void send_event(struct vmm *v, uint16_t vcpu, uint8_t id, const void *spec, size_t n)
{
	uint8_t buf[1024];
	struct kvmi_msg_hdr h = { .id = KVMI_EVENT, .size = (uint16_t)(sizeof(struct kvmi_event) + n),
				  .seq = ++v->ev_seq };
	struct kvmi_event ev = { .size = sizeof(ev), .vcpu = vcpu, .event = id };

	ev.arch.mode = 8;
	fill_regs(&ev.arch.regs, &ev.arch.sregs, vcpu);
	memcpy(buf, &h, 8);
	memcpy(buf + 8, &ev, sizeof(ev));
	if (n)
		memcpy(buf + 8 + sizeof(ev), spec, n);
	xsend(v, buf, 8 + sizeof(ev) + n);
}

static void send_trap(struct vmm *v, uint16_t vcpu, uint8_t vector)
{
	struct kvmi_event_trap t = { .vector = vector, .error_code = 2, .cr2 = 0x1234 };

	send_event(v, vcpu, KVMI_EVENT_TRAP, &t, sizeof(t));
}

static bool known_event(unsigned int id)
{
	return id < KVMI_NUM_EVENTS;
}

static void handle(struct vmm *v, const struct kvmi_msg_hdr *h, const uint8_t *p)
{
	const struct kvmi_vcpu_hdr *vh = (const void *)p;
	bool vcpu_ok = h->size >= 8 && vh->vcpu < NVCPUS;

	v->n_cmds++;
	if (h->id != KVMI_EVENT_REPLY && h->id < 64 && (v->deny_cmds >> h->id & 1)) {
		reply(v, h, -KVM_EPERM, NULL, 0);
		return;
	}
	switch (h->id) {
	case KVMI_EVENT_REPLY: {
		const struct kvmi_event_reply *r = (const void *)(p + 8);

		v->n_event_replies++;
		if (r->event == KVMI_EVENT_MSR && h->size >= 8 + sizeof(*r) + 8)
			memcpy(&v->msr_reply, p + 8 + sizeof(*r), 8);
		if (r->event == KVMI_EVENT_PAUSE_VCPU && r->action == KVMI_EVENT_ACTION_CONTINUE &&
		    vh->vcpu < NVCPUS) {
			v->n_pause_replies++;
			v->paused[vh->vcpu] = false;
			v->pause_reported[vh->vcpu] = false;
			if (v->pending_trap[vh->vcpu]) {
				send_trap(v, vh->vcpu, (uint8_t)(v->pending_trap[vh->vcpu] - 1));
				v->pending_trap[vh->vcpu] = 0;
			}
		}
		return;
	}
	case KVMI_CHECK_COMMAND:
	case KVMI_CHECK_EVENT: {
		const struct kvmi_check_command *c = (const void *)p;
		bool ev = h->id == KVMI_CHECK_EVENT;
		uint64_t deny = ev ? v->deny_events : v->deny_cmds;

		if (ev ? !known_event(c->id) : c->id >= 64 || c->id == 40 || (c->id > 44 && c->id < 60) ||
			  c->id == 61 || c->id == 62)
			reply(v, h, -KVM_EINVAL, NULL, 0);
		else if (deny >> c->id & 1)
			reply(v, h, -KVM_EPERM, NULL, 0);
		else if (!ev && (c->id == KVMI_CONTROL_SPP || c->id == KVMI_SET_PAGE_WRITE_BITMAP))
			reply(v, h, -KVM_EOPNOTSUPP, NULL, 0);
		else
			reply(v, h, 0, NULL, 0);
		return;
	}
	case KVMI_GET_GUEST_INFO: {
		struct kvmi_get_guest_info_reply r = { .vcpu_count = NVCPUS };

		reply(v, h, 0, &r, sizeof(r));
		return;
	}
	case KVMI_GET_VCPU_INFO: {
		struct kvmi_get_vcpu_info_reply r = { .tsc_speed = 2000000000ull };

		reply(v, h, vcpu_ok ? 0 : -KVM_EINVAL, &r, sizeof(r));
		return;
	}
	case KVMI_GET_MAX_GFN: {
		struct kvmi_get_max_gfn_reply r = { .gfn = 0x3ffff };

		reply(v, h, 0, &r, sizeof(r));
		return;
	}
	case KVMI_GET_REGISTERS: {
		const struct kvmi_get_registers *q = (const void *)(p + 8);
		const uint32_t *idx = (const void *)(p + 16);
		uint8_t buf[2048];
		struct kvmi_get_registers_reply *r = (void *)buf;
		struct kvmi_x86_msr_entry *e = (void *)(r + 1);

		if (!vcpu_ok) {
			reply(v, h, -KVM_EINVAL, NULL, 0);
			return;
		}
		memset(buf, 0, sizeof(buf));
		r->mode = 8;
		fill_regs(&r->regs, &r->sregs, vh->vcpu);
		r->msrs.nmsrs = q->nmsrs;
		for (unsigned int i = 0; i < q->nmsrs; i++) {
			e[i].index = idx[i];
			e[i].data = 0xa000 + idx[i];
		}
		reply(v, h, 0, buf, sizeof(*r) + q->nmsrs * sizeof(*e));
		return;
	}
	case KVMI_READ_PHYSICAL: {
		const struct kvmi_read_physical *q = (const void *)p;

		if (!q->size || q->size > 4096 || (q->gpa & 0xfff) + q->size > 4096)
			reply(v, h, -KVM_EINVAL, NULL, 0);
		else if (q->gpa + q->size > MEM_SIZE)
			reply(v, h, -KVM_ENOENT, NULL, 0);
		else
			reply(v, h, 0, v->mem + q->gpa, q->size);
		return;
	}
	case KVMI_WRITE_PHYSICAL: {
		const struct kvmi_write_physical *q = (const void *)p;

		if (!q->size || q->size > 4096 || (q->gpa & 0xfff) + q->size > 4096 ||
		    h->size < 16 + q->size) {
			reply(v, h, -KVM_EINVAL, NULL, 0);
		} else if (q->gpa + q->size > MEM_SIZE) {
			reply(v, h, -KVM_ENOENT, NULL, 0);
		} else {
			memcpy(v->mem + q->gpa, p + 16, q->size);
			reply(v, h, 0, NULL, 0);
		}
		return;
	}
	case KVMI_VCPU_TRANSLATE_GVA: {
		const struct kvmi_translate_gva *q = (const void *)(p + 8);
		struct kvmi_translate_gva_reply r = { .gpa = KVMI_UNMAPPED_GVA };

		if (q->gva >= 0xffffffff80000000ull)
			r.gpa = q->gva - 0xffffffff80000000ull;
		reply(v, h, vcpu_ok ? 0 : -KVM_EINVAL, &r, sizeof(r));
		return;
	}
	case KVMI_CONTROL_CMD_RESPONSE: {
		const struct kvmi_control_cmd_response *q = (const void *)p;

		if (q->now)
			v->replies_on = q->enable;
		reply(v, h, 0, NULL, 0);
		if (!q->now)
			v->replies_on = q->enable;
		if (v->replies_on) {
			/* End of a batch: the paused vCPUs report in. */
			for (uint16_t i = 0; i < NVCPUS; i++)
				if (v->paused[i] && !v->pause_reported[i]) {
					send_event(v, i, KVMI_EVENT_PAUSE_VCPU, NULL, 0);
					v->pause_reported[i] = true;
				}
		}
		return;
	}
	case KVMI_PAUSE_VCPU:
		if (vcpu_ok)
			v->paused[vh->vcpu] = true;
		reply(v, h, vcpu_ok ? 0 : -KVM_EINVAL, NULL, 0);
		if (vcpu_ok && v->replies_on && !v->pause_reported[vh->vcpu]) {
			send_event(v, vh->vcpu, KVMI_EVENT_PAUSE_VCPU, NULL, 0);
			v->pause_reported[vh->vcpu] = true;
		}
		return;
	case KVMI_INJECT_EXCEPTION: {
		const struct kvmi_inject_exception *q = (const void *)(p + 8);

		if (!vcpu_ok) {
			reply(v, h, -KVM_EINVAL, NULL, 0);
			return;
		}
		reply(v, h, 0, NULL, 0);
		if (v->paused[vh->vcpu])
			v->pending_trap[vh->vcpu] = q->nr + 1;
		else
			send_trap(v, vh->vcpu, q->nr);
		return;
	}
	case KVMI_CONTROL_EVENTS:
	case KVMI_CONTROL_VM_EVENTS: {
		const struct kvmi_control_events *q =
			(const void *)(p + (h->id == KVMI_CONTROL_EVENTS ? 8 : 0));

		if (v->deny_events >> q->event_id & 1) {
			reply(v, h, -KVM_EPERM, NULL, 0);
			return;
		}
		q->enable ? v->n_enable++ : v->n_disable++;
		reply(v, h, 0, NULL, 0);
		if (q->enable && q->event_id == KVMI_EVENT_HYPERCALL && h->id == KVMI_CONTROL_EVENTS &&
		    vh->vcpu == NVCPUS - 1)
			for (int i = 0; i < v->trace_events; i++)
				send_event(v, (uint16_t)(i % NVCPUS), KVMI_EVENT_HYPERCALL, NULL, 0);
		return;
	}
	case KVMI_CONTROL_MSR: {
		const struct kvmi_control_msr *q = (const void *)(p + 8);
		struct kvmi_event_msr e = { .msr = q->msr, .old_value = 0x10, .new_value = 0x20 };

		reply(v, h, 0, NULL, 0);
		if (q->enable) {
			v->n_msr_on++;
			if (v->msr_events && vcpu_ok)
				send_event(v, vh->vcpu, KVMI_EVENT_MSR, &e, sizeof(e));
		}
		return;
	}
	case KVMI_SET_PAGE_ACCESS: {
		const struct kvmi_set_page_access *q = (const void *)p;
		const struct kvmi_page_access_entry *e = (const void *)(p + sizeof(*q));

		if (!q->count || q->count > 511 || h->size != sizeof(*q) + q->count * sizeof(*e)) {
			reply(v, h, -KVM_EINVAL, NULL, 0);
			return;
		}
		if (!v->n_access_pages)
			v->first_gpa = e[0].gpa;
		v->n_access_msgs++;
		v->n_access_pages += q->count;
		v->last_access = e[q->count - 1].access;
		v->last_gpa = e[q->count - 1].gpa;
		reply(v, h, 0, NULL, 0);
		return;
	}
	case KVMI_CONTROL_CR:
		reply(v, h, 0, NULL, 0);
		return;
	default:
		reply(v, h, -KVM_ENOSYS, NULL, 0);
		return;
	}
}

/* Connects to the CLI's socket, retrying for up to tries * 10 ms. */
static int vmm_connect(struct vmm *v, int tries)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *name = v->addr + 5;  /* "unix:@..." */
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));

	memcpy(sun.sun_path, name, strlen(name));
	sun.sun_path[0] = 0;
	while (tries-- > 0) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct timespec ts = { 0, 10 * 1000000 };

		if (!connect(fd, (struct sockaddr *)&sun, len))
			return fd;
		close(fd);
		nanosleep(&ts, NULL);
	}
	return -1;
}

/* One connection: the handshake, then commands until the tool leaves. */
static void vmm_session(struct vmm *v)
{
	struct kvmi_handshake_vmm hello = { .struct_size = sizeof(hello), .start_time = 1700000000123 };
	struct kvmi_handshake_tool ans;

	v->n_connects++;
	for (int i = 0; i < 16; i++)
		hello.uuid[i] = (uint8_t)i;
	strcpy(hello.name, "cli-vm");
	hello.max_gpa = MEM_SIZE;
	if (xsend(v, &hello, sizeof(hello)) || xrecv(v, &ans, sizeof(ans)))
		goto out;
	v->answered = true;
	if (v->key) {
		uint8_t want[20];
		unsigned int n;

		EVP_Digest(v->key, strlen(v->key), want, &n, EVP_sha1(), NULL);
		if (memcmp(want, ans.cookie_hash, 20)) {
			v->rejected_cookie = true;
			goto out;
		}
	}
	for (;;) {
		struct kvmi_msg_hdr h;
		uint8_t payload[65536];

		if (xrecv(v, &h, sizeof(h)) || xrecv(v, payload, h.size))
			break;
		if (h.id == KVMI_GET_VERSION) {
			struct kvmi_get_version_reply r = { .version = 1, .features = { .singlestep = 1 } };

			reply(v, &h, 0, &r, sizeof(r));
			continue;
		}
		handle(v, &h, payload);
		if (v->hangup_after_reply && h.id == KVMI_EVENT_REPLY)
			break;
	}
out:
	close(v->fd);
}

/* Like kvmi-vm: connects, and connects again (at most v->reconnects times,
 * 50 ms apart) while the tool refuses it. */
static void *vmm_main(void *arg)
{
	struct vmm *v = arg;
	struct timespec ts = { 0, 50 * 1000000 };

	v->fd = vmm_connect(v, 500);
	while (v->fd >= 0) {
		vmm_session(v);
		if (v->answered || v->n_connects > v->reconnects)
			break;
		nanosleep(&ts, NULL);
		v->fd = vmm_connect(v, 1);
	}
	return NULL;
}

/* ---- running the CLI ------------------------------------------------- */

struct result {
	int status;                     /* exit code, or 128+signal */
	char out[65536];
	char err[8192];
};

static void slurp(int fd, char *buf, size_t cap)
{
	ssize_t n = pread(fd, buf, cap - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
}

/* Run the CLI with @argv (NULL-terminated, without argv[0]), and a fake VMM
 * unless @v is NULL.  Kills it after 20 s. */
static void run_cli(struct vmm *v, struct result *res, const char *const *args)
{
	char *argv[64];
	char outp[] = "/tmp/kvmi-cli-out-XXXXXX", errp[] = "/tmp/kvmi-cli-err-XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp), n = 0, st = 0;
	pid_t pid;

	unlink(outp);
	unlink(errp);
	argv[n++] = (char *)cli_path;
	for (int i = 0; args[i]; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;

	if (v) {
		v->replies_on = true;
		pthread_create(&v->thread, NULL, vmm_main, v);
	}
	pid = fork();
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(cli_path, argv);
		_exit(127);
	}
	for (int ms = 0; ms < 20000; ms += 10) {
		struct timespec ts = { 0, 10 * 1000000 };

		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		nanosleep(&ts, NULL);
		if (ms + 10 >= 20000) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
	}
	res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (v)
		pthread_join(v->thread, NULL);
	slurp(ofd, res->out, sizeof(res->out));
	slurp(efd, res->err, sizeof(res->err));
	close(ofd);
	close(efd);
}

static void vmm_init(struct vmm *v)
{
	static int counter;
	const char *banner = "Linux version 6.1.0-kvmi (test@kvmi) #1 SMP";

	memset(v, 0, sizeof(*v));
	snprintf(v->addr, sizeof(v->addr), "unix:@kvmi-cli-test-%d-%d", (int)getpid(), counter++);
	memcpy(v->mem + 0x1000, banner, strlen(banner) + 1);
}

static bool failed;
static char why[1024];

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
	va_list ap;

	if (failed)
		return;
	failed = true;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
}

static void expect_status(const struct result *r, int want)
{
	if (r->status != want)
		failf("exit status %d, expected %d; stderr: %.300s", r->status, want, r->err);
}

static void expect_out(const struct result *r, const char *s)
{
	if (!strstr(r->out, s))
		failf("stdout lacks '%s'; stdout: %.400s; stderr: %.200s", s, r->out, r->err);
}

static void expect_err(const struct result *r, const char *s)
{
	if (!strstr(r->err, s))
		failf("stderr lacks '%s'; stderr: %.400s", s, r->err);
}

static void tap(const char *name)
{
	tap_n++;
	if (failed) {
		tap_failed++;
		printf("not ok %d - %s\n#   %s\n", tap_n, name, why);
	} else {
		printf("ok %d - %s\n", tap_n, name);
	}
	fflush(stdout);
	failed = false;
}

static struct result res;
static struct vmm vm;

#define RUN(...) run_cli(&vm, &res, (const char *const[]){ __VA_ARGS__, NULL })
#define RUN_NOVMM(...) run_cli(NULL, &res, (const char *const[]){ __VA_ARGS__, NULL })

/* ---- cases ------------------------------------------------------------ */

static void t_help(void)
{
	RUN_NOVMM("--help");
	expect_status(&res, 0);
	expect_out(&res, "Usage: kvmi");
	for (const char *const *v = (const char *const[]){ "info", "check", "regs VCPU",
			"read GPA LEN", "write GPA", "translate VCPU GVA", "pause", "resume",
			"inject VCPU VECTOR", "trace", "sleep", "wait-create", "msr watch MSR",
			"protect [-v VCPU] ADDR LEN PERMS", "step VCPU [N]", "lift=N", NULL }; *v; v++)
		expect_out(&res, *v);
	tap("--help lists every verb");
}

static void t_usage_errors(void)
{
	RUN_NOVMM("listen");
	expect_status(&res, 2);
	RUN_NOVMM("listen", "unix:@x", "frobnicate");
	expect_status(&res, 2);
	expect_err(&res, "unknown verb 'frobnicate'");
	RUN_NOVMM("listen", "unix:@x", "regs");
	expect_status(&res, 2);
	expect_err(&res, "usage: regs VCPU");
	RUN_NOVMM("listen", "tcp:1.2.3.4:5", "info");
	expect_status(&res, 2);
	expect_err(&res, "expected unix:PATH");
	tap("usage errors exit 2 with a message, before listening");
}

static void t_accept_timeout(void)
{
	RUN_NOVMM("-t", "0.3", "listen", "unix:@kvmi-cli-nobody", "info");
	expect_status(&res, 3);
	expect_err(&res, "no VMM connected");
	tap("--accept-timeout: exit 3 when no VMM connects");
}

static void t_info(void)
{
	vmm_init(&vm);
	RUN("listen", vm.addr, "info");
	expect_status(&res, 0);
	expect_out(&res, "guest        cli-vm");
	expect_out(&res, "uuid         00010203-0405-0607-0809-0a0b0c0d0e0f");
	expect_out(&res, "started      2023-11-14 22:13:20 UTC");
	expect_out(&res, "KVMI version 1");
	expect_out(&res, "features     singlestep");
	expect_out(&res, "vcpus        2");
	expect_out(&res, "vcpu 1     TSC 2000000000 Hz");
	expect_out(&res, "max gfn      0x3ffff");
	expect_err(&res, "guest 'cli-vm'");
	tap("info: hello, version, features, vCPUs");
}

static void t_check(void)
{
	vmm_init(&vm);
	vm.deny_cmds = 1ull << KVMI_WRITE_PHYSICAL;
	vm.deny_events = 1ull << KVMI_EVENT_CPUID;
	RUN("-s", vm.addr, "check");
	expect_status(&res, 0);
	expect_out(&res, "GET_REGISTERS             13  allowed");
	expect_out(&res, "WRITE_PHYSICAL            18  denied by policy");
	expect_out(&res, "CONTROL_SPP               24  not supported on this host");
	expect_out(&res, "CPUID                     13  denied by policy");
	expect_out(&res, "PF                         6  allowed");
	if (strstr(res.out, "(unnamed)"))
		failf("unknown ids listed");
	tap("check: a table of allowed / denied / unsupported ids");
}

static void t_regs(void)
{
	vmm_init(&vm);
	RUN("listen", vm.addr, "regs", "1");
	expect_status(&res, 0);
	expect_out(&res, "vcpu 1, 64-bit");
	expect_out(&res, "rip 0xffffffff81000010");
	expect_out(&res, "cr3 0x00000000001aa000");
	expect_out(&res, "msr lstar");
	expect_out(&res, "(0xc0000082) 0x00000000c000a082");
	tap("regs VCPU: registers and MSRs");
}

static void t_read_write(void)
{
	vmm_init(&vm);
	RUN("listen", vm.addr, "read 0x1000 32; write 0x1ffe cafe f00d; read 0x1ffc 8");
	expect_status(&res, 0);
	expect_out(&res, "0000000000001000: 4c 69 6e 75 78 20 76 65  72 73 69 6f 6e 20 36 2e  |Linux version 6.|");
	expect_out(&res, "wrote 4 bytes at 0x1ffe");
	expect_out(&res, "0000000000001ffc: 00 00 ca fe f0 0d 00 00");
	if (memcmp(vm.mem + 0x1ffe, "\xca\xfe\xf0\x0d", 4))
		failf("the write (across a page boundary) did not reach guest memory");
	tap("read/write: hexdump, page-crossing writes");
}

static void t_errors_in_words(void)
{
	vmm_init(&vm);
	vm.deny_cmds = 1ull << KVMI_READ_PHYSICAL;
	RUN("listen", vm.addr, "read 0x1000 16; info");
	expect_status(&res, 1);
	expect_err(&res, "READ_PHYSICAL 0x1000 (16 bytes): not allowed by the VMM's introspection policy");
	if (strstr(res.out, "vcpus"))
		failf("the script went on after a failed verb");
	vmm_init(&vm);
	RUN("listen", vm.addr, "read 0x20000 16");
	expect_status(&res, 1);
	expect_err(&res, "no such page");
	tap("errors are words, and stop the script");
}

static void t_translate(void)
{
	vmm_init(&vm);
	RUN("listen", vm.addr, "translate 0 0xffffffff81000000");
	expect_status(&res, 0);
	expect_out(&res, "gva 0xffffffff81000000 -> gpa 0x1000000 (vcpu 0)");
	vmm_init(&vm);
	RUN("listen", vm.addr, "translate 1 0x1000");
	expect_status(&res, 1);
	expect_out(&res, "is not mapped");
	tap("translate: mapped and unmapped");
}

static void t_pause_resume(void)
{
	vmm_init(&vm);
	RUN("listen", vm.addr, "pause; resume");
	expect_status(&res, 0);
	expect_out(&res, "paused 2 vCPUs");
	expect_out(&res, "resumed 2 vCPUs");
	if (vm.n_pause_replies != 2)
		failf("%d PAUSE_VCPU events continued, expected 2", vm.n_pause_replies);
	tap("pause; resume: one PAUSE_VCPU event per vCPU, each continued");
}

static void t_paused_released_at_exit(void)
{
	vmm_init(&vm);
	RUN("listen", vm.addr, "pause");
	expect_status(&res, 0);
	expect_err(&res, "resumed 2 paused vCPUs before disconnecting");
	if (vm.n_pause_replies != 2)
		failf("%d PAUSE_VCPU events continued at exit, expected 2", vm.n_pause_replies);
	tap("vCPUs left paused are resumed before disconnecting");
}

static void t_inject(void)
{
	vmm_init(&vm);
	RUN("listen", vm.addr, "inject 1 6");
	expect_status(&res, 0);
	expect_out(&res, "vcpu 1 got vector 6 error_code 0x2 cr2 0x1234");
	vmm_init(&vm);
	RUN("listen", vm.addr, "pause; inject 0 14 2 0x1234; resume");
	expect_status(&res, 0);
	expect_out(&res, "queued for vcpu 0");
	expect_out(&res, "event TRAP vcpu 0");
	expect_out(&res, "vector 14");
	if (vm.n_event_replies != 3)
		failf("%d event replies, expected 3 (2 pauses + 1 trap)", vm.n_event_replies);
	tap("inject: TRAP reported at once, or after resume when paused");
}

static void t_trace(void)
{
	int lines = 0;

	vmm_init(&vm);
	vm.trace_events = 4;
	RUN("listen", vm.addr, "trace hypercall count=4");
	expect_status(&res, 0);
	for (char *p = res.out; (p = strstr(p, "{\"guest\":\"cli-vm\",\"event\":\"HYPERCALL\"")); p++)
		lines++;
	if (lines != 4)
		failf("%d HYPERCALL JSON lines, expected 4: %.300s", lines, res.out);
	expect_out(&res, "\"rip\":\"0xffffffff81000010\"");
	expect_err(&res, "4 events traced");
	if (vm.n_enable != 2 || vm.n_disable != 2)
		failf("events enabled on %d / disabled on %d vCPUs, expected 2 / 2",
		      vm.n_enable, vm.n_disable);
	if (vm.n_event_replies != 4)
		failf("%d events continued, expected 4", vm.n_event_replies);
	tap("trace: JSON lines, events continued, then turned off");
}

static void t_protect(void)
{
	vmm_init(&vm);
	RUN("listen", vm.addr, "protect 0x1010 0x2000 r-x");
	expect_status(&res, 0);
	expect_out(&res, "protect gpa 0x1000-0x3fff (3 pages): r-x");
	if (vm.n_access_msgs != 1 || vm.n_access_pages != 3 || vm.first_gpa != 0x1000 ||
	    vm.last_gpa != 0x3000 || vm.last_access != (KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X))
		failf("SET_PAGE_ACCESS: %d messages, %d pages, 0x%llx..0x%llx, access %u",
		      vm.n_access_msgs, vm.n_access_pages, (unsigned long long)vm.first_gpa,
		      (unsigned long long)vm.last_gpa, vm.last_access);
	if (vm.n_enable != NVCPUS)
		failf("PF events enabled on %d vCPUs, expected %d", vm.n_enable, NVCPUS);
	vmm_init(&vm);
	RUN("listen", vm.addr, "protect 0 0x200000 ---; protect 0 0x200000 rwx");
	expect_status(&res, 0);
	expect_out(&res, "(512 pages): ---");
	expect_out(&res, "(512 pages): rwx");
	if (vm.n_access_msgs != 4 || vm.n_access_pages != 1024 || vm.last_access != 7)
		failf("SET_PAGE_ACCESS: %d messages / %d pages / last access %u, expected 4 / 1024 / 7",
		      vm.n_access_msgs, vm.n_access_pages, vm.last_access);
	vmm_init(&vm);
	RUN("listen", vm.addr, "protect -v 1 0xffffffff81000ff8 16 -w-");
	expect_status(&res, 0);
	expect_out(&res, "protect gva 0xffffffff81000000-0xffffffff81001fff (first page gpa 0x1000000, 2 pages): -w-");
	if (vm.first_gpa != 0x1000000 || vm.last_gpa != 0x1001000 || vm.last_access != KVMI_PAGE_ACCESS_W)
		failf("SET_PAGE_ACCESS with translated addresses: 0x%llx..0x%llx access %u",
		      (unsigned long long)vm.first_gpa, (unsigned long long)vm.last_gpa, vm.last_access);
	vmm_init(&vm);
	RUN("listen", vm.addr, "protect -v 0 0x1000 16 r-x");
	expect_status(&res, 1);
	expect_err(&res, "gva 0x1000 is not mapped (vcpu 0)");
	if (vm.n_access_msgs)
		failf("pages restricted although the translation failed");
	tap("protect: pages of the range, batches of at most 511, PF enabled, -v translates");
}

static void t_msr_veto(void)
{
	int lines = 0;

	vmm_init(&vm);
	vm.msr_events = true;
	RUN("listen", vm.addr, "msr watch lstar 0x176; trace msr veto count=4");
	expect_status(&res, 0);
	expect_out(&res, "watching MSR writes: lstar (0xc0000082) sysenter_eip (0x176) on 2 vCPUs");
	for (char *p = res.out; (p = strstr(p, "\"event\":\"MSR\"")); p++)
		lines++;
	if (lines != 4)
		failf("%d MSR JSON lines, expected 4: %.300s", lines, res.out);
	expect_out(&res, "\"msr\":\"0xc0000082\",\"msr_name\":\"lstar\",\"old_value\":\"0x10\",\"new_value\":\"0x20\",\"reply\":\"veto\"");
	if (vm.msr_reply != 0x10)
		failf("the MSR reply's new_val is 0x%llx, expected the old value 0x10",
		      (unsigned long long)vm.msr_reply);
	if (vm.n_msr_on != 4)
		failf("CONTROL_MSR on %d times, expected 4", vm.n_msr_on);
	vmm_init(&vm);
	vm.msr_events = true;
	RUN("listen", vm.addr, "msr watch star; trace msr count=2; msr unwatch; msr watch 0x10");
	expect_status(&res, 0);
	expect_out(&res, "\"new_value\":\"0x20\",\"reply\":\"continue\"");
	expect_out(&res, "no longer watching 1 MSR; 0 still watched");
	if (vm.msr_reply != 0x20)
		failf("without veto the reply's new_val is 0x%llx, expected 0x20", (unsigned long long)vm.msr_reply);
	tap("msr watch + trace veto: the reply carries the old value; without veto the new one");
}

/* A guest that ends right after the reply to the script's last event (the
 * vetoed write was its last act) leaves a script that succeeded; a guest
 * that ends with commands still to run does not. */
static void t_guest_ends_after_last_reply(void)
{
	vmm_init(&vm);
	vm.msr_events = true;
	vm.hangup_after_reply = true;
	RUN("listen", vm.addr, "msr watch lstar; trace msr veto count=1");
	expect_status(&res, 0);
	expect_out(&res, "\"reply\":\"veto\"");
	if (vm.msr_reply != 0x10)
		failf("the MSR reply's new_val is 0x%llx, expected 0x10", (unsigned long long)vm.msr_reply);
	vmm_init(&vm);
	vm.msr_events = true;
	vm.hangup_after_reply = true;
	RUN("listen", vm.addr, "msr watch lstar; trace msr veto count=1; info");
	expect_status(&res, 1);
	tap("the guest ending after the last command's reply is success; before the last command, failure");
}

static void t_event_verbs_bad_input(void)
{
	static const struct { const char *script, *msg; int status; } cases[] = {
		{ "protect 0x1000 16 rwq", "'rwq' is not a set of rights", 1 },
		{ "protect 0x1000 16 rr", "'rr' is not a set of rights", 1 },
		{ "protect 0x1000 16 r-", "'r-' is not a set of rights", 1 },
		{ "protect 0x1000 0 rwx", "'0' is not a length", 1 },
		{ "protect zz 16 rwx", "'zz' is not an address", 1 },
		{ "protect 0xfffffffffffff000 0x2000 r--", "wraps around", 1 },
		{ "protect -v 0 0x1000 16", "usage: protect [-v VCPU] ADDR LEN PERMS", 1 },
		{ "protect -v x 0x1000 16 rwx", "'x' is not a vCPU number", 1 },
		{ "protect 0x1000", "usage: protect [-v VCPU] ADDR LEN PERMS", 2 },
		{ "msr watch bogus", "'bogus' is neither an MSR number nor a known name", 1 },
		{ "msr watch", "usage: msr watch MSR...", 1 },
		{ "msr frob", "say 'watch MSR...' or 'unwatch [MSR...]'", 1 },
		{ "msr unwatch lstar", "0xc0000082 is not watched", 1 },
		{ "step", "usage: step VCPU [N]", 2 },
		{ "step 0 0", "'0' is not a number of instructions", 1 },
		{ "step 7", "the guest has no vcpu 7", 1 },
		{ "trace lift=0", "bad lift=0", 1 },
		{ "trace lift=2 at=xyz", "bad at=xyz", 1 },
		{ "trace msr", "or `msr watch` first", 1 },
		{ "wait-create extra", "usage: wait-create", 2 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vmm_init(&vm);
		RUN("-t", "5", "listen", vm.addr, cases[i].script);
		if (cases[i].status == 2 && res.status == 2)
			continue;       /* refused before listening: no VMM connected */
		expect_status(&res, cases[i].status);
		expect_err(&res, cases[i].msg);
		if (failed) {
			char w[sizeof(why) + 128];

			snprintf(w, sizeof(w), "'%s': %s", cases[i].script, why);
			snprintf(why, sizeof(why), "%.1000s", w);
			break;
		}
	}
	vmm_init(&vm);
	RUN("-w", "0.3", "listen", vm.addr, "wait-create");
	expect_status(&res, 1);
	expect_err(&res, "was kvmi-vm started with --introspector-wait?");
	tap("protect / msr / step / trace / wait-create: bad input is an error in words");
}

static void t_key(void)
{
	char path[] = "/tmp/kvmi-cli-key-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, "s3cret", 6) != 6)
		failf("key file");
	close(fd);
	vmm_init(&vm);
	vm.key = "s3cret";
	RUN("-k", path, "listen", vm.addr, "info");
	expect_status(&res, 0);
	expect_out(&res, "vcpus        2");

	vmm_init(&vm);
	vm.key = "other";
	RUN("-k", path, "-t", "2", "listen", vm.addr, "info");
	expect_status(&res, 3);
	expect_err(&res, "handshake with a VMM failed");
	if (!vm.rejected_cookie)
		failf("the fake VMM did not see a wrong cookie");
	unlink(path);
	tap("--key: the right key connects, a wrong one is refused");
}

static void t_expect_guest(void)
{
	struct timespec t0, t1;
	double secs;

	vmm_init(&vm);
	RUN("--expect-name", "cli-vm", "--expect-uuid", "00010203-0405-0607-0809-0A0B0C0D0E0F", "listen", vm.addr,
	    "info");
	expect_status(&res, 0);
	expect_out(&res, "guest        cli-vm");

	vmm_init(&vm);
	RUN("--expect-name", "other-vm", "-t", "0.5", "listen", vm.addr, "info");
	expect_status(&res, 3);
	expect_err(&res, "refused guest 'cli-vm': expected the guest named 'other-vm'");
	if (vm.answered || vm.n_connects != 1)
		failf("wrong name: the VMM was answered (%d) or did not connect once (%d)", vm.answered,
		      vm.n_connects);

	vmm_init(&vm);
	RUN("--expect-uuid", "000102030405060708090a0b0c0d0eff", "-t", "0.5", "listen", vm.addr, "info");
	expect_status(&res, 3);
	expect_err(&res, "refused guest 'cli-vm' with UUID 00010203-0405-0607-0809-0a0b0c0d0e0f: "
		   "expected UUID 00010203-0405-0607-0809-0a0b0c0d0eff");
	if (vm.answered)
		failf("wrong UUID: the VMM was answered");

	/* A VMM that keeps coming back does not restart --accept-timeout. */
	vmm_init(&vm);
	vm.reconnects = 200;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	RUN("--expect-name", "other-vm", "-t", "1", "listen", vm.addr, "info");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	expect_status(&res, 3);
	expect_err(&res, "no VMM connected");
	if (vm.n_connects < 3 || secs > 4)
		failf("a reconnecting wrong guest: %d connections, %.1f s (want >= 3 within the 1 s timeout)",
		      vm.n_connects, secs);

	RUN_NOVMM("--expect-uuid", "01234567-89ab-cdef-0123-456789abcde", "listen", "unix:@kvmi-cli-nobody");
	expect_status(&res, 2);
	expect_err(&res, "--expect-uuid: '01234567-89ab-cdef-0123-456789abcde' is not a UUID");
	RUN_NOVMM("--expect-name", "0123456789012345678901234567890123456789012345678901234567890123",
		  "listen", "unix:@kvmi-cli-nobody");
	expect_status(&res, 2);
	expect_err(&res, "--expect-name: a guest name has at most 63 bytes");
	tap("--expect-name / --expect-uuid: the right guest is served, another refused unanswered");
}

static void t_script_file(void)
{
	char path[] = "/tmp/kvmi-cli-script-XXXXXX";
	const char *text = "# a comment\ninfo\n\nregs 0   # trailing comment\n";
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		failf("script file");
	close(fd);
	vmm_init(&vm);
	RUN("-f", path, "listen", vm.addr);
	expect_status(&res, 0);
	expect_out(&res, "vcpus        2");
	expect_out(&res, "vcpu 0, 64-bit");
	unlink(path);
	tap("-f FILE: one verb per line, comments");
}

int main(int argc, char **argv)
{
	cli_path = argc > 1 ? argv[1] : getenv("KVMI_CLI");
	if (!cli_path || access(cli_path, X_OK)) {
		printf("1..0 # SKIP the kvmi binary was not given\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	t_help();
	t_usage_errors();
	t_accept_timeout();
	t_info();
	t_check();
	t_regs();
	t_read_write();
	t_errors_in_words();
	t_translate();
	t_pause_resume();
	t_paused_released_at_exit();
	t_inject();
	t_trace();
	t_protect();
	t_msr_veto();
	t_guest_ends_after_last_reply();
	t_event_verbs_bad_input();
	t_key();
	t_expect_guest();
	t_script_file();
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
