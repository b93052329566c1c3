//! Router microarchitecture parameters.

use serde::{Deserialize, Serialize};

use crate::allocator::AllocatorKind;
use crate::arbiter::ArbiterKind;

/// An impossible router parameter, naming the key at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid router parameter `{key}`: {reason}")]
pub struct ConfigError {
    /// Configuration key.
    pub key: &'static str,
    /// Why the value is rejected.
    pub reason: String,
}

/// Parameters of every router in a network. Delays are in cycles and follow
/// BookSim2's meaning of the keys of the same name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Virtual channels per port (all message classes together).
    pub num_vcs: usize,
    /// Depth of each input VC buffer in flits.
    pub vc_buf_size: usize,
    /// Route computation delay; 0 is lookahead routing (route computed at the
    /// previous router).
    pub routing_delay: u32,
    /// VC allocation delay (≥ 1).
    pub vc_alloc_delay: u32,
    /// Switch allocation delay (≥ 1).
    pub sw_alloc_delay: u32,
    /// Switch traversal preparation delay.
    pub st_prepare_delay: u32,
    /// Switch traversal delay; crossbar delay = prepare + final (≥ 1).
    pub st_final_delay: u32,
    /// Extra cycles before a received credit takes effect.
    pub credit_delay: u32,
    /// Extra cycles between leaving the crossbar and entering the link.
    pub output_delay: u32,
    /// Speculative switch allocation: a head flit bids for the switch in the
    /// same cycle as VC allocation; non-speculative requests win conflicts.
    pub speculative: bool,
    /// Free an output VC only after the credit of its tail flit has returned
    /// (otherwise as soon as the tail has been sent).
    pub wait_for_tail_credit: bool,
    /// VC allocator.
    pub vc_allocator: AllocatorKind,
    /// Switch allocator.
    pub sw_allocator: AllocatorKind,
    /// Arbiter used inside separable allocators.
    pub arbiter: ArbiterKind,
    /// BookSim2's routing and crossbar stages (its iq router's
    /// `_route_vcs` and `_crossbar_flits`): each is one queue per router
    /// that starts all its waiting items together, and only once the
    /// previous batch has left, so with a delay of 2 or more a stage is
    /// not pipelined (an item may wait up to a delay before it starts),
    /// and the flits of one crossbar batch leave each output one per cycle.
    /// With delays of 0 or 1 this is the same as `false`, which pipelines
    /// every stage. The `booksim` reader sets it.
    pub batched_stages: bool,
    /// With `speculative`: speculative switch requests share the one
    /// switch allocation with the others, as BookSim2's iq router's
    /// default `spec_sw_allocator = prio` (with `spec_check_elig` and
    /// `spec_check_cred`): a head asks only for outputs with a free output
    /// VC that has credit, a non-speculative request of the same input and
    /// output displaces it, and the iSLIP allocator weighs both alike.
    /// `false`: speculative requests are allocated in a second pass on
    /// the inputs and outputs left free. Needs an iSLIP switch allocator
    /// and one priority level. The `booksim` reader sets it.
    pub shared_speculation: bool,
}

impl Default for RouterConfig {
    /// BookSim2's reference router of ../shared/reference/booksim: 4 VCs of 8
    /// flits, 1-cycle stages, iSLIP with one iteration, round-robin arbiters.
    fn default() -> Self {
        RouterConfig {
            num_vcs: 4,
            vc_buf_size: 8,
            routing_delay: 1,
            vc_alloc_delay: 1,
            sw_alloc_delay: 1,
            st_prepare_delay: 0,
            st_final_delay: 1,
            credit_delay: 0,
            output_delay: 0,
            speculative: false,
            wait_for_tail_credit: false,
            vc_allocator: AllocatorKind::Islip { iters: 1 },
            sw_allocator: AllocatorKind::Islip { iters: 1 },
            arbiter: ArbiterKind::RoundRobin,
            batched_stages: false,
            shared_speculation: false,
        }
    }
}

impl RouterConfig {
    /// Crossbar (switch traversal) delay in cycles.
    pub fn crossbar_delay(&self) -> u32 {
        self.st_prepare_delay + self.st_final_delay
    }

    /// Check every parameter; `ports` is the router radix (inputs = outputs).
    pub fn validate(&self, ports: usize) -> Result<(), ConfigError> {
        let err = |key, reason: String| Err(ConfigError { key, reason });
        if self.num_vcs == 0 || self.num_vcs > 32 {
            return err("num_vcs", format!("{} is not in 1..=32", self.num_vcs));
        }
        if ports * self.num_vcs > crate::MAX_PORT_VCS {
            return err(
                "num_vcs",
                format!(
                    "{} ports × {} VCs = {} exceeds the supported {} per router",
                    ports,
                    self.num_vcs,
                    ports * self.num_vcs,
                    crate::MAX_PORT_VCS
                ),
            );
        }
        if self.vc_buf_size == 0 || self.vc_buf_size > 4096 {
            return err(
                "vc_buf_size",
                format!("{} is not in 1..=4096", self.vc_buf_size),
            );
        }
        if self.vc_alloc_delay == 0 {
            return err("vc_alloc_delay", "must be at least 1 cycle".into());
        }
        if self.sw_alloc_delay == 0 {
            return err("sw_alloc_delay", "must be at least 1 cycle".into());
        }
        if self.crossbar_delay() == 0 {
            return err(
                "st_final_delay",
                "st_prepare_delay + st_final_delay must be at least 1".into(),
            );
        }
        for (key, d) in [
            ("routing_delay", self.routing_delay),
            ("vc_alloc_delay", self.vc_alloc_delay),
            ("sw_alloc_delay", self.sw_alloc_delay),
            ("st_prepare_delay", self.st_prepare_delay),
            ("st_final_delay", self.st_final_delay),
            ("credit_delay", self.credit_delay),
            ("output_delay", self.output_delay),
        ] {
            if d > 64 {
                return err(key, format!("{d} cycles is more than the supported 64"));
            }
        }
        if self.shared_speculation
            && self.speculative
            && !matches!(self.sw_allocator, AllocatorKind::Islip { .. })
        {
            return err(
                "shared_speculation",
                "needs an iSLIP switch allocator (BookSim2's separable allocators weigh \
                 speculative requests by priority, which wafernoc's do not)"
                    .into(),
            );
        }
        if self.speculative && self.routing_delay == 0 {
            return err(
                "speculative",
                "speculation with lookahead routing is not supported".into(),
            );
        }
        for (key, a) in [
            ("vc_allocator", self.vc_allocator),
            ("sw_allocator", self.sw_allocator),
        ] {
            if let AllocatorKind::Islip { iters } = a {
                if iters == 0 || iters > 16 {
                    return err(key, format!("iSLIP iterations {iters} not in 1..=16"));
                }
            }
        }
        Ok(())
    }
}
