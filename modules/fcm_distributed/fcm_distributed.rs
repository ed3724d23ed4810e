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
//! representative can still see is never freed. Replacement is CLOCK over
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

use fcm_api::{Buffer, FcmCreate, FcmImpl, FcmOps, FcmStats, FORMAT_DESCRIPTORS, PAGE_SIZE};
use fcm_pages::{BackingFile, CachePage, DescriptorExport};

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

/// A page, owned by the master (boxed, so its address is stable).
struct Cell {
    page: CachePage,
    dirty: Atomic<bool>,
    referenced: Atomic<bool>,
}

impl Cell {
    fn new(page: CachePage, dirty: bool, referenced: bool) -> Self {
        Self {
            page,
            dirty: Atomic::new(dirty),
            referenced: Atomic::new(referenced),
        }
    }
}

/// What a representative remembers: pages by index, borrowed from the
/// master, valid while they are in the master (see the module docs).
struct RepInner {
    map: RBTree<u64, *const Cell>,
    hits: u64,
    misses: u64,
}

// SAFETY: The raw pointers are borrowed from the master under the lock
// protocol in the module docs; any CPU may follow them.
unsafe impl Send for RepInner {}

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
    pages: RBTree<u64, KBox<Cell>>,
    capacity: u64,
    /// CLOCK hand: the index eviction resumes from.
    hand: u64,
    /// Counters except hits/misses (per representative) and dirty.
    stats: FcmStats,
}

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
                pages: RBTree::new(),
                capacity,
                hand: 0,
                stats: FcmStats::default(),
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
        f: impl FnOnce(&Cell) -> Result<R>,
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
        if r.map.iter().count() >= REP_ENTRIES {
            r.map = RBTree::new();
        }
        // A failed insert only means the next access is a miss again.
        let _ = r.map.try_create_and_insert(index, cell, GFP_KERNEL);
        // SAFETY: The master (locked) owns the page.
        let ret = f(unsafe { &*cell });
        drop(r);
        self.respect_capacity(&mut master)?;
        ret
    }

    /// The master's page `index`, brought in on a miss.
    fn master_page(&self, master: &mut Master, index: u64, fill: bool) -> Result<*const Cell> {
        if let Some(cell) = master.pages.get(&index) {
            return Ok(&**cell);
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
        let cell = KBox::new(Cell::new(page, false, true), GFP_KERNEL)
            .inspect_err(|_| master.stats.freed += 1)?;
        let ptr: *const Cell = &*cell;
        master
            .pages
            .try_create_and_insert(index, cell, GFP_KERNEL)
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
    fn write_back(&self, master: &Master, index: u64, cell: &Cell) -> Result<bool> {
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
        for (index, cell) in master.pages.iter() {
            if (first..=last).contains(index) && self.write_back(master, *index, cell)? {
                written += 1;
            }
        }
        master.stats.writebacks += written;
        Ok(())
    }

    /// Forgets `index` in every representative.
    fn purge(&self, index: u64) {
        for rep in self.reps.iter() {
            rep.inner.lock().map.remove(&index);
        }
    }

    fn evict_one(&self, master: &mut Master, index: u64) -> Result {
        if let Some(cell) = master.pages.get(&index) {
            if self.write_back(master, index, cell)? {
                master.stats.writebacks += 1;
            }
        }
        self.purge(index);
        if master.pages.remove(&index).is_some() {
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
            for (index, cell) in master.pages.iter() {
                if *index < master.hand {
                    continue;
                }
                if cell.referenced.load(Relaxed) && passes < 2 {
                    cell.referenced.store(false, Relaxed);
                } else {
                    victims.push(*index, GFP_KERNEL)?;
                    if victims.len() == need {
                        break;
                    }
                }
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
            rep.inner.lock().map = RBTree::new();
        }
        while let Some(cursor) = master.pages.cursor_front_mut() {
            drop(cursor.remove_current());
            master.stats.cached -= 1;
            master.stats.freed += 1;
        }
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

    fn export(&self, format: u32) -> Result<*mut c_void> {
        if format != FORMAT_DESCRIPTORS {
            return Err(EINVAL);
        }
        let stats = self.stats();
        let mut master = self.master.lock();
        let file = master.file.as_ref().ok_or(EBADF)?.as_raw();
        let count = master.pages.iter().count();
        let mut export = DescriptorExport::new(file, stats, count)?;
        // Forget every borrowed pointer, then move every page out.
        for rep in self.reps.iter() {
            rep.inner.lock().map = RBTree::new();
        }
        while let Some(cursor) = master.pages.cursor_front_mut() {
            let (_, node) = cursor.remove_current();
            let (index, cell) = node.to_key_value();
            let Cell {
                page,
                dirty,
                referenced,
            } = KBox::into_inner(cell);
            export.push(index, page, dirty.load(Acquire), referenced.load(Relaxed));
        }
        Ok(export.finish())
    }

    fn import(&self, format: u32, state: *mut c_void) -> Result {
        if format != FORMAT_DESCRIPTORS {
            return Err(EINVAL);
        }
        // SAFETY: hotswap passes the state the exporter made in this format.
        let (state, descriptors) = unsafe { fcm_pages::descriptors(state)? };
        let mut master = self.master.lock();
        // SAFETY: The exporter holds the file until the transfer ends.
        let file = unsafe { BackingFile::new(state.file) };
        let mut pages = RBTree::new();
        let mut dirty = 0;
        for d in descriptors {
            // SAFETY: A page from the exporter's `push`, checked non-NULL;
            // if the import fails, `forget_all` gives it back unfreed.
            let page = unsafe { CachePage::from_raw(d.page) }.ok_or(EINVAL)?;
            let inserted = KBox::new(Cell::new(page, d.dirty != 0, d.referenced != 0), GFP_KERNEL)
                .map_err(Error::from)
                .and_then(|cell| Ok(pages.try_create_and_insert(d.index, cell, GFP_KERNEL)?));
            if let Err(err) = inserted {
                forget_all(&mut pages);
                return Err(err);
            }
            dirty += u64::from(d.dirty != 0);
        }
        master.file = Some(file);
        master.pages = pages;
        master.capacity = state.stats.capacity;
        master.stats = FcmStats {
            hits: 0,
            misses: 0,
            ..state.stats
        };
        // Earlier hits and misses live on in the first representative.
        let mut first = self.reps[0].inner.lock();
        first.hits = state.stats.hits;
        first.misses = state.stats.misses;
        self.size.store(state.stats.size, Release);
        self.dirty.store(dirty, Relaxed);
        Ok(())
    }

    fn release(&self, format: u32, state: *mut c_void, taken: bool) {
        if format != FORMAT_DESCRIPTORS {
            return;
        }
        let mut master = self.master.lock();
        // SAFETY: `state` is the one `export` made, released once.
        unsafe {
            fcm_pages::release_descriptors(state, taken, |index, page, dirty, referenced| {
                let restored = KBox::new(Cell::new(page, dirty, referenced), GFP_KERNEL)
                    .map_err(Error::from)
                    .and_then(|c| Ok(master.pages.try_create_and_insert(index, c, GFP_KERNEL)?));
                if restored.is_err() {
                    pr_err!("no memory to restore page {}; it is lost\n", index);
                }
            })
        };
    }
}

/// Takes pages out of `pages` without freeing them (they still belong to
/// the exporter).
fn forget_all(pages: &mut RBTree<u64, KBox<Cell>>) {
    while let Some(cursor) = pages.cursor_front_mut() {
        let (_, node) = cursor.remove_current();
        let (_, cell) = node.to_key_value();
        let _ = KBox::into_inner(cell).page.into_raw();
    }
}

static METHODS: FcmOps = fcm_api::fcm_methods::<DistributedFcm>();

impl api::Implementation for DistributedFcm {
    const INTERFACE: &'static CStr = c"fcm";
    const NAME: &'static CStr = c"distributed";

    fn ops() -> api::ImplOps {
        fcm_api::impl_ops::<DistributedFcm>(&METHODS, &[FORMAT_DESCRIPTORS], &[FORMAT_DESCRIPTORS])
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
    fn descriptor_transfer_moves_pages_without_rereading() -> Result {
        c::descriptor_transfer_moves_pages_without_rereading::<DistributedFcm>()
    }

    #[test]
    fn aborted_transfer_restores_the_old_cache() -> Result {
        c::aborted_transfer_restores_the_old_cache::<DistributedFcm>()
    }
}
