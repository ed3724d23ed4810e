#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# FCM memory like page-cache memory (tests/vm/fcm_memory.py): the global
# budget against an unprivileged reader of 1.5 GiB, drop_caches, a memory
# cgroup's limit, and a memory hog against dirty FCMs. Unbounded FCMs
# (hotswap_fcm capacity=0), so only the budget, reclaim and the cgroup
# bound them.
# The hog case alone takes about a minute under TCG here; CI runs slower.
# vm-timeout: 400
set -eu
. "$(dirname "$0")/lib.sh"

# No FCM module is loaded yet, so hotswap_fcm can be (re)loaded.
load hotswap
reload hotswap_fcm capacity=0
load fcm_shared fcm_distributed
for impl in shared distributed; do
	default_fcm "$impl"
	echo "== fcm/$impl"
	case $impl in
	shared) cases="dirty_budget drop_caches cgroup nobody" ;;
	*) cases="dirty_budget drop_caches cgroup hog" ;;
	esac
	# shellcheck disable=SC2086
	/usr/bin/python3 -u tests/vm/fcm_memory.py $cases
done
