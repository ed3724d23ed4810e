// SPDX-License-Identifier: GPL-2.0
//! `fcm_shared`: the File Cache Manager for one CPU — one lock, one map,
//! one LRU list; the cheapest FCM in memory and on a single CPU.
//!
//! On load it registers as `fcm`/`shared` with hotswap.ko; on unload it
//! unregisters. The page cache itself arrives with the FCM issue.

use kernel::prelude::*;

#[path = "../../rust/hotswap/api.rs"]
pub mod api;

module! {
    type: FcmSharedModule,
    name: "fcm_shared",
    authors: ["hotswap developers"],
    description: "hotswap File Cache Manager: shared (single lock) implementation",
    license: "GPL",
}

/// The `fcm`/`shared` implementation.
pub struct SharedFcm;

impl api::Implementation for SharedFcm {
    const INTERFACE: &'static CStr = c"fcm";
    const NAME: &'static CStr = c"shared";
}

struct FcmSharedModule {
    _registration: api::Registration,
}

impl kernel::Module for FcmSharedModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _registration: api::Registration::new::<SharedFcm>(module)?,
        })
    }
}

#[kunit_tests(fcm_shared_registration)]
mod tests {
    use super::api::{self, Implementation};
    use super::SharedFcm;
    use kernel::prelude::*;

    #[test]
    fn registered_on_load() {
        assert!(api::impl_registered(SharedFcm::INTERFACE, SharedFcm::NAME));
        assert!(!api::impl_registered(SharedFcm::INTERFACE, c"no_such_impl"));
    }

    #[test]
    fn second_registration_is_refused() {
        // THIS_MODULE only identifies the owner; the call must fail before
        // anything is pinned.
        let module = &<super::FcmSharedModule as kernel::ModuleMetadata>::THIS_MODULE;
        assert_eq!(
            api::Registration::new::<SharedFcm>(module).err(),
            Some(EEXIST)
        );
        assert!(api::impl_registered(SharedFcm::INTERFACE, SharedFcm::NAME));
    }
}
