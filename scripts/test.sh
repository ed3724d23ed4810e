#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The body of 'make test': host checks, then one test VM, then the verdict.
# Prints "N passed, N failed" last and exits non-zero on any failure.
#
#   SUITE=GLOB   run only KUnit suites matching GLOB (kunit.filter_glob)
#                and no in-VM test unless VMTEST is also set
#   VMTEST=GLOB  run only tests/vm/GLOB.sh (several globs: space-separated)
#   HOST=0       skip the host checks
#   HOTSWAP_VM_APPEND  extra kernel command line (the fuzzer also reads its
#                knobs from there; scripts/vm.sh passes numeric ones itself)
#   HOTSWAP_KERNEL_VARIANT=debug  run on the debug kernel and its own module
#                build (scripts/env.sh); results go to build/vm-results-debug
#                (scripts/test-debug.sh sets this and its defaults)
set -uo pipefail
. "$(dirname "$0")/env.sh"
cd "$HOTSWAP_ROOT"
load_kernel_env

host_passed=0
host_failed=0
check() {
	local what=$1
	shift
	step "$what"
	if "$@"; then
		host_passed=$((host_passed + 1))
	else
		host_failed=$((host_failed + 1))
		echo "FAIL: $what"
	fi
}

tool=(--manifest-path tools/hswapctl/Cargo.toml)
if [ "${HOST:-1}" = 1 ]; then
	check "hswapctl: cargo test" cargo test -q "${tool[@]}"
	check "hswapctl: cargo fmt --check" cargo fmt "${tool[@]}" --check
	check "hswapctl: cargo clippy -D warnings" \
		cargo clippy -q "${tool[@]}" --all-targets -- -D warnings
	search=(--manifest-path bench/searcher/Cargo.toml)
	check "bench searcher: cargo test + clippy -D warnings" \
		bash -c 'cargo test -q "$@" && cargo clippy -q "$@" --all-targets -- -D warnings' _ "${search[@]}"
	check "bench report: the committed results parse" \
		python3 bench/report.py bench/results --no-plots
	mapfile -t kernel_rs < <(git ls-files -co --exclude-standard 'rust/*.rs' 'fcm/*.rs' 'tests/*.rs' 'bench/*.rs')
	check "kernel Rust: rustfmt --check" rustfmt --check --edition 2021 "${kernel_rs[@]}"
	check "test runner: self-tests" python3 -m unittest discover -q -s tests/runner
fi

# Expected suites come from the sources, so a suite that silently fails to
# register (or a module that fails to load) is caught as missing.
mapfile -t suites < <(grep -rhoE '#\[kunit_tests\([a-z0-9_]+\)\]' rust fcm tests |
	sed -E 's/.*\(([a-z0-9_]+)\).*/\1/' | sort -u)
vm_glob=${VMTEST:-*}
[ -n "${SUITE:-}" ] && [ -z "${VMTEST:-}" ] && vm_glob=
vm_tests=()
if [ -n "$vm_glob" ]; then
	read -r -a globs <<<"$vm_glob"
	for g in "${globs[@]}"; do
		for t in tests/vm/$g.sh; do
			[ -x "$t" ] && vm_tests+=("$(basename "$t" .sh)")
		done
	done
fi
expect=()
for s in "${suites[@]}"; do
	# shellcheck disable=SC2053
	[[ -z "${SUITE:-}" || $s == ${SUITE} ]] && expect+=(--suite "$s")
done
for t in "${vm_tests[@]}"; do expect+=(--vm-test "$t"); done

out="$HOTSWAP_ROOT/build/vm-results${HOTSWAP_KERNEL_VARIANT:+-$HOTSWAP_KERNEL_VARIANT}"
rm -rf "$out"
mkdir -p "$out"
step "test VM: ${HOTSWAP_VM_CPUS:-2} vCPUs, kernel $VERSION${HOTSWAP_KERNEL_VARIANT:+ ($HOTSWAP_KERNEL_VARIANT)} (timeout ${HOTSWAP_VM_TIMEOUT:-900} s)"
start=$(date +%s)
HOTSWAP_VM_APPEND="${HOTSWAP_VM_APPEND:-}${SUITE:+ kunit.filter_glob=$SUITE}" \
	scripts/vm.sh test "$out" "${vm_glob:-none}"
status=$?
step "test VM: finished in $(($(date +%s) - start)) s (status $status)"

exec python3 scripts/check-results.py "$out" \
	--kunit-py "$SRC/tools/testing/kunit/kunit.py" \
	--vm-status "$status" --host-passed "$host_passed" --host-failed "$host_failed" \
	"${expect[@]}"
