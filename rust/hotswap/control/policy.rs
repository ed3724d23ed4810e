// SPDX-License-Identifier: GPL-2.0
//! The generic decision-policy hook: sample -> decide -> request a swap.
//!
//! An interface's monitor (an interposer) hands hotswap a sample of an
//! object now and then ([`sample`]); hotswap gives it to the decision
//! policy picked for the interface (registered by any module, like an
//! implementation; `off` is built in), with the object's state for that
//! policy. When the policy asks for a swap, hotswap checks the answer
//! (a registered object implementation of the same interface, not the
//! current one), logs the decision with the policy's reason and runs the
//! swap on its own workqueue: never inside the call that took the sample
//! (a swap waits for calls to finish, that one included), never after the
//! module is gone. Nothing here knows an interface by name.

use crate::api::{name_str, Decision, Name, NAME_LEN, POLICY_PARAMS, REASON_LEN, SAMPLE_WORDS};
use crate::ott::objects;
use crate::ott::slot::Slot;
use crate::registry::{PolicyInfo, REGISTRY};
use crate::swap::{batch as swap, interpose};
use kernel::prelude::*;
use kernel::sync::Arc;

/// Picks `policy` (`None`: off) for `interface` with `params`; the policy
/// checks them. When one is picked that needs a monitor, every object of
/// the interface gets it, and so does every new object.
pub(crate) fn pick(
    interface: &Name,
    policy: Option<&Name>,
    params: [u32; POLICY_PARAMS],
) -> Result {
    let picked = REGISTRY.lock().pick_policy(interface, policy, params)?;
    let mut result = Ok(());
    for slot in objects::of_interface(interface)?.iter() {
        // The new policy starts from scratch; a swap already queued stays
        // marked, so a toggle cannot queue a second one beside it.
        slot.with_decision(|d| d.words = Default::default());
        if let Some(policy) = &picked {
            // The policy stays picked; the caller hears that an object
            // (interrupted while waiting for its swap) got no monitor.
            result = result.and(attach(slot, policy));
        }
    }
    result
}

/// The interposer a new object of `interface` is to be made inside: the
/// picked policy's monitor, if it needs one. A policy picked or changed
/// meanwhile is caught by [`object_created`].
pub(crate) fn monitor_for_new(interface: &Name) -> Option<Name> {
    let picked = REGISTRY.lock().picked_policy(interface);
    match picked {
        Ok((Some(policy), _)) if policy.monitor[0] != 0 => Some(policy.monitor),
        _ => None,
    }
}

/// A new object: gets the picked policy's monitor, if it needs one and
/// was not made inside it (`monitor_for_new`).
pub(crate) fn object_created(slot: &Arc<Slot>) {
    let picked = REGISTRY.lock().picked_policy(&slot.interface);
    let Ok((Some(policy), _)) = picked else {
        return;
    };
    if attach(slot, &policy) == Err(EINTR) {
        // The creator has its object anyway, and a signal must not leave
        // it undecided for: hotswap's workqueue (no signals there) waits
        // for the swap in progress instead.
        let queued = {
            let slot = slot.clone();
            crate::deferred::spawn(move || {
                // Still this policy's to decide for (see `run`)?
                let still = REGISTRY
                    .lock()
                    .picked_policy(&slot.interface)
                    .is_ok_and(|(p, _)| p.is_some_and(|p| Arc::ptr_eq(&p, &policy)));
                if still {
                    let _ = attach(&slot, &policy);
                    crate::control::quarantine::eject_pending();
                }
            })
        };
        if queued.is_err() {
            pr_warn!(
                "{}/{}: no memory to put the policy's monitor on it\n",
                slot.label().0,
                slot.id
            );
        }
    }
}

/// Puts `policy`'s monitor on `slot` unless it has one already, after any
/// swap of it in progress (an object without its monitor would never be
/// decided for). Fails only if a signal ended the wait, or the monitor
/// could not be made (logged).
fn attach(slot: &Slot, policy: &PolicyInfo) -> Result {
    if policy.monitor[0] == 0 {
        return Ok(());
    }
    match interpose::ensure(slot, &policy.monitor) {
        // Destroyed meanwhile: nothing to decide for.
        Err(e) if e == ENOENT => Ok(()),
        Err(e) if e != EINTR => {
            pr_warn!(
                "{}/{}: policy {}: cannot interpose {}: {:?}\n",
                slot.label().0,
                slot.id,
                name_str(&policy.name),
                name_str(&policy.monitor),
                e
            );
            Err(e)
        }
        done => done,
    }
}

/// A monitor's sample of `slot`.
pub(crate) fn sample(slot: &Slot, words: &[u64]) {
    let Ok(current) = slot.status(|_, chain, _| chain.object().imp.name) else {
        return;
    };
    let mut d = Decision {
        params: [0; POLICY_PARAMS],
        sample: [0; SAMPLE_WORDS],
        state: [0; crate::api::STATE_WORDS],
        current,
        target: [0; NAME_LEN],
        reason: [0; REASON_LEN],
    };
    for (to, from) in d.sample.iter_mut().zip(words) {
        *to = *from;
    }
    let pending = slot.with_decision(|s| {
        d.state = s.words;
        s.pending
    });
    let (policy, wants) = {
        let mut registry = REGISTRY.lock();
        let Ok((Some(policy), params)) = registry.picked_policy(&slot.interface) else {
            return;
        };
        d.params = params;
        // The registry stays locked across the call: the policy cannot be
        // unregistered, nor its module leave, while it decides.
        let wants = match policy.decide(&registry, &mut d) {
            Ok(true) => sane_target(&registry, slot, &policy, &d),
            Ok(false) => Ok(false),
            Err(e) if e == EPROTO => Err(()),
            // An errno: the policy could not decide this time.
            Err(_) => Ok(false),
        };
        if wants.is_err() {
            // A policy that breaks its contract decides nothing more: the
            // interface's policy is off until someone picks one again.
            pr_warn!(
                "{}: decision policy {} misbehaved; policy off\n",
                slot.label().0,
                name_str(&policy.name)
            );
            let _ = registry.pick_policy(&slot.interface, None, [0; POLICY_PARAMS]);
        }
        (policy, wants.unwrap_or(false))
    };
    let wants = wants && !pending;
    slot.with_decision(|s| {
        s.words = d.state;
        if wants {
            s.pending = true;
        }
    });
    if !wants {
        return;
    }
    let id = slot.id;
    let reason = sanitized_reason(&d.reason);
    let target = d.target;
    let queued = crate::deferred::spawn(move || run(id, current, target, policy, reason));
    if queued.is_err() {
        slot.with_decision(|s| s.pending = false);
    }
}

/// Whether the policy's answer is worth a swap: `Ok(false)` if it names
/// the current implementation, a quarantined one or none that is loaded,
/// `Err` (misbehavior, counted) if it is no name at all.
fn sane_target(
    registry: &crate::registry::Registry,
    slot: &Slot,
    policy: &PolicyInfo,
    d: &Decision,
) -> core::result::Result<bool, ()> {
    if d.target == d.current || registry.quarantined(&slot.interface, &d.target).is_some() {
        return Ok(false);
    }
    // A well-formed name of an implementation that is not loaded (or is
    // an interposer) is no misbehavior: the policy asked for something
    // the machine does not have; nothing happens, and nothing is logged
    // (it would be once a window per object).
    if crate::api::validate_name(&d.target).is_err() {
        pr_warn!(
            "{}/{}: policy {} answered a malformed implementation name\n",
            slot.label().0,
            slot.id,
            name_str(&policy.name)
        );
        crate::registry::misbehavior::count_misbehavior();
        return Err(());
    }
    Ok(registry.kind_of(&slot.interface, &d.target) == Ok(crate::api::KIND_OBJECT))
}

/// The reason as the log line shows it: up to the first NUL, printable
/// ASCII only (a policy's bytes go to the kernel log).
fn sanitized_reason(raw: &[u8; REASON_LEN]) -> [u8; REASON_LEN] {
    let mut out = [0u8; REASON_LEN];
    for (i, b) in raw.iter().take(REASON_LEN - 1).enumerate() {
        if *b == 0 {
            break;
        }
        out[i] = if b.is_ascii_graphic() || *b == b' ' {
            *b
        } else {
            b'?'
        };
    }
    out
}

/// The queued swap.
fn run(id: u32, from: Name, to: Name, policy: Arc<PolicyInfo>, reason: [u8; REASON_LEN]) {
    let Ok(slot) = objects::find(id) else {
        return;
    };
    // Queued a while ago: the interface's policy may have been switched
    // (or turned off) since, and then this decision is not its to make.
    let still = REGISTRY
        .lock()
        .picked_policy(&slot.interface)
        .is_ok_and(|(p, _)| p.is_some_and(|p| Arc::ptr_eq(&p, &policy)));
    if !still {
        slot.with_decision(|s| s.pending = false);
        return;
    }
    let reason = core::str::from_utf8(&reason)
        .unwrap_or("?")
        .trim_end_matches('\0');
    pr_info!(
        "{}/{}: policy {}: {} -> {} ({})\n",
        slot.label().0,
        id,
        name_str(&policy.name),
        name_str(&from),
        name_str(&to),
        reason
    );
    let target = REGISTRY.lock().pin(&slot.interface, Some(&to));
    if let Ok(target) = target {
        let _ = swap::swap(core::slice::from_ref(&slot), &target, None);
    }
    slot.with_decision(|s| *s = Default::default());
    crate::control::quarantine::eject_pending();
}
