// SPDX-License-Identifier: GPL-2.0
//! Status for humans: a read-only tree under debugfs.
//!
//! ```text
//! /sys/kernel/debug/hotswap/objects    one line per object
//! /sys/kernel/debug/hotswap/registry   interfaces and implementations
//! /sys/kernel/debug/hotswap/stats      counters across all objects
//! /sys/kernel/debug/hotswap/memory     FCM memory: budget, use, reclaim,
//!                                      then pages per cached file's FCM
//! ```
//!
//! Each file is rendered when read, from the same state `/dev/hotswap`
//! reports, in a fixed `key=value` format so scripts can parse it.

use crate::api::KIND_OBJECT;
use crate::objects;
use crate::registry::{name_str, REGISTRY};
use crate::slot::Slot;
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
    #[pin]
    _memory: File<()>,
}

impl Status {
    /// Creates `/sys/kernel/debug/hotswap/`.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"hotswap");
        try_pin_init!(Self {
            _objects <- dir.read_callback_file(c"objects", (), &render_objects),
            _registry <- dir.read_callback_file(c"registry", (), &render_registry),
            _stats <- dir.read_callback_file(c"stats", (), &render_stats),
            _memory <- dir.read_callback_file(c"memory", (), &render_memory),
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
            "impl={}/{} kind={} users={}",
            name_str(&imp.interface),
            name_str(&imp.name),
            if imp.kind == KIND_OBJECT {
                "object"
            } else {
                "interposer"
            },
            imp.users()
        )?;
    }
    Ok(())
}

fn render_stats(_: &(), f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "objects={} misbehaviors={}",
        objects::count(),
        crate::stats::misbehaviors()
    )
}

fn render_memory(_: &(), f: &mut Formatter<'_>) -> fmt::Result {
    let m = crate::fcm_memory::figures();
    writeln!(
        f,
        "budget_pages={} used_pages={} refused={} reclaimed_pressure={} reclaimed_budget={}",
        m.budget, m.used, m.refused, m.reclaimed_pressure, m.reclaimed_budget
    )?;
    let mut result = Ok(());
    let listed = crate::cached_file::try_for_each_open(None, |fcm| {
        let slot = fcm.slot();
        let pages = crate::fcm_memory::pages(slot);
        if result.is_ok() {
            result = match pages {
                Some(n) => writeln!(f, "object={} pages={}", slot.id, n),
                None => writeln!(f, "object={} pages=swapping", slot.id),
            };
        }
        0
    });
    if listed.is_none() {
        writeln!(f, "objects=busy")?;
    }
    result
}
