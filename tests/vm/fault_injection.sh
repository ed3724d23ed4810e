#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Fault injection through fcm_faulty's knobs: failing, misreporting, slow and
# stuck implementations during live FCM swaps of a real file. Every swap
# aborts or completes as it should, the data and page accounting stay
# exact, blocked callers go on, and a stuck call times the swap out.
# Runs with every module loaded (it needs no reload, and saves five insmods).
# vm-phase: loaded
set -eu
. "$(dirname "$0")/lib.sh"

load hotswap hotswap_fcm fcm_shared fcm_distributed fcm_faulty
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
/usr/bin/python3 tests/vm/fault_injection.py
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "an FCM outlived its files"
echo "fault injection: ok"
