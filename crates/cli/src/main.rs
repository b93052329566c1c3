//! The `wafernoc` command-line tool. Each subcommand lives in its own module
//! (`cmd_*.rs`); this file only parses arguments and maps errors to exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_trace;
mod error;
#[allow(dead_code)]
mod plot;

pub use error::{CliError, CmdResult};

/// wafernoc: cycle-level, flit-level NoC simulator for MoE on wafer-scale chips.
#[derive(Parser, Debug)]
#[command(name = "wafernoc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import, convert and summarise packet and MoE routing traces.
    Trace(cmd_trace::TraceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: CmdResult = match cli.command {
        Command::Trace(a) => cmd_trace::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
