#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Fuzzes the ioctl ABI of /dev/hotswap and /dev/hotswap-file (and the
# cached-file device's read/write/lseek/fsync) with random and crafted
# requests, as root and as an unprivileged user, while a racer swaps the
# FCMs and interposes the monitor and a worker checks a real file through
# the device: only allowed errnos, EPERM for every unprivileged change, the
# file intact (ioctl_fuzz.py says what is checked).
#
# HOTSWAP_FUZZ_REQUESTS (default 15000, about 40 s under TCG; make stress: 100000) and
# HOTSWAP_FUZZ_SEED (default: from the clock; printed) come from the
# environment or, since the VM does not inherit the host's, from the
# kernel command line (HOTSWAP_VM_APPEND="HOTSWAP_FUZZ_SEED=42").
set -eu
. "$(dirname "$0")/lib.sh"

param() {
	local v=${!1:-}
	[ -n "$v" ] || v=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -1)
	echo "${v:-$2}"
}
requests=$(param HOTSWAP_FUZZ_REQUESTS 15000)
seed=$(param HOTSWAP_FUZZ_SEED "$(date +%s%N | cut -c7-15)")
echo "ioctl_fuzz: seed $seed (replay: HOTSWAP_FUZZ_SEED=$seed), $requests requests"

load hotswap hotswap_fcm fcm_shared fcm_distributed fcm_monitor
mode=$(stat -c %a /dev/hotswap)
dir=/tmp/ioctl_fuzz
mkdir -p $dir
mount -t tmpfs -o size=256m,mode=0755 ioctl_fuzz $dir
cleanup() {
	chmod "$mode" /dev/hotswap
	umount $dir
}
trap cleanup EXIT
mkdir $dir/root $dir/nobody
chown 65534:65534 $dir/nobody
echo secret >$dir/root_only
chmod 0600 $dir/root_only
# The unprivileged user may open the control device to read.
chmod 0666 /dev/hotswap

/usr/bin/python3 tests/vm/ioctl_fuzz.py root "$requests" "$seed" $dir

# Nothing left behind: every FCM went with its last opener, and every
# module unloads.
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "FCMs outlived their files: $(cat /sys/kernel/debug/hotswap/objects)"
cleanup
trap - EXIT
unload_all || fail "a module did not unload after the fuzzing"
echo "ioctl fuzzing: ok"
