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
pub const ABI_VERSION: u32 = 8;

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
/// implementations provide.
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
    /// Version of the interface's method table; an implementation built
    /// against another gets `EPROTO` at registration.
    pub methods_version: u32,
    /// Size of the interface's method table; checked like the version.
    pub methods_size: u32,
    /// The implementation new objects get when no default was set, and the
    /// one objects fall back to when theirs is quarantined (empty: the
    /// first registered object implementation).
    pub known_good: Name,
}

/// Describes one implementation of an interface.
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
    /// [`InterfaceOps::methods_version`] as this implementation compiled it.
    pub methods_version: u32,
    /// [`InterfaceOps::methods_size`] as this implementation compiled it.
    pub methods_size: u32,
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

/// Parameters of a decision policy (their meaning is the policy's).
pub const POLICY_PARAMS: usize = 4;
/// Words of a monitor's sample (their meaning is the interface's).
pub const SAMPLE_WORDS: usize = 4;
/// Words of per-object state hotswap keeps for a decision policy.
pub const STATE_WORDS: usize = 4;
/// Bytes of a decision's reason, NUL included.
pub const REASON_LEN: usize = 96;

/// One decision a policy is asked for: a sample of one object came in.
#[repr(C)]
pub struct Decision {
    /// In: the policy's parameters, as set.
    pub params: [u32; POLICY_PARAMS],
    /// In: the sample, as the interface's monitor took it.
    pub sample: [u64; SAMPLE_WORDS],
    /// In/out: the policy's state for this object (zero at first, when
    /// the policy is picked and after each swap it asked for).
    pub state: [u64; STATE_WORDS],
    /// In: the object's implementation.
    pub current: Name,
    /// Out: the implementation to swap to.
    pub target: Name,
    /// Out: why, for the log line (NUL-terminated).
    pub reason: [u8; REASON_LEN],
}

/// A decision policy of an interface: samples its objects and asks for
/// swaps (K42's swappable "adaptation decision algorithm"). `off` is
/// built in.
#[repr(C)]
pub struct DecisionOps {
    /// Must be [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<DecisionOps>()` as the caller compiled it.
    pub size: u32,
    /// Interface the policy decides for.
    pub interface: Name,
    /// Policy name, unique within the interface; not `off`.
    pub name: Name,
    /// Module providing the policy (a `struct module *`).
    pub owner: *mut c_void,
    /// An interposer of the interface that the policy needs on every
    /// object to get samples (all zero: none).
    pub monitor: Name,
    /// Parameters when the picker gives none (all zero).
    pub default_params: [u32; POLICY_PARAMS],
    /// Checks parameters: 0 or `-EINVAL`.
    pub check: Option<unsafe extern "C" fn(params: *const u32) -> c_int>,
    /// Decides: returns 1 to swap to `target` (filled with `reason`), 0 to
    /// leave the object, or a negative errno. Must not sleep.
    pub decide: Option<unsafe extern "C" fn(decision: *mut Decision) -> c_int>,
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
    /// Unregisters `ops` for a registrant going away: if implementations
    /// or policies are still registered under it, the interface is retired
    /// instead (no longer found; its name free again once they are gone).
    /// `ENOENT` if `ops` was never registered.
    pub fn hotswap_retire_interface(ops: *const InterfaceOps) -> c_int;
    /// Registers an implementation. `-ENOENT` if its interface is unknown,
    /// `-EEXIST` if the interface already has an implementation of that name.
    pub fn hotswap_register_impl(ops: *const ImplOps) -> c_int;
    /// Unregisters an implementation. `-ENOENT` if `ops` is not registered.
    pub fn hotswap_unregister_impl(ops: *const ImplOps) -> c_int;
    /// Unregisters `ops` for a registrant going away: if objects still use
    /// it, the implementation is retired instead (no longer found, so no
    /// new objects or swaps to it; its objects keep working). `ENOENT` if
    /// `ops` was never registered.
    pub fn hotswap_retire_impl(ops: *const ImplOps) -> c_int;
    /// Returns 0 if `interface`/`name` (NUL-terminated strings) is
    /// registered, `-ENOENT` if not, `-EINVAL` if either is NULL or no
    /// valid name.
    pub fn hotswap_find_impl(interface: *const c_char, name: *const c_char) -> c_int;

    /// Creates an object of `interface` on implementation `name` (NULL:
    /// the interface's default) with the creation argument `arg`, and
    /// stores a slot handle in `*slot`. The handle stays valid until
    /// [`hotswap_object_destroy`]. `-EPROTO` unless the caller's idea of
    /// the interface's method table (`methods_version`, `methods_size`) is
    /// the interface's: the handle's calls will use that type.
    pub fn hotswap_object_create(
        interface: *const c_char,
        methods_version: u32,
        methods_size: u32,
        name: *const c_char,
        arg: *const c_void,
        slot: *mut *const c_void,
    ) -> c_int;
    /// Destroys the object behind a slot handle; no call may be running on
    /// it or start on it afterwards.
    pub fn hotswap_object_destroy(slot: *const c_void) -> c_int;
    /// Reports that the object behind `slot` broke its interface's
    /// contract; `what` (NUL-terminated) says how, for the log.
    pub fn hotswap_object_misbehaved(slot: *const c_void, what: *const c_char);
    /// Labels the object behind `slot` (NUL-terminated): what status
    /// shows it is.
    pub fn hotswap_object_set_label(slot: *const c_void, label: *const c_char);
    /// As [`hotswap_object_misbehaved`], from inside the live `call`: the
    /// implementation blamed is the one the call reached, even if a swap
    /// has put another in the slot since.
    pub fn hotswap_call_misbehaved(call: *const Call, what: *const c_char);
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
    /// As [`hotswap_call_begin`], but `-EAGAIN` instead of waiting while
    /// the object is being swapped or destroyed (for memory reclaim).
    pub fn hotswap_call_try_begin(slot: *const c_void, call: *mut Call) -> c_int;
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
    /// Registers a decision policy. `-ENOENT` if its interface is unknown,
    /// `-EEXIST` if the name is taken, `-EPROTO`/`-EINVAL` on a bad table.
    pub fn hotswap_register_policy(ops: *const DecisionOps) -> c_int;
    /// Unregisters a decision policy; if it was picked, its interface's
    /// policy becomes `off`.
    pub fn hotswap_unregister_policy(ops: *const DecisionOps) -> c_int;
    /// A monitor's sample of `slot` (`n` words, at most [`SAMPLE_WORDS`]),
    /// handed to the interface's decision policy, if one is picked.
    pub fn hotswap_policy_sample(slot: *const c_void, sample: *const u64, n: u32);
    /// Sets the per-phase swap timeout of `slot` (1 ms to 1 hour).
    pub fn hotswap_object_set_timeout(slot: *const c_void, timeout_ms: u32) -> c_int;
}

/// The one name check, for every name that crosses a boundary (tables,
/// entry points, ioctls): 1 to `NAME_LEN - 1` bytes of `[a-z0-9_]`, then
/// NULs to the end of the field. Returns the name as a `CStr`.
///
/// The padding must be NULs because names are compared as whole fields:
/// `shared\0junk` would be a second, different `shared`.
pub fn validate_name(name: &Name) -> Result<&CStr> {
    let s = CStr::from_bytes_until_nul(name).map_err(|_| EINVAL)?;
    let bytes = s.to_bytes();
    let valid_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_';
    let padded = name[bytes.len()..].iter().all(|b| *b == 0);
    if bytes.is_empty() || !bytes.iter().all(valid_char) || !padded {
        return Err(EINVAL);
    }
    Ok(s)
}

/// Copies `s` into a name field and checks it ([`validate_name`]).
pub fn name_from_cstr(s: &CStr) -> Result<Name> {
    let bytes = s.to_bytes();
    if bytes.len() >= NAME_LEN {
        return Err(EINVAL);
    }
    let mut name = [0u8; NAME_LEN];
    name[..bytes.len()].copy_from_slice(bytes);
    validate_name(&name)?;
    Ok(name)
}

/// A name field as a `&str`, for log lines.
pub fn name_str(name: &Name) -> &str {
    CStr::from_bytes_until_nul(name)
        .ok()
        .and_then(|s| s.to_str().ok())
        .unwrap_or("?")
}

/// Size of `T` as the `size` field of an ops table records it.
fn table_size<T>() -> u32 {
    // The tables are a few dozen bytes; the cast cannot truncate.
    core::mem::size_of::<T>() as u32
}

/// An implementation as its module describes it: its name, and the table
/// of callbacks its interface's adapter builds for it ([`ImplTable`]).
pub trait Implementation {
    /// Interface the implementation belongs to.
    type Interface: Interface;
    /// Implementation name, unique within the interface.
    const NAME: &'static CStr;

    /// The implementation's callbacks and method table. The default
    /// registers none: enough to appear in the registry, not to create
    /// objects.
    fn ops() -> ImplTable<Self::Interface> {
        ImplTable::empty()
    }
}

/// An implementation's table without the identity fields (`abi_version`,
/// `size`, names, `owner`), which [`Registration`] fills in, typed by the
/// interface whose method table it carries.
///
/// Its callbacks and method table are raw function pointers that
/// `hotswap.ko` will call, so a table with any is built only through the
/// `unsafe` [`ImplTable::from_raw`]: an interface's adapter does that
/// once, for the shims it writes (as `fcm_api::impl_ops` does), and the
/// implementations on top of it stay safe.
///
/// # Invariants
///
/// `ops.methods` is null or points to a `'static I::Methods`, and every
/// callback in `ops` keeps the contract its [`ImplOps`] field documents.
pub struct ImplTable<I: Interface> {
    ops: ImplOps,
    _interface: core::marker::PhantomData<I>,
}

impl<I: Interface> ImplTable<I> {
    /// No callbacks and no method table.
    pub const fn empty() -> Self {
        // INVARIANT: No method table and no callbacks.
        Self {
            ops: ImplOps::empty(),
            _interface: core::marker::PhantomData,
        }
    }

    /// A table with `ops`' kind, formats and callbacks, and `methods` as
    /// its method table (whatever `ops.methods` held).
    ///
    /// # Safety
    ///
    /// Every callback in `ops` must keep the contract its [`ImplOps`]
    /// field documents, and every method in `methods` must be sound to
    /// call with an object those callbacks created and the [`Call`] it was
    /// reached through, as the interface registered under `I::NAME`
    /// defines its methods (`I` must be that interface as its own source
    /// declares it: the registry checks the table's version and size only).
    pub const unsafe fn from_raw(methods: &'static I::Methods, ops: ImplOps) -> Self {
        // INVARIANT: `methods` is a `'static I::Methods`; the caller
        // vouches for the callbacks.
        Self {
            ops: ImplOps {
                methods: core::ptr::from_ref(methods).cast(),
                ..ops
            },
            _interface: core::marker::PhantomData,
        }
    }

    /// The raw table, for an adapter that builds on another's (it needs
    /// [`ImplTable::from_raw`] again to make a table of it).
    pub const fn into_raw(self) -> ImplOps {
        self.ops
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
            methods_version: 0,
            methods_size: 0,
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
                interface: name_from_cstr(<T::Interface as Interface>::NAME)?,
                name: name_from_cstr(T::NAME)?,
                owner: module.as_ptr().cast(),
                methods_version: <T::Interface as Interface>::METHODS_VERSION,
                methods_size: table_size::<<T::Interface as Interface>::Methods>(),
                ..T::ops().ops
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
        // Retired rather than refused when objects still use it: the table
        // is freed after this, and a refused entry would outlive it.
        // SAFETY: `self.ops` was registered in `new` and is still valid.
        let ret = unsafe { hotswap_retire_impl(&*self.ops) };
        if ret != 0 {
            pr_warn!("unregistering from hotswap failed: {}\n", ret);
        }
    }
}

/// An interface as the modules that use it see it: its name, its method
/// table's type and version, and its known-good implementation. The
/// interface's own source implements it once; the
/// typed handles below then hand out `&Self::Methods`, so the cast from
/// the ABI's untyped table pointer happens in one place ([`CallGuard`]).
pub trait Interface {
    /// Name under which the interface is registered.
    const NAME: &'static CStr;
    /// Version of [`Interface::Methods`]; bump on any change to it.
    const METHODS_VERSION: u32;
    /// The implementation new objects get when no default was set and the
    /// one a quarantined implementation's objects fall back to.
    const KNOWN_GOOD: Option<&'static CStr> = None;
    /// The `#[repr(C)]` method table every implementation provides.
    type Methods: 'static;
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
    /// Registers interface `I` on behalf of `module`.
    pub fn new<I: Interface>(module: &'static ThisModule) -> Result<Self> {
        let ops = KBox::new(
            InterfaceOps {
                abi_version: ABI_VERSION,
                size: table_size::<InterfaceOps>(),
                name: name_from_cstr(I::NAME)?,
                owner: module.as_ptr().cast(),
                methods_version: I::METHODS_VERSION,
                methods_size: table_size::<I::Methods>(),
                known_good: match I::KNOWN_GOOD {
                    Some(name) => name_from_cstr(name)?,
                    None => [0; NAME_LEN],
                },
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
        // Retired rather than refused while implementations remain (its
        // own module's, dropped after it): see `Registration`'s drop.
        // SAFETY: `self.ops` was registered in `new` and is still valid.
        let ret = unsafe { hotswap_retire_interface(&*self.ops) };
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

/// The reason a decision policy gives, written with `write!` into the
/// [`Decision`]'s fixed field (cut short if it does not fit).
pub struct Reason<'a> {
    buf: &'a mut [u8; REASON_LEN],
    len: usize,
}

impl core::fmt::Write for Reason<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            // Keep the last byte for the NUL.
            if self.len + 1 >= REASON_LEN {
                break;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// A decision policy as its module describes it; [`PolicyRegistration`]
/// builds the table and its shims, so the module writes no `unsafe`.
pub trait DecisionPolicy {
    /// Interface the policy decides for.
    type Interface: Interface;
    /// Policy name, unique within the interface.
    const NAME: &'static CStr;
    /// The interposer the policy needs on every object for samples.
    const MONITOR: Option<&'static CStr> = None;
    /// Parameters when none are given.
    const DEFAULT_PARAMS: [u32; POLICY_PARAMS];

    /// Checks parameters (`EINVAL` if they make no sense).
    fn check(params: &[u32; POLICY_PARAMS]) -> Result;

    /// One sample of one object, whose implementation is `current`:
    /// returns the implementation to swap to (and writes why into
    /// `reason`), or `None`. `state` is this object's, kept by hotswap.
    /// Must not sleep.
    fn decide(
        params: &[u32; POLICY_PARAMS],
        sample: &[u64; SAMPLE_WORDS],
        state: &mut [u64; STATE_WORDS],
        current: &CStr,
        reason: &mut Reason<'_>,
    ) -> Option<&'static CStr>;
}

/// # Safety
///
/// `params` points to [`POLICY_PARAMS`] readable words.
unsafe extern "C" fn policy_check_shim<P: DecisionPolicy>(params: *const u32) -> c_int {
    // SAFETY: The caller (hotswap.ko) passes its parameter array.
    let params = unsafe { &*params.cast::<[u32; POLICY_PARAMS]>() };
    match P::check(params) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `d` points to a [`Decision`] that nothing else uses during the call.
unsafe extern "C" fn policy_decide_shim<P: DecisionPolicy>(d: *mut Decision) -> c_int {
    // SAFETY: The caller (hotswap.ko) passes a decision of its own.
    let Some(d) = (unsafe { d.as_mut() }) else {
        return EINVAL.to_errno();
    };
    let Ok(current) = CStr::from_bytes_until_nul(&d.current) else {
        return EINVAL.to_errno();
    };
    let mut reason = Reason {
        buf: &mut d.reason,
        len: 0,
    };
    let Some(target) = P::decide(&d.params, &d.sample, &mut d.state, current, &mut reason) else {
        return 0;
    };
    let len = reason.len;
    d.reason[len] = 0;
    match name_from_cstr(target) {
        Ok(name) => {
            d.target = name;
            1
        }
        Err(e) => e.to_errno(),
    }
}

/// Keeps a decision policy registered with hotswap until dropped.
pub struct PolicyRegistration {
    // Boxed so the address handed to hotswap.ko never moves.
    ops: KBox<DecisionOps>,
}

// SAFETY: As for `Registration`: immutable after construction.
unsafe impl Send for PolicyRegistration {}
// SAFETY: As for `Registration`: shared access only reads immutable data.
unsafe impl Sync for PolicyRegistration {}

impl PolicyRegistration {
    /// Registers `P` on behalf of `module`.
    pub fn new<P: DecisionPolicy>(module: &'static ThisModule) -> Result<Self> {
        let ops = KBox::new(
            DecisionOps {
                abi_version: ABI_VERSION,
                size: table_size::<DecisionOps>(),
                interface: name_from_cstr(<P::Interface as Interface>::NAME)?,
                name: name_from_cstr(P::NAME)?,
                owner: module.as_ptr().cast(),
                monitor: match P::MONITOR {
                    Some(name) => name_from_cstr(name)?,
                    None => [0; NAME_LEN],
                },
                default_params: P::DEFAULT_PARAMS,
                check: Some(policy_check_shim::<P>),
                decide: Some(policy_decide_shim::<P>),
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` is a valid table that stays at this address until
        // `drop` unregisters it.
        to_result(unsafe { hotswap_register_policy(&*ops) })?;
        Ok(Self { ops })
    }
}

impl Drop for PolicyRegistration {
    fn drop(&mut self) {
        // SAFETY: `self.ops` was registered in `new` and is still valid.
        let ret = unsafe { hotswap_unregister_policy(&*self.ops) };
        if ret != 0 {
            pr_warn!(
                "unregistering a decision policy from hotswap failed: {}\n",
                ret
            );
        }
    }
}

/// A call in progress through a slot of interface `I`: the evidence that
/// the object may be used. Ends the call when dropped.
///
/// # Invariants
///
/// `call` was begun by `hotswap_call_begin`, `hotswap_call_try_begin` or
/// `hotswap_call_next` and has not ended; its `methods` points to a
/// method table of type `I::Methods` (hotswap.ko checked the table's
/// version and size against `I`'s when the implementation registered
/// under `I::NAME`, and a slot of `I` only ever holds such objects).
#[must_use = "a call ends when its guard is dropped"]
pub struct CallGuard<'a, I: Interface> {
    call: Call,
    _handle: core::marker::PhantomData<(&'a (), I)>,
}

impl<I: Interface> CallGuard<'_, I> {
    /// The object's method table.
    pub fn methods(&self) -> &I::Methods {
        // SAFETY: By the type invariant, `methods` is a live `I::Methods`
        // (implementations stay registered, and their modules loaded,
        // while objects use them).
        unsafe { &*self.call.methods.cast::<I::Methods>() }
    }

    /// Reports that the object serving this call (the object of the
    /// slot, behind any interposers, as the call reached it: during a swap
    /// the old or the new one) broke the interface's contract (`what` says
    /// how): hotswap quarantines its implementation and moves its objects
    /// to the known-good one. Report from inside the call, as here: after
    /// it ends, a swap may have put an innocent implementation in the
    /// slot. May sleep (it queues the ejection).
    pub fn misbehaved(&self, what: &CStr) {
        // SAFETY: By the type invariant the call is live; `what` is
        // NUL-terminated.
        unsafe { hotswap_call_misbehaved(&self.call, what.as_ptr()) };
    }

    /// The object, to pass as the methods' first argument.
    pub fn obj(&self) -> *mut c_void {
        self.call.obj
    }

    /// The call, to pass as the methods' second argument.
    pub fn call(&self) -> &Call {
        &self.call
    }
}

impl<I: Interface> Drop for CallGuard<'_, I> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the call is live; it ends once.
        unsafe { hotswap_call_end(&mut self.call) };
    }
}

/// A slot handle of interface `I`: how a client holds an object (never
/// the object itself). Destroys the object when dropped.
pub struct Object<I: Interface> {
    slot: *const c_void,
    /// [`Object::destroy`] ran: `drop` has nothing left to do.
    destroyed: kernel::sync::atomic::Atomic<bool>,
    _interface: core::marker::PhantomData<I>,
}

// SAFETY: A slot handle may be used from any thread; hotswap.ko
// synchronizes everything behind it.
unsafe impl<I: Interface> Send for Object<I> {}
// SAFETY: See `Send`: calls through a shared handle are what slots are for.
unsafe impl<I: Interface> Sync for Object<I> {}

impl<I: Interface> Object<I> {
    /// Creates an object on `implementation` (`None`: the interface's
    /// default) from the interface-specific `arg`.
    ///
    /// # Safety
    ///
    /// `arg` is what `I`'s implementations take as a creation argument
    /// (for `fcm`, a valid `FcmCreate`), valid for the call: they read it.
    /// `I` is the interface registered under `I::NAME`, as its own source
    /// declares it: hotswap checks `I::Methods`' version and size
    /// (`EPROTO`), which cannot tell apart two tables of one size.
    pub unsafe fn create(implementation: Option<&CStr>, arg: *const c_void) -> Result<Self> {
        let mut slot = core::ptr::null();
        let name = implementation.map_or(core::ptr::null(), |n| n.as_ptr());
        // SAFETY: The strings are NUL-terminated; `slot` is a valid out
        // pointer; `arg` is as `I`'s implementations expect (the caller's
        // promise).
        to_result(unsafe {
            hotswap_object_create(
                I::NAME.as_ptr(),
                I::METHODS_VERSION,
                table_size::<I::Methods>(),
                name,
                arg,
                &mut slot,
            )
        })?;
        Ok(Self {
            slot,
            destroyed: kernel::sync::atomic::Atomic::new(false),
            _interface: core::marker::PhantomData,
        })
    }

    /// Destroys the object now rather than when the handle drops (its
    /// owner may outlive its use: a cached inode waiting for its last
    /// reference). Once only; later calls do nothing.
    ///
    /// # Safety
    ///
    /// No call through this handle is running, and none starts afterwards.
    pub unsafe fn destroy(&self) {
        if self.destroyed.xchg(true, kernel::sync::atomic::Full) {
            return;
        }
        // SAFETY: `self.slot` is live until here; the caller promises no
        // call is running or will start.
        let ret = unsafe { hotswap_object_destroy(self.slot) };
        if ret != 0 {
            pr_warn!("destroying a hotswap object failed: {}\n", ret);
        }
    }

    /// Labels the object: what `hswapctl status` shows it is (an FCM: its
    /// file's path). The end of a long label is kept.
    pub fn set_label(&self, label: &CStr) {
        // SAFETY: `self.slot` is live; `label` is NUL-terminated.
        unsafe { hotswap_object_set_label(self.slot, label.as_ptr()) };
    }

    /// Reports that the object's implementation broke the interface's
    /// contract (`what` says how, for the log): hotswap counts it against
    /// the implementation.
    pub fn misbehaved(&self, what: &CStr) {
        // SAFETY: `self.slot` is live; `what` is NUL-terminated.
        unsafe { hotswap_object_misbehaved(self.slot, what.as_ptr()) };
    }

    /// The raw slot handle, for the entry points that take one.
    pub fn slot(&self) -> *const c_void {
        self.slot
    }

    /// The object id `/dev/hotswap` shows.
    pub fn id(&self) -> u32 {
        // SAFETY: `self.slot` is a live handle until `drop`.
        unsafe { hotswap_object_id(self.slot) }
    }

    /// Begins a call; it ends when the guard goes.
    #[inline]
    pub fn begin(&self) -> Result<CallGuard<'_, I>> {
        let mut call = Call::new();
        // SAFETY: `self.slot` is live; `call` is a valid out pointer.
        to_result(unsafe { hotswap_call_begin(self.slot, &mut call) })?;
        // INVARIANT: Begun above, on a slot of `I`.
        Ok(CallGuard {
            call,
            _handle: core::marker::PhantomData,
        })
    }

    /// As [`Object::begin`], but `EAGAIN` instead of waiting while the
    /// object is being swapped (memory reclaim must not wait).
    pub fn try_begin(&self) -> Result<CallGuard<'_, I>> {
        let mut call = Call::new();
        // SAFETY: As in `begin`.
        to_result(unsafe { hotswap_call_try_begin(self.slot, &mut call) })?;
        // INVARIANT: Begun above, on a slot of `I`.
        Ok(CallGuard {
            call,
            _handle: core::marker::PhantomData,
        })
    }

    /// Calls through the slot: `f` receives the method table, the object
    /// and the [`Call`] to pass along.
    #[inline]
    pub fn call<R>(&self, f: impl FnOnce(&I::Methods, *mut c_void, &Call) -> R) -> Result<R> {
        let guard = self.begin()?;
        Ok(f(guard.methods(), guard.obj(), guard.call()))
    }
}

impl<I: Interface> Drop for Object<I> {
    fn drop(&mut self) {
        // SAFETY: No call can be running through this handle: calls
        // borrow it, and `drop` owns it exclusively.
        unsafe { self.destroy() };
    }
}

/// The call a method of interface `I` runs in, as hotswap passed it to
/// the method: what an interposer forwards through and a monitor samples
/// with. Only a reference to one exists, made by [`LiveCall::from_raw`]
/// from the method's `call` argument.
///
/// # Invariants
///
/// The `Call` behind a `&LiveCall<I>` is live (begun, not ended) on a slot
/// of `I` for as long as the reference is.
#[repr(transparent)]
pub struct LiveCall<I: Interface> {
    call: Call,
    _interface: core::marker::PhantomData<I>,
}

impl<I: Interface> LiveCall<I> {
    /// The call a method of `I` received.
    ///
    /// # Safety
    ///
    /// `call` is the `call` argument hotswap passed to a method of `I`
    /// that is running now, and the reference is not used after that
    /// method returns (`'a` ends within it).
    #[inline]
    pub unsafe fn from_raw<'a>(call: *const Call) -> &'a Self {
        // SAFETY: `LiveCall` is a transparent `Call`; the caller promises
        // the call is live on a slot of `I` while `'a` lasts, which is the
        // type invariant.
        unsafe { &*call.cast::<Self>() }
    }

    /// Begins a call on the layer below; it ends when the guard goes.
    #[inline]
    pub fn next(&self) -> Result<CallGuard<'_, I>> {
        let mut next = Call::new();
        // SAFETY: By the type invariant `self.call` is live.
        to_result(unsafe { hotswap_call_next(&self.call, &mut next) })?;
        // INVARIANT: Begun above, one layer below a call on a slot of `I`.
        Ok(CallGuard {
            call: next,
            _handle: core::marker::PhantomData,
        })
    }

    /// Forwards to the layer below: `f` receives what [`Object::call`]'s
    /// closure does.
    #[inline]
    pub fn forward<R>(&self, f: impl FnOnce(&I::Methods, *mut c_void, &Call) -> R) -> Result<R> {
        let guard = self.next()?;
        Ok(f(guard.methods(), guard.obj(), guard.call()))
    }

    /// Hands the interface's decision policy a sample of this object
    /// (a monitor's, once a window).
    pub fn sample(&self, sample: &[u64]) {
        let n = sample.len().min(SAMPLE_WORDS) as u32;
        // SAFETY: By the type invariant the call, and so its slot, is live;
        // `sample` has `n` words.
        unsafe { hotswap_policy_sample(self.call.slot, sample.as_ptr(), n) };
    }
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
