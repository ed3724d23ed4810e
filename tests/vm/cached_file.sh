#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The cached-file device over real files: reads, writes, seeks, fsync,
# write-back on close, one FCM per inode, and bad input.
set -eu
. "$(dirname "$0")/lib.sh"

load hotswap fcm_shared fcm_distributed
/usr/bin/python3 tests/vm/cached_file.py
# Every FCM is gone once its last opener closed.
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "an FCM outlived its files"
echo "cached-file device: ok"
