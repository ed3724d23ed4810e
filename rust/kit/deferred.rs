// SPDX-License-Identifier: GPL-2.0
//! A module's own workqueue: work that must not run in the caller's
//! context and must not outlive the module. Compiled into each module that
//! needs one (hotswap.ko: the decision policies' swaps, never run inside
//! the call that noticed the load, since a swap waits for calls to finish,
//! that one included; a subsystem module: work that must not run in its
//! callers' context). Dropping [`Deferred`] at unload
//! destroys the queue, which first runs everything queued: work on a
//! system queue would hold no reference to the module and could run after
//! it is gone.
//!
//! The queue comes from `hotswap_workqueue_alloc` (hotswap.ko's
//! `control/workqueue.c`: `alloc_workqueue` is a C macro with no Rust
//! binding), and goes back through `hotswap_workqueue_free` (so this file
//! makes no raw kernel call); each module owns and destroys its own.

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Full, Release};

extern "C" {
    fn hotswap_workqueue_alloc(name: *const core::ffi::c_char) -> *mut bindings::workqueue_struct;
    fn hotswap_workqueue_free(queue: *mut bindings::workqueue_struct);
    fn hotswap_workqueue_flush(queue: *mut bindings::workqueue_struct);
}

/// This module's queue while it is loaded (set by [`Deferred`]).
static QUEUE: Atomic<*mut bindings::workqueue_struct> = Atomic::new(core::ptr::null_mut());

/// Owns the queue: made at module init, destroyed (after everything
/// queued ran) when dropped at unload.
pub(crate) struct Deferred;

impl Deferred {
    /// Makes the queue, called `name` (as `ps` shows its workers).
    pub(crate) fn new(name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated and static (the queue keeps a
        // copy of it anyway).
        let queue = unsafe { hotswap_workqueue_alloc(name.as_ptr()) };
        if queue.is_null() {
            return Err(ENOMEM);
        }
        QUEUE.store(queue, Release);
        Ok(Self)
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        let queue = QUEUE.xchg(core::ptr::null_mut(), Full);
        if !queue.is_null() {
            // SAFETY: Made by `new`, destroyed once. Work is queued only
            // for objects, and none is left at unload.
            unsafe { hotswap_workqueue_free(queue) };
        }
    }
}

/// Runs `f` on the queue; `ENODEV` once the module is unloading.
pub(crate) fn spawn(f: impl FnOnce() + Send + 'static) -> Result {
    let queue = QUEUE.load(Acquire);
    if queue.is_null() {
        return Err(ENODEV);
    }
    // SAFETY: The queue lives until `Deferred` is dropped at unload, when
    // no object is left to queue work.
    let queue = unsafe { kernel::workqueue::Queue::from_raw(queue) };
    Ok(queue.try_spawn(GFP_KERNEL, f)?)
}

/// Waits until everything queued before the call has run (work that it
/// queues in turn may still be running).
#[allow(dead_code)] // Not every module that compiles this file in waits.
pub(crate) fn flush() {
    let queue = QUEUE.load(Acquire);
    if !queue.is_null() {
        // SAFETY: The queue lives until `Deferred` is dropped at unload,
        // which cannot run while a caller of the module's code is inside.
        unsafe { hotswap_workqueue_flush(queue) };
    }
}
