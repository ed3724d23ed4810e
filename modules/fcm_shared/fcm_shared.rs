// SPDX-License-Identifier: GPL-2.0
//! `fcm_shared`: the File Cache Manager for one CPU — one lock, one map,
//! one LRU order. The cheapest FCM in memory and on a single CPU; every
//! call takes the one mutex, so several CPUs hitting it queue up (which is
//! what `fcm_distributed` is for).
//!
//! Pages live in the page map (fcm_pages.rs: an XArray by index), which a
//! swap hands over whole. Each access stamps the page
//! with a clock tick; when the cache grows past its capacity, one scan
//! picks the least recently used eighth and evicts it (dirty pages are
//! written back first), so eviction costs O(1) per page amortized.

use kernel::prelude::*;
use kernel::sync::atomic::Relaxed;
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
use fcm_api::{
    Buffer, FcmCreate, FcmImpl, FcmOps, FcmStats, FORMAT_DESCRIPTORS, FORMAT_PAGEMAP, PAGE_SIZE,
};
use fcm_pages::{BackingFile, CachePage, DescriptorExport, Entry, PageMap};

module! {
    type: FcmSharedModule,
    name: "fcm_shared",
    authors: ["hotswap developers"],
    description: "hotswap File Cache Manager: shared (single lock) implementation",
    license: "GPL",
}

const PAGE: i64 = PAGE_SIZE as i64;

struct Inner {
    /// `None` only in an empty replacement before its import.
    file: Option<BackingFile>,
    pages: PageMap,
    size: i64,
    capacity: u64,
    clock: u64,
    stats: FcmStats,
}

/// The `fcm`/`shared` implementation.
pub struct SharedFcm {
    inner: Pin<KBox<Mutex<Inner>>>,
}

impl Inner {
    fn file(&self) -> Result<&BackingFile> {
        self.file.as_ref().ok_or(EBADF)
    }

    /// The cached page `index`, brought in on a miss. `fill` is false when
    /// the caller overwrites the whole page (no read needed).
    fn page(&mut self, index: u64, fill: bool) -> Result<&Entry> {
        self.clock += 1;
        let stamp = self.clock;
        if self.pages.get(index).is_some() {
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
            let inserted = Entry::boxed(page, false, true)
                .and_then(|e| self.pages.insert(index, e).map(|_| ()));
            if let Err(err) = inserted {
                self.stats.freed += 1;
                return Err(err);
            }
            self.stats.cached += 1;
        }
        let entry = self.pages.get(index).ok_or(EINVAL)?;
        entry.stamp.store(stamp, Relaxed);
        Ok(entry)
    }

    /// Bytes of page `index` that belong to the file.
    fn valid_len(&self, index: u64) -> usize {
        let start = index as i64 * PAGE;
        (self.size - start).clamp(0, PAGE) as usize
    }

    fn write_back_one(&mut self, index: u64) -> Result {
        let len = self.valid_len(index);
        let file = self.file.as_ref().ok_or(EBADF)?;
        if let Some(entry) = self.pages.get(index) {
            if entry.dirty.load(Relaxed) {
                file.write_back(index, &entry.page, len)?;
                entry.dirty.store(false, Relaxed);
                self.stats.dirty -= 1;
                self.stats.writebacks += 1;
            }
        }
        Ok(())
    }

    fn write_back_range(&mut self, first: u64, last: u64) -> Result {
        let mut dirty = KVec::new();
        let mut failed = None;
        self.pages.for_each(|index, entry| {
            if entry.dirty.load(Relaxed) && (first..=last).contains(&index) {
                if let Err(err) = dirty.push(index, GFP_KERNEL) {
                    failed = Some(err);
                }
            }
        });
        if let Some(err) = failed {
            return Err(err.into());
        }
        for index in dirty {
            self.write_back_one(index)?;
        }
        Ok(())
    }

    fn evict_one(&mut self, index: u64) -> Result {
        self.write_back_one(index)?;
        if self.pages.remove(index).is_some() {
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
        let mut by_age = KVec::with_capacity(self.pages.len() as usize, GFP_KERNEL)?;
        self.pages.for_each(|index, entry| {
            // Capacity is the number of entries.
            let _ = by_age.push_within_capacity((entry.stamp.load(Relaxed), index));
        });
        let excess = excess.min(by_age.len());
        if excess == 0 {
            return Ok(0);
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
        self.stats.freed += self.pages.len();
        self.stats.cached = 0;
        self.stats.dirty = 0;
        self.pages.clear();
    }
}

impl SharedFcm {
    fn new(file: Option<BackingFile>, capacity: u64) -> Result<KBox<Self>> {
        let size = file.as_ref().map_or(0, |f| f.size());
        let inner = KBox::pin_init(
            new_mutex!(Inner {
                file,
                pages: PageMap::new()?,
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
            let entry = inner.page(c.index, true)?;
            entry
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
            let entry = inner.page(c.index, c.len != PAGE_SIZE)?;
            entry
                .page
                .with_bytes(|bytes| buf.get(c.at, &mut bytes[c.offset..c.offset + c.len]))?;
            if !entry.dirty.xchg(true, Relaxed) {
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

    fn set_file(&self, file: *mut c_void) -> Result {
        // SAFETY: hotswap passes a live file for the call.
        let file = unsafe { BackingFile::new(file) };
        self.inner.lock().file = Some(file);
        Ok(())
    }

    fn export(&self, format: u32) -> Result<*mut c_void> {
        let mut inner = self.inner.lock();
        let stats = FcmStats {
            size: inner.size,
            capacity: inner.capacity,
            ..inner.stats
        };
        let file = inner.file()?.as_raw();
        match format {
            // The whole map changes hands: O(1), whatever the size.
            FORMAT_PAGEMAP => fcm_pages::export_map(file, stats, &mut inner.pages),
            FORMAT_DESCRIPTORS => {
                let mut export = DescriptorExport::new(file, stats, inner.pages.len() as usize)?;
                while let Some((index, entry)) = inner.pages.pop_first() {
                    let Entry { page, dirty, .. } = KBox::into_inner(entry);
                    export.push(index, page, dirty.load(Relaxed), true);
                }
                Ok(export.finish())
            }
            _ => Err(EINVAL),
        }
    }

    fn import(&self, format: u32, state: *mut c_void) -> Result {
        let mut inner = self.inner.lock();
        let (file, stats, pages) = match format {
            // SAFETY: hotswap passes the state the exporter made.
            FORMAT_PAGEMAP => unsafe { fcm_pages::import_map(state)? },
            // SAFETY: As above.
            FORMAT_DESCRIPTORS => unsafe { fcm_pages::import_descriptors(state)? },
            _ => return Err(EINVAL),
        };
        inner.file = Some(file);
        inner.pages = pages;
        inner.size = stats.size;
        inner.capacity = stats.capacity;
        inner.stats = stats;
        Ok(())
    }

    fn release(&self, format: u32, state: *mut c_void, taken: bool) {
        let mut inner = self.inner.lock();
        // SAFETY: `state` is the one `export` made, released once.
        unsafe { fcm_pages::release_state(format, state, taken, &mut inner.pages) };
    }
}

static METHODS: FcmOps = fcm_api::fcm_methods::<SharedFcm>();

impl api::Implementation for SharedFcm {
    const INTERFACE: &'static CStr = c"fcm";
    const NAME: &'static CStr = c"shared";

    fn ops() -> api::ImplOps {
        let formats = [FORMAT_PAGEMAP, FORMAT_DESCRIPTORS];
        fcm_api::impl_ops::<SharedFcm>(&METHODS, &formats, &formats)
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
    fn set_file_moves_write_back() -> Result {
        c::set_file_moves_write_back::<SharedFcm>()
    }

    #[test]
    fn descriptor_transfer_moves_pages_without_rereading() -> Result {
        c::descriptor_transfer_moves_pages_without_rereading::<SharedFcm>()
    }

    #[test]
    fn aborted_transfer_restores_the_old_cache() -> Result {
        c::aborted_transfer_restores_the_old_cache::<SharedFcm>()
    }

    #[test]
    fn pagemap_transfer_hands_the_map_over() -> Result {
        c::pagemap_transfer_hands_the_map_over::<SharedFcm>()
    }

    #[test]
    fn aborted_pagemap_transfer_restores_the_map() -> Result {
        c::aborted_pagemap_transfer_restores_the_map::<SharedFcm>()
    }
}
