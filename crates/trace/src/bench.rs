//! Decode-speed measurement on generated packet traces (used by
//! `wafernoc trace bench-decode`).
//!
//! Records are generated deterministically (1024 nodes, cycles growing by
//! 0..3, a quarter of the records with one or two dependencies), encoded to
//! memory in both encodings, then decoded with full validation, as the
//! readers' `open` does: the binary reader straight from the bytes (it
//! buffers its input itself), the text reader through a 64 KiB
//! `BufReader`. The best of three decode runs is reported, so the figure is
//! the decoder's speed, not the disk's.

use std::io::BufReader;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Result;
use crate::packet::{
    PacketRecord, PacketTextReader, PacketTextWriter, PacketTraceHeader, PacketTraceReader,
    PacketTraceWriter, SizeUnit,
};

/// Result of [`bench_decode`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodeBench {
    /// Records per run.
    pub records: u64,
    /// Size of the binary encoding in bytes.
    pub binary_bytes: u64,
    /// Size of the text encoding in bytes.
    pub text_bytes: u64,
    /// Best binary decode time in seconds.
    pub binary_secs: f64,
    /// Best text decode time in seconds.
    pub text_secs: f64,
    /// Binary decode rate, records per second.
    pub binary_records_per_sec: f64,
    /// Text decode rate, records per second.
    pub text_records_per_sec: f64,
}

/// Deterministic packet records for benchmarks and tests.
pub fn synthetic_packets(n: u64, nodes: u32) -> impl Iterator<Item = PacketRecord> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut cycle = 0u64;
    let nodes = u64::from(nodes.max(1));
    (0..n).map(move |id| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        cycle += s & 3;
        let deps = if id > 0 && (s >> 8) & 3 == 0 {
            let a = (s >> 16) % id;
            if (s >> 40) & 1 == 0 {
                vec![a]
            } else {
                vec![a, (s >> 24) % id]
            }
        } else {
            Vec::new()
        };
        PacketRecord {
            id,
            cycle,
            src: ((s >> 20) % nodes) as u32,
            dst: ((s >> 36) % nodes) as u32,
            size: 1 + ((s >> 50) % 16) as u32,
            class: ((s >> 60) & 3) as u8,
            deps,
        }
    })
}

fn best_of<F: FnMut() -> Result<u64>>(runs: usize, mut f: F) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t0 = Instant::now();
        std::hint::black_box(f()?);
        best = best.min(t0.elapsed());
    }
    Ok(best)
}

/// Encode `records` generated packets in both encodings and time decoding.
pub fn bench_decode(records: u64) -> Result<DecodeBench> {
    let header = PacketTraceHeader {
        nodes: 1024,
        unit: SizeUnit::Flits,
        meta: "bench-decode synthetic trace".into(),
    };
    let mut w = PacketTraceWriter::with_name(Vec::new(), &header, "bench.wnpt")?;
    for r in synthetic_packets(records, header.nodes) {
        w.write(&r)?;
    }
    let bin = w.finish()?;
    let mut w = PacketTextWriter::with_name(Vec::new(), &header, "bench.jsonl")?;
    for r in synthetic_packets(records, header.nodes) {
        w.write(&r)?;
    }
    let text = w.finish()?;
    let count = |it: &mut dyn Iterator<Item = Result<PacketRecord>>| -> Result<u64> {
        let mut n = 0u64;
        for r in it {
            std::hint::black_box(r?);
            n += 1;
        }
        Ok(n)
    };
    let binary = best_of(3, || {
        let mut r = PacketTraceReader::with_name(&bin[..], "bench.wnpt")?;
        count(&mut r)
    })?;
    let text_t = best_of(3, || {
        let mut r = PacketTextReader::with_name(
            BufReader::with_capacity(1 << 16, &text[..]),
            "bench.jsonl",
        )?;
        count(&mut r)
    })?;
    let rate = |d: Duration| records as f64 / d.as_secs_f64().max(1e-12);
    Ok(DecodeBench {
        records,
        binary_bytes: bin.len() as u64,
        text_bytes: text.len() as u64,
        binary_secs: binary.as_secs_f64(),
        text_secs: text_t.as_secs_f64(),
        binary_records_per_sec: rate(binary),
        text_records_per_sec: rate(text_t),
    })
}
