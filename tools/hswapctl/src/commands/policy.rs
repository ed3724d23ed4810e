// SPDX-License-Identifier: GPL-2.0
//! `hswapctl policy INTERFACE {show|off|auto|NAME}`: an interface's
//! decision policy, the algorithm that swaps its objects by itself.

use super::Outcome;
use crate::cli::{PolicyArgs, PolicyMode};
use crate::device::{zeroed, Device};
use crate::uapi::{
    self, field_str, name_field, PolicyRequest, MAX_POLICIES, NAME_LEN, POLICY_PARAMS,
};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

/// The FCM's policy, whose parameters the `--up-*`/`--down-*` flags name.
const CPU_COUNT: &str = "cpu_count";
/// cpu_count's `[up_cpus, up_windows, down_windows]` when a flag is not given.
const CPU_COUNT_DEFAULTS: [u32; 3] = [2, 1, 3];

/// The policy as `--json` shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Policy {
    pub interface: String,
    /// The current policy, "off" for none.
    pub policy: String,
    pub enabled: bool,
    /// Its parameters (all zero when off).
    pub params: [u32; POLICY_PARAMS],
    /// The decision policies the interface has (the first eight).
    pub available: Vec<String>,
    /// `params[0..3]`, under cpu_count's names.
    pub up_cpus: u32,
    pub up_windows: u32,
    pub down_windows: u32,
    /// Policies the interface has, even past the eight listed.
    #[serde(skip)]
    pub count: u32,
}

fn read(dev: &dyn Device, interface: &str, field: [u8; NAME_LEN]) -> Result<Policy> {
    let mut req: PolicyRequest = zeroed();
    req.interface = field;
    dev.policy(false, &mut req)
        .with_context(|| format!("reading the {interface} policy"))?;
    let listed = (req.count as usize).min(MAX_POLICIES);
    let policy = match field_str(&req.policy) {
        "" => "off",
        name => name,
    };
    let [up_cpus, up_windows, down_windows, _] = req.params;
    Ok(Policy {
        interface: interface.into(),
        policy: policy.into(),
        enabled: policy != "off",
        params: req.params,
        available: req.available[..listed]
            .iter()
            .map(|n| field_str(n).to_string())
            .collect(),
        up_cpus,
        up_windows,
        down_windows,
        count: req.count,
    })
}

/// The parameters the flags make for policy `name`: for cpu_count, its
/// defaults fill in and the thresholds are checked as the kernel would;
/// for another policy, a flag not given is 0 (all zero: its defaults).
fn params(args: &PolicyArgs, name: &str) -> Result<[u32; POLICY_PARAMS]> {
    let flags = [args.up_cpus, args.up_windows, args.down_windows];
    if name != CPU_COUNT {
        let [a, b, c] = flags.map(|f| f.unwrap_or(0));
        return Ok([a, b, c, 0]);
    }
    let [up_cpus, up_windows, down_windows] =
        [0, 1, 2].map(|i| flags[i].unwrap_or(CPU_COUNT_DEFAULTS[i]));
    if up_cpus < 2 || up_windows == 0 || down_windows <= up_windows {
        bail!("thresholds: --up-cpus must be at least 2, --up-windows at least 1, and --down-windows more than --up-windows");
    }
    Ok([up_cpus, up_windows, down_windows, 0])
}

/// The policy `mode` names, checked against what the interface has.
fn choose(current: &Policy, mode: &PolicyMode) -> Result<String> {
    if current.available.is_empty() {
        bail!(
            "{} has no decision policy (is hotswap_fcm loaded?)",
            current.interface
        );
    }
    match mode {
        PolicyMode::Named(name)
            if !current.available.contains(name)
                && current.count as usize <= current.available.len() =>
        {
            bail!(
                "no decision policy {name:?} of interface {:?}; available: {}",
                current.interface,
                current.available.join(", ")
            )
        }
        PolicyMode::Named(name) => Ok(name.clone()),
        _ => Ok(current.available[0].clone()),
    }
}

fn set(
    dev: &dyn Device,
    interface: &str,
    field: [u8; NAME_LEN],
    name: &str,
    params: [u32; POLICY_PARAMS],
) -> Result<()> {
    let mut req: PolicyRequest = zeroed();
    req.interface = field;
    req.policy = name_field(name).ok_or_else(|| anyhow!("invalid policy name {name:?}"))?;
    req.params = params;
    dev.policy(true, &mut req).with_context(|| match name {
        "off" => format!("turning the {interface} policy off"),
        CPU_COUNT => format!("turning the {interface} policy {name} on (is fcm_monitor loaded?)"),
        _ => format!("turning the {interface} policy {name} on"),
    })
}

/// One line: what the policy does.
fn describe(p: &Policy) -> String {
    match p.policy.as_str() {
        "off" => format!("{} policy: off\n", p.interface),
        CPU_COUNT => format!(
            "{} policy: cpu_count — swap to distributed when {}+ CPUs use an object for {} s, back to shared after {} s of less\n",
            p.interface, p.up_cpus, p.up_windows, p.down_windows
        ),
        name => {
            let [a, b, c, d] = p.params;
            format!("{} policy: {name} (params {a} {b} {c} {d})\n", p.interface)
        }
    }
}

fn available(p: &Policy) -> String {
    let mut names = if p.available.is_empty() {
        "none".to_string()
    } else {
        p.available.join(", ")
    };
    if p.count as usize > p.available.len() {
        names += &format!(", ... ({} in all)", p.count);
    }
    format!("available: {names}\n")
}

pub fn run(dev: &dyn Device, args: &PolicyArgs, json: bool) -> Result<(String, Outcome)> {
    let interface = &args.interface;
    let field = name_field(interface).ok_or_else(|| {
        anyhow!(
            "invalid interface name {interface:?}: 1 to {} bytes of [a-z0-9_]",
            uapi::NAME_LEN - 1
        )
    })?;
    match &args.mode {
        PolicyMode::Show => {}
        PolicyMode::Off => set(dev, interface, field, "off", [0; POLICY_PARAMS])?,
        mode => {
            // A named cpu_count's thresholds are refused before the kernel
            // is asked anything.
            if let PolicyMode::Named(name) = mode {
                params(args, name)?;
            }
            let name = choose(&read(dev, interface, field)?, mode)?;
            set(dev, interface, field, &name, params(args, &name)?)?;
        }
    }
    let policy = read(dev, interface, field)?;
    let text = if json {
        serde_json::to_string_pretty(&policy)? + "\n"
    } else if args.mode == PolicyMode::Show {
        describe(&policy) + &available(&policy)
    } else {
        describe(&policy)
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
            up_cpus: None,
            up_windows: Some(up),
            down_windows: Some(down),
        }
    }

    fn flags(interface: &str, mode: PolicyMode) -> PolicyArgs {
        PolicyArgs {
            interface: interface.into(),
            mode,
            up_cpus: None,
            up_windows: None,
            down_windows: None,
        }
    }

    #[test]
    fn auto_then_show_then_off() {
        let dev = Fake::with_objects(1);
        let (text, _) = run(&dev, &args(PolicyMode::Auto, 2, 6), false).unwrap();
        assert_eq!(
            text,
            "fcm policy: cpu_count — swap to distributed when 2+ CPUs use an object for 2 s, back to shared after 6 s of less\n"
        );
        assert_eq!(dev.policy_of("fcm"), ("cpu_count".into(), [2, 2, 6, 0]));
        let (text, _) = run(&dev, &flags("fcm", PolicyMode::Show), false).unwrap();
        assert!(text.starts_with("fcm policy: cpu_count — "), "{text}");
        assert!(text.ends_with("\navailable: cpu_count\n"), "{text}");
        let (json, _) = run(&dev, &flags("fcm", PolicyMode::Show), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "interface": "fcm", "policy": "cpu_count", "enabled": true,
                "params": [2, 2, 6, 0], "available": ["cpu_count"],
                "up_cpus": 2, "up_windows": 2, "down_windows": 6,
            })
        );
        let (text, _) = run(&dev, &args(PolicyMode::Off, 1, 3), false).unwrap();
        assert_eq!(text, "fcm policy: off\n");
        let (json, _) = run(&dev, &flags("fcm", PolicyMode::Show), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (&v["policy"], &v["enabled"], &v["params"]),
            (
                &serde_json::json!("off"),
                &serde_json::json!(false),
                &serde_json::json!([0, 0, 0, 0])
            )
        );
    }

    #[test]
    fn cpu_count_by_name_with_default_thresholds() {
        let dev = Fake::with_objects(1);
        let named = flags("fcm", PolicyMode::Named("cpu_count".into()));
        let (text, _) = run(&dev, &named, false).unwrap();
        assert_eq!(
            text,
            "fcm policy: cpu_count — swap to distributed when 2+ CPUs use an object for 1 s, back to shared after 3 s of less\n"
        );
        assert_eq!(dev.policy_of("fcm"), ("cpu_count".into(), [2, 1, 3, 0]));
    }

    #[test]
    fn flapping_thresholds_are_refused() {
        let dev = Fake::with_objects(1);
        let err = run(
            &dev,
            &args(PolicyMode::Named("cpu_count".into()), 3, 3),
            false,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("--down-windows more than --up-windows"),
            "{err}"
        );
        assert_eq!(dev.calls.get(), 0);
        // auto finds cpu_count first, then refuses the same way.
        let mut one_cpu = args(PolicyMode::Auto, 1, 3);
        one_cpu.up_cpus = Some(1);
        let err = run(&dev, &one_cpu, false).unwrap_err();
        assert!(
            err.to_string().contains("--up-cpus must be at least 2"),
            "{err}"
        );
        assert_eq!(dev.policy_of("fcm"), ("off".into(), [0; 4]));
    }

    #[test]
    fn other_policies_get_their_params_and_are_listed() {
        let dev = Fake::with_objects(1);
        dev.add_policy("fcm", "sampler");
        let mut sampler = flags("fcm", PolicyMode::Named("sampler".into()));
        sampler.up_windows = Some(5);
        let (text, _) = run(&dev, &sampler, false).unwrap();
        assert_eq!(text, "fcm policy: sampler (params 0 5 0 0)\n");
        let (text, _) = run(&dev, &flags("fcm", PolicyMode::Show), false).unwrap();
        assert!(text.ends_with("available: cpu_count, sampler\n"), "{text}");
        // auto is the first one.
        let (text, _) = run(&dev, &flags("fcm", PolicyMode::Auto), false).unwrap();
        assert!(text.starts_with("fcm policy: cpu_count — "), "{text}");
    }

    #[test]
    fn unknown_policy_names_the_available_ones() {
        let dev = Fake::with_objects(1);
        let err = run(
            &dev,
            &flags("fcm", PolicyMode::Named("enabled".into())),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no decision policy \"enabled\" of interface \"fcm\"; available: cpu_count"
        );
    }

    #[test]
    fn an_interface_without_policies() {
        let dev = Fake::with_objects(1);
        let (text, _) = run(&dev, &flags("hstest", PolicyMode::Show), false).unwrap();
        assert_eq!(text, "hstest policy: off\navailable: none\n");
        let err = run(&dev, &flags("hstest", PolicyMode::Auto), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hstest has no decision policy (is hotswap_fcm loaded?)"
        );
        let err = run(&dev, &flags("nosuch", PolicyMode::Show), false).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("reading the nosuch policy: policy: no such"),
            "{err:#}"
        );
    }

    #[test]
    fn without_the_monitor_says_so() {
        let dev = Fake::with_objects(1);
        dev.monitor.set(false);
        let err = run(&dev, &flags("fcm", PolicyMode::Auto), false).unwrap_err();
        assert!(
            format!("{err:#}").starts_with(
                "turning the fcm policy cpu_count on (is fcm_monitor loaded?): set policy: no such"
            ),
            "{err:#}"
        );
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
        // Reading needs no privilege.
        run(&dev, &flags("fcm", PolicyMode::Show), false).unwrap();
    }
}
