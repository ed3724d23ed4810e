#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# An FCM swapped shared <-> distributed while processes on both vCPUs read
# and write through it: no page lost, none re-read, the file exact.
set -eu
. "$(dirname "$0")/lib.sh"

load hotswap hotswap_fcm fcm_shared fcm_distributed fcm_monitor
/usr/bin/python3 tests/vm/fcm_swap_live.py "$HOTSWAP_ROOT/tools/hswapctl/target/release/hswapctl"
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "an FCM outlived its files"
echo "live FCM swaps: ok"
