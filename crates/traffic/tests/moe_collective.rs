//! MoE collectives on the engine: confinement of the ER all-to-all, exact
//! ring all-reduce volumes, determinism, errors that name the parameter.

use wafernoc_mesh::Routing;
use wafernoc_moe::{
    AllToAllMode, Mapping, MoeModel, ParallelPlan, RingPolicy, RoutingSource, WaferSpec,
};
use wafernoc_traffic::collective::{
    allreduce_schedule, flows_schedule, layer_traffic, network_config, simulate_layer,
    CollectiveError, LayerSpec, LayerWorkload, NocParams, PhaseRunner, Schedule, CLASS_COLLECTIVE,
};

fn spec(
    model: &str,
    wafer: WaferSpec,
    tp: usize,
    dp: usize,
    mapping: Mapping,
    tokens: u64,
) -> LayerSpec {
    LayerSpec {
        wafer,
        model: MoeModel::preset(model).unwrap(),
        plan: ParallelPlan::new(tp, dp, mapping),
        workload: LayerWorkload {
            tokens_per_group: tokens,
            routing: RoutingSource::Uniform,
            seed: 7,
            layer: 0,
            alltoall: AllToAllMode::Confined,
        },
        noc: NocParams::default(),
    }
}

fn er(tile: Option<(usize, usize)>, ring: RingPolicy) -> Mapping {
    Mapping::Er { tile, ring }
}

fn quiet() -> impl FnMut(u64, &str) {
    |_, _| {}
}

/// Every FTD tile shape `a x b` with `a * b = dp` that tiles a `k x k` mesh.
fn tiles(k: usize, dp: usize) -> Vec<(usize, usize)> {
    (1..=dp)
        .filter(|a| dp % a == 0)
        .map(|a| (a, dp / a))
        .filter(|&(a, b)| k % a == 0 && k % b == 0)
        .collect()
}

/// Under ER the confined dispatch and combine never put a flit on a link
/// between two FTD tiles: every mesh and model of the mapping sweep, every
/// tile shape (a few tokens per group keep it fast).
#[test]
fn er_alltoall_never_crosses_a_tile_boundary() {
    for k in [4usize, 8, 16] {
        for model in ["DeepSeek-V3", "Qwen3-235B", "Mixtral-8x22B"] {
            for tile in tiles(k, k) {
                let s = spec(
                    model,
                    WaferSpec::single(k, k),
                    k,
                    k,
                    er(Some(tile), RingPolicy::Same),
                    3,
                );
                let (layout, _, d, c, copies) = layer_traffic(&s).unwrap();
                assert_eq!(copies, 3 * k as u64 * s.model.top_k as u64);
                let mut run = PhaseRunner::new(&s.wafer, &layout, &s.noc).unwrap();
                for (name, flows) in [("dispatch", &d.flows), ("combine", &c.flows)] {
                    let p = run
                        .run(
                            name,
                            &flows_schedule(flows, CLASS_COLLECTIVE).unwrap(),
                            &mut quiet(),
                        )
                        .unwrap();
                    assert!(p.flits > 0, "{model} {k}x{k} {tile:?} {name}");
                    assert_eq!(p.boundary_flits, 0, "{model} {k}x{k} tile {tile:?} {name}");
                    assert_eq!(p.mean_boundary_utilization, 0.0);
                    assert_eq!(p.intra_tile_flits, p.link_flit_hops);
                    // Every boundary link is cold.
                    let nb = run.links().iter().filter(|l| l.boundary).count();
                    assert_eq!(p.cold_boundary_links, nb);
                }
            }
        }
    }
}

/// The block mapping's all-to-all does cross tile boundaries (the check above
/// is not vacuous), and the global mode leaves the FTDs under ER too.
#[test]
fn block_and_global_alltoall_cross_boundaries() {
    let s = spec(
        "DeepSeek-V3",
        WaferSpec::single(8, 8),
        8,
        8,
        Mapping::block(),
        4,
    );
    let r = simulate_layer(&s, &mut quiet()).unwrap();
    assert!(r.dispatch.boundary_flits > 0);
    assert!(r.combine.boundary_flits > 0);
    // The block ring all-reduce stays inside its TP tile.
    assert_eq!(r.allreduce.boundary_flits, 0);
    let mut g = spec(
        "DeepSeek-V3",
        WaferSpec::single(8, 8),
        8,
        8,
        Mapping::er(),
        4,
    );
    g.workload.alltoall = AllToAllMode::Global;
    let r = simulate_layer(&g, &mut quiet()).unwrap();
    assert!(r.dispatch.boundary_flits > 0);
}

/// Bytes and flits a ring all-reduce must move: every member sends 2(t-1)
/// chunks of M/t bytes (per direction half when bidirectional).
fn check_flat_ring(wafer: WaferSpec, tp: usize, dp: usize, mapping: Mapping, m: u64) {
    let layout = ParallelPlan::new(tp, dp, mapping)
        .layout(&wafer, wafer.num_devices())
        .unwrap();
    let sched = allreduce_schedule(&layout, m, CLASS_COLLECTIVE).unwrap();
    let t = tp as u64;
    let fb = u64::from(wafer.flit_bytes);
    let halves: Vec<u64> = match mapping.ring() {
        RingPolicy::Bidirectional => vec![m.div_ceil(2), m / 2],
        _ => vec![m],
    };
    // Per member: exactly 2(t-1)/t * M bytes (t divides every half here).
    for h in &halves {
        assert_eq!(h % t, 0, "test sizes must divide");
    }
    let per_member: u64 = halves.iter().map(|h| 2 * (t - 1) * h / t).sum();
    let sent = sched.bytes_sent_by_device();
    assert_eq!(sent.len(), wafer.num_devices());
    assert!(
        sent.iter().all(|&b| b == per_member),
        "{mapping:?}: {sent:?} != {per_member}"
    );
    let flits_per_member: u64 = halves
        .iter()
        .map(|h| 2 * (t - 1) * (h / t).div_ceil(fb))
        .sum();
    let mut run = PhaseRunner::new(&wafer, &layout, &NocParams::default()).unwrap();
    let p = run.run("allreduce", &sched, &mut quiet()).unwrap();
    let n = wafer.num_devices() as u64;
    assert_eq!(p.bytes, per_member * n, "{mapping:?}");
    assert_eq!(p.flits, flits_per_member * n, "{mapping:?}");
    assert_eq!(p.messages, sched.messages().len() as u64);
    assert!(p.cycles > 0);
    // Closed loop: 2(t-1) dependent steps, each at least one chunk long.
    assert!(p.cycles >= 2 * (t - 1) * (halves[0] / t).div_ceil(fb));
    // The network is empty afterwards.
    assert_eq!(run.network().packets_outstanding(), 0);
    // Every flit crossed at least one link; under block (neighbour rings)
    // exactly one.
    if matches!(mapping, Mapping::Block { .. }) {
        assert_eq!(p.link_flit_hops, p.flits);
    } else {
        assert!(p.link_flit_hops >= p.flits);
    }
}

#[test]
fn ring_allreduce_moves_exact_bytes() {
    // M a multiple of t (and of 2t for the bidirectional halves), and a
    // chunk that is not a whole number of flits (flit rounding).
    for ring in [
        RingPolicy::Same,
        RingPolicy::Alternate,
        RingPolicy::Bidirectional,
    ] {
        check_flat_ring(
            WaferSpec::single(4, 4),
            4,
            4,
            Mapping::Block { tile: None, ring },
            8 * 1000,
        );
        check_flat_ring(WaferSpec::single(4, 4), 4, 4, er(None, ring), 8 * 1000);
        check_flat_ring(
            WaferSpec::single(2, 4),
            8,
            1,
            Mapping::Block { tile: None, ring },
            16 * 300,
        );
        check_flat_ring(
            WaferSpec::single(4, 4),
            8,
            2,
            er(Some((1, 2)), ring),
            16 * 512,
        );
    }
}

/// Hierarchical ER on two 4x4 wafers (TP = 8, DP = 4, 2x2 FTD tiles): every
/// member sends (t_w - 1) M/t_w in reduce-scatter and in all-gather, plus
/// 2(W - 1) M/(t_w W) in the exchange between wafers.
#[test]
fn hierarchical_allreduce_volumes() {
    let wafer = WaferSpec::multi(4, 4, 2, 1);
    for ring in [RingPolicy::Same, RingPolicy::Bidirectional] {
        let layout = ParallelPlan::new(8, 4, Mapping::Her { tile: None, ring })
            .layout(&wafer, 32)
            .unwrap();
        let m = 64 * 1024u64;
        let sched = allreduce_schedule(&layout, m, CLASS_COLLECTIVE).unwrap();
        let (tw, w) = (4u64, 2u64);
        let per_half = |h: u64| 2 * (tw - 1) * h / tw + 2 * (w - 1) * h / (tw * w);
        let want = match ring {
            RingPolicy::Bidirectional => 2 * per_half(m / 2),
            _ => per_half(m),
        };
        let sent = sched.bytes_sent_by_device();
        assert!(sent.iter().all(|&b| b == want), "{sent:?} != {want}");
        let mut run = PhaseRunner::new(&wafer, &layout, &NocParams::default()).unwrap();
        let p = run.run("allreduce", &sched, &mut quiet()).unwrap();
        assert_eq!(p.bytes, want * 32);
        // Only the exchange crosses the wafer edge: 2(W-1) shards of
        // M/(t_w W) bytes per member, one hop over the edge each.
        let cross: u64 = run
            .links()
            .iter()
            .zip(&p.link_flits)
            .filter(|(l, _)| l.cross_wafer)
            .map(|(_, f)| f)
            .sum();
        let shard_flits = |h: u64| (h / (tw * w)).div_ceil(256);
        let want_cross = match ring {
            RingPolicy::Bidirectional => 2 * 2 * (w - 1) * shard_flits(m / 2) * 32,
            _ => 2 * (w - 1) * shard_flits(m) * 32,
        };
        assert_eq!(cross, want_cross);
    }
}

/// Four 2x2 wafers (2x2 arrangement), one FTD per wafer: the all-reduce is
/// only the exchange between wafers, whose ring visits the wafers as
/// neighbours (0, 1, 3, 2), so every message crosses exactly one wafer edge.
#[test]
fn hierarchical_exchange_ring_visits_neighbouring_wafers() {
    let wafer = WaferSpec::multi(2, 2, 2, 2);
    let layout = ParallelPlan::new(4, 4, Mapping::her())
        .layout(&wafer, 16)
        .unwrap();
    let m = 4 * 4096u64;
    let sched = allreduce_schedule(&layout, m, CLASS_COLLECTIVE).unwrap();
    let sent = sched.bytes_sent_by_device();
    assert!(sent.iter().all(|&b| b == 2 * 3 * m / 4), "{sent:?}");
    let mut run = PhaseRunner::new(&wafer, &layout, &NocParams::default()).unwrap();
    let p = run.run("allreduce", &sched, &mut quiet()).unwrap();
    let cross: u64 = run
        .links()
        .iter()
        .zip(&p.link_flits)
        .filter(|(l, _)| l.cross_wafer)
        .map(|(_, f)| f)
        .sum();
    assert_eq!(cross, p.flits);
    assert!(run
        .links()
        .iter()
        .filter(|l| l.cross_wafer)
        .all(|l| l.cycles_per_flit == 2));
}

/// A ring of one member (TP = 1) sends nothing and takes no time.
#[test]
fn trivial_ring_is_empty() {
    let s = spec(
        "DeepSeek-V2-Lite",
        WaferSpec::single(2, 2),
        1,
        4,
        Mapping::er(),
        4,
    );
    let r = simulate_layer(&s, &mut quiet()).unwrap();
    assert_eq!((r.allreduce.cycles, r.allreduce.flits), (0, 0));
    assert!(r.dispatch.flits > 0);
}

#[test]
fn same_seed_same_result() {
    for mapping in [Mapping::block(), Mapping::er()] {
        let mut s = spec("Qwen3-235B", WaferSpec::single(4, 4), 4, 4, mapping, 6);
        s.workload.routing = RoutingSource::Zipf { s: 1.1 };
        let a = simulate_layer(&s, &mut quiet()).unwrap();
        let b = simulate_layer(&s, &mut quiet()).unwrap();
        for (x, y) in a.phases().iter().zip(b.phases()) {
            assert_eq!(*x, y);
            assert_eq!(x.link_flits, y.link_flits);
        }
        s.workload.seed = 8;
        let c = simulate_layer(&s, &mut quiet()).unwrap();
        assert_ne!(a.dispatch.link_flits, c.dispatch.link_flits);
    }
}

/// Mixtral's 8 experts on 16 devices: 2 replicas per expert, token copies
/// and bytes unchanged.
#[test]
fn fewer_experts_than_devices_are_replicated() {
    let s = spec(
        "Mixtral-8x22B",
        WaferSpec::single(4, 4),
        4,
        4,
        Mapping::er(),
        10,
    );
    let r = simulate_layer(&s, &mut quiet()).unwrap();
    assert_eq!(r.replication.replicas, 2);
    assert_eq!(r.token_copies, 4 * 10 * 2);
    let copies = r.token_copies - r.local_token_copies;
    assert_eq!(r.dispatch.bytes, copies * 6144);
    assert_eq!(r.combine.bytes, copies * 6144 * 2);
}

/// One VC streaming one 2000-flit packet to a neighbour with the automatic
/// buffer depth runs at the link's full rate (the credit loop does not
/// throttle it), while BookSim's 8-flit buffers would cut it to about 8 flits
/// per credit round trip.
#[test]
fn auto_buffers_cover_the_credit_loop() {
    let wafer = WaferSpec::single(1, 2);
    let layout = ParallelPlan::new(2, 1, Mapping::block())
        .layout(&wafer, 2)
        .unwrap();
    let mut s = Schedule::new();
    let c = s.chain();
    s.push(c, 0, 1, 2000 * 256, CLASS_COLLECTIVE, &[]).unwrap();
    let mut cycles = Vec::new();
    for depth in [0, 8] {
        let noc = NocParams {
            collective_vcs: 1,
            vc_buf_size: depth,
            max_packet_flits: 2000,
            ..NocParams::default()
        };
        let cfg = network_config(&wafer, &noc).unwrap();
        assert_eq!(cfg.mesh.link_latency, 15);
        assert_eq!(cfg.router.vc_buf_size, if depth == 0 { 40 } else { 8 });
        let mut run = PhaseRunner::new(&wafer, &layout, &noc).unwrap();
        let p = run.run("stream", &s, &mut quiet()).unwrap();
        assert_eq!((p.flits, p.packets), (2000, 1));
        cycles.push(p.cycles);
    }
    // 2000 flits + a zero-load latency of a few tens of cycles.
    assert!(cycles[0] < 2000 + 60, "{cycles:?}");
    assert!(cycles[1] > 2 * 2000, "{cycles:?}");
}

#[test]
fn errors_name_the_parameter() {
    let param = |s: &LayerSpec| {
        simulate_layer(s, &mut quiet())
            .err()
            .and_then(|e| e.parameter().map(str::to_string))
            .unwrap_or_default()
    };
    let ok = spec(
        "DeepSeek-V3",
        WaferSpec::single(4, 4),
        4,
        4,
        Mapping::er(),
        2,
    );
    let mut s = ok.clone();
    s.plan.tp = 8;
    assert_eq!(param(&s), "tp");
    let mut s = ok.clone();
    s.plan.mapping = er(Some((3, 1)), RingPolicy::Same);
    assert_eq!(param(&s), "tile");
    let mut s = ok.clone();
    s.wafer.flit_bytes = 0;
    assert_eq!(param(&s), "flit_bytes");
    let mut s = ok.clone();
    s.wafer.hop_latency_ns = 1e9;
    assert_eq!(param(&s), "hop_latency_ns");
    let mut s = ok.clone();
    s.noc.collective_vcs = 0;
    assert_eq!(param(&s), "collective_vcs");
    let mut s = ok.clone();
    s.noc.max_packet_flits = 0;
    assert_eq!(param(&s), "max_packet_flits");
    let mut s = ok.clone();
    s.noc.collective_vcs = 30;
    assert_eq!(param(&s), "num_vcs");
    let mut s = ok.clone();
    s.noc.routing = Routing::AdaptiveEscape;
    s.noc.migration_vcs = 1;
    assert_eq!(param(&s), "classes");
    let mut s = ok.clone();
    s.workload.routing = RoutingSource::Zipf { s: -1.0 };
    assert_eq!(param(&s), "s");
    let mut s = ok.clone();
    s.plan.mapping = Mapping::her();
    s.wafer = WaferSpec::multi(2, 2, 2, 1);
    s.plan.tp = 1;
    s.plan.dp = 8;
    assert_eq!(param(&s), "dp");
    let e = simulate_layer(&s, &mut quiet()).unwrap_err();
    assert!(matches!(e, CollectiveError::Moe(_)));
    assert!(e.to_string().contains("dp"), "{e}");
    // A schedule that names a device outside the mesh.
    let layout = ParallelPlan::new(4, 4, Mapping::er())
        .layout(&ok.wafer, 16)
        .unwrap();
    let mut run = PhaseRunner::new(&ok.wafer, &layout, &ok.noc).unwrap();
    let mut bad = Schedule::new();
    let c = bad.chain();
    bad.push(c, 0, 99, 10, CLASS_COLLECTIVE, &[]).unwrap();
    let e = run.run("x", &bad, &mut quiet()).unwrap_err();
    assert_eq!(e.parameter(), Some("schedule"));
    assert_eq!(
        bad.push(c, 0, 1, 10, CLASS_COLLECTIVE, &[5])
            .unwrap_err()
            .parameter(),
        Some("requires")
    );
}

/// A deadlock in the engine comes back as an error, never a panic: fully
/// adaptive routing without an escape VC, one-flit buffers, long packets,
/// every device sending to every other one.
#[test]
fn deadlock_is_an_error() {
    let wafer = WaferSpec::single(4, 4);
    let layout = ParallelPlan::new(4, 4, Mapping::er())
        .layout(&wafer, 16)
        .unwrap();
    let noc = NocParams {
        collective_vcs: 1,
        migration_vcs: 1,
        vc_buf_size: 1,
        max_packet_flits: 64,
        routing: Routing::AdaptiveUnsafe,
        local_latency: 1,
        deadlock_timeout: 2000,
        migration_priority: 0,
    };
    let mut s = Schedule::new();
    for src in 0..16 {
        for k in 1..16 {
            let c = s.chain();
            s.push(c, src, (src + k) % 16, 64 * 256 * 4, CLASS_COLLECTIVE, &[])
                .unwrap();
        }
    }
    let mut run = PhaseRunner::new(&wafer, &layout, &noc).unwrap();
    let e = run
        .run("all-pairs", &s, &mut quiet())
        .expect_err("this input deadlocks under adaptive_unsafe");
    assert!(
        e.to_string().starts_with("deadlock in phase all-pairs"),
        "{e}"
    );
    assert_eq!(e.parameter(), None);
    match e {
        CollectiveError::Deadlock { phase, report } => {
            assert_eq!(phase, "all-pairs");
            assert!(report.blocked_total > 0);
        }
        e => panic!("unexpected error {e}"),
    }
}
