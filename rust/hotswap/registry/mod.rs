// SPDX-License-Identifier: GPL-2.0
//! Interfaces, implementations and decision policies by name (`table`),
//! and the count of plug-ins that broke their contract (`misbehavior`).
//! The bottom of the core: it uses the shared ABI only.

pub(crate) mod misbehavior;
mod table;

pub(crate) use table::*;
