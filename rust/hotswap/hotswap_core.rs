// SPDX-License-Identifier: GPL-2.0
//! hotswap: hot swapping of live kernel components, after IBM's K42.
//!
//! Every swappable object is reached through a slot of an object
//! translation table; implementations register by interface and name
//! (`fcm`/`shared`, `fcm`/`distributed`) through the C-ABI tables in
//! [`api`], and a mediator moves a slot from one implementation to another
//! while callers keep calling. This crate is `hotswap.ko`.

use kernel::prelude::*;

pub mod api;
pub mod entry;
mod fcm;
mod registry;

module! {
    type: Hotswap,
    name: "hotswap",
    authors: ["hotswap developers"],
    description: "Hot swapping and interposition of live kernel components",
    license: "GPL",
}

struct Hotswap {
    _fcm: api::InterfaceRegistration,
}

impl kernel::Module for Hotswap {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Called once, before any entry point can be reached: the
        // symbols other modules link against resolve only after init.
        unsafe { registry::REGISTRY.init() };
        let fcm = api::InterfaceRegistration::new(fcm::INTERFACE, module)?;
        pr_info!("loaded (ABI {})\n", api::ABI_VERSION);
        Ok(Self { _fcm: fcm })
    }
}

impl Drop for Hotswap {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
