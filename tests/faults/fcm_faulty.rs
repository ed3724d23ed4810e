// SPDX-License-Identifier: GPL-2.0
//! `fcm_faulty`: a correct File Cache Manager with fault knobs, for the
//! fault-injection tests (`tests/vm/fault_injection.sh`). Test-only.
//!
//! With every knob at 0 it is a plain FCM (one mutex, one page map,
//! lowest-index-first eviction) and passes the FCM conformance suite. The
//! knobs are files in `/sys/kernel/debug/fcm_faulty/` and act at once:
//!
//! | knob | effect |
//! |---|---|
//! | `fail_export` | export fails with `-N` before touching anything |
//! | `fail_import` | import adopts the whole state, hands it back, fails with `-N` |
//! | `bogus_export` | export moves the state out, then returns `N` instead of 0 |
//! | `bogus_import` | import returns `N` without adopting anything |
//! | `read_excess` | a read reports `N` bytes more than it copied |
//! | `hold` | the next `N` reads or writes each wait at entry, ticket by ticket |
//! | `released` | held calls whose ticket is below `N` go on |
//! | `hold_limit_ms` | a held call goes on by itself after this long (20 s) |
//! | `delay_us` | every read and write sleeps this long first |
//! | `transfer_delay_ms` | export and import sleep this long first |
//!
//! Read-only: `held` (calls waiting now), `tickets` (the next ticket: held
//! calls so far), `injected` (faults injected so far).
//!
//! A held call waits outside the FCM's lock, so other calls go on; the
//! bound means no test can leave a thread stuck for good (and the module,
//! pinned by the object the call runs on, can always unload in the end).
//!
//! Two implementations: `faulty` (page map, then descriptors, as the real
//! FCMs) and `faulty_desc` (descriptors only), so import faults hit both
//! transfer paths.

use core::ffi::{c_int, c_void};
use kernel::debugfs::Scope;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed};
use kernel::sync::{new_mutex, Mutex};
use kernel::time::{delay::fsleep, Delta, Instant, Monotonic};

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
use fcm_pages::{BackingFile, CachePage, DescriptorExport, Entry, MapState, PageMap};

module! {
    type: FcmFaultyModule,
    name: "fcm_faulty",
    authors: ["hotswap developers"],
    description: "hotswap test FCM with fault-injection knobs (debugfs)",
    license: "GPL",
}

const PAGE: i64 = PAGE_SIZE as i64;

/// The knobs (see the module docs); all 0 but `hold_limit_ms` means no
/// fault.
struct Knobs {
    fail_export: Atomic<u32>,
    fail_import: Atomic<u32>,
    bogus_export: Atomic<i32>,
    bogus_import: Atomic<i32>,
    read_excess: Atomic<u64>,
    hold: Atomic<u32>,
    released: Atomic<u64>,
    hold_limit_ms: Atomic<u32>,
    delay_us: Atomic<u32>,
    transfer_delay_ms: Atomic<u32>,
    held: Atomic<u32>,
    tickets: Atomic<u64>,
    injected: Atomic<u64>,
}

static KNOBS: Knobs = Knobs {
    fail_export: Atomic::new(0),
    fail_import: Atomic::new(0),
    bogus_export: Atomic::new(0),
    bogus_import: Atomic::new(0),
    read_excess: Atomic::new(0),
    hold: Atomic::new(0),
    released: Atomic::new(0),
    hold_limit_ms: Atomic::new(20_000),
    delay_us: Atomic::new(0),
    transfer_delay_ms: Atomic::new(0),
    held: Atomic::new(0),
    tickets: Atomic::new(0),
    injected: Atomic::new(0),
};

fn injected() {
    KNOBS.injected.fetch_add(1, Relaxed);
}

/// The error a `fail_*` knob set to `n` asks for (`EIO` if `n` is no errno).
fn knob_error(n: u32) -> Error {
    match i32::try_from(n) {
        Ok(n @ 1..=4095) => Error::from_errno(-n),
        _ => EIO,
    }
}

/// Faults at the entry of a read or write: the delay, then a hold.
fn enter_call() {
    let delay = KNOBS.delay_us.load(Relaxed);
    if delay != 0 {
        fsleep(Delta::from_micros(i64::from(delay)));
    }
    let mut armed = KNOBS.hold.load(Relaxed);
    while armed != 0 {
        match KNOBS.hold.cmpxchg(armed, armed - 1, Full) {
            Ok(_) => return hold(),
            Err(now) => armed = now,
        }
    }
}

/// Waits until this call's ticket is released, or the hold limit passes.
fn hold() {
    let ticket = KNOBS.tickets.fetch_add(1, Full);
    KNOBS.held.fetch_add(1, Full);
    injected();
    let start = Instant::<Monotonic>::now();
    // Ordering: pairs with the store of a debugfs write to `released`.
    while KNOBS.released.load(Acquire) <= ticket {
        let limit = i64::from(KNOBS.hold_limit_ms.load(Relaxed));
        if start.elapsed().as_millis() >= limit {
            pr_info!(
                "held call {} goes on by itself after {} ms\n",
                ticket,
                limit
            );
            break;
        }
        fsleep(Delta::from_millis(2));
    }
    KNOBS.held.fetch_sub(1, Full);
}

/// The delay export and import start with.
fn transfer_delay() {
    let delay = KNOBS.transfer_delay_ms.load(Relaxed);
    if delay != 0 {
        fsleep(Delta::from_millis(i64::from(delay)));
    }
}

struct Inner {
    /// `None` only in an empty replacement before its import.
    file: Option<BackingFile>,
    pages: PageMap,
    size: i64,
    capacity: u64,
    stats: FcmStats,
}

impl Inner {
    fn file(&self) -> Result<&BackingFile> {
        self.file.as_ref().ok_or(EBADF)
    }

    /// Page `index`, brought in on a miss: read from the file when `fill`
    /// (a write that covers the whole page needs no read).
    fn page(&mut self, index: u64, fill: bool) -> Result<&Entry> {
        if self.pages.get(index).is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
            let page = CachePage::alloc()?;
            self.stats.allocated += 1;
            if fill && (index as i64) * PAGE < self.size {
                if let Err(err) = self.file().and_then(|f| f.fill(index, &page)) {
                    self.stats.freed += 1;
                    return Err(err);
                }
                self.stats.fills += 1;
            }
            // On failure the entry, and the page with it, is freed.
            let added = Entry::boxed(page, false, true)
                .and_then(|entry| self.pages.insert(index, entry).map(|_| ()));
            if let Err(err) = added {
                self.stats.freed += 1;
                return Err(err);
            }
            self.stats.cached += 1;
        }
        self.pages.get(index).ok_or(EINVAL)
    }

    /// Bytes of page `index` inside the file.
    fn valid_len(&self, index: u64) -> usize {
        (self.size - index as i64 * PAGE).clamp(0, PAGE) as usize
    }

    fn write_back(&mut self, index: u64) -> Result {
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

    /// Writes back the dirty pages with an index in `first..=last`.
    fn write_back_range(&mut self, first: u64, last: u64) -> Result {
        let mut dirty = KVec::new();
        let mut failed = Ok(());
        self.pages.for_each(|index, entry| {
            if failed.is_ok() && entry.dirty.load(Relaxed) && (first..=last).contains(&index) {
                failed = dirty.push(index, GFP_KERNEL);
            }
        });
        failed?;
        for index in dirty {
            self.write_back(index)?;
        }
        Ok(())
    }

    /// Evicts the lowest-indexed pages until at most `keep` are cached.
    fn evict_to(&mut self, keep: u64) -> Result<u64> {
        let excess = self.stats.cached.saturating_sub(keep);
        if excess == 0 {
            return Ok(0);
        }
        let mut evicted = 0;
        for index in self.pages.indices()?.iter().take(excess as usize) {
            self.write_back(*index)?;
            if self.pages.remove(*index).is_some() {
                self.stats.cached -= 1;
                self.stats.freed += 1;
                self.stats.evictions += 1;
                evicted += 1;
            }
        }
        Ok(evicted)
    }

    fn respect_capacity(&mut self) -> Result {
        if self.capacity != 0 && self.stats.cached > self.capacity {
            self.evict_to(self.capacity - self.capacity / 8)?;
        }
        Ok(())
    }

    fn counters(&self) -> FcmStats {
        FcmStats {
            size: self.size,
            capacity: self.capacity,
            ..self.stats
        }
    }
}

/// The `fcm`/`faulty` (and `faulty_desc`) implementation.
pub struct FaultyFcm {
    inner: Pin<KBox<Mutex<Inner>>>,
}

impl FaultyFcm {
    fn new(file: Option<BackingFile>, capacity: u64) -> Result<KBox<Self>> {
        let size = file.as_ref().map_or(0, |f| f.size());
        let inner = KBox::pin_init(
            new_mutex!(Inner {
                file,
                pages: PageMap::new()?,
                size,
                capacity,
                stats: FcmStats::default(),
            }),
            GFP_KERNEL,
        )?;
        Ok(KBox::new(Self { inner }, GFP_KERNEL)?)
    }
}

impl FcmImpl for FaultyFcm {
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
            match inner.write_back_range(0, u64::MAX) {
                Ok(()) => {
                    if let Some(file) = inner.file.as_ref() {
                        let _ = file.sync(0, size);
                    }
                }
                Err(err) => pr_err!("write-back on close failed ({:?}); dirty data lost\n", err),
            }
        }
        inner.stats.freed += inner.pages.len();
        inner.stats.cached = 0;
        inner.stats.dirty = 0;
        inner.pages.clear();
    }

    fn read(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        enter_call();
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
        let read = (end.max(pos) - pos) as usize;
        let excess = KNOBS.read_excess.load(Relaxed);
        if excess != 0 {
            injected();
        }
        Ok(read.saturating_add(usize::try_from(excess).unwrap_or(usize::MAX)))
    }

    fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        enter_call();
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
        self.inner.lock().counters()
    }

    fn set_file(&self, file: *mut c_void) -> Result {
        // SAFETY: hotswap passes a live file for the call.
        let file = unsafe { BackingFile::new(file) };
        self.inner.lock().file = Some(file);
        Ok(())
    }

    fn export(&self, format: u32) -> Result<*mut c_void> {
        transfer_delay();
        let fail = KNOBS.fail_export.load(Relaxed);
        if fail != 0 {
            injected();
            return Err(knob_error(fail));
        }
        let mut inner = self.inner.lock();
        let stats = inner.counters();
        let file = inner.file()?.as_raw();
        match format {
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
        transfer_delay();
        let (file, stats, mut pages) = match format {
            // SAFETY: hotswap passes the state the exporter made.
            FORMAT_PAGEMAP => unsafe { fcm_pages::import_map(state)? },
            // SAFETY: As above.
            FORMAT_DESCRIPTORS => unsafe { fcm_pages::import_descriptors(state)? },
            _ => return Err(EINVAL),
        };
        let fail = KNOBS.fail_import.load(Relaxed);
        if fail != 0 {
            // Everything was adopted; hand it all back before failing, as
            // the contract asks, so the exporter's release can restore it.
            injected();
            give_back(format, state, &mut pages);
            drop(file);
            return Err(knob_error(fail));
        }
        let mut inner = self.inner.lock();
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

/// Undoes an import: the page map goes back into the [`MapState`]; adopted
/// descriptor pages are let go unfreed (the descriptors still name them).
fn give_back(format: u32, state: *mut c_void, pages: &mut PageMap) {
    if format == FORMAT_PAGEMAP {
        // SAFETY: `import_map` just took the map out of this live state;
        // the mediator serializes the transfer.
        if let Some(state) = unsafe { state.cast::<MapState>().as_mut() } {
            core::mem::swap(&mut state.map, pages);
        }
    }
    while let Some((_, entry)) = pages.pop_first() {
        let _ = KBox::into_inner(entry).page.into_raw();
    }
}

/// `export` for hotswap: [`FcmImpl::export`], then `bogus_export`'s value
/// in place of 0 if it is set (the state is stored all the same).
unsafe extern "C" fn export_entry(obj: *mut c_void, format: u32, state: *mut *mut c_void) -> c_int {
    // SAFETY: hotswap passes objects this implementation's `create` made.
    let fcm = unsafe { &*obj.cast::<FaultyFcm>() };
    match fcm.export(format) {
        Ok(exported) => {
            // SAFETY: hotswap passes a valid out pointer.
            unsafe { *state = exported };
            let bogus = KNOBS.bogus_export.load(Relaxed);
            if bogus != 0 {
                injected();
            }
            bogus
        }
        Err(err) => err.to_errno(),
    }
}

/// `import` for hotswap: `bogus_import`'s value if it is set (nothing
/// adopted), else [`FcmImpl::import`].
unsafe extern "C" fn import_entry(obj: *mut c_void, format: u32, state: *mut c_void) -> c_int {
    let bogus = KNOBS.bogus_import.load(Relaxed);
    if bogus != 0 {
        injected();
        return bogus;
    }
    // SAFETY: As in `export_entry`.
    let fcm = unsafe { &*obj.cast::<FaultyFcm>() };
    match fcm.import(format, state) {
        Ok(()) => 0,
        Err(err) => err.to_errno(),
    }
}

static METHODS: FcmOps = fcm_api::fcm_methods::<FaultyFcm>();

/// The registration table for `formats` (export and import alike).
fn faulty_ops(formats: &[u32]) -> api::ImplOps {
    api::ImplOps {
        export: Some(export_entry),
        import: Some(import_entry),
        ..fcm_api::impl_ops::<FaultyFcm>(&METHODS, formats, formats)
    }
}

struct Faulty;

impl api::Implementation for Faulty {
    const INTERFACE: &'static CStr = c"fcm";
    const NAME: &'static CStr = c"faulty";

    fn ops() -> api::ImplOps {
        faulty_ops(&[FORMAT_PAGEMAP, FORMAT_DESCRIPTORS])
    }
}

struct FaultyDesc;

impl api::Implementation for FaultyDesc {
    const INTERFACE: &'static CStr = c"fcm";
    const NAME: &'static CStr = c"faulty_desc";

    fn ops() -> api::ImplOps {
        faulty_ops(&[FORMAT_DESCRIPTORS])
    }
}

struct FcmFaultyModule {
    // Dropped in this order: the implementations, then the knobs.
    _faulty: api::Registration,
    _faulty_desc: api::Registration,
    _knobs: Pin<KBox<Scope<()>>>,
}

impl kernel::Module for FcmFaultyModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let knobs = KBox::pin_init(
            Scope::dir((), c"fcm_faulty", |_, dir| {
                dir.read_write_file(c"fail_export", &KNOBS.fail_export);
                dir.read_write_file(c"fail_import", &KNOBS.fail_import);
                dir.read_write_file(c"bogus_export", &KNOBS.bogus_export);
                dir.read_write_file(c"bogus_import", &KNOBS.bogus_import);
                dir.read_write_file(c"read_excess", &KNOBS.read_excess);
                dir.read_write_file(c"hold", &KNOBS.hold);
                dir.read_write_file(c"released", &KNOBS.released);
                dir.read_write_file(c"hold_limit_ms", &KNOBS.hold_limit_ms);
                dir.read_write_file(c"delay_us", &KNOBS.delay_us);
                dir.read_write_file(c"transfer_delay_ms", &KNOBS.transfer_delay_ms);
                dir.read_only_file(c"held", &KNOBS.held);
                dir.read_only_file(c"tickets", &KNOBS.tickets);
                dir.read_only_file(c"injected", &KNOBS.injected);
            }),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _faulty: api::Registration::new::<Faulty>(module)?,
            _faulty_desc: api::Registration::new::<FaultyDesc>(module)?,
            _knobs: knobs,
        })
    }
}

#[kunit_tests(fcm_faulty)]
mod tests {
    use super::*;
    use fcm_conformance as c;

    // With every knob at 0, `faulty` is a correct FCM.

    #[test]
    fn miss_then_hit() -> Result {
        c::miss_then_hit::<FaultyFcm>()
    }

    #[test]
    fn reads_stop_at_eof() -> Result {
        c::reads_stop_at_eof::<FaultyFcm>()
    }

    #[test]
    fn writes_past_eof_reach_the_file_on_sync() -> Result {
        c::writes_past_eof_reach_the_file_on_sync::<FaultyFcm>()
    }

    #[test]
    fn capacity_bound_evicts_and_accounts() -> Result {
        c::capacity_bound_evicts_and_accounts::<FaultyFcm>()
    }

    #[test]
    fn closing_writes_back() -> Result {
        c::closing_writes_back::<FaultyFcm>()
    }

    #[test]
    fn set_file_moves_write_back() -> Result {
        c::set_file_moves_write_back::<FaultyFcm>()
    }

    #[test]
    fn descriptor_transfer_moves_pages_without_rereading() -> Result {
        c::descriptor_transfer_moves_pages_without_rereading::<FaultyFcm>()
    }

    #[test]
    fn aborted_transfer_restores_the_old_cache() -> Result {
        c::aborted_transfer_restores_the_old_cache::<FaultyFcm>()
    }

    #[test]
    fn pagemap_transfer_hands_the_map_over() -> Result {
        c::pagemap_transfer_hands_the_map_over::<FaultyFcm>()
    }

    #[test]
    fn aborted_pagemap_transfer_restores_the_map() -> Result {
        c::aborted_pagemap_transfer_restores_the_map::<FaultyFcm>()
    }
}
