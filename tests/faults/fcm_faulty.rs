// SPDX-License-Identifier: GPL-2.0
//! `fcm_faulty`: a correct File Cache Manager with fault knobs, for the
//! fault-injection tests (`tests/vm/fault_injection.sh`). Test-only.
//!
//! With every knob at 0 it is `fcm_shared`'s cache (`fcm_locked.rs`: one
//! mutex, one page map, LRU eviction) and passes the FCM conformance suite. The
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
use kernel::time::{delay::fsleep, Delta, Instant, Monotonic};

#[path = "../../rust/abi/api.rs"]
pub mod api;
#[path = "../../fcm/lib/abi/fcm_api.rs"]
pub mod fcm_api;
#[path = "../../fcm/lib/pages/fcm_conformance.rs"]
pub mod fcm_conformance;
#[path = "../../fcm/lib/pages/fcm_locked.rs"]
pub mod fcm_locked;
#[path = "../../fcm/lib/pages/fcm_pages.rs"]
pub mod fcm_pages;

use fcm_api::{
    Buffer, FcmCreate, FcmImpl, FcmOps, FcmStats, MapsHandle, FORMAT_DESCRIPTORS, FORMAT_PAGEMAP,
};
use fcm_locked::LockedCache;
use fcm_pages::{BackingFile, MapState, PageMap};

module! {
    type: FcmFaultyModule,
    name: "fcm_faulty",
    authors: ["hotswap developers"],
    description: "hotswap test FCM with fault-injection knobs (debugfs)",
    license: "GPL",
}

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

/// The `fcm`/`faulty` (and `faulty_desc`) implementation: the single-lock
/// cache of `fcm_shared` (`fcm_locked.rs`) with the knobs in front.
pub struct FaultyFcm {
    cache: LockedCache,
}

impl FaultyFcm {
    fn new(file: Option<BackingFile>, capacity: u64) -> Result<KBox<Self>> {
        let cache = LockedCache::new(file, capacity)?;
        Ok(KBox::new(Self { cache }, GFP_KERNEL)?)
    }
}

// SAFETY: `export` returns what `fcm_pages`' export functions made, in
// the format asked for.
unsafe impl FcmImpl for FaultyFcm {
    fn create(args: &FcmCreate) -> Result<KBox<Self>> {
        // SAFETY: hotswap's front end passes a live file it holds.
        let file = unsafe { BackingFile::new(args.file) };
        Self::new(Some(file), args.capacity)
    }

    fn create_empty() -> Result<KBox<Self>> {
        Self::new(None, 0)
    }

    fn destroy(self: KBox<Self>, quiet: bool) {
        self.cache.destroy(quiet);
    }

    fn read(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        enter_call();
        let read = self.cache.read(pos, buf, len)?;
        let excess = KNOBS.read_excess.load(Relaxed);
        if excess != 0 {
            injected();
        }
        Ok(read.saturating_add(usize::try_from(excess).unwrap_or(usize::MAX)))
    }

    fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
        enter_call();
        self.cache.write(pos, buf, len)
    }

    fn sync(&self, start: i64, end: i64, flags: u32) -> Result {
        self.cache.sync(start, end, flags)
    }

    fn truncate(&self, size: i64) -> Result {
        self.cache.truncate(size)
    }

    fn size(&self) -> i64 {
        self.cache.size()
    }

    fn evict(&self, keep: u64, flags: u32) -> Result<u64> {
        self.cache.evict(keep, flags)
    }

    fn pages(&self) -> u64 {
        self.cache.pages()
    }

    fn stats(&self) -> FcmStats {
        self.cache.stats()
    }

    fn page(&self, index: u64, maps: MapsHandle) -> Result<*mut c_void> {
        self.cache.page(index, maps)
    }

    unsafe fn set_file(&self, file: *mut c_void) -> Result {
        // SAFETY: The caller passes a live file (`# Safety`).
        unsafe { self.cache.set_file(file) };
        Ok(())
    }

    fn export(&self, format: u32) -> Result<*mut c_void> {
        transfer_delay();
        let fail = KNOBS.fail_export.load(Relaxed);
        if fail != 0 {
            injected();
            return Err(knob_error(fail));
        }
        self.cache.export(format)
    }

    unsafe fn import(&self, format: u32, state: *mut c_void) -> Result {
        transfer_delay();
        let (file, stats, mut pages) = match format {
            // SAFETY: The caller passes an exported state (`# Safety`).
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
        self.cache.adopt(file, stats, pages);
        Ok(())
    }

    unsafe fn release(&self, format: u32, state: *mut c_void, taken: bool) {
        // SAFETY: The caller passes this object's export, once (`# Safety`).
        unsafe { self.cache.release(format, state, taken) }
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
    // SAFETY: hotswap passes the state the exporter made in `format` (the
    // `import` contract).
    match unsafe { fcm.import(format, state) } {
        Ok(()) => 0,
        Err(err) => err.to_errno(),
    }
}

/// The registration table for `formats` (export and import alike): the
/// FCM adapter's, with the transfer entries that inject faults.
fn faulty_ops(formats: &[u32]) -> api::ImplTable<fcm_api::Fcm> {
    static METHODS: FcmOps = fcm_api::fcm_methods::<FaultyFcm>();
    let adapted = fcm_api::impl_ops::<FaultyFcm>(formats, formats).into_raw();
    // SAFETY: The adapter's table for `FaultyFcm` with `METHODS`, the
    // adapter's method table for it, and `export_entry`/`import_entry`,
    // which keep the `export`/`import` contracts for `FaultyFcm` objects.
    unsafe {
        api::ImplTable::from_raw(
            &METHODS,
            api::ImplOps {
                export: Some(export_entry),
                import: Some(import_entry),
                ..adapted
            },
        )
    }
}

struct Faulty;

impl api::Implementation for Faulty {
    type Interface = fcm_api::Fcm;
    const NAME: &'static CStr = c"faulty";

    fn ops() -> api::ImplTable<fcm_api::Fcm> {
        faulty_ops(&[FORMAT_PAGEMAP, FORMAT_DESCRIPTORS])
    }
}

struct FaultyDesc;

impl api::Implementation for FaultyDesc {
    type Interface = fcm_api::Fcm;
    const NAME: &'static CStr = c"faulty_desc";

    fn ops() -> api::ImplTable<fcm_api::Fcm> {
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

    #[test]
    fn faulting_write_changes_nothing() -> Result {
        c::faulting_write_changes_nothing::<FaultyFcm>()
    }

    #[test]
    fn failed_write_back_keeps_the_page_and_reads_go_on() -> Result {
        c::failed_write_back_keeps_the_page_and_reads_go_on::<FaultyFcm>()
    }

    #[test]
    fn truncate_shrinks_and_grows() -> Result {
        c::truncate_shrinks_and_grows::<FaultyFcm>()
    }

    #[test]
    fn descriptor_transfer_lends_the_pages() -> Result {
        c::descriptor_transfer_lends_the_pages::<FaultyFcm>()
    }

    #[test]
    fn reclaim_takes_clean_pages_only() -> Result {
        c::reclaim_takes_clean_pages_only::<FaultyFcm>()
    }

    #[test]
    fn revalidate_drops_clean_pages_and_rereads_the_size() -> Result {
        c::revalidate_drops_clean_pages_and_rereads_the_size::<FaultyFcm>()
    }

    #[test]
    fn write_back_keeps_bytes_it_did_not_write() -> Result {
        c::write_back_keeps_bytes_it_did_not_write::<FaultyFcm>()
    }

    #[test]
    fn lent_pages_stay_marked_until_freed() -> Result {
        c::lent_pages_stay_marked_until_freed::<FaultyFcm>()
    }
}
