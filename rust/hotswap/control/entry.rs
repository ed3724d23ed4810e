// SPDX-License-Identifier: GPL-2.0
//! The `extern "C"` entry points other modules call (exported from
//! `exports.c`; prototypes in `api.rs`). Each turns a `Result` into an
//! errno exactly once, and each checks its pointers before use.

use crate::api::{Call, DecisionOps, ImplOps, InterfaceOps, Name, SwapReport};
use crate::ott::objects;
use crate::ott::phase::Phase;
use crate::ott::slot::Slot;
use crate::registry::{ImplInfo, REGISTRY};
use crate::swap::batch::{self as swap, SlotResult};
use crate::swap::interpose;
use core::ffi::{c_char, c_int, c_void, CStr};
use kernel::prelude::*;
use kernel::sync::Arc;

fn errno(result: Result) -> c_int {
    match result {
        Ok(()) => 0,
        Err(err) => err.to_errno(),
    }
}

/// A caller's C string as a checked name field (`api::name_from_cstr`);
/// `EINVAL` if it is NULL or not a valid name.
///
/// # Safety
///
/// `s` is NULL or a NUL-terminated string.
unsafe fn name_from_ptr(s: *const c_char) -> Result<Name> {
    if s.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: The caller promises a NUL-terminated string.
    crate::api::name_from_cstr(unsafe { CStr::from_ptr(s) })
}

/// The slot behind a handle from `hotswap_object_create`.
///
/// # Safety
///
/// `handle` is NULL or a live handle.
unsafe fn slot<'a>(handle: *const c_void) -> Result<&'a Slot> {
    // SAFETY: The caller promises a live handle (an `Arc<Slot>` turned raw).
    unsafe { handle.cast::<Slot>().as_ref() }.ok_or(EINVAL)
}

/// Registers an interface table; see `api.rs`.
///
/// # Safety
///
/// `ops` is NULL or points to a table that stays valid until unregistered.
#[no_mangle]
pub unsafe extern "C" fn hotswap_register_interface(ops: *const InterfaceOps) -> c_int {
    // SAFETY: The caller promises `ops` is NULL or valid.
    let Some(ops) = (unsafe { ops.as_ref() }) else {
        return EINVAL.to_errno();
    };
    errno(REGISTRY.lock().register_interface(ops))
}

/// Unregisters an interface table; see `api.rs`.
///
/// # Safety
///
/// None: `ops` is only compared against registered addresses.
#[no_mangle]
pub unsafe extern "C" fn hotswap_unregister_interface(ops: *const InterfaceOps) -> c_int {
    errno(REGISTRY.lock().unregister_interface(ops))
}

/// Unregisters or retires an interface table for a registrant going away;
/// see `api.rs`.
///
/// # Safety
///
/// None: `ops` is only compared against registered addresses.
#[no_mangle]
pub unsafe extern "C" fn hotswap_retire_interface(ops: *const InterfaceOps) -> c_int {
    errno(REGISTRY.lock().retire_interface(ops))
}

/// Registers an implementation table; see `api.rs`.
///
/// # Safety
///
/// `ops` is NULL or points to a table that stays valid until unregistered.
#[no_mangle]
pub unsafe extern "C" fn hotswap_register_impl(ops: *const ImplOps) -> c_int {
    // SAFETY: The caller promises `ops` is NULL or valid.
    let Some(ops) = (unsafe { ops.as_ref() }) else {
        return EINVAL.to_errno();
    };
    errno(REGISTRY.lock().register_impl(ops))
}

/// Unregisters an implementation table; see `api.rs`.
///
/// # Safety
///
/// None: `ops` is only compared against registered addresses.
#[no_mangle]
pub unsafe extern "C" fn hotswap_unregister_impl(ops: *const ImplOps) -> c_int {
    errno(REGISTRY.lock().unregister_impl(ops))
}

/// Unregisters or retires an implementation table for a registrant going
/// away; see `api.rs`.
///
/// # Safety
///
/// None: `ops` is only compared against registered addresses.
#[no_mangle]
pub unsafe extern "C" fn hotswap_retire_impl(ops: *const ImplOps) -> c_int {
    errno(REGISTRY.lock().retire_impl(ops))
}

/// Returns 0 if `interface`/`name` is registered; see `api.rs`.
///
/// # Safety
///
/// Both arguments are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn hotswap_find_impl(interface: *const c_char, name: *const c_char) -> c_int {
    let found = || -> Result {
        // SAFETY: The caller promises NUL-terminated strings.
        let (interface, name) = unsafe { (name_from_ptr(interface)?, name_from_ptr(name)?) };
        if REGISTRY.lock().find_impl(&interface, &name) {
            Ok(())
        } else {
            Err(ENOENT)
        }
    };
    errno(found())
}

/// Creates an object; see `api.rs`.
///
/// # Safety
///
/// `interface` is a NUL-terminated string, `name` NULL or one; `out` is
/// NULL or valid for a write; `arg` is what the interface expects.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_create(
    interface: *const c_char,
    methods_version: u32,
    methods_size: u32,
    name: *const c_char,
    arg: *const c_void,
    out: *mut *const c_void,
) -> c_int {
    let create = || -> Result {
        if out.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: The caller promises NUL-terminated strings.
        let interface = unsafe { name_from_ptr(interface)? };
        let name = if name.is_null() {
            None
        } else {
            // SAFETY: As above.
            Some(unsafe { name_from_ptr(name)? })
        };
        let methods = (methods_version, methods_size);
        // Inside the policy's monitor from the start: interposing it after
        // would publish a second chain, and retiring the first starts a
        // grace period that the object's destroy then waits out too.
        let monitor = crate::control::policy::monitor_for_new(&interface);
        let slot = objects::create(&interface, name.as_ref(), methods, arg, monitor.as_ref());
        let slot = slot.inspect(|s| crate::control::policy::object_created(s));
        // After the policy's monitor too: either may have quarantined an
        // implementation.
        crate::control::quarantine::eject_pending();
        let slot = slot?;
        // SAFETY: `out` is valid for a write (checked non-NULL; the caller
        // promises validity).
        unsafe { *out = Arc::into_raw(slot).cast() };
        Ok(())
    };
    errno(create())
}

/// Destroys an object; see `api.rs`.
///
/// # Safety
///
/// `handle` came from `hotswap_object_create` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_destroy(handle: *const c_void) -> c_int {
    if handle.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: The handle is an `Arc<Slot>` from `Arc::into_raw`, given back
    // exactly once.
    let slot = unsafe { Arc::from_raw(handle.cast::<Slot>()) };
    objects::destroy(&slot);
    0
}

/// The id of an object; see `api.rs`.
///
/// # Safety
///
/// `handle` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_id(handle: *const c_void) -> u32 {
    // SAFETY: The caller promises a live handle.
    unsafe { slot(handle) }.map_or(0, |s| s.id)
}

/// Labels an object (what status shows it is); see `api.rs`.
///
/// # Safety
///
/// `handle` is a live handle; `label` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_set_label(handle: *const c_void, label: *const c_char) {
    // SAFETY: The caller promises a live handle.
    let Ok(slot) = (unsafe { slot(handle) }) else {
        return;
    };
    if label.is_null() {
        return;
    }
    // SAFETY: The caller promises a NUL-terminated string.
    slot.set_label(unsafe { CStr::from_ptr(label) }.to_bytes());
}

/// Logs and counts `what` (NULL: a generic reason) against `imp`, and
/// queues its ejection.
///
/// # Safety
///
/// `what` is NULL or a NUL-terminated string.
unsafe fn report_misbehavior(imp: &ImplInfo, what: *const c_char) {
    let what = if what.is_null() {
        c"broke its contract"
    } else {
        // SAFETY: The caller promises a NUL-terminated string.
        unsafe { CStr::from_ptr(what) }
    };
    imp.misbehaved(format_args!("{}", what.to_str().unwrap_or("?")));
    crate::control::quarantine::eject_pending();
}

/// A client's report that an object's implementation broke the
/// interface's contract; see `api.rs`.
///
/// # Safety
///
/// `handle` is a live handle; `what` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_misbehaved(handle: *const c_void, what: *const c_char) {
    // SAFETY: The caller promises a live handle.
    let Ok(slot) = (unsafe { slot(handle) }) else {
        return;
    };
    // SAFETY: The caller's promise about `what`.
    let _ = slot.status(|_, chain, _| unsafe { report_misbehavior(&chain.object().imp, what) });
}

/// A client's report, from inside a call, that the object the call
/// reached broke the interface's contract; see `api.rs`.
///
/// # Safety
///
/// `call` is NULL or a live call; `what` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn hotswap_call_misbehaved(call: *const Call, what: *const c_char) {
    // SAFETY: The caller promises NULL or a live call.
    let Some(call) = (unsafe { call.as_ref() }) else {
        return;
    };
    // SAFETY: A live call's slot is live.
    let Ok(slot) = (unsafe { slot(call.slot) }) else {
        return;
    };
    // SAFETY: `call` is a live call through `slot`; the caller's promise
    // about `what`.
    unsafe { report_misbehavior(&slot.object_of_call(call).imp, what) };
}

/// Starts a call through a slot; see `api.rs`.
///
/// # Safety
///
/// `handle` is a live handle and `call` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn hotswap_call_begin(handle: *const c_void, call: *mut Call) -> c_int {
    let begin = || -> Result {
        // SAFETY: The caller promises a live handle and a writable call.
        let (slot, call) = unsafe { (slot(handle)?, call.as_mut().ok_or(EINVAL)?) };
        slot.begin(call)
    };
    errno(begin())
}

/// Starts a call unless the object is being swapped; see `api.rs`.
///
/// # Safety
///
/// `handle` is a live handle and `call` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn hotswap_call_try_begin(handle: *const c_void, call: *mut Call) -> c_int {
    let begin = || -> Result {
        // SAFETY: The caller promises a live handle and a writable call.
        let (slot, call) = unsafe { (slot(handle)?, call.as_mut().ok_or(EINVAL)?) };
        slot.try_begin(call)
    };
    errno(begin())
}

/// Resolves the layer below an interposer; see `api.rs`.
///
/// # Safety
///
/// `call` is the live call the interposer runs in; `next` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn hotswap_call_next(call: *const Call, next: *mut Call) -> c_int {
    let resolve = || -> Result {
        // SAFETY: The caller promises a live call and a writable `next`.
        let (call, next) = unsafe { (call.as_ref().ok_or(EINVAL)?, next.as_mut().ok_or(EINVAL)?) };
        // SAFETY: A live call's slot is live.
        let slot = unsafe { slot(call.slot)? };
        // SAFETY: `call` is a live call through `slot`.
        unsafe { slot.next(call, next) }
    };
    errno(resolve())
}

/// Ends a call; see `api.rs`.
///
/// # Safety
///
/// `call` was filled by `hotswap_call_begin`/`hotswap_call_next` and is
/// ended once.
#[no_mangle]
pub unsafe extern "C" fn hotswap_call_end(call: *mut Call) {
    // SAFETY: The caller promises a live call.
    let Some(call) = (unsafe { call.as_mut() }) else {
        return;
    };
    // SAFETY: A live call's slot is live.
    if let Ok(slot) = unsafe { slot(call.slot) } {
        // SAFETY: `call` was begun on `slot` and is ended once.
        unsafe { slot.end(call) };
    }
}

/// Swaps one object; see `api.rs`.
///
/// # Safety
///
/// `handle` is live, `name` a NUL-terminated string, `report` NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_swap(
    handle: *const c_void,
    name: *const c_char,
    timeout_ms: u32,
    report: *mut SwapReport,
) -> c_int {
    let run = || -> Result<SwapReport> {
        // SAFETY: The caller promises a live handle and a string.
        let (slot, name) = unsafe { (slot(handle)?, name_from_ptr(name)?) };
        let id = slot.id;
        let slot = objects::find(id)?;
        let timeout = (timeout_ms != 0).then_some(timeout_ms);
        let target = REGISTRY.lock().pin(&slot.interface, Some(&name))?;
        let results = swap::swap(core::slice::from_ref(&slot), &target, timeout)?;
        match results.first() {
            Some(SlotResult::Swapped(o)) => Ok(SwapReport {
                completed: u32::from(o.completed),
                phase: o.phase as u32,
                errno: o.errno,
                format: o.format,
                in_flight: o.in_flight,
                duration_ns: o.duration_ns,
                longest_wait_ns: o.longest_wait_ns,
            }),
            Some(SlotResult::Unchanged) => Ok(SwapReport {
                completed: 1,
                ..SwapReport::default()
            }),
            Some(SlotResult::NotStarted(err)) => Err(*err),
            None => Err(EINVAL),
        }
    };
    let result = run();
    crate::control::quarantine::eject_pending();
    let (report_value, ret) = match result {
        Ok(r) if r.completed != 0 => (r, 0),
        Ok(r) => (r, r.errno),
        Err(err) => (
            SwapReport {
                errno: err.to_errno(),
                ..SwapReport::default()
            },
            err.to_errno(),
        ),
    };
    // SAFETY: The caller promises `report` is NULL or writable.
    if let Some(out) = unsafe { report.as_mut() } {
        *out = report_value;
    }
    ret
}

/// Swaps every object of an interface; see `api.rs`.
///
/// # Safety
///
/// Strings are NUL-terminated; `completed`/`aborted` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hotswap_swap_all(
    interface: *const c_char,
    name: *const c_char,
    timeout_ms: u32,
    completed: *mut u32,
    aborted: *mut u32,
) -> c_int {
    let run = || -> Result<(u32, u32)> {
        // SAFETY: The caller promises NUL-terminated strings.
        let (interface, name) = unsafe { (name_from_ptr(interface)?, name_from_ptr(name)?) };
        let target = REGISTRY.lock().pin(&interface, Some(&name))?;
        REGISTRY.lock().set_default(&interface, &name)?;
        let slots = objects::of_interface(&interface)?;
        let timeout = (timeout_ms != 0).then_some(timeout_ms);
        let mut counts = (0, 0);
        for result in swap::swap(&slots, &target, timeout)?.iter() {
            match result {
                SlotResult::Swapped(o) if o.completed => counts.0 += 1,
                SlotResult::Unchanged => {}
                _ => counts.1 += 1,
            }
        }
        Ok(counts)
    };
    let result = run();
    crate::control::quarantine::eject_pending();
    let (done, failed) = result.as_ref().copied().unwrap_or((0, 0));
    // SAFETY: The caller promises NULL or writable pointers.
    unsafe {
        if let Some(c) = completed.as_mut() {
            *c = done;
        }
        if let Some(a) = aborted.as_mut() {
            *a = failed;
        }
    }
    match result {
        Ok((_, 0)) => 0,
        Ok(_) => ECANCELED.to_errno(),
        Err(err) => err.to_errno(),
    }
}

/// Interposes; see `api.rs`.
///
/// # Safety
///
/// `handle` is live and `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_interpose(
    handle: *const c_void,
    name: *const c_char,
) -> c_int {
    // SAFETY: The caller promises a live handle and a string.
    let run =
        || -> Result { unsafe { interpose::interpose(slot(handle)?, &name_from_ptr(name)?) } };
    errno(run())
}

/// Removes an interposer; see `api.rs`.
///
/// # Safety
///
/// `handle` is live and `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_uninterpose(
    handle: *const c_void,
    name: *const c_char,
) -> c_int {
    // SAFETY: The caller promises a live handle and a string.
    let run = || -> Result { unsafe { interpose::remove(slot(handle)?, &name_from_ptr(name)?) } };
    errno(run())
}

/// The phase of a slot; see `api.rs`.
///
/// # Safety
///
/// `handle` is live.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_phase(handle: *const c_void) -> u32 {
    // SAFETY: The caller promises a live handle.
    match unsafe { slot(handle) } {
        Ok(slot) => slot
            .status(|phase, _, _| phase as u32)
            .unwrap_or(Phase::Normal as u32),
        Err(_) => Phase::Normal as u32,
    }
}

/// Sets a slot's swap timeout; see `api.rs`.
///
/// # Safety
///
/// `handle` is live.
#[no_mangle]
pub unsafe extern "C" fn hotswap_object_set_timeout(
    handle: *const c_void,
    timeout_ms: u32,
) -> c_int {
    // SAFETY: The caller promises a live handle.
    errno(unsafe { slot(handle) }.and_then(|s| s.set_timeout_ms(timeout_ms)))
}

/// Registers a decision policy; see `api.rs`.
///
/// # Safety
///
/// `ops` is NULL or points to a table that stays valid until unregistered.
#[no_mangle]
pub unsafe extern "C" fn hotswap_register_policy(ops: *const DecisionOps) -> c_int {
    // SAFETY: The caller promises `ops` is NULL or valid.
    let Some(ops) = (unsafe { ops.as_ref() }) else {
        return EINVAL.to_errno();
    };
    errno(REGISTRY.lock().register_policy(ops))
}

/// Unregisters a decision policy; see `api.rs`.
///
/// # Safety
///
/// `ops` is any pointer (compared, never followed).
#[no_mangle]
pub unsafe extern "C" fn hotswap_unregister_policy(ops: *const DecisionOps) -> c_int {
    errno(REGISTRY.lock().unregister_policy(ops))
}

/// A monitor's sample for the interface's decision policy; see `api.rs`.
///
/// # Safety
///
/// `handle` is a live slot (a call through it is running); `sample` is
/// valid for `n` words.
#[no_mangle]
pub unsafe extern "C" fn hotswap_policy_sample(handle: *const c_void, sample: *const u64, n: u32) {
    if sample.is_null() {
        return;
    }
    let n = (n as usize).min(crate::api::SAMPLE_WORDS);
    // SAFETY: The caller promises a live handle and `n` readable words.
    if let Ok(slot) = unsafe { slot(handle) } {
        // SAFETY: As above.
        let words = unsafe { core::slice::from_raw_parts(sample, n) };
        crate::control::policy::sample(slot, words);
    }
}
