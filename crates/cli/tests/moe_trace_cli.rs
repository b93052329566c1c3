//! `wafernoc moe --routing trace:FILE` and `wafernoc demo`: captured
//! routing drives dispatch and combine.

mod common;
use common::*;

const GPT: &str = "trace:traces/gpt-oss-20b/decode_128req.wnrt";

/// One GPT-OSS-20B layer on 4×4 from the shipped trace, by flags.
fn gpt_4x4() -> Vec<&'static str> {
    let mut v = gpt_oss("moe", "4x4", "2", "8");
    v.extend(["--mapping", "er", "--routing", GPT]);
    v
}

#[test]
fn trace_routing_runs_every_iteration_and_layer() {
    let args = [
        "moe",
        "--model",
        "gpt-oss-20b",
        "--mesh",
        "4x8",
        "--tp",
        "4",
        "--dp",
        "8",
        "--mapping",
        "er",
        "--routing",
        GPT,
        "--iterations",
        "100..102",
        "--layers",
        "0..3",
        "--json",
        "--quiet",
    ];
    let a = wafernoc(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = wafernoc(&args);
    assert_eq!(a.stdout, b.stdout, "same trace, same bytes");
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for r in runs {
        assert_eq!(r["tokens"], 64);
        // ER confines the all-to-all to FTD tiles.
        assert_eq!(r["phases"]["dispatch"]["boundary_flits"], 0);
        assert_eq!(r["phases"]["combine"]["boundary_flits"], 0);
        assert!(r["phases"]["dispatch"]["cycles"].as_u64().unwrap() > 0);
    }
    // Different layers route differently.
    assert_ne!(runs[0]["phases"]["dispatch"], runs[1]["phases"]["dispatch"]);
}

#[test]
fn trace_routing_errors_are_named() {
    let o = wafernoc(&[
        "moe",
        "--model",
        "deepseek-v3",
        "--mesh",
        "8x8",
        "--tp",
        "8",
        "--dp",
        "8",
        "--mapping",
        "er",
        "--routing",
        GPT,
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match model"));
    let o = wafernoc(&[
        "moe",
        "--model",
        "gpt-oss-20b",
        "--mesh",
        "4x8",
        "--tp",
        "4",
        "--dp",
        "8",
        "--mapping",
        "er",
        "--routing",
        GPT,
        "--layers",
        "30",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("24 layers"));
    let o = wafernoc(&[
        "moe",
        "--model",
        "gpt-oss-20b",
        "--mesh",
        "4x8",
        "--tp",
        "4",
        "--dp",
        "8",
        "--mapping",
        "er",
        "--tokens-per-group",
        "8",
        "--slots",
        "4",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("trace:FILE"));
    // A trace gives its own tokens: drawn-routing flags would be ignored.
    for extra in [["--tokens-per-group", "1000"], ["--seed", "99"]] {
        let mut args = gpt_4x4();
        args.push("--quiet");
        args.extend(extra);
        let o = wafernoc(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr)
                .contains("are for drawn (uniform or zipf) routing; a trace gives its own tokens"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn demo_prints_a_report() {
    let o = wafernoc(&["demo", "--iterations", "1", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ER vs block"), "{out}");
    assert!(out.contains("block") && out.contains("er "), "{out}");
    assert!(
        out.contains("boundary flits: "),
        "the table's legend: {out}"
    );
}

/// Was: outside the clone's root the default trace was not found ("No
/// such file or directory"); it is now also looked up in the source tree
/// the binary was built from.
#[test]
fn demo_runs_from_any_directory() {
    let dir = std::env::temp_dir();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wafernoc"))
        .args(["demo", "--iterations", "1", "--quiet", "--json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["command"], "demo");
    assert_eq!(v["config"]["tp"], 4);
    assert_eq!(v["config"]["wafer"]["flit_bytes"], 256);
    let trace = v["trace"].as_str().unwrap();
    assert!(
        std::path::Path::new(trace).is_absolute()
            && trace.ends_with("traces/gpt-oss-20b/decode_128req.wnrt"),
        "{trace}"
    );
}

/// The example packet trace replays as its README says (two classes).
#[test]
fn example_packet_trace_replays_as_documented() {
    let readme = std::fs::read_to_string(common::root().join("traces/examples/README.md")).unwrap();
    let set =
        r#"network.classes=[{name="request",vcs=1,priority=0},{name="reply",vcs=1,priority=0}]"#;
    assert!(readme.contains(set), "README lost the command");
    let o = wafernoc(&[
        "replay-packets",
        "traces/examples/packets_small.wnpt",
        "--config",
        "tests/data/small.toml",
        "--set",
        set,
        "--mode",
        "closed",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Packets replayed = 11"));
}

/// A trace named in a `--config` file is found relative to that file's
/// directory (the command runs in the repository root; the file and the
/// trace are in a scratch directory), and the result equals the same run
/// given by flags.
#[test]
fn config_trace_is_relative_to_the_config_file() {
    let d = tmp("moe-config-trace");
    std::fs::copy(
        root().join("traces/gpt-oss-20b/decode_128req.wnrt"),
        d.join("t.wnrt"),
    )
    .unwrap();
    let cfg = d.join("m.toml");
    std::fs::write(
        &cfg,
        "model = \"gpt-oss-20b\"\nmesh = \"4x4\"\ntp = 2\ndp = 8\nmapping = \"er\"\n\
         routing = \"trace:t.wnrt\"\n",
    )
    .unwrap();
    let by_file = wafernoc(&[
        "moe",
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    ok(&by_file);
    let by_flags = wafernoc(&[&gpt_4x4()[..], &["--json", "--quiet"]].concat());
    ok(&by_flags);
    let strip = |o: &std::process::Output| {
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["routing"] = serde_json::Value::Null;
        v
    };
    assert_eq!(strip(&by_file), strip(&by_flags));
}

/// A run in which one expert receives every token (the GPT-OSS trace's
/// first decode tokens) is flagged in the JSON and noted in the report;
/// a later iteration is not.
#[test]
fn an_iteration_where_one_expert_takes_every_token_is_flagged() {
    let run = |its: &str, json: bool| {
        let mut args = gpt_4x4();
        args.extend(["--iterations", its, "--quiet"]);
        if json {
            args.push("--json");
        }
        let o = wafernoc(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let flag = |its: &str| {
        let v: serde_json::Value = serde_json::from_str(&run(its, true)).unwrap();
        let r = &v["runs"][0];
        // The flag says exactly what the load figure shows: max/mean is
        // experts / top_k (32 / 4) when one expert has every token.
        let skew = r["expert_load_max_over_mean"].as_f64().unwrap();
        let f = r["one_expert_takes_every_token"].as_bool().unwrap();
        assert_eq!(f, (skew - 8.0).abs() < 1e-9, "{r}");
        f
    };
    assert!(flag("0"));
    assert!(!flag("100"));
    assert!(run("0", false).contains("note: in 1 of 1 runs (the first: iteration 0, layer 0)"));
    assert!(!run("100", false).contains("note:"));
}

/// `trace stats --slots` on a prefill trace is continuous batching, where
/// `moe` and `balance` read `--slots` as chunk tokens: the command says so
/// (on stderr), and only then.
#[test]
fn trace_stats_slots_on_a_prefill_trace_notes_the_other_meaning() {
    let esft = "traces/deepseek-esft/intent.wnrt";
    let o = wafernoc(&["trace", "stats", esft, "--slots", "64", "--json"]);
    ok(&o);
    assert!(
        stderr(&o).contains("which is --chunk 64 here"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["batching"].to_string().contains("continuous"), "{v}");
    for args in [
        &["trace", "stats", esft, "--chunk", "64", "--json"][..],
        &[
            "trace",
            "stats",
            "traces/gpt-oss-20b/decode_128req.wnrt",
            "--slots",
            "64",
        ],
    ] {
        let o = wafernoc(args);
        ok(&o);
        assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    }
}
