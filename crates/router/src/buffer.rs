//! Input VC buffers of a whole network, stored as flat rings.

use crate::flit::Flit;

/// Every input VC buffer of the network in one flat array: buffer `b`
/// (a global input-VC index) owns slots `b*depth .. (b+1)*depth`.
/// No allocation after construction.
#[derive(Clone, Debug)]
pub struct VcBuffers {
    depth: usize,
    slots: Vec<Flit>,
    /// Per buffer: (index of the front slot, number of flits), side by side
    /// so that one bounds check and one cache line serve both.
    hl: Vec<(u16, u16)>,
}

impl VcBuffers {
    /// `count` buffers of `depth` flits each.
    pub fn new(count: usize, depth: usize) -> Self {
        assert!(depth >= 1 && depth <= u16::MAX as usize);
        VcBuffers {
            depth,
            slots: vec![Flit::default(); count * depth],
            hl: vec![(0, 0); count],
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
        self.hl[b].1 as usize
    }
    /// Whether buffer `b` is empty.
    #[inline]
    pub fn is_empty(&self, b: usize) -> bool {
        self.hl[b].1 == 0
    }
    /// Front flit of buffer `b`, if any.
    #[inline]
    pub fn front(&self, b: usize) -> Option<Flit> {
        let (head, len) = self.hl[b];
        if len == 0 {
            None
        } else {
            Some(self.slots[b * self.depth + head as usize])
        }
    }
    /// Append a flit. Returns `Err(flit)` if the buffer is full (a credit
    /// protocol violation the caller reports).
    #[inline]
    pub fn push(&mut self, b: usize, f: Flit) -> Result<(), Flit> {
        let (head, len) = &mut self.hl[b];
        if *len as usize >= self.depth {
            return Err(f);
        }
        let mut idx = *head as usize + *len as usize;
        if idx >= self.depth {
            idx -= self.depth;
        }
        *len += 1;
        self.slots[b * self.depth + idx] = f;
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
        let (head, len) = &mut self.hl[b];
        if *len == 0 {
            return None;
        }
        let h = *head as usize;
        *head = if h + 1 == self.depth {
            0
        } else {
            (h + 1) as u16
        };
        *len -= 1;
        let left = *len as usize;
        Some((self.slots[b * self.depth + h], left))
    }
    /// Iterate the flits of buffer `b` front to back.
    pub fn iter(&self, b: usize) -> impl Iterator<Item = Flit> + '_ {
        let (h, len) = self.hl[b];
        let h = h as usize;
        (0..len as usize).map(move |i| self.slots[b * self.depth + (h + i) % self.depth])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_bounded_fifo(ops in proptest::collection::vec(any::<bool>(), 0..200), depth in 1usize..9) {
            let mut b = VcBuffers::new(3, depth);
            let mut model = std::collections::VecDeque::new();
            let mut n = 0u32;
            for push in ops {
                if push {
                    let f = Flit::new(n, 0, 1);
                    n += 1;
                    let r = b.push(1, f);
                    if model.len() < depth { prop_assert!(r.is_ok()); model.push_back(f); } else { prop_assert!(r.is_err()); }
                } else {
                    if n % 2 == 0 {
                        prop_assert_eq!(b.pop(1), model.pop_front());
                    } else {
                        let f = model.pop_front();
                        prop_assert_eq!(b.pop_len(1), f.map(|f| (f, model.len())));
                    }
                }
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
