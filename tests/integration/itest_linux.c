/* SPDX-License-Identifier: MIT */
/*
 * The box's Linux guest for the Linux tests (test_linux_cr3,
 * test_linux_ptwalk): what a run needs (root, kvm_amd or kvm_intel with
 * nested paging as asked, the guest's kernel and initramfs) and the guest's
 * start under either frontend: kvmi-vm, or kvmi-qemu with stock QEMU (the
 * distro box) booting the same kernel, initramfs, command line and RAM (a
 * memfd); the guest's reset (reboot -f) ends QEMU (-no-reboot); the
 * frame both tests share (arguments, scratch socket, the VMM's exit).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "itest.h"

bool itest_linux_skip(const char *linux_dir, int want_npt)
{
	char path[512];
	int npt;

	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("1..0 # SKIP no usable /dev/kvm\n");
		return true;
	}
	if (getuid() != 0 || (access("/sys/module/kvm_amd", F_OK) && access("/sys/module/kvm_intel", F_OK))) {
		printf("1..0 # SKIP needs root and kvm_amd/kvm_intel (the real-KVM box)\n");
		return true;
	}
	npt = itest_module_param("/sys/module/kvm_amd/parameters/npt");
	if (npt < 0)
		npt = itest_module_param("/sys/module/kvm_intel/parameters/ept");
	if (npt != want_npt) {
		printf("1..0 # SKIP needs nested paging %s (kvm_amd npt=%d / kvm_intel ept=%d)\n",
		       want_npt ? "on" : "off", want_npt, want_npt);
		return true;
	}
	snprintf(path, sizeof(path), "%s/guest-initrd.gz", linux_dir);
	if (access(path, R_OK)) {
		printf("1..0 # SKIP no Linux guest in %s (vmlinuz, guest-initrd.gz)\n", linux_dir);
		return true;
	}
	return false;
}

static void exec_linux(const char *vmm, const char *kernel, const char *initrd, const char *addr,
		       const char *timeout)
{
	if (!itest_is_qemu(vmm)) {
		execl(vmm, vmm, "--kernel", kernel, "--initrd", initrd, "--append", ITEST_LINUX_APPEND, "--memory",
		      ITEST_LINUX_MEMORY, "--vcpus", ITEST_LINUX_VCPUS, "--timeout", timeout, "--no-serial-input",
		      "--introspector", addr, (char *)NULL);
		return;
	}
	execl(vmm, vmm, "--introspector", addr, "--", "qemu-system-x86_64", "-M", "q35", "-enable-kvm", "-cpu",
	      "EPYC", "-smp", ITEST_LINUX_VCPUS, "-m", ITEST_LINUX_MEMORY, "-object",
	      "memory-backend-memfd,id=ram,size=" ITEST_LINUX_MEMORY, "-machine", "memory-backend=ram", "-nodefaults",
	      "-nographic", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-name", "guest=linux",
	      "-kernel", kernel, "-initrd", initrd, "-append", ITEST_LINUX_APPEND, (char *)NULL);
}

pid_t itest_start_linux(const char *log, const char *vmm, const char *linux_dir, const char *addr,
			unsigned timeout_s)
{
	char kernel[512], initrd[512], timeout[16];
	pid_t pid;

	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", linux_dir);
	snprintf(initrd, sizeof(initrd), "%s/guest-initrd.gz", linux_dir);
	snprintf(timeout, sizeof(timeout), "%u", timeout_s);
	pid = itest_fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int in = open("/dev/null", O_RDONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (in >= 0)
			dup2(in, 0);
		exec_linux(vmm, kernel, initrd, addr, timeout);
		_exit(127);
	}
	return pid;
}

int itest_linux_setup(struct itest_linux *t, int argc, char **argv, const struct itest_linux_test *test)
{
	const char *env = getenv(test->timeout_env);

	if (argc != 3) {
		fprintf(stderr, "usage: %s KVMI_VM LINUX_DIR\n", argv[0]);
		return ITEST_EXIT_USAGE;
	}
	t->vmm = argv[1];
	t->linux_dir = argv[2];
	t->timeout_s = env && atoi(env) > 0 ? (unsigned)atoi(env) : test->timeout_s;
	if (itest_linux_skip(t->linux_dir, test->want_npt))
		return ITEST_EXIT_PASS;
	if (itest_init(test->name) || !itest_path(t->sock_path, sizeof(t->sock_path), test->sock_name)) {
		printf("1..0 # SKIP no scratch directory\n");
		return ITEST_EXIT_SETUP;
	}
	snprintf(t->addr, sizeof(t->addr), "unix:%s", t->sock_path);
	return -1;
}

pid_t itest_linux_start(const struct itest_linux *t, const char *log)
{
	return itest_start_linux(log, t->vmm, t->linux_dir, t->addr, t->timeout_s);
}

void itest_linux_end_run(int status, const char *log, struct kvmi_listener *l)
{
	ok(status == KVMI_VM_EXIT_OK, "the VMM ends with status 0 (got %d)", status);
	if (status != 0)
		itest_show_log(log, NULL, 40);
	kvmi_listener_close(l);
}

int itest_linux_done(const struct itest_linux *t)
{
	unlink(t->sock_path);
	return itest_done();
}
