// SPDX-License-Identifier: GPL-2.0
//! A slot of the object translation table: how clients reach an object.
//!
//! # The call path, and why it is safe
//!
//! ```text
//!   begin:  enter the slot's read-side domain      (per-CPU increment)
//!           chain = slot.chain (acquire load)
//!           call chain.layers[0]                   (interposer or object)
//!   end:    leave the domain                       (per-CPU increment)
//! ```
//!
//! No lock is taken and nothing is written that another CPU writes: the
//! domain's counters and the call counter are per CPU, the chain is only
//! read. The callee may sleep (the domain is SRCU-like, see `domain.rs`). A chain is freed only
//! after a grace period of the domain that started after the chain was
//! replaced, so a call that loaded it can use it until it ends. Compared
//! to a direct call, the path costs two out-of-line calls into
//! `read_side.c` (per-CPU operations are C macros), one acquire
//! load and one predictable branch (is a mediator at the bottom?).
//!
//! Only the object layer can carry a mediator, and only while a swap runs;
//! there the call takes the mediator's slow path (`mediator.rs`).

use crate::api::name_str;
use crate::api::{Call, Name};
use crate::ott::chain::Chain;
use crate::ott::domain::{wait_until, wait_until_interruptible, Cookie, ReadDomain};
use crate::ott::history::SlotStats;
use crate::ott::instance::Instance;
use crate::ott::mediator::Target;
use crate::ott::phase::Phase;
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Full};
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::time::{Delta, Instant, Monotonic};

/// Default time a swap may spend in Forward, and again in Blocked.
pub(crate) const DEFAULT_TIMEOUT_MS: u32 = 2000;

/// A chain that was replaced, freed once `cookie`'s grace period is over.
struct Retired {
    cookie: Cookie,
    /// Held only to be dropped when the grace period is over.
    _chain: KBox<Chain>,
}

/// Where a slot is in its administrative life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AdminState {
    /// No administrative operation: one may [`Slot::claim`] it.
    Idle,
    /// A swap or interposition holds the [`Claim`]; others get `EBUSY`
    /// and [`Slot::destroy`] waits for it.
    Claimed,
    /// The object is being destroyed; operations get `ENOENT`.
    Dying,
}

/// Per-object state of the interface's decision policy (`control/policy.rs`),
/// opaque to the slot.
#[derive(Default)]
pub(crate) struct DecisionState {
    /// The policy's own words ([`crate::api::Decision::state`]).
    pub(crate) words: [u64; crate::api::STATE_WORDS],
    /// A swap the policy asked for is queued and has not run yet.
    pub(crate) pending: bool,
}

/// Mutable slot state for administrative operations.
pub(crate) struct Admin {
    state: AdminState,
    /// Replaced chains waiting for their grace period.
    graveyard: KVec<Retired>,
    pub(crate) stats: SlotStats,
    /// Per-phase swap timeout.
    pub(crate) timeout_ms: u32,
    /// Decision policy state.
    pub(crate) decision: DecisionState,
    /// What the owner says the object is ([`Slot::set_label`]).
    pub(crate) label: [u8; crate::uapi::LABEL_LEN],
}

/// What every call through a slot reads, alone on its cache line: the
/// slot's `Arc` reference count (written by every clone, as each listing
/// and status makes) and the admin state (written by every swap and
/// status) live on other lines, so those writes never bounce the line the
/// call path reads.
#[repr(C, align(64))]
struct CallPath {
    domain: ReadDomain,
    /// The published chain (owned; see `publish`).
    chain: Atomic<*mut Chain>,
}

/// One slot of the object translation table.
///
/// # Invariants
///
/// - `hot.chain` is non-NULL from [`Slot::new`] until [`Slot::destroy`]
///   (which first sets [`AdminState::Dying`]), and points to a chain
///   published by `new` or `publish` and owned by the slot.
/// - A chain replaced by `publish` is freed only after a grace period of
///   `hot.domain` that started after the replacement (the graveyard), so
///   a call that loaded it inside the domain can use it until it ends.
/// - While `admin.state` is [`AdminState::Claimed`], exactly one [`Claim`]
///   exists, and only its holder publishes chains.
///
/// `#[repr(C)]` with the call path first: the slot is 64-byte aligned, so
/// the call path starts a line of its own, after the `Arc`'s counter.
#[pin_data(PinnedDrop)]
#[repr(C)]
pub(crate) struct Slot {
    hot: CallPath,
    pub(crate) id: u32,
    pub(crate) interface: Name,
    #[pin]
    admin: Mutex<Admin>,
    /// Signalled when a claim is released (what [`Slot::destroy`] waits for).
    #[pin]
    released: CondVar,
}

// SAFETY: The chain pointer is owned by the slot and only freed after a
// grace period; everything else is synchronized.
unsafe impl Send for Slot {}
// SAFETY: As for `Send`.
unsafe impl Sync for Slot {}

/// Proof of an exclusive administrative operation on a slot; see
/// [`Slot::claim`]. Releases the claim on drop.
pub(crate) struct Claim<'a> {
    slot: &'a Slot,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.slot.admin.lock().state = AdminState::Idle;
        self.slot.released.notify_all();
    }
}

impl Slot {
    /// A slot for `object`, under the interposer `wrapper` if given (a
    /// decision policy's monitor, on from the start: no chain to publish
    /// and retire for it).
    pub(crate) fn new(
        id: u32,
        interface: Name,
        object: Arc<Instance>,
        wrapper: Option<Arc<Instance>>,
    ) -> Result<Arc<Self>> {
        let mut layers = KVec::new();
        if let Some(wrapper) = wrapper {
            layers.push(wrapper, GFP_KERNEL)?;
        }
        layers.push(object, GFP_KERNEL)?;
        let chain = KBox::into_raw(Chain::new(layers, None)?);
        let domain = match ReadDomain::new() {
            Ok(domain) => domain,
            Err(err) => {
                // SAFETY: Never published.
                drop(unsafe { KBox::from_raw(chain) });
                return Err(err);
            }
        };
        Arc::pin_init(
            pin_init!(Self {
                hot: CallPath {
                    domain,
                    chain: Atomic::new(chain),
                },
                id,
                interface,
                // INVARIANT: `chain` was just made and is owned by the
                // slot; nothing is claimed yet.
                admin <- new_mutex!(Admin {
                    state: AdminState::Idle,
                    graveyard: KVec::new(),
                    stats: SlotStats::default(),
                    timeout_ms: DEFAULT_TIMEOUT_MS,
                    decision: DecisionState::default(),
                    label: [0; crate::uapi::LABEL_LEN],
                }),
                released <- new_condvar!(),
            }),
            GFP_KERNEL,
        )
        // On failure `domain` is dropped by pin_init; the chain leaks only
        // if Arc allocation fails, so free it here too.
        .inspect_err(|_| {
            // SAFETY: Never published: the slot was not created.
            drop(unsafe { KBox::from_raw(chain) });
        })
    }

    /// `<interface>/<id>` for log lines.
    pub(crate) fn label(&self) -> (&str, u32) {
        (name_str(&self.interface), self.id)
    }

    /// Starts a call: enters the domain and resolves the outermost layer.
    #[inline]
    pub(crate) fn begin(&self, call: &mut Call) -> Result {
        // Ordering: the load is an acquire that pairs with the fully
        // ordered exchange in `publish`.
        let (token, chain) = self.hot.domain.enter_and_load(&self.hot.chain);
        // SAFETY: Entered just now; `chain` was loaded inside the domain.
        unsafe { self.resolve_entered(token, chain, call) }
    }

    /// Like [`Slot::begin`], but never waits: `EAGAIN` while a swap is in
    /// progress (its mediator could park the call). For memory reclaim,
    /// which must not sleep on a swap, and must not take a page being
    /// transferred.
    pub(crate) fn try_begin(&self, call: &mut Call) -> Result {
        let (token, chain) = self.hot.domain.enter_and_load(&self.hot.chain);
        // SAFETY: As in `resolve_entered`.
        let swapping = chain.is_null() || unsafe { &*chain }.mediator.is_some();
        if swapping {
            // SAFETY: `token` came from `enter` above.
            unsafe { self.hot.domain.exit(token) };
            return Err(EAGAIN);
        }
        // SAFETY: Entered just now; `chain` was loaded inside the domain.
        unsafe { self.resolve_entered(token, chain, call) }
    }

    /// The rest of [`Slot::begin`]: fills `call` from the outermost layer
    /// of `chain`, or leaves the domain again on an error.
    ///
    /// # Safety
    ///
    /// `token` is this call's, from entering this slot's domain, and
    /// `chain` was loaded from `hot.chain` inside it.
    #[inline(always)]
    unsafe fn resolve_entered(
        &self,
        token: *mut c_void,
        chain: *mut Chain,
        call: &mut Call,
    ) -> Result {
        // SAFETY: A published chain is freed only after a grace period that
        // started after it was replaced, and this call is inside the domain
        // (the caller's promise); a live slot's chain is never NULL.
        let result = unsafe { &*chain }.resolve(0, call);
        if result.is_err() {
            // SAFETY: `token` came from entering the domain (as above).
            unsafe { self.hot.domain.exit(token) };
            return result;
        }
        call.slot = core::ptr::from_ref(self).cast();
        call.chain = chain.cast();
        call.token = token;
        Ok(())
    }

    /// From an interposer: resolves the layer below `call` into `next`.
    ///
    /// # Safety
    ///
    /// `call` is a live call through this slot.
    #[inline]
    pub(crate) unsafe fn next(&self, call: &Call, next: &mut Call) -> Result {
        // SAFETY: A live call keeps its chain alive (see `begin`).
        let chain = unsafe { &*call.chain.cast::<Chain>() };
        chain.resolve(call.depth as usize + 1, next)?;
        next.slot = call.slot;
        next.chain = call.chain;
        next.token = core::ptr::null_mut();
        Ok(())
    }

    /// The object that serves `call`: its chain's, whatever was published
    /// since it began, and during a swap the one of the two that the
    /// mediator sent it to.
    ///
    /// # Safety
    ///
    /// `call` is a live call through this slot.
    pub(crate) unsafe fn object_of_call<'a>(&self, call: &'a Call) -> &'a Instance {
        // SAFETY: A live call keeps its chain alive (see `begin`).
        let chain = unsafe { &*call.chain.cast::<Chain>() };
        let Some(mediator) = &chain.mediator else {
            return chain.object();
        };
        let to_new = if call.mediator.is_null() {
            // A call at an interposer: what it forwards to went to the old
            // object until the swap completed and to the new one after (a
            // swap completes only once the calls in the old one have left).
            matches!(mediator.phase(), Phase::Completed | Phase::Normal)
                && mediator.winner() == Target::New
        } else {
            // At the object: the mediator resolved this very call.
            call.obj == mediator.new.obj
        };
        if to_new {
            &mediator.new
        } else {
            &mediator.old
        }
    }

    /// Ends a call begun by `begin` or `next`.
    ///
    /// # Safety
    ///
    /// `call` was filled by `begin` or `next` on this slot and is ended once.
    #[inline(always)]
    pub(crate) unsafe fn end(&self, call: &mut Call) {
        if call.tracked != 0 {
            // SAFETY: The caller's contract.
            unsafe { Self::end_tracked(call) };
        }
        if !call.token.is_null() {
            // SAFETY: The token came from `begin` on this slot.
            unsafe { self.hot.domain.exit(call.token) };
        }
        call.token = core::ptr::null_mut();
        call.tracked = 0;
    }

    /// The mediator's side of ending a call made during a swap; kept out
    /// of line so that the common `end` inlines into its caller.
    ///
    /// # Safety
    ///
    /// As for [`Slot::end`], and `call` is tracked.
    #[cold]
    unsafe fn end_tracked(call: &Call) {
        // SAFETY: A tracked call's mediator lives in its chain, which the
        // call keeps alive.
        unsafe { &*call.mediator.cast::<crate::ott::mediator::Mediator>() }.exit(call.task);
    }

    /// Calls made through this slot.
    pub(crate) fn calls(&self) -> u64 {
        self.hot.domain.calls()
    }

    /// Runs `f` on the published chain. Only administrative code calls
    /// this, with the slot claimed, so the chain cannot be retired under it.
    pub(crate) fn with_chain<R>(&self, _claim: &Claim<'_>, f: impl FnOnce(&Chain) -> R) -> R {
        // Ordering: pairs with `publish`; the claim excludes other writers.
        // SAFETY: Only `publish` replaces the chain, and it needs the claim.
        f(unsafe { &*self.hot.chain.load(Acquire) })
    }

    /// A snapshot for status: the phase, the chain (interposers and
    /// object) and the administrative state. `ENOENT` if the object is
    /// being destroyed.
    /// Sets what the owner says the object is (shown by status), keeping
    /// the end of a text too long for the field (a path's file name).
    pub(crate) fn set_label(&self, text: &[u8]) {
        let mut admin = self.admin.lock();
        let room = admin.label.len() - 1;
        let kept = &text[text.len().saturating_sub(room)..];
        admin.label = [0; crate::uapi::LABEL_LEN];
        admin.label[..kept.len()].copy_from_slice(kept);
    }

    pub(crate) fn status<R>(&self, f: impl FnOnce(Phase, &Chain, &Admin) -> R) -> Result<R> {
        let admin = self.admin.lock();
        if admin.state == AdminState::Dying {
            return Err(ENOENT);
        }
        // Ordering: pairs with `publish`.
        // SAFETY: Chains are retired only by `publish` and freed only by a
        // reap, both under the admin lock held here; `destroy` takes the
        // chain away only after setting `dying`, checked above.
        let chain = unsafe { &*self.hot.chain.load(Acquire) };
        let phase = chain.mediator.as_ref().map_or(Phase::Normal, |m| m.phase());
        Ok(f(phase, chain, &admin))
    }

    /// Claims the slot for an administrative operation: `EBUSY` if another
    /// is in progress, `ENOENT` if the object is being destroyed.
    pub(crate) fn claim(&self) -> Result<Claim<'_>> {
        let mut admin = self.admin.lock();
        match admin.state {
            AdminState::Dying => return Err(ENOENT),
            AdminState::Claimed => return Err(EBUSY),
            AdminState::Idle => {}
        }
        Ok(self.take_claim(&mut admin))
    }

    /// As [`Slot::claim`], but waits while another operation holds the
    /// claim, until it ends or a signal comes (`EINTR`): for work that
    /// must happen to this object and may queue behind a swap (a decision
    /// policy's monitor). Every claim's holder bounds itself (a swap by its
    /// phase timeouts, whatever they were set to), so this wait needs no
    /// bound of its own; a fixed one shorter than a holder's would give up
    /// on work that was only queued.
    pub(crate) fn claim_waiting(&self) -> Result<Claim<'_>> {
        let mut admin = self.admin.lock();
        loop {
            match admin.state {
                AdminState::Dying => return Err(ENOENT),
                AdminState::Idle => return Ok(self.take_claim(&mut admin)),
                AdminState::Claimed => {}
            }
            if self.released.wait_interruptible(&mut admin) {
                return Err(EINTR);
            }
        }
    }

    /// Claims the slot, which is idle (`admin` is its locked state).
    fn take_claim(&self, admin: &mut Admin) -> Claim<'_> {
        // INVARIANT: Idle until now (the callers checked, under the lock),
        // so this is the only claim.
        admin.state = AdminState::Claimed;
        self.reap(admin);
        Claim { slot: self }
    }

    /// Runs `f` on the decision policy's state for this object.
    pub(crate) fn with_decision<R>(&self, f: impl FnOnce(&mut DecisionState) -> R) -> R {
        f(&mut self.admin.lock().decision)
    }

    /// The per-phase swap timeout.
    pub(crate) fn timeout_ms(&self) -> u32 {
        self.admin.lock().timeout_ms
    }

    /// Sets the per-phase swap timeout (1 ms to 1 hour).
    pub(crate) fn set_timeout_ms(&self, ms: u32) -> Result {
        if !(1..=3_600_000).contains(&ms) {
            return Err(EINVAL);
        }
        self.admin.lock().timeout_ms = ms;
        Ok(())
    }

    /// Records a finished swap.
    pub(crate) fn record(&self, outcome: crate::ott::history::SwapOutcome) {
        self.admin.lock().stats.record(outcome);
    }

    /// Publishes `chain` and retires the previous one. Returns the cookie
    /// of the grace period after which the retired chain is freed.
    pub(crate) fn publish(&self, claim: &Claim<'_>, chain: KBox<Chain>) -> Result<Cookie> {
        self.reserve_retirements(claim, 1)?;
        Ok(self.publish_reserved(claim, chain))
    }

    /// Makes room for `n` retired chains, so that the next `n`
    /// [`Slot::publish_reserved`] under this claim cannot fail.
    pub(crate) fn reserve_retirements(&self, _claim: &Claim<'_>, n: usize) -> Result {
        Ok(self.admin.lock().graveyard.reserve(n, GFP_KERNEL)?)
    }

    /// [`Slot::publish`] into room reserved by
    /// [`Slot::reserve_retirements`]: allocates nothing, cannot fail.
    pub(crate) fn publish_reserved(&self, _claim: &Claim<'_>, chain: KBox<Chain>) -> Cookie {
        let mut admin = self.admin.lock();
        // Ordering: full (release side): the chain's contents are visible
        // before its address; pairs with the acquire load in `begin`.
        let old = self.hot.chain.xchg(KBox::into_raw(chain), Full);
        // SAFETY: `old` was published and is now unreachable for new calls.
        let old = unsafe { KBox::from_raw(old) };
        let cookie = self.hot.domain.start_grace_period();
        let retired = Retired {
            cookie,
            _chain: old,
        };
        if let Err(err) = admin.graveyard.push_within_capacity(retired) {
            // No room was reserved (a caller's bug): wait the grace period
            // out here rather than free a chain a call may still use.
            drop(admin);
            pr_err!(
                "{}/{}: retired a chain without room\n",
                self.label().0,
                self.id
            );
            let _ = wait_until(
                Instant::<Monotonic>::now() + Delta::from_millis(60_000),
                || self.hot.domain.grace_period_done(cookie),
            );
            drop(err);
        }
        cookie
    }

    /// Whether the grace period of `cookie` is over.
    pub(crate) fn grace_period_done(&self, cookie: Cookie) -> bool {
        self.hot.domain.grace_period_done(cookie)
    }

    /// Frees retired chains whose grace period is over (destroying the
    /// instances no chain uses any more).
    fn reap(&self, admin: &mut Admin) {
        admin
            .graveyard
            .retain(|r| !self.hot.domain.grace_period_done(r.cookie));
    }

    /// Frees retired chains whose grace period is over.
    pub(crate) fn reap_retired(&self) {
        self.reap(&mut self.admin.lock());
    }

    /// Waits up to `deadline` (or a signal) for `cookie`, then frees what
    /// it can.
    pub(crate) fn settle(&self, cookie: Cookie, deadline: Instant<Monotonic>) {
        let _ = wait_until_interruptible(deadline, || self.grace_period_done(cookie));
        self.reap_retired();
    }

    /// Tears the slot down: waits out any administrative operation, then
    /// for every reader, and destroys the chain's instances.
    pub(crate) fn destroy(&self) {
        let mut admin = self.admin.lock();
        // A claim is held by a swap or interposition, which its timeouts
        // bound; not killable: the object must go, and its owner is
        // giving it up (a file's last close, a module's exit).
        while admin.state == AdminState::Claimed {
            self.released.wait(&mut admin);
        }
        admin.state = AdminState::Dying;
        drop(admin);
        self.hot.domain.synchronize();
        // No caller is left and none can come (the client gave up its
        // handle): take the chain out and free everything.
        let chain = self.hot.chain.xchg(core::ptr::null_mut(), Full);
        let mut admin = self.admin.lock();
        admin.graveyard.clear();
        drop(admin);
        if !chain.is_null() {
            // SAFETY: Published by `new` or `publish`; unreachable now.
            drop(unsafe { KBox::from_raw(chain) });
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Slot {
    fn drop(self: Pin<&mut Self>) {
        let chain = self.hot.chain.load(Acquire);
        if !chain.is_null() {
            // SAFETY: A slot dropped without `destroy` was never handed
            // out (creation failed part-way); nobody can be calling.
            drop(unsafe { KBox::from_raw(chain) });
        }
    }
}

#[kunit_tests(hotswap_slot_layout)]
mod tests {
    use super::{CallPath, Slot};
    use core::mem::{align_of, offset_of, size_of};

    /// The lines a call reads are written by nothing but swaps publishing
    /// a chain: not by `Arc` clones (the counter precedes the 64-byte
    /// aligned slot), nor by status and claims (the admin state follows).
    #[test]
    fn call_path_has_a_line_of_its_own() {
        assert_eq!(align_of::<Slot>(), 64);
        assert_eq!(offset_of!(Slot, hot), 0);
        assert!(size_of::<CallPath>() <= 64);
        assert!(offset_of!(Slot, id) >= 64);
        assert!(offset_of!(Slot, admin) >= 64);
    }
}
