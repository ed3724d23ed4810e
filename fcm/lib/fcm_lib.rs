// SPDX-License-Identifier: GPL-2.0
//! hotswap_fcm: the File Cache Manager subsystem (K42's FCM, the per-file
//! page cache), a client of hotswap.ko like any other interface.
//!
//! ```text
//!   abi/      fcm_api.rs: the `fcm` interface (method table, formats,
//!             the typed adapter implementations use); fcm_uapi.rs: this
//!             subsystem's ioctls (also compiled into hswapctl)
//!   pages/    the page code every FCM shares (fcm_pages.rs), the
//!             single-lock cache (fcm_locked.rs), the conformance suite
//!             every FCM's KUnit runs (fcm_conformance.rs) and its tmpfs
//!             helper; compiled into the implementations, not here
//!   front/    the front ends, sharing one FCM per backing inode:
//!             /dev/hotswap-file and hotswapfs, the stackable filesystem
//!   memory/   the global budget, the memcg-aware shrinker, the worker,
//!             and their report (ioctl + debugfs)
//!   policy/   cpu_count, the decision policy that swaps an FCM to
//!             `distributed` when several CPUs use it
//! ```
//!
//! The implementations live beside this folder (`../shared`,
//! `../distributed`, `../monitor`); they link against the page allocator
//! this module exports, so they load after it.

use kernel::prelude::*;

#[path = "../../rust/abi/api.rs"]
pub mod api;
#[path = "front/cached_file.rs"]
mod cached_file;
#[path = "policy/cpu_count.rs"]
mod cpu_count;
#[path = "../../rust/kit/deferred.rs"]
mod deferred;
#[path = "abi/fcm_api.rs"]
pub mod fcm_api;
#[path = "front/fcm_counters.rs"]
mod fcm_counters;
#[path = "memory/fcm_memory.rs"]
mod fcm_memory;
#[path = "pages/fcm_pages.rs"]
pub mod fcm_pages;
#[path = "abi/fcm_uapi.rs"]
pub mod fcm_uapi;
#[path = "front/hotswapfs.rs"]
mod hotswapfs;
#[path = "front/hotswapfs_mmap.rs"]
mod hotswapfs_mmap;
#[path = "memory/memory_report.rs"]
mod memory_report;
#[path = "../../rust/abi/uapi.rs"]
pub mod uapi;

module! {
    type: HotswapFcm,
    name: "hotswap_fcm",
    authors: ["hotswap developers"],
    description: "hotswap File Cache Manager subsystem: the fcm interface, /dev/hotswap-file, hotswapfs, FCM memory",
    license: "GPL",
    params: {
        capacity: u64 {
            default: 16384,
            description: "Pages each File Cache Manager may cache (0: no bound)",
        },
    },
}

struct HotswapFcm {
    _fs: hotswapfs::Registration,
    _files: cached_file::Registration,
    _status: Pin<KBox<memory_report::Status>>,
    _policy: api::PolicyRegistration,
    _fcm: api::InterfaceRegistration,
    // After the cached files: no FCM page is left when the shrinker goes.
    _memory: fcm_memory::Registration,
    _deferred: deferred::Deferred,
    // Last: the registrations above still use the table when they go.
    _tables: GlobalTables,
}

/// Frees the cached-inode table's storage at unload (a `static` is never
/// dropped; kmemleak would report the buffer).
struct GlobalTables;

impl Drop for GlobalTables {
    fn drop(&mut self) {
        *cached_file::CACHED.lock() = cached_file::Table::new();
    }
}

impl kernel::Module for HotswapFcm {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Called once, before the device or any FCM exists.
        unsafe { cached_file::CACHED.init() };
        cached_file::CAPACITY.store(
            module_parameters::capacity.value(),
            kernel::sync::atomic::Release,
        );
        let deferred = deferred::Deferred::new(c"hotswap_fcm")?;
        let memory = fcm_memory::Registration::new()?;
        let fcm = api::InterfaceRegistration::new::<fcm_api::Fcm>(module)?;
        let policy = api::PolicyRegistration::new::<cpu_count::CpuCount>(module)?;
        let status = KBox::pin_init(memory_report::Status::new(), GFP_KERNEL)?;
        let files = cached_file::Registration::new()?;
        let fs = hotswapfs::Registration::new()?;
        Ok(Self {
            _fs: fs,
            _files: files,
            _status: status,
            _policy: policy,
            _fcm: fcm,
            _memory: memory,
            _deferred: deferred,
            _tables: GlobalTables,
        })
    }
}
