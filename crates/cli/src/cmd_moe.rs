//! `wafernoc moe`: one MoE layer (all-reduce, dispatch, combine) as flit
//! traffic, and `wafernoc moe --sweep`: the block vs ER mapping comparison.
//!
//! The layer is simulated by `wafernoc_traffic::collective` (see its module
//! documentation for the closed loop, packetisation and measurement). This
//! module resolves the configuration (flags, or the same keys in a TOML file;
//! flags override the file), prints per-phase figures, and writes JSON, CSV
//! and SVG heat maps.
//!
//! `--mesh RxC` is the die mesh of **one wafer**; with `--wafers WxH` the
//! device mesh is `(R*H) x (C*W)`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};
use wafernoc_moe::{
    AllToAllMode, Mapping, MappingKind, MoeModel, ParallelPlan, RingPolicy, RoutingSource,
    TileKind, WaferSpec,
};
use wafernoc_traffic::collective::{
    check_layer, network_config, simulate_layer, simulate_layer_captured, CollectiveError,
    LayerResult, LayerSpec, LayerWorkload, LinkInfo, NocParams, PhaseStats,
};

use crate::moe_capture::MoeCapture;
use crate::plot::{
    bar_chart_svg, line_chart_svg, link_heatmap_svg, LineChart, LinkHeat, LinkValue, Series,
    SeriesStyle,
};
use crate::progress::Progress;
use crate::{CliError, CmdResult};

/// Arguments of `wafernoc moe`.
#[derive(Args, Debug, Default)]
pub struct MoeArgs {
    /// TOML file with the keys of the layer's flags (`tokens_per_group`,
    /// `flit_bytes`, ... with underscores; not the trace ranges `slots`,
    /// `iterations`, `layers`), the link keys `link_gbps_per_dir`,
    /// `hop_latency_ns`, `cross_wafer_gbps`, `cross_wafer_latency_ns`, and
    /// an optional `[noc]` table (docs/examples/moe_layer.toml lists them
    /// all); flags given on the command line override it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Model preset (DeepSeek-V3, DeepSeek-V2, DeepSeek-V2-Lite, Qwen3-235B,
    /// DBRX, Mixtral-8x22B, GPT-OSS-20B).
    #[arg(long)]
    pub model: Option<String>,
    /// Die mesh of one wafer, RxC (rows x columns).
    #[arg(long, value_name = "RxC")]
    pub mesh: Option<String>,
    /// Wafers joined edge to edge, WxH (along x, along y). Default 1x1.
    #[arg(long, value_name = "WxH")]
    pub wafers: Option<String>,
    /// Tensor-parallel degree of attention.
    #[arg(long)]
    pub tp: Option<usize>,
    /// Data-parallel degree of attention (tp x dp = devices).
    #[arg(long)]
    pub dp: Option<usize>,
    /// block, er or her.
    #[arg(long)]
    pub mapping: Option<String>,
    /// Compact tile AxB (TP tile for block, FTD tile for er/her). Default:
    /// the squarest shape.
    #[arg(long, value_name = "AxB")]
    pub tile: Option<String>,
    /// Ring direction policy: same, alternate or bidirectional. Default same.
    #[arg(long)]
    pub ring: Option<String>,
    /// Tokens per DP group.
    #[arg(long = "tokens-per-group", value_name = "N")]
    pub tokens_per_group: Option<u64>,
    /// Token routing: uniform, zipf:S, or trace:FILE (a captured routing
    /// trace; see --slots, --iterations, --layers). Default uniform.
    #[arg(long)]
    pub routing: Option<String>,
    /// Seed of the routing draw. Default 1.
    #[arg(long)]
    pub seed: Option<u64>,
    /// All-to-all senders: confined (MoEntwine) or global. Default confined.
    #[arg(long)]
    pub alltoall: Option<String>,
    /// Flit size in bytes. Default 256.
    #[arg(long = "flit-bytes")]
    pub flit_bytes: Option<u32>,
    /// Largest packet in flits. Default 16.
    #[arg(long = "packet-flits")]
    pub packet_flits: Option<u16>,
    /// Write per-link CSV, per-phase heat maps (SVG) and the JSON result here
    /// (with --sweep: the sweep's CSV, plots and Markdown table).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// No progress on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Run the block vs ER mapping sweep instead of one layer (needs --out;
    /// --tokens-per-group and --seed apply; the other layer flags are not
    /// allowed).
    #[arg(long)]
    pub sweep: bool,
    /// With --sweep: only the 4x4 and 8x8 points (a quick check).
    #[arg(long)]
    pub quick: bool,
    /// With `--routing trace:FILE`: continuous-batching slots (decode
    /// traces) or prefill chunk tokens. Default 64 (decode), 512 (prefill).
    #[arg(long)]
    pub slots: Option<usize>,
    /// With `--routing trace:FILE`: serving iterations `A..B`, or `N`
    /// alone: iteration N only (`balance --iterations N` counts the first
    /// N instead). Default 0..1.
    #[arg(long, value_name = "A..B")]
    pub iterations: Option<String>,
    /// With `--routing trace:FILE`: MoE layers `L..M`, or `L` alone: layer
    /// L only (`balance --layers L` counts the first L instead). Default
    /// 0..1.
    #[arg(long, value_name = "L..M")]
    pub layers: Option<String>,
    /// Write every packet of every phase run to a packet trace, one file per
    /// phase: `PATH` with the phase (and, with `--routing trace:FILE`, the
    /// iteration and layer) inserted before the extension, e.g.
    /// `cap.dispatch.wnpt`, `cap.i0.l0.allreduce.wnpt` (`.wnpt` binary,
    /// `.jsonl` text). Replay with `replay-packets --mode open` or `--mode
    /// deps`; see docs/traces.md.
    #[arg(long, value_name = "PATH")]
    pub capture: Option<PathBuf>,
    /// Write one CSV row per delivered packet of every phase run (delivery
    /// order, `src,dst,size,ctime,itime,atime,latency`), one file per phase
    /// named like `--capture`'s.
    #[arg(long = "per-packet", value_name = "PATH.csv")]
    pub per_packet: Option<PathBuf>,
}

/// The keys of a `wafernoc moe` TOML file (all optional here; the required
/// ones must come from the file or the flags).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeFile {
    /// Model preset.
    pub model: Option<String>,
    /// Die mesh of one wafer, "RxC".
    pub mesh: Option<String>,
    /// Wafers, "WxH".
    pub wafers: Option<String>,
    /// TP degree.
    pub tp: Option<usize>,
    /// DP degree.
    pub dp: Option<usize>,
    /// "block", "er" or "her".
    pub mapping: Option<String>,
    /// "AxB".
    pub tile: Option<String>,
    /// "same", "alternate" or "bidirectional".
    pub ring: Option<String>,
    /// Tokens per DP group.
    pub tokens_per_group: Option<u64>,
    /// "uniform" or "zipf:S".
    pub routing: Option<String>,
    /// Seed.
    pub seed: Option<u64>,
    /// "confined" or "global".
    pub alltoall: Option<String>,
    /// Flit size in bytes.
    pub flit_bytes: Option<u32>,
    /// Largest packet in flits.
    pub packet_flits: Option<u16>,
    /// On-wafer link bandwidth per direction, GB/s.
    pub link_gbps_per_dir: Option<f64>,
    /// On-wafer hop latency, ns.
    pub hop_latency_ns: Option<f64>,
    /// Cross-wafer link bandwidth per direction, GB/s.
    pub cross_wafer_gbps: Option<f64>,
    /// Cross-wafer link latency, ns.
    pub cross_wafer_latency_ns: Option<f64>,
    /// Router and packet parameters.
    pub noc: Option<NocParams>,
    /// Whether the file's `[noc]` table gives `max_packet_flits` (the
    /// same setting as `packet_flits`; [`NocParams`] fills in a default,
    /// so its value alone does not say).
    #[serde(skip)]
    pub noc_max_packet_flits_given: bool,
}

impl MoeFile {
    /// Parses a `wafernoc moe` TOML file.
    pub fn parse(text: &str) -> Result<MoeFile, toml::de::Error> {
        let mut file: MoeFile = toml::from_str(text)?;
        file.noc_max_packet_flits_given = toml::from_str::<toml::Table>(text)?
            .get("noc")
            .and_then(|n| n.get("max_packet_flits"))
            .is_some();
        Ok(file)
    }
}

pub(crate) fn err(param: &str, msg: impl std::fmt::Display) -> CliError {
    CliError::new(format!("parameter `{param}`: {msg}"))
}

/// Parses "AxB" (also `X` or `×`) into two positive integers.
pub fn parse_pair(param: &str, s: &str) -> Result<(usize, usize), CliError> {
    let t = s.trim().replace(['X', '×'], "x");
    let bad = || {
        err(
            param,
            format!("`{s}` is not of the form AxB with A, B >= 1 (e.g. 8x8)"),
        )
    };
    let (a, b) = t.split_once('x').ok_or_else(bad)?;
    let a: usize = a.trim().parse().map_err(|_| bad())?;
    let b: usize = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || b == 0 {
        return Err(bad());
    }
    Ok((a, b))
}

pub(crate) fn parse_ring(s: &str) -> Result<RingPolicy, CliError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "same" => Ok(RingPolicy::Same),
        "alternate" => Ok(RingPolicy::Alternate),
        "bidirectional" | "bidir" => Ok(RingPolicy::Bidirectional),
        _ => Err(err(
            "ring",
            format!("`{s}` is not one of same, alternate, bidirectional"),
        )),
    }
}

fn ring_name(r: RingPolicy) -> &'static str {
    match r {
        RingPolicy::Same => "same",
        RingPolicy::Alternate => "alternate",
        RingPolicy::Bidirectional => "bidirectional",
    }
}

pub(crate) fn parse_mapping_kind(s: &str) -> Result<MappingKind, CliError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "block" => Ok(MappingKind::Block),
        "er" => Ok(MappingKind::Er),
        "her" => Ok(MappingKind::Her),
        _ => Err(err(
            "mapping",
            format!("`{s}` is not one of block, er, her"),
        )),
    }
}

/// A mapping's name in plots (`ER`, as the papers write it).
fn mapping_label(k: MappingKind) -> &'static str {
    match k {
        MappingKind::Block => "block",
        MappingKind::Er => "ER",
        MappingKind::Her => "HER",
    }
}

pub(crate) fn mapping_name(k: MappingKind) -> &'static str {
    match k {
        MappingKind::Block => "block",
        MappingKind::Er => "er",
        MappingKind::Her => "her",
    }
}

pub(crate) fn make_mapping(
    kind: MappingKind,
    tile: Option<(usize, usize)>,
    ring: RingPolicy,
) -> Mapping {
    match kind {
        MappingKind::Block => Mapping::Block { tile, ring },
        MappingKind::Er => Mapping::Er { tile, ring },
        MappingKind::Her => Mapping::Her { tile, ring },
    }
}

/// Parses "uniform" or "zipf:S".
pub fn parse_routing(s: &str) -> Result<RoutingSource, CliError> {
    let t = s.trim().to_ascii_lowercase();
    if t == "uniform" {
        return Ok(RoutingSource::Uniform);
    }
    if let Some(x) = t.strip_prefix("zipf:") {
        if let Ok(v) = x.trim().parse::<f64>() {
            if v.is_finite() && v >= 0.0 {
                return Ok(RoutingSource::Zipf { s: v });
            }
        }
    }
    Err(err(
        "routing",
        format!("`{s}` is not `uniform`, `zipf:S` with S >= 0 (e.g. zipf:1.2) or `trace:FILE`"),
    ))
}

fn routing_name(r: &RoutingSource) -> String {
    match r {
        RoutingSource::Uniform => "uniform".into(),
        RoutingSource::Zipf { s } => format!("zipf:{s}"),
    }
}

pub(crate) fn parse_alltoall(s: &str) -> Result<AllToAllMode, CliError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "confined" => Ok(AllToAllMode::Confined),
        "global" => Ok(AllToAllMode::Global),
        _ => Err(err(
            "alltoall",
            format!("`{s}` is not one of confined, global"),
        )),
    }
}

/// The CLI key (flag) of a parameter named by the library layers.
fn key_of(param: &str) -> &str {
    match param {
        "rows" | "cols" => "mesh",
        "wafers_x" | "wafers_y" => "wafers",
        "s" => "routing",
        "max_packet_flits" => "packet_flits",
        "groups" | "tokens" => "dp",
        "num_vcs" => "noc.collective_vcs + noc.migration_vcs",
        "hop_latency_ns"
        | "cross_wafer_latency_ns"
        | "cross_wafer_gbps"
        | "link_gbps_per_dir"
        | "flit_bytes" => param,
        p => p,
    }
}

/// Keys that are also `wafernoc moe` flags (`tokens_per_group` is
/// `--tokens-per-group`).
const MOE_FLAGS: &[&str] = &[
    "model",
    "mesh",
    "wafers",
    "tp",
    "dp",
    "mapping",
    "tile",
    "ring",
    "tokens_per_group",
    "routing",
    "seed",
    "alltoall",
    "flit_bytes",
    "packet_flits",
    "slots",
    "iterations",
    "layers",
];

/// A library error as a CLI error naming the key.
pub(crate) fn lib_err(e: CollectiveError) -> CliError {
    match &e {
        CollectiveError::Deadlock { .. } => CliError::with_code(e.to_string(), 3),
        _ => match e.parameter() {
            Some(p) => {
                let k = key_of(p);
                // The collective module's and the moe crate's errors say
                // "parameter `k`: why"; after "invalid `k`" only the why is new.
                let why = match &e {
                    CollectiveError::Param { reason, .. } => reason.clone(),
                    CollectiveError::Moe(m) => m.reason(),
                    _ => e.to_string(),
                };
                // Name a flag only if `wafernoc moe` has it; `[noc]` and
                // `--config`-only keys (vc_buf_size, cross_wafer_latency_ns...)
                // have none.
                if MOE_FLAGS.contains(&k) {
                    CliError::new(format!("invalid `{k}` (--{}): {why}", k.replace('_', "-")))
                } else {
                    CliError::new(format!("invalid `{k}`: {why}"))
                }
            }
            None => CliError::new(e.to_string()),
        },
    }
}

/// A fully resolved `wafernoc moe` configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    /// Model preset name as given.
    pub model_name: String,
    /// Die mesh of one wafer.
    pub mesh: (usize, usize),
    /// Wafers (x, y).
    pub wafers: (usize, usize),
    /// TP.
    pub tp: usize,
    /// DP.
    pub dp: usize,
    /// Mapping kind.
    pub mapping: MappingKind,
    /// Explicit tile, if given.
    pub tile: Option<(usize, usize)>,
    /// Ring policy.
    pub ring: RingPolicy,
    /// Tokens per DP group.
    pub tokens_per_group: u64,
    /// Routing.
    pub routing: RoutingSource,
    /// Seed.
    pub seed: u64,
    /// All-to-all mode.
    pub alltoall: AllToAllMode,
    /// Wafer spec (links, flit size).
    pub wafer: WaferSpec,
    /// Router parameters.
    pub noc: NocParams,
    /// Captured routing trace (`--routing trace:FILE`), replacing `routing`.
    pub trace: Option<PathBuf>,
}

fn pick<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| file.clone())
}

fn required<T>(v: Option<T>, key: &str) -> Result<T, CliError> {
    v.ok_or_else(|| {
        err(
            key,
            format!(
                "missing: give --{} (or `{key}` in the --config file)",
                key.replace('_', "-")
            ),
        )
    })
}

/// Merges flags over the TOML file and checks every value's syntax.
pub fn resolve(a: &MoeArgs) -> Result<Resolved, CliError> {
    let file: MoeFile = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::new(format!("{}: {e}", p.display())))?;
            let mut file = MoeFile::parse(&text)
                .map_err(|e| CliError::new(format!("{}: {e}", p.display())))?;
            // A trace the file names is relative to the file's directory,
            // as a sweep file's `config` is (a --routing flag stays
            // relative to the current directory).
            if let Some(rest) = file
                .routing
                .as_deref()
                .and_then(|r| r.strip_prefix("trace:"))
            {
                let t = Path::new(rest);
                // (Joined to an absolute path, `join` gives that path.)
                let dir = p.parent().unwrap_or(Path::new(""));
                file.routing = Some(format!("trace:{}", dir.join(t).display()));
            }
            file
        }
        None => MoeFile::default(),
    };
    resolve_with(a, file)
}

/// [`resolve`] with the `--config` file already read.
fn resolve_with(a: &MoeArgs, file: MoeFile) -> Result<Resolved, CliError> {
    if a.quick {
        return Err(err("quick", "only valid with --sweep"));
    }
    let model_name = required(pick(&a.model, &file.model), "model")?;
    let mesh = parse_pair("mesh", &required(pick(&a.mesh, &file.mesh), "mesh")?)?;
    let wafers = match pick(&a.wafers, &file.wafers) {
        Some(s) => parse_pair("wafers", &s)?,
        None => (1, 1),
    };
    let tp = required(pick(&a.tp, &file.tp), "tp")?;
    let dp = required(pick(&a.dp, &file.dp), "dp")?;
    let mapping = parse_mapping_kind(&required(pick(&a.mapping, &file.mapping), "mapping")?)?;
    let tile = match pick(&a.tile, &file.tile) {
        Some(s) => Some(parse_pair("tile", &s)?),
        None => None,
    };
    let ring = match pick(&a.ring, &file.ring) {
        Some(s) => parse_ring(&s)?,
        None => RingPolicy::Same,
    };
    let routing_text = pick(&a.routing, &file.routing);
    let trace = routing_text
        .as_deref()
        .and_then(|s| s.strip_prefix("trace:"))
        .map(PathBuf::from);
    // With a captured trace the tokens per group come from each iteration,
    // and no routing is drawn: flags for drawn routing would be ignored.
    if trace.is_some()
        && (pick(&a.tokens_per_group, &file.tokens_per_group).is_some()
            || pick(&a.seed, &file.seed).is_some())
    {
        return Err(err(
            "routing",
            "tokens per group and seed (--tokens-per-group, --seed, or the config keys) are \
             for drawn (uniform or zipf) routing; a trace gives its own tokens",
        ));
    }
    let tokens_per_group = match pick(&a.tokens_per_group, &file.tokens_per_group) {
        Some(t) => t,
        None if trace.is_some() => 1,
        None => required(None, "tokens_per_group")?,
    };
    if tokens_per_group == 0 {
        return Err(err("tokens_per_group", "must be at least 1"));
    }
    let routing = match (&trace, routing_text) {
        (None, Some(s)) => parse_routing(&s)?,
        _ => RoutingSource::Uniform,
    };
    if trace.is_none() && (a.slots.is_some() || a.iterations.is_some() || a.layers.is_some()) {
        return Err(err(
            "routing",
            "--slots, --iterations and --layers need --routing trace:FILE",
        ));
    }
    let alltoall = match pick(&a.alltoall, &file.alltoall) {
        Some(s) => parse_alltoall(&s)?,
        None => AllToAllMode::Confined,
    };
    let mut wafer = WaferSpec::multi(mesh.0, mesh.1, wafers.0, wafers.1);
    if let Some(f) = pick(&a.flit_bytes, &file.flit_bytes) {
        wafer.flit_bytes = f;
    }
    if let Some(v) = file.link_gbps_per_dir {
        wafer.link_gbps_per_dir = v;
    }
    if let Some(v) = file.hop_latency_ns {
        wafer.hop_latency_ns = v;
    }
    if let Some(v) = file.cross_wafer_gbps {
        wafer.cross_wafer_gbps = v;
    }
    if let Some(v) = file.cross_wafer_latency_ns {
        wafer.cross_wafer_latency_ns = v;
    }
    wafer.validate().map_err(|e| lib_err(e.into()))?;
    let mut noc = file.noc.clone().unwrap_or_default();
    if file.noc_max_packet_flits_given {
        // `packet_flits` and `[noc] max_packet_flits` are one setting: a
        // file may give either, or both alike; the flag overrides them.
        // (Was: `packet_flits` silently replaced the table's value, even 0.)
        let m = noc.max_packet_flits;
        if m == 0 {
            return Err(err("noc.max_packet_flits", "must be at least 1"));
        }
        if let Some(p) = file.packet_flits.filter(|&p| p != m) {
            return Err(err(
                "noc.max_packet_flits",
                format!(
                    "{m} contradicts `packet_flits` = {p} in the same file (one setting, \
                     the largest packet in flits): give one of them"
                ),
            ));
        }
    }
    if let Some(p) = pick(&a.packet_flits, &file.packet_flits) {
        noc.max_packet_flits = p;
    }
    Ok(Resolved {
        model_name,
        mesh,
        wafers,
        tp,
        dp,
        mapping,
        tile,
        ring,
        tokens_per_group,
        routing,
        seed: pick(&a.seed, &file.seed).unwrap_or(1),
        alltoall,
        wafer,
        noc,
        trace,
    })
}

impl Resolved {
    /// The library's layer specification.
    pub fn layer_spec(&self) -> Result<LayerSpec, CliError> {
        let model = MoeModel::preset(&self.model_name).map_err(|e| lib_err(e.into()))?;
        Ok(LayerSpec {
            wafer: self.wafer.clone(),
            model,
            plan: ParallelPlan::new(
                self.tp,
                self.dp,
                make_mapping(self.mapping, self.tile, self.ring),
            ),
            workload: LayerWorkload {
                tokens_per_group: self.tokens_per_group,
                routing: self.routing,
                seed: self.seed,
                layer: 0,
                alltoall: self.alltoall,
            },
            noc: self.noc.clone(),
        })
    }
}

pub(crate) fn fmt_pair(p: (usize, usize)) -> String {
    format!("{}x{}", p.0, p.1)
}

/// The resolved configuration as written into the JSON result.
pub fn config_json(r: &Resolved, spec: &LayerSpec, res: &LayerResult) -> serde_json::Value {
    let g = res.layout.tile_grid();
    let mut noc = spec.noc.clone();
    noc.vc_buf_size = res.network.router.vc_buf_size;
    // On one wafer no link crosses an edge, and the crossing timing is not
    // checked (the engine's defaults stand in when it is out of range): null.
    let multi = r.wafer.num_wafers() > 1;
    serde_json::json!({
        "model": spec.model,
        "mesh": fmt_pair(r.mesh),
        "wafers": fmt_pair(r.wafers),
        "device_mesh": fmt_pair((r.wafer.mesh_rows(), r.wafer.mesh_cols())),
        "devices": r.wafer.num_devices(),
        "wafer": r.wafer,
        "cycle_ns": r.wafer.cycle_ns(),
        "link_latency_cycles": res.network.mesh.link_latency,
        "cross_wafer_latency_cycles": multi.then_some(res.network.mesh.cross_latency),
        "cross_wafer_cycles_per_flit": multi.then_some(res.network.mesh.cross_cycles_per_flit),
        "tp": r.tp,
        "dp": r.dp,
        "mapping": mapping_name(r.mapping),
        "tile": fmt_pair((g.tile_rows, g.tile_cols)),
        "tile_kind": match g.kind { TileKind::Ftd => "ftd", TileKind::TpGroup => "tp_group" },
        "tile_grid": fmt_pair((g.grid_rows, g.grid_cols)),
        "ring": ring_name(r.ring),
        "tokens_per_group": r.tokens_per_group,
        "routing": routing_name(&r.routing),
        "seed": r.seed,
        "alltoall": match r.alltoall { AllToAllMode::Confined => "confined", AllToAllMode::Global => "global" },
        "expert_replicas": res.replication.replicas,
        "virtual_experts": res.replication.virtual_experts,
        "allreduce_bytes_per_group": res.allreduce_bytes_per_group,
        "noc": noc,
        "router": res.network.router,
        "routing_algorithm": res.network.routing,
        "classes": res.network.classes,
    })
}

/// The JSON result of one layer.
pub fn result_json(r: &Resolved, spec: &LayerSpec, res: &LayerResult) -> serde_json::Value {
    let a2a = res.alltoall_cycles();
    let cns = r.wafer.cycle_ns();
    serde_json::json!({
        "wafernoc_version": env!("CARGO_PKG_VERSION"),
        "command": "moe",
        "config": config_json(r, spec, res),
        "phases": {
            "allreduce": res.allreduce,
            "dispatch": res.dispatch,
            "combine": res.combine,
        },
        "summary": {
            "alltoall_cycles": a2a,
            "alltoall_ns": a2a as f64 * cns,
            "total_cycles": res.total_cycles(),
            "total_ns": res.total_cycles() as f64 * cns,
            "token_copies": res.token_copies,
            "local_token_copies": res.local_token_copies,
            "links": res.links.len(),
            "boundary_links": res.links.iter().filter(|l| l.boundary).count(),
        },
    })
}

/// Describes a phase's cold set in words.
pub fn describe_cold(p: &PhaseStats, links: &[LinkInfo]) -> String {
    let nb = links.iter().filter(|l| l.boundary).count();
    let ni = links.len() - nb;
    let cold = p.cold_links.len();
    let what = if cold == 0 {
        "none".to_string()
    } else if p.cold_boundary_links == nb && p.cold_intra_tile_links == 0 {
        "exactly the boundary links".to_string()
    } else if p.cold_intra_tile_links == ni && p.cold_boundary_links == 0 {
        "exactly the intra-tile links".to_string()
    } else if cold == links.len() {
        "all links".to_string()
    } else {
        "mixed".to_string()
    };
    format!(
        "{cold} of {} links cold ({what}): boundary {} of {nb}, intra-tile {} of {ni}",
        links.len(),
        p.cold_boundary_links,
        p.cold_intra_tile_links
    )
}

fn print_text(r: &Resolved, res: &LayerResult, wall: f64) {
    let g = res.layout.tile_grid();
    let kind = match g.kind {
        TileKind::Ftd => "FTD tile",
        TileKind::TpGroup => "TP tile",
    };
    println!(
        "wafernoc moe: {} on {} die mesh ({} wafer(s) {}), TP={} DP={}, mapping {} ({kind} {}x{}), ring {}, {} tokens/group, {}, seed {}, {} all-to-all",
        r.model_name,
        fmt_pair((r.wafer.mesh_rows(), r.wafer.mesh_cols())),
        r.wafers.0 * r.wafers.1,
        fmt_pair(r.mesh),
        r.tp,
        r.dp,
        mapping_name(r.mapping),
        g.tile_rows,
        g.tile_cols,
        ring_name(r.ring),
        r.tokens_per_group,
        routing_name(&r.routing),
        r.seed,
        match r.alltoall {
            AllToAllMode::Confined => "confined",
            AllToAllMode::Global => "global",
        }
    );
    println!(
        "cycle {:.4} ns ({} B flits), link latency {} cycles, packets <= {} flits, {} collective VCs x {} flits{}",
        r.wafer.cycle_ns(),
        r.wafer.flit_bytes,
        res.network.mesh.link_latency,
        r.noc.max_packet_flits,
        r.noc.collective_vcs,
        res.network.router.vc_buf_size,
        if res.replication.replicas > 1 {
            format!(
                "; {} devices do not divide {} experts: {} replicas per expert ({} virtual experts, lcm)",
                r.wafer.num_devices(),
                res.replication.experts,
                res.replication.replicas,
                res.replication.virtual_experts
            )
        } else {
            String::new()
        }
    );
    println!(
        "{:<10} {:>9} {:>11} {:>12} {:>9} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9}",
        "phase",
        "cycles",
        "ns",
        "bytes",
        "flits",
        "max_util",
        "mean_ut",
        "bnd_hops",
        "intra_hops",
        "ut_bound",
        "ut_intra"
    );
    // flits: injected; bnd_hops / intra_hops: flits crossing boundary /
    // intra-tile links (one per link crossed).
    for p in res.phases() {
        println!(
            "{:<10} {:>9} {:>11.1} {:>12} {:>9} {:>8.3} {:>8.3} {:>10} {:>10} {:>9.3} {:>9.3}",
            p.name,
            p.cycles,
            p.ns,
            p.bytes,
            p.flits,
            p.max_link_utilization,
            p.mean_link_utilization,
            p.boundary_flits,
            p.intra_tile_flits,
            p.mean_boundary_utilization,
            p.mean_intra_tile_utilization
        );
    }
    let cns = r.wafer.cycle_ns();
    println!(
        "all-to-all (dispatch + combine): {} cycles, {:.1} ns; layer communication: {} cycles, {:.1} ns",
        res.alltoall_cycles(),
        res.alltoall_cycles() as f64 * cns,
        res.total_cycles(),
        res.total_cycles() as f64 * cns
    );
    println!(
        "token copies {} ({} served on the sender's own device); self-send bytes: dispatch {}, combine {}",
        res.token_copies, res.local_token_copies, res.dispatch.local_bytes, res.combine.local_bytes
    );
    println!("cold links (no flit in the phase):");
    for p in res.phases() {
        println!("  {:<10} {}", p.name, describe_cold(p, &res.links));
    }
    println!("wall time {wall:.2} s");
}

/// The per-link, per-phase CSV.
pub fn links_csv(res: &LayerResult, cols: usize) -> String {
    let mut s = String::from(
        "src,dst,src_row,src_col,dst_row,dst_col,port,boundary,cross_wafer,cycles_per_flit,allreduce_flits,allreduce_util,dispatch_flits,dispatch_util,combine_flits,combine_util\n",
    );
    for (i, l) in res.links.iter().enumerate() {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            l.src,
            l.dst,
            l.src / cols,
            l.src % cols,
            l.dst / cols,
            l.dst % cols,
            ["+x", "-x", "+y", "-y"][l.port as usize % 4],
            l.boundary,
            l.cross_wafer,
            l.cycles_per_flit
        );
        for p in res.phases() {
            let _ = write!(
                s,
                ",{},{:.6}",
                p.link_flits[i],
                p.utilization(&res.links, i)
            );
        }
        s.push('\n');
    }
    s
}

/// The heat map of one phase.
pub fn phase_heatmap(
    res: &LayerResult,
    p: &PhaseStats,
    rows: usize,
    cols: usize,
    title: &str,
) -> String {
    let g = res.layout.tile_grid();
    let links = res
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| LinkValue {
            from: (l.src / cols, l.src % cols),
            to: (l.dst / cols, l.dst % cols),
            value: p.utilization(&res.links, i),
        })
        .collect();
    link_heatmap_svg(&LinkHeat {
        rows,
        cols,
        links,
        title: format!(
            "{title} — {}: {} cycles, utilisation max {:.2}, mean {:.2}",
            p.name, p.cycles, p.max_link_utilization, p.mean_link_utilization,
        ),
        max_value: Some(1.0),
        tile: Some((g.tile_rows, g.tile_cols)),
        value_label: "busy fraction".into(),
    })
}

/// The capture of `--capture` / `--per-packet`, if either is given. The
/// trace headers' `meta` holds the resolved network (what `replay-packets`
/// uses without `--config`) and the MoE configuration.
fn new_capture(
    a: &MoeArgs,
    r: &Resolved,
    spec: &LayerSpec,
) -> Result<Option<MoeCapture>, CliError> {
    if a.capture.is_none() && a.per_packet.is_none() {
        return Ok(None);
    }
    let network = network_config(&spec.wafer, &spec.noc).map_err(lib_err)?;
    let meta = serde_json::json!({
        "wafernoc_version": env!("CARGO_PKG_VERSION"),
        "command": "moe",
        "replay": "replay-packets --mode open (recorded cycles) or --mode deps (closed loop); both reproduce the phase exactly",
        "network": network,
        "moe": {
            "model": r.model_name,
            "mesh": fmt_pair(r.mesh),
            "wafers": fmt_pair(r.wafers),
            "tp": r.tp,
            "dp": r.dp,
            "mapping": mapping_name(r.mapping),
            "ring": ring_name(r.ring),
            "tokens_per_group": r.tokens_per_group,
            "routing": match &r.trace {
                Some(p) => format!("trace:{}", p.display()),
                None => routing_name(&r.routing),
            },
            "seed": r.seed,
            "alltoall": match r.alltoall { AllToAllMode::Confined => "confined", AllToAllMode::Global => "global" },
            "flit_bytes": r.wafer.flit_bytes,
            "noc": spec.noc,
        },
    });
    let nodes =
        u32::try_from(r.wafer.num_devices()).map_err(|_| err("mesh", "too many devices"))?;
    MoeCapture::new(a.capture.as_deref(), a.per_packet.as_deref(), nodes, meta).map(Some)
}

/// Names the written phase files on stderr (unless `--quiet`) and lists them
/// under `capture` in the JSON result.
fn report_capture(a: &MoeArgs, c: &MoeCapture, json: &mut serde_json::Value) {
    if !a.quiet {
        for f in &c.files {
            for p in [&f.trace, &f.per_packet].into_iter().flatten() {
                eprintln!("wrote {p} ({} packets)", f.packets);
            }
        }
    }
    if let Some(o) = json.as_object_mut() {
        o.insert(
            "capture".into(),
            serde_json::to_value(&c.files).expect("serialisable"),
        );
    }
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

pub(crate) fn make_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::new(format!("{}: {e}", dir.display())))
}

/// Every check `wafernoc moe` makes before it simulates, without
/// simulating or writing anything: the flags and the `--config` file, the
/// layer (model, plan, mapping, workload bounds, network: [`check_layer`])
/// and, with `--routing trace:FILE`, the trace and its iterations and
/// layers; with `--sweep`, the sweep's flags. Used by `sweep --dry-run`.
pub(crate) fn check(a: &MoeArgs) -> Result<(), CliError> {
    if a.sweep {
        return sweep_settings(a).map(|_| ());
    }
    check_resolved(a, &resolve(a)?)
}

/// [`check`] on resolved settings.
fn check_resolved(a: &MoeArgs, r: &Resolved) -> Result<(), CliError> {
    let spec = match &r.trace {
        Some(path) => trace_setup(a, r, path)?.base,
        None => r.layer_spec()?,
    };
    check_layer(&spec).map_err(lib_err)
}

/// `wafernoc moe`.
pub fn run(a: MoeArgs) -> CmdResult {
    if a.sweep {
        return sweep(&a);
    }
    let wall = Instant::now();
    let r = resolve(&a)?;
    if let Some(path) = r.trace.clone() {
        return run_trace(&a, &r, &path);
    }
    let spec = r.layer_spec()?;
    let mut cap = new_capture(&a, &r, &spec)?;
    let mut prog = Progress::new(a.quiet, "moe");
    let res = match cap.as_mut() {
        Some(c) => simulate_layer_captured(&spec, None, &mut |c, ph| prog.tick(c, ph), c),
        None => simulate_layer(&spec, &mut |c, ph| prog.tick(c, ph)),
    };
    prog.finish();
    let res = res.map_err(lib_err)?;
    let mut json = result_json(&r, &spec, &res);
    if let Some(c) = cap.as_mut() {
        c.finish_run()?;
        report_capture(&a, c, &mut json);
    }
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| CliError::new(e.to_string()))? + "\n";
    if let Some(dir) = &a.out {
        make_dir(dir)?;
        let (rows, cols) = (r.wafer.mesh_rows(), r.wafer.mesh_cols());
        write_file(&dir.join("links.csv"), &links_csv(&res, cols))?;
        write_file(&dir.join("result.json"), &text)?;
        let title = format!(
            "{} {} {} TP{} DP{}",
            r.model_name,
            fmt_pair((rows, cols)),
            mapping_name(r.mapping),
            r.tp,
            r.dp
        );
        for p in res.phases() {
            write_file(
                &dir.join(format!("heatmap_{}.svg", p.name)),
                &phase_heatmap(&res, p, rows, cols, &title),
            )?;
        }
    }
    if a.json {
        print!("{text}");
    } else {
        print_text(&r, &res, wall.elapsed().as_secs_f64());
        if let Some(dir) = &a.out {
            println!(
                "wrote {}/{{links.csv,result.json,heatmap_*.svg}}",
                dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------
// Sweep
// ---------------------------------------------------------------------------

/// Default tokens per DP group of the sweep: 128 (the acceptance
/// configuration's batch). See docs/reproduction.md for the run time.
pub const SWEEP_TOKENS: u64 = 128;

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// Which comparison the point belongs to.
    pub study: &'static str,
    /// Model preset.
    pub model: &'static str,
    /// Die mesh of one wafer.
    pub mesh: (usize, usize),
    /// Wafers.
    pub wafers: (usize, usize),
    /// TP.
    pub tp: usize,
    /// DP.
    pub dp: usize,
    /// Mapping.
    pub mapping: MappingKind,
    /// Explicit tile or default.
    pub tile: Option<(usize, usize)>,
    /// Ring policy.
    pub ring: RingPolicy,
    /// Tokens per group = the sweep's tokens x TP / 16 (a fixed load per
    /// device as TP grows) instead of the sweep's tokens.
    pub scale_tokens: bool,
}

/// The sweep models.
pub const SWEEP_MODELS: [&str; 3] = ["DeepSeek-V3", "Qwen3-235B", "Mixtral-8x22B"];

/// The points of the sweep (`quick`: 4x4 and 8x8 only).
///
/// - `mapping`: every model x mesh (4x4, 8x8, 16x16, TP = DP = side), block
///   and ER, default tiles, ring `same`;
/// - `ring`: every model x mesh, block and ER with ring `alternate` and
///   `bidirectional` (with `mapping`'s `same`: all three policies);
/// - `tile`: DeepSeek-V3, ER with every non-default FTD tile `a x b`
///   (`a * b = dp`, tiling the mesh, `max(a, b) <= 4 min(a, b)`), ring
///   `same`;
/// - `plan`: DeepSeek-V3 on 16x16 with TP x DP = 64 x 4 and 4 x 64 (the
///   `mapping` study has 16 x 16), block and ER, ring `same`;
/// - `scaling`: DeepSeek-V3 with a fixed DP = 16 (ER FTD tile 4x4) on 4x4,
///   8x8 and 16x16 (TP = N / 16), tokens per group = sweep tokens x TP / 16
///   (the same load per device everywhere), block and ER, ring `same`;
/// - `multiwafer`: DeepSeek-V3 on 2x2 wafers of 8x8 (the paper's 256-die
///   machine), TP = DP = 16: block, ER and HER, ring `same`.
pub fn sweep_points(quick: bool) -> Vec<SweepPoint> {
    let sides: &[usize] = if quick { &[4, 8] } else { &[4, 8, 16] };
    let mut v = Vec::new();
    let base = |study, model, k: usize, mapping, tile, ring| SweepPoint {
        study,
        model,
        mesh: (k, k),
        wafers: (1, 1),
        tp: k,
        dp: k,
        mapping,
        tile,
        ring,
        scale_tokens: false,
    };
    for &k in sides {
        for model in SWEEP_MODELS {
            for mapping in [MappingKind::Block, MappingKind::Er] {
                v.push(base("mapping", model, k, mapping, None, RingPolicy::Same));
            }
        }
    }
    for &k in sides {
        for model in SWEEP_MODELS {
            for mapping in [MappingKind::Block, MappingKind::Er] {
                for ring in [RingPolicy::Alternate, RingPolicy::Bidirectional] {
                    v.push(base("ring", model, k, mapping, None, ring));
                }
            }
        }
    }
    for &k in sides {
        let dp = k;
        let default = wafernoc_moe::ParallelPlan::new(k, dp, Mapping::er())
            .layout(&WaferSpec::single(k, k), k * k)
            .map(|l| (l.tile_grid().tile_rows, l.tile_grid().tile_cols))
            .ok();
        for a in 1..=dp {
            if dp % a != 0 {
                continue;
            }
            let b = dp / a;
            if k % a != 0 || k % b != 0 || a.max(b) > 4 * a.min(b) || Some((a, b)) == default {
                continue;
            }
            v.push(base(
                "tile",
                "DeepSeek-V3",
                k,
                MappingKind::Er,
                Some((a, b)),
                RingPolicy::Same,
            ));
        }
    }
    for &k in sides {
        for mapping in [MappingKind::Block, MappingKind::Er] {
            v.push(SweepPoint {
                study: "scaling",
                model: "DeepSeek-V3",
                mesh: (k, k),
                wafers: (1, 1),
                tp: k * k / 16,
                dp: 16,
                mapping,
                tile: None,
                ring: RingPolicy::Same,
                scale_tokens: true,
            });
        }
    }
    if !quick {
        for (tp, dp) in [(64, 4), (4, 64)] {
            for mapping in [MappingKind::Block, MappingKind::Er] {
                v.push(SweepPoint {
                    study: "plan",
                    model: "DeepSeek-V3",
                    mesh: (16, 16),
                    wafers: (1, 1),
                    tp,
                    dp,
                    mapping,
                    tile: None,
                    ring: RingPolicy::Same,
                    scale_tokens: false,
                });
            }
        }
        for mapping in [MappingKind::Block, MappingKind::Er, MappingKind::Her] {
            v.push(SweepPoint {
                study: "multiwafer",
                model: "DeepSeek-V3",
                mesh: (8, 8),
                wafers: (2, 2),
                tp: 16,
                dp: 16,
                mapping,
                tile: None,
                ring: RingPolicy::Same,
                scale_tokens: false,
            });
        }
    }
    v
}

/// One measured sweep row.
#[derive(Debug, Clone)]
pub struct SweepRow {
    /// The point.
    pub point: SweepPoint,
    /// Tile used.
    pub tile: (usize, usize),
    /// Expert replicas.
    pub replicas: usize,
    /// The three phases (without per-link data).
    pub phases: [PhaseStats; 3],
    /// Cold-set descriptions per phase.
    pub cold: [String; 3],
    /// Cycle time.
    pub cycle_ns: f64,
    /// Tokens per DP group simulated.
    pub tokens: u64,
}

impl SweepRow {
    fn a2a(&self) -> u64 {
        self.phases[1].cycles + self.phases[2].cycles
    }
    fn total(&self) -> u64 {
        self.phases[0].cycles + self.a2a()
    }
    fn mesh_name(&self) -> String {
        let p = &self.point;
        if p.wafers == (1, 1) {
            fmt_pair(p.mesh)
        } else {
            format!("{}x({})", fmt_pair(p.wafers), fmt_pair(p.mesh))
        }
    }
}

fn run_point(p: &SweepPoint, tokens: u64, seed: u64) -> Result<SweepRow, CliError> {
    let tokens = if p.scale_tokens {
        (tokens * p.tp as u64 / 16).max(1)
    } else {
        tokens
    };
    let r = Resolved {
        model_name: p.model.to_string(),
        mesh: p.mesh,
        wafers: p.wafers,
        tp: p.tp,
        dp: p.dp,
        mapping: p.mapping,
        tile: p.tile,
        ring: p.ring,
        tokens_per_group: tokens,
        routing: RoutingSource::Uniform,
        seed,
        alltoall: AllToAllMode::Confined,
        wafer: WaferSpec::multi(p.mesh.0, p.mesh.1, p.wafers.0, p.wafers.1),
        noc: NocParams::default(),
        trace: None,
    };
    let spec = r.layer_spec()?;
    let res = simulate_layer(&spec, &mut |_, _| {}).map_err(lib_err)?;
    let g = res.layout.tile_grid();
    let cold = [
        describe_cold(&res.allreduce, &res.links),
        describe_cold(&res.dispatch, &res.links),
        describe_cold(&res.combine, &res.links),
    ];
    let strip = |p: &PhaseStats| PhaseStats {
        link_flits: Vec::new(),
        cold_links: Vec::new(),
        ..p.clone()
    };
    Ok(SweepRow {
        point: p.clone(),
        tile: (g.tile_rows, g.tile_cols),
        replicas: res.replication.replicas,
        phases: [
            strip(&res.allreduce),
            strip(&res.dispatch),
            strip(&res.combine),
        ],
        cold,
        cycle_ns: r.wafer.cycle_ns(),
        tokens,
    })
}

/// The sweep's CSV (one row per point).
pub fn sweep_csv(rows: &[SweepRow]) -> String {
    let mut s = String::from("study,model,mesh,devices,tp,dp,mapping,tile,ring,tokens_per_group,expert_replicas,cycle_ns");
    for ph in ["allreduce", "dispatch", "combine"] {
        for f in [
            "cycles",
            "flits",
            "max_util",
            "mean_util",
            "boundary_flits",
            "intra_tile_flits",
            "mean_util_boundary",
            "mean_util_intra",
            "cold_boundary",
            "cold_intra",
        ] {
            let _ = write!(s, ",{ph}_{f}");
        }
    }
    s.push_str(",alltoall_cycles,total_cycles,alltoall_ns,total_ns\n");
    for r in rows {
        let p = &r.point;
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{:.6}",
            p.study,
            p.model,
            r.mesh_name(),
            p.mesh.0 * p.mesh.1 * p.wafers.0 * p.wafers.1,
            p.tp,
            p.dp,
            mapping_name(p.mapping),
            fmt_pair(r.tile),
            ring_name(p.ring),
            r.tokens,
            r.replicas,
            r.cycle_ns
        );
        for ph in &r.phases {
            let _ = write!(
                s,
                ",{},{},{:.4},{:.4},{},{},{:.4},{:.4},{},{}",
                ph.cycles,
                ph.flits,
                ph.max_link_utilization,
                ph.mean_link_utilization,
                ph.boundary_flits,
                ph.intra_tile_flits,
                ph.mean_boundary_utilization,
                ph.mean_intra_tile_utilization,
                ph.cold_boundary_links,
                ph.cold_intra_tile_links
            );
        }
        let _ = writeln!(
            s,
            ",{},{},{:.1},{:.1}",
            r.a2a(),
            r.total(),
            r.a2a() as f64 * r.cycle_ns,
            r.total() as f64 * r.cycle_ns
        );
    }
    s
}

fn find<'a>(
    rows: &'a [SweepRow],
    study: &str,
    model: &str,
    k: usize,
    m: MappingKind,
    ring: RingPolicy,
) -> Option<&'a SweepRow> {
    rows.iter().find(|r| {
        let p = &r.point;
        (p.study == study || (study == "ring" && p.study == "mapping" && ring == RingPolicy::Same))
            && p.model == model
            && p.mesh == (k, k)
            && p.wafers == (1, 1)
            && p.mapping == m
            && p.ring == ring
    })
}

/// The point of `model` on a k×k mesh under mapping `m` with the ring
/// policy that gives the shortest layer (all-reduce + dispatch + combine).
fn best_ring<'a>(
    rows: &'a [SweepRow],
    model: &str,
    k: usize,
    m: MappingKind,
) -> Option<&'a SweepRow> {
    [
        RingPolicy::Same,
        RingPolicy::Alternate,
        RingPolicy::Bidirectional,
    ]
    .into_iter()
    .filter_map(|r| find(rows, "ring", model, k, m, r))
    .min_by_key(|r| r.total())
}

fn pct(block: u64, er: u64) -> String {
    if block == 0 {
        return "n/a".into();
    }
    format!("{:+.1}%", (er as f64 - block as f64) / block as f64 * 100.0)
}

/// The sweep's Markdown report.
pub fn sweep_markdown(
    rows: &[SweepRow],
    tokens: u64,
    seed: u64,
    sides: &[usize],
    wall_s: f64,
) -> String {
    let mut s = String::new();
    let ns = |c: u64, r: &SweepRow| format!("{:.0}", c as f64 * r.cycle_ns);
    let _ = writeln!(s, "Conditions (unless a table says otherwise): TP = DP = mesh side, EP = all devices, {tokens} tokens per DP group, uniform routing (seed {seed}), confined all-to-all, default wafer (900 GB/s links, 4 ns per hop, 256 B flits = 0.284 ns cycles, 15-cycle links), XY routing, 4 VCs per port (3 collective, 1 migration) with credit-covering buffers (40 flits; 181 with wafer-crossing links), packets of at most 16 flits, ring `same` unless stated. Times in cycles (ns in brackets). Change = (ER − block) / block; negative is a saving.\n");
    let _ = writeln!(s, "### ER vs block: all-to-all (dispatch + combine) and layer communication (all-reduce + dispatch + combine)\n");
    let _ = writeln!(s, "| model | mesh | tile block / ER | all-reduce block | all-reduce ER | all-to-all block | all-to-all ER | a2a change | total block | total ER | total change |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for model in SWEEP_MODELS {
        for &k in sides {
            let (Some(b), Some(e)) = (
                find(
                    rows,
                    "mapping",
                    model,
                    k,
                    MappingKind::Block,
                    RingPolicy::Same,
                ),
                find(rows, "mapping", model, k, MappingKind::Er, RingPolicy::Same),
            ) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {model} | {k}x{k} | {} / {} | {} ({}) | {} ({}) | {} ({}) | {} ({}) | {} | {} ({}) | {} ({}) | {} |",
                fmt_pair(b.tile),
                fmt_pair(e.tile),
                b.phases[0].cycles,
                ns(b.phases[0].cycles, b),
                e.phases[0].cycles,
                ns(e.phases[0].cycles, e),
                b.a2a(),
                ns(b.a2a(), b),
                e.a2a(),
                ns(e.a2a(), e),
                pct(b.a2a(), e.a2a()),
                b.total(),
                ns(b.total(), b),
                e.total(),
                ns(e.total(), e),
                pct(b.total(), e.total())
            );
        }
    }
    let _ = writeln!(
        s,
        "\n### The same with each mapping's best ring policy (same, alternate or bidirectional; the policy that gives the shortest all-reduce)\n"
    );
    let _ = writeln!(
        s,
        "| model | mesh | block ring | ER ring | total block | total ER | total change |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for model in SWEEP_MODELS {
        for &k in sides {
            let best = |m| best_ring(rows, model, k, m);
            if let (Some(b), Some(e)) = (best(MappingKind::Block), best(MappingKind::Er)) {
                let _ = writeln!(
                    s,
                    "| {model} | {k}x{k} | {} | {} | {} ({}) | {} ({}) | {} |",
                    ring_name(b.point.ring),
                    ring_name(e.point.ring),
                    b.total(),
                    ns(b.total(), b),
                    e.total(),
                    ns(e.total(), e),
                    pct(b.total(), e.total())
                );
            }
        }
    }
    let plan: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| {
            let p = &r.point;
            p.study == "plan"
                || (p.study == "mapping" && p.model == "DeepSeek-V3" && p.mesh == (16, 16))
        })
        .collect();
    if !plan.is_empty() {
        let _ = writeln!(s, "\n### Plan shape on 16x16 (DeepSeek-V3, ring same)\n");
        let _ = writeln!(
            s,
            "| TP x DP | mapping | tile | all-reduce | dispatch | combine | all-to-all | total | a2a vs block | total vs block |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for (tp, dp) in [(64, 4), (16, 16), (4, 64)] {
            let b = plan.iter().find(|r| {
                (r.point.tp, r.point.dp, r.point.mapping) == (tp, dp, MappingKind::Block)
            });
            for r in plan.iter().filter(|r| (r.point.tp, r.point.dp) == (tp, dp)) {
                let (ca, ct) = b.map_or(("n/a".into(), "n/a".into()), |b| {
                    (pct(b.a2a(), r.a2a()), pct(b.total(), r.total()))
                });
                let _ = writeln!(
                    s,
                    "| {tp} x {dp} | {} | {} | {} | {} | {} | {} | {} | {ca} | {ct} |",
                    mapping_name(r.point.mapping),
                    fmt_pair(r.tile),
                    r.phases[0].cycles,
                    r.phases[1].cycles,
                    r.phases[2].cycles,
                    r.a2a(),
                    r.total()
                );
            }
        }
    }
    let sc: Vec<&SweepRow> = rows.iter().filter(|r| r.point.study == "scaling").collect();
    if !sc.is_empty() {
        let _ = writeln!(
            s,
            "\n### Scaling at a fixed FTD size and load per device (DeepSeek-V3, DP = 16, TP = N / 16, tokens per group = {tokens} x TP / 16, ring same)\n"
        );
        let _ = writeln!(
            s,
            "| mesh | TP | tokens/group | tile block / ER | all-to-all block | all-to-all ER | a2a change | ER boundary flits |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for &k in sides {
            let get = |m| {
                sc.iter()
                    .find(|r| r.point.mesh == (k, k) && r.point.mapping == m)
            };
            if let (Some(b), Some(e)) = (get(MappingKind::Block), get(MappingKind::Er)) {
                let _ = writeln!(
                    s,
                    "| {k}x{k} | {} | {} | {} / {} | {} ({}) | {} ({}) | {} | {} |",
                    e.point.tp,
                    e.tokens,
                    fmt_pair(b.tile),
                    fmt_pair(e.tile),
                    b.a2a(),
                    ns(b.a2a(), b),
                    e.a2a(),
                    ns(e.a2a(), e),
                    pct(b.a2a(), e.a2a()),
                    e.phases[1].boundary_flits + e.phases[2].boundary_flits
                );
            }
        }
    }
    let mw: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| r.point.study == "multiwafer")
        .collect();
    if !mw.is_empty() {
        let _ = writeln!(
            s,
            "\n### Four wafers of 8x8 (256 dies), DeepSeek-V3, TP = DP = 16\n"
        );
        let _ = writeln!(s, "| mapping | tile | all-reduce | dispatch | combine | all-to-all | total | a2a vs block | total vs block |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        let block = mw.iter().find(|r| r.point.mapping == MappingKind::Block);
        for r in &mw {
            let (ca, ct) = block.map_or(("n/a".into(), "n/a".into()), |b| {
                (pct(b.a2a(), r.a2a()), pct(b.total(), r.total()))
            });
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {ca} | {ct} |",
                mapping_name(r.point.mapping),
                fmt_pair(r.tile),
                r.phases[0].cycles,
                r.phases[1].cycles,
                r.phases[2].cycles,
                r.a2a(),
                ns(r.a2a(), r),
                r.total(),
                ns(r.total(), r)
            );
        }
    }
    let _ = writeln!(s, "\n### Ring direction policy (all-reduce cycles)\n");
    let _ = writeln!(s, "| model | mesh | block same | block alternate | block bidirectional | ER same | ER alternate | ER bidirectional |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for model in SWEEP_MODELS {
        for &k in sides {
            let mut cells = Vec::new();
            for m in [MappingKind::Block, MappingKind::Er] {
                for ring in [
                    RingPolicy::Same,
                    RingPolicy::Alternate,
                    RingPolicy::Bidirectional,
                ] {
                    cells.push(
                        find(rows, "ring", model, k, m, ring)
                            .map_or("n/a".to_string(), |r| r.phases[0].cycles.to_string()),
                    );
                }
            }
            let _ = writeln!(s, "| {model} | {k}x{k} | {} |", cells.join(" | "));
        }
    }
    let tiles: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| {
            r.point.model == "DeepSeek-V3"
                && r.point.mapping == MappingKind::Er
                && r.point.ring == RingPolicy::Same
                && r.point.wafers == (1, 1)
                && (r.point.study == "tile" || r.point.study == "mapping")
        })
        .collect();
    let _ = writeln!(
        s,
        "\n### FTD tile shape under ER (DeepSeek-V3, ring same)\n"
    );
    let _ = writeln!(
        s,
        "| mesh | tile | all-reduce | dispatch | combine | all-to-all | total |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for &k in sides {
        for r in tiles.iter().filter(|r| r.point.mesh == (k, k)) {
            let _ = writeln!(
                s,
                "| {k}x{k} | {}{} | {} | {} | {} | {} | {} |",
                fmt_pair(r.tile),
                if r.point.tile.is_none() {
                    " (default)"
                } else {
                    ""
                },
                r.phases[0].cycles,
                r.phases[1].cycles,
                r.phases[2].cycles,
                r.a2a(),
                r.total()
            );
        }
    }
    let _ = writeln!(s, "\n### Hot and cold links (DeepSeek-V3, ring same): mean utilisation of intra-tile vs boundary links\n");
    let _ = writeln!(s, "Tiles are the plan's compact tiles: FTD tiles under ER, TP tiles under block. Cold = carried no flit in the phase.\n");
    let _ = writeln!(s, "| mesh | mapping | phase | mean util intra-tile | mean util boundary | boundary flits | cold set |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for &k in sides {
        for m in [MappingKind::Block, MappingKind::Er] {
            if let Some(r) = find(rows, "mapping", "DeepSeek-V3", k, m, RingPolicy::Same) {
                for (i, ph) in r.phases.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "| {k}x{k} | {} | {} | {:.3} | {:.3} | {} | {} |",
                        mapping_name(m),
                        ph.name,
                        ph.mean_intra_tile_utilization,
                        ph.mean_boundary_utilization,
                        ph.boundary_flits,
                        r.cold[i]
                    );
                }
            }
        }
    }
    let _ = writeln!(
        s,
        "\nSweep wall time: {wall_s:.0} s ({} points).",
        rows.len()
    );
    s
}

fn sweep_plots(rows: &[SweepRow], sides: &[usize], dir: &Path) -> Result<(), CliError> {
    // Bars: all-to-all and total per (model, mesh), block vs ER.
    let mut cats = Vec::new();
    let (mut ba, mut ea, mut bt, mut et) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for model in SWEEP_MODELS {
        for &k in sides {
            if let (Some(b), Some(e)) = (
                find(
                    rows,
                    "mapping",
                    model,
                    k,
                    MappingKind::Block,
                    RingPolicy::Same,
                ),
                find(rows, "mapping", model, k, MappingKind::Er, RingPolicy::Same),
            ) {
                cats.push(format!("{model} {k}x{k}"));
                ba.push(b.a2a() as f64 * b.cycle_ns);
                ea.push(e.a2a() as f64 * e.cycle_ns);
                bt.push(b.total() as f64 * b.cycle_ns);
                et.push(e.total() as f64 * e.cycle_ns);
            }
        }
    }
    write_file(
        &dir.join("alltoall_block_vs_er.svg"),
        &bar_chart_svg(
            "All-to-all time (dispatch + combine), block vs ER",
            &cats,
            &[("block".into(), ba), ("ER".into(), ea)],
            "time (ns)",
        ),
    )?;
    // The ring policy decides the all-reduce, so the totals say which
    // (was: untitled `same` rings only, where ER loses, while the best-ring
    // table of mapping_sweep.md has ER ahead at most points).
    write_file(
        &dir.join("total_block_vs_er.svg"),
        &bar_chart_svg(
            "Layer communication (all-reduce + dispatch + combine), every TP ring one way (ring policy same)",
            &cats,
            &[("block".into(), bt), ("ER".into(), et)],
            "time (ns)",
        ),
    )?;
    let (mut bcats, mut bb, mut eb) = (Vec::new(), Vec::new(), Vec::new());
    for model in SWEEP_MODELS {
        for &k in sides {
            let best = |m| best_ring(rows, model, k, m);
            if let (Some(b), Some(e)) = (best(MappingKind::Block), best(MappingKind::Er)) {
                bcats.push(format!(
                    "{model} {k}x{k} ({} / {})",
                    ring_name(b.point.ring),
                    ring_name(e.point.ring)
                ));
                bb.push(b.total() as f64 * b.cycle_ns);
                eb.push(e.total() as f64 * e.cycle_ns);
            }
        }
    }
    if !bcats.is_empty() {
        write_file(
            &dir.join("total_block_vs_er_best_ring.svg"),
            &bar_chart_svg(
                "Layer communication with each mapping's best ring policy (block / ER)",
                &bcats,
                &[("block".into(), bb), ("ER".into(), eb)],
                "time (ns)",
            ),
        )?;
    }
    // Lines: all-to-all vs mesh side per model and mapping.
    let mut series = Vec::new();
    for model in SWEEP_MODELS {
        for m in [MappingKind::Block, MappingKind::Er] {
            let pts: Vec<(f64, f64)> = sides
                .iter()
                .filter_map(|&k| {
                    find(rows, "mapping", model, k, m, RingPolicy::Same)
                        .map(|r| (k as f64, r.a2a() as f64))
                })
                .collect();
            series.push(Series {
                name: format!("{model} {}", mapping_label(m)),
                points: pts,
                style: SeriesStyle::LineMarkers,
            });
        }
    }
    write_file(
        &dir.join("alltoall_vs_mesh.svg"),
        &line_chart_svg(&LineChart {
            title: "All-to-all cycles vs mesh side (TP = DP = side)".into(),
            x_label: "mesh side k (k x k dies)".into(),
            y_label: "dispatch + combine cycles".into(),
            series,
            y_max: None,
            log_y: false,
            log_x: false,
        }),
    )?;
    // Bars: ring policies (all-reduce).
    let mut cats = Vec::new();
    let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
    for m in [MappingKind::Block, MappingKind::Er] {
        for ring in [
            RingPolicy::Same,
            RingPolicy::Alternate,
            RingPolicy::Bidirectional,
        ] {
            groups.push((
                format!("{} {}", mapping_label(m), ring_name(ring)),
                Vec::new(),
            ));
        }
    }
    for model in SWEEP_MODELS {
        for &k in sides {
            cats.push(format!("{model} {k}x{k}"));
            let mut gi = 0;
            for m in [MappingKind::Block, MappingKind::Er] {
                for ring in [
                    RingPolicy::Same,
                    RingPolicy::Alternate,
                    RingPolicy::Bidirectional,
                ] {
                    groups[gi].1.push(
                        find(rows, "ring", model, k, m, ring)
                            .map_or(f64::NAN, |r| r.phases[0].cycles as f64),
                    );
                    gi += 1;
                }
            }
        }
    }
    write_file(
        &dir.join("allreduce_ring_policy.svg"),
        &bar_chart_svg("All-reduce cycles by ring policy", &cats, &groups, "cycles"),
    )?;
    // Bars: utilisation intra vs boundary per phase (DeepSeek-V3).
    let mut cats = Vec::new();
    let (mut ui, mut ub) = (Vec::new(), Vec::new());
    for &k in sides {
        for m in [MappingKind::Block, MappingKind::Er] {
            if let Some(r) = find(rows, "mapping", "DeepSeek-V3", k, m, RingPolicy::Same) {
                for ph in &r.phases {
                    cats.push(format!("{k}x{k} {} {}", mapping_label(m), ph.name));
                    ui.push(ph.mean_intra_tile_utilization);
                    ub.push(ph.mean_boundary_utilization);
                }
            }
        }
    }
    write_file(
        &dir.join("hot_cold_links.svg"),
        &bar_chart_svg(
            "DeepSeek-V3: mean link utilisation, intra-tile vs boundary",
            &cats,
            &[("intra-tile".into(), ui), ("boundary".into(), ub)],
            "utilisation",
        ),
    )?;
    Ok(())
}

/// `wafernoc moe --sweep`.
/// The `--sweep` run's output directory, tokens per group and seed, with
/// its flags checked.
fn sweep_settings(a: &MoeArgs) -> Result<(PathBuf, u64, u64), CliError> {
    let dir = a
        .out
        .clone()
        .ok_or_else(|| err("out", "--sweep needs --out DIR"))?;
    let single: [(&str, bool); 16] = [
        ("config", a.config.is_some()),
        ("model", a.model.is_some()),
        ("mesh", a.mesh.is_some()),
        ("wafers", a.wafers.is_some()),
        ("tp", a.tp.is_some()),
        ("dp", a.dp.is_some()),
        ("mapping", a.mapping.is_some()),
        ("tile", a.tile.is_some()),
        ("ring", a.ring.is_some()),
        ("routing", a.routing.is_some()),
        ("alltoall", a.alltoall.is_some()),
        ("flit-bytes", a.flit_bytes.is_some()),
        ("packet-flits", a.packet_flits.is_some()),
        ("slots", a.slots.is_some()),
        ("iterations", a.iterations.is_some()),
        ("layers", a.layers.is_some()),
    ];
    if let Some((k, _)) = single.iter().find(|(_, set)| *set) {
        return Err(err(k, "not allowed with --sweep (the sweep fixes it)"));
    }
    if a.capture.is_some() || a.per_packet.is_some() {
        return Err(CliError::new(
            "--capture and --per-packet are not available with --sweep (capture one layer run)",
        ));
    }
    let tokens = a.tokens_per_group.unwrap_or(SWEEP_TOKENS);
    if tokens == 0 {
        return Err(err("tokens_per_group", "must be at least 1"));
    }
    Ok((dir, tokens, a.seed.unwrap_or(1)))
}

fn sweep(a: &MoeArgs) -> CmdResult {
    let (dir, tokens, seed) = sweep_settings(a)?;
    make_dir(&dir)?;
    let wall = Instant::now();
    let points = sweep_points(a.quick);
    let bar = Progress::bar(a.quiet, points.len() as u64, "sweep");
    let mut rows = Vec::with_capacity(points.len());
    for p in &points {
        bar.set_message(format!(
            "{} {} {} {} {}",
            p.model,
            fmt_pair(p.mesh),
            mapping_name(p.mapping),
            p.tile.map_or("default".into(), fmt_pair),
            ring_name(p.ring)
        ));
        rows.push(run_point(p, tokens, seed)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let sides: Vec<usize> = if a.quick { vec![4, 8] } else { vec![4, 8, 16] };
    write_file(&dir.join("mapping_sweep.csv"), &sweep_csv(&rows))?;
    let md = sweep_markdown(&rows, tokens, seed, &sides, wall.elapsed().as_secs_f64());
    write_file(&dir.join("mapping_sweep.md"), &md)?;
    sweep_plots(&rows, &sides, &dir)?;
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "study": r.point.study, "model": r.point.model, "mesh": r.mesh_name(),
                    "tp": r.point.tp, "dp": r.point.dp, "mapping": mapping_name(r.point.mapping),
                    "tile": fmt_pair(r.tile), "ring": ring_name(r.point.ring), "tokens_per_group": r.tokens,
                    "allreduce_cycles": r.phases[0].cycles, "dispatch_cycles": r.phases[1].cycles,
                    "combine_cycles": r.phases[2].cycles,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"wafernoc_version": env!("CARGO_PKG_VERSION"), "tokens_per_group": tokens, "seed": seed, "points": v})
        );
    } else {
        print!("{md}");
        println!(
            "wrote {}/{{mapping_sweep.csv,mapping_sweep.md,*.svg}}",
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What a trace-driven `moe` run reads and checks before it simulates.
struct TraceSetup {
    /// The layer spec each (iteration, layer) run starts from.
    base: LayerSpec,
    /// The trace, its experts and top-k checked against the model.
    tr: crate::trace_routing::TraceRouting,
    /// Batch slots of the continuous batching.
    slots: usize,
    /// The iterations asked for (all present in the trace).
    its: Vec<wafernoc_trace::Iteration>,
    /// The layers asked for (all present in the trace).
    layers: std::ops::Range<usize>,
}

/// Load the trace of `--routing trace:FILE` and check `--slots`,
/// `--iterations` and `--layers` against it.
fn trace_setup(a: &MoeArgs, r: &Resolved, path: &Path) -> Result<TraceSetup, CliError> {
    use crate::trace_routing::{parse_range, TraceRouting};
    let base = r.layer_spec()?;
    let tr = TraceRouting::load(path, &base.model, &r.model_name)?;
    let slots = a.slots.unwrap_or(tr.default_slots());
    if slots == 0 {
        return Err(err("slots", "must be at least 1"));
    }
    let its = tr.iterations(
        slots,
        parse_range("iterations", a.iterations.as_deref().unwrap_or("0..1"))?,
    )?;
    let layers = parse_range("layers", a.layers.as_deref().unwrap_or("0..1"))?;
    let n = usize::from(tr.trace.meta.num_layers);
    if layers.end > n {
        return Err(err(
            "layers",
            format!("{}..{}: the trace has {n} layers", layers.start, layers.end),
        ));
    }
    Ok(TraceSetup {
        base,
        tr,
        slots,
        its,
        layers,
    })
}

/// `wafernoc moe --routing trace:FILE`: dispatch and combine driven by the
/// captured routing, one layer simulation per (iteration, layer); the
/// iteration's tokens are dealt round-robin to the DP groups.
fn run_trace(a: &MoeArgs, r: &Resolved, path: &Path) -> CmdResult {
    use wafernoc_traffic::collective::simulate_layer_with_counts;
    let wall = Instant::now();
    let TraceSetup {
        base,
        tr,
        slots,
        its,
        layers,
    } = trace_setup(a, r, path)?;
    let mut cap = new_capture(a, r, &base)?;
    let mut prog = Progress::new(a.quiet, "moe");
    let mut rows = Vec::new();
    for it in &its {
        for layer in layers.clone() {
            let (counts, tokens_per_group, loads) =
                tr.counts(it, layer, r.dp, base.model.experts)?;
            let mut spec = base.clone();
            spec.workload.tokens_per_group = tokens_per_group;
            spec.workload.layer = layer as u64;
            let res = match cap.as_mut() {
                Some(c) => {
                    c.set_run(it.index, layer);
                    c.meta["moe"]["tokens_per_group"] = tokens_per_group.into();
                    let res = simulate_layer_captured(
                        &spec,
                        Some(counts),
                        &mut |c, ph| prog.tick(c, ph),
                        c,
                    )
                    .map_err(lib_err)?;
                    c.finish_run()?;
                    res
                }
                None => simulate_layer_with_counts(&spec, counts, &mut |c, ph| prog.tick(c, ph))
                    .map_err(lib_err)?,
            };
            let mean = loads.iter().sum::<u64>() as f64 / loads.len().max(1) as f64;
            let imbalance = *loads.iter().max().unwrap_or(&0) as f64 / mean.max(1e-12);
            // One expert chosen by every token: the most skew possible
            // (load max/mean = experts / top_k).
            let one_expert =
                it.tokens.len() > 1 && loads.iter().any(|&l| l as usize == it.tokens.len());
            rows.push((it.index, layer, it.tokens.len(), imbalance, one_expert, res));
        }
    }
    prog.finish();
    let cycle_ns = r.wafer.cycle_ns();
    let total = |f: &dyn Fn(&LayerResult) -> u64| rows.iter().map(|x| f(&x.5)).sum::<u64>();
    let mut capture_json = serde_json::json!({});
    if let Some(c) = &cap {
        report_capture(a, c, &mut capture_json);
    }
    if a.json {
        let mut j = serde_json::json!({
            "wafernoc_version": env!("CARGO_PKG_VERSION"),
            "routing": format!("trace:{}", path.display()),
            "slots": slots,
            "cycle_ns": cycle_ns,
            "runs": rows.iter().map(|(i, l, t, imb, one, res)| serde_json::json!({
                "iteration": i, "layer": l, "tokens": t, "expert_load_max_over_mean": imb,
                "one_expert_takes_every_token": one,
                "phases": {
                    "allreduce": {"cycles": res.allreduce.cycles, "flits": res.allreduce.flits},
                    "dispatch": {"cycles": res.dispatch.cycles, "flits": res.dispatch.flits, "boundary_flits": res.dispatch.boundary_flits},
                    "combine": {"cycles": res.combine.cycles, "flits": res.combine.flits, "boundary_flits": res.combine.boundary_flits},
                },
            })).collect::<Vec<_>>(),
            "totals": {
                "allreduce_cycles": total(&|x| x.allreduce.cycles),
                "dispatch_cycles": total(&|x| x.dispatch.cycles),
                "combine_cycles": total(&|x| x.combine.cycles),
                "ns": total(&|x| x.total_cycles()) as f64 * cycle_ns,
            },
            "config": {
                "model": r.model_name, "mesh": fmt_pair(r.mesh), "wafers": fmt_pair(r.wafers),
                "tp": r.tp, "dp": r.dp, "mapping": mapping_name(r.mapping), "ring": ring_name(r.ring),
                "iterations": a.iterations.as_deref().unwrap_or("0..1"), "layers": a.layers.as_deref().unwrap_or("0..1"),
            },
        });
        if let Some(files) = capture_json.get("capture") {
            j["capture"] = files.clone();
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(|e| CliError::new(e.to_string()))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "wafernoc moe: {} routing replayed from {} ({}), {}x{} dies, TP={} DP={}, mapping {}",
        r.model_name,
        path.display(),
        tr.slots_label(slots),
        r.mesh.0,
        r.mesh.1,
        r.tp,
        r.dp,
        mapping_name(r.mapping)
    );
    println!(
        "{:>6} {:>6} {:>7} {:>13} {:>10} {:>10} {:>10} {:>14}",
        "iter",
        "layer",
        "tokens",
        "load max/mean",
        "allreduce",
        "dispatch",
        "combine",
        "boundary flits"
    );
    for (i, l, t, imb, _, res) in &rows {
        println!(
            "{:>6} {:>6} {:>7} {:>13.2} {:>10} {:>10} {:>10} {:>14}",
            i,
            l,
            t,
            imb,
            res.allreduce.cycles,
            res.dispatch.cycles,
            res.combine.cycles,
            res.dispatch.boundary_flits + res.combine.boundary_flits
        );
    }
    let all = total(&|x| x.total_cycles());
    println!(
        "total: all-reduce {} + dispatch {} + combine {} = {} cycles ({:.1} ns); wall time {:.2} s",
        total(&|x| x.allreduce.cycles),
        total(&|x| x.dispatch.cycles),
        total(&|x| x.combine.cycles),
        all,
        all as f64 * cycle_ns,
        wall.elapsed().as_secs_f64()
    );
    let mut same = rows.iter().filter(|r| r.4).map(|r| (r.0, r.1));
    if let Some((i, l)) = same.next() {
        println!(
            "note: in {} of {} runs (the first: iteration {i}, layer {l}) one expert \
             receives every token (load max/mean {:.2}, the most possible){}; \
             --iterations A..B picks others",
            1 + same.count(),
            rows.len(),
            base.model.experts as f64 / base.model.top_k as f64,
            match tr.trace.meta.phase {
                wafernoc_trace::Phase::Decode => {
                    ": the first decode tokens of a trace's requests are often the same \
                     formulaic tokens (demo starts at iteration 100)"
                }
                wafernoc_trace::Phase::Prefill => "",
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    //! Corrupted `moe --config` files: every check `moe` makes before it
    //! simulates returns an error or accepts the file; none panics. The
    //! seeds are the `moe` configurations the repository ships.

    use super::*;
    use crate::mutation::{edits, mutate, shipped_files};
    use proptest::prelude::*;

    /// docs/examples/moe_layer.toml says it gives every key: its keys are
    /// exactly `MoeFile`'s and `NocParams`'s, but for `[noc]
    /// max_packet_flits`, the same setting as `packet_flits` (a file that
    /// gives both with different values is refused). (The CLI test
    /// `shipped_example_lists_the_defaults` checks its values.)
    #[test]
    fn shipped_example_gives_every_key() {
        use std::collections::BTreeSet;
        let (_, text) = shipped_files("docs/examples", "toml")
            .into_iter()
            .find(|(p, _)| p.ends_with("moe_layer.toml"))
            .expect("docs/examples/moe_layer.toml");
        let file: toml::Table = toml::from_str(&text).unwrap();
        let all = serde_json::to_value(MoeFile {
            noc: Some(NocParams::default()),
            ..Default::default()
        })
        .unwrap();
        let keys = |m: &serde_json::Map<String, serde_json::Value>| {
            m.keys().cloned().collect::<BTreeSet<_>>()
        };
        let top: BTreeSet<String> = file.keys().cloned().collect();
        assert_eq!(top, keys(all.as_object().unwrap()));
        let noc: BTreeSet<String> = file["noc"].as_table().unwrap().keys().cloned().collect();
        let mut want = keys(all["noc"].as_object().unwrap());
        assert!(want.remove("max_packet_flits"));
        assert_eq!(noc, want);
    }

    /// The shipped `moe --config` files (docs/examples/moe_*.toml).
    fn seeds() -> Vec<String> {
        shipped_files("docs/examples", "toml")
            .into_iter()
            .filter(|(p, _)| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("moe_"))
            })
            .map(|(_, t)| t)
            .collect()
    }

    /// Everything `moe --config FILE` checks before it simulates.
    fn check_moe_text(text: &str) -> Result<(), CliError> {
        let file = MoeFile::parse(text).map_err(|e| CliError::new(e.to_string()))?;
        let a = MoeArgs::default();
        check_resolved(&a, &resolve_with(&a, file)?)
    }

    #[test]
    fn shipped_moe_configurations_pass_the_checks() {
        // Valid seeds, so that mutations start from files that reach every
        // check; and a plan that does not fit the mesh is refused by name.
        let s = seeds();
        assert!(!s.is_empty());
        for t in &s {
            check_moe_text(t).unwrap();
        }
        let bad = s[0].replacen("\ntp = 4", "\ntp = 3", 1);
        let e = check_moe_text(&bad).unwrap_err().to_string();
        assert!(
            e.contains("`tp`") && e.contains("tp (3) x dp (4) = 12"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn mutated_moe_configurations_never_panic(
            pick in any::<u16>(),
            edits in edits(),
        ) {
            thread_local!(static SEEDS: Vec<String> = seeds());
            let text = SEEDS.with(|c| mutate(&c[pick as usize % c.len()], &edits));
            let _ = check_moe_text(&text);
        }
    }
}
