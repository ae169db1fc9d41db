# Front end for the Meson build.  The two commands a user needs:
#   make demo    build and boot a real Linux guest under kvmi-vm
#   make check   build and run every test suite
BUILD      ?= build
BUILD_ASAN ?= build-asan
MESON_TEST_ARGS ?= --print-errorlogs

.PHONY: all deps build demo check check-asan check-tsan fuzz soak soak-box bench clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	./demo/run-demo.sh

# The QEMU frontend's suites run against Debian's QEMU 7.2 (suite qemu) and
# bookworm-backports' QEMU 10 (suite qemu10, its packages unpacked into
# $(BUILD)/qemu-backports; `make check-qemu10` runs only that suite).
check: build
	./scripts/fetch-qemu-backports.sh $(BUILD)/qemu-backports >/dev/null || \
		echo "make check: no QEMU 10 from bookworm-backports; suite qemu10 skips" >&2
	meson test -C $(BUILD) $(MESON_TEST_ARGS)

check-qemu10: build
	./scripts/fetch-qemu-backports.sh $(BUILD)/qemu-backports >/dev/null
	meson test -C $(BUILD) $(MESON_TEST_ARGS) --suite qemu10

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

# The same soak in the real-KVM box (tests/kvmbox), over AF_VSOCK (loopback):
# run-box.sh --mode tap runs only kvmi-soak-static there, with the options in
# KVMI_BOX_TAP_ARGS after its KVMI_VM GUEST_DIR; one TAP test per round.  The
# box's limit is SOAK_MINUTES plus 10 minutes (build, boot, the last round,
# the VM's stop).  Needs the static binaries (-Dstatic_binaries=true, the
# default); the box's console log lands in $(BUILD)/soak-box/console.log.
soak-box: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	@test -x $(BUILD)/tests/soak/kvmi-soak-static || \
		{ echo "soak-box: no $(BUILD)/tests/soak/kvmi-soak-static (static_binaries off?)" >&2; exit 1; }
	KVMI_BOX_TAP_ARGS="--vsock --tap --minutes $(SOAK_MINUTES)$(if $(SOAK_SEED), --seed $(SOAK_SEED))" \
		./tests/kvmbox/run-box.sh --mode tap --outdir $(BUILD)/soak-box \
		--vm $(BUILD)/kvmi-vm-static --guest-dir $(BUILD)/tests/guest \
		--tap-prog $(BUILD)/tests/soak/kvmi-soak-static \
		--timeout $$(awk 'BEGIN { printf "%d", $(SOAK_MINUTES) * 60 + 600 }')

# Benchmarks (issue 5): event round trips, memory reads, QEMU's gdbstub as
# the peer, page tracking, quiet overhead.  Writes bench/RESULTS.md and
# bench/latency.svg; takes a few minutes.
bench: build
	@./scripts/install-deps.sh --bench
	./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) build-fuzz
