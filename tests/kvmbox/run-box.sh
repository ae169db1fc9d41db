#!/bin/sh
# run-box.sh — builds and boots the real-KVM box, reports its results as TAP.
#
# The box (built by build-box.sh, described in docs/test-hosts.md) is a
# Debian kernel under QEMU TCG with an emulated AMD SVM CPU; kvm_amd inside
# it gives a real /dev/kvm.  The box prints its results on the serial
# console as "KVMBOX-TAP: <tap line>", ends with "KVMBOX-SUMMARY: ..." and
# powers off.  This script streams the console to a log file and re-emits the
# box's TAP lines on stdout, so Meson can run it with protocol 'tap'.  If the
# summary never comes (timeout, kernel panic, QEMU failure) it adds a failing
# test with the tail of the console log and exits non-zero.
#
# Usage: run-box.sh [options] [FILE...]
#   --mode MODE      tests (default), tap (only the --tap-prog programs, with
#                    KVMI_BOX_TAP_ARGS; make soak-box), qemu (the Linux guest
#                    under stock QEMU in the distro box), libvmi (LibVMI's
#                    examples against a libvirt domain in the distro box;
#                    builds LibVMI with tests/libvmi/build-libvmi.sh, SKIP
#                    without its archives) or probe (box smoke test, no
#                    kvmi-vm); see build-box.sh
#   --vm FILE        statically linked kvmi-vm (env KVMI_VM_STATIC)
#   --tests-dir DIR  integration scripts (*.sh) for /kvmi/tests
#                    (default: tests/integration of this source tree)
#   --guest-dir DIR  guest payloads (*.elf) for /kvmi/guests
#   --tap-prog FILE  static TAP test program to run in the box (repeatable)
#   --distro IMAGE   the distro box's disk ('build', and the default for mode
#                    qemu: built or taken from the cache by build-distro.sh)
#   --outdir DIR     where the box and its logs go (default: build/kvmbox)
#   --log FILE       console log (default: OUTDIR/console.log)
#   --timeout SECS   overall limit for the QEMU run (default 900,
#                    env KVMI_BOX_TIMEOUT)
#   FILE...          passed to build-box.sh (*.elf guests, *.sh tests, ...)
# A box whose heartbeat stops for KVMI_BOX_STALL seconds (default 150) is
# ended and booted again, KVMI_BOX_STALL_RETRIES times (default 1), so the
# box's TAP is printed when a boot ends, not line by line as it comes.
# Environment: KVMI_CACHE, KVMI_BOX_TAP_ARGS and the KVMI_LINUX_* variables
# of build-box.sh;
# KVMI_QEMU, KVMI_BOX_SMP, KVMI_BOX_ACCEL, KVMI_QEMU_ARGS of boot-box.sh.
#
# Exit status: 0 all box tests passed (or skipped), 1 otherwise.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRCROOT=$(cd "$HERE/../.." && pwd)

MODE=tests
VM=${KVMI_VM_STATIC:-}
TESTS_DIR=${KVMI_TESTS_DIR:-$SRCROOT/tests/integration}
GUEST_DIR=${KVMI_GUEST_DIR:-}
TAP_ARGS=""
DISTRO=""
OUTDIR=$SRCROOT/build/kvmbox
LOG=
TIMEOUT=${KVMI_BOX_TIMEOUT:-900}
QEMU=${KVMI_QEMU:-qemu-system-x86_64}

usage() { sed -n '2,/^set -eu/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "$1"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--mode) MODE=${2:?}; shift 2 ;;
	--vm) VM=${2:?}; shift 2 ;;
	--tests-dir) TESTS_DIR=${2:?}; shift 2 ;;
	--guest-dir) GUEST_DIR=${2:?}; shift 2 ;;
	--tap-prog) TAP_ARGS="$TAP_ARGS --tap-prog ${2:?}"; shift 2 ;;
	--distro) DISTRO=${2:?}; shift 2 ;;
	--outdir) OUTDIR=${2:?}; shift 2 ;;
	--log) LOG=${2:?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	-h|--help) usage 0 ;;
	--) shift; break ;;
	-*) echo "run-box.sh: unknown option $1" >&2; usage 1 ;;
	*) break ;;
	esac
done
LOG=${LOG:-$OUTDIR/console.log}

# Milliseconds since the epoch (GNU date).
now_ms() { date +%s%3N; }
# Seconds between two now_ms values, one decimal.
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
# Prints file $1's last $2 lines as TAP comments.
tail_comments() {
	[ -f "$1" ] || return 0
	tail -n "$2" "$1" | tr -d '\r\033' | awk '{ print "#   | " $0 }'
}

# ---------------------------------------------------------------- skips
case "$MODE" in
tests|tap|probe|qemu|libvmi) ;;
*) echo "run-box.sh: mode must be tests, tap, qemu, libvmi or probe" >&2; exit 1 ;;
esac
if ! command -v "$QEMU" >/dev/null 2>&1; then
	echo "1..0 # SKIP $QEMU not installed (Debian package qemu-system-x86)"
	exit 0
fi
for tool in cpio gzip; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool not installed"
		exit 0
	fi
done
if [ ! -x "${KVMI_BUSYBOX:-/bin/busybox}" ]; then
	echo "1..0 # SKIP no static busybox (Debian package busybox-static)"
	exit 0
fi
if [ "$MODE" != probe ] && [ -z "$VM" ]; then
	echo "1..0 # SKIP no statically linked kvmi-vm (configure with -Dstatic_binaries=true)"
	exit 0
fi

# ---------------------------------------------------------------- build
T_START=$(now_ms)
mkdir -p "$OUTDIR"
if [ "$MODE" = libvmi ]; then
	# LibVMI + libkvmi (cached), staged for /opt/vmi; the box gets its bin
	# and lib as a tar (build-box.sh copies plain files only).
	rc=0
	VMI_STAGE=$(sh "$SRCROOT/tests/libvmi/build-libvmi.sh" 2>"$OUTDIR/libvmi-build.log") || rc=$?
	if [ "$rc" -eq 77 ]; then
		echo "1..0 # SKIP $(tail -n 1 "$OUTDIR/libvmi-build.log")"
		exit 0
	elif [ "$rc" -ne 0 ]; then
		echo "1..1"
		echo "not ok 1 - kvmbox: build LibVMI (tests/libvmi/build-libvmi.sh failed)"
		tail_comments "$OUTDIR/libvmi-build.log" 30
		exit 1
	fi
	tar -C "$VMI_STAGE" --exclude='*.a' --exclude='*.la' --exclude=pkgconfig -cf "$OUTDIR/vmi.tar" bin lib
	set -- "$@" "$OUTDIR/vmi.tar"
	echo "# kvmbox: LibVMI from $VMI_STAGE ($(secs "$T_START" "$(now_ms)")s)"
fi
case "$MODE" in qemu|libvmi) [ -n "$DISTRO" ] || DISTRO=build ;; esac
if [ "$DISTRO" = build ]; then
	if ! command -v mmdebstrap >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
		echo "1..0 # SKIP the distro box needs root and mmdebstrap (Debian package mmdebstrap)"
		exit 0
	fi
	if ! DISTRO=$(sh "$HERE/build-distro.sh" 2>"$OUTDIR/distro.log"); then
		echo "1..1"
		echo "not ok 1 - kvmbox: build the distro box's root file system (build-distro.sh failed)"
		tail_comments "$OUTDIR/distro.log" 30
		exit 1
	fi
fi
# shellcheck disable=SC2086  # TAP_ARGS: option words and paths
set -- --mode "$MODE" ${DISTRO:+--distro "$DISTRO"} ${VM:+--vm "$VM"} ${TESTS_DIR:+--tests-dir "$TESTS_DIR"} \
	${GUEST_DIR:+--guest-dir "$GUEST_DIR"} $TAP_ARGS "$OUTDIR" "$@"
if ! sh "$HERE/build-box.sh" "$@" >"$OUTDIR/build.log" 2>&1; then
	echo "1..1"
	echo "not ok 1 - kvmbox: build the box (build-box.sh failed)"
	tail_comments "$OUTDIR/build.log" 30
	exit 1
fi
T_BUILT=$(now_ms)
echo "# kvmbox: box built in $(secs "$T_START" "$T_BUILT")s ($(cat "$OUTDIR/box.info"))"

# ---------------------------------------------------------------- boot
# Re-emits the box's TAP lines as they arrive; notes when the box's init
# starts (host wall time since QEMU started).
relay() {
	while IFS= read -r line; do
		line=$(printf '%s' "$line" | tr -d '\r')
		case "$line" in
		*KVMBOX-TAP:\ *)
			printf '%s\n' "${line#*KVMBOX-TAP: }" ;;
		*KVMBOX-BOOT:\ *)
			echo "# kvmbox: box booted in $(secs "$T_BUILT" "$(now_ms)")s (host wall):" \
				"${line#*KVMBOX-BOOT: }" ;;
		*KVMBOX-SUMMARY:\ *)
			echo "# kvmbox: ${line#*KVMBOX-SUMMARY: }" ;;
		esac
	done
}

# Asks the box's QEMU monitor (boot-box.sh's socket) one command; prints
# its answer.  Best effort: needs python3 (Meson brings it).
monitor_cmd() {
	command -v python3 >/dev/null 2>&1 || { echo "(no python3 to ask the monitor)"; return 0; }
	python3 - "$(cat "$OUTDIR/monitor.path" 2>/dev/null)" "$1" <<'PY' 2>&1 || true
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
def answer():
    buf = b""
    try:
        while not buf.endswith(b"(qemu) "):
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except socket.timeout:
        pass
    return buf
answer()
s.sendall(sys.argv[2].encode() + b"\n")
out = answer().decode(errors="replace").replace("\r", "")
print("\n".join(l for l in out.splitlines()[1:] if not l.startswith("(qemu)")))
PY
}

# The stall watchdog (runs beside QEMU): once the box's init has started its
# heartbeat (box-init.sh, every 10 s on ttyS1), STALL seconds without one mean
# the box's kernel no longer runs its timers.  Seen under QEMU TCG with the
# emulated SVM (tests/kvmbox/README.md).  Writes OUTDIR/stall.txt (the
# heartbeat's age, QEMU's view of the CPU) and ends QEMU.
watchdog() {
	while [ ! -f "$OUTDIR/qemu.rc" ]; do
		sleep 5
		[ -s "$OUTDIR/heartbeat.log" ] || continue
		age=$(( $(date +%s) - $(stat -c %Y "$OUTDIR/heartbeat.log") ))
		[ "$age" -ge "$STALL" ] || continue
		{
			echo "no heartbeat from the box for ${age}s (last: $(tail -n 1 "$OUTDIR/heartbeat.log" | tr -d '\r'))"
			echo "QEMU monitor, info status:"; monitor_cmd "info status"
			echo "QEMU monitor, info registers:"; monitor_cmd "info registers"
		} >"$OUTDIR/stall.txt"
		kill "$(cat "$OUTDIR/qemu.pid")" 2>/dev/null || true
		return 0
	done
}

# One boot of the box: the console to $LOG, the box's TAP to OUTDIR/tap.txt.
boot_once() {
	rm -f "$OUTDIR/qemu.rc" "$OUTDIR/stall.txt"
	watchdog &
	wd=$!
	{
		rc=0
		sh "$HERE/boot-box.sh" --timeout "$TIMEOUT" "$OUTDIR" || rc=$?
		echo "$rc" >"$OUTDIR/qemu.rc"
	} | tee "$LOG" | relay >"$OUTDIR/tap.txt"
	kill "$wd" 2>/dev/null || true
	wait "$wd" 2>/dev/null || true
}

# A stalled box is booted again (KVMI_BOX_STALL_RETRIES times, default 1):
# the stall is the emulator's, and its tests never ran to an answer.  The
# stalled attempt's TAP and the watchdog's findings stay in the output as
# comments.  The TAP of the last attempt is printed when it ends.
STALL=${KVMI_BOX_STALL:-150}
RETRIES=${KVMI_BOX_STALL_RETRIES:-1}
attempt=1
while :; do
	boot_once
	[ -f "$OUTDIR/stall.txt" ] || break
	echo "# kvmbox: attempt $attempt: the box stalled; $(head -n 1 "$OUTDIR/stall.txt")"
	sed 's/^/#   | /' "$OUTDIR/stall.txt" | sed -n '2,24p'
	cp "$OUTDIR/stall.txt" "$OUTDIR/stall-$attempt.txt"
	echo "# kvmbox: attempt $attempt's TAP so far:"
	sed 's/^/#   | /' "$OUTDIR/tap.txt"
	cp "$LOG" "$LOG.stalled-$attempt"
	[ "$attempt" -le "$RETRIES" ] || break
	attempt=$((attempt + 1))
	echo "# kvmbox: booting the box again (attempt $attempt; console of the stalled one: $LOG.stalled-$((attempt - 1)))"
	T_BUILT=$(now_ms)
done
cat "$OUTDIR/tap.txt"
T_END=$(now_ms)
QRC=$(cat "$OUTDIR/qemu.rc" 2>/dev/null || echo 255)
echo "# kvmbox: QEMU exit status $QRC; box run $(secs "$T_BUILT" "$T_END")s," \
	"whole run $(secs "$T_START" "$T_END")s (host wall); console log: $LOG"

# ---------------------------------------------------------------- verdict
summary=$(tr -d '\r' <"$LOG" | sed -n 's/^.*KVMBOX-SUMMARY: //p' | tail -n 1)
if [ -n "$summary" ]; then
	failed=$(printf '%s\n' "$summary" | sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p')
	[ "${failed:-1}" -eq 0 ] && exit 0
	exit 1
fi

# No summary: the box died.  Say why, then close the TAP stream.
ran=$(tr -d '\r' <"$LOG" | grep -cE 'KVMBOX-TAP: (not )?ok ' || true)
if [ -f "$OUTDIR/stall.txt" ]; then
	why="the box stalled $attempt time(s): $(head -n 1 "$OUTDIR/stall.txt")"
elif [ "$QRC" -eq 124 ] || [ "$QRC" -eq 137 ]; then
	why="timed out after ${TIMEOUT}s"
elif grep -q 'Kernel panic' "$LOG"; then
	why="box kernel panic"
elif ! grep -q 'KVMBOX-BOOT:' "$LOG"; then
	why="box never reached its init (QEMU status $QRC)"
else
	why="box stopped without a summary (QEMU status $QRC)"
fi
n=$((ran + 1))
echo "not ok $n - kvmbox: box run completes ($why)"
echo "# last lines of the console ($LOG):"
tail_comments "$LOG" 40
if [ -s "$OUTDIR/qemu.stderr" ]; then
	echo "# QEMU stderr:"
	grep -v "TCG doesn't support requested feature" "$OUTDIR/qemu.stderr" |
		tail -n 10 | sed 's/^/#   | /' || true
fi
echo "1..$n"
exit 1
