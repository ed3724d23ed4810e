// SPDX-License-Identifier: GPL-2.0
//! Keeps `count` objects of the `hstest` interface (from
//! hotswap_core_test.ko, on `alpha`) alive while loaded, so that in-VM tests
//! have objects to list, swap and interpose through `/dev/hotswap`.
//!
//! It is a module of its own because objects pin their implementation's
//! module: objects held by hotswap_core_test.ko itself would keep it from
//! ever being unloaded.

use core::ffi::c_void;
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

/// The `hstest` interface (registered by `hotswap_core_test`). This
/// module only creates objects and never calls them, but its handles'
/// method table type must still be the interface's (hotswap checks its
/// version and size at creation), so it repeats `TestOps`' layout.
struct Hstest;

/// `hotswap_core_test`'s `TestOps`, field for field.
#[repr(C)]
struct TestOps {
    _add: unsafe extern "C" fn(obj: *mut c_void, call: *const api::Call, n: u64) -> u64,
    _tag: unsafe extern "C" fn(obj: *mut c_void, call: *const api::Call) -> u32,
}

impl api::Interface for Hstest {
    const NAME: &'static CStr = c"hstest";
    const METHODS_VERSION: u32 = 1;
    type Methods = TestOps;
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
