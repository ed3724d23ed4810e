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
# OUT/kmemleak             kmemleak's report after a final scan (only on a
#                          kernel with CONFIG_DEBUG_KMEMLEAK, the debug one)
# OUT/dmesg                the kernel log at the end
# OUT/complete             written last: the run was not cut short
#
# HOTSWAP_MODULE_DIR (default: the repository) is the root the .ko paths in
# tests/modules are relative to: a kernel variant's modules are built in
# their own tree (scripts/build-modules.sh).
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
export HOTSWAP_MODULE_DIR=${HOTSWAP_MODULE_DIR:-$HOTSWAP_ROOT}
. tests/vm/lib.sh
kmemleak=/sys/kernel/debug/kmemleak

rm -rf "$out"/ktap "$out"/integration "$out"/errors "$out"/dmesg "$out"/kmemleak "$out"/complete
mkdir -p "$out/ktap" "$out/integration"
: >"$out/errors"
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug

# kmemleak: whatever boot left unreferenced is not ours; scan now and mark
# it reported ("clear"), so the final scan reports only what the modules
# and tests leaked.
if [ -w "$kmemleak" ]; then
	echo scan >"$kmemleak"
	echo clear >"$kmemleak"
fi

for m in "${HOTSWAP_MODULES[@]}"; do
	insmod "$HOTSWAP_MODULE_DIR/$m" 2>>"$out/errors" || echo "insmod $m failed" >>"$out/errors"
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
	# Scratch space on the host's disk (the results directory), for tests
	# whose files must not live in the guest's memory.
	export HOTSWAP_SCRATCH=$out/scratch/$name
	mkdir -p "$HOTSWAP_SCRATCH"
	# A test may ask for more than 120 s with "# vm-timeout: SECONDS"; a
	# run-wide HOTSWAP_VM_TEST_TIMEOUT (stress, debug kernel) raises both.
	local limit
	limit=$(sed -n 's/^# vm-timeout: \([0-9][0-9]*\)$/\1/p' "$t" | head -1)
	limit=${limit:-120}
	[ -n "$test_timeout" ] && [ "$test_timeout" -gt "$limit" ] && limit=$test_timeout
	timeout -k 5 "$limit" "$t" >"$out/integration/$name.log" 2>&1
	echo $? >"$out/integration/$name.rc"
	rm -rf "$out/scratch"
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

# Every module is unloaded now, so anything of theirs still allocated and
# unreferenced is a leak. kmemleak reports an object only once it is 5 s
# old and only after it was found unreferenced, so scan, wait, scan again.
if [ -w "$kmemleak" ]; then
	echo scan >"$kmemleak"
	sleep 6
	echo scan >"$kmemleak"
	cat "$kmemleak" >"$out/kmemleak"
fi

dmesg >"$out/dmesg"
echo ok >"$out/complete"
