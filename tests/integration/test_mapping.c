/* SPDX-License-Identifier: MIT */
/*
 * End to end: zero-copy guest memory through GET_MAP_TOKEN and the kvmi
 * extension KVMI_X_MAP_MEMORY.  kvmi-vm runs the "introspect" payload on
 * 2 vCPUs (see tests/guest/tests/introspect.c: mailbox at GPA 0x300000,
 * per-vCPU counters, go word at +8) and connects to this test, which maps
 * guest RAM with our client library and checks:
 *   - the mailbox seen through the mapping is the guest's (magic), its
 *     counters advance live, and stores go both ways (mapping <-> READ/
 *     WRITE_PHYSICAL);
 *   - a 513-page read-only mapping equals READ_PHYSICAL byte for byte
 *     (vCPUs paused), and cannot be made writable;
 *   - a reused, a forged and a previous session's token are refused
 *     (-EPERM), a forged one does not consume the real one; ranges outside
 *     RAM (-ENOENT) and misaligned ranges (-EINVAL) are refused;
 *   - no descriptor leaks into the tool (raw commands included);
 *   - the go word (and the #UD count the guest asserts on) written through
 *     the mapping lets the guest finish: kvmi-vm exits with status 0;
 *   - over AF_VSOCK (loopback CID 1) a token cannot be redeemed
 *     (-EOPNOTSUPP; skipped when the host has no vsock loopback).
 *
 * usage: test_mapping KVMI_VM GUEST_DIR
 * TAP output; "1..0 # SKIP" without /dev/kvm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include <kvmi/kvmi.h>

#include "itest.h"

#define MBOX_GPA   0x300000ull
#define MBOX_MAGIC 0x4b564d494d424f58ull
#define MBOX_GO    0x600dull
#define PAGE       4096u
#define RAM_END    (256ull << 20)       /* kvmi-vm's default --memory */

#define NR_VCPUS   2

struct mbox {
	uint64_t magic, go, injected_ud, last_ud_rip;
	uint64_t counter[4], rbx_seen[4];
};

static const char *vmm, *guest_dir;
static char sock_path[128];

/* Starts kvmi-vm on the introspect payload, connecting to vmm_addr. */
static pid_t start_vmm(const char *log, const char *vmm_addr)
{
	char guest[512];

	snprintf(guest, sizeof(guest), "%s/introspect.elf", guest_dir);
	return itest_start_guest(log, vmm, guest, vmm_addr, "60", "2", NULL);
}

static int wait_mbox(struct kvmi_dom *dom)
{
	struct mbox m;

	for (int i = 0; i < 300; i++) {
		if (kvmi_dom_read_physical(dom, MBOX_GPA, &m, sizeof(m)) == 0 && m.magic == MBOX_MAGIC)
			return 0;
		usleep(20000);
	}
	return -ETIMEDOUT;
}

static unsigned open_fds_of(pid_t pid)
{
	char path[64];
	DIR *d;
	unsigned n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* What @pid has open, as diagnostics. */
static void show_fds_of(pid_t pid)
{
	char path[64], link[600], target[256];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		diag("  fd %s -> %s", e->d_name, target);
	}
	closedir(d);
}

static unsigned open_fds(void)
{
	return open_fds_of(getpid());
}

/* Volatile reads: the guest changes these behind the compiler's back. */
static uint64_t peek(const volatile struct mbox *m, unsigned vcpu)
{
	return m->counter[vcpu];
}

/* Pause every vCPU; their PAUSE_VCPU events go to ev[] for resume(). */
static int pause_all(struct kvmi_dom *dom, struct kvmi_event_msg *ev[NR_VCPUS])
{
	int ret = kvmi_dom_pause_vcpus(dom, NR_VCPUS);

	for (unsigned i = 0; i < NR_VCPUS; i++)
		ev[i] = NULL;
	for (unsigned i = 0; !ret && i < NR_VCPUS; i++)
		ret = kvmi_dom_next_event(dom, 10000, &ev[i]);
	return ret;
}

static void resume_all(struct kvmi_dom *dom, struct kvmi_event_msg *ev[NR_VCPUS])
{
	for (unsigned i = 0; i < NR_VCPUS; i++) {
		if (!ev[i])
			continue;
		kvmi_dom_reply_event(dom, ev[i], KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
		kvmi_event_free(ev[i]);
		ev[i] = NULL;
	}
}

/* A raw KVMI_X_MAP_MEMORY, as a tool without our helper would send it. */
static int raw_map(struct kvmi_dom *dom, const struct kvmi_map_mem_token *t, uint64_t gpa,
		   uint64_t len, uint32_t flags, uint32_t padding)
{
	struct kvmi_x_map_memory req = { .token = *t, .gpa = gpa, .length = len,
					 .flags = flags, .padding = padding };
	struct kvmi_x_map_memory_reply rpl;

	return kvmi_dom_command(dom, KVMI_X_MAP_MEMORY, &req, sizeof(req), &rpl, sizeof(rpl), NULL);
}

static void test_tokens(struct kvmi_dom *dom)
{
	struct kvmi_map_mem_token t, forged;
	void *p = NULL;
	int ret;

	ok(kvmi_dom_get_map_token(dom, &t) == 0, "GET_MAP_TOKEN");
	forged = t;
	forged.token[2] ^= 1ull << 17;
	ok(kvmi_dom_map_physical_token(dom, &forged, MBOX_GPA, PAGE, PROT_READ, &p) == -EPERM && !p,
	   "a token one bit off the real one is refused: EPERM");
	ret = kvmi_dom_map_physical_token(dom, &t, MBOX_GPA, PAGE, PROT_READ, &p);
	ok(ret == 0 && p && ((const struct mbox *)p)->magic == MBOX_MAGIC,
	   "the real token still maps the mailbox (a failed guess does not consume it) (%d)", ret);
	if (p)
		kvmi_dom_unmap_physical(p, PAGE);
	p = NULL;
	ok(kvmi_dom_map_physical_token(dom, &t, MBOX_GPA, PAGE, PROT_READ, &p) == -EPERM && !p,
	   "the same token again: EPERM (single use)");
	if (getrandom(&forged, sizeof(forged), 0) != sizeof(forged))
		memset(&forged, 0x5a, sizeof(forged));
	ok(kvmi_dom_map_physical_token(dom, &forged, MBOX_GPA, PAGE, PROT_READ, &p) == -EPERM,
	   "a random token: EPERM");
	memset(&forged, 0, sizeof(forged));
	ok(kvmi_dom_map_physical_token(dom, &forged, MBOX_GPA, PAGE, PROT_READ, &p) == -EPERM,
	   "an all-zero token (what an empty slot holds): EPERM");

	/* Ranges: the token is spent whatever the range says. */
	kvmi_dom_get_map_token(dom, &t);
	ok(kvmi_dom_map_physical_token(dom, &t, 0x7ff00000ull, PAGE, PROT_READ, &p) == -ENOENT,
	   "a range beyond RAM: ENOENT");
	ok(kvmi_dom_map_physical_token(dom, &t, MBOX_GPA, PAGE, PROT_READ, &p) == -EPERM,
	   "...and its token is spent");
	ok(kvmi_dom_map_physical(dom, RAM_END - PAGE, 2 * PAGE, PROT_READ, &p) == -ENOENT,
	   "a range running past the end of RAM: ENOENT");
	ok(kvmi_dom_map_physical(dom, 0xfee00000ull, PAGE, PROT_READ, &p) == -ENOENT,
	   "device space (the local APIC page): ENOENT");
	ok(kvmi_dom_map_physical(dom, MBOX_GPA + 8, PAGE, PROT_READ, &p) == -EINVAL,
	   "misaligned gpa: EINVAL (client side)");
	kvmi_dom_get_map_token(dom, &t);
	ok(raw_map(dom, &t, MBOX_GPA + 8, PAGE, 0, 0) == -EINVAL, "misaligned gpa, raw: EINVAL from the VMM");
	ok(raw_map(dom, &t, MBOX_GPA, 100, 0, 0) == -EINVAL, "misaligned length, raw: EINVAL");
	ok(raw_map(dom, &t, MBOX_GPA, 0, 0, 0) == -EINVAL, "zero length, raw: EINVAL");
	ok(raw_map(dom, &t, ~0ull & ~0xfffull, 2 * PAGE, 0, 0) == -EINVAL, "wrapping range, raw: EINVAL");
	ok(raw_map(dom, &t, MBOX_GPA, PAGE, 0x80, 0) == -EINVAL, "unknown flag, raw: EINVAL");
	ok(raw_map(dom, &t, MBOX_GPA, PAGE, 0, 1) == -EINVAL, "non-zero padding, raw: EINVAL");
	ok(raw_map(dom, &t, MBOX_GPA, PAGE, 0, 0) == 0,
	   "validation failures did not spend the token; a raw redeem succeeds");
}

static void test_session(void)
{
	char logbuf[300];
	const char *log = itest_file(logbuf, sizeof(logbuf), "session.log");
	char addr[160];
	struct kvmi_listener *l = NULL;
	struct kvmi_dom *dom = NULL;
	struct kvmi_event_msg *ev[NR_VCPUS] = { 0 };
	struct kvmi_map_mem_token stale;
	volatile struct mbox *mb = NULL;
	uint8_t *big = NULL, page[PAGE];
	const size_t big_len = MBOX_GPA + PAGE - 0x100000;
	unsigned fds_before, vmm_fds_before, bad_pages = 0, nonzero = 0;
	uint64_t c0, c1, v;
	pid_t pid;
	int ret, status = -1;

	snprintf(addr, sizeof(addr), "unix:%s", sock_path);
	ret = kvmi_listener_open(addr, NULL, &l);
	ok(ret == 0, "listen on %s", addr);
	if (ret)
		return;
	pid = start_vmm(log, addr);
	ret = kvmi_listener_accept(l, 20000, &dom);
	ok(ret == 0 && dom, "kvmi-vm connects (%d)", ret);
	if (ret)
		goto out;
	ok(wait_mbox(dom) == 0, "the guest published its mailbox");
	fds_before = open_fds();
	vmm_fds_before = open_fds_of(pid);

	ok(kvmi_dom_check_command(dom, KVMI_GET_MAP_TOKEN) == 0, "CHECK_COMMAND GET_MAP_TOKEN: available");
	ok(kvmi_dom_check_command(dom, KVMI_X_MAP_MEMORY) == 0,
	   "CHECK_COMMAND KVMI_X_MAP_MEMORY: available on a unix socket");

	/* The mailbox, read-write. */
	ret = kvmi_dom_map_physical(dom, MBOX_GPA, PAGE, PROT_READ | PROT_WRITE, (void **)&mb);
	ok(ret == 0 && mb, "map the mailbox page read-write (%d)", ret);
	if (ret)
		goto out;
	ok(mb->magic == MBOX_MAGIC, "the mapping shows the guest's mailbox magic");
	c0 = peek(mb, 0);
	c1 = peek(mb, 1);
	for (int i = 0; i < 200 && (peek(mb, 0) == c0 || peek(mb, 1) == c1); i++)
		usleep(5000);
	ok(peek(mb, 0) != c0 && peek(mb, 1) != c1,
	   "both vCPUs' counters advance live in the mapping (%llu -> %llu, %llu -> %llu)",
	   (unsigned long long)c0, (unsigned long long)peek(mb, 0), (unsigned long long)c1,
	   (unsigned long long)peek(mb, 1));
	/* Stores both ways, in the unused part of the mailbox page. */
	*(volatile uint64_t *)((volatile uint8_t *)mb + 0x800) = 0x1122334455667788ull;
	ok(kvmi_dom_read_physical(dom, MBOX_GPA + 0x800, &v, 8) == 0 && v == 0x1122334455667788ull,
	   "a store through the mapping is what READ_PHYSICAL reads");
	v = 0xa5a5a5a5deadbeefull;
	kvmi_dom_write_physical(dom, MBOX_GPA + 0x808, &v, 8);
	ok(*(volatile uint64_t *)((volatile uint8_t *)mb + 0x808) == v,
	   "WRITE_PHYSICAL shows up in the mapping");

	/* A large read-only mapping: code, data and the mailbox, compared with
	 * READ_PHYSICAL while the guest stands still. */
	ret = kvmi_dom_map_physical(dom, 0x100000, big_len, PROT_READ, (void **)&big);
	ok(ret == 0 && big, "map %zu pages read-only (%d)", big_len / PAGE, ret);
	if (big) {
		ret = pause_all(dom, ev);
		ok(ret == 0, "pause both vCPUs for the comparison");
		for (size_t off = 0; off < big_len; off += PAGE) {
			bool zero = true;

			if (kvmi_dom_read_physical(dom, 0x100000 + off, page, PAGE) || memcmp(page, big + off, PAGE))
				bad_pages++;
			for (unsigned i = 0; i < PAGE && zero; i++)
				zero = !page[i];
			nonzero += !zero;
		}
		resume_all(dom, ev);
		ok(bad_pages == 0 && nonzero > 0,
		   "the mapping equals READ_PHYSICAL byte for byte (%u pages differ, %u not all zero)",
		   bad_pages, nonzero);
		ok(((const struct mbox *)(big + (MBOX_GPA - 0x100000)))->magic == MBOX_MAGIC,
		   "the mailbox sits at the right offset of the large mapping");
		errno = 0;
		ok(mprotect(big, PAGE, PROT_READ | PROT_WRITE) == -1 && errno == EACCES,
		   "a read-only mapping cannot be made writable (the VMM sent a read-only descriptor)");
		kvmi_dom_unmap_physical(big, big_len);
	}

	test_tokens(dom);
	ok(open_fds() == fds_before, "no descriptor leaked into the tool (%u open, %u before)", open_fds(),
	   fds_before);
	/* kvmi-vm closes its copy of the descriptor after sending it, which
	 * may be a moment after the reply reached us. */
	for (int i = 0; i < 200 && open_fds_of(pid) != vmm_fds_before; i++)
		usleep(10000);
	ok(open_fds_of(pid) == vmm_fds_before && vmm_fds_before > 0,
	   "no descriptor leaked in kvmi-vm either (%u open, %u before)", open_fds_of(pid), vmm_fds_before);
	if (open_fds_of(pid) != vmm_fds_before)
		show_fds_of(pid);

	/* Tokens die with the session; mappings do not. */
	ok(kvmi_dom_get_map_token(dom, &stale) == 0, "a token taken just before disconnecting");
	kvmi_dom_close(dom);
	dom = NULL;
	c0 = peek(mb, 0);
	for (int i = 0; i < 200 && peek(mb, 0) == c0; i++)
		usleep(5000);
	ok(peek(mb, 0) != c0, "the mapping outlives the connection (counter still moving)");
	ret = kvmi_listener_accept(l, 20000, &dom);
	ok(ret == 0, "kvmi-vm reconnects (%d)", ret);
	if (ret)
		goto out;
	ok(kvmi_dom_map_physical_token(dom, &stale, MBOX_GPA, PAGE, PROT_READ, (void **)&big) == -EPERM,
	   "the previous session's token: EPERM");

	/* Finish the guest through the mapping alone: it asserts that a #UD
	 * was counted, then leaves its loop on the go word. */
	mb->injected_ud = 1;
	__atomic_store_n(&mb->go, MBOX_GO, __ATOMIC_RELEASE); /* after injected_ud */
	status = itest_wait(pid, 30);
	ok(status == 0, "the go word written through the mapping lets the guest finish: exit status %d", status);
	pid = 0;
out:
	if (mb)
		kvmi_dom_unmap_physical((void *)mb, PAGE);
	if (dom)
		kvmi_dom_close(dom);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (status != 0)
		itest_show_log(log, NULL, 0);
	kvmi_listener_close(l);
}

/* Is AF_VSOCK loopback (CID 1) usable here?  A listener and a
 * non-blocking connect to it, 2 s at most. */
static bool vsock_loopback(unsigned port)
{
	struct sockaddr_vm any = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
	struct sockaddr_vm lo = { .svm_family = AF_VSOCK, .svm_cid = 1, .svm_port = port };
	struct pollfd p;
	int l, c, err = -1;
	socklen_t len = sizeof(err);
	bool good = false;

	l = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&any, sizeof(any)) || listen(l, 1))
		goto out;
	if (connect(c, (struct sockaddr *)&lo, sizeof(lo)) == 0) {
		good = true;
		goto out;
	}
	if (errno != EINPROGRESS)
		goto out;
	p = (struct pollfd){ .fd = c, .events = POLLOUT };
	good = poll(&p, 1, 2000) == 1 && !getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) && err == 0;
out:
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
	return good;
}

static void test_vsock(void)
{
	char logbuf[300];
	const char *log = itest_file(logbuf, sizeof(logbuf), "vsock.log");
	const char *what = "a token redeemed over AF_VSOCK is refused";
	unsigned port = 30000 + (unsigned)getpid() % 10000;
	char tool_addr[64], vmm_addr[64];
	struct kvmi_listener *l = NULL;
	struct kvmi_dom *dom = NULL;
	struct kvmi_map_mem_token t;
	void *p = NULL;
	pid_t pid;
	int ret, status, want;

	if (!vsock_loopback(port + 1)) {
		skip("no AF_VSOCK loopback (vsock_loopback) on this host", what);
		return;
	}
	snprintf(tool_addr, sizeof(tool_addr), "vsock:any:%u", port);
	snprintf(vmm_addr, sizeof(vmm_addr), "vsock:1:%u", port);
	ret = kvmi_listener_open(tool_addr, NULL, &l);
	ok(ret == 0, "listen on %s", tool_addr);
	if (ret)
		return;
	pid = start_vmm(log, vmm_addr);
	ret = kvmi_listener_accept(l, 20000, &dom);
	ok(ret == 0, "kvmi-vm connects over vsock (%d)", ret);
	if (!ret) {
		ok(kvmi_dom_check_command(dom, KVMI_X_MAP_MEMORY) == -EOPNOTSUPP,
		   "CHECK_COMMAND KVMI_X_MAP_MEMORY over vsock: EOPNOTSUPP");
		ok(kvmi_dom_get_map_token(dom, &t) == 0, "GET_MAP_TOKEN itself works over vsock");
		ok(kvmi_dom_map_physical_token(dom, &t, MBOX_GPA, PAGE, PROT_READ, &p) == -EOPNOTSUPP && !p, "%s",
		   what);
		kvmi_dom_close(dom);
	}
	kill(pid, SIGTERM);
	status = itest_wait(pid, 20);
	/* QEMU ends with 0 on SIGTERM, which reads as a guest shutdown */
	want = itest_is_qemu(vmm) ? KVMI_VM_EXIT_CRASH : 128 + SIGTERM;
	ok(status == want, "the VMM stops on SIGTERM (status %d)", status);
	if (ret || status != want)
		itest_show_log(log, NULL, 0);
	kvmi_listener_close(l);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s KVMI_VM GUEST_DIR\n", argv[0]);
		return 2;
	}
	vmm = argv[1];
	guest_dir = argv[2];
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("1..0 # SKIP no usable /dev/kvm\n");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	if (itest_init("test_mapping"))
		return ITEST_EXIT_SETUP;
	if (!itest_path(sock_path, sizeof(sock_path), "map.sock"))
		return ITEST_EXIT_SETUP;
	test_session();
	test_vsock();
	unlink(sock_path);
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
