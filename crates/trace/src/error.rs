//! The one error type of the crate: [`TraceError`].
//!
//! Every variant names the file (or stream) it came from and, where one
//! exists, the place inside it ([`Location`]: header, record index, line
//! number). Decoders never panic on malformed input; they return one of these.

use std::fmt;
use std::io;
use std::path::Path;

/// Where in a file an error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Not tied to a place in the file (e.g. opening it failed).
    File,
    /// The binary header (magic, version, header body).
    Header,
    /// A binary record, counted from 0 in file order.
    Record(u64),
    /// A text line, counted from 1.
    Line(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => f.write_str("file"),
            Location::Header => f.write_str("header"),
            Location::Record(n) => write!(f, "record {n}"),
            Location::Line(n) => write!(f, "line {n}"),
        }
    }
}

fn loc_prefix(loc: &Location) -> String {
    match loc {
        Location::File | Location::Record(_) => String::new(),
        Location::Header => "header: ".to_string(),
        Location::Line(n) => format!("line {n}: "),
    }
}

/// Every error of the trace crate. `Display` gives the whole message,
/// starting with the file name.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// An I/O error other than an unexpected end of file.
    #[error("{file}: {loc}: I/O error: {source}")]
    Io {
        /// File (or stream name) being read or written.
        file: String,
        /// Where the error happened.
        loc: Location,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the expected 8-byte magic.
    #[error("{file}: wrong magic {found:?}: not a {expected}")]
    BadMagic {
        /// File being read.
        file: String,
        /// The bytes found (lossy text rendering).
        found: String,
        /// What kind of file was expected.
        expected: &'static str,
    },
    /// The file was written by a newer build of wafernoc.
    #[error("{file}: format version {version} is newer than this build supports ({supported})")]
    NewerVersion {
        /// File being read.
        file: String,
        /// Version found in the file.
        version: u16,
        /// Newest version this build reads.
        supported: u16,
    },
    /// The file ends early: inside the header, inside a record, or at a
    /// record boundary without the end-of-stream marker.
    #[error("{file}: {detail}")]
    Truncated {
        /// File being read.
        file: String,
        /// e.g. `truncated record 7` or `truncated after record 6`.
        detail: String,
    },
    /// A binary file decoded but its checksum (format version 2) does not
    /// match: it was changed after it was written.
    #[error(
        "{file}: corrupt: checksum mismatch (stored {stored:016x}, computed {computed:016x}): \
         the file was changed after it was written"
    )]
    Corrupt {
        /// File being read.
        file: String,
        /// The checksum stored in the file.
        stored: u64,
        /// The checksum of the bytes read.
        computed: u64,
    },
    /// Bytes or text that cannot be decoded (bad JSON, bad tag, undecodable binary record).
    #[error("{file}: {loc}: malformed: {msg}")]
    Malformed {
        /// File being read.
        file: String,
        /// Header, record or line at fault.
        loc: Location,
        /// What is wrong.
        msg: String,
    },
    /// Well-formed data that breaks an invariant of the format (ids out of
    /// range, non-monotonic cycles, unknown dependency, shape mismatch...).
    /// For [`Location::Record`] the message itself names the record.
    #[error("{file}: {}{msg}", loc_prefix(loc))]
    Invalid {
        /// File being read or written.
        file: String,
        /// Header, record or line at fault.
        loc: Location,
        /// What is wrong.
        msg: String,
    },
    /// A request that cannot be carried out (unknown extension, bad option).
    #[error("{file}: {msg}")]
    Usage {
        /// File concerned.
        file: String,
        /// What is wrong.
        msg: String,
    },
}

impl TraceError {
    pub(crate) fn io(file: &str, loc: Location, source: io::Error) -> Self {
        TraceError::Io {
            file: file.to_string(),
            loc,
            source,
        }
    }
    pub(crate) fn malformed(file: &str, loc: Location, msg: impl Into<String>) -> Self {
        TraceError::Malformed {
            file: file.to_string(),
            loc,
            msg: msg.into(),
        }
    }
    pub(crate) fn invalid(file: &str, loc: Location, msg: impl Into<String>) -> Self {
        TraceError::Invalid {
            file: file.to_string(),
            loc,
            msg: msg.into(),
        }
    }
    pub(crate) fn truncated(file: &str, detail: impl Into<String>) -> Self {
        TraceError::Truncated {
            file: file.to_string(),
            detail: detail.into(),
        }
    }
    pub(crate) fn usage(file: &str, msg: impl Into<String>) -> Self {
        TraceError::Usage {
            file: file.to_string(),
            msg: msg.into(),
        }
    }
}

/// Display name of a path for error messages.
pub(crate) fn path_name(p: &Path) -> String {
    p.display().to_string()
}

/// Shorthand result type.
pub type Result<T, E = TraceError> = std::result::Result<T, E>;

/// Opens `path` for buffered reading (64 KiB); returns the reader and the
/// name the readers use in error messages.
pub(crate) fn open_buffered(path: &Path) -> Result<(std::io::BufReader<std::fs::File>, String)> {
    let (f, name) = open_file(path)?;
    Ok((std::io::BufReader::with_capacity(1 << 16, f), name))
}

/// Opens `path` unbuffered, for the binary readers, which buffer their
/// input themselves; returns the file and its name for error messages.
pub(crate) fn open_file(path: &Path) -> Result<(std::fs::File, String)> {
    let name = path_name(path);
    let f = std::fs::File::open(path).map_err(|e| TraceError::io(&name, Location::File, e))?;
    Ok((f, name))
}

/// One step of a trace reader's iterator, which ends after the end of the
/// input or after its first error: sets `done` on either.
pub(crate) fn fused<T>(done: &mut bool, step: Result<Option<T>>) -> Option<Result<T>> {
    match step {
        Ok(Some(r)) => Some(Ok(r)),
        Ok(None) => {
            *done = true;
            None
        }
        Err(e) => {
            *done = true;
            Some(Err(e))
        }
    }
}
