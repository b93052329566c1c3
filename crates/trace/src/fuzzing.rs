//! Entry points of the fuzz targets in `fuzz/` (also run by the property
//! tests on mutated inputs). Each decodes arbitrary bytes completely and
//! must return normally — never panic, never allocate without bound.

use std::io::BufReader;

use crate::import::{import_generic_reader, ImportOptions};
use crate::packet::{PacketTextReader, PacketTraceReader};
use crate::routing::RoutingReader;

/// Decode `data` as a binary packet trace; returns the records read.
pub fn packet_binary(data: &[u8]) -> usize {
    match PacketTraceReader::with_name(data, "fuzz.wnpt") {
        Ok(r) => r.take_while(Result::is_ok).count(),
        Err(_) => 0,
    }
}

/// Decode `data` as a JSONL packet trace; returns the records read.
pub fn packet_text(data: &[u8]) -> usize {
    match PacketTextReader::with_name(BufReader::new(data), "fuzz.jsonl") {
        Ok(r) => r.take_while(Result::is_ok).count(),
        Err(_) => 0,
    }
}

/// Decode `data` as a binary routing trace; returns the requests read.
pub fn routing_binary(data: &[u8]) -> usize {
    match RoutingReader::with_name(data, "fuzz.wnrt") {
        Ok(r) => r.take_while(Result::is_ok).count(),
        Err(_) => 0,
    }
}

/// Import `data` as generic routing JSONL; returns the requests read.
pub fn generic_jsonl(data: &[u8]) -> usize {
    import_generic_reader(data, "fuzz.jsonl", &ImportOptions::default())
        .map_or(0, |t| t.requests.len())
}
