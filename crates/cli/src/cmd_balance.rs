//! `wafernoc balance`: serving iterations with expert load balancing and
//! weight migration (NI-Balancer and its baselines), simulated flit by flit
//! by `wafernoc_traffic::serving` (see its module documentation for the
//! timeline, the migration engines and the reference run).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use wafernoc_moe::{
    AllToAllMode, AttentionCost, BalancePolicy, BalancerConfig, ClusterLayer, ComputeModel,
    DieSpec, MappingKind, MoeError, MoeModel, ParallelPlan, PredictorKind, ProjectionAttention,
    RingPolicy, SwitchCluster, WaferSpec, DEFAULT_TRIGGER_ALPHA,
};
use wafernoc_trace::Iteration;
use wafernoc_traffic::collective::{CollectiveError, NocParams};
use wafernoc_traffic::serving::{
    draw_serving, run_serving, DriftingZipf, IterationRow, LayerRouting, MigrationEngine,
    RoutingFeed, ServingResult, ServingSpec, DEFAULT_MIGRATION_WINDOW_PACKETS,
};

use crate::cmd_moe::{
    err, fmt_pair, lib_err, make_dir, make_mapping, mapping_name, parse_alltoall,
    parse_mapping_kind, parse_pair, parse_ring, write_file,
};
use crate::plot::{
    line_chart_svg, link_heatmap_svg, LineChart, LinkHeat, LinkValue, Series, SeriesStyle,
};
use crate::progress::Progress;
use crate::trace_routing::TraceRouting;
use crate::{CliError, CmdResult};

/// Arguments of `wafernoc balance`.
#[derive(Args, Debug, Default)]
pub struct BalanceArgs {
    /// Model preset (e.g. GPT-OSS-20B, DeepSeek-V2-Lite).
    #[arg(long)]
    pub model: String,
    /// Die mesh of one wafer, RxC.
    #[arg(long, value_name = "RxC")]
    pub mesh: String,
    /// Wafers joined edge to edge, WxH. Default 1x1.
    #[arg(long, value_name = "WxH")]
    pub wafers: Option<String>,
    /// Tensor-parallel degree of attention.
    #[arg(long)]
    pub tp: usize,
    /// Data-parallel degree of attention (tp x dp = devices).
    #[arg(long)]
    pub dp: usize,
    /// block, er or her. Default er.
    #[arg(long)]
    pub mapping: Option<String>,
    /// Compact tile AxB. Default: the squarest shape.
    #[arg(long, value_name = "AxB")]
    pub tile: Option<String>,
    /// Ring direction policy: same, alternate or bidirectional. Default same.
    #[arg(long)]
    pub ring: Option<String>,
    /// `trace:FILE` (captured routing) or `zipf:S` (skewed synthetic routing
    /// whose ranking drifts every --drift-every iterations).
    #[arg(long)]
    pub routing: String,
    /// With a trace: continuous-batching slots (decode) or prefill chunk
    /// tokens. Default 64 (decode), 512 (prefill).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Iterations: `N` (the first N) or `A..B`. Default 100. (`moe
    /// --iterations N` selects iteration N alone.)
    #[arg(long, value_name = "N|A..B")]
    pub iterations: Option<String>,
    /// MoE layers per iteration: the first L (a count; `moe --layers`
    /// selects layers). Default: all of the model's (with a trace, at most
    /// the trace's).
    #[arg(
        long,
        value_name = "L",
        value_parser = parse_layer_count,
        allow_hyphen_values = true
    )]
    pub layers: Option<usize>,
    /// With zipf: tokens per DP group. Default 16.
    #[arg(long = "tokens-per-group")]
    pub tokens_per_group: Option<u64>,
    /// With zipf: iterations between popularity shifts. Default 20.
    #[arg(long = "drift-every")]
    pub drift_every: Option<usize>,
    /// With zipf: seed. Default 1.
    #[arg(long)]
    pub seed: Option<u64>,
    /// none, greedy or topology. Default topology.
    #[arg(long)]
    pub balancer: Option<String>,
    /// blocking or non-invasive. Default non-invasive.
    #[arg(long)]
    pub migration: Option<String>,
    /// Trigger: rebalance when max/mean load > 1 + alpha. Default 0.2.
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f64>,
    /// Load predictor: `ema:A` (0 < A <= 1) or `window:N`. Default ema:0.5.
    #[arg(long)]
    pub predictor: Option<String>,
    /// Shadow expert slots per device. Default 1.
    #[arg(long = "shadow-slots")]
    pub shadow_slots: Option<usize>,
    /// Packets in flight per non-invasive migration step. Default 8.
    #[arg(long = "window-packets")]
    pub window_packets: Option<usize>,
    /// Switch priority of migration flits, 0..=255 (collectives have 1).
    /// Default 0; 1 is the ablation where they compete as equals; 2 or
    /// more gives migration precedence over the collectives.
    #[arg(long = "migration-priority")]
    pub migration_priority: Option<u8>,
    /// Skip the reference run of a non-invasive study (then
    /// critical_path_added_ns is not measured: null in the JSON, an empty
    /// cell in iterations.csv).
    #[arg(long = "no-reference")]
    pub no_reference: bool,
    /// All-to-all senders: confined or global. Default confined.
    #[arg(long)]
    pub alltoall: Option<String>,
    /// Flit size in bytes. Default 256.
    #[arg(long = "flit-bytes")]
    pub flit_bytes: Option<u32>,
    /// Largest packet in flits. Default 16.
    #[arg(long = "packet-flits")]
    pub packet_flits: Option<u16>,
    /// Tokens of context each decoding token attends over: its KV cache is
    /// read in every layer's attention (on the wafer and in the GPU
    /// baseline) and must fit in HBM with the expert weights; at most the
    /// model's longest context (its max_position_embeddings). Default 0:
    /// the KV cache is not counted.
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub context: Option<u64>,
    /// Bytes per weight parameter, experts and attention projections (the
    /// model's precision: 2 for BF16, 0.53125 for GPT-OSS's MXFP4 experts).
    /// Default 1 (FP8; docs/moe.md). Sets the weight reads, the HBM check
    /// and the size of expert copies.
    #[arg(long = "param-bytes", allow_hyphen_values = true)]
    pub param_bytes: Option<f64>,
    /// KV-cache bytes per token of context and layer (e.g. half the
    /// preset's for an FP8 cache). Default: the preset's, at BF16.
    #[arg(long = "kv-bytes-per-token", value_name = "BYTES")]
    pub kv_bytes_per_token: Option<u64>,
    /// A die's peak dense throughput, TFLOP/s (the GPUs of
    /// `--gpu-baseline` are the same die). Default 2250 (B200 dense BF16).
    #[arg(long = "die-tflops", allow_hyphen_values = true)]
    pub die_tflops: Option<f64>,
    /// A die's HBM bandwidth, GB/s. Default 8000 (B200).
    #[arg(long = "die-hbm-gbps", allow_hyphen_values = true)]
    pub die_hbm_gbps: Option<f64>,
    /// A die's HBM capacity, GB (10^9 B): expert slots of every MoE layer
    /// and the KV cache must fit. Default 180 (B200).
    #[arg(long = "die-hbm-gb", allow_hyphen_values = true)]
    pub die_hbm_gb: Option<f64>,

    /// Also evaluate the analytic GPU baseline: this many GPUs behind one
    /// ideal switch (72: an NVL72), expert-parallel over all of them, at
    /// the wafer's tokens per device: zipf routing draws the same law
    /// (`--tokens-per-group / --tp` tokens per GPU); a trace is batched in
    /// `--slots x GPUS / devices` slots (refused unless both sides then hold
    /// the same tokens per device within 1%). Reports the per-device
    /// throughput of the two over MoE and over whole layers
    /// (docs/reproduction.md).
    #[arg(long = "gpu-baseline", value_name = "GPUS")]
    pub gpu_baseline: Option<usize>,
    /// GPU baseline: switch port bandwidth per GPU, GB/s per direction.
    /// Default 900 (NVLink 5).
    #[arg(long = "gpu-port-gbps", allow_negative_numbers = true)]
    pub gpu_port_gbps: Option<f64>,
    /// GPU baseline: time added to each all-to-all phase, ns. Default 0
    /// (the GPUs' best case).
    #[arg(long = "gpu-latency-ns", allow_negative_numbers = true)]
    pub gpu_latency_ns: Option<f64>,
    /// Write iterations.csv, result.json and SVG plots here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The resolved configuration (written into the JSON result).
#[derive(Debug, Clone, Serialize)]
struct Resolved {
    model_name: String,
    mesh: String,
    wafers: String,
    tp: usize,
    dp: usize,
    mapping: &'static str,
    routing: String,
    slots: Option<usize>,
    /// `slots` named for what it is ("64 slots", "512-token chunks").
    #[serde(skip)]
    slots_label: Option<String>,
    first_iteration: usize,
    tokens_per_group: Option<u64>,
    drift_every: Option<usize>,
    seed: Option<u64>,
    balancer: BalancePolicy,
    migration: &'static str,
    alpha: f64,
    predictor: PredictorKind,
    shadow_slots: usize,
    reference: bool,
    /// The GPU baseline, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_baseline: Option<GpuBaseline>,
    spec: ServingSpec,
}

/// The GPU baseline of a study: the cluster, and how its routing is drawn
/// so that a GPU holds as many tokens as a die (one routing group per GPU).
#[derive(Debug, Clone, Serialize)]
struct GpuBaseline {
    cluster: SwitchCluster,
    /// Zipf: tokens per GPU, `tokens_per_group / tp`. A trace: `None` (it
    /// varies by iteration).
    tokens_per_device: Option<u64>,
    /// A trace: the GPUs' continuous-batching slots (prefill: chunk
    /// tokens), the wafer's times `gpus / devices`.
    slots: Option<usize>,
    #[serde(skip)]
    feed: GpuFeed,
}

impl GpuBaseline {
    /// The most tokens a GPU holds in one iteration (its KV cache): one
    /// routing group per GPU, a trace's batch split as
    /// [`TraceRouting::counts`] splits it.
    fn max_tokens_per_gpu(&self) -> u64 {
        match &self.feed {
            GpuFeed::Zipf(z) => z.tokens_per_group,
            GpuFeed::Trace(t) => t
                .its
                .iter()
                .map(|it| it.tokens.len().div_ceil(self.cluster.gpus) as u64)
                .max()
                .unwrap_or(0),
        }
    }
}

/// The GPUs' routing: the wafer's Zipf law, seed and drift at the wafer's
/// tokens per device, or the same trace batched with proportionally more
/// (or fewer) slots.
#[derive(Debug, Clone)]
enum GpuFeed {
    Zipf(DriftingZipf),
    Trace(TraceFeed),
}

impl RoutingFeed for GpuFeed {
    fn layer(
        &mut self,
        iteration: usize,
        layer: usize,
        dp: usize,
    ) -> Result<LayerRouting, CollectiveError> {
        match self {
            GpuFeed::Zipf(z) => z.layer(iteration, layer, dp),
            GpuFeed::Trace(t) => t.layer(iteration, layer, dp),
        }
    }
}

fn parse_policy(s: &str) -> Result<BalancePolicy, CliError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(BalancePolicy::None),
        "greedy" => Ok(BalancePolicy::Greedy),
        "topology" => Ok(BalancePolicy::Topology),
        _ => Err(err(
            "balancer",
            format!("`{s}` is not one of none, greedy, topology"),
        )),
    }
}

fn parse_engine(s: &str) -> Result<MigrationEngine, CliError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "blocking" => Ok(MigrationEngine::Blocking),
        "non-invasive" | "noninvasive" | "ni" => Ok(MigrationEngine::NonInvasive),
        _ => Err(err(
            "migration",
            format!("`{s}` is not one of blocking, non-invasive"),
        )),
    }
}

fn parse_predictor(s: &str) -> Result<PredictorKind, CliError> {
    let t = s.trim().to_ascii_lowercase();
    let bad = || {
        err(
            "predictor",
            format!("`{s}` is not `ema:A` with 0 < A <= 1 or `window:N` with N >= 1"),
        )
    };
    if let Some(a) = t.strip_prefix("ema:") {
        let alpha: f64 = a.trim().parse().map_err(|_| bad())?;
        if !(alpha.is_finite() && alpha > 0.0 && alpha <= 1.0) {
            return Err(bad());
        }
        return Ok(PredictorKind::Ema { alpha });
    }
    if let Some(n) = t.strip_prefix("window:") {
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        return Ok(PredictorKind::SlidingWindow { n });
    }
    Err(bad())
}

/// `N` = 0..N, `A..B` = A..B.
fn parse_iterations(s: &str) -> Result<std::ops::Range<usize>, CliError> {
    let bad = || {
        err(
            "iterations",
            format!("`{s}` is not N >= 1 or A..B with A < B"),
        )
    };
    let r = match s.split_once("..") {
        Some((a, b)) => {
            a.trim().parse().map_err(|_| bad())?..b.trim().parse().map_err(|_| bad())?
        }
        None => 0..s.trim().parse().map_err(|_| bad())?,
    };
    if r.start >= r.end {
        return Err(bad());
    }
    Ok(r)
}

/// Iterations of a captured trace as a routing feed.
#[derive(Debug, Clone)]
struct TraceFeed {
    tr: TraceRouting,
    its: Vec<Iteration>,
    experts: usize,
}

impl RoutingFeed for TraceFeed {
    fn layer(
        &mut self,
        iteration: usize,
        layer: usize,
        dp: usize,
    ) -> Result<LayerRouting, CollectiveError> {
        let it = self
            .its
            .get(iteration)
            .ok_or_else(|| CollectiveError::Param {
                param: "iterations",
                reason: format!("the trace has no iteration {iteration} at these slots"),
            })?;
        let (counts, tokens_per_group, _) =
            self.tr
                .counts(it, layer, dp, self.experts)
                .map_err(|e| CollectiveError::Param {
                    param: "routing",
                    reason: e.to_string(),
                })?;
        Ok(LayerRouting {
            counts,
            tokens_per_group,
        })
    }
}

/// Every check `wafernoc balance` makes before it simulates, without
/// simulating or writing anything: the flags, the routing feed (a trace:
/// loaded, its iterations checked), the serving study and its routing
/// ([`draw_serving`]: the KV cache's room needs the batches). Used by
/// `sweep --dry-run`.
pub(crate) fn check(a: &BalanceArgs) -> Result<(), CliError> {
    let (r, mut feed) = prepare(a)?;
    draw_serving(&r.spec, feed.as_mut()).map_err(bal_err)?;
    Ok(())
}

/// The flags resolved into the study and its routing feed.
fn prepare(a: &BalanceArgs) -> Result<(Resolved, Box<dyn RoutingFeed>), CliError> {
    let mut model = MoeModel::preset(&a.model).map_err(|e| lib_err(e.into()))?;
    if let Some(b) = a.param_bytes {
        model.param_bytes = b;
        model
            .validate()
            .map_err(|e| gpu_err("param-bytes", e.reason()))?;
    }
    if let Some(b) = a.kv_bytes_per_token {
        model.kv_bytes_per_token = b;
    }
    let mesh = parse_pair("mesh", &a.mesh)?;
    let wafers = match &a.wafers {
        Some(s) => parse_pair("wafers", s)?,
        None => (1, 1),
    };
    let mapping = match &a.mapping {
        Some(s) => parse_mapping_kind(s)?,
        None => MappingKind::Er,
    };
    let tile = a
        .tile
        .as_deref()
        .map(|s| parse_pair("tile", s))
        .transpose()?;
    let ring = match &a.ring {
        Some(s) => parse_ring(s)?,
        None => RingPolicy::Same,
    };
    let policy = match &a.balancer {
        Some(s) => parse_policy(s)?,
        None => BalancePolicy::Topology,
    };
    let engine = match &a.migration {
        Some(s) => parse_engine(s)?,
        None => MigrationEngine::NonInvasive,
    };
    let predictor = match &a.predictor {
        Some(s) => parse_predictor(s)?,
        None => PredictorKind::default(),
    };
    let alpha = a.alpha.unwrap_or(DEFAULT_TRIGGER_ALPHA);
    let range = match &a.iterations {
        Some(s) => parse_iterations(s)?,
        None => 0..100,
    };
    let alltoall = match &a.alltoall {
        Some(s) => parse_alltoall(s)?,
        None => AllToAllMode::Confined,
    };
    let mut wafer = WaferSpec::multi(mesh.0, mesh.1, wafers.0, wafers.1);
    if let Some(f) = a.flit_bytes {
        wafer.flit_bytes = f;
    }
    // Before its device count is used (the GPU baseline divides by it).
    wafer.validate().map_err(|e| lib_err(e.into()))?;
    let mut noc = NocParams::default();
    if let Some(p) = a.packet_flits {
        noc.max_packet_flits = p;
    }
    if let Some(p) = a.migration_priority {
        noc.migration_priority = p;
    }
    let mut plan = ParallelPlan::new(a.tp, a.dp, make_mapping(mapping, tile, ring));
    if let Some(s) = a.shadow_slots {
        plan.shadow_slots_per_device = s;
    }

    // Routing feed.
    let trace_path = a.routing.trim().strip_prefix("trace:").map(PathBuf::from);
    let feed: Box<dyn RoutingFeed>;
    let mut feed_zipf = None;
    let mut feed_trace = None;
    let (mut slots, mut tokens_per_group, mut drift_every, mut seed) = (None, None, None, None);
    let mut slots_label = None;
    let trace_layers;
    if let Some(path) = &trace_path {
        if a.tokens_per_group.is_some() || a.drift_every.is_some() || a.seed.is_some() {
            return Err(err(
                "routing",
                "--tokens-per-group, --drift-every and --seed are for zipf routing; a trace \
                 gives its own tokens",
            ));
        }
        let tr = TraceRouting::load(path, &model, &a.model)?;
        if tr.trace.meta.phase == wafernoc_trace::Phase::Prefill && a.context.is_some_and(|c| c > 0)
        {
            return Err(err(
                "context",
                "models decode (every token attends over a cached context); a prefill trace's \
                 tokens attend over their own prompt, which the attention model does not cover",
            ));
        }
        let b = a.slots.unwrap_or(tr.default_slots());
        if b == 0 {
            return Err(err("slots", "must be at least 1"));
        }
        slots = Some(b);
        slots_label = Some(tr.slots_label(b));
        // (The whole range exists, or `iterations` names the trace's.)
        let its = tr.iterations(b, range.clone())?;
        trace_layers = Some(usize::from(tr.trace.meta.num_layers));
        if a.gpu_baseline.is_some() {
            let wafer_tokens = its.iter().map(|it| it.tokens.len() as u64).sum();
            feed_trace = Some((tr.clone(), b, range.clone(), wafer_tokens));
        }
        feed = Box::new(TraceFeed {
            tr,
            its,
            experts: model.experts,
        });
    } else {
        let s = a.routing.trim().to_ascii_lowercase();
        let zipf = s
            .strip_prefix("zipf:")
            .and_then(|x| x.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                err(
                    "routing",
                    format!(
                        "`{}` is not `trace:FILE` or `zipf:S` with S >= 0",
                        a.routing
                    ),
                )
            })?;
        if a.slots.is_some() {
            return Err(err("slots", "only with --routing trace:FILE"));
        }
        if range.start != 0 {
            return Err(err(
                "iterations",
                "A..B needs a trace; give the number of iterations",
            ));
        }
        let t = a.tokens_per_group.unwrap_or(16);
        if t == 0 {
            return Err(err("tokens_per_group", "must be at least 1"));
        }
        let d = a.drift_every.unwrap_or(20);
        if d == 0 {
            return Err(err("drift_every", "must be at least 1"));
        }
        let sd = a.seed.unwrap_or(1);
        (tokens_per_group, drift_every, seed) = (Some(t), Some(d), Some(sd));
        trace_layers = None;
        let z = DriftingZipf {
            experts: model.experts,
            top_k: model.top_k,
            s: zipf,
            tokens_per_group: t,
            drift_every: d,
            seed: sd,
        };
        feed_zipf = Some(z.clone());
        feed = Box::new(z);
    }
    let devices = wafer.num_devices();
    let gpu_baseline = gpu_baseline(a, feed_zipf, feed_trace, devices, model.experts)?;
    let max_layers = trace_layers.map_or(model.moe_layers, |t| t.min(model.moe_layers));
    let layers = a.layers.unwrap_or(max_layers);
    if layers == 0 || layers > max_layers {
        return Err(err(
            "layers",
            format!("{layers}: must be in 1..={max_layers} (the model's and routing's MoE layers)"),
        ));
    }
    let spec = ServingSpec {
        wafer,
        die: die_spec(a)?,
        model,
        plan,
        noc,
        alltoall,
        balancer: BalancerConfig {
            policy,
            trigger_alpha: alpha,
        },
        predictor,
        migration: engine,
        compute: ComputeModel::default(),
        attention: ProjectionAttention {
            context_tokens: a.context.unwrap_or(0),
            ..ProjectionAttention::default()
        },
        iterations: range.len(),
        layers,
        migration_window_packets: a.window_packets.unwrap_or(DEFAULT_MIGRATION_WINDOW_PACKETS),
        reference: !a.no_reference,
    };
    if let Some(g) = &gpu_baseline {
        let context = spec.attention.context_tokens;
        if let Err(e) = g
            .cluster
            .check_hbm(&spec.model, &spec.die, context, g.max_tokens_per_gpu())
        {
            let flag = match e.parameter() {
                "context" => "context",
                "shadow_slots_per_device" => "gpu-baseline / --die-hbm-gb",
                _ => "gpu-baseline",
            };
            return Err(gpu_err(
                flag,
                format!("on the GPUs (one DP group each): {}", e.reason()),
            ));
        }
    }
    let r = Resolved {
        model_name: spec.model.name.clone(),
        mesh: fmt_pair(mesh),
        wafers: fmt_pair(wafers),
        tp: a.tp,
        dp: a.dp,
        mapping: mapping_name(mapping),
        routing: a.routing.clone(),
        slots,
        slots_label,
        first_iteration: range.start,
        tokens_per_group,
        drift_every,
        seed,
        balancer: policy,
        migration: engine.name(),
        alpha,
        predictor,
        shadow_slots: spec.plan.shadow_slots_per_device,
        reference: spec.reference && engine == MigrationEngine::NonInvasive,
        gpu_baseline,
        spec,
    };
    Ok((r, feed))
}

/// The GPU baseline the flags ask for, checked so that a GPU holds as many
/// tokens as a die: with zipf routing `--tokens-per-group` a multiple of
/// `--tp`; with a trace `slots x gpus` a multiple of the wafer's devices,
/// and the GPUs' batches drawn (the range must exist at their slots).
fn gpu_baseline(
    a: &BalanceArgs,
    zipf: Option<DriftingZipf>,
    trace: Option<(TraceRouting, usize, std::ops::Range<usize>, u64)>,
    devices: usize,
    experts: usize,
) -> Result<Option<GpuBaseline>, CliError> {
    let Some(gpus) = a.gpu_baseline else {
        let given = if a.gpu_port_gbps.is_some() {
            Some("gpu-port-gbps")
        } else if a.gpu_latency_ns.is_some() {
            Some("gpu-latency-ns")
        } else {
            None
        };
        if let Some(flag) = given {
            return Err(gpu_err(
                flag,
                "it describes the GPU baseline: give --gpu-baseline GPUS too",
            ));
        }
        return Ok(None);
    };
    let d = SwitchCluster::default();
    let cluster = SwitchCluster {
        gpus,
        port_gbps: a.gpu_port_gbps.unwrap_or(d.port_gbps),
        // `+ 0.0` turns -0 into 0 (printed "+-0 ns" before).
        latency_ns: a.gpu_latency_ns.unwrap_or(d.latency_ns) + 0.0,
    };
    if let Err(e) = cluster.validate() {
        let flag = match e.parameter() {
            "gpus" => "gpu-baseline",
            "port_gbps" => "gpu-port-gbps",
            _ => "gpu-latency-ns",
        };
        return Err(gpu_err(flag, e.reason()));
    }
    if let Some((tr, b, range, wafer_tokens)) = trace {
        // A GPU holds as many tokens as a die: b slots over the wafer's
        // devices, b * gpus / devices over the GPUs.
        let total = b as u128 * gpus as u128;
        if total % devices as u128 != 0 {
            let step = devices / gcd(devices, gpus);
            return Err(gpu_err(
                "gpu-baseline",
                format!(
                    "--slots {b} x {gpus} GPUs is not a multiple of the wafer's {devices} devices: \
                     a GPU must hold as many tokens as a die (the GPUs batch slots x GPUs / \
                     devices); a multiple of {step} slots works"
                ),
            ));
        }
        let gpu_slots = usize::try_from(total / devices as u128).map_err(|_| {
            gpu_err(
                "gpu-baseline",
                format!("--slots {b} x {gpus} GPUs / {devices} devices is too many slots"),
            )
        })?;
        let (first, last) = (range.start, range.end);
        let its = tr.iterations(gpu_slots, range).map_err(|e| {
            gpu_err(
                "gpu-baseline",
                format!("the GPUs' batches of {gpu_slots} slots: {e}"),
            )
        })?;
        // Like for like or not at all: the batches must hold as many tokens
        // per device on both sides (within 1%). They do not when the trace
        // has fewer requests in flight than the GPUs' slots, or when the
        // wafer's batches are not full (a trace's last chunk).
        let gpu_tokens: u64 = its.iter().map(|it| it.tokens.len() as u64).sum();
        let (g, w) = (
            gpu_tokens as f64 / gpus as f64,
            wafer_tokens as f64 / devices as f64,
        );
        if (tokens_ratio(gpu_tokens, gpus, wafer_tokens, devices) - 1.0).abs() > 0.01 {
            let hint = if g < w {
                "the trace has fewer requests in flight than the GPUs' slots: give fewer --slots"
            } else {
                "the wafer's batches are not full there (a trace's last chunk?): choose \
                 --iterations where they are"
            };
            return Err(gpu_err(
                "gpu-baseline",
                format!(
                    "iterations {first}..{last}: the GPUs' batches of {gpu_slots} slots hold \
                     {g:.3} tokens per GPU, the wafer's of {b} slots {w:.3} per die; the \
                     comparison needs the same within 1% ({hint})"
                ),
            ));
        }
        return Ok(Some(GpuBaseline {
            cluster,
            tokens_per_device: None,
            slots: Some(gpu_slots),
            feed: GpuFeed::Trace(TraceFeed { tr, its, experts }),
        }));
    }
    let Some(z) = zipf else {
        return Err(gpu_err("gpu-baseline", "needs zipf or trace routing"));
    };
    let tp = a.tp.max(1) as u64;
    if z.tokens_per_group % tp != 0 {
        return Err(gpu_err(
            "gpu-baseline",
            format!(
                "--tokens-per-group {} is not a multiple of --tp {}: a GPU must hold as many \
                 tokens as a die (tokens per group / tp)",
                z.tokens_per_group, a.tp
            ),
        ));
    }
    let tokens_per_device = z.tokens_per_group / tp;
    Ok(Some(GpuBaseline {
        cluster,
        tokens_per_device: Some(tokens_per_device),
        slots: None,
        feed: GpuFeed::Zipf(DriftingZipf {
            tokens_per_group: tokens_per_device,
            ..z
        }),
    }))
}

/// Tokens per GPU over tokens per die: exactly 1 when the integer counts
/// agree (`gpu_tokens * devices == wafer_tokens * gpus`) or the wafer held
/// none.
fn tokens_ratio(gpu_tokens: u64, gpus: usize, wafer_tokens: u64, devices: usize) -> f64 {
    let (gn, wn) = (
        u128::from(gpu_tokens) * devices as u128,
        u128::from(wafer_tokens) * gpus as u128,
    );
    if gn == wn || wn == 0 {
        1.0
    } else {
        gn as f64 / wn as f64
    }
}

/// Greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `--layers`: a count. A range (`0..4`, as `moe --layers` takes) is
/// refused with the reason, not clap's "invalid digit".
fn parse_layer_count(s: &str) -> Result<usize, String> {
    if s.contains("..") {
        return Err(format!(
            "`{s}`: balance runs the first L layers of every iteration, so --layers \
             takes a count L (e.g. 4); layer ranges are `wafernoc moe --layers L..M`"
        ));
    }
    s.trim()
        .parse()
        .map_err(|e| format!("`{s}` is not a layer count: {e}"))
}

/// The die of `--die-*` (defaults: [`DieSpec::default`]), checked; an
/// error names the flag.
fn die_spec(a: &BalanceArgs) -> Result<DieSpec, CliError> {
    let d = DieSpec::default();
    let die = DieSpec {
        peak_tflops: a.die_tflops.unwrap_or(d.peak_tflops),
        hbm_gbps: a.die_hbm_gbps.unwrap_or(d.hbm_gbps),
        hbm_capacity_gb: a.die_hbm_gb.unwrap_or(d.hbm_capacity_gb),
    };
    die.validate().map_err(|e| {
        let flag = match e.parameter() {
            "peak_tflops" => "die-tflops",
            "hbm_gbps" => "die-hbm-gbps",
            _ => "die-hbm-gb",
        };
        gpu_err(flag, e.reason())
    })?;
    Ok(die)
}

/// An error naming a flag (`invalid --FLAG: why`); first written for the
/// GPU-baseline flags.
fn gpu_err(flag: &str, why: impl std::fmt::Display) -> CliError {
    CliError::new(format!("invalid --{flag}: {why}"))
}

/// One iteration of the GPU baseline: its MoE layers summed, their
/// data-parallel attention (the wafer's attention model with TP = 1 and
/// the GPU's tokens), and the tokens of the iteration over all GPUs.
struct GpuRow {
    moe: ClusterLayer,
    attention_ns: f64,
    tokens: u64,
}

/// The GPU baseline over the study's iterations and layers: one row per
/// iteration (sums over layers).
fn run_gpu_baseline(g: &GpuBaseline, spec: &ServingSpec) -> Result<Vec<GpuRow>, CliError> {
    let mut feed = g.feed.clone();
    let mut rows = Vec::with_capacity(spec.iterations);
    for it in 0..spec.iterations {
        let mut row = GpuRow {
            moe: ClusterLayer::default(),
            attention_ns: 0.0,
            tokens: 0,
        };
        for layer in 0..spec.layers {
            let routing = feed.layer(it, layer, g.cluster.gpus).map_err(bal_err)?;
            if layer == 0 {
                // As the wafer's rows count them.
                row.tokens = routing.counts.total() / spec.model.top_k as u64;
            }
            let l = g
                .cluster
                .moe_layer(&spec.model, &spec.die, &spec.compute, &routing.counts)
                .map_err(|e| lib_err(e.into()))?;
            row.moe += l;
            // One routing group per GPU: its tokens are the GPU's.
            let tokens = routing.tokens_per_group;
            row.attention_ns +=
                spec.attention
                    .layer_time_ns(&spec.model, &spec.die, layer, tokens, 1);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The two sides' totals over the run.
struct Comparison {
    /// The GPUs' MoE layers summed over the run.
    gpu: ClusterLayer,
    gpu_attention_ns: f64,
    /// Tokens per device over the run: the GPUs' (tokens / GPUs) over the
    /// wafer's (tokens / devices); exactly 1 with zipf routing, within 1%
    /// of it with a trace (refused otherwise: the two batchings admit
    /// requests at different times).
    gpu_over_wafer_tokens: f64,
    /// Dispatch, expert compute, combine and any blocking migration wait
    /// (all on the wafer's critical path).
    wafer_moe_ns: f64,
    wafer_allreduce_ns: f64,
    wafer_attention_ns: f64,
}

impl Comparison {
    fn new(g: &GpuBaseline, rows: &[GpuRow], res: &ServingResult, devices: usize) -> Comparison {
        let w = |f: &dyn Fn(&IterationRow) -> f64| res.rows.iter().map(f).sum::<f64>();
        let mut gpu = ClusterLayer::default();
        for r in rows {
            gpu += r.moe;
        }
        let gpu_tokens: u64 = rows.iter().map(|r| r.tokens).sum();
        let wafer_tokens: u64 = res.rows.iter().map(|r| r.tokens).sum();
        let gpu_over_wafer_tokens = tokens_ratio(gpu_tokens, g.cluster.gpus, wafer_tokens, devices);
        Comparison {
            gpu,
            gpu_attention_ns: rows.iter().map(|r| r.attention_ns).sum(),
            gpu_over_wafer_tokens,
            wafer_moe_ns: w(&|r| {
                r.dispatch_ns + r.moe_compute_ns + r.combine_ns + r.migration_stall_ns
            }),
            wafer_allreduce_ns: w(&|r| r.allreduce_ns),
            wafer_attention_ns: w(&|r| r.attention_ns),
        }
    }

    /// Per-device MoE throughput, wafer over GPUs: tokens per device over
    /// time on each side.
    fn moe_ratio(&self) -> Option<f64> {
        (self.wafer_moe_ns > 0.0)
            .then(|| self.gpu.moe_ns() / self.wafer_moe_ns / self.gpu_over_wafer_tokens)
    }

    /// The same over whole layers: attention (the wafer's TP, the GPUs' DP),
    /// the wafer's all-reduce, and MoE.
    fn layer_ratio(&self) -> Option<f64> {
        let wafer = self.wafer_attention_ns + self.wafer_allreduce_ns + self.wafer_moe_ns;
        (wafer > 0.0).then(|| {
            (self.gpu_attention_ns + self.gpu.moe_ns()) / wafer / self.gpu_over_wafer_tokens
        })
    }
}

/// The `gpu_baseline` object of the JSON result.
fn gpu_json(
    g: &GpuBaseline,
    rows: &[GpuRow],
    res: &ServingResult,
    devices: usize,
) -> serde_json::Value {
    let c = Comparison::new(g, rows, res, devices);
    serde_json::json!({
        "gpus": g.cluster.gpus,
        "port_gbps": g.cluster.port_gbps,
        "latency_ns": g.cluster.latency_ns,
        "tokens_per_device": g.tokens_per_device,
        "slots": g.slots,
        "gpu_over_wafer_tokens_per_device": c.gpu_over_wafer_tokens,
        "iterations": rows.iter().map(|r| serde_json::json!({
            "tokens": r.tokens,
            "attention_ns": r.attention_ns,
            "dispatch_ns": r.moe.dispatch_ns,
            "compute_ns": r.moe.compute_ns,
            "combine_ns": r.moe.combine_ns,
            "moe_ns": r.moe.moe_ns(),
            "token_copies": r.moe.token_copies,
            "local_token_copies": r.moe.local_token_copies,
        })).collect::<Vec<_>>(),
        "summary": {
            "attention_ns": c.gpu_attention_ns,
            "dispatch_ns": c.gpu.dispatch_ns,
            "compute_ns": c.gpu.compute_ns,
            "combine_ns": c.gpu.combine_ns,
            "moe_ns": c.gpu.moe_ns(),
        },
        "wafer_moe_ns": c.wafer_moe_ns,
        "wafer_allreduce_ns": c.wafer_allreduce_ns,
        "wafer_attention_ns": c.wafer_attention_ns,
        "wafer_over_gpu_per_device": c.moe_ratio(),
        "wafer_over_gpu_per_device_layer": c.layer_ratio(),
    })
}

/// `wafernoc balance`.
pub fn run(a: BalanceArgs) -> CmdResult {
    let wall = Instant::now();
    let (r, mut feed) = prepare(&a)?;
    let spec = &r.spec;
    let total = (spec.iterations * spec.layers) as u64;
    let bar = Progress::bar(a.quiet, total, "balance");
    let res = run_serving(spec, feed.as_mut(), &mut |it, l| {
        bar.set_position((it * spec.layers + l + 1) as u64);
        if l + 1 == spec.layers {
            bar.set_message(format!("iteration {}", it + 1));
        }
    });
    bar.finish_and_clear();
    let res = res.map_err(bal_err)?;
    let gpu = match &r.gpu_baseline {
        Some(g) => Some((g, run_gpu_baseline(g, spec)?)),
        None => None,
    };
    let mut json = result_json(&r, &res);
    if let Some((g, rows)) = &gpu {
        json["gpu_baseline"] = gpu_json(g, rows, &res, spec.wafer.num_devices());
    }
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| CliError::new(e.to_string()))? + "\n";
    if let Some(dir) = &a.out {
        write_outputs(dir, &r, &res, &text)?;
    }
    if a.json {
        print!("{text}");
    } else {
        print_text(&r, &res, wall.elapsed().as_secs_f64());
        if let Some((g, rows)) = &gpu {
            print_gpu(&r, g, rows, &res);
        }
        if let Some(dir) = &a.out {
            println!(
                "wrote {}/{{iterations.csv,result.json,load.svg,times.svg,links_*.svg}}",
                dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A library error as a CLI error naming the `balance` flag at fault.
fn bal_err(e: CollectiveError) -> CliError {
    let flag = match e.parameter() {
        Some("iterations") | Some("routing") | Some("drift_every") => {
            return CliError::new(e.to_string())
        }
        Some("trigger_alpha") => "alpha",
        Some("migration_window_packets") => "window-packets",
        Some("shadow_slots_per_device") | Some("shadow_slots") => "shadow-slots",
        Some("context") => "context",
        Some("die") => "die-tflops / --die-hbm-gbps",
        _ => return lib_err(e),
    };
    // Expert slots beyond HBM: too many slots, or too small a die.
    let flag = match &e {
        CollectiveError::Moe(MoeError::HbmCapacity { .. }) => "shadow-slots / --die-hbm-gb",
        _ => flag,
    };
    // The flag names the parameter: only the reason follows (was: "invalid
    // --alpha: parameter `trigger_alpha` = NaN is invalid: ...").
    let why = match &e {
        CollectiveError::Param { reason, .. } => reason.clone(),
        CollectiveError::Moe(m) => m.reason(),
        _ => e.to_string(),
    };
    CliError::new(format!("invalid --{flag}: {why}"))
}

fn result_json(r: &Resolved, res: &ServingResult) -> serde_json::Value {
    let mut v = serde_json::json!({
        "wafernoc_version": env!("CARGO_PKG_VERSION"),
        "command": "balance",
        "config": r,
        "summary": res.summary,
        "iterations": res.rows,
    });
    if let Some(refs) = &res.reference_rows {
        v["reference_iterations"] = serde_json::to_value(refs).unwrap_or_default();
    }
    v
}

fn print_text(r: &Resolved, res: &ServingResult, wall: f64) {
    let s = &res.summary;
    let us = |ns: f64| ns / 1e3;
    println!(
        "balance: {} on {} ({} wafers) {} TP{} DP{}, {} iterations x {} layers",
        r.model_name, r.mesh, r.wafers, r.mapping, r.tp, r.dp, s.iterations, s.layers
    );
    println!(
        "  routing {}{}; balancer {:?} (alpha {}, {} shadow slot(s)), migration {}",
        r.routing,
        r.slots_label
            .as_ref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default(),
        r.balancer,
        r.alpha,
        r.shadow_slots,
        r.migration
    );
    println!("  attention: {}", attention_desc(&r.spec));
    let d = &r.spec.die;
    // As given, but in e-notation far from 1 (1e308 printed 309 digits).
    let num = |x: f64| {
        if x != 0.0 && !(1e-3..1e7).contains(&x.abs()) {
            format!("{x:e}")
        } else {
            format!("{x}")
        }
    };
    println!(
        "  precision: {} B per weight parameter (--param-bytes), KV cache {} B per token and \
         layer (--kv-bytes-per-token)",
        num(r.spec.model.param_bytes),
        r.spec.model.kv_bytes_per_token
    );
    println!(
        "  die: {} TFLOP/s, HBM {} GB/s, {} GB (--die-tflops, --die-hbm-gbps, --die-hbm-gb)",
        num(d.peak_tflops),
        num(d.hbm_gbps),
        num(d.hbm_capacity_gb)
    );
    println!(
        "max/mean device load (mean over iterations): {:.3}",
        s.mean_max_over_mean_load
    );
    println!(
        "time: MoE compute {:.1} us, all-to-all {:.1} us, all-reduce {:.1} us, attention {:.1} us; total {:.1} us",
        us(s.moe_compute_ns),
        us(s.alltoall_ns),
        us(s.allreduce_ns),
        us(s.attention_ns),
        us(s.total_ns)
    );
    println!(
        "migration: {} planned ({:.1} MB), {} completed, {:.3e} byte-hops",
        s.migrations_planned,
        s.migration_bytes as f64 / 1e6,
        s.migrations_completed,
        s.migration_byte_hops as f64
    );
    match (r.migration, s.max_phase_deviation) {
        _ if r.balancer == BalancePolicy::None => {
            println!("critical path added: 0 (no balancing, no migration)")
        }
        ("blocking", _) => println!(
            "critical path added: {:.1} us (blocking copies)",
            us(s.critical_path_added_ns.unwrap_or(0.0))
        ),
        (_, Some(d)) => println!(
            "critical path added: {:.3} us vs the reference run without migration flits; largest \
             all-reduce/dispatch/combine deviation {:.3}%",
            us(s.critical_path_added_ns.unwrap_or(0.0)),
            d * 100.0
        ),
        _ => println!("critical path added: not measured (--no-reference)"),
    }
    println!("wall time {wall:.2} s");
}

/// The load plot's series: the measured max/mean load, and flat lines at
/// perfect balance (1) and at the balancer's trigger (1 + alpha), so that
/// the axis always shows how far the load is from both (it started at the
/// data's minimum, 2.6 on the GPT-OSS trace, before).
fn load_series(r: &Resolved, load: Series) -> Vec<Series> {
    let mut v = vec![load];
    let mut lines = vec![("perfect balance".to_string(), 1.0)];
    if r.balancer != BalancePolicy::None {
        let y = 1.0 + r.alpha;
        lines.push((format!("trigger (1 + alpha = {y})"), y));
    }
    for (name, y) in lines {
        if let Some(s) = Series::flat(name, y, &v[..1]) {
            v.push(s);
        }
    }
    v
}

/// The attention model in words, for the text report.
fn attention_desc(spec: &ServingSpec) -> String {
    let m = &spec.model;
    match spec.attention.context_tokens {
        0 => "projections only, KV cache not counted (--context 0)".into(),
        c => format!(
            "projections + KV cache and score FLOPs over {c} tokens of context ({} B per token \
             and layer, {}{})",
            m.kv_bytes_per_token,
            match m.kv_heads {
                1 => "read whole by every TP member".to_string(),
                n => format!("split over up to {n} TP members"),
            },
            match m.alternate_sliding_window {
                0 => String::new(),
                w => format!(", {w}-token window on every other layer"),
            }
        ),
    }
}

fn print_gpu(r: &Resolved, g: &GpuBaseline, rows: &[GpuRow], res: &ServingResult) {
    let gc = &g.cluster;
    let us = |ns: f64| ns / 1e3;
    let c = Comparison::new(g, rows, res, r.spec.wafer.num_devices());
    let tokens = match (g.tokens_per_device, g.slots) {
        (Some(t), _) => format!("{t} tokens per device as on the wafer"),
        (None, Some(b)) => format!(
            "the trace batched in {b} slots (tokens per device {:.4}x the wafer's, compensated)",
            c.gpu_over_wafer_tokens
        ),
        (None, None) => String::new(),
    };
    println!(
        "GPU baseline: {} GPUs behind one ideal switch, {} GB/s per port (+{} ns per phase), \
         {tokens}",
        gc.gpus, gc.port_gbps, gc.latency_ns
    );
    let experts = r.spec.model.experts;
    if gc.gpus > experts {
        println!(
            "  ({} of the {} GPUs host no expert: {} experts)",
            gc.gpus - experts,
            gc.gpus,
            experts
        );
    }
    println!(
        "  MoE time (dispatch + expert compute + combine): wafer {:.1} us, GPUs {:.1} us \
         (dispatch {:.1}, compute {:.1}, combine {:.1})",
        us(c.wafer_moe_ns),
        us(c.gpu.moe_ns()),
        us(c.gpu.dispatch_ns),
        us(c.gpu.compute_ns),
        us(c.gpu.combine_ns)
    );
    println!(
        "  attention: wafer {:.1} us (TP{}) + all-reduce {:.1} us, GPUs {:.1} us (data-parallel)",
        us(c.wafer_attention_ns),
        r.tp,
        us(c.wafer_allreduce_ns),
        us(c.gpu_attention_ns)
    );
    if let Some(m) = c.moe_ratio() {
        // The paper's figure only where its comparison is the one run.
        let paper = if gc.gpus == 72 && r.spec.wafer.num_devices() == 256 {
            " (MoEntwine: about 1.39x for 256 dies against an NVL72)"
        } else {
            ""
        };
        println!("  per-device throughput, wafer / GPUs: MoE {m:.2}x{paper}");
    }
    if let Some(l) = c.layer_ratio() {
        println!("  per-device throughput, wafer / GPUs: whole layers {l:.2}x");
    }
}

/// One row per serving iteration: `iteration` counts from 0 in the run,
/// `trace_iteration` is the routing's (with `--iterations 100..104`, 100 to
/// 103: what the plots' x axes show).
fn iterations_csv(rows: &[IterationRow], first: usize) -> String {
    let mut s = String::from(
        "iteration,trace_iteration,tokens,max_over_mean_load,attention_ns,allreduce_ns,dispatch_ns,combine_ns,\
         alltoall_ns,moe_compute_ns,migration_stall_ns,iteration_ns,migrations_planned,\
         migrations_completed,migrations_cancelled,migration_bytes,migration_byte_hops,\
         live_replicas,pending_replicas,critical_path_added_ns\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{:.6},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{},{},{},{},{},{}",
            r.iteration,
            r.iteration + first,
            r.tokens,
            r.max_over_mean_load,
            r.attention_ns,
            r.allreduce_ns,
            r.dispatch_ns,
            r.combine_ns,
            r.alltoall_ns,
            r.moe_compute_ns,
            r.migration_stall_ns,
            r.iteration_ns,
            r.migrations_planned,
            r.migrations_completed,
            r.migrations_cancelled,
            r.migration_bytes,
            r.migration_byte_hops,
            r.live_replicas,
            r.pending_replicas,
            // Empty when not measured (--no-reference).
            r.critical_path_added_ns
                .map(|v| format!("{v:.3}"))
                .unwrap_or_default()
        );
    }
    s
}

fn write_outputs(
    dir: &Path,
    r: &Resolved,
    res: &ServingResult,
    json: &str,
) -> Result<(), CliError> {
    make_dir(dir)?;
    write_file(&dir.join("result.json"), json)?;
    write_file(
        &dir.join("iterations.csv"),
        &iterations_csv(&res.rows, r.first_iteration),
    )?;
    let title = format!(
        "{} {} {} TP{} DP{}: {:?} + {}",
        r.model_name, r.mesh, r.mapping, r.tp, r.dp, r.balancer, r.migration
    );
    let series = |name: &str, f: &dyn Fn(&IterationRow) -> f64| Series {
        name: name.into(),
        points: res
            .rows
            .iter()
            .map(|x| (x.iteration as f64 + r.first_iteration as f64, f(x)))
            .collect(),
        style: SeriesStyle::Line,
    };
    write_file(
        &dir.join("load.svg"),
        &line_chart_svg(&LineChart {
            title: format!("{title}: device load imbalance"),
            x_label: "iteration (trace_iteration in iterations.csv)".into(),
            y_label: "max / mean device load (mean over layers)".into(),
            series: load_series(r, series("max/mean load", &|x| x.max_over_mean_load)),
            y_max: None,
            log_y: false,
            log_x: false,
        }),
    )?;
    write_file(
        &dir.join("times.svg"),
        &line_chart_svg(&LineChart {
            title: format!("{title}: time per iteration"),
            x_label: "iteration (trace_iteration in iterations.csv)".into(),
            y_label: "us per iteration (all layers)".into(),
            series: vec![
                series("iteration total", &|x| x.iteration_ns / 1e3),
                series("MoE compute", &|x| x.moe_compute_ns / 1e3),
                series("attention compute", &|x| x.attention_ns / 1e3),
                series("all-to-all", &|x| x.alltoall_ns / 1e3),
                series("all-reduce", &|x| x.allreduce_ns / 1e3),
                series("migration stall", &|x| x.migration_stall_ns / 1e3),
            ],
            y_max: None,
            log_y: false,
            log_x: false,
        }),
    )?;
    let cols = r.spec.wafer.mesh_cols();
    let rows = r.spec.wafer.mesh_rows();
    let tile = r
        .spec
        .plan
        .layout(&r.spec.wafer, r.spec.model.experts)
        .ok()
        .map(|l| {
            let g = l.tile_grid();
            (g.tile_rows, g.tile_cols)
        });
    let lf = &res.link_flits;
    // The two windows' maps of a class share one colour scale, so that
    // they compare side by side (was: each its own, 3.5x apart).
    let top = |a: &[u64], b: &[u64]| a.iter().chain(b).copied().max().unwrap_or(0) as f64;
    let collective = top(&lf.attention_collective, &lf.moe_collective);
    let migration = top(&lf.attention_migration, &lf.moe_migration);
    for (name, v, scale) in [
        ("attention_collective", &lf.attention_collective, collective),
        ("attention_migration", &lf.attention_migration, migration),
        ("moe_collective", &lf.moe_collective, collective),
        ("moe_migration", &lf.moe_migration, migration),
    ] {
        let links = res
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| LinkValue {
                from: (l.src / cols, l.src % cols),
                to: (l.dst / cols, l.dst % cols),
                value: v.get(i).copied().unwrap_or(0) as f64,
            })
            .collect();
        write_file(
            &dir.join(format!("links_{name}.svg")),
            &link_heatmap_svg(&LinkHeat {
                rows,
                cols,
                links,
                title: format!(
                    "{title}: {} flits per link over the run (scale shared with the other window)",
                    name.replace('_', " ")
                ),
                max_value: (scale > 0.0).then_some(scale),
                tile,
                value_label: "flits".into(),
            }),
        )?;
    }
    Ok(())
}
