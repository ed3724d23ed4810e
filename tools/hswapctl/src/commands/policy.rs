// SPDX-License-Identifier: GPL-2.0
//! `hswapctl policy fcm {auto|off|show}`.

use super::Outcome;
use crate::cli::{PolicyArgs, PolicyMode};
use crate::device::Device;
use crate::uapi::{name_field, PolicyRequest};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

/// The policy as `--json` shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Policy {
    pub interface: String,
    pub enabled: bool,
    pub up_cpus: u32,
    pub up_windows: u32,
    pub down_windows: u32,
}

pub fn run(dev: &dyn Device, args: &PolicyArgs, json: bool) -> Result<(String, Outcome)> {
    let interface = name_field(&args.interface)
        .ok_or_else(|| anyhow!("invalid interface name {:?}", args.interface))?;
    let mut req = PolicyRequest {
        interface,
        enabled: u32::from(args.mode == PolicyMode::Auto),
        up_cpus: args.up_cpus,
        up_windows: args.up_windows,
        down_windows: args.down_windows,
    };
    if args.mode != PolicyMode::Show {
        if args.up_cpus < 2 || args.up_windows == 0 || args.down_windows <= args.up_windows {
            bail!("thresholds: --up-cpus must be at least 2, --up-windows at least 1, and --down-windows more than --up-windows");
        }
        dev.policy(true, &mut req).with_context(|| {
            if args.mode == PolicyMode::Auto {
                format!(
                    "turning the {} policy on (is fcm_monitor loaded?)",
                    args.interface
                )
            } else {
                format!("turning the {} policy off", args.interface)
            }
        })?;
    }
    dev.policy(false, &mut req)
        .with_context(|| format!("reading the {} policy", args.interface))?;
    let policy = Policy {
        interface: args.interface.clone(),
        enabled: req.enabled != 0,
        up_cpus: req.up_cpus,
        up_windows: req.up_windows,
        down_windows: req.down_windows,
    };
    let text = if json {
        serde_json::to_string_pretty(&policy)? + "\n"
    } else if policy.enabled {
        format!(
            "{} policy: auto — swap to distributed when {}+ CPUs use an object for {} s, back to shared after {} s of less\n",
            policy.interface, policy.up_cpus, policy.up_windows, policy.down_windows
        )
    } else {
        format!("{} policy: off\n", policy.interface)
    };
    Ok((text, Outcome::Ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::Fake;

    fn args(mode: PolicyMode, up: u32, down: u32) -> PolicyArgs {
        PolicyArgs {
            interface: "fcm".into(),
            mode,
            up_cpus: 2,
            up_windows: up,
            down_windows: down,
        }
    }

    #[test]
    fn auto_then_show_then_off() {
        let dev = Fake::with_objects(1);
        let (text, _) = run(&dev, &args(PolicyMode::Auto, 2, 6), false).unwrap();
        assert!(
            text.starts_with(
                "fcm policy: auto — swap to distributed when 2+ CPUs use an object for 2 s"
            ),
            "{text}"
        );
        let (json, _) = run(&dev, &args(PolicyMode::Show, 1, 3), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (v["enabled"].as_bool(), v["down_windows"].as_u64()),
            (Some(true), Some(6))
        );
        let (text, _) = run(&dev, &args(PolicyMode::Off, 1, 3), false).unwrap();
        assert_eq!(text, "fcm policy: off\n");
    }

    #[test]
    fn flapping_thresholds_are_refused() {
        let dev = Fake::with_objects(1);
        let err = run(&dev, &args(PolicyMode::Auto, 3, 3), false).unwrap_err();
        assert!(
            err.to_string()
                .contains("--down-windows more than --up-windows"),
            "{err}"
        );
        assert_eq!(dev.calls.get(), 0);
    }

    #[test]
    fn not_root_says_so() {
        let dev = Fake::with_objects(1);
        dev.deny.set(true);
        let err = run(&dev, &args(PolicyMode::Auto, 1, 3), false).unwrap_err();
        assert!(
            format!("{err:#}").ends_with("set policy: needs CAP_SYS_ADMIN (run as root)"),
            "{err:#}"
        );
    }
}
