// SPDX-License-Identifier: GPL-2.0
//! The registry: interfaces and their implementations, by name.
//!
//! Modules register `#[repr(C)]` tables through the entry points in
//! `entry.rs`; the registry validates each table (ABI version, size, names,
//! callbacks) before it trusts a single field, and keeps its own copy as an
//! [`ImplInfo`]. The table's address is the registrant's identity, so only
//! the registrant can unregister it.
//!
//! Pinning: an implementation registered under an interface pins the
//! interface's module (unless both are the same module); an object or interposer created from an
//! implementation pins the implementation's module ([`ImplPin`]), and
//! unregistering an implementation that objects use fails with `EBUSY`.

use crate::api::{
    self, name_str, validate_name, Decision, DecisionOps, ImplOps, InterfaceOps, Name, ABI_VERSION,
    MAX_FORMATS, NAME_LEN, POLICY_PARAMS,
};
use crate::registry::sys::ModulePtr;
use core::ffi::{c_int, c_void, CStr};
use kernel::prelude::*;
use kernel::sync::{
    atomic::{Atomic, Full, Relaxed},
    Arc,
};

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init before any entry point can run.
    pub(crate) unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry::new();
}

type CreateFn = unsafe extern "C" fn(*const c_void, *mut *mut c_void) -> c_int;
type DestroyFn = unsafe extern "C" fn(*mut c_void, u32);
type ExportFn = unsafe extern "C" fn(*mut c_void, u32, *mut *mut c_void) -> c_int;
type ImportFn = unsafe extern "C" fn(*mut c_void, u32, *mut c_void) -> c_int;
type ReleaseFn = unsafe extern "C" fn(*mut c_void, u32, *mut c_void, u32);
type ReportFn = unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> isize;

/// hotswap's validated copy of an implementation's table.
pub(crate) struct ImplInfo {
    /// Address of the registered table: the registrant's identity.
    table: usize,
    pub(crate) interface: Name,
    pub(crate) name: Name,
    owner: ModulePtr,
    /// The interface's module, pinned by this registration unless it is
    /// the implementation's own module (which could then never unload).
    interface_pin: Option<ModulePtr>,
    pub(crate) kind: u32,
    pub(crate) export_formats: [u32; MAX_FORMATS],
    pub(crate) import_formats: [u32; MAX_FORMATS],
    pub(crate) methods: *const c_void,
    create: Option<CreateFn>,
    destroy: Option<DestroyFn>,
    export: Option<ExportFn>,
    import: Option<ImportFn>,
    release: Option<ReleaseFn>,
    report: Option<ReportFn>,
    /// Objects and interposers created from this implementation.
    users: Atomic<u32>,
    /// It broke its contract: no new objects or swaps to it.
    quarantined: Atomic<bool>,
}

// SAFETY: The raw pointers are the implementation's method table and
// module, both immutable and valid while the implementation is registered
// (and it stays registered while `users` pins its module).
unsafe impl Send for ImplInfo {}
// SAFETY: As for `Send`; the only mutable field is atomic.
unsafe impl Sync for ImplInfo {}

/// An implementation callback's return value, checked: 0 or a negative
/// errno. Anything else is the implementation misbehaving.
fn checked(what: &str, imp: &ImplInfo, ret: c_int) -> Result {
    match ret {
        0 => Ok(()),
        -4095..=-1 => Err(Error::from_errno(ret)),
        _ => {
            imp.misbehaved(format_args!("{} returned {}, out of range", what, ret));
            Err(EPROTO)
        }
    }
}

impl ImplInfo {
    /// Creates an instance from `arg`.
    pub(crate) fn create(&self, arg: *const c_void) -> Result<*mut c_void> {
        let create = self.create.ok_or(EOPNOTSUPP)?;
        let mut obj = core::ptr::null_mut();
        // SAFETY: The callback comes from a registered, pinned module;
        // `obj` is a valid out pointer.
        checked("create", self, unsafe { create(arg, &mut obj) })?;
        if obj.is_null() {
            self.misbehaved(format_args!("create returned no object"));
            return Err(EPROTO);
        }
        Ok(obj)
    }

    /// Destroys an instance made by [`ImplInfo::create`].
    pub(crate) fn destroy(&self, obj: *mut c_void, how: u32) {
        if let Some(destroy) = self.destroy {
            // SAFETY: `obj` came from this implementation's `create` and is
            // destroyed exactly once (by `Instance::drop`).
            unsafe { destroy(obj, how) };
        }
    }

    /// Exports `obj`'s state in `format`.
    ///
    /// An export that fails but stored a state anyway (an implementation
    /// that moved its state out and then returned an out-of-range value)
    /// gets that state back through `release(taken = 0)`: the object must
    /// stay as it was before the export, or an aborted swap would lose it.
    /// A correct implementation stores nothing on failure, so for it this
    /// changes nothing.
    pub(crate) fn export(&self, obj: *mut c_void, format: u32) -> Result<*mut c_void> {
        let export = self.export.ok_or(EOPNOTSUPP)?;
        let mut state = core::ptr::null_mut();
        // SAFETY: `obj` is a live instance of this implementation.
        let ret = unsafe { export(obj, format, &mut state) };
        if let Err(err) = checked("export", self, ret) {
            if !state.is_null() {
                self.release(obj, format, state, false);
            }
            return Err(err);
        }
        Ok(state)
    }

    /// Imports `state` (exported in `format`) into `obj`.
    pub(crate) fn import(&self, obj: *mut c_void, format: u32, state: *mut c_void) -> Result {
        let import = self.import.ok_or(EOPNOTSUPP)?;
        // SAFETY: `obj` is a live instance of this implementation.
        checked("import", self, unsafe { import(obj, format, state) })
    }

    /// Ends a transfer on the exporter.
    pub(crate) fn release(&self, obj: *mut c_void, format: u32, state: *mut c_void, taken: bool) {
        if let Some(release) = self.release {
            // SAFETY: `state` came from this implementation's `export` on
            // `obj` and is released exactly once.
            unsafe { release(obj, format, state, u32::from(taken)) };
        }
    }

    /// The instance's one-line report, if the implementation has one:
    /// written into `buf`, returning the text (checked: in range, UTF-8).
    pub(crate) fn report<'a>(&self, obj: *mut c_void, buf: &'a mut [u8]) -> Option<&'a str> {
        let report = self.report?;
        // SAFETY: `obj` is a live instance of this implementation; `buf`
        // is writable for its length.
        let n = unsafe { report(obj, buf.as_mut_ptr(), buf.len()) };
        if n < 0 || n as usize > buf.len() {
            self.misbehaved(format_args!(
                "report returned {} for a {}-byte buffer",
                n,
                buf.len()
            ));
            return None;
        }
        core::str::from_utf8(&buf[..n as usize]).ok()
    }

    /// Runs `f` on the owning module's name ("" for built-in code).
    pub(crate) fn module_name(&self, f: impl FnOnce(&[u8])) {
        // SAFETY: The module is live while its implementation is
        // registered, and this `ImplInfo` is the registration.
        unsafe { self.owner.with_name(f) }
    }

    /// Number of objects and interposers using this implementation.
    pub(crate) fn users(&self) -> u32 {
        self.users.load(Relaxed)
    }

    /// Whether the implementation is quarantined.
    pub(crate) fn quarantined(&self) -> bool {
        self.quarantined.load(Relaxed)
    }

    /// An object was just put on this implementation (created on it, or
    /// swapped to it): if it is quarantined meanwhile, its ejection runs
    /// again, or that object would stay on it (the first ejection looked
    /// at the objects before this one arrived).
    pub(crate) fn landed(&self) {
        // Ordering: the object was published before this load, and the
        // exchange in `misbehaved` is fully ordered: either this sees the
        // quarantine and queues an ejection, or the ejection, which starts
        // after the exchange, sees the object.
        kernel::sync::barrier::smp_mb(Full);
        if self.quarantined() {
            crate::registry::misbehavior::queue_ejection(self.interface, self.name);
        }
    }

    /// The implementation broke its contract (`what`): counted, and the
    /// first time quarantined, logged once and queued for ejection (its
    /// objects go to the interface's known-good implementation).
    pub(crate) fn misbehaved(&self, what: core::fmt::Arguments<'_>) {
        crate::registry::misbehavior::count_misbehavior();
        // Ordering: full; see `quarantined`.
        if self.quarantined.xchg(true, Full) {
            return;
        }
        pr_warn!(
            "{}/{}: quarantined: {}; no new objects or swaps to it, its objects go to the interface's known-good implementation\n",
            name_str(&self.interface),
            name_str(&self.name),
            what
        );
        crate::registry::misbehavior::queue_ejection(self.interface, self.name);
    }
}

/// A use of an implementation: its module stays loaded and the registry
/// refuses to unregister it while this exists.
pub(crate) struct ImplPin {
    imp: Arc<ImplInfo>,
}

impl ImplPin {
    /// Pins `imp`; called with the registry locked, so an implementation
    /// cannot be unregistered between lookup and pin.
    fn new(imp: &Arc<ImplInfo>) -> Result<Self> {
        imp.owner.get()?;
        imp.users.fetch_add(1, Relaxed);
        Ok(Self { imp: imp.clone() })
    }
}

impl ImplPin {
    /// Another use of the pinned implementation, without a lookup: this
    /// pin keeps it registered. `ENOTRECOVERABLE` once it is quarantined.
    pub(crate) fn another(&self) -> Result<Self> {
        if self.imp.quarantined() {
            return Err(ENOTRECOVERABLE);
        }
        Self::new(&self.imp)
    }
}

impl core::ops::Deref for ImplPin {
    type Target = ImplInfo;
    fn deref(&self) -> &ImplInfo {
        &self.imp
    }
}

impl Drop for ImplPin {
    fn drop(&mut self) {
        self.imp.users.fetch_sub(1, Relaxed);
        self.imp.owner.put();
    }
}

struct InterfaceEntry {
    /// Address of the registered table: the registrant's identity.
    table: usize,
    name: Name,
    owner: ModulePtr,
    /// The method table's version and size every implementation must have.
    methods_version: u32,
    methods_size: u32,
    /// The fallback implementation (all zero: none named).
    known_good: Name,
    /// Implementation new objects get when none is named; all zero: the
    /// known-good one, else the first registered object implementation.
    default_impl: Name,
    /// The decision policy picked for the interface (`None`: off) and its
    /// parameters.
    policy: Option<Arc<PolicyInfo>>,
    params: [u32; POLICY_PARAMS],
}

type CheckFn = unsafe extern "C" fn(*const u32) -> c_int;
type DecideFn = unsafe extern "C" fn(*mut Decision) -> c_int;

/// hotswap's validated copy of a decision policy's table.
pub(crate) struct PolicyInfo {
    /// Address of the registered table: the registrant's identity.
    table: usize,
    pub(crate) interface: Name,
    pub(crate) name: Name,
    /// The interposer the policy needs on every object (all zero: none).
    pub(crate) monitor: Name,
    /// The interface's module, pinned by this registration unless it is
    /// the policy's own module: an interface must not unload from under
    /// a policy registered for it.
    interface_pin: Option<ModulePtr>,
    default_params: [u32; POLICY_PARAMS],
    check: Option<CheckFn>,
    decide: DecideFn,
}

// SAFETY: The callbacks live in the registering module, which stays
// loaded while the policy is registered; everything else is plain data.
unsafe impl Send for PolicyInfo {}
// SAFETY: As for `Send`; nothing is mutable.
unsafe impl Sync for PolicyInfo {}

impl PolicyInfo {
    /// Asks the policy. Called with the registry locked, so the policy
    /// cannot be unregistered (and its module go) during the call.
    /// `Ok(true)`: swap to `d.target`, which the caller still checks.
    pub(crate) fn decide(&self, _locked: &Registry, d: &mut Decision) -> Result<bool> {
        // SAFETY: The callback comes from a registered policy (see above);
        // `d` is exclusively ours for the call.
        match unsafe { (self.decide)(d) } {
            0 => Ok(false),
            1 => Ok(true),
            ret @ -4095..=-1 => Err(Error::from_errno(ret)),
            ret => {
                pr_warn!(
                    "{}/{}: policy decide returned {}, out of range: ignored\n",
                    name_str(&self.interface),
                    name_str(&self.name),
                    ret
                );
                crate::registry::misbehavior::count_misbehavior();
                Err(EPROTO)
            }
        }
    }
}

/// All registered interfaces, implementations and decision policies.
pub(crate) struct Registry {
    interfaces: KVec<InterfaceEntry>,
    impls: KVec<Arc<ImplInfo>>,
    policies: KVec<Arc<PolicyInfo>>,
    /// Interfaces retired while implementations or policies were still
    /// registered under them ([`Registry::retire_interface`]): no longer
    /// found, and their names not registrable again until the last of
    /// those goes. Room for every registered interface is reserved at
    /// registration, so retiring never allocates.
    retired_interfaces: KVec<Name>,
    /// Implementations retired while objects still used them
    /// ([`Registry::retire_impl`]): no longer found, but their interface's
    /// name is not free while they have objects (a new interface of that
    /// name, with another method table, must not meet those objects).
    /// Dropped once unused; room reserved at registration, as above.
    retired_impls: KVec<Arc<ImplInfo>>,
}

/// Checks the header every table starts with.
fn validate_header(abi_version: u32, size: u32, expected_size: usize) -> Result {
    if abi_version != ABI_VERSION {
        pr_err!(
            "a module built for ABI {} tried to register; hotswap speaks ABI {}\n",
            abi_version,
            ABI_VERSION
        );
        return Err(EPROTO);
    }
    if size as usize != expected_size {
        return Err(EINVAL);
    }
    Ok(())
}

/// Checks that an implementation's callbacks and formats fit together.
fn validate_callbacks(ops: &ImplOps) -> Result {
    let has_exports = ops.export_formats[0] != 0;
    let has_imports = ops.import_formats[0] != 0;
    let kind_ok = ops.kind == api::KIND_OBJECT || ops.kind == api::KIND_INTERPOSER;
    let create_ok = ops.create.is_none() || (ops.destroy.is_some() && !ops.methods.is_null());
    let export_ok = !has_exports || (ops.export.is_some() && ops.release.is_some());
    let import_ok = !has_imports || ops.import.is_some();
    let interposer_ok = ops.kind != api::KIND_INTERPOSER || (!has_exports && !has_imports);
    if kind_ok && create_ok && export_ok && import_ok && interposer_ok {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

impl Registry {
    /// An empty registry.
    pub(crate) const fn new() -> Self {
        Self {
            interfaces: KVec::new(),
            impls: KVec::new(),
            policies: KVec::new(),
            retired_interfaces: KVec::new(),
            retired_impls: KVec::new(),
        }
    }

    fn interface(&self, name: &Name) -> Option<&InterfaceEntry> {
        self.interfaces.iter().find(|i| i.name == *name)
    }

    fn find(&self, interface: &Name, name: &Name) -> Option<&Arc<ImplInfo>> {
        self.impls
            .iter()
            .find(|i| i.interface == *interface && i.name == *name)
    }

    /// `EPROTO` unless `interface`'s method table has this version and
    /// size (`ENOENT` if there is no such interface).
    pub(crate) fn check_methods(&self, interface: &Name, version: u32, size: u32) -> Result {
        let iface = self.interface(interface).ok_or(ENOENT)?;
        if iface.methods_version != version || iface.methods_size != size {
            return Err(EPROTO);
        }
        Ok(())
    }

    /// Registers an interface table.
    pub(crate) fn register_interface(&mut self, ops: &InterfaceOps) -> Result {
        validate_header(ops.abi_version, ops.size, size_of::<InterfaceOps>())?;
        validate_name(&ops.name)?;
        if ops.known_good[0] != 0 {
            validate_name(&ops.known_good)?;
        }
        if self.interface(&ops.name).is_some() {
            return Err(EEXIST);
        }
        self.reap();
        if self.retired_interfaces.contains(&ops.name) {
            // Its predecessor's implementations, checked against another
            // method table, would be found under it.
            return Err(EBUSY);
        }
        self.retired_interfaces
            .reserve(self.interfaces.len() + 1, GFP_KERNEL)?;
        self.interfaces.push(
            InterfaceEntry {
                table: core::ptr::from_ref(ops) as usize,
                name: ops.name,
                owner: ModulePtr(ops.owner.cast()),
                methods_version: ops.methods_version,
                methods_size: ops.methods_size,
                known_good: ops.known_good,
                default_impl: [0; NAME_LEN],
                policy: None,
                params: [0; POLICY_PARAMS],
            },
            GFP_KERNEL,
        )?;
        pr_info!("registered interface {}\n", name_str(&ops.name));
        Ok(())
    }

    /// Unregisters an interface table; `EBUSY` while it has implementations.
    pub(crate) fn unregister_interface(&mut self, ops: *const InterfaceOps) -> Result {
        let pos = self
            .interfaces
            .iter()
            .position(|i| i.table == ops as usize)
            .ok_or(ENOENT)?;
        let name = self.interfaces[pos].name;
        if self.in_use(&name) {
            return Err(EBUSY);
        }
        self.interfaces.remove(pos)?;
        Ok(())
    }

    /// Unregisters an interface table for a registrant that is going away
    /// and cannot take no for an answer (its `Drop`). If implementations
    /// or policies are still registered under it (its own module's,
    /// dropped after it), the interface is retired instead: no longer
    /// found, so nothing new is created under it, and its name stays taken
    /// until the last of them unregisters. Only `ENOENT`, for a table
    /// never registered.
    pub(crate) fn retire_interface(&mut self, ops: *const InterfaceOps) -> Result {
        match self.unregister_interface(ops) {
            Err(e) if e == EBUSY => {}
            done => return done,
        }
        let pos = self
            .interfaces
            .iter()
            .position(|i| i.table == ops as usize)
            .ok_or(ENOENT)?;
        let entry = self.interfaces.remove(pos)?;
        // Room was reserved when it registered.
        self.retired_interfaces
            .push_within_capacity(entry.name)
            .map_err(|_| ENOMEM)?;
        pr_info!(
            "retired interface {}: implementations or policies still registered under it\n",
            name_str(&entry.name)
        );
        Ok(())
    }

    /// Whether implementations or policies are registered under
    /// `interface`, or objects still use a retired implementation of it.
    fn in_use(&self, interface: &Name) -> bool {
        self.impls.iter().any(|i| i.interface == *interface)
            || self
                .retired_impls
                .iter()
                .any(|i| i.interface == *interface && i.users() != 0)
            || self.policies.iter().any(|p| p.interface == *interface)
    }

    /// Drops retired implementations nothing uses any more, then frees the
    /// names of retired interfaces nothing is left under.
    fn reap(&mut self) {
        self.retired_impls.retain(|i| i.users() != 0);
        let mut retired = core::mem::replace(&mut self.retired_interfaces, KVec::new());
        retired.retain(|name| self.in_use(name));
        self.retired_interfaces = retired;
    }

    /// Registers an implementation table under its interface.
    pub(crate) fn register_impl(&mut self, ops: &ImplOps) -> Result {
        validate_header(ops.abi_version, ops.size, size_of::<ImplOps>())?;
        validate_name(&ops.interface)?;
        validate_name(&ops.name)?;
        validate_callbacks(ops)?;
        let iface = self.interface(&ops.interface).ok_or(ENOENT)?;
        if ops.methods_version != iface.methods_version || ops.methods_size != iface.methods_size {
            pr_err!(
                "{}/{}: built for method table version {} ({} bytes); the interface has version {} ({} bytes)\n",
                name_str(&ops.interface),
                name_str(&ops.name),
                ops.methods_version,
                ops.methods_size,
                iface.methods_version,
                iface.methods_size
            );
            return Err(EPROTO);
        }
        let interface_owner = iface.owner;
        if self.find(&ops.interface, &ops.name).is_some() {
            return Err(EEXIST);
        }
        let info = Arc::new(
            ImplInfo {
                table: core::ptr::from_ref(ops) as usize,
                interface: ops.interface,
                name: ops.name,
                owner: ModulePtr(ops.owner.cast()),
                interface_pin: (interface_owner.0 != ops.owner.cast()).then_some(interface_owner),
                kind: ops.kind,
                export_formats: ops.export_formats,
                import_formats: ops.import_formats,
                methods: ops.methods,
                create: ops.create,
                destroy: ops.destroy,
                export: ops.export,
                import: ops.import,
                release: ops.release,
                report: ops.report,
                users: Atomic::new(0),
                quarantined: Atomic::new(false),
            },
            GFP_KERNEL,
        )?;
        self.impls.reserve(1, GFP_KERNEL)?;
        self.reap();
        self.retired_impls
            .reserve(self.impls.len() + 1, GFP_KERNEL)?;
        if let Some(pin) = info.interface_pin {
            pin.get()?;
        }
        // Capacity was reserved above.
        let _ = self.impls.push(info, GFP_KERNEL);
        pr_info!(
            "registered implementation {}/{}\n",
            name_str(&ops.interface),
            name_str(&ops.name)
        );
        Ok(())
    }

    /// Unregisters an implementation table; `EBUSY` while objects use it.
    pub(crate) fn unregister_impl(&mut self, ops: *const ImplOps) -> Result {
        let pos = self
            .impls
            .iter()
            .position(|i| i.table == ops as usize)
            .ok_or(ENOENT)?;
        if self.impls[pos].users() != 0 {
            return Err(EBUSY);
        }
        let info = self.impls.remove(pos)?;
        if let Some(pin) = info.interface_pin {
            pin.put();
        }
        self.reap();
        Ok(())
    }

    /// Unregisters an implementation table for a registrant that is going
    /// away and cannot take no for an answer (its `Drop`). If objects
    /// still use it, it is retired instead: no longer found (no new
    /// objects or swaps to it, and its name is free), while its objects
    /// keep their pins (their own reference to its `ImplInfo`, and its
    /// module) until they go. Only `ENOENT`, for a table never registered.
    pub(crate) fn retire_impl(&mut self, ops: *const ImplOps) -> Result {
        match self.unregister_impl(ops) {
            Err(e) if e == EBUSY => {}
            done => return done,
        }
        let pos = self
            .impls
            .iter()
            .position(|i| i.table == ops as usize)
            .ok_or(ENOENT)?;
        let info = self.impls.remove(pos)?;
        // No longer registered under the interface: the interface's module
        // may go (the objects' owner holds them, not the interface).
        if let Some(pin) = info.interface_pin {
            pin.put();
        }
        pr_info!(
            "retired implementation {}/{}: {} objects still use it\n",
            name_str(&info.interface),
            name_str(&info.name),
            info.users()
        );
        // Room was reserved when it registered; if it were not there, the
        // objects would still hold the `ImplInfo` (only the name
        // reservation would be lost).
        let _ = self.retired_impls.push_within_capacity(info);
        self.reap();
        Ok(())
    }

    /// Whether `interface` has an implementation called `name`.
    pub(crate) fn find_impl(&self, interface: &Name, name: &Name) -> bool {
        self.find(interface, name).is_some()
    }

    /// Pins the implementation `name` of `interface` (`None`: the default
    /// object implementation) for a new object or interposer.
    ///
    /// A quarantined implementation is refused (`ENOTRECOVERABLE`) when
    /// named, and passed over as a default.
    pub(crate) fn pin(&self, interface: &Name, name: Option<&Name>) -> Result<ImplPin> {
        let iface = self.interface(interface).ok_or(ENOENT)?;
        let imp = match name {
            Some(name) => {
                let imp = self.find(interface, name).ok_or(ENOENT)?;
                if imp.quarantined() {
                    return Err(ENOTRECOVERABLE);
                }
                Some(imp)
            }
            None => self
                .find(interface, &iface.default_impl)
                .filter(|i| !i.quarantined())
                .or_else(|| self.fallback(interface, None)),
        };
        ImplPin::new(imp.ok_or(ENOENT)?)
    }

    /// Where objects go when their implementation (`except`) is
    /// quarantined, and what new objects get when no default was set: the
    /// known-good implementation, else the first registered object
    /// implementation, never a quarantined one.
    pub(crate) fn fallback(
        &self,
        interface: &Name,
        except: Option<&Name>,
    ) -> Option<&Arc<ImplInfo>> {
        let iface = self.interface(interface)?;
        let usable = |i: &&Arc<ImplInfo>| {
            i.kind == api::KIND_OBJECT && !i.quarantined() && except != Some(&i.name)
        };
        self.find(interface, &iface.known_good)
            .filter(usable)
            .or_else(|| {
                self.impls
                    .iter()
                    .filter(|i| i.interface == *interface)
                    .find(usable)
            })
    }

    /// A quarantined implementation `name` of `interface`, registered or
    /// retired (objects may still use a retired one).
    pub(crate) fn quarantined(&self, interface: &Name, name: &Name) -> Option<&Arc<ImplInfo>> {
        let bad =
            |i: &&Arc<ImplInfo>| i.interface == *interface && i.name == *name && i.quarantined();
        self.impls
            .iter()
            .find(bad)
            .or_else(|| self.retired_impls.iter().find(bad))
    }

    /// The kind of implementation `name` of `interface`; `ENOENT` if none.
    pub(crate) fn kind_of(&self, interface: &Name, name: &Name) -> Result<u32> {
        self.find(interface, name).map(|i| i.kind).ok_or(ENOENT)
    }

    /// Makes `name` the implementation new objects of `interface` get.
    pub(crate) fn set_default(&mut self, interface: &Name, name: &Name) -> Result {
        let imp = self.find(interface, name).ok_or(ENOENT)?;
        if imp.kind != api::KIND_OBJECT {
            return Err(EINVAL);
        }
        let pos = self
            .interfaces
            .iter()
            .position(|i| i.name == *interface)
            .ok_or(ENOENT)?;
        self.interfaces[pos].default_impl = *name;
        Ok(())
    }

    /// Puts back a default read by [`Registry::default_impl`] (`None`: the
    /// first registered object implementation again).
    pub(crate) fn restore_default(&mut self, interface: &Name, previous: Option<Name>) {
        if let Some(i) = self.interfaces.iter_mut().find(|i| i.name == *interface) {
            i.default_impl = previous.unwrap_or([0; NAME_LEN]);
        }
    }

    /// The default implementation of `interface`, if one was set.
    pub(crate) fn default_impl(&self, interface: &Name) -> Option<Name> {
        self.interface(interface)
            .map(|i| i.default_impl)
            .filter(|d| d[0] != 0)
    }

    /// Every registered interface name.
    pub(crate) fn interfaces(&self) -> impl Iterator<Item = &Name> {
        self.interfaces.iter().map(|i| &i.name)
    }

    /// Every registered implementation.
    pub(crate) fn impls(&self) -> &[Arc<ImplInfo>] {
        &self.impls
    }

    /// Registers a decision policy table under its interface.
    pub(crate) fn register_policy(&mut self, ops: &DecisionOps) -> Result {
        validate_header(ops.abi_version, ops.size, size_of::<DecisionOps>())?;
        validate_name(&ops.interface)?;
        let name = validate_name(&ops.name)?;
        if name.to_bytes() == b"off" {
            return Err(EINVAL);
        }
        if ops.monitor[0] != 0 {
            validate_name(&ops.monitor)?;
        }
        let decide = ops.decide.ok_or(EINVAL)?;
        let interface_owner = self.interface(&ops.interface).ok_or(ENOENT)?.owner;
        if self.policy(&ops.interface, &ops.name).is_some() {
            return Err(EEXIST);
        }
        let interface_pin = (interface_owner.0 != ops.owner.cast()).then_some(interface_owner);
        let info = Arc::new(
            PolicyInfo {
                table: core::ptr::from_ref(ops) as usize,
                interface: ops.interface,
                name: ops.name,
                monitor: ops.monitor,
                interface_pin,
                default_params: ops.default_params,
                check: ops.check,
                decide,
            },
            GFP_KERNEL,
        )?;
        self.policies.reserve(1, GFP_KERNEL)?;
        if let Some(pin) = interface_pin {
            pin.get()?;
        }
        // Capacity was reserved above.
        let _ = self.policies.push(info, GFP_KERNEL);
        pr_info!(
            "registered decision policy {}/{}\n",
            name_str(&ops.interface),
            name_str(&ops.name)
        );
        Ok(())
    }

    /// Unregisters a decision policy; an interface that had it picked is
    /// `off` afterwards.
    pub(crate) fn unregister_policy(&mut self, ops: *const DecisionOps) -> Result {
        let pos = self
            .policies
            .iter()
            .position(|p| p.table == ops as usize)
            .ok_or(ENOENT)?;
        let info = self.policies.remove(pos)?;
        if let Some(pin) = info.interface_pin {
            pin.put();
        }
        self.reap();
        for iface in self.interfaces.iter_mut() {
            if iface.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, &info)) {
                pr_info!(
                    "{}: decision policy {} unregistered; policy off\n",
                    name_str(&iface.name),
                    name_str(&info.name)
                );
                iface.policy = None;
                iface.params = [0; POLICY_PARAMS];
            }
        }
        Ok(())
    }

    fn policy(&self, interface: &Name, name: &Name) -> Option<&Arc<PolicyInfo>> {
        self.policies
            .iter()
            .find(|p| p.interface == *interface && p.name == *name)
    }

    /// Picks decision policy `name` (`None`: off) for `interface` with
    /// `params` (all zero: the policy's defaults), after the policy has
    /// checked them. Returns the policy picked.
    pub(crate) fn pick_policy(
        &mut self,
        interface: &Name,
        name: Option<&Name>,
        params: [u32; POLICY_PARAMS],
    ) -> Result<Option<Arc<PolicyInfo>>> {
        let pos = self
            .interfaces
            .iter()
            .position(|i| i.name == *interface)
            .ok_or(ENOENT)?;
        let Some(name) = name else {
            self.interfaces[pos].policy = None;
            self.interfaces[pos].params = [0; POLICY_PARAMS];
            return Ok(None);
        };
        let info = self.policy(interface, name).ok_or(ENOENT)?.clone();
        if info.monitor[0] != 0 && self.kind_of(interface, &info.monitor)? != api::KIND_INTERPOSER {
            return Err(EINVAL);
        }
        let params = if params == [0; POLICY_PARAMS] {
            info.default_params
        } else {
            params
        };
        if let Some(check) = info.check {
            // SAFETY: A registered policy's callback (its module is
            // loaded while registered, and the registry is locked);
            // `params` is an array of `POLICY_PARAMS` words.
            let ret = unsafe { check(params.as_ptr()) };
            if ret != 0 {
                return Err(if (-4095..0).contains(&ret) {
                    Error::from_errno(ret)
                } else {
                    EINVAL
                });
            }
        }
        self.interfaces[pos].policy = Some(info.clone());
        self.interfaces[pos].params = params;
        Ok(Some(info))
    }

    /// The decision policy picked for `interface` and its parameters.
    pub(crate) fn picked_policy(
        &self,
        interface: &Name,
    ) -> Result<(Option<Arc<PolicyInfo>>, [u32; POLICY_PARAMS])> {
        let iface = self.interface(interface).ok_or(ENOENT)?;
        Ok((iface.policy.clone(), iface.params))
    }

    /// The decision policies registered for `interface`.
    pub(crate) fn policies_of<'a>(
        &'a self,
        interface: &'a Name,
    ) -> impl Iterator<Item = &'a Arc<PolicyInfo>> + 'a {
        self.policies
            .iter()
            .filter(move |p| p.interface == *interface)
    }

    /// Every registered decision policy.
    pub(crate) fn policies(&self) -> &[Arc<PolicyInfo>] {
        &self.policies
    }
}

#[kunit_tests(hotswap_registry)]
mod tests {
    use super::*;
    use crate::api::name_from_cstr;
    use core::ptr::null_mut;

    fn interface_table(name: &CStr) -> Result<InterfaceOps> {
        Ok(InterfaceOps {
            abi_version: ABI_VERSION,
            size: size_of::<InterfaceOps>() as u32,
            name: name_from_cstr(name)?,
            owner: null_mut(),
            methods_version: 1,
            methods_size: 8,
            known_good: [0; NAME_LEN],
        })
    }

    fn impl_table(interface: &CStr, name: &CStr) -> Result<ImplOps> {
        Ok(ImplOps {
            size: size_of::<ImplOps>() as u32,
            interface: name_from_cstr(interface)?,
            name: name_from_cstr(name)?,
            methods_version: 1,
            methods_size: 8,
            ..ImplOps::empty()
        })
    }

    unsafe extern "C" fn never(_: *mut Decision) -> c_int {
        0
    }

    fn policy_table(interface: &CStr, name: &CStr) -> Result<DecisionOps> {
        Ok(DecisionOps {
            abi_version: ABI_VERSION,
            size: size_of::<DecisionOps>() as u32,
            interface: name_from_cstr(interface)?,
            name: name_from_cstr(name)?,
            owner: null_mut(),
            monitor: [0; NAME_LEN],
            default_params: [7, 0, 0, 0],
            check: None,
            decide: Some(never),
        })
    }

    #[test]
    fn method_table_mismatch_is_eproto() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        let mut old = impl_table(c"test", c"old")?;
        old.methods_version = 2;
        let mut short = impl_table(c"test", c"short")?;
        short.methods_size = 4;
        reg.register_interface(&iface)?;
        assert_eq!(reg.register_impl(&old), Err(EPROTO));
        assert_eq!(reg.register_impl(&short), Err(EPROTO));
        assert!(reg.impls.is_empty());
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn known_good_is_the_default() -> Result {
        let mut reg = Registry::new();
        let mut iface = interface_table(c"test")?;
        iface.known_good = name_from_cstr(c"two")?;
        let one = impl_table(c"test", c"one")?;
        let two = impl_table(c"test", c"two")?;
        reg.register_interface(&iface)?;
        reg.register_impl(&one)?;
        // The known-good one is not there yet: the first registered.
        assert!(reg.pin(&iface.name, None)?.name == one.name);
        reg.register_impl(&two)?;
        assert!(reg.pin(&iface.name, None)?.name == two.name);
        reg.set_default(&iface.name, &one.name)?;
        assert!(reg.pin(&iface.name, None)?.name == one.name);
        reg.unregister_impl(&one)?;
        reg.unregister_impl(&two)?;
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn quarantined_is_refused_and_passed_over() -> Result {
        let mut reg = Registry::new();
        let mut iface = interface_table(c"test")?;
        iface.known_good = name_from_cstr(c"good")?;
        let good = impl_table(c"test", c"good")?;
        let bad = impl_table(c"test", c"bad")?;
        reg.register_interface(&iface)?;
        reg.register_impl(&bad)?;
        reg.register_impl(&good)?;
        reg.set_default(&iface.name, &bad.name)?;
        assert!(reg.pin(&iface.name, None)?.name == bad.name);
        // Nothing else is quarantined while the module's own tests run.
        assert!(crate::registry::misbehavior::take_ejections().is_empty());
        reg.find(&iface.name, &bad.name)
            .ok_or(ENOENT)?
            .misbehaved(format_args!("a test"));
        // Quarantined: refused by name, passed over as the default, not a
        // fallback, queued once for ejection.
        assert!(matches!(reg.pin(&iface.name, Some(&bad.name)), Err(e) if e == ENOTRECOVERABLE));
        assert!(reg.pin(&iface.name, None)?.name == good.name);
        assert!(reg
            .fallback(&iface.name, Some(&bad.name))
            .is_some_and(|f| f.name == good.name));
        assert!(reg.quarantined(&iface.name, &bad.name).is_some());
        let queued = crate::registry::misbehavior::take_ejections();
        assert!(queued.len() == 1 && queued[0].1 == bad.name);
        reg.find(&iface.name, &bad.name)
            .ok_or(ENOENT)?
            .misbehaved(format_args!("again"));
        assert!(crate::registry::misbehavior::take_ejections().is_empty());
        // Registered again: a fresh start.
        reg.unregister_impl(&bad)?;
        reg.register_impl(&bad)?;
        assert!(reg.quarantined(&iface.name, &bad.name).is_none());
        reg.unregister_impl(&bad)?;
        reg.unregister_impl(&good)?;
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn picked_policy_goes_off_when_unregistered() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        let pol = policy_table(c"test", c"pol")?;
        let off = policy_table(c"test", c"off")?;
        reg.register_interface(&iface)?;
        assert_eq!(reg.register_policy(&off), Err(EINVAL));
        reg.register_policy(&pol)?;
        assert_eq!(
            reg.register_policy(&policy_table(c"test", c"pol")?),
            Err(EEXIST)
        );
        assert_eq!(reg.unregister_interface(&iface), Err(EBUSY));
        let other = name_from_cstr(c"nope")?;
        assert!(
            matches!(reg.pick_policy(&iface.name, Some(&other), [0; 4]), Err(e) if e == ENOENT)
        );
        reg.pick_policy(&iface.name, Some(&pol.name), [0; 4])?;
        let (picked, params) = reg.picked_policy(&iface.name)?;
        assert!(picked.is_some() && params == [7, 0, 0, 0]);
        reg.unregister_policy(&pol)?;
        let (picked, params) = reg.picked_policy(&iface.name)?;
        assert!(picked.is_none() && params == [0; 4]);
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn register_find_unregister_round_trip() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        let imp = impl_table(c"test", c"one")?;
        reg.register_interface(&iface)?;
        assert!(!reg.find_impl(&imp.interface, &imp.name));
        reg.register_impl(&imp)?;
        assert!(reg.find_impl(&imp.interface, &imp.name));
        reg.unregister_impl(&imp)?;
        assert!(!reg.find_impl(&imp.interface, &imp.name));
        reg.unregister_interface(&iface)?;
        assert!(reg.interfaces.is_empty() && reg.impls.is_empty());
        Ok(())
    }

    #[test]
    fn double_registration_is_eexist() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        let iface_again = interface_table(c"test")?;
        let imp = impl_table(c"test", c"one")?;
        let imp_again = impl_table(c"test", c"one")?;
        reg.register_interface(&iface)?;
        assert_eq!(reg.register_interface(&iface_again), Err(EEXIST));
        reg.register_impl(&imp)?;
        assert_eq!(reg.register_impl(&imp_again), Err(EEXIST));
        assert_eq!(reg.impls.len(), 1);
        reg.unregister_impl(&imp)?;
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn unregister_unknown_is_enoent() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        let stranger = interface_table(c"test")?;
        let imp = impl_table(c"test", c"one")?;
        assert_eq!(reg.unregister_impl(&imp), Err(ENOENT));
        assert_eq!(reg.unregister_interface(&iface), Err(ENOENT));
        reg.register_interface(&iface)?;
        // Same name, different table: only the registrant may unregister.
        assert_eq!(reg.unregister_interface(&stranger), Err(ENOENT));
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn interface_with_implementations_is_busy() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        let imp = impl_table(c"test", c"one")?;
        reg.register_interface(&iface)?;
        reg.register_impl(&imp)?;
        assert_eq!(reg.unregister_interface(&iface), Err(EBUSY));
        reg.unregister_impl(&imp)?;
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn implementation_in_use_is_busy() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        let imp = impl_table(c"test", c"one")?;
        reg.register_interface(&iface)?;
        reg.register_impl(&imp)?;
        let pin = reg.pin(&imp.interface, None)?;
        assert_eq!(pin.users(), 1);
        assert_eq!(reg.unregister_impl(&imp), Err(EBUSY));
        drop(pin);
        reg.unregister_impl(&imp)?;
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn default_implementation() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        let one = impl_table(c"test", c"one")?;
        let two = impl_table(c"test", c"two")?;
        reg.register_interface(&iface)?;
        reg.register_impl(&one)?;
        reg.register_impl(&two)?;
        // No default set: the first object implementation.
        assert!(reg.pin(&one.interface, None)?.name == one.name);
        reg.set_default(&one.interface, &two.name)?;
        assert!(reg.pin(&one.interface, None)?.name == two.name);
        assert_eq!(
            reg.set_default(&one.interface, &[0; NAME_LEN]).err(),
            Some(ENOENT)
        );
        reg.unregister_impl(&one)?;
        reg.unregister_impl(&two)?;
        reg.unregister_interface(&iface)?;
        Ok(())
    }

    #[test]
    fn implementation_needs_its_interface() -> Result {
        let mut reg = Registry::new();
        let imp = impl_table(c"nosuch", c"one")?;
        assert_eq!(reg.register_impl(&imp), Err(ENOENT));
        Ok(())
    }

    #[test]
    fn malformed_tables_are_rejected() -> Result {
        let mut reg = Registry::new();
        let mut wrong_abi = interface_table(c"test")?;
        wrong_abi.abi_version = ABI_VERSION + 1;
        assert_eq!(reg.register_interface(&wrong_abi), Err(EPROTO));
        let mut wrong_size = interface_table(c"test")?;
        wrong_size.size -= 1;
        assert_eq!(reg.register_interface(&wrong_size), Err(EINVAL));
        let mut unterminated = interface_table(c"test")?;
        unterminated.name = [b'a'; NAME_LEN];
        assert_eq!(reg.register_interface(&unterminated), Err(EINVAL));
        // `name_from_cstr` refuses it too: spelled out byte by byte.
        assert_eq!(name_from_cstr(c"Test").err(), Some(EINVAL));
        let mut upper = interface_table(c"test")?;
        upper.name[0] = b'T';
        assert_eq!(reg.register_interface(&upper), Err(EINVAL));
        let mut empty = interface_table(c"test")?;
        empty.name = [0; NAME_LEN];
        assert_eq!(reg.register_interface(&empty), Err(EINVAL));
        assert!(reg.interfaces.is_empty());
        Ok(())
    }

    #[test]
    fn inconsistent_callbacks_are_rejected() -> Result {
        let mut reg = Registry::new();
        let iface = interface_table(c"test")?;
        reg.register_interface(&iface)?;
        let mut bad_kind = impl_table(c"test", c"one")?;
        bad_kind.kind = 7;
        assert_eq!(reg.register_impl(&bad_kind), Err(EINVAL));
        let mut exports_without_callback = impl_table(c"test", c"one")?;
        exports_without_callback.export_formats[0] = 1;
        assert_eq!(reg.register_impl(&exports_without_callback), Err(EINVAL));
        let mut imports_without_callback = impl_table(c"test", c"one")?;
        imports_without_callback.import_formats[0] = 1;
        assert_eq!(reg.register_impl(&imports_without_callback), Err(EINVAL));
        assert!(reg.impls.is_empty());
        reg.unregister_interface(&iface)?;
        Ok(())
    }
}
