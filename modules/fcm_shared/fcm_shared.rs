// SPDX-License-Identifier: GPL-2.0
//! `fcm_shared`: the File Cache Manager for one CPU — one lock, one map,
//! one LRU order. The cheapest FCM in memory and on a single CPU; every
//! call takes the one mutex, so several CPUs hitting it queue up (which is
//! what `fcm_distributed` is for).
//!
//! Pages live in a red-black tree by index. Each access stamps the page
//! with a clock tick; when the cache grows past its capacity, one scan
//! picks the least recently used eighth and evicts it (dirty pages are
//! written back first), so eviction costs O(1) per page amortized.

use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::{new_mutex, Mutex};

#[path = "../../rust/hotswap/api.rs"]
pub mod api;
#[path = "../../rust/hotswap/fcm_api.rs"]
pub mod fcm_api;
#[path = "../../rust/hotswap/fcm_pages.rs"]
pub mod fcm_pages;

use core::ffi::c_void;
use fcm_api::{
    Buffer, DescriptorState, FcmCreate, FcmImpl, FcmOps, FcmStats, PageDescriptor,
    FORMAT_DESCRIPTORS, PAGE_SIZE,
};
use fcm_pages::{BackingFile, CachePage};

module! {
    type: FcmSharedModule,
    name: "fcm_shared",
    authors: ["hotswap developers"],
    description: "hotswap File Cache Manager: shared (single lock) implementation",
    license: "GPL",
}

struct Cached {
    page: CachePage,
    dirty: bool,
    /// Clock tick of the last access (LRU order).
    stamp: u64,
}

struct Inner {
    /// `None` only in an empty replacement before its import.
    file: Option<BackingFile>,
    pages: RBTree<u64, Cached>,
    size: i64,
    capacity: u64,
    clock: u64,
    stats: FcmStats,
}

/// The `fcm`/`shared` implementation.
pub struct SharedFcm {
    inner: Pin<KBox<Mutex<Inner>>>,
}

const PAGE: i64 = PAGE_SIZE as i64;

impl Inner {
    fn file(&self) -> Result<&BackingFile> {
        self.file.as_ref().ok_or(EBADF)
    }

    /// The cached page `index`, brought in on a miss. `fill` is false when
    /// the caller overwrites the whole page (no read needed).
    fn page(&mut self, index: u64, fill: bool) -> Result<&mut Cached> {
        self.clock += 1;
        let stamp = self.clock;
        if self.pages.get(&index).is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
            let page = CachePage::alloc()?;
            self.stats.allocated += 1;
            let beyond_eof = (index as i64) * PAGE >= self.size;
            if fill && !beyond_eof {
                let filled = self.file().and_then(|f| f.fill(index, &page));
                if let Err(err) = filled {
                    self.stats.freed += 1;
                    return Err(err);
                }
                self.stats.fills += 1;
            }
            let cached = Cached {
                page,
                dirty: false,
                stamp,
            };
            if let Err(err) = self.pages.try_create_and_insert(index, cached, GFP_KERNEL) {
                self.stats.freed += 1;
                return Err(err.into());
            }
            self.stats.cached += 1;
        }
        let cached = self.pages.get_mut(&index).ok_or(EINVAL)?;
        cached.stamp = stamp;
        Ok(cached)
    }

    /// Bytes of page `index` that belong to the file.
    fn valid_len(&self, index: u64) -> usize {
        let start = index as i64 * PAGE;
        (self.size - start).clamp(0, PAGE) as usize
    }

    fn write_back_one(&mut self, index: u64) -> Result {
        let len = self.valid_len(index);
        let file = self.file.as_ref().ok_or(EBADF)?;
        if let Some(cached) = self.pages.get_mut(&index) {
            if cached.dirty {
                file.write_back(index, &cached.page, len)?;
                cached.dirty = false;
                self.stats.dirty -= 1;
                self.stats.writebacks += 1;
            }
        }
        Ok(())
    }

    fn write_back_range(&mut self, first: u64, last: u64) -> Result {
        let mut dirty = KVec::new();
        for (index, cached) in self.pages.iter() {
            if cached.dirty && (first..=last).contains(index) {
                dirty.push(*index, GFP_KERNEL)?;
            }
        }
        for index in dirty {
            self.write_back_one(index)?;
        }
        Ok(())
    }

    fn evict_one(&mut self, index: u64) -> Result {
        self.write_back_one(index)?;
        if self.pages.remove(&index).is_some() {
            self.stats.cached -= 1;
            self.stats.freed += 1;
            self.stats.evictions += 1;
        }
        Ok(())
    }

    /// Evicts least recently used pages until at most `keep` are cached.
    fn evict_to(&mut self, keep: u64) -> Result<u64> {
        let excess = self.stats.cached.saturating_sub(keep) as usize;
        if excess == 0 {
            return Ok(0);
        }
        let mut by_age = KVec::with_capacity(self.pages.iter().count(), GFP_KERNEL)?;
        for (index, cached) in self.pages.iter() {
            by_age.push((cached.stamp, *index), GFP_KERNEL)?;
        }
        by_age.select_nth_unstable(excess - 1);
        for (_, index) in by_age[..excess].iter() {
            self.evict_one(*index)?;
        }
        Ok(excess as u64)
    }

    /// Keeps the cache within its capacity, evicting an eighth at a time.
    fn respect_capacity(&mut self) -> Result {
        if self.capacity != 0 && self.stats.cached > self.capacity {
            self.evict_to(self.capacity - self.capacity / 8)?;
        }
        Ok(())
    }

    fn discard_pages(&mut self) {
        while let Some(cursor) = self.pages.cursor_front_mut() {
            drop(cursor.remove_current());
            self.stats.cached -= 1;
            self.stats.freed += 1;
        }
        self.stats.dirty = 0;
    }
}

impl SharedFcm {
    fn new(file: Option<BackingFile>, capacity: u64) -> Result<KBox<Self>> {
        let size = file.as_ref().map_or(0, |f| f.size());
        let inner = KBox::pin_init(
            new_mutex!(Inner {
                file,
                pages: RBTree::new(),
                size,
                capacity,
                clock: 0,
                stats: FcmStats::default(),
            }),
            GFP_KERNEL,
        )?;
        Ok(KBox::new(Self { inner }, GFP_KERNEL)?)
    }
}

fn range(pos: i64, len: usize) -> Result<i64> {
    if pos < 0 {
        return Err(EINVAL);
    }
    let len = i64::try_from(len).map_err(|_| EINVAL)?;
    pos.checked_add(len).ok_or(EFBIG)
}

impl FcmImpl for SharedFcm {
    fn create(args: &FcmCreate) -> Result<KBox<Self>> {
        // SAFETY: hotswap's front end passes a live file it holds.
        let file = unsafe { BackingFile::new(args.file) };
        Self::new(Some(file), args.capacity)
    }

    fn create_empty() -> Result<KBox<Self>> {
        Self::new(None, 0)
    }

    fn destroy(self: KBox<Self>, quiet: bool) {
        let mut inner = self.inner.lock();
        if !quiet && inner.file.is_some() {
            let size = inner.size;
            if let Err(err) = inner.write_back_range(0, u64::MAX) {
                pr_err!("write-back on close failed ({:?}); dirty data lost\n", err);
            } else if let Some(file) = inner.file.as_ref() {
                let _ = file.sync(0, size);
            }
        }
        inner.discard_pages();
    }

    fn read(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = range(pos, len)?;
        let mut inner = self.inner.lock();
        let end = end.min(inner.size);
        let mut at = pos;
        while at < end {
            let index = (at / PAGE) as u64;
            let off = (at % PAGE) as usize;
            let n = (PAGE_SIZE - off).min((end - at) as usize);
            let cached = inner.page(index, true)?;
            cached
                .page
                .with_bytes(|bytes| buf.put((at - pos) as usize, &bytes[off..off + n]))?;
            at += n as i64;
        }
        inner.respect_capacity()?;
        Ok((at.max(pos) - pos) as usize)
    }

    fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = range(pos, len)?;
        let mut inner = self.inner.lock();
        inner.file()?;
        let mut at = pos;
        while at < end {
            let index = (at / PAGE) as u64;
            let off = (at % PAGE) as usize;
            let n = (PAGE_SIZE - off).min((end - at) as usize);
            let cached = inner.page(index, n != PAGE_SIZE)?;
            cached
                .page
                .with_bytes(|bytes| buf.get((at - pos) as usize, &mut bytes[off..off + n]))?;
            let newly_dirty = !cached.dirty;
            cached.dirty = true;
            if newly_dirty {
                inner.stats.dirty += 1;
            }
            at += n as i64;
            inner.size = inner.size.max(at);
        }
        inner.respect_capacity()?;
        Ok((end - pos) as usize)
    }

    fn sync(&self, start: i64, end: i64) -> Result {
        if start < 0 || end < start {
            return Err(EINVAL);
        }
        let mut inner = self.inner.lock();
        inner.write_back_range((start / PAGE) as u64, (end / PAGE) as u64)?;
        let size = inner.size;
        inner.file()?.sync(start, end.min(size))
    }

    fn size(&self) -> i64 {
        self.inner.lock().size
    }

    fn evict(&self, keep: u64) -> Result<u64> {
        self.inner.lock().evict_to(keep)
    }

    fn stats(&self) -> FcmStats {
        let inner = self.inner.lock();
        FcmStats {
            size: inner.size,
            capacity: inner.capacity,
            ..inner.stats
        }
    }

    fn export(&self, format: u32) -> Result<*mut c_void> {
        if format != FORMAT_DESCRIPTORS {
            return Err(EINVAL);
        }
        let mut inner = self.inner.lock();
        let file = inner.file()?.as_raw();
        let count = inner.pages.iter().count();
        let mut pages = KVec::with_capacity(count, GFP_KERNEL)?;
        let mut state = KBox::new(
            DescriptorState {
                file,
                stats: FcmStats {
                    size: inner.size,
                    capacity: inner.capacity,
                    ..inner.stats
                },
                count: 0,
                pages: core::ptr::null_mut(),
            },
            GFP_KERNEL,
        )?;
        // Nothing can fail from here: move every page into the state.
        while let Some(cursor) = inner.pages.cursor_front_mut() {
            let (_, node) = cursor.remove_current();
            let (index, cached) = node.to_key_value();
            // Capacity was reserved for every page above.
            let _ = pages.push(
                PageDescriptor {
                    index,
                    page: cached.page.into_raw(),
                    dirty: u32::from(cached.dirty),
                    referenced: 1,
                },
                GFP_KERNEL,
            );
        }
        let (ptr, len, _cap) = pages.into_raw_parts();
        state.count = len;
        state.pages = ptr;
        Ok(KBox::into_raw(state).cast())
    }

    fn import(&self, format: u32, state: *mut c_void) -> Result {
        if format != FORMAT_DESCRIPTORS || state.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: hotswap passes the state the exporter made in this format.
        let state = unsafe { &*state.cast::<DescriptorState>() };
        // SAFETY: `pages` holds `count` descriptors (see `export`).
        let descriptors = unsafe { core::slice::from_raw_parts(state.pages, state.count) };
        if descriptors.iter().any(|d| d.page.is_null()) {
            return Err(EINVAL);
        }
        let mut inner = self.inner.lock();
        // SAFETY: The exporter holds the file until the transfer ends.
        let file = unsafe { BackingFile::new(state.file) };
        let mut pages = RBTree::new();
        for d in descriptors {
            // Borrowed: the pages stay the exporter's until `release`
            // says the import took them; tree nodes are allocated first.
            pages
                .try_create_and_insert(
                    d.index,
                    Cached {
                        // SAFETY: A page from the exporter's `into_raw`, checked
                        // non-NULL above; if the import fails, `forget_all`
                        // gives it back without freeing it.
                        page: unsafe { CachePage::from_raw(d.page) }.ok_or(EINVAL)?,
                        dirty: d.dirty != 0,
                        stamp: 0,
                    },
                    GFP_KERNEL,
                )
                .inspect_err(|_| forget_all(&mut pages))?;
        }
        inner.file = Some(file);
        inner.pages = pages;
        inner.size = state.stats.size;
        inner.capacity = state.stats.capacity;
        inner.stats = state.stats;
        Ok(())
    }

    fn release(&self, format: u32, state: *mut c_void, taken: bool) {
        if format != FORMAT_DESCRIPTORS || state.is_null() {
            return;
        }
        // SAFETY: `state` is the one `export` made, released once.
        let state = unsafe { KBox::from_raw(state.cast::<DescriptorState>()) };
        // SAFETY: `export` made `pages` from a KVec of `count` elements.
        let pages = unsafe { KVec::from_raw_parts(state.pages, state.count, state.count) };
        if taken {
            return;
        }
        // The swap aborted: put every page back exactly as it was.
        let mut inner = self.inner.lock();
        for d in pages.iter() {
            // SAFETY: Pages from our own `export`, not taken by anyone.
            if let Some(page) = unsafe { CachePage::from_raw(d.page) } {
                let cached = Cached {
                    page,
                    dirty: d.dirty != 0,
                    stamp: 0,
                };
                if inner
                    .pages
                    .try_create_and_insert(d.index, cached, GFP_KERNEL)
                    .is_err()
                {
                    // Out of memory for a tree node: the page goes back to
                    // the file now rather than being lost.
                    pr_err!("fcm_shared: no memory to restore page {}\n", d.index);
                }
            }
        }
    }
}

/// Takes pages out of `pages` without freeing them (they still belong to
/// the exporter).
fn forget_all(pages: &mut RBTree<u64, Cached>) {
    while let Some(cursor) = pages.cursor_front_mut() {
        let (_, node) = cursor.remove_current();
        let (_, cached) = node.to_key_value();
        let _ = cached.page.into_raw();
    }
}

static METHODS: FcmOps = fcm_api::fcm_methods::<SharedFcm>();

impl api::Implementation for SharedFcm {
    const INTERFACE: &'static CStr = c"fcm";
    const NAME: &'static CStr = c"shared";

    fn ops() -> api::ImplOps {
        fcm_api::impl_ops::<SharedFcm>(&METHODS, &[FORMAT_DESCRIPTORS], &[FORMAT_DESCRIPTORS])
    }
}

struct FcmSharedModule {
    _registration: api::Registration,
}

impl kernel::Module for FcmSharedModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _registration: api::Registration::new::<SharedFcm>(module)?,
        })
    }
}

#[kunit_tests(fcm_shared)]
mod tests {
    use super::*;
    use api::Implementation;
    use kernel::bindings;

    extern "C" {
        /// An unlinked tmpfs file (hotswap.ko's `test_support.c`).
        fn hotswap_kunit_tmpfile(name: *const core::ffi::c_char) -> *mut core::ffi::c_void;
    }

    /// A real (tmpfs, unlinked) file, put on drop. Test threads have no
    /// path to the VM's filesystems, so the file has no path.
    struct TempFile(*mut bindings::file);

    impl TempFile {
        fn new(name: &CStr, content: &[u8]) -> Result<Self> {
            // SAFETY: A NUL-terminated name.
            let file: *mut bindings::file = unsafe { hotswap_kunit_tmpfile(name.as_ptr()) }.cast();
            if (file as isize) < 0 && (file as isize) >= -4095 {
                return Err(Error::from_errno(file as i32));
            }
            let mut pos = 0i64;
            // SAFETY: `file` is open; `content` is readable.
            let ret = unsafe {
                bindings::kernel_write(file, content.as_ptr().cast(), content.len(), &mut pos)
            };
            let this = Self(file);
            if ret != content.len() as isize {
                return Err(EIO);
            }
            Ok(this)
        }

        fn contents(&self) -> Result<KVec<u8>> {
            // SAFETY: The file is open and has an inode.
            let size = unsafe { (*(*self.0).f_inode).i_size } as usize;
            let mut out = KVec::from_elem(0u8, size, GFP_KERNEL)?;
            let mut pos = 0i64;
            // SAFETY: `out` is writable for `size` bytes.
            let ret =
                unsafe { bindings::kernel_read(self.0, out.as_mut_ptr().cast(), size, &mut pos) };
            if ret != size as isize {
                return Err(EIO);
            }
            Ok(out)
        }

        fn fcm(&self, capacity: u64) -> Result<KBox<SharedFcm>> {
            SharedFcm::create(&FcmCreate {
                file: self.0.cast(),
                capacity,
            })
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            // SAFETY: Made in `new`, put once.
            unsafe { bindings::fput(self.0) };
        }
    }

    /// Byte `i` of the test pattern (never zero, so holes show).
    fn pattern(i: usize) -> u8 {
        (i % 251) as u8 + 1
    }

    fn patterned(len: usize) -> Result<KVec<u8>> {
        let mut v = KVec::with_capacity(len, GFP_KERNEL)?;
        for i in 0..len {
            v.push(pattern(i), GFP_KERNEL)?;
        }
        Ok(v)
    }

    fn read(fcm: &SharedFcm, pos: i64, len: usize) -> Result<KVec<u8>> {
        let mut out = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        let n = fcm.read(pos, Buffer::Kernel(out.as_mut_ptr()), len)?;
        out.truncate(n);
        Ok(out)
    }

    fn write(fcm: &SharedFcm, pos: i64, data: &[u8]) -> Result<usize> {
        fcm.write(pos, Buffer::Kernel(data.as_ptr().cast_mut()), data.len())
    }

    fn balanced(s: &FcmStats) -> bool {
        s.allocated == s.freed + s.cached
    }

    #[test]
    fn registered_on_load() {
        assert!(api::impl_registered(SharedFcm::INTERFACE, SharedFcm::NAME));
    }

    #[test]
    fn miss_then_hit() -> Result {
        let content = patterned(3 * PAGE_SIZE)?;
        let file = TempFile::new(c"fcm_shared_hit", &content)?;
        let fcm = file.fcm(0)?;
        assert_eq!(&read(&fcm, 100, 200)?[..], &content[100..300]);
        let s = fcm.stats();
        assert_eq!((s.misses, s.hits, s.fills), (1, 0, 1));
        assert_eq!(&read(&fcm, 0, 3 * PAGE_SIZE)?[..], &content[..]);
        let s = fcm.stats();
        assert_eq!((s.misses, s.hits, s.fills, s.cached), (3, 1, 3, 3));
        fcm.destroy(false);
        Ok(())
    }

    #[test]
    fn reads_stop_at_eof() -> Result {
        let content = patterned(5000)?;
        let file = TempFile::new(c"fcm_shared_eof", &content)?;
        let fcm = file.fcm(0)?;
        assert_eq!(fcm.size(), 5000);
        assert_eq!(&read(&fcm, 4096, 8192)?[..], &content[4096..]);
        assert_eq!(read(&fcm, 6000, 10)?.len(), 0);
        assert_eq!(
            fcm.read(-1, Buffer::Kernel(core::ptr::null_mut()), 1),
            Err(EINVAL)
        );
        fcm.destroy(false);
        Ok(())
    }

    #[test]
    fn writes_past_eof_reach_the_file_on_sync() -> Result {
        let content = patterned(5000)?;
        let file = TempFile::new(c"fcm_shared_write", &content)?;
        let fcm = file.fcm(0)?;
        assert_eq!(write(&fcm, 10_000, b"hello")?, 5);
        assert_eq!(fcm.size(), 10_005);
        assert_eq!(file.contents()?.len(), 5000);
        assert_eq!(fcm.stats().dirty, 1);
        fcm.sync(0, i64::MAX)?;
        let on_disk = file.contents()?;
        assert_eq!(on_disk.len(), 10_005);
        assert_eq!(&on_disk[..5000], &content[..]);
        assert!(on_disk[5000..10_000].iter().all(|b| *b == 0));
        assert_eq!(&on_disk[10_000..], b"hello");
        assert_eq!(fcm.stats().dirty, 0);
        fcm.destroy(false);
        Ok(())
    }

    #[test]
    fn capacity_bound_evicts_and_accounts() -> Result {
        let content = patterned(16 * PAGE_SIZE)?;
        let file = TempFile::new(c"fcm_shared_evict", &content)?;
        let fcm = file.fcm(4)?;
        assert_eq!(&read(&fcm, 0, 16 * PAGE_SIZE)?[..], &content[..]);
        let s = fcm.stats();
        assert!(s.cached <= 4);
        assert!(s.evictions >= 12);
        assert!(balanced(&s));
        // Dirty pages are written back before they go.
        for i in 0..8 {
            write(&fcm, (i * PAGE_SIZE) as i64, b"dirty")?;
        }
        fcm.evict(0)?;
        let s = fcm.stats();
        assert_eq!((s.cached, s.dirty), (0, 0));
        assert!(balanced(&s));
        let on_disk = file.contents()?;
        for i in 0..8 {
            assert_eq!(&on_disk[i * PAGE_SIZE..i * PAGE_SIZE + 5], b"dirty");
        }
        fcm.destroy(false);
        Ok(())
    }

    #[test]
    fn closing_writes_back() -> Result {
        let file = TempFile::new(c"fcm_shared_close", b"0123456789")?;
        let fcm = file.fcm(0)?;
        write(&fcm, 2, b"ab")?;
        fcm.destroy(false);
        assert_eq!(&file.contents()?[..], b"01ab456789");
        Ok(())
    }

    #[test]
    fn descriptor_transfer_moves_pages_without_rereading() -> Result {
        let content = patterned(4 * PAGE_SIZE)?;
        let file = TempFile::new(c"fcm_shared_xfer", &content)?;
        let old = file.fcm(0)?;
        read(&old, 0, 3 * PAGE_SIZE)?;
        write(&old, 5, b"moved")?;
        let state = old.export(FORMAT_DESCRIPTORS)?;
        let new = SharedFcm::create_empty()?;
        new.import(FORMAT_DESCRIPTORS, state)?;
        old.release(FORMAT_DESCRIPTORS, state, true);
        old.destroy(true);
        let before = new.stats();
        assert_eq!((before.cached, before.dirty, before.fills), (3, 1, 3));
        // Cached pages are hits: nothing is read again because of the swap.
        assert_eq!(&read(&new, 5, 5)?[..], b"moved");
        assert_eq!(
            &read(&new, PAGE_SIZE as i64, 2 * PAGE_SIZE)?[..],
            &content[PAGE_SIZE..3 * PAGE_SIZE]
        );
        assert_eq!(new.stats().fills, 3);
        new.sync(0, i64::MAX)?;
        assert_eq!(&file.contents()?[5..10], b"moved");
        assert!(balanced(&new.stats()));
        new.destroy(false);
        Ok(())
    }

    #[test]
    fn aborted_transfer_restores_the_old_cache() -> Result {
        let content = patterned(2 * PAGE_SIZE)?;
        let file = TempFile::new(c"fcm_shared_abort", &content)?;
        let old = file.fcm(0)?;
        read(&old, 0, 2 * PAGE_SIZE)?;
        write(&old, 0, b"kept")?;
        let state = old.export(FORMAT_DESCRIPTORS)?;
        assert_eq!(old.import(7, state), Err(EINVAL));
        old.release(FORMAT_DESCRIPTORS, state, false);
        let s = old.stats();
        assert_eq!((s.cached, s.dirty, s.fills), (2, 1, 2));
        assert_eq!(&read(&old, 0, 4)?[..], b"kept");
        assert_eq!(old.stats().fills, 2);
        old.destroy(false);
        assert_eq!(&file.contents()?[..4], b"kept");
        Ok(())
    }
}
