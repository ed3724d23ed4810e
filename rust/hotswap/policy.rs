// SPDX-License-Identifier: GPL-2.0
//! The autonomic policy for File Cache Managers (K42's showcase): a
//! monitor interposed on an FCM reports, once a second, how many CPUs used
//! it; when `up_cpus` or more did for `up_windows` windows in a row, the
//! FCM is swapped to `distributed`; after `down_windows` windows of less,
//! back to `shared`. The two window counts differ (down > up), so a
//! borderline load does not flap. Off by default: turning it on interposes
//! the monitor on every FCM, which costs a little on every call.
//!
//! The swap runs on hotswap.ko's own workqueue (`deferred.rs`), never
//! inside the call that noticed the load (a swap waits for calls to
//! finish, that one included), and never after the module is gone. Each
//! automatic swap logs its reason.

use crate::api::{name_from_cstr, Name};
use crate::registry::name_str;
use crate::slot::Slot;
use crate::{interpose, objects, swap};
use kernel::prelude::*;

/// The settings of the `fcm` policy.
#[derive(Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) enabled: bool,
    pub(crate) up_cpus: u32,
    pub(crate) up_windows: u32,
    pub(crate) down_windows: u32,
}

kernel::sync::global_lock! {
    // SAFETY: Initialized in module init before any entry point can run.
    pub(crate) unsafe(uninit) static SETTINGS: Mutex<Settings> = Settings {
        enabled: false,
        up_cpus: 2,
        up_windows: 1,
        down_windows: 3,
    };
}

/// Per-object policy state (in the slot's admin data).
#[derive(Default)]
pub(crate) struct Counters {
    hot: u32,
    cold: u32,
    /// A swap was queued and has not run yet.
    pending: bool,
}

fn name(s: &CStr) -> Name {
    // The names used here fit by construction.
    name_from_cstr(s).unwrap_or([0; crate::api::NAME_LEN])
}

/// Validates and applies new settings; interposes the monitor on every
/// FCM when the policy turns on.
pub(crate) fn set(new: Settings) -> Result {
    if new.up_cpus < 2 || new.up_windows == 0 || new.down_windows <= new.up_windows {
        return Err(EINVAL);
    }
    let fcm = name(crate::fcm::INTERFACE);
    let monitor = name(c"monitor");
    if new.enabled && !crate::registry::REGISTRY.lock().find_impl(&fcm, &monitor) {
        return Err(ENOENT);
    }
    *SETTINGS.lock() = new;
    if new.enabled {
        for slot in objects::of_interface(&fcm)?.iter() {
            ensure_monitor(slot);
        }
    }
    Ok(())
}

/// Current settings.
pub(crate) fn get() -> Settings {
    *SETTINGS.lock()
}

/// Puts the monitor on `slot` if the policy is on and it has none.
pub(crate) fn ensure_monitor(slot: &Slot) {
    if !SETTINGS.lock().enabled {
        return;
    }
    let monitor = name(c"monitor");
    let has = slot
        .status(|_, chain, _| chain.layers.iter().any(|l| l.imp.name == monitor))
        .unwrap_or(true);
    if !has {
        if let Err(err) = interpose::interpose(slot, &monitor) {
            pr_warn!(
                "{}/{}: policy: cannot interpose the monitor: {:?}\n",
                slot.label().0,
                slot.id,
                err
            );
        }
    }
}

/// A monitor's sample: `active` CPUs used `slot` in the last window.
pub(crate) fn sample(slot: &Slot, active: u32) {
    let settings = *SETTINGS.lock();
    if !settings.enabled {
        return;
    }
    let Ok(current) = slot.status(|_, chain, _| chain.object().imp.name) else {
        return;
    };
    let target = slot.with_policy(|c| {
        if active >= settings.up_cpus {
            c.hot += 1;
            c.cold = 0;
        } else {
            c.cold += 1;
            c.hot = 0;
        }
        let want = if c.hot >= settings.up_windows {
            Some((c"distributed", c.hot))
        } else if c.cold >= settings.down_windows {
            Some((c"shared", c.cold))
        } else {
            None
        };
        match want {
            Some((to, windows)) if !c.pending && name(to) != current => {
                c.pending = true;
                Some((to, windows))
            }
            _ => None,
        }
    });
    let Some((to, windows)) = target else {
        return;
    };
    let id = slot.id;
    let queued = crate::deferred::spawn(move || run(id, current, to, active, windows));
    if queued.is_err() {
        slot.with_policy(|c| c.pending = false);
    }
}

/// The queued swap.
fn run(id: u32, from: Name, to: &'static CStr, active: u32, windows: u32) {
    let Ok(slot) = objects::find(id) else {
        return;
    };
    pr_info!(
        "{}/{}: policy: {} -> {} ({} CPU(s) active for {} window(s))\n",
        slot.label().0,
        id,
        name_str(&from),
        to.to_str().unwrap_or("?"),
        active,
        windows
    );
    let _ = swap::swap(core::slice::from_ref(&slot), &name(to), None);
    slot.with_policy(|c| *c = Counters::default());
}
