// SPDX-License-Identifier: GPL-2.0
//! Each slot's swap history, as status (ioctl and debugfs) reports it.

use crate::ott::phase::Phase;

/// How one swap of one object ended.
#[derive(Clone, Copy)]
pub(crate) struct SwapOutcome {
    /// Whether the new object took over.
    pub(crate) completed: bool,
    /// The phase the swap was in when it ended (Completed on success).
    pub(crate) phase: Phase,
    /// 0 on success, else the negative errno that aborted it.
    pub(crate) errno: i32,
    /// Start of Forward to the slot being on one object again.
    pub(crate) duration_ns: i64,
    /// Longest time a caller waited in Blocked.
    pub(crate) longest_wait_ns: i64,
    /// Tracked calls still in flight when the swap ended.
    pub(crate) in_flight: i64,
    /// State format used (0: none).
    pub(crate) format: u32,
}

impl SwapOutcome {
    /// No swap: all zero.
    pub(crate) const NONE: Self = Self {
        completed: false,
        phase: Phase::Normal,
        errno: 0,
        duration_ns: 0,
        longest_wait_ns: 0,
        in_flight: 0,
        format: 0,
    };
}

/// Per-object history.
#[derive(Default)]
pub(crate) struct SlotStats {
    pub(crate) swaps_done: u64,
    pub(crate) swaps_aborted: u64,
    pub(crate) last: Option<SwapOutcome>,
}

impl SlotStats {
    /// Records one finished swap.
    pub(crate) fn record(&mut self, outcome: SwapOutcome) {
        if outcome.completed {
            self.swaps_done += 1;
        } else {
            self.swaps_aborted += 1;
        }
        self.last = Some(outcome);
    }
}
