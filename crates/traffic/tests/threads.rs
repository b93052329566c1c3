//! The parallel engine gives the same results as one thread: every
//! delivered packet (order and fields), the counters, per-link and
//! per-node counts, the measured-age probe and deadlock reports, for
//! thread counts that split the mesh into 2 to 28 row bands, and whether
//! the next cycle's traffic is generated before a cycle or alongside it.

use wafernoc_mesh::sim::{Lookahead, TrafficSource};
use wafernoc_mesh::{ClassSpec, MeshSpec, Network, NetworkConfig, NewPacket, Routing};
use wafernoc_router::RouterConfig;

/// A small seeded generator (xorshift64*), so the traffic is the same for
/// every run without depending on the traffic crate's sources.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Everything a run exposes, for comparison.
#[derive(Debug, PartialEq)]
struct Outcome {
    delivered: Vec<String>,
    counters: String,
    link_flits: Vec<u64>,
    injected: Vec<u64>,
    ages: Vec<(u64, u64)>,
    deadlock: Option<String>,
    now: u64,
}

/// Cycle `t`'s open-loop random traffic (mixed sizes and classes).
impl TrafficSource for Gen {
    fn generate(&mut self, t: u64, out: &mut Vec<NewPacket>) {
        for src in 0..self.n {
            if self.rng.below(100) < self.rate_pct {
                self.tag += 1;
                out.push(NewPacket {
                    src: src as u32,
                    dst: self.rng.below(self.n) as u32,
                    size: [1u16, 2, 4, 5][self.rng.below(4) as usize],
                    class: self.rng.below(self.classes) as u8,
                    ctime: t,
                    tag: self.tag % 3,
                });
            }
        }
    }
}

/// The traffic generator's state.
struct Gen {
    rng: Rng,
    tag: u64,
    n: u64,
    classes: u64,
    rate_pct: u64,
}

/// Open-loop random traffic for `cycles`, then a drain; invariants
/// checked along the way. `ahead`: each cycle's packets are generated
/// while the previous cycle is simulated (`sim::Lookahead` over
/// `Network::step_with`), as the drivers do, instead of before it.
fn run(
    cfg: &NetworkConfig,
    threads: usize,
    rate_pct: u64,
    cycles: u64,
    seed: u64,
    ahead: bool,
) -> Outcome {
    let mut net = Network::with_threads(cfg.clone(), threads).unwrap();
    let mut g = Gen {
        rng: Rng(seed),
        tag: 0,
        n: net.topology().nodes() as u64,
        classes: net.num_classes() as u64,
        rate_pct,
    };
    let mut out = Outcome {
        delivered: Vec::new(),
        counters: String::new(),
        link_flits: Vec::new(),
        injected: Vec::new(),
        ages: Vec::new(),
        deadlock: None,
        now: 0,
    };
    let mut src = Lookahead::new(&mut g);
    for t in 0..cycles + 20_000 {
        if t < cycles {
            for p in src.packets(t).iter() {
                net.enqueue(*p).unwrap();
            }
        } else if net.packets_outstanding() == 0 {
            break;
        }
        if let Err(d) = src.step(&mut net, ahead && t + 1 < cycles) {
            out.deadlock = Some(format!("{d:?}"));
            break;
        }
        out.delivered
            .extend(net.drain_delivered().map(|d| format!("{d:?}")));
        if t % 97 == 0 {
            net.check_invariants()
                .unwrap_or_else(|e| panic!("{threads} threads, cycle {t}: {e}"));
            out.ages.push(net.in_flight_ages());
        }
    }
    out.counters = format!("{:?}", net.counters());
    out.link_flits = net.link_flits();
    out.injected = net.injected_by_node();
    out.now = net.now();
    out
}

fn mesh(rows: usize, cols: usize) -> MeshSpec {
    MeshSpec {
        rows,
        cols,
        ..Default::default()
    }
}

fn router(vcs: usize, buf: usize) -> RouterConfig {
    RouterConfig {
        num_vcs: vcs,
        vc_buf_size: buf,
        ..Default::default()
    }
}

fn check(name: &str, cfg: NetworkConfig, rate_pct: u64, cycles: u64) {
    let one = run(&cfg, 1, rate_pct, cycles, 42, false);
    assert!(
        one.delivered.len() > 100,
        "{name}: too little traffic to compare"
    );
    for (threads, ahead) in [(2, false), (3, false), (7, false), (1, true), (3, true)] {
        let many = run(&cfg, threads, rate_pct, cycles, 42, ahead);
        assert!(
            one == many,
            "{name}: {threads} threads (traffic generated alongside the cycle: {ahead}) \
             differ from one (delivered {} vs {}, counters {} vs {})",
            one.delivered.len(),
            many.delivered.len(),
            one.counters,
            many.counters
        );
    }
}

#[test]
fn xy_near_saturation() {
    let cfg = NetworkConfig {
        mesh: mesh(8, 8),
        router: router(2, 4),
        ..Default::default()
    };
    check("xy", cfg, 12, 3_000);
}

/// Parts of more than one band of 128 routers (the engine steps a part
/// band by band): one thread has three bands, two threads two bands each,
/// more threads one (20 × 14 = 280 routers); both router steps.
#[test]
fn parts_of_several_bands() {
    let cfg = NetworkConfig {
        mesh: mesh(20, 14),
        router: router(2, 4),
        ..Default::default()
    };
    check("bands", cfg.clone(), 4, 1_500);
    let mut r = router(4, 4);
    r.speculative = true;
    r.wait_for_tail_credit = true;
    let cfg = NetworkConfig {
        router: r,
        routing: Routing::AdaptiveEscape,
        ..cfg
    };
    check("bands, general step", cfg, 4, 1_000);
}

#[test]
fn adaptive_speculative_wait_for_tail_credit_step_all() {
    let mut r = router(4, 4);
    r.speculative = true;
    r.wait_for_tail_credit = true;
    let cfg = NetworkConfig {
        mesh: mesh(9, 5),
        router: r,
        routing: Routing::AdaptiveEscape,
        step_all: true,
        ..Default::default()
    };
    check("adaptive", cfg, 15, 2_000);
}

/// BookSim2's batched routing and crossbar stages (delays 2 and 3) with
/// slow wafer-crossing links, where flits wait in output queues.
#[test]
fn batched_stages_with_slow_links() {
    let mut r = router(4, 4);
    r.batched_stages = true;
    r.routing_delay = 2;
    r.st_final_delay = 3;
    let cfg = NetworkConfig {
        mesh: MeshSpec {
            wafers_y: 2,
            cross_latency: 4,
            cross_cycles_per_flit: 3,
            ..mesh(10, 6)
        },
        router: r,
        ..Default::default()
    };
    check("batched", cfg, 12, 2_000);
}

/// BookSim2's speculation (one shared switch allocation) on parts of
/// several bands.
#[test]
fn shared_speculation() {
    let mut r = router(4, 4);
    r.speculative = true;
    r.shared_speculation = true;
    let cfg = NetworkConfig {
        mesh: mesh(20, 14),
        router: r,
        ..Default::default()
    };
    check("shared speculation", cfg, 5, 1_000);
}

#[test]
fn wafers_with_slow_links_and_prioritised_classes() {
    let mut r = router(4, 8);
    r.routing_delay = 0;
    r.vc_alloc_delay = 2;
    let cfg = NetworkConfig {
        mesh: MeshSpec {
            wafers_x: 2,
            wafers_y: 2,
            ..mesh(4, 3)
        },
        router: r,
        routing: Routing::Yx,
        classes: vec![
            ClassSpec {
                name: "bulk".into(),
                vcs: 1,
                priority: 0,
            },
            ClassSpec {
                name: "urgent".into(),
                vcs: 2,
                priority: 2,
            },
            ClassSpec {
                name: "normal".into(),
                vcs: 1,
                priority: 1,
            },
        ],
        ..Default::default()
    };
    check("wafers+classes", cfg, 10, 2_500);
}

/// A network that deadlocks under `run`'s traffic at 60% (one VC,
/// unrestricted adaptive routing).
fn deadlocking() -> NetworkConfig {
    NetworkConfig {
        mesh: mesh(6, 6),
        router: router(1, 2),
        routing: Routing::AdaptiveUnsafe,
        deadlock_timeout: 300,
        ..Default::default()
    }
}

/// A network that deadlocks gives the same report on every thread count.
#[test]
fn deadlock_report_is_the_same() {
    let cfg = deadlocking();
    let one = run(&cfg, 1, 60, 5_000, 7, false);
    assert!(one.deadlock.is_some(), "expected a deadlock at this load");
    for threads in [2, 6] {
        assert_eq!(
            one,
            run(&cfg, threads, 60, 5_000, 7, false),
            "{threads} threads"
        );
    }
}

/// The default pipeline does not record which input VC holds an output
/// VC; its deadlock report derives that from the ACTIVE VCs. The check
/// mode takes the general router step, which records it: both must give
/// the same report (the waits of heads in VC allocation on held output
/// VCs are the edges of this deadlock's wait-for graph).
#[test]
fn deadlock_report_is_the_same_in_the_check_mode() {
    let cfg = deadlocking();
    let fast = run(&cfg, 1, 60, 5_000, 7, false);
    assert!(fast.deadlock.is_some(), "expected a deadlock at this load");
    let check = NetworkConfig {
        step_all: true,
        ..cfg
    };
    assert_eq!(fast, run(&check, 1, 60, 5_000, 7, false));
}

/// Threads beyond the mesh's rows are not started; the count is reported.
#[test]
fn thread_count_is_capped_by_rows() {
    let cfg = NetworkConfig {
        mesh: mesh(3, 8),
        router: router(2, 4),
        ..Default::default()
    };
    assert_eq!(Network::with_threads(cfg.clone(), 1).unwrap().threads(), 1);
    assert_eq!(Network::with_threads(cfg.clone(), 2).unwrap().threads(), 2);
    assert_eq!(Network::with_threads(cfg, 16).unwrap().threads(), 3);
}
