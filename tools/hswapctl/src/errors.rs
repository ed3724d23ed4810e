// SPDX-License-Identifier: GPL-2.0
//! Errors in human words, with the fix. The kernel answers with errnos;
//! this module turns each one, in the context of the operation that got
//! it, into a sentence a person can act on.

use std::fmt;

/// A failed device operation: what was attempted and the kernel's errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceError {
    pub op: &'static str,
    pub errno: i32,
}

impl DeviceError {
    pub fn new(op: &'static str, errno: i32) -> Self {
        Self { op, errno }
    }
}

impl std::error::Error for DeviceError {}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&explain(self.op, self.errno))
    }
}

/// Operations on `/dev/hotswap-file`, which hotswap_fcm.ko serves.
const FCM_OPS: [&str; 3] = [
    crate::device::OPEN_FILE_DEVICE,
    "fcm memory",
    "set fcm budget",
];

/// The sentence for `errno` from operation `op`.
pub fn explain(op: &str, errno: i32) -> String {
    let module = if FCM_OPS.contains(&op) {
        "hotswap_fcm.ko"
    } else {
        "hotswap.ko"
    };
    match (op, errno) {
        ("open", libc::ENOENT) | ("open", libc::ENODEV) | ("open", libc::ENXIO) => {
            "hotswap is not loaded: insmod rust/hotswap/hotswap.ko (or modprobe hotswap)".into()
        }
        ("open", libc::EACCES) => format!(
            "cannot open {}: permission denied (run as root, or chmod the device to let others read it)",
            crate::uapi::DEVICE_PATH
        ),
        (crate::device::OPEN_FILE_DEVICE, libc::ENOENT)
        | (crate::device::OPEN_FILE_DEVICE, libc::ENODEV)
        | (crate::device::OPEN_FILE_DEVICE, libc::ENXIO) => {
            "hotswap_fcm is not loaded: insmod fcm/lib/hotswap_fcm.ko (or modprobe hotswap_fcm)"
                .into()
        }
        (crate::device::OPEN_FILE_DEVICE, libc::EACCES) => format!(
            "cannot open {}: permission denied (run as root, or chmod the device)",
            crate::fcm_uapi::FILE_DEVICE_PATH
        ),
        (_, libc::EPERM) => format!("{op}: needs CAP_SYS_ADMIN (run as root)"),
        (_, libc::ENOTTY) => format!(
            "{op}: the kernel does not know this request: {module} and hswapctl were built from different sources"
        ),
        (_, libc::EBUSY) => format!("{op}: the object is busy with another swap or interposition; try again"),
        (_, libc::ENOENT) => format!("{op}: no such interface, implementation or object"),
        (_, libc::EINVAL) => format!("{op}: invalid request (a name, kind or value the kernel refused)"),
        (_, libc::ETIMEDOUT) => format!("{op}: timed out"),
        (_, libc::ENOPROTOOPT) => {
            format!("{op}: the two implementations share no state format")
        }
        (_, libc::EFAULT) => format!("{op}: bad address (a bug in hswapctl)"),
        (_, libc::ENOTRECOVERABLE) => format!(
            "{op}: the implementation is quarantined: it broke its contract (the kernel log says how); load its module again to reinstate it"
        ),
        _ => format!("{op}: {}", std::io::Error::from_raw_os_error(errno)),
    }
}

/// The kernel and the tool speak different ABI versions.
pub fn abi_mismatch(kernel: u32, tool: u32) -> String {
    format!(
        "/dev/hotswap speaks ABI version {kernel} but this hswapctl speaks version {tool}: \
         use the hswapctl built with the loaded hotswap.ko"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_root() {
        assert_eq!(
            explain("swap", libc::EPERM),
            "swap: needs CAP_SYS_ADMIN (run as root)"
        );
    }

    #[test]
    fn not_loaded() {
        assert!(explain("open", libc::ENOENT).starts_with("hotswap is not loaded: insmod"));
    }

    #[test]
    fn fcm_not_loaded() {
        let msg = explain(crate::device::OPEN_FILE_DEVICE, libc::ENOENT);
        assert!(
            msg.starts_with("hotswap_fcm is not loaded: insmod fcm/lib/hotswap_fcm.ko"),
            "{msg}"
        );
        assert!(explain("fcm memory", libc::ENOTTY).contains("hotswap_fcm.ko and hswapctl"));
        assert!(explain("swap", libc::ENOTTY).contains(" hotswap.ko and hswapctl"));
    }

    #[test]
    fn quarantined() {
        assert!(explain("swap", libc::ENOTRECOVERABLE).contains("quarantined"));
    }

    #[test]
    fn abi_versions_named() {
        let msg = abi_mismatch(2, 1);
        assert!(
            msg.contains("version 2") && msg.contains("version 1"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_errno_still_readable() {
        assert!(explain("list objects", libc::ENOMEM).starts_with("list objects: "));
    }
}
