#!/bin/sh
# build-distro.sh — the Debian root file system of the "distro box".
#
# The real-KVM box (build-box.sh) is a busybox initramfs.  Stock QEMU,
# libvirtd and LibVMI need a Debian userland, so the distro box adds a disk:
# an ext4 image of a minimal Debian bookworm built with mmdebstrap (QEMU,
# libvirt's QEMU driver, the shared libraries of our QEMU frontend and of
# LibVMI).  The box's /init mounts it and runs those programs in a chroot
# (box-distro.sh); it stays the box's PID 1 and keeps the console protocol.
#
# Usage: build-distro.sh [--print-path]
#   Prints the path of the image: $KVMI_CACHE/distro-KEY/rootfs.img, where
#   KEY hashes this script (its package list and customisation).  A cached
#   image is reused; the downloaded packages are kept in
#   $KVMI_CACHE/distro-debs for the next build.
#
# Environment: KVMI_CACHE (default $HOME/.cache/kvmi-kvmbox),
#   KVMI_DISTRO_MIRROR  apt sources for mmdebstrap (default: this machine's
#                       /etc/apt/sources.list{,.d/*}).
# Needs (root): mmdebstrap, mkfs.ext4 (e2fsprogs).  About 25 s cold.
set -eu

PROG=build-distro.sh
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }

CACHE=${KVMI_CACHE:-${HOME:-/root}/.cache/kvmi-kvmbox}
SUITE=bookworm
# What runs in the distro box: QEMU and libvirtd with its QEMU driver; the
# libraries of libkvmi-qemu.so (libbpf, libelf, libcrypto) and of LibVMI
# (glib, json-c, fuse); busybox for the test scripts' small tools.
PACKAGES="mount kmod procps busybox mawk
qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
libbpf1 libelf1 libssl3 libglib2.0-0 libjson-c5 libfuse2"
IMAGE_MB=1536

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap --mode=root, mkfs.ext4 -d)"
command -v mmdebstrap >/dev/null || die "mmdebstrap missing (Debian package mmdebstrap)"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing (Debian package e2fsprogs)"

KEY=$(cat "$0" | sha256sum | cut -c1-16)
DEST=$CACHE/distro-$KEY
if [ -f "$DEST/rootfs.img" ] && [ -f "$DEST/complete" ]; then
	echo "$DEST/rootfs.img"
	exit 0
fi

mkdir -p "$CACHE/distro-debs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvmi-distro.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOT=$WORK/root

# apt sources: the ones this machine uses (the same mirror or proxy).
if [ -n "${KVMI_DISTRO_MIRROR:-}" ]; then
	set -- "$KVMI_DISTRO_MIRROR"
else
	set --
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -s "$f" ] && grep -q '^[^#]' "$f" && set -- "$@" "$f"
	done
fi

# Customisation, run by mmdebstrap on the finished tree ($1).
cat >"$WORK/customize.sh" <<'EOF'
#!/bin/sh
set -eu
R=$1
# libvirtd as root runs QEMU as root; it still resolves its built-in QEMU
# user and group before it reads qemu.conf.
grep -q '^libvirt-qemu:' "$R/etc/passwd" ||
	echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >>"$R/etc/passwd"
grep -q '^libvirt-qemu:' "$R/etc/group" || echo 'libvirt-qemu:x:64055:' >>"$R/etc/group"
grep -q '^kvm:' "$R/etc/group" || echo 'kvm:x:994:' >>"$R/etc/group"
grep -q '^libvirt:' "$R/etc/group" || echo 'libvirt:x:995:' >>"$R/etc/group"
mkdir -p "$R/etc/libvirt" "$R/opt/vmi/lib" "$R/kvmi" "$R/var/log/libvirt"
cat >>"$R/etc/libvirt/qemu.conf" <<'CONF'
# distro box (build-distro.sh): QEMU runs as root, next to libvirtd.
user = "root"
group = "root"
CONF
echo 'log_outputs = "1:file:/var/log/libvirt/libvirtd.log"' >>"$R/etc/libvirt/libvirtd.conf"
echo 'log_outputs = "1:file:/var/log/libvirt/virtlogd.log"' >>"$R/etc/libvirt/virtlogd.conf"
echo /opt/vmi/lib >"$R/etc/ld.so.conf.d/vmi.conf"
echo kvmi-distro >"$R/etc/hostname"
printf '127.0.0.1 localhost kvmi-distro\n' >"$R/etc/hosts"
chroot "$R" ldconfig
EOF
chmod 755 "$WORK/customize.sh"

say "building the Debian $SUITE root file system (mmdebstrap)"
# Recommends off: no polkit, firewall or systemd units.  Documentation and
# locales are left out.  Packages are kept in distro-debs between builds.
mmdebstrap --mode=root --variant=essential --skip=check/empty \
	--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	--include="$(echo $PACKAGES | tr ' ' ',')" \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--aptopt='APT::Install-Recommends "false"' \
	--setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
	--setup-hook="sync-in $CACHE/distro-debs /var/cache/apt/archives" \
	--customize-hook="sync-out /var/cache/apt/archives $CACHE/distro-debs" \
	--customize-hook="$WORK/customize.sh \"\$1\"" \
	"$SUITE" "$ROOT" "$@" >&2 || die "mmdebstrap failed"
rm -f "$CACHE"/distro-debs/lock "$CACHE"/distro-debs/partial 2>/dev/null || true

say "writing the ext4 image"
stage=$WORK/rootfs.img
truncate -s "${IMAGE_MB}M" "$stage"
mkfs.ext4 -q -F -L kvmi-distro -d "$ROOT" "$stage" >&2 || die "mkfs.ext4 failed"
for d in "$CACHE"/distro-*; do              # older images
	case "$d" in */distro-debs) ;; *) rm -rf "$d" ;; esac
done
mkdir -p "$DEST"
mv "$stage" "$DEST/rootfs.img"
echo "$(du -sm "$ROOT" | cut -f1) MB, $(ls "$CACHE/distro-debs" | grep -c '\.deb$') packages" >"$DEST/complete"
say "built $DEST/rootfs.img ($(cat "$DEST/complete"))"
echo "$DEST/rootfs.img"
