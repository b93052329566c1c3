//! `wafernoc check-deadlock`: static deadlock verdict from the CDG.

use clap::Args;

use crate::CmdResult;

/// Arguments of `wafernoc check-deadlock`.
#[derive(Args, Debug)]
pub struct CheckDeadlockArgs {}

/// Run `wafernoc check-deadlock`.
pub fn run(_a: CheckDeadlockArgs) -> CmdResult {
    Err(crate::CliError::new("check-deadlock: not implemented yet"))
}
