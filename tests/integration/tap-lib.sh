# tap-lib.sh — the TAP helpers of the payload scripts (guest-tests.sh for
# kvmi-vm, qemu-payloads.sh for stock QEMU).  Sourced, not run; POSIX sh
# that busybox sh runs too (tests/kvmbox copies every *.sh of this folder).
#
# A test is a function t_NAME that runs one VM and then calls expect_* and
# finally result "DESCRIPTION".  The sourcing script sets, before the first
# test:
#   TMP        a scratch directory
#   WHY        a file: the reasons the current test failed (empty = pass)
#   OUT, ERR   the files expect_stdout* and expect_line/match compare with
#   RC         the exit status the current test is about (expect_rc)
# and optionally OUT_NAME / ERR_NAME, their names in failure diagnostics
# (default "stdout" / "stderr").

N=0
FAILED=0

# The whole script is skipped (TAP "1..0 # SKIP") without a usable /dev/kvm.
skip_without_kvm() {
	if [ ! -c /dev/kvm ]; then
		echo "1..0 # SKIP no /dev/kvm"
		exit 0
	fi
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		echo "1..0 # SKIP /dev/kvm is not readable and writable"
		exit 0
	fi
}

fail() {
	echo "$*" >>"$WHY"
}

expect_rc() {
	[ "$RC" = "$1" ] || fail "exit status $RC, expected $1"
}

# A whole line of $ERR, compared as a fixed string.
expect_line() {
	grep -qxF -e "$1" "$ERR" || fail "no ${ERR_NAME:-stderr} line: $1"
}

# A line of $ERR matching a basic regular expression (anchor it yourself).
expect_match() {
	grep -q -e "$1" "$ERR" || fail "no ${ERR_NAME:-stderr} line matching: $1"
}

# No line of $ERR matching the basic regular expression.
expect_no_match() {
	if grep -q -e "$1" "$ERR"; then
		fail "unexpected ${ERR_NAME:-stderr} line matching: $1"
	fi
}

# $OUT is exactly the lines given as arguments.
expect_stdout() {
	: >"$TMP/expected"
	for line in "$@"; do
		printf '%s\n' "$line" >>"$TMP/expected"
	done
	expect_stdout_file "$TMP/expected"
}

expect_stdout_file() {
	cmp -s "$1" "$OUT" || fail "${OUT_NAME:-stdout} differs from the expected text ($(wc -c <"$1") bytes expected, $(wc -c <"$OUT") got)"
}

# Prints a file as TAP diagnostics, at most $3 lines of at most 300 bytes.
diag_file() {
	echo "# $1:"
	head -n "$3" "$2" | cut -c 1-300 | sed 's/^/#   /'
}

# result DESCRIPTION: reports the checks made since the test's run.
result() {
	N=$((N + 1))
	if [ ! -s "$WHY" ]; then
		echo "ok $N - $1"
		return
	fi
	FAILED=$((FAILED + 1))
	echo "not ok $N - $1"
	sed 's/^/# /' "$WHY"
	echo "# exit status: $RC"
	diag_file "${OUT_NAME:-stdout}" "$OUT" 20
	diag_file "${ERR_NAME:-stderr}" "$ERR" 40
}

# run_tests NAME...: the plan, then t_NAME for each; fails if any failed.
run_tests() {
	echo "1..$#"
	for t in "$@"; do
		"t_$t"
	done
	[ "$FAILED" -eq 0 ]
}
