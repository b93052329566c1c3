//! Link timing.
//!
//! Convention (BookSim2's channels): a link of latency `L` delivers an item
//! sent in cycle `t` to the far end's input stage in cycle `t + L + 1`
//! (`L` cycles of wire plus the input register). So the reference router's
//! 1-cycle links give 5 cycles per hop with 1-cycle RC/VA/SA/ST stages.
//! A link with `cycles_per_flit = n` accepts a new item only every `n`
//! cycles (a slower wafer-edge link) and delivers it `n - 1` cycles later
//! than a full-speed link would (serialisation).

/// The timing of a link without storage: latency, bandwidth and the next
/// cycle it may accept an item. The mesh engine keeps items in flight in its
/// timing wheel and uses this for when they arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTiming {
    latency: u32,
    cycles_per_flit: u32,
    next_free: u64,
}

impl LinkTiming {
    /// A link of `latency ≥ 1` cycles taking one item every `cycles_per_flit ≥ 1` cycles.
    pub fn new(latency: u32, cycles_per_flit: u32) -> Self {
        assert!(latency >= 1 && cycles_per_flit >= 1);
        LinkTiming {
            latency,
            cycles_per_flit,
            next_free: 0,
        }
    }
    /// Latency in cycles.
    #[inline]
    pub fn latency(&self) -> u32 {
        self.latency
    }
    /// Cycles per item.
    #[inline]
    pub fn cycles_per_flit(&self) -> u32 {
        self.cycles_per_flit
    }
    /// Whether an item may be sent in cycle `t`.
    #[inline]
    pub fn can_send(&self, t: u64) -> bool {
        t >= self.next_free
    }
    /// Arrival cycle of an item sent at `t` (BookSim convention, see module docs).
    #[inline]
    pub fn arrival(&self, t: u64) -> u64 {
        t + self.latency as u64 + self.cycles_per_flit as u64
    }
    /// Send in cycle `t`: occupy the link and return the arrival cycle.
    #[inline]
    pub fn send(&mut self, t: u64) -> u64 {
        debug_assert!(self.can_send(t));
        self.next_free = t + self.cycles_per_flit as u64;
        self.arrival(t)
    }
    /// Send in the first cycle from `t` on that the link is free (items
    /// waiting in an output queue, in the order of the calls): occupy the
    /// link and return the arrival cycle.
    #[inline]
    pub fn send_queued(&mut self, t: u64) -> u64 {
        self.send(t.max(self.next_free))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booksim_channel_convention() {
        let mut l = LinkTiming::new(1, 1);
        assert_eq!(l.send(10), 12);
        assert!(l.can_send(11));
    }

    #[test]
    fn queued_items_leave_one_per_slot() {
        let mut l = LinkTiming::new(1, 1);
        assert_eq!(l.send_queued(10), 12);
        assert_eq!(l.send_queued(10), 13);
        assert_eq!(l.send_queued(15), 17);
        let mut l = LinkTiming::new(1, 2);
        assert_eq!(l.send_queued(0), 3);
        assert_eq!(l.send_queued(1), 5);
    }

    #[test]
    fn slow_link_spaces_items() {
        let mut l = LinkTiming::new(2, 3);
        assert!(l.can_send(0));
        assert_eq!(l.send(0), 5);
        assert!(!l.can_send(2));
        assert!(l.can_send(3));
        assert_eq!(l.send(3), 8);
    }
}
