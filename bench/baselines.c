/* SPDX-License-Identifier: MIT */
/*
 * The fixed costs of an event, measured without a VM (bench-kvmi events):
 * an AF_UNIX ping-pong (sleeping and spinning), a condition-variable
 * ping-pong, one KVM_GET_MSRS.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_kvmi.h"

/* Reads exactly len bytes; spin: recv(MSG_DONTWAIT) in a loop instead of
 * sleeping in read(). */
static bool ipc_read(int fd, char *buf, size_t len, bool spin)
{
	size_t got = 0;

	while (got < len) {
		ssize_t k = spin ? recv(fd, buf + got, len - got, MSG_DONTWAIT) :
				   read(fd, buf + got, len - got);

		if (k == 0 || (k < 0 && !(spin && (errno == EAGAIN || errno == EINTR))))
			return false;
		if (k > 0)
			got += (size_t)k;
	}
	return true;
}

/*
 * The floor of any socket-based event path on this host: a 64-byte
 * ping-pong between two processes over an AF_UNIX stream socket, as an
 * event and its reply travel; with sleeping reads (spin false), or with
 * both sides polling the socket without sleeping, as kvmi's waits do for
 * their first KVMI_SPIN_US.
 */
static void ipc_baseline(bool spin)
{
	const unsigned n = 20000;
	double *lat = xmalloc_d(n);
	char msg[64] = { 0 };
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		while (ipc_read(sv[1], msg, sizeof(msg), spin) &&
		       write(sv[1], msg, sizeof(msg)) == sizeof(msg))
			;
		_exit(0);
	}
	close(sv[1]);
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (write(sv[0], msg, sizeof(msg)) != sizeof(msg))
			die("ipc write: %s", strerror(errno));
		if (!ipc_read(sv[0], msg, sizeof(msg), spin))
			die("ipc read: %s", strerror(errno));
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	if (spin)
		result_samples("ipc_unix_rtt_spin", "us", lat, n,
			       "AF_UNIX 64-byte ping-pong between two processes, both polling without sleeping (no VM)");
	else
		result_samples("ipc_unix_rtt", "us", lat, n,
			       "AF_UNIX 64-byte ping-pong between two processes, blocking reads (no VM)");
	free(lat);
}

/* The other hand-off of the event path: two threads of one process passing
 * a turn through a mutex and condition variable (sleeping waits). */
struct pingpong {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned turn;          /* odd: the echo thread's turn */
	unsigned rounds;
};

static void *pingpong_echo(void *arg)
{
	struct pingpong *p = arg;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->rounds; i++) {
		while (p->turn % 2 == 0)
			pthread_cond_wait(&p->cond, &p->lock);
		p->turn++;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void condvar_baseline(void)
{
	struct pingpong p = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .rounds = 20000 };
	double *lat = xmalloc_d(p.rounds);
	pthread_t t;

	if (pthread_create(&t, NULL, pingpong_echo, &p))
		die("pthread_create failed");
	for (unsigned i = 0; i < p.rounds; i++) {
		uint64_t t0 = now_ns();

		pthread_mutex_lock(&p.lock);
		p.turn++;
		pthread_cond_broadcast(&p.cond);
		while (p.turn % 2 == 1)
			pthread_cond_wait(&p.cond, &p.lock);
		pthread_mutex_unlock(&p.lock);
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	pthread_join(t, NULL);
	result_samples("ipc_condvar_rtt", "us", lat, p.rounds,
		       "two threads passing a turn back and forth with a condition variable (no VM)");
	free(lat);
}

/*
 * What one vCPU ioctl costs on this host: KVM_GET_MSRS of the nine MSRs an
 * event header carries, on a vCPU that never ran (every event pays one).
 */
static void vcpu_ioctl_baseline(void)
{
	static const uint32_t idx[9] = {
		0x174, 0x175, 0x176, 0xc0000080, 0xc0000081, 0xc0000082, 0xc0000083, 0x277, 0xc0000102,
	};
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[9];
	} m;
	const unsigned n = 20000;
	double *lat = xmalloc_d(n);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm = -1, vcpu = -1;

	if (kvm >= 0)
		vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm >= 0)
		vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		result_na("ioctl_get_msrs", "cannot create a vCPU: %s", strerror(errno));
		goto out;
	}
	memset(&m, 0, sizeof(m));
	m.h.nmsrs = 9;
	for (unsigned i = 0; i < 9; i++)
		m.e[i].index = idx[i];
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (ioctl(vcpu, KVM_GET_MSRS, &m) < 0)
			die("KVM_GET_MSRS: %s", strerror(errno));
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	result_samples("ioctl_get_msrs", "us", lat, n,
		       "one KVM_GET_MSRS of the 9 MSRs of an event header, on a vCPU that never ran (no VM running)");
out:
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	if (kvm >= 0)
		close(kvm);
	free(lat);
}


void bench_baselines(void)
{
	printf("host IPC baseline\n");
	ipc_baseline(false);
	/* With one CPU two spinners only take turns at the scheduler's tick
	 * (8 ms a round trip in the real-KVM box), and kvmi's waits never spin
	 * there (src/common/spin_wait.h). */
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
		ipc_baseline(true);
	else
		result_na("ipc_unix_rtt_spin", "one CPU online: no wait spins here, and two spinning processes only take turns at the scheduler's tick");
	condvar_baseline();
	vcpu_ioctl_baseline();
}
