#!/bin/sh
# run-demo.sh — boots a real Linux guest under kvmi-vm and shows its console;
# first, a vetoed MSR write on a test guest under kvmi-vm and under stock QEMU;
# last, the Linux guest under stock QEMU with our library in the distro box.
#
# `make demo` runs this after building.  The guest is the current Debian
# kernel package (linux-image-amd64's dependency, fetched with apt-get
# download and cached) with a busybox initramfs whose /init prints a banner
# and a few facts about the guest, then resets it with `reboot -f`
# (reboot=k: kvmi-vm takes the keyboard-controller reset as the end).
#
# Where it runs:
#   hardware KVM (kvm_intel or kvm_amd loaded): build/kvmi-vm on /dev/kvm
#   otherwise (a software hypervisor such as kvm_pvm): build/kvmi-vm-static
#     inside the real-KVM box (tests/kvmbox/build-box.sh, docs/test-hosts.md)
# The first line of output says which.
#
# Usage: demo/run-demo.sh [--box | --direct]   (default: chosen as above)
# Environment:
#   KVMI_BUILD           Meson build directory (default: build)
#   KVMI_DEMO_MEMORY     guest RAM (default 256M)
#   KVMI_DEMO_APPEND     guest kernel command line
#   KVMI_DEMO_TIMEOUT    kvmi-vm --timeout for the guest (default 120)
#   KVMI_DEMO_VM_ARGS    extra kvmi-vm arguments (e.g. for an introspector)
#   KVMI_DEMO_BOX_FILES  more files for the box (space-separated paths; they
#                        land in /kvmi/extra, a demo-hook.sh there is sourced
#                        by the box right before the guest starts)
#   KVMI_DEMO_INTROSPECT 1 (default): attach the kvmi tool to the guest
#                        (demo/demo-hook.sh); 0: only boot the guest
#   KVMI_BOX_TIMEOUT     overall limit of the box run (default 600)
#   KVMI_CACHE           download cache of build-box.sh
#
# Exit status: kvmi-vm's (0 when the guest rebooted cleanly), 1 on set-up
# errors, when the box did not finish, or when a check of the introspection
# ("[check]" lines: the vetoed MSR write, LSTAR = entry_SYSCALL_64, PF
# events at jiffies) failed.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KVMI_BUILD:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OUT=$BUILD/demo
BUILD_BOX=$ROOT/tests/kvmbox/build-box.sh
BOOT_BOX=$ROOT/tests/kvmbox/boot-box.sh

MEMORY=${KVMI_DEMO_MEMORY:-256M}
APPEND=${KVMI_DEMO_APPEND:-console=ttyS0 reboot=k panic=-1 nokaslr}
GUEST_TIMEOUT=${KVMI_DEMO_TIMEOUT:-120}
VM_ARGS=${KVMI_DEMO_VM_ARGS:-}
BOX_FILES=${KVMI_DEMO_BOX_FILES:-}
INTROSPECT=${KVMI_DEMO_INTROSPECT:-1}
BOX_TIMEOUT=${KVMI_BOX_TIMEOUT:-600}

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

# True when /dev/kvm is backed by hardware virtualization.
hardware_kvm() {
	[ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]
}

# Name of the module behind /dev/kvm when it is not hardware-backed.
kvm_backend() {
	for m in kvm_pvm kvm; do
		[ -d "/sys/module/$m" ] && { echo "$m"; return; }
	done
	echo "no kvm module"
}

# ---------------------------------------------------------------- direct
# Builds the kernel + guest initramfs only (no box) into $OUT.
prepare_guest() {
	say "preparing the guest (Debian kernel package + busybox initramfs)"
	sh "$BUILD_BOX" --mode guest "$OUT" ||
		die "could not prepare the guest (see the messages above)"
}

# Runs the guest on this host's /dev/kvm; the console goes to stdout.
run_direct() {
	[ -x "$BUILD/kvmi-vm" ] || die "$BUILD/kvmi-vm not built (run: make build)"
	[ -c /dev/kvm ] || die "/dev/kvm missing"
	prepare_guest
	say "booting $(cut -d' ' -f1 "$OUT/box.info") under $BUILD/kvmi-vm"
	echo "------------------------------ guest console ------------------------------"
	t0=$(now_ms)
	rc=0
	# shellcheck disable=SC2086  # VM_ARGS is a list of words
	"$BUILD/kvmi-vm" --kernel "$OUT/vmlinuz" --initrd "$OUT/guest-initrd.gz" \
		--append "$APPEND" --memory "$MEMORY" --timeout "$GUEST_TIMEOUT" \
		--no-serial-input $VM_ARGS </dev/null || rc=$?
	echo "---------------------------------------------------------------------------"
	say "kvmi-vm exit status $rc after $(secs "$t0" "$(now_ms)")s"
	return "$rc"
}

# ---------------------------------------------------------------- box
# Builds the box in demo mode: its payload is only the demo guest.
# Extension point: BOX_FILES go into the box's /kvmi/extra besides kvmi-vm
# and the guest; an introspection tool for the demo goes there, with a
# demo-hook.sh that starts it (see build-box.sh).
prepare_box() {
	[ -f "$BUILD/kvmi-vm-static" ] ||
		die "$BUILD/kvmi-vm-static not built (needs -Dstatic_binaries=true)"
	command -v qemu-system-x86_64 >/dev/null ||
		die "qemu-system-x86_64 missing (Debian package qemu-system-x86)"
	say "preparing the real-KVM box (Debian kernel package, busybox, kvmi-vm-static)"
	# shellcheck disable=SC2086  # BOX_FILES is a list of paths
	KVMI_LINUX_APPEND=$APPEND KVMI_LINUX_MEMORY=$MEMORY \
	KVMI_LINUX_TIMEOUT=$GUEST_TIMEOUT KVMI_VM_EXTRA_ARGS=$VM_ARGS \
		sh "$BUILD_BOX" --mode demo --vm "$BUILD/kvmi-vm-static" "$OUT" \
			$BOX_FILES ||
		die "could not build the box (see the messages above)"
}

# Filters the box's serial console (stdin): box progress as "demo:" lines,
# the guest console between KVMBOX-DEMO-BEGIN and -END as it is.  Writes
# the guest's exit status to $OUT/guest.rc.
show_box_console() {
	in_guest=0
	while IFS= read -r line; do
		line=$(printf '%s' "$line" | tr -d '\r\033')
		if [ "$in_guest" = 1 ]; then
			case "$line" in
			*KVMBOX-DEMO-END*)
				in_guest=0
				echo "---------------------------------------------------------------------------"
				rest=${line#*KVMBOX-DEMO-END }
				rc=${rest#rc=}; rc=${rc%% *}
				echo "$rc" >"$OUT/guest.rc"
				say "kvmi-vm exit status $rc after ${rest##*seconds=}s (wall time inside the box)"
				;;
			*) printf '%s\n' "$line" ;;
			esac
			continue
		fi
		case "$line" in
		*KVMBOX-BOOT:\ *)
			say "box booted in $(secs "$T0" "$(now_ms)")s: ${line#*KVMBOX-BOOT: }" ;;
		*KVMBOX-DEMO-BEGIN*)
			in_guest=1
			say "booting $(cut -d' ' -f1 "$OUT/box.info") under kvmi-vm inside the box"
			echo "------------------------------ guest console ------------------------------"
			;;
		*"KVMBOX-TAP: not ok"*)
			say "box: ${line#*KVMBOX-TAP: }" ;;
		*"KVMBOX-TAP: # insmod"*|*"KVMBOX-TAP: # |"*)
			say "box: ${line#*KVMBOX-TAP: # }" ;;
		*KVMBOX-*) ;;                # the rest of the box's bookkeeping
		*SeaBIOS*|*"Booting from ROM"*|*"reboot: Power down"*) ;;
		*[![:space:]]*)              # anything else: a panic, a demo-hook.sh
			say "box: $line" ;;
		esac
	done
}

# Boots the box; its console goes to $OUT/console.log, the filtered view
# to stdout.
run_in_box() {
	prepare_box
	say "booting the box (QEMU TCG, emulated AMD SVM CPU, kvm_amd)"
	rm -f "$OUT/guest.rc" "$OUT/qemu.rc"
	T0=$(now_ms)
	{
		rc=0
		sh "$BOOT_BOX" --timeout "$BOX_TIMEOUT" "$OUT" || rc=$?
		echo "$rc" >"$OUT/qemu.rc"
	} | tee "$OUT/console.log" | show_box_console
	qrc=$(cat "$OUT/qemu.rc" 2>/dev/null || echo 255)
	say "whole box run: $(secs "$T0" "$(now_ms)")s (QEMU exit status $qrc)"
	if [ ! -f "$OUT/guest.rc" ]; then
		say "the box did not finish the demo; last lines of $OUT/console.log:"
		tail -n 30 "$OUT/console.log" | tr -d '\r\033' | awk '{ print "  | " $0 }'
		return 1
	fi
	return "$(cat "$OUT/guest.rc")"
}

# ---------------------------------------------------------------- introspection
# Live introspection of the demo guest: kvmi-vm connects to the `kvmi` tool,
# which reads the guest's registers and its kernel's version string, pauses
# and resumes it, and prints the UNHOOK event at shutdown.  The guest stays
# up (kvmi.linger) long enough for the tool's script.
setup_introspection() {
	[ "$INTROSPECT" = 1 ] || return 0
	sock=/tmp/kvmi-demo.sock
	APPEND="$APPEND kvmi.linger=${KVMI_DEMO_LINGER:-20}"
	VM_ARGS="$VM_ARGS --introspector unix:$sock --name debian-demo"
	if [ "$where" = box ]; then
		# demo-hook.sh holds the vCPU at CREATE_VCPU to watch MSR_LSTAR.
		VM_ARGS="$VM_ARGS --introspector-wait"
		[ -f "$BUILD/kvmi-static" ] || die "$BUILD/kvmi-static not built"
		BOX_FILES="$BOX_FILES $BUILD/kvmi-static $ROOT/demo/demo-hook.sh"
		say "introspection: the kvmi tool listens inside the box; kvmi-vm connects to it"
	else
		[ -x "$BUILD/kvmi" ] || die "$BUILD/kvmi not built"
		printf '%s\n' info "regs 0" "sleep 20" pause "regs 0" "sleep 3" resume \
			"trace unhook seconds=120" >"$OUT/kvmi-demo.script"
		( "$BUILD/kvmi" -t 60 -f "$OUT/kvmi-demo.script" listen "unix:$sock" 2>&1 |
			sed -u 's/^/[kvmi] /' ) &
		sleep 1
		say "introspection: the kvmi tool listens on unix:$sock; kvmi-vm connects to it"
	fi
}

# ---------------------------------------------------------------- veto
# A vetoed MSR write on a test guest (tests/guest/tests/introspect.c) on this
# host's /dev/kvm: the guest writes 0x1234 to MSR 0x175 (SYSENTER_ESP) and
# prints what it reads back; the kvmi tool watches the MSR and answers the
# MSR event with the old value.  Once under kvmi-vm, once under stock QEMU
# (Debian's qemu-system-x86_64 with libkvmi-qemu.so, started by kvmi-qemu,
# on the payload's boot image).  Needs a usable /dev/kvm (any KVM).

# veto_vm FRONTEND SOCKET: runs the guest; its console in $OUT/veto-FRONTEND.console
veto_vm() {
	if [ "$1" = qemu ]; then
		"$BUILD/kvmi-qemu" --introspector "unix:$2" --introspector-wait -- \
			qemu-system-x86_64 -M q35 -enable-kvm -cpu EPYC -m 256 -nodefaults -nographic \
			-serial "file:$OUT/veto-qemu.console" -monitor none -no-reboot \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 -name veto-demo \
			-bios "$BUILD/tests/guest/introspect.bios" </dev/null >"$OUT/veto-qemu.log" 2>&1
		st=$?
		# the guest's own exit: status S comes out as (S << 1) | 1
		[ $((st & 1)) -eq 1 ] && return $((st >> 1))
		return 100
	fi
	"$BUILD/kvmi-vm" --guest "$BUILD/tests/guest/introspect.elf" --introspector "unix:$2" \
		--introspector-wait --name veto-demo --timeout 30 --no-serial-input \
		</dev/null >"$OUT/veto-kvmi-vm.console" 2>&1
}

run_veto_demo() {
	[ "$INTROSPECT" = 1 ] || return 0
	fe=$1
	need="$BUILD/kvmi $BUILD/kvmi-vm $BUILD/tests/guest/introspect.elf"
	[ "$fe" = qemu ] && need="$BUILD/kvmi $BUILD/kvmi-qemu $BUILD/libkvmi-qemu.so $BUILD/tests/guest/introspect.bios"
	for f in $need; do
		if [ ! -e "$f" ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ] ||
		   { [ "$fe" = qemu ] && ! command -v qemu-system-x86_64 >/dev/null; }; then
			say "veto demo under $fe skipped (needs $f, /dev/kvm and, for QEMU, qemu-system-x86_64)"
			return 0
		fi
	done
	if [ "$fe" = qemu ]; then
		say "a vetoed MSR write: test guest 'introspect' under stock QEMU ($(qemu-system-x86_64 --version | head -n 1)) with libkvmi-qemu.so"
	else
		say "a vetoed MSR write: test guest 'introspect' under kvmi-vm on this host's /dev/kvm"
	fi
	vsock=$OUT/kvmi-veto.sock
	rm -f "$vsock"
	# The PF events on its mailbox page tell that the guest reached its
	# loop; then the tool injects the #UD it expects and lets it go.
	printf '%s\n' wait-create "msr watch sysenter_esp" resume \
		"protect 0x300000 0x1000 r-x" "trace pf lift=2 until=lift seconds=20" \
		"inject 0 6" "write 0x300008 0d60000000000000" \
		"trace msr veto count=1 seconds=20" >"$OUT/kvmi-veto.script"
	"$BUILD/kvmi" -q -t 20 -f "$OUT/kvmi-veto.script" listen "unix:$vsock" \
		>"$OUT/kvmi-veto.out" 2>&1 &
	kpid=$!
	i=0
	while [ ! -S "$vsock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	vrc=0
	veto_vm "$fe" "$vsock" || vrc=$?
	wait "$kpid" || true
	console=$OUT/veto-$fe.console
	grep -v '"event":"PF"' "$OUT/kvmi-veto.out" | sed 's/^/[kvmi] /'
	grep 'print: msr' "$console" | sed 's/^.*print: /[guest] /'
	if grep -q '"msr":"0x175".*"reply":"veto"' "$OUT/kvmi-veto.out" &&
	   grep -q 'print: msr 0x175 = 0x0$' "$console" && [ "$vrc" -eq 0 ]; then
		say "[check] OK ($fe): the guest wrote 0x1234, the tool vetoed it, the guest reads back the old value 0x0"
	else
		say "[check] FAILED ($fe): the vetoed write (guest exit status $vrc; see $OUT/kvmi-veto.* and $console)"
		VETO_FAILED=1
	fi
}

# ---------------------------------------------------------------- main
where=auto
case "${1:-}" in
--box) where=box ;;
--direct) where=direct ;;
"") ;;
*) die "usage: $0 [--box | --direct]" ;;
esac
if [ "$where" = auto ]; then
	if hardware_kvm; then where=direct; else where=box; fi
fi
# The Linux guest under Debian's stock QEMU with libkvmi-qemu.so, in the
# distro box (the real-KVM box with a Debian userland on its disk:
# tests/kvmbox/build-distro.sh, cached): the same checks as under kvmi-vm,
# with 2 vCPUs (run-box.sh --mode qemu, the Meson test kvmbox-qemu).  Its
# results become "[check]" lines; a few of the tool's lines are shown.
QEMU_BOX_FAILED=0
run_qemu_box_demo() {
	say "next: the same Linux guest with 2 vCPUs under Debian's stock QEMU + libkvmi-qemu.so, inside the"
	say "distro box (the box with a Debian userland on its disk; built with mmdebstrap and cached)"
	"$ROOT/tests/kvmbox/run-box.sh" --mode qemu --outdir "$OUT/box-qemu" \
		--vm "$BUILD/kvmi-vm-static" "$BUILD/kvmi-static" "$BUILD/kvmi-qemu" \
		"$BUILD/libkvmi-qemu.so" 2>&1 | while IFS= read -r l; do
		case "$l" in
		"ok "*) echo "[check] OK: ${l#ok * - }" ;;
		"not ok "*) echo "[check] FAILED: ${l#not ok * - }" ;;
		"1..0 # SKIP"*) say "distro box skipped: ${l#1..0 # SKIP }" ;;
		"# kvmi| gva "*|"# kvmi| paused"*|"# kvmi| vcpu "*|"# kvmi| rip "*)
			echo "[kvmi] ${l#\# kvmi| }" ;;
		"# linux| kvmi-qemu: "*|"# linux| cpus-ran:"*|"# linux| vcpus:"*|"# linux| KVMI-LINUX"*)
			echo "[qemu] ${l#\# linux| }" ;;
		"# kvmbox: "*) say "distro box: ${l#\# kvmbox: }" ;;
		esac
	done | tee "$OUT/qemu-box.log"
	grep -q '^\[check\] FAILED' "$OUT/qemu-box.log" && QEMU_BOX_FAILED=1
	grep -q '^\[check\] OK' "$OUT/qemu-box.log" || grep -q 'distro box skipped' "$OUT/qemu-box.log" ||
		QEMU_BOX_FAILED=1
	return 0
}

mkdir -p "$OUT"
VETO_FAILED=0
run_veto_demo kvmi-vm
run_veto_demo qemu
setup_introspection
if [ "$where" = direct ]; then
	if hardware_kvm; then
		say "hardware KVM on this host: running kvmi-vm directly on /dev/kvm"
	else
		say "running kvmi-vm directly on /dev/kvm ($(kvm_backend), not hardware KVM: --direct)"
	fi
	rc=0
	run_direct || rc=$?
	run_qemu_box_demo
	[ "$VETO_FAILED" = 0 ] && [ "$QEMU_BOX_FAILED" = 0 ] || rc=1
	exit "$rc"
else
	if hardware_kvm; then
		say "running kvmi-vm inside the real-KVM box (QEMU TCG + kvm_amd: --box)"
	else
		say "/dev/kvm here is not hardware KVM ($(kvm_backend)): running kvmi-vm inside the real-KVM box (QEMU TCG + kvm_amd)"
	fi
	rc=0
	run_in_box || rc=$?
	if grep -q '\[check\] FAILED' "$OUT/console.log" 2>/dev/null; then
		say "a check of the introspection failed (see the [check] lines above)"
		rc=1
	fi
	run_qemu_box_demo
	[ "$VETO_FAILED" = 0 ] && [ "$QEMU_BOX_FAILED" = 0 ] || rc=1
	exit "$rc"
fi
