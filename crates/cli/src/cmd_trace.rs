//! `wafernoc trace ...`: import, convert and summarise traces.

use clap::Args;

use crate::CmdResult;

/// Arguments of `wafernoc trace`.
#[derive(Args, Debug)]
pub struct TraceArgs {}

/// Run `wafernoc trace`.
pub fn run(_args: TraceArgs) -> CmdResult {
    Err(crate::CliError::new("wafernoc trace: not implemented yet"))
}
