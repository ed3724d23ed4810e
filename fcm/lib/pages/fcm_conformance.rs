// SPDX-License-Identifier: GPL-2.0
//! Conformance tests every FCM implementation must pass, generic over
//! [`FcmImpl`]: each FCM module's KUnit suite runs them on its own type,
//! over real (tmpfs) files. Compiled into each FCM module next to
//! `fcm_api.rs`.

use crate::fcm_api::{
    Buffer, FcmCreate, FcmImpl, FcmStats, EVICT_RECLAIM, EVICT_REVALIDATE, FORMAT_DESCRIPTORS,
    FORMAT_PAGEMAP, PAGE_SIZE, SYNC_FILE,
};
use crate::fcm_pages::BackingFile;
use kernel::prelude::*;

/// Fails the test (returns `EINVAL`) with a log line if `$cond` is false;
/// unlike `assert!` outside a KUnit suite, it does not panic the kernel.
macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            pr_err!(
                "check failed at {}:{}: {}\n",
                file!(),
                line!(),
                stringify!($cond)
            );
            return Err(EINVAL);
        }
    };
}

/// [`check!`] for equality, logging both sides.
macro_rules! check_eq {
    ($a:expr, $b:expr) => {
        let (a, b) = (&$a, &$b);
        if a != b {
            pr_err!(
                "check failed at {}:{}: {} == {}: {:?} != {:?}\n",
                file!(),
                line!(),
                stringify!($a),
                stringify!($b),
                a,
                b
            );
            return Err(EINVAL);
        }
    };
}

extern "C" {
    /// An unlinked tmpfs file (hotswap.ko's `test_support.c`).
    fn hotswap_kunit_tmpfile(name: *const core::ffi::c_char) -> *mut core::ffi::c_void;
    // hotswap_fcm.ko's `fcm_mapped.c`: a mappings handle, and what a
    // fault does with a page it was lent.
    fn hotswap_fcm_maps_new() -> *mut core::ffi::c_void;
    fn hotswap_fcm_maps_put(maps: *mut core::ffi::c_void);
    fn hotswap_fcm_page_live(page: *mut core::ffi::c_void) -> bool;
    fn hotswap_fcm_page_return(page: *mut core::ffi::c_void);
    fn hotswap_fcm_page_busy(page: *mut core::ffi::c_void) -> bool;
}

/// A page lent by [`FcmImpl::page`], as a fault holds it: given back on
/// drop.
struct Lent(*mut core::ffi::c_void);

impl Lent {
    fn live(&self) -> bool {
        // SAFETY: The lent reference keeps the page.
        unsafe { hotswap_fcm_page_live(self.0) }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // SAFETY: The reference the FCM lent, given back once.
        unsafe { hotswap_fcm_page_return(self.0) };
    }
}

/// A mappings handle with no address space listed, put on drop.
struct TestMaps(crate::fcm_api::MapsHandle);

impl TestMaps {
    fn new() -> Result<Self> {
        // SAFETY: FFI call with no requirements.
        let raw = unsafe { hotswap_fcm_maps_new() };
        crate::fcm_api::MapsHandle::new(raw).map(Self).ok_or(ENOMEM)
    }
}

impl Drop for TestMaps {
    fn drop(&mut self) {
        // SAFETY: The handle's own reference, put once.
        unsafe { hotswap_fcm_maps_put(self.0.as_ptr()) };
    }
}

/// A real (tmpfs, unlinked) file, put on drop. Test threads have no
/// path to the VM's filesystems, so the file has no path.
pub struct TempFile(BackingFile);

impl TempFile {
    /// A file holding `content`.
    pub fn new(name: &CStr, content: &[u8]) -> Result<Self> {
        // SAFETY: A NUL-terminated name.
        let file = kernel::error::from_err_ptr(unsafe { hotswap_kunit_tmpfile(name.as_ptr()) })?;
        // SAFETY: A new file, whose one reference is ours.
        let this = Self(unsafe { BackingFile::adopt(file) });
        this.0.write_at(0, content)?;
        Ok(this)
    }

    /// The file's bytes.
    pub fn contents(&self) -> Result<KVec<u8>> {
        let size = self.0.size() as usize;
        let mut out = KVec::from_elem(0u8, size, GFP_KERNEL)?;
        if self.0.read_at(0, &mut out)? != size {
            return Err(EIO);
        }
        Ok(out)
    }

    /// The `struct file *`, e.g. for an [`FcmCreate`] through a slot.
    pub fn as_ptr(&self) -> *mut core::ffi::c_void {
        self.0.as_raw()
    }

    /// A `T` caching this file.
    pub fn fcm<T: FcmImpl>(&self, capacity: u64) -> Result<KBox<T>> {
        T::create(&FcmCreate {
            file: self.0.as_raw(),
            capacity,
        })
    }
}

/// Byte `i` of the test pattern (never zero, so holes show).
fn pattern(i: usize) -> u8 {
    (i % 251) as u8 + 1
}

fn patterned(len: usize) -> Result<KVec<u8>> {
    let mut v = KVec::with_capacity(len, GFP_KERNEL)?;
    for i in 0..len {
        v.push(pattern(i), GFP_KERNEL)?;
    }
    Ok(v)
}

fn read<T: FcmImpl>(fcm: &KBox<T>, pos: i64, len: usize) -> Result<KVec<u8>> {
    let mut out = KVec::from_elem(0u8, len, GFP_KERNEL)?;
    let n = fcm.read(pos, Buffer::Kernel(out.as_mut_ptr()), len)?;
    out.truncate(n);
    Ok(out)
}

fn write<T: FcmImpl>(fcm: &KBox<T>, pos: i64, data: &[u8]) -> Result<usize> {
    fcm.write(pos, Buffer::Kernel(data.as_ptr().cast_mut()), data.len())
}

fn balanced(s: &FcmStats) -> bool {
    s.allocated == s.freed + s.cached
}

/// Conformance: miss_then_hit.
pub fn miss_then_hit<T: FcmImpl>() -> Result {
    let content = patterned(3 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_hit", &content)?;
    let fcm = file.fcm::<T>(0)?;
    check_eq!(&read(&fcm, 100, 200)?[..], &content[100..300]);
    let s = fcm.stats();
    check_eq!((s.misses, s.hits, s.fills), (1, 0, 1));
    check_eq!(&read(&fcm, 0, 3 * PAGE_SIZE)?[..], &content[..]);
    let s = fcm.stats();
    check_eq!((s.misses, s.hits, s.fills, s.cached), (3, 1, 3, 3));
    fcm.destroy(false);
    Ok(())
}

/// Conformance: reads_stop_at_eof.
pub fn reads_stop_at_eof<T: FcmImpl>() -> Result {
    let content = patterned(5000)?;
    let file = TempFile::new(c"fcm_test_eof", &content)?;
    let fcm = file.fcm::<T>(0)?;
    check_eq!(fcm.size(), 5000);
    check_eq!(&read(&fcm, 4096, 8192)?[..], &content[4096..]);
    check_eq!(read(&fcm, 6000, 10)?.len(), 0);
    check_eq!(
        fcm.read(-1, Buffer::Kernel(core::ptr::null_mut()), 1),
        Err(EINVAL)
    );
    fcm.destroy(false);
    Ok(())
}

/// Conformance: writes_past_eof_reach_the_file_on_sync.
pub fn writes_past_eof_reach_the_file_on_sync<T: FcmImpl>() -> Result {
    let content = patterned(5000)?;
    let file = TempFile::new(c"fcm_test_write", &content)?;
    let fcm = file.fcm::<T>(0)?;
    check_eq!(write(&fcm, 10_000, b"hello")?, 5);
    check_eq!(fcm.size(), 10_005);
    check_eq!(file.contents()?.len(), 5000);
    check_eq!(fcm.stats().dirty, 1);
    fcm.sync(0, i64::MAX, SYNC_FILE)?;
    let on_disk = file.contents()?;
    check_eq!(on_disk.len(), 10_005);
    check_eq!(&on_disk[..5000], &content[..]);
    check!(on_disk[5000..10_000].iter().all(|b| *b == 0));
    check_eq!(&on_disk[10_000..], b"hello");
    check_eq!(fcm.stats().dirty, 0);
    fcm.destroy(false);
    Ok(())
}

/// Conformance: capacity_bound_evicts_and_accounts.
pub fn capacity_bound_evicts_and_accounts<T: FcmImpl>() -> Result {
    let content = patterned(16 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_evict", &content)?;
    let fcm = file.fcm::<T>(4)?;
    check_eq!(&read(&fcm, 0, 16 * PAGE_SIZE)?[..], &content[..]);
    let s = fcm.stats();
    check!(s.cached <= 4);
    check!(s.evictions >= 12);
    check!(balanced(&s));
    // Dirty pages are written back before they go.
    for i in 0..8 {
        write(&fcm, (i * PAGE_SIZE) as i64, b"dirty")?;
    }
    fcm.evict(0, 0)?;
    let s = fcm.stats();
    check_eq!((s.cached, s.dirty), (0, 0));
    check!(balanced(&s));
    let on_disk = file.contents()?;
    for i in 0..8 {
        check_eq!(&on_disk[i * PAGE_SIZE..i * PAGE_SIZE + 5], b"dirty");
    }
    fcm.destroy(false);
    Ok(())
}

/// Conformance: closing_writes_back.
pub fn closing_writes_back<T: FcmImpl>() -> Result {
    let file = TempFile::new(c"fcm_test_close", b"0123456789")?;
    let fcm = file.fcm::<T>(0)?;
    write(&fcm, 2, b"ab")?;
    fcm.destroy(false);
    check_eq!(&file.contents()?[..], b"01ab456789");
    Ok(())
}

/// Conformance: set_file_moves_write_back. Dirty pages go to the file
/// handed over by `set_file`, not to the one the FCM was created with.
pub fn set_file_moves_write_back<T: FcmImpl>() -> Result {
    let first = TempFile::new(c"fcm_test_first", b"0123456789")?;
    let fcm = first.fcm::<T>(0)?;
    write(&fcm, 2, b"ab")?;
    let second = TempFile::new(c"fcm_test_second", b"0123456789")?;
    // SAFETY: `second` stays open past the FCM's last use of it.
    unsafe { fcm.set_file(second.as_ptr()) }?;
    fcm.sync(0, i64::MAX, SYNC_FILE)?;
    check_eq!(&second.contents()?[..], b"01ab456789");
    check_eq!(&first.contents()?[..], b"0123456789");
    check_eq!(&read(&fcm, 0, 10)?[..], b"01ab456789");
    fcm.destroy(false);
    Ok(())
}

/// Conformance: descriptor_transfer_moves_pages_without_rereading.
pub fn descriptor_transfer_moves_pages_without_rereading<T: FcmImpl>() -> Result {
    let content = patterned(4 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_xfer", &content)?;
    let old = file.fcm::<T>(0)?;
    read(&old, 0, 3 * PAGE_SIZE)?;
    write(&old, 5, b"moved")?;
    let state = old.export(FORMAT_DESCRIPTORS)?;
    let new = T::create_empty()?;
    // SAFETY: `state` is `old`'s export in that format, imported and
    // released once.
    unsafe {
        new.import(FORMAT_DESCRIPTORS, state)?;
        old.release(FORMAT_DESCRIPTORS, state, true);
    }
    old.destroy(true);
    let before = new.stats();
    check_eq!((before.cached, before.dirty, before.fills), (3, 1, 3));
    // Cached pages are hits: nothing is read again because of the swap.
    check_eq!(&read(&new, 5, 5)?[..], b"moved");
    check_eq!(
        &read(&new, PAGE_SIZE as i64, 2 * PAGE_SIZE)?[..],
        &content[PAGE_SIZE..3 * PAGE_SIZE]
    );
    check_eq!(new.stats().fills, 3);
    new.sync(0, i64::MAX, SYNC_FILE)?;
    check_eq!(&file.contents()?[5..10], b"moved");
    check!(balanced(&new.stats()));
    new.destroy(false);
    Ok(())
}

/// Conformance: aborted_transfer_restores_the_old_cache.
pub fn aborted_transfer_restores_the_old_cache<T: FcmImpl>() -> Result {
    let content = patterned(2 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_abort", &content)?;
    let old = file.fcm::<T>(0)?;
    read(&old, 0, 2 * PAGE_SIZE)?;
    write(&old, 0, b"kept")?;
    let state = old.export(FORMAT_DESCRIPTORS)?;
    // SAFETY: Format 7 is not one an FCM imports, so `state` is not
    // touched; it is `old`'s export, released once.
    check_eq!(unsafe { old.import(7, state) }, Err(EINVAL));
    // SAFETY: See above.
    unsafe { old.release(FORMAT_DESCRIPTORS, state, false) };
    let s = old.stats();
    check_eq!((s.cached, s.dirty, s.fills), (2, 1, 2));
    check_eq!(&read(&old, 0, 4)?[..], b"kept");
    check_eq!(old.stats().fills, 2);
    old.destroy(false);
    check_eq!(&file.contents()?[..4], b"kept");
    Ok(())
}

/// Conformance: the page map changes hands whole, nothing re-read.
pub fn pagemap_transfer_hands_the_map_over<T: FcmImpl>() -> Result {
    let content = patterned(5 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_map", &content)?;
    let old = file.fcm::<T>(0)?;
    read(&old, 0, 4 * PAGE_SIZE)?;
    write(&old, 3, b"map")?;
    let state = old.export(FORMAT_PAGEMAP)?;
    check_eq!(old.stats().cached, 4);
    let new = T::create_empty()?;
    // SAFETY: As in the descriptor transfer above.
    unsafe {
        new.import(FORMAT_PAGEMAP, state)?;
        old.release(FORMAT_PAGEMAP, state, true);
    }
    old.destroy(true);
    let s = new.stats();
    check_eq!((s.cached, s.dirty, s.fills), (4, 1, 4));
    check_eq!(&read(&new, 3, 3)?[..], b"map");
    check_eq!(
        &read(&new, PAGE_SIZE as i64, 3 * PAGE_SIZE)?[..],
        &content[PAGE_SIZE..4 * PAGE_SIZE]
    );
    check_eq!(new.stats().fills, 4);
    new.sync(0, i64::MAX, SYNC_FILE)?;
    check_eq!(&file.contents()?[3..6], b"map");
    check!(balanced(&new.stats()));
    new.destroy(false);
    Ok(())
}

/// Conformance: an aborted page-map transfer leaves the old FCM whole.
pub fn aborted_pagemap_transfer_restores_the_map<T: FcmImpl>() -> Result {
    let content = patterned(2 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_map_abort", &content)?;
    let old = file.fcm::<T>(0)?;
    read(&old, 0, 2 * PAGE_SIZE)?;
    write(&old, 0, b"mine")?;
    let state = old.export(FORMAT_PAGEMAP)?;
    // SAFETY: `state` is `old`'s export in that format, released once.
    unsafe { old.release(FORMAT_PAGEMAP, state, false) };
    let s = old.stats();
    check_eq!((s.cached, s.dirty, s.fills), (2, 1, 2));
    check_eq!(&read(&old, 0, 4)?[..], b"mine");
    check_eq!(old.stats().fills, 2);
    old.destroy(false);
    check_eq!(&file.contents()?[..4], b"mine");
    Ok(())
}

/// An address that faults: KUnit cases run in a kernel thread, which has
/// no user address space at all.
const FAULTING: Buffer = Buffer::User(0x10000);

/// Conformance: a write whose buffer faults changes nothing. It used to
/// cache a zeroed page on a whole-page miss before the copy failed, which
/// later reads returned and a later write-back wrote over the file.
pub fn faulting_write_changes_nothing<T: FcmImpl>() -> Result {
    let content = patterned(2 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_fault", &content)?;
    let fcm = file.fcm::<T>(0)?;
    // A whole page that is not cached yet.
    check_eq!(fcm.write(0, FAULTING, PAGE_SIZE), Err(EFAULT));
    check_eq!(&read(&fcm, 0, PAGE_SIZE)?[..], &content[..PAGE_SIZE]);
    // Part of a cached page, and bytes past the end of the file.
    read(&fcm, PAGE_SIZE as i64, PAGE_SIZE)?;
    check_eq!(fcm.write(PAGE_SIZE as i64 + 10, FAULTING, 100), Err(EFAULT));
    check_eq!(fcm.write(2 * PAGE_SIZE as i64, FAULTING, 10), Err(EFAULT));
    check_eq!(fcm.size(), 2 * PAGE_SIZE as i64);
    check_eq!(&read(&fcm, 0, 2 * PAGE_SIZE)?[..], &content[..]);
    check_eq!(fcm.stats().dirty, 0);
    fcm.sync(0, i64::MAX, SYNC_FILE)?;
    fcm.destroy(false);
    check_eq!(&file.contents()?[..], &content[..]);
    Ok(())
}

/// A page index past 2 GiB: the test files are opened without
/// `O_LARGEFILE`, so a write-back there fails (`EFBIG`) as the VFS checks
/// any write, a failing backing file without a broken device.
const PAST_2GIB: usize = 600_000;

/// Another `struct file` of `file`'s inode, opened `O_RDWR | O_LARGEFILE`:
/// write-back through it reaches past 2 GiB.
struct LargeTwin(BackingFile);

impl LargeTwin {
    fn of(file: &TempFile) -> Result<Self> {
        Ok(Self(file.0.reopen_large()?))
    }

    /// `len` bytes of the file at `pos` (fewer at its end).
    fn read(&self, pos: usize, len: usize) -> Result<KVec<u8>> {
        let mut out = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        let n = self.0.read_at(pos as i64, &mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// Conformance: a dirty page whose write-back fails stays cached and
/// dirty, the failure is counted (for `fsync` and `close` to report), and
/// reads go on: eviction passes the page over instead of failing every
/// call that needs room.
pub fn failed_write_back_keeps_the_page_and_reads_go_on<T: FcmImpl>() -> Result {
    let content = patterned(12 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_wb_error", &content)?;
    let fcm = file.fcm::<T>(4)?;
    let (first, second) = (PAST_2GIB * PAGE_SIZE, (PAST_2GIB + 1) * PAGE_SIZE);
    write(&fcm, first as i64, b"first")?;
    write(&fcm, second as i64, b"second")?;
    // Eight more pages through a cache of four: the dirty ones, the least
    // recently used, cannot go; clean ones must.
    for i in 0..8 {
        let at = i * PAGE_SIZE;
        check_eq!(
            &read(&fcm, at as i64, PAGE_SIZE)?[..],
            &content[at..at + PAGE_SIZE]
        );
    }
    let s = fcm.stats();
    check!(s.cached <= 4);
    check_eq!(s.dirty, 2);
    check!(s.wb_errors > 0);
    check_eq!(s.wb_errno, EFBIG.to_errno() as i64);
    check_eq!(fcm.sync(0, i64::MAX, SYNC_FILE), Err(EFBIG));
    // A file that can reach there: everything gets written.
    let twin = LargeTwin::of(&file)?;
    // SAFETY: `twin` stays open past the FCM's last use of it.
    unsafe { fcm.set_file(twin.0.as_raw()) }?;
    fcm.sync(0, i64::MAX, SYNC_FILE)?;
    check_eq!(fcm.stats().dirty, 0);
    check_eq!(&twin.read(first, 5)?[..], b"first");
    check_eq!(&twin.read(second, 6)?[..], b"second");
    check!(balanced(&fcm.stats()));
    fcm.destroy(false);
    Ok(())
}

/// Conformance: truncation shrinks the cache and the file together (dirty
/// pages past the end go unwritten), and growing again reads zeros.
pub fn truncate_shrinks_and_grows<T: FcmImpl>() -> Result {
    let content = patterned(3 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_truncate", &content)?;
    let fcm = file.fcm::<T>(0)?;
    read(&fcm, 0, 3 * PAGE_SIZE)?;
    write(&fcm, 2 * PAGE_SIZE as i64 + 5, b"gone")?;
    let end = PAGE_SIZE + 100;
    fcm.truncate(end as i64)?;
    check_eq!(fcm.size(), end as i64);
    check_eq!(&read(&fcm, 0, 3 * PAGE_SIZE)?[..], &content[..end]);
    let s = fcm.stats();
    check_eq!((s.cached, s.dirty), (2, 0));
    check!(balanced(&s));
    check_eq!(&file.contents()?[..], &content[..end]);
    // Growing: the old bytes past `end` do not come back.
    fcm.truncate(3 * PAGE_SIZE as i64)?;
    write(&fcm, 3 * PAGE_SIZE as i64 - 4, b"tail")?;
    let grown = read(&fcm, 0, 3 * PAGE_SIZE)?;
    check_eq!(&grown[..end], &content[..end]);
    check!(grown[end..3 * PAGE_SIZE - 4].iter().all(|b| *b == 0));
    check_eq!(&grown[3 * PAGE_SIZE - 4..], b"tail");
    fcm.sync(0, i64::MAX, SYNC_FILE)?;
    check_eq!(&file.contents()?[..], &grown[..]);
    check_eq!(fcm.truncate(-1), Err(EINVAL));
    check_eq!(fcm.size(), 3 * PAGE_SIZE as i64);
    fcm.destroy(false);
    Ok(())
}

/// Conformance: an aborted descriptor transfer leaves the old FCM exactly
/// as it was without allocating anything (the pages were only lent), and
/// a completed one leaves the old FCM owning nothing.
pub fn descriptor_transfer_lends_the_pages<T: FcmImpl>() -> Result {
    let content = patterned(3 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_lend", &content)?;
    let old = file.fcm::<T>(0)?;
    read(&old, 0, 3 * PAGE_SIZE)?;
    write(&old, 1, b"lent")?;
    let state = old.export(FORMAT_DESCRIPTORS)?;
    // While lent, the exporter still has every page (it is quiescent).
    check_eq!(old.stats().cached, 3);
    // SAFETY: `state` is `old`'s export in that format, released once.
    unsafe { old.release(FORMAT_DESCRIPTORS, state, false) };
    check_eq!(&read(&old, 1, 4)?[..], b"lent");
    check_eq!(old.stats().fills, 3);
    let state = old.export(FORMAT_DESCRIPTORS)?;
    let new = T::create_empty()?;
    // SAFETY: `state` is `old`'s export in that format, imported and
    // released once.
    unsafe {
        new.import(FORMAT_DESCRIPTORS, state)?;
        old.release(FORMAT_DESCRIPTORS, state, true);
    }
    old.destroy(true);
    check_eq!(&read(&new, 1, 4)?[..], b"lent");
    check_eq!(new.stats().fills, 3);
    new.destroy(false);
    check_eq!(&file.contents()?[1..5], b"lent");
    Ok(())
}

/// Conformance: reclaim_takes_clean_pages_only. Memory reclaim frees
/// clean pages, coldest first, and leaves dirty ones (and their bytes)
/// alone; `pages` follows the count.
pub fn reclaim_takes_clean_pages_only<T: FcmImpl>() -> Result {
    let content = patterned(16 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_reclaim", &content)?;
    let fcm = file.fcm::<T>(0)?;
    check_eq!(&read(&fcm, 0, 16 * PAGE_SIZE)?[..], &content[..]);
    for i in [3usize, 7, 11] {
        write(&fcm, (i * PAGE_SIZE) as i64, b"dirty")?;
    }
    check_eq!(fcm.pages(), 16);
    // Pages 12..15 were used again: reclaim takes colder ones first.
    check_eq!(
        &read(&fcm, 12 * PAGE_SIZE as i64, 4 * PAGE_SIZE)?[..],
        &content[12 * PAGE_SIZE..]
    );
    check_eq!(fcm.evict(12, EVICT_RECLAIM)?, 4);
    check_eq!(fcm.pages(), 12);
    let before = fcm.stats().fills;
    check_eq!(
        &read(&fcm, 12 * PAGE_SIZE as i64, 4 * PAGE_SIZE)?[..],
        &content[12 * PAGE_SIZE..]
    );
    check_eq!(fcm.stats().fills, before);
    // All the way down: only the dirty pages stay, nothing written back.
    check_eq!(fcm.evict(0, EVICT_RECLAIM)?, 9);
    let s = fcm.stats();
    check_eq!((s.cached, s.dirty, s.writebacks), (3, 3, 0));
    check_eq!(fcm.pages(), 3);
    check!(balanced(&s));
    check_eq!(&file.contents()?[..], &content[..]);
    let mut expected = KVec::with_capacity(content.len(), GFP_KERNEL)?;
    expected.extend_from_slice(&content, GFP_KERNEL)?;
    for i in [3usize, 7, 11] {
        expected[i * PAGE_SIZE..i * PAGE_SIZE + 5].copy_from_slice(b"dirty");
    }
    check_eq!(&read(&fcm, 0, 16 * PAGE_SIZE)?[..], &expected[..]);
    fcm.sync(0, i64::MAX, 0)?;
    check_eq!(&file.contents()?[..], &expected[..]);
    check_eq!(fcm.evict(0, EVICT_RECLAIM)?, 16);
    check_eq!(fcm.pages(), 0);
    check!(balanced(&fcm.stats()));
    fcm.destroy(false);
    Ok(())
}

/// Conformance: after the file changed behind the cache, revalidation
/// drops the clean pages (reads see the new bytes and, with nothing dirty,
/// the new size) and keeps the dirty ones, writing nothing back.
pub fn revalidate_drops_clean_pages_and_rereads_the_size<T: FcmImpl>() -> Result {
    let content = patterned(4 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_revalidate", &content)?;
    let fcm = file.fcm::<T>(0)?;
    check_eq!(&read(&fcm, 0, 4 * PAGE_SIZE)?[..], &content[..]);
    // Someone else rewrites page 1 and grows the file by a page.
    let theirs = [0x5au8; PAGE_SIZE];
    file.0.write_at(PAGE_SIZE as i64, &theirs)?;
    file.0.write_at(4 * PAGE_SIZE as i64, &theirs)?;
    // Unrevalidated, the cache still answers from its stale copy.
    check_eq!(
        &read(&fcm, PAGE_SIZE as i64, 16)?[..],
        &content[PAGE_SIZE..PAGE_SIZE + 16]
    );
    check_eq!(fcm.evict(u64::MAX, EVICT_REVALIDATE)?, 4);
    let s = fcm.stats();
    check_eq!((s.cached, s.size), (0, 5 * PAGE_SIZE as i64));
    check!(balanced(&s));
    check_eq!(&read(&fcm, PAGE_SIZE as i64, PAGE_SIZE)?[..], &theirs[..]);
    check_eq!(
        &read(&fcm, 4 * PAGE_SIZE as i64, PAGE_SIZE)?[..],
        &theirs[..]
    );
    // A dirty page stays, unwritten, and so does the size it made.
    write(&fcm, 6 * PAGE_SIZE as i64, b"ours")?;
    file.0.truncate(PAGE_SIZE as i64)?;
    let writebacks = fcm.stats().writebacks;
    check_eq!(fcm.evict(0, EVICT_REVALIDATE)?, 2);
    let s = fcm.stats();
    check_eq!((s.cached, s.dirty, s.writebacks), (1, 1, writebacks));
    check_eq!(s.size, 6 * PAGE_SIZE as i64 + 4);
    check!(balanced(&s));
    check_eq!(&read(&fcm, 6 * PAGE_SIZE as i64, 8)?[..], b"ours");
    fcm.destroy(false);
    Ok(())
}

/// Conformance: a write-back writes only the bytes the FCM's writers
/// changed, not the rest of the page as it was filled: bytes someone else
/// wrote to the file meanwhile survive (also across a state transfer).
pub fn write_back_keeps_bytes_it_did_not_write<T: FcmImpl>() -> Result {
    let content = patterned(3 * PAGE_SIZE)?;
    let file = TempFile::new(c"fcm_test_wb_bytes", &content)?;
    let fcm = file.fcm::<T>(0)?;
    check_eq!(&read(&fcm, 0, 3 * PAGE_SIZE)?[..], &content[..]);
    // Someone else writes pages 1 and 2 behind the cache.
    let theirs = [0x77u8; 2 * PAGE_SIZE];
    file.0.write_at(PAGE_SIZE as i64, &theirs)?;
    // Two writes into page 1 (stale in the cache), one into page 2.
    write(&fcm, PAGE_SIZE as i64 + 10, b"ab")?;
    write(&fcm, PAGE_SIZE as i64 + 20, b"cd")?;
    write(&fcm, 3 * PAGE_SIZE as i64 - 1, b"z")?;
    fcm.sync(0, i64::MAX, 0)?;
    let mut expected = KVec::with_capacity(content.len(), GFP_KERNEL)?;
    expected.extend_from_slice(&content[..PAGE_SIZE], GFP_KERNEL)?;
    expected.extend_from_slice(&theirs, GFP_KERNEL)?;
    expected[PAGE_SIZE + 10..PAGE_SIZE + 12].copy_from_slice(b"ab");
    // The bytes between two writes of one page are the cache's copy.
    expected[PAGE_SIZE + 12..PAGE_SIZE + 20]
        .copy_from_slice(&content[PAGE_SIZE + 12..PAGE_SIZE + 20]);
    expected[PAGE_SIZE + 20..PAGE_SIZE + 22].copy_from_slice(b"cd");
    expected[3 * PAGE_SIZE - 1] = b'z';
    check_eq!(&file.contents()?[..], &expected[..]);
    // A page written again after its write-back: only the new bytes.
    file.0.write_at(PAGE_SIZE as i64, &theirs[..PAGE_SIZE])?;
    expected[PAGE_SIZE..2 * PAGE_SIZE].copy_from_slice(&theirs[..PAGE_SIZE]);
    write(&fcm, PAGE_SIZE as i64 + 100, b"e")?;
    expected[PAGE_SIZE + 100] = b'e';
    // The range travels with a descriptor transfer.
    let state = fcm.export(FORMAT_DESCRIPTORS)?;
    let next = T::create_empty()?;
    // SAFETY: `state` is `fcm`'s export in that format, imported and
    // released once.
    unsafe {
        next.import(FORMAT_DESCRIPTORS, state)?;
        fcm.release(FORMAT_DESCRIPTORS, state, true);
    }
    fcm.destroy(true);
    next.sync(0, i64::MAX, 0)?;
    check_eq!(&file.contents()?[..], &expected[..]);
    next.destroy(false);
    Ok(())
}

/// Conformance: a page lent to a fault (`page`) is the cached page with a
/// reference for the fault, marked; none past the end of the file; memory
/// reclaim leaves a lent page while the fault holds it, and any other
/// free (eviction, truncation) takes the mark off first, so that the
/// fault sees it went.
pub fn lent_pages_stay_marked_until_freed<T: FcmImpl>() -> Result {
    let content = patterned(2 * PAGE_SIZE + 10)?;
    let file = TempFile::new(c"fcm_test_lend", &content)?;
    let fcm = file.fcm::<T>(0)?;
    let maps = TestMaps::new()?;
    check!(matches!(fcm.page(3, maps.0), Err(e) if e == ENXIO));
    check!(matches!(fcm.page(u64::MAX, maps.0), Err(e) if e == ENXIO));
    let lent = Lent(fcm.page(2, maps.0)?);
    check!(lent.live());
    // SAFETY: The lent reference keeps the page.
    check!(unsafe { hotswap_fcm_page_busy(lent.0) });
    check_eq!(fcm.stats().cached, 1);
    // The same page again, to a second fault; and its bytes are the file's.
    let again = Lent(fcm.page(2, maps.0)?);
    check_eq!(again.0, lent.0);
    drop(again);
    check_eq!(
        &read(&fcm, 2 * PAGE_SIZE as i64, 10)?[..],
        &content[2 * PAGE_SIZE..]
    );
    check_eq!(fcm.stats().cached, 1);
    // Reclaim passes over it while lent, takes it once given back.
    check_eq!(fcm.evict(0, EVICT_RECLAIM)?, 0);
    check!(lent.live());
    drop(lent);
    check_eq!(fcm.evict(0, EVICT_RECLAIM)?, 1);
    // Eviction and truncation free lent pages, taking the mark off.
    let first = Lent(fcm.page(0, maps.0)?);
    check_eq!(fcm.evict(0, 0)?, 1);
    check!(!first.live());
    let last = Lent(fcm.page(1, maps.0)?);
    fcm.truncate(PAGE_SIZE as i64)?;
    check!(!last.live());
    check!(matches!(fcm.page(1, maps.0), Err(e) if e == ENXIO));
    drop((first, last));
    check!(balanced(&fcm.stats()));
    fcm.destroy(false);
    Ok(())
}
