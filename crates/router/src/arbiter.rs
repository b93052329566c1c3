//! Arbiters over bit masks of requesters (at most 128).

use serde::{Deserialize, Serialize};

/// Arbiter policy, chosen by name in configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArbiterKind {
    /// Round-robin: the pointer moves one past the last winner.
    RoundRobin,
    /// Matrix arbiter: least recently served wins.
    Matrix,
}

/// One arbiter instance for up to `n` requesters.
#[derive(Clone, Debug)]
pub enum Arbiter {
    /// Round-robin with its pointer.
    RoundRobin {
        /// Requester with the highest priority next time.
        ptr: u32,
        /// Number of requesters.
        n: u32,
    },
    /// Matrix arbiter: `prio[i]` has bit j set when i beats j.
    Matrix {
        /// Priority rows.
        prio: Vec<u128>,
    },
}

/// First set bit of `mask` at or after `ptr` (cyclically), if any.
#[inline]
pub fn first_from(mask: u128, ptr: u32) -> Option<u32> {
    if mask == 0 {
        return None;
    }
    let hi = if ptr >= 128 {
        0
    } else {
        mask & (!0u128 << ptr)
    };
    Some(if hi != 0 {
        hi.trailing_zeros()
    } else {
        mask.trailing_zeros()
    })
}

impl Arbiter {
    /// A new arbiter of the given kind for `n` requesters (n ≤ 128).
    pub fn new(kind: ArbiterKind, n: usize) -> Self {
        assert!(n <= 128);
        match kind {
            ArbiterKind::RoundRobin => Arbiter::RoundRobin {
                ptr: 0,
                n: n as u32,
            },
            ArbiterKind::Matrix => {
                // Initially lower index beats higher index.
                let prio = (0..n)
                    .map(|i| {
                        let all = if n == 128 { !0u128 } else { (1u128 << n) - 1 };
                        all & !((1u128 << (i + 1)) - 1)
                    })
                    .collect();
                Arbiter::Matrix { prio }
            }
        }
    }

    /// Pick a winner among `requests` without updating state.
    #[inline]
    pub fn pick(&self, requests: u128) -> Option<u32> {
        match self {
            Arbiter::RoundRobin { ptr, .. } => first_from(requests, *ptr),
            Arbiter::Matrix { prio } => {
                let mut m = requests;
                while m != 0 {
                    let i = m.trailing_zeros();
                    // i wins if it beats every other requester.
                    let others = requests & !(1u128 << i);
                    if prio[i as usize] & others == others {
                        return Some(i);
                    }
                    m &= m - 1;
                }
                None
            }
        }
    }

    /// Record that `winner` was served.
    #[inline]
    pub fn update(&mut self, winner: u32) {
        match self {
            Arbiter::RoundRobin { ptr, n } => *ptr = if winner + 1 >= *n { 0 } else { winner + 1 },
            Arbiter::Matrix { prio } => {
                let w = winner as usize;
                let bit = 1u128 << w;
                prio[w] = 0;
                for (j, row) in prio.iter_mut().enumerate() {
                    if j != w {
                        *row |= bit;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_from_wraps() {
        assert_eq!(first_from(0b1001, 1), Some(3));
        assert_eq!(first_from(0b1001, 4), Some(0));
        assert_eq!(first_from(0, 4), None);
        assert_eq!(first_from(1 << 127, 127), Some(127));
    }

    #[test]
    fn round_robin_is_fair() {
        let mut a = Arbiter::new(ArbiterKind::RoundRobin, 4);
        let mut wins = [0; 4];
        for _ in 0..400 {
            let w = a.pick(0b1111).unwrap();
            wins[w as usize] += 1;
            a.update(w);
        }
        assert_eq!(wins, [100; 4]);
    }

    #[test]
    fn matrix_serves_least_recent() {
        let mut a = Arbiter::new(ArbiterKind::Matrix, 3);
        assert_eq!(a.pick(0b111), Some(0));
        a.update(0);
        assert_eq!(a.pick(0b111), Some(1));
        a.update(1);
        assert_eq!(a.pick(0b101), Some(2));
        a.update(2);
        assert_eq!(a.pick(0b111), Some(0));
        let mut wins = [0; 3];
        for _ in 0..300 {
            let w = a.pick(0b111).unwrap();
            wins[w as usize] += 1;
            a.update(w);
        }
        assert_eq!(wins, [100; 3]);
    }
}
