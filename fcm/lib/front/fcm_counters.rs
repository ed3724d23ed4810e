// SPDX-License-Identifier: GPL-2.0
//! `/sys/kernel/debug/hotswap_fcm/fcms`: each cached file's FCM and the
//! counters it keeps itself (`FcmStats`), one line per FCM, for the
//! benchmarks' structural figures (page hits, misses and the waits on a
//! contended FCM lock, which TCG's timing cannot distort) and for people.

use crate::cached_file;
use crate::fcm_api::FcmStats;
use core::fmt::{self, Formatter};

/// Renders one line per FCM: `object=ID hits= misses= lock_waits=
/// cached= dirty=`. Each FCM is held while asked (its counters may be a
/// moment apart from the next one's); no global lock is held across the
/// questions, which wait for the FCM's lock (and for a swap in progress).
pub(crate) fn render(_: &(), f: &mut Formatter<'_>) -> fmt::Result {
    let Ok(owners) = cached_file::owners() else {
        return writeln!(f, "objects=unknown (out of memory)");
    };
    for owner in owners {
        let Some(held) = cached_file::pin(owner) else {
            continue;
        };
        let mut s = FcmStats::default();
        // SAFETY: The object is live for the call; `s` is writable.
        let asked = cached_file::call_fcm(held.slot(), |ops, obj, call| unsafe {
            (ops.stats)(obj, call, &mut s)
        });
        if asked.is_err() {
            continue;
        }
        writeln!(
            f,
            "object={} hits={} misses={} lock_waits={} cached={} dirty={}",
            held.slot().id(),
            s.hits,
            s.misses,
            s.lock_waits,
            s.cached,
            s.dirty
        )?;
    }
    Ok(())
}
