// SPDX-License-Identifier: GPL-2.0
//! A slot's read-side domain: the generation count that tells when every
//! call that started before some point has finished.
//!
//! # Why our own SRCU-fast, one domain per slot
//!
//! Calls through a slot may sleep (an object may allocate memory or do I/O),
//! so plain RCU readers are out. SRCU allows sleeping readers, and its fast
//! flavour enters with one per-CPU increment and no memory barrier, so the
//! normal call path writes no cache line another CPU writes. `read_side.c`
//! keeps that read side and SRCU's grace-period algorithm, but not the
//! `srcu_struct` around them: there, every domain runs its grace periods
//! as a state machine on a workqueue, and a batch of N slots kept N of them
//! busy, each sleeping in `synchronize_rcu()` in a kworker of its own. Here
//! a grace period is moved along by whoever waits for it, and its waits
//! are polled RCU grace periods, which every slot of a batch shares.
//!
//! Each slot has its own domain so that a call stuck in one object delays
//! grace periods of that object only; swaps and frees of every other object
//! go on. A domain costs a small struct and five counters per CPU.
//!
//! A grace period is K42's generation count: [`ReadDomain::start_grace_period`]
//! takes a cookie and [`ReadDomain::grace_period_done`] says when every
//! reader that was inside at that moment has left; callers poll it with a
//! deadline (see [`wait_until`]), so a stuck call becomes a timeout instead
//! of a hang.

use core::ffi::{c_ulong, c_void};
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::atomic::Atomic;
use kernel::time::{delay::fsleep, Delta, Instant, Monotonic};

// `struct hotswap_domain *` travels as `*mut c_void`: only read_side.c
// looks inside.
extern "C" {
    fn hotswap_domain_alloc() -> *mut c_void;
    fn hotswap_domain_free(domain: *mut c_void);
    fn hotswap_domain_enter(
        domain: *mut c_void,
        published: *const *mut c_void,
        loaded: *mut *mut c_void,
    ) -> *mut c_void;
    fn hotswap_domain_exit(domain: *mut c_void, token: *mut c_void);
    fn hotswap_domain_calls(domain: *mut c_void) -> u64;
    fn hotswap_domain_request(domain: *mut c_void) -> c_ulong;
    fn hotswap_domain_done(domain: *mut c_void, cookie: c_ulong) -> bool;
}

/// A point in the domain's history; see [`ReadDomain::start_grace_period`].
#[derive(Clone, Copy)]
pub(crate) struct Cookie(c_ulong);

/// A slot's read-side domain and call counter.
///
/// # Invariants
///
/// `domain` came from `hotswap_domain_alloc` and is live until `drop`.
pub(crate) struct ReadDomain {
    domain: NonNull<c_void>,
}

// SAFETY: The domain's read side is per-CPU and its update side takes the
// domain's lock: usable from any thread.
unsafe impl Send for ReadDomain {}
// SAFETY: As for `Send`.
unsafe impl Sync for ReadDomain {}

impl ReadDomain {
    /// A new domain.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: FFI call with no requirements.
        let domain = NonNull::new(unsafe { hotswap_domain_alloc() }).ok_or(ENOMEM)?;
        // INVARIANT: Allocated just now.
        Ok(Self { domain })
    }

    /// Enters the read side, counts one call and loads `published` with
    /// acquire ordering from inside the read side. Returns the token
    /// [`ReadDomain::exit`] needs (never null) and the loaded pointer.
    #[inline]
    pub(crate) fn enter_and_load<T>(&self, published: &Atomic<*mut T>) -> (*mut c_void, *mut T) {
        let mut loaded = core::ptr::null_mut();
        // SAFETY: By the type invariants the domain is live; `published`
        // is a valid atomic pointer and `loaded` a valid out pointer.
        let token = unsafe {
            hotswap_domain_enter(self.domain.as_ptr(), published.as_ptr().cast(), &mut loaded)
        };
        (token, loaded.cast())
    }

    /// Leaves the read side entered by [`ReadDomain::enter_and_load`].
    ///
    /// # Safety
    ///
    /// `token` came from `enter_and_load` on this domain and is used once.
    #[inline]
    pub(crate) unsafe fn exit(&self, token: *mut c_void) {
        // SAFETY: The caller passes a token from `enter_and_load` on this
        // domain; the domain is live.
        unsafe { hotswap_domain_exit(self.domain.as_ptr(), token) }
    }

    /// Calls made through this domain so far.
    pub(crate) fn calls(&self) -> u64 {
        // SAFETY: By the type invariants the domain is live.
        unsafe { hotswap_domain_calls(self.domain.as_ptr()) }
    }

    /// Asks for a grace period that begins after this call.
    pub(crate) fn start_grace_period(&self) -> Cookie {
        // SAFETY: By the type invariants the domain is live.
        Cookie(unsafe { hotswap_domain_request(self.domain.as_ptr()) })
    }

    /// Whether every reader inside when `cookie` was taken has left. Moves
    /// the grace period along as far as it can without waiting, so the
    /// waiter polls this (with naps); never sleeps.
    pub(crate) fn grace_period_done(&self, cookie: Cookie) -> bool {
        // SAFETY: By the type invariants the domain is live.
        unsafe { hotswap_domain_done(self.domain.as_ptr(), cookie.0) }
    }

    /// Waits for every reader of the whole domain, however long it takes.
    pub(crate) fn synchronize(&self) {
        let cookie = self.start_grace_period();
        poll(None, || self.grace_period_done(cookie));
    }
}

impl Drop for ReadDomain {
    fn drop(&mut self) {
        // SAFETY: No reader is left: a slot drops its domain only after
        // `Slot::destroy` waited for them, or when it was never handed out.
        // Nothing runs in the background, so nothing else uses it.
        unsafe { hotswap_domain_free(self.domain.as_ptr()) }
    }
}

/// Whether `deadline` has passed. (`Instant<Monotonic>` has no ordering:
/// the derive asks the clock type for one.)
pub(crate) fn passed(deadline: Instant<Monotonic>) -> bool {
    (Instant::<Monotonic>::now() - deadline).as_nanos() >= 0
}

/// Polls until `done()` or `deadline`; `ETIMEDOUT` if the deadline passes
/// first. Sleeps between polls, starting at 100 µs and backing off to 10 ms,
/// so a grace period that ends quickly is noticed quickly.
pub(crate) fn wait_until(deadline: Instant<Monotonic>, done: impl FnMut() -> bool) -> Result {
    if poll(Some(deadline), done) {
        Ok(())
    } else {
        Err(ETIMEDOUT)
    }
}

/// [`wait_until`], but a pending signal ends the wait too (`EINTR`): for
/// waits that only tidy up, on behalf of a caller who may want to go.
pub(crate) fn wait_until_interruptible(
    deadline: Instant<Monotonic>,
    mut done: impl FnMut() -> bool,
) -> Result {
    let mut interrupted = false;
    let finished = poll(Some(deadline), || {
        interrupted = kernel::current!().signal_pending();
        interrupted || done()
    });
    match (finished, interrupted) {
        (true, false) => Ok(()),
        (true, true) => Err(EINTR),
        (false, _) => Err(ETIMEDOUT),
    }
}

/// Polls `done()` with growing naps until it says yes (true) or
/// `deadline` passes (false).
fn poll(deadline: Option<Instant<Monotonic>>, mut done: impl FnMut() -> bool) -> bool {
    let mut nap = Delta::from_micros(100);
    loop {
        if done() {
            return true;
        }
        if deadline.is_some_and(passed) {
            return false;
        }
        fsleep(nap);
        if nap < Delta::from_millis(10) {
            nap = nap + nap;
        }
    }
}

#[kunit_tests(hotswap_grace_period)]
mod tests {
    use super::{wait_until, Cookie, ReadDomain};
    use kernel::prelude::*;
    use kernel::sync::atomic::Atomic;
    use kernel::time::{Delta, Instant, Monotonic};

    /// Whether `cookie`'s grace period ends within `ms`, polling as the
    /// mediator does. Long enough for many RCU grace periods under TCG.
    fn ends_within(domain: &ReadDomain, cookie: Cookie, ms: i64) -> bool {
        let deadline = Instant::<Monotonic>::now() + Delta::from_millis(ms);
        wait_until(deadline, || domain.grace_period_done(cookie)).is_ok()
    }

    /// Enters `domain` as a call would; returns the token.
    fn enter(domain: &ReadDomain) -> *mut core::ffi::c_void {
        let published = Atomic::new(core::ptr::null_mut::<u8>());
        domain.enter_and_load(&published).0
    }

    #[test]
    fn ends_with_no_reader() -> Result {
        let domain = ReadDomain::new()?;
        for _ in 0..3 {
            let cookie = domain.start_grace_period();
            assert!(ends_within(&domain, cookie, 10_000));
        }
        Ok(())
    }

    #[test]
    fn waits_for_a_reader_inside_then_ends() -> Result {
        let domain = ReadDomain::new()?;
        let token = enter(&domain);
        let cookie = domain.start_grace_period();
        assert!(!ends_within(&domain, cookie, 300));
        // SAFETY: `token` came from `enter` on this domain, used once.
        unsafe { domain.exit(token) };
        assert!(ends_within(&domain, cookie, 10_000));
        Ok(())
    }

    #[test]
    fn a_later_request_waits_for_readers_before_it() -> Result {
        let domain = ReadDomain::new()?;
        let first = enter(&domain);
        let early = domain.start_grace_period();
        // The grace period is under way (flipped, waiting for `first`);
        // `second` enters on the new index before the next request.
        assert!(!ends_within(&domain, early, 300));
        let second = enter(&domain);
        let late = domain.start_grace_period();
        // SAFETY: From `enter` on this domain, used once.
        unsafe { domain.exit(first) };
        assert!(ends_within(&domain, early, 10_000));
        // `early` is over, but `second` came before `late`: still waiting.
        assert!(!ends_within(&domain, late, 300));
        // SAFETY: From `enter` on this domain, used once.
        unsafe { domain.exit(second) };
        assert!(ends_within(&domain, late, 10_000));
        Ok(())
    }

    #[test]
    fn a_reader_delays_only_its_own_domain() -> Result {
        let busy = ReadDomain::new()?;
        let idle = ReadDomain::new()?;
        let token = enter(&busy);
        let busy_cookie = busy.start_grace_period();
        let idle_cookie = idle.start_grace_period();
        assert!(ends_within(&idle, idle_cookie, 10_000));
        assert!(!ends_within(&busy, busy_cookie, 300));
        // SAFETY: From `enter` on `busy`, used once.
        unsafe { busy.exit(token) };
        assert!(ends_within(&busy, busy_cookie, 10_000));
        Ok(())
    }
}
