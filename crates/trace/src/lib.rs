//! Versioned trace formats for wafernoc.
//!
//! Two kinds of trace, each with a binary and a text (JSONL) encoding:
//!
//! - **packet traces** ([`packet`]): a header (`nodes`, size unit, free-form
//!   metadata) and a stream of packet injections with dependencies;
//! - **MoE routing traces** ([`routing`]): per request, per token, per MoE
//!   layer, the `top_k` experts the router chose (optionally with weights),
//!   imported from real captures by [`mod@import`], scheduled into serving
//!   iterations by [`batching`] and summarised by [`mod@stats`].
//!
//! # Invariants
//!
//! Every reader checks these and every writer refuses to break them, so any
//! trace this crate hands out satisfies them:
//!
//! - Binary files start with an 8-byte magic (`WNOCPKT\0` packet,
//!   `WNOCRTE\0` routing) and a little-endian `u16` format version; versions
//!   newer than [`FORMAT_VERSION`] are rejected. Records are tagged and the
//!   stream ends with an end marker carrying the record count and (version
//!   2) a checksum of every byte before it, so any change confined to one
//!   byte is an error, and truncation
//!   anywhere — inside a record or at a record boundary — is an error.
//! - Packet ids are dense: record `i` has `id == i`; a dependency is valid
//!   iff it is `< id` (it names an earlier packet; no cycles). `src`, `dst`
//!   are `< nodes`; cycles never decrease in file order; `size >= 1`.
//! - Routing traces: `1 <= top_k <= num_experts`, `num_layers >= 1`;
//!   request ids strictly increase; every request has at least one token;
//!   every token has exactly `num_layers * top_k` expert ids (layer-major),
//!   each `< num_experts`, no expert twice in one layer of one token;
//!   weights, if present, match in length and are finite.
//! - Decoding never panics: any malformed input (truncated, wrong magic,
//!   newer version, bad JSON, out-of-range ids...) is a [`TraceError`] whose
//!   message names the file and the record index or line number.
//! - Decoding streams: packet and binary routing readers hold one record at a
//!   time, and a string or byte length prefix above [`codec::LIMIT_BYTES`]
//!   is rejected before anything is allocated.
//!
//! Only the [`codec`] module knows the binary serialiser; everything else
//! goes through its container functions.

pub mod batching;
pub mod bench;
pub mod codec;
pub mod convert;
mod error;
pub mod fuzzing;
pub mod import;
pub mod packet;
pub mod routing;
pub mod stats;

#[cfg(test)]
mod tests;

pub use batching::{iterations, Batching, Iteration, Iterations, TokenRef};
pub use codec::{FORMAT_VERSION, TEXT_FORMAT_VERSION};
pub use convert::{
    convert, detect_bytes, detect_format, encoding_for_path, open_detected, same_file,
    ConvertSummary, Encoding, Sniffed, TraceFormat, TraceKind,
};
pub use error::{Location, Result, TraceError};
pub use import::{import, ImportFormat, ImportOptions};
pub use packet::{
    PacketReader, PacketRecord, PacketTextReader, PacketTextWriter, PacketTraceHeader,
    PacketTraceReader, PacketTraceWriter, PacketValidator, SizeUnit,
};
pub use routing::{
    Phase, Request, RequestValidator, RoutingMeta, RoutingReader, RoutingTrace, RoutingWriter,
    TokenRouting,
};
pub use stats::{stats, TraceStats};
