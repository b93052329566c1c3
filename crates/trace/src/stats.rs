//! Load statistics of a routing trace under a batching schedule.
//!
//! For every iteration `n` (see [`crate::batching`]) and layer `l`, the load
//! of expert `e` is the number of token copies routed to `e`: with `T`
//! tokens in the iteration, the loads sum to `T * k`.
//!
//! - `iterations`: number of iterations.
//! - `mean_imbalance`: for each layer, the mean over iterations of
//!   `max_e load / (T * k / E)`; then the mean of that over layers.
//! - `consecutive_load_corr`: for each layer, the Pearson correlation of the
//!   load vectors (length `E`) of iterations `n` and `n+1`, averaged over all
//!   consecutive pairs; then the mean over layers. A pair in which either
//!   vector has zero variance (all experts equally loaded, e.g. `T*k` a
//!   multiple of `E` spread evenly, or a single-token iteration with
//!   `k = E`) has no defined correlation and is skipped; a layer with no
//!   usable pair is left out of the mean over layers; if no layer has one the
//!   value is `None` (`null` in JSON).

use serde::Serialize;

use crate::batching::{iterations, Batching};
use crate::error::{Result, TraceError};
use crate::routing::RoutingTrace;

/// Statistics of a routing trace under one batching schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStats {
    /// Number of iterations.
    pub iterations: u64,
    /// Mean over layers of the mean over iterations of max/mean expert load.
    pub mean_imbalance: f64,
    /// Mean over layers of the mean Pearson correlation of consecutive
    /// iterations' load vectors (`None` if undefined everywhere).
    pub consecutive_load_corr: Option<f64>,
    /// The schedule, in words.
    pub batching: String,
    /// Requests in the trace.
    pub requests: u64,
    /// Tokens in the trace.
    pub tokens: u64,
    /// Mean tokens per iteration.
    pub mean_tokens_per_iteration: f64,
    /// Experts per layer (`E`).
    pub num_experts: u16,
    /// Experts per token per layer (`k`).
    pub top_k: u16,
    /// MoE layers (`L`).
    pub num_layers: u16,
    /// Per-layer mean imbalance.
    pub per_layer_imbalance: Vec<f64>,
    /// Per-layer mean consecutive correlation.
    pub per_layer_corr: Vec<Option<f64>>,
    /// Consecutive pairs skipped for zero variance (summed over layers).
    pub skipped_corr_pairs: u64,
}

/// Pearson correlation of two integer vectors, `None` if either has zero
/// variance. Computed from exact integer sums.
pub fn pearson(a: &[u32], b: &[u32]) -> Option<f64> {
    let n = a.len().min(b.len()) as i128;
    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0i128, 0i128, 0i128, 0i128, 0i128);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (i128::from(x), i128::from(y));
        sa += x;
        sb += y;
        saa += x * x;
        sbb += y * y;
        sab += x * y;
    }
    let va = n * saa - sa * sa;
    let vb = n * sbb - sb * sb;
    if va == 0 || vb == 0 {
        return None;
    }
    let cov = n * sab - sa * sb;
    Some(cov as f64 / ((va as f64).sqrt() * (vb as f64).sqrt()))
}

/// Compute [`TraceStats`] for `trace` under `batching`. The trace is
/// validated first; a trace without tokens is an error.
pub fn stats(trace: &RoutingTrace, batching: Batching) -> Result<TraceStats> {
    trace.validate("routing trace")?;
    let e = usize::from(trace.meta.num_experts);
    let k = usize::from(trace.meta.top_k);
    let layers = usize::from(trace.meta.num_layers);
    let mut imb_sum = vec![0f64; layers];
    let mut corr_sum = vec![0f64; layers];
    let mut corr_n = vec![0u64; layers];
    let mut skipped = 0u64;
    let mut prev: Vec<Vec<u32>> = vec![Vec::new(); layers];
    let mut cur: Vec<u32> = Vec::new();
    let mut n_iter = 0u64;
    let mut n_tok = 0u64;
    for it in iterations(trace, batching)? {
        let t = it.tokens.len();
        n_tok += t as u64;
        let mean = (t * k) as f64 / e as f64;
        for l in 0..layers {
            it.loads_into(trace, l, &mut cur);
            let max = cur.iter().copied().max().unwrap_or(0);
            imb_sum[l] += f64::from(max) / mean;
            if n_iter > 0 {
                match pearson(&prev[l], &cur) {
                    Some(r) => {
                        corr_sum[l] += r;
                        corr_n[l] += 1;
                    }
                    None => skipped += 1,
                }
            }
            std::mem::swap(&mut prev[l], &mut cur);
        }
        n_iter += 1;
    }
    if n_iter == 0 {
        return Err(TraceError::usage(
            "routing trace",
            "no tokens: no iterations to measure",
        ));
    }
    let per_layer_imbalance: Vec<f64> = imb_sum.iter().map(|s| s / n_iter as f64).collect();
    let per_layer_corr: Vec<Option<f64>> = corr_sum
        .iter()
        .zip(&corr_n)
        .map(|(s, &n)| (n > 0).then(|| s / n as f64))
        .collect();
    let defined: Vec<f64> = per_layer_corr.iter().flatten().copied().collect();
    Ok(TraceStats {
        iterations: n_iter,
        mean_imbalance: per_layer_imbalance.iter().sum::<f64>() / layers as f64,
        consecutive_load_corr: (!defined.is_empty())
            .then(|| defined.iter().sum::<f64>() / defined.len() as f64),
        batching: batching.to_string(),
        requests: trace.requests.len() as u64,
        tokens: n_tok,
        mean_tokens_per_iteration: n_tok as f64 / n_iter as f64,
        num_experts: trace.meta.num_experts,
        top_k: trace.meta.top_k,
        num_layers: trace.meta.num_layers,
        per_layer_imbalance,
        per_layer_corr,
        skipped_corr_pairs: skipped,
    })
}
