//! Flits as compact references into the network's packet table.

/// A flit: 8 bytes, `Copy`. The packet's source, destination, class and
/// timestamps live in the mesh's packet table at index `pkt`; a flit only
/// says which packet it belongs to and where in the packet it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flit {
    /// Slot of the packet in the packet table.
    pub pkt: u32,
    /// Position of the flit in its packet, 0-based.
    pub seq: u16,
    /// Bit 0: head; bit 1: tail; bits 2..16: routers the flit has been
    /// switched through (see [`Flit::hops`]).
    pub flags: u16,
}

impl Flit {
    const HEAD: u16 = 1;
    const TAIL: u16 = 2;

    /// Flit `seq` of a packet of `size` flits stored at slot `pkt`.
    #[inline]
    pub fn new(pkt: u32, seq: u16, size: u16) -> Self {
        let mut flags = 0;
        if seq == 0 {
            flags |= Self::HEAD;
        }
        if seq + 1 == size {
            flags |= Self::TAIL;
        }
        Flit { pkt, seq, flags }
    }
    /// Whether this is the packet's first flit.
    #[inline]
    pub fn is_head(self) -> bool {
        self.flags & Self::HEAD != 0
    }
    /// Whether this is the packet's last flit.
    #[inline]
    pub fn is_tail(self) -> bool {
        self.flags & Self::TAIL != 0
    }
    /// Largest hop count a flit can carry.
    pub const MAX_HOPS: u16 = u16::MAX >> 2;
    /// Routers this flit has been switched through, counted by
    /// [`Flit::add_hop`] (the mesh counts them on head flits only, so that
    /// a packet's hop count travels with it instead of living in a table
    /// that every router would write).
    #[inline]
    pub fn hops(self) -> u16 {
        self.flags >> 2
    }
    /// Count one more router. A caller must keep paths within
    /// [`Flit::MAX_HOPS`] (the mesh checks its diameter when it is built).
    #[inline]
    pub fn add_hop(&mut self) {
        debug_assert!(self.hops() < Self::MAX_HOPS, "hop count overflow");
        self.flags += 4;
    }
    /// [`Flit::add_hop`] on a head flit, nothing on others (without a
    /// branch: a router switches heads and body flits in no predictable
    /// order).
    #[inline]
    pub fn add_hop_if_head(&mut self) {
        debug_assert!(
            !self.is_head() || self.hops() < Self::MAX_HOPS,
            "hop count overflow"
        );
        self.flags += (self.flags & Self::HEAD) << 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn single_flit_packet_is_head_and_tail() {
        let f = Flit::new(3, 0, 1);
        assert!(f.is_head() && f.is_tail());
        let g = Flit::new(3, 1, 4);
        assert!(!g.is_head() && !g.is_tail());
        assert!(Flit::new(3, 3, 4).is_tail());
        assert_eq!(std::mem::size_of::<Flit>(), 8);
    }
    #[test]
    fn add_hop_if_head_counts_heads_only() {
        let mut h = Flit::new(7, 0, 4);
        let mut b = Flit::new(7, 1, 4);
        for k in 1..=5u16 {
            h.add_hop_if_head();
            b.add_hop_if_head();
            assert_eq!((h.hops(), b.hops()), (k, 0));
        }
        assert!(h.is_head() && !h.is_tail() && !b.is_head() && !b.is_tail());
    }
    #[test]
    fn hop_count_leaves_head_and_tail_bits_alone() {
        let mut f = Flit::new(7, 0, 1);
        for k in 1..=300u16 {
            f.add_hop();
            assert_eq!(f.hops(), k);
        }
        assert!(f.is_head() && f.is_tail());
        let mut g = Flit::new(7, 2, 4);
        g.add_hop();
        assert!(!g.is_head() && !g.is_tail());
        assert_eq!(g.hops(), 1);
    }
}
