// SPDX-License-Identifier: GPL-2.0
//! The single-lock page cache: one mutex around one page map, LRU by
//! access stamp. `fcm_shared` is this cache behind the FCM interface; the
//! fault-injection FCM (`tests/faults/fcm_faulty.rs`) is the same cache
//! with fault knobs in front, so its faults hit real FCM behaviour.
//!
//! Pages live in the page map (`fcm_pages.rs`: an XArray by index), which
//! a swap hands over whole. Each access stamps the page with a clock tick;
//! when a miss finds the cache at its capacity, one scan picks the least
//! recently used eighth and evicts it (dirty pages are written back
//! first), so eviction costs O(log n) per page amortized.
//!
//! Writes are staged outside the lock a page at a time (`fcm_pages::Stager`):
//! a chunk lands whole or not at all, so a faulting user buffer leaves the
//! cache exactly as far as the write got. A dirty page whose write-back
//! fails stays cached and dirty (the error is counted for the next `fsync`
//! and `close` of every opener); eviction passes it over, and a miss that
//! finds no room because of such pages fails with that error.

use crate::fcm_api::{
    Buffer, FcmStats, MapsHandle, EVICT_RECLAIM, EVICT_REVALIDATE, FORMAT_DESCRIPTORS,
    FORMAT_PAGEMAP, PAGE_SIZE, SYNC_FILE,
};
use crate::fcm_pages::{
    self, partial, whole_page, BackingFile, CachePage, Chunk, DescriptorExport, Entry, PageMap,
    Stager,
};
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_mutex, Mutex, MutexGuard};

const PAGE: i64 = PAGE_SIZE as i64;

/// The cache's state, under its one lock.
struct Inner {
    /// `None` only in an empty replacement before its import.
    file: Option<BackingFile>,
    pages: PageMap,
    size: i64,
    capacity: u64,
    clock: u64,
    /// Bumped whenever the file's bytes change under the cache (a page
    /// written back, a truncation, another file): a page filled with the
    /// lock dropped is stale if it moved meanwhile.
    io_seq: u64,
    stats: FcmStats,
}

impl Inner {
    fn file(&self) -> Result<&BackingFile> {
        self.file.as_ref().ok_or(EBADF)
    }

    /// Stamps page `index` as just used.
    fn touch(&mut self, index: u64) -> Result<&Entry> {
        self.clock += 1;
        let entry = self.pages.get(index).ok_or(EINVAL)?;
        entry.stamp.store(self.clock, Relaxed);
        entry.referenced.store(true, Relaxed);
        Ok(entry)
    }

    /// Room for one more page: at the capacity, evicts the least recently
    /// used eighth (at least one page). Fails with the write-back error if
    /// dirty pages that cannot be written back leave no room.
    fn make_room(&mut self) -> Result {
        if self.capacity == 0 || self.stats.cached < self.capacity {
            return Ok(());
        }
        let keep = self.capacity - (self.capacity / 8).max(1);
        self.evict_to(keep)?;
        if self.stats.cached < self.capacity {
            Ok(())
        } else {
            Err(EIO)
        }
    }

    /// Caches `page` as page `index` (a miss), making room first;
    /// `dirty`: the bytes `(offset, len)` a write changed in it.
    fn insert(&mut self, index: u64, page: CachePage, dirty: Option<(usize, usize)>) -> Result {
        self.make_room()?;
        self.pages.insert(index, Entry::boxed(page, dirty, true)?)?;
        self.stats.allocated += 1;
        self.stats.cached += 1;
        if dirty.is_some() {
            self.stats.dirty += 1;
        }
        Ok(())
    }

    /// A new page for `index` holding the file's bytes (zeros past EOF).
    fn filled(&mut self, index: u64) -> Result<CachePage> {
        let mut page = CachePage::alloc()?;
        if (index as i64) * PAGE < self.size {
            self.file()?.fill(index, &mut page)?;
            self.stats.fills += 1;
        }
        Ok(page)
    }

    /// The cached page `index`, brought in from the file on a miss.
    fn page_for_read(&mut self, index: u64) -> Result<&Entry> {
        if self.pages.get(index).is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
            let page = self.filled(index)?;
            self.insert(index, page, None)?;
        }
        self.touch(index)
    }

    /// Lands chunk `c` of a write, staged in `staged`, in the cache. Gives
    /// the staging page back unless it became the cached page (a whole
    /// page missing from the cache).
    fn store(&mut self, c: &Chunk, staged: CachePage) -> Result<Option<CachePage>> {
        let spare = if let Some(entry) = self.pages.get(c.index) {
            self.stats.hits += 1;
            entry.page.copy_from_page(&staged, c.offset, c.len);
            entry.add_dirty(c.offset, c.len);
            if !entry.dirty.xchg(true, Relaxed) {
                self.stats.dirty += 1;
            }
            Some(staged)
        } else {
            self.stats.misses += 1;
            if whole_page(c) {
                self.insert(c.index, staged, Some((c.offset, c.len)))?;
                None
            } else {
                let page = self.filled(c.index)?;
                page.copy_from_page(&staged, c.offset, c.len);
                self.insert(c.index, page, Some((c.offset, c.len)))?;
                Some(staged)
            }
        };
        self.touch(c.index)?;
        let end = (c.index as i64) * PAGE + (c.offset + c.len) as i64;
        self.size = self.size.max(end);
        Ok(spare)
    }

    /// Bytes of page `index` that belong to the file.
    fn valid_len(&self, index: u64) -> usize {
        let start = index as i64 * PAGE;
        (self.size - start).clamp(0, PAGE) as usize
    }

    fn write_back_one(&mut self, index: u64) -> Result {
        let len = self.valid_len(index);
        let result = match (self.file.as_ref(), self.pages.get(index)) {
            (Some(file), Some(entry)) if entry.dirty.load(Relaxed) => {
                // Under the lock: no writer can change the bytes meanwhile.
                let (from, to) = entry.take_dirty();
                let written = file.write_back(index, &entry.page, from, to.min(len));
                match written {
                    Ok(()) => entry.dirty.store(false, Relaxed),
                    Err(_) => entry.restore_dirty((from, to)),
                }
                written
            }
            (None, Some(entry)) if entry.dirty.load(Relaxed) => Err(EBADF),
            _ => return Ok(()),
        };
        match result {
            Ok(()) => {
                self.stats.dirty -= 1;
                self.stats.writebacks += 1;
                self.io_seq += 1;
            }
            Err(err) if fcm_pages::reportable(err) => {
                self.stats.wb_errors += 1;
                self.stats.wb_errno = err.to_errno().into();
            }
            Err(_) => {}
        }
        result
    }

    /// Writes back every dirty page in `[first, last]`, each one it can;
    /// the first error, if any.
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
        let mut result = Ok(());
        for index in dirty {
            if let Err(err) = self.write_back_one(index) {
                result = result.and(Err(err));
            }
        }
        result
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

    /// Evicts least recently used pages until at most `keep` are cached,
    /// passing over dirty pages whose write-back fails. Fails with that
    /// error only if they kept it from reaching `keep`.
    fn evict_to(&mut self, keep: u64) -> Result<u64> {
        let excess = self.stats.cached.saturating_sub(keep);
        if excess == 0 {
            return Ok(0);
        }
        let mut by_age = KVec::with_capacity(self.pages.len() as usize, GFP_KERNEL)?;
        self.pages.for_each(|index, entry| {
            // Capacity is the number of entries.
            let _ = by_age.push_within_capacity((entry.stamp.load(Relaxed), index));
        });
        // The oldest `excess` first; the rest (newer, in no order) only
        // stand in for pages whose write-back failed.
        let excess_len = (excess as usize).min(by_age.len());
        if excess_len > 0 {
            by_age.select_nth_unstable(excess_len - 1);
        }
        let mut evicted = 0;
        let mut failed = None;
        for (_, index) in by_age {
            if evicted == excess {
                break;
            }
            match self.evict_one(index) {
                Ok(()) => evicted += 1,
                Err(err) => failed = Some(err),
            }
        }
        match failed {
            Some(err) if evicted < excess => Err(err),
            _ => Ok(evicted),
        }
    }

    /// Reclaim ([`EVICT_RECLAIM`]): frees clean pages, least recently used
    /// first, until at most `keep` are cached or no clean page is left;
    /// writes nothing back and allocates nothing. Pages older than a
    /// threshold go; the threshold moves from the oldest stamp toward the
    /// clock, in proportion to what is wanted, until enough went.
    fn reclaim(&mut self, keep: u64) -> u64 {
        let want = self.stats.cached.saturating_sub(keep);
        if want == 0 {
            return 0;
        }
        let mut oldest = u64::MAX;
        self.pages
            .for_each(|_, e| oldest = oldest.min(e.stamp.load(Relaxed)));
        let span = self.clock.saturating_sub(oldest).saturating_add(1);
        let cached = self.stats.cached.max(1);
        let mut freed = 0;
        for step in 0..5u32 {
            // span * wanted / cached, without 128-bit division (which the
            // kernel does not link) and without overflow.
            let wanted = want.min(cached) << (2 * step);
            let reach = (span / cached)
                .saturating_mul(wanted)
                .saturating_add((span % cached).saturating_mul(wanted) / cached)
                .min(span);
            let threshold = oldest.saturating_add(reach);
            let (n, _) = self.pages.reclaim_clean(want - freed, 0, true, |_, e| {
                e.stamp.load(Relaxed) <= threshold
            });
            freed += n;
            if freed >= want || reach == span {
                break;
            }
        }
        self.stats.cached -= freed;
        self.stats.freed += freed;
        self.stats.evictions += freed;
        freed
    }

    /// Sets the size: the backing file's first, then the cache's (pages
    /// past the end go, the last page's tail is zeroed).
    fn truncate(&mut self, size: i64) -> Result {
        if size < 0 {
            return Err(EINVAL);
        }
        self.file()?.truncate(size)?;
        self.io_seq += 1;
        if size < self.size {
            let first_gone = (size as u64).div_ceil(PAGE as u64);
            while let Some((_, entry)) = self.pages.pop_from(first_gone) {
                if entry.dirty.load(Relaxed) {
                    self.stats.dirty -= 1;
                }
                self.stats.cached -= 1;
                self.stats.freed += 1;
            }
            if size % PAGE != 0 {
                if let Some(entry) = self.pages.get((size / PAGE) as u64) {
                    entry.page.zero_from((size % PAGE) as usize);
                }
            }
        }
        self.size = size;
        Ok(())
    }

    /// [`EVICT_REVALIDATE`]: the file changed behind the cache. Clean
    /// pages go (a fill in flight is stale: `io_seq`); with no dirty page
    /// left, the size is the file's.
    fn revalidate(&mut self) -> u64 {
        let (freed, _) = self.pages.reclaim_clean(u64::MAX, 0, false, |_, _| true);
        self.stats.cached -= freed;
        self.stats.freed += freed;
        self.io_seq += 1;
        if self.stats.dirty == 0 {
            if let Some(file) = self.file.as_ref() {
                self.size = file.size();
            }
        }
        freed
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
    /// Pages in the map as of the last unlock, for [`LockedCache::pages`].
    cached: Atomic<u64>,
}

/// The cache's lock, held: publishes the page count when released.
struct Locked<'a> {
    guard: MutexGuard<'a, Inner>,
    cached: &'a Atomic<u64>,
}

impl core::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl core::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.cached.store(self.guard.pages.len(), Relaxed);
    }
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
                io_seq: 0,
                stats: FcmStats::default(),
            }),
            GFP_KERNEL,
        )?;
        Ok(Self {
            inner,
            cached: Atomic::new(0),
        })
    }

    fn lock(&self) -> Locked<'_> {
        Locked {
            guard: fcm_pages::lock_counted(&self.inner, |inner| inner.stats.lock_waits += 1),
            cached: &self.cached,
        }
    }

    /// Pages cached, without taking the lock.
    pub fn pages(&self) -> u64 {
        self.cached.load(Relaxed)
    }

    /// Ends the cache: unless `quiet`, writes dirty pages back first.
    pub fn destroy(&self, quiet: bool) {
        let mut inner = self.lock();
        if !quiet && inner.file.is_some() {
            if let Err(err) = inner.write_back_range(0, u64::MAX) {
                pr_err!(
                    "write-back at the last close failed ({:?}): {} dirty page(s) lost\n",
                    err,
                    inner.stats.dirty
                );
            }
        }
        inner.discard_pages();
    }

    /// Reads up to `len` bytes at `pos` into `buf`.
    pub fn read(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = fcm_pages::byte_range(pos, len)?.min(self.size());
        let mut done = 0;
        for c in fcm_pages::chunks(pos, end) {
            let copied = fcm_pages::read_chunk(&c, buf, |len| {
                let mut inner = self.lock();
                let mut inserted = false;
                if inner.pages.get(c.index).is_none() {
                    // Filled with the lock dropped (see `BackingFile::page_of`).
                    let (file, size, seq) = (inner.file()?.clone(), inner.size, inner.io_seq);
                    drop(inner);
                    let filled = file.page_of(c.index, size);
                    inner = self.lock();
                    let (page, read) = filled?;
                    if inner.pages.get(c.index).is_none() && inner.io_seq == seq {
                        inner.stats.misses += 1;
                        inner.stats.fills += u64::from(read);
                        inner.insert(c.index, page, None)?;
                        inserted = true;
                    }
                }
                // Else a hit, or a miss the file moved under: filled locked.
                let entry = if inserted {
                    inner.touch(c.index)?
                } else {
                    inner.page_for_read(c.index)?
                };
                Ok(entry.page.copy_out(c.offset, len, buf, c.at))
            });
            match copied {
                Ok(n) if n == c.len => done += n,
                Ok(n) => return partial(done + n, EFAULT),
                Err(err) => return partial(done, err),
            }
        }
        Ok(done)
    }

    /// Lends page `index` to a fault that maps it (see
    /// [`crate::fcm_api::FcmOps::page`]), bringing it in as a read would
    /// (filled under the lock: a fault is one page, and its filling
    /// elsewhere would need the stale-fill checks of `read`).
    pub fn page(&self, index: u64, maps: MapsHandle) -> Result<*mut c_void> {
        let mut inner = self.lock();
        if inner.file.is_none() {
            return Err(EBADF);
        }
        let start = i64::try_from(index).ok().and_then(|i| i.checked_mul(PAGE));
        if start.is_none_or(|start| start >= inner.size) {
            return Err(ENXIO);
        }
        Ok(inner.page_for_read(index)?.page.lend(index, maps))
    }

    /// Writes `len` bytes from `buf` at `pos`.
    pub fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = fcm_pages::byte_range(pos, len)?;
        let mut stager = Stager::default();
        let mut done = 0;
        for c in fcm_pages::chunks(pos, end) {
            let staged = match stager.stage(&c, buf) {
                Ok(page) => page,
                Err(err) => return partial(done, err),
            };
            let mut inner = self.lock();
            if inner.file.is_none() {
                return partial(done, EBADF);
            }
            match inner.store(&c, staged) {
                Ok(Some(page)) => stager.give_back(page),
                Ok(None) => {}
                Err(err) => return partial(done, err),
            }
            done += c.len;
        }
        Ok(done)
    }

    /// Writes dirty pages in `[start, end]` back and, with [`SYNC_FILE`],
    /// syncs the file.
    pub fn sync(&self, start: i64, end: i64, flags: u32) -> Result {
        if start < 0 || end < start {
            return Err(EINVAL);
        }
        let mut inner = self.lock();
        let written = inner.write_back_range((start / PAGE) as u64, (end / PAGE) as u64);
        if flags & SYNC_FILE == 0 {
            return written;
        }
        let synced = inner.file()?.sync(start, end);
        written.and(synced)
    }

    /// Sets the file's size.
    pub fn truncate(&self, size: i64) -> Result {
        self.lock().truncate(size)
    }

    /// The file size as the cache sees it.
    pub fn size(&self) -> i64 {
        self.lock().size
    }

    /// Evicts until at most `keep` pages are cached (see
    /// [`crate::fcm_api::FcmOps::evict`] for `flags`).
    pub fn evict(&self, keep: u64, flags: u32) -> Result<u64> {
        if flags & EVICT_REVALIDATE != 0 {
            return Ok(self.lock().revalidate());
        }
        if flags & EVICT_RECLAIM == 0 {
            return self.lock().evict_to(keep);
        }
        let guard = self.inner.try_lock().ok_or(EAGAIN)?;
        let mut locked = Locked {
            guard,
            cached: &self.cached,
        };
        Ok(locked.reclaim(keep))
    }

    /// The counters.
    pub fn stats(&self) -> FcmStats {
        self.lock().counters()
    }

    /// Writes back through `file` (a live `struct file *`) from now on.
    ///
    /// # Safety
    ///
    /// `file` points to a live `struct file` for the call.
    pub unsafe fn set_file(&self, file: *mut c_void) {
        // SAFETY: The caller promises a live file.
        let file = unsafe { BackingFile::new(file) };
        let mut inner = self.lock();
        inner.file = Some(file);
        inner.io_seq += 1;
    }

    /// Moves the state out in `format`.
    pub fn export(&self, format: u32) -> Result<*mut c_void> {
        let mut inner = self.lock();
        let stats = inner.counters();
        let file = inner.file()?.as_raw();
        match format {
            // The whole map changes hands: O(1), whatever the size.
            FORMAT_PAGEMAP => fcm_pages::export_map(file, stats, &mut inner.pages),
            FORMAT_DESCRIPTORS => {
                let export = DescriptorExport::new(file, stats, inner.pages.len() as usize)?;
                Ok(export.lend_all(&inner.pages).finish())
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
        let mut inner = self.lock();
        inner.file = Some(file);
        inner.io_seq += 1;
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
        let mut inner = self.lock();
        // SAFETY: The caller's contract.
        unsafe { fcm_pages::release_state(format, state, taken, &mut inner.pages) };
    }
}
