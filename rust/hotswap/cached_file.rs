// SPDX-License-Identifier: GPL-2.0
//! The cached-file front end: `/dev/hotswap-file`.
//!
//! A process opens the device and attaches a backing file (passing its
//! descriptor); `read`, `pread`, `write`, `pwrite`, `lseek` and `fsync` then
//! go through the File Cache Manager of the backing inode. There is one FCM
//! per inode, shared by every opener (several CPUs hitting one FCM is what
//! makes swapping it worthwhile); it is written back and destroyed when the
//! last opener closes. New FCMs start on the interface's default
//! implementation (`shared` unless a swap-all changed it).
//!
//! The file operations table is C (`cached_file.c`: the miscdevice
//! abstraction has no `llseek`/`fsync`); these are its handlers.

use crate::api::Call;
use crate::fcm_api::{FcmCreate, FcmOps, FcmStats};
use crate::objects;
use crate::registry::REGISTRY;
use crate::slot::Slot;
use crate::uapi::{FileInfo, HOTSWAP_FILE_IOC_ATTACH, HOTSWAP_FILE_IOC_INFO};
use core::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Release};
use kernel::sync::{new_mutex, Arc, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

extern "C" {
    fn hotswap_file_register() -> c_int;
    fn hotswap_file_unregister();
    fn hotswap_file_check_backing(backing: *mut c_void, file: *mut c_void) -> c_int;
    fn hotswap_file_writable(file: *mut c_void) -> bool;
    fn hotswap_file_private(file: *mut c_void) -> *mut c_void;
    fn hotswap_file_set_private(file: *mut c_void, data: *mut c_void);
    fn hotswap_file_seek(file: *mut c_void, offset: i64, whence: c_int, size: i64) -> i64;
    fn fget(fd: c_uint) -> *mut c_void;
    fn fput(file: *mut c_void);
}

/// Pages an FCM may cache (0: no bound); set by hotswap's module parameter.
pub(crate) static CAPACITY: Atomic<u64> = Atomic::new(0);

/// One cached inode.
pub(crate) struct Entry {
    inode: usize,
    slot: Arc<Slot>,
    openers: usize,
    /// Whether the FCM's backing file was opened for writing.
    writable: bool,
}

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init before the device exists.
    pub(crate) unsafe(uninit) static CACHED: Mutex<KVec<Entry>> = KVec::new();
}

/// Per open file of the device.
#[pin_data]
struct Opener {
    /// The attached FCM's slot, set once (under `attach`), then read
    /// without a lock on every call. Owned: a leaked `Arc<Slot>`.
    attached: Atomic<*mut Slot>,
    inode: Atomic<usize>,
    #[pin]
    attach: Mutex<()>,
}

fn errno(r: Result<isize>) -> isize {
    r.unwrap_or_else(|e| e.to_errno() as isize)
}

/// The opener behind `file`.
///
/// # Safety
///
/// `file` is a file of this device between `open` and `release`.
unsafe fn opener<'a>(file: *mut c_void) -> &'a Opener {
    // SAFETY: `open` stored a leaked `Pin<KBox<Opener>>` there.
    unsafe { &*hotswap_file_private(file).cast::<Opener>() }
}

impl Opener {
    fn slot(&self) -> Result<&Slot> {
        // Ordering: pairs with the release store in `attach`.
        // SAFETY: Set once from a leaked `Arc<Slot>` that `release` frees.
        unsafe { self.attached.load(Acquire).as_ref() }.ok_or(ENOTCONN)
    }

    /// Calls `f` on the FCM through the slot.
    fn call<R>(&self, f: impl FnOnce(&FcmOps, *mut c_void, &Call) -> R) -> Result<R> {
        call_fcm(self.slot()?, f)
    }
}

/// Calls `f` on the FCM of `slot`, through the slot.
fn call_fcm<R>(slot: &Slot, f: impl FnOnce(&FcmOps, *mut c_void, &Call) -> R) -> Result<R> {
    let mut call = Call::new();
    slot.begin(&mut call)?;
    // SAFETY: Every layer of an `fcm` slot has an `FcmOps` table.
    let ops = unsafe { &*call.methods.cast::<FcmOps>() };
    let ret = f(ops, call.obj, &call);
    // SAFETY: Begun above.
    unsafe { slot.end(&mut call) };
    Ok(ret)
}

/// Checks a byte count an FCM returned for a request of `len` bytes.
fn checked_count(ret: isize, len: usize) -> Result<isize> {
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    if ret as usize > len {
        pr_warn!(
            "fcm returned {} bytes for a {}-byte request; refused\n",
            ret,
            len
        );
        crate::stats::count_misbehavior();
        return Err(EIO);
    }
    Ok(ret)
}

/// Implementation new FCMs get: the interface default, else `shared`.
fn default_impl() -> Option<crate::api::Name> {
    let registry = REGISTRY.lock();
    let fcm = crate::api::name_from_cstr(crate::fcm::INTERFACE).ok()?;
    if registry.default_impl(&fcm).is_some() {
        return None;
    }
    let shared = crate::api::name_from_cstr(c"shared").ok()?;
    registry.find_impl(&fcm, &shared).then_some(shared)
}

fn attach(file: *mut c_void, fd: u32) -> Result {
    // SAFETY: Called from this device's ioctl.
    let me = unsafe { opener(file) };
    let _serial = me.attach.lock();
    if me.slot().is_ok() {
        return Err(EBUSY);
    }
    // SAFETY: FFI; a reference is taken if the descriptor is valid.
    let backing = unsafe { fget(fd) };
    if backing.is_null() {
        return Err(EBADF);
    }
    let result = (|| -> Result<(Arc<Slot>, usize)> {
        // SAFETY: Both files are live.
        kernel::error::to_result(unsafe { hotswap_file_check_backing(backing, file) })?;
        // SAFETY: Both are live files.
        let (wants_write, backing_writable) =
            unsafe { (hotswap_file_writable(file), hotswap_file_writable(backing)) };
        // SAFETY: A live file has an inode.
        let inode = unsafe { (*backing.cast::<kernel::bindings::file>()).f_inode } as usize;
        let mut table = CACHED.lock();
        if let Some(entry) = table.iter_mut().find(|e| e.inode == inode) {
            if wants_write && !entry.writable {
                // The FCM writes back through the first opener's file,
                // which cannot write: hand it this one (checked writable
                // above), or a reader would lock every writer out.
                let ret = call_fcm(&entry.slot, |ops, obj, call| {
                    // SAFETY: `backing` is live until the `fput` below.
                    unsafe { (ops.set_file)(obj, call, backing) }
                })?;
                kernel::error::to_result(ret)?;
                entry.writable = true;
            }
            entry.openers += 1;
            return Ok((entry.slot.clone(), inode));
        }
        table.reserve(1, GFP_KERNEL)?;
        let fcm = crate::api::name_from_cstr(crate::fcm::INTERFACE)?;
        let args = FcmCreate {
            file: backing,
            capacity: CAPACITY.load(Acquire),
        };
        let slot = objects::create(
            &fcm,
            default_impl().as_ref(),
            core::ptr::from_ref(&args).cast(),
        )?;
        crate::policy::ensure_monitor(&slot);
        // Capacity was reserved above.
        let _ = table.push(
            Entry {
                inode,
                slot: slot.clone(),
                openers: 1,
                writable: backing_writable,
            },
            GFP_KERNEL,
        );
        Ok((slot, inode))
    })();
    // SAFETY: Taken by `fget` above; the FCM holds its own reference.
    unsafe { fput(backing) };
    let (slot, inode) = result?;
    me.inode.store(inode, Release);
    // Ordering: publishes the slot to the lock-free readers in `slot()`.
    me.attached.store(Arc::into_raw(slot).cast_mut(), Release);
    Ok(())
}

fn detach(me: &Opener) {
    let slot = me.attached.load(Acquire);
    if slot.is_null() {
        return;
    }
    // SAFETY: The leaked `Arc` from `attach`, taken back once.
    let slot = unsafe { Arc::from_raw(slot) };
    let inode = me.inode.load(Acquire);
    let mut table = CACHED.lock();
    if let Some(pos) = table.iter().position(|e| e.inode == inode) {
        table[pos].openers -= 1;
        if table[pos].openers == 0 {
            // Under the lock: a new opener of the inode must not get a
            // second FCM while this one still writes back.
            if let Ok(entry) = table.remove(pos) {
                objects::destroy(&entry.slot);
            }
        }
    }
    drop(slot);
}

fn info(me: &Opener) -> Result<FileInfo> {
    let id = me.slot()?.id;
    let mut s = FcmStats::default();
    // SAFETY: `s` is writable; the object is live for the call.
    me.call(|ops, obj, call| unsafe { (ops.stats)(obj, call, &mut s) })?;
    Ok(FileInfo {
        object: id,
        reserved: 0,
        size: s.size,
        hits: s.hits,
        misses: s.misses,
        fills: s.fills,
        writebacks: s.writebacks,
        evictions: s.evictions,
        cached: s.cached,
        dirty: s.dirty,
        allocated: s.allocated,
        freed: s.freed,
    })
}

// SAFETY: `FileInfo` is `#[repr(C)]` integers with explicit padding.
unsafe impl kernel::transmute::AsBytes for FileInfo {}

/// `open`: a fresh opener with nothing attached.
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_open(_inode: *mut c_void, file: *mut c_void) -> c_int {
    let made = KBox::pin_init(
        pin_init!(Opener {
            attached: Atomic::new(core::ptr::null_mut()),
            inode: Atomic::new(0),
            attach <- new_mutex!(()),
        }),
        GFP_KERNEL,
    );
    match made {
        Ok(opener) => {
            // SAFETY: Never moved again: freed in `release` as the same pin.
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(opener) });
            // SAFETY: `file` is being opened.
            unsafe { hotswap_file_set_private(file, raw.cast()) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `release`: detaches (the last opener of an inode ends its FCM).
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_release(
    _inode: *mut c_void,
    file: *mut c_void,
) -> c_int {
    // SAFETY: `open` stored the opener; nobody else uses it after release.
    let me = unsafe { KBox::from_raw(hotswap_file_private(file).cast::<Opener>()) };
    detach(&me);
    0
}

/// `read`/`pread`.
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_read(
    file: *mut c_void,
    buf: *mut u8,
    len: usize,
    pos: *mut i64,
) -> isize {
    // SAFETY: A file of this device; `pos` is the VFS's position.
    let (me, at) = unsafe { (opener(file), &mut *pos) };
    errno((|| {
        let n = me.call(|ops, obj, call| {
            // SAFETY: The FCM copies to the user buffer, checking it.
            unsafe { (ops.read)(obj, call, *at, buf as usize, len, 1) }
        })?;
        let n = checked_count(n, len)?;
        *at += n as i64;
        Ok(n)
    })())
}

/// `write`/`pwrite`.
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_write(
    file: *mut c_void,
    buf: *const u8,
    len: usize,
    pos: *mut i64,
) -> isize {
    // SAFETY: A file of this device; `pos` is the VFS's position.
    let (me, at) = unsafe { (opener(file), &mut *pos) };
    errno((|| {
        // SAFETY: A live file.
        if !unsafe { hotswap_file_writable(file) } {
            return Err(EBADF);
        }
        let n = me.call(|ops, obj, call| {
            // SAFETY: The FCM copies from the user buffer, checking it.
            unsafe { (ops.write)(obj, call, *at, buf as usize, len, 1) }
        })?;
        let n = checked_count(n, len)?;
        *at += n as i64;
        Ok(n)
    })())
}

/// `lseek`: positions within the cached file's size.
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_llseek(
    file: *mut c_void,
    offset: i64,
    whence: c_int,
) -> i64 {
    // SAFETY: A file of this device.
    let me = unsafe { opener(file) };
    // SAFETY: The object is live for the call.
    match me.call(|ops, obj, call| unsafe { (ops.size)(obj, call) }) {
        // SAFETY: A live file; the helper applies VFS seek rules.
        Ok(size) => unsafe { hotswap_file_seek(file, offset, whence, size) },
        Err(e) => e.to_errno() as i64,
    }
}

/// `fsync`: writes dirty pages in the range back and syncs the file.
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_fsync(
    file: *mut c_void,
    start: i64,
    end: i64,
    _datasync: c_int,
) -> c_int {
    // SAFETY: A file of this device.
    let me = unsafe { opener(file) };
    // SAFETY: The object is live for the call.
    match me.call(|ops, obj, call| unsafe { (ops.sync)(obj, call, start, end) }) {
        Ok(ret) => ret,
        Err(e) => e.to_errno(),
    }
}

/// `ioctl`: attach a backing file, or report on it.
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_ioctl(
    file: *mut c_void,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    let run = || -> Result {
        match cmd {
            HOTSWAP_FILE_IOC_ATTACH => {
                let fd: u32 = UserSlice::new(UserPtr::from_addr(arg as usize), 4)
                    .reader()
                    .read()?;
                attach(file, fd)
            }
            HOTSWAP_FILE_IOC_INFO => {
                // SAFETY: A file of this device.
                let info = info(unsafe { opener(file) })?;
                UserSlice::new(UserPtr::from_addr(arg as usize), size_of::<FileInfo>())
                    .writer()
                    .write(&info)
            }
            _ => Err(ENOTTY),
        }
    };
    match run() {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// Keeps `/dev/hotswap-file` registered.
pub(crate) struct Registration;

impl Registration {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Called once from module init, after `CACHED.init()`.
        kernel::error::to_result(unsafe { hotswap_file_register() })?;
        Ok(Self)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`. Open files pin the module, so none
        // is left (and no FCM).
        unsafe { hotswap_file_unregister() };
    }
}
