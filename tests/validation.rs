//! Cross-check against the BookSim2 reference runs in
//! ../shared/reference/booksim (the acceptance rules of the engine issue,
//! docs/validation.md).
//!
//! Every reference row the rules cover (latency runs up to 85% of the lowest
//! unstable rate of their network, and throughput runs) is simulated with 8
//! seeds. A row passes when the mean is within the tolerance (3% of
//! latency and accepted rate, 1 cycle at zero load) or, where the
//! run-to-run spread exceeds that tolerance, within 3 standard errors of the
//! difference (BookSim2's value is a single run: its random streams cannot
//! be reproduced). The literal verdict of every row is in docs/validation.md.

use std::path::PathBuf;
use std::process::Command;

#[path = "../crates/cli/tests/common/mod.rs"]
mod common;

#[test]
fn agrees_with_booksim2_reference_runs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reference = root.join("../shared/reference/booksim");
    assert!(
        reference.join("results.csv").exists(),
        "BookSim2 reference data missing at {}",
        reference.display()
    );
    let out = common::tmp("validation");
    let o = Command::new(env!("CARGO_BIN_EXE_wafernoc"))
        .args([
            "validate",
            reference.to_str().unwrap(),
            "--seeds",
            "8",
            "--rule",
            "statistical",
            "--checked-only",
        ])
        .args([
            "--strict",
            "--quiet",
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "validation failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The check must have covered the whole checked range of the reference
    // set (115 rows, docs/validation.md), every row passing.
    let csv = std::fs::read_to_string(out.join("validation.csv")).unwrap();
    let checked = csv.lines().skip(1).filter(|l| l.contains(",pass")).count();
    assert_eq!(checked, 115, "rows checked:\n{stdout}");
    assert!(!csv.contains(",FAIL"), "a failing row:\n{csv}");
}

/// `--strict` must turn a failing row into a failing exit status: one
/// reference row with BookSim2's latency moved by 10% (a control; without
/// it a regression of the exit path would let the test above pass
/// whatever the rows say).
#[test]
fn strict_validation_fails_on_a_failing_row() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reference = root.join("../shared/reference/booksim");
    let text = std::fs::read_to_string(reference.join("results.csv")).unwrap();
    let header = text.lines().next().unwrap();
    let name = "uniform_k8_v4_b8_p4_r0.2_latency";
    let row = text.lines().find(|l| l.contains(name)).unwrap();
    let cols: Vec<&str> = header.split(',').collect();
    let lat = cols.iter().position(|c| *c == "avg_pkt_lat").unwrap();
    let dir = common::tmp("strict");
    std::fs::create_dir_all(dir.join("configs")).unwrap();
    let cfg = format!("{name}.cfg");
    std::fs::copy(
        reference.join("configs").join(&cfg),
        dir.join("configs").join(&cfg),
    )
    .unwrap();
    let run = |factor: f64| {
        let mut f: Vec<String> = row.split(',').map(str::to_string).collect();
        let v: f64 = f[lat].parse().unwrap();
        f[lat] = format!("{}", v * factor);
        std::fs::write(
            dir.join("results.csv"),
            format!("{header}\n{}\n", f.join(",")),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_wafernoc"))
            .args(["validate", dir.to_str().unwrap(), "--seeds", "1"])
            .args(["--rule", "literal", "--strict", "--quiet"])
            .args(["--out", dir.join("out").to_str().unwrap()])
            .output()
            .expect("binary runs")
    };
    let good = run(1.0);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    let bad = run(1.1);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
}

/// The 246 BookSim2 runs of tests/data/booksim-extra (4x4 and 16x16
/// meshes, tornado, neighbor, bitrev and shuffle traffic: configurations
/// outside shared/, docs/validation.md "Runs outside shared/") under the
/// same rule. One row is a known failure, explained in docs/validation.md
/// (BookSim2's hop sample at zero load); any other failing row fails this
/// test.
#[test]
fn runs_outside_shared_agree_with_booksim2() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let extra = root.join("tests/data/booksim-extra");
    let out = common::tmp("extra");
    let o = Command::new(env!("CARGO_BIN_EXE_wafernoc"))
        .args(["validate", extra.to_str().unwrap(), "--seeds", "8"])
        .args(["--rule", "statistical", "--checked-only", "--quiet"])
        .args(["--jobs", "2", "--out", out.to_str().unwrap()])
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let csv = std::fs::read_to_string(out.join("validation.csv"))
        .unwrap_or_else(|e| panic!("{e}:\n{stdout}\n{}", String::from_utf8_lossy(&o.stderr)));
    const KNOWN: &[&str] = &["transpose_k4_v4_b8_p4_r0.01_latency"];
    let failing: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter(|l| l.contains(",FAIL"))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert!(
        failing.iter().all(|f| KNOWN.contains(f)),
        "rows failing beyond the known one: {failing:?}\n{stdout}"
    );
    let checked = csv.lines().skip(1).filter(|l| l.contains(",pass")).count();
    assert_eq!(checked + failing.len(), 139, "rows checked:\n{stdout}");
}

/// The knob sets of tests/data/booksim-knobs (BookSim2 runs of
/// allocators, arbiters, stage delays, speculation, credit timing, on/off
/// injection, simulation control, packet rates and mixed packet sizes that
/// shared/ does not cover; provenance in their README), under the same
/// rule. Without this, a knob model could silently regress: with
/// `shared_speculation` forced off in the reader, the `spec` set fails at
/// 0.36 (−7.1%).
#[test]
fn knob_sets_agree_with_booksim2() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let knobs = root.join("tests/data/booksim-knobs");
    let mut sets: Vec<PathBuf> = std::fs::read_dir(&knobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("results.csv").exists())
        .collect();
    sets.sort();
    assert!(sets.len() >= 35, "only {} knob sets found", sets.len());
    let out = common::tmp("knobs");
    let mut checked = 0;
    for set in &sets {
        let dir = out.join(set.file_name().unwrap());
        let o = Command::new(env!("CARGO_BIN_EXE_wafernoc"))
            .args(["validate", set.to_str().unwrap(), "--seeds", "8"])
            .args(["--rule", "statistical", "--checked-only", "--strict"])
            .args(["--quiet", "--jobs", "2", "--out", dir.to_str().unwrap()])
            .output()
            .expect("binary runs");
        assert!(
            o.status.success(),
            "{}: validation failed:\n{}\n{}",
            set.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let csv = std::fs::read_to_string(dir.join("validation.csv")).unwrap();
        checked += csv.lines().skip(1).filter(|l| l.contains(",pass")).count();
    }
    assert!(checked >= 165, "only {checked} knob rows checked");
}

/// The 13 shared rows that pass only by the statistical rule's widening
/// (docs/validation.md, "Against BookSim2's own seeds"), against
/// BookSim2's own 20-seed means (tests/data/booksim-seeds: seeds 0–19 of
/// the same configurations) instead of its single seed-0 run, with the
/// issue's literal tolerances: accepted rate within 3% in every row, mean
/// packet latency within 1 cycle at the zero-load rate 0.01 and within 3%
/// at 0.05. wafernoc's figure is its 8-seed mean, as in `validate`. The
/// three transpose rows near saturation are judged on accepted rate only:
/// there both tools' latencies spread by 9–27% (sd over mean), so 3% is
/// beyond what 8 and 20 runs resolve (docs/validation.md).
#[test]
fn rows_passing_by_widening_meet_literal_tolerances_against_booksim2_seed_means() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reference = root.join("../shared/reference/booksim");
    let seeds = std::fs::read_to_string(root.join("tests/data/booksim-seeds/results.csv"))
        .expect("tests/data/booksim-seeds/results.csv");
    let mut lines = seeds.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let (c_cfg, c_status) = (col("config"), col("status"));
    let (c_lat, c_acc) = (col("avg_pkt_lat"), col("accepted_flits_per_node_cycle"));
    // The 13 rows (docs/validation.md lists them); the file has seeds of
    // every checked row.
    const ROWS: [&str; 13] = [
        "uniform_k8_v2_b4_p1_r0.01",
        "transpose_k8_v2_b4_p1_r0.01",
        "transpose_k8_v2_b4_p1_r0.1",
        "bitcomp_k8_v2_b4_p1_r0.01",
        "uniform_k8_v2_b4_p4_r0.01",
        "uniform_k8_v2_b4_p4_r0.05",
        "uniform_k8_v4_b8_p1_r0.01",
        "transpose_k8_v4_b8_p1_r0.01",
        "transpose_k8_v4_b8_p1_r0.15",
        "bitcomp_k8_v4_b8_p1_r0.01",
        "uniform_k8_v4_b8_p4_r0.01",
        "uniform_k8_v4_b8_p4_r0.05",
        "transpose_k8_v4_b8_p4_r0.15",
    ];
    // config -> (latencies, accepted rates) over BookSim2's seeds.
    let mut bs: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if !ROWS
            .iter()
            .any(|r| f[c_cfg] == format!("configs/{r}_latency.cfg"))
        {
            continue;
        }
        assert_eq!(f[c_status], "ok", "{l}");
        if bs.last().is_none_or(|b| b.0 != f[c_cfg]) {
            bs.push((f[c_cfg].to_string(), Vec::new(), Vec::new()));
        }
        let b = bs.last_mut().unwrap();
        b.1.push(f[c_lat].parse().unwrap());
        b.2.push(f[c_acc].parse().unwrap());
    }
    assert_eq!(bs.len(), 13, "configurations");
    assert!(bs.iter().all(|b| b.1.len() == 20), "20 BookSim2 seeds each");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut judged_latency = 0;
    for (cfg, b_lat, b_acc) in &bs {
        let rate: f64 = cfg
            .rsplit_once("_r")
            .and_then(|(_, r)| r.split('_').next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no rate in {cfg}"));
        let (mut w_lat, mut w_acc) = (Vec::new(), Vec::new());
        for s in 0..8 {
            let o = Command::new(env!("CARGO_BIN_EXE_wafernoc"))
                .arg("booksim")
                .arg(reference.join(cfg))
                .args([format!("seed={s}").as_str(), "--json", "--quiet"])
                .output()
                .expect("binary runs");
            assert!(
                o.status.success(),
                "{cfg} seed {s}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(j["status"], "ok", "{cfg} seed {s}");
            w_lat.push(j["avg_packet_latency"].as_f64().unwrap());
            w_acc.push(j["accepted_flits_per_node_cycle"].as_f64().unwrap());
        }
        let (bl, wl, ba, wa) = (mean(b_lat), mean(&w_lat), mean(b_acc), mean(&w_acc));
        assert!(
            (wa / ba - 1.0).abs() <= 0.03,
            "{cfg}: accepted {wa} against BookSim2's 20-seed mean {ba}"
        );
        if rate <= 0.011 {
            assert!(
                (wl - bl).abs() <= 1.0,
                "{cfg}: zero-load latency {wl} against {bl}"
            );
            judged_latency += 1;
        } else if rate <= 0.05 {
            assert!(
                (wl / bl - 1.0).abs() <= 0.03,
                "{cfg}: latency {wl} against {bl}"
            );
            judged_latency += 1;
        }
    }
    assert_eq!(
        judged_latency, 10,
        "latency judged in the ten low-load rows"
    );
}
