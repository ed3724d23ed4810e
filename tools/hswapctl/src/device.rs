// SPDX-License-Identifier: GPL-2.0
//! The control device behind a trait: [`Dev`] speaks the real ioctls of
//! `uapi.rs` on `/dev/hotswap`, and those of `fcm_uapi.rs` (FCM memory) on
//! `/dev/hotswap-file`; tests implement [`Device`] with a fake.

use crate::errors::DeviceError;
use crate::fcm_uapi::*;
use crate::uapi::*;
use std::cell::OnceCell;
use std::fs::File;
use std::os::fd::AsRawFd;

/// Result of a device operation.
pub type DevResult<T> = Result<T, DeviceError>;

/// What the commands need from `/dev/hotswap` (and, for FCM memory, from
/// `/dev/hotswap-file`).
pub trait Device {
    fn version(&self) -> DevResult<Version>;
    fn interfaces(&self) -> DevResult<Vec<InterfaceEntry>>;
    fn impls(&self) -> DevResult<Vec<ImplEntry>>;
    fn objects(&self) -> DevResult<Vec<ObjectEntry>>;
    fn status(&self, id: u32) -> DevResult<ObjectStatus>;
    /// Runs a swap request; returns the per-object results.
    fn swap(&self, req: &mut SwapRequest) -> DevResult<Vec<SwapResult>>;
    /// Adds (`add`) or removes an interposer.
    fn interpose(&self, add: bool, req: &mut InterposeRequest) -> DevResult<()>;
    fn set_timeout(&self, req: &TimeoutRequest) -> DevResult<()>;
    /// Reports of the object's interposers: one `<name>: <text>` line each.
    fn reports(&self, id: u32) -> DevResult<String>;
    /// Reads (`set` false) or sets an interface's policy.
    fn policy(&self, set: bool, req: &mut PolicyRequest) -> DevResult<()>;
    /// FCM memory (on `/dev/hotswap-file`): the global figures and each
    /// FCM's pages.
    fn fcm_memory(&self) -> DevResult<(FcmMemoryRequest, Vec<FcmPages>)>;
    /// Sets the FCM memory budget, in pages (on `/dev/hotswap-file`).
    fn set_fcm_budget(&self, pages: u64) -> DevResult<()>;
}

/// `/dev/hotswap`, opened, and `/dev/hotswap-file` once FCM memory is
/// asked for (hotswap_fcm.ko may not be loaded: only those requests fail).
pub struct Dev {
    file: File,
    file_device: String,
    fcm: OnceCell<DevResult<File>>,
}

/// The operation name of opening `/dev/hotswap-file` (errors.rs words it).
pub const OPEN_FILE_DEVICE: &str = "open file device";

fn open_errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `ioctl(2)` of `cmd` on `fd` with `arg`.
fn ioctl<T>(fd: &File, op: &'static str, cmd: u32, arg: &mut T) -> DevResult<()> {
    // The safety argument below rests on this.
    assert_eq!(ioc_size(cmd), std::mem::size_of::<T>(), "{op}: ioctl size");
    // SAFETY: `cmd` encodes `size_of::<T>()` (uapi.rs and fcm_uapi.rs
    // build every number from its struct), so the kernel reads and writes
    // at most that many bytes of `*arg`, which is a valid, exclusive `T`.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, arg as *mut T) };
    if ret < 0 {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        return Err(DeviceError::new(op, errno));
    }
    Ok(())
}

impl Dev {
    /// Opens the control device at `path`; `file_device` is the cached-file
    /// device, opened when first needed.
    pub fn open(path: &str, file_device: &str) -> DevResult<Self> {
        File::open(path)
            .map(|file| Self {
                file,
                file_device: file_device.to_string(),
                fcm: OnceCell::new(),
            })
            .map_err(|e| DeviceError::new("open", open_errno(e)))
    }

    fn ioctl<T>(&self, op: &'static str, cmd: u32, arg: &mut T) -> DevResult<()> {
        ioctl(&self.file, op, cmd, arg)
    }

    /// An ioctl on `/dev/hotswap-file` (any descriptor of it will do: no
    /// file is attached). Reading is enough, even to set the budget.
    fn fcm_ioctl<T>(&self, op: &'static str, cmd: u32, arg: &mut T) -> DevResult<()> {
        let file = self.fcm.get_or_init(|| {
            File::open(&self.file_device)
                .map_err(|e| DeviceError::new(OPEN_FILE_DEVICE, open_errno(e)))
        });
        match file {
            Ok(file) => ioctl(file, op, cmd, arg),
            Err(e) => Err(e.clone()),
        }
    }

    /// Reads a list, growing the buffer until every entry fits.
    fn list<T: Copy>(&self, op: &'static str, cmd: u32, empty: T) -> DevResult<Vec<T>> {
        let mut capacity = 64usize;
        loop {
            let mut entries = vec![empty; capacity];
            let mut req = ListRequest {
                entries: entries.as_mut_ptr() as u64,
                capacity: capacity as u32,
                count: 0,
            };
            self.ioctl(op, cmd, &mut req)?;
            let count = req.count as usize;
            if count <= capacity {
                entries.truncate(count);
                return Ok(entries);
            }
            capacity = count + 16;
        }
    }
}

/// An all-zero value of a plain `#[repr(C)]` ABI struct.
pub fn zeroed<T: Copy>() -> T {
    // SAFETY: Only used for the uapi.rs and fcm_uapi.rs structs: integers
    // and byte arrays, for which all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

impl Device for Dev {
    fn version(&self) -> DevResult<Version> {
        let mut v = Version::default();
        self.ioctl("version", HOTSWAP_IOC_VERSION, &mut v)?;
        Ok(v)
    }

    fn interfaces(&self) -> DevResult<Vec<InterfaceEntry>> {
        self.list("list interfaces", HOTSWAP_IOC_LIST_INTERFACES, zeroed())
    }

    fn impls(&self) -> DevResult<Vec<ImplEntry>> {
        self.list("list implementations", HOTSWAP_IOC_LIST_IMPLS, zeroed())
    }

    fn objects(&self) -> DevResult<Vec<ObjectEntry>> {
        self.list("list objects", HOTSWAP_IOC_LIST_OBJECTS, zeroed())
    }

    fn status(&self, id: u32) -> DevResult<ObjectStatus> {
        let mut st: ObjectStatus = zeroed();
        st.id = id;
        self.ioctl("status", HOTSWAP_IOC_OBJECT_STATUS, &mut st)?;
        Ok(st)
    }

    fn swap(&self, req: &mut SwapRequest) -> DevResult<Vec<SwapResult>> {
        let mut results = vec![SwapResult::default(); self.objects()?.len().max(1) + 16];
        req.results = results.as_mut_ptr() as u64;
        req.capacity = results.len() as u32;
        self.ioctl("swap", HOTSWAP_IOC_SWAP, req)?;
        results.truncate((req.count as usize).min(results.len()));
        Ok(results)
    }

    fn interpose(&self, add: bool, req: &mut InterposeRequest) -> DevResult<()> {
        if add {
            self.ioctl("interpose", HOTSWAP_IOC_INTERPOSE, req)
        } else {
            self.ioctl("uninterpose", HOTSWAP_IOC_UNINTERPOSE, req)
        }
    }

    fn set_timeout(&self, req: &TimeoutRequest) -> DevResult<()> {
        let mut req = *req;
        self.ioctl("set timeout", HOTSWAP_IOC_SET_TIMEOUT, &mut req)
    }

    fn policy(&self, set: bool, req: &mut PolicyRequest) -> DevResult<()> {
        if set {
            self.ioctl("set policy", HOTSWAP_IOC_SET_POLICY, req)
        } else {
            self.ioctl("policy", HOTSWAP_IOC_GET_POLICY, req)
        }
    }

    fn fcm_memory(&self) -> DevResult<(FcmMemoryRequest, Vec<FcmPages>)> {
        let mut capacity = 64usize;
        loop {
            let mut entries = vec![FcmPages::default(); capacity];
            let mut req = FcmMemoryRequest {
                entries: entries.as_mut_ptr() as u64,
                capacity: capacity as u32,
                ..FcmMemoryRequest::default()
            };
            self.fcm_ioctl("fcm memory", HOTSWAP_FILE_IOC_MEMORY, &mut req)?;
            let count = req.count as usize;
            if count <= capacity {
                entries.truncate(count);
                return Ok((req, entries));
            }
            capacity = count + 16;
        }
    }

    fn set_fcm_budget(&self, pages: u64) -> DevResult<()> {
        let mut pages = pages;
        self.fcm_ioctl("set fcm budget", HOTSWAP_FILE_IOC_SET_BUDGET, &mut pages)
    }

    fn reports(&self, id: u32) -> DevResult<String> {
        let mut req: ReportRequest = zeroed();
        req.id = id;
        self.ioctl("reports", HOTSWAP_IOC_OBJECT_REPORTS, &mut req)?;
        let len = (req.len as usize).min(req.text.len());
        Ok(String::from_utf8_lossy(&req.text[..len]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts and numbers the Python drivers (tests/pylib) and the
    /// contract of UAPI_VERSION 6 spell out.
    #[test]
    fn abi_numbers_and_sizes() {
        assert_eq!(UAPI_VERSION, 6);
        assert_eq!(std::mem::size_of::<ObjectStatus>(), 656);
        assert_eq!(HOTSWAP_IOC_OBJECT_STATUS, 0xc290_b705);
        assert_eq!(std::mem::size_of::<PolicyRequest>(), 340);
        assert_eq!(HOTSWAP_IOC_SET_POLICY, 0x4154_b70b);
        assert_eq!(HOTSWAP_IOC_GET_POLICY, 0xc154_b70c);
        assert_eq!(std::mem::size_of::<FcmMemoryRequest>(), 72);
        assert_eq!(HOTSWAP_FILE_IOC_MEMORY, 0xc048_b723);
        assert_eq!(HOTSWAP_FILE_IOC_SET_BUDGET, 0x4008_b724);
    }
}
