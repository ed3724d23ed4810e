// SPDX-License-Identifier: GPL-2.0
//! KUnit suite for hotswap's mechanism, through a small test interface
//! `hstest` defined here: an object holds a counter; `add(n)` adds to it.
//!
//! Implementations: `alpha` (exports formats 2 and 1, imports 1 and 2),
//! `beta` (1 only), `gamma` (3 only: shares nothing with the others), and
//! the interposers `plus_one` (adds one to every `n`) and `counter` (counts
//! calls). Knobs make export or import fail, return out-of-range values, or
//! hold a call until the test lets it go.
//!
//! Destroyed objects are not freed but quarantined until module exit and
//! marked dead, so a call served by a destroyed object is counted instead
//! of being a use-after-free.

use core::ffi::{c_int, c_void};
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed, Release};

#[path = "../../rust/abi/api.rs"]
pub mod api;

use api::{Call, ImplOps, ImplTable, Implementation, InterfaceRegistration, Registration};

module! {
    type: CoreTestModule,
    name: "hotswap_core_test",
    authors: ["hotswap developers"],
    description: "KUnit: hotswap slots, interposition, mediator, transfer, batching",
    license: "GPL",
}

const INTERFACE: &CStr = c"hstest";
/// `add(HOLD)` holds the call until `RELEASE` is set.
const HOLD: u64 = u64::MAX;
/// `add(RECURSE)` waits for Blocked, then calls `add(1)` through the slot.
const RECURSE: u64 = u64::MAX - 1;
/// `add(HOLD2)` holds the call until `RELEASE2` is set.
const HOLD2: u64 = u64::MAX - 2;

static FAIL_EXPORT: Atomic<bool> = Atomic::new(false);
static FAIL_IMPORT: Atomic<bool> = Atomic::new(false);
static EXPORT_OUT_OF_RANGE: Atomic<bool> = Atomic::new(false);
static RELEASE: Atomic<bool> = Atomic::new(false);
static RELEASE2: Atomic<bool> = Atomic::new(false);
static HELD: Atomic<i32> = Atomic::new(0);
static DEAD_CALLS: Atomic<u64> = Atomic::new(0);
static INTERPOSED_CALLS: Atomic<u64> = Atomic::new(0);
/// The slot `add(RECURSE)` calls back into.
static RECURSE_SLOT: Atomic<usize> = Atomic::new(0);
/// A slot `export` calls into (0: none), and what that call returned
/// (0, or the negative errno).
static EXPORT_CALLS_INTO: Atomic<usize> = Atomic::new(0);
static EXPORT_CALL_RESULT: Atomic<i32> = Atomic::new(0);

/// The `hstest` method table.
#[repr(C)]
pub struct TestOps {
    /// Adds `n` and returns the new value.
    pub add: unsafe extern "C" fn(obj: *mut c_void, call: *const Call, n: u64) -> u64,
    /// Which implementation serves the object (1 alpha, 2 beta, 3 gamma).
    pub tag: unsafe extern "C" fn(obj: *mut c_void, call: *const Call) -> u32,
}

/// The `hstest` interface, as the typed handles see it.
pub struct Hstest;

impl api::Interface for Hstest {
    const NAME: &'static CStr = INTERFACE;
    const METHODS_VERSION: u32 = 1;
    const KNOWN_GOOD: Option<&'static CStr> = Some(c"alpha");
    type Methods = TestOps;
}

struct TestObj {
    value: Atomic<u64>,
    tag: u32,
    dead: Atomic<bool>,
}

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init.
    unsafe(uninit) static QUARANTINE: Mutex<KVec<KBox<TestObj>>> = KVec::new();
}

fn wait_for(mut what: impl FnMut() -> bool) -> bool {
    for _ in 0..20_000 {
        if what() {
            return true;
        }
        kernel::time::delay::fsleep(kernel::time::Delta::from_micros(500));
    }
    false
}

unsafe extern "C" fn obj_add(obj: *mut c_void, _call: *const Call, n: u64) -> u64 {
    // SAFETY: hotswap passes an object this module created; destroyed ones
    // stay allocated in the quarantine.
    let obj = unsafe { &*obj.cast::<TestObj>() };
    if obj.dead.load(Acquire) {
        DEAD_CALLS.add(1, Relaxed);
    }
    match n {
        HOLD | HOLD2 => {
            let gate = if n == HOLD { &RELEASE } else { &RELEASE2 };
            HELD.fetch_add(1, Full);
            wait_for(|| gate.load(Acquire));
            HELD.fetch_sub(1, Full);
            obj.value.load(Relaxed)
        }
        RECURSE => {
            let slot = RECURSE_SLOT.load(Acquire) as *const c_void;
            HELD.fetch_add(1, Full);
            // SAFETY: The test keeps the object alive while this call runs.
            wait_for(|| unsafe { api::hotswap_object_phase(slot) } == 2);
            let inner = call_add(slot, 1).unwrap_or(0);
            HELD.fetch_sub(1, Full);
            inner
        }
        n => obj.value.fetch_add(n, Acquire) + n,
    }
}

unsafe extern "C" fn obj_tag(obj: *mut c_void, _call: *const Call) -> u32 {
    // SAFETY: As in `obj_add`.
    unsafe { &*obj.cast::<TestObj>() }.tag
}

static OBJ_OPS: TestOps = TestOps {
    add: obj_add,
    tag: obj_tag,
};

unsafe extern "C" fn obj_create<const TAG: u32>(
    arg: *const c_void,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: `arg` is NULL or the `u64` the test passed.
    let initial = unsafe { arg.cast::<u64>().as_ref() }.copied().unwrap_or(0);
    match KBox::new(
        TestObj {
            value: Atomic::new(initial),
            tag: TAG,
            dead: Atomic::new(false),
        },
        GFP_KERNEL,
    ) {
        Ok(obj) => {
            // SAFETY: `out` is a valid out pointer from hotswap.
            unsafe { *out = KBox::into_raw(obj).cast() };
            0
        }
        Err(_) => ENOMEM.to_errno(),
    }
}

unsafe extern "C" fn obj_destroy(obj: *mut c_void, _how: u32) {
    // SAFETY: `obj` came from `obj_create`; destroyed once.
    let obj = unsafe { KBox::from_raw(obj.cast::<TestObj>()) };
    obj.dead.store(true, Release);
    // Keep it readable for late (buggy) callers; freed at module exit
    // (`CoreTestModule`'s `drop`).
    let _ = QUARANTINE.lock().push(obj, GFP_KERNEL);
}

unsafe extern "C" fn obj_export(obj: *mut c_void, _format: u32, state: *mut *mut c_void) -> c_int {
    if FAIL_EXPORT.load(Acquire) {
        return EIO.to_errno();
    }
    if EXPORT_OUT_OF_RANGE.load(Acquire) {
        return 7;
    }
    let into = EXPORT_CALLS_INTO.load(Acquire) as *const c_void;
    if !into.is_null() {
        let result = call_add(into, 1).map_or_else(|e| e.to_errno(), |_| 0);
        EXPORT_CALL_RESULT.store(result, Release);
    }
    // SAFETY: As in `obj_add`.
    let value = unsafe { &*obj.cast::<TestObj>() }.value.load(Acquire);
    match KBox::new(value, GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: `state` is a valid out pointer from hotswap.
            unsafe { *state = KBox::into_raw(b).cast() };
            0
        }
        Err(_) => ENOMEM.to_errno(),
    }
}

unsafe extern "C" fn obj_import(obj: *mut c_void, _format: u32, state: *mut c_void) -> c_int {
    if FAIL_IMPORT.load(Acquire) {
        return EIO.to_errno();
    }
    // SAFETY: `state` came from `obj_export`; `obj` from `obj_create`.
    let (obj, value) = unsafe { (&*obj.cast::<TestObj>(), *state.cast::<u64>()) };
    obj.value.store(value, Release);
    0
}

unsafe extern "C" fn obj_release(_obj: *mut c_void, _format: u32, state: *mut c_void, _taken: u32) {
    // SAFETY: `state` came from `obj_export`; released once.
    drop(unsafe { KBox::from_raw(state.cast::<u64>()) });
}

unsafe extern "C" fn wrapper_create(_arg: *const c_void, out: *mut *mut c_void) -> c_int {
    // Interposers keep no state; any non-NULL cookie will do.
    // SAFETY: `out` is a valid out pointer from hotswap.
    unsafe { *out = core::ptr::NonNull::<u8>::dangling().as_ptr().cast() };
    0
}

unsafe extern "C" fn wrapper_destroy(_obj: *mut c_void, _how: u32) {}

fn forward_add(call: *const Call, n: u64) -> u64 {
    // SAFETY: `call` is the live call the interposer's method runs in.
    let call = unsafe { api::LiveCall::<Hstest>::from_raw(call) };
    call.forward(|methods, obj, next| {
        // SAFETY: Every layer of an `hstest` slot has a `TestOps` table.
        unsafe { (methods.add)(obj, next, n) }
    })
    .unwrap_or(0)
}

fn forward_tag(call: *const Call) -> u32 {
    // SAFETY: As in `forward_add`.
    let call = unsafe { api::LiveCall::<Hstest>::from_raw(call) };
    call.forward(|methods, obj, next| {
        // SAFETY: As in `forward_add`.
        unsafe { (methods.tag)(obj, next) }
    })
    .unwrap_or(0)
}

unsafe extern "C" fn plus_one_add(_obj: *mut c_void, call: *const Call, n: u64) -> u64 {
    forward_add(call, n + 1)
}

unsafe extern "C" fn counter_add(_obj: *mut c_void, call: *const Call, n: u64) -> u64 {
    INTERPOSED_CALLS.add(1, Relaxed);
    forward_add(call, n)
}

unsafe extern "C" fn wrapper_tag(_obj: *mut c_void, call: *const Call) -> u32 {
    forward_tag(call)
}

static PLUS_ONE_OPS: TestOps = TestOps {
    add: plus_one_add,
    tag: wrapper_tag,
};
static COUNTER_OPS: TestOps = TestOps {
    add: counter_add,
    tag: wrapper_tag,
};

/// The `hstest` adapter for object implementations: `TestObj`s tagged
/// `TAG`, with these transfer formats.
fn object_ops<I, const TAG: u32>(exports: [u32; 4], imports: [u32; 4]) -> ImplTable<I>
where
    I: api::Interface<Methods = TestOps>,
{
    let ops = ImplOps {
        kind: api::KIND_OBJECT,
        export_formats: exports,
        import_formats: imports,
        create: Some(obj_create::<TAG>),
        destroy: Some(obj_destroy),
        export: Some(obj_export),
        import: Some(obj_import),
        release: Some(obj_release),
        ..ImplOps::empty()
    };
    // SAFETY: `obj_create` makes the `TestObj` that the other callbacks
    // and `OBJ_OPS`' methods take the object as; the transfer callbacks
    // hand a boxed `u64` over, freed once by `obj_release`.
    unsafe { ImplTable::from_raw(&OBJ_OPS, ops) }
}

/// The `hstest` adapter for interposers: stateless wrappers whose methods
/// forward through the live call.
fn interposer_ops(methods: &'static TestOps) -> ImplTable<Hstest> {
    let ops = ImplOps {
        kind: api::KIND_INTERPOSER,
        create: Some(wrapper_create),
        destroy: Some(wrapper_destroy),
        ..ImplOps::empty()
    };
    // SAFETY: The wrappers have no state (`wrapper_create` stores a
    // dangling address nothing reads), and `methods` is one of the
    // forwarding tables above.
    unsafe { ImplTable::from_raw(methods, ops) }
}

/// Declares an `hstest` object implementation: `TestObj`s tagged `$tag`,
/// exporting and importing these formats (of interface `Hstest`, or of
/// another with `hstest`'s method table).
macro_rules! object_impl {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $tag:literal, $exports:expr, $imports:expr) => {
        object_impl!($(#[$doc])* $ty: Hstest, $name, $tag, $exports, $imports);
    };
    ($(#[$doc:meta])* $ty:ident: $iface:ty, $name:literal, $tag:literal, $exports:expr, $imports:expr) => {
        $(#[$doc])*
        struct $ty;
        impl Implementation for $ty {
            type Interface = $iface;
            const NAME: &'static CStr = $name;
            fn ops() -> ImplTable<$iface> {
                object_ops::<$iface, $tag>($exports, $imports)
            }
        }
    };
}

object_impl!(Alpha, c"alpha", 1, [2, 1, 0, 0], [1, 2, 0, 0]);
object_impl!(Beta, c"beta", 2, [1, 0, 0, 0], [1, 0, 0, 0]);
object_impl!(Gamma, c"gamma", 3, [3, 0, 0, 0], [3, 0, 0, 0]);
// Alpha's twin that the misbehavior test gets quarantined, so that the
// other tests keep alpha.
object_impl!(Liar, c"liar", 4, [2, 1, 0, 0], [1, 2, 0, 0]);
// Each of the following is one test's own, so that what it does to it
// (quarantine, retirement) touches no other test: one whose registration
// is dropped while an object uses it; one quarantined while a swap off it
// is stuck; the innocent and the guilty of the blame test; one that
// misbehaves once retired.
object_impl!(Retiree, c"retiree", 5, [1, 0, 0, 0], [1, 0, 0, 0]);
object_impl!(Stray, c"stray", 6, [1, 0, 0, 0], [1, 0, 0, 0]);
object_impl!(Culprit, c"culprit", 7, [1, 0, 0, 0], [1, 0, 0, 0]);
object_impl!(Innocent, c"innocent", 8, [1, 0, 0, 0], [1, 0, 0, 0]);
object_impl!(Lapsed, c"lapsed", 10, [1, 0, 0, 0], [1, 0, 0, 0]);

/// A second interface with `hstest`'s method table, that a test can
/// unregister.
struct Second;

impl api::Interface for Second {
    const NAME: &'static CStr = c"hstest_second";
    const METHODS_VERSION: u32 = 1;
    type Methods = TestOps;
}

// `Second`'s implementation.
object_impl!(SecondObj: Second, c"second", 9, [1, 0, 0, 0], [1, 0, 0, 0]);

struct PlusOne;
impl Implementation for PlusOne {
    type Interface = Hstest;
    const NAME: &'static CStr = c"plus_one";
    fn ops() -> ImplTable<Hstest> {
        interposer_ops(&PLUS_ONE_OPS)
    }
}

struct Counter;
impl Implementation for Counter {
    type Interface = Hstest;
    const NAME: &'static CStr = c"counter";
    fn ops() -> ImplTable<Hstest> {
        interposer_ops(&COUNTER_OPS)
    }
}

struct CoreTestModule {
    // Fields drop in declaration order: implementations, then the
    // interface they belong to.
    _impls: KVec<Registration>,
    _interface: InterfaceRegistration,
}

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init.
    unsafe(uninit) static ALPHA_TABLE: Mutex<usize> = 0;
}

impl kernel::Module for CoreTestModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Called once, before the tests run.
        unsafe {
            QUARANTINE.init();
            ALPHA_TABLE.init();
        }
        let interface = InterfaceRegistration::new::<Hstest>(module)?;
        let mut impls = KVec::new();
        let alpha = Registration::new::<Alpha>(module)?;
        *ALPHA_TABLE.lock() = core::ptr::from_ref(alpha.ops()) as usize;
        impls.push(alpha, GFP_KERNEL)?;
        impls.push(Registration::new::<Beta>(module)?, GFP_KERNEL)?;
        impls.push(Registration::new::<Gamma>(module)?, GFP_KERNEL)?;
        impls.push(Registration::new::<Liar>(module)?, GFP_KERNEL)?;
        impls.push(Registration::new::<PlusOne>(module)?, GFP_KERNEL)?;
        impls.push(Registration::new::<Counter>(module)?, GFP_KERNEL)?;
        Ok(Self {
            _impls: impls,
            _interface: interface,
        })
    }
}

impl Drop for CoreTestModule {
    fn drop(&mut self) {
        // Objects pin this module, so every object of its implementations
        // is destroyed and past its grace period: nobody can reach the
        // quarantine any more. A static is never dropped, so free it here
        // (kmemleak reported every destroyed test object as leaked).
        *QUARANTINE.lock() = KVec::new();
    }
}

/// `add(n)` through a raw slot handle.
fn call_add(slot: *const c_void, n: u64) -> Result<u64> {
    let mut call = Call::new();
    // SAFETY: `slot` is a live handle; `call` a valid out pointer.
    api::to_result(unsafe { api::hotswap_call_begin(slot, &mut call) })?;
    // SAFETY: Every layer of an `hstest` slot has a `TestOps` table.
    let ret = unsafe { ((*call.methods.cast::<TestOps>()).add)(call.obj, &call, n) };
    // SAFETY: Begun above.
    unsafe { api::hotswap_call_end(&mut call) };
    Ok(ret)
}

fn add(obj: &api::Object<Hstest>, n: u64) -> Result<u64> {
    call_add(obj.slot(), n)
}

fn tag(obj: &api::Object<Hstest>) -> Result<u32> {
    obj.call(|methods, o, call| {
        // SAFETY: Every layer of an `hstest` slot has a `TestOps` table.
        unsafe { (methods.tag)(o, call) }
    })
}

fn create(name: &CStr, initial: u64) -> Result<api::Object<Hstest>> {
    // SAFETY: `hstest` objects take a `u64`, live for the call.
    unsafe { api::Object::<Hstest>::create(Some(name), core::ptr::from_ref(&initial).cast()) }
}

fn swap(obj: &api::Object<Hstest>, name: &CStr, timeout_ms: u32) -> (c_int, api::SwapReport) {
    let mut report = api::SwapReport::default();
    // SAFETY: Live handle, NUL-terminated name, valid report pointer.
    let ret =
        unsafe { api::hotswap_object_swap(obj.slot(), name.as_ptr(), timeout_ms, &mut report) };
    (ret, report)
}

fn interpose(obj: &api::Object<Hstest>, name: &CStr) -> c_int {
    // SAFETY: Live handle, NUL-terminated name.
    unsafe { api::hotswap_object_interpose(obj.slot(), name.as_ptr()) }
}

fn uninterpose(obj: &api::Object<Hstest>, name: &CStr) -> c_int {
    // SAFETY: Live handle, NUL-terminated name.
    unsafe { api::hotswap_object_uninterpose(obj.slot(), name.as_ptr()) }
}

fn phase(obj: &api::Object<Hstest>) -> u32 {
    // SAFETY: Live handle.
    unsafe { api::hotswap_object_phase(obj.slot()) }
}

/// Runs `f` on a workqueue thread; the returned flag turns true when done.
fn spawn(f: impl FnOnce() + Send + 'static) -> Result<kernel::sync::Arc<Atomic<bool>>> {
    let done = kernel::sync::Arc::new(Atomic::new(false), GFP_KERNEL)?;
    let flag = done.clone();
    kernel::workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
        f();
        flag.store(true, Release);
    })?;
    Ok(done)
}

/// A slot handle that may cross to a worker thread.
#[derive(Clone, Copy)]
struct SendSlot(*const c_void);
// SAFETY: Slot handles may be used from any thread.
unsafe impl Send for SendSlot {}

impl SendSlot {
    /// The handle (a method, so closures capture the whole `SendSlot`).
    fn get(self) -> *const c_void {
        self.0
    }
}

const FORWARD: u32 = 1;
const BLOCKED: u32 = 2;

/// Once a swap is in Forward, waits until a call starting now is surely
/// not one the Forward grace period waits for. A slot's grace period (SRCU's
/// algorithm, `read_side.c`) waits for readers on the counter index that
/// was current when it started, and flips the index only after an RCU
/// grace period; a call entering before
/// the flip is waited for in Forward, like the calls that predate the
/// mediator. Half a second is many RCU grace periods, even under TCG.
fn let_forward_flip() {
    kernel::time::delay::fsleep(kernel::time::Delta::from_millis(500));
}

/// The flag a spawned piece of work sets when done.
type Done = kernel::sync::Arc<Atomic<bool>>;

/// Holds a call to `obj` (on `RELEASE`) and starts a swap of `obj` to
/// `target` with a `timeout_ms` phase timeout (in its own thread, which
/// asserts it returns `expect`), held in Forward by that call. Returns the
/// call's and the swap's flags.
fn swap_held_in_forward(
    obj: &api::Object<Hstest>,
    target: &'static CStr,
    timeout_ms: u32,
    expect: c_int,
) -> Result<(Done, Done)> {
    let slot = SendSlot(obj.slot());
    RELEASE.store(false, Release);
    let early = spawn(move || {
        let _ = call_add(slot.get(), HOLD);
    })?;
    assert!(wait_for(|| HELD.load(Acquire) == 1));
    let swapper = spawn(move || {
        // SAFETY: Live handle, NUL-terminated name.
        let ret = unsafe {
            api::hotswap_object_swap(
                slot.get(),
                target.as_ptr(),
                timeout_ms,
                core::ptr::null_mut(),
            )
        };
        assert_eq!(ret, expect);
    })?;
    assert!(wait_for(|| phase(obj) == FORWARD));
    Ok((early, swapper))
}

/// Starts a swap of `obj` to `target` (in its own thread, which asserts it
/// completes) and holds it in Blocked: an early call (on `RELEASE`) keeps
/// it in Forward until a tracked call (on `RELEASE2`, still held on
/// return) has begun, then ends. Returns the early call's, the swap's and
/// the tracked call's flags.
fn swap_held_in_blocked(
    obj: &api::Object<Hstest>,
    target: &'static CStr,
) -> Result<(Done, Done, Done)> {
    RELEASE2.store(false, Release);
    let (early, swapper) = swap_held_in_forward(obj, target, 10_000, 0)?;
    let slot = SendSlot(obj.slot());
    let_forward_flip();
    // A tracked call, held on the second gate: Blocked waits for it.
    let tracked = spawn(move || {
        let _ = call_add(slot.get(), HOLD2);
    })?;
    assert!(wait_for(|| HELD.load(Acquire) == 2));
    // The early call ends: the grace period can end, Blocked begins.
    RELEASE.store(true, Release);
    assert!(wait_for(|| phase(obj) == BLOCKED));
    Ok((early, swapper, tracked))
}

#[kunit_tests(hotswap_core)]
mod tests {
    use super::*;

    #[test]
    fn call_through_slot() -> Result {
        let obj = create(c"alpha", 10)?;
        assert!(obj.id() != 0);
        assert_eq!(add(&obj, 5)?, 15);
        assert_eq!(tag(&obj)?, 1);
        assert_eq!(phase(&obj), 0);
        Ok(())
    }

    #[test]
    fn unknown_or_wrong_kind_is_refused() -> Result {
        assert_eq!(create(c"nosuch", 0).err(), Some(ENOENT));
        // An interposer cannot be an object, nor an object an interposer.
        assert_eq!(create(c"counter", 0).err(), Some(EINVAL));
        let obj = create(c"alpha", 0)?;
        assert_eq!(interpose(&obj, c"beta"), EINVAL.to_errno());
        let (ret, _) = swap(&obj, c"counter", 0);
        assert_eq!(ret, EINVAL.to_errno());
        Ok(())
    }

    #[test]
    fn interposers_stack_and_any_one_can_go() -> Result {
        let obj = create(c"alpha", 0)?;
        api::to_result(interpose(&obj, c"plus_one"))?;
        assert_eq!(add(&obj, 1)?, 2);
        api::to_result(interpose(&obj, c"counter"))?;
        let before = INTERPOSED_CALLS.load(Relaxed);
        assert_eq!(add(&obj, 1)?, 4);
        assert_eq!(INTERPOSED_CALLS.load(Relaxed), before + 1);
        // Remove the inner one; the outer keeps counting.
        api::to_result(uninterpose(&obj, c"plus_one"))?;
        assert_eq!(add(&obj, 1)?, 5);
        assert_eq!(INTERPOSED_CALLS.load(Relaxed), before + 2);
        assert_eq!(uninterpose(&obj, c"plus_one"), ENOENT.to_errno());
        api::to_result(uninterpose(&obj, c"counter"))?;
        assert_eq!(add(&obj, 1)?, 6);
        assert_eq!(INTERPOSED_CALLS.load(Relaxed), before + 2);
        assert_eq!(tag(&obj)?, 1);
        Ok(())
    }

    #[test]
    fn swap_moves_state_both_ways() -> Result {
        let obj = create(c"alpha", 0)?;
        assert_eq!(add(&obj, 7)?, 7);
        let (ret, report) = swap(&obj, c"beta", 0);
        assert_eq!(ret, 0);
        assert_eq!(report.completed, 1);
        assert_eq!(report.format, 1);
        assert_eq!(tag(&obj)?, 2);
        assert_eq!(add(&obj, 1)?, 8);
        let (ret, report) = swap(&obj, c"alpha", 0);
        assert_eq!((ret, report.format), (0, 1));
        assert_eq!(tag(&obj)?, 1);
        assert_eq!(add(&obj, 0)?, 8);
        // Swapping to the implementation it is on changes nothing.
        assert_eq!(swap(&obj, c"alpha", 0).0, 0);
        Ok(())
    }

    #[test]
    fn swap_under_interposers_keeps_them() -> Result {
        let obj = create(c"alpha", 0)?;
        api::to_result(interpose(&obj, c"plus_one"))?;
        assert_eq!(swap(&obj, c"beta", 0).0, 0);
        assert_eq!(tag(&obj)?, 2);
        assert_eq!(add(&obj, 1)?, 2);
        Ok(())
    }

    #[test]
    fn no_common_format_aborts_in_transfer() -> Result {
        let obj = create(c"alpha", 3)?;
        let (ret, report) = swap(&obj, c"gamma", 0);
        assert_eq!(ret, ENOPROTOOPT.to_errno());
        assert_eq!((report.completed, report.phase), (0, 3));
        assert_eq!(tag(&obj)?, 1);
        assert_eq!(add(&obj, 0)?, 3);
        Ok(())
    }

    #[test]
    fn transfer_errors_abort_and_keep_state() -> Result {
        let obj = create(c"alpha", 5)?;
        FAIL_IMPORT.store(true, Release);
        let (ret, report) = swap(&obj, c"beta", 0);
        FAIL_IMPORT.store(false, Release);
        assert_eq!(
            (ret, report.completed, report.phase),
            (EIO.to_errno(), 0, 3)
        );
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (1, 5));

        FAIL_EXPORT.store(true, Release);
        let (ret, _) = swap(&obj, c"beta", 0);
        FAIL_EXPORT.store(false, Release);
        assert_eq!(ret, EIO.to_errno());
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (1, 5));

        // Nothing was left half-done: the next swap just works.
        assert_eq!(swap(&obj, c"beta", 0).0, 0);
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (2, 5));
        Ok(())
    }

    #[test]
    fn a_misbehaving_implementation_is_quarantined_and_its_objects_ejected() -> Result {
        let obj = create(c"liar", 5)?;
        let other = create(c"liar", 6)?;
        EXPORT_OUT_OF_RANGE.store(true, Release);
        let (ret, _) = swap(&obj, c"beta", 0);
        EXPORT_OUT_OF_RANGE.store(false, Release);
        // The swap aborted with the state given back...
        assert_eq!(ret, EPROTO.to_errno());
        // ...and liar's objects, both, move to the known-good alpha on
        // their own (hotswap's workqueue), state and all.
        assert!(wait_for(|| tag(&obj) == Ok(1) && tag(&other) == Ok(1)));
        assert_eq!((add(&obj, 0)?, add(&other, 0)?), (5, 6));
        // Refused from now on, for new objects and for swaps.
        assert_eq!(create(c"liar", 0).err(), Some(ENOTRECOVERABLE));
        // The ejecting batch may still hold the slot while it settles.
        let mut ret = 0;
        assert!(wait_for(|| {
            ret = swap(&obj, c"liar", 0).0;
            ret != EBUSY.to_errno()
        }));
        assert_eq!(ret, ENOTRECOVERABLE.to_errno());
        assert_eq!(tag(&obj)?, 1);
        Ok(())
    }

    #[test]
    fn an_object_whose_swap_off_a_quarantined_implementation_aborts_is_ejected() -> Result {
        let module = &<super::CoreTestModule as kernel::ModuleMetadata>::THIS_MODULE;
        let reg = Registration::new::<Stray>(module)?;
        let obj = create(c"stray", 3)?;
        // A swap away from stray, held in Forward by a stuck call for
        // longer than the ejection keeps trying a busy object.
        let (stuck, swapper) = swap_held_in_forward(&obj, c"beta", 3000, ETIMEDOUT.to_errno())?;
        obj.misbehaved(c"test: caught lying");
        // The swap gives up and the object is back on stray...
        assert!(wait_for(|| swapper.load(Acquire)));
        RELEASE.store(true, Release);
        assert!(wait_for(|| stuck.load(Acquire)));
        // ...which it must still leave, for the known-good alpha.
        assert!(wait_for(|| tag(&obj) == Ok(1)));
        assert_eq!(add(&obj, 0)?, 3);
        drop(obj);
        drop(reg);
        Ok(())
    }

    #[test]
    fn phases_forward_blocked_and_completed() -> Result {
        let obj = create(c"alpha", 0)?;
        // A call that started before the swap: Forward must wait for it.
        let (early, swapper) = swap_held_in_forward(&obj, c"beta", 10_000, 0)?;
        // Calls during Forward are tracked and served by the old object.
        assert_eq!(tag(&obj)?, 1);
        RELEASE.store(true, Release);
        assert!(wait_for(|| early.load(Acquire)));
        assert!(wait_for(|| swapper.load(Acquire)));
        assert_eq!(phase(&obj), 0);
        assert_eq!(tag(&obj)?, 2);
        Ok(())
    }

    #[test]
    fn a_report_from_a_call_blames_the_object_that_served_it() -> Result {
        let module = &<super::CoreTestModule as kernel::ModuleMetadata>::THIS_MODULE;
        let innocent = Registration::new::<Innocent>(module)?;
        let culprit = Registration::new::<Culprit>(module)?;
        let obj = create(c"innocent", 0)?;
        let slot = SendSlot(obj.slot());
        // A swap to culprit, held in Blocked by a tracked call.
        let (early, swapper, tracked) = swap_held_in_blocked(&obj, c"culprit")?;
        // A call that waits in Blocked, is served by culprit once the swap
        // completes, and reports it while still inside.
        let reporter = spawn(move || {
            let mut call = Call::new();
            // SAFETY: Live handle; `call` is a valid out pointer.
            assert_eq!(unsafe { api::hotswap_call_begin(slot.get(), &mut call) }, 0);
            // SAFETY: `call` is live; the reason is NUL-terminated.
            unsafe { api::hotswap_call_misbehaved(&call, c"test: bad answer".as_ptr()) };
            // SAFETY: Begun above.
            unsafe { api::hotswap_call_end(&mut call) };
        })?;
        RELEASE2.store(true, Release);
        assert!(wait_for(|| early.load(Acquire) && tracked.load(Acquire)));
        assert!(wait_for(|| swapper.load(Acquire) && reporter.load(Acquire)));
        // Culprit is quarantined (and the object leaves it for alpha);
        // innocent is not.
        assert_eq!(create(c"culprit", 0).err(), Some(ENOTRECOVERABLE));
        drop(create(c"innocent", 0)?);
        assert!(wait_for(|| tag(&obj) == Ok(1)));
        drop(obj);
        drop(culprit);
        drop(innocent);
        Ok(())
    }

    #[test]
    fn blocked_waits_callers_and_resumes_them_on_new() -> Result {
        let obj = create(c"alpha", 0)?;
        let slot = SendSlot(obj.slot());
        let (early, swapper, tracked) = swap_held_in_blocked(&obj, c"beta")?;
        // A new caller now waits...
        let blocked = spawn(move || {
            assert_eq!(call_add(slot.get(), 1), Ok(1));
        })?;
        kernel::time::delay::fsleep(kernel::time::Delta::from_millis(50));
        assert!(!blocked.load(Acquire));
        assert_eq!(phase(&obj), BLOCKED);
        // ...until the tracked call drains; then it runs on the new object.
        RELEASE2.store(true, Release);
        assert!(wait_for(|| early.load(Acquire) && tracked.load(Acquire)));
        assert!(wait_for(|| swapper.load(Acquire) && blocked.load(Acquire)));
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (2, 1));
        Ok(())
    }

    #[test]
    fn recursive_call_passes_through_blocked() -> Result {
        let obj = create(c"alpha", 0)?;
        let slot = SendSlot(obj.slot());
        RECURSE_SLOT.store(obj.slot() as usize, Release);
        RELEASE.store(false, Release);
        let early = spawn(move || {
            let _ = call_add(slot.get(), HOLD);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 1));
        let swapper = spawn(move || {
            let mut report = api::SwapReport::default();
            // SAFETY: Live handle, NUL-terminated name.
            let ret = unsafe {
                api::hotswap_object_swap(slot.get(), c"beta".as_ptr(), 10_000, &mut report)
            };
            assert_eq!(ret, 0);
            assert_eq!(report.completed, 1);
        })?;
        assert!(wait_for(|| phase(&obj) == FORWARD));
        let_forward_flip();
        // Tracked call that, once Blocked, calls the slot again.
        let recursive = spawn(move || {
            assert_eq!(call_add(slot.get(), RECURSE), Ok(1));
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 2));
        RELEASE.store(true, Release);
        assert!(wait_for(|| early.load(Acquire)));
        assert!(wait_for(
            || phase(&obj) == BLOCKED || recursive.load(Acquire)
        ));
        assert!(wait_for(|| recursive.load(Acquire) && swapper.load(Acquire)));
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (2, 1));
        Ok(())
    }

    #[test]
    fn stuck_call_times_out_in_forward() -> Result {
        let obj = create(c"alpha", 4)?;
        let slot = SendSlot(obj.slot());
        RELEASE.store(false, Release);
        let stuck = spawn(move || {
            let _ = call_add(slot.get(), HOLD);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 1));
        let (ret, report) = swap(&obj, c"beta", 100);
        assert_eq!(ret, ETIMEDOUT.to_errno());
        assert_eq!((report.completed, report.phase), (0, FORWARD));
        // Still on the old object, state intact, callers not blocked.
        assert_eq!((tag(&obj)?, add(&obj, 1)?), (1, 5));
        RELEASE.store(true, Release);
        assert!(wait_for(|| stuck.load(Acquire)));
        assert_eq!(swap(&obj, c"beta", 0).0, 0);
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (2, 5));
        Ok(())
    }

    #[test]
    fn stuck_tracked_call_times_out_in_blocked() -> Result {
        let obj = create(c"alpha", 0)?;
        let slot = SendSlot(obj.slot());
        RELEASE.store(false, Release);
        RELEASE2.store(false, Release);
        let early = spawn(move || {
            let _ = call_add(slot.get(), HOLD);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 1));
        let result = kernel::sync::Arc::new(Atomic::new(0i64), GFP_KERNEL)?;
        let seen = result.clone();
        let swapper = spawn(move || {
            let mut report = api::SwapReport::default();
            // SAFETY: Live handle, NUL-terminated name.
            unsafe { api::hotswap_object_swap(slot.get(), c"beta".as_ptr(), 2_000, &mut report) };
            seen.store(i64::from(report.phase) * 1000 + report.in_flight, Release);
        })?;
        assert!(wait_for(|| phase(&obj) == FORWARD));
        let_forward_flip();
        let tracked = spawn(move || {
            let _ = call_add(slot.get(), HOLD2);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 2));
        RELEASE.store(true, Release);
        assert!(wait_for(|| swapper.load(Acquire)));
        // Aborted in Blocked with the one tracked call in flight...
        assert_eq!(result.load(Acquire), i64::from(BLOCKED) * 1000 + 1);
        // ...and back on the old object, which the held call still uses.
        assert_eq!(tag(&obj)?, 1);
        RELEASE2.store(true, Release);
        assert!(wait_for(|| early.load(Acquire) && tracked.load(Acquire)));
        Ok(())
    }

    #[test]
    fn objects_pin_their_implementation() -> Result {
        let module = &<super::CoreTestModule as kernel::ModuleMetadata>::THIS_MODULE;
        // SAFETY: This module is live while its tests run.
        let refs = || unsafe { kernel::bindings::module_refcount(module.as_ptr()) };
        let before = refs();
        let obj = create(c"alpha", 0)?;
        assert_eq!(refs(), before + 1);
        let table = *ALPHA_TABLE.lock() as *const ImplOps;
        // SAFETY: `table` is alpha's registered table.
        assert_eq!(
            unsafe { api::hotswap_unregister_impl(table) },
            EBUSY.to_errno()
        );
        drop(obj);
        assert_eq!(refs(), before);
        Ok(())
    }

    #[test]
    fn a_registration_dropped_in_use_retires_its_implementation() -> Result {
        let module = &<super::CoreTestModule as kernel::ModuleMetadata>::THIS_MODULE;
        let reg = Registration::new::<Retiree>(module)?;
        let obj = create(c"retiree", 7)?;
        // Its module stays (the object pins it), but the table goes.
        drop(reg);
        // No longer registered: no new objects on it, and its name is free.
        assert!(!api::impl_registered(c"hstest", c"retiree"));
        assert_eq!(create(c"retiree", 1).err(), Some(ENOENT));
        assert_eq!(swap(&obj, c"retiree", 1000).0, ENOENT.to_errno());
        let again = Registration::new::<Retiree>(module)?;
        // The object keeps working on the retired implementation, and can
        // leave it.
        assert_eq!(tag(&obj)?, 5);
        assert_eq!(add(&obj, 1)?, 8);
        // To the new registration of its name: a real swap.
        let (ret, report) = swap(&obj, c"retiree", 1000);
        assert_eq!((ret, report.completed), (0, 1));
        assert_eq!(swap(&obj, c"alpha", 1000).0, 0);
        assert_eq!((tag(&obj)?, add(&obj, 1)?), (1, 9));
        drop(obj);
        drop(again);
        Ok(())
    }

    #[test]
    fn an_interface_name_stays_taken_while_a_retired_implementation_has_objects() -> Result {
        let module = &<super::CoreTestModule as kernel::ModuleMetadata>::THIS_MODULE;
        let iface = InterfaceRegistration::new::<Second>(module)?;
        let reg = Registration::new::<SecondObj>(module)?;
        let initial = 4u64;
        // SAFETY: `Second` objects take a `u64`, live for the call.
        let obj = unsafe {
            api::Object::<Second>::create(Some(c"second"), core::ptr::from_ref(&initial).cast())
        }?;
        drop(reg);
        drop(iface);
        // Another interface of that name (which could have another method
        // table) must not meet `obj`.
        assert_eq!(
            InterfaceRegistration::new::<Second>(module).err(),
            Some(EBUSY)
        );
        assert_eq!(
            obj.call(|m, o, c| {
                // SAFETY: `obj`'s layers all have `TestOps` tables.
                unsafe { (m.tag)(o, c) }
            }),
            Ok(9)
        );
        drop(obj);
        // Free once the object is gone (its implementation lets go after
        // the object's grace period).
        let mut again = None;
        assert!(wait_for(|| {
            again = InterfaceRegistration::new::<Second>(module).ok();
            again.is_some()
        }));
        drop(again);
        Ok(())
    }

    #[test]
    fn a_retired_implementation_that_misbehaves_is_ejected_too() -> Result {
        let module = &<super::CoreTestModule as kernel::ModuleMetadata>::THIS_MODULE;
        let reg = Registration::new::<Lapsed>(module)?;
        let obj = create(c"lapsed", 2)?;
        drop(reg);
        // A fresh registration of the name: innocent, it keeps its objects.
        let fresh = Registration::new::<Lapsed>(module)?;
        let bystander = create(c"lapsed", 5)?;
        obj.misbehaved(c"test: lapsed");
        assert!(wait_for(|| tag(&obj) == Ok(1)));
        assert_eq!(add(&obj, 0)?, 2);
        assert_eq!((tag(&bystander)?, add(&bystander, 0)?), (10, 5));
        drop(bystander);
        drop(obj);
        drop(fresh);
        Ok(())
    }

    #[test]
    fn batched_swap_of_a_thousand_objects() -> Result {
        let mut objs = KVec::new();
        for i in 0..1000u64 {
            objs.push(create(c"alpha", i)?, GFP_KERNEL)?;
        }
        let (mut done, mut aborted) = (0u32, 0u32);
        // SAFETY: NUL-terminated names, valid out pointers.
        let ret = unsafe {
            api::hotswap_swap_all(
                INTERFACE.as_ptr(),
                c"beta".as_ptr(),
                0,
                &mut done,
                &mut aborted,
            )
        };
        // Objects other tests keep alive (`objects=`) are swapped too.
        assert_eq!((ret, aborted), (0, 0));
        assert!(done >= 1000);
        for (i, obj) in objs.iter().enumerate() {
            assert_eq!((tag(obj)?, add(obj, 0)?), (2, i as u64));
        }
        // SAFETY: As above; restore the default for the other tests.
        unsafe {
            api::hotswap_swap_all(
                INTERFACE.as_ptr(),
                c"alpha".as_ptr(),
                0,
                &mut done,
                &mut aborted,
            )
        };
        assert!(done >= 1000);
        Ok(())
    }

    #[test]
    fn concurrent_callers_while_swapping() -> Result {
        const PER_WORKER: u64 = 20_000;
        let obj = create(c"alpha", 0)?;
        let slot = SendSlot(obj.slot());
        let dead_before = DEAD_CALLS.load(Acquire);
        let failures = kernel::sync::Arc::new(Atomic::new(0u64), GFP_KERNEL)?;
        let mut workers = KVec::new();
        for _ in 0..2 {
            let failures = failures.clone();
            workers.push(
                spawn(move || {
                    for _ in 0..PER_WORKER {
                        if call_add(slot.get(), 1).is_err() {
                            failures.add(1, Relaxed);
                        }
                    }
                })?,
                GFP_KERNEL,
            )?;
        }
        let mut swaps = 0;
        let mut aborted = 0;
        while !workers.iter().all(|w| w.load(Acquire)) || swaps < 200 {
            let target = if swaps % 2 == 0 { c"beta" } else { c"alpha" };
            let (ret, _) = swap(&obj, target, 5_000);
            if ret == 0 {
                swaps += 1;
            } else {
                aborted += 1;
            }
            assert!(aborted < 10);
        }
        assert!(wait_for(|| workers.iter().all(|w| w.load(Acquire))));
        assert_eq!(failures.load(Acquire), 0);
        // Every call counted exactly once, none served by a freed object.
        assert_eq!(add(&obj, 0)?, 2 * PER_WORKER);
        assert_eq!(DEAD_CALLS.load(Acquire), dead_before);
        Ok(())
    }

    /// What `swap_all` of `hstest` to `name` reported: completed * 1000 +
    /// aborted (the objects other tests keep count too).
    fn swap_all_report(name: &'static CStr, timeout_ms: u32) -> i64 {
        let (mut done, mut aborted) = (0u32, 0u32);
        // SAFETY: NUL-terminated names, valid out pointers.
        unsafe {
            api::hotswap_swap_all(
                INTERFACE.as_ptr(),
                name.as_ptr(),
                timeout_ms,
                &mut done,
                &mut aborted,
            )
        };
        i64::from(done) * 1000 + i64::from(aborted)
    }

    /// Runs `swap_all_report(name, timeout_ms)` on a worker; the result
    /// lands in the returned cell (-1 until then).
    fn swap_all_in_background(
        name: &'static CStr,
        timeout_ms: u32,
    ) -> Result<kernel::sync::Arc<Atomic<i64>>> {
        let result = kernel::sync::Arc::new(Atomic::new(-1i64), GFP_KERNEL)?;
        let seen = result.clone();
        spawn(move || seen.store(swap_all_report(name, timeout_ms), Release))?;
        Ok(result)
    }

    #[test]
    fn a_stuck_object_holds_up_nobody_else_in_a_batch() -> Result {
        // Each object of a batch moves on by itself: one whose tracked
        // call is stuck aborts alone at its deadline, and the others
        // complete as soon as their own calls drain (they used to wait in
        // Blocked for the stuck one's whole timeout).
        let stuck = create(c"alpha", 1)?;
        let free = create(c"alpha", 2)?;
        let slot = SendSlot(stuck.slot());
        RELEASE.store(false, Release);
        RELEASE2.store(false, Release);
        let early = spawn(move || {
            let _ = call_add(slot.get(), HOLD);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 1));
        let result = swap_all_in_background(c"beta", 3_000)?;
        assert!(wait_for(|| phase(&stuck) == FORWARD));
        let_forward_flip();
        let tracked = spawn(move || {
            let _ = call_add(slot.get(), HOLD2);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 2));
        RELEASE.store(true, Release);
        // While the stuck object waits in Blocked, the free one is done:
        // a call on it returns at once, from the new implementation.
        let stuck_blocked = wait_for(|| phase(&stuck) == BLOCKED);
        let free_tag = tag(&free);
        let stuck_phase = phase(&stuck);
        assert!(wait_for(|| result.load(Acquire) >= 0));
        RELEASE2.store(true, Release);
        assert!(wait_for(|| early.load(Acquire) && tracked.load(Acquire)));
        assert!(stuck_blocked);
        assert_eq!(free_tag, Ok(2));
        assert_eq!(stuck_phase, BLOCKED);
        assert_eq!(result.load(Acquire) % 1000, 1);
        assert_eq!((tag(&stuck)?, add(&stuck, 0)?), (1, 1));
        assert_eq!((tag(&free)?, add(&free, 0)?), (2, 2));
        swap_all_report(c"alpha", 0);
        Ok(())
    }

    #[test]
    fn a_call_into_another_object_of_the_batch_lets_both_complete() -> Result {
        // A's tracked call calls B while B is Blocked: it waits for B to
        // complete, then A drains. Both complete.
        let a = create(c"alpha", 0)?;
        let b = create(c"alpha", 0)?;
        let (slot_a, slot_b) = (SendSlot(a.slot()), SendSlot(b.slot()));
        RECURSE_SLOT.store(b.slot() as usize, Release);
        RELEASE.store(false, Release);
        RELEASE2.store(false, Release);
        let early_a = spawn(move || {
            let _ = call_add(slot_a.get(), HOLD);
        })?;
        let early_b = spawn(move || {
            let _ = call_add(slot_b.get(), HOLD);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 2));
        let result = swap_all_in_background(c"beta", 5_000)?;
        assert!(wait_for(|| phase(&a) == FORWARD && phase(&b) == FORWARD));
        let_forward_flip();
        let recursive = spawn(move || {
            let _ = call_add(slot_a.get(), RECURSE);
        })?;
        let tracked_b = spawn(move || {
            let _ = call_add(slot_b.get(), HOLD2);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 4));
        RELEASE.store(true, Release);
        assert!(wait_for(|| phase(&b) == BLOCKED));
        kernel::time::delay::fsleep(kernel::time::Delta::from_millis(300));
        RELEASE2.store(true, Release);
        assert!(wait_for(|| result.load(Acquire) >= 0));
        assert!(wait_for(|| {
            early_a.load(Acquire)
                && early_b.load(Acquire)
                && recursive.load(Acquire)
                && tracked_b.load(Acquire)
        }));
        assert_eq!(result.load(Acquire) % 1000, 0);
        assert_eq!((tag(&a)?, tag(&b)?), (2, 2));
        assert_eq!(add(&b, 0)?, 1);
        swap_all_report(c"alpha", 0);
        Ok(())
    }

    /// A swap of an object to `beta`, held in Blocked by a tracked call.
    struct HeldInBlocked {
        early: kernel::sync::Arc<Atomic<bool>>,
        tracked: kernel::sync::Arc<Atomic<bool>>,
        swapper: kernel::sync::Arc<Atomic<bool>>,
    }

    impl HeldInBlocked {
        /// Starts the swap of `obj`: an early call keeps it in Forward
        /// until `during_forward` has run (past the flip, so calls it
        /// makes are tracked); then a tracked call held on the second gate
        /// keeps it in Blocked.
        fn start(
            obj: &api::Object<Hstest>,
            during_forward: impl FnOnce() -> Result,
        ) -> Result<Self> {
            let slot = SendSlot(obj.slot());
            RELEASE.store(false, Release);
            RELEASE2.store(false, Release);
            let early = spawn(move || {
                let _ = call_add(slot.get(), HOLD);
            })?;
            assert!(wait_for(|| HELD.load(Acquire) == 1));
            let swapper = spawn(move || {
                // SAFETY: Live handle, NUL-terminated name.
                unsafe {
                    api::hotswap_object_swap(
                        slot.get(),
                        c"beta".as_ptr(),
                        10_000,
                        core::ptr::null_mut(),
                    )
                };
            })?;
            assert!(wait_for(|| phase(obj) == FORWARD));
            let_forward_flip();
            during_forward()?;
            let tracked = spawn(move || {
                let _ = call_add(slot.get(), HOLD2);
            })?;
            assert!(wait_for(|| HELD.load(Acquire) == 2));
            RELEASE.store(true, Release);
            assert!(wait_for(|| phase(obj) == BLOCKED));
            Ok(Self {
                early,
                tracked,
                swapper,
            })
        }

        /// Lets the tracked call go and waits for the swap to end.
        fn finish(self) {
            RELEASE2.store(true, Release);
            assert!(wait_for(|| {
                self.early.load(Acquire) && self.tracked.load(Acquire) && self.swapper.load(Acquire)
            }));
        }
    }

    /// A `Call` handed to another thread.
    struct SendCall(Call);
    // SAFETY: A call may be ended on any thread.
    unsafe impl Send for SendCall {}

    #[test]
    fn a_call_ended_by_another_task_leaves_no_pass_behind() -> Result {
        // The call this thread began (tracked) is ended by a worker: the
        // entry for this thread goes with it, so its next call in Blocked
        // waits like anyone's instead of passing through to the old object.
        let obj = create(c"alpha", 0)?;
        let held = HeldInBlocked::start(&obj, || {
            let mut call = Call::new();
            // SAFETY: Live handle; `call` is a valid out pointer.
            api::to_result(unsafe { api::hotswap_call_begin(obj.slot(), &mut call) })?;
            assert_eq!(call.tracked, 1);
            let handed = SendCall(call);
            let ender = spawn(move || {
                let mut handed = handed;
                // SAFETY: Begun above, ended once, here.
                unsafe { api::hotswap_call_end(&mut handed.0) };
            })?;
            assert!(wait_for(|| ender.load(Acquire)));
            Ok(())
        })?;
        let releaser = spawn(|| {
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(300));
            RELEASE2.store(true, Release);
        })?;
        let served_by = tag(&obj);
        held.finish();
        assert!(wait_for(|| releaser.load(Acquire)));
        assert_eq!(served_by, Ok(2));
        Ok(())
    }

    #[test]
    fn the_swap_calling_into_its_own_object_gets_edeadlk() -> Result {
        // An export that calls back into the object being swapped would
        // wait for its own swap: it gets EDEADLK, and the swap completes.
        let obj = create(c"alpha", 3)?;
        EXPORT_CALL_RESULT.store(0, Release);
        EXPORT_CALLS_INTO.store(obj.slot() as usize, Release);
        let (ret, report) = swap(&obj, c"beta", 2_000);
        EXPORT_CALLS_INTO.store(0, Release);
        assert_eq!((ret, report.completed), (0, 1));
        assert_eq!(EXPORT_CALL_RESULT.load(Acquire), EDEADLK.to_errno());
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (2, 3));
        Ok(())
    }

    #[test]
    fn a_caller_waiting_in_blocked_can_be_interrupted() -> Result {
        // A signal ends the wait at once (ERESTARTSYS: a system call
        // restarts); the swap goes on without the caller.
        let obj = create(c"alpha", 0)?;
        let held = HeldInBlocked::start(&obj, || Ok(()))?;
        signal_self();
        let began = kernel::time::Instant::<kernel::time::Monotonic>::now();
        let interrupted = add(&obj, 1);
        let waited_ms = began.elapsed().as_millis();
        unsignal_self();
        held.finish();
        assert_eq!(interrupted, Err(ERESTARTSYS));
        assert!(waited_ms < 1_000);
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (2, 0));
        Ok(())
    }

    /// Makes this kernel thread take SIGUSR1 and sends it one; undone by
    /// [`unsignal_self`].
    fn signal_self() {
        let signal = kernel::bindings::SIGUSR1 as i32;
        // SAFETY: Lets SIGUSR1 in (`allow_signal`: the handler value 2,
        // SIG_KTHREAD) and sends it to this thread.
        unsafe {
            kernel::bindings::kernel_sigaction(
                signal,
                core::mem::transmute::<usize, kernel::bindings::__sighandler_t>(2),
            );
            kernel::bindings::send_sig(signal, kernel::task::Task::current_raw(), 0);
        }
    }

    /// Drops this thread's pending signals and ignores SIGUSR1 again.
    fn unsignal_self() {
        // SAFETY: SIG_IGN (1), as `disallow_signal` does.
        unsafe {
            kernel::bindings::flush_signals(kernel::task::Task::current_raw());
            kernel::bindings::kernel_sigaction(
                kernel::bindings::SIGUSR1 as i32,
                core::mem::transmute::<usize, kernel::bindings::__sighandler_t>(1),
            );
        }
    }

    #[test]
    fn a_signalled_requester_gets_its_swap_back_at_once() -> Result {
        // A call stuck since before the swap keeps it in Forward: a signal
        // to the requester aborts it there (EINTR) instead of after the
        // whole timeout, and the settling that follows does not wait either.
        let obj = create(c"alpha", 6)?;
        let slot = SendSlot(obj.slot());
        RELEASE.store(false, Release);
        let early = spawn(move || {
            let _ = call_add(slot.get(), HOLD);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 1));
        signal_self();
        let began = kernel::time::Instant::<kernel::time::Monotonic>::now();
        let (ret, report) = swap(&obj, c"beta", 5_000);
        let took_ms = began.elapsed().as_millis();
        unsignal_self();
        RELEASE.store(true, Release);
        assert!(wait_for(|| early.load(Acquire)));
        assert_eq!((ret, report.completed), (EINTR.to_errno(), 0));
        assert!(took_ms < 1_000);
        assert_eq!((tag(&obj)?, add(&obj, 0)?), (1, 6));
        Ok(())
    }

    #[test]
    fn a_settling_batch_lets_go_of_the_objects_it_is_done_with() -> Result {
        // A's swap aborts (a call stuck since before it); its old chain
        // cannot be freed while that call runs, so the batch waits for it
        // until the timeout. B completed long before: it must be free for
        // the next operation meanwhile, not claimed by the batch.
        let a = create(c"alpha", 1)?;
        let b = create(c"alpha", 2)?;
        let slot = SendSlot(a.slot());
        RELEASE.store(false, Release);
        let early = spawn(move || {
            let _ = call_add(slot.get(), HOLD);
        })?;
        assert!(wait_for(|| HELD.load(Acquire) == 1));
        let result = swap_all_in_background(c"beta", 1_500)?;
        assert!(wait_for(|| tag(&b) == Ok(2)));
        // A aborts at 1.5 s; the batch then settles for up to 1.5 s more.
        assert!(wait_for(|| phase(&a) == 0));
        let mut interposed = interpose(&b, c"counter");
        for _ in 0..100 {
            if interposed == 0 || result.load(Acquire) >= 0 {
                break;
            }
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(5));
            interposed = interpose(&b, c"counter");
        }
        let still_settling = result.load(Acquire) < 0;
        RELEASE.store(true, Release);
        assert!(wait_for(|| early.load(Acquire) && result.load(Acquire) >= 0));
        if interposed == 0 {
            api::to_result(uninterpose(&b, c"counter"))?;
        }
        assert!(still_settling);
        assert_eq!(interposed, 0);
        assert_eq!((tag(&a)?, tag(&b)?), (1, 2));
        swap_all_report(c"alpha", 0);
        Ok(())
    }
}
