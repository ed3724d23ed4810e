// SPDX-License-Identifier: GPL-2.0
//! Command-line grammar. Commands (list, status, swap, interpose, watch)
//! arrive with the control-tool issue; today the tool reports its version.

use anyhow::Result;
use clap::Parser;

/// Hot swapping for the Linux kernel: list, swap and interpose live
/// components through /dev/hotswap.
#[derive(Debug, Parser)]
#[command(name = "hswapctl", version, about, long_about = None)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<()> {
    if cli.json {
        println!("{{\"version\":\"{}\"}}", env!("CARGO_PKG_VERSION"));
    } else {
        println!("hswapctl {}", env!("CARGO_PKG_VERSION"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    #[test]
    fn version_flag_is_accepted() {
        let err = Cli::try_parse_from(["hswapctl", "--version"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DisplayVersion);
    }

    #[test]
    fn unknown_flag_is_a_usage_error() {
        let err = Cli::try_parse_from(["hswapctl", "--bogus"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn json_flag_parses() {
        let cli = Cli::try_parse_from(["hswapctl", "--json"]).unwrap();
        assert!(cli.json);
    }
}
