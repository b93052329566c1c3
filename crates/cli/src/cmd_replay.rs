//! `wafernoc replay-packets`: replay a packet trace on a network, open loop
//! (recorded cycles) or closed loop (dependencies), and report per-packet
//! latency statistics.
//!
//! # Timing (exact semantics)
//!
//! Let `S(i) = round(cycle_i × time_scale)` (exactly `cycle_i` when the
//! scale is 1). Every cycle `t` the replay (1) reads the records with
//! `S(i) <= t`, (2) enqueues every released packet with release cycle
//! `<= t` in (release, id) order with `ctime = t`, (3) steps the network
//! one cycle and (4) collects the packets delivered in it. This is the same
//! order as the synthetic driver (`run_measured`), so a captured run
//! replayed open loop enters the network identically.
//!
//! - **open**: packet `i` is released at `S(i)`; dependencies are ignored.
//! - **closed**: a packet without dependencies is released at `S(i)`; a
//!   packet with dependencies is released at
//!   `max over deps d of (A(d) + 1 + S(i) − S(d))`, where `A(d)` is the
//!   cycle in which `d`'s tail flit was ejected in this replay: each
//!   dependency must have been delivered, and then the recorded gap between
//!   the dependency's and the packet's cycles elapses. Since `A(d) >= S(d)`,
//!   no packet is released before its recorded cycle.
//! - **deps**: closed loop without recorded gaps. A packet without
//!   dependencies is released at `S(i)`; a packet with dependencies at
//!   `max over deps d of (A(d) + 1)`, its recorded cycle ignored (it may be
//!   earlier or later than recorded). The whole trace is read at the start
//!   (a released packet must not wait for the reader). This is the
//!   semantics of `wafernoc moe --capture`, whose deps are exactly the
//!   packets whose delivery triggered the send: replayed on the same network
//!   every packet is created in its recorded cycle, while `closed` would add
//!   the dependencies' latency a second time.
//!
//! The run ends when every packet has been delivered; a deadlock ends it
//! with the engine's report (exit status 3).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use hashbrown::HashMap;
use serde::Serialize;
use wafernoc_mesh::stats::{Samples, Summary};
use wafernoc_mesh::{Network, NetworkConfig, NewPacket};
use wafernoc_trace::{PacketReader, PacketRecord, SizeUnit};

use crate::cmd_sim::network_of;
use crate::progress::Progress;
use crate::{CliError, CmdResult};

/// Injection discipline of a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayMode {
    /// Inject every packet at its recorded cycle (× time scale).
    Open,
    /// Inject once every dependency is delivered, plus the recorded gap.
    Closed,
    /// Inject one cycle after the last dependency is delivered (no gap;
    /// the semantics of `moe --capture` traces).
    Deps,
}

/// Arguments of `wafernoc replay-packets`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Packet trace (binary `.wnpt` or JSONL; detected from its content).
    pub trace: PathBuf,
    /// Network from a native TOML configuration (its `network` table).
    #[arg(long, conflicts_with = "booksim")]
    pub config: Option<PathBuf>,
    /// Network from a BookSim2 configuration file.
    #[arg(long, value_name = "CFG")]
    pub booksim: Option<PathBuf>,
    /// Override a configuration key (`a.b=v` for TOML, `key=v` for BookSim).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Open loop (recorded cycles), closed loop (dependencies plus the
    /// recorded gap) or deps (dependencies only, for `moe --capture`).
    #[arg(long, value_enum, default_value = "open")]
    pub mode: ReplayMode,
    /// Multiply every recorded cycle (and gap) by this factor.
    #[arg(
        long = "time-scale",
        value_name = "X",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub time_scale: f64,
    /// Write one CSV row per packet, by id:
    /// `id,src,dst,size,ctime,itime,atime,latency`.
    #[arg(long = "per-packet", value_name = "FILE.csv")]
    pub per_packet: Option<PathBuf>,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Statistics of a replay.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayStats {
    /// Packets replayed (all delivered).
    pub packets: u64,
    /// Flits replayed.
    pub flits: u64,
    /// Packet latency (creation to tail ejection), every packet.
    pub packet_latency: Summary,
    /// Network latency (head leaves the source queue to tail ejection).
    pub network_latency: Summary,
    /// Routers traversed per packet.
    pub hops: Summary,
    /// Accepted flits per node per cycle over the whole replay.
    pub accepted_flits_per_node_cycle: f64,
    /// Cycles simulated until the last delivery.
    pub cycles: u64,
}

/// One delivered packet of the replay.
#[derive(Clone, Copy, Debug, Default)]
struct Row {
    src: u32,
    dst: u32,
    size: u16,
    ctime: u64,
    itime: u64,
    atime: u64,
}

/// The network configuration named by the arguments, or the one in the
/// trace's `meta` (as written by `--capture`) when none is given.
fn network_config(a: &ReplayArgs, meta: &str) -> Result<NetworkConfig, CliError> {
    if let Some(p) = &a.config {
        return network_of(p, false, &a.set, "replay-packets")
            .map_err(|e| crate::cmd_sim::with_ext_hint(e, p, "cfg", "replay-packets --booksim"));
    }
    if let Some(p) = &a.booksim {
        return network_of(p, true, &a.set, "replay-packets");
    }
    if !a.set.is_empty() {
        return Err(CliError::new("--set needs --config or --booksim"));
    }
    let no_net = || {
        CliError::new(format!(
            "{}: the trace's meta holds no network configuration; give --config or --booksim",
            a.trace.display()
        ))
    };
    let v: serde_json::Value = serde_json::from_str(meta).map_err(|e| {
        CliError::new(format!(
            "{}: the trace's meta is not JSON ({e}), so it holds no network configuration; \
             give --config or --booksim",
            a.trace.display()
        ))
    })?;
    let net = v
        .get("network")
        .or_else(|| v.get("resolved").and_then(|r| r.get("network")))
        .ok_or_else(no_net)?;
    serde_json::from_value(net.clone()).map_err(|e| {
        CliError::new(format!(
            "{}: network configuration in meta: {e}",
            a.trace.display()
        ))
    })
}

/// Latest (scaled) record cycle a replay accepts: 2^48, far beyond any
/// simulation's length and far from `u64` overflow of the engine's clock.
const MAX_CYCLE: u64 = 1 << 48;

/// Scaled recorded cycle `S(i)` (a cast that saturates at `u64::MAX`, which
/// [`MAX_CYCLE`] then refuses).
fn scaled(cycle: u64, scale: f64) -> u64 {
    if scale == 1.0 {
        cycle
    } else {
        (cycle as f64 * scale).round() as u64
    }
}

/// A read record waiting for its release.
struct Pending {
    src: u32,
    dst: u32,
    size: u16,
    class: u8,
    s: u64,
    deps: Vec<u64>,
}

/// `wafernoc replay-packets`.
pub fn run(a: ReplayArgs) -> CmdResult {
    if !(a.time_scale.is_finite() && a.time_scale > 0.0) {
        return Err(CliError::new(format!(
            "--time-scale {}: must be a positive finite number",
            a.time_scale
        )));
    }
    let name = a.trace.display().to_string();
    let mut reader = PacketReader::open(&a.trace).map_err(|e| CliError::new(e.to_string()))?;
    let header = reader.header().clone();
    if header.unit != SizeUnit::Flits {
        return Err(CliError::new(format!(
            "{name}: packet sizes are in bytes (\"unit\": \"bytes\"); replay needs sizes in flits"
        )));
    }
    let netcfg = network_config(&a, &header.meta)?;
    let source = match (&a.config, &a.booksim) {
        (Some(p), _) | (None, Some(p)) => p.display().to_string(),
        (None, None) => format!("{name}: the network in its meta"),
    };
    // For the JSON: a result carries its resolved configuration.
    let network_json = if a.json {
        Some(serde_json::to_value(&netcfg).map_err(|e| CliError::new(e.to_string()))?)
    } else {
        None
    };
    let mut net = Network::new(netcfg).map_err(|e| CliError::new(format!("{source}: {e}")))?;
    let nodes = net.topology().nodes();
    if header.nodes as usize != nodes {
        return Err(CliError::new(format!(
            "{name}: the trace has {} nodes but the network has {nodes}",
            header.nodes
        )));
    }
    if let Some(p) = &a.per_packet {
        let inputs: Vec<&std::path::Path> = [
            Some(a.trace.as_path()),
            a.config.as_deref(),
            a.booksim.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        crate::cmd_sim::check_output_file(p, "--per-packet", &inputs)?;
    }
    let closed = a.mode != ReplayMode::Open;
    let gapless = a.mode == ReplayMode::Deps;
    let scale = a.time_scale;

    // Records read and not yet enqueued, by id. Ids are dense, but these
    // maps hold only the window of records read and not yet released (open
    // mode reads as the clock reaches them), so memory follows that window,
    // not the trace's length. Vectors indexed by id were measured: 10%
    // faster on a deps replay of a 25,088-packet all-reduce capture (0.40 s
    // against hashbrown's 0.44 s; std's HashMap 0.55 s; the capture and
    // command in docs/traces.md, "Decode speed"), for about 90 bytes more
    // per packet of the whole trace.
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    // Released packets: (release cycle, id).
    let mut ready: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    // Closed loop: undelivered dependency count of waiting packets, and the
    // waiting packets of each undelivered dependency.
    let mut waiting: HashMap<u64, usize> = HashMap::new();
    let mut dependents: HashMap<u64, Vec<u64>> = HashMap::new();
    // Per id: scaled cycle and delivery (None until delivered).
    let mut s_of: Vec<u64> = Vec::new();
    let mut rows: Vec<Option<Row>> = Vec::new();
    let mut lookahead: Option<PacketRecord> = None;
    let mut exhausted = false;
    let mut delivered_n: u64 = 0;
    let mut flits: u64 = 0;
    let mut accepted: u64 = 0;
    let mut plat = Samples::default();
    let mut nlat = Samples::default();
    let mut hops = Samples::default();
    let mut prog = Progress::new(a.quiet, "replaying");

    // Release cycle of a closed-loop packet whose dependencies are delivered.
    let release_of = |p: &Pending, s_of: &[u64], rows: &[Option<Row>]| -> u64 {
        if gapless && !p.deps.is_empty() {
            return p
                .deps
                .iter()
                .map(|&d| rows[d as usize].map_or(0, |r| r.atime) + 1)
                .max()
                .unwrap_or(p.s);
        }
        p.deps
            .iter()
            .map(|&d| {
                let ad = rows[d as usize].map(|r| r.atime).unwrap_or(0);
                ad + 1 + p.s.saturating_sub(s_of[d as usize])
            })
            .max()
            .unwrap_or(p.s)
            .max(p.s)
    };

    loop {
        let t = net.now();
        // 1. Read the records that may be released by now.
        while !exhausted {
            if lookahead.is_none() {
                match reader.next() {
                    None => {
                        exhausted = true;
                        break;
                    }
                    Some(Err(e)) => return Err(CliError::new(e.to_string())),
                    Some(Ok(r)) => lookahead = Some(r),
                }
            }
            let Some(r) = lookahead.take() else {
                break;
            };
            if !gapless && scaled(r.cycle, scale) > t {
                lookahead = Some(r);
                break;
            }
            let size = u16::try_from(r.size).map_err(|_| {
                CliError::new(format!(
                    "{name}: record {}: size {} flits is more than the engine's {}",
                    r.id,
                    r.size,
                    u16::MAX
                ))
            })?;
            let s = scaled(r.cycle, scale);
            if s > MAX_CYCLE {
                return Err(CliError::new(format!(
                    "{name}: record {}: cycle {} (× time scale {}) is beyond the replay's \
                     limit of {MAX_CYCLE} (2^48) cycles",
                    r.id,
                    r.cycle,
                    wafernoc_traffic::fmt_num(scale)
                )));
            }
            s_of.push(s);
            rows.push(None);
            flits += u64::from(size);
            let p = Pending {
                src: r.src,
                dst: r.dst,
                size,
                class: r.class,
                s,
                deps: if closed { r.deps } else { Vec::new() },
            };
            let missing: Vec<u64> = p
                .deps
                .iter()
                .copied()
                .filter(|&d| rows[d as usize].is_none())
                .collect();
            if missing.is_empty() {
                ready.push(Reverse((release_of(&p, &s_of, &rows), r.id)));
            } else {
                waiting.insert(r.id, missing.len());
                for d in missing {
                    dependents.entry(d).or_default().push(r.id);
                }
            }
            pending.insert(r.id, p);
        }
        if exhausted && pending.is_empty() && net.packets_outstanding() == 0 {
            break;
        }
        // An idle network with nothing due: jump to the next release or
        // record instead of stepping through the gap one cycle at a time
        // (exact: a quiescent network's state does not depend on the cycle).
        if net.packets_outstanding() == 0
            && ready.peek().is_none_or(|&Reverse((rel, _))| rel > t)
            && net.is_quiescent()
        {
            let next_record = lookahead.as_ref().map(|r| scaled(r.cycle, scale));
            let next_release = ready.peek().map(|&Reverse((rel, _))| rel);
            if let Some(next) = next_record.into_iter().chain(next_release).min() {
                if next > t + 1 && net.fast_forward(next) {
                    continue;
                }
            }
        }
        // 2. Enqueue the released packets.
        while let Some(&Reverse((rel, id))) = ready.peek() {
            if rel > t {
                break;
            }
            ready.pop();
            let p = pending.remove(&id).expect("released packets are pending");
            net.enqueue(NewPacket {
                src: p.src,
                dst: p.dst,
                size: p.size,
                class: p.class,
                ctime: t,
                tag: id,
            })
            .map_err(|e| CliError::new(format!("{name}: record {id}: {e}")))?;
        }
        // 3. One cycle.
        net.step()
            .map_err(|d| CliError::with_code(d.to_string(), 3))?;
        // 4. Deliveries.
        let done: Vec<_> = net.drain_delivered().collect();
        for d in done {
            let id = d.tag;
            rows[id as usize] = Some(Row {
                src: d.src,
                dst: d.dst,
                size: d.size,
                ctime: d.ctime,
                itime: d.itime,
                atime: d.atime,
            });
            delivered_n += 1;
            accepted += u64::from(d.size);
            plat.add((d.atime - d.ctime) as f64);
            nlat.add((d.atime - d.itime) as f64);
            hops.add(f64::from(d.hops));
            if let Some(ws) = dependents.remove(&id) {
                for w in ws {
                    let left = waiting.get_mut(&w).expect("waiting packet");
                    *left -= 1;
                    if *left == 0 {
                        waiting.remove(&w);
                        let p = &pending[&w];
                        ready.push(Reverse((release_of(p, &s_of, &rows), w)));
                    }
                }
            }
        }
        if net.now() % 1000 == 0 {
            prog.tick(net.now(), "replay");
        }
    }
    prog.finish();

    let cycles = net.now();
    let stats = ReplayStats {
        packets: delivered_n,
        flits,
        packet_latency: plat.summary(),
        network_latency: nlat.summary(),
        hops: hops.summary(),
        accepted_flits_per_node_cycle: accepted as f64 / nodes as f64 / cycles.max(1) as f64,
        cycles,
    };
    if let Some(p) = &a.per_packet {
        let mut s = String::from("id,src,dst,size,ctime,itime,atime,latency\n");
        for (id, r) in rows.iter().enumerate() {
            let r = r.unwrap_or_default();
            let _ = writeln!(
                s,
                "{id},{},{},{},{},{},{},{}",
                r.src,
                r.dst,
                r.size,
                r.ctime,
                r.itime,
                r.atime,
                r.atime - r.ctime
            );
        }
        std::fs::write(p, s).map_err(|e| CliError::new(format!("{}: {e}", p.display())))?;
    }
    if a.json {
        let v = serde_json::json!({
            "wafernoc_version": env!("CARGO_PKG_VERSION"),
            "command": "replay-packets",
            "trace": name,
            "network_from": source,
            "network": network_json,
            "mode": a.mode,
            "time_scale": a.time_scale,
            "stats": stats,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
    } else {
        print_summary(&stats);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &ReplayStats) {
    use crate::cmd_sim::g;
    let p = &s.packet_latency;
    if s.packets == 0 {
        // A header-only trace: zeros would read as measured figures (the
        // JSON has null for them).
        println!("Packets replayed = 0 (0 flits): no latency, hops or accepted rate to report");
        println!("Time taken is {} cycles", s.cycles);
        return;
    }
    println!("Packets replayed = {} ({} flits)", s.packets, s.flits);
    println!("Packet latency average = {}", g(p.mean));
    println!("\tminimum = {}", g(p.min));
    println!("\tmaximum = {}", g(p.max));
    println!(
        "Packet latency percentiles: p50 = {} p95 = {} p99 = {}",
        g(p.p50),
        g(p.p95),
        g(p.p99)
    );
    println!("Network latency average = {}", g(s.network_latency.mean));
    println!("Hops average = {}", g(s.hops.mean));
    println!(
        "Accepted flit rate average = {}",
        g(s.accepted_flits_per_node_cycle)
    );
    println!("Time taken is {} cycles", s.cycles);
}

#[cfg(test)]
mod tests {
    use super::scaled;

    #[test]
    fn scale_one_is_exact_and_others_round() {
        assert_eq!(scaled(u64::MAX, 1.0), u64::MAX);
        assert_eq!(scaled(3, 0.5), 2);
        assert_eq!(scaled(10, 2.0), 20);
    }
}
