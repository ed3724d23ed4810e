// SPDX-License-Identifier: GPL-2.0
//! Changing what a slot points at: interposition (a wrapper on top, no
//! quiescence needed) and replacement, driven in batches through the
//! mediator's phases (`batch`), with the state negotiated and moved by
//! `transfer`. Uses the object table and the registry.

pub(crate) mod batch;
pub(crate) mod interpose;
pub(crate) mod transfer;
