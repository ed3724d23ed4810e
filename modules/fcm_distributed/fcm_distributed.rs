// SPDX-License-Identifier: GPL-2.0
//! `fcm_distributed`: the File Cache Manager for many CPUs.
//!
//! A master map (one mutex) owns the pages; each CPU has a representative
//! with its own lookup map of the pages it used. A cache hit looks only at
//! the calling CPU's representative: its lock, map and counters sit on
//! lines no other CPU writes, and the page is only read, so hits on several
//! CPUs do not contend. Misses, growth and eviction go to the master.
//!
//! Lock order: master, then representatives. A hit holds only its
//! representative's lock while it copies; eviction removes a page from
//! every representative (taking each lock) before freeing it, so a page a
//! representative can still see is never freed. Export empties every
//! representative the same way, but keeps their old maps (pointers no one
//! follows again) until the object is destroyed: freeing thousands of tree
//! nodes is slow, and export runs while callers wait in Blocked. Replacement is CLOCK over
//! the master: a hit sets the page's `referenced` bit (only if clear, so a
//! hot page's line is not written on every hit), eviction clears bits and
//! takes unreferenced pages, an eighth of the capacity at a time.

use core::ffi::c_void;
use kernel::cpu::{nr_cpu_ids, CpuId};
use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed, Release};
use kernel::sync::{new_mutex, Mutex};

#[path = "../../rust/hotswap/api.rs"]
pub mod api;
#[path = "../../rust/hotswap/fcm_api.rs"]
pub mod fcm_api;
#[path = "../../rust/hotswap/fcm_conformance.rs"]
pub mod fcm_conformance;
#[path = "../../rust/hotswap/fcm_pages.rs"]
pub mod fcm_pages;

use fcm_api::{
    Buffer, FcmCreate, FcmImpl, FcmOps, FcmStats, FORMAT_DESCRIPTORS, FORMAT_PAGEMAP, PAGE_SIZE,
};
use fcm_pages::{BackingFile, CachePage, DescriptorExport, Entry, PageMap};

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
}

// SAFETY: The raw pointers are borrowed from the master under the lock
// protocol in the module docs; any CPU may follow them.
unsafe impl Send for RepInner {}

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
            },
            GFP_KERNEL,
        )?)
    }

    fn rep(&self) -> &Rep {
        let cpu = CpuId::current().as_u32() as usize;
        // A CPU id is below nr_cpu_ids; fall back to the first for safety.
        self.reps.get(cpu).unwrap_or(&self.reps[0])
    }

    /// Runs `f` on page `index`: from this CPU's representative on a hit,
    /// else from the master (filling it from the file if `fill`).
    fn with_page<R>(
        &self,
        index: u64,
        fill: bool,
        f: impl FnOnce(&Entry) -> Result<R>,
    ) -> Result<R> {
        let rep = self.rep();
        {
            let mut r = rep.inner.lock();
            if let Some(cell) = r.map.get(&index).copied() {
                r.hits += 1;
                // SAFETY: A page a representative holds is in the master;
                // eviction removes it here first, under this lock.
                let cell = unsafe { &*cell };
                if !cell.referenced.load(Relaxed) {
                    cell.referenced.store(true, Relaxed);
                }
                return f(cell);
            }
        }
        let mut master = self.master.lock();
        let cell = self.master_page(&mut master, index, fill)?;
        let mut r = rep.inner.lock();
        r.misses += 1;
        if !r.remember(index, cell) {
            // SAFETY: The master (locked) owns the page.
            let ret = f(unsafe { &*cell });
            drop(r);
            self.respect_capacity(&mut master)?;
            return ret;
        }
        // The representative holds the page now, and eviction takes it
        // from here (under this lock) before freeing it: the copy needs
        // only this lock, and misses on other CPUs go on meanwhile.
        let over = master.capacity != 0 && master.stats.cached > master.capacity;
        drop(master);
        // SAFETY: As for a hit.
        let ret = f(unsafe { &*cell });
        drop(r);
        if over {
            self.respect_capacity(&mut self.master.lock())?;
        }
        ret
    }

    /// The master's page `index`, brought in on a miss.
    fn master_page(&self, master: &mut Master, index: u64, fill: bool) -> Result<*const Entry> {
        if let Some(entry) = master.pages.get(index) {
            return Ok(entry);
        }
        let page = CachePage::alloc()?;
        master.stats.allocated += 1;
        let beyond_eof = index as i64 * PAGE >= self.size.load(Acquire);
        if fill && !beyond_eof {
            let filled = master
                .file
                .as_ref()
                .ok_or(EBADF)
                .and_then(|f| f.fill(index, &page));
            if let Err(err) = filled {
                master.stats.freed += 1;
                return Err(err);
            }
            master.stats.fills += 1;
        }
        let entry = Entry::boxed(page, false, true).inspect_err(|_| master.stats.freed += 1)?;
        let ptr: *const Entry = master
            .pages
            .insert(index, entry)
            .inspect_err(|_| master.stats.freed += 1)?;
        master.stats.cached += 1;
        Ok(ptr)
    }

    fn valid_len(&self, index: u64) -> usize {
        (self.size.load(Acquire) - index as i64 * PAGE).clamp(0, PAGE) as usize
    }

    /// Writes `cell` back if dirty; returns whether it was.
    ///
    /// Clean first, then write: a writer on another CPU copies its bytes
    /// and then marks the page dirty, so either this write-back sees its
    /// bytes or the page is dirty again afterwards. Nothing is lost.
    fn write_back(&self, master: &Master, index: u64, cell: &Entry) -> Result<bool> {
        // Ordering: full; pairs with the writers' exchange in `write`.
        if !cell.dirty.xchg(false, Full) {
            return Ok(false);
        }
        let file = master.file.as_ref().ok_or(EBADF)?;
        if let Err(err) = file.write_back(index, &cell.page, self.valid_len(index)) {
            cell.dirty.store(true, Release);
            return Err(err);
        }
        self.dirty.fetch_sub(1, Relaxed);
        Ok(true)
    }

    fn write_back_range(&self, master: &mut Master, first: u64, last: u64) -> Result {
        let mut written = 0;
        let mut failed = Ok(());
        master.pages.for_each(|index, entry| {
            if failed.is_ok() && (first..=last).contains(&index) {
                match self.write_back(master, index, entry) {
                    Ok(true) => written += 1,
                    Ok(false) => {}
                    Err(err) => failed = Err(err),
                }
            }
        });
        master.stats.writebacks += written;
        failed
    }

    /// Forgets `index` in every representative.
    fn purge(&self, index: u64) {
        for rep in self.reps.iter() {
            rep.inner.lock().forget(index);
        }
    }

    fn evict_one(&self, master: &mut Master, index: u64) -> Result {
        if let Some(entry) = master.pages.get(index) {
            if self.write_back(master, index, entry)? {
                master.stats.writebacks += 1;
            }
        }
        self.purge(index);
        if master.pages.remove(index).is_some() {
            master.stats.cached -= 1;
            master.stats.freed += 1;
            master.stats.evictions += 1;
        }
        Ok(())
    }

    /// CLOCK: evicts until at most `keep` pages are cached.
    fn evict_to(&self, master: &mut Master, keep: u64) -> Result<u64> {
        let mut evicted = 0;
        let mut passes = 0;
        while master.stats.cached > keep && passes < 3 {
            let mut victims = KVec::new();
            let need = (master.stats.cached - keep) as usize;
            let hand = master.hand;
            let mut failed = None;
            master.pages.for_each(|index, entry| {
                if index < hand || victims.len() >= need || failed.is_some() {
                    return;
                }
                if entry.referenced.load(Relaxed) && passes < 2 {
                    entry.referenced.store(false, Relaxed);
                } else if let Err(err) = victims.push(index, GFP_KERNEL) {
                    failed = Some(err);
                }
            });
            if let Some(err) = failed {
                return Err(err.into());
            }
            master.hand = victims.last().map_or(0, |i| i + 1);
            for index in victims {
                self.evict_one(master, index)?;
                evicted += 1;
            }
            if master.hand == 0 {
                passes += 1;
            }
        }
        Ok(evicted)
    }

    fn respect_capacity(&self, master: &mut Master) -> Result {
        if master.capacity != 0 && master.stats.cached > master.capacity {
            self.evict_to(master, master.capacity - master.capacity / 8)?;
        }
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
        self.dirty.store(0, Relaxed);
    }
}

impl FcmImpl for DistributedFcm {
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
            match self.write_back_range(&mut master, 0, u64::MAX) {
                Ok(()) => {
                    if let Some(file) = master.file.as_ref() {
                        let _ = file.sync(0, self.size.load(Acquire));
                    }
                }
                Err(err) => pr_err!("write-back on close failed ({:?}); dirty data lost\n", err),
            }
        }
        self.discard(&mut master);
    }

    fn read(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = fcm_pages::byte_range(pos, len)?.min(self.size.load(Acquire));
        for c in fcm_pages::chunks(pos, end) {
            self.with_page(c.index, true, |cell| {
                cell.page
                    .with_bytes(|bytes| buf.put(c.at, &bytes[c.offset..c.offset + c.len]))
            })?;
        }
        Ok((end.max(pos) - pos) as usize)
    }

    fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        let end = fcm_pages::byte_range(pos, len)?;
        if self.master.lock().file.is_none() {
            return Err(EBADF);
        }
        for c in fcm_pages::chunks(pos, end) {
            self.with_page(c.index, c.len != PAGE_SIZE, |cell| {
                cell.page
                    .with_bytes(|bytes| buf.get(c.at, &mut bytes[c.offset..c.offset + c.len]))?;
                // Ordering: full (bytes before the flag); pairs with
                // `write_back`, which clears the flag before reading.
                if !cell.dirty.xchg(true, Full) {
                    self.dirty.fetch_add(1, Relaxed);
                }
                Ok(())
            })?;
            let at = pos + (c.at + c.len) as i64;
            if at > self.size.load(Acquire) {
                let _master = self.master.lock();
                if at > self.size.load(Acquire) {
                    self.size.store(at, Release);
                }
            }
        }
        Ok((end - pos) as usize)
    }

    fn sync(&self, start: i64, end: i64) -> Result {
        if start < 0 || end < start {
            return Err(EINVAL);
        }
        let mut master = self.master.lock();
        self.write_back_range(&mut master, (start / PAGE) as u64, (end / PAGE) as u64)?;
        let size = self.size.load(Acquire);
        master
            .file
            .as_ref()
            .ok_or(EBADF)?
            .sync(start, end.min(size))
    }

    fn size(&self) -> i64 {
        self.size.load(Acquire)
    }

    fn evict(&self, keep: u64) -> Result<u64> {
        let mut master = self.master.lock();
        self.evict_to(&mut master, keep)
    }

    fn stats(&self) -> FcmStats {
        let master = self.master.lock();
        let mut s = master.stats;
        for rep in self.reps.iter() {
            let r = rep.inner.lock();
            s.hits += r.hits;
            s.misses += r.misses;
        }
        s.dirty = self.dirty.load(Relaxed);
        s.size = self.size.load(Acquire);
        s.capacity = master.capacity;
        s
    }

    fn set_file(&self, file: *mut c_void) -> Result {
        // SAFETY: hotswap passes a live file for the call.
        let file = unsafe { BackingFile::new(file) };
        self.master.lock().file = Some(file);
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
                let mut export = DescriptorExport::new(file, stats, master.pages.len() as usize)?;
                while let Some((index, entry)) = master.pages.pop_first() {
                    let Entry {
                        page,
                        dirty,
                        referenced,
                        ..
                    } = KBox::into_inner(entry);
                    export.push(index, page, dirty.load(Acquire), referenced.load(Relaxed));
                }
                Ok(export.finish())
            }
            _ => Err(EINVAL),
        }
    }

    fn import(&self, format: u32, state: *mut c_void) -> Result {
        let mut master = self.master.lock();
        let (file, stats, pages) = match format {
            // SAFETY: hotswap passes the state the exporter made.
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
        Ok(())
    }

    fn release(&self, format: u32, state: *mut c_void, taken: bool) {
        let mut master = self.master.lock();
        // SAFETY: `state` is the one `export` made, released once.
        unsafe { fcm_pages::release_state(format, state, taken, &mut master.pages) };
    }
}

static METHODS: FcmOps = fcm_api::fcm_methods::<DistributedFcm>();

impl api::Implementation for DistributedFcm {
    const INTERFACE: &'static CStr = c"fcm";
    const NAME: &'static CStr = c"distributed";

    fn ops() -> api::ImplOps {
        let formats = [FORMAT_PAGEMAP, FORMAT_DESCRIPTORS];
        fcm_api::impl_ops::<DistributedFcm>(&METHODS, &formats, &formats)
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
        assert!(api::impl_registered(
            DistributedFcm::INTERFACE,
            DistributedFcm::NAME
        ));
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
}
