#!/usr/bin/env bash
# booksim_speed.sh BOOKSIM_BIN WAFERNOC_BIN ROUNDS
#
# Measures BookSim2's and wafernoc's simulation speed, in router-to-router
# flit-hops per wall-clock second, on the same network and traffic, by
# alternating runs of the two simulators in rounds pinned to one CPU.
#
# The machine's speed drifts (up to ~25% within an hour), so only numbers
# taken in the same round are compared: each round runs BookSim2 and wafernoc
# back to back (the order alternates from round to round) and reports the
# ratio wafernoc / BookSim2; the summary gives, per rate, the median and range
# of those ratios and each simulator's median flit-hops/s.
#
# Obtaining and building BookSim2 (the reference runs used this commit):
#   git clone https://github.com/booksim/booksim2
#   cd booksim2 && git checkout 28f43299f1706a3160ffac721ca461d74eb6e618
#   cd src && make            # needs g++, flex, bison; its default flags (-O3 -g)
#   # the binary is src/booksim
#
# Network and traffic (both simulators): 8x8 mesh, XY (dimension-order)
# routing, input-queued VC router, 4 VCs x 8 flits, 4-flit packets, iSLIP
# VC and switch allocators with 1 iteration, router delays 1/1/1/1, credit
# delay 0, 1-cycle links, Bernoulli uniform traffic (destination drawn from
# all 64 nodes, self included) at RATE flits/node/cycle, seed 0. BookSim2 runs
# the shared reference configuration uniform_k8_v4_b8_p4_r0.2_latency.cfg
# (under REF, default ../shared/reference/booksim) with, on its command
# line, injection_rate = RATE and two changes that do not touch the
# network or the traffic: sample_period = BS_SAMPLE_PERIOD (default 5000
# instead of 1000, so a run simulates ~30,000 cycles and lasts several
# seconds) and print_activity = 1 (each router prints its crossbar-traversal
# counters when it is destroyed, after the timed simulation has ended).
# wafernoc runs its own benchmark case `bench --only 8x8_uniform_<RATE>`.
#
# Flit-hop count for BookSim2 (router-to-router link traversals; injection
# and ejection channels are not counted, as in wafernoc):
#   exact:   F = sum over the 64 routers of the crossbar traversals to output
#            ports 0..3 (the 2n = 4 mesh ports; port 4 is the ejection port),
#            read from the print_activity switchMonitor dump. It covers the
#            whole simulation (warm-up, samples, drain): exactly the span
#            timed by BookSim2's "Total run time".
#   formula: F ~= A * 64 * T * (H - 1), with A = "Accepted flit rate average"
#            (flits/node/cycle), T = "Time taken" (cycles) and H = "Hops
#            average". BookSim2 increments f->hops once per router
#            (IQRouter switch traversal), so H counts routers traversed =
#            link hops + 1. Printed as a cross-check (it is ~0.2-1% high
#            because A is measured in steady state, not during fill/drain).
# BookSim2 flit-hops/s = F / time, with time either BookSim2's own "Total
#   run time" (gettimeofday around TrafficManager::Run(), the simulation
#   loop: "loop") or the whole process measured with date around the run
#   ("wall").
# wafernoc flit-hops/s = its JSON flit_hops_per_s (flit-hops counted over the
#   timed cycles after its warm-up, divided by the loop's wall-clock time:
#   "loop"); "wall" uses flit_hops_per_s * seconds / (process time).
#
# Environment: CPU (default 1) CPU to pin to with taskset; REF (see above); RATES (default
# "0.2 0.3"); BS_SAMPLE_PERIOD (default 5000); WN_SCALE (default 1, wafernoc
# --scale). BookSim2 exits with status 255 when its simulation succeeded
# (main returns -1 on success); the script checks the output instead.

set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 BOOKSIM_BIN WAFERNOC_BIN ROUNDS" >&2
    exit 2
fi

BOOKSIM=$1
WAFERNOC=$2
ROUNDS=$3
CPU=${CPU:-1}
RATES=${RATES:-"0.2 0.3"}
BS_SAMPLE_PERIOD=${BS_SAMPLE_PERIOD:-5000}
WN_SCALE=${WN_SCALE:-1}

[[ -x $BOOKSIM ]] || { echo "not executable: $BOOKSIM" >&2; exit 2; }
[[ -x $WAFERNOC ]] || { echo "not executable: $WAFERNOC" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer" >&2; exit 2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# The reference configuration; the rate, the sample period and
# print_activity are set on BookSim2's command line (`key=value`).
REF_CFG=${REF:-../shared/reference/booksim}/configs/uniform_k8_v4_b8_p4_r0.2_latency.cfg
[[ -r $REF_CFG ]] || { echo "no reference configuration $REF_CFG (set REF)" >&2; exit 2; }

now() { date +%s.%N; }

# run_booksim RATE -> sets BS_CYC BS_HOPS BS_LOOP BS_WALL BS_EST
run_booksim() {
    local rate=$1 out="$TMP/booksim_$1.out" t0 t1 rc=0
    t0=$(now)
    taskset -c "$CPU" "$BOOKSIM" "$REF_CFG" "injection_rate=$rate" \
        "sample_period=$BS_SAMPLE_PERIOD" print_activity=1 > "$out" 2>&1 || rc=$?
    t1=$(now)
    if [[ $rc -ne 255 && $rc -ne 0 ]] || ! grep -q '^Total run time ' "$out" \
        || grep -qE 'Aborting simulation|Too many sample periods' "$out"; then
        echo "BookSim2 run failed (exit $rc), last lines:" >&2
        tail -20 "$out" >&2
        exit 1
    fi
    BS_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    BS_CYC=$(sed -n 's/^Time taken is \([0-9]*\) cycles$/\1/p' "$out")
    BS_LOOP=$(sed -n 's/^Total run time \(.*\)$/\1/p' "$out")
    # Exact router-to-router traversals: switchMonitor lines "[i -> o] 0:N", o < 4.
    BS_HOPS=$(sed 's/^Inputs=[0-9]*Outputs=[0-9]*//' "$out" |
        awk '/^\[[0-9]+ -> [0-9]+\] 0:[0-9]+/ {
                 o = $3 + 0; split($4, a, ":"); if (o < 4) s += a[2]
             } END { printf "%d", s }')
    local acc hav
    acc=$(sed -n 's/^Accepted flit rate average = \([^ ]*\) .*/\1/p' "$out")
    hav=$(sed -n 's/^Hops average = \([^ ]*\) .*/\1/p' "$out")
    BS_EST=$(awk -v a="$acc" -v t="$BS_CYC" -v h="$hav" 'BEGIN { printf "%.0f", a * 64 * t * (h - 1) }')
    if [[ -z $BS_CYC || -z $BS_LOOP || $BS_HOPS -le 0 ]]; then
        echo "could not parse BookSim2 output $out" >&2
        exit 1
    fi
}

# run_wafernoc RATE -> sets WN_CYC WN_LOOP WN_WALL WN_FHPS
run_wafernoc() {
    local rate=$1 json t0 t1
    t0=$(now)
    json=$(taskset -c "$CPU" "$WAFERNOC" bench --only "8x8_uniform_$rate" --json --scale "$WN_SCALE")
    t1=$(now)
    if [[ $(grep -c '"name"' <<< "$json") -ne 1 ]] || ! grep -q "\"name\":\"8x8_uniform_$rate\"" <<< "$json"; then
        echo "unexpected wafernoc output: $json" >&2
        exit 1
    fi
    WN_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    WN_CYC=$(sed -n 's/.*"cycles":\([0-9]*\).*/\1/p' <<< "$json")
    WN_LOOP=$(sed -n 's/.*"seconds":\([0-9.eE+-]*\).*/\1/p' <<< "$json")
    WN_FHPS=$(sed -n 's/.*"flit_hops_per_s":\([0-9.eE+-]*\).*/\1/p' <<< "$json")
}

# median and range of the numbers in FILE (one per line): "median min max"
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.6g %.6g %.6g", m, v[1], v[NR] }'
}

echo "# booksim_speed.sh: $(date -u '+%Y-%m-%dT%H:%M:%SZ'), CPU $CPU, rounds $ROUNDS, rates $RATES"
echo "# booksim:  $BOOKSIM (sample_period $BS_SAMPLE_PERIOD)"
echo "# wafernoc: $WAFERNOC ($("$WAFERNOC" --version 2>/dev/null || echo '?'), --scale $WN_SCALE)"
echo "# fh/s = router-to-router flit-hops per second; loop = each simulator's own timing of"
echo "#   its simulation loop, wall = whole process (date around the run); ratio = wafernoc/BookSim2"
printf '%-5s %-5s %-8s | %-7s %-9s %-7s %-7s %-10s %-10s %-6s | %-7s %-7s %-7s %-10s %-10s | %-7s %-7s\n' \
    rate round time bs_cyc bs_hops bs_loop bs_wall bs_fhps_lp bs_fhps_wl est% \
    wn_cyc wn_loop wn_wall wn_fhps_lp wn_fhps_wl ratio_lp ratio_wl

for rate in $RATES; do
    : > "$TMP/bs_$rate"; : > "$TMP/wn_$rate"; : > "$TMP/rl_$rate"; : > "$TMP/rw_$rate"
    : > "$TMP/bsw_$rate"; : > "$TMP/wnw_$rate"; : > "$TMP/hops_$rate"
done

for ((round = 1; round <= ROUNDS; round++)); do
    for rate in $RATES; do
        stamp=$(date '+%H:%M:%S')
        if ((round % 2)); then
            run_booksim "$rate"; run_wafernoc "$rate"
        else
            run_wafernoc "$rate"; run_booksim "$rate"
        fi
        read -r bs_lp bs_wl wn_wl r_lp r_wl est <<< "$(awk \
            -v h="$BS_HOPS" -v bl="$BS_LOOP" -v bw="$BS_WALL" -v e="$BS_EST" \
            -v wf="$WN_FHPS" -v wl="$WN_LOOP" -v ww="$WN_WALL" 'BEGIN {
                bsl = h / bl; bsw = h / bw; wnw = wf * wl / ww
                printf "%.0f %.0f %.0f %.3f %.3f %+.2f", bsl, bsw, wnw, wf / bsl, wnw / bsw, 100 * (e / h - 1) }')"
        printf '%-5s %-5s %-8s | %-7s %-9s %-7.3f %-7s %-10s %-10s %-6s | %-7s %-7.3f %-7s %-10.0f %-10s | %-7s %-7s\n' \
            "$rate" "$round" "$stamp" "$BS_CYC" "$BS_HOPS" "$BS_LOOP" "$BS_WALL" "$bs_lp" "$bs_wl" "$est" \
            "$WN_CYC" "$WN_LOOP" "$WN_WALL" "$WN_FHPS" "$wn_wl" "$r_lp" "$r_wl"
        echo "$bs_lp" >> "$TMP/bs_$rate"; echo "$WN_FHPS" >> "$TMP/wn_$rate"
        echo "$bs_wl" >> "$TMP/bsw_$rate"; echo "$wn_wl" >> "$TMP/wnw_$rate"
        echo "$r_lp" >> "$TMP/rl_$rate"; echo "$r_wl" >> "$TMP/rw_$rate"
        echo "$BS_HOPS" >> "$TMP/hops_$rate"
    done
done

echo
echo "# summary per rate (median [min..max] over $ROUNDS rounds)"
for rate in $RATES; do
    if [[ $(sort -u "$TMP/hops_$rate" | wc -l) -ne 1 ]]; then
        echo "# WARNING: BookSim2 flit-hop counts differ between rounds at rate $rate" >&2
    fi
    # file prefix, label, printf format of the three numbers
    while IFS='|' read -r f label fmt; do
        read -r m lo hi <<< "$(stats "$TMP/${f}_$rate")"
        # shellcheck disable=SC2059
        printf "rate %s  %s: $fmt [$fmt..$fmt]\n" "$rate" "$label" "$m" "$lo" "$hi"
    done <<'ROWS'
bs|BookSim2 fh/s (loop)|%.4g
wn|wafernoc fh/s (loop)|%.4g
rl|ratio wafernoc/BookSim2 (loop)|%.1f
bsw|BookSim2 fh/s (wall)|%.4g
wnw|wafernoc fh/s (wall)|%.4g
rw|ratio wafernoc/BookSim2 (wall)|%.1f
ROWS
done
