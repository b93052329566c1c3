//! Routing functions, chosen by name.
//!
//! A routing function maps (router, destination) to a set of candidate
//! (output port, VC) pairs within the packet's message class. The set is a
//! bit mask over `port * V + vc` of the current router.

use serde::{Deserialize, Serialize};

use crate::topology::{Topology, LOCAL};

/// Routing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Dimension order, x first (BookSim2 `dim_order`). Deadlock-free.
    Xy,
    /// Dimension order, y first. Deadlock-free.
    Yx,
    /// Minimal adaptive with a Duato escape VC: the first VC of each class is
    /// the escape channel and follows XY; the other VCs of the class may take
    /// any productive direction. Deadlock-free with ≥ 2 VCs per class.
    AdaptiveEscape,
    /// Minimal fully adaptive routing on every VC **without** an escape VC.
    /// Not deadlock-free: offered so the deadlock checks can be shown to
    /// catch something. Never use it for results.
    AdaptiveUnsafe,
}

impl Routing {
    /// Every routing function, for messages listing valid names.
    pub const ALL: [(&'static str, Routing); 4] = [
        ("xy", Routing::Xy),
        ("yx", Routing::Yx),
        ("adaptive_escape", Routing::AdaptiveEscape),
        ("adaptive_unsafe", Routing::AdaptiveUnsafe),
    ];

    /// Parse a routing name; BookSim's `dim_order` is accepted for `xy`.
    pub fn from_name(s: &str) -> Option<Routing> {
        match s {
            "dim_order" | "dor" => Some(Routing::Xy),
            _ => Routing::ALL.iter().find(|(n, _)| *n == s).map(|x| x.1),
        }
    }
    /// Canonical name.
    pub fn name(self) -> &'static str {
        Routing::ALL
            .iter()
            .find(|x| x.1 == self)
            .map(|x| x.0)
            .unwrap_or("?")
    }
    /// Whether this routing is claimed deadlock-free (given its VC needs).
    pub fn is_safe(self) -> bool {
        !matches!(self, Routing::AdaptiveUnsafe)
    }
    /// Minimum VCs per message class this routing needs.
    pub fn min_vcs_per_class(self) -> usize {
        match self {
            Routing::AdaptiveEscape => 2,
            _ => 1,
        }
    }

    /// Productive ports from `cur` towards `dst` as a 4-bit mask (bit p for port p).
    #[inline]
    pub fn productive(topo: &Topology, cur: usize, dst: usize) -> u8 {
        let (cx, cy) = topo.coord(cur);
        let (dx, dy) = topo.coord(dst);
        let mut m = 0u8;
        if dx > cx {
            m |= 1;
        } else if dx < cx {
            m |= 2;
        }
        if dy > cy {
            m |= 4;
        } else if dy < cy {
            m |= 8;
        }
        m
    }

    /// The port dimension-order routing takes (x first if `x_first`).
    #[inline]
    pub fn dor_port(topo: &Topology, cur: usize, dst: usize, x_first: bool) -> usize {
        let (cx, cy) = topo.coord(cur);
        let (dx, dy) = topo.coord(dst);
        let xp = if dx > cx {
            Some(0)
        } else if dx < cx {
            Some(1)
        } else {
            None
        };
        let yp = if dy > cy {
            Some(2)
        } else if dy < cy {
            Some(3)
        } else {
            None
        };
        if x_first {
            xp.or(yp).unwrap_or(LOCAL)
        } else {
            yp.or(xp).unwrap_or(LOCAL)
        }
    }

    /// Candidate (port, VC) mask at router `cur` for a packet to `dst` whose
    /// class owns VCs `vc_lo..vc_hi` of `num_vcs`.
    #[inline]
    pub fn candidates(
        self,
        topo: &Topology,
        cur: usize,
        dst: usize,
        vc_lo: usize,
        vc_hi: usize,
        num_vcs: usize,
    ) -> u128 {
        let class_mask = ((1u128 << (vc_hi - vc_lo)) - 1) << vc_lo;
        let at = |p: usize, m: u128| m << (p * num_vcs);
        if cur == dst {
            return at(LOCAL, class_mask);
        }
        match self {
            Routing::Xy => at(Self::dor_port(topo, cur, dst, true), class_mask),
            Routing::Yx => at(Self::dor_port(topo, cur, dst, false), class_mask),
            Routing::AdaptiveEscape => {
                let escape = 1u128 << vc_lo;
                let adaptive = class_mask & !escape;
                let mut m = at(Self::dor_port(topo, cur, dst, true), escape);
                let prod = Self::productive(topo, cur, dst);
                for p in 0..4 {
                    if prod >> p & 1 == 1 {
                        m |= at(p, adaptive);
                    }
                }
                m
            }
            Routing::AdaptiveUnsafe => {
                let prod = Self::productive(topo, cur, dst);
                let mut m = 0;
                for p in 0..4 {
                    if prod >> p & 1 == 1 {
                        m |= at(p, class_mask);
                    }
                }
                m
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::MeshSpec;

    #[test]
    fn xy_goes_x_first() {
        let t = Topology::new(MeshSpec {
            rows: 4,
            cols: 4,
            ..Default::default()
        })
        .unwrap();
        let m = Routing::Xy.candidates(&t, t.node(0, 0), t.node(2, 3), 0, 2, 2);
        assert_eq!(m, 0b11); // port 0, VCs 0 and 1
        let m = Routing::Yx.candidates(&t, t.node(0, 0), t.node(2, 3), 0, 2, 2);
        assert_eq!(m, 0b11 << 4); // port 2
        let m = Routing::Xy.candidates(&t, 5, 5, 1, 2, 2);
        assert_eq!(m, 0b10 << 8);
    }

    /// Every candidate of every routing brings the packet one router
    /// closer (LOCAL only at the destination), on a mesh of two wafers:
    /// the mesh derives a packet's hop count from this (`Delivered::hops`).
    #[test]
    fn routes_are_minimal() {
        let t = Topology::new(MeshSpec {
            rows: 3,
            cols: 4,
            wafers_x: 2,
            wafers_y: 1,
            ..Default::default()
        })
        .unwrap();
        let (v, n) = (3, t.nodes());
        assert_eq!(n, 24);
        for (name, routing) in Routing::ALL {
            for cur in 0..n {
                for dst in 0..n {
                    let m = routing.candidates(&t, cur, dst, 0, v, v);
                    assert_ne!(m, 0, "{name}: no candidate at {cur} for {dst}");
                    for bit in 0..128 {
                        if m >> bit & 1 == 0 {
                            continue;
                        }
                        let p = bit / v;
                        if cur == dst {
                            assert_eq!(p, LOCAL, "{name}: {cur} leaves its own packet");
                            continue;
                        }
                        let nb = t.neighbor(cur, p).unwrap_or_else(|| {
                            panic!("{name}: {cur}→{dst} by port {p}, off the mesh")
                        });
                        assert_eq!(
                            t.hops(nb, dst) + 1,
                            t.hops(cur, dst),
                            "{name}: {cur}→{dst} by port {p} is not minimal"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn escape_vc_follows_xy_only() {
        let t = Topology::new(MeshSpec {
            rows: 4,
            cols: 4,
            ..Default::default()
        })
        .unwrap();
        let m = Routing::AdaptiveEscape.candidates(&t, t.node(0, 0), t.node(2, 3), 0, 3, 3);
        // port 0: VCs 0,1,2 ; port 2: VCs 1,2
        assert_eq!(m, 0b111 | (0b110 << 6));
    }
}
