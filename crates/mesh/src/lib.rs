//! The flit-level network of wafernoc.
//!
//! - [`topology`]: R×C meshes, several wafers joined edge to edge, per-link
//!   latency and bandwidth (slower wafer-crossing links).
//! - [`routing`]: XY, YX, minimal adaptive with a Duato escape VC, and the
//!   deliberately unsafe `adaptive_unsafe`.
//! - [`config`]: message classes on disjoint VC sets with switch-allocation
//!   priorities; one typed configuration checked at build time.
//! - [`network`]: the cycle engine (input-queued VC routers with credit flow
//!   control, pipelined links, network interfaces with unbounded source
//!   queues, packetisation, ejection), per-link flit counters by class.
//! - [`sim`]: BookSim2-style latency and throughput measurement.
//! - [`stats`]: sample statistics (mean, extremes, percentiles).
//! - [`deadlock`]: the typed report of a stopped network.
//! - [`cdg`]: the static deadlock check (channel dependency graph) of a
//!   configuration.
//!
//! Invariants (property-tested): every injected packet is delivered exactly
//! once, flits of a packet arrive in order, a VC buffer never interleaves two
//! packets, credits never exceed buffer depth, flits are conserved every
//! cycle, and a run is a pure function of its configuration and seed.
//! This crate prints nothing and does no network I/O; its one file read is
//! the core's L2 size from Linux's sysfs ([`network::l2_bytes`]), which
//! tunes a prefetch pass and changes no result.

pub mod cdg;
pub mod config;
pub mod deadlock;
pub mod network;
pub mod routing;
pub mod sim;
pub mod stats;
pub mod topology;

pub use config::{ClassSpec, ConfigError, NetworkConfig};
pub use deadlock::{DeadlockReport, WaitingVc};
pub use network::{Counters, Delivered, Network, NewPacket, NodeCounts, StepKind};
pub use routing::Routing;
pub use topology::{MeshSpec, Topology, LOCAL, PORTS};
