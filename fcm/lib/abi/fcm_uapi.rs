// SPDX-License-Identifier: GPL-2.0
//! The FCM subsystem's part of the ioctl ABI: the cached-file device
//! (`/dev/hotswap-file`) and FCM memory. Like `uapi.rs`, whose numbering
//! scheme it uses (the same type byte, numbers from 0x20), it is `core`
//! only and compiled into both `hotswap_fcm.ko` and `hswapctl`, mounted
//! beside `uapi` at the crate root.

use crate::uapi::{ioc, IOC_READ, IOC_WRITE};

/// The cached-file device: open it, attach a backing file, then read,
/// write, seek and fsync go through the FCM of that file's inode.
pub const FILE_DEVICE_PATH: &str = "/dev/hotswap-file";

/// Facts about an attached cached file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FileInfo {
    /// The FCM's object id (for `hswapctl status`).
    pub object: u32,
    /// Padding; zero.
    pub reserved: u32,
    /// File size as the cache sees it.
    pub size: i64,
    /// Reads and writes that found their page cached.
    pub hits: u64,
    /// Reads and writes that brought a page in.
    pub misses: u64,
    /// Pages read from the backing file.
    pub fills: u64,
    /// Dirty pages written back.
    pub writebacks: u64,
    /// Pages evicted.
    pub evictions: u64,
    /// Pages cached now.
    pub cached: u64,
    /// Dirty pages now.
    pub dirty: u64,
    /// Pages allocated, ever.
    pub allocated: u64,
    /// Pages freed, ever.
    pub freed: u64,
    /// Write-backs that failed, ever.
    pub wb_errors: u64,
    /// The errno of the latest failed write-back (negative; 0: none).
    pub wb_errno: i64,
}

/// Attach the backing file whose descriptor is the `u32` argument.
pub const HOTSWAP_FILE_IOC_ATTACH: u32 = ioc(IOC_WRITE, 0x20, size_of::<u32>());
/// Facts about the attached file.
pub const HOTSWAP_FILE_IOC_INFO: u32 = ioc(IOC_READ, 0x21, size_of::<FileInfo>());
/// Sets the cached file's size to the `u64` argument (`ftruncate(2)`; a
/// character device has none of its own). The device must be open for
/// writing.
pub const HOTSWAP_FILE_IOC_TRUNCATE: u32 = ioc(IOC_WRITE, 0x22, size_of::<u64>());

/// FCM memory (`hswapctl memory`), in pages: the global budget and use,
/// and the pages of each cached file's FCM ([`FcmPages`] entries, as in
/// [`ListRequest`]: `count` may exceed `capacity`, then ask again).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FcmMemoryRequest {
    /// In: user address of `capacity` [`FcmPages`].
    pub entries: u64,
    /// In: room at `entries`.
    pub capacity: u32,
    /// Out: FCMs of cached files (all of them, even past `capacity`).
    pub count: u32,
    /// Out: pages all FCMs together may hold (`hotswap_fcm.budget_pages`).
    pub budget: u64,
    /// Out: pages the FCMs one user other than root created may hold
    /// together (`hotswap_fcm.user_percent` of the budget).
    pub user_budget: u64,
    /// Out: pages all FCMs hold now.
    pub used: u64,
    /// Out: page allocations refused at the budget, ever.
    pub refused: u64,
    /// Out: pages freed by memory pressure (the shrinker, a memory cgroup's
    /// limit, an allocation that failed), ever.
    pub reclaimed_pressure: u64,
    /// Out: pages freed to stay within the budget, ever.
    pub reclaimed_budget: u64,
    /// Out: bytes in a page.
    pub page_size: u64,
}

/// Pages of one FCM.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FcmPages {
    /// Object id.
    pub object: u32,
    /// Padding; zero.
    pub reserved: u32,
    /// Pages it caches; `u64::MAX` while it is being swapped.
    pub pages: u64,
}

/// FCM memory ([`FcmMemoryRequest`]); needs no attached file.
pub const HOTSWAP_FILE_IOC_MEMORY: u32 =
    ioc(IOC_READ | IOC_WRITE, 0x23, size_of::<FcmMemoryRequest>());
/// Set the FCM memory budget in pages (a `u64`; needs `CAP_SYS_ADMIN`):
/// at least 1024 and at most the RAM's pages, else `EINVAL`.
pub const HOTSWAP_FILE_IOC_SET_BUDGET: u32 = ioc(IOC_WRITE, 0x24, size_of::<u64>());
