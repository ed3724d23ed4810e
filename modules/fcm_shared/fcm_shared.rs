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
#[path = "../../rust/hotswap/fcm_conformance.rs"]
pub mod fcm_conformance;
#[path = "../../rust/hotswap/fcm_pages.rs"]
pub mod fcm_pages;

use core::ffi::c_void;
use fcm_api::{Buffer, FcmCreate, FcmImpl, FcmOps, FcmStats, FORMAT_DESCRIPTORS, PAGE_SIZE};
use fcm_pages::{BackingFile, CachePage, DescriptorExport};

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
        let end = fcm_pages::byte_range(pos, len)?;
        let mut inner = self.inner.lock();
        let end = end.min(inner.size);
        for c in fcm_pages::chunks(pos, end) {
            let cached = inner.page(c.index, true)?;
            cached
                .page
                .with_bytes(|bytes| buf.put(c.at, &bytes[c.offset..c.offset + c.len]))?;
        }
        inner.respect_capacity()?;
        Ok((end.max(pos) - pos) as usize)
    }

    fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = fcm_pages::byte_range(pos, len)?;
        let mut inner = self.inner.lock();
        inner.file()?;
        for c in fcm_pages::chunks(pos, end) {
            let cached = inner.page(c.index, c.len != PAGE_SIZE)?;
            cached
                .page
                .with_bytes(|bytes| buf.get(c.at, &mut bytes[c.offset..c.offset + c.len]))?;
            let newly_dirty = !cached.dirty;
            cached.dirty = true;
            if newly_dirty {
                inner.stats.dirty += 1;
            }
            inner.size = inner.size.max(pos + (c.at + c.len) as i64);
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
        let stats = FcmStats {
            size: inner.size,
            capacity: inner.capacity,
            ..inner.stats
        };
        let count = inner.pages.iter().count();
        let mut export = DescriptorExport::new(inner.file()?.as_raw(), stats, count)?;
        while let Some(cursor) = inner.pages.cursor_front_mut() {
            let (_, node) = cursor.remove_current();
            let (index, cached) = node.to_key_value();
            export.push(index, cached.page, cached.dirty, true);
        }
        Ok(export.finish())
    }

    fn import(&self, format: u32, state: *mut c_void) -> Result {
        if format != FORMAT_DESCRIPTORS {
            return Err(EINVAL);
        }
        // SAFETY: hotswap passes the state the exporter made in this format.
        let (state, descriptors) = unsafe { fcm_pages::descriptors(state)? };
        let mut inner = self.inner.lock();
        // SAFETY: The exporter holds the file until the transfer ends.
        let file = unsafe { BackingFile::new(state.file) };
        let mut pages = RBTree::new();
        for d in descriptors {
            // SAFETY: A page from the exporter's `push`, checked non-NULL;
            // if the import fails, `forget_all` gives it back unfreed.
            let page = unsafe { CachePage::from_raw(d.page) }.ok_or(EINVAL)?;
            let cached = Cached {
                page,
                dirty: d.dirty != 0,
                stamp: 0,
            };
            pages
                .try_create_and_insert(d.index, cached, GFP_KERNEL)
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
        if format != FORMAT_DESCRIPTORS {
            return;
        }
        let mut inner = self.inner.lock();
        // SAFETY: `state` is the one `export` made, released once.
        unsafe {
            fcm_pages::release_descriptors(state, taken, |index, page, dirty, _| {
                let cached = Cached {
                    page,
                    dirty,
                    stamp: 0,
                };
                if inner
                    .pages
                    .try_create_and_insert(index, cached, GFP_KERNEL)
                    .is_err()
                {
                    pr_err!("no memory to restore page {}; it is lost\n", index);
                }
            })
        };
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
    use fcm_conformance as c;

    #[test]
    fn registered_on_load() {
        assert!(api::impl_registered(SharedFcm::INTERFACE, SharedFcm::NAME));
    }

    #[test]
    fn miss_then_hit() -> Result {
        c::miss_then_hit::<SharedFcm>()
    }

    #[test]
    fn reads_stop_at_eof() -> Result {
        c::reads_stop_at_eof::<SharedFcm>()
    }

    #[test]
    fn writes_past_eof_reach_the_file_on_sync() -> Result {
        c::writes_past_eof_reach_the_file_on_sync::<SharedFcm>()
    }

    #[test]
    fn capacity_bound_evicts_and_accounts() -> Result {
        c::capacity_bound_evicts_and_accounts::<SharedFcm>()
    }

    #[test]
    fn closing_writes_back() -> Result {
        c::closing_writes_back::<SharedFcm>()
    }

    #[test]
    fn descriptor_transfer_moves_pages_without_rereading() -> Result {
        c::descriptor_transfer_moves_pages_without_rereading::<SharedFcm>()
    }

    #[test]
    fn aborted_transfer_restores_the_old_cache() -> Result {
        c::aborted_transfer_restores_the_old_cache::<SharedFcm>()
    }
}
