//! Unit tests for every bad-input case, each asserting the message. Files
//! that break an invariant are built with the raw codec (bypassing the
//! validating writers).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::batching::{iterations, Batching};
use crate::codec::{self, PACKET_MAGIC, ROUTING_MAGIC};
use crate::import::{
    import, import_esft, import_esft_k, import_generic_reader, import_gpt_oss_json, ImportFormat,
    ImportOptions,
};
use crate::packet::{PacketTextReader, PacketTextWriter, PacketTraceReader, PacketTraceWriter};
use crate::routing::{RoutingReader, TEXT_HEADER_KEY};
use crate::*;

fn header(nodes: u32) -> PacketTraceHeader {
    PacketTraceHeader {
        nodes,
        unit: SizeUnit::Flits,
        meta: "test".into(),
    }
}

fn pkt(id: u64, cycle: u64, src: u32, dst: u32, deps: Vec<u64>) -> PacketRecord {
    PacketRecord {
        id,
        cycle,
        src,
        dst,
        size: 1,
        class: 0,
        deps,
    }
}

/// A binary packet file written without validation.
fn raw_packet_file(h: &PacketTraceHeader, recs: &[PacketRecord]) -> Vec<u8> {
    let mut w = codec::create(Vec::new(), "t", &PACKET_MAGIC, h).unwrap();
    for r in recs {
        w.write(r, "t").unwrap();
    }
    w.finish("t").unwrap()
}

fn good_packet_file() -> Vec<u8> {
    let mut w = PacketTraceWriter::new(Vec::new(), &header(4)).unwrap();
    w.write(&pkt(0, 0, 0, 1, vec![])).unwrap();
    w.write(&pkt(1, 2, 1, 2, vec![0])).unwrap();
    w.write(&pkt(2, 2, 3, 0, vec![0, 1])).unwrap();
    w.finish().unwrap()
}

fn read_bin(bytes: &[u8]) -> Result<Vec<PacketRecord>> {
    PacketTraceReader::with_name(bytes, "t.wnpt")?.collect()
}

fn read_text(text: &str) -> Result<Vec<PacketRecord>> {
    PacketTextReader::with_name(BufReader::new(text.as_bytes()), "t.jsonl")?.collect()
}

fn msg<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

// ------------------------------------------------------------ packet binary

/// A source that gives one byte per read and fails once, at `fail_at`.
struct FailOnce<'a> {
    bytes: &'a [u8],
    pos: usize,
    fail_at: usize,
    failed: bool,
}

impl std::io::Read for FailOnce<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.fail_at && !self.failed {
            self.failed = true;
            return Err(std::io::Error::other("injected failure"));
        }
        match (self.bytes.get(self.pos), buf.first_mut()) {
            (Some(&b), Some(out)) => {
                *out = b;
                self.pos += 1;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// An I/O error the source gives once, at any byte, is reported, never
/// retried away (the binary reader peeks ahead for bincode, where an
/// error has no way out but to be kept for the next read).
#[test]
fn packet_binary_reports_a_one_off_io_error_at_every_byte() {
    let f = good_packet_file();
    for fail_at in 0..=f.len() {
        let src = FailOnce {
            bytes: &f,
            pos: 0,
            fail_at,
            failed: false,
        };
        let r = PacketTraceReader::with_name(src, "t.wnpt")
            .and_then(|r| r.collect::<Result<Vec<PacketRecord>>>());
        let e = msg(r);
        assert!(e.contains("injected failure"), "byte {fail_at}: {e}");
    }
}

/// A live source (a pipe whose writer has written `avail` bytes so far):
/// gives them `chunk` at a time, then reports that nothing is there yet.
struct Pipe<'a> {
    bytes: &'a [u8],
    pos: usize,
    avail: usize,
    chunk: usize,
}

impl std::io::Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = buf.len().min(self.chunk).min(self.avail - self.pos);
        if k == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "nothing written yet",
            ));
        }
        buf[..k].copy_from_slice(&self.bytes[self.pos..self.pos + k]);
        self.pos += k;
        Ok(k)
    }
}

/// Records written to a pipe are read as soon as their last byte is
/// there: with the first `avail` bytes written, the reader yields as many
/// records as from a file cut at `avail`, and never asks for bytes past
/// the record it decodes (bincode peeks up to 9 bytes ahead for a
/// varint; a reader that filled the peek from the source would wait for
/// the next record's bytes before returning this one).
#[test]
fn packet_binary_reads_each_record_of_a_live_source_once_it_is_written() {
    let f = good_packet_file();
    fn count<R: std::io::Read>(r: Result<PacketTraceReader<R>>) -> usize {
        r.map_or(0, |r| r.take_while(|x| x.is_ok()).count())
    }
    let mut seen = 0;
    for avail in 0..=f.len() {
        let cut = count(PacketTraceReader::with_name(&f[..avail], "t.wnpt"));
        for chunk in [1, 4, f.len()] {
            let pipe = Pipe {
                bytes: &f,
                pos: 0,
                avail,
                chunk,
            };
            let live = count(PacketTraceReader::with_name(pipe, "t.wnpt"));
            assert_eq!(live, cut, "{avail} bytes written, {chunk} a read");
        }
        seen = seen.max(cut);
    }
    assert_eq!(seen, 3);
}

#[test]
fn packet_binary_roundtrip_and_detect() {
    let f = good_packet_file();
    let recs = read_bin(&f).unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[2].deps, vec![0, 1]);
    assert_eq!(
        detect_bytes(&f).unwrap(),
        TraceFormat {
            kind: TraceKind::Packet,
            encoding: Encoding::Binary
        }
    );
}

/// Bytes after the last record: end tag, record count, checksum.
const END: usize = 1 + 8 + 8;

#[test]
fn packet_binary_truncated_inside_record() {
    let f = good_packet_file();
    let cut = &f[..f.len() - END - 1];
    assert_eq!(msg(read_bin(cut)), "t.wnpt: truncated record 2");
}

#[test]
fn packet_binary_truncated_at_record_boundary() {
    let f = good_packet_file();
    let cut = &f[..f.len() - END];
    assert_eq!(
        msg(read_bin(cut)),
        "t.wnpt: truncated after record 2: end-of-stream marker missing"
    );
}

#[test]
fn packet_binary_truncated_in_end_marker_and_header() {
    let f = good_packet_file();
    assert_eq!(
        msg(read_bin(&f[..f.len() - 8 - 3])),
        "t.wnpt: truncated end-of-stream marker after 3 records"
    );
    assert_eq!(
        msg(read_bin(&f[..f.len() - 3])),
        "t.wnpt: truncated checksum after 3 records"
    );
    assert_eq!(
        msg(read_bin(&f[..5])),
        "t.wnpt: truncated header (inside the magic)"
    );
    assert_eq!(
        msg(read_bin(&f[..9])),
        "t.wnpt: truncated header (inside the version)"
    );
    assert_eq!(msg(read_bin(&f[..11])), "t.wnpt: truncated header");
    assert_eq!(msg(read_bin(&[])), "t.wnpt: empty file: no header");
}

/// The checksum (format version 2): every single bit flip anywhere in a
/// file is an error (was: about half of them decoded to valid records).
#[test]
fn every_single_bit_flip_is_an_error() {
    let f = good_packet_file();
    for bit in 0..f.len() * 8 {
        let mut g = f.clone();
        g[bit / 8] ^= 1 << (bit % 8);
        assert!(read_bin(&g).is_err(), "bit {bit} flipped decoded");
    }
    let meta = routing_meta(8, 2, 1);
    let mut w = RoutingWriter::new(Vec::new(), &meta).unwrap();
    w.write(&Request {
        id: 0,
        tokens: vec![tok(&[1, 2]), tok(&[3, 4])],
    })
    .unwrap();
    let f = w.finish().unwrap();
    for bit in 0..f.len() * 8 {
        let mut g = f.clone();
        g[bit / 8] ^= 1 << (bit % 8);
        assert!(read_routing(&g).is_err(), "bit {bit} flipped decoded");
    }
    // A flip that still decodes is caught by the checksum alone: a
    // record's cycle 0 -> 2 (the first record's first field after the
    // header is its id; here a later varint byte).
    let f = good_packet_file();
    let caught = (0..f.len() * 8)
        .filter(|&bit| {
            let mut g = f.clone();
            g[bit / 8] ^= 1 << (bit % 8);
            msg(read_bin(&g)).contains("checksum mismatch")
        })
        .count();
    assert!(caught > 0, "no flip reached the checksum");
}

/// Version-1 files (no checksum) are still read.
#[test]
fn version_1_files_without_checksum_are_read() {
    let f = good_packet_file();
    let mut v1 = f[..f.len() - 8].to_vec();
    v1[8..10].copy_from_slice(&1u16.to_le_bytes());
    assert_eq!(read_bin(&v1).unwrap(), read_bin(&f).unwrap());
    // ... and a version-1 file with 8 more bytes is not.
    let mut bad = f.clone();
    bad[8..10].copy_from_slice(&1u16.to_le_bytes());
    assert!(msg(read_bin(&bad)).contains("trailing data"));
}

#[test]
fn every_strict_prefix_of_a_binary_file_is_an_error() {
    let f = good_packet_file();
    for n in 0..f.len() {
        assert!(read_bin(&f[..n]).is_err(), "prefix of {n} bytes decoded");
    }
}

#[test]
fn packet_binary_wrong_magic() {
    let mut f = good_packet_file();
    f[0] = b'X';
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: wrong magic \"XNOCPKT\\\\x00\": not a wafernoc binary packet trace (WNOCPKT)"
    );
    // A routing trace is not a packet trace.
    let mut v = Vec::new();
    let meta = routing_meta(8, 2, 1);
    RoutingWriter::new(&mut v, &meta).unwrap().finish().unwrap();
    assert!(msg(read_bin(&v)).contains("wrong magic"));
}

#[test]
fn packet_binary_newer_version() {
    let mut f = good_packet_file();
    f[8..10].copy_from_slice(&3u16.to_le_bytes());
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: format version 3 is newer than this build supports (2)"
    );
    f[8..10].copy_from_slice(&0u16.to_le_bytes());
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: header: malformed: format version 0 is not valid"
    );
}

#[test]
fn packet_binary_src_dst_out_of_range() {
    let f = raw_packet_file(&header(4), &[pkt(0, 0, 4, 1, vec![])]);
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: record 0: src 4 out of range (nodes = 4)"
    );
    let f = raw_packet_file(
        &header(4),
        &[pkt(0, 0, 0, 1, vec![]), pkt(1, 0, 0, 9, vec![])],
    );
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: record 1: dst 9 out of range (nodes = 4)"
    );
}

#[test]
fn packet_binary_non_monotonic_cycle() {
    let f = raw_packet_file(
        &header(4),
        &[pkt(0, 5, 0, 1, vec![]), pkt(1, 3, 0, 1, vec![])],
    );
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: non-monotonic cycle at record 1: 3 after 5"
    );
}

#[test]
fn packet_binary_unknown_dependency() {
    let f = raw_packet_file(
        &header(4),
        &[pkt(0, 0, 0, 1, vec![]), pkt(1, 0, 0, 1, vec![7])],
    );
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: record 1 depends on unknown id 7 (dependencies must be earlier ids)"
    );
    // A self-dependency is named as one.
    let f = raw_packet_file(&header(4), &[pkt(0, 0, 0, 1, vec![0])]);
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: record 0 (id 0) depends on itself"
    );
}

#[test]
fn packet_binary_non_dense_id_zero_size_zero_nodes() {
    let f = raw_packet_file(&header(4), &[pkt(3, 0, 0, 1, vec![])]);
    assert_eq!(
        msg(read_bin(&f)),
        "t.wnpt: record 0 has id 3: ids must be dense (record 0 must have id 0)"
    );
    let mut p = pkt(0, 0, 0, 1, vec![]);
    p.size = 0;
    let f = raw_packet_file(&header(4), &[p]);
    assert_eq!(msg(read_bin(&f)), "t.wnpt: record 0: size must be >= 1");
    let f = raw_packet_file(&header(0), &[]);
    assert_eq!(msg(read_bin(&f)), "t.wnpt: header: nodes must be >= 1");
}

#[test]
fn packet_binary_end_marker_problems() {
    let f = good_packet_file();
    let mut g = f.clone();
    let n = g.len();
    g[n - 16] = 7; // stated count 7
    assert_eq!(
        msg(read_bin(&g)),
        "t.wnpt: record 3: malformed: end-of-stream marker says 7 records but 3 were read"
    );
    let mut g = f.clone();
    g.push(0);
    assert_eq!(
        msg(read_bin(&g)),
        "t.wnpt: record 3: malformed: trailing data after the end-of-stream marker"
    );
    let mut g = f.clone();
    g[n - END] = 5; // tag byte
    assert_eq!(
        msg(read_bin(&g)),
        "t.wnpt: record 3: malformed: bad record tag 5 (expected 1 = record or 0 = end of stream)"
    );
}

#[test]
fn packet_writer_refuses_invalid_records() {
    let mut w = PacketTraceWriter::with_name(Vec::new(), &header(4), "out.wnpt").unwrap();
    w.write(&pkt(0, 5, 0, 1, vec![])).unwrap();
    assert_eq!(
        msg(w.write(&pkt(1, 4, 0, 1, vec![]))),
        "out.wnpt: non-monotonic cycle at record 1: 4 after 5"
    );
    let mut w = PacketTextWriter::with_name(Vec::new(), &header(4), "out.jsonl").unwrap();
    assert_eq!(
        msg(w.write(&pkt(0, 0, 0, 4, vec![]))),
        "out.jsonl: line 2: record 0: dst 4 out of range (nodes = 4)"
    );
    assert!(PacketTraceWriter::new(Vec::new(), &header(0)).is_err());
}

// -------------------------------------------------------------- packet text

const TEXT_HEADER: &str =
    r#"{"wafernoc_packet_trace": 1, "nodes": 4, "unit": "flits", "meta": "m"}"#;

#[test]
fn packet_text_good() {
    let t = format!(
        "{TEXT_HEADER}\n{}\n\n{}\n",
        r#"{"id":0,"cycle":0,"src":0,"dst":1,"size":2}"#,
        r#"{"id":1,"cycle":3,"src":2,"dst":3,"size":1,"class":2,"deps":[0]}"#
    );
    let recs = read_text(&t).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].class, 2);
    assert_eq!(
        detect_bytes(t.as_bytes()).unwrap(),
        TraceFormat {
            kind: TraceKind::Packet,
            encoding: Encoding::Text
        }
    );
}

#[test]
fn packet_text_malformed_json_line() {
    let t = format!(
        "{TEXT_HEADER}\n{}\n{{\"id\":1,\"cycle\":\n",
        r#"{"id":0,"cycle":0,"src":0,"dst":1,"size":2}"#
    );
    let m = msg(read_text(&t));
    assert!(
        m.starts_with("t.jsonl: line 3: malformed: bad JSON: EOF while parsing"),
        "{m}"
    );
    let t = format!(
        "{TEXT_HEADER}\n{}\n",
        r#"{"id":0,"cycle":0,"src":0,"dst":1,"size":2,"bogus":1}"#
    );
    let m = msg(read_text(&t));
    assert!(
        m.starts_with("t.jsonl: line 2: malformed: bad JSON: unknown field `bogus`"),
        "{m}"
    );
    let m = msg(read_text("not json\n"));
    assert!(m.starts_with("t.jsonl: line 1: malformed: bad JSON"), "{m}");
}

#[test]
fn packet_text_invariants_name_the_line() {
    let t = format!(
        "{TEXT_HEADER}\n{}\n{}\n",
        r#"{"id":0,"cycle":5,"src":0,"dst":1,"size":2}"#,
        r#"{"id":1,"cycle":3,"src":0,"dst":1,"size":2}"#
    );
    assert_eq!(
        msg(read_text(&t)),
        "t.jsonl: line 3: non-monotonic cycle at record 1: 3 after 5"
    );
    let t = format!(
        "{TEXT_HEADER}\n{}\n",
        r#"{"id":0,"cycle":5,"src":7,"dst":1,"size":2}"#
    );
    assert_eq!(
        msg(read_text(&t)),
        "t.jsonl: line 2: record 0: src 7 out of range (nodes = 4)"
    );
    let t = format!(
        "{TEXT_HEADER}\n{}\n",
        r#"{"id":0,"cycle":5,"src":0,"dst":1,"size":2,"deps":[3]}"#
    );
    assert_eq!(
        msg(read_text(&t)),
        "t.jsonl: line 2: record 0 depends on unknown id 3 (dependencies must be earlier ids)"
    );
    // A JSON error names the file's line and the column in it, not the
    // line-1 position serde sees in the one line it parses.
    let t = format!(
        "{TEXT_HEADER}\n{}\n",
        r#"{"id":0,"cycle":5,"src":0,"dst":1,"size":x}"#
    );
    let m = msg(read_text(&t));
    assert!(
        m.starts_with("t.jsonl: line 2: malformed: bad JSON: "),
        "{m}"
    );
    assert!(m.ends_with("expected value (column 42)"), "{m}");
    assert!(!m.contains("at line"), "{m}");
}

#[test]
fn packet_text_header_problems() {
    assert_eq!(msg(read_text("")), "t.jsonl: empty file: no header line");
    assert_eq!(
        msg(read_text(
            r#"{"wafernoc_packet_trace": 3, "nodes": 4, "unit": "flits", "future": 1}"#
        )),
        "t.jsonl: format version 3 is newer than this build supports (2)"
    );
    let m = msg(read_text(r#"{"nodes": 4, "unit": "flits"}"#));
    assert_eq!(
        m,
        "t.jsonl: line 1: malformed: not a wafernoc packet trace: the header object has no key \"wafernoc_packet_trace\""
    );
    let m = msg(read_text(
        r#"{"wafernoc_packet_trace": 1, "nodes": 4, "unit": "words"}"#,
    ));
    assert!(
        m.starts_with("t.jsonl: line 1: malformed: bad header: unknown variant `words`"),
        "{m}"
    );
    assert_eq!(
        msg(read_text(
            r#"{"wafernoc_packet_trace": 1, "nodes": 0, "unit": "bytes"}"#
        )),
        "t.jsonl: line 1: nodes must be >= 1"
    );
}

// ------------------------------------------------------------------ routing

fn routing_meta(e: u16, k: u16, l: u16) -> RoutingMeta {
    RoutingMeta {
        model: "m".into(),
        source: "s".into(),
        license: "l".into(),
        num_experts: e,
        top_k: k,
        num_layers: l,
        phase: Phase::Decode,
    }
}

fn tok(experts: &[u16]) -> TokenRouting {
    TokenRouting {
        experts: experts.to_vec(),
        weights: None,
    }
}

fn raw_routing_file(meta: &RoutingMeta, reqs: &[Request]) -> Vec<u8> {
    let mut w = codec::create(Vec::new(), "r", &ROUTING_MAGIC, meta).unwrap();
    for r in reqs {
        w.write(r, "r").unwrap();
    }
    w.finish("r").unwrap()
}

fn read_routing(bytes: &[u8]) -> Result<Vec<Request>> {
    RoutingReader::with_name(bytes, "r.wnrt")?.collect()
}

#[test]
fn routing_binary_expert_out_of_range() {
    let meta = routing_meta(8, 2, 2);
    let f = raw_routing_file(
        &meta,
        &[Request {
            id: 0,
            tokens: vec![tok(&[0, 1, 2, 3]), tok(&[0, 1, 2, 8])],
        }],
    );
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: record 0 (request id 0), token 1, layer 1: expert 8 >= num_experts 8"
    );
}

#[test]
fn routing_binary_duplicate_count_weights_ids() {
    let meta = routing_meta(8, 2, 2);
    let f = raw_routing_file(
        &meta,
        &[Request {
            id: 4,
            tokens: vec![tok(&[0, 1, 3, 3])],
        }],
    );
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: record 0 (request id 4), token 0, layer 1: duplicated expert 3"
    );
    let f = raw_routing_file(
        &meta,
        &[Request {
            id: 0,
            tokens: vec![tok(&[0, 1, 3])],
        }],
    );
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: record 0 (request id 0), token 0: has 3 expert ids, expected num_layers*top_k = 2*2 = 4"
    );
    let mut t = tok(&[0, 1, 2, 3]);
    t.weights = Some(vec![0.5; 3]);
    let f = raw_routing_file(
        &meta,
        &[Request {
            id: 0,
            tokens: vec![t],
        }],
    );
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: record 0 (request id 0), token 0: has 3 weights, expected 4"
    );
    let mut t = tok(&[0, 1, 2, 3]);
    t.weights = Some(vec![0.5, 0.5, f32::NAN, 0.5]);
    let f = raw_routing_file(
        &meta,
        &[Request {
            id: 0,
            tokens: vec![t],
        }],
    );
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: record 0 (request id 0), token 0, layer 1: weight NaN is not finite"
    );
    let r = |id| Request {
        id,
        tokens: vec![tok(&[0, 1, 2, 3])],
    };
    let f = raw_routing_file(&meta, &[r(5), r(5)]);
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: record 1 (request id 5): request ids must strictly increase (previous id 5)"
    );
    let f = raw_routing_file(
        &meta,
        &[Request {
            id: 0,
            tokens: vec![],
        }],
    );
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: record 0 (request id 0): request has no tokens"
    );
}

#[test]
fn routing_binary_header_problems() {
    let f = raw_routing_file(&routing_meta(4, 5, 1), &[]);
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: header: top_k must be in 1..=4 (num_experts), got 5"
    );
    let mut f = raw_routing_file(&routing_meta(4, 2, 1), &[]);
    f[8] = 9;
    assert_eq!(
        msg(read_routing(&f)),
        "r.wnrt: format version 9 is newer than this build supports (2)"
    );
    let f = good_packet_file();
    assert!(msg(read_routing(&f)).starts_with("r.wnrt: wrong magic"));
}

#[test]
fn routing_binary_truncation() {
    let meta = routing_meta(8, 2, 1);
    let mut w = RoutingWriter::new(Vec::new(), &meta).unwrap();
    for id in 0..3 {
        w.write(&Request {
            id,
            tokens: vec![tok(&[1, 2]), tok(&[3, 4])],
        })
        .unwrap();
    }
    let f = w.finish().unwrap();
    assert_eq!(read_routing(&f).unwrap().len(), 3);
    assert_eq!(
        msg(read_routing(&f[..f.len() - END - 1])),
        "r.wnrt: truncated record 2"
    );
    assert_eq!(
        msg(read_routing(&f[..f.len() - END])),
        "r.wnrt: truncated after record 2: end-of-stream marker missing"
    );
    for n in 0..f.len() {
        assert!(read_routing(&f[..n]).is_err());
    }
}

// ------------------------------------------------------------ generic JSONL

fn generic(text: &str, opts: &ImportOptions) -> Result<RoutingTrace> {
    import_generic_reader(BufReader::new(text.as_bytes()), "g.jsonl", opts)
}

#[test]
fn generic_infers_shape_and_ignores_unknown_keys() {
    let t = "{\"dataset\":\"x\",\"experts\":[[[0,5],[1,2]],[[4,3],[0,1]]]}\n\
             \n{\"request\":7,\"experts\":[[[2,1],[0,5]]],\"weights\":[[[0.5,0.25],[1,0]]]}\n";
    let tr = generic(t, &ImportOptions::default()).unwrap();
    assert_eq!(
        (tr.meta.num_experts, tr.meta.top_k, tr.meta.num_layers),
        (6, 2, 2)
    );
    assert_eq!(tr.meta.phase, Phase::Decode);
    assert_eq!(tr.requests[0].id, 0);
    assert_eq!(tr.requests[1].id, 7);
    assert_eq!(tr.requests[0].tokens[1].experts, vec![4, 3, 0, 1]);
    assert_eq!(tr.requests[0].tokens[0].weights, None);
    assert_eq!(
        tr.requests[1].tokens[0].weights,
        Some(vec![0.5, 0.25, 1.0, 0.0])
    );
    let m = msg(generic(
        "{\"request\":3,\"experts\":[[[0]]]}\n{\"experts\":[[[1]]]}\n",
        &ImportOptions::default(),
    ));
    assert_eq!(m, "g.jsonl: line 2: record 1 (request id 1): request ids must strictly increase (previous id 3)");
}

#[test]
fn generic_checks_options_against_data() {
    let t = "{\"experts\":[[[0,5],[1,2]]]}\n";
    let m = msg(generic(
        t,
        &ImportOptions {
            num_experts: Some(5),
            ..Default::default()
        },
    ));
    assert_eq!(
        m,
        "g.jsonl: line 1: record 0 (request id 0), token 0, layer 0: expert 5 >= num_experts 5"
    );
    let m = msg(generic(
        t,
        &ImportOptions {
            top_k: Some(3),
            ..Default::default()
        },
    ));
    assert_eq!(
        m,
        "g.jsonl: line 1: request id 0, token 0, layer 0: has 2 experts, expected top_k = 3"
    );
    let m = msg(generic(
        t,
        &ImportOptions {
            num_layers: Some(3),
            ..Default::default()
        },
    ));
    assert_eq!(
        m,
        "g.jsonl: line 1: request id 0, token 0: has 2 layers, expected num_layers = 3"
    );
    let t2 = "{\"experts\":[[[0,5],[1,2]]]}\n{\"experts\":[[[0,5],[1,2,3]]]}\n";
    let m = msg(generic(t2, &ImportOptions::default()));
    assert_eq!(
        m,
        "g.jsonl: line 2: request id 1, token 0, layer 1: has 3 experts, expected top_k = 2"
    );
    let t3 = "{\"experts\":[[[0,0],[1,2]]]}\n";
    let m = msg(generic(t3, &ImportOptions::default()));
    assert_eq!(
        m,
        "g.jsonl: line 1: record 0 (request id 0), token 0, layer 0: duplicated expert 0"
    );
}

#[test]
fn generic_malformed_lines() {
    let m = msg(generic(
        "{\"experts\":[[[0,1]]]}\n{\"experts\":[[[0,1]]\n",
        &ImportOptions::default(),
    ));
    assert!(m.starts_with("g.jsonl: line 2: malformed: bad JSON"), "{m}");
    let m = msg(generic(
        "{\"experts\":[[[0,70000]]]}\n",
        &ImportOptions::default(),
    ));
    assert!(
        m.starts_with(
            "g.jsonl: line 1: malformed: bad request line: invalid value: integer `70000`"
        ),
        "{m}"
    );
    let m = msg(generic("{\"request\":1}\n", &ImportOptions::default()));
    assert!(
        m.contains("line 1: malformed: bad request line: missing field `experts`"),
        "{m}"
    );
    // No request, or requests without a token: nothing to infer from (the
    // second said "no requests" until session 15).
    for text in ["", "{\"request\":0,\"experts\":[]}\n"] {
        let m = msg(generic(text, &ImportOptions::default()));
        assert_eq!(
            m,
            "g.jsonl: no token with experts: cannot infer top_k and num_layers (give them as \
             options)"
        );
    }
}

#[test]
fn routing_text_header_and_versions() {
    let h = format!(
        "{{\"{TEXT_HEADER_KEY}\":1,\"model\":\"m\",\"source\":\"s\",\"license\":\"l\",\
         \"num_experts\":8,\"top_k\":2,\"num_layers\":1,\"phase\":\"prefill\"}}\n"
    );
    let tr = generic(&h, &ImportOptions::default()).unwrap();
    assert_eq!(tr.meta.phase, Phase::Prefill);
    assert!(tr.requests.is_empty());
    let m = msg(generic(
        &h,
        &ImportOptions {
            num_experts: Some(16),
            ..Default::default()
        },
    ));
    assert_eq!(
        m,
        "g.jsonl: line 1: the header says num_experts = 8 but 16 was requested"
    );
    let newer = h.replace(":1,\"model", ":3,\"model");
    assert_eq!(
        msg(generic(&newer, &ImportOptions::default())),
        "g.jsonl: format version 3 is newer than this build supports (2)"
    );
    let bad = format!("{h}{{\"experts\":[[[1,9]]]}}\n");
    assert_eq!(
        msg(generic(&bad, &ImportOptions::default())),
        "g.jsonl: line 2: record 0 (request id 0), token 0, layer 0: expert 9 >= num_experts 8"
    );
}

// ---------------------------------------------------------------- importers

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory removed when it drops, unless the test is
/// panicking (a failed test leaves its files for inspection).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
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

fn temp_dir(tag: &str) -> Scratch {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!(
        "wafernoc-trace-test-{}-{tag}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn esft_dir(files: &[(&str, &str)]) -> Scratch {
    let d = temp_dir("esft");
    for (name, body) in files {
        std::fs::write(d.join(name), body).unwrap();
    }
    d
}

fn esft_opts() -> ImportOptions {
    ImportOptions {
        num_experts: Some(8),
        top_k: Some(2),
        ..Default::default()
    }
}

#[test]
fn esft_good() {
    let d = esft_dir(&[
        (
            "expert_weights_1.txt",
            "1\t2\t3\t4\t\t0.5\t0.5\t0.9\t0.1\n0\t7\t\t1\t0\n",
        ),
        (
            "expert_weights_2.txt",
            "5\t6\t7\t0\t\t0.5\t0.5\t0.9\t0.1\n1\t2\t\t1\t0\n",
        ),
    ]);
    let t = import_esft_k(&d, &esft_opts()).unwrap();
    assert_eq!(t.meta.phase, Phase::Prefill);
    assert_eq!(
        (t.meta.num_layers, t.meta.top_k, t.meta.num_experts),
        (2, 2, 8)
    );
    assert_eq!(t.requests.len(), 2);
    assert_eq!(t.requests[0].tokens[0].experts, vec![1, 2, 5, 6]);
    assert_eq!(t.requests[0].tokens[1].experts, vec![3, 4, 7, 0]);
    assert_eq!(
        t.requests[0].tokens[1].weights,
        Some(vec![0.9, 0.1, 0.9, 0.1])
    );
    assert_eq!(t.requests[1].tokens[0].experts, vec![0, 7, 1, 2]);
}

/// The files do not record top_k, so the public importer takes only the
/// model's 6 (a line of 12 ids would otherwise import as 12 tokens of 1,
/// 6 of 2 or 4 of 3, without an error), and `--phase` is refused for
/// every format but generic.
#[test]
fn esft_top_k_is_the_models() {
    let ids: Vec<String> = (0..12).map(|i| (i % 6 + 6 * (i / 6)).to_string()).collect();
    let line = format!("{}\t\t{}\n", ids.join("\t"), ["0.1"; 12].join("\t"));
    let d = esft_dir(&[("expert_weights_1.txt", &line)]);
    for k in [1u16, 2, 3, 4, 12] {
        let o = ImportOptions {
            top_k: Some(k),
            ..Default::default()
        };
        let m = msg(import_esft(&d, &o));
        assert!(m.contains("--top-k: esft files do not record top_k"), "{m}");
    }
    for top_k in [None, Some(6)] {
        let o = ImportOptions {
            top_k,
            ..Default::default()
        };
        let t = import_esft(&d, &o).unwrap();
        assert_eq!((t.meta.top_k, t.requests[0].tokens.len()), (6, 2));
    }
    let o = ImportOptions {
        phase: Some(Phase::Decode),
        ..Default::default()
    };
    for f in [
        ImportFormat::Esft,
        ImportFormat::GptOssJsonl,
        ImportFormat::GptOssJson,
    ] {
        let m = msg(import(f, &d, &o));
        assert!(
            m.contains("--phase is for the generic format"),
            "{f:?}: {m}"
        );
    }
}

#[test]
fn esft_bad_inputs() {
    let one = "1\t2\t\t0.5\t0.5\n";
    let d = esft_dir(&[("expert_weights_1.txt", one), ("expert_weights_3.txt", one)]);
    assert!(msg(import_esft_k(&d, &esft_opts()))
        .ends_with("expert_weights_2.txt is missing (layers must be numbered 1..=L)"));
    let d = esft_dir(&[
        ("expert_weights_1.txt", one),
        ("expert_weights_2.txt", "1\t2\t3\t4\t\t1\t1\t1\t1\n"),
    ]);
    let m = msg(import_esft_k(&d, &esft_opts()));
    assert!(
        m.contains("expert_weights_2.txt: line 1: 2 tokens but "),
        "{m}"
    );
    assert!(m.ends_with("expert_weights_1.txt line 1 has 1"), "{m}");
    let d = esft_dir(&[("expert_weights_1.txt", "1\t9\t\t0.5\t0.5\n")]);
    let m = msg(import_esft_k(&d, &esft_opts()));
    assert!(
        m.ends_with("expert_weights_1.txt: line 1: token 0, layer 0: expert 9 >= num_experts 8"),
        "{m}"
    );
    let d = esft_dir(&[("expert_weights_1.txt", "1\t1\t\t0.5\t0.5\n")]);
    let m = msg(import_esft_k(&d, &esft_opts()));
    assert!(
        m.ends_with("expert_weights_1.txt: line 1: token 0, layer 0: duplicated expert 1"),
        "{m}"
    );
    let d = esft_dir(&[("expert_weights_1.txt", "1\t2\t\t0.5\tx\n")]);
    let m = msg(import_esft_k(&d, &esft_opts()));
    assert!(
        m.ends_with("expert_weights_1.txt: line 1: malformed: weight 1: \"x\" is not a number"),
        "{m}"
    );
    let d = esft_dir(&[("expert_weights_1.txt", "1\t2\t0.5\t0.5\n")]);
    let m = msg(import_esft_k(&d, &esft_opts()));
    assert!(
        m.contains(
            "expert_weights_1.txt: line 1: malformed: expected tab-separated expert ids, two tabs"
        ),
        "{m}"
    );
    let d = esft_dir(&[("expert_weights_1.txt", "1\t2\t3\t\t0.5\t0.5\t0.5\n")]);
    let m = msg(import_esft_k(&d, &esft_opts()));
    assert!(
        m.ends_with("expert_weights_1.txt: line 1: 3 expert ids is not a multiple of top_k = 2"),
        "{m}"
    );
    let d = esft_dir(&[
        (
            "expert_weights_1.txt",
            "1\t2\t\t0.5\t0.5\n1\t2\t\t0.5\t0.5\n",
        ),
        ("expert_weights_2.txt", one),
    ]);
    let m = msg(import_esft_k(&d, &esft_opts()));
    assert!(
        m.contains("expert_weights_2.txt: ends after line 1 but "),
        "{m}"
    );
    assert!(m.ends_with("expert_weights_1.txt has line 2"), "{m}");
    let d = temp_dir("empty");
    assert!(msg(import_esft_k(&d, &esft_opts())).ends_with("no expert_weights_<layer>.txt files"));
}

const ORIG: &str = r#"{"dataset": "x", "router_data": [
 {"token_10": {"layer_1": {"selected_experts": [3, 1], "selected_probs": [0.75, 0.25]},
               "layer_0": {"selected_experts": [0, 2], "selected_probs": [0.5, 0.5]}}},
 {"token_11": {"layer_0": {"selected_experts": [2, 3], "selected_probs": [0.5, 0.5]},
               "layer_1": {"selected_experts": [1, 0], "selected_probs": [0.5, 0.5]}}}]}"#;

#[test]
fn gpt_oss_json_good_and_list() {
    let d = temp_dir("orig");
    let f = d.join("one.json");
    std::fs::write(&f, ORIG).unwrap();
    let t = import_gpt_oss_json(&f, &ImportOptions::default()).unwrap();
    assert_eq!(
        (t.meta.num_layers, t.meta.top_k, t.meta.num_experts),
        (2, 2, 32)
    );
    assert_eq!(t.requests[0].tokens[0].experts, vec![0, 2, 3, 1]);
    assert_eq!(
        t.requests[0].tokens[0].weights,
        Some(vec![0.5, 0.5, 0.75, 0.25])
    );
    let g = d.join("list.json");
    std::fs::write(&g, format!("[{ORIG}, {ORIG}]")).unwrap();
    let t = import_gpt_oss_json(&g, &ImportOptions::default()).unwrap();
    assert_eq!(t.requests.len(), 2);
    assert_eq!(t.requests[1].id, 1);
    // Directory: both files, in name order (list.json then one.json).
    let t = import_gpt_oss_json(&d, &ImportOptions::default()).unwrap();
    assert_eq!(t.requests.len(), 3);
}

#[test]
fn gpt_oss_json_bad_inputs() {
    let d = temp_dir("origbad");
    let f = d.join("bad.json");
    std::fs::write(
        &f,
        ORIG.replace(
            "layer_1\": {\"selected_experts\": [3, 1]",
            "layer_2\": {\"selected_experts\": [3, 1]",
        ),
    )
    .unwrap();
    let m = msg(import_gpt_oss_json(&f, &ImportOptions::default()));
    assert!(m.ends_with("bad.json: request 0, router_data[0], token_10: layer_1 is missing (layers must be layer_0..layer_{L-1})"), "{m}");
    std::fs::write(&f, ORIG.replace("[3, 1]", "[3, 40]")).unwrap();
    let m = msg(import_gpt_oss_json(&f, &ImportOptions::default()));
    assert!(
        m.ends_with(
            "request 0: record 0 (request id 0), token 0, layer 1: expert 40 >= num_experts 32"
        ),
        "{m}"
    );
    std::fs::write(&f, "{\"router_data\": [\n{\"token_1\": 5}]}").unwrap();
    let m = msg(import_gpt_oss_json(&f, &ImportOptions::default()));
    assert!(
        m.ends_with("bad.json: request 0, router_data[0], token_1: not an object"),
        "{m}"
    );
    std::fs::write(&f, "{\"router_data\": [\n{\"token_1\": }]}").unwrap();
    let m = msg(import_gpt_oss_json(&f, &ImportOptions::default()));
    assert!(m.contains("bad.json: line 2: malformed: bad JSON"), "{m}");
}

// ----------------------------------------------------------- batching/stats

fn trace_of(lengths: &[usize], e: u16) -> RoutingTrace {
    RoutingTrace {
        meta: routing_meta(e, 1, 1),
        requests: lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| Request {
                id: i as u32 * 10,
                tokens: (0..n)
                    .map(|t| tok(&[(t % usize::from(e)) as u16]))
                    .collect(),
            })
            .collect(),
    }
}

fn schedule(t: &RoutingTrace, b: Batching) -> Vec<Vec<(u32, usize)>> {
    iterations(t, b)
        .unwrap()
        .map(|it| it.tokens.iter().map(|x| (x.request_id, x.token)).collect())
        .collect()
}

#[test]
fn continuous_batching_refills_freed_slots_in_the_next_iteration() {
    let t = trace_of(&[3, 1, 2, 1], 4);
    let s = schedule(&t, Batching::Continuous { slots: 2 });
    assert_eq!(
        s,
        vec![
            vec![(0, 0), (10, 0)],
            vec![(0, 1), (20, 0)],
            vec![(0, 2), (20, 1)],
            vec![(30, 0)],
        ]
    );
    let s = schedule(&t, Batching::Continuous { slots: 8 });
    assert_eq!(s[0], vec![(0, 0), (10, 0), (20, 0), (30, 0)]);
    assert_eq!(s.len(), 3);
    // More slots than requests: the same schedule, and no per-slot cost
    // (10^12 slots used to be allocated and walked every iteration).
    assert_eq!(schedule(&t, Batching::Continuous { slots: 1 << 40 }), s);
    assert_eq!(
        schedule(&t, Batching::Chunked { chunk: 1 << 40 }),
        vec![vec![
            (0, 0),
            (0, 1),
            (0, 2),
            (10, 0),
            (20, 0),
            (20, 1),
            (30, 0)
        ]]
    );
}

#[test]
fn chunked_prefill_spans_requests() {
    let t = trace_of(&[3, 1, 2], 4);
    let s = schedule(&t, Batching::Chunked { chunk: 4 });
    assert_eq!(
        s,
        vec![
            vec![(0, 0), (0, 1), (0, 2), (10, 0)],
            vec![(20, 0), (20, 1)]
        ]
    );
    assert!(iterations(&t, Batching::Chunked { chunk: 0 }).is_err());
    assert!(iterations(&t, Batching::Continuous { slots: 0 }).is_err());
}

#[test]
fn stats_follow_the_definitions() {
    // E = 3, k = 1, L = 1, 3 slots; loads [2,1,0] then [1,2,0].
    let t = RoutingTrace {
        meta: routing_meta(3, 1, 1),
        requests: vec![
            Request {
                id: 0,
                tokens: vec![tok(&[0]), tok(&[0])],
            },
            Request {
                id: 1,
                tokens: vec![tok(&[0]), tok(&[1])],
            },
            Request {
                id: 2,
                tokens: vec![tok(&[1]), tok(&[1])],
            },
        ],
    };
    let s = stats(&t, Batching::Continuous { slots: 3 }).unwrap();
    assert_eq!(s.iterations, 2);
    assert!((s.mean_imbalance - 2.0).abs() < 1e-12);
    assert!((s.consecutive_load_corr.unwrap() - 0.5).abs() < 1e-12);
    // Zero-variance pairs are skipped: loads [1,1] then [2,0].
    let t = RoutingTrace {
        meta: routing_meta(2, 1, 1),
        requests: vec![
            Request {
                id: 0,
                tokens: vec![tok(&[0]), tok(&[0])],
            },
            Request {
                id: 1,
                tokens: vec![tok(&[1]), tok(&[0])],
            },
        ],
    };
    let s = stats(&t, Batching::Continuous { slots: 2 }).unwrap();
    assert!((s.mean_imbalance - 1.5).abs() < 1e-12);
    assert_eq!(s.consecutive_load_corr, None);
    assert_eq!(s.skipped_corr_pairs, 1);
}

#[test]
fn pearson_basics() {
    assert_eq!(stats::pearson(&[1, 1, 1], &[0, 1, 2]), None);
    assert!((stats::pearson(&[0, 1, 2], &[0, 2, 4]).unwrap() - 1.0).abs() < 1e-12);
    assert!((stats::pearson(&[0, 1, 2], &[4, 2, 0]).unwrap() + 1.0).abs() < 1e-12);
}

/// An output extension that names no encoding: `convert`, which has a
/// flag for it, says "or give --to"; the shared check, also reached from
/// `run --capture` and `trace import`, which have none, does not.
#[test]
fn unknown_output_extension_names_the_way_out_of_its_command() {
    let d = temp_dir("ext");
    let input =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../traces/gpt-oss-20b/decode_128req.wnrt");
    let out = d.0.join("x.bin");
    let e = convert(&input, &out, None).unwrap_err().to_string();
    assert!(e.contains("(use .wnrt or .jsonl), or give --to"), "{e}");
    assert!(!out.exists());
    let e = encoding_for_path(&out, TraceKind::Packet)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(use .wnpt or .jsonl)") && !e.contains("--to"),
        "{e}"
    );
}

/// The reader decodes a header under one limit for all its strings
/// together, so the writers refuse a header whose strings are each within
/// it but together are not (a review found `trace convert` writing such
/// files, which `trace stats` then refused), and a header just inside the
/// limit round-trips.
#[test]
fn writers_refuse_headers_their_readers_would_refuse() {
    let big = |n: usize| "x".repeat(n);
    let mut m = routing_meta(8, 2, 1);
    m.model = big(10 << 20);
    m.source = big(10 << 20);
    let e = msg(RoutingWriter::new(Vec::new(), &m).map(|_| ()));
    assert!(
        e.contains("the header's strings total more than the 16777216-byte limit"),
        "{e}"
    );
    let mut h = header(4);
    h.meta = big(codec::LIMIT_BYTES);
    let e = msg(PacketTraceWriter::new(Vec::new(), &h).map(|_| ()));
    assert!(e.contains("the header's strings total more than"), "{e}");
    // Just inside the limit: written, and read back.
    m.model = big(8 << 20);
    m.source = big((8 << 20) - 64);
    let mut w = RoutingWriter::new(Vec::new(), &m).unwrap();
    w.write(&Request {
        id: 0,
        tokens: vec![tok(&[1, 2])],
    })
    .unwrap();
    let bytes = w.finish().unwrap();
    let r = RoutingReader::new(&bytes[..]).unwrap();
    assert_eq!(r.meta().source.len(), (8 << 20) - 64);
}

/// A file cut inside the binary magic, a magic with a flipped byte and a
/// text file with a byte-order mark are named as such (they were all "not
/// a wafernoc trace: no binary magic and the first line is not a JSON
/// object").
#[test]
fn detect_names_a_truncated_or_corrupt_magic() {
    let f = good_packet_file();
    for n in 1..8 {
        let e = detect_bytes(&f[..n]).unwrap_err();
        assert_eq!(
            e,
            format!("truncated: the file ends inside the binary magic ({n} of 8 bytes)")
        );
    }
    let mut g = f.clone();
    g[4] = b'X';
    let e = detect_bytes(&g).unwrap_err();
    assert!(e.starts_with("corrupt binary magic \"WNOCXKT\\0\""), "{e}");
    assert!(e.ends_with("nor WNOCRTE\\0 (routing)"), "{e}");
    let e = detect_bytes(b"\xEF\xBB\xBF{\"experts\": []}\n").unwrap_err();
    assert!(e.contains("byte-order mark"), "{e}");
    assert!(detect_bytes(b"hello\n")
        .unwrap_err()
        .starts_with("not a wafernoc trace"));
}
