# Vigil: `make demo` runs the main job, `make test` runs every test.
# Each target installs what it needs first (deploy/install-deps.sh).
BUILD ?= build
JOBS ?= 2

.PHONY: all deps configure build test demo bench bench-stream bench-api clean

all: build

deps:
	@deploy/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# KEEP=1: leave the broker, vigild and its API running after the demo, until Ctrl-C.
demo: build
	VIGIL_DEMO_KEEP=$(if $(KEEP),1,0) deploy/demo.sh $(BUILD)

bench: build
	$(BUILD)/bin/vigil-bench-engine

bench-stream: build
	bench/stream_bench.sh $(BUILD)

bench-api: build
	bench/api_bench.sh $(BUILD)

clean:
	rm -rf $(BUILD)
