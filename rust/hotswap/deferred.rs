// SPDX-License-Identifier: GPL-2.0
//! hotswap.ko's own workqueue (`deferred.c`): work that must not run in
//! the caller's context and must not outlive the module. The autonomic
//! policy's swaps run here (never inside the call that noticed the load:
//! a swap waits for calls to finish, that one included), and so does the
//! last write-back of a cached file that its closer could not finish (a
//! fatal signal, a transient error). Unloading hotswap.ko destroys the
//! queue, which first runs everything queued.

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Full, Release};

extern "C" {
    fn hotswap_deferred_queue_alloc() -> *mut bindings::workqueue_struct;
}

/// The queue while hotswap.ko is loaded (set by [`Deferred`]).
static QUEUE: Atomic<*mut bindings::workqueue_struct> = Atomic::new(core::ptr::null_mut());

/// Owns the queue: made at module init, destroyed (after everything
/// queued ran) when dropped at unload.
pub(crate) struct Deferred;

impl Deferred {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: FFI call with no requirements.
        let queue = unsafe { hotswap_deferred_queue_alloc() };
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
            // SAFETY: Made by `new`, destroyed once. Work is queued only by
            // objects' users, and no object is left at unload.
            unsafe { bindings::destroy_workqueue(queue) };
        }
    }
}

/// Runs `f` on the queue.
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
