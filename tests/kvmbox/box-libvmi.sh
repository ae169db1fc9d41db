# box-libvmi.sh — mode libvmi of the box's /init (sourced by box-init.sh,
# needs box-distro.sh's chroot): LibVMI's unmodified examples against the
# Linux guest in a libvirt domain written as README.md tells users to.
#
# The staged /opt/vmi of tests/libvmi/build-libvmi.sh comes as
# /kvmi/extra/vmi.tar and is bind-mounted over /distro/opt/vmi.  libvmi.conf
# is generated here from the box's BTF and /proc/kallsyms (the box runs the
# guest's kernel image, both with nokaslr).  virtlogd and libvirtd run in the
# chroot; the domain boots /kvmi/linux/vmlinuz with 2 vCPUs, memfd RAM and
# libkvmi-qemu.so through <qemu:env>; LibVMI listens on LV_SOCK and the VM
# connects to it (the library retries with backoff up to 5 s, inside
# LibVMI's hard-coded 10 s wait).
#
# Memory comparison: the domain is suspended (virsh suspend: QEMU stops its
# vCPUs) before vmi-dump-memory runs and resumed only after the kvmi tool,
# connected next, has read the same 16 MiB with READ_PHYSICAL; both reads
# see one frozen guest, while either tool's own pause alone would let the
# guest run between the two sessions (the VM reconnects with backoff).
# Neither tool pauses through KVMI then (vmi-dump-memory --no-pause, kvmi
# without `pause`): a vCPU that QEMU holds stopped is not in KVM_RUN, so
# its PAUSE_VCPU event comes only when it runs again (as with the original
# KVMI), and LibVMI's resume waits for those events without end.

LV_DOM=linux-libvmi
LV_SOCK=/tmp/libvmi-kvmi.sock
LV_PROC=kvmiprobe        # the guest process vmi-process-list must list
LV_CONSOLE=/tmp/libvmi-guest.console
LV_MEMORY_MIB=128
LV_BIN=/opt/vmi/bin

lv_chroot() { chroot "$DISTRO" env LIBVIRT_DEFAULT_URI=qemu:///system HOME=/root "$@"; }
lv_virsh() { lv_chroot virsh -q "$@"; }
lv_check() { if [ "$1" = 1 ]; then result ok "libvmi: $2"; else result "not ok" "libvmi: $2"; fi; }

# Runs NAME TIMEOUT COMMAND... in the chroot: output in /tmp/lv-NAME.out
# (shown as comments), LV_RC, LV_SECS.
lv_run() {
	name=$1 limit=$2
	shift 2
	t0=$(uptime_s)
	lv_chroot timeout -k 5 "$limit" "$@" >"/tmp/lv-$name.out" 2>&1
	LV_RC=$?
	echo "$LV_RC" >"/tmp/lv-$name.rc"
	LV_SECS=$(elapsed "$t0" "$(uptime_s)")
	comment "libvmi: \$ $* -> exit status $LV_RC after ${LV_SECS}s"
	head -n 12 "/tmp/lv-$name.out" | tr -d '\r' | while IFS= read -r l; do comment "$name| $l"; done
}

# Waits up to $2 s for the guest console to hold $1 (grep -E pattern).
lv_wait_console() {
	i=0
	while [ "$i" -lt $(($2 * 2)) ]; do
		grep -qE "$1" "$LV_CONSOLE" 2>/dev/null && return 0
		sleep 0.5
		i=$((i + 1))
	done
	return 1
}

# The guest's heartbeat count; it grows while the guest runs.
lv_beats() { grep -c 'guest: alive' "$LV_CONSOLE" 2>/dev/null || echo 0; }

lv_domain_xml() {
	cat <<EOF
<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$LV_DOM</name>
  <memory unit='MiB'>$LV_MEMORY_MIB</memory>
  <vcpu>2</vcpu>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>EPYC</model></cpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>/kvmi/linux/vmlinuz</kernel>
    <initrd>/kvmi/linux/guest-initrd.gz</initrd>
    <cmdline>$GUEST_APPEND quiet kvmi.proc=$LV_PROC kvmi.linger=900</cmdline>
  </os>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <on_reboot>destroy</on_reboot>
  <devices>
    <serial type='file'><source path='$LV_CONSOLE'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:env name='LD_PRELOAD' value='/kvmi/extra/libkvmi-qemu.so'/>
    <qemu:env name='KVMI_QEMU_OPTIONS' value='--introspector unix:$LV_SOCK'/>
  </qemu:commandline>
</domain>
EOF
}

# /opt/vmi, libvmi.conf, libvirtd, the domain defined; 0 when ready.
libvmi_setup() {
	mkdir -p /tmp/vmi "$DISTRO/opt/vmi" "$DISTRO/etc/libvmi"
	if ! tar -xf /kvmi/extra/vmi.tar -C /tmp/vmi || ! mount --bind /tmp/vmi "$DISTRO/opt/vmi"; then
		result "not ok" "libvmi: /opt/vmi from vmi.tar"
		return 1
	fi
	lv_chroot sh /kvmi/tests/kallsyms-to-sysmap.sh /proc/kallsyms >"$DISTRO/etc/libvmi/System.map" 2>/tmp/lv-sysmap.err &&
		/kvmi/extra/btf-offsets-static --name "$LV_DOM" --sysmap /etc/libvmi/System.map \
			>"$DISTRO/etc/libvmi.conf" 2>>/tmp/lv-sysmap.err
	ok=$?
	while IFS= read -r l; do comment "libvmi.conf| $l"; done <"$DISTRO/etc/libvmi.conf"
	[ "$ok" -eq 0 ] || comment_tail /tmp/lv-sysmap.err 5
	lv_check "$([ "$ok" -eq 0 ] && echo 1)" "libvmi.conf from the kernel's BTF (btf-offsets) and System.map from /proc/kallsyms ($(grep -c . "$DISTRO/etc/libvmi/System.map") symbols)"
	[ "$ok" -eq 0 ] || return 1
	# libvirt's private /dev for QEMU (mount namespace) lacks /dev/kvm when
	# libvirtd runs in a chroot ("Could not access KVM kernel module"):
	# off in the box only (its disk is a snapshot; the cached image stays).
	echo 'namespaces = []' >>"$DISTRO/etc/libvirt/qemu.conf"
	t0=$(uptime_s)
	lv_chroot virtlogd -d && lv_chroot libvirtd -d
	i=0
	until lv_virsh version >/tmp/lv-version.out 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 60 ] || break
		sleep 1
	done
	lv_domain_xml >/tmp/libvmi-domain.xml
	lv_virsh define /tmp/libvmi-domain.xml >/tmp/lv-define.out 2>&1
	ok=$?
	comment_tail /tmp/lv-version.out 4
	comment_tail /tmp/lv-define.out 4
	lv_check "$([ "$ok" -eq 0 ] && echo 1)" "libvirtd runs and defines the domain (virsh define, $(elapsed "$t0" "$(uptime_s)")s)"
	return $ok
}

# Stops what libvmi_setup started (the box powers off next, but tidily).
libvmi_cleanup() {
	lv_virsh destroy "$LV_DOM" >/dev/null 2>&1
	lv_virsh undefine "$LV_DOM" >/dev/null 2>&1
	for p in libvirtd virtlogd; do
		pid=$(cat "$DISTRO/run/$p.pid" 2>/dev/null)
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	done
	sleep 1
	umount "$DISTRO/opt/vmi" 2>/dev/null
	return 0
}

# virsh start; waits for the guest's marker and its kvmi.proc line.
lv_start() {
	t0=$(uptime_s)
	: >"$LV_CONSOLE"             # QEMU appends to it: one boot per start
	if ! lv_virsh start "$LV_DOM" >/tmp/lv-start.out 2>&1; then
		comment_tail /tmp/lv-start.out 10
		return 1
	fi
	lv_wait_console 'kvmi-proc: .* pid [0-9]+' 90 && lv_wait_console 'guest: alive' 30
	rc=$?
	LV_PID=$(sed -n "s/^kvmi-proc: $LV_PROC pid \([0-9]*\).*/\1/p" "$LV_CONSOLE" | tr -d '\r' | tail -n 1)
	comment "libvmi: guest started in $(elapsed "$t0" "$(uptime_s)")s; $LV_PROC has pid ${LV_PID:-?}"
	[ "$rc" -eq 0 ] || comment_tail "$LV_CONSOLE" 20
	return $rc
}

# Whether the guest still runs: virsh domstate says running and the
# heartbeat count grows within 5 s.
lv_alive() {
	b0=$(lv_beats)
	sleep 5
	st=$(lv_virsh domstate "$LV_DOM" 2>&1 | head -n 1)
	[ "$st" = running ] && [ "$(lv_beats)" -gt "$b0" ]
}

# Bad input: vmi-process-list started before the VM (the domain defined, not
# running), then virsh start 2 s later.
lv_check_before_vm() {
	rm -f "$LV_SOCK"
	lv_run early 40 "$LV_BIN/vmi-process-list" -n "$LV_DOM" -s "$LV_SOCK" &
	early=$!
	sleep 2
	lv_start
	started=$?
	wait "$early"
	rc=$(cat /tmp/lv-early.rc)
	ok=0; [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && grep -q . /tmp/lv-early.out && ok=1
	lv_check $ok "started before the VM: vmi-process-list ends by itself with a message (status $rc: $(tail -n 1 /tmp/lv-early.out))"
	ok=0; [ "$started" -eq 0 ] && lv_alive && ok=1
	lv_check $ok "started before the VM: the domain boots and keeps running"
	return "$started"
}

# vmi-process-list lists init (pid 1) and LV_PROC with the guest's pid.
lv_check_process_list() {
	rm -f "$LV_SOCK"
	lv_run plist 60 "$LV_BIN/vmi-process-list" -n "$LV_DOM" -s "$LV_SOCK"
	ok=0; [ "$LV_RC" -eq 0 ] && grep -qE '^\[ *1\] init ' /tmp/lv-plist.out && ok=1
	lv_check $ok "vmi-process-list lists init with pid 1 (exit status $LV_RC, ${LV_SECS}s)"
	ok=0; [ -n "$LV_PID" ] && grep -qE "^\[ *$LV_PID\] $LV_PROC " /tmp/lv-plist.out && ok=1
	lv_check $ok "vmi-process-list lists $LV_PROC with the pid the guest printed (${LV_PID:-none})"
	ok=0; lv_alive && ok=1
	lv_check $ok "the guest keeps running after vmi-process-list (virsh domstate running, heartbeat)"
}

# Bad input: LibVMI told a socket the VM does not connect to.
lv_check_wrong_socket() {
	lv_run wrongsock 40 "$LV_BIN/vmi-process-list" -n "$LV_DOM" -s /tmp/no-such-vm.sock
	ok=0; [ "$LV_RC" -ne 0 ] && [ "$LV_RC" -ne 124 ] && [ "$LV_RC" -ne 137 ] &&
		grep -q 'Failed to init LibVMI library' /tmp/lv-wrongsock.out && ok=1
	lv_check $ok "wrong socket path: vmi-process-list fails by itself with 'Failed to init LibVMI library.' (status $LV_RC, ${LV_SECS}s)"
	rm -f /tmp/no-such-vm.sock
	ok=0; lv_alive && ok=1
	lv_check $ok "wrong socket path: the guest keeps running"
}

# Bytes vmi-dump-memory has written so far (wchar of its /proc/PID/io).
lv_dump_written() {
	pid=$(pidof vmi-dump-memory | cut -d' ' -f1)
	[ -n "$pid" ] && sed -n 's/^wchar: //p' "/proc/$pid/io" 2>/dev/null || echo 0
}

# Runs vmi-dump-memory (lv_run NAME, output file OUT) in the background
# until it has written at least $3 bytes, then interrupts it with SIGINT,
# which the example handles by stopping, resuming the VM and closing (its
# length is the VM's highest guest-physical address, 4 GiB with QEMU's
# BIOS ROM below 4 GiB: too long to dump in the box).
lv_dump_until() {
	name=$1 out=$2 want=$3
	rm -f "$LV_SOCK"
	lv_run "$name" 120 "$LV_BIN/vmi-dump-memory" --no-pause -k "$LV_SOCK" "$LV_DOM" "$out" &
	dumper=$!
	i=0
	while [ "$(lv_dump_written)" -lt "$want" ] && [ $i -lt 240 ]; do
		sleep 0.5; i=$((i + 1))
	done
	comment "libvmi: vmi-dump-memory wrote $(lv_dump_written) bytes after $((i / 2))s"
	LV_DUMP_PID=$(pidof vmi-dump-memory | cut -d' ' -f1) LV_DUMP_NAME=$name
}
lv_dump_stop() {
	[ -n "$LV_DUMP_PID" ] && kill -INT "$LV_DUMP_PID" 2>/dev/null
	wait "$dumper"
	LV_RC=$(cat "/tmp/lv-$LV_DUMP_NAME.rc")
}

# vmi-dump-memory's first 16 MiB equal READ_PHYSICAL's (kvmi tool), both
# taken while the domain is suspended.
lv_check_dump() {
	size=16777216
	ok=0; lv_virsh suspend "$LV_DOM" >/tmp/lv-suspend.out 2>&1 && ok=1
	lv_check $ok "virsh suspend"
	rm -f /tmp/libvmi-dump.raw
	lv_dump_until dump /tmp/libvmi-dump.raw "$size"
	lv_dump_stop
	got=$(stat -c %s /tmp/libvmi-dump.raw 2>/dev/null || echo 0)
	ok=0; [ "$LV_RC" -eq 0 ] && [ "$got" -ge "$size" ] && ok=1
	lv_check $ok "vmi-dump-memory dumps the guest's memory, ends cleanly on SIGINT ($got bytes, status $LV_RC)"
	rm -f "$LV_SOCK"
	t0=$(uptime_s)
	/kvmi/extra/kvmi-static -t 30 listen "unix:$LV_SOCK" "read 0 $size" \
		>/tmp/lv-kvmi-read.out 2>/tmp/lv-kvmi-read.err
	krc=$?
	comment "libvmi: kvmi read 16 MiB: exit status $krc after $(elapsed "$t0" "$(uptime_s)")s"
	comment_tail /tmp/lv-kvmi-read.err 5
	grep -v '^[0-9a-f]\{16\}: ' /tmp/lv-kvmi-read.out | head -n 5 | while IFS= read -r l; do comment "kvmi| $l"; done
	lv_virsh resume "$LV_DOM" >>/tmp/lv-suspend.out 2>&1
	comment_tail /tmp/lv-suspend.out 4
	head -c "$size" /tmp/libvmi-dump.raw | od -An -v -tx1 -w16 | tr -d ' ' >/tmp/lv-a.hex
	rm -f /tmp/libvmi-dump.raw
	grep '^[0-9a-f]\{16\}: ' /tmp/lv-kvmi-read.out | cut -c19-67 | tr -d ' ' >/tmp/lv-b.hex
	rm -f /tmp/lv-kvmi-read.out
	lines=$(grep -c . /tmp/lv-b.hex)
	diffs=$(cmp -l /tmp/lv-a.hex /tmp/lv-b.hex 2>/dev/null | grep -c .)
	# Not a comparison of zeros: how many 16-byte lines hold data.
	nonzero=$(grep -vc '^0*$' /tmp/lv-a.hex)
	ok=0; [ "$krc" -eq 0 ] && [ "$lines" -eq $((size / 16)) ] && [ "$nonzero" -gt 0 ] &&
		cmp -s /tmp/lv-a.hex /tmp/lv-b.hex && ok=1
	[ "$ok" = 1 ] || cmp /tmp/lv-a.hex /tmp/lv-b.hex 2>&1 | head -n 3 | while IFS= read -r l; do comment "cmp| $l"; done
	lv_check $ok "vmi-dump-memory's first 16 MiB equal READ_PHYSICAL's (kvmi 'read 0 $size': $lines lines, $nonzero not zero, $diffs differing hex digits)"
	rm -f /tmp/lv-a.hex /tmp/lv-b.hex
	ok=0; lv_alive && ok=1
	lv_check $ok "the guest runs again after virsh resume"
}

# Bad input: the VM destroyed and started again while vmi-dump-memory is
# attached (--no-pause: with its pause, SIGINT's resume waits without end for
# PAUSE_VCPU events of the gone VM; its output to /dev/null: reads failing on the gone VM are
# written as zero pages, the example's choice, so it would go on for
# 4 GiB); it must then end on SIGINT, and a new LibVMI run see the new VM.
lv_check_restart() {
	lv_dump_until restart /dev/null 1048576
	lv_virsh destroy "$LV_DOM" >/tmp/lv-destroy.out 2>&1
	comment_tail /tmp/lv-destroy.out 3
	lv_start
	started=$?
	alive=gone; kill -0 "$LV_DUMP_PID" 2>/dev/null && alive="still running"
	t0=$(uptime_s)
	lv_dump_stop
	dmesg | grep 'vmi-dump-memory.*segfault' | tail -n 2 | while IFS= read -r l; do comment "dmesg: $l"; done
	what="vmi-dump-memory of the destroyed VM ($alive when the new VM was up) ends on SIGINT in $(elapsed "$t0" "$(uptime_s)")s (status $LV_RC: $(tail -n 1 /tmp/lv-restart.out))"
	if [ "$LV_RC" -eq 139 ]; then     # LibVMI's own crash: reported, not patched
		result "not ok" "libvmi: restart while attached: $what # TODO LibVMI (KVM driver) segfaults once its VM is gone"
	else
		ok=0; [ "$LV_RC" -lt 124 ] && ok=1
		lv_check $ok "restart while attached: $what"
	fi
	ok=0; [ "$started" -eq 0 ] && lv_alive && ok=1
	lv_check $ok "restart while attached: the domain boots again and keeps running"
	rm -f "$LV_SOCK"
	lv_run plist2 60 "$LV_BIN/vmi-process-list" -n "$LV_DOM" -s "$LV_SOCK"
	ok=0; [ "$LV_RC" -eq 0 ] && [ -n "$LV_PID" ] && grep -qE "^\[ *$LV_PID\] $LV_PROC " /tmp/lv-plist2.out && ok=1
	lv_check $ok "restart: a new vmi-process-list lists $LV_PROC (pid ${LV_PID:-?}) of the restarted guest"
}

run_libvmi_mode() {
	distro_mount || return 0
	for f in kvmi-static libkvmi-qemu.so btf-offsets-static vmi.tar; do
		if [ ! -f "/kvmi/extra/$f" ]; then
			result "not ok" "libvmi: /kvmi/extra/$f missing"
			return 0
		fi
	done
	if libvmi_setup; then
		t0=$(uptime_s)
		if lv_check_before_vm; then
			lv_check_process_list
			lv_check_wrong_socket
			lv_check_dump
			lv_check_restart
		fi
		comment "libvmi: checks took $(elapsed "$t0" "$(uptime_s)")s"
	fi
	comment_tail "$DISTRO/var/log/libvirt/qemu/$LV_DOM.log" 15
	libvmi_cleanup
}
