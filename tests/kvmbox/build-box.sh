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
#                      qemu   the Linux guest under stock QEMU with our
#                             library (needs --distro; box-distro.sh)
#                      libvmi LibVMI's examples against the Linux guest in a
#                             libvirt domain (needs --distro and vmi.tar,
#                             the staged /opt/vmi; box-libvmi.sh)
#   --vm FILE        statically linked kvmi-vm (put at /kvmi/bin/kvmi-vm)
#   --guest-dir DIR  copy DIR/*.elf into /kvmi/guests
#   --tests-dir DIR  copy DIR/*.sh into /kvmi/tests
#   --tap-prog FILE  statically linked test program printing TAP, run in the
#                    box (modes tests, tap) as FILE KVMI_VM GUEST_DIR [ARG...]
#                    (repeatable; ARG... from KVMI_BOX_TAP_ARGS)
#   --distro IMAGE   the distro box: attach IMAGE (build-distro.sh) as the
#                    box's disk; /init mounts it and runs QEMU in a chroot
#   FILE...          more files: *.elf and *.bios (the payloads' boot images
#                    for QEMU) go to /kvmi/guests, *.sh to /kvmi/tests,
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
HERE=$(cd "$(dirname "$0")" && pwd)
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }

MODE=${KVMI_BOX_MODE:-tests}
VM=${KVMI_VM_STATIC:-}
GUEST_DIR=${KVMI_GUEST_DIR:-}
TESTS_DIR=${KVMI_TESTS_DIR:-}
TAP_PROGS=""
DISTRO=""
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
# The distro box's disk (--distro): virtio-blk and ext4, loaded before the
# root file system is mounted (box-distro.sh).
DISK_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk crc16 crc32c_generic mbcache jbd2 ext4"
STAMP=complete-v4                       # marks a finished cache entry

usage() { sed -n '2,/^set -eu/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "$1"; }

# ---------------------------------------------------------------- arguments
while [ $# -gt 0 ]; do
	case "$1" in
	--mode) MODE=${2:?}; shift 2 ;;
	--vm) VM=${2:?}; shift 2 ;;
	--guest-dir) GUEST_DIR=${2:?}; shift 2 ;;
	--tests-dir) TESTS_DIR=${2:?}; shift 2 ;;
	--tap-prog) TAP_PROGS="$TAP_PROGS ${2:?}"; shift 2 ;;
	--distro) DISTRO=${2:?}; shift 2 ;;
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
tests|tap|demo|probe|guest|qemu|libvmi) ;;
*) die "unknown mode '$MODE' (tests, tap, demo, probe, guest, qemu, libvmi)" ;;
esac
case "$MODE" in
qemu|libvmi) [ -n "$DISTRO" ] || die "mode $MODE needs --distro IMAGE (build-distro.sh)" ;;
esac
[ -z "$DISTRO" ] || [ -f "$DISTRO" ] || die "no such image: $DISTRO"

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
	for m in $MODULES $DISK_MODULES; do
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
# One process pinned to each CPU reports where it ran (field 39 of its
# /proc/self/stat): shows that the guest really uses every vCPU.
ran="" c=0
while [ "$c" -lt "$(grep -c '^processor' /proc/cpuinfo)" ]; do
	ran="$ran $(taskset "$(printf '%x' $((1 << c)))" awk '{ print $39 }' /proc/self/stat)"
	c=$((c + 1))
done
echo "cpus-ran:$ran"
echo "memory:  $(awk '/^MemTotal/ {t=$2} /^MemFree/ {f=$2} END {printf "%d MiB total, %d MiB free", t/1024, f/1024}' /proc/meminfo)"
echo "cmdline: $(cat /proc/cmdline)"
echo "====================================================="
# kvmi.proc=NAME starts a long-running process whose comm is NAME (a
# script of that name: the kernel names a script's process after the
# script) for tools that list the guest's processes (the libvmi mode).
proc=$(sed -n 's/.*kvmi\.proc=\([A-Za-z0-9_-]*\).*/\1/p' /proc/cmdline)
if [ -n "$proc" ]; then
	printf '#!/bin/busybox sh\nwhile :; do sleep 1; done\n' >"/bin/$proc"
	chmod 755 "/bin/$proc"
	"/bin/$proc" </dev/null >/dev/null 2>&1 &
	echo "kvmi-proc: $proc pid $!"
fi
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

# /init of the box: box-init.sh next to this script (its console protocol is
# described there and in README.md).

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
	for m in $MODULES ${DISTRO:+$DISK_MODULES}; do
		cp "$KDIR/modules/$m.ko" "$BOX/kvmi/modules/"
	done
	if [ "$MODE" != probe ] || [ -n "$DISTRO" ]; then
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
		*.elf|*.bios) add_file "$f" guests ;;
		*.sh) add_file "$f" tests ;;
		*) add_file "$f" extra ;;
		esac
	done
	# Settings the box's /init sources (values quoted for sh).
	q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
	{
		echo "MODE=$(q "$MODE")"
		echo "MODULES=$(q "$MODULES")"
		echo "DISK_MODULES=$(q "${DISTRO:+$DISK_MODULES}")"
		echo "GUEST_APPEND=$(q "$GUEST_APPEND")"
		echo "GUEST_MEMORY=$(q "$GUEST_MEMORY")"
		echo "GUEST_TIMEOUT=$(q "$GUEST_TIMEOUT")"
		echo "VM_EXTRA_ARGS=$(q "$VM_EXTRA_ARGS")"
		echo "PROBE_CMD=$(q "$PROBE_CMD")"
		echo "NPT0_LINUX=$(q "$NPT0_LINUX")"
		echo "TAP_PROG_ARGS=$(q "$TAP_PROG_ARGS")"
		echo "BOX_ENV=$(q "$BOX_ENV")"
	} >"$BOX/kvmi/box.conf"
	cp "$HERE/box-init.sh" "$BOX/init"
	[ -z "$DISTRO" ] || cp "$HERE/box-distro.sh" "$HERE/box-libvmi.sh" "$BOX/kvmi/"
	chmod 755 "$BOX/init"
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
# boot-box.sh attaches the distro box's disk named here (read-only use:
# QEMU's snapshot=on keeps the cached image unchanged).
if [ -n "$DISTRO" ]; then
	echo "$DISTRO" >"$OUTDIR/box.disk"
else
	rm -f "$OUTDIR/box.disk"
fi
echo "$(cat "$KDIR/$STAMP") $MODE${DISTRO:+ distro}" >"$OUTDIR/box.info"
if [ "$MODE" = guest ]; then
	say "built the Linux guest in $OUTDIR with $(cat "$KDIR/$STAMP")"
else
	say "built the $MODE box in $OUTDIR with $(cat "$KDIR/$STAMP")"
fi
