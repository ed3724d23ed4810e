// SPDX-License-Identifier: GPL-2.0
//! `hswapctl`: the control tool for hotswap.
//!
//! One exit point: `main` prints the error chain and picks the exit code
//! (0 ok, 1 operation failed, 2 usage; clap exits with 2 on usage errors).

mod cli;

/// The `/dev/hotswap` ioctl ABI: the very file hotswap.ko compiles, so the
/// tool and the kernel cannot disagree on a struct.
#[path = "../../../rust/hotswap/uapi.rs"]
#[expect(
    dead_code,
    reason = "the commands that use the rest of the ABI arrive with the control-tool issue"
)]
mod uapi;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hswapctl: {err:#}");
            ExitCode::from(1)
        }
    }
}
