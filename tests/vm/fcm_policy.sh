#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The autonomic policy: concurrent use swaps an FCM to distributed, single
# use swaps it back, each with a logged reason; thresholds are validated.
set -eu
. "$(dirname "$0")/lib.sh"

tool=$HOTSWAP_ROOT/tools/hswapctl/target/release/hswapctl
load hotswap fcm_shared fcm_distributed
"$tool" policy fcm auto 2>/dev/null && fail "policy on without fcm_monitor should fail"
load fcm_monitor
"$tool" policy fcm show | grep -q "fcm policy: off" || fail "the policy is not off by default"
"$tool" policy fcm auto --up-windows 1 --down-windows 3 | grep -q "policy: auto" || fail "policy auto"
"$tool" policy fcm auto --up-windows 2 --down-windows 2 2>/dev/null && fail "flapping thresholds accepted"
marker="fcm_policy: start"
echo "$marker" >/dev/kmsg
/usr/bin/python3 tests/vm/fcm_policy.py "$tool"
log=$(dmesg | sed -n "/$marker/,\$p")
echo "$log" | grep -q "policy: shared -> distributed (2 CPU(s) active for 1 window(s))" ||
	fail "no logged reason for the swap to distributed: $(echo "$log" | grep policy)"
echo "$log" | grep -q "policy: distributed -> shared (1 CPU(s) active for 3 window(s))" ||
	fail "no logged reason for the swap back: $(echo "$log" | grep policy)"
"$tool" policy fcm off | grep -q "policy: off" || fail "policy off"
echo "autonomic policy: ok"
