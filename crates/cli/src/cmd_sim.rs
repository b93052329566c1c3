//! `wafernoc run` (native TOML) and `wafernoc booksim` (BookSim2 .cfg):
//! one synthetic-traffic measurement, printed as BookSim's summary or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};
use wafernoc_mesh::sim::{run_measured_observed, SimControl, SimResult, Status, TrafficSource};
use wafernoc_mesh::{DeadlockReport, Delivered, Network, NetworkConfig, NewPacket};
use wafernoc_trace::{PacketRecord, PacketTraceHeader, PacketTraceWriter, SizeUnit, TraceError};
use wafernoc_traffic::{Synthetic, SyntheticSpec};

use crate::booksim::BooksimCfg;
use crate::progress::Progress;
use crate::{CliError, CmdResult};

/// The native configuration of a synthetic run (`wafernoc run`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Network: mesh, router, routing, classes.
    pub network: NetworkConfig,
    /// Synthetic traffic.
    pub traffic: SyntheticSpec,
    /// Measurement control.
    pub sim: SimControl,
}

/// Arguments of `wafernoc run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// TOML configuration (every key documented in docs/configuration.md).
    pub config: PathBuf,
    /// Override a key, dotted path into the TOML (e.g. `traffic.rate=0.2`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Write every packet the run injects to this packet trace (`.wnpt`
    /// binary, `.jsonl` text).
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,
    /// Write one CSV row per delivered packet (delivery order):
    /// `src,dst,size,ctime,itime,atime,latency`.
    #[arg(long = "per-packet", value_name = "FILE.csv")]
    pub per_packet: Option<PathBuf>,
}

/// Arguments of `wafernoc booksim`.
#[derive(Args, Debug)]
pub struct BooksimArgs {
    /// BookSim2 configuration file.
    pub config: PathBuf,
    /// Overrides in BookSim's form `key=value`.
    #[arg(value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print one JSON object instead of BookSim's summary lines.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Write every packet the run injects to this packet trace (`.wnpt`
    /// binary, `.jsonl` text).
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,
    /// Write one CSV row per delivered packet (delivery order):
    /// `src,dst,size,ctime,itime,atime,latency`.
    #[arg(long = "per-packet", value_name = "FILE.csv")]
    pub per_packet: Option<PathBuf>,
}

/// Read a file with an error naming it.
pub fn read_text(p: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(p).map_err(|e| CliError::new(format!("{}: {e}", p.display())))
}

/// Apply `a.b.c=value` to a TOML tree; the value is parsed as TOML, or
/// taken as a string if it is a bare word (`uniform`, `xy`). Anything else
/// that does not parse is an error (was: `99999999999999999999`, an
/// integer out of range, silently became a string).
pub fn apply_set(root: &mut toml::Value, kv: &str) -> Result<(), CliError> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| CliError::new(format!("override `{kv}` is not KEY=VALUE")))?;
    let val: toml::Value = match toml::from_str::<toml::Table>(&format!("x = {v}")) {
        Ok(mut t) => t.remove("x").expect("parsed key"),
        Err(_) if is_bare_word(v) => toml::Value::String(v.to_string()),
        Err(e) => {
            let why = e.message().trim().replace('\n', "; ");
            let numeric = v
                .trim()
                .starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c));
            return Err(CliError::new(format!(
                "--set {kv}: `{v}` is not a TOML value ({why}){}",
                if numeric {
                    String::new()
                } else {
                    format!(
                        "; a string with other than letters, digits and `_-.:/` needs quotes: \
                         {}='\"...\"'",
                        k.trim()
                    )
                }
            )));
        }
    };
    if k.trim().split('.').any(str::is_empty) {
        return Err(CliError::new(format!(
            "--set {kv}: `{}` is not a dotted key path (e.g. traffic.rate)",
            k.trim()
        )));
    }
    let parts: Vec<&str> = k.trim().split('.').collect();
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let tbl = cur.as_table_mut().ok_or_else(|| {
            CliError::new(format!(
                "--set {k}: `{}` is not a table",
                parts[..i].join(".")
            ))
        })?;
        if i + 1 == parts.len() {
            tbl.insert(part.to_string(), val);
            return Ok(());
        }
        cur = tbl
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    Ok(())
}

/// A word `--set` takes as a string without quotes: a letter or `/`
/// first, then letters, digits and `_-.:/` (`uniform`, `adaptive_escape`,
/// `a/b.csv`, `/tmp/x.wnpt`).
fn is_bare_word(v: &str) -> bool {
    let mut c = v.trim().chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '/')
        && c.all(|x| x.is_ascii_alphanumeric() || "_-.:/".contains(x))
}

/// Parse a TOML file with overrides into `T`, naming unknown keys.
pub fn load_toml<T: for<'de> Deserialize<'de>>(
    path: &Path,
    sets: &[String],
) -> Result<T, CliError> {
    parse_toml(&read_text(path)?, &path.display().to_string(), sets)
}

/// [`load_toml`] on the text of a file named `origin` (in messages).
fn parse_toml<T: for<'de> Deserialize<'de>>(
    text: &str,
    origin: &str,
    sets: &[String],
) -> Result<T, CliError> {
    let mut v: toml::Value = toml::from_str::<toml::Table>(text)
        .map(toml::Value::Table)
        .map_err(|e| CliError::new(format!("{origin}: {e}")))?;
    let file = v.clone();
    for s in sets {
        apply_set(&mut v, s)?;
    }
    T::deserialize(v).map_err(|e| {
        let e = with_kind_hint(e.to_string());
        // Name what is at fault: the file, or an override (was: always
        // the file, for `--set bogus.key=3`).
        if T::deserialize(file.clone()).is_err() {
            return CliError::new(format!("{origin}: {e}"));
        }
        // Blame the override with which the final error first appears and
        // then stays: applying them one by one, an earlier override may
        // fail for a reason a later one fixes (`pattern.kind=hotspot`
        // before `pattern.nodes=[0]`), so the first failing one is not it.
        let last = e.clone();
        let mut v = file;
        let mut blamed = None;
        for s in sets {
            if apply_set(&mut v, s).is_err() {
                blamed = None;
                continue;
            }
            match T::deserialize(v.clone()) {
                Err(e) if with_kind_hint(e.to_string()) == last => blamed = blamed.or(Some(s)),
                _ => blamed = None,
            }
        }
        if let Some(s) = blamed {
            return CliError::new(format!("--set {s}: {}", last.trim().replace('\n', " ")));
        }
        CliError::new(format!(
            "{origin} with the --set overrides: {}",
            e.trim().replace('\n', " ")
        ))
    })
}

/// serde's message for a string where a `kind`-tagged table is expected
/// (`pattern = "uniform"`) names only the Rust type; say what to write.
fn with_kind_hint(msg: String) -> String {
    const TAGGED: &str = "expected internally tagged enum";
    let Some(at) = msg.find(TAGGED) else {
        return msg;
    };
    // The string given, when it was one and can be quoted as it is: it is
    // the kind the user meant, so the example shows it as a table.
    let example = msg
        .strip_prefix("invalid type: string \"")
        .and_then(|r| r.split_once("\", expected"))
        .map(|(given, _)| given)
        .filter(|g| !g.is_empty() && !g.contains(['"', '\\']))
        .map(|g| format!(", e.g. `{{ kind = \"{g}\" }}` and that kind's other keys, if any"))
        .unwrap_or_default();
    let (head, tail) = msg.split_at(at);
    let rest = tail[TAGGED.len()..].trim_start();
    let (ty, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    format!(
        "{head}expected a table with a `kind` key ({ty}){example} \
         (docs/configuration.md){}{after}",
        if after.is_empty() { "" } else { " " }
    )
}

/// Outcome of one synthetic run.
pub enum RunOutcome {
    /// Measured.
    Done(Box<SimResult>),
    /// The network stopped.
    Deadlock(Box<DeadlockReport>),
}

/// Build the network and traffic and measure.
pub fn simulate(
    network: &NetworkConfig,
    traffic: &SyntheticSpec,
    sim: &SimControl,
    quiet: bool,
) -> Result<RunOutcome, CliError> {
    simulate_with(network, traffic, sim, quiet, &RunOutputs::default())
}

/// Optional per-packet outputs of a synthetic run.
#[derive(Debug, Default)]
pub struct RunOutputs<'a> {
    /// Packet capture: the trace file and the header's `meta` (the resolved
    /// configuration as JSON).
    pub capture: Option<(&'a Path, String)>,
    /// Per-packet CSV of delivered packets.
    pub per_packet: Option<&'a Path>,
    /// The configuration file the run was read from: no output may be it.
    pub input: Option<&'a Path>,
}

/// A packet trace being written, text or binary by the file name.
pub(crate) enum CaptureWriter {
    Binary(PacketTraceWriter<std::io::BufWriter<std::fs::File>>),
    Text(wafernoc_trace::PacketTextWriter<std::io::BufWriter<std::fs::File>>),
}

impl CaptureWriter {
    pub(crate) fn create(path: &Path, header: &PacketTraceHeader) -> Result<Self, TraceError> {
        Ok(
            match wafernoc_trace::encoding_for_path(path, wafernoc_trace::TraceKind::Packet)? {
                wafernoc_trace::Encoding::Text => {
                    CaptureWriter::Text(wafernoc_trace::PacketTextWriter::create(path, header)?)
                }
                wafernoc_trace::Encoding::Binary => {
                    CaptureWriter::Binary(PacketTraceWriter::create(path, header)?)
                }
            },
        )
    }
    pub(crate) fn write(&mut self, rec: &PacketRecord) -> Result<(), TraceError> {
        match self {
            CaptureWriter::Binary(w) => w.write(rec),
            CaptureWriter::Text(w) => w.write(rec),
        }
    }
    pub(crate) fn finish(self) -> Result<(), TraceError> {
        match self {
            CaptureWriter::Binary(w) => w.finish().map(|_| ()),
            CaptureWriter::Text(w) => w.finish().map(|_| ()),
        }
    }
}

/// A [`TrafficSource`] adapter that records every packet the inner source
/// generates (the driver enqueues all of them, in generation order) as a
/// [`PacketRecord`] with a dense id in that order. The first write error is
/// kept and reported by [`Capture::finish`]; later packets are not written.
pub struct Capture<'a> {
    inner: &'a mut dyn TrafficSource,
    writer: Option<CaptureWriter>,
    next_id: u64,
    error: Option<TraceError>,
}

impl<'a> Capture<'a> {
    /// Wrap `inner`, writing to a new trace at `path`.
    pub fn new(
        inner: &'a mut dyn TrafficSource,
        path: &Path,
        header: &PacketTraceHeader,
    ) -> Result<Self, CliError> {
        let writer =
            CaptureWriter::create(path, header).map_err(|e| CliError::new(e.to_string()))?;
        Ok(Capture {
            inner,
            writer: Some(writer),
            next_id: 0,
            error: None,
        })
    }
    /// Close the trace (end marker, flush), or report the first error.
    pub fn finish(mut self) -> Result<u64, CliError> {
        let w = self.writer.take();
        if let Some(e) = self.error.take() {
            return Err(CliError::new(format!("capture: {e}")));
        }
        if let Some(w) = w {
            w.finish()
                .map_err(|e| CliError::new(format!("capture: {e}")))?;
        }
        Ok(self.next_id)
    }
}

impl TrafficSource for Capture<'_> {
    fn generate(&mut self, t: u64, out: &mut Vec<NewPacket>) {
        let start = out.len();
        self.inner.generate(t, out);
        for p in &out[start..] {
            let rec = PacketRecord {
                id: self.next_id,
                cycle: p.ctime,
                src: p.src,
                dst: p.dst,
                size: u32::from(p.size),
                class: p.class,
                deps: Vec::new(),
            };
            self.next_id += 1;
            if self.error.is_none() {
                if let Some(w) = self.writer.as_mut() {
                    if let Err(e) = w.write(&rec) {
                        self.error = Some(e);
                    }
                }
            }
        }
    }
}

/// Fail now, not after a long simulation, if an output file cannot be
/// written, or is one of `inputs` (the files the run reads, and outputs
/// already claimed). Nothing is truncated: the caller writes the file at
/// the end.
pub fn check_output_file(p: &Path, flag: &str, inputs: &[&Path]) -> Result<(), CliError> {
    // One file, or (for an output not written yet) one path once its
    // directory is resolved.
    let resolved = |q: &Path| {
        let dir = match q.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::canonicalize(dir)
            .ok()
            .zip(q.file_name())
            .map(|(d, f)| d.join(f))
    };
    let same = |i: &Path| {
        wafernoc_trace::same_file(p, i)
            || p == i
            || matches!((resolved(p), resolved(i)), (Some(x), Some(y)) if x == y)
    };
    if let Some(i) = inputs.iter().find(|i| same(i)) {
        return Err(CliError::new(format!(
            "{flag} {}: is also {}; writing it would destroy that",
            p.display(),
            i.display()
        )));
    }
    let cannot = |e| CliError::new(format!("{flag} {}: cannot write: {e}", p.display()));
    // Opened without truncating, and a file this check creates is removed
    // again, so a run that fails later leaves what was there. A symbolic
    // link (dangling or not) is opened through, never removed.
    match std::fs::symlink_metadata(p) {
        Ok(m) => std::fs::OpenOptions::new()
            .write(true)
            .create(m.file_type().is_symlink())
            .truncate(false)
            .open(p)
            .map(drop)
            .map_err(cannot),
        Err(_) => {
            std::fs::File::create_new(p).map_err(cannot)?;
            let _ = std::fs::remove_file(p);
            Ok(())
        }
    }
}

/// Write delivered packets as CSV (`src,dst,size,ctime,itime,atime,latency`).
fn write_delivered_csv(path: &Path, rows: &[Delivered]) -> Result<(), CliError> {
    use std::fmt::Write as _;
    let mut s = String::from("src,dst,size,ctime,itime,atime,latency\n");
    for d in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}",
            d.src,
            d.dst,
            d.size,
            d.ctime,
            d.itime,
            d.atime,
            d.atime - d.ctime
        );
    }
    std::fs::write(path, s).map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

/// [`simulate`] with a packet capture and/or a per-packet CSV.
pub fn simulate_with(
    network: &NetworkConfig,
    traffic: &SyntheticSpec,
    sim: &SimControl,
    quiet: bool,
    outputs: &RunOutputs<'_>,
) -> Result<RunOutcome, CliError> {
    check_resolved(network, traffic, sim)?;
    let mut net = Network::new(network.clone()).map_err(|e| CliError::new(e.to_string()))?;
    let mut src = Synthetic::new(traffic.clone(), net.topology())
        .map_err(|e| CliError::new(e.to_string()))?;
    let nodes = net.topology().nodes() as u32;
    let mut delivered: Vec<Delivered> = Vec::new();
    let mut inputs: Vec<&Path> = outputs.input.into_iter().collect();
    if let Some((p, _)) = &outputs.capture {
        check_output_file(p, "--capture", &inputs)?;
        inputs.push(p);
    }
    if let Some(p) = outputs.per_packet {
        check_output_file(p, "--per-packet", &inputs)?;
    }
    let keep = outputs.per_packet.is_some();
    let mut prog = Progress::new(quiet, "simulating");
    let mut go = |source: &mut dyn TrafficSource| {
        run_measured_observed(
            &mut net,
            source,
            sim,
            &mut |c, phase| prog.tick(c, phase),
            &mut |d| {
                if keep {
                    delivered.push(*d);
                }
            },
        )
    };
    let r = match &outputs.capture {
        Some((path, meta)) => {
            let header = PacketTraceHeader {
                nodes,
                unit: SizeUnit::Flits,
                meta: meta.clone(),
            };
            let mut capture = Capture::new(&mut src, path, &header)?;
            let r = go(&mut capture);
            capture.finish()?;
            r
        }
        None => go(&mut src),
    };
    prog.finish();
    if let Some(p) = outputs.per_packet {
        if r.is_ok() {
            write_delivered_csv(p, &delivered)?;
        }
    }
    Ok(match r {
        Ok(r) => RunOutcome::Done(Box::new(r)),
        Err(d) => RunOutcome::Deadlock(d),
    })
}

/// The JSON object of a synthetic run: headline figures, full statistics,
/// the resolved configuration and the version. An unstable run has
/// `unstable` (why, [`wafernoc_mesh::sim::Unstable`]; absent otherwise) and
/// `null` for every latency and rate figure (objects keep their keys) (BookSim2 reports none; they would be partial,
/// the rates 0 when the run stopped before its measurement window closed:
/// a saturated network's throughput is `sim_type = throughput`'s).
pub fn result_json(r: &SimResult, config: serde_json::Value, command: &str) -> serde_json::Value {
    let mut v = serde_json::json!({
        "wafernoc_version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "status": match r.status { Status::Ok => "ok", Status::Unstable => "unstable" },
        // No packet measured (rate 0): no mean, as BookSim2's "nan".
        "avg_packet_latency": mean_of(r.packet_latency.count, r.packet_latency.mean),
        "avg_network_latency": mean_of(r.network_latency.count, r.network_latency.mean),
        "avg_flit_latency": mean_of(r.flit_latency.count, r.flit_latency.mean),
        "avg_hops": mean_of(r.hops.count, r.hops.mean),
        "accepted_flits_per_node_cycle": r.accepted.avg,
        "injected_flits_per_node_cycle": r.injected.avg,
        "offered_flits_per_node_cycle": r.offered.avg,
        "accepted_packets_per_node_cycle": r.accepted_packets.avg,
        "injected_packets_per_node_cycle": r.injected_packets.avg,
        "simulated_cycles": r.simulated_cycles,
        "measured_cycles": r.measured_cycles,
        "flit_hops": r.flit_hops,
        "packet_latency": r.packet_latency,
        "network_latency": r.network_latency,
        "flit_latency": r.flit_latency,
        "hops": r.hops,
        "accepted": r.accepted,
        "injected": r.injected,
        "offered": r.offered,
        "accepted_packets": r.accepted_packets,
        "injected_packets": r.injected_packets,
        "max_link_utilization": r.link_utilization.iter().cloned().fold(0.0, f64::max),
        "config": config,
    });
    if let Some(why) = &r.unstable {
        // Every figure but the run's identity and size: objects keep their
        // keys with null leaves, so that results of stable and unstable
        // runs have one shape (`sweep merge` flattens them into the same
        // columns).
        const KEPT: [&str; 7] = [
            "wafernoc_version",
            "command",
            "status",
            "simulated_cycles",
            "measured_cycles",
            "flit_hops",
            "config",
        ];
        if let Some(m) = v.as_object_mut() {
            for (_, x) in m.iter_mut().filter(|(k, _)| !KEPT.contains(&k.as_str())) {
                match x {
                    serde_json::Value::Object(o) => {
                        o.values_mut().for_each(|y| *y = serde_json::Value::Null)
                    }
                    y => *y = serde_json::Value::Null,
                }
            }
        }
        v["unstable"] = serde_json::to_value(why).expect("serialisable");
    }
    v
}

/// A mean of `count` samples, `None` (JSON `null`) for none.
fn mean_of(count: u64, mean: f64) -> Option<f64> {
    (count > 0).then_some(mean)
}

/// BookSim2's closing summary lines (`DisplayOverallStats`, as BookSim2
/// prints them after its run: "average = ", with a space, unlike its
/// per-sample "Accepted flit rate average= " lines), in its order. Of its
/// lines, those wafernoc measures; not printed: fragmentation and the flit
/// latency's minimum and maximum.
pub fn print_booksim_summary(r: &SimResult, wall_s: f64) {
    if r.status == Status::Unstable {
        println!("Simulation unstable, ending ...");
        if let Some(why) = &r.unstable {
            println!("(wafernoc: {why})");
        }
        return;
    }
    // Of no samples BookSim2 prints glibc's NaNs: "-nan" for its average
    // (0/0) and maximum, "nan" for its minimum.
    let empty = |s: &wafernoc_mesh::stats::Summary| {
        if s.count > 0 {
            *s
        } else {
            let nan = f64::NAN;
            wafernoc_mesh::stats::Summary {
                count: 0,
                mean: -nan,
                min: nan,
                max: -nan,
                p50: nan,
                p95: nan,
                p99: nan,
            }
        }
    };
    let p = &empty(&r.packet_latency);
    let nl = &empty(&r.network_latency);
    let hops = empty(&r.hops).mean;
    let flit = if r.flit_latency.count > 0 {
        r.flit_latency.mean
    } else {
        -f64::NAN
    };
    println!("====== Overall Traffic Statistics ======");
    println!("====== Traffic class 0 ======");
    println!("Packet latency average = {} (1 samples)", g(p.mean));
    println!("\tminimum = {} (1 samples)", g(p.min));
    println!("\tmaximum = {} (1 samples)", g(p.max));
    println!("Network latency average = {} (1 samples)", g(nl.mean));
    println!("\tminimum = {} (1 samples)", g(nl.min));
    println!("\tmaximum = {} (1 samples)", g(nl.max));
    println!("Flit latency average = {} (1 samples)", g(flit));
    let rate = |name: &str, x: &wafernoc_mesh::sim::RateSummary| {
        println!("{name} rate average = {} (1 samples)", g(x.avg));
        println!("\tminimum = {} (1 samples)", g(x.min));
        println!("\tmaximum = {} (1 samples)", g(x.max));
    };
    rate("Injected packet", &r.injected_packets);
    rate("Accepted packet", &r.accepted_packets);
    rate("Injected flit", &r.injected);
    rate("Accepted flit", &r.accepted);
    // BookSim2 divides the flit rate by the packet rate (0/0: "-nan").
    let size = |flits: f64, packets: f64| {
        if packets == 0.0 {
            -f64::NAN
        } else {
            flits / packets
        }
    };
    println!(
        "Injected packet size average = {} (1 samples)",
        g(size(r.injected.avg, r.injected_packets.avg))
    );
    println!(
        "Accepted packet size average = {} (1 samples)",
        g(size(r.accepted.avg, r.accepted_packets.avg))
    );
    println!("Hops average = {} (1 samples)", g(hops));
    println!(
        "Packet latency percentiles: p50 = {} p95 = {} p99 = {}",
        g(p.p50),
        g(p.p95),
        g(p.p99)
    );
    println!("Time taken is {} cycles", r.simulated_cycles);
    println!("Total run time {wall_s:.3} s");
}

/// Six significant digits, as C++ iostreams print (NaN as glibc:
/// `nan`, or `-nan` with the sign bit set).
pub fn g(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = 6 - 1 - x.abs().log10().floor() as i32;
    let s = format!("{:.*}", digits.max(0) as usize, x);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn finish(
    outcome: RunOutcome,
    json: bool,
    config: serde_json::Value,
    command: &str,
    wall: Instant,
) -> CmdResult {
    match outcome {
        RunOutcome::Deadlock(d) => Err(CliError::with_code(d.to_string(), 3)),
        RunOutcome::Done(r) => {
            if json {
                let v = result_json(&r, config, command);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("serialisable")
                );
            } else {
                print_booksim_summary(&r, wall.elapsed().as_secs_f64());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `e` with a hint to `other` when `path` has the other format's
/// extension `ext` (any case): a BookSim2 file given to `run`, a TOML
/// file to `booksim`.
pub(crate) fn with_ext_hint(e: CliError, path: &Path, ext: &str, other: &str) -> CliError {
    if path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case(ext))
    {
        let what = if ext == "cfg" {
            "a BookSim2 configuration"
        } else {
            "a native TOML configuration"
        };
        CliError::new(format!(
            "{e}\n({what}? give it to `{other} {}`)",
            path.display()
        ))
    } else {
        e
    }
}

/// `wafernoc run`.
pub fn run(a: RunArgs) -> CmdResult {
    let wall = Instant::now();
    let cfg: RunConfig = load_toml(&a.config, &a.set)
        .map_err(|e| with_ext_hint(e, &a.config, "cfg", "wafernoc booksim"))?;
    let config = serde_json::to_value(&cfg).expect("serialisable");
    let outputs = RunOutputs {
        capture: a.capture.as_deref().map(|p| (p, config.to_string())),
        per_packet: a.per_packet.as_deref(),
        input: Some(&a.config),
    };
    let outcome = simulate_with(&cfg.network, &cfg.traffic, &cfg.sim, a.quiet, &outputs)?;
    finish(outcome, a.json, config, "run", wall)
}

/// The configuration checks of `run` without simulating (`sweep
/// --dry-run`): the file with its `--set`s parses into a [`RunConfig`]
/// (unknown keys and wrong types are named), and the network, traffic and
/// measurement keys validate.
pub fn check_run(a: &RunArgs) -> Result<(), CliError> {
    let cfg: RunConfig = load_toml(&a.config, &a.set)?;
    check_resolved(&cfg.network, &cfg.traffic, &cfg.sim)
}

/// The configuration checks of `booksim` without simulating.
pub fn check_booksim(a: &BooksimArgs) -> Result<(), CliError> {
    let (_, res) = load_booksim(a)?;
    check_resolved(&res.network, &res.traffic, &res.sim)
}

/// A BookSim2 file with its command-line overrides, and what it resolves to.
fn load_booksim(a: &BooksimArgs) -> Result<(BooksimCfg, crate::booksim::Resolved), CliError> {
    let text = read_text(&a.config)?;
    let mut cfg = BooksimCfg::parse(&text, &a.config.display().to_string())
        .map_err(|e| with_ext_hint(e, &a.config, "toml", "wafernoc run"))?;
    for o in &a.overrides {
        cfg.set(o)?;
    }
    let res = cfg.resolve()?;
    cfg.check_traffic(&res)?;
    Ok((cfg, res))
}

/// The network of a configuration file, BookSim2 (`booksim`) or native
/// TOML, with `overrides`, for a command that uses the network alone
/// (`cmd`: `check-deadlock`, `replay-packets`). An override that would be
/// ignored is refused: in a TOML file a key outside `network.`; in a
/// BookSim2 file one that changes the traffic or the measurement and not
/// the network (`injection_rate=7` was accepted and had no effect).
pub(crate) fn network_of(
    path: &Path,
    booksim: bool,
    overrides: &[String],
    cmd: &str,
) -> Result<NetworkConfig, CliError> {
    let ignored = |o: &str| {
        CliError::new(format!(
            "override `{o}`: {cmd} takes only the network from the configuration, so it \
             would have no effect"
        ))
    };
    if booksim {
        let file = BooksimCfg::parse(&read_text(path)?, &path.display().to_string())?;
        // The file with the overrides but `skip`, resolved (order-free: an
        // override is judged against all the others, never against a
        // half-applied state that may not resolve).
        let with = |skip: Option<usize>| -> Result<_, CliError> {
            let mut cfg = file.clone();
            for (j, o) in overrides.iter().enumerate() {
                if Some(j) != skip {
                    cfg.set(o)?;
                }
            }
            cfg.resolve()
        };
        let all = with(None)?;
        for (i, o) in overrides.iter().enumerate() {
            if let Ok(w) = with(Some(i)) {
                if w.network == all.network && (w.traffic != all.traffic || w.sim != all.sim) {
                    return Err(ignored(o));
                }
            }
        }
        Ok(all.network)
    } else {
        if let Some(o) = overrides
            .iter()
            .find(|o| !o.trim_start().starts_with("network."))
        {
            return Err(ignored(o));
        }
        let cfg: RunConfig = load_toml(path, overrides)?;
        Ok(cfg.network)
    }
}

/// Everything a synthetic run checks before it simulates
/// ([`simulate_with`] starts with it): the network, the traffic against
/// the network's topology and classes, the measurement control.
fn check_resolved(
    network: &NetworkConfig,
    traffic: &SyntheticSpec,
    sim: &SimControl,
) -> Result<(), CliError> {
    let e = |e: &dyn std::fmt::Display| CliError::new(e.to_string());
    sim.validate().map_err(|x| e(&x))?;
    let topo = Network::check_config(network).map_err(|x| e(&x))?;
    Synthetic::new(traffic.clone(), &topo).map_err(|x| e(&x))?;
    let classes = network.effective_classes().len();
    if usize::from(traffic.class) >= classes {
        return Err(CliError::new(format!(
            "invalid parameter `traffic.class`: {} but the network has {classes} class(es) (0..{classes})",
            traffic.class
        )));
    }
    Ok(())
}

/// `wafernoc booksim`.
pub fn booksim(a: BooksimArgs) -> CmdResult {
    let wall = Instant::now();
    let (cfg, res) = load_booksim(&a)?;
    let config = serde_json::json!({ "booksim": cfg.echo(), "resolved": res });
    let outputs = RunOutputs {
        capture: a.capture.as_deref().map(|p| (p, config.to_string())),
        per_packet: a.per_packet.as_deref(),
        input: Some(&a.config),
    };
    let outcome = simulate_with(&res.network, &res.traffic, &res.sim, a.quiet, &outputs)?;
    finish(outcome, a.json, config, "booksim", wall)
}

#[cfg(test)]
mod tests {
    //! Corrupted configurations: every check `run` and `booksim` make
    //! before simulating returns an error or accepts the file; none panics
    //! ("bad input gets a clear error, never a panic"). The seeds are the
    //! configurations the repository ships.

    use super::*;
    use crate::mutation::{edits, mutate, shipped};
    use proptest::prelude::*;

    /// Everything `booksim` checks before it simulates.
    fn check_booksim_text(text: &str) -> Result<(), CliError> {
        let res = BooksimCfg::parse(text, "m.cfg")?.resolve()?;
        check_resolved(&res.network, &res.traffic, &res.sim)
    }

    /// Everything `run` checks before it simulates.
    fn check_run_text(text: &str) -> Result<(), CliError> {
        let cfg: RunConfig = parse_toml(text, "m.toml", &[])?;
        check_resolved(&cfg.network, &cfg.traffic, &cfg.sim)
    }

    #[test]
    fn shipped_configurations_pass_the_checks() {
        // The seeds are valid, so the mutations start from files that
        // reach every check (a seed refused at its first line would test
        // only the parser).
        let cfgs = shipped("tests/data", "cfg");
        assert!(cfgs.len() > 100, "{} BookSim2 files", cfgs.len());
        for t in &cfgs {
            check_booksim_text(t).unwrap();
        }
        let tomls = shipped("tests/data", "toml");
        assert!(!tomls.is_empty());
        for t in &tomls {
            check_run_text(t).unwrap();
        }
        // And a mutation is refused with a message naming the line, the
        // key and the valid range.
        let bad = cfgs[0].replacen("\nk = ", "\nk = -1", 1);
        let e = check_booksim_text(&bad).unwrap_err().to_string();
        assert!(
            e.contains("`k = -1") && e.contains("must be in 1..=4096"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn mutated_booksim_configurations_never_panic(
            pick in any::<u16>(),
            edits in edits(),
        ) {
            thread_local!(static CFGS: Vec<String> = shipped("tests/data", "cfg"));
            let text = CFGS.with(|c| mutate(&c[pick as usize % c.len()], &edits));
            let _ = check_booksim_text(&text);
        }

        #[test]
        fn mutated_toml_configurations_never_panic(
            pick in any::<u16>(),
            edits in edits(),
        ) {
            thread_local!(static TOMLS: Vec<String> = shipped("tests/data", "toml"));
            let text = TOMLS.with(|c| mutate(&c[pick as usize % c.len()], &edits));
            let _ = check_run_text(&text);
        }
    }
}
