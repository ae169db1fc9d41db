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

/* Net memslots added so far, from the VMM's debug log (one line per
 * SET_PAGE_ACCESS: "... N slots removed, M added ..."). */
static long log_slot_delta(const char *log)
{
	char line[512];
	long delta = 0;
	FILE *f = fopen(log, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "SET_PAGE_ACCESS");
		unsigned entries, removed, added;

		if (p && sscanf(p, "SET_PAGE_ACCESS %u entries: %u slots removed, %u added", &entries, &removed,
				&added) == 3)
			delta += (long)added - (long)removed;
	}
	fclose(f);
	return delta;
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
		char id[64];
		int err = 0;
		long slots;

		snprintf(id, sizeof(id), "set_page_access_%u", n);
		memset(acc, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X, n);
		t0 = now_ns();
		for (unsigned i = 0; i < n && !err; i += 511)
			err = kvmi_dom_set_page_access(v.dom, gpa + i, acc + i, n - i < 511 ? n - i : 511, 0);
		t_set = now_ns() - t0;
		sleep_us(100000);       /* the log line follows the reply */
		slots = 1 + log_slot_delta(v.log);   /* 1 GiB of RAM is one slot */
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
	}
	free(gpa);
	free(acc);
	vmm_stop(&v);
}

