//! `wafernoc bench`: simulation speed on fixed reference configurations.
//!
//! Each case runs open-loop Bernoulli uniform traffic for a warm-up and then
//! a timed number of cycles on `--threads` threads (default one), and reports simulated cycles per
//! second and flit-hops per second (flit traversals of router-to-router
//! links, the figure BookSim2 is quoted at), plus the process's peak
//! resident memory. Figures are wall-clock and vary with the machine; the
//! command prints the machine and the numbers go to docs/performance.md.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use wafernoc_mesh::network::default_threads;
use wafernoc_mesh::sim::Lookahead;
use wafernoc_mesh::{MeshSpec, Network, NetworkConfig, StepKind};
use wafernoc_router::RouterConfig;
use wafernoc_traffic::{fmt_num, Synthetic, SyntheticSpec};

use crate::{CliError, CmdResult};

/// Arguments of `wafernoc bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Only run cases whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Multiply every case's timed cycles (e.g. 0.1 for a quick look).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub scale: f64,
    /// Evaluate every router every cycle (the check mode), for comparison.
    #[arg(long)]
    pub step_all: bool,
    /// Print one JSON object per case instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Parallel speed-up: run each case N times on one thread and N times
    /// on --threads, alternating (this machine's speed drifts from run to
    /// run), and print the medians and their ratio; also the most the
    /// threads could gain here (as many one-thread runs at once as
    /// --threads: CPUs that slow each other down lower it below the
    /// thread count) and the efficiency against it.
    #[arg(long, value_name = "N")]
    pub speedup: Option<u32>,
    /// Run every selected case N times, in rounds (each round runs every
    /// case once, so a drift in this machine's speed touches all cases),
    /// and report each case's median run. Results of the simulation are
    /// the same in every run; only the time differs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: u32,
}

/// One benchmark case.
pub struct Case {
    /// Name.
    pub name: &'static str,
    /// Mesh side.
    pub k: usize,
    /// Offered flits/node/cycle.
    pub rate: f64,
    /// Warm-up cycles (not timed).
    pub warmup: u64,
    /// Timed cycles.
    pub cycles: u64,
}

/// The reference cases of the issues: 8×8 at 0.2 and 0.3, 32×32 at 0.05,
/// 64×64 at 0.02, 32×32 at 0.01 and 0.1 (cost per cycle vs load);
/// 4 VCs × 8 flits, 4-flit packets, XY routing.
pub const CASES: [Case; 6] = [
    Case {
        name: "8x8_uniform_0.2",
        k: 8,
        rate: 0.2,
        warmup: 5_000,
        cycles: 200_000,
    },
    Case {
        name: "8x8_uniform_0.3",
        k: 8,
        rate: 0.3,
        warmup: 5_000,
        cycles: 200_000,
    },
    Case {
        name: "32x32_uniform_0.05",
        k: 32,
        rate: 0.05,
        warmup: 2_000,
        cycles: 20_000,
    },
    Case {
        name: "64x64_uniform_0.02",
        k: 64,
        rate: 0.02,
        warmup: 2_000,
        cycles: 10_000,
    },
    Case {
        name: "32x32_uniform_0.01",
        k: 32,
        rate: 0.01,
        warmup: 2_000,
        cycles: 20_000,
    },
    Case {
        name: "32x32_uniform_0.1",
        k: 32,
        rate: 0.1,
        warmup: 2_000,
        cycles: 20_000,
    },
];

/// Result of one case.
#[derive(serde::Serialize)]
pub struct BenchResult {
    /// Case name.
    pub name: String,
    /// Threads simulating the network.
    pub threads: usize,
    /// Timed cycles.
    pub cycles: u64,
    /// Wall seconds of the timed part.
    pub seconds: f64,
    /// Simulated cycles per second.
    pub cycles_per_s: f64,
    /// Flit-hops per second.
    pub flit_hops_per_s: f64,
    /// Microseconds per simulated cycle.
    pub us_per_cycle: f64,
    /// Peak resident memory of the process so far, MiB.
    pub peak_rss_mib: f64,
    /// The router step the engine took (`Network::step_kind`): `rings`
    /// (the default pipeline with per-router arrival rings: one thread, at
    /// most 128 routers), `default` (the default pipeline) or `general`
    /// (the check mode).
    pub step: &'static str,
    /// With `--repeat N`: the timed seconds of every run, in run order
    /// (the figures above are those of the median run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs_seconds: Vec<f64>,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
                    .map(|kb| kb / 1024.0)
            })
        })
        .unwrap_or(f64::NAN)
}

/// Run one case.
pub fn run_case(
    c: &Case,
    scale: f64,
    step_all: bool,
    threads: usize,
) -> Result<BenchResult, CliError> {
    let cfg = NetworkConfig {
        mesh: MeshSpec {
            rows: c.k,
            cols: c.k,
            ..Default::default()
        },
        router: RouterConfig {
            num_vcs: 4,
            vc_buf_size: 8,
            ..Default::default()
        },
        step_all,
        ..Default::default()
    };
    let mut net = Network::with_threads(cfg, threads).map_err(|e| CliError::new(e.to_string()))?;
    let spec = SyntheticSpec {
        rate: c.rate,
        sizes: vec![4],
        seed: 1,
        ..Default::default()
    };
    let mut src = Synthetic::new(spec, net.topology()).map_err(|e| CliError::new(e.to_string()))?;
    // Each cycle's packets are generated while the previous cycle is
    // simulated (uniform Bernoulli traffic does not depend on the network).
    let mut src = Lookahead::new(&mut src);
    let mut go = |net: &mut Network, cycles: u64| -> Result<(), CliError> {
        for _ in 0..cycles {
            net.enqueue_all(src.packets(net.now()))
                .map_err(|e| CliError::new(e.to_string()))?;
            src.step(net, true)
                .map_err(|d| CliError::with_code(d.to_string(), 3))?;
            net.drain_delivered().for_each(drop);
        }
        Ok(())
    };
    go(&mut net, c.warmup)?;
    let hops0 = net.counters().flit_hops;
    let cycles = ((c.cycles as f64 * scale).round() as u64).max(1);
    let t = Instant::now();
    go(&mut net, cycles)?;
    let s = t.elapsed().as_secs_f64();
    let hops = net.counters().flit_hops - hops0;
    Ok(BenchResult {
        name: c.name.to_string(),
        threads: net.threads(),
        cycles,
        seconds: s,
        cycles_per_s: cycles as f64 / s,
        flit_hops_per_s: hops as f64 / s,
        us_per_cycle: 1e6 * s / cycles as f64,
        peak_rss_mib: peak_rss_mib(),
        step: match net.step_kind() {
            StepKind::DefaultPipelineRings => "rings",
            StepKind::DefaultPipeline => "default",
            StepKind::General => "general",
        },
        runs_seconds: Vec::new(),
    })
}

/// The run of median time among `runs` of one case, in run order (for an
/// even count the faster of the two middle runs: a reported run is a real
/// one), with every run's seconds attached. Its peak memory is the first
/// run's: the process's peak when the case first ran, as without
/// `--repeat` (later rounds come after every case has run once).
fn median_run(mut runs: Vec<BenchResult>) -> BenchResult {
    let secs: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
    let first_peak = runs[0].peak_rss_mib;
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let mut r = runs.swap_remove((runs.len() - 1) / 2);
    if secs.len() > 1 {
        r.runs_seconds = secs;
    }
    r.peak_rss_mib = first_peak;
    r
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `--speedup N`: alternate one-thread and T-thread runs of a case, and
/// measure what T threads could gain at most on this machine at that
/// time: in each round, after the one-thread and T-thread runs, T
/// independent one-thread runs of the case at once (one OS thread each;
/// T as the T-thread run used). With perfect work
/// sharing a T-thread run does its share of the work at each CPU's
/// co-running speed, so its speed-up over the lone run is at most
/// `ceiling = Σ_i alone / together_i` (T when co-running costs nothing;
/// less when the CPUs slow each other down, as this 2-CPU virtual machine's
/// do: docs/performance.md, "Two-cycle steps, session 14"). The speed-up
/// divided by the ceiling is the engine's parallel efficiency.
fn speedup(c: &Case, a: &BenchArgs, n: u32) -> Result<(), CliError> {
    let threads = default_threads();
    let mut one = Vec::new();
    let mut many = Vec::new();
    let mut ceiling = Vec::new();
    let mut corun_secs = Vec::new();
    let mut used = threads;
    for _ in 0..n {
        let alone = run_case(c, a.scale, a.step_all, 1)?.seconds;
        let r = run_case(c, a.scale, a.step_all, threads)?;
        // As many co-running runs as the network used threads (at most
        // one per mesh row: the engine's rule, reported by the run).
        used = r.threads;
        let together = corun(c, a, used)?;
        ceiling.push(together.iter().map(|x| alone / x).sum::<f64>());
        corun_secs.push(together);
        one.push(alone);
        many.push(r.seconds);
    }
    let pairs: Vec<f64> = one.iter().zip(&many).map(|(x, y)| x / y).collect();
    let eff: Vec<f64> = pairs.iter().zip(&ceiling).map(|(s, c)| s / c).collect();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (m1, mn, mp, mc, me) = (
        median(&mut one.clone()),
        median(&mut many.clone()),
        median(&mut pairs.clone()),
        median(&mut ceiling.clone()),
        median(&mut eff.clone()),
    );
    if a.json {
        let v = serde_json::json!({
            "name": c.name,
            "threads": used,
            "seconds_one_thread": one,
            "seconds_threads": many,
            "seconds_corun": corun_secs,
            "median_one_thread": m1,
            "median_threads": mn,
            "speedup_of_medians": m1 / mn,
            "median_pair_speedup": mp,
            "median_ceiling": mc,
            "median_efficiency": me,
        });
        println!("{v}");
    } else {
        println!("{}: 1 thread  s: {}", c.name, fmt(&one));
        println!("{}: {used} threads s: {}", c.name, fmt(&many));
        println!(
            "{}: medians {m1:.3} s / {mn:.3} s = {:.2}x; median of pair ratios {mp:.2}x (pairs: {})",
            c.name,
            m1 / mn,
            fmt(&pairs)
        );
        println!(
            "{}: {used} one-thread runs at once: ceiling {mc:.2}x (median; rounds: {}); \
             efficiency (pair ratio / ceiling) {me:.3} (rounds: {})",
            c.name,
            fmt(&ceiling),
            fmt(&eff)
        );
    }
    Ok(())
}

/// `n` independent one-thread runs of case `c` at once, one OS thread
/// each: their timed seconds.
fn corun(c: &Case, a: &BenchArgs, n: usize) -> Result<Vec<f64>, CliError> {
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..n)
            .map(|_| s.spawn(|| run_case(c, a.scale, a.step_all, 1).map(|r| r.seconds)))
            .collect();
        runs.into_iter()
            .map(|h| h.join().expect("a co-running bench thread panicked"))
            .collect()
    })
}

/// Largest `--scale`.
const MAX_SCALE: f64 = 10_000.0;

/// `wafernoc bench`.
pub fn run(a: BenchArgs) -> CmdResult {
    if !(a.scale > 0.0 && a.scale.is_finite()) {
        return Err(CliError::new(format!(
            "--scale {} must be a positive number",
            fmt_num(a.scale)
        )));
    }
    // A larger scale would run for days, or wrap the cycle count (it
    // saturated at u64::MAX, silently).
    if a.scale > MAX_SCALE {
        return Err(CliError::new(format!(
            "--scale {}: at most {MAX_SCALE} (the longest case would run {} cycles)",
            fmt_num(a.scale),
            fmt_num(CASES.iter().map(|c| c.cycles).max().unwrap_or(0) as f64 * a.scale)
        )));
    }
    if a.repeat == 0 {
        return Err(CliError::new("--repeat 0: give at least one run per case"));
    }
    if a.repeat > 1 && a.speedup.is_some() {
        return Err(CliError::new(
            "--repeat with --speedup: --speedup N already runs each case N times per thread count",
        ));
    }
    if a.speedup == Some(0) || (a.speedup.is_some() && default_threads() < 2) {
        return Err(CliError::new(
            "--speedup N needs N >= 1 and --threads of 2 or more (it compares them with one thread)",
        ));
    }
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| a.only.as_deref().is_none_or(|o| c.name.contains(o)))
        .collect();
    if cases.is_empty() {
        return Err(CliError::new(format!(
            "--only `{}`: no case matches; cases: {}",
            a.only.as_deref().unwrap_or(""),
            CASES.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
        )));
    }
    if !a.json {
        println!(
            "wafernoc {} bench, {} thread(s){}; 4 VCs x 8 flits, 4-flit packets, XY, uniform Bernoulli; \
             L2 {} KiB (arrival touch pass above it)",
            env!("CARGO_PKG_VERSION"),
            default_threads(),
            if a.step_all { ", step-all check mode" } else { "" },
            wafernoc_mesh::network::l2_bytes() >> 10
        );
        if a.speedup.is_none() {
            println!(
                "{:<22} {:>9} {:>8} {:>14} {:>16} {:>10} {:>10}  step",
                "case", "cycles", "secs", "cycles/s", "flit-hops/s", "us/cycle", "peakMiB"
            );
        }
    }
    if let Some(n) = a.speedup {
        for c in cases {
            speedup(c, &a, n)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut runs: Vec<Vec<BenchResult>> = cases.iter().map(|_| Vec::new()).collect();
    for round in 0..a.repeat {
        for (c, rs) in cases.iter().zip(&mut runs) {
            let r = run_case(c, a.scale, a.step_all, default_threads())?;
            if a.repeat > 1 && !a.json {
                eprintln!(
                    "round {}/{}: {} {:.2} s",
                    round + 1,
                    a.repeat,
                    c.name,
                    r.seconds
                );
            }
            rs.push(r);
        }
    }
    if a.repeat > 1 && !a.json {
        println!("(median of {} runs per case; all runs on stderr)", a.repeat);
    }
    let mut us = std::collections::HashMap::new();
    for rs in runs {
        let r = median_run(rs);
        us.insert(r.name.clone(), r.us_per_cycle);
        if a.json {
            println!("{}", serde_json::to_string(&r).expect("serialisable"));
        } else {
            println!(
                "{:<22} {:>9} {:>8.2} {:>14.0} {:>16.0} {:>10.2} {:>10.1}  {}",
                r.name,
                r.cycles,
                r.seconds,
                r.cycles_per_s,
                r.flit_hops_per_s,
                r.us_per_cycle,
                r.peak_rss_mib,
                r.step
            );
        }
    }
    // The speed issue's load-proportionality figure, when both cases ran.
    if let (Some(lo), Some(hi), false) = (
        us.get("32x32_uniform_0.01"),
        us.get("32x32_uniform_0.1"),
        a.json,
    ) {
        println!(
            "cost per cycle, 32x32 at 0.01 / at 0.1: {:.3} (target <= 0.1)",
            lo / hi
        );
    }
    Ok(ExitCode::SUCCESS)
}
