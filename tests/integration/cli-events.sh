#!/bin/sh
# cli-events.sh — the `kvmi` tool's event verbs against a real guest: the
# "introspect" payload (tests/guest/tests/introspect.c) under kvmi-vm
# --introspector-wait.  One script of verbs holds the vCPU before its first
# instruction (wait-create), single-steps it (step), watches MSR 0x175
# (msr watch), write-protects the payload's mailbox page (protect) and
# traces the pre-write PF events until the protection is lifted (trace
# lift=N), injects the #UD the payload expects, lets the payload go, and
# vetoes its MSR write (trace veto).  The checks look at the JSON lines and
# at what the guest printed: after a veto it reads back the old value; a
# second run without veto reads back the new one.  Prints TAP.
#
# Usage: cli-events.sh KVMI_CLI VMM GUEST_DIR
# VMM is kvmi-vm, or kvmi-qemu: then the payload's boot image runs under
# stock QEMU ($KVMI_TEST_QEMU, default qemu-system-x86_64), as in
# tests/integration/itest.c, and its exit status reads as kvmi-vm's.
set -u

if [ $# -ne 3 ]; then
	echo "usage: cli-events.sh KVMI_CLI VMM GUEST_DIR" >&2
	exit 2
fi
CLI=$1
VM=$2
GUEST=$3/introspect.elf
QEMU=
ENTRY='0x1000[0-9a-f][0-9a-f]'   # one instruction into the payload
CONSOLE_NAME=vm.log               # where the guest's lines go
if [ "${VM##*/}" = kvmi-qemu ]; then
	QEMU=${KVMI_TEST_QEMU:-qemu-system-x86_64}
	GUEST=$3/introspect.bios
	ENTRY='0xf[0-9a-f][0-9a-f][0-9a-f]' # the reset vector's jump into the boot code
	CONSOLE_NAME=serial.log         # apart from QEMU's messages
	if ! command -v "$QEMU" >/dev/null 2>&1; then
		echo "1..0 # SKIP $QEMU missing"
		exit 0
	fi
fi

if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "1..0 # SKIP no usable /dev/kvm"
	exit 0
fi
if [ ! -f "$GUEST" ]; then
	echo "1..0 # SKIP $GUEST missing"
	exit 0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvmi-cli-events.XXXXXX") || exit 1
CONSOLE=$TMP/$CONSOLE_NAME
# Both processes run in the background (a trap runs while the shell waits
# for them) and are killed on every way out.
CLI_PID=
VM_PID=
cleanup() {
	for p in $CLI_PID $VM_PID; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

N=0
FAILED=0
ok() {   # ok CONDITION-EXIT-STATUS DESCRIPTION
	N=$((N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $N - $2"
	else
		FAILED=$((FAILED + 1))
		echo "not ok $N - $2"
	fi
}
check() {   # check DESCRIPTION COMMAND...
	desc=$1
	shift
	"$@" >/dev/null 2>&1
	ok $? "$desc"
}
dump() {     # the logs, as TAP comments
	for f in "$TMP"/kvmi.out "$TMP"/kvmi.err "$TMP"/vm.log "$TMP"/serial.log; do
		[ -f "$f" ] || continue
		echo "# --- ${f##*/}"
		cut -c 1-240 "$f" | sed 's/^/#   /'
	done
}

# run NAME SCRIPT: kvmi listening with SCRIPT, kvmi-vm on the payload.
run() {
	sock=$TMP/$1.sock
	"$CLI" -t 20 -f - listen "unix:$sock" >"$TMP/kvmi.out" 2>"$TMP/kvmi.err" <<-EOS &
	$2
	EOS
	CLI_PID=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	if [ -n "$QEMU" ]; then
		"$VM" --introspector "unix:$sock" --introspector-wait -- "$QEMU" -M q35 -enable-kvm \
			-cpu EPYC -m 256 -smp 1 -nodefaults -nographic -serial "file:$CONSOLE" -monitor none \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 -bios "$GUEST" -no-reboot \
			-action panic=shutdown -name kvmi-vm >"$TMP/vm.log" 2>&1 </dev/null &
	else
		"$VM" --guest "$GUEST" --introspector "unix:$sock" --introspector-wait \
			--timeout 60 --no-serial-input >"$TMP/vm.log" 2>&1 </dev/null &
	fi
	VM_PID=$!
	wait "$VM_PID"
	VM_RC=$?
	VM_PID=
	# QEMU: the guest's status S is (S << 1) | 1; 0 is a crash
	if [ -n "$QEMU" ]; then
		if [ "$VM_RC" -eq 0 ]; then VM_RC=4; elif [ $((VM_RC & 1)) -eq 1 ]; then VM_RC=$((VM_RC >> 1)); fi
	fi
	wait "$CLI_PID"
	CLI_RC=$?
	CLI_PID=
}

# jsonl EVENT: the JSON lines of that event.
jsonl() { grep "^{\"guest\":\"kvmi-vm\",\"event\":\"$1\"" "$TMP/kvmi.out"; }

echo "1..14"
SCRIPT='wait-create
step 0 3
msr watch sysenter_esp
resume
protect 0x300000 0x1000 r-x
trace pf lift=4 until=lift seconds=30
inject 0 6
write 0x300008 0d60000000000000
trace msr veto count=1 seconds=30'
run veto "$SCRIPT"
ok "$((VM_RC + CLI_RC))" "the guest ends normally (kvmi-vm $VM_RC), the script succeeds (kvmi $CLI_RC)"
check "wait-create holds the vCPU before its first instruction" \
	grep -q '^holding 1 vCPU at CREATE_VCPU' "$TMP/kvmi.out"
check "step 0 3: three SINGLESTEP lines, the last one held for resume" \
	sh -c "[ \$(grep -c '\"event\":\"SINGLESTEP\".*\"failed\":false' '$TMP/kvmi.out') -eq 3 ] &&
		grep '\"event\":\"SINGLESTEP\"' '$TMP/kvmi.out' | tail -n 1 | grep -q '\"reply\":\"hold\"'"
check "the first step is the guest's first instruction (rip $ENTRY after it)" \
	sh -c "grep -m1 '\"event\":\"SINGLESTEP\"' '$TMP/kvmi.out' | grep -q '\"rip\":\"$ENTRY\"'"
check "msr watch names the MSR" grep -q '^watching MSR writes: sysenter_esp (0x175) on 1 vCPU' "$TMP/kvmi.out"
check "protect reports the page and the rights" \
	grep -q '^protect gpa 0x300000-0x300fff (1 page): r-x' "$TMP/kvmi.out"
jsonl PF >"$TMP/pf" 2>/dev/null
check "PF events traced (the payload's set-up, then its loop)" sh -c "[ \$(wc -l <'$TMP/pf') -ge 4 ]"
check "every PF event is a pre-write on the mailbox page" \
	sh -c "! grep -v '\"access\":\"w\",\"gpa\":\"0x300[0-9a-f]*\",\"gva\":null' '$TMP/pf'"
check "some of them come from ring 3 (the payload's counting loop)" grep -q '"cpl":3' "$TMP/pf"
lifted=$(tail -n 1 "$TMP/pf" | sed -n 's/.*"gpa":"\(0x[0-9a-f]*\)".*"reply":"lift".*/\1/p')
check "the 4th event at one address lifts the protection, and trace stops there (lift=4 until=lift)" \
	sh -c "[ -n '$lifted' ] && [ \$(grep -c '\"gpa\":\"$lifted\"' '$TMP/pf') -eq 4 ] &&
		[ \$(grep -c '\"reply\":\"lift\"' '$TMP/pf') -eq 1 ]"
check "the MSR write arrives as an MSR event: 0x175, 0x0 -> 0x1234, vetoed" \
	sh -c "grep -q '\"event\":\"MSR\".*\"msr\":\"0x175\",\"msr_name\":\"sysenter_esp\",\"old_value\":\"0x0\",\"new_value\":\"0x1234\",\"reply\":\"veto\"' '$TMP/kvmi.out'"
check "the guest reads back the old value: the write was vetoed" grep -q 'print: msr 0x175 = 0x0$' "$CONSOLE"
[ "$FAILED" -eq 0 ] || dump

# The same without veto: the write goes through.  (The PF events tell that
# the payload reached its counting loop, where it takes the #UD and "go".)
SCRIPT='wait-create
msr watch 0x175
resume
protect 0x300000 0x1000 ---
trace pf lift=4 until=lift seconds=30
inject 0 6
write 0x300008 0d60000000000000
trace msr count=1 seconds=30'
run plain "$SCRIPT"
ok "$((VM_RC + CLI_RC))" "without veto: the guest ends normally (kvmi-vm $VM_RC, kvmi $CLI_RC)"
check "without veto: the MSR event is continued and the guest reads back 0x1234" \
	sh -c "grep -q '\"msr\":\"0x175\".*\"reply\":\"continue\"' '$TMP/kvmi.out' &&
		grep -q 'print: msr 0x175 = 0x1234$' '$CONSOLE'"
[ "$FAILED" -eq 0 ] || dump
[ "$FAILED" -eq 0 ]
