//! Helpers shared by the command-line integration tests (each test file
//! includes this module; not every file uses every helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (commands run there, so relative paths such as
/// `traces/...` and `tests/data/...` resolve).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run the `wafernoc` binary with `args` in the repository root.
pub fn wafernoc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wafernoc"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run wafernoc")
}

/// A command's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert that a command succeeded, showing its standard error if not.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}, stderr: {}",
        o.status,
        stderr(o)
    );
}

/// An empty scratch directory named after the test binary, the process
/// and `name`, removed when the returned guard drops.
pub fn tmp(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!(
        "wafernoc-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// A scratch directory that is removed with everything in it when the
/// guard drops, unless the thread is panicking: a failed test leaves its
/// files for inspection, a passing one leaves nothing behind (every
/// `make test` used to leave about 40 directories in `$TMPDIR`).
/// Dereferences to its [`Path`].
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `command` on GPT-OSS-20B over a 4x8 mesh with the plan `tp` x `dp`
/// (the shipped decode trace's machine); the caller adds the rest.
pub fn gpt_oss_4x8<'a>(command: &'a str, tp: &'a str, dp: &'a str) -> Vec<&'a str> {
    gpt_oss(command, "4x8", tp, dp)
}

/// `command --model gpt-oss-20b --mesh MESH --tp TP --dp DP`.
pub fn gpt_oss<'a>(command: &'a str, mesh: &'a str, tp: &'a str, dp: &'a str) -> Vec<&'a str> {
    vec![
        command,
        "--model",
        "gpt-oss-20b",
        "--mesh",
        mesh,
        "--tp",
        tp,
        "--dp",
        dp,
    ]
}

/// A path as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// CSV rows as vectors of integers, header dropped.
pub fn csv(p: &Path) -> Vec<Vec<u64>> {
    let text = std::fs::read_to_string(p).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect()
}

/// Run the `wafernoc` binary like [`wafernoc`], but kill it and fail the
/// test if it takes longer than `secs` seconds (a hang on tiny input is a
/// bug, and a test must not hang with it).
pub fn wafernoc_within(secs: u64, args: &[&str]) -> Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wafernoc"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wafernoc");
    // Drain the pipes on threads so a chatty child cannot block on them.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut b).unwrap();
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut b).unwrap();
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wafernoc {args:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Assert a clean input error: exit status 2, no panic, and a message on
/// stderr mentioning every needle.
pub fn input_error(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit status {:?}: {e}", o.status);
    assert!(!e.contains("panicked"), "panic: {e}");
    for n in needles {
        assert!(e.contains(n), "error `{e}` does not mention `{n}`");
    }
}

/// Run `wafernoc` with `args` in the repository root, writing the file
/// `input` (relative to the root) into its standard input from another
/// thread while it runs: a pipe, as `cat FILE | wafernoc ... /dev/stdin`.
pub fn wafernoc_piped(input: &str, args: &[&str]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let bytes = std::fs::read(root().join(input)).expect("read the piped input");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wafernoc"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wafernoc");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        // A reader that stops early closes the pipe: not this test's error.
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("wait for wafernoc");
    writer.join().expect("the writer thread");
    out
}
