//! Input VC buffers of a whole network, with each input VC's ring
//! position and pipeline state in one record, and its flits in the same
//! cache line when its buffer holds at most [`INLINE_FLITS`] flits.

use crate::flit::Flit;

/// Buffers of at most this many flits live in their VC's record
/// ([`VcState`]); deeper ones in an array beside the records.
pub const INLINE_FLITS: usize = 8;

/// One input VC's record: the position of its flits in its ring (private:
/// only [`VcBuffers`] moves them), the ring itself when the buffers hold
/// at most [`INLINE_FLITS`] flits, and the pipeline state the router
/// model keeps for it, its route included (the VC's stage is the model's
/// own: the mesh keeps it as bits of per-router masks). One 64-byte
/// cache line, so that a router visiting a VC, writing a flit into it
/// (and routing a head) or switching a flit out of it touches one line.
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(64))]
pub struct VcState {
    /// Candidate output VCs of the packet at the front, in the router
    /// model's encoding (the mesh: bit `port * V + vc`), valid while it
    /// waits for VC allocation.
    pub route: u128,
    /// First cycle the VC's current pipeline stage may act. (The mesh's
    /// ring mode, which applies a router's arrivals at its visit, leaves
    /// it at an earlier cycle than the wheel's arrival would for a flit
    /// joining an active VC; both are at or before the current cycle, and
    /// the default pipeline only tests `next <= t`, so it reads the same.)
    pub next: u64,
    /// Index of the front slot in the VC's ring.
    head: u16,
    /// Flits in the ring.
    len: u16,
    /// Output VC held by the packet at the front (the router model's index).
    pub out: u8,
    /// The ring, if the buffers hold at most [`INLINE_FLITS`] flits.
    ring: [Flit; INLINE_FLITS],
}

const _: () = assert!(std::mem::size_of::<VcState>() == 64);

impl VcState {
    /// Ring offset of the front flit, if any.
    #[inline(always)]
    fn front_at(&self) -> Option<usize> {
        (self.len != 0).then_some(self.head as usize)
    }
    /// Drop the front flit from a ring of `depth` slots: its ring offset
    /// and the number of flits left, or `None` if the ring is empty.
    #[inline(always)]
    fn advance(&mut self, depth: usize) -> Option<(usize, usize)> {
        if self.len == 0 {
            return None;
        }
        let h = self.head as usize;
        self.head = if h + 1 == depth { 0 } else { (h + 1) as u16 };
        self.len -= 1;
        Some((h, self.len as usize))
    }
}

/// Every input VC buffer of the network: buffer `b` (a global input-VC
/// index) has record `vcs[b]`, and its flits in the record's ring if
/// `depth <= INLINE_FLITS`, else in slots `b*depth .. (b+1)*depth` of an
/// array beside the records. No allocation after construction.
///
/// Invariant: `vcs[b]`'s ring position describes exactly the flits pushed
/// into buffer `b` and not yet popped; the pipeline fields of `vcs[b]` are
/// the caller's and never read here.
#[derive(Clone, Debug)]
pub struct VcBuffers {
    depth: usize,
    /// Per buffer: its record (ring position, pipeline state and, with
    /// shallow buffers, the ring).
    pub vcs: Vec<VcState>,
    /// The rings of deep buffers (`depth > INLINE_FLITS`), else empty.
    ext: Vec<Flit>,
}

/// Slot `h` of buffer `b`'s ring, given the buffer's record `s`: in the
/// record if `depth <= INLINE_FLITS` (a branch every caller predicts: the
/// depth is one for the whole network), else in `ext` (the rings of the
/// buffers from the first one `ext` starts at).
macro_rules! slot {
    ($depth:expr, $s:expr, $ext:expr, $b:expr, $h:expr) => {
        if $depth <= INLINE_FLITS {
            $s.ring[$h & (INLINE_FLITS - 1)]
        } else {
            $ext[$b * $depth + $h]
        }
    };
}

impl VcBuffers {
    /// `count` buffers of `depth` flits each.
    pub fn new(count: usize, depth: usize) -> Self {
        assert!(depth >= 1 && depth <= u16::MAX as usize);
        let ext = if depth <= INLINE_FLITS {
            0
        } else {
            count * depth
        };
        VcBuffers {
            depth,
            vcs: vec![VcState::default(); count],
            ext: vec![Flit::default(); ext],
        }
    }
    /// Buffer depth in flits.
    #[inline]
    pub fn depth(&self) -> usize {
        self.depth
    }
    /// Number of flits in buffer `b`.
    #[inline]
    pub fn len(&self, b: usize) -> usize {
        self.vcs[b].len as usize
    }
    /// Whether buffer `b` is empty.
    #[inline]
    pub fn is_empty(&self, b: usize) -> bool {
        self.vcs[b].len == 0
    }
    /// Front flit of buffer `b`, if any.
    #[inline]
    pub fn front(&self, b: usize) -> Option<Flit> {
        let s = &self.vcs[b];
        let h = s.front_at()?;
        Some(slot!(self.depth, s, self.ext, b, h))
    }
    /// Append a flit. Returns `Err(flit)` if the buffer is full (a credit
    /// protocol violation the caller reports).
    #[inline]
    pub fn push(&mut self, b: usize, f: Flit) -> Result<(), Flit> {
        let depth = self.depth;
        let s = &mut self.vcs[b];
        if s.len as usize >= depth {
            return Err(f);
        }
        let mut idx = s.head as usize + s.len as usize;
        if idx >= depth {
            idx -= depth;
        }
        s.len += 1;
        if depth <= INLINE_FLITS {
            s.ring[idx & (INLINE_FLITS - 1)] = f;
        } else {
            self.ext[b * depth + idx] = f;
        }
        Ok(())
    }
    /// Remove and return the front flit.
    #[inline]
    pub fn pop(&mut self, b: usize) -> Option<Flit> {
        self.pop_len(b).map(|(f, _)| f)
    }
    /// Remove and return the front flit with the number of flits left.
    #[inline]
    pub fn pop_len(&mut self, b: usize) -> Option<(Flit, usize)> {
        let s = &mut self.vcs[b];
        let (h, left) = s.advance(self.depth)?;
        Some((slot!(self.depth, s, self.ext, b, h), left))
    }
    /// Buffers `base .. base + N` (`N` a power of two) as one window whose
    /// records are a fixed-size array: a caller indexing it with `b & (N −
    /// 1)` for `b < N` needs no bounds check, and holds the window's
    /// addresses in registers instead of loading the vectors' again after
    /// each store through another pointer (the mesh's router step takes
    /// one window per router). The buffers must exist: a caller reaching
    /// the last ones pads the buffers with [`VcBuffers::padded`].
    #[inline]
    pub fn window<const N: usize>(&mut self, base: usize) -> Window<'_, N> {
        const { assert!(N.is_power_of_two()) };
        let depth = self.depth;
        let ext = if depth <= INLINE_FLITS {
            &mut self.ext[..]
        } else {
            &mut self.ext[base * depth..(base + N) * depth]
        };
        Window {
            depth,
            vcs: (&mut self.vcs[base..base + N])
                .try_into()
                .expect("a slice of N records"),
            ext,
        }
    }
    /// `count` buffers of `depth` flits, followed by `pad` buffers that
    /// stay empty, so that a [`VcBuffers::window`] of up to `pad` buffers
    /// may start at any of the first `count`.
    pub fn padded(count: usize, depth: usize, pad: usize) -> Self {
        Self::new(count + pad, depth)
    }
    /// Iterate the flits of buffer `b` front to back.
    pub fn iter(&self, b: usize) -> impl Iterator<Item = Flit> + '_ {
        let s = &self.vcs[b];
        let (h, len) = (s.head as usize, s.len as usize);
        (0..len).map(move |i| slot!(self.depth, s, self.ext, b, (h + i) % self.depth))
    }
}

/// Buffers `base .. base + N` of a [`VcBuffers`] ([`VcBuffers::window`]),
/// indexed from 0.
pub struct Window<'a, const N: usize> {
    depth: usize,
    /// The buffers' records.
    pub vcs: &'a mut [VcState; N],
    /// The rings of deep buffers, from buffer `base` on (else empty).
    ext: &'a mut [Flit],
}

impl<const N: usize> Window<'_, N> {
    /// Front flit of buffer `b < N`, if any.
    #[inline]
    pub fn front(&self, b: usize) -> Option<Flit> {
        debug_assert!(b < N);
        let b = b & (N - 1);
        let s = &self.vcs[b];
        let h = s.front_at()?;
        Some(slot!(self.depth, s, self.ext, b, h))
    }
    /// Remove and return the front flit of buffer `b < N` with the number
    /// of flits left.
    #[inline]
    pub fn pop_len(&mut self, b: usize) -> Option<(Flit, usize)> {
        debug_assert!(b < N);
        let b = b & (N - 1);
        let s = &mut self.vcs[b];
        let (h, left) = s.advance(self.depth)?;
        Some((slot!(self.depth, s, self.ext, b, h), left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_bounded_fifo(ops in proptest::collection::vec(any::<bool>(), 0..200), depth in 1usize..19) {
            let mut b = VcBuffers::new(3, depth);
            // The pipeline fields are the caller's: ring operations leave them alone.
            b.vcs[1].next = 77;
            b.vcs[1].out = 9;
            let mut model = std::collections::VecDeque::new();
            let mut n = 0u32;
            for push in ops {
                if push {
                    let f = Flit::new(n, 0, 1);
                    n += 1;
                    let r = b.push(1, f);
                    if model.len() < depth { prop_assert!(r.is_ok()); model.push_back(f); } else { prop_assert!(r.is_err()); }
                } else {
                    // Every way of popping: by index, and through a
                    // window.
                    match n % 3 {
                        0 => prop_assert_eq!(b.pop(1), model.pop_front()),
                        1 => {
                            let f = model.pop_front();
                            prop_assert_eq!(b.pop_len(1), f.map(|f| (f, model.len())));
                        }
                        _ => {
                            let mut w = b.window::<2>(0);
                            prop_assert_eq!(w.front(1), model.front().copied());
                            let f = model.pop_front();
                            prop_assert_eq!(w.pop_len(1), f.map(|f| (f, model.len())));
                        }
                    }
                }
                prop_assert_eq!((b.vcs[1].next, b.vcs[1].out), (77, 9));
                prop_assert_eq!(b.len(1), model.len());
                prop_assert_eq!(b.front(1), model.front().copied());
                prop_assert!(b.is_empty(0) && b.is_empty(2));
                let v: Vec<_> = b.iter(1).collect();
                let m: Vec<_> = model.iter().copied().collect();
                prop_assert_eq!(v, m);
            }
        }
    }
}
