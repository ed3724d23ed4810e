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
    let version = env!("CARGO_PKG_VERSION");
    let uapi = crate::uapi::UAPI_VERSION;
    if cli.json {
        println!("{{\"version\":\"{version}\",\"uapi\":{uapi}}}");
    } else {
        println!(
            "hswapctl {version} (speaks the {} ABI version {uapi})",
            crate::uapi::DEVICE_PATH
        );
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
    fn ioctl_numbers_encode_their_struct_sizes() {
        use crate::uapi::*;
        assert_eq!(
            ioc_size(HOTSWAP_IOC_OBJECT_STATUS),
            size_of::<ObjectStatus>()
        );
        assert_eq!(ioc_size(HOTSWAP_IOC_SWAP), size_of::<SwapRequest>());
        assert_eq!(size_of::<ObjectStatus>(), 400);
        assert_eq!(HOTSWAP_IOC_VERSION >> 8 & 0xff, IOC_TYPE);
    }

    #[test]
    fn name_fields_round_trip_and_refuse_bad_names() {
        use crate::uapi::*;
        let field = name_field("distributed").unwrap();
        assert_eq!(field_str(&field), "distributed");
        assert!(name_field("").is_none());
        assert!(name_field(&"x".repeat(NAME_LEN)).is_none());
        assert!(name_field("a\0b").is_none());
    }

    #[test]
    fn json_flag_parses() {
        let cli = Cli::try_parse_from(["hswapctl", "--json"]).unwrap();
        assert!(cli.json);
    }
}
