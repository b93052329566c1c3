//! The one error type of the CLI: a message for the user and an exit status.

use std::fmt;
use std::process::ExitCode;

/// Result of a subcommand: the exit code on success (0, or 3 for a reported
/// deadlock verdict), or an error to print.
pub type CmdResult = Result<ExitCode, CliError>;

/// A user-facing error. `Display` is the whole message (it names the file,
/// key, record or line at fault); `exit_code` is the process status.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// A usage or input error (exit status 2).
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 2,
        }
    }
    /// An error with a specific exit status (3 = deadlock).
    pub fn with_code(message: impl Into<String>, code: u8) -> Self {
        CliError {
            message: message.into(),
            code,
        }
    }
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Convert any displayable error into a `CliError` (exit 2) with context.
pub fn ctx<E: fmt::Display>(context: impl fmt::Display) -> impl FnOnce(E) -> CliError {
    move |e| CliError::new(format!("{context}: {e}"))
}
