#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Module lifecycle: an implementation in use, hotswap_fcm.ko with live FCMs
# or implementations, and hotswap.ko with hotswap_fcm.ko or live objects
# refuse to unload; an implementation needs hotswap_fcm.ko to load; an
# implementation swapped away from unloads;
# HOTSWAP_LIFECYCLE_LOOPS (default 50; 100+ for a stress run) load/use/swap/unload rounds of the
# stack leave no module, object, page or slab memory behind.
set -eu
. "$(dirname "$0")/lib.sh"

mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
/usr/bin/python3 tests/vm/module_lifecycle.py "${HOTSWAP_LIFECYCLE_LOOPS:-50}"
for m in hotswap hotswap_fcm fcm_shared fcm_distributed fcm_faulty; do
	! module_loaded $m || fail "$m is still loaded"
done
echo "module lifecycle: ok"
