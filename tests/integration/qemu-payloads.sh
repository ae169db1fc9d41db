#!/bin/sh
# qemu-payloads.sh — boots the test payloads of tests/guest under stock
# qemu-system-x86_64 with our boot shim (NAME.bios, tests/guest/qemu) and no
# library of ours, and checks what they print on COM1 and the exit status.
# Prints TAP.
#
# Usage: qemu-payloads.sh GUEST_DIR
#
# Under QEMU the runtime prints each ucall on COM1 as the line kvmi-vm logs
# for it (without "kvmi-vm: "), ends with "qemu-boot: exit status S" and
# leaves through isa-debug-exit: QEMU's status is (S << 1) | 1, S being
# kvmi-vm's status (tests/guest/README.md has the whole mapping).  QEMU's
# own exit 0 is a reset or a triple fault (-no-reboot turns both into a
# shutdown).  Each QEMU is killed after KVMI_QEMU_TIMEOUT seconds.
#
# Environment:
#   KVMI_QEMU            the QEMU binary (default qemu-system-x86_64)
#   KVMI_QEMU_TIMEOUT    seconds before a QEMU is killed (default 60)
set -u

if [ $# -ne 1 ]; then
	echo "usage: qemu-payloads.sh GUEST_DIR" >&2
	exit 2
fi
GUEST_DIR=$1
QEMU=${KVMI_QEMU:-qemu-system-x86_64}
TIMEOUT=${KVMI_QEMU_TIMEOUT:-60}

if ! command -v "$QEMU" >/dev/null 2>&1; then
	echo "1..0 # SKIP $QEMU is not installed"
	exit 0
fi
if ! command -v timeout >/dev/null 2>&1; then
	echo "1..0 # SKIP no timeout(1) to bound the QEMU runs"
	exit 0
fi
. "$(dirname "$0")/tap-lib.sh"
skip_without_kvm

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvmi-qemu-payloads.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# The COM1 log takes the role of kvmi-vm's stderr in the shared helpers
# (expect_line & co.); QEMU's own output is only shown when a test fails.
ERR=$TMP/com1
ERR_NAME=COM1
OUT=$TMP/qemu-output
OUT_NAME="QEMU's output"
WHY=$TMP/why

# fail, expect_rc, expect_line/match/no_match, expect_stdout*, result and
# run_tests are shared with guest-tests.sh.

# ------------------------------------------------------------------ helpers
# run GUEST MACHINE SMP [QEMU options...]: one QEMU run (256 MiB unless an
# -m follows); sets RC to QEMU's exit status (124: killed on timeout).
run() {
	bios=$GUEST_DIR/$1.bios
	machine=$2
	smp=$3
	shift 3
	: >"$WHY"
	: >"$OUT"
	: >"$ERR"
	if [ ! -f "$bios" ]; then
		echo "boot image $bios is missing" >>"$WHY"
		RC=-1
		return
	fi
	timeout -k 5 "$TIMEOUT" "$QEMU" -M "$machine" -enable-kvm -cpu EPYC -m 256 \
		-smp "$smp" -nodefaults -nographic -serial "file:$ERR" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-bios "$bios" -no-reboot "$@" </dev/null >"$OUT" 2>&1
	RC=$?
	# -cpu EPYC names features this host may lack: one warning each.
	grep -v "host doesn't support requested feature" "$OUT" >"$TMP/filtered"
	mv "$TMP/filtered" "$OUT"
	if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
		fail "QEMU killed after ${TIMEOUT}s"
	fi
}

# expect_status S: the runtime ended the VM with kvmi-vm status S: its last
# line says so and QEMU's exit status is (S << 1) | 1.
expect_status() {
	expect_rc $(( (($1 << 1) | 1) & 255 ))
	last=$(tail -n 1 "$ERR")
	[ "$last" = "qemu-boot: exit status $1" ] ||
		fail "last COM1 line is \"$last\", expected \"qemu-boot: exit status $1\""
}

# expect_shutdown: QEMU stopped on its own (reset or triple fault with
# -no-reboot): status 0 and no exit line from the runtime.
expect_shutdown() {
	expect_rc 0
	expect_no_match '^qemu-boot: exit status'
}

# ------------------------------------------------------------------ tests
t_hello() {
	run hello q35 1
	expect_status 0
	expect_line "Hello from the kvmi guest runtime"
	expect_line "vcpu 0: done"
	result "hello: COM1 line and GUEST_DONE, QEMU status 1"
}

# multi_vcpu MACHINE N
t_multi_vcpu() {
	run multi_vcpu "$1" "$2"
	expect_status 0
	i=0
	while [ "$i" -lt "$2" ]; do
		expect_line "vcpu $i: sync $i"
		expect_line "vcpu $i: print: vcpu $i of $2: counter ${2}00000"
		expect_line "vcpu $i: done"
		i=$((i + 1))
	done
	expect_no_match "^vcpu $2:"
	result "multi_vcpu ($1, -smp $2): every vCPU started by INIT-SIPI-SIPI syncs, counts in ring 3, is done"
}
t_multi_vcpu_2() { t_multi_vcpu q35 2; }
t_multi_vcpu_4() { t_multi_vcpu q35 4; }
t_multi_vcpu_pc() { t_multi_vcpu pc 2; }

t_ring3() {
	run ring3 q35 1
	expect_status 0
	expect_line "ring3: COM1 from ring 3"
	expect_line "vcpu 0: sync 1"
	expect_line "vcpu 0: print: ring3: cpl 3"
	expect_line "vcpu 0: sync 2"
	expect_line "vcpu 0: sync 3"
	expect_match '^vcpu 0: print: ring3: back in ring 0, result 0x[0-9a-f]*$'
	expect_line "vcpu 0: done"
	result "ring3: 10M-iteration loop and ucalls in ring 3 (COM1 lines), back to ring 0"
}

t_printf() {
	run printf q35 1
	expect_status 0
	expect_line "vcpu 0: print: printf: -7 42 beef deadbeefcafe 123456789abcdef0 str c 0x100000"
	expect_line "vcpu 0: done"
	expect_no_match 'assertion failed'
	result "printf: guest vsnprintf known answers and GUEST_PRINTF"
}

t_expected_exception() {
	run expected_exception q35 1
	expect_status 0
	expect_line "vcpu 0: sync 1"
	expect_line "vcpu 0: sync 2"
	expect_line "vcpu 0: done"
	expect_no_match 'unexpected exception'
	result "expected_exception: UD in ring 0 and 3, GP from a denied port in ring 3, reach test handlers"
}

t_unexpected_exception() {
	run unexpected_exception q35 1
	expect_status 3
	expect_line "vcpu 0: sync 1"
	expect_match '^vcpu 0: unexpected exception 6 (error 0x0) at rip 0x[0-9a-f][0-9a-f]* cs 0x10$'
	expect_no_match 'vcpu 0: done'
	result "unexpected_exception: an unhandled UD is reported, status 3 (QEMU 7)"
}

t_assert_fail() {
	run assert_fail q35 1
	expect_status 3
	expect_match '^vcpu 0: assertion failed: assert_fail\.c:[0-9][0-9]*: 1 == 2: 0x1 != 0x2$'
	expect_no_match 'vcpu 0: done'
	result "assert_fail: GUEST_ASSERT_EQ(1, 2) reported with file:line, status 3 (QEMU 7)"
}

t_poweroff() {
	run poweroff q35 1
	expect_status 7
	expect_line "powering off with status 7"
	expect_line "guest powered off (status 7)"
	result "poweroff: power_off(7) is status 7 (QEMU 15)"
}

t_serial() {
	run serial q35 1
	expect_status 0
	{
		printf '%s\n' "serial: line 1 from ring 0"
		printf '%s\n' "serial: line 2: -7 42 beef str c|   12|34   |000ab"
		printf '\n'
		i=0
		while [ "$i" -lt 100 ]; do
			printf '0123456789'
			i=$((i + 1))
		done
		printf '\n'
		printf '%s\n' "serial: line 4 from ring 3"
		printf '%s\n' "serial: last line"
		printf '%s\n' "vcpu 0: done"
		printf '%s\n' "qemu-boot: exit status 0"
	} >"$TMP/serial.expected"
	cmp -s "$TMP/serial.expected" "$ERR" || fail "COM1 differs from the expected text"
	result "serial: COM1 output from ring 0 and 3 is byte-exact, ucall lines after it"
}

t_reset() {
	run reset q35 1
	expect_shutdown
	expect_line "resetting"
	result "reset: port 0xcf9 is QEMU's reset, a shutdown with -no-reboot (status 0)"
}

t_triple_fault() {
	run triple_fault q35 1
	expect_shutdown
	expect_line "vcpu 0: sync 1"
	expect_no_match 'vcpu 0: done'
	expect_no_match 'assertion failed'
	result "triple_fault: QEMU resets, a shutdown with -no-reboot (status 0, kvmi-vm's 4)"
}

# entry_state MACHINE SMP MIB
t_entry_state() {
	run entry_state "$1" "$2" -m "$3"
	expect_status 0
	i=0
	while [ "$i" -lt "$2" ]; do
		expect_line "vcpu $i: print: entry_state: vcpu $i of $2, ram $3 MiB, platform qemu"
		expect_line "vcpu $i: done"
		i=$((i + 1))
	done
	expect_no_match 'assertion failed'
	result "entry_state ($1, -smp $2, -m $3): guest_abi.h's CR0/CR3/CR4/EFER, GDT, page tables, RDI/RDX, R8 marker"
}
t_entry_state_q35() { t_entry_state q35 2 512; }
t_entry_state_pc() { t_entry_state pc 4 128; }

t_mem_recreate() {
	run mem_recreate q35 1
	expect_status 3
	expect_line "vcpu 0: sync 1"
	expect_line "vcpu 0: assertion failed: KVMI_PORT_MEM_RECREATE: kvmi-vm only, there is no such device under QEMU"
	expect_no_match 'vcpu 0: sync 2'
	result "mem_recreate: reported as unsupported under QEMU, status 3; port 0x518 untouched"
}

t_ucall_reply() {
	run ucall_reply q35 1
	expect_status 3
	expect_line "vcpu 0: sync 1"
	expect_line "vcpu 0: assertion failed: ucall 256 needs a reply from kvmi-vm; there is no VMM under QEMU"
	result "ucall_reply: a ucall that needs the VMM's answer is an assertion failure, status 3"
}

t_too_many_vcpus() {
	run hello q35 17
	expect_status 3
	expect_line "vcpu 16: assertion failed: guest runtime: more vCPUs than its limit (GUEST_MAX_VCPUS)"
	result "too_many_vcpus: the runtime refuses a 17th vCPU, status 3"
}

TESTS="hello printf multi_vcpu_2 multi_vcpu_4 multi_vcpu_pc ring3 expected_exception
unexpected_exception assert_fail poweroff serial reset triple_fault entry_state_q35
entry_state_pc mem_recreate ucall_reply too_many_vcpus"

# shellcheck disable=SC2086  # word splitting wanted
run_tests $TESTS
