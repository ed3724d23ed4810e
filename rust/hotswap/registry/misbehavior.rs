// SPDX-License-Identifier: GPL-2.0
//! The count of plug-in callbacks (implementations, decision policies)
//! that broke their contract, as status reports it.

use kernel::sync::atomic::{Atomic, Relaxed};

/// Implementation callbacks that returned out-of-range values, ever.
static MISBEHAVIORS: Atomic<u64> = Atomic::new(0);

/// Counts one implementation callback that broke its contract.
pub(crate) fn count_misbehavior() {
    MISBEHAVIORS.add(1, Relaxed);
}

/// Implementation callbacks that broke their contract so far.
pub(crate) fn misbehaviors() -> u64 {
    MISBEHAVIORS.load(Relaxed)
}
