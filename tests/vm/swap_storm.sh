#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A swap storm under load (tests/vm/swap_storm.py): readers and writers on
# every vCPU through /dev/hotswap-file while FCMs are swapped, monitored
# and put under the policy; the files must match the writers' models byte
# for byte. HOTSWAP_STORM_SWAPS sets the count (make test: 1000; make
# stress: 10000), HOTSWAP_STORM_SEED replays a run.
set -eu
. "$(dirname "$0")/lib.sh"

# Half a file: every FCM evicts all the time. No FCM module is loaded
# yet, so hotswap_fcm can be (re)loaded.
load hotswap
reload hotswap_fcm capacity=16
load fcm_shared fcm_distributed fcm_monitor
/usr/bin/python3 "$HOTSWAP_ROOT/tests/vm/swap_storm.py" "${HOTSWAP_STORM_SWAPS:-1000}" \
	${HOTSWAP_STORM_SEED:+"$HOTSWAP_STORM_SEED"}
