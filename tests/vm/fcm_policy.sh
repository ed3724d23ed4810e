#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The FCM's decision policy, cpu_count (hotswap_fcm.ko): concurrent use
# swaps an FCM to distributed, single use swaps it back, each with a logged
# reason; it needs fcm_monitor; thresholds are validated.
set -eu
. "$(dirname "$0")/lib.sh"

tool=$HOTSWAP_ROOT/tools/hswapctl/target/release/hswapctl
load hotswap hotswap_fcm fcm_shared fcm_distributed
# Registered by hotswap_fcm, refused without the monitor it needs (ENOENT).
/usr/bin/python3 - <<'PY' || fail "cpu_count without fcm_monitor"
import errno, os, sys
sys.path.insert(0, "tests/pylib")
import hotswap_uapi as uapi
ctl = os.open(uapi.CONTROL, os.O_RDWR)
p = uapi.get_policy(ctl, "fcm")
assert (p["policy"], p["params"], p["count"], p["available"]) == ("off", (0, 0, 0, 0), 1, ["cpu_count"]), p
try:
    uapi.set_policy(ctl, "fcm", "cpu_count")
    raise AssertionError("cpu_count turned on without fcm_monitor")
except OSError as e:
    assert e.errno == errno.ENOENT, e
assert uapi.get_policy(ctl, "fcm")["policy"] == "off"
PY
"$tool" policy fcm auto 2>/dev/null && fail "policy on without fcm_monitor should fail"
"$tool" policy fcm auto 2>&1 | grep -q "is fcm_monitor loaded?" || fail "policy auto without fcm_monitor: no hint"
load fcm_monitor
"$tool" policy fcm show | grep -q "^fcm policy: off$" || fail "the policy is not off by default"
"$tool" policy fcm show | grep -q "^available: cpu_count$" || fail "policy show does not list cpu_count"
"$tool" policy fcm auto --up-windows 2 --down-windows 2 2>/dev/null && fail "flapping thresholds accepted"
"$tool" policy fcm cpu_count --up-cpus 1 2>/dev/null && fail "--up-cpus 1 accepted"
"$tool" policy fcm enabled 2>/dev/null && fail "an unknown policy was accepted"
# By name, with the defaults; then auto with the thresholds the test needs.
"$tool" policy fcm cpu_count |
	grep -q "^fcm policy: cpu_count — swap to distributed when 2+ CPUs use an object for 1 s, back to shared after 3 s of less$" ||
	fail "policy cpu_count"
"$tool" policy fcm off | grep -q "^fcm policy: off$" || fail "policy off"
"$tool" policy fcm auto --up-windows 1 --down-windows 3 | grep -q "^fcm policy: cpu_count — " || fail "policy auto"
"$tool" --json policy fcm show | /usr/bin/python3 -c '
import json, sys
p = json.load(sys.stdin)
assert p == {"interface": "fcm", "policy": "cpu_count", "enabled": True, "params": [2, 1, 3, 0],
             "available": ["cpu_count"], "up_cpus": 2, "up_windows": 1, "down_windows": 3}, p
' || fail "policy show --json"
marker="fcm_policy: start"
echo "$marker" >/dev/kmsg
/usr/bin/python3 tests/vm/fcm_policy.py "$tool"
log=$(dmesg | sed -n "/$marker/,\$p")
echo "$log" | grep -q "fcm/[0-9]*: policy cpu_count: shared -> distributed (2 CPU(s) active for 1 window(s))" ||
	fail "no logged reason for the swap to distributed: $(echo "$log" | grep policy)"
echo "$log" | grep -q "fcm/[0-9]*: policy cpu_count: distributed -> shared (1 CPU(s) active for 3 window(s))" ||
	fail "no logged reason for the swap back: $(echo "$log" | grep policy)"
"$tool" policy fcm off | grep -q "^fcm policy: off$" || fail "policy off"
"$tool" --json policy fcm show | /usr/bin/python3 -c '
import json, sys
p = json.load(sys.stdin)
assert (p["policy"], p["enabled"], p["params"]) == ("off", False, [0, 0, 0, 0]), p
' || fail "policy off --json"
echo "decision policy cpu_count: ok"
