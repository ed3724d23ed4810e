// SPDX-License-Identifier: GPL-2.0
//! hotswapfs's data path: a stackable filesystem (`mount -t hotswapfs -o
//! lowerdir=DIR none MNT`) whose regular files are openers of the FCM of
//! their lower inode, exactly as `/dev/hotswap-file`'s are
//! (`cached_file.rs`), so both front ends share one FCM per inode, its
//! write-back errors, its memory budget and its reclaim.
//!
//! The VFS tables are C (`hotswapfs_super.c`, `hotswapfs_namei.c`,
//! `hotswapfs_file.c`: 7.3's kernel crate has no filesystem abstractions);
//! these are the calls they make into the FCM. `open`, `release`,
//! `flush`, `llseek`, `fsync` and `fadvise` are the device's own handlers.

use crate::cached_file::{self, opener, FileRef};
use crate::fcm_api::FcmOps;
use core::ffi::{c_int, c_void};
use kernel::prelude::*;

extern "C" {
    fn hotswapfs_register() -> c_int;
    fn hotswapfs_unregister();
}

/// An FCM method's own return value, or the errno of reaching it.
fn ret_or_errno(r: Result<c_int>) -> c_int {
    r.unwrap_or_else(|e| e.to_errno())
}

/// Attaches the hotswapfs file `file` (its opener made by
/// `hotswap_file_open`) to the FCM of `lower`'s inode, taking over the
/// reference to `lower`, a file the FCM's own is reopened from.
/// `*revalidated`: the FCM found the file changed behind it and took its
/// size again (which may be smaller than the upper inode's).
///
/// # Safety
///
/// `file` is a hotswapfs regular file being opened; `lower` is a file
/// whose reference the caller hands over; `revalidated` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_attach_file(
    file: *mut c_void,
    lower: *mut c_void,
    revalidated: *mut bool,
) -> c_int {
    match FileRef::new(lower).and_then(|lower| cached_file::attach_backing(file, lower)) {
        Ok(changed) => {
            // SAFETY: As the caller promises.
            unsafe { *revalidated = changed };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// A hold on the FCM an attached hotswapfs file reaches, for its upper
/// inode to keep until eviction (`cached_file::hold`), or NULL if none
/// could be had (the FCM then ends with its last close, as the device's).
///
/// # Safety
///
/// `file` is an attached hotswapfs file.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_hold(file: *mut c_void) -> *mut c_void {
    // SAFETY: As the caller promises.
    let me = unsafe { opener(file) };
    cached_file::hold(me)
        .and_then(|held| Ok(KBox::new(held, GFP_KERNEL)?))
        .map_or(core::ptr::null_mut(), |held| KBox::into_raw(held).cast())
}

/// Lets go of a hold from [`hotswap_file_hold`]: the last one ends the
/// FCM on the module's workqueue (inode eviction may be memory reclaim's).
///
/// # Safety
///
/// `hold` came from `hotswap_file_hold` and is let go of once.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_fcm_unhold(hold: *mut c_void) {
    // SAFETY: As the caller promises.
    drop(unsafe { KBox::from_raw(hold.cast::<cached_file::InUse>()) });
}

/// Waits for the FCMs whose last holds went before the call to end
/// (hotswapfs's unmount, after evicting its inodes).
#[no_mangle]
pub(crate) extern "C" fn hotswap_fcm_wait_for_ends() {
    cached_file::wait_for_ends();
}

/// Reads or writes `len` bytes at `*pos` (advanced) between the FCM and
/// `buf`, a user address if `user`, else a kernel one: the bytes moved,
/// or an errno.
///
/// # Safety
///
/// `file` is an attached hotswapfs file; `pos` is writable; a kernel
/// `buf` is valid for `len` bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_io(
    file: *mut c_void,
    buf: usize,
    len: usize,
    pos: *mut i64,
    user: bool,
    write: bool,
) -> isize {
    // SAFETY: As the caller promises.
    let (me, at) = unsafe { (opener(file), &mut *pos) };
    let moved = if write {
        cached_file::write(file, me, buf, len, at, user, false)
    } else {
        cached_file::read(me, buf, len, at, user)
    };
    moved.unwrap_or_else(|e| e.to_errno() as isize)
}

/// The size the FCM of an attached file holds, or an errno.
///
/// # Safety
///
/// `file` is an attached hotswapfs file.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_size(file: *mut c_void) -> i64 {
    // SAFETY: As the caller promises.
    let me = unsafe { opener(file) };
    // SAFETY: The object is live for the call.
    me.call(|ops, obj, call| unsafe { (ops.size)(obj, call) })
        .unwrap_or_else(|e| e.to_errno() as i64)
}

/// Calls `f` on the FCM of `inode`, if it has one (`ENOENT` if not).
/// (The FCM may change the file: `InUse::changing`.)
fn with_inode_fcm<R>(
    inode: *mut c_void,
    f: impl FnOnce(&FcmOps, *mut c_void, &crate::api::Call) -> R,
) -> Result<R> {
    let held = cached_file::pin_inode(inode as usize)?.ok_or(ENOENT)?;
    held.changing(|| cached_file::call_fcm(held.slot(), f))
}

/// The lower inode `inode` is about to be changed by hotswapfs itself
/// (times, mode, owner through the lower path): its FCM, with no file
/// attached, first notices a change made behind it
/// (`InUse::revalidate_if_idle`); `hotswap_fcm_inode_settled` follows.
///
/// # Safety
///
/// None beyond FFI: `inode` is compared, never followed.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_fcm_inode_revalidate(inode: *mut c_void) {
    if let Ok(Some(held)) = cached_file::pin_inode(inode as usize) {
        held.revalidate_if_idle();
    }
}

/// The lower inode `inode` was changed by hotswapfs itself (its times,
/// mode or owner set through the lower path): its FCM, if it has one and
/// no file is attached, takes that for its own change, not someone else's.
///
/// # Safety
///
/// None beyond FFI: `inode` is compared, never followed.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_fcm_inode_settled(inode: *mut c_void) {
    if let Ok(Some(held)) = cached_file::pin_inode(inode as usize) {
        held.settled();
    }
}

/// The size of the FCM of the lower inode `inode` in `*size`; `-ENOENT`
/// if it has none. With no file open, an FCM whose file changed behind
/// it is revalidated first, and `*revalidated` (unless NULL) set.
///
/// # Safety
///
/// `size` is writable; `revalidated` is NULL or writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_fcm_inode_size(
    inode: *mut c_void,
    size: *mut i64,
    revalidated: *mut bool,
) -> c_int {
    let sized = cached_file::pin_inode(inode as usize).and_then(|held| {
        let held = held.ok_or(ENOENT)?;
        if held.revalidate_if_idle() && !revalidated.is_null() {
            // SAFETY: As the caller promises.
            unsafe { *revalidated = true };
        }
        // SAFETY: The object is live for the call.
        cached_file::call_fcm(held.slot(), |ops, obj, call| unsafe {
            (ops.size)(obj, call)
        })
    });
    match sized {
        Ok(n) if n < 0 => n as c_int,
        Ok(n) => {
            // SAFETY: As the caller promises.
            unsafe { *size = n };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Truncates the lower inode `inode` through its FCM (`-ENOENT` if it has
/// none: the caller truncates the inode itself).
///
/// # Safety
///
/// Called from hotswapfs's setattr with the upper inode locked.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_fcm_inode_truncate(inode: *mut c_void, size: i64) -> c_int {
    // SAFETY: The object is live for the call.
    ret_or_errno(with_inode_fcm(inode, |ops, obj, call| unsafe {
        (ops.truncate)(obj, call, size)
    }))
}

/// Writes the dirty pages of the FCM of the lower inode `inode` back
/// (`-ENOENT` if it has none): before times are set on it, which a later
/// write-back would otherwise overwrite.
///
/// # Safety
///
/// Called from hotswapfs's setattr.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_fcm_inode_write_back(inode: *mut c_void) -> c_int {
    // SAFETY: The object is live for the call.
    ret_or_errno(with_inode_fcm(inode, |ops, obj, call| unsafe {
        (ops.sync)(obj, call, 0, i64::MAX, 0)
    }))
}

/// `sync(2)`, `syncfs(2)` and unmount: writes every FCM of a file of the
/// lower superblock `sb` (whichever front end made it) back into the
/// lower file, where the caller's `sync_filesystem` of `sb` finds them.
/// Not an
/// `fsync` of the FCM's file, which would take the lower file's
/// write-back error that its openers are to hear of at their `fsync`.
/// The first failure is returned after the rest are tried.
///
/// # Safety
///
/// Called from hotswapfs's `sync_fs`.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_fcm_sync_sb(sb: *const c_void) -> c_int {
    let owners = match cached_file::owners() {
        Ok(owners) => owners,
        Err(e) => return e.to_errno(),
    };
    let mut first = 0;
    for owner in owners {
        let Some(held) = cached_file::pin(owner) else {
            continue;
        };
        if held.superblock() != sb {
            continue;
        }
        let ret = held.changing(|| {
            // SAFETY: The object is live for the call.
            cached_file::call_fcm(held.slot(), |ops, obj, call| unsafe {
                (ops.sync)(obj, call, 0, i64::MAX, 0)
            })
            .unwrap_or_else(|e| e.to_errno())
        });
        if first == 0 {
            first = ret;
        }
    }
    first
}

/// Keeps hotswapfs registered. A mounted hotswapfs holds this module, so
/// no superblock (and no hotswapfs file) is left when it goes.
pub(crate) struct Registration;

impl Registration {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Called once from module init, after `CACHED.init()`.
        kernel::error::to_result(unsafe { hotswapfs_register() })?;
        Ok(Self)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`; nothing is mounted (see above).
        unsafe { hotswapfs_unregister() };
    }
}
