/* SPDX-License-Identifier: MIT */
/*
 * fuzz_engine.c - libFuzzer target for the live engine: the protocol
 * server on top of the real engine (src/engine), whose frontend is the
 * unit tests' fake host with real memslot bookkeeping (slot ids, sizes,
 * flags) and real guest RAM (a memfd, so READ/WRITE_PHYSICAL, map grants
 * and SET_PAGE_ACCESS layouts work on real memory).  Two engine vCPUs whose
 * jobs a thread runs as a vCPU loop would (their ioctls fail: no KVM).
 *
 * Input byte 0 chooses the setup (bit 0: a unix socketpair instead of
 * pipes, so map grants get past their AF_UNIX check; bit 1: a second RAM
 * region above 4 GiB); the rest is the byte stream a tool sends after the
 * handshake.  After the stream ends, the session's end must have undone
 * everything: the RAM regions are back to one writable slot each, every
 * slot id the engine took is given back, and no MSR is intercepted.  A
 * violation aborts.
 */
#include "fake_host.h"
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAM_LOW  (2u << 20)
#define RAM_HIGH (1u << 20)

struct io {
	int in[2], out[2];      /* see fuzz_decoder.c: tool writes in[1], reads out[0] */
	bool sock;
};

static struct fake_host host;
static atomic_bool stop_runner;

struct serve_args {
	struct kvmi_engine *e;
	struct io *io;
};

static void *serve(void *arg)
{
	struct serve_args *a = arg;

	kvmi_server_serve(a->e->srv, a->io->in[0], a->io->out[1]);
	return NULL;
}

static void *drain(void *arg)
{
	struct io *io = arg;
	char buf[4096];

	while (read(io->out[0], buf, sizeof(buf)) > 0)
		;
	return NULL;
}

/* Plays the vCPU threads' loops: jobs run between (never happening) entries. */
static void *runner(void *arg)
{
	struct kvmi_engine *e = arg;

	while (!atomic_load(&stop_runner)) {
		unsigned n = kvmi_engine_vcpu_run_jobs(e->vcpus[0]) + kvmi_engine_vcpu_run_jobs(e->vcpus[1]);

		if (!n)
			usleep(20);
	}
	return NULL;
}

static struct kvmi_engine *engine(int memfd, uint8_t *ram, bool high)
{
	struct kvmi_engine_config cfg;
	struct kvmi_engine *e = NULL;
	struct kvmi_ram_region low = {
		.gpa = 0, .size = RAM_LOW, .hva = ram, .fd = memfd, .slot_id = 1, .slot_exists = true,
	};
	struct kvmi_ram_region hi = {
		.gpa = 1ull << 32, .size = RAM_HIGH, .hva = ram + RAM_LOW, .fd = memfd, .fd_offset = RAM_LOW,
		.slot_id = 2, .slot_exists = true,
	};

	memset(&host, 0, sizeof(host));
	memset(&cfg, 0, sizeof(cfg));
	cfg.ops = &fake_ops;
	cfg.host = &host;
	cfg.kvm_fd = cfg.vm_fd = -1;
	cfg.max_vcpus = 2;
	kvmi_policy_allow_all(&cfg.policy);
	if (kvmi_engine_create(&cfg, &e))
		abort();
	host.slot[1].used = true;
	host.slot[1].gpa = low.gpa;
	host.slot[1].size = low.size;
	host.slot[2].used = high;
	host.slot[2].gpa = hi.gpa;
	host.slot[2].size = high ? hi.size : 0;
	if (kvmi_engine_region_add(e, &low) || (high && kvmi_engine_region_add(e, &hi)))
		abort();
	for (unsigned i = 0; i < 2; i++)
		if (!kvmi_engine_vcpu_add(e, i, -1, calloc(1, 4096)))
			abort();
	return e;
}

/* Nothing the tool did survives its session. */
static void check_undone(struct kvmi_engine *e, bool high)
{
	if (kvm_slots(&host) != (high ? 2u : 1u) || slot_at(&host, 0) != 1 ||
	    (high && slot_at(&host, 1ull << 32) != 2) || host.allocs != host.frees)
		abort();
	if (host.slot[1].flags || host.slot[1].size != RAM_LOW)
		abort();
	for (unsigned i = 0; i < 2; i++)
		for (unsigned k = 0; k < sizeof(e->vcpus[i]->msr_lo); k++)
			if (e->vcpus[i]->msr_lo[k] || e->vcpus[i]->msr_hi[k])
				abort();
}

static void open_io(struct io *io, bool sock)
{
	io->sock = sock;
	if (sock) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			abort();
		io->in[1] = io->out[0] = sv[0];
		io->in[0] = io->out[1] = sv[1];
	} else if (pipe2(io->in, O_CLOEXEC) || pipe2(io->out, O_CLOEXEC)) {
		abort();
	}
}

static void feed(struct io *io, const uint8_t *p, size_t left)
{
	while (left) {
		ssize_t n = io->sock ? send(io->in[1], p, left, MSG_NOSIGNAL) : write(io->in[1], p, left);

		if (n <= 0)
			break;    /* the server closed the stream */
		p += n;
		left -= (size_t)n;
	}
	if (io->sock)
		shutdown(io->in[1], SHUT_WR);
	else
		close(io->in[1]);
}

static void close_io(struct io *io, pthread_t drainer)
{
	close(io->in[0]);
	if (io->sock) {
		pthread_join(drainer, NULL);
		close(io->in[1]);
	} else {
		close(io->out[1]);
		pthread_join(drainer, NULL);
		close(io->out[0]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static int memfd = -1;
	struct serve_args sa;
	struct kvmi_engine *e;
	pthread_t srv, drn, run;
	struct kvm_run *runs[2];
	struct io io;
	bool high;

	if (!size)
		return 0;
	if (!ram) {
		vmm_log_level = LOG_ERROR;  /* refusals are the point: keep them quiet */
		memfd = memfd_create("fuzz-engine-ram", MFD_CLOEXEC);
		if (memfd < 0 || ftruncate(memfd, RAM_LOW + RAM_HIGH))
			abort();
		ram = mmap(NULL, RAM_LOW + RAM_HIGH, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
		if (ram == MAP_FAILED)
			abort();
	}
	high = data[0] & 2;
	e = engine(memfd, ram, high);
	open_io(&io, data[0] & 1);
	sa = (struct serve_args){ e, &io };
	atomic_store(&stop_runner, false);
	pthread_create(&drn, NULL, drain, &io);
	pthread_create(&run, NULL, runner, e);
	pthread_create(&srv, NULL, serve, &sa);
	feed(&io, data + 1, size - 1);
	pthread_join(srv, NULL);
	atomic_store(&stop_runner, true);
	pthread_join(run, NULL);
	close_io(&io, drn);
	check_undone(e, high);
	for (unsigned i = 0; i < 2; i++) {
		runs[i] = e->vcpus[i]->run;
		kvmi_engine_vcpu_gone(e->vcpus[i]);
	}
	kvmi_engine_destroy(e);
	free(runs[0]);
	free(runs[1]);
	return 0;
}
