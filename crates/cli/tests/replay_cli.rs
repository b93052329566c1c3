//! `--capture` and `wafernoc replay-packets`: a captured synthetic run
//! replayed open loop reproduces every packet's latency exactly, closed-loop
//! dependency timing, and bad input (node-count mismatch, truncated trace,
//! unknown mode) with clear errors.

use std::path::{Path, PathBuf};

mod common;
use common::*;

const SMALL: &str = "tests/data/small.toml";

#[test]
fn capture_then_replay_gives_identical_per_packet_latencies_and_statistics() {
    let d = tmp("identity");
    let cap = d.join("cap.wnpt");
    let cap_text = d.join("cap.jsonl");
    let run_csv = d.join("run.csv");
    let rep_csv = d.join("rep.csv");
    let o = wafernoc(&[
        "run",
        SMALL,
        "--quiet",
        "--json",
        "--capture",
        s(&cap),
        "--per-packet",
        s(&run_csv),
    ]);
    ok(&o);
    // The same run captured in the text encoding is the same trace.
    let o = wafernoc(&["run", SMALL, "--quiet", "--capture", s(&cap_text)]);
    ok(&o);

    let o = wafernoc(&[
        "replay-packets",
        s(&cap),
        "--config",
        SMALL,
        "--json",
        "--quiet",
        "--per-packet",
        s(&rep_csv),
    ]);
    ok(&o);
    let json_a = o.stdout.clone();

    // Every packet the run delivered (latency mode drains them all) appears
    // in the replay with identical src, dst, size, ctime, itime and atime.
    let mut run_rows = csv(&run_csv);
    let rep_rows = csv(&rep_csv);
    assert!(run_rows.len() > 1000, "{} packets", run_rows.len());
    assert_eq!(run_rows.len(), rep_rows.len());
    for (i, r) in rep_rows.iter().enumerate() {
        assert_eq!(r[0], i as u64, "ids are dense");
    }
    let mut rep_no_id: Vec<Vec<u64>> = rep_rows.iter().map(|r| r[1..].to_vec()).collect();
    run_rows.sort();
    rep_no_id.sort();
    assert_eq!(run_rows, rep_no_id, "per-packet records differ");

    // Ids follow enqueue order: creation cycles never decrease by id.
    assert!(rep_rows.windows(2).all(|w| w[0][4] <= w[1][4]));

    // Statistics of the replay equal those computed from the run's own
    // per-packet latencies (nearest-rank percentiles, as the engine).
    let mut lat: Vec<f64> = run_rows.iter().map(|r| r[6] as f64).collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let n = lat.len();
    let pct = |q: f64| lat[(((q / 100.0) * n as f64).ceil() as usize).clamp(1, n) - 1];
    let v: serde_json::Value = serde_json::from_slice(&json_a).unwrap();
    let pl = &v["stats"]["packet_latency"];
    assert_eq!(pl["count"].as_u64().unwrap(), n as u64);
    assert_eq!(
        pl["mean"].as_f64().unwrap(),
        lat.iter().sum::<f64>() / n as f64
    );
    assert_eq!(pl["min"].as_f64().unwrap(), lat[0]);
    assert_eq!(pl["max"].as_f64().unwrap(), lat[n - 1]);
    assert_eq!(pl["p50"].as_f64().unwrap(), pct(50.0));
    assert_eq!(pl["p95"].as_f64().unwrap(), pct(95.0));
    assert_eq!(pl["p99"].as_f64().unwrap(), pct(99.0));
    assert_eq!(v["stats"]["packets"].as_u64().unwrap(), n as u64);

    // Identical statistics and resolved network: the text capture, and the
    // network taken from the trace's own meta instead of --config (the
    // JSON differs only in naming the trace and where the network came
    // from).
    let same = |out: &[u8], what: &str| {
        let w: serde_json::Value = serde_json::from_slice(out).unwrap();
        for k in ["stats", "network", "mode", "time_scale", "wafernoc_version"] {
            assert_eq!(w[k], v[k], "{what}: `{k}` differs");
        }
        w
    };
    let o = wafernoc(&["replay-packets", s(&cap_text), "--json", "--quiet"]);
    ok(&o);
    let w = same(&o.stdout, "text capture");
    assert_eq!(w["trace"].as_str(), Some(s(&cap_text)));
    let o = wafernoc(&["replay-packets", s(&cap), "--json", "--quiet"]);
    ok(&o);
    let w = same(&o.stdout, "meta network");
    assert!(
        w["network_from"]
            .as_str()
            .unwrap()
            .ends_with("the network in its meta"),
        "{w}"
    );
    assert_eq!(v["network_from"].as_str(), Some(SMALL));

    // The text summary has the documented lines.
    let o = wafernoc(&["replay-packets", s(&cap), "--config", SMALL, "--quiet"]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    for line in [
        "Packet latency average =",
        "Packet latency percentiles: p50 =",
        "Accepted flit rate average =",
        "Time taken is",
    ] {
        assert!(out.contains(line), "missing `{line}` in\n{out}");
    }
}

fn write_trace(d: &Path, nodes: u32, records: &[&str]) -> PathBuf {
    let p = d.join("t.jsonl");
    let mut text = format!(
        "{{\"wafernoc_packet_trace\": 1, \"nodes\": {nodes}, \"unit\": \"flits\", \"meta\": \"\"}}\n"
    );
    for r in records {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn closed_loop_waits_for_dependencies_plus_the_recorded_gap() {
    let d = tmp("closed");
    let t = write_trace(
        &d,
        16,
        &[
            r#"{"id":0,"cycle":0,"src":0,"dst":15,"size":4}"#,
            r#"{"id":1,"cycle":5,"src":15,"dst":0,"size":4,"deps":[0]}"#,
            r#"{"id":2,"cycle":7,"src":3,"dst":12,"size":2}"#,
        ],
    );
    let csv_open = d.join("open.csv");
    let csv_closed = d.join("closed.csv");
    for (mode, out) in [("open", &csv_open), ("closed", &csv_closed)] {
        let o = wafernoc(&[
            "replay-packets",
            s(&t),
            "--config",
            SMALL,
            "--mode",
            mode,
            "--quiet",
            "--per-packet",
            s(out),
        ]);
        ok(&o);
    }
    let open = csv(&csv_open);
    let closed = csv(&csv_closed);
    // Open loop: recorded cycles.
    assert_eq!((open[0][4], open[1][4], open[2][4]), (0, 5, 7));
    // Closed loop: packet 1 is created one cycle after packet 0's delivery
    // plus the recorded gap 5 - 0; packet 2 has no dependencies.
    assert_eq!(closed[1][4], closed[0][6] + 1 + 5);
    assert_eq!(closed[2][4], 7);

    // Time scale 2: recorded cycles doubled.
    let o = wafernoc(&[
        "replay-packets",
        s(&t),
        "--config",
        SMALL,
        "--time-scale",
        "2",
        "--quiet",
        "--per-packet",
        s(&csv_open),
    ]);
    ok(&o);
    let scaled = csv(&csv_open);
    assert_eq!((scaled[1][4], scaled[2][4]), (10, 14));

    // A header-only trace: no zeros posing as measured figures.
    let empty = write_trace(&d, 16, &[]);
    let o = wafernoc(&["replay-packets", s(&empty), "--config", SMALL, "--quiet"]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("Packets replayed = 0 (0 flits): no latency, hops or accepted rate"),
        "{out}"
    );
    assert!(!out.contains("average"), "{out}");
}

#[test]
fn replay_bad_input_is_a_clear_error() {
    let d = tmp("bad");
    // Node count mismatch names both counts.
    let t = write_trace(&d, 9, &[r#"{"id":0,"cycle":0,"src":0,"dst":8,"size":1}"#]);
    let o = wafernoc(&["replay-packets", s(&t), "--config", SMALL]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("9 nodes") && e.contains("16") && e.contains("t.jsonl"),
        "{e}"
    );

    // No network: the trace's meta holds none and no config was given.
    let t16 = write_trace(&d, 16, &[r#"{"id":0,"cycle":0,"src":0,"dst":8,"size":1}"#]);
    let o = wafernoc(&["replay-packets", s(&t16)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--config or --booksim"),
        "{}",
        stderr(&o)
    );

    // Unknown mode.
    let o = wafernoc(&[
        "replay-packets",
        s(&t16),
        "--config",
        SMALL,
        "--mode",
        "sideways",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("sideways"), "{}", stderr(&o));

    // Bad time scale.
    let o = wafernoc(&[
        "replay-packets",
        s(&t16),
        "--config",
        SMALL,
        "--time-scale",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--time-scale"), "{}", stderr(&o));

    // Truncated binary trace: the error names the file, no panic, no output.
    let cap = d.join("cap.wnpt");
    ok(&wafernoc(&["run", SMALL, "--quiet", "--capture", s(&cap)]));
    let bytes = std::fs::read(&cap).unwrap();
    let cut = d.join("cut.wnpt");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    let o = wafernoc(&["replay-packets", s(&cut), "--config", SMALL, "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("cut.wnpt") && e.contains("truncated"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(o.stdout.is_empty(), "partial output on a truncated trace");

    // Capture to an unwritable path or an unknown extension is reported.
    let o = wafernoc(&[
        "run",
        SMALL,
        "--quiet",
        "--capture",
        s(&d.join("no/such/dir/c.wnpt")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("c.wnpt"), "{}", stderr(&o));
    let o = wafernoc(&["run", SMALL, "--quiet", "--capture", s(&d.join("c.txt"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("c.txt"), "{}", stderr(&o));
}

/// A trace path may be a pipe (`cat FILE | wafernoc ... /dev/stdin`):
/// the file is opened and read once, so the bytes that format detection
/// reads are not lost (they were, before session 24: "wrong magic").
/// Every reader of a trace path is covered: replay, stats of both kinds,
/// convert and a routing trace given to `moe`.
#[test]
fn a_trace_can_be_read_from_a_pipe() {
    // `{}` in `args` is the trace path: the file, then /dev/stdin with the
    // file piped in; the outputs must agree but for the path.
    let same = |trace: &str, args: &[&str]| {
        let with =
            |path: &str| -> Vec<String> { args.iter().map(|a| a.replace("{}", path)).collect() };
        let (fa, pa) = (with(trace), with("/dev/stdin"));
        let f = wafernoc(&fa.iter().map(String::as_str).collect::<Vec<_>>());
        ok(&f);
        let p = wafernoc_piped(trace, &pa.iter().map(String::as_str).collect::<Vec<_>>());
        ok(&p);
        let text = |o: &std::process::Output| {
            String::from_utf8_lossy(&o.stdout).replace(trace, "/dev/stdin")
        };
        assert_eq!(text(&p), text(&f), "{pa:?}");
    };
    let pkt = "traces/examples/packets_small.wnpt";
    let jsonl = "traces/examples/packets_small.jsonl";
    let rt = "traces/gpt-oss-20b/decode_128req.wnrt";
    // The example's two classes (traces/examples/README.md).
    let classes = "network.classes=[{name=\"request\",vcs=1,priority=0},\
                   {name=\"reply\",vcs=1,priority=0}]";
    for t in [pkt, jsonl] {
        same(
            t,
            &[
                "replay-packets",
                "{}",
                "--config",
                SMALL,
                "--set",
                classes,
                "--mode",
                "closed",
                "--json",
            ],
        );
        same(t, &["trace", "stats", "{}"]);
    }
    same(rt, &["trace", "stats", "{}", "--slots", "64"]);
    let mut moe = gpt_oss_4x8("moe", "4", "8");
    moe.extend(["--mapping", "er", "--iterations", "100..101"]);
    moe.extend(["--routing", "trace:{}", "--quiet", "--json"]);
    same(rt, &moe);
    // convert: the same bytes out.
    let d = tmp("pipe");
    let (a, b) = (d.join("a.wnpt"), d.join("b.wnpt"));
    ok(&wafernoc(&["trace", "convert", jsonl, s(&a)]));
    ok(&wafernoc_piped(
        jsonl,
        &["trace", "convert", "/dev/stdin", s(&b)],
    ));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}
