// SPDX-License-Identifier: GPL-2.0
//! The phases of a replacement (K42's Forward, Blocked, Transfer,
//! Completed, plus Aborted) and the arrows between them. A leaf: the
//! mediator drives the phases, stats count them, the ioctl ABI names them.
//!
//! ```text
//!   Normal -> Forward -> Blocked -> Transfer -> Completed -> Normal
//!                \          \           \
//!                 +----------+-----------+--> Aborted -> Normal
//! ```
//!
//! The verbs of the batch driver (`swap/batch.rs`, as livepatch and
//! sched_ext name their transitions) and the arrows they take:
//!
//! | verb       | arrow                              | when                                   |
//! |------------|------------------------------------|----------------------------------------|
//! | `start`    | Normal -> Forward                  | replacement made, mediator published   |
//! | `block`    | Forward -> Blocked                 | the grace period is over               |
//! | `drained`  | (a test in Blocked)                | every tracked call has ended           |
//! | `transfer` | Blocked -> Transfer                | state negotiated and moved             |
//! | `complete` | Transfer -> Completed -> Normal    | the new object took over               |
//! | `abort`    | Forward/Blocked/Transfer -> Aborted -> Normal | timeout, signal, transfer error |
//! | `settle`   | (after Normal)                     | the last grace period is over; let go  |

/// Where a slot is in a replacement.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub(crate) enum Phase {
    /// No replacement in progress.
    Normal = 0,
    /// New calls are tracked and forwarded to the old object.
    Forward = 1,
    /// New calls wait; tracked calls drain.
    Blocked = 2,
    /// State moves from the old object to the new one.
    Transfer = 3,
    /// The new object has taken over.
    Completed = 4,
    /// The swap was abandoned; the old object stays.
    Aborted = 5,
}

impl Phase {
    pub(crate) fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Forward,
            2 => Self::Blocked,
            3 => Self::Transfer,
            4 => Self::Completed,
            5 => Self::Aborted,
            _ => Self::Normal,
        }
    }

    /// The phase's name.
    pub(crate) fn name(self) -> &'static str {
        // The ioctl ABI numbers phases as this enum does.
        crate::uapi::PHASE_NAMES[self as usize]
    }

    /// Whether the state machine has an arrow from `self` to `to`.
    pub(crate) fn may_move_to(self, to: Phase) -> bool {
        use Phase::*;
        matches!(
            (self, to),
            (Normal, Forward)
                | (Forward, Blocked)
                | (Blocked, Transfer)
                | (Transfer, Completed)
                | (Completed, Normal)
                | (Forward | Blocked | Transfer, Aborted)
                | (Aborted, Normal)
        )
    }
}
