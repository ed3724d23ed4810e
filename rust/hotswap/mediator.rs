// SPDX-License-Identifier: GPL-2.0
//! The replacement mediator: K42's Forward/Blocked/Transfer/Completed
//! phases for one slot.
//!
//! ```text
//!                 grace period:          tracked calls        state
//!   Normal ──▶ Forward ──────────▶ Blocked ──────────▶ Transfer ──────▶ Completed
//!     ▲          │    old calls done   │     drained        │     moved       │
//!     │          │ timeout             │ timeout            │ export/import   │
//!     │          ▼                     ▼                    ▼ error           │
//!     │        Aborted ◀───────────────┴────────────────────┘                 │
//!     │          │                                                            │
//!     └──────────┴───────── slot on one object again ◀────────────────────────┘
//! ```
//!
//! * **Forward**: the mediator sits at the bottom of the slot's chain.
//!   Calls that reach it are *tracked* (counted, and their threads noted)
//!   and forwarded to the old object. Calls that started before the
//!   mediator was published are not tracked; the phase ends when a grace
//!   period of the slot's domain says they have all finished.
//! * **Blocked**: new calls wait; tracked calls drain. A thread that is
//!   already inside a tracked call (a recursive call) passes through, or
//!   it would wait for itself.
//! * **Transfer**: no thread is inside the old object; old and new
//!   negotiate a state format and the state moves (see `transfer.rs`).
//! * **Completed**: the slot points at the new object and blocked callers
//!   resume on it. **Aborted**: the slot points at the old object again
//!   and blocked callers resume there.
//!
//! The phase is an atomic moved only by compare-exchange along the arrows
//! above. In a small swap every move logs one line
//! `<interface>/<id>: <from> -> <to>`; a large batch logs a summary instead
//! (`swap.rs`), as a thousand objects would log five thousand lines and
//! the logging would cost more than the swap.

use crate::api::Name;
use crate::instance::Instance;
use crate::registry::name_str;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed};
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::task::Task;
use kernel::time::{msecs_to_jiffies, Delta, Instant, Monotonic};

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
    fn from_u32(v: u32) -> Self {
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
    fn may_move_to(self, to: Phase) -> bool {
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

/// Which object a call through the mediator goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Old,
    New,
}

/// The mediator of one replacement.
#[pin_data]
pub(crate) struct Mediator {
    phase: Atomic<u32>,
    /// Whether calls go to the new object once the swap is over (set
    /// before Completed; Aborted leaves it false).
    winner_is_new: Atomic<bool>,
    pub(crate) old: Arc<Instance>,
    pub(crate) new: Arc<Instance>,
    /// `<interface>/<id>` for log lines.
    interface: Name,
    id: u32,
    /// Whether phase moves are logged.
    log_phases: bool,
    /// Tracked calls in flight.
    tracked: Atomic<i64>,
    /// Threads inside tracked calls, once per nesting level.
    #[pin]
    inside: Mutex<KVec<usize>>,
    /// Blocked callers and the drain wait sleep here.
    #[pin]
    gate: Mutex<()>,
    #[pin]
    changed: CondVar,
    /// Longest time a caller spent blocked, in nanoseconds, as the
    /// callers record it once they are let go.
    longest_wait_ns: Atomic<i64>,
    /// When the first caller began to wait: nanoseconds after `created`,
    /// plus one (0: no caller has waited).
    first_wait: Atomic<i64>,
    created: Instant<Monotonic>,
}

impl Mediator {
    /// A mediator for replacing `old` by `new` in slot `id`, logging its
    /// phase moves if `log_phases`.
    pub(crate) fn new(
        old: Arc<Instance>,
        new: Arc<Instance>,
        interface: Name,
        id: u32,
        log_phases: bool,
    ) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                phase: Atomic::new(Phase::Normal as u32),
                winner_is_new: Atomic::new(false),
                old,
                new,
                interface,
                id,
                log_phases,
                tracked: Atomic::new(0),
                inside <- new_mutex!(KVec::new()),
                gate <- new_mutex!(()),
                changed <- new_condvar!(),
                longest_wait_ns: Atomic::new(0),
                first_wait: Atomic::new(0),
                created: Instant::<Monotonic>::now(),
            }),
            GFP_KERNEL,
        )
    }

    /// The current phase.
    #[inline]
    pub(crate) fn phase(&self) -> Phase {
        // Ordering: pairs with the full ordering of `move_to`.
        Phase::from_u32(self.phase.load(Acquire))
    }

    /// Moves `from -> to` (an arrow of the diagram) and logs it. `EINVAL`
    /// if the phase is not `from` or the arrow does not exist.
    pub(crate) fn move_to(&self, from: Phase, to: Phase) -> Result {
        if !from.may_move_to(to) {
            return Err(EINVAL);
        }
        // Ordering: full, so that a caller that counted itself in `tracked`
        // and then reads the phase, and this mover that changes the phase
        // and then reads `tracked`, cannot both miss each other.
        self.phase
            .cmpxchg(from as u32, to as u32, Full)
            .map_err(|_| EINVAL)?;
        if self.log_phases {
            pr_info!(
                "{}/{}: {} -> {}\n",
                name_str(&self.interface),
                self.id,
                from.name(),
                to.name()
            );
        }
        if !matches!(to, Phase::Blocked) {
            self.wake_all();
        }
        Ok(())
    }

    /// Decides who serves calls from now on (before Completed/Aborted).
    pub(crate) fn set_winner(&self, target: Target) {
        self.winner_is_new.store(target == Target::New, Relaxed);
    }

    fn winner(&self) -> Target {
        if self.winner_is_new.load(Acquire) {
            Target::New
        } else {
            Target::Old
        }
    }

    /// Tracked calls still in flight.
    pub(crate) fn in_flight(&self) -> i64 {
        self.tracked.load(Relaxed)
    }

    /// Longest time a caller spent blocked, a caller still waiting
    /// counting until now.
    ///
    /// Waiters are let go together when the phase leaves Blocked or
    /// Transfer, so the first one waits longest; and it may not have
    /// recorded its wait yet when the swap reports, right after letting it
    /// go.
    pub(crate) fn longest_wait_ns(&self) -> i64 {
        let recorded = self.longest_wait_ns.load(Relaxed);
        match self.first_wait.load(Relaxed) {
            0 => recorded,
            first => recorded.max(self.created.elapsed().as_nanos() - (first - 1)),
        }
    }

    fn wake_all(&self) {
        let _gate = self.gate.lock();
        self.changed.notify_all();
    }

    /// A call arrives at the mediator. Returns where it goes and whether it
    /// is tracked (then [`Mediator::exit`] must follow). May sleep.
    pub(crate) fn enter(&self) -> Result<(Target, bool)> {
        let me = Task::current_raw() as usize;
        loop {
            // Ordering: full; see `move_to`.
            self.tracked.fetch_add(1, Full);
            match self.phase() {
                Phase::Forward => {
                    if let Err(err) = self.inside.lock().push(me, GFP_KERNEL) {
                        self.untrack();
                        return Err(err.into());
                    }
                    return Ok((Target::Old, true));
                }
                Phase::Blocked | Phase::Transfer => {
                    let mut inside = self.inside.lock();
                    if inside.contains(&me) {
                        // Recursive call from a thread already inside: let
                        // it through, or it would wait for itself.
                        if let Err(err) = inside.push(me, GFP_KERNEL) {
                            drop(inside);
                            self.untrack();
                            return Err(err.into());
                        }
                        return Ok((Target::Old, true));
                    }
                    drop(inside);
                    self.untrack();
                    self.wait_while_blocked();
                }
                // Normal only after Completed/Aborted: the mediator is
                // published in Forward and detached in Normal.
                Phase::Normal | Phase::Completed | Phase::Aborted => {
                    self.untrack();
                    return Ok((self.winner(), false));
                }
            }
        }
    }

    /// A tracked call leaves.
    pub(crate) fn exit(&self) {
        let me = Task::current_raw() as usize;
        {
            let mut inside = self.inside.lock();
            if let Some(pos) = inside.iter().rposition(|t| *t == me) {
                // `remove` only fails out of bounds; `pos` is in bounds.
                let _ = inside.remove(pos);
            }
        }
        self.untrack();
    }

    fn untrack(&self) {
        // Ordering: full; see `move_to`.
        let before = self.tracked.fetch_sub(1, Full);
        if before == 1 && self.phase() == Phase::Blocked {
            self.wake_all();
        }
    }

    fn wait_while_blocked(&self) {
        let start = Instant::<Monotonic>::now();
        let since = (start - self.created).as_nanos() + 1;
        let _ = self.first_wait.cmpxchg(0, since, Relaxed);
        let mut gate = self.gate.lock();
        while matches!(self.phase(), Phase::Blocked | Phase::Transfer) {
            self.changed.wait(&mut gate);
        }
        drop(gate);
        let waited = start.elapsed().as_nanos();
        let mut longest = self.longest_wait_ns.load(Relaxed);
        while waited > longest {
            match self.longest_wait_ns.cmpxchg(longest, waited, Relaxed) {
                Ok(_) => break,
                Err(now) => longest = now,
            }
        }
    }

    /// Blocked: waits until no tracked call is in flight, or `deadline`
    /// (`ETIMEDOUT`), or a signal (`EINTR`).
    pub(crate) fn drain(&self, deadline: Instant<Monotonic>) -> Result {
        let mut gate = self.gate.lock();
        loop {
            // Ordering: full (via `move_to`'s cmpxchg before this); see there.
            if self.tracked.load(Acquire) == 0 {
                return Ok(());
            }
            let left: Delta = deadline - Instant::<Monotonic>::now();
            if left.as_millis() <= 0 {
                return Err(ETIMEDOUT);
            }
            let jiffies = msecs_to_jiffies(left.as_millis_ceil() as u32);
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } =
                self.changed.wait_interruptible_timeout(&mut gate, jiffies)
            {
                return Err(EINTR);
            }
        }
    }
}
