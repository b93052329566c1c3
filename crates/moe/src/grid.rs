//! Mesh geometry: coordinates, ring orders over a grid, tile-shape choice.
//!
//! **Conventions.** A [`Coord`] is `(x, y)` with `x` the column and `y` the
//! row; device id = `x + mesh_cols * y`. Grid *cells* (devices inside a tile,
//! or tiles inside the tile grid) are written `(row, col)` in this module and
//! in the documentation's worked examples, as matrices are.

use serde::{Deserialize, Serialize};

/// A mesh position: `x` is the column, `y` the row (origin at the top-left).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Coord {
    /// Column.
    pub x: usize,
    /// Row.
    pub y: usize,
}

impl Coord {
    /// A coordinate from column `x` and row `y`.
    pub fn new(x: usize, y: usize) -> Self {
        Coord { x, y }
    }

    /// Manhattan distance (minimal hop count on the mesh).
    pub fn manhattan(self, other: Coord) -> usize {
        self.x.abs_diff(other.x) + self.y.abs_diff(other.y)
    }

    /// Whether the two coordinates are mesh neighbours (distance 1).
    pub fn is_neighbour(self, other: Coord) -> bool {
        self.manhattan(other) == 1
    }
}

/// Visiting order of a 1-D ring of `n` cells: even positions ascending, then
/// odd positions descending ("folded" ring). Every ring link spans at most 2
/// cells, instead of one closing link spanning `n - 1` cells.
fn folded(n: usize) -> Vec<usize> {
    (0..n).step_by(2).chain((1..n).step_by(2).rev()).collect()
}

/// Hamiltonian cycle of neighbour cells on a `gr x gc` grid with `gr` even and
/// `gc >= 2`: row 0 left to right, then rows `1..gr` serpentine over columns
/// `gc-1..=1`, then column 0 bottom to top.
fn even_rows(gr: usize, gc: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(gr * gc);
    out.extend((0..gc).map(|c| (0, c)));
    for r in 1..gr {
        if r % 2 == 1 {
            out.extend((1..gc).rev().map(|c| (r, c)));
        } else {
            out.extend((1..gc).map(|c| (r, c)));
        }
    }
    out.extend((1..gr).rev().map(|r| (r, 0)));
    out
}

/// Cycle on a `gr x gc` grid with both odd and `>= 3`: all links join
/// neighbours except one diagonal (2-cell) link. No Hamiltonian cycle of
/// neighbour links exists on an odd number of cells (the grid is bipartite).
fn odd_odd(gr: usize, gc: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(gr * gc);
    out.extend((0..gc).map(|c| (0, c)));
    for r in 1..gr - 2 {
        if r % 2 == 1 {
            out.extend((1..gc).rev().map(|c| (r, c)));
        } else {
            out.extend((1..gc).map(|c| (r, c)));
        }
    }
    for c in (1..gc).rev() {
        if (gc - 1 - c) % 2 == 0 {
            out.push((gr - 2, c));
            out.push((gr - 1, c));
        } else {
            out.push((gr - 1, c));
            out.push((gr - 2, c));
        }
    }
    out.extend((1..gr).rev().map(|r| (r, 0)));
    out
}

/// The ring order over the cells `(row, col)` of a `gr x gc` grid, starting at
/// `(0, 0)` and going along row 0 first.
///
/// - `gr, gc >= 2` and `gr * gc` even: a Hamiltonian cycle of neighbour cells
///   (serpentine with a return column; the closing link is a neighbour link
///   too). For a 2x2 grid: `(0,0) (0,1) (1,1) (1,0)`.
/// - both odd and `>= 3`: the same shape with exactly one diagonal link (two
///   cells apart).
/// - one row or one column: the folded ring, links span one or two cells.
/// - if `gr` is odd and `gc` even the construction runs on the transposed
///   grid (it goes down column 0 first).
pub fn ring_order(gr: usize, gc: usize) -> Vec<(usize, usize)> {
    if gr == 0 || gc == 0 {
        return Vec::new();
    }
    if gr == 1 {
        return folded(gc).into_iter().map(|c| (0, c)).collect();
    }
    if gc == 1 {
        return folded(gr).into_iter().map(|r| (r, 0)).collect();
    }
    if gr % 2 == 0 {
        return even_rows(gr, gc);
    }
    if gc % 2 == 0 {
        return even_rows(gc, gr).into_iter().map(|(r, c)| (c, r)).collect();
    }
    odd_odd(gr, gc)
}

/// Chooses a tile shape `(tile_rows, tile_cols)` of the given area that tiles a
/// `rows x cols` region, "as square as the region allows".
///
/// Among the shapes with `tile_rows * tile_cols == area` that divide the
/// region, the key minimised is, in order: whether the tile would straddle a
/// wafer edge (shape does not divide `wafer_rows x wafer_cols`), the
/// difference `|tile_rows - tile_cols|`, the squareness of the resulting tile
/// grid `|grid_rows - grid_cols|`, then `tile_rows` (wider tiles first).
/// Returns `None` if no shape tiles the region.
pub(crate) fn choose_tile(
    area: usize,
    rows: usize,
    cols: usize,
    wafer_rows: usize,
    wafer_cols: usize,
) -> Option<(usize, usize)> {
    (1..=area)
        .filter(|a| area % a == 0)
        .map(|a| (a, area / a))
        .filter(|&(a, b)| rows % a == 0 && cols % b == 0)
        .min_by_key(|&(a, b)| {
            let straddles = !(wafer_rows % a == 0 && wafer_cols % b == 0);
            (straddles, a.abs_diff(b), (rows / a).abs_diff(cols / b), a)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(p: (usize, usize), q: (usize, usize)) -> usize {
        p.0.abs_diff(q.0) + p.1.abs_diff(q.1)
    }

    fn check(gr: usize, gc: usize) {
        let o = ring_order(gr, gc);
        assert_eq!(o.len(), gr * gc);
        let mut seen = vec![false; gr * gc];
        for &(r, c) in &o {
            assert!(r < gr && c < gc);
            assert!(!seen[r * gc + c], "{gr}x{gc} repeats ({r},{c})");
            seen[r * gc + c] = true;
        }
        assert_eq!(o[0], (0, 0));
        let n = o.len();
        let dists: Vec<usize> = (0..n).map(|i| dist(o[i], o[(i + 1) % n])).collect();
        if n == 1 {
            return;
        }
        if gr == 1 || gc == 1 {
            assert!(
                dists.iter().all(|&d| d == 1 || d == 2),
                "{gr}x{gc} {dists:?}"
            );
        } else if (gr * gc) % 2 == 0 {
            assert!(dists.iter().all(|&d| d == 1), "{gr}x{gc} {o:?}");
        } else {
            assert_eq!(dists.iter().filter(|&&d| d == 2).count(), 1);
            assert!(dists.iter().all(|&d| d == 1 || d == 2));
            // The 2-cell link is a diagonal, not a straight jump.
            let i = dists.iter().position(|&d| d == 2).unwrap();
            let (p, q) = (o[i], o[(i + 1) % n]);
            assert!(p.0 != q.0 && p.1 != q.1);
        }
    }

    #[test]
    fn ring_orders_are_cycles() {
        for gr in 1..=9 {
            for gc in 1..=9 {
                check(gr, gc);
            }
        }
    }

    #[test]
    fn small_orders() {
        assert_eq!(ring_order(2, 2), vec![(0, 0), (0, 1), (1, 1), (1, 0)]);
        assert_eq!(ring_order(1, 4), vec![(0, 0), (0, 2), (0, 3), (0, 1)]);
        assert_eq!(
            ring_order(3, 3),
            vec![
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 2),
                (2, 2),
                (2, 1),
                (1, 1),
                (2, 0),
                (1, 0)
            ]
        );
    }

    #[test]
    fn tile_choice() {
        assert_eq!(choose_tile(4, 4, 4, 4, 4), Some((2, 2)));
        assert_eq!(choose_tile(8, 8, 8, 8, 8), Some((2, 4)));
        assert_eq!(choose_tile(8, 4, 16, 4, 16), Some((2, 4)));
        assert_eq!(choose_tile(3, 4, 4, 4, 4), None);
        // Prefers shapes that do not straddle a wafer edge: 8 rows of two
        // 4-row wafers, 2 columns.
        assert_eq!(choose_tile(4, 8, 2, 4, 2), Some((2, 2)));
        assert_eq!(choose_tile(8, 8, 2, 4, 2), Some((4, 2)));
    }
}
