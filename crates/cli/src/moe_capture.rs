//! `wafernoc moe --capture PATH` and `--per-packet PATH.csv`: one packet
//! trace (and one CSV of delivered packets) per phase run.
//!
//! Every phase (all-reduce, dispatch, combine) runs on a freshly built
//! network starting at cycle 0, so each phase run is one self-contained
//! packet trace. The file of a phase is `PATH` with a tag inserted before
//! the extension: `cap.wnpt` → `cap.allreduce.wnpt`, `cap.dispatch.wnpt`,
//! `cap.combine.wnpt`; with `--routing trace:FILE` the tag also names the
//! serving iteration and layer: `cap.i100.l2.dispatch.wnpt`. The same
//! scheme applies to `--per-packet` (`pp.csv` → `pp.allreduce.csv`).
//!
//! A trace record is a packet in enqueue order: `cycle` is its enqueue
//! (creation) cycle, `deps` the packets whose delivery made it issuable
//! (see `wafernoc_traffic::collective::CapturedPacket`), so `replay-packets
//! --mode open` and `--mode deps` both reproduce the run exactly. The
//! header's `meta` is JSON with the resolved network (`network`, which
//! `replay-packets` uses when given no `--config`), the phase, iteration and
//! layer, and the MoE configuration.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wafernoc_mesh::Delivered;
use wafernoc_trace::{PacketRecord, PacketTraceHeader, SizeUnit};
use wafernoc_traffic::collective::{CapturedPacket, PacketCapture};

use crate::cmd_sim::CaptureWriter;
use crate::CliError;

/// `base` with `.tag` inserted before its extension (or appended when it
/// has none), in the same directory.
pub fn tagged(base: &Path, tag: &str) -> PathBuf {
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}.{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{tag}"),
    };
    base.with_file_name(name)
}

/// One phase run written by [`MoeCapture`].
#[derive(Debug, Clone, Serialize)]
pub struct PhaseFile {
    /// Serving iteration (`--routing trace:FILE` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iteration: Option<usize>,
    /// MoE layer (`--routing trace:FILE` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// `allreduce`, `dispatch` or `combine`.
    pub phase: String,
    /// The packet trace, if `--capture` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The per-packet CSV, if `--per-packet` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_packet: Option<String>,
    /// Packets of the phase.
    pub packets: u64,
}

/// The open files of the current phase.
struct Open {
    file: PhaseFile,
    writer: Option<CaptureWriter>,
    csv: Option<(PathBuf, String)>,
}

/// A [`PacketCapture`] writing one packet trace and/or one per-packet CSV
/// per phase run. Errors (unwritable path, ...) are kept, the first one is
/// returned by [`finish_run`](Self::finish_run).
pub struct MoeCapture {
    trace_base: Option<PathBuf>,
    csv_base: Option<PathBuf>,
    nodes: u32,
    /// The JSON object written (completed per phase) into every header's
    /// `meta`; may be changed between runs.
    pub meta: serde_json::Value,
    run: (Option<usize>, Option<usize>),
    open: Option<Open>,
    error: Option<CliError>,
    /// Every phase file closed so far, in run order.
    pub files: Vec<PhaseFile>,
}

impl MoeCapture {
    /// Capture to `trace_base` and/or `csv_base` (tags inserted per phase);
    /// `meta` (a JSON object) goes into every trace header, completed with
    /// the phase, iteration and layer. The trace extension is checked here.
    pub fn new(
        trace_base: Option<&Path>,
        csv_base: Option<&Path>,
        nodes: u32,
        meta: serde_json::Value,
    ) -> Result<Self, CliError> {
        if let Some(p) = trace_base {
            wafernoc_trace::encoding_for_path(p, wafernoc_trace::TraceKind::Packet)
                .map_err(|e| CliError::new(format!("--capture: {e}")))?;
        }
        // The files are written phase by phase, named after the base: fail
        // now, not after the simulation, if their directory does not exist.
        for (flag, base) in [("--capture", trace_base), ("--per-packet", csv_base)] {
            let Some(base) = base else { continue };
            let dir = match base.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(CliError::new(format!(
                    "{flag} {}: {} is not a directory",
                    base.display(),
                    dir.display()
                )));
            }
            // ... nor if it cannot be written (a read-only directory was
            // found only at the first phase's file, after simulating it).
            // Named by pid and time, so that a file a killed run left
            // behind (and a reused pid) cannot make `create_new` refuse.
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let probe = dir.join(format!(
                ".wafernoc-write-check-{}-{stamp}",
                std::process::id()
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
            {
                Ok(_) => {
                    let _ = std::fs::remove_file(&probe);
                }
                Err(e) => {
                    return Err(CliError::new(format!(
                        "{flag} {}: cannot write in {}: {e}",
                        base.display(),
                        dir.display()
                    )))
                }
            }
        }
        Ok(MoeCapture {
            trace_base: trace_base.map(Path::to_path_buf),
            csv_base: csv_base.map(Path::to_path_buf),
            nodes,
            meta,
            run: (None, None),
            open: None,
            error: None,
            files: Vec::new(),
        })
    }

    /// The next phases belong to serving iteration `it`, layer `layer`.
    pub fn set_run(&mut self, it: usize, layer: usize) {
        self.run = (Some(it), Some(layer));
    }

    fn tag(&self, phase: &str) -> String {
        match self.run {
            (Some(i), Some(l)) => format!("i{i}.l{l}.{phase}"),
            _ => phase.to_string(),
        }
    }

    fn keep(&mut self, e: CliError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn close(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if let Some(w) = open.writer {
            if let Err(e) = w.finish() {
                self.keep(CliError::new(format!("capture: {e}")));
            }
        }
        if let Some((p, text)) = open.csv {
            if let Err(e) = std::fs::write(&p, text) {
                self.keep(CliError::new(format!("--per-packet: {}: {e}", p.display())));
            }
        }
        self.files.push(open.file);
    }

    /// Close the current phase's files; the first error of the run, if any.
    pub fn finish_run(&mut self) -> Result<(), CliError> {
        self.close();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl PacketCapture for MoeCapture {
    fn begin_phase(&mut self, phase: &str) {
        self.close();
        let tag = self.tag(phase);
        let mut file = PhaseFile {
            iteration: self.run.0,
            layer: self.run.1,
            phase: phase.to_string(),
            trace: None,
            per_packet: None,
            packets: 0,
        };
        let mut writer = None;
        if let Some(base) = self.trace_base.clone() {
            let path = tagged(&base, &tag);
            let mut meta = self.meta.clone();
            if let Some(m) = meta.as_object_mut() {
                m.insert("phase".into(), phase.into());
                if let (Some(i), Some(l)) = self.run {
                    m.insert("iteration".into(), i.into());
                    m.insert("layer".into(), l.into());
                }
            }
            let header = PacketTraceHeader {
                nodes: self.nodes,
                unit: SizeUnit::Flits,
                meta: meta.to_string(),
            };
            match CaptureWriter::create(&path, &header) {
                Ok(w) => writer = Some(w),
                Err(e) => self.keep(CliError::new(format!("capture: {e}"))),
            }
            file.trace = Some(path.display().to_string());
        }
        let csv = self.csv_base.as_ref().map(|base| {
            let path = tagged(base, &tag);
            file.per_packet = Some(path.display().to_string());
            (
                path,
                String::from("src,dst,size,ctime,itime,atime,latency\n"),
            )
        });
        self.open = Some(Open { file, writer, csv });
    }

    fn packet(&mut self, p: &CapturedPacket<'_>) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        open.file.packets += 1;
        let mut failed = None;
        if let Some(w) = open.writer.as_mut() {
            let rec = PacketRecord {
                id: p.id,
                cycle: p.cycle,
                src: p.src,
                dst: p.dst,
                size: u32::from(p.size),
                class: p.class,
                deps: p.deps.to_vec(),
            };
            if let Err(e) = w.write(&rec) {
                open.writer = None;
                failed = Some(CliError::new(format!("capture: {e}")));
            }
        }
        if let Some(e) = failed {
            self.keep(e);
        }
    }

    fn delivered(&mut self, d: &Delivered) {
        use std::fmt::Write as _;
        if let Some((_, text)) = self.open.as_mut().and_then(|o| o.csv.as_mut()) {
            let _ = writeln!(
                text,
                "{},{},{},{},{},{},{}",
                d.src,
                d.dst,
                d.size,
                d.ctime,
                d.itime,
                d.atime,
                d.atime - d.ctime
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tagged;
    use std::path::Path;

    #[test]
    fn tag_goes_before_the_extension() {
        assert_eq!(
            tagged(Path::new("d/cap.wnpt"), "i0.l1.dispatch"),
            Path::new("d/cap.i0.l1.dispatch.wnpt")
        );
        assert_eq!(
            tagged(Path::new("cap.x.jsonl"), "combine"),
            Path::new("cap.x.combine.jsonl")
        );
        assert_eq!(
            tagged(Path::new("pp"), "allreduce"),
            Path::new("pp.allreduce")
        );
    }
}
