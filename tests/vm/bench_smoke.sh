#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make bench's pipeline, small: the benchmark module refuses bad commands,
# the quick call-overhead, batched-swap, swap-keeps-cache and Figure 1 with
# ripgrep through hotswapfs benchmarks run (bench.py asserts every swap
# completed and every rg counted the same), a swap re-reads no page from
# the file, shared's lock waits are counted, and bench/report.py accepts
# the JSON they wrote.
set -eu
. "$(dirname "$0")/lib.sh"

load hotswap hotswap_fcm fcm_shared fcm_distributed fcm_monitor
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
insmod "$HOTSWAP_MODULE_DIR/bench/kernel/hotswap_bench.ko" || fail "insmod hotswap_bench"
trap 'rmmod hotswap_bench 2>/dev/null || true' EXIT
run=/sys/kernel/debug/hotswap_bench/run
for bad in "bogus" "call 0 1" "call 10" "call 10 0" "rcu 100000" "rcu x"; do
	expect_fail "hotswap_bench command '$bad'" sh -c "echo '$bad' > $run"
done
echo "rcu 2" >"$run" || fail "rcu 2"
grep -qE '^synchronize_rcu_ns [0-9]+ [0-9]+$' "$run" || fail "rcu output: $(cat $run)"

out=$(mktemp -d)
/usr/bin/python3 "$HOTSWAP_ROOT/bench/guest/bench.py" "$out" tcg --quick \
	--only call_overhead,batched_swap,figure1_tools,swap_keeps_cache || fail "bench.py"
/usr/bin/python3 - "$out" <<'PY' || fail "benchmark results"
import json, sys
cache = json.load(open(f"{sys.argv[1]}/swap_keeps_cache.json"))
assert cache["refills"] == 0 and cache["accounting_ok"], cache
calls = json.load(open(f"{sys.argv[1]}/call_overhead.json"))["calls"]
for name, c in calls.items():
    assert c["direct_ns"]["median"] > 0 and c["slot_ns"]["median"] > 0, (name, c)
tools = json.load(open(f"{sys.argv[1]}/figure1_tools.json"))
assert set(tools["series"]) == {"linux", "shared", "distributed", "autonomic"}, tools["series"]
for variant, points in tools["series"].items():
    assert all(p["mb_per_s"] > 0 for p in points), (variant, points)
    if variant in ("shared", "distributed"):
        assert all(i == variant for p in points for i in p["implementations"]), (variant, points)
# The FCMs count their own lock waits: shared's one lock, hit by p > 1
# searchers at once, is found held (dozens of times a run here).
cont = tools["contention"]
assert set(cont) == {"shared", "distributed"}, cont
top = cont["shared"][-1]
if top["processes"] > 1:
    assert top["lock_waits_per_1000_hits"]["max"] > 0, ("no lock wait counted", cont)
PY
/usr/bin/python3 "$HOTSWAP_ROOT/bench/report.py" "$out" --no-plots || fail "report.py"
rmmod hotswap_bench || fail "rmmod hotswap_bench"
trap - EXIT
echo "bench pipeline: ok"
