#!/bin/sh
# build-libvmi.sh — builds libkvmi and LibVMI, unmodified, from their source
# archives, into a cached staged tree for the distro box (tests/kvmbox/).
#
# The archives are third-party code and not in this repository.  They are
# looked for in $KVMI_THIRD_PARTY, else in the places listed at find_archives
# below; their expected sha256 are in SHA256SUMS next to this script, and an
# archive whose checksum differs is refused.
#
# Output: $KVMI_CACHE/libvmi-KEY/opt/vmi/{bin,lib,include,...}, built for the
# prefix /opt/vmi (binaries carry the run path /opt/vmi/lib), KEY hashing
# SHA256SUMS and this script.  A finished entry has a stamp file and is
# reused; other libvmi-* entries are removed once a new one is finished.
# Prints the staged opt/vmi directory on stdout; logs go to stderr (the
# build's own output to build.log beside opt/, its tail on failure).
#
# Exit status: 0 built or reused, 77 archives not found (callers SKIP),
# 1 anything else (bad checksum, build failure).
#
# Environment: KVMI_THIRD_PARTY, KVMI_CACHE (default
# $HOME/.cache/kvmi-kvmbox), KVMI_JOBS (parallel make jobs, at most 2).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
sums="$here/SHA256SUMS"
cache="${KVMI_CACHE:-$HOME/.cache/kvmi-kvmbox}"
jobs="${KVMI_JOBS:-2}"
[ "$jobs" -gt 2 ] 2>/dev/null && jobs=2
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1

log() { echo "build-libvmi: $*" >&2; }
die() { log "$*"; exit 1; }

# The directory holding every archive of SHA256SUMS, or nothing.
find_archives() {
	if [ -n "${KVMI_THIRD_PARTY:-}" ]; then
		set -- "$KVMI_THIRD_PARTY"
	else
		# Where our machines keep the third-party archives.
		set -- "$repo/../shared/third_party" /work/shared/third_party
	fi
	for dir in "$@"; do
		ok=1
		while read -r _sum name; do
			[ -f "$dir/$name" ] || ok=0
		done <"$sums"
		[ "$ok" = 1 ] && { (cd "$dir" && pwd); return 0; }
	done
	return 0
}

# Refuses an archive whose sha256 is not the one in SHA256SUMS.
verify_archives() {
	while read -r want name; do
		got=$(sha256sum "$tp/$name" | cut -d' ' -f1)
		[ "$got" = "$want" ] ||
			die "$tp/$name: sha256 $got, expected $want (SHA256SUMS): refused"
	done <"$sums"
}

archive() { # the archive whose name starts with $1
	name=$(awk -v p="$1" 'index($2, p) == 1 { print $2 }' "$sums")
	[ -n "$name" ] || die "no $1 archive in $sums"
	echo "$tp/$name"
}

# Runs a build step with its output into the log; shows the tail on failure.
step() {
	log "$*"
	if ! "$@" >>"$buildlog" 2>&1; then
		tail -n 40 "$buildlog" >&2
		die "failed: $* (log: $buildlog)"
	fi
}

build_libkvmi() {
	mkdir -p "$work/libkvmi"
	tar -xzf "$(archive libkvmi-)" -C "$work/libkvmi" --strip-components=1
	cd "$work/libkvmi"
	step ./bootstrap
	step ./configure --prefix=/opt/vmi
	step make -j"$jobs"
	step make install DESTDIR="$stage"
	# LibVMI dlopens the unversioned name.
	lib="$stage/opt/vmi/lib"
	if [ ! -e "$lib/libkvmi.so" ]; then
		so=$(find "$lib" -maxdepth 1 -name 'libkvmi.so.*' | sort | head -n 1)
		[ -n "$so" ] || die "libkvmi installed no libkvmi.so.*"
		ln -s "$(basename "$so")" "$lib/libkvmi.so"
	fi
	# LibVMI only needs libkvmi's headers: a copy of its .pc whose prefix
	# is the staged tree, for pkg-config.
	mkdir -p "$work/pkgconfig"
	sed "s|^prefix=.*|prefix=$stage/opt/vmi|" "$lib/pkgconfig/libkvmi.pc" \
		>"$work/pkgconfig/libkvmi.pc"
}

build_libvmi() {
	mkdir -p "$work/libvmi"
	tar -xzf "$(archive libvmi-)" -C "$work/libvmi" --strip-components=1
	cd "$work/libvmi"
	step env PKG_CONFIG_PATH="$work/pkgconfig" cmake -S . -B build \
		-DCMAKE_INSTALL_PREFIX=/opt/vmi -DCMAKE_INSTALL_LIBDIR=lib \
		-DCMAKE_INSTALL_RPATH=/opt/vmi/lib \
		-DENABLE_XEN=OFF -DENABLE_BAREFLANK=OFF -DENABLE_KVM=ON \
		-DENABLE_VMIFS=OFF
	# CMake turns a feature off (with a warning) when it misses a
	# dependency: the KVM driver and the config file are needed.
	for f in ENABLE_KVM ENABLE_CONFIGFILE; do
		grep -q "^$f:BOOL=ON" build/CMakeCache.txt ||
			die "LibVMI's $f was turned off (log: $buildlog)"
	done
	step make -C build -j"$jobs"
	step make -C build install DESTDIR="$stage"
	for ex in vmi-process-list vmi-dump-memory; do
		[ -x "$stage/opt/vmi/bin/$ex" ] || cp "build/examples/$ex" "$stage/opt/vmi/bin/"
	done
}

# The examples the tests run are there, and every library they and the
# dlopened libkvmi.so need resolves with the staged lib first (ldd with
# LD_LIBRARY_PATH; at /opt/vmi the run path does the same).
check_stage() {
	lib="$stage/opt/vmi/lib"
	[ -e "$lib/libkvmi.so" ] || die "no libkvmi.so in $lib"
	for ex in vmi-process-list vmi-dump-memory; do
		[ -x "$stage/opt/vmi/bin/$ex" ] || die "$ex missing from the staged bin"
	done
	for f in "$stage/opt/vmi/bin/vmi-process-list" \
		"$stage/opt/vmi/bin/vmi-dump-memory" "$lib/libkvmi.so"; do
		missing=$(LD_LIBRARY_PATH="$lib" ldd "$f" | grep 'not found' || true)
		[ -z "$missing" ] || die "$f: unresolved libraries: $missing"
	done
}

sums_key=$(cat "$sums" "$here/build-libvmi.sh" | sha256sum | cut -c1-16)
entry="$cache/libvmi-$sums_key"
if [ -f "$entry/.stamp" ]; then
	log "reusing $entry"
	echo "$entry/opt/vmi"
	exit 0
fi

tp=$(find_archives)
if [ -z "$tp" ]; then
	echo "build-libvmi: LibVMI/libkvmi archives not found (set KVMI_THIRD_PARTY to the directory holding $(awk '{ printf "%s ", $2 }' "$sums"| sed 's/ $//'))" >&2
	exit 77
fi
verify_archives

mkdir -p "$cache"
# One build at a time per cache; a second caller waits and then reuses.
exec 9>"$cache/libvmi.lock"
flock 9
if [ -f "$entry/.stamp" ]; then
	log "reusing $entry (built meanwhile)"
	echo "$entry/opt/vmi"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/build-libvmi.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM HUP
stage="$work/stage"
buildlog="$work/build.log"
: >"$buildlog"
start=$(date +%s)
log "building libkvmi and LibVMI from $tp with -j$jobs (log: $buildlog)"
build_libkvmi
build_libvmi
check_stage

rm -rf "$entry"
mkdir -p "$entry"
mv "$stage/opt" "$entry/opt"
cp "$buildlog" "$entry/build.log"
for old in "$cache"/libvmi-*; do
	[ -d "$old" ] && [ "$old" != "$entry" ] && rm -rf "$old"
done
date -u +%Y-%m-%dT%H:%M:%SZ >"$entry/.stamp"
log "built in $(( $(date +%s) - start )) s: $entry"
echo "$entry/opt/vmi"
