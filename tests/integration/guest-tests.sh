#!/bin/sh
# guest-tests.sh — runs the test payloads of tests/guest under kvmi-vm on a
# real /dev/kvm and checks exit status, COM1 output (stdout) and the VMM's
# ucall reports (stderr) against src/vmm/guest_abi.h.  Prints TAP.
#
# Usage: guest-tests.sh KVMI_VM_BINARY GUEST_DIR
#
# POSIX sh: it also runs under busybox sh in the real-KVM box
# (tests/kvmbox), so only plain busybox applets are used, and kvmi-vm's own
# --timeout bounds every run.
#
# Environment:
#   KVMI_GUEST_TIMEOUT   --timeout of each run in seconds (default 60)
set -u

if [ $# -ne 2 ]; then
	echo "usage: guest-tests.sh KVMI_VM_BINARY GUEST_DIR" >&2
	exit 2
fi
VM=$1
GUEST_DIR=$2
TIMEOUT=${KVMI_GUEST_TIMEOUT:-60}

. "$(dirname "$0")/tap-lib.sh"
skip_without_kvm

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvmi-guest-tests.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

OUT=$TMP/stdout
ERR=$TMP/stderr
WHY=$TMP/why

# ------------------------------------------------------------------ helpers
# fail, expect_rc, expect_line/match/no_match, expect_stdout*, result and
# run_tests are shared with qemu-payloads.sh.

# run GUEST [kvmi-vm options...]: one kvmi-vm run; sets RC.
run() {
	guest=$GUEST_DIR/$1.elf
	shift
	: >"$WHY"
	: >"$OUT"
	: >"$ERR"
	if [ ! -f "$guest" ]; then
		echo "guest payload $guest is missing" >>"$WHY"
		RC=-1
		return
	fi
	"$VM" --timeout "$TIMEOUT" --guest "$guest" "$@" </dev/null >"$OUT" 2>"$ERR"
	RC=$?
}

# Every stderr line is a VMM message (catches sanitizer reports, crashes).
expect_clean_stderr() {
	if grep -v -q -e '^kvmi-vm: ' "$ERR"; then
		fail "stderr has lines that are not kvmi-vm messages"
	fi
}

# ------------------------------------------------------------------ tests
t_hello() {
	run hello
	expect_rc 0
	expect_stdout "Hello from the kvmi guest runtime"
	expect_line "kvmi-vm: vcpu 0: done"
	expect_clean_stderr
	result "hello: COM1 line and GUEST_DONE"
}

# multi_vcpu N
t_multi_vcpu() {
	nr=$1
	run multi_vcpu --vcpus "$nr"
	expect_rc 0
	i=0
	while [ "$i" -lt "$nr" ]; do
		expect_line "kvmi-vm: vcpu $i: sync $i"
		expect_line "kvmi-vm: vcpu $i: print: vcpu $i of $nr: counter ${nr}00000"
		expect_line "kvmi-vm: vcpu $i: done"
		i=$((i + 1))
	done
	expect_no_match "^kvmi-vm: vcpu $nr:"
	expect_stdout
	expect_clean_stderr
	result "multi_vcpu: $nr vCPUs sync, count atomically in ring 3, done"
}
t_multi_vcpu_2() { t_multi_vcpu 2; }
t_multi_vcpu_4() { t_multi_vcpu 4; }

t_ring3() {
	run ring3
	expect_rc 0
	expect_stdout "ring3: COM1 from ring 3" "ring3: COM1 from ring 3"
	expect_line "kvmi-vm: vcpu 0: sync 1"
	expect_line "kvmi-vm: vcpu 0: print: ring3: cpl 3"
	expect_line "kvmi-vm: vcpu 0: sync 2"
	expect_line "kvmi-vm: vcpu 0: sync 3"
	expect_match '^kvmi-vm: vcpu 0: print: ring3: back in ring 0, result 0x[0-9a-f]*$'
	expect_line "kvmi-vm: vcpu 0: done"
	expect_clean_stderr
	result "ring3: 10M-iteration loop and ucalls in ring 3, back to ring 0"
}

t_expected_exception() {
	run expected_exception
	expect_rc 0
	expect_line "kvmi-vm: vcpu 0: sync 1"
	expect_line "kvmi-vm: vcpu 0: sync 2"
	expect_line "kvmi-vm: vcpu 0: done"
	expect_no_match 'unexpected exception'
	expect_clean_stderr
	result "expected_exception: UD in ring 0 and 3, GP from a denied port in ring 3, reach test handlers"
}

t_unexpected_exception() {
	run unexpected_exception
	expect_rc 3
	expect_line "kvmi-vm: vcpu 0: sync 1"
	expect_match '^kvmi-vm: vcpu 0: unexpected exception 6 (error 0x0) at rip 0x[0-9a-f][0-9a-f]* cs 0x10$'
	expect_no_match 'vcpu 0: done'
	expect_no_match 'assertion failed'
	expect_clean_stderr
	result "unexpected_exception: an unhandled UD is reported, exit status 3"
}

t_assert_fail() {
	run assert_fail
	expect_rc 3
	expect_match '^kvmi-vm: vcpu 0: assertion failed: assert_fail\.c:[0-9][0-9]*: 1 == 2: 0x1 != 0x2$'
	expect_no_match 'vcpu 0: done'
	expect_clean_stderr
	result "assert_fail: GUEST_ASSERT_EQ(1, 2) reported with file:line, exit status 3"
}

t_triple_fault() {
	run triple_fault
	expect_rc 4
	expect_line "kvmi-vm: vcpu 0: sync 1"
	expect_line "kvmi-vm: vcpu 0: triple fault (KVM_EXIT_SHUTDOWN)"
	# The register dump follows the report.
	next=$(sed -n '/vcpu 0: triple fault (KVM_EXIT_SHUTDOWN)$/{n;p;}' "$ERR")
	case "$next" in
	*rip*) ;;
	*) fail "no register dump (with rip) right after the triple-fault line" ;;
	esac
	expect_clean_stderr
	result "triple_fault: empty IDT + fault gives KVM_EXIT_SHUTDOWN, exit status 4"
}

t_reset() {
	run reset
	expect_rc 0
	expect_stdout "resetting"
	expect_match '^kvmi-vm: guest requested reset via port 0xcf9'
	expect_clean_stderr
	result "reset: port 0xcf9 reset ends the VM, exit status 0"
}

t_poweroff() {
	run poweroff
	expect_rc 7
	expect_stdout "powering off with status 7"
	expect_line "kvmi-vm: guest powered off (status 7)"
	expect_clean_stderr
	result "poweroff: port 0x504 value 7 becomes the exit status"
}

t_serial() {
	run serial
	expect_rc 0
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
	} >"$TMP/serial.expected"
	expect_stdout_file "$TMP/serial.expected"
	expect_line "kvmi-vm: vcpu 0: done"
	expect_clean_stderr
	result "serial: COM1 output from ring 0 and 3 is byte-exact (incl. a 1000-byte line)"
}

t_printf() {
	run printf
	expect_rc 0
	expect_line "kvmi-vm: vcpu 0: print: printf: -7 42 beef deadbeefcafe 123456789abcdef0 str c 0x100000"
	expect_line "kvmi-vm: vcpu 0: done"
	expect_no_match 'assertion failed'
	expect_clean_stderr
	result "printf: guest vsnprintf known answers and GUEST_PRINTF"
}

t_timeout() {
	saved=$TIMEOUT
	TIMEOUT=2
	run spin
	TIMEOUT=$saved
	expect_rc 5
	expect_line "kvmi-vm: vcpu 0: sync 1"
	expect_match '^kvmi-vm: .*timeout'
	expect_clean_stderr
	result "timeout: a guest spinning in ring 3 is stopped by --timeout, exit status 5"
}

t_entry_state() {
	run entry_state --vcpus 2
	expect_rc 0
	for i in 0 1; do
		expect_line "kvmi-vm: vcpu $i: print: entry_state: vcpu $i of 2, ram 256 MiB, platform kvmi-vm"
		expect_line "kvmi-vm: vcpu $i: done"
	done
	expect_no_match 'assertion failed'
	expect_clean_stderr
	result "entry_state: CR0/CR3/CR4/EFER, GDT and page tables of guest_abi.h on every vCPU, R8 = 0"
}

t_mem_recreate() {
	run mem_recreate
	expect_rc 0
	expect_line "kvmi-vm: vcpu 0: sync 1"
	expect_line "kvmi-vm: vcpu 0: sync 2"
	expect_line "kvmi-vm: vcpu 0: done"
	expect_clean_stderr
	result "mem_recreate: KVMI_PORT_MEM_RECREATE re-creates RAM under a running guest"
}

t_ucall_reply() {
	run ucall_reply
	expect_rc 3
	expect_line "kvmi-vm: vcpu 0: sync 1"
	expect_line "kvmi-vm: vcpu 0: unknown ucall 256"
	expect_clean_stderr
	result "ucall_reply: a ucall no handler answers stops the VM, exit status 3"
}

t_too_many_vcpus() {
	run hello --vcpus 17
	expect_rc 3
	expect_line "kvmi-vm: vcpu 16: assertion failed: guest runtime: more vCPUs than its limit (GUEST_MAX_VCPUS)"
	expect_clean_stderr
	result "too_many_vcpus: the runtime refuses a 17th vCPU, exit status 3"
}

TESTS="hello multi_vcpu_2 multi_vcpu_4 ring3 expected_exception unexpected_exception
assert_fail triple_fault reset poweroff serial printf timeout entry_state mem_recreate
ucall_reply too_many_vcpus"

# shellcheck disable=SC2086  # word splitting wanted
run_tests $TESTS
