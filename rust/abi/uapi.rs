// SPDX-License-Identifier: GPL-2.0
//! The `/dev/hotswap` ioctl ABI, shared by hotswap.ko and `hswapctl`.
//!
//! This file uses `core` only, so both the kernel module and the userspace
//! tool compile it (`#[path = ...] mod uapi;`): there is one definition of
//! every request. Requests are `#[repr(C)]` structs with fixed-size fields
//! and explicit padding; an ioctl number encodes its struct's size, so a
//! tool built against another layout gets `ENOTTY`, and
//! [`HOTSWAP_IOC_VERSION`] tells which [`UAPI_VERSION`] the kernel speaks.
//!
//! Names are NUL-terminated in [`NAME_LEN`]-byte fields. Lists are read by
//! passing a user buffer (`entries`, `capacity`); the kernel writes up to
//! `capacity` entries and always stores the total in `count`, so a caller
//! can size its buffer and ask again.

/// Version of this ABI; bump on any change below.
pub const UAPI_VERSION: u32 = 6;

/// Capacity of a name field, including the terminating NUL.
pub const NAME_LEN: usize = 32;

/// Capacity of an object's label ([`ObjectStatus::label`]), including the
/// terminating NUL.
pub const LABEL_LEN: usize = 256;

/// Most interposers one object reports in [`ObjectStatus`].
pub const MAX_INTERPOSERS: usize = 8;

/// The device node.
pub const DEVICE_PATH: &str = "/dev/hotswap";

/// `ioctl` type byte of hotswap.
pub const IOC_TYPE: u32 = 0xb7;

/// `_IOC_WRITE`.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`.
pub const IOC_READ: u32 = 2;

/// An ioctl number: direction, type [`IOC_TYPE`], number, size.
pub const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (IOC_TYPE << 8) | nr
}

/// The size an ioctl number encodes.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> 16) & 0x3fff) as usize
}

/// `ObjectEntry::phase`, `ObjectStatus::phase`: names by number.
pub const PHASE_NAMES: [&str; 6] = [
    "normal",
    "forward",
    "blocked",
    "transfer",
    "completed",
    "aborted",
];

/// Reply of [`HOTSWAP_IOC_VERSION`].
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Version {
    /// [`UAPI_VERSION`] of the kernel.
    pub uapi: u32,
    /// Version of the module ABI (`api.rs`) of the kernel.
    pub module_abi: u32,
}

/// A list request: the kernel fills `entries` (an array of `capacity`
/// entries of the listed type) and stores the total in `count`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct ListRequest {
    /// User address of the entry array.
    pub entries: u64,
    /// Entries the array holds.
    pub capacity: u32,
    /// Out: entries that exist (may exceed `capacity`).
    pub count: u32,
}

/// One interface.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct InterfaceEntry {
    /// Interface name.
    pub name: [u8; NAME_LEN],
    /// Implementation new objects get ("" if none was set).
    pub default_impl: [u8; NAME_LEN],
    /// Live objects of the interface.
    pub objects: u32,
    /// Registered implementations of the interface.
    pub impls: u32,
}

/// `ImplEntry::kind`: creates objects.
pub const KIND_OBJECT: u32 = 0;
/// `ImplEntry::kind`: creates interposers.
pub const KIND_INTERPOSER: u32 = 1;

/// One implementation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ImplEntry {
    /// Interface it implements.
    pub interface: [u8; NAME_LEN],
    /// Implementation name.
    pub name: [u8; NAME_LEN],
    /// Owning module ("" for built-in code).
    pub module: [u8; 56],
    /// [`KIND_OBJECT`] or [`KIND_INTERPOSER`].
    pub kind: u32,
    /// Objects and interposers it made that are alive.
    pub users: u32,
    /// [`IMPL_QUARANTINED`], or 0.
    pub flags: u32,
    /// Padding; zero.
    pub reserved: u32,
}

/// [`ImplEntry::flags`]: the implementation broke its contract and is
/// quarantined: no new objects or swaps to it (`ENOTRECOVERABLE`), its
/// objects moved to the interface's known-good implementation. Loading
/// its module again starts it afresh.
pub const IMPL_QUARANTINED: u32 = 1;

/// One object (the short form; [`ObjectStatus`] has everything).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ObjectEntry {
    /// Object id.
    pub id: u32,
    /// Index into [`PHASE_NAMES`].
    pub phase: u32,
    /// Interface of the object.
    pub interface: [u8; NAME_LEN],
    /// Implementation serving it.
    pub implementation: [u8; NAME_LEN],
    /// Interposers in front of it.
    pub interposers: u32,
    /// Padding; zero.
    pub reserved: u32,
    /// Calls made through its slot.
    pub calls: u64,
}

/// Everything about one object; `id` in, the rest out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ObjectStatus {
    /// In: object id.
    pub id: u32,
    /// Index into [`PHASE_NAMES`].
    pub phase: u32,
    /// Interface of the object.
    pub interface: [u8; NAME_LEN],
    /// Implementation serving it.
    pub implementation: [u8; NAME_LEN],
    /// Interposers, outermost first (`interposer_count` of them, at most
    /// [`MAX_INTERPOSERS`] listed).
    pub interposers: [[u8; NAME_LEN]; MAX_INTERPOSERS],
    /// Number of interposers.
    pub interposer_count: u32,
    /// Per-phase swap timeout.
    pub timeout_ms: u32,
    /// Calls made through its slot.
    pub calls: u64,
    /// Swaps that completed.
    pub swaps_done: u64,
    /// Swaps that aborted.
    pub swaps_aborted: u64,
    /// The last swap: 0 none, 1 completed, 2 aborted.
    pub last_outcome: u32,
    /// The phase the last swap ended in.
    pub last_phase: u32,
    /// 0 or the negative errno that aborted the last swap.
    pub last_errno: i32,
    /// The state format the last swap used.
    pub last_format: u32,
    /// Tracked calls in flight when the last swap ended.
    pub last_in_flight: i64,
    /// Duration of the last swap.
    pub last_duration_ns: u64,
    /// Longest time a caller waited in the last swap's Blocked phase.
    pub last_blocked_ns: u64,
    /// What the object's owner says it is (an FCM: the path of its file,
    /// the end kept if it is longer), NUL-terminated; empty if nothing.
    pub label: [u8; LABEL_LEN],
}

/// Swap request: one object (`object` != 0) or every object of
/// `interface` (`object` == 0, which also makes `implementation` the
/// default for new objects).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SwapRequest {
    /// Interface of the objects.
    pub interface: [u8; NAME_LEN],
    /// Implementation to swap to.
    pub implementation: [u8; NAME_LEN],
    /// Object id, or 0 for all objects of the interface.
    pub object: u32,
    /// Per-phase timeout in ms; 0 uses each object's own.
    pub timeout_ms: u32,
    /// User address of a [`SwapResult`] array for per-object results.
    pub results: u64,
    /// Entries the results array holds.
    pub capacity: u32,
    /// Out: objects the request covered.
    pub count: u32,
    /// Out: swaps that completed.
    pub completed: u32,
    /// Out: swaps that aborted or could not start.
    pub aborted: u32,
    /// Out: objects already on the implementation.
    pub unchanged: u32,
    /// Padding; zero.
    pub reserved: u32,
    /// Out: time the whole request took.
    pub total_ns: u64,
}

/// [`SwapResult::outcome`]: the new object took over.
pub const OUTCOME_COMPLETED: u32 = 1;
/// [`SwapResult::outcome`]: the swap aborted; the old object stays.
pub const OUTCOME_ABORTED: u32 = 2;
/// [`SwapResult::outcome`]: already on the implementation.
pub const OUTCOME_UNCHANGED: u32 = 3;
/// [`SwapResult::outcome`]: could not start (see `errno`); nothing changed.
pub const OUTCOME_NOT_STARTED: u32 = 4;

/// What happened to one object of a [`SwapRequest`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SwapResult {
    /// Object id.
    pub id: u32,
    /// One of the `OUTCOME_*` values.
    pub outcome: u32,
    /// Phase the swap ended in.
    pub phase: u32,
    /// 0 or a negative errno.
    pub errno: i32,
    /// State format used.
    pub format: u32,
    /// Padding; zero.
    pub reserved: u32,
    /// Tracked calls in flight when it ended.
    pub in_flight: i64,
    /// Start of Forward until the object was on one implementation again.
    pub duration_ns: u64,
    /// Longest time a caller waited in Blocked.
    pub blocked_ns: u64,
}

/// Interpose or remove an interposer on one object (`object` != 0) or on
/// every object of `interface`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct InterposeRequest {
    /// Interface of the objects.
    pub interface: [u8; NAME_LEN],
    /// Interposer implementation.
    pub implementation: [u8; NAME_LEN],
    /// Object id, or 0 for all objects of the interface.
    pub object: u32,
    /// Out: objects changed.
    pub count: u32,
}

/// Set the swap timeout of one object (`object` != 0) or of all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeoutRequest {
    /// Object id, or 0 for every object.
    pub object: u32,
    /// Per-phase timeout, 1 ms to 1 hour.
    pub timeout_ms: u32,
}

/// Reports of an object's interposers (a monitor's figures); `id` in.
/// `text` holds one line per interposer that reports: `<name>: <report>`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReportRequest {
    /// In: object id.
    pub id: u32,
    /// Out: bytes of `text` used.
    pub len: u32,
    /// Out: the lines.
    pub text: [u8; 1024],
}

/// Most decision policies [`PolicyRequest`] names.
pub const MAX_POLICIES: usize = 8;

/// Parameters of a decision policy (their meaning is the policy's).
pub const POLICY_PARAMS: usize = 4;

/// An interface's decision policy: the algorithm that samples its objects
/// and asks for swaps (K42: "the adaptation decision algorithm can be
/// swapped"). Interfaces register policies like implementations; `off`
/// (no policy) is always there.
///
/// Set: `interface`, `policy` (`off`, or a registered policy's name) and
/// `params` in (all zero: the policy's defaults). Get: `interface` in;
/// the current `policy` and `params` and the registered policies out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PolicyRequest {
    /// Interface name.
    pub interface: [u8; NAME_LEN],
    /// Policy name; `off` for none.
    pub policy: [u8; NAME_LEN],
    /// The policy's parameters.
    pub params: [u32; POLICY_PARAMS],
    /// Out: decision policies registered for the interface (all of them,
    /// even past [`MAX_POLICIES`]).
    pub count: u32,
    /// Out: their names, the first [`MAX_POLICIES`].
    pub available: [[u8; NAME_LEN]; MAX_POLICIES],
}

/// Which [`UAPI_VERSION`] the kernel speaks.
pub const HOTSWAP_IOC_VERSION: u32 = ioc(IOC_READ, 0x01, size_of::<Version>());
/// List interfaces ([`InterfaceEntry`] entries).
pub const HOTSWAP_IOC_LIST_INTERFACES: u32 =
    ioc(IOC_READ | IOC_WRITE, 0x02, size_of::<ListRequest>());
/// List implementations ([`ImplEntry`] entries).
pub const HOTSWAP_IOC_LIST_IMPLS: u32 = ioc(IOC_READ | IOC_WRITE, 0x03, size_of::<ListRequest>());
/// List objects ([`ObjectEntry`] entries).
pub const HOTSWAP_IOC_LIST_OBJECTS: u32 = ioc(IOC_READ | IOC_WRITE, 0x04, size_of::<ListRequest>());
/// Status of one object.
pub const HOTSWAP_IOC_OBJECT_STATUS: u32 =
    ioc(IOC_READ | IOC_WRITE, 0x05, size_of::<ObjectStatus>());
/// Swap (needs `CAP_SYS_ADMIN`).
pub const HOTSWAP_IOC_SWAP: u32 = ioc(IOC_READ | IOC_WRITE, 0x06, size_of::<SwapRequest>());
/// Interpose (needs `CAP_SYS_ADMIN`).
pub const HOTSWAP_IOC_INTERPOSE: u32 =
    ioc(IOC_READ | IOC_WRITE, 0x07, size_of::<InterposeRequest>());
/// Remove an interposer (needs `CAP_SYS_ADMIN`).
pub const HOTSWAP_IOC_UNINTERPOSE: u32 =
    ioc(IOC_READ | IOC_WRITE, 0x08, size_of::<InterposeRequest>());
/// Reports of an object's interposers.
pub const HOTSWAP_IOC_OBJECT_REPORTS: u32 =
    ioc(IOC_READ | IOC_WRITE, 0x0a, size_of::<ReportRequest>());
/// Set an interface's policy (needs `CAP_SYS_ADMIN`).
pub const HOTSWAP_IOC_SET_POLICY: u32 = ioc(IOC_WRITE, 0x0b, size_of::<PolicyRequest>());
/// Read an interface's policy (`interface` in).
pub const HOTSWAP_IOC_GET_POLICY: u32 = ioc(IOC_READ | IOC_WRITE, 0x0c, size_of::<PolicyRequest>());
/// Set swap timeouts (needs `CAP_SYS_ADMIN`).
pub const HOTSWAP_IOC_SET_TIMEOUT: u32 = ioc(IOC_WRITE, 0x09, size_of::<TimeoutRequest>());

/// A name as the fixed-size field carries it; `None` unless it is 1 to
/// `NAME_LEN - 1` bytes of `[a-z0-9_]` (what the kernel accepts).
pub fn name_field(name: &str) -> Option<[u8; NAME_LEN]> {
    let bytes = name.as_bytes();
    let valid = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_';
    if bytes.is_empty() || bytes.len() >= NAME_LEN || !bytes.iter().all(valid) {
        return None;
    }
    let mut field = [0u8; NAME_LEN];
    field[..bytes.len()].copy_from_slice(bytes);
    Some(field)
}

/// The text of a NUL-terminated name field ("" if malformed).
pub fn field_str(field: &[u8]) -> &str {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..end]).unwrap_or("")
}
