//! Allocators: match requesting inputs to outputs, at most one each.
//!
//! Requests are given per input as a bit mask of requested outputs (so at
//! most 128 inputs and 128 outputs). `busy_in` / `busy_out` masks exclude
//! inputs and outputs already matched by a higher-priority pass, which is how
//! the mesh implements per-class switch-allocation priority.

use serde::{Deserialize, Serialize};

use crate::arbiter::{first_from, Arbiter, ArbiterKind};

/// Allocator policy, chosen by name in configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AllocatorKind {
    /// Separable allocator, input arbitration first.
    SeparableInputFirst,
    /// Separable allocator, output arbitration first.
    SeparableOutputFirst,
    /// iSLIP with `iters` iterations (BookSim2's `islip` with `alloc_iters`):
    /// grant pointers and accept pointers move only on a first-iteration
    /// accept.
    Islip {
        /// Number of request-grant-accept iterations.
        iters: u32,
    },
}

/// One allocator instance with its persistent pointer state.
// `repr(C)`: the header and the first pointers share the first cache line,
// so an allocation touches one line of its allocator; `align(64)` makes it
// a whole line (the allocator took 416 bytes, so every second one of a
// vector of them started mid-line and its lone-requester path read two
// lines: 13% of the L2 misses of 32×32 at 0.01, cachegrind, session 7).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Allocator {
    kind: AllocatorKind,
    n_in: u32,
    n_out: u32,
    /// iSLIP pointers in one fixed array (no bounds checks): the grant
    /// pointer of output `o` at `o`, the accept pointer of input `i` at
    /// `n_out + i` (below 256, as both counts are at most 128). For a small
    /// allocator both lie in the same cache line as the header.
    ptr: [u8; 256],
    in_arb: Vec<Arbiter>,
    out_arb: Vec<Arbiter>,
    // Scratch rows, all zero between calls (only touched entries are cleared).
    by_out: Vec<u128>,
    by_in: Vec<u128>,
    scratch_in: Vec<u128>,
    scratch_out: Vec<u128>,
}

/// One request row: an input and the mask of outputs it asks for.
pub type RequestRow = (u32, u128);

/// The pointers of an iSLIP allocator, as the small-mask algorithm reads
/// and moves them (an [`Allocator`]'s; the tests' reference for
/// [`SmallIslip`] too).
trait IslipPtrs {
    /// Grant pointer of output `o`.
    fn grant_ptr(&self, o: usize) -> u32;
    /// Accept pointer of input `i`.
    fn accept_ptr(&self, i: usize) -> u32;
    /// Move output `o`'s grant pointer to `g` and input `i`'s accept pointer to `a`.
    fn set_ptrs(&mut self, i: usize, o: usize, g: u8, a: u8);
}

impl IslipPtrs for Allocator {
    #[inline]
    fn grant_ptr(&self, o: usize) -> u32 {
        self.ptr[o & 127] as u32
    }
    #[inline]
    fn accept_ptr(&self, i: usize) -> u32 {
        self.ptr[self.ai(i)] as u32
    }
    #[inline]
    fn set_ptrs(&mut self, i: usize, o: usize, g: u8, a: u8) {
        self.ptr[o & 127] = g;
        let ai = self.ai(i);
        self.ptr[ai] = a;
    }
}

/// The whole state of an iSLIP allocator with `N ≤ 8` inputs and `N`
/// outputs (`N` given to every call): its grant and accept pointers in 16
/// bytes, so that a mesh keeps one per router in a dense array (four per
/// cache line) instead of an [`Allocator`] of about 416 bytes. Calls give
/// exactly the matches and pointer moves of an [`Allocator`] of kind
/// [`AllocatorKind::Islip`] with `N` inputs and outputs (tested), for
/// request masks below bit `N` (higher bits are ignored).
///
/// A pointer `p` is kept as the mask of the positions below it,
/// `(1 << p) - 1` (so the all-zero default is every pointer at 0): the
/// allocation then works on all eight rows at once, one byte each in a
/// `u64` (SWAR), with no loop over inputs or outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmallIslip {
    /// Grant pointer of output `o` at byte `o`, accept pointer of input `i`
    /// at byte `8 + i`, each as the mask of the positions below it.
    below: [u8; 16],
}

/// The byte `0x01` in every lane of a `u64` of eight byte lanes.
const LANE_LO: u64 = 0x0101_0101_0101_0101;
/// The byte `0x80` in every lane.
const LANE_HI: u64 = 0x8080_8080_8080_8080;

/// `0x80` in the byte lanes of `x` that are non-zero, `0` elsewhere.
#[inline(always)]
fn lanes_nonzero_hi(x: u64) -> u64 {
    (((x & !LANE_HI) + !LANE_HI) | x) & LANE_HI
}

/// Bit `i` set for each nonzero byte `i` of `x`, without a loop: the
/// lanes' high bits from `lanes_nonzero_hi`, shifted to the lanes' low
/// bits and gathered into the top byte by one multiply (the eight partial
/// products land on distinct bits, so there are no carries). The mesh's
/// switch requests, one byte of outputs per input, give the inputs that
/// ask this way.
#[inline(always)]
pub fn nonzero_bytes(x: u64) -> u8 {
    ((lanes_nonzero_hi(x) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// [`lanes_nonzero_hi`] for lanes with at most one bit set: adding 0x7f to
/// a lane of at most 0x80 sets its high bit exactly where it is non-zero,
/// with no carry out of the lane.
#[inline(always)]
fn lanes_one_hot_hi(x: u64) -> u64 {
    (x + !LANE_HI) & LANE_HI
}

/// `0xff` in the byte lanes whose high bit is set in `h` (`h` has no other bits).
#[inline(always)]
fn lanes_fill(h: u64) -> u64 {
    (h - (h >> 7)) | h
}

/// Per byte lane: the lowest set bit of `x` at or above the lane's pointer
/// (`below` holds, per lane, the mask of the positions under it), else the
/// lowest set bit of `x`; `0` in lanes where `x` is zero. This is
/// [`first8`] on all eight lanes at once, as a one-hot mask.
/// With `small` (a constant where inlined), every lane of `x` is below
/// 0x80 (bit 7 never set).
#[inline(always)]
fn pick_lanes(x: u64, below: u64, small: bool) -> u64 {
    let hi = x & !below;
    // 0x80 in the lanes with a request at or above the pointer (a lane
    // below 0x80 plus 0x7f carries into its high bit exactly when non-zero).
    let h = if small {
        (hi + !LANE_HI) & LANE_HI
    } else {
        lanes_nonzero_hi(hi)
    };
    // Those lanes drop the requests below the pointer ("below" masks are
    // at most 0x7f: 0x7f in the lane covers them).
    let sel = x & !(below & (h - (h >> 7)));
    // Lowest set bit per lane: sel & !(sel - 1), with the high bit set
    // before subtracting so that no borrow crosses into the next lane (a
    // lane of just 0x80 gives 0x7f, and keeps its bit).
    sel & !((sel | LANE_HI) - LANE_LO)
}

/// Transpose of an 8×8 bit matrix, row `r` in byte `r` (bit `8r + c` goes
/// to bit `8c + r`; Hacker's Delight, 7-3).
#[inline(always)]
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00aa_00aa_00aa_00aa;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_cccc_0000_cccc;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_f0f0_f0f0;
    x ^ t ^ (t << 28)
}

/// The byte mask `b` spread over the byte lanes: `0xff` in lane `k` if bit
/// `k` of `b` is set.
#[inline(always)]
fn spread_bits(b: u8) -> u64 {
    // Lane k keeps bit k of b.
    let x = (b as u64).wrapping_mul(LANE_LO) & 0x8040_2010_0804_0201;
    lanes_fill(lanes_one_hot_hi(x))
}

/// New pointers, as "below" masks, of the lanes of `one_hot` (at most one
/// bit per lane, below bit `n`): the position after the set bit, modulo `n`.
/// Lanes without a bit give 0 (callers keep their old pointer).
#[inline(always)]
fn next_below(one_hot: u64, n: u32) -> u64 {
    // Bits below n - 1 move on (the mask of the positions up to the bit);
    // bit n - 1 wraps to pointer 0, an empty mask.
    let keep = one_hot & (((1u64 << (n - 1)) - 1) * LANE_LO);
    // keep's lanes are below 0x80: shifting stays within the lane, and
    // subtracting 1 from the non-zero ones borrows nothing.
    (keep << 1) - (lanes_one_hot_hi(keep) >> 7)
}

/// Pointer moves of an allocator with `N` ports.
struct Past<const N: usize>;

impl<const N: usize> Past<N> {
    /// At `x`: the "below" mask of the position after `x` (mod `N`),
    /// `(1 << ((x + 1) mod N)) - 1`.
    const BELOW: [u8; 8] = {
        let mut t = [0u8; 8];
        let mut x = 0;
        while x < 8 {
            t[x] = if x + 1 >= N {
                0
            } else {
                ((2u32 << x) - 1) as u8
            };
            x += 1;
        }
        t
    };
}

impl SmallIslip {
    /// [`Allocator::allocate_fixed`] of an iSLIP allocator with `iters`
    /// iterations and `N` inputs and outputs (request bits from `N` on are
    /// ignored).
    /// All rows at once: per iteration, a transpose to columns, every
    /// output's grant by its pointer, a transpose back, every input's
    /// accept by its pointer; matches are listed in ascending input order
    /// per iteration, as [`Allocator::allocate_small`] lists them.
    #[inline]
    pub fn allocate_fixed<const N: usize>(
        &mut self,
        iters: u32,
        req: &[u8; N],
        busy_in: u8,
        busy_out: u8,
        out: &mut [(u8, u8)],
    ) -> usize {
        debug_assert!((1..=8).contains(&N));
        let mut rows = [0u8; 8];
        rows[..N].copy_from_slice(req);
        // Row i (input i) in byte i: the outputs it asks for (bits from N
        // on dropped, so that every lane stays below 1 << N).
        let mut r = u64::from_le_bytes(rows) & (((1u64 << N) - 1) * LANE_LO);
        if busy_in | busy_out != 0 {
            r &= !spread_bits(busy_in) & !((busy_out as u64) * LANE_LO);
        }
        let [g0, g1, g2, g3, g4, g5, g6, g7, a0, a1, a2, a3, a4, a5, a6, a7] = self.below;
        let mut grant_below = u64::from_le_bytes([g0, g1, g2, g3, g4, g5, g6, g7]);
        let mut accept_below = u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
        let mut k = 0;
        for iter in 0..iters {
            if r == 0 {
                break;
            }
            // Grant: per output (lane), one requesting input (bit).
            let grants = pick_lanes(transpose8(r), grant_below, N < 8);
            // Accept: per input (lane), one granting output (bit).
            let matched = pick_lanes(transpose8(grants), accept_below, N < 8);
            let mut m = matched;
            while m != 0 {
                let b = m.trailing_zeros();
                m &= m - 1;
                out[k] = ((b >> 3) as u8, (b & 7) as u8);
                k += 1;
            }
            // Inputs (lanes) matched, and outputs (bits) matched.
            let in_lanes = lanes_fill(lanes_one_hot_hi(matched));
            let mut outs = matched | matched >> 32;
            outs |= outs >> 16;
            outs |= outs >> 8;
            let out_lanes = spread_bits(outs as u8);
            if iter == 0 {
                // Pointers move only on a first-iteration accept: the
                // accept pointer past the output taken, the grant pointer of
                // that output past its input.
                accept_below = (accept_below & !in_lanes) | next_below(matched, N as u32);
                grant_below = (grant_below & !out_lanes) | next_below(grants & out_lanes, N as u32);
            }
            if iter + 1 == iters {
                break;
            }
            r &= !in_lanes & !((outs & 0xff) * LANE_LO);
        }
        let g = grant_below.to_le_bytes();
        let a = accept_below.to_le_bytes();
        self.below = [
            g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], a[0], a[1], a[2], a[3], a[4], a[5],
            a[6], a[7],
        ];
        k
    }

    /// [`Allocator::grant_uncontested`] with `N` inputs and outputs.
    #[inline]
    pub fn grant_uncontested<const N: usize>(&mut self, i: u32, mask: u8) -> u32 {
        debug_assert!(mask != 0 && (i as usize) < N);
        let hi = mask & !self.below[8 + (i as usize & 7)];
        let o = if hi != 0 { hi } else { mask }.trailing_zeros();
        // The pointers past i and o (mod N), as "below" masks, by table:
        // computing them costs about ten instructions more a call.
        self.below[o as usize & 7] = Past::<N>::BELOW[i as usize & 7];
        self.below[8 + (i as usize & 7)] = Past::<N>::BELOW[o as usize & 7];
        o
    }

    /// The grant pointers (by output, `0..8`) and accept pointers (by
    /// input, `8..16`) as positions.
    pub fn pointers(&self) -> [u8; 16] {
        self.below.map(|b| b.count_ones() as u8)
    }
}

/// iSLIP's match for input `i` alone asking for the outputs in `mask`
/// (see [`Allocator::grant_uncontested`]), on either pointer store.
#[inline]
fn grant_uncontested<P: IslipPtrs>(p: &mut P, n_in: u32, n_out: u32, i: u32, mask: u8) -> u32 {
    let o = first8(mask, p.accept_ptr(i as usize));
    let g = if i + 1 >= n_in { 0 } else { i + 1 };
    let a = if o + 1 >= n_out { 0 } else { o + 1 };
    p.set_ptrs(i as usize, o as usize, g as u8, a as u8);
    o
}

/// First set bit of a non-empty byte mask at or after `ptr` (cyclically).
#[inline]
fn first8(mask: u8, ptr: u32) -> u32 {
    let hi = if ptr >= 8 { 0 } else { mask & (0xffu8 << ptr) };
    if hi != 0 {
        hi.trailing_zeros()
    } else {
        mask.trailing_zeros()
    }
}

/// First set bit of a non-empty 64-bit mask at or after `ptr < 64`
/// (cyclically).
#[inline(always)]
fn first_from_u64(mask: u64, ptr: u32) -> u32 {
    debug_assert!(mask != 0 && ptr < 64);
    let hi = mask & (u64::MAX << (ptr & 63));
    if hi != 0 {
        hi.trailing_zeros()
    } else {
        mask.trailing_zeros()
    }
}

/// [`first_from`] on a non-empty mask, with a short path for masks and
/// pointers below 64 (a mesh's VC allocators: 5 ports × V VCs).
#[inline(always)]
fn first_from_nonzero(mask: u128, ptr: u32) -> u32 {
    debug_assert!(mask != 0);
    if mask >> 64 == 0 && ptr < 64 {
        first_from_u64(mask as u64, ptr)
    } else {
        first_from(mask, ptr).unwrap_or(0)
    }
}

impl Allocator {
    /// Index of input `i`'s accept pointer in `ptr`.
    #[inline]
    fn ai(&self, i: usize) -> usize {
        (self.n_out as usize + i) & 255
    }

    /// A new allocator for `n_in` inputs and `n_out` outputs (each ≤ 128).
    pub fn new(kind: AllocatorKind, arbiter: ArbiterKind, n_in: usize, n_out: usize) -> Self {
        assert!(n_in <= 128 && n_out <= 128);
        let (in_arb, out_arb) = match kind {
            AllocatorKind::Islip { .. } => (Vec::new(), Vec::new()),
            _ => (
                (0..n_in).map(|_| Arbiter::new(arbiter, n_out)).collect(),
                (0..n_out).map(|_| Arbiter::new(arbiter, n_in)).collect(),
            ),
        };
        Allocator {
            kind,
            n_in: n_in as u32,
            n_out: n_out as u32,
            ptr: [0; 256],
            in_arb,
            out_arb,
            by_out: vec![0; n_out],
            by_in: vec![0; n_in],
            scratch_in: vec![0; n_in],
            scratch_out: vec![0; n_out],
        }
    }

    /// The same allocation as [`Allocator::allocate`] for at most 8 inputs
    /// and 8 outputs, with `req[i]` the mask of outputs input `i` requests.
    /// iSLIP runs on byte masks without touching the heap (the switch
    /// allocator of a mesh router calls this every cycle); the separable
    /// kinds go through the general path. Results are identical (tested).
    pub fn allocate_small(
        &mut self,
        req: &[u8],
        busy_in: u8,
        busy_out: u8,
        out: &mut Vec<(u32, u32)>,
    ) {
        debug_assert!(req.len() <= 8 && self.n_in <= 8 && self.n_out <= 8);
        let AllocatorKind::Islip { iters } = self.kind else {
            self.allocate_rows(req, busy_in, busy_out, out);
            return;
        };
        // Inputs without requests take no part, so padding with zeros
        // changes nothing.
        let mut padded = [0u8; 8];
        for (p, &m) in padded.iter_mut().zip(req) {
            *p = m;
        }
        self.islip_small(iters, &padded, busy_in, busy_out, |i, o| out.push((i, o)));
    }

    /// [`Allocator::allocate_small`] for exactly `N ≤ 8` inputs, writing the
    /// matches as (input, output) into `out` (at least `min(N, outputs)`
    /// long) and returning how many there are; the same matches in the same
    /// order. A fixed `N` lets the compiler unroll the per-input loops (the
    /// mesh calls this with its five ports).
    pub fn allocate_fixed<const N: usize>(
        &mut self,
        req: &[u8; N],
        busy_in: u8,
        busy_out: u8,
        out: &mut [(u8, u8)],
    ) -> usize {
        debug_assert!(N <= 8 && self.n_in <= 8 && self.n_out <= 8);
        let mut k = 0;
        let AllocatorKind::Islip { iters } = self.kind else {
            let mut v = Vec::new();
            self.allocate_rows(req, busy_in, busy_out, &mut v);
            for (slot, &(i, o)) in out.iter_mut().zip(&v) {
                *slot = (i as u8, o as u8);
            }
            return v.len();
        };
        self.islip_small(iters, req, busy_in, busy_out, |i, o| {
            out[k] = (i as u8, o as u8);
            k += 1;
        });
        k
    }

    /// iSLIP's match for input `i` asking for the outputs in `mask`
    /// (non-empty) when no other input asks for any of them and nothing is
    /// busy: every output in `mask` grants `i`, which accepts by its
    /// pointer. Returns the output. Calling this for each requesting input
    /// in ascending order is exactly [`Allocator::allocate_small`] on such
    /// requests (tested); the mesh uses it when its switch requests do not
    /// conflict. Only for [`AllocatorKind::Islip`].
    #[inline]
    pub fn grant_uncontested(&mut self, i: u32, mask: u8) -> u32 {
        debug_assert!(matches!(self.kind, AllocatorKind::Islip { .. }) && mask != 0);
        let (n_in, n_out) = (self.n_in, self.n_out);
        grant_uncontested(self, n_in, n_out, i, mask)
    }

    /// The general path on byte-mask requests (separable allocators).
    fn allocate_rows(&mut self, req: &[u8], busy_in: u8, busy_out: u8, out: &mut Vec<(u32, u32)>) {
        let rows: Vec<RequestRow> = req
            .iter()
            .enumerate()
            .filter(|(_, &m)| m != 0)
            .map(|(i, &m)| (i as u32, m as u128))
            .collect();
        self.allocate(&rows, busy_in as u128, busy_out as u128, out);
    }

    /// iSLIP on byte masks; every match is passed to `emit` in order.
    #[inline]
    fn islip_small<const N: usize>(
        &mut self,
        iters: u32,
        req: &[u8; N],
        busy_in: u8,
        busy_out: u8,
        emit: impl FnMut(u32, u32),
    ) {
        let (n_in, n_out) = (self.n_in, self.n_out);
        islip_small(self, n_in, n_out, iters, req, busy_in, busy_out, emit);
    }

    /// Match `reqs` (inputs listed at most once, in any order), skipping
    /// inputs in `busy_in` and outputs in `busy_out`. Matches are appended
    /// to `out` as (input, output). Deterministic: the result depends only on
    /// the request set and the allocator state, never on the order of `reqs`.
    // Inlined for the lone requester, the commonest case of a mesh's VC
    // allocation: as a call it cost 95 instructions (the general path's
    // register saves and argument spills), 60 in a function of its own
    // (callgrind); inlined, the mesh's constant-zero busy masks fold away.
    #[inline]
    pub fn allocate(
        &mut self,
        reqs: &[RequestRow],
        busy_in: u128,
        busy_out: u128,
        out: &mut Vec<(u32, u32)>,
    ) {
        // A lone requester: every output it asks for grants it, and it
        // accepts by its accept pointer (exactly iSLIP's first iteration).
        if let (AllocatorKind::Islip { .. }, [(i, m)]) = (self.kind, reqs) {
            let m = *m & !busy_out;
            if m != 0 && busy_in >> i & 1 == 0 {
                self.accept_alone(*i, m, out);
            }
            return;
        }
        // Without busy masks (the mesh's VC allocation) the short paths
        // skip the per-row tests of u128 masks.
        if busy_in | busy_out == 0 {
            self.allocate_many::<false>(reqs, 0, 0, out);
        } else {
            self.allocate_many::<true>(reqs, busy_in, busy_out, out);
        }
    }

    /// iSLIP's match for input `i` whose requested outputs `m` (non-empty)
    /// no other input asks for: it accepts by its accept pointer, and both
    /// pointers move past the match.
    #[inline(always)]
    fn accept_alone(&mut self, i: u32, m: u128, out: &mut Vec<(u32, u32)>) {
        let o = first_from_nonzero(m, self.ptr[self.ai(i as usize)] as u32);
        out.push((i, o));
        self.advance_ptrs(i, o);
    }

    /// iSLIP's pointer moves on a first-iteration accept of output `o` by
    /// input `i`: `o`'s grant pointer past `i`, `i`'s accept pointer past `o`.
    #[inline(always)]
    fn advance_ptrs(&mut self, i: u32, o: u32) {
        // (x + 1) mod n for x < n, without a division.
        self.ptr[o as usize & 127] = (if i + 1 >= self.n_in { 0 } else { i + 1 }) as u8;
        let ai = self.ai(i as usize);
        self.ptr[ai] = (if o + 1 >= self.n_out { 0 } else { o + 1 }) as u8;
    }

    /// [`Allocator::allocate`] for anything but an iSLIP allocator's lone
    /// requester (which `allocate` matches itself); `BUSY` false when both
    /// busy masks are zero.
    #[inline(never)]
    fn allocate_many<const BUSY: bool>(
        &mut self,
        reqs: &[RequestRow],
        busy_in: u128,
        busy_out: u128,
        out: &mut Vec<(u32, u32)>,
    ) {
        // No output asked for by two inputs (requests in ascending input
        // order, as the mesh gives them): every output grants its only
        // requester and each input accepts by its pointer, as in the first
        // iteration; later iterations cannot add matches. Matches are
        // listed in ascending input order, as the general path lists them.
        if let AllocatorKind::Islip { iters } = self.kind {
            let mut seen = 0u128;
            let mut dup = 0u128;
            let mut ascending = true;
            let mut prev = -1i64;
            for &(i, m) in reqs {
                ascending &= prev < i as i64;
                prev = i as i64;
                if !BUSY || busy_in >> i & 1 == 0 {
                    let m = if BUSY { m & !busy_out } else { m };
                    dup |= seen & m;
                    seen |= m;
                }
            }
            if dup == 0 && ascending {
                for &(i, m) in reqs {
                    let m = if BUSY { m & !busy_out } else { m };
                    if m != 0 && (!BUSY || busy_in >> i & 1 == 0) {
                        self.accept_alone(i, m, out);
                    }
                }
                return;
            }
            // The general path on u64 masks in stack rows, for allocators
            // of up to 64 ports (a mesh's VC allocators: 5 ports × V).
            if self.n_in <= 32 && self.n_out <= 32 {
                return self.islip_u64::<32>(iters, reqs, busy_in, busy_out, out);
            }
            if self.n_in <= 64 && self.n_out <= 64 {
                return self.islip_u64::<64>(iters, reqs, busy_in, busy_out, out);
            }
        }
        self.allocate_general(reqs, busy_in, busy_out, out);
    }

    /// iSLIP as [`Allocator::allocate_general`] computes it, for at most
    /// `S ≤ 64` inputs and outputs (`S` a power of two): masks in `u64`,
    /// per-output requesters and per-input grants in stack rows indexed
    /// without bounds checks. Same matches, order and pointer moves
    /// (tested).
    fn islip_u64<const S: usize>(
        &mut self,
        iters: u32,
        reqs: &[RequestRow],
        busy_in: u128,
        busy_out: u128,
        out: &mut Vec<(u32, u32)>,
    ) {
        debug_assert!(S.is_power_of_two() && S <= 64);
        debug_assert!(self.n_in as usize <= S && self.n_out as usize <= S);
        let (busy_in, busy_out) = (busy_in as u64, busy_out as u64);
        // Per output, the mask of requesting inputs.
        let mut by_out = [0u64; S];
        let mut outs_requested = 0u64;
        let mut ins_requesting = 0u64;
        for &(i, m) in reqs {
            let m = m as u64 & !busy_out;
            if m == 0 || busy_in >> (i & 63) & 1 == 1 {
                continue;
            }
            ins_requesting |= 1 << (i & 63);
            outs_requested |= m;
            let mut mm = m;
            while mm != 0 {
                let o = mm.trailing_zeros() as usize;
                mm &= mm - 1;
                by_out[o % S] |= 1 << (i & 63);
            }
        }
        // Per input: the outputs granting it (cleared by its accept).
        let mut grants_to = [0u64; S];
        let mut in_matched = busy_in;
        let mut out_matched = busy_out;
        for iter in 0..iters {
            // Grant phase: each unmatched output grants one unmatched input.
            let mut any = false;
            let mut om = outs_requested & !out_matched;
            while om != 0 {
                let o = om.trailing_zeros();
                om &= om - 1;
                let cand = by_out[o as usize % S] & !in_matched;
                if cand != 0 {
                    let i = first_from_u64(cand, self.ptr[o as usize & 127] as u32);
                    grants_to[i as usize % S] |= 1 << o;
                    any = true;
                }
            }
            if !any {
                break;
            }
            // Accept phase: each input accepts one grant.
            let mut im = ins_requesting & !in_matched;
            while im != 0 {
                let i = im.trailing_zeros();
                im &= im - 1;
                let g = std::mem::take(&mut grants_to[i as usize % S]);
                if g != 0 {
                    let o = first_from_u64(g, self.ptr[self.ai(i as usize)] as u32);
                    in_matched |= 1 << i;
                    out_matched |= 1 << o;
                    out.push((i, o));
                    if iter == 0 {
                        self.advance_ptrs(i, o);
                    }
                }
            }
        }
    }

    /// [`Allocator::allocate`] without the short paths: the reference
    /// they are tested against.
    fn allocate_general(
        &mut self,
        reqs: &[RequestRow],
        busy_in: u128,
        busy_out: u128,
        out: &mut Vec<(u32, u32)>,
    ) {
        // Transpose: per output, the mask of requesting inputs.
        let mut by_out = std::mem::take(&mut self.by_out);
        let mut by_in = std::mem::take(&mut self.by_in);
        let mut outs_requested = 0u128;
        let mut ins_requesting = 0u128;
        for &(i, m) in reqs {
            if busy_in >> i & 1 == 1 {
                continue;
            }
            let m = m & !busy_out;
            if m == 0 {
                continue;
            }
            ins_requesting |= 1u128 << i;
            let mut mm = m;
            while mm != 0 {
                let o = mm.trailing_zeros();
                by_out[o as usize] |= 1u128 << i;
                mm &= mm - 1;
            }
            outs_requested |= m;
        }
        if outs_requested == 0 {
            self.by_out = by_out;
            self.by_in = by_in;
            return;
        }
        for &(i, m) in reqs {
            if ins_requesting >> i & 1 == 1 {
                by_in[i as usize] = m & !busy_out;
            }
        }
        match self.kind {
            AllocatorKind::Islip { iters } => {
                let mut in_matched = busy_in;
                let mut out_matched = busy_out;
                for iter in 0..iters {
                    // Grant phase: each unmatched output grants one unmatched input.
                    let grants_to = &mut self.scratch_in; // per input: outputs granting it
                    let mut any = false;
                    let mut om = outs_requested & !out_matched;
                    while om != 0 {
                        let o = om.trailing_zeros();
                        om &= om - 1;
                        let cand = by_out[o as usize] & !in_matched;
                        if let Some(i) = first_from(cand, self.ptr[o as usize & 127] as u32) {
                            grants_to[i as usize] |= 1u128 << o;
                            any = true;
                        }
                    }
                    if !any {
                        break;
                    }
                    let grants_to = &mut self.scratch_in;
                    // Accept phase: each input accepts one grant.
                    let mut im = ins_requesting & !in_matched;
                    while im != 0 {
                        let i = im.trailing_zeros();
                        im &= im - 1;
                        let g = std::mem::take(&mut grants_to[i as usize]);
                        let ai = (self.n_out + i) as usize & 255;
                        if let Some(o) = first_from(g, self.ptr[ai] as u32) {
                            in_matched |= 1u128 << i;
                            out_matched |= 1u128 << o;
                            out.push((i, o));
                            if iter == 0 {
                                self.ptr[o as usize & 127] = ((i + 1) % self.n_in) as u8;
                                self.ptr[ai] = ((o + 1) % self.n_out) as u8;
                            }
                        }
                    }
                }
            }
            AllocatorKind::SeparableInputFirst => {
                // Each input picks one output; each output picks one of its pickers.
                let picked_by = &mut self.scratch_out;
                let mut im = ins_requesting;
                while im != 0 {
                    let i = im.trailing_zeros();
                    im &= im - 1;
                    if let Some(o) = self.in_arb[i as usize].pick(by_in[i as usize]) {
                        picked_by[o as usize] |= 1u128 << i;
                    }
                }
                let mut om = outs_requested;
                while om != 0 {
                    let o = om.trailing_zeros();
                    om &= om - 1;
                    let pb = std::mem::take(&mut picked_by[o as usize]);
                    if let Some(i) = self.out_arb[o as usize].pick(pb) {
                        self.out_arb[o as usize].update(i);
                        self.in_arb[i as usize].update(o);
                        out.push((i, o));
                    }
                }
            }
            AllocatorKind::SeparableOutputFirst => {
                let granted = &mut self.scratch_in;
                let mut om = outs_requested;
                while om != 0 {
                    let o = om.trailing_zeros();
                    om &= om - 1;
                    if let Some(i) = self.out_arb[o as usize].pick(by_out[o as usize]) {
                        granted[i as usize] |= 1u128 << o;
                    }
                }
                let mut im = ins_requesting;
                while im != 0 {
                    let i = im.trailing_zeros();
                    im &= im - 1;
                    let g = std::mem::take(&mut granted[i as usize]);
                    if let Some(o) = self.in_arb[i as usize].pick(g) {
                        self.in_arb[i as usize].update(o);
                        self.out_arb[o as usize].update(i);
                        out.push((i, o));
                    }
                }
            }
        }
        // Restore the all-zero invariant of the scratch rows.
        let mut om = outs_requested;
        while om != 0 {
            let o = om.trailing_zeros();
            om &= om - 1;
            by_out[o as usize] = 0;
        }
        let mut im = ins_requesting;
        while im != 0 {
            let i = im.trailing_zeros();
            im &= im - 1;
            by_in[i as usize] = 0;
            self.scratch_in[i as usize] = 0;
        }
        self.by_out = by_out;
        self.by_in = by_in;
    }
}

/// iSLIP on byte masks over the pointers `p` of an allocator with `n_in`
/// inputs and `n_out` outputs; every match is passed to `emit` in order.
#[allow(clippy::too_many_arguments)]
#[inline]
fn islip_small<P: IslipPtrs, const N: usize>(
    p: &mut P,
    n_in: u32,
    n_out: u32,
    iters: u32,
    req: &[u8; N],
    busy_in: u8,
    busy_out: u8,
    mut emit: impl FnMut(u32, u32),
) {
    // Per input: its requests that are still possible.
    let mut m_in = [0u8; 8];
    let mut ins = 0u8;
    // Outputs requested so far, and outputs requested by two inputs.
    let mut seen = 0u8;
    let mut dup = 0u8;
    // Branch-free over a fixed number of inputs (unrolled).
    for (i, &m0) in req.iter().enumerate() {
        let m = if busy_in >> i & 1 == 1 {
            0
        } else {
            m0 & !busy_out
        };
        m_in[i & 7] = m;
        ins |= ((m != 0) as u8) << i;
        dup |= seen & m;
        seen |= m;
    }
    let wrap = |x: u32, n: u32| if x + 1 >= n { 0 } else { x + 1 };
    // No output asked for by two inputs: every output grants its only
    // requester and each input accepts by its pointer; later iterations
    // cannot add matches.
    if dup == 0 {
        let mut im = ins;
        while im != 0 {
            let i = im.trailing_zeros() as usize;
            im &= im - 1;
            let o = first8(m_in[i], p.accept_ptr(i));
            emit(i as u32, o);
            p.set_ptrs(
                i,
                o as usize,
                wrap(i as u32, n_in) as u8,
                wrap(o, n_out) as u8,
            );
        }
        return;
    }
    let mut by_out = [0u8; 8];
    let mut im = ins;
    while im != 0 {
        let i = im.trailing_zeros() as usize;
        im &= im - 1;
        let mut mm = m_in[i];
        while mm != 0 {
            let o = mm.trailing_zeros() as usize;
            mm &= mm - 1;
            by_out[o] |= 1 << i;
        }
    }
    let outs = seen;
    let mut in_matched = busy_in;
    let mut out_matched = busy_out;
    for iter in 0..iters {
        let mut grants_to = [0u8; 8];
        let mut any = false;
        let mut om = outs & !out_matched;
        while om != 0 {
            let o = om.trailing_zeros() as usize;
            om &= om - 1;
            let cand = by_out[o] & !in_matched;
            if cand != 0 {
                let i = first8(cand, p.grant_ptr(o)) as usize;
                grants_to[i] |= 1 << o;
                any = true;
            }
        }
        if !any {
            break;
        }
        let mut im = ins & !in_matched;
        while im != 0 {
            let i = im.trailing_zeros() as usize;
            im &= im - 1;
            let g = grants_to[i];
            if g != 0 {
                let o = first8(g, p.accept_ptr(i));
                in_matched |= 1 << i;
                out_matched |= 1 << o;
                emit(i as u32, o);
                if iter == 0 {
                    p.set_ptrs(
                        i,
                        o as usize,
                        wrap(i as u32, n_in) as u8,
                        wrap(o, n_out) as u8,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nonzero_bytes` against a byte-by-byte loop.
    #[test]
    fn nonzero_bytes_marks_the_nonzero_bytes() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for k in 0..10_000u64 {
            // Bytes of random values, with zero and 0x80 bytes mixed in.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mask = [0, !0, 0xff00_ff00_ff00_ff00, 0x8000_0000_0000_0080][(k % 4) as usize];
            let v = if k % 5 == 0 {
                x & 0x8080_8080_8080_8080
            } else {
                x & mask | k
            };
            let want = (0..8).fold(0u8, |m, i| m | ((v >> (8 * i) & 0xff != 0) as u8) << i);
            assert_eq!(nonzero_bytes(v), want, "{v:#x}");
        }
        for i in 0..8 {
            for b in [1u64, 0x80, 0xff] {
                assert_eq!(nonzero_bytes(b << (8 * i)), 1 << i);
            }
        }
        assert_eq!(nonzero_bytes(0), 0);
        assert_eq!(nonzero_bytes(!0), 0xff);
    }

    use proptest::prelude::*;

    fn kinds() -> Vec<AllocatorKind> {
        vec![
            AllocatorKind::SeparableInputFirst,
            AllocatorKind::SeparableOutputFirst,
            AllocatorKind::Islip { iters: 1 },
            AllocatorKind::Islip { iters: 3 },
        ]
    }

    /// Port counts for the allocator properties: any of 1..=128, or one
    /// at an edge of the allocator's paths (u64 rows of 32 and 64, u128
    /// masks of 128) half of the time.
    fn sizes() -> impl Strategy<Value = usize> {
        prop_oneof![
            1usize..=128,
            prop::sample::select(vec![1usize, 2, 31, 32, 33, 63, 64, 65, 127, 128]),
        ]
    }

    proptest! {
        #[test]
        fn matches_are_valid(rows in proptest::collection::vec(any::<u8>(), 1..8), rounds in 1usize..5) {
            for kind in kinds() {
                for arb in [ArbiterKind::RoundRobin, ArbiterKind::Matrix] {
                    let mut a = Allocator::new(kind, arb, 8, 8);
                    for _ in 0..rounds {
                        let reqs: Vec<RequestRow> = rows.iter().enumerate().map(|(i, m)| (i as u32, *m as u128)).collect();
                        let mut out = Vec::new();
                        a.allocate(&reqs, 0, 0, &mut out);
                        let mut ins = 0u128; let mut outs = 0u128;
                        for (i, o) in &out {
                            prop_assert!(rows[*i as usize] >> o & 1 == 1, "granted an unrequested pair");
                            prop_assert!(ins >> i & 1 == 0 && outs >> o & 1 == 0, "double grant");
                            ins |= 1 << i; outs |= 1 << o;
                        }
                        // Maximal for iSLIP with enough iterations is not guaranteed; but
                        // at least one match whenever any request exists.
                        if rows.iter().any(|m| *m != 0) { prop_assert!(!out.is_empty()); }
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn small_path_equals_general_path(rounds in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 5), 0u8..32, 0u8..32), 1..20), iters in 1u32..3) {
            for kind in kinds().into_iter().chain([AllocatorKind::Islip { iters }]) {
                let mut a = Allocator::new(kind, ArbiterKind::RoundRobin, 5, 5);
                let mut b = a.clone();
                let mut c = a.clone();
                let mut c2 = a.clone();
                for (req, bi, bo) in &rounds {
                    let req: Vec<u8> = req.iter().map(|m| m & 0x1f).collect();
                    let rows: Vec<RequestRow> = req.iter().enumerate().filter(|(_, &m)| m != 0).map(|(i, &m)| (i as u32, m as u128)).collect();
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    a.allocate(&rows, *bi as u128, *bo as u128, &mut x);
                    b.allocate_small(&req, *bi, *bo, &mut y);
                    let fixed: [u8; 5] = req.as_slice().try_into().unwrap();
                    let mut zs = [(0u8, 0u8); 5];
                    let nz = c.allocate_fixed(&fixed, *bi, *bo, &mut zs);
                    let z: Vec<(u32, u32)> = zs[..nz].iter().map(|&(i, o)| (i as u32, o as u32)).collect();
                    prop_assert_eq!(&z, &y, "allocate_fixed differs from allocate_small (order included)");
                    // Requests without conflicts (each output kept by the first
                    // input asking for it) and nothing busy: grant_uncontested per
                    // input gives the same matches and pointers as allocate_small.
                    if matches!(kind, AllocatorKind::Islip { .. }) {
                        let mut taken = 0u8;
                        let free: Vec<u8> = req.iter().map(|&m| { let x = m & !taken; taken |= x; x }).collect();
                        let mut d = c2.clone();
                        let u: Vec<(u32, u32)> = (0..5).filter(|&i| free[i] != 0).map(|i| (i as u32, d.grant_uncontested(i as u32, free[i]))).collect();
                        let mut e = c2.clone();
                        let mut w = Vec::new();
                        e.allocate_small(&free, 0, 0, &mut w);
                        prop_assert_eq!(&u, &w);
                        prop_assert_eq!(&d.ptr[..], &e.ptr[..]);
                    }
                    c2 = c.clone();
                    x.sort_unstable(); y.sort_unstable();
                    prop_assert_eq!(x, y);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn small_islip_equals_allocator(rounds in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 5), 0u8..32, 0u8..32, any::<bool>()), 1..30), iters in 1u32..4) {
            let mut a = Allocator::new(AllocatorKind::Islip { iters }, ArbiterKind::RoundRobin, 5, 5);
            let mut s = SmallIslip::default();
            for (req, bi, bo, uncontested) in &rounds {
                let req: [u8; 5] = std::array::from_fn(|k| req[k] & 0x1f);
                if *uncontested {
                    for (i, m) in uncontested_rows(&req) {
                        prop_assert_eq!(s.grant_uncontested::<5>(i, m), a.grant_uncontested(i, m));
                    }
                } else {
                    let (mut x, mut y) = ([(0u8, 0u8); 5], [(0u8, 0u8); 5]);
                    let nx = a.allocate_fixed(&req, *bi, *bo, &mut x);
                    let ny = s.allocate_fixed::<5>(iters, &req, *bi, *bo, &mut y);
                    prop_assert_eq!(&x[..nx], &y[..ny]);
                }
                let sp = s.pointers();
                prop_assert_eq!(&a.ptr[..5], &sp[..5]);
                prop_assert_eq!(&a.ptr[5..10], &sp[8..13]);
            }
        }
    }

    proptest! {
        #[test]
        fn request_order_does_not_matter(rounds in proptest::collection::vec((proptest::collection::vec(any::<u32>(), 1..12), any::<u32>(), any::<u32>()), 1..20), iters in 1u32..3) {
            // Ascending rows may take the no-conflict fast path; descending
            // rows (more than one) always take the general path.
            let mut a = Allocator::new(AllocatorKind::Islip { iters }, ArbiterKind::RoundRobin, 20, 20);
            let mut b = a.clone();
            for (masks, bi, bo) in &rounds {
                let rows: Vec<RequestRow> = masks.iter().enumerate().filter(|(_, &m)| m & 0xfffff != 0).map(|(i, &m)| (i as u32 + 3, (m & 0xfffff) as u128)).collect();
                let rev: Vec<RequestRow> = rows.iter().rev().copied().collect();
                let (mut x, mut y) = (Vec::new(), Vec::new());
                a.allocate(&rows, (*bi & 0xfffff) as u128, (*bo & 0xfffff) as u128, &mut x);
                b.allocate(&rev, (*bi & 0xfffff) as u128, (*bo & 0xfffff) as u128, &mut y);
                prop_assert_eq!(&x, &y, "same matches in the same order");
            }
        }
    }

    proptest! {
        #[test]
        fn first_from_nonzero_equals_first_from(mask in any::<u128>(), small in any::<bool>(), ptr in 0u32..160) {
            let mask = if small { mask as u64 as u128 } else { mask };
            prop_assume!(mask != 0);
            prop_assert_eq!(Some(first_from_nonzero(mask, ptr)), first_from(mask, ptr));
        }

        /// `allocate` (lone requester, conflict-free, u64-row and general
        /// paths) against the general path alone, from random pointers:
        /// same matches in the same order, same pointers. Inputs and
        /// outputs are sized independently, often at the edges of the
        /// paths' limits (32, 64, 128 ports), where a path chosen on the
        /// wrong side of a limit or a mask bit past it would show.
        #[test]
        fn allocate_equals_general_path(
            n_in in sizes(),
            n_out in sizes(),
            seed_ptr in proptest::collection::vec(any::<u8>(), 256),
            iters in 1u32..4,
            rounds in proptest::collection::vec(
                (proptest::collection::vec((any::<u128>(), 0u32..4), 1..10), any::<u128>(), any::<u128>(), 0u8..5, any::<u64>()),
                1..20,
            ),
        ) {
            let mut a = Allocator::new(AllocatorKind::Islip { iters }, ArbiterKind::RoundRobin, n_in, n_out);
            for (o, p) in a.ptr.iter_mut().enumerate().take(n_out + n_in) {
                // Grant pointers (outputs first) range over inputs, accept
                // pointers over outputs.
                let n = if o < n_out { n_in } else { n_out };
                *p = (seed_ptr[o] as usize % n) as u8;
            }
            let mut b = a.clone();
            let ones = |n: usize| if n == 128 { u128::MAX } else { (1u128 << n) - 1 };
            let (all_in, all_out) = (ones(n_in), ones(n_out));
            for (rows, bi, bo, busy, pick) in &rounds {
                // Rows in ascending input order (the conflict-free path's
                // condition), sparse masks (few bits: often conflict-free),
                // dense ones, or random inputs in any order.
                let mut used = 0u128;
                let mut reqs = Vec::new();
                for (k, &(m, density)) in rows.iter().enumerate() {
                    let i = ((*pick >> (k * 6 % 60)) as usize + k * 7) % n_in;
                    if used >> i & 1 == 1 {
                        continue;
                    }
                    used |= 1 << i;
                    let m = match density {
                        0 => m & all_out,
                        1 => (1u128 << (m % n_out as u128)) | (1u128 << ((m >> 64) % n_out as u128)),
                        _ => 1u128 << (m % n_out as u128),
                    };
                    reqs.push((i as u32, m));
                }
                if pick & 1 == 0 {
                    reqs.sort_unstable();
                }
                // Busy masks: none, random, sparse, or the last input and
                // output (the top bit of a 64- or 128-bit row).
                let (bi, bo) = match busy {
                    0 => (0, 0),
                    1 => (bi & all_in, 0),
                    2 => (0, bo & all_out),
                    3 => (bi & bi >> 7 & all_in, bo & bo >> 7 & all_out),
                    _ => (1u128 << (n_in - 1), 1u128 << (n_out - 1)),
                };
                let (mut x, mut y) = (Vec::new(), Vec::new());
                a.allocate(&reqs, bi, bo, &mut x);
                b.allocate_general(&reqs, bi, bo, &mut y);
                prop_assert_eq!(&x, &y, "matches and their order");
                prop_assert_eq!(&a.ptr[..], &b.ptr[..], "pointers");
            }
        }
    }

    /// `req` made conflict-free for `grant_uncontested`: each output kept
    /// by the first input asking for it; the inputs left with a request,
    /// in ascending order, with their requests.
    fn uncontested_rows(req: &[u8]) -> Vec<(u32, u8)> {
        let mut taken = 0u8;
        let mut rows = Vec::new();
        for (i, &m) in req.iter().enumerate() {
            let m = m & !taken;
            taken |= m;
            if m != 0 {
                rows.push((i as u32, m));
            }
        }
        rows
    }

    /// The former [`SmallIslip`]: pointers as positions, allocation by
    /// [`islip_small`] (loops over inputs and outputs), the reference for
    /// the all-rows-at-once version.
    #[derive(Clone, Copy, Debug, Default)]
    struct RefSmall {
        ptr: [u8; 16],
    }

    impl IslipPtrs for RefSmall {
        fn grant_ptr(&self, o: usize) -> u32 {
            self.ptr[o & 7] as u32
        }
        fn accept_ptr(&self, i: usize) -> u32 {
            self.ptr[8 + (i & 7)] as u32
        }
        fn set_ptrs(&mut self, i: usize, o: usize, g: u8, a: u8) {
            self.ptr[o & 7] = g;
            self.ptr[8 + (i & 7)] = a;
        }
    }

    /// A [`SmallIslip`] with the given pointer positions (each below 8).
    fn small_at(ptr: [u8; 16]) -> SmallIslip {
        SmallIslip {
            below: ptr.map(|p| ((1u32 << p) - 1) as u8),
        }
    }

    /// Rounds of `allocate_fixed` (or, with `uncontested`, of
    /// `grant_uncontested` per input on conflict-free requests) on both
    /// versions from the same pointers: same matches, same order, same
    /// pointers after every round.
    fn small_vs_ref<const N: usize>(
        ptr: [u8; 16],
        iters: u32,
        rounds: &[(Vec<u8>, u8, u8, bool)],
    ) -> Result<(), TestCaseError> {
        let n = N as u8;
        // Pointers below N (the only positions iSLIP gives them).
        let ptr: [u8; 16] = std::array::from_fn(|k| ptr[k] % n);
        let mut s = small_at(ptr);
        let mut r = RefSmall { ptr };
        prop_assert_eq!(s.pointers(), r.ptr);
        let lanes = ((1u32 << N) - 1) as u8;
        for (req, bi, bo, uncontested) in rounds {
            let req: [u8; N] = std::array::from_fn(|k| req[k] & lanes);
            if *uncontested {
                for (i, m) in uncontested_rows(&req) {
                    let o = s.grant_uncontested::<N>(i, m);
                    prop_assert_eq!(o, grant_uncontested(&mut r, n as u32, n as u32, i, m));
                }
            } else {
                let mut x = [(0u8, 0u8); 8];
                let nx = s.allocate_fixed::<N>(iters, &req, *bi, *bo, &mut x);
                let mut y = Vec::new();
                islip_small(&mut r, n as u32, n as u32, iters, &req, *bi, *bo, |i, o| {
                    y.push((i as u8, o as u8))
                });
                prop_assert_eq!(&x[..nx], &y[..], "matches and their order");
            }
            prop_assert_eq!(s.pointers(), r.ptr, "pointers");
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn small_islip_equals_reference(
            ptr in any::<[u8; 16]>(),
            iters in 1u32..4,
            rounds in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 8), any::<u8>(), any::<u8>(), proptest::bool::weighted(0.2)),
                1..40,
            ),
        ) {
            small_vs_ref::<1>(ptr, iters, &rounds)?;
            small_vs_ref::<2>(ptr, iters, &rounds)?;
            small_vs_ref::<3>(ptr, iters, &rounds)?;
            small_vs_ref::<4>(ptr, iters, &rounds)?;
            small_vs_ref::<5>(ptr, iters, &rounds)?;
            small_vs_ref::<6>(ptr, iters, &rounds)?;
            small_vs_ref::<7>(ptr, iters, &rounds)?;
            small_vs_ref::<8>(ptr, iters, &rounds)?;
        }

        #[test]
        fn transpose8_transposes(x in any::<u64>()) {
            let t = transpose8(x);
            for r in 0..8 {
                for c in 0..8 {
                    prop_assert_eq!(t >> (8 * c + r) & 1, x >> (8 * r + c) & 1);
                }
            }
        }
    }

    /// Dense requests (every input asking for most outputs) with the
    /// pointers at every position: the rows-at-once version against the
    /// reference, exhaustively over the pointers of a 3×3 allocator.
    #[test]
    fn small_islip_all_pointer_states_3x3() {
        for code in 0..3u32.pow(6) {
            let mut ptr = [0u8; 16];
            for k in 0..6 {
                let p = (code / 3u32.pow(k as u32) % 3) as u8;
                ptr[if k < 3 { k } else { 8 + k - 3 }] = p;
            }
            for req in 0..512u32 {
                let rows = vec![
                    (req & 7) as u8,
                    (req >> 3 & 7) as u8,
                    (req >> 6 & 7) as u8,
                    0,
                    0,
                    0,
                    0,
                    0,
                ];
                for iters in 1..3 {
                    small_vs_ref::<3>(ptr, iters, &[(rows.clone(), 0, 0, false)]).unwrap();
                }
            }
        }
    }

    #[test]
    fn islip_desynchronises_pointers() {
        // Two inputs both requesting both outputs: after the first round the
        // pointers desynchronise and every later round matches both.
        let mut a = Allocator::new(
            AllocatorKind::Islip { iters: 1 },
            ArbiterKind::RoundRobin,
            2,
            2,
        );
        let reqs = [(0, 0b11), (1, 0b11)];
        let mut out = Vec::new();
        a.allocate(&reqs, 0, 0, &mut out);
        assert_eq!(out.len(), 1);
        for _ in 0..5 {
            out.clear();
            a.allocate(&reqs, 0, 0, &mut out);
            assert_eq!(out.len(), 2);
        }
    }

    /// For each kind and both arbiters, a 4×4 allocator given the same
    /// requests three times matches `want` (sorted) every time, whatever
    /// its arbiters' state.
    fn same_match_thrice(
        kinds: &[AllocatorKind],
        reqs: &[RequestRow],
        busy: (u128, u128),
        want: &[(u32, u32)],
    ) {
        for &kind in kinds {
            for arb in [ArbiterKind::RoundRobin, ArbiterKind::Matrix] {
                let mut a = Allocator::new(kind, arb, 4, 4);
                for _ in 0..3 {
                    let mut out = Vec::new();
                    a.allocate(reqs, busy.0, busy.1, &mut out);
                    out.sort_unstable();
                    assert_eq!(out, want, "{kind:?} {arb:?}");
                }
            }
        }
    }

    const SEPARABLE: [AllocatorKind; 2] = [
        AllocatorKind::SeparableInputFirst,
        AllocatorKind::SeparableOutputFirst,
    ];

    /// Busy inputs and outputs take no part, for every allocator and
    /// arbiter: input 0 and output 0 busy, then input 2 (a mask shifted
    /// the wrong way still tests input 0's bit, mutant 680:24) and output 3.
    #[test]
    fn busy_masks_exclude() {
        let islip = [
            AllocatorKind::Islip { iters: 1 },
            AllocatorKind::Islip { iters: 2 },
        ];
        for kinds in [&islip[..], &SEPARABLE[..]] {
            same_match_thrice(kinds, &[(0, 0b1), (1, 0b11)], (0b1, 0b1), &[(1, 1)]);
            same_match_thrice(
                kinds,
                &[(0, 0b1000), (1, 0b1001), (2, 0b0001)],
                (0b100, 0b1000),
                &[(1, 0)],
            );
        }
    }

    /// Separable allocators on conflict-free requests, input 0 idle: each
    /// requesting input asks for one output of its own, so every one of
    /// them is matched. (`matches_are_valid`
    /// checks only that some match exists, and its input 0 almost always
    /// requests: an input-first allocator reading no requests but input
    /// 0's, mutant 702:31, passes it.)
    #[test]
    fn separable_matches_every_conflict_free_input() {
        same_match_thrice(
            &SEPARABLE,
            &[(1, 0b0100), (2, 0b0001), (3, 0b0010)],
            (0, 0),
            &[(1, 2), (2, 0), (3, 1)],
        );
    }
}
