#!/bin/sh
# cli-tests.sh — kvmi-vm's bad-input paths: every bad command line, bad file
# and unusable KVM device must end with exit status 1 (usage / input) or 2
# (host) as guest_abi.h defines, exactly one "kvmi-vm: ..." line on stderr
# and nothing on stdout; never a crash or a hang.  Prints TAP.
#
# Usage: cli-tests.sh KVMI_VM_BINARY GUEST_DIR
#   GUEST_DIR holds hello.elf and the malformed cli-*.elf of tests/guest.
#
# kvmi-vm opens /dev/kvm before it reads the guest file, so the checks of
# file contents are skipped on a machine without a usable /dev/kvm.
# POSIX sh; runs under busybox sh too.
set -u

if [ $# -ne 2 ]; then
	echo "usage: cli-tests.sh KVMI_VM_BINARY GUEST_DIR" >&2
	exit 2
fi
VM=$1
GUEST_DIR=$2
HELLO=$GUEST_DIR/hello.elf

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvmi-cli-tests.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

HAVE_KVM=no
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	HAVE_KVM=yes
fi

# ------------------------------------------------------------------ inputs
: >"$TMP/empty"
i=0
while [ "$i" -lt 2000 ]; do
	echo "this is not a kernel image, line $i"
	i=$((i + 1))
done >"$TMP/garbage"
if [ -f "$HELLO" ]; then
	# ELF header only: the program headers lie beyond the end.
	head -c 100 "$HELLO" >"$TMP/trunc-phdrs.elf"
	# Header and program headers, but the segments lie beyond the end.
	head -c 2000 "$HELLO" >"$TMP/trunc-segments.elf"
fi

# Introspection policy files that must not start a guest (an empty policy
# would allow everything).
printf '# comments only\n\n' >"$TMP/policy-comments"
printf 'commands = all\ncomands = -write_physical\n' >"$TMP/policy-badkey"
printf 'commands = all\000, -write_physical\n' >"$TMP/policy-nul"
mkfifo "$TMP/policy-fifo" 2>/dev/null || : >"$TMP/policy-fifo"
TOOL=unix:$TMP/no-tool.sock
# put FILE OFFSET BYTES: writes BYTES (printf octal escapes) at OFFSET.
put() {
	printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
# mkbzimage FILE RELOCATABLE KERNEL_ALIGNMENT PREF_ADDRESS INIT_SIZE: a
# 16 KiB bzImage (protocol 2.15, 64-bit entry, no real kernel) with the
# load-plan fields given as little-endian octal escapes (4, 8, 4 bytes).
mkbzimage() {
	dd if=/dev/zero of="$1" bs=4096 count=4 2>/dev/null
	put "$1" 497 '\004'                 # 0x1f1 setup_sects
	put "$1" 510 '\125\252'             # 0x1fe boot_flag 0xaa55
	put "$1" 513 '\152HdrS\017\002'     # 0x201 header length, 0x202 "HdrS", 0x206 2.15
	put "$1" 529 '\001'                 # 0x211 loadflags: LOADED_HIGH
	put "$1" 560 "$3"                   # 0x230 kernel_alignment
	put "$1" 564 "$2"                   # 0x234 relocatable_kernel
	put "$1" 566 '\001'                 # 0x236 xloadflags: XLF_KERNEL_64
	put "$1" 600 "$4"                   # 0x258 pref_address
	put "$1" 608 "$5"                   # 0x260 init_size
}
# Not relocatable, wants to live 1 MiB below 2^64 with 2 MiB of init_size:
# kernel_end wrapped to 1 MiB and the loader copied the kernel to NULL.
mkbzimage "$TMP/bz-pref-wraps" '\000' '\000\000\040\000' \
	'\000\000\360\377\377\377\377\377' '\000\000\040\000'
# Relocatable, preferred address 256 bytes below 2^64: pref + init_size
# wrapped to 2 MiB and the plan passed.
mkbzimage "$TMP/bz-init-wraps" '\001' '\000\000\040\000' \
	'\000\377\377\377\377\377\377\377' '\000\000\040\000'
# Not relocatable, preferred address 64 GiB: beyond any RAM below 4 GiB.
mkbzimage "$TMP/bz-pref-high" '\000' '\000\000\040\000' \
	'\000\000\000\000\020\000\000\000' '\000\000\040\000'
# Relocatable with 2 GiB alignment: needs more than the 64 MiB it gets.
mkbzimage "$TMP/bz-align-2g" '\001' '\000\000\000\200' \
	'\000\000\000\001\000\000\000\000' '\000\000\040\000'

N=0
FAILED=0
# When set, the next check also wants this text in the error line.
EXPECT_ERR=

# check NEEDS EXPECTED_RC DESCRIPTION -- kvmi-vm arguments...
#   NEEDS: "any", or "kvm" (skipped without a usable /dev/kvm), or a file
#   that must exist (skipped without it).
check() {
	needs=$1
	want=$2
	desc=$3
	shift 4
	N=$((N + 1))
	case "$needs" in
	any) ;;
	kvm)
		if [ "$HAVE_KVM" != yes ]; then
			echo "ok $N - $desc # SKIP needs a usable /dev/kvm"
			return
		fi ;;
	*)
		if [ ! -f "$needs" ]; then
			echo "ok $N - $desc # SKIP $needs is missing"
			return
		fi
		if [ "$HAVE_KVM" != yes ]; then
			echo "ok $N - $desc # SKIP needs a usable /dev/kvm"
			return
		fi ;;
	esac

	"$VM" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
	rc=$?
	: >"$TMP/why"
	[ "$rc" = "$want" ] || echo "exit status $rc, expected $want" >>"$TMP/why"
	lines=$(wc -l <"$TMP/err")
	# wc pads its count with blanks on some systems
	lines=$((lines + 0))
	[ "$lines" -eq 1 ] || echo "$lines lines on stderr, expected exactly one" >>"$TMP/why"
	if ! grep -q '^kvmi-vm: ' "$TMP/err"; then
		echo "stderr has no line starting with 'kvmi-vm: '" >>"$TMP/why"
	fi
	[ -s "$TMP/out" ] && echo "stdout is not empty" >>"$TMP/why"
	if [ -n "$EXPECT_ERR" ] && ! grep -q "$EXPECT_ERR" "$TMP/err"; then
		echo "stderr does not say '$EXPECT_ERR'" >>"$TMP/why"
	fi
	EXPECT_ERR=

	if [ ! -s "$TMP/why" ]; then
		echo "ok $N - $desc"
		return
	fi
	FAILED=$((FAILED + 1))
	echo "not ok $N - $desc"
	echo "# command: kvmi-vm $*"
	sed 's/^/# /' "$TMP/why"
	echo "# stderr:"
	head -n 20 "$TMP/err" | cut -c 1-300 | sed 's/^/#   /'
	echo "# stdout:"
	head -n 10 "$TMP/out" | cut -c 1-300 | sed 's/^/#   /'
}

# Every run that could start a guest carries --timeout so none can hang.
echo "1..$(grep -c '^check ' "$0")"
# Command line (no KVM needed: parsed before /dev/kvm is opened).
check any 1 "no arguments" --
check any 1 "unknown option" -- --bogus-option
check any 1 "option without its argument" -- --guest
check any 1 "stray argument" -- --timeout 10 --guest "$HELLO" extra
check any 1 "--guest and --kernel together" -- --timeout 10 --guest "$HELLO" --kernel "$TMP/garbage"
check any 1 "--initrd with --guest" -- --timeout 10 --guest "$HELLO" --initrd "$TMP/empty"
check any 1 "--vcpus 0" -- --timeout 10 --guest "$HELLO" --vcpus 0
check any 1 "--vcpus 1000" -- --timeout 10 --guest "$HELLO" --vcpus 1000
check any 1 "--vcpus -1" -- --timeout 10 --guest "$HELLO" --vcpus -1
check any 1 "--vcpus not a number" -- --timeout 10 --guest "$HELLO" --vcpus abc
check any 1 "--memory 1M (too small)" -- --timeout 10 --guest "$HELLO" --memory 1M
check any 1 "--memory not a size" -- --timeout 10 --guest "$HELLO" --memory lots
check any 1 "--timeout not a number" -- --timeout abc --guest "$HELLO"
# Host problems.
check any 2 "--kvm-device /nonexistent" -- --timeout 10 --guest "$HELLO" --kvm-device /nonexistent
check any 2 "--kvm-device /dev/null (not a KVM device)" -- --timeout 10 --guest "$HELLO" --kvm-device /dev/null
# Input files (read after /dev/kvm is opened).
check kvm 1 "--guest missing file" -- --timeout 10 --guest "$TMP/no-such-file.elf"
check kvm 1 "--guest a directory" -- --timeout 10 --guest "$TMP"
check kvm 1 "--guest empty file" -- --timeout 10 --guest "$TMP/empty"
check "$HELLO" 1 "--guest truncated ELF (program headers cut off)" -- --timeout 10 --guest "$TMP/trunc-phdrs.elf"
check "$HELLO" 1 "--guest truncated ELF (segments cut off)" -- --timeout 10 --guest "$TMP/trunc-segments.elf"
check "$GUEST_DIR/cli-below-1m.elf" 1 "--guest ELF linked below 1 MiB" -- --timeout 10 --guest "$GUEST_DIR/cli-below-1m.elf"
check "$GUEST_DIR/cli-above-ram.elf" 1 "--guest ELF linked beyond guest RAM" -- --timeout 10 --guest "$GUEST_DIR/cli-above-ram.elf"
check kvm 1 "--kernel missing file" -- --timeout 10 --kernel "$TMP/no-such-file"
check kvm 1 "--kernel empty file" -- --timeout 10 --kernel "$TMP/empty"
check kvm 1 "--kernel garbage (not a bzImage)" -- --timeout 10 --kernel "$TMP/garbage"
check kvm 1 "--initrd missing file" -- --timeout 10 --kernel "$TMP/garbage" --initrd "$TMP/no-such-initrd"
check "$HELLO" 1 "--kernel an ELF (not a bzImage)" -- --timeout 10 --kernel "$HELLO"
# Introspection policy files (read after /dev/kvm is opened).
check "$HELLO" 1 "--policy missing file" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy "$TMP/no-such-policy"
check "$HELLO" 1 "--policy empty file" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy "$TMP/empty"
check "$HELLO" 1 "--policy comments only" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy "$TMP/policy-comments"
check "$HELLO" 1 "--policy unknown key" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy "$TMP/policy-badkey"
check "$HELLO" 1 "--policy with a NUL byte" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy "$TMP/policy-nul"
check "$HELLO" 1 "--policy a directory" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy "$TMP"
check "$HELLO" 1 "--policy /dev/null" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy /dev/null
check "$HELLO" 1 "--policy a FIFO" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy "$TMP/policy-fifo"
check "$HELLO" 1 "--policy a procfs file" -- --timeout 10 --guest "$HELLO" --introspector "$TOOL" --policy /proc/self/status
# bzImage load plans that leave guest RAM: refused before /dev/kvm is
# opened (a nonexistent device would make it exit 2), and with a real one.
EXPECT_ERR="past the end of the address space"
check any 1 "--kernel preferred address near 2^64 (end wraps), before /dev/kvm" -- --timeout 10 --kernel "$TMP/bz-pref-wraps" --kvm-device /nonexistent
EXPECT_ERR="past the end of the address space"
check kvm 1 "--kernel preferred address near 2^64 (end wraps)" -- --timeout 10 --kernel "$TMP/bz-pref-wraps"
EXPECT_ERR="past the end of the address space"
check any 1 "--kernel preferred address + init_size wraps, before /dev/kvm" -- --timeout 10 --kernel "$TMP/bz-init-wraps" --kvm-device /nonexistent
EXPECT_ERR="below 4 GiB"
check any 1 "--kernel preferred address 64 GiB, before /dev/kvm" -- --timeout 10 --kernel "$TMP/bz-pref-high" --kvm-device /nonexistent
EXPECT_ERR="too little memory"
check any 1 "--kernel with 2 GiB alignment in 64 MiB, before /dev/kvm" -- --timeout 10 --memory 64M --kernel "$TMP/bz-align-2g" --kvm-device /nonexistent

[ "$FAILED" -eq 0 ]
