#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM (scripts/vm.sh test OUT [GLOB]). Loads every module in
# order, which runs their KUnit suites, saves each suite's KTAP from debugfs,
# unloads the modules, runs each tests/vm/GLOB.sh (default *), and saves dmesg. The host
# judges the results (scripts/check-results.py); this script only records.
#
# OUT/ktap/SUITE.ktap      KTAP of each suite that ran
# OUT/errors               module load/unload failures, one per line
# OUT/integration/NAME.rc  exit status of tests/vm/NAME.sh (.log: output)
# OUT/dmesg                the kernel log at the end
# OUT/complete             written last: the run was not cut short
set -u
out=$1
vm_glob=${2:-*}
# The in-VM tests to run: tests/vm/GLOB.sh for each space-separated GLOB.
vm_tests=()
read -r -a globs <<<"$vm_glob"
for g in "${globs[@]}"; do
	for t in tests/vm/$g.sh; do
		[ -x "$t" ] && vm_tests+=("$t")
	done
done
cd "$(dirname "$0")/../.."
export HOTSWAP_ROOT=$PWD
. tests/vm/lib.sh

rm -rf "$out"/ktap "$out"/integration "$out"/errors "$out"/dmesg "$out"/complete
mkdir -p "$out/ktap" "$out/integration"
: >"$out/errors"
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug

for m in "${HOTSWAP_MODULES[@]}"; do
	insmod "$m" 2>>"$out/errors" || echo "insmod $m failed" >>"$out/errors"
done
for suite in /sys/kernel/debug/kunit/*/; do
	[ -f "$suite/results" ] && cp "$suite/results" "$out/ktap/$(basename "$suite").ktap"
done

# The VM does not inherit the host's environment: knobs may come on the
# kernel command line instead (HOTSWAP_VM_APPEND=HOTSWAP_VM_TEST_TIMEOUT=600).
test_timeout=${HOTSWAP_VM_TEST_TIMEOUT:-$(tr ' ' '\n' </proc/cmdline | sed -n 's/^HOTSWAP_VM_TEST_TIMEOUT=//p' | tail -1)}

run_test() {
	local t=$1 name
	name=$(basename "$t" .sh)
	echo "hotswap-test: $name" >/dev/kmsg
	timeout -k 5 "${test_timeout:-120}" "$t" >"$out/integration/$name.log" 2>&1
	echo $? >"$out/integration/$name.rc"
}

# Tests marked "# vm-phase: loaded" run now, with every module loaded
# (reloading hotswap_core_test would run its long KUnit suite again).
for t in "${vm_tests[@]}"; do
	grep -q '^# vm-phase: loaded$' "$t" && run_test "$t"
done
unload_all 2>>"$out/errors"

for t in "${vm_tests[@]}"; do
	grep -q '^# vm-phase: loaded$' "$t" && continue
	run_test "$t"
	unload_all 2>>"$out/errors"
done

dmesg >"$out/dmesg"
echo ok >"$out/complete"
