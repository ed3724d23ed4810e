// SPDX-License-Identifier: GPL-2.0
//! The single-lock page cache: one mutex around one page map, LRU by
//! access stamp. `fcm_shared` is this cache behind the FCM interface; the
//! fault-injection FCM (`tests/faults/fcm_faulty.rs`) is the same cache
//! with fault knobs in front, so its faults hit real FCM behaviour.
//!
//! Pages live in the page map (`fcm_pages.rs`: an XArray by index), which
//! a swap hands over whole. Each access stamps the page with a clock tick;
//! when the cache grows past its capacity, one scan picks the least
//! recently used eighth and evicts it (dirty pages are written back
//! first), so eviction costs O(1) per page amortized.

use crate::fcm_api::{Buffer, FcmStats, FORMAT_DESCRIPTORS, FORMAT_PAGEMAP, PAGE_SIZE};
use crate::fcm_pages::{self, BackingFile, CachePage, DescriptorExport, Entry, PageMap};
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::atomic::Relaxed;
use kernel::sync::{new_mutex, Mutex};

const PAGE: i64 = PAGE_SIZE as i64;

/// The cache's state, under its one lock.
struct Inner {
    /// `None` only in an empty replacement before its import.
    file: Option<BackingFile>,
    pages: PageMap,
    size: i64,
    capacity: u64,
    clock: u64,
    stats: FcmStats,
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

    fn counters(&self) -> FcmStats {
        FcmStats {
            size: self.size,
            capacity: self.capacity,
            ..self.stats
        }
    }
}

/// A page cache of one backing file behind one lock. Its methods are the
/// FCM interface's ([`crate::fcm_api::FcmImpl`]), minus creation.
pub struct LockedCache {
    inner: Pin<KBox<Mutex<Inner>>>,
}

impl LockedCache {
    /// A cache of `file` (`None`: an empty replacement awaiting import)
    /// holding at most `capacity` pages (0: no bound).
    pub fn new(file: Option<BackingFile>, capacity: u64) -> Result<Self> {
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
        Ok(Self { inner })
    }

    /// Ends the cache: unless `quiet`, writes dirty pages back and syncs.
    pub fn destroy(&self, quiet: bool) {
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

    /// Reads up to `len` bytes at `pos` into `buf`.
    pub fn read(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
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

    /// Writes `len` bytes from `buf` at `pos`.
    pub fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
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

    /// Writes dirty pages in `[start, end]` back and syncs the file.
    pub fn sync(&self, start: i64, end: i64) -> Result {
        if start < 0 || end < start {
            return Err(EINVAL);
        }
        let mut inner = self.inner.lock();
        inner.write_back_range((start / PAGE) as u64, (end / PAGE) as u64)?;
        let size = inner.size;
        inner.file()?.sync(start, end.min(size))
    }

    /// The file size as the cache sees it.
    pub fn size(&self) -> i64 {
        self.inner.lock().size
    }

    /// Evicts until at most `keep` pages are cached.
    pub fn evict(&self, keep: u64) -> Result<u64> {
        self.inner.lock().evict_to(keep)
    }

    /// The counters.
    pub fn stats(&self) -> FcmStats {
        self.inner.lock().counters()
    }

    /// Writes back through `file` (a live `struct file *`) from now on.
    ///
    /// # Safety
    ///
    /// `file` points to a live `struct file` for the call.
    pub unsafe fn set_file(&self, file: *mut c_void) {
        // SAFETY: The caller promises a live file.
        let file = unsafe { BackingFile::new(file) };
        self.inner.lock().file = Some(file);
    }

    /// Moves the state out in `format`.
    pub fn export(&self, format: u32) -> Result<*mut c_void> {
        let mut inner = self.inner.lock();
        let stats = inner.counters();
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

    /// Adopts a state exported in `format`.
    ///
    /// # Safety
    ///
    /// `state` is a live state of `format` from an FCM's export.
    pub unsafe fn import(&self, format: u32, state: *mut c_void) -> Result {
        let (file, stats, pages) = match format {
            // SAFETY: The caller promises a live state of this format.
            FORMAT_PAGEMAP => unsafe { fcm_pages::import_map(state)? },
            // SAFETY: As above.
            FORMAT_DESCRIPTORS => unsafe { fcm_pages::import_descriptors(state)? },
            _ => return Err(EINVAL),
        };
        self.adopt(file, stats, pages);
        Ok(())
    }

    /// Takes over `file`, counters `stats` and `pages`: the parts of an
    /// imported state.
    pub fn adopt(&self, file: BackingFile, stats: FcmStats, pages: PageMap) {
        let mut inner = self.inner.lock();
        inner.file = Some(file);
        inner.pages = pages;
        inner.size = stats.size;
        inner.capacity = stats.capacity;
        inner.stats = stats;
    }

    /// Ends a transfer: frees `state`; if not `taken`, takes back what
    /// `export` moved out.
    ///
    /// # Safety
    ///
    /// `state` is the one this cache's `export` made, released once.
    pub unsafe fn release(&self, format: u32, state: *mut c_void, taken: bool) {
        let mut inner = self.inner.lock();
        // SAFETY: The caller's contract.
        unsafe { fcm_pages::release_state(format, state, taken, &mut inner.pages) };
    }
}
