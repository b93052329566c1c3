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
//! BookSim's zero-load latency T0 = 7 + 5H + (P − 1). (The route is
//! computed when the head reaches the front of its VC and the VC waits
//! `routing_delay` cycles before VC allocation: the same cycles as a
//! routing stage, since routes depend only on the router and the packet.)
//!
//! # Evaluate / commit
//! Within a cycle every router reads only its own state and items that
//! arrived on its links, and writes only its own state and items that will
//! arrive in a later cycle (every link has latency ≥ 1, so arrival ≥ t + 2).
//! Routers are therefore independent within a cycle; they are processed in
//! ascending id order so that event lists are built deterministically.
//!
//! # Partitions and threads
//! The routers are split into contiguous ranges of mesh rows, one
//! `Part` each; a part owns everything its routers and interfaces write
//! in a cycle: input VCs, output-VC credits, allocators, the links its
//! routers *send* on (so a link's bandwidth state has one writer), its
//! interfaces, its own timing wheels of arrivals (four: flits into
//! routers and flits into interfaces (ejections), `Part::wheel[0]` and
//! `[1]`; credits to routers and credits to interfaces, `Part::cwheel[0]`
//! and `[1]`; in ring mode, `Part::ring`, router-bound flits wait in the
//! receiving router's `RingRec` instead), its link and injection
//! counters. Items sent to
//! another part's routers go to a mailbox and are moved into that part's
//! wheels at the start of the next cycle, which is early enough because
//! they arrive two or more cycles after they are sent. The packet table
//! is read-only during a cycle: injection times are reported by the
//! source part, deliveries by the destination part, and the table is
//! updated after the cycle, parts in ascending order.
//!
//! With one thread there is one part. With `N > 1` threads (at most one
//! per row) each thread gets an equal share of the rows cut into bands of
//! halving height, and there are `N − 1` workers; between two barriers
//! per cycle each thread simulates its own bands, largest first, and then
//! takes the bands other threads have not started, smallest first (so a
//! slower core, or the calling thread's driver work, does not hold the
//! others up; the driver can hand that work to [`Network::step_with`],
//! which runs it on the calling thread after the first barrier, before
//! the thread takes its bands). Results depend neither on `N`, nor on the
//! bands, nor on which thread simulates which band:
//! - within a cycle, arrivals at one router commute (one flit per input
//!   VC per cycle; flits, credits and interface credits touch disjoint
//!   state), so neither the order within a part's wheels nor the order
//!   in which its credit and flit wheels are applied matters (see
//!   `Part::process_arrivals`), except for ejections, which never
//!   cross parts, stay in the ejection wheel in the order they were pushed
//!   and are scheduled by the ejecting routers in ascending id order in
//!   one cycle;
//! - deliveries are merged in part order, that is ascending destination
//!   node, exactly the order of one part, and freed packet slots are
//!   reused in that order;
//! - counters are sums.
//!
//! # Activity
//! Only routers with a non-idle input VC and interfaces with queued packets
//! are evaluated; arrivals are found through a timing wheel, so an idle
//! router or link costs nothing per cycle (with several threads every
//! cycle still costs two barriers, a few locks per band and the merge).
//! `step_all` evaluates everything instead, with the general router step
//! rather than the one specialised for the default pipeline, and must give
//! identical results (tested).
//!
//! A wheel has a slot per cycle of its horizon, the longest any item is
//! scheduled ahead (`max_delay`: the slowest link, the router's later
//! stages, with batched stages a full output queue, and a margin),
//! rounded up to a power of two; an item scheduled further would land in
//! an earlier slot, so debug builds assert every item against the
//! horizon (`Sched::check_horizon`).
//!
//! A part of more than `BAND` (128) routers keeps its wheels per band of
//! `BAND` routers and simulates a cycle band by band (arrivals,
//! interfaces, routers), so that what the arrivals at a router write is
//! still cached when the router is stepped; results are the same as in
//! one pass (arrivals at a router touch only its state and are applied
//! before its step; deliveries and injections stay in ascending node order).
//!
//! # State layout
//! Per input VC (part-local index `(lr*PORTS + port)*V + vc`, `lr` the
//! router's index in its part) the pipeline state (next cycle, output VC)
//! and its route mask share one 64-byte
//! [`wafernoc_router::VcState`] record with the VC's ring position and,
//! for buffers of at most eight flits, the ring itself in
//! [`VcBuffers`], so visiting a VC, writing a flit into it (routing a
//! head) or switching one out touches one cache line (the route had an
//! array of its own until session 7; storing it was 15% of the L2 misses
//! of 32×32 at 0.01; the flits had one until session 11). Per router, one 64-byte
//! `RtBits` record holds its masks: `work` marks the VCs holding flits
//! (the only ones visited), `active` the ACTIVE ones (a VC's stage is in
//! these two masks), `ovc_in_use` the reserved output VCs. A packet's
//! hop count is derived at ejection (Manhattan distance + 1: every
//! routing is minimal, test `routes_are_minimal`), so flits carry only
//! their packet's slot and head/tail bits ([`Flit`], 4 bytes); its
//! per-flit latency sums are kept by the source interface and by the
//! ejection VC.
//!
//! # Router steps
//! The default pipeline (`Consts::simple`) steps a router whose flits
//! are all in one VC with `Part::single_vc_step` (a switch or a lone
//! head's VC allocation, indexing the part's arrays directly), and any
//! other with `Part::router_step_simple`, which first takes fixed-size
//! windows of the router's VC records and ring slots, credits,
//! round-robin offsets and port records (`WIN_VCS`, `WIN_PORTS`; the
//! per-router arrays are padded by one window after the last router) and
//! indexes them with masks: no bounds checks, and no vector looked up
//! again after a store. Every other configuration takes `Part::router_step`.
//! The check mode (`step_all`) always takes the general step, so the
//! identity test compares the two.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;

use crossbeam::utils::CachePadded;
use wafernoc_router::{
    nonzero_bytes, Allocator, AllocatorKind, Flit, LinkTiming, RouterConfig, SmallIslip, VcBuffers,
    VcState, Window,
};

use crate::config::{ConfigError, NetworkConfig};
use crate::deadlock::{DeadlockReport, WaitingVc};
use crate::routing::Routing;
use crate::topology::{Topology, LOCAL, PORTS};

/// Most virtual channels (routers × ports × VCs) in one network: 2^25,
/// about 2.5 GB of per-VC state (a 64-byte `VcState` each, and more).
pub const MAX_VCS: usize = 1 << 25;
/// Most input-buffer flit slots (virtual channels × `vc_buf_size`) in one
/// network: 2^28, 1 GiB of 4-byte flits.
pub const MAX_BUFFER_FLITS: usize = 1 << 28;

// Stages of an input VC. There is no routing stage: routes depend only
// on the router and the packet, so a head is routed when it reaches the
// front of its VC and enters VC allocation `routing_delay` cycles later
// (module docs, "Timing").
const IDLE: u8 = 0;
const VC_ALLOC: u8 = 2;
const ACTIVE: u8 = 3;

static DEFAULT_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Set the number of threads [`Network::new`] uses from now on (the
/// `--threads` flag of the command line). Results do not depend on it.
/// Values below 1 are taken as 1.
pub fn set_default_threads(n: usize) {
    DEFAULT_THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The number of threads [`Network::new`] uses (1 unless
/// [`set_default_threads`] changed it).
pub fn default_threads() -> usize {
    DEFAULT_THREADS.load(Ordering::Relaxed)
}

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

/// A flit in flight, stored in the flit wheel ([`Part::wheel`]) until it
/// arrives. Credits have wheels of their own ([`Part::cwheel`]).
#[derive(Clone, Copy, Debug)]
struct Ev {
    /// Flit link id (id of the receiving side: input port `r*PORTS + i`,
    /// or `R*PORTS + node` for an ejection).
    target: u32,
    /// VC of the flit.
    vc: u8,
    /// The flit.
    flit: Flit,
}

/// An item for another part's routers, with its arrival cycle `at`.
#[derive(Clone, Copy, Debug)]
enum RemoteEv {
    /// A flit.
    Flit { at: u64, ev: Ev },
    /// A credit for a router's output VC, as its code in the receiving
    /// part's credit wheel (`cwheel[0]`; interface credits never leave
    /// their part).
    Credit { at: u64, code: u32 },
}

/// The two links leaving one router port: where they go, their delays,
/// and with one class the output port's flit count (one 24-byte record,
/// so that a switched flit reads each of its ports once; a router's five
/// records take 120 bytes, and routers visited in ascending order share
/// lines).
#[derive(Clone, Copy, Debug, Default)]
struct PortLinks {
    /// Flit target the output port feeds ([`Consts::out_link`]).
    out_target: u32,
    /// The credit the input port sends upstream, as its code in the
    /// receiving part's credit wheel without the VC ([`Part::cwheel`]):
    /// `(lr*PORTS + o) * V` for output port `o` of router `lr` (part-local
    /// to the receiving part), `ln << 8` for the interface of node `ln`
    /// (from the LOCAL input port). The code is precomputed so that a
    /// switched flit's credit needs neither the target's kind nor any
    /// arithmetic but `+ vc` (the kind is `i == LOCAL`; a branch on it
    /// was one of the most mispredicted, cachegrind, session 5).
    cred_code: u32,
    /// Arrival delay (latency + cycles per item, [`LinkTiming::arrival`])
    /// of the flit link out of the output port (at most 2 × 4096 cycles,
    /// the topology's limits).
    out_delay: u16,
    /// Arrival delay of the credit link out of the input port.
    cred_delay: u16,
    /// Part receiving the flits.
    out_part: u16,
    /// Part receiving the credits.
    cred_part: u16,
    /// With one message class: flits switched out of the output port so
    /// far (the per-class counters, `Part::link_flits`, are then unused).
    /// A switched flit has just read this record, so the count costs no
    /// line of its own (a cold one per hop on a large mesh at low load).
    flits: u64,
}

/// Occupancy of the two links leaving one router port, for links slower
/// than one item per cycle (the general router step; with
/// [`Consts::fast_links`] only [`PortLinks`]' delays are read).
#[derive(Clone, Copy, Debug)]
struct PortTiming {
    /// Flit link out of the output port (LOCAL: the ejection link).
    out: LinkTiming,
    /// Credit link out of the input port, upstream (LOCAL: to the interface).
    cred: LinkTiming,
}

/// A packet in the packet table. Written only between cycles (by
/// [`Network::enqueue`] and by the merge after each cycle); read by every
/// part during a cycle.
#[derive(Clone, Copy, Debug, Default)]
struct Packet {
    src: u32,
    dst: u32,
    size: u16,
    class: u8,
    ctime: u64,
    /// Head injection cycle, known once the tail has been injected.
    itime: u64,
    /// Sum of the flits' injection cycles, known once the tail has been injected.
    inj_sum: u64,
    tag: u64,
    live: bool,
}

/// The packet table: a [`Packet`] per slot, and beside it the two fields
/// routing reads at every router a head enters, packed in 4 bytes
/// (`dst << 8 | class`; destinations are below `MAX_ROUTERS` = 2^20) so
/// that they stay in cache: read from the 48-byte records, they missed
/// it often enough to make route computation 4.6% of the run time of
/// 8×8 uniform 0.3 for 1.5% of its instructions (perf, session 7).
/// Dereferences to the records; write slots with [`Packets::put`].
#[derive(Default)]
struct Packets {
    info: Vec<Packet>,
    /// Per slot: `dst << 8 | class`.
    route: Vec<u32>,
}

impl Packets {
    /// Store `p` in slot `free` (a freed slot) or in a new one; returns the slot.
    fn put(&mut self, free: Option<u32>, p: Packet) -> u32 {
        debug_assert!((p.dst as usize) < crate::topology::MAX_ROUTERS);
        let key = p.dst << 8 | p.class as u32;
        match free {
            Some(s) => {
                self.info[s as usize] = p;
                self.route[s as usize] = key;
                s
            }
            None => {
                self.info.push(p);
                self.route.push(key);
                (self.info.len() - 1) as u32
            }
        }
    }
}

impl std::ops::Deref for Packets {
    type Target = [Packet];
    fn deref(&self) -> &[Packet] {
        &self.info
    }
}

impl std::ops::DerefMut for Packets {
    fn deref_mut(&mut self) -> &mut [Packet] {
        &mut self.info
    }
}

/// A packet for a source queue, handed to its part with the next cycle.
#[derive(Clone, Copy, Debug)]
struct Queued {
    node: u32,
    class: u8,
    slot: u32,
}

/// A packet whose tail left its source queue this cycle.
#[derive(Clone, Copy, Debug)]
struct Injected {
    slot: u32,
    itime: u64,
    inj_sum: u64,
}

/// The packet being ejected on one (node, ejection VC): wormhole switching
/// gives an output VC to one packet from head to tail.
#[derive(Clone, Copy, Debug, Default)]
struct Ejecting {
    slot: u32,
    arrived: u16,
    arr_sum: u64,
}

/// One class's source queue at an interface and the packet it is injecting
/// (one record per class, so that injecting a flit touches one record).
#[derive(Clone, Debug)]
struct NiClass {
    /// Queued packet slots (front is being injected when `cur_vc ≥ 0`).
    queue: VecDeque<u32>,
    /// Head injection cycle of the front packet.
    cur_itime: u64,
    /// Sum of the injection cycles of the front packet's flits so far.
    cur_inj_sum: u64,
    /// VC of the packet being injected, or −1.
    cur_vc: i16,
    /// Next flit of the front packet.
    next_seq: u16,
    /// Size of the front packet in flits, valid while it is being injected
    /// (read from the packet table once, with its head).
    cur_size: u16,
    /// Last VC a head took (round-robin start).
    last_vc: u8,
    /// Cycle the last tail of this queue was injected (`u64::MAX`: none).
    /// BookSim2 makes the next packet of a source queue when the last
    /// one's tail has left, so [`Network::measure_queued`] can tell which
    /// queued packets BookSim2 would have made by a given cycle.
    last_tail: u64,
}

impl NiClass {
    /// How many of the queued packets (0 or 1: the front) BookSim2 has
    /// made by the end of cycle `last`. It makes a queue's next packet in
    /// the step after the last one's tail left (`_Inject`), so the front is
    /// made unless its head has not left and its predecessor's tail left
    /// in `last` (a front whose head left was made, and its predecessor's
    /// tail left before `last`: the first test only says so directly).
    fn made(&self, last: u64) -> usize {
        (self.cur_vc >= 0 || self.last_tail != last) as usize
    }
    /// The queued packets (slots) BookSim2 has not made by the end of
    /// cycle `last`: all but the first [`NiClass::made`].
    fn unmade(&self, last: u64) -> impl Iterator<Item = &u32> {
        self.queue.iter().skip(self.made(last))
    }
}

#[derive(Clone, Debug, Default)]
struct Ni {
    /// Per class: its queue and the packet being injected.
    classes: Vec<NiClass>,
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
    /// Flits this interface has injected.
    injected_flits: u64,
    /// Packets whose head this interface has injected (BookSim2's
    /// `_sent_packets`). Both counters live in the record `send_flit`
    /// already holds: a vector of the part cost about 6 instructions a
    /// flit (callgrind, session 16).
    injected_packets: u64,
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

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.injected_flits += o.injected_flits;
        self.ejected_flits += o.ejected_flits;
        self.flit_hops += o.flit_hops;
        self.delivered_packets += o.delivered_packets;
    }
}

/// Per-node counters ([`Network::node_counts`]), indexed by node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// Flits injected so far (sent from the source queue into the network).
    pub injected_flits: Vec<u64>,
    /// Packets injected so far (heads sent): BookSim2's `_sent_packets`.
    pub injected_packets: Vec<u64>,
    /// Flits of packets still being ejected (head arrived, tail not yet).
    /// The flits a node has ejected so far are the sizes of its delivered
    /// packets plus these: the statistics read them at a window's edges to
    /// count accepted flits one by one, as BookSim2 does.
    pub ejecting_flits: Vec<u64>,
}

/// What every part reads and none writes: the configuration turned into
/// tables.
struct Consts {
    topo: Topology,
    v: usize,
    pv: usize,
    /// `2^32 / pv + 1`, for [`Consts::div_pv`].
    pv_inv: u64,
    depth: u16,
    rd: u64,
    vad: u64,
    sad: u64,
    xd_od: u64,
    /// Crossbar delay alone (`xd_od` without the output delay).
    xd: u64,
    /// BookSim2's batched routing and crossbar stages
    /// ([`RouterConfig::batched_stages`]) where they differ from
    /// pipelined ones: a routing or crossbar delay of 2 or more. See
    /// [`stage_batch`].
    batched: bool,
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
    /// Speculative requests share the one switch allocation
    /// ([`RouterConfig::shared_speculation`]; only with `speculative`).
    shared_spec: bool,
    /// The switch allocator is iSLIP (uncontested requests skip it).
    sa_islip: bool,
    /// iSLIP iterations of the switch allocator (when `sa_islip`).
    sa_iters: u32,
    /// Every flit link takes one flit per cycle. A router output then never
    /// finds its link busy (it sends at most once per cycle, at a fixed
    /// offset from the grant), so switch requests skip the link check.
    fast_links: bool,
    step_all: bool,
    /// The default pipeline: 1-cycle routing, VC and switch allocation and
    /// crossbar, no output delay, not speculative, one priority level,
    /// every link one flit per cycle, output VCs released with their tail,
    /// at most 64 VCs per router (one `work` word).
    /// Its router step has these as constants (`Part::single_vc_step` and
    /// `Part::router_step_simple`); every other configuration takes
    /// `Part::router_step`.
    simple: bool,
    routing: Routing,
    class_lo: Vec<u8>,
    class_hi: Vec<u8>,
    class_prio: Vec<u8>,
    prio_levels: Vec<u8>,
    /// Switch-allocation priority of each VC index (its class's priority).
    vc_prio: Vec<u8>,
    /// Class of each VC index (classes own disjoint VC ranges).
    vc_class: [u8; 32],
    /// With XY or YX routing, per (class, direction code): the class's VCs
    /// on the port the route takes, as a route mask; index `class * 16 +
    /// code`, the code as [`Part::compute_route`] forms it. Empty with
    /// the adaptive routings.
    dor_mask: Vec<u128>,
    /// Port of a per-router VC index `port * V + vc` (instead of `/ V`).
    port_of: [u8; 128],
    /// VC of a per-router VC index (instead of `% V`).
    vc_of: [u8; 128],
    nclasses: usize,
    /// Priority levels (1 for single-priority configurations).
    nlev: usize,
    /// Priority level index (0 = highest) of each VC index.
    vc_lvl: Vec<u8>,
    /// `R * PORTS`: targets at or above it are interfaces.
    rp: u32,
    /// Per output port `r*PORTS + o`: the flit target it feeds.
    out_link: Vec<u32>,
    /// Part of each router.
    part_of: Vec<u16>,
    /// The wheels' length minus one (a power of two minus one): an item
    /// scheduled in cycle `t` for cycle `at` goes into slot `at & wheel_mask`.
    wheel_mask: u64,
    /// The longest an item is scheduled ahead ([`max_delay`]); the wheels
    /// are this rounded up to a power of two. Debug builds check every
    /// scheduled item against it ([`Sched::check_horizon`]).
    #[cfg(debug_assertions)]
    horizon: u64,
}

impl Consts {
    /// `n / pv` for a part-local VC index `n` (below `MAX_VCS` = 2^25)
    /// without a division instruction (tens of cycles, and the credit of
    /// every switched flit on a part of several bands needed one): with
    /// `m = 2^32 / pv + 1`, `n * m / 2^32` exceeds `n / pv` by less than
    /// `n / 2^32 < 2^-7 ≤ 1 / pv`, which never reaches the next integer.
    #[inline(always)]
    fn div_pv(&self, n: u32) -> usize {
        debug_assert!((n as usize) < MAX_VCS && self.pv <= 128);
        ((n as u64 * self.pv_inv) >> 32) as usize
    }
}

/// One router's VC masks, bit `port * V + vc` of its VC indices, in one
/// 64-byte line, so that a router step, an arrival and a switched flit
/// find all of them with one lookup.
///
/// An input VC's stage is in the masks (there is no stage field): ACTIVE
/// (holding an output VC) if its `active` bit is set, in VC allocation if
/// it is clear and the VC holds flits (a head waits there at the front of
/// its VC), IDLE otherwise. So the router step finds its ACTIVE and its
/// allocating VCs with two mask operations, without reading each VC's
/// record and branching on its stage (a branch mispredicted often
/// enough to be the scan's costliest instruction: perf, session 9).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct RtBits {
    /// Input VCs holding flits (the only ones with work to do), as two
    /// 64-bit words (word operations are cheaper than `u128` ones; with
    /// [`Consts::simple`] only the first is used).
    work: [u64; 2],
    /// Input VCs in the ACTIVE stage, same words.
    active: [u64; 2],
    /// Output VCs held by a packet.
    ovc_in_use: u128,
    /// Output VCs whose tail has been sent, released when its credit
    /// returns (`wait_for_tail_credit`, atomic VCs).
    ovc_tail_sent: u128,
}

impl RtBits {
    /// Word and bit of per-router VC index `li` (below 128) in `work` and
    /// `active`.
    #[inline(always)]
    fn at(li: usize) -> (usize, u64) {
        ((li >> 6) & 1, 1 << (li & 63))
    }

    /// Stage of input VC `li` (per-router index).
    #[inline]
    fn stage(&self, li: usize) -> u8 {
        let (w, bit) = Self::at(li);
        if self.active[w] & bit != 0 {
            ACTIVE
        } else if self.work[w] & bit != 0 {
            VC_ALLOC
        } else {
            IDLE
        }
    }
}

/// Routers per band: a cycle of a part applies the arrivals of one band,
/// steps its interfaces and routers, then goes on to the next band, so
/// that a large part's router state written by arrivals is still cached
/// when the router step reads it (one band's state is a few hundred KiB).
/// A multiple of 64 (bands are whole words of the activity bitmaps).
const BAND: usize = 128;

/// Input or output VCs in one router's window (`VcBuffers::window`, and
/// the `credits` slice the simple router step takes): per-router arrays
/// indexed by VC have this many entries of padding after the last router.
/// With [`Consts::simple`] a router has at most 64 VCs.
const WIN_VCS: usize = 64;
/// Ports in one router's window of the per-port arrays (`sw_rr`, `links`),
/// padded likewise.
const WIN_PORTS: usize = 8;

/// Slots of the per-router arrival rings ([`RingRec`]): a flit sent in
/// cycle `t` with ring mode ([`Part::ring`]) arrives in `t + 1 ..= t +
/// RING - 1`.
const RING: usize = 4;

/// The [`RingRec`] slot of a ring-mode flit sent in cycle `t` that
/// arrives in cycle `a`: `a mod RING` (debug builds check that `a` is
/// within the ring, `t + 1 ..= t + RING - 1`).
#[inline(always)]
fn ring_slot(a: u64, t: u64) -> usize {
    debug_assert!(
        a > t && a - t < RING as u64,
        "a ring flit for cycle {a} scheduled in cycle {t}"
    );
    a as usize & (RING - 1)
}

/// Ring mode's per-router record ([`Part::ring`]): the flits arriving at
/// the router in each of the next cycles, slot `cycle % RING`: a bit mask
/// of the input VCs they arrive in, and the flits, one per input port (a
/// link carries one flit a cycle).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct RingRec {
    /// Input VCs (bit `port * V + vc`) a flit arrives in.
    arr: [u64; RING],
    /// The arriving flits, per input port.
    flit: [[Flit; 8]; RING],
}

/// Ring mode's state borrowed by the simple router step ([`Switch`]).
struct RingRefs<'a> {
    rings: &'a mut [RingRec; BAND],
    on: &'a mut [[u64; 2]; RING],
}

/// A contiguous range of routers and their interfaces, with everything
/// they write during a cycle (module docs, "Partitions and threads").
/// Indices are part-local: router `lr = r − r0`, input VC
/// `(lr*PORTS + port)*V + vc`, node `lr`.
struct Part {
    id: u16,
    r0: usize,
    nr: usize,
    bufs: VcBuffers,
    /// Per router: its VC masks ([`RtBits`]: the VCs holding flits, the
    /// ACTIVE ones, the output VCs in use).
    bits: Vec<RtBits>,
    va: Vec<Allocator>,
    /// Switch allocators, one per (router, priority level): index
    /// `lr * nlev + level`. A strict-priority switch arbitrates each level
    /// with its own round-robin state, so traffic of a lower level never
    /// moves the pointers that order a higher level's requests (the
    /// migration class cannot perturb collective traffic through arbiter
    /// state). With one level this is BookSim's single allocator. Empty
    /// when the switch allocator is iSLIP (`sa_small` then).
    sa: Vec<Allocator>,
    /// The switch allocators when they are iSLIP ([`Consts::sa_islip`]),
    /// same index: 16 bytes each, four routers' to a cache line, where an
    /// [`Allocator`] takes about 416 bytes (one line missed per visit on a
    /// large mesh). Empty otherwise.
    sa_small: Vec<SmallIslip>,
    /// Round-robin VC offset per (input port, priority level): index
    /// `(lr * PORTS + port) * nlev + level`.
    sw_rr: Vec<u8>,
    router_on: Vec<u64>,
    // Output VCs, index (lr*PORTS + port)*V + vc.
    credits: Vec<u16>,
    /// Input VC (global index) holding each output VC, for deadlock
    /// reports; kept by the general router step only (with
    /// [`Consts::simple`] it is empty and [`Network::deadlock_report`]
    /// derives it from the ACTIVE VCs, which saves a store to a cold line
    /// per VC grant).
    owner: Vec<u32>,
    /// Per port `lr*PORTS + p`: the flit link leaving output port `p` and
    /// the credit link leaving input port `p`.
    links: Vec<PortLinks>,
    /// Per port `lr*PORTS + p`: the occupancy of those links.
    timing: Vec<PortTiming>,
    /// Per node: the injection link.
    inj_timing: Vec<LinkTiming>,
    /// Per node: the credit link from the interface to the router's LOCAL output.
    ej_cred_timing: Vec<LinkTiming>,
    /// Flits in flight to this part's routers (in ring mode, `Part::ring`,
    /// none: they are in `rings`) and interfaces, per (arrival
    /// cycle mod the wheel length, band): index `bucket * nbands + band`,
    /// band `lr / BAND` of the receiving router or node.
    ///
    /// Two wheels, so that the arrival loop does not branch on the kind
    /// of flit (which is not predictable): `wheel[0]` holds flits for
    /// routers' input ports, `wheel[1]` flits for ejection at interfaces.
    wheel: [Vec<Vec<Ev>>; 2],
    /// Credits in flight to this part, same indexing as `wheel`, without
    /// the flit a credit does not need and in two wheels so that the
    /// arrival loops do not branch on the kind of item: `cwheel[0]` holds
    /// credits for routers' output VCs (the part-local output-VC index
    /// `(lr*PORTS + port)*V + vc`), `cwheel[1]` credits for interfaces
    /// (`ln << 8 | vc`). See [`Part::schedule_credit`].
    cwheel: [Vec<Vec<u32>>; 2],
    /// Bands of [`BAND`] routers (one for a part of at most `BAND` routers).
    nbands: usize,
    /// Number of parts.
    np: usize,
    /// Items sent this cycle to the part before (0) and after (1) this one
    /// (mesh links join adjacent rows, so no other part is ever reached).
    outbox: [Vec<RemoteEv>; 2],
    ni: Vec<Ni>,
    ni_on: Vec<u64>,
    /// Per (node, VC): the packet being ejected.
    ejecting: Vec<Ejecting>,
    /// This cycle: packets delivered (ascending node), their slots, and
    /// packets whose tail was injected.
    delivered: Vec<Delivered>,
    freed: Vec<u32>,
    injected: Vec<Injected>,
    /// This cycle's counters.
    cyc: Counters,
    /// A flit moved this cycle.
    progressed: bool,
    /// Flits switched per (output port, class), index
    /// `(lr*PORTS + port)*C + class`, with two or more classes (with one,
    /// [`PortLinks::flits`] counts them).
    link_flits: Vec<u64>,
    scratch_va: Vec<(u32, u128)>,
    /// The simple router step's VC-allocation requests
    /// ([`Part::router_step_simple`]; a router has at most `WIN_VCS` VCs
    /// there), in a fixed array so that a request is stored without a
    /// branch.
    va_rows: Box<[(u32, u128); WIN_VCS]>,
    scratch_grants: Vec<(u32, u32)>,
    /// With [`Consts::batched`], per router: the start of its routing
    /// stage's and of its crossbar's latest batch ([`stage_batch`]); empty
    /// otherwise.
    batches: Vec<[u64; 2]>,
    /// A thread's share of the network's VC records exceeds the touch
    /// threshold (the L2 size, [`set_touch_threshold`]): each cycle reads
    /// the arrivals' records in a first pass ([`Part::cycle`],
    /// [`touch_records`]). It only moves loads earlier; no result depends
    /// on it.
    touch: bool,
    /// Ring mode: the default pipeline on one part of one band with short
    /// links (the `B = 3` router step). A router-to-router or injected
    /// flit is put into the receiving router's [`RingRec`] instead of the
    /// flit wheel, and its router is marked in `ring_on` for the arrival
    /// cycle; the router's visit in that cycle applies its flits first
    /// ([`Part::ring_arrivals`]). Ejections and credits keep the wheels.
    /// (Credits in rings too, and the kernel's visible-flit counters,
    /// measured slower.)
    ring: bool,
    /// Per router (ring mode, [`BAND`] records; else empty).
    rings: Vec<RingRec>,
    /// Per slot (ring mode): the routers a flit arrives at in that cycle.
    ring_on: [[u64; 2]; RING],
    /// The cycle being simulated, set by [`Part::cycle`]: debug builds
    /// check that every item is scheduled for a later cycle within the
    /// wheels' horizon ([`Sched::check_horizon`]).
    #[cfg(debug_assertions)]
    now: u64,
}

/// The L2 size assumed where the operating system does not report one
/// ([`l2_bytes`]): the 512 KiB of the AMD EPYC host the touch pass was
/// measured on.
const DEFAULT_L2_BYTES: usize = 512 << 10;

/// [`set_touch_threshold`]'s value; 0 for "the L2 size".
static TOUCH_OVERRIDE: AtomicUsize = AtomicUsize::new(0);

/// Set the share of the VC records (bytes per thread) above which the
/// arrival loop reads them in a first pass (the arrival touch pass); `None`
/// restores the default, the size of the core's L2 cache ([`l2_bytes`]).
/// Only the speed depends on it. Networks built from now on use it.
///
/// The pass pays where the records do not fit in the L2: on an AMD EPYC
/// with 512 KiB of L2 it gained 13% on 32×32 at 0.01 (1.25 MiB of
/// records a thread), broke about even on 16×16 with 4 VCs (320 KiB) and
/// lost 2% on 8×8 (80 KiB) (docs/performance.md, "Arrival touch pass,
/// session 12"); on an Intel Xeon with 2 MiB of L2 it lost 3–4% on 32×32
/// on one thread and 6% on two (640 KiB a thread), and was even on 64×64
/// (5 MiB) (session 22).
pub fn set_touch_threshold(bytes: Option<usize>) {
    TOUCH_OVERRIDE.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// The threshold [`set_touch_threshold`] set, or the L2 size.
fn touch_threshold() -> usize {
    match TOUCH_OVERRIDE.load(Ordering::Relaxed) {
        0 => l2_bytes(),
        b => b,
    }
}

/// The size of CPU 0's level-2 data (or unified) cache as Linux reports
/// it in `/sys/devices/system/cpu/cpu0/cache/index*/`, read once;
/// 512 KiB where that is missing or unreadable.
pub fn l2_bytes() -> usize {
    static L2: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *L2.get_or_init(|| {
        l2_bytes_in(std::path::Path::new("/sys/devices/system/cpu/cpu0/cache"))
            .unwrap_or(DEFAULT_L2_BYTES)
    })
}

/// The first level-2 data or unified cache's size among `dir`'s
/// `index0` to `index7` (sysfs's layout), if any is readable.
fn l2_bytes_in(dir: &std::path::Path) -> Option<usize> {
    let read = |i: usize, f: &str| std::fs::read_to_string(dir.join(format!("index{i}/{f}")));
    (0..8).find_map(|i| {
        let level = read(i, "level").ok()?;
        let kind = read(i, "type").ok()?;
        if level.trim() != "2" || kind.trim() == "Instruction" {
            return None;
        }
        parse_cache_size(&read(i, "size").ok()?)
    })
}

/// A cache size as sysfs writes it: a number of bytes with an optional
/// `K`, `M` or `G` suffix (`"2048K"`); `None` for anything else or zero.
fn parse_cache_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&b| b > 0)
}

#[inline]
fn set_bit(words: &mut [u64], i: usize) {
    words[i >> 6] |= 1 << (i & 63);
}

/// A barrier whose waiters spin, then yield, then sleep briefly: a cycle
/// of a large mesh takes tens of microseconds, too short for a blocking
/// barrier's wake-up.
struct SpinBarrier {
    n: usize,
    /// Busy-wait rounds before yielding: none when there are more threads
    /// than cores (a spinning thread would keep the one it waits for off
    /// its core).
    spin: u32,
    /// Arrivals, and the generation the waiters watch, on cache lines of
    /// their own (the arriving thread's write would otherwise evict the
    /// line every waiter spins on).
    count: CachePadded<AtomicUsize>,
    generation: CachePadded<AtomicUsize>,
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        SpinBarrier {
            n,
            spin: if n > cores { 0 } else { 1 << 11 },
            count: CachePadded::new(AtomicUsize::new(0)),
            generation: CachePadded::new(AtomicUsize::new(0)),
        }
    }
    /// Wait for all `n` threads, or until `abort` is set.
    fn wait(&self, abort: &AtomicBool) {
        let g = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        let mut rounds = 0u32;
        while self.generation.load(Ordering::Acquire) == g {
            if abort.load(Ordering::Acquire) {
                return;
            }
            // Spin a few microseconds before giving the core away: a yield
            // is a system call and delays the wake-up.
            if spins < self.spin {
                spins += 1;
                std::hint::spin_loop();
            } else if rounds < 2000 {
                rounds += 1;
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
}

/// The router step a [`Network`] takes ([`Network::step_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// The general step, which handles every configuration (and the
    /// check mode).
    General,
    /// The default pipeline's specialised step: 1-cycle routing, VC and
    /// switch allocation and crossbar, no output delay, not speculative,
    /// one priority level, links of one flit per cycle, output VCs
    /// released with their tail, at most 64 VCs per router.
    DefaultPipeline,
    /// The default pipeline's step with arrivals in per-router rings: one
    /// thread, at most 128 routers, every flit arriving 1 to 3 cycles
    /// after it is sent.
    DefaultPipelineRings,
}

/// What the calling thread and the workers share.
struct Core {
    c: Consts,
    parts: Vec<Mutex<Part>>,
    pkts: RwLock<Packets>,
    /// Mailboxes `(parity * P + from) * 2 + dir` (dir 0: to part
    /// `from − 1`, 1: to `from + 1`): items sent in cycle `t` sit in parity
    /// `t & 1` until the receiver takes them in cycle `t + 1`.
    mail: Vec<CachePadded<Mutex<Vec<RemoteEv>>>>,
    /// Per part: packets enqueued since the last cycle, in call order.
    /// The part puts them into its source queues itself, so the calling
    /// thread does not touch the part's memory for each packet.
    handoff: Vec<CachePadded<Mutex<Vec<Queued>>>>,
    /// Threads (the calling one and `nthreads − 1` workers).
    nthreads: usize,
    /// Per part: one more than the last cycle a thread took it in (one
    /// cache line each: threads claim neighbouring parts at the same time).
    /// A stamp rather than a flag, so that nothing has to be reset between
    /// cycles.
    claimed: Vec<CachePadded<AtomicU64>>,
    /// Per thread: its parts, largest first.
    order: Vec<Vec<usize>>,
    start: SpinBarrier,
    end: SpinBarrier,
    t: AtomicU64,
    stop: AtomicBool,
}

impl Core {
    fn lock(&self, p: usize) -> MutexGuard<'_, Part> {
        self.parts[p].lock().expect("a simulation thread panicked")
    }
    /// Thread `j`'s share of cycle `t`: its own parts, largest first,
    /// then any part another thread has not started yet, smallest first
    /// (so that a slower core or the calling thread's driver work does not
    /// hold the others up, and the last parts taken are small). Which
    /// thread simulates a part changes nothing in the results.
    fn run_thread(&self, j: usize, t: u64) {
        let pk = self.pkts.read().expect("a simulation thread panicked");
        let nt = self.nthreads;
        let own = self.order[j].iter();
        let others = (1..nt).flat_map(|d| self.order[(j + d) % nt].iter().rev());
        for &p in own.chain(others) {
            if self.claimed[p].swap(t + 1, Ordering::AcqRel) != t + 1 {
                let mut q = self.handoff[p]
                    .lock()
                    .expect("a simulation thread panicked");
                self.lock(p).cycle(t, &self.c, &pk, &self.mail, &mut q);
            }
        }
    }

    /// Cycle `t` on the calling thread alone, with no worker holding the
    /// core: every part in order, through `&mut` (no lock is taken).
    /// `pending` is the network's per-part list of packets enqueued since
    /// the last cycle; each part drains its own.
    fn run_alone(&mut self, t: u64, pending: &mut [Vec<Queued>]) {
        let pk = self.pkts.get_mut().expect("a simulation thread panicked");
        for (part, q) in self.parts.iter_mut().zip(pending) {
            part.get_mut()
                .expect("a simulation thread panicked")
                .cycle(t, &self.c, pk, &self.mail, q);
        }
    }
}

/// The flit-level network.
pub struct Network {
    core: Arc<Core>,
    cfg: NetworkConfig,
    workers: Vec<JoinHandle<()>>,
    /// Per part: packets enqueued for the next cycle (see `Core::handoff`).
    pending: Vec<Vec<Queued>>,
    free: Vec<u32>,
    now: u64,
    last_progress: u64,
    in_flight_flits: u64,
    deadlock_timeout: u64,
    counters: Counters,
    delivered: Vec<Delivered>,
}

impl Drop for Network {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            self.core.stop.store(true, Ordering::Release);
            self.core.start.wait(&self.core.stop);
            for w in self.workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}

impl Network {
    /// Build a network on [`default_threads`] threads; every parameter is
    /// checked first.
    pub fn new(cfg: NetworkConfig) -> Result<Self, ConfigError> {
        Self::with_threads(cfg, default_threads())
    }

    /// Everything [`Network::new`] refuses, without building the network:
    /// the configuration's own rules, the topology, the path-length limit
    /// of the hop count and the memory guard (docs/configuration.md, "Size
    /// limits"). Returns the topology.
    pub fn check_config(cfg: &NetworkConfig) -> Result<Topology, ConfigError> {
        cfg.validate()?;
        let topo = Topology::new(cfg.mesh.clone())?;
        if topo.width + topo.height - 1 > u16::MAX as usize {
            return Err(ConfigError::Other {
                key: "mesh".into(),
                reason: format!(
                    "a {}×{} mesh has paths of {} routers; hop counts are 16-bit (at most {})",
                    topo.width,
                    topo.height,
                    topo.width + topo.height - 1,
                    u16::MAX
                ),
            });
        }
        let r_n = topo.nodes();
        let v = cfg.router.num_vcs;
        let pv = PORTS * v;
        // Memory guard: refuse a network whose VC state or input buffers
        // would take gigabytes (r_n <= 2^20, pv <= 128, depth <= 4096: no
        // overflow). docs/configuration.md states the limits.
        if r_n * pv > MAX_VCS {
            return Err(ConfigError::Other {
                key: "mesh".into(),
                reason: format!(
                    "{r_n} routers × {PORTS} ports × {v} VCs = {} virtual channels is more \
                     than the supported {MAX_VCS} (2^25)",
                    r_n * pv
                ),
            });
        }
        let prios: std::collections::BTreeSet<u8> =
            cfg.effective_classes().iter().map(|c| c.priority).collect();
        if cfg.router.speculative && cfg.router.shared_speculation && prios.len() > 1 {
            return Err(ConfigError::Other {
                key: "shared_speculation".into(),
                reason: "needs one priority level (its one switch allocation has no \
                         priority passes)"
                    .into(),
            });
        }
        let stall = stall_bound(&topo, &cfg.router);
        if cfg.deadlock_timeout > 0 && cfg.deadlock_timeout <= stall {
            return Err(ConfigError::Other {
                key: "deadlock_timeout".into(),
                reason: format!(
                    "{} cycles (BookSim2's deadlock_warn_timeout maps to it): must be 0 \
                     (automatic) or more than {stall}, the longest this network can go without \
                     progress when it is not deadlocked (its slowest flit or credit link, then \
                     every router stage of the next hop); a shorter timeout reports deadlocks \
                     that are not there",
                    cfg.deadlock_timeout
                ),
            });
        }
        if r_n * pv * cfg.router.vc_buf_size > MAX_BUFFER_FLITS {
            return Err(ConfigError::Other {
                key: "vc_buf_size".into(),
                reason: format!(
                    "{} virtual channels × {} flits = {} buffered flits is more than the \
                     supported {MAX_BUFFER_FLITS} (2^28, 1 GiB of flits)",
                    r_n * pv,
                    cfg.router.vc_buf_size,
                    r_n * pv * cfg.router.vc_buf_size
                ),
            });
        }
        Ok(topo)
    }

    /// Build a network simulated by `threads` threads (fewer if the mesh
    /// has fewer rows). Results are the same for every
    /// thread count.
    pub fn with_threads(cfg: NetworkConfig, threads: usize) -> Result<Self, ConfigError> {
        let topo = Self::check_config(&cfg)?;
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
        // Dimension-order routes by table: per class and direction code
        // (the signs of the coordinate differences, as `Part::compute_route`
        // forms it), the class's VCs on the port XY or YX takes.
        let dor_mask: Vec<u128> = match cfg.routing {
            Routing::Xy | Routing::Yx => class_lo
                .iter()
                .zip(&class_hi)
                .flat_map(|(&lo, &hi)| {
                    let m = ((1u128 << (hi - lo)) - 1) << lo;
                    let x_first = cfg.routing == Routing::Xy;
                    (0..16).map(move |code| {
                        // Ports as `Routing::dor_port` numbers them.
                        let xp = [None, Some(0), Some(1), None][code >> 2];
                        let yp = [None, Some(2), Some(3), None][code & 3];
                        let p = if x_first { xp.or(yp) } else { yp.or(xp) };
                        m << (p.unwrap_or(LOCAL) * v)
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
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
        let rp = r_n * PORTS;

        // Links, indexed by their sender. Flit link out of output port
        // (r, o): LOCAL is the ejection link, otherwise the link to the
        // neighbour with the parameters of that edge.
        let mut out_timing = Vec::with_capacity(rp);
        // Credit link out of input port (r, i), towards the output port that
        // feeds it (LOCAL: to the interface's injection credits).
        let mut cred_timing = Vec::with_capacity(rp);
        let mut out_link = vec![u32::MAX; rp];
        let mut in_credit_link = vec![u32::MAX; rp];
        for r in 0..r_n {
            for p in 0..PORTS {
                let ((lat, cpf), cred) = port_links(&topo, rc, r, p);
                out_timing.push(LinkTiming::new(lat, cpf));
                cred_timing.push(LinkTiming::new(cred, 1));
                if p == LOCAL {
                    out_link[r * PORTS + p] = (rp + r) as u32;
                    in_credit_link[r * PORTS + p] = (rp + r) as u32;
                } else if let Some(nb) = topo.neighbor(r, p) {
                    out_link[r * PORTS + p] = (nb * PORTS + Topology::input_port_of(p)) as u32;
                    in_credit_link[r * PORTS + p] = (nb * PORTS + (p ^ 1)) as u32;
                }
            }
        }
        // Injection links and the interfaces' ejection credit links.
        let inj_timing = vec![LinkTiming::new(topo.spec.local_latency, 1); r_n];
        let ej_cred_timing =
            vec![LinkTiming::new(topo.spec.local_latency + rc.credit_delay, 1); r_n];
        let batched = batched(rc);
        let max_delay = max_delay(&topo, rc);
        let wheel_len = max_delay.next_power_of_two();
        let deadlock_timeout = if cfg.deadlock_timeout > 0 {
            cfg.deadlock_timeout
        } else {
            1000.max(8 * max_delay)
        };
        let fast_links = out_timing
            .iter()
            .chain(&inj_timing)
            .all(|l| l.cycles_per_flit() == 1);

        // Parts: contiguous bands of rows. Each thread gets an equal share
        // of the rows, cut into bands of halving height (its share 16 rows:
        // 8, 4, 2, 1, 1), largest first (at the bottom for the last thread,
        // at the top of the share for the others). One band
        // per thread would leave the threads as slow as the slowest core;
        // with these, a thread that is done early takes the other threads'
        // small bands (`Core::run_thread`) and little is left to wait for.
        let nthreads = threads.clamp(1, topo.height);
        let mut bands: Vec<usize> = Vec::new(); // heights, top to bottom
        let mut order: Vec<Vec<usize>> = Vec::new();
        for j in 0..nthreads {
            let share = (j + 1) * topo.height / nthreads - j * topo.height / nthreads;
            let mut cuts = Vec::new();
            let mut left = share;
            while left > 0 {
                let h = if nthreads == 1 {
                    left
                } else {
                    left.div_ceil(2)
                };
                cuts.push(h);
                left -= h;
            }
            let first = bands.len();
            let k = cuts.len();
            // The last thread's largest band is at the bottom.
            if j + 1 == nthreads && j > 0 {
                cuts.reverse();
                order.push((first..first + k).rev().collect());
            } else {
                order.push((first..first + k).collect());
            }
            bands.extend(cuts);
        }
        let nparts = bands.len();
        let mut part_start = vec![0usize];
        for h in &bands {
            part_start.push(part_start.last().copied().unwrap_or(0) + h * topo.width);
        }
        let mut part_of = vec![0u16; r_n];
        for p in 0..nparts {
            for x in &mut part_of[part_start[p]..part_start[p + 1]] {
                *x = p as u16;
            }
        }
        let target_part = |tg: u32| -> u16 {
            if tg == u32::MAX {
                0
            } else if (tg as usize) < rp {
                part_of[tg as usize / PORTS]
            } else {
                part_of[tg as usize - rp]
            }
        };
        let out_part: Vec<u16> = out_link.iter().map(|&l| target_part(l)).collect();
        let in_credit_part: Vec<u16> = in_credit_link.iter().map(|&l| target_part(l)).collect();

        let nclasses = classes.len();
        let mut c = Consts {
            v,
            pv,
            pv_inv: (1u64 << 32) / pv as u64 + 1,
            depth,
            rd: rc.routing_delay as u64,
            vad: rc.vc_alloc_delay as u64,
            sad: rc.sw_alloc_delay as u64,
            xd_od: (rc.crossbar_delay() + rc.output_delay) as u64,
            xd: rc.crossbar_delay() as u64,
            batched,
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
            shared_spec: rc.speculative && rc.shared_speculation,
            sa_islip: matches!(rc.sw_allocator, AllocatorKind::Islip { .. }),
            sa_iters: match rc.sw_allocator {
                AllocatorKind::Islip { iters } => iters,
                _ => 0,
            },
            fast_links,
            step_all: cfg.step_all,
            simple: false,
            routing: cfg.routing,
            class_lo,
            class_hi,
            class_prio,
            prio_levels,
            vc_prio,
            vc_class,
            dor_mask,
            port_of,
            vc_of,
            nclasses,
            nlev,
            vc_lvl,
            rp: rp as u32,
            out_link,
            part_of,
            wheel_mask: wheel_len - 1,
            #[cfg(debug_assertions)]
            horizon: max_delay,
            topo,
        };
        // The check mode takes the general step, so that comparing it with
        // the activity-driven run also checks the specialised one.
        c.simple = !c.step_all
            && c.rd == 1
            && c.vad == 1
            && c.sad == 1
            && c.xd_od == 1
            && !c.speculative
            && c.nlev == 1
            && c.fast_links
            && !c.wait_tail
            && c.atomic_ovc == 0
            && c.pv <= 64;
        // A thread steps several parts (its bands, and others' when it is
        // done early), so the records that compete for its core's cache
        // are its share of all of them, not one part's.
        let touch = r_n * pv * std::mem::size_of::<VcState>() / nthreads > touch_threshold();
        let parts: Vec<Mutex<Part>> = (0..nparts)
            .map(|p| {
                let (r0, r1) = (part_start[p], part_start[p + 1]);
                let nr = r1 - r0;
                let words = nr.div_ceil(64);
                // Ring mode (`Part::ring`): every flit must arrive within
                // the ring, at least a cycle after it was sent (the
                // default pipeline sends it `1 + out_delay` after its
                // switch grant).
                let lead_ok = |d: u64| (1..RING as u64).contains(&d);
                // (Ejections keep the wheel, so the local output ports'
                // timing does not matter: a `local_latency` of 2 keeps ring
                // mode, the ring review's finding.)
                let ring = c.simple
                    && nparts == 1
                    && nr <= BAND
                    && (r0 * PORTS..r1 * PORTS)
                        .filter(|q| q % PORTS != LOCAL)
                        .all(|q| lead_ok(out_timing[q].arrival(0) + 1))
                    && inj_timing[r0..r1].iter().all(|l| lead_ok(l.arrival(0)));
                let mut part = Part {
                    id: p as u16,
                    r0,
                    nr,
                    bufs: VcBuffers::padded(nr * pv, rc.vc_buf_size, WIN_VCS),
                    bits: vec![RtBits::default(); nr],
                    va: (0..nr)
                        .map(|_| Allocator::new(rc.vc_allocator, rc.arbiter, pv, pv))
                        .collect(),
                    sa: if c.sa_islip {
                        Vec::new()
                    } else {
                        (0..nr * nlev)
                            .map(|_| Allocator::new(rc.sw_allocator, rc.arbiter, PORTS, PORTS))
                            .collect()
                    },
                    sa_small: if c.sa_islip {
                        vec![SmallIslip::default(); nr * nlev]
                    } else {
                        Vec::new()
                    },
                    sw_rr: vec![0; nr * PORTS * nlev + WIN_PORTS],
                    router_on: vec![0; words],
                    credits: vec![depth; nr * pv + WIN_VCS],
                    owner: if c.simple {
                        Vec::new()
                    } else {
                        vec![u32::MAX; nr * pv]
                    },
                    links: (r0 * PORTS..r1 * PORTS)
                        .map(|q| PortLinks {
                            out_delay: u16::try_from(out_timing[q].arrival(0))
                                .expect("link delays are at most 8192 cycles"),
                            cred_delay: u16::try_from(cred_timing[q].arrival(0))
                                .expect("link delays are at most 8192 cycles"),
                            out_target: c.out_link[q],
                            cred_code: match in_credit_link[q] {
                                // An edge port: no flit arrives, so no credit
                                // is sent; a code that fails every lookup
                                // (and cannot wrap when a VC is added) if
                                // one ever were.
                                u32::MAX => u32::MAX - 255,
                                l if l >= rp as u32 => {
                                    (l - rp as u32 - part_start[in_credit_part[q] as usize] as u32)
                                        << 8
                                }
                                l => {
                                    (l - (part_start[in_credit_part[q] as usize] * PORTS) as u32)
                                        * v as u32
                                }
                            },
                            out_part: out_part[q],
                            cred_part: in_credit_part[q],
                            flits: 0,
                        })
                        // Padding for the last router's window (`WIN_PORTS`),
                        // never read.
                        .chain(std::iter::repeat_n(PortLinks::default(), WIN_PORTS))
                        .collect(),
                    timing: (r0 * PORTS..r1 * PORTS)
                        .map(|q| PortTiming {
                            out: out_timing[q],
                            cred: cred_timing[q],
                        })
                        .collect(),
                    inj_timing: inj_timing[r0..r1].to_vec(),
                    ej_cred_timing: ej_cred_timing[r0..r1].to_vec(),
                    wheel: std::array::from_fn(|_| {
                        vec![Vec::new(); wheel_len as usize * nr.div_ceil(BAND)]
                    }),
                    cwheel: std::array::from_fn(|_| {
                        vec![Vec::new(); wheel_len as usize * nr.div_ceil(BAND)]
                    }),
                    nbands: nr.div_ceil(BAND),
                    np: nparts,
                    outbox: [Vec::new(), Vec::new()],
                    ni: (0..nr)
                        .map(|_| Ni {
                            classes: c
                                .class_hi
                                .iter()
                                .map(|h| NiClass {
                                    queue: VecDeque::new(),
                                    cur_itime: 0,
                                    cur_inj_sum: 0,
                                    cur_vc: -1,
                                    next_seq: 0,
                                    cur_size: 0,
                                    last_vc: h - 1,
                                    last_tail: u64::MAX,
                                })
                                .collect(),
                            last_class: (nclasses - 1) as u8,
                            credits: vec![depth; v],
                            in_use: 0,
                            tail_sent: 0,
                            queued: 0,
                            injected_flits: 0,
                            injected_packets: 0,
                        })
                        .collect(),
                    ni_on: vec![0; words],
                    ejecting: vec![Ejecting::default(); nr * v],
                    delivered: Vec::new(),
                    freed: Vec::new(),
                    injected: Vec::new(),
                    cyc: Counters::default(),
                    progressed: false,
                    link_flits: if nclasses > 1 {
                        vec![0; nr * PORTS * nclasses]
                    } else {
                        Vec::new()
                    },
                    scratch_va: Vec::new(),
                    va_rows: Box::new([(0, 0); WIN_VCS]),
                    scratch_grants: Vec::new(),
                    batches: if c.batched {
                        vec![[0; 2]; nr]
                    } else {
                        Vec::new()
                    },
                    touch,
                    ring,
                    rings: if ring {
                        vec![RingRec::default(); BAND]
                    } else {
                        Vec::new()
                    },
                    ring_on: [[0; 2]; RING],
                    #[cfg(debug_assertions)]
                    now: 0,
                };
                if ring {
                    // A router-to-router flit's target as its ring code (one
                    // part: local ids are global), `router << 16 | port << 8
                    // | port * V`; ejections keep their wheel target.
                    debug_assert_eq!(r0, 0);
                    for (q, l) in part.links[..nr * PORTS].iter_mut().enumerate() {
                        let x = c.out_link[q];
                        if x < rp as u32 {
                            let p = x % PORTS as u32;
                            l.out_target = ((x / PORTS as u32) << 16) | (p << 8) | (p * v as u32);
                        }
                    }
                }
                Mutex::new(part)
            })
            .collect();
        let core = Arc::new(Core {
            c,
            parts,
            pkts: RwLock::new(Packets::default()),
            mail: (0..2 * nparts * 2)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
            nthreads,
            handoff: (0..nparts)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
            claimed: (0..nparts)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            order,
            start: SpinBarrier::new(nthreads),
            end: SpinBarrier::new(nthreads),
            t: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let workers = (1..nthreads)
            .map(|p| {
                let core = Arc::clone(&core);
                std::thread::Builder::new()
                    .name(format!("wafernoc-thread-{p}"))
                    .spawn(move || loop {
                        core.start.wait(&core.stop);
                        if core.stop.load(Ordering::Acquire) {
                            return;
                        }
                        let t = core.t.load(Ordering::Acquire);
                        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            core.run_thread(p, t)
                        }));
                        if run.is_err() {
                            // A bug: release the calling thread, which
                            // reports it, instead of leaving it waiting.
                            core.stop.store(true, Ordering::Release);
                            return;
                        }
                        core.end.wait(&core.stop);
                    })
                    .map_err(|e| ConfigError::Other {
                        key: "threads".into(),
                        reason: format!("cannot start a simulation thread: {e}"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .inspect_err(|_| core.stop.store(true, Ordering::Release))?;
        Ok(Network {
            core,
            cfg,
            workers,
            pending: vec![Vec::new(); nparts],
            free: Vec::new(),
            now: 0,
            last_progress: 0,
            in_flight_flits: 0,
            deadlock_timeout,
            counters: Counters::default(),
            delivered: Vec::new(),
        })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.core.c.topo
    }
    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }
    /// Threads simulating this network.
    pub fn threads(&self) -> usize {
        self.core.nthreads
    }
    /// Current cycle (the next one [`Network::step`] simulates).
    pub fn now(&self) -> u64 {
        self.now
    }
    /// Which router step this network takes (a diagnostic: no result
    /// depends on it, and the check mode, `step_all`, always takes the
    /// general one). Lets tests that compare the check mode with the
    /// activity-driven run confirm which specialised step they covered.
    pub fn step_kind(&self) -> StepKind {
        if !self.core.c.simple {
            StepKind::General
        } else if self.core.lock(0).ring {
            StepKind::DefaultPipelineRings
        } else {
            StepKind::DefaultPipeline
        }
    }
    /// Number of message classes.
    pub fn num_classes(&self) -> usize {
        self.core.c.nclasses
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
        self.core
            .pkts
            .read()
            .expect("a simulation thread panicked")
            .len()
            - self.free.len()
    }
    /// True when nothing is left to simulate: no packet queued or in the
    /// network and no flit or credit on any link. Stepping a quiescent
    /// network changes nothing but the cycle counter.
    pub fn is_quiescent(&self) -> bool {
        self.packets_outstanding() == 0
            && self.in_flight_flits == 0
            && (0..self.core.parts.len()).all(|p| {
                let p = self.core.lock(p);
                p.wheel.iter().flatten().all(Vec::is_empty)
                    && p.cwheel.iter().flatten().all(Vec::is_empty)
                    && p.rings.iter().all(|r| r.arr == [0; RING])
                    && p.ring_on == [[0; 2]; RING]
            })
            && self
                .core
                .mail
                .iter()
                .all(|m| m.lock().expect("a simulation thread panicked").is_empty())
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
    pub fn link_flits(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for p in 0..self.core.parts.len() {
            let p = self.core.lock(p);
            if self.core.c.nclasses == 1 {
                out.extend(p.links[..p.nr * PORTS].iter().map(|l| l.flits));
            } else {
                out.extend_from_slice(&p.link_flits);
            }
        }
        out
    }
    /// The per-node counters the statistics read at a window's edges, in
    /// one pass over the parts.
    pub fn node_counts(&self) -> NodeCounts {
        let v = self.core.c.v;
        let mut out = NodeCounts::default();
        for p in 0..self.core.parts.len() {
            let p = self.core.lock(p);
            for ni in &p.ni {
                out.injected_flits.push(ni.injected_flits);
                out.injected_packets.push(ni.injected_packets);
            }
            out.ejecting_flits.extend(
                p.ejecting
                    .chunks(v)
                    .map(|vcs| vcs.iter().map(|e| e.arrived as u64).sum::<u64>()),
            );
        }
        out
    }
    /// Flits injected so far, per source node
    /// ([`NodeCounts::injected_flits`]).
    pub fn injected_by_node(&self) -> Vec<u64> {
        self.node_counts().injected_flits
    }
    /// Packets injected so far, per source node
    /// ([`NodeCounts::injected_packets`]).
    pub fn injected_packets_by_node(&self) -> Vec<u64> {
        self.node_counts().injected_packets
    }
    /// Give `tag` to the queued packets that BookSim2 would not yet have
    /// made by the end of the last cycle simulated, and return how many.
    ///
    /// BookSim2 makes a source queue's packets lazily (`_Inject`): the next
    /// packet, with its creation time in the past, only once the last one's
    /// tail has left, in the first step after that; and it decides then,
    /// by the state at that moment, whether the packet is measured
    /// (`_GeneratePacket`). wafernoc queues every packet at its creation
    /// time. So when measurement starts, BookSim2 measures the packets
    /// still queued at that moment that it had not made yet: all but the
    /// front of each queue, and the front too if its head has not left and
    /// the packet before it sent its tail in the last cycle (BookSim2 makes
    /// it in the next step, which is measured).
    pub fn measure_queued(&mut self, tag: u64) -> u64 {
        let last = self.now.wrapping_sub(1);
        let mut pk = self
            .core
            .pkts
            .write()
            .expect("a simulation thread panicked");
        let mut n = 0;
        for p in 0..self.core.parts.len() {
            let part = self.core.lock(p);
            for q in part.ni.iter().flat_map(|ni| &ni.classes) {
                for &slot in q.unmade(last) {
                    pk[slot as usize].tag = tag;
                    n += 1;
                }
            }
        }
        n
    }
    /// Drop the queued packets that BookSim2 would never make once it
    /// stops making packets after the last cycle simulated (its final
    /// "Draining remaining packets" runs with `_empty_network`, which skips
    /// `_Inject`): those [`Network::measure_queued`] would tag. Returns how
    /// many were dropped, and how many of them had `tag`.
    pub fn drop_unmade(&mut self, tag: u64) -> (u64, u64) {
        let last = self.now.wrapping_sub(1);
        let mut pk = self
            .core
            .pkts
            .write()
            .expect("a simulation thread panicked");
        let (mut n, mut tagged) = (0, 0);
        for p in 0..self.core.parts.len() {
            let mut part = self.core.lock(p);
            for ni in part.ni.iter_mut() {
                for q in ni.classes.iter_mut() {
                    let made = q.made(last);
                    if q.queue.len() <= made {
                        continue;
                    }
                    for slot in q.queue.drain(made..) {
                        let e = &mut pk[slot as usize];
                        tagged += (e.tag == tag) as u64;
                        e.live = false;
                        self.free.push(slot);
                        ni.queued -= 1;
                        n += 1;
                    }
                }
            }
        }
        (n, tagged)
    }
    /// BookSim2's in-flight flits (`_total_in_flight_flits`, every class,
    /// measured or not): (sum over them of their packet's age `now −
    /// ctime`, their number). A flit is in flight from its packet's making
    /// to its ejection. BookSim2 makes a source queue's packets lazily
    /// ([`Network::measure_queued`]), so the queued packets it would not
    /// have made by the end of the last cycle, and those enqueued but not
    /// yet handed to their part, are left out, as are flits already
    /// ejected. Both latency-threshold checks of the BookSim2-style driver
    /// add these ages to the retired packets' latencies (`_SingleSim`).
    pub fn in_flight_ages(&self) -> (u64, u64) {
        let pk = self.core.pkts.read().expect("a simulation thread panicked");
        let now = self.now;
        let last = now.wrapping_sub(1);
        let age = |p: &Packet| now - p.ctime.min(now);
        let mut s = 0;
        let mut k = 0;
        for p in pk.iter().filter(|p| p.live) {
            s += p.size as u64 * age(p);
            k += p.size as u64;
        }
        let mut minus = |slot: u32, flits: u64| {
            let p = &pk[slot as usize];
            s -= flits * age(p);
            k -= flits;
        };
        for q in 0..self.core.parts.len() {
            let part = self.core.lock(q);
            // The flits of packets being ejected that have arrived.
            for e in part.ejecting.iter().filter(|e| e.arrived > 0) {
                minus(e.slot, e.arrived as u64);
            }
            // Packets BookSim2 has not made yet.
            for c in part.ni.iter().flat_map(|ni| &ni.classes) {
                for &slot in c.unmade(last) {
                    minus(slot, pk[slot as usize].size as u64);
                }
            }
        }
        for q in self.pending.iter().flatten() {
            minus(q.slot, pk[q.slot as usize].size as u64);
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
        self.enqueue_all(std::slice::from_ref(&p))
    }

    /// Queue packets at their sources, in order: the same as
    /// [`Network::enqueue`] of each in turn, with the packet table locked
    /// once. If one is impossible, returns its error and queues none.
    pub fn enqueue_all(&mut self, ps: &[NewPacket]) -> Result<(), ConfigError> {
        let n = self.core.c.topo.nodes() as u32;
        let nclasses = self.core.c.nclasses;
        for p in ps {
            if p.src >= n || p.dst >= n {
                return Err(ConfigError::Other {
                    key: "node".into(),
                    reason: format!(
                        "packet {}→{} but the network has nodes 0..{}",
                        p.src, p.dst, n
                    ),
                });
            }
            if p.class as usize >= nclasses {
                return Err(ConfigError::Other {
                    key: "class".into(),
                    reason: format!(
                        "class {} but the network has {nclasses} class(es) (0..{nclasses})",
                        p.class
                    ),
                });
            }
            if p.size == 0 {
                return Err(ConfigError::Other {
                    key: "packet_size".into(),
                    reason: "a packet has at least one flit".into(),
                });
            }
        }
        if ps.is_empty() {
            return Ok(());
        }
        let mut pkts = self
            .core
            .pkts
            .write()
            .expect("a simulation thread panicked");
        check_slot_count(pkts.len(), ps.len(), self.free.len())?;
        for p in ps {
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
            let slot = pkts.put(self.free.pop(), pk);
            self.pending[self.core.c.part_of[p.src as usize] as usize].push(Queued {
                node: p.src,
                class: p.class,
                slot,
            });
        }
        Ok(())
    }

    /// Simulate one cycle. Returns a deadlock report if no flit has moved
    /// for `deadlock_timeout` cycles while flits are in the network.
    pub fn step(&mut self) -> Result<(), Box<DeadlockReport>> {
        self.step_with(|| {})
    }

    /// [`Network::step`], running `side` on the calling thread while the
    /// cycle is simulated: with several threads the workers start on
    /// their parts first and take over the calling thread's unstarted
    /// parts while `side` runs, so driver work that does not need the
    /// network (generating the next cycle's open-loop traffic, say) no
    /// longer holds them at the barrier. With one thread `side` runs
    /// before the cycle. Results do not depend on `side` (the borrow of
    /// the network keeps it out).
    pub fn step_with(&mut self, side: impl FnOnce()) -> Result<(), Box<DeadlockReport>> {
        let t = self.now;
        if self.workers.is_empty() {
            // One thread: no worker holds the core, so the parts read
            // their packets straight from `pending`, with no lock. (Decided
            // by the workers, not by the Arc's count: after a panic on
            // several threads the workers drop their clones, and the next
            // step must still refuse below, not run the cycle again.)
            let core = Arc::get_mut(&mut self.core).expect("no worker holds the core");
            side();
            core.run_alone(t, &mut self.pending);
            // The parts' reports, through the same borrow (one
            // `Arc::get_mut`, an atomic exchange, a cycle).
            let pk = core.pkts.get_mut().expect("a simulation thread panicked");
            for part in &mut core.parts {
                let p = part.get_mut().expect("a simulation thread panicked");
                if !p.injected.is_empty() || !p.freed.is_empty() {
                    take_packets(p, pk, &mut self.free, &mut self.delivered);
                }
                take_counts(
                    &mut self.counters,
                    &mut self.in_flight_flits,
                    &mut self.last_progress,
                    p,
                    t,
                );
            }
        } else {
            for (p, q) in self.pending.iter_mut().enumerate() {
                if !q.is_empty() {
                    // The part's list was emptied by its last cycle: the
                    // two buffers swap and keep their capacity.
                    std::mem::swap(
                        q,
                        &mut self.core.handoff[p]
                            .lock()
                            .expect("a simulation thread panicked"),
                    );
                }
            }
            self.core.t.store(t, Ordering::Release);
            self.core.start.wait(&self.core.stop);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                side();
                self.core.run_thread(0, t)
            }));
            if let Err(e) = run {
                // Release the workers (they stop at the next barrier) so a
                // caller that catches the panic cannot step into a hang.
                self.core.stop.store(true, Ordering::Release);
                std::panic::resume_unwind(e);
            }
            self.core.end.wait(&self.core.stop);
            assert!(
                !self.core.stop.load(Ordering::Acquire),
                "a simulation thread panicked"
            );
            self.merge(t);
        }
        self.now += 1;
        if self.in_flight_flits > 0 && t.saturating_sub(self.last_progress) >= self.deadlock_timeout
        {
            return Err(Box::new(self.deadlock_report()));
        }
        Ok(())
    }

    /// After cycle `t` on several threads: the parts' reports, in part
    /// order (one thread takes them in `step_with`, without locks).
    fn merge(&mut self, t: u64) {
        let core = &*self.core;
        let mut pkts = None;
        for q in 0..core.parts.len() {
            let mut p = core.lock(q);
            if !p.injected.is_empty() || !p.freed.is_empty() {
                let pk = pkts.get_or_insert_with(|| {
                    core.pkts.write().expect("a simulation thread panicked")
                });
                take_packets(&mut p, pk, &mut self.free, &mut self.delivered);
            }
            take_counts(
                &mut self.counters,
                &mut self.in_flight_flits,
                &mut self.last_progress,
                &mut p,
                t,
            );
        }
    }

    /// Build the wait-for report of a network that stopped moving.
    pub fn deadlock_report(&self) -> DeadlockReport {
        let c = &self.core.c;
        let v = c.v;
        let pv = c.pv;
        let r_n = c.topo.nodes();
        let rp = r_n * PORTS;
        let parts: Vec<MutexGuard<'_, Part>> = (0..self.core.parts.len())
            .map(|p| self.core.lock(p))
            .collect();
        // Global input VC g → (its part, part-local index).
        let at = |g: usize| {
            let p = &parts[c.part_of[g / pv] as usize];
            (p, g - p.r0 * pv)
        };
        // The input VC holding each output VC (global ids). The default
        // pipeline does not record it (`Part::owner` is written by the
        // general step only): there an output VC is in use exactly while
        // the input VC it was granted to is ACTIVE on it, so the ACTIVE
        // VCs give the same table.
        let derived: Vec<u32> = if c.simple {
            let mut d = vec![u32::MAX; r_n * pv];
            for p in &parts {
                for (lg, s) in p.bufs.vcs[..p.nr * pv].iter().enumerate() {
                    if p.bits[lg / pv].stage(lg % pv) == ACTIVE {
                        let g = p.r0 * pv + lg;
                        d[g / pv * pv + s.out as usize] = g as u32;
                    }
                }
            }
            d
        } else {
            Vec::new()
        };
        // Edges between input VCs (global ids) that hold flits.
        let mut edges: Vec<Vec<u32>> = vec![Vec::new(); r_n * pv];
        let mut blocked = Vec::new();
        for (g, edges_g) in edges.iter_mut().enumerate() {
            let (p, lg) = at(g);
            if p.bufs.is_empty(lg) {
                continue;
            }
            let r = g / pv;
            let lr = r - p.r0;
            match p.bits[lr].stage(lg - lr * pv) {
                ACTIVE => {
                    let oi = p.bufs.vcs[lg].out as usize;
                    let o = oi / v;
                    if o != LOCAL && p.credits[lr * pv + oi] == 0 {
                        let link = c.out_link[r * PORTS + o] as usize;
                        if link < rp {
                            edges_g.push((link * v + oi % v) as u32);
                        }
                    }
                }
                VC_ALLOC => {
                    let mut m = p.bufs.vcs[lg].route;
                    while m != 0 {
                        let oi = m.trailing_zeros() as usize;
                        m &= m - 1;
                        if p.bits[lr].ovc_in_use >> oi & 1 == 1 {
                            let ow = if c.simple {
                                derived[r * pv + oi]
                            } else {
                                p.owner[lr * pv + oi]
                            };
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
        // One cycle of the wait-for graph, searched from the blocked VCs.
        let cycle_ids = crate::cdg::find_cycle(
            r_n * pv,
            blocked.iter().copied(),
            |_| 0usize,
            |u, k| {
                let w = *edges[u].get(*k)?;
                *k += 1;
                Some(w as usize)
            },
        )
        .unwrap_or_default();
        let describe = |g: usize| {
            let (p, lg) = at(g);
            let r = g / pv;
            let li = g % pv;
            let (x, y) = c.topo.coord(r);
            let s = p.bufs.vcs[lg];
            let waits = match p.bits[r - p.r0].stage(li) {
                ACTIVE => Some((s.out as usize / v, s.out as usize % v)),
                VC_ALLOC => {
                    let oi = (p.bufs.vcs[lg].route & p.bits[r - p.r0].ovc_in_use).trailing_zeros()
                        as usize;
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
                flits: p.bufs.len(lg),
                waits_for_port: waits.map(|w| w.0),
                waits_for_vc: waits.map(|w| w.1),
            }
        };
        DeadlockReport {
            cycle: self.now,
            idle_cycles: self.now.saturating_sub(self.last_progress),
            flits_in_flight: self.in_flight_flits,
            wait_cycle: cycle_ids.iter().map(|&g| describe(g)).collect(),
            blocked: blocked.iter().take(64).map(|&g| describe(g)).collect(),
            blocked_total: blocked.len(),
        }
    }

    /// Check internal invariants (used by property tests): credits within
    /// buffer depth, buffers within depth, the flits buffered in a VC are
    /// runs of one packet each (a head after every tail, one packet
    /// between a head and its tail), the stage masks
    /// consistent with the buffers (work bits on exactly the VCs holding
    /// flits, a head at the front of a VC in VC allocation, an output VC in
    /// use under an ACTIVE VC), each interface's queued-packet count equal
    /// to its queues' length and the interface marked active while it has
    /// any, at most one credit a cycle on each credit link (one flit a
    /// cycle out of each input port), and flit conservation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let c = &self.core.c;
        let depth = c.depth;
        let mut in_buffers = 0u64;
        let mut on_links = 0u64;
        for q in 0..self.core.parts.len() {
            let p = self.core.lock(q);
            for lg in 0..p.nr * c.pv {
                let g = p.r0 * c.pv + lg;
                let n = p.bufs.len(lg);
                if n > depth as usize {
                    return Err(format!("input VC {g} holds {n} flits > depth {depth}"));
                }
                in_buffers += n as u64;
                // The stage masks (`RtBits`): a work bit exactly on the VCs
                // holding flits, a head at the front of a VC in VC
                // allocation, an output VC in use under every ACTIVE VC.
                let (b, li) = (&p.bits[lg / c.pv], lg % c.pv);
                let (w, bit) = RtBits::at(li);
                if (b.work[w] & bit != 0) != (n > 0) {
                    return Err(format!("input VC {g}: work bit disagrees with {n} flits"));
                }
                match b.stage(li) {
                    VC_ALLOC if !p.bufs.front(lg).is_some_and(Flit::is_head) => {
                        return Err(format!("input VC {g} in VC allocation without a head"));
                    }
                    ACTIVE if b.ovc_in_use >> p.bufs.vcs[lg].out & 1 == 0 => {
                        return Err(format!("input VC {g} is ACTIVE on a free output VC"));
                    }
                    _ => {}
                }
                // Flits of one VC: a packet's flits are contiguous and in order.
                let mut prev: Option<Flit> = None;
                for f in p.bufs.iter(lg) {
                    if let Some(pf) = prev {
                        let ok = if pf.is_tail() {
                            f.is_head()
                        } else {
                            f.pkt() == pf.pkt()
                        };
                        if !ok {
                            return Err(format!(
                                "input VC {g}: flit {:?} follows {:?} (interleaved packets)",
                                f, pf
                            ));
                        }
                    }
                    prev = Some(f);
                }
            }
            for (o, &cr) in p.credits.iter().enumerate() {
                if cr > depth {
                    return Err(format!(
                        "output VC {} has {cr} credits > depth {depth}",
                        p.r0 * c.pv + o
                    ));
                }
            }
            // The windows' padding after the last router (`WIN_VCS`) is
            // never written: its VCs stay empty, its credits full.
            let pad = p.nr * c.pv..p.nr * c.pv + WIN_VCS;
            if pad
                .into_iter()
                .any(|lg| p.bufs.len(lg) != 0 || p.credits[lg] != depth)
            {
                return Err(format!("part {q}: a window's padding was written"));
            }
            for (n, ni) in p.ni.iter().enumerate() {
                for (vc, &cr) in ni.credits.iter().enumerate() {
                    if cr > depth {
                        return Err(format!(
                            "node {} injection VC {vc} has {cr} credits > depth",
                            p.r0 + n
                        ));
                    }
                }
                // The interface's count of queued packets is its queues'
                // length, and an interface with queued packets is visited.
                let held: usize = ni.classes.iter().map(|q| q.queue.len()).sum();
                if held != ni.queued {
                    return Err(format!(
                        "node {}: {} queued packets counted, {held} in its queues",
                        p.r0 + n,
                        ni.queued
                    ));
                }
                if held > 0 && p.ni_on[n / 64] >> (n % 64) & 1 == 0 {
                    return Err(format!(
                        "node {}: {held} queued packets, but the interface is not marked active",
                        p.r0 + n
                    ));
                }
            }
            // At most one flit leaves an input port per cycle (input
            // speedup 1), so each credit link carries at most one credit
            // per cycle: in each wheel slot (one arrival cycle, since a
            // link's credits all take the same delay), at most one credit
            // per receiving output port (router credits, the index
            // `(lr*PORTS + port)*V + vc`) or interface (`ln << 8 | vc`).
            for (kind, w) in p.cwheel.iter().enumerate() {
                for (k, slot) in w.iter().enumerate() {
                    let mut links: Vec<u32> = slot
                        .iter()
                        .map(|&x| if kind == 0 { x / c.v as u32 } else { x >> 8 })
                        .collect();
                    links.sort_unstable();
                    if let Some(d) = links.windows(2).find(|d| d[0] == d[1]) {
                        let at = if kind == 0 {
                            let (lr, port) = (d[0] as usize / PORTS, d[0] as usize % PORTS);
                            format!("router output port {port} of router {}", p.r0 + lr)
                        } else {
                            format!("interface of node {}", p.r0 + d[0] as usize)
                        };
                        return Err(format!(
                            "two credits arrive in one cycle (wheel slot {k}) at {at}: \
                             an input sent two flits in one cycle"
                        ));
                    }
                }
            }
            on_links += p.wheel.iter().flatten().map(Vec::len).sum::<usize>() as u64;
            on_links += p
                .rings
                .iter()
                .flat_map(|r| r.arr)
                .map(|m| m.count_ones() as u64)
                .sum::<u64>();
            // A router with arrivals in a ring slot is marked for that
            // slot's cycle (else its visit, which applies them, could be
            // skipped).
            for (lr, r) in p.rings.iter().enumerate() {
                for (slot, &m) in r.arr.iter().enumerate() {
                    if m != 0 && p.ring_on[slot][(lr >> 6) & 1] & (1 << (lr & 63)) == 0 {
                        return Err(format!(
                            "router {}: arrivals in ring slot {slot} but not marked in ring_on",
                            p.r0 + lr
                        ));
                    }
                }
            }
        }
        for m in &self.core.mail {
            let m = m.lock().expect("a simulation thread panicked");
            on_links += m
                .iter()
                .filter(|e| matches!(e, RemoteEv::Flit { .. }))
                .count() as u64;
        }
        if on_links + in_buffers != self.in_flight_flits {
            return Err(format!(
                "flit conservation: {} on links + {} in buffers != {} in flight (injected {} ejected {})",
                on_links, in_buffers, self.in_flight_flits, self.counters.injected_flits, self.counters.ejected_flits
            ));
        }
        if self.counters.injected_flits != self.counters.ejected_flits + self.in_flight_flits {
            return Err("injected != ejected + in flight".into());
        }
        Ok(())
    }
}

/// Timing of the flit link out of output port `p` of router `r` and of
/// the credit link out of its input port `p`: `((latency, cycles per
/// flit), credit latency)`. LOCAL: the ejection link, and the credit back
/// to the interface; a port at the mesh edge: links never used.
fn port_links(topo: &Topology, rc: &RouterConfig, r: usize, p: usize) -> ((u32, u32), u32) {
    if p == LOCAL {
        ((topo.spec.local_latency, 1), topo.spec.local_latency)
    } else if let Some(nb) = topo.neighbor(r, p) {
        // Credits of input port p of r go back to output port p^1 of the
        // neighbour, over that edge's latency.
        let back = topo.link_params(nb, p ^ 1).0;
        (topo.link_params(r, p), back + rc.credit_delay)
    } else {
        ((1, 1), 1 + rc.credit_delay)
    }
}

/// Whether BookSim2's batched stages change anything: only with a routing
/// or crossbar delay of 2 or more (with 1, a batch is a pipelined stage).
fn batched(rc: &RouterConfig) -> bool {
    rc.batched_stages && (rc.routing_delay >= 2 || rc.crossbar_delay() >= 2)
}

/// Over every link (router ports, injection, ejection credits): the
/// longest an item takes on one, flit links' latency plus cycles per flit
/// and credit links' latency plus one, and the most cycles per flit.
fn slowest_links(topo: &Topology, rc: &RouterConfig) -> (u64, u64) {
    let local = topo.spec.local_latency;
    let mut item = u64::from(local + 1).max(u64::from(local + rc.credit_delay + 1));
    let mut cpf_max = 1u64;
    for r in 0..topo.nodes() {
        for p in 0..PORTS {
            let ((lat, cpf), cred) = port_links(topo, rc, r, p);
            item = item.max(u64::from(lat + cpf)).max(u64::from(cred + 1));
            cpf_max = cpf_max.max(u64::from(cpf));
        }
    }
    (item, cpf_max)
}

/// The longest a network that is not deadlocked can go without progress
/// (an injection, a switch traversal or an ejection): the slowest flit
/// link (latency plus cycles per flit) or credit link, then every stage of
/// the next router (routing, VC and switch allocation, crossbar, output;
/// with batched stages the batch ahead as well), and a margin. The floor
/// of a nonzero `deadlock_timeout`. (Waiting in an output queue follows a
/// traversal, which is progress, so it does not count.)
fn stall_bound(topo: &Topology, rc: &RouterConfig) -> u64 {
    let (item, _) = slowest_links(topo, rc);
    let stages = (rc.routing_delay + rc.vc_alloc_delay + rc.sw_alloc_delay)
        + rc.crossbar_delay()
        + rc.output_delay
        + if batched(rc) {
            rc.routing_delay + rc.crossbar_delay()
        } else {
            0
        };
    item + stages as u64 + 4
}

/// The longest an item is scheduled ahead (the timing wheels' horizon):
/// the slowest flit link's latency plus cycles per flit, or credit link's
/// latency plus one, over every router port, injection and ejection
/// credit link, plus the switch, crossbar and output delays and a margin;
/// with batched stages, plus the wait in the crossbar batch and the
/// output queue.
fn max_delay(topo: &Topology, rc: &RouterConfig) -> u64 {
    let (item, cpf_max) = slowest_links(topo, rc);
    item + (rc.sw_alloc_delay + rc.crossbar_delay() + rc.output_delay) as u64
        + 4
        + if batched(rc) {
            // A flit waits for the crossbar batch ahead of it (at most the
            // crossbar delay), then in its output's queue behind flits that
            // each hold a credit of the downstream input port: at most V × B
            // of them, each taking up to the slowest link's cycles per flit.
            rc.crossbar_delay() as u64 + (rc.num_vcs * rc.vc_buf_size) as u64 * cpf_max
        } else {
            0
        }
}

/// Where a part's items go: its flit and credit wheels and its outboxes,
/// borrowed from the [`Part`] apart from the rest of it, so that the
/// router step can schedule while it holds borrows of the router's own
/// state.
struct Sched<'a> {
    id: u16,
    r0: usize,
    nbands: usize,
    wheel: &'a mut [Vec<Vec<Ev>>; 2],
    cwheel: &'a mut [Vec<Vec<u32>>; 2],
    outbox: &'a mut [Vec<RemoteEv>; 2],
    /// The cycle being simulated ([`Part::now`]), for the horizon check.
    #[cfg(debug_assertions)]
    now: u64,
}

impl Sched<'_> {
    /// Debug builds: an item scheduled now for cycle `at` arrives in a
    /// later cycle, at most [`Consts::horizon`] ahead (so within the
    /// wheels, whose length is that rounded up to a power of two). An item
    /// past the wheels would land in an earlier slot and arrive early.
    #[inline(always)]
    fn check_horizon(&self, c: &Consts, at: u64) {
        #[cfg(debug_assertions)]
        assert!(
            at > self.now && at - self.now <= c.horizon,
            "an item scheduled in cycle {} for cycle {at}, past the horizon of {} cycles",
            self.now,
            c.horizon
        );
        #[cfg(not(debug_assertions))]
        let _ = (c, at);
    }

    /// Index in `wheel` (and in each of `cwheel`) of an item for `target`
    /// (a router port or a node of this part) arriving in cycle `at`. `S`:
    /// the part has one band (0: the band computation is compiled out),
    /// several (1), either (2: decided at run time), or one band and is
    /// the only part (3 in ring mode, [`Part::ring`]; 4 otherwise).
    #[inline]
    fn wheel_slot<const S: u8>(&self, c: &Consts, at: u64, target: u32) -> usize {
        self.bucket::<S>(c, at, || {
            let r = if target < c.rp {
                target as usize / PORTS
            } else {
                (target - c.rp) as usize
            };
            r - self.r0
        })
    }

    /// [`Sched::wheel_slot`] for an item whose receiving router or node is
    /// `lr()` (part-local), computed only if the part has several bands.
    #[inline]
    fn bucket<const S: u8>(&self, c: &Consts, at: u64, lr: impl FnOnce() -> usize) -> usize {
        let bucket = (at & c.wheel_mask) as usize;
        if S == 0 || S >= 3 || (S == 2 && self.nbands == 1) {
            debug_assert_eq!(self.nbands, 1);
            return bucket;
        }
        bucket * self.nbands + lr() / BAND
    }

    /// Put a flit on its way: into this part's flit wheel, or into the
    /// outbox of the part that receives it. `S`: the part has one band (0),
    /// several (1), either (2), or one band and is the only part (3 in ring
    /// mode, 4 otherwise: every item stays in it, and the outbox code is
    /// compiled out).
    #[inline(always)]
    fn flit<const S: u8>(&mut self, c: &Consts, at: u64, ev: Ev, to: u16) {
        self.check_horizon(c, at);
        if S >= 3 || to == self.id {
            let k = self.wheel_slot::<S>(c, at, ev.target);
            self.wheel[(ev.target >= c.rp) as usize][k].push(ev);
        } else {
            debug_assert!(to.abs_diff(self.id) == 1, "an item for a part not adjacent");
            self.outbox[(to > self.id) as usize].push(RemoteEv::Flit { at, ev });
        }
    }

    /// Put a credit on its way: `code` is its code in the receiving part's
    /// credit wheel of kind `ni` ([`Part::cwheel`]: for a router's output
    /// VC, `ni` false, or for an interface), `to` the receiving part; into
    /// this part's wheel, or into the outbox of the part that receives it.
    /// `S` as for [`Sched::flit`].
    #[inline(always)]
    fn credit<const S: u8>(&mut self, c: &Consts, at: u64, code: u32, ni: bool, to: u16) {
        self.check_horizon(c, at);
        if S >= 3 || to == self.id {
            let k = self.bucket::<S>(c, at, || {
                if ni {
                    (code >> 8) as usize
                } else {
                    c.div_pv(code)
                }
            });
            self.cwheel[ni as usize][k].push(code);
        } else {
            debug_assert!(to.abs_diff(self.id) == 1, "an item for a part not adjacent");
            debug_assert!(!ni, "an interface credit for another part");
            self.outbox[(to > self.id) as usize].push(RemoteEv::Credit { at, code });
        }
    }
}

/// The packet table after `new` packets join a table of `table` slots of
/// which `free` are free: flits name their packet's slot in 30 bits, so a
/// table of more than [`Flit::MAX_PACKETS`] slots is refused (before any
/// packet is added).
fn check_slot_count(table: usize, new: usize, free: usize) -> Result<(), ConfigError> {
    let slots = table.saturating_add(new.saturating_sub(free));
    if slots > Flit::MAX_PACKETS as usize {
        return Err(ConfigError::Other {
            key: "packets".into(),
            reason: format!(
                "{slots} packets queued or in flight at once; flits name at most {} (2^30)",
                Flit::MAX_PACKETS
            ),
        });
    }
    Ok(())
}

/// After a cycle: a part's injections and freed slots into the packet
/// table, its freed slots and deliveries appended to the network's (in part
/// order, so freed slots are reused in the same order for any thread count).
fn take_packets(
    p: &mut Part,
    pk: &mut Packets,
    free: &mut Vec<u32>,
    delivered: &mut Vec<Delivered>,
) {
    for i in p.injected.drain(..) {
        let e = &mut pk[i.slot as usize];
        e.itime = i.itime;
        e.inj_sum = i.inj_sum;
    }
    for &s in &p.freed {
        pk[s as usize].live = false;
    }
    free.append(&mut p.freed);
    delivered.append(&mut p.delivered);
}

/// After cycle `t`: a part's cycle counters into the network's, and its
/// progress into the deadlock watch.
fn take_counts(
    counters: &mut Counters,
    in_flight_flits: &mut u64,
    last_progress: &mut u64,
    p: &mut Part,
    t: u64,
) {
    counters.add(&p.cyc);
    *in_flight_flits += p.cyc.injected_flits;
    *in_flight_flits -= p.cyc.ejected_flits;
    p.cyc = Counters::default();
    if p.progressed {
        *last_progress = t;
        p.progressed = false;
    }
}

impl Part {
    /// Simulate cycle `t` of this part's routers and interfaces.
    fn cycle(
        &mut self,
        t: u64,
        c: &Consts,
        pk: &Packets,
        mail: &[CachePadded<Mutex<Vec<RemoteEv>>>],
        handoff: &mut Vec<Queued>,
    ) {
        #[cfg(debug_assertions)]
        {
            self.now = t;
        }
        for e in handoff.drain(..) {
            let ln = e.node as usize - self.r0;
            let ni = &mut self.ni[ln];
            ni.classes[e.class as usize].queue.push_back(e.slot);
            ni.queued += 1;
            set_bit(&mut self.ni_on, ln);
        }
        let np = self.np;
        let id = self.id as usize;
        if np > 1 {
            // Items the neighbouring parts sent in cycle t − 1.
            let par = ((t.wrapping_sub(1)) & 1) as usize;
            let from_before = (id > 0).then(|| (par * np + id - 1) * 2 + 1);
            let from_after = (id + 1 < np).then(|| (par * np + id + 1) * 2);
            for k in from_before.into_iter().chain(from_after) {
                let mut m = mail[k].lock().expect("a simulation thread panicked");
                for re in m.drain(..) {
                    match re {
                        RemoteEv::Flit { at, ev } => {
                            debug_assert!(at > t, "an item arrives before it is collected");
                            self.schedule::<2>(c, at, ev, self.id);
                        }
                        RemoteEv::Credit { at, code } => {
                            debug_assert!(at > t, "an item arrives before it is collected");
                            self.schedule_credit::<2>(c, at, code, false, self.id);
                        }
                    }
                }
            }
        }
        // Band by band (see `BAND`): each router's arrivals are applied
        // before its step as before, and routers and interfaces of other
        // bands touch none of its state (module docs, "Evaluate / commit");
        // deliveries and injections are still listed in ascending node order.
        let words = self.router_on.len();
        for band in 0..self.nbands {
            let (w0, w1) = (band * (BAND / 64), ((band + 1) * (BAND / 64)).min(words));
            if self.touch {
                // Read every arriving flit's VC record first, in a loop of
                // independent loads, so that their cache misses overlap; in
                // the arrival loop each one stalled its iteration (`perf
                // annotate`, 32×32 at 0.01: a fifth of the run time on the
                // ring-length load of `push`). See [`Part::touch`]. (Here,
                // not in `process_arrivals`: a call there, even out of
                // line, cost the arrival loop 0.9% more instructions.)
                let bucket = (t & c.wheel_mask) as usize * self.nbands + band;
                touch_records(
                    &self.bufs,
                    &self.wheel[0][bucket],
                    (self.r0 * PORTS) as u32,
                    c.v,
                );
            }
            if c.batched {
                self.process_arrivals::<true>(t, c, pk, band);
            } else {
                self.process_arrivals::<false>(t, c, pk, band);
            }
            self.process_interfaces(t, c, pk, w0, w1);
            match (c.simple, self.nbands > 1, np > 1) {
                (true, false, false) if self.ring => {
                    self.process_routers::<true, 3>(t, c, pk, w0, w1)
                }
                (true, false, false) => self.process_routers::<true, 4>(t, c, pk, w0, w1),
                (true, false, _) => self.process_routers::<true, 0>(t, c, pk, w0, w1),
                (true, true, _) => self.process_routers::<true, 1>(t, c, pk, w0, w1),
                (false, false, _) => self.process_routers::<false, 0>(t, c, pk, w0, w1),
                (false, true, _) => self.process_routers::<false, 1>(t, c, pk, w0, w1),
            }
        }
        if np > 1 {
            let par = (t & 1) as usize;
            for dir in 0..2 {
                if self.outbox[dir].is_empty() {
                    continue;
                }
                let mut m = mail[(par * np + id) * 2 + dir]
                    .lock()
                    .expect("a simulation thread panicked");
                debug_assert!(m.is_empty(), "mailbox not collected");
                std::mem::swap(&mut *m, &mut self.outbox[dir]);
            }
        }
    }

    /// The part's wheels and outboxes, for scheduling ([`Sched`]).
    #[inline(always)]
    fn sched(&mut self) -> Sched<'_> {
        Sched {
            id: self.id,
            r0: self.r0,
            nbands: self.nbands,
            wheel: &mut self.wheel,
            cwheel: &mut self.cwheel,
            outbox: &mut self.outbox,
            #[cfg(debug_assertions)]
            now: self.now,
        }
    }

    /// [`Sched::flit`] on this part.
    #[inline]
    fn schedule<const S: u8>(&mut self, c: &Consts, at: u64, ev: Ev, to: u16) {
        self.sched().flit::<S>(c, at, ev, to);
    }

    /// [`Sched::credit`] on this part.
    #[inline]
    fn schedule_credit<const S: u8>(&mut self, c: &Consts, at: u64, code: u32, ni: bool, to: u16) {
        self.sched().credit::<S>(c, at, code, ni, to);
    }

    /// Apply the items arriving in cycle `t` at the routers and interfaces
    /// of band `band`: router credits, interface credits, router flits,
    /// then ejections.
    ///
    /// The order of the four lists does not change any result. A credit
    /// writes only its output VC's counter and, when that is full again,
    /// its router's `ovc_tail_sent` / `ovc_in_use` bits (an interface
    /// credit: its interface's `credits`, `tail_sent`, `in_use`); a flit
    /// arrival writes only its input VC (`bufs`), its router's
    /// `work` bits and `router_on`, and reads the packet table; an ejection
    /// writes its node's ejection-credit link, `ejecting` record, the
    /// counters and the `delivered` / `freed` lists, and schedules a credit
    /// for a later cycle (every delay is at least 2). None of them reads
    /// what another kind writes, so credits and flits commute; credits
    /// commute with each other (increments, and clearing of distinct bits
    /// or of the same bit by the one credit that fills the counter), and
    /// so do flit arrivals (one flit per input VC per cycle, bit sets).
    /// Only ejections are order-sensitive (`delivered`, in ascending node
    /// order, and `freed`, both merged in part order by [`Network::step`]),
    /// and they keep the order they had when credits and router flits
    /// shared one wheel with them: ejections are pushed into their own
    /// wheel in the same order as then, and taking the other items out of
    /// a list does not reorder the ejections left.
    ///
    /// `BATCHED`: [`Consts::batched`], a constant so that the other
    /// configurations' arrival loop carries none of its code (a test of
    /// it per arrival cost 1.2% of the instructions on 8×8 at 0.3:
    /// callgrind).
    #[inline(never)]
    fn process_arrivals<const BATCHED: bool>(
        &mut self,
        t: u64,
        c: &Consts,
        pk: &Packets,
        band: usize,
    ) {
        let bucket = (t & c.wheel_mask) as usize * self.nbands + band;
        let release = c.wait_tail || c.atomic_ovc != 0;
        for &o in &self.cwheel[0][bucket] {
            let o = o as usize;
            self.credits[o] += 1;
            debug_assert!(self.credits[o] <= c.depth, "credits exceed buffer depth");
            if release && self.credits[o] == c.depth {
                let lr = c.div_pv(o as u32);
                let bit = 1u128 << (o - lr * c.pv);
                let b = &mut self.bits[lr];
                if b.ovc_tail_sent & bit != 0 {
                    b.ovc_tail_sent &= !bit;
                    b.ovc_in_use &= !bit;
                }
            }
        }
        self.cwheel[0][bucket].clear();
        for &x in &self.cwheel[1][bucket] {
            let vc = (x & 255) as usize;
            let ni = &mut self.ni[(x >> 8) as usize];
            ni.credits[vc] += 1;
            debug_assert!(ni.credits[vc] <= c.depth);
            if c.wait_tail && ni.credits[vc] == c.depth && ni.tail_sent >> vc & 1 == 1 {
                ni.tail_sent &= !(1 << vc);
                ni.in_use &= !(1 << vc);
            }
        }
        self.cwheel[1][bucket].clear();
        let port0 = (self.r0 * PORTS) as u32;
        let mut evs = std::mem::take(&mut self.wheel[0][bucket]);
        for &ev in &evs {
            self.flit_arrives::<BATCHED>(t, c, pk, (ev.target - port0) as usize, ev.flit, ev.vc);
        }
        evs.clear();
        self.wheel[0][bucket] = evs;
        let node0 = c.rp + self.r0 as u32;
        let mut evs = std::mem::take(&mut self.wheel[1][bucket]);
        if BATCHED {
            // Ejections are listed in ascending node order because every
            // flit they take reaches its node a fixed time after it was
            // switched, in ascending router order within a cycle. With
            // batched stages a flit may wait for its crossbar batch and
            // its output queue, so flits ejected in one cycle were
            // scheduled in different cycles: order them by node (one
            // ejection per node per cycle), or the list would depend on
            // the partition into threads.
            sort_by_target(&mut evs);
        }
        for &ev in &evs {
            self.eject(t, c, pk, (ev.target - node0) as usize, ev.flit, ev.vc);
        }
        evs.clear();
        self.wheel[1][bucket] = evs;
        // Every delay is at least 2 cycles, so nothing was scheduled into
        // the buckets being processed: they are empty again.
        debug_assert!(self.wheel.iter().all(|w| w[bucket].is_empty()));
        debug_assert!(self.cwheel.iter().all(|w| w[bucket].is_empty()));
    }

    /// Ring mode ([`Part::ring`]): the flits arriving at router `lr` in
    /// cycle `t` (slot `s`), applied at the start of its visit (routers
    /// are independent within a cycle, so this is as if all arrivals came
    /// first), as [`Part::flit_arrives`] applies them (a head into an
    /// IDLE VC routed), with the router's masks written once for all its
    /// flits; its state is then in cache for its step. An ACTIVE VC's
    /// `next` is not moved: the default pipeline never reads it (its last
    /// grant was before `t`).
    #[inline(always)]
    fn ring_arrivals(&mut self, t: u64, c: &Consts, pk: &Packets, lr: usize, s: usize) {
        let rec = &mut self.rings[lr];
        let a = std::mem::take(&mut rec.arr[s]);
        if a == 0 {
            return;
        }
        let rec = &*rec;
        let base = lr * c.pv;
        let b = &mut self.bits[lr];
        // IDLE: neither holding flits nor ACTIVE (`RtBits`).
        let idle = a & !(b.work[0] | b.active[0]);
        b.work[0] |= a;
        let mut x = a;
        while x != 0 {
            let li = x.trailing_zeros() as usize;
            x &= x - 1;
            let f = rec.flit[s][c.port_of[li & 127] as usize & 7];
            let g = base + li;
            self.bufs
                .push(g, f)
                .expect("credit protocol violated: input buffer overflow");
            if idle >> li & 1 != 0 {
                debug_assert!(f.is_head());
                let st = &mut self.bufs.vcs[g];
                st.next = t + 1;
                st.route = Self::compute_route(c, pk, self.r0 + lr, f.pkt());
            }
        }
    }

    /// Candidate output VCs at router `r` (global id) for packet `pkt`.
    #[inline]
    fn compute_route(c: &Consts, pk: &Packets, r: usize, pkt: u32) -> u128 {
        let key = pk.route[pkt as usize];
        let (dst, cl) = ((key >> 8) as usize, (key & 0xff) as usize);
        if !c.dor_mask.is_empty() {
            // What `candidates` gives for XY or YX (LOCAL at the
            // destination), without a branch: the signs of the two
            // coordinate differences (bit 2: east, 3: west, 0: y up, 1: y
            // down) index a table of the class's route masks. (The port
            // from `Routing::dor_port`'s branches was mispredicted about
            // once in six routes: cachegrind, session 8.)
            let (cx, cy) = c.topo.coord(r);
            let (dx, dy) = c.topo.coord(dst);
            let code = ((dx > cx) as usize) << 2
                | ((dx < cx) as usize) << 3
                | (dy > cy) as usize
                | ((dy < cy) as usize) << 1;
            return c.dor_mask[cl * 16 + code];
        }
        c.routing.candidates(
            &c.topo,
            r,
            dst,
            c.class_lo[cl] as usize,
            c.class_hi[cl] as usize,
            c.v,
        )
    }

    /// A flit arriving at input port `lport` (part-local), VC `vc`;
    /// `BATCHED` as for [`Part::process_arrivals`].
    fn flit_arrives<const BATCHED: bool>(
        &mut self,
        t: u64,
        c: &Consts,
        pk: &Packets,
        lport: usize,
        f: Flit,
        vc: u8,
    ) {
        let g = lport * c.v + vc as usize;
        let lr = lport / PORTS;
        self.bufs
            .push(g, f)
            .expect("credit protocol violated: input buffer overflow");
        let was_empty = self.bufs.len(g) == 1;
        let x = g - lr * c.pv;
        let (w, bit) = RtBits::at(x);
        let b = &mut self.bits[lr];
        // IDLE: neither holding flits nor ACTIVE (`RtBits`).
        let idle = (b.work[w] | b.active[w]) & bit == 0;
        b.work[w] |= bit;
        let s = &mut self.bufs.vcs[g];
        if idle {
            // A head into an empty VC: routed now (routes depend only on
            // the router and the packet), it asks for an output VC from
            // cycle t + routing_delay, as if it had spent the routing
            // stage in a ROUTING state (module docs, "Timing"). Its work
            // bit, now set, puts it in VC allocation.
            debug_assert!(f.is_head());
            s.next = t + c.rd;
            if BATCHED && c.rd > 0 {
                // With batched stages, from when the head's routing batch
                // starts (the head is queued for routing this cycle,
                // before the stage starts its waiting heads: BookSim2's
                // `_InputQueuing` precedes `_RouteEvaluate`).
                s.next = batch_start(&mut self.batches, lr, 0, t, c.rd) + c.rd;
            }
            s.route = Self::compute_route(c, pk, self.r0 + lr, f.pkt());
        } else {
            // An ACTIVE VC whose buffer was empty: its flit takes part in
            // switch allocation from this cycle (it was last granted at
            // `next − 1 < t`). VCs in VC allocation hold their head, so
            // their buffer was not empty. Without a branch: whether the
            // buffer was empty is not predictable.
            debug_assert!(!was_empty || self.bits[lr].active[w] & bit != 0);
            s.next = if was_empty { s.next.max(t) } else { s.next };
        }
        set_bit(&mut self.router_on, lr);
    }

    // Inlined into the arrival loop, as the compiler did by itself before
    // that loop had two instances (out of line: +1% instructions, 8×8 0.3).
    #[inline(always)]
    fn eject(&mut self, t: u64, c: &Consts, pk: &Packets, ln: usize, f: Flit, vc: u8) {
        // The interface consumes every flit at once and returns its credit.
        let a = self.ej_cred_timing[ln].send(t);
        let code = ((ln * PORTS + LOCAL) * c.v) as u32 + vc as u32;
        self.schedule_credit::<2>(c, a, code, false, self.id);
        self.cyc.ejected_flits += 1;
        self.progressed = true;
        let e = &mut self.ejecting[ln * c.v + vc as usize];
        if f.is_head() {
            *e = Ejecting {
                slot: f.pkt(),
                arrived: 0,
                arr_sum: 0,
            };
        }
        debug_assert_eq!(e.slot, f.pkt(), "flits of two packets on one ejection VC");
        e.arrived += 1;
        e.arr_sum += t;
        if f.is_tail() {
            let p = &pk[f.pkt() as usize];
            debug_assert_eq!(
                p.dst as usize,
                self.r0 + ln,
                "flit ejected at the wrong node"
            );
            debug_assert_eq!(e.arrived, p.size, "a packet ejected without all its flits");
            let d = Delivered {
                tag: p.tag,
                src: p.src,
                dst: p.dst,
                size: p.size,
                class: p.class,
                ctime: p.ctime,
                itime: p.itime,
                atime: t,
                // Every routing the mesh offers is minimal (test
                // `routes_are_minimal`): the packet went through its
                // Manhattan distance in routers, plus its last one.
                hops: c.topo.hops(p.src as usize, p.dst as usize) as u16 + 1,
                flit_latency_sum: e.arr_sum - p.inj_sum,
            };
            *e = Ejecting::default();
            self.delivered.push(d);
            self.freed.push(f.pkt());
            self.cyc.delivered_packets += 1;
        }
    }

    #[inline(never)]
    fn process_interfaces(&mut self, t: u64, c: &Consts, pk: &Packets, w0: usize, w1: usize) {
        // One class outside the check mode: the interfaces take
        // `inject_single`; the check mode always takes the general
        // `inject_one`, so comparing the two modes checks one against the
        // other (`step_all_mode_is_identical`, whose runs have one class).
        if c.nclasses == 1 && !c.step_all {
            self.interfaces::<true>(t, c, pk, w0, w1);
        } else {
            self.interfaces::<false>(t, c, pk, w0, w1);
        }
    }

    /// The interfaces of words `w0..w1` of `ni_on`; `ONE`: take
    /// [`Part::inject_single`].
    #[inline(always)]
    fn interfaces<const ONE: bool>(
        &mut self,
        t: u64,
        c: &Consts,
        pk: &Packets,
        w0: usize,
        w1: usize,
    ) {
        for w in w0..w1 {
            let mut bits = if c.step_all { !0u64 } else { self.ni_on[w] };
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let ln = w * 64 + b;
                if ln >= self.nr {
                    break;
                }
                if ONE {
                    self.inject_single(t, c, pk, ln);
                } else {
                    self.inject_one(t, c, pk, ln);
                }
                if self.ni[ln].queued == 0 {
                    self.ni_on[w] &= !(1 << b);
                }
            }
        }
    }

    /// BookSim's injection: one flit per node per cycle; classes by priority,
    /// round-robin among equal priorities; a head takes the first VC of its
    /// class, round-robin after the last one used, that is free and not full.
    fn inject_one(&mut self, t: u64, c: &Consts, pk: &Packets, ln: usize) {
        if self.ni[ln].queued == 0 {
            return;
        }
        let nc = c.nclasses;
        let mut chosen: Option<(usize, u8)> = None;
        'levels: for &lvl in &c.prio_levels {
            let ni = &self.ni[ln];
            let mut cl = ni.last_class as usize;
            for _ in 0..nc {
                // (last_class + k) mod nc for k = 1..=nc, without a division.
                cl = if cl + 1 >= nc { 0 } else { cl + 1 };
                let q = &ni.classes[cl];
                if c.class_prio[cl] != lvl || q.queue.is_empty() {
                    continue;
                }
                let vc = if q.cur_vc >= 0 {
                    q.cur_vc as u8
                } else {
                    match Self::head_vc(c, ni, cl) {
                        Some(v) => v,
                        None => continue,
                    }
                };
                if ni.credits[vc as usize] == 0 {
                    continue;
                }
                chosen = Some((cl, vc));
                break 'levels;
            }
        }
        let Some((cl, vc)) = chosen else { return };
        self.send_flit(t, c, pk, ln, cl, vc);
    }

    /// [`Part::inject_one`] with one class (so one priority level): the
    /// class is always the one chosen, its queue holds the interface's
    /// packets, and `last_class` stays 0.
    #[inline(always)]
    fn inject_single(&mut self, t: u64, c: &Consts, pk: &Packets, ln: usize) {
        let ni = &self.ni[ln];
        let q = &ni.classes[0];
        if q.queue.is_empty() {
            return;
        }
        let vc = if q.cur_vc >= 0 {
            q.cur_vc as u8
        } else {
            match Self::head_vc(c, ni, 0) {
                Some(v) => v,
                None => return,
            }
        };
        if ni.credits[vc as usize] == 0 {
            return;
        }
        self.send_flit(t, c, pk, ln, 0, vc);
    }

    /// The VC a head of class `cl` takes at interface `ni`: the first of
    /// the class's VCs, round-robin after the last one a head took, that
    /// is free and not full.
    #[inline(always)]
    fn head_vc(c: &Consts, ni: &Ni, cl: usize) -> Option<u8> {
        let q = &ni.classes[cl];
        let lo = c.class_lo[cl];
        let cnt = c.class_hi[cl] - lo;
        // (last_vc − lo + 1 + i) mod cnt, below 2·cnt: a subtraction, not
        // a division.
        (0..cnt)
            .map(|i| {
                let k = q.last_vc - lo + 1 + i;
                lo + if k >= cnt { k - cnt } else { k }
            })
            .find(|&vc| ni.in_use >> vc & 1 == 0 && ni.credits[vc as usize] > 0)
    }

    /// Inject the next flit of class `cl` of interface `ln` on VC `vc`
    /// (chosen by [`Part::inject_one`] or [`Part::inject_single`]).
    #[inline(always)]
    fn send_flit(&mut self, t: u64, c: &Consts, pk: &Packets, ln: usize, cl: usize, vc: u8) {
        let ni = &mut self.ni[ln];
        ni.last_class = cl as u8;
        ni.injected_flits += 1;
        ni.credits[vc as usize] -= 1;
        let q = &mut ni.classes[cl];
        let slot = *q.queue.front().expect("queue checked non-empty");
        let seq = q.next_seq;
        if seq == 0 {
            ni.injected_packets += 1;
            ni.in_use |= 1 << vc;
            ni.tail_sent &= !(1 << vc);
            q.last_vc = vc;
            q.cur_vc = vc as i16;
            q.cur_itime = t;
            q.cur_inj_sum = 0;
            q.cur_size = pk[slot as usize].size;
        }
        q.cur_inj_sum += t;
        let f = Flit::new(slot, seq, q.cur_size);
        if f.is_tail() {
            self.injected.push(Injected {
                slot,
                itime: q.cur_itime,
                inj_sum: q.cur_inj_sum,
            });
            q.queue.pop_front();
            q.cur_vc = -1;
            q.next_seq = 0;
            q.last_tail = t;
            ni.queued -= 1;
            if c.wait_tail {
                ni.tail_sent |= 1 << vc;
            } else {
                ni.in_use &= !(1 << vc);
            }
        } else {
            q.next_seq = seq + 1;
        }
        let a = self.inj_timing[ln].send(t);
        if self.ring {
            let li = LOCAL * c.v + vc as usize;
            let rec = &mut self.rings[ln];
            let s = ring_slot(a, t);
            debug_assert_eq!(rec.arr[s] >> (LOCAL * c.v) & ((1 << c.v) - 1), 0);
            rec.arr[s] |= 1 << (li & 63);
            rec.flit[s][LOCAL] = f;
            self.ring_on[s][(ln >> 6) & 1] |= 1 << (ln & 63);
        } else {
            let target = ((self.r0 + ln) * PORTS + LOCAL) as u32;
            // Straight into this part's wheel: an interface and its router
            // are in the same part (`schedule` without the part test).
            let k = self.sched().wheel_slot::<2>(c, a, target);
            self.wheel[0][k].push(Ev {
                target,
                vc,
                flit: f,
            });
        }
        self.cyc.injected_flits += 1;
        self.progressed = true;
    }

    /// `D`: the configuration is [`Consts::simple`]: its routers take
    /// [`Part::single_vc_step`] and [`Part::router_step_simple`], the others
    /// [`Part::router_step`]. `B`: the bands and parts, as `S` of
    /// [`Sched::flit`] (3 and 4, one band and one part, only with `D`: the
    /// single-thread runs of the default pipeline, 3 in ring mode).
    #[inline(never)]
    fn process_routers<const D: bool, const B: u8>(
        &mut self,
        t: u64,
        c: &Consts,
        pk: &Packets,
        w0: usize,
        w1: usize,
    ) {
        let s = (t as usize) & (RING - 1);
        if B == 3 {
            // Ring mode: routers a flit arrives at are visited.
            let on = std::mem::take(&mut self.ring_on[s]);
            for (w, o) in self.router_on.iter_mut().zip(on) {
                *w |= o;
            }
        }
        for w in w0..w1 {
            let mut bits = if c.step_all { !0u64 } else { self.router_on[w] };
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let lr = w * 64 + b;
                if lr >= self.nr {
                    break;
                }
                if B == 3 {
                    self.ring_arrivals(t, c, pk, lr, s);
                }
                if !D {
                    self.router_step::<B>(t, c, pk, lr);
                } else if !self.single_vc_step::<B>(t, c, pk, lr) {
                    self.router_step_simple::<B>(t, c, pk, lr);
                }
                if self.bits[lr].work == [0, 0] {
                    self.router_on[w] &= !(1 << b);
                }
            }
        }
    }

    /// The router step of every configuration but the default pipeline's
    /// ([`Part::router_step_simple`]).
    fn router_step<const B: u8>(&mut self, t: u64, c: &Consts, pk: &Packets, lr: usize) {
        let v = c.v;
        let speculative = c.speculative;
        let fast_links = c.fast_links;
        let (vad, sad, xd_od) = (c.vad, c.sad, c.xd_od);
        let pv = c.pv;
        let r = self.r0 + lr;
        let base = lr * pv;
        let RtBits {
            work,
            active,
            ovc_in_use: in_use,
            ..
        } = self.bits[lr];
        if work == [0, 0] {
            return;
        }
        self.scratch_va.clear();
        // Switch requests: per input port the mask of requested outputs, and
        // per (input, output) the winning VC and its class priority.
        // (Eight entries per dimension, indexed `& 7`: ports are below
        // PORTS ≤ 8, and the mask spares the bounds checks.)
        let mut sa_req = [0u8; 8];
        // Inputs with a switch request (bit per input port).
        let mut sa_in = 0u8;
        let mut sa_vc = [[0u8; 8]; 8];
        let mut sa_pri = [[0u8; 8]; 8];
        // Speculative requests (heads still in VC allocation).
        let mut spec_req = [0u8; 8];
        let mut spec_vc = [[0u8; 8]; 8];
        let multi_prio = c.prio_levels.len() > 1;
        let mut any_sa = false;
        let mut any_spec = false;
        // Outputs asked for by some input, and by two or more inputs.
        let mut sa_seen = 0u8;
        let mut sa_dup = 0u8;
        let nlev = c.nlev;

        for (half, &word) in work.iter().enumerate() {
            // ACTIVE VCs holding flits: switch requests.
            let mut act = word & active[half];
            while act != 0 {
                let li = half * 64 + act.trailing_zeros() as usize;
                act &= act - 1;
                let s = self.bufs.vcs[base + li];
                if s.next > t {
                    continue;
                }
                let oi = s.out as usize;
                if self.credits[base + oi] > 0 {
                    let o = c.port_of[oi & 127] as usize & 7;
                    let send_at = t + sad - 1 + xd_od;
                    // (With batched stages the flit waits in an output
                    // queue for its link instead: `switch_flit`.)
                    if fast_links || c.batched || self.timing[lr * PORTS + o].out.can_send(send_at)
                    {
                        let i = c.port_of[li & 127] as usize & 7;
                        let vc = c.vc_of[li & 127];
                        // Classes own disjoint VC ranges, so the VC gives the priority.
                        let pri = if multi_prio {
                            c.vc_prio[vc as usize]
                        } else {
                            0
                        };
                        if sa_req[i] >> o & 1 == 0 {
                            sa_dup |= sa_seen & (1 << o);
                            sa_seen |= 1 << o;
                            sa_vc[i][o] = vc;
                            if multi_prio {
                                sa_pri[i][o] = pri;
                            }
                        } else if supersedes(
                            vc,
                            pri,
                            sa_vc[i][o],
                            if multi_prio { sa_pri[i][o] } else { 0 },
                            self.sw_rr[(lr * PORTS + i) * nlev + c.vc_lvl[vc as usize] as usize],
                            v,
                        ) {
                            sa_vc[i][o] = vc;
                            if multi_prio {
                                sa_pri[i][o] = pri;
                            }
                        }
                        sa_req[i] |= 1 << o;
                        sa_in |= 1 << i;
                        any_sa = true;
                    }
                }
            }
            // VCs in VC allocation (holding flits, not ACTIVE).
            let mut alloc = word & !active[half];
            while alloc != 0 {
                let li = half * 64 + alloc.trailing_zeros() as usize;
                alloc &= alloc - 1;
                let s = self.bufs.vcs[base + li];
                if s.next > t {
                    continue;
                }
                let route = s.route;
                let req = route & !in_use;
                if req != 0 {
                    self.scratch_va.push((li as u32, req));
                }
                if speculative {
                    let i = c.port_of[li & 127] as usize & 7;
                    let vc = c.vc_of[li & 127];
                    let mut ports = route;
                    while ports != 0 {
                        let o = c.port_of[ports.trailing_zeros() as usize & 127] as usize & 7;
                        ports &= !(((1u128 << v) - 1) << (o * v));
                        // A speculative grant sends in this cycle too, so
                        // its output link must be able to take a flit
                        // (slow wafer-crossing links), as for ACTIVE VCs.
                        if !fast_links
                            && !c.batched
                            && !self.timing[lr * PORTS + o]
                                .out
                                .can_send(t + sad - 1 + xd_od)
                        {
                            continue;
                        }
                        if c.shared_spec {
                            // BookSim2's `spec_check_elig` and
                            // `spec_check_cred`: only towards a free
                            // output VC of the route on this port that
                            // has credit.
                            let mut free = route & (((1u128 << v) - 1) << (o * v)) & !in_use;
                            let mut credit = false;
                            while free != 0 {
                                let ovc = free.trailing_zeros() as usize;
                                free &= free - 1;
                                if self.credits[base + ovc] > 0 {
                                    credit = true;
                                    break;
                                }
                            }
                            if !credit {
                                continue;
                            }
                        }
                        if spec_req[i] >> o & 1 == 0
                            || supersedes(
                                vc,
                                0,
                                spec_vc[i][o],
                                0,
                                self.sw_rr
                                    [(lr * PORTS + i) * nlev + c.vc_lvl[vc as usize] as usize],
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
        }

        // VC allocation (evaluated on the state at the start of the cycle).
        self.scratch_grants.clear();
        if !self.scratch_va.is_empty() {
            self.va[lr].allocate(&self.scratch_va, 0, 0, &mut self.scratch_grants);
        }
        // Commit VC allocation. (Before switch allocation, which reads none
        // of what this writes: the output VCs granted here were free at the
        // start of the cycle, the ones switching flits below were held, and
        // only speculative grants, checked after this, look at the result.)
        let gbase = (r * pv) as u32;
        for &(li, oi) in &self.scratch_grants {
            let g = base + li as usize;
            let bit = 1u128 << oi;
            let b = &mut self.bits[lr];
            debug_assert!(b.ovc_in_use & bit == 0);
            b.ovc_in_use |= bit;
            // Tail-sent marks are only ever set with `wait_tail` or atomic
            // output VCs; otherwise the word is zero and is not touched.
            if c.wait_tail || c.atomic_ovc != 0 {
                b.ovc_tail_sent &= !bit;
            }
            let (w, bit) = RtBits::at(li as usize);
            b.active[w] |= bit;
            self.owner[base + oi as usize] = gbase + li;
            self.bufs.vcs[g].out = oi as u8;
            self.bufs.vcs[g].next = t + vad;
        }
        // VCs that asked and got nothing retry after the allocator's delay.
        if vad > 1 {
            for &(li, _) in &self.scratch_va {
                let g = base + li as usize;
                if self.bits[lr].stage(li as usize) == VC_ALLOC {
                    self.bufs.vcs[g].next = t + vad;
                }
            }
        }

        // Switch allocation, one pass per priority level, then speculation.
        // Every pass excludes the inputs already matched, so there are at
        // most PORTS grants in all.
        let mut sw = [(0u8, 0u8); PORTS];
        let mut n_sw = 0;
        // With shared speculation, the (input, output) pairs only a
        // speculative request asks for (a non-speculative one displaces
        // it: BookSim2's `Supersedes` with its priority shifted down).
        let mut spec_only = [0u8; 8];
        if c.shared_spec {
            if any_sa || any_spec {
                let mut req = [0u8; PORTS];
                for i in 0..PORTS {
                    spec_only[i] = spec_req[i] & !sa_req[i];
                    req[i] = sa_req[i] | spec_only[i];
                }
                n_sw = self.sa_fixed(c, lr * nlev, &req, 0, 0, &mut sw);
            }
        } else if any_sa {
            if !multi_prio && sa_dup == 0 && c.sa_islip {
                // No output asked for by two inputs: each input gets the
                // output its iSLIP accept pointer picks (what allocate_fixed
                // would give, without the request scan).
                // Without speculation the grants are committed at once, in
                // ascending input order as below (one loop over the inputs
                // that asked instead of a test per port and a second loop).
                let mut ins = sa_in;
                while ins != 0 {
                    let i = ins.trailing_zeros() as usize;
                    ins &= ins - 1;
                    let o = self.sa_small[lr * nlev]
                        .grant_uncontested::<PORTS>(i as u32, sa_req[i & 7])
                        as usize;
                    if speculative {
                        sw[n_sw] = (i as u8, o as u8);
                        n_sw += 1;
                    } else {
                        let vc = sa_vc[i & 7][o & 7] as usize;
                        self.switch_flit::<false, B>(t, c, pk, lr, i, o, base + i * v + vc, vc);
                    }
                }
            } else if !multi_prio {
                n_sw = self.sa_fixed(c, lr * nlev, &ports5(&sa_req), 0, 0, &mut sw);
            } else {
                let mut busy_in = 0u8;
                let mut busy_out = 0u8;
                let mut req = [0u8; PORTS];
                for (li, &lvl) in c.prio_levels.iter().enumerate() {
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
                    n_sw +=
                        self.sa_fixed(c, lr * nlev + li, &req, busy_in, busy_out, &mut sw[start..]);
                    for &(i, o) in &sw[start..n_sw] {
                        busy_in |= 1 << i;
                        busy_out |= 1 << o;
                    }
                }
            }
        }
        let sa_end = n_sw;
        if any_spec && !c.shared_spec {
            let mut busy_in = 0u8;
            let mut busy_out = 0u8;
            for &(i, o) in &sw[..sa_end] {
                busy_in |= 1 << i;
                busy_out |= 1 << o;
            }
            n_sw += self.sa_fixed(
                c,
                lr * nlev,
                &ports5(&spec_req),
                busy_in,
                busy_out,
                &mut sw[sa_end..],
            );
        }

        // Commit switch allocation.
        for (k, &(gi, go)) in sw[..n_sw].iter().enumerate() {
            let (i, o) = (gi as usize & 7, go as usize & 7);
            let speculative_grant = if c.shared_spec {
                spec_only[i] >> o & 1 == 1
            } else {
                k >= sa_end
            };
            let vc = if speculative_grant {
                spec_vc[i][o] as usize
            } else {
                sa_vc[i][o] as usize
            };
            let g = base + i * v + vc;
            if speculative_grant {
                // Valid only if this cycle's VC allocation gave the head an
                // output VC on this port with a free buffer slot.
                if self.bits[lr].stage(g - base) != ACTIVE
                    || c.port_of[self.bufs.vcs[g].out as usize & 127] as usize != o
                    || self.credits[base + self.bufs.vcs[g].out as usize] == 0
                {
                    if c.shared_spec {
                        // BookSim2 moves the input's round-robin VC offset
                        // past a granted VC when it reads the grant, before
                        // it learns that the speculation failed.
                        let lvl = c.vc_lvl[vc] as usize;
                        self.sw_rr[(lr * PORTS + i) * nlev + lvl] =
                            (if vc + 1 == v { 0 } else { vc + 1 }) as u8;
                    }
                    continue;
                }
            }
            self.switch_flit::<false, B>(t, c, pk, lr, i, o, g, vc);
        }
    }

    /// The default pipeline's step of a router whose flits are all in one
    /// input VC (most router visits at low load), with an iSLIP switch
    /// allocator: that VC's request, if it makes one, is uncontested, so
    /// the step is the uncontested grant without the scan's set-up. Returns
    /// whether the step is done: false for a router with flits in several
    /// VCs or a head due in VC allocation, which take
    /// [`Part::router_step_simple`]. (It switches with [`Part::switch_flit`],
    /// not with the simple step's windows, whose set-up costs a visit of
    /// one flit more than their cheaper reads save: callgrind,
    /// docs/performance.md "Router windows".)
    #[inline(always)]
    fn single_vc_step<const B: u8>(&mut self, t: u64, c: &Consts, pk: &Packets, lr: usize) -> bool {
        let base = lr * c.pv;
        let RtBits { work, active, .. } = self.bits[lr];
        // A router is stepped only while it holds flits (its `router_on`
        // bit is cleared with its last `work` bit). Were it stepped
        // without, `li` below would be 64, a record past the router's
        // VCs; the VC-allocation path tests `work` before it uses that
        // record. (A test here, on every visit, cost 1% of the
        // instructions at low load.)
        debug_assert!(work[0] != 0, "a router stepped without flits");
        if c.sa_islip && work[0] & work[0].wrapping_sub(1) == 0 {
            let li = work[0].trailing_zeros() as usize;
            let g = base + li;
            let s = self.bufs.vcs[g];
            if work[0] & active[0] != 0 {
                // An ACTIVE VC holding flits may always switch:
                // it was last granted (VC or switch) before this cycle,
                // with delays of 1 (see the scan).
                debug_assert!(s.next <= t);
                let oi = s.out as usize;
                if self.credits[base + oi] == 0 {
                    return true;
                }
                let o = c.port_of[oi & 127] as usize & 7;
                let i = c.port_of[li & 127] as usize & 7;
                let vc = c.vc_of[li & 127] as usize;
                let granted = self.sa_small[lr].grant_uncontested::<PORTS>(i as u32, 1 << o);
                debug_assert_eq!(granted as usize, o);
                self.switch_flit::<true, B>(t, c, pk, lr, i, o, g, vc);
                return true;
            }
            // A head in VC allocation, alone: no switch request this cycle
            // (VC grants are committed after the scan), so the step is its
            // VC allocation.
            if s.next > t || work[0] == 0 {
                return true;
            }
            let req = s.route & !self.bits[lr].ovc_in_use;
            if req != 0 {
                self.scratch_grants.clear();
                self.va[lr].allocate(&[(li as u32, req)], 0, 0, &mut self.scratch_grants);
                for &(li, oi) in &self.scratch_grants {
                    grant_ovc_simple(&mut self.bits[lr], &mut self.bufs.vcs[g], li, oi, t);
                }
            }
            return true;
        }
        false
    }

    /// The router step of the default pipeline ([`Consts::simple`]): what
    /// [`Part::router_step`] does with its delays and flags as constants,
    /// on one window per per-router array (`WIN_VCS`, `WIN_PORTS`) taken
    /// once, so that neither the scan nor the switch looks up a vector or
    /// checks a bound again after each store (see "Router windows" in
    /// docs/performance.md).
    #[inline(always)]
    fn router_step_simple<const B: u8>(&mut self, t: u64, c: &Consts, pk: &Packets, lr: usize) {
        let v = c.v;
        let pv = c.pv;
        let base = lr * pv;
        let r = self.r0 + lr;
        let Part {
            id,
            r0,
            nbands,
            bufs,
            bits,
            va,
            sa,
            sa_small,
            sw_rr,
            credits,
            links,
            wheel,
            cwheel,
            outbox,
            cyc,
            progressed,
            link_flits,
            va_rows,
            scratch_grants,
            rings,
            ring_on,
            ..
        } = self;
        let bits = &mut bits[lr];
        let work = bits.work[0];
        let active = bits.active[0];
        let in_use = bits.ovc_in_use;
        if work == 0 {
            return;
        }
        let mut sw = Switch {
            t,
            c,
            pk,
            r,
            lr,
            win: bufs.window::<WIN_VCS>(base),
            cr: (&mut credits[base..base + WIN_VCS])
                .try_into()
                .expect("WIN_VCS credits"),
            rr: (&mut sw_rr[lr * PORTS..lr * PORTS + WIN_PORTS])
                .try_into()
                .expect("WIN_PORTS offsets"),
            lk: (&mut links[lr * PORTS..lr * PORTS + WIN_PORTS])
                .try_into()
                .expect("WIN_PORTS links"),
            bits,
            link_flits,
            cyc,
            progressed,
            sched: Sched {
                id: *id,
                r0: *r0,
                nbands: *nbands,
                wheel,
                cwheel,
                outbox,
                #[cfg(debug_assertions)]
                now: t,
            },
            ring: if B == 3 {
                Some(RingRefs {
                    rings: (&mut rings[..]).try_into().expect("BAND ring records"),
                    on: ring_on,
                })
            } else {
                None
            },
        };
        // The switch requests as bits `input * 8 + output`.
        let mut rq = 0u64;
        // ACTIVE VCs holding flits: switch requests. Such a VC may always
        // ask: its last grant (of its output VC, or of the switch for its
        // previous flit) set `next` to that cycle plus 1, and a flit
        // arriving in an empty ACTIVE VC sets it to at most the arrival
        // cycle. One priority level, links always free: per (input,
        // output) one request bit in `rq`; which of the input's VCs
        // switches is chosen after the allocation (`pick` below), so that
        // the scan carries no dependence through memory from one VC to the
        // next.
        let act0 = work & active;
        let mut act = act0;
        while act != 0 {
            let li = act.trailing_zeros() as usize;
            act &= act - 1;
            let s = &sw.win.vcs[li & (WIN_VCS - 1)];
            debug_assert!(s.next <= t);
            let oi = s.out as usize;
            let ok = sw.cr[oi & (WIN_VCS - 1)] > 0;
            let o = c.port_of[oi & 127] as usize & 7;
            let i = c.port_of[li & 127] as usize & 7;
            rq |= (ok as u64) << (i * 8 + o);
        }
        // The VC of input `i` that switches to output `o`: of its VCs that
        // asked for `o`, the first in round-robin order from the input's
        // offset (BookSim's `supersedes` for one level: the smallest
        // distance). Read before the input's own switch; earlier inputs'
        // switches touch none of what it reads (their output VCs are
        // theirs, and VC grants went to VCs outside `act0`).
        let pick = |sw: &Switch, i: usize, o: usize| -> usize {
            let mine = act0 >> (i * v) & ((1u64 << v) - 1);
            let off = sw.rr[i & 7] as usize;
            // VCs from the offset on, then those below it.
            let mut order = (mine >> off) | (mine & ((1u64 << off) - 1)) << (v - off);
            while order != 0 {
                let r = order.trailing_zeros() as usize;
                order &= order - 1;
                let vc = if r + off >= v { r + off - v } else { r + off };
                let s = &sw.win.vcs[(i * v + vc) & (WIN_VCS - 1)];
                let oi = s.out as usize;
                if c.port_of[oi & 127] as usize & 7 == o && sw.cr[oi & (WIN_VCS - 1)] > 0 {
                    return vc;
                }
            }
            unreachable!("a switch grant without a requesting VC")
        };
        // VCs in VC allocation (holding flits, not ACTIVE): their
        // requests in `va_rows[..n_va]`. The first one (at most one in most
        // visits) without a branch on whether there is one or whether it
        // asks: the loop's exit and the `next` test below were among the
        // most mispredicted branches (cachegrind, session 10). Without one,
        // the record read is the lowest busy VC's, which the scan has just
        // read, and the request is masked out.
        let mut alloc = work & !active;
        let li = if alloc != 0 { alloc } else { work }.trailing_zeros() as usize;
        let s = &sw.win.vcs[li & (WIN_VCS - 1)];
        let asks = (alloc != 0) & (s.next <= t);
        let req = s.route & !in_use & 0u128.wrapping_sub(asks as u128);
        va_rows[0] = (li as u32, req);
        let mut n_va = (req != 0) as usize;
        alloc &= alloc.wrapping_sub(1);
        while alloc != 0 {
            let li = alloc.trailing_zeros() as usize;
            alloc &= alloc - 1;
            let s = &sw.win.vcs[li & (WIN_VCS - 1)];
            if s.next > t {
                continue;
            }
            let req = s.route & !in_use;
            if req != 0 {
                va_rows[n_va & (WIN_VCS - 1)] = (li as u32, req);
                n_va += 1;
            }
        }
        debug_assert!(v < 16, "Consts::simple: 5 ports x V <= 64 VCs");
        let sa_req = rq.to_le_bytes();
        let sa_in = nonzero_bytes(rq);
        // Outputs asked for by some input, and by two or more inputs. Two
        // inputs can only ask for one output if two inputs asked (rare at
        // low load, where a router visit is mostly one flit).
        let mut sa_seen = 0u8;
        let mut sa_dup = 0u8;
        if sa_in & sa_in.wrapping_sub(1) != 0 {
            for &m in &sa_req[..PORTS] {
                sa_dup |= sa_seen & m;
                sa_seen |= m;
            }
        }

        // VC allocation (evaluated on the state at the start of the cycle),
        // committed before switch allocation, which reads none of what it
        // writes (the output VCs granted here were free at the start of
        // the cycle, the ones switching flits below were held).
        scratch_grants.clear();
        if n_va != 0 {
            va[lr].allocate(&va_rows[..n_va], 0, 0, scratch_grants);
        }
        for &(li, oi) in scratch_grants.iter() {
            let s = &mut sw.win.vcs[li as usize & (WIN_VCS - 1)];
            grant_ovc_simple(sw.bits, s, li, oi, t);
        }

        // Switch allocation.
        if rq == 0 {
            return;
        }
        if sa_dup == 0 && c.sa_islip {
            // No output asked for by two inputs: each input gets the output
            // its iSLIP accept pointer picks (what allocate_fixed would
            // give, without the request scan), committed at once in
            // ascending input order.
            let mut ins = sa_in;
            while ins != 0 {
                let i = ins.trailing_zeros() as usize;
                ins &= ins - 1;
                let o = sa_small[lr].grant_uncontested::<PORTS>(i as u32, sa_req[i & 7]) as usize;
                let vc = pick(&sw, i, o);
                sw.switch::<B>(i, o, i * v + vc, vc);
            }
        } else {
            let mut grants = [(0u8, 0u8); PORTS];
            let req = ports5(&sa_req);
            let n = if c.sa_islip {
                sa_small[lr].allocate_fixed::<PORTS>(c.sa_iters, &req, 0, 0, &mut grants)
            } else {
                sa[lr].allocate_fixed(&req, 0, 0, &mut grants)
            };
            for &(gi, go) in &grants[..n] {
                let (i, o) = (gi as usize & 7, go as usize & 7);
                let vc = pick(&sw, i, o);
                sw.switch::<B>(i, o, i * v + vc, vc);
            }
        }
    }

    /// Switch allocation by allocator `k` (`lr * nlev + level`), whichever
    /// kind it is: [`Allocator::allocate_fixed`].
    #[inline]
    fn sa_fixed(
        &mut self,
        c: &Consts,
        k: usize,
        req: &[u8; PORTS],
        busy_in: u8,
        busy_out: u8,
        out: &mut [(u8, u8)],
    ) -> usize {
        if c.sa_islip {
            self.sa_small[k].allocate_fixed::<PORTS>(c.sa_iters, req, busy_in, busy_out, out)
        } else {
            self.sa[k].allocate_fixed(req, busy_in, busy_out, out)
        }
    }

    /// Switch the front flit of input VC `g` (VC `vc` of input port `i`,
    /// router `lr`) to output port `o`. `D`: the default pipeline
    /// ([`Part::single_vc_step`]; its delays are then constants), else
    /// [`Part::router_step`]'s configurations; the simple step's windows
    /// have their own copy, [`Switch::switch`]. Inlined into its call sites
    /// (a call costs about 20 instructions per switched flit: callgrind).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn switch_flit<const D: bool, const B: u8>(
        &mut self,
        t: u64,
        c: &Consts,
        pk: &Packets,
        lr: usize,
        i: usize,
        o: usize,
        g: usize,
        vc: usize,
    ) {
        let v = c.v;
        let sad = if D { 1 } else { c.sad };
        let xd_od = if D { 1 } else { c.xd_od };
        let nlev = if D { 1 } else { c.nlev };
        let r = self.r0 + lr;
        let base = lr * c.pv;
        let (f, left) = self.bufs.pop_len(g).expect("switch grant for an empty VC");
        let dep = t + sad - 1;
        // First everything this writes in the router's own state, then the
        // two items sent: a store into a wheel makes the compiler reload
        // every vector's address it uses after it, so the input VC's
        // record, the masks and the counters come before.
        //
        // Next state of the input VC: empty (its work bit cleared, without
        // a branch: whether the buffer emptied is not predictable), the
        // next flit of the packet in switch allocation from the next cycle,
        // or after a tail the next packet's head routed now and in VC
        // allocation after the routing delay (as in `flit_arrives`). A tail
        // ends the ACTIVE stage (IDLE if the VC emptied, else VC allocation
        // for the next head: `RtBits`) and frees its output VC. An IDLE
        // VC's `next` is never read. (The tail test stays a branch: the
        // compiler made one of every branch-free form tried, a product and
        // a mask included; cachegrind, session 5.)
        let empty = left == 0;
        let tail = f.is_tail();
        let oi = {
            let s = &mut self.bufs.vcs[g];
            s.next = t + sad;
            s.out as usize
        };
        if tail && !empty {
            let nf = self.bufs.front(g).expect("non-empty");
            // The head behind the tail is queued for routing in this
            // cycle's update, so its routing starts next cycle at the
            // earliest; with batched stages, with the batch it joins.
            let route_from = if !D && c.batched && c.rd > 0 {
                batch_start(&mut self.batches, lr, 0, t + sad, c.rd)
            } else {
                t + sad
            };
            let s = &mut self.bufs.vcs[g];
            s.route = Self::compute_route(c, pk, r, nf.pkt());
            s.next = route_from + if D { 1 } else { c.rd };
        }
        let x = g - base;
        let w = if D { 0 } else { (x >> 6) & 1 };
        let b = &mut self.bits[lr];
        if D {
            // Without branches: tails are not predictable. (With `D`
            // output VC indices are below 64: a 64-bit shift.)
            b.ovc_in_use &= !(((tail as u64) << (oi & 63)) as u128);
        } else if tail {
            let bit = 1u128 << oi;
            if c.wait_tail || c.atomic_ovc & bit != 0 {
                b.ovc_tail_sent |= bit;
            } else {
                b.ovc_in_use &= !bit;
            }
        }
        b.work[w] &= !((empty as u64) << (x & 63));
        b.active[w] &= !((tail as u64) << (x & 63));
        // Downstream buffer state.
        self.credits[base + oi] -= 1;
        let lvl = if D { 0 } else { c.vc_lvl[vc] as usize };
        self.sw_rr[(lr * PORTS + i) * nlev + lvl] = (if vc + 1 == v { 0 } else { vc + 1 }) as u8;
        let ovc = c.vc_of[oi & 127];
        // Classes own disjoint VC ranges: the output VC gives the class.
        // (Counted per output VC instead, the counters took four times the
        // memory, and on 32×32 at 0.01 their misses were 8% of all L2
        // misses: cachegrind, session 7.)
        debug_assert_eq!(
            c.vc_class[ovc as usize & 31],
            pk[f.pkt() as usize].class,
            "an output VC outside its packet's class"
        );
        let lo = &mut self.links[lr * PORTS + o];
        if c.nclasses == 1 {
            lo.flits += 1;
        } else {
            let class = c.vc_class[ovc as usize & 31] as usize;
            self.link_flits[(lr * PORTS + o) * c.nclasses + class] += 1;
        }
        let lo = *lo;
        let li = self.links[lr * PORTS + i];
        self.cyc.flit_hops += (o != LOCAL) as u64;
        self.progressed = true;
        // Credit back upstream for the freed slot.
        // Credit links are never checked for bandwidth (one credit per
        // input port per cycle), so with `D` only their arrival is needed.
        let a = if D {
            dep + li.cred_delay as u64
        } else {
            self.timing[lr * PORTS + i].cred.send(dep)
        };
        if B == 3 {
            self.schedule_credit::<B>(c, a, li.cred_code + vc as u32, i == LOCAL, li.cred_part);
            let a = dep + xd_od + lo.out_delay as u64;
            if o == LOCAL {
                let (target, to) = (lo.out_target, lo.out_part);
                self.schedule::<B>(
                    c,
                    a,
                    Ev {
                        target,
                        vc: ovc,
                        flit: f,
                    },
                    to,
                );
            } else {
                let dn = (lo.out_target >> 16) as usize;
                let li2 = (lo.out_target & 255) as usize + ovc as usize;
                let s = ring_slot(a, t);
                let rec = &mut self.rings[dn];
                debug_assert_eq!(rec.arr[s] >> (li2 - ovc as usize) & ((1 << c.v) - 1), 0);
                rec.arr[s] |= 1 << (li2 & 63);
                rec.flit[s][(lo.out_target >> 8) as usize & 7] = f;
                self.ring_on[s][(dn >> 6) & 1] |= 1 << (dn & 63);
            }
            return;
        }
        self.schedule_credit::<B>(c, a, li.cred_code + vc as u32, i == LOCAL, li.cred_part);
        // With `D` every flit link takes one flit per cycle and is never
        // checked (`Consts::fast_links`): only the arrival is needed.
        let a = if D {
            dep + xd_od + lo.out_delay as u64
        } else if c.batched {
            // The flit joins the crossbar's batch from the next cycle on
            // (BookSim2's `_SWAllocUpdate` queues it after
            // `_SwitchEvaluate`), leaves the crossbar with it, and waits
            // in its output's queue for the link.
            let from = batch_start(&mut self.batches, lr, 1, dep + 1, c.xd);
            // (Its last crossbar cycle is `from + xd − 1`; then the
            // output delay.)
            self.timing[lr * PORTS + o]
                .out
                .send_queued(from + c.xd_od - 1)
        } else {
            self.timing[lr * PORTS + o].out.send(dep + xd_od)
        };
        let (target, to) = (lo.out_target, lo.out_part);
        self.schedule::<B>(
            c,
            a,
            Ev {
                target,
                vc: ovc,
                flit: f,
            },
            to,
        );
    }
}

/// One router's state as the simple router step holds it
/// ([`Part::router_step_simple`]): windows of its per-router arrays, its
/// masks, and where its items go.
struct Switch<'a, 'c, 'p> {
    t: u64,
    c: &'c Consts,
    pk: &'c Packets,
    /// Global router id.
    r: usize,
    /// Part-local router id.
    lr: usize,
    win: Window<'a, WIN_VCS>,
    /// Credits of the router's output VCs.
    cr: &'a mut [u16; WIN_VCS],
    /// Round-robin VC offset per input port.
    rr: &'a mut [u8; WIN_PORTS],
    lk: &'a mut [PortLinks; WIN_PORTS],
    bits: &'a mut RtBits,
    link_flits: &'a mut [u64],
    cyc: &'a mut Counters,
    progressed: &'a mut bool,
    sched: Sched<'a>,
    /// Ring mode's state (`B = 3`), else `None`.
    ring: Option<RingRefs<'p>>,
}

impl Switch<'_, '_, '_> {
    /// Switch the front flit of input VC `li` (VC `vc` of input port `i`)
    /// to output port `o`: [`Part::switch_flit`] with the default
    /// pipeline's delays (every one 1 cycle).
    #[inline(always)]
    fn switch<const B: u8>(&mut self, i: usize, o: usize, li: usize, vc: usize) {
        const M: usize = WIN_VCS - 1;
        let (t, c) = (self.t, self.c);
        let v = c.v;
        let (f, left) = self.win.pop_len(li).expect("switch grant for an empty VC");
        // As in `switch_flit`: the router's own state first, then the two
        // items sent.
        let empty = left == 0;
        let tail = f.is_tail();
        let oi = {
            let s = &mut self.win.vcs[li & M];
            s.next = t + 1;
            s.out as usize
        };
        if tail && !empty {
            let nf = self.win.front(li).expect("non-empty");
            let s = &mut self.win.vcs[li & M];
            s.route = Part::compute_route(c, self.pk, self.r, nf.pkt());
            s.next = t + 2;
        }
        let b = &mut *self.bits;
        b.ovc_in_use &= !(((tail as u64) << (oi & 63)) as u128);
        b.work[0] &= !((empty as u64) << (li & 63));
        b.active[0] &= !((tail as u64) << (li & 63));
        self.cr[oi & M] -= 1;
        self.rr[i & 7] = (if vc + 1 == v { 0 } else { vc + 1 }) as u8;
        let ovc = c.vc_of[oi & 127];
        debug_assert_eq!(
            c.vc_class[ovc as usize & 31],
            self.pk[f.pkt() as usize].class,
            "an output VC outside its packet's class"
        );
        let lo = &mut self.lk[o & 7];
        if c.nclasses == 1 {
            lo.flits += 1;
        } else {
            let class = c.vc_class[ovc as usize & 31] as usize;
            self.link_flits[(self.lr * PORTS + o) * c.nclasses + class] += 1;
        }
        let lo = *lo;
        let lin = self.lk[i & 7];
        self.cyc.flit_hops += (o != LOCAL) as u64;
        *self.progressed = true;
        if B == 3 {
            self.sched.credit::<B>(
                c,
                t + lin.cred_delay as u64,
                lin.cred_code + vc as u32,
                i == LOCAL,
                lin.cred_part,
            );
            let rg = self.ring.as_mut().expect("ring mode");
            let a = t + 1 + lo.out_delay as u64;
            if o == LOCAL {
                self.sched.flit::<B>(
                    c,
                    a,
                    Ev {
                        target: lo.out_target,
                        vc: ovc,
                        flit: f,
                    },
                    lo.out_part,
                );
            } else {
                let dn = (lo.out_target >> 16) as usize;
                let li2 = (lo.out_target & 255) as usize + ovc as usize;
                let s = ring_slot(a, t);
                let rec = &mut rg.rings[dn & (BAND - 1)];
                // One flit a cycle on each link.
                debug_assert_eq!(rec.arr[s] >> (li2 - ovc as usize) & ((1 << v) - 1), 0);
                rec.arr[s] |= 1 << (li2 & 63);
                rec.flit[s][(lo.out_target >> 8) as usize & 7] = f;
                rg.on[s][(dn >> 6) & 1] |= 1 << (dn & 63);
            }
            return;
        }
        self.sched.credit::<B>(
            c,
            t + lin.cred_delay as u64,
            lin.cred_code + vc as u32,
            i == LOCAL,
            lin.cred_part,
        );
        self.sched.flit::<B>(
            c,
            t + 1 + lo.out_delay as u64,
            Ev {
                target: lo.out_target,
                vc: ovc,
                flit: f,
            },
            lo.out_part,
        );
    }
}

/// BookSim2's batched stage (iq_router.cpp, `_RouteEvaluate` and
/// `_SwitchEvaluate`): a router's routing stage, and its crossbar, is one
/// queue whose evaluation gives every waiting item (time −1) the
/// completion time `now + delay − 1`, but stops at the first item that
/// already has a time; the update removes the items whose time has come.
/// So the waiting items start together, in the first cycle after the
/// batch ahead of them has completed. `start` is the cycle the stage's
/// latest batch starts (0: none yet; it completes `d − 1` cycles later),
/// `e ≥ 1` the first cycle in which the new item can be evaluated and
/// `d ≥ 1` the stage's delay; returns the cycle the item's batch starts.
/// Items come in non-decreasing `e`, so a batch not yet started when an
/// item comes (`start ≥ e`) is the one it joins. With `d = 1` every batch
/// completes in the cycle it starts, and an item starts in cycle `e`: a
/// pipelined stage.
#[inline]
fn stage_batch(start: &mut u64, e: u64, d: u64) -> u64 {
    debug_assert!(d >= 1 && e >= 1);
    if *start >= e {
        return *start;
    }
    let first = if *start == 0 { e } else { e.max(*start + d) };
    *start = first;
    first
}

/// The touch pass before [`Part::process_arrivals`]: read the ring length
/// of every flit of `evs` (a bucket of arrivals) in its VC record
/// (`port0`: the part's first input port, `v`: VCs per port).
#[inline(never)]
fn touch_records(bufs: &VcBuffers, evs: &[Ev], port0: u32, v: usize) {
    let mut acc = 0usize;
    for ev in evs {
        acc ^= bufs.len((ev.target - port0) as usize * v + ev.vc as usize);
    }
    std::hint::black_box(acc);
}

/// Sort a cycle's ejections by node, out of line (only configurations with
/// batched stages need it; see [`batch_start`]).
#[cold]
#[inline(never)]
fn sort_by_target(evs: &mut [Ev]) {
    evs.sort_unstable_by_key(|e| e.target);
}

/// [`stage_batch`] on stage `k` (0: routing, 1: crossbar) of router `lr`,
/// out of line: only configurations with batched stages call it, and
/// inlined into the arrival loop it made every arrival dearer (callgrind,
/// 8×8 0.3: +2.4% instructions).
#[cold]
#[inline(never)]
fn batch_start(batches: &mut [[u64; 2]], lr: usize, k: usize, e: u64, d: u64) -> u64 {
    stage_batch(&mut batches[lr][k], e, d)
}

/// Commit the grant of output VC `oi` to input VC `li` (record `s`) of a
/// router with masks `b`, in cycle `t` of the default pipeline: the
/// output VC is in use, the input VC ACTIVE and may ask for the switch
/// from the next cycle.
#[inline(always)]
fn grant_ovc_simple(b: &mut RtBits, s: &mut VcState, li: u32, oi: u32, t: u64) {
    let bit = 1u128 << oi;
    debug_assert!(b.ovc_in_use & bit == 0);
    b.ovc_in_use |= bit;
    b.active[0] |= 1 << (li & 63);
    s.out = oi as u8;
    s.next = t + 1;
}

/// The first `PORTS` entries of a per-port request array.
#[inline]
fn ports5(a: &[u8; 8]) -> [u8; PORTS] {
    std::array::from_fn(|k| a[k])
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_classes;
    use crate::topology::MeshSpec;
    use wafernoc_router::RouterConfig;

    /// A k×k mesh with `vcs` VCs of `buf` flits, the rest default.
    fn square(k: usize, vcs: usize, buf: usize) -> NetworkConfig {
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
            ..Default::default()
        }
    }

    /// A packet created in cycle 0.
    fn packet(src: u32, dst: u32, size: u16, class: u8, tag: u64) -> NewPacket {
        NewPacket {
            src,
            dst,
            size,
            class,
            ctime: 0,
            tag,
        }
    }

    /// A 4×4 network (2 VCs × 4 flits) with three 4-flit packets queued at
    /// every node, to nodes `15 − src`, `src + 5` and `src + 9` (mod 16),
    /// tagged with their source.
    fn loaded_4x4() -> Network {
        let mut n = Network::new(square(4, 2, 4)).unwrap();
        for src in 0..16u32 {
            for dst in [15 - src, (src + 5) % 16, (src + 9) % 16] {
                n.enqueue(packet(src, dst, 4, 0, u64::from(src))).unwrap();
            }
        }
        n
    }

    /// `check_invariants` (which the property tests call every cycle)
    /// accepts a network in the middle of a run and rejects nine kinds of
    /// corrupted state, each named: an output VC's and an injection VC's
    /// credits above the depth, an interface's queued-packet count that
    /// is not its queues' length, an interface with queued packets not
    /// marked active, a write to a window's padding, a work
    /// bit on an empty VC, a VC in VC allocation without a head at its
    /// front, an ACTIVE VC on a free output VC, and two credits for one
    /// port in one cycle (the report names the port). (Its other checks,
    /// interleaved packets, conservation and ring marks, are not
    /// corrupted here; the property tests' runs with
    /// an input that sends two flits in a cycle, an engine mutant, fail on
    /// the credit check.)
    #[test]
    fn invariant_checker_catches_corruption() {
        // A network with flits in flight.
        let busy = || {
            // Still injecting at cycle 10, when credits are also on their
            // way back to routers.
            let mut n = loaded_4x4();
            for _ in 0..10 {
                n.step().unwrap();
                n.check_invariants().unwrap();
            }
            n
        };
        let corrupt = |f: &dyn Fn(&mut Part, &Consts), needle: &str| {
            let n = busy();
            {
                let mut p = n.core.lock(0);
                f(&mut p, &n.core.c);
            }
            let e = n.check_invariants().unwrap_err();
            assert!(e.contains(needle), "`{e}` does not name `{needle}`");
        };
        corrupt(&|p, c| p.credits[0] = c.depth + 1, "credits > depth");
        corrupt(
            &|p, c| {
                let lg = p.nr * c.pv - 1;
                p.credits[lg + 1] = c.depth - 1;
            },
            "padding",
        );
        corrupt(&|p, c| p.ni[0].credits[0] = c.depth + 1, "injection VC");
        // An interface's queued-packet count, and its activity bit.
        let queuing = |p: &Part| p.ni.iter().position(|ni| ni.queued > 0).unwrap();
        corrupt(
            &|p, _| {
                let n = queuing(p);
                p.ni[n].queued += 1;
            },
            "queued packets counted",
        );
        corrupt(
            &|p, _| {
                let n = queuing(p);
                p.ni_on[n / 64] &= !(1 << (n % 64));
            },
            "not marked active",
        );
        corrupt(
            &|p, c| {
                // The work bit of an empty VC.
                let lg = (0..p.nr * c.pv).find(|&lg| p.bufs.len(lg) == 0).unwrap();
                let (w, bit) = RtBits::at(lg % c.pv);
                p.bits[lg / c.pv].work[w] ^= bit;
            },
            "work bit",
        );
        // The stage masks: an ACTIVE VC whose front flit is not a head,
        // made to look as if it were in VC allocation (its active bit
        // cleared); an ACTIVE VC's output VC marked free.
        let active_vc = |p: &Part, c: &Consts, body: bool| {
            (0..p.nr * c.pv)
                .find(|&lg| {
                    p.bits[lg / c.pv].stage(lg % c.pv) == ACTIVE
                        && (!body || !p.bufs.front(lg).unwrap().is_head())
                })
                .expect("the busy network has such a VC")
        };
        corrupt(
            &|p, c| {
                let lg = active_vc(p, c, true);
                let (w, bit) = RtBits::at(lg % c.pv);
                p.bits[lg / c.pv].active[w] &= !bit;
            },
            "in VC allocation without a head",
        );
        corrupt(
            &|p, c| {
                let lg = active_vc(p, c, false);
                let out = p.bufs.vcs[lg].out;
                p.bits[lg / c.pv].ovc_in_use &= !(1u128 << out);
            },
            "is ACTIVE on a free output VC",
        );
        // A second credit in flight for the same router output port, and
        // for the same interface, arriving in the same cycle, for the other
        // VC (`^ 1` flips the VC of both encodings with two VCs: the check
        // is per link, not per VC). The report names the port and router,
        // or the node, the first credit of the slot is for: a router
        // output VC's code is `(lr * PORTS + port) * V + vc`, an
        // interface's `ln << 8 | vc` (the busy network is one part, so
        // local ids are global).
        for kind in [0, 1] {
            let needle = {
                let n = busy();
                let p = n.core.lock(0);
                let x = p.cwheel[kind].iter().find(|s| !s.is_empty()).unwrap()[0] as usize;
                if kind == 0 {
                    let v = n.core.c.v;
                    assert_eq!(v, 2);
                    let link = x / v;
                    format!(
                        "at router output port {} of router {}",
                        link % PORTS,
                        link / PORTS
                    )
                } else {
                    format!("at interface of node {}", x >> 8)
                }
            };
            corrupt(
                &|p, _| {
                    let slot = p.cwheel[kind].iter_mut().find(|s| !s.is_empty()).unwrap();
                    slot.push(slot[0] ^ 1);
                },
                &needle,
            );
        }
    }

    /// A head that asks for output VCs and gets none retries only when
    /// the allocator's answer is due, `vc_alloc_delay` cycles later
    /// (BookSim2 aborts on delays above 1, so there is no reference run).
    /// On a 1×3 row, nodes 0 and 2 each send one 1-flit packet to node 1
    /// at cycle 0: both heads reach router 1 in the same cycle and ask for
    /// its ejection port's two VCs. One-iteration iSLIP has both output
    /// VCs grant the same head, which accepts one, so the other head
    /// loses with a VC still free. It is ejected `vad` cycles after the
    /// winner (it asks again `vad` cycles later, and the port is free by
    /// then), where a retry in the next cycle would give 1 for every
    /// delay. A lone packet takes 2 cycles longer per extra cycle of delay
    /// (two routers).
    #[test]
    fn a_vc_allocation_loser_retries_after_the_delay() {
        let run = |vad: u32, both: bool| {
            let mut cfg = square(1, 2, 4);
            cfg.mesh.cols = 3;
            cfg.router.vc_alloc_delay = vad;
            let mut n = Network::new(cfg).unwrap();
            n.enqueue(packet(0, 1, 1, 0, 0)).unwrap();
            if both {
                n.enqueue(packet(2, 1, 1, 0, 2)).unwrap();
            }
            let mut at = [0u64; 3];
            while !n.is_quiescent() {
                n.step().unwrap();
                for d in n.drain_delivered() {
                    at[d.tag as usize] = d.atime;
                }
            }
            at
        };
        let alone = run(1, false)[0];
        for vad in 1..=4u32 {
            let lone = run(vad, false)[0];
            assert_eq!(lone, alone + 2 * u64::from(vad - 1), "vad {vad}");
            let at = run(vad, true);
            let (first, second) = (at[0].min(at[2]), at[0].max(at[2]));
            assert_eq!(first, lone, "vad {vad}: the winner is not delayed");
            assert_eq!(second, first + u64::from(vad), "vad {vad}: {at:?}");
        }
    }

    /// After a panic in `step_with`'s side work on two threads (caught by
    /// the caller), the network refuses to step again: the workers have
    /// stopped and dropped their hold on the core, and the one-thread path
    /// must not take over and run the cycle a second time.
    #[test]
    fn no_step_after_a_caught_panic_on_two_threads() {
        let mut n = Network::with_threads(square(8, 4, 8), 2).unwrap();
        assert_eq!(n.threads(), 2);
        for src in 0..64u32 {
            n.enqueue(packet(src, 63 - src, 4, 0, 0)).unwrap();
        }
        n.step().unwrap();
        let side = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            n.step_with(|| panic!("side work panics"))
        }));
        assert!(side.is_err());
        // Let the workers see the stop flag and exit.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| n.step()));
        assert!(again.is_err(), "a step after the panic ran");
    }

    /// The 2^30-packet limit of `enqueue`, at its edges (a real table of
    /// 2^30 packets would take about 32 GB): reused free slots do not
    /// count, the limit itself is allowed, one more is refused with the
    /// count, and a count past it cannot wrap around.
    #[test]
    fn packet_table_limit() {
        let max = Flit::MAX_PACKETS as usize;
        assert!(check_slot_count(0, max, 0).is_ok());
        assert!(check_slot_count(max - 10, 10, 0).is_ok());
        assert!(check_slot_count(max, 5, 5).is_ok());
        let e = check_slot_count(max, 6, 5).unwrap_err().to_string();
        assert!(e.contains(&format!("{} packets queued", max + 1)), "{e}");
        assert!(e.contains("2^30") && e.contains("packets"), "{e}");
        assert!(check_slot_count(0, max + 1, 0).is_err());
        assert!(check_slot_count(0, usize::MAX / 2, 0).is_err());
        assert!(check_slot_count(usize::MAX, usize::MAX, 0).is_err());
    }

    /// With a 512 KiB threshold, which the traffic crate's
    /// `large_parts_touch_their_arrivals` sets, the touch pass is on
    /// where that test relies on it (32×32 with 4 VCs on 1 and 2 threads:
    /// 1.25 MiB and 640 KiB of records a thread) and off on 8×8 (80 KiB),
    /// so that test runs the pass; with a 2 MiB one (an L2 of that size)
    /// it is off on 32×32 and on on 64×64 (5 MiB). (This is the only test
    /// of this crate that sets the threshold.)
    #[test]
    fn touch_pass_threshold() {
        let touches = |k: usize, threads: usize| {
            let n = Network::with_threads(square(k, 4, 8), threads).unwrap();
            (0..n.core.parts.len())
                .map(|p| n.core.lock(p).touch)
                .collect::<Vec<bool>>()
        };
        set_touch_threshold(Some(512 << 10));
        assert!(touches(32, 1).iter().all(|&t| t));
        assert!(touches(32, 2).iter().all(|&t| t));
        assert!(touches(8, 1).iter().all(|&t| !t));
        set_touch_threshold(Some(2 << 20));
        assert!(touches(32, 1).iter().all(|&t| !t));
        assert!(touches(32, 2).iter().all(|&t| !t));
        assert!(touches(64, 1).iter().all(|&t| t));
        set_touch_threshold(None);
        assert_eq!(touch_threshold(), l2_bytes());
    }

    /// Cache sizes as Linux's sysfs writes them.
    #[test]
    fn cache_sizes_parse() {
        assert_eq!(parse_cache_size("2048K\n"), Some(2 << 20));
        assert_eq!(parse_cache_size("512K"), Some(512 << 10));
        assert_eq!(parse_cache_size("1M"), Some(1 << 20));
        assert_eq!(parse_cache_size("1G"), Some(1 << 30));
        assert_eq!(parse_cache_size("65536"), Some(65536));
        for bad in ["", "K", "0K", "2048KB", "-1K", "x"] {
            assert_eq!(parse_cache_size(bad), None, "{bad:?}");
        }
        assert!(l2_bytes() > 0);
    }

    /// A network is quiescent only when its last credit is back: not in
    /// the cycle a lone packet arrives (its last hop's credit is still on
    /// the way), but within the credit loop's 5 cycles after; stepping on
    /// changes nothing but the clock.
    #[test]
    fn quiescent_waits_for_the_last_credit() {
        let mut n = Network::new(square(2, 2, 4)).unwrap();
        assert!(n.is_quiescent());
        n.enqueue(packet(0, 3, 1, 0, 0)).unwrap();
        assert!(!n.is_quiescent());
        while n.drain_delivered().next().is_none() {
            n.step().unwrap();
            assert!(n.now() < 100);
        }
        assert!(!n.is_quiescent() && n.packets_outstanding() == 0);
        let arrived = n.now();
        while !n.is_quiescent() {
            n.step().unwrap();
        }
        assert!(n.now() - arrived <= 5, "{} cycles", n.now() - arrived);
        let c = n.counters().clone();
        n.step().unwrap();
        assert!(n.is_quiescent());
        assert_eq!(n.counters(), &c);
    }

    /// `link_flits` counts each flit once per output port it leaves by,
    /// under its class: on a 3×3 mesh with two classes, every ordered pair
    /// of nodes sends one packet at cycle 0 (class and size from the pair,
    /// so that routers hold several VCs with flits at once and take both
    /// the one-VC and the general switch paths), each counted by hand over
    /// its dimension-order route (x first) and its ejection port.
    #[test]
    fn link_flits_count_each_port_and_class() {
        let cfg = NetworkConfig {
            classes: test_classes(&[("a", 1), ("b", 1)]),
            ..square(3, 2, 4)
        };
        let mut n = Network::new(cfg).unwrap();
        let topo = n.topology().clone();
        let port = |from: usize, to: usize| {
            (0..LOCAL)
                .find(|&p| topo.neighbor(from, p) == Some(to))
                .unwrap()
        };
        let mut want = vec![0u64; 9 * PORTS * 2];
        for src in 0..9 {
            for dst in (0..9).filter(|&d| d != src) {
                let (class, size) = ((src + dst) % 2, 1 + (src * 3 + dst) % 4);
                n.enqueue(packet(src as u32, dst as u32, size as u16, class as u8, 0))
                    .unwrap();
                let ((mut x, mut y), (dx, dy)) = (topo.coord(src), topo.coord(dst));
                while (x, y) != (dx, dy) {
                    let (nx, ny) = if x != dx {
                        (if dx > x { x + 1 } else { x - 1 }, y)
                    } else {
                        (x, if dy > y { y + 1 } else { y - 1 })
                    };
                    let (r, next) = (topo.node(x, y), topo.node(nx, ny));
                    want[(r * PORTS + port(r, next)) * 2 + class] += size as u64;
                    (x, y) = (nx, ny);
                }
                want[(dst * PORTS + LOCAL) * 2 + class] += size as u64;
            }
        }
        for _ in 0..500 {
            n.step().unwrap();
        }
        assert!(n.is_quiescent());
        assert_eq!(n.link_flits(), want);
    }

    /// `drop_unmade` drops every queued packet but a front whose head has
    /// left, and counts those with the given tag: node 0 queues five
    /// 4-flit packets (tags 1, 0, 1, 1, 1) in cycle 0; two steps later the
    /// first is being injected, the other four go (three tagged 1, one
    /// not, so counting the others instead would give 1), and only the
    /// first arrives.
    #[test]
    fn drop_unmade_counts_what_it_drops() {
        let mut n = Network::new(square(2, 2, 4)).unwrap();
        for tag in [1, 0, 1, 1, 1] {
            n.enqueue(packet(0, 3, 4, 0, tag)).unwrap();
        }
        n.step().unwrap();
        n.step().unwrap();
        assert!(n.injected_by_node()[0] > 0);
        assert_eq!(n.drop_unmade(1), (4, 3));
        n.check_invariants().unwrap();
        assert_eq!(n.packets_outstanding(), 1);
        let mut got = Vec::new();
        for _ in 0..100 {
            n.step().unwrap();
            n.check_invariants().unwrap();
            got.extend(n.drain_delivered().map(|d| d.tag));
        }
        assert_eq!(got, [1]);
        assert!(n.is_quiescent() && n.packets_outstanding() == 0);
    }

    /// Ring mode needs every router-to-router flit to arrive within the
    /// ring. Two 4×4 wafers, one above the other: the crossing links
    /// (between rows 3 and 4, routers 12–15 and 16–19) lie away from
    /// router 0, yet a crossing latency of 2 or 6 turns ring mode off
    /// where one of 1 (that of the other links; all at a flit a cycle)
    /// keeps it; with the long crossing the run equals the check mode's,
    /// packet by packet. (And a network keeps the configuration it was
    /// made with.)
    #[test]
    fn ring_mode_needs_every_link_short() {
        let two = |cross_latency| NetworkConfig {
            mesh: MeshSpec {
                rows: 4,
                cols: 4,
                wafers_y: 2,
                cross_latency,
                cross_cycles_per_flit: 1,
                ..Default::default()
            },
            ..square(4, 2, 4)
        };
        let ring = |cfg| Network::new(cfg).unwrap().core.lock(0).ring;
        assert!(ring(two(1)));
        assert!(!ring(two(2)) && !ring(two(6)));
        let run = |step_all| {
            let cfg = NetworkConfig { step_all, ..two(6) };
            let mut n = Network::new(cfg.clone()).unwrap();
            assert_eq!(n.config(), &cfg);
            for src in 0..32u32 {
                for dst in [31 - src, (src + 4) % 32, (src + 13) % 32] {
                    n.enqueue(packet(src, dst, 4, 0, u64::from(src * 32 + dst)))
                        .unwrap();
                }
            }
            let mut log = Vec::new();
            while !n.is_quiescent() {
                n.step().unwrap();
                log.extend(n.drain_delivered().map(|d| (d.tag, d.itime, d.atime)));
            }
            log
        };
        let fast = run(false);
        assert_eq!(fast.len(), 96);
        assert_eq!(fast, run(true));
    }

    /// The credit link of a router's input port runs back over the edge
    /// its flits came in by: on 2×2 wafers of 2×2 routers, an input port
    /// facing a wafer crossing returns credits over the crossing latency,
    /// any other over the on-wafer one, each plus `credit_delay`.
    #[test]
    fn credits_return_over_the_edge_they_came_by() {
        let topo = Topology::new(MeshSpec {
            rows: 2,
            cols: 2,
            wafers_x: 2,
            wafers_y: 2,
            link_latency: 2,
            cross_latency: 7,
            ..Default::default()
        })
        .unwrap();
        let rc = RouterConfig {
            credit_delay: 3,
            ..Default::default()
        };
        let mut seen = [0; 2];
        for r in 0..16 {
            for p in 0..LOCAL {
                let Some(nb) = topo.neighbor(r, p) else {
                    continue;
                };
                let (a, b) = (topo.coord(r), topo.coord(nb));
                let crossing = a.0 / 2 != b.0 / 2 || a.1 / 2 != b.1 / 2;
                let want = if crossing { 7 } else { 2 } + 3;
                assert_eq!(port_links(&topo, &rc, r, p).1, want, "router {r} port {p}");
                seen[usize::from(crossing)] += 1;
            }
        }
        assert_eq!(seen, [32, 16]);
    }

    /// A deadlock report taken from a running network (as a driver may,
    /// at a timeout) describes each blocked VC with a real port and VC:
    /// a head in VC allocation none of whose route's output VCs is held
    /// (not routed yet, or all of them free) waits for nothing (`None`),
    /// and an ACTIVE VC, or a head with a held VC on its route, names the
    /// output port and VC it waits on (the first held one), never its
    /// input port (routing is minimal). [`loaded_4x4`], a report every
    /// cycle until all are delivered: both kinds occur, and every output
    /// port is waited on.
    #[test]
    fn a_running_networks_report_names_real_ports() {
        let mut n = loaded_4x4();
        let (mut ports, mut free) = ([0; PORTS], 0);
        while !n.is_quiescent() {
            n.step().unwrap();
            let r = n.deadlock_report();
            assert_eq!(r.blocked.len(), r.blocked_total.min(64));
            for w in &r.blocked {
                match (w.waits_for_port, w.waits_for_vc) {
                    (Some(p), Some(v)) => {
                        assert!(p < PORTS && v < 2, "cycle {}: {w:?}", n.now());
                        // Routing is minimal: no flit leaves by the port
                        // it came in by.
                        assert!(p != w.in_port || p == LOCAL, "cycle {}: {w:?}", n.now());
                        ports[p] += 1;
                    }
                    (None, None) => free += 1,
                    _ => panic!("{w:?}: a port without a VC"),
                }
            }
        }
        // Every port, the ejection port among them, is waited on.
        assert!(
            ports.iter().all(|&k| k > 0) && free > 0,
            "{ports:?}, {free} not"
        );
    }

    /// `enqueue_all` refuses a packet from or to a node outside the
    /// network, of a class it does not have, or of no flits, naming the
    /// key and the packet, and then queues none of the batch (a valid
    /// packet before the bad one included).
    #[test]
    fn enqueue_refuses_impossible_packets() {
        let mut n = Network::new(square(2, 2, 4)).unwrap();
        let cases = [
            (
                packet(4, 0, 1, 0, 0),
                "`node`: packet 4→0 but the network has nodes 0..4",
            ),
            (
                packet(0, 4, 1, 0, 0),
                "`node`: packet 0→4 but the network has nodes 0..4",
            ),
            (
                packet(0, 3, 1, 1, 0),
                "`class`: class 1 but the network has 1 class(es)",
            ),
            (
                packet(0, 3, 0, 0, 0),
                "`packet_size`: a packet has at least one flit",
            ),
        ];
        for (bad, want) in cases {
            let e = n
                .enqueue_all(&[packet(1, 2, 4, 0, 0), bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "`{e}` does not say `{want}`");
            assert_eq!(n.packets_outstanding(), 0, "{want}: a packet was queued");
        }
        n.enqueue_all(&[packet(1, 2, 4, 0, 0), packet(3, 0, 1, 0, 0)])
            .unwrap();
        assert_eq!(n.packets_outstanding(), 2);
    }

    /// `check_config`'s path limit is on `width + height − 1` routers
    /// (hop counts are 16-bit): a 1×65,536 row is refused by it, naming
    /// it, while a 1×65,535 row and a 300×300 mesh (90,000 routers, paths
    /// of 599) pass. The VC guard is on routers × 5 ports × VCs ≤ 2^25:
    /// 1024×1024 routers take 6 VCs (31,457,280), not 7 (36,700,160).
    #[test]
    fn size_limits_are_the_documented_ones() {
        let mesh = |rows, cols, vcs| NetworkConfig {
            mesh: MeshSpec {
                rows,
                cols,
                ..Default::default()
            },
            ..square(1, vcs, 4)
        };
        let err = Network::check_config(&mesh(1, 65_536, 2))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("paths of 65536 routers") && err.contains("16-bit"),
            "{err}"
        );
        for (rows, cols) in [(1, 65_535), (300, 300)] {
            let topo = Network::check_config(&mesh(rows, cols, 2)).expect("within the limits");
            assert_eq!(topo.nodes(), rows * cols);
        }
        assert!(Network::check_config(&mesh(1024, 1024, 6)).is_ok());
        let err = Network::check_config(&mesh(1024, 1024, 7))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("36700160 virtual channels is more than"),
            "{err}"
        );
    }

    /// The L2 is found among sysfs's cache entries by level and type,
    /// skipping the other levels and an instruction-only L2; an
    /// unreadable or missing entry is skipped too.
    #[test]
    fn l2_is_found_by_level_and_type() {
        let dir = std::env::temp_dir().join(format!("wafernoc-l2-{}", std::process::id()));
        let write = |i: usize, level: &str, kind: &str, size: &str| {
            let d = dir.join(format!("index{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        };
        write(0, "1", "Data", "48K");
        write(1, "1", "Instruction", "32K");
        assert_eq!(l2_bytes_in(&dir), None, "no level 2 yet");
        write(2, "2", "Instruction", "64K");
        std::fs::create_dir_all(dir.join("index3")).unwrap(); // no files
        write(4, "2", "Unified", "1280K");
        write(5, "3", "Unified", "49152K");
        assert_eq!(l2_bytes_in(&dir), Some(1280 << 10));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// BookSim2's stage queue with a delay of 2 (iq_router.cpp): an item
    /// queued for cycle 6 starts then and completes in 7; one for 7 waits
    /// for that batch and starts in 8, where one for 8 joins it; one for 9
    /// waits for that batch (done in 9) and starts in 10. With a delay of
    /// 1 every item starts when it comes (a pipelined stage).
    #[test]
    fn stage_batches_follow_booksims_queue() {
        let mut b = [0u64; 2];
        let starts: Vec<u64> = [6, 7, 8, 9, 9, 15]
            .iter()
            .map(|&e| stage_batch(&mut b[0], e, 2))
            .collect();
        assert_eq!(starts, [6, 8, 8, 10, 10, 15]);
        let starts: Vec<u64> = [3, 3, 4, 5, 7]
            .iter()
            .map(|&e| stage_batch(&mut b[1], e, 1))
            .collect();
        assert_eq!(starts, [3, 3, 4, 5, 7]);
    }

    /// `Consts::div_pv` divides exactly: every VC count per router
    /// (5 ports × 1..=25 VCs, the limit being 128 VCs per router), at
    /// and next to multiples of the divisor spread up to `MAX_VCS`.
    #[test]
    fn div_pv_divides_exactly() {
        for v in 1..=25usize {
            let pv = PORTS * v;
            let cfg = NetworkConfig {
                mesh: MeshSpec {
                    rows: 2,
                    cols: 2,
                    ..Default::default()
                },
                router: RouterConfig {
                    num_vcs: v,
                    ..Default::default()
                },
                ..Default::default()
            };
            let n = Network::new(cfg).unwrap();
            let c = &n.core.c;
            assert_eq!(c.pv, pv);
            let mut q = 0;
            while q * pv < MAX_VCS {
                for d in [0, 1, pv - 1] {
                    let x = q * pv + d;
                    if x < MAX_VCS {
                        assert_eq!(c.div_pv(x as u32), x / pv, "{x} / {pv}");
                    }
                }
                q += 1 + q / 7;
            }
            assert_eq!(c.div_pv((MAX_VCS - 1) as u32), (MAX_VCS - 1) / pv);
        }
    }

    /// The dimension-order route table (`Consts::dor_mask`) gives what
    /// `Routing::candidates` gives, for every router, destination and
    /// class, with XY and YX, on a mesh of two wafers with three classes.
    #[test]
    fn dor_table_matches_candidates() {
        for routing in [Routing::Xy, Routing::Yx] {
            let cfg = NetworkConfig {
                mesh: MeshSpec {
                    rows: 5,
                    cols: 7,
                    wafers_x: 2,
                    ..Default::default()
                },
                router: RouterConfig {
                    num_vcs: 6,
                    ..Default::default()
                },
                routing,
                classes: test_classes(&[("a", 1), ("b", 2), ("c", 3)]),
                ..Default::default()
            };
            let n = Network::new(cfg).unwrap();
            let c = &n.core.c;
            assert!(!c.dor_mask.is_empty());
            let nodes = c.topo.nodes();
            let mut pk = Packets::default();
            for dst in 0..nodes {
                for cl in 0..3u8 {
                    let p = Packet {
                        dst: dst as u32,
                        class: cl,
                        ..Default::default()
                    };
                    let slot = pk.put(None, p);
                    for r in 0..nodes {
                        let cl = cl as usize;
                        let want = routing.candidates(
                            &c.topo,
                            r,
                            dst,
                            c.class_lo[cl] as usize,
                            c.class_hi[cl] as usize,
                            c.v,
                        );
                        assert_eq!(
                            Part::compute_route(c, &pk, r, slot),
                            want,
                            "{routing:?}: router {r}, destination {dst}, class {cl}"
                        );
                    }
                }
            }
        }
    }
}
