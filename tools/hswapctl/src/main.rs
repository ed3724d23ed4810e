// SPDX-License-Identifier: GPL-2.0
//! `hswapctl`: the control tool for hotswap.
//!
//! Thin commands (`commands/`) over a device trait (`device.rs`) that the
//! real `/dev/hotswap` (with `/dev/hotswap-file` for FCM memory) and the
//! tests' fake both implement. One exit point: `main` prints the error
//! chain and picks the exit code (0 ok, 1 operation failed; clap exits
//! with 2 on usage errors).

mod cli;
mod commands;
mod device;
mod errors;
mod model;
mod output;

/// The `/dev/hotswap` ioctl ABI: the very file hotswap.ko compiles, so the
/// tool and the kernel cannot disagree on a struct.
#[path = "../../../rust/abi/uapi.rs"]
mod uapi;

/// The FCM part of the ABI (`/dev/hotswap-file`: FCM memory), compiled by
/// hotswap_fcm.ko; it uses `crate::uapi`, so it is mounted beside it.
#[path = "../../../fcm/lib/abi/fcm_uapi.rs"]
#[expect(
    dead_code,
    reason = "the cached-file part of the ABI (attach, info, truncate) is for the FCM clients, not hswapctl"
)]
mod fcm_uapi;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(&cli) {
        Ok(commands::Outcome::Ok) => ExitCode::SUCCESS,
        Ok(commands::Outcome::Failed) => ExitCode::from(1),
        Err(err) => {
            eprintln!("hswapctl: {err:#}");
            ExitCode::from(1)
        }
    }
}
