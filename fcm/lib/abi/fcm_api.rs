// SPDX-License-Identifier: GPL-2.0
//! The File Cache Manager interface (`fcm`), shared by `hotswap_fcm.ko`
//! (which registers the interface and runs the front end) and every FCM
//! module: [`Fcm`] names it to hotswap's typed handles.
//!
//! An FCM caches the pages of one real backing file. Its method table is
//! [`FcmOps`]; every method takes the object and the [`Call`] it came
//! through. Implementations write a type implementing [`FcmImpl`] and get
//! its registration table, method table and C-ABI shims from
//! [`impl_ops`], so the unsafe glue lives here once.
//!
//! # State formats
//!
//! * [`FORMAT_PAGEMAP`]: the direct hand-over. Both FCMs keep their pages
//!   in the same `#[repr(C)]` `PageMap` (a kernel XArray of `Entry`s,
//!   `fcm_pages.rs`), so the old FCM hands its whole map to the new one by
//!   pointer: O(1), whatever the file's size. Preferred by both.
//! * [`FORMAT_DESCRIPTORS`]: the canonical form, a [`DescriptorState`] with
//!   an array of [`PageDescriptor`]s (index, page, dirty, referenced).
//!   Pages *move*: export detaches them from the old FCM (which is
//!   quiescent during Transfer), import adopts them, so no page is copied
//!   or read again from the backing file. `release(taken = 0)` re-attaches
//!   them to the old FCM when the swap aborts.
//!
//! Page accounting: `allocated` counts pages an FCM lineage allocated,
//! `freed` pages it freed; the counters travel with the state, so
//! `allocated == freed + cached` holds across swaps.

use crate::api::{Call, ImplOps, ImplTable, KIND_OBJECT, MAX_FORMATS};
use core::ffi::{c_int, c_void};
use kernel::prelude::*;

/// The `fcm` interface, as [`crate::api::Object`] and the registrations
/// see it.
pub struct Fcm;

impl crate::api::Interface for Fcm {
    const NAME: &'static CStr = c"fcm";
    /// Bump on any change to [`FcmOps`] or the structs its methods take
    /// (the page map's `Entry` and the page descriptors included: they
    /// cross modules in a state transfer). 2: `EVICT_REVALIDATE`, and
    /// each page's dirty byte range in `Entry` and `PageDescriptor`. 3:
    /// `page` (mmap) and `FcmStats::lock_waits`.
    const METHODS_VERSION: u32 = 3;
    /// `shared`: the simplest FCM, and the one every other falls back to.
    const KNOWN_GOOD: Option<&'static CStr> = Some(c"shared");
    type Methods = FcmOps;
}

/// Size of a cached page.
pub const PAGE_SIZE: usize = 4096;

/// State format: the page map itself (see the module docs).
pub const FORMAT_PAGEMAP: u32 = 1;
/// State format: page descriptors (see the module docs).
pub const FORMAT_DESCRIPTORS: u32 = 2;

/// [`FcmOps::sync`] flag: after writing dirty pages back, sync the backing
/// file to its storage (`fsync`); without it, only write back (`close`).
pub const SYNC_FILE: u32 = 1;

/// [`FcmOps::evict`] flag: memory reclaim. Only clean pages go (none is
/// written back), no lock is waited for (`EAGAIN` if one is held), and
/// nothing is allocated: the shrinker calls it, possibly from inside an
/// allocation that holds this very FCM's lock.
pub const EVICT_RECLAIM: u32 = 1;

/// [`FcmOps::evict`] flag: the backing file was changed by someone else
/// (the front end saw its change attributes move while no file of it was
/// open through the FCM). Every clean page goes, none is written back,
/// whatever `keep` says; dirty pages stay (they are the FCM's writers'
/// bytes); with none left, the size is the file's again. Returns the
/// pages dropped.
pub const EVICT_REVALIDATE: u32 = 2;

/// Creation argument of an FCM (`arg` of `create`; NULL for a
/// replacement, whose state arrives by import).
#[repr(C)]
pub struct FcmCreate {
    /// The backing file (`struct file *`); the FCM takes its own reference.
    pub file: *mut c_void,
    /// Most pages to keep cached; 0 means no bound.
    pub capacity: u64,
}

/// Counters an FCM reports.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct FcmStats {
    /// Reads and writes that found their page cached.
    pub hits: u64,
    /// Reads and writes that had to bring a page in.
    pub misses: u64,
    /// Pages read from the backing file.
    pub fills: u64,
    /// Dirty pages written to the backing file.
    pub writebacks: u64,
    /// Pages evicted to respect the capacity.
    pub evictions: u64,
    /// Pages cached now.
    pub cached: u64,
    /// Dirty pages now.
    pub dirty: u64,
    /// Pages allocated, ever (carried across swaps).
    pub allocated: u64,
    /// Pages freed, ever (carried across swaps).
    pub freed: u64,
    /// Size of the file as the cache sees it.
    pub size: i64,
    /// Capacity bound in pages (0: none).
    pub capacity: u64,
    /// Write-backs that failed, ever (carried across swaps). The front end
    /// reports each new one once to every opener, at its next `fsync` or
    /// `close`, as the VFS's `errseq` does.
    pub wb_errors: u64,
    /// The errno of the latest failed write-back (negative; 0: none).
    pub wb_errno: i64,
    /// Times a call found one of the FCM's locks held and waited for it
    /// (carried across swaps): contention, counted by the FCM itself.
    pub lock_waits: u64,
}

/// The `fcm` method table. `buf` is a user address when `user` is 1, a
/// kernel address otherwise; positions are bytes.
#[repr(C)]
pub struct FcmOps {
    /// Reads up to `len` bytes at `pos`; returns the count (0 at EOF) or a
    /// negative errno.
    pub read: unsafe extern "C" fn(*mut c_void, *const Call, i64, usize, usize, u32) -> isize,
    /// Writes `len` bytes at `pos` into the cache (marking pages dirty and
    /// growing the file); returns the count or a negative errno.
    pub write: unsafe extern "C" fn(*mut c_void, *const Call, i64, usize, usize, u32) -> isize,
    /// Writes dirty pages in `[start, end]` back, every one it can, and
    /// with [`SYNC_FILE`] in `flags` syncs the file; 0 or the first error.
    pub sync: unsafe extern "C" fn(*mut c_void, *const Call, i64, i64, u32) -> c_int,
    /// The file size.
    pub size: unsafe extern "C" fn(*mut c_void, *const Call) -> i64,
    /// Sets the file's size (the backing file's first, so a refusal changes
    /// nothing): cached pages past it go, dirty or not, and the rest of the
    /// last page reads as zeros. 0 or a negative errno.
    pub truncate: unsafe extern "C" fn(*mut c_void, *const Call, i64) -> c_int,
    /// Evicts until at most `keep` pages are cached (dirty ones written
    /// back first; with [`EVICT_RECLAIM`], clean ones only, in the FCM's
    /// eviction order); returns pages evicted or a negative errno.
    pub evict: unsafe extern "C" fn(*mut c_void, *const Call, u64, u32) -> i64,
    /// Fills `*out` with the counters.
    pub stats: unsafe extern "C" fn(*mut c_void, *const Call, *mut FcmStats),
    /// Writes back through `file` from now on: a `struct file *` of the
    /// same inode, opened for writing, live for the call (the FCM takes
    /// its own reference and drops the old one). The front end calls it
    /// when a writer attaches to an FCM whose file only reads, and, with
    /// a read-only file, when the last file went and no page is dirty (an
    /// FCM kept idle holds no write access). 0 or a negative errno.
    pub set_file: unsafe extern "C" fn(*mut c_void, *const Call, *mut c_void) -> c_int,
    /// Pages cached now, read without waiting for any lock (it may be a
    /// moment old): what reclaim and the budget rank FCMs by.
    pub pages: unsafe extern "C" fn(*mut c_void, *const Call) -> u64,
    /// Lends page `index` to a fault that maps it (`*out`, a `struct page
    /// *` with a reference of the caller's): brought in as a read would,
    /// then marked, under the FCM's lock, as lent to the mappings `maps`
    /// lists (`hotswap_fcm_page_lend`), so that freeing it later unmaps it
    /// first. `ENXIO` if the page starts at or past the end of the file
    /// (the fault's `SIGBUS`). 0 or a negative errno.
    pub page:
        unsafe extern "C" fn(*mut c_void, *const Call, u64, *mut c_void, *mut *mut c_void) -> c_int,
}

/// The mappings of an inode's pages (`hotswap_fcm_maps` in
/// `fcm_mapped.c`), which a page lent to a fault is marked with: borrowed
/// for the call of [`FcmOps::page`], never followed here.
#[derive(Clone, Copy)]
pub struct MapsHandle(core::ptr::NonNull<c_void>);

impl MapsHandle {
    /// The handle `raw`, if not NULL.
    pub fn new(raw: *mut c_void) -> Option<Self> {
        core::ptr::NonNull::new(raw).map(Self)
    }

    /// The raw `struct hotswap_fcm_maps *`.
    pub fn as_ptr(self) -> *mut c_void {
        self.0.as_ptr()
    }
}

/// One page in [`FORMAT_DESCRIPTORS`] state.
#[repr(C)]
pub struct PageDescriptor {
    /// Page index in the file.
    pub index: u64,
    /// The page (`struct page *`, order 0); ownership moves with it.
    pub page: *mut c_void,
    /// 0 if clean; else the bytes to write back, `[lo, hi)` packed as
    /// `lo | hi << 16` (`lo == hi`: none; `hi < lo`, such as 1: the whole
    /// page).
    pub dirty: u32,
    /// Whether it was used since the replacement policy last looked.
    pub referenced: u32,
}

/// [`FORMAT_DESCRIPTORS`] state.
#[repr(C)]
pub struct DescriptorState {
    /// The backing file (`struct file *`); the importer takes its own
    /// reference.
    pub file: *mut c_void,
    /// Counters, carried over (`cached` and `dirty` describe `pages`).
    pub stats: FcmStats,
    /// Number of descriptors.
    pub count: usize,
    /// The descriptors.
    pub pages: *mut PageDescriptor,
}

/// Where a read puts its bytes or a write takes them from.
#[derive(Clone, Copy)]
pub enum Buffer {
    /// A user address.
    User(usize),
    /// A kernel address, valid for the whole length.
    Kernel(*mut u8),
}

impl Buffer {
    fn new(addr: usize, user: u32) -> Self {
        if user != 0 {
            Self::User(addr)
        } else {
            Self::Kernel(addr as *mut u8)
        }
    }
    // The copies (`copy_to`, `copy_from`) are in `fcm_pages.rs`, with the
    // FCM code's other raw kernel calls.
}

/// An FCM implementation: safe Rust methods, behind the shims of
/// [`impl_ops`].
///
/// # Safety
///
/// What [`FcmImpl::export`] returns for a format is a state of that
/// format, as [`FORMAT_PAGEMAP`] and [`FORMAT_DESCRIPTORS`] define them
/// (made by `fcm_pages`' export functions): another FCM's `import`
/// dereferences it.
pub unsafe trait FcmImpl: Sized + Send + Sync {
    /// A cache of `args.file`.
    fn create(args: &FcmCreate) -> Result<KBox<Self>>;
    /// An empty replacement; its state arrives through `import`.
    fn create_empty() -> Result<KBox<Self>>;
    /// Ends the object: `quiet` means its state lives on elsewhere (no
    /// write-back), otherwise dirty pages are written back first.
    fn destroy(self: KBox<Self>, quiet: bool);
    /// See [`FcmOps::read`].
    fn read(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize>;
    /// See [`FcmOps::write`].
    fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize>;
    /// See [`FcmOps::sync`].
    fn sync(&self, start: i64, end: i64, flags: u32) -> Result;
    /// See [`FcmOps::truncate`].
    fn truncate(&self, size: i64) -> Result;
    /// See [`FcmOps::size`].
    fn size(&self) -> i64;
    /// See [`FcmOps::evict`].
    fn evict(&self, keep: u64, flags: u32) -> Result<u64>;
    /// See [`FcmOps::pages`].
    fn pages(&self) -> u64;
    /// See [`FcmOps::stats`].
    fn stats(&self) -> FcmStats;
    /// See [`FcmOps::page`]: the page, lent (`CachePage::lend`).
    fn page(&self, index: u64, maps: MapsHandle) -> Result<*mut c_void>;
    /// See [`FcmOps::set_file`].
    ///
    /// # Safety
    ///
    /// `file` is a live `struct file *`, valid for the call.
    unsafe fn set_file(&self, file: *mut c_void) -> Result;
    /// Moves the state out in `format` (the object is quiescent).
    fn export(&self, format: u32) -> Result<*mut c_void>;
    /// Adopts a state exported in `format`.
    ///
    /// # Safety
    ///
    /// If `format` is one this FCM imports, `state` was made by an FCM's
    /// `export` in `format` (a format it does not import gets `EINVAL`
    /// with `state` untouched); nothing else uses `state` during the call.
    unsafe fn import(&self, format: u32, state: *mut c_void) -> Result;
    /// Ends a transfer: frees `state`; if not `taken`, puts back what
    /// `export` moved out.
    ///
    /// # Safety
    ///
    /// `state` was made by this object's `export` in `format`, and is
    /// released once.
    unsafe fn release(&self, format: u32, state: *mut c_void, taken: bool);
}

fn errno<T>(r: Result<T>, ok: impl FnOnce(T) -> isize) -> isize {
    match r {
        Ok(v) => ok(v),
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// `obj` came from this implementation's `create`.
unsafe fn this<'a, T>(obj: *mut c_void) -> &'a T {
    // SAFETY: The caller promises `obj` is a live `T` made by `create`.
    unsafe { &*obj.cast::<T>() }
}

unsafe extern "C" fn read_shim<T: FcmImpl>(
    o: *mut c_void,
    _: *const Call,
    pos: i64,
    buf: usize,
    len: usize,
    user: u32,
) -> isize {
    // SAFETY: hotswap passes objects of this implementation.
    errno(
        unsafe { this::<T>(o) }.read(pos, Buffer::new(buf, user), len),
        |n| n as isize,
    )
}

unsafe extern "C" fn write_shim<T: FcmImpl>(
    o: *mut c_void,
    _: *const Call,
    pos: i64,
    buf: usize,
    len: usize,
    user: u32,
) -> isize {
    // SAFETY: As in `read_shim`.
    errno(
        unsafe { this::<T>(o) }.write(pos, Buffer::new(buf, user), len),
        |n| n as isize,
    )
}

unsafe extern "C" fn sync_shim<T: FcmImpl>(
    o: *mut c_void,
    _: *const Call,
    start: i64,
    end: i64,
    flags: u32,
) -> c_int {
    // SAFETY: As in `read_shim`.
    errno(unsafe { this::<T>(o) }.sync(start, end, flags), |()| 0) as c_int
}

unsafe extern "C" fn truncate_shim<T: FcmImpl>(o: *mut c_void, _: *const Call, size: i64) -> c_int {
    // SAFETY: As in `read_shim`.
    errno(unsafe { this::<T>(o) }.truncate(size), |()| 0) as c_int
}

unsafe extern "C" fn size_shim<T: FcmImpl>(o: *mut c_void, _: *const Call) -> i64 {
    // SAFETY: As in `read_shim`.
    unsafe { this::<T>(o) }.size()
}

unsafe extern "C" fn evict_shim<T: FcmImpl>(
    o: *mut c_void,
    _: *const Call,
    keep: u64,
    flags: u32,
) -> i64 {
    // SAFETY: As in `read_shim`.
    errno(unsafe { this::<T>(o) }.evict(keep, flags), |n| n as isize) as i64
}

unsafe extern "C" fn pages_shim<T: FcmImpl>(o: *mut c_void, _: *const Call) -> u64 {
    // SAFETY: As in `read_shim`.
    unsafe { this::<T>(o) }.pages()
}

unsafe extern "C" fn page_shim<T: FcmImpl>(
    o: *mut c_void,
    _: *const Call,
    index: u64,
    maps: *mut c_void,
    out: *mut *mut c_void,
) -> c_int {
    let (Some(maps), false) = (MapsHandle::new(maps), out.is_null()) else {
        return EINVAL.to_errno();
    };
    // SAFETY: As in `read_shim`.
    match unsafe { this::<T>(o) }.page(index, maps) {
        Ok(page) => {
            // SAFETY: `out` is non-null, and the caller's to write.
            unsafe { *out = page };
            0
        }
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn stats_shim<T: FcmImpl>(o: *mut c_void, _: *const Call, out: *mut FcmStats) {
    // SAFETY: As in `read_shim`; `out` is NULL or writable.
    if let Some(out) = unsafe { out.as_mut() } {
        *out = unsafe { this::<T>(o) }.stats();
    }
}

unsafe extern "C" fn create_shim<T: FcmImpl>(arg: *const c_void, out: *mut *mut c_void) -> c_int {
    // SAFETY: `arg` is NULL (a replacement) or an `FcmCreate`.
    let made = match unsafe { arg.cast::<FcmCreate>().as_ref() } {
        Some(args) if !args.file.is_null() => T::create(args),
        Some(_) => Err(EINVAL),
        None => T::create_empty(),
    };
    match made {
        Ok(obj) => {
            // SAFETY: hotswap passes a valid out pointer.
            unsafe { *out = KBox::into_raw(obj).cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn destroy_shim<T: FcmImpl>(obj: *mut c_void, how: u32) {
    // SAFETY: `obj` came from `create_shim` and is destroyed once.
    let obj = unsafe { KBox::from_raw(obj.cast::<T>()) };
    obj.destroy(how == crate::api::DESTROY_QUIET);
}

unsafe extern "C" fn export_shim<T: FcmImpl>(
    o: *mut c_void,
    format: u32,
    state: *mut *mut c_void,
) -> c_int {
    // SAFETY: As in `read_shim`.
    match unsafe { this::<T>(o) }.export(format) {
        Ok(s) => {
            // SAFETY: hotswap passes a valid out pointer.
            unsafe { *state = s };
            0
        }
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn import_shim<T: FcmImpl>(
    o: *mut c_void,
    format: u32,
    state: *mut c_void,
) -> c_int {
    // SAFETY: As in `read_shim`; hotswap passes the state the exporter
    // made in `format` (the `import` contract).
    errno(unsafe { this::<T>(o).import(format, state) }, |()| 0) as c_int
}

unsafe extern "C" fn set_file_shim<T: FcmImpl>(
    o: *mut c_void,
    _: *const Call,
    file: *mut c_void,
) -> c_int {
    if file.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: As in `read_shim`; hotswap passes a live file for the call
    // (the `set_file` contract), checked non-null above.
    errno(unsafe { this::<T>(o).set_file(file) }, |()| 0) as c_int
}

unsafe extern "C" fn release_shim<T: FcmImpl>(
    o: *mut c_void,
    format: u32,
    state: *mut c_void,
    taken: u32,
) {
    // SAFETY: As in `read_shim`; hotswap passes the state this object's
    // `export` made, once (the `release` contract).
    unsafe { this::<T>(o).release(format, state, taken != 0) }
}

/// The method table of implementation `T`: this adapter's shims for `T`
/// (for an adapter that builds on [`impl_ops`]' table with
/// [`ImplTable::from_raw`], as the fault-injection FCM does).
pub const fn fcm_methods<T: FcmImpl>() -> FcmOps {
    FcmOps {
        read: read_shim::<T>,
        write: write_shim::<T>,
        sync: sync_shim::<T>,
        truncate: truncate_shim::<T>,
        size: size_shim::<T>,
        evict: evict_shim::<T>,
        stats: stats_shim::<T>,
        set_file: set_file_shim::<T>,
        pages: pages_shim::<T>,
        page: page_shim::<T>,
    }
}

/// Holds [`fcm_methods`] of `T` as a constant, so that
/// `&Methods::<T>::TABLE` is a `'static` table of `T`'s own.
struct Methods<T>(core::marker::PhantomData<T>);

impl<T: FcmImpl> Methods<T> {
    const TABLE: FcmOps = fcm_methods::<T>();
}

/// The registration table of implementation `T` with its transfer formats
/// (preferred first).
pub fn impl_ops<T: FcmImpl>(exports: &[u32], imports: &[u32]) -> ImplTable<Fcm> {
    let mut export_formats = [0; MAX_FORMATS];
    let mut import_formats = [0; MAX_FORMATS];
    for (slot, f) in export_formats.iter_mut().zip(exports) {
        *slot = *f;
    }
    for (slot, f) in import_formats.iter_mut().zip(imports) {
        *slot = *f;
    }
    let ops = ImplOps {
        kind: KIND_OBJECT,
        export_formats,
        import_formats,
        create: Some(create_shim::<T>),
        destroy: Some(destroy_shim::<T>),
        export: Some(export_shim::<T>),
        import: Some(import_shim::<T>),
        release: Some(release_shim::<T>),
        ..ImplOps::empty()
    };
    // SAFETY: The callbacks and methods are this adapter's shims for the
    // one type `T`: `create_shim::<T>` stores a `KBox<T>`, and every other
    // shim takes the object as that `T` (their `# Safety` sections), with
    // `T`'s safe methods behind them.
    unsafe { ImplTable::from_raw(&Methods::<T>::TABLE, ops) }
}
