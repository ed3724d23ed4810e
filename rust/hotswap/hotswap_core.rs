// SPDX-License-Identifier: GPL-2.0
//! hotswap: hot swapping of live kernel components, after IBM's K42.
//!
//! This crate is `hotswap.ko`: the mechanism and the control plane, and
//! no interface by name. Its layers, each using only those above it in
//! this list:
//!
//! ```text
//!   ../abi/      the cross-module ABI (api.rs) and the ioctl ABI (uapi.rs),
//!                compiled into every module and into hswapctl
//!   registry/    interfaces, implementations and decision policies by
//!                name; the count of misbehaving plug-ins
//!   ott/         the object translation table: slots, chains, read-side
//!                domains, instances, the mediator and its phases, swap
//!                history, the table of live objects
//!   swap/        the batch driver, state transfer, interposition
//!   control/     entry points for modules, /dev/hotswap, debugfs status,
//!                the generic decision-policy hook
//! ```
//!
//! Interfaces (each a subsystem module of its own, beside its
//! implementations) register themselves through [`api`]; nothing here
//! names one.
//!
//! # Locks
//!
//! A lock is taken only while holding locks listed before it:
//!
//! 1. `REGISTRY` (`registry/table.rs`) and a slot's `admin`
//!    (`ott/slot.rs`), never one under the other. Plug-in code runs under
//!    them: a decision policy's `decide` and `check` under `REGISTRY` (so
//!    its module cannot go meanwhile), an implementation's `report` and
//!    `destroy` (a retired chain reaped) under `admin`; it takes none of
//!    these locks. A misbehavior noticed there is queued under `PENDING`.
//! 2. Leaves, under which nothing else of ours is taken: `PENDING`
//!    (`registry/misbehavior.rs`), `OBJECTS` (`ott/objects.rs`), a
//!    mediator's `gate`, `inside` and `events` (`ott/mediator.rs`).
//!
//! The only waits under a lock are condition waits that release it:
//! `Slot::destroy` and `Slot::claim_waiting` on the slot's `released`,
//! `Mediator::wait_while_blocked` on `changed`. A slot's claim
//! (`Slot::claim`) is an exclusive administrative state, not a lock: it is
//! taken and waited for with none of these locks held, and it is what may
//! be held across waits (a swap's phases, a grace period).

use kernel::prelude::*;

#[path = "../abi/api.rs"]
pub mod api;
pub mod control;
#[path = "../kit/deferred.rs"]
mod deferred;
mod ott;
mod registry;
mod swap;
#[path = "../abi/uapi.rs"]
pub mod uapi;

module! {
    type: Hotswap,
    name: "hotswap",
    authors: ["hotswap developers"],
    description: "Hot swapping and interposition of live kernel components",
    license: "GPL",
}

/// hotswap.ko's own `struct module`.
pub(crate) fn this_module() -> registry::ModulePtr {
    registry::ModulePtr(<Hotswap as kernel::ModuleMetadata>::THIS_MODULE.as_ptr())
}

struct Hotswap {
    _control: Pin<KBox<kernel::miscdevice::MiscDeviceRegistration<control::control::Control>>>,
    _status: Pin<KBox<control::status::Status>>,
    _deferred: deferred::Deferred,
    // Last: fields drop in declaration order, and the registrations above
    // still use the tables when they go.
    _tables: GlobalTables,
}

/// Frees the storage of the global tables at unload. Rust never drops a
/// `static`, so without this the vectors' buffers (emptied, but with their
/// capacity) outlive the module: kmemleak reports them on every unload.
struct GlobalTables;

impl Drop for GlobalTables {
    fn drop(&mut self) {
        *registry::REGISTRY.lock() = registry::Registry::new();
        ott::objects::release_storage();
        *registry::misbehavior::PENDING.lock() = KVec::new();
    }
}

impl kernel::Module for Hotswap {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Called once, before any entry point can be reached: the
        // symbols other modules link against resolve only after init.
        unsafe {
            registry::REGISTRY.init();
            ott::objects::OBJECTS.init();
            registry::misbehavior::PENDING.init();
        }
        let deferred = deferred::Deferred::new(c"hotswap")?;
        let status = KBox::pin_init(control::status::Status::new(), GFP_KERNEL)?;
        let control = KBox::pin_init(control::control::register(), GFP_KERNEL)?;
        pr_info!("loaded (ABI {})\n", api::ABI_VERSION);
        Ok(Self {
            _control: control,
            _status: status,
            _deferred: deferred,
            _tables: GlobalTables,
        })
    }
}

impl Drop for Hotswap {
    fn drop(&mut self) {
        // Objects pin this module, so none is left here.
        pr_info!(
            "unloaded ({} objects, {} implementation misbehaviors seen)\n",
            ott::objects::count(),
            registry::misbehavior::misbehaviors()
        );
    }
}
