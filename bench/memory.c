/* SPDX-License-Identifier: MIT */
/*
 * bench-kvmi memory: reading guest RAM with the vCPU paused, under kvmi-vm
 * or QEMU through kvmi-qemu: READ_PHYSICAL one at a time and pipelined,
 * mapped reads (KVMI_X_MAP_MEMORY), and the floors of the same run:
 * process_vm_readv of the VMM and memcpy between host buffers; the other
 * commands' round trips (commands.c) while the vCPU is paused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <kvmi/kvmi.h>

#include "bench_kvmi.h"

static void check_pattern(const void *buf, uint64_t gpa, size_t len, const char *what)
{
	const uint64_t *w = buf;

	for (size_t k = 0; k < len / 8; k++)
		if (w[k] != bench_pattern(gpa + 8 * k))
			die("%s: wrong data at GPA %#llx", what, (unsigned long long)(gpa + 8 * k));
}

/* A page of the data region, spread over all of it. */
static uint64_t data_page(unsigned i)
{
	return BENCH_DATA_GPA + ((uint64_t)i * 7919 % (BENCH_DATA_SIZE / 4096)) * 4096;
}

static void rp(struct vmm *v, uint64_t gpa, void *buf, size_t len)
{
	int ret = kvmi_dom_read_physical(v->dom, gpa, buf, len);

	if (ret)
		die("READ_PHYSICAL %#llx+%zu: %s", (unsigned long long)gpa, len, kvmi_strerror(ret));
}

static void pvr(struct vmm *v, uint64_t gpa, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)(v->ram_hva + gpa), len };

	if (process_vm_readv(v->pid, &l, 1, &r, 1, 0) != (ssize_t)len)
		die("process_vm_readv: %s", strerror(errno));
}

enum reader { BY_KVMI, BY_PVR };

static void read_any(enum reader how, struct vmm *v, uint64_t gpa, void *buf, size_t len)
{
	if (how == BY_KVMI)
		rp(v, gpa, buf, len);
	else
		pvr(v, gpa, buf, len);
}

/* Latency of @n reads of @len bytes at scattered addresses. */
static void read_latency(struct vmm *v, enum reader how, size_t len, unsigned n, const char *id,
			 const char *what)
{
	static uint8_t buf[4096] __attribute__((aligned(64)));
	double *lat = xmalloc_d(n);
	struct stats s;

	for (unsigned i = 0; i < n; i++) {
		uint64_t gpa = data_page(i) + (len < 4096 ? (i * 8u) % 4096 : 0);
		uint64_t t0 = now_ns();

		read_any(how, v, gpa, buf, len);
		lat[i] = (double)(now_ns() - t0) / 1e3;
		if (i % 64 == 0)
			check_pattern(buf, gpa, len, what);
	}
	result_samples(id, "us", lat, n, "%s: %zu bytes per read, one read per call", what, len);
	/* The same figure as throughput, from the median. */
	stats_of(lat, n, &s);
	{
		char tid[80];

		snprintf(tid, sizeof(tid), "%s_mbps", id);
		result_value(tid, "MB/s", (double)len / s.p50, "%s: %zu bytes / median latency", what, len);
	}
	free(lat);
}

/* 64 MiB in @chunk-sized reads, @passes times; throughput per pass. */
static void read_bulk(struct vmm *v, enum reader how, size_t chunk, unsigned passes, uint8_t *dst,
		      const char *id, const char *what)
{
	double *mbps = xmalloc_d(passes);

	for (unsigned p = 0; p < passes; p++) {
		uint64_t t0 = now_ns(), t;

		for (uint64_t off = 0; off < BENCH_DATA_SIZE; off += chunk)
			read_any(how, v, BENCH_DATA_GPA + off, dst + off, chunk);
		t = now_ns() - t0;
		mbps[p] = (double)BENCH_DATA_SIZE / ((double)t / 1e3);
		if (p == 0)
			check_pattern(dst, BENCH_DATA_GPA, BENCH_DATA_SIZE, what);
		memset(dst, 0, 4096);
	}
	result_samples(id, "MB/s", mbps, passes, "%s: 64 MiB in %zu-byte reads (%llu calls per pass), %u passes",
		       what, chunk, (unsigned long long)(BENCH_DATA_SIZE / chunk), passes);
	free(mbps);
}

/* 16,384 scattered 4 KiB copies out of a 64 MiB region based at @base
 * (data_page order), @passes times; MB/s per pass. */
static void copy_4k_passes(const uint8_t *base, unsigned passes, const char *id, const char *what)
{
	static uint8_t buf[4096] __attribute__((aligned(64)));
	const unsigned pages = BENCH_DATA_SIZE / 4096;
	double *mbps = xmalloc_d(passes);

	for (unsigned p = 0; p < passes; p++) {
		uint64_t t0 = now_ns();

		for (unsigned i = 0; i < pages; i++) {
			memcpy(buf, base + (data_page(i) - BENCH_DATA_GPA), 4096);
			__asm__ volatile("" : : "r"(buf) : "memory");
		}
		mbps[p] = (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3);
	}
	result_samples(id, "MB/s", mbps, passes, "%s: 16,384 scattered 4 KiB memcpy calls per pass, %u passes",
		       what, passes);
	free(mbps);
}

/*
 * Zero-copy reads: the 64 MiB data region mapped through GET_MAP_TOKEN +
 * KVMI_X_MAP_MEMORY and read with memcpy, next to the same copies between
 * two host buffers.  The first pass over a fresh mapping also pays the
 * page faults that populate the tool's page tables; it is reported apart.
 */
static void bench_mapped(struct vmm *v, uint8_t *dst, const uint8_t *src)
{
	const unsigned setups = 200;
	double *lat, *mbps;
	uint8_t *map = NULL;
	uint64_t t0;
	int ret;

	ret = kvmi_dom_check_command(v->dom, KVMI_X_MAP_MEMORY);
	if (ret) {
		result_na("mapped_64m", "mapped reads (KVMI_X_MAP_MEMORY): CHECK_COMMAND answers %s",
			  kvmi_strerror(ret));
		return;
	}
	lat = xmalloc_d(setups);
	for (unsigned i = 0; i < setups; i++) {
		void *p;

		t0 = now_ns();
		ret = kvmi_dom_map_physical(v->dom, data_page(i), 4096, PROT_READ, &p);
		if (ret)
			die("map 4 KiB: %s", kvmi_strerror(ret));
		kvmi_dom_unmap_physical(p, 4096);
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	result_samples("mapped_setup", "us", lat, setups,
		       "GET_MAP_TOKEN + KVMI_X_MAP_MEMORY + mmap + munmap of one page");
	free(lat);

	ret = kvmi_dom_map_physical(v->dom, BENCH_DATA_GPA, BENCH_DATA_SIZE, PROT_READ, (void **)&map);
	if (ret)
		die("map 64 MiB: %s", kvmi_strerror(ret));
	t0 = now_ns();
	memcpy(dst, map, BENCH_DATA_SIZE);
	__asm__ volatile("" : : "r"(dst) : "memory");
	result_value("mapped_64m_cold", "MB/s", (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3),
		     "first memcpy of 64 MiB out of a fresh mapping (includes its page faults)");
	check_pattern(dst, BENCH_DATA_GPA, BENCH_DATA_SIZE, "mapped read");
	mbps = xmalloc_d(10);
	for (unsigned p = 0; p < 10; p++) {
		t0 = now_ns();
		memcpy(dst, map, BENCH_DATA_SIZE);
		__asm__ volatile("" : : "r"(dst) : "memory");
		mbps[p] = (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3);
	}
	result_samples("mapped_64m", "MB/s", mbps, 10,
		       "memcpy of 64 MiB out of the token mapping of guest RAM, 10 passes");
	free(mbps);
	copy_4k_passes(map, 10, "mapped_4k", "mapped guest RAM");
	copy_4k_passes(src, 10, "memcpy_4k", "host buffer");
	kvmi_dom_unmap_physical(map, BENCH_DATA_SIZE);
}

void bench_memory(void)
{
	struct vmm v;
	struct vmm_opts o = opts;
	struct kvmi_event_msg *ev;
	uint8_t *dst, *src;
	double *mbps;
	int ret;

	o.nr_vcpus = 1;
	o.introspect = true;
	printf("memory, %s\n", vmm_kind_name(o.kind));
	vmm_start(&v, &o);
	mbox_run(&v, BENCH_CMD_FILL, NULL, 120000);
	/* Reads happen with the vCPU paused, as a tool usually reads. */
	ret = kvmi_dom_pause_vcpu(v.dom, 0, true);
	if (ret)
		die("PAUSE_VCPU: %s", kvmi_strerror(ret));
	ev = next_event(&v, 5000);
	if (!ev)
		die("no PAUSE_VCPU event");

	dst = mmap(NULL, BENCH_DATA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	src = mmap(NULL, BENCH_DATA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (dst == MAP_FAILED || src == MAP_FAILED)
		die("mmap: %s", strerror(errno));

	read_latency(&v, BY_KVMI, 8, 20000, "read_phys_8b", "READ_PHYSICAL");
	read_latency(&v, BY_KVMI, 4096, 5000, "read_phys_4k", "READ_PHYSICAL");
	bench_commands(&v);
	read_bulk(&v, BY_KVMI, 4096, 3, dst, "read_phys_64m", "READ_PHYSICAL");
	{
		/* Pipelined: kvmi_dom_read_physical_bulk() keeps up to 64 page
		 * reads on the wire. */
		double *bm = xmalloc_d(5);

		for (unsigned p = 0; p < 5; p++) {
			uint64_t t0 = now_ns();

			ret = kvmi_dom_read_physical_bulk(v.dom, BENCH_DATA_GPA, dst, BENCH_DATA_SIZE);
			if (ret)
				die("READ_PHYSICAL (pipelined): %s", kvmi_strerror(ret));
			bm[p] = (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3);
			if (p == 0)
				check_pattern(dst, BENCH_DATA_GPA, BENCH_DATA_SIZE, "READ_PHYSICAL (pipelined)");
			memset(dst, 0, 4096);
		}
		result_samples("read_phys_64m_batched", "MB/s", bm, 5,
			       "READ_PHYSICAL, pipelined: 64 MiB as 16,384 page reads with up to 64 on the wire "
			       "(kvmi_dom_read_physical_bulk), 5 passes");
		free(bm);
	}

	read_latency(&v, BY_PVR, 8, 20000, "pvr_8b", "process_vm_readv");
	read_latency(&v, BY_PVR, 4096, 20000, "pvr_4k", "process_vm_readv");
	read_bulk(&v, BY_PVR, 4096, 5, dst, "pvr_64m_4k", "process_vm_readv");
	read_bulk(&v, BY_PVR, 2u << 20, 10, dst, "pvr_64m_2m", "process_vm_readv");

	/* The limit: streaming memcpy of 64 MiB between two host buffers. */
	memcpy(src, dst, BENCH_DATA_SIZE);
	mbps = xmalloc_d(10);
	for (unsigned p = 0; p < 10; p++) {
		uint64_t t0 = now_ns();

		memcpy(dst, src, BENCH_DATA_SIZE);
		__asm__ volatile("" : : "r"(dst) : "memory");
		mbps[p] = (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3);
	}
	result_samples("memcpy_64m", "MB/s", mbps, 10, "memcpy of 64 MiB between two host buffers, 10 passes");
	free(mbps);
	bench_mapped(&v, dst, src);
	munmap(dst, BENCH_DATA_SIZE);
	munmap(src, BENCH_DATA_SIZE);

	reply_continue(&v, ev);
	vmm_stop(&v);
}

