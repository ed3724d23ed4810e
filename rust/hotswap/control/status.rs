// SPDX-License-Identifier: GPL-2.0
//! Status for humans: a read-only tree under debugfs.
//!
//! ```text
//! /sys/kernel/debug/hotswap/objects    one line per object
//! /sys/kernel/debug/hotswap/registry   interfaces, implementations and
//!                                      decision policies
//! /sys/kernel/debug/hotswap/stats      counters across all objects
//! ```
//!
//! An interface adds its own files in a directory of its own.
//!
//! Each file is rendered when read, from the same state `/dev/hotswap`
//! reports, in a fixed `key=value` format so scripts can parse it.

use crate::api::{name_str, KIND_OBJECT};
use crate::ott::objects;
use crate::ott::slot::Slot;
use crate::registry::REGISTRY;
use core::fmt::{self, Formatter};
use kernel::debugfs::{Dir, File};
use kernel::prelude::*;

/// The debugfs files; removed when dropped.
#[pin_data]
pub(crate) struct Status {
    _dir: Dir,
    #[pin]
    _objects: File<()>,
    #[pin]
    _registry: File<()>,
    #[pin]
    _stats: File<()>,
}

impl Status {
    /// Creates `/sys/kernel/debug/hotswap/`.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"hotswap");
        try_pin_init!(Self {
            _objects <- dir.read_callback_file(c"objects", (), &render_objects),
            _registry <- dir.read_callback_file(c"registry", (), &render_registry),
            _stats <- dir.read_callback_file(c"stats", (), &render_stats),
            _dir: dir,
        }? Error)
    }
}

fn render_slot(slot: &Slot, f: &mut Formatter<'_>) -> fmt::Result {
    let calls = slot.calls();
    let rendered = slot.status(|phase, chain, admin| {
        let (interface, id) = slot.label();
        write!(
            f,
            "id={} interface={} impl={} phase={} calls={} swaps={} aborted={} timeout_ms={} interposers=",
            id,
            interface,
            name_str(&chain.object().imp.name),
            phase.name(),
            calls,
            admin.stats.swaps_done,
            admin.stats.swaps_aborted,
            admin.timeout_ms
        )?;
        let interposers = &chain.layers[..chain.layers.len() - 1];
        if interposers.is_empty() {
            write!(f, "-")?;
        }
        for (i, layer) in interposers.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{}{}", sep, name_str(&layer.imp.name))?;
        }
        for layer in interposers.iter() {
            let mut buf = [0u8; 256];
            if let Some(text) = layer.imp.report(layer.obj, &mut buf) {
                write!(f, " {}:{{{}}}", name_str(&layer.imp.name), text)?;
            }
        }
        match &admin.stats.last {
            Some(last) => writeln!(
                f,
                " last={} last_phase={} last_errno={} last_us={} last_blocked_us={} last_format={}",
                if last.completed { "completed" } else { "aborted" },
                last.phase.name(),
                last.errno,
                last.duration_ns / 1000,
                last.longest_wait_ns / 1000,
                last.format
            ),
            None => writeln!(f, " last=none"),
        }
    });
    // An object destroyed meanwhile is simply not shown.
    rendered.unwrap_or(Ok(()))
}

fn render_objects(_: &(), f: &mut Formatter<'_>) -> fmt::Result {
    let Ok(slots) = objects::all() else {
        return writeln!(f, "error=ENOMEM");
    };
    for slot in slots.iter() {
        render_slot(slot, f)?;
    }
    Ok(())
}

fn render_registry(_: &(), f: &mut Formatter<'_>) -> fmt::Result {
    let registry = REGISTRY.lock();
    for interface in registry.interfaces() {
        let default = registry.default_impl(interface);
        writeln!(
            f,
            "interface={} default={}",
            name_str(interface),
            default.as_ref().map_or("-", name_str)
        )?;
    }
    for imp in registry.impls() {
        writeln!(
            f,
            "impl={}/{} kind={} users={} quarantined={}",
            name_str(&imp.interface),
            name_str(&imp.name),
            if imp.kind == KIND_OBJECT {
                "object"
            } else {
                "interposer"
            },
            imp.users(),
            u32::from(imp.quarantined())
        )?;
    }
    for policy in registry.policies() {
        let picked = registry
            .picked_policy(&policy.interface)
            .is_ok_and(|(p, _)| p.is_some_and(|p| p.name == policy.name));
        writeln!(
            f,
            "policy={}/{} monitor={} selected={}",
            name_str(&policy.interface),
            name_str(&policy.name),
            if policy.monitor[0] == 0 {
                "-"
            } else {
                name_str(&policy.monitor)
            },
            u32::from(picked)
        )?;
    }
    Ok(())
}

fn render_stats(_: &(), f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "objects={} misbehaviors={}",
        objects::count(),
        crate::registry::misbehavior::misbehaviors()
    )
}
