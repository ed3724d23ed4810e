// SPDX-License-Identifier: GPL-2.0
//! An instance: one object or interposer created by an implementation.
//!
//! Chains share instances through `Arc`s; the instance is destroyed when
//! the last chain that contains it is freed, which happens only after a
//! grace period of its slot's domain, so no call can still be inside it.

use crate::api;
use crate::registry::ImplPin;
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, UniqueArc};

/// A live object or interposer and the pinned implementation that made it.
pub(crate) struct Instance {
    pub(crate) imp: ImplPin,
    pub(crate) obj: *mut c_void,
    /// Destroy quietly: the state lives on elsewhere (handed over to a
    /// successor, or never taken over from a predecessor).
    quiet: Atomic<bool>,
}

// SAFETY: `obj` is owned by this instance and only passed to its
// implementation, which must accept calls from any CPU (every slot call
// can come from any CPU).
unsafe impl Send for Instance {}
// SAFETY: As for `Send`.
unsafe impl Sync for Instance {}

impl Instance {
    /// Creates an instance of `imp` from the interface-specific `arg`.
    pub(crate) fn create(imp: ImplPin, arg: *const c_void) -> Result<Arc<Self>> {
        // Allocate first: once `create` succeeds nothing may fail, or the
        // new object would have no owner to destroy it.
        let slot = UniqueArc::new_uninit(GFP_KERNEL)?;
        let obj = imp.create(arg)?;
        Ok(slot
            .write(Self {
                imp,
                obj,
                quiet: Atomic::new(false),
            })
            .into())
    }

    /// The implementation's method table.
    #[inline]
    pub(crate) fn methods(&self) -> *const c_void {
        self.imp.methods
    }

    /// Marks the instance to be destroyed without side effects.
    pub(crate) fn make_quiet(&self) {
        self.quiet.store(true, Relaxed);
    }

    /// Marks the instance to be destroyed for good (writing back what it
    /// must): a replacement that took its slot's state over.
    pub(crate) fn make_final(&self) {
        self.quiet.store(false, Relaxed);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let how = if self.quiet.load(Relaxed) {
            api::DESTROY_QUIET
        } else {
            api::DESTROY_FINAL
        };
        self.imp.destroy(self.obj, how);
    }
}
