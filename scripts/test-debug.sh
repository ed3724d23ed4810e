#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The body of 'make test-debug' (after the debug kernel, its modules and the
# tool are built): scripts/test.sh on the debug kernel (configs/debug.config:
# lockdep, PROVE_RCU, KCSAN, UBSAN, kmemleak, SLUB and object debugging),
# with defaults fit for a kernel that runs several times slower under TCG:
#
#   VMTEST=GLOB   in-VM tests (default: the swap storms, fcm_swap_live and
#                 swap_storm, the FCM semantics, races and
#                 allocation-failure and FCM memory tests, and hotswapfs's
#                 review cases); VMTEST='*' runs them all
#   SUITE=GLOB    KUnit suites only (no in-VM test unless VMTEST is set)
#   HOTSWAP_VM_TIMEOUT       whole VM, seconds (default 5400: with fcm_memory
#                            in the list, 1800 ran out on this machine, and
#                            3600 is about what the rest takes)
#   HOTSWAP_VM_TEST_TIMEOUT  each in-VM test, seconds (default 2400:
#                            fcm_memory ran past 1200 on the debug kernel)
#
# Host checks are skipped (HOST=0): they do not depend on the kernel and
# 'make test' runs them. Any lockdep/RCU/KCSAN/UBSAN/WARN/BUG line in dmesg
# or any kmemleak leak fails the run (scripts/check-results.py).
set -euo pipefail
export HOTSWAP_KERNEL_VARIANT=debug
export HOST=${HOST:-0}
if [ -z "${SUITE:-}" ]; then
	export VMTEST=${VMTEST:-*swap_* fcm_semantics fcm_races alloc_failure fcm_memory hotswapfs_attacks}
fi
export HOTSWAP_VM_TIMEOUT=${HOTSWAP_VM_TIMEOUT:-5400}
export HOTSWAP_VM_TEST_TIMEOUT=${HOTSWAP_VM_TEST_TIMEOUT:-2400}
exec "$(dirname "$0")/test.sh"
