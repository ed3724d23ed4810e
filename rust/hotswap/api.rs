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
pub const ABI_VERSION: u32 = 1;

/// Capacity of a name field, including the terminating NUL.
pub const NAME_LEN: usize = 32;

/// A fixed-size, NUL-terminated name as it travels in an ops table.
pub type Name = [u8; NAME_LEN];

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

/// An implementation as its module describes it.
pub trait Implementation {
    /// Interface the implementation belongs to.
    const INTERFACE: &'static CStr;
    /// Implementation name, unique within the interface.
    const NAME: &'static CStr;
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

/// Turns an entry point's return value into a `Result`.
pub fn to_result(ret: c_int) -> Result {
    kernel::error::to_result(ret)
}
