//! `wafernoc balance`: serving iterations with balancing and migration.

use wafernoc_trace::{iterations, Batching, RoutingTrace};

mod common;
use common::*;

fn json(args: &[&str]) -> serde_json::Value {
    let o = wafernoc(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

const GPT: &str = "traces/gpt-oss-20b/decode_128req.wnrt";

fn gpt_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = gpt_oss_4x8("balance", "4", "8");
    v.extend([
        "--routing",
        "trace:traces/gpt-oss-20b/decode_128req.wnrt",
        "--json",
        "--quiet",
    ]);
    v.extend_from_slice(extra);
    v
}

/// `balance` of GPT-OSS-20B on 4x8 with Zipf routing, no balancer,
/// `--json --quiet`, the plan `tp` x `dp` and `extra` flags (word per
/// whitespace).
fn zipf_json(tp: &str, dp: &str, extra: &str) -> serde_json::Value {
    let mut args = gpt_oss_4x8("balance", tp, dp);
    args.extend([
        "--routing",
        "zipf:1.0",
        "--balancer",
        "none",
        "--json",
        "--quiet",
    ]);
    args.extend(extra.split_whitespace());
    json(&args)
}

/// Without balancing every device hosts one expert (32 experts, 32 devices),
/// so the device load ratio is the expert load ratio, computed here straight
/// from the trace.
#[test]
fn unbalanced_load_ratio_matches_the_trace() {
    let v = json(&gpt_args(&[
        "--balancer",
        "none",
        "--iterations",
        "100..103",
        "--layers",
        "3",
    ]));
    let trace = RoutingTrace::load(&root().join(GPT)).unwrap();
    let its: Vec<_> = iterations(&trace, Batching::Continuous { slots: 64 })
        .unwrap()
        .skip(100)
        .take(3)
        .collect();
    let rows = v["iterations"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let mut mean = 0.0;
    for (row, it) in rows.iter().zip(&its) {
        let mut ratio = 0.0;
        for layer in 0..3 {
            let mut loads = [0u64; 32];
            for ex in it.experts(&trace, layer) {
                for &e in ex {
                    loads[e as usize] += 1;
                }
            }
            let total: u64 = loads.iter().sum();
            ratio += *loads.iter().max().unwrap() as f64 / (total as f64 / 32.0);
        }
        ratio /= 3.0;
        let got = row["max_over_mean_load"].as_f64().unwrap();
        assert!((got - ratio).abs() < 1e-9, "{got} vs {ratio}");
        assert_eq!(row["tokens"].as_u64().unwrap(), it.tokens.len() as u64);
        mean += ratio / 3.0;
    }
    let s = &v["summary"];
    assert!((s["mean_max_over_mean_load"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert_eq!(s["migrations_planned"], 0);
    assert_eq!(s["critical_path_added_ns"].as_f64().unwrap(), 0.0);
    assert_eq!(v["config"]["first_iteration"], 100);
}

#[test]
fn blocking_and_non_invasive_on_the_trace() {
    let common = ["--iterations", "100..103", "--layers", "2"];
    let mut b = gpt_args(&common);
    b.extend_from_slice(&["--balancer", "topology", "--migration", "blocking"]);
    let b = json(&b);
    let mut n = gpt_args(&common);
    n.extend_from_slice(&["--balancer", "topology", "--migration", "non-invasive"]);
    let n = json(&n);
    for k in [
        "mean_max_over_mean_load",
        "moe_compute_ns",
        "alltoall_ns",
        "allreduce_ns",
        "migration_bytes",
        "migration_byte_hops",
        "critical_path_added_ns",
    ] {
        assert!(b["summary"][k].is_number(), "{k}");
        assert!(n["summary"][k].is_number(), "{k}");
    }
    // The first round of decisions sees the same state under both engines
    // (later ones differ: blocking copies are live by then, non-invasive ones
    // still pending).
    assert_eq!(
        b["iterations"][0]["migration_bytes"],
        n["iterations"][0]["migration_bytes"]
    );
    assert!(b["iterations"][0]["migration_bytes"].as_u64().unwrap() > 0);
    assert!(b["summary"]["critical_path_added_ns"].as_f64().unwrap() > 0.0);
    let dev = n["summary"]["max_phase_deviation"].as_f64().unwrap();
    assert!(dev <= 0.01, "non-invasive deviates {dev}");
    assert_eq!(
        n["reference_iterations"].as_array().unwrap().len(),
        n["iterations"].as_array().unwrap().len()
    );
    // Without the reference run the added time is not measured: null, not
    // a zero that a merged sweep could not tell from a measured one.
    let mut q = gpt_args(&common);
    q.extend_from_slice(&["--balancer", "topology", "--migration", "non-invasive"]);
    q.push("--no-reference");
    let q = json(&q);
    assert!(
        q["summary"]["critical_path_added_ns"].is_null(),
        "{}",
        q["summary"]
    );
    assert!(q["summary"]["max_phase_deviation"].is_null());
    for row in q["iterations"].as_array().unwrap() {
        assert!(row["critical_path_added_ns"].is_null(), "{row}");
    }
    assert_eq!(
        q["summary"]["moe_compute_ns"],
        n["summary"]["moe_compute_ns"]
    );
}

#[test]
fn out_dir_has_csv_and_plots() {
    let dir = tmp("balance");
    let o = wafernoc(&[
        "balance",
        "--model",
        "gpt-oss-20b",
        "--mesh",
        "4x8",
        "--tp",
        "4",
        "--dp",
        "8",
        "--routing",
        "zipf:1.0",
        "--iterations",
        "4",
        "--layers",
        "2",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.join("iterations.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("iteration,trace_iteration,tokens,max_over_mean_load,"));
    for f in [
        "result.json",
        "load.svg",
        "times.svg",
        "links_attention_migration.svg",
        "links_moe_migration.svg",
        "links_attention_collective.svg",
        "links_moe_collective.svg",
    ] {
        let t = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(!t.is_empty(), "{f}");
    }
    // The load plot shows perfect balance and the trigger (default alpha).
    let load = std::fs::read_to_string(dir.join("load.svg")).unwrap();
    assert!(load.contains("perfect balance"), "{load}");
    assert!(load.contains("trigger (1 + alpha = 1.2)"), "{load}");
}

#[test]
fn bad_arguments_are_named() {
    let mut base = gpt_oss_4x8("balance", "4", "8");
    base.push("--quiet");
    let cases: &[(&[&str], &str)] = &[
        (&["--routing", "zipf:1", "--balancer", "best"], "balancer"),
        (&["--routing", "zipf:1", "--migration", "fast"], "migration"),
        (
            &["--routing", "zipf:1", "--predictor", "ema:2"],
            "predictor",
        ),
        (
            &["--routing", "zipf:1", "--iterations", "5..3"],
            "iterations",
        ),
        (&["--routing", "zipf:1", "--layers", "99"], "layers"),
        (
            &["--routing", "zipf:1", "--layers", "0..4"],
            "--layers takes a count L",
        ),
        (&["--routing", "zipf:1", "--alpha", "-1"], "--alpha"),
        (&["--routing", "zipf:1", "--slots", "8"], "slots"),
        (&["--routing", "zipf:1", "--alpha=-1"], "--alpha"),
        (
            &["--routing", "zipf:1", "--window-packets", "0"],
            "--window-packets",
        ),
        (&["--routing", "zipf:1", "--mapping", "ring"], "mapping"),
        (&["--routing", "poisson"], "routing"),
        (
            &["--routing", "trace:traces/deepseek-esft/intent.wnrt"],
            "does not match model",
        ),
        (&["--routing", "trace:nowhere.wnrt"], "nowhere.wnrt"),
        (
            &["--routing", "zipf:1", "--gpu-port-gbps", "900"],
            "give --gpu-baseline GPUS too",
        ),
        (
            &["--routing", "zipf:1", "--gpu-baseline", "0"],
            "invalid --gpu-baseline",
        ),
        (
            &["--routing", "zipf:1", "--gpu-baseline", "1000000000"],
            "must be at most 65536",
        ),
        (
            &[
                "--routing",
                "zipf:1",
                "--gpu-baseline",
                "8",
                "--gpu-latency-ns",
                "1e308",
            ],
            "must be at most 1e15",
        ),
        (
            &[
                "--routing",
                "zipf:1",
                "--gpu-baseline",
                "8",
                "--gpu-port-gbps",
                "0",
            ],
            "invalid --gpu-port-gbps",
        ),
        (
            &[
                "--routing",
                "zipf:1",
                "--gpu-baseline",
                "8",
                "--gpu-latency-ns=-1",
            ],
            "invalid --gpu-latency-ns",
        ),
        (
            &[
                "--routing",
                "zipf:1",
                "--gpu-baseline",
                "8",
                "--tokens-per-group",
                "6",
            ],
            "not a multiple of --tp 4",
        ),
        (
            &[
                "--routing",
                "trace:traces/gpt-oss-20b/decode_128req.wnrt",
                "--slots",
                "4",
                "--gpu-baseline",
                "5",
            ],
            "--slots 4 x 5 GPUs is not a multiple of the wafer's 32 devices",
        ),
        (
            &[
                "--routing",
                "trace:traces/gpt-oss-20b/decode_128req.wnrt",
                "--slots",
                "4",
                "--gpu-baseline",
                "6",
            ],
            "a multiple of 16 slots works",
        ),
        (
            &[
                "--routing",
                "trace:traces/gpt-oss-20b/decode_128req.wnrt",
                "--iterations",
                "900..982",
                "--gpu-baseline",
                "64",
            ],
            "the GPUs' batches of 128 slots",
        ),
        (
            &[
                "--routing",
                "trace:traces/gpt-oss-20b/decode_128req.wnrt",
                "--iterations",
                "5000",
            ],
            "iterations",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = base.clone();
        args.extend_from_slice(extra);
        let o = wafernoc(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
    }
}

/// `--gpu-baseline`: the GPU side holds as many tokens per device as the
/// wafer, sends `k` copies per token, and the summary and the per-device
/// ratio are the sums of the rows (wafer: dispatch + compute + combine +
/// blocking wait; GPUs: dispatch + compute + combine).
#[test]
fn gpu_baseline_is_consistent() {
    let v = zipf_json(
        "4",
        "8",
        "--tokens-per-group 16 --iterations 3 --layers 2 --gpu-baseline 8 --gpu-latency-ns 100",
    );
    let g = &v["gpu_baseline"];
    assert_eq!(g["gpus"], 8);
    assert_eq!(g["tokens_per_device"], 4);
    assert_eq!(v["config"]["gpu_baseline"]["cluster"]["latency_ns"], 100.0);
    let rows = g["iterations"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let f = |x: &serde_json::Value| x.as_f64().unwrap();
    let mut gpu = 0.0;
    for r in rows {
        // 8 GPUs x 4 tokens x top-4 x 2 layers.
        assert_eq!(r["token_copies"], 8 * 4 * 4 * 2);
        let moe = f(&r["dispatch_ns"]) + f(&r["compute_ns"]) + f(&r["combine_ns"]);
        assert!((f(&r["moe_ns"]) - moe).abs() <= 1e-9 * moe);
        // Both all-to-all phases of both layers moved data: latency paid.
        assert!(f(&r["dispatch_ns"]) > 2.0 * 100.0);
        gpu += f(&r["moe_ns"]);
    }
    assert!((f(&g["summary"]["moe_ns"]) - gpu).abs() <= 1e-9 * gpu);
    let wafer: f64 = v["iterations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            f(&r["dispatch_ns"])
                + f(&r["moe_compute_ns"])
                + f(&r["combine_ns"])
                + f(&r["migration_stall_ns"])
        })
        .sum();
    assert!((f(&g["wafer_moe_ns"]) - wafer).abs() <= 1e-9 * wafer);
    assert!((f(&g["wafer_over_gpu_per_device"]) - gpu / wafer).abs() <= 1e-12 * (gpu / wafer));
    let wsum = |k: &str| -> f64 {
        v["iterations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| f(&r[k]))
            .sum()
    };
    let (allreduce, attention) = (wsum("allreduce_ns"), wsum("attention_ns"));
    assert!(allreduce > 0.0, "TP4 has an all-reduce");
    assert_eq!(f(&g["wafer_allreduce_ns"]), allreduce);
    assert_eq!(f(&g["wafer_attention_ns"]), attention);
    let gpu_attention: f64 = rows.iter().map(|r| f(&r["attention_ns"])).sum();
    assert_eq!(f(&g["summary"]["attention_ns"]), gpu_attention);
    // Data-parallel attention reads all 4 H^2 projection weights on every
    // GPU (TP4 on the wafer reads a quarter on every die): memory-bound
    // at 4 tokens per device, so 4x the wafer's.
    assert!((gpu_attention - 4.0 * attention).abs() <= 1e-6 * attention);
    let layer = (gpu_attention + gpu) / (attention + allreduce + wafer);
    assert!((f(&g["wafer_over_gpu_per_device_layer"]) - layer).abs() <= 1e-12 * layer);
    // Without the flag there is no baseline and no config key.
    let plain = zipf_json("4", "8", "--iterations 1 --layers 1");
    assert!(plain.get("gpu_baseline").is_none());
    assert!(plain["config"].get("gpu_baseline").is_none());
}

/// `--context` adds the KV-cache read to every layer's attention, on the
/// wafer and on the GPUs, and a cache too large for HBM is refused before
/// anything is simulated. GPT-OSS: 2048 B per token and layer over 8 KV
/// heads, a 128-token window on layer 0; attention stays memory-bound.
#[test]
fn context_reads_the_kv_cache() {
    let run = |extra: &str| {
        zipf_json(
            "4",
            "8",
            &format!("--iterations 1 --layers 2 --gpu-baseline 32 {extra}"),
        )
    };
    let (plain, kv) = (run(""), run("--context 4096"));
    let f = |v: &serde_json::Value, k: &str| v["iterations"][0][k].as_f64().unwrap();
    let g = |v: &serde_json::Value| {
        v["gpu_baseline"]["iterations"][0]["attention_ns"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(kv["config"]["spec"]["attention"]["context_tokens"], 4096);
    // Wafer, TP4: 16 tokens per group, a quarter of the heads per die.
    // GPUs, TP1: 4 tokens each, all the heads. The same bytes per device.
    let bytes = 16.0 * (128.0 + 4096.0) * 2048.0 / 4.0;
    assert_eq!(bytes, 4.0 * (128.0 + 4096.0) * 2048.0);
    let want = bytes / 8000.0;
    let wafer = f(&kv, "attention_ns") - f(&plain, "attention_ns");
    let cycle_ns = 256.0 / 900.0;
    assert!((wafer - want).abs() < 2.0 * cycle_ns, "{wafer} vs {want}");
    let gpu = g(&kv) - g(&plain);
    assert!((gpu - want).abs() < 1e-6 * want, "{gpu} vs {want}");
    // Everything else is untouched.
    for k in [
        "dispatch_ns",
        "combine_ns",
        "moe_compute_ns",
        "allreduce_ns",
    ] {
        assert_eq!(f(&kv, k), f(&plain, k), "{k}");
    }
    // Layer 0 alone: the sliding window's 128 tokens.
    let one = |extra: &str| zipf_json("4", "8", &format!("--iterations 1 --layers 1 {extra}"));
    let first = f(&one("--context 4096"), "attention_ns") - f(&one(""), "attention_ns");
    let want = 16.0 * 128.0 * 2048.0 / 4.0 / 8000.0;
    assert!((first - want).abs() < cycle_ns, "{first} vs {want}");
    // GPT-OSS takes at most 131072 tokens of context (max_position_embeddings).
    let mut long = gpt_oss_4x8("balance", "4", "8");
    long.extend("--routing zipf:1 --iterations 1 --quiet --context 131073".split(' '));
    input_error(
        &wafernoc(&long),
        &[
            "invalid --context: 131073 exceeds the longest context GPT-OSS-20B takes, 131072 tokens",
        ],
    );
    // 512 tokens per group x (131072 + 128) x 12 layers x 512 B per die
    // (a quarter of 2048 at TP4) = 413 GB > 180 GB.
    let mut args = gpt_oss_4x8("balance", "4", "8");
    args.extend("--routing zipf:1 --iterations 1 --quiet --context 131072".split(' '));
    args.extend(["--tokens-per-group", "512"]);
    input_error(&wafernoc(&args), &["invalid --context:", "KV cache"]);
    args.extend(["--gpu-baseline", "32"]);
    input_error(&wafernoc(&args), &["invalid --context: on the GPUs"]);
    // `sweep --dry-run` makes the same check.
    let dir = tmp("kvsweep");
    let sweep = dir.join("s.toml");
    std::fs::write(
        &sweep,
        "command = \"balance\"\n[fixed]\nmodel = \"GPT-OSS-20B\"\nmesh = \"4x8\"\ntp = 4\n\
         dp = 8\nrouting = \"zipf:1\"\niterations = \"1\"\ntokens_per_group = 512\n\
         [[param]]\nname = \"context\"\nvalues = [4096, 131072]\n",
    )
    .unwrap();
    let o = wafernoc(&[
        "sweep",
        s(&sweep),
        "--dry-run",
        "--out",
        s(&dir.join("out")),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("invalid --context") && e.contains("KV cache"),
        "{e}"
    );
    // Negative: the flag is named.
    let mut neg = gpt_oss_4x8("balance", "4", "8");
    neg.extend(["--routing", "zipf:1", "--context", "-1"]);
    input_error(&wafernoc(&neg), &["--context"]);
    // A prefill trace's tokens do not decode over a context.
    let mut pre = vec!["balance", "--model", "DeepSeek-V2-Lite", "--mesh", "4x4"];
    pre.extend(["--tp", "1", "--dp", "16", "--mapping", "block", "--quiet"]);
    pre.extend([
        "--routing",
        "trace:traces/deepseek-esft/intent.wnrt",
        "--context",
        "4096",
    ]);
    input_error(&wafernoc(&pre), &["parameter `context`", "prefill"]);
}

/// With TP = 1 and as many GPUs as dies, the GPU side draws exactly the
/// wafer's tokens (same law, seed, ranking, groups), and with one expert
/// per device on both sides the slowest device's compute is the same: equal
/// expert compute in every iteration, here compute-bound (64 tokens per
/// device under Zipf 1.0), so it depends on the exact per-expert counts.
/// The wafer rounds each layer's compute up to whole network cycles
/// (256 B / 900 GB/s = 0.284 ns), the GPUs do not: within one cycle per
/// layer, far below the 22 ns one more copy of a GPT-OSS expert costs.
#[test]
fn gpu_feed_is_the_wafers_at_tp1() {
    let v = zipf_json(
        "1",
        "32",
        "--mapping block --tokens-per-group 64 --iterations 3 --layers 2 --gpu-baseline 32",
    );
    let wafer = v["iterations"].as_array().unwrap();
    let gpu = v["gpu_baseline"]["iterations"].as_array().unwrap();
    assert_eq!(wafer.len(), 3);
    // ns: above a GPT-OSS expert's weight read (24.9 MB at 8 TB/s: 3.1 us),
    // so a slowest device over twice this per layer is compute-bound.
    let weight_read = 5.0e3;
    let cycle_ns = 256.0 / 900.0;
    for (w, g) in wafer.iter().zip(gpu) {
        let (wc, gc) = (
            w["moe_compute_ns"].as_f64().unwrap(),
            g["compute_ns"].as_f64().unwrap(),
        );
        assert!(
            wc >= gc && wc - gc < 2.0 * cycle_ns,
            "wafer {wc} vs GPUs {gc}: {w} / {g}"
        );
        assert!(wc > 2.0 * 2.0 * weight_read, "not compute-bound: {wc}");
        assert_eq!(g["token_copies"], 32 * 64 * 4 * 2);
        assert_eq!(w["allreduce_ns"], 0.0);
        // Attention: the same model, tokens and TP on both sides.
        let (wa, ga) = (
            w["attention_ns"].as_f64().unwrap(),
            g["attention_ns"].as_f64().unwrap(),
        );
        assert!(wa >= ga && wa - ga < 2.0 * cycle_ns, "{wa} vs {ga}");
    }
}

/// A trace on as many GPUs as dies, attention data-parallel on both sides:
/// the GPUs batch the trace in the wafer's slots and split each batch over
/// as many groups, so they see the wafer's routing, token for token: equal
/// tokens, equal expert compute (within a cycle per layer, as at TP 1 with
/// zipf), equal attention, here over batches that shrink from 58 to 31
/// tokens (so a GPU holds 2, then 1). What differs is the network.
#[test]
fn trace_gpu_baseline_at_tp1_sees_the_wafers_routing() {
    let trace = "trace:traces/gpt-oss-20b/decode_128req.wnrt";
    let run = |tp: &str, dp: &str, extra: &str| {
        let mut args = gpt_oss_4x8("balance", tp, dp);
        args.extend(["--routing", trace, "--balancer", "none", "--layers", "2"]);
        args.extend(["--context", "1024", "--json", "--quiet"]);
        args.extend(extra.split_whitespace());
        json(&args)
    };
    let v = run(
        "1",
        "32",
        "--mapping block --iterations 509..513 --gpu-baseline 32",
    );
    let g = &v["gpu_baseline"];
    assert_eq!(g["slots"], 64);
    assert!(g["tokens_per_device"].is_null());
    assert_eq!(g["gpu_over_wafer_tokens_per_device"], 1.0);
    let cycle_ns = 256.0 / 900.0;
    let f = |x: &serde_json::Value, k: &str| x[k].as_f64().unwrap();
    let wafer = v["iterations"].as_array().unwrap();
    let gpu = g["iterations"].as_array().unwrap();
    let tokens: Vec<u64> = wafer
        .iter()
        .map(|w| w["tokens"].as_u64().unwrap())
        .collect();
    // The tail of the trace's 64-slot schedule, where requests finish and
    // batches shrink (a pin of the batching, which the trace crate tests
    // against its definition): what matters below is that they differ.
    assert_eq!(tokens, [58, 58, 32, 31]);
    for (w, r) in wafer.iter().zip(gpu) {
        assert_eq!(w["tokens"], r["tokens"]);
        let (wc, gc) = (f(w, "moe_compute_ns"), f(r, "compute_ns"));
        assert!(wc >= gc && wc - gc < 2.0 * cycle_ns, "{wc} vs {gc}");
        let (wa, ga) = (f(w, "attention_ns"), f(r, "attention_ns"));
        assert!(wa >= ga && wa - ga < 2.0 * cycle_ns, "{wa} vs {ga}");
    }
    assert!(f(&gpu[0], "attention_ns") > f(&gpu[3], "attention_ns"));
    // The GPUs' side does not depend on the wafer's plan: TP4 x DP8 gives
    // them the same batches (64 slots over 32 GPUs).
    let tp4 = run("4", "8", "--iterations 509..513 --gpu-baseline 32");
    assert_eq!(tp4["gpu_baseline"]["iterations"], g["iterations"]);
    // 32 slots on the wafer, 64 on 64 GPUs: other requests of the trace,
    // one token per device on both sides within 1%; the ratio is per
    // device over the tokens each side held.
    let v = run(
        "1",
        "32",
        "--mapping block --iterations 100..104 --slots 32 --gpu-baseline 64",
    );
    let g = &v["gpu_baseline"];
    assert_eq!(g["slots"], 64);
    let sum = |rows: &serde_json::Value| -> f64 {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| f(r, "tokens"))
            .sum()
    };
    let share = sum(&g["iterations"]) / 64.0 / (sum(&v["iterations"]) / 32.0);
    assert!((share - 1.0).abs() <= 0.01, "{share}");
    assert!((f(g, "gpu_over_wafer_tokens_per_device") - share).abs() < 1e-12);
    let time = f(&g["summary"], "moe_ns") / f(g, "wafer_moe_ns");
    let ratio = f(g, "wafer_over_gpu_per_device");
    assert!(
        (ratio - time / share).abs() < 1e-9 * ratio,
        "{ratio} vs {time} / {share}"
    );
    // Not like for like: refused, with the way out.
    let mut args = gpt_oss_4x8("balance", "1", "32");
    args.extend(["--mapping", "block", "--routing", trace, "--quiet"]);
    args.extend(["--iterations", "100..104", "--gpu-baseline", "72"]);
    input_error(
        &wafernoc(&args),
        &["144 slots", "within 1%", "fewer --slots"],
    );
    let mut pre = vec!["balance", "--model", "DeepSeek-V2-Lite", "--mesh", "8x8"];
    pre.extend(["--tp", "1", "--dp", "64", "--mapping", "block", "--quiet"]);
    pre.extend(["--routing", "trace:traces/deepseek-esft/intent.wnrt"]);
    pre.extend(["--iterations", "14..17", "--gpu-baseline", "8"]);
    input_error(&wafernoc(&pre), &["64 slots", "not full"]);
    // A device count past usize (it wrapped to 0 and divided by it).
    let mut wide = vec!["balance", "--model", "gpt-oss-20b", "--mesh", "65536x65536"];
    wide.extend([
        "--wafers",
        "65536x65536",
        "--tp",
        "1",
        "--dp",
        "1",
        "--quiet",
    ]);
    wide.extend(["--routing", trace, "--gpu-baseline", "8"]);
    input_error(
        &wafernoc(&wide),
        &["invalid `mesh` (--mesh)", "fits in usize"],
    );
    // The GPUs' HBM is checked at their largest batch of the trace.
    let mut huge = gpt_oss_4x8("balance", "1", "32");
    huge.extend(["--mapping", "block", "--routing", trace, "--quiet"]);
    huge.extend(["--iterations", "100..102", "--gpu-baseline", "32"]);
    // 2 tokens x (131072 + 128) x 12 layers x 2048 B = 6.4 GB > 4 GB.
    huge.extend(["--context", "131072", "--die-hbm-gb", "4"]);
    input_error(
        &wafernoc(&huge),
        &["invalid --context: on the GPUs", "2 tokens per DP group"],
    );
}

/// `--die-*` set the die of the wafer and of the GPU baseline: half the
/// HBM bandwidth doubles the memory-bound attention of both; a bad value
/// is an error naming its flag.
#[test]
fn die_flags_set_the_die() {
    let run = |extra: &str| {
        zipf_json(
            "4",
            "8",
            &format!("--iterations 1 --layers 1 --gpu-baseline 32 {extra}"),
        )
    };
    let (fast, slow) = (run(""), run("--die-hbm-gbps 4000"));
    assert_eq!(slow["config"]["spec"]["die"]["hbm_gbps"], 4000.0);
    assert_eq!(fast["config"]["spec"]["die"]["hbm_gbps"], 8000.0);
    let f = |v: &serde_json::Value| v["iterations"][0]["attention_ns"].as_f64().unwrap();
    let g = |v: &serde_json::Value| {
        v["gpu_baseline"]["iterations"][0]["attention_ns"]
            .as_f64()
            .unwrap()
    };
    let cycle_ns = 256.0 / 900.0;
    assert!(f(&fast) > 10.0 * cycle_ns, "{}", f(&fast));
    assert!(
        (f(&slow) - 2.0 * f(&fast)).abs() < 2.0 * cycle_ns,
        "{} vs 2 x {}",
        f(&slow),
        f(&fast)
    );
    assert!((g(&slow) - 2.0 * g(&fast)).abs() < 1e-9 * g(&slow));
    for (flag, value) in [
        ("--die-hbm-gb", "0"),
        ("--die-tflops", "nan"),
        ("--die-hbm-gbps", "-1"),
    ] {
        let mut args = gpt_oss_4x8("balance", "4", "8");
        args.extend(["--routing", "zipf:1", "--quiet", flag, value]);
        input_error(
            &wafernoc(&args),
            &[
                &format!("invalid {flag}: "),
                "is invalid: must be finite and > 0",
            ],
        );
    }
    // A die so slow that a window exceeds what a run counts: an error (the
    // cycle sums wrapped silently), and a die too small for the expert
    // slots names the capacity too (it named --shadow-slots alone).
    let mut slow = gpt_oss_4x8("balance", "4", "8");
    slow.extend(["--routing", "zipf:1", "--iterations", "1", "--quiet"]);
    slow.extend(["--die-tflops", "1e-11"]);
    input_error(
        &wafernoc(&slow),
        &[
            "invalid --die-tflops / --die-hbm-gbps: attention takes",
            "(2^48)",
        ],
    );
    for (extra, needle) in [
        (&[][..], "invalid --shadow-slots / --die-hbm-gb: "),
        (
            &["--gpu-baseline", "32"][..],
            "invalid --gpu-baseline / --die-hbm-gb: on the GPUs",
        ),
    ] {
        let mut small = gpt_oss_4x8("balance", "4", "8");
        small.extend(["--routing", "zipf:1", "--iterations", "1", "--quiet"]);
        small.extend(["--die-hbm-gb", "0.5"]);
        small.extend(extra);
        input_error(
            &wafernoc(&small),
            &[needle, "exceed the HBM capacity of 500000000 B"],
        );
    }
}

/// `--param-bytes` and `--kv-bytes-per-token` override the preset's
/// precision: at context 0 GPT-OSS's attention is a memory-bound weight
/// read, so half the bytes per parameter halve it; half the KV bytes halve
/// the cache's part of it. Bad values name the flag.
#[test]
fn precision_flags_override_the_preset() {
    let run = |extra: &str| zipf_json("4", "8", &format!("--iterations 1 --layers 2 {extra}"));
    let att = |v: &serde_json::Value| v["summary"]["attention_ns"].as_f64().unwrap();
    let cycle_ns = 256.0 / 900.0;
    let (full, half) = (run(""), run("--param-bytes 0.5"));
    assert_eq!(half["config"]["spec"]["model"]["param_bytes"], 0.5);
    assert!(
        (att(&half) - att(&full) / 2.0).abs() < 2.0 * cycle_ns,
        "{} vs {} / 2",
        att(&half),
        att(&full)
    );
    assert!(
        half["summary"]["moe_compute_ns"].as_f64().unwrap()
            < full["summary"]["moe_compute_ns"].as_f64().unwrap()
    );
    let kv = |b: &str| att(&run(&format!("--context 4096 {b}"))) - att(&full);
    let (bf16, fp8) = (kv(""), kv("--kv-bytes-per-token 1024"));
    assert!(bf16 > 10.0 * cycle_ns, "{bf16}");
    assert!(
        (fp8 - bf16 / 2.0).abs() < 4.0 * cycle_ns,
        "{fp8} vs {bf16} / 2"
    );
    for (flag, value) in [("--param-bytes", "0"), ("--param-bytes", "nan")] {
        let mut args = gpt_oss_4x8("balance", "4", "8");
        args.extend(["--routing", "zipf:1", "--quiet", flag, value]);
        input_error(
            &wafernoc(&args),
            &[&format!("invalid {flag}: "), "must be finite and > 0"],
        );
    }
}

/// The ladder's sweep files parse and pass every check of their points
/// (6 points each; the GPU-baseline sweeps 16, 8, 4, 6 and 8, two of them
/// with a KV cache that must fit in HBM), and a small balance sweep merges
/// into a CSV whose columns carry the summary.
#[test]
fn balance_sweeps() {
    for (f, points) in [
        ("docs/sweeps/balancer_gpt_oss.toml", 6),
        ("docs/sweeps/balancer_esft.toml", 6),
        ("docs/sweeps/balancer_zipf.toml", 6),
        ("docs/sweeps/gpu_baseline.toml", 16),
        ("docs/sweeps/gpu_baseline_tp1.toml", 8),
        ("docs/sweeps/gpu_baseline_kv.toml", 4),
        ("docs/sweeps/gpu_baseline_kv_tp1.toml", 6),
        ("docs/sweeps/gpu_baseline_seeds.toml", 8),
    ] {
        let o = wafernoc(&["sweep", f, "--dry-run", "--out", "/nonexistent/x"]);
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            text.matches("wafernoc balance ").count(),
            points,
            "{f}: {text}"
        );
    }
    let dir = tmp("balsweep");
    let sweep = dir.join("s.toml");
    std::fs::write(
        &sweep,
        "command = \"balance\"\n[fixed]\nmodel = \"GPT-OSS-20B\"\nmesh = \"4x8\"\ntp = 4\n\
         dp = 8\nrouting = \"zipf:1.0\"\niterations = \"6\"\nlayers = 2\n\
         tokens_per_group = 32\n\
         [[param]]\nname = \"balancer\"\nvalues = [\"none\", \"topology\"]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = wafernoc(&[
        "sweep",
        sweep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = wafernoc(&["sweep", "merge", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "summary.migrations_planned")
        .expect("summary column");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][col], "0");
    assert_ne!(rows[1][col], "0");
    // A point file keeps the run's result exactly: every float survives the
    // parse and re-print (serde_json's float_roundtrip; without it the last
    // digit of some per-iteration times changed).
    let o = wafernoc(&[
        "balance",
        "--model",
        "GPT-OSS-20B",
        "--mesh",
        "4x8",
        "--tp",
        "4",
        "--dp",
        "8",
        "--routing",
        "zipf:1.0",
        "--iterations",
        "6",
        "--layers",
        "2",
        "--tokens-per-group",
        "32",
        "--balancer",
        "topology",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success());
    let direct_text = String::from_utf8(o.stdout).unwrap();
    let direct: serde_json::Value = serde_json::from_str(&direct_text).unwrap();
    let text = std::fs::read_to_string(out.join("points/1.json")).unwrap();
    let point: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(point["result"], direct);
    // The same, digit for digit: the numbers as printed (a parser that is
    // off by one unit in the last place on both sides would hide a change).
    let numbers = |t: &str| -> Vec<String> {
        t.split(|c: char| !(c.is_ascii_digit() || "eE+-.".contains(c)))
            .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
            .map(str::to_string)
            .collect()
    };
    let stored = &text[text.find("\"result\"").expect("result key")..];
    let direct_numbers = numbers(&direct_text);
    assert!(direct_numbers.len() > 100);
    assert_eq!(numbers(stored), direct_numbers);
}
