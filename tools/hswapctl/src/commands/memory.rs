// SPDX-License-Identifier: GPL-2.0
//! `hswapctl memory [--budget SIZE]`: FCM memory, and its budget, through
//! `/dev/hotswap-file` (hotswap_fcm.ko).

use super::Outcome;
use crate::device::Device;
use anyhow::{bail, Context, Result};
use serde::Serialize;

/// FCM memory as `--json` shows it (pages, with the page size).
#[derive(Debug, Serialize, PartialEq)]
pub struct Memory {
    pub page_size: u64,
    pub budget_pages: u64,
    /// What the FCMs one user other than root created may hold together.
    pub user_budget_pages: u64,
    pub used_pages: u64,
    /// Page allocations refused at the budget, ever.
    pub refused: u64,
    /// Pages freed by memory pressure (shrinker, cgroup limit), ever.
    pub reclaimed_pressure: u64,
    /// Pages freed to stay within the budget, ever.
    pub reclaimed_budget: u64,
    pub objects: Vec<ObjectPages>,
}

/// One FCM's pages; `pages` is null while it is being swapped.
#[derive(Debug, Serialize, PartialEq)]
pub struct ObjectPages {
    pub id: u32,
    pub pages: Option<u64>,
}

/// Parses a budget: a page count, or bytes with a K, M or G suffix.
pub fn parse_budget(text: &str, page_size: u64) -> Result<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], Some(c.to_ascii_uppercase())),
        _ => (t, None),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("budget {text:?}: not a number of pages or a size like 256M"))?;
    let bytes = match unit {
        None => return Ok(n),
        Some('K') => n.checked_mul(1 << 10),
        Some('M') => n.checked_mul(1 << 20),
        Some('G') => n.checked_mul(1 << 30),
        Some(u) => bail!("budget {text:?}: unknown unit {u:?} (use K, M or G)"),
    };
    match bytes {
        Some(b) => Ok(b / page_size.max(1)),
        None => bail!("budget {text:?} is too large"),
    }
}

/// Pages of each FCM of a cached file, by object id (empty if the kernel
/// cannot say, e.g. without hotswap_fcm; a swapping FCM is left out).
pub fn pages_by_object(dev: &dyn Device) -> std::collections::BTreeMap<u32, u64> {
    dev.fcm_memory()
        .map(|(_, pages)| {
            pages
                .iter()
                .filter(|p| p.pages != u64::MAX)
                .map(|p| (p.object, p.pages))
                .collect()
        })
        .unwrap_or_default()
}

pub fn collect(dev: &dyn Device) -> Result<Memory> {
    let (m, pages) = dev.fcm_memory().context("reading FCM memory")?;
    Ok(Memory {
        page_size: m.page_size,
        budget_pages: m.budget,
        user_budget_pages: m.user_budget,
        used_pages: m.used,
        refused: m.refused,
        reclaimed_pressure: m.reclaimed_pressure,
        reclaimed_budget: m.reclaimed_budget,
        objects: pages
            .iter()
            .map(|p| ObjectPages {
                id: p.object,
                pages: (p.pages != u64::MAX).then_some(p.pages),
            })
            .collect(),
    })
}

fn mib(pages: u64, page_size: u64) -> String {
    format!("{:.1} MiB", (pages * page_size) as f64 / (1 << 20) as f64)
}

pub fn run(dev: &dyn Device, budget: Option<&str>, json: bool) -> Result<(String, Outcome)> {
    if let Some(text) = budget {
        let page_size = dev.fcm_memory().context("reading FCM memory")?.0.page_size;
        let pages = parse_budget(text, page_size)?;
        dev.set_fcm_budget(pages).with_context(|| {
            format!("setting the FCM budget to {pages} pages (at least 1024, at most the RAM)")
        })?;
    }
    let m = collect(dev)?;
    if json {
        return Ok((serde_json::to_string_pretty(&m)? + "\n", Outcome::Ok));
    }
    let ps = m.page_size;
    let mut out = format!(
        "FCM memory: {} of {} pages ({} of {}), {} refused at the budget\nper user other than root: at most {} pages ({})\nreclaimed: {} pages under memory pressure, {} for the budget\n",
        m.used_pages,
        m.budget_pages,
        mib(m.used_pages, ps),
        mib(m.budget_pages, ps),
        m.refused,
        m.user_budget_pages,
        mib(m.user_budget_pages, ps),
        m.reclaimed_pressure,
        m.reclaimed_budget
    );
    if !m.objects.is_empty() {
        out += "OBJECT  PAGES\n";
        for o in &m.objects {
            match o.pages {
                Some(p) => out += &format!("{:<7} {}\n", o.id, p),
                None => out += &format!("{:<7} (swapping)\n", o.id),
            }
        }
    }
    Ok((out, Outcome::Ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::Fake;

    #[test]
    fn budgets_parse_as_pages_or_sizes() {
        assert_eq!(parse_budget("1000", 4096).unwrap(), 1000);
        assert_eq!(parse_budget("256M", 4096).unwrap(), 65536);
        assert_eq!(parse_budget("1g", 4096).unwrap(), 262144);
        assert_eq!(parse_budget("64K", 4096).unwrap(), 16);
        for bad in ["", "lots", "12X", "-5", "99999999999999999999G"] {
            assert!(parse_budget(bad, 4096).is_err(), "{bad}");
        }
    }

    #[test]
    fn shows_figures_and_objects() {
        let fake = Fake::with_objects(2);
        let (text, outcome) = run(&fake, None, false).unwrap();
        assert_eq!(outcome, Outcome::Ok);
        assert!(text.contains("300 of 65536 pages"), "{text}");
        assert!(text.contains("2       200"), "{text}");
        let (json, _) = run(&fake, None, true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["budget_pages"], 65536);
        assert_eq!(v["user_budget_pages"], 32768);
        assert_eq!(v["objects"][1]["id"], 2);
        assert_eq!(v["objects"][1]["pages"], 200);
        assert_eq!(v["reclaimed_pressure"], 20);
    }

    #[test]
    fn sets_the_budget_or_says_why_not() {
        let fake = Fake::with_objects(1);
        run(&fake, Some("128M"), false).unwrap();
        assert_eq!(fake.budget.get(), 32768);
        let err = run(&fake, Some("16"), false).unwrap_err();
        assert!(format!("{err:#}").contains("at least 1024"), "{err:#}");
        fake.deny.set(true);
        assert!(run(&fake, Some("128M"), false).is_err());
        assert_eq!(fake.budget.get(), 32768);
    }

    #[test]
    fn without_hotswap_fcm_says_so() {
        let fake = Fake::with_objects(1);
        fake.file_device.set(false);
        for budget in [None, Some("128M")] {
            let err = run(&fake, budget, false).unwrap_err();
            assert_eq!(
                format!("{err:#}"),
                "reading FCM memory: hotswap_fcm is not loaded: insmod fcm/lib/hotswap_fcm.ko (or modprobe hotswap_fcm)"
            );
        }
        assert!(pages_by_object(&fake).is_empty());
    }
}
