// SPDX-License-Identifier: GPL-2.0
//! Plug-ins that break their contract (implementations, decision
//! policies): the count status reports, and the quarantine queue.
//!
//! The first misbehavior of an implementation quarantines it (sched_ext's
//! "error, then fallback"): the registry refuses it for new objects and
//! swaps, and its name goes on [`PENDING`], which the control plane drains
//! after each operation (`control/quarantine.rs`) to swap the
//! implementation's objects to the interface's known-good one. The queue
//! is here, at the bottom, because misbehavior is noticed at the bottom
//! (the registry checks every callback's result) and acted on at the top.

use crate::api::Name;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};

/// Plug-in callbacks that broke their contract, ever.
static MISBEHAVIORS: Atomic<u64> = Atomic::new(0);

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init before any entry point can run.
    pub(crate) unsafe(uninit) static PENDING: Mutex<KVec<(Name, Name)>> = KVec::new();
}

/// Counts one plug-in callback that broke its contract.
pub(crate) fn count_misbehavior() {
    MISBEHAVIORS.add(1, Relaxed);
}

/// Plug-in callbacks that broke their contract so far.
pub(crate) fn misbehaviors() -> u64 {
    MISBEHAVIORS.load(Relaxed)
}

/// Queues `interface`/`name`, just quarantined, for ejection. If memory
/// is short it is not queued: it stays quarantined (refused for new
/// objects and swaps) and its objects stay where they are.
pub(crate) fn queue_ejection(interface: Name, name: Name) {
    let _ = PENDING.lock().push((interface, name), GFP_KERNEL);
}

/// Takes the queued ejections.
pub(crate) fn take_ejections() -> KVec<(Name, Name)> {
    core::mem::take(&mut *PENDING.lock())
}
