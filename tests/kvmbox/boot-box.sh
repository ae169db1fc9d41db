#!/bin/sh
# boot-box.sh — boots a real-KVM box built by build-box.sh.
#
# Usage: boot-box.sh [--timeout SECS] OUTDIR
#   Runs QEMU on OUTDIR/vmlinuz and OUTDIR/initrd.gz; the box's serial
#   console goes to stdout, QEMU's own messages to OUTDIR/qemu.stderr.
#   The box's second UART (ttyS1, box-init.sh's heartbeat) goes to
#   OUTDIR/heartbeat.log, QEMU's monitor to a socket named in OUTDIR/monitor.path and
#   its pid to OUTDIR/qemu.pid: run-box.sh's stall watchdog uses all three.
#   Exit status: QEMU's (0 after the box powered off), 124 on timeout.
#
# Environment:
#   KVMI_QEMU       QEMU binary (default qemu-system-x86_64)
#   KVMI_BOX_SMP    CPUs of the box (default 1, see below)
#   KVMI_BOX_ACCEL  QEMU accelerator (default tcg)
#   KVMI_QEMU_ARGS  more QEMU arguments, e.g. "-d cpu_reset -D /tmp/qemu.log"
#
# Why one CPU: with QEMU 7.2 (Debian 12) and `-smp 2`, the emulated SVM is
# not reliable under load.  Measured with the Linux-guest test: multi-threaded
# TCG (the default for -smp 2) lost the box to an L1 triple fault or the
# nested guest to a spurious KVM_EXIT_SHUTDOWN in about half of the runs;
# `-accel tcg,thread=single -smp 2` hung the nested guest in a spinlock in
# 2 of 8 runs; `-smp 1` passed 12 of 12.  Guests with several vCPUs still
# run (kvm_amd time-slices them).
set -eu

TIMEOUT=900
if [ "${1:-}" = --timeout ]; then
	TIMEOUT=${2:?}
	shift 2
fi
[ $# -eq 1 ] || { echo "usage: boot-box.sh [--timeout SECS] OUTDIR" >&2; exit 2; }
OUTDIR=$1

QEMU=${KVMI_QEMU:-qemu-system-x86_64}
SMP=${KVMI_BOX_SMP:-1}
ACCEL=${KVMI_BOX_ACCEL:-tcg}
QEMU_ARGS=${KVMI_QEMU_ARGS:-}
# The distro box's disk (build-box.sh --distro writes its path to
# OUTDIR/box.disk): virtio-blk, snapshot=on so the cached image never changes.
if [ -f "$OUTDIR/box.disk" ]; then
	QEMU_ARGS="-drive file=$(cat "$OUTDIR/box.disk"),if=virtio,format=raw,snapshot=on,cache=unsafe $QEMU_ARGS"
fi

# The box's kernel command line: quiet (its init keeps the console for the
# results), panic=-1 with -no-reboot turns a panic into a QEMU exit, and
# nokaslr lets the box name guest RIPs (see build-box.sh).
# -nic none skips the iPXE option ROM; stdin is /dev/null so that QEMU leaves
# the terminal alone and Ctrl-C stops it.
MON=$OUTDIR/monitor.sock
[ ${#MON} -le 100 ] || MON=/tmp/kvmbox-monitor.$$     # sun_path holds 108 bytes
rm -f "$OUTDIR/heartbeat.log" "$MON" "$OUTDIR/qemu.pid"
echo "$MON" >"$OUTDIR/monitor.path"
# shellcheck disable=SC2086  # QEMU_ARGS is a list of words
exec timeout --foreground -k 10 "$TIMEOUT" "$QEMU" -accel "$ACCEL" \
	-cpu EPYC,+svm,+npt -smp "$SMP" -m 2048 \
	-nographic -no-reboot -nic none \
	-serial stdio -serial "file:$OUTDIR/heartbeat.log" \
	-monitor "unix:$MON,server=on,wait=off" -pidfile "$OUTDIR/qemu.pid" \
	-kernel "$OUTDIR/vmlinuz" -initrd "$OUTDIR/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet nokaslr" $QEMU_ARGS \
	</dev/null 2>"$OUTDIR/qemu.stderr"
