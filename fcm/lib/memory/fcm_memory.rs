// SPDX-License-Identifier: GPL-2.0
//! FCM memory, kept like the page cache's (`fcm_memory.c` holds the page
//! count, the budget parameter and the shrinker; this is the policy).
//!
//! * **Budget**: all FCM pages together stay within
//!   `hotswap_fcm.budget_pages`. Before a read or write the front end makes
//!   room for what the call may bring in ([`make_room`]): clean pages of
//!   the FCMs that hold the most pages go first, each in its own eviction
//!   order. Largest first, because it is the one cost a cache's size
//!   explains (whoever caches most gives back most; proportional to what
//!   it holds) and it needs no global recency order across FCMs. Those
//!   FCMs are only try-locked: a user of one file never waits for another
//!   file's cache (whose lock may be held across I/O on a hung
//!   filesystem). If that is not enough, the caller's own FCM writes back
//!   and evicts, as a writer throttles on its own dirty pages in Linux;
//!   what is left to write back elsewhere goes to a worker, which the
//!   caller then waits for (killably, a bounded time), as a Linux writer
//!   at the dirty limit waits for the flusher.
//! * **Pressure**: the shrinker ([`hotswap_fcm_shrink`]) frees clean pages
//!   of every FCM in proportion to its size, never waiting for a lock and
//!   never on an object being swapped (a page in transfer is not reclaimed;
//!   one reclaimed before is gone from both sides). It writes nothing back:
//!   when it finds too few clean pages, a worker writes dirty ones back so
//!   the next pass can take them.
//! * **Memory cgroups**: pages are charged to the cgroup of the task whose
//!   call brought them in. The shrinker is memcg-aware: a cgroup's own
//!   reclaim frees clean pages of the FCMs its tasks use (`fcm_memory.c`
//!   says how it finds them). A page an FCM cannot get (a cgroup at its
//!   `memory.max` with nothing clean left to give back) fails rather than
//!   invoke the OOM killer, and the front end then has the caller's FCM
//!   write back and evict, and tries again ([`retry`]).

use crate::api::Call;
use crate::cached_file::FcmObject;
use crate::cached_file::{self, CachedInode};
use crate::fcm_api::{FcmOps, EVICT_RECLAIM, PAGE_SIZE};
use core::ffi::{c_int, c_long, c_ulong, c_void};
use kernel::prelude::*;

extern "C" {
    fn hotswap_fcm_memory_init() -> c_int;
    fn hotswap_fcm_memory_exit();
    fn hotswap_fcm_memory_read(out: *mut Figures);
    fn hotswap_fcm_count_reclaimed(pressure: bool, pages: c_ulong);
    fn hotswap_fcm_kick_background();
    fn hotswap_fatal_signal_pending() -> bool;
    fn hotswap_fcm_set_budget(pages: c_ulong) -> c_int;
    fn hotswap_current_uid() -> u32;
    fn hotswap_fcm_wait_killable(ms: u32) -> bool;
}

/// Sleeps `ms` milliseconds unless killed; true if a fatal signal is
/// pending.
fn wait_killable(ms: u32) -> bool {
    // SAFETY: FFI call with no requirements.
    unsafe { hotswap_fcm_wait_killable(ms) }
}

/// The caller's uid (in the initial user namespace).
pub(crate) fn current_uid() -> u32 {
    // SAFETY: FFI call with no requirements.
    unsafe { hotswap_current_uid() }
}

/// Sets the global budget (as writing the module parameter does): `EINVAL`
/// below 1024 pages or above the RAM's. Lowered below what is cached, the
/// FCMs are trimmed in the background.
pub(crate) fn set_budget(pages: u64) -> Result {
    let pages = c_ulong::try_from(pages).map_err(|_| EINVAL)?;
    // SAFETY: FFI call with no requirements.
    kernel::error::to_result(unsafe { hotswap_fcm_set_budget(pages) })
}

/// Whether the current task is being killed.
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: FFI call with no requirements.
    unsafe { hotswap_fatal_signal_pending() }
}

/// FCM memory figures, in pages (`struct hotswap_fcm_memory`).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Figures {
    /// The global budget.
    pub(crate) budget: u64,
    /// What the FCMs one user other than root created may hold together.
    pub(crate) user_budget: u64,
    /// Pages all FCMs hold now.
    pub(crate) used: u64,
    /// Allocations refused at the budget.
    pub(crate) refused: u64,
    /// Pages freed by the shrinker, or because memory (or a cgroup's)
    /// ran short.
    pub(crate) reclaimed_pressure: u64,
    /// Pages freed to stay within the budget.
    pub(crate) reclaimed_budget: u64,
}

/// The figures now.
pub(crate) fn figures() -> Figures {
    let mut f = Figures::default();
    // SAFETY: `f` is writable.
    unsafe { hotswap_fcm_memory_read(&mut f) };
    f
}

fn count(pressure: bool, pages: u64) {
    if pages > 0 {
        // SAFETY: FFI call with no requirements.
        unsafe { hotswap_fcm_count_reclaimed(pressure, pages as c_ulong) };
    }
}

fn kick_background() {
    // SAFETY: FFI call with no requirements.
    unsafe { hotswap_fcm_kick_background() };
}

/// Pages the byte range `[pos, pos + len)` touches.
pub(crate) fn pages_of(pos: i64, len: usize) -> u64 {
    let first = pos.max(0) as u64 / PAGE_SIZE as u64;
    let end = (pos.max(0) as u64).saturating_add(len as u64);
    end.div_ceil(PAGE_SIZE as u64).saturating_sub(first)
}

/// The FCM's page count, without waiting (`None` while it is swapped).
pub(crate) fn pages(slot: &FcmObject) -> Option<u64> {
    // SAFETY: The object is live for the call.
    cached_file::try_call(slot, |ops, obj, call| unsafe { (ops.pages)(obj, call) }).ok()
}

/// Evicts `slot`'s FCM down to `keep` pages; pages evicted (0 on error).
/// With [`EVICT_RECLAIM`] it never waits; without, it may write back.
fn evict(slot: &FcmObject, keep: u64, flags: u32) -> u64 {
    try_evict(slot, keep, flags).unwrap_or(0)
}

/// [`evict`], telling an FCM that was busy (`EAGAIN`) from one that had
/// nothing more to give.
fn try_evict(slot: &FcmObject, keep: u64, flags: u32) -> Result<u64> {
    let run = |ops: &FcmOps, obj: *mut c_void, call: &Call| {
        // SAFETY: The object is live for the call.
        unsafe { (ops.evict)(obj, call, keep, flags) }
    };
    let ret = if flags & EVICT_RECLAIM != 0 {
        cached_file::try_call(slot, run)
    } else {
        cached_file::call_fcm(slot, run)
    };
    let n = ret?;
    if n < 0 {
        return Err(Error::from_errno(n as i32));
    }
    Ok(n as u64)
}

/// How many of the largest FCMs the budget looks at.
const TOP: usize = 8;

/// The largest FCMs with openers, largest first: (pages, owner), ranked
/// without waiting for any of them; `own` left out if given, and only
/// those `user` created if given.
fn largest(own: Option<*const c_void>, user: Option<u32>) -> ([(u64, *const c_void); TOP], usize) {
    let mut top = [(0u64, core::ptr::null::<c_void>()); TOP];
    let mut len = 0;
    cached_file::try_for_each_open(None, |fcm| {
        let (owner, slot) = (fcm.owner(), fcm.slot());
        if Some(owner) == own || user.is_some_and(|u| u != fcm.creator()) {
            return 0;
        }
        let Some(n) = pages(slot) else {
            return 0;
        };
        // Insertion into the sorted handful; the smallest falls off.
        let mut at = len.min(TOP - 1);
        if len == TOP && top[at].0 >= n {
            return 0;
        }
        top[at] = (n, owner);
        while at > 0 && top[at - 1].0 < top[at].0 {
            top.swap(at - 1, at);
            at -= 1;
        }
        len = (len + 1).min(TOP);
        0
    });
    (top, len)
}

/// Frees up to `target` clean pages from the largest FCMs (of those
/// `user` created, if given), without waiting for any of them. Returns
/// pages freed.
fn reclaim_largest(target: u64, user: Option<u32>) -> u64 {
    let (top, len) = largest(None, user);
    let mut freed = 0;
    for &(n, owner) in &top[..len] {
        if freed >= target {
            break;
        }
        let take = (target - freed).min(n);
        freed += cached_file::try_for_each_open(Some(&[owner]), |fcm| {
            evict(fcm.slot(), n - take, EVICT_RECLAIM)
        })
        .unwrap_or(0);
    }
    freed
}

/// For the worker: frees up to `target` pages from the largest FCM,
/// writing its dirty pages back first.
fn write_back_largest(target: u64) -> u64 {
    let (top, len) = largest(None, None);
    let Some(&(n, owner)) = top[..len].first() else {
        return 0;
    };
    let Some(held) = cached_file::pin(owner) else {
        return 0;
    };
    evict(held.slot(), n.saturating_sub(target), 0)
}

/// Before a call that may bring `need` pages into the FCM of `own`: makes
/// room within the budget (see the module docs). Never fails: if no room
/// can be made, the FCM's allocation is refused and [`retry`] takes over.
pub(crate) fn make_room(own: &CachedInode, need: u64) {
    let f = figures();
    // The common case, on every segment: far from both bounds.
    if f.used.saturating_add(need) <= f.user_budget {
        return;
    }
    let uid = current_uid();
    if uid != 0 {
        within_user_budget(own, uid, need, &f);
    }
    if f.used.saturating_add(need) <= f.budget {
        return;
    }
    // A little more than needed, so that not every miss reclaims.
    let target = f.used + need - f.budget + (f.budget / 64).max(need);
    let mut freed = reclaim_largest(target, None);
    if freed < target {
        freed += evict_own(own.slot(), target - freed);
    }
    count(false, freed);
    if freed < target {
        kick_background();
    }
}

/// Evicts `target` pages from `own` (writing back); returns those freed.
fn evict_own(own: &FcmObject, target: u64) -> u64 {
    match pages(own) {
        Some(n) if target > 0 => evict(own, n.saturating_sub(target), 0),
        _ => 0,
    }
}

/// Keeps the FCMs user `uid` created within the per-user share of the
/// budget, before a call of theirs brings in `need` more pages: their
/// largest FCMs give back clean pages, then the caller's own FCM, if it
/// is one of theirs, writes back and evicts. (Counted by creator: pages a
/// user brings into an FCM someone else created count for that one.)
fn within_user_budget(own: &CachedInode, uid: u32, need: u64, f: &Figures) {
    let Some(theirs) = cached_file::try_for_each_open(None, |fcm| {
        if fcm.creator() == uid {
            pages(fcm.slot()).unwrap_or(0)
        } else {
            0
        }
    }) else {
        return;
    };
    if theirs.saturating_add(need) <= f.user_budget {
        return;
    }
    let target = theirs + need - f.user_budget + (f.user_budget / 64).max(need);
    let mut freed = reclaim_largest(target, Some(uid));
    if freed < target && own.creator() == uid {
        freed += evict_own(own.slot(), target - freed);
    }
    count(false, freed);
}

/// Most tries of a call whose FCM could not get a page, and the wait
/// before each after the first: five seconds in all, killable (the
/// worker's write-back of a full budget takes a while on a slow machine:
/// half a second was too little on the debug kernel under TCG).
const TRIES: u32 = 500;
const WAIT_MS: u32 = 10;

/// After the FCM of `own` could not get a page (`ENOMEM`). At the budget:
/// makes room; what it cannot free is other files' dirty pages, which the
/// worker writes back while this caller waits (killably, `WAIT_MS` at a
/// time): it never takes another file's FCM lock itself, so a filesystem
/// that hangs elsewhere delays it by at most `TRIES` waits. Otherwise
/// memory or the caller's cgroup is short, and the caller's FCM gives back
/// an eighth of its pages (clean ones first, then written back). Returns
/// whether the call is worth trying again.
pub(crate) fn retry(own: &CachedInode, attempt: u32) -> bool {
    if attempt >= TRIES || fatal_signal_pending() {
        return false;
    }
    let f = figures();
    if f.used + 16 >= f.budget {
        make_room(own, 16);
        if attempt == 0 {
            return true;
        }
        kick_background();
        return !wait_killable(WAIT_MS);
    }
    let Some(n) = pages(own.slot()) else {
        // Being swapped: the next try waits for the swap to end.
        return !wait_killable(WAIT_MS);
    };
    let keep = n - (n / 8).max(16).min(n);
    let mut freed = evict(own.slot(), keep, EVICT_RECLAIM);
    if freed == 0 {
        freed = evict(own.slot(), keep, 0);
    }
    count(true, freed);
    if freed > 0 || attempt == 0 {
        return true;
    }
    // Nothing of its own left to give: a moment for reclaim elsewhere.
    attempt < 8 && !wait_killable(WAIT_MS)
}

/// The cached files `owners` (`n` of them) name, or all if it is NULL.
///
/// # Safety
///
/// `owners` is NULL or valid for `n` reads.
unsafe fn owners_of<'a>(owners: *const *const c_void, n: usize) -> Option<&'a [*const c_void]> {
    // SAFETY: The caller's contract.
    (!owners.is_null()).then(|| unsafe { core::slice::from_raw_parts(owners, n) })
}

/// The shrinker's count for a cgroup (`fcm_memory.c`): pages of the FCMs
/// of `owners`; 0 if the table of cached files is busy.
///
/// # Safety
///
/// `owners` is valid for `n` reads.
#[no_mangle]
unsafe extern "C" fn hotswap_fcm_count(owners: *const *const c_void, n: usize) -> u64 {
    // SAFETY: The caller's contract.
    let owners = unsafe { owners_of(owners, n) };
    cached_file::try_for_each_open(owners, |fcm| pages(fcm.slot()).unwrap_or(0)).unwrap_or(0)
}

/// The shrinker's scan (`fcm_memory.c`): frees up to `nr` clean pages,
/// from every FCM of `owners` (all if NULL) in proportion to its size.
/// Returns pages freed, or -1 if the table of cached files is busy
/// (reclaim must not wait for it).
///
/// # Safety
///
/// `owners` is NULL or valid for `n` reads.
#[no_mangle]
unsafe extern "C" fn hotswap_fcm_shrink(
    nr: c_ulong,
    owners: *const *const c_void,
    n: usize,
) -> c_long {
    // SAFETY: The caller's contract.
    let owners = unsafe { owners_of(owners, n) };
    let nr = nr as u64;
    // What the shares are of; unknown (a busy table) or nothing: stop.
    let used = match owners {
        None => figures().used,
        Some(_) => {
            match cached_file::try_for_each_open(owners, |fcm| pages(fcm.slot()).unwrap_or(0)) {
                Some(used) => used,
                None => return -1,
            }
        }
    };
    if used == 0 {
        return 0;
    }
    let mut short = false;
    let freed = cached_file::try_for_each_open(owners, |fcm| {
        let slot = fcm.slot();
        let Some(n) = pages(slot) else {
            return 0;
        };
        let share = (nr.saturating_mul(n)).div_ceil(used).min(n);
        if share == 0 {
            return 0;
        }
        // Busy FCMs are left for the next pass; one with too few clean
        // pages has dirty ones, for the worker to write back.
        match try_evict(slot, n - share, EVICT_RECLAIM) {
            Ok(got) => {
                short |= got < share;
                got
            }
            Err(_) => 0,
        }
    });
    match freed {
        Some(freed) => {
            if short {
                kick_background();
            }
            freed as c_long
        }
        None => -1,
    }
}

/// The worker (`fcm_memory.c`): writes every FCM's dirty pages back, so
/// reclaim finds clean ones, then trims all FCMs to the budget. One FCM
/// held at a time: one whose filesystem hangs keeps no other from ending.
#[no_mangle]
extern "C" fn hotswap_fcm_background() {
    if let Ok(owners) = cached_file::owners() {
        for owner in owners.iter() {
            if let Some(held) = cached_file::pin(*owner) {
                // SAFETY: The object is live for the call.
                let _ = cached_file::call_fcm(held.slot(), |ops, obj, call| unsafe {
                    (ops.sync)(obj, call, 0, i64::MAX, 0)
                });
            }
        }
    }
    let f = figures();
    if f.used > f.budget {
        let target = f.used - f.budget;
        let mut freed = reclaim_largest(target, None);
        if freed < target {
            freed += write_back_largest(target - freed);
        }
        count(false, freed);
    }
}

/// Keeps the shrinker registered; FCM pages can be had from `new` on.
pub(crate) struct Registration;

impl Registration {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Called once from module init.
        kernel::error::to_result(unsafe { hotswap_fcm_memory_init() })?;
        Ok(Self)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`; no FCM is left at unload.
        unsafe { hotswap_fcm_memory_exit() };
    }
}
