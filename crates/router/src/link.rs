//! Links as delay lines.
//!
//! Convention (BookSim2's channels): a link of latency `L` delivers an item
//! sent in cycle `t` to the far end's input stage in cycle `t + L + 1`
//! (`L` cycles of wire plus the input register). So the reference router's
//! 1-cycle links give 5 cycles per hop with 1-cycle RC/VA/SA/ST stages.
//! A link with `cycles_per_flit = n` accepts a new item only every `n`
//! cycles (a slower wafer-edge link) and delivers it `n - 1` cycles later
//! than a full-speed link would (serialisation).

use std::collections::VecDeque;

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
}

/// A FIFO delay line: items come out in the order they went in, each at the
/// cycle computed when it was sent.
#[derive(Clone, Debug)]
pub struct DelayLine<T> {
    timing: LinkTiming,
    q: VecDeque<(u64, T)>,
}

impl<T: Copy> DelayLine<T> {
    /// A delay line of `latency ≥ 1` cycles and bandwidth one item every
    /// `cycles_per_flit ≥ 1` cycles.
    pub fn new(latency: u32, cycles_per_flit: u32) -> Self {
        DelayLine {
            timing: LinkTiming::new(latency, cycles_per_flit),
            q: VecDeque::with_capacity((latency + cycles_per_flit + 1) as usize),
        }
    }
    /// Latency in cycles.
    pub fn latency(&self) -> u32 {
        self.timing.latency()
    }
    /// Cycles per item.
    pub fn cycles_per_flit(&self) -> u32 {
        self.timing.cycles_per_flit()
    }
    /// Whether an item may be sent in cycle `t`.
    #[inline]
    pub fn can_send(&self, t: u64) -> bool {
        self.timing.can_send(t)
    }
    /// Arrival cycle of an item sent at `t`.
    #[inline]
    pub fn arrival(&self, t: u64) -> u64 {
        self.timing.arrival(t)
    }
    /// Send `item` in cycle `t`; returns its arrival cycle.
    #[inline]
    pub fn send(&mut self, t: u64, item: T) -> u64 {
        let a = self.timing.send(t);
        debug_assert!(self.q.back().is_none_or(|b| b.0 <= a));
        self.q.push_back((a, item));
        a
    }
    /// Take the next item if it has arrived by cycle `t`.
    #[inline]
    pub fn recv(&mut self, t: u64) -> Option<T> {
        match self.q.front() {
            Some(&(a, _)) if a <= t => self.q.pop_front().map(|x| x.1),
            _ => None,
        }
    }
    /// Items in flight.
    pub fn len(&self) -> usize {
        self.q.len()
    }
    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
    /// Iterate the items in flight with their arrival cycles.
    pub fn iter(&self) -> impl Iterator<Item = &(u64, T)> {
        self.q.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booksim_channel_convention() {
        let mut d = DelayLine::new(1, 1);
        assert_eq!(d.send(10, 'a'), 12);
        assert_eq!(d.recv(11), None);
        assert_eq!(d.recv(12), Some('a'));
    }

    #[test]
    fn slow_link_spaces_items() {
        let mut d = DelayLine::new(2, 3);
        assert!(d.can_send(0));
        assert_eq!(d.send(0, 1), 5);
        assert!(!d.can_send(2));
        assert!(d.can_send(3));
        assert_eq!(d.send(3, 2), 8);
        assert_eq!(d.recv(7), Some(1));
        assert_eq!(d.recv(7), None);
        assert_eq!(d.recv(8), Some(2));
    }
}
