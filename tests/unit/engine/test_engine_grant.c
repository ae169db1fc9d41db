/* SPDX-License-Identifier: MIT */
/*
 * test_engine_grant.c - a read-only map grant (KVMI_X_MAP_MEMORY with
 * KVMI_X_MAP_READONLY) of kvmi-vm's guest RAM stays read-only. The RAM is
 * kvmi-vm's own (guest_memory_init, src/vmm/memory.c, without KVM), the
 * grant the engine's (eng_map_memory); a child process plays the tool
 * after dropping root to uid/gid 65534 and tries every way to write
 * through its descriptor: a writable reopen through /proc/self/fd,
 * mprotect() of its mapping, a writable shared mmap(), fchmod(), the
 * descriptor's own flags, write()/ftruncate()/fallocate(). A read-write
 * grant still writes, and the engine refuses a read-only grant of a file
 * whose mode would let a reopen write.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_host.h"
#include "memory.h"
#include "tap.h"

#define RAM   (4ull << 20)
#define GPA   0x2000ull
#define MARK  0x5a

/* What the tool managed: one bit per route that let it write. */
enum {
	W_REOPEN = 1, W_MPROTECT = 2, W_MMAP = 4, W_FCHMOD = 8, W_FLAGS = 16, W_WRITE = 32,
	W_NOREAD = 64,  /* could not even read: the grant is useless */
};

static int tool_routes(int fd, uint64_t off)
{
	char path[64];
	uint8_t *p, *q;
	int rc = 0, nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_RDWR | O_CLOEXEC);
	if (nfd < 0)
		nfd = open(path, O_WRONLY | O_CLOEXEC);
	if (nfd >= 0) {
		rc |= W_REOPEN;
		close(nfd);
	}
	p = mmap(NULL, 0x1000, PROT_READ, MAP_SHARED, fd, (off_t)off);
	if (p == MAP_FAILED || p[0] != MARK)
		rc |= W_NOREAD;
	if (p != MAP_FAILED && mprotect(p, 0x1000, PROT_READ | PROT_WRITE) == 0)
		rc |= W_MPROTECT;
	q = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
	if (q != MAP_FAILED)
		rc |= W_MMAP;
	if (fchmod(fd, 0666) == 0)
		rc |= W_FCHMOD;
	fcntl(fd, F_SETFL, O_RDWR);     /* access mode bits are ignored: must stay read-only */
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
		rc |= W_FLAGS;
	if (pwrite(fd, "x", 1, (off_t)off) == 1 || ftruncate(fd, 0) == 0 ||
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, 0x1000) == 0)
		rc |= W_WRITE;
	return rc;
}

/* The tool: another process, uid and gid 65534, no supplementary groups. */
static int run_tool(int fd, uint64_t off)
{
	pid_t pid;

	fflush(stdout); /* or the child would print our TAP lines again */
	pid = fork();
	int status;

	if (pid == 0) {
		/* The tool holds the grant and nothing else of the VMM's. */
		for (int i = 3; i < 1024; i++)
			if (i != fd)
				close(i);
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534) || geteuid() != 65534)
			_exit(255);
		_exit(tool_routes(fd, off));
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* The engine serves the region from fd (kvmi-vm's set-up: the slot exists). */
static struct kvmi_engine *engine_over(struct fake_host *h, void **dummy, void *hva, int fd)
{
	struct kvmi_engine *e = new_engine(h, RAM, dummy);
	struct kvmi_ram_region r = {
		.gpa = 0, .size = RAM, .hva = hva, .fd = fd, .slot_id = REGION_SLOT, .slot_exists = true,
	};

	if (!e)
		return NULL;
	if (kvmi_engine_region_remove(e, 0) || kvmi_engine_region_add(e, &r)) {
		free_engine(e, *dummy);
		return NULL;
	}
	return e;
}

static int grant(struct kvmi_engine *e, bool readonly, int *fd, uint64_t *off)
{
	struct kvmi_map_mem_token t;

	*fd = -1;
	if (kvmi_map_tokens_issue(&e->tokens, &t))
		return -1000;
	return eng_map_memory(e, &t, GPA, 0x1000, readonly, fd, off);
}

static void test_vmm_ram(void)
{
	static const struct { int bit; const char *what; } routes[] = {
		{ W_REOPEN, "open(\"/proc/self/fd/N\", O_RDWR or O_WRONLY) fails" },
		{ W_MPROTECT, "mprotect(PROT_WRITE) of its read-only mapping fails" },
		{ W_MMAP, "mmap(PROT_WRITE, MAP_SHARED) fails" },
		{ W_FCHMOD, "fchmod() fails" },
		{ W_FLAGS, "fcntl(F_GETFL) says O_RDONLY, also after F_SETFL O_RDWR" },
		{ W_WRITE, "pwrite(), ftruncate(), fallocate(PUNCH_HOLE) fail" },
		{ W_NOREAD, "it can still read its mapping" },
	};
	struct guest_memory mem;
	struct fake_host h;
	struct kvmi_engine *e;
	struct stat st;
	void *dummy;
	uint64_t off = 0;
	uint8_t *p;
	int fd, rc;

	if (guest_memory_init(&mem, -1, RAM, 8)) {
		ok(0, "guest_memory_init");
		return;
	}
	ok(fstat(mem.memfd, &st) == 0 && (st.st_mode & 07777) == 0400,
	   "kvmi-vm's guest RAM file has mode 0400 (%04o)", (unsigned)(st.st_mode & 07777));
	mem.base[GPA] = MARK;
	ok(mem.base[GPA] == MARK, "kvmi-vm's own read-write mapping still writes");
	e = engine_over(&h, &dummy, mem.base, mem.memfd);
	ok(e != NULL, "an engine over kvmi-vm's RAM");
	if (!e) {
		guest_memory_destroy(&mem);
		return;
	}

	ok(grant(e, true, &fd, &off) == 0 && fd >= 0 && off == GPA, "a read-only grant is given");
	if (fd >= 0) {
		if (geteuid() != 0) {
			printf("ok %d - # SKIP the tool's routes need root to drop to uid 65534\n", ++tap_n);
		} else {
			rc = run_tool(fd, off);
			ok(rc >= 0 && rc != 255, "the tool (uid 65534) ran (%d)", rc);
			for (size_t i = 0; rc >= 0 && rc != 255 && i < sizeof(routes) / sizeof(routes[0]); i++)
				ok(!(rc & routes[i].bit), "tool with a read-only grant: %s", routes[i].what);
		}
		ok(mem.base[GPA] == MARK && fstat(mem.memfd, &st) == 0 && st.st_size == (off_t)RAM &&
		   (st.st_mode & 07777) == 0400, "guest RAM, its size and its mode are unchanged");
		close(fd);
	}

	ok(grant(e, false, &fd, &off) == 0 && fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR,
	   "a read-write grant is given, read-write");
	if (fd >= 0) {
		p = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
		ok(p != MAP_FAILED && (p[1] = 0x77, mem.base[GPA + 1] == 0x77),
		   "...and its mapping writes guest RAM");
		if (p != MAP_FAILED)
			munmap(p, 0x1000);
		close(fd);
	}
	free_engine(e, dummy);
	guest_memory_destroy(&mem);
}

/* A frontend's RAM file that anyone may reopen for writing: no read-only
 * grant can be promised, so none is given. */
static void test_writable_file(void)
{
	struct fake_host h;
	struct kvmi_engine *e;
	void *dummy, *base;
	uint64_t off;
	int mfd = memfd_create("test-ram", MFD_CLOEXEC), fd;

	if (mfd < 0 || ftruncate(mfd, (off_t)RAM) || fchmod(mfd, 0600)) {
		ok(0, "a memfd");
		return;
	}
	base = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	e = base == MAP_FAILED ? NULL : engine_over(&h, &dummy, base, mfd);
	ok(e != NULL, "an engine over a RAM file of mode 0600");
	if (e) {
		ok(grant(e, true, &fd, &off) == -KVM_EOPNOTSUPP && fd < 0,
		   "mode 0600: a read-only grant is refused (EOPNOTSUPP)");
		ok(grant(e, false, &fd, &off) == 0 && fd >= 0, "...a read-write grant is not");
		if (fd >= 0)
			close(fd);
		free_engine(e, dummy);
	}
	if (base != MAP_FAILED)
		munmap(base, RAM);
	close(mfd);
}

int main(void)
{
	test_vmm_ram();
	test_writable_file();
	return tap_done();
}
