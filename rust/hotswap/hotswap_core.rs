// SPDX-License-Identifier: GPL-2.0
//! hotswap: hot swapping of live kernel components, after IBM's K42.
//!
//! Every swappable object is reached through a slot of an object
//! translation table (`slot.rs`); implementations register by interface
//! and name (`fcm`/`shared`, `fcm`/`distributed`) through the C-ABI tables
//! in [`api`]; interposers wrap objects without stopping them
//! (`interpose.rs`); a mediator replaces an object with another
//! implementation, state and all, in K42's phases while callers keep
//! calling (`mediator.rs`, `swap.rs`, `transfer.rs`), with SRCU-style
//! per-slot grace periods as the generation count (`domain.rs`). This crate is
//! `hotswap.ko`.

use kernel::prelude::*;

pub mod api;
mod cached_file;
mod chain;
mod control;
mod deferred;
mod domain;
pub mod entry;
mod fcm;
pub mod fcm_api;
mod fcm_memory;
mod instance;
mod interpose;
mod mediator;
mod objects;
mod policy;
mod registry;
mod slot;
mod stats;
mod status;
mod swap;
mod transfer;
pub mod uapi;

module! {
    type: Hotswap,
    name: "hotswap",
    authors: ["hotswap developers"],
    description: "Hot swapping and interposition of live kernel components",
    license: "GPL",
    params: {
        fcm_capacity: u64 {
            default: 16384,
            description: "Pages each File Cache Manager may cache (0: no bound)",
        },
    },
}

/// hotswap.ko's own `struct module`.
pub(crate) fn this_module() -> *mut kernel::bindings::module {
    <Hotswap as kernel::ModuleMetadata>::THIS_MODULE.as_ptr()
}

struct Hotswap {
    _files: cached_file::Registration,
    _control: Pin<KBox<kernel::miscdevice::MiscDeviceRegistration<control::Control>>>,
    _status: Pin<KBox<status::Status>>,
    _fcm: api::InterfaceRegistration,
    // After the cached files: no FCM page is left when the shrinker goes.
    _memory: fcm_memory::Registration,
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
        objects::release_storage();
        *cached_file::CACHED.lock() = KVec::new();
    }
}

impl kernel::Module for Hotswap {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Called once, before any entry point can be reached: the
        // symbols other modules link against resolve only after init.
        unsafe {
            registry::REGISTRY.init();
            objects::OBJECTS.init();
            cached_file::CACHED.init();
            policy::SETTINGS.init();
        }
        cached_file::CAPACITY.store(
            module_parameters::fcm_capacity.value(),
            kernel::sync::atomic::Release,
        );
        let deferred = deferred::Deferred::new()?;
        let memory = fcm_memory::Registration::new()?;
        let fcm = api::InterfaceRegistration::new(fcm::INTERFACE, module)?;
        let status = KBox::pin_init(status::Status::new(), GFP_KERNEL)?;
        let control = KBox::pin_init(control::register(), GFP_KERNEL)?;
        let files = cached_file::Registration::new()?;
        pr_info!("loaded (ABI {})\n", api::ABI_VERSION);
        Ok(Self {
            _files: files,
            _control: control,
            _status: status,
            _fcm: fcm,
            _memory: memory,
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
            objects::count(),
            stats::misbehaviors()
        );
    }
}
