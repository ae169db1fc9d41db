#!/bin/sh
# Installs the Debian packages kvmi needs to build and test, only those that
# are missing.  Runs apt-get as root (directly or through sudo).
set -eu

# clang + libbpf-dev: the BPF hooks of CR/XSETBV/HYPERCALL events (the
# build works without them, refusing those events); libelf-dev, zlib1g-dev
# and libzstd-dev give the static libelf.a/libz.a/libzstd.a that libbpf.a
# needs in the static kvmi-vm of the real-KVM box.
# mmdebstrap + e2fsprogs: the distro box's Debian root file system
# (tests/kvmbox/build-distro.sh).
# dwarves (pahole): the independent check of tests/libvmi/btf-offsets.
# cmake ... bison: what tests/libvmi/build-libvmi.sh needs to build libkvmi
# (autoconf automake libtool; uuid-dev: its configure requires uuid/uuid.h)
# and LibVMI (cmake; glib-2.0 and zlib are required; json-c and libvirt for
# its KVM driver; flex and bison for its config file parser; vmifs, the only
# user of libfuse, is left out).
PKGS="meson ninja-build gcc libc6-dev pkg-config python3 libssl-dev
      qemu-system-x86 busybox-static cpio gzip xz-utils zstd
      clang libbpf-dev libelf-dev zlib1g-dev libzstd-dev dwarves
      cmake autoconf automake libtool uuid-dev libglib2.0-dev libjson-c-dev
      libvirt-dev flex bison mmdebstrap e2fsprogs"
case "${1:-}" in
--bench) PKGS="$PKGS gnuplot-nox" ;;
--fuzz)  PKGS="$PKGS clang libclang-rt-14-dev" ;;
esac

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
