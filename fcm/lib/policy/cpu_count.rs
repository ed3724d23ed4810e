// SPDX-License-Identifier: GPL-2.0
//! `cpu_count`: the FCM's decision policy (K42's showcase). The monitor
//! interposed on an FCM reports, once a second, how many CPUs used it;
//! when `up_cpus` or more did for `up_windows` windows in a row, the FCM
//! is swapped to `distributed`; after `down_windows` windows of fewer,
//! back to `shared`. The two window counts differ (down > up), so a
//! borderline load does not flap.
//!
//! Picked with `hswapctl policy fcm cpu_count` (or `auto`); it is one
//! decision policy among any others registered for `fcm`, and hotswap's
//! generic hook (sample -> decide -> swap on hotswap's own workqueue, one
//! log line per decision) does the rest.

use crate::api::{DecisionPolicy, Reason, POLICY_PARAMS, SAMPLE_WORDS, STATE_WORDS};
use crate::fcm_api::Fcm;
use core::fmt::Write;
use kernel::prelude::*;

/// The policy.
pub(crate) struct CpuCount;

/// Indexes of [`DecisionPolicy::DEFAULT_PARAMS`].
const UP_CPUS: usize = 0;
const UP_WINDOWS: usize = 1;
const DOWN_WINDOWS: usize = 2;

/// Indexes of the per-FCM state words.
const HOT: usize = 0;
const COLD: usize = 1;

impl DecisionPolicy for CpuCount {
    type Interface = Fcm;
    const NAME: &'static CStr = c"cpu_count";
    const MONITOR: Option<&'static CStr> = Some(c"monitor");
    const DEFAULT_PARAMS: [u32; POLICY_PARAMS] = [2, 1, 3, 0];

    fn check(p: &[u32; POLICY_PARAMS]) -> Result {
        let ok =
            p[UP_CPUS] >= 2 && p[UP_WINDOWS] >= 1 && p[DOWN_WINDOWS] > p[UP_WINDOWS] && p[3] == 0;
        if ok {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    fn decide(
        p: &[u32; POLICY_PARAMS],
        sample: &[u64; SAMPLE_WORDS],
        state: &mut [u64; STATE_WORDS],
        current: &CStr,
        reason: &mut Reason<'_>,
    ) -> Option<&'static CStr> {
        let active = sample[0];
        if active >= u64::from(p[UP_CPUS]) {
            state[HOT] = state[HOT].saturating_add(1);
            state[COLD] = 0;
        } else {
            state[COLD] = state[COLD].saturating_add(1);
            state[HOT] = 0;
        }
        let (to, windows) = if state[HOT] >= u64::from(p[UP_WINDOWS]) {
            (c"distributed", state[HOT])
        } else if state[COLD] >= u64::from(p[DOWN_WINDOWS]) {
            (c"shared", state[COLD])
        } else {
            return None;
        };
        if to == current {
            return None;
        }
        let _ = write!(reason, "{} CPU(s) active for {} window(s)", active, windows);
        Some(to)
    }
}
