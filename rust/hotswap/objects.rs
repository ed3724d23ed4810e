// SPDX-License-Identifier: GPL-2.0
//! The object table: every live slot by id, for status and for swapping
//! all objects of an interface. Clients do not use it to call: they hold
//! their slot (see `slot.rs`).

use crate::api::Name;
use crate::instance::Instance;
use crate::registry::REGISTRY;
use crate::slot::Slot;
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Live slots, in creation order, and the next id to hand out.
pub(crate) struct ObjectTable {
    slots: KVec<Arc<Slot>>,
    next_id: u32,
}

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init before any entry point can run.
    pub(crate) unsafe(uninit) static OBJECTS: Mutex<ObjectTable> = ObjectTable {
        slots: KVec::new(),
        next_id: 1,
    };
}

/// Pins hotswap.ko itself while objects exist, so it cannot be unloaded
/// from under them.
fn pin_self() -> Result {
    crate::registry::ModulePtr(crate::this_module()).get()
}

fn unpin_self() {
    crate::registry::ModulePtr(crate::this_module()).put();
}

/// Creates an object of `interface` on `implementation` (`None`: the
/// default) and enters it in the table.
pub(crate) fn create(
    interface: &Name,
    implementation: Option<&Name>,
    arg: *const c_void,
) -> Result<Arc<Slot>> {
    let pin = REGISTRY.lock().pin(interface, implementation)?;
    if pin.kind != crate::api::KIND_OBJECT {
        return Err(EINVAL);
    }
    pin_self()?;
    let made = (|| {
        let object = Instance::create(pin, arg)?;
        let mut table = OBJECTS.lock();
        table.slots.reserve(1, GFP_KERNEL)?;
        let id = table.next_id;
        let slot = Slot::new(id, *interface, object)?;
        table.next_id = table.next_id.checked_add(1).unwrap_or(1);
        // Capacity was reserved above.
        let _ = table.slots.push(slot.clone(), GFP_KERNEL);
        Ok(slot)
    })();
    if made.is_err() {
        unpin_self();
    }
    made
}

/// Removes `slot` from the table and tears it down.
pub(crate) fn destroy(slot: &Arc<Slot>) {
    {
        let mut table = OBJECTS.lock();
        if let Some(pos) = table.slots.iter().position(|s| Arc::ptr_eq(s, slot)) {
            // `pos` is in bounds.
            let _ = table.slots.remove(pos);
        }
    }
    slot.destroy();
    unpin_self();
}

/// The slot with object id `id`.
pub(crate) fn find(id: u32) -> Result<Arc<Slot>> {
    OBJECTS
        .lock()
        .slots
        .iter()
        .find(|s| s.id == id)
        .cloned()
        .ok_or(ENOENT)
}

/// Every slot of `interface`.
pub(crate) fn of_interface(interface: &Name) -> Result<KVec<Arc<Slot>>> {
    let table = OBJECTS.lock();
    let mut out = KVec::new();
    for slot in table.slots.iter().filter(|s| s.interface == *interface) {
        out.push(slot.clone(), GFP_KERNEL)?;
    }
    Ok(out)
}

/// Every live slot.
pub(crate) fn all() -> Result<KVec<Arc<Slot>>> {
    let table = OBJECTS.lock();
    let mut out = KVec::with_capacity(table.slots.len(), GFP_KERNEL)?;
    for slot in table.slots.iter() {
        out.push(slot.clone(), GFP_KERNEL)?;
    }
    Ok(out)
}

/// Frees the table's storage at unload (statics are never dropped). Objects
/// pin the module, so the table is empty by then.
pub(crate) fn release_storage() {
    OBJECTS.lock().slots = KVec::new();
}

/// Number of live objects.
pub(crate) fn count() -> usize {
    OBJECTS.lock().slots.len()
}
