//! The cycle engine: routers, links, network interfaces and packets.
//!
//! # Timing (BookSim2's input-queued router, checked against its runs)
//! A flit written into an input buffer in cycle `a` is routed in cycle
//! `a + routing_delay − 1`, takes part in VC allocation from the next cycle,
//! in switch allocation from the cycle after its VC was granted, leaves the
//! buffer `sw_alloc_delay − 1` cycles after its switch grant and enters the
//! link `crossbar_delay + output_delay` cycles later; a link of latency `L`
//! writes it into the next buffer `L + 1` cycles after that (see
//! [`wafernoc_router::link`]). With 1-cycle stages and links this gives
//! BookSim's zero-load latency T0 = 7 + 5H + (P − 1).
//!
//! # Evaluate / commit
//! Within a cycle every router reads only its own state and items that
//! arrived on its links, and writes only its own state and items that will
//! arrive in a later cycle (every link has latency ≥ 1, so arrival ≥ t + 2).
//! Routers are therefore independent within a cycle; they are processed in
//! ascending id order so that event lists are built deterministically.
//!
//! # Activity
//! Only routers with a non-idle input VC and interfaces with queued packets
//! are evaluated; arrivals are found through a timing wheel, so an idle
//! network costs nothing per cycle. `step_all` evaluates everything instead
//! and must give identical results (tested).
//!
//! # State layout
//! Per input VC (global index `(r*PORTS + port)*V + vc`) the pipeline
//! state is one `VcState` record (route mask, next cycle, stage, output
//! VC), so visiting a VC reads one record; its flits live in the flat
//! [`VcBuffers`]. Per router, `work` marks the VCs holding flits (the only
//! ones visited) and `ovc_in_use` the reserved output VCs.

use std::collections::VecDeque;

use wafernoc_router::{Allocator, AllocatorKind, Flit, LinkTiming, VcBuffers};

use crate::config::{ConfigError, NetworkConfig};
use crate::deadlock::{DeadlockReport, WaitingVc};
use crate::routing::Routing;
use crate::topology::{Topology, LOCAL, PORTS};

const IDLE: u8 = 0;
const ROUTING: u8 = 1;
const VC_ALLOC: u8 = 2;
const ACTIVE: u8 = 3;

/// A packet handed to the network for injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewPacket {
    /// Source node.
    pub src: u32,
    /// Destination node.
    pub dst: u32,
    /// Size in flits (≥ 1).
    pub size: u16,
    /// Message class index.
    pub class: u8,
    /// Creation cycle (latency is counted from here; may be earlier than the
    /// cycle it is enqueued in, as BookSim's source queue does).
    pub ctime: u64,
    /// Caller's identifier, returned on delivery.
    pub tag: u64,
}

/// A packet whose tail flit has been ejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Caller's identifier.
    pub tag: u64,
    /// Source node.
    pub src: u32,
    /// Destination node.
    pub dst: u32,
    /// Size in flits.
    pub size: u16,
    /// Message class.
    pub class: u8,
    /// Creation cycle.
    pub ctime: u64,
    /// Cycle the head flit left the source queue.
    pub itime: u64,
    /// Cycle the tail flit was ejected.
    pub atime: u64,
    /// Routers traversed (Manhattan hops + 1), as BookSim counts.
    pub hops: u16,
    /// Sum over the packet's flits of (ejection cycle − injection cycle).
    pub flit_latency_sum: u64,
}

/// An item in flight, stored in the timing wheel until it arrives.
#[derive(Clone, Copy, Debug)]
struct Ev {
    /// Flit link or credit link id.
    target: u32,
    /// VC of the flit or credit.
    vc: u8,
    /// True for a credit.
    credit: bool,
    /// The flit (unused for credits).
    flit: Flit,
}

/// The pipeline state of one input VC.
#[derive(Clone, Copy, Debug, Default)]
struct VcState {
    /// Candidate output VCs (bit `port * V + vc`), valid in `VC_ALLOC`.
    route: u128,
    /// First cycle the VC's current stage may act.
    next: u64,
    /// `IDLE`, `ROUTING`, `VC_ALLOC` or `ACTIVE`.
    st: u8,
    /// Output VC (`port * V + vc`), valid in `ACTIVE`.
    out: u8,
}

#[derive(Clone, Copy, Debug, Default)]
struct Packet {
    src: u32,
    dst: u32,
    size: u16,
    class: u8,
    hops: u16,
    arrived: u16,
    ctime: u64,
    itime: u64,
    tag: u64,
    inj_sum: u64,
    arr_sum: u64,
    live: bool,
}

#[derive(Clone, Debug, Default)]
struct Ni {
    /// Per class: queued packet slots (front is being injected when `cur_vc ≥ 0`).
    queues: Vec<VecDeque<u32>>,
    /// Per class: VC of the packet being injected, or −1.
    cur_vc: Vec<i16>,
    /// Per class: next flit of the front packet.
    next_seq: Vec<u16>,
    /// Per class: last VC a head took (round-robin start).
    last_vc: Vec<u8>,
    /// Last class served (round-robin among equal priorities).
    last_class: u8,
    /// Credits of the router's injection input port, per VC.
    credits: Vec<u16>,
    /// Injection VCs in use (bit per VC).
    in_use: u32,
    /// Injection VCs whose tail has been sent (wait_for_tail_credit).
    tail_sent: u32,
    /// Packets queued in all classes.
    queued: usize,
}

/// Counters the engine keeps for every run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Flits that left source queues.
    pub injected_flits: u64,
    /// Flits ejected at destinations.
    pub ejected_flits: u64,
    /// Flit traversals of router-to-router links.
    pub flit_hops: u64,
    /// Packets ejected.
    pub delivered_packets: u64,
}

/// The flit-level network.
pub struct Network {
    topo: Topology,
    cfg: NetworkConfig,
    v: usize,
    pv: usize,
    depth: u16,
    rd: u64,
    vad: u64,
    sad: u64,
    xd_od: u64,
    wait_tail: bool,
    /// Output VCs (bit `port * V + vc`) released only when the credit of
    /// their tail has returned, whatever `wait_tail` says: the adaptive
    /// (non-escape) VCs of router-to-router ports under `AdaptiveEscape`.
    /// Duato's theorem assumes a queue never holds flits of two packets; if
    /// an adaptive VC could be granted while its downstream buffer still
    /// held another packet, a packet could wait behind it with no way back
    /// to its escape VC, and deadlock (found by the property tests).
    atomic_ovc: u128,
    speculative: bool,
    /// The switch allocator is iSLIP (uncontested requests skip it).
    sa_islip: bool,
    /// Every flit link takes one flit per cycle. A router output then never
    /// finds its link busy (it sends at most once per cycle, at a fixed
    /// offset from the grant), so switch requests skip the link check.
    fast_links: bool,
    routing: Routing,
    class_lo: Vec<u8>,
    class_hi: Vec<u8>,
    class_prio: Vec<u8>,
    prio_levels: Vec<u8>,
    /// Switch-allocation priority of each VC index (its class's priority).
    vc_prio: Vec<u8>,
    /// Class of each VC index (classes own disjoint VC ranges).
    vc_class: [u8; 32],
    /// Per (class, port): the class's VCs on that port, as a route mask.
    class_port_mask: Vec<u128>,
    /// Port of a per-router VC index `port * V + vc` (instead of `/ V`).
    port_of: [u8; 128],
    /// VC of a per-router VC index (instead of `% V`).
    vc_of: [u8; 128],
    nclasses: usize,

    // Input VCs, global index (r*PORTS + port)*V + vc.
    bufs: VcBuffers,
    /// Per input VC: its pipeline state in one record (one cache line
    /// serves a VC visit).
    vcs: Vec<VcState>,
    // Per router: input VCs holding flits (the only ones with work to do).
    work: Vec<u128>,
    ovc_in_use: Vec<u128>,
    ovc_tail_sent: Vec<u128>,
    va: Vec<Allocator>,
    /// Switch allocators, one per (router, priority level): index
    /// `r * nlev + level`. A strict-priority switch arbitrates each level
    /// with its own round-robin state, so traffic of a lower level never
    /// moves the pointers that order a higher level's requests (the
    /// migration class cannot perturb collective traffic through arbiter
    /// state). With one level this is BookSim's single allocator.
    sa: Vec<Allocator>,
    /// Round-robin VC offset per (input port, priority level): index
    /// `(r * PORTS + port) * nlev + level`.
    sw_rr: Vec<u8>,
    /// Priority levels (1 for single-priority configurations).
    nlev: usize,
    /// Priority level index (0 = highest) of each VC index.
    vc_lvl: Vec<u8>,
    router_on: Vec<u64>,
    // Output VCs, global index (r*PORTS + port)*V + vc.
    credits: Vec<u16>,
    owner: Vec<u32>,
    // Links. Flit links are indexed by the input port they feed
    // (r*PORTS + port) and then by node for ejection (R*PORTS + n);
    // credit links by the output port they feed, then by node for injection.
    flit_links: Vec<LinkTiming>,
    credit_links: Vec<LinkTiming>,
    out_link: Vec<u32>,
    in_credit_link: Vec<u32>,
    wheel: Vec<Vec<Ev>>,
    wheel_mask: u64,
    // Interfaces.
    ni: Vec<Ni>,
    ni_on: Vec<u64>,
    // Packets.
    pkts: Vec<Packet>,
    free: Vec<u32>,

    now: u64,
    last_progress: u64,
    in_flight_flits: u64,
    deadlock_timeout: u64,
    counters: Counters,
    inj_node: Vec<u64>,
    link_flits: Vec<u64>,
    delivered: Vec<Delivered>,
    scratch_va: Vec<(u32, u128)>,
    scratch_grants: Vec<(u32, u32)>,
}

#[inline]
fn set_bit(words: &mut [u64], i: usize) {
    words[i >> 6] |= 1 << (i & 63);
}

impl Network {
    /// Build a network; every parameter is checked first.
    pub fn new(cfg: NetworkConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let topo = Topology::new(cfg.mesh.clone())?;
        let r_n = topo.nodes();
        let v = cfg.router.num_vcs;
        let pv = PORTS * v;
        let classes = cfg.effective_classes();
        let mut class_lo = Vec::new();
        let mut class_hi = Vec::new();
        let mut lo = 0;
        for c in &classes {
            class_lo.push(lo as u8);
            lo += c.vcs;
            class_hi.push(lo as u8);
        }
        let class_prio: Vec<u8> = classes.iter().map(|c| c.priority).collect();
        let vc_prio: Vec<u8> = (0..cfg.router.num_vcs)
            .map(|vc| {
                let c = class_hi
                    .iter()
                    .position(|&h| vc < h as usize)
                    .expect("class VCs add up to num_vcs");
                class_prio[c]
            })
            .collect();
        let mut vc_class = [0u8; 32];
        for (vc, c) in vc_class.iter_mut().enumerate().take(cfg.router.num_vcs) {
            *c = class_hi
                .iter()
                .position(|&h| vc < h as usize)
                .expect("class VCs add up to num_vcs") as u8;
        }
        let mut port_of = [0u8; 128];
        let mut vc_of = [0u8; 128];
        for li in 0..pv {
            port_of[li] = (li / v) as u8;
            vc_of[li] = (li % v) as u8;
        }
        let class_port_mask: Vec<u128> = class_lo
            .iter()
            .zip(&class_hi)
            .flat_map(|(&lo, &hi)| {
                let m = ((1u128 << (hi - lo)) - 1) << lo;
                (0..PORTS).map(move |p| m << (p * v))
            })
            .collect();
        let mut prio_levels = class_prio.clone();
        prio_levels.sort_unstable_by(|a, b| b.cmp(a));
        prio_levels.dedup();
        let nlev = prio_levels.len().max(1);
        let vc_lvl: Vec<u8> = vc_prio
            .iter()
            .map(|p| prio_levels.iter().position(|l| l == p).unwrap_or(0) as u8)
            .collect();
        let rc = &cfg.router;
        let depth = rc.vc_buf_size as u16;

        let mut flit_links = Vec::with_capacity(r_n * PORTS + r_n);
        let mut credit_links = Vec::with_capacity(r_n * PORTS + r_n);
        let mut out_link = vec![u32::MAX; r_n * PORTS];
        let mut in_credit_link = vec![u32::MAX; r_n * PORTS];
        // Flit link feeding input port (r, i): sent by the upstream output port.
        for r in 0..r_n {
            for i in 0..PORTS {
                let (lat, cpf) = if i == LOCAL {
                    (topo.spec.local_latency, 1)
                } else {
                    match topo.neighbor(r, i) {
                        Some(u) => topo.link_params(u, i ^ 1),
                        None => (1, 1),
                    }
                };
                flit_links.push(LinkTiming::new(lat, cpf));
            }
        }
        for n in 0..r_n {
            flit_links.push(LinkTiming::new(topo.spec.local_latency, 1));
            let _ = n;
        }
        // Credit link feeding output port (r, p): sent by the downstream input port.
        for r in 0..r_n {
            for p in 0..PORTS {
                let lat = if p == LOCAL {
                    topo.spec.local_latency
                } else {
                    match topo.neighbor(r, p) {
                        Some(_) => topo.link_params(r, p).0,
                        None => 1,
                    }
                };
                credit_links.push(LinkTiming::new(lat + rc.credit_delay, 1));
            }
        }
        for _ in 0..r_n {
            credit_links.push(LinkTiming::new(topo.spec.local_latency, 1));
        }
        for r in 0..r_n {
            for p in 0..PORTS {
                if p == LOCAL {
                    out_link[r * PORTS + p] = (r_n * PORTS + r) as u32;
                    in_credit_link[r * PORTS + p] = (r_n * PORTS + r) as u32;
                } else if let Some(nb) = topo.neighbor(r, p) {
                    out_link[r * PORTS + p] = (nb * PORTS + Topology::input_port_of(p)) as u32;
                    // Input port p of r is fed by neighbour(r, p) through its port p^1.
                    in_credit_link[r * PORTS + p] = (nb * PORTS + (p ^ 1)) as u32;
                }
            }
        }
        let max_delay = flit_links
            .iter()
            .map(|l| (l.latency() + l.cycles_per_flit()) as u64)
            .chain(credit_links.iter().map(|l| (l.latency() + 1) as u64))
            .max()
            .unwrap_or(2)
            + (rc.sw_alloc_delay + rc.crossbar_delay() + rc.output_delay) as u64
            + 4;
        let wheel_len = max_delay.next_power_of_two();
        let deadlock_timeout = if cfg.deadlock_timeout > 0 {
            cfg.deadlock_timeout
        } else {
            1000.max(8 * max_delay)
        };

        let nclasses = classes.len();
        let ni = (0..r_n)
            .map(|_| Ni {
                queues: vec![VecDeque::new(); nclasses],
                cur_vc: vec![-1; nclasses],
                next_seq: vec![0; nclasses],
                last_vc: class_hi.iter().map(|h| h - 1).collect(),
                last_class: (nclasses - 1) as u8,
                credits: vec![depth; v],
                in_use: 0,
                tail_sent: 0,
                queued: 0,
            })
            .collect();
        let words = r_n.div_ceil(64);
        Ok(Network {
            v,
            pv,
            depth,
            rd: rc.routing_delay as u64,
            vad: rc.vc_alloc_delay as u64,
            sad: rc.sw_alloc_delay as u64,
            xd_od: (rc.crossbar_delay() + rc.output_delay) as u64,
            wait_tail: rc.wait_for_tail_credit,
            atomic_ovc: if cfg.routing == Routing::AdaptiveEscape {
                let mut m = 0u128;
                for (&lo, &hi) in class_lo.iter().zip(&class_hi) {
                    for vc in lo as usize + 1..hi as usize {
                        for p in 0..LOCAL {
                            m |= 1u128 << (p * v + vc);
                        }
                    }
                }
                m
            } else {
                0
            },
            speculative: rc.speculative,
            sa_islip: matches!(rc.sw_allocator, AllocatorKind::Islip { .. }),
            fast_links: flit_links.iter().all(|l| l.cycles_per_flit() == 1),
            routing: cfg.routing,
            class_lo,
            class_hi,
            class_prio,
            prio_levels,
            vc_prio,
            vc_class,
            class_port_mask,
            port_of,
            vc_of,
            nclasses,
            bufs: VcBuffers::new(r_n * pv, rc.vc_buf_size),
            vcs: vec![VcState::default(); r_n * pv],
            work: vec![0; r_n],
            ovc_in_use: vec![0; r_n],
            ovc_tail_sent: vec![0; r_n],
            va: (0..r_n)
                .map(|_| Allocator::new(rc.vc_allocator, rc.arbiter, pv, pv))
                .collect(),
            sa: (0..r_n * nlev)
                .map(|_| Allocator::new(rc.sw_allocator, rc.arbiter, PORTS, PORTS))
                .collect(),
            sw_rr: vec![0; r_n * PORTS * nlev],
            nlev,
            vc_lvl,
            router_on: vec![0; words],
            credits: vec![depth; r_n * pv],
            owner: vec![u32::MAX; r_n * pv],
            flit_links,
            credit_links,
            out_link,
            in_credit_link,
            wheel: vec![Vec::new(); wheel_len as usize],
            wheel_mask: wheel_len - 1,
            ni,
            ni_on: vec![0; words],
            pkts: Vec::new(),
            free: Vec::new(),
            now: 0,
            last_progress: 0,
            in_flight_flits: 0,
            deadlock_timeout,
            counters: Counters::default(),
            inj_node: vec![0; r_n],
            link_flits: vec![0; r_n * PORTS * nclasses],
            delivered: Vec::new(),
            scratch_va: Vec::new(),
            scratch_grants: Vec::new(),
            topo,
            cfg,
        })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }
    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }
    /// Current cycle (the next one [`Network::step`] simulates).
    pub fn now(&self) -> u64 {
        self.now
    }
    /// Number of message classes.
    pub fn num_classes(&self) -> usize {
        self.nclasses
    }
    /// Engine counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    /// Flits injected and not yet ejected.
    pub fn flits_in_flight(&self) -> u64 {
        self.in_flight_flits
    }
    /// Packets queued at sources or in the network.
    pub fn packets_outstanding(&self) -> usize {
        self.pkts.len() - self.free.len()
    }
    /// True when nothing is left to simulate: no packet queued or in the
    /// network and no flit or credit on any link. Stepping a quiescent
    /// network changes nothing but the cycle counter.
    pub fn is_quiescent(&self) -> bool {
        self.packets_outstanding() == 0
            && self.in_flight_flits == 0
            && self.wheel.iter().all(Vec::is_empty)
    }
    /// Advances the clock to cycle `to` without simulating the cycles in
    /// between, which is exact when the network is quiescent
    /// ([`Network::is_quiescent`]): the state of a quiescent network does
    /// not depend on the cycle (no event is pending, every VC is idle and no
    /// stage holds a timestamp that a later cycle would read). Returns
    /// `false` and changes nothing when the network is not quiescent or
    /// `to` is in the past.
    pub fn fast_forward(&mut self, to: u64) -> bool {
        if to < self.now || !self.is_quiescent() {
            return false;
        }
        self.now = to;
        self.last_progress = to;
        true
    }
    /// Cumulative flits per (output port, class): index `(r*5 + port)*C + class`.
    pub fn link_flits(&self) -> &[u64] {
        &self.link_flits
    }
    /// Flits injected so far, per source node.
    pub fn injected_by_node(&self) -> &[u64] {
        &self.inj_node
    }
    /// For live packets with `tag`: (sum over their flits not yet ejected of
    /// the packet's age, number of such flits). Used by the drain-phase
    /// latency check.
    pub fn measured_ages(&self, tag: u64) -> (u64, u64) {
        let mut s = 0;
        let mut k = 0;
        for p in self.pkts.iter().filter(|p| p.live && p.tag == tag) {
            let left = (p.size - p.arrived) as u64;
            s += left * (self.now - p.ctime.min(self.now));
            k += left;
        }
        (s, k)
    }
    /// Packets delivered since the last call.
    pub fn drain_delivered(&mut self) -> std::vec::Drain<'_, Delivered> {
        self.delivered.drain(..)
    }

    /// Queue a packet at its source. Returns an error naming the field if it
    /// is impossible (node or class out of range, empty packet).
    pub fn enqueue(&mut self, p: NewPacket) -> Result<(), ConfigError> {
        let n = self.topo.nodes() as u32;
        if p.src >= n || p.dst >= n {
            return Err(ConfigError::Other {
                key: "node".into(),
                reason: format!(
                    "packet {}→{} but the network has nodes 0..{}",
                    p.src, p.dst, n
                ),
            });
        }
        if p.class as usize >= self.nclasses {
            return Err(ConfigError::Other {
                key: "class".into(),
                reason: format!(
                    "class {} but the network has {} classes",
                    p.class, self.nclasses
                ),
            });
        }
        if p.size == 0 {
            return Err(ConfigError::Other {
                key: "packet_size".into(),
                reason: "a packet has at least one flit".into(),
            });
        }
        let pk = Packet {
            src: p.src,
            dst: p.dst,
            size: p.size,
            class: p.class,
            ctime: p.ctime,
            tag: p.tag,
            live: true,
            ..Default::default()
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.pkts[s as usize] = pk;
                s
            }
            None => {
                self.pkts.push(pk);
                (self.pkts.len() - 1) as u32
            }
        };
        let ni = &mut self.ni[p.src as usize];
        ni.queues[p.class as usize].push_back(slot);
        ni.queued += 1;
        set_bit(&mut self.ni_on, p.src as usize);
        Ok(())
    }

    #[inline]
    fn schedule(&mut self, at: u64, ev: Ev) {
        self.wheel[(at & self.wheel_mask) as usize].push(ev);
    }

    /// Simulate one cycle. Returns a deadlock report if no flit has moved
    /// for `deadlock_timeout` cycles while flits are in the network.
    pub fn step(&mut self) -> Result<(), Box<DeadlockReport>> {
        let t = self.now;
        self.process_arrivals(t);
        self.process_interfaces(t);
        self.process_routers(t);
        self.now += 1;
        if self.in_flight_flits > 0 && t.saturating_sub(self.last_progress) >= self.deadlock_timeout
        {
            return Err(Box::new(self.deadlock_report()));
        }
        Ok(())
    }

    fn process_arrivals(&mut self, t: u64) {
        let bucket = (t & self.wheel_mask) as usize;
        let mut evs = std::mem::take(&mut self.wheel[bucket]);
        let rp = (self.topo.nodes() * PORTS) as u32;
        for &ev in &evs {
            if !ev.credit {
                if ev.target < rp {
                    self.flit_arrives(t, ev.target as usize, ev.flit, ev.vc);
                } else {
                    self.eject(t, (ev.target - rp) as usize, ev.flit, ev.vc);
                }
            } else if ev.target < rp {
                let c = ev.target as usize;
                let o = c * self.v + ev.vc as usize;
                self.credits[o] += 1;
                debug_assert!(self.credits[o] <= self.depth, "credits exceed buffer depth");
                if (self.wait_tail || self.atomic_ovc != 0) && self.credits[o] == self.depth {
                    let r = c / PORTS;
                    let bit = 1u128 << (o - r * self.pv);
                    if self.ovc_tail_sent[r] & bit != 0 {
                        self.ovc_tail_sent[r] &= !bit;
                        self.ovc_in_use[r] &= !bit;
                    }
                }
            } else {
                let vc = ev.vc;
                let ni = &mut self.ni[(ev.target - rp) as usize];
                ni.credits[vc as usize] += 1;
                debug_assert!(ni.credits[vc as usize] <= self.depth);
                if self.wait_tail
                    && ni.credits[vc as usize] == self.depth
                    && ni.tail_sent >> vc & 1 == 1
                {
                    ni.tail_sent &= !(1 << vc);
                    ni.in_use &= !(1 << vc);
                }
            }
        }
        // Every delay is at least 2 cycles, so nothing was scheduled into
        // the bucket being processed: it is empty again.
        debug_assert!(self.wheel[bucket].is_empty());
        evs.clear();
        self.wheel[bucket] = evs;
    }

    #[inline]
    fn compute_route(&self, r: usize, pkt: u32) -> u128 {
        let p = &self.pkts[pkt as usize];
        let c = p.class as usize;
        if self.routing == Routing::Xy {
            // What `candidates` gives for XY (LOCAL at the destination),
            // with the class's VC mask on each port from a table.
            let port = Routing::dor_port(&self.topo, r, p.dst as usize, true);
            return self.class_port_mask[c * PORTS + port];
        }
        self.routing.candidates(
            &self.topo,
            r,
            p.dst as usize,
            self.class_lo[c] as usize,
            self.class_hi[c] as usize,
            self.v,
        )
    }

    fn flit_arrives(&mut self, t: u64, in_port_id: usize, f: Flit, vc: u8) {
        let g = in_port_id * self.v + vc as usize;
        let r = in_port_id / PORTS;
        self.bufs
            .push(g, f)
            .expect("credit protocol violated: input buffer overflow");
        match self.vcs[g].st {
            IDLE => {
                debug_assert!(f.is_head());
                if self.rd > 0 {
                    self.vcs[g].st = ROUTING;
                } else {
                    self.vcs[g].route = self.compute_route(r, f.pkt);
                    self.vcs[g].st = VC_ALLOC;
                }
                self.vcs[g].next = t;
            }
            ACTIVE if self.bufs.len(g) == 1 && self.vcs[g].next < t => self.vcs[g].next = t,
            _ => {}
        }
        self.work[r] |= 1u128 << (g - r * self.pv);
        set_bit(&mut self.router_on, r);
    }

    fn eject(&mut self, t: u64, n: usize, f: Flit, vc: u8) {
        // The interface consumes every flit at once and returns its credit.
        let cl = (n * PORTS + LOCAL) as u32;
        let a = self.credit_links[cl as usize].send(t);
        self.schedule(
            a,
            Ev {
                target: cl,
                vc,
                credit: true,
                flit: f,
            },
        );
        self.counters.ejected_flits += 1;
        self.in_flight_flits -= 1;
        self.last_progress = t;
        let p = &mut self.pkts[f.pkt as usize];
        debug_assert_eq!(p.dst as usize, n, "flit ejected at the wrong node");
        debug_assert_eq!(p.arrived, f.seq, "flits of a packet out of order");
        p.arrived += 1;
        p.arr_sum += t;
        if f.is_tail() {
            let d = Delivered {
                tag: p.tag,
                src: p.src,
                dst: p.dst,
                size: p.size,
                class: p.class,
                ctime: p.ctime,
                itime: p.itime,
                atime: t,
                hops: p.hops,
                flit_latency_sum: p.arr_sum - p.inj_sum,
            };
            self.delivered.push(d);
            self.counters.delivered_packets += 1;
            p.live = false;
            self.free.push(f.pkt);
        }
    }

    fn process_interfaces(&mut self, t: u64) {
        let words = self.ni_on.len();
        for w in 0..words {
            let mut bits = if self.cfg.step_all {
                !0u64
            } else {
                self.ni_on[w]
            };
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let n = w * 64 + b;
                if n >= self.topo.nodes() {
                    break;
                }
                self.inject_one(t, n);
                if self.ni[n].queued == 0 {
                    self.ni_on[w] &= !(1 << b);
                }
            }
        }
    }

    /// BookSim's injection: one flit per node per cycle; classes by priority,
    /// round-robin among equal priorities; a head takes the first VC of its
    /// class, round-robin after the last one used, that is free and not full.
    fn inject_one(&mut self, t: u64, n: usize) {
        if self.ni[n].queued == 0 {
            return;
        }
        let nc = self.nclasses;
        let mut chosen: Option<(usize, u8)> = None;
        'levels: for &lvl in &self.prio_levels {
            let ni = &self.ni[n];
            for k in 1..=nc {
                let c = (ni.last_class as usize + k) % nc;
                if self.class_prio[c] != lvl || ni.queues[c].is_empty() {
                    continue;
                }
                let vc = if ni.cur_vc[c] >= 0 {
                    ni.cur_vc[c] as u8
                } else {
                    let lo = self.class_lo[c];
                    let cnt = self.class_hi[c] - lo;
                    let mut found = None;
                    for i in 0..cnt {
                        let vc = lo + (ni.last_vc[c] - lo + 1 + i) % cnt;
                        if ni.in_use >> vc & 1 == 0 && ni.credits[vc as usize] > 0 {
                            found = Some(vc);
                            break;
                        }
                    }
                    match found {
                        Some(v) => v,
                        None => continue,
                    }
                };
                if ni.credits[vc as usize] == 0 {
                    continue;
                }
                chosen = Some((c, vc));
                break 'levels;
            }
        }
        let Some((c, vc)) = chosen else { return };
        let ni = &mut self.ni[n];
        ni.last_class = c as u8;
        let slot = *ni.queues[c].front().expect("queue checked non-empty");
        let seq = ni.next_seq[c];
        if seq == 0 {
            ni.in_use |= 1 << vc;
            ni.tail_sent &= !(1 << vc);
            ni.last_vc[c] = vc;
            ni.cur_vc[c] = vc as i16;
        }
        ni.credits[vc as usize] -= 1;
        let p = &mut self.pkts[slot as usize];
        let f = Flit::new(slot, seq, p.size);
        if seq == 0 {
            p.itime = t;
        }
        p.inj_sum += t;
        if f.is_tail() {
            ni.queues[c].pop_front();
            ni.queued -= 1;
            ni.cur_vc[c] = -1;
            ni.next_seq[c] = 0;
            if self.wait_tail {
                ni.tail_sent |= 1 << vc;
            } else {
                ni.in_use &= !(1 << vc);
            }
        } else {
            ni.next_seq[c] = seq + 1;
        }
        let link = n * PORTS + LOCAL;
        let a = self.flit_links[link].send(t);
        self.schedule(
            a,
            Ev {
                target: link as u32,
                vc,
                credit: false,
                flit: f,
            },
        );
        self.counters.injected_flits += 1;
        self.inj_node[n] += 1;
        self.in_flight_flits += 1;
        self.last_progress = t;
    }

    fn process_routers(&mut self, t: u64) {
        let words = self.router_on.len();
        for w in 0..words {
            let mut bits = if self.cfg.step_all {
                !0u64
            } else {
                self.router_on[w]
            };
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let r = w * 64 + b;
                if r >= self.topo.nodes() {
                    break;
                }
                self.router_step(t, r);
                if self.work[r] == 0 {
                    self.router_on[w] &= !(1 << b);
                }
            }
        }
    }

    fn router_step(&mut self, t: u64, r: usize) {
        let v = self.v;
        let pv = self.pv;
        let base = r * pv;
        let mut act = self.work[r];
        if act == 0 {
            return;
        }
        self.scratch_va.clear();
        // Switch requests: per input port the mask of requested outputs, and
        // per (input, output) the winning VC and its class priority.
        let mut sa_req = [0u8; PORTS];
        let mut sa_vc = [[0u8; PORTS]; PORTS];
        let mut sa_pri = [[0u8; PORTS]; PORTS];
        // Speculative requests (heads still in VC allocation).
        let mut spec_req = [0u8; PORTS];
        let mut spec_vc = [[0u8; PORTS]; PORTS];
        let in_use = self.ovc_in_use[r];
        let multi_prio = self.prio_levels.len() > 1;
        let mut any_sa = false;
        let mut any_spec = false;
        // Outputs asked for by some input, and by two or more inputs.
        let mut sa_seen = 0u8;
        let mut sa_dup = 0u8;

        while act != 0 {
            let li = act.trailing_zeros() as usize;
            act &= act - 1;
            let g = base + li;
            let s = self.vcs[g];
            if s.next > t {
                continue;
            }
            match s.st {
                ROUTING if t + 1 >= s.next + self.rd => {
                    let f = self.bufs.front(g).expect("routing VC holds its head");
                    self.vcs[g].route = self.compute_route(r, f.pkt);
                    self.vcs[g].st = VC_ALLOC;
                    self.vcs[g].next = t + 1;
                }
                VC_ALLOC => {
                    let req = s.route & !in_use;
                    if req != 0 {
                        self.scratch_va.push((li as u32, req));
                    }
                    if self.speculative {
                        let i = self.port_of[li & 127] as usize;
                        let vc = self.vc_of[li & 127];
                        let mut ports = s.route;
                        while ports != 0 {
                            let o = self.port_of[ports.trailing_zeros() as usize & 127] as usize;
                            ports &= !(((1u128 << v) - 1) << (o * v));
                            // A speculative grant sends in this cycle too, so
                            // its output link must be able to take a flit
                            // (slow wafer-crossing links), as for ACTIVE VCs.
                            if !self.fast_links
                                && !self.flit_links[self.out_link[r * PORTS + o] as usize]
                                    .can_send(t + self.sad - 1 + self.xd_od)
                            {
                                continue;
                            }
                            if spec_req[i] >> o & 1 == 0
                                || Self::supersedes(
                                    vc,
                                    0,
                                    spec_vc[i][o],
                                    0,
                                    self.sw_rr[(r * PORTS + i) * self.nlev
                                        + self.vc_lvl[vc as usize] as usize],
                                    v,
                                )
                            {
                                spec_vc[i][o] = vc;
                            }
                            spec_req[i] |= 1 << o;
                            any_spec = true;
                        }
                    }
                }
                ACTIVE => {
                    let oi = s.out as usize;
                    if self.credits[base + oi] > 0 {
                        let o = self.port_of[oi & 127] as usize;
                        let send_at = t + self.sad - 1 + self.xd_od;
                        if self.fast_links
                            || self.flit_links[self.out_link[r * PORTS + o] as usize]
                                .can_send(send_at)
                        {
                            let i = self.port_of[li & 127] as usize;
                            let vc = self.vc_of[li & 127];
                            // Classes own disjoint VC ranges, so the VC gives the priority.
                            let pri = if multi_prio {
                                self.vc_prio[vc as usize]
                            } else {
                                0
                            };
                            if sa_req[i] >> o & 1 == 0 {
                                sa_dup |= sa_seen & (1 << o);
                                sa_seen |= 1 << o;
                                sa_vc[i][o] = vc;
                                sa_pri[i][o] = pri;
                            } else if Self::supersedes(
                                vc,
                                pri,
                                sa_vc[i][o],
                                sa_pri[i][o],
                                self.sw_rr[(r * PORTS + i) * self.nlev
                                    + self.vc_lvl[vc as usize] as usize],
                                v,
                            ) {
                                sa_vc[i][o] = vc;
                                sa_pri[i][o] = pri;
                            }
                            sa_req[i] |= 1 << o;
                            any_sa = true;
                        }
                    }
                }
                _ => {}
            }
        }

        // VC allocation (evaluated on the state at the start of the cycle).
        self.scratch_grants.clear();
        if !self.scratch_va.is_empty() {
            self.va[r].allocate(&self.scratch_va, 0, 0, &mut self.scratch_grants);
        }

        // Switch allocation, one pass per priority level, then speculation.
        // Every pass excludes the inputs already matched, so there are at
        // most PORTS grants in all.
        let mut sw = [(0u8, 0u8); PORTS];
        let mut n_sw = 0;
        if any_sa {
            if !multi_prio && sa_dup == 0 && self.sa_islip {
                // No output asked for by two inputs: each input gets the
                // output its iSLIP accept pointer picks (what allocate_fixed
                // would give, without the request scan).
                let sa = &mut self.sa[r * self.nlev];
                for (i, &m) in sa_req.iter().enumerate() {
                    if m != 0 {
                        let o = sa.grant_uncontested(i as u32, m);
                        sw[n_sw] = (i as u8, o as u8);
                        n_sw += 1;
                    }
                }
            } else if !multi_prio {
                n_sw = self.sa[r * self.nlev].allocate_fixed(&sa_req, 0, 0, &mut sw);
            } else {
                let mut busy_in = 0u8;
                let mut busy_out = 0u8;
                let mut req = [0u8; PORTS];
                for (li, &lvl) in self.prio_levels.iter().enumerate() {
                    let mut any = false;
                    for i in 0..PORTS {
                        let mut m = 0u8;
                        let mut bits = sa_req[i];
                        while bits != 0 {
                            let o = bits.trailing_zeros() as usize;
                            bits &= bits - 1;
                            if sa_pri[i][o] == lvl {
                                m |= 1 << o;
                            }
                        }
                        req[i] = m;
                        any |= m != 0;
                    }
                    if !any {
                        continue;
                    }
                    let start = n_sw;
                    n_sw += self.sa[r * self.nlev + li].allocate_fixed(
                        &req,
                        busy_in,
                        busy_out,
                        &mut sw[start..],
                    );
                    for &(i, o) in &sw[start..n_sw] {
                        busy_in |= 1 << i;
                        busy_out |= 1 << o;
                    }
                }
            }
        }
        let sa_end = n_sw;
        if any_spec {
            let mut busy_in = 0u8;
            let mut busy_out = 0u8;
            for &(i, o) in &sw[..sa_end] {
                busy_in |= 1 << i;
                busy_out |= 1 << o;
            }
            n_sw += self.sa[r * self.nlev].allocate_fixed(
                &spec_req,
                busy_in,
                busy_out,
                &mut sw[sa_end..],
            );
        }

        // Commit VC allocation.
        for &(li, oi) in &self.scratch_grants {
            let g = base + li as usize;
            let bit = 1u128 << oi;
            debug_assert!(self.ovc_in_use[r] & bit == 0);
            self.ovc_in_use[r] |= bit;
            self.ovc_tail_sent[r] &= !bit;
            self.owner[base + oi as usize] = g as u32;
            self.vcs[g].out = oi as u8;
            self.vcs[g].st = ACTIVE;
            self.vcs[g].next = t + self.vad;
        }
        // VCs that asked and got nothing retry after the allocator's delay.
        if self.vad > 1 {
            for &(li, _) in &self.scratch_va {
                let g = base + li as usize;
                if self.vcs[g].st == VC_ALLOC {
                    self.vcs[g].next = t + self.vad;
                }
            }
        }
        // Commit switch allocation.
        for (k, &(gi, go)) in sw[..n_sw].iter().enumerate() {
            let (i, o) = (gi as usize, go as usize);
            let speculative_grant = k >= sa_end;
            let vc = if speculative_grant {
                spec_vc[i][o]
            } else {
                sa_vc[i][o]
            } as usize;
            let g = base + i * v + vc;
            if speculative_grant {
                // Valid only if this cycle's VC allocation gave the head an
                // output VC on this port with a free buffer slot.
                if self.vcs[g].st != ACTIVE
                    || self.port_of[self.vcs[g].out as usize & 127] as usize != o
                    || self.credits[base + self.vcs[g].out as usize] == 0
                {
                    continue;
                }
            }
            self.switch_flit(t, r, i, o, g, vc);
        }
    }

    /// BookSim's round-robin "supersedes" rule between two VCs of one input
    /// asking for the same output: higher priority, then the VC closer after
    /// the input's round-robin offset.
    #[inline]
    fn supersedes(vc: u8, pri: u8, other: u8, other_pri: u8, offset: u8, v: usize) -> bool {
        // (x − offset) mod v, for x and offset below v.
        let d = |x: u8| {
            let (x, off) = (x as usize, offset as usize);
            if x >= off {
                x - off
            } else {
                x + v - off
            }
        };
        pri > other_pri || (pri == other_pri && d(vc) < d(other))
    }

    fn switch_flit(&mut self, t: u64, r: usize, i: usize, o: usize, g: usize, vc: usize) {
        let v = self.v;
        let base = r * self.pv;
        let f = self.bufs.pop(g).expect("switch grant for an empty VC");
        let dep = t + self.sad - 1;
        // Credit back upstream for the freed slot.
        let cl = self.in_credit_link[r * PORTS + i];
        let a = self.credit_links[cl as usize].send(dep);
        self.schedule(
            a,
            Ev {
                target: cl,
                vc: vc as u8,
                credit: true,
                flit: f,
            },
        );
        // Downstream buffer state.
        let oi = self.vcs[g].out as usize;
        let og = base + oi;
        self.credits[og] -= 1;
        if f.is_tail() {
            let bit = 1u128 << oi;
            if self.wait_tail || self.atomic_ovc & bit != 0 {
                self.ovc_tail_sent[r] |= bit;
            } else {
                self.ovc_in_use[r] &= !bit;
            }
        }
        self.sw_rr[(r * PORTS + i) * self.nlev + self.vc_lvl[vc] as usize] =
            (if vc + 1 == v { 0 } else { vc + 1 }) as u8;
        let ovc = self.vc_of[oi & 127];
        if f.is_head() {
            self.pkts[f.pkt as usize].hops += 1;
        }
        // Classes own disjoint VC ranges: the output VC gives the class.
        let class = self.vc_class[ovc as usize & 31] as usize;
        debug_assert_eq!(class, self.pkts[f.pkt as usize].class as usize);
        self.link_flits[(r * PORTS + o) * self.nclasses + class] += 1;
        if o != LOCAL {
            self.counters.flit_hops += 1;
        }
        let link = self.out_link[r * PORTS + o];
        let a = self.flit_links[link as usize].send(dep + self.xd_od);
        self.schedule(
            a,
            Ev {
                target: link,
                vc: ovc,
                credit: false,
                flit: f,
            },
        );
        self.last_progress = t;
        // Next state of the input VC.
        if self.bufs.is_empty(g) {
            self.work[r] &= !(1u128 << (g - base));
            if f.is_tail() {
                self.vcs[g].st = IDLE;
            } else {
                self.vcs[g].next = t + self.sad;
            }
        } else if f.is_tail() {
            if self.rd > 0 {
                self.vcs[g].st = ROUTING;
            } else {
                let nf = self.bufs.front(g).expect("non-empty");
                self.vcs[g].route = self.compute_route(r, nf.pkt);
                self.vcs[g].st = VC_ALLOC;
            }
            self.vcs[g].next = t + self.sad;
        } else {
            self.vcs[g].next = t + self.sad;
        }
    }

    /// Build the wait-for report of a network that stopped moving.
    pub fn deadlock_report(&self) -> DeadlockReport {
        let v = self.v;
        let pv = self.pv;
        let r_n = self.topo.nodes();
        let rp = r_n * PORTS;
        // Edges between input VCs (global ids) that hold flits.
        let mut edges: Vec<Vec<u32>> = vec![Vec::new(); r_n * pv];
        let mut blocked = Vec::new();
        for (g, edges_g) in edges.iter_mut().enumerate() {
            if self.bufs.is_empty(g) {
                continue;
            }
            let r = g / pv;
            match self.vcs[g].st {
                ACTIVE => {
                    let oi = self.vcs[g].out as usize;
                    let o = oi / v;
                    if o != LOCAL && self.credits[r * pv + oi] == 0 {
                        let link = self.out_link[r * PORTS + o] as usize;
                        if link < rp {
                            edges_g.push((link * v + oi % v) as u32);
                        }
                    }
                }
                VC_ALLOC => {
                    let mut m = self.vcs[g].route;
                    while m != 0 {
                        let oi = m.trailing_zeros() as usize;
                        m &= m - 1;
                        if self.ovc_in_use[r] >> oi & 1 == 1 {
                            let ow = self.owner[r * pv + oi];
                            if ow != u32::MAX && ow as usize != g {
                                edges_g.push(ow);
                            }
                        }
                    }
                }
                _ => {}
            }
            blocked.push(g);
        }
        // Find one cycle by iterative DFS (colours: 0 new, 1 on stack, 2 done).
        let mut colour = vec![0u8; r_n * pv];
        let mut cycle_ids: Vec<u32> = Vec::new();
        'outer: for &s in &blocked {
            if colour[s] != 0 {
                continue;
            }
            let mut stack: Vec<(u32, usize)> = vec![(s as u32, 0)];
            colour[s] = 1;
            while let Some(&mut (u, ref mut k)) = stack.last_mut() {
                if *k < edges[u as usize].len() {
                    let w = edges[u as usize][*k];
                    *k += 1;
                    match colour[w as usize] {
                        0 => {
                            colour[w as usize] = 1;
                            stack.push((w, 0));
                        }
                        1 => {
                            let pos = stack.iter().position(|x| x.0 == w).expect("on stack");
                            cycle_ids = stack[pos..].iter().map(|x| x.0).collect();
                            break 'outer;
                        }
                        _ => {}
                    }
                } else {
                    colour[u as usize] = 2;
                    stack.pop();
                }
            }
        }
        let describe = |g: usize| {
            let r = g / pv;
            let li = g % pv;
            let (x, y) = self.topo.coord(r);
            let waits = match self.vcs[g].st {
                ACTIVE => Some((self.vcs[g].out as usize / v, self.vcs[g].out as usize % v)),
                VC_ALLOC => {
                    let oi = (self.vcs[g].route & self.ovc_in_use[r]).trailing_zeros() as usize;
                    (oi < 128).then_some((oi / v, oi % v))
                }
                _ => None,
            };
            WaitingVc {
                router: r,
                x,
                y,
                in_port: li / v,
                vc: li % v,
                flits: self.bufs.len(g),
                waits_for_port: waits.map(|w| w.0),
                waits_for_vc: waits.map(|w| w.1),
            }
        };
        DeadlockReport {
            cycle: self.now,
            idle_cycles: self.now.saturating_sub(self.last_progress),
            flits_in_flight: self.in_flight_flits,
            wait_cycle: cycle_ids.iter().map(|&g| describe(g as usize)).collect(),
            blocked: blocked.iter().take(64).map(|&g| describe(g)).collect(),
            blocked_total: blocked.len(),
        }
    }

    /// Check internal invariants (used by property tests): credits within
    /// buffer depth, buffers within depth, every buffered flit sequence is a
    /// contiguous run of one packet per VC segment, and flit conservation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let v = self.v;
        let pv = self.pv;
        let r_n = self.topo.nodes();
        let mut in_buffers = 0u64;
        for g in 0..r_n * pv {
            let n = self.bufs.len(g);
            if n > self.depth as usize {
                return Err(format!(
                    "input VC {g} holds {n} flits > depth {}",
                    self.depth
                ));
            }
            in_buffers += n as u64;
            // Flits of one VC: a packet's flits are contiguous and in order.
            let mut prev: Option<Flit> = None;
            for f in self.bufs.iter(g) {
                if let Some(p) = prev {
                    let ok = if p.is_tail() {
                        f.is_head()
                    } else {
                        f.pkt == p.pkt && f.seq == p.seq + 1
                    };
                    if !ok {
                        return Err(format!(
                            "input VC {g}: flit {:?} follows {:?} (interleaved packets)",
                            f, p
                        ));
                    }
                }
                prev = Some(f);
            }
        }
        for (o, &c) in self.credits.iter().enumerate() {
            if c > self.depth {
                return Err(format!(
                    "output VC {o} has {c} credits > depth {}",
                    self.depth
                ));
            }
        }
        for (n, ni) in self.ni.iter().enumerate() {
            for (vc, &c) in ni.credits.iter().enumerate() {
                if c > self.depth {
                    return Err(format!(
                        "node {n} injection VC {vc} has {c} credits > depth"
                    ));
                }
            }
        }
        let on_links: u64 = self.wheel.iter().flatten().filter(|e| !e.credit).count() as u64;
        if on_links + in_buffers != self.in_flight_flits {
            return Err(format!(
                "flit conservation: {} on links + {} in buffers != {} in flight (injected {} ejected {})",
                on_links, in_buffers, self.in_flight_flits, self.counters.injected_flits, self.counters.ejected_flits
            ));
        }
        if self.counters.injected_flits != self.counters.ejected_flits + self.in_flight_flits {
            return Err("injected != ejected + in flight".into());
        }
        let _ = v;
        Ok(())
    }
}
