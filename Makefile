# Vigil: `make demo` runs the main job, `make test` runs every test.
# Each target installs what it needs first (deploy/install-deps.sh).
BUILD ?= build
JOBS ?= 2
# Sanitizer builds, with clang: ASan+UBSan (and the libFuzzer targets), and TSan.
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
SAN_TESTS = engine_test pipeline_test api_test ops_test console_test vigilctl vigild vigil-engine-diff vigil-bench-stream vigil-bench-engine
FUZZERS = fuzz_event_binary fuzz_event_json fuzz_rules fuzz_api
FUZZ_SECONDS ?= 300
CLANG = CC=clang-14 CXX=clang++-14
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp
export TSAN_OPTIONS ?= halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp

.PHONY: all deps configure build test test-asan test-tsan fuzz demo bench bench-stream bench-api bench-console chaos clean

all: build

deps:
	@deploy/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Every test: the suite (unit, scenarios, integration on a real broker, faults, bounded chaos), then the
# unit tests again under ASan+UBSan with a short run of each fuzzer.
test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	$(MAKE) test-asan

$(ASAN_BUILD)/build.ninja: CMakeLists.txt | deps
	$(CLANG) cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DVIGIL_SANITIZE=address,undefined -DVIGIL_FUZZ=ON

$(TSAN_BUILD)/build.ninja: CMakeLists.txt | deps
	$(CLANG) cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_SANITIZE=thread

# Unit tests, scenarios and the CLI under AddressSanitizer and UndefinedBehaviorSanitizer, and each fuzzer
# for 15 s (what needs a broker runs in make test's first part).
test-asan: $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target $(SAN_TESTS) $(FUZZERS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -LE 'integration|long'

# The concurrent parts (the API server's threads on the store, the pipelines) under ThreadSanitizer.
test-tsan: $(TSAN_BUILD)/build.ninja
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target api_test pipeline_test
	ctest --test-dir $(TSAN_BUILD) --output-on-failure -j 1 -R '^(RiskService|Partition|Pipeline|Workers)'

# Each fuzzer for FUZZ_SECONDS (default 300) from its seed corpus.
fuzz: $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target $(FUZZERS)
	for f in $(FUZZERS); do \
	  tests/fuzz/run_fuzz.sh $(ASAN_BUILD)/bin/$$f tests/fuzz/corpus/$${f#fuzz_} $(FUZZ_SECONDS) || exit 1; \
	done

# KEEP=1: leave the broker, vigild and its API running after the demo, until Ctrl-C.
demo: build
	VIGIL_DEMO_KEEP=$(if $(KEEP),1,0) deploy/demo.sh $(BUILD)

# Chaos at full length: 200,000 events, 8 SIGKILLs of vigild, a broker restart. SEED=N repeats a run.
chaos: build
	python3 tests/chaos/chaos_test.py $(BUILD)/bin --events 200000 --kills 8 $(if $(SEED),--seed $(SEED))

bench: build
	$(BUILD)/bin/vigil-bench-engine

bench-stream: build
	bench/stream_bench.sh $(BUILD)

bench-api: build
	bench/api_bench.sh $(BUILD)

# The console's board with 10,000 open alerts in headless Chromium: its load time beside the alerts read alone.
bench-console: build
	python3 bench/console_bench.py $(BUILD)/bin

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
