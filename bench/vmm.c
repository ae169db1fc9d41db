/* SPDX-License-Identifier: MIT */
/*
 * The VMM that runs the benchmark guest, for every benchmark program:
 * kvmi-vm, stock QEMU, or QEMU through kvmi-qemu (libkvmi-qemu.so); its
 * guest RAM reached through the VMM's memfd mapping, the mailbox of
 * bench_abi.h, and the tool's side of an event.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

/* ---------------------------------------------------------------- guest RAM */

void gmem_read(struct vmm *v, uint64_t gpa, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)(v->ram_hva + gpa), len };
	ssize_t n;

	if (gpa + len > v->ram_size)
		die("guest read beyond RAM (%#llx)", (unsigned long long)gpa);
	n = process_vm_readv(v->pid, &l, 1, &r, 1, 0);
	if (n != (ssize_t)len)
		die("process_vm_readv of the VMM: %s", n < 0 ? strerror(errno) : "short read");
}

void gmem_write(struct vmm *v, uint64_t gpa, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)(uintptr_t)(v->ram_hva + gpa), len };
	ssize_t n;

	if (gpa + len > v->ram_size)
		die("guest write beyond RAM (%#llx)", (unsigned long long)gpa);
	n = process_vm_writev(v->pid, &l, 1, &r, 1, 0);
	if (n != (ssize_t)len)
		die("process_vm_writev to the VMM: %s", n < 0 ? strerror(errno) : "short write");
}

uint64_t gmem_read64(struct vmm *v, uint64_t gpa)
{
	uint64_t x;

	gmem_read(v, gpa, &x, 8);
	return x;
}

void gmem_write64(struct vmm *v, uint64_t gpa, uint64_t val)
{
	gmem_write(v, gpa, &val, 8);
}

/* The memfd mapping of guest RAM at file offset 0 (= GPA 0): kvmi-vm's
 * memfd, or QEMU's memory-backend-memfd (q35 puts low RAM at offset 0). */
static bool find_ram(struct vmm *v)
{
	const char *name = v->kind == VMM_KVMI_VM ? "memfd:kvmi-guest-ram" : "memfd:memory-backend-memfd";
	char path[64], line[1024];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)v->pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b, off;
		char perm[8];

		if (!strstr(line, name))
			continue;
		if (sscanf(line, "%llx-%llx %7s %llx", &a, &b, perm, &off) != 4 || off != 0)
			continue;
		if (b - a > v->ram_size) {
			v->ram_hva = a;
			v->ram_size = b - a;
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* ---------------------------------------------------------------- mailbox */

uint64_t mbox_post(struct vmm *v, uint64_t cmd, const uint64_t args[4])
{
	uint64_t a[4] = { 0 };

	if (args)
		memcpy(a, args, sizeof(a));
	gmem_write64(v, MBOX_FIELD(cmd), cmd);
	gmem_write(v, MBOX_FIELD(arg), a, sizeof(a));
	/* process_vm_writev copies in order; the guest reads seq first. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST); /* a compiler barrier: the syscalls order the copies */
	gmem_write64(v, MBOX_FIELD(seq), ++v->seq);
	return v->seq;
}

bool mbox_done(struct vmm *v, uint64_t seq, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
	unsigned pause = 100;   /* polls back off to 5 ms: a long command is left alone */

	for (;;) {
		struct bench_vcpu vc[BENCH_MAX_VCPUS];
		unsigned done = 0;

		gmem_read(v, VCPU_FIELD(0, ack), vc, sizeof(vc[0]) * v->nr_vcpus);
		for (unsigned i = 0; i < v->nr_vcpus; i++)
			done += vc[i].ack == seq;
		if (done == v->nr_vcpus)
			return true;
		if (now_ns() >= end)
			return false;
		sleep_us(pause);
		if (pause < 5000)
			pause *= 2;
	}
}

void mbox_run(struct vmm *v, uint64_t cmd, const uint64_t args[4], int timeout_ms)
{
	uint64_t seq = mbox_post(v, cmd, args);

	if (!mbox_done(v, seq, timeout_ms))
		die("guest command %llu not done within %d ms (log: %s)", (unsigned long long)cmd,
		    timeout_ms, v->log);
}

double cycles_to_us(const struct vmm *v, double cycles)
{
	return cycles / v->tsc_hz * 1e6;
}

size_t vcpu_samples_us(struct vmm *v, unsigned i, double *out, size_t max)
{
	uint64_t n = gmem_read64(v, VCPU_FIELD(i, nsamples));
	uint64_t *raw;

	if (n > max)
		n = max;
	raw = malloc(n * 8 + 8);
	if (!raw)
		die("out of memory");
	gmem_read(v, BENCH_SAMPLES_GPA + i * BENCH_SAMPLES_SIZE, raw, n * 8);
	for (size_t k = 0; k < n; k++)
		out[k] = cycles_to_us(v, (double)raw[k]);
	free(raw);
	return n;
}

/* Guest TSC against CLOCK_MONOTONIC over 300 ms of BENCH_CMD_SPIN. */
static void calibrate(struct vmm *v)
{
	uint64_t args[4] = { UINT64_MAX }, seq, t0, t1, c0, c1, h0, h1;

	seq = mbox_post(v, BENCH_CMD_SPIN, args);
	sleep_us(20000);
	h0 = now_ns();
	c0 = gmem_read64(v, VCPU_FIELD(0, now));
	t0 = now_ns();
	sleep_us(300000);
	h1 = now_ns();
	c1 = gmem_read64(v, VCPU_FIELD(0, now));
	t1 = now_ns();
	gmem_write64(v, MBOX_FIELD(stop), seq);
	if (!mbox_done(v, seq, 5000))
		die("guest did not leave its calibration spin (log: %s)", v->log);
	if (c1 <= c0)
		die("guest TSC does not advance");
	v->tsc_hz = (double)(c1 - c0) / ((double)((h1 + t1) / 2 - (h0 + t0) / 2) / 1e9);
}

/* ---------------------------------------------------------------- the VMM */

static unsigned vmm_serial;

const char *vmm_kind_name(enum vmm_kind k)
{
	return k == VMM_KVMI_VM ? "kvmi-vm" : k == VMM_QEMU ? "QEMU" : "kvmi-qemu";
}

enum vmm_kind vmm_kind_of(const char *path)
{
	const char *base = strrchr(path, '/');

	return !strcmp(base ? base + 1 : path, "kvmi-qemu") ? VMM_KVMI_QEMU : VMM_KVMI_VM;
}

struct vmm_args {
	const char *argv[48];
	unsigned n;
	char vcpus[16], mem[32], ramobj[96], serial[600], bios[512], addr[420];
};

static void arg(struct vmm_args *a, const char *s)
{
	if (a->n >= sizeof(a->argv) / sizeof(a->argv[0]) - 1)
		die("too many VMM arguments");
	a->argv[a->n++] = s;
}

static void kvmi_vm_argv(struct vmm_args *a, const struct vmm_opts *o)
{
	const char *fixed[] = { o->kvmi_vm, "--guest", o->guest, "--vcpus", a->vcpus, "--no-serial-input",
				"--timeout", "900" };

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		arg(a, fixed[i]);
	if (o->memory) {
		arg(a, "--memory");
		arg(a, o->memory);
	}
	if (o->verbose)
		arg(a, "-vv");
	if (o->introspect) {
		arg(a, "--introspector");
		arg(a, a->addr);
	}
}

/*
 * Stock QEMU booting the guest as tests/integration/itest.c boots a test
 * payload: q35, the guest's boot image (bench_guest.bios next to the ELF,
 * made by tests/guest/qemu's rule), RAM in a memfd (the tool may map it,
 * this program reaches the mailbox through it), the end through
 * isa-debug-exit.  VMM_KVMI_QEMU puts kvmi-qemu and its options first.
 */
static void qemu_argv(struct vmm_args *a, const struct vmm_opts *o, const char *log)
{
	size_t len = strlen(o->guest);
	const char *fixed[] = { o->qemu ? o->qemu : "qemu-system-x86_64", "-M", "q35", "-enable-kvm", "-cpu", "EPYC",
				"-m", a->mem, "-smp", a->vcpus, "-object", a->ramobj, "-machine", "memory-backend=ram",
				"-nodefaults", "-nographic", "-serial", a->serial, "-monitor", "none", "-device",
				"isa-debug-exit,iobase=0xf4,iosize=0x04", "-bios", a->bios, "-no-reboot", "-action",
				"panic=shutdown", "-name", "kvmi-bench" };

	snprintf(a->bios, sizeof(a->bios), "%.*s.bios",
		 (int)(len > 4 && !strcmp(o->guest + len - 4, ".elf") ? len - 4 : len), o->guest);
	snprintf(a->mem, sizeof(a->mem), "%s", o->memory ? o->memory : "256M");
	snprintf(a->ramobj, sizeof(a->ramobj), "memory-backend-memfd,id=ram,size=%s", a->mem);
	snprintf(a->serial, sizeof(a->serial), "file:%s.serial", log);
	if (o->kind == VMM_KVMI_QEMU) {
		arg(a, o->kvmi_vm);
		if (o->verbose)
			arg(a, "-v");
		if (o->introspect) {
			arg(a, "--introspector");
			arg(a, a->addr);
		}
		arg(a, "--");
	}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		arg(a, fixed[i]);
}

/* The VMM with its output in @log; it dies with this program. */
static pid_t spawn(const char *const *argv, const char *log)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int nul = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* The guest's RAM in the VMM, its mailbox, the TSC rate (@tsc_hz if known).
 * Polls every 5 ms for 10 and 20 s. */
static void wait_guest(struct vmm *v, double tsc_hz)
{
	for (int i = 0; i < 2000 && !find_ram(v); i++)
		sleep_us(5000);
	if (!v->ram_hva)
		die("no guest RAM memfd mapping in /proc/%d/maps (log: %s)", (int)v->pid, v->log);
	for (int i = 0; i < 4000 && gmem_read64(v, MBOX_FIELD(magic)) != BENCH_MAGIC; i++)
		sleep_us(5000);
	if (gmem_read64(v, MBOX_FIELD(magic)) != BENCH_MAGIC)
		die("the benchmark guest did not start (log: %s)", v->log);
	v->seq = gmem_read64(v, MBOX_FIELD(seq));
	if (tsc_hz > 0)
		v->tsc_hz = tsc_hz;
	else
		calibrate(v);
}

void vmm_start(struct vmm *v, const struct vmm_opts *o)
{
	struct vmm_args a = { .n = 0 };
	char sock[400];
	int ret;

	memset(v, 0, sizeof(*v));
	v->nr_vcpus = o->nr_vcpus;
	v->kind = o->kind;
	if (o->introspect && o->kind == VMM_QEMU)
		die("stock QEMU takes no tool");
	snprintf(v->log, sizeof(v->log), "%s/%s-%d-%u.log", o->tmpdir, vmm_kind_name(o->kind), (int)getpid(),
		 vmm_serial);
	snprintf(sock, sizeof(sock), "%s/kvmi-%d-%u.sock", o->tmpdir, (int)getpid(), vmm_serial++);
	snprintf(a.addr, sizeof(a.addr), "unix:%s", sock);
	snprintf(a.vcpus, sizeof(a.vcpus), "%u", o->nr_vcpus);
	if (o->introspect) {
		ret = kvmi_listener_open(a.addr, NULL, &v->l);
		if (ret)
			die("listen on %s: %s", a.addr, kvmi_strerror(ret));
	}
	if (o->kind == VMM_KVMI_VM)
		kvmi_vm_argv(&a, o);
	else
		qemu_argv(&a, o, v->log);
	a.argv[a.n] = NULL;
	v->pid = spawn(a.argv, v->log);
	if (o->introspect) {
		ret = kvmi_listener_accept(v->l, 20000, &v->dom);
		if (ret)
			die("%s did not connect: %s (log: %s)", vmm_kind_name(o->kind), kvmi_strerror(ret), v->log);
	}
	wait_guest(v, o->tsc_hz);
}

/* kvmi-vm ends with 0 after GUEST_DONE; QEMU with (0 << 1) | 1 through
 * isa-debug-exit (tests/guest/README.md). */
void vmm_stop_begin(struct vmm *v)
{
	mbox_post(v, BENCH_CMD_EXIT, NULL);
	v->exiting = true;
}

void vmm_stop(struct vmm *v)
{
	int st = -1, ok = v->kind == VMM_KVMI_VM ? 0 : 1;
	char serial[600];
	pid_t r = 0;

	if (!v->exiting)
		vmm_stop_begin(v);
	for (int i = 0; i < 3000 && (r = waitpid(v->pid, &st, WNOHANG)) == 0; i++)
		sleep_us(10000);
	if (r != v->pid) {
		kill(v->pid, SIGKILL);
		waitpid(v->pid, NULL, 0);
		die("%s did not finish (log: %s)", vmm_kind_name(v->kind), v->log);
	}
	if (v->dom)
		kvmi_dom_close(v->dom);
	if (v->l)
		kvmi_listener_close(v->l);
	v->dom = NULL;
	v->l = NULL;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != ok)
		die("%s ended with status %d (log: %s)", vmm_kind_name(v->kind),
		    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), v->log);
	snprintf(serial, sizeof(serial), "%s.serial", v->log);
	unlink(serial);
	unlink(v->log);
}

/* ---------------------------------------------------------------- the tool */

struct kvmi_event_msg *next_event(struct vmm *v, int timeout_ms)
{
	struct kvmi_event_msg *ev = NULL;
	int ret = kvmi_dom_next_event(v->dom, timeout_ms, &ev);

	if (ret == -ETIMEDOUT)
		return NULL;
	if (ret)
		die("waiting for an event: %s (log: %s)", kvmi_strerror(ret), v->log);
	return ev;
}

/* CONTINUE; an MSR or CR write goes through with the value the guest wrote
 * (those replies carry it). */
void reply_continue(struct vmm *v, struct kvmi_event_msg *ev)
{
	struct kvmi_event_msr_reply rpl = { 0 };
	size_t len = 0;
	int ret;

	if (ev->event == KVMI_EVENT_MSR || ev->event == KVMI_EVENT_CR) {
		rpl.new_val = ev->event == KVMI_EVENT_MSR ? ev->specific.msr.new_value : ev->specific.cr.new_value;
		len = sizeof(rpl);
	}
	ret = kvmi_dom_reply_event(v->dom, ev, KVMI_EVENT_ACTION_CONTINUE, len ? &rpl : NULL, len);

	if (ret)
		die("event reply: %s", kvmi_strerror(ret));
	kvmi_event_free(ev);
}

void read_counts(struct vmm *v, uint64_t *counts)
{
	struct bench_vcpu vc[BENCH_MAX_VCPUS];

	gmem_read(v, VCPU_FIELD(0, ack), vc, sizeof(vc[0]) * v->nr_vcpus);
	for (unsigned i = 0; i < v->nr_vcpus; i++)
		counts[i] = vc[i].count;
}
