//! Flits as compact references into the network's packet table.

/// A flit: 4 bytes, `Copy`. The packet's source, destination, class and
/// timestamps live in the mesh's packet table at slot [`Flit::pkt`]; a
/// flit only says which packet it belongs to and whether it is the
/// packet's head or tail. (4 bytes, so that a VC record and a ring of
/// eight flits share one cache line: [`crate::VcState`]. A packet's hop
/// count does not travel with it: every routing the mesh offers is
/// minimal, so the mesh derives it from the packet's source and
/// destination.)
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Flit {
    /// Bit 0: head; bit 1: tail; bits 2..32: the packet's slot.
    w: u32,
}

impl Flit {
    const HEAD: u32 = 1;
    const TAIL: u32 = 2;
    /// Number of packet slots a flit can name (2^30): slots are
    /// `0..MAX_PACKETS`.
    pub const MAX_PACKETS: u32 = 1 << 30;

    /// Flit `seq` of a packet of `size` flits stored at slot `pkt <
    /// MAX_PACKETS` (a caller must keep its slots below the limit; the
    /// mesh refuses packets past it).
    #[inline]
    pub fn new(pkt: u32, seq: u16, size: u16) -> Self {
        debug_assert!(pkt < Self::MAX_PACKETS, "packet slot out of range");
        let mut w = pkt << 2;
        if seq == 0 {
            w |= Self::HEAD;
        }
        if seq + 1 == size {
            w |= Self::TAIL;
        }
        Flit { w }
    }
    /// Slot of the packet in the packet table.
    #[inline]
    pub fn pkt(self) -> u32 {
        self.w >> 2
    }
    /// Whether this is the packet's first flit.
    #[inline]
    pub fn is_head(self) -> bool {
        self.w & Self::HEAD != 0
    }
    /// Whether this is the packet's last flit.
    #[inline]
    pub fn is_tail(self) -> bool {
        self.w & Self::TAIL != 0
    }
}

impl std::fmt::Debug for Flit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flit")
            .field("pkt", &self.pkt())
            .field("head", &self.is_head())
            .field("tail", &self.is_tail())
            .finish()
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
        assert_eq!(std::mem::size_of::<Flit>(), 4);
    }
    #[test]
    fn slot_and_flags_are_independent() {
        for pkt in [0, 1, 12345, Flit::MAX_PACKETS - 1] {
            for (seq, size) in [(0u16, 1u16), (0, 4), (1, 4), (3, 4)] {
                let f = Flit::new(pkt, seq, size);
                assert_eq!(f.pkt(), pkt);
                assert_eq!(f.is_head(), seq == 0);
                assert_eq!(f.is_tail(), seq + 1 == size);
            }
        }
    }
}
