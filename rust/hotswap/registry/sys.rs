// SPDX-License-Identifier: GPL-2.0
//! hotswap.ko's raw kernel calls, fenced: every `bindings::` call of the
//! core is here (the kernel crate has no abstraction for module reference
//! counts or a capability check without a `File`), wrapped in a safe
//! function with its contract stated once. The shared `deferred.rs` calls
//! C helpers of `control/workqueue.c` instead.

use kernel::bindings;
use kernel::prelude::*;

/// A module pointer kept only as an identity and for reference counting
/// (NULL: built-in code).
#[derive(Clone, Copy)]
pub(crate) struct ModulePtr(pub(crate) *mut bindings::module);

// SAFETY: `struct module` may be referenced from any thread; the registry
// only passes it to `try_module_get`/`module_put`.
unsafe impl Send for ModulePtr {}
// SAFETY: As for `Send`.
unsafe impl Sync for ModulePtr {}

impl ModulePtr {
    /// Takes a reference on the module; `ENODEV` if it is going away, and
    /// `EBUSY` while it is still running its init.
    ///
    /// A module whose init fails is freed whatever its reference count
    /// (only `rmmod` waits for it to drop), so a reference taken while it
    /// is coming, say by an object created on an implementation it has
    /// just registered, would outlive it. The module loader refuses such
    /// modules the same way (`strong_try_module_get`).
    pub(crate) fn get(self) -> Result {
        if !self.0.is_null() {
            // SAFETY: As below, the module is live; `state` is read once
            // (it changes under the loader's lock, which is not ours).
            let state = unsafe { core::ptr::addr_of!((*self.0).state).read_volatile() };
            if state == bindings::module_state_MODULE_STATE_COMING {
                return Err(EBUSY);
            }
        }
        // SAFETY: The pointer comes from a registering module, which is live
        // while it is registered; `try_module_get` accepts NULL (built-in).
        if unsafe { bindings::try_module_get(self.0) } {
            Ok(())
        } else {
            Err(ENODEV)
        }
    }

    /// Drops a reference taken by [`ModulePtr::get`].
    pub(crate) fn put(self) {
        // SAFETY: Pairs with a successful `get`.
        unsafe { bindings::module_put(self.0) };
    }

    /// Runs `f` on the module's name ("" for built-in code).
    ///
    /// # Safety
    ///
    /// The module is live for the call (it has something registered).
    pub(crate) unsafe fn with_name<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        if self.0.is_null() {
            return f(b"");
        }
        // SAFETY: The caller promises the module is live; `name` is a
        // NUL-terminated array inside it.
        let name = unsafe { &(*self.0).name };
        // SAFETY: `c_char` and `u8` have the same layout.
        f(unsafe { core::slice::from_raw_parts(name.as_ptr().cast(), name.len()) })
    }
}

/// Whether the caller has `CAP_SYS_ADMIN` (in the initial namespace).
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: FFI call with no requirements.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

#[kunit_tests(hotswap_module_pin)]
mod tests {
    use super::*;

    /// A module as the loader has it while its init runs: one reference
    /// (the loader's), state `COMING`.
    fn coming_module() -> Result<KBox<bindings::module>> {
        let mut m = KBox::<bindings::module>::new_uninit(GFP_KERNEL)?;
        // SAFETY: All-zero is a valid `struct module` (plain integers,
        // pointers and lists, as the loader's own `kzalloc` relies on).
        let mut m = unsafe {
            m.as_mut_ptr().write_bytes(0, 1);
            m.assume_init()
        };
        m.state = bindings::module_state_MODULE_STATE_COMING;
        m.refcnt.counter = 1;
        Ok(m)
    }

    #[test]
    fn a_module_still_in_init_is_not_pinned() -> Result {
        let mut m = coming_module()?;
        let ptr = ModulePtr(&mut *m);
        assert_eq!(ptr.get(), Err(EBUSY));
        assert_eq!(m.refcnt.counter, 1);
        m.state = bindings::module_state_MODULE_STATE_LIVE;
        assert_eq!(ModulePtr(&mut *m).get(), Ok(()));
        assert_eq!(m.refcnt.counter, 2);
        ModulePtr(&mut *m).put();
        assert_eq!(m.refcnt.counter, 1);
        Ok(())
    }
}
