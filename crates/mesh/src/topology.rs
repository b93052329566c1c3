//! Mesh and multi-wafer topology: node ids, ports, neighbours, link classes.
//!
//! Conventions (BookSim2's `mesh`): node id = x + cols·y, x is the column and
//! dimension 0. Ports: 0 = +x, 1 = −x, 2 = +y, 3 = −y, 4 = local
//! (injection/ejection). Input port 2d receives from the +d neighbour (flits
//! travelling in −d), input 2d+1 from the −d neighbour, as BookSim's k-ary
//! n-cube wires them, so allocator tie-breaks follow the same port order.

use serde::{Deserialize, Serialize};

/// Number of ports of a mesh router (4 directions + local).
pub const PORTS: usize = 5;
/// The local (injection/ejection) port.
pub const LOCAL: usize = 4;
/// Most routers in one network (all wafers): 2^20, e.g. 1024×1024. Each
/// router costs a few kilobytes of engine state, so this bounds a network
/// to a few GB; larger meshes are refused rather than exhausting memory.
pub const MAX_ROUTERS: usize = 1 << 20;

/// A 2D mesh of `wafers_x × wafers_y` wafers of `rows × cols` dies each,
/// joined edge to edge. Links that cross a wafer edge have their own latency
/// and bandwidth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeshSpec {
    /// Rows of routers per wafer.
    pub rows: usize,
    /// Columns of routers per wafer.
    pub cols: usize,
    /// Wafers side by side along x.
    pub wafers_x: usize,
    /// Wafers stacked along y.
    pub wafers_y: usize,
    /// Latency of an on-wafer link in cycles (BookSim convention, ≥ 1).
    pub link_latency: u32,
    /// Cycles per flit of an on-wafer link (1 = full speed).
    pub link_cycles_per_flit: u32,
    /// Latency of a wafer-crossing link in cycles.
    pub cross_latency: u32,
    /// Cycles per flit of a wafer-crossing link.
    pub cross_cycles_per_flit: u32,
    /// Latency of injection/ejection links between a node and its router.
    pub local_latency: u32,
}

impl Default for MeshSpec {
    fn default() -> Self {
        MeshSpec {
            rows: 8,
            cols: 8,
            wafers_x: 1,
            wafers_y: 1,
            link_latency: 1,
            link_cycles_per_flit: 1,
            cross_latency: 4,
            cross_cycles_per_flit: 2,
            local_latency: 1,
        }
    }
}

/// A resolved topology with precomputed neighbour tables.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The specification it was built from.
    pub spec: MeshSpec,
    /// Total rows (all wafers).
    pub height: usize,
    /// Total columns (all wafers).
    pub width: usize,
    /// `nbr[r*PORTS+p]`: router reached through output port p (u32::MAX: none).
    nbr: Vec<u32>,
    /// `xy[n]`: (x, y) of node n (routing asks for it at every head hop;
    /// a table instead of a division).
    xy: Vec<(u32, u32)>,
}

/// A wrong topology parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid topology parameter `{key}`: {reason}")]
pub struct TopologyError {
    /// Key at fault.
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

impl Topology {
    /// Build and check a topology.
    pub fn new(spec: MeshSpec) -> Result<Self, TopologyError> {
        let e = |key, reason: String| Err(TopologyError { key, reason });
        for (k, v) in [
            ("rows", spec.rows),
            ("cols", spec.cols),
            ("wafers_x", spec.wafers_x),
            ("wafers_y", spec.wafers_y),
        ] {
            if v == 0 {
                return e(k, "must be at least 1".into());
            }
        }
        // Checked: `rows = 2^32, wafers_y = 2^32` must not wrap to a small mesh.
        let size = spec
            .rows
            .checked_mul(spec.wafers_y)
            .zip(spec.cols.checked_mul(spec.wafers_x))
            .and_then(|(h, w)| Some((h, w, h.checked_mul(w)?)));
        let (height, width) = match size {
            Some((h, w, n)) if n <= MAX_ROUTERS => (h, w),
            _ => {
                return e(
                    "rows",
                    format!(
                        "{} rows × {} wafers_y by {} cols × {} wafers_x routers is more than \
                         the supported {MAX_ROUTERS} (2^20)",
                        spec.rows, spec.wafers_y, spec.cols, spec.wafers_x
                    ),
                )
            }
        };
        for (k, v) in [
            ("link_latency", spec.link_latency),
            ("link_cycles_per_flit", spec.link_cycles_per_flit),
            ("cross_latency", spec.cross_latency),
            ("cross_cycles_per_flit", spec.cross_cycles_per_flit),
            ("local_latency", spec.local_latency),
        ] {
            if v == 0 || v > 4096 {
                return e(k, format!("{v} is not in 1..=4096 cycles"));
            }
        }
        let n = height * width;
        let mut nbr = vec![u32::MAX; n * PORTS];
        for y in 0..height {
            for x in 0..width {
                let r = x + width * y;
                if x + 1 < width {
                    nbr[r * PORTS] = (r + 1) as u32;
                }
                if x > 0 {
                    nbr[r * PORTS + 1] = (r - 1) as u32;
                }
                if y + 1 < height {
                    nbr[r * PORTS + 2] = (r + width) as u32;
                }
                if y > 0 {
                    nbr[r * PORTS + 3] = (r - width) as u32;
                }
            }
        }
        let xy = (0..n)
            .map(|r| ((r % width) as u32, (r / width) as u32))
            .collect();
        Ok(Topology {
            spec,
            height,
            width,
            nbr,
            xy,
        })
    }

    /// Number of routers (= nodes).
    #[inline]
    pub fn nodes(&self) -> usize {
        self.height * self.width
    }
    /// (x, y) of a node.
    #[inline]
    pub fn coord(&self, n: usize) -> (usize, usize) {
        let (x, y) = self.xy[n];
        (x as usize, y as usize)
    }
    /// Node id of (x, y).
    #[inline]
    pub fn node(&self, x: usize, y: usize) -> usize {
        x + self.width * y
    }
    /// Router reached through output port `p` of router `r`.
    #[inline]
    pub fn neighbor(&self, r: usize, p: usize) -> Option<usize> {
        let v = self.nbr[r * PORTS + p];
        (v != u32::MAX).then_some(v as usize)
    }
    /// Input port at the neighbour where a flit sent out of port `p` arrives.
    #[inline]
    pub fn input_port_of(p: usize) -> usize {
        debug_assert!(p < LOCAL);
        p ^ 1
    }
    /// Whether the link out of port `p` of router `r` crosses a wafer edge.
    pub fn crosses_wafer(&self, r: usize, p: usize) -> bool {
        let (x, y) = self.coord(r);
        match p {
            0 => (x + 1) % self.spec.cols == 0 && x + 1 < self.width,
            1 => x % self.spec.cols == 0 && x > 0,
            2 => (y + 1) % self.spec.rows == 0 && y + 1 < self.height,
            3 => y % self.spec.rows == 0 && y > 0,
            _ => false,
        }
    }
    /// (latency, cycles per flit) of the link out of port `p` of router `r`.
    pub fn link_params(&self, r: usize, p: usize) -> (u32, u32) {
        if p == LOCAL {
            (self.spec.local_latency, 1)
        } else if self.crosses_wafer(r, p) {
            (self.spec.cross_latency, self.spec.cross_cycles_per_flit)
        } else {
            (self.spec.link_latency, self.spec.link_cycles_per_flit)
        }
    }
    /// Manhattan distance in router-to-router hops.
    #[inline]
    pub fn hops(&self, a: usize, b: usize) -> usize {
        let (ax, ay) = self.coord(a);
        let (bx, by) = self.coord(b);
        ax.abs_diff(bx) + ay.abs_diff(by)
    }
    /// Name of a port for messages.
    pub fn port_name(p: usize) -> &'static str {
        ["+x", "-x", "+y", "-y", "local"][p.min(4)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_and_ports() {
        let t = Topology::new(MeshSpec {
            rows: 3,
            cols: 4,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(t.nodes(), 12);
        assert_eq!(t.neighbor(0, 0), Some(1));
        assert_eq!(t.neighbor(0, 1), None);
        assert_eq!(t.neighbor(0, 2), Some(4));
        assert_eq!(t.neighbor(5, 3), Some(1));
        assert_eq!(Topology::input_port_of(0), 1);
        assert_eq!(t.hops(0, 11), 5);
    }

    #[test]
    fn wafer_crossings() {
        let t = Topology::new(MeshSpec {
            rows: 2,
            cols: 2,
            wafers_x: 2,
            wafers_y: 2,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((t.width, t.height), (4, 4));
        assert!(t.crosses_wafer(t.node(1, 0), 0));
        assert!(!t.crosses_wafer(t.node(0, 0), 0));
        assert!(t.crosses_wafer(t.node(2, 0), 1));
        assert!(t.crosses_wafer(t.node(0, 1), 2));
        assert_eq!(t.link_params(t.node(1, 0), 0), (4, 2));
    }

    #[test]
    fn router_counts_that_overflow_or_exceed_the_limit_are_refused() {
        // 2^32 × 2^32 wraps to 0 without checked arithmetic.
        let e = Topology::new(MeshSpec {
            rows: 1 << 32,
            wafers_y: 1 << 32,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "rows");
        let e = Topology::new(MeshSpec {
            rows: 1025,
            cols: 1024,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.reason.contains("2^20"), "{}", e.reason);
    }

    #[test]
    fn bad_params_name_the_key() {
        let e = Topology::new(MeshSpec {
            rows: 0,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "rows");
        let e = Topology::new(MeshSpec {
            link_latency: 0,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "link_latency");
    }
}
