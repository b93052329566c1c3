//! # wafernoc-moe: the MoE workload on a wafer-scale mesh, as pure logic
//!
//! Model presets ([`MoeModel`]), wafer and die specifications ([`WaferSpec`],
//! [`DieSpec`]), parallel plans and their layouts on the mesh (block mapping,
//! ER-Mapping, hierarchical ER: [`ParallelPlan`], [`Layout`]), expert
//! placement with shadow replicas ([`Placement`]), dispatch/combine traffic
//! matrices ([`dispatch`], [`combine`]), synthetic routing
//! ([`RoutingSource`]), the roofline compute model ([`ComputeModel`]), the
//! load predictor and balancer policy ([`LoadPredictor`], [`Balancer`]), and
//! an analytic GPU-cluster baseline behind one ideal switch
//! ([`SwitchCluster`], NVL72 by default).
//!
//! This crate sends no packet, reads no file and prints nothing; the traffic
//! crate turns its outputs into packets. The design and its sources are in
//! `docs/moe.md`; the domain in the MoEntwine note.
//!
//! ## Conventions
//!
//! - Device id = `x + C * y` on the full `R x C` device mesh (all wafers), `x`
//!   the column, `y` the row ([`Coord`]). Cells of a tile and tiles of a tile
//!   grid are written `(row, col)`.
//! - Times are in nanoseconds unless a name says cycles; one cycle moves one
//!   flit over a full-speed link ([`WaferSpec::cycle_ns`]).
//! - Every random draw comes from [`Xoshiro256StarStar`] seeded from
//!   `(seed, group, layer)`: the same arguments give the same output.
//!
//! ## Invariants
//!
//! - A [`Layout`] exists only for a valid plan: `tp * dp = N`, `N` divides the
//!   expert count, the tile tiles the mesh (the wafer under HER). Impossible
//!   plans are [`MoeError`]s that name the parameter; nothing panics on bad
//!   parameters.
//! - Every device is in exactly one TP group and one FTD, and
//!   `layout.ftds()[f][g]` is TP group `g`'s only member in FTD `f`.
//! - Under ER/HER the FTDs are exactly the tiles of [`Layout::tile_grid`], so
//!   confined dispatch/combine flows never have ends in different tiles and,
//!   tiles being rectangles, minimal routes never use a boundary link.
//! - Every device hosts `E/N` home experts and every FTD `E/tp`; an expert's
//!   home replica is always live; no device holds more than
//!   `shadow_slots_per_device` shadow replicas.
//! - Self-sends are counted apart ([`AllToAll::local`]) and carry no traffic.
//! - The balancer does nothing while predicted `max/mean <= 1 + alpha`.

mod alltoall;
mod balance;
mod cluster;
mod compute;
mod error;
mod grid;
mod model;
mod placement;
mod plan;
mod routing;
mod spec;

/// A device (die) id: `x + mesh_cols * y`.
pub type DeviceId = usize;

/// A routed expert id: `0..experts`.
pub type ExpertId = usize;

pub use alltoall::{
    assign, combine, dispatch, sender, AllToAll, AllToAllMode, Assignment, Flow, RoutingCounts,
    Share,
};
pub use balance::{
    BalancePolicy, Balancer, BalancerConfig, Eviction, LoadPredictor, Migration, PredictorKind,
    RoundPlan, DEFAULT_TRIGGER_ALPHA,
};
pub use cluster::{ClusterLayer, SwitchCluster, MAX_CLUSTER_GPUS, NVL72_GPUS, NVLINK5_GBPS};
pub use compute::{
    check_hbm_capacity, AttentionCost, ComputeModel, MoeCompute, ProjectionAttention,
};
pub use error::{MoeError, Result};
pub use grid::{ring_order, Coord};
pub use model::{
    MoeModel, DEFAULT_COMBINE_BYTES_PER_ELEM, DEFAULT_DISPATCH_BYTES_PER_ELEM, DEFAULT_PARAM_BYTES,
};
pub use placement::{Placement, Replica, ReplicaState};
pub use plan::{
    ring_sends, HierRing, Layout, Mapping, MappingKind, ParallelPlan, RingDirection, RingPolicy,
    RingSend, TileGrid, TileKind, DEFAULT_SHADOW_SLOTS,
};
pub use routing::{tokens_with_weights, RoutingSource, Xoshiro256StarStar};
pub use spec::{
    DieSpec, WaferSpec, DEFAULT_CROSS_WAFER_GBPS, DEFAULT_CROSS_WAFER_LATENCY_NS,
    DEFAULT_FLIT_BYTES, DEFAULT_HOP_LATENCY_NS, DEFAULT_LINK_GBPS,
};
