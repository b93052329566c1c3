//! MoE collectives as closed-loop flit traffic: the TP ring all-reduce
//! (flat or hierarchical), and the MoE dispatch and combine all-to-alls.
//!
//! The `wafernoc-moe` crate says *what* moves (rings, flows, bytes); this
//! module turns it into packets on a [`Network`] and measures each phase.
//!
//! # Network built from a wafer
//! [`network_config`] maps a [`WaferSpec`] to a [`NetworkConfig`]: the mesh
//! is the full device mesh (`rows x cols` per wafer, `wafers_x x wafers_y`
//! wafers), one network cycle is the time one flit takes on an on-wafer link
//! (`cycle_ns = flit_bytes / link_gbps_per_dir`), so on-wafer links move one
//! flit per cycle with a latency of `ceil(hop_latency_ns / cycle_ns)` cycles,
//! and wafer-crossing links take `ceil(link / cross_wafer_gbps)` cycles per
//! flit with `ceil(cross_wafer_latency_ns / cycle_ns)` cycles of latency.
//! Router parameters come from [`NocParams`] (defaults documented there).
//!
//! # Message classes
//! Two classes on disjoint VC sets ([`NocParams::collective_vcs`],
//! [`NocParams::migration_vcs`]): [`CLASS_COLLECTIVE`] (all-reduce, dispatch,
//! combine; priority 1) and [`CLASS_MIGRATION`] (expert-weight copies of the
//! balancer, priority [`NocParams::migration_priority`]: 0 by default, so
//! collective flits win every switch allocation; 1 makes the two classes
//! equals, the ablation of `wafernoc balance --migration-priority 1`). Migration traffic is sent by a [`Background`] beside a
//! phase ([`PhaseRunner::run_with`]); the serving run in [`crate::serving`]
//! uses it.
//!
//! # Schedules and the closed loop
//! A phase is a [`Schedule`]: messages `(src, dst, bytes)` grouped in
//! *chains*. A chain issues its messages in order, each one only once every
//! message it `requires` has been fully delivered. A message is packetised as
//! `ceil(bytes / flit_bytes)` flits in packets of at most
//! [`NocParams::max_packet_flits`] flits; when several messages of one source
//! become ready in the same cycle their packets are enqueued interleaved
//! (one packet of each in turn) so that no destination waits behind
//! another's whole message. Self-sends (`src == dst`) carry no traffic: they
//! complete at once and are counted in [`PhaseStats::local_bytes`].
//!
//! - **Ring all-reduce** ([`allreduce_schedule`]): per TP group of `t`
//!   members and `M` bytes ([`MoeModel::tp_allreduce_bytes`]), `t - 1`
//!   reduce-scatter then `t - 1` all-gather steps; member `j` sends step `s`
//!   (chunk `(j - s) mod t`, then `(j + 1 - s') mod t`) to its ring successor
//!   once it has received step `s - 1` from its predecessor in full. Chunks
//!   are `M / t` bytes (the first `M mod t` chunks one byte more), so every
//!   member sends `2(t-1)/t * M` bytes when `t` divides `M`. Direction per
//!   group from the layout: forward, backward, or both (`bidirectional`: two
//!   independent rings on `ceil(M/2)` and `floor(M/2)` bytes).
//! - **Hierarchical ring** (HER, from [`Layout::hier_ring`]): reduce-scatter on
//!   each wafer's sub-ring (`t_w` members), then a ring all-reduce of each
//!   owned shard among the members at the same sub-ring position on every
//!   wafer (over the cross-wafer links; the wafers in the ring order of the
//!   wafer grid, so consecutive wafers are neighbours), then all-gather on
//!   each sub-ring.
//!   Each stage of a member waits for its previous stage's last receive.
//! - **Dispatch / combine** ([`flows_schedule`]): every flow of the moe
//!   crate's `AllToAll` is one independent message, all ready at phase start;
//!   the phase ends when the last packet is delivered.
//!
//! # Measurement
//! Each phase of [`simulate_layer`] runs alone on a freshly built network and
//! ends in the cycle after its last tail flit is ejected. [`PhaseStats`]
//! holds cycles and ns, bytes, flits, per-link flits of the phase, link utilisation (flits x cycles-per-flit /
//! phase cycles: the busy fraction of a link, 1.0 = saturated) over every
//! directed router-to-router link, and the split into *boundary* links (ends
//! in different tiles of the plan's tile grid, [`Layout::is_boundary_link`])
//! and *intra-tile* links. A *cold* link carried no flit in the phase.
//!
//! # Expert counts below the device count
//! The moe crate requires `N | E` (EP = N). A model with fewer experts than
//! devices (Mixtral-8x22B has 8) or any `E` with `E mod N != 0` is run with
//! `r = lcm(E, N) / E` data-parallel replicas of every expert
//! ([`ExpertReplication`]): the layout is built for `E * r` *virtual*
//! experts, virtual expert `j * E + e` is replica `j` of expert `e` (so
//! replicas are spread over all FTDs, each FTD holding whole replica sets
//! when it can), and each (group, expert) count is split evenly over the `r`
//! replicas, remainders rotating with the group. Token copies, bytes and
//! top-k are unchanged; only where a copy goes is spread. With `N | E`,
//! `r = 1` and nothing changes.
//!
//! # Determinism
//! Everything is a pure function of the inputs and the seed: the engine is
//! deterministic, routing counts come from the moe crate's seeded generator,
//! and schedules are built and issued in a fixed order.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};
use wafernoc_mesh::{
    ClassSpec, ConfigError, DeadlockReport, Delivered, MeshSpec, Network, NetworkConfig, NewPacket,
    Routing, Topology,
};
use wafernoc_moe::{
    assign, combine, dispatch, ring_order, AllToAll, AllToAllMode, DeviceId, Flow, Layout,
    MappingKind, MoeError, MoeModel, ParallelPlan, Placement, RingDirection, RoutingCounts,
    RoutingSource, WaferSpec,
};
use wafernoc_router::RouterConfig;

/// Message class of the collectives (all-reduce, dispatch, combine).
pub const CLASS_COLLECTIVE: u8 = 0;
/// Message class of expert-weight migration (the lower priority by default:
/// [`NocParams::migration_priority`]).
pub const CLASS_MIGRATION: u8 = 1;

/// Default VCs of the collective class: 3. With [`DEFAULT_MIGRATION_VCS`] the
/// router has BookSim's reference 4 VCs per port; the measured traffic gets
/// three of them so that a blocked packet rarely stalls a whole input.
pub const DEFAULT_COLLECTIVE_VCS: usize = 3;
/// Default VCs of the migration class: 1 (enough for deadlock-free XY or YX
/// routing of low-priority bulk copies; `adaptive_escape` would need 2).
pub const DEFAULT_MIGRATION_VCS: usize = 1;
/// Default largest packet, in flits: 16 (4 KiB with 256-byte flits). A
/// DeepSeek-V3 FP8 token (28 flits) is two packets; a long ring chunk is a
/// train of packets that can use several VCs at once.
pub const DEFAULT_MAX_PACKET_FLITS: u16 = 16;

/// Router and packetisation parameters of a MoE run.
///
/// Everything not listed here is [`RouterConfig::default`] (BookSim2's
/// reference router: 1-cycle stages, iSLIP, round-robin arbiters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NocParams {
    /// VCs of the collective class. Default [`DEFAULT_COLLECTIVE_VCS`].
    pub collective_vcs: usize,
    /// VCs of the migration class. Default [`DEFAULT_MIGRATION_VCS`].
    pub migration_vcs: usize,
    /// Depth of every input VC buffer in flits; 0 (default) = automatic:
    /// enough to cover the credit round trip of the slowest link at its full
    /// rate, [`auto_vc_buf_size`]. Reason: a D2D link of several cycles of
    /// latency with BookSim's 8-flit buffers would be throttled by credits to
    /// a fraction of its bandwidth; the paper's flow-level model has no
    /// buffer limit at all, so buffers that never throttle one stream are
    /// the closest flit-level counterpart.
    pub vc_buf_size: usize,
    /// Largest packet in flits. Default [`DEFAULT_MAX_PACKET_FLITS`].
    pub max_packet_flits: u16,
    /// Routing function. Default XY (deterministic, deadlock-free, and the
    /// dimension-order routing a flow-level model assumes).
    pub routing: Routing,
    /// Latency of the injection/ejection links in cycles. Default 1.
    pub local_latency: u32,
    /// Deadlock timeout in cycles; 0 = the engine's automatic value.
    pub deadlock_timeout: u64,
    /// Switch-allocation priority of the migration class; the collective
    /// class has 1. Default 0: migration flits lose every allocation to
    /// collective flits (the NI-Balancer design). 1 is the ablation where
    /// they compete as equals (what the priority class buys); 2 or more
    /// gives migration flits precedence (any `u8` is valid).
    pub migration_priority: u8,
}

impl Default for NocParams {
    fn default() -> Self {
        NocParams {
            collective_vcs: DEFAULT_COLLECTIVE_VCS,
            migration_vcs: DEFAULT_MIGRATION_VCS,
            vc_buf_size: 0,
            max_packet_flits: DEFAULT_MAX_PACKET_FLITS,
            routing: Routing::Xy,
            local_latency: 1,
            deadlock_timeout: 0,
            migration_priority: 0,
        }
    }
}

/// Why a MoE run could not be built or finished. Every variant names the
/// parameter at fault where there is one ([`CollectiveError::parameter`]).
#[derive(Debug)]
pub enum CollectiveError {
    /// The moe crate rejected the model, plan or workload.
    Moe(MoeError),
    /// The network configuration is impossible.
    Network(ConfigError),
    /// A parameter of this module is impossible.
    Param {
        /// The parameter.
        param: &'static str,
        /// Why.
        reason: String,
    },
    /// The network stopped moving during a phase.
    Deadlock {
        /// The phase (`allreduce`, `dispatch`, `combine`, ...).
        phase: String,
        /// The engine's report.
        report: Box<DeadlockReport>,
    },
    /// The schedule could not progress although the network is empty (a
    /// dependency that can never be met: a bug in the schedule).
    Stalled {
        /// The phase.
        phase: String,
        /// Messages never issued.
        pending: usize,
    },
}

impl CollectiveError {
    /// The parameter at fault, if the error is about one.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            CollectiveError::Moe(e) => Some(e.parameter()),
            CollectiveError::Network(ConfigError::Router(e)) => Some(e.key),
            CollectiveError::Network(ConfigError::Topology(e)) => Some(e.key),
            CollectiveError::Network(ConfigError::Other { key, .. }) => Some(key),
            CollectiveError::Param { param, .. } => Some(param),
            CollectiveError::Deadlock { .. } | CollectiveError::Stalled { .. } => None,
        }
    }
}

impl fmt::Display for CollectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectiveError::Moe(e) => write!(f, "{e}"),
            CollectiveError::Network(e) => write!(f, "{e}"),
            CollectiveError::Param { param, reason } => {
                write!(f, "parameter `{param}`: {reason}")
            }
            CollectiveError::Deadlock { phase, report } => {
                write!(f, "deadlock in phase {phase}: {report}")
            }
            CollectiveError::Stalled { phase, pending } => write!(
                f,
                "phase {phase}: {pending} message(s) can never be sent (schedule dependency never met)"
            ),
        }
    }
}

impl std::error::Error for CollectiveError {}

impl From<MoeError> for CollectiveError {
    fn from(e: MoeError) -> Self {
        CollectiveError::Moe(e)
    }
}

impl From<ConfigError> for CollectiveError {
    fn from(e: ConfigError) -> Self {
        CollectiveError::Network(e)
    }
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, CollectiveError>;

/// A link timing in cycles, checked against the engine's 1..=4096. The
/// cycle is the time of one flit on an on-wafer link (`flit_bytes /
/// link_gbps_per_dir`), so the message says so: a tiny flit size turns a
/// latency in ns into very many cycles.
fn cycles_u32(param: &'static str, v: u64, spec: &WaferSpec) -> Result<u32> {
    if (1..=4096).contains(&v) {
        Ok(v as u32)
    } else {
        Err(CollectiveError::Param {
            param,
            reason: format!(
                "gives {v} cycles of {} ns (one {}-byte flit at {} GB/s); the engine \
                 supports 1..=4096 cycles: change flit_bytes or the link parameters",
                crate::fmt_num(spec.cycle_ns()),
                spec.flit_bytes,
                spec.link_gbps_per_dir
            ),
        })
    }
}

/// The automatic VC buffer depth: for each kind of link (on-wafer and, with
/// several wafers, wafer-crossing) `ceil((2 * (latency + 1) + 8) /
/// cycles_per_flit)` flits, the largest of them, at least 8. `2 * (latency +
/// 1)` is the flit and credit flight time; 8 covers the router pipeline and
/// credit processing with margin (one VC streaming over one link then runs at
/// the link's full rate; checked by a test).
pub fn auto_vc_buf_size(mesh: &MeshSpec) -> usize {
    let need = |lat: u32, cpf: u32| (2 * (lat as usize + 1) + 8).div_ceil(cpf.max(1) as usize);
    let mut d = need(mesh.link_latency, mesh.link_cycles_per_flit);
    if mesh.wafers_x > 1 || mesh.wafers_y > 1 {
        d = d.max(need(mesh.cross_latency, mesh.cross_cycles_per_flit));
    }
    d.max(8)
}

/// The network of a wafer: mesh and link timing from `spec`, router and
/// classes from `noc` (see the module documentation).
pub fn network_config(spec: &WaferSpec, noc: &NocParams) -> Result<NetworkConfig> {
    spec.validate()?;
    if noc.collective_vcs == 0 {
        return Err(CollectiveError::Param {
            param: "collective_vcs",
            reason: "must be at least 1".into(),
        });
    }
    if noc.migration_vcs == 0 {
        return Err(CollectiveError::Param {
            param: "migration_vcs",
            reason: "must be at least 1".into(),
        });
    }
    if noc.max_packet_flits == 0 {
        return Err(CollectiveError::Param {
            param: "max_packet_flits",
            reason: "must be at least 1".into(),
        });
    }
    // The crossing links exist only with several wafers; on one wafer their
    // timing is unused, so it may be outside the engine's range (was: a
    // 1-byte flit on one wafer was refused for `cross_wafer_latency_ns`),
    // and the engine's defaults stand in for it then.
    let one_wafer = spec.wafers_x * spec.wafers_y == 1;
    let cross = |param, v, default| match cycles_u32(param, v, spec) {
        Err(_) if one_wafer => Ok(default),
        r => r,
    };
    let mesh = MeshSpec {
        rows: spec.rows,
        cols: spec.cols,
        wafers_x: spec.wafers_x,
        wafers_y: spec.wafers_y,
        link_latency: cycles_u32("hop_latency_ns", spec.link_latency_cycles(), spec)?,
        link_cycles_per_flit: 1,
        cross_latency: cross(
            "cross_wafer_latency_ns",
            spec.cross_wafer_latency_cycles(),
            MeshSpec::default().cross_latency,
        )?,
        cross_cycles_per_flit: cross(
            "cross_wafer_gbps",
            spec.cross_wafer_cycles_per_flit(),
            MeshSpec::default().cross_cycles_per_flit,
        )?,
        local_latency: noc.local_latency,
    };
    let depth = if noc.vc_buf_size == 0 {
        auto_vc_buf_size(&mesh)
    } else {
        noc.vc_buf_size
    };
    let cfg = NetworkConfig {
        mesh,
        router: RouterConfig {
            num_vcs: noc.collective_vcs.saturating_add(noc.migration_vcs),
            vc_buf_size: depth,
            ..RouterConfig::default()
        },
        routing: noc.routing,
        classes: vec![
            ClassSpec {
                name: "collective".into(),
                vcs: noc.collective_vcs,
                priority: 1,
            },
            ClassSpec {
                name: "migration".into(),
                vcs: noc.migration_vcs,
                priority: noc.migration_priority,
            },
        ],
        deadlock_timeout: noc.deadlock_timeout,
        step_all: false,
    };
    cfg.validate()?;
    Ok(cfg)
}

// ---------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------

/// Index of a message in a [`Schedule`].
pub type MsgId = usize;

/// One message of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Sender.
    pub src: DeviceId,
    /// Receiver.
    pub dst: DeviceId,
    /// Bytes.
    pub bytes: u64,
    /// Message class.
    pub class: u8,
    /// Messages that must be fully delivered before this one is sent.
    pub requires: Vec<MsgId>,
    /// The chain it belongs to (messages of a chain are sent in order).
    pub chain: usize,
}

/// Messages in chains with delivery dependencies (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Schedule {
    msgs: Vec<Message>,
    chains: Vec<Vec<MsgId>>,
}

impl Schedule {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a new chain and returns its index.
    pub fn chain(&mut self) -> usize {
        self.chains.push(Vec::new());
        self.chains.len() - 1
    }

    /// Appends a message to chain `chain`. `requires` must name messages
    /// already added. Returns the message's id.
    pub fn push(
        &mut self,
        chain: usize,
        src: DeviceId,
        dst: DeviceId,
        bytes: u64,
        class: u8,
        requires: &[MsgId],
    ) -> Result<MsgId> {
        if chain >= self.chains.len() {
            return Err(CollectiveError::Param {
                param: "chain",
                reason: format!("{chain} but the schedule has {} chains", self.chains.len()),
            });
        }
        let id = self.msgs.len();
        if let Some(&bad) = requires.iter().find(|&&r| r >= id) {
            return Err(CollectiveError::Param {
                param: "requires",
                reason: format!("message {bad} does not exist yet"),
            });
        }
        self.msgs.push(Message {
            src,
            dst,
            bytes,
            class,
            requires: requires.to_vec(),
            chain,
        });
        self.chains[chain].push(id);
        Ok(id)
    }

    /// All messages, by id.
    pub fn messages(&self) -> &[Message] {
        &self.msgs
    }

    /// The chains, each a list of message ids in send order.
    pub fn chains(&self) -> &[Vec<MsgId>] {
        &self.chains
    }

    /// Bytes sent by each device over the network (self-sends excluded),
    /// indexed by device id up to the largest id used.
    pub fn bytes_sent_by_device(&self) -> Vec<u64> {
        let n = self
            .msgs
            .iter()
            .map(|m| m.src.max(m.dst) + 1)
            .max()
            .unwrap_or(0);
        let mut v = vec![0u64; n];
        for m in self.msgs.iter().filter(|m| m.src != m.dst) {
            v[m.src] += m.bytes;
        }
        v
    }
}

/// Sizes of the `t` chunks of `bytes`: `bytes / t`, the first `bytes mod t`
/// one byte more.
fn chunks(bytes: u64, t: usize) -> Vec<u64> {
    let t64 = t as u64;
    (0..t64)
        .map(|k| bytes / t64 + u64::from(k < bytes % t64))
        .collect()
}

/// Ring order of `members` for a direction (`Both` is not a direction here).
fn oriented(members: &[DeviceId], backward: bool) -> Vec<DeviceId> {
    if !backward || members.is_empty() {
        return members.to_vec();
    }
    let t = members.len();
    (0..t).map(|j| members[(t - j) % t]).collect()
}

/// One ring stage (reduce-scatter or all-gather) of a ring all-reduce.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    ReduceScatter,
    AllGather,
}

/// Appends a ring stage over `seq` (send order) to the schedule. `chain[j]`
/// is member `j`'s chain, `gate[j]` the message member `j` must have received
/// before its first send of the stage, `sizes` the chunk sizes. Returns, per
/// member, its last receive of the stage (or its gate if the ring has one
/// member).
#[allow(clippy::too_many_arguments)]
fn ring_stage(
    s: &mut Schedule,
    seq: &[DeviceId],
    chain: &[usize],
    gate: &[Option<MsgId>],
    sizes: &[u64],
    stage: Stage,
    class: u8,
) -> Result<Vec<Option<MsgId>>> {
    let t = seq.len();
    if t < 2 {
        return Ok(gate.to_vec());
    }
    // last[j] = the previous message sent by member j in this stage.
    let mut last: Vec<Option<MsgId>> = vec![None; t];
    for step in 0..t - 1 {
        let mut this = vec![0; t];
        for j in 0..t {
            let pred = (j + t - 1) % t;
            let req = if step == 0 { gate[j] } else { last[pred] };
            let chunk = match stage {
                Stage::ReduceScatter => (j + t - step % t) % t,
                Stage::AllGather => (j + 1 + t - step % t) % t,
            };
            let r: Vec<MsgId> = req.into_iter().collect();
            this[j] = s.push(chain[j], seq[j], seq[(j + 1) % t], sizes[chunk], class, &r)?;
        }
        last = this.into_iter().map(Some).collect();
    }
    // Member j's last receive is its predecessor's last send.
    Ok((0..t).map(|j| last[(j + t - 1) % t]).collect())
}

/// Appends a flat ring all-reduce of `bytes` over `seq` (send order).
fn flat_ring(s: &mut Schedule, seq: &[DeviceId], bytes: u64, class: u8) -> Result<()> {
    let t = seq.len();
    if t < 2 {
        return Ok(());
    }
    let chain: Vec<usize> = (0..t).map(|_| s.chain()).collect();
    let sizes = chunks(bytes, t);
    let gate = vec![None; t];
    let rs = ring_stage(s, seq, &chain, &gate, &sizes, Stage::ReduceScatter, class)?;
    ring_stage(s, seq, &chain, &rs, &sizes, Stage::AllGather, class)?;
    Ok(())
}

/// Appends a hierarchical all-reduce of `bytes` (one direction).
/// `wafer_order` is the exchange ring over the wafers (wafer ids).
fn hier_ring(
    s: &mut Schedule,
    wafer_rings: &[Vec<DeviceId>],
    wafer_order: &[usize],
    bytes: u64,
    backward: bool,
    class: u8,
) -> Result<()> {
    let rings: Vec<Vec<DeviceId>> = wafer_rings.iter().map(|r| oriented(r, backward)).collect();
    let w = rings.len();
    if w == 0 {
        return Ok(());
    }
    let tw = rings[0].len();
    let mut order = wafer_order.to_vec();
    order.sort_unstable();
    if rings.iter().any(|r| r.len() != tw) || order != (0..w).collect::<Vec<_>>() {
        return Err(CollectiveError::Param {
            param: "mapping",
            reason: "hierarchical rings of unequal size on different wafers".into(),
        });
    }
    let chains: Vec<Vec<usize>> = (0..w)
        .map(|_| (0..tw).map(|_| s.chain()).collect())
        .collect();
    let sizes = chunks(bytes, tw);
    // Reduce-scatter on every wafer.
    let mut after_rs = Vec::with_capacity(w);
    for (ring, ch) in rings.iter().zip(&chains) {
        after_rs.push(ring_stage(
            s,
            ring,
            ch,
            &vec![None; tw],
            &sizes,
            Stage::ReduceScatter,
            class,
        )?);
    }
    // Exchange: member j (send order) owns chunk (j + 1) mod tw; the members
    // at position j on every wafer all-reduce it on a ring in wafer order.
    let mut after_ex: Vec<Vec<Option<MsgId>>> = vec![vec![None; tw]; w];
    for j in 0..tw {
        let seq_w: Vec<usize> = oriented(wafer_order, backward);
        let seq: Vec<DeviceId> = seq_w.iter().map(|&k| rings[k][j]).collect();
        let ch: Vec<usize> = seq_w.iter().map(|&k| chains[k][j]).collect();
        let gate: Vec<Option<MsgId>> = seq_w.iter().map(|&k| after_rs[k][j]).collect();
        let shard = sizes[(j + 1) % tw];
        let sub = chunks(shard, w);
        let rs = ring_stage(s, &seq, &ch, &gate, &sub, Stage::ReduceScatter, class)?;
        let ag = ring_stage(s, &seq, &ch, &rs, &sub, Stage::AllGather, class)?;
        for (pos, &k) in seq_w.iter().enumerate() {
            after_ex[k][j] = ag[pos];
        }
    }
    // All-gather on every wafer.
    for ((ring, ch), gate) in rings.iter().zip(&chains).zip(&after_ex) {
        ring_stage(s, ring, ch, gate, &sizes, Stage::AllGather, class)?;
    }
    Ok(())
}

/// The TP all-reduce of one layer: every TP group all-reduces `bytes` (its
/// activation bytes, [`MoeModel::tp_allreduce_bytes`]) on its ring in the
/// layout's direction; under HER hierarchically (see the module docs).
pub fn allreduce_schedule(layout: &Layout, bytes: u64, class: u8) -> Result<Schedule> {
    let mut s = Schedule::new();
    // Exchange ring over the wafers: the wafer grid's ring order, so that
    // consecutive wafers are neighbours (wafer id = wx + wafers_x * wy).
    let spec = layout.spec();
    let wafer_order: Vec<usize> = ring_order(spec.wafers_y, spec.wafers_x)
        .into_iter()
        .map(|(r, c)| c + spec.wafers_x * r)
        .collect();
    for g in 0..layout.dp() {
        let dir = layout.ring_direction(g).ok_or(CollectiveError::Param {
            param: "group",
            reason: format!("TP group {g} has no ring direction"),
        })?;
        let halves: Vec<(bool, u64)> = match dir {
            RingDirection::Forward => vec![(false, bytes)],
            RingDirection::Backward => vec![(true, bytes)],
            RingDirection::Both => vec![(false, bytes.div_ceil(2)), (true, bytes / 2)],
        };
        for (backward, b) in halves {
            match (layout.mapping_kind(), layout.hier_ring(g)) {
                (MappingKind::Her, Some(h)) => {
                    hier_ring(&mut s, &h.wafer_rings, &wafer_order, b, backward, class)?
                }
                _ => {
                    let seq = oriented(&layout.tp_groups()[g], backward);
                    flat_ring(&mut s, &seq, b, class)?;
                }
            }
        }
    }
    Ok(s)
}

/// One independent message per flow (dispatch or combine), all ready at once.
pub fn flows_schedule(flows: &[Flow], class: u8) -> Result<Schedule> {
    let mut s = Schedule::new();
    for f in flows {
        let c = s.chain();
        s.push(c, f.src, f.dst, f.bytes, class, &[])?;
    }
    Ok(s)
}

// ---------------------------------------------------------------------------
// Links and phase statistics
// ---------------------------------------------------------------------------

/// One directed router-to-router link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LinkInfo {
    /// Sending device.
    pub src: DeviceId,
    /// Receiving device.
    pub dst: DeviceId,
    /// Output port at `src` (0 = +x, 1 = -x, 2 = +y, 3 = -y).
    pub port: u8,
    /// Ends in different tiles of the plan's tile grid.
    pub boundary: bool,
    /// Crosses a wafer edge.
    pub cross_wafer: bool,
    /// Cycles per flit (1 on-wafer).
    pub cycles_per_flit: u32,
}

/// The directed links of a layout's mesh, in order of (source, port).
pub fn link_table(layout: &Layout, topo: &Topology) -> Result<Vec<LinkInfo>> {
    let mut v = Vec::new();
    for r in 0..topo.nodes() {
        for p in 0..4 {
            if let Some(nb) = topo.neighbor(r, p) {
                v.push(LinkInfo {
                    src: r,
                    dst: nb,
                    port: p as u8,
                    boundary: layout.is_boundary_link(r, nb)?,
                    cross_wafer: topo.crosses_wafer(r, p),
                    cycles_per_flit: topo.link_params(r, p).1,
                });
            }
        }
    }
    Ok(v)
}

/// Measurements of one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseStats {
    /// Phase name.
    pub name: String,
    /// Cycle the phase started.
    pub start_cycle: u64,
    /// Completion time in cycles (0 if nothing crossed the network).
    pub cycles: u64,
    /// Completion time in ns.
    pub ns: f64,
    /// Messages sent over the network.
    pub messages: u64,
    /// Packets injected.
    pub packets: u64,
    /// Bytes sent over the network.
    pub bytes: u64,
    /// Flits injected (bytes rounded up to flits per message).
    pub flits: u64,
    /// Bytes of self-sends (no network traffic).
    pub local_bytes: u64,
    /// Flit traversals of router-to-router links.
    pub link_flit_hops: u64,
    /// Largest link utilisation.
    pub max_link_utilization: f64,
    /// Mean utilisation over every directed router-to-router link.
    pub mean_link_utilization: f64,
    /// Flits on boundary links.
    pub boundary_flits: u64,
    /// Flits on intra-tile links.
    pub intra_tile_flits: u64,
    /// Mean utilisation of boundary links (0 if there are none).
    pub mean_boundary_utilization: f64,
    /// Mean utilisation of intra-tile links (0 if there are none).
    pub mean_intra_tile_utilization: f64,
    /// Links that carried no flit, as `(src, dst)`.
    pub cold_links: Vec<(DeviceId, DeviceId)>,
    /// Cold boundary links.
    pub cold_boundary_links: usize,
    /// Cold intra-tile links.
    pub cold_intra_tile_links: usize,
    /// Flits of the phase per link, aligned with the link table.
    #[serde(skip)]
    pub link_flits: Vec<u64>,
}

impl PhaseStats {
    /// Utilisation of link `i` of the table (flits x cycles per flit / phase
    /// cycles; 0 for an empty phase).
    pub fn utilization(&self, links: &[LinkInfo], i: usize) -> f64 {
        if self.cycles == 0 {
            return 0.0;
        }
        let cpf = links.get(i).map_or(1, |l| l.cycles_per_flit) as f64;
        self.link_flits.get(i).copied().unwrap_or(0) as f64 * cpf / self.cycles as f64
    }
}

/// Tag bit of packets sent by a [`Background`]: schedule packets carry their
/// message id (always below `2^63`), background packets this bit plus their
/// own identifier.
pub const BACKGROUND_TAG: u64 = 1 << 63;

/// Traffic that runs beside a phase's schedule on the same network (expert
/// migration): it may enqueue packets every cycle and is told of every
/// delivery of its own packets (those whose tag has [`BACKGROUND_TAG`]).
/// It never delays the schedule's bookkeeping: a phase ends when its last
/// message is delivered, whatever background packets are still in flight.
pub trait Background {
    /// Called once per cycle before the network steps: enqueue packets
    /// (tags with [`BACKGROUND_TAG`] set).
    fn inject(&mut self, net: &mut Network) -> Result<()>;
    /// One of its packets was delivered.
    fn delivered(&mut self, d: &Delivered);
    /// True when it would enqueue a packet if the network had room, so the
    /// runner must not skip idle cycles.
    fn busy(&self) -> bool;
}

/// No background traffic.
pub struct NoBackground;

impl Background for NoBackground {
    fn inject(&mut self, _net: &mut Network) -> Result<()> {
        Ok(())
    }
    fn delivered(&mut self, _d: &Delivered) {}
    fn busy(&self) -> bool {
        false
    }
}

/// Runs schedules phase by phase on one network and measures them.
pub struct PhaseRunner {
    net: Network,
    links: Vec<LinkInfo>,
    cycle_ns: f64,
    flit_bytes: u64,
    max_packet_flits: u16,
    /// Progress callback period in cycles.
    pub progress_every: u64,
}

impl PhaseRunner {
    /// A runner for `layout` on the network of `spec` and `noc`.
    pub fn new(spec: &WaferSpec, layout: &Layout, noc: &NocParams) -> Result<Self> {
        let (cfg, links) = Self::check(spec, layout, noc)?;
        let net = Network::new(cfg)?;
        Ok(PhaseRunner {
            net,
            links,
            cycle_ns: spec.cycle_ns(),
            flit_bytes: u64::from(spec.flit_bytes),
            max_packet_flits: noc.max_packet_flits,
            progress_every: 4096,
        })
    }

    /// Every check [`PhaseRunner::new`] makes, without building the
    /// network: the network configuration of `spec` and `noc`, and the
    /// layout's link table.
    pub fn check(
        spec: &WaferSpec,
        layout: &Layout,
        noc: &NocParams,
    ) -> Result<(NetworkConfig, Vec<LinkInfo>)> {
        let cfg = network_config(spec, noc)?;
        if layout.num_devices() != spec.num_devices() {
            return Err(CollectiveError::Param {
                param: "layout",
                reason: format!(
                    "built for {} devices but the wafer has {}",
                    layout.num_devices(),
                    spec.num_devices()
                ),
            });
        }
        let topo = Network::check_config(&cfg)?;
        let links = link_table(layout, &topo)?;
        Ok((cfg, links))
    }

    /// Replaces the network by a freshly built one (empty, cycle 0, every
    /// arbiter and round-robin pointer back to its initial state), so that
    /// the next phase does not depend on what ran before it.
    pub fn reset(&mut self) -> Result<()> {
        self.net = Network::new(self.net.config().clone())?;
        Ok(())
    }

    /// The network (for inspection).
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The directed router-to-router links.
    pub fn links(&self) -> &[LinkInfo] {
        &self.links
    }

    /// Cumulative flits per link of the classes in `classes` (bit per class).
    fn link_snapshot(&self, classes: u64) -> Vec<u64> {
        let c = self.net.num_classes();
        let lf = self.net.link_flits();
        self.links
            .iter()
            .map(|l| {
                let base = (l.src * 5 + l.port as usize) * c;
                (0..c)
                    .filter(|k| classes >> k & 1 == 1)
                    .map(|k| lf[base + k])
                    .sum()
            })
            .collect()
    }

    /// Mutable access to the network (to enqueue background traffic).
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Lets `cycles` cycles pass with no schedule (a compute window) while
    /// `bg` keeps sending; cycles in which neither `bg` nor the network has
    /// anything to do are skipped exactly ([`Network::fast_forward`]).
    pub fn idle_with(&mut self, name: &str, cycles: u64, bg: &mut dyn Background) -> Result<()> {
        let end = self.net.now() + cycles;
        while self.net.now() < end {
            if !bg.busy() && self.net.fast_forward(end) {
                break;
            }
            bg.inject(&mut self.net)?;
            if let Err(report) = self.net.step() {
                return Err(CollectiveError::Deadlock {
                    phase: name.to_string(),
                    report,
                });
            }
            for d in self.net.drain_delivered() {
                if d.tag & BACKGROUND_TAG != 0 {
                    bg.delivered(&d);
                } else {
                    return Err(CollectiveError::Param {
                        param: "schedule",
                        reason: format!("packet {} delivered outside its phase", d.tag),
                    });
                }
            }
        }
        Ok(())
    }

    /// Packet sizes of a message of `bytes`.
    fn packet_sizes(&self, bytes: u64) -> Vec<u16> {
        let flits = bytes.div_ceil(self.flit_bytes);
        let m = u64::from(self.max_packet_flits);
        let mut v = Vec::with_capacity(flits.div_ceil(m) as usize);
        let mut left = flits;
        while left > 0 {
            let k = left.min(m);
            v.push(k as u16);
            left -= k;
        }
        v
    }

    /// Runs one schedule to completion as phase `name`, calling `progress`
    /// with the current cycle every [`PhaseRunner::progress_every`] cycles.
    pub fn run(
        &mut self,
        name: &str,
        sched: &Schedule,
        progress: &mut dyn FnMut(u64, &str),
    ) -> Result<PhaseStats> {
        self.run_full(name, sched, &mut NoBackground, progress, None)
    }

    /// [`PhaseRunner::run`] with `bg` sending beside the schedule. The
    /// phase's link figures count only the classes its messages use.
    pub fn run_with(
        &mut self,
        name: &str,
        sched: &Schedule,
        bg: &mut dyn Background,
        progress: &mut dyn FnMut(u64, &str),
    ) -> Result<PhaseStats> {
        self.run_full(name, sched, bg, progress, None)
    }

    /// [`run`](Self::run), reporting every packet it enqueues (and every
    /// delivery) to `capture` when given; see [`PacketCapture`]. Without a
    /// capture nothing is allocated per packet.
    pub fn run_captured(
        &mut self,
        name: &str,
        sched: &Schedule,
        progress: &mut dyn FnMut(u64, &str),
        capture: Option<&mut dyn PacketCapture>,
    ) -> Result<PhaseStats> {
        self.run_full(name, sched, &mut NoBackground, progress, capture)
    }

    /// The phase loop behind [`run`](Self::run), [`run_with`](Self::run_with)
    /// and [`run_captured`](Self::run_captured).
    fn run_full(
        &mut self,
        name: &str,
        sched: &Schedule,
        bg: &mut dyn Background,
        progress: &mut dyn FnMut(u64, &str),
        capture: Option<&mut dyn PacketCapture>,
    ) -> Result<PhaseStats> {
        let msgs = &sched.msgs;
        let n = self.net.topology().nodes();
        if let Some(m) = msgs.iter().find(|m| m.src >= n || m.dst >= n) {
            return Err(CollectiveError::Param {
                param: "schedule",
                reason: format!("message {}->{} but the mesh has {n} devices", m.src, m.dst),
            });
        }
        if let Some(m) = msgs
            .iter()
            .find(|m| m.class as usize >= self.net.num_classes())
        {
            return Err(CollectiveError::Param {
                param: "class",
                reason: format!("class {} does not exist", m.class),
            });
        }
        let classes = msgs.iter().fold(0u64, |a, m| a | 1 << m.class);
        let before = self.link_snapshot(classes);
        let start = self.net.now();
        let mut st = RunState::new(sched);
        let mut cap = capture.map(|sink| CaptureState::new(sink, sched, name));
        let mut stats = PhaseStats {
            name: name.to_string(),
            start_cycle: start,
            cycles: 0,
            ns: 0.0,
            messages: 0,
            packets: 0,
            bytes: 0,
            flits: 0,
            local_bytes: 0,
            link_flit_hops: 0,
            max_link_utilization: 0.0,
            mean_link_utilization: 0.0,
            boundary_flits: 0,
            intra_tile_flits: 0,
            mean_boundary_utilization: 0.0,
            mean_intra_tile_utilization: 0.0,
            cold_links: Vec::new(),
            cold_boundary_links: 0,
            cold_intra_tile_links: 0,
            link_flits: Vec::new(),
        };
        // Initially ready: every chain head without requirements.
        for ch in &sched.chains {
            if let Some(&m) = ch.first() {
                if st.unmet[m] == 0 {
                    st.ready.push(m);
                }
            }
        }
        self.issue(sched, &mut st, &mut stats, cap.as_mut())?;
        let mut next_report = start;
        while st.completed < msgs.len() {
            if st.in_flight == 0 {
                return Err(CollectiveError::Stalled {
                    phase: name.to_string(),
                    pending: msgs.len() - st.completed,
                });
            }
            bg.inject(&mut self.net)?;
            if let Err(report) = self.net.step() {
                return Err(CollectiveError::Deadlock {
                    phase: name.to_string(),
                    report,
                });
            }
            let mut done = Vec::new();
            for d in self.net.drain_delivered() {
                if d.tag & BACKGROUND_TAG != 0 {
                    bg.delivered(&d);
                    continue;
                }
                if let Some(c) = cap.as_mut() {
                    c.sink.delivered(&d);
                }
                let m = d.tag as usize;
                st.in_flight -= 1;
                st.packets_left[m] -= 1;
                if st.packets_left[m] == 0 {
                    done.push(m);
                }
            }
            for m in done {
                st.complete(sched, m);
            }
            self.issue(sched, &mut st, &mut stats, cap.as_mut())?;
            let now = self.net.now();
            if now >= next_report {
                progress(now, name);
                next_report = now.saturating_add(self.progress_every.max(1));
            }
        }
        // Let nothing of this phase linger (all packets are delivered).
        stats.cycles = self.net.now() - start;
        stats.ns = stats.cycles as f64 * self.cycle_ns;
        let after = self.link_snapshot(classes);
        let flits: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let util = |i: usize| {
            if stats.cycles == 0 {
                0.0
            } else {
                flits[i] as f64 * self.links[i].cycles_per_flit as f64 / stats.cycles as f64
            }
        };
        let (mut nb, mut ni, mut ub, mut ui, mut ut) = (0usize, 0usize, 0.0, 0.0, 0.0);
        for (i, l) in self.links.iter().enumerate() {
            let u = util(i);
            ut += u;
            stats.max_link_utilization = stats.max_link_utilization.max(u);
            stats.link_flit_hops += flits[i];
            if l.boundary {
                nb += 1;
                ub += u;
                stats.boundary_flits += flits[i];
            } else {
                ni += 1;
                ui += u;
                stats.intra_tile_flits += flits[i];
            }
            if flits[i] == 0 {
                stats.cold_links.push((l.src, l.dst));
                if l.boundary {
                    stats.cold_boundary_links += 1;
                } else {
                    stats.cold_intra_tile_links += 1;
                }
            }
        }
        let mean = |s: f64, k: usize| if k == 0 { 0.0 } else { s / k as f64 };
        stats.mean_link_utilization = mean(ut, self.links.len());
        stats.mean_boundary_utilization = mean(ub, nb);
        stats.mean_intra_tile_utilization = mean(ui, ni);
        stats.link_flits = flits;
        progress(self.net.now(), name);
        Ok(stats)
    }

    /// Enqueues every ready message; messages of one source are interleaved
    /// packet by packet. Zero-byte messages and self-sends complete at once
    /// (which may make more messages ready).
    fn issue(
        &mut self,
        sched: &Schedule,
        st: &mut RunState,
        stats: &mut PhaseStats,
        mut cap: Option<&mut CaptureState<'_>>,
    ) -> Result<()> {
        while !st.ready.is_empty() {
            let mut batch = std::mem::take(&mut st.ready);
            batch.sort_unstable();
            // Per source, in message-id order: the packet sizes still to send.
            let mut by_src: Vec<(DeviceId, SourceQueue)> = Vec::new();
            let mut instant = Vec::new();
            for &m in &batch {
                let msg = &sched.msgs[m];
                if let Some(c) = cap.as_deref_mut() {
                    let pos = st.pos_in_chain[m];
                    let prev = pos.checked_sub(1).map(|k| sched.chains[msg.chain][k]);
                    c.issued(sched, m, prev);
                }
                st.advance_chain(sched, m);
                if msg.src == msg.dst {
                    stats.local_bytes += msg.bytes;
                    instant.push(m);
                    continue;
                }
                let sizes = self.packet_sizes(msg.bytes);
                if sizes.is_empty() {
                    instant.push(m);
                    continue;
                }
                stats.messages += 1;
                stats.bytes += msg.bytes;
                st.packets_left[m] = sizes.len();
                let q: VecDeque<u16> = sizes.into();
                match by_src.iter_mut().find(|(s, _)| *s == msg.src) {
                    Some((_, v)) => v.push_back((m, q)),
                    None => by_src.push((msg.src, VecDeque::from([(m, q)]))),
                }
            }
            by_src.sort_by_key(|(s, _)| *s);
            let now = self.net.now();
            for (src, mut queue) in by_src {
                while let Some((m, mut sizes)) = queue.pop_front() {
                    if let Some(size) = sizes.pop_front() {
                        let msg = &sched.msgs[m];
                        let p = NewPacket {
                            src: src as u32,
                            dst: msg.dst as u32,
                            size,
                            class: msg.class,
                            ctime: now,
                            tag: m as u64,
                        };
                        self.net.enqueue(p)?;
                        if let Some(c) = cap.as_deref_mut() {
                            c.enqueued(m, &p);
                        }
                        stats.packets += 1;
                        st.in_flight += 1;
                        stats.flits += u64::from(size);
                    }
                    if !sizes.is_empty() {
                        queue.push_back((m, sizes));
                    }
                }
            }
            for m in instant {
                st.complete(sched, m);
            }
        }
        Ok(())
    }
}

/// Messages of one source being packetised: (message, packet sizes left).
type SourceQueue = VecDeque<(MsgId, VecDeque<u16>)>;

/// Progress of a schedule during a run.
struct RunState {
    /// Requirements not yet delivered, per message.
    unmet: Vec<usize>,
    /// Messages that require each message.
    dependents: Vec<Vec<MsgId>>,
    /// Next position to issue in each chain.
    chain_pos: Vec<usize>,
    /// Position of each message in its chain.
    pos_in_chain: Vec<usize>,
    /// Packets not yet delivered, per message.
    packets_left: Vec<usize>,
    /// Messages ready to issue.
    ready: Vec<MsgId>,
    /// Messages fully delivered.
    completed: usize,
    /// Packets of the schedule enqueued and not yet delivered.
    in_flight: usize,
}

impl RunState {
    fn new(s: &Schedule) -> Self {
        let n = s.msgs.len();
        let mut dependents = vec![Vec::new(); n];
        let mut unmet = vec![0; n];
        for (i, m) in s.msgs.iter().enumerate() {
            let mut req = m.requires.clone();
            req.sort_unstable();
            req.dedup();
            unmet[i] = req.len();
            for r in req {
                dependents[r].push(i);
            }
        }
        let mut pos_in_chain = vec![0; n];
        for ch in &s.chains {
            for (k, &m) in ch.iter().enumerate() {
                pos_in_chain[m] = k;
            }
        }
        RunState {
            unmet,
            dependents,
            chain_pos: vec![0; s.chains.len()],
            pos_in_chain,
            packets_left: vec![0; n],
            ready: Vec::new(),
            completed: 0,
            in_flight: 0,
        }
    }

    fn is_head(&self, s: &Schedule, m: MsgId) -> bool {
        self.chain_pos[s.msgs[m].chain] == self.pos_in_chain[m]
    }

    /// Message `m` is being issued: move its chain on and queue the next
    /// message of the chain if it is ready.
    fn advance_chain(&mut self, s: &Schedule, m: MsgId) {
        let c = s.msgs[m].chain;
        self.chain_pos[c] += 1;
        if let Some(&next) = s.chains[c].get(self.chain_pos[c]) {
            if self.unmet[next] == 0 {
                self.ready.push(next);
            }
        }
    }

    /// Message `m` has been fully delivered.
    fn complete(&mut self, s: &Schedule, m: MsgId) {
        self.completed += 1;
        for i in 0..self.dependents[m].len() {
            let d = self.dependents[m][i];
            self.unmet[d] -= 1;
            if self.unmet[d] == 0 && self.is_head(s, d) {
                self.ready.push(d);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// One MoE layer
// ---------------------------------------------------------------------------

/// Data-parallel replication of experts when `N` does not divide `E` (see
/// the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpertReplication {
    /// Routed experts of the model.
    pub experts: usize,
    /// Replicas of every expert (1 when `N | E`).
    pub replicas: usize,
    /// Virtual experts the layout is built for (`experts * replicas`).
    pub virtual_experts: usize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl ExpertReplication {
    /// The replication for `experts` on `devices`: `lcm(E, N) / E` replicas.
    pub fn new(experts: usize, devices: usize) -> Result<Self> {
        if experts == 0 {
            return Err(MoeError::Zero { param: "experts" }.into());
        }
        if devices == 0 {
            return Err(MoeError::Zero { param: "rows" }.into());
        }
        let replicas = devices / gcd(experts, devices);
        let virtual_experts = experts
            .checked_mul(replicas)
            .ok_or(CollectiveError::Param {
                param: "experts",
                reason: "too many expert replicas".into(),
            })?;
        Ok(ExpertReplication {
            experts,
            replicas,
            virtual_experts,
        })
    }

    /// Virtual expert of replica `j` of expert `e`: `j * E + e`.
    pub fn virtual_id(&self, expert: usize, replica: usize) -> usize {
        replica * self.experts + expert
    }

    /// Spreads real counts over the virtual experts: `c / r` per replica, the
    /// remainder one each to the replicas starting at `group mod r`.
    pub fn spread(&self, counts: &RoutingCounts) -> Result<RoutingCounts> {
        if self.replicas == 1 {
            return Ok(counts.clone());
        }
        let mut out = RoutingCounts::new(counts.groups(), self.virtual_experts)?;
        let r = self.replicas as u64;
        for g in 0..counts.groups() {
            for e in 0..counts.experts() {
                let c = counts.get(g, e);
                if c == 0 {
                    continue;
                }
                for j in 0..self.replicas {
                    let rot = (j + self.replicas - g % self.replicas) % self.replicas;
                    let k = c / r + u64::from((rot as u64) < c % r);
                    if k > 0 {
                        out.add(g, self.virtual_id(e, j), k)?;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The traffic-side inputs of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerWorkload {
    /// Tokens per DP group.
    pub tokens_per_group: u64,
    /// Token-to-expert routing.
    pub routing: RoutingSource,
    /// Seed of the routing draw.
    pub seed: u64,
    /// Layer index (selects the routing stream).
    pub layer: u64,
    /// Confined (MoEntwine) or global all-to-all.
    pub alltoall: AllToAllMode,
}

/// Everything one layer simulation needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSpec {
    /// The machine.
    pub wafer: WaferSpec,
    /// The model.
    pub model: MoeModel,
    /// TP x DP and mapping.
    pub plan: ParallelPlan,
    /// Tokens and routing.
    pub workload: LayerWorkload,
    /// Router and packets.
    pub noc: NocParams,
}

/// The result of one layer: the layout used and the three phases.
#[derive(Debug, Clone)]
pub struct LayerResult {
    /// The layout (built for the virtual experts).
    pub layout: Layout,
    /// Expert replication used.
    pub replication: ExpertReplication,
    /// The network configuration simulated.
    pub network: NetworkConfig,
    /// Directed router-to-router links.
    pub links: Vec<LinkInfo>,
    /// TP ring all-reduce bytes per group (`M`).
    pub allreduce_bytes_per_group: u64,
    /// Token copies of the layer.
    pub token_copies: u64,
    /// Token copies served on their sender's device (no traffic).
    pub local_token_copies: u64,
    /// Ring all-reduce.
    pub allreduce: PhaseStats,
    /// MoE dispatch.
    pub dispatch: PhaseStats,
    /// MoE combine.
    pub combine: PhaseStats,
}

impl LayerResult {
    /// The three phases in order.
    pub fn phases(&self) -> [&PhaseStats; 3] {
        [&self.allreduce, &self.dispatch, &self.combine]
    }

    /// Dispatch + combine cycles.
    pub fn alltoall_cycles(&self) -> u64 {
        self.dispatch.cycles + self.combine.cycles
    }

    /// All three phases' cycles.
    pub fn total_cycles(&self) -> u64 {
        self.allreduce.cycles + self.alltoall_cycles()
    }
}

/// Largest device count of a layer run (a 256x256 mesh; far beyond what
/// simulates in reasonable time, the bound only keeps bad input from
/// exhausting memory).
pub const MAX_DEVICES: usize = 1 << 16;

/// Largest tokens per DP group of a layer run (the routing draw holds every
/// token's experts in memory).
pub const MAX_TOKENS_PER_GROUP: u64 = 1 << 20;

/// The dispatch and combine traffic of a layer (no simulation): the layout
/// (built for the virtual experts), the replication, dispatch, combine, and
/// the layer's token copies.
pub fn layer_traffic(
    spec: &LayerSpec,
) -> Result<(Layout, ExpertReplication, AllToAll, AllToAll, u64)> {
    layer_traffic_from(spec, None)
}

/// [`layer_traffic`] with the routing given as per-group expert counts (a
/// captured routing trace) instead of drawn from `spec.workload.routing`.
fn layer_traffic_from(
    spec: &LayerSpec,
    given: Option<RoutingCounts>,
) -> Result<(Layout, ExpertReplication, AllToAll, AllToAll, u64)> {
    let (layout, rep) = layer_layout(spec)?;
    let w = &spec.workload;
    let tokens = usize::try_from(w.tokens_per_group).map_err(|_| CollectiveError::Param {
        param: "tokens_per_group",
        reason: "too large".into(),
    })?;
    let real = match given {
        Some(c) => c,
        None => w.routing.counts(
            spec.model.experts,
            spec.model.top_k,
            layout.dp(),
            tokens,
            w.seed,
            w.layer,
        )?,
    };
    let counts = rep.spread(&real)?;
    let mut vmodel = spec.model.clone();
    vmodel.experts = rep.virtual_experts;
    let placement = Placement::new(&layout);
    let a = assign(&layout, &placement, &counts)?;
    let d = dispatch(&layout, &a, &vmodel, w.alltoall)?;
    let c = combine(&layout, &a, &vmodel, w.alltoall)?;
    Ok((layout, rep, d, c, real.total()))
}

/// Every check a layer run ([`simulate_layer`] and its variants) makes
/// before it simulates, without drawing the routing or building a
/// network: the wafer, model and plan (the layout), the workload's bounds,
/// and the network and link table of [`PhaseRunner::new`]. What `wafernoc
/// sweep --dry-run` runs for a `moe` point.
pub fn check_layer(spec: &LayerSpec) -> Result<()> {
    let (layout, _) = layer_layout(spec)?;
    PhaseRunner::check(&spec.wafer, &layout, &spec.noc)?;
    Ok(())
}

/// The parameter checks of a layer run and its layout (for the virtual
/// experts) with the expert replication.
fn layer_layout(spec: &LayerSpec) -> Result<(Layout, ExpertReplication)> {
    spec.wafer.validate()?;
    if spec.wafer.num_devices() > MAX_DEVICES {
        return Err(CollectiveError::Param {
            param: "rows",
            reason: format!(
                "{} devices; a MoE layer run supports at most {MAX_DEVICES}",
                spec.wafer.num_devices()
            ),
        });
    }
    if spec.workload.tokens_per_group > MAX_TOKENS_PER_GROUP {
        return Err(CollectiveError::Param {
            param: "tokens_per_group",
            reason: format!(
                "{} tokens; at most {MAX_TOKENS_PER_GROUP} per DP group",
                spec.workload.tokens_per_group
            ),
        });
    }
    spec.model.validate()?;
    let rep = ExpertReplication::new(spec.model.experts, spec.wafer.num_devices())?;
    let layout = spec.plan.layout(&spec.wafer, rep.virtual_experts)?;
    if layout.dp().saturating_mul(rep.virtual_experts) > 1 << 28 {
        return Err(CollectiveError::Param {
            param: "dp",
            reason: format!(
                "{} DP groups x {} (virtual) experts is too large a routing table",
                layout.dp(),
                rep.virtual_experts
            ),
        });
    }
    Ok((layout, rep))
}

/// Simulates one MoE layer: ring all-reduce, dispatch, combine, in that
/// order. Each phase runs alone on a freshly built network
/// ([`PhaseRunner::reset`]), so a phase's figures do not depend on the
/// others (the ring policy, say, cannot perturb the all-to-all through
/// arbiter state) and every phase's `start_cycle` is 0.
pub fn simulate_layer(
    spec: &LayerSpec,
    progress: &mut dyn FnMut(u64, &str),
) -> Result<LayerResult> {
    simulate_layer_from(spec, None, progress, None)
}

/// [`simulate_layer`] driven by given routing counts (one row per DP group,
/// e.g. from a captured routing trace); `spec.workload.routing` and `seed`
/// are not used.
pub fn simulate_layer_with_counts(
    spec: &LayerSpec,
    counts: RoutingCounts,
    progress: &mut dyn FnMut(u64, &str),
) -> Result<LayerResult> {
    simulate_layer_from(spec, Some(counts), progress, None)
}

/// [`simulate_layer`] (routing drawn from the spec) or
/// [`simulate_layer_with_counts`] (`counts` given), reporting every packet
/// of every phase to `capture`: [`PacketCapture::begin_phase`] with
/// `allreduce`, `dispatch`, `combine` in turn, each followed by that phase's
/// packets. The result is identical to the uncaptured run.
pub fn simulate_layer_captured(
    spec: &LayerSpec,
    counts: Option<RoutingCounts>,
    progress: &mut dyn FnMut(u64, &str),
    capture: &mut dyn PacketCapture,
) -> Result<LayerResult> {
    simulate_layer_from(spec, counts, progress, Some(capture))
}

fn simulate_layer_from(
    spec: &LayerSpec,
    given: Option<RoutingCounts>,
    progress: &mut dyn FnMut(u64, &str),
    mut capture: Option<&mut dyn PacketCapture>,
) -> Result<LayerResult> {
    let (layout, replication, d, c, token_copies) = layer_traffic_from(spec, given)?;
    let mut runner = PhaseRunner::new(&spec.wafer, &layout, &spec.noc)?;
    let m = spec
        .model
        .tp_allreduce_bytes(spec.workload.tokens_per_group);
    let ar = allreduce_schedule(&layout, m, CLASS_COLLECTIVE)?;
    // One capture, reborrowed by the three runs in turn.
    let cap = capture.as_mut().map(|c| &mut **c as &mut dyn PacketCapture);
    let allreduce = runner.run_captured("allreduce", &ar, progress, cap)?;
    runner.reset()?;
    let dispatch = runner.run_captured(
        "dispatch",
        &flows_schedule(&d.flows, CLASS_COLLECTIVE)?,
        progress,
        capture.as_mut().map(|c| &mut **c as &mut dyn PacketCapture),
    )?;
    runner.reset()?;
    let combine = runner.run_captured(
        "combine",
        &flows_schedule(&c.flows, CLASS_COLLECTIVE)?,
        progress,
        capture,
    )?;
    let mut dispatch = dispatch;
    let mut combine = combine;
    dispatch.local_bytes = d.local.iter().map(|f| f.bytes).sum();
    combine.local_bytes = c.local.iter().map(|f| f.bytes).sum();
    Ok(LayerResult {
        network: runner.network().config().clone(),
        links: runner.links().to_vec(),
        layout,
        replication,
        allreduce_bytes_per_group: m,
        token_copies,
        local_token_copies: d.local_token_copies(),
        allreduce,
        dispatch,
        combine,
    })
}

// ---------------------------------------------------------------------------
// Packet capture
// ---------------------------------------------------------------------------

/// One packet enqueued by a [`PhaseRunner`], as reported to a
/// [`PacketCapture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedPacket<'a> {
    /// Dense id within the phase: the number of packets the phase enqueued
    /// before this one (enqueue order).
    pub id: u64,
    /// The schedule message the packet belongs to.
    pub message: MsgId,
    /// Cycle of the enqueue, which is the packet's creation cycle (the
    /// phase starts at cycle 0 on a fresh network).
    pub cycle: u64,
    /// Source device.
    pub src: u32,
    /// Destination device.
    pub dst: u32,
    /// Size in flits.
    pub size: u16,
    /// Message class.
    pub class: u8,
    /// Ids (ascending, each `< id`) of the packets of this phase whose
    /// delivery made the packet's message issuable: for message `m`,
    /// `D(m) = D(prev) ∪ ⋃_{r ∈ requires(m)} E(r)` where `prev` is `m`'s
    /// predecessor in its chain (empty for a chain's first message) and
    /// `E(r)` is every packet of `r`, or `D(r)` when `r` has no packets (a
    /// self-send or zero-byte message, complete as soon as it is issued).
    /// The chain's issue order is thereby folded in: the packet was enqueued
    /// exactly one cycle after the last of these was delivered (or at cycle
    /// 0 when there are none).
    pub deps: &'a [u64],
}

/// Receiver of the packets of [`PhaseRunner::run_captured`] and
/// [`simulate_layer_captured`].
pub trait PacketCapture {
    /// A phase starts (on a fresh network for [`simulate_layer_captured`]);
    /// the packets reported next belong to it and their ids restart at 0.
    fn begin_phase(&mut self, phase: &str);
    /// A packet has been enqueued; reported in enqueue order.
    fn packet(&mut self, p: &CapturedPacket<'_>);
    /// A packet of the current phase has been delivered (its `tag` is the
    /// message id, not the packet id). Default: ignored.
    fn delivered(&mut self, _d: &Delivered) {}
}

/// Capture bookkeeping of one phase run: the packet ids of every issued
/// message and its dependency set `D(m)` (see [`CapturedPacket::deps`]).
struct CaptureState<'c> {
    sink: &'c mut dyn PacketCapture,
    next_id: u64,
    packets: Vec<Vec<u64>>,
    deps: Vec<Vec<u64>>,
}

impl<'c> CaptureState<'c> {
    fn new(sink: &'c mut dyn PacketCapture, sched: &Schedule, phase: &str) -> Self {
        sink.begin_phase(phase);
        let n = sched.msgs.len();
        CaptureState {
            sink,
            next_id: 0,
            packets: vec![Vec::new(); n],
            deps: vec![Vec::new(); n],
        }
    }

    /// Message `m` is being issued after `prev` (its chain predecessor):
    /// every requirement is complete, so their packets are known.
    fn issued(&mut self, sched: &Schedule, m: MsgId, prev: Option<MsgId>) {
        let mut d = prev.map(|p| self.deps[p].clone()).unwrap_or_default();
        for &r in &sched.msgs[m].requires {
            if self.packets[r].is_empty() {
                d.extend_from_slice(&self.deps[r]);
            } else {
                d.extend_from_slice(&self.packets[r]);
            }
        }
        d.sort_unstable();
        d.dedup();
        self.deps[m] = d;
    }

    /// A packet of message `m` has been enqueued.
    fn enqueued(&mut self, m: MsgId, p: &NewPacket) {
        let id = self.next_id;
        self.next_id += 1;
        self.sink.packet(&CapturedPacket {
            id,
            message: m,
            cycle: p.ctime,
            src: p.src,
            dst: p.dst,
            size: p.size,
            class: p.class,
            deps: &self.deps[m],
        });
        self.packets[m].push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wafernoc_moe::Mapping;

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunks(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(chunks(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(oriented(&[1, 2, 3, 4], true), vec![1, 4, 3, 2]);
    }

    #[test]
    fn flat_ring_schedule_shape() {
        let l = ParallelPlan::new(4, 4, Mapping::er())
            .layout(&WaferSpec::single(4, 4), 16)
            .unwrap();
        let s = allreduce_schedule(&l, 4000, CLASS_COLLECTIVE).unwrap();
        // 4 groups x 4 members x 6 steps.
        assert_eq!(s.messages().len(), 96);
        let sent = s.bytes_sent_by_device();
        assert!(sent.iter().all(|&b| b == 6 * 1000), "{sent:?}");
    }

    #[test]
    fn auto_buffer_depth() {
        let one = network_config(&WaferSpec::single(4, 4), &NocParams::default()).unwrap();
        // 15-cycle links: 2 * 16 + 8.
        assert_eq!(one.router.vc_buf_size, 40);
        assert_eq!(one.router.num_vcs, 4);
        let four = network_config(&WaferSpec::multi(4, 4, 2, 2), &NocParams::default()).unwrap();
        // 176-cycle cross-wafer links at 2 cycles per flit: (2 * 177 + 8) / 2.
        assert_eq!(four.router.vc_buf_size, 181);
        assert_eq!(
            (four.mesh.cross_latency, four.mesh.cross_cycles_per_flit),
            (176, 2)
        );
    }

    #[test]
    fn replication_spreads_evenly() {
        let r = ExpertReplication::new(8, 16).unwrap();
        assert_eq!((r.replicas, r.virtual_experts), (2, 16));
        let mut c = RoutingCounts::new(2, 8).unwrap();
        c.add(0, 3, 5).unwrap();
        c.add(1, 3, 5).unwrap();
        let v = r.spread(&c).unwrap();
        assert_eq!((v.get(0, 3), v.get(0, 11)), (3, 2));
        assert_eq!((v.get(1, 3), v.get(1, 11)), (2, 3));
        assert_eq!(v.total(), 10);
        assert_eq!(ExpertReplication::new(256, 64).unwrap().replicas, 1);
        assert_eq!(ExpertReplication::new(6, 4).unwrap().virtual_experts, 12);
    }
}
