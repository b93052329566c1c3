//! `wafernoc trace ...`: import, convert and summarise traces.
//!
//! - `import --format F IN OUT`: captured MoE routing data to a routing trace
//!   (`.wnrt` binary or `.jsonl` text, by extension);
//! - `convert IN OUT`: between binary and text (packet or routing traces);
//! - `stats TRACE`: batching statistics of a routing trace (or a summary of a
//!   packet trace);
//! - `bench-decode`: decode speed of both packet encodings.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use wafernoc_trace::{
    self as trace, Batching, Encoding, ImportFormat, ImportOptions, Phase, TraceKind,
};

use crate::error::ctx;
use crate::{CliError, CmdResult};

/// Arguments of `wafernoc trace`.
#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(subcommand)]
    command: TraceCommand,
}

#[derive(Subcommand, Debug)]
enum TraceCommand {
    /// Import captured MoE routing data into a routing trace (.wnrt binary or .jsonl text).
    Import(ImportArgs),
    /// Convert a packet or routing trace between binary and text (JSONL).
    Convert(ConvertArgs),
    /// Expert-load statistics of a routing trace under continuous batching
    /// (decode) or chunked prefill; for a packet trace, a short summary.
    Stats(StatsArgs),
    /// Measure binary and text packet-trace decode speed (records/s).
    BenchDecode(BenchArgs),
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// Input layout: gpt-oss-jsonl, gpt-oss-json, esft or generic.
    #[arg(long, value_parser = parse_format)]
    format: ImportFormat,
    /// Input file (gpt-oss-jsonl, generic, gpt-oss-json) or directory (esft, gpt-oss-json).
    input: PathBuf,
    /// Output trace: .wnrt (binary) or .jsonl (text).
    output: PathBuf,
    /// Routed experts per layer (checked against the data).
    #[arg(long)]
    num_experts: Option<u16>,
    /// Experts per token per layer (checked against the data).
    #[arg(long)]
    top_k: Option<u16>,
    /// Number of MoE layers (checked against the data).
    #[arg(long)]
    layers: Option<u16>,
    /// Model name recorded in the metadata.
    #[arg(long)]
    model: Option<String>,
    /// Provenance text recorded in the metadata (replaces the default).
    #[arg(long)]
    source: Option<String>,
    /// Licence recorded in the metadata.
    #[arg(long)]
    license: Option<String>,
    /// Phase of a generic trace: decode or prefill.
    #[arg(long)]
    phase: Option<Phase>,
    /// Drop router probabilities / gate weights.
    #[arg(long)]
    no_weights: bool,
}

#[derive(Args, Debug)]
struct ConvertArgs {
    /// Input trace (format detected from its first bytes).
    input: PathBuf,
    /// Output trace; encoding from the extension (.wnpt/.wnrt binary, .jsonl text) unless --to.
    output: PathBuf,
    /// Output encoding: binary or text.
    #[arg(long)]
    to: Option<Encoding>,
}

#[derive(Args, Debug)]
struct StatsArgs {
    /// Routing trace (binary or text) or packet trace.
    trace: PathBuf,
    /// Continuous-batching slots (default for decode traces: 64).
    #[arg(long, conflicts_with = "chunk")]
    slots: Option<usize>,
    /// Prefill chunk size in tokens (default for prefill traces: 512).
    #[arg(long)]
    chunk: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Number of generated records (1 to 20,000,000: both encodings are
    /// held in memory, about 100 bytes per record).
    #[arg(long, default_value_t = 2_000_000,
          value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
    records: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_format(s: &str) -> Result<ImportFormat, String> {
    s.parse()
}

fn err(e: trace::TraceError) -> CliError {
    CliError::new(e.to_string())
}

/// Run `wafernoc trace`.
pub fn run(args: TraceArgs) -> CmdResult {
    match args.command {
        TraceCommand::Import(a) => import(a),
        TraceCommand::Convert(a) => convert(a),
        TraceCommand::Stats(a) => stats(a),
        TraceCommand::BenchDecode(a) => bench(a),
    }
}

fn import(a: ImportArgs) -> CmdResult {
    let opts = ImportOptions {
        num_experts: a.num_experts,
        top_k: a.top_k,
        num_layers: a.layers,
        model: a.model,
        source: a.source,
        license: a.license,
        phase: a.phase,
        drop_weights: a.no_weights,
    };
    if trace::same_file(&a.input, &a.output) {
        return Err(CliError::new(format!(
            "{}: input and output are the same file",
            a.output.display()
        )));
    }
    let t = trace::import(a.format, &a.input, &opts).map_err(err)?;
    // An empty trace is valid to the trace crate (a header fixes its
    // shape) but every consumer refuses it; importing one is a mistake
    // (was: exit 0 and a file `trace stats` then rejected).
    if t.requests.is_empty() {
        return Err(CliError::new(format!(
            "{}: no requests to import; nothing written to {}",
            a.input.display(),
            a.output.display()
        )));
    }
    t.save(&a.output, None).map_err(err)?;
    let m = &t.meta;
    println!(
        "imported {} requests, {} tokens ({}, {} experts, top-{}, {} layers, {}) from {} to {}",
        t.requests.len(),
        t.num_tokens(),
        m.model,
        m.num_experts,
        m.top_k,
        m.num_layers,
        m.phase,
        a.input.display(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn convert(a: ConvertArgs) -> CmdResult {
    let s = trace::convert(&a.input, &a.output, a.to).map_err(err)?;
    println!(
        "converted {} records: {} ({}) -> {} ({})",
        s.records,
        a.input.display(),
        s.from,
        a.output.display(),
        s.to
    );
    Ok(ExitCode::SUCCESS)
}

fn stats(a: StatsArgs) -> CmdResult {
    // One open: the path may be a pipe.
    let (fmt, src, name) = trace::open_detected(&a.trace).map_err(err)?;
    if fmt.kind == TraceKind::Packet {
        if a.slots.is_some() || a.chunk.is_some() {
            return Err(CliError::new(format!(
                "{}: --slots/--chunk apply to routing traces; this is a {fmt}",
                a.trace.display()
            )));
        }
        let r = trace::PacketReader::from_detected(fmt, src, name).map_err(err)?;
        return packet_stats(&a, r);
    }
    let t = trace::RoutingTrace::from_detected(fmt, src, &name).map_err(err)?;
    if let (Some(b), trace::Phase::Prefill) = (a.slots, t.meta.phase) {
        // The same flag means chunk tokens to moe and balance (their one
        // schedule flag); here both schedules have a flag of their own.
        eprintln!(
            "note: --slots {b} schedules this prefill trace by continuous batching; \
             `moe` and `balance` read --slots on a prefill trace as {b}-token chunks, \
             which is --chunk {b} here"
        );
    }
    let batching = match (a.slots, a.chunk) {
        (Some(slots), _) => Batching::Continuous { slots },
        (None, Some(chunk)) => Batching::Chunked { chunk },
        (None, None) => Batching::default_for(t.meta.phase),
    };
    let s = trace::stats(&t, batching)
        .map_err(|e| CliError::new(format!("{}: {e}", a.trace.display())))?;
    if a.json {
        let j = serde_json::to_string_pretty(&s).map_err(ctx("cannot encode JSON"))?;
        println!("{j}");
    } else {
        println!(
            "trace:                 {} ({})",
            a.trace.display(),
            t.meta.model
        );
        println!(
            "shape:                 {} requests, {} tokens, {} experts, top-{}, {} layers, {}",
            s.requests, s.tokens, s.num_experts, s.top_k, s.num_layers, t.meta.phase
        );
        println!("batching:              {}", s.batching);
        println!("iterations:            {}", s.iterations);
        println!("mean tokens/iteration: {:.2}", s.mean_tokens_per_iteration);
        println!("mean_imbalance:        {:.4}  (max / mean expert load, mean over iterations and layers)", s.mean_imbalance);
        match s.consecutive_load_corr {
            Some(c) => println!("consecutive_load_corr: {c:.4}  (Pearson, consecutive iterations, mean over layers)"),
            None => println!("consecutive_load_corr: undefined (no pair of iterations with non-constant loads)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn packet_stats(a: &StatsArgs, r: trace::PacketReader) -> CmdResult {
    let header = r.header().clone();
    let (mut n, mut first, mut last, mut size, mut deps) = (0u64, None, 0u64, 0u64, 0u64);
    for rec in r {
        let rec = rec.map_err(err)?;
        n += 1;
        first.get_or_insert(rec.cycle);
        last = rec.cycle;
        size += u64::from(rec.size);
        deps += rec.deps.len() as u64;
    }
    let unit = match header.unit {
        trace::SizeUnit::Flits => "flits",
        trace::SizeUnit::Bytes => "bytes",
    };
    if a.json {
        let j = serde_json::json!({
            "records": n, "nodes": header.nodes, "unit": unit,
            "first_cycle": first, "last_cycle": first.map(|_| last), "total_size": size,
            "dependencies": deps,
        });
        println!("{j:#}");
    } else {
        println!(
            "packet trace {}: {n} records, {} nodes",
            a.trace.display(),
            header.nodes
        );
        match first {
            Some(f) => {
                println!("cycles {f}..={last}, total size {size} {unit}, {deps} dependencies")
            }
            None => println!("no records"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(a: BenchArgs) -> CmdResult {
    let b = trace::bench::bench_decode(a.records).map_err(err)?;
    if a.json {
        let j = serde_json::to_string_pretty(&b).map_err(ctx("cannot encode JSON"))?;
        println!("{j}");
    } else {
        if cfg!(debug_assertions) {
            println!("warning: debug build; decode rates are only meaningful with --release");
        }
        println!(
            "binary: {:>12.0} records/s  ({} records, {} bytes, {:.3} s)",
            b.binary_records_per_sec, b.records, b.binary_bytes, b.binary_secs
        );
        println!(
            "text:   {:>12.0} records/s  ({} records, {} bytes, {:.3} s)",
            b.text_records_per_sec, b.records, b.text_bytes, b.text_secs
        );
    }
    Ok(ExitCode::SUCCESS)
}
