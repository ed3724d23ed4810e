#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Every allocation a swap makes, failed in turn (/proc/thread-self/fail-nth):
# the object ends whole on the implementation its outcome names, with no
# mediator left, and its file intact (tests/vm/alloc_failure.py).
set -eu
. "$(dirname "$0")/lib.sh"

[ -e /proc/thread-self/fail-nth ] || fail "no fail-nth: the kernel lacks CONFIG_FAULT_INJECTION"
load hotswap hotswap_fcm fcm_shared fcm_distributed fcm_faulty
/usr/bin/python3 tests/vm/alloc_failure.py ${HOTSWAP_STORM_SEED:+"$HOTSWAP_STORM_SEED"}
! dmesg | grep -E 'mediator stays|it is lost|dirty data lost' || fail "the kernel log reports stranded or lost state"
