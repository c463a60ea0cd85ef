# Convenience front door. CMake does the real work in build/ (and build-asan/).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG     ?= examples/quickstart.yaml

.PHONY: all deps test-deps build build-asan run test test-normal test-asan soak bench lint clean

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHOOKD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# Install what is missing, build, and start the daemon on the quickstart config (data in ./data).
run: build
	./$(BUILD)/hookd serve --config $(CONFIG)

# Install what is missing, build twice (normal and ASan+UBSan), and run the whole suite on both.
test: test-deps test-normal test-asan

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j 2

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2

# The crash loop of tests/faults/test_crash_loop.py at SOAK_KILLS kills -9 instead of its
# default 30; not part of `make test`. It runs as faults.soak_crash_loop (tests/CMakeLists.txt),
# a case only `ctest -C Soak` sees, with a TIMEOUT of its own: `ctest --timeout` would not
# lift faults.test_crash_loop's 300 s (it only sets a default for tests without one).
SOAK_KILLS ?= 200
soak: build
	cd $(BUILD) && HOOKD_CRASH_KILLS=$(SOAK_KILLS) ctest -C Soak -R '^faults\.soak_crash_loop$$' \
	  --output-on-failure

bench: build
	bench/run.sh $(BUILD)

lint:
	@scripts/lint.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
