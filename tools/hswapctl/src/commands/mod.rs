// SPDX-License-Identifier: GPL-2.0
//! The commands: thin functions over a [`Device`]. Each returns what to
//! print and whether the operation succeeded; `run` does the printing.

mod list;
mod memory;
mod policy;
mod status;
mod swap;
mod watch;

use crate::cli::{Cli, Command};
use crate::device::{Dev, Device};
use crate::errors;
use crate::uapi::UAPI_VERSION;
use anyhow::{bail, Result};
use clap::CommandFactory;

/// How a command ended (errors travel as `Err`).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The command ran but what it asked for did not (fully) happen.
    Failed,
}

/// Opens the device and refuses to go on if the ABIs differ.
fn open(cli: &Cli) -> Result<Dev> {
    let dev = Dev::open(&cli.device, &cli.file_device)?;
    check_abi(&dev)?;
    Ok(dev)
}

/// Refuses a kernel that speaks another ABI version.
pub fn check_abi(dev: &dyn Device) -> Result<()> {
    let version = dev.version()?;
    if version.uapi != UAPI_VERSION {
        bail!(errors::abi_mismatch(version.uapi, UAPI_VERSION));
    }
    Ok(())
}

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<Outcome> {
    let (text, outcome) = match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "hswapctl",
                &mut std::io::stdout(),
            );
            return Ok(Outcome::Ok);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(Outcome::Ok);
        }
        Command::Watch { interval } => return watch::run(&open(cli)?, *interval, cli.json),
        Command::List => list::run(&open(cli)?, cli.json)?,
        Command::Status { object } => status::run(&open(cli)?, *object, cli.json)?,
        Command::Swap(args) => swap::swap(&open(cli)?, args, cli.json)?,
        Command::Interpose(args) => swap::interpose(&open(cli)?, args, true)?,
        Command::Uninterpose(args) => swap::interpose(&open(cli)?, args, false)?,
        Command::Timeout { ms, object } => swap::timeout(&open(cli)?, *ms, *object)?,
        Command::Policy(args) => policy::run(&open(cli)?, args, cli.json)?,
        Command::Memory { budget } => memory::run(&open(cli)?, budget.as_deref(), cli.json)?,
    };
    print!("{text}");
    Ok(outcome)
}

#[cfg(test)]
pub mod fake;
