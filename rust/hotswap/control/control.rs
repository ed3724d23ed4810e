// SPDX-License-Identifier: GPL-2.0
//! `/dev/hotswap`: the control device. Its ioctl ABI is `uapi.rs`, which
//! `hswapctl` compiles too.
//!
//! Read commands (version, lists, status) are open to anyone who can open
//! the device; commands that change something need `CAP_SYS_ADMIN`, checked
//! before the request is even read. Every request is validated (size via
//! the ioctl number, names, ids, user pointers, and that the answer can be
//! written back) before anything changes; a bad one gets an errno.

use crate::api::Name;
use crate::ott::history::SwapOutcome;
use crate::ott::objects;
use crate::ott::slot::Slot;
use crate::registry::REGISTRY;
use crate::swap::batch::{self as swap, SlotResult};
use crate::swap::interpose;
use crate::uapi::{self, *};
use kernel::fs::File;
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::time::{Instant, Monotonic};
use kernel::transmute::{AsBytes, FromBytes};
use kernel::uaccess::{UserPtr, UserSlice};

macro_rules! plain_data {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: A `#[repr(C)]` struct of integers and byte arrays with
        // explicit padding fields: every bit pattern is valid and there are
        // no implicit padding bytes.
        unsafe impl FromBytes for $t {}
        // SAFETY: As above.
        unsafe impl AsBytes for $t {}
    )*};
}
plain_data!(
    Version,
    ListRequest,
    InterfaceEntry,
    ImplEntry,
    ObjectEntry,
    ObjectStatus,
    SwapRequest,
    SwapResult,
    InterposeRequest,
    TimeoutRequest,
    ReportRequest,
    PolicyRequest,
);

// The layouts the ABI promises (no implicit padding anywhere).
const _: () = assert!(size_of::<InterfaceEntry>() == 72);
const _: () = assert!(size_of::<ImplEntry>() == 136);
const _: () = assert!(size_of::<ObjectEntry>() == 88);
const _: () = assert!(size_of::<ObjectStatus>() == 656);
const _: () = assert!(size_of::<SwapRequest>() == 112);
const _: () = assert!(size_of::<SwapResult>() == 48);
const _: () = assert!(size_of::<InterposeRequest>() == 72);
const _: () = assert!(size_of::<PolicyRequest>() == 340);

/// The misc device.
pub(crate) struct Control;

/// Registers `/dev/hotswap`.
pub(crate) fn register() -> impl PinInit<MiscDeviceRegistration<Control>, Error> {
    MiscDeviceRegistration::register(MiscDeviceOptions { name: c"hotswap" })
}

fn require_admin() -> Result {
    if crate::registry::sys::capable_sys_admin() {
        Ok(())
    } else {
        Err(EPERM)
    }
}

/// A request struct read from and written back to user memory at `arg`
/// (a read command: `f` changes nothing, so a late `EFAULT` is harmless).
fn with_request<T: FromBytes + AsBytes>(
    arg: usize,
    f: impl FnOnce(&mut T) -> Result,
) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(UserPtr::from_addr(arg), size_of::<T>()).reader_writer();
    let mut request: T = reader.read()?;
    f(&mut request)?;
    writer.write(&request)?;
    Ok(0)
}

/// How a command that changes something answers.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// `IOC_READ|IOC_WRITE`: the request is written back with its results.
    WriteBack,
    /// `IOC_WRITE` only: user memory is only read.
    None,
}

/// A request that changes something. `CAP_SYS_ADMIN` is checked first, so
/// an unprivileged caller gets `EPERM` whatever it passed. A command that
/// answers writes the request back unchanged before `f` runs: user memory
/// the answer cannot be written to is `EFAULT` before anything changed,
/// never after (only memory made read-only by another thread during the
/// call can still fail the final write).
fn with_change<T: FromBytes + AsBytes>(
    arg: usize,
    answer: Answer,
    f: impl FnOnce(&mut T) -> Result,
) -> Result<isize> {
    require_admin()?;
    let user = UserSlice::new(UserPtr::from_addr(arg), size_of::<T>());
    let mut request: T = user.reader().read()?;
    if answer == Answer::WriteBack {
        UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
            .writer()
            .write(&request)?;
    }
    f(&mut request)?;
    if answer == Answer::WriteBack {
        UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
            .writer()
            .write(&request)?;
    }
    Ok(0)
}

/// Writes up to `capacity` of `entries` to the user array at `addr`.
fn write_entries<T: AsBytes>(addr: u64, capacity: u32, entries: &[T]) -> Result {
    let n = entries.len().min(capacity as usize);
    if n == 0 {
        return Ok(());
    }
    let len = n.checked_mul(size_of::<T>()).ok_or(EINVAL)?;
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    let mut writer = UserSlice::new(UserPtr::from_addr(addr), len).writer();
    for entry in &entries[..n] {
        writer.write(entry)?;
    }
    Ok(())
}

/// A name from a request field: `EINVAL` unless it is a valid name. The
/// bytes after its NUL are not part of it (userspace need not clear the
/// field): the result is zero-padded, as every registered name is, so
/// that comparisons see the name alone.
fn name(field: &[u8; uapi::NAME_LEN]) -> Result<Name> {
    crate::api::name_from_cstr(CStr::from_bytes_until_nul(field).map_err(|_| EINVAL)?)
}

fn copy_name(dst: &mut [u8], src: &[u8]) {
    let n = src
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(src.len())
        .min(dst.len() - 1);
    dst[..n].copy_from_slice(&src[..n]);
}

fn list_interfaces(req: &mut ListRequest) -> Result {
    let slots = objects::all()?;
    let registry = REGISTRY.lock();
    let mut out = KVec::new();
    for iface in registry.interfaces() {
        let mut e = InterfaceEntry {
            name: [0; uapi::NAME_LEN],
            default_impl: [0; uapi::NAME_LEN],
            objects: slots.iter().filter(|s| s.interface == *iface).count() as u32,
            impls: registry
                .impls()
                .iter()
                .filter(|i| i.interface == *iface)
                .count() as u32,
        };
        copy_name(&mut e.name, iface);
        if let Some(d) = registry.default_impl(iface) {
            copy_name(&mut e.default_impl, &d);
        }
        out.push(e, GFP_KERNEL)?;
    }
    drop(registry);
    req.count = out.len() as u32;
    write_entries(req.entries, req.capacity, &out)
}

fn list_impls(req: &mut ListRequest) -> Result {
    let registry = REGISTRY.lock();
    let mut out = KVec::new();
    for imp in registry.impls() {
        let mut e = ImplEntry {
            interface: [0; uapi::NAME_LEN],
            name: [0; uapi::NAME_LEN],
            module: [0; 56],
            kind: imp.kind,
            users: imp.users(),
            flags: if imp.quarantined() {
                uapi::IMPL_QUARANTINED
            } else {
                0
            },
            reserved: 0,
        };
        copy_name(&mut e.interface, &imp.interface);
        copy_name(&mut e.name, &imp.name);
        imp.module_name(|m| copy_name(&mut e.module, m));
        out.push(e, GFP_KERNEL)?;
    }
    drop(registry);
    req.count = out.len() as u32;
    write_entries(req.entries, req.capacity, &out)
}

fn object_entry(slot: &Slot) -> Result<ObjectEntry> {
    let calls = slot.calls();
    slot.status(|phase, chain, _| {
        let mut e = ObjectEntry {
            id: slot.id,
            phase: phase as u32,
            interface: [0; uapi::NAME_LEN],
            implementation: [0; uapi::NAME_LEN],
            interposers: (chain.layers.len() - 1) as u32,
            reserved: 0,
            calls,
        };
        copy_name(&mut e.interface, &slot.interface);
        copy_name(&mut e.implementation, &chain.object().imp.name);
        e
    })
}

fn list_objects(req: &mut ListRequest) -> Result {
    let mut out = KVec::new();
    for slot in objects::all()?.iter() {
        // An object destroyed meanwhile is simply not listed.
        if let Ok(e) = object_entry(slot) {
            out.push(e, GFP_KERNEL)?;
        }
    }
    req.count = out.len() as u32;
    write_entries(req.entries, req.capacity, &out)
}

fn object_status(req: &mut ObjectStatus) -> Result {
    let slot = objects::find(req.id)?;
    let calls = slot.calls();
    slot.status(|phase, chain, admin| {
        req.phase = phase as u32;
        req.interface = [0; uapi::NAME_LEN];
        req.implementation = [0; uapi::NAME_LEN];
        copy_name(&mut req.interface, &slot.interface);
        copy_name(&mut req.implementation, &chain.object().imp.name);
        let interposers = &chain.layers[..chain.layers.len() - 1];
        req.interposers = [[0; uapi::NAME_LEN]; MAX_INTERPOSERS];
        for (field, layer) in req.interposers.iter_mut().zip(interposers.iter()) {
            copy_name(field, &layer.imp.name);
        }
        req.interposer_count = interposers.len() as u32;
        req.timeout_ms = admin.timeout_ms;
        req.calls = calls;
        req.swaps_done = admin.stats.swaps_done;
        req.swaps_aborted = admin.stats.swaps_aborted;
        let last = admin.stats.last;
        req.last_outcome = match last {
            None => 0,
            Some(o) if o.completed => 1,
            Some(_) => 2,
        };
        let o = last.unwrap_or(SwapOutcome::NONE);
        req.last_phase = o.phase as u32;
        req.last_errno = o.errno;
        req.last_format = o.format;
        req.last_in_flight = o.in_flight;
        req.last_duration_ns = o.duration_ns as u64;
        req.last_blocked_ns = o.longest_wait_ns as u64;
        // A file's path is not everyone's to read (the device's mode is
        // the first guard; this the second).
        req.label = if crate::registry::sys::capable_sys_admin() {
            admin.label
        } else {
            [0; uapi::LABEL_LEN]
        };
    })
}

/// The objects a request is about: object `id` (which must be of
/// `interface`), or with `id` 0 every object of `interface`.
fn target_slots(interface: &Name, id: u32) -> Result<KVec<Arc<Slot>>> {
    if id == 0 {
        return objects::of_interface(interface);
    }
    let slot = objects::find(id)?;
    if slot.interface != *interface {
        return Err(ENOENT);
    }
    let mut v = KVec::new();
    v.push(slot, GFP_KERNEL)?;
    Ok(v)
}

fn object_reports(req: &mut ReportRequest) -> Result {
    let slot = objects::find(req.id)?;
    req.text = [0; 1024];
    let mut len = 0;
    slot.status(|_, chain, _| {
        for layer in &chain.layers[..chain.layers.len() - 1] {
            let mut buf = [0u8; 256];
            let Some(text) = layer.imp.report(layer.obj, &mut buf) else {
                continue;
            };
            let name = &layer.imp.name;
            let name_len = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            let line_len = name_len + 2 + text.len() + 1;
            if len + line_len > req.text.len() {
                break;
            }
            req.text[len..len + name_len].copy_from_slice(&name[..name_len]);
            req.text[len + name_len..len + name_len + 2].copy_from_slice(b": ");
            let at = len + name_len + 2;
            req.text[at..at + text.len()].copy_from_slice(text.as_bytes());
            req.text[at + text.len()] = b'\n';
            len += line_len;
        }
    })?;
    req.len = len as u32;
    Ok(())
}

/// `off`, the built-in "no decision policy".
const OFF: &[u8] = b"off";

fn set_policy(req: &mut PolicyRequest) -> Result {
    let interface = name(&req.interface)?;
    let policy = name(&req.policy)?;
    let policy = (crate::api::name_str(&policy).as_bytes() != OFF).then_some(policy);
    crate::control::policy::pick(&interface, policy.as_ref(), req.params)
}

fn get_policy(req: &mut PolicyRequest) -> Result {
    let interface = name(&req.interface)?;
    let registry = REGISTRY.lock();
    let (picked, params) = registry.picked_policy(&interface)?;
    req.policy = [0; uapi::NAME_LEN];
    match picked {
        Some(p) => copy_name(&mut req.policy, &p.name),
        None => copy_name(&mut req.policy, OFF),
    }
    req.params = params;
    req.available = [[0; uapi::NAME_LEN]; uapi::MAX_POLICIES];
    let mut count = 0;
    for p in registry.policies_of(&interface) {
        if let Some(slot) = req.available.get_mut(count) {
            copy_name(slot, &p.name);
        }
        count += 1;
    }
    req.count = count as u32;
    Ok(())
}

fn swap_objects(req: &mut SwapRequest) -> Result {
    let interface = name(&req.interface)?;
    let target = name(&req.implementation)?;
    // Resolved once: below here nothing looks the implementation up.
    let target = REGISTRY.lock().pin(&interface, Some(&target))?;
    if target.kind != KIND_OBJECT {
        return Err(EINVAL);
    }
    if req.timeout_ms > 3_600_000 {
        return Err(EINVAL);
    }
    let timeout = (req.timeout_ms != 0).then_some(req.timeout_ms);
    let slots = target_slots(&interface, req.object)?;
    // A bad results pointer must fail before anything changes.
    let mut blank = KVec::new();
    blank.resize(
        slots.len().min(req.capacity as usize),
        SwapResult::default(),
        GFP_KERNEL,
    )?;
    write_entries(req.results, req.capacity, &blank)?;
    // Allocated before anything changes: a swap that ran must be reported.
    let mut out = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
    let previous = REGISTRY.lock().default_impl(&interface);
    if req.object == 0 {
        REGISTRY.lock().set_default(&interface, &target.name)?;
    }
    let start = Instant::<Monotonic>::now();
    let results = match swap::swap(&slots, &target, timeout) {
        Ok(results) => results,
        Err(err) => {
            // Nothing was swapped: new objects keep the old default too.
            if req.object == 0 {
                REGISTRY.lock().restore_default(&interface, previous);
            }
            return Err(err);
        }
    };
    req.total_ns = start.elapsed().as_nanos() as u64;
    for (slot, result) in slots.iter().zip(results.iter()) {
        let mut r = SwapResult {
            id: slot.id,
            ..SwapResult::default()
        };
        match result {
            SlotResult::Swapped(o) => {
                r.outcome = if o.completed {
                    OUTCOME_COMPLETED
                } else {
                    OUTCOME_ABORTED
                };
                r.phase = o.phase as u32;
                r.errno = o.errno;
                r.format = o.format;
                r.in_flight = o.in_flight;
                r.duration_ns = o.duration_ns as u64;
                r.blocked_ns = o.longest_wait_ns as u64;
            }
            SlotResult::Unchanged => r.outcome = OUTCOME_UNCHANGED,
            SlotResult::NotStarted(err) => {
                r.outcome = OUTCOME_NOT_STARTED;
                r.errno = err.to_errno();
            }
        }
        // Capacity is one place per slot.
        let _ = out.push_within_capacity(r);
    }
    let tally = swap::Tally::of(&results);
    req.count = out.len() as u32;
    req.completed = tally.completed;
    // The ABI counts a swap that could not start as aborted.
    req.aborted = tally.aborted + tally.not_started;
    req.unchanged = tally.unchanged;
    write_entries(req.results, req.capacity, &out)
}

fn interpose_objects(req: &mut InterposeRequest, add: bool) -> Result {
    let interface = name(&req.interface)?;
    let wrapper = name(&req.implementation)?;
    if !REGISTRY.lock().find_impl(&interface, &wrapper) {
        return Err(ENOENT);
    }
    let slots = target_slots(&interface, req.object)?;
    let mut changed = 0;
    let mut first_err = None;
    for slot in slots.iter() {
        let result = if add {
            interpose::interpose(slot, &wrapper)
        } else {
            interpose::remove(slot, &wrapper)
        };
        match result {
            Ok(()) => changed += 1,
            Err(err) => first_err = first_err.or(Some(err)),
        }
    }
    req.count = changed;
    match first_err {
        // One object alone: its error is the answer.
        Some(err) if req.object != 0 || changed == 0 && !slots.is_empty() => Err(err),
        _ => Ok(()),
    }
}

fn set_timeout(req: &mut TimeoutRequest) -> Result {
    if !(1..=3_600_000).contains(&req.timeout_ms) {
        return Err(EINVAL);
    }
    if req.object != 0 {
        return objects::find(req.object)?.set_timeout_ms(req.timeout_ms);
    }
    for slot in objects::all()?.iter() {
        // An object destroyed meanwhile has no timeout to set.
        let _ = slot.set_timeout_ms(req.timeout_ms);
    }
    Ok(())
}

#[vtable]
impl MiscDevice for Control {
    type Ptr = ();

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr> {
        Ok(())
    }

    fn ioctl(_device: (), _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let ret = dispatch(cmd, arg);
        // A swap, an interposition or a status report may have met a
        // misbehaving implementation.
        crate::control::quarantine::eject_pending();
        ret
    }
}

/// Runs one `/dev/hotswap` request.
fn dispatch(cmd: u32, arg: usize) -> Result<isize> {
    match cmd {
        HOTSWAP_IOC_VERSION => {
            let version = Version {
                uapi: UAPI_VERSION,
                module_abi: crate::api::ABI_VERSION,
            };
            UserSlice::new(UserPtr::from_addr(arg), size_of::<Version>())
                .writer()
                .write(&version)?;
            Ok(0)
        }
        HOTSWAP_IOC_LIST_INTERFACES => with_request(arg, list_interfaces),
        HOTSWAP_IOC_LIST_IMPLS => with_request(arg, list_impls),
        HOTSWAP_IOC_LIST_OBJECTS => with_request(arg, list_objects),
        HOTSWAP_IOC_OBJECT_STATUS => with_request(arg, object_status),
        HOTSWAP_IOC_SWAP => with_change(arg, Answer::WriteBack, swap_objects),
        HOTSWAP_IOC_INTERPOSE => {
            with_change(arg, Answer::WriteBack, |r| interpose_objects(r, true))
        }
        HOTSWAP_IOC_UNINTERPOSE => {
            with_change(arg, Answer::WriteBack, |r| interpose_objects(r, false))
        }
        HOTSWAP_IOC_SET_TIMEOUT => with_change(arg, Answer::None, set_timeout),
        HOTSWAP_IOC_OBJECT_REPORTS => with_request(arg, object_reports),
        HOTSWAP_IOC_SET_POLICY => with_change(arg, Answer::None, set_policy),
        HOTSWAP_IOC_GET_POLICY => with_request(arg, get_policy),
        _ => Err(ENOTTY),
    }
}
