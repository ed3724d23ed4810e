// SPDX-License-Identifier: GPL-2.0
//! The cached-file front end: `/dev/hotswap-file`.
//!
//! A process opens the device and attaches a backing file (passing its
//! descriptor); `read`, `pread`, `write`, `pwrite`, `lseek`, `fsync` and
//! truncation (an ioctl) then go through the File Cache Manager of the
//! backing inode. There is one FCM per inode, shared by every opener
//! (several CPUs hitting one FCM is what makes swapping it worthwhile); it
//! is written back and destroyed when the last opener closes (or, for
//! hotswapfs, whose upper inode holds it from the first open, when that
//! inode is evicted: [`hold`]). New FCMs
//! start on the interface's default implementation (`shared` unless a
//! swap-all changed it).
//!
//! # What may be cached, and through which file
//!
//! Only regular files whose bytes are the same for every opener: the
//! filesystem keeps them in the page cache and does not make them up per
//! open or per reader (no proc, sysfs, cgroupfs, debugfs, tracefs,
//! configfs, FUSE, ...: `hotswap_file_check_backing`). An opener must be
//! able to read the file, and to write it if it opened the device for
//! writing; the checks are those its own `open(2)` of the backing file
//! made. The FCM fills and writes back through a `struct file` of its
//! own, opened with the first attacher's credentials and plain flags (so
//! an opener's `O_APPEND`, `O_DIRECT` or `O_SYNC` does not steer write-back);
//! a writer attaching to an FCM that a reader created hands it a writable
//! one.
//!
//! # Locks and waits
//!
//! The table of cached inodes is locked only to look an inode up, add it
//! or remove it: never across I/O or a wait, so a backing file that stops
//! answering (a frozen or hung filesystem) stalls only the users of that
//! inode. Each inode has its own state; a new opener of an inode whose
//! last opener is still writing it back waits (interruptibly) for that to
//! finish rather than get a second FCM that could read stale bytes.
//!
//! # Errors
//!
//! Writes are checked against the backing file's limits as the VFS checks
//! them (`EFBIG` past `s_maxbytes`; `RLIMIT_FSIZE`: `SIGXFSZ` and `EFBIG`,
//! or a short write). A write-back that fails (at eviction, `fsync` or
//! `close`) is counted by the FCM, and a failure of the backing
//! filesystem to write the pages the FCM gave it is recorded in its page
//! cache (`errseq`); each opener's `fsync` reports each failure of either
//! kind once, whoever else synced first (each opener keeps its own
//! cursors: the FCM's file is shared). Closing a descriptor open for
//! writing writes the inode's dirty pages back and reports what that
//! write-back ran into, without using up its opener's next `fsync`
//! report; the last close writes back what is left.
//!
//! The file operations table is C (`cached_file.c`: the miscdevice
//! abstraction has no `llseek`/`fsync`/`flush`); these are its handlers.

use crate::api::{Call, CallGuard};
use crate::fcm_api::{Fcm, FcmCreate, FcmOps, FcmStats, EVICT_REVALIDATE, SYNC_FILE};
use crate::fcm_memory;
use crate::fcm_uapi::{
    FileInfo, HOTSWAP_FILE_IOC_ATTACH, HOTSWAP_FILE_IOC_INFO, HOTSWAP_FILE_IOC_MEMORY,
    HOTSWAP_FILE_IOC_SET_BUDGET, HOTSWAP_FILE_IOC_TRUNCATE,
};
use crate::hotswapfs_mmap::Maps;
use core::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use kernel::fs::File;
use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::{Acquire, Atomic, Relaxed, Release};
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

extern "C" {
    fn hotswap_file_register() -> c_int;
    fn hotswap_file_unregister();
    fn hotswap_file_check_backing(backing: *mut c_void, file: *mut c_void) -> c_int;
    fn hotswap_file_open_backing(backing: *mut c_void, writable: bool) -> *mut c_void;
    fn hotswap_file_write_limits(backing: *mut c_void, pos: i64, count: *mut usize) -> c_int;
    fn hotswap_file_writable(file: *mut c_void) -> bool;
    fn hotswap_file_wb_err_sample(file: *mut c_void) -> u32;
    fn hotswap_file_wb_err_check(file: *mut c_void, since: *mut u32) -> c_int;
    fn hotswap_file_wb_err_since(file: *mut c_void, since: u32) -> c_int;
    fn hotswap_file_appends(file: *mut c_void) -> bool;
    fn hotswap_file_private(file: *mut c_void) -> *mut c_void;
    fn hotswap_file_set_private(file: *mut c_void, data: *mut c_void);
    fn hotswap_file_seek(file: *mut c_void, offset: i64, whence: c_int, size: i64) -> i64;
    fn hotswap_file_change_stamp(file: *mut c_void, stamp: *mut i64) -> c_int;
    fn hotswap_file_label(
        file: *mut c_void,
        backing: *mut c_void,
        buf: *mut u8,
        len: usize,
    ) -> c_int;
    fn fget(fd: c_uint) -> *mut c_void;
    fn hotswap_fcm_token_new(
        owner: *const c_void,
        have: *const *mut c_void,
        n: usize,
        out: *mut *mut c_void,
    ) -> c_int;
    fn hotswap_fcm_token_free(token: *mut c_void);
    fn hotswap_fcm_current_memcg() -> usize;
}

/// Most memory cgroups an inode's FCM is listed in for their reclaim.
const MAX_CGROUPS: usize = 8;

/// An inode's tokens on the FCM shrinker's list, one per memory cgroup of
/// its openers (`fcm_memory.c`), so each cgroup's reclaim finds its FCM.
struct Cgroups(KVec<*mut c_void>);

// SAFETY: Tokens are plain kernel objects, freed from any thread.
unsafe impl Send for Cgroups {}

impl Cgroups {
    fn clear(&mut self) {
        while let Some(token) = self.0.pop() {
            // SAFETY: Made by `hotswap_fcm_token_new`, freed once.
            unsafe { hotswap_fcm_token_free(token) };
        }
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A slot handle of an FCM.
pub(crate) type FcmObject = crate::api::Object<Fcm>;

/// Pages an FCM may cache (0: no bound); set by the module parameter.
pub(crate) static CAPACITY: Atomic<u64> = Atomic::new(0);

/// Where an inode's FCM is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Serving openers.
    Open,
    /// The last opener left: being written back and destroyed. Newcomers
    /// wait until it is gone.
    Closing,
    /// Destroyed and out of the table.
    Gone,
}

/// The lower inode's change attributes (`hotswap_file_change_stamp`:
/// size, ctime, mtime, change cookie).
type Stamp = [i64; 6];

/// An inode's state, under its own lock.
struct InodeState {
    /// Attached files, holds and pins: the FCM ends when none is left.
    openers: usize,
    /// Attached files alone (of either front end): while there are none,
    /// only someone else can change the file's bytes.
    files: usize,
    /// Whether the FCM writes back through a file open for writing.
    writable: bool,
    /// An opener is handing the FCM a writable file; others wait.
    upgrading: bool,
    life: Life,
}

/// One cached inode.
#[pin_data]
pub(crate) struct CachedInode {
    inode: usize,
    /// The FCM's slot handle; destroyed by [`CachedInode::end`].
    fcm: FcmObject,
    /// The address spaces that map the FCM's pages (hotswapfs's mmap).
    maps: Maps,
    /// A file of the inode, held for the write-limit checks.
    file: ARef<File>,
    /// The uid that made the FCM, for the per-user share of the memory
    /// budget (`fcm_memory.rs`).
    creator: u32,
    /// Serializes `O_APPEND` writes: each finds the end and writes there.
    #[pin]
    append: Mutex<()>,
    #[pin]
    state: Mutex<InodeState>,
    #[pin]
    changed: CondVar,
    #[pin]
    cgroups: Mutex<Cgroups>,
    /// The file's stamp when its last attached file went (`None`: not
    /// taken yet). Held across the first arrival's check, which later
    /// arrivals wait for.
    #[pin]
    stamp: Mutex<Option<Stamp>>,
    /// Whether the FCM was labelled with its file's path.
    labelled: Atomic<bool>,
}

/// An inode's FCM being made by one opener, outside the table lock; other
/// openers of the inode wait for it. Being in the table from the lookup
/// that found nothing, it keeps anyone else from making another, so the
/// one FCM of an inode is made after every earlier one ended and reads the
/// file's size after them.
#[pin_data]
pub(crate) struct Creation {
    #[pin]
    done: Mutex<bool>,
    #[pin]
    changed: CondVar,
}

impl Creation {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                done <- new_mutex!(false),
                changed <- new_condvar!(),
            }),
            GFP_KERNEL,
        )
    }

    /// Waits (interruptibly) until the FCM is made or failed.
    fn wait(&self) -> Result {
        let mut done = self.done.lock();
        while !*done {
            if self.changed.wait_interruptible(&mut done) {
                return Err(ERESTARTSYS);
            }
        }
        Ok(())
    }

    fn finish(&self) {
        *self.done.lock() = true;
        self.changed.notify_all();
    }
}

/// A cached inode, or one whose FCM is being made.
pub(crate) enum TableEntry {
    Creating(usize, Arc<Creation>),
    Ready(Arc<CachedInode>),
}

impl TableEntry {
    fn inode(&self) -> usize {
        match self {
            Self::Creating(inode, _) => *inode,
            Self::Ready(cached) => cached.inode,
        }
    }
}

/// The cached inodes by inode address: an rbtree, since a hotswapfs
/// inode keeps its FCM for as long as it is cached, and opens, `stat`s,
/// syncs and reclaim look inodes up by the thousand. (`RBTree::new` is not
/// `const`: the tree is made at the first insertion.)
pub(crate) struct Table(Option<RBTree<usize, TableEntry>>);

impl Table {
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    fn get(&self, inode: usize) -> Option<&TableEntry> {
        self.0.as_ref()?.get(&inode)
    }

    fn get_mut(&mut self, inode: usize) -> Option<&mut TableEntry> {
        self.0.as_mut()?.get_mut(&inode)
    }

    /// Enters `entry` for an inode that has none (the caller looked).
    fn insert(&mut self, entry: TableEntry) -> Result {
        let tree = self.0.get_or_insert_with(RBTree::new);
        tree.try_create_and_insert(entry.inode(), entry, GFP_KERNEL)?;
        Ok(())
    }

    fn remove(&mut self, inode: usize) -> Option<TableEntry> {
        self.0.as_mut()?.remove(&inode)
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |t| t.iter().count())
    }

    fn entries(&self) -> impl Iterator<Item = &TableEntry> {
        self.0.iter().flat_map(|t| t.values())
    }

    /// The cached inode `owner` names, if it is in the table.
    fn ready(&self, owner: *const c_void) -> Option<&Arc<CachedInode>> {
        match self.get(owner as usize)? {
            TableEntry::Ready(cached) => Some(cached),
            TableEntry::Creating(..) => None,
        }
    }
}

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init before the device exists.
    pub(crate) unsafe(uninit) static CACHED: Mutex<Table> = Table::new();
}

/// A file reference taken by `fget` or an open, put on drop.
pub(crate) struct FileRef(ARef<File>);

impl FileRef {
    /// Takes over the reference `raw` (a `struct file *` or an `ERR_PTR`).
    pub(crate) fn new(raw: *mut c_void) -> Result<Self> {
        if raw.is_null() {
            return Err(EBADF);
        }
        let code = raw as isize;
        if (-4095..0).contains(&code) {
            return Err(Error::from_errno(code as i32));
        }
        // SAFETY: A live file whose reference the caller hands over.
        Ok(Self(unsafe {
            ARef::from_raw(core::ptr::NonNull::new_unchecked(raw.cast()))
        }))
    }

    fn as_ptr(&self) -> *mut c_void {
        self.0.as_ptr().cast()
    }
}

/// Room for an FCM's label (hotswap's `uapi::LABEL_LEN`, which keeps the
/// end of a longer one).
const LABEL_LEN: usize = 256;

/// `Opener::wb_seen` before the opener could read the FCM's count.
const UNSEEN: u64 = u64::MAX;

/// Per open file of the device (and of hotswapfs's regular files).
#[pin_data]
pub(crate) struct Opener {
    /// The attached inode's FCM, set once (under `attach`), then read
    /// without a lock on every call. Borrowed from `inode`.
    attached: Atomic<*const FcmObject>,
    /// The attached inode: a leaked `Arc<CachedInode>` that `release`
    /// takes back.
    inode: Atomic<*const CachedInode>,
    /// The FCM's write-back failures this opener has been told of.
    wb_seen: Atomic<u64>,
    /// This opener's cursor in the lower page cache's write-back errors
    /// (an errseq: the lower filesystem's own failures to write the pages
    /// the FCM wrote back).
    wb_since: Atomic<u32>,
    /// The memory cgroup this opener's last read or write ran in (tasks
    /// move, and descriptors are passed on): a new one gets the FCM listed
    /// for its reclaim, since its pages are charged there.
    memcg_seen: Atomic<usize>,
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
/// `file` is a file of this device (or a hotswapfs file) between `open`
/// and `release`.
pub(crate) unsafe fn opener<'a>(file: *mut c_void) -> &'a Opener {
    // SAFETY: `open` stored a leaked `Pin<KBox<Opener>>` there.
    unsafe { &*hotswap_file_private(file).cast::<Opener>() }
}

impl Opener {
    fn slot(&self) -> Result<&FcmObject> {
        // Ordering: pairs with the release store in `attach`.
        // SAFETY: Set once, borrowed from the `CachedInode` this opener
        // holds until `release`.
        unsafe { self.attached.load(Acquire).as_ref() }.ok_or(ENOTCONN)
    }

    fn cached(&self) -> Result<&CachedInode> {
        // SAFETY: Set once (before `attached`) from a leaked `Arc` that
        // `release` takes back.
        unsafe { self.inode.load(Acquire).as_ref() }.ok_or(ENOTCONN)
    }

    /// The attached inode, listed for the reclaim of the caller's memory
    /// cgroup (which the pages this call brings in are charged to).
    fn cached_here(&self) -> Result<&CachedInode> {
        // SAFETY: FFI call with no requirements.
        let memcg = unsafe { hotswap_fcm_current_memcg() };
        let cached = self.cached()?;
        // Noted once per cgroup and opener; tried again if it failed.
        if self.memcg_seen.load(Relaxed) != memcg && cached.note_cgroup() {
            self.memcg_seen.store(memcg, Relaxed);
        }
        Ok(cached)
    }

    /// Calls `f` on the FCM through the slot.
    pub(crate) fn call<R>(&self, f: impl FnOnce(&FcmOps, *mut c_void, &Call) -> R) -> Result<R> {
        call_fcm(self.slot()?, f)
    }

    pub(crate) fn stats(&self) -> Result<FcmStats> {
        let mut s = FcmStats::default();
        // SAFETY: `s` is writable; the object is live for the call.
        self.call(|ops, obj, call| unsafe { (ops.stats)(obj, call, &mut s) })?;
        Ok(s)
    }

    /// Reports a write-back failure this opener has not been told of yet
    /// (once per failure and opener, like `errseq`); else `result`.
    fn with_write_back_errors(&self, result: Result) -> Result {
        // The lower filesystem's failures first: once per opener (racing
        // threads of one descriptor may both hear of one; none misses it).
        let mut since = self.wb_since.load(Relaxed);
        // SAFETY: The inode's file is live; `since` is writable.
        let lower =
            unsafe { hotswap_file_wb_err_check(self.cached()?.file.as_ptr().cast(), &mut since) };
        self.wb_since.store(since, Relaxed);
        let result = if lower < 0 {
            result.and(Err(Error::from_errno(lower)))
        } else {
            result
        };
        let s = self.stats()?;
        let seen = self.wb_seen.xchg(s.wb_errors, Relaxed);
        if seen == s.wb_errors || seen == UNSEEN {
            return result;
        }
        result.and(Err(Self::errno_of(&s)))
    }

    /// A close's write-back: writes the inode's dirty pages back and
    /// reports what failed meanwhile, without taking from this opener's
    /// `fsync` the failures it has not heard of. A descriptor closed in a
    /// forked child (close-on-exec, a shell's redirection) shares this
    /// opener, and its close must not tell the parent's next `fsync` that
    /// all is well (NFS's `flush` works the same way).
    fn flush(&self) -> Result {
        let file = self.cached()?.file.as_ptr().cast();
        let failed = self.stats()?.wb_errors;
        // SAFETY: The inode's file is live.
        let since = unsafe { hotswap_file_wb_err_sample(file) };
        let ret = self.call(|ops, obj, call| {
            // SAFETY: The object is live for the call.
            unsafe { (ops.sync)(obj, call, 0, i64::MAX, 0) }
        })?;
        let mut result = kernel::error::to_result(ret);
        // SAFETY: The inode's file is live.
        let lower = unsafe { hotswap_file_wb_err_since(file, since) };
        if lower < 0 {
            result = result.and(Err(Error::from_errno(lower)));
        }
        let s = self.stats()?;
        if s.wb_errors != failed {
            result = result.and(Err(Self::errno_of(&s)));
        }
        result
    }

    /// The errno an FCM's count of failed write-backs stands for.
    fn errno_of(s: &FcmStats) -> Error {
        i32::try_from(s.wb_errno)
            .ok()
            .filter(|e| (-4095..0).contains(e))
            .map_or(EIO, Error::from_errno)
    }

    /// Writes the inode's dirty pages back (`SYNC_FILE`: and syncs), then
    /// reports what failed.
    fn sync(&self, start: i64, end: i64, flags: u32) -> Result {
        let ret = self.call(|ops, obj, call| {
            // SAFETY: The object is live for the call.
            unsafe { (ops.sync)(obj, call, start, end, flags) }
        })?;
        self.with_write_back_errors(kernel::error::to_result(ret))
    }
}

/// Calls `f` on the FCM of `slot`, through the slot.
pub(crate) fn call_fcm<R>(
    slot: &FcmObject,
    f: impl FnOnce(&FcmOps, *mut c_void, &Call) -> R,
) -> Result<R> {
    slot.call(f)
}

/// Like [`call_fcm`], but `EAGAIN` rather than waiting for a swap in
/// progress (memory reclaim must not wait).
pub(crate) fn try_call<R>(
    slot: &FcmObject,
    f: impl FnOnce(&FcmOps, *mut c_void, &Call) -> R,
) -> Result<R> {
    let call = slot.try_begin()?;
    Ok(f(call.methods(), call.obj(), call.call()))
}

/// A cached inode kept from ending while held: counted as one more
/// opener. If it is the last when dropped, the last close (write-back,
/// end) runs on hotswap's workqueue, not in whoever held it: memory
/// reclaim holds other files' FCMs, and must not wait on their
/// filesystems or their swaps when it lets go.
pub(crate) struct InUse(Arc<CachedInode>);

impl InUse {
    /// The FCM's slot.
    pub(crate) fn slot(&self) -> &FcmObject {
        &self.0.fcm
    }

    /// After hotswapfs changed the file itself for a caller with no file
    /// attached (times, mode, owner through the lower path; the caller
    /// revalidated first, `revalidate_if_idle`): the stamp takes it.
    pub(crate) fn settled(&self) {
        self.0.settled();
    }

    /// Runs `f`, a change the FCM makes to its file (a sync, a
    /// truncation). With no file attached, a change made behind the FCM
    /// before it is noticed first (the FCM revalidated), and the stamp
    /// then takes the FCM's own change: taking the stamp after `f` alone
    /// would pass someone else's change off as the FCM's. Later arrivals
    /// wait for `f` (it holds the stamp).
    pub(crate) fn changing<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut stamp = self.0.stamp.lock();
        let idle = self.0.state.lock().files == 0;
        if idle {
            self.0.revalidate(&mut stamp);
        }
        let r = f();
        if idle && stamp.is_some() {
            *stamp = self.0.stamp_now();
        }
        r
    }

    /// With no file attached, revalidates the FCM if its file changed
    /// behind it (as the next open would), so that `stat` shows the
    /// file's size rather than the FCM's stale one.
    /// True if it did.
    pub(crate) fn revalidate_if_idle(&self) -> bool {
        let mut stamp = self.0.stamp.lock();
        let idle = self.0.state.lock().files == 0;
        idle && self.0.revalidate(&mut stamp)
    }

    /// The cached inode's mappings handle (live while held).
    pub(crate) fn maps(&self) -> *mut c_void {
        self.0.maps.as_ptr()
    }

    /// The superblock of the cached inode (compared, never followed).
    pub(crate) fn superblock(&self) -> *const c_void {
        // SAFETY: The FCM's own file is live while held, and so are its
        // inode and superblock.
        unsafe { (*(*self.0.file.as_ptr()).f_inode).i_sb }
            .cast_const()
            .cast()
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        {
            let mut state = self.0.state.lock();
            if state.openers > 1 {
                state.openers -= 1;
                return;
            }
        }
        let cached = self.0.clone();
        if crate::deferred::spawn(move || cached.leave_from(true)).is_err() {
            self.0.leave();
        }
    }
}

/// A hold on the FCM `me` is attached to, for as long as the caller keeps
/// it: hotswapfs's upper inode keeps its FCM, and with it the cached
/// pages, past the last close until the inode is evicted, as a page cache
/// outlives its files' descriptors. Dropping the last hold (or opener)
/// ends the FCM on the workqueue, not in the evicting thread: memory
/// reclaim evicts inodes, and an unlink must not wait for a grace period.
pub(crate) fn hold(me: &Opener) -> Result<InUse> {
    let raw = me.inode.load(Acquire);
    if raw.is_null() {
        return Err(ENOTCONN);
    }
    // SAFETY: A leaked `Arc` that `release` takes back, after the caller
    // (holding the file) is done: the count it adds below is the hold's.
    let cached = unsafe { core::mem::ManuallyDrop::new(Arc::from_raw(raw)) };
    let mut state = cached.state.lock();
    // An attached opener is counted in: the FCM cannot be closing.
    if state.life != Life::Open || state.openers == 0 {
        return Err(ENOTCONN);
    }
    state.openers += 1;
    drop(state);
    Ok(InUse((*cached).clone()))
}

/// Waits until every FCM whose last hold or opener went before the call
/// has ended (hotswapfs's unmount, after its inodes were evicted, so that
/// the lower filesystem is no longer busy when it returns).
pub(crate) fn wait_for_ends() {
    crate::deferred::flush();
}

/// The cached inode `owner` names ([`CachedInode::owner`]), held, if it
/// has openers.
pub(crate) fn pin(owner: *const c_void) -> Option<InUse> {
    let table = CACHED.lock();
    let cached = table.ready(owner)?;
    let mut state = cached.state.lock();
    if state.life != Life::Open || state.openers == 0 {
        return None;
    }
    state.openers += 1;
    Some(InUse(cached.clone()))
}

/// The FCM of `inode` (a `struct inode *`, compared, never followed),
/// held, if it has one. Waits (interruptibly) for one being made or
/// ending, so that the caller sees either the FCM or an inode it wrote
/// everything back to.
pub(crate) fn pin_inode(inode: usize) -> Result<Option<InUse>> {
    loop {
        let found = CACHED.lock().get(inode).map(|e| match e {
            TableEntry::Ready(cached) => Ok(cached.clone()),
            TableEntry::Creating(_, creation) => Err(creation.clone()),
        });
        match found {
            None => return Ok(None),
            Some(Err(creation)) => creation.wait()?,
            Some(Ok(cached)) => {
                let mut state = cached.state.lock();
                // Open with no opener yet: its maker is about to join.
                if state.life == Life::Open {
                    state.openers += 1;
                    drop(state);
                    return Ok(Some(InUse(cached)));
                }
                while state.life != Life::Gone {
                    if cached.changed.wait_interruptible(&mut state) {
                        return Err(ERESTARTSYS);
                    }
                }
            }
        }
    }
}

/// The cached inodes now, as owners for [`pin`].
pub(crate) fn owners() -> Result<KVec<*const c_void>> {
    let table = CACHED.lock();
    let mut out = KVec::with_capacity(table.len(), GFP_KERNEL)?;
    for entry in table.entries() {
        if let TableEntry::Ready(cached) = entry {
            // Capacity is the table's length.
            let _ = out.push_within_capacity(cached.owner());
        }
    }
    Ok(out)
}

/// For memory reclaim: sums `f` over the slots of every cached inode with
/// openers (of those `owners` names, if given: [`CachedInode::owner`]s,
/// each once), waiting for no lock (an inode whose state is busy is
/// passed over; `None` if the table is). The inode's state lock is held
/// across `f`, so its FCM cannot end meanwhile.
pub(crate) fn try_for_each_open(
    owners: Option<&[*const c_void]>,
    mut f: impl FnMut(&CachedInode) -> u64,
) -> Option<u64> {
    let table = CACHED.try_lock()?;
    let mut total = 0;
    let mut visit = |cached: &CachedInode| {
        let Some(state) = cached.state.try_lock() else {
            return;
        };
        if state.life == Life::Open && state.openers > 0 {
            total += f(cached);
        }
    };
    match owners {
        Some(owners) => owners
            .iter()
            .filter_map(|&owner| table.ready(owner))
            .for_each(|cached| visit(cached)),
        None => table.entries().for_each(|entry| {
            if let TableEntry::Ready(cached) = entry {
                visit(cached);
            }
        }),
    }
    Some(total)
}

/// Bytes a read or write moves per call into the FCM: room is made in the
/// memory budget for this much at a time, and a huge request is not one
/// huge demand for pages.
const SEGMENT: usize = 64 * crate::fcm_api::PAGE_SIZE;

/// Runs `f(pos, offset, len)` over `[pos, pos + len)` a segment at a time
/// (`offset` into the caller's buffer), making room in the memory budget
/// before each and trying again when the FCM could not get a page
/// (`fcm_memory`). Goes on while segments move bytes, so a count short
/// for lack of memory continues where it stopped; stops at 0 bytes, an
/// error or a fatal signal. Returns the bytes moved, or the error if none.
fn in_segments(
    cached: &CachedInode,
    pos: i64,
    len: usize,
    mut f: impl FnMut(i64, usize, usize) -> Result<isize>,
) -> Result<isize> {
    let mut done = 0usize;
    while done < len {
        let n = (len - done).min(SEGMENT);
        let at = pos.saturating_add(done as i64);
        fcm_memory::make_room(cached, fcm_memory::pages_of(at, n));
        let mut attempt = 0;
        let moved = loop {
            match f(at, done, n) {
                Err(e) if e == ENOMEM && fcm_memory::retry(cached, attempt) => attempt += 1,
                other => break other,
            }
        };
        match moved {
            Ok(0) => break,
            Ok(m) => done += m as usize,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        if fcm_memory::fatal_signal_pending() {
            break;
        }
    }
    Ok(done as isize)
}

/// Checks a byte count an FCM returned for a request of `len` bytes,
/// still inside the `call` that returned it, so that a swap since cannot
/// make another implementation take the blame.
fn checked_count(fcm: &CallGuard<'_, Fcm>, ret: isize, len: usize) -> Result<isize> {
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    if ret as usize > len {
        pr_warn!(
            "fcm returned {} bytes for a {}-byte request; refused\n",
            ret,
            len
        );
        fcm.misbehaved(c"returned more bytes than asked for");
        return Err(EIO);
    }
    Ok(ret)
}

impl CachedInode {
    /// The FCM's slot.
    pub(crate) fn slot(&self) -> &FcmObject {
        &self.fcm
    }

    /// What names this inode to reclaim and sync: its inode's address,
    /// the table's key (compared, never followed). An FCM made for the
    /// inode after this one ended has the same name: reclaim or a sync
    /// that finds it acts on the same file's cache.
    pub(crate) fn owner(&self) -> *const c_void {
        self.inode as *const c_void
    }

    /// The uid that made the FCM.
    pub(crate) fn creator(&self) -> u32 {
        self.creator
    }

    /// A new FCM for the inode of `backing`, through a file of its own.
    fn create(inode: usize, backing: &FileRef, writable: bool) -> Result<Arc<Self>> {
        // SAFETY: `backing` is live.
        let own = FileRef::new(unsafe { hotswap_file_open_backing(backing.as_ptr(), writable) })?;
        // The front end's own file only reads: one held for writing would
        // keep the lower inode from being executed (ETXTBSY) or leased for
        // as long as the FCM lives, which a hotswapfs inode makes long.
        let file = if writable {
            // SAFETY: `backing` is live.
            FileRef::new(unsafe { hotswap_file_open_backing(backing.as_ptr(), false) })?.0
        } else {
            own.0.clone()
        };
        let args = FcmCreate {
            file: own.as_ptr(),
            capacity: CAPACITY.load(Acquire),
        };
        // The interface's default, else its known-good `shared`; the
        // decision policy, if one is picked, interposes its monitor.
        // SAFETY: `args` is a valid `FcmCreate`, live for the call.
        let fcm = unsafe { FcmObject::create(None, core::ptr::from_ref(&args).cast()) }?;
        let maps = Maps::new()?;
        Arc::pin_init(
            pin_init!(Self {
                inode,
                fcm,
                maps,
                file,
                creator: fcm_memory::current_uid(),
                append <- new_mutex!(()),
                state <- new_mutex!(InodeState {
                    openers: 0,
                    files: 0,
                    writable,
                    upgrading: false,
                    life: Life::Open,
                }),
                changed <- new_condvar!(),
                cgroups <- new_mutex!(Cgroups(KVec::new())),
                stamp <- new_mutex!(None),
                labelled: Atomic::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// Counts a new opener in, handing the FCM a writable file first if
    /// the opener writes and the FCM's file cannot. `Ok(false)` if the
    /// FCM was closing: it is gone now, and the caller looks again.
    fn join(self: &Arc<Self>, backing: &FileRef, writes: bool) -> Result<bool> {
        let mut state = self.state.lock();
        loop {
            if state.life != Life::Open {
                while state.life != Life::Gone {
                    if self.changed.wait_interruptible(&mut state) {
                        return Err(ERESTARTSYS);
                    }
                }
                return Ok(false);
            }
            if !writes || state.writable {
                state.openers += 1;
                return Ok(true);
            }
            if state.upgrading {
                if self.changed.wait_interruptible(&mut state) {
                    return Err(ERESTARTSYS);
                }
                continue;
            }
            // The FCM writes back through the first opener's file, which
            // cannot write: hand it one that can, or a reader would lock
            // every writer out. Not under the lock: the call may wait for
            // a swap. Counted in meanwhile, so that the last other opener
            // leaving does not end the FCM under the call.
            state.openers += 1;
            state.upgrading = true;
            drop(state);
            let handed = self.hand_writable_file(backing);
            state = self.state.lock();
            state.upgrading = false;
            if handed.is_ok() {
                state.writable = true;
            }
            self.changed.notify_all();
            drop(state);
            return match handed {
                Ok(()) => Ok(true),
                Err(err) => {
                    self.leave();
                    Err(err)
                }
            };
        }
    }

    /// Lists the FCM for the reclaim of the caller's memory cgroup, unless
    /// it is listed there already; with `MAX_CGROUPS` listed, the oldest
    /// goes (its cgroup the likeliest to be gone). False if the token
    /// could not be had.
    fn note_cgroup(&self) -> bool {
        let mut cgroups = self.cgroups.lock();
        let mut token = core::ptr::null_mut();
        // SAFETY: `cgroups.0` holds live tokens of this inode; `token` is
        // writable.
        let ret = unsafe {
            hotswap_fcm_token_new(
                self.owner(),
                cgroups.0.as_ptr(),
                cgroups.0.len(),
                &mut token,
            )
        };
        if ret != 0 {
            return false;
        }
        if token.is_null() {
            return true;
        }
        if cgroups.0.len() >= MAX_CGROUPS {
            if let Ok(oldest) = cgroups.0.remove(0) {
                // SAFETY: A token of this inode, now out of the list.
                unsafe { hotswap_fcm_token_free(oldest) };
            }
        }
        if cgroups.0.push(token, GFP_KERNEL).is_err() {
            // SAFETY: Just made, freed once.
            unsafe { hotswap_fcm_token_free(token) };
            return false;
        }
        true
    }

    fn hand_writable_file(&self, backing: &FileRef) -> Result {
        // SAFETY: `backing` is live (checked writable by the caller).
        let own = FileRef::new(unsafe { hotswap_file_open_backing(backing.as_ptr(), true) })?;
        let ret = call_fcm(&self.fcm, |ops, obj, call| {
            // SAFETY: `own` is live until it is dropped below; the FCM
            // takes its own reference.
            unsafe { (ops.set_file)(obj, call, own.as_ptr()) }
        })?;
        kernel::error::to_result(ret)
    }

    /// Labels the FCM with the path `file` (or `backing`, for the device)
    /// was opened by, for `hswapctl status`.
    fn label(&self, file: *mut c_void, backing: &FileRef) {
        let mut path = [0u8; LABEL_LEN];
        // SAFETY: Both files are live; `path` has room for `len` bytes.
        let ret =
            unsafe { hotswap_file_label(file, backing.as_ptr(), path.as_mut_ptr(), path.len()) };
        if ret == 0 {
            if let Ok(text) = CStr::from_bytes_until_nul(&path) {
                self.fcm.set_label(text);
            }
        }
    }

    /// The file's change attributes now (`None` if they cannot be read).
    fn stamp_now(&self) -> Option<Stamp> {
        let mut stamp = Stamp::default();
        // SAFETY: The inode's file is live; `stamp` has the room the C
        // side fills.
        let ret =
            unsafe { hotswap_file_change_stamp(self.file.as_ptr().cast(), stamp.as_mut_ptr()) };
        (ret == 0).then_some(stamp)
    }

    /// A file attaches (joined already). The first one since none was
    /// attached checks whether the file changed behind the FCM since the
    /// last one went (coherence: the lower tree is not to be changed
    /// behind a mount, but it is noticed): if so, the FCM drops its clean
    /// pages and takes the file's size again. Later arrivals wait for
    /// that check. True if the FCM was revalidated.
    fn arrive(&self) -> bool {
        let first = {
            let mut state = self.state.lock();
            state.files += 1;
            state.files == 1
        };
        let mut stamp = self.stamp.lock();
        first && self.revalidate(&mut stamp)
    }

    /// Revalidates the FCM if the file's stamp moved from `stamp` (then
    /// the one now); true if it did.
    fn revalidate(&self, stamp: &mut Option<Stamp>) -> bool {
        if stamp.is_none() {
            return false;
        }
        let now = self.stamp_now();
        if now == *stamp {
            return false;
        }
        // A stamp our own write-back moved (a failed flush written by a
        // later sync) only costs the clean pages being read again.
        // SAFETY: The object is live for the call.
        let dropped = call_fcm(&self.fcm, |ops, obj, call| unsafe {
            (ops.evict)(obj, call, u64::MAX, EVICT_REVALIDATE)
        });
        if !matches!(dropped, Ok(n) if n >= 0) {
            // The stamp stays: the next look tries again.
            pr_warn!(
                "revalidating the FCM of a file changed behind it failed: {:?}\n",
                dropped
            );
            return false;
        }
        *stamp = now;
        true
    }

    /// A file detaches: the last one takes the stamp the next arrival
    /// compares with (after its close wrote the file back).
    fn depart(&self) {
        let last = {
            let mut state = self.state.lock();
            state.files -= 1;
            state.files == 0
        };
        if last {
            *self.stamp.lock() = self.stamp_now();
            self.give_up_write_access();
        }
    }

    /// With no file attached nothing writes through the FCM, so an FCM
    /// kept past its last file (a hotswapfs inode's hold) gives its
    /// writable file back for a read-only one: a file open for writing
    /// keeps the lower inode from being executed (ETXTBSY) or read-leased.
    /// The next writer hands it a writable one again (`join`). Kept if
    /// dirty pages are left (a failed write-back, to be tried again).
    fn give_up_write_access(&self) {
        {
            let mut state = self.state.lock();
            // `openers` 1: the departing file's own count, about to go.
            if state.files != 0 || !state.writable || state.upgrading || state.openers <= 1 {
                return;
            }
            // Writers joining meanwhile wait, then hand a writable file.
            state.upgrading = true;
            state.writable = false;
        }
        let mut stats = FcmStats::default();
        // SAFETY: `stats` is writable; the object is live for the call.
        let clean = call_fcm(&self.fcm, |ops, obj, call| unsafe {
            (ops.stats)(obj, call, &mut stats)
        })
        .is_ok()
            && stats.dirty == 0;
        let handed = if clean {
            // SAFETY: The inode's (read-only) file is live.
            FileRef::new(unsafe { hotswap_file_open_backing(self.file.as_ptr().cast(), false) })
                .and_then(|own| {
                    // SAFETY: `own` is live for the call; the FCM takes its
                    // own reference.
                    let ret = call_fcm(&self.fcm, |ops, obj, call| unsafe {
                        (ops.set_file)(obj, call, own.as_ptr())
                    })?;
                    kernel::error::to_result(ret)
                })
        } else {
            Err(EBUSY)
        };
        let mut state = self.state.lock();
        state.upgrading = false;
        if handed.is_err() {
            state.writable = true;
        }
        self.changed.notify_all();
    }

    /// The FCM changed the file while no file was attached (a sync, a
    /// truncation, times set): the stamp moves with it, so that the next
    /// arrival does not take the FCM's own change for someone else's.
    fn settled(&self) {
        let mut stamp = self.stamp.lock();
        if self.state.lock().files == 0 && stamp.is_some() {
            *stamp = self.stamp_now();
        }
    }

    /// Counts an opener out; the last one writes the FCM back and ends it.
    fn leave(self: &Arc<Self>) {
        self.leave_from(false);
    }

    /// [`Self::leave`]; `in_worker`: called on the module's workqueue,
    /// where what the write-back could not write is tried once more by
    /// the end itself rather than by another worker (so that waiting for
    /// the queue, as an unmount does, waits for the end too).
    fn leave_from(self: &Arc<Self>, in_worker: bool) {
        {
            let mut state = self.state.lock();
            state.openers -= 1;
            if state.openers != 0 {
                return;
            }
            state.life = Life::Closing;
        }
        // No lock held: the write-back may take as long as the backing
        // filesystem takes. What it cannot write here (a fatal signal
        // interrupts the closer's writes; a transient error) a worker tries
        // once more, in a kernel thread, before the FCM ends with it.
        let written = call_fcm(&self.fcm, |ops, obj, call| {
            // SAFETY: The object is live for the call.
            unsafe { (ops.sync)(obj, call, 0, i64::MAX, 0) }
        });
        if !in_worker && !matches!(written, Ok(0)) {
            let cached = self.clone();
            if crate::deferred::spawn(move || cached.end()).is_ok() {
                return;
            }
        }
        self.end();
    }

    /// Destroys the FCM (writing back what is left) and lets waiting
    /// openers of the inode make a new one.
    fn end(self: &Arc<Self>) {
        self.cgroups.lock().clear();
        // SAFETY: The last opener left (`Life::Closing`, so nothing pins
        // the inode again, and reclaim calls only under an `Open` state
        // lock): no call runs on the FCM, and none starts.
        unsafe { self.fcm.destroy() };
        remove(self);
        self.state.lock().life = Life::Gone;
        self.changed.notify_all();
    }
}

fn remove(cached: &Arc<CachedInode>) {
    let mut table = CACHED.lock();
    if matches!(table.get(cached.inode), Some(TableEntry::Ready(c)) if Arc::ptr_eq(c, cached)) {
        drop(table.remove(cached.inode));
    }
}

/// Turns the table's `Creating` entry of `creation` into `made`'s (or
/// drops it if the FCM could not be made), then lets waiters look again.
fn created(inode: usize, creation: &Arc<Creation>, made: &Result<Arc<CachedInode>>) {
    {
        let mut table = CACHED.lock();
        let mine = matches!(table.get(inode), Some(TableEntry::Creating(_, c)) if Arc::ptr_eq(c, creation));
        if mine {
            match made {
                Ok(cached) => {
                    if let Some(entry) = table.get_mut(inode) {
                        *entry = TableEntry::Ready(cached.clone());
                    }
                }
                Err(_) => drop(table.remove(inode)),
            }
        }
    }
    creation.finish();
}

/// The inode's entry, with the caller counted in as an opener: the one in
/// the table, or a new one.
fn join_or_create(inode: usize, backing: &FileRef, writes: bool) -> Result<Arc<CachedInode>> {
    // SAFETY: `backing` is live.
    let writable = unsafe { hotswap_file_writable(backing.as_ptr()) };
    loop {
        let mut table = CACHED.lock();
        let found = table.get(inode).map(|e| match e {
            TableEntry::Ready(cached) => Ok(cached.clone()),
            TableEntry::Creating(_, creation) => Err(creation.clone()),
        });
        let cached = match found {
            Some(Ok(cached)) => {
                drop(table);
                cached
            }
            Some(Err(creation)) => {
                drop(table);
                creation.wait()?;
                continue;
            }
            None => {
                let creation = Creation::new()?;
                table.insert(TableEntry::Creating(inode, creation.clone()))?;
                drop(table);
                // Made outside the table lock: it opens a file, allocates
                // and may interpose.
                let made = CachedInode::create(inode, backing, writable);
                created(inode, &creation, &made);
                made?
            }
        };
        if cached.join(backing, writes)? {
            return Ok(cached);
        }
    }
}

fn attach(file: *mut c_void, fd: u32) -> Result {
    // Attached already: EBUSY, whatever the descriptor (checked again
    // under the lock).
    // SAFETY: Called from this device's ioctl.
    if unsafe { opener(file) }.slot().is_ok() {
        return Err(EBUSY);
    }
    // SAFETY: FFI; a reference is taken if the descriptor is valid.
    attach_backing(file, FileRef::new(unsafe { fget(fd) })?).map(|_| ())
}

/// Attaches the opener of `file` (this device's, or a hotswapfs file's)
/// to the FCM of `backing`'s inode. True if the FCM was revalidated
/// (`CachedInode::arrive`): its size may have shrunk.
pub(crate) fn attach_backing(file: *mut c_void, backing: FileRef) -> Result<bool> {
    // SAFETY: Called from this device's ioctl or a hotswapfs open.
    let me = unsafe { opener(file) };
    let _serial = me.attach.lock();
    if me.slot().is_ok() {
        return Err(EBUSY);
    }
    // SAFETY: Both files are live.
    kernel::error::to_result(unsafe { hotswap_file_check_backing(backing.as_ptr(), file) })?;
    // SAFETY: A live file.
    let writes = unsafe { hotswap_file_writable(file) };
    // SAFETY: A live file has an inode.
    let inode = unsafe { (*backing.0.as_ptr()).f_inode } as usize;
    let cached = join_or_create(inode, &backing, writes)?;
    let revalidated = cached.arrive();
    if !cached.labelled.xchg(true, Relaxed) {
        cached.label(file, &backing);
    }
    let slot: *const FcmObject = &cached.fcm;
    me.inode.store(Arc::into_raw(cached), Release);
    // Earlier write-back failures are not this opener's to hear of (if the
    // count cannot be read now, the first count it reads is the baseline).
    let seen = me.stats().map_or(UNSEEN, |s| s.wb_errors);
    me.wb_seen.store(seen, Relaxed);
    // SAFETY: The inode's file is live.
    let since = unsafe { hotswap_file_wb_err_sample(me.cached()?.file.as_ptr().cast()) };
    me.wb_since.store(since, Relaxed);
    // Ordering: publishes the slot to the lock-free readers in `slot()`.
    me.attached.store(slot, Release);
    Ok(revalidated)
}

fn detach(me: &Opener) {
    let cached = me.inode.load(Acquire);
    if cached.is_null() {
        return;
    }
    // SAFETY: The leaked `Arc` from `attach`, taken back once.
    let cached = unsafe { Arc::from_raw(cached) };
    cached.depart();
    cached.leave();
}

fn info(me: &Opener) -> Result<FileInfo> {
    let id = me.slot()?.id();
    let s = me.stats()?;
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
        wb_errors: s.wb_errors,
        wb_errno: s.wb_errno,
    })
}

// SAFETY: `FileInfo` is `#[repr(C)]` integers with explicit padding.
unsafe impl kernel::transmute::AsBytes for FileInfo {}

/// A write through the FCM: checked against the backing file's limits,
/// at the end of the file if `append` (the device's `O_APPEND`; hotswapfs
/// finds the end itself, under its inode lock); `buf` is a user address
/// if `user`, else a kernel one.
pub(crate) fn write(
    file: *mut c_void,
    me: &Opener,
    buf: usize,
    len: usize,
    at: &mut i64,
    user: bool,
    append: bool,
) -> Result<isize> {
    // SAFETY: A live file.
    if !unsafe { hotswap_file_writable(file) } {
        return Err(EBADF);
    }
    let cached = me.cached()?;
    let _appending = if append {
        let guard = cached.append.lock();
        // SAFETY: The object is live for the call.
        *at = me.call(|ops, obj, call| unsafe { (ops.size)(obj, call) })?;
        Some(guard)
    } else {
        None
    };
    let mut count = len;
    // SAFETY: The inode's file is live; `count` is a valid in/out count.
    kernel::error::to_result(unsafe {
        hotswap_file_write_limits(cached.file.as_ptr().cast(), *at, &mut count)
    })?;
    let n = in_segments(me.cached_here()?, *at, count, |pos, offset, len| {
        let call = me.slot()?.begin()?;
        let ops = call.methods();
        // SAFETY: The FCM copies from the user buffer, checking it (the
        // caller vouches for a kernel one).
        let n =
            unsafe { (ops.write)(call.obj(), call.call(), pos, buf + offset, len, user.into()) };
        checked_count(&call, n, len)
    })?;
    *at += n as i64;
    Ok(n)
}

/// `open`: a fresh opener with nothing attached.
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_open(_inode: *mut c_void, file: *mut c_void) -> c_int {
    let made = KBox::pin_init(
        pin_init!(Opener {
            attached: Atomic::new(core::ptr::null()),
            inode: Atomic::new(core::ptr::null()),
            wb_seen: Atomic::new(0),
            wb_since: Atomic::new(0),
            memcg_seen: Atomic::new(0),
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

/// `flush` (each `close(2)`): a descriptor open for writing writes the
/// inode's dirty pages back and reports the failures of that write-back
/// (`Opener::flush`: the opener's next `fsync` still hears of them).
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with that hook's arguments.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_flush(file: *mut c_void, _id: *mut c_void) -> c_int {
    // SAFETY: A file of this device.
    let me = unsafe { opener(file) };
    // SAFETY: A live file.
    if me.slot().is_err() || !unsafe { hotswap_file_writable(file) } {
        return 0;
    }
    match me.flush() {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
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
    errno(read(me, buf as usize, len, at, true))
}

/// A read through the FCM into `buf`, a user address if `user`, else a
/// kernel one.
pub(crate) fn read(me: &Opener, buf: usize, len: usize, at: &mut i64, user: bool) -> Result<isize> {
    let n = in_segments(me.cached_here()?, *at, len, |pos, offset, len| {
        let call = me.slot()?.begin()?;
        let ops = call.methods();
        // SAFETY: The FCM copies to the user buffer, checking it (the
        // caller vouches for a kernel one).
        let n = unsafe { (ops.read)(call.obj(), call.call(), pos, buf + offset, len, user.into()) };
        checked_count(&call, n, len)
    })?;
    *at += n as i64;
    Ok(n)
}

/// Page `index` of the FCM, lent to a fault that maps it
/// ([`FcmOps::page`]), after making room for it in the memory budget.
pub(crate) fn lend_page(me: &Opener, index: u64) -> Result<*mut c_void> {
    let cached = me.cached_here()?;
    fcm_memory::make_room(cached, 1);
    let mut attempt = 0;
    loop {
        let call = me.slot()?.begin()?;
        let mut page = core::ptr::null_mut();
        // SAFETY: The object is live for the call; `page` is writable and
        // the handle lives as long as `cached`.
        let ret = unsafe {
            (call.methods().page)(
                call.obj(),
                call.call(),
                index,
                cached.maps.as_ptr(),
                &mut page,
            )
        };
        match kernel::error::to_result(ret) {
            Ok(()) if page.is_null() => {
                call.misbehaved(c"lent no page");
                return Err(EIO);
            }
            Ok(()) => return Ok(page),
            Err(e) if e == ENOMEM && fcm_memory::retry(cached, attempt) => attempt += 1,
            Err(e) => return Err(e),
        }
    }
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
    // SAFETY: A live file.
    let append = unsafe { hotswap_file_appends(file) };
    errno(write(file, me, buf as usize, len, at, true, append))
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

/// `fsync`: writes dirty pages in the range back and syncs the file, then
/// reports any write-back failure this opener was not told of.
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
    match me.sync(start, end, SYNC_FILE) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)`: writes the file's dirty pages
/// back and drops its cached pages.
///
/// # Safety
///
/// Called by the VFS through `cached_file.c` with a file of this device.
#[no_mangle]
pub(crate) unsafe extern "C" fn hotswap_file_drop_cache(file: *mut c_void) -> c_int {
    // SAFETY: A file of this device.
    let me = unsafe { opener(file) };
    // SAFETY: The object is live for the call.
    match me.call(|ops, obj, call| unsafe { (ops.evict)(obj, call, 0, 0) }) {
        Ok(ret) if ret < 0 => ret as c_int,
        Ok(_) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The truncate ioctl: the device must be open for writing.
fn truncate(file: *mut c_void, me: &Opener, size: u64) -> Result {
    // SAFETY: A live file.
    if !unsafe { hotswap_file_writable(file) } {
        return Err(EBADF);
    }
    let size = i64::try_from(size).map_err(|_| EINVAL)?;
    // SAFETY: The object is live for the call.
    let ret = me.call(|ops, obj, call| unsafe { (ops.truncate)(obj, call, size) })?;
    kernel::error::to_result(ret)
}

/// `ioctl`: attach a backing file, report on it, or truncate it.
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
    let user = |len| UserSlice::new(UserPtr::from_addr(arg as usize), len);
    let run = || -> Result {
        match cmd {
            HOTSWAP_FILE_IOC_ATTACH => attach(file, user(4).reader().read()?),
            HOTSWAP_FILE_IOC_INFO => {
                // SAFETY: A file of this device.
                let info = info(unsafe { opener(file) })?;
                user(size_of::<FileInfo>()).writer().write(&info)
            }
            HOTSWAP_FILE_IOC_TRUNCATE => {
                let size: u64 = user(8).reader().read()?;
                // SAFETY: A file of this device.
                truncate(file, unsafe { opener(file) }, size)
            }
            HOTSWAP_FILE_IOC_MEMORY => crate::memory_report::report(arg as usize),
            HOTSWAP_FILE_IOC_SET_BUDGET => crate::memory_report::set_budget(arg as usize),
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
