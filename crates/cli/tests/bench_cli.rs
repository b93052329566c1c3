//! `wafernoc bench`: the figures it prints come from the engine path they
//! claim. docs/performance.md's instruction counts are for the 8×8 cases
//! on one thread, which take the default pipeline's ring mode; a change
//! that silently moved them to another step would change every figure.

mod common;
use common::{ok, wafernoc};

/// The `step` of each JSON line, by case name.
fn steps(args: &[&str]) -> Vec<(String, String)> {
    let o = wafernoc(args);
    ok(&o);
    String::from_utf8(o.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object a line");
            (
                v["name"].as_str().expect("name").to_string(),
                v["step"].as_str().expect("step").to_string(),
            )
        })
        .collect()
}

#[test]
fn bench_reports_the_router_step_each_case_took() {
    let one = steps(&[
        "bench",
        "--only",
        "8x8_uniform_0.2",
        "--scale",
        "0.01",
        "--json",
    ]);
    assert_eq!(one, [("8x8_uniform_0.2".into(), "rings".into())]);
    // Two parts: no rings (they need one part of at most 128 routers).
    let two = steps(&[
        "--threads",
        "2",
        "bench",
        "--only",
        "8x8_uniform_0.2",
        "--scale",
        "0.01",
        "--json",
    ]);
    assert_eq!(two, [("8x8_uniform_0.2".into(), "default".into())]);
    // More than 128 routers on one thread: the banded default pipeline.
    let big = steps(&[
        "bench",
        "--only",
        "32x32_uniform_0.01",
        "--scale",
        "0.01",
        "--json",
    ]);
    assert_eq!(big, [("32x32_uniform_0.01".into(), "default".into())]);
    // The check mode takes the general step.
    let check = steps(&[
        "bench",
        "--only",
        "8x8_uniform_0.2",
        "--scale",
        "0.01",
        "--step-all",
        "--json",
    ]);
    assert_eq!(check, [("8x8_uniform_0.2".into(), "general".into())]);
}
