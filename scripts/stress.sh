#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make stress: the long reliability runs in one VM, without the KUnit
# suites: a swap storm of STRESS_SWAPS (10000) swaps, the ioctl fuzzer with
# STRESS_FUZZ (100000) requests, STRESS_LOOPS (200) module load/unload
# rounds, the fault-injection test, STRESS_RACE_ROUNDS (30) rounds of the
# FCM races, every allocation of a swap failed in turn, and the FCM memory
# test with STRESS_HOG_MIBS (300) MiB of dirty FCM pages against the hog,
# and hotswapfs's tests in every shape (both FCMs over tmpfs and ext4,
# full-size PostMark and fio), its storm, and STRESS_MMAP_SECONDS (300) of
# its mappings under fire.
# Prints each test's own summary
# line (swaps done, aborted, bytes verified, mismatches, ...) and the
# usual "N passed, N failed" verdict, which also fails on any WARN, BUG or
# oops in the kernel log.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$HOTSWAP_ROOT"

status=0
HOST=0 SUITE=no_kunit_suites VMTEST="swap_storm ioctl_fuzz module_lifecycle fault_injection fcm_races alloc_failure fcm_memory hotswapfs hotswapfs_tools hotswapfs_storm hotswapfs_mmap" \
	HOTSWAP_FS_FULL=1 HOTSWAP_MMAP_SECONDS=${STRESS_MMAP_SECONDS:-300} \
	HOTSWAP_STORM_SWAPS=${STRESS_SWAPS:-10000} HOTSWAP_FUZZ_REQUESTS=${STRESS_FUZZ:-100000} \
	HOTSWAP_RACE_ROUNDS=${STRESS_RACE_ROUNDS:-30} HOTSWAP_MEMORY_HOG_MIBS=${STRESS_HOG_MIBS:-300} \
	HOTSWAP_LIFECYCLE_LOOPS=${STRESS_LOOPS:-200} HOTSWAP_VM_TEST_TIMEOUT=${STRESS_TEST_TIMEOUT:-3000} \
	HOTSWAP_VM_TIMEOUT=${HOTSWAP_VM_TIMEOUT:-4800} scripts/test.sh || status=$?
step "stress: figures"
for log in build/vm-results/integration/*.log; do
	echo "  $(basename "$log" .log):"
	tail -n 3 "$log" | sed 's/^/    /'
done
exit $status
