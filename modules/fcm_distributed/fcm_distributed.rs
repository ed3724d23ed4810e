// SPDX-License-Identifier: GPL-2.0
//! `fcm_distributed`: the File Cache Manager for many CPUs — per-CPU
//! representatives, so a cache hit writes no line another CPU shares.
//!
//! On load it registers as `fcm`/`distributed` with hotswap.ko; on unload it
//! unregisters. The page cache itself arrives with the FCM issue.

use kernel::prelude::*;

#[path = "../../rust/hotswap/api.rs"]
pub mod api;

module! {
    type: FcmDistributedModule,
    name: "fcm_distributed",
    authors: ["hotswap developers"],
    description: "hotswap File Cache Manager: distributed (per-CPU) implementation",
    license: "GPL",
}

/// The `fcm`/`distributed` implementation.
pub struct DistributedFcm;

impl api::Implementation for DistributedFcm {
    const INTERFACE: &'static CStr = c"fcm";
    const NAME: &'static CStr = c"distributed";
}

struct FcmDistributedModule {
    _registration: api::Registration,
}

impl kernel::Module for FcmDistributedModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _registration: api::Registration::new::<DistributedFcm>(module)?,
        })
    }
}

#[kunit_tests(fcm_distributed_registration)]
mod tests {
    use super::api::{self, Implementation};
    use super::DistributedFcm;
    use kernel::prelude::*;

    #[test]
    fn registered_on_load() {
        assert!(api::impl_registered(
            DistributedFcm::INTERFACE,
            DistributedFcm::NAME
        ));
        assert!(!api::impl_registered(
            DistributedFcm::INTERFACE,
            c"no_such_impl"
        ));
    }

    #[test]
    fn second_registration_is_refused() {
        // THIS_MODULE only identifies the owner; the call must fail before
        // anything is pinned.
        let module = &<super::FcmDistributedModule as kernel::ModuleMetadata>::THIS_MODULE;
        assert_eq!(
            api::Registration::new::<DistributedFcm>(module).err(),
            Some(EEXIST)
        );
        assert!(api::impl_registered(
            DistributedFcm::INTERFACE,
            DistributedFcm::NAME
        ));
    }
}
