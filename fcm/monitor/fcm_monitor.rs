// SPDX-License-Identifier: GPL-2.0
//! `fcm_monitor`: an interposer for File Cache Managers. It sees every call
//! to the FCM it wraps, forwards it, and counts: calls, reads and writes
//! and their bytes, errors, a latency histogram (of one call in 16 per
//! CPU), and which CPUs called in
//! the last second. `hswapctl interpose fcm monitor` puts it in front of
//! FCMs without stopping them; `uninterpose` removes it at any time.
//!
//! Counters are per CPU, each CPU's on its own cache line, so the monitor
//! adds no shared write to the call path it watches.

use core::ffi::c_void;
use kernel::cpu::{nr_cpu_ids, CpuId};
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::time::{Instant, Monotonic};

#[path = "../../rust/abi/api.rs"]
pub mod api;
#[path = "../lib/abi/fcm_api.rs"]
pub mod fcm_api;

use api::{Call, LiveCall};
use fcm_api::{Fcm, FcmOps, FcmStats};

module! {
    type: FcmMonitorModule,
    name: "fcm_monitor",
    authors: ["hotswap developers"],
    description: "hotswap File Cache Manager monitor (interposer)",
    license: "GPL",
}

/// Latency buckets: bucket `b` counts calls of 2^b to 2^(b+1) ns.
const BUCKETS: usize = 32;
/// One call in this many per CPU is timed for the latency histogram; the
/// others read the clock once, after the call (a clock read is a large
/// part of what the monitor adds to a cache hit).
const TIMED_EVERY: u64 = 16;
/// A CPU that called within this window counts as active.
const WINDOW_NS: i64 = 1_000_000_000;

/// One CPU's counters, alone on their cache lines.
#[repr(align(64))]
struct PerCpu {
    calls: Atomic<u64>,
    reads: Atomic<u64>,
    writes: Atomic<u64>,
    read_bytes: Atomic<u64>,
    write_bytes: Atomic<u64>,
    errors: Atomic<u64>,
    /// Monotonic time of the last call, in ns since the monitor started.
    last_ns: Atomic<i64>,
    latency: [Atomic<u64>; BUCKETS],
}

impl PerCpu {
    fn new() -> Self {
        Self {
            calls: Atomic::new(0),
            reads: Atomic::new(0),
            writes: Atomic::new(0),
            read_bytes: Atomic::new(0),
            write_bytes: Atomic::new(0),
            errors: Atomic::new(0),
            last_ns: Atomic::new(i64::MIN),
            latency: [const { Atomic::new(0) }; BUCKETS],
        }
    }
}

/// What a call was, for the counters.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Read,
    Write,
    Other,
}

/// One monitor instance (one per FCM it wraps).
pub struct Monitor {
    cpus: KVec<PerCpu>,
    start: Instant<Monotonic>,
    /// Start of the current policy window (ns since `start`); the call
    /// that first sees it over reports the window to hotswap's policy.
    window: Atomic<i64>,
    /// The wrapped FCM's hits and misses, refreshed once per window.
    hits: Atomic<u64>,
    misses: Atomic<u64>,
}

impl Monitor {
    fn here(&self) -> &PerCpu {
        let cpu = CpuId::current().as_u32() as usize;
        self.cpus.get(cpu).unwrap_or(&self.cpus[0])
    }

    /// Whether the next call on this CPU is one of the timed ones.
    fn times_next(&self) -> bool {
        self.here().calls.load(Relaxed) % TIMED_EVERY == 0
    }

    /// Counts one call, and its latency if `began` says when it did;
    /// returns its end time (ns since `start`).
    fn record(&self, kind: Kind, ret: isize, began: Option<Instant<Monotonic>>) -> i64 {
        let now = Instant::<Monotonic>::now();
        let c = self.here();
        c.calls.add(1, Relaxed);
        let since_start = (now - self.start).as_nanos();
        c.last_ns.store(since_start, Relaxed);
        if let Some(began) = began {
            let ns = (now - began).as_nanos().max(1);
            let bucket = (63 - (ns as u64).leading_zeros() as usize).min(BUCKETS - 1);
            c.latency[bucket].add(1, Relaxed);
        }
        if ret < 0 {
            c.errors.add(1, Relaxed);
            return since_start;
        }
        match kind {
            Kind::Read => {
                c.reads.add(1, Relaxed);
                c.read_bytes.add(ret as u64, Relaxed);
            }
            Kind::Write => {
                c.writes.add(1, Relaxed);
                c.write_bytes.add(ret as u64, Relaxed);
            }
            Kind::Other => {}
        }
        since_start
    }

    /// Once per window, tells the `fcm` decision policy (through hotswap)
    /// how many CPUs used the FCM. Costs one relaxed load per call
    /// otherwise.
    fn maybe_sample(&self, call: &LiveCall<Fcm>, now: i64) {
        let window = self.window.load(Relaxed);
        if now - window < WINDOW_NS || self.window.cmpxchg(window, now, Relaxed).is_err() {
            return;
        }
        call.sample(&[u64::from(self.active_cpus())]);
        // Once a window, ask the FCM below for its hit and miss counts.
        let mut stats = FcmStats::default();
        let asked = call.forward(|ops, obj, next| {
            // SAFETY: `stats` is writable; the object is live for the call.
            unsafe { (ops.stats)(obj, next, &mut stats) }
        });
        if asked.is_ok() {
            self.hits.store(stats.hits, Relaxed);
            self.misses.store(stats.misses, Relaxed);
        }
    }

    /// CPUs that called within the last window.
    fn active_cpus(&self) -> u32 {
        let now = (Instant::<Monotonic>::now() - self.start).as_nanos();
        self.cpus
            .iter()
            .filter(|c| now.saturating_sub(c.last_ns.load(Relaxed)) <= WINDOW_NS)
            .count() as u32
    }

    fn sum(&self, f: impl Fn(&PerCpu) -> u64) -> u64 {
        self.cpus.iter().map(f).sum()
    }

    /// Upper bound (ns) of the bucket holding quantile `q` (percent).
    fn quantile_ns(&self, q: u64) -> u64 {
        let mut counts = [0u64; BUCKETS];
        for c in self.cpus.iter() {
            for (total, b) in counts.iter_mut().zip(c.latency.iter()) {
                *total += b.load(Relaxed);
            }
        }
        let all: u64 = counts.iter().sum();
        let target = (all * q).div_ceil(100).max(1);
        let mut seen = 0;
        for (b, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= target {
                return 2u64 << b;
            }
        }
        0
    }
}

/// Forwards one FCM call through the layer below, timing and counting it.
fn forward(
    obj: *mut c_void,
    call: *const Call,
    kind: Kind,
    f: impl FnOnce(&FcmOps, *mut c_void, &Call) -> isize,
) -> isize {
    // SAFETY: hotswap passes the monitor it created and the live call of
    // this method, which outlives both references.
    let (monitor, call) = unsafe { (&*obj.cast::<Monitor>(), LiveCall::<Fcm>::from_raw(call)) };
    let began = monitor.times_next().then(Instant::<Monotonic>::now);
    let ret = call.forward(f).unwrap_or_else(|e| e.to_errno() as isize);
    let now = monitor.record(kind, ret, began);
    monitor.maybe_sample(call, now);
    ret
}

unsafe extern "C" fn read(
    o: *mut c_void,
    call: *const Call,
    pos: i64,
    buf: usize,
    len: usize,
    user: u32,
) -> isize {
    // SAFETY: Forwarding the caller's own arguments.
    forward(o, call, Kind::Read, |ops, obj, next| unsafe {
        (ops.read)(obj, next, pos, buf, len, user)
    })
}

unsafe extern "C" fn write(
    o: *mut c_void,
    call: *const Call,
    pos: i64,
    buf: usize,
    len: usize,
    user: u32,
) -> isize {
    // SAFETY: Forwarding the caller's own arguments.
    forward(o, call, Kind::Write, |ops, obj, next| unsafe {
        (ops.write)(obj, next, pos, buf, len, user)
    })
}

unsafe extern "C" fn sync(
    o: *mut c_void,
    call: *const Call,
    start: i64,
    end: i64,
    flags: u32,
) -> core::ffi::c_int {
    // SAFETY: Forwarding the caller's own arguments.
    forward(o, call, Kind::Other, |ops, obj, next| unsafe {
        (ops.sync)(obj, next, start, end, flags)
    } as isize) as core::ffi::c_int
}

unsafe extern "C" fn truncate(o: *mut c_void, call: *const Call, size: i64) -> core::ffi::c_int {
    // SAFETY: Forwarding the caller's own arguments.
    forward(
        o,
        call,
        Kind::Other,
        |ops, obj, next| unsafe { (ops.truncate)(obj, next, size) } as isize,
    ) as core::ffi::c_int
}

unsafe extern "C" fn size(o: *mut c_void, call: *const Call) -> i64 {
    // SAFETY: Forwarding the caller's own arguments.
    forward(
        o,
        call,
        Kind::Other,
        |ops, obj, next| unsafe { (ops.size)(obj, next) } as isize,
    ) as i64
}

unsafe extern "C" fn evict(o: *mut c_void, call: *const Call, keep: u64, flags: u32) -> i64 {
    let f = |ops: &FcmOps, obj, next: &Call| {
        // SAFETY: Forwarding the caller's own arguments.
        unsafe { (ops.evict)(obj, next, keep, flags) as isize }
    };
    if flags & fcm_api::EVICT_RECLAIM != 0 {
        // SAFETY: The live call hotswap passes to this method.
        let call = unsafe { LiveCall::<Fcm>::from_raw(call) };
        return passthrough(call, f).unwrap_or_else(|e| e.to_errno() as isize) as i64;
    }
    forward(o, call, Kind::Other, f) as i64
}

unsafe extern "C" fn pages(_: *mut c_void, call: *const Call) -> u64 {
    // SAFETY: The live call hotswap passes to this method; forwarding its
    // arguments.
    passthrough(
        unsafe { LiveCall::<Fcm>::from_raw(call) },
        |ops, obj, next| unsafe { (ops.pages)(obj, next) as isize },
    )
    .unwrap_or(0) as u64
}

/// Forwards a call of memory reclaim without timing or sampling it:
/// sampling asks the FCM for its counters, which waits for its lock, and
/// reclaim may run inside an allocation made under that lock.
fn passthrough(
    call: &LiveCall<Fcm>,
    f: impl FnOnce(&FcmOps, *mut c_void, &Call) -> isize,
) -> Result<isize> {
    call.forward(f)
}

unsafe extern "C" fn stats(o: *mut c_void, call: *const Call, out: *mut FcmStats) {
    // SAFETY: Forwarding the caller's own arguments.
    forward(o, call, Kind::Other, |ops, obj, next| {
        unsafe { (ops.stats)(obj, next, out) };
        0
    });
}

unsafe extern "C" fn set_file(
    o: *mut c_void,
    call: *const Call,
    file: *mut c_void,
) -> core::ffi::c_int {
    // SAFETY: Forwarding the caller's own arguments.
    forward(
        o,
        call,
        Kind::Other,
        |ops, obj, next| unsafe { (ops.set_file)(obj, next, file) } as isize,
    ) as core::ffi::c_int
}

unsafe extern "C" fn page(
    o: *mut c_void,
    call: *const Call,
    index: u64,
    maps: *mut c_void,
    out: *mut *mut c_void,
) -> core::ffi::c_int {
    // SAFETY: Forwarding the caller's own arguments.
    forward(o, call, Kind::Other, |ops, obj, next| unsafe {
        (ops.page)(obj, next, index, maps, out)
    } as isize) as core::ffi::c_int
}

static METHODS: FcmOps = FcmOps {
    read,
    write,
    sync,
    truncate,
    size,
    evict,
    stats,
    set_file,
    pages,
    page,
};

unsafe extern "C" fn create(_arg: *const c_void, out: *mut *mut c_void) -> core::ffi::c_int {
    let made = (|| -> Result<KBox<Monitor>> {
        let n = nr_cpu_ids() as usize;
        let mut cpus = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            cpus.push(PerCpu::new(), GFP_KERNEL)?;
        }
        Ok(KBox::new(
            Monitor {
                cpus,
                start: Instant::<Monotonic>::now(),
                window: Atomic::new(0),
                hits: Atomic::new(0),
                misses: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    })();
    match made {
        Ok(m) => {
            // SAFETY: hotswap passes a valid out pointer.
            unsafe { *out = KBox::into_raw(m).cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn destroy(obj: *mut c_void, _how: u32) {
    // SAFETY: Made by `create`, destroyed once, after a grace period.
    drop(unsafe { KBox::from_raw(obj.cast::<Monitor>()) });
}

/// Writes `s` into `buf` as far as it fits; returns the length written.
struct Text<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

unsafe extern "C" fn report(obj: *mut c_void, buf: *mut u8, len: usize) -> isize {
    use core::fmt::Write;
    // SAFETY: A live monitor; `buf` is writable for `len` bytes.
    let (m, buf) = unsafe {
        (
            &*obj.cast::<Monitor>(),
            core::slice::from_raw_parts_mut(buf, len),
        )
    };
    let mut t = Text { buf, len: 0 };
    let _ = write!(
        t,
        "calls={} reads={} writes={} read_bytes={} write_bytes={} errors={} hits={} misses={} active_cpus={} p50_ns={} p99_ns={} per_cpu=",
        m.sum(|c| c.calls.load(Relaxed)),
        m.sum(|c| c.reads.load(Relaxed)),
        m.sum(|c| c.writes.load(Relaxed)),
        m.sum(|c| c.read_bytes.load(Relaxed)),
        m.sum(|c| c.write_bytes.load(Relaxed)),
        m.sum(|c| c.errors.load(Relaxed)),
        m.hits.load(Relaxed),
        m.misses.load(Relaxed),
        m.active_cpus(),
        m.quantile_ns(50),
        m.quantile_ns(99)
    );
    let mut first = true;
    for (cpu, c) in m.cpus.iter().enumerate() {
        let calls = c.calls.load(Relaxed);
        if calls != 0 {
            let _ = write!(t, "{}{}:{}", if first { "" } else { "," }, cpu, calls);
            first = false;
        }
    }
    if first {
        let _ = write!(t, "-");
    }
    t.len as isize
}

/// The `fcm`/`monitor` interposer.
pub struct FcmMonitor;

impl api::Implementation for FcmMonitor {
    type Interface = fcm_api::Fcm;
    const NAME: &'static CStr = c"monitor";

    fn ops() -> api::ImplTable<Fcm> {
        let ops = api::ImplOps {
            kind: api::KIND_INTERPOSER,
            create: Some(create),
            destroy: Some(destroy),
            report: Some(report),
            ..api::ImplOps::empty()
        };
        // SAFETY: `create` makes the `Monitor` that `destroy`, `report`
        // and every method of `METHODS` take the object as, and each
        // method forwards through the live call it is handed.
        unsafe { api::ImplTable::from_raw(&METHODS, ops) }
    }
}

struct FcmMonitorModule {
    _registration: api::Registration,
}

impl kernel::Module for FcmMonitorModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _registration: api::Registration::new::<FcmMonitor>(module)?,
        })
    }
}

#[kunit_tests(fcm_monitor)]
mod tests {
    use super::*;

    fn monitor() -> Result<KBox<Monitor>> {
        let mut obj = core::ptr::null_mut();
        // SAFETY: A valid out pointer; NULL is the interposer's `arg`.
        assert_eq!(unsafe { create(core::ptr::null(), &mut obj) }, 0);
        // SAFETY: Just created.
        Ok(unsafe { KBox::from_raw(obj.cast::<Monitor>()) })
    }

    fn report_of(m: &Monitor) -> KVec<u8> {
        let mut buf = KVec::from_elem(0u8, 256, GFP_KERNEL).unwrap_or_default();
        let ptr = core::ptr::from_ref(m).cast_mut().cast();
        // SAFETY: A live monitor and a writable buffer.
        let n = unsafe { report(ptr, buf.as_mut_ptr(), buf.len()) };
        buf.truncate(n.max(0) as usize);
        buf
    }

    #[test]
    fn counts_calls_bytes_and_errors() -> Result {
        let m = monitor()?;
        let t = Some(Instant::<Monotonic>::now());
        m.record(Kind::Read, 4096, t);
        m.record(Kind::Read, 100, None);
        m.record(Kind::Write, 10, t);
        m.record(Kind::Other, -5, None);
        assert_eq!(m.sum(|c| c.calls.load(Relaxed)), 4);
        assert_eq!(m.sum(|c| c.read_bytes.load(Relaxed)), 4196);
        assert_eq!(m.sum(|c| c.write_bytes.load(Relaxed)), 10);
        assert_eq!(m.sum(|c| c.errors.load(Relaxed)), 1);
        assert_eq!(m.active_cpus(), 1);
        // Only the timed calls are in the latency histogram.
        let timed: u64 = m
            .cpus
            .iter()
            .flat_map(|c| c.latency.iter())
            .map(|b| b.load(Relaxed))
            .sum();
        assert_eq!(timed, 2);
        assert!(m.quantile_ns(50) > 0);
        let text = report_of(&m);
        assert!(text.starts_with(
            b"calls=4 reads=2 writes=1 read_bytes=4196 write_bytes=10 errors=1 hits=0 misses=0 active_cpus=1 "
        ));
        Ok(())
    }

    #[test]
    fn idle_monitor_reports_nothing_active() -> Result {
        let m = monitor()?;
        assert_eq!(m.active_cpus(), 0);
        assert_eq!(m.quantile_ns(50), 0);
        assert!(report_of(&m).ends_with(b"per_cpu=-"));
        Ok(())
    }

    #[test]
    fn report_never_overflows_its_buffer() -> Result {
        let m = monitor()?;
        let mut small = [0xaau8; 8];
        let ptr = core::ptr::from_ref(&*m).cast_mut().cast();
        // SAFETY: A live monitor and an 8-byte buffer.
        let n = unsafe { report(ptr, small.as_mut_ptr(), small.len()) };
        assert_eq!(n, 8);
        assert_eq!(&small, b"calls=0 ");
        Ok(())
    }
}
