//! Captured routing as MoE traffic: the tokens of one serving iteration,
//! dealt round-robin to the DP groups, become per-group expert counts.

use std::path::Path;

use wafernoc_moe::{MoeModel, RoutingCounts};
use wafernoc_trace::{iterations, Batching, Iteration, Phase, RoutingTrace};

use crate::CliError;

/// A routing trace checked against a model.
#[derive(Debug, Clone)]
pub struct TraceRouting {
    /// The trace.
    pub trace: RoutingTrace,
}

impl TraceRouting {
    /// Load `path` and check experts and top-k against `model`.
    pub fn load(path: &Path, model: &MoeModel, model_name: &str) -> Result<Self, CliError> {
        let trace = RoutingTrace::load(path).map_err(|e| CliError::new(e.to_string()))?;
        if usize::from(trace.meta.num_experts) != model.experts
            || usize::from(trace.meta.top_k) != model.top_k
        {
            return Err(CliError::new(format!(
                "{}: {} experts top-{} does not match model {} ({} experts top-{})",
                path.display(),
                trace.meta.num_experts,
                trace.meta.top_k,
                model_name,
                model.experts,
                model.top_k
            )));
        }
        Ok(TraceRouting { trace })
    }

    /// The `--slots` default: the trace crate's default schedule for the
    /// trace's phase (64 slots for decode, 512-token chunks for prefill).
    pub fn default_slots(&self) -> usize {
        match Batching::default_for(self.trace.meta.phase) {
            Batching::Continuous { slots } => slots,
            Batching::Chunked { chunk } => chunk,
        }
    }

    /// The schedule the `--slots` value gives: continuous batching with
    /// `slots` slots (decode traces) or chunks of `slots` tokens (prefill).
    fn batching(&self, slots: usize) -> Batching {
        match self.trace.meta.phase {
            Phase::Decode => Batching::Continuous { slots },
            Phase::Prefill => Batching::Chunked { chunk: slots },
        }
    }

    /// The `--slots` value named for what it is: `64 slots` for a decode
    /// trace, `512-token chunks` for a prefill one.
    pub fn slots_label(&self, slots: usize) -> String {
        match self.trace.meta.phase {
            Phase::Decode => format!("{slots} slots"),
            Phase::Prefill => format!("{slots}-token chunks"),
        }
    }

    /// Iterations `range` of the trace under continuous batching with
    /// `slots` (decode traces) or chunks of `slots` tokens (prefill traces).
    pub fn iterations(
        &self,
        slots: usize,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Iteration>, CliError> {
        let batching = self.batching(slots);
        let its: Vec<Iteration> = iterations(&self.trace, batching)
            .map_err(|e| CliError::new(e.to_string()))?
            .skip(range.start)
            .take(range.end.saturating_sub(range.start))
            .collect();
        // The whole range must exist: running fewer iterations than asked
        // would be a silent default.
        if its.len() < range.len() {
            // (Was: "only 0 iterations from 100000": say how many there are.)
            let total = iterations(&self.trace, batching)
                .map_err(|e| CliError::new(e.to_string()))?
                .count();
            return Err(CliError::new(format!(
                "iterations {}..{}: the trace has {total} iterations (0..{total}) with {}",
                range.start,
                range.end,
                self.slots_label(slots)
            )));
        }
        Ok(its)
    }

    /// Per-DP-group expert counts of `it` in `layer` (token i goes to group
    /// i mod dp), the tokens per group (rounded up) and the per-expert load.
    pub fn counts(
        &self,
        it: &Iteration,
        layer: usize,
        dp: usize,
        experts: usize,
    ) -> Result<(RoutingCounts, u64, Vec<u64>), CliError> {
        if layer >= usize::from(self.trace.meta.num_layers) {
            return Err(CliError::new(format!(
                "layer {layer}: the trace has {} layers",
                self.trace.meta.num_layers
            )));
        }
        let mut groups: Vec<Vec<Vec<usize>>> = vec![Vec::new(); dp];
        let mut loads = vec![0u64; experts];
        for (i, ex) in it.experts(&self.trace, layer).enumerate() {
            groups[i % dp].push(ex.iter().map(|&e| e as usize).collect());
            for &e in ex {
                loads[e as usize] += 1;
            }
        }
        let counts = RoutingCounts::from_tokens(experts, &groups)
            .map_err(|e| CliError::new(e.to_string()))?;
        Ok((counts, it.tokens.len().div_ceil(dp) as u64, loads))
    }
}

/// Parse `A..B` (half-open) or a single `N` (= N..N+1).
pub fn parse_range(param: &str, s: &str) -> Result<std::ops::Range<usize>, CliError> {
    let bad = || CliError::new(format!("--{param} `{s}`: expected A..B or N"));
    let r = match s.split_once("..") {
        Some((a, b)) => {
            a.trim().parse().map_err(|_| bad())?..b.trim().parse().map_err(|_| bad())?
        }
        None => {
            let n: usize = s.trim().parse().map_err(|_| bad())?;
            n..n + 1
        }
    };
    if r.start >= r.end {
        return Err(bad());
    }
    Ok(r)
}
