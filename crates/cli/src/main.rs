//! The `wafernoc` command-line tool. Each subcommand lives in its own module
//! (`cmd_*.rs`); this file only parses arguments and maps errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod booksim;
mod cmd_balance;
mod cmd_bench;
mod cmd_deadlock;
mod cmd_demo;
mod cmd_moe;
mod cmd_replay;
mod cmd_sim;
mod cmd_sweep;
mod cmd_sweep_plot;
mod cmd_sweep_rates;
mod cmd_trace;
mod cmd_validate;
mod error;
mod moe_capture;
#[cfg(test)]
mod mutation;
mod plot;
mod progress;
mod trace_routing;

pub use error::{CliError, CmdResult};

/// wafernoc: cycle-level, flit-level NoC simulator for MoE on wafer-scale chips.
#[derive(Parser, Debug)]
#[command(name = "wafernoc", version, about, long_about = None)]
struct Cli {
    /// Threads per simulation (the mesh is split into row bands, at most
    /// one per row). Results are byte-identical for every count. Pays off
    /// from about 16×16 (two threads: 1.5× there, 1.75× on 24×24; 1.4–1.9×
    /// on 32×32 and 2× on 64×64, by host; slower than one on 8×8;
    /// docs/performance.md).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
// Parsed once per process; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run a synthetic-traffic measurement from a native TOML configuration.
    Run(cmd_sim::RunArgs),
    /// Run a BookSim2 configuration file and print BookSim's summary.
    Booksim(cmd_sim::BooksimArgs),
    /// The newcomer's run: captured GPT-OSS-20B routing replayed on a small wafer.
    Demo(cmd_demo::DemoArgs),
    /// Static deadlock check of a configuration (channel dependency graph).
    CheckDeadlock(cmd_deadlock::CheckDeadlockArgs),
    /// Simulate one MoE layer (all-reduce, dispatch, combine) on a wafer.
    Moe(cmd_moe::MoeArgs),
    /// Serving iterations with expert load balancing and weight migration.
    Balance(cmd_balance::BalanceArgs),
    /// Latency-throughput curve over offered rates (CSV and SVG).
    SweepRates(cmd_sweep_rates::SweepRatesArgs),
    /// Run a parameter grid (run/booksim/moe/balance points, one subprocess
    /// each; --jobs, --shard I/N, --resume), `sweep merge DIR` into one CSV,
    /// or `sweep plot` of its columns (SVG).
    Sweep(cmd_sweep::SweepArgs),
    /// Simulation speed on the fixed reference configurations.
    Bench(cmd_bench::BenchArgs),
    /// Compare every run of a BookSim2 reference set with wafernoc.
    Validate(cmd_validate::ValidateArgs),
    /// Import, convert and summarise packet and MoE routing traces.
    Trace(cmd_trace::TraceArgs),
    /// Replay a packet trace (open or closed loop) and report per-packet latency.
    ReplayPackets(cmd_replay::ReplayArgs),
}

/// Check a sweep point's command line without simulating: its flags (as
/// the subprocess would parse them) and everything its command checks
/// before it simulates: for `run` and `booksim` the configuration
/// (unknown or mistyped keys, impossible values), for `moe` and `balance`
/// the layer or serving study (model, plan, mapping, network, a routing
/// trace and its ranges). Used by `sweep --dry-run`.
pub(crate) fn check_point_args(args: &[String]) -> Result<(), CliError> {
    let argv = std::iter::once("wafernoc".to_string()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        // clap's message up to its usage block: the first line, and the
        // indented lines after it that name the arguments (a missing
        // required argument is listed on the next line).
        let msg = e.to_string();
        let mut lines = msg.lines();
        let mut text = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        for l in lines.take_while(|l| l.starts_with("  ")) {
            text.push(' ');
            text.push_str(l.trim());
        }
        CliError::new(text)
    })?;
    match cli.command {
        Command::Run(a) => cmd_sim::check_run(&a),
        Command::Booksim(a) => cmd_sim::check_booksim(&a),
        Command::Moe(a) => cmd_moe::check(&a),
        Command::Balance(a) => cmd_balance::check(&a),
        _ => Ok(()),
    }
}

/// The files or directories a point's command line would write, as
/// (flag, path) pairs; none if the line does not parse (its own check
/// reports that).
pub(crate) fn point_outputs(args: &[String]) -> Vec<(&'static str, PathBuf)> {
    let argv = std::iter::once("wafernoc".to_string()).chain(args.iter().cloned());
    let Ok(cli) = Cli::try_parse_from(argv) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut add = |flag: &'static str, p: &Option<PathBuf>| {
        if let Some(p) = p {
            out.push((flag, p.clone()));
        }
    };
    match cli.command {
        Command::Run(a) => {
            add("--capture", &a.capture);
            add("--per-packet", &a.per_packet);
        }
        Command::Booksim(a) => {
            add("--capture", &a.capture);
            add("--per-packet", &a.per_packet);
        }
        Command::Moe(a) => {
            add("--out", &a.out);
            add("--capture", &a.capture);
            add("--per-packet", &a.per_packet);
        }
        Command::Balance(a) => add("--out", &a.out),
        _ => {}
    }
    out
}

/// `--threads` is global (it may follow the subcommand), and clap takes
/// the last of several global occurrences without a word; every other
/// flag given twice is an error, so this one is too.
fn repeated_threads(args: impl Iterator<Item = std::ffi::OsString>) -> Option<String> {
    let n = args
        .take_while(|a| a != "--")
        .filter(|a| {
            let a = a.to_string_lossy();
            a == "--threads" || a.starts_with("--threads=")
        })
        .count();
    (n > 1).then(|| {
        format!(
            "the argument '--threads <THREADS>' cannot be used multiple times (given {n} times)"
        )
    })
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so a print to a closed pipe (`wafernoc ... |
    // head`) panics. Killed by the signal instead, as other Unix tools are.
    sigpipe::reset();
    if let Some(msg) = repeated_threads(std::env::args_os().skip(1)) {
        eprintln!("error: {msg}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    wafernoc_mesh::network::set_default_threads(cli.threads as usize);
    let result: CmdResult = match cli.command {
        Command::Run(a) => cmd_sim::run(a),
        Command::Booksim(a) => cmd_sim::booksim(a),
        Command::Validate(a) => cmd_validate::run(a),
        Command::Bench(a) => cmd_bench::run(a),
        Command::Sweep(a) => cmd_sweep::run(a),
        Command::SweepRates(a) => cmd_sweep_rates::run(a),
        Command::Demo(a) => cmd_demo::run(a),
        Command::CheckDeadlock(a) => cmd_deadlock::run(a),
        Command::Moe(a) => cmd_moe::run(a),
        Command::Balance(a) => cmd_balance::run(a),
        Command::Trace(a) => cmd_trace::run(a),
        Command::ReplayPackets(a) => cmd_replay::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
