// SPDX-License-Identifier: GPL-2.0
//! Ejecting quarantined implementations (sched_ext's sanitize -> error ->
//! fallback): an implementation that broke its contract once (an
//! out-of-range result, a create without an object, a client's report
//! through `hotswap_object_misbehaved`) is quarantined by the registry,
//! which from then on refuses it for new objects and swaps. Here its
//! objects leave it: an object implementation's are swapped to the
//! interface's known-good implementation, an interposer is removed from
//! every object it wraps. It runs on hotswap's workqueue, queued by
//! [`eject_pending`] after each control operation, so never inside the
//! call or swap that noticed the misbehavior (a swap waits for calls, and
//! the noticing swap still holds its slot). Loading the implementation's
//! module again (a new registration) starts it afresh.

use crate::api::{name_str, Name, KIND_OBJECT};
use crate::ott::instance::Instance;
use crate::ott::objects;
use crate::ott::slot::Slot;
use crate::registry::{misbehavior, REGISTRY};
use crate::swap::{batch as swap, interpose};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::time::{delay::fsleep, Delta};

/// Rounds an ejection tries while objects stay on the implementation, and
/// the pause between rounds. Between rounds it also waits for the objects
/// that were busy (another swap or interposition held them) to be free,
/// each holder bounding itself: a swap off the implementation may yet
/// abort and leave its object there, and it must not be passed over.
const ROUNDS: u32 = 50;
const PAUSE_MS: i64 = 20;

/// Queues the ejection of every implementation quarantined since the
/// last call. Cheap when there is none: one uncontended lock.
pub(crate) fn eject_pending() {
    for (interface, name) in misbehavior::take_ejections() {
        if crate::deferred::spawn(move || eject(interface, name)).is_err() {
            // Unloading, or no memory: it stays quarantined, and its
            // objects where they are.
            pr_warn!(
                "{}/{}: quarantined, but its objects could not be moved\n",
                name_str(&interface),
                name_str(&name)
            );
        }
    }
}

/// Whether `slot` uses a quarantined implementation called `name` (as its
/// object or an interposer): a retired one and its re-registration share
/// the name, and only the one that misbehaved is quarantined.
fn uses(slot: &Slot, name: &Name, kind: u32) -> bool {
    let bad = |l: &Arc<Instance>| l.imp.name == *name && l.imp.quarantined();
    slot.status(|_, chain, _| {
        if kind == KIND_OBJECT {
            bad(chain.object())
        } else {
            chain.layers[..chain.layers.len() - 1].iter().any(bad)
        }
    })
    .unwrap_or(false)
}

/// The objects of `interface` that use `name`.
fn users(interface: &Name, name: &Name, kind: u32) -> Result<KVec<Arc<Slot>>> {
    let mut out = KVec::new();
    for slot in objects::of_interface(interface)?.iter() {
        if uses(slot, name, kind) {
            out.push(slot.clone(), GFP_KERNEL)?;
        }
    }
    Ok(out)
}

/// Moves the objects of quarantined `interface`/`name` off it.
fn eject(interface: Name, name: Name) {
    let (kind, target) = {
        let registry = REGISTRY.lock();
        // Unregistered (with no objects left), or registered again (a
        // fresh start) meanwhile.
        let Some(imp) = registry.quarantined(&interface, &name) else {
            return;
        };
        let target = registry.fallback(&interface, Some(&name)).map(|t| t.name);
        (imp.kind, target)
    };
    let mut moved = 0usize;
    for round in 0..ROUNDS {
        let Ok(slots) = users(&interface, &name, kind) else {
            break;
        };
        if slots.is_empty() {
            break;
        }
        if round > 0 {
            for slot in slots.iter() {
                // Claimed and let go at once: only the wait matters (on
                // this workqueue no signal ends it).
                drop(slot.claim_waiting());
            }
            fsleep(Delta::from_millis(PAUSE_MS));
        }
        if kind == KIND_OBJECT {
            let Some(target) = target else {
                break;
            };
            let Ok(pin) = REGISTRY.lock().pin(&interface, Some(&target)) else {
                break;
            };
            if let Ok(results) = swap::swap(&slots, &pin, None) {
                moved += swap::Tally::of(&results).completed as usize;
            }
        } else {
            for slot in slots.iter() {
                if interpose::remove(slot, &name).is_ok() {
                    moved += 1;
                }
            }
        }
    }
    let left = users(&interface, &name, kind).map_or(0, |s| s.len());
    // Its own swaps may have landed objects on an implementation that was
    // quarantined meanwhile (the fallback itself): that ejection must not
    // wait for the next control operation. Aborts queue nothing, so this
    // cannot loop.
    eject_pending();
    if kind == KIND_OBJECT {
        pr_warn!(
            "{}/{}: quarantined: {} object(s) swapped to {}, {} left on it\n",
            name_str(&interface),
            name_str(&name),
            moved,
            target
                .as_ref()
                .map_or("(none: no other implementation)", name_str),
            left
        );
    } else {
        pr_warn!(
            "{}/{}: quarantined: removed from {} object(s), {} left\n",
            name_str(&interface),
            name_str(&name),
            moved,
            left
        );
    }
}
