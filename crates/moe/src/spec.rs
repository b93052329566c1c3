//! Hardware specifications: the wafer mesh ([`WaferSpec`]) and one die
//! ([`DieSpec`]), with the conversion from physical units to network cycles.
//!
//! Units: bandwidths are in GB/s (10^9 bytes per second, per direction);
//! 1 GB/s is exactly 1 byte per nanosecond, so `bytes / gbps` is nanoseconds.
//! Latencies are in nanoseconds. Compute is in TFLOP/s (10^12 FLOP/s).
//!
//! **The time model.** One network cycle moves at most one flit over a
//! full-speed (on-wafer) link, so one cycle lasts `flit_bytes /
//! link_gbps_per_dir` nanoseconds ([`WaferSpec::cycle_ns`]). Slower cross-wafer
//! links take [`WaferSpec::cross_wafer_cycles_per_flit`] cycles per flit.

use serde::{Deserialize, Serialize};

use crate::error::{nonzero, positive, MoeError, Result};
use crate::grid::Coord;
use crate::DeviceId;

/// Default on-wafer D2D link bandwidth, GB/s per direction.
///
/// Reason: the NVLink-5 bandwidth of one B200-class GPU (1.8 TB/s
/// bidirectional = 900 GB/s each way), the die modelled by [`DieSpec`]; the
/// MoEntwine domain note fixes this default.
pub const DEFAULT_LINK_GBPS: f64 = 900.0;

/// Default on-wafer per-hop link latency, ns.
///
/// Reason (the paper's value is unknown): a UCIe-class die-to-die PHY plus
/// adapter targets about 2 ns per crossing on an advanced package; we double it
/// for die-edge wiring, clock-domain-crossing FIFOs and retiming between the
/// router and the PHY. The router pipeline itself is *not* included: the router
/// crate counts its stages in cycles.
pub const DEFAULT_HOP_LATENCY_NS: f64 = 4.0;

/// Default cross-wafer link bandwidth, GB/s per direction.
///
/// Reason (assumption): a link that leaves the wafer goes through an edge
/// connector or cable with fewer lanes per die edge than an interposer D2D
/// interface. Tesla's Dojo, the public example of tiles joined edge to edge,
/// has roughly half the per-die-edge bandwidth between tiles (about 9 TB/s per
/// 5-die tile edge) as between dies inside a tile (about 4 TB/s per die edge).
/// We take half of [`DEFAULT_LINK_GBPS`].
pub const DEFAULT_CROSS_WAFER_GBPS: f64 = 450.0;

/// Default cross-wafer link latency, ns.
///
/// Reason (assumption): long-reach SerDes with forward error correction adds
/// tens of nanoseconds per crossing, plus a few centimetres of connector and
/// cable; 50 ns is an order of magnitude above an on-wafer hop.
pub const DEFAULT_CROSS_WAFER_LATENCY_NS: f64 = 50.0;

/// Default flit size, bytes.
///
/// Reason: 256 B is the flit of PCIe 6 / CXL 3 and of UCIe's 256 B flit mode;
/// a DeepSeek-V3 token (7168 B in FP8) is then 28 flits, fine enough for
/// contention and coarse enough to simulate a wafer quickly.
pub const DEFAULT_FLIT_BYTES: u32 = 256;

/// The wafer-scale machine: a mesh of dies, possibly several wafers joined edge
/// to edge.
///
/// Each wafer is `rows x cols` dies; `wafers_x` wafers side by side and
/// `wafers_y` wafers stacked, so the full device mesh is
/// `(rows * wafers_y) x (cols * wafers_x)` ([`WaferSpec::mesh_rows`],
/// [`WaferSpec::mesh_cols`]). Device ids run row-major over the full mesh:
/// `id = x + mesh_cols * y` with `x` the column and `y` the row.
///
/// Fields are public for configuration; call [`WaferSpec::validate`] before
/// use (the conversion methods do not panic on bad values but return
/// meaningless numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WaferSpec {
    /// Die rows per wafer. Default 8 (an 8x8 wafer of 64 dies).
    pub rows: usize,
    /// Die columns per wafer. Default 8.
    pub cols: usize,
    /// Wafers side by side along x (columns). Default 1.
    pub wafers_x: usize,
    /// Wafers stacked along y (rows). Default 1.
    pub wafers_y: usize,
    /// On-wafer D2D link bandwidth per direction, GB/s. Default
    /// [`DEFAULT_LINK_GBPS`].
    pub link_gbps_per_dir: f64,
    /// On-wafer per-hop link latency, ns. Default [`DEFAULT_HOP_LATENCY_NS`].
    pub hop_latency_ns: f64,
    /// Cross-wafer link bandwidth per direction, GB/s. Default
    /// [`DEFAULT_CROSS_WAFER_GBPS`].
    pub cross_wafer_gbps: f64,
    /// Cross-wafer link latency, ns. Default [`DEFAULT_CROSS_WAFER_LATENCY_NS`].
    pub cross_wafer_latency_ns: f64,
    /// Flit size, bytes. Default [`DEFAULT_FLIT_BYTES`].
    pub flit_bytes: u32,
}

impl Default for WaferSpec {
    fn default() -> Self {
        WaferSpec {
            rows: 8,
            cols: 8,
            wafers_x: 1,
            wafers_y: 1,
            link_gbps_per_dir: DEFAULT_LINK_GBPS,
            hop_latency_ns: DEFAULT_HOP_LATENCY_NS,
            cross_wafer_gbps: DEFAULT_CROSS_WAFER_GBPS,
            cross_wafer_latency_ns: DEFAULT_CROSS_WAFER_LATENCY_NS,
            flit_bytes: DEFAULT_FLIT_BYTES,
        }
    }
}

/// Ceiling of a positive ratio, tolerant of floating-point noise (a ratio of
/// 3.0000000000000004 is 3), at least 1, saturating.
fn ceil_at_least_one(x: f64) -> u64 {
    if !x.is_finite() {
        return if x > 0.0 { u64::MAX } else { 1 };
    }
    let c = (x - 1e-9).ceil();
    if c < 1.0 {
        1
    } else {
        // `as` saturates for values above u64::MAX.
        c as u64
    }
}

impl WaferSpec {
    /// A single wafer of `rows x cols` dies with default link parameters.
    pub fn single(rows: usize, cols: usize) -> Self {
        WaferSpec {
            rows,
            cols,
            ..WaferSpec::default()
        }
    }

    /// `wafers_x x wafers_y` wafers of `rows x cols` dies each, default links.
    pub fn multi(rows: usize, cols: usize, wafers_x: usize, wafers_y: usize) -> Self {
        WaferSpec {
            rows,
            cols,
            wafers_x,
            wafers_y,
            ..WaferSpec::default()
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        nonzero("rows", self.rows)?;
        nonzero("cols", self.cols)?;
        nonzero("wafers_x", self.wafers_x)?;
        nonzero("wafers_y", self.wafers_y)?;
        positive("link_gbps_per_dir", self.link_gbps_per_dir)?;
        positive("hop_latency_ns", self.hop_latency_ns)?;
        positive("cross_wafer_gbps", self.cross_wafer_gbps)?;
        positive("cross_wafer_latency_ns", self.cross_wafer_latency_ns)?;
        nonzero("flit_bytes", self.flit_bytes as usize)?;
        if self
            .rows
            .checked_mul(self.wafers_y)
            .and_then(|r| self.cols.checked_mul(self.wafers_x).map(|c| (r, c)))
            .and_then(|(r, c)| r.checked_mul(c))
            .is_none()
        {
            return Err(MoeError::BadReal {
                param: "rows",
                value: self.rows as f64,
                expected: "small enough that the device count fits in usize",
            });
        }
        Ok(())
    }

    /// Rows of the full device mesh: `rows * wafers_y`.
    pub fn mesh_rows(&self) -> usize {
        self.rows.saturating_mul(self.wafers_y)
    }

    /// Columns of the full device mesh: `cols * wafers_x`.
    pub fn mesh_cols(&self) -> usize {
        self.cols.saturating_mul(self.wafers_x)
    }

    /// Devices in the full mesh.
    pub fn num_devices(&self) -> usize {
        self.mesh_rows().saturating_mul(self.mesh_cols())
    }

    /// Number of wafers.
    pub fn num_wafers(&self) -> usize {
        self.wafers_x.saturating_mul(self.wafers_y)
    }

    /// Coordinate of a device (`x` = column, `y` = row), or `None` if out of
    /// range.
    pub fn coord(&self, device: DeviceId) -> Option<Coord> {
        if device >= self.num_devices() {
            return None;
        }
        let c = self.mesh_cols();
        Some(Coord {
            x: device % c,
            y: device / c,
        })
    }

    /// Device at a coordinate, or `None` if outside the mesh.
    pub fn device_at(&self, at: Coord) -> Option<DeviceId> {
        (at.x < self.mesh_cols() && at.y < self.mesh_rows()).then(|| at.x + self.mesh_cols() * at.y)
    }

    /// Wafer id of a device (wafers numbered `wx + wafers_x * wy`), or `None`.
    pub fn wafer_of(&self, device: DeviceId) -> Option<usize> {
        let c = self.coord(device)?;
        Some(c.x / self.cols + self.wafers_x * (c.y / self.rows))
    }

    /// Length of one network cycle in ns: `flit_bytes / link_gbps_per_dir`.
    pub fn cycle_ns(&self) -> f64 {
        f64::from(self.flit_bytes) / self.link_gbps_per_dir
    }

    /// On-wafer link latency in cycles: `ceil(hop_latency_ns / cycle_ns)`, at
    /// least 1.
    pub fn link_latency_cycles(&self) -> u64 {
        ceil_at_least_one(self.hop_latency_ns / self.cycle_ns())
    }

    /// Cycles to move one flit over a cross-wafer link:
    /// `ceil(link_gbps_per_dir / cross_wafer_gbps)`, at least 1.
    pub fn cross_wafer_cycles_per_flit(&self) -> u64 {
        ceil_at_least_one(self.link_gbps_per_dir / self.cross_wafer_gbps)
    }

    /// Cross-wafer link latency in cycles: `ceil(cross_wafer_latency_ns /
    /// cycle_ns)`, at least 1.
    pub fn cross_wafer_latency_cycles(&self) -> u64 {
        ceil_at_least_one(self.cross_wafer_latency_ns / self.cycle_ns())
    }

    /// Converts a duration in ns to whole cycles (ceiling; 0 ns is 0 cycles).
    pub fn ns_to_cycles(&self, ns: f64) -> u64 {
        if ns <= 0.0 || ns.is_nan() {
            0
        } else {
            ceil_at_least_one(ns / self.cycle_ns())
        }
    }

    /// Converts cycles to ns.
    pub fn cycles_to_ns(&self, cycles: u64) -> f64 {
        cycles as f64 * self.cycle_ns()
    }
}

/// One die (device): compute, HBM bandwidth and capacity.
///
/// Defaults model an NVIDIA B200-class die, as the MoEntwine domain note
/// fixes: 2250 TFLOP/s dense BF16, 8 TB/s HBM3e, 180 GB HBM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DieSpec {
    /// Peak dense throughput, TFLOP/s. Default 2250 (B200 dense BF16).
    pub peak_tflops: f64,
    /// HBM bandwidth, GB/s. Default 8000 (B200).
    pub hbm_gbps: f64,
    /// HBM capacity, GB (10^9 bytes). Default 180 (B200).
    pub hbm_capacity_gb: f64,
}

impl Default for DieSpec {
    fn default() -> Self {
        DieSpec {
            peak_tflops: 2250.0,
            hbm_gbps: 8000.0,
            hbm_capacity_gb: 180.0,
        }
    }
}

impl DieSpec {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        positive("peak_tflops", self.peak_tflops)?;
        positive("hbm_gbps", self.hbm_gbps)?;
        positive("hbm_capacity_gb", self.hbm_capacity_gb)?;
        Ok(())
    }

    /// Peak FLOP per ns (`peak_tflops * 1000`).
    pub fn flop_per_ns(&self) -> f64 {
        self.peak_tflops * 1e3
    }

    /// HBM capacity in bytes (rounded down).
    pub fn hbm_capacity_bytes(&self) -> u128 {
        (self.hbm_capacity_gb * 1e9) as u128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_cycles() {
        let s = WaferSpec::default();
        s.validate().unwrap();
        assert!((s.cycle_ns() - 256.0 / 900.0).abs() < 1e-12);
        // 4 ns / 0.2844 ns = 14.06 -> 15 cycles.
        assert_eq!(s.link_latency_cycles(), 15);
        assert_eq!(s.cross_wafer_cycles_per_flit(), 2);
        // 50 / 0.2844 = 175.8 -> 176.
        assert_eq!(s.cross_wafer_latency_cycles(), 176);
        assert_eq!(s.ns_to_cycles(0.0), 0);
        assert_eq!(s.ns_to_cycles(s.cycle_ns()), 1);
        DieSpec::default().validate().unwrap();
    }

    #[test]
    fn exact_ratios_do_not_round_up() {
        let s = WaferSpec {
            cross_wafer_gbps: 300.0,
            ..WaferSpec::default()
        };
        assert_eq!(s.cross_wafer_cycles_per_flit(), 3);
        let s = WaferSpec {
            cross_wafer_gbps: 1800.0,
            ..WaferSpec::default()
        };
        assert_eq!(s.cross_wafer_cycles_per_flit(), 1);
        let s = WaferSpec {
            hop_latency_ns: 0.01,
            ..WaferSpec::default()
        };
        assert_eq!(s.link_latency_cycles(), 1);
    }

    #[test]
    fn geometry() {
        let s = WaferSpec::multi(4, 4, 2, 1);
        assert_eq!((s.mesh_rows(), s.mesh_cols(), s.num_devices()), (4, 8, 32));
        assert_eq!(s.coord(9), Some(Coord { x: 1, y: 1 }));
        assert_eq!(s.device_at(Coord { x: 5, y: 1 }), Some(13));
        assert_eq!(s.wafer_of(13), Some(1));
        assert_eq!(s.wafer_of(3), Some(0));
        assert_eq!(s.coord(32), None);
        assert_eq!(s.device_at(Coord { x: 8, y: 0 }), None);
    }

    #[test]
    fn validation_names_the_parameter() {
        let cases: Vec<(WaferSpec, &str)> = vec![
            (
                WaferSpec {
                    rows: 0,
                    ..Default::default()
                },
                "rows",
            ),
            (
                WaferSpec {
                    cols: 0,
                    ..Default::default()
                },
                "cols",
            ),
            (
                WaferSpec {
                    wafers_x: 0,
                    ..Default::default()
                },
                "wafers_x",
            ),
            (
                WaferSpec {
                    wafers_y: 0,
                    ..Default::default()
                },
                "wafers_y",
            ),
            (
                WaferSpec {
                    link_gbps_per_dir: 0.0,
                    ..Default::default()
                },
                "link_gbps_per_dir",
            ),
            (
                WaferSpec {
                    hop_latency_ns: f64::NAN,
                    ..Default::default()
                },
                "hop_latency_ns",
            ),
            (
                WaferSpec {
                    cross_wafer_gbps: -1.0,
                    ..Default::default()
                },
                "cross_wafer_gbps",
            ),
            (
                WaferSpec {
                    cross_wafer_latency_ns: f64::INFINITY,
                    ..Default::default()
                },
                "cross_wafer_latency_ns",
            ),
            (
                WaferSpec {
                    flit_bytes: 0,
                    ..Default::default()
                },
                "flit_bytes",
            ),
            (
                WaferSpec {
                    rows: usize::MAX,
                    cols: 2,
                    ..Default::default()
                },
                "rows",
            ),
        ];
        for (spec, param) in cases {
            assert_eq!(spec.validate().unwrap_err().parameter(), param);
        }
        for (die, param) in [
            (
                DieSpec {
                    peak_tflops: 0.0,
                    ..Default::default()
                },
                "peak_tflops",
            ),
            (
                DieSpec {
                    hbm_gbps: -3.0,
                    ..Default::default()
                },
                "hbm_gbps",
            ),
            (
                DieSpec {
                    hbm_capacity_gb: f64::NAN,
                    ..Default::default()
                },
                "hbm_capacity_gb",
            ),
        ] {
            assert_eq!(die.validate().unwrap_err().parameter(), param);
        }
    }
}
