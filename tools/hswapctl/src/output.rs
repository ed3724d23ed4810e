// SPDX-License-Identifier: GPL-2.0
//! Text rendering of the model (JSON is serde's job). Functions return
//! strings so tests can compare them.

use crate::model::*;
use std::fmt::Write;

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

fn row(cells: &[&dyn std::fmt::Display]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

pub fn list(interfaces: &[Interface], impls: &[Implementation], objects: &[Object]) -> String {
    let mut out = String::from("INTERFACES\n");
    let mut rows = vec![row(&[&"NAME", &"DEFAULT", &"OBJECTS", &"IMPLEMENTATIONS"])];
    for i in interfaces {
        rows.push(row(&[
            &i.name,
            &i.default.as_deref().unwrap_or("-"),
            &i.objects,
            &i.implementations,
        ]));
    }
    out += &table(&rows);
    out += "\nIMPLEMENTATIONS\n";
    let mut rows = vec![row(&[
        &"INTERFACE",
        &"NAME",
        &"KIND",
        &"MODULE",
        &"USERS",
        &"STATE",
    ])];
    for i in impls {
        rows.push(row(&[
            &i.interface,
            &i.name,
            &i.kind,
            &i.module.as_deref().unwrap_or("(built-in)"),
            &i.users,
            &if i.quarantined { "quarantined" } else { "ok" },
        ]));
    }
    out += &table(&rows);
    out += "\nOBJECTS\n";
    if objects.is_empty() {
        out += "(none)\n";
        return out;
    }
    let mut rows = vec![row(&[
        &"ID",
        &"INTERFACE",
        &"IMPLEMENTATION",
        &"INTERPOSERS",
        &"PHASE",
        &"CALLS",
        &"PAGES",
    ])];
    for o in objects {
        let pages = o.pages.map_or("-".to_string(), |p| p.to_string());
        rows.push(row(&[
            &o.id,
            &o.interface,
            &o.implementation,
            &o.interposers,
            &o.phase,
            &o.calls,
            &pages,
        ]));
    }
    out + &table(&rows)
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

fn last_swap(l: &Option<LastSwap>) -> String {
    match l {
        None => "-".into(),
        Some(l) if l.outcome == "completed" => format!("completed in {}", micros(l.duration_us)),
        Some(l) => format!("aborted in {} ({})", l.phase, errno_name(l.errno)),
    }
}

pub fn status_one(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "object {} ({})", s.id, s.interface);
    if let Some(label) = &s.label {
        let _ = writeln!(out, "  label           {label}");
    }
    let _ = writeln!(out, "  implementation  {}", s.implementation);
    let _ = writeln!(out, "  phase           {}", s.phase);
    let interposers = if s.interposers.is_empty() {
        "-".into()
    } else {
        s.interposers.join(", ")
    };
    let _ = writeln!(out, "  interposers     {interposers}");
    let _ = writeln!(out, "  calls           {}", s.calls);
    if let Some(pages) = s.pages {
        let _ = writeln!(out, "  pages cached    {pages}");
    }
    if let Some(rate) = s.call_rate {
        let _ = writeln!(out, "  call rate       {rate:.0}/s");
    }
    let _ = writeln!(
        out,
        "  swaps           {} done, {} aborted",
        s.swaps_done, s.swaps_aborted
    );
    let _ = writeln!(out, "  swap timeout    {} ms per phase", s.timeout_ms);
    for (name, text) in &s.reports {
        let _ = writeln!(out, "  {name:<15} {text}");
    }
    let _ = writeln!(out, "  last swap       {}", last_swap(&s.last_swap));
    if let Some(l) = &s.last_swap {
        let _ = writeln!(
            out,
            "                  format {}, longest blocked caller {}, {} tracked call(s) in flight at the end",
            l.format,
            micros(l.longest_blocked_us),
            l.in_flight
        );
    }
    out
}

pub fn status_table(all: &[Status]) -> String {
    if all.is_empty() {
        return "no objects\n".into();
    }
    let mut rows = vec![row(&[
        &"ID",
        &"INTERFACE",
        &"IMPLEMENTATION",
        &"PHASE",
        &"CALLS",
        &"RATE/S",
        &"SWAPS",
        &"ABORTED",
        &"INTERPOSERS",
        &"LAST SWAP",
        &"LABEL",
    ])];
    for s in all {
        let rate = s.call_rate.map_or("-".into(), |r| format!("{r:.0}"));
        let interposers = if s.interposers.is_empty() {
            "-".into()
        } else {
            s.interposers.join(",")
        };
        rows.push(row(&[
            &s.id,
            &s.interface,
            &s.implementation,
            &s.phase,
            &s.calls,
            &rate,
            &s.swaps_done,
            &s.swaps_aborted,
            &interposers,
            &last_swap(&s.last_swap),
            &s.label.as_deref().unwrap_or("-"),
        ]));
    }
    table(&rows)
}

/// Name of a negative errno, for messages.
pub fn errno_name(errno: i32) -> String {
    match -errno {
        0 => "ok".into(),
        libc::ETIMEDOUT => "timed out".into(),
        libc::EIO => "I/O error in the implementation".into(),
        libc::EPROTO => "the implementation broke its contract".into(),
        libc::ENOPROTOOPT => "no common state format".into(),
        libc::EBUSY => "object busy".into(),
        libc::EINTR => "interrupted".into(),
        e => std::io::Error::from_raw_os_error(e).to_string(),
    }
}

pub fn swap_report(r: &SwapReport) -> String {
    let mut out = String::new();
    for o in &r.objects {
        let before = r
            .before
            .iter()
            .find(|(id, _)| *id == o.id)
            .map_or("?", |(_, imp)| imp.as_str());
        let line = match o.outcome.as_str() {
            "completed" => format!(
                "object {}: {} -> {} completed in {} (state format {}, longest blocked caller {})",
                o.id,
                before,
                r.implementation,
                micros(o.duration_us),
                o.format,
                micros(o.longest_blocked_us)
            ),
            "unchanged" => format!("object {}: already on {}", o.id, r.implementation),
            "not_started" => format!(
                "object {}: swap to {} could not start: {}; nothing changed",
                o.id,
                r.implementation,
                errno_name(o.errno)
            ),
            _ => format!(
                "object {}: swap to {} aborted in {} after {} ({}): {} tracked call(s) still in flight; stayed on {}",
                o.id,
                r.implementation,
                o.phase,
                micros(o.duration_us),
                errno_name(o.errno),
                o.in_flight,
                before
            ),
        };
        out += &line;
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} object(s): {} completed, {} aborted, {} unchanged in {}",
        r.objects.len(),
        r.completed,
        r.aborted,
        r.unchanged,
        micros(r.total_us)
    );
    if r.object.is_none() {
        let _ = writeln!(
            out,
            "new {} objects now start on {}",
            r.interface, r.implementation
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swap_obj(id: u32, outcome: &str, errno: i32) -> SwapObject {
        SwapObject {
            id,
            outcome: outcome.into(),
            phase: if outcome == "aborted" {
                "forward"
            } else {
                "completed"
            }
            .into(),
            errno,
            format: 1,
            in_flight: if outcome == "aborted" { 2 } else { 0 },
            duration_us: 2_000_000,
            longest_blocked_us: 0,
        }
    }

    #[test]
    fn timeout_abort_names_object_calls_and_old_implementation() {
        let report = SwapReport {
            interface: "fcm".into(),
            implementation: "distributed".into(),
            object: Some(7),
            completed: 0,
            aborted: 1,
            unchanged: 0,
            total_us: 2_000_100,
            objects: vec![swap_obj(7, "aborted", -libc::ETIMEDOUT)],
            before: vec![(7, "shared".into())],
        };
        let text = swap_report(&report);
        assert!(
            text.contains("object 7: swap to distributed aborted in forward"),
            "{text}"
        );
        assert!(text.contains("timed out"), "{text}");
        assert!(
            text.contains("2 tracked call(s) still in flight; stayed on shared"),
            "{text}"
        );
        assert!(!text.contains("new fcm objects"), "{text}");
    }

    #[test]
    fn swap_all_summary() {
        let report = SwapReport {
            interface: "fcm".into(),
            implementation: "distributed".into(),
            object: None,
            completed: 1,
            aborted: 0,
            unchanged: 1,
            total_us: 1500,
            objects: vec![swap_obj(1, "completed", 0), swap_obj(2, "unchanged", 0)],
            before: vec![(1, "shared".into()), (2, "distributed".into())],
        };
        let text = swap_report(&report);
        assert!(
            text.contains("object 1: shared -> distributed completed in 2000.0 ms"),
            "{text}"
        );
        assert!(text.contains("object 2: already on distributed"), "{text}");
        assert!(
            text.contains("2 object(s): 1 completed, 0 aborted, 1 unchanged in 1500 µs"),
            "{text}"
        );
        assert!(
            text.ends_with("new fcm objects now start on distributed\n"),
            "{text}"
        );
    }

    #[test]
    fn list_aligns_columns() {
        let text = list(
            &[Interface {
                name: "fcm".into(),
                default: None,
                objects: 2,
                implementations: 3,
            }],
            &[Implementation {
                interface: "fcm".into(),
                name: "distributed".into(),
                module: Some("fcm_distributed".into()),
                kind: "object".into(),
                users: 2,
                quarantined: false,
            }],
            &[],
        );
        assert!(
            text.contains("NAME  DEFAULT  OBJECTS  IMPLEMENTATIONS\nfcm   -        2        3\n"),
            "{text}"
        );
        assert!(
            text.contains("fcm        distributed  object  fcm_distributed  2"),
            "{text}"
        );
        assert!(text.ends_with("OBJECTS\n(none)\n"), "{text}");
    }
}
