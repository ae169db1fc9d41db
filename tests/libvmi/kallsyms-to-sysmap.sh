#!/bin/sh
# kallsyms-to-sysmap.sh — writes a System.map-format file (the `sysmap` of
# a LibVMI config entry) from /proc/kallsyms.
#
# Usage: kallsyms-to-sysmap.sh [KALLSYMS] > System.map
#
# Run as root on a kernel booted with nokaslr, it gives the addresses a
# guest running the same kernel image with nokaslr has.  The kernel's own
# symbols only ("ADDR TYPE NAME"; those of modules, "[module]", are left
# out), in address order like System.map.  Refuses a file whose addresses
# are all zero (kptr_restrict, or not root).  Runs with busybox too.
set -eu

src="${1:-/proc/kallsyms}"
[ -r "$src" ] || { echo "kallsyms-to-sysmap: cannot read $src" >&2; exit 1; }

# Reading /proc/kallsyms once: it is large and a second read may differ
# (modules loaded meanwhile).
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
awk 'NF == 3 && $1 ~ /^[0-9a-fA-F]+$/ { print $1, $2, $3 }' "$src" | sort -s -k1,1 >"$tmp"

if [ ! -s "$tmp" ]; then
	echo "kallsyms-to-sysmap: no symbols in $src" >&2
	exit 1
fi
if ! grep -q '^0*[1-9a-fA-F]' "$tmp"; then
	echo "kallsyms-to-sysmap: every address in $src is 0 (run as root, kernel.kptr_restrict=0 or 1)" >&2
	exit 1
fi
for sym in init_task _text; do
	grep -q " $sym\$" "$tmp" ||
		{ echo "kallsyms-to-sysmap: no $sym in $src (LibVMI needs it)" >&2; exit 1; }
done
cat "$tmp"
