# Front end for the Meson build.  The two commands a user needs:
#   make demo    build and boot a real Linux guest under kvmi-vm
#   make check   build and run every test suite
BUILD      ?= build
BUILD_ASAN ?= build-asan
MESON_TEST_ARGS ?= --print-errorlogs

.PHONY: all deps build demo check check-asan check-tsan fuzz soak bench clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	./demo/run-demo.sh

# The QEMU frontend's suites run against Debian's QEMU (7.2) and, in suite
# qemu10, bookworm-backports' QEMU 10 unpacked into $(BUILD)/qemu-backports.
check: build
	-@./scripts/fetch-qemu-backports.sh $(BUILD)/qemu-backports >/dev/null
	meson test -C $(BUILD) $(MESON_TEST_ARGS)

# Unit and host-KVM suites under AddressSanitizer + UBSan, with the lock-order
# checker on (the box suite runs static binaries and is left to the plain
# pass).
$(BUILD_ASAN)/build.ninja:
	meson setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dstatic_binaries=false -Dkvmbox=disabled -Dlockcheck=true

# The QEMU frontend's suites are left out: QEMU with the ASan runtime
# preloaded does not end after a tool's CRASH (docs/limitations.md).
check-asan: deps $(BUILD_ASAN)/build.ninja
	ninja -C $(BUILD_ASAN)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
		meson test -C $(BUILD_ASAN) $(MESON_TEST_ARGS) --no-suite kvmbox --no-suite qemu --no-suite qemu10

# Unit, CLI and host-KVM suites under ThreadSanitizer.  The VMMs the tests
# start inherit TSAN_OPTIONS: a report makes them exit 66 and fails the test.
# Suppressions only with a written reason (scripts/tsan.supp).
BUILD_TSAN ?= build-tsan
$(BUILD_TSAN)/build.ninja:
	meson setup $(BUILD_TSAN) -Db_sanitize=thread -Db_lundef=false \
		-Dstatic_binaries=false -Dkvmbox=disabled

check-tsan: deps $(BUILD_TSAN)/build.ninja
	ninja -C $(BUILD_TSAN)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/scripts/tsan.supp" \
		meson test -C $(BUILD_TSAN) $(MESON_TEST_ARGS) --suite unit --suite cli --suite host-kvm

# libFuzzer targets (message decoder, handshake), each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz:
	@./scripts/install-deps.sh --fuzz
	./fuzz/run-fuzzers.sh $(FUZZ_SECONDS) build-fuzz

# Fault-injection soak (tests/soak): random tool sessions against kvmi-vm,
# each cut by close, RST or SIGKILL, then a fresh session checks that nothing
# survived and the guest runs.  SOAK_SEED replays a run; SOAK_ASAN=1 runs the
# ASan build (build-asan) instead.  Not part of make check.
SOAK_MINUTES ?= 3
SOAK_SEED    ?=
SOAK_DIR      = $(if $(filter 1,$(SOAK_ASAN)),$(BUILD_ASAN),$(BUILD))
soak: deps $(SOAK_DIR)/build.ninja
	ninja -C $(SOAK_DIR)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
		$(SOAK_DIR)/tests/soak/kvmi-soak --minutes $(SOAK_MINUTES) \
		$(if $(SOAK_SEED),--seed $(SOAK_SEED)) $(SOAK_DIR)/kvmi-vm $(SOAK_DIR)/tests/guest

# Benchmarks (issue 5): event round trips, memory reads, QEMU's gdbstub as
# the peer, page tracking, quiet overhead.  Writes bench/RESULTS.md and
# bench/latency.svg; takes a few minutes.
bench: build
	@./scripts/install-deps.sh --bench
	./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) build-fuzz
