#!/bin/sh
# build-box.sh — builds the "real-KVM box" (see docs/test-hosts.md).
#
# The box is a Debian kernel booted under QEMU TCG with an emulated AMD SVM
# CPU; inside it the genuine kvm_amd module provides a hardware-semantics
# /dev/kvm on which kvmi-vm runs.  This script produces, in OUTDIR:
#
#   vmlinuz            the Debian kernel (for the box, and for the Linux guest)
#   guest-initrd.gz    tiny busybox initramfs of the Linux guest that kvmi-vm
#                      boots (prints a banner, some facts, KVMI-LINUX-GUEST-OK,
#                      then `reboot -f`)
#   initrd.gz          the box's initramfs (modes tests, demo, probe)
#
# Usage: build-box.sh [options] OUTDIR [FILE...]
#   --mode MODE      what the box runs after it booted:
#                      tests  guest-tests.sh (the integration suite), the
#                             --tap-prog programs and the Linux-guest test,
#                             as TAP                            (default)
#                      tap    only the --tap-prog programs (make soak-box)
#                      demo   only the demo Linux guest, console shown as is
#                      probe  no kvmi-vm: checks /dev/kvm and kvm_amd (smoke test)
#                      guest  build only vmlinuz and guest-initrd.gz (no box)
#   --vm FILE        statically linked kvmi-vm (put at /kvmi/bin/kvmi-vm)
#   --guest-dir DIR  copy DIR/*.elf into /kvmi/guests
#   --tests-dir DIR  copy DIR/*.sh into /kvmi/tests
#   --tap-prog FILE  statically linked test program printing TAP, run in the
#                    box (modes tests, tap) as FILE KVMI_VM GUEST_DIR [ARG...]
#                    (repeatable; ARG... from KVMI_BOX_TAP_ARGS)
#   FILE...          more files: *.elf go to /kvmi/guests, *.sh to /kvmi/tests,
#                    demo-hook.sh and anything else to /kvmi/extra
#
# Environment (defaults for the options above, and the cache):
#   KVMI_BOX_MODE, KVMI_VM_STATIC, KVMI_GUEST_DIR, KVMI_TESTS_DIR
#   KVMI_CACHE       download cache (default $HOME/.cache/kvmi-kvmbox)
#   KVMI_KERNEL_PKG  Debian kernel package to use instead of the one
#                    linux-image-amd64 depends on
#   KVMI_LINUX_APPEND, KVMI_LINUX_MEMORY, KVMI_LINUX_TIMEOUT
#                    command line, RAM and timeout of the Linux guest in the box
#   KVMI_VM_EXTRA_ARGS  more kvmi-vm arguments for the Linux guest in the box
#   KVMI_BOX_PROBE_CMD  (mode probe) a shell command to run in the box, its
#                    output shown as TAP comments (debugging aid)
#   KVMI_BOX_TAP_ARGS  more arguments for every --tap-prog program, after
#                    KVMI_VM GUEST_DIR (words split at blanks; make soak-box
#                    passes "--vsock --tap --minutes N" to kvmi-soak-static)
#   KVMI_BOX_NPT0_LINUX=1  (mode tests) boot the Linux guest once more in the
#                    npt=0 pass, without introspection (measures npt=0's cost)
#   KVMI_BOX_ENV     VAR=VALUE words exported in the box before its tests
#                    (e.g. KVMI_PTWALK=unguarded for test_linux_ptwalk's
#                    negative control)
#
# Extension point for the demo: a file named demo-hook.sh given as FILE...
# lands in /kvmi/extra and is sourced by the box's /init right before the demo
# guest starts (e.g. to start an introspection tool in the background and add
# to VM_EXTRA_ARGS).
#
# Needs: apt-get/apt-cache/dpkg-deb (Debian), busybox-static, cpio, gzip.
set -eu

PROG=build-box.sh
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }

MODE=${KVMI_BOX_MODE:-tests}
VM=${KVMI_VM_STATIC:-}
GUEST_DIR=${KVMI_GUEST_DIR:-}
TESTS_DIR=${KVMI_TESTS_DIR:-}
TAP_PROGS=""
CACHE=${KVMI_CACHE:-${HOME:-/root}/.cache/kvmi-kvmbox}
# nokaslr: the guest runs the box's kernel image, so the box's /proc/kallsyms
# names the guest RIPs of crash reports (the box boots with nokaslr too).
GUEST_APPEND=${KVMI_LINUX_APPEND:-console=ttyS0 reboot=k panic=-1 nokaslr}
GUEST_MEMORY=${KVMI_LINUX_MEMORY:-256M}
GUEST_TIMEOUT=${KVMI_LINUX_TIMEOUT:-120}
VM_EXTRA_ARGS=${KVMI_VM_EXTRA_ARGS:-}
PROBE_CMD=${KVMI_BOX_PROBE_CMD:-}
NPT0_LINUX=${KVMI_BOX_NPT0_LINUX:-0}
TAP_PROG_ARGS=${KVMI_BOX_TAP_ARGS:-}
BOX_ENV=${KVMI_BOX_ENV:-}
BUSYBOX=${KVMI_BUSYBOX:-/bin/busybox}
# insmod order inside the box: KVM, then vsock over the loopback transport
# (the introspection tests run their vsock transport there).
MODULES="irqbypass ccp kvm kvm-amd vsock vmw_vsock_virtio_transport_common vsock_loopback"
STAMP=complete-v3                       # marks a finished cache entry

usage() { sed -n '2,/^set -eu/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "$1"; }

# ---------------------------------------------------------------- arguments
while [ $# -gt 0 ]; do
	case "$1" in
	--mode) MODE=${2:?}; shift 2 ;;
	--vm) VM=${2:?}; shift 2 ;;
	--guest-dir) GUEST_DIR=${2:?}; shift 2 ;;
	--tests-dir) TESTS_DIR=${2:?}; shift 2 ;;
	--tap-prog) TAP_PROGS="$TAP_PROGS ${2:?}"; shift 2 ;;
	-h|--help) usage 0 ;;
	--) shift; break ;;
	-*) say "unknown option $1"; usage 1 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage 1
OUTDIR=$1
shift
case "$MODE" in
tests|tap|demo|probe|guest) ;;
*) die "unknown mode '$MODE' (tests, tap, demo, probe, guest)" ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvmi-box.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

# ---------------------------------------------------------------- kernel
# Name of the kernel package that linux-image-amd64 currently depends on,
# e.g. linux-image-6.1.0-56-amd64.  Empty when apt knows no such package.
resolve_kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# Newest kernel already unpacked in the cache (empty if none).
newest_cached_kernel() {
	for d in "$CACHE"/linux-image-*; do
		[ -f "$d/$STAMP" ] && basename "$d"
	done | sort -V | tail -n 1
}

# Downloads package $1 and keeps only what the box needs in $CACHE/$1:
# vmlinuz and the four kvm modules (uncompressed .ko).
fetch_kernel() {
	pkg=$1
	dest=$CACHE/$pkg
	dl=$WORK/download
	mkdir -p "$dl" "$CACHE"
	# apt drops privileges to _apt for downloads; let it write here.
	chmod 755 "$WORK"
	chmod 777 "$dl"
	say "downloading $pkg"
	(cd "$dl" && apt-get download -q "$pkg" >&2) || return 1
	deb=$(ls "$dl"/*.deb)
	dpkg-deb -x "$deb" "$dl/root"
	stage=$WORK/kernel
	mkdir -p "$stage/modules"
	cp "$dl"/root/boot/vmlinuz-* "$stage/vmlinuz"
	for m in $MODULES; do
		f=$(find "$dl/root/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" \
			-o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n 1)
		[ -n "$f" ] || { say "$pkg has no module $m"; return 1; }
		# busybox insmod may lack the decompressors: store plain .ko
		case "$f" in
		*.ko.xz) xz -dc "$f" >"$stage/modules/$m.ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$stage/modules/$m.ko" ;;
		*.ko.gz) gzip -dc "$f" >"$stage/modules/$m.ko" ;;
		*) cp "$f" "$stage/modules/$m.ko" ;;
		esac
	done
	echo "$pkg" >"$stage/$STAMP"
	rm -rf "$dest"
	mv "$stage" "$dest"         # atomic enough: the stamp is inside
	rm -rf "$dl"
}

# Sets KDIR to a cache directory holding vmlinuz and modules/*.ko.
get_kernel() {
	pkg=${KVMI_KERNEL_PKG:-}
	[ -n "$pkg" ] || pkg=$(resolve_kernel_pkg)
	if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
		say "apt knows no linux-image-amd64; running apt-get update"
		apt-get update -qq >&2 || true
		pkg=$(resolve_kernel_pkg)
	fi
	if [ -n "$pkg" ] && [ -f "$CACHE/$pkg/$STAMP" ]; then
		KDIR=$CACHE/$pkg
		return 0
	fi
	if [ -n "$pkg" ] && fetch_kernel "$pkg"; then
		KDIR=$CACHE/$pkg
		return 0
	fi
	# Stale package lists name a version the archive no longer has.
	if [ -z "${KVMI_KERNEL_PKG:-}" ] && [ "$(id -u)" -eq 0 ]; then
		say "retrying after apt-get update"
		apt-get update -qq >&2 || true
		pkg=$(resolve_kernel_pkg)
		if [ -n "$pkg" ] && { [ -f "$CACHE/$pkg/$STAMP" ] || fetch_kernel "$pkg"; }; then
			KDIR=$CACHE/$pkg
			return 0
		fi
	fi
	old=$(newest_cached_kernel)
	[ -n "$old" ] || die "cannot get a Debian kernel package${pkg:+ ($pkg)}"
	say "warning: using cached $old instead of ${pkg:-the current kernel}"
	KDIR=$CACHE/$old
}

# ---------------------------------------------------------------- initramfs
# Creates the busybox skeleton of an initramfs in $1.
skeleton() {
	mkdir -p "$1/bin" "$1/sbin" "$1/usr/bin" "$1/usr/sbin" "$1/dev" \
		"$1/proc" "$1/sys" "$1/tmp" "$1/root" "$1/etc"
	cp "$BUSYBOX" "$1/bin/busybox"
	# An initial console for /init (needs root; /init copes without it).
	mknod -m 600 "$1/dev/console" c 5 1 2>/dev/null || true
}

# Packs directory $1 into the gzip'ed newc cpio $2.
pack() {
	(cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
		gzip -6 >"$2.tmp"
	mv "$2.tmp" "$2"
}

# /init of the Linux guest that kvmi-vm boots (runs in busybox sh).
write_guest_init() {
	cat >"$1" <<'EOF'
#!/bin/busybox sh
# Linux guest of kvmi-vm: show that the kernel reached userspace, then reset.
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -t 1 ] || exec </dev/console >/dev/console 2>&1
up=$(cut -d' ' -f1 /proc/uptime)
echo
echo "================ kvmi-vm Linux guest ================"
echo "reached /init after ${up}s of guest uptime"
echo "kernel:  $(uname -a)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "vcpus:   $(grep -c '^processor' /proc/cpuinfo)"
echo "memory:  $(awk '/^MemTotal/ {t=$2} /^MemFree/ {f=$2} END {printf "%d MiB total, %d MiB free", t/1024, f/1024}' /proc/meminfo)"
echo "cmdline: $(cat /proc/cmdline)"
echo "====================================================="
echo "KVMI-LINUX-GUEST-OK"
# kvmi.linger=N on the kernel command line keeps the guest alive N more
# seconds (the demo's introspection tool works on it meanwhile), with a
# heartbeat so that a pause shows on the console.
linger=$(sed -n 's/.*kvmi\.linger=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
i=0
while [ "$i" -lt "${linger:-0}" ]; do
	sleep 1
	i=$((i + 1))
	echo "guest: alive, uptime $(cut -d' ' -f1 /proc/uptime)s"
done
# Let the UART drain, then reset (reboot=k: keyboard-controller pulse,
# which kvmi-vm treats as the end of the guest).
sleep 1
reboot -f
sleep 5
echo b >/proc/sysrq-trigger
EOF
	chmod 755 "$1"
}

build_guest_initrd() {
	g=$WORK/guest
	skeleton "$g"
	write_guest_init "$g/init"
	pack "$g" "$OUTDIR/guest-initrd.gz"
}

# /init of the box (runs in busybox sh as PID 1 inside QEMU).  Its output
# protocol on the serial console, parsed by run-box.sh and run-demo.sh:
#   KVMBOX-BOOT: ...         box reached /init (uptime), once
#   KVMBOX-TAP: <tap line>   one line of the box's TAP stream (plan at the end)
#   KVMBOX-DEMO-BEGIN / KVMBOX-DEMO-END rc=N seconds=S
#                            the demo guest's console lies in between
#   KVMBOX-SUMMARY: N passed, M failed, K skipped
# then the box powers off.
write_box_init() {
	cat >"$1" <<'EOF'
#!/bin/busybox sh
# real-KVM box init: load kvm_amd, run the payload, report, power off.
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -t 1 ] || exec </dev/console >/dev/console 2>&1
dmesg -n 1                       # keep kernel messages off our TAP lines
# shellcheck disable=SC1091       # written by build-box.sh
. /kvmi/box.conf

echo "KVMBOX-BOOT: init reached, uptime $(cut -d' ' -f1 /proc/uptime)s, $(uname -r), $(nproc) cpus"

# ------------------------------------------------------------ TAP helpers
N=0 PASS=0 FAIL=0 SKIP=0
uptime_s() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
comment() { echo "KVMBOX-TAP: # $*"; }
# result ok|"not ok" DESCRIPTION  (DESCRIPTION may end in "# SKIP ..." / "# TODO ...")
result() {
	N=$((N + 1))
	case "$1 $2" in
	*"# SKIP"*|*"# skip"*|*"# TODO"*|*"# todo"*) SKIP=$((SKIP + 1)) ;;
	"ok "*) PASS=$((PASS + 1)) ;;
	*) FAIL=$((FAIL + 1)) ;;
	esac
	echo "KVMBOX-TAP: $1 $N - $2"
}
# Prints the last lines of file $1 as TAP comments.
comment_tail() { tail -n "${2:-20}" "$1" | tr -d '\r' | while IFS= read -r l; do comment "| $l"; done; }

finish() {
	echo "KVMBOX-TAP: 1..$N"
	echo "KVMBOX-SUMMARY: $PASS passed, $FAIL failed, $SKIP skipped"
	sleep 1                  # let the UART drain
	poweroff -f
}

# ------------------------------------------------------------ box set-up
setup_kvm() {
	# Huge pages for shared memory: kvmi-vm's guest RAM (a memfd) then gets
	# 2 MiB nested-paging mappings; halves a Linux boot in the box.
	echo advise >/sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null || true
	# kvm.force_emulation_prefix=1: the CR/XSETBV tests reach XSETBV
	# through KVM's emulator (QEMU's SVM does not intercept XSETBV).
	for m in $MODULES; do
		args=""
		[ "$m" = kvm ] && args="force_emulation_prefix=1"
		# shellcheck disable=SC2086   # args: zero or one word
		if ! out=$(insmod "/kvmi/modules/$m.ko" $args 2>&1); then
			comment "insmod $m: $out"
		fi
	done
	# The BPF hooks of kvmi-vm find KVM's tracepoints through tracefs.
	mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
	if [ -c /dev/kvm ] && [ -d /sys/module/kvm_amd ]; then
		result ok "box: kvm_amd loaded, /dev/kvm present"
		dmesg | grep -iE 'svm|kvm|nested|npt' | tail -n 8 | while IFS= read -r l; do comment "dmesg: $l"; done
		return 0
	fi
	result "not ok" "box: kvm_amd loaded, /dev/kvm present"
	dmesg | tail -n 30 > /tmp/dmesg.txt
	comment_tail /tmp/dmesg.txt 30
	return 1
}

# ------------------------------------------------------------ payloads
# probe: the box itself, no kvmi-vm (smoke test of the box).
run_probe() {
	if grep -qw svm /proc/cpuinfo; then
		result ok "probe: CPU has svm"
	else
		result "not ok" "probe: CPU has svm"
	fi
	if dmesg | grep -qi 'Nested Paging enabled'; then
		result ok "probe: kvm_amd uses nested paging"
	else
		result "not ok" "probe: kvm_amd uses nested paging"
	fi
	for f in /kvmi/bin/* /kvmi/guests/* /kvmi/tests/*; do
		[ -e "$f" ] && comment "payload file: $f"
	done
	if [ -n "$PROBE_CMD" ]; then       # a debugging aid: KVMI_BOX_PROBE_CMD
		comment "probe: \$ $PROBE_CMD"
		sh -c "$PROBE_CMD" 2>&1 | while IFS= read -r l; do comment "probe| $l"; done
	fi
	return 0
}

# Relays a TAP stream (stdin) into the box's TAP stream, renumbering its
# results and prefixing their descriptions with $1.  Runs in a pipeline
# subshell, so it writes its counters to $2 for the caller.
relay_tap() {
	name=$1 state=$2 plan="" seen=0
	while IFS= read -r line; do
		case "$line" in
		"ok"|"ok "*|"not ok"|"not ok "*)
			case "$line" in
			ok*) st=ok rest=${line#ok} ;;
			*) st="not ok" rest=${line#not ok} ;;
			esac
			rest=${rest# }
			num=${rest%%[!0-9]*}
			rest=${rest#"$num"}
			rest=${rest# }
			rest=${rest#- }
			seen=$((seen + 1))
			result "$st" "$name: ${rest:-test $seen}"
			;;
		1..*) plan=${line#1..}; plan=${plan%%[!0-9]*}; comment "$name: plan $line" ;;
		"Bail out!"*) result "not ok" "$name: $line" ;;
		"#"*) echo "KVMBOX-TAP: $line" ;;
		*) comment "$name| $line" ;;
		esac
	done
	echo "N=$N PASS=$PASS FAIL=$FAIL SKIP=$SKIP plan='$plan' seen=$seen" >"$state"
}

# Runs a command that prints TAP and relays its results under NAME:
# run_tap NAME COMMAND [ARG...].  A wrong plan, no output or a non-zero exit
# status without a failing test adds a failing result.
run_tap() {
	tap_name=$1
	shift
	t0=$(uptime_s)
	f0=$FAIL
	{ "$@"; echo $? >/tmp/tap.rc; } 2>&1 | tr -d '\r' |
		tee /tmp/tap.out | relay_tap "$tap_name" /tmp/tap.state
	# shellcheck disable=SC1091
	. /tmp/tap.state
	rc=$(cat /tmp/tap.rc)
	comment "$tap_name: exit status $rc, $(elapsed "$t0" "$(uptime_s)")s"
	if [ "$plan" = 0 ] && [ "$seen" -eq 0 ]; then
		result ok "$tap_name # SKIP $(grep -m1 '^1\.\.0' /tmp/tap.out | sed -n 's/.*# *[Ss][Kk][Ii][Pp] *//p')"
	elif [ -n "$plan" ] && [ "$plan" != "$seen" ]; then
		result "not ok" "$tap_name: plan announced $plan tests, $seen ran"
	elif [ -z "$plan" ] && [ "$seen" -eq 0 ]; then
		result "not ok" "$tap_name: no TAP output"
	elif [ "$rc" -ne 0 ] && [ "$FAIL" -eq "$f0" ]; then
		result "not ok" "$tap_name: exit status $rc without a failing test"
	fi
}

# tests (a): the integration suite's guest tests on this real KVM.
run_guest_tests() {
	script=/kvmi/tests/guest-tests.sh
	if [ ! -f "$script" ]; then
		result ok "guest-tests # SKIP tests/integration/guest-tests.sh not in the box"
		return 0
	fi
	run_tap guest-tests sh "$script" /kvmi/bin/kvmi-vm /kvmi/guests
}

# tests (a'): statically linked TAP test programs (build-box.sh --tap-prog),
# each run as PROGRAM KVMI_VM GUEST_DIR like the Meson tests on the host,
# then TAP_PROG_ARGS (KVMI_BOX_TAP_ARGS; empty but for make soak-box).
run_tap_programs() {
	for p in /kvmi/tap/*; do
		[ -x "$p" ] || continue
		n=${p##*/}
		case "$n" in
		test_linux_cr3*) continue ;;   # npt=0 only (run_npt0_tests)
		test_linux_ptwalk*)            # the Linux guest, nested paging on
			run_tap "${n%-static}" "$p" /kvmi/bin/kvmi-vm /kvmi/linux
			continue ;;
		esac
		# shellcheck disable=SC2086   # TAP_PROG_ARGS is a list of words
		run_tap "${n%-static}" "$p" /kvmi/bin/kvmi-vm /kvmi/guests $TAP_PROG_ARGS
		# The introspection test again over AF_VSOCK (CID 1, loopback).
		case "$n" in
		test_introspect*) run_tap "${n%-static}-vsock" "$p" /kvmi/bin/kvmi-vm /kvmi/guests vsock ;;
		esac
	done
}

LINUX_VM_ARGS=""                # more kvmi-vm arguments (tests: the kvmi tool)
# Runs the Linux guest under kvmi-vm with console output (stdout+stderr)
# piped to the command given as arguments; sets LINUX_RC and LINUX_SECS.
run_linux_guest() {
	t0=$(uptime_s)
	# shellcheck disable=SC2086   # VM_EXTRA_ARGS is a list of words
	{ /kvmi/bin/kvmi-vm --kernel /kvmi/linux/vmlinuz \
		--initrd /kvmi/linux/guest-initrd.gz \
		--append "$GUEST_APPEND" --memory "$GUEST_MEMORY" \
		--timeout "$GUEST_TIMEOUT" --no-serial-input $VM_EXTRA_ARGS $LINUX_VM_ARGS </dev/null
	  echo $? >/tmp/linux.rc; } 2>&1 | "$@"
	LINUX_SECS=$(elapsed "$t0" "$(uptime_s)")
	LINUX_RC=$(cat /tmp/linux.rc)
}

linux_to_comments() {
	tee /tmp/linux.log | tr -d '\r' | while IFS= read -r l; do comment "linux| $l"; done
}

# The box kernel's KVM tracepoints: recorded while a guest runs, shown
# when it crashes or hangs (the kvm_exit before a triple fault has the guest's RIP).
TRACE=/sys/kernel/tracing
TRACE_EVENTS="kvm_exit kvm_inj_exception kvm_inj_virq kvm_apic_accept_irq kvm_pic_set_irq kvm_set_irq kvm_page_fault kvm_emulate_insn kvm_userspace_exit kvm_msr kvm_cr kvm_vcpu_wakeup"
trace_start() {
	mount -t tracefs tracefs "$TRACE" 2>/dev/null || true
	[ -f "$TRACE/trace" ] || return 0
	echo 8192 >"$TRACE/buffer_size_kb"
	echo >"$TRACE/trace"
	for e in $TRACE_EVENTS; do
		[ -f "$TRACE/events/kvm/$e/enable" ] && echo 1 >"$TRACE/events/kvm/$e/enable"
	done
	echo 1 >"$TRACE/tracing_on"
}
trace_stop() {
	[ -f "$TRACE/tracing_on" ] && echo 0 >"$TRACE/tracing_on"
	return 0
}
# Shows the last $1 trace lines as TAP comments, then names the functions at
# the guest RIPs seen most often.
trace_dump() {
	[ -f "$TRACE/trace" ] || return 0
	comment "linux: last KVM trace events of the box kernel:"
	grep -v '^#' "$TRACE/trace" | tail -n "$1" >/tmp/trace.txt
	while IFS= read -r l; do comment "trace| $l"; done </tmp/trace.txt
	grep -o 'rip 0xffffffff[0-9a-f]*' /tmp/trace.txt | sort | uniq -c | sort -rn |
		head -n 5 | while read -r count _ rip; do
			comment "linux: guest rip $rip ($count events) is at $(kernel_symbol "${rip#0x}")"
		done
}
# Kernel symbol+offset of address $1 (16 hex digits, no 0x), from the box's
# /proc/kallsyms: the guest runs the same kernel image and both use nokaslr.
# Equal-width hex strings compare like the numbers they spell.
kernel_symbol() {
	awk -v a="$1" '$1 <= a && $1 > best { best = $1; name = $3 }
		END {
			if (name == "") { print "?"; exit }
			off = ("0x" substr(a, 9)) - ("0x" substr(best, 9))
			printf "%s+0x%x\n", name, off
		}' /proc/kallsyms
}

# tests (c), during the same boot as (b): the kvmi tool (/kvmi/extra/
# kvmi-static, when the box has it) introspects the Linux guest.  kvmi-vm
# runs with --introspector-wait, so the tool watches MSR_LSTAR before the
# kernel's first instruction; the kernel's own LSTAR write must carry
# entry_SYSCALL_64.  Then the page holding jiffies is write-protected and
# the timer tick's writes must arrive as pre-write PF events at jiffies'
# guest-physical address; after LINUX_PF_LIFT events at jiffies itself
# (trace at=GPA: writes to other variables on the page are allowed but not
# counted) the tool lifts the protection and the boot goes on.  Symbol addresses come from
# the box's /proc/kallsyms (the same kernel image, both booted with nokaslr;
# the System.map in Debian's package is a placeholder).  With nokaslr the
# kernel image lies at __START_KERNEL_map = 0xffffffff80000000 + its
# physical address, so jiffies' GPA is its address minus that base.
LINUX_PF_LIFT=3
KVMI_LINUX_SOCK=/tmp/kvmi-linux.sock
linux_kvmi_start() {
	KVMI_PID=""
	[ -x /kvmi/extra/kvmi-static ] || return 0
	sym_lstar=$(awk '$3 == "entry_SYSCALL_64" { print $1; exit }' /proc/kallsyms)
	sym_jiffies=$(awk '$3 == "jiffies" { print $1; exit }' /proc/kallsyms)
	case "$sym_lstar$sym_jiffies" in
	""|*0000000000000000*) comment "linux: no kernel symbols in /proc/kallsyms"; return 0 ;;
	esac
	# jiffies' GPA: its address minus __START_KERNEL_map (low 32 bits suffice).
	low=${sym_jiffies#????????}
	gpa=$(printf '0x%x' $((0x$low - 0x80000000)))
	printf '%s\n' "wait-create" "msr watch lstar" "resume" \
		"trace msr count=1 seconds=60" "msr unwatch" \
		"protect -v 0 0x$sym_jiffies 8 r-x" \
		"trace pf lift=$LINUX_PF_LIFT at=$gpa until=lift seconds=60" \
		"trace unhook seconds=150" >/tmp/kvmi-linux.script
	rm -f "$KVMI_LINUX_SOCK"
	/kvmi/extra/kvmi-static -t 30 -f /tmp/kvmi-linux.script listen "unix:$KVMI_LINUX_SOCK" \
		>/tmp/kvmi-linux.out 2>/tmp/kvmi-linux.err &
	KVMI_PID=$!
	i=0
	while [ ! -S "$KVMI_LINUX_SOCK" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	LINUX_VM_ARGS="--introspector unix:$KVMI_LINUX_SOCK --introspector-wait --name linux-kvmi"
}
linux_kvmi_check() {
	[ -n "$KVMI_PID" ] || return 0
	wait "$KVMI_PID"
	krc=$?
	comment "linux: kvmi exit status $krc"
	while IFS= read -r l; do comment "kvmi| $l"; done </tmp/kvmi-linux.err
	grep -v '^{' /tmp/kvmi-linux.out | while IFS= read -r l; do comment "kvmi| $l"; done
	msr=$(grep '"event":"MSR".*"msr":"0xc0000082"' /tmp/kvmi-linux.out | head -n 1)
	comment "kvmi| $msr"
	new=$(printf '%s\n' "$msr" | sed -n 's/.*"new_value":"0x\([0-9a-f]*\)".*/\1/p')
	if [ -n "$new" ] && [ "$new" = "$sym_lstar" ]; then
		result ok "linux: the kernel's MSR_LSTAR write arrives as an MSR event with entry_SYSCALL_64 (0x$sym_lstar)"
	else
		result "not ok" "linux: the kernel's MSR_LSTAR write arrives as an MSR event with entry_SYSCALL_64 (0x$sym_lstar; got '${new:-no event}')"
	fi
	grep '"event":"PF"' /tmp/kvmi-linux.out >/tmp/kvmi-linux.pf
	total=$(grep -c . /tmp/kvmi-linux.pf)
	at=$(grep -c "\"access\":\"w\",\"gpa\":\"$gpa\"" /tmp/kvmi-linux.pf)
	head -n 3 /tmp/kvmi-linux.pf | while IFS= read -r l; do comment "kvmi| $l"; done
	lifted=$(grep -c '"reply":"lift"' /tmp/kvmi-linux.pf)
	grep '"reply":"lift"' /tmp/kvmi-linux.pf | while IFS= read -r l; do comment "kvmi| $l"; done
	comment "linux: $total PF events on the page of jiffies (0x$sym_jiffies, gpa $gpa), $at pre-write at jiffies, protection lifted: $lifted"
	if [ "$at" -ge "$LINUX_PF_LIFT" ] && [ "$lifted" -eq 1 ]; then
		result ok "linux: timer writes to jiffies arrive as pre-write PF events at its address (gpa $gpa), then the protection is lifted"
	else
		result "not ok" "linux: timer writes to jiffies arrive as pre-write PF events at its address (gpa $gpa; $at of $total events there, lifted $lifted)"
	fi
}

# tests (b): a real Linux kernel boots to init under kvmi-vm and resets.
run_linux_test() {
	if [ ! -x /kvmi/bin/kvmi-vm ]; then
		result "not ok" "linux: /kvmi/bin/kvmi-vm missing"
		return 0
	fi
	LINUX_VM_ARGS=""
	linux_kvmi_start
	trace_start
	run_linux_guest linux_to_comments
	trace_stop
	comment "linux: kvmi-vm exit status $LINUX_RC after ${LINUX_SECS}s (wall time in the box)"
	case "$LINUX_RC" in
	3|4|5) trace_dump 60 ;;         # guest crash or hang: what KVM saw last
	esac
	if grep -q 'KVMI-LINUX-GUEST-OK' /tmp/linux.log; then
		result ok "linux: Debian kernel boots to init under kvmi-vm (${LINUX_SECS}s)"
	else
		result "not ok" "linux: Debian kernel boots to init under kvmi-vm (no KVMI-LINUX-GUEST-OK; exit status $LINUX_RC)"
	fi
	if [ "$LINUX_RC" -eq 0 ]; then
		result ok "linux: reboot -f ends kvmi-vm with status 0"
	else
		result "not ok" "linux: reboot -f ends kvmi-vm with status 0 (got $LINUX_RC)"
	fi
	linux_kvmi_check
}

# tests (c): the second configuration, kvm_amd without nested paging: CR3
# writes exit to KVM there, so CR3 events must be available.
run_npt0_tests() {
	if ! rmmod kvm_amd 2>/tmp/rmmod.err || ! insmod /kvmi/modules/kvm-amd.ko npt=0 2>/tmp/insmod.err; then
		result "not ok" "npt0: reload kvm_amd with npt=0 ($(cat /tmp/rmmod.err /tmp/insmod.err 2>/dev/null))"
		return 0
	fi
	result ok "npt0: kvm_amd reloaded with npt=$(cat /sys/module/kvm_amd/parameters/npt)"
	if [ -x /kvmi/tap/test_cr_events-static ]; then
		run_tap test_cr_events-npt0 /kvmi/tap/test_cr_events-static /kvmi/bin/kvmi-vm /kvmi/guests
	fi
	if [ -x /kvmi/tap/test_linux_cr3-static ]; then
		run_tap test_linux_cr3-npt0 /kvmi/tap/test_linux_cr3-static /kvmi/bin/kvmi-vm /kvmi/linux
	fi
	# KVMI_BOX_NPT0_LINUX=1: the plain Linux boot again, to measure what
	# switching nested paging off costs (docs/limitations.md).
	if [ "$NPT0_LINUX" = 1 ]; then
		comment "npt0: the Linux guest again without introspection"
		run_linux_test
	fi
}

# demo: the demo guest's console, unprefixed.
run_demo() {
	if [ -f /kvmi/extra/demo-hook.sh ]; then
		# shellcheck disable=SC1091
		. /kvmi/extra/demo-hook.sh
	fi
	echo "KVMBOX-DEMO-BEGIN"
	run_linux_guest cat
	echo "KVMBOX-DEMO-END rc=$LINUX_RC seconds=$LINUX_SECS"
	if [ "$LINUX_RC" -eq 0 ]; then
		result ok "demo: Linux guest ran under kvmi-vm"
	else
		result "not ok" "demo: Linux guest ran under kvmi-vm (exit status $LINUX_RC)"
	fi
}

# ------------------------------------------------------------ main
if [ -n "$BOX_ENV" ]; then
	comment "box: environment $BOX_ENV"
	# shellcheck disable=SC2086   # BOX_ENV is a list of VAR=VALUE words
	export $BOX_ENV
fi
if setup_kvm; then
	case "$MODE" in
	probe) run_probe ;;
	tests) run_guest_tests; run_tap_programs; run_linux_test; run_npt0_tests ;;
	tap) run_tap_programs ;;
	demo) run_demo ;;
	esac
fi
comment "box: done after $(uptime_s)s of box uptime"
finish
EOF
	chmod 755 "$1"
}

# Copies file $1 into the box tree under /kvmi/$2/.
add_file() {
	[ -f "$1" ] || die "no such file: $1"
	mkdir -p "$BOX/kvmi/$2"
	cp "$1" "$BOX/kvmi/$2/"
}

build_box_initrd() {
	BOX=$WORK/box
	skeleton "$BOX"
	mkdir -p "$BOX/kvmi/bin" "$BOX/kvmi/guests" "$BOX/kvmi/tests" \
		"$BOX/kvmi/modules" "$BOX/kvmi/linux"
	for m in $MODULES; do
		cp "$KDIR/modules/$m.ko" "$BOX/kvmi/modules/"
	done
	if [ "$MODE" != probe ]; then
		[ -n "$VM" ] || die "mode $MODE needs --vm (statically linked kvmi-vm)"
		[ -f "$VM" ] || die "no such file: $VM"
		if file "$VM" 2>/dev/null | grep -q 'dynamically linked'; then
			die "$VM is dynamically linked; the box has no libc"
		fi
		cp "$VM" "$BOX/kvmi/bin/kvmi-vm"
		chmod 755 "$BOX/kvmi/bin/kvmi-vm"
		cp "$KDIR/vmlinuz" "$BOX/kvmi/linux/vmlinuz"
		cp "$OUTDIR/guest-initrd.gz" "$BOX/kvmi/linux/guest-initrd.gz"
	fi
	if [ -n "$GUEST_DIR" ]; then
		for f in "$GUEST_DIR"/*.elf; do
			[ -f "$f" ] && add_file "$f" guests
		done
	fi
	for f in $TAP_PROGS; do
		[ -f "$f" ] || die "no such file: $f"
		mkdir -p "$BOX/kvmi/tap"
		cp "$f" "$BOX/kvmi/tap/"
		chmod 755 "$BOX/kvmi/tap/${f##*/}"
	done
	if [ -n "$TESTS_DIR" ]; then
		for f in "$TESTS_DIR"/*.sh; do
			[ -f "$f" ] && add_file "$f" tests
		done
	fi
	for f in "$@"; do
		case "$f" in
		*/demo-hook.sh|demo-hook.sh) add_file "$f" extra ;;
		*.elf) add_file "$f" guests ;;
		*.sh) add_file "$f" tests ;;
		*) add_file "$f" extra ;;
		esac
	done
	# Settings the box's /init sources (values quoted for sh).
	q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
	{
		echo "MODE=$(q "$MODE")"
		echo "MODULES=$(q "$MODULES")"
		echo "GUEST_APPEND=$(q "$GUEST_APPEND")"
		echo "GUEST_MEMORY=$(q "$GUEST_MEMORY")"
		echo "GUEST_TIMEOUT=$(q "$GUEST_TIMEOUT")"
		echo "VM_EXTRA_ARGS=$(q "$VM_EXTRA_ARGS")"
		echo "PROBE_CMD=$(q "$PROBE_CMD")"
		echo "NPT0_LINUX=$(q "$NPT0_LINUX")"
		echo "TAP_PROG_ARGS=$(q "$TAP_PROG_ARGS")"
		echo "BOX_ENV=$(q "$BOX_ENV")"
	} >"$BOX/kvmi/box.conf"
	write_box_init "$BOX/init"
	pack "$BOX" "$OUTDIR/initrd.gz"
}

# ---------------------------------------------------------------- main
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (install busybox-static)"
command -v cpio >/dev/null || die "cpio missing"
mkdir -p "$OUTDIR"
get_kernel
cp "$KDIR/vmlinuz" "$OUTDIR/vmlinuz.tmp" && mv "$OUTDIR/vmlinuz.tmp" "$OUTDIR/vmlinuz"
build_guest_initrd
if [ "$MODE" != guest ]; then
	build_box_initrd "$@"
fi
echo "$(cat "$KDIR/$STAMP") $MODE" >"$OUTDIR/box.info"
if [ "$MODE" = guest ]; then
	say "built the Linux guest in $OUTDIR with $(cat "$KDIR/$STAMP")"
else
	say "built the $MODE box in $OUTDIR with $(cat "$KDIR/$STAMP")"
fi
