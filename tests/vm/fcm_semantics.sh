#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# What a cached file promises (tests/vm/fcm_semantics.py): write-back
# through the FCM's own file whatever the first opener's flags, refused
# opener-dependent files, faulting buffers, write limits, write-back
# errors at fsync and close, truncation, O_APPEND, and a frozen
# filesystem that stalls only its own files. Under both FCMs.
set -eu
. "$(dirname "$0")/lib.sh"

load hotswap hotswap_fcm fcm_shared fcm_distributed
for impl in shared distributed; do
	default_fcm "$impl"
	echo "== fcm/$impl"
	/usr/bin/python3 tests/vm/fcm_semantics.py
done
