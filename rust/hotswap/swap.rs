// SPDX-License-Identifier: GPL-2.0
//! Swapping objects to another implementation: the mediator's phases
//! driven for a batch of slots at once.
//!
//! A batch moves every slot through each phase before the next phase
//! starts, and waits for the whole batch at once: the grace periods of all
//! slots run together (each slot has its own domain, but their waits are
//! the same RCU grace periods, see `domain.rs`), so swapping N objects
//! costs about one grace period plus N small steps, not N grace periods.
//! A single swap is a batch of one.
//!
//! Batches of up to [`LOG_PHASES_UP_TO`] objects log every phase move of
//! every object; every batch logs one summary line.
//!
//! Everything a swap may need to allocate after Forward begins (the two
//! possible final chains, room in the graveyard) is allocated before it
//! begins, so completing or aborting cannot fail half-way.

use crate::api::{Name, KIND_OBJECT};
use crate::chain::Chain;
use crate::domain::{later, passed, wait_until, Cookie};
use crate::instance::Instance;
use crate::mediator::{Mediator, Phase, Target};
use crate::registry::{name_str, REGISTRY};
use crate::slot::{Claim, Slot};
use crate::stats::SwapOutcome;
use crate::transfer;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::time::{Delta, Instant, Monotonic};

/// The largest batch whose objects log each phase move.
const LOG_PHASES_UP_TO: usize = 8;

/// What happened to one slot of a batch.
pub(crate) enum SlotResult {
    /// The swap ran; it completed or aborted.
    Swapped(SwapOutcome),
    /// The object already was on the target implementation.
    Unchanged,
    /// The swap could not start (busy object, unknown implementation, no
    /// memory, the new object could not be created); nothing changed.
    NotStarted(Error),
}

/// How the slots of a batch fared.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) completed: u32,
    pub(crate) aborted: u32,
    pub(crate) unchanged: u32,
    pub(crate) not_started: u32,
}

impl Tally {
    /// Counts `results`.
    pub(crate) fn of(results: &[SlotResult]) -> Self {
        let mut t = Self::default();
        for result in results {
            match result {
                SlotResult::Swapped(o) if o.completed => t.completed += 1,
                SlotResult::Swapped(_) => t.aborted += 1,
                SlotResult::Unchanged => t.unchanged += 1,
                SlotResult::NotStarted(_) => t.not_started += 1,
            }
        }
        t
    }
}

/// One slot on its way through the phases.
struct Swap<'a> {
    slot: &'a Slot,
    claim: Claim<'a>,
    mediator: Arc<Mediator>,
    /// Final chains, built before Forward so that ending cannot fail.
    completed_chain: Option<KBox<Chain>>,
    aborted_chain: Option<KBox<Chain>>,
    timeout: Delta,
    start: Instant<Monotonic>,
    cookie: Cookie,
    format: u32,
    /// Set once the slot is on one object again.
    outcome: Option<SwapOutcome>,
}

impl<'a> Swap<'a> {
    /// Claims `slot`, creates the replacement and publishes the mediator
    /// (Normal -> Forward).
    fn start(
        slot: &'a Slot,
        target: &Name,
        timeout_ms: Option<u32>,
        log_phases: bool,
    ) -> Result<Option<Self>> {
        let claim = slot.claim()?;
        let pin = REGISTRY.lock().pin(&slot.interface, Some(target))?;
        if pin.kind != KIND_OBJECT {
            return Err(EINVAL);
        }
        let (old, layers) = slot.with_chain(&claim, |chain| -> Result<_> {
            let mut layers = KVec::with_capacity(chain.layers.len(), GFP_KERNEL)?;
            for layer in chain.layers.iter() {
                layers.push(layer.clone(), GFP_KERNEL)?;
            }
            Ok((chain.object().clone(), layers))
        })?;
        if old.imp.name == *target {
            return Ok(None);
        }
        let new = Instance::create(pin, core::ptr::null())?;
        // Until the swap completes, the replacement holds no state of its
        // own; if it never takes over it must leave no trace.
        new.make_quiet();
        let completed_layers = slot.with_chain(&claim, |chain| chain.layers_with_object(&new))?;
        let completed_chain = Chain::new(completed_layers, None)?;
        let aborted_chain =
            slot.with_chain(&claim, |chain| chain.layers_with_object(chain.object()))?;
        let aborted_chain = Chain::new(aborted_chain, None)?;
        let mediator = Mediator::new(old, new, slot.interface, slot.id, log_phases)?;
        let mediated = Chain::new(layers, Some(mediator.clone()))?;
        let timeout =
            Delta::from_millis(i64::from(timeout_ms.unwrap_or_else(|| slot.timeout_ms())));
        let start = Instant::<Monotonic>::now();
        mediator.move_to(Phase::Normal, Phase::Forward)?;
        let cookie = match slot.publish(&claim, mediated) {
            Ok(cookie) => cookie,
            Err(err) => {
                // Not published: no call saw the mediator.
                mediator.set_winner(Target::Old);
                let _ = mediator.move_to(Phase::Forward, Phase::Aborted);
                let _ = mediator.move_to(Phase::Aborted, Phase::Normal);
                return Err(err);
            }
        };
        Ok(Some(Self {
            slot,
            claim,
            mediator,
            completed_chain: Some(completed_chain),
            aborted_chain: Some(aborted_chain),
            timeout,
            start,
            cookie,
            format: 0,
            outcome: None,
        }))
    }

    fn running(&self) -> bool {
        self.outcome.is_none()
    }

    /// Puts the slot back on one object: the new one if `completed`.
    fn finish(&mut self, completed: bool, errno: Error) {
        let from = self.mediator.phase();
        let (winner, chain, to) = if completed {
            // The state now lives in the new object: it, not the old one,
            // has the last word (write-back) when the slot is destroyed.
            self.mediator.old.make_quiet();
            self.mediator.new.make_final();
            (Target::New, self.completed_chain.take(), Phase::Completed)
        } else {
            (Target::Old, self.aborted_chain.take(), Phase::Aborted)
        };
        self.mediator.set_winner(winner);
        // The phase is `from` (only this swap moves it), and `from -> to`
        // is an arrow of the diagram; a failure would be a bug here.
        if self.mediator.move_to(from, to).is_err() {
            pr_err!(
                "{}/{}: cannot leave {}\n",
                self.slot.label().0,
                self.slot.id,
                from.name()
            );
        }
        if let Some(chain) = chain {
            match self.slot.publish(&self.claim, chain) {
                Ok(cookie) => self.cookie = cookie,
                // The graveyard had no room: the mediator stays in the
                // chain and keeps routing every call to the winner.
                Err(_) => pr_warn!(
                    "{}/{}: out of memory, mediator stays\n",
                    self.slot.label().0,
                    self.slot.id
                ),
            }
        }
        let _ = self.mediator.move_to(to, Phase::Normal);
        let outcome = SwapOutcome {
            completed,
            phase: if completed { Phase::Completed } else { from },
            errno: if completed { 0 } else { errno.to_errno() },
            duration_ns: self.start.elapsed().as_nanos(),
            longest_wait_ns: self.mediator.longest_wait_ns(),
            in_flight: self.mediator.in_flight(),
            format: self.format,
        };
        if !completed {
            pr_warn!(
                "{}/{}: swap to {} aborted in {}: error {} with {} tracked call(s) in flight; stays on {}\n",
                self.slot.label().0,
                self.slot.id,
                name_str(&self.mediator.new.imp.name),
                from.name(),
                errno.to_errno(),
                outcome.in_flight,
                name_str(&self.mediator.old.imp.name)
            );
        }
        self.slot.record(outcome);
        self.outcome = Some(outcome);
    }
}

/// Swaps every slot in `slots` to implementation `target`.
/// `timeout_ms` overrides each slot's own per-phase timeout.
pub(crate) fn swap(
    slots: &[Arc<Slot>],
    target: &Name,
    timeout_ms: Option<u32>,
) -> Result<KVec<SlotResult>> {
    let mut results = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
    let mut swaps = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
    let mut index = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
    let log_phases = slots.len() <= LOG_PHASES_UP_TO;
    let begun = Instant::<Monotonic>::now();

    // Normal -> Forward, for the whole batch.
    for slot in slots {
        let result = match Swap::start(slot, target, timeout_ms, log_phases) {
            Ok(Some(swap)) => {
                index.push(results.len(), GFP_KERNEL)?;
                swaps.push(swap, GFP_KERNEL)?;
                SlotResult::Unchanged // replaced below
            }
            Ok(None) => SlotResult::Unchanged,
            Err(err) => SlotResult::NotStarted(err),
        };
        results.push(result, GFP_KERNEL)?;
    }

    // Forward: wait for the calls that began before tracking, all slots'
    // grace periods at once, each bounded by its own deadline.
    let latest = swaps
        .iter()
        .map(|s| s.start + s.timeout)
        .fold(Instant::<Monotonic>::now(), later);
    // Every slot is polled each time round, not just up to the first that
    // is not done: polling is what moves a grace period along.
    let _ = wait_until(latest, || {
        swaps.iter().fold(true, |all, s| {
            (s.slot.grace_period_done(s.cookie) || passed(s.start + s.timeout)) && all
        })
    });
    for s in swaps.iter_mut() {
        if s.slot.grace_period_done(s.cookie) {
            let _ = s.mediator.move_to(Phase::Forward, Phase::Blocked);
        } else {
            s.finish(false, ETIMEDOUT);
        }
    }

    // Blocked: new calls wait; drain the tracked ones.
    let blocked_start = Instant::<Monotonic>::now();
    for s in swaps.iter_mut().filter(|s| s.running()) {
        if let Err(err) = s.mediator.drain(blocked_start + s.timeout) {
            s.finish(false, err);
        }
    }

    // Transfer, then Completed (or Aborted on a transfer error).
    for s in swaps.iter_mut().filter(|s| s.running()) {
        let _ = s.mediator.move_to(Phase::Blocked, Phase::Transfer);
        match transfer::transfer(&s.mediator.old, &s.mediator.new) {
            Ok(format) => {
                s.format = format;
                s.finish(true, EINVAL);
            }
            Err(err) => s.finish(false, err),
        }
    }

    // Free the old objects (or the unused replacements) once the last
    // calls that could see them are done; bounded, the graveyard keeps
    // whatever is still in use.
    let settle_by = Instant::<Monotonic>::now()
        + Delta::from_millis(i64::from(
            timeout_ms.unwrap_or(crate::slot::DEFAULT_TIMEOUT_MS),
        ));
    let _ = wait_until(settle_by, || {
        swaps
            .iter()
            .fold(true, |all, s| s.slot.grace_period_done(s.cookie) && all)
    });
    for (s, i) in swaps.iter().zip(index.iter()) {
        s.slot.settle(s.cookie, Instant::<Monotonic>::now());
        if let Some(outcome) = s.outcome {
            results[*i] = SlotResult::Swapped(outcome);
        }
    }
    log_summary(slots, target, &results, begun);
    Ok(results)
}

/// One line for the whole batch.
fn log_summary(
    slots: &[Arc<Slot>],
    target: &Name,
    results: &[SlotResult],
    begun: Instant<Monotonic>,
) {
    let Some(first) = slots.first() else {
        return;
    };
    let t = Tally::of(results);
    let micros = begun.elapsed().as_micros_ceil();
    pr_info!(
        "{}: swap of {} object(s) to {} in {}.{:03} ms: {} completed, {} aborted, {} unchanged, {} not started\n",
        first.label().0,
        slots.len(),
        name_str(target),
        micros / 1000,
        micros % 1000,
        t.completed,
        t.aborted,
        t.unchanged,
        t.not_started
    );
}
