// SPDX-License-Identifier: GPL-2.0
//! The hotswap module ABI, shared by `hotswap.ko` and every module that
//! provides interfaces or implementations.
//!
//! Rust types cannot cross `.ko` boundaries, so modules talk through
//! `#[repr(C)]` ops tables and `extern "C"` entry points that `hotswap.ko`
//! exports with `EXPORT_SYMBOL_GPL` (see `exports.c`). This file is compiled
//! into each module (`#[path = ...] mod api;`), so both sides always agree
//! on the layout; [`ABI_VERSION`] catches a module built against another
//! revision of this file.
//!
//! Only this file and the registry behind the entry points touch the raw
//! tables. Modules use the safe [`Registration`] and [`InterfaceRegistration`]
//! guards: registered on creation, unregistered on drop.

use core::ffi::{c_char, c_int, c_void};
use kernel::prelude::*;

/// Version of the ops-table layout. Bump on any change to a `#[repr(C)]`
/// struct or entry point in this file.
pub const ABI_VERSION: u32 = 5;

/// Capacity of a name field, including the terminating NUL.
pub const NAME_LEN: usize = 32;

/// A fixed-size, NUL-terminated name as it travels in an ops table.
pub type Name = [u8; NAME_LEN];

/// Most state formats an implementation may list for export or import.
pub const MAX_FORMATS: usize = 4;

/// [`ImplOps::kind`]: the implementation creates objects that hold state
/// and can replace one another.
pub const KIND_OBJECT: u32 = 0;
/// [`ImplOps::kind`]: the implementation creates interposers: wrappers that
/// see every call and forward it with [`hotswap_call_next`].
pub const KIND_INTERPOSER: u32 = 1;

/// [`ImplOps::destroy`]: the object's life is over; flush what it must.
pub const DESTROY_FINAL: u32 = 0;
/// [`ImplOps::destroy`]: the object's state now lives elsewhere (it was
/// transferred to a successor, or this object was a replacement that never
/// took over): release memory only, no side effects.
pub const DESTROY_QUIET: u32 = 1;

/// Describes an interface: a set of operations that several
/// implementations provide (e.g. `fcm`).
#[repr(C)]
pub struct InterfaceOps {
    /// Must be [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<InterfaceOps>()` as the caller compiled it.
    pub size: u32,
    /// Interface name: `[a-z0-9_]`, 1 to `NAME_LEN - 1` bytes, NUL-terminated.
    pub name: Name,
    /// Module providing the interface (a `struct module *`; opaque here
    /// because `struct module` is not FFI-safe as Rust sees it).
    pub owner: *mut c_void,
}

/// Describes one implementation of an interface (e.g. `fcm`/`shared`).
#[repr(C)]
pub struct ImplOps {
    /// Must be [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<ImplOps>()` as the caller compiled it.
    pub size: u32,
    /// Name of a registered interface.
    pub interface: Name,
    /// Implementation name, unique within its interface.
    pub name: Name,
    /// Module providing the implementation (a `struct module *`); pinned
    /// while objects use it.
    pub owner: *mut c_void,
    /// [`KIND_OBJECT`] or [`KIND_INTERPOSER`].
    pub kind: u32,
    /// Formats [`ImplOps::export`] can produce, preferred first; 0 ends the
    /// list. Format numbers are defined by the interface.
    pub export_formats: [u32; MAX_FORMATS],
    /// Formats [`ImplOps::import`] accepts, preferred first; 0 ends the list.
    pub import_formats: [u32; MAX_FORMATS],
    /// The interface's method table for this implementation. Every method
    /// takes the object first and the [`Call`] it was reached through
    /// second.
    pub methods: *const c_void,
    /// Creates an object; `arg` is interface-specific, and NULL when the
    /// object is created as a replacement (its state then arrives through
    /// `import`). Stores the object in `*out` and returns 0, or returns a
    /// negative errno.
    pub create: Option<unsafe extern "C" fn(arg: *const c_void, out: *mut *mut c_void) -> c_int>,
    /// Destroys an object: [`DESTROY_FINAL`] or [`DESTROY_QUIET`].
    pub destroy: Option<unsafe extern "C" fn(obj: *mut c_void, how: u32)>,
    /// Describes the object's state in `format` without changing the
    /// object (a swap may still abort and keep it), storing a state handle
    /// in `*state`. Returns 0 or a negative errno.
    pub export: Option<
        unsafe extern "C" fn(obj: *mut c_void, format: u32, state: *mut *mut c_void) -> c_int,
    >,
    /// Takes over `state` (exported by another implementation in `format`)
    /// into a freshly created object. Returns 0 or a negative errno.
    pub import:
        Option<unsafe extern "C" fn(obj: *mut c_void, format: u32, state: *mut c_void) -> c_int>,
    /// Ends a transfer on the exporting object: frees the state handle.
    /// `taken` is 1 if the successor imported it (whatever was handed over
    /// now belongs to the successor) and 0 if the swap aborted (the object
    /// must be exactly as before `export`).
    pub release:
        Option<unsafe extern "C" fn(obj: *mut c_void, format: u32, state: *mut c_void, taken: u32)>,
    /// Optional: writes a one-line `key=value` summary of the instance
    /// (a monitor's figures) into `buf` (`len` bytes) and returns the
    /// number of bytes written, shown in status.
    pub report: Option<unsafe extern "C" fn(obj: *mut c_void, buf: *mut u8, len: usize) -> isize>,
}

/// How one swap of one object ended, as [`hotswap_object_swap`] reports it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SwapReport {
    /// 1 if the new object took over, 0 if the swap aborted or never ran.
    pub completed: u32,
    /// The phase the swap ended in (numbering of `mediator.rs`).
    pub phase: u32,
    /// 0, or the negative errno that aborted the swap.
    pub errno: i32,
    /// The state format used (0: none).
    pub format: u32,
    /// Tracked calls still in flight when the swap ended.
    pub in_flight: i64,
    /// Start of Forward until the slot was on one object again.
    pub duration_ns: i64,
    /// Longest time a caller waited in Blocked.
    pub longest_wait_ns: i64,
}

/// One call through a slot, as hotswap hands it to callers and interposers.
///
/// [`hotswap_call_begin`] fills it; the caller then invokes `methods` on
/// `obj`, passing the `Call` along, and ends with [`hotswap_call_end`]. The
/// fields after `obj` belong to hotswap.
#[repr(C)]
pub struct Call {
    /// Method table of the object to call.
    pub methods: *const c_void,
    /// The object to call.
    pub obj: *mut c_void,
    /// hotswap: the slot this call runs through.
    pub slot: *const c_void,
    /// hotswap: the chain of layers this call runs on.
    pub chain: *const c_void,
    /// hotswap: the read-side token, if this call entered the slot.
    pub token: *mut c_void,
    /// hotswap: the mediator tracking this call, if any.
    pub mediator: *const c_void,
    /// hotswap: index of the layer `obj` is in.
    pub depth: u32,
    /// hotswap: whether the mediator tracks this call.
    pub tracked: u32,
    /// hotswap: the task that began a tracked call (the one its end
    /// removes from the mediator's list, whichever task ends it).
    pub task: usize,
}

impl Call {
    /// An empty call, to be filled by [`hotswap_call_begin`] or
    /// [`hotswap_call_next`].
    pub const fn new() -> Self {
        Self {
            methods: core::ptr::null(),
            obj: core::ptr::null_mut(),
            slot: core::ptr::null(),
            chain: core::ptr::null(),
            token: core::ptr::null_mut(),
            mediator: core::ptr::null(),
            depth: 0,
            tracked: 0,
            task: 0,
        }
    }
}

impl Default for Call {
    fn default() -> Self {
        Self::new()
    }
}

// Entry points exported by hotswap.ko. Each returns 0 or a negative errno.
// The tables must stay valid and unmoved until they are unregistered.
extern "C" {
    /// Registers an interface. `-EEXIST` if the name is taken, `-EPROTO` on
    /// an ABI mismatch, `-EINVAL` on a malformed table.
    pub fn hotswap_register_interface(ops: *const InterfaceOps) -> c_int;
    /// Unregisters an interface. `-ENOENT` if `ops` is not registered,
    /// `-EBUSY` while implementations are registered under it.
    pub fn hotswap_unregister_interface(ops: *const InterfaceOps) -> c_int;
    /// Registers an implementation. `-ENOENT` if its interface is unknown,
    /// `-EEXIST` if the interface already has an implementation of that name.
    pub fn hotswap_register_impl(ops: *const ImplOps) -> c_int;
    /// Unregisters an implementation. `-ENOENT` if `ops` is not registered.
    pub fn hotswap_unregister_impl(ops: *const ImplOps) -> c_int;
    /// Returns 0 if `interface`/`name` (NUL-terminated strings) is
    /// registered, `-ENOENT` otherwise.
    pub fn hotswap_find_impl(interface: *const c_char, name: *const c_char) -> c_int;

    /// Creates an object of `interface` on implementation `name` (NULL:
    /// the interface's default) with the creation argument `arg`, and
    /// stores a slot handle in `*slot`. The handle stays valid until
    /// [`hotswap_object_destroy`].
    pub fn hotswap_object_create(
        interface: *const c_char,
        name: *const c_char,
        arg: *const c_void,
        slot: *mut *const c_void,
    ) -> c_int;
    /// Destroys the object behind a slot handle; no call may be running on
    /// it or start on it afterwards.
    pub fn hotswap_object_destroy(slot: *const c_void) -> c_int;
    /// The object id of a slot handle (as `/dev/hotswap` shows it).
    pub fn hotswap_object_id(slot: *const c_void) -> u32;
    /// Starts a call through `slot`: fills `call` with the object to invoke.
    /// May sleep while the object is being swapped. Returns 0 or a negative
    /// errno; on 0, [`hotswap_call_end`] must follow.
    pub fn hotswap_call_begin(slot: *const c_void, call: *mut Call) -> c_int;
    /// From inside an interposer's method: fills `next` with the layer
    /// below `call`'s. Returns 0 (then [`hotswap_call_end`] on `next`) or a
    /// negative errno.
    pub fn hotswap_call_next(call: *const Call, next: *mut Call) -> c_int;
    /// Ends a call started by [`hotswap_call_begin`] or [`hotswap_call_next`].
    pub fn hotswap_call_end(call: *mut Call);

    /// Swaps the object behind `slot` to implementation `name`, waiting at
    /// most `timeout_ms` per phase (0: the object's own timeout). Fills
    /// `report` (may be NULL) and returns 0 if the new object took over,
    /// else the negative errno that stopped or aborted the swap.
    pub fn hotswap_object_swap(
        slot: *const c_void,
        name: *const c_char,
        timeout_ms: u32,
        report: *mut SwapReport,
    ) -> c_int;
    /// Swaps every object of `interface` to `name` as one batch and makes
    /// `name` the default for new objects. Stores how many swaps completed
    /// and aborted; returns 0 if none aborted, else `-ECANCELED`.
    pub fn hotswap_swap_all(
        interface: *const c_char,
        name: *const c_char,
        timeout_ms: u32,
        completed: *mut u32,
        aborted: *mut u32,
    ) -> c_int;
    /// Puts an interposer of implementation `name` on top of `slot`.
    pub fn hotswap_object_interpose(slot: *const c_void, name: *const c_char) -> c_int;
    /// Removes the outermost interposer of implementation `name`.
    pub fn hotswap_object_uninterpose(slot: *const c_void, name: *const c_char) -> c_int;
    /// The phase of the swap in progress on `slot` (0: none).
    pub fn hotswap_object_phase(slot: *const c_void) -> u32;
    /// A monitor's once-a-window sample for the autonomic policy:
    /// `active_cpus` CPUs used `slot` in the last window.
    pub fn hotswap_policy_sample(slot: *const c_void, active_cpus: u32);
    /// Sets the per-phase swap timeout of `slot` (1 ms to 1 hour).
    pub fn hotswap_object_set_timeout(slot: *const c_void, timeout_ms: u32) -> c_int;
}

/// Copies `s` into a fixed-size name field; `EINVAL` if it does not fit.
pub fn name_from_cstr(s: &CStr) -> Result<Name> {
    let bytes = s.to_bytes();
    if bytes.is_empty() || bytes.len() >= NAME_LEN {
        return Err(EINVAL);
    }
    let mut name = [0u8; NAME_LEN];
    name[..bytes.len()].copy_from_slice(bytes);
    Ok(name)
}

/// Size of `T` as the `size` field of an ops table records it.
fn table_size<T>() -> u32 {
    // The tables are a few dozen bytes; the cast cannot truncate.
    core::mem::size_of::<T>() as u32
}

/// An implementation as its module describes it. The `extern "C"` shims
/// in [`ImplOps`] are written by the interface's own binding (e.g. the FCM
/// or a test interface), which knows the method table; [`Implementation::ops`]
/// fills in the rest.
pub trait Implementation {
    /// Interface the implementation belongs to.
    const INTERFACE: &'static CStr;
    /// Implementation name, unique within the interface.
    const NAME: &'static CStr;

    /// The implementation's table without the identity fields
    /// (`abi_version`, `size`, names, `owner`), which [`Registration`]
    /// fills. The default registers no callbacks: enough to appear in the
    /// registry, not to create objects.
    fn ops() -> ImplOps {
        ImplOps::empty()
    }
}

impl ImplOps {
    /// A table with every callback empty and no formats.
    pub const fn empty() -> Self {
        Self {
            abi_version: ABI_VERSION,
            size: 0,
            interface: [0; NAME_LEN],
            name: [0; NAME_LEN],
            owner: core::ptr::null_mut(),
            kind: KIND_OBJECT,
            export_formats: [0; MAX_FORMATS],
            import_formats: [0; MAX_FORMATS],
            methods: core::ptr::null(),
            create: None,
            destroy: None,
            export: None,
            import: None,
            release: None,
            report: None,
        }
    }
}

/// Keeps an implementation registered with hotswap until dropped.
pub struct Registration {
    // Boxed so the address handed to hotswap.ko never moves.
    ops: KBox<ImplOps>,
}

// SAFETY: The table is immutable after construction; the raw module pointer
// in it is only an identity that hotswap.ko passes to `try_module_get`.
unsafe impl Send for Registration {}
// SAFETY: See `Send`: shared access only reads immutable data.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers `T` on behalf of `module`.
    pub fn new<T: Implementation>(module: &'static ThisModule) -> Result<Self> {
        let ops = KBox::new(
            ImplOps {
                abi_version: ABI_VERSION,
                size: table_size::<ImplOps>(),
                interface: name_from_cstr(T::INTERFACE)?,
                name: name_from_cstr(T::NAME)?,
                owner: module.as_ptr().cast(),
                ..T::ops()
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` is a valid table that stays at this address until
        // `drop` unregisters it.
        to_result(unsafe { hotswap_register_impl(&*ops) })?;
        Ok(Self { ops })
    }

    /// The table as hotswap.ko sees it.
    pub fn ops(&self) -> &ImplOps {
        &self.ops
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self.ops` was registered in `new` and is still valid.
        let ret = unsafe { hotswap_unregister_impl(&*self.ops) };
        if ret != 0 {
            pr_warn!("unregistering from hotswap failed: {}\n", ret);
        }
    }
}

/// Keeps an interface registered with hotswap until dropped.
pub struct InterfaceRegistration {
    // Boxed so the address handed to hotswap.ko never moves.
    ops: KBox<InterfaceOps>,
}

// SAFETY: As for `Registration`: immutable after construction.
unsafe impl Send for InterfaceRegistration {}
// SAFETY: As for `Registration`: shared access only reads immutable data.
unsafe impl Sync for InterfaceRegistration {}

impl InterfaceRegistration {
    /// Registers the interface `name` on behalf of `module`.
    pub fn new(name: &CStr, module: &'static ThisModule) -> Result<Self> {
        let ops = KBox::new(
            InterfaceOps {
                abi_version: ABI_VERSION,
                size: table_size::<InterfaceOps>(),
                name: name_from_cstr(name)?,
                owner: module.as_ptr().cast(),
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` is a valid table that stays at this address until
        // `drop` unregisters it.
        to_result(unsafe { hotswap_register_interface(&*ops) })?;
        Ok(Self { ops })
    }
}

impl Drop for InterfaceRegistration {
    fn drop(&mut self) {
        // SAFETY: `self.ops` was registered in `new` and is still valid.
        let ret = unsafe { hotswap_unregister_interface(&*self.ops) };
        if ret != 0 {
            pr_warn!("unregistering an interface from hotswap failed: {}\n", ret);
        }
    }
}

/// Whether `interface`/`name` is registered right now.
pub fn impl_registered(interface: &CStr, name: &CStr) -> bool {
    // SAFETY: Both pointers are NUL-terminated strings valid for the call.
    unsafe { hotswap_find_impl(interface.as_ptr(), name.as_ptr()) == 0 }
}

/// A slot handle: how a client holds an object (never the object itself).
pub struct Object {
    slot: *const c_void,
}

// SAFETY: A slot handle may be used from any thread; hotswap.ko
// synchronizes everything behind it.
unsafe impl Send for Object {}
// SAFETY: See `Send`: calls through a shared handle are what slots are for.
unsafe impl Sync for Object {}

impl Object {
    /// Creates an object of `interface` on `implementation` (`None`: the
    /// interface's default) from the interface-specific `arg`.
    pub fn create(
        interface: &CStr,
        implementation: Option<&CStr>,
        arg: *const c_void,
    ) -> Result<Self> {
        let mut slot = core::ptr::null();
        let name = implementation.map_or(core::ptr::null(), |n| n.as_ptr());
        // SAFETY: The strings are NUL-terminated; `slot` is a valid out
        // pointer.
        to_result(unsafe { hotswap_object_create(interface.as_ptr(), name, arg, &mut slot) })?;
        Ok(Self { slot })
    }

    /// The raw slot handle.
    pub fn slot(&self) -> *const c_void {
        self.slot
    }

    /// The object id `/dev/hotswap` shows.
    pub fn id(&self) -> u32 {
        // SAFETY: `self.slot` is a live handle until `drop`.
        unsafe { hotswap_object_id(self.slot) }
    }

    /// Calls through the slot: `f` receives the method table and object to
    /// invoke and the [`Call`] to pass along.
    pub fn call<R>(&self, f: impl FnOnce(*const c_void, *mut c_void, &Call) -> R) -> Result<R> {
        let mut call = Call::new();
        // SAFETY: `self.slot` is live; `call` is a valid out pointer.
        to_result(unsafe { hotswap_call_begin(self.slot, &mut call) })?;
        let ret = f(call.methods, call.obj, &call);
        // SAFETY: `call` was begun above.
        unsafe { hotswap_call_end(&mut call) };
        Ok(ret)
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: `self.slot` is live and no call can be running through
        // this handle, which `drop` owns exclusively.
        let ret = unsafe { hotswap_object_destroy(self.slot) };
        if ret != 0 {
            pr_warn!("destroying a hotswap object failed: {}\n", ret);
        }
    }
}

/// From an interposer's method: forwards to the layer below `call`; `f`
/// receives what [`Object::call`]'s closure does.
pub fn forward<R>(
    call: &Call,
    f: impl FnOnce(*const c_void, *mut c_void, &Call) -> R,
) -> Result<R> {
    let mut next = Call::new();
    // SAFETY: `call` is the live call this interposer runs in.
    to_result(unsafe { hotswap_call_next(call, &mut next) })?;
    let ret = f(next.methods, next.obj, &next);
    // SAFETY: `next` was begun above.
    unsafe { hotswap_call_end(&mut next) };
    Ok(ret)
}

/// Turns an entry point's return value into a `Result`. Inline, with the
/// error path out of line: it sits on every call through a slot, and the
/// kernel crate's own `to_result` is a call into another crate.
#[inline(always)]
pub fn to_result(ret: c_int) -> Result {
    if ret == 0 {
        Ok(())
    } else {
        error_from(ret)
    }
}

#[cold]
fn error_from(ret: c_int) -> Result {
    kernel::error::to_result(ret)
}
