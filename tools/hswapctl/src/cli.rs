// SPDX-License-Identifier: GPL-2.0
//! Command-line grammar (clap). Modelled on bpftool: a verb on an
//! interface and implementation, `--json` on every read command.

use clap::{Args, Parser, Subcommand};

/// Hot swapping for the Linux kernel: list, swap and interpose live
/// components through /dev/hotswap.
#[derive(Debug, Parser)]
#[command(name = "hswapctl", version, about, long_about = None)]
pub struct Cli {
    /// Print machine-readable JSON (read commands: list, status, swap, watch,
    /// memory, policy).
    #[arg(long, global = true)]
    pub json: bool,
    /// Control device to use.
    #[arg(long, global = true, default_value = crate::uapi::DEVICE_PATH, value_name = "PATH")]
    pub device: String,
    /// Cached-file device to use for FCM memory (memory; pages in list and
    /// status).
    #[arg(long, global = true, default_value = crate::fcm_uapi::FILE_DEVICE_PATH, value_name = "PATH")]
    pub file_device: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List interfaces, implementations (with their modules) and objects.
    List,
    /// Show one object, or all: implementation, phase, calls, swaps.
    Status {
        /// Object id (all objects if omitted).
        object: Option<u32>,
    },
    /// Swap every object of INTERFACE to IMPLEMENTATION (batched) and make
    /// it the default for new objects, or one object with --object.
    Swap(SwapArgs),
    /// Put an interposer in front of every object of INTERFACE (or one).
    Interpose(TargetArgs),
    /// Remove an interposer from every object of INTERFACE (or one).
    Uninterpose(TargetArgs),
    /// Set the per-phase swap timeout of one object or all.
    Timeout {
        /// Timeout in milliseconds (1 to 3600000).
        ms: u32,
        /// Only this object.
        #[arg(long)]
        object: Option<u32>,
    },
    /// Show or set the decision policy of an interface: the algorithm that
    /// swaps its objects by itself (fcm: cpu_count swaps FCMs used by
    /// several CPUs to distributed, and back to shared).
    Policy(PolicyArgs),
    /// A live view of objects, implementations, phases and call rates;
    /// one snapshot when stdout is not a terminal.
    Watch {
        /// Refresh interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval: u64,
    },
    /// FCM memory (hotswap_fcm, through /dev/hotswap-file): the global
    /// budget, pages in use and reclaimed, and the pages of each cached
    /// file's FCM; --budget sets the budget.
    Memory {
        /// New budget: pages, or a size with K, M or G (e.g. 256M).
        #[arg(long)]
        budget: Option<String>,
    },
    /// Print shell completions.
    Completions {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Args)]
pub struct SwapArgs {
    /// Interface, e.g. fcm.
    pub interface: String,
    /// Implementation to swap to, e.g. distributed.
    pub implementation: String,
    /// Only this object (the default for new objects stays as it is).
    #[arg(long)]
    pub object: Option<u32>,
    /// Per-phase timeout in milliseconds (default: each object's own).
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Interface, e.g. fcm.
    pub interface: String,
    /// show; off; auto (the interface's first decision policy); or the name
    /// of one of its policies, e.g. cpu_count.
    #[arg(value_name = "MODE", value_parser = parse_mode)]
    pub mode: PolicyMode,
    /// Parameter 1 (cpu_count: CPUs that count as concurrent use; default 2).
    #[arg(long, value_name = "N")]
    pub up_cpus: Option<u32>,
    /// Parameter 2 (cpu_count: one-second windows of concurrent use before
    /// swapping to distributed; default 1).
    #[arg(long, value_name = "N")]
    pub up_windows: Option<u32>,
    /// Parameter 3 (cpu_count: windows of less use before swapping back,
    /// more than up-windows; default 3).
    #[arg(long, value_name = "N")]
    pub down_windows: Option<u32>,
}

/// What `hswapctl policy` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyMode {
    Show,
    Off,
    /// The first decision policy the interface has.
    Auto,
    /// A decision policy by name.
    Named(String),
}

fn parse_mode(text: &str) -> Result<PolicyMode, String> {
    Ok(match text {
        "show" => PolicyMode::Show,
        "off" => PolicyMode::Off,
        "auto" => PolicyMode::Auto,
        name if crate::uapi::name_field(name).is_some() => PolicyMode::Named(name.into()),
        _ => {
            return Err(format!(
                "show, off, auto, or a policy name (1 to {} bytes of [a-z0-9_])",
                crate::uapi::NAME_LEN - 1
            ))
        }
    })
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Interface, e.g. fcm.
    pub interface: String,
    /// Interposer implementation, e.g. monitor.
    pub implementation: String,
    /// Only this object.
    #[arg(long)]
    pub object: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hswapctl").chain(args.iter().copied()))
    }

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn swap_all_and_one() {
        let cli = parse(&["swap", "fcm", "distributed"]).unwrap();
        match cli.command {
            Command::Swap(a) => {
                assert_eq!(
                    (a.interface.as_str(), a.implementation.as_str()),
                    ("fcm", "distributed")
                );
                assert_eq!((a.object, a.timeout), (None, None));
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&["swap", "fcm", "shared", "--object", "7", "--timeout", "500"]).unwrap();
        match cli.command {
            Command::Swap(a) => assert_eq!((a.object, a.timeout), (Some(7), Some(500))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn policy_modes_and_thresholds() {
        let cli = parse(&[
            "policy",
            "fcm",
            "auto",
            "--up-windows",
            "2",
            "--down-windows",
            "5",
        ])
        .unwrap();
        match cli.command {
            Command::Policy(p) => {
                assert_eq!(p.mode, PolicyMode::Auto);
                assert_eq!(
                    (p.up_cpus, p.up_windows, p.down_windows),
                    (None, Some(2), Some(5))
                );
            }
            other => panic!("{other:?}"),
        }
        for (mode, want) in [
            ("show", PolicyMode::Show),
            ("off", PolicyMode::Off),
            ("cpu_count", PolicyMode::Named("cpu_count".into())),
        ] {
            match parse(&["policy", "fcm", mode]).unwrap().command {
                Command::Policy(p) => assert_eq!(p.mode, want),
                other => panic!("{other:?}"),
            }
        }
        for bad in ["Sometimes", "cpu-count", ""] {
            assert_eq!(
                parse(&["policy", "fcm", bad]).unwrap_err().exit_code(),
                2,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn memory_budget_is_optional() {
        match parse(&["memory"]).unwrap().command {
            Command::Memory { budget } => assert_eq!(budget, None),
            other => panic!("{other:?}"),
        }
        match parse(&["memory", "--budget", "256M"]).unwrap().command {
            Command::Memory { budget } => assert_eq!(budget.as_deref(), Some("256M")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_is_global() {
        assert!(parse(&["list", "--json"]).unwrap().json);
        assert!(parse(&["--json", "status", "3"]).unwrap().json);
    }

    #[test]
    fn usage_errors_exit_2() {
        for bad in [
            &["swap", "fcm"][..],
            &["status", "x"],
            &["bogus"],
            &["timeout"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        assert_eq!(
            parse(&["--version"]).unwrap_err().kind(),
            ErrorKind::DisplayVersion
        );
    }
}
