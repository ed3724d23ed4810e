// SPDX-License-Identifier: GPL-2.0
//! State transfer: the old and the new object negotiate the best common
//! format, then the state moves.
//!
//! Each implementation lists the formats it can export and import, in
//! preference order. The mediator takes the exporter's list in order and
//! picks the first format the importer also lists: the old object knows
//! best which of its representations is cheapest to hand over (a page map
//! by pointer before a list of page descriptors). No common format, or an
//! error from either side, aborts the swap; the exporter's `release` with
//! `taken = 0` then puts the old object back exactly as it was.

use crate::ott::instance::Instance;
use crate::registry::ImplInfo;
use kernel::prelude::*;

/// The first format in `exports` that `imports` also lists.
pub(crate) fn negotiate(exports: &[u32], imports: &[u32]) -> Option<u32> {
    let listed = |list: &[u32], f: u32| list.iter().take_while(|x| **x != 0).any(|x| *x == f);
    exports
        .iter()
        .copied()
        .take_while(|f| *f != 0)
        .find(|f| listed(imports, *f))
}

/// Moves the state of `old` into `new`. Returns the format used;
/// `ENOPROTOOPT` if they share none.
pub(crate) fn transfer(old: &Instance, new: &Instance) -> Result<u32> {
    let (from, to): (&ImplInfo, &ImplInfo) = (&old.imp, &new.imp);
    let format = negotiate(&from.export_formats, &to.import_formats).ok_or(ENOPROTOOPT)?;
    let state = from.export(old.obj, format)?;
    match to.import(new.obj, format, state) {
        Ok(()) => {
            from.release(old.obj, format, state, true);
            Ok(format)
        }
        Err(err) => {
            from.release(old.obj, format, state, false);
            Err(err)
        }
    }
}

#[kunit_tests(hotswap_negotiation)]
mod tests {
    use super::negotiate;

    #[test]
    fn first_exporter_preference_that_importer_lists() {
        assert_eq!(negotiate(&[2, 1, 0, 0], &[1, 2, 0, 0]), Some(2));
        assert_eq!(negotiate(&[3, 1, 0, 0], &[1, 2, 0, 0]), Some(1));
    }

    #[test]
    fn no_common_format() {
        assert_eq!(negotiate(&[3, 4, 0, 0], &[1, 2, 0, 0]), None);
        assert_eq!(negotiate(&[0, 0, 0, 0], &[1, 0, 0, 0]), None);
    }

    #[test]
    fn zero_ends_a_list() {
        // A format after the terminating 0 is not listed.
        assert_eq!(negotiate(&[0, 1, 0, 0], &[1, 0, 0, 0]), None);
        assert_eq!(negotiate(&[1, 0, 0, 0], &[0, 1, 0, 0]), None);
    }
}
