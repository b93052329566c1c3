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
/// and `name`.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wafernoc-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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
