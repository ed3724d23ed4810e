// SPDX-License-Identifier: GPL-2.0
//! The registry: interfaces and their implementations, by name.
//!
//! Modules register `#[repr(C)]` tables through the entry points in
//! `entry.rs`; the registry validates each table (ABI version, size, names)
//! before it trusts a single field, keeps a copy of the names, and
//! remembers the table's address as its identity so that only the
//! registrant can unregister it.
//!
//! An implementation registered under an interface pins the interface's
//! module (`try_module_get`), so an interface cannot disappear from under
//! its implementations.

use crate::api::{ImplOps, InterfaceOps, Name, ABI_VERSION, NAME_LEN};
use core::ffi::CStr;
use kernel::prelude::*;

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init before any entry point can run.
    pub(crate) unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry::new();
}

/// A module pointer kept only as an identity and for reference counting.
#[derive(Clone, Copy)]
struct ModulePtr(*mut kernel::bindings::module);

// SAFETY: `struct module` may be referenced from any thread; the registry
// only passes it to `try_module_get`/`module_put`.
unsafe impl Send for ModulePtr {}

impl ModulePtr {
    fn get(self) -> Result {
        // SAFETY: The pointer comes from a registering module, which is live
        // while it registers; `try_module_get` accepts NULL (built-in code).
        if unsafe { kernel::bindings::try_module_get(self.0) } {
            Ok(())
        } else {
            Err(ENODEV)
        }
    }

    fn put(self) {
        // SAFETY: Pairs with a successful `get`.
        unsafe { kernel::bindings::module_put(self.0) };
    }
}

struct InterfaceEntry {
    /// Address of the registered table: the registrant's identity.
    ops: usize,
    name: Name,
    owner: ModulePtr,
}

struct ImplEntry {
    /// Address of the registered table: the registrant's identity.
    ops: usize,
    interface: Name,
    name: Name,
    /// The interface's module, pinned while this entry exists.
    interface_owner: ModulePtr,
}

/// All registered interfaces and implementations.
pub(crate) struct Registry {
    interfaces: KVec<InterfaceEntry>,
    impls: KVec<ImplEntry>,
}

/// Checks a name field: NUL-terminated, non-empty, `[a-z0-9_]`.
pub(crate) fn validate_name(name: &Name) -> Result<&CStr> {
    let s = CStr::from_bytes_until_nul(name).map_err(|_| EINVAL)?;
    let bytes = s.to_bytes();
    let valid_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_';
    if bytes.is_empty() || bytes.len() >= NAME_LEN || !bytes.iter().all(valid_char) {
        return Err(EINVAL);
    }
    Ok(s)
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

impl Registry {
    /// An empty registry.
    pub(crate) const fn new() -> Self {
        Self {
            interfaces: KVec::new(),
            impls: KVec::new(),
        }
    }

    fn interface(&self, name: &Name) -> Option<&InterfaceEntry> {
        self.interfaces.iter().find(|i| i.name == *name)
    }

    /// Registers an interface table.
    pub(crate) fn register_interface(&mut self, ops: &InterfaceOps) -> Result {
        validate_header(ops.abi_version, ops.size, size_of::<InterfaceOps>())?;
        let name = validate_name(&ops.name)?;
        if self.interface(&ops.name).is_some() {
            return Err(EEXIST);
        }
        self.interfaces.push(
            InterfaceEntry {
                ops: core::ptr::from_ref(ops) as usize,
                name: ops.name,
                owner: ModulePtr(ops.owner.cast()),
            },
            GFP_KERNEL,
        )?;
        pr_info!(
            "registered interface {}\n",
            name.to_str().unwrap_or("?")
        );
        Ok(())
    }

    /// Unregisters an interface table; `EBUSY` while it has implementations.
    pub(crate) fn unregister_interface(&mut self, ops: *const InterfaceOps) -> Result {
        let pos = self
            .interfaces
            .iter()
            .position(|i| i.ops == ops as usize)
            .ok_or(ENOENT)?;
        let name = self.interfaces[pos].name;
        if self.impls.iter().any(|i| i.interface == name) {
            return Err(EBUSY);
        }
        self.interfaces.remove(pos)?;
        Ok(())
    }

    /// Registers an implementation table under its interface.
    pub(crate) fn register_impl(&mut self, ops: &ImplOps) -> Result {
        validate_header(ops.abi_version, ops.size, size_of::<ImplOps>())?;
        let interface = validate_name(&ops.interface)?;
        let name = validate_name(&ops.name)?;
        let owner = self.interface(&ops.interface).ok_or(ENOENT)?.owner;
        if self.find_impl(&ops.interface, &ops.name) {
            return Err(EEXIST);
        }
        owner.get()?;
        let entry = ImplEntry {
            ops: core::ptr::from_ref(ops) as usize,
            interface: ops.interface,
            name: ops.name,
            interface_owner: owner,
        };
        if let Err(err) = self.impls.push(entry, GFP_KERNEL) {
            owner.put();
            return Err(err.into());
        }
        pr_info!(
            "registered implementation {}/{}\n",
            interface.to_str().unwrap_or("?"),
            name.to_str().unwrap_or("?")
        );
        Ok(())
    }

    /// Unregisters an implementation table.
    pub(crate) fn unregister_impl(&mut self, ops: *const ImplOps) -> Result {
        let pos = self
            .impls
            .iter()
            .position(|i| i.ops == ops as usize)
            .ok_or(ENOENT)?;
        let entry = self.impls.remove(pos)?;
        entry.interface_owner.put();
        Ok(())
    }

    /// Whether `interface` has an implementation called `name`.
    pub(crate) fn find_impl(&self, interface: &Name, name: &Name) -> bool {
        self.impls
            .iter()
            .any(|i| i.interface == *interface && i.name == *name)
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
        })
    }

    fn impl_table(interface: &CStr, name: &CStr) -> Result<ImplOps> {
        Ok(ImplOps {
            abi_version: ABI_VERSION,
            size: size_of::<ImplOps>() as u32,
            interface: name_from_cstr(interface)?,
            name: name_from_cstr(name)?,
            owner: null_mut(),
        })
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
        let upper = interface_table(c"Test")?;
        assert_eq!(reg.register_interface(&upper), Err(EINVAL));
        let mut empty = interface_table(c"test")?;
        empty.name = [0; NAME_LEN];
        assert_eq!(reg.register_interface(&empty), Err(EINVAL));
        assert!(reg.interfaces.is_empty());
        Ok(())
    }
}
