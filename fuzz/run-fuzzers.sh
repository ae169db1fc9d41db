#!/bin/sh
# Build the libFuzzer targets with clang and run each for a bounded time.
#   fuzz/run-fuzzers.sh [SECONDS_PER_TARGET] [BUILD_DIR]
# New inputs go to a scratch copy of the corpus; crashes are written to the
# current directory (crash-*, timeout-*) and make the script fail.
set -eu
secs=${1:-60}
build=${2:-build-fuzz}
root=$(cd "$(dirname "$0")/.." && pwd)

command -v clang >/dev/null || { echo "clang not found: cannot build libFuzzer targets" >&2; exit 77; }
if [ ! -f "$build/build.ninja" ]; then
	CC=clang CXX=clang++ meson setup "$build" "$root" \
		-Dstatic_binaries=false -Dkvmbox=disabled >/dev/null
fi
ninja -C "$build" fuzz/fuzz_decoder fuzz/fuzz_handshake fuzz/fuzz_client_event fuzz/fuzz_client_stream fuzz/fuzz_loader fuzz/fuzz_engine

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for t in decoder handshake client_event client_stream loader engine; do
	mkdir -p "$scratch/$t"
	cp "$root/fuzz/corpus/$t/"* "$scratch/$t/"
	echo "fuzz_$t: $secs s"
	if ! "$build/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
		-print_final_stats=1 "$scratch/$t" >"$scratch/$t.log" 2>&1; then
		status=1
	fi
	tail -n 12 "$scratch/$t.log"
done
exit $status
