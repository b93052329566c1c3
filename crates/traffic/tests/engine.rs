//! Engine checks with closed-form answers and small fixed-seed runs.

use wafernoc_mesh::sim::{run_measured, SimControl};
use wafernoc_mesh::{ClassSpec, MeshSpec, Network, NetworkConfig, NewPacket};
use wafernoc_router::RouterConfig;
use wafernoc_traffic::{Pattern, Synthetic, SyntheticSpec};

/// A k×k mesh with `vcs` VCs of `buf` flits, activity-driven or stepping
/// everything (`step_all`).
fn cfg(k: usize, vcs: usize, buf: usize, step_all: bool) -> NetworkConfig {
    NetworkConfig {
        mesh: MeshSpec {
            rows: k,
            cols: k,
            ..Default::default()
        },
        router: RouterConfig {
            num_vcs: vcs,
            vc_buf_size: buf,
            ..Default::default()
        },
        step_all,
        ..Default::default()
    }
}

fn net(k: usize, vcs: usize, buf: usize) -> Network {
    Network::new(cfg(k, vcs, buf, false)).unwrap()
}

/// Send one packet of `size` flits from `src` to `dst` into an empty
/// network and return its delivery (within 500 cycles).
fn lone_packet(n: &mut Network, src: u32, dst: u32, size: u16) -> wafernoc_mesh::Delivered {
    n.enqueue(NewPacket {
        src,
        dst,
        size,
        class: 0,
        ctime: 0,
        tag: 7,
    })
    .unwrap();
    for _ in 0..500 {
        n.step().unwrap();
        if let Some(d) = n.drain_delivered().next() {
            return d;
        }
    }
    panic!("{src} -> {dst} not delivered in 500 cycles");
}

/// Cycle, after its head, at which flit `P − 1` of a lone packet enters
/// a link whose buffers hold `buf` flits: flit i goes one cycle after
/// flit i − 1, and not before the credit of flit i − buf is back, 5 cycles
/// after that flit went (the credit loop). P − 1 when P ≤ buf.
fn tail_send(p: u64, buf: u64) -> u64 {
    let mut s: Vec<u64> = Vec::new();
    for i in 0..p {
        let after_prev = if i == 0 { 0 } else { s[i as usize - 1] + 1 };
        let credit = if i >= buf {
            s[(i - buf) as usize] + 5
        } else {
            0
        };
        s.push(after_prev.max(credit));
    }
    s[p as usize - 1]
}

/// A lone packet of P flits over H hops: T0 = 7 + 5H + (P − 1) when it
/// fits in a buffer; beyond, the credit loop throttles its flits, once
/// (every hop has the same loop): T0 = 7 + 5H + tail_send(P, buf). With 2
/// VCs x 2 flits and P = 4 that is 13 + 5H, what BookSim2 gives
/// (docs/validation.md, knob sets).
#[test]
fn zero_load_latency_closed_form() {
    assert_eq!(tail_send(4, 2), 6);
    assert_eq!(tail_send(8, 4), 8);
    assert_eq!(tail_send(8, 8), 7);
    for &(vcs, buf) in &[(2usize, 2usize), (2, 4), (4, 8)] {
        for p in [1u16, 2, 4, 8] {
            for (src, dst) in [
                (0usize, 0usize),
                (0, 1),
                (0, 63),
                (27, 36),
                (63, 0),
                (9, 14),
            ] {
                let mut n = net(8, vcs, buf);
                let d = lone_packet(&mut n, src as u32, dst as u32, p);
                let h = n.topology().hops(src, dst) as u64;
                let t0 = 7 + 5 * h + tail_send(p as u64, buf as u64);
                if (p as usize) <= buf {
                    assert_eq!(t0, 7 + 5 * h + (p as u64 - 1));
                }
                assert_eq!(d.atime - d.ctime, t0, "P={p} H={h} vcs={vcs} buf={buf}");
                assert_eq!(d.hops as u64, h + 1);
                assert_eq!(d.tag, 7);
            }
        }
    }
}

/// BookSim2's batched stages at zero load. A lone head is routed alone,
/// so a routing delay of 2 adds its cycle per router as a pipelined stage
/// would: 8 + 6H + (P − 1). A crossbar of 2 cycles takes a packet's flits
/// in batches: its first flit crosses alone, the second waits for it, the
/// third joins the second, the fourth waits again, so a 4-flit packet
/// arrives one cycle later than through a pipelined crossbar: 12 + 6H
/// where the pipelined one gives 11 + 6H (BookSim2's flit trace,
/// docs/validation.md "Router knobs"); a 1-flit packet is not delayed.
#[test]
fn batched_stages_zero_load() {
    for (rd, stf, p, pipelined, batched) in [
        (2u32, 1u32, 1u16, 8u64, 8u64),
        (2, 1, 4, 11, 11),
        (1, 2, 1, 8, 8),
        (1, 2, 4, 11, 12),
    ] {
        for (src, dst) in [(0u32, 1u32), (0, 63), (27, 36), (9, 14)] {
            for batched_stages in [false, true] {
                let mut c = cfg(8, 4, 8, false);
                c.router.routing_delay = rd;
                c.router.st_final_delay = stf;
                c.router.batched_stages = batched_stages;
                let mut n = Network::new(c).unwrap();
                let d = lone_packet(&mut n, src, dst, p);
                let h = n.topology().hops(src as usize, dst as usize) as u64;
                let base = if batched_stages { batched } else { pipelined };
                assert_eq!(
                    d.atime - d.ctime,
                    base + 6 * h,
                    "rd {rd} stf {stf} P={p} H={h} batched {batched_stages}"
                );
            }
        }
    }
}

/// 33.2268 cycles is BookSim2's mean packet latency for this network and
/// load (../shared/reference/booksim/results.csv, uniform_k8_v2_b4_p1_r0.01);
/// the zero-load tolerance is 1 cycle.
#[test]
fn booksim_uniform_low_load() {
    let mut n = net(8, 2, 4);
    let spec = SyntheticSpec {
        pattern: Pattern::Uniform,
        rate: 0.01,
        sizes: vec![1],
        ..Default::default()
    };
    let mut src = Synthetic::new(spec, n.topology()).unwrap();
    let r = run_measured(&mut n, &mut src, &SimControl::default(), &mut |_, _| {}).unwrap();
    eprintln!("{:?}", r.packet_latency);
    assert!(
        (r.packet_latency.mean - 33.2268).abs() < 1.0,
        "{}",
        r.packet_latency.mean
    );
}

/// Every (source, destination) pair once, spaced so packets never meet:
/// the mean hop count is exactly 2(k²−1)/(3k) (uniform traffic including
/// self-traffic) and the mean latency exactly 7 + 5·H̄ + (P − 1).
#[test]
fn mean_hops_and_zero_load_latency_over_all_pairs() {
    for k in [4usize, 8] {
        let p = 4u16;
        let mut n = net(k, 2, 4);
        let nodes = k * k;
        let mut delivered = Vec::new();
        for s in 0..nodes {
            for d in 0..nodes {
                n.enqueue(NewPacket {
                    src: s as u32,
                    dst: d as u32,
                    size: p,
                    class: 0,
                    ctime: n.now(),
                    tag: 0,
                })
                .unwrap();
                // Run until this packet is out, so the next one sees an empty network.
                loop {
                    n.step().unwrap();
                    let got: Vec<_> = n.drain_delivered().collect();
                    if !got.is_empty() {
                        delivered.extend(got);
                        break;
                    }
                }
            }
        }
        assert_eq!(delivered.len(), nodes * nodes);
        let m = delivered.len() as f64;
        let mean_h: f64 = delivered.iter().map(|d| (d.hops - 1) as f64).sum::<f64>() / m;
        // `hops` is the topology's distance; the engine's link counter is
        // what the packets actually crossed: P flits x H links each.
        let links: u64 = delivered
            .iter()
            .map(|d| p as u64 * (d.hops as u64 - 1))
            .sum();
        assert_eq!(n.counters().flit_hops, links);
        let expect_h = 2.0 * ((k * k) as f64 - 1.0) / (3.0 * k as f64);
        assert!(
            (mean_h - expect_h).abs() < 1e-9,
            "k={k}: {mean_h} vs {expect_h}"
        );
        let mean_lat: f64 = delivered
            .iter()
            .map(|d| (d.atime - d.ctime) as f64)
            .sum::<f64>()
            / m;
        let expect_lat = 7.0 + 5.0 * expect_h + (p as f64 - 1.0);
        assert!(
            (mean_lat - expect_lat).abs() < 1e-9,
            "k={k}: {mean_lat} vs {expect_lat}"
        );
    }
}

/// Saturation throughput of uniform traffic cannot exceed the bisection
/// bound 4/k flits/node/cycle (k even), and accepted never exceeds offered
/// by more than sampling noise.
#[test]
fn saturation_below_bisection_bound_and_accepted_at_most_offered() {
    use wafernoc_mesh::sim::SimMode;
    for k in [8usize, 12] {
        let mut n = net(k, 4, 8);
        let spec = SyntheticSpec {
            rate: 1.0,
            sizes: vec![4],
            ..Default::default()
        };
        let mut src = Synthetic::new(spec, n.topology()).unwrap();
        let ctl = SimControl {
            sim_type: SimMode::Throughput,
            ..Default::default()
        };
        let r = run_measured(&mut n, &mut src, &ctl, &mut |_, _| {}).unwrap();
        let bound = 4.0 / k as f64;
        assert!(
            r.accepted.avg <= bound,
            "k={k}: accepted {} > bisection bound {bound}",
            r.accepted.avg
        );
        assert!(
            r.accepted.avg > 0.5 * bound,
            "k={k}: saturation throughput {} implausibly low",
            r.accepted.avg
        );
    }
    for rate in [0.05, 0.2, 0.35] {
        let mut n = net(8, 4, 8);
        let spec = SyntheticSpec {
            rate,
            sizes: vec![4],
            seed: 3,
            ..Default::default()
        };
        let mut src = Synthetic::new(spec, n.topology()).unwrap();
        let r = run_measured(&mut n, &mut src, &SimControl::default(), &mut |_, _| {}).unwrap();
        // Poisson noise of the packet count in the window: 4 standard deviations.
        let packets = rate / 4.0 * 64.0 * r.measured_cycles as f64;
        let tol = 4.0 * rate / packets.sqrt();
        assert!(
            r.accepted.avg <= rate + tol,
            "rate {rate}: accepted {} > offered + {tol}",
            r.accepted.avg
        );
        assert!(r.accepted.avg <= r.injected.avg + tol);
    }
}

/// The check mode that evaluates every router and interface every cycle
/// (with the general router step) gives exactly the same run as the
/// activity-driven engine (here with the step specialised for the default
/// pipeline, up to its largest VC count: 12 VCs × 5 ports).
#[test]
fn step_all_mode_is_identical() {
    // Knobs beyond the VC count, per case.
    type Knobs = fn(&mut NetworkConfig);
    fn defaults(_: &mut NetworkConfig) {}
    fn batched(c: &mut NetworkConfig) {
        // BookSim2's batched stages.
        c.router.batched_stages = true;
        c.router.routing_delay = 2;
        c.router.st_final_delay = 2;
    }
    fn shared_spec(c: &mut NetworkConfig) {
        // BookSim2's speculation.
        c.router.speculative = true;
        c.router.shared_speculation = true;
    }
    fn slow_links(c: &mut NetworkConfig) {
        // Too slow for ring mode: the one-part step without rings (B = 4).
        c.mesh.link_latency = 3;
    }
    fn slow_local(c: &mut NetworkConfig) {
        // Ring mode with 2-cycle injection and ejection links.
        c.mesh.local_latency = 2;
    }
    let cases: [(f64, u16, Pattern, usize, Knobs); 9] = [
        (0.05, 1, Pattern::Uniform, 2, defaults),
        (0.3, 4, Pattern::Uniform, 2, defaults),
        (0.12, 4, Pattern::Transpose, 2, defaults),
        (0.45, 4, Pattern::Uniform, 12, defaults),
        (0.3, 2, Pattern::Transpose, 12, defaults),
        (0.3, 4, Pattern::Uniform, 3, batched),
        (0.35, 4, Pattern::Uniform, 5, shared_spec),
        (0.3, 4, Pattern::Uniform, 4, slow_links),
        (0.3, 4, Pattern::Uniform, 4, slow_local),
    ];
    for (rate, size, pattern, vcs, knobs) in cases {
        let mut outs = Vec::new();
        for step_all in [false, true] {
            let mut c = cfg(8, vcs, 4, step_all);
            knobs(&mut c);
            let mut n = Network::new(c).unwrap();
            let spec = SyntheticSpec {
                pattern: pattern.clone(),
                rate,
                sizes: vec![size],
                seed: 11,
                ..Default::default()
            };
            let mut src = Synthetic::new(spec, n.topology()).unwrap();
            let r = run_measured(&mut n, &mut src, &SimControl::default(), &mut |_, _| {}).unwrap();
            outs.push((format!("{r:?}"), n.link_flits(), n.counters().clone()));
        }
        assert_eq!(outs[0], outs[1], "rate {rate}: step-all differs");
    }
}

/// A thread whose share of the VC records exceeds the touch threshold
/// (set here to 512 KiB, the default on a host with that L2; 32×32 with 4
/// VCs: 1.25 MiB, 640 KiB a thread on two) reads its arrivals' records in
/// a first pass; a run there equals the step-everything check mode, and
/// one on two threads. (The pass only reads, so what this catches is a
/// bad index; the mesh crate's `touch_pass_threshold` checks that the
/// pass is on in these runs. The threshold changes only the speed of
/// the other tests of this binary.)
#[test]
fn large_parts_touch_their_arrivals() {
    wafernoc_mesh::network::set_touch_threshold(Some(512 << 10));
    let run = |step_all: bool, threads: usize| {
        let mut n = Network::with_threads(cfg(32, 4, 8, step_all), threads).unwrap();
        let spec = SyntheticSpec {
            pattern: Pattern::Uniform,
            rate: 0.02,
            sizes: vec![4],
            seed: 5,
            ..Default::default()
        };
        let mut src = Synthetic::new(spec, n.topology()).unwrap();
        let ctl = SimControl {
            warmup_periods: 1,
            sample_period: 300,
            max_samples: 2,
            ..Default::default()
        };
        let r = run_measured(&mut n, &mut src, &ctl, &mut |_, _| {}).unwrap();
        (format!("{r:?}"), n.link_flits(), n.counters().clone())
    };
    let one = run(false, 1);
    assert!(one.2.delivered_packets > 1000, "{:?}", one.2);
    assert_eq!(one, run(true, 1), "step-all differs");
    assert_eq!(one, run(false, 2), "two threads differ");
}

/// Routers with more than 64 VCs (16 VCs × 5 ports) keep their VC masks in
/// two words and take the general router step: a lone packet still meets
/// the closed-form zero-load latency (its injection VCs are in the second
/// word), and a loaded run equals the step-everything check mode.
#[test]
fn more_than_64_vcs_per_router() {
    for (src, dst) in [(0u32, 63u32), (27, 36), (9, 14)] {
        let mut n = net(8, 16, 4);
        let d = lone_packet(&mut n, src, dst, 4);
        let h = n.topology().hops(src as usize, dst as usize) as u64;
        assert_eq!(d.atime - d.ctime, 7 + 5 * h + 3, "{src} -> {dst}");
    }
    let mut outs = Vec::new();
    for step_all in [false, true] {
        let mut n = Network::new(cfg(8, 16, 4, step_all)).unwrap();
        let spec = SyntheticSpec {
            rate: 0.3,
            sizes: vec![4],
            seed: 5,
            ..Default::default()
        };
        let mut src = Synthetic::new(spec, n.topology()).unwrap();
        let r = run_measured(&mut n, &mut src, &SimControl::default(), &mut |_, _| {}).unwrap();
        assert!(n.counters().delivered_packets > 1000);
        outs.push((format!("{r:?}"), n.link_flits(), n.counters().clone()));
    }
    assert_eq!(outs[0], outs[1], "16 VCs: step-all differs");
}

/// Same seed and configuration: identical results; another seed: different.
#[test]
fn deterministic_for_a_seed() {
    let run = |seed| {
        let mut n = net(8, 2, 4);
        let spec = SyntheticSpec {
            rate: 0.2,
            sizes: vec![4],
            seed,
            ..Default::default()
        };
        let mut src = Synthetic::new(spec, n.topology()).unwrap();
        format!(
            "{:?}",
            run_measured(&mut n, &mut src, &SimControl::default(), &mut |_, _| {}).unwrap()
        )
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

/// `fast_forward` over a quiescent network equals stepping the idle cycles:
/// two bursts of traffic separated by a gap give the same deliveries (cycle
/// for cycle) whether the gap is stepped or skipped; and it refuses while
/// anything is in flight.
#[test]
fn fast_forward_equals_stepping_idle_cycles() {
    let burst = |n: &mut Network, base: u64| {
        for i in 0..64u32 {
            n.enqueue(NewPacket {
                src: i % 16,
                dst: (i * 7 + 3) % 16,
                size: 1 + (i % 4) as u16,
                class: 0,
                ctime: n.now(),
                tag: base + u64::from(i),
            })
            .unwrap();
        }
    };
    let run = |skip: bool| {
        let mut n = net(4, 2, 4);
        let mut log = Vec::new();
        burst(&mut n, 0);
        assert!(!n.is_quiescent());
        assert!(
            !n.fast_forward(n.now() + 10),
            "must refuse with packets queued"
        );
        while !n.is_quiescent() {
            n.step().unwrap();
            log.extend(n.drain_delivered().map(|d| (d.tag, d.itime, d.atime)));
        }
        let resume = n.now() + 5000;
        if skip {
            let now = n.now();
            assert!(!n.fast_forward(now - 1), "must refuse a cycle in the past");
            assert_eq!(n.now(), now);
            assert!(n.fast_forward(resume));
        } else {
            while n.now() < resume {
                n.step().unwrap();
            }
        }
        assert_eq!(n.now(), resume);
        burst(&mut n, 1000);
        while !n.is_quiescent() {
            n.step().unwrap();
            log.extend(n.drain_delivered().map(|d| (d.tag, d.itime, d.atime)));
        }
        (log, n.counters().clone())
    };
    let (a, ca) = run(false);
    let (b, cb) = run(true);
    assert_eq!(a.len(), 128);
    assert_eq!(a, b);
    assert_eq!(ca, cb);
}

/// Two 1×2 wafers side by side, joined by links of 4 cycles per flit; 2
/// VCs of 8 flits, with or without speculation.
fn slow_link(speculative: bool) -> NetworkConfig {
    NetworkConfig {
        mesh: MeshSpec {
            rows: 1,
            cols: 2,
            wafers_x: 2,
            wafers_y: 1,
            cross_cycles_per_flit: 4,
            ..Default::default()
        },
        router: RouterConfig {
            num_vcs: 2,
            vc_buf_size: 8,
            speculative,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A slow wafer-crossing link carries at most one flit every
/// `cross_cycles_per_flit` cycles, also for flits granted speculatively
/// (single-flit packets: every flit is a head and goes through speculative
/// switch allocation). Found by a debug-build property test: speculative
/// grants did not check the output link.
#[test]
fn speculative_grants_respect_slow_links() {
    for speculative in [false, true] {
        let mut n = Network::new(slow_link(speculative)).unwrap();
        let packets = 200u64;
        for k in 0..packets {
            n.enqueue(NewPacket {
                src: 0,
                dst: 3,
                size: 1,
                class: 0,
                ctime: 0,
                tag: k,
            })
            .unwrap();
        }
        let mut arrivals = Vec::new();
        while arrivals.len() < packets as usize {
            n.step().unwrap();
            arrivals.extend(n.drain_delivered().map(|d| d.atime));
        }
        arrivals.sort_unstable();
        for w in arrivals.windows(2) {
            assert!(
                w[1] - w[0] >= 4,
                "speculative={speculative}: flits {} and {} cycles apart over a 4-cycle link",
                w[0],
                w[1]
            );
        }
    }
}

/// BookSim2 counts a packet as injected when its head leaves the source
/// queue (`_sent_packets`), so with 4-flit packets from one source the
/// packet count is the flit count divided by 4, rounded up, after every
/// cycle: rounded down would be counting tails.
#[test]
fn injected_packets_are_counted_with_their_heads() {
    let mut n = net(4, 2, 4);
    for dst in [5u32, 10, 15, 3, 12] {
        n.enqueue(NewPacket {
            src: 0,
            dst,
            size: 4,
            class: 0,
            ctime: 0,
            tag: 0,
        })
        .unwrap();
    }
    let mut heads_seen_mid_packet = false;
    for _ in 0..300 {
        n.step().unwrap();
        let flits = n.injected_by_node()[0];
        let packets = n.injected_packets_by_node()[0];
        assert_eq!(packets, flits.div_ceil(4), "{flits} flits");
        heads_seen_mid_packet |= flits % 4 != 0;
        assert!(n.injected_packets_by_node()[1..].iter().all(|&p| p == 0));
    }
    assert_eq!(n.injected_by_node()[0], 20);
    assert!(heads_seen_mid_packet, "never saw a packet partly injected");
}

/// `Delivered::flit_latency_sum` is the sum over the packet's flits of
/// (ejection cycle − injection cycle). A lone packet that fits in a buffer
/// moves as a train: flit i leaves its source at `itime + i` and is
/// ejected at `atime − (P − 1) + i`, so each of its P flits takes
/// `atime − itime − (P − 1)` cycles.
#[test]
fn flit_latency_sum_of_lone_packets() {
    for p in [1u16, 2, 4] {
        for (src, dst) in [(0u32, 0u32), (0, 63), (27, 36), (63, 0)] {
            let mut n = net(8, 2, 4);
            let d = lone_packet(&mut n, src, dst, p);
            let per_flit = d.atime - d.itime - (p as u64 - 1);
            assert_eq!(
                d.flit_latency_sum,
                p as u64 * per_flit,
                "P={p} {src} -> {dst}: {d:?}"
            );
        }
    }
}

/// The cycles in which node 0's interface sent a flit, over `cycles`
/// steps of `n`, and the deliveries as (tag, itime).
fn injection_trace(n: &mut Network, cycles: usize) -> (Vec<u64>, Vec<(u64, u64)>) {
    let (mut sent, mut delivered, mut before) = (Vec::new(), Vec::new(), 0);
    for _ in 0..cycles {
        let t = n.now();
        n.step().unwrap();
        let after = n.injected_by_node()[0];
        sent.extend((before..after).map(|_| t));
        before = after;
        delivered.extend(n.drain_delivered().map(|d| (d.tag, d.itime)));
    }
    delivered.sort_unstable();
    (sent, delivered)
}

/// With `wait_for_tail_credit` an interface's VC stays in use after its
/// tail left, until that tail's credit is back. Three single-flit packets
/// from one node over 2 VCs: the first takes VC 0 in cycle 0, the second
/// VC 1 in cycle 1; the third waits for VC 0's credit, back 6 cycles after
/// its flit left (the 5-cycle loop of `tail_send`, plus the cycle the flit,
/// a head, spends in VC allocation). Without the option it leaves in
/// cycle 2.
#[test]
fn wait_for_tail_credit_holds_interface_vcs() {
    for (wait, third) in [(false, 2u64), (true, 6)] {
        let mut c = cfg(4, 2, 4, false);
        c.router.wait_for_tail_credit = wait;
        let mut n = Network::new(c).unwrap();
        for tag in 0..3 {
            n.enqueue(NewPacket {
                src: 0,
                dst: 1,
                size: 1,
                class: 0,
                ctime: 0,
                tag,
            })
            .unwrap();
        }
        let (sent, delivered) = injection_trace(&mut n, 100);
        assert_eq!(sent, [0, 1, third], "wait_for_tail_credit={wait}");
        assert_eq!(delivered, [(0, 0), (1, 1), (2, third)]);
    }
}

/// `wait_for_tail_credit` with a packet paused mid-way: its VC gets every
/// credit back while it waits for a higher-priority class, but it is not
/// released before its tail's credit. Node 0 sends a 1-flit packet of the
/// high class (its only VC, cycle 0), then an 8-flit packet A of the low
/// class (its only VC, cycles 1..=5), paused while the second high packet
/// (8 flits, from cycle 6 when its VC's credit is back) goes, then A's
/// last 3 flits (14..=16). The low class's next packet takes A's VC again:
/// not before A's tail credit is back, 5 cycles after cycle 16 at the
/// earliest (the credit loop of `tail_send`).
#[test]
fn wait_for_tail_credit_holds_a_paused_packets_vc() {
    let mut c = cfg(4, 2, 8, false);
    c.router.wait_for_tail_credit = true;
    c.classes = vec![
        ClassSpec {
            name: "low".into(),
            vcs: 1,
            priority: 0,
        },
        ClassSpec {
            name: "high".into(),
            vcs: 1,
            priority: 1,
        },
    ];
    let mut n = Network::new(c).unwrap();
    for (tag, class, size) in [(0u64, 1u8, 1u16), (1, 0, 8), (2, 1, 8), (3, 0, 1)] {
        n.enqueue(NewPacket {
            src: 0,
            dst: 1,
            size,
            class,
            ctime: 0,
            tag,
        })
        .unwrap();
    }
    let (sent, delivered) = injection_trace(&mut n, 200);
    assert_eq!(sent.len(), 18);
    assert_eq!(sent[..17], (0..17).collect::<Vec<u64>>()[..]);
    let itimes: Vec<u64> = delivered.iter().map(|d| d.1).collect();
    assert_eq!(itimes[..3], [0, 1, 6], "{delivered:?}");
    assert_eq!(sent[17], itimes[3]);
    assert!(
        itimes[3] >= 16 + 5,
        "the low class's next head left in cycle {}, before A's tail credit",
        itimes[3]
    );
}

/// The class order of each delivery (by arrival, ties by tag) when node 1
/// sends 30 packets of 2 flits of class `from1` and node 0 (one hop
/// further west) 30 of class `from0` to node 2 of a 3×3 mesh, all
/// created in cycle 0: from cycle 7 both streams want router 1's east
/// output. The classes share 4 VCs of 8 flits.
fn east_output_order(classes: Vec<ClassSpec>, from0: u8, from1: u8) -> Vec<u8> {
    let mut c = cfg(3, 4, 8, false);
    c.classes = classes;
    let mut n = Network::new(c).unwrap();
    for i in 0..30u64 {
        for (src, class) in [(0u32, from0), (1, from1)] {
            n.enqueue(NewPacket {
                src,
                dst: 2,
                size: 2,
                class,
                ctime: 0,
                tag: 2 * i + src as u64,
            })
            .unwrap();
        }
    }
    let mut got = Vec::new();
    for _ in 0..1000 {
        n.step().unwrap();
        got.extend(n.drain_delivered().map(|d| (d.atime, d.tag, d.class)));
    }
    assert_eq!(got.len(), 60);
    got.sort_unstable();
    got.into_iter().map(|(_, _, class)| class).collect()
}

/// A higher-priority class wins every switch allocation it takes part
/// in (docs/configuration.md, "Message classes"): node 1's packets, on
/// the higher class with 3 VCs (enough to pipeline its heads' VC
/// allocation, so its stream has no gaps), all arrive before any of node
/// 0's, whose first flits reach router 1 after node 1's stream is under
/// way. The priority is the class's whatever its place in the list, on
/// each of its VCs (the first VC of the second class belongs to it, not
/// to the first). The control: with equal priorities the two streams
/// share the link, and node 0's first packet arrives before half of node
/// 1's.
#[test]
fn higher_priority_wins_the_contended_output() {
    let class = |name: &str, vcs, priority| ClassSpec {
        name: name.into(),
        vcs,
        priority,
    };
    let high_second = east_output_order(vec![class("low", 1, 0), class("high", 3, 1)], 0, 1);
    assert_eq!(
        high_second,
        [[1u8; 30], [0; 30]].concat(),
        "{high_second:?}"
    );
    let high_first = east_output_order(vec![class("high", 3, 1), class("low", 1, 0)], 1, 0);
    assert_eq!(high_first, [[0u8; 30], [1; 30]].concat(), "{high_first:?}");
    let equal = east_output_order(vec![class("a", 1, 0), class("b", 3, 0)], 0, 1);
    // Node 0's first packet arrives before half of node 1's.
    let first_a = equal.iter().position(|&c| c == 0).unwrap();
    assert!(first_a < 15, "{equal:?}");
}

/// A stream of single-flit packets at exactly a slow link's rate (one
/// every `cross_cycles_per_flit` = 4 cycles) is never held: every packet
/// takes the first one's latency, with or without speculation. (Checking
/// the link one cycle early, at the grant's cycle rather than the send's,
/// delayed every speculative head after the first by a cycle.) Speculation
/// saves its cycle at each of the 4 routers of the row: a network with a
/// slow link still makes speculative requests (were they dropped, every
/// packet would still take one latency, and the check above would pass).
#[test]
fn a_stream_at_a_slow_links_rate_is_never_held() {
    let mut first = Vec::new();
    for speculative in [false, true] {
        let mut n = Network::new(slow_link(speculative)).unwrap();
        let mut latency = Vec::new();
        for t in 0..400u64 {
            if t % 4 == 0 && t < 320 {
                n.enqueue(NewPacket {
                    src: 0,
                    dst: 3,
                    size: 1,
                    class: 0,
                    ctime: t,
                    tag: t,
                })
                .unwrap();
            }
            n.step().unwrap();
            latency.extend(n.drain_delivered().map(|d| d.atime - d.ctime));
        }
        assert_eq!(latency.len(), 80);
        first.push(latency[0]);
        assert!(
            latency.iter().all(|&l| l == latency[0]),
            "speculative={speculative}: {latency:?}"
        );
    }
    assert_eq!(first[1] + 4, first[0], "latency without / with speculation");
}
