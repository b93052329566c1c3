//! An analytic GPU-cluster baseline: the other side of MoEntwine's last
//! claim (256 wafer-scale dies against a 72-GPU NVL72, per device).
//!
//! The paper's GPU model is not known (only its abstract could be read), so
//! this one is written down and deliberately **optimistic for the GPUs**:
//!
//! - `G` GPUs behind one non-blocking switch; each GPU has one port of
//!   `port_gbps` GB/s per direction (NVL72: 72 B200s, NVLink 5, 900 GB/s per
//!   direction, the same figure as one die-to-die link of the wafer).
//! - Attention is data-parallel over the GPUs (TP = 1): GPU `g` holds the
//!   tokens of routing group `g` (so `counts.groups()` must be `G`).
//! - Expert parallelism over all GPUs (EP = `G`), contiguous blocks without
//!   replicas: expert `e` lives on GPU `floor(e * G / E)`. With DeepSeek-V3
//!   on 72 GPUs that is 3 or 4 experts per GPU.
//! - An all-to-all phase takes `max over GPUs of max(bytes sent, bytes
//!   received) / port_gbps + latency_ns`, or nothing when no byte crosses the
//!   switch. That is the port bound of an ideal crossbar (any traffic matrix
//!   can be scheduled at it): no contention inside the switch, no protocol
//!   or kernel overhead. `latency_ns` (default 0) is added once per phase.
//! - Dispatch carries `H * dispatch_bytes_per_elem` bytes per token copy,
//!   combine `H * combine_bytes_per_elem`, as on the wafer; copies to an
//!   expert on the sender's own GPU cost nothing.
//! - Expert compute is the wafer's roofline ([`ComputeModel`]) on the same
//!   die ([`DieSpec`]): per GPU the sum over the experts it hosts, the
//!   layer's time the slowest GPU's.
//!
//! A wafer-scale advantage measured against this baseline is therefore a
//! lower bound on the network side; the compute side is identical by
//! construction, so what differs is the expert-parallel degree (experts per
//! device) and the network.

use serde::{Deserialize, Serialize};

use crate::alltoall::RoutingCounts;
use crate::compute::ComputeModel;
use crate::error::{non_negative, nonzero, positive, MoeError, Result};
use crate::model::MoeModel;
use crate::spec::DieSpec;

/// GPUs of an NVL72 rack.
pub const NVL72_GPUS: usize = 72;

/// NVLink 5 bandwidth per GPU, GB/s per direction (1.8 TB/s both ways).
pub const NVLINK5_GBPS: f64 = 900.0;

/// Largest cluster [`SwitchCluster::validate`] accepts (the largest wafer
/// layer run has as many devices): bounds the routing tables built for it.
pub const MAX_CLUSTER_GPUS: usize = 65_536;

/// A GPU cluster behind one ideal switch (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchCluster {
    /// GPUs, the expert-parallel degree. Default [`NVL72_GPUS`].
    pub gpus: usize,
    /// Switch port bandwidth per GPU, GB/s per direction. Default
    /// [`NVLINK5_GBPS`].
    pub port_gbps: f64,
    /// Fixed time added to every all-to-all phase that moves data, ns.
    /// Default 0 (the GPUs' best case).
    pub latency_ns: f64,
}

impl Default for SwitchCluster {
    fn default() -> Self {
        SwitchCluster {
            gpus: NVL72_GPUS,
            port_gbps: NVLINK5_GBPS,
            latency_ns: 0.0,
        }
    }
}

/// One MoE layer on a [`SwitchCluster`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterLayer {
    /// Dispatch, ns.
    pub dispatch_ns: f64,
    /// Expert compute (slowest GPU), ns.
    pub compute_ns: f64,
    /// Combine, ns.
    pub combine_ns: f64,
    /// Token copies of the layer.
    pub token_copies: u64,
    /// Copies served on their sender's GPU (no traffic).
    pub local_token_copies: u64,
}

/// Sums of layers (a run's totals).
impl std::ops::AddAssign for ClusterLayer {
    fn add_assign(&mut self, l: ClusterLayer) {
        self.dispatch_ns += l.dispatch_ns;
        self.compute_ns += l.compute_ns;
        self.combine_ns += l.combine_ns;
        self.token_copies += l.token_copies;
        self.local_token_copies += l.local_token_copies;
    }
}

impl ClusterLayer {
    /// Dispatch + compute + combine, ns.
    pub fn moe_ns(&self) -> f64 {
        self.dispatch_ns + self.compute_ns + self.combine_ns
    }
}

impl SwitchCluster {
    /// Checks every field; the error names the first bad one. Ranges keep
    /// every time finite: at most [`MAX_CLUSTER_GPUS`] GPUs, ports of at
    /// least 0.001 GB/s, at most 10^15 ns of latency.
    pub fn validate(&self) -> Result<()> {
        nonzero("gpus", self.gpus)?;
        if self.gpus > MAX_CLUSTER_GPUS {
            return Err(MoeError::TooLarge {
                param: "gpus",
                value: self.gpus,
                max: MAX_CLUSTER_GPUS,
            });
        }
        positive("port_gbps", self.port_gbps)?;
        if self.port_gbps < 1e-3 {
            return Err(MoeError::BadReal {
                param: "port_gbps",
                value: self.port_gbps,
                expected: "at least 0.001",
            });
        }
        non_negative("latency_ns", self.latency_ns)?;
        if self.latency_ns > 1e15 {
            return Err(MoeError::BadReal {
                param: "latency_ns",
                value: self.latency_ns,
                expected: "at most 1e15",
            });
        }
        Ok(())
    }

    /// Checks that every GPU's HBM (the die's, [`DieSpec`]) holds its
    /// experts of every MoE layer (`ceil(E / G)` on the fullest GPU) and the
    /// KV cache of its `tokens` tokens with `context` tokens of context each
    /// (attention at TP = 1), as [`check_hbm_capacity`] does for a die.
    ///
    /// [`check_hbm_capacity`]: crate::check_hbm_capacity
    pub fn check_hbm(
        &self,
        model: &MoeModel,
        die: &DieSpec,
        context: u64,
        tokens: u64,
    ) -> Result<()> {
        self.validate()?;
        let slots = model.experts.div_ceil(self.gpus);
        crate::compute::check_device_hbm(model, die, slots, 1, context, tokens)
    }

    /// The GPU hosting `expert` of `experts`: `floor(expert * gpus /
    /// experts)`.
    pub fn host_of(&self, expert: usize, experts: usize) -> usize {
        // u128: no overflow for any usize pair.
        (expert as u128 * self.gpus as u128 / experts.max(1) as u128) as usize
    }

    /// One MoE layer whose routing is `counts` (one group per GPU).
    pub fn moe_layer(
        &self,
        model: &MoeModel,
        die: &DieSpec,
        compute: &ComputeModel,
        counts: &RoutingCounts,
    ) -> Result<ClusterLayer> {
        self.validate()?;
        model.validate()?;
        die.validate()?;
        if counts.groups() != self.gpus {
            return Err(MoeError::LengthMismatch {
                param: "routing groups (one per GPU)",
                expected: self.gpus,
                got: counts.groups(),
            });
        }
        if counts.experts() != model.experts {
            return Err(MoeError::LengthMismatch {
                param: "model.experts",
                expected: model.experts,
                got: counts.experts(),
            });
        }
        let g = self.gpus;
        let e_count = model.experts;
        let (mut sent, mut received) = (vec![0u64; g], vec![0u64; g]);
        let mut local = 0u64;
        for (src, out) in sent.iter_mut().enumerate() {
            for e in 0..e_count {
                let n = counts.get(src, e);
                let dst = self.host_of(e, e_count);
                if dst == src {
                    local += n;
                } else {
                    *out += n;
                    received[dst] += n;
                }
            }
        }
        // Copies per GPU port, the larger direction; the same for both
        // phases (combine reverses every flow).
        let port_copies = sent.iter().chain(&received).copied().max().unwrap_or(0);
        let phase = |bytes_per_copy: u64| -> f64 {
            if port_copies == 0 {
                0.0
            } else {
                (port_copies as f64 * bytes_per_copy as f64) / self.port_gbps + self.latency_ns
            }
        };
        let totals = counts.expert_totals();
        let mut per_gpu = vec![0.0f64; g];
        for (e, &tokens) in totals.iter().enumerate() {
            per_gpu[self.host_of(e, e_count)] += compute.expert_time_ns(model, die, tokens);
        }
        Ok(ClusterLayer {
            dispatch_ns: phase(model.dispatch_bytes_per_token()),
            compute_ns: per_gpu.iter().copied().fold(0.0, f64::max),
            combine_ns: phase(model.combine_bytes_per_token()),
            token_copies: counts.total(),
            local_token_copies: local,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3() -> MoeModel {
        MoeModel::preset("DeepSeek-V3").unwrap()
    }

    #[test]
    fn hbm_holds_experts_and_kv_cache() {
        let c = SwitchCluster::default();
        let die = DieSpec::default();
        // 4 experts of 44 MB x 58 layers = 10.2 GB; 64 tokens x 16384 x
        // 1152 B x 58 layers = 70 GB: fits; at 65536 tokens of context
        // 280 GB: refused, naming the context.
        c.check_hbm(&v3(), &die, 16_384, 64).unwrap();
        let e = c.check_hbm(&v3(), &die, 65_536, 64).unwrap_err();
        assert_eq!(e.parameter(), "context");
        let two = SwitchCluster { gpus: 2, ..c };
        let e = two.check_hbm(&v3(), &die, 0, 0).unwrap_err();
        assert_eq!(e.parameter(), "shadow_slots_per_device");
        assert!(e.to_string().contains("128 expert slots x 58"), "{e}");
    }

    #[test]
    fn experts_spread_three_or_four_per_gpu_on_nvl72() {
        let c = SwitchCluster::default();
        let mut per = vec![0usize; 72];
        for e in 0..256 {
            per[c.host_of(e, 256)] += 1;
        }
        assert_eq!(per.iter().sum::<usize>(), 256);
        assert_eq!(per.iter().filter(|&&n| n == 4).count(), 40);
        assert_eq!(per.iter().filter(|&&n| n == 3).count(), 32);
        // Contiguous blocks: hosts never decrease.
        assert!((1..256).all(|e| c.host_of(e, 256) >= c.host_of(e - 1, 256)));
    }

    /// Three GPUs, three experts (one each): GPU 2 sends 7 copies and
    /// receives 1, GPU 0 receives 6 and sends 2; the port bound is the
    /// largest of all six counters (7, GPU 2's sends), and the compute the
    /// slowest GPU's, with one compute-bound expert (its 400 copies outlast
    /// the weight read).
    #[test]
    fn port_bound_is_the_busiest_port_and_compute_the_slowest_gpu() {
        let mut m = v3();
        m.experts = 3;
        m.top_k = 1;
        let c = SwitchCluster {
            gpus: 3,
            port_gbps: 50.0,
            latency_ns: 0.0,
        };
        let mut counts = RoutingCounts::new(3, 3).unwrap();
        counts.add(2, 0, 6).unwrap(); // GPU 2 -> GPU 0
        counts.add(2, 1, 1).unwrap(); // GPU 2 -> GPU 1
        counts.add(0, 2, 1).unwrap(); // GPU 0 -> GPU 2
        counts.add(0, 1, 1).unwrap(); // GPU 0 -> GPU 1
        counts.add(1, 1, 400).unwrap(); // local on GPU 1
        let die = DieSpec::default();
        let cm = ComputeModel::default();
        let r = c.moe_layer(&m, &die, &cm, &counts).unwrap();
        // Sent: [2, 0, 7]; received: [6, 2, 1].
        let h = m.hidden as f64;
        assert_eq!(r.dispatch_ns, 7.0 * h / 50.0);
        assert_eq!(r.combine_ns, 7.0 * h * 2.0 / 50.0);
        assert_eq!((r.token_copies, r.local_token_copies), (409, 400));
        let t = |n| cm.expert_time_ns(&m, &die, n);
        // Expert 1 (GPU 1): 402 copies, compute-bound.
        assert!(t(402) > t(1) * 2.0, "expert 1 must be compute-bound");
        assert_eq!(r.compute_ns, t(402));
        assert!(r.compute_ns > t(6) && r.compute_ns > t(1));
        // And a port that receives more than any port sends: GPU 0
        // receives 9 (3 from GPU 1, 6 from GPU 2); sent [1, 3, 6].
        let mut counts = RoutingCounts::new(3, 3).unwrap();
        counts.add(1, 0, 3).unwrap();
        counts.add(2, 0, 6).unwrap();
        counts.add(0, 2, 1).unwrap();
        let r = c.moe_layer(&m, &die, &cm, &counts).unwrap();
        assert_eq!(r.dispatch_ns, 9.0 * h / 50.0);
    }

    /// Two GPUs, four experts (two each), hand-computed times.
    #[test]
    fn port_bound_and_compute_by_hand() {
        let mut m = v3();
        m.experts = 4;
        m.top_k = 2;
        let c = SwitchCluster {
            gpus: 2,
            port_gbps: 100.0,
            latency_ns: 7.0,
        };
        let mut counts = RoutingCounts::new(2, 4).unwrap();
        // GPU 0: 5 copies to expert 0 (its own), 3 to expert 2 (GPU 1).
        counts.add(0, 0, 5).unwrap();
        counts.add(0, 2, 3).unwrap();
        // GPU 1: 6 copies to expert 1 (GPU 0), 2 to expert 3 (its own).
        counts.add(1, 1, 6).unwrap();
        counts.add(1, 3, 2).unwrap();
        let die = DieSpec::default();
        let cm = ComputeModel::default();
        let r = c.moe_layer(&m, &die, &cm, &counts).unwrap();
        assert_eq!((r.token_copies, r.local_token_copies), (16, 7));
        // Port bound: GPU 1 sends 6, GPU 0 receives 6.
        let h = m.hidden as f64;
        assert_eq!(r.dispatch_ns, 6.0 * h * 1.0 / 100.0 + 7.0);
        assert_eq!(r.combine_ns, 6.0 * h * 2.0 / 100.0 + 7.0);
        let t = |n| cm.expert_time_ns(&m, &die, n);
        let gpu0 = t(5) + t(6);
        let gpu1 = t(3) + t(2);
        assert_eq!(r.compute_ns, gpu0.max(gpu1));
        assert_eq!(r.moe_ns(), r.dispatch_ns + r.compute_ns + r.combine_ns);
    }

    #[test]
    fn all_local_moves_nothing() {
        let mut m = v3();
        m.experts = 2;
        m.top_k = 1;
        let c = SwitchCluster {
            gpus: 2,
            port_gbps: 900.0,
            latency_ns: 1000.0,
        };
        let mut counts = RoutingCounts::new(2, 2).unwrap();
        counts.add(0, 0, 9).unwrap();
        counts.add(1, 1, 9).unwrap();
        let r = c
            .moe_layer(&m, &DieSpec::default(), &ComputeModel::default(), &counts)
            .unwrap();
        assert_eq!((r.dispatch_ns, r.combine_ns), (0.0, 0.0));
        assert_eq!(r.local_token_copies, 18);
        assert!(r.compute_ns > 0.0);
    }

    #[test]
    fn bad_parameters_are_named() {
        let m = v3();
        let die = DieSpec::default();
        let cm = ComputeModel::default();
        let counts = RoutingCounts::new(72, 256).unwrap();
        let bad = |c: SwitchCluster| c.moe_layer(&m, &die, &cm, &counts).unwrap_err().parameter();
        let d = SwitchCluster::default();
        assert_eq!(bad(SwitchCluster { gpus: 0, ..d }), "gpus");
        assert_eq!(
            bad(SwitchCluster {
                port_gbps: f64::NAN,
                ..d
            }),
            "port_gbps"
        );
        assert_eq!(
            bad(SwitchCluster {
                latency_ns: -1.0,
                ..d
            }),
            "latency_ns"
        );
        for c in [
            SwitchCluster {
                gpus: MAX_CLUSTER_GPUS + 1,
                ..d
            },
            SwitchCluster {
                port_gbps: 1e-300,
                ..d
            },
            SwitchCluster {
                latency_ns: 1e308,
                ..d
            },
        ] {
            assert!(c.validate().is_err(), "{c:?}");
        }
        let wrong = RoutingCounts::new(16, 256).unwrap();
        let e = d.moe_layer(&m, &die, &cm, &wrong).unwrap_err();
        assert!(e.to_string().contains("one per GPU"), "{e}");
    }
}
