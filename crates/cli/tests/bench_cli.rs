//! `wafernoc bench`: the figures it prints come from the engine path they
//! claim. docs/performance.md's instruction counts are for the 8×8 cases
//! on one thread, which take the default pipeline's ring mode; a change
//! that silently moved them to another step would change every figure.

mod common;
use common::{ok, wafernoc};

/// The `step` bench reports for `case`, with `global` flags before the
/// subcommand and `extra` after it.
fn step(global: &[&str], case: &str, extra: &[&str]) -> String {
    let mut args = global.to_vec();
    args.extend(["bench", "--only", case, "--scale", "0.01", "--json"]);
    args.extend(extra);
    let o = wafernoc(&args);
    ok(&o);
    let out = String::from_utf8(o.stdout).expect("UTF-8");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object");
    assert_eq!(v["name"], case);
    v["step"].as_str().expect("step").to_string()
}

#[test]
fn bench_reports_the_router_step_each_case_took() {
    assert_eq!(step(&[], "8x8_uniform_0.2", &[]), "rings");
    // Two parts: no rings (they need one part of at most 128 routers).
    assert_eq!(step(&["--threads", "2"], "8x8_uniform_0.2", &[]), "default");
    // More than 128 routers on one thread: the banded default pipeline.
    assert_eq!(step(&[], "32x32_uniform_0.01", &[]), "default");
    // The check mode takes the general step.
    assert_eq!(step(&[], "8x8_uniform_0.2", &["--step-all"]), "general");
}
