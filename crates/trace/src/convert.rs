//! Format detection and conversion between the binary and text encodings.
//!
//! Extensions: `.wnpt` = binary packet trace, `.wnrt` = binary routing
//! trace, `.jsonl` (or `.json`) = text. Reading never trusts the extension:
//! [`detect_format`] looks at the first bytes (binary magic) or the first
//! line (text header key).

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::codec::{PACKET_MAGIC, ROUTING_MAGIC};
use crate::error::{path_name, Location, Result, TraceError};
use crate::packet::{PacketTextWriter, PacketTraceWriter};
use crate::routing::RoutingTrace;

/// What a trace describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceKind {
    /// Packet injections ([`crate::PacketRecord`]).
    Packet,
    /// MoE expert routing ([`crate::RoutingTrace`]).
    Routing,
}

/// How a trace is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Binary: magic, version, header body and tagged records.
    Binary,
    /// Text: JSON lines.
    Text,
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "binary" => Ok(Encoding::Binary),
            "text" | "jsonl" => Ok(Encoding::Text),
            _ => Err(format!("unknown encoding {s:?} (expected binary or text)")),
        }
    }
}

/// Kind and encoding of a trace file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceFormat {
    /// What the trace describes.
    pub kind: TraceKind,
    /// How it is encoded.
    pub encoding: Encoding,
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = match self.encoding {
            Encoding::Binary => "binary",
            Encoding::Text => "text (JSONL)",
        };
        let kind = match self.kind {
            TraceKind::Packet => "packet trace",
            TraceKind::Routing => "routing trace",
        };
        write!(f, "{enc} {kind}")
    }
}

/// Detect the format from the start of a file: the binary magic, or for
/// text the keys of the first non-blank line (`wafernoc_packet_trace` =
/// packet; `wafernoc_routing_trace` or `experts` = routing). `Err` holds a
/// message when the bytes match no format. `first_line` must hold at least
/// the first line of a text file (or the first 8 bytes of a binary file).
pub fn detect_bytes(first_line: &[u8]) -> Result<TraceFormat, String> {
    if first_line.starts_with(&PACKET_MAGIC) {
        return Ok(TraceFormat {
            kind: TraceKind::Packet,
            encoding: Encoding::Binary,
        });
    }
    if first_line.starts_with(&ROUTING_MAGIC) {
        return Ok(TraceFormat {
            kind: TraceKind::Routing,
            encoding: Encoding::Binary,
        });
    }
    let head = &first_line[..first_line.len().min(8)];
    if head.len() < 8 && (PACKET_MAGIC.starts_with(head) || ROUTING_MAGIC.starts_with(head)) {
        return Err(format!(
            "truncated: the file ends inside the binary magic ({} of 8 bytes)",
            head.len()
        ));
    }
    if head.len() == 8 && head.starts_with(b"WNOC") {
        return Err(format!(
            "corrupt binary magic {:?}: starts like a wafernoc binary trace, but is neither \
             WNOCPKT\\0 (packets) nor WNOCRTE\\0 (routing)",
            String::from_utf8_lossy(head)
        ));
    }
    if first_line.starts_with(b"\xEF\xBB\xBF") {
        return Err("the file starts with a UTF-8 byte-order mark; save it without one".into());
    }
    let text = first_line.trim_ascii_start();
    if !text.starts_with(b"{") {
        return Err(
            "not a wafernoc trace: no binary magic and the first line is not a JSON object".into(),
        );
    }
    let line = text.split(|&b| b == b'\n').next().unwrap_or(text);
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).map_err(|e| format!("line 1 is not a JSON object: {e}"))?;
    if obj.contains_key(crate::packet::TEXT_HEADER_KEY) {
        Ok(TraceFormat {
            kind: TraceKind::Packet,
            encoding: Encoding::Text,
        })
    } else if obj.contains_key(crate::routing::TEXT_HEADER_KEY) || obj.contains_key("experts") {
        Ok(TraceFormat {
            kind: TraceKind::Routing,
            encoding: Encoding::Text,
        })
    } else {
        Err("not a wafernoc trace: the first line has none of the keys \
             wafernoc_packet_trace, wafernoc_routing_trace, experts"
            .into())
    }
}

/// A trace file after format detection ([`open_detected`]): the bytes
/// detection read, then the rest of the file, so that reading it yields the
/// whole file.
pub type Sniffed = std::io::Chain<std::io::Cursor<Vec<u8>>, File>;

/// Detect the format of a file from its first bytes (see [`detect_bytes`]).
pub fn detect_format(path: &Path) -> Result<TraceFormat> {
    open_detected(path).map(|(fmt, _, _)| fmt)
}

/// Open `path` once and detect its format from its first bytes; returns the
/// format, a reader of the whole file (the bytes detection read come
/// first) and the name for error messages. Opening once lets a pipe
/// (`/dev/stdin`, a FIFO) be given as a trace path: a second open would
/// find the bytes detection read gone.
pub fn open_detected(path: &Path) -> Result<(TraceFormat, Sniffed, String)> {
    let name = path_name(path);
    let io = |e| TraceError::io(&name, Location::File, e);
    let mut f = File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    // Binary magic first; otherwise up to the end of the first non-blank
    // line. Read in chunks; what is read past that stays in `buf` for the
    // reader.
    let mut chunk = [0u8; 8192];
    // Appends one read's bytes; false at the end of the file.
    let mut more = |buf: &mut Vec<u8>| -> Result<bool> {
        loop {
            match f.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            }
        }
    };
    while buf.len() < 8 && more(&mut buf)? {}
    if buf.is_empty() {
        return Err(TraceError::truncated(&name, "empty file: not a trace"));
    }
    let head = &buf[..buf.len().min(8)];
    let starts_text = head.trim_ascii_start().first().is_none_or(|&b| b == b'{');
    let mut end = None;
    if head != PACKET_MAGIC && head != ROUTING_MAGIC && starts_text {
        // The end of the first line holding a non-blank byte.
        let line_end = |buf: &[u8]| {
            let first = buf.iter().position(|b| !b.is_ascii_whitespace())?;
            buf[first..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|k| first + k + 1)
        };
        while end.is_none() {
            end = line_end(&buf);
            if end.is_none() && !more(&mut buf)? {
                break;
            }
        }
    }
    let end = end.unwrap_or(buf.len());
    let fmt = detect_bytes(&buf[..end]).map_err(|m| TraceError::usage(&name, m))?;
    Ok((fmt, std::io::Cursor::new(buf).chain(f), name))
}

/// Encoding implied by an output file name: `.wnpt` / `.wnrt` binary (and
/// must match `kind`), `.jsonl` / `.json` text.
pub fn encoding_for_path(path: &Path, kind: TraceKind) -> Result<Encoding> {
    let name = path_name(path);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match (ext, kind) {
        ("wnpt", TraceKind::Packet) | ("wnrt", TraceKind::Routing) => Ok(Encoding::Binary),
        ("wnpt", TraceKind::Routing) => Err(TraceError::usage(
            &name,
            ".wnpt is the packet-trace extension but this is a routing trace (use .wnrt)",
        )),
        ("wnrt", TraceKind::Packet) => Err(TraceError::usage(
            &name,
            ".wnrt is the routing-trace extension but this is a packet trace (use .wnpt)",
        )),
        ("jsonl" | "json", _) => Ok(Encoding::Text),
        _ => Err(TraceError::usage(
            &name,
            format!(
                "cannot tell the output encoding from the extension (use {} or .jsonl)",
                match kind {
                    TraceKind::Packet => ".wnpt",
                    TraceKind::Routing => ".wnrt",
                }
            ),
        )),
    }
}

/// Write `path` through `f` on a buffered writer. A regular file (or a new
/// one) is written to a hidden sibling first and renamed over `path` only
/// when everything is written, so a failed write leaves whatever was at
/// `path` untouched and no partial or temporary file behind. (A file with
/// other hard links is replaced, not rewritten: the other names keep the
/// old contents, as with any atomic save.) Anything else that exists
/// at `path` (a device, a pipe) is written in place and never removed: a
/// failed write to `/dev/full` used to delete the device node.
pub(crate) fn write_file(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let name = path_name(path);
    let io = |e| TraceError::io(&name, Location::File, e);
    let write = |file: File| {
        let mut w = BufWriter::with_capacity(1 << 16, file);
        f(&mut w).and_then(|()| w.flush().map_err(io))
    };
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return write(
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io)?,
        );
    }
    // An existing output is replaced where it really is: through a
    // symbolic link, the file it points to (the link stays a link).
    let real = std::fs::canonicalize(path).ok();
    let path = real.as_deref().unwrap_or(path);
    let file_name = path
        .file_name()
        .ok_or_else(|| TraceError::usage(&name, "the output path names no file"))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(file_name);
    tmp.push(format!(".tmp-{}", std::process::id()));
    let target = path.with_file_name(tmp);
    let res = write(File::create(&target).map_err(io)?)
        .and_then(|()| std::fs::rename(&target, path).map_err(io));
    if res.is_err() {
        let _ = std::fs::remove_file(&target);
    }
    res
}

/// Whether `a` and `b` name one existing file (through `..`, symbolic or
/// hard links). A path that does not exist is no other file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
    }
}

/// What [`convert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertSummary {
    /// Input format (detected).
    pub from: TraceFormat,
    /// Output format.
    pub to: TraceFormat,
    /// Records (packets or requests) converted.
    pub records: u64,
}

/// Convert a trace between encodings. The input format is detected; the
/// output encoding is `to` or implied by the output extension. Packet
/// traces stream; routing traces are loaded whole (text routing input goes
/// through the generic importer, so headerless generic JSONL works too).
pub fn convert(input: &Path, output: &Path, to: Option<Encoding>) -> Result<ConvertSummary> {
    let (from, src, in_name) = open_detected(input)?;
    let enc = match to {
        Some(e) => e,
        // Only here is there a flag to name the encoding instead.
        None => encoding_for_path(output, from.kind).map_err(|e| match e {
            TraceError::Usage { file, msg } => TraceError::Usage {
                file,
                msg: format!("{msg}, or give --to"),
            },
            e => e,
        })?,
    };
    if input == output || same_file(input, output) {
        return Err(TraceError::usage(
            &path_name(output),
            "input and output are the same file",
        ));
    }
    let to_fmt = TraceFormat {
        kind: from.kind,
        encoding: enc,
    };
    let out_name = path_name(output);
    let mut records = 0u64;
    match from.kind {
        TraceKind::Packet => {
            let mut reader = crate::PacketReader::from_detected(from, src, in_name)?;
            let header = reader.header().clone();
            write_file(output, |w| {
                match enc {
                    Encoding::Binary => {
                        let mut wr = PacketTraceWriter::with_name(w, &header, out_name.clone())?;
                        for rec in &mut reader {
                            wr.write(&rec?)?;
                        }
                        records = wr.count();
                        wr.finish()?;
                    }
                    Encoding::Text => {
                        let mut wr = PacketTextWriter::with_name(w, &header, out_name.clone())?;
                        for rec in &mut reader {
                            wr.write(&rec?)?;
                            records += 1;
                        }
                        wr.finish()?;
                    }
                }
                Ok(())
            })?;
        }
        TraceKind::Routing => {
            let t = RoutingTrace::from_detected(from, src, &in_name)?;
            records = t.requests.len() as u64;
            t.save(output, Some(enc))?;
        }
    }
    Ok(ConvertSummary {
        from,
        to: to_fmt,
        records,
    })
}
