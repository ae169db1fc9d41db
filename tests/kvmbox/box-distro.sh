# box-distro.sh — the distro box's part of the box's /init (sourced by
# box-init.sh when build-box.sh was given --distro).  The box's disk is the
# Debian root file system of build-distro.sh; it is mounted at /distro with
# the box's /proc, /sys, /dev, /tmp and /kvmi inside, and stock QEMU runs
# there in a chroot (box-init.sh stays PID 1 and keeps the console protocol).
# /tmp is the same directory inside and out, so socket paths need no mapping.
#
# Mode qemu: the integration suites (the --tap-prog programs) with Debian's
# QEMU and our library (/kvmi/extra/kvmi-qemu + libkvmi-qemu.so) as the VMM;
# the Linux guest (2 vCPUs) under the same with the kvmi tool's checks of
# box-init.sh's run_linux_test, and test_linux_ptwalk (page tables
# write-protected under nested paging); then, with kvm_amd reloaded with
# npt=0, the CR3 flow of test_linux_cr3 with QEMU as the VMM.

DISTRO=/distro

# Mounts the distro box's disk; 0 when the chroot is ready.
distro_mount() {
	for m in $DISK_MODULES; do
		if ! out=$(insmod "/kvmi/modules/$m.ko" 2>&1); then
			comment "insmod $m: $out"
		fi
	done
	mkdir -p "$DISTRO"
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	if ! mount -t ext4 /dev/vda "$DISTRO" 2>/tmp/mount.err; then
		result "not ok" "distro: mount the Debian root file system ($(cat /tmp/mount.err))"
		return 1
	fi
	mkdir -p "$DISTRO/kvmi"
	mount --bind /proc "$DISTRO/proc"
	mount --bind /sys "$DISTRO/sys"
	mount --bind /dev "$DISTRO/dev"
	mount --bind /tmp "$DISTRO/tmp"
	mount --bind /kvmi "$DISTRO/kvmi"
	mount -t cgroup2 cgroup2 "$DISTRO/sys/fs/cgroup" 2>/dev/null || true
	# The BPF hooks find KVM's tracepoints through tracefs (not part of the
	# /sys bind mount).
	mount -t tracefs tracefs "$DISTRO/sys/kernel/tracing" 2>/dev/null || true
	mkdir -p "$DISTRO/dev/shm" "$DISTRO/dev/pts"
	mount -t tmpfs shm "$DISTRO/dev/shm" 2>/dev/null || true
	mount -t devpts devpts "$DISTRO/dev/pts" 2>/dev/null || true
	result ok "distro: Debian root file system mounted ($(chroot "$DISTRO" qemu-system-x86_64 --version | head -n 1))"
}

# The Linux guest under stock QEMU with our library: distro_qemu_linux
# [INTROSPECTION OPTION...].  The same kernel, initramfs, command line and
# RAM as under kvmi-vm; RAM in a memfd (zero-copy mapping); the console on
# stdout; the guest's reset (reboot -f) ends QEMU (-no-reboot).  The kernel
# boots `quiet`: with its full boot log on QEMU's UART the whole box stopped
# (no timer, no shell) in 3 of 3 runs with the library and 0 of 1 without;
# quiet boots passed every time (docs/limitations.md).
distro_qemu_linux() {
	chroot "$DISTRO" timeout -k 5 "$GUEST_TIMEOUT" /kvmi/extra/kvmi-qemu "$@" -- \
		qemu-system-x86_64 -M q35 -enable-kvm -cpu EPYC -smp "$LINUX_VCPUS" \
		-m "$GUEST_MEMORY" -object "memory-backend-memfd,id=ram,size=$GUEST_MEMORY" \
		-machine memory-backend=ram -nodefaults -nographic -serial stdio \
		-monitor none -no-reboot -name guest=linux-kvmi \
		-kernel /kvmi/linux/vmlinuz -initrd /kvmi/linux/guest-initrd.gz \
		-append "$GUEST_APPEND quiet"
}

# The integration suites (--tap-prog) with kvmi-qemu as the VMM, in the
# chroot: each payload boots from its boot image NAME.bios (/kvmi/guests).
run_qemu_tap_programs() {
	for p in /kvmi/tap/*; do
		[ -x "$p" ] || continue
		n=${p##*/}
		case "$n" in test_linux_*) continue ;; esac
		run_tap "${n%-static}-qemu" chroot "$DISTRO" "$p" /kvmi/extra/kvmi-qemu /kvmi/guests
	done
}

run_qemu_mode() {
	distro_mount || return 0
	if [ ! -x /kvmi/extra/kvmi-qemu ] || [ ! -f /kvmi/extra/libkvmi-qemu.so ]; then
		result "not ok" "linux-qemu: /kvmi/extra/kvmi-qemu and libkvmi-qemu.so missing"
		return 0
	fi
	run_qemu_tap_programs
	LINUX_FRONTEND=qemu LINUX_VCPUS=2
	run_linux_test
	if [ -x /kvmi/tap/test_linux_ptwalk-static ]; then
		run_tap test_linux_ptwalk-qemu chroot "$DISTRO" /kvmi/tap/test_linux_ptwalk-static \
			/kvmi/extra/kvmi-qemu /kvmi/linux
	fi
	if ! rmmod kvm_amd 2>/tmp/rmmod.err || ! insmod /kvmi/modules/kvm-amd.ko npt=0 2>/tmp/insmod.err; then
		result "not ok" "npt0: reload kvm_amd with npt=0 ($(cat /tmp/rmmod.err /tmp/insmod.err 2>/dev/null))"
		return 0
	fi
	result ok "npt0: kvm_amd reloaded with npt=$(cat /sys/module/kvm_amd/parameters/npt)"
	if [ -x /kvmi/tap/test_linux_cr3-static ]; then
		run_tap test_linux_cr3-qemu-npt0 chroot "$DISTRO" /kvmi/tap/test_linux_cr3-static \
			/kvmi/extra/kvmi-qemu /kvmi/linux
	fi
}
