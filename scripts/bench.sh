#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make bench: boots a VM with the modules, the benchmark module and the
# Figure-1 worker, runs bench/guest/bench.py, then bench/report.py on the
# host (table to stdout, PNG plots beside the JSON).
#
# Environment: BENCH_CPUS (vCPUs; default: this machine's cores),
# BENCH_OUT (default bench/results), BENCH_ONLY (comma-separated subset),
# BENCH_QUICK=1 (small sizes, as make test's smoke run uses).
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$HOTSWAP_ROOT"

out=$(realpath -m "${BENCH_OUT:-bench/results}")
mkdir -p "$out"
python=$HOTSWAP_CACHE/venv/bin/python
if ! "$python" -c "import matplotlib" 2>/dev/null; then
	step "plots: pip install matplotlib into $HOTSWAP_CACHE/venv"
	"$HOTSWAP_CACHE/venv/bin/pip" install -q "matplotlib>=3.8"
fi
cargo build -q --release --manifest-path bench/searcher/Cargo.toml

accel=$(scripts/vm.sh accel)
cpus=${BENCH_CPUS:-$(nproc)}
opts=()
[ "${BENCH_QUICK:-0}" = 1 ] && opts+=(--quick)
[ -n "${BENCH_ONLY:-}" ] && opts+=(--only "$BENCH_ONLY")
[ "$accel" = tcg ] && step "bench: VMs run under TCG (software emulation) here: absolute times are slow and distorted; read the ratios"
step "bench: $cpus vCPUs, results in $out"
# A subset replaces only its own results (the others stay as they were).
if [ -n "${BENCH_ONLY:-}" ]; then
	for name in ${BENCH_ONLY//,/ }; do
		rm -f "$out/$name.json" "$out/$name.png"
	done
else
	rm -f "$out"/*.json "$out"/*.png
fi
# loglevel=5: phase-change log lines go to dmesg, not through the emulated
# serial console, which the swap timings would otherwise include.
HOTSWAP_VM_APPEND=${HOTSWAP_VM_APPEND:-loglevel=5} HOTSWAP_VM_CPUS=$cpus HOTSWAP_VM_MEMORY=${HOTSWAP_VM_MEMORY:-2G} \
	HOTSWAP_VM_TIMEOUT=${HOTSWAP_VM_TIMEOUT:-1800} HOTSWAP_VM_RWDIR=$out \
	scripts/vm.sh exec bench/guest/guest-bench.sh "$out" "$accel" "${opts[@]}"
step "bench: results"
"$python" bench/report.py "$out"
