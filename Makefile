# wafernoc: every figure in docs/ is produced by a target here.
CARGO        ?= cargo
WAFERNOC     := target/release/wafernoc
# Bounded property-test cases for CI (`make test`); `make proptest-long` raises it.
PROPTEST_CASES ?= 64
OUT          ?= out
REF          ?= ../shared/reference/booksim

.PHONY: all build test fmt-check clippy doc unit test-dev proptest-long bench bench-booksim validate validate-extra validate-knobs \
        sweep-synthetic sweep-mapping sweep-balancer sweep-gpu paper traces demo clean

all: build

build:
	$(CARGO) build --release --workspace

$(WAFERNOC): build

## make test: formatting, lints, rustdoc, then every unit/integration/property test
## (release mode: the BookSim2 validation runs real simulations).
test: fmt-check clippy doc unit

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --profile ci --workspace --all-targets -- -D warnings

## Rustdoc of the workspace's crates, warnings (broken or private links) as errors.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

unit:
	PROPTEST_CASES=$(PROPTEST_CASES) $(CARGO) test --profile ci --workspace

## The library crates' tests in the dev profile, where debug assertions
## (the engine's internal checks) and overflow checks are on; about two
## minutes. Not part of `make test`: the command-line crate's tests run
## real simulations, far too slow unoptimised.
test-dev:
	PROPTEST_CASES=$(PROPTEST_CASES) $(CARGO) test -p wafernoc-router -p wafernoc-mesh \
	    -p wafernoc-traffic -p wafernoc-moe -p wafernoc-trace

## At least 10,000 cases per property (docs/deadlock.md records count and time).
proptest-long:
	PROPTEST_CASES=10000 $(CARGO) test --profile ci --workspace -- --include-ignored proptest

## Simulation speed on fixed reference configurations: every case on one
## thread, then 32x32 at 0.05 on two (the parallel engine's speed-up, and
## the most two threads could gain on this machine: two one-thread runs
## at once).
bench: build
	$(WAFERNOC) bench --repeat 5
	$(WAFERNOC) --threads 2 bench --only 32x32_uniform_0.05 --speedup 5

## wafernoc against BookSim2 on this machine, alternating in rounds pinned to
## one CPU (docs/performance.md, "BookSim2 on this machine"). Needs a
## BookSim2 binary built from github.com/booksim/booksim2 (see the script's
## header): make bench-booksim BOOKSIM=/path/to/booksim [ROUNDS=21]
ROUNDS ?= 21
bench-booksim:
	@test -n "$(BOOKSIM)" || { echo "set BOOKSIM=/path/to/booksim (tests/booksim_speed.sh says how to build it)" >&2; exit 2; }
	$(MAKE) build
	tests/booksim_speed.sh $(BOOKSIM) $(WAFERNOC) $(ROUNDS)

## Full BookSim2 comparison table (docs/validation.md).
validate: build
	$(WAFERNOC) validate $(REF) --seeds 8 --rule statistical --out $(OUT)/validation

## The same check on 246 BookSim2 runs outside shared/ (4x4, 8x8, 16x16; seven
## patterns), made in session 11 (tests/data/booksim-extra/README.md). Not
## --strict: one row is a known, explained failure (docs/validation.md);
## `make test` runs this set and fails on any other failing row.
validate-extra: build
	$(WAFERNOC) validate tests/data/booksim-extra --seeds 8 --rule statistical --out $(OUT)/validation-extra

## One router knob at a time against BookSim2 (every set in tests/data/booksim-knobs/,
## README.md there): each set is its own curve.
KNOBS := $(notdir $(patsubst %/,%,$(dir $(wildcard tests/data/booksim-knobs/*/results.csv))))
validate-knobs: build
	for k in $(KNOBS); do \
	  $(WAFERNOC) validate tests/data/booksim-knobs/$$k --seeds 8 --rule statistical --strict \
	    --out $(OUT)/validation-knobs/$$k || exit 1; \
	done

## Shipped traces (traces/*/README.md): converted from ../shared/traces by our importer.
SHARED_TRACES ?= ../shared/traces

traces: build
	mkdir -p traces/gpt-oss-20b traces/deepseek-esft traces/examples
	$(WAFERNOC) trace import --format gpt-oss-jsonl \
	    $(SHARED_TRACES)/gpt-oss-20b/decode_routing_128req.jsonl traces/gpt-oss-20b/decode_128req.wnrt
	$(WAFERNOC) trace import --format esft \
	    $(SHARED_TRACES)/deepseek-esft/intent traces/deepseek-esft/intent.wnrt
	install -m 644 $(SHARED_TRACES)/gpt-oss-20b/LICENSE traces/gpt-oss-20b/LICENSE
	install -m 644 $(SHARED_TRACES)/deepseek-esft/LICENSE-CODE $(SHARED_TRACES)/deepseek-esft/LICENSE-MODEL traces/deepseek-esft/
	$(WAFERNOC) trace convert traces/examples/packets_small.jsonl traces/examples/packets_small.wnpt
	$(WAFERNOC) trace stats traces/gpt-oss-20b/decode_128req.wnrt --slots 64
	$(WAFERNOC) trace stats traces/deepseek-esft/intent.wnrt --chunk 512

## Latency-throughput curves of the 12 reference networks beside BookSim2's points.
SYNTH_NETS := uniform_k8_v2_b4_p1 uniform_k8_v2_b4_p4 uniform_k8_v4_b8_p1 uniform_k8_v4_b8_p4 \
              transpose_k8_v2_b4_p1 transpose_k8_v2_b4_p4 transpose_k8_v4_b8_p1 transpose_k8_v4_b8_p4 \
              bitcomp_k8_v2_b4_p1 bitcomp_k8_v2_b4_p4 bitcomp_k8_v4_b8_p1 bitcomp_k8_v4_b8_p4
sweep-synthetic: build
	for n in $(SYNTH_NETS); do \
	  $(WAFERNOC) sweep-rates $(REF)/configs/$${n}_r0.01_latency.cfg --to-saturation --step 0.02 \
	    --reference $(REF) --name $$n --out $(OUT)/sweep-synthetic --quiet || exit 1; \
	done

## Block vs ER mapping comparison: CSV, plots and the tables of docs/reproduction.md.
sweep-mapping: build
	$(WAFERNOC) moe --sweep --out $(OUT)/sweep-mapping --quiet

## Balancer ladder on both shipped traces: none, greedy, topology x blocking,
## non-invasive (docs/reproduction.md "Balancer", docs/balancer.md). About
## 25 min with 2 jobs on 2 cores; --resume keeps finished points.
BAL_JOBS ?= 2
# $(call sweep_merged,FILE,DIR): run sweep FILE into DIR (resumable), then
# merge DIR's points into DIR/results.csv.
sweep_merged = $(WAFERNOC) sweep $(1) --out $(2) --jobs $(BAL_JOBS) --resume && \
	$(WAFERNOC) sweep merge $(2)
sweep-balancer: build
	$(call sweep_merged,docs/sweeps/balancer_gpt_oss.toml,$(OUT)/sweep-balancer/gpt-oss)
	$(call sweep_merged,docs/sweeps/balancer_esft.toml,$(OUT)/sweep-balancer/esft)
	$(call sweep_merged,docs/sweeps/balancer_zipf.toml,$(OUT)/sweep-balancer/zipf)

## 256 wafer-scale dies against the analytic NVL72 baseline, per device
## (docs/reproduction.md "Wafer against GPUs"): 16 + 8 points, 10-15 min
## with 2 jobs on 2 cores (571 s and 899 s in session 19), then 4 + 6 with
## a KV cache (58 s in session 20) and 8 with two more routing seeds (400 s),
## and draws two ratio plots (out/sweep-gpu/{her,tp1-kv}/ratio.svg).
sweep-gpu: build
	$(call sweep_merged,docs/sweeps/gpu_baseline.toml,$(OUT)/sweep-gpu/her)
	$(call sweep_merged,docs/sweeps/gpu_baseline_tp1.toml,$(OUT)/sweep-gpu/tp1)
	$(call sweep_merged,docs/sweeps/gpu_baseline_kv.toml,$(OUT)/sweep-gpu/her-kv)
	$(call sweep_merged,docs/sweeps/gpu_baseline_kv_tp1.toml,$(OUT)/sweep-gpu/tp1-kv)
	$(call sweep_merged,docs/sweeps/gpu_baseline_seeds.toml,$(OUT)/sweep-gpu/her-seeds)
	$(WAFERNOC) sweep plot $(OUT)/sweep-gpu/her --x gpu_baseline.tokens_per_device --log-x \
	  --y gpu_baseline.wafer_over_gpu_per_device,gpu_baseline.wafer_over_gpu_per_device_layer \
	  --series routing --where gpu_baseline=72 --hline 1 --x-label "tokens per device" \
	  --rename "gpu_baseline.wafer_over_gpu_per_device=>MoE" \
	  --rename "gpu_baseline.wafer_over_gpu_per_device_layer=>whole layers" \
	  --rename "routing=zipf:0=>uniform" --rename "routing=zipf:1.2=>Zipf 1.2" \
	  --y-label "wafer / 72 GPUs, per-device throughput" \
	  --title "DeepSeek-V3, 256 dies (HER TP16) against an NVL72, no KV cache" \
	  --out $(OUT)/sweep-gpu/her/ratio.svg
	$(WAFERNOC) sweep plot $(OUT)/sweep-gpu/tp1-kv --x gpu_baseline.tokens_per_device --log-x \
	  --y gpu_baseline.wafer_over_gpu_per_device_layer --series context --hline 1 \
	  --rename "context=4096=>4096 tokens of context" \
	  --rename "context=32768=>32768 tokens of context" \
	  --x-label "tokens per device" --y-label "wafer / 72 GPUs, whole layers" \
	  --title "DeepSeek-V3, 256 dies (TP1) against an NVL72, with a KV cache" \
	  --out $(OUT)/sweep-gpu/tp1-kv/ratio.svg

## Every figure and table of docs/reproduction.md, from scratch.
paper: build
	rm -rf $(OUT)/sweep-mapping $(OUT)/sweep-balancer $(OUT)/sweep-gpu
	$(MAKE) sweep-mapping sweep-balancer sweep-gpu

demo: build
	$(WAFERNOC) demo

clean:
	$(CARGO) clean
	rm -rf $(OUT)
