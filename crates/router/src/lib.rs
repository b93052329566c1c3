//! Router and link microarchitecture for wafernoc.
//!
//! This crate holds the hardware blocks of an input-queued virtual-channel
//! router and of the links between routers. It knows nothing of topology,
//! routing or workloads: the `wafernoc-mesh` crate wires these blocks into a
//! network and drives them cycle by cycle.
//!
//! Blocks:
//! - [`config::RouterConfig`]: VC count, buffer depth, pipeline delays
//!   (BookSim2's `routing_delay`, `vc_alloc_delay`, `sw_alloc_delay`,
//!   `st_prepare_delay`, `st_final_delay`, `credit_delay`, `output_delay`),
//!   allocator and arbiter choice, `wait_for_tail_credit`.
//! - [`flit::Flit`]: a 4-byte flit reference (packet slot, head/tail flags).
//! - [`buffer::VcBuffers`]: all input VC buffers of a network as rings; a
//!   ring of at most 8 flits lives inside its VC's 64-byte
//!   [`buffer::VcState`] record, beside the ring position and pipeline
//!   state, and deeper rings in one flat array beside the records.
//! - [`arbiter`]: round-robin and matrix arbiters over bit masks.
//! - [`allocator`]: separable input-first, separable output-first and iSLIP
//!   (1..n iterations) allocators over bit-mask request matrices, and
//!   [`allocator::SmallIslip`], the 16-byte state of an iSLIP allocator of
//!   up to 8 ports (a mesh router's switch) giving the same matches.
//! - [`link::LinkTiming`]: a link of latency ≥ 1 cycle with a bandwidth of
//!   one flit every `n` cycles; credits travel on a link of their own. The
//!   mesh keeps items in flight in its timing wheel.
//!
//! Invariants kept by these blocks (checked by tests and debug assertions):
//! - a VC buffer never holds more flits than its depth;
//! - a link delivers an item `latency + cycles_per_flit` cycles after the
//!   cycle it was sent in (BookSim's channel convention, see [`link`]) and
//!   accepts at most one item every `cycles_per_flit` cycles;
//! - an allocator never grants an input or an output twice in one call, and
//!   only grants requested pairs.

pub mod allocator;
pub mod arbiter;
pub mod buffer;
pub mod config;
pub mod flit;
pub mod link;

pub use allocator::{nonzero_bytes, Allocator, AllocatorKind, SmallIslip};
pub use arbiter::{Arbiter, ArbiterKind};
pub use buffer::{VcBuffers, VcState, Window, INLINE_FLITS};
pub use config::{ConfigError, RouterConfig};
pub use flit::Flit;
pub use link::LinkTiming;

/// Largest number of (port × VC) pairs per router: request sets are `u128`
/// bit masks.
pub const MAX_PORT_VCS: usize = 128;
