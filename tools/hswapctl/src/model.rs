// SPDX-License-Identifier: GPL-2.0
//! What the commands report, as plain Rust values. These are also the
//! `--json` output: the field names below are the stable JSON schema
//! (documented in the README).

use crate::uapi::{self, field_str, PHASE_NAMES};
use serde::Serialize;

fn phase_name(phase: u32) -> String {
    PHASE_NAMES
        .get(phase as usize)
        .copied()
        .unwrap_or("unknown")
        .to_string()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Interface {
    pub name: String,
    /// Implementation new objects get (null: the first registered one).
    pub default: Option<String>,
    pub objects: u32,
    pub implementations: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Implementation {
    pub interface: String,
    pub name: String,
    /// Owning module (null for built-in code).
    pub module: Option<String>,
    /// "object" or "interposer".
    pub kind: String,
    /// Objects and interposers of this implementation alive now.
    pub users: u32,
    /// It broke its contract: refused for new objects and swaps, its
    /// objects moved to the interface's known-good implementation.
    pub quarantined: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Object {
    pub id: u32,
    pub interface: String,
    pub implementation: String,
    pub phase: String,
    pub interposers: u32,
    pub calls: u64,
    /// Pages cached, for an FCM of a cached file (null otherwise, or
    /// while it is being swapped).
    pub pages: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LastSwap {
    /// "completed" or "aborted".
    pub outcome: String,
    /// Phase it ended in.
    pub phase: String,
    /// 0 or the negative errno that aborted it.
    pub errno: i32,
    pub format: u32,
    /// Tracked calls in flight when it ended.
    pub in_flight: i64,
    pub duration_us: u64,
    pub longest_blocked_us: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub id: u32,
    pub interface: String,
    pub implementation: String,
    pub phase: String,
    /// Outermost first.
    pub interposers: Vec<String>,
    pub calls: u64,
    /// Calls per second since the previous sample (watch only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_rate: Option<f64>,
    pub swaps_done: u64,
    pub swaps_aborted: u64,
    pub timeout_ms: u32,
    pub last_swap: Option<LastSwap>,
    /// Interposers' own reports (e.g. a monitor's figures), by name.
    pub reports: std::collections::BTreeMap<String, String>,
    /// Pages cached, for an FCM of a cached file (null otherwise).
    pub pages: Option<u64>,
    /// What the object's owner says it is (an FCM: its file's path);
    /// null if nothing (or the caller may not see it).
    pub label: Option<String>,
}

impl Status {
    /// Adds the `<name>: <text>` lines of the reports ioctl.
    pub fn with_reports(mut self, lines: &str) -> Self {
        for line in lines.lines() {
            if let Some((name, text)) = line.split_once(": ") {
                self.reports.insert(name.to_string(), text.to_string());
            }
        }
        self
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SwapObject {
    pub id: u32,
    /// "completed", "aborted", "unchanged" or "not_started".
    pub outcome: String,
    pub phase: String,
    pub errno: i32,
    pub format: u32,
    pub in_flight: i64,
    pub duration_us: u64,
    pub longest_blocked_us: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SwapReport {
    pub interface: String,
    pub implementation: String,
    /// Set when one object was asked for.
    pub object: Option<u32>,
    pub completed: u32,
    pub aborted: u32,
    pub unchanged: u32,
    pub total_us: u64,
    pub objects: Vec<SwapObject>,
    /// Implementation each object was on before (for messages).
    #[serde(skip)]
    pub before: Vec<(u32, String)>,
}

impl From<&uapi::InterfaceEntry> for Interface {
    fn from(e: &uapi::InterfaceEntry) -> Self {
        let default = field_str(&e.default_impl);
        Self {
            name: field_str(&e.name).into(),
            default: (!default.is_empty()).then(|| default.into()),
            objects: e.objects,
            implementations: e.impls,
        }
    }
}

impl From<&uapi::ImplEntry> for Implementation {
    fn from(e: &uapi::ImplEntry) -> Self {
        let module = field_str(&e.module);
        Self {
            interface: field_str(&e.interface).into(),
            name: field_str(&e.name).into(),
            module: (!module.is_empty()).then(|| module.into()),
            kind: match e.kind {
                uapi::KIND_OBJECT => "object",
                uapi::KIND_INTERPOSER => "interposer",
                _ => "unknown",
            }
            .into(),
            users: e.users,
            quarantined: e.flags & uapi::IMPL_QUARANTINED != 0,
        }
    }
}

impl From<&uapi::ObjectEntry> for Object {
    fn from(e: &uapi::ObjectEntry) -> Self {
        Self {
            id: e.id,
            interface: field_str(&e.interface).into(),
            implementation: field_str(&e.implementation).into(),
            phase: phase_name(e.phase),
            interposers: e.interposers,
            calls: e.calls,
            pages: None,
        }
    }
}

/// An object's label as text that is safe to print: whoever opened the
/// file chose its name, so control characters (a terminal's escape
/// sequences, newlines) are shown escaped, and bytes that are not UTF-8
/// as U+FFFD. `None` if empty.
fn printable_label(field: &[u8]) -> Option<String> {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    if end == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&field[..end]);
    Some(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().collect()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

impl From<&uapi::ObjectStatus> for Status {
    fn from(s: &uapi::ObjectStatus) -> Self {
        let count = (s.interposer_count as usize).min(uapi::MAX_INTERPOSERS);
        let last_swap = (s.last_outcome != 0).then(|| LastSwap {
            outcome: if s.last_outcome == 1 {
                "completed"
            } else {
                "aborted"
            }
            .into(),
            phase: phase_name(s.last_phase),
            errno: s.last_errno,
            format: s.last_format,
            in_flight: s.last_in_flight,
            duration_us: s.last_duration_ns / 1000,
            longest_blocked_us: s.last_blocked_ns / 1000,
        });
        Self {
            id: s.id,
            interface: field_str(&s.interface).into(),
            implementation: field_str(&s.implementation).into(),
            phase: phase_name(s.phase),
            interposers: s.interposers[..count]
                .iter()
                .map(|n| field_str(n).into())
                .collect(),
            calls: s.calls,
            call_rate: None,
            swaps_done: s.swaps_done,
            swaps_aborted: s.swaps_aborted,
            timeout_ms: s.timeout_ms,
            last_swap,
            reports: Default::default(),
            pages: None,
            label: printable_label(&s.label),
        }
    }
}

impl From<&uapi::SwapResult> for SwapObject {
    fn from(r: &uapi::SwapResult) -> Self {
        let outcome = match r.outcome {
            uapi::OUTCOME_COMPLETED => "completed",
            uapi::OUTCOME_ABORTED => "aborted",
            uapi::OUTCOME_UNCHANGED => "unchanged",
            uapi::OUTCOME_NOT_STARTED => "not_started",
            _ => "unknown",
        };
        Self {
            id: r.id,
            outcome: outcome.into(),
            phase: phase_name(r.phase),
            errno: r.errno,
            format: r.format,
            in_flight: r.in_flight,
            duration_us: r.duration_ns / 1000,
            longest_blocked_us: r.blocked_ns / 1000,
        }
    }
}

#[cfg(test)]
mod label_tests {
    use super::printable_label;

    #[test]
    fn labels_are_printable() {
        assert_eq!(printable_label(b"\0rest"), None);
        assert_eq!(
            printable_label(b"/mnt/a b\0junk").as_deref(),
            Some("/mnt/a b")
        );
        assert_eq!(
            printable_label(b"/mnt/\x1b[31mred\nx\0").as_deref(),
            Some("/mnt/\\u{1b}[31mred\\nx")
        );
        assert_eq!(
            printable_label(b"/mnt/\xff\0").as_deref(),
            Some("/mnt/\u{fffd}")
        );
    }
}
