//! Compute model: a per-device roofline for experts and a replaceable
//! attention cost.
//!
//! **Experts** (MoEntwine §4): one expert instance serving `T` token copies
//! takes `max(W / B_hbm, T * 6HF / P)` where `W` is its weight bytes, `B_hbm`
//! the die's HBM bandwidth and `P` its peak FLOP/s; a device's MoE time is the
//! sum over the live expert instances it hosts; the layer's MoE compute time
//! is the maximum over devices. With [`ComputeModel::skip_idle_experts`] (the
//! default) an instance that serves no token costs nothing: real grouped-GEMM
//! kernels skip empty experts and never read their weights.
//!
//! **Attention** ([`ProjectionAttention`], a documented approximation behind
//! the [`AttentionCost`] trait): a layer's attention projections hold about
//! `4 H^2` parameters (Q, K, V, O), split over the `tp` members of a TP
//! group; each member runs all of its DP group's tokens through its share
//! and, with a context of `C` tokens ([`ProjectionAttention::context_tokens`]),
//! reads its share of their KV cache
//! ([`MoeModel::kv_bytes_per_device`]: split over at most the model's KV
//! heads, so MLA's latent is read whole by every member):
//! `max((4H^2/tp * param_bytes + KV) / B_hbm, (2 * tokens * 4H^2/tp + S) / P)`
//! where `S` is the member's share of the score FLOPs over the cache
//! ([`MoeModel::score_flops_per_device`]). The cache read alone is
//! memory-bound on a B200-class die for every preset (GQA does a few FLOPs
//! per cached byte; DeepSeek's MLA about 240 against the die's 281 FLOP/B
//! ridge at the BF16 peak), so `S` adds time when the projections are
//! already compute-bound (from about 141 tokens per DP group at FP8
//! weights, whatever the TP degree) or the cache is cheaper to read than
//! the presets' (an FP8 latent). Softmax and its exponentials are not counted.
//!
//! **HBM capacity** ([`check_hbm_capacity`]): a device's expert slots of
//! every MoE layer plus, with a context, the KV cache of every MoE layer must
//! fit. Attention weights and dense layers are not counted.
//!
//! All times are in nanoseconds; convert with
//! [`WaferSpec::ns_to_cycles`](crate::WaferSpec::ns_to_cycles).

use serde::{Deserialize, Serialize};

use crate::alltoall::Assignment;
use crate::error::{nonzero, positive, MoeError, Result};
use crate::model::MoeModel;
use crate::placement::{Placement, ReplicaState};
use crate::plan::Layout;
use crate::spec::DieSpec;
use crate::DeviceId;

/// Expert roofline settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeModel {
    /// Experts that serve no token cost nothing (default `true`; see the
    /// module docs). With `false` every live instance pays its weight read.
    pub skip_idle_experts: bool,
}

impl Default for ComputeModel {
    fn default() -> Self {
        ComputeModel {
            skip_idle_experts: true,
        }
    }
}

/// MoE compute time of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeCompute {
    /// Time of every device, ns.
    pub per_device_ns: Vec<f64>,
    /// The layer's MoE compute time: the maximum over devices, ns.
    pub max_ns: f64,
    /// Mean over devices, ns.
    pub mean_ns: f64,
    /// The device with the maximum (lowest id on ties).
    pub slowest_device: DeviceId,
}

impl ComputeModel {
    /// Time of one expert instance serving `tokens` copies, ns.
    pub fn expert_time_ns(&self, model: &MoeModel, die: &DieSpec, tokens: u64) -> f64 {
        if tokens == 0 && self.skip_idle_experts {
            return 0.0;
        }
        let memory = model.expert_weight_bytes() as f64 / die.hbm_gbps;
        let compute = tokens as f64 * model.expert_flops_per_token() / die.flop_per_ns();
        memory.max(compute)
    }

    /// MoE compute time of one layer: every device sums the times of the live
    /// expert instances it hosts (with the copies they serve in
    /// `assignment`); pending replicas serve nothing and cost nothing.
    pub fn moe_layer(
        &self,
        model: &MoeModel,
        die: &DieSpec,
        placement: &Placement,
        assignment: &Assignment,
    ) -> Result<MoeCompute> {
        model.validate()?;
        die.validate()?;
        let served = assignment.per_device();
        if served.len() != placement.num_devices() {
            return Err(MoeError::LengthMismatch {
                param: "assignment",
                expected: placement.num_devices(),
                got: served.len(),
            });
        }
        let mut per_device_ns = Vec::with_capacity(served.len());
        for (d, list) in served.iter().enumerate() {
            let mut t = 0.0;
            for &e in placement.experts_on(d).unwrap_or(&[]) {
                let live = placement
                    .replicas(e)
                    .and_then(|rs| rs.iter().find(|r| r.device == d))
                    .is_some_and(|r| r.state == ReplicaState::Live);
                if !live {
                    continue;
                }
                let tokens = list
                    .binary_search_by_key(&e, |&(x, _)| x)
                    .map(|i| list[i].1)
                    .unwrap_or(0);
                t += self.expert_time_ns(model, die, tokens);
            }
            per_device_ns.push(t);
        }
        let (mut slowest_device, mut max_ns) = (0, 0.0);
        for (d, &t) in per_device_ns.iter().enumerate() {
            if t > max_ns {
                (slowest_device, max_ns) = (d, t);
            }
        }
        let mean_ns = if per_device_ns.is_empty() {
            0.0
        } else {
            per_device_ns.iter().sum::<f64>() / per_device_ns.len() as f64
        };
        Ok(MoeCompute {
            per_device_ns,
            max_ns,
            mean_ns,
            slowest_device,
        })
    }
}

/// Attention compute cost of one layer on one device; implement it to replace
/// the default model.
pub trait AttentionCost {
    /// Time in ns of MoE layer `layer`'s attention for a device that is one
    /// of `tp` members of a TP group whose DP group holds `tokens` tokens.
    fn layer_time_ns(
        &self,
        model: &MoeModel,
        die: &DieSpec,
        layer: usize,
        tokens: u64,
        tp: usize,
    ) -> f64;
}

/// Default attention model: dense projections of `params_factor * H^2`
/// parameters per layer and the KV cache of `context_tokens` tokens of
/// context per decoding token (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionAttention {
    /// Projection parameters per layer in units of `H^2`. Default 4 (Q, K, V,
    /// O of multi-head attention; MLA and GQA models differ, so it is a
    /// parameter).
    pub params_factor: f64,
    /// Tokens of context each decoding token attends over; its KV cache is
    /// read in every layer's attention and held in HBM. Default 0: the KV
    /// cache is not counted (the figures of before it was modelled).
    pub context_tokens: u64,
}

impl Default for ProjectionAttention {
    fn default() -> Self {
        ProjectionAttention {
            params_factor: 4.0,
            context_tokens: 0,
        }
    }
}

impl ProjectionAttention {
    /// Checks the parameter.
    pub fn validate(&self) -> Result<()> {
        positive("params_factor", self.params_factor)
    }
}

impl AttentionCost for ProjectionAttention {
    fn layer_time_ns(
        &self,
        model: &MoeModel,
        die: &DieSpec,
        layer: usize,
        tokens: u64,
        tp: usize,
    ) -> f64 {
        let h = model.hidden as f64;
        let params = self.params_factor * h * h / tp.max(1) as f64;
        let kv = model.kv_bytes_per_device(layer, tokens, self.context_tokens, tp);
        let memory = (params * model.param_bytes + kv) / die.hbm_gbps;
        let scores = model.score_flops_per_device(layer, tokens, self.context_tokens, tp);
        let compute = (2.0 * tokens as f64 * params + scores) / die.flop_per_ns();
        memory.max(compute)
    }
}

/// Checks that a device's HBM holds its expert slots (home + shadow) of
/// every MoE layer and the KV cache of every MoE layer for its DP group's
/// `tokens_per_group` tokens with `context` tokens of context each (none
/// with `context` 0). Attention weights and dense layers are not counted.
/// Weights alone too large is [`MoeError::HbmCapacity`], the KV cache on
/// top of them [`MoeError::KvCapacity`].
pub fn check_hbm_capacity(
    model: &MoeModel,
    die: &DieSpec,
    layout: &Layout,
    context: u64,
    tokens_per_group: u64,
) -> Result<()> {
    nonzero("experts", layout.experts())?;
    let slots = layout.experts_per_device() + layout.shadow_slots_per_device();
    check_device_hbm(model, die, slots, layout.tp(), context, tokens_per_group)
}

/// [`check_hbm_capacity`] for one device with `slots` expert slots per
/// layer, one of `tp` members of a TP group whose DP group holds `tokens`
/// tokens.
pub(crate) fn check_device_hbm(
    model: &MoeModel,
    die: &DieSpec,
    slots: usize,
    tp: usize,
    context: u64,
    tokens: u64,
) -> Result<()> {
    model.validate()?;
    model.check_context(context)?;
    die.validate()?;
    let layers = model.moe_layers;
    let expert_bytes = model.expert_weight_bytes();
    let weights = slots as u128 * u128::from(expert_bytes) * layers as u128;
    let capacity = die.hbm_capacity_bytes();
    if weights > capacity {
        return Err(MoeError::HbmCapacity {
            slots,
            layers,
            expert_bytes,
            need: weights,
            capacity,
        });
    }
    let kv: f64 = (0..layers)
        .map(|l| model.kv_bytes_per_device(l, tokens, context, tp))
        .sum();
    if weights as f64 + kv > capacity as f64 {
        return Err(MoeError::KvCapacity {
            tokens,
            context,
            kv_bytes: kv.ceil() as u128,
            weights,
            capacity,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alltoall::{assign, RoutingCounts};
    use crate::plan::{Mapping, ParallelPlan};
    use crate::spec::WaferSpec;

    #[test]
    fn roofline() {
        let m = MoeModel::preset("DeepSeek-V3").unwrap();
        let die = DieSpec::default();
        let cm = ComputeModel::default();
        // 44 MB at 8000 B/ns = 5505 ns.
        let w = (3 * 7168 * 2048) as f64 / 8000.0;
        assert!((cm.expert_time_ns(&m, &die, 1) - w).abs() < 1e-6);
        assert_eq!(cm.expert_time_ns(&m, &die, 0), 0.0);
        let strict = ComputeModel {
            skip_idle_experts: false,
        };
        assert!((strict.expert_time_ns(&m, &die, 0) - w).abs() < 1e-6);
        // Compute-bound: 10^5 tokens * 6*7168*2048 / 2.25e6 FLOP/ns.
        let c = 1e5 * 6.0 * 7168.0 * 2048.0 / 2.25e6;
        assert!((cm.expert_time_ns(&m, &die, 100_000) - c).abs() < 1e-3);
    }

    #[test]
    fn layer_max_over_devices() {
        let mut m = MoeModel::preset("DeepSeek-V2-Lite").unwrap();
        m.experts = 32;
        let l = ParallelPlan::new(4, 4, Mapping::er())
            .layout(&WaferSpec::single(4, 4), 32)
            .unwrap();
        let mut p = Placement::new(&l);
        let die = DieSpec::default();
        let mut c = RoutingCounts::new(4, 32).unwrap();
        c.add(0, 0, 10).unwrap();
        c.add(0, 4, 10).unwrap(); // also on device 0 (round-robin, slot 1)
        c.add(1, 1, 10).unwrap();
        let a = assign(&l, &p, &c).unwrap();
        let cm = ComputeModel::default();
        let r = cm.moe_layer(&m, &die, &p, &a).unwrap();
        let one = cm.expert_time_ns(&m, &die, 10);
        assert!((r.per_device_ns[0] - 2.0 * one).abs() < 1e-9);
        assert!((r.per_device_ns[1] - one).abs() < 1e-9);
        assert_eq!(r.slowest_device, 0);
        assert!((r.max_ns - 2.0 * one).abs() < 1e-9);
        assert!((r.mean_ns - 3.0 * one / 16.0).abs() < 1e-9);
        // A pending replica costs nothing; a live one serves half.
        p.add_replica(0, 15).unwrap();
        let a = assign(&l, &p, &c).unwrap();
        let r = cm.moe_layer(&m, &die, &p, &a).unwrap();
        assert_eq!(r.per_device_ns[15], 0.0);
        p.mark_live(0, 15).unwrap();
        let a = assign(&l, &p, &c).unwrap();
        let r = cm.moe_layer(&m, &die, &p, &a).unwrap();
        assert!((r.per_device_ns[15] - cm.expert_time_ns(&m, &die, 5)).abs() < 1e-9);
        // Idle experts cost weight reads when not skipped.
        let strict = ComputeModel {
            skip_idle_experts: false,
        };
        let r = strict.moe_layer(&m, &die, &p, &a).unwrap();
        assert!(r.per_device_ns.iter().all(|&t| t > 0.0));
        let mut bad = m.clone();
        bad.hidden = 0;
        assert_eq!(
            cm.moe_layer(&bad, &die, &p, &a).unwrap_err().parameter(),
            "hidden"
        );
    }

    #[test]
    fn attention_and_capacity() {
        let m = MoeModel::preset("Mixtral-8x22B").unwrap();
        let die = DieSpec::default();
        let att = ProjectionAttention::default();
        att.validate().unwrap();
        let p = 4.0 * 6144.0 * 6144.0 / 4.0;
        let t = att.layer_time_ns(&m, &die, 0, 1, 4);
        assert!((t - p / 8000.0).abs() < 1e-6);
        let big = att.layer_time_ns(&m, &die, 0, 1_000_000, 4);
        assert!((big - 2e6 * p / 2.25e6).abs() < 1e-3);
        assert_eq!(
            ProjectionAttention {
                params_factor: 0.0,
                ..att
            }
            .validate()
            .unwrap_err()
            .parameter(),
            "params_factor"
        );
        let l = ParallelPlan::new(2, 2, Mapping::er())
            .layout(&WaferSpec::single(2, 2), 8)
            .unwrap();
        // Mixtral: 2 home + 1 shadow experts of 302 MB (FP8) x 56 layers =
        // 50.7 GB: fits in 180 GB.
        check_hbm_capacity(&m, &die, &l, 0, 0).unwrap();
        let small = DieSpec {
            hbm_capacity_gb: 50.0,
            ..die
        };
        let e = check_hbm_capacity(&m, &small, &l, 0, 0).unwrap_err();
        assert_eq!(e.parameter(), "shadow_slots_per_device");
        assert!(
            e.to_string().contains("3 expert slots x 56 MoE layers"),
            "{e}"
        );
    }

    /// With a cache cheap to read (an FP8-sized MLA latent, 483 FLOP/B of
    /// scores), the score FLOPs decide: the compute term counts them.
    #[test]
    fn score_flops_make_attention_compute_bound() {
        let mut m = MoeModel::preset("DeepSeek-V3").unwrap();
        m.kv_bytes_per_token = 576;
        let die = DieSpec::default();
        let att = ProjectionAttention {
            context_tokens: 32_768,
            ..ProjectionAttention::default()
        };
        let (tokens, tp) = (256, 1);
        let params = 4.0 * 7168.0 * 7168.0;
        let memory = (params + 256.0 * 32_768.0 * 576.0) / 8000.0;
        let compute = (2.0 * 256.0 * params + 256.0 * 32_768.0 * 278_528.0) / 2.25e6;
        assert!(compute > memory);
        let t = att.layer_time_ns(&m, &die, 0, tokens, tp);
        assert!((t - compute).abs() < 1e-6 * compute, "{t} vs {compute}");
        // At TP 16 every member computes a sixteenth of the heads.
        let t16 = att.layer_time_ns(&m, &die, 0, tokens, 16);
        let c16 = (2.0 * 256.0 * params / 16.0 + 256.0 * 32_768.0 * 278_528.0 / 16.0) / 2.25e6;
        let m16 = (params / 16.0 + 256.0 * 32_768.0 * 576.0) / 8000.0;
        assert!((t16 - c16.max(m16)).abs() < 1e-6 * t16, "{t16}");
    }

    #[test]
    fn kv_cache_read_and_capacity() {
        // GPT-OSS at TP 4: 2048 B per token and layer over min(4, 8) = 4
        // members; even layers see at most 128 tokens of context.
        let m = MoeModel::preset("GPT-OSS-20B").unwrap();
        let die = DieSpec::default();
        let none = ProjectionAttention::default();
        let att = ProjectionAttention {
            context_tokens: 8192,
            ..none
        };
        let weights = 4.0 * 2880.0 * 2880.0 / 4.0;
        let (tokens, tp) = (64, 4);
        let full = att.layer_time_ns(&m, &die, 1, tokens, tp);
        let kv = 64.0 * 8192.0 * 2048.0 / 4.0;
        assert!((full - (weights + kv) / 8000.0).abs() < 1e-6, "{full}");
        let sliding = att.layer_time_ns(&m, &die, 0, tokens, tp);
        let kv_window = 64.0 * 128.0 * 2048.0 / 4.0;
        assert!((sliding - (weights + kv_window) / 8000.0).abs() < 1e-6);
        assert_eq!(
            none.layer_time_ns(&m, &die, 1, tokens, tp),
            weights / 8000.0
        );
        // Capacity: DeepSeek-V3 at TP16, one expert + one shadow per die
        // (5.3 GB over 58 layers); MLA's latent is whole on every member:
        // 256 tokens x 32768 x 1152 B x 58 layers = 560 GB: refused; at
        // 4096 tokens of context 70 GB: fits.
        let v3 = MoeModel::preset("DeepSeek-V3").unwrap();
        let w = WaferSpec::multi(8, 8, 2, 2);
        let l = ParallelPlan::new(16, 16, Mapping::er())
            .layout(&w, 256)
            .unwrap();
        check_hbm_capacity(&v3, &die, &l, 4096, 256).unwrap();
        let e = check_hbm_capacity(&v3, &die, &l, 32768, 256).unwrap_err();
        assert_eq!(e.parameter(), "context");
        let kv = 256u128 * 32768 * 1152 * 58;
        assert!(e.to_string().contains(&format!("takes {kv} B")), "{e}");
        // GQA splits over the TP group's members: GPT-OSS on 4x8, 32 tokens
        // per group, 131072 tokens of context on 12 full layers and 128 on
        // the 12 sliding ones: 32 x (131072 + 128) x 12 x 2048 B = 103 GB
        // on one die at TP 1, a quarter at TP 4 (60 GB of HBM here).
        let w = WaferSpec::single(4, 8);
        let tp4 = ParallelPlan::new(4, 8, Mapping::er())
            .layout(&w, 32)
            .unwrap();
        let tp1 = ParallelPlan::new(1, 32, Mapping::block())
            .layout(&w, 32)
            .unwrap();
        let small = DieSpec {
            hbm_capacity_gb: 60.0,
            ..die
        };
        check_hbm_capacity(&m, &small, &tp4, 131_072, 32).unwrap();
        let e = check_hbm_capacity(&m, &small, &tp1, 131_072, 32).unwrap_err();
        assert_eq!(e.parameter(), "context");
    }
}
