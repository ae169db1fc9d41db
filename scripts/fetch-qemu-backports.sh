#!/bin/sh
# Unpacks Debian bookworm-backports' QEMU (qemu-system-x86 and its data)
# into DEST without installing it, for the test suites that run the QEMU
# frontend against a second QEMU version (meson suite qemu10).  Uses a
# private apt configuration under DEST: the system's sources stay as they
# are.  Cached: a DEST whose stamp names the current candidate version is
# left alone.  Prints the path of qemu-system-x86_64; exit 1 (with a
# reason) when the packages cannot be had.
#
# Usage: fetch-qemu-backports.sh DEST
set -eu
DEST=${1:?usage: fetch-qemu-backports.sh DEST}
mkdir -p "$DEST/apt/lists/partial" "$DEST/apt/cache/archives/partial" "$DEST/debs"
DEST=$(cd "$DEST" && pwd)
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" \
	>"$DEST/apt/sources.list"
APT="-o Dir::Etc::sourcelist=$DEST/apt/sources.list -o Dir::Etc::sourceparts=- \
-o Dir::State::Lists=$DEST/apt/lists -o Dir::Cache=$DEST/apt/cache -o APT::Get::List-Cleanup=0 \
-o Debug::NoLocking=1"
BIN=$DEST/root/usr/bin/qemu-system-x86_64

# shellcheck disable=SC2086
if ! apt-get $APT -qq update >/dev/null 2>&1; then
	[ -x "$BIN" ] && { echo "$BIN"; exit 0; }   # offline: the cached one
	echo "fetch-qemu-backports: apt-get update of bookworm-backports failed" >&2
	exit 1
fi
# shellcheck disable=SC2086
VER=$(apt-cache $APT policy qemu-system-x86 2>/dev/null | sed -n 's/.*Candidate: //p')
if [ -x "$BIN" ] && [ "$(cat "$DEST/stamp" 2>/dev/null)" = "$VER" ]; then
	echo "$BIN"
	exit 0
fi
rm -rf "$DEST/root" "$DEST/debs"/*.deb
# shellcheck disable=SC2086
if ! (cd "$DEST/debs" && apt-get $APT -qq download "qemu-system-x86=$VER" "qemu-system-data=$VER" >/dev/null 2>&1); then
	echo "fetch-qemu-backports: cannot download qemu-system-x86 $VER" >&2
	exit 1
fi
for d in "$DEST/debs"/*.deb; do
	dpkg-deb -x "$d" "$DEST/root"
done
echo "$VER" >"$DEST/stamp"
echo "$BIN"
