// SPDX-License-Identifier: GPL-2.0
//! A fake `/dev/hotswap` for host tests: interface `fcm` with `shared`,
//! `distributed` and the interposer `monitor`, the decision policy
//! `cpu_count`, and some objects; interface `hstest` with no policy; and
//! the FCM memory requests of `/dev/hotswap-file`.

use crate::device::{zeroed, DevResult, Device, OPEN_FILE_DEVICE};
use crate::errors::DeviceError;
use crate::fcm_uapi::*;
use crate::uapi::*;
use std::cell::{Cell, RefCell};

/// One interface's decision policies, as the kernel keeps them.
struct Policies {
    interface: &'static str,
    available: Vec<String>,
    /// The current one ("off": none).
    current: String,
    params: [u32; POLICY_PARAMS],
}

pub struct Fake {
    objects: RefCell<Vec<(u32, String, u64)>>,
    /// Refuse changes with EPERM, as for a user without CAP_SYS_ADMIN.
    pub deny: Cell<bool>,
    /// Abort the next swap (as a timeout in Forward).
    pub abort_next: Cell<bool>,
    /// Device operations performed.
    pub calls: Cell<u32>,
    policies: RefCell<Vec<Policies>>,
    /// fcm_monitor is loaded (cpu_count needs it).
    pub monitor: Cell<bool>,
    /// /dev/hotswap-file exists (hotswap_fcm is loaded).
    pub file_device: Cell<bool>,
    /// The FCM memory budget in pages.
    pub budget: Cell<u64>,
}

fn name(s: &str) -> [u8; NAME_LEN] {
    name_field(s).unwrap_or([0; NAME_LEN])
}

/// The name in a field, if the kernel would accept it (bytes after the
/// NUL do not count).
fn valid(field: &[u8; NAME_LEN]) -> Option<&str> {
    let text = field_str(field);
    name_field(text).map(|_| text)
}

impl Fake {
    pub fn with_objects(n: u32) -> Self {
        Self {
            objects: RefCell::new((1..=n).map(|id| (id, "shared".to_string(), 0)).collect()),
            deny: Cell::new(false),
            abort_next: Cell::new(false),
            calls: Cell::new(0),
            policies: RefCell::new(vec![
                Policies {
                    interface: "fcm",
                    available: vec!["cpu_count".into()],
                    current: "off".into(),
                    params: [0; POLICY_PARAMS],
                },
                Policies {
                    interface: "hstest",
                    available: vec![],
                    current: "off".into(),
                    params: [0; POLICY_PARAMS],
                },
            ]),
            monitor: Cell::new(true),
            file_device: Cell::new(true),
            budget: Cell::new(65536),
        }
    }

    /// Registers one more decision policy (parameters: anything).
    pub fn add_policy(&self, interface: &str, policy: &str) {
        for p in self.policies.borrow_mut().iter_mut() {
            if p.interface == interface {
                p.available.push(policy.into());
            }
        }
    }

    /// The current policy of an interface and its parameters.
    pub fn policy_of(&self, interface: &str) -> (String, [u32; POLICY_PARAMS]) {
        let policies = self.policies.borrow();
        let p = policies.iter().find(|p| p.interface == interface).unwrap();
        (p.current.clone(), p.params)
    }

    fn file_device(&self) -> DevResult<()> {
        if !self.file_device.get() {
            return Err(DeviceError::new(OPEN_FILE_DEVICE, libc::ENOENT));
        }
        Ok(())
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
        Ok(vec![
            InterfaceEntry {
                name: name("fcm"),
                default_impl: name("shared"),
                objects: self.objects.borrow().len() as u32,
                impls: 3,
            },
            InterfaceEntry {
                name: name("hstest"),
                default_impl: [0; NAME_LEN],
                objects: 0,
                impls: 0,
            },
        ])
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
                flags: 0,
                reserved: 0,
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
        // Odd objects are labelled, as an FCM of a file is.
        if id % 2 == 1 {
            let label = format!("/mnt/hs/file{id}");
            st.label[..label.len()].copy_from_slice(label.as_bytes());
        }
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
        let op = if set { "set policy" } else { "policy" };
        let err = |errno| DeviceError::new(op, errno);
        if set {
            self.check_admin(op)?;
        }
        let interface = valid(&req.interface).ok_or(err(libc::EINVAL))?;
        let mut policies = self.policies.borrow_mut();
        let p = policies
            .iter_mut()
            .find(|p| p.interface == interface)
            .ok_or(err(libc::ENOENT))?;
        if !set {
            req.policy = name(&p.current);
            req.params = p.params;
            req.count = p.available.len() as u32;
            req.available = [[0; NAME_LEN]; MAX_POLICIES];
            for (field, n) in req.available.iter_mut().zip(&p.available) {
                *field = name(n);
            }
            return Ok(());
        }
        let policy = valid(&req.policy).ok_or(err(libc::EINVAL))?;
        if policy == "off" {
            (p.current, p.params) = ("off".into(), [0; POLICY_PARAMS]);
            return Ok(());
        }
        if !p.available.iter().any(|a| a == policy)
            || (policy == "cpu_count" && !self.monitor.get())
        {
            return Err(err(libc::ENOENT));
        }
        let mut params = req.params;
        if policy == "cpu_count" {
            if params == [0; POLICY_PARAMS] {
                params = [2, 1, 3, 0];
            }
            let [up_cpus, up_windows, down_windows, zero] = params;
            if up_cpus < 2 || up_windows == 0 || down_windows <= up_windows || zero != 0 {
                return Err(err(libc::EINVAL));
            }
        }
        (p.current, p.params) = (policy.into(), params);
        Ok(())
    }

    fn fcm_memory(&self) -> DevResult<(FcmMemoryRequest, Vec<FcmPages>)> {
        self.count();
        self.file_device()?;
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
        self.file_device()?;
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
