// SPDX-License-Identifier: GPL-2.0
//! Swapping objects to another implementation: the mediator's phases
//! driven for a batch of slots at once.
//!
//! A batch starts every slot's swap, then polls them all, each moving on
//! as soon as its own wait ends: Forward until its grace period is over,
//! Blocked until its own tracked calls have drained, then Transfer and
//! Completed at once. The grace periods of all slots run together (each
//! slot has its own domain, but their waits are the same RCU grace
//! periods, see `domain.rs`), so swapping N objects costs about one grace
//! period plus N small steps, not N grace periods; and an object with a
//! stuck call holds up nobody else's callers and aborts alone at its own
//! deadline. A single swap is a batch of one.
//!
//! Batches of up to [`LOG_PHASES_UP_TO`] objects log every phase move of
//! every object; every batch logs one summary line.
//!
//! Everything a swap may need to allocate after Forward begins (the two
//! possible final chains, room in the graveyard for the mediated chain
//! and the final one) is allocated before it begins, so completing or
//! aborting cannot fail half-way and strand the state.

use crate::api::name_str;
use crate::api::{Name, KIND_OBJECT};
use crate::ott::chain::Chain;
use crate::ott::domain::{passed, wait_until_interruptible, Cookie};
use crate::ott::history::SwapOutcome;
use crate::ott::instance::Instance;
use crate::ott::mediator::{DrainSignal, Mediator, Phase, Target};
use crate::ott::slot::{Claim, Slot};
use crate::registry::{ImplInfo, ImplPin};
use crate::swap::transfer;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::time::{delay::fsleep, Delta, Instant, Monotonic};

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
    mediator: Arc<Mediator>,
    /// Final chains, built before Forward so that ending cannot fail.
    completed_chain: Option<KBox<Chain>>,
    aborted_chain: Option<KBox<Chain>>,
    timeout: Delta,
    start: Instant<Monotonic>,
    /// When Blocked began (the start until then).
    blocked_at: Instant<Monotonic>,
    /// When Forward times out: a timeout after the batch is under way (a
    /// large batch takes a while to start, and a slot's grace period moves
    /// only when the batch's driver polls it).
    forward_by: Instant<Monotonic>,
    cookie: Cookie,
    format: u32,
    /// Set once the slot is on one object again.
    outcome: Option<SwapOutcome>,
    /// Where the batch's results report this slot.
    at: usize,
    /// Last: fields drop in declaration order, and the slot must stay
    /// claimed (so `Slot::destroy` waits) until the mediator, which holds
    /// the old and new instances, has gone, with their last write-back.
    claim: Claim<'a>,
}

impl<'a> Swap<'a> {
    /// Claims `slot`, creates the replacement and publishes the mediator
    /// (Normal -> Forward).
    fn start(
        slot: &'a Slot,
        target: &ImplPin,
        timeout_ms: Option<u32>,
        log_phases: bool,
        drained: &Arc<DrainSignal>,
    ) -> Result<Option<Self>> {
        let claim = slot.claim()?;
        if target.interface != slot.interface || target.kind != KIND_OBJECT {
            return Err(EINVAL);
        }
        let pin = target.another()?;
        let (old, layers) = slot.with_chain(&claim, |chain| -> Result<_> {
            let mut layers = KVec::with_capacity(chain.layers.len(), GFP_KERNEL)?;
            for layer in chain.layers.iter() {
                layers.push(layer.clone(), GFP_KERNEL)?;
            }
            Ok((chain.object().clone(), layers))
        })?;
        // The same registration, not just the same name: an object on a
        // retired implementation may move to its re-registration.
        if core::ptr::eq::<ImplInfo>(&*old.imp, &**target) {
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
        let timeout =
            Delta::from_millis(i64::from(timeout_ms.unwrap_or_else(|| slot.timeout_ms())));
        let mediator = Mediator::new(
            old,
            new,
            slot.interface,
            slot.id,
            log_phases,
            timeout,
            drained.clone(),
        )?;
        let mediated = Chain::new(layers, Some(mediator.clone()))?;
        // Room for the two chains this swap retires: the one it replaces
        // now and the mediated one it replaces at the end.
        slot.reserve_retirements(&claim, 2)?;
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
            blocked_at: start,
            forward_by: start + timeout,
            cookie,
            format: 0,
            outcome: None,
            at: 0,
        }))
    }

    fn running(&self) -> bool {
        self.outcome.is_none()
    }

    /// Forward -> Blocked: every call that began before the mediator was
    /// published has ended (the grace period is over); new calls now wait.
    fn block(&mut self) {
        let _ = self.mediator.move_to(Phase::Forward, Phase::Blocked);
        self.blocked_at = Instant::<Monotonic>::now();
    }

    /// In Blocked: whether the calls tracked in Forward have all ended.
    fn drained(&self) -> bool {
        self.mediator.drained()
    }

    /// Blocked -> Transfer: the old and new objects agree on a state
    /// format and the state moves (non-destructively for the old one,
    /// which keeps its state if this fails).
    fn transfer(&mut self) -> Result {
        let _ = self.mediator.move_to(Phase::Blocked, Phase::Transfer);
        self.format = transfer::transfer(&self.mediator.old, &self.mediator.new)?;
        Ok(())
    }

    /// Transfer -> Completed -> Normal: the new object takes over.
    fn complete(&mut self) {
        // The state now lives in the new object: it, not the old one, has
        // the last word (write-back) when the slot is destroyed.
        self.mediator.old.make_quiet();
        self.mediator.new.make_final();
        let chain = self.completed_chain.take();
        self.end(Target::New, chain, Phase::Completed, None);
        self.mediator.new.imp.landed();
    }

    /// Forward, Blocked or Transfer -> Aborted -> Normal: the old object
    /// stays, state intact; `err` says why.
    fn abort(&mut self, err: Error) {
        let chain = self.aborted_chain.take();
        self.end(Target::Old, chain, Phase::Aborted, Some(err));
    }

    /// Puts the slot back on one object (`winner`, through `chain`, by
    /// way of `to`) and records the outcome.
    fn end(&mut self, winner: Target, chain: Option<KBox<Chain>>, to: Phase, err: Option<Error>) {
        let from = self.mediator.phase();
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
            // Room was reserved in `start`: this cannot fail.
            self.cookie = self.slot.publish_reserved(&self.claim, chain);
        }
        let _ = self.mediator.move_to(to, Phase::Normal);
        let outcome = SwapOutcome {
            completed: err.is_none(),
            phase: if err.is_none() {
                Phase::Completed
            } else {
                from
            },
            errno: err.map_or(0, |e| e.to_errno()),
            duration_ns: self.start.elapsed().as_nanos(),
            longest_wait_ns: self.mediator.longest_wait_ns(),
            in_flight: self.mediator.in_flight(),
            format: self.format,
        };
        if let Some(err) = err {
            pr_warn!(
                "{}/{}: swap to {} aborted in {}: error {} with {} tracked call(s) in flight; stays on {}\n",
                self.slot.label().0,
                self.slot.id,
                name_str(&self.mediator.new.imp.name),
                from.name(),
                err.to_errno(),
                outcome.in_flight,
                name_str(&self.mediator.old.imp.name)
            );
        }
        self.slot.record(outcome);
        self.outcome = Some(outcome);
    }

    /// One poll in Forward: [`Swap::block`] once the grace period is over
    /// (polling is what moves it along); [`Swap::abort`] at the deadline
    /// or on a signal to the requester.
    fn step_forward(&mut self) {
        if !self.running() || self.mediator.phase() != Phase::Forward {
            return;
        }
        if kernel::current!().signal_pending() {
            // The requester was signalled: give the slot back untouched.
            self.abort(EINTR);
        } else if self.slot.grace_period_done(self.cookie) {
            self.block();
        } else if passed(self.forward_by) {
            self.abort(ETIMEDOUT);
        }
    }

    /// One poll in Blocked: once [`Swap::drained`], [`Swap::transfer`] and
    /// [`Swap::complete`] (or [`Swap::abort`] if the transfer failed);
    /// aborts at the deadline or on a signal.
    fn step_blocked(&mut self) {
        if !self.running() || self.mediator.phase() != Phase::Blocked {
            return;
        }
        if kernel::current!().signal_pending() {
            self.abort(EINTR);
        } else if self.drained() {
            match self.transfer() {
                Ok(()) => self.complete(),
                Err(err) => self.abort(err),
            }
        } else if passed(self.blocked_at + self.timeout) {
            self.abort(ETIMEDOUT);
        }
    }

    /// Whether a finished swap can let go of its slot: the grace period of
    /// its last publication is over, so nothing can still see the chain it
    /// replaced, which is freed now.
    fn settle(&self) -> bool {
        if self.running() || !self.slot.grace_period_done(self.cookie) {
            return false;
        }
        self.slot.reap_retired();
        true
    }
}

/// Lets go of every swap of `swaps` that [`Swap::settle`]s: its old
/// object (or unused replacement) is freed and its claim dropped, so the
/// slot is free for its next operation while the rest of the batch goes
/// on. Its outcome goes to `results` first.
fn let_go(swaps: &mut KVec<Swap<'_>>, results: &mut [SlotResult]) {
    swaps.retain(|s| {
        if !s.settle() {
            return true;
        }
        if let Some(outcome) = s.outcome {
            results[s.at] = SlotResult::Swapped(outcome);
        }
        false
    });
}

/// Polls every running swap of `swaps` until all are over, letting go of
/// the finished ones as it can. Each round first polls every slot still
/// in Forward (polling is what moves a grace period along, so no slot may
/// wait for another's transfer to be polled), then moves the Blocked ones
/// on. Between rounds it naps, briefly at first, while only grace periods
/// are awaited; while callers wait in Blocked it sleeps on `drained`
/// instead, which the last tracked call's end wakes.
fn drive(swaps: &mut KVec<Swap<'_>>, results: &mut [SlotResult], drained: &DrainSignal) {
    let under_way = Instant::<Monotonic>::now();
    for s in swaps.iter_mut() {
        s.forward_by = under_way + s.timeout;
    }
    let mut nap = Delta::from_micros(20);
    loop {
        let seen = drained.events();
        for s in swaps.iter_mut() {
            s.step_forward();
        }
        for s in swaps.iter_mut() {
            s.step_blocked();
        }
        let_go(swaps, results);
        if !swaps.iter().any(|s| s.running()) {
            return;
        }
        if swaps
            .iter()
            .any(|s| s.running() && s.mediator.phase() == Phase::Blocked)
        {
            drained.wait_after(seen);
        } else {
            fsleep(nap);
            let most = Delta::from_millis(10);
            nap = if nap + nap < most { nap + nap } else { most };
        }
    }
}

/// Swaps every slot in `slots` to implementation `target`, resolved and
/// pinned once by the caller (each slot's new object pins it again, with
/// no lookup by name). `timeout_ms` overrides each slot's own per-phase
/// timeout.
pub(crate) fn swap(
    slots: &[Arc<Slot>],
    target: &ImplPin,
    timeout_ms: Option<u32>,
) -> Result<KVec<SlotResult>> {
    let mut results = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
    let mut swaps = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
    let log_phases = slots.len() <= LOG_PHASES_UP_TO;
    let begun = Instant::<Monotonic>::now();
    let drained = DrainSignal::new()?;

    // Normal -> Forward, for the whole batch.
    for slot in slots {
        // The vectors have one place per slot: pushing cannot fail (and
        // must not, once a swap has started).
        let result = match Swap::start(slot, target, timeout_ms, log_phases, &drained) {
            Ok(Some(mut swap)) => {
                swap.at = results.len();
                let _ = swaps.push_within_capacity(swap);
                SlotResult::Unchanged // replaced when it ends
            }
            Ok(None) => SlotResult::Unchanged,
            Err(err) => SlotResult::NotStarted(err),
        };
        let _ = results.push_within_capacity(result);
    }

    // Forward, Blocked, Transfer: each slot as fast as its own calls allow.
    drive(&mut swaps, &mut results, &drained);
    for s in swaps.iter() {
        if let Some(outcome) = s.outcome {
            results[s.at] = SlotResult::Swapped(outcome);
        }
    }

    // The slots still held wait for calls that could see their old chains
    // (a call stuck since before the swap): bounded by the timeout and cut
    // short by a signal; the graveyard keeps whatever is still in use, for
    // the slot's next operation to free.
    let settle_by = Instant::<Monotonic>::now()
        + Delta::from_millis(i64::from(
            timeout_ms.unwrap_or(crate::ott::slot::DEFAULT_TIMEOUT_MS),
        ));
    let _ = wait_until_interruptible(settle_by, || {
        let_go(&mut swaps, &mut results);
        swaps.is_empty()
    });
    drop(swaps);
    log_summary(slots, &target.name, &results, begun);
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
