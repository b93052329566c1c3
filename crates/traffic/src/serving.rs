//! Serving iterations with expert load balancing and weight migration
//! (MoEntwine §4, NI-Balancer), flit by flit.
//!
//! # The run
//! [`run_serving`] simulates `iterations` serving iterations of `layers` MoE
//! layers on **one** network that lives for the whole run (time is
//! continuous, so migration traffic can cross phase and layer boundaries).
//! Per iteration and layer, in order:
//!
//! 1. **attention**: a compute window of
//!    [`ProjectionAttention`] time (no collective traffic), then the TP ring
//!    all-reduce ([`allreduce_schedule`]); together the *attention window*;
//! 2. **MoE**: dispatch ([`flows_schedule`] of the layer's all-to-all under the
//!    current placement), expert compute (a window of the roofline time of
//!    the slowest device, [`ComputeModel::moe_layer`]), combine; together the
//!    *MoE window*.
//!
//! Compute windows are simulated only while something moves (migration);
//! idle stretches are skipped exactly ([`Network::fast_forward`]).
//!
//! Routing comes from a [`RoutingFeed`]: a captured trace (the CLI's) or
//! [`DriftingZipf`], a skewed synthetic source whose popularity ranking
//! changes every `drift_every` iterations.
//!
//! # Balancing
//! Every MoE layer has its own [`Placement`] and [`LoadPredictor`]. After each
//! iteration every layer's predictor observes that iteration's per-expert
//! token copies and [`Balancer::plan`] decides replicas (policy `none`,
//! `greedy` or `topology`, trigger `alpha`, shadow slots from the plan). A
//! replica serves tokens only once its copy is complete
//! ([`Placement::mark_live`]); each (DP group, expert) count is split among the
//! live replicas ([`assign`]). The policy never evicts a replica whose copy
//! is still running; should a plan report such an eviction
//! ([`wafernoc_moe::Eviction::was_pending`]), the copy is cancelled (packets
//! in flight still arrive and count as moved bytes).
//!
//! # Migration engines ([`MigrationEngine`])
//! - **blocking**: at the start of the next iteration every planned copy is
//!   one message `source -> target` of the expert's weight bytes on the
//!   collective class (full priority, dimension-order shortest path), all at
//!   once; the iteration waits until the last is delivered (that wait is the
//!   critical-path time added); then the replicas are live.
//! - **non-invasive**: a copy follows the dimension-order path from source to
//!   target, cut into *steps* of consecutive hops of the same kind: hops
//!   inside a tile of the layout ([`Layout::is_boundary_link`] false) form
//!   steps that run only in attention windows, hops across a tile boundary
//!   steps that run only in MoE windows (under ER, the all-to-all keeps to
//!   the tiles and the TP rings cross them, so these are each window's cold
//!   links). A step moves the whole expert to the step's end die (staging in
//!   its HBM, capacity not modelled) before the next step may start. Steps
//!   send on the lowest-priority migration class, on its own VCs, like a DMA
//!   engine with at most `migration_window_packets` packets in flight per
//!   step: a step whose window closes stops issuing packets (those in flight
//!   still arrive) and resumes in the next window of its kind.
//!
//! # The reference run and "non-invasive"
//! Migration flits lose every switch allocation to collective flits, but can
//! still hold a link for the cycles of a flit already granted. To measure
//! what they cost, a non-invasive run is repeated with
//! [`ServingSpec::reference`]: the same routing, the same balancing
//! decisions and the replicas going live at the same points of the run (the
//! completion log of the first run), but no migration flit in the network.
//! `critical_path_added_ns` of a non-invasive run is its time minus the
//! reference's; per-phase deviations are reported.
//!
//! # Determinism
//! Everything is a pure function of the spec, the feed and its seed: one
//! network, schedules issued in a fixed order, migrations in decision order.

use serde::{Deserialize, Serialize};
use wafernoc_mesh::{Delivered, Network, NewPacket, Routing, PORTS};
use wafernoc_moe::{
    assign, check_hbm_capacity, combine, dispatch, tokens_with_weights, AllToAllMode,
    AttentionCost, Balancer, BalancerConfig, ComputeModel, DeviceId, DieSpec, ExpertId, Layout,
    LoadPredictor, MoeModel, ParallelPlan, Placement, PredictorKind, ProjectionAttention,
    ReplicaState, RoutingCounts, RoutingSource, WaferSpec, Xoshiro256StarStar,
};

use crate::collective::{
    allreduce_schedule, flows_schedule, Background, CollectiveError, NocParams, PhaseRunner,
    Result, Schedule, BACKGROUND_TAG, CLASS_COLLECTIVE, CLASS_MIGRATION,
};

/// How expert copies travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationEngine {
    /// On the critical path, full priority (see the module docs).
    Blocking,
    /// In steps on each window's cold links, lowest priority (default).
    #[default]
    NonInvasive,
}

impl MigrationEngine {
    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            MigrationEngine::Blocking => "blocking",
            MigrationEngine::NonInvasive => "non-invasive",
        }
    }
}

/// The two windows of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Attention compute and the TP all-reduce.
    Attention,
    /// Dispatch, expert compute and combine.
    Moe,
}

/// Default packets in flight per migration step: 8 (with 16-flit packets and
/// 15-cycle hops, enough to keep a path of up to 7 hops streaming at full
/// rate while a window is open).
pub const DEFAULT_MIGRATION_WINDOW_PACKETS: usize = 8;

/// Everything a serving run needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingSpec {
    /// The machine.
    pub wafer: WaferSpec,
    /// One die.
    pub die: DieSpec,
    /// The model.
    pub model: MoeModel,
    /// TP x DP, mapping and shadow slots.
    pub plan: ParallelPlan,
    /// Router and packets.
    pub noc: NocParams,
    /// Confined (MoEntwine) or global all-to-all.
    pub alltoall: AllToAllMode,
    /// Balancer policy and trigger.
    pub balancer: BalancerConfig,
    /// Load predictor.
    pub predictor: PredictorKind,
    /// Migration engine.
    pub migration: MigrationEngine,
    /// Expert roofline.
    pub compute: ComputeModel,
    /// Attention cost.
    pub attention: ProjectionAttention,
    /// Serving iterations to simulate.
    pub iterations: usize,
    /// MoE layers per iteration (the first `layers` of the model/trace).
    pub layers: usize,
    /// Packets in flight per non-invasive migration step
    /// ([`DEFAULT_MIGRATION_WINDOW_PACKETS`]).
    pub migration_window_packets: usize,
    /// Also run the non-invasive reference (module docs); ignored for other
    /// engines and when the balancer's policy is `none` (nothing migrates).
    pub reference: bool,
}

/// The routing of one MoE layer in one iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRouting {
    /// Token copies per (DP group, expert).
    pub counts: RoutingCounts,
    /// Tokens of the largest DP group (sizes the all-reduce and attention).
    pub tokens_per_group: u64,
}

/// Where the routing of each iteration and layer comes from.
pub trait RoutingFeed {
    /// Routing of MoE layer `layer` in iteration `iteration` for `dp` groups.
    fn layer(&mut self, iteration: usize, layer: usize, dp: usize) -> Result<LayerRouting>;
}

/// Skewed synthetic routing with drift: in every layer, expert popularity is
/// Zipf(`s`) over a random ranking that is redrawn every `drift_every`
/// iterations (an abrupt shift the predictor has to follow); tokens are
/// drawn independently every iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftingZipf {
    /// Routed experts.
    pub experts: usize,
    /// Experts per token.
    pub top_k: usize,
    /// Zipf exponent.
    pub s: f64,
    /// Tokens per DP group in every iteration.
    pub tokens_per_group: u64,
    /// Iterations between ranking changes (at least 1).
    pub drift_every: usize,
    /// Seed.
    pub seed: u64,
}

impl RoutingFeed for DriftingZipf {
    fn layer(&mut self, iteration: usize, layer: usize, dp: usize) -> Result<LayerRouting> {
        if self.drift_every == 0 {
            return Err(CollectiveError::Param {
                param: "drift_every",
                reason: "must be at least 1".into(),
            });
        }
        let epoch = (iteration / self.drift_every) as u64;
        let mut mix = Xoshiro256StarStar::from_words(&[self.seed, epoch, 0x0064_7269_6674]);
        let rank_seed = mix.next_u64();
        let w = RoutingSource::Zipf { s: self.s }.weights(self.experts, rank_seed, layer as u64)?;
        let mut mix = Xoshiro256StarStar::from_words(&[self.seed, iteration as u64, 0x0074_6f6b]);
        let tokens =
            usize::try_from(self.tokens_per_group).map_err(|_| CollectiveError::Param {
                param: "tokens_per_group",
                reason: "too large".into(),
            })?;
        let t = tokens_with_weights(&w, self.top_k, dp, tokens, mix.next_u64(), layer as u64)?;
        Ok(LayerRouting {
            counts: RoutingCounts::from_tokens(self.experts, &t)?,
            tokens_per_group: self.tokens_per_group,
        })
    }
}

/// Figures of one iteration (sums over its layers unless said otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IterationRow {
    /// Iteration index within the run.
    pub iteration: usize,
    /// Tokens served (summed over DP groups, first layer).
    pub tokens: u64,
    /// Mean over layers of max/mean device load (token copies served).
    pub max_over_mean_load: f64,
    /// Attention compute, ns.
    pub attention_ns: f64,
    /// TP all-reduce, ns.
    pub allreduce_ns: f64,
    /// Dispatch, ns.
    pub dispatch_ns: f64,
    /// Combine, ns.
    pub combine_ns: f64,
    /// Dispatch + combine, ns.
    pub alltoall_ns: f64,
    /// Expert compute (slowest device per layer), ns.
    pub moe_compute_ns: f64,
    /// Blocking migration wait, ns.
    pub migration_stall_ns: f64,
    /// Whole iteration, ns.
    pub iteration_ns: f64,
    /// Copies planned by the balancer after this iteration.
    pub migrations_planned: u64,
    /// Copies completed during this iteration.
    pub migrations_completed: u64,
    /// Copies cancelled (their pending replica evicted).
    pub migrations_cancelled: u64,
    /// Expert weight bytes of the copies planned after this iteration.
    pub migration_bytes: u64,
    /// Bytes x hops moved by migration traffic during this iteration.
    pub migration_byte_hops: u64,
    /// Shadow replicas serving at the end of the iteration (all layers).
    pub live_replicas: u64,
    /// Shadow replicas whose copy is still running (all layers).
    pub pending_replicas: u64,
    /// Time added to the iteration by migration, ns: the blocking wait, or
    /// (non-invasive, with the reference run) this iteration's time minus
    /// the reference's; 0 without balancing. `None`: not measured (a
    /// non-invasive run without its reference run).
    pub critical_path_added_ns: Option<f64>,
}

/// Totals and means of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServingSummary {
    /// Iterations simulated.
    pub iterations: usize,
    /// MoE layers per iteration.
    pub layers: usize,
    /// Mean over iterations of [`IterationRow::max_over_mean_load`].
    pub mean_max_over_mean_load: f64,
    /// Total expert compute, ns.
    pub moe_compute_ns: f64,
    /// Total dispatch + combine, ns.
    pub alltoall_ns: f64,
    /// Total all-reduce, ns.
    pub allreduce_ns: f64,
    /// Total attention compute, ns.
    pub attention_ns: f64,
    /// Total run time, ns.
    pub total_ns: f64,
    /// Copies planned.
    pub migrations_planned: u64,
    /// Copies completed.
    pub migrations_completed: u64,
    /// Expert weight bytes planned for copying.
    pub migration_bytes: u64,
    /// Bytes x hops moved by migration traffic.
    pub migration_byte_hops: u64,
    /// Total time added by migration, ns (see [`IterationRow`]); `None`
    /// when not measured.
    pub critical_path_added_ns: Option<f64>,
    /// Non-invasive with reference: the largest relative difference of any
    /// iteration's all-reduce, dispatch or combine time from the reference's.
    pub max_phase_deviation: Option<f64>,
}

/// Per-link flits, by window and class, over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WindowLinkFlits {
    /// Collective flits in attention windows, per link of the link table.
    pub attention_collective: Vec<u64>,
    /// Migration flits in attention windows.
    pub attention_migration: Vec<u64>,
    /// Collective flits in MoE windows.
    pub moe_collective: Vec<u64>,
    /// Migration flits in MoE windows.
    pub moe_migration: Vec<u64>,
}

/// The result of a serving run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingResult {
    /// One row per iteration.
    pub rows: Vec<IterationRow>,
    /// Totals.
    pub summary: ServingSummary,
    /// The reference run's rows (non-invasive with reference only).
    pub reference_rows: Option<Vec<IterationRow>>,
    /// Link flits by window and class.
    #[serde(skip)]
    pub link_flits: WindowLinkFlits,
    /// Directed links (aligned with `link_flits`).
    #[serde(skip)]
    pub links: Vec<crate::collective::LinkInfo>,
}

// ---------------------------------------------------------------------------
// Migration background
// ---------------------------------------------------------------------------

/// One step of a non-invasive copy.
#[derive(Debug, Clone)]
struct Step {
    src: DeviceId,
    dst: DeviceId,
    hops: u64,
    kind: Window,
    packets: u64,
    last_packet_flits: u16,
}

#[derive(Debug, Clone)]
struct Job {
    layer: usize,
    expert: ExpertId,
    to: DeviceId,
    bytes: u64,
    steps: Vec<Step>,
    cur: usize,
    sent: u64,
    delivered: u64,
    /// Bytes of the current step already counted in byte-hops.
    counted: u64,
    outstanding: usize,
    cancelled: bool,
    done: bool,
}

/// The non-invasive migration engine as background traffic.
///
/// Work is proportional to activity: a job is in `ready[kind]` exactly when
/// its current step is of window `kind`, has packets left to send and fewer
/// than `cap` in flight; only the ready list of the open window is visited.
struct Migrations {
    jobs: Vec<Job>,
    /// Jobs not yet done (cleaned after each phase).
    active: Vec<usize>,
    /// Per window kind (0 attention, 1 MoE): jobs that can send now.
    ready: [Vec<usize>; 2],
    window: Window,
    cap: usize,
    flit_bytes: u64,
    max_packet_flits: u16,
    /// Jobs completed since the last drain.
    completed: Vec<usize>,
    /// Byte-hops since the last drain.
    byte_hops: u64,
}

fn kind_index(w: Window) -> usize {
    match w {
        Window::Attention => 0,
        Window::Moe => 1,
    }
}

impl Migrations {
    fn packet_flits(&self, step: &Step, k: u64) -> u16 {
        if k + 1 == step.packets {
            step.last_packet_flits
        } else {
            self.max_packet_flits
        }
    }

    /// Adds a new job (its first step waits for its window).
    fn push(&mut self, job: Job) {
        let j = self.jobs.len();
        let k = kind_index(job.steps[0].kind);
        self.jobs.push(job);
        self.active.push(j);
        self.ready[k].push(j);
    }

    /// Stops a job: nothing more is sent, packets in flight still arrive.
    fn cancel(&mut self, j: usize) {
        let job = &mut self.jobs[j];
        job.cancelled = true;
        if job.outstanding == 0 {
            job.done = true;
        }
        for r in &mut self.ready {
            r.retain(|&x| x != j);
        }
    }

    fn can_send(&self, j: usize) -> bool {
        let job = &self.jobs[j];
        !job.cancelled
            && !job.done
            && job.outstanding < self.cap
            && job.sent < job.steps[job.cur].packets
    }
}

impl Background for Migrations {
    fn inject(&mut self, net: &mut Network) -> Result<()> {
        let k = kind_index(self.window);
        if self.ready[k].is_empty() {
            return Ok(());
        }
        let list = std::mem::take(&mut self.ready[k]);
        let mut keep = Vec::with_capacity(list.len());
        for j in list {
            let job = &self.jobs[j];
            let step = &job.steps[job.cur];
            let (mut sent, mut out) = (job.sent, job.outstanding);
            while out < self.cap && sent < step.packets {
                net.enqueue(NewPacket {
                    src: step.src as u32,
                    dst: step.dst as u32,
                    size: self.packet_flits(step, sent),
                    class: CLASS_MIGRATION,
                    ctime: net.now(),
                    tag: BACKGROUND_TAG | j as u64,
                })?;
                sent += 1;
                out += 1;
            }
            let job = &mut self.jobs[j];
            job.sent = sent;
            job.outstanding = out;
            if self.can_send(j) {
                keep.push(j);
            }
        }
        self.ready[k] = keep;
        Ok(())
    }

    fn delivered(&mut self, d: &Delivered) {
        let j = (d.tag & !BACKGROUND_TAG) as usize;
        let flit_bytes = self.flit_bytes;
        let job = &mut self.jobs[j];
        let was_blocked = job.outstanding == self.cap;
        job.outstanding -= 1;
        let step = &job.steps[job.cur];
        if job.cancelled {
            // Partial copy: count what moved.
            let b = (u64::from(d.size) * flit_bytes).min(job.bytes - job.counted);
            job.counted += b;
            self.byte_hops += b * step.hops;
            if job.outstanding == 0 {
                job.done = true;
            }
            return;
        }
        job.delivered += 1;
        // Every packet is whole flits but the step's last flit may be
        // partly filled: cap the count at the step's bytes.
        let b = (u64::from(d.size) * flit_bytes).min(job.bytes - job.counted);
        job.counted += b;
        self.byte_hops += b * step.hops;
        if job.delivered == step.packets {
            debug_assert_eq!(job.counted, job.bytes);
            job.cur += 1;
            job.sent = 0;
            job.delivered = 0;
            job.counted = 0;
            if job.cur == job.steps.len() {
                job.done = true;
                self.completed.push(j);
            } else {
                let k = kind_index(job.steps[job.cur].kind);
                self.ready[k].push(j);
            }
        } else if was_blocked && job.sent < step.packets {
            let k = kind_index(step.kind);
            self.ready[k].push(j);
        }
    }

    fn busy(&self) -> bool {
        !self.ready[kind_index(self.window)].is_empty()
    }
}

/// The dimension-order path from `a` to `b` as a list of devices.
fn dor_path(wafer: &WaferSpec, routing: Routing, a: DeviceId, b: DeviceId) -> Vec<DeviceId> {
    let cols = wafer.mesh_cols();
    let (mut x, mut y) = (a % cols, a / cols);
    let (bx, by) = (b % cols, b / cols);
    let mut path = vec![a];
    let y_first = matches!(routing, Routing::Yx);
    for phase in 0..2 {
        let do_y = (phase == 0) == y_first;
        if do_y {
            while y != by {
                y = if by > y { y + 1 } else { y - 1 };
                path.push(y * cols + x);
            }
        } else {
            while x != bx {
                x = if bx > x { x + 1 } else { x - 1 };
                path.push(y * cols + x);
            }
        }
    }
    path
}

/// Cuts the path of a copy into steps of hops of the same kind.
fn copy_steps(
    layout: &Layout,
    routing: Routing,
    from: DeviceId,
    to: DeviceId,
    bytes: u64,
    flit_bytes: u64,
    max_packet_flits: u16,
) -> Result<Vec<Step>> {
    let path = dor_path(layout.spec(), routing, from, to);
    let flits = bytes.div_ceil(flit_bytes).max(1);
    let m = u64::from(max_packet_flits);
    let packets = flits.div_ceil(m);
    let last = (flits - (packets - 1) * m) as u16;
    let mut steps: Vec<Step> = Vec::new();
    for w in path.windows(2) {
        let kind = if layout.is_boundary_link(w[0], w[1])? {
            Window::Moe
        } else {
            Window::Attention
        };
        match steps.last_mut() {
            Some(s) if s.kind == kind => {
                s.dst = w[1];
                s.hops += 1;
            }
            _ => steps.push(Step {
                src: w[0],
                dst: w[1],
                hops: 1,
                kind,
                packets,
                last_packet_flits: last,
            }),
        }
    }
    Ok(steps)
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// Most routing counts (iterations × layers × DP groups × experts) a serving
/// study holds in memory: 2^27, about 1 GB.
pub const MAX_ROUTING_COUNTS: usize = 1 << 27;

/// Replicas that went live, as `(phases finished, layer, expert, device)`.
type CompletionLog = Vec<(u64, usize, ExpertId, DeviceId)>;

/// Checks a spec; the error names the first bad parameter.
fn validate(spec: &ServingSpec) -> Result<()> {
    spec.wafer.validate()?;
    spec.die.validate()?;
    spec.model.validate()?;
    spec.attention.validate()?;
    let param = |param: &'static str, reason: String| Err(CollectiveError::Param { param, reason });
    if spec.iterations == 0 {
        return param("iterations", "must be at least 1".into());
    }
    if spec.layers == 0 {
        return param("layers", "must be at least 1".into());
    }
    if spec.migration_window_packets == 0 {
        return param("migration_window_packets", "must be at least 1".into());
    }
    let n = spec.wafer.num_devices();
    if spec.model.experts % n != 0 {
        return param(
            "experts",
            format!(
                "{} experts on {n} devices: balancing needs the expert count to be a multiple \
                 of the device count (EP = N)",
                spec.model.experts
            ),
        );
    }
    if spec.noc.migration_vcs == 0
        && spec.migration == MigrationEngine::NonInvasive
        && spec.balancer.policy != wafernoc_moe::BalancePolicy::None
    {
        return param(
            "migration_vcs",
            "non-invasive migration needs at least one migration VC".into(),
        );
    }
    Ok(())
}

/// Every check [`run_serving`] makes before it draws routing or simulates:
/// the parameters, the layout, the HBM's room for the expert weights, the
/// size of the routing held in memory, the network and link table of the
/// phase runner, the balancer and the load predictor. Returns the layout.
/// [`draw_serving`] adds the routing and the KV cache's room.
pub fn check_serving(spec: &ServingSpec) -> Result<Layout> {
    validate(spec)?;
    let layout = spec.plan.layout(&spec.wafer, spec.model.experts)?;
    // The KV cache needs the tokens, which the routing feed gives: checked
    // with them in `draw_serving` once the routing is drawn.
    check_hbm_capacity(&spec.model, &spec.die, &layout, 0, 0)?;
    let dp = layout.dp();
    // The routing of every (iteration, layer) is held in memory: refuse a
    // study whose counts alone would take gigabytes (and `--iterations
    // 1000000000000`, which would abort on allocation).
    let entries = [spec.layers, dp, spec.model.experts]
        .iter()
        .try_fold(spec.iterations, |n, &m| n.checked_mul(m));
    if entries.is_none_or(|n| n > MAX_ROUTING_COUNTS) {
        return Err(CollectiveError::Param {
            param: "iterations",
            reason: format!(
                "{} iterations x {} layers x {dp} DP groups x {} experts is more than the \
                 supported {MAX_ROUTING_COUNTS} (2^27) routing counts held in memory",
                spec.iterations, spec.layers, spec.model.experts
            ),
        });
    }
    PhaseRunner::check(&spec.wafer, &layout, &spec.noc)?;
    Balancer::new(spec.balancer)?;
    LoadPredictor::new(spec.predictor, spec.model.experts)?;
    Ok(layout)
}

/// [`check_serving`], then the routing of every (iteration, layer) drawn
/// from `feed` and checked against the layout and, with the largest batch,
/// the HBM's room for the KV cache: everything [`run_serving`] does before it
/// simulates (and what `wafernoc sweep --dry-run` runs for a `balance`
/// point). Returns the layout and the routing.
pub fn draw_serving(
    spec: &ServingSpec,
    feed: &mut dyn RoutingFeed,
) -> Result<(Layout, Vec<Vec<LayerRouting>>)> {
    let layout = check_serving(spec)?;
    let dp = layout.dp();
    let mut routing = Vec::with_capacity(spec.iterations);
    for it in 0..spec.iterations {
        let mut per_layer = Vec::with_capacity(spec.layers);
        for l in 0..spec.layers {
            let r = feed.layer(it, l, dp)?;
            if r.counts.groups() != dp || r.counts.experts() != spec.model.experts {
                return Err(CollectiveError::Param {
                    param: "routing",
                    reason: format!(
                        "iteration {it} layer {l}: {} groups x {} experts, expected {dp} x {}",
                        r.counts.groups(),
                        r.counts.experts(),
                        spec.model.experts
                    ),
                });
            }
            per_layer.push(r);
        }
        routing.push(per_layer);
    }
    // The KV cache of the largest batch, before anything is simulated.
    let most = routing
        .iter()
        .flatten()
        .map(|r| r.tokens_per_group)
        .max()
        .unwrap_or(0);
    check_hbm_capacity(
        &spec.model,
        &spec.die,
        &layout,
        spec.attention.context_tokens,
        most,
    )?;
    Ok((layout, routing))
}

/// Longest compute window a run counts, in cycles (2^48: about 22 hours
/// of simulated time at 0.28 ns a cycle); far beyond any real layer, and
/// low enough that a run's sums of windows cannot overflow `u64`.
const MAX_WINDOW_CYCLES: u64 = 1 << 48;

/// The cycles of a compute window of `ns`, or an error naming the die
/// when it is beyond [`MAX_WINDOW_CYCLES`] (a die of 10^-11 TFLOP/s made
/// the sums wrap silently).
fn window_cycles(spec: &ServingSpec, what: &str, ns: f64) -> Result<u64> {
    let c = spec.wafer.ns_to_cycles(ns);
    if c > MAX_WINDOW_CYCLES {
        return Err(CollectiveError::Param {
            param: "die",
            reason: format!(
                "{what} takes {ns:.3e} ns, more than {MAX_WINDOW_CYCLES} cycles (2^48) on this \
                 die ({} TFLOP/s, {} GB/s): is the die that slow?",
                spec.die.peak_tflops, spec.die.hbm_gbps
            ),
        });
    }
    Ok(c)
}

/// Runs a serving study (see the module docs). `progress` is called after
/// every layer with `(iteration, layer)` of the main run.
pub fn run_serving(
    spec: &ServingSpec,
    feed: &mut dyn RoutingFeed,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ServingResult> {
    // Routing of every (iteration, layer), drawn once (the reference run
    // must see the same).
    let (layout, routing) = draw_serving(spec, feed)?;
    let mut log = CompletionLog::new();
    let (rows, link_flits, links) = simulate(spec, &layout, &routing, None, &mut log, progress)?;
    // A non-invasive run with balancing measures what migration costs
    // only against a reference run without migration flits.
    let needs_reference = spec.migration == MigrationEngine::NonInvasive
        && spec.balancer.policy != wafernoc_moe::BalancePolicy::None;
    let reference_rows = if spec.reference && needs_reference {
        let mut unused = CompletionLog::new();
        let (r, _, _) = simulate(
            spec,
            &layout,
            &routing,
            Some(&log),
            &mut unused,
            &mut |_, _| {},
        )?;
        Some(r)
    } else {
        None
    };
    let mut rows = rows;
    if needs_reference && reference_rows.is_none() {
        for r in &mut rows {
            r.critical_path_added_ns = None;
        }
    }
    let mut max_dev: Option<f64> = None;
    if let Some(refs) = &reference_rows {
        let rel = |a: f64, b: f64| if b > 0.0 { (a - b).abs() / b } else { 0.0 };
        let mut m: f64 = 0.0;
        for (r, g) in rows.iter_mut().zip(refs) {
            r.critical_path_added_ns = Some(r.iteration_ns - g.iteration_ns);
            m = m
                .max(rel(r.allreduce_ns, g.allreduce_ns))
                .max(rel(r.dispatch_ns, g.dispatch_ns))
                .max(rel(r.combine_ns, g.combine_ns));
        }
        max_dev = Some(m);
    }
    let k = rows.len().max(1) as f64;
    let sum = |f: fn(&IterationRow) -> f64| rows.iter().map(f).sum::<f64>();
    let sumu = |f: fn(&IterationRow) -> u64| rows.iter().map(f).sum::<u64>();
    let summary = ServingSummary {
        iterations: spec.iterations,
        layers: spec.layers,
        mean_max_over_mean_load: sum(|r| r.max_over_mean_load) / k,
        moe_compute_ns: sum(|r| r.moe_compute_ns),
        alltoall_ns: sum(|r| r.alltoall_ns),
        allreduce_ns: sum(|r| r.allreduce_ns),
        attention_ns: sum(|r| r.attention_ns),
        total_ns: sum(|r| r.iteration_ns),
        migrations_planned: sumu(|r| r.migrations_planned),
        migrations_completed: sumu(|r| r.migrations_completed),
        migration_bytes: sumu(|r| r.migration_bytes),
        migration_byte_hops: sumu(|r| r.migration_byte_hops),
        critical_path_added_ns: rows
            .iter()
            .map(|r| r.critical_path_added_ns)
            .sum::<Option<f64>>(),
        max_phase_deviation: max_dev,
    };
    Ok(ServingResult {
        rows,
        summary,
        reference_rows,
        link_flits,
        links,
    })
}

/// max/mean of per-device token copies served (1 when nothing is served).
fn load_ratio(per_device: &[Vec<(ExpertId, u64)>]) -> f64 {
    let loads: Vec<u64> = per_device
        .iter()
        .map(|l| l.iter().map(|&(_, c)| c).sum())
        .collect();
    let total: u64 = loads.iter().sum();
    if total == 0 {
        return 1.0;
    }
    let mean = total as f64 / loads.len() as f64;
    *loads.iter().max().unwrap_or(&0) as f64 / mean
}

/// Adds the per-link flits since `before` of the collective class to
/// `collective` and of the migration class to `migration`.
fn add_link_flits(
    runner: &PhaseRunner,
    before: &[u64],
    collective: &mut Vec<u64>,
    migration: &mut Vec<u64>,
) {
    let c = runner.network().num_classes();
    let lf = runner.network().link_flits();
    for (acc, class) in [
        (collective, CLASS_COLLECTIVE as usize),
        (migration, CLASS_MIGRATION as usize),
    ] {
        if acc.is_empty() {
            acc.resize(runner.links().len(), 0);
        }
        for (i, l) in runner.links().iter().enumerate() {
            let k = (l.src * PORTS + l.port as usize) * c + class;
            acc[i] += lf[k] - before[k];
        }
    }
}

/// One simulation of the whole run. With `ghost`, no migration traffic is
/// sent and replicas go live as the log says (the reference run).
fn simulate(
    spec: &ServingSpec,
    layout: &Layout,
    routing: &[Vec<LayerRouting>],
    ghost: Option<&CompletionLog>,
    log: &mut CompletionLog,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(
    Vec<IterationRow>,
    WindowLinkFlits,
    Vec<crate::collective::LinkInfo>,
)> {
    let mut runner = PhaseRunner::new(&spec.wafer, layout, &spec.noc)?;
    runner.progress_every = u64::MAX;
    let cyc_ns = spec.wafer.cycle_ns();
    let ns = |c: u64| c as f64 * cyc_ns;
    let experts = spec.model.experts;
    let expert_bytes = spec.model.expert_weight_bytes();
    let balancer = Balancer::new(spec.balancer)?;
    let mut live = Liveness {
        placements: (0..spec.layers).map(|_| Placement::new(layout)).collect(),
        phases_done: 0,
        ghost,
        ghost_next: 0,
        log,
    };
    let mut predictors = (0..spec.layers)
        .map(|_| LoadPredictor::new(spec.predictor, experts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut mig = Migrations {
        jobs: Vec::new(),
        active: Vec::new(),
        ready: [Vec::new(), Vec::new()],
        window: Window::Attention,
        cap: spec.migration_window_packets,
        flit_bytes: u64::from(spec.wafer.flit_bytes),
        max_packet_flits: spec.noc.max_packet_flits,
        completed: Vec::new(),
        byte_hops: 0,
    };
    let mut blocking_queue: Vec<(usize, wafernoc_moe::Migration)> = Vec::new();
    let mut rows = Vec::with_capacity(spec.iterations);
    let mut wlf = WindowLinkFlits::default();
    let mut noprog = |_: u64, _: &str| {};

    for (it, layers) in routing.iter().enumerate() {
        let mut row = IterationRow {
            iteration: it,
            critical_path_added_ns: Some(0.0),
            ..IterationRow::default()
        };
        let mut iter_cycles: u64 = 0;
        // Blocking copies planned after the previous iteration.
        if !blocking_queue.is_empty() {
            let mut s = Schedule::new();
            for (_, m) in &blocking_queue {
                let c = s.chain();
                s.push(
                    c,
                    m.from_device,
                    m.to_device,
                    m.bytes,
                    CLASS_COLLECTIVE,
                    &[],
                )?;
                let hops = live.placements[0]
                    .hops(m.from_device, m.to_device)
                    .unwrap_or(0) as u64;
                row.migration_byte_hops += m.bytes * hops;
            }
            let st = runner.run("migration", &s, &mut noprog)?;
            for (l, m) in blocking_queue.drain(..) {
                live.placements[l].mark_live(m.expert, m.to_device)?;
                row.migrations_completed += 1;
            }
            row.migration_stall_ns = ns(st.cycles);
            row.critical_path_added_ns = Some(ns(st.cycles));
            iter_cycles += st.cycles;
        }
        let mut ratio_sum = 0.0;
        let mut loads_per_layer: Vec<Vec<f64>> = Vec::with_capacity(layers.len());
        for (l, lr) in layers.iter().enumerate() {
            if l == 0 {
                row.tokens = lr.counts.total() / spec.model.top_k as u64;
            }
            let tokens = lr.tokens_per_group;
            // ---- Attention window.
            mig.window = Window::Attention;
            let snap = runner.network().link_flits();
            let a_ns =
                spec.attention
                    .layer_time_ns(&spec.model, &spec.die, l, tokens, spec.plan.tp);
            let a_cyc = window_cycles(spec, "attention", a_ns)?;
            runner.idle_with("attention", a_cyc, &mut mig)?;
            live.finish_phase(&mut mig, &mut row)?;
            let ar = allreduce_schedule(
                layout,
                spec.model.tp_allreduce_bytes(tokens),
                CLASS_COLLECTIVE,
            )?;
            let ars = runner.run_with("allreduce", &ar, &mut mig, &mut noprog)?;
            live.finish_phase(&mut mig, &mut row)?;
            add_link_flits(
                &runner,
                &snap,
                &mut wlf.attention_collective,
                &mut wlf.attention_migration,
            );
            // ---- MoE window.
            mig.window = Window::Moe;
            let snap = runner.network().link_flits();
            let placement = &live.placements[l];
            let a = assign(layout, placement, &lr.counts)?;
            let per_device = a.per_device();
            ratio_sum += load_ratio(&per_device);
            let comp = spec
                .compute
                .moe_layer(&spec.model, &spec.die, placement, &a)?;
            let d = dispatch(layout, &a, &spec.model, spec.alltoall)?;
            let c = combine(layout, &a, &spec.model, spec.alltoall)?;
            let ds = runner.run_with(
                "dispatch",
                &flows_schedule(&d.flows, CLASS_COLLECTIVE)?,
                &mut mig,
                &mut noprog,
            )?;
            live.finish_phase(&mut mig, &mut row)?;
            let c_cyc = window_cycles(spec, "expert compute", comp.max_ns)?;
            runner.idle_with("expert compute", c_cyc, &mut mig)?;
            live.finish_phase(&mut mig, &mut row)?;
            let cs = runner.run_with(
                "combine",
                &flows_schedule(&c.flows, CLASS_COLLECTIVE)?,
                &mut mig,
                &mut noprog,
            )?;
            live.finish_phase(&mut mig, &mut row)?;
            add_link_flits(
                &runner,
                &snap,
                &mut wlf.moe_collective,
                &mut wlf.moe_migration,
            );

            row.attention_ns += ns(a_cyc);
            row.allreduce_ns += ns(ars.cycles);
            row.dispatch_ns += ns(ds.cycles);
            row.combine_ns += ns(cs.cycles);
            row.moe_compute_ns += ns(c_cyc);
            iter_cycles += a_cyc + ars.cycles + ds.cycles + c_cyc + cs.cycles;
            loads_per_layer.push(
                lr.counts
                    .expert_totals()
                    .into_iter()
                    .map(|x| x as f64)
                    .collect(),
            );
            if ghost.is_none() {
                progress(it, l);
            }
        }
        row.alltoall_ns = row.dispatch_ns + row.combine_ns;
        row.max_over_mean_load = ratio_sum / layers.len().max(1) as f64;
        row.iteration_ns = ns(iter_cycles);
        // ---- Balancing after the iteration.
        for (l, loads) in loads_per_layer.iter().enumerate() {
            predictors[l].observe(loads)?;
            let predicted = predictors[l].predict();
            let plan = balancer.plan(&mut live.placements[l], &predicted, expert_bytes)?;
            for e in &plan.evictions {
                if !e.was_pending {
                    continue;
                }
                let hit: Vec<usize> = mig
                    .active
                    .iter()
                    .copied()
                    .filter(|&j| {
                        let job = &mig.jobs[j];
                        job.layer == l
                            && job.expert == e.expert
                            && job.to == e.device
                            && !job.done
                            && !job.cancelled
                    })
                    .collect();
                for j in hit {
                    mig.cancel(j);
                    row.migrations_cancelled += 1;
                }
                blocking_queue.retain(|(bl, m)| {
                    !(*bl == l && m.expert == e.expert && m.to_device == e.device)
                });
            }
            for m in &plan.migrations {
                row.migrations_planned += 1;
                row.migration_bytes += m.bytes;
                match spec.migration {
                    MigrationEngine::Blocking => blocking_queue.push((l, *m)),
                    MigrationEngine::NonInvasive if ghost.is_none() => {
                        let steps = copy_steps(
                            layout,
                            spec.noc.routing,
                            m.from_device,
                            m.to_device,
                            m.bytes,
                            u64::from(spec.wafer.flit_bytes),
                            spec.noc.max_packet_flits,
                        )?;
                        mig.push(Job {
                            layer: l,
                            expert: m.expert,
                            to: m.to_device,
                            bytes: m.bytes,
                            steps,
                            cur: 0,
                            sent: 0,
                            delivered: 0,
                            counted: 0,
                            outstanding: 0,
                            cancelled: false,
                            done: false,
                        });
                    }
                    MigrationEngine::NonInvasive => {}
                }
            }
        }
        let (mut n_live, mut n_pending) = (0u64, 0u64);
        for p in &live.placements {
            for e in 0..experts {
                for r in p.replicas(e).unwrap_or(&[]) {
                    if p.home_of(e) == Some(r.device) {
                        continue;
                    }
                    match r.state {
                        ReplicaState::Live => n_live += 1,
                        ReplicaState::Pending => n_pending += 1,
                    }
                }
            }
        }
        row.live_replicas = n_live;
        row.pending_replicas = n_pending;
        rows.push(row);
    }
    let links = runner.links().to_vec();
    Ok((rows, wlf, links))
}

/// Which replicas are live, and how they got there: in the main run from
/// completed copies (logged), in the reference run from that log.
struct Liveness<'a> {
    /// One placement per MoE layer.
    placements: Vec<Placement>,
    /// Phases (and compute windows) finished so far: the log's clock.
    phases_done: u64,
    /// The main run's log, in the reference run.
    ghost: Option<&'a CompletionLog>,
    /// Next entry of `ghost` to apply.
    ghost_next: usize,
    /// Completions of this run (main run only).
    log: &'a mut CompletionLog,
}

impl Liveness<'_> {
    /// Bookkeeping after every phase: completed copies go live (and are
    /// logged), or, in the reference run, the logged completions up to this
    /// phase are applied.
    fn finish_phase(&mut self, mig: &mut Migrations, row: &mut IterationRow) -> Result<()> {
        self.phases_done += 1;
        row.migration_byte_hops += std::mem::take(&mut mig.byte_hops);
        match self.ghost {
            None => {
                for j in std::mem::take(&mut mig.completed) {
                    let job = &mig.jobs[j];
                    self.placements[job.layer].mark_live(job.expert, job.to)?;
                    self.log
                        .push((self.phases_done, job.layer, job.expert, job.to));
                    row.migrations_completed += 1;
                }
                mig.active.retain(|&j| !mig.jobs[j].done);
            }
            Some(g) => {
                while let Some(&(p, l, e, d)) = g.get(self.ghost_next) {
                    if p > self.phases_done {
                        break;
                    }
                    self.placements[l].mark_live(e, d)?;
                    row.migrations_completed += 1;
                    self.ghost_next += 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wafernoc_moe::Mapping;

    #[test]
    fn dor_paths() {
        let w = WaferSpec::single(4, 4);
        assert_eq!(
            dor_path(&w, Routing::Xy, 0, 15),
            vec![0, 1, 2, 3, 7, 11, 15]
        );
        assert_eq!(
            dor_path(&w, Routing::Yx, 0, 15),
            vec![0, 4, 8, 12, 13, 14, 15]
        );
        assert_eq!(dor_path(&w, Routing::Xy, 5, 5), vec![5]);
    }

    #[test]
    fn steps_split_at_tile_boundaries() {
        // ER on 4x4 with 2x2 FTD tiles: 0 -> 3 crosses the boundary between
        // columns 1 and 2 once.
        let l = ParallelPlan::new(4, 4, Mapping::er())
            .layout(&WaferSpec::single(4, 4), 16)
            .unwrap();
        let s = copy_steps(&l, Routing::Xy, 0, 3, 256 * 40, 256, 16).unwrap();
        let shape: Vec<(DeviceId, DeviceId, u64, Window)> =
            s.iter().map(|s| (s.src, s.dst, s.hops, s.kind)).collect();
        assert_eq!(
            shape,
            vec![
                (0, 1, 1, Window::Attention),
                (1, 2, 1, Window::Moe),
                (2, 3, 1, Window::Attention)
            ]
        );
        // 40 flits in packets of at most 16: 16 + 16 + 8.
        assert_eq!((s[0].packets, s[0].last_packet_flits), (3, 8));
    }
}
