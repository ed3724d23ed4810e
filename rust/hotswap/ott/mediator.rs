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
//!   it would wait for itself. A waiting caller can be interrupted by a
//!   signal (the call fails with `ERESTARTSYS`, so a restartable system
//!   call restarts) and waits at most twice the swap's timeout and a
//!   minute (then `ETIMEDOUT`): no caller sleeps unkillably behind a swap.
//! * **Transfer**: no thread is inside the old object; old and new
//!   negotiate a state format and the state moves (see `transfer.rs`).
//! * **Completed**: the slot points at the new object and blocked callers
//!   resume on it. **Aborted**: the slot points at the old object again
//!   and blocked callers resume there.
//!
//! # Recursion, and who counts as inside
//!
//! * A tracked call is recorded against the task that *began* it: if it
//!   ends on another task (a call handed to a worker), its end still
//!   removes the right entry, and the ending task gains no pass.
//! * The task driving the swap gets `EDEADLK` if it calls into the object
//!   while it is Blocked or in Transfer (from an `export` or `import`, or a
//!   nested operation): it would wait for itself. A swap or interposition
//!   requested from there gets `EBUSY` (the slot is claimed).
//! * A swap requested from inside a call on the same object waits for
//!   that call in Forward, so it times out and aborts; nothing is lost.
//! * Across objects in one batch, each object moves on by itself
//!   (`swap.rs`): a tracked call of A that calls B while B is Blocked waits
//!   until B completes, then A drains. Only a cycle (A's call waiting on B
//!   while B's call waits on A) holds both until their timeouts abort them.
//!
//! The phase is an atomic moved only by compare-exchange along the arrows
//! above. In a small swap every move logs one line
//! `<interface>/<id>: <from> -> <to>`; a large batch logs a summary instead
//! (`swap.rs`), as a thousand objects would log five thousand lines and
//! the logging would cost more than the swap.

use crate::api::name_str;
use crate::api::Name;
use crate::ott::instance::Instance;
pub(crate) use crate::ott::phase::Phase;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed};
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::task::Task;
use kernel::time::{msecs_to_jiffies, Delta, Instant, Monotonic};

/// Wakes a batch's driver when one of its mediators drains; shared by the
/// mediators of one batch (`swap.rs` waits on it while callers wait in
/// Blocked, so the last tracked call's end moves the swap on at once).
#[pin_data]
pub(crate) struct DrainSignal {
    #[pin]
    events: Mutex<u64>,
    #[pin]
    changed: CondVar,
}

impl DrainSignal {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                events <- new_mutex!(0),
                changed <- new_condvar!(),
            }),
            GFP_KERNEL,
        )
    }

    fn notify(&self) {
        *self.events.lock() += 1;
        self.changed.notify_all();
    }

    /// Drains signalled so far.
    pub(crate) fn events(&self) -> u64 {
        *self.events.lock()
    }

    /// Waits for a drain after the first `seen`, one jiffy at most
    /// (returning at once if one came already, or on a signal).
    pub(crate) fn wait_after(&self, seen: u64) {
        let mut events = self.events.lock();
        if *events == seen {
            let _ = self.changed.wait_interruptible_timeout(&mut events, 1);
        }
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
    /// The task driving the swap: it must never wait at its own gate.
    driver: usize,
    /// Longest a caller waits at the gate before giving up.
    max_wait: Delta,
    /// The batch's driver waits on this for drains.
    drained: Arc<DrainSignal>,
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
    /// phase moves if `log_phases`; each phase may last `timeout`; its
    /// drain wakes whoever waits on `drained`.
    pub(crate) fn new(
        old: Arc<Instance>,
        new: Arc<Instance>,
        interface: Name,
        id: u32,
        log_phases: bool,
        timeout: Delta,
        drained: Arc<DrainSignal>,
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
                driver: Task::current_raw() as usize,
                // Blocked lasts at most `timeout`; Transfer is the
                // implementations' own work, given a minute.
                max_wait: timeout + timeout + Delta::from_secs(60),
                drained,
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

    pub(crate) fn winner(&self) -> Target {
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

    /// A call arrives at the mediator. Returns where it goes and, if it is
    /// tracked, the task it is recorded against (then [`Mediator::exit`]
    /// must follow with it). May sleep: interruptibly, and at most twice
    /// the swap's timeout (`ERESTARTSYS`, `ETIMEDOUT`).
    pub(crate) fn enter(&self) -> Result<(Target, Option<usize>)> {
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
                    return Ok((Target::Old, Some(me)));
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
                        return Ok((Target::Old, Some(me)));
                    }
                    drop(inside);
                    self.untrack();
                    if me == self.driver {
                        // The swap's own thread (an export or import calling
                        // back in): waiting would be waiting for itself.
                        return Err(EDEADLK);
                    }
                    self.wait_while_blocked()?;
                }
                // Normal only after Completed/Aborted: the mediator is
                // published in Forward and detached in Normal.
                Phase::Normal | Phase::Completed | Phase::Aborted => {
                    self.untrack();
                    return Ok((self.winner(), None));
                }
            }
        }
    }

    /// A tracked call that `task` began leaves.
    pub(crate) fn exit(&self, task: usize) {
        {
            let mut inside = self.inside.lock();
            if let Some(pos) = inside.iter().rposition(|t| *t == task) {
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
            self.drained.notify();
        }
    }

    /// Waits while the phase is Blocked or Transfer: interruptibly, and
    /// at most `max_wait`.
    fn wait_while_blocked(&self) -> Result {
        let start = Instant::<Monotonic>::now();
        let since = (start - self.created).as_nanos() + 1;
        let _ = self.first_wait.cmpxchg(0, since, Relaxed);
        let deadline = start + self.max_wait;
        let mut gate = self.gate.lock();
        let mut result = Ok(());
        while matches!(self.phase(), Phase::Blocked | Phase::Transfer) {
            let left: Delta = deadline - Instant::<Monotonic>::now();
            if left.as_millis() <= 0 {
                result = Err(ETIMEDOUT);
                break;
            }
            let jiffies =
                msecs_to_jiffies(left.as_millis_ceil().clamp(1, i64::from(u32::MAX)) as u32);
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } =
                self.changed.wait_interruptible_timeout(&mut gate, jiffies)
            {
                result = Err(ERESTARTSYS);
                break;
            }
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
        result
    }

    /// Whether no tracked call is in flight (Blocked may end).
    pub(crate) fn drained(&self) -> bool {
        // Ordering: full (via `move_to`'s cmpxchg before this); see there.
        self.tracked.load(Acquire) == 0
    }
}
