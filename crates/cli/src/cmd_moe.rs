//! `wafernoc moe`: one MoE layer (all-reduce, dispatch, combine) as flit traffic.

use clap::Args;

use crate::CmdResult;

/// Arguments of `wafernoc moe`.
#[derive(Args, Debug)]
pub struct MoeArgs {}

/// Run `wafernoc moe`.
pub fn run(_a: MoeArgs) -> CmdResult {
    Err(crate::CliError::new("moe: not implemented yet"))
}
