/* SPDX-License-Identifier: MIT */
/*
 * The peer: QEMU's gdbstub, as a user who debugs a VM through QEMU would
 * reach guest memory.  QEMU (Debian qemu-system-x86) runs a stopped guest
 * (-S) with the same RAM size as our benchmark VM, on the same /dev/kvm;
 * this program speaks the GDB remote protocol to it (gdb_rsp.c) and times
 * 'm' reads of 8 bytes, 4 KiB (in the largest chunks the stub accepts) and
 * a few MiB in total (64 MiB would take over a minute: the time for 64 MiB
 * is extrapolated from the throughput, and said so), and single steps
 * ('s').  First with acknowledgements (the protocol's default), then again
 * in no-ack mode, the stub's best case.
 *
 * usage: bench-gdbstub QEMU TMPDIR
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "gdb_rsp.h"

#define RAM          "256"             /* MiB, as kvmi-vm's default */
#define BULK_BYTES   (4u << 20)        /* per pass; extrapolated to 64 MiB */

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		die("no free TCP port: %s", strerror(errno));
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static pid_t start_qemu(const char *qemu, int port, const char *log)
{
	char gdb[64];
	pid_t pid;

	snprintf(gdb, sizeof(gdb), "tcp:127.0.0.1:%d", port);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int nul = open("/dev/null", O_RDONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		execlp(qemu, qemu, "-enable-kvm", "-cpu", "EPYC", "-m", RAM, "-S", "-gdb", gdb,
		       "-display", "none", "-nodefaults", "-no-user-config", "-serial", "none",
		       "-monitor", "none", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void check(int ret, const char *what)
{
	if (ret)
		die("gdbstub: %s: %s", what, strerror(-ret));
}

/* The largest 'm' length the stub answers in full. */
static size_t max_read(struct rsp *r)
{
	static uint8_t buf[1 << 16];
	size_t hi = r->packet_size ? r->packet_size / 2 : 4096, lo = 1;

	if (hi > sizeof(buf))
		hi = sizeof(buf);
	if (rsp_read_memory(r, 0x100000, buf, hi) == 0)
		return hi;
	while (lo + 1 < hi) {           /* lo works, hi does not */
		size_t mid = (lo + hi) / 2;

		if (rsp_read_memory(r, 0x100000, buf, mid) == 0)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void read_mem(struct rsp *r, uint64_t addr, uint8_t *buf, size_t len, size_t chunk)
{
	for (size_t off = 0; off < len; off += chunk)
		check(rsp_read_memory(r, addr + off, buf + off, len - off < chunk ? len - off : chunk), "m");
}

static void measure(struct rsp *r, size_t chunk, const char *sfx, const char *mode, unsigned n8, unsigned n4k,
		    unsigned passes, unsigned steps)
{
	static uint8_t buf[BULK_BYTES];
	double *lat = xmalloc_d(n8 > n4k ? n8 : n4k), *mbps = xmalloc_d(passes), *st;
	struct stats s;
	char id[64], id2[80];
	unsigned done = 0;

	for (unsigned i = 0; i < n8; i++) {
		uint64_t t0 = now_ns();

		read_mem(r, 0x4000000 + (uint64_t)(i * 7919u % 16384) * 4096 + (i * 8u) % 4096, buf, 8, chunk);
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	snprintf(id, sizeof(id), "gdb_m_8b%s", sfx);
	result_samples(id, "us", lat, n8, "QEMU gdbstub 'm' of 8 bytes (%s)", mode);

	for (unsigned i = 0; i < n4k; i++) {
		uint64_t t0 = now_ns();

		read_mem(r, 0x4000000 + (uint64_t)(i * 7919u % 16384) * 4096, buf, 4096, chunk);
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	snprintf(id, sizeof(id), "gdb_m_4k%s", sfx);
	result_samples(id, "us", lat, n4k, "QEMU gdbstub: 4 KiB in %zu-byte 'm' packets (%zu per page, %s)",
		       chunk, (4096 + chunk - 1) / chunk, mode);
	stats_of(lat, n4k, &s);
	snprintf(id2, sizeof(id2), "%s_mbps", id);
	result_value(id2, "MB/s", 4096.0 / s.p50, "QEMU gdbstub: 4 KiB / median latency (%s)", mode);

	for (unsigned p = 0; p < passes; p++) {
		uint64_t t0 = now_ns();

		read_mem(r, 0x4000000, buf, BULK_BYTES, chunk);
		mbps[p] = (double)BULK_BYTES / ((double)(now_ns() - t0) / 1e3);
	}
	snprintf(id, sizeof(id), "gdb_m_bulk%s", sfx);
	stats_of(mbps, passes, &s);
	result_samples(id, "MB/s", mbps, passes,
		       "QEMU gdbstub: %u MiB in %zu-byte 'm' packets (%s), %u passes; 64 MiB extrapolated: %.0f s",
		       BULK_BYTES >> 20, chunk, mode, passes, 64.0 * 1048576 / s.p50 / 1e6);

	st = xmalloc_d(steps ? steps : 1);
	for (unsigned i = 0; i < steps; i++) {
		uint64_t t0 = now_ns();
		int ret = rsp_step(r);

		if (ret) {
			note("single step %u failed: %s (stop reply '%s')", i, strerror(-ret), r->pkt ? r->pkt : "");
			break;
		}
		st[done++] = (double)(now_ns() - t0) / 1e3;
	}
	snprintf(id, sizeof(id), "gdb_step%s", sfx);
	if (done)
		result_samples(id, "us", st, done, "QEMU gdbstub 's' round trip (%s), from the reset vector on", mode);
	else if (steps)
		result_na(id, "QEMU gdbstub single step failed");
	free(st);
	free(lat);
	free(mbps);
}

int main(int argc, char **argv)
{
	struct rsp r;
	char log[512], qsupported[256];
	size_t chunk;
	pid_t pid;
	int port, ret, st;

	if (argc != 3) {
		fprintf(stderr, "usage: %s QEMU TMPDIR\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	result_init();
	printf("peer: QEMU gdbstub\n");
	snprintf(log, sizeof(log), "%s/qemu-gdbstub-%d.log", argv[2], (int)getpid());
	port = free_port();
	pid = start_qemu(argv[1], port, log);
	ret = rsp_connect(&r, "127.0.0.1", port, 20000);
	if (ret) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		die("cannot reach QEMU's gdbstub on port %d: %s (log: %s)", port, strerror(-ret), log);
	}
	check(rsp_qsupported(&r), "qSupported");
	snprintf(qsupported, sizeof(qsupported), "%s", r.pkt);
	check(rsp_command(&r, "?"), "?");
	chunk = max_read(&r);
	result_value("gdb_packet_size", "bytes", (double)r.packet_size,
		     "qSupported PacketSize; largest 'm' read the stub answers: %zu bytes", chunk);
	result_value("gdb_max_read", "bytes", (double)chunk, "largest 'm' read QEMU's gdbstub answers");

	measure(&r, chunk, "", "with acks", 2000, 300, 2, 1000);
	/* The stub's best case, where it offers it: no acknowledgements. */
	ret = rsp_start_noack(&r);
	if (ret == 0)
		measure(&r, chunk, "_noack", "no-ack mode", 2000, 300, 2, 1000);
	else
		result_na("gdb_noack", "QEMU's gdbstub %s QStartNoAckMode (qSupported: %s), so every packet "
			  "above was acknowledged", ret == -EOPNOTSUPP ? "does not support" : "failed on",
			  qsupported);
	if (r.resends || r.bad_checksums)
		note("gdbstub: %u resends, %u bad checksums", r.resends, r.bad_checksums);

	rsp_send(&r, "k");
	rsp_close(&r);
	for (int i = 0; i < 50; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		if (i == 10)
			kill(pid, SIGTERM);
		if (i == 49) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		sleep_us(100000);
	}
	unlink(log);
	return 0;
}
