//! Synthetic token-to-expert routing: a deterministic PRNG and the `uniform`
//! and `zipf(s)` sources.
//!
//! **Determinism.** Every (seed, DP group, layer) triple has its own
//! [`Xoshiro256StarStar`] stream, seeded through SplitMix64; the Zipf
//! popularity ranking of a layer comes from its own stream (seed, layer), so it
//! is the same in every group. The same arguments always give the same tokens,
//! on every platform.

use serde::{Deserialize, Serialize};

use crate::alltoall::RoutingCounts;
use crate::error::{non_negative, nonzero, MoeError, Result};
use crate::ExpertId;

/// SplitMix64 step (Steele, Lea, Flood 2014): used to seed and to mix.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman and Vigna), the crate's only random generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xoshiro256StarStar {
    s: [u64; 4],
}

impl Xoshiro256StarStar {
    /// A generator seeded from a list of words, mixed through SplitMix64, so
    /// that `(seed, group, layer)` tuples give independent streams.
    pub fn from_words(words: &[u64]) -> Self {
        let mut st = 0x6A09_E667_F3BC_C908_u64;
        for &w in words {
            st ^= w;
            st = splitmix64(&mut st);
        }
        let mut s = [0u64; 4];
        for x in &mut s {
            *x = splitmix64(&mut st);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Xoshiro256StarStar { s }
    }

    /// The stream of one DP group in one layer.
    pub fn for_group(seed: u64, group: u64, layer: u64) -> Self {
        Self::from_words(&[seed, group, layer])
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below
    /// 2^-64 * n, irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Where token-to-expert choices come from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoutingSource {
    /// Every expert equally likely; top-k distinct experts per token.
    Uniform,
    /// Expert of popularity rank `r` (1-based) has weight `r^-s`; the ranking
    /// is a random permutation of the expert ids per layer (same in every DP
    /// group). `s = 0` is uniform. Top-k are drawn without replacement,
    /// proportionally to weight.
    Zipf {
        /// Exponent, finite and `>= 0`.
        s: f64,
    },
}

impl RoutingSource {
    /// Relative weight of every expert in a layer (all 1.0 for uniform).
    pub fn weights(&self, experts: usize, seed: u64, layer: u64) -> Result<Vec<f64>> {
        nonzero("experts", experts)?;
        match *self {
            RoutingSource::Uniform => Ok(vec![1.0; experts]),
            RoutingSource::Zipf { s } => {
                non_negative("s", s)?;
                // Random ranking: Fisher-Yates on (seed, layer) with a marker
                // word that no DP group uses.
                let mut rng = Xoshiro256StarStar::from_words(&[seed, u64::MAX, layer]);
                let mut rank: Vec<usize> = (0..experts).collect();
                for i in (1..experts).rev() {
                    let j = rng.below(i as u64 + 1) as usize;
                    rank.swap(i, j);
                }
                Ok(rank.iter().map(|&r| ((r + 1) as f64).powf(-s)).collect())
            }
        }
    }

    /// Generates `tokens_per_group` tokens for each of `groups` DP groups in
    /// one layer: `result[g][i]` is token `i`'s `top_k` distinct experts, in
    /// draw order.
    pub fn tokens(
        &self,
        experts: usize,
        top_k: usize,
        groups: usize,
        tokens_per_group: usize,
        seed: u64,
        layer: u64,
    ) -> Result<Vec<Vec<Vec<ExpertId>>>> {
        let w = self.weights(experts, seed, layer)?;
        tokens_with_weights(&w, top_k, groups, tokens_per_group, seed, layer)
    }

    /// As [`RoutingSource::tokens`], aggregated into per-(group, expert)
    /// counts.
    pub fn counts(
        &self,
        experts: usize,
        top_k: usize,
        groups: usize,
        tokens_per_group: usize,
        seed: u64,
        layer: u64,
    ) -> Result<RoutingCounts> {
        let t = self.tokens(experts, top_k, groups, tokens_per_group, seed, layer)?;
        RoutingCounts::from_tokens(experts, &t)
    }
}

/// Draws `tokens_per_group` tokens for each of `groups` DP groups from given
/// expert weights (finite, `>= 0`): each token's `top_k` distinct experts,
/// proportionally to weight without replacement, from the stream of
/// `(seed, group, layer)`. [`RoutingSource::tokens`] is this with the
/// source's weights; callers with weights of their own (a drifting
/// popularity, say) use it directly.
pub fn tokens_with_weights(
    w: &[f64],
    top_k: usize,
    groups: usize,
    tokens_per_group: usize,
    seed: u64,
    layer: u64,
) -> Result<Vec<Vec<Vec<ExpertId>>>> {
    let experts = w.len();
    nonzero("experts", experts)?;
    nonzero("top_k", top_k)?;
    nonzero("groups", groups)?;
    for &x in w {
        non_negative("weights", x)?;
    }
    if top_k > experts {
        return Err(MoeError::TopKTooLarge { top_k, experts });
    }
    let total: f64 = w.iter().sum();
    Ok((0..groups)
        .map(|g| {
            let mut rng = Xoshiro256StarStar::for_group(seed, g as u64, layer);
            let mut chosen = vec![false; experts];
            (0..tokens_per_group)
                .map(|_| {
                    let t = draw_distinct(&mut rng, w, total, top_k, &mut chosen);
                    for &e in &t {
                        chosen[e] = false;
                    }
                    t
                })
                .collect()
        })
        .collect())
}

/// Draws `k` distinct indices proportionally to `w` without replacement (each
/// draw renormalised over the indices not yet chosen). `chosen` is all false on
/// entry and marks the result on exit.
fn draw_distinct(
    rng: &mut Xoshiro256StarStar,
    w: &[f64],
    total: f64,
    k: usize,
    chosen: &mut [bool],
) -> Vec<ExpertId> {
    let mut out = Vec::with_capacity(k);
    let mut remaining = total;
    for _ in 0..k {
        let mut pick = None;
        if remaining > 0.0 && remaining.is_finite() {
            let mut u = rng.next_f64() * remaining;
            for (e, &we) in w.iter().enumerate() {
                if chosen[e] {
                    continue;
                }
                if u < we {
                    pick = Some(e);
                    break;
                }
                u -= we;
            }
        }
        // Rounding left `u` past the end, or every remaining weight
        // underflowed: take the heaviest unchosen expert (lowest id on ties).
        let e = pick.unwrap_or_else(|| {
            let mut best: Option<usize> = None;
            for (e, &we) in w.iter().enumerate() {
                if !chosen[e] && best.is_none_or(|b| we > w[b]) {
                    best = Some(e);
                }
            }
            best.unwrap_or(0)
        });
        chosen[e] = true;
        remaining -= w[e];
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prng_is_deterministic_and_spread() {
        let mut a = Xoshiro256StarStar::for_group(1, 2, 3);
        let mut b = Xoshiro256StarStar::for_group(1, 2, 3);
        let mut c = Xoshiro256StarStar::for_group(1, 2, 4);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        let mut r = Xoshiro256StarStar::from_words(&[7]);
        let mean: f64 = (0..10_000).map(|_| r.next_f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!((0..1000).all(|_| r.below(5) < 5));
    }

    #[test]
    fn tokens_are_distinct_and_reproducible() {
        for src in [RoutingSource::Uniform, RoutingSource::Zipf { s: 1.2 }] {
            let t = src.tokens(64, 6, 3, 50, 42, 7).unwrap();
            assert_eq!(t, src.tokens(64, 6, 3, 50, 42, 7).unwrap());
            assert_ne!(t, src.tokens(64, 6, 3, 50, 43, 7).unwrap());
            assert_eq!(t.len(), 3);
            for g in &t {
                assert_eq!(g.len(), 50);
                for tok in g {
                    let mut s = tok.clone();
                    s.sort_unstable();
                    s.dedup();
                    assert_eq!(s.len(), 6);
                    assert!(s.iter().all(|&e| e < 64));
                }
            }
        }
        // k = E picks everything, even with extreme skew.
        let t = RoutingSource::Zipf { s: 500.0 }
            .tokens(8, 8, 1, 3, 1, 1)
            .unwrap();
        for tok in &t[0] {
            let mut s = tok.clone();
            s.sort_unstable();
            assert_eq!(s, (0..8).collect::<Vec<_>>());
        }
    }

    /// Zipf weights are exactly `rank^-s` over a random ranking (a
    /// permutation of 1..=E), and single-expert tokens follow them: every
    /// expert's count within 4 binomial sd of its share.
    #[test]
    fn zipf_weights_and_draws_follow_the_law() {
        for s in [0.7, 1.5] {
            let src = RoutingSource::Zipf { s };
            let w = src.weights(16, 3, 2).unwrap();
            let mut sorted = w.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            for (r, &x) in sorted.iter().enumerate() {
                assert_eq!(x, ((r + 1) as f64).powf(-s), "s {s}, rank {}", r + 1);
            }
            // The ranking is shuffled, not the identity.
            assert_ne!(w, sorted, "s {s}");
            let c = src.counts(16, 1, 4, 5000, 3, 2).unwrap();
            let tot = c.expert_totals();
            let n = 20_000.0;
            let sum: f64 = w.iter().sum();
            for (e, (&k, &we)) in tot.iter().zip(&w).enumerate() {
                let q = we / sum;
                let (mean, sd) = (n * q, (n * q * (1.0 - q)).sqrt());
                assert!(
                    (k as f64 - mean).abs() <= 4.0 * sd,
                    "s {s}, expert {e}: {k} tokens, expected {mean:.0} ± {sd:.0}"
                );
            }
        }
    }

    #[test]
    fn zipf_is_skewed() {
        let c = RoutingSource::Zipf { s: 1.5 }
            .counts(32, 1, 4, 2000, 9, 0)
            .unwrap();
        let tot = c.expert_totals();
        let max = *tot.iter().max().unwrap() as f64;
        let mean = tot.iter().sum::<u64>() as f64 / 32.0;
        assert!(max / mean > 5.0, "{}", max / mean);
        let u = RoutingSource::Uniform.counts(32, 1, 4, 2000, 9, 0).unwrap();
        let tot = u.expert_totals();
        let max = *tot.iter().max().unwrap() as f64;
        assert!(max / 250.0 < 1.5);
    }

    #[test]
    fn errors() {
        let z = RoutingSource::Zipf { s: -1.0 };
        assert_eq!(z.tokens(8, 2, 1, 1, 0, 0).unwrap_err().parameter(), "s");
        let z = RoutingSource::Zipf { s: f64::NAN };
        assert_eq!(z.weights(8, 0, 0).unwrap_err().parameter(), "s");
        let u = RoutingSource::Uniform;
        assert_eq!(u.tokens(8, 9, 1, 1, 0, 0).unwrap_err().parameter(), "top_k");
        assert_eq!(u.tokens(8, 0, 1, 1, 0, 0).unwrap_err().parameter(), "top_k");
        assert_eq!(
            u.tokens(0, 1, 1, 1, 0, 0).unwrap_err().parameter(),
            "experts"
        );
        assert_eq!(
            u.tokens(8, 1, 0, 1, 0, 0).unwrap_err().parameter(),
            "groups"
        );
    }
}
