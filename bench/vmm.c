/* SPDX-License-Identifier: MIT */
/* Statistics, result files and the kvmi-vm driver shared by the benchmarks. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

/* ---------------------------------------------------------------- misc */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

void note(const char *fmt, ...)
{
	va_list ap;

	printf("  ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* ---------------------------------------------------------------- stats */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted @v. */
static double pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)n);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

void stats_of(double *v, size_t n, struct stats *s)
{
	double sum = 0;

	memset(s, 0, sizeof(*s));
	s->n = n;
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	s->min = v[0];
	s->max = v[n - 1];
	s->mean = sum / (double)n;
	/* The median of an even count is the mean of the middle two. */
	s->p50 = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	s->p90 = pct(v, n, 90);
	s->p99 = pct(v, n, 99);
}

/* ---------------------------------------------------------------- results */

static char out_dir[512] = ".";
static char id_suffix[32];      /* BENCH_ID_SUFFIX: a second run of a phase */

void result_init(void)
{
	const char *d = getenv("BENCH_OUT"), *sfx = getenv("BENCH_ID_SUFFIX");
	char p[600];

	if (sfx)
		snprintf(id_suffix, sizeof(id_suffix), "%s", sfx);
	if (d && *d)
		snprintf(out_dir, sizeof(out_dir), "%s", d);
	snprintf(p, sizeof(p), "%s/samples", out_dir);
	mkdir(out_dir, 0755);
	mkdir(p, 0755);
}

static void result_line(const char *id, const char *unit, const struct stats *s, const char *note_fmt,
			va_list ap)
{
	char path[600], text[512] = "";
	FILE *f;

	if (note_fmt)
		vsnprintf(text, sizeof(text), note_fmt, ap);
	for (char *c = text; *c; c++)
		if (*c == '\t' || *c == '\n')
			*c = ' ';
	snprintf(path, sizeof(path), "%s/results.tsv", out_dir);
	f = fopen(path, "a");
	if (!f)
		die("cannot append to %s: %s", path, strerror(errno));
	fprintf(f, "%s%s\t%s\t%zu\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%s\n", id, id_suffix, unit, s->n, s->p50,
		s->p90, s->p99, s->mean, s->min, s->max, text);
	fclose(f);
	if (s->n == 1)
		printf("  %-28s %10.3f %-5s %s\n", id, s->p50, unit, text);
	else if (s->n)
		printf("  %-28s %10.3f %-5s (p90 %.3f, p99 %.3f, n %zu)%s%s\n", id, s->p50, unit, s->p90,
		       s->p99, s->n, *text ? "  " : "", text);
	else
		printf("  %-28s %s\n", id, text);
	fflush(stdout);
}

void result_add(const char *id, const char *unit, const struct stats *s, const char *note_fmt, ...)
{
	va_list ap;

	va_start(ap, note_fmt);
	result_line(id, unit, s, note_fmt, ap);
	va_end(ap);
}

void result_samples(const char *id, const char *unit, double *v, size_t n, const char *note_fmt, ...)
{
	struct stats s;
	char path[600];
	va_list ap;
	FILE *f;

	stats_of(v, n, &s);
	va_start(ap, note_fmt);
	result_line(id, unit, &s, note_fmt, ap);
	va_end(ap);
	if (!n)
		return;
	snprintf(path, sizeof(path), "%s/samples/%s%s.dat", out_dir, id, id_suffix);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "# %s (%s): value cumulative-fraction, %zu samples\n", id, unit, n);
	if (n <= 401) {
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%.6g %.6g\n", v[i], (double)(i + 1) / (double)n);
	} else {
		for (unsigned q = 0; q <= 400; q++) {
			size_t i = (size_t)((double)(n - 1) * q / 400.0);

			fprintf(f, "%.6g %.6g\n", v[i], (double)(i + 1) / (double)n);
		}
	}
	fclose(f);
}

void result_na(const char *id, const char *why, ...)
{
	struct stats s = { 0 };
	va_list ap;

	va_start(ap, why);
	result_line(id, "n/a", &s, why, ap);
	va_end(ap);
}

void result_value(const char *id, const char *unit, double value, const char *note_fmt, ...)
{
	struct stats s = { .n = 1, .min = value, .p50 = value, .p90 = value, .p99 = value,
			   .max = value, .mean = value };
	va_list ap;

	va_start(ap, note_fmt);
	result_line(id, unit, &s, note_fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------- guest RAM */

void gmem_read(struct vmm *v, uint64_t gpa, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)(v->ram_hva + gpa), len };
	ssize_t n;

	if (gpa + len > v->ram_size)
		die("guest read beyond RAM (%#llx)", (unsigned long long)gpa);
	n = process_vm_readv(v->pid, &l, 1, &r, 1, 0);
	if (n != (ssize_t)len)
		die("process_vm_readv of kvmi-vm: %s", n < 0 ? strerror(errno) : "short read");
}

void gmem_write(struct vmm *v, uint64_t gpa, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)(uintptr_t)(v->ram_hva + gpa), len };
	ssize_t n;

	if (gpa + len > v->ram_size)
		die("guest write beyond RAM (%#llx)", (unsigned long long)gpa);
	n = process_vm_writev(v->pid, &l, 1, &r, 1, 0);
	if (n != (ssize_t)len)
		die("process_vm_writev to kvmi-vm: %s", n < 0 ? strerror(errno) : "short write");
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

/* The memfd mapping of guest RAM at file offset 0 (= GPA 0). */
static bool find_ram(struct vmm *v)
{
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

		if (!strstr(line, "memfd:kvmi-guest-ram"))
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

/* ---------------------------------------------------------------- kvmi-vm */

static unsigned vmm_serial;

void vmm_start(struct vmm *v, const struct vmm_opts *o)
{
	char sock[400], tool_addr[420], vmm_addr[420], vcpus[16];
	const char *argv[24];
	unsigned n = 0;
	int ret;

	memset(v, 0, sizeof(*v));
	v->nr_vcpus = o->nr_vcpus;
	snprintf(v->log, sizeof(v->log), "%s/kvmi-vm-%d-%u.log", o->tmpdir, (int)getpid(), vmm_serial);
	snprintf(sock, sizeof(sock), "%s/kvmi-%d-%u.sock", o->tmpdir, (int)getpid(), vmm_serial++);
	snprintf(tool_addr, sizeof(tool_addr), "unix:%s", sock);
	snprintf(vmm_addr, sizeof(vmm_addr), "unix:%s", sock);
	snprintf(vcpus, sizeof(vcpus), "%u", o->nr_vcpus);
	if (o->introspect) {
		ret = kvmi_listener_open(tool_addr, NULL, &v->l);
		if (ret)
			die("listen on %s: %s", tool_addr, kvmi_strerror(ret));
	}
	argv[n++] = o->kvmi_vm;
	argv[n++] = "--guest";
	argv[n++] = o->guest;
	argv[n++] = "--vcpus";
	argv[n++] = vcpus;
	argv[n++] = "--no-serial-input";
	argv[n++] = "--timeout";
	argv[n++] = "900";
	if (o->memory) {
		argv[n++] = "--memory";
		argv[n++] = o->memory;
	}
	if (o->verbose)
		argv[n++] = "-vv";
	if (o->introspect) {
		argv[n++] = "--introspector";
		argv[n++] = vmm_addr;
	}
	argv[n] = NULL;

	v->pid = fork();
	if (v->pid < 0)
		die("fork: %s", strerror(errno));
	if (v->pid == 0) {
		int fd = open(v->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int nul = open("/dev/null", O_RDONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		execv(o->kvmi_vm, (char *const *)argv);
		_exit(127);
	}
	if (o->introspect) {
		ret = kvmi_listener_accept(v->l, 20000, &v->dom);
		if (ret)
			die("kvmi-vm did not connect: %s (log: %s)", kvmi_strerror(ret), v->log);
	}
	for (int i = 0; i < 200 && !find_ram(v); i++)
		sleep_us(50000);
	if (!v->ram_hva)
		die("no memfd:kvmi-guest-ram mapping in /proc/%d/maps", (int)v->pid);
	for (int i = 0; i < 400 && gmem_read64(v, MBOX_FIELD(magic)) != BENCH_MAGIC; i++)
		sleep_us(50000);
	if (gmem_read64(v, MBOX_FIELD(magic)) != BENCH_MAGIC)
		die("the benchmark guest did not start (log: %s)", v->log);
	v->seq = gmem_read64(v, MBOX_FIELD(seq));
	calibrate(v);
}

void vmm_stop(struct vmm *v)
{
	int st = -1;
	pid_t r = 0;

	mbox_post(v, BENCH_CMD_EXIT, NULL);
	for (int i = 0; i < 300 && (r = waitpid(v->pid, &st, WNOHANG)) == 0; i++)
		sleep_us(100000);
	if (r != v->pid) {
		kill(v->pid, SIGKILL);
		waitpid(v->pid, NULL, 0);
		die("kvmi-vm did not finish (log: %s)", v->log);
	}
	if (v->dom)
		kvmi_dom_close(v->dom);
	if (v->l)
		kvmi_listener_close(v->l);
	v->dom = NULL;
	v->l = NULL;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("kvmi-vm ended with status %d (log: %s)", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
		    v->log);
	unlink(v->log);
}
