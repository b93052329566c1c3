//! The packet capture hook of `PhaseRunner` / `simulate_layer_captured`:
//! every enqueued packet is reported once, in enqueue order, with dense ids,
//! and its enqueue cycle is exactly one cycle after the last delivery among
//! its dependencies (cycle 0 without any): the property closed-loop replay
//! (`replay-packets --mode deps`) relies on. Capturing changes nothing.

use std::collections::HashMap;

use wafernoc_mesh::Delivered;
use wafernoc_moe::{AllToAllMode, Mapping, MoeModel, ParallelPlan, RoutingSource, WaferSpec};
use wafernoc_traffic::collective::{
    simulate_layer, simulate_layer_captured, CapturedPacket, LayerSpec, LayerWorkload, NocParams,
    PacketCapture, PhaseRunner, Schedule, CLASS_COLLECTIVE,
};

/// One captured packet, owned.
#[derive(Debug, Clone)]
struct Rec {
    id: u64,
    message: usize,
    cycle: u64,
    deps: Vec<u64>,
}

/// Per phase: the packets and, per message, the cycle of its last delivery.
#[derive(Default)]
struct Sink {
    phases: Vec<(String, Vec<Rec>, HashMap<usize, u64>)>,
}

impl PacketCapture for Sink {
    fn begin_phase(&mut self, phase: &str) {
        self.phases
            .push((phase.to_string(), Vec::new(), HashMap::new()));
    }
    fn packet(&mut self, p: &CapturedPacket<'_>) {
        let ph = self.phases.last_mut().expect("begin_phase first");
        ph.1.push(Rec {
            id: p.id,
            message: p.message,
            cycle: p.cycle,
            deps: p.deps.to_vec(),
        });
    }
    fn delivered(&mut self, d: &Delivered) {
        let ph = self.phases.last_mut().expect("begin_phase first");
        let e = ph.2.entry(d.tag as usize).or_insert(0);
        *e = (*e).max(d.atime);
    }
}

/// Dense ids, non-decreasing cycles, deps earlier, and the enqueue cycle is
/// `max over deps of (completion of the dep's message) + 1`, or 0.
fn check_phase(name: &str, recs: &[Rec], done: &HashMap<usize, u64>) {
    let msg_of: Vec<usize> = recs.iter().map(|r| r.message).collect();
    let mut last = 0;
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.id, i as u64, "{name}: ids dense in enqueue order");
        assert!(r.cycle >= last, "{name}: cycles non-decreasing");
        last = r.cycle;
        assert!(
            r.deps.windows(2).all(|w| w[0] < w[1]),
            "{name}: deps sorted"
        );
        assert!(r.deps.iter().all(|&d| d < r.id), "{name}: deps earlier");
        let want = r
            .deps
            .iter()
            .map(|&d| done[&msg_of[d as usize]] + 1)
            .max()
            .unwrap_or(0);
        assert_eq!(r.cycle, want, "{name}: packet {} ({r:?})", r.id);
    }
}

#[test]
fn chain_order_and_self_sends_are_folded_into_deps() {
    let wafer = WaferSpec::single(4, 4);
    let layout = ParallelPlan::new(4, 4, Mapping::er())
        .layout(&wafer, 16)
        .unwrap();
    let mut runner = PhaseRunner::new(&wafer, &layout, &NocParams::default()).unwrap();
    let c = CLASS_COLLECTIVE;
    let mut s = Schedule::new();
    let (ca, cb, cc, cd) = (s.chain(), s.chain(), s.chain(), s.chain());
    // X: long (4 packets), Y: short; both ready at 0.
    let x = s.push(cb, 5, 10, 64 * 256, c, &[]).unwrap();
    let y = s.push(cc, 6, 7, 256, c, &[]).unwrap();
    // Chain A: a0 waits for X; a1 only requires Y, but is issued after a0
    // (chain order), i.e. after X: its deps must hold X's packets too.
    let a0 = s.push(ca, 0, 15, 512, c, &[x]).unwrap();
    let a1 = s.push(ca, 0, 1, 512, c, &[y]).unwrap();
    // Chain D: a self-send requiring X (no packets, completes when issued),
    // then a message with no requirement of its own.
    let sd = s.push(cd, 3, 3, 1000, c, &[x]).unwrap();
    let t = s.push(cd, 3, 12, 256, c, &[]).unwrap();
    // Requires the self-send: inherits its deps.
    let u = s.push(cc, 6, 9, 256, c, &[sd, y]).unwrap();
    let plain = runner.run("p", &s, &mut |_, _| {}).unwrap();
    runner.reset().unwrap();
    let mut sink = Sink::default();
    let captured = runner
        .run_captured("p", &s, &mut |_, _| {}, Some(&mut sink))
        .unwrap();
    assert_eq!(plain.cycles, captured.cycles);
    assert_eq!(plain.link_flits, captured.link_flits);
    let (_, recs, done) = &sink.phases[0];
    assert_eq!(recs.len() as u64, captured.packets);
    check_phase("p", recs, done);
    let ids = |m: usize| -> Vec<u64> {
        recs.iter()
            .filter(|r| r.message == m)
            .map(|r| r.id)
            .collect()
    };
    let of = |m: usize| recs.iter().find(|r| r.message == m).unwrap().deps.clone();
    let (px, py) = (ids(x), ids(y));
    assert_eq!(px.len(), 4);
    assert!(of(x).is_empty() && of(y).is_empty());
    assert_eq!(of(a0), px);
    let mut xy = [px.clone(), py.clone()].concat();
    xy.sort_unstable();
    assert_eq!(of(a1), xy, "chain order folds X into a1's deps");
    assert_eq!(of(t), px, "the self-send's deps pass on along the chain");
    assert_eq!(of(u), xy, "requiring a self-send means requiring its deps");
    // a1's own requirement Y completes long before X: chain order binds.
    assert!(done[&y] + 1 < recs.iter().find(|r| r.message == a1).unwrap().cycle);
}

#[test]
fn captured_layer_is_identical_and_every_phase_satisfies_the_deps_rule() {
    let spec = LayerSpec {
        wafer: WaferSpec::single(4, 4),
        model: MoeModel::preset("deepseek-v2-lite").unwrap(),
        plan: ParallelPlan::new(4, 4, Mapping::er()),
        workload: LayerWorkload {
            tokens_per_group: 8,
            routing: RoutingSource::Uniform,
            seed: 3,
            layer: 0,
            alltoall: AllToAllMode::Confined,
        },
        noc: NocParams::default(),
    };
    let plain = simulate_layer(&spec, &mut |_, _| {}).unwrap();
    let mut sink = Sink::default();
    let cap = simulate_layer_captured(&spec, None, &mut |_, _| {}, &mut sink).unwrap();
    let names: Vec<&str> = sink.phases.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["allreduce", "dispatch", "combine"]);
    for ((name, recs, done), (a, b)) in sink
        .phases
        .iter()
        .zip(plain.phases().into_iter().zip(cap.phases()))
    {
        assert_eq!(a.cycles, b.cycles, "{name}");
        assert_eq!(a.link_flits, b.link_flits, "{name}");
        assert_eq!(recs.len() as u64, b.packets, "{name}");
        check_phase(name, recs, done);
        // The phase ends in the cycle after its last delivery.
        assert_eq!(
            done.values().max().map_or(0, |&a| a + 1),
            b.cycles,
            "{name}"
        );
    }
    // The ring all-reduce has dependencies, dispatch and combine none.
    assert!(sink.phases[0].1.iter().any(|r| !r.deps.is_empty()));
    assert!(sink.phases[1]
        .1
        .iter()
        .all(|r| r.deps.is_empty() && r.cycle == 0));
}
