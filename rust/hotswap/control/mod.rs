// SPDX-License-Identifier: GPL-2.0
//! The control plane: the entry points other modules call (`entry`,
//! exported by `exports.c`), `/dev/hotswap` (`control`), the debugfs
//! status tree (`status`), the generic decision-policy hook (`policy`)
//! and the ejection of quarantined implementations (`quarantine`). The
//! top of the core: everything below is used from here,
//! nothing below uses this.

pub(crate) mod control;
pub mod entry;
pub(crate) mod policy;
pub(crate) mod quarantine;
pub(crate) mod status;
