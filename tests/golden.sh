#!/bin/bash
# Byte-identity check for engine changes: runs 17 commands (booksim
# configurations, run with wafers/classes/adaptive/speculative, moe, moe
# capture + replay in deps and closed mode, balance blocking and
# non-invasive, demo) and writes their stdout to OUTDIR/N.out.
#
#   tests/golden.sh BIN OUTDIR [global flags, e.g. --threads 2]
#   diff -r OUT_OLD OUT_NEW    # only the capture paths (they hold a PID)
#                              # and the demo's wall time may differ
#
# docs/performance.md records where it was used.
BIN=$(realpath "$1"); OUT=$(realpath -m "$2"); shift 2; G="$@"
mkdir -p "$OUT"; cd "$(dirname "$0")/.."
C=../shared/reference/booksim/configs
i=0
run() { i=$((i+1)); $BIN $G "$@" > $OUT/$i.out 2>/dev/null; echo "rc=$?" >> $OUT/$i.out; }
run booksim $C/uniform_k8_v4_b8_p4_r0.3_latency.cfg --json --quiet
run booksim $C/transpose_k8_v2_b4_p1_r0.3_latency.cfg --json --quiet
run booksim $C/bitcomp_k8_v2_b4_p4_r1.0_throughput.cfg --json --quiet
run booksim $C/uniform_k8_v2_b4_p1_r0.46_latency.cfg --json --quiet
run run tests/data/small.toml --set network.mesh.rows=8 --set network.mesh.cols=8 --set network.router.num_vcs=4 --set network.router.vc_buf_size=8 --set network.routing=\"adaptive_escape\" --set network.router.speculative=true --set traffic.rate=0.3 --json --quiet
run booksim $C/uniform_k8_v4_b8_p4_r0.2_latency.cfg wait_for_tail_credit=1 routing_delay=0 vc_alloc_delay=2 --json --quiet
run run tests/data/small.toml --json --quiet
run run tests/data/small.toml --set network.mesh.wafers_x=2 --set network.mesh.wafers_y=2 --set network.router.speculative=true --json --quiet
run run tests/data/small.toml --set network.mesh.rows=7 --set network.mesh.cols=5 --set network.routing=\"yx\" --set traffic.rate=0.5 --json --quiet
run moe --model DeepSeek-V3 --mesh 4x4 --tp 4 --dp 4 --mapping er --ring bidirectional --tokens-per-group 8 --json --quiet
run moe --model gpt-oss-20b --mesh 4x8 --tp 4 --dp 8 --mapping block --tokens-per-group 16 --json --quiet
run balance --model gpt-oss-20b --mesh 4x8 --tp 4 --dp 8 --routing trace:traces/gpt-oss-20b/decode_128req.wnrt --balancer topology --migration non-invasive --iterations 100..103 --layers 3 --json --quiet
run balance --model gpt-oss-20b --mesh 4x8 --tp 4 --dp 8 --routing zipf:1.2 --balancer greedy --migration blocking --iterations 6 --layers 2 --json --quiet
mkdir -p /tmp/cap-$$; run moe --model DeepSeek-V3 --mesh 4x4 --tp 4 --dp 4 --mapping er --ring bidirectional --tokens-per-group 8 --json --quiet --capture /tmp/cap-$$/cap.wnpt
for f in /tmp/cap-$$/cap*dispatch*.wnpt; do run replay-packets $f --mode deps --json --quiet --per-packet $OUT/pp$i.csv; run replay-packets $f --mode closed --json --quiet; done
rm -rf /tmp/cap-$$
run demo
