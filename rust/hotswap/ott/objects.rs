// SPDX-License-Identifier: GPL-2.0
//! The object table: every live slot by id, for status and for swapping
//! all objects of an interface. Clients do not use it to call: they hold
//! their slot (see `slot.rs`).

use crate::api::Name;
use crate::ott::instance::Instance;
use crate::ott::slot::Slot;
use crate::registry::REGISTRY;
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Live slots, in creation order, and the ids to hand out.
pub(crate) struct ObjectTable {
    slots: KVec<Arc<Slot>>,
    ids: Ids,
}

/// Object ids: handed out in order from 1, wrapping past `u32::MAX`, and
/// never one in use (a lookup by id, for a swap or a policy step, must
/// not reach another object after the wrap). Never 0.
pub(crate) struct Ids {
    next: u32,
}

impl Ids {
    /// Ids from `next` on.
    pub(crate) const fn from(next: u32) -> Self {
        Self { next }
    }

    /// The next id `used` says is free; `EBUSY` if none is.
    pub(crate) fn take(&mut self, used: impl Fn(u32) -> bool) -> Result<u32> {
        let mut id = self.next;
        for _ in 0..u32::MAX {
            if id != 0 && !used(id) {
                self.next = id.wrapping_add(1);
                return Ok(id);
            }
            id = id.wrapping_add(1);
        }
        Err(EBUSY)
    }
}

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init before any entry point can run.
    pub(crate) unsafe(uninit) static OBJECTS: Mutex<ObjectTable> = ObjectTable {
        slots: KVec::new(),
        ids: Ids::from(1),
    };
}

/// Pins hotswap.ko itself while objects exist, so it cannot be unloaded
/// from under them.
fn pin_self() -> Result {
    crate::this_module().get()
}

fn unpin_self() {
    crate::this_module().put();
}

/// Creates an object of `interface` on `implementation` (`None`: the
/// default) and enters it in the table, for a client whose method table
/// has version and size `methods` (`EPROTO` unless they are the
/// interface's); wrapped in an instance of the interposer `wrapper` from
/// the start if given (the picked decision policy's monitor).
pub(crate) fn create(
    interface: &Name,
    implementation: Option<&Name>,
    methods: (u32, u32),
    arg: *const c_void,
    wrapper: Option<&Name>,
) -> Result<Arc<Slot>> {
    let pin = {
        let registry = REGISTRY.lock();
        // A client whose `Methods` type is not the interface's would call
        // through the objects' tables as if they were its own. Checked
        // under the pin's lock: the interface cannot be replaced between.
        registry.check_methods(interface, methods.0, methods.1)?;
        registry.pin(interface, implementation)?
    };
    if pin.kind != crate::api::KIND_OBJECT {
        return Err(EINVAL);
    }
    pin_self()?;
    let made = (|| {
        let object = Instance::create(pin, arg)?;
        let wrapper = match wrapper {
            Some(name) => {
                let pin = REGISTRY.lock().pin(interface, Some(name))?;
                if pin.kind != crate::api::KIND_INTERPOSER {
                    return Err(EINVAL);
                }
                Some(Instance::create(pin, core::ptr::null())?)
            }
            None => None,
        };
        let mut table = OBJECTS.lock();
        table.slots.reserve(1, GFP_KERNEL)?;
        let ObjectTable { slots, ids } = &mut *table;
        let id = ids.take(|id| slots.iter().any(|s| s.id == id))?;
        let slot = Slot::new(id, *interface, object, wrapper)?;
        // Capacity was reserved above.
        let _ = table.slots.push(slot.clone(), GFP_KERNEL);
        drop(table);
        // Quarantined since the pins above: an ejection may have looked
        // before the slot was in the table.
        let _ = slot.status(|_, chain, _| chain.layers.iter().for_each(|l| l.imp.landed()));
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

#[kunit_tests(hotswap_object_ids)]
mod tests {
    use super::Ids;

    #[test]
    fn ids_count_up_from_one() {
        let mut ids = Ids::from(1);
        assert_eq!(ids.take(|_| false), Ok(1));
        assert_eq!(ids.take(|_| false), Ok(2));
    }

    #[test]
    fn a_wrapped_id_skips_those_in_use_and_zero() {
        let mut ids = Ids::from(u32::MAX);
        let in_use = |id| id == u32::MAX || id == 1 || id == 2;
        assert_eq!(ids.take(in_use), Ok(3));
        let mut ids = Ids::from(u32::MAX);
        assert_eq!(ids.take(|_| false), Ok(u32::MAX));
        assert_eq!(ids.take(|_| false), Ok(1));
    }
}
