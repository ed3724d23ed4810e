// SPDX-License-Identifier: GPL-2.0
//! Interfaces, implementations and decision policies by name (`table`),
//! the count of plug-ins that broke their contract (`misbehavior`), and
//! the core's raw kernel calls (`sys`).
//! The bottom of the core: it uses the shared ABI only.

pub(crate) mod misbehavior;
pub(crate) mod sys;
mod table;

pub(crate) use sys::ModulePtr;
pub(crate) use table::*;
