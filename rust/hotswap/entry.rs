// SPDX-License-Identifier: GPL-2.0
//! The `extern "C"` entry points other modules call (exported from
//! `exports.c`). Each one turns a `Result` into an errno exactly once.

use crate::api::{ImplOps, InterfaceOps, Name, NAME_LEN};
use crate::registry::REGISTRY;
use core::ffi::{c_char, c_int, CStr};
use kernel::prelude::*;

fn errno(result: Result) -> c_int {
    match result {
        Ok(()) => 0,
        Err(err) => err.to_errno(),
    }
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

/// Copies a caller's C string into a name field; `EINVAL` if it is NULL or
/// does not fit.
///
/// # Safety
///
/// `s` is NULL or a NUL-terminated string.
unsafe fn name_from_ptr(s: *const c_char) -> Result<Name> {
    if s.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: The caller promises a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(s) };
    let bytes = s.to_bytes();
    if bytes.len() >= NAME_LEN {
        return Err(EINVAL);
    }
    let mut name = [0u8; NAME_LEN];
    name[..bytes.len()].copy_from_slice(bytes);
    Ok(name)
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
