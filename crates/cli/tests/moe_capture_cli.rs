//! `wafernoc moe --capture` → `wafernoc replay-packets`: every phase run of
//! a MoE layer, replayed open loop (recorded cycles) and closed loop
//! (`--mode deps`: dependencies only) on the network stored in the trace,
//! reproduces the original run packet for packet. The original side is
//! produced by the collective runner (`moe --per-packet`, the phase cycles
//! in moe's JSON), the replay side by the replay driver, so a difference in
//! either (timing of dependent packets, network configuration, enqueue
//! order) fails the comparison. Also: file naming with `--routing
//! trace:FILE`, and bad capture paths.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

mod common;
use common::*;

/// The JSONL trace: header object and records.
fn jsonl(p: &Path) -> (serde_json::Value, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines().map(|l| serde_json::from_str(l).unwrap());
    let header = lines.next().unwrap();
    (header, lines.collect())
}

const PHASES: [&str; 3] = ["allreduce", "dispatch", "combine"];

/// A 4x4 ER layer with a bidirectional ring (two rings per group: more
/// dependency chains) and a few tokens per group.
const LAYER: [&str; 15] = [
    "moe",
    "--model",
    "DeepSeek-V3",
    "--mesh",
    "4x4",
    "--tp",
    "4",
    "--dp",
    "4",
    "--mapping",
    "er",
    "--ring",
    "bidirectional",
    "--tokens-per-group",
    "8",
];

fn replay(trace: &Path, mode: &str, per_packet: &Path) -> serde_json::Value {
    let o = wafernoc(&[
        "replay-packets",
        s(trace),
        "--mode",
        mode,
        "--json",
        "--quiet",
        "--per-packet",
        s(per_packet),
    ]);
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn moe_capture_replays_every_phase_exactly_open_and_closed_loop() {
    let t0 = Instant::now();
    let d = tmp("identity");
    let cap = d.join("cap.wnpt");
    let cap_text = d.join("cap.jsonl");
    let pp = d.join("pp.csv");
    let mut args = LAYER.to_vec();
    args.extend(["--json", "--capture", s(&cap), "--per-packet", s(&pp)]);
    let o = wafernoc(&args);
    ok(&o);
    let moe: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The written files are named on stderr and listed in the JSON.
    let err = stderr(&o);
    let listed = moe["capture"].as_array().expect("capture list");
    assert_eq!(listed.len(), 3);
    for (f, ph) in listed.iter().zip(PHASES) {
        let trace = d.join(format!("cap.{ph}.wnpt"));
        let per_packet = d.join(format!("pp.{ph}.csv"));
        assert_eq!(f["phase"], ph);
        assert_eq!(f["trace"], s(&trace));
        assert_eq!(f["per_packet"], s(&per_packet));
        assert_eq!(f["packets"], moe["phases"][ph]["packets"]);
        assert!(err.contains(&format!("wrote {}", s(&trace))), "{err}");
        assert!(trace.is_file() && per_packet.is_file());
    }
    // The same run captured as text (quiet: nothing on stderr).
    let mut args = LAYER.to_vec();
    args.extend(["--json", "--quiet", "--capture", s(&cap_text)]);
    let o = wafernoc(&args);
    ok(&o);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let moe_text: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        moe_text["phases"], moe["phases"],
        "capturing changed the run"
    );

    let mut with_deps = 0;
    for ph in PHASES {
        let p = &moe["phases"][ph];
        let (cycles, packets, flits) = (
            p["cycles"].as_u64().unwrap(),
            p["packets"].as_u64().unwrap(),
            p["flits"].as_u64().unwrap(),
        );
        assert!(packets > 0, "{ph}: empty phase");

        // The network in the trace is the one moe reports it simulated.
        let (header, recs) = jsonl(&d.join(format!("cap.{ph}.jsonl")));
        let meta: serde_json::Value =
            serde_json::from_str(header["meta"].as_str().unwrap()).unwrap();
        let cfg = &moe["config"];
        assert_eq!(meta["phase"], ph);
        assert_eq!(meta["network"]["router"], cfg["router"], "{ph}");
        assert_eq!(meta["network"]["classes"], cfg["classes"], "{ph}");
        assert_eq!(meta["network"]["routing"], cfg["routing_algorithm"]);
        assert_eq!(
            meta["network"]["mesh"]["link_latency"],
            cfg["link_latency_cycles"]
        );
        assert_eq!(header["nodes"], cfg["devices"]);
        assert_eq!(recs.len() as u64, packets);
        with_deps += recs
            .iter()
            .filter(|r| !r["deps"].as_array().unwrap().is_empty())
            .count();

        // The run's own delivered packets (the collective runner's view).
        let mut orig = csv(&d.join(format!("pp.{ph}.csv")));
        assert_eq!(orig.len() as u64, packets, "{ph}: all delivered");
        assert_eq!(orig.iter().map(|r| r[2]).sum::<u64>(), flits, "{ph}");
        orig.sort();

        let mut stats = Vec::new();
        for mode in ["open", "deps"] {
            let out = d.join(format!("r.{ph}.{mode}.csv"));
            let v = replay(&d.join(format!("cap.{ph}.wnpt")), mode, &out);
            // Phase completion: the cycle after the last delivery, as moe
            // printed it.
            assert_eq!(
                v["stats"]["cycles"].as_u64().unwrap(),
                cycles,
                "{ph} {mode}"
            );
            assert_eq!(v["stats"]["packets"].as_u64().unwrap(), packets);
            assert_eq!(v["stats"]["flits"].as_u64().unwrap(), flits);
            let rows = csv(&out);
            // Every packet is created in its recorded cycle: closed loop,
            // this is the dependency rule reproducing the original timing.
            for (r, rec) in rows.iter().zip(&recs) {
                assert_eq!(r[4], rec["cycle"].as_u64().unwrap(), "{ph} {mode} {r:?}");
            }
            // Per packet: src, dst, size, ctime, itime, atime, latency.
            let mut mine: Vec<Vec<u64>> = rows.iter().map(|r| r[1..].to_vec()).collect();
            mine.sort();
            assert_eq!(mine, orig, "{ph} {mode}: per-packet records differ");
            // Latency statistics against the original rows.
            let lat: Vec<f64> = orig.iter().map(|r| r[6] as f64).collect();
            let pl = &v["stats"]["packet_latency"];
            assert_eq!(
                pl["min"].as_f64().unwrap(),
                lat.iter().cloned().fold(f64::MAX, f64::min)
            );
            assert_eq!(
                pl["max"].as_f64().unwrap(),
                lat.iter().cloned().fold(0.0, f64::max)
            );
            let mean = lat.iter().sum::<f64>() / lat.len() as f64;
            assert!((pl["mean"].as_f64().unwrap() - mean).abs() < 1e-9 * mean);
            stats.push(serde_json::to_string(&v["stats"]).unwrap());
        }
        // Byte-identical statistics open vs closed loop.
        assert_eq!(stats[0], stats[1], "{ph}");
        // The text capture replays to the same bytes.
        let o = wafernoc(&[
            "replay-packets",
            s(&d.join(format!("cap.{ph}.jsonl"))),
            "--mode",
            "deps",
            "--json",
            "--quiet",
        ]);
        ok(&o);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            serde_json::to_string(&v["stats"]).unwrap(),
            stats[0],
            "{ph}"
        );

        // `--mode closed` waits the recorded gap after each dependency's
        // delivery, i.e. counts the dependency's latency twice: the ring
        // all-reduce takes longer; the all-to-alls have no dependencies.
        let v = replay(
            &d.join(format!("cap.{ph}.wnpt")),
            "closed",
            &d.join("closed.csv"),
        );
        let closed = v["stats"]["cycles"].as_u64().unwrap();
        if ph == "allreduce" {
            assert!(closed > cycles, "closed {closed} vs {cycles}");
        } else {
            assert_eq!(closed, cycles);
        }
    }
    assert!(with_deps > 100, "{with_deps} packets with dependencies");
    eprintln!("moe capture identity: {:.2} s", t0.elapsed().as_secs_f64());
}

#[test]
fn trace_routing_capture_names_one_file_per_iteration_layer_and_phase() {
    let d = tmp("trace");
    let cap = d.join("cap.wnpt");
    let o = wafernoc(&[
        "moe",
        "--model",
        "gpt-oss-20b",
        "--mesh",
        "4x4",
        "--tp",
        "4",
        "--dp",
        "4",
        "--mapping",
        "er",
        "--routing",
        "trace:traces/gpt-oss-20b/decode_128req.wnrt",
        "--iterations",
        "100..102",
        "--layers",
        "3..4",
        "--json",
        "--quiet",
        "--capture",
        s(&cap),
    ]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = v["runs"].as_array().unwrap();
    let files = v["capture"].as_array().unwrap();
    assert_eq!(files.len(), runs.len() * 3);
    let mut seen = BTreeMap::new();
    for (k, f) in files.iter().enumerate() {
        let r = &runs[k / 3];
        let ph = PHASES[k % 3];
        let (it, layer) = (
            r["iteration"].as_u64().unwrap(),
            r["layer"].as_u64().unwrap(),
        );
        assert_eq!(
            (f["iteration"].as_u64(), f["layer"].as_u64()),
            (Some(it), Some(layer))
        );
        let name = d.join(format!("cap.i{it}.l{layer}.{ph}.wnpt"));
        assert_eq!(f["trace"], s(&name));
        // Closed-loop replay ends in the cycle the run reported.
        let v = replay(&name, "deps", &d.join("r.csv"));
        assert_eq!(v["stats"]["cycles"], r["phases"][ph]["cycles"], "{name:?}");
        assert_eq!(v["stats"]["flits"], r["phases"][ph]["flits"], "{name:?}");
        seen.insert(name, ());
    }
    assert_eq!(seen.len(), 6, "distinct file per iteration, layer, phase");
    assert!(d.join("cap.i101.l3.combine.wnpt").is_file());
}

#[test]
fn bad_capture_paths_are_errors_naming_the_path() {
    let d = tmp("bad");
    let mut args = LAYER.to_vec();
    let bad = d.join("no/such/dir/c.wnpt");
    args.extend(["--quiet", "--capture", s(&bad)]);
    let o = wafernoc(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    // Refused before simulating, naming the path given and its missing
    // directory (the per-phase files are named after it).
    assert!(
        e.contains(s(&bad)) && e.contains("is not a directory"),
        "{e}"
    );
    assert!(o.stdout.is_empty(), "a report was printed before the error");
    assert!(!e.contains("panicked"), "{e}");

    let mut args = LAYER.to_vec();
    let txt = d.join("c.txt");
    args.extend(["--quiet", "--capture", s(&txt)]);
    let o = wafernoc(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("c.txt"), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "nothing simulated on a bad extension");

    let mut args = LAYER.to_vec();
    let pp = d.join("nope/pp.csv");
    args.extend(["--quiet", "--per-packet", s(&pp)]);
    let o = wafernoc(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(s(&pp)) && stderr(&o).contains("is not a directory"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty(), "a report was printed before the error");

    let o = wafernoc(&[
        "moe",
        "--sweep",
        "--out",
        s(&d),
        "--capture",
        s(&d.join("c.wnpt")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--capture"), "{}", stderr(&o));
}
