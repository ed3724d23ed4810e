// SPDX-License-Identifier: GPL-2.0
//! `hswapctl swap`, `interpose`, `uninterpose`, `timeout`: the commands
//! that change something (the kernel requires CAP_SYS_ADMIN for them).

use super::Outcome;
use crate::cli::{SwapArgs, TargetArgs};
use crate::device::{zeroed, Device};
use crate::model::{Implementation, Object, SwapObject, SwapReport};
use crate::output;
use crate::uapi::{self, name_field};
use anyhow::{anyhow, bail, Context, Result};

fn field(what: &str, name: &str) -> Result<[u8; uapi::NAME_LEN]> {
    name_field(name).ok_or_else(|| {
        anyhow!(
            "invalid {what} name {name:?}: 1 to {} bytes of [a-z0-9_]",
            uapi::NAME_LEN - 1
        )
    })
}

/// Checks that `interface` has an implementation `name` of `kind`, and
/// names the ones it does have otherwise.
fn check_implementation(dev: &dyn Device, interface: &str, name: &str, kind: &str) -> Result<()> {
    let impls: Vec<Implementation> = dev.impls()?.iter().map(Implementation::from).collect();
    let known: Vec<&str> = impls
        .iter()
        .filter(|i| i.interface == interface && i.kind == kind)
        .map(|i| i.name.as_str())
        .collect();
    if known.contains(&name) {
        return Ok(());
    }
    if !impls.iter().any(|i| i.interface == interface) {
        let mut ifaces: Vec<&str> = impls.iter().map(|i| i.interface.as_str()).collect();
        ifaces.dedup();
        bail!(
            "no interface {interface:?}; registered interfaces: {}",
            ifaces.join(", ")
        );
    }
    if known.is_empty() {
        bail!("interface {interface:?} has no {kind} implementation");
    }
    bail!(
        "no {kind} implementation {name:?} of interface {interface:?}; available: {}",
        known.join(", ")
    )
}

pub fn swap(dev: &dyn Device, args: &SwapArgs, json: bool) -> Result<(String, Outcome)> {
    let interface = field("interface", &args.interface)?;
    let implementation = field("implementation", &args.implementation)?;
    check_implementation(dev, &args.interface, &args.implementation, "object")?;
    let before: Vec<(u32, String)> = dev
        .objects()?
        .iter()
        .map(Object::from)
        .map(|o| (o.id, o.implementation))
        .collect();
    let mut req: uapi::SwapRequest = zeroed();
    req.interface = interface;
    req.implementation = implementation;
    req.object = args.object.unwrap_or(0);
    req.timeout_ms = args.timeout.unwrap_or(0);
    let results = dev.swap(&mut req).with_context(|| match args.object {
        Some(id) => format!("swapping object {id} to {}", args.implementation),
        None => format!(
            "swapping {} objects to {}",
            args.interface, args.implementation
        ),
    })?;
    let report = SwapReport {
        interface: args.interface.clone(),
        implementation: args.implementation.clone(),
        object: args.object,
        completed: req.completed,
        aborted: req.aborted,
        unchanged: req.unchanged,
        total_us: req.total_ns / 1000,
        objects: results.iter().map(SwapObject::from).collect(),
        before,
    };
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        output::swap_report(&report)
    };
    let outcome = if report.aborted == 0 {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    Ok((text, outcome))
}

pub fn interpose(dev: &dyn Device, args: &TargetArgs, add: bool) -> Result<(String, Outcome)> {
    let interface = field("interface", &args.interface)?;
    let implementation = field("interposer", &args.implementation)?;
    check_implementation(dev, &args.interface, &args.implementation, "interposer")?;
    let mut req = uapi::InterposeRequest {
        interface,
        implementation,
        object: args.object.unwrap_or(0),
        count: 0,
    };
    let verb = if add { "interposing" } else { "removing" };
    dev.interpose(add, &mut req)
        .with_context(|| match args.object {
            Some(id) => format!("{verb} {} on object {id}", args.implementation),
            None => format!(
                "{verb} {} on {} objects",
                args.implementation, args.interface
            ),
        })?;
    let done = if add { "interposed" } else { "removed" };
    let text = format!(
        "{done} {} on {} object(s)\n",
        args.implementation, req.count
    );
    Ok((text, Outcome::Ok))
}

pub fn timeout(dev: &dyn Device, ms: u32, object: Option<u32>) -> Result<(String, Outcome)> {
    if !(1..=3_600_000).contains(&ms) {
        bail!("timeout must be 1 to 3600000 ms, not {ms}");
    }
    let req = uapi::TimeoutRequest {
        object: object.unwrap_or(0),
        timeout_ms: ms,
    };
    dev.set_timeout(&req).context("setting the swap timeout")?;
    let text = match object {
        Some(id) => format!("object {id}: swap timeout {ms} ms per phase\n"),
        None => format!("all objects: swap timeout {ms} ms per phase\n"),
    };
    Ok((text, Outcome::Ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::Fake;

    fn args(implementation: &str, object: Option<u32>) -> SwapArgs {
        SwapArgs {
            interface: "fcm".into(),
            implementation: implementation.into(),
            object,
            timeout: None,
        }
    }

    #[test]
    fn unknown_implementation_lists_the_available_ones() {
        let err = swap(&Fake::with_objects(1), &args("turbo", None), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no object implementation \"turbo\" of interface \"fcm\"; available: shared, distributed"
        );
    }

    #[test]
    fn an_interposer_is_not_a_swap_target() {
        let err = swap(&Fake::with_objects(1), &args("monitor", None), false).unwrap_err();
        assert!(
            err.to_string().contains("available: shared, distributed"),
            "{err}"
        );
    }

    #[test]
    fn completed_swap_is_ok_and_aborted_is_failed() {
        let dev = Fake::with_objects(2);
        let (text, outcome) = swap(&dev, &args("distributed", None), false).unwrap();
        assert_eq!(outcome, Outcome::Ok, "{text}");
        assert!(
            text.contains("object 1: shared -> distributed completed"),
            "{text}"
        );
        dev.abort_next.set(true);
        let (text, outcome) = swap(&dev, &args("shared", Some(2)), false).unwrap();
        assert_eq!(outcome, Outcome::Failed, "{text}");
        assert!(text.contains("stayed on distributed"), "{text}");
    }

    #[test]
    fn not_root_says_so() {
        let dev = Fake::with_objects(1);
        dev.deny.set(true);
        let err = swap(&dev, &args("distributed", None), false).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "swapping fcm objects to distributed: swap: needs CAP_SYS_ADMIN (run as root)"
        );
    }

    #[test]
    fn bad_names_and_timeouts_are_refused_before_the_kernel() {
        let dev = Fake::with_objects(1);
        assert!(swap(&dev, &args("Shared!", None), false).is_err());
        assert!(timeout(&dev, 0, None).is_err());
        assert_eq!(dev.calls.get(), 0);
    }
}
