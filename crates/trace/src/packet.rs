//! Packet traces: a header and a stream of [`PacketRecord`]s, in a binary
//! encoding (`.wnpt`, magic `WNOCPKT\0`) and a text encoding (JSONL).
//!
//! # Dense ids
//!
//! Record `i` (counted from 0 in file order) must have `id == i`. A
//! dependency is therefore valid iff `dep < id`: it names a packet that
//! appears earlier in the file. This lets a reader validate a trace of any
//! length in constant memory, and makes dependency cycles impossible.
//!
//! # Invariants checked on read and on write (both encodings)
//!
//! - `header.nodes >= 1`;
//! - `id` equals the record index;
//! - `src < nodes` and `dst < nodes`;
//! - `cycle` is non-decreasing in file order;
//! - every dependency is `< id`;
//! - `size >= 1` (in the header's [`SizeUnit`]).
//!
//! # Text encoding
//!
//! Line 1 is the header object
//! `{"wafernoc_packet_trace": 1, "nodes": 16, "unit": "flits", "meta": "..."}`
//! (the value of `wafernoc_packet_trace` is the format version). Every
//! following non-blank line is one record object
//! `{"id":0,"cycle":0,"src":1,"dst":2,"size":4,"class":0,"deps":[]}`
//! (`class` and `deps` may be omitted; unknown keys are errors). Errors name
//! the 1-based line number. Unlike the binary encoding, a text trace cut
//! exactly at a line boundary cannot be detected.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::codec::{
    self, RecordReader, RecordWriter, FORMAT_VERSION, LIMIT_BYTES, PACKET_MAGIC,
    TEXT_FORMAT_VERSION,
};
use crate::convert::Sniffed;
use crate::error::{fused, open_buffered, open_file, path_name, Location, Result, TraceError};

/// Name used in error messages when a reader or writer was not given one.
pub const STREAM_NAME: &str = "<stream>";

/// Unit of [`PacketRecord::size`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeUnit {
    /// Sizes count flits.
    Flits,
    /// Sizes count bytes; the simulator converts with its flit width.
    Bytes,
}

/// Header of a packet trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketTraceHeader {
    /// Number of network nodes; every `src`/`dst` is below it. At least 1.
    pub nodes: u32,
    /// Unit of every record's `size`.
    pub unit: SizeUnit,
    /// Free-form metadata: resolved configuration, provenance, tool version.
    pub meta: String,
}

/// One packet injection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketRecord {
    /// Dense id: equal to the record's index in the file.
    pub id: u64,
    /// Earliest injection cycle (non-decreasing in file order).
    pub cycle: u64,
    /// Source node, `< nodes`.
    pub src: u32,
    /// Destination node, `< nodes`.
    pub dst: u32,
    /// Size in the header's unit, `>= 1`.
    pub size: u32,
    /// Traffic class (e.g. virtual network / message type).
    #[serde(default)]
    pub class: u8,
    /// Ids of packets that must be delivered before this one is injected;
    /// each is `< id`.
    #[serde(default)]
    pub deps: Vec<u64>,
}

/// Streaming validator of the packet-trace invariants (constant memory).
#[derive(Debug, Clone)]
pub struct PacketValidator {
    nodes: u32,
    next_id: u64,
    last_cycle: u64,
}

impl PacketValidator {
    /// Validate the header and start a validator for its records.
    pub fn new(header: &PacketTraceHeader) -> Result<Self, String> {
        if header.nodes == 0 {
            return Err("nodes must be >= 1".to_string());
        }
        if header.meta.len() > LIMIT_BYTES {
            return Err(format!("meta is longer than {LIMIT_BYTES} bytes"));
        }
        Ok(PacketValidator {
            nodes: header.nodes,
            next_id: 0,
            last_cycle: 0,
        })
    }

    /// Number of records accepted so far.
    pub fn count(&self) -> u64 {
        self.next_id
    }

    /// Check the next record in file order; on success it is counted.
    pub fn check(&mut self, rec: &PacketRecord) -> Result<(), String> {
        let n = self.next_id;
        if rec.id != n {
            return Err(format!(
                "record {n} has id {}: ids must be dense (record {n} must have id {n})",
                rec.id
            ));
        }
        if rec.src >= self.nodes {
            return Err(format!(
                "record {n}: src {} out of range (nodes = {})",
                rec.src, self.nodes
            ));
        }
        if rec.dst >= self.nodes {
            return Err(format!(
                "record {n}: dst {} out of range (nodes = {})",
                rec.dst, self.nodes
            ));
        }
        if n > 0 && rec.cycle < self.last_cycle {
            return Err(format!(
                "non-monotonic cycle at record {n}: {} after {}",
                rec.cycle, self.last_cycle
            ));
        }
        if rec.size == 0 {
            return Err(format!("record {n}: size must be >= 1"));
        }
        if let Some(d) = rec.deps.iter().find(|&&d| d >= rec.id) {
            return Err(if *d == rec.id {
                format!("record {n} (id {d}) depends on itself")
            } else {
                format!("record {n} depends on unknown id {d} (dependencies must be earlier ids)")
            });
        }
        self.last_cycle = rec.cycle;
        self.next_id += 1;
        Ok(())
    }
}

// ---------------------------------------------------------------- binary

/// Streaming writer of binary packet traces. Records are validated as they
/// are written. Call [`finish`](Self::finish): a file without the end marker
/// reads as truncated.
pub struct PacketTraceWriter<W: Write> {
    rec: RecordWriter<W>,
    validator: PacketValidator,
    file: String,
}

impl<W: Write> PacketTraceWriter<W> {
    /// Start a trace on `w` (wrap files in a `BufWriter`).
    pub fn new(w: W, header: &PacketTraceHeader) -> Result<Self> {
        Self::with_name(w, header, STREAM_NAME)
    }

    /// Like [`new`](Self::new), naming the output in error messages.
    pub fn with_name(w: W, header: &PacketTraceHeader, name: impl Into<String>) -> Result<Self> {
        let file = name.into();
        let validator = PacketValidator::new(header)
            .map_err(|m| TraceError::invalid(&file, Location::Header, m))?;
        let rec = codec::create(w, &file, &PACKET_MAGIC, header)?;
        Ok(PacketTraceWriter {
            rec,
            validator,
            file,
        })
    }

    /// Validate and append one record.
    pub fn write(&mut self, rec: &PacketRecord) -> Result<()> {
        let loc = Location::Record(self.validator.count());
        self.validator
            .check(rec)
            .map_err(|m| TraceError::invalid(&self.file, loc, m))?;
        self.rec.write(rec, &self.file)
    }

    /// Number of records written so far.
    pub fn count(&self) -> u64 {
        self.rec.count()
    }

    /// Write the end-of-stream marker, flush, and return the writer.
    pub fn finish(self) -> Result<W> {
        self.rec.finish(&self.file)
    }
}

impl PacketTraceWriter<BufWriter<File>> {
    /// Create (truncate) `path` and start a binary packet trace in it.
    pub fn create(path: &Path, header: &PacketTraceHeader) -> Result<Self> {
        let name = path_name(path);
        let f = File::create(path).map_err(|e| TraceError::io(&name, Location::File, e))?;
        Self::with_name(BufWriter::new(f), header, name)
    }
}

/// Streaming reader of binary packet traces: reads and checks the header on
/// construction, then yields validated records. After the first error the
/// iterator ends.
pub struct PacketTraceReader<R: Read> {
    rec: RecordReader<R>,
    header: PacketTraceHeader,
    validator: PacketValidator,
    file: String,
    done: bool,
}

impl<R: Read> PacketTraceReader<R> {
    /// Read the header from `r`. The reader buffers its input itself: a
    /// `BufReader` around a file is not needed, and it never reads past
    /// the bytes of the record it decodes while it still holds some, so
    /// records written to a pipe are read as soon as they are complete.
    pub fn new(r: R) -> Result<Self> {
        Self::with_name(r, STREAM_NAME)
    }

    /// Like [`new`](Self::new), naming the input in error messages.
    pub fn with_name(r: R, name: impl Into<String>) -> Result<Self> {
        let file = name.into();
        let (header, rec): (PacketTraceHeader, _) = codec::open(
            r,
            &file,
            &PACKET_MAGIC,
            "wafernoc binary packet trace (WNOCPKT)",
        )?;
        let validator = PacketValidator::new(&header)
            .map_err(|m| TraceError::invalid(&file, Location::Header, m))?;
        Ok(PacketTraceReader {
            rec,
            header,
            validator,
            file,
            done: false,
        })
    }

    /// The trace header.
    pub fn header(&self) -> &PacketTraceHeader {
        &self.header
    }

    fn next_inner(&mut self) -> Result<Option<PacketRecord>> {
        let n = self.rec.count();
        match self.rec.next::<PacketRecord>(&self.file)? {
            None => Ok(None),
            Some(rec) => {
                self.validator
                    .check(&rec)
                    .map_err(|m| TraceError::invalid(&self.file, Location::Record(n), m))?;
                Ok(Some(rec))
            }
        }
    }
}

impl PacketTraceReader<File> {
    /// Open a binary packet trace file.
    pub fn open(path: &Path) -> Result<Self> {
        let (r, name) = open_file(path)?;
        Self::with_name(r, name)
    }
}

impl<R: Read> Iterator for PacketTraceReader<R> {
    type Item = Result<PacketRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.next_inner();
        fused(&mut self.done, step)
    }
}

// ------------------------------------------------------------------ text

/// Key of the text header object; its value is the format version.
pub const TEXT_HEADER_KEY: &str = "wafernoc_packet_trace";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextHeader {
    wafernoc_packet_trace: u16,
    nodes: u32,
    unit: SizeUnit,
    #[serde(default)]
    meta: String,
}

/// Streaming writer of JSONL packet traces. Records are validated as they
/// are written. Call [`finish`](Self::finish) to flush.
pub struct PacketTextWriter<W: Write> {
    w: W,
    validator: PacketValidator,
    file: String,
}

impl<W: Write> PacketTextWriter<W> {
    /// Write the header line to `w` (wrap files in a `BufWriter`).
    pub fn new(w: W, header: &PacketTraceHeader) -> Result<Self> {
        Self::with_name(w, header, STREAM_NAME)
    }

    /// Like [`new`](Self::new), naming the output in error messages.
    pub fn with_name(
        mut w: W,
        header: &PacketTraceHeader,
        name: impl Into<String>,
    ) -> Result<Self> {
        let file = name.into();
        let validator = PacketValidator::new(header)
            .map_err(|m| TraceError::invalid(&file, Location::Header, m))?;
        let th = TextHeader {
            wafernoc_packet_trace: TEXT_FORMAT_VERSION,
            nodes: header.nodes,
            unit: header.unit,
            meta: header.meta.clone(),
        };
        write_json_line(&mut w, &th, &file, Location::Line(1))?;
        Ok(PacketTextWriter { w, validator, file })
    }

    /// Validate and append one record line.
    pub fn write(&mut self, rec: &PacketRecord) -> Result<()> {
        let n = self.validator.count();
        self.validator
            .check(rec)
            .map_err(|m| TraceError::invalid(&self.file, Location::Line(n + 2), m))?;
        write_json_line(&mut self.w, rec, &self.file, Location::Line(n + 2))
    }

    /// Flush and return the writer.
    pub fn finish(mut self) -> Result<W> {
        let n = self.validator.count();
        self.w
            .flush()
            .map_err(|e| TraceError::io(&self.file, Location::Line(n + 1), e))?;
        Ok(self.w)
    }
}

impl PacketTextWriter<BufWriter<File>> {
    /// Create (truncate) `path` and start a JSONL packet trace in it.
    pub fn create(path: &Path, header: &PacketTraceHeader) -> Result<Self> {
        let name = path_name(path);
        let f = File::create(path).map_err(|e| TraceError::io(&name, Location::File, e))?;
        Self::with_name(BufWriter::new(f), header, name)
    }
}

pub(crate) fn write_json_line<W: Write, T: Serialize>(
    w: &mut W,
    v: &T,
    file: &str,
    loc: Location,
) -> Result<()> {
    serde_json::to_writer(&mut *w, v).map_err(|e| match e.io_error_kind() {
        Some(_) => TraceError::io(file, loc, std::io::Error::other(e.to_string())),
        None => TraceError::invalid(file, loc, format!("cannot encode as JSON: {e}")),
    })?;
    w.write_all(b"\n").map_err(|e| TraceError::io(file, loc, e))
}

/// Read the next non-blank line into `buf` (without the newline). Returns
/// the 1-based line number, or `None` at end of file.
pub(crate) fn next_line<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    line: &mut u64,
    file: &str,
) -> Result<Option<u64>> {
    loop {
        buf.clear();
        *line += 1;
        let n = r
            .read_until(b'\n', buf)
            .map_err(|e| TraceError::io(file, Location::Line(*line), e))?;
        if n == 0 {
            *line -= 1;
            return Ok(None);
        }
        if buf.iter().any(|b| !b.is_ascii_whitespace()) {
            return Ok(Some(*line));
        }
    }
}

/// A JSON error on line `line` of a JSONL file. Each line is parsed on
/// its own, so serde's "at line 1 column C" would contradict the file's
/// line number: only the column is kept.
pub(crate) fn json_err(file: &str, line: u64, e: &serde_json::Error) -> TraceError {
    let text = e.to_string();
    let msg = match text.rfind(" at line ") {
        Some(i) if e.line() > 0 => format!("{} (column {})", &text[..i], e.column()),
        _ => text,
    };
    TraceError::malformed(file, Location::Line(line), format!("bad JSON: {msg}"))
}

/// Streaming reader of JSONL packet traces; same validation as the binary
/// reader, errors name line numbers. After the first error the iterator ends.
pub struct PacketTextReader<R: BufRead> {
    r: R,
    header: PacketTraceHeader,
    validator: PacketValidator,
    file: String,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> PacketTextReader<R> {
    /// Read the header line from `r`.
    pub fn new(r: R) -> Result<Self> {
        Self::with_name(r, STREAM_NAME)
    }

    /// Like [`new`](Self::new), naming the input in error messages.
    pub fn with_name(mut r: R, name: impl Into<String>) -> Result<Self> {
        let file = name.into();
        let mut buf = Vec::new();
        let mut line = 0;
        let Some(ln) = next_line(&mut r, &mut buf, &mut line, &file)? else {
            return Err(TraceError::truncated(&file, "empty file: no header line"));
        };
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&buf).map_err(|e| json_err(&file, ln, &e))?;
        let Some(v) = obj.get(TEXT_HEADER_KEY) else {
            return Err(TraceError::malformed(
                &file,
                Location::Line(ln),
                format!("not a wafernoc packet trace: the header object has no key \"{TEXT_HEADER_KEY}\""),
            ));
        };
        check_text_version(v, &file, ln)?;
        let th: TextHeader =
            serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| {
                TraceError::malformed(&file, Location::Line(ln), format!("bad header: {e}"))
            })?;
        let header = PacketTraceHeader {
            nodes: th.nodes,
            unit: th.unit,
            meta: th.meta,
        };
        let validator = PacketValidator::new(&header)
            .map_err(|m| TraceError::invalid(&file, Location::Line(ln), m))?;
        Ok(PacketTextReader {
            r,
            header,
            validator,
            file,
            line,
            buf,
            done: false,
        })
    }

    /// The trace header.
    pub fn header(&self) -> &PacketTraceHeader {
        &self.header
    }

    fn next_inner(&mut self) -> Result<Option<PacketRecord>> {
        let Some(ln) = next_line(&mut self.r, &mut self.buf, &mut self.line, &self.file)? else {
            return Ok(None);
        };
        let rec: PacketRecord =
            serde_json::from_slice(&self.buf).map_err(|e| json_err(&self.file, ln, &e))?;
        self.validator
            .check(&rec)
            .map_err(|m| TraceError::invalid(&self.file, Location::Line(ln), m))?;
        Ok(Some(rec))
    }
}

/// Check the version number of a text header.
pub(crate) fn check_text_version(v: &serde_json::Value, file: &str, line: u64) -> Result<()> {
    match v.as_u64() {
        Some(0) | None => Err(TraceError::malformed(
            file,
            Location::Line(line),
            format!("bad format version {v}: expected a positive integer"),
        )),
        Some(n) if n > u64::from(FORMAT_VERSION) => Err(TraceError::NewerVersion {
            file: file.to_string(),
            version: u16::try_from(n).unwrap_or(u16::MAX),
            supported: FORMAT_VERSION,
        }),
        Some(_) => Ok(()),
    }
}

impl PacketTextReader<BufReader<File>> {
    /// Open a JSONL packet trace file.
    pub fn open(path: &Path) -> Result<Self> {
        let (r, name) = open_buffered(path)?;
        Self::with_name(r, name)
    }
}

impl<R: BufRead> Iterator for PacketTextReader<R> {
    type Item = Result<PacketRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.next_inner();
        fused(&mut self.done, step)
    }
}

// ------------------------------------------------------------ either one

/// A packet trace file opened in whichever encoding it has.
pub enum PacketReader {
    /// Binary (`WNOCPKT`) encoding.
    Binary(PacketTraceReader<Sniffed>),
    /// JSONL encoding.
    Text(PacketTextReader<BufReader<Sniffed>>),
}

impl PacketReader {
    /// Open a packet trace, detecting its encoding from its first bytes.
    /// The file is opened and read once, so `path` may be a pipe
    /// (`/dev/stdin`, a FIFO).
    pub fn open(path: &Path) -> Result<Self> {
        let (fmt, r, name) = crate::convert::open_detected(path)?;
        Self::from_detected(fmt, r, name)
    }

    /// The reader of a file [`open_detected`](crate::convert::open_detected)
    /// opened.
    pub fn from_detected(fmt: crate::TraceFormat, r: Sniffed, name: String) -> Result<Self> {
        match fmt {
            crate::TraceFormat {
                kind: crate::TraceKind::Packet,
                encoding: crate::Encoding::Binary,
            } => Ok(PacketReader::Binary(PacketTraceReader::with_name(r, name)?)),
            crate::TraceFormat {
                kind: crate::TraceKind::Packet,
                encoding: crate::Encoding::Text,
            } => Ok(PacketReader::Text(PacketTextReader::with_name(
                BufReader::with_capacity(1 << 16, r),
                name,
            )?)),
            other => Err(TraceError::usage(
                &name,
                format!("expected a packet trace, found a {other}"),
            )),
        }
    }

    /// The trace header.
    pub fn header(&self) -> &PacketTraceHeader {
        match self {
            PacketReader::Binary(r) => r.header(),
            PacketReader::Text(r) => r.header(),
        }
    }
}

impl Iterator for PacketReader {
    type Item = Result<PacketRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            PacketReader::Binary(r) => r.next(),
            PacketReader::Text(r) => r.next(),
        }
    }
}
