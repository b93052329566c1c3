//! Synthetic traffic: destination patterns, injection processes, packet sizes.
//!
//! Determinism: node `n` draws from its own xoshiro256++ stream seeded from
//! (seed, n) through splitmix64, so results do not depend on how many nodes
//! are generated per cycle or in which order. Bernoulli injection is drawn as
//! geometric gaps between packets (the same distribution as one coin per
//! cycle), so a lightly loaded network costs little per cycle.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use wafernoc_mesh::sim::TrafficSource;
use wafernoc_mesh::{NewPacket, Topology};

/// Destination pattern (BookSim2 names and definitions; x = column, y = row).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Pattern {
    /// Uniform over all nodes, the source included (as BookSim).
    Uniform,
    /// (x, y) → (y, x); square meshes only.
    Transpose,
    /// (x, y) → (C−1−x, R−1−y): the bit complement when sides are powers of 2.
    Bitcomp,
    /// Node id with its bits reversed; node count a power of 2.
    Bitrev,
    /// Node id rotated left by one bit; node count a power of 2.
    Shuffle,
    /// Each coordinate moves ⌈k/2⌉ − 1 forward, modulo the side k.
    Tornado,
    /// (x, y) → (x+1 mod C, y+1 mod R).
    Neighbor,
    /// A fraction of packets goes to the hotspot nodes (uniformly among
    /// them), the rest is uniform.
    Hotspot {
        /// Hotspot node ids.
        nodes: Vec<u32>,
        /// Fraction of packets sent to hotspots, in [0, 1].
        fraction: f64,
    },
}

/// Injection process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Process {
    /// One coin per node per cycle.
    Bernoulli,
    /// Two-state Markov source (BookSim `on_off`): off→on with probability
    /// `alpha`, on→off with `beta` per cycle; while on, packets come at the
    /// rate that makes the long-run mean equal the offered rate.
    OnOff {
        /// Probability per cycle of switching on.
        alpha: f64,
        /// Probability per cycle of switching off.
        beta: f64,
    },
}

/// Unit of the injection rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateUnit {
    /// Flits per node per cycle (BookSim `injection_rate_uses_flits = 1`).
    Flits,
    /// Packets per node per cycle.
    Packets,
}

/// Complete description of a synthetic workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticSpec {
    /// Destination pattern.
    pub pattern: Pattern,
    /// Injection process.
    pub process: Process,
    /// Offered load.
    pub rate: f64,
    /// Unit of `rate`.
    pub rate_unit: RateUnit,
    /// Packet sizes in flits; one entry is a fixed size.
    pub sizes: Vec<u16>,
    /// Relative weights of `sizes` (empty: equal).
    pub size_weights: Vec<f64>,
    /// Message class of every packet.
    pub class: u8,
    /// Seed.
    pub seed: u64,
}

impl SyntheticSpec {
    /// The packet size's mean and mean square in flits, with sizes drawn
    /// by `size_weights` (equal weights if empty). For a valid spec.
    pub fn size_moments(&self) -> (f64, f64) {
        let w = |i: usize| self.size_weights.get(i).copied().unwrap_or(1.0);
        let total: f64 = (0..self.sizes.len()).map(w).sum();
        let moment = |k: i32| {
            self.sizes
                .iter()
                .enumerate()
                .map(|(i, &s)| f64::from(s).powi(k) * w(i))
                .sum::<f64>()
                / total
        };
        (moment(1), moment(2))
    }
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            pattern: Pattern::Uniform,
            process: Process::Bernoulli,
            rate: 0.1,
            rate_unit: RateUnit::Flits,
            sizes: vec![1],
            size_weights: Vec::new(),
            class: 0,
            seed: 0,
        }
    }
}

/// The traffic parameter an error is about. A workload comes from a native
/// configuration (`traffic.rate`) or a BookSim2 file (`injection_rate`),
/// and the traffic crate does not know which: its errors name both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficKey {
    /// The destination pattern.
    Pattern,
    /// A hotspot pattern's fraction.
    HotspotFraction,
    /// A hotspot pattern's nodes.
    HotspotNodes,
    /// The packet sizes.
    Sizes,
    /// The packet size weights.
    SizeWeights,
    /// The injection rate.
    Rate,
    /// The on/off process's off → on probability.
    OnOffAlpha,
    /// The on/off process's on → off probability.
    OnOffBeta,
}

impl TrafficKey {
    /// The key in a native run configuration (`wafernoc run`).
    pub fn native(self) -> &'static str {
        match self {
            TrafficKey::Pattern => "traffic.pattern.kind",
            TrafficKey::HotspotFraction => "traffic.pattern.fraction",
            TrafficKey::HotspotNodes => "traffic.pattern.nodes",
            TrafficKey::Sizes => "traffic.sizes",
            TrafficKey::SizeWeights => "traffic.size_weights",
            TrafficKey::Rate => "traffic.rate",
            TrafficKey::OnOffAlpha => "traffic.process.alpha",
            TrafficKey::OnOffBeta => "traffic.process.beta",
        }
    }

    /// The key in a BookSim2 configuration (`wafernoc booksim`).
    pub fn booksim(self) -> &'static str {
        match self {
            TrafficKey::Pattern => "traffic",
            // BookSim2 gives hotspots in the traffic value, `hotspot({{..}})`.
            TrafficKey::HotspotFraction | TrafficKey::HotspotNodes => "traffic",
            TrafficKey::Sizes => "packet_size",
            TrafficKey::SizeWeights => "packet_size_rate",
            TrafficKey::Rate => "injection_rate",
            TrafficKey::OnOffAlpha => "burst_alpha",
            TrafficKey::OnOffBeta => "burst_beta",
        }
    }
}

/// An impossible traffic parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid traffic parameter `{}` (BookSim2 `{}`): {reason}", key.native(), key.booksim())]
pub struct TrafficError {
    /// Key at fault.
    pub key: TrafficKey,
    /// Why.
    pub reason: String,
}

fn terr<T>(key: TrafficKey, reason: impl Into<String>) -> Result<T, TrafficError> {
    Err(TrafficError {
        key,
        reason: reason.into(),
    })
}

/// splitmix64: seeds one stream per node from (seed, node).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of stream `stream` under `seed`.
pub fn stream_rng(seed: u64, stream: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(splitmix64(seed ^ splitmix64(stream.wrapping_add(0x5151))))
}

impl Pattern {
    /// Check the pattern against the topology.
    pub fn validate(&self, topo: &Topology) -> Result<(), TrafficError> {
        let n = topo.nodes();
        match self {
            Pattern::Transpose if topo.width != topo.height => terr(
                TrafficKey::Pattern,
                format!(
                    "transpose needs a square mesh, not {}×{}",
                    topo.width, topo.height
                ),
            ),
            Pattern::Bitrev | Pattern::Shuffle if !n.is_power_of_two() => terr(
                TrafficKey::Pattern,
                format!("{self:?} needs a power-of-two node count, not {n}"),
            ),
            Pattern::Hotspot { nodes, fraction } => {
                if !(0.0..=1.0).contains(fraction) {
                    return terr(
                        TrafficKey::HotspotFraction,
                        format!("{fraction} is not in [0, 1]"),
                    );
                }
                if nodes.is_empty() {
                    return terr(
                        TrafficKey::HotspotNodes,
                        "at least one hotspot node is needed",
                    );
                }
                if let Some(b) = nodes.iter().find(|&&h| h as usize >= n) {
                    return terr(
                        TrafficKey::HotspotNodes,
                        format!("node {b} is outside 0..{n}"),
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Destination of a packet from `src`.
    pub fn dest(&self, topo: &Topology, src: usize, rng: &mut impl Rng) -> usize {
        let n = topo.nodes();
        let (x, y) = topo.coord(src);
        let (w, h) = (topo.width, topo.height);
        match self {
            Pattern::Uniform => rng.random_range(0..n),
            Pattern::Transpose => topo.node(y, x),
            Pattern::Bitcomp => topo.node(w - 1 - x, h - 1 - y),
            Pattern::Bitrev => {
                let bits = n.trailing_zeros();
                if bits == 0 {
                    0
                } else {
                    (src as u64).reverse_bits() as usize >> (64 - bits)
                }
            }
            Pattern::Shuffle => {
                let bits = n.trailing_zeros();
                if bits == 0 {
                    0
                } else {
                    ((src << 1) & (n - 1)) | (src >> (bits - 1))
                }
            }
            Pattern::Tornado => topo.node((x + w.div_ceil(2) - 1) % w, (y + h.div_ceil(2) - 1) % h),
            Pattern::Neighbor => topo.node((x + 1) % w, (y + 1) % h),
            Pattern::Hotspot { nodes, fraction } => {
                if rng.random::<f64>() < *fraction {
                    nodes[rng.random_range(0..nodes.len())] as usize
                } else {
                    rng.random_range(0..n)
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct OnOffState {
    on: bool,
    until: u64,
}

/// Each node's next packet time, popped in (time, node) order.
///
/// Times within `len` cycles of the next expected cycle sit in a calendar
/// of node bitmaps, one slot per cycle (`len` a power of 2): scanning the
/// slot of cycle `t` word by word yields its nodes in ascending order, the
/// order a binary heap of `(time, node)` would pop them in, for a few
/// instructions per packet where each heap push and pop takes about a
/// hundred. Later times wait in a heap (`far`) and move into the calendar
/// when they come within range. If a caller skips cycles, everything moves
/// into `far` for good and the heap alone is used, as before the calendar.
struct Calendar {
    /// Next cycle `pop_due` expects (every time held is `>= next`).
    next: u64,
    /// `len - 1`.
    mask: u64,
    /// 64-bit words per slot (`nodes.div_ceil(64)`).
    words: usize,
    /// Slot `time & mask`, word `w`: bit `node & 63` of node `w * 64 + (node & 63)`.
    bits: Vec<u64>,
    /// Times at least `len` cycles ahead (all times after a skipped cycle).
    far: BinaryHeap<Reverse<(u64, u32)>>,
    /// A cycle was skipped: only `far` is used.
    heap_only: bool,
}

impl Calendar {
    fn new(nodes: usize, p: f64) -> Self {
        let words = nodes.div_ceil(64).max(1);
        // About four mean gaps, so that few times go to `far`; at most
        // 16 Ki words (128 KiB) of bitmaps.
        let want = if p > 0.0 {
            (4.0 / p).min(1024.0) as usize
        } else {
            64
        };
        let cap = (16384 / words).max(64);
        let len = want.clamp(64, 1024).min(cap).next_power_of_two();
        Calendar {
            next: 0,
            mask: len as u64 - 1,
            words,
            bits: vec![0; len * words],
            far: BinaryHeap::with_capacity(nodes),
            heap_only: false,
        }
    }

    /// Add `node`'s next packet time `at` (`at >= next`).
    #[inline]
    fn push(&mut self, at: u64, node: u32) {
        if !self.heap_only && at - self.next <= self.mask {
            self.mark(at, node);
        } else {
            self.far.push(Reverse((at, node)));
        }
    }

    /// Called with `t == next`: move the times of `far` that are now within
    /// range into the calendar.
    #[inline]
    fn admit(&mut self, t: u64) {
        while let Some(&Reverse((at, node))) = self.far.peek() {
            if at - t > self.mask {
                break;
            }
            self.far.pop();
            self.mark(at, node);
        }
    }

    /// Set `node`'s bit in the slot of `at` (within `len` cycles of `next`).
    #[inline]
    fn mark(&mut self, at: u64, node: u32) {
        let i = (at & self.mask) as usize * self.words + (node >> 6) as usize;
        self.bits[i] |= 1 << (node & 63);
    }

    /// Give up the calendar (a cycle was skipped): move its times to `far`.
    fn spill_to_heap(&mut self) {
        let len = self.mask as usize + 1;
        for slot in 0..len {
            // The time in [next, next + len) of this slot.
            let at = self.next + ((slot as u64).wrapping_sub(self.next) & self.mask);
            for w in 0..self.words {
                let mut b = std::mem::take(&mut self.bits[slot * self.words + w]);
                while b != 0 {
                    let node = (w * 64) as u32 + b.trailing_zeros();
                    b &= b - 1;
                    self.far.push(Reverse((at, node)));
                }
            }
        }
        self.heap_only = true;
    }
}

/// `ln(1 - p)` for a probability `p`: `(1 - p).ln()` as the draws have
/// always used it, except where `1 - p` rounds to 1 (`p` below about
/// 1.1e-16), whose logarithm would be 0 and make every gap 0 (a packet
/// every cycle instead of almost never); there `ln_1p(-p)`, which keeps
/// such a rate's gaps astronomically long.
fn ln_one_minus(p: f64) -> f64 {
    if 1.0 - p == 1.0 && p > 0.0 {
        (-p).ln_1p()
    } else {
        (1.0 - p).ln()
    }
}

/// A [`TrafficSource`] for a [`SyntheticSpec`].
pub struct Synthetic {
    spec: SyntheticSpec,
    topo: Topology,
    rngs: Vec<Xoshiro256PlusPlus>,
    cal: Calendar,
    p_packet: f64,
    p_on: f64,
    /// `ln(1 - p)` of `p_packet`, `p_on`, alpha and beta (see `Synthetic::geometric`).
    ln_packet: f64,
    ln_on: f64,
    ln_alpha: f64,
    ln_beta: f64,
    onoff: Vec<OnOffState>,
    cum_weights: Vec<f64>,
}

impl Synthetic {
    /// Build a source; checks every parameter.
    pub fn new(spec: SyntheticSpec, topo: &Topology) -> Result<Self, TrafficError> {
        spec.pattern.validate(topo)?;
        if spec.sizes.is_empty() || spec.sizes.contains(&0) {
            return terr(
                TrafficKey::Sizes,
                "packet sizes must be ≥ 1 flit and at least one size given",
            );
        }
        if !spec.size_weights.is_empty() {
            if spec.size_weights.len() != spec.sizes.len() {
                return terr(
                    TrafficKey::SizeWeights,
                    "one weight per packet size is needed",
                );
            }
            if spec
                .size_weights
                .iter()
                .any(|w| !(w.is_finite() && *w >= 0.0))
                || spec.size_weights.iter().sum::<f64>() <= 0.0
            {
                return terr(
                    TrafficKey::SizeWeights,
                    "weights must be non-negative with a positive sum",
                );
            }
        }
        if !(spec.rate.is_finite() && spec.rate >= 0.0) {
            return terr(
                TrafficKey::Rate,
                format!("{:?} is not a non-negative number", spec.rate),
            );
        }
        let weights: Vec<f64> = if spec.size_weights.is_empty() {
            vec![1.0; spec.sizes.len()]
        } else {
            spec.size_weights.clone()
        };
        let total: f64 = weights.iter().sum();
        let mean_size = spec.size_moments().0;
        let mut acc = 0.0;
        let cum_weights = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let p_packet = match spec.rate_unit {
            RateUnit::Flits => spec.rate / mean_size,
            RateUnit::Packets => spec.rate,
        };
        let p_on = match spec.process {
            Process::Bernoulli => p_packet,
            Process::OnOff { alpha, beta } => {
                if !(alpha > 0.0 && alpha <= 1.0) {
                    return terr(
                        TrafficKey::OnOffAlpha,
                        format!("alpha {alpha} must be in (0, 1]"),
                    );
                }
                if !(0.0..=1.0).contains(&beta) {
                    return terr(
                        TrafficKey::OnOffBeta,
                        format!("beta {beta} must be in [0, 1]"),
                    );
                }
                p_packet * (alpha + beta) / alpha
            }
        };
        if p_on > 1.0 {
            return terr(
                TrafficKey::Rate,
                format!(
                    "{:?} {}/node/cycle needs {} packets per cycle while injecting, more than 1",
                    spec.rate,
                    match spec.rate_unit {
                        RateUnit::Flits => "flits",
                        RateUnit::Packets => "packets",
                    },
                    crate::fmt_num(p_on)
                ),
            );
        }
        let n = topo.nodes();
        let (alpha, beta) = match spec.process {
            Process::OnOff { alpha, beta } => (alpha, beta),
            Process::Bernoulli => (0.0, 0.0),
        };
        let mut s = Synthetic {
            rngs: (0..n).map(|i| stream_rng(spec.seed, i as u64)).collect(),
            cal: Calendar::new(n, p_packet),
            p_packet,
            p_on,
            ln_packet: ln_one_minus(p_packet),
            ln_on: ln_one_minus(p_on),
            ln_alpha: ln_one_minus(alpha),
            ln_beta: ln_one_minus(beta),
            onoff: vec![
                OnOffState {
                    on: false,
                    until: 0
                };
                n
            ],
            cum_weights,
            topo: topo.clone(),
            spec,
        };
        for node in 0..n {
            if let Process::OnOff { alpha, .. } = s.spec.process {
                let start_on = s.rngs[node].random::<f64>() < alpha / (alpha + s.beta());
                let st = OnOffState {
                    on: start_on,
                    until: 0,
                };
                s.onoff[node] = st;
                let until = s.phase_length(node, start_on);
                s.onoff[node].until = until;
            }
            if let Some(t) = s.next_packet_time(node, 0) {
                s.cal.push(t, node as u32);
            }
        }
        Ok(s)
    }

    fn beta(&self) -> f64 {
        match self.spec.process {
            Process::OnOff { beta, .. } => beta,
            Process::Bernoulli => 0.0,
        }
    }

    /// Number of cycles until the first success of a p-coin, counting the
    /// current cycle as 0. `ln_q` is `ln(1 - p)` ([`ln_one_minus`]),
    /// computed once.
    #[inline]
    fn geometric(rng: &mut Xoshiro256PlusPlus, p: f64, ln_q: f64) -> Option<u64> {
        if p <= 0.0 {
            return None;
        }
        if p >= 1.0 {
            return Some(0);
        }
        // u in (0, 1].
        let u: f64 = 1.0 - rng.random::<f64>();
        // ⌊k⌋ as an integer: the saturating cast truncates, which is the
        // floor for k ≥ 0 and gives 0 (as did ⌊k⌋ cast) for k < 0 or NaN;
        // ⌊k⌋ > 1e15 exactly when the truncated k > 10^15 (the cast of a
        // k ≥ 2^64 saturates), without a call to `floor`.
        let k = (u.ln() / ln_q) as u64;
        if k > 1_000_000_000_000_000 {
            None
        } else {
            Some(k)
        }
    }

    fn phase_length(&mut self, node: usize, on: bool) -> u64 {
        let (alpha, beta) = match self.spec.process {
            Process::OnOff { alpha, beta } => (alpha, beta),
            Process::Bernoulli => return u64::MAX,
        };
        // A phase lasts until the switching coin succeeds (at least 1 cycle).
        let (p, ln_q) = if on {
            (beta, self.ln_beta)
        } else {
            (alpha, self.ln_alpha)
        };
        Self::geometric(&mut self.rngs[node], p, ln_q).map_or(u64::MAX, |k| k + 1)
    }

    /// First cycle ≥ `from` at which `node` creates a packet.
    fn next_packet_time(&mut self, node: usize, from: u64) -> Option<u64> {
        match self.spec.process {
            Process::Bernoulli => {
                Self::geometric(&mut self.rngs[node], self.p_packet, self.ln_packet)
                    .map(|k| from + k)
            }
            Process::OnOff { .. } => {
                let mut t = from;
                loop {
                    let st = self.onoff[node];
                    let phase_end = st.until; // first cycle of the next phase
                    if t >= phase_end {
                        let len = self.phase_length(node, !st.on);
                        self.onoff[node] = OnOffState {
                            on: !st.on,
                            until: phase_end.saturating_add(len),
                        };
                        continue;
                    }
                    if st.on {
                        if let Some(k) =
                            Self::geometric(&mut self.rngs[node], self.p_on, self.ln_on)
                        {
                            if t + k < phase_end {
                                return Some(t + k);
                            }
                        }
                    }
                    if phase_end == u64::MAX {
                        return None;
                    }
                    t = phase_end;
                }
            }
        }
    }

    fn packet_size(&mut self, node: usize) -> u16 {
        if self.spec.sizes.len() == 1 {
            return self.spec.sizes[0];
        }
        let u: f64 = self.rngs[node].random();
        let i = self
            .cum_weights
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.spec.sizes.len() - 1);
        self.spec.sizes[i]
    }

    /// Packets per node per cycle this source offers on average.
    pub fn packet_rate(&self) -> f64 {
        self.p_packet
    }
}

impl Synthetic {
    /// A packet of `node` created in cycle `t`, and the node's next packet time.
    #[inline]
    fn emit(&mut self, t: u64, node: usize, out: &mut Vec<NewPacket>) {
        let size = self.packet_size(node);
        let dst = self
            .spec
            .pattern
            .dest(&self.topo, node, &mut self.rngs[node]);
        out.push(NewPacket {
            src: node as u32,
            dst: dst as u32,
            size,
            class: self.spec.class,
            ctime: t,
            tag: 0,
        });
        if let Some(nt) = self.next_packet_time(node, t + 1) {
            self.cal.push(nt, node as u32);
        }
    }
}

impl TrafficSource for Synthetic {
    fn generate(&mut self, t: u64, out: &mut Vec<NewPacket>) {
        if !self.cal.heap_only {
            if t < self.cal.next {
                // Every time held is at least `next`: nothing is due.
                return;
            }
            if t > self.cal.next {
                self.cal.spill_to_heap();
            }
        }
        if self.cal.heap_only {
            // Pop in (time, node) order everything due by `t`.
            while let Some(&Reverse((when, node))) = self.cal.far.peek() {
                if when > t {
                    break;
                }
                self.cal.far.pop();
                self.emit(t, node as usize, out);
            }
            return;
        }
        self.cal.admit(t);
        self.cal.next = t + 1;
        let base = (t & self.cal.mask) as usize * self.cal.words;
        for w in 0..self.cal.words {
            // A time pushed while the slot is scanned is in (t, t + len]:
            // t + len falls in this slot, but in the word of its node,
            // already taken.
            let mut b = std::mem::take(&mut self.cal.bits[base + w]);
            while b != 0 {
                let node = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                self.emit(t, node, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wafernoc_mesh::MeshSpec;

    fn topo(k: usize) -> Topology {
        mesh(k, k)
    }

    fn mesh(rows: usize, cols: usize) -> Topology {
        Topology::new(MeshSpec {
            rows,
            cols,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn patterns_match_booksim_on_8x8() {
        let t = topo(8);
        let mut rng = stream_rng(0, 0);
        // transpose swaps halves of the id bits
        for s in 0..64usize {
            let d = Pattern::Transpose.dest(&t, s, &mut rng);
            assert_eq!(d, ((s & 7) << 3) | (s >> 3));
            assert_eq!(Pattern::Bitcomp.dest(&t, s, &mut rng), !s & 63);
            assert_eq!(
                Pattern::Bitrev.dest(&t, s, &mut rng),
                (s as u8).reverse_bits() as usize >> 2
            );
            assert_eq!(
                Pattern::Shuffle.dest(&t, s, &mut rng),
                ((s << 1) & 63) | (s >> 5)
            );
        }
        assert_eq!(Pattern::Tornado.dest(&t, 0, &mut rng), t.node(3, 3));
        assert_eq!(
            Pattern::Neighbor.dest(&t, t.node(7, 2), &mut rng),
            t.node(0, 3)
        );
    }

    #[test]
    fn bernoulli_rate_is_offered_rate() {
        let t = topo(4);
        let spec = SyntheticSpec {
            rate: 0.2,
            sizes: vec![4],
            ..Default::default()
        };
        let mut s = Synthetic::new(spec, &t).unwrap();
        let mut out = Vec::new();
        let cycles = 200_000;
        for c in 0..cycles {
            s.generate(c, &mut out);
        }
        let flits: u64 = out.iter().map(|p| p.size as u64).sum();
        let rate = flits as f64 / 16.0 / cycles as f64;
        // 4 standard deviations of the binomial packet count: 16 x 200,000
        // trials at p = 0.05 packets, 4 flits each (was a fixed 0.004,
        // about 8 sigma).
        let trials = 16.0 * cycles as f64;
        let p = 0.2 / 4.0;
        let tol = 4.0 * (trials * p * (1.0 - p)).sqrt() * 4.0 / trials;
        assert!((rate - 0.2).abs() < tol, "rate {rate}, tolerance {tol}");
        assert!(out.windows(2).all(|w| w[0].ctime <= w[1].ctime));
    }

    /// A rate so small that `1 - p` rounds to 1 makes (almost) no packets;
    /// its logarithm taken as `(1 - p).ln() = 0` made one every cycle.
    #[test]
    fn vanishing_rate_makes_no_packets() {
        let spec = SyntheticSpec {
            rate: 1e-17,
            ..Default::default()
        };
        let mut s = Synthetic::new(spec, &topo(4)).unwrap();
        let mut out = Vec::new();
        for t in 0..1000 {
            s.generate(t, &mut out);
        }
        assert!(out.is_empty(), "{} packets at rate 1e-17", out.len());
    }

    /// The calendar pops the same packets in the same order as the heap
    /// alone (a source switched to it from the start), over several words
    /// of nodes, far times, on/off phases, and calls that skip cycles or
    /// repeat one.
    #[test]
    fn calendar_matches_heap() {
        let cases = [
            (12, 0.3, Process::Bernoulli, vec![4]),
            (12, 0.002, Process::Bernoulli, vec![1, 4]),
            (3, 1.0, Process::Bernoulli, vec![1]),
            (
                9,
                0.05,
                Process::OnOff {
                    alpha: 0.01,
                    beta: 0.2,
                },
                vec![2],
            ),
        ];
        for (k, rate, process, sizes) in cases {
            let t = topo(k);
            let spec = SyntheticSpec {
                rate,
                process,
                sizes,
                seed: 3,
                ..Default::default()
            };
            for skip in [None, Some(1500), Some(2000)] {
                let mut cal = Synthetic::new(spec.clone(), &t).unwrap();
                let mut heap = Synthetic::new(spec.clone(), &t).unwrap();
                heap.cal.spill_to_heap();
                let (mut a, mut b) = (Vec::new(), Vec::new());
                // Cycles 0..6000; with 1500, 700 of them skipped; with
                // 2000, cycles 1998 and 1999 called again.
                let calls: Vec<u64> = match skip {
                    None => (0..6000).collect(),
                    Some(1500) => (0..1500).chain(2200..6000).collect(),
                    Some(_) => (0..2000).chain(1998..6000).collect(),
                };
                for c in calls {
                    cal.generate(c, &mut a);
                    heap.generate(c, &mut b);
                }
                assert!(!a.is_empty());
                assert_eq!(a, b, "{k}x{k} rate {rate} skip {skip:?}");
                assert_eq!(cal.cal.heap_only, skip == Some(1500));
            }
        }
    }

    /// On/off traffic at 0.1 flits/node/cycle, alpha 0.05, beta 0.1.
    fn onoff_spec(seed: u64) -> SyntheticSpec {
        SyntheticSpec {
            rate: 0.1,
            process: Process::OnOff {
                alpha: 0.05,
                beta: 0.1,
            },
            seed,
            ..Default::default()
        }
    }

    /// Asymptotic variance per cycle of one node's packet count under
    /// `onoff_spec`. The on state has stationary probability
    /// pi = a / (a + b) = 1/3 and lag-1 correlation l = 1 - a - b = 0.85,
    /// so the on-cycle count over T cycles has variance
    /// ~ T pi (1 - pi) (1 + l) / (1 - l); packets come at r = 0.3 while on:
    /// Var ~ T (r^2 pi (1 - pi) (1 + l) / (1 - l) + pi r (1 - r)) = 0.317 T.
    fn onoff_variance_per_cycle() -> f64 {
        let (a, b, r) = (0.05f64, 0.1f64, 0.3f64);
        let (pi, l) = (a / (a + b), 1.0 - a - b);
        r * r * pi * (1.0 - pi) * (1.0 + l) / (1.0 - l) + pi * r * (1.0 - r)
    }

    #[test]
    fn onoff_mean_rate_is_offered_rate() {
        let t = topo(4);
        let mut s = Synthetic::new(onoff_spec(0), &t).unwrap();
        let mut out = Vec::new();
        let cycles = 400_000;
        for c in 0..cycles {
            s.generate(c, &mut out);
        }
        let rate = out.len() as f64 / 16.0 / cycles as f64;
        // 4 standard deviations of `onoff_variance_per_cycle` over 16
        // independent nodes: a rate sd of 2.2e-4 (was a fixed 0.005, about
        // 22 sigma).
        let per_cycle = onoff_variance_per_cycle();
        let n = 16.0 * cycles as f64;
        let tol = 4.0 * (per_cycle * n).sqrt() / n;
        assert!((rate - 0.1).abs() < tol, "rate {rate}, tolerance {tol}");
    }

    /// Hotspot destinations: with probability `fraction` a draw from the
    /// node list (a node listed r times drawn r times as often, as
    /// BookSim2's rates), else uniform over all nodes. Every node's count
    /// is within 4 binomial standard deviations of that, for a fraction
    /// below 1 and for 1.
    #[test]
    fn hotspot_destinations_follow_the_list_and_fraction() {
        let t = topo(4);
        let n = 400_000;
        for fraction in [0.6, 1.0] {
            let p = Pattern::Hotspot {
                nodes: vec![5, 5, 5, 9],
                fraction,
            };
            let mut rng = stream_rng(7, 0);
            let mut count = [0u64; 16];
            for i in 0..n {
                count[p.dest(&t, i % 16, &mut rng)] += 1;
            }
            for (d, &c) in count.iter().enumerate() {
                let listed = match d {
                    5 => 0.75,
                    9 => 0.25,
                    _ => 0.0,
                };
                let q = fraction * listed + (1.0 - fraction) / 16.0;
                let (mean, sd) = (n as f64 * q, (n as f64 * q * (1.0 - q)).sqrt());
                assert!(
                    (c as f64 - mean).abs() <= 4.0 * sd,
                    "fraction {fraction}, node {d}: {c} draws, expected {mean:.0} ± {sd:.0}"
                );
            }
        }
    }

    /// On/off traffic is bursty, not only right on average: the variance
    /// of a node's packet count over windows of W cycles is W times
    /// `onoff_variance_per_cycle`
    /// (0.317 for alpha 0.05, beta 0.1, rate 0.1; Bernoulli at the same
    /// rate gives 0.09, and swapping alpha and beta 0.147). W = 1000 is
    /// long against the state's correlation time 1 / (alpha + beta) ≈ 7
    /// cycles, so the window's edge effect (about 1.5 of 317) is left out.
    /// Tolerance: 5 standard deviations of a sample variance of 6,400
    /// nearly normal counts, sqrt(2 / 6399) = 1.8% each.
    #[test]
    fn onoff_counts_have_the_onoff_variance() {
        let t = topo(4);
        let (w, windows) = (1000u64, 400u64);
        let mut s = Synthetic::new(onoff_spec(11), &t).unwrap();
        let mut out = Vec::new();
        for c in 0..w * windows {
            s.generate(c, &mut out);
        }
        let mut counts = vec![0f64; 16 * windows as usize];
        for p in &out {
            counts[p.src as usize * windows as usize + (p.ctime / w) as usize] += 1.0;
        }
        let m = counts.iter().sum::<f64>() / counts.len() as f64;
        let var = counts.iter().map(|c| (c - m) * (c - m)).sum::<f64>() / (counts.len() - 1) as f64;
        let want = onoff_variance_per_cycle() * w as f64;
        let tol = 5.0 * want * (2.0 / (counts.len() - 1) as f64).sqrt();
        assert!(
            (var - want).abs() <= tol,
            "window variance {var:.1}, expected {want:.1} ± {tol:.1}"
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let t = mesh(4, 8);
        let refused = |spec: SyntheticSpec| Synthetic::new(spec, &t).err().unwrap();
        let e = refused(SyntheticSpec {
            pattern: Pattern::Transpose,
            ..Default::default()
        });
        assert!(e.to_string().contains("square"));
        let e = refused(SyntheticSpec {
            rate: 2.0,
            ..Default::default()
        });
        assert_eq!(e.key, TrafficKey::Rate);
        // A huge rate is named in scientific notation, not 309 digits.
        let e = refused(SyntheticSpec {
            rate: 1e308,
            ..Default::default()
        });
        assert_eq!(e.key, TrafficKey::Rate);
        let msg = e.to_string();
        assert!(msg.contains("1e308") && msg.len() < 200, "{msg}");
        let e = refused(SyntheticSpec {
            sizes: vec![0],
            ..Default::default()
        });
        assert_eq!(e.key, TrafficKey::Sizes);
    }

    /// Each pattern's mesh condition, both ways, and each hotspot error
    /// naming its key in both spellings.
    #[test]
    fn patterns_are_checked_against_the_mesh() {
        let (square, wide, odd) = (mesh(4, 4), mesh(4, 8), mesh(3, 3));
        assert!(Pattern::Transpose.validate(&square).is_ok());
        assert!(Pattern::Transpose.validate(&wide).is_err());
        for p in [Pattern::Bitrev, Pattern::Shuffle] {
            // 32 nodes on a 4×8 mesh are a power of two; 9 are not.
            assert!(p.validate(&wide).is_ok(), "{p:?} on 4x8");
            let e = p.validate(&odd).unwrap_err();
            assert_eq!(e.key, TrafficKey::Pattern);
            assert!(e.to_string().contains("not 9"), "{e}");
        }
        for p in [Pattern::Uniform, Pattern::Tornado, Pattern::Neighbor] {
            assert!(p.validate(&odd).is_ok(), "{p:?} on 3x3");
        }
        let hot = |nodes: Vec<u32>, fraction| Pattern::Hotspot { nodes, fraction };
        assert!(hot(vec![0, 8], 0.5).validate(&odd).is_ok());
        assert!(hot(vec![8], 0.0).validate(&odd).is_ok());
        assert!(hot(vec![8], 1.0).validate(&odd).is_ok());
        let cases = [
            (
                hot(vec![0], 1.5),
                TrafficKey::HotspotFraction,
                "traffic.pattern.fraction",
            ),
            (
                hot(vec![0], -0.1),
                TrafficKey::HotspotFraction,
                "traffic.pattern.fraction",
            ),
            (
                hot(vec![], 0.5),
                TrafficKey::HotspotNodes,
                "traffic.pattern.nodes",
            ),
            (
                hot(vec![0, 9], 0.5),
                TrafficKey::HotspotNodes,
                "traffic.pattern.nodes",
            ),
        ];
        for (p, key, native) in cases {
            let e = p.validate(&odd).unwrap_err();
            assert_eq!(e.key, key, "{p:?}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("`{native}`")) && msg.contains("(BookSim2 `traffic`)"),
                "{msg}"
            );
        }
        let e = hot(vec![0, 9], 0.5).validate(&odd).unwrap_err();
        assert!(e.to_string().contains("node 9 is outside 0..9"), "{e}");
    }

    /// The other keys' two spellings, as error messages show them.
    #[test]
    fn traffic_keys_name_both_configurations() {
        let keys = [
            (TrafficKey::Pattern, "traffic.pattern.kind", "traffic"),
            (TrafficKey::Sizes, "traffic.sizes", "packet_size"),
            (
                TrafficKey::SizeWeights,
                "traffic.size_weights",
                "packet_size_rate",
            ),
            (TrafficKey::Rate, "traffic.rate", "injection_rate"),
            (
                TrafficKey::OnOffAlpha,
                "traffic.process.alpha",
                "burst_alpha",
            ),
            (TrafficKey::OnOffBeta, "traffic.process.beta", "burst_beta"),
        ];
        for (key, native, booksim) in keys {
            assert_eq!((key.native(), key.booksim()), (native, booksim));
        }
    }

    /// Tornado off powers of two: BookSim2's `(x + ⌈k/2⌉ - 1) mod k` per
    /// dimension, on a 7-wide, 6-high mesh: x + 3 and y + 2. (On 8×8, and
    /// on sides of 3 or 5, `x - ⌈k/2⌉ - 1` wrapped through 2^64 lands on
    /// the same node, so a wrong sign would not show.)
    #[test]
    fn tornado_wraps_off_powers_of_two() {
        let t = mesh(6, 7);
        let mut rng = stream_rng(0, 0);
        for y in 0..6 {
            for x in 0..7 {
                let d = Pattern::Tornado.dest(&t, t.node(x, y), &mut rng);
                assert_eq!(t.coord(d), ((x + 3) % 7, (y + 2) % 6), "from ({x}, {y})");
            }
        }
    }

    /// Mean and mean square of the packet size under unequal weights:
    /// sizes 1 and 4 weighted 3 : 1 give (3·1 + 4) / 4 and (3·1 + 16) / 4.
    #[test]
    fn size_moments_follow_the_weights() {
        let spec = SyntheticSpec {
            sizes: vec![1, 4],
            size_weights: vec![3.0, 1.0],
            ..Default::default()
        };
        assert_eq!(spec.size_moments(), (1.75, 4.75));
        let equal = SyntheticSpec {
            sizes: vec![2, 6],
            size_weights: vec![],
            ..Default::default()
        };
        assert_eq!(equal.size_moments(), (4.0, 20.0));
    }

    /// Packet sizes follow `size_weights`: sizes 1 and 4 weighted 3 : 1
    /// on 16 nodes at 0.25 packets a node and cycle, 4,000 cycles (about
    /// 16,000 packets): size 1 in 3/4 of them within 4 binomial sds, and
    /// the packet rate is the rate given in packets, or flits over the
    /// mean size (1.75 flits).
    #[test]
    fn sizes_follow_their_weights() {
        let spec = SyntheticSpec {
            rate: 0.25,
            rate_unit: RateUnit::Packets,
            sizes: vec![1, 4],
            size_weights: vec![3.0, 1.0],
            seed: 5,
            ..Default::default()
        };
        let mut s = Synthetic::new(spec.clone(), &topo(4)).unwrap();
        assert_eq!(s.packet_rate(), 0.25);
        let mut out = Vec::new();
        for c in 0..4000 {
            s.generate(c, &mut out);
        }
        let n = out.len() as f64;
        let ones = out.iter().filter(|p| p.size == 1).count() as f64;
        assert_eq!(ones + out.iter().filter(|p| p.size == 4).count() as f64, n);
        let sd = (n * 0.75 * 0.25).sqrt();
        assert!(
            (ones - 0.75 * n).abs() < 4.0 * sd,
            "{ones} of {n} of size 1"
        );
        let flits = SyntheticSpec {
            rate: 0.35,
            rate_unit: RateUnit::Flits,
            ..spec
        };
        let s = Synthetic::new(flits, &topo(4)).unwrap();
        assert!((s.packet_rate() - 0.2).abs() < 1e-12, "{}", s.packet_rate());
    }

    /// splitmix64 is the published generator: from state 0 its first
    /// output is 0xE220A8397B1DCDAF, and from state 1234567 its first two
    /// are 6457827717110365317 and 3203168211198807973 (each call here
    /// is one step from the state given).
    #[test]
    fn splitmix64_matches_the_reference_outputs() {
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(1_234_567), 6_457_827_717_110_365_317);
        assert_eq!(
            splitmix64(1_234_567u64.wrapping_add(0x9E37_79B9_7F4A_7C15)),
            3_203_168_211_198_807_973
        );
    }

    /// On/off sources start in the stationary state (on with probability
    /// alpha / (alpha + beta) = 1/3 for `onoff_spec`), so cycle 0 already
    /// offers the mean rate: 1/3 × 0.3 = 0.1 packets a node. 4,096 nodes
    /// give 409.6 packets, with a binomial sd of 19.2; the check allows 4
    /// sds. Starting every node on would give 1,229; off, 0.
    #[test]
    fn onoff_sources_start_in_the_stationary_state() {
        let mut s = Synthetic::new(onoff_spec(3), &topo(64)).unwrap();
        let mut out = Vec::new();
        s.generate(0, &mut out);
        let (n, p) = (4096.0f64, 0.1f64);
        let sd = (n * p * (1.0 - p)).sqrt();
        let got = out.len() as f64;
        assert!((got - n * p).abs() < 4.0 * sd, "{got} packets in cycle 0");
    }

    /// `ln_one_minus` is `(1 - p).ln()` to the bit for ordinary rates (the
    /// draws' inter-arrival gaps depend on it, so results stay as they
    /// were; `ln_1p(-p)` differs in the last bit for 0.1, 0.2, 0.3), and
    /// stays below 0 where `1 - p` rounds to 1.
    #[test]
    fn ln_one_minus_keeps_ordinary_rates_and_tiny_ones() {
        // 8e-17: `1 - p` rounds to 1 - 2^-53, not to 1, so the plain form.
        for p in [8e-17, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9] {
            assert_eq!(
                ln_one_minus(p).to_bits(),
                (1.0 - p).ln().to_bits(),
                "p = {p}"
            );
        }
        assert_eq!(ln_one_minus(1e-17), -1e-17);
        assert_eq!(ln_one_minus(0.0), 0.0);
        assert_eq!(ln_one_minus(1.0), f64::NEG_INFINITY);
    }

    /// Every (seed, stream) pair has a stream of its own, including the
    /// seeds 0 and all-ones, where a seed combined with the stream by AND
    /// or OR instead of XOR would give every node the same stream.
    #[test]
    fn streams_differ_by_seed_and_node() {
        let mut firsts = std::collections::HashSet::new();
        for seed in [0u64, 1, 2, u64::MAX] {
            for stream in 0..256u64 {
                let mut r = stream_rng(seed, stream);
                assert!(
                    firsts.insert((r.random::<u64>(), r.random::<u64>())),
                    "seed {seed} stream {stream} repeats another stream"
                );
            }
        }
    }
}
