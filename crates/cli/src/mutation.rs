//! Test support: corrupted copies of the files the repository ships, for
//! the properties that every check made before simulating returns an
//! error or accepts the input, and never panics ("bad input gets a clear
//! error, never a panic"). Used by the `run`/`booksim` (cmd_sim), `moe`
//! and sweep-file properties.

use std::path::{Path, PathBuf};

use crate::cmd_sim::read_text;

/// The texts of the repository's files under `dir` ending in `ext`
/// (recursively).
pub(crate) fn shipped(dir: &str, ext: &str) -> Vec<String> {
    shipped_files(dir, ext)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// [`shipped`] with each file's path.
pub(crate) fn shipped_files(dir: &str, ext: &str) -> Vec<(PathBuf, String)> {
    fn walk(d: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).expect("a shipped directory") {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                walk(&p, ext, out);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    let mut paths = Vec::new();
    walk(&root, ext, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let t = read_text(&p).unwrap();
            (p, t)
        })
        .collect()
}

/// What an edit may insert: values and syntax that the parsers must
/// refuse or take.
const TOKENS: [&str; 16] = [
    "0",
    "-1",
    "1e308",
    "nan",
    "inf",
    "\"\"",
    "[]",
    "{",
    "}",
    ";",
    "=",
    "//",
    "\n",
    "99999999999999999999",
    "0.5",
    "true",
];

/// Apply `edits` to `text`: each `(at, op, byte, token)` overwrites a
/// byte, deletes up to 20 bytes, inserts a token, or swaps two lines.
pub(crate) fn mutate(text: &str, edits: &[(u16, u8, u8, u8)]) -> String {
    let mut b = text.as_bytes().to_vec();
    for &(at, op, byte, token) in edits {
        let at = at as usize % (b.len() + 1);
        match op {
            0 if at < b.len() => b[at] = byte,
            1 => {
                let end = (at + 1 + byte as usize % 20).min(b.len());
                b.drain(at..end);
            }
            2 => {
                let t = TOKENS[token as usize % TOKENS.len()].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            _ => {
                let mut lines: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
                let n = lines.len();
                lines.swap(at % n, (byte as usize) % n);
                b = lines.join(&b'\n');
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// The edits [`mutate`] takes: one to five `(at, op, byte, token)`.
pub(crate) fn edits() -> impl proptest::strategy::Strategy<Value = Vec<(u16, u8, u8, u8)>> {
    use proptest::prelude::*;
    proptest::collection::vec((any::<u16>(), 0u8..4, any::<u8>(), any::<u8>()), 1..6)
}
