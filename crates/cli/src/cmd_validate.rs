//! `wafernoc validate DIR`: run every configuration of a BookSim2 reference
//! set (DIR/results.csv + DIR/configs/) and compare.
//!
//! Acceptance rules (issue "engine", docs/validation.md):
//! - mean packet latency within 3% of BookSim2 at every offered rate up to
//!   85% of the lowest rate BookSim2 found unstable for that network;
//! - at the zero-load rate (0.01) within 1 cycle;
//! - accepted rate within 3% wherever both runs are stable (and for
//!   throughput-mode runs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use wafernoc_mesh::sim::Status;

use crate::booksim::BooksimCfg;
use crate::cmd_sim::{read_text, simulate, RunOutcome};
use crate::progress::Progress;
use crate::{CliError, CmdResult};

/// Arguments of `wafernoc validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Reference directory holding results.csv and configs/.
    pub dir: PathBuf,
    /// Output directory for validation.csv and validation.md.
    #[arg(long, default_value = "out/validation")]
    pub out: PathBuf,
    /// Worker threads (the table is the same for any count).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Exit with status 1 if any acceptance check fails.
    #[arg(long)]
    pub strict: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// One reference row.
#[derive(Clone, Debug)]
pub struct RefRow {
    /// Traffic pattern.
    pub traffic: String,
    /// VCs.
    pub vcs: u32,
    /// Buffer depth.
    pub buf: u32,
    /// Packet size.
    pub pkt: u32,
    /// Offered rate.
    pub rate: f64,
    /// latency or throughput.
    pub sim_type: String,
    /// BookSim's status.
    pub status: String,
    /// Mean packet latency (if any).
    pub lat: Option<f64>,
    /// Accepted flits/node/cycle (if any).
    pub acc: Option<f64>,
    /// Config path relative to DIR.
    pub config: String,
}

/// Our figures for one row.
#[derive(Clone, Debug)]
pub struct Ours {
    /// ok / unstable / deadlock.
    pub status: String,
    /// Mean packet latency.
    pub lat: f64,
    /// Accepted rate.
    pub acc: f64,
}

/// Read DIR/results.csv.
pub fn read_reference(dir: &Path) -> Result<Vec<RefRow>, CliError> {
    let path = dir.join("results.csv");
    let text = read_text(&path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or_else(|| CliError::new(format!("{}: empty", path.display())))?.split(',').collect();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| CliError::new(format!("{}: no column `{name}`", path.display())))
    };
    let (ct, cv, cb, cp, cr, cs, cst, cl, ca, cc) = (
        col("traffic")?,
        col("vcs")?,
        col("buf")?,
        col("pkt_size")?,
        col("rate")?,
        col("sim_type")?,
        col("status")?,
        col("avg_pkt_lat")?,
        col("accepted_flits_per_node_cycle")?,
        col("config")?,
    );
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| CliError::new(format!("{}:{}: bad {what}", path.display(), i + 2));
        if f.len() != header.len() {
            return Err(bad("field count"));
        }
        let num = |s: &str| if s.is_empty() { Ok(None) } else { s.parse::<f64>().map(Some) };
        rows.push(RefRow {
            traffic: f[ct].to_string(),
            vcs: f[cv].parse().map_err(|_| bad("vcs"))?,
            buf: f[cb].parse().map_err(|_| bad("buf"))?,
            pkt: f[cp].parse().map_err(|_| bad("pkt_size"))?,
            rate: f[cr].parse().map_err(|_| bad("rate"))?,
            sim_type: f[cs].to_string(),
            status: f[cst].to_string(),
            lat: num(f[cl]).map_err(|_| bad("avg_pkt_lat"))?,
            acc: num(f[ca]).map_err(|_| bad("accepted rate"))?,
            config: f[cc].to_string(),
        });
    }
    Ok(rows)
}

/// Run one reference configuration through `wafernoc booksim` semantics.
pub fn run_row(dir: &Path, row: &RefRow) -> Result<Ours, CliError> {
    let p = dir.join(&row.config);
    let cfg = BooksimCfg::parse(&read_text(&p)?, &p.display().to_string())?;
    let res = cfg.resolve()?;
    Ok(match simulate(&res.network, &res.traffic, &res.sim, true)? {
        RunOutcome::Done(r) => Ours {
            status: match r.status {
                Status::Ok => "ok".into(),
                Status::Unstable => "unstable".into(),
            },
            lat: r.packet_latency.mean,
            acc: r.accepted.avg,
        },
        RunOutcome::Deadlock(_) => Ours { status: "deadlock".into(), lat: f64::NAN, acc: f64::NAN },
    })
}

/// Verdict of one row against the acceptance rules.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// Inside the checked range and within tolerance.
    Pass,
    /// Inside the checked range and outside tolerance (reason).
    Fail(String),
    /// Outside the checked range (reason).
    NotChecked(String),
}

/// Apply the acceptance rules to every row.
pub fn judge(rows: &[RefRow], ours: &[Ours]) -> Vec<Check> {
    // Lowest unstable rate per network (traffic, vcs, buf, pkt).
    let mut lowest: BTreeMap<(String, u32, u32, u32), f64> = BTreeMap::new();
    for r in rows {
        if r.sim_type == "latency" && r.status.starts_with("unstable") {
            let k = (r.traffic.clone(), r.vcs, r.buf, r.pkt);
            let e = lowest.entry(k).or_insert(f64::INFINITY);
            *e = e.min(r.rate);
        }
    }
    rows.iter()
        .zip(ours)
        .map(|(r, o)| {
            let k = (r.traffic.clone(), r.vcs, r.buf, r.pkt);
            let limit = 0.85 * lowest.get(&k).copied().unwrap_or(f64::INFINITY);
            if r.sim_type == "throughput" {
                return match r.acc {
                    Some(a) if o.status == "ok" => {
                        let e = (o.acc - a) / a;
                        if e.abs() <= 0.03 {
                            Check::Pass
                        } else {
                            Check::Fail(format!("accepted {:+.1}%", 100.0 * e))
                        }
                    }
                    _ => Check::Fail(format!("wafernoc status {}", o.status)),
                };
            }
            if r.rate > limit + 1e-12 {
                return Check::NotChecked(format!("rate above 85% of lowest unstable ({:.3})", limit));
            }
            let (Some(lat), Some(acc)) = (r.lat, r.acc) else {
                return Check::NotChecked("BookSim2 has no latency".into());
            };
            if o.status != "ok" {
                return Check::Fail(format!("wafernoc status {}", o.status));
            }
            let mut why = Vec::new();
            if (r.rate - 0.01).abs() < 1e-9 {
                if (o.lat - lat).abs() > 1.0 {
                    why.push(format!("zero-load latency off by {:.2} cycles", o.lat - lat));
                }
            } else if ((o.lat - lat) / lat).abs() > 0.03 {
                why.push(format!("latency {:+.1}%", 100.0 * (o.lat - lat) / lat));
            }
            if ((o.acc - acc) / acc).abs() > 0.03 {
                why.push(format!("accepted {:+.1}%", 100.0 * (o.acc - acc) / acc));
            }
            if why.is_empty() {
                Check::Pass
            } else {
                Check::Fail(why.join(", "))
            }
        })
        .collect()
}

/// Run every row with `jobs` threads; results are in row order.
pub fn run_all(dir: &Path, rows: &[RefRow], jobs: usize, quiet: bool) -> Result<Vec<Ours>, CliError> {
    let bar = Progress::bar(quiet, rows.len() as u64, "validate");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Ours, CliError>>> = (0..rows.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= rows.len() {
                    break;
                }
                let r = run_row(dir, &rows[i]);
                slots.lock().expect("no poisoned lock")[i] = Some(r);
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    results.into_iter().map(|r| r.expect("every row ran")).collect()
}

/// `wafernoc validate`.
pub fn run(a: ValidateArgs) -> CmdResult {
    let rows = read_reference(&a.dir)?;
    let ours = run_all(&a.dir, &rows, a.jobs, a.quiet)?;
    let checks = judge(&rows, &ours);
    std::fs::create_dir_all(&a.out).map_err(|e| CliError::new(format!("{}: {e}", a.out.display())))?;
    let mut csv = String::from("config,traffic,vcs,buf,pkt,rate,sim_type,booksim_status,wafernoc_status,booksim_latency,wafernoc_latency,latency_error_pct,booksim_accepted,wafernoc_accepted,accepted_error_pct,check\n");
    let mut md = String::from("| config | rate | BookSim2 latency | wafernoc latency | error | BookSim2 accepted | wafernoc accepted | error | check |\n|---|---|---|---|---|---|---|---|---|\n");
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    for ((r, o), c) in rows.iter().zip(&ours).zip(&checks) {
        let le = r.lat.map(|l| 100.0 * (o.lat - l) / l);
        let ae = r.acc.map(|x| 100.0 * (o.acc - x) / x);
        let cs = match c {
            Check::Pass => {
                pass += 1;
                "pass".to_string()
            }
            Check::Fail(w) => {
                fail += 1;
                format!("FAIL: {w}")
            }
            Check::NotChecked(w) => {
                skip += 1;
                format!("not checked: {w}")
            }
        };
        let f = |x: Option<f64>, p: usize| x.filter(|v| v.is_finite()).map(|v| format!("{v:.p$}")).unwrap_or_default();
        let name = Path::new(&r.config).file_stem().and_then(|s| s.to_str()).unwrap_or(&r.config).to_string();
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            name,
            r.traffic,
            r.vcs,
            r.buf,
            r.pkt,
            r.rate,
            r.sim_type,
            r.status,
            o.status,
            f(r.lat, 4),
            f(Some(o.lat), 4),
            f(le, 2),
            f(r.acc, 5),
            f(Some(o.acc), 5),
            f(ae, 2),
            cs.replace(',', ";")
        );
        let bl = if r.status == "ok" || r.status == "throughput_mode" { f(r.lat, 2) } else { r.status.clone() };
        let ol = if o.status == "ok" { f(Some(o.lat), 2) } else { o.status.clone() };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            name,
            r.rate,
            bl,
            ol,
            f(le, 1).to_string() + if le.is_some() { "%" } else { "" },
            f(r.acc, 4),
            f(Some(o.acc), 4),
            f(ae, 1).to_string() + if ae.is_some() { "%" } else { "" },
            cs
        );
    }
    let write = |name: &str, text: &str| {
        let p = a.out.join(name);
        std::fs::write(&p, text).map_err(|e| CliError::new(format!("{}: {e}", p.display())))
    };
    write("validation.csv", &csv)?;
    write("validation.md", &md)?;
    println!("{} rows: {} pass, {} fail, {} outside the checked range", rows.len(), pass, fail, skip);
    for ((r, _), c) in rows.iter().zip(&ours).zip(&checks) {
        if let Check::Fail(w) = c {
            println!("FAIL {} rate {}: {}", r.config, r.rate, w);
        }
    }
    println!("tables: {} and {}", a.out.join("validation.csv").display(), a.out.join("validation.md").display());
    Ok(if a.strict && fail > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
