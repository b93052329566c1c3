//! Traffic for wafernoc: intent turned into packets over time.
//!
//! - [`synthetic`]: BookSim2's destination patterns (uniform, transpose,
//!   bitcomp, bitrev, shuffle, tornado, neighbor, hotspot), Bernoulli and
//!   on/off injection, rates in flits or packets per node per cycle, fixed or
//!   mixed packet sizes.
//!
//! Invariant: every source is a pure function of its spec and seed; node `n`
//! draws only from its own random stream.

pub mod collective;
pub mod serving;
pub mod synthetic;

pub use synthetic::{Pattern, Process, RateUnit, Synthetic, SyntheticSpec, TrafficError};
