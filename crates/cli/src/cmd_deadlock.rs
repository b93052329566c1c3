//! `wafernoc check-deadlock CONFIG [KEY=VALUE]... [--set KEY=VALUE]...`:
//! static deadlock verdict
//! from the channel dependency graph (see `wafernoc_mesh::cdg` and
//! docs/deadlock.md).
//!
//! CONFIG is a BookSim2 `.cfg` file (overrides in BookSim's form, e.g.
//! `routing_function=adaptive_unsafe num_vcs=1`) or a native TOML run
//! configuration (overrides as dotted paths, e.g.
//! `network.routing=adaptive_unsafe`). Exit status 0: deadlock-free;
//! 3: a cycle (printed as a list of router, output port and VC) or no proof;
//! 2: a bad configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use wafernoc_mesh::cdg::{self, Analysis, Channel, Verdict};
use wafernoc_mesh::NetworkConfig;

use crate::cmd_sim::network_of;
use crate::{CliError, CmdResult};

/// Arguments of `wafernoc check-deadlock`.
#[derive(Args, Debug)]
pub struct CheckDeadlockArgs {
    /// Configuration: a BookSim2 `.cfg` file, or a native TOML run
    /// configuration (any other extension).
    pub config: PathBuf,
    /// Overrides: BookSim form `key=value` for a .cfg, dotted TOML paths
    /// (`network.routing=yx`) for a TOML file.
    #[arg(value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// An override given as `run` and `replay-packets` take them (the
    /// same as a positional one, applied after them).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Read the network configuration of either form.
fn load_network(a: &CheckDeadlockArgs) -> Result<NetworkConfig, CliError> {
    let is_cfg = a
        .config
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("cfg"));
    let all: Vec<String> = a.overrides.iter().chain(&a.set).cloned().collect();
    network_of(&a.config, is_cfg, &all, "check-deadlock")
}

fn describe(net: &NetworkConfig) -> String {
    let m = &net.mesh;
    let classes = net.effective_classes();
    format!(
        "routing {}, {}×{} mesh, {} VC(s), {} class(es)",
        net.routing.name(),
        m.rows * m.wafers_y,
        m.cols * m.wafers_x,
        net.router.num_vcs,
        classes.len()
    )
}

fn channel_json(c: &Channel) -> serde_json::Value {
    serde_json::json!({
        "router": c.router,
        "x": c.x,
        "y": c.y,
        "port": c.port,
        "port_name": wafernoc_mesh::Topology::port_name(c.port),
        "vc": c.vc,
    })
}

fn print_cycle(cycle: &[Channel]) {
    for c in cycle {
        println!("  {c}");
    }
    if let Some(f) = cycle.first() {
        println!("  -> back to {f}");
    }
}

fn print_text(net: &NetworkConfig, a: &Analysis) {
    let what = describe(net);
    match &a.verdict {
        Verdict::DeadlockFree {
            channels,
            dependencies,
            method,
        } => {
            println!("deadlock-free ({method}; {channels} channels, {dependencies} dependencies; {what})");
            if let Some(e) = &a.escape {
                println!(
                    "full CDG: {} channels, {} dependencies, cyclic (adaptive VCs); escape sub-CDG: {} channels, {} direct dependencies, acyclic with its indirect dependencies",
                    a.full.channels, a.full.dependencies, e.channels, e.dependencies
                );
            }
        }
        Verdict::Cycle(cycle) => {
            println!(
                "deadlock possible: the {} has a cycle of {} channels ({what}; full CDG {} channels, {} dependencies):",
                if a.escape_cycle.is_some() {
                    "escape sub-network's extended dependency graph"
                } else {
                    "channel dependency graph"
                },
                cycle.len(),
                a.full.channels,
                a.full.dependencies
            );
            print_cycle(cycle);
        }
        Verdict::Unproven { reason } => {
            println!("not proven deadlock-free ({what}): {reason}");
        }
        Verdict::Invalid(e) => println!("invalid configuration: {e}"),
    }
}

/// Run `wafernoc check-deadlock`.
pub fn run(a: CheckDeadlockArgs) -> CmdResult {
    let net = load_network(&a)?;
    let t0 = Instant::now();
    let analysis = cdg::analyze(&net).map_err(|e| CliError::new(e.to_string()))?;
    let secs = t0.elapsed().as_secs_f64();
    if a.json {
        let (verdict, detail) = match &analysis.verdict {
            Verdict::DeadlockFree {
                channels,
                dependencies,
                method,
            } => (
                "deadlock_free",
                serde_json::json!({ "channels": channels, "dependencies": dependencies, "method": method }),
            ),
            Verdict::Cycle(c) => (
                "cycle",
                serde_json::json!({ "cycle": c.iter().map(channel_json).collect::<Vec<_>>() }),
            ),
            Verdict::Unproven { reason } => ("unproven", serde_json::json!({ "reason": reason })),
            Verdict::Invalid(e) => ("invalid", serde_json::json!({ "reason": e.to_string() })),
        };
        let v = serde_json::json!({
            "wafernoc_version": env!("CARGO_PKG_VERSION"),
            "command": "check-deadlock",
            "verdict": verdict,
            "detail": detail,
            "full_cdg": analysis.full,
            "escape_cdg": analysis.escape,
            "routing": net.routing.name(),
            "seconds": secs,
            "network": net,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| CliError::new(e.to_string()))?
        );
    } else {
        print_text(&net, &analysis);
    }
    Ok(match analysis.verdict {
        Verdict::DeadlockFree { .. } => ExitCode::SUCCESS,
        Verdict::Invalid(e) => return Err(CliError::new(e.to_string())),
        _ => ExitCode::from(3),
    })
}
