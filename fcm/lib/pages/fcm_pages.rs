// SPDX-License-Identifier: GPL-2.0
//! Building blocks every FCM implementation shares: owned cache pages that
//! can move between modules, the backing file they are filled from and
//! written back to, and the copies to and from a caller's buffer.
//! Compiled into each FCM module next to `fcm_api.rs`.
//!
//! Every raw kernel call (`bindings::`) of the FCM code is in this file,
//! each behind a safe type or function with its contract stated once: the
//! kernel crate has no abstraction for `kmap_local_page`, `kernel_read`,
//! `vfs_fsync_range`, `vfs_truncate`, `dentry_open`, the non-faulting
//! user copies, or a capability check without a `File`; and the page map
//! needs raw XArray calls ([`PageMap`] says why).

use crate::fcm_api::{Buffer, DescriptorState, FcmStats, MapsHandle, PageDescriptor, PAGE_SIZE};
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::fs::File;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed};
use kernel::sync::{Mutex, MutexGuard};

/// One order-0 page of file data, owned.
///
/// # Page contents and concurrency
///
/// Bytes move in and out of a page only by raw copies ([`CachePage::copy_out`],
/// [`CachePage::copy_from_page`], [`BackingFile::write_back`]); no Rust
/// reference to a page's memory ever exists once the page is in a cache.
/// `fcm_distributed` lets a reader on one CPU copy out of a page while a
/// writer on another copies into it (each holds only its own CPU's lock):
/// the reader may see a mix of old and new bytes, as a read racing a write
/// of the same bytes may in Linux's page cache, and nothing else goes wrong.
///
/// # Invariants
///
/// `0` points to a page this value owns (one reference), freed on drop.
#[repr(transparent)]
pub struct CachePage(NonNull<bindings::page>);

// SAFETY: A page may be used and freed from any CPU.
unsafe impl Send for CachePage {}
// SAFETY: Shared access copies bytes only through raw pointers (see the
// type's docs); the pointer itself never changes.
unsafe impl Sync for CachePage {}

extern "C" {
    /// An FCM page from hotswap.ko (`fcm_memory.c`): counted against the
    /// global budget, charged to the caller's memory cgroup; NULL past the
    /// budget or when memory is short (never the OOM killer).
    /// (`struct page *` travels as `*mut c_void`: the binding's type is
    /// not FFI-safe as Rust sees it.)
    fn hotswap_fcm_page_alloc(zero: bool) -> *mut c_void;
    /// Frees a page of `hotswap_fcm_page_alloc`, unmapping it first if
    /// it was lent to a fault (`fcm_mapped.c`).
    fn hotswap_fcm_page_free(page: *mut c_void);
    /// Marks `page` as lent to the mappings `maps` lists, as page `index`
    /// of the file, and takes a reference for the fault (`fcm_mapped.c`).
    fn hotswap_fcm_page_lend(page: *mut c_void, index: u64, maps: *mut c_void);
    /// Whether anything but its FCM holds `page` (a mapping, a fault).
    fn hotswap_fcm_page_busy(page: *mut c_void) -> bool;
}

impl CachePage {
    /// A zeroed page.
    pub fn alloc() -> Result<Self> {
        Self::alloc_zeroed(true)
    }

    /// A page whose bytes are stale: for staging a whole page of a write,
    /// which overwrites every byte before anything reads it.
    pub fn alloc_for_staging() -> Result<Self> {
        Self::alloc_zeroed(false)
    }

    fn alloc_zeroed(zero: bool) -> Result<Self> {
        // SAFETY: FFI call with no requirements.
        let page = unsafe { hotswap_fcm_page_alloc(zero) }.cast::<bindings::page>();
        // INVARIANT: A fresh page with one reference, now ours.
        NonNull::new(page).map(Self).ok_or(ENOMEM)
    }

    /// Gives the page up as a raw `struct page *` (for a state transfer).
    pub fn into_raw(self) -> *mut c_void {
        let page = self.0;
        core::mem::forget(self);
        page.as_ptr().cast()
    }

    /// Takes back a page given up by [`CachePage::into_raw`].
    ///
    /// # Safety
    ///
    /// `raw` came from `into_raw` (in any module) and is taken back once.
    pub unsafe fn from_raw(raw: *mut c_void) -> Option<Self> {
        // INVARIANT: The caller hands over the reference `into_raw` kept.
        NonNull::new(raw.cast()).map(Self)
    }

    /// The `struct page *`, still owned here (for a descriptor that lends it).
    pub fn as_raw(&self) -> *mut c_void {
        self.0.as_ptr().cast()
    }

    /// Lends the page to a fault that maps it as page `index` of the file
    /// whose mappings `maps` lists: a new reference, the caller's (it
    /// becomes the PTE's). Called under the cache's lock, which every
    /// free of the page holds too: freeing it unmaps it then.
    pub fn lend(&self, index: u64, maps: MapsHandle) -> *mut c_void {
        // SAFETY: The page is live (the invariants); `maps` is the live
        // handle the front end passed for this call.
        unsafe { hotswap_fcm_page_lend(self.as_raw(), index, maps.as_ptr()) };
        self.as_raw()
    }

    /// Whether something besides the cache holds the page (a mapping, a
    /// fault about to map it): memory reclaim leaves such a page cached,
    /// since unmapping it would wait on the address space's lock.
    pub fn busy(&self) -> bool {
        // SAFETY: The page is live (the invariants).
        unsafe { hotswap_fcm_page_busy(self.as_raw()) }
    }

    /// Runs `f` on the address of the page's bytes, mapped for the call.
    fn mapped<R>(&self, f: impl FnOnce(*mut u8) -> R) -> R {
        // SAFETY: By the invariants the page is valid; the mapping lasts
        // until `kunmap_local` below.
        let addr = unsafe { bindings::kmap_local_page(self.0.as_ptr()) };
        let ret = f(addr.cast());
        // SAFETY: Unmaps the mapping made above.
        unsafe { bindings::kunmap_local(addr) };
        ret
    }

    /// Copies bytes `[offset, offset + len)` of the page to `buf` at `at`,
    /// without taking a page fault; false if the user buffer must be
    /// faulted in first (see [`Buffer::copy_to`]).
    pub fn copy_out(&self, offset: usize, len: usize, buf: Buffer, at: usize) -> bool {
        let len = len.min(PAGE_SIZE.saturating_sub(offset));
        // SAFETY: `offset + len` is within the mapped page; concurrent
        // copies into it are tolerated (see the type's docs).
        self.mapped(|p| unsafe { buf.copy_to(at, p.add(offset), len) })
    }

    /// Fills bytes `[offset, offset + len)` of this page, which only the
    /// caller can see (`&mut`), from `buf` at `at`: all of them or `EFAULT`.
    pub fn stage(&mut self, offset: usize, len: usize, buf: Buffer, at: usize) -> Result {
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return Err(EINVAL);
        }
        // SAFETY: In bounds (checked above); `&mut self` means no other
        // access to the page.
        self.mapped(|p| unsafe { buf.copy_from(at, p.add(offset), len) })
    }

    /// Copies bytes `[offset, offset + len)` of `src` into the same bytes
    /// of this page (a staged write landing in a cached page).
    pub fn copy_from_page(&self, src: &CachePage, offset: usize, len: usize) {
        let len = len.min(PAGE_SIZE.saturating_sub(offset));
        src.mapped(|from| {
            self.mapped(|to| {
                // SAFETY: Both ranges are within their mapped pages, which
                // are different pages; see the type's docs on races.
                unsafe { core::ptr::copy_nonoverlapping(from.add(offset), to.add(offset), len) }
            })
        })
    }

    /// Zeroes bytes `[offset, PAGE_SIZE)` (the tail past a new end of file).
    pub fn zero_from(&self, offset: usize) {
        let len = PAGE_SIZE.saturating_sub(offset);
        // SAFETY: Within the mapped page; see the type's docs on races.
        self.mapped(|p| unsafe { core::ptr::write_bytes(p.add(offset.min(PAGE_SIZE)), 0, len) })
    }
}

impl Drop for CachePage {
    fn drop(&mut self) {
        // SAFETY: By the invariants this value owns one reference, to a
        // page of `hotswap_fcm_page_alloc` (every FCM page is one).
        unsafe { hotswap_fcm_page_free(self.0.as_ptr().cast()) };
    }
}

/// The file an FCM caches: its own `struct file`, opened by the front end
/// with the attacher's credentials and plain flags (no `O_APPEND`,
/// `O_DIRECT` or `O_SYNC` of any opener), so write-back lands where the
/// cache says.
#[derive(Clone)]
pub struct BackingFile {
    file: ARef<File>,
}

extern "C" {
    /// `kernel_write` free of the caller's `RLIMIT_FSIZE` (hotswap.ko's
    /// `fcm_io.c`): a page is written back in the context of whichever
    /// call needed it written, a reader's miss included. The `struct file *`
    /// travels as `*mut c_void`: the binding's type is not FFI-safe as Rust
    /// sees it.
    fn hotswap_fcm_write(file: *mut c_void, buf: *const c_void, len: usize, pos: *mut i64)
        -> isize;
}

fn io_result(ret: isize) -> Result<usize> {
    if ret < 0 {
        Err(Error::from_errno(ret as i32))
    } else {
        Ok(ret as usize)
    }
}

impl Buffer {
    /// Copies `len` bytes from `src` to offset `at` of the buffer, all or
    /// nothing, never taking a page fault: it runs under an FCM's locks,
    /// and a fault there could wait on anything (a FUSE-backed buffer, the
    /// same file's cache). Returns false if the user buffer is not there
    /// to copy into; [`crate::fcm_pages::read_chunk`] faults it in with no
    /// lock held and tries again.
    ///
    /// # Safety
    ///
    /// `src` is valid for reads of `len` bytes. Other CPUs may copy into
    /// the same bytes meanwhile (a cached page, see `fcm_pages.rs`): the
    /// copy goes through raw pointers, never a Rust reference.
    pub unsafe fn copy_to(self, at: usize, src: *const u8, len: usize) -> bool {
        match self {
            Self::User(addr) => {
                let Some(to) = addr.checked_add(at) else {
                    return false;
                };
                // SAFETY: `src` is readable for `len` bytes (the caller's
                // contract); the copy checks the user range itself and
                // fails rather than fault. The kernel crate's writer takes
                // a `&[u8]`, which would assert that no other CPU writes
                // the page meanwhile, and may fault.
                unsafe { bindings::copy_to_user_nofault(to as *mut c_void, src.cast(), len) == 0 }
            }
            Self::Kernel(p) => {
                // SAFETY: The caller of the FCM method promised `p` is valid
                // for the whole request, which `at + len` is within; `src`
                // is readable (this function's contract).
                unsafe { core::ptr::copy_nonoverlapping(src, p.add(at), len) };
                true
            }
        }
    }

    /// Fills `dst` (`len` bytes) from offset `at` of the buffer: all of
    /// it, or `EFAULT` (then `dst` may hold part of the bytes).
    ///
    /// # Safety
    ///
    /// `dst` is valid for writes of `len` bytes and nothing else accesses
    /// them during the call (a staging page only this call owns).
    pub unsafe fn copy_from(self, at: usize, dst: *mut u8, len: usize) -> Result {
        match self {
            Self::User(addr) => {
                let ptr = kernel::uaccess::UserPtr::from_addr(addr.checked_add(at).ok_or(EFAULT)?);
                // SAFETY: `dst` is valid and exclusive for `len` bytes (the
                // caller's contract); `MaybeUninit<u8>` has `u8`'s layout.
                let out = unsafe {
                    core::slice::from_raw_parts_mut(dst.cast::<core::mem::MaybeUninit<u8>>(), len)
                };
                kernel::uaccess::UserSlice::new(ptr, len)
                    .reader()
                    .read_raw(out)
            }
            Self::Kernel(p) => {
                // SAFETY: As in `copy_to`, the other way round.
                unsafe { core::ptr::copy_nonoverlapping(p.add(at), dst, len) };
                Ok(())
            }
        }
    }
}

impl BackingFile {
    /// Takes a reference to `file` (a `struct file *` the caller holds).
    ///
    /// # Safety
    ///
    /// `file` points to a live `struct file`.
    pub unsafe fn new(file: *mut c_void) -> Self {
        // SAFETY: The caller promises a live file; `ARef::from` takes our
        // own reference.
        let file: ARef<File> = unsafe { File::from_raw_file(file.cast()) }.into();
        Self { file }
    }

    /// The raw `struct file *` (for a state transfer; still owned here).
    pub fn as_raw(&self) -> *mut c_void {
        self.file.as_ptr().cast()
    }

    /// The file's size now.
    pub fn size(&self) -> i64 {
        // SAFETY: The file holds its inode; `i_size` is a plain loff_t that
        // a 64-bit load reads whole.
        unsafe { (*(*self.file.as_ptr()).f_inode).i_size }
    }

    /// Fills `page`, which only the caller can see, with the file's bytes
    /// of page `index` (zeros past EOF).
    pub fn fill(&self, index: u64, page: &mut CachePage) -> Result {
        let mut pos = (index * PAGE_SIZE as u64) as i64;
        page.mapped(|bytes| {
            let mut done = 0;
            while done < PAGE_SIZE {
                // SAFETY: `bytes + done` is valid for `PAGE_SIZE - done`
                // bytes of the mapped page; the file is live.
                let ret = unsafe {
                    bindings::kernel_read(
                        self.file.as_ptr(),
                        bytes.add(done).cast(),
                        PAGE_SIZE - done,
                        &mut pos,
                    )
                };
                match io_result(ret)? {
                    0 => break,
                    n => done += n,
                }
            }
            // SAFETY: The rest of the mapped page.
            unsafe { core::ptr::write_bytes(bytes.add(done), 0, PAGE_SIZE - done) };
            Ok(())
        })
    }

    /// A new page holding page `index` of the file, read now, or zeros if
    /// it starts at or past `size`; and whether it was read. For a miss
    /// filled with no cache lock held: I/O under the lock would stall the
    /// cache's other users, and memory reclaim, which an allocation of the
    /// backing filesystem may enter, could take no page from this cache.
    /// The caller must check, under its lock, that no write-back or
    /// truncation happened meanwhile (the bytes may be stale then).
    pub fn page_of(&self, index: u64, size: i64) -> Result<(CachePage, bool)> {
        let mut page = CachePage::alloc()?;
        let read = (index as i64) * (PAGE_SIZE as i64) < size;
        if read {
            self.fill(index, &mut page)?;
        }
        Ok((page, read))
    }

    /// Writes bytes `[from, to)` of `page` at page `index` (nothing if the
    /// range is empty): only the bytes the cache's writers changed, so a
    /// write-back never puts back the rest of a page as it was filled.
    pub fn write_back(&self, index: u64, page: &CachePage, from: usize, to: usize) -> Result {
        let len = to.min(PAGE_SIZE);
        let mut pos = (index * PAGE_SIZE as u64 + from as u64) as i64;
        page.mapped(|bytes| {
            let mut done = from;
            while done < len {
                // SAFETY: `bytes + done` is valid for `len - done` bytes of
                // the mapped page; the file is live.
                let ret = unsafe {
                    hotswap_fcm_write(
                        self.file.as_ptr().cast(),
                        bytes.add(done).cast(),
                        len - done,
                        &mut pos,
                    )
                };
                match io_result(ret)? {
                    0 => return Err(EIO),
                    n => done += n,
                }
            }
            Ok(())
        })
    }

    /// Takes over the caller's reference to `file` (no new reference).
    ///
    /// # Safety
    ///
    /// `file` points to a live `struct file`, and the caller gives up one
    /// reference to it.
    pub unsafe fn adopt(file: *mut c_void) -> Self {
        // SAFETY: `File` is a transparent `struct file`; the caller hands
        // over its reference, which the `ARef` puts when dropped.
        let file = unsafe { ARef::from_raw(NonNull::new_unchecked(file.cast::<File>())) };
        Self { file }
    }

    /// Another open file of the same inode and path, `O_RDWR |
    /// O_LARGEFILE`, with this file's credentials.
    pub fn reopen_large(&self) -> Result<Self> {
        let raw = self.file.as_ptr();
        let flags = (bindings::O_RDWR | bindings::O_LARGEFILE) as i32;
        // SAFETY: The file is live, and its path and credentials with it;
        // `f_path` is the union member every file has.
        let twin =
            unsafe { bindings::dentry_open(&(*raw).__bindgen_anon_1.f_path, flags, (*raw).f_cred) };
        let twin = kernel::error::from_err_ptr(twin)?;
        // SAFETY: `dentry_open` returned a new file with one reference,
        // which is ours.
        Ok(unsafe { Self::adopt(twin.cast()) })
    }

    /// Reads up to `out.len()` bytes at `pos` (one `kernel_read`).
    pub fn read_at(&self, pos: i64, out: &mut [u8]) -> Result<usize> {
        let mut pos = pos;
        // SAFETY: `out` is writable for its length; the file is live.
        io_result(unsafe {
            bindings::kernel_read(
                self.file.as_ptr(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut pos,
            )
        })
    }

    /// Writes all of `data` at `pos`.
    pub fn write_at(&self, pos: i64, data: &[u8]) -> Result {
        let mut pos = pos;
        let mut done = 0;
        while done < data.len() {
            let rest = &data[done..];
            // SAFETY: `rest` is readable for its length; the file is live.
            let ret = unsafe {
                hotswap_fcm_write(
                    self.file.as_ptr().cast(),
                    rest.as_ptr().cast(),
                    rest.len(),
                    &mut pos,
                )
            };
            match io_result(ret)? {
                0 => return Err(EIO),
                n => done += n,
            }
        }
        Ok(())
    }

    /// Syncs `[start, end]` of the file to its storage.
    pub fn sync(&self, start: i64, end: i64) -> Result {
        // SAFETY: The file is live.
        kernel::error::to_result(unsafe {
            bindings::vfs_fsync_range(self.file.as_ptr(), start, end, 0)
        })
    }

    /// Sets the file's size (`truncate(2)` on its path, with the caller's
    /// credentials checked).
    pub fn truncate(&self, size: i64) -> Result {
        // SAFETY: The file is live and its path stays valid while it is;
        // `f_path` is the union member every file has.
        kernel::error::to_result(unsafe {
            bindings::vfs_truncate(&(*self.file.as_ptr()).__bindgen_anon_1.f_path, size)
        })
    }
}

/// Builds a [`DescriptorState`] for an export. The descriptors *lend*
/// the exporter's pages: its map keeps them until the transfer ends, so an
/// aborted swap has nothing to put back (and nothing to allocate), and a
/// completed one only forgets them ([`release_state`]). Everything is
/// allocated in [`DescriptorExport::new`], so lending cannot fail half-way.
pub struct DescriptorExport {
    state: KBox<DescriptorState>,
    pages: KVec<PageDescriptor>,
}

impl DescriptorExport {
    /// Room for `count` pages of the file `file` with counters `stats`.
    pub fn new(file: *mut c_void, stats: FcmStats, count: usize) -> Result<Self> {
        let state = KBox::new(
            DescriptorState {
                file,
                stats,
                count: 0,
                pages: core::ptr::null_mut(),
            },
            GFP_KERNEL,
        )?;
        Ok(Self {
            state,
            pages: KVec::with_capacity(count, GFP_KERNEL)?,
        })
    }

    /// Describes `entry` (page `index`) in the state.
    pub fn lend(&mut self, index: u64, entry: &Entry) {
        let descriptor = PageDescriptor {
            index,
            page: entry.page.as_raw(),
            dirty: entry.dirty_descriptor(),
            referenced: u32::from(entry.referenced.load(Relaxed)),
        };
        // `new` reserved one place per page of the map being described.
        let _ = self.pages.push_within_capacity(descriptor);
    }

    /// Describes every page of `map`.
    pub fn lend_all(mut self, map: &PageMap) -> Self {
        map.for_each(|index, entry| self.lend(index, entry));
        self
    }

    /// The state handle for hotswap.
    pub fn finish(mut self) -> *mut c_void {
        let (ptr, len, _cap) = self.pages.into_raw_parts();
        self.state.count = len;
        self.state.pages = ptr;
        KBox::into_raw(self.state).cast()
    }
}

/// The state and descriptors of an import, checked (no NULL page).
///
/// # Safety
///
/// `state` is a [`DescriptorState`] made by [`DescriptorExport`], alive
/// until the transfer ends.
pub unsafe fn descriptors<'a>(
    state: *mut c_void,
) -> Result<(&'a DescriptorState, &'a [PageDescriptor])> {
    // SAFETY: The caller promises a live state from `DescriptorExport`.
    let state = unsafe { state.cast::<DescriptorState>().as_ref() }.ok_or(EINVAL)?;
    // SAFETY: `pages` holds `count` descriptors (see `finish`).
    let pages = unsafe { core::slice::from_raw_parts(state.pages, state.count) };
    if pages.iter().any(|d| d.page.is_null()) {
        return Err(EINVAL);
    }
    Ok((state, pages))
}

/// Frees a descriptor state made by this exporter; the pages it lent
/// stay where they are.
///
/// # Safety
///
/// `state` came from this exporter's [`DescriptorExport::finish`] and is
/// released once.
pub unsafe fn free_descriptors(state: *mut c_void) {
    if state.is_null() {
        return;
    }
    // SAFETY: The caller promises the state `finish` made, released once.
    let state = unsafe { KBox::from_raw(state.cast::<DescriptorState>()) };
    // SAFETY: `finish` made `pages` from a KVec of `count` elements (its
    // capacity is forgotten; kmalloc frees by address).
    drop(unsafe { KVec::from_raw_parts(state.pages, state.count, state.count) });
}

/// End of the byte range `[pos, pos + len)`: `EINVAL` for a negative
/// position or a length past `i64`, `EFBIG` if the end overflows.
pub fn byte_range(pos: i64, len: usize) -> Result<i64> {
    if pos < 0 {
        return Err(EINVAL);
    }
    let len = i64::try_from(len).map_err(|_| EINVAL)?;
    pos.checked_add(len).ok_or(EFBIG)
}

/// A piece of a byte range that falls in one page.
pub struct Chunk {
    /// Page index.
    pub index: u64,
    /// Offset in the page.
    pub offset: usize,
    /// Bytes in this page.
    pub len: usize,
    /// Offset in the caller's buffer.
    pub at: usize,
}

/// The page-sized pieces of `[pos, end)`, in order.
pub fn chunks(pos: i64, end: i64) -> impl Iterator<Item = Chunk> {
    let page = PAGE_SIZE as i64;
    let mut cur = pos;
    core::iter::from_fn(move || {
        if cur >= end {
            return None;
        }
        let offset = (cur % page) as usize;
        let len = (PAGE_SIZE - offset).min((end - cur) as usize);
        let chunk = Chunk {
            index: (cur / page) as u64,
            offset,
            len,
            at: (cur - pos) as usize,
        };
        cur += len as i64;
        Some(chunk)
    })
}

/// One cached page in a [`PageMap`]. `#[repr(C)]` over `#[repr(transparent)]`
/// fields, so every FCM module compiled from this file lays it out alike:
/// that is what lets a page map change hands between modules.
#[repr(C)]
pub struct Entry {
    /// The page.
    pub page: CachePage,
    /// Must be written back.
    pub dirty: Atomic<bool>,
    /// Used since the replacement policy last looked.
    pub referenced: Atomic<bool>,
    /// Clock tick of the last access (for LRU order).
    pub stamp: Atomic<u64>,
    /// The bytes writers changed since the last write-back, `[lo, hi)`
    /// packed as `lo | hi << 16` (0: none). Widened before `dirty` is set
    /// and taken after it is cleared, so a write-back that takes the flag
    /// takes the writer's bytes too, or leaves the page dirty for the next.
    pub dirty_bytes: Atomic<u32>,
}

fn pack(lo: usize, hi: usize) -> u32 {
    lo as u32 | (hi as u32) << 16
}

fn unpack(bytes: u32) -> (usize, usize) {
    ((bytes & 0xffff) as usize, (bytes >> 16) as usize)
}

impl Entry {
    /// A boxed entry for `page`; `dirty`: the bytes `(offset, len)` a
    /// writer changed in it.
    pub fn boxed(
        page: CachePage,
        dirty: Option<(usize, usize)>,
        referenced: bool,
    ) -> Result<KBox<Self>> {
        let entry = KBox::new(
            Self {
                page,
                dirty: Atomic::new(dirty.is_some()),
                referenced: Atomic::new(referenced),
                stamp: Atomic::new(0),
                dirty_bytes: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        if let Some((offset, len)) = dirty {
            entry.add_dirty(offset, len);
        }
        Ok(entry)
    }

    /// Widens the changed bytes by `[offset, offset + len)` (before the
    /// caller sets `dirty`).
    pub fn add_dirty(&self, offset: usize, len: usize) {
        let end = (offset + len).min(PAGE_SIZE);
        if offset >= end {
            return;
        }
        let mut now = self.dirty_bytes.load(Relaxed);
        loop {
            let (lo, hi) = unpack(now);
            let new = if now == 0 {
                pack(offset, end)
            } else {
                pack(lo.min(offset), hi.max(end))
            };
            // Ordering: full; the caller's flag store comes after.
            match self.dirty_bytes.cmpxchg(now, new, Full) {
                Ok(_) => return,
                Err(seen) => now = seen,
            }
        }
    }

    /// Takes the changed bytes for a write-back (after it cleared
    /// `dirty`): `(from, to)`, empty if none.
    pub fn take_dirty(&self) -> (usize, usize) {
        // Ordering: full; after the caller's flag exchange.
        unpack(self.dirty_bytes.xchg(0, Full))
    }

    /// Gives the bytes of a failed write-back back (before the caller sets
    /// `dirty` again).
    pub fn restore_dirty(&self, (from, to): (usize, usize)) {
        if to > from {
            self.add_dirty(from, to - from);
        }
    }

    /// The page's dirty state for a [`PageDescriptor`]: 0 if clean, else
    /// its changed bytes packed as `dirty_bytes` (`lo == hi`: none left).
    fn dirty_descriptor(&self) -> u32 {
        if !self.dirty.load(Acquire) {
            return 0;
        }
        match self.dirty_bytes.load(Acquire) {
            0 => pack(1, 1),
            bytes => bytes,
        }
    }

    /// `dirty_bytes` from a descriptor's `dirty`; an exporter that gives
    /// no range (`hi < lo`, e.g. 1) means the whole page.
    fn dirty_from_descriptor(dirty: u32) -> u32 {
        let (lo, hi) = unpack(dirty);
        match (dirty, hi.cmp(&lo)) {
            (0, _) | (_, core::cmp::Ordering::Equal) => 0,
            (_, core::cmp::Ordering::Less) => pack(0, PAGE_SIZE),
            _ => dirty,
        }
    }
}

/// Cached pages by index: a kernel XArray (the structure the Linux page
/// cache itself uses) of `KBox<Entry>` pointers. `#[repr(C)]`: FCMs hand a
/// whole map to each other in [`FORMAT_PAGEMAP`](crate::fcm_api::FORMAT_PAGEMAP).
///
/// Why raw XArray calls and not `kernel::xarray::XArray`: that type is
/// pinned inside its owner (`PinInit`) and typed by the module that made
/// it, while this map moves between FCM modules as one pointer in a state
/// transfer (each module compiles its own copy of this file, so a Rust
/// type could not cross); and write-back, eviction and export walk the
/// map in index order from a position (`xa_find`), which the 7.3
/// abstraction does not offer.
///
/// # Invariants
///
/// `xa` is a boxed, initialized `struct xarray` owned by this map whose
/// entries are `KBox<Entry>` pointers owned by it; `count` is their number.
#[repr(C)]
pub struct PageMap {
    xa: *mut bindings::xarray,
    count: u64,
}

// SAFETY: The XArray has its own lock; entries are owned by the map.
unsafe impl Send for PageMap {}
// SAFETY: Shared access only loads entries (XArray loads are RCU-safe).
unsafe impl Sync for PageMap {}

impl PageMap {
    /// An empty map.
    pub fn new() -> Result<Self> {
        let xa = KBox::new(
            kernel::types::Opaque::<bindings::xarray>::uninit(),
            GFP_KERNEL,
        )?;
        let xa = KBox::into_raw(xa).cast::<bindings::xarray>();
        // SAFETY: `xa` is allocated and never moves.
        unsafe { bindings::xa_init_flags(xa, 0) };
        // INVARIANT: Initialized above, empty.
        Ok(Self { xa, count: 0 })
    }

    /// Pages in the map.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether the map holds no page.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entry at `index`.
    pub fn get(&self, index: u64) -> Option<&Entry> {
        // SAFETY: By the invariants `xa` is live; a loaded entry is a
        // `KBox<Entry>` the map owns while `&self` lives.
        unsafe {
            bindings::xa_load(self.xa, index as _)
                .cast::<Entry>()
                .as_ref()
        }
    }

    /// Inserts `entry` at an empty `index`; on failure the entry (and its
    /// page) is freed.
    pub fn insert(&mut self, index: u64, entry: KBox<Entry>) -> Result<&Entry> {
        self.insert_or_return(index, entry)
            .map_err(|(err, _entry)| err)
    }

    /// Inserts `entry` at an empty `index`, or gives it back with the error.
    pub fn insert_or_return(
        &mut self,
        index: u64,
        entry: KBox<Entry>,
    ) -> core::result::Result<&Entry, (Error, KBox<Entry>)> {
        let raw = KBox::into_raw(entry);
        // SAFETY: `xa` is live; `raw` is a 4-byte-aligned pointer we own.
        let old =
            unsafe { bindings::xa_store(self.xa, index as _, raw.cast(), bindings::GFP_KERNEL) };
        // SAFETY: `xa_err` only inspects the value.
        let err = unsafe { bindings::xa_err(old) };
        if err != 0 {
            // SAFETY: Not stored: still ours.
            return Err((Error::from_errno(err), unsafe { KBox::from_raw(raw) }));
        }
        if !old.is_null() {
            // SAFETY: Callers insert only at empty indices; should one not,
            // the displaced entry is ours to free.
            drop(unsafe { KBox::from_raw(old.cast::<Entry>()) });
        } else {
            self.count += 1;
        }
        // SAFETY: Stored above; owned by the map.
        Ok(unsafe { &*raw })
    }

    /// Takes the entry at `index` out.
    pub fn remove(&mut self, index: u64) -> Option<KBox<Entry>> {
        // SAFETY: `xa` is live.
        let old = unsafe { bindings::xa_erase(self.xa, index as _) };
        // SAFETY: A stored entry is a `KBox<Entry>` the map owned.
        let entry =
            NonNull::new(old.cast::<Entry>()).map(|p| unsafe { KBox::from_raw(p.as_ptr()) });
        if entry.is_some() {
            self.count -= 1;
        }
        entry
    }

    /// Calls `f` on every entry, in index order.
    pub fn for_each(&self, mut f: impl FnMut(u64, &Entry)) {
        let mut index: usize = 0;
        loop {
            // SAFETY: `xa` is live; `index` is a valid in/out cursor.
            let found =
                unsafe { bindings::xa_find(self.xa, &mut index, usize::MAX, bindings::XA_PRESENT) };
            // SAFETY: A found entry is a `KBox<Entry>` the map owns.
            let Some(entry) = (unsafe { found.cast::<Entry>().as_ref() }) else {
                return;
            };
            f(index as u64, entry);
            if index == usize::MAX {
                return;
            }
            index += 1;
        }
    }

    /// Every index, in order.
    pub fn indices(&self) -> Result<KVec<u64>> {
        let mut out = KVec::with_capacity(self.count as usize, GFP_KERNEL)?;
        self.for_each(|i, _| {
            // Capacity is `count`, the number of entries.
            let _ = out.push_within_capacity(i);
        });
        Ok(out)
    }

    /// Reclaim: frees up to `n` clean pages, walking the map in index
    /// order from `from` (wrapping around once) and freeing each clean
    /// page `pick` chooses. `pick` runs first, then the page must still be
    /// clean: an FCM whose hits may dirty a page concurrently makes sure in
    /// `pick` that none can reach it any more. With `keep_mapped`, a page
    /// something else holds (a mapping: [`CachePage::busy`]) stays (memory
    /// reclaim; a revalidation frees it, unmapping it). Allocates nothing. Returns
    /// the pages freed and the index after the last one looked at.
    pub fn reclaim_clean(
        &mut self,
        n: u64,
        from: u64,
        keep_mapped: bool,
        mut pick: impl FnMut(u64, &Entry) -> bool,
    ) -> (u64, u64) {
        let mut freed = 0;
        let mut cursor = from as usize;
        let mut wrapped = from == 0;
        while freed < n {
            let mut index = cursor;
            // SAFETY: `xa` is live; `index` is a valid in/out cursor.
            let found =
                unsafe { bindings::xa_find(self.xa, &mut index, usize::MAX, bindings::XA_PRESENT) };
            // SAFETY: A found entry is a `KBox<Entry>` the map owns.
            let Some(entry) = (unsafe { found.cast::<Entry>().as_ref() }) else {
                if wrapped {
                    break;
                }
                wrapped = true;
                cursor = 0;
                continue;
            };
            if wrapped && index >= from as usize && from != 0 {
                break;
            }
            // No fault can borrow the page meanwhile: lending takes the
            // cache's lock, which the caller holds.
            if !entry.dirty.load(Acquire)
                && !(keep_mapped && entry.page.busy())
                && pick(index as u64, entry)
                && !entry.dirty.load(Acquire)
            {
                drop(self.remove(index as u64));
                freed += 1;
            }
            if index == usize::MAX {
                break;
            }
            cursor = index + 1;
        }
        (freed, cursor as u64)
    }

    /// Takes the first entry out.
    pub fn pop_first(&mut self) -> Option<(u64, KBox<Entry>)> {
        self.pop_from(0)
    }

    /// Takes the first entry at or after `first` out.
    pub fn pop_from(&mut self, first: u64) -> Option<(u64, KBox<Entry>)> {
        let mut index = usize::try_from(first).ok()?;
        // SAFETY: `xa` is live; `index` is a valid in/out cursor.
        let found =
            unsafe { bindings::xa_find(self.xa, &mut index, usize::MAX, bindings::XA_PRESENT) };
        if found.is_null() {
            return None;
        }
        self.remove(index as u64).map(|e| (index as u64, e))
    }

    /// Empties the map without freeing the pages: someone else owns them
    /// now (a successor that imported them from descriptors).
    pub fn forget_pages(&mut self) {
        while let Some((_, entry)) = self.pop_first() {
            let _ = KBox::into_inner(entry).page.into_raw();
        }
    }

    /// Frees every entry and its page.
    pub fn clear(&mut self) {
        while self.pop_first().is_some() {}
    }
}

impl Drop for PageMap {
    fn drop(&mut self) {
        self.clear();
        // SAFETY: By the invariants `xa` is ours; empty now, then freed.
        unsafe {
            bindings::xa_destroy(self.xa);
            drop(KBox::from_raw(
                self.xa.cast::<kernel::types::Opaque<bindings::xarray>>(),
            ));
        }
    }
}

/// [`FORMAT_PAGEMAP`](crate::fcm_api::FORMAT_PAGEMAP) state.
#[repr(C)]
pub struct MapState {
    /// The backing file (`struct file *`); the importer takes its own
    /// reference.
    pub file: *mut c_void,
    /// Counters, carried over.
    pub stats: FcmStats,
    /// The map: the exporter's, until the importer takes it.
    pub map: PageMap,
}

/// Exports `pages` whole: allocates the state (the only step that can
/// fail), then swaps the map into it, leaving `pages` empty.
pub fn export_map(file: *mut c_void, stats: FcmStats, pages: &mut PageMap) -> Result<*mut c_void> {
    let mut state = KBox::new(
        MapState {
            file,
            stats,
            map: PageMap::new()?,
        },
        GFP_KERNEL,
    )?;
    core::mem::swap(&mut state.map, pages);
    Ok(KBox::into_raw(state).cast())
}

/// Takes the map, file and counters out of a [`MapState`].
///
/// # Safety
///
/// `state` is a live [`MapState`] from [`export_map`].
pub unsafe fn import_map(state: *mut c_void) -> Result<(BackingFile, FcmStats, PageMap)> {
    // SAFETY: The caller promises a live state from `export_map`; the
    // transfer is serialized by the mediator (no other user).
    let state = unsafe { state.cast::<MapState>().as_mut() }.ok_or(EINVAL)?;
    let mut map = PageMap::new()?;
    core::mem::swap(&mut map, &mut state.map);
    // SAFETY: The exporter holds the file until the transfer ends.
    let file = unsafe { BackingFile::new(state.file) };
    Ok((file, state.stats, map))
}

/// Builds a map from a [`DescriptorState`] whose pages it adopts. On
/// failure every adopted page is given back unfreed (the exporter's
/// `release` restores them).
///
/// # Safety
///
/// `state` is a live state from [`DescriptorExport::finish`].
pub unsafe fn import_descriptors(state: *mut c_void) -> Result<(BackingFile, FcmStats, PageMap)> {
    // SAFETY: The caller promises a live state.
    let (state, descriptors) = unsafe { descriptors(state)? };
    let mut map = PageMap::new()?;
    let forget = |map: &mut PageMap| map.forget_pages();
    for d in descriptors {
        let Ok(slot) = KBox::<Entry>::new_uninit(GFP_KERNEL) else {
            forget(&mut map);
            return Err(ENOMEM);
        };
        // SAFETY: Checked non-NULL by `descriptors`; given back on failure.
        let Some(page) = (unsafe { CachePage::from_raw(d.page) }) else {
            forget(&mut map);
            return Err(EINVAL);
        };
        let entry = KBox::write(
            slot,
            Entry {
                page,
                dirty: Atomic::new(d.dirty != 0),
                referenced: Atomic::new(d.referenced != 0),
                stamp: Atomic::new(0),
                dirty_bytes: Atomic::new(Entry::dirty_from_descriptor(d.dirty)),
            },
        );
        if let Err((err, entry)) = map.insert_or_return(d.index, entry) {
            let _ = KBox::into_inner(entry).page.into_raw();
            forget(&mut map);
            return Err(err);
        }
    }
    // SAFETY: The exporter holds the file until the transfer ends.
    let file = unsafe { BackingFile::new(state.file) };
    let mut stats = state.stats;
    stats.cached = map.len();
    Ok((file, stats, map))
}

/// Ends a transfer on the exporter whose map is `pages`: frees the state;
/// if the swap completed, lets go of what the successor now owns; if it
/// aborted, puts the page map back (descriptors lent pages the map kept,
/// so for them nothing needs putting back).
///
/// # Safety
///
/// `state` came from this exporter's `export` in `format`, released once.
pub unsafe fn release_state(format: u32, state: *mut c_void, taken: bool, pages: &mut PageMap) {
    match format {
        crate::fcm_api::FORMAT_PAGEMAP if !state.is_null() => {
            // SAFETY: The caller promises the state `export_map` made.
            let mut state = unsafe { KBox::from_raw(state.cast::<MapState>()) };
            if !taken {
                core::mem::swap(&mut state.map, pages);
            }
        }
        crate::fcm_api::FORMAT_DESCRIPTORS => {
            if taken {
                // The successor owns every page now.
                pages.forget_pages();
            }
            // SAFETY: The caller promises the state `DescriptorExport` made.
            unsafe { free_descriptors(state) };
        }
        _ => {}
    }
}

/// What a call that moves bytes chunk by chunk returns when chunk `err`
/// stops it after `done` bytes: the short count, or the error if nothing
/// was done (`read(2)` and `write(2)` semantics).
pub fn partial(done: usize, err: Error) -> Result<usize> {
    if done > 0 {
        Ok(done)
    } else {
        Err(err)
    }
}

/// A write's bytes, staged a page-sized chunk at a time from the caller's
/// buffer *before* any lock is taken: a user buffer that faults (or is
/// slow to fault in) then costs nothing but this call, and a chunk lands
/// in the cache whole or not at all. A staged full page becomes the cached
/// page itself on a miss (no second copy); otherwise its bytes are copied
/// into the cached page and the staging page serves the next chunk.
#[derive(Default)]
pub struct Stager {
    spare: Option<CachePage>,
}

impl Stager {
    /// A page holding chunk `c` of `buf` at the chunk's offset in the page
    /// (its other bytes are stale).
    pub fn stage(&mut self, c: &Chunk, buf: Buffer) -> Result<CachePage> {
        let mut page = match self.spare.take() {
            Some(page) => page,
            None => CachePage::alloc_for_staging()?,
        };
        match page.stage(c.offset, c.len, buf, c.at) {
            Ok(()) => Ok(page),
            Err(err) => {
                self.spare = Some(page);
                Err(err)
            }
        }
    }

    /// Keeps a staging page the cache did not take, for the next chunk.
    pub fn give_back(&mut self, page: CachePage) {
        self.spare = Some(page);
    }
}

/// Whether a failed write-back counts as one for `fsync` and `close` to
/// report: not when a signal cut it short (the page stays dirty and the
/// next write-back tries again; nothing is wrong with the file).
pub fn reportable(err: Error) -> bool {
    err != EINTR && err != ERESTARTSYS
}

/// Whether chunk `c` covers its whole page.
pub fn whole_page(c: &Chunk) -> bool {
    c.offset == 0 && c.len == PAGE_SIZE
}

/// Reads chunk `c` into `buf` through `attempt(len)`, which copies the
/// chunk's first `len` bytes holding the cache's locks and must not take a
/// page fault there (it returns false when the user buffer has to be
/// faulted in). Faults the buffer in with no lock held and tries again;
/// where part of it cannot be faulted in, the part before that is copied.
/// Returns the bytes copied: the chunk's length, fewer, or 0 if the
/// buffer faults at its start.
pub fn read_chunk(
    c: &Chunk,
    buf: Buffer,
    mut attempt: impl FnMut(usize) -> Result<bool>,
) -> Result<usize> {
    let mut len = c.len;
    // A page faulted in can be reclaimed before the next try: a few rounds,
    // then give up on this chunk as if it faulted.
    for _ in 0..8 {
        if len == 0 {
            return Ok(0);
        }
        if attempt(len)? {
            return Ok(len);
        }
        let Buffer::User(addr) = buf else {
            return Ok(0);
        };
        let Some(start) = addr.checked_add(c.at) else {
            return Ok(0);
        };
        // SAFETY: Touches only user memory, which it checks; no lock held.
        let missing =
            unsafe { bindings::fault_in_writeable(start as *mut kernel::ffi::c_char, len) };
        len -= missing.min(len);
    }
    Ok(0)
}

/// Takes `lock`, trying first without waiting: if another holder had
/// it, `waited` runs on the data once it is the caller's (to count the
/// wait, `FcmStats::lock_waits`). A try costs one atomic, as the lock's
/// own fast path does.
pub fn lock_counted<T: Unpin>(lock: &Mutex<T>, waited: impl FnOnce(&mut T)) -> MutexGuard<'_, T> {
    match lock.try_lock() {
        Some(guard) => guard,
        None => {
            let mut guard = lock.lock();
            waited(&mut guard);
            guard
        }
    }
}

/// Whether the caller has `CAP_SYS_ADMIN` (in the initial namespace).
pub fn caller_is_admin() -> bool {
    // SAFETY: FFI call with no requirements.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}
