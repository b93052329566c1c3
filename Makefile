# wafernoc: every figure in docs/ is produced by a target here.
CARGO        ?= cargo
WAFERNOC     := target/release/wafernoc
# Bounded property-test cases for CI (`make test`); `make proptest-long` raises it.
PROPTEST_CASES ?= 64
OUT          ?= out

.PHONY: all build test fmt-check clippy unit proptest-long bench validate \
        sweep-synthetic sweep-mapping sweep-balancer paper traces demo clean

all: build

build:
	$(CARGO) build --release --workspace

$(WAFERNOC): build

## make test: formatting, lints, then every unit/integration/property test
## (release mode: the BookSim2 validation runs real simulations).
test: fmt-check clippy unit

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

unit:
	PROPTEST_CASES=$(PROPTEST_CASES) $(CARGO) test --release --workspace

## At least 10,000 cases per property (docs/deadlock.md records count and time).
proptest-long:
	PROPTEST_CASES=10000 $(CARGO) test --release --workspace -- --include-ignored proptest

## Simulation speed on fixed reference configurations (single thread).
bench: build
	$(WAFERNOC) bench

## Full BookSim2 comparison table (docs/validation.md).
validate: build
	$(WAFERNOC) validate ../shared/reference/booksim --out $(OUT)/validation

demo: build
	$(WAFERNOC) demo

clean:
	$(CARGO) clean
	rm -rf $(OUT)
