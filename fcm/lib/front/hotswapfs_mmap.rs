// SPDX-License-Identifier: GPL-2.0
//! hotswapfs's mmap, the Rust side: a fault on a mapping of a hotswapfs
//! file maps its FCM's own page (`FcmOps::page`), marked with the cached
//! inode's [`Maps`], so that the page is unmapped before any FCM frees it
//! (`fcm_mapped.c` has the protocol). The VMA operations are C
//! (`hotswapfs_file.c`).

use crate::cached_file::{self, opener, InUse};
use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use kernel::prelude::*;

extern "C" {
    fn hotswap_fcm_maps_new() -> *mut c_void;
    fn hotswap_fcm_maps_put(maps: *mut c_void);
}

/// The address spaces that map a cached inode's pages (`struct
/// hotswap_fcm_maps`), one per cached inode, with one reference of its
/// own; every page lent to a fault holds another.
///
/// # Invariants
///
/// `0` is a live `hotswap_fcm_maps` this value holds a reference to.
pub(crate) struct Maps(NonNull<c_void>);

// SAFETY: The handle is refcounted and locked in C; any thread may use
// and put it.
unsafe impl Send for Maps {}
// SAFETY: As above.
unsafe impl Sync for Maps {}

impl Maps {
    /// A new, empty handle.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: FFI call with no requirements.
        let raw = unsafe { hotswap_fcm_maps_new() };
        // INVARIANT: A new handle with one reference, ours.
        NonNull::new(raw).map(Self).ok_or(ENOMEM)
    }

    /// The raw handle, live while `self` is.
    pub(crate) fn as_ptr(&self) -> *mut c_void {
        self.0.as_ptr()
    }
}

impl Drop for Maps {
    fn drop(&mut self) {
        // SAFETY: By the invariants this value holds one reference.
        unsafe { hotswap_fcm_maps_put(self.0.as_ptr()) };
    }
}

/// Lends page `index` of an attached hotswapfs file's FCM to a fault:
/// `*page` gets the page with a reference for the caller. 0, `-ENXIO`
/// past the end of the file, or another errno.
///
/// # Safety
///
/// `file` is an attached hotswapfs file (a mapping's `vm_file`); `page`
/// is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_page(
    file: *mut c_void,
    index: u64,
    page: *mut *mut c_void,
) -> c_int {
    // SAFETY: As the caller promises.
    let me = unsafe { opener(file) };
    match cached_file::lend_page(me, index) {
        Ok(lent) => {
            // SAFETY: As the caller promises.
            unsafe { *page = lent };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// The mappings handle of the FCM a hold keeps (borrowed: live while the
/// hold is), for hotswapfs's `mmap` to list its address space in and its
/// inode's eviction to take it off.
///
/// # Safety
///
/// `hold` came from `hotswap_file_hold` and is still held.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_fcm_hold_maps(hold: *mut c_void) -> *mut c_void {
    // SAFETY: As the caller promises.
    let held = unsafe { &*hold.cast::<InUse>() };
    held.maps()
}
