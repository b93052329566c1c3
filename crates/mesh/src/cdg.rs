//! Channel dependency graph (CDG) analysis: a static deadlock verdict for a
//! topology, a routing function and a VC / message-class assignment.
//!
//! # The graph
//! A vertex is a *channel*: one VC of one router-to-router link, named by
//! the router it leaves, its output port and the VC. There is an edge
//! `c1 → c2` when a packet holding `c1` (that is, arriving at the
//! downstream router on input port `p1 ^ 1`) may request `c2` there, for
//! some destination. Every (router, destination) pair is reachable — every
//! node injects to every destination — so the edge set is the union over
//! destinations `d` and channels `c1 ∈ R(r1, d)` of `R(r2, d)`, restricted to
//! the VCs of one message class (classes own disjoint VC ranges, so there
//! is never an edge between classes).
//!
//! Injection and ejection channels are not vertices: they cannot lie on a
//! cycle. An injection channel (node → router) is only ever entered from a
//! source queue, never by a packet that holds a network channel, so it has
//! no incoming dependency. An ejection channel (router → node) has no
//! outgoing dependency under the *consumption assumption*: the network
//! interface consumes every arriving flit at once and returns its credit
//! (see `Part::eject` in network.rs), so a packet on an ejection channel never waits.
//! A vertex without incoming or without outgoing edges is on no cycle.
//!
//! # Computing it without per-destination blow-up
//! Every routing function of [`Routing`] is minimal on a mesh and its
//! candidate set at router `r` depends on the destination `d` only through
//! the signs of `d.x − r.x` and `d.y − r.y` (which productive directions are
//! left). For the edge `(r1, p1) → (r2, ·)` only the signs of `d` relative to
//! both `r1` and `r2` matter, so it is enough to try, in each dimension, one
//! representative coordinate per distinct pair of signs: the coordinates of
//! `r1` and `r2` themselves and their outer neighbours (at most 4 values in
//! the dimension of the link, 3 in the other). That is at most 12
//! destinations per link instead of all `R`, and the graph of a 64×64 mesh
//! with 8 VCs (129,024 channels) is built and searched in milliseconds. The
//! real routing function ([`Routing::candidates`]) is called for every
//! representative, so the graph follows the engine exactly. The unit tests
//! compare the result with the brute-force graph over every destination on
//! small meshes.
//!
//! # Verdicts
//! - **Dally–Seitz.** An acyclic CDG proves deadlock freedom (for
//!   deterministic routing it is also necessary). XY and YX give acyclic
//!   graphs.
//! - **Duato** (`AdaptiveEscape`). The full CDG of minimal adaptive routing
//!   has cycles. The routing subfunction `R1` is the restriction of the
//!   candidate sets to the escape VC (the first VC of each class), which
//!   follows XY. Checked: (1) *connectivity*: every candidate set of a
//!   packet not at its destination holds an escape channel, and every escape
//!   channel is productive, so `R1` alone delivers every packet; (2) the
//!   *extended* CDG of `R1` is acyclic: besides direct dependencies between
//!   escape channels it holds the indirect ones (a packet holding escape
//!   channel `c1` takes any number of adaptive channels and then requests
//!   escape channel `c2`). Escape VCs are offered only through `R1`, so there
//!   are no cross-dependencies. The indirect dependencies are found on a
//!   state graph of (router, signs of the destination) pairs, which is exact
//!   for minimal routing (a sequence of minimal hops with consistent sign
//!   changes is realised by one destination) and conservative otherwise;
//!   this is also compared with brute force in the tests. The theorem needs
//!   that a packet never waits behind *another* packet in an adaptive VC:
//!   the engine grants the adaptive VCs of `AdaptiveEscape` only once the
//!   previous packet's tail credit has returned, whatever
//!   `wait_for_tail_credit` says (docs/deadlock.md). Escape VCs may be
//!   reused earlier: a packet waiting behind another one in an escape VC
//!   waits along an edge of the extended CDG checked here.
//!
//! The analysis does no I/O and never panics on a bad configuration: an
//! invalid one is [`Verdict::Invalid`].

use std::fmt;

use bitvec::bitvec;
use serde::Serialize;

use crate::config::{ConfigError, NetworkConfig};
use crate::routing::Routing;
use crate::topology::{Topology, LOCAL};

/// Directions of a mesh router (ports 0..4; port 4 is local).
const DIRS: usize = 4;
/// Sign classes of a destination relative to a router: 3 × 3.
const SIGNS: usize = 9;
/// Largest graph (channels, or state-graph vertices) the check builds.
pub const MAX_CHANNELS: usize = 1 << 23;

/// A channel: one VC of the router-to-router link leaving `router` through
/// output `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Channel {
    /// Router id the link leaves.
    pub router: usize,
    /// Router column.
    pub x: usize,
    /// Router row.
    pub y: usize,
    /// Output port (0 = +x, 1 = −x, 2 = +y, 3 = −y).
    pub port: usize,
    /// VC index.
    pub vc: usize,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "router {} ({},{}) output {} VC {}",
            self.router,
            self.x,
            self.y,
            Topology::port_name(self.port),
            self.vc
        )
    }
}

/// The static verdict on a configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Proven deadlock-free.
    DeadlockFree {
        /// Channels of the graph that was shown acyclic (all channels for
        /// Dally–Seitz, escape channels for Duato).
        channels: usize,
        /// Direct dependencies (edges) of that graph.
        dependencies: usize,
        /// How it was proven.
        method: &'static str,
    },
    /// The dependency graph has a cycle; the channels in order, each
    /// depending on the next and the last on the first.
    Cycle(Vec<Channel>),
    /// No cycle was found but the proof's other condition fails (e.g. a
    /// candidate set without an escape channel), or the graph is too large.
    Unproven {
        /// What is missing.
        reason: String,
    },
    /// The configuration cannot be built.
    Invalid(ConfigError),
}

impl Verdict {
    /// Whether the configuration was proven deadlock-free.
    pub fn is_deadlock_free(&self) -> bool {
        matches!(self, Verdict::DeadlockFree { .. })
    }
}

/// Size of a dependency graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GraphSize {
    /// Vertices (channels).
    pub channels: usize,
    /// Edges (dependencies).
    pub dependencies: usize,
}

/// Everything the analysis found, for reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Routing analysed.
    pub routing: Routing,
    /// The full CDG (every VC of every class).
    pub full: GraphSize,
    /// One cycle of the full CDG, if it has any.
    pub full_cycle: Option<Vec<Channel>>,
    /// For `AdaptiveEscape`: the escape sub-network's direct CDG.
    pub escape: Option<GraphSize>,
    /// For `AdaptiveEscape`: a cycle of the escape sub-network's extended
    /// CDG (escape channels, with the adaptive channels of indirect
    /// dependencies in between), if any.
    pub escape_cycle: Option<Vec<Channel>>,
    /// The verdict.
    pub verdict: Verdict,
}

/// The static deadlock verdict of a network configuration.
pub fn check(cfg: &NetworkConfig) -> Verdict {
    match analyze(cfg) {
        Ok(a) => a.verdict,
        Err(e) => Verdict::Invalid(e),
    }
}

/// Analyse a configuration: full CDG, escape sub-network, verdict.
pub fn analyze(cfg: &NetworkConfig) -> Result<Analysis, ConfigError> {
    cfg.validate()?;
    let topo = Topology::new(cfg.mesh.clone())?;
    let v = cfg.router.num_vcs;
    let mut classes = Vec::new();
    let mut lo = 0;
    for c in cfg.effective_classes() {
        classes.push((lo, lo + c.vcs));
        lo += c.vcs;
    }
    let routing = cfg.routing;
    let cand = |cur: usize, dst: usize, lo: usize, hi: usize| {
        routing.candidates(&topo, cur, dst, lo, hi, v)
    };
    let escape = routing == Routing::AdaptiveEscape;
    Ok(analyze_with(&topo, v, &classes, &cand, escape, routing))
}

/// A candidate function: (current router, destination, class VC range
/// lo..hi) → mask over `port * V + vc`.
type CandFn<'a> = dyn Fn(usize, usize, usize, usize) -> u128 + 'a;

const DALLY_SEITZ: &str = "Dally–Seitz: the channel dependency graph is acyclic";
const DUATO: &str = "Duato: the full channel dependency graph has cycles, but the escape \
     sub-network (first VC of each class, XY) has an acyclic extended dependency graph \
     (direct and indirect dependencies) and every candidate set offers an escape channel";

fn analyze_with(
    topo: &Topology,
    v: usize,
    classes: &[(usize, usize)],
    cand: &CandFn<'_>,
    escape: bool,
    routing: Routing,
) -> Analysis {
    if let Some((what, count)) = too_big(topo.nodes(), v, escape) {
        return Analysis {
            routing,
            full: GraphSize::default(),
            full_cycle: None,
            escape: None,
            escape_cycle: None,
            verdict: Verdict::Unproven {
                reason: format!(
                    "the {what} would have {count} vertices, more than the {MAX_CHANNELS} \
                     the static check builds"
                ),
            },
        };
    }
    let g = DirectCdg::build(topo, v, classes, cand);
    let full = g.size(topo);
    let full_cycle = g.find_cycle(topo);
    let mut a = Analysis {
        routing,
        full,
        full_cycle: full_cycle.clone(),
        escape: None,
        escape_cycle: None,
        verdict: Verdict::Unproven {
            reason: String::new(),
        },
    };
    a.verdict = match full_cycle {
        None => Verdict::DeadlockFree {
            channels: full.channels,
            dependencies: full.dependencies,
            method: DALLY_SEITZ,
        },
        Some(c) if !escape => Verdict::Cycle(c),
        Some(_) => {
            // Duato: the escape sub-network.
            let esc_cand = |cur: usize, dst: usize, lo: usize, hi: usize| {
                cand(cur, dst, lo, hi) & escape_bits(v, lo)
            };
            let eg = DirectCdg::build(topo, v, classes, &esc_cand);
            let mut size = eg.size(topo);
            size.channels /= v; // one escape VC per class and link
            size.channels *= classes.len();
            a.escape = Some(size);
            let mut verdict = None;
            for &(lo, hi) in classes {
                if let Err(reason) = escape_connected(topo, v, lo, hi, cand) {
                    verdict = Some(Verdict::Unproven { reason });
                    break;
                }
                let sg = StateGraph::build(topo, v, lo, hi, cand);
                if let Some(c) = sg.find_cycle(topo, v, lo, hi, cand) {
                    a.escape_cycle = Some(c.clone());
                    verdict = Some(Verdict::Cycle(c));
                    break;
                }
            }
            verdict.unwrap_or(Verdict::DeadlockFree {
                channels: size.channels,
                dependencies: size.dependencies,
                method: DUATO,
            })
        }
    };
    a
}

/// The graph the check would build with more than [`MAX_CHANNELS`]
/// vertices for `n` routers of `v` VCs, if any, and its vertex count: the
/// channel dependency graph (a vertex per router, direction and VC), or
/// with an escape sub-network (`escape`) its state graph (a vertex per
/// router and direction or sign class).
fn too_big(n: usize, v: usize, escape: bool) -> Option<(&'static str, usize)> {
    let channels = n.saturating_mul(DIRS).saturating_mul(v);
    let states = n.saturating_mul(DIRS + SIGNS);
    if channels > MAX_CHANNELS {
        Some(("channel dependency graph", channels))
    } else if escape && states > MAX_CHANNELS {
        Some(("escape state graph", states))
    } else {
        None
    }
}

/// Mask of the escape VC `vc` on every port.
fn escape_bits(v: usize, vc: usize) -> u128 {
    (0..=LOCAL).fold(0u128, |m, p| m | 1u128 << (p * v + vc))
}

/// Mask of the VCs of ports 0..4 (router-to-router outputs).
fn dir_bits(v: usize) -> u128 {
    if DIRS * v >= 128 {
        !0
    } else {
        (1u128 << (DIRS * v)) - 1
    }
}

/// Representative coordinates in `0..n` for every distinct pair of signs
/// relative to `a` and `b`: `a`, `b`, the values just outside them and one
/// value between them if any.
fn reps(a: usize, b: usize, n: usize) -> ([usize; 5], usize) {
    let (lo, hi) = (a.min(b), a.max(b));
    let mut out = [0usize; 5];
    let mut k = 0;
    let mut push = |x: usize| {
        out[k] = x;
        k += 1;
    };
    if lo > 0 {
        push(lo - 1);
    }
    push(lo);
    if hi > lo + 1 {
        push(lo + 1);
    }
    if hi != lo {
        push(hi);
    }
    if hi + 1 < n {
        push(hi + 1);
    }
    (out, k)
}

/// Sign class 0..9 of destination `d` relative to router `r`.
fn sign_class(topo: &Topology, r: usize, d: usize) -> usize {
    let (rx, ry) = topo.coord(r);
    let (dx, dy) = topo.coord(d);
    let s = |a: usize, b: usize| match b.cmp(&a) {
        std::cmp::Ordering::Less => 0,
        std::cmp::Ordering::Equal => 1,
        std::cmp::Ordering::Greater => 2,
    };
    s(rx, dx) * 3 + s(ry, dy)
}

/// Destinations representing every sign class relative to both `r1` and `r2`.
fn rep_dests(topo: &Topology, r1: usize, r2: usize, out: &mut Vec<usize>) {
    let (x1, y1) = topo.coord(r1);
    let (x2, y2) = topo.coord(r2);
    let (xs, nx) = reps(x1, x2, topo.width);
    let (ys, ny) = reps(y1, y2, topo.height);
    out.clear();
    for &dy in &ys[..ny] {
        for &dx in &xs[..nx] {
            out.push(topo.node(dx, dy));
        }
    }
}

/// Iterative DFS for one cycle in a graph on `0..n`, started from each of
/// `starts` in turn (vertices already reached are skipped). A vertex's
/// successors come one at a time from `next(u, &mut state)`, its state
/// made by `begin(u)` when the search enters it. Returns the cycle's
/// vertices in order (each has an edge to the next, the last to the
/// first). Used by the static check and by the run-time wait-for report
/// (`Network::deadlock_report`).
pub(crate) fn find_cycle<S>(
    n: usize,
    starts: impl IntoIterator<Item = usize>,
    mut begin: impl FnMut(usize) -> S,
    mut next: impl FnMut(usize, &mut S) -> Option<usize>,
) -> Option<Vec<usize>> {
    // `seen`: reached; `open`: on the DFS stack.
    let mut seen = bitvec![0; n];
    let mut open = bitvec![0; n];
    let mut stack: Vec<(usize, S)> = Vec::new();
    for s in starts {
        if seen[s] {
            continue;
        }
        seen.set(s, true);
        open.set(s, true);
        stack.push((s, begin(s)));
        while let Some((u, state)) = stack.last_mut() {
            let u = *u;
            let Some(w) = next(u, state) else {
                open.set(u, false);
                stack.pop();
                continue;
            };
            if open[w] {
                let pos = stack.iter().position(|e| e.0 == w).unwrap_or(0);
                return Some(stack[pos..].iter().map(|e| e.0).collect());
            }
            if !seen[w] {
                seen.set(w, true);
                open.set(w, true);
                stack.push((w, begin(w)));
            }
        }
    }
    None
}

/// [`find_cycle`] over successor bit masks: `succ(u)` is a mask and
/// `target(u, bit)` the vertex of a bit; vertices that are not `present`
/// start no search.
fn find_cycle_masks(
    n: usize,
    present: impl Fn(usize) -> bool,
    succ: &impl Fn(usize) -> u128,
    target: &impl Fn(usize, u32) -> usize,
) -> Option<Vec<usize>> {
    find_cycle(
        n,
        (0..n).filter(|&s| present(s)),
        succ,
        |u, m: &mut u128| {
            if *m == 0 {
                return None;
            }
            let bit = m.trailing_zeros();
            *m &= *m - 1;
            Some(target(u, bit))
        },
    )
}

/// A short cycle: one found by DFS, then replaced by the shortest cycle
/// through some of its vertices (a breadth-first search from each of up to
/// 8 of them), so reports list a few channels rather than a long loop.
fn find_short_cycle(
    n: usize,
    present: impl Fn(usize) -> bool,
    succ: impl Fn(usize) -> u128,
    target: impl Fn(usize, u32) -> usize,
) -> Option<Vec<usize>> {
    let mut best = find_cycle_masks(n, present, &succ, &target)?;
    let step = best.len().div_ceil(8).max(1);
    let starts: Vec<usize> = best.iter().step_by(step).copied().collect();
    let mut parent = vec![u32::MAX; n];
    let mut touched = Vec::new();
    for s in starts {
        let mut queue = std::collections::VecDeque::from([s]);
        let mut found = None;
        'bfs: while let Some(u) = queue.pop_front() {
            let mut m = succ(u);
            while m != 0 {
                let b = m.trailing_zeros();
                m &= m - 1;
                let w = target(u, b);
                if w == s {
                    found = Some(u);
                    break 'bfs;
                }
                if parent[w] == u32::MAX {
                    parent[w] = u as u32;
                    touched.push(w);
                    queue.push_back(w);
                }
            }
        }
        if let Some(mut u) = found {
            let mut cyc = vec![u];
            while u != s {
                u = parent[u] as usize;
                cyc.push(u);
            }
            cyc.reverse();
            if cyc.len() < best.len() {
                best = cyc;
            }
        }
        for &w in &touched {
            parent[w] = u32::MAX;
        }
        touched.clear();
    }
    Some(best)
}

/// The direct CDG: `succ[c]` is a mask over `port * V + vc` of the
/// downstream router, for channel `c = (r * 4 + port) * V + vc`.
struct DirectCdg {
    v: usize,
    succ: Vec<u128>,
}

impl DirectCdg {
    fn build(topo: &Topology, v: usize, classes: &[(usize, usize)], cand: &CandFn<'_>) -> Self {
        let n = topo.nodes();
        let vmask = (1u128 << v) - 1;
        let mut succ = vec![0u128; n * DIRS * v];
        let mut dests = Vec::with_capacity(20);
        for r1 in 0..n {
            for p1 in 0..DIRS {
                let Some(r2) = topo.neighbor(r1, p1) else {
                    continue;
                };
                let exists: u128 = (0..DIRS)
                    .filter(|&p| topo.neighbor(r2, p).is_some())
                    .fold(0, |m, p| m | vmask << (p * v));
                rep_dests(topo, r1, r2, &mut dests);
                for &d in &dests {
                    for &(lo, hi) in classes {
                        let mut held = (cand(r1, d, lo, hi) >> (p1 * v)) & vmask;
                        if held == 0 {
                            continue;
                        }
                        let next = cand(r2, d, lo, hi) & dir_bits(v) & exists;
                        while held != 0 {
                            let vc = held.trailing_zeros() as usize;
                            held &= held - 1;
                            succ[(r1 * DIRS + p1) * v + vc] |= next;
                        }
                    }
                }
            }
        }
        DirectCdg { v, succ }
    }

    fn size(&self, topo: &Topology) -> GraphSize {
        let links = (0..topo.nodes())
            .map(|r| (0..DIRS).filter(|&p| topo.neighbor(r, p).is_some()).count())
            .sum::<usize>();
        GraphSize {
            channels: links * self.v,
            dependencies: self.succ.iter().map(|m| m.count_ones() as usize).sum(),
        }
    }

    fn channel(&self, topo: &Topology, c: usize) -> Channel {
        let v = self.v;
        let router = c / (DIRS * v);
        let (x, y) = topo.coord(router);
        Channel {
            router,
            x,
            y,
            port: c / v % DIRS,
            vc: c % v,
        }
    }

    fn target(&self, topo: &Topology, c: usize, bit: u32) -> usize {
        let v = self.v;
        let r1 = c / (DIRS * v);
        let p1 = c / v % DIRS;
        let r2 = topo.neighbor(r1, p1).unwrap_or(r1);
        r2 * DIRS * v + bit as usize
    }

    fn find_cycle(&self, topo: &Topology) -> Option<Vec<Channel>> {
        let v = self.v;
        let cyc = find_short_cycle(
            self.succ.len(),
            |c| topo.neighbor(c / (DIRS * v), c / v % DIRS).is_some(),
            |c| self.succ[c],
            |c, b| self.target(topo, c, b),
        )?;
        Some(cyc.into_iter().map(|c| self.channel(topo, c)).collect())
    }
}

/// The escape sub-network's extended dependency graph of one class, on
/// states. Vertices `0..4R`: escape channel `(r, port)`; vertices
/// `4R + r * 9 + q`: a packet at router `r` whose destination has sign
/// class `q`, about to choose its next channel. Edges: escape channel →
/// state at the downstream router; state → escape channel it may request;
/// state → state through an adaptive channel.
struct StateGraph {
    n: usize,
    /// Per escape channel: bit q = edge to state (downstream router, q).
    esc_succ: Vec<u16>,
    /// Per state: bit p*9+q' = adaptive hop to (neighbour p, q'); bit 36+p =
    /// request of escape channel (r, p).
    state_succ: Vec<u64>,
}

impl StateGraph {
    fn build(topo: &Topology, v: usize, lo: usize, hi: usize, cand: &CandFn<'_>) -> Self {
        let n = topo.nodes();
        let esc = 1u128 << lo;
        let mut g = StateGraph {
            n,
            esc_succ: vec![0; n * DIRS],
            state_succ: vec![0; n * SIGNS],
        };
        let mut dests = Vec::with_capacity(20);
        for r1 in 0..n {
            for p1 in 0..DIRS {
                let Some(r2) = topo.neighbor(r1, p1) else {
                    continue;
                };
                rep_dests(topo, r1, r2, &mut dests);
                for &d in &dests {
                    let held = cand(r1, d, lo, hi) >> (p1 * v);
                    let (q1, q2) = (sign_class(topo, r1, d), sign_class(topo, r2, d));
                    if held & esc != 0 {
                        g.esc_succ[r1 * DIRS + p1] |= 1 << q2;
                    }
                    if held & ((1u128 << v) - 1) & !esc != 0 {
                        g.state_succ[r1 * SIGNS + q1] |= 1 << (p1 * SIGNS + q2);
                    }
                }
            }
            rep_dests(topo, r1, r1, &mut dests);
            for &d in &dests {
                let m = cand(r1, d, lo, hi);
                let q = sign_class(topo, r1, d);
                for p in 0..DIRS {
                    if topo.neighbor(r1, p).is_some() && (m >> (p * v)) & esc != 0 {
                        g.state_succ[r1 * SIGNS + q] |= 1 << (DIRS * SIGNS + p);
                    }
                }
            }
        }
        g
    }

    fn target(&self, topo: &Topology, u: usize, bit: u32) -> usize {
        let n = self.n;
        let bit = bit as usize;
        if u < n * DIRS {
            let r2 = topo.neighbor(u / DIRS, u % DIRS).unwrap_or(0);
            n * DIRS + r2 * SIGNS + bit
        } else {
            let r = (u - n * DIRS) / SIGNS;
            if bit >= DIRS * SIGNS {
                r * DIRS + (bit - DIRS * SIGNS)
            } else {
                let r2 = topo.neighbor(r, bit / SIGNS).unwrap_or(r);
                n * DIRS + r2 * SIGNS + bit % SIGNS
            }
        }
    }

    /// One cycle, as channels: escape channels, and for each adaptive hop
    /// the adaptive channel taken (lowest adaptive VC offered).
    fn find_cycle(
        &self,
        topo: &Topology,
        v: usize,
        lo: usize,
        hi: usize,
        cand: &CandFn<'_>,
    ) -> Option<Vec<Channel>> {
        let n = self.n;
        let cyc = find_short_cycle(
            n * (DIRS + SIGNS),
            |_| true,
            |u| {
                if u < n * DIRS {
                    self.esc_succ[u] as u128
                } else {
                    self.state_succ[u - n * DIRS] as u128
                }
            },
            |u, b| self.target(topo, u, b),
        )?;
        let mk = |router: usize, port: usize, vc: usize| {
            let (x, y) = topo.coord(router);
            Channel {
                router,
                x,
                y,
                port,
                vc,
            }
        };
        let mut out = Vec::new();
        for (i, &u) in cyc.iter().enumerate() {
            if u < n * DIRS {
                out.push(mk(u / DIRS, u % DIRS, lo));
                continue;
            }
            let next = cyc[(i + 1) % cyc.len()];
            if next < n * DIRS {
                continue; // the request of an escape channel: listed next
            }
            // An adaptive hop from state u to state `next`.
            let (r, q) = ((u - n * DIRS) / SIGNS, (u - n * DIRS) % SIGNS);
            let r2 = (next - n * DIRS) / SIGNS;
            let Some(p) = (0..DIRS).find(|&p| topo.neighbor(r, p) == Some(r2)) else {
                continue;
            };
            let d = rep_of_class(topo, r, q).unwrap_or(r);
            let adaptive = (cand(r, d, lo, hi) >> (p * v)) & ((1u128 << v) - 1) & !(1u128 << lo);
            let vc = if adaptive == 0 {
                (lo + 1).min(hi.saturating_sub(1))
            } else {
                adaptive.trailing_zeros() as usize
            };
            out.push(mk(r, p, vc));
        }
        Some(out)
    }
}

/// A destination of sign class `q` relative to router `r`, if one exists.
fn rep_of_class(topo: &Topology, r: usize, q: usize) -> Option<usize> {
    let (x, y) = topo.coord(r);
    let pick = |c: usize, s: usize, n: usize| match s {
        0 => c.checked_sub(1),
        1 => Some(c),
        _ => (c + 1 < n).then_some(c + 1),
    };
    Some(topo.node(pick(x, q / 3, topo.width)?, pick(y, q % 3, topo.height)?))
}

/// Duato's connectivity condition for one class: at every router, for every
/// destination, the candidate set offers the escape VC, on productive ports
/// only (so following escape channels alone reaches the destination).
fn escape_connected(
    topo: &Topology,
    v: usize,
    lo: usize,
    hi: usize,
    cand: &CandFn<'_>,
) -> Result<(), String> {
    let esc = 1u128 << lo;
    let mut dests = Vec::with_capacity(9);
    for r in 0..topo.nodes() {
        rep_dests(topo, r, r, &mut dests);
        for &d in &dests {
            let m = cand(r, d, lo, hi);
            let ports: Vec<usize> = (0..=LOCAL).filter(|&p| (m >> (p * v)) & esc != 0).collect();
            let (rx, ry) = topo.coord(r);
            let (dx, dy) = topo.coord(d);
            let ok = if r == d {
                ports == [LOCAL]
            } else {
                let prod = Routing::productive(topo, r, d);
                !ports.is_empty() && ports.iter().all(|&p| p < DIRS && prod >> p & 1 == 1)
            };
            if !ok {
                return Err(format!(
                    "at router {r} ({rx},{ry}) for destination {d} ({dx},{dy}) the candidate \
                     set of VCs {lo}..{hi} offers escape VC {lo} on {} instead of exactly the \
                     productive direction(s)",
                    if ports.is_empty() {
                        "no port".to_string()
                    } else {
                        ports
                            .iter()
                            .map(|&p| Topology::port_name(p))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClassSpec;
    use crate::topology::MeshSpec;
    use wafernoc_router::RouterConfig;

    fn topo(w: usize, h: usize) -> Topology {
        Topology::new(MeshSpec {
            rows: h,
            cols: w,
            ..Default::default()
        })
        .unwrap()
    }

    fn cfg(w: usize, h: usize, routing: Routing, vcs: &[usize]) -> NetworkConfig {
        NetworkConfig {
            mesh: MeshSpec {
                rows: h,
                cols: w,
                ..Default::default()
            },
            router: RouterConfig {
                num_vcs: vcs.iter().sum(),
                ..Default::default()
            },
            routing,
            classes: vcs
                .iter()
                .enumerate()
                .map(|(i, &n)| ClassSpec {
                    name: format!("c{i}"),
                    vcs: n,
                    priority: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn class_ranges(vcs: &[usize]) -> Vec<(usize, usize)> {
        let mut lo = 0;
        vcs.iter()
            .map(|&n| {
                lo += n;
                (lo - n, lo)
            })
            .collect()
    }

    /// The direct CDG over every destination.
    fn brute_direct(
        t: &Topology,
        v: usize,
        classes: &[(usize, usize)],
        cand: &CandFn<'_>,
    ) -> Vec<u128> {
        let n = t.nodes();
        let mut succ = vec![0u128; n * DIRS * v];
        for r1 in 0..n {
            for p1 in 0..DIRS {
                let Some(r2) = t.neighbor(r1, p1) else {
                    continue;
                };
                for d in 0..n {
                    for &(lo, hi) in classes {
                        let held = (cand(r1, d, lo, hi) >> (p1 * v)) & ((1u128 << v) - 1);
                        let next = cand(r2, d, lo, hi) & dir_bits(v);
                        for vc in 0..v {
                            if held >> vc & 1 == 1 {
                                succ[(r1 * DIRS + p1) * v + vc] |= next;
                            }
                        }
                    }
                }
            }
        }
        succ
    }

    /// Kahn's algorithm on an explicit graph: is it acyclic?
    fn acyclic(adj: &[Vec<usize>]) -> bool {
        let mut indeg = vec![0usize; adj.len()];
        for a in adj {
            for &w in a {
                indeg[w] += 1;
            }
        }
        let mut q: Vec<usize> = (0..adj.len()).filter(|&u| indeg[u] == 0).collect();
        let mut seen = 0;
        while let Some(u) = q.pop() {
            seen += 1;
            for &w in &adj[u] {
                indeg[w] -= 1;
                if indeg[w] == 0 {
                    q.push(w);
                }
            }
        }
        seen == adj.len()
    }

    fn adj_of(t: &Topology, g: &DirectCdg) -> Vec<Vec<usize>> {
        (0..g.succ.len())
            .map(|c| {
                let mut m = g.succ[c];
                let mut out = Vec::new();
                while m != 0 {
                    let b = m.trailing_zeros();
                    m &= m - 1;
                    out.push(g.target(t, c, b));
                }
                out
            })
            .collect()
    }

    /// The extended escape CDG of one class over every destination:
    /// escape channel (r, p) → escape channels requested after any number
    /// of adaptive hops, by explicit search per destination.
    fn brute_extended(
        t: &Topology,
        v: usize,
        lo: usize,
        hi: usize,
        cand: &CandFn<'_>,
    ) -> Vec<Vec<usize>> {
        let n = t.nodes();
        let esc = 1u128 << lo;
        let amask = ((1u128 << v) - 1) & !esc;
        let mut adj = vec![Vec::new(); n * DIRS];
        for r1 in 0..n {
            for p1 in 0..DIRS {
                let Some(r2) = t.neighbor(r1, p1) else {
                    continue;
                };
                for d in 0..n {
                    if (cand(r1, d, lo, hi) >> (p1 * v)) & esc == 0 {
                        continue;
                    }
                    let mut seen = vec![false; n];
                    let mut st = vec![r2];
                    seen[r2] = true;
                    while let Some(r) = st.pop() {
                        let m = cand(r, d, lo, hi);
                        for p in 0..DIRS {
                            let Some(nb) = t.neighbor(r, p) else { continue };
                            if (m >> (p * v)) & esc != 0 {
                                adj[r1 * DIRS + p1].push(r * DIRS + p);
                            }
                            if (m >> (p * v)) & amask != 0 && !seen[nb] {
                                seen[nb] = true;
                                st.push(nb);
                            }
                        }
                    }
                }
                adj[r1 * DIRS + p1].sort_unstable();
                adj[r1 * DIRS + p1].dedup();
            }
        }
        adj
    }

    /// Escape-channel successors in the state graph (through states only).
    fn state_extended(t: &Topology, g: &StateGraph) -> Vec<Vec<usize>> {
        let n = t.nodes();
        (0..n * DIRS)
            .map(|u| {
                let mut out = Vec::new();
                let mut seen = vec![false; n * (DIRS + SIGNS)];
                let mut st = Vec::new();
                let push_succ =
                    |u: usize, st: &mut Vec<usize>, seen: &mut Vec<bool>, out: &mut Vec<usize>| {
                        let mut m = if u < n * DIRS {
                            g.esc_succ[u] as u128
                        } else {
                            g.state_succ[u - n * DIRS] as u128
                        };
                        while m != 0 {
                            let b = m.trailing_zeros();
                            m &= m - 1;
                            let w = g.target(t, u, b);
                            if w < n * DIRS {
                                out.push(w);
                            } else if !seen[w] {
                                seen[w] = true;
                                st.push(w);
                            }
                        }
                    };
                push_succ(u, &mut st, &mut seen, &mut out);
                while let Some(w) = st.pop() {
                    push_succ(w, &mut st, &mut seen, &mut out);
                }
                out.sort_unstable();
                out.dedup();
                out
            })
            .collect()
    }

    /// A deliberately broken deterministic routing: XY on even rows, YX on
    /// odd rows (depends on the router and the signs only).
    fn mixed(t: &Topology, cur: usize, dst: usize, lo: usize, hi: usize, v: usize) -> u128 {
        let cls = ((1u128 << (hi - lo)) - 1) << lo;
        let x_first = t.coord(cur).1 % 2 == 0;
        cls << (Routing::dor_port(t, cur, dst, x_first) * v)
    }

    /// Minimal adaptive with an escape VC routed by `mixed`.
    fn broken_escape(t: &Topology, cur: usize, dst: usize, lo: usize, hi: usize, v: usize) -> u128 {
        let full = Routing::AdaptiveUnsafe.candidates(t, cur, dst, lo, hi, v) & !escape_bits(v, lo);
        let full = if cur == dst {
            Routing::Xy.candidates(t, cur, dst, lo, hi, v)
        } else {
            full
        };
        full | (mixed(t, cur, dst, lo, lo + 1, v))
    }

    const VC_SETS: &[&[usize]] = &[&[1], &[2], &[3], &[1, 1], &[2, 3], &[1, 2, 1]];

    #[test]
    fn representatives_match_brute_force() {
        for w in 1..=5 {
            for h in 1..=5 {
                let t = topo(w, h);
                for vcs in VC_SETS {
                    let v: usize = vcs.iter().sum();
                    let cl = class_ranges(vcs);
                    for (_, routing) in Routing::ALL {
                        let c = |a: usize, b: usize, lo: usize, hi: usize| {
                            routing.candidates(&t, a, b, lo, hi, v)
                        };
                        let g = DirectCdg::build(&t, v, &cl, &c);
                        assert_eq!(
                            g.succ,
                            brute_direct(&t, v, &cl, &c),
                            "{w}x{h} {routing:?} {vcs:?}"
                        );
                    }
                    let c = |a: usize, b: usize, lo: usize, hi: usize| mixed(&t, a, b, lo, hi, v);
                    let g = DirectCdg::build(&t, v, &cl, &c);
                    let brute = brute_direct(&t, v, &cl, &c);
                    assert_eq!(g.succ, brute, "{w}x{h} mixed {vcs:?}");
                    let adj = adj_of(&t, &g);
                    assert_eq!(g.find_cycle(&t).is_none(), acyclic(&adj), "{w}x{h} mixed");
                }
            }
        }
    }

    #[test]
    fn state_graph_matches_brute_force_extended_cdg() {
        for w in 1..=5 {
            for h in 1..=5 {
                let t = topo(w, h);
                for vcs in [&[2usize][..], &[3], &[2, 2], &[1, 3]] {
                    let v: usize = vcs.iter().sum();
                    for (lo, hi) in class_ranges(vcs) {
                        let good = |a: usize, b: usize, lo: usize, hi: usize| {
                            Routing::AdaptiveEscape.candidates(&t, a, b, lo, hi, v)
                        };
                        let bad = |a: usize, b: usize, lo: usize, hi: usize| {
                            broken_escape(&t, a, b, lo, hi, v)
                        };
                        for (name, c) in [("good", &good as &CandFn<'_>), ("bad", &bad)] {
                            let sg = StateGraph::build(&t, v, lo, hi, c);
                            let brute = brute_extended(&t, v, lo, hi, c);
                            let mine = state_extended(&t, &sg);
                            assert_eq!(mine, brute, "{w}x{h} {name} {vcs:?}");
                            let cyc = sg.find_cycle(&t, v, lo, hi, c);
                            assert_eq!(cyc.is_none(), acyclic(&brute), "{w}x{h} {name}");
                            if name == "good" {
                                assert!(cyc.is_none());
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn safe_routings_are_proven_and_unsafe_has_a_cycle() {
        for (w, h) in [(1, 1), (1, 6), (5, 1), (2, 2), (4, 3), (8, 8)] {
            for vcs in [&[2usize][..], &[4], &[2, 2], &[3, 2, 2]] {
                for r in [Routing::Xy, Routing::Yx, Routing::AdaptiveEscape] {
                    let v = check(&cfg(w, h, r, vcs));
                    assert!(v.is_deadlock_free(), "{w}x{h} {r:?} {vcs:?}: {v:?}");
                }
            }
            let a = analyze(&cfg(w, h, Routing::AdaptiveEscape, &[2, 2])).unwrap();
            if w >= 2 && h >= 2 {
                assert!(a.full_cycle.is_some());
                assert!(
                    matches!(a.verdict, Verdict::DeadlockFree { method, .. } if method == DUATO)
                );
                assert!(a.escape.is_some() && a.escape_cycle.is_none());
            } else {
                assert!(
                    matches!(a.verdict, Verdict::DeadlockFree { method, .. } if method == DALLY_SEITZ)
                );
            }
            for vcs in [&[1usize][..], &[2], &[1, 1]] {
                let v = check(&cfg(w, h, Routing::AdaptiveUnsafe, vcs));
                if w >= 2 && h >= 2 {
                    let Verdict::Cycle(c) = v else {
                        panic!("{w}x{h} {vcs:?}: {v:?}")
                    };
                    // The shortest cycle: four turns around one square
                    // (the search shortens the first cycle it finds).
                    assert_eq!(c.len(), 4, "{w}x{h} {vcs:?}: {c:?}");
                    // Each channel leads into the router of the next one.
                    let t = topo(w, h);
                    for (i, ch) in c.iter().enumerate() {
                        let nx = c[(i + 1) % c.len()];
                        assert_eq!(t.neighbor(ch.router, ch.port), Some(nx.router));
                    }
                } else {
                    assert!(v.is_deadlock_free(), "{w}x{h}: {v:?}");
                }
            }
        }
    }

    #[test]
    fn broken_escape_is_caught() {
        let t = topo(4, 4);
        let v = 2;
        let c = |a: usize, b: usize, lo: usize, hi: usize| broken_escape(&t, a, b, lo, hi, v);
        let a = analyze_with(&t, v, &[(0, 2)], &c, true, Routing::AdaptiveEscape);
        let Verdict::Cycle(cyc) = a.verdict else {
            panic!("{:?}", a.verdict)
        };
        assert!(cyc.iter().any(|ch| ch.vc == 0));
        for (i, ch) in cyc.iter().enumerate() {
            let nx = cyc[(i + 1) % cyc.len()];
            assert_eq!(t.neighbor(ch.router, ch.port), Some(nx.router), "{cyc:?}");
        }
        // An escape VC missing from a candidate set is not proven.
        let c = |a: usize, b: usize, lo: usize, hi: usize| {
            let m = Routing::AdaptiveEscape.candidates(&t, a, b, lo, hi, v);
            if a == 5 && b == 10 {
                m & !escape_bits(v, lo)
            } else {
                m
            }
        };
        let a = analyze_with(&t, v, &[(0, 2)], &c, true, Routing::AdaptiveEscape);
        assert!(
            matches!(a.verdict, Verdict::Unproven { .. }),
            "{:?}",
            a.verdict
        );
    }

    /// XY on a W×H mesh with one VC: a channel per directed link,
    /// 2(H(W−1) + W(H−1)), and, at each router, a dependency from every
    /// link entering along x to every link leaving it but the one going
    /// back, and from every link entering along y to the one leaving
    /// straight on.
    fn xy_size(w: usize, h: usize) -> GraphSize {
        let mut dependencies = 0;
        for x in 0..w {
            for y in 0..h {
                let (west, east) = (usize::from(x > 0), usize::from(x + 1 < w));
                let (south, north) = (usize::from(y > 0), usize::from(y + 1 < h));
                dependencies += west * (east + south + north) + east * (west + south + north);
                dependencies += 2 * south * north;
            }
        }
        GraphSize {
            channels: 2 * (h * (w - 1) + w * (h - 1)),
            dependencies,
        }
    }

    /// The graphs' sizes the verdicts report: XY's full graph has the
    /// closed-form size per class ([`xy_size`]); a Duato verdict counts
    /// the escape sub-network alone, the first VC of each class routed
    /// XY, which is therefore as large as XY with one VC per class.
    #[test]
    fn graph_sizes_are_the_closed_forms() {
        for (w, h) in [(2, 2), (4, 3), (1, 5), (6, 6)] {
            for vcs in [&[2usize][..], &[3, 2], &[2, 2, 4]] {
                let k = vcs.len();
                let one = xy_size(w, h);
                let xy = analyze(&cfg(w, h, Routing::Xy, &vec![1; k])).unwrap();
                let want = GraphSize {
                    channels: k * one.channels,
                    dependencies: k * one.dependencies,
                };
                assert_eq!(xy.full, want, "{w}x{h} {vcs:?}");
                let a = analyze(&cfg(w, h, Routing::AdaptiveEscape, vcs)).unwrap();
                if w < 2 || h < 2 {
                    // One row or column: minimal routing has no choice,
                    // and the full graph is already acyclic.
                    assert_eq!(a.escape, None);
                    continue;
                }
                assert_eq!(a.escape, Some(want), "{w}x{h} {vcs:?}");
                assert_eq!(
                    a.verdict,
                    Verdict::DeadlockFree {
                        channels: want.channels,
                        dependencies: want.dependencies,
                        method: DUATO,
                    }
                );
            }
        }
    }

    /// The check refuses a graph of more than [`MAX_CHANNELS`] vertices
    /// (2^23), not one of exactly as many, and names it and its size:
    /// 4·V vertices a router in the channel dependency graph, 13 in the
    /// escape state graph (so 645,277 routers fit, 645,278 do not).
    #[test]
    fn graph_limits_are_exact() {
        let m = MAX_CHANNELS;
        assert_eq!(too_big(m / 8, 2, false), None);
        assert_eq!(
            too_big(m / 8 + 1, 2, false),
            Some(("channel dependency graph", m + 8))
        );
        assert_eq!(too_big(m / 4, 1, false), None);
        assert_eq!(
            too_big(m / 4 + 1, 1, true),
            Some(("channel dependency graph", m + 4))
        );
        assert_eq!(too_big(645_277, 2, true), None);
        assert_eq!(
            too_big(645_278, 2, true),
            Some(("escape state graph", 8_388_614))
        );
        assert_eq!(too_big(645_278, 2, false), None);
        // Through `check`: 804 × 803 routers, 2 VCs, adaptive with escape.
        let v = check(&cfg(804, 803, Routing::AdaptiveEscape, &[2]));
        let Verdict::Unproven { reason } = v else {
            panic!("{v:?}")
        };
        assert!(
            reason.contains("escape state graph would have 8392956 vertices"),
            "{reason}"
        );
    }

    #[test]
    fn large_mesh_is_fast_and_invalid_is_a_value() {
        let t0 = std::time::Instant::now();
        for r in [
            Routing::Xy,
            Routing::AdaptiveEscape,
            Routing::AdaptiveUnsafe,
        ] {
            let v = check(&cfg(64, 64, r, &[4, 4]));
            assert_eq!(v.is_deadlock_free(), r.is_safe());
        }
        assert!(t0.elapsed().as_secs() < 30);
        let mut c = cfg(4, 4, Routing::AdaptiveEscape, &[1]);
        assert!(matches!(check(&c), Verdict::Invalid(_)));
        c.mesh.rows = 0;
        assert!(matches!(check(&c), Verdict::Invalid(_)));
    }
}
