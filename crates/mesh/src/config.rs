//! Network configuration: topology, router, routing and message classes.

use serde::{Deserialize, Serialize};
use wafernoc_router::RouterConfig;

use crate::routing::Routing;
use crate::topology::{MeshSpec, PORTS};

/// A message class: a disjoint, contiguous set of VCs and a switch-allocation
/// priority (higher wins). Later issues carry collectives, migration and
/// request/reply traffic on separate classes, which also rules out protocol
/// deadlock between them (see `docs/deadlock.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    /// Name used in reports.
    pub name: String,
    /// Number of VCs of this class.
    pub vcs: usize,
    /// Switch-allocation priority; higher is served first.
    #[serde(default)]
    pub priority: u8,
}

/// Everything needed to build a [`crate::Network`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Mesh and wafer layout, link latencies and bandwidths.
    pub mesh: MeshSpec,
    /// Router microarchitecture.
    pub router: RouterConfig,
    /// Routing function.
    pub routing: Routing,
    /// Message classes; their VC counts must add up to `router.num_vcs`.
    /// Empty means one class `data` with every VC.
    pub classes: Vec<ClassSpec>,
    /// Cycles without any flit moving, while flits are in the network, after
    /// which the run stops with a deadlock report. 0 picks max(1000, 8 ×
    /// the scheduling horizon: the longest delay an item can be scheduled
    /// ahead, the slowest link's or credit link's latency plus the switch,
    /// crossbar and output delays and a margin, more with batched stages).
    /// Any other value must exceed the horizon (`Network::check_config`).
    pub deadlock_timeout: u64,
    /// Check mode: evaluate every router and interface every cycle instead of
    /// only the active ones, always with the general router step (not the
    /// one specialised for the default pipeline). Results must be identical
    /// (tested).
    pub step_all: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            mesh: MeshSpec::default(),
            router: RouterConfig::default(),
            routing: Routing::Xy,
            classes: Vec::new(),
            deadlock_timeout: 0,
            step_all: false,
        }
    }
}

/// A configuration that cannot be simulated, naming the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// Router parameter.
    #[error(transparent)]
    Router(#[from] wafernoc_router::ConfigError),
    /// Topology parameter.
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
    /// Anything else.
    #[error("invalid parameter `{key}`: {reason}")]
    Other {
        /// Key at fault.
        key: String,
        /// Why.
        reason: String,
    },
}

impl NetworkConfig {
    /// The effective message classes (one default class if none given).
    pub fn effective_classes(&self) -> Vec<ClassSpec> {
        if self.classes.is_empty() {
            vec![ClassSpec {
                name: "data".into(),
                vcs: self.router.num_vcs,
                priority: 0,
            }]
        } else {
            self.classes.clone()
        }
    }

    /// Check cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.router.validate(PORTS)?;
        let classes = self.effective_classes();
        // Saturating: huge per-class counts must not wrap around to num_vcs.
        let total = classes.iter().fold(0usize, |t, c| t.saturating_add(c.vcs));
        if total != self.router.num_vcs {
            return Err(ConfigError::Other {
                key: "classes".into(),
                reason: format!(
                    "class VCs add up to {total} but num_vcs is {}",
                    self.router.num_vcs
                ),
            });
        }
        for c in &classes {
            if c.vcs < self.routing.min_vcs_per_class() {
                return Err(ConfigError::Other {
                    key: "classes".into(),
                    reason: format!(
                        "class `{}` has {} VC(s); routing `{}` needs at least {} per class",
                        c.name,
                        c.vcs,
                        self.routing.name(),
                        self.routing.min_vcs_per_class()
                    ),
                });
            }
        }
        for (i, c) in classes.iter().enumerate() {
            if classes[..i].iter().any(|d| d.name == c.name) {
                return Err(ConfigError::Other {
                    key: "classes".into(),
                    reason: format!("class name `{}` is used twice", c.name),
                });
            }
        }
        if classes.len() > 16 {
            return Err(ConfigError::Other {
                key: "classes".into(),
                reason: "at most 16 classes".into(),
            });
        }
        Ok(())
    }
}

/// Classes of priority 0 from (name, VCs) pairs, for tests.
#[cfg(test)]
pub(crate) fn test_classes(classes: &[(&str, usize)]) -> Vec<ClassSpec> {
    classes
        .iter()
        .map(|&(name, vcs)| ClassSpec {
            name: name.into(),
            vcs,
            priority: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_classes(classes: &[(&str, usize)]) -> NetworkConfig {
        NetworkConfig {
            classes: test_classes(classes),
            ..Default::default()
        }
    }

    #[test]
    fn class_vc_sums_do_not_wrap_and_names_are_unique() {
        // usize::MAX + 5 wraps to num_vcs = 4 with a plain sum.
        let e = with_classes(&[("a", usize::MAX), ("b", 5)])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("add up to"), "{e}");
        let e = with_classes(&[("a", 2), ("a", 2)]).validate().unwrap_err();
        assert!(e.to_string().contains("`a` is used twice"), "{e}");
        with_classes(&[("a", 2), ("b", 2)]).validate().unwrap();
    }
}
