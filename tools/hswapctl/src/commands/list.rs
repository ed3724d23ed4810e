// SPDX-License-Identifier: GPL-2.0
//! `hswapctl list`.

use super::Outcome;
use crate::device::Device;
use crate::model::{Implementation, Interface, Object};
use crate::output;
use anyhow::Result;

/// Everything the registry and the object table hold.
pub fn collect(dev: &dyn Device) -> Result<(Vec<Interface>, Vec<Implementation>, Vec<Object>)> {
    let interfaces = dev.interfaces()?.iter().map(Interface::from).collect();
    let impls = dev.impls()?.iter().map(Implementation::from).collect();
    let pages = super::memory::pages_by_object(dev);
    let objects = dev
        .objects()?
        .iter()
        .map(|e| Object {
            pages: pages.get(&e.id).copied(),
            ..Object::from(e)
        })
        .collect();
    Ok((interfaces, impls, objects))
}

pub fn run(dev: &dyn Device, json: bool) -> Result<(String, Outcome)> {
    let (interfaces, impls, objects) = collect(dev)?;
    let text = if json {
        let value = serde_json::json!({
            "interfaces": interfaces,
            "implementations": impls,
            "objects": objects,
        });
        serde_json::to_string_pretty(&value)? + "\n"
    } else {
        output::list(&interfaces, &impls, &objects)
    };
    Ok((text, Outcome::Ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::Fake;

    #[test]
    fn json_has_stable_fields() {
        let (text, _) = run(&Fake::with_objects(2), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["interfaces"][0]["name"], "fcm");
        assert_eq!(v["interfaces"][0]["default"], "shared");
        assert_eq!(v["implementations"][1]["module"], "fcm_distributed");
        assert_eq!(v["implementations"][2]["kind"], "interposer");
        assert_eq!(v["objects"][1]["id"], 2);
        assert_eq!(v["objects"][1]["implementation"], "shared");
        assert_eq!(v["objects"][1]["phase"], "normal");
        assert_eq!(v["objects"][1]["pages"], 200);
    }

    #[test]
    fn pages_are_left_out_without_hotswap_fcm() {
        let fake = Fake::with_objects(2);
        fake.file_device.set(false);
        let (text, outcome) = run(&fake, true).unwrap();
        assert_eq!(outcome, Outcome::Ok);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["objects"][1]["pages"].is_null(), "{text}");
        let (text, _) = run(&fake, false).unwrap();
        assert!(text.contains("normal  0      -\n"), "{text}");
    }

    #[test]
    fn text_lists_all_three() {
        let (text, outcome) = run(&Fake::with_objects(1), false).unwrap();
        assert_eq!(outcome, Outcome::Ok);
        for needle in [
            "INTERFACES",
            "IMPLEMENTATIONS",
            "OBJECTS",
            "fcm_distributed",
            "monitor",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}
