// SPDX-License-Identifier: GPL-2.0
//! A fake `/dev/hotswap` for host tests: interface `fcm` with `shared`,
//! `distributed` and the interposer `monitor`, and some objects.

use crate::device::{zeroed, DevResult, Device};
use crate::errors::DeviceError;
use crate::uapi::*;
use std::cell::{Cell, RefCell};

pub struct Fake {
    objects: RefCell<Vec<(u32, String, u64)>>,
    /// Refuse changes with EPERM, as for a user without CAP_SYS_ADMIN.
    pub deny: Cell<bool>,
    /// Abort the next swap (as a timeout in Forward).
    pub abort_next: Cell<bool>,
    /// Device operations performed.
    pub calls: Cell<u32>,
    /// (enabled, up_cpus, up_windows, down_windows)
    policy: Cell<(u32, u32, u32, u32)>,
    /// The FCM memory budget in pages.
    pub budget: Cell<u64>,
}

fn name(s: &str) -> [u8; NAME_LEN] {
    name_field(s).unwrap_or([0; NAME_LEN])
}

impl Fake {
    pub fn with_objects(n: u32) -> Self {
        Self {
            objects: RefCell::new((1..=n).map(|id| (id, "shared".to_string(), 0)).collect()),
            deny: Cell::new(false),
            abort_next: Cell::new(false),
            calls: Cell::new(0),
            policy: Cell::new((0, 2, 1, 3)),
            budget: Cell::new(65536),
        }
    }

    pub fn add_calls(&self, id: u32, n: u64) {
        for o in self.objects.borrow_mut().iter_mut().filter(|o| o.0 == id) {
            o.2 += n;
        }
    }

    fn count(&self) {
        self.calls.set(self.calls.get() + 1);
    }

    fn check_admin(&self, op: &'static str) -> DevResult<()> {
        if self.deny.get() {
            return Err(DeviceError::new(op, libc::EPERM));
        }
        Ok(())
    }
}

impl Device for Fake {
    fn version(&self) -> DevResult<Version> {
        self.count();
        Ok(Version {
            uapi: UAPI_VERSION,
            module_abi: 2,
        })
    }

    fn interfaces(&self) -> DevResult<Vec<InterfaceEntry>> {
        self.count();
        Ok(vec![InterfaceEntry {
            name: name("fcm"),
            default_impl: name("shared"),
            objects: self.objects.borrow().len() as u32,
            impls: 3,
        }])
    }

    fn impls(&self) -> DevResult<Vec<ImplEntry>> {
        self.count();
        let entry = |n: &str, m: &str, kind| {
            let mut module = [0u8; 56];
            module[..m.len()].copy_from_slice(m.as_bytes());
            ImplEntry {
                interface: name("fcm"),
                name: name(n),
                module,
                kind,
                users: 0,
            }
        };
        Ok(vec![
            entry("shared", "fcm_shared", KIND_OBJECT),
            entry("distributed", "fcm_distributed", KIND_OBJECT),
            entry("monitor", "fcm_monitor", KIND_INTERPOSER),
        ])
    }

    fn objects(&self) -> DevResult<Vec<ObjectEntry>> {
        self.count();
        Ok(self
            .objects
            .borrow()
            .iter()
            .map(|(id, imp, calls)| ObjectEntry {
                id: *id,
                phase: 0,
                interface: name("fcm"),
                implementation: name(imp),
                interposers: 0,
                reserved: 0,
                calls: *calls,
            })
            .collect())
    }

    fn status(&self, id: u32) -> DevResult<ObjectStatus> {
        self.count();
        let objects = self.objects.borrow();
        let (_, imp, calls) = objects
            .iter()
            .find(|o| o.0 == id)
            .ok_or(DeviceError::new("status", libc::ENOENT))?;
        let mut st: ObjectStatus = zeroed();
        st.id = id;
        st.interface = name("fcm");
        st.implementation = name(imp);
        st.calls = *calls;
        st.timeout_ms = 2000;
        Ok(st)
    }

    fn swap(&self, req: &mut SwapRequest) -> DevResult<Vec<SwapResult>> {
        self.count();
        self.check_admin("swap")?;
        let target = field_str(&req.implementation).to_string();
        let mut results = Vec::new();
        for o in self.objects.borrow_mut().iter_mut() {
            if req.object != 0 && o.0 != req.object {
                continue;
            }
            let mut r = SwapResult {
                id: o.0,
                ..SwapResult::default()
            };
            if o.1 == target {
                r.outcome = OUTCOME_UNCHANGED;
                req.unchanged += 1;
            } else if self.abort_next.replace(false) {
                r.outcome = OUTCOME_ABORTED;
                r.phase = 1;
                r.errno = -libc::ETIMEDOUT;
                r.in_flight = 1;
                req.aborted += 1;
            } else {
                o.1 = target.clone();
                r.outcome = OUTCOME_COMPLETED;
                r.phase = 4;
                r.format = 1;
                req.completed += 1;
            }
            results.push(r);
        }
        req.count = results.len() as u32;
        Ok(results)
    }

    fn interpose(&self, _add: bool, req: &mut InterposeRequest) -> DevResult<()> {
        self.count();
        self.check_admin("interpose")?;
        req.count = self.objects.borrow().len() as u32;
        Ok(())
    }

    fn set_timeout(&self, _req: &TimeoutRequest) -> DevResult<()> {
        self.count();
        self.check_admin("set timeout")
    }

    fn policy(&self, set: bool, req: &mut PolicyRequest) -> DevResult<()> {
        self.count();
        if field_str(&req.interface) != "fcm" {
            return Err(DeviceError::new("policy", libc::EOPNOTSUPP));
        }
        if set {
            self.check_admin("set policy")?;
            self.policy
                .set((req.enabled, req.up_cpus, req.up_windows, req.down_windows));
        } else {
            (req.enabled, req.up_cpus, req.up_windows, req.down_windows) = self.policy.get();
        }
        Ok(())
    }

    fn fcm_memory(&self) -> DevResult<(FcmMemoryRequest, Vec<FcmPages>)> {
        self.count();
        let pages: Vec<FcmPages> = self
            .objects
            .borrow()
            .iter()
            .map(|o| FcmPages {
                object: o.0,
                reserved: 0,
                pages: 100 * u64::from(o.0),
            })
            .collect();
        let req = FcmMemoryRequest {
            count: pages.len() as u32,
            budget: self.budget.get(),
            user_budget: self.budget.get() / 2,
            used: pages.iter().map(|p| p.pages).sum(),
            refused: 1,
            reclaimed_pressure: 20,
            reclaimed_budget: 30,
            page_size: 4096,
            ..FcmMemoryRequest::default()
        };
        Ok((req, pages))
    }

    fn set_fcm_budget(&self, pages: u64) -> DevResult<()> {
        self.count();
        self.check_admin("set fcm budget")?;
        if pages < 1024 {
            return Err(DeviceError::new("set fcm budget", libc::EINVAL));
        }
        self.budget.set(pages);
        Ok(())
    }

    fn reports(&self, id: u32) -> DevResult<String> {
        self.count();
        Ok(if id == 1 {
            "monitor: calls=7 active_cpus=2\n".into()
        } else {
            String::new()
        })
    }
}
