// SPDX-License-Identifier: GPL-2.0
//! Keeps `count` objects of the `hstest` interface (from
//! hotswap_core_test.ko, on `alpha`) alive while loaded, so that in-VM tests
//! have objects to list, swap and interpose through `/dev/hotswap`.
//!
//! It is a module of its own because objects pin their implementation's
//! module: objects held by hotswap_core_test.ko itself would keep it from
//! ever being unloaded.

use kernel::prelude::*;

#[path = "../../rust/abi/api.rs"]
pub mod api;

module! {
    type: HstestObjects,
    name: "hstest_objects",
    authors: ["hotswap developers"],
    description: "Test helper: live hstest objects for /dev/hotswap tests",
    license: "GPL",
    params: {
        count: u32 {
            default: 0,
            description: "Number of hstest objects to keep while loaded",
        },
    },
}

/// The `hstest` interface (registered by `hotswap_core_test`): this
/// module only creates objects, never calls them, so it needs no method
/// table type of its own.
struct Hstest;

impl api::Interface for Hstest {
    const NAME: &'static CStr = c"hstest";
    const METHODS_VERSION: u32 = 1;
    type Methods = ();
}

struct HstestObjects {
    _objects: KVec<api::Object<Hstest>>,
}

impl kernel::Module for HstestObjects {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut objects = KVec::new();
        for i in 0..module_parameters::count.value() {
            let initial = u64::from(i);
            // SAFETY: `hstest` objects take a `u64`, live for the call.
            let object = unsafe {
                api::Object::<Hstest>::create(Some(c"alpha"), core::ptr::from_ref(&initial).cast())
            }?;
            objects.push(object, GFP_KERNEL)?;
        }
        Ok(Self { _objects: objects })
    }
}
