# Front end for the Meson build.  The two commands a user needs:
#   make demo    build and boot a real Linux guest under kvmi-vm
#   make check   build and run every test suite
BUILD      ?= build
BUILD_ASAN ?= build-asan
MESON_TEST_ARGS ?= --print-errorlogs

.PHONY: all deps build demo check check-asan fuzz bench clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	./demo/run-demo.sh

check: build
	meson test -C $(BUILD) $(MESON_TEST_ARGS)

# Unit and host-KVM suites under AddressSanitizer + UBSan, with the lock-order
# checker on (the box suite runs static binaries and is left to the plain
# pass).
$(BUILD_ASAN)/build.ninja:
	meson setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dstatic_binaries=false -Dkvmbox=disabled -Dlockcheck=true

check-asan: deps $(BUILD_ASAN)/build.ninja
	ninja -C $(BUILD_ASAN)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
		meson test -C $(BUILD_ASAN) $(MESON_TEST_ARGS) --no-suite kvmbox

# libFuzzer targets (message decoder, handshake), each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz:
	@./scripts/install-deps.sh --fuzz
	./fuzz/run-fuzzers.sh $(FUZZ_SECONDS) build-fuzz

# Benchmarks (issue 5): event round trips, memory reads, QEMU's gdbstub as
# the peer, page tracking, quiet overhead.  Writes bench/RESULTS.md and
# bench/latency.svg; takes a few minutes.
bench: build
	@./scripts/install-deps.sh --bench
	./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-fuzz
