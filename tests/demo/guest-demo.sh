#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the demo VM (scripts/vm.sh, from make demo).
set -eu
cd "$(dirname "$0")/../.."
export HOTSWAP_ROOT=$PWD
. tests/vm/lib.sh
tool=$HOTSWAP_ROOT/tools/hswapctl/target/release/hswapctl

echo "hotswap demo: Linux $(uname -r), $(nproc) vCPUs"
load hotswap hotswap_fcm fcm_shared fcm_distributed fcm_monitor
"$tool" policy fcm auto --up-cpus 2 --up-windows 1 --down-windows 3
echo
marker="hotswap demo start"
echo "$marker" >/dev/kmsg
/usr/bin/python3 tests/demo/demo.py "$tool"
echo
echo "The policy's decisions, from the kernel log:"
dmesg | sed -n "/$marker/,\$p" | grep -E "policy [a-z0-9_]+:" | sed 's/^\[ *[0-9.]*\] /    /'
"$tool" policy fcm off >/dev/null
unload_all
