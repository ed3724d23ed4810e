#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Races that lost writes (tests/vm/fcm_races.py): eviction against a
# writer on another CPU, appends against fsync. Capacity 8 pages, so
# eviction runs all the time; under each FCM. HOTSWAP_RACE_ROUNDS rounds
# (default 3).
set -eu
. "$(dirname "$0")/lib.sh"

# No FCM module is loaded yet, so hotswap_fcm can be (re)loaded.
load hotswap
reload hotswap_fcm capacity=8
load fcm_shared fcm_distributed
for impl in shared distributed; do
	default_fcm "$impl"
	echo "== fcm/$impl"
	/usr/bin/python3 tests/vm/fcm_races.py "${HOTSWAP_RACE_ROUNDS:-3}" ${HOTSWAP_RACE_SEED:+"$HOTSWAP_RACE_SEED"}
done
