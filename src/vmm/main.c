/* SPDX-License-Identifier: MIT */
/* kvmi-vm: command line front end of the VMM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "guest_abi.h"
#include "intro_config.h"
#include "introspect.h"
#include "util.h"
#include "vm.h"

#ifndef KVMI_PACKAGE_VERSION
#define KVMI_PACKAGE_VERSION "unknown"
#endif

struct options {
	struct vm_config cfg;
	struct intro_options intro;
	const char *guest, *kernel, *initrd, *append;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvmi-vm --guest FILE [options]\n"
		"       kvmi-vm --kernel BZIMAGE [--initrd FILE] [--append CMDLINE] [options]\n"
		"\n"
		"Runs an x86-64 guest on /dev/kvm.\n"
		"\n"
		"  -g, --guest FILE      test payload: ELF64 executable or flat binary (see guest_abi.h)\n"
		"  -k, --kernel FILE     Linux bzImage (64-bit boot protocol)\n"
		"  -i, --initrd FILE     initial ramdisk for --kernel\n"
		"  -a, --append STRING   kernel command line for --kernel\n"
		"  -m, --memory SIZE     guest RAM, e.g. 256M, 1G (default 256M)\n"
		"  -c, --vcpus N         number of vCPUs (default 1, at most %d)\n"
		"  -t, --timeout SECS    stop the guest after SECS seconds (exit status %d)\n"
		"      --kvm-device PATH KVM device (default /dev/kvm)\n"
		"      --no-serial-input do not feed stdin to the guest's serial port\n"
		"\n"
		"Introspection (KVMI, the VMM connects to a listening tool):\n"
		"      --introspector ADDR       unix:PATH or vsock:CID:PORT\n"
		"      --name NAME               VM name sent in the handshake (default kvmi-vm)\n"
		"      --uuid UUID               VM UUID sent in the handshake (default random)\n"
		"      --introspector-key FILE   accept only a tool whose cookie is SHA-1(key)\n"
		"      --allow-commands LIST     commands the tool may use (default all)\n"
		"      --allow-events LIST       events the tool may enable (default all)\n"
		"      --policy FILE             the same as a file (see docs/policy.md)\n"
		"      --handshake-timeout SECS  give up on a stalled handshake (default 10)\n"
		"      --unhook-timeout SECS     wait for the tool after UNHOOK at shutdown (default 5)\n"
		"      --introspector-wait       no guest instruction runs before a tool has connected\n"
		"                                and enabled CREATE_VCPU (each vCPU then raises it)\n"
		"  -v, --verbose         log more (repeat for debug)\n"
		"  -h, --help            this text\n"
		"      --version         print the version\n"
		"\n"
		"Serial console (COM1) goes to stdout; VMM messages go to stderr.\n"
		"Exit status: 0 guest finished or powered off cleanly (or its power-off value),\n"
		"1 bad usage or input file, 2 host/KVM problem, 3 guest assertion or unexpected\n"
		"exception, 4 guest crash (triple fault, emulation failure), 5 timeout.\n",
		VM_MAX_VCPUS, KVMI_VM_EXIT_TIMEOUT);
}

enum { OPT_KVM_DEVICE = 256, OPT_VERSION, OPT_NO_SERIAL_INPUT };

static const struct option vm_longopts[] = {
	{ "guest", required_argument, NULL, 'g' },
	{ "kernel", required_argument, NULL, 'k' },
	{ "initrd", required_argument, NULL, 'i' },
	{ "append", required_argument, NULL, 'a' },
	{ "memory", required_argument, NULL, 'm' },
	{ "vcpus", required_argument, NULL, 'c' },
	{ "timeout", required_argument, NULL, 't' },
	{ "kvm-device", required_argument, NULL, OPT_KVM_DEVICE },
	{ "no-serial-input", no_argument, NULL, OPT_NO_SERIAL_INPUT },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
};

/* One of kvmi-vm's own options: 0, or -EINVAL with the reason logged. */
static int vm_option(int c, struct options *o)
{
	uint64_t v;

	switch (c) {
	case 'g': o->guest = optarg; break;
	case 'k': o->kernel = optarg; break;
	case 'i': o->initrd = optarg; break;
	case 'a': o->append = optarg; break;
	case 'm':
		if (parse_size(optarg, &v)) {
			pr_err("--memory: '%s' is not a size (e.g. 256M, 1G)", optarg);
			return -EINVAL;
		}
		o->cfg.ram_size = v;
		break;
	case 'c':
		if (parse_uint(optarg, VM_MAX_VCPUS, &v) || v == 0) {
			pr_err("--vcpus: '%s' is not a number between 1 and %d", optarg, VM_MAX_VCPUS);
			return -EINVAL;
		}
		o->cfg.nr_vcpus = (unsigned)v;
		break;
	case 't':
		if (parse_uint(optarg, 86400 * 365, &v)) {
			pr_err("--timeout: '%s' is not a number of seconds", optarg);
			return -EINVAL;
		}
		o->cfg.timeout_s = (unsigned)v;
		break;
	case OPT_KVM_DEVICE: o->cfg.kvm_device = optarg; break;
	case OPT_NO_SERIAL_INPUT: o->cfg.serial_in_fd = -1; break;
	case 'v': vmm_log_level++; break;
	case 'h': usage(stdout); exit(0);
	case OPT_VERSION: printf("kvmi-vm %s\n", KVMI_PACKAGE_VERSION); exit(0);
	default: return -EINVAL;
	}
	return 0;
}

/* What the options say together. */
static int check_args(const struct options *o)
{
	if (!!o->guest + !!o->kernel != 1) {
		pr_err(o->guest ? "give either --guest or --kernel, not both"
				: "nothing to run: give --guest FILE or --kernel BZIMAGE (try --help)");
		return -EINVAL;
	}
	if (o->guest && (o->initrd || o->append)) {
		pr_err("--initrd and --append go with --kernel, not --guest");
		return -EINVAL;
	}
	return intro_options_check(&o->intro);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	struct option longopts[ARRAY_SIZE(vm_longopts) + INTRO_NR_LONGOPTS + 1];
	int c, err;

	memset(longopts, 0, sizeof(longopts));
	memcpy(longopts, vm_longopts, sizeof(vm_longopts));
	memcpy(longopts + ARRAY_SIZE(vm_longopts), intro_longopts, INTRO_NR_LONGOPTS * sizeof(longopts[0]));
	vm_config_defaults(&o->cfg);
	o->cfg.serial_in_fd = 0;
	o->cfg.handle_signals = true;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":g:k:i:a:m:c:t:vh", longopts, NULL)) != -1) {
		if (c == ':') {
			pr_err("option '%s' needs an argument (try --help)", argv[optind - 1]);
			return -EINVAL;
		}
		err = intro_option(c, optarg, argv[optind - 1], &o->intro);
		if (err == -ENOENT)
			err = c == '?' ? -ENOENT : vm_option(c, o);
		if (err == -ENOENT)
			pr_err("unknown option '%s' (try --help)", argv[optind - 1]);
		if (err)
			return -EINVAL;
	}
	if (optind < argc) {
		pr_err("unexpected argument '%s' (try --help)", argv[optind]);
		return -EINVAL;
	}
	return check_args(o);
}

int main(int argc, char **argv)
{
	struct options o;
	struct vm *vm;
	sigset_t stop_sigs;
	int err, status;

	memset(&o, 0, sizeof(o));
	if (parse_args(argc, argv, &o))
		return KVMI_VM_EXIT_USAGE;

	/* SIGINT/SIGTERM are collected by vm_run() on this thread. */
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);

	/* Bad input files are the user's problem whatever the host: check
	 * them before touching /dev/kvm. */
	if (o.cfg.ram_size >= GUEST_MIN_RAM && o.cfg.ram_size <= GUEST_MAX_RAM &&
	    !(o.cfg.ram_size % GUEST_PAGE_SIZE)) {
		err = o.guest ? boot_check_payload(o.guest, o.cfg.ram_size)
			      : boot_check_linux(o.kernel, o.initrd, o.append, o.cfg.ram_size);
		if (err)
			return KVMI_VM_EXIT_USAGE;
	}

	err = vm_create(&o.cfg, &vm);
	if (err)
		return err == -EINVAL ? KVMI_VM_EXIT_USAGE : KVMI_VM_EXIT_HOST;

	if (o.intro.address) {
		err = introspect_create(vm, &o.intro);
		if (err) {
			vm_destroy(vm);
			return KVMI_VM_EXIT_USAGE;
		}
	}

	if (o.guest)
		err = boot_load_payload(vm, o.guest);
	else
		err = boot_load_linux(vm, o.kernel, o.initrd, o.append);
	if (err) {
		vm_destroy(vm);
		return KVMI_VM_EXIT_USAGE;
	}

	status = vm_run(vm);
	vm_destroy(vm);
	return status;
}
