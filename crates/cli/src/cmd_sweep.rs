//! `wafernoc sweep SWEEP.toml` (run a parameter grid, one subprocess per
//! point, optionally one shard of it) and `wafernoc sweep merge DIR` (one
//! CSV of every point). The file format, key mapping, determinism rule,
//! resume and sharding are documented in docs/sweeps.md.
//!
//! Layout of an output directory:
//!
//! - `DIR/sweep.json`: the manifest (version, command, resolved config path,
//!   fixed keys and arguments, the grid, the point count). Identical for
//!   every shard of one sweep; a run refuses a directory whose manifest
//!   describes a different sweep.
//! - `DIR/points/<index>.json`: one file per finished point (index,
//!   parameter values, subprocess arguments, the subcommand's JSON result),
//!   written to a temporary name and renamed, so a file that exists is whole.
//!
//! Each point runs the current executable as a subprocess with `--json`, so a
//! crash or a deadlock of one point never takes the others down, and the
//! point's result is exactly what `wafernoc <command> ... --json` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::progress::Progress;
use crate::{CliError, CmdResult};

/// Version of the manifest and point-file layout (bumped on incompatible change).
const FORMAT: u64 = 1;

/// Upper bound on the number of points of one sweep (a typo guard).
const MAX_POINTS: usize = 10_000_000;

/// Arrays of scalars with at most this many elements are written to the
/// merged CSV joined by `;`; longer arrays and arrays of objects or arrays
/// are left out (they stay in the point files).
pub const MAX_CSV_ARRAY: usize = 16;

/// Result fields whose leaf key starts with one of these are host
/// measurements (wall-clock time, host names), not simulation results, and
/// are left out of the merged CSV.
pub const HOST_KEY_PREFIXES: &[&str] = &["wall", "elapsed", "host"];
/// Result fields whose leaf key ends with one of these are rates per second
/// of wall-clock time or durations in seconds, and are left out of the CSV.
pub const HOST_KEY_SUFFIXES: &[&str] = &["_per_s", "_per_sec", "_per_second", "_seconds", "_secs"];
/// Result fields with exactly these leaf keys are left out of the CSV.
pub const HOST_KEYS: &[&str] = &["timestamp", "pid", "threads", "jobs"];

/// Arguments of `wafernoc sweep`: either `SWEEP.toml [options]` or
/// `merge DIR [options]`. A sweep file literally named `merge` must be
/// written as `./merge`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    /// `merge`: collect the point results of DIR into one CSV; `plot`:
    /// draw its columns.
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// Options of a sweep run.
    #[command(flatten)]
    pub run: SweepRunArgs,
}

/// The nested subcommands of `wafernoc sweep`.
// Parsed once per process: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum SweepAction {
    /// Merge the point results of a sweep output directory into one CSV
    /// (rows by point index; byte-identical however the sweep was run).
    Merge(MergeArgs),
    /// Draw columns of a merged CSV as a line chart (SVG): `--x COL --y
    /// COL`, one line per `--series` value, rows picked by `--where`.
    Plot(crate::cmd_sweep_plot::PlotArgs),
}

/// Options of `wafernoc sweep SWEEP.toml`.
#[derive(Args, Debug)]
pub struct SweepRunArgs {
    /// Sweep description (docs/sweeps.md).
    #[arg(value_name = "SWEEP.toml", required = true)]
    pub file: Option<PathBuf>,
    /// Points simulated at once (worker threads, one subprocess each);
    /// default: the available parallelism.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Run only the points with `index % N == I` (0-based I, `0 <= I < N`),
    /// e.g. `--shard $SLURM_ARRAY_TASK_ID/N` with `--array=0-(N-1)`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Skip points whose result file exists and parses; rerun the others.
    #[arg(long)]
    pub resume: bool,
    /// Output directory (default: `out/<SWEEP file stem>`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No progress bars (the one-line summary is still printed on stderr).
    #[arg(long)]
    pub quiet: bool,
    /// Print the points (of this shard) and their command lines; run nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

/// Arguments of `wafernoc sweep merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Sweep output directory (holds `sweep.json` and `points/`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// CSV file to write (default: `DIR/results.csv`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the points that exist instead of failing on missing ones.
    #[arg(long = "allow-partial")]
    pub allow_partial: bool,
}

/// One shard of a sweep: points with `index % count == index_of_shard`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard index, `< count`.
    pub index: usize,
    /// Number of shards, `>= 1`.
    pub count: usize,
}

/// Parse `I/N` (0-based I, `0 <= I < N`).
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not I/N (e.g. 0/4: shard 0 of 4, 0-based)"))?;
    let index: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: shard index `{i}` is not a non-negative integer"))?;
    let count: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: shard count `{n}` is not a positive integer"))?;
    if count == 0 {
        return Err(format!("`{s}`: the shard count must be at least 1"));
    }
    if index >= count {
        return Err(format!(
            "`{s}`: shard index {index} must be < count {count} (shards are 0-based: 0/{count} .. {}/{count})",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// The subcommand each point runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointCommand {
    /// `wafernoc run CONFIG --set key=value ...`
    Run,
    /// `wafernoc booksim CONFIG key=value ...`
    Booksim,
    /// `wafernoc moe [--config CONFIG] --key value ...`
    Moe,
    /// `wafernoc balance --key value ...` (no configuration file)
    Balance,
}

impl PointCommand {
    fn name(self) -> &'static str {
        match self {
            PointCommand::Run => "run",
            PointCommand::Booksim => "booksim",
            PointCommand::Moe => "moe",
            PointCommand::Balance => "balance",
        }
    }
}

/// SWEEP.toml as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    command: PointCommand,
    config: Option<String>,
    #[serde(default)]
    fixed: toml::Table,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default, rename = "param")]
    params: Vec<ParamFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamFile {
    name: String,
    values: Vec<toml::Value>,
}

/// One axis of the grid.
#[derive(Clone, Debug)]
pub struct Param {
    /// Key, as written in SWEEP.toml.
    pub name: String,
    /// Values in file order.
    pub values: Vec<toml::Value>,
}

/// A validated sweep: what every point runs, and the grid.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Subcommand of every point.
    pub command: PointCommand,
    /// Configuration file, resolved relative to the sweep file's directory.
    pub config: Option<PathBuf>,
    /// Fixed keys, mapped to arguments like the parameters (sorted by key).
    pub fixed: Vec<(String, toml::Value)>,
    /// Extra arguments passed verbatim after the mapped ones.
    pub args: Vec<String>,
    /// The grid axes; the first is the slowest.
    pub params: Vec<Param>,
    /// Number of points (product of the axis lengths; 1 without axes).
    pub points: usize,
}

impl Sweep {
    /// Read and check a sweep file. Every error names the file and the key.
    pub fn load(path: &Path) -> Result<Sweep, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
        Sweep::parse(&text, path)
    }

    /// [`Sweep::load`] of `text`, read from `path` (which names the file
    /// in errors and is the directory `config` is relative to).
    pub fn parse(text: &str, path: &Path) -> Result<Sweep, CliError> {
        let f = path.display();
        let raw: SweepFile =
            toml::from_str(text).map_err(|e| CliError::new(format!("{f}: {e}")))?;
        let cmd = raw.command;
        let config = match (&raw.config, cmd) {
            (None, PointCommand::Run | PointCommand::Booksim) => {
                return Err(CliError::new(format!(
                    "{f}: command `{}` needs `config` (its configuration file, relative to the sweep file)",
                    cmd.name()
                )))
            }
            (None, _) => None,
            (Some(_), PointCommand::Balance) => {
                return Err(CliError::new(format!(
                    "{f}: `config`: command `balance` takes no configuration file; give its \
                     flags in `[fixed]` or as parameters"
                )))
            }
            (Some(c), _) => {
                let dir = path.parent().unwrap_or(Path::new(""));
                let p = dir.join(c);
                let abs = std::fs::canonicalize(&p).map_err(|e| {
                    CliError::new(format!("{f}: `config` = \"{c}\": {}: {e}", p.display()))
                })?;
                if !abs.is_file() {
                    return Err(CliError::new(format!(
                        "{f}: `config` = \"{c}\": {} is not a file",
                        p.display()
                    )));
                }
                Some(abs)
            }
        };
        // Every point runs with the sweep's `--threads=N` first; a second
        // one in `args` would make every point fail ("cannot be used
        // multiple times"), after `--dry-run` had passed them.
        if let Some(a) = raw
            .args
            .iter()
            .take_while(|a| *a != "--")
            .find(|a| *a == "--threads" || a.starts_with("--threads="))
        {
            return Err(CliError::new(format!(
                "{f}: `args` gives `{a}`: every point runs on the sweep's own --threads \
                 (`wafernoc --threads N sweep ...`), and no result depends on it"
            )));
        }
        let mut fixed = Vec::new();
        for (k, v) in raw.fixed {
            check_key(cmd, &k).map_err(|m| CliError::new(format!("{f}: fixed.`{k}`: {m}")))?;
            check_value(cmd, &v).map_err(|m| CliError::new(format!("{f}: fixed.`{k}`: {m}")))?;
            fixed.push((k, v));
        }
        let mut params: Vec<Param> = Vec::new();
        let mut points: usize = 1;
        for (i, p) in raw.params.into_iter().enumerate() {
            let at = format!("{f}: [[param]] #{} `{}`", i + 1, p.name);
            check_key(cmd, &p.name).map_err(|m| CliError::new(format!("{at}: {m}")))?;
            if p.values.is_empty() {
                return Err(CliError::new(format!("{at}: `values` is empty")));
            }
            for v in &p.values {
                check_value(cmd, v).map_err(|m| CliError::new(format!("{at}: {m}")))?;
            }
            if params.iter().any(|q| q.name == p.name) {
                return Err(CliError::new(format!("{at}: parameter given twice")));
            }
            if fixed.iter().any(|(k, _)| *k == p.name) {
                return Err(CliError::new(format!(
                    "{at}: also a key of [fixed]; give it in one place"
                )));
            }
            points = points
                .checked_mul(p.values.len())
                .filter(|&n| n <= MAX_POINTS)
                .ok_or_else(|| {
                    CliError::new(format!("{f}: more than {MAX_POINTS} points in the grid"))
                })?;
            params.push(Param {
                name: p.name,
                values: p.values,
            });
        }
        Ok(Sweep {
            command: cmd,
            config,
            fixed,
            args: raw.args,
            params,
            points,
        })
    }

    /// Value index of every axis for point `index` (first axis slowest).
    pub fn coords(&self, index: usize) -> Vec<usize> {
        let mut rem = index;
        let mut c = vec![0; self.params.len()];
        for (k, p) in self.params.iter().enumerate().rev() {
            c[k] = rem % p.values.len();
            rem /= p.values.len();
        }
        c
    }

    /// `(name, value)` of every axis for point `index`, in grid order.
    pub fn point_params(&self, index: usize) -> Vec<(&str, &toml::Value)> {
        self.coords(index)
            .into_iter()
            .zip(&self.params)
            .map(|(i, p)| (p.name.as_str(), &p.values[i]))
            .collect()
    }

    /// Arguments after the executable for point `index`, `--json` included.
    pub fn point_args(&self, index: usize) -> Vec<String> {
        let cmd = self.command;
        let mut a = vec![cmd.name().to_string()];
        if let Some(c) = &self.config {
            if cmd == PointCommand::Moe {
                a.push("--config".into());
            }
            a.push(c.display().to_string());
        }
        let fixed = self.fixed.iter().map(|(k, v)| (k.as_str(), v));
        for (k, v) in fixed.chain(self.point_params(index)) {
            push_key(cmd, k, v, &mut a);
        }
        a.extend(self.args.iter().cloned());
        // Every point command has `--json` and `--quiet`.
        a.push("--json".into());
        a.push("--quiet".into());
        a
    }

    /// The manifest (`DIR/sweep.json`): the same for every shard.
    pub fn manifest(&self) -> Json {
        let params: Vec<Json> = self
            .params
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "values": p.values.iter().map(to_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let fixed: serde_json::Map<String, Json> = self
            .fixed
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect();
        serde_json::json!({
            "format": FORMAT,
            "wafernoc_version": env!("CARGO_PKG_VERSION"),
            "command": self.command.name(),
            "config": self.config.as_ref().map(|c| c.display().to_string()),
            "fixed": fixed,
            "args": self.args,
            "params": params,
            "points": self.points,
        })
    }
}

/// Keys: `run` takes dotted TOML paths, `booksim` BookSim's names, `moe` and
/// `balance` flag names (underscores become hyphens).
fn check_key(cmd: PointCommand, k: &str) -> Result<(), String> {
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if matches!(cmd, PointCommand::Moe | PointCommand::Balance) && k == "threads" {
        return Err(
            "`threads` is not a point's key: every point runs on the sweep's own \
                    --threads (`wafernoc --threads N sweep ...`), and no result depends on it"
                .to_string(),
        );
    }
    let ok = match cmd {
        PointCommand::Run => k.split('.').all(word),
        PointCommand::Booksim => word(k) && !k.contains('-'),
        PointCommand::Moe | PointCommand::Balance => word(k) && !k.starts_with('-'),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{k}` is not a valid key for `{}` ({})",
            cmd.name(),
            match cmd {
                PointCommand::Run => "a dotted TOML path such as traffic.rate",
                PointCommand::Booksim => "a BookSim2 option name such as injection_rate",
                _ => "a flag name without dashes, such as tokens_per_group",
            }
        ))
    }
}

/// Values: strings, integers, finite floats and booleans everywhere; arrays
/// and inline tables only for `run` (its `--set` parses TOML).
fn check_value(cmd: PointCommand, v: &toml::Value) -> Result<(), String> {
    match v {
        toml::Value::String(_) | toml::Value::Integer(_) | toml::Value::Boolean(_) => Ok(()),
        toml::Value::Float(x) if x.is_finite() => Ok(()),
        toml::Value::Float(x) => Err(format!("value {x} is not a finite number")),
        toml::Value::Datetime(d) => Err(format!("value {d}: dates are not supported")),
        toml::Value::Array(a) if cmd == PointCommand::Run => {
            a.iter().try_for_each(|x| check_value(cmd, x))
        }
        toml::Value::Table(t) if cmd == PointCommand::Run => {
            t.values().try_for_each(|x| check_value(cmd, x))
        }
        _ => Err(format!(
            "wrong type: `{}` takes a string, number or boolean, not {}",
            cmd.name(),
            v.type_str()
        )),
    }
}

/// A value as TOML source text (inline), for `run --set key=value`.
fn toml_literal(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => toml::Value::String(s.clone()).to_string(),
        toml::Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(toml_literal).collect();
            format!("[{}]", parts.join(", "))
        }
        toml::Value::Table(t) => {
            let parts: Vec<String> = t
                .iter()
                .map(|(k, x)| {
                    format!(
                        "{} = {}",
                        toml_literal(&toml::Value::String(k.clone())),
                        toml_literal(x)
                    )
                })
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// A scalar value as plain text (strings unquoted), for BookSim overrides,
/// flags and CSV cells.
fn plain(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => toml_literal(other),
    }
}

/// Append the arguments of one key.
fn push_key(cmd: PointCommand, k: &str, v: &toml::Value, out: &mut Vec<String>) {
    match cmd {
        PointCommand::Run => {
            out.push("--set".into());
            out.push(format!("{k}={}", toml_literal(v)));
        }
        PointCommand::Booksim => out.push(format!("{k}={}", plain(v))),
        PointCommand::Moe | PointCommand::Balance => {
            let flag = format!("--{}", k.replace('_', "-"));
            match v {
                toml::Value::Boolean(true) => out.push(flag),
                toml::Value::Boolean(false) => {}
                _ => {
                    out.push(flag);
                    out.push(plain(v));
                }
            }
        }
    }
}

/// A TOML value as JSON (values are checked: no dates, finite floats).
fn to_json(v: &toml::Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// Quote an argument for display in a POSIX shell.
fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers see the old file or the whole new one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CliError::new(format!("{}: {e}", path.display()))
        })
}

fn point_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("points").join(format!("{index}.json"))
}

/// A point file that exists, parses and belongs to point `index` of `sweep`
/// (`None` otherwise).
fn valid_point(dir: &Path, index: usize, params: &serde_json::Map<String, Json>) -> Option<Json> {
    let text = std::fs::read_to_string(point_path(dir, index)).ok()?;
    let v: Json = serde_json::from_str(&text).ok()?;
    let ok = v["point"].as_u64() == Some(index as u64)
        && v["params"].as_object() == Some(params)
        && v["result"].is_object();
    ok.then_some(v)
}

fn params_json(sweep: &Sweep, index: usize) -> serde_json::Map<String, Json> {
    sweep
        .point_params(index)
        .into_iter()
        .map(|(k, v)| (k.to_string(), to_json(v)))
        .collect()
}

fn describe(sweep: &Sweep, index: usize) -> String {
    let p: Vec<String> = sweep
        .point_params(index)
        .into_iter()
        .map(|(k, v)| format!("{k}={}", plain(v)))
        .collect();
    if p.is_empty() {
        "(no parameters)".into()
    } else {
        p.join(" ")
    }
}

/// Last lines of a subprocess's stderr, indented, for an error message.
fn tail(stderr: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(stderr);
    let all: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = all.len().saturating_sub(lines);
    let mut out = String::new();
    for l in &all[from..] {
        let l: String = l.chars().take(300).collect();
        let _ = write!(out, "\n    | {l}");
    }
    if out.is_empty() {
        out.push_str("\n    | (stderr empty)");
    }
    out
}

/// Run one point: subprocess, parse its JSON, write the point file.
/// `Err` is the failure report for the summary.
fn run_point(exe: &Path, dir: &Path, sweep: &Sweep, index: usize) -> Result<(), String> {
    let args = sweep.point_args(index);
    let head = format!("point {index} ({})", describe(sweep, index));
    // Every point runs on the sweep's --threads (its results do not depend on it).
    let out = Command::new(exe)
        .arg(format!(
            "--threads={}",
            wafernoc_mesh::network::default_threads()
        ))
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{head}: cannot start {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{head}: `wafernoc {}` failed ({}); stderr tail:{}",
            args.join(" "),
            out.status,
            tail(&out.stderr, 12)
        ));
    }
    let result: Json = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{head}: output of `wafernoc {}` is not one JSON object: {e}",
            args.join(" ")
        )
    })?;
    if !result.is_object() {
        return Err(format!("{head}: output is JSON but not an object"));
    }
    let file = serde_json::json!({
        "point": index,
        "params": params_json(sweep, index),
        "args": args,
        "result": result,
    });
    let mut text = serde_json::to_string_pretty(&file).expect("serialisable");
    text.push('\n');
    write_atomic(&point_path(dir, index), text.as_bytes()).map_err(|e| format!("{head}: {e}"))
}

/// Create `DIR/points` and write the manifest, or check that an existing
/// one describes the same sweep.
fn prepare_dir(dir: &Path, manifest: &Json) -> Result<(), CliError> {
    // An existing directory must be a sweep's (its manifest decides below)
    // or hold nothing but what another shard starting at the same time
    // writes: `points/`, the manifest and its temporary file.
    // Was: any directory, `--out docs` wrote sweep.json and points/ there.
    if !dir.join("sweep.json").exists() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let other = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .find(|n| {
                    let n = n.to_string_lossy();
                    n != "points" && n != "sweep.json" && !n.starts_with(".sweep.json.tmp.")
                });
            if let Some(n) = other {
                return Err(CliError::new(format!(
                    "{} is not empty (it holds {}) and is not a sweep's output directory \
                     (no sweep.json): choose a new or empty --out",
                    dir.display(),
                    n.to_string_lossy()
                )));
            }
        }
    }
    let points = dir.join("points");
    std::fs::create_dir_all(&points)
        .map_err(|e| CliError::new(format!("{}: {e}", points.display())))?;
    let path = dir.join("sweep.json");
    let mut text = serde_json::to_string_pretty(manifest).expect("serialisable");
    text.push('\n');
    match std::fs::read_to_string(&path) {
        Ok(old) => {
            let old: Json = serde_json::from_str(&old).map_err(|e| {
                CliError::new(format!("{}: not a sweep manifest: {e}", path.display()))
            })?;
            if &old != manifest {
                let key = manifest
                    .as_object()
                    .into_iter()
                    .flatten()
                    .find(|(k, v)| old.get(k.as_str()) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default();
                return Err(CliError::new(format!(
                    "{} describes a different sweep (`{key}` differs); use another --out",
                    path.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_atomic(&path, text.as_bytes()),
        Err(e) => Err(CliError::new(format!("{}: {e}", path.display()))),
    }
}

/// `wafernoc sweep ...`: dispatch to a run or `merge`.
pub fn run(a: SweepArgs) -> CmdResult {
    match a.action {
        Some(SweepAction::Merge(m)) => merge(m),
        Some(SweepAction::Plot(p)) => crate::cmd_sweep_plot::run(p),
        None => run_sweep(a.run),
    }
}

/// Two points may not write the same file: `args` are the same for every
/// point, so `--capture`, `--per-packet` or `--out` there would have each
/// point overwrite the others' output (with `--jobs` > 1, interleaved:
/// a user found a corrupt capture). Checked over the whole grid, as
/// shards may run at once.
fn check_shared_outputs(sweep: &Sweep) -> Result<(), CliError> {
    let mut seen: BTreeMap<(&'static str, PathBuf), usize> = BTreeMap::new();
    for i in 0..sweep.points {
        for (flag, path) in crate::point_outputs(&sweep.point_args(i)) {
            // `o1` and `./o1` are one path.
            let path: PathBuf = path
                .components()
                .filter(|c| *c != std::path::Component::CurDir)
                .collect();
            let key = (flag, path);
            if let Some(&j) = seen.get(&key) {
                return Err(CliError::new(format!(
                    "points {j} and {i} would both write `{} {}`: a sweep's points must write \
                     different files (`args` are the same for every point). Each point's JSON \
                     result is kept in the sweep's --out directory; for files of their own{}",
                    key.0,
                    key.1.display(),
                    match sweep.command {
                        PointCommand::Moe | PointCommand::Balance if key.0 == "--out" => {
                            " make `out` a [[param]] with one directory per point (all axes \
                             combined), or run the points one by one"
                        }
                        _ => " run the points one by one",
                    }
                )));
            }
            seen.insert(key, i);
        }
    }
    Ok(())
}

fn run_sweep(a: SweepRunArgs) -> CmdResult {
    let file = a
        .file
        .ok_or_else(|| CliError::new("give a sweep file: wafernoc sweep SWEEP.toml"))?;
    let sweep = Sweep::load(&file)?;
    check_shared_outputs(&sweep)?;
    let shard = a.shard.unwrap_or(Shard { index: 0, count: 1 });
    let mine: Vec<usize> = (shard.index..sweep.points).step_by(shard.count).collect();
    if a.dry_run {
        for &i in &mine {
            // What the point's subprocess would refuse at once (a flag, a
            // configuration key or value) is an error now.
            crate::check_point_args(&sweep.point_args(i))
                .map_err(|e| CliError::new(format!("point {i} ({}): {e}", describe(&sweep, i))))?;
            let args: Vec<String> = sweep.point_args(i).iter().map(|s| sh_quote(s)).collect();
            println!(
                "point {i}: {}\n    wafernoc {}",
                describe(&sweep, i),
                args.join(" ")
            );
        }
        eprintln!(
            "sweep: {} points, {} in shard {}/{}",
            sweep.points,
            mine.len(),
            shard.index,
            shard.count
        );
        return Ok(ExitCode::SUCCESS);
    }
    let jobs = match a.jobs {
        Some(0) => return Err(CliError::new("--jobs must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let dir = a.out.unwrap_or_else(|| {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into());
        PathBuf::from("out").join(stem)
    });
    prepare_dir(&dir, &sweep.manifest())?;

    // Which of this shard's points are done already.
    let mut pending = Vec::new();
    let mut existing = Vec::new();
    let mut skipped = 0usize;
    for &i in &mine {
        let path = point_path(&dir, i);
        if !path.exists() {
            pending.push(i);
        } else if !a.resume {
            existing.push(i);
        } else if valid_point(&dir, i, &params_json(&sweep, i)).is_some() {
            skipped += 1;
        } else {
            pending.push(i);
        }
    }
    if !existing.is_empty() {
        return Err(CliError::new(format!(
            "{} already holds files for {} point(s) of this run (e.g. {}); \
             pass --resume to keep the valid ones and run the rest, or choose another --out",
            dir.join("points").display(),
            existing.len(),
            point_path(&dir, existing[0]).display()
        )));
    }

    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(format!("cannot locate the wafernoc executable: {e}")))?;
    let workers = jobs.min(pending.len());
    let mp = MultiProgress::with_draw_target(if a.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let overall = mp.add(Progress::bar(a.quiet, pending.len() as u64, "sweep"));
    overall.set_message(format!(
        "{} skipped, shard {}/{}",
        skipped, shard.index, shard.count
    ));
    let spinner = ProgressStyle::with_template("  {spinner} {prefix}: {msg} [{elapsed}]")
        .expect("static template");
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..workers {
            let bar = mp.add(ProgressBar::new_spinner());
            bar.set_style(spinner.clone());
            bar.set_prefix(format!("worker {w}"));
            bar.set_message("starting");
            bar.enable_steady_tick(Duration::from_millis(200));
            let (next, failures, pending, sweep, dir, exe, overall, mp) = (
                &next, &failures, &pending, &sweep, &dir, &exe, &overall, &mp,
            );
            s.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = pending.get(k) else { break };
                    bar.reset_elapsed();
                    bar.set_message(format!("point {i} ({})", describe(sweep, i)));
                    if let Err(msg) = run_point(exe, dir, sweep, i) {
                        mp.suspend(|| eprintln!("sweep: point {i} failed"));
                        failures.lock().expect("no panics").push((i, msg));
                    }
                    overall.inc(1);
                }
                bar.finish_and_clear();
            });
        }
    });
    overall.finish_and_clear();
    let mut failures = failures.into_inner().expect("no panics");
    failures.sort_by_key(|f| f.0);
    let ran = pending.len() - failures.len();
    eprintln!(
        "sweep: ran {ran}, skipped {skipped}, failed {} (shard {}/{}: {} of {} points) -> {}",
        failures.len(),
        shard.index,
        shard.count,
        mine.len(),
        sweep.points,
        dir.display()
    );
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let list: Vec<String> = failures.iter().map(|f| f.0.to_string()).collect();
    let mut msg = format!(
        "{} point(s) failed: {} (rerun with --resume to retry only these)",
        failures.len(),
        list.join(", ")
    );
    for (_, m) in &failures {
        let _ = write!(msg, "\n  {m}");
    }
    Err(CliError::with_code(msg, 1))
}

/// Whether a result field is a host measurement (see [`HOST_KEY_PREFIXES`],
/// [`HOST_KEY_SUFFIXES`], [`HOST_KEYS`]) and so stays out of the CSV.
pub fn is_host_key(leaf: &str) -> bool {
    let k = leaf.to_ascii_lowercase();
    HOST_KEYS.contains(&k.as_str())
        || HOST_KEY_PREFIXES.iter().any(|p| k.starts_with(p))
        || HOST_KEY_SUFFIXES.iter().any(|s| k.ends_with(s))
}

/// One CSV cell for a scalar JSON value (`None` for objects and arrays).
fn scalar_cell(v: &Json) -> Option<String> {
    match v {
        Json::Null => Some(String::new()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Flatten a result into `dotted.key -> cell`: objects recurse with `.`,
/// arrays of at most [`MAX_CSV_ARRAY`] scalars are joined with `;`, other
/// arrays and host measurements ([`is_host_key`]) are skipped.
pub fn flatten(prefix: &str, v: &Json, out: &mut BTreeMap<String, String>) {
    match v {
        Json::Object(m) => {
            for (k, x) in m {
                if is_host_key(k) {
                    continue;
                }
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        Json::Array(a) => {
            if a.len() <= MAX_CSV_ARRAY {
                let cells: Option<Vec<String>> = a.iter().map(scalar_cell).collect();
                if let Some(c) = cells {
                    out.insert(prefix.to_string(), c.join(";"));
                }
            }
        }
        _ => {
            out.insert(prefix.to_string(), scalar_cell(v).unwrap_or_default());
        }
    }
}

/// RFC 4180 quoting when needed.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A parameter value as a CSV cell (arrays and tables of `run` as compact JSON).
fn param_cell(v: &Json) -> String {
    scalar_cell(v).unwrap_or_else(|| v.to_string())
}

/// Compress sorted indices into `a-b` ranges for a message.
fn ranges(ix: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut k = 0;
    while k < ix.len() {
        let mut j = k;
        while j + 1 < ix.len() && ix[j + 1] == ix[j] + 1 {
            j += 1;
        }
        parts.push(if j == k {
            ix[k].to_string()
        } else {
            format!("{}-{}", ix[k], ix[j])
        });
        k = j + 1;
    }
    parts.join(", ")
}

/// `wafernoc sweep merge DIR`.
fn merge(a: MergeArgs) -> CmdResult {
    let dir = &a.dir;
    let mpath = dir.join("sweep.json");
    let text = std::fs::read_to_string(&mpath).map_err(|e| {
        CliError::new(format!(
            "{}: {e} (is {} a sweep output directory?)",
            mpath.display(),
            dir.display()
        ))
    })?;
    let manifest: Json = serde_json::from_str(&text)
        .map_err(|e| CliError::new(format!("{}: {e}", mpath.display())))?;
    let bad = |what: &str| CliError::new(format!("{}: {what}", mpath.display()));
    if manifest["format"].as_u64() != Some(FORMAT) {
        return Err(bad(&format!("unsupported format (expected {FORMAT})")));
    }
    let total = manifest["points"]
        .as_u64()
        .ok_or_else(|| bad("`points` is missing"))? as usize;
    let params = manifest["params"]
        .as_array()
        .ok_or_else(|| bad("`params` is missing"))?;
    let mut names = Vec::new();
    let mut axes: Vec<&Vec<Json>> = Vec::new();
    for p in params {
        let n = p["name"]
            .as_str()
            .ok_or_else(|| bad("a param has no name"))?;
        let v = p["values"]
            .as_array()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(&format!("param `{n}` has no values")))?;
        names.push(n.to_string());
        axes.push(v);
    }
    // `points` must be the grid's size: merge reads one file per index, and
    // a corrupted count (say 10^12) would otherwise loop for hours.
    let grid = axes
        .iter()
        .try_fold(1usize, |n, ax| n.checked_mul(ax.len()));
    if grid != Some(total) {
        return Err(bad(&format!(
            "`points` is {total} but the grid of `params` has {} points",
            grid.map_or("too many".to_string(), |g| g.to_string())
        )));
    }

    let mut missing = Vec::new();
    let mut rows: Vec<(usize, Vec<String>, BTreeMap<String, String>)> = Vec::new();
    for i in 0..total {
        let path = point_path(dir, i);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(i);
                continue;
            }
            Err(e) => return Err(CliError::new(format!("{}: {e}", path.display()))),
        };
        let v: Json = serde_json::from_str(&text)
            .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
        // Expected parameter values of point i (first axis slowest).
        let mut rem = i;
        let mut expect = vec![Json::Null; axes.len()];
        for (k, ax) in axes.iter().enumerate().rev() {
            expect[k] = ax[rem % ax.len()].clone();
            rem /= ax.len();
        }
        let same = v["point"].as_u64() == Some(i as u64)
            && names
                .iter()
                .zip(&expect)
                .all(|(n, e)| v["params"].get(n) == Some(e));
        if !same {
            return Err(CliError::new(format!(
                "{}: does not hold point {i} of this sweep (index or parameters differ from {})",
                path.display(),
                mpath.display()
            )));
        }
        let result = v
            .get("result")
            .filter(|r| r.is_object())
            .ok_or_else(|| CliError::new(format!("{}: no `result` object", path.display())))?;
        let mut fields = BTreeMap::new();
        flatten("", result, &mut fields);
        rows.push((i, expect.iter().map(param_cell).collect(), fields));
    }
    if !missing.is_empty() && !a.allow_partial {
        return Err(CliError::new(format!(
            "{}: {} of {total} points missing: {} (run the sweep with --resume, or merge with --allow-partial)",
            dir.join("points").display(),
            missing.len(),
            ranges(&missing)
        )));
    }

    // Files in points/ that are no point of this grid (copied in by hand,
    // or left after sweep.json was deleted: a sweep refuses a directory
    // whose manifest differs) are not merged; say so, so that nobody
    // takes them for merged results.
    let mut stray: Vec<String> = std::fs::read_dir(dir.join("points"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let index = n
                .strip_suffix(".json")
                .and_then(|i| i.parse::<usize>().ok());
            !matches!(index, Some(i) if i < total && *n == format!("{i}.json"))
        })
        .collect();
    if !stray.is_empty() {
        stray.sort();
        let shown: Vec<&str> = stray.iter().take(5).map(String::as_str).collect();
        eprintln!(
            "sweep merge: warning: {} file(s) in {} are not points 0..{total} of this sweep and were not merged: {}{}",
            stray.len(),
            dir.join("points").display(),
            shown.join(", "),
            if stray.len() > shown.len() { ", ..." } else { "" }
        );
    }

    let columns: BTreeSet<&String> = rows.iter().flat_map(|r| r.2.keys()).collect();
    let mut csv = String::from("point");
    for n in &names {
        csv.push(',');
        csv.push_str(&csv_cell(n));
    }
    for c in &columns {
        csv.push(',');
        if names.contains(c) {
            csv.push_str(&csv_cell(&format!("result.{c}")));
        } else {
            csv.push_str(&csv_cell(c));
        }
    }
    csv.push('\n');
    for (i, pv, fields) in &rows {
        csv.push_str(&i.to_string());
        for p in pv {
            csv.push(',');
            csv.push_str(&csv_cell(p));
        }
        for c in &columns {
            csv.push(',');
            csv.push_str(&csv_cell(fields.get(*c).map_or("", |s| s.as_str())));
        }
        csv.push('\n');
    }
    let out = a.out.clone().unwrap_or_else(|| dir.join("results.csv"));
    write_atomic(&out, csv.as_bytes())?;
    eprintln!(
        "sweep merge: {} rows ({} missing), {} columns -> {}",
        rows.len(),
        missing.len(),
        1 + names.len() + columns.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::{edits, mutate, shipped_files};
    use proptest::prelude::*;

    /// The shipped sweep files that need no routing trace (a trace point's
    /// check loads megabytes; the trace decoders have fuzz targets).
    fn seeds() -> Vec<(PathBuf, String)> {
        shipped_files("docs", "toml")
            .into_iter()
            .filter(|(_, t)| t.contains("[[param]]") && !t.contains("trace:"))
            .collect()
    }

    /// What `sweep FILE --dry-run` checks: the file, and each point as its
    /// run would (the first three points).
    fn check_sweep_text(text: &str, path: &Path) -> Result<(), CliError> {
        let s = Sweep::parse(text, path)?;
        for i in 0..s.points.min(3) {
            crate::check_point_args(&s.point_args(i))?;
        }
        Ok(())
    }

    #[test]
    fn shipped_sweeps_pass_the_checks() {
        // Seeds of every command that needs no trace, all valid.
        let s = seeds();
        for cmd in ["run", "moe", "balance"] {
            let head = format!("command = \"{cmd}\"");
            assert!(s.iter().any(|(_, t)| t.contains(&head)), "{cmd}");
        }
        for (p, t) in &s {
            check_sweep_text(t, p).unwrap();
        }
    }

    proptest! {
        #[test]
        fn mutated_sweep_files_never_panic(
            pick in any::<u16>(),
            edits in edits(),
        ) {
            thread_local!(static SEEDS: Vec<(PathBuf, String)> = seeds());
            let (path, text) = SEEDS.with(|c| {
                let (p, t) = &c[pick as usize % c.len()];
                (p.clone(), mutate(t, &edits))
            });
            let _ = check_sweep_text(&text, &path);
        }
    }

    fn sweep(text: &str) -> Result<Sweep, CliError> {
        // Tests run on parallel threads: one directory per call, removed
        // once the sweep is loaded.
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "wafernoc-sweep-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("c.toml"), "").unwrap();
        let f = d.join("s.toml");
        std::fs::write(&f, text).unwrap();
        let sweep = Sweep::load(&f);
        let _ = std::fs::remove_dir_all(&d);
        sweep
    }

    #[test]
    fn grid_order_first_param_slowest() {
        let s = sweep(
            "command = \"run\"\nconfig = \"c.toml\"\n\
             [[param]]\nname = \"a\"\nvalues = [1, 2]\n\
             [[param]]\nname = \"b\"\nvalues = [\"x\", \"y\", \"z\"]\n",
        )
        .unwrap();
        assert_eq!(s.points, 6);
        let got: Vec<Vec<usize>> = (0..6).map(|i| s.coords(i)).collect();
        assert_eq!(
            got,
            [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]].map(|c| c.to_vec())
        );
        let a = s.point_args(5);
        assert_eq!(
            &a[2..],
            ["--set", "a=2", "--set", "b=\"z\"", "--json", "--quiet"]
        );
    }

    #[test]
    fn key_mapping_per_command() {
        let s = sweep(
            "command = \"moe\"\nargs = [\"--mesh\", \"4x4\"]\n[fixed]\nquick = true\n\
             [[param]]\nname = \"tokens_per_group\"\nvalues = [8]\n\
             [[param]]\nname = \"mapping\"\nvalues = [\"er\"]\n",
        )
        .unwrap();
        assert_eq!(
            s.point_args(0),
            [
                "moe",
                "--quick",
                "--tokens-per-group",
                "8",
                "--mapping",
                "er",
                "--mesh",
                "4x4",
                "--json",
                "--quiet"
            ]
        );
        let b = sweep(
            "command = \"booksim\"\nconfig = \"c.toml\"\n\
             [[param]]\nname = \"injection_rate\"\nvalues = [0.05]\n",
        )
        .unwrap();
        assert_eq!(b.point_args(0)[2], "injection_rate=0.05");
        let bal =
            sweep("command = \"balance\"\n[[param]]\nname = \"x_y\"\nvalues = [1]\n").unwrap();
        assert_eq!(
            bal.point_args(0),
            ["balance", "--x-y", "1", "--json", "--quiet"]
        );
    }

    #[test]
    fn bad_sweep_files_name_the_key() {
        let e = |t: &str| sweep(t).unwrap_err().to_string();
        assert!(e("command = \"run\"\nconfig = \"c.toml\"\nbogus = 1\n").contains("bogus"));
        assert!(e("config = \"c.toml\"\n").contains("command"));
        assert!(e("command = \"balance\"\nconfig = \"c.toml\"\n")
            .contains("takes no configuration file"));
        assert!(e("command = \"walk\"\n").contains("walk"));
        for cmd in ["run", "booksim", "moe", "balance"] {
            let cfg = if cmd == "run" || cmd == "booksim" {
                "config = \"c.toml\"\n"
            } else {
                ""
            };
            for args in ["[\"--threads\", \"2\"]", "[\"--quiet\", \"--threads=2\"]"] {
                let t = format!("command = \"{cmd}\"\n{cfg}args = {args}\n");
                assert!(e(&t).contains("`args` gives `--threads"), "{t}: {}", e(&t));
            }
        }
        for cmd in ["moe", "balance"] {
            let fixed = format!("command = \"{cmd}\"\n[fixed]\nthreads = 2\n");
            let param =
                format!("command = \"{cmd}\"\n[[param]]\nname = \"threads\"\nvalues = [1]\n");
            for t in [fixed, param] {
                assert!(e(&t).contains("the sweep's own --threads"), "{t}");
            }
        }
        assert!(e("command = \"run\"\n").contains("needs `config`"));
        assert!(e(
            "command = \"run\"\nconfig = \"c.toml\"\n[[param]]\nname = \"a\"\nvalues = []\n"
        )
        .contains("`a`: `values` is empty"));
        assert!(e(
            "command = \"booksim\"\nconfig = \"c.toml\"\n[[param]]\nname = \"k\"\nvalues = [[1]]\n"
        )
        .contains("wrong type"));
        assert!(
            e("command = \"run\"\nconfig = \"c.toml\"\n[[param]]\nname = \"a\"\nvalues = 3\n")
                .contains("values")
        );
    }

    #[test]
    fn shards_parse_strictly() {
        assert_eq!(parse_shard("1/4"), Ok(Shard { index: 1, count: 4 }));
        assert!(parse_shard("3/2")
            .unwrap_err()
            .contains("must be < count 2"));
        assert!(parse_shard("0/0").is_err());
        assert!(parse_shard("1").is_err());
        assert!(parse_shard("-1/2").is_err());
    }

    #[test]
    fn host_fields_stay_out_of_the_csv() {
        let v = serde_json::json!({
            "elapsed_s": 1.5, "wall_time": 2, "cycles_per_s": 9e6, "hostname": "n1",
            "cycles": 10, "ns": 2.5, "stats": {"mean": 1.0, "run_seconds": 3},
            "cold": [[0, 1]], "sizes": [4, 8], "big": (0..17).collect::<Vec<_>>(),
        });
        let mut f = BTreeMap::new();
        flatten("", &v, &mut f);
        let keys: Vec<&str> = f.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["cycles", "ns", "sizes", "stats.mean"]);
        assert_eq!(f["sizes"], "4;8");
    }
}
