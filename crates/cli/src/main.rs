//! The `wafernoc` command-line tool. Each subcommand lives in its own module
//! (`cmd_*.rs`); this file only parses arguments and maps errors to exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod error;

pub use error::{CliError, CmdResult};

/// wafernoc: cycle-level, flit-level NoC simulator for MoE on wafer-scale chips.
#[derive(Parser, Debug)]
#[command(name = "wafernoc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: CmdResult = match cli.command {};
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
