//! Property tests of the layout, dispatch and balancer invariants. Case counts
//! come from `ProptestConfig::default()`, so `PROPTEST_CASES` applies.

use proptest::prelude::*;
use wafernoc_moe::{
    assign, combine, dispatch, AllToAllMode, BalancePolicy, Balancer, BalancerConfig, Coord,
    Layout, Mapping, ParallelPlan, Placement, RingPolicy, RoutingSource, WaferSpec,
};

/// Checks the partition invariants shared by every mapping.
fn check_partition(l: &Layout) {
    let n = l.num_devices();
    let mut in_group = vec![0usize; n];
    let mut in_ftd = vec![0usize; n];
    assert_eq!(l.tp_groups().len(), l.dp());
    assert_eq!(l.ftds().len(), l.tp());
    for (g, ring) in l.tp_groups().iter().enumerate() {
        assert_eq!(ring.len(), l.tp());
        for &d in ring {
            in_group[d] += 1;
            assert_eq!(l.tp_group_of(d), Some(g));
        }
    }
    for (f, ftd) in l.ftds().iter().enumerate() {
        assert_eq!(ftd.len(), l.dp());
        for (g, &d) in ftd.iter().enumerate() {
            in_ftd[d] += 1;
            assert_eq!(l.ftd_of(d), Some(f));
            // Exactly one member of each TP group: the g-th is group g's.
            assert_eq!(l.tp_group_of(d), Some(g));
        }
    }
    assert!(in_group.iter().all(|&c| c == 1));
    assert!(in_ftd.iter().all(|&c| c == 1));
}

fn er_case() -> impl Strategy<Value = (usize, usize, usize, usize, usize)> {
    // (grid rows, grid cols, tile rows a, tile cols b, experts per device)
    (1usize..=5, 1usize..=5, 1usize..=4, 1usize..=4, 1usize..=3)
}

fn er_layout(gr: usize, gc: usize, a: usize, b: usize, k: usize, ring: RingPolicy) -> Layout {
    let spec = WaferSpec::single(gr * a, gc * b);
    let n = spec.num_devices();
    ParallelPlan::new(
        gr * gc,
        a * b,
        Mapping::Er {
            tile: Some((a, b)),
            ring,
        },
    )
    .layout(&spec, n * k)
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn er_layout_invariants((gr, gc, a, b, k) in er_case()) {
        let l = er_layout(gr, gc, a, b, k, RingPolicy::Same);
        check_partition(&l);
        let grid = *l.tile_grid();
        prop_assert_eq!((grid.tile_rows, grid.tile_cols, grid.grid_rows, grid.grid_cols), (a, b, gr, gc));
        for d in 0..l.num_devices() {
            prop_assert_eq!(l.tile_of(d), l.ftd_of(d));
        }
        // Ring links: straight one-tile moves (a rows or b columns), with the
        // documented exceptions: a 1-D tile grid uses the folded ring (moves
        // of one or two tiles), an odd x odd grid has exactly one diagonal
        // move (a + b hops).
        let t = gr * gc;
        let mut diagonals = 0;
        for ring in l.tp_groups() {
            let mut ring_diagonals = 0;
            for i in 0..t {
                if t == 1 { break; }
                let p = l.coord(ring[i]).unwrap();
                let q = l.coord(ring[(i + 1) % t]).unwrap();
                let (dx, dy) = (p.x.abs_diff(q.x), p.y.abs_diff(q.y));
                // Same offset inside the tile.
                prop_assert_eq!((p.x % b, p.y % a), (q.x % b, q.y % a));
                if gr == 1 {
                    prop_assert!(dy == 0 && (dx == b || dx == 2 * b), "{:?} {:?}", p, q);
                } else if gc == 1 {
                    prop_assert!(dx == 0 && (dy == a || dy == 2 * a));
                } else if (dx, dy) == (b, 0) || (dx, dy) == (0, a) {
                    // one-tile move
                } else {
                    prop_assert_eq!((dx, dy), (b, a));
                    ring_diagonals += 1;
                }
            }
            if gr >= 2 && gc >= 2 {
                prop_assert_eq!(ring_diagonals, usize::from(t % 2 == 1));
            }
            diagonals += ring_diagonals;
        }
        if gr >= 2 && gc >= 2 && t % 2 == 0 {
            prop_assert_eq!(diagonals, 0);
        }
    }

    #[test]
    fn block_layout_invariants((gr, gc, a, b, k) in er_case()) {
        // Block: TP tiles of a x b, grid gr x gc of them.
        let spec = WaferSpec::single(gr * a, gc * b);
        let n = spec.num_devices();
        let l = ParallelPlan::new(a * b, gr * gc, Mapping::Block { tile: Some((a, b)), ring: RingPolicy::Alternate })
            .layout(&spec, n * k)
            .unwrap();
        check_partition(&l);
        for d in 0..n {
            prop_assert_eq!(l.tile_of(d), l.tp_group_of(d));
        }
        // Rings stay in their tile, and use neighbour links when a Hamiltonian
        // cycle exists.
        let t = a * b;
        for ring in l.tp_groups() {
            for i in 0..t {
                if t == 1 { break; }
                let h = l.hops(ring[i], ring[(i + 1) % t]).unwrap();
                prop_assert_eq!(l.tile_of(ring[i]), l.tile_of(ring[0]));
                if a >= 2 && b >= 2 && t % 2 == 0 {
                    prop_assert_eq!(h, 1);
                } else {
                    prop_assert!(h <= 2);
                }
            }
        }
    }

    #[test]
    fn her_layout_invariants(
        (gr, gc, a, b) in (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3),
        (wx, wy) in (1usize..=3, 1usize..=2),
    ) {
        let spec = WaferSpec::multi(gr * a, gc * b, wx, wy);
        let n = spec.num_devices();
        let l = ParallelPlan::new(n / (a * b), a * b, Mapping::Her { tile: Some((a, b)), ring: RingPolicy::Bidirectional })
            .layout(&spec, n)
            .unwrap();
        check_partition(&l);
        for ftd in l.ftds() {
            let w = l.wafer_of(ftd[0]);
            prop_assert!(ftd.iter().all(|&d| l.wafer_of(d) == w));
        }
        for g in 0..l.dp() {
            let h = l.hier_ring(g).unwrap();
            prop_assert_eq!(h.wafer_rings.len(), wx * wy);
            for (w, ring) in h.wafer_rings.iter().enumerate() {
                prop_assert_eq!(ring.len(), gr * gc);
                prop_assert!(ring.iter().all(|&d| l.wafer_of(d) == Some(w)));
            }
            prop_assert_eq!(h.exchange_groups.len(), gr * gc);
            for grp in &h.exchange_groups {
                let ws: Vec<usize> = grp.iter().map(|&d| l.wafer_of(d).unwrap()).collect();
                prop_assert_eq!(ws, (0..wx * wy).collect::<Vec<_>>());
            }
        }
        // Cross-wafer links are always boundary links under HER, in x and
        // in y (the y direction was not checked), and with wx x wy wafers
        // some links do cross.
        let mut crossing = 0;
        for d in 0..n {
            let c = l.coord(d).unwrap();
            for next in [Coord::new(c.x + 1, c.y), Coord::new(c.x, c.y + 1)] {
                if let Some(e) = l.device_at(next) {
                    if l.is_cross_wafer_link(d, e).unwrap() {
                        crossing += 1;
                        prop_assert!(l.is_boundary_link(d, e).unwrap());
                    }
                }
            }
        }
        prop_assert_eq!(crossing > 0, wx * wy > 1);
    }

    #[test]
    fn confined_dispatch_stays_in_ftd_tiles(
        (gr, gc, a, b, k) in er_case(),
        zipf in prop::option::of(0.0f64..2.0),
        tokens in 0usize..40,
        seed in any::<u64>(),
        replicas in prop::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 0..6),
    ) {
        let l = er_layout(gr, gc, a, b, k, RingPolicy::Same);
        let n = l.num_devices();
        let experts = n * k;
        let mut model = wafernoc_moe::MoeModel::preset("DeepSeek-V3").unwrap();
        model.experts = experts;
        model.top_k = model.top_k.min(experts);
        let mut p = Placement::new(&l);
        if l.shadow_slots_per_device() > 0 {
            for (e, d, live) in replicas {
                let (e, d) = (e % experts, d % n);
                if p.add_replica(e, d).is_ok() && live {
                    p.mark_live(e, d).unwrap();
                }
            }
        }
        let src = zipf.map_or(RoutingSource::Uniform, |s| RoutingSource::Zipf { s });
        let counts = src.counts(experts, model.top_k, l.dp(), tokens, seed, 3).unwrap();
        let asg = assign(&l, &p, &counts).unwrap();
        for mode in [AllToAllMode::Confined, AllToAllMode::Global] {
            let d = dispatch(&l, &asg, &model, mode).unwrap();
            let c = combine(&l, &asg, &model, mode).unwrap();
            // Conservation: every copy is either sent or local.
            prop_assert_eq!(d.network_token_copies() + d.local_token_copies(), counts.total());
            prop_assert_eq!(c.network_token_copies(), d.network_token_copies());
            prop_assert_eq!(d.network_bytes(), d.network_token_copies() * model.dispatch_bytes_per_token());
            prop_assert!(d.flows.iter().all(|f| f.src != f.dst));
            prop_assert!(d.local.iter().all(|f| f.src == f.dst));
            if mode == AllToAllMode::Confined {
                for f in d.flows.iter().chain(&c.flows) {
                    prop_assert_eq!(l.tile_of(f.src), l.tile_of(f.dst));
                    prop_assert_eq!(l.ftd_of(f.src), l.ftd_of(f.dst));
                }
            }
        }
    }

    #[test]
    fn balancer_respects_slots_and_trigger(
        (gr, gc, a, b, k) in er_case(),
        shadow in 0usize..=3,
        alpha in 0.0f64..1.0,
        topo in any::<bool>(),
        loads in prop::collection::vec(0.0f64..100.0, 1..=300),
        hot in prop::collection::vec((any::<usize>(), 0.0f64..2000.0), 0..4),
        rounds in 1usize..=3,
        live_mask in any::<u64>(),
    ) {
        let spec = WaferSpec::single(gr * a, gc * b);
        let n = spec.num_devices();
        let experts = n * k;
        let mut plan = ParallelPlan::new(gr * gc, a * b, Mapping::er());
        plan.mapping = Mapping::Er { tile: Some((a, b)), ring: RingPolicy::Same };
        plan.shadow_slots_per_device = shadow;
        let l = plan.layout(&spec, experts).unwrap();
        let mut p = Placement::new(&l);
        let mut pred: Vec<f64> = (0..experts).map(|e| loads[e % loads.len()]).collect();
        for (e, x) in hot {
            pred[e % experts] = x;
        }
        let policy = if topo { BalancePolicy::Topology } else { BalancePolicy::Greedy };
        let bal = Balancer::new(BalancerConfig { policy, trigger_alpha: alpha }).unwrap();
        for round in 0..rounds {
            let r = bal.plan(&mut p, &pred, 1).unwrap();
            for d in 0..n {
                prop_assert!(p.shadow_used(d).unwrap() <= shadow);
                prop_assert_eq!(p.experts_on(d).unwrap().len(), k + p.shadow_used(d).unwrap());
            }
            if r.ratio_before <= 1.0 + alpha {
                prop_assert!(r.migrations.is_empty() && r.evictions.is_empty());
            }
            prop_assert_eq!(r.ratios.len(), r.migrations.len());
            prop_assert!(r.ratios.iter().all(|&x| x > 1.0 + alpha));
            prop_assert!(r.ratio_after <= r.ratio_before + 1e-9);
            for m in &r.migrations {
                prop_assert!(m.from_device != m.to_device);
                prop_assert!(p.live_devices(m.expert).unwrap().contains(&m.from_device));
                prop_assert!(p.hosts(m.to_device, m.expert));
            }
            // Some copies complete between rounds.
            for (i, m) in r.migrations.iter().enumerate() {
                if live_mask >> ((i + round) % 64) & 1 == 1 {
                    p.mark_live(m.expert, m.to_device).unwrap();
                }
            }
        }
    }
}
