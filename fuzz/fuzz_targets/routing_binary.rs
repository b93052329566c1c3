//! Fuzz the binary routing-trace decoder (RoutingReader): any input must decode to
//! records or an error, never a panic or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wafernoc_trace::fuzzing::routing_binary(data);
});
