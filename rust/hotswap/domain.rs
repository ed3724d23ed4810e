// SPDX-License-Identifier: GPL-2.0
//! A slot's read-side domain: the generation count that tells when every
//! call that started before some point has finished.
//!
//! # Why SRCU-fast, one domain per slot
//!
//! Calls through a slot may sleep (an FCM allocates pages and reads files),
//! so plain RCU readers are out. SRCU allows sleeping readers; its *fast*
//! flavour (`srcu_read_lock_fast`) enters with one per-CPU increment and no
//! memory barrier, so the normal call path writes no cache line another CPU
//! writes. A grace period of the domain is K42's generation count:
//! `start_poll_synchronize_srcu` takes a cookie and
//! `poll_state_synchronize_srcu` says when every reader that was inside at
//! that moment has left; the mediator polls it with a deadline, so a stuck
//! call becomes a timeout instead of a hang.
//!
//! Each slot has its own domain so that a call stuck in one object delays
//! grace periods of that object only; swaps and frees of every other object
//! go on. The price is memory (an `srcu_struct` and its per-CPU data per
//! object, about 1 KiB plus a few hundred bytes per CPU) and an SRCU grace
//! period per slot in a batch, which the batch starts all at once and waits
//! for together, so a batch costs about one grace period, not N.

use core::ffi::{c_int, c_void};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::time::{delay::fsleep, Delta, Instant, Monotonic};
use kernel::types::Opaque;

// `struct srcu_struct *` travels as `*mut c_void`: Rust deems the struct
// (it embeds a lockdep map) not FFI-safe.
extern "C" {
    fn hotswap_domain_init(ssp: *mut c_void) -> c_int;
    fn hotswap_domain_cleanup(ssp: *mut c_void);
    fn hotswap_domain_enter(
        ssp: *mut c_void,
        calls: *mut u64,
        published: *const *mut c_void,
        loaded: *mut *mut c_void,
    ) -> *mut c_void;
    fn hotswap_domain_exit(ssp: *mut c_void, ctr: *mut c_void);
    fn hotswap_counter_alloc() -> *mut u64;
    fn hotswap_counter_free(counter: *mut u64);
    fn hotswap_counter_sum(counter: *mut u64) -> u64;
}

/// A point in the domain's history; see [`ReadDomain::start_grace_period`].
#[derive(Clone, Copy)]
pub(crate) struct Cookie(usize);

/// Per-slot SRCU-fast domain plus a per-CPU call counter.
///
/// # Invariants
///
/// `srcu` is initialized (fast flavour) and `calls` is a live per-CPU
/// allocation, both until `drop`.
pub(crate) struct ReadDomain {
    srcu: KBox<Opaque<bindings::srcu_struct>>,
    calls: *mut u64,
    /// Last grace period started (valid once `started`), so `drop` can
    /// wait for it before `cleanup_srcu_struct`, which refuses a domain in
    /// the middle of a grace period.
    last: Atomic<usize>,
    started: Atomic<bool>,
}

// SAFETY: SRCU domains and per-CPU counters are usable from any CPU.
unsafe impl Send for ReadDomain {}
// SAFETY: As for `Send`; `enter`/`exit` are the SRCU read side.
unsafe impl Sync for ReadDomain {}

impl ReadDomain {
    /// A new domain.
    pub(crate) fn new() -> Result<Self> {
        let srcu = KBox::new(Opaque::<bindings::srcu_struct>::uninit(), GFP_KERNEL)?;
        // SAFETY: FFI call with no requirements.
        let calls = unsafe { hotswap_counter_alloc() };
        if calls.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `srcu` is allocated and never moves (boxed).
        let ret = unsafe { hotswap_domain_init(srcu.get().cast()) };
        if ret != 0 {
            // SAFETY: Allocated above, not shared.
            unsafe { hotswap_counter_free(calls) };
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: Both initialized above.
        Ok(Self {
            srcu,
            calls,
            last: Atomic::new(0),
            started: Atomic::new(false),
        })
    }

    /// Enters the read side, counts one call and loads `published` with
    /// acquire ordering from inside the read side. Returns the token
    /// [`ReadDomain::exit`] needs and the loaded pointer.
    #[inline]
    pub(crate) fn enter_and_load<T>(&self, published: &Atomic<*mut T>) -> (*mut c_void, *mut T) {
        let mut loaded = core::ptr::null_mut();
        // SAFETY: By the type invariants both domain pointers are live;
        // `published` is a valid atomic pointer and `loaded` a valid out
        // pointer for the call.
        let token = unsafe {
            hotswap_domain_enter(
                self.srcu.get().cast(),
                self.calls,
                published.as_ptr().cast(),
                &mut loaded,
            )
        };
        (token, loaded.cast())
    }

    /// Leaves the read side entered by [`ReadDomain::enter`].
    ///
    /// # Safety
    ///
    /// `token` came from `enter` on this domain and is used once.
    #[inline]
    pub(crate) unsafe fn exit(&self, token: *mut c_void) {
        // SAFETY: The caller passes a token from `enter` on this domain.
        unsafe { hotswap_domain_exit(self.srcu.get().cast(), token) }
    }

    /// Calls made through this domain so far.
    pub(crate) fn calls(&self) -> u64 {
        // SAFETY: By the type invariants `calls` is live.
        unsafe { hotswap_counter_sum(self.calls) }
    }

    /// Starts a grace period (or joins one in progress).
    pub(crate) fn start_grace_period(&self) -> Cookie {
        // SAFETY: `srcu` is initialized.
        let cookie = Cookie(unsafe { bindings::start_poll_synchronize_srcu(self.srcu.get()) });
        // Only `drop` reads these, after every other user is gone.
        self.last.store(cookie.0, Relaxed);
        self.started.store(true, Relaxed);
        cookie
    }

    /// Whether every reader inside when `cookie` was taken has left.
    pub(crate) fn grace_period_done(&self, cookie: Cookie) -> bool {
        // SAFETY: `srcu` is initialized.
        unsafe { bindings::poll_state_synchronize_srcu(self.srcu.get(), cookie.0) }
    }

    /// Waits for every reader of the whole domain, however long it takes.
    pub(crate) fn synchronize(&self) {
        // SAFETY: `srcu` is initialized.
        unsafe { bindings::synchronize_srcu(self.srcu.get()) }
    }
}

impl Drop for ReadDomain {
    fn drop(&mut self) {
        let last = Cookie(self.last.load(Relaxed));
        if self.started.load(Relaxed) && !self.grace_period_done(last) {
            self.synchronize();
        }
        // SAFETY: No reader is left (the slot is unreachable and its last
        // grace period finished); both were initialized in `new`.
        unsafe {
            hotswap_domain_cleanup(self.srcu.get().cast());
            hotswap_counter_free(self.calls);
        }
    }
}

/// Whether `deadline` has passed. (`Instant<Monotonic>` has no ordering:
/// the derive asks the clock type for one.)
pub(crate) fn passed(deadline: Instant<Monotonic>) -> bool {
    (Instant::<Monotonic>::now() - deadline).as_nanos() >= 0
}

/// The later of two instants.
pub(crate) fn later(a: Instant<Monotonic>, b: Instant<Monotonic>) -> Instant<Monotonic> {
    if (a - b).as_nanos() >= 0 {
        a
    } else {
        b
    }
}

/// Polls until `done()` or `deadline`; `ETIMEDOUT` if the deadline passes
/// first. Sleeps between polls, starting at 100 µs and backing off to 10 ms,
/// so a grace period that ends quickly is noticed quickly.
pub(crate) fn wait_until(deadline: Instant<Monotonic>, mut done: impl FnMut() -> bool) -> Result {
    let mut nap = Delta::from_micros(100);
    loop {
        if done() {
            return Ok(());
        }
        if passed(deadline) {
            return Err(ETIMEDOUT);
        }
        fsleep(nap);
        if nap < Delta::from_millis(10) {
            nap = nap + nap;
        }
    }
}
