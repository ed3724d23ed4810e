// SPDX-License-Identifier: GPL-2.0
//! FCM memory as userspace reads it: the `HOTSWAP_FILE_IOC_MEMORY` and
//! `HOTSWAP_FILE_IOC_SET_BUDGET` requests of `/dev/hotswap-file`
//! (`hswapctl memory`, and the `pages` of `hswapctl list/status`) and
//! `/sys/kernel/debug/hotswap_fcm/memory`, both from the same figures.

use crate::cached_file;
use crate::fcm_api::PAGE_SIZE;
use crate::fcm_memory;
use crate::fcm_uapi::{FcmMemoryRequest, FcmPages};
use core::fmt::{self, Formatter};
use kernel::debugfs::{Dir, File};
use kernel::prelude::*;
use kernel::transmute::{AsBytes, FromBytes};
use kernel::uaccess::{UserPtr, UserSlice};

// SAFETY: `#[repr(C)]` structs of integers with explicit padding fields:
// every bit pattern is valid and there are no implicit padding bytes.
unsafe impl FromBytes for FcmMemoryRequest {}
// SAFETY: As above.
unsafe impl AsBytes for FcmMemoryRequest {}
// SAFETY: As above.
unsafe impl FromBytes for FcmPages {}
// SAFETY: As above.
unsafe impl AsBytes for FcmPages {}

// The layouts the ABI promises (no implicit padding anywhere).
const _: () = assert!(size_of::<FcmMemoryRequest>() == 72);
const _: () = assert!(size_of::<FcmPages>() == 16);

/// The pages of every cached file's FCM, without waiting (a busy table or
/// inode is left out; `u64::MAX`: being swapped). `/dev/hotswap-file` is
/// open to every user: one without `CAP_SYS_ADMIN` sees only the FCMs it
/// created, not which files other users cache.
fn pages_by_object() -> Result<KVec<FcmPages>> {
    let mut out = KVec::new();
    let mut failed = None;
    let everyone = crate::fcm_pages::caller_is_admin();
    let me = fcm_memory::current_uid();
    cached_file::try_for_each_open(None, |fcm| {
        if !everyone && fcm.creator() != me {
            return 0;
        }
        let slot = fcm.slot();
        let entry = FcmPages {
            object: slot.id(),
            reserved: 0,
            pages: fcm_memory::pages(slot).unwrap_or(u64::MAX),
        };
        if let Err(err) = out.push(entry, GFP_KERNEL) {
            failed = Some(err);
        }
        0
    });
    match failed {
        Some(err) => Err(err.into()),
        None => Ok(out),
    }
}

/// `HOTSWAP_FILE_IOC_MEMORY`: the request at user address `arg`, answered
/// in place (entries first, then the header).
pub(crate) fn report(arg: usize) -> Result {
    let user = UserSlice::new(UserPtr::from_addr(arg), size_of::<FcmMemoryRequest>());
    let (mut reader, mut writer) = user.reader_writer();
    let mut req: FcmMemoryRequest = reader.read()?;
    let m = fcm_memory::figures();
    let entries = pages_by_object()?;
    req.budget = m.budget;
    req.user_budget = m.user_budget;
    req.used = m.used;
    req.refused = m.refused;
    req.reclaimed_pressure = m.reclaimed_pressure;
    req.reclaimed_budget = m.reclaimed_budget;
    req.page_size = PAGE_SIZE as u64;
    req.count = entries.len() as u32;
    let n = entries.len().min(req.capacity as usize);
    if n > 0 {
        let len = n.checked_mul(size_of::<FcmPages>()).ok_or(EINVAL)?;
        let addr = usize::try_from(req.entries).map_err(|_| EFAULT)?;
        let mut out = UserSlice::new(UserPtr::from_addr(addr), len).writer();
        for entry in &entries[..n] {
            out.write(entry)?;
        }
    }
    writer.write(&req)
}

/// `HOTSWAP_FILE_IOC_SET_BUDGET`: the `u64` at user address `arg`.
pub(crate) fn set_budget(arg: usize) -> Result {
    if !crate::fcm_pages::caller_is_admin() {
        return Err(EPERM);
    }
    let pages: u64 = UserSlice::new(UserPtr::from_addr(arg), size_of::<u64>())
        .reader()
        .read()?;
    fcm_memory::set_budget(pages)
}

/// `/sys/kernel/debug/hotswap_fcm/` (`memory`, and `fcms` of
/// `fcm_counters.rs`); removed when dropped.
#[pin_data]
pub(crate) struct Status {
    _dir: Dir,
    #[pin]
    _memory: File<()>,
    #[pin]
    _fcms: File<()>,
}

impl Status {
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"hotswap_fcm");
        try_pin_init!(Self {
            _memory <- dir.read_callback_file(c"memory", (), &render),
            _fcms <- dir.read_callback_file(c"fcms", (), &crate::fcm_counters::render),
            _dir: dir,
        }? Error)
    }
}

fn render(_: &(), f: &mut Formatter<'_>) -> fmt::Result {
    let m = fcm_memory::figures();
    writeln!(
        f,
        "budget_pages={} used_pages={} refused={} reclaimed_pressure={} reclaimed_budget={}",
        m.budget, m.used, m.refused, m.reclaimed_pressure, m.reclaimed_budget
    )?;
    let mut result = Ok(());
    let listed = cached_file::try_for_each_open(None, |fcm| {
        let slot = fcm.slot();
        let pages = fcm_memory::pages(slot);
        if result.is_ok() {
            result = match pages {
                Some(n) => writeln!(f, "object={} pages={}", slot.id(), n),
                None => writeln!(f, "object={} pages=swapping", slot.id()),
            };
        }
        0
    });
    if listed.is_none() {
        writeln!(f, "objects=busy")?;
    }
    result
}
