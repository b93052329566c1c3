//! `wafernoc sweep` and `wafernoc sweep merge`: whole and sharded runs merge
//! to the same bytes, resume reruns exactly the missing points, and every
//! bad input gives an error naming the problem.

use std::path::Path;
use std::process::Output;

mod common;
use common::*;

/// The tiny synthetic configuration of the integration tests (4x4 mesh).
fn small_toml() -> String {
    root()
        .join("tests/data/small.toml")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// A 2 rates x 2 patterns sweep of `run` over tests/data/small.toml.
fn grid_sweep(dir: &Path) -> String {
    let text = format!(
        "command = \"run\"\nconfig = \"{}\"\n\
         [fixed]\n\"sim.sample_period\" = 200\n\
         [[param]]\nname = \"traffic.rate\"\nvalues = [0.05, 0.15]\n\
         [[param]]\nname = \"traffic.pattern.kind\"\nvalues = [\"uniform\", \"transpose\"]\n",
        small_toml()
    );
    let f = dir.join("grid.toml");
    std::fs::write(&f, text).unwrap();
    f.display().to_string()
}

fn fails_with(o: &Output, code: i32, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "stderr lacks `{n}`:\n{e}");
    }
}

#[test]
fn whole_and_sharded_runs_merge_to_identical_csv() {
    let d = tmp("shards");
    let sweep = grid_sweep(&d);
    let (whole, sharded) = (d.join("whole"), d.join("sharded"));
    let (w, s) = (whole.display().to_string(), sharded.display().to_string());

    ok(&wafernoc(&[
        "sweep", &sweep, "--jobs", "2", "--out", &w, "--quiet",
    ]));
    ok(&wafernoc(&[
        "sweep", &sweep, "--shard", "0/2", "--jobs", "1", "--out", &s, "--quiet",
    ]));
    // Half of the points: merge names the missing ones (1 and 3).
    let m = wafernoc(&["sweep", "merge", &s]);
    fails_with(&m, 2, &["2 of 4 points missing: 1, 3", "--allow-partial"]);
    assert!(!sharded.join("results.csv").exists());
    let partial = d.join("partial.csv").display().to_string();
    ok(&wafernoc(&[
        "sweep",
        "merge",
        &s,
        "--allow-partial",
        "--out",
        &partial,
    ]));
    let p = std::fs::read_to_string(&partial).unwrap();
    let ids: Vec<&str> = p
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, ["0", "2"]);

    let o = wafernoc(&[
        "sweep", &sweep, "--shard", "1/2", "--jobs", "1", "--out", &s, "--quiet",
    ]);
    ok(&o);
    assert!(stderr(&o).contains("ran 2, skipped 0, failed 0 (shard 1/2: 2 of 4 points)"));
    ok(&wafernoc(&["sweep", "merge", &w]));
    // Files that are no point of the grid are left out, with a warning.
    std::fs::write(sharded.join("points/4.json"), "{}").unwrap();
    std::fs::write(sharded.join("points/01.json"), "{}").unwrap();
    let m = wafernoc(&["sweep", "merge", &s]);
    ok(&m);
    assert!(
        stderr(&m).contains("warning: 2 file(s) in"),
        "{}",
        stderr(&m)
    );
    assert!(
        stderr(&m)
            .contains("are not points 0..4 of this sweep and were not merged: 01.json, 4.json"),
        "{}",
        stderr(&m)
    );
    std::fs::remove_file(sharded.join("points/4.json")).unwrap();
    std::fs::remove_file(sharded.join("points/01.json")).unwrap();
    let m = wafernoc(&["sweep", "merge", &s]);
    ok(&m);
    assert!(!stderr(&m).contains("warning"), "{}", stderr(&m));

    let a = std::fs::read(whole.join("results.csv")).unwrap();
    let b = std::fs::read(sharded.join("results.csv")).unwrap();
    assert_eq!(
        a, b,
        "whole and sharded sweeps must merge to identical bytes"
    );
    assert_eq!(
        std::fs::read(whole.join("sweep.json")).unwrap(),
        std::fs::read(sharded.join("sweep.json")).unwrap()
    );

    // Rows by point index, first parameter slowest, parameter columns first.
    let csv = String::from_utf8(a).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert_eq!(
        rows[0][..3],
        ["point", "traffic.rate", "traffic.pattern.kind"]
    );
    let params: Vec<[&str; 3]> = rows[1..].iter().map(|r| [r[0], r[1], r[2]]).collect();
    assert_eq!(
        params,
        [
            ["0", "0.05", "uniform"],
            ["1", "0.05", "transpose"],
            ["2", "0.15", "uniform"],
            ["3", "0.15", "transpose"],
        ]
    );
    // No nested objects or wall-clock fields leak in; config fields do.
    let col = |name: &str| rows[0].iter().position(|c| *c == name);
    assert!(col("wafernoc_version").is_some());
    assert_eq!(
        rows[3][col("config.traffic.pattern.kind").unwrap()],
        "uniform"
    );

    // A cell equals what the point's own command prints.
    let direct = wafernoc(&[
        "run",
        &small_toml(),
        "--set",
        "sim.sample_period=200",
        "--set",
        "traffic.rate=0.15",
        "--set",
        "traffic.pattern.kind=\"transpose\"",
        "--json",
        "--quiet",
    ]);
    ok(&direct);
    let v: serde_json::Value = serde_json::from_slice(&direct.stdout).unwrap();
    let lat = col("avg_packet_latency").unwrap();
    assert_eq!(rows[4][lat], v["avg_packet_latency"].to_string());
    assert_ne!(rows[1][lat], rows[4][lat], "points must differ");
}

#[test]
fn resume_reruns_exactly_the_missing_points() {
    let d = tmp("resume");
    let sweep = grid_sweep(&d);
    let out = d.join("out");
    let o = out.display().to_string();
    let run = |extra: &[&str]| {
        let mut a = vec!["sweep", sweep.as_str(), "--out", o.as_str(), "--quiet"];
        a.extend_from_slice(extra);
        wafernoc(&a)
    };
    ok(&run(&["--jobs", "2"]));
    let points = out.join("points");

    // Without --resume, a directory holding this run's points is refused.
    fails_with(
        &run(&[]),
        2,
        &[&points.display().to_string(), "--resume", "4 point(s)"],
    );

    // Mark point 1 (kept) and delete point 2 (rerun).
    let p1 = points.join("1.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p1).unwrap()).unwrap();
    v["result"]["avg_hops"] = serde_json::json!(12345);
    std::fs::write(&p1, serde_json::to_string(&v).unwrap()).unwrap();
    std::fs::remove_file(points.join("2.json")).unwrap();
    let r = run(&["--resume"]);
    ok(&r);
    assert!(stderr(&r).contains("ran 1, skipped 3"), "{}", stderr(&r));
    assert!(points.join("2.json").exists());
    assert!(std::fs::read_to_string(&p1).unwrap().contains("12345"));

    // A truncated point file counts as missing.
    std::fs::write(points.join("3.json"), "{\"point\": 3, ").unwrap();
    let r = run(&["--resume"]);
    ok(&r);
    assert!(stderr(&r).contains("ran 1, skipped 3"), "{}", stderr(&r));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(points.join("3.json")).unwrap()).unwrap();
    assert_eq!(v["point"], 3);
    assert_eq!(v["params"]["traffic.pattern.kind"], "transpose");
    assert!(v["result"]["avg_packet_latency"].is_number());

    // The same directory with a different grid is refused.
    let other = d.join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&sweep)
            .unwrap()
            .replace("0.15", "0.2"),
    )
    .unwrap();
    fails_with(
        &wafernoc(&[
            "sweep",
            &other.display().to_string(),
            "--out",
            &o,
            "--resume",
        ]),
        2,
        &["describes a different sweep", "`params` differs"],
    );
}

#[test]
fn bad_inputs_are_named() {
    let d = tmp("bad");
    let cfg = small_toml();
    let write = |name: &str, body: &str| {
        let f = d.join(name);
        std::fs::write(&f, body).unwrap();
        f.display().to_string()
    };
    let out = d.join("out").display().to_string();
    let sweep = |f: &str| wafernoc(&["sweep", f, "--out", &out, "--quiet"]);

    let f = write(
        "unknown.toml",
        &format!("command = \"run\"\nconfig = \"{cfg}\"\nparams = []\n"),
    );
    fails_with(&sweep(&f), 2, &[&f, "unknown field `params`"]);

    let f = write(
        "empty.toml",
        &format!("command = \"run\"\nconfig = \"{cfg}\"\n[[param]]\nname = \"traffic.rate\"\nvalues = []\n"),
    );
    fails_with(&sweep(&f), 2, &[&f, "`traffic.rate`: `values` is empty"]);

    let f = write(
        "missing_config.toml",
        "command = \"run\"\nconfig = \"no/such/config.toml\"\n",
    );
    fails_with(&sweep(&f), 2, &[&f, "no/such/config.toml"]);

    let f = write("no_config.toml", "command = \"booksim\"\n");
    fails_with(&sweep(&f), 2, &[&f, "`booksim` needs `config`"]);

    let f = write("no_command.toml", &format!("config = \"{cfg}\"\n"));
    fails_with(&sweep(&f), 2, &[&f, "missing field `command`"]);

    let f = write(
        "wrong_type.toml",
        "command = \"moe\"\n[[param]]\nname = \"tp\"\nvalues = [[4]]\n",
    );
    fails_with(&sweep(&f), 2, &[&f, "`tp`", "wrong type"]);

    let good = grid_sweep(&d);
    fails_with(
        &wafernoc(&["sweep", &good, "--shard", "3/2"]),
        2,
        &["3/2", "must be < count 2"],
    );
    fails_with(
        &wafernoc(&["sweep", &good, "--shard", "1-2"]),
        2,
        &["`1-2` is not I/N"],
    );
    fails_with(
        &wafernoc(&["sweep", "merge", &d.join("nowhere").display().to_string()]),
        2,
        &["sweep.json", "sweep output directory"],
    );

    // A failing point is reported with its parameters, exit status and
    // stderr; the other points still run and the sweep exits 1.
    let f = write(
        "failing.toml",
        &format!(
            "command = \"run\"\nconfig = \"{cfg}\"\n[fixed]\n\"sim.sample_period\" = 200\n\
             [[param]]\nname = \"network.mesh.rows\"\nvalues = [4, 0, 4]\n"
        ),
    );
    let o = sweep(&f);
    fails_with(
        &o,
        1,
        &[
            "ran 2, skipped 0, failed 1",
            "1 point(s) failed: 1",
            "point 1 (network.mesh.rows=0)",
            "exit status: 2",
            "rows",
        ],
    );
    let pts = d.join("out/points");
    assert!(pts.join("0.json").exists() && pts.join("2.json").exists());
    assert!(!pts.join("1.json").exists());
}

#[test]
fn example_sweep_parses() {
    let o = wafernoc(&["sweep", "docs/examples/sweep_uniform.toml", "--dry-run"]);
    ok(&o);
    let s = String::from_utf8(o.stdout).unwrap();
    assert_eq!(s.lines().filter(|l| l.starts_with("point ")).count(), 12);
    assert!(
        s.contains("point 11: traffic.rate=0.3 traffic.pattern.kind=bitcomp"),
        "{s}"
    );
    assert!(
        s.contains("tests/data/small.toml --set sim.sample_period=300"),
        "{s}"
    );
    let o = wafernoc(&[
        "sweep",
        "docs/examples/sweep_uniform.toml",
        "--dry-run",
        "--shard",
        "2/5",
    ]);
    ok(&o);
    let s = String::from_utf8(o.stdout).unwrap();
    let ids: Vec<&str> = s
        .lines()
        .filter_map(|l| l.strip_prefix("point "))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(ids, ["2", "7"]);
}

/// `--dry-run` checks every point as its subprocess would, without
/// simulating: a key the run configuration does not have, or a value the
/// network or the traffic refuses, is an error naming the point and the
/// key (it used to pass the dry run and fail every point of the real
/// sweep).
#[test]
fn dry_run_checks_each_point_configuration() {
    let d = tmp("sweep-dry-check");
    // A one-axis sweep of `run` over `param`; its dry run fails with exit
    // 2 naming `needles`.
    let fails = |file: &str, param: &str, values: &str, needles: &[&str]| {
        let f = d.join(file);
        std::fs::write(
            &f,
            format!(
                "command = \"run\"\nconfig = \"{}\"\n\
                 [[param]]\nname = \"{param}\"\nvalues = {values}\n",
                small_toml()
            ),
        )
        .unwrap();
        fails_with(&wafernoc(&["sweep", s(&f), "--dry-run"]), 2, needles);
    };
    fails(
        "bad_key.toml",
        "traffic.nosuch",
        "[1, 2]",
        &["point 0", "traffic.nosuch=1", "unknown field `nosuch`"],
    );
    fails(
        "bad_value.toml",
        "network.router.num_vcs",
        "[2, 0]",
        &["point 1", "num_vcs"],
    );
    // A traffic value the run refuses (it passed the dry run until
    // session 14's review).
    fails(
        "bad_traffic.toml",
        "traffic.rate",
        "[0.1, -1.0]",
        &[
            "point 1",
            "injection_rate",
            "-1.0 is not a non-negative number",
        ],
    );
    // A class the network does not have (checked only by the real run
    // until session 15).
    fails(
        "bad_class.toml",
        "traffic.class",
        "[0, 5]",
        &[
            "point 1",
            "`traffic.class`: 5 but the network has 1 class(es)",
        ],
    );
}

/// `--dry-run` checks `moe` and `balance` points as their runs would
/// before simulating: the plan against the mesh, a routing trace's layers,
/// and a missing required flag named in full. Until session 15 it parsed
/// their flags only, so every case below passed the dry run and failed
/// in the real sweep.
#[test]
fn dry_run_checks_moe_and_balance_points() {
    // The shipped `moe` sweep passes.
    let o = wafernoc(&["sweep", "docs/examples/sweep_moe.toml", "--dry-run"]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.matches("wafernoc moe --config ").count(), 6, "{text}");
    let d = tmp("sweep-dry-moe");
    // A sweep of `command` with `fixed` keys over one parameter; its dry
    // run fails with exit 2 naming `needles`.
    let fails = |file: &str, command: &str, fixed: &str, param: &str, needles: &[&str]| {
        let f = d.join(file);
        std::fs::write(
            &f,
            format!("command = \"{command}\"\n[fixed]\n{fixed}\n[[param]]\n{param}\n"),
        )
        .unwrap();
        fails_with(&wafernoc(&["sweep", s(&f), "--dry-run"]), 2, needles);
    };
    let moe = "model = \"DeepSeek-V3\"\nmesh = \"4x4\"\nmapping = \"er\"\n\
               tokens_per_group = 8\ndp = 4";
    fails(
        "moe_plan.toml",
        "moe",
        moe,
        "name = \"tp\"\nvalues = [4, 3]",
        &[
            "point 1",
            "tp (3) x dp (4) = 12 but the mesh has 16 devices",
        ],
    );
    let gpt = "model = \"gpt-oss-20b\"\nmesh = \"4x8\"\ntp = 4\ndp = 8\nmapping = \"er\"\n\
               routing = \"trace:traces/gpt-oss-20b/decode_128req.wnrt\"";
    fails(
        "moe_layers.toml",
        "moe",
        gpt,
        "name = \"layers\"\nvalues = [\"0..2\", \"20..30\"]",
        &["point 1", "`layers`", "20..30: the trace has 24 layers"],
    );
    let bal = "model = \"DeepSeek-V3\"\nmesh = \"4x4\"\ntp = 4";
    fails(
        "balance_plan.toml",
        "balance",
        &format!("{bal}\nrouting = \"zipf:1.0\""),
        "name = \"dp\"\nvalues = [4, 3]",
        &[
            "point 1",
            "tp (4) x dp (3) = 12 but the mesh has 16 devices",
        ],
    );
    fails(
        "balance_missing.toml",
        "balance",
        bal,
        "name = \"dp\"\nvalues = [4]",
        &["point 0", "required arguments were not provided: --routing"],
    );
}

/// Two points may not write the same file. Was: `args = ["--capture",
/// "cap.wnpt"]` with `--jobs 2` left a corrupt capture (both points
/// writing it at once) and reported success.
#[test]
fn points_writing_one_file_are_refused() {
    let d = tmp("shared-output");
    let out = d.join("out").display().to_string();
    let f = d.join("cap.toml");
    let cap = d.join("cap.wnpt").display().to_string();
    std::fs::write(
        &f,
        format!(
            "command = \"run\"\nconfig = \"{}\"\nargs = [\"--capture\", \"{cap}\"]\n\
             [[param]]\nname = \"traffic.seed\"\nvalues = [1, 2]\n",
            small_toml()
        ),
    )
    .unwrap();
    let f = f.display().to_string();
    for extra in [&[][..], &["--dry-run"][..], &["--shard", "1/2"][..]] {
        let mut args = vec!["sweep", f.as_str(), "--out", &out, "--quiet", "--jobs", "2"];
        args.extend(extra);
        fails_with(
            &wafernoc(&args),
            2,
            &["points 0 and 1 would both write", "--capture", &cap],
        );
    }
    assert!(!Path::new(&cap).exists());
    // One point: nothing shared.
    std::fs::write(
        &f,
        format!(
            "command = \"run\"\nconfig = \"{}\"\nargs = [\"--capture\", \"{cap}\"]\n\
             [fixed]\n\"sim.sample_period\" = 200\n",
            small_toml()
        ),
    )
    .unwrap();
    ok(&wafernoc(&["sweep", &f, "--out", &out, "--quiet"]));
    assert!(Path::new(&cap).exists());
    // moe: `out` as a parameter gives each point its own directory, unless
    // another axis repeats it.
    let f = d.join("moe.toml");
    let moe = |outs: &str, tokens: &str| {
        std::fs::write(
            &f,
            format!(
                "command = \"moe\"\nargs = [\"--model\", \"DeepSeek-V3\", \"--mesh\", \"4x4\", \
                 \"--tp\", \"4\", \"--dp\", \"4\", \"--mapping\", \"er\"]\n\
                 [[param]]\nname = \"tokens_per_group\"\nvalues = [{tokens}]\n\
                 [[param]]\nname = \"out\"\nvalues = [{outs}]\n"
            ),
        )
        .unwrap();
        let f = f.display().to_string();
        wafernoc(&["sweep", &f, "--out", &out, "--quiet", "--dry-run"])
    };
    let (o1, o2) = (d.join("o1"), d.join("o2"));
    let outs = format!("\"{}\", \"{}\"", o1.display(), o2.display());
    ok(&moe(&outs, "4"));
    fails_with(
        &moe(&outs, "4, 8"),
        2,
        &[
            "points 0 and 2 would both write",
            "--out",
            "make `out` a [[param]]",
        ],
    );
    // `o1` and `./o1` are one directory.
    fails_with(
        &moe("\"o1\", \"./o1\"", "4"),
        2,
        &["points 0 and 1 would both write"],
    );
}

/// `--out` may not be a directory that is neither empty nor a sweep's.
/// Was: `--out docs` wrote sweep.json and points/ into it.
#[test]
fn out_must_be_new_empty_or_a_sweeps() {
    let d = tmp("out-foreign");
    let f = grid_sweep(&d);
    let foreign = d.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let out = foreign.display().to_string();
    fails_with(
        &wafernoc(&["sweep", &f, "--out", &out, "--quiet"]),
        2,
        &["is not empty (it holds notes.txt)", "no sweep.json"],
    );
    assert!(!foreign.join("sweep.json").exists());
    // Empty: fine, and afterwards it is the sweep's.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = empty.display().to_string();
    ok(&wafernoc(&[
        "sweep", &f, "--out", &out, "--quiet", "--shard", "0/2",
    ]));
    ok(&wafernoc(&[
        "sweep", &f, "--out", &out, "--quiet", "--shard", "1/2",
    ]));
    // What another shard starting at the same time writes is not foreign.
    let racing = d.join("racing");
    std::fs::create_dir_all(racing.join("points")).unwrap();
    std::fs::write(racing.join(".sweep.json.tmp.4242"), "").unwrap();
    let out = racing.display().to_string();
    ok(&wafernoc(&["sweep", &f, "--out", &out, "--quiet"]));
}

/// `sweep plot` draws columns of a merged CSV: one line per series value,
/// rows picked by `--where`, empty cells left out and counted, and a bad
/// column or cell named.
#[test]
fn plot_draws_columns_of_a_merged_csv() {
    let dir = tmp("plot");
    let csv = dir.join("results.csv");
    std::fs::write(
        &csv,
        "rate,latency,kind,mesh\n0.1,20,a,4x4\n0.2,30,a,4x4\n0.1,22,b,4x4\n0.2,,b,4x4\n\
         0.1,99,a,8x8\n",
    )
    .unwrap();
    let svg = dir.join("p.svg");
    let o = wafernoc(&[
        "sweep",
        "plot",
        s(&dir),
        "--x",
        "rate",
        "--y",
        "latency",
        "--series",
        "kind",
        "--where",
        "mesh=4x4",
        "--hline",
        "25",
        "--out",
        s(&svg),
    ]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("2 series from 4 of 5 rows, 1 empty cell(s) left out"),
        "{out}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("kind=a") && text.contains("kind=b"), "{text}");
    assert!(text.contains("y = 25"), "{text}");
    assert!(!text.contains("99"), "the 8x8 row was filtered out");
    let bad = |extra: &[&str], needle: &str| {
        let mut args = vec!["sweep", "plot", s(&csv), "--out", s(&svg)];
        args.extend(extra);
        input_error(&wafernoc(&args), &[needle]);
    };
    bad(
        &["--x", "rat", "--y", "latency"],
        "no column `rat` (did you mean rate?)",
    );
    bad(
        &["--x", "kind", "--y", "latency"],
        "row 1 column `kind`: `a` is not a finite number",
    );
    bad(
        &["--x", "rate", "--y", "latency", "--where", "mesh=2x2"],
        "no row matches",
    );
    bad(
        &["--x", "rate", "--y", "latency", "--where", "mesh"],
        "expected COL=VALUE",
    );
    // Rows of two kinds at one rate: a line through them would zigzag.
    bad(
        &["--x", "rate", "--y", "latency"],
        "two points at rate = 0.1 (rows 1 and 3)",
    );
    bad(&["--x", "rate", "--y", "latency,latency"], "given twice");
    // The chart is SVG: another extension would hold SVG text.
    let png = svg.with_extension("png");
    input_error(
        &wafernoc(&[
            "sweep",
            "plot",
            s(&csv),
            "--x",
            "rate",
            "--y",
            "latency",
            "--out",
            s(&png),
        ]),
        &["sweep plot writes SVG; name the file *.svg"],
    );
    assert!(!png.exists());
    // A reference line a log axis cannot show (it was drawn as "no data").
    bad(
        &["--x", "rate", "--y", "latency", "--log-y", "--hline", "0"],
        "invalid --hline 0: a log y axis cannot show it",
    );
    bad(&["--x", "rate", "--y", ""], "an empty column name");
    std::fs::write(&csv, "x,y\n1,nan\n0,2\n").unwrap();
    bad(
        &["--x", "x", "--y", "y"],
        "row 1 column `y`: `nan` is not a finite number",
    );
    std::fs::write(&csv, "x,y\n1,1\n0,2\n").unwrap();
    bad(
        &["--x", "x", "--y", "y", "--log-x"],
        "row 2 column `x`: 0 cannot be shown",
    );
    // Renamed parts.
    let o = wafernoc(&[
        "sweep",
        "plot",
        s(&csv),
        "--x",
        "x",
        "--y",
        "y",
        "--rename",
        "y=>height",
        "--out",
        s(&svg),
    ]);
    ok(&o);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("height"));
}
