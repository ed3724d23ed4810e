#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# /dev/hotswap end to end: every ioctl as root, malformed requests, reads and
# EPERM as an unprivileged user, the debugfs status tree, and the fixed
# one-line-per-phase transcript of a swap.
# vm-phase: loaded
set -eu
. "$(dirname "$0")/lib.sh"

py=/usr/bin/python3
load hotswap hotswap_fcm hotswap_core_test
! module_loaded hstest_objects || rmmod hstest_objects
refs=$(cat /sys/module/hotswap/refcnt)
insmod "$(module_path hstest_objects)" count=3 || fail "insmod hstest_objects"
# hotswap.ko is pinned once by the new module's symbol use and once per
# live object: it cannot be unloaded while objects exist.
[ "$(cat /sys/module/hotswap/refcnt)" = $((refs + 4)) ] ||
	fail "hotswap refcnt $(cat /sys/module/hotswap/refcnt), expected $((refs + 4))"
[ -c /dev/hotswap ] || fail "/dev/hotswap is missing"

marker="control_device: root checks start"
echo "$marker" >/dev/kmsg
$py tests/vm/control_device.py root

# Unprivileged: may read, may not change anything.
chmod 0666 /dev/hotswap
setpriv --reuid=65534 --regid=65534 --clear-groups $py tests/vm/control_device.py user

# debugfs: the same facts, one line per object.
status=/sys/kernel/debug/hotswap
[ "$(grep -c 'interface=hstest' $status/objects)" = 3 ] || fail "debugfs objects: $(cat $status/objects)"
grep -q '^impl=hstest/counter kind=interposer users=0 quarantined=0$' $status/registry ||
	fail "debugfs registry: $(cat $status/registry)"
grep -q 'impl=alpha .* last=completed last_phase=completed' $status/objects ||
	fail "debugfs last swap: $(cat $status/objects)"

# The transcript: the root checks' first swap (all objects to beta) logged
# exactly these phase changes for each object, in this order.
id=$(grep -m1 -o 'id=[0-9]* interface=hstest' $status/objects | cut -d' ' -f1 | cut -d= -f2)
got=$(dmesg | sed -n "/$marker/,\$p" | sed -n "s/.*hotswap: hstest\/$id: //p" | head -5)
want="normal -> forward
forward -> blocked
blocked -> transfer
transfer -> completed
completed -> normal"
[ "$got" = "$want" ] || fail "transcript of hstest/$id:
$got"
# Objects gone, pins gone.
rmmod hstest_objects
[ "$(cat /sys/module/hotswap/refcnt)" = "$refs" ] || fail "hotswap still pinned after its objects went"
grep -q interface=hstest $status/objects && fail "objects left after their module went"
echo "control device, debugfs, transcript and pinning: ok"
