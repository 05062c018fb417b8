# The two commands:
#   make run    install what is missing, build, start cebusd (embedded
#               PostgreSQL under ./var/ unless CEBUS_DATABASE_URL is set)
#   make test   the same setup, then the whole suite under ASan+UBSan
#               against a throwaway PostgreSQL
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test deps build build-test bench fuzz valgrind clean

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCEBUS_SANITIZE=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target cebusd cebus

run: build
	@scripts/run.sh $(BUILD)

build-test: deps
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCEBUS_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j $(JOBS)

test: build-test
	@cd $(TEST_BUILD) && ctest --output-on-failure --timeout 600

# The integration suite with cebusd under valgrind's memcheck (no
# sanitizers in this build: the two do not mix).
valgrind: deps
	@cmake -S . -B build-vg -DCMAKE_BUILD_TYPE=Debug -DTEST_PG_PORT=55433 >/dev/null
	@cmake --build build-vg -j $(JOBS)
	@cd build-vg && CEBUS_TEST_VALGRIND=1 ctest --output-on-failure -R 'pg_|integration'

# Short libFuzzer runs of every driver in tests/fuzz, from the checked-in
# corpus (FUZZ_SECONDS each).
FUZZ_SECONDS ?= 60
fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCEBUS_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_pattern fuzz_cloudevent fuzz_matcher fuzz_flatten
	@scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

bench: build
	@cmake --build $(BUILD) -j $(JOBS) --target cebus-bench
	@scripts/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
