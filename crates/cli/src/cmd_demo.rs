//! `wafernoc demo`: the newcomer's first run. Replays captured GPT-OSS-20B
//! decode routing (shipped in traces/) on a small wafer, one MoE layer per
//! serving iteration, under the block mapping and under ER-Mapping, and
//! prints a report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use wafernoc_moe::{AllToAllMode, Mapping, MoeModel, ParallelPlan, RoutingSource, WaferSpec};
use wafernoc_traffic::collective::{
    simulate_layer_with_counts, LayerSpec, LayerWorkload, NocParams,
};

use crate::progress::Progress;
use crate::trace_routing::TraceRouting;
use crate::{CliError, CmdResult};

/// Arguments of `wafernoc demo` (all optional: the defaults are the demo).
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Routing trace to replay. Default: traces/gpt-oss-20b/decode_128req.wnrt
    /// of the current directory, else of the source tree the binary was
    /// built from.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Model preset the trace was captured from.
    #[arg(long, default_value = "gpt-oss-20b")]
    pub model: String,
    /// Mesh of dies, RxC.
    #[arg(long, default_value = "4x8")]
    pub mesh: String,
    /// Tensor-parallel degree (DP = dies / TP).
    #[arg(long, default_value_t = 4)]
    pub tp: usize,
    /// Continuous-batching slots (tokens per iteration).
    #[arg(long, default_value_t = 64)]
    pub slots: usize,
    /// Serving iterations to replay.
    #[arg(long, default_value_t = 4)]
    pub iterations: usize,
    /// First iteration to replay (the first few decode tokens of every
    /// request are the same formulaic tokens, so early iterations route
    /// every request to the same experts).
    #[arg(long, default_value_t = 100)]
    pub start: usize,
    /// MoE layer of the trace to replay.
    #[arg(long, default_value_t = 0)]
    pub layer: usize,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_mesh(s: &str) -> Result<(usize, usize), CliError> {
    let bad = || CliError::new(format!("--mesh `{s}`: expected RxC, e.g. 4x8"));
    let (r, c) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (r, c): (usize, usize) = (
        r.trim().parse().map_err(|_| bad())?,
        c.trim().parse().map_err(|_| bad())?,
    );
    if r == 0 || c == 0 {
        return Err(CliError::new(format!(
            "--mesh `{s}`: rows and columns must be at least 1"
        )));
    }
    Ok((r, c))
}

/// The shipped trace the demo replays, relative to the repository root.
const DEFAULT_TRACE: &str = "traces/gpt-oss-20b/decode_128req.wnrt";

/// The default trace: in the current directory (a clone's root), else in
/// the source tree this binary was built from (a binary run from
/// elsewhere). Was: only the first, so `wafernoc demo` outside the clone
/// failed with a bare "No such file or directory".
fn default_trace() -> Result<PathBuf, CliError> {
    let here = PathBuf::from(DEFAULT_TRACE);
    if here.is_file() {
        return Ok(here);
    }
    let built = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(DEFAULT_TRACE);
    if built.is_file() {
        return Ok(built.canonicalize().unwrap_or(built));
    }
    Err(CliError::new(format!(
        "the demo's trace {DEFAULT_TRACE} is neither in the current directory nor in the \
         source tree this binary was built from ({}): run it from the repository's root, \
         or give the trace with --trace FILE",
        built.display()
    )))
}

/// `wafernoc demo`.
pub fn run(a: DemoArgs) -> CmdResult {
    let wall = Instant::now();
    let trace = match a.trace.clone() {
        Some(t) => t,
        None => default_trace()?,
    };
    let (rows, cols) = parse_mesh(&a.mesh)?;
    let devices = rows * cols;
    if a.tp == 0 || devices % a.tp != 0 {
        return Err(CliError::new(format!(
            "--tp {}: must divide the {devices} dies",
            a.tp
        )));
    }
    let dp = devices / a.tp;
    let model = MoeModel::preset(&a.model).map_err(|e| CliError::new(e.to_string()))?;
    let tr = TraceRouting::load(&trace, &model, &a.model)?;
    if a.iterations == 0 {
        return Err(CliError::new("--iterations 0: must be at least 1"));
    }
    let end = a.start.checked_add(a.iterations).ok_or_else(|| {
        CliError::new(format!(
            "--start {} --iterations {}: out of range",
            a.start, a.iterations
        ))
    })?;
    let its = tr.iterations(a.slots, a.start..end)?;
    let wafer = WaferSpec::single(rows, cols);
    let mut prog = Progress::new(a.quiet, "demo");
    let mut report = Vec::new();
    for (mname, mapping) in [("block", Mapping::block()), ("er", Mapping::er())] {
        let mut per_it = Vec::new();
        for it in &its {
            let (counts, tokens_per_group, loads) = tr.counts(it, a.layer, dp, model.experts)?;
            let spec = LayerSpec {
                wafer: wafer.clone(),
                model: model.clone(),
                plan: ParallelPlan::new(a.tp, dp, mapping),
                workload: LayerWorkload {
                    tokens_per_group,
                    routing: RoutingSource::Uniform,
                    seed: 0,
                    layer: a.layer as u64,
                    alltoall: AllToAllMode::Confined,
                },
                noc: NocParams::default(),
            };
            let r = simulate_layer_with_counts(&spec, counts, &mut |c, p| prog.tick(c, p))
                .map_err(|e| {
                    CliError::with_code(
                        e.to_string(),
                        if e.to_string().contains("deadlock") {
                            3
                        } else {
                            2
                        },
                    )
                })?;
            let mean = loads.iter().sum::<u64>() as f64 / loads.len() as f64;
            let imbalance = *loads.iter().max().unwrap_or(&0) as f64 / mean.max(1e-9);
            per_it.push((it.index, it.tokens.len(), imbalance, r));
        }
        report.push((mname, per_it));
    }
    prog.finish();
    let cycle_ns = wafer.cycle_ns();
    if a.json {
        let j = serde_json::json!({
            "wafernoc_version": env!("CARGO_PKG_VERSION"),
            "command": "demo",
            "trace": trace.display().to_string(),
            "model": a.model, "mesh": a.mesh, "tp": a.tp, "dp": dp, "slots": a.slots, "layer": a.layer,
            "cycle_ns": cycle_ns,
            // The resolved configuration, as the other commands' JSON has.
            "config": {
                "trace": trace.display().to_string(),
                "model": a.model,
                "mesh": a.mesh,
                "tp": a.tp,
                "dp": dp,
                "slots": a.slots,
                "start": a.start,
                "iterations": a.iterations,
                "layer": a.layer,
                "mappings": ["block", "er"],
                "alltoall": "confined",
                "wafer": &wafer,
                "noc": NocParams::default(),
            },
            "mappings": report.iter().map(|(m, its)| serde_json::json!({
                "mapping": m,
                "iterations": its.iter().map(|(i, t, imb, r)| serde_json::json!({
                    "iteration": i, "tokens": t, "expert_load_max_over_mean": imb,
                    "allreduce_cycles": r.allreduce.cycles, "dispatch_cycles": r.dispatch.cycles,
                    "combine_cycles": r.combine.cycles,
                    "dispatch_boundary_flits": r.dispatch.boundary_flits, "combine_boundary_flits": r.combine.boundary_flits,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&j).expect("serialisable")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "wafernoc demo: {} {} routing ({}), {} iterations of {}, MoE layer {}",
        a.model,
        tr.trace.meta.phase,
        trace.display(),
        its.len(),
        tr.slots_label(a.slots),
        a.layer
    );
    println!(
        "wafer: {rows}x{cols} dies, TP={} DP={dp}, 256-byte flits, 1 cycle = {cycle_ns:.3} ns; one layer = all-reduce, dispatch, combine, simulated flit by flit",
        a.tp
    );
    println!();
    println!(
        "{:<8} {:>4} {:>7} {:>9} {:>10} {:>10} {:>10} {:>12} {:>14}",
        "mapping",
        "iter",
        "tokens",
        "load max/mean",
        "allreduce",
        "dispatch",
        "combine",
        "all-to-all ns",
        "boundary flits"
    );
    let mut totals = Vec::new();
    for (m, its) in &report {
        let (mut ar, mut a2a) = (0u64, 0u64);
        for (i, t, imb, r) in its {
            println!(
                "{:<8} {:>4} {:>7} {:>13.2} {:>10} {:>10} {:>10} {:>12.1} {:>14}",
                m,
                i,
                t,
                imb,
                r.allreduce.cycles,
                r.dispatch.cycles,
                r.combine.cycles,
                r.alltoall_cycles() as f64 * cycle_ns,
                r.dispatch.boundary_flits + r.combine.boundary_flits
            );
            ar += r.allreduce.cycles;
            a2a += r.alltoall_cycles();
        }
        totals.push((m, ar, a2a));
    }
    println!(
        "(load max/mean: the busiest expert's tokens over the mean expert's; allreduce, \
         dispatch, combine: cycles of each phase;\n all-to-all ns: dispatch + combine; \
         boundary flits: dispatch and combine flits on links between compact tiles, TP tiles \
         under block,\n Full Token Domains under ER, whose all-to-all stays inside its domain)"
    );
    println!();
    for (m, ar, a2a) in &totals {
        println!(
            "{m:<6} total over {} iterations: all-reduce {} cycles ({:.0} ns), all-to-all {} cycles ({:.0} ns), communication {:.0} ns",
            its.len(),
            ar,
            *ar as f64 * cycle_ns,
            a2a,
            *a2a as f64 * cycle_ns,
            (*ar + *a2a) as f64 * cycle_ns
        );
    }
    if let [(_, bar, ba2a), (_, ear, ea2a)] = totals[..] {
        let cmp = |what: &str, b: u64, e: u64| {
            let d = 100.0 * (e as f64 - b as f64) / b.max(1) as f64;
            format!(
                "{what} {:.1}% {} under ER",
                d.abs(),
                if d <= 0.0 { "shorter" } else { "longer" }
            )
        };
        println!(
            "ER vs block: {}; {}; {}",
            cmp("all-to-all", ba2a, ea2a),
            cmp("all-reduce", bar, ear),
            cmp("communication", bar + ba2a, ear + ea2a)
        );
    }
    println!(
        "(wall time {:.2} s; more: wafernoc moe --help, docs/reproduction.md)",
        wall.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
