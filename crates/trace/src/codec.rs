//! Binary container shared by every binary trace, and the only module that
//! knows about bincode.
//!
//! Layout of a binary trace file:
//!
//! ```text
//! magic      8 bytes   b"WNOCPKT\0" (packet) or b"WNOCRTE\0" (routing)
//! version    u16 LE    FORMAT_VERSION (2); newer versions are rejected
//! header     bincode   kind-specific header body (standard config, varints)
//! records    repeated  tag byte 1, then one bincode-encoded record
//! end        1 + 8     tag byte 0, then the record count as u64 LE
//! checksum   8         (version 2) FNV-1a 64 of every byte before it, u64 LE
//! ```
//!
//! Nothing may follow the end marker (and checksum). A file that stops
//! inside a record is reported as `truncated record N`; a file that stops
//! exactly between two records (no end marker) as `truncated after record
//! N`. Records are encoded one at a time with bincode's `std::io` streaming
//! API and decoded one at a time from a 64 KiB buffer (`HashReader`),
//! so a trace never has to fit in memory.
//!
//! The checksum (version 2) catches what decodes but is not what was
//! written: about half of single bit flips in a version-1 file still
//! decoded to valid records (a user-level review flipped 30 bits in each
//! kind of file). FNV-1a detects every change confined to one byte (each
//! step is a bijection of the state); other random corruption goes
//! undetected with a chance of about 2⁻⁶⁴ (a heuristic figure: FNV is not
//! a CRC, and its low bits depend only on the bytes' low bits). It is checked when the reader reaches the end marker, so a
//! consumer sees the records before it, as with any streaming error.
//! Version-1 files (no checksum) are still read.
//!
//! Every decode uses a byte limit ([`LIMIT_BYTES`]) on string and byte
//! lengths, so a corrupted length prefix cannot make the decoder allocate
//! gigabytes.

use std::io::{self, Read, Write};

use bincode::error::{DecodeError, EncodeError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Location, Result, TraceError};

/// Newest format version this build reads, and the version of the binary
/// files it writes. Version 2 added the binary checksum; the text formats
/// of versions 1 and 2 are the same, so text files are written as
/// [`TEXT_FORMAT_VERSION`] (builds before version 2 read them).
pub const FORMAT_VERSION: u16 = 2;
/// The version text (JSONL) traces are written with.
pub const TEXT_FORMAT_VERSION: u16 = 1;
/// Magic of binary packet traces.
pub const PACKET_MAGIC: [u8; 8] = *b"WNOCPKT\0";
/// Magic of binary MoE routing traces.
pub const ROUTING_MAGIC: [u8; 8] = *b"WNOCRTE\0";
/// Largest string a single header or record may carry (16 MiB).
pub const LIMIT_BYTES: usize = 16 << 20;

const TAG_END: u8 = 0;
const TAG_RECORD: u8 = 1;
/// The first version with a checksum.
const CHECKSUM_VERSION: u16 = 2;

/// FNV-1a, 64 bits, over a byte stream.
#[derive(Clone, Copy, Debug)]
struct Fnv(u64);

impl Fnv {
    const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A writer that hashes the bytes passing through it (the reading side is
/// [`HashReader`]).
pub(crate) struct Hashing<T> {
    inner: T,
    h: Fnv,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.h.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes a [`HashReader`] reads from its source at a time.
const READ_BUF: usize = 64 << 10;

/// The reading side of the checksum: a buffered reader that hashes every
/// byte once, as it is consumed (never bytes only peeked at). bincode
/// decodes varints from its buffer (`peek_read`, `consume`) instead of one
/// `read` call per byte, as it must through `std::io::Read` alone.
pub(crate) struct HashReader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Unconsumed bytes: `buf[pos..end]`.
    pos: usize,
    end: usize,
    h: Fnv,
    /// An I/O error met while peeking, which has no way to report it: the
    /// next read returns it (bincode reads when a peek gives nothing), so
    /// an error the source gives once is not retried away.
    err: Option<io::Error>,
}

impl<R: Read> HashReader<R> {
    fn new(inner: R) -> Self {
        HashReader {
            inner,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            h: Fnv::new(),
            err: None,
        }
    }

    /// The number of unconsumed bytes, reading from the source only when
    /// there are none (then until it gives at least one, or ends). Never
    /// reading ahead while bytes are buffered keeps a live source (a
    /// pipe) from being waited on for bytes past the record being
    /// decoded: a peek that finds too few bytes gives nothing, and bincode
    /// then reads the value byte by byte.
    fn fill(&mut self) -> io::Result<usize> {
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        if self.end > self.pos {
            return Ok(self.end - self.pos);
        }
        self.pos = 0;
        self.end = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(k) => {
                    self.end = k;
                    return Ok(k);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Consume `n` available bytes, hashing them.
    fn advance(&mut self, n: usize) {
        let n = n.min(self.end - self.pos);
        self.h.update(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let k = self.fill()?.min(out.len());
        out[..k].copy_from_slice(&self.buf[self.pos..self.pos + k]);
        self.advance(k);
        Ok(k)
    }
}

impl<R: Read> bincode::de::read::Reader for HashReader<R> {
    fn read(&mut self, bytes: &mut [u8]) -> std::result::Result<(), DecodeError> {
        self.read_exact(bytes).map_err(|inner| DecodeError::Io {
            inner,
            additional: bytes.len(),
        })
    }

    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        match self.fill() {
            Ok(a) if a >= n => Some(&self.buf[self.pos..self.pos + n]),
            Ok(_) => None,
            Err(e) => {
                // Kept for the read bincode makes next.
                self.err = Some(e);
                None
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.advance(n);
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT_BYTES>()
}

fn map_decode(
    e: DecodeError,
    file: &str,
    loc: Location,
    truncated: impl FnOnce() -> String,
) -> TraceError {
    match e {
        DecodeError::Io { inner, .. } if inner.kind() == io::ErrorKind::UnexpectedEof => {
            TraceError::truncated(file, truncated())
        }
        DecodeError::Io { inner, .. } => TraceError::io(file, loc, inner),
        DecodeError::UnexpectedEnd { .. } => TraceError::truncated(file, truncated()),
        DecodeError::LimitExceeded => TraceError::malformed(
            file,
            loc,
            format!("a length prefix exceeds the {LIMIT_BYTES}-byte limit"),
        ),
        DecodeError::Utf8 { inner } => TraceError::malformed(
            file,
            loc,
            format!(
                "a string is not valid UTF-8 (bad byte after its first {} bytes)",
                inner.valid_up_to()
            ),
        ),
        DecodeError::UnexpectedVariant {
            found, type_name, ..
        } => TraceError::malformed(
            file,
            loc,
            format!("variant {found} of {type_name} does not exist"),
        ),
        DecodeError::InvalidBooleanValue(b) => {
            TraceError::malformed(file, loc, format!("byte {b} is not a boolean (0 or 1)"))
        }
        DecodeError::InvalidIntegerType { .. } => {
            TraceError::malformed(file, loc, "an integer's encoding is invalid")
        }
        DecodeError::OutsideUsizeRange(n) => {
            TraceError::malformed(file, loc, format!("length {n} is out of range"))
        }
        DecodeError::OtherString(m) => TraceError::malformed(file, loc, m),
        DecodeError::Other(m) => TraceError::malformed(file, loc, m),
        // bincode's Display of the others is their Debug form.
        other => TraceError::malformed(file, loc, format!("undecodable bytes ({other:?})")),
    }
}

fn map_encode(e: EncodeError, file: &str, loc: Location) -> TraceError {
    match e {
        EncodeError::Io { inner, .. } => TraceError::io(file, loc, inner),
        other => TraceError::invalid(file, loc, format!("cannot encode ({other})")),
    }
}

/// Read one byte; `Ok(None)` at a clean end of file.
fn read_byte<R: Read>(r: &mut R) -> io::Result<Option<u8>> {
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn read_exact_or<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    file: &str,
    loc: Location,
    trunc: &str,
) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TraceError::truncated(file, trunc)
        } else {
            TraceError::io(file, loc, e)
        }
    })
}

/// A little-endian `u64`, or `trunc` as the truncation message.
fn read_u64_or<R: Read>(r: &mut R, file: &str, loc: Location, trunc: &str) -> Result<u64> {
    let mut b = [0u8; 8];
    read_exact_or(r, &mut b, file, loc, trunc)?;
    Ok(u64::from_le_bytes(b))
}

/// Write magic, version and the bincode-encoded header body, and return
/// the writer of the records.
///
/// The header is decoded back before it is written: the reader decodes it
/// in one call under [`LIMIT_BYTES`], which counts all of its strings
/// together, so a header whose strings are each within the limit can
/// still be one the reader refuses. Such a header is an error here, not a
/// file its own reader cannot open.
pub(crate) fn create<W: Write, H: Serialize + DeserializeOwned>(
    w: W,
    file: &str,
    magic: &[u8; 8],
    header: &H,
) -> Result<RecordWriter<W>> {
    let body = bincode::serde::encode_to_vec(header, config())
        .map_err(|e| map_encode(e, file, Location::Header))?;
    if let Err(e) = bincode::serde::decode_from_slice::<H, _>(&body, config()) {
        return Err(match e {
            DecodeError::LimitExceeded => TraceError::invalid(
                file,
                Location::Header,
                format!(
                    "the header's strings total more than the {LIMIT_BYTES}-byte limit \
                     the reader decodes it under"
                ),
            ),
            other => TraceError::invalid(
                file,
                Location::Header,
                format!("the header does not decode back ({other})"),
            ),
        });
    }
    let mut w = Hashing {
        inner: w,
        h: Fnv::new(),
    };
    let io_err = |e| TraceError::io(file, Location::Header, e);
    w.write_all(magic).map_err(io_err)?;
    w.write_all(&FORMAT_VERSION.to_le_bytes()).map_err(io_err)?;
    w.write_all(&body).map_err(io_err)?;
    Ok(RecordWriter { w, count: 0 })
}

/// Read and check magic and version, then decode the header body, and
/// return it with the reader of the records. `expected` names the kind of
/// file for the wrong-magic message.
pub(crate) fn open<R: Read, H: DeserializeOwned>(
    r: R,
    file: &str,
    magic: &[u8; 8],
    expected: &'static str,
) -> Result<(H, RecordReader<R>)> {
    let mut r = HashReader::new(r);
    let version = read_version(&mut r, file, magic, expected)?;
    let header = bincode::serde::decode_from_reader(&mut r, config())
        .map_err(|e| map_decode(e, file, Location::Header, || "truncated header".to_string()))?;
    Ok((
        header,
        RecordReader {
            r,
            count: 0,
            version,
        },
    ))
}

/// Read and check magic and version.
fn read_version<R: Read>(
    r: &mut R,
    file: &str,
    magic: &[u8; 8],
    expected: &'static str,
) -> Result<u16> {
    let mut found = [0u8; 8];
    let mut got = 0;
    while got < found.len() {
        match r.read(&mut found[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(TraceError::io(file, Location::Header, e)),
        }
    }
    if got == 0 {
        return Err(TraceError::truncated(file, "empty file: no header"));
    }
    if found[..got] != magic[..got] {
        return Err(TraceError::BadMagic {
            file: file.to_string(),
            found: found[..got].escape_ascii().to_string(),
            expected,
        });
    }
    if got < found.len() {
        return Err(TraceError::truncated(
            file,
            "truncated header (inside the magic)",
        ));
    }
    let mut v = [0u8; 2];
    read_exact_or(
        r,
        &mut v,
        file,
        Location::Header,
        "truncated header (inside the version)",
    )?;
    let version = u16::from_le_bytes(v);
    if version > FORMAT_VERSION {
        return Err(TraceError::NewerVersion {
            file: file.to_string(),
            version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(TraceError::malformed(
            file,
            Location::Header,
            "format version 0 is not valid",
        ));
    }
    Ok(version)
}

/// Writes tagged records and the end-of-stream marker ([`create`]).
pub(crate) struct RecordWriter<W: Write> {
    w: Hashing<W>,
    count: u64,
}

impl<W: Write> RecordWriter<W> {
    pub(crate) fn count(&self) -> u64 {
        self.count
    }
    pub(crate) fn write<T: Serialize>(&mut self, rec: &T, file: &str) -> Result<()> {
        let loc = Location::Record(self.count);
        self.w
            .write_all(&[TAG_RECORD])
            .map_err(|e| TraceError::io(file, loc, e))?;
        bincode::serde::encode_into_std_write(rec, &mut self.w, config())
            .map_err(|e| map_encode(e, file, loc))?;
        self.count += 1;
        Ok(())
    }
    /// Write the end marker and the checksum, flush, and give the writer
    /// back.
    pub(crate) fn finish(mut self, file: &str) -> Result<W> {
        let loc = Location::Record(self.count);
        let io_err = |e| TraceError::io(file, loc, e);
        self.w.write_all(&[TAG_END]).map_err(io_err)?;
        self.w
            .write_all(&self.count.to_le_bytes())
            .map_err(io_err)?;
        let sum = self.w.h.0;
        let mut w = self.w.inner;
        w.write_all(&sum.to_le_bytes()).map_err(io_err)?;
        w.flush().map_err(io_err)?;
        Ok(w)
    }
}

/// Reads tagged records up to and including the end-of-stream marker
/// (and the checksum) ([`open`]).
pub(crate) struct RecordReader<R: Read> {
    r: HashReader<R>,
    count: u64,
    /// The file's format version.
    version: u16,
}

impl<R: Read> RecordReader<R> {
    /// Number of records decoded so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }
    fn after(&self) -> String {
        match self.count {
            0 => "truncated after the header: no records and no end-of-stream marker".to_string(),
            n => format!(
                "truncated after record {}: end-of-stream marker missing",
                n - 1
            ),
        }
    }
    /// Next record, `Ok(None)` after a valid end marker.
    pub(crate) fn next<T: DeserializeOwned>(&mut self, file: &str) -> Result<Option<T>> {
        let n = self.count;
        let loc = Location::Record(n);
        let tag = match read_byte(&mut self.r) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(TraceError::truncated(file, self.after())),
            Err(e) => return Err(TraceError::io(file, loc, e)),
        };
        match tag {
            TAG_RECORD => {
                let rec = bincode::serde::decode_from_reader(&mut self.r, config())
                    .map_err(|e| map_decode(e, file, loc, || format!("truncated record {n}")))?;
                self.count += 1;
                Ok(Some(rec))
            }
            TAG_END => {
                let stated = read_u64_or(
                    &mut self.r,
                    file,
                    loc,
                    &format!("truncated end-of-stream marker after {n} records"),
                )?;
                if stated != n {
                    return Err(TraceError::malformed(
                        file,
                        loc,
                        format!("end-of-stream marker says {stated} records but {n} were read"),
                    ));
                }
                if self.version >= CHECKSUM_VERSION {
                    let computed = self.r.h.0;
                    let stored = read_u64_or(
                        &mut self.r,
                        file,
                        loc,
                        &format!("truncated checksum after {n} records"),
                    )?;
                    if stored != computed {
                        return Err(TraceError::Corrupt {
                            file: file.to_string(),
                            stored,
                            computed,
                        });
                    }
                }
                match read_byte(&mut self.r) {
                    Ok(None) => Ok(None),
                    Ok(Some(_)) => Err(TraceError::malformed(
                        file,
                        loc,
                        if self.version < CHECKSUM_VERSION {
                            // A version-2 file whose version field was
                            // corrupted to 1 ends like this too.
                            "trailing data after the end-of-stream marker (a version-1 file \
                             has no checksum; if this one has, its version field is corrupt)"
                        } else {
                            "trailing data after the end-of-stream marker"
                        },
                    )),
                    Err(e) => Err(TraceError::io(file, loc, e)),
                }
            }
            t => Err(TraceError::malformed(
                file,
                loc,
                format!("bad record tag {t} (expected 1 = record or 0 = end of stream)"),
            )),
        }
    }
}
