// SPDX-License-Identifier: GPL-2.0
//! Interposition: wrapping a slot's object in an interposer (a monitor, a
//! tracer) that sees every call and forwards it.
//!
//! Adding needs no quiescence: a new chain with the interposer on top is
//! published and new calls go through it while calls on the old chain
//! finish undisturbed. Removing publishes a chain without it and destroys
//! the interposer only after a grace period, when no call can be inside.
//! Interposers stack (the newest is outermost) and any one can be removed.

use crate::api::name_str;
use crate::api::{Name, KIND_INTERPOSER};
use crate::ott::chain::Chain;
use crate::ott::instance::Instance;
use crate::ott::slot::{Claim, Slot};
use crate::registry::REGISTRY;
use kernel::prelude::*;
use kernel::time::{Delta, Instant, Monotonic};

/// Puts an interposer of implementation `name` on top of `slot`.
pub(crate) fn interpose(slot: &Slot, name: &Name) -> Result {
    let claim = slot.claim()?;
    add(slot, &claim, name)
}

/// Puts an interposer of `name` on `slot` unless one is there already,
/// waiting for an operation in progress (a swap of the object) to end:
/// how a decision policy's monitor reaches every object once, however
/// many ask at the same time. The check runs under the claim, so two
/// askers cannot stack two monitors.
pub(crate) fn ensure(slot: &Slot, name: &Name) -> Result {
    let claim = slot.claim_waiting()?;
    if slot.with_chain(&claim, |chain| {
        chain.layers.iter().any(|l| l.imp.name == *name)
    }) {
        return Ok(());
    }
    add(slot, &claim, name)
}

/// Interposes `name` on `slot`, whose claim the caller holds.
fn add(slot: &Slot, claim: &Claim<'_>, name: &Name) -> Result {
    let pin = REGISTRY.lock().pin(&slot.interface, Some(name))?;
    if pin.kind != KIND_INTERPOSER {
        return Err(EINVAL);
    }
    let wrapper = Instance::create(pin, core::ptr::null())?;
    let placed = wrapper.clone();
    let layers = slot.with_chain(claim, |chain| -> Result<_> {
        let mut layers = KVec::with_capacity(chain.layers.len() + 1, GFP_KERNEL)?;
        layers.push(wrapper, GFP_KERNEL)?;
        for layer in chain.layers.iter() {
            layers.push(layer.clone(), GFP_KERNEL)?;
        }
        Ok(layers)
    })?;
    slot.publish(claim, Chain::new(layers, None)?)?;
    let (interface, id) = slot.label();
    pr_info!("{}/{}: interposed {}\n", interface, id, name_str(name));
    // Quarantined since the pin above: its ejection may have looked at
    // this slot before the interposer was on it.
    placed.imp.landed();
    Ok(())
}

/// Removes the outermost interposer of implementation `name` from `slot`,
/// and destroys it after a grace period (waiting up to the slot's timeout;
/// a call stuck inside keeps it alive until it leaves).
pub(crate) fn remove(slot: &Slot, name: &Name) -> Result {
    let claim = slot.claim()?;
    let layers = slot.with_chain(&claim, |chain| -> Result<_> {
        let interposers = chain.layers.len() - 1;
        let pos = chain.layers[..interposers]
            .iter()
            .position(|l| l.imp.name == *name)
            .ok_or(ENOENT)?;
        let mut layers = KVec::with_capacity(chain.layers.len() - 1, GFP_KERNEL)?;
        for (i, layer) in chain.layers.iter().enumerate() {
            if i != pos {
                layers.push(layer.clone(), GFP_KERNEL)?;
            }
        }
        Ok(layers)
    })?;
    let cookie = slot.publish(&claim, Chain::new(layers, None)?)?;
    let (interface, id) = slot.label();
    pr_info!("{}/{}: removed {}\n", interface, id, name_str(name));
    let deadline = Instant::<Monotonic>::now() + Delta::from_millis(i64::from(slot.timeout_ms()));
    slot.settle(cookie, deadline);
    Ok(())
}
