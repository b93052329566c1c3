//! Runtime deadlock detection: the typed report of a network that stopped.
//!
//! When no flit has moved for the configured number of cycles while flits
//! are in the network, [`crate::Network::step`] returns a
//! [`DeadlockReport`]: the wait-for cycle among input VCs (each waits for a
//! downstream buffer that has no credit, or for an output VC held by another
//! input VC), plus a list of every blocked VC. The library never panics on
//! a deadlock and never only warns.

use std::fmt;

use serde::Serialize;

use crate::topology::Topology;

/// One input VC that holds flits and cannot move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WaitingVc {
    /// Router id.
    pub router: usize,
    /// Router column.
    pub x: usize,
    /// Router row.
    pub y: usize,
    /// Input port (0 = +x, 1 = −x, 2 = +y, 3 = −y, 4 = local).
    pub in_port: usize,
    /// VC index.
    pub vc: usize,
    /// Flits buffered.
    pub flits: usize,
    /// Output port it waits for, if known.
    pub waits_for_port: Option<usize>,
    /// Output VC it waits for, if known.
    pub waits_for_vc: Option<usize>,
}

/// A deadlock: where the network stopped and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadlockReport {
    /// Cycle at which it was detected.
    pub cycle: u64,
    /// Cycles without any flit moving.
    pub idle_cycles: u64,
    /// Flits still in the network.
    pub flits_in_flight: u64,
    /// The waiting cycle (empty if the wait-for graph has no cycle, e.g. a
    /// stall that is not a deadlock).
    pub wait_cycle: Vec<WaitingVc>,
    /// Blocked VCs (at most 64 listed).
    pub blocked: Vec<WaitingVc>,
    /// Number of blocked VCs.
    pub blocked_total: usize,
}

impl fmt::Display for WaitingVc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "router {} ({},{}) input {} VC {} [{} flit(s)]",
            self.router,
            self.x,
            self.y,
            Topology::port_name(self.in_port),
            self.vc,
            self.flits
        )?;
        if let (Some(p), Some(v)) = (self.waits_for_port, self.waits_for_vc) {
            write!(f, " waits for output {} VC {}", Topology::port_name(p), v)?;
        }
        Ok(())
    }
}

impl fmt::Display for DeadlockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "deadlock: no flit moved for {} cycles (detected at cycle {}), {} flit(s) in the network, {} VC(s) blocked",
            self.idle_cycles, self.cycle, self.flits_in_flight, self.blocked_total
        )?;
        if self.wait_cycle.is_empty() {
            writeln!(f, "no wait-for cycle found; blocked VCs:")?;
            for w in &self.blocked {
                writeln!(f, "  {w}")?;
            }
        } else {
            writeln!(f, "wait-for cycle of {} VCs:", self.wait_cycle.len())?;
            for w in &self.wait_cycle {
                writeln!(f, "  {w}")?;
            }
            if let Some(first) = self.wait_cycle.first() {
                writeln!(
                    f,
                    "  -> back to router {} input {} VC {}",
                    first.router,
                    Topology::port_name(first.in_port),
                    first.vc
                )?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for DeadlockReport {}
