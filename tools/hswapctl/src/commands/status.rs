// SPDX-License-Identifier: GPL-2.0
//! `hswapctl status [OBJECT]`.

use super::Outcome;
use crate::device::Device;
use crate::model::Status;
use crate::output;
use anyhow::{Context, Result};

/// Status of every object, in id order.
pub fn all(dev: &dyn Device) -> Result<Vec<Status>> {
    let pages = super::memory::pages_by_object(dev);
    let mut out = Vec::new();
    for entry in dev.objects()? {
        match dev.status(entry.id) {
            Ok(st) => {
                let mut st =
                    Status::from(&st).with_reports(&dev.reports(entry.id).unwrap_or_default());
                st.pages = pages.get(&entry.id).copied();
                out.push(st)
            }
            // Destroyed between the list and the status: not an error.
            Err(e) if e.errno == libc::ENOENT => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

pub fn run(dev: &dyn Device, object: Option<u32>, json: bool) -> Result<(String, Outcome)> {
    let text = match object {
        Some(id) => {
            let mut st = dev
                .status(id)
                .map(|s| Status::from(&s))
                .with_context(|| format!("object {id}"))?
                .with_reports(&dev.reports(id).with_context(|| format!("object {id}"))?);
            st.pages = super::memory::pages_by_object(dev).get(&id).copied();
            if json {
                serde_json::to_string_pretty(&st)? + "\n"
            } else {
                output::status_one(&st)
            }
        }
        None => {
            let all = all(dev)?;
            if json {
                serde_json::to_string_pretty(&all)? + "\n"
            } else {
                output::status_table(&all)
            }
        }
    };
    Ok((text, Outcome::Ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::Fake;

    #[test]
    fn one_object_in_text_and_json() {
        let dev = Fake::with_objects(2);
        let (text, _) = run(&dev, Some(2), false).unwrap();
        assert!(
            text.starts_with("object 2 (fcm)\n  implementation  shared\n"),
            "{text}"
        );
        let (json, _) = run(&dev, Some(2), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["swaps_done"], 0);
        assert!(v["last_swap"].is_null());
        assert_eq!(v["interposers"], serde_json::json!([]));
        assert_eq!(v["reports"], serde_json::json!({}));
        assert_eq!(v["pages"], 200);
        assert!(text.contains("pages cached    200"), "{text}");
    }

    #[test]
    fn labels_show_in_text_table_and_json() {
        let dev = Fake::with_objects(2);
        let (text, _) = run(&dev, Some(1), false).unwrap();
        assert!(
            text.starts_with("object 1 (fcm)\n  label           /mnt/hs/file1\n"),
            "{text}"
        );
        let (json, _) = run(&dev, Some(1), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["label"], "/mnt/hs/file1");
        // Unlabelled: no line, null in JSON, "-" in the table.
        let (text, _) = run(&dev, Some(2), false).unwrap();
        assert!(!text.contains("label"), "{text}");
        let (json, _) = run(&dev, Some(2), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["label"].is_null());
        let (table, _) = run(&dev, None, false).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("LABEL"), "{table}");
        assert!(lines[1].ends_with("/mnt/hs/file1"), "{table}");
        assert!(lines[2].ends_with(" -"), "{table}");
    }

    #[test]
    fn monitor_figures_are_shown() {
        let dev = Fake::with_objects(2);
        let (text, _) = run(&dev, Some(1), false).unwrap();
        assert!(
            text.contains("  monitor         calls=7 active_cpus=2\n"),
            "{text}"
        );
        let (json, _) = run(&dev, Some(1), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["reports"]["monitor"], "calls=7 active_cpus=2");
    }

    #[test]
    fn pages_are_left_out_without_hotswap_fcm() {
        let dev = Fake::with_objects(2);
        dev.file_device.set(false);
        let (text, _) = run(&dev, Some(2), false).unwrap();
        assert!(!text.contains("pages cached"), "{text}");
        let (json, _) = run(&dev, None, true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v[1]["pages"].is_null(), "{json}");
    }

    #[test]
    fn unknown_object_says_which() {
        let err = run(&Fake::with_objects(1), Some(9), false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("object 9: status: no such"), "{msg}");
    }
}
