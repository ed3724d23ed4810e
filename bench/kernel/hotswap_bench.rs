// SPDX-License-Identifier: GPL-2.0
//! hotswap_bench: the in-kernel half of `make bench`, for what only the
//! kernel can time: a call through a slot next to a direct call to the same
//! object, and one `synchronize_rcu()`.
//!
//! ```text
//! echo "call ITERS REPS" > /sys/kernel/debug/hotswap_bench/run
//! echo "rcu REPS"        > /sys/kernel/debug/hotswap_bench/run
//! cat /sys/kernel/debug/hotswap_bench/run     # the last run's results
//! ```
//!
//! Results are one line per measurement: a name, then one value per
//! repetition (`*_ps`: picoseconds per call, `*_ns`: nanoseconds), so the
//! driver (bench/guest/bench.py) computes medians and spread itself.
//! Direct and slot loops alternate within each repetition, so drift in the
//! machine's speed (TCG, other load) hits both sides alike.

use core::ffi::{c_int, c_void, CStr};
use core::fmt::Write;
use core::hint::black_box;
use kernel::debugfs::{Dir, File};
use kernel::prelude::*;
use kernel::sync::{new_mutex, Mutex};
use kernel::time::{Instant, Monotonic};
use kernel::uaccess::UserSliceReader;

#[path = "../../rust/abi/api.rs"]
pub mod api;
#[path = "../../fcm/lib/abi/fcm_api.rs"]
pub mod fcm_api;
#[path = "../../fcm/lib/pages/fcm_conformance.rs"]
pub mod fcm_conformance;
#[path = "../../fcm/lib/pages/fcm_pages.rs"]
pub mod fcm_pages;

use api::{Call, ImplOps, Object};
use fcm_api::{Fcm, FcmCreate, PAGE_SIZE};
use fcm_conformance::TempFile;

module! {
    type: HotswapBench,
    name: "hotswap_bench",
    authors: ["hotswap developers"],
    description: "hotswap benchmarks: slot vs direct calls, synchronize_rcu()",
    license: "GPL",
}

/// The benchmark's own interface: one method that does (almost) nothing,
/// so a loop over it measures the call path and nothing else.
const INTERFACE: &CStr = c"hsbench";

/// The `hsbench` method table.
#[repr(C)]
struct NullOps {
    nop: unsafe extern "C" fn(obj: *mut c_void, call: *const Call, n: u64) -> u64,
}

static NULL_OPS: NullOps = NullOps { nop: null_nop };

/// The `hsbench` interface, as the typed handles see it.
struct Hsbench;

impl api::Interface for Hsbench {
    const NAME: &'static CStr = INTERFACE;
    const METHODS_VERSION: u32 = 1;
    type Methods = NullOps;
}

/// Never inlined: the direct loop must pay for a real call, as any caller
/// through an ops table does.
#[inline(never)]
unsafe extern "C" fn null_nop(obj: *mut c_void, _call: *const Call, n: u64) -> u64 {
    n.wrapping_add(obj as usize as u64)
}

unsafe extern "C" fn null_create(_arg: *const c_void, out: *mut *mut c_void) -> c_int {
    // The object has no state; any stable non-null address names it.
    // SAFETY: `out` is a valid out pointer (the create contract).
    unsafe { *out = core::ptr::from_ref(&NULL_OPS).cast_mut().cast() };
    0
}

unsafe extern "C" fn null_destroy(_obj: *mut c_void, _how: u32) {}

struct NullImpl;

impl api::Implementation for NullImpl {
    type Interface = Hsbench;
    const NAME: &'static CStr = c"null";

    fn ops() -> api::ImplTable<Hsbench> {
        let ops = ImplOps {
            create: Some(null_create),
            destroy: Some(null_destroy),
            ..ImplOps::empty()
        };
        // SAFETY: The null object has no state: `create` stores a stable
        // address, `destroy` does nothing, and `null_nop` only uses the
        // object's address as a number.
        unsafe { api::ImplTable::from_raw(&NULL_OPS, ops) }
    }
}

/// The results of the last run, as the `run` file shows them.
type Output = Mutex<KVec<u8>>;

#[pin_data]
struct HotswapBench {
    // Declared first so it goes first: no run can start during teardown.
    #[pin]
    _run: File<Output>,
    _dir: Dir,
    _null: api::Registration,
    _interface: api::InterfaceRegistration,
}

impl kernel::InPlaceModule for HotswapBench {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"hotswap_bench");
        try_pin_init!(Self {
            _interface: api::InterfaceRegistration::new::<Hsbench>(module)?,
            _null: api::Registration::new::<NullImpl>(module)?,
            _run <- dir.read_write_callback_file(
                c"run",
                new_mutex!(KVec::new()),
                &show_output,
                &run_command,
            ),
            _dir: dir,
        }? Error)
    }
}

fn show_output(output: &Output, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let text = output.lock();
    f.write_str(core::str::from_utf8(&text).map_err(|_| core::fmt::Error)?)
}

/// Text written into a `KVec`; a failed allocation is a formatting error.
struct Report(KVec<u8>);

impl Write for Report {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

impl Report {
    fn line(&mut self, name: &str, values: &[u64]) -> Result {
        let mut write = || -> core::fmt::Result {
            self.write_str(name)?;
            for v in values {
                write!(self, " {v}")?;
            }
            self.write_str("\n")
        };
        write().map_err(|_| ENOMEM)
    }
}

fn run_command(output: &Output, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 64];
    let len = reader.len().min(buf.len());
    reader.read_slice(&mut buf[..len])?;
    let text = core::str::from_utf8(&buf[..len]).map_err(|_| EINVAL)?;
    let mut words = text.split_ascii_whitespace();
    let command = words.next().ok_or(EINVAL)?;
    let mut number = |lo: u64, hi: u64| -> Result<u64> {
        let n: u64 = words.next().ok_or(EINVAL)?.parse().map_err(|_| EINVAL)?;
        if n < lo || n > hi {
            return Err(EINVAL);
        }
        Ok(n)
    };
    let report = match command {
        "call" => {
            let iters = number(1, 100_000_000)?;
            let reps = number(1, 1000)?;
            bench_calls(iters, reps)?
        }
        "rcu" => bench_rcu(number(1, 1000)?)?,
        _ => return Err(EINVAL),
    };
    *output.lock() = report.0;
    Ok(())
}

/// Picoseconds per iteration of `body` over `iters` iterations.
fn per_call_ps(iters: u64, mut body: impl FnMut(u64) -> Result) -> Result<u64> {
    let start = Instant::<Monotonic>::now();
    for i in 0..iters {
        body(i)?;
    }
    let ns = u64::try_from(start.elapsed().as_nanos()).map_err(|_| ERANGE)?;
    ns.saturating_mul(1000).checked_div(iters).ok_or(EINVAL)
}

/// A call through `object`'s slot, captured once: the object and methods
/// a direct caller would hold, for the direct side of a comparison. Valid
/// while `object` lives and nobody swaps it, which the benchmark ensures.
struct Direct<I: api::Interface> {
    ops: *const I::Methods,
    call: Call,
}

impl<I: api::Interface> Direct<I> {
    fn of(object: &Object<I>) -> Result<Self> {
        let (ops, obj) = object.call(|m, o, _| (core::ptr::from_ref(m), o))?;
        let mut call = Call::new();
        call.methods = ops.cast();
        call.obj = obj;
        Ok(Self { ops, call })
    }

    fn ops(&self) -> &I::Methods {
        // SAFETY: The method table is static in the implementation's
        // module, which the object (alive while the benchmark runs) pins.
        unsafe { &*self.ops }
    }
}

/// Timings of one measurement, one per repetition.
struct Series {
    name: &'static str,
    values: KVec<u64>,
}

impl Series {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            values: KVec::new(),
        }
    }

    fn add(&mut self, value: u64) -> Result {
        self.values.push(value, GFP_KERNEL)?;
        Ok(())
    }
}

/// An FCM page hit, direct and through the slot.
struct PageHitSeries {
    fcm: PageHit,
    direct: Series,
    slot: Series,
}

/// The null call and an FCM page hit, each direct and through the slot.
fn bench_calls(iters: u64, reps: u64) -> Result<Report> {
    // SAFETY: The null implementation takes no argument.
    let null = unsafe { Object::<Hsbench>::create(Some(c"null"), core::ptr::null()) }?;
    let null_ops = Direct::of(&null)?;
    let mut null_direct = Series::new("null_direct_ps");
    let mut null_slot = Series::new("null_slot_ps");
    let mut hits = KVec::new();
    for (imp, direct, slot) in [
        (
            c"shared",
            "fcm_shared_hit_direct_ps",
            "fcm_shared_hit_slot_ps",
        ),
        (
            c"distributed",
            "fcm_distributed_hit_direct_ps",
            "fcm_distributed_hit_slot_ps",
        ),
    ] {
        let series = PageHitSeries {
            fcm: PageHit::new(imp)?,
            direct: Series::new(direct),
            slot: Series::new(slot),
        };
        hits.push(series, GFP_KERNEL)?;
    }
    // A page hit copies 4 KiB; fewer iterations keep its time comparable.
    let page_iters = (iters / 10).max(1);
    for _ in 0..reps {
        null_direct.add(per_call_ps(iters, |i| {
            // SAFETY: The null method takes any object and call.
            black_box(unsafe { (null_ops.ops().nop)(null_ops.call.obj, &null_ops.call, i) });
            Ok(())
        })?)?;
        null_slot.add(per_call_ps(iters, |i| {
            null.call(|ops, o, c| {
                // SAFETY: Called as the slot handed it out.
                black_box(unsafe { (ops.nop)(o, c, i) })
            })?;
            Ok(())
        })?)?;
        for hit in hits.iter_mut() {
            let fcm = &mut hit.fcm;
            hit.direct
                .add(per_call_ps(page_iters, |_| fcm.read_direct())?)?;
            hit.slot
                .add(per_call_ps(page_iters, |_| fcm.read_slot())?)?;
        }
    }
    let mut report = Report(KVec::new());
    report.line("iterations", &[iters, page_iters])?;
    for series in [&null_direct, &null_slot] {
        report.line(series.name, &series.values)?;
    }
    for hit in hits.iter() {
        report.line(hit.direct.name, &hit.direct.values)?;
        report.line(hit.slot.name, &hit.slot.values)?;
    }
    Ok(report)
}

/// One FCM object caching one page of a tmpfs file, and a kernel buffer
/// to read that page into again and again (every read is a hit).
struct PageHit {
    object: Object<Fcm>,
    direct: Direct<Fcm>,
    buf: KVec<u8>,
    _file: TempFile,
}

impl PageHit {
    fn new(imp: &CStr) -> Result<Self> {
        let mut buf = KVec::from_elem(0x5au8, PAGE_SIZE, GFP_KERNEL)?;
        let file = TempFile::new(c"hotswap-bench", &buf)?;
        let create = FcmCreate {
            file: file.as_ptr(),
            capacity: 0,
        };
        // SAFETY: `create` is a valid `FcmCreate`, live for the call.
        let object =
            unsafe { Object::<Fcm>::create(Some(imp), core::ptr::from_ref(&create).cast()) }?;
        let direct = Direct::of(&object)?;
        buf.fill(0);
        let mut this = Self {
            object,
            direct,
            buf,
            _file: file,
        };
        // The first read brings the page in; every later one is a hit.
        this.read_slot()?;
        if this.buf.iter().any(|&b| b != 0x5a) {
            return Err(EIO);
        }
        Ok(this)
    }

    fn check(ret: isize) -> Result {
        if ret == PAGE_SIZE as isize {
            Ok(())
        } else {
            Err(EIO)
        }
    }

    fn read_direct(&mut self) -> Result {
        let buf = self.buf.as_mut_ptr() as usize;
        let d = &self.direct;
        // SAFETY: `buf` is a kernel buffer of one page (`user` = 0); the
        // object is live and not being swapped.
        Self::check(unsafe { (d.ops().read)(d.call.obj, &d.call, 0, buf, PAGE_SIZE, 0) })
    }

    fn read_slot(&mut self) -> Result {
        let buf = self.buf.as_mut_ptr() as usize;
        let ret = self.object.call(|ops, o, c| {
            // SAFETY: As in `read_direct`, through the slot.
            unsafe { (ops.read)(o, c, 0, buf, PAGE_SIZE, 0) }
        })?;
        Self::check(ret)
    }
}

/// `reps` timings of one `synchronize_rcu()`.
fn bench_rcu(reps: u64) -> Result<Report> {
    let mut values = KVec::new();
    for _ in 0..reps {
        let start = Instant::<Monotonic>::now();
        kernel::sync::rcu::synchronize_rcu();
        let ns = u64::try_from(start.elapsed().as_nanos()).map_err(|_| ERANGE)?;
        values.push(ns, GFP_KERNEL)?;
    }
    let mut report = Report(KVec::new());
    report.line("synchronize_rcu_ns", &values)?;
    Ok(report)
}
