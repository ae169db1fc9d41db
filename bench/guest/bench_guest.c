/* SPDX-License-Identifier: MIT */
/*
 * The benchmark guest: every vCPU waits in ring 3 for commands in the
 * mailbox of bench_abi.h and runs them (ring 3 runs natively on every host;
 * ring 0 only where a command needs it).  Times are rdtsc cycles taken in
 * the guest, so the host-side tool's own wake-ups never enter a sample.
 */
#include "guest.h"
#include "bench_abi.h"

#define MBOX ((volatile struct bench_mbox *)BENCH_MBOX_GPA)

static struct guest_barrier start;

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

static uint64_t *samples(unsigned vcpu)
{
	return (uint64_t *)(uintptr_t)(BENCH_SAMPLES_GPA + vcpu * BENCH_SAMPLES_SIZE);
}

static void cmd_spin(unsigned vcpu, uint64_t seq)
{
	volatile struct bench_vcpu *v = &MBOX->v[vcpu];
	struct bench_gap *g = (struct bench_gap *)samples(vcpu);
	uint64_t thr = MBOX->arg[0], n = 0, count = 0, prev = rdtsc(), t;

	v->nsamples = 0;
	while (MBOX->stop != seq) {
		t = rdtsc();
		if (t - prev > thr && n < BENCH_SAMPLES_MAX) {
			g[n].cycles = t - prev;
			g[n].tag = MBOX->tag;
			v->nsamples = ++n;
		}
		prev = t;
		v->now = t;
		v->count = ++count;
	}
}

static void timed_outs(unsigned vcpu, uint64_t n)
{
	uint64_t *s = samples(vcpu);

	if (n > BENCH_SAMPLES_SIZE / 8)
		n = BENCH_SAMPLES_SIZE / 8;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = rdtsc();

		outb(BENCH_IDLE_PORT, 0);
		s[i] = rdtsc() - t0;
	}
	MBOX->v[vcpu].nsamples = n;
}

/* Ring 0 only. */
static void timed_wrmsrs(unsigned vcpu, uint64_t n, uint32_t msr)
{
	uint64_t *s = samples(vcpu);

	if (n > BENCH_SAMPLES_SIZE / 8)
		n = BENCH_SAMPLES_SIZE / 8;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = rdtsc();

		__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)i), "d"(0u) : "memory");
		s[i] = rdtsc() - t0;
	}
	MBOX->v[vcpu].nsamples = n;
}

/* Ring 0 only: MOV to CR4 of the value it holds (KVM intercepts it). */
static void timed_cr4_writes(unsigned vcpu, uint64_t n)
{
	uint64_t *s = samples(vcpu), cr4;

	if (n > BENCH_SAMPLES_SIZE / 8)
		n = BENCH_SAMPLES_SIZE / 8;
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = rdtsc();

		__asm__ volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
		s[i] = rdtsc() - t0;
	}
	MBOX->v[vcpu].nsamples = n;
}

/* Ring 0 only: every int3 goes through the guest's #BP handler
 * (on_breakpoint), as a debugger's breakpoint reinjected would. */
static void timed_int3s(unsigned vcpu, uint64_t n)
{
	uint64_t *s = samples(vcpu);

	if (n > BENCH_SAMPLES_SIZE / 8)
		n = BENCH_SAMPLES_SIZE / 8;
	MBOX->v[vcpu].result[1] = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = rdtsc();

		__asm__ volatile("int3" : : : "memory");
		s[i] = rdtsc() - t0;
	}
	MBOX->v[vcpu].nsamples = n;
}

static void on_breakpoint(struct guest_regs *regs)
{
	(void)regs;
	MBOX->v[guest_vcpu_id()].result[1]++;
}

/* Ring 0 only: a loop to single-step. */
static void spin_ring0(unsigned vcpu, uint64_t seq)
{
	MBOX->v[vcpu].result[0] = seq;
	while (MBOX->stop != seq)
		cpu_relax();
}

static uint64_t work_steps(uint64_t x, uint64_t steps)
{
	uint64_t *buf = (uint64_t *)(uintptr_t)BENCH_WORK_GPA, mask = BENCH_WORK_SIZE / 8 - 1;

	for (uint64_t i = 0; i < steps; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		buf[(x >> 33) & mask] += x;
	}
	return x;
}

/* A fixed amount of integer work and scattered memory traffic; with
 * @period, an OUT to the idle port after every @period steps. */
static void cmd_work(unsigned vcpu, uint64_t steps, uint64_t reps, uint64_t period)
{
	uint64_t *s = samples(vcpu), x = 12345 + vcpu;

	if (reps > BENCH_SAMPLES_SIZE / 8)
		reps = BENCH_SAMPLES_SIZE / 8;
	for (uint64_t r = 0; r < reps; r++) {
		uint64_t t0 = rdtsc();

		if (!period) {
			x = work_steps(x, steps);
		} else {
			for (uint64_t done = 0; done < steps; done += period) {
				x = work_steps(x, steps - done < period ? steps - done : period);
				outb(BENCH_IDLE_PORT, 0);
			}
		}
		s[r] = rdtsc() - t0;
	}
	MBOX->v[vcpu].result[0] = x;
	MBOX->v[vcpu].nsamples = reps;
}

static void cmd_fill(void)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)BENCH_DATA_GPA;

	for (uint64_t off = 0; off < BENCH_DATA_SIZE; off += 8)
		p[off / 8] = bench_pattern(BENCH_DATA_GPA + off);
}

/* Stores to (or loads from) this vCPU's 64 words of the page PF write
 * (read) benchmarks protect, each timed. */
static void cmd_accesses(unsigned vcpu, uint64_t n, bool write)
{
	volatile uint64_t *page = (volatile uint64_t *)(uintptr_t)BENCH_PF_PAGE_GPA;
	uint64_t *s = samples(vcpu);

	if (n > BENCH_SAMPLES_SIZE / 8)
		n = BENCH_SAMPLES_SIZE / 8;
	for (uint64_t i = 0; i < n; i++) {
		volatile uint64_t *w = &page[(vcpu * 64 + i % 64) % 512];
		uint64_t t0 = rdtsc();

		if (write)
			*w = i;
		else
			(void)*w;
		s[i] = rdtsc() - t0;
	}
	MBOX->v[vcpu].nsamples = n;
}

/* Calls into the page PF exec benchmarks protect: one instruction (ret),
 * so one fetch, one event per call. */
static void cmd_calls(unsigned vcpu, uint64_t n)
{
	void (*fn)(void) = (void (*)(void))BENCH_EXEC_PAGE_GPA;
	uint64_t *s = samples(vcpu);

	if (n > BENCH_SAMPLES_SIZE / 8)
		n = BENCH_SAMPLES_SIZE / 8;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = rdtsc();

		fn();
		s[i] = rdtsc() - t0;
	}
	MBOX->v[vcpu].nsamples = n;
}

/*
 * The ring-3 command loop; returns (to ring 0) the first command that needs
 * ring 0, with its seq in *seq.
 */
struct loop_arg {
	unsigned vcpu;
	uint64_t last;
};

static uint64_t command_loop(void *p)
{
	struct loop_arg *a = p;
	volatile struct bench_vcpu *v = &MBOX->v[a->vcpu];

	for (;;) {
		uint64_t seq, cmd;

		while ((seq = __atomic_load_n(&MBOX->seq, __ATOMIC_ACQUIRE)) == a->last)
			cpu_relax();
		a->last = seq;
		cmd = MBOX->cmd;
		switch (cmd) {
		case BENCH_CMD_SPIN:
			cmd_spin(a->vcpu, seq);
			break;
		case BENCH_CMD_PIO3:
			timed_outs(a->vcpu, MBOX->arg[0]);
			break;
		case BENCH_CMD_WORK:
			cmd_work(a->vcpu, MBOX->arg[0], MBOX->arg[1], MBOX->arg[2]);
			break;
		case BENCH_CMD_FILL:
			if (a->vcpu == 0)
				cmd_fill();
			break;
		case BENCH_CMD_STORES:
		case BENCH_CMD_LOADS:
			cmd_accesses(a->vcpu, MBOX->arg[0], cmd == BENCH_CMD_STORES);
			break;
		case BENCH_CMD_CALLS:
			cmd_calls(a->vcpu, MBOX->arg[0]);
			break;
		case BENCH_CMD_PIO0:
		case BENCH_CMD_INT3_0:
		case BENCH_CMD_WRMSR0:
		case BENCH_CMD_WRCR4_0:
		case BENCH_CMD_SPIN0:
		case BENCH_CMD_EXIT:
			return cmd;
		default:
			break;
		}
		__atomic_store_n(&v->ack, seq, __ATOMIC_RELEASE);
	}
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	struct loop_arg a = { .vcpu = vcpu, .last = 0 };

	GUEST_ASSERT(nr_vcpus <= BENCH_MAX_VCPUS);
	guest_ring3_allow_port(BENCH_IDLE_PORT, true);
	if (vcpu == 0) {
		*(volatile uint8_t *)(uintptr_t)BENCH_EXEC_PAGE_GPA = 0xc3;      /* ret */
		guest_install_handler(VEC_BP, on_breakpoint);
		MBOX->nr_vcpus = nr_vcpus;
		MBOX->seq = 0;
		MBOX->stop = 0;
		__atomic_store_n(&MBOX->magic, BENCH_MAGIC, __ATOMIC_RELEASE);
	}
	guest_barrier_wait(&start, nr_vcpus);
	for (;;) {
		uint64_t cmd = run_in_ring3(command_loop, &a);

		if (cmd == BENCH_CMD_EXIT)
			break;
		if (cmd == BENCH_CMD_PIO0)
			timed_outs(vcpu, MBOX->arg[0]);
		else if (cmd == BENCH_CMD_WRMSR0)
			timed_wrmsrs(vcpu, MBOX->arg[0], (uint32_t)MBOX->arg[1]);
		else if (cmd == BENCH_CMD_INT3_0)
			timed_int3s(vcpu, MBOX->arg[0]);
		else if (cmd == BENCH_CMD_WRCR4_0)
			timed_cr4_writes(vcpu, MBOX->arg[0]);
		else if (cmd == BENCH_CMD_SPIN0)
			spin_ring0(vcpu, a.last);
		__atomic_store_n(&MBOX->v[vcpu].ack, a.last, __ATOMIC_RELEASE);
	}
	GUEST_DONE();
}
