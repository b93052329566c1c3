//! Traffic for wafernoc: intent turned into packets over time.
//!
//! - [`synthetic`]: BookSim2's destination patterns (uniform, transpose,
//!   bitcomp, bitrev, shuffle, tornado, neighbor, hotspot), Bernoulli and
//!   on/off injection, rates in flits or packets per node per cycle, fixed or
//!   mixed packet sizes.
//! - [`collective`]: MoE collectives as closed-loop flit traffic (the TP
//!   ring all-reduce, dispatch and combine), one phase at a time on a
//!   network built from a wafer.
//! - [`serving`]: serving iterations with expert load balancing and weight
//!   migration (NI-Balancer) on one long-lived network.
//!
//! Invariants: every synthetic source is a pure function of its spec and
//! seed, node `n` drawing only from its own random stream; a collective
//! phase or serving run is a pure function of its spec (and routing), so
//! its results do not depend on the thread count.

pub mod collective;
pub mod serving;
pub mod synthetic;

pub use synthetic::{
    Pattern, Process, RateUnit, Synthetic, SyntheticSpec, TrafficError, TrafficKey,
};

/// A number for an error message: three decimals, or three significant
/// digits in scientific notation where three decimals would read 0.000 or
/// run to hundreds of digits (a rate of 1e308, a cycle of 6e-8 ns).
pub fn fmt_num(x: f64) -> String {
    if (1e-3..1e6).contains(&x.abs()) || x == 0.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}
