/* SPDX-License-Identifier: MIT */
/* bench-kvmi pagetrack: the cost of SET_PAGE_ACCESS per page and the
 * memslots it leaves, under kvmi-vm. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

#include "bench_kvmi.h"


/*
 * SET_PAGE_ACCESS (write-protect) on N scattered pages (every other page,
 * so each page is its own range), in commands of at most 511 entries sent
 * back to back, then the same pages made rwx again.  Time per page and, from
 * the VMM's own count, the memslots that resulted.
 */
static int kvm_max_memslots(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), n = -1;

	if (fd >= 0) {
		n = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
		close(fd);
	}
	return n;
}

/* What the VMM's debug log says of the SET_PAGE_ACCESS commands so far
 * (one line each: "... N slots removed, M added, ...; K memslot ioctls in
 * T us"): the net slots added, the KVM_SET_USER_MEMORY_REGION calls the
 * engine made and the time they took. */
struct slot_log {
	long delta;
	unsigned long ioctls;
	double ioctl_us;
};

static struct slot_log log_slots(const char *log)
{
	char line[512];
	struct slot_log s = { 0, 0, 0 };
	FILE *f = fopen(log, "r");

	if (!f)
		return s;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "SET_PAGE_ACCESS"), *q = strstr(line, "; ");
		unsigned entries, removed, added;
		unsigned long ioctls;
		double us;

		if (!p || sscanf(p, "SET_PAGE_ACCESS %u entries: %u slots removed, %u added", &entries, &removed,
				 &added) != 3)
			continue;
		s.delta += (long)added - (long)removed;
		if (q && sscanf(q, "; %lu memslot ioctls in %lf us", &ioctls, &us) == 2) {
			s.ioctls += ioctls;
			s.ioctl_us += us;
		}
	}
	fclose(f);
	return s;
}

/* The memslot operations of write-protecting n pages (the engine's own
 * count of KVM_SET_USER_MEMORY_REGION calls) and the cost of one, timed by
 * the engine around each call in the same commands. */
static void memslot_ops(unsigned n, unsigned long ioctls, double us)
{
	char id[64];

	snprintf(id, sizeof(id), "set_page_access_%u_ioctls", n);
	if (!ioctls) {
		result_na(id, "the VMM's log has no memslot ioctl count for %u pages (engine without the counter?)", n);
		return;
	}
	result_value(id, "ioctls", (double)ioctls,
		     "KVM_SET_USER_MEMORY_REGION calls the engine made for SET_PAGE_ACCESS on %u scattered pages", n);
	snprintf(id, sizeof(id), "set_page_access_%u_ioctl_us", n);
	result_value(id, "us", us / (double)ioctls,
		     "one KVM_SET_USER_MEMORY_REGION, mean of the %lu the engine timed for %u scattered pages "
		     "(%.1f ms in all)", ioctls, n, us / 1e3);
}

void bench_pagetrack(void)
{
	static const unsigned sizes[] = { 1, 511, 10000, 100000 };
	struct vmm v;
	struct vmm_opts o = opts;
	uint64_t *gpa;
	uint8_t *acc;
	int ret;

	o.nr_vcpus = 1;
	o.introspect = true;
	o.memory = "1G";
	o.verbose = true;       /* the VMM logs its memslot changes */
	printf("page tracking\n");
	vmm_start(&v, &o);
	ret = kvmi_dom_check_command(v.dom, KVMI_SET_PAGE_ACCESS);
	if (ret) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			char id[64];

			snprintf(id, sizeof(id), "set_page_access_%u", sizes[k]);
			result_na(id, "SET_PAGE_ACCESS: CHECK_COMMAND answers %s", kvmi_strerror(ret));
		}
		vmm_stop(&v);
		return;
	}
	gpa = malloc(100000 * sizeof(*gpa));
	acc = malloc(100000);
	if (!gpa || !acc)
		die("out of memory");
	for (unsigned i = 0; i < 100000; i++)
		gpa[i] = 0x1000000ull + 2ull * 4096 * i;   /* 16 MiB .. ~797 MiB, every other page */
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned n = sizes[k];
		uint64_t t0, t_set, t_clear;
		struct slot_log before, after;
		char id[64];
		int err = 0;
		long slots;

		sleep_us(100000);       /* the log lines of the last undo are out */
		before = log_slots(v.log);

		snprintf(id, sizeof(id), "set_page_access_%u", n);
		memset(acc, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X, n);
		t0 = now_ns();
		for (unsigned i = 0; i < n && !err; i += 511)
			err = kvmi_dom_set_page_access(v.dom, gpa + i, acc + i, n - i < 511 ? n - i : 511, 0);
		t_set = now_ns() - t0;
		sleep_us(100000);       /* the log line follows the reply */
		after = log_slots(v.log);
		slots = 1 + after.delta;        /* 1 GiB of RAM is one slot */
		memset(acc, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X, n);
		t0 = now_ns();
		for (unsigned i = 0; i < n; i += 511)
			ret = kvmi_dom_set_page_access(v.dom, gpa + i, acc + i, n - i < 511 ? n - i : 511, 0);
		t_clear = now_ns() - t0;
		if (err) {
			result_na(id, "SET_PAGE_ACCESS on %u scattered pages failed: %s after %.1f ms, with %ld "
				  "memslots then (KVM_CAP_NR_MEMSLOTS: %d)", n, kvmi_strerror(err), (double)t_set / 1e6,
				  slots, kvm_max_memslots());
			continue;
		}
		result_value(id, "ms", (double)t_set / 1e6,
			     "SET_PAGE_ACCESS (write-protect) on %u scattered pages, %u command(s): %.2f us per page, "
			     "%ld memslots then; undoing it took %.1f ms%s", n, (n + 510) / 511,
			     (double)t_set / 1e3 / n, slots, (double)t_clear / 1e6, ret ? " (and failed)" : "");
		snprintf(id, sizeof(id), "set_page_access_%u_slots", n);
		result_value(id, "slots", (double)slots, "KVM memslots with %u scattered write-protected pages", n);
		memslot_ops(n, after.ioctls - before.ioctls, after.ioctl_us - before.ioctl_us);
	}
	free(gpa);
	free(acc);
	vmm_stop(&v);
}

