#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the benchmark VM (scripts/bench.sh, from make bench):
#   guest-bench.sh OUT ACCEL [bench.py options]
# loads the modules with the benchmark module and runs bench/guest/bench.py.
set -eu
out=$1
accel=$2
shift 2
cd "$(dirname "$0")/../.."
export HOTSWAP_ROOT=$PWD
. tests/vm/lib.sh
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
load hotswap hotswap_fcm fcm_shared fcm_distributed fcm_monitor
insmod bench/kernel/hotswap_bench.ko || fail "insmod hotswap_bench"
status=0
/usr/bin/python3 bench/guest/bench.py "$out" "$accel" "$@" || status=$?
rmmod hotswap_bench || status=1
unload_all || status=1
# A benchmark that tripped a kernel warning measured a broken kernel.
if dmesg | grep -E "WARNING:|BUG:|Oops" >&2; then
	echo "bench: the kernel log shows a problem (above)" >&2
	status=1
fi
exit $status
