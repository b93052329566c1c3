//! `wafernoc moe`: JSON contract, determinism, configuration file, outputs,
//! errors that name the parameter, and the quick sweep.

mod common;
use common::*;

const ER_4X4: &[&str] = &[
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
    "--tokens-per-group",
    "8",
    "--json",
    "--quiet",
];

#[test]
fn json_contract_and_determinism() {
    let a = wafernoc(ER_4X4);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = wafernoc(ER_4X4);
    assert_eq!(
        a.stdout, b.stdout,
        "same seed and config must give identical JSON"
    );
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["wafernoc_version"], env!("CARGO_PKG_VERSION"));
    for ph in ["allreduce", "dispatch", "combine"] {
        let p = &v["phases"][ph];
        for k in [
            "cycles",
            "ns",
            "flits",
            "bytes",
            "max_link_utilization",
            "mean_link_utilization",
            "boundary_flits",
            "intra_tile_flits",
            "mean_boundary_utilization",
            "mean_intra_tile_utilization",
            "cold_links",
        ] {
            assert!(!p[k].is_null(), "phases.{ph}.{k} missing");
        }
        assert!(p["cycles"].as_u64().unwrap() > 0);
    }
    assert_eq!(v["phases"]["dispatch"]["boundary_flits"], 0);
    assert_eq!(v["phases"]["combine"]["boundary_flits"], 0);
    let c = &v["config"];
    assert_eq!(c["tile"], "2x2");
    assert_eq!(c["tile_kind"], "ftd");
    assert_eq!(c["ring"], "same");
    assert_eq!(c["routing"], "uniform");
    assert_eq!(c["seed"], 1);
    assert_eq!(c["link_latency_cycles"], 15);
    // One wafer: no crossing link, so no crossing timing.
    assert!(c["cross_wafer_latency_cycles"].is_null());
    assert!(c["cross_wafer_cycles_per_flit"].is_null());
    assert_eq!(c["model"]["hidden"], 7168);
    // A different seed changes the routing draw.
    let mut args = ER_4X4.to_vec();
    args.extend(["--seed", "2"]);
    let d = wafernoc(&args);
    assert!(d.status.success());
    assert_ne!(a.stdout, d.stdout);
}

#[test]
fn config_file_matches_flags_and_flags_override() {
    let dir = tmp("config");
    let f = dir.join("moe.toml");
    std::fs::write(
        &f,
        "model = \"DeepSeek-V3\"\nmesh = \"4x4\"\ntp = 4\ndp = 4\nmapping = \"block\"\ntokens_per_group = 8\n",
    )
    .unwrap();
    let cfg = f.to_str().unwrap();
    let from_file = wafernoc(&[
        "moe",
        "--config",
        cfg,
        "--mapping",
        "er",
        "--json",
        "--quiet",
    ]);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    assert_eq!(from_file.stdout, wafernoc(ER_4X4).stdout);
    // Text output names every phase.
    let t = wafernoc(&["moe", "--config", cfg, "--quiet"]);
    let s = String::from_utf8_lossy(&t.stdout);
    for k in ["allreduce", "dispatch", "combine", "cold links", "boundary"] {
        assert!(s.contains(k), "{s}");
    }
}

/// docs/examples/moe_layer.toml lists every key with its default (where
/// it has one): it gives the same bytes as the flags of its non-default
/// keys alone.
#[test]
fn shipped_example_lists_the_defaults() {
    let file = wafernoc(&[
        "moe",
        "--config",
        "docs/examples/moe_layer.toml",
        "--json",
        "--quiet",
    ]);
    ok(&file);
    assert_eq!(file.stdout, wafernoc(ER_4X4).stdout);
}

fn fails_naming(args: &[&str], needle: &str) {
    let o = wafernoc(args);
    assert!(!o.status.success(), "{args:?} should fail");
    assert_eq!(o.status.code(), Some(2), "{args:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(needle),
        "{args:?}: `{e}` does not name `{needle}`"
    );
}

fn with(over: &[(&str, &str)]) -> Vec<String> {
    let mut v: Vec<String> = ER_4X4.iter().map(|s| s.to_string()).collect();
    for (k, val) in over {
        match v.iter().position(|x| x == k) {
            Some(i) => v[i + 1] = val.to_string(),
            None => {
                v.push(k.to_string());
                v.push(val.to_string());
            }
        }
    }
    v
}

#[test]
fn errors_name_the_parameter() {
    let run = |over: &[(&str, &str)], needle: &str| {
        let v = with(over);
        let a: Vec<&str> = v.iter().map(String::as_str).collect();
        fails_naming(&a, needle);
    };
    run(&[("--mesh", "4y4")], "`mesh`");
    run(&[("--tp", "8")], "`tp`");
    run(&[("--tile", "3x3")], "`tile`");
    run(&[("--tile", "1x3")], "`tile`");
    run(&[("--routing", "zipf:x")], "`routing`");
    run(&[("--routing", "zipf:-1")], "`routing`");
    run(&[("--ring", "clockwise")], "`ring`");
    run(&[("--mapping", "diagonal")], "`mapping`");
    run(&[("--model", "llama")], "`model`");
    run(&[("--alltoall", "everywhere")], "`alltoall`");
    run(&[("--flit-bytes", "0")], "flit_bytes");
    // The user's key and flag, not the engine's name (`max_packet_flits`).
    run(
        &[("--packet-flits", "0")],
        "invalid `packet_flits` (--packet-flits): must be at least 1",
    );
    run(&[("--tokens-per-group", "0")], "`tokens_per_group`");
    run(&[("--mapping", "her"), ("--wafers", "2x1")], "`tp`");
    fails_naming(
        &[
            "moe",
            "--model",
            "DeepSeek-V3",
            "--mesh",
            "4x4",
            "--dp",
            "4",
            "--mapping",
            "er",
            "--tokens-per-group",
            "8",
        ],
        "`tp`",
    );
    fails_naming(&["moe", "--quick"], "`quick`");
    fails_naming(&["moe", "--sweep"], "`out`");
    fails_naming(&["moe", "--sweep", "--out", "/tmp/x", "--tp", "4"], "`tp`");
    // The trace ranges were silently ignored with --sweep until session 15.
    for flag in ["--slots", "--iterations", "--layers"] {
        fails_naming(
            &["moe", "--sweep", "--out", "/tmp/x", flag, "3"],
            &format!("`{}`", &flag[2..]),
        );
    }
    // Unknown or wrongly typed keys in the file.
    let dir = tmp("errors");
    let f = dir.join("bad.toml");
    std::fs::write(&f, "model = \"DeepSeek-V3\"\ntpp = 4\n").unwrap();
    fails_naming(&["moe", "--config", f.to_str().unwrap()], "tpp");
    std::fs::write(&f, "model = \"DeepSeek-V3\"\ntp = \"four\"\n").unwrap();
    fails_naming(&["moe", "--config", f.to_str().unwrap()], "tp");
    std::fs::write(&f, "model = \"DeepSeek-V3\"\n[noc]\nvcs = 4\n").unwrap();
    fails_naming(&["moe", "--config", f.to_str().unwrap()], "vcs");
    fails_naming(
        &["moe", "--config", "/nonexistent/moe.toml"],
        "/nonexistent/moe.toml",
    );
}

#[test]
fn out_dir_has_csv_json_and_heat_maps() {
    let dir = tmp("out");
    let mut args = ER_4X4.to_vec();
    let d = dir.to_str().unwrap().to_string();
    args.extend(["--out", &d]);
    let o = wafernoc(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.join("links.csv")).unwrap();
    // 4x4 mesh: 48 directed links plus the header.
    assert_eq!(csv.lines().count(), 49);
    assert!(csv.starts_with("src,dst,"));
    for ph in ["allreduce", "dispatch", "combine"] {
        let svg = std::fs::read_to_string(dir.join(format!("heatmap_{ph}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
    let j = std::fs::read(dir.join("result.json")).unwrap();
    assert_eq!(j, o.stdout);
}

#[test]
fn hierarchical_two_wafers() {
    let o = wafernoc(&[
        "moe",
        "--model",
        "DeepSeek-V3",
        "--mesh",
        "4x4",
        "--wafers",
        "2x1",
        "--tp",
        "8",
        "--dp",
        "4",
        "--mapping",
        "her",
        "--ring",
        "bidirectional",
        "--tokens-per-group",
        "4",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["config"]["device_mesh"], "4x8");
    assert_eq!(v["config"]["cross_wafer_cycles_per_flit"], 2);
    assert_eq!(v["phases"]["dispatch"]["boundary_flits"], 0);
    assert!(v["phases"]["allreduce"]["boundary_flits"].as_u64().unwrap() > 0);
}

#[test]
fn quick_sweep_writes_table_csv_and_plots() {
    let dir = tmp("sweep");
    let o = wafernoc(&[
        "moe",
        "--sweep",
        "--quick",
        "--tokens-per-group",
        "2",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.join("mapping_sweep.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (m, db, cb) = (
        col("mapping"),
        col("dispatch_boundary_flits"),
        col("combine_boundary_flits"),
    );
    let mut er_rows = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[m] == "er" {
            er_rows += 1;
            assert_eq!((f[db], f[cb]), ("0", "0"), "{line}");
        }
    }
    assert!(er_rows >= 12);
    let md = std::fs::read_to_string(dir.join("mapping_sweep.md")).unwrap();
    assert!(md.contains("| DeepSeek-V3 | 8x8 |"));
    for svg in [
        "alltoall_block_vs_er.svg",
        "total_block_vs_er.svg",
        "total_block_vs_er_best_ring.svg",
        "alltoall_vs_mesh.svg",
        "allreduce_ring_policy.svg",
        "hot_cold_links.svg",
    ] {
        assert!(
            std::fs::read_to_string(dir.join(svg))
                .unwrap()
                .starts_with("<svg"),
            "{svg}"
        );
    }
}

/// When the devices do not divide the experts, the text report says how
/// they were replicated (it said "128 experts < 9 devices", which is
/// false), and the JSON carries the same figures.
#[test]
fn replication_is_reported_as_it_is() {
    let base = [
        "moe",
        "--model",
        "qwen3-235b",
        "--mesh",
        "3x3",
        "--tp",
        "3",
        "--dp",
        "3",
        "--mapping",
        "er",
        "--tokens-per-group",
        "8",
        "--quiet",
    ];
    let o = wafernoc(&base);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(
            "9 devices do not divide 128 experts: 9 replicas per expert (1152 virtual experts, lcm)"
        ),
        "{text}"
    );
    let mut args = base.to_vec();
    args.push("--json");
    let o = wafernoc(&args);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["config"]["expert_replicas"], 9);
    assert_eq!(v["config"]["virtual_experts"], 1152);
}
