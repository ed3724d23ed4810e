// SPDX-License-Identifier: GPL-2.0
//! The File Cache Manager interface: per-file page caches that can be
//! swapped live between implementations (`fcm_shared`, `fcm_distributed`).
//! hotswap.ko owns the interface so that implementations and the
//! cached-file front end all meet here.

use core::ffi::CStr;

/// Name under which the interface is registered.
pub(crate) const INTERFACE: &CStr = c"fcm";
