// SPDX-License-Identifier: GPL-2.0
//! Cross-module KUnit suite for the hotswap module ABI: everything here
//! goes through the symbols hotswap.ko exports, exactly as an
//! implementation module would, including the malformed tables a module
//! built against another revision of `api.rs` would pass.

use kernel::prelude::*;

#[path = "../../rust/abi/api.rs"]
pub mod api;

module! {
    type: AbiTestModule,
    name: "hotswap_abi_test",
    authors: ["hotswap developers"],
    description: "KUnit: the hotswap cross-module ABI",
    license: "GPL",
}

struct AbiTestModule;

impl kernel::Module for AbiTestModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

#[kunit_tests(hotswap_abi)]
mod tests {
    use super::api::{
        self, DecisionPolicy, ImplOps, Implementation, Interface, InterfaceOps,
        InterfaceRegistration, PolicyRegistration, Reason, Registration, POLICY_PARAMS,
        SAMPLE_WORDS, STATE_WORDS,
    };
    use core::ptr::null;
    use kernel::prelude::*;

    const INTERFACE: &CStr = c"abi_test";

    /// The interface under test; its "method table" is two words.
    struct AbiTest;

    impl Interface for AbiTest {
        const NAME: &'static CStr = INTERFACE;
        const METHODS_VERSION: u32 = 3;
        type Methods = [usize; 2];
    }

    /// An interface by the name hotswap_fcm registers.
    struct Taken;

    impl Interface for Taken {
        const NAME: &'static CStr = c"fcm";
        const METHODS_VERSION: u32 = 1;
        type Methods = usize;
    }

    struct Probe;

    impl Implementation for Probe {
        type Interface = AbiTest;
        const NAME: &'static CStr = c"probe";
    }

    /// A decision policy that never asks for anything; with `OFF`, one
    /// that calls itself `off`, which is built in.
    struct Never<const OFF: bool>;

    impl<const OFF: bool> DecisionPolicy for Never<OFF> {
        type Interface = AbiTest;
        const NAME: &'static CStr = if OFF { c"off" } else { c"never" };
        const DEFAULT_PARAMS: [u32; POLICY_PARAMS] = [0; POLICY_PARAMS];

        fn check(_: &[u32; POLICY_PARAMS]) -> Result {
            Ok(())
        }

        fn decide(
            _: &[u32; POLICY_PARAMS],
            _: &[u64; SAMPLE_WORDS],
            _: &mut [u64; STATE_WORDS],
            _: &CStr,
            _: &mut Reason<'_>,
        ) -> Option<&'static CStr> {
            None
        }
    }

    fn register_interface() -> Result<InterfaceRegistration> {
        InterfaceRegistration::new::<AbiTest>(this_module())
    }

    fn this_module() -> &'static ThisModule {
        &<super::AbiTestModule as kernel::ModuleMetadata>::THIS_MODULE
    }

    fn refcount() -> i32 {
        // SAFETY: This module is live while its tests run.
        unsafe { kernel::bindings::module_refcount(this_module().as_ptr()) }
    }

    /// `AbiTest`'s table, built by hand, to unregister by hand.
    fn raw_interface_table() -> Result<InterfaceOps> {
        Ok(InterfaceOps {
            abi_version: api::ABI_VERSION,
            size: size_of::<InterfaceOps>() as u32,
            name: api::name_from_cstr(INTERFACE)?,
            owner: this_module().as_ptr().cast(),
            methods_version: AbiTest::METHODS_VERSION,
            methods_size: size_of::<<AbiTest as Interface>::Methods>() as u32,
            known_good: [0; api::NAME_LEN],
        })
    }

    fn raw_impl_table() -> Result<ImplOps> {
        Ok(ImplOps {
            size: size_of::<ImplOps>() as u32,
            interface: api::name_from_cstr(INTERFACE)?,
            name: api::name_from_cstr(c"raw")?,
            owner: this_module().as_ptr().cast(),
            methods_version: AbiTest::METHODS_VERSION,
            methods_size: size_of::<<AbiTest as Interface>::Methods>() as u32,
            ..ImplOps::empty()
        })
    }

    /// A client that declares an interface's name with another method
    /// table type gets no handle (its calls would use that type on the
    /// real implementations' tables).
    #[test]
    fn objects_need_the_interfaces_method_table() -> Result {
        if !api::impl_registered(Taken::NAME, c"shared") {
            return Ok(()); // hotswap_fcm and fcm_shared are not loaded
        }
        // SAFETY: The creation is refused before `arg` is used (an FCM
        // given NULL refuses it too).
        let made = unsafe { api::Object::<Taken>::create(Some(c"shared"), null()) };
        assert_eq!(made.err(), Some(EPROTO));
        Ok(())
    }

    #[test]
    fn round_trip_across_modules() -> Result {
        let iface = register_interface()?;
        assert!(!api::impl_registered(INTERFACE, Probe::NAME));
        let reg = Registration::new::<Probe>(this_module())?;
        assert!(api::impl_registered(INTERFACE, Probe::NAME));
        drop(reg);
        assert!(!api::impl_registered(INTERFACE, Probe::NAME));
        drop(iface);
        Ok(())
    }

    #[test]
    fn implementation_pins_interface_module() -> Result {
        let iface = register_interface()?;
        // An implementation from another module (NULL: built-in code) pins
        // the interface's module; one from the same module does not, or
        // that module could never be unloaded.
        let mut foreign = raw_impl_table()?;
        foreign.owner = core::ptr::null_mut();
        let before = refcount();
        // SAFETY: `foreign` outlives its registration, which ends below.
        api::to_result(unsafe { api::hotswap_register_impl(&foreign) })?;
        assert_eq!(refcount(), before + 1);
        // SAFETY: Registered above.
        api::to_result(unsafe { api::hotswap_unregister_impl(&foreign) })?;
        assert_eq!(refcount(), before);
        let own = Registration::new::<Probe>(this_module())?;
        assert_eq!(refcount(), before);
        drop(own);
        drop(iface);
        Ok(())
    }

    #[test]
    fn duplicates_and_unknowns_are_refused() -> Result {
        assert_eq!(
            InterfaceRegistration::new::<Taken>(this_module()).err(),
            Some(EEXIST)
        );
        // No interface yet: the implementation has nowhere to go.
        assert_eq!(
            Registration::new::<Probe>(this_module()).err(),
            Some(ENOENT)
        );
        let iface = register_interface()?;
        let reg = Registration::new::<Probe>(this_module())?;
        assert_eq!(
            Registration::new::<Probe>(this_module()).err(),
            Some(EEXIST)
        );
        // A copy of a registered table is not the registrant.
        let copy = ImplOps { ..*reg.ops() };
        // SAFETY: `copy` is a valid table; it was never registered.
        assert_eq!(
            unsafe { api::hotswap_unregister_impl(&copy) },
            ENOENT.to_errno()
        );
        drop(reg);
        drop(iface);
        Ok(())
    }

    #[test]
    fn busy_interface_cannot_unregister() -> Result {
        let iface = raw_interface_table()?;
        let table = raw_impl_table()?;
        // SAFETY: Both tables outlive their registrations, which end below.
        unsafe {
            api::to_result(api::hotswap_register_interface(&iface))?;
            api::to_result(api::hotswap_register_impl(&table))?;
            assert_eq!(api::hotswap_unregister_interface(&iface), EBUSY.to_errno());
            assert_eq!(api::hotswap_unregister_impl(&table), 0);
            assert_eq!(api::hotswap_unregister_interface(&iface), 0);
        }
        Ok(())
    }

    #[test]
    fn malformed_tables_change_nothing() -> Result {
        let _iface = register_interface()?;
        let mut wrong_abi = raw_impl_table()?;
        wrong_abi.abi_version += 1;
        // SAFETY: A valid (if wrong-versioned) table, refused before use.
        assert_eq!(
            unsafe { api::hotswap_register_impl(&wrong_abi) },
            EPROTO.to_errno()
        );
        let mut wrong_size = raw_impl_table()?;
        wrong_size.size += 8;
        // SAFETY: As above.
        assert_eq!(
            unsafe { api::hotswap_register_impl(&wrong_size) },
            EINVAL.to_errno()
        );
        // Built against another revision of the interface's method table.
        let mut old_methods = raw_impl_table()?;
        old_methods.methods_version += 1;
        // SAFETY: As above.
        assert_eq!(
            unsafe { api::hotswap_register_impl(&old_methods) },
            EPROTO.to_errno()
        );
        let mut short_methods = raw_impl_table()?;
        short_methods.methods_size -= 8;
        // SAFETY: As above.
        assert_eq!(
            unsafe { api::hotswap_register_impl(&short_methods) },
            EPROTO.to_errno()
        );
        let mut unterminated = raw_impl_table()?;
        unterminated.name = [b'x'; api::NAME_LEN];
        // SAFETY: As above.
        assert_eq!(
            unsafe { api::hotswap_register_impl(&unterminated) },
            EINVAL.to_errno()
        );
        // Bytes after the NUL would make a second `raw` that compares
        // unequal to the first.
        let mut padded_with_junk = raw_impl_table()?;
        padded_with_junk.name[5] = b'x';
        // SAFETY: As above.
        let ret = unsafe { api::hotswap_register_impl(&padded_with_junk) };
        if ret == 0 {
            // SAFETY: Registered just now; the table must not outlive this
            // frame in the registry (the assertion below ends the thread).
            unsafe { api::hotswap_unregister_impl(&padded_with_junk) };
        }
        assert_eq!(ret, EINVAL.to_errno());
        // SAFETY: NULL is checked by the entry point.
        assert_eq!(
            unsafe { api::hotswap_register_impl(null()) },
            EINVAL.to_errno()
        );
        // SAFETY: NULL strings are checked by the entry point.
        assert_eq!(
            unsafe { api::hotswap_find_impl(null(), null()) },
            EINVAL.to_errno()
        );
        assert!(!api::impl_registered(INTERFACE, c"raw"));
        Ok(())
    }

    #[test]
    fn decision_policies_register_like_implementations() -> Result {
        // No interface yet.
        assert_eq!(
            PolicyRegistration::new::<Never<false>>(this_module()).err(),
            Some(ENOENT)
        );
        let iface = register_interface()?;
        let policy = PolicyRegistration::new::<Never<false>>(this_module())?;
        assert_eq!(
            PolicyRegistration::new::<Never<false>>(this_module()).err(),
            Some(EEXIST)
        );
        assert_eq!(
            PolicyRegistration::new::<Never<true>>(this_module()).err(),
            Some(EINVAL)
        );
        // SAFETY: NULL is checked by the entry point.
        assert_eq!(
            unsafe { api::hotswap_register_policy(null()) },
            EINVAL.to_errno()
        );
        drop(policy);
        drop(iface);
        // An interface with a policy registered cannot go.
        let iface = raw_interface_table()?;
        // SAFETY: The table outlives its registration, which ends below.
        unsafe { api::to_result(api::hotswap_register_interface(&iface))? };
        let policy = PolicyRegistration::new::<Never<false>>(this_module())?;
        // SAFETY: As above.
        assert_eq!(
            unsafe { api::hotswap_unregister_interface(&iface) },
            EBUSY.to_errno()
        );
        drop(policy);
        // SAFETY: As above.
        assert_eq!(unsafe { api::hotswap_unregister_interface(&iface) }, 0);
        Ok(())
    }

    #[test]
    fn an_interface_dropped_before_its_implementations_is_retired() -> Result {
        let iface = register_interface()?;
        let probe = Registration::new::<Probe>(this_module())?;
        // The wrong drop order for one module: the interface first.
        drop(iface);
        // Retired: nothing new is registered under it, and its name stays
        // taken while `probe` is registered under it.
        assert_eq!(
            Registration::new::<Probe>(this_module()).err(),
            Some(ENOENT)
        );
        assert_eq!(register_interface().err(), Some(EBUSY));
        drop(probe);
        // The last implementation gone, so is the retired interface.
        let iface = register_interface()?;
        let probe = Registration::new::<Probe>(this_module())?;
        drop(probe);
        drop(iface);
        Ok(())
    }
}
