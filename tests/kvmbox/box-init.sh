#!/bin/busybox sh
# box-init.sh — /init of the real-KVM box (build-box.sh copies it into the
# box and writes /kvmi/box.conf next to it).  Runs in busybox sh as PID 1
# inside QEMU: loads kvm_amd, runs the payload of its mode, reports, powers off.
#
# Its output protocol on the serial console, parsed by run-box.sh and
# run-demo.sh:
#   KVMBOX-BOOT: ...         box reached /init (uptime), once
#   KVMBOX-TAP: <tap line>   one line of the box's TAP stream (plan at the end)
#   KVMBOX-DEMO-BEGIN / KVMBOX-DEMO-END rc=N seconds=S
#                            the demo guest's console lies in between
#   KVMBOX-SUMMARY: N passed, M failed, K skipped
# then the box powers off.
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -t 1 ] || exec </dev/console >/dev/console 2>&1
dmesg -n 1                       # keep kernel messages off our TAP lines
# shellcheck disable=SC1091       # written by build-box.sh
. /kvmi/box.conf

# A heartbeat on the second UART (boot-box.sh: OUTDIR/heartbeat.log) tells
# run-box.sh's stall watchdog that the box's kernel still runs its timers.
heartbeat() {
	while :; do
		echo "alive $(cut -d' ' -f1 /proc/uptime)" >/dev/ttyS1
		sleep 10
	done
}
[ -c /dev/ttyS1 ] && heartbeat </dev/null >/dev/null 2>&1 &

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
	# The distro box: its root file system mounted for the command.
	if [ -n "$DISK_MODULES" ]; then distro_mount || true; fi
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

LINUX_VM_ARGS=""                # more introspection arguments (tests: the kvmi tool)
LINUX_FRONTEND=kvmi-vm          # or qemu: stock QEMU with libkvmi-qemu.so (box-distro.sh)
LINUX_VCPUS=1
# Runs the Linux guest under the frontend with console output (stdout+stderr)
# piped to the command given as arguments; sets LINUX_RC and LINUX_SECS.
run_linux_guest() {
	t0=$(uptime_s)
	# shellcheck disable=SC2086   # VM_EXTRA_ARGS is a list of words
	{ if [ "$LINUX_FRONTEND" = qemu ]; then
		distro_qemu_linux $LINUX_VM_ARGS
	  else
		/kvmi/bin/kvmi-vm --kernel /kvmi/linux/vmlinuz \
			--initrd /kvmi/linux/guest-initrd.gz --vcpus "$LINUX_VCPUS" \
			--append "$GUEST_APPEND" --memory "$GUEST_MEMORY" \
			--timeout "$GUEST_TIMEOUT" --no-serial-input $VM_EXTRA_ARGS $LINUX_VM_ARGS
	  fi </dev/null
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
# kvmi-static, when the box has it) introspects the Linux guest.  The VMM
# runs with --introspector-wait, so the tool watches MSR_LSTAR before the
# kernel's first instruction; each vCPU's own LSTAR write (the boot CPU's,
# then each secondary's as it comes online) must carry entry_SYSCALL_64.
# Then, with every vCPU up: the page holding jiffies is write-protected and
# the timer tick's writes must arrive as pre-write PF events at jiffies'
# guest-physical address; after LINUX_PF_LIFT events at jiffies itself
# (trace at=GPA: writes to other variables on the page are allowed but not
# counted) the tool lifts the protection; it reads linux_banner at its
# virtual address (TRANSLATE_GVA + READ_PHYSICAL), pauses every vCPU and
# reads each one's registers, resumes, and waits for UNHOOK at the guest's
# end.  Symbol addresses come from the box's /proc/kallsyms (the same kernel
# image, both booted with nokaslr; the System.map in Debian's package is a
# placeholder).  With nokaslr the kernel image lies at __START_KERNEL_map =
# 0xffffffff80000000 + its physical address, so jiffies' GPA is its address
# minus that base.
LINUX_PF_LIFT=3
KVMI_LINUX_SOCK=/tmp/kvmi-linux.sock
linux_kvmi_start() {
	KVMI_PID=""
	[ -x /kvmi/extra/kvmi-static ] || return 0
	sym_lstar=$(awk '$3 == "entry_SYSCALL_64" { print $1; exit }' /proc/kallsyms)
	sym_jiffies=$(awk '$3 == "jiffies" { print $1; exit }' /proc/kallsyms)
	sym_banner=$(awk '$3 == "linux_banner" { print $1; exit }' /proc/kallsyms)
	case "$sym_lstar$sym_jiffies$sym_banner" in
	""|*0000000000000000*) comment "linux: no kernel symbols in /proc/kallsyms"; return 0 ;;
	esac
	# jiffies' GPA: its address minus __START_KERNEL_map (low 32 bits suffice).
	low=${sym_jiffies#????????}
	gpa=$(printf '0x%x' $((0x$low - 0x80000000)))
	{
		printf '%s\n' "wait-create" "msr watch lstar" "resume" \
			"trace msr count=$LINUX_VCPUS seconds=90" "msr unwatch" \
			"protect -v 0 0x$sym_jiffies 8 r-x" \
			"trace pf lift=$LINUX_PF_LIFT at=$gpa until=lift seconds=60" \
			"string 0 0x$sym_banner 200" "pause"
		v=0
		while [ "$v" -lt "$LINUX_VCPUS" ]; do echo "regs $v"; v=$((v + 1)); done
		printf '%s\n' "resume" "trace unhook seconds=150"
	} >/tmp/kvmi-linux.script
	rm -f "$KVMI_LINUX_SOCK"
	/kvmi/extra/kvmi-static -t 30 -f /tmp/kvmi-linux.script listen "unix:$KVMI_LINUX_SOCK" \
		>/tmp/kvmi-linux.out 2>/tmp/kvmi-linux.err &
	KVMI_PID=$!
	i=0
	while [ ! -S "$KVMI_LINUX_SOCK" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	LINUX_VM_ARGS="--introspector unix:$KVMI_LINUX_SOCK --introspector-wait"
	[ "$LINUX_FRONTEND" = qemu ] || LINUX_VM_ARGS="$LINUX_VM_ARGS --name linux-kvmi"
}
# check OK DESCRIPTION: one TAP result, named after the frontend.
linux_result() {
	if [ "$1" = 1 ]; then result ok "$LINUX_TAG: $2"; else result "not ok" "$LINUX_TAG: $2"; fi
}
linux_kvmi_check() {
	[ -n "$KVMI_PID" ] || return 0
	wait "$KVMI_PID"
	krc=$?
	comment "$LINUX_TAG: kvmi exit status $krc"
	while IFS= read -r l; do comment "kvmi| $l"; done </tmp/kvmi-linux.err
	grep -v '^{' /tmp/kvmi-linux.out | while IFS= read -r l; do comment "kvmi| $l"; done
	grep '"event":"MSR".*"msr":"0xc0000082"' /tmp/kvmi-linux.out >/tmp/kvmi-linux.msr
	while IFS= read -r l; do comment "kvmi| $l"; done </tmp/kvmi-linux.msr
	good=$(grep -c "\"new_value\":\"0x$sym_lstar\"" /tmp/kvmi-linux.msr)
	vcpus=$(sed -n 's/.*"vcpu":\([0-9]*\).*/\1/p' /tmp/kvmi-linux.msr | sort -u | grep -c .)
	ok=0; [ "$good" -eq "$LINUX_VCPUS" ] && [ "$vcpus" -eq "$LINUX_VCPUS" ] && ok=1
	linux_result $ok "each vCPU's MSR_LSTAR write arrives as an MSR event with entry_SYSCALL_64 (0x$sym_lstar; $good events from $vcpus of $LINUX_VCPUS vCPUs)"
	grep '"event":"PF"' /tmp/kvmi-linux.out >/tmp/kvmi-linux.pf
	total=$(grep -c . /tmp/kvmi-linux.pf)
	at=$(grep -c "\"access\":\"w\",\"gpa\":\"$gpa\"" /tmp/kvmi-linux.pf)
	head -n 3 /tmp/kvmi-linux.pf | while IFS= read -r l; do comment "kvmi| $l"; done
	lifted=$(grep -c '"reply":"lift"' /tmp/kvmi-linux.pf)
	comment "$LINUX_TAG: $total PF events on the page of jiffies (0x$sym_jiffies, gpa $gpa), $at pre-write at jiffies, protection lifted: $lifted"
	ok=0; [ "$at" -ge "$LINUX_PF_LIFT" ] && [ "$lifted" -eq 1 ] && ok=1
	linux_result $ok "timer writes to jiffies arrive as pre-write PF events at its address (gpa $gpa; $at of $total there), then the protection is lifted"
	ok=0; grep -q "^gva 0x$sym_banner (gpa .*): \"Linux version $(uname -r) " /tmp/kvmi-linux.out && ok=1
	linux_result $ok "linux_banner read at 0x$sym_banner (TRANSLATE_GVA + READ_PHYSICAL) says 'Linux version $(uname -r)'"
	regs=0 v=0
	while [ "$v" -lt "$LINUX_VCPUS" ]; do
		grep -q "^vcpu $v, " /tmp/kvmi-linux.out && grep -A5 "^vcpu $v, " /tmp/kvmi-linux.out | grep -q '^rip 0xffffffff' &&
			regs=$((regs + 1))
		v=$((v + 1))
	done
	ok=0; grep -q "^paused $LINUX_VCPUS vCPU" /tmp/kvmi-linux.out && [ "$regs" -eq "$LINUX_VCPUS" ] && ok=1
	linux_result $ok "pause stops all $LINUX_VCPUS vCPUs; each one's registers read (kernel RIP on $regs)"
	ok=0; grep -q '"event":"UNHOOK"' /tmp/kvmi-linux.out && [ "$krc" -eq 0 ] && ok=1
	linux_result $ok "the tool gets UNHOOK at the guest's end and exits 0 (status $krc)"
}

# tests (b): a real Linux kernel boots to init under the frontend and resets.
run_linux_test() {
	LINUX_TAG=linux
	[ "$LINUX_FRONTEND" = qemu ] && LINUX_TAG=linux-qemu
	if [ "$LINUX_FRONTEND" != qemu ] && [ ! -x /kvmi/bin/kvmi-vm ]; then
		result "not ok" "linux: /kvmi/bin/kvmi-vm missing"
		return 0
	fi
	LINUX_VM_ARGS=""
	linux_kvmi_start
	trace_start
	run_linux_guest linux_to_comments
	trace_stop
	comment "$LINUX_TAG: $LINUX_FRONTEND exit status $LINUX_RC after ${LINUX_SECS}s (wall time in the box)"
	case "$LINUX_RC" in
	3|4|5) trace_dump 60 ;;         # guest crash or hang: what KVM saw last
	esac
	ok=0; grep -q 'KVMI-LINUX-GUEST-OK' /tmp/linux.log && ok=1
	linux_result $ok "Debian kernel boots to init under $LINUX_FRONTEND (${LINUX_SECS}s, exit status $LINUX_RC)"
	ok=0; [ "$LINUX_RC" -eq 0 ] && ok=1
	linux_result $ok "reboot -f ends $LINUX_FRONTEND with status 0 (got $LINUX_RC)"
	if [ "$LINUX_VCPUS" -gt 1 ]; then
		ran=$(sed -n 's/^cpus-ran: *//p' /tmp/linux.log | tr -d '\r')
		want=$(seq -s ' ' 0 $((LINUX_VCPUS - 1)))
		ok=0; [ "$ran" = "$want" ] && ok=1
		linux_result $ok "the guest runs a process on each of its $LINUX_VCPUS vCPUs (cpus-ran: '$ran')"
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
# shellcheck disable=SC1091     # the distro box's part (build-box.sh --distro)
[ -f /kvmi/box-distro.sh ] && . /kvmi/box-distro.sh
# shellcheck disable=SC1091     # mode libvmi's part (LibVMI under libvirt)
[ -f /kvmi/box-libvmi.sh ] && . /kvmi/box-libvmi.sh
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
	qemu) run_qemu_mode ;;
	libvmi) run_libvmi_mode ;;
	esac
fi
comment "box: done after $(uptime_s)s of box uptime"
finish
