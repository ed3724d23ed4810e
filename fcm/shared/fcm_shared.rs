// SPDX-License-Identifier: GPL-2.0
//! `fcm_shared`: the File Cache Manager for one CPU — one lock, one map,
//! one LRU order. The cheapest FCM in memory and on a single CPU; every
//! call takes the one mutex, so several CPUs hitting it queue up (which is
//! what `fcm_distributed` is for). The cache itself is `fcm_locked.rs`,
//! which the fault-injection FCM shares; this module puts it behind the
//! FCM interface.

use core::ffi::c_void;
use kernel::prelude::*;

#[path = "../../rust/abi/api.rs"]
pub mod api;
#[path = "../lib/abi/fcm_api.rs"]
pub mod fcm_api;
#[path = "../lib/pages/fcm_conformance.rs"]
pub mod fcm_conformance;
#[path = "../lib/pages/fcm_locked.rs"]
pub mod fcm_locked;
#[path = "../lib/pages/fcm_pages.rs"]
pub mod fcm_pages;

use fcm_api::{
    Buffer, FcmCreate, FcmImpl, FcmStats, MapsHandle, FORMAT_DESCRIPTORS, FORMAT_PAGEMAP,
};
use fcm_locked::LockedCache;
use fcm_pages::BackingFile;

module! {
    type: FcmSharedModule,
    name: "fcm_shared",
    authors: ["hotswap developers"],
    description: "hotswap File Cache Manager: shared (single lock) implementation",
    license: "GPL",
}

/// The `fcm`/`shared` implementation.
pub struct SharedFcm {
    cache: LockedCache,
}

impl SharedFcm {
    fn new(file: Option<BackingFile>, capacity: u64) -> Result<KBox<Self>> {
        let cache = LockedCache::new(file, capacity)?;
        Ok(KBox::new(Self { cache }, GFP_KERNEL)?)
    }
}

// SAFETY: `export` returns what `fcm_pages`' export functions made, in
// the format asked for.
unsafe impl FcmImpl for SharedFcm {
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
        self.cache.read(pos, buf, len)
    }

    fn write(&self, pos: i64, buf: Buffer, len: usize) -> Result<usize> {
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
        self.cache.export(format)
    }

    unsafe fn import(&self, format: u32, state: *mut c_void) -> Result {
        // SAFETY: The caller passes an exported state (`# Safety`).
        unsafe { self.cache.import(format, state) }
    }

    unsafe fn release(&self, format: u32, state: *mut c_void, taken: bool) {
        // SAFETY: The caller passes this object's export, once (`# Safety`).
        unsafe { self.cache.release(format, state, taken) }
    }
}

impl api::Implementation for SharedFcm {
    type Interface = fcm_api::Fcm;
    const NAME: &'static CStr = c"shared";

    fn ops() -> api::ImplTable<fcm_api::Fcm> {
        let formats = [FORMAT_PAGEMAP, FORMAT_DESCRIPTORS];
        fcm_api::impl_ops::<SharedFcm>(&formats, &formats)
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
        assert!(api::impl_registered(c"fcm", SharedFcm::NAME));
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

    #[test]
    fn faulting_write_changes_nothing() -> Result {
        c::faulting_write_changes_nothing::<SharedFcm>()
    }

    #[test]
    fn failed_write_back_keeps_the_page_and_reads_go_on() -> Result {
        c::failed_write_back_keeps_the_page_and_reads_go_on::<SharedFcm>()
    }

    #[test]
    fn truncate_shrinks_and_grows() -> Result {
        c::truncate_shrinks_and_grows::<SharedFcm>()
    }

    #[test]
    fn descriptor_transfer_lends_the_pages() -> Result {
        c::descriptor_transfer_lends_the_pages::<SharedFcm>()
    }

    #[test]
    fn reclaim_takes_clean_pages_only() -> Result {
        c::reclaim_takes_clean_pages_only::<SharedFcm>()
    }

    #[test]
    fn revalidate_drops_clean_pages_and_rereads_the_size() -> Result {
        c::revalidate_drops_clean_pages_and_rereads_the_size::<SharedFcm>()
    }

    #[test]
    fn write_back_keeps_bytes_it_did_not_write() -> Result {
        c::write_back_keeps_bytes_it_did_not_write::<SharedFcm>()
    }

    #[test]
    fn lent_pages_stay_marked_until_freed() -> Result {
        c::lent_pages_stay_marked_until_freed::<SharedFcm>()
    }
}
