// SPDX-License-Identifier: GPL-2.0
//! `fcm_distributed`: the File Cache Manager for many CPUs.
//!
//! A master map (one mutex) owns the pages; each CPU has a representative
//! with its own lookup map of the pages it used. A cache hit looks only at
//! the calling CPU's representative: its lock, map and counters sit on
//! lines no other CPU writes, so hits on several CPUs do not contend.
//! Misses, eviction and truncation go to the master.
//!
//! # Rules that keep every write
//!
//! * Lock order: master, then representatives.
//! * A page a representative can reach is in the master. Eviction and
//!   truncation take a page out of every representative (each under its
//!   lock, so a hit in progress there finishes first) *before* they write
//!   it back or free it: a write that hit the page after its write-back
//!   would otherwise be freed with it.
//! * A write's bytes are staged from the caller's buffer before any lock
//!   (`fcm_pages::Stager`). Landing them in a page, the writer copies the
//!   bytes, grows the size (a lock-free compare-exchange; a hit holds only
//!   its representative's lock) and only then marks the page dirty; a
//!   write-back clears the dirty flag, then reads the size, then writes.
//!   Either the write-back sees the bytes and a size covering them, or the
//!   page is dirty again after it: an append racing an `fsync` loses
//!   nothing.
//! * A miss brings the page into the master, lets the representative
//!   remember it, and copies holding only the representative's lock, so
//!   misses on other CPUs go on meanwhile.
//!
//! Export empties every representative, but keeps their old maps (pointers
//! no one follows again) until the object is destroyed: freeing thousands
//! of tree nodes is slow, and export runs while callers wait in Blocked.
//! Replacement is CLOCK over the master: a hit sets the page's
//! `referenced` bit (only if clear, so a hot page's line is not written on
//! every hit), eviction clears bits and takes unreferenced pages, an
//! eighth of the capacity at a time; a dirty page whose write-back fails
//! is passed over and stays.

use core::ffi::c_void;
use kernel::cpu::{nr_cpu_ids, CpuId};
use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed, Release};
use kernel::sync::{new_mutex, Mutex, MutexGuard};

#[path = "../../rust/abi/api.rs"]
pub mod api;
#[path = "../lib/abi/fcm_api.rs"]
pub mod fcm_api;
#[path = "../lib/pages/fcm_conformance.rs"]
pub mod fcm_conformance;
#[path = "../lib/pages/fcm_pages.rs"]
pub mod fcm_pages;

use fcm_api::{
    Buffer, FcmCreate, FcmImpl, FcmStats, MapsHandle, FORMAT_DESCRIPTORS, FORMAT_PAGEMAP,
    PAGE_SIZE, SYNC_FILE,
};
use fcm_pages::{
    partial, whole_page, BackingFile, CachePage, Chunk, DescriptorExport, Entry, PageMap, Stager,
};

module! {
    type: FcmDistributedModule,
    name: "fcm_distributed",
    authors: ["hotswap developers"],
    description: "hotswap File Cache Manager: distributed (per-CPU) implementation",
    license: "GPL",
}

const PAGE: i64 = PAGE_SIZE as i64;
/// Most pages a representative remembers; past it, it starts over.
const REP_ENTRIES: usize = 16384;

/// What a representative remembers: pages by index, borrowed from the
/// master, valid while they are in the master (see the module docs).
struct RepInner {
    map: RBTree<u64, *const Entry>,
    /// Entries in `map` (counting the tree would cost O(n) per miss).
    entries: usize,
    hits: u64,
    misses: u64,
    /// Times this lock was found held (a hit should never find it so).
    lock_waits: u64,
}

// SAFETY: The raw pointers are borrowed from the master under the lock
// protocol in the module docs; any CPU may follow them.
unsafe impl Send for RepInner {}

impl Rep {
    /// The representative, locked, its wait counted if it was held.
    fn lock(&self) -> MutexGuard<'_, RepInner> {
        fcm_pages::lock_counted(&self.inner, |r| r.lock_waits += 1)
    }
}

impl RepInner {
    /// Remembers `entry` as page `index`, starting over when full.
    /// Returns whether it did: a failed insert only means the next access
    /// is a miss again.
    fn remember(&mut self, index: u64, entry: *const Entry) -> bool {
        if self.entries >= REP_ENTRIES {
            self.forget_all();
        }
        let remembered = self
            .map
            .try_create_and_insert(index, entry, GFP_KERNEL)
            .is_ok();
        if remembered {
            self.entries += 1;
        }
        remembered
    }

    fn forget(&mut self, index: u64) {
        if self.map.remove(&index).is_some() {
            self.entries -= 1;
        }
    }

    /// Forgets every page from `first` on.
    fn forget_from(&mut self, first: u64) {
        while let Some(cursor) = self.map.cursor_lower_bound_mut(&first) {
            let _ = cursor.remove_current();
            self.entries -= 1;
        }
    }

    fn forget_all(&mut self) {
        drop(self.take_map());
    }

    /// Empties the map and hands the old one over.
    fn take_map(&mut self) -> RBTree<u64, *const Entry> {
        self.entries = 0;
        core::mem::replace(&mut self.map, RBTree::new())
    }
}

/// One CPU's representative, alone on its cache lines.
#[repr(align(64))]
#[pin_data]
struct Rep {
    #[pin]
    inner: Mutex<RepInner>,
}

struct Master {
    /// `None` only in an empty replacement before its import.
    file: Option<BackingFile>,
    pages: PageMap,
    capacity: u64,
    /// CLOCK hand: the index eviction resumes from.
    hand: u64,
    /// Counters except hits/misses (per representative) and dirty.
    stats: FcmStats,
    /// Representatives' maps emptied by `export`, dropped by `discard`.
    stale: KVec<StaleMap>,
}

/// A representative's map taken away by `export`: its pointers are never
/// followed again, only its nodes freed.
struct StaleMap {
    _nodes: RBTree<u64, *const Entry>,
}

// SAFETY: The pointers are never dereferenced; dropping frees only the
// tree's own nodes, from any thread.
unsafe impl Send for StaleMap {}

/// The `fcm`/`distributed` implementation.
pub struct DistributedFcm {
    master: Pin<KBox<Mutex<Master>>>,
    reps: KVec<Pin<KBox<Rep>>>,
    /// File size; read lock-free on every access, written under the master.
    size: Atomic<i64>,
    /// Dirty pages (changed only on clean/dirty transitions).
    dirty: Atomic<u64>,
    /// Pages in the master, as of its last change (for `pages`, which
    /// reclaim calls without waiting for the master).
    cached: Atomic<u64>,
    /// Bumped whenever the file's bytes change under the cache (a page
    /// written back, a truncation, another file): a page filled with the
    /// master dropped is stale if it moved meanwhile.
    io_seq: Atomic<u64>,
}

impl DistributedFcm {
    fn new(file: Option<BackingFile>, capacity: u64) -> Result<KBox<Self>> {
        let size = file.as_ref().map_or(0, |f| f.size());
        let master = KBox::pin_init(
            new_mutex!(Master {
                file,
                pages: PageMap::new()?,
                capacity,
                hand: 0,
                stats: FcmStats::default(),
                stale: KVec::new(),
            }),
            GFP_KERNEL,
        )?;
        let cpus = nr_cpu_ids() as usize;
        let mut reps = KVec::with_capacity(cpus, GFP_KERNEL)?;
        for _ in 0..cpus {
            reps.push(
                KBox::pin_init(
                    pin_init!(Rep {
                        inner <- new_mutex!(RepInner {
                            map: RBTree::new(),
                            entries: 0,
                            hits: 0,
                            misses: 0,
                            lock_waits: 0,
                        }),
                    }),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        Ok(KBox::new(
            Self {
                master,
                reps,
                size: Atomic::new(size),
                dirty: Atomic::new(0),
                cached: Atomic::new(0),
                io_seq: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// The master, locked, its wait counted if it was held.
    fn lock_master(&self) -> MutexGuard<'_, Master> {
        fcm_pages::lock_counted(&self.master, |m| m.stats.lock_waits += 1)
    }

    fn rep(&self) -> &Rep {
        let cpu = CpuId::current().as_u32() as usize;
        // A CPU id is below nr_cpu_ids; fall back to the first for safety.
        self.reps.get(cpu).unwrap_or(&self.reps[0])
    }

    /// Runs `f` on page `index` if this CPU's representative holds it.
    fn hit<R>(&self, rep: &Rep, index: u64, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        let mut r = rep.lock();
        let cell = r.map.get(&index).copied()?;
        r.hits += 1;
        // SAFETY: A page a representative holds is in the master; eviction
        // and truncation take it from here first, under this lock.
        let cell = unsafe { &*cell };
        if !cell.referenced.load(Relaxed) {
            cell.referenced.store(true, Relaxed);
        }
        Some(f(cell))
    }

    /// After a miss brought `cell` (page `index`) into the master: lets
    /// this CPU's representative remember it and runs `f` on it holding
    /// only the representative's lock, so misses on other CPUs go on
    /// meanwhile (eviction takes the page from the representative, under
    /// that lock, before it writes it back or frees it).
    fn after_miss<R>(
        &self,
        master: MutexGuard<'_, Master>,
        rep: &Rep,
        index: u64,
        cell: *const Entry,
        f: impl FnOnce(&Entry) -> R,
    ) -> R {
        let mut r = rep.lock();
        r.misses += 1;
        if r.remember(index, cell) {
            drop(master);
        }
        // SAFETY: The page is in the master, and either the master is
        // still locked or the representative (locked) holds the page.
        f(unsafe { &*cell })
    }

    /// Room for one more page in the master: at the capacity, CLOCK evicts
    /// an eighth (at least one page). Fails with the write-back error if
    /// dirty pages that cannot be written back leave no room.
    fn make_room(&self, master: &mut Master) -> Result {
        if master.capacity == 0 || master.stats.cached < master.capacity {
            return Ok(());
        }
        let keep = master.capacity - (master.capacity / 8).max(1);
        self.evict_to(master, keep)?;
        if master.stats.cached < master.capacity {
            Ok(())
        } else {
            Err(EIO)
        }
    }

    /// Caches `page` as page `index` in the master (a miss), making room
    /// first.
    fn insert(
        &self,
        master: &mut Master,
        index: u64,
        page: CachePage,
        dirty: Option<(usize, usize)>,
    ) -> Result<*const Entry> {
        self.make_room(master)?;
        let ptr: *const Entry = master
            .pages
            .insert(index, Entry::boxed(page, dirty, true)?)?;
        master.stats.allocated += 1;
        master.stats.cached += 1;
        self.publish_count(master);
        Ok(ptr)
    }

    /// The master's page `index`, read from the file on a miss.
    fn master_page(&self, master: &mut Master, index: u64) -> Result<*const Entry> {
        if let Some(entry) = master.pages.get(index) {
            return Ok(entry);
        }
        let mut page = CachePage::alloc()?;
        if (index as i64) * PAGE < self.size.load(Acquire) {
            master.file.as_ref().ok_or(EBADF)?.fill(index, &mut page)?;
            master.stats.fills += 1;
        }
        self.insert(master, index, page, None)
    }

    /// Copies the first `len` bytes of chunk `c` into `buf` without
    /// taking a page fault (false: fault the buffer in and try again).
    fn read_once(&self, c: &Chunk, len: usize, buf: Buffer) -> Result<bool> {
        let copy = |cell: &Entry| cell.page.copy_out(c.offset, len, buf, c.at);
        let rep = self.rep();
        if let Some(copied) = self.hit(rep, c.index, copy) {
            return Ok(copied);
        }
        let mut master = self.lock_master();
        if master.pages.get(c.index).is_none() {
            // Filled with the master dropped (see `BackingFile::page_of`);
            // the master (held by every write-back) tells if it is stale.
            let file = master.file.as_ref().ok_or(EBADF)?.clone();
            let seq = self.io_seq.load(Relaxed);
            drop(master);
            let filled = file.page_of(c.index, self.size.load(Acquire));
            master = self.lock_master();
            let (page, read) = filled?;
            if master.pages.get(c.index).is_none() && self.io_seq.load(Relaxed) == seq {
                master.stats.fills += u64::from(read);
                self.insert(&mut master, c.index, page, None)?;
            }
        }
        // In the master now, or filled under it if the file moved.
        let cell = self.master_page(&mut master, c.index)?;
        Ok(self.after_miss(master, rep, c.index, cell, copy))
    }

    /// Lands chunk `c` of a write, staged in `staged`. Gives the staging
    /// page back unless it became the cached page (a whole page missing
    /// from the cache).
    fn write_chunk(&self, c: &Chunk, staged: CachePage) -> Result<Option<CachePage>> {
        let end = (c.index as i64) * PAGE + (c.offset + c.len) as i64;
        let rep = self.rep();
        if self
            .hit(rep, c.index, |cell| self.land(cell, &staged, c, end))
            .is_some()
        {
            return Ok(Some(staged));
        }
        let mut master = self.lock_master();
        if master.file.is_none() {
            return Err(EBADF);
        }
        if whole_page(c) && master.pages.get(c.index).is_none() {
            self.insert(&mut master, c.index, staged, Some((c.offset, c.len)))?;
            // Under the master, which every write-back holds: the size
            // and the count are right before anyone can look.
            self.raise_size(end);
            self.dirty.fetch_add(1, Relaxed);
            rep.lock().misses += 1;
            return Ok(None);
        }
        let cell = self.master_page(&mut master, c.index)?;
        self.after_miss(master, rep, c.index, cell, |cell| {
            self.land(cell, &staged, c, end)
        });
        Ok(Some(staged))
    }

    /// Copies a staged chunk into `cell`, then grows the size to `end`,
    /// then marks the page dirty, in that order: a write-back that takes
    /// the dirty flag then sees a size covering these bytes (see
    /// `write_back`), so an append racing an `fsync` loses nothing.
    fn land(&self, cell: &Entry, staged: &CachePage, c: &Chunk, end: i64) {
        cell.page.copy_from_page(staged, c.offset, c.len);
        self.raise_size(end);
        cell.add_dirty(c.offset, c.len);
        // Ordering: full (bytes, size and range before the flag); pairs with
        // `write_back`, which clears the flag before it reads either.
        if !cell.dirty.xchg(true, Full) {
            self.dirty.fetch_add(1, Relaxed);
        }
    }

    /// Grows the size to `end` if it is smaller (lock-free: a hit holds
    /// only its representative's lock).
    fn raise_size(&self, end: i64) {
        let mut size = self.size.load(Acquire);
        while size < end {
            // Ordering: full; pairs with the acquire loads of readers and
            // write-back.
            match self.size.cmpxchg(size, end, Full) {
                Ok(_) => return,
                Err(now) => size = now,
            }
        }
    }

    fn valid_len(&self, index: u64) -> usize {
        (self.size.load(Acquire) - index as i64 * PAGE).clamp(0, PAGE) as usize
    }

    /// Writes `cell` back if dirty; returns whether it was.
    ///
    /// Clean first, then read the size and write: a writer on another CPU
    /// copies its bytes, grows the size and then marks the page dirty, so
    /// either this write-back sees its bytes and its size or the page is
    /// dirty again afterwards. Nothing is lost.
    fn write_back(&self, master: &Master, index: u64, cell: &Entry) -> Result<bool> {
        // Ordering: full; pairs with the writers' exchange in `land`.
        if !cell.dirty.xchg(false, Full) {
            return Ok(false);
        }
        let (from, to) = cell.take_dirty();
        let written = master.file.as_ref().ok_or(EBADF).and_then(|file| {
            file.write_back(index, &cell.page, from, to.min(self.valid_len(index)))
        });
        if let Err(err) = written {
            cell.restore_dirty((from, to));
            // A writer may have dirtied the page again meanwhile (and
            // counted it): then it is counted once already.
            if cell.dirty.xchg(true, Full) {
                self.dirty.fetch_sub(1, Relaxed);
            }
            return Err(err);
        }
        self.io_seq.add(1, Relaxed);
        self.dirty.fetch_sub(1, Relaxed);
        Ok(true)
    }

    /// Counts a write-back's outcome in the master's counters.
    fn count_write_back(master: &mut Master, result: &Result<bool>) {
        match result {
            Ok(true) => master.stats.writebacks += 1,
            Ok(false) => {}
            Err(err) if fcm_pages::reportable(*err) => {
                master.stats.wb_errors += 1;
                master.stats.wb_errno = err.to_errno().into();
            }
            Err(_) => {}
        }
    }

    /// Writes back every dirty page in `[first, last]`, each one it can;
    /// the first error, if any.
    fn write_back_range(&self, master: &mut Master, first: u64, last: u64) -> Result {
        let mut written = 0;
        let mut failures = 0;
        let mut first_error = None;
        let mut latest_error = None;
        master.pages.for_each(|index, entry| {
            if !(first..=last).contains(&index) {
                return;
            }
            match self.write_back(master, index, entry) {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(err) => {
                    first_error.get_or_insert(err);
                    if fcm_pages::reportable(err) {
                        failures += 1;
                        latest_error = Some(err);
                    }
                }
            }
        });
        master.stats.writebacks += written;
        if let Some(err) = latest_error {
            master.stats.wb_errors += failures;
            master.stats.wb_errno = err.to_errno().into();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Publishes the master's page count for `pages`.
    fn publish_count(&self, master: &Master) {
        self.cached.store(master.pages.len(), Relaxed);
    }

    /// Forgets `index` in every representative that is not busy; false if
    /// one was (the page may still be reachable there).
    fn try_purge(&self, index: u64) -> bool {
        self.reps.iter().all(|rep| match rep.inner.try_lock() {
            Some(mut r) => {
                r.forget(index);
                true
            }
            None => false,
        })
    }

    /// Reclaim (`EVICT_RECLAIM`): CLOCK over clean pages only, from the
    /// hand, until at most `keep` are cached; writes nothing back, waits
    /// for no lock and allocates nothing. A page leaves every
    /// representative before it goes, and must still be clean then (a hit
    /// there may have dirtied it meanwhile).
    fn reclaim(&self, master: &mut Master, keep: u64) -> u64 {
        let mut freed = 0;
        for pass in 0..3 {
            let want = master.pages.len().saturating_sub(keep);
            if want == 0 {
                break;
            }
            let (n, hand) = master
                .pages
                .reclaim_clean(want, master.hand, true, |index, entry| {
                    if pass < 2 && entry.referenced.load(Relaxed) {
                        entry.referenced.store(false, Relaxed);
                        return false;
                    }
                    self.try_purge(index)
                });
            master.hand = hand;
            freed += n;
        }
        master.stats.cached -= freed;
        master.stats.freed += freed;
        master.stats.evictions += freed;
        self.publish_count(master);
        freed
    }

    /// [`fcm_api::EVICT_REVALIDATE`]: the file changed behind the cache.
    /// Every representative forgets everything first (waiting for a hit in
    /// progress there), so from then on every access goes through the
    /// master, held here; then the clean pages go, and with no dirty page
    /// left the size is the file's.
    fn revalidate(&self, master: &mut Master) -> u64 {
        for rep in self.reps.iter() {
            rep.inner.lock().forget_all();
        }
        let (freed, _) = master.pages.reclaim_clean(u64::MAX, 0, false, |_, _| true);
        master.stats.cached -= freed;
        master.stats.freed += freed;
        self.io_seq.add(1, Relaxed);
        if self.dirty.load(Acquire) == 0 {
            if let Some(file) = master.file.as_ref() {
                self.size.store(file.size(), Release);
            }
        }
        self.publish_count(master);
        freed
    }

    /// Forgets `index` in every representative.
    fn purge(&self, index: u64) {
        for rep in self.reps.iter() {
            rep.inner.lock().forget(index);
        }
    }

    fn evict_one(&self, master: &mut Master, index: u64) -> Result {
        // First out of every representative (waiting for a hit in progress
        // there), then written back and freed: a write that hit the page
        // between its write-back and its purge would be lost.
        self.purge(index);
        if let Some(entry) = master.pages.get(index) {
            let written = self.write_back(master, index, entry);
            Self::count_write_back(master, &written);
            written?;
        }
        if master.pages.remove(index).is_some() {
            master.stats.cached -= 1;
            master.stats.freed += 1;
            master.stats.evictions += 1;
            self.publish_count(master);
        }
        Ok(())
    }

    /// CLOCK: evicts until at most `keep` pages are cached, passing over
    /// dirty pages whose write-back fails. Fails with that error only if
    /// they kept it from reaching `keep`.
    fn evict_to(&self, master: &mut Master, keep: u64) -> Result<u64> {
        let mut evicted = 0;
        let mut passes = 0;
        let mut failed = None;
        while master.stats.cached > keep && passes < 3 {
            let mut victims = KVec::new();
            let need = (master.stats.cached - keep) as usize;
            let hand = master.hand;
            let mut no_memory = None;
            master.pages.for_each(|index, entry| {
                if index < hand || victims.len() >= need || no_memory.is_some() {
                    return;
                }
                if entry.referenced.load(Relaxed) && passes < 2 {
                    entry.referenced.store(false, Relaxed);
                } else if let Err(err) = victims.push(index, GFP_KERNEL) {
                    no_memory = Some(err);
                }
            });
            if let Some(err) = no_memory {
                return Err(err.into());
            }
            master.hand = victims.last().map_or(0, |i| i + 1);
            for index in victims {
                match self.evict_one(master, index) {
                    Ok(()) => evicted += 1,
                    Err(err) => failed = Some(err),
                }
            }
            if master.hand == 0 {
                passes += 1;
            }
        }
        match failed {
            Some(err) if master.stats.cached > keep => Err(err),
            _ => Ok(evicted),
        }
    }

    /// Sets the size (see [`fcm_api::FcmOps::truncate`]).
    fn truncate_to(&self, master: &mut Master, size: i64) -> Result {
        if size < 0 {
            return Err(EINVAL);
        }
        let file = master.file.as_ref().ok_or(EBADF)?;
        // A writer that could grow the file past `size` writes a page from
        // `boundary` on. Those leave every representative first (waiting
        // for hits in progress), so such writers now go through the
        // master, which this holds: the new size is not undone behind it.
        let boundary = (size / PAGE) as u64;
        for rep in self.reps.iter() {
            rep.inner.lock().forget_from(boundary);
        }
        file.truncate(size)?;
        self.io_seq.add(1, Relaxed);
        let first_gone = (size as u64).div_ceil(PAGE as u64);
        while let Some((_, entry)) = master.pages.pop_from(first_gone) {
            if entry.dirty.load(Acquire) {
                self.dirty.fetch_sub(1, Relaxed);
            }
            master.stats.cached -= 1;
            master.stats.freed += 1;
        }
        self.publish_count(master);
        if size % PAGE != 0 {
            if let Some(entry) = master.pages.get(boundary) {
                entry.page.zero_from((size % PAGE) as usize);
            }
        }
        self.size.store(size, Release);
        Ok(())
    }

    fn discard(&self, master: &mut Master) {
        for rep in self.reps.iter() {
            rep.inner.lock().forget_all();
        }
        master.stale.clear();
        master.stats.freed += master.pages.len();
        master.stats.cached = 0;
        master.pages.clear();
        self.publish_count(master);
        self.dirty.store(0, Relaxed);
    }
}

// SAFETY: `export` returns what `fcm_pages`' export functions made, in
// the format asked for.
unsafe impl FcmImpl for DistributedFcm {
    fn create(args: &FcmCreate) -> Result<KBox<Self>> {
        // SAFETY: hotswap's front end passes a live file it holds.
        let file = unsafe { BackingFile::new(args.file) };
        Self::new(Some(file), args.capacity)
    }

    fn create_empty() -> Result<KBox<Self>> {
        Self::new(None, 0)
    }

    fn destroy(self: KBox<Self>, quiet: bool) {
        let mut master = self.master.lock();
        if !quiet && master.file.is_some() {
            if let Err(err) = self.write_back_range(&mut master, 0, u64::MAX) {
                pr_err!(
                    "write-back at the last close failed ({:?}): {} dirty page(s) lost\n",
                    err,
                    self.dirty.load(Relaxed)
                );
            }
        }
        self.discard(&mut master);
    }

    fn read(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = fcm_pages::byte_range(pos, len)?.min(self.size.load(Acquire));
        let mut done = 0;
        for c in fcm_pages::chunks(pos, end) {
            match fcm_pages::read_chunk(&c, buf, |len| self.read_once(&c, len, buf)) {
                Ok(copied) if copied == c.len => done += copied,
                Ok(copied) => return partial(done + copied, EFAULT),
                Err(err) => return partial(done, err),
            }
        }
        Ok(done)
    }

    fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = fcm_pages::byte_range(pos, len)?;
        let mut stager = Stager::default();
        let mut done = 0;
        for c in fcm_pages::chunks(pos, end) {
            let landed = stager
                .stage(&c, buf)
                .and_then(|staged| self.write_chunk(&c, staged));
            match landed {
                Ok(Some(page)) => stager.give_back(page),
                Ok(None) => {}
                Err(err) => return partial(done, err),
            }
            done += c.len;
        }
        Ok(done)
    }

    fn sync(&self, start: i64, end: i64, flags: u32) -> Result {
        if start < 0 || end < start {
            return Err(EINVAL);
        }
        let mut master = self.master.lock();
        let written =
            self.write_back_range(&mut master, (start / PAGE) as u64, (end / PAGE) as u64);
        if flags & SYNC_FILE == 0 {
            return written;
        }
        let synced = master.file.as_ref().ok_or(EBADF)?.sync(start, end);
        written.and(synced)
    }

    fn truncate(&self, size: i64) -> Result {
        let mut master = self.master.lock();
        self.truncate_to(&mut master, size)
    }

    fn size(&self) -> i64 {
        self.size.load(Acquire)
    }

    fn evict(&self, keep: u64, flags: u32) -> Result<u64> {
        if flags & fcm_api::EVICT_REVALIDATE != 0 {
            let mut master = self.master.lock();
            return Ok(self.revalidate(&mut master));
        }
        if flags & fcm_api::EVICT_RECLAIM != 0 {
            let mut master = self.master.try_lock().ok_or(EAGAIN)?;
            return Ok(self.reclaim(&mut master, keep));
        }
        let mut master = self.master.lock();
        self.evict_to(&mut master, keep)
    }

    /// Under the master, which every free of a page holds (a page a
    /// representative remembers is in the master too); a mapping's later
    /// accesses take no lock at all.
    fn page(&self, index: u64, maps: MapsHandle) -> Result<*mut c_void> {
        let mut master = self.lock_master();
        if master.file.is_none() {
            return Err(EBADF);
        }
        let start = i64::try_from(index).ok().and_then(|i| i.checked_mul(PAGE));
        if start.is_none_or(|start| start >= self.size.load(Acquire)) {
            return Err(ENXIO);
        }
        let hit = master.pages.get(index).is_some();
        let cell = self.master_page(&mut master, index)?;
        {
            let mut rep = self.rep().lock();
            if hit {
                rep.hits += 1;
            } else {
                rep.misses += 1;
            }
        }
        // SAFETY: In the master, which is locked.
        let cell = unsafe { &*cell };
        cell.referenced.store(true, Relaxed);
        Ok(cell.page.lend(index, maps))
    }

    fn pages(&self) -> u64 {
        self.cached.load(Relaxed)
    }

    fn stats(&self) -> FcmStats {
        let master = self.master.lock();
        let mut s = master.stats;
        for rep in self.reps.iter() {
            let r = rep.inner.lock();
            s.hits += r.hits;
            s.misses += r.misses;
            s.lock_waits += r.lock_waits;
        }
        s.dirty = self.dirty.load(Relaxed);
        s.size = self.size.load(Acquire);
        s.capacity = master.capacity;
        s
    }

    unsafe fn set_file(&self, file: *mut c_void) -> Result {
        // SAFETY: The caller passes a live file (`# Safety`).
        let file = unsafe { BackingFile::new(file) };
        self.master.lock().file = Some(file);
        self.io_seq.add(1, Relaxed);
        Ok(())
    }

    fn export(&self, format: u32) -> Result<*mut c_void> {
        let stats = self.stats();
        let mut master = self.master.lock();
        let file = master.file.as_ref().ok_or(EBADF)?.as_raw();
        // Representatives borrow from the map: empty them first, keeping
        // their maps to free outside the swap (see the module docs).
        master.stale.reserve(self.reps.len(), GFP_KERNEL)?;
        for rep in self.reps.iter() {
            let stale = rep.inner.lock().take_map();
            // Capacity was reserved above.
            let _ = master.stale.push(StaleMap { _nodes: stale }, GFP_KERNEL);
        }
        match format {
            // The whole map changes hands: O(1), whatever the size.
            FORMAT_PAGEMAP => fcm_pages::export_map(file, stats, &mut master.pages),
            FORMAT_DESCRIPTORS => {
                let export = DescriptorExport::new(file, stats, master.pages.len() as usize)?;
                Ok(export.lend_all(&master.pages).finish())
            }
            _ => Err(EINVAL),
        }
    }

    unsafe fn import(&self, format: u32, state: *mut c_void) -> Result {
        let mut master = self.master.lock();
        let (file, stats, pages) = match format {
            // SAFETY: The caller passes an exported state (`# Safety`).
            FORMAT_PAGEMAP => unsafe { fcm_pages::import_map(state)? },
            // SAFETY: As above.
            FORMAT_DESCRIPTORS => unsafe { fcm_pages::import_descriptors(state)? },
            _ => return Err(EINVAL),
        };
        master.file = Some(file);
        master.pages = pages;
        master.capacity = stats.capacity;
        master.stats = FcmStats {
            hits: 0,
            misses: 0,
            ..stats
        };
        // Earlier hits and misses live on in the first representative.
        let mut first = self.reps[0].inner.lock();
        first.hits = stats.hits;
        first.misses = stats.misses;
        self.size.store(stats.size, Release);
        // The exporter counted its dirty pages; counting them here would walk
        // every page while callers wait in Blocked.
        self.dirty.store(stats.dirty, Relaxed);
        drop(first);
        self.publish_count(&master);
        Ok(())
    }

    unsafe fn release(&self, format: u32, state: *mut c_void, taken: bool) {
        let mut master = self.master.lock();
        // SAFETY: The caller passes this object's export, once (`# Safety`).
        unsafe { fcm_pages::release_state(format, state, taken, &mut master.pages) };
        self.publish_count(&master);
    }
}

impl api::Implementation for DistributedFcm {
    type Interface = fcm_api::Fcm;
    const NAME: &'static CStr = c"distributed";

    fn ops() -> api::ImplTable<fcm_api::Fcm> {
        let formats = [FORMAT_PAGEMAP, FORMAT_DESCRIPTORS];
        fcm_api::impl_ops::<DistributedFcm>(&formats, &formats)
    }
}

struct FcmDistributedModule {
    _registration: api::Registration,
}

impl kernel::Module for FcmDistributedModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _registration: api::Registration::new::<DistributedFcm>(module)?,
        })
    }
}

#[kunit_tests(fcm_distributed)]
mod tests {
    use super::*;
    use api::Implementation;
    use fcm_conformance as c;

    #[test]
    fn registered_on_load() {
        assert!(api::impl_registered(c"fcm", DistributedFcm::NAME));
    }

    #[test]
    fn miss_then_hit() -> Result {
        c::miss_then_hit::<DistributedFcm>()
    }

    #[test]
    fn reads_stop_at_eof() -> Result {
        c::reads_stop_at_eof::<DistributedFcm>()
    }

    #[test]
    fn writes_past_eof_reach_the_file_on_sync() -> Result {
        c::writes_past_eof_reach_the_file_on_sync::<DistributedFcm>()
    }

    #[test]
    fn capacity_bound_evicts_and_accounts() -> Result {
        c::capacity_bound_evicts_and_accounts::<DistributedFcm>()
    }

    #[test]
    fn closing_writes_back() -> Result {
        c::closing_writes_back::<DistributedFcm>()
    }

    #[test]
    fn set_file_moves_write_back() -> Result {
        c::set_file_moves_write_back::<DistributedFcm>()
    }

    #[test]
    fn descriptor_transfer_moves_pages_without_rereading() -> Result {
        c::descriptor_transfer_moves_pages_without_rereading::<DistributedFcm>()
    }

    #[test]
    fn aborted_transfer_restores_the_old_cache() -> Result {
        c::aborted_transfer_restores_the_old_cache::<DistributedFcm>()
    }

    #[test]
    fn pagemap_transfer_hands_the_map_over() -> Result {
        c::pagemap_transfer_hands_the_map_over::<DistributedFcm>()
    }

    #[test]
    fn aborted_pagemap_transfer_restores_the_map() -> Result {
        c::aborted_pagemap_transfer_restores_the_map::<DistributedFcm>()
    }

    #[test]
    fn faulting_write_changes_nothing() -> Result {
        c::faulting_write_changes_nothing::<DistributedFcm>()
    }

    #[test]
    fn failed_write_back_keeps_the_page_and_reads_go_on() -> Result {
        c::failed_write_back_keeps_the_page_and_reads_go_on::<DistributedFcm>()
    }

    #[test]
    fn truncate_shrinks_and_grows() -> Result {
        c::truncate_shrinks_and_grows::<DistributedFcm>()
    }

    #[test]
    fn descriptor_transfer_lends_the_pages() -> Result {
        c::descriptor_transfer_lends_the_pages::<DistributedFcm>()
    }

    #[test]
    fn reclaim_takes_clean_pages_only() -> Result {
        c::reclaim_takes_clean_pages_only::<DistributedFcm>()
    }

    #[test]
    fn revalidate_drops_clean_pages_and_rereads_the_size() -> Result {
        c::revalidate_drops_clean_pages_and_rereads_the_size::<DistributedFcm>()
    }

    #[test]
    fn write_back_keeps_bytes_it_did_not_write() -> Result {
        c::write_back_keeps_bytes_it_did_not_write::<DistributedFcm>()
    }

    #[test]
    fn lent_pages_stay_marked_until_freed() -> Result {
        c::lent_pages_stay_marked_until_freed::<DistributedFcm>()
    }
}
