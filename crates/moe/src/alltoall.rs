//! MoE dispatch and combine as pure traffic matrices (no packets).
//!
//! Pipeline: per-(DP group, expert) token-copy counts ([`RoutingCounts`]) are
//! split over the experts' live replicas ([`assign`]), then turned into
//! `(src, dst, bytes)` flows ([`dispatch`], [`combine`]).
//!
//! **Senders.** In [`AllToAllMode::Confined`] (MoEntwine), group `g`'s copies
//! for a replica on device `d` are sent by group `g`'s member inside FTD(`d`),
//! so every flow stays inside one FTD. In [`AllToAllMode::Global`] (the
//! comparison), every copy of group `g` is sent by one fixed member: ring
//! position 0 of the group ([`Layout::global_sender`]).
//!
//! **Sizes.** Dispatch moves `H * dispatch_bytes_per_elem` bytes per token
//! copy, from sender to replica; combine moves `H * combine_bytes_per_elem`
//! bytes per copy back, from replica to the same sender.
//!
//! **Self-sends.** A copy whose sender is the replica's own device needs no
//! network; such copies are reported in [`AllToAll::local`], never in
//! [`AllToAll::flows`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{MoeError, Result};
use crate::model::MoeModel;
use crate::placement::Placement;
use crate::plan::Layout;
use crate::{DeviceId, ExpertId};

/// Token copies per (DP group, expert) for one layer and one iteration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutingCounts {
    groups: usize,
    experts: usize,
    counts: Vec<u64>,
}

impl RoutingCounts {
    /// All-zero counts.
    pub fn new(groups: usize, experts: usize) -> Result<Self> {
        crate::error::nonzero("groups", groups)?;
        crate::error::nonzero("experts", experts)?;
        let len = groups
            .checked_mul(experts)
            .ok_or(MoeError::Zero { param: "groups" })?;
        Ok(RoutingCounts {
            groups,
            experts,
            counts: vec![0; len],
        })
    }

    /// Counts from explicit tokens: `tokens[g][i]` lists token `i` of group
    /// `g`'s chosen experts. Expert ids must be `< experts` and distinct within
    /// a token.
    pub fn from_tokens(experts: usize, tokens: &[Vec<Vec<ExpertId>>]) -> Result<Self> {
        let mut c = RoutingCounts::new(tokens.len(), experts)?;
        let mut seen = vec![usize::MAX; experts];
        let mut serial = 0usize;
        for (g, group) in tokens.iter().enumerate() {
            for (i, tok) in group.iter().enumerate() {
                for &e in tok {
                    if e >= experts {
                        return Err(MoeError::ExpertOutOfRange {
                            param: "tokens",
                            expert: e,
                            experts,
                        });
                    }
                    if seen[e] == serial {
                        return Err(MoeError::DuplicateExpert {
                            group: g,
                            token: i,
                            expert: e,
                        });
                    }
                    seen[e] = serial;
                    c.counts[g * experts + e] += 1;
                }
                serial += 1;
            }
        }
        Ok(c)
    }

    /// Adds `n` copies of group `group`'s tokens to expert `expert`.
    pub fn add(&mut self, group: usize, expert: ExpertId, n: u64) -> Result<()> {
        if group >= self.groups {
            return Err(MoeError::GroupOutOfRange {
                param: "group",
                group,
                groups: self.groups,
            });
        }
        if expert >= self.experts {
            return Err(MoeError::ExpertOutOfRange {
                param: "expert",
                expert,
                experts: self.experts,
            });
        }
        let c = &mut self.counts[group * self.experts + expert];
        *c = c.saturating_add(n);
        Ok(())
    }

    /// Copies of group `group`'s tokens for `expert` (0 if out of range).
    pub fn get(&self, group: usize, expert: ExpertId) -> u64 {
        if group < self.groups && expert < self.experts {
            self.counts[group * self.experts + expert]
        } else {
            0
        }
    }

    /// DP groups.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Experts.
    pub fn experts(&self) -> usize {
        self.experts
    }

    /// Copies per expert over all groups (the expert load of this iteration).
    pub fn expert_totals(&self) -> Vec<u64> {
        let mut t = vec![0u64; self.experts];
        for row in self.counts.chunks(self.experts) {
            for (x, &c) in t.iter_mut().zip(row) {
                *x += c;
            }
        }
        t
    }

    /// All token copies.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Who sends a DP group's token copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllToAllMode {
    /// MoEntwine: the group's member inside the destination's FTD.
    #[default]
    Confined,
    /// Comparison: the group's member at ring position 0, for every copy.
    Global,
}

/// Token copies of one DP group served by one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// DP group.
    pub group: usize,
    /// Expert.
    pub expert: ExpertId,
    /// Device of the serving (live) replica.
    pub device: DeviceId,
    /// Token copies.
    pub token_copies: u64,
}

/// The split of one iteration's copies over live replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    devices: usize,
    shares: Vec<Share>,
}

impl Assignment {
    /// All shares, ordered by group, then expert, then replica order.
    pub fn shares(&self) -> &[Share] {
        &self.shares
    }

    /// Per device, the copies served per hosted expert: `result[d]` lists
    /// `(expert, copies)` sorted by expert, experts with no copies omitted.
    /// This is the compute model's input.
    pub fn per_device(&self) -> Vec<Vec<(ExpertId, u64)>> {
        let mut m: Vec<BTreeMap<ExpertId, u64>> = vec![BTreeMap::new(); self.devices];
        for s in &self.shares {
            *m[s.device].entry(s.expert).or_insert(0) += s.token_copies;
        }
        m.into_iter().map(|b| b.into_iter().collect()).collect()
    }
}

/// Splits every (group, expert) count over the expert's live replicas with
/// [`Placement::split`] (rotation = group index).
pub fn assign(
    layout: &Layout,
    placement: &Placement,
    counts: &RoutingCounts,
) -> Result<Assignment> {
    if counts.groups() != layout.dp() {
        return Err(MoeError::LengthMismatch {
            param: "counts.groups",
            expected: layout.dp(),
            got: counts.groups(),
        });
    }
    if counts.experts() != placement.num_experts() {
        return Err(MoeError::LengthMismatch {
            param: "counts.experts",
            expected: placement.num_experts(),
            got: counts.experts(),
        });
    }
    if placement.num_devices() != layout.num_devices() {
        return Err(MoeError::LengthMismatch {
            param: "placement",
            expected: layout.num_devices(),
            got: placement.num_devices(),
        });
    }
    let mut shares = Vec::new();
    for group in 0..counts.groups() {
        for expert in 0..counts.experts() {
            let c = counts.get(group, expert);
            if c == 0 {
                continue;
            }
            for (device, token_copies) in placement.split(expert, c, group).unwrap_or_default() {
                shares.push(Share {
                    group,
                    expert,
                    device,
                    token_copies,
                });
            }
        }
    }
    Ok(Assignment {
        devices: layout.num_devices(),
        shares,
    })
}

/// The device that sends group `group`'s copies to a replica on `dst`.
pub fn sender(
    layout: &Layout,
    group: usize,
    dst: DeviceId,
    mode: AllToAllMode,
) -> Option<DeviceId> {
    match mode {
        AllToAllMode::Confined => layout.member(group, layout.ftd_of(dst)?),
        AllToAllMode::Global => layout.global_sender(group),
    }
}

/// One aggregated flow between two devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Sender.
    pub src: DeviceId,
    /// Receiver.
    pub dst: DeviceId,
    /// Token copies carried.
    pub token_copies: u64,
    /// Bytes carried (`token_copies * bytes per copy`).
    pub bytes: u64,
}

/// The traffic of one all-to-all phase.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllToAll {
    /// Network flows (`src != dst`), one per (src, dst) pair, sorted by
    /// (src, dst).
    pub flows: Vec<Flow>,
    /// Self-sends (`src == dst`), one per device, sorted: no network traffic;
    /// `bytes` is what they would have carried.
    pub local: Vec<Flow>,
}

impl AllToAll {
    /// Bytes that cross the network.
    pub fn network_bytes(&self) -> u64 {
        self.flows.iter().map(|f| f.bytes).sum()
    }

    /// Token copies that cross the network.
    pub fn network_token_copies(&self) -> u64 {
        self.flows.iter().map(|f| f.token_copies).sum()
    }

    /// Token copies delivered locally (no network).
    pub fn local_token_copies(&self) -> u64 {
        self.local.iter().map(|f| f.token_copies).sum()
    }
}

fn build(
    layout: &Layout,
    assignment: &Assignment,
    mode: AllToAllMode,
    bytes_per_copy: u64,
    reverse: bool,
) -> Result<AllToAll> {
    let mut m: BTreeMap<(DeviceId, DeviceId), u64> = BTreeMap::new();
    for s in &assignment.shares {
        let from = sender(layout, s.group, s.device, mode).ok_or(MoeError::DeviceOutOfRange {
            param: "assignment",
            device: s.device,
            devices: layout.num_devices(),
        })?;
        let key = if reverse {
            (s.device, from)
        } else {
            (from, s.device)
        };
        *m.entry(key).or_insert(0) += s.token_copies;
    }
    let mut out = AllToAll::default();
    for ((src, dst), token_copies) in m {
        let f = Flow {
            src,
            dst,
            token_copies,
            bytes: token_copies.saturating_mul(bytes_per_copy),
        };
        if src == dst {
            out.local.push(f);
        } else {
            out.flows.push(f);
        }
    }
    Ok(out)
}

fn check_model(layout: &Layout, model: &MoeModel) -> Result<()> {
    model.validate()?;
    if model.experts != layout.experts() {
        return Err(MoeError::LengthMismatch {
            param: "model.experts",
            expected: layout.experts(),
            got: model.experts,
        });
    }
    Ok(())
}

/// Dispatch flows: sender -> replica, `H * dispatch_bytes_per_elem` bytes per
/// copy.
pub fn dispatch(
    layout: &Layout,
    assignment: &Assignment,
    model: &MoeModel,
    mode: AllToAllMode,
) -> Result<AllToAll> {
    check_model(layout, model)?;
    build(
        layout,
        assignment,
        mode,
        model.dispatch_bytes_per_token(),
        false,
    )
}

/// Combine flows: replica -> sender, `H * combine_bytes_per_elem` bytes per
/// copy.
pub fn combine(
    layout: &Layout,
    assignment: &Assignment,
    model: &MoeModel,
    mode: AllToAllMode,
) -> Result<AllToAll> {
    check_model(layout, model)?;
    build(
        layout,
        assignment,
        mode,
        model.combine_bytes_per_token(),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Mapping, ParallelPlan};
    use crate::spec::WaferSpec;

    fn setup(mapping: Mapping) -> (Layout, Placement, MoeModel) {
        let mut model = MoeModel::preset("DeepSeek-V2-Lite").unwrap(); // 64 experts
        model.hidden = 10;
        let l = ParallelPlan::new(4, 4, mapping)
            .layout(&WaferSpec::single(4, 4), 64)
            .unwrap();
        let p = Placement::new(&l);
        (l, p, model)
    }

    #[test]
    fn confined_dispatch_by_hand() {
        let (l, p, m) = setup(Mapping::er());
        // Group 0 = TP group at offset (0,0): devices 0 (FTD 0), 2, 10, 8.
        // Expert 16 lives in FTD 1 (experts 16..32) on ftds[1][0] = device 2.
        // Expert 17 on ftds[1][1] = device 3.
        let mut c = RoutingCounts::new(4, 64).unwrap();
        c.add(0, 16, 3).unwrap();
        c.add(0, 17, 2).unwrap();
        c.add(0, 0, 5).unwrap(); // home device 0 = group 0's own member: local.
        let a = assign(&l, &p, &c).unwrap();
        let d = dispatch(&l, &a, &m, AllToAllMode::Confined).unwrap();
        assert_eq!(
            d.flows,
            vec![Flow {
                src: 2,
                dst: 3,
                token_copies: 2,
                bytes: 20
            }]
        );
        assert_eq!(d.local_token_copies(), 8);
        assert_eq!(d.local.len(), 2);
        let cb = combine(&l, &a, &m, AllToAllMode::Confined).unwrap();
        assert_eq!(
            cb.flows,
            vec![Flow {
                src: 3,
                dst: 2,
                token_copies: 2,
                bytes: 40
            }]
        );
        // Global: everything from device 0.
        let g = dispatch(&l, &a, &m, AllToAllMode::Global).unwrap();
        assert_eq!(g.network_token_copies(), 5);
        assert_eq!(g.local_token_copies(), 5);
        assert!(g.flows.iter().all(|f| f.src == 0));
        let per = a.per_device();
        assert_eq!(per[2], vec![(16, 3)]);
        assert_eq!(per[0], vec![(0, 5)]);
    }

    #[test]
    fn replicas_split_and_stay_confined() {
        let (l, mut p, m) = setup(Mapping::er());
        p.add_replica(16, 15).unwrap();
        p.mark_live(16, 15).unwrap();
        let mut c = RoutingCounts::new(4, 64).unwrap();
        c.add(1, 16, 4).unwrap();
        let a = assign(&l, &p, &c).unwrap();
        let d = dispatch(&l, &a, &m, AllToAllMode::Confined).unwrap();
        // Group 1's member in FTD 1 is device 3 -> 2; in FTD 3 it is 11 -> 15.
        assert_eq!(
            d.flows
                .iter()
                .map(|f| (f.src, f.dst, f.token_copies))
                .collect::<Vec<_>>(),
            vec![(3, 2, 2), (11, 15, 2)]
        );
        for f in &d.flows {
            assert_eq!(l.ftd_of(f.src), l.ftd_of(f.dst));
        }
    }

    #[test]
    fn from_tokens_and_errors() {
        let c =
            RoutingCounts::from_tokens(4, &[vec![vec![0, 1], vec![1, 2]], vec![vec![3]]]).unwrap();
        assert_eq!((c.get(0, 1), c.get(1, 3), c.total()), (2, 1, 5));
        assert_eq!(c.expert_totals(), vec![1, 2, 1, 1]);
        assert_eq!(c.get(9, 9), 0);
        assert!(matches!(
            RoutingCounts::from_tokens(4, &[vec![vec![0, 0]]]),
            Err(MoeError::DuplicateExpert { .. })
        ));
        assert_eq!(
            RoutingCounts::from_tokens(4, &[vec![vec![4]]])
                .unwrap_err()
                .parameter(),
            "tokens"
        );
        assert_eq!(
            RoutingCounts::from_tokens(4, &[]).unwrap_err().parameter(),
            "groups"
        );
        assert_eq!(RoutingCounts::new(1, 0).unwrap_err().parameter(), "experts");
        let mut c = RoutingCounts::new(2, 4).unwrap();
        assert_eq!(c.add(2, 0, 1).unwrap_err().parameter(), "group");
        assert_eq!(c.add(0, 4, 1).unwrap_err().parameter(), "expert");
        let (l, p, m) = setup(Mapping::block());
        assert_eq!(assign(&l, &p, &c).unwrap_err().parameter(), "counts.groups");
        let c = RoutingCounts::new(4, 8).unwrap();
        assert_eq!(
            assign(&l, &p, &c).unwrap_err().parameter(),
            "counts.experts"
        );
        let c = RoutingCounts::new(4, 64).unwrap();
        let a = assign(&l, &p, &c).unwrap();
        let mut bad = m.clone();
        bad.experts = 32;
        assert_eq!(
            dispatch(&l, &a, &bad, AllToAllMode::Confined)
                .unwrap_err()
                .parameter(),
            "model.experts"
        );
        // A placement built for another mesh.
        let small = ParallelPlan::new(2, 2, Mapping::er())
            .layout(&WaferSpec::single(2, 2), 64)
            .unwrap();
        let ps = Placement::new(&small);
        assert_eq!(assign(&l, &ps, &c).unwrap_err().parameter(), "placement");
        let cs = RoutingCounts::new(2, 64).unwrap();
        let a_small = assign(&small, &ps, &cs).unwrap();
        assert_eq!(
            crate::ComputeModel::default()
                .moe_layer(&m, &crate::DieSpec::default(), &p, &a_small)
                .unwrap_err()
                .parameter(),
            "assignment"
        );
        bad.hidden = 0;
        assert_eq!(
            combine(&l, &a, &bad, AllToAllMode::Confined)
                .unwrap_err()
                .parameter(),
            "hidden"
        );
    }
}
