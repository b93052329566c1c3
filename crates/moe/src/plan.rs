//! Parallel plans (TP x DP) and their layouts on the mesh: block mapping,
//! ER-Mapping (entwined rings) and hierarchical ER for several wafers.
//!
//! **Conventions.** Device id = `x + C * y` on the full `R x C` device mesh,
//! `x` the column, `y` the row ([`Coord`]). Cells inside a tile and tiles
//! inside the tile grid are written `(row, col)`; the MoEntwine worked example
//! ("TP group (0,0) on {(0,0),(0,2),(2,2),(2,0)}") uses `(row, col)` too, and
//! its serpentine order walks tile row 0 left to right first.
//!
//! **Construction** (MoEntwine §3; the layout is our construction):
//!
//! - [`Mapping::Block`]: each TP group is a compact `tr x tc` tile (`tr * tc =
//!   tp`). TP group `g` = tile `g` (tiles numbered row-major); its ring is the
//!   tile's [`ring_order`](crate::grid::ring_order) (a cycle of neighbour links
//!   whenever `tp` is even and the tile is 2-D). FTD `f` = the devices at
//!   row-major offset `f` inside every TP tile (a strided set spanning the
//!   mesh). DP group index = TP group index.
//! - [`Mapping::Er`]: each FTD is a compact `a x b` tile (`a * b = dp`), FTD
//!   `f` = tile `f` (row-major). TP group `g = p * b + q` = the devices at offset
//!   `(p, q)` inside every FTD tile; its ring visits the tiles in the tile
//!   grid's ring order, so ring neighbours are `a` or `b` hops apart.
//! - [`Mapping::Her`]: as ER, but FTD tiles must stay inside one wafer; each
//!   TP group has one sub-ring per wafer (over that wafer's tile grid) and
//!   cross-wafer exchange groups ([`HierRing`]).
//!
//! **Invariants** of every [`Layout`]: every device is in exactly one TP group
//! and one FTD; `ftds()[f][g]` is the member of TP group `g` in FTD `f` (so
//! each FTD holds exactly one member of each TP group); the FTDs and the tiles
//! of [`Layout::tile_grid`] are the same sets under ER/HER.

use serde::{Deserialize, Serialize};

use crate::error::{nonzero, MoeError, Result};
use crate::grid::{choose_tile, ring_order, Coord};
use crate::spec::WaferSpec;
use crate::DeviceId;

/// Default shadow (spare) expert slots per device: 1.
///
/// Reason (the paper gives no number): one slot is the least that allows any
/// balancing, and at EP = N with E/N experts per device it costs at most one
/// extra expert of HBM (44 MB for a DeepSeek-V3 expert in FP8).
pub const DEFAULT_SHADOW_SLOTS: usize = 1;

/// Direction policy of the TP all-reduce rings.
///
/// Default [`RingPolicy::Same`] (the paper does not say): the textbook
/// unidirectional ring, as ASTRA-sim's ring collective, which the paper's
/// evaluation used. The policy changes all-reduce cost by up to 2x, so it is
/// reported with every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingPolicy {
    /// Every ring runs forward (in the order of [`Layout::tp_groups`]).
    #[default]
    Same,
    /// Neighbouring rings run in opposite directions (checkerboard: under
    /// block mapping by TP tile `(i + j) % 2`, under ER/HER by the group's
    /// offset `(p + q) % 2`; even runs forward).
    Alternate,
    /// Every ring runs both ways at once, half of the data each way.
    Bidirectional,
}

/// Direction in which one TP group's ring sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingDirection {
    /// Member `i` sends to member `i + 1` (ring order).
    Forward,
    /// Member `i` sends to member `i - 1`.
    Backward,
    /// Both at once, each carrying half of the data.
    Both,
}

/// How TP groups and FTDs are laid out on the mesh.
///
/// `tile`: explicit `(rows, cols)` of the plan's compact tile (TP tile for
/// block, FTD tile for ER/HER); `None` picks the squarest shape that tiles the
/// mesh (for HER: the wafer), preferring shapes that do not straddle a wafer
/// edge, then a squarer tile grid, then wider tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mapping {
    /// Baseline: TP groups on compact tiles, FTDs strided across the mesh.
    Block {
        /// TP tile `(rows, cols)`, area = tp; `None` = squarest.
        #[serde(default)]
        tile: Option<(usize, usize)>,
        /// Ring direction policy.
        #[serde(default)]
        ring: RingPolicy,
    },
    /// ER-Mapping: FTDs on compact tiles, TP rings entwined across tiles.
    Er {
        /// FTD tile `(rows, cols)`, area = dp; `None` = squarest.
        #[serde(default)]
        tile: Option<(usize, usize)>,
        /// Ring direction policy.
        #[serde(default)]
        ring: RingPolicy,
    },
    /// Hierarchical ER for several wafers: FTD tiles inside one wafer, TP
    /// all-reduce = per-wafer reduce-scatter, cross-wafer exchange, per-wafer
    /// all-gather.
    Her {
        /// FTD tile `(rows, cols)`, area = dp, must tile one wafer; `None` =
        /// squarest.
        #[serde(default)]
        tile: Option<(usize, usize)>,
        /// Ring direction policy (of the per-wafer sub-rings).
        #[serde(default)]
        ring: RingPolicy,
    },
}

impl Mapping {
    /// Block mapping with default tile and ring policy.
    pub fn block() -> Self {
        Mapping::Block {
            tile: None,
            ring: RingPolicy::default(),
        }
    }

    /// ER-Mapping with default tile and ring policy.
    pub fn er() -> Self {
        Mapping::Er {
            tile: None,
            ring: RingPolicy::default(),
        }
    }

    /// Hierarchical ER with default tile and ring policy.
    pub fn her() -> Self {
        Mapping::Her {
            tile: None,
            ring: RingPolicy::default(),
        }
    }

    /// The mapping's kind.
    pub fn kind(&self) -> MappingKind {
        match self {
            Mapping::Block { .. } => MappingKind::Block,
            Mapping::Er { .. } => MappingKind::Er,
            Mapping::Her { .. } => MappingKind::Her,
        }
    }

    /// The ring policy.
    pub fn ring(&self) -> RingPolicy {
        match *self {
            Mapping::Block { ring, .. } | Mapping::Er { ring, .. } | Mapping::Her { ring, .. } => {
                ring
            }
        }
    }

    /// The explicit tile, if any.
    pub fn tile(&self) -> Option<(usize, usize)> {
        match *self {
            Mapping::Block { tile, .. } | Mapping::Er { tile, .. } | Mapping::Her { tile, .. } => {
                tile
            }
        }
    }
}

/// The kind of a [`Mapping`], without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingKind {
    /// Block mapping.
    Block,
    /// ER-Mapping.
    Er,
    /// Hierarchical ER.
    Her,
}

/// What the tiles of a [`TileGrid`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TileKind {
    /// Block mapping: each tile is one TP group (the FTDs are strided, so they
    /// do not form a grid of tiles).
    TpGroup,
    /// ER/HER: each tile is one FTD.
    Ftd,
}

/// The grid of the plan's compact tiles, which classifies links: a link is a
/// *boundary* link iff its ends lie in different tiles.
///
/// Tiles are numbered row-major: tile `(i, j)` has index `i * grid_cols + j`
/// and covers rows `i*tile_rows ..` and columns `j*tile_cols ..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileGrid {
    /// Rows of one tile.
    pub tile_rows: usize,
    /// Columns of one tile.
    pub tile_cols: usize,
    /// Tile rows in the mesh.
    pub grid_rows: usize,
    /// Tile columns in the mesh.
    pub grid_cols: usize,
    /// What a tile is.
    pub kind: TileKind,
}

impl TileGrid {
    /// Number of tiles.
    pub fn num_tiles(&self) -> usize {
        self.grid_rows * self.grid_cols
    }

    /// Index of the tile containing a coordinate (no range check beyond the
    /// arithmetic: callers pass mesh coordinates).
    pub fn tile_index(&self, at: Coord) -> usize {
        (at.y / self.tile_rows) * self.grid_cols + at.x / self.tile_cols
    }

    /// Top-left coordinate of tile `t`, or `None` if out of range.
    pub fn tile_origin(&self, t: usize) -> Option<Coord> {
        (t < self.num_tiles()).then(|| Coord {
            x: (t % self.grid_cols) * self.tile_cols,
            y: (t / self.grid_cols) * self.tile_rows,
        })
    }
}

/// One send of a ring step: `src` sends `share` of the step's chunk to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RingSend {
    /// Sender.
    pub src: DeviceId,
    /// Receiver.
    pub dst: DeviceId,
    /// Fraction of the chunk (1.0, or 0.5 per direction when bidirectional).
    pub share: f64,
}

/// The sends of one step of a ring all-reduce over `members` (in ring order):
/// forward `i -> i+1`, backward `i -> i-1`, or both with half the data each.
/// A ring of fewer than 2 members sends nothing.
///
/// A ring all-reduce of `M` bytes over `t` members is `2(t-1)` such steps of
/// `M/t` bytes (reduce-scatter, then all-gather), each waiting for the chunk of
/// the previous step.
pub fn ring_sends(members: &[DeviceId], dir: RingDirection) -> Vec<RingSend> {
    let t = members.len();
    if t < 2 {
        return Vec::new();
    }
    let fwd = |share| (0..t).map(move |i| (i, (i + 1) % t, share));
    let bwd = |share| (0..t).map(move |i| (i, (i + t - 1) % t, share));
    let pairs: Vec<(usize, usize, f64)> = match dir {
        RingDirection::Forward => fwd(1.0).collect(),
        RingDirection::Backward => bwd(1.0).collect(),
        RingDirection::Both => fwd(0.5).chain(bwd(0.5)).collect(),
    };
    pairs
        .into_iter()
        .map(|(i, j, share)| RingSend {
            src: members[i],
            dst: members[j],
            share,
        })
        .collect()
}

/// The hierarchical structure of one TP group's all-reduce under HER.
///
/// Algorithm (MoEntwine §3): reduce-scatter on each wafer's sub-ring
/// (`t_w = wafer_rings[w].len()` members, `M / t_w` bytes per shard), then an
/// all-reduce of each shard among its exchange group (one member per wafer,
/// `M / t_w` bytes), then all-gather on each wafer's sub-ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HierRing {
    /// Per wafer (index = wafer id), the group's members on that wafer in
    /// sub-ring order.
    pub wafer_rings: Vec<Vec<DeviceId>>,
    /// Per shard position `i` (index into every sub-ring), the members at
    /// position `i` on every wafer, in wafer order: after the per-wafer
    /// reduce-scatter each holds shard `i` of its wafer's partial sum.
    pub exchange_groups: Vec<Vec<DeviceId>>,
}

/// A parallel plan: TP x DP attention, EP = N experts, and its mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelPlan {
    /// Tensor-parallel degree (members of one TP group).
    pub tp: usize,
    /// Data-parallel degree (number of TP groups = DP groups).
    pub dp: usize,
    /// Layout on the mesh.
    pub mapping: Mapping,
    /// Spare expert slots per device for replicas. Default
    /// [`DEFAULT_SHADOW_SLOTS`].
    #[serde(default = "default_shadow")]
    pub shadow_slots_per_device: usize,
}

fn default_shadow() -> usize {
    DEFAULT_SHADOW_SLOTS
}

impl ParallelPlan {
    /// A plan with [`DEFAULT_SHADOW_SLOTS`].
    pub fn new(tp: usize, dp: usize, mapping: Mapping) -> Self {
        ParallelPlan {
            tp,
            dp,
            mapping,
            shadow_slots_per_device: DEFAULT_SHADOW_SLOTS,
        }
    }

    /// Builds the layout of this plan on `spec` for a model with `experts`
    /// routed experts. Errors name the parameter that makes the plan
    /// impossible: `tp`/`dp` (tp x dp != devices), `experts` (not divisible by
    /// the device count), `tile` (wrong area, or does not tile the mesh / the
    /// wafer), `tp`/`dp` (no tile shape exists), or a field of `spec`.
    pub fn layout(&self, spec: &WaferSpec, experts: usize) -> Result<Layout> {
        Layout::new(spec, self, experts)
    }
}

/// The placement of TP groups, FTDs and rings on the mesh for one plan.
///
/// Built only by [`Layout::new`] / [`ParallelPlan::layout`] (it serialises for
/// result files but does not deserialise), so every `Layout` is valid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    spec: WaferSpec,
    tp: usize,
    dp: usize,
    experts: usize,
    shadow_slots: usize,
    kind: MappingKind,
    ring_policy: RingPolicy,
    grid: TileGrid,
    tp_groups: Vec<Vec<DeviceId>>,
    ftds: Vec<Vec<DeviceId>>,
    ring_dirs: Vec<RingDirection>,
    hier: Option<Vec<HierRing>>,
    dev_group: Vec<usize>,
    dev_ftd: Vec<usize>,
    dev_tile: Vec<usize>,
    dev_ring_pos: Vec<usize>,
}

/// Resolves the tile shape of a plan: explicit (checked) or chosen.
fn resolve_tile(
    explicit: Option<(usize, usize)>,
    area: usize,
    area_param: &'static str,
    region: &'static str,
    region_rows: usize,
    region_cols: usize,
    spec: &WaferSpec,
) -> Result<(usize, usize)> {
    match explicit {
        Some((a, b)) => {
            nonzero("tile", a)?;
            nonzero("tile", b)?;
            if a.checked_mul(b) != Some(area) {
                return Err(MoeError::TileArea {
                    param: "tile",
                    rows: a,
                    cols: b,
                    area: a.saturating_mul(b),
                    expected: area,
                });
            }
            if region_rows % a != 0 || region_cols % b != 0 {
                return Err(MoeError::TileDoesNotDivide {
                    param: "tile",
                    rows: a,
                    cols: b,
                    region,
                    region_rows,
                    region_cols,
                });
            }
            Ok((a, b))
        }
        None => choose_tile(area, region_rows, region_cols, spec.rows, spec.cols).ok_or(
            MoeError::NoTileShape {
                param: area_param,
                area,
                region,
                region_rows,
                region_cols,
            },
        ),
    }
}

impl Layout {
    /// Builds a layout; see [`ParallelPlan::layout`].
    pub fn new(spec: &WaferSpec, plan: &ParallelPlan, experts: usize) -> Result<Layout> {
        spec.validate()?;
        nonzero("tp", plan.tp)?;
        nonzero("dp", plan.dp)?;
        nonzero("experts", experts)?;
        let n = spec.num_devices();
        if plan.tp.checked_mul(plan.dp) != Some(n) {
            return Err(MoeError::DeviceCountMismatch {
                tp: plan.tp,
                dp: plan.dp,
                product: plan.tp.saturating_mul(plan.dp),
                devices: n,
            });
        }
        if experts % n != 0 {
            return Err(MoeError::ExpertsNotDivisible {
                experts,
                devices: n,
            });
        }
        let (rows, cols) = (spec.mesh_rows(), spec.mesh_cols());
        let mut layout = Layout {
            spec: spec.clone(),
            tp: plan.tp,
            dp: plan.dp,
            experts,
            shadow_slots: plan.shadow_slots_per_device,
            kind: plan.mapping.kind(),
            ring_policy: plan.mapping.ring(),
            grid: TileGrid {
                tile_rows: 1,
                tile_cols: 1,
                grid_rows: rows,
                grid_cols: cols,
                kind: TileKind::Ftd,
            },
            tp_groups: Vec::new(),
            ftds: Vec::new(),
            ring_dirs: Vec::new(),
            hier: None,
            dev_group: vec![0; n],
            dev_ftd: vec![0; n],
            dev_tile: vec![0; n],
            dev_ring_pos: vec![0; n],
        };
        let tile = plan.mapping.tile();
        match plan.mapping.kind() {
            MappingKind::Block => {
                let (tr, tc) = resolve_tile(tile, plan.tp, "tp", "mesh", rows, cols, spec)?;
                layout.build_block(tr, tc);
            }
            MappingKind::Er => {
                let (a, b) = resolve_tile(tile, plan.dp, "dp", "mesh", rows, cols, spec)?;
                layout.build_er(a, b);
            }
            MappingKind::Her => {
                let (a, b) =
                    resolve_tile(tile, plan.dp, "dp", "wafer", spec.rows, spec.cols, spec)?;
                layout.build_her(a, b);
            }
        }
        layout.finish();
        Ok(layout)
    }

    fn dev(&self, row: usize, col: usize) -> DeviceId {
        col + self.spec.mesh_cols() * row
    }

    fn build_block(&mut self, tr: usize, tc: usize) {
        let (rows, cols) = (self.spec.mesh_rows(), self.spec.mesh_cols());
        self.grid = TileGrid {
            tile_rows: tr,
            tile_cols: tc,
            grid_rows: rows / tr,
            grid_cols: cols / tc,
            kind: TileKind::TpGroup,
        };
        let order = ring_order(tr, tc);
        let ntiles = self.grid.num_tiles();
        self.ftds = vec![Vec::with_capacity(ntiles); tr * tc];
        for g in 0..ntiles {
            let (i, j) = (g / self.grid.grid_cols, g % self.grid.grid_cols);
            let ring: Vec<DeviceId> = order
                .iter()
                .map(|&(p, q)| self.dev(i * tr + p, j * tc + q))
                .collect();
            for (pos, &(p, q)) in order.iter().enumerate() {
                let d = ring[pos];
                self.dev_ring_pos[d] = pos;
                self.dev_ftd[d] = p * tc + q;
            }
            for p in 0..tr {
                for q in 0..tc {
                    let d = self.dev(i * tr + p, j * tc + q);
                    self.ftds[p * tc + q].push(d);
                }
            }
            self.ring_dirs.push(self.direction_for((i + j) % 2 == 0));
            self.tp_groups.push(ring);
        }
    }

    fn er_grid(&mut self, a: usize, b: usize) {
        let (rows, cols) = (self.spec.mesh_rows(), self.spec.mesh_cols());
        self.grid = TileGrid {
            tile_rows: a,
            tile_cols: b,
            grid_rows: rows / a,
            grid_cols: cols / b,
            kind: TileKind::Ftd,
        };
        self.ftds = (0..self.grid.num_tiles())
            .map(|f| {
                let (i, j) = (f / self.grid.grid_cols, f % self.grid.grid_cols);
                (0..a * b)
                    .map(|g| self.dev(i * a + g / b, j * b + g % b))
                    .collect()
            })
            .collect();
        for (f, members) in self.ftds.iter().enumerate() {
            for &d in members {
                self.dev_ftd[d] = f;
            }
        }
        self.ring_dirs = (0..a * b)
            .map(|g| self.direction_for((g / b + g % b) % 2 == 0))
            .collect();
    }

    fn build_er(&mut self, a: usize, b: usize) {
        self.er_grid(a, b);
        let order = ring_order(self.grid.grid_rows, self.grid.grid_cols);
        for g in 0..a * b {
            let (p, q) = (g / b, g % b);
            let ring: Vec<DeviceId> = order
                .iter()
                .map(|&(i, j)| self.dev(i * a + p, j * b + q))
                .collect();
            for (pos, &d) in ring.iter().enumerate() {
                self.dev_ring_pos[d] = pos;
            }
            self.tp_groups.push(ring);
        }
    }

    fn build_her(&mut self, a: usize, b: usize) {
        self.er_grid(a, b);
        let (gr_w, gc_w) = (self.spec.rows / a, self.spec.cols / b);
        let order = ring_order(gr_w, gc_w);
        let mut hier = Vec::with_capacity(a * b);
        for g in 0..a * b {
            let (p, q) = (g / b, g % b);
            let mut wafer_rings = Vec::with_capacity(self.spec.num_wafers());
            for wy in 0..self.spec.wafers_y {
                for wx in 0..self.spec.wafers_x {
                    let ring: Vec<DeviceId> = order
                        .iter()
                        .map(|&(i, j)| self.dev((wy * gr_w + i) * a + p, (wx * gc_w + j) * b + q))
                        .collect();
                    wafer_rings.push(ring);
                }
            }
            let exchange_groups = (0..order.len())
                .map(|pos| wafer_rings.iter().map(|r| r[pos]).collect())
                .collect();
            let flat: Vec<DeviceId> = wafer_rings.iter().flatten().copied().collect();
            for (pos, &d) in flat.iter().enumerate() {
                self.dev_ring_pos[d] = pos;
            }
            self.tp_groups.push(flat);
            hier.push(HierRing {
                wafer_rings,
                exchange_groups,
            });
        }
        self.hier = Some(hier);
    }

    fn direction_for(&self, even: bool) -> RingDirection {
        match self.ring_policy {
            RingPolicy::Same => RingDirection::Forward,
            RingPolicy::Alternate if even => RingDirection::Forward,
            RingPolicy::Alternate => RingDirection::Backward,
            RingPolicy::Bidirectional => RingDirection::Both,
        }
    }

    fn finish(&mut self) {
        for (g, ring) in self.tp_groups.iter().enumerate() {
            for &d in ring {
                self.dev_group[d] = g;
            }
        }
        let grid = self.grid;
        let cols = self.spec.mesh_cols();
        for (d, t) in self.dev_tile.iter_mut().enumerate() {
            *t = grid.tile_index(Coord {
                x: d % cols,
                y: d / cols,
            });
        }
    }

    /// The wafer specification the layout was built on.
    pub fn spec(&self) -> &WaferSpec {
        &self.spec
    }

    /// Devices in the mesh (N = tp x dp).
    pub fn num_devices(&self) -> usize {
        self.dev_group.len()
    }

    /// Rows of the full device mesh.
    pub fn mesh_rows(&self) -> usize {
        self.spec.mesh_rows()
    }

    /// Columns of the full device mesh.
    pub fn mesh_cols(&self) -> usize {
        self.spec.mesh_cols()
    }

    /// Tensor-parallel degree (members per TP group; number of FTDs).
    pub fn tp(&self) -> usize {
        self.tp
    }

    /// Data-parallel degree (number of TP/DP groups; devices per FTD).
    pub fn dp(&self) -> usize {
        self.dp
    }

    /// Routed experts the layout was built for.
    pub fn experts(&self) -> usize {
        self.experts
    }

    /// Home experts per device (E / N).
    pub fn experts_per_device(&self) -> usize {
        self.experts / self.num_devices()
    }

    /// Shadow slots per device.
    pub fn shadow_slots_per_device(&self) -> usize {
        self.shadow_slots
    }

    /// The mapping's kind.
    pub fn mapping_kind(&self) -> MappingKind {
        self.kind
    }

    /// The ring direction policy.
    pub fn ring_policy(&self) -> RingPolicy {
        self.ring_policy
    }

    /// The plan's tile grid: FTD tiles under ER/HER, TP tiles under block.
    pub fn tile_grid(&self) -> &TileGrid {
        &self.grid
    }

    /// TP groups (index = TP/DP group id), each in ring order (forward). Under
    /// HER the flat order is the wafer sub-rings concatenated in wafer order;
    /// use [`Layout::hier_ring`] for the hierarchical all-reduce.
    pub fn tp_groups(&self) -> &[Vec<DeviceId>] {
        &self.tp_groups
    }

    /// FTDs (index = FTD id); `ftds()[f][g]` is the member of TP group `g` in
    /// FTD `f`.
    pub fn ftds(&self) -> &[Vec<DeviceId>] {
        &self.ftds
    }

    /// The member of TP group `group` inside FTD `ftd`.
    pub fn member(&self, group: usize, ftd: usize) -> Option<DeviceId> {
        self.ftds.get(ftd)?.get(group).copied()
    }

    /// FTD of a device.
    pub fn ftd_of(&self, device: DeviceId) -> Option<usize> {
        self.dev_ftd.get(device).copied()
    }

    /// TP (= DP) group of a device.
    pub fn tp_group_of(&self, device: DeviceId) -> Option<usize> {
        self.dev_group.get(device).copied()
    }

    /// Position of a device in its TP group's ring order.
    pub fn ring_position(&self, device: DeviceId) -> Option<usize> {
        self.dev_ring_pos.get(device).copied()
    }

    /// Index of the device's tile in [`Layout::tile_grid`] (FTD tile under
    /// ER/HER, equal to [`Layout::ftd_of`]; TP tile under block, equal to
    /// [`Layout::tp_group_of`]).
    pub fn tile_of(&self, device: DeviceId) -> Option<usize> {
        self.dev_tile.get(device).copied()
    }

    /// Ring direction of every TP group.
    pub fn ring_directions(&self) -> &[RingDirection] {
        &self.ring_dirs
    }

    /// Ring direction of one TP group.
    pub fn ring_direction(&self, group: usize) -> Option<RingDirection> {
        self.ring_dirs.get(group).copied()
    }

    /// The sends of one step of TP group `group`'s flat ring, in its direction
    /// (see [`ring_sends`]). Under HER use [`Layout::hier_ring`] instead.
    pub fn ring_step_sends(&self, group: usize) -> Option<Vec<RingSend>> {
        Some(ring_sends(
            self.tp_groups.get(group)?,
            self.ring_direction(group)?,
        ))
    }

    /// The hierarchical all-reduce structure of a TP group (HER only).
    pub fn hier_ring(&self, group: usize) -> Option<&HierRing> {
        self.hier.as_ref()?.get(group)
    }

    /// The sender used by [`AllToAllMode::Global`](crate::AllToAllMode): the
    /// member at ring position 0 of the group.
    pub fn global_sender(&self, group: usize) -> Option<DeviceId> {
        self.tp_groups.get(group)?.first().copied()
    }

    /// Coordinate of a device.
    pub fn coord(&self, device: DeviceId) -> Option<Coord> {
        self.spec.coord(device)
    }

    /// Device at a coordinate.
    pub fn device_at(&self, at: Coord) -> Option<DeviceId> {
        self.spec.device_at(at)
    }

    /// Minimal hop count between two devices.
    pub fn hops(&self, a: DeviceId, b: DeviceId) -> Option<usize> {
        Some(self.coord(a)?.manhattan(self.coord(b)?))
    }

    /// Wafer of a device.
    pub fn wafer_of(&self, device: DeviceId) -> Option<usize> {
        self.spec.wafer_of(device)
    }

    fn check_link(&self, a: DeviceId, b: DeviceId) -> Result<()> {
        let n = self.num_devices();
        let ca = self.coord(a).ok_or(MoeError::DeviceOutOfRange {
            param: "a",
            device: a,
            devices: n,
        })?;
        let cb = self.coord(b).ok_or(MoeError::DeviceOutOfRange {
            param: "b",
            device: b,
            devices: n,
        })?;
        if !ca.is_neighbour(cb) {
            return Err(MoeError::NotNeighbours { a, b });
        }
        Ok(())
    }

    /// Whether the link between neighbours `a` and `b` is a boundary link: its
    /// ends lie in different tiles of [`Layout::tile_grid`]. Under ER/HER these
    /// are the links that the confined all-to-all never uses.
    pub fn is_boundary_link(&self, a: DeviceId, b: DeviceId) -> Result<bool> {
        self.check_link(a, b)?;
        Ok(self.dev_tile[a] != self.dev_tile[b])
    }

    /// Whether the link between neighbours `a` and `b` crosses a wafer edge.
    pub fn is_cross_wafer_link(&self, a: DeviceId, b: DeviceId) -> Result<bool> {
        self.check_link(a, b)?;
        Ok(self.wafer_of(a) != self.wafer_of(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Device at `(row, col)` of a 4-column mesh.
    fn rc(row: usize, col: usize) -> DeviceId {
        col + 4 * row
    }

    fn bbox(l: &Layout, set: &[DeviceId]) -> (usize, usize) {
        let cs: Vec<Coord> = set.iter().map(|&d| l.coord(d).unwrap()).collect();
        let (x0, x1) = (
            cs.iter().map(|c| c.x).min().unwrap(),
            cs.iter().map(|c| c.x).max().unwrap(),
        );
        let (y0, y1) = (
            cs.iter().map(|c| c.y).min().unwrap(),
            cs.iter().map(|c| c.y).max().unwrap(),
        );
        (y1 - y0 + 1, x1 - x0 + 1)
    }

    /// The MoEntwine worked example: 4x4 mesh, TP = 4, DP = 4.
    #[test]
    fn worked_example_4x4() {
        let spec = WaferSpec::single(4, 4);
        // Block: TP groups on the quadrants, FTD 0 strided over 3x3.
        let b = ParallelPlan::new(4, 4, Mapping::block())
            .layout(&spec, 16)
            .unwrap();
        let quadrants = [
            vec![rc(0, 0), rc(0, 1), rc(1, 1), rc(1, 0)],
            vec![rc(0, 2), rc(0, 3), rc(1, 3), rc(1, 2)],
            vec![rc(2, 0), rc(2, 1), rc(3, 1), rc(3, 0)],
            vec![rc(2, 2), rc(2, 3), rc(3, 3), rc(3, 2)],
        ];
        assert_eq!(b.tp_groups(), &quadrants[..]);
        assert_eq!(b.ftds()[0], vec![rc(0, 0), rc(0, 2), rc(2, 0), rc(2, 2)]);
        assert_eq!(bbox(&b, &b.ftds()[0]), (3, 3));
        // The block rings are 4-cycles of neighbour links.
        for ring in b.tp_groups() {
            for i in 0..4 {
                assert_eq!(b.hops(ring[i], ring[(i + 1) % 4]), Some(1));
            }
        }
        assert_eq!(b.tile_grid().kind, TileKind::TpGroup);

        // ER: FTDs on the quadrants, TP group (0,0) entwined with 2-hop links.
        let e = ParallelPlan::new(4, 4, Mapping::er())
            .layout(&spec, 16)
            .unwrap();
        assert_eq!(
            e.ftds(),
            &[
                vec![rc(0, 0), rc(0, 1), rc(1, 0), rc(1, 1)],
                vec![rc(0, 2), rc(0, 3), rc(1, 2), rc(1, 3)],
                vec![rc(2, 0), rc(2, 1), rc(3, 0), rc(3, 1)],
                vec![rc(2, 2), rc(2, 3), rc(3, 2), rc(3, 3)],
            ][..]
        );
        assert_eq!(
            e.tp_groups()[0],
            vec![rc(0, 0), rc(0, 2), rc(2, 2), rc(2, 0)]
        );
        for ring in e.tp_groups() {
            for i in 0..4 {
                assert_eq!(e.hops(ring[i], ring[(i + 1) % 4]), Some(2));
            }
        }
        assert_eq!(e.tile_grid().kind, TileKind::Ftd);
        assert_eq!(e.ftd_of(rc(3, 3)), Some(3));
        assert_eq!(e.tp_group_of(rc(3, 3)), Some(3));
        assert_eq!(e.tile_of(rc(3, 3)), Some(3));
        assert_eq!(e.ring_position(rc(2, 0)), Some(3));
        assert_eq!(e.member(0, 3), Some(rc(2, 2)));
        assert_eq!(e.global_sender(2), Some(rc(1, 0)));
        assert_eq!(e.is_boundary_link(rc(0, 1), rc(0, 2)), Ok(true));
        assert_eq!(e.is_boundary_link(rc(0, 0), rc(0, 1)), Ok(false));
        assert_eq!(b.is_boundary_link(rc(1, 1), rc(2, 1)), Ok(true));
        assert_eq!(b.is_boundary_link(rc(1, 1), rc(1, 0)), Ok(false));
        assert_eq!(e.is_cross_wafer_link(rc(1, 1), rc(2, 1)), Ok(false));
    }

    #[test]
    fn ring_policies() {
        let spec = WaferSpec::single(4, 4);
        let alt = ParallelPlan::new(
            4,
            4,
            Mapping::Er {
                tile: None,
                ring: RingPolicy::Alternate,
            },
        )
        .layout(&spec, 16)
        .unwrap();
        use RingDirection::*;
        assert_eq!(
            alt.ring_directions(),
            &[Forward, Backward, Backward, Forward]
        );
        let s = alt.ring_step_sends(1).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!((s[0].src, s[0].dst, s[0].share), (rc(0, 1), rc(2, 1), 1.0));
        let bi = ParallelPlan::new(
            4,
            4,
            Mapping::Block {
                tile: None,
                ring: RingPolicy::Bidirectional,
            },
        )
        .layout(&spec, 16)
        .unwrap();
        assert!(bi.ring_directions().iter().all(|&d| d == Both));
        let s = bi.ring_step_sends(0).unwrap();
        assert_eq!(s.len(), 8);
        assert!(s.iter().all(|x| x.share == 0.5));
        let same = ParallelPlan::new(16, 1, Mapping::er())
            .layout(&spec, 16)
            .unwrap();
        assert!(same.ring_directions().iter().all(|&d| d == Forward));
        assert!(ring_sends(&[3], Forward).is_empty());
    }

    #[test]
    fn hierarchical_er_two_wafers() {
        // Two 4x4 wafers side by side: 4x8 mesh, DP = 4 (2x2 FTD tiles), TP = 8.
        let spec = WaferSpec::multi(4, 4, 2, 1);
        let l = ParallelPlan::new(8, 4, Mapping::her())
            .layout(&spec, 32)
            .unwrap();
        let h = l.hier_ring(0).unwrap();
        let d = |row: usize, col: usize| col + 8 * row;
        assert_eq!(
            h.wafer_rings,
            vec![
                vec![d(0, 0), d(0, 2), d(2, 2), d(2, 0)],
                vec![d(0, 4), d(0, 6), d(2, 6), d(2, 4)],
            ]
        );
        assert_eq!(h.exchange_groups.len(), 4);
        assert_eq!(h.exchange_groups[1], vec![d(0, 2), d(0, 6)]);
        assert_eq!(l.tp_groups()[0].len(), 8);
        assert_eq!(l.is_cross_wafer_link(d(0, 3), d(0, 4)), Ok(true));
        assert_eq!(l.is_boundary_link(d(0, 3), d(0, 4)), Ok(true));
        // Flat ER on the same machine is one ring over the 2x4 tile grid.
        let f = ParallelPlan::new(8, 4, Mapping::er())
            .layout(&spec, 32)
            .unwrap();
        assert!(f.hier_ring(0).is_none());
        assert_eq!(f.tp_groups()[0].len(), 8);
    }

    #[test]
    fn her_tile_must_fit_in_a_wafer() {
        // Two 2x2 wafers side by side (2x4 mesh), dp = 4 with a 1x4 tile: it
        // tiles the mesh but straddles the wafer edge.
        let spec = WaferSpec::multi(2, 2, 2, 1);
        let e = ParallelPlan::new(
            2,
            4,
            Mapping::Her {
                tile: Some((1, 4)),
                ring: RingPolicy::Same,
            },
        )
        .layout(&spec, 8)
        .unwrap_err();
        assert_eq!(e.parameter(), "tile");
        assert!(matches!(
            e,
            MoeError::TileDoesNotDivide {
                region: "wafer",
                ..
            }
        ));
        // Flat ER accepts it.
        ParallelPlan::new(
            2,
            4,
            Mapping::Er {
                tile: Some((1, 4)),
                ring: RingPolicy::Same,
            },
        )
        .layout(&spec, 8)
        .unwrap();
        // dp = 8 cannot be a tile of one 2x2 wafer.
        let e = ParallelPlan::new(1, 8, Mapping::her())
            .layout(&spec, 8)
            .unwrap_err();
        assert_eq!(e.parameter(), "dp");
    }

    #[test]
    fn error_paths() {
        let spec = WaferSpec::single(4, 4);
        let p = |tp, dp, m| ParallelPlan::new(tp, dp, m);
        let param = |r: Result<Layout>| r.unwrap_err().parameter();
        assert_eq!(param(p(0, 16, Mapping::er()).layout(&spec, 16)), "tp");
        assert_eq!(param(p(16, 0, Mapping::er()).layout(&spec, 16)), "dp");
        assert_eq!(param(p(4, 4, Mapping::er()).layout(&spec, 0)), "experts");
        assert_eq!(param(p(4, 2, Mapping::er()).layout(&spec, 16)), "tp");
        assert!(matches!(
            p(4, 2, Mapping::er()).layout(&spec, 16),
            Err(MoeError::DeviceCountMismatch { .. })
        ));
        assert_eq!(param(p(4, 4, Mapping::er()).layout(&spec, 24)), "experts");
        let tile = |t| Mapping::Er {
            tile: Some(t),
            ring: RingPolicy::Same,
        };
        assert!(matches!(
            p(4, 4, tile((2, 3))).layout(&spec, 16),
            Err(MoeError::TileArea { param: "tile", .. })
        ));
        assert!(matches!(
            p(4, 4, tile((0, 4))).layout(&spec, 16),
            Err(MoeError::Zero { param: "tile" })
        ));
        let spec6 = WaferSpec::single(2, 6);
        assert!(matches!(
            p(3, 4, tile((1, 4))).layout(&spec6, 12),
            Err(MoeError::TileDoesNotDivide { param: "tile", .. })
        ));
        // Explicit tiles also work for block mapping.
        let one = p(
            16,
            1,
            Mapping::Block {
                tile: Some((4, 4)),
                ring: RingPolicy::Same,
            },
        )
        .layout(&spec, 16)
        .unwrap();
        assert_eq!(one.tp_groups().len(), 1);
        assert!(matches!(
            p(
                4,
                4,
                Mapping::Block {
                    tile: Some((1, 3)),
                    ring: RingPolicy::Same
                }
            )
            .layout(&spec, 16),
            Err(MoeError::TileArea { .. })
        ));
        // On one wafer a default tile always exists (a = gcd(area, rows));
        // odd shapes still work.
        let spec35 = WaferSpec::single(3, 5);
        let l = p(3, 5, Mapping::block()).layout(&spec35, 15).unwrap();
        assert_eq!(l.tile_grid().tile_rows * l.tile_grid().tile_cols, 3);
        assert_eq!(
            param(p(4, 4, Mapping::er()).layout(
                &WaferSpec {
                    flit_bytes: 0,
                    ..spec.clone()
                },
                16
            )),
            "flit_bytes"
        );
        let l = p(4, 4, Mapping::er()).layout(&spec, 16).unwrap();
        assert_eq!(l.is_boundary_link(0, 2).unwrap_err().parameter(), "b");
        assert_eq!(l.is_boundary_link(16, 2).unwrap_err().parameter(), "a");
        assert_eq!(l.is_boundary_link(0, 99).unwrap_err().parameter(), "b");
        assert_eq!(l.is_cross_wafer_link(0, 5).unwrap_err().parameter(), "b");
        assert_eq!(l.ftd_of(16), None);
        assert_eq!(l.member(4, 0), None);
        assert_eq!(l.ring_step_sends(4), None);
    }
}
