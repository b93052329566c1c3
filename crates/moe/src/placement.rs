//! Expert placement: home experts (EP = N), shadow replicas and their state.
//!
//! **Home placement rule.** With `E` experts, `tp` FTDs of `dp` devices each:
//! FTD `f` holds the contiguous expert ids `f * E/tp .. (f+1) * E/tp`, dealt
//! round-robin over its members in TP-group order: the expert with local index
//! `l` lives on `ftds[f][l % dp]` (slot `l / dp`). Every device therefore holds
//! `E/N` home experts and every FTD `E/tp`, so a token whose expert lives in
//! FTD `f` can be sent by the member of its group inside FTD `f`: the
//! all-to-all is confined to FTDs.
//!
//! **Replicas.** Each device also has `shadow_slots_per_device` spare slots.
//! A replica starts [`ReplicaState::Pending`] (its weights are being copied)
//! and serves tokens only once the caller marks it [`ReplicaState::Live`].
//! Home replicas are always live and never evicted. An expert's token share is
//! split equally among its live replicas.

use serde::{Deserialize, Serialize};

use crate::error::{MoeError, Result};
use crate::grid::Coord;
use crate::plan::Layout;
use crate::{DeviceId, ExpertId};

/// Whether a replica serves tokens yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Weights present; serves its share of tokens.
    Live,
    /// Copy in flight; serves nothing until marked live.
    Pending,
}

/// One copy of an expert on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Device holding the copy.
    pub device: DeviceId,
    /// Live or pending.
    pub state: ReplicaState,
    /// The home copy (never evicted, always live) or a shadow replica.
    pub home: bool,
}

/// Where every expert lives: homes, shadow replicas, free slots.
///
/// Invariants: an expert has at most one replica per device; its home replica
/// is first in [`Placement::replicas`] and always live; a device never holds
/// more than `shadow_slots_per_device` shadow replicas. It serialises but does
/// not deserialise, so these hold for every value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    mesh_cols: usize,
    experts_per_device: usize,
    shadow_slots: usize,
    replicas: Vec<Vec<Replica>>,
    hosted: Vec<Vec<ExpertId>>,
    shadow_used: Vec<usize>,
    /// Copies still running: (expert, target device, source device). The
    /// source is pinned (the balancer never evicts it) until the target's
    /// replica is marked live or evicted. Not serialised (the result
    /// files describe replicas, not copies).
    #[serde(skip)]
    copies: Vec<(ExpertId, DeviceId, DeviceId)>,
}

impl Placement {
    /// The home placement of a layout (see the module docs), no replicas.
    pub fn new(layout: &Layout) -> Placement {
        let n = layout.num_devices();
        let e = layout.experts();
        let per_ftd = e / layout.tp();
        let dp = layout.dp();
        let mut replicas = Vec::with_capacity(e);
        let mut hosted = vec![Vec::with_capacity(layout.experts_per_device()); n];
        for expert in 0..e {
            let (f, l) = (expert / per_ftd, expert % per_ftd);
            let device = layout.ftds()[f][l % dp];
            replicas.push(vec![Replica {
                device,
                state: ReplicaState::Live,
                home: true,
            }]);
            hosted[device].push(expert);
        }
        Placement {
            mesh_cols: layout.mesh_cols(),
            experts_per_device: layout.experts_per_device(),
            shadow_slots: layout.shadow_slots_per_device(),
            replicas,
            hosted,
            shadow_used: vec![0; n],
            copies: Vec::new(),
        }
    }

    /// Devices.
    pub fn num_devices(&self) -> usize {
        self.hosted.len()
    }

    /// Experts.
    pub fn num_experts(&self) -> usize {
        self.replicas.len()
    }

    /// Home experts per device (E / N).
    pub fn experts_per_device(&self) -> usize {
        self.experts_per_device
    }

    /// Shadow slots per device.
    pub fn shadow_slots_per_device(&self) -> usize {
        self.shadow_slots
    }

    /// The device holding the home copy of an expert.
    pub fn home_of(&self, expert: ExpertId) -> Option<DeviceId> {
        Some(self.replicas.get(expert)?.first()?.device)
    }

    /// All replicas of an expert, home first, then shadow replicas in the
    /// order they were added.
    pub fn replicas(&self, expert: ExpertId) -> Option<&[Replica]> {
        self.replicas.get(expert).map(Vec::as_slice)
    }

    /// Devices of the live replicas of an expert, in [`Placement::replicas`]
    /// order.
    pub fn live_devices(&self, expert: ExpertId) -> Option<Vec<DeviceId>> {
        Some(
            self.replicas
                .get(expert)?
                .iter()
                .filter(|r| r.state == ReplicaState::Live)
                .map(|r| r.device)
                .collect(),
        )
    }

    /// Experts with a copy (live or pending) on a device: home experts first,
    /// then shadow replicas in the order they were added.
    pub fn experts_on(&self, device: DeviceId) -> Option<&[ExpertId]> {
        self.hosted.get(device).map(Vec::as_slice)
    }

    /// Whether a device holds a copy (live or pending) of an expert.
    pub fn hosts(&self, device: DeviceId, expert: ExpertId) -> bool {
        self.replicas
            .get(expert)
            .is_some_and(|rs| rs.iter().any(|r| r.device == device))
    }

    /// Free shadow slots on a device.
    pub fn free_slots(&self, device: DeviceId) -> Option<usize> {
        Some(self.shadow_slots - self.shadow_used.get(device)?)
    }

    /// Shadow replicas on a device.
    pub fn shadow_used(&self, device: DeviceId) -> Option<usize> {
        self.shadow_used.get(device).copied()
    }

    /// Shadow replicas in total.
    pub fn total_shadow_replicas(&self) -> usize {
        self.shadow_used.iter().sum()
    }

    /// Minimal hops between two devices.
    pub fn hops(&self, a: DeviceId, b: DeviceId) -> Option<usize> {
        let n = self.num_devices();
        if a >= n || b >= n {
            return None;
        }
        let c = |d: DeviceId| Coord::new(d % self.mesh_cols, d / self.mesh_cols);
        Some(c(a).manhattan(c(b)))
    }

    fn check(&self, expert: ExpertId, device: DeviceId) -> Result<()> {
        if expert >= self.num_experts() {
            return Err(MoeError::ExpertOutOfRange {
                param: "expert",
                expert,
                experts: self.num_experts(),
            });
        }
        if device >= self.num_devices() {
            return Err(MoeError::DeviceOutOfRange {
                param: "device",
                device,
                devices: self.num_devices(),
            });
        }
        Ok(())
    }

    /// Adds a pending shadow replica of `expert` on `device`. Errors if the
    /// device already holds the expert or has no free shadow slot.
    pub fn add_replica(&mut self, expert: ExpertId, device: DeviceId) -> Result<()> {
        self.check(expert, device)?;
        if self.hosts(device, expert) {
            return Err(MoeError::AlreadyHosted { expert, device });
        }
        if self.shadow_used[device] >= self.shadow_slots {
            return Err(MoeError::NoFreeSlot { device });
        }
        self.replicas[expert].push(Replica {
            device,
            state: ReplicaState::Pending,
            home: false,
        });
        self.hosted[device].push(expert);
        self.shadow_used[device] += 1;
        Ok(())
    }

    /// Records that the pending replica of `expert` on `target` is being
    /// copied from the replica on `source`, which stays pinned (see
    /// [`Placement::is_copy_source`]) until the copy completes
    /// ([`Placement::mark_live`]) or its target is evicted. Errors unless
    /// `target` holds a pending shadow replica and `source` a live one.
    pub fn set_copy_source(
        &mut self,
        expert: ExpertId,
        target: DeviceId,
        source: DeviceId,
    ) -> Result<()> {
        self.check(expert, target)?;
        self.check(expert, source)?;
        let state = |d: DeviceId| {
            self.replicas[expert]
                .iter()
                .find(|r| r.device == d)
                .map(|r| r.state)
        };
        if state(target) != Some(ReplicaState::Pending) {
            return Err(MoeError::NoSuchReplica {
                expert,
                device: target,
            });
        }
        if state(source) != Some(ReplicaState::Live) {
            return Err(MoeError::NoSuchReplica {
                expert,
                device: source,
            });
        }
        self.copies.retain(|&(e, t, _)| (e, t) != (expert, target));
        self.copies.push((expert, target, source));
        Ok(())
    }

    /// Whether the replica of `expert` on `device` is the source of a copy
    /// still running (the balancer must not evict it: its weights are
    /// being read).
    pub fn is_copy_source(&self, expert: ExpertId, device: DeviceId) -> bool {
        self.copies
            .iter()
            .any(|&(e, _, s)| e == expert && s == device)
    }

    /// Marks the shadow replica of `expert` on `device` live (its copy has
    /// completed, which unpins its source). Marking a live replica again is
    /// a no-op.
    pub fn mark_live(&mut self, expert: ExpertId, device: DeviceId) -> Result<()> {
        self.check(expert, device)?;
        let r = self.replicas[expert]
            .iter_mut()
            .find(|r| r.device == device && !r.home)
            .ok_or(MoeError::NoSuchReplica { expert, device })?;
        r.state = ReplicaState::Live;
        self.copies.retain(|&(e, t, _)| (e, t) != (expert, device));
        Ok(())
    }

    /// Removes the shadow replica of `expert` on `device`, freeing its slot.
    /// Home replicas cannot be evicted.
    pub fn evict(&mut self, expert: ExpertId, device: DeviceId) -> Result<()> {
        self.check(expert, device)?;
        let i = self.replicas[expert]
            .iter()
            .position(|r| r.device == device && !r.home)
            .ok_or(MoeError::NoSuchReplica { expert, device })?;
        self.replicas[expert].remove(i);
        self.hosted[device].retain(|&e| e != expert);
        self.shadow_used[device] -= 1;
        // A pending replica evicted: its copy is cancelled, its source freed.
        self.copies.retain(|&(e, t, _)| (e, t) != (expert, device));
        Ok(())
    }

    /// Per-device load given per-expert loads: each expert's load is split
    /// equally among its live replicas (`include_pending = false`), or among
    /// all its replicas as if pending copies had completed (`true`, used for
    /// planning).
    pub fn device_loads_with(
        &self,
        expert_loads: &[f64],
        include_pending: bool,
    ) -> Result<Vec<f64>> {
        if expert_loads.len() != self.num_experts() {
            return Err(MoeError::LengthMismatch {
                param: "expert_loads",
                expected: self.num_experts(),
                got: expert_loads.len(),
            });
        }
        let mut loads = vec![0.0; self.num_devices()];
        for (rs, &load) in self.replicas.iter().zip(expert_loads) {
            let serving = || {
                rs.iter()
                    .filter(move |r| include_pending || r.state == ReplicaState::Live)
            };
            let k = serving().count();
            if k == 0 {
                continue;
            }
            let share = load / k as f64;
            for r in serving() {
                loads[r.device] += share;
            }
        }
        Ok(loads)
    }

    /// Per-device load given per-expert loads, split among live replicas.
    pub fn device_loads(&self, expert_loads: &[f64]) -> Result<Vec<f64>> {
        self.device_loads_with(expert_loads, false)
    }

    /// Splits `count` token copies of `expert` among its live replicas:
    /// `count / k` each, and the `count % k` remaining copies go one each to
    /// the replicas starting at index `rotate % k` (callers pass the DP group,
    /// so remainders spread over replicas instead of piling on the home).
    /// Returns `(device, copies)` in replica order, zero shares omitted.
    pub fn split(
        &self,
        expert: ExpertId,
        count: u64,
        rotate: usize,
    ) -> Option<Vec<(DeviceId, u64)>> {
        let live = self.live_devices(expert)?;
        let k = live.len();
        if k == 0 {
            return Some(Vec::new());
        }
        let base = count / k as u64;
        let extra = (count % k as u64) as usize;
        let start = rotate % k;
        Some(
            live.into_iter()
                .enumerate()
                .map(|(i, d)| {
                    let gets_extra = (i + k - start) % k < extra;
                    (d, base + u64::from(gets_extra))
                })
                .filter(|&(_, c)| c > 0)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Mapping, ParallelPlan};
    use crate::spec::WaferSpec;

    fn er4x4(experts: usize, shadow: usize) -> Layout {
        let mut p = ParallelPlan::new(4, 4, Mapping::er());
        p.shadow_slots_per_device = shadow;
        p.layout(&WaferSpec::single(4, 4), experts).unwrap()
    }

    #[test]
    fn home_rule() {
        let l = er4x4(32, 1);
        let p = Placement::new(&l);
        // FTD 0 = devices 0,1,4,5 holds experts 0..8, round-robin.
        let homes: Vec<DeviceId> = (0..8).map(|e| p.home_of(e).unwrap()).collect();
        assert_eq!(homes, vec![0, 1, 4, 5, 0, 1, 4, 5]);
        assert_eq!(p.experts_on(5).unwrap(), &[3, 7]);
        for e in 0..32 {
            assert_eq!(l.ftd_of(p.home_of(e).unwrap()), Some(e / 8));
        }
        for d in 0..16 {
            assert_eq!(p.experts_on(d).unwrap().len(), 2);
        }
    }

    #[test]
    fn replicas_and_loads() {
        let l = er4x4(16, 1);
        let mut p = Placement::new(&l);
        let mut loads = vec![1.0; 16];
        loads[0] = 9.0;
        assert_eq!(p.device_loads(&loads).unwrap()[0], 9.0);
        p.add_replica(0, 15).unwrap();
        assert_eq!(p.free_slots(15), Some(0));
        // Pending: serves nothing.
        assert_eq!(p.device_loads(&loads).unwrap()[0], 9.0);
        assert_eq!(p.device_loads_with(&loads, true).unwrap()[0], 4.5);
        assert_eq!(p.split(0, 5, 0).unwrap(), vec![(0, 5)]);
        p.mark_live(0, 15).unwrap();
        let d = p.device_loads(&loads).unwrap();
        assert_eq!((d[0], d[15]), (4.5, 5.5));
        assert_eq!(p.split(0, 5, 0).unwrap(), vec![(0, 3), (15, 2)]);
        assert_eq!(p.split(0, 5, 1).unwrap(), vec![(0, 2), (15, 3)]);
        assert_eq!(p.split(0, 1, 1).unwrap(), vec![(15, 1)]);
        assert_eq!(p.hops(0, 15), Some(6));
        // Errors.
        assert_eq!(
            p.add_replica(1, 15),
            Err(MoeError::NoFreeSlot { device: 15 })
        );
        assert_eq!(
            p.add_replica(0, 0),
            Err(MoeError::AlreadyHosted {
                expert: 0,
                device: 0
            })
        );
        assert_eq!(p.add_replica(16, 0).unwrap_err().parameter(), "expert");
        assert_eq!(p.add_replica(0, 16).unwrap_err().parameter(), "device");
        assert_eq!(p.evict(0, 0).unwrap_err().parameter(), "device");
        assert_eq!(p.mark_live(1, 3).unwrap_err().parameter(), "device");
        assert_eq!(
            p.device_loads(&[1.0]).unwrap_err().parameter(),
            "expert_loads"
        );
        p.evict(0, 15).unwrap();
        assert_eq!(p.free_slots(15), Some(1));
        assert_eq!(p.experts_on(15).unwrap(), &[15]);
        assert_eq!(p.total_shadow_replicas(), 0);
        assert_eq!(p.split(99, 1, 0), None);
    }
}
