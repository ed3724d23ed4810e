#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judges one test-VM run recorded by tests/kunit/guest-run.sh.

Fails (exit 1) on: a VM that timed out or did not finish, a module that
did not load or unload, an expected KUnit suite that is missing, a suite
that kunit.py parse reports as failed, a failed or missing in-VM test, a
kernel oops/WARN/BUG (and similar: lockdep, RCU, KCSAN, UBSAN, SLUB and
debugobjects reports) in dmesg, or an unreferenced object in the kmemleak
report (OUT/kmemleak, saved only by a kernel with kmemleak). Prints a
per-suite summary and, last, exactly one line "N passed, N failed".
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

# Kernel log lines that mean something went wrong, whatever the tests say.
# The debug kernel (configs/debug.config) adds lockdep ("WARNING: possible
# circular locking dependency detected", "inconsistent lock state"), RCU
# ("suspicious RCU usage"), "BUG: sleeping function called from invalid
# context", KCSAN ("BUG: KCSAN: data-race in ..."), UBSAN, SLUB debugging
# ("BUG kmalloc-64 (Not tainted): Poison overwritten": no colon after BUG)
# and debugobjects ("ODEBUG: free active ..."); WARNING:/BUG: catch most,
# the rest are named so that a reworded header is still caught. Lockdep
# switched off (e.g. out of entries) would silently check nothing more.
DMESG_PROBLEMS = re.compile(
    r"WARNING:|BUG:|kernel BUG at|Oops|Kernel panic|general protection fault"
    r"|panicked at|Call Trace:|UBSAN:|refcount_t:|list_(add|del) corruption"
    r"|INFO: task .* blocked for more than|INFO: rcu_\w+ (detected|self-detected) stall"
    r"|possible recursive locking|possible circular locking|suspicious RCU usage|suspicious rcu_"
    r"|inconsistent lock state|inconsistent \{|lock held when returning to user space"
    r"|bad unlock balance|held lock freed|DEBUG_LOCKS_WARN_ON"
    r"|turning off the locking correctness validator|lockdep is turned off"
    r"|sleeping function called from invalid context|scheduling while atomic"
    r"|unreferenced object|KCSAN:|ODEBUG:|BUG [\w.:-]+ \((Not tainted|Tainted: [^)]*)\)"
)

# One leak in /sys/kernel/debug/kmemleak starts with this line (mm/kmemleak.c,
# __print_unreferenced); its backtrace follows, one "    fn+0x1/0x2 [mod]"
# frame a line, allocator first.
KMEMLEAK_OBJECT = re.compile(r"^unreferenced object( \(\w+\))? 0x[0-9a-f]+ \(size \d+\)")
ALLOCATOR_FRAME = re.compile(
    r"(kmemleak_|__kmalloc|kmalloc|kmem_cache_|__kvmalloc|kvmalloc|__vmalloc|vmalloc"
    r"|krealloc|kvrealloc|kzalloc|pcpu_|__alloc|alloc_|slab_|__slab|___slab|rust_helper_)"
)


def parse_suite(kunit_py, ktap_path):
    """Runs kunit.py parse on one suite; returns (passed, failed, detail)."""
    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, "result.json")
        proc = subprocess.run(
            [sys.executable, kunit_py, "parse", f"--json={json_path}", ktap_path],
            capture_output=True,
            text=True,
        )
        try:
            with open(json_path) as f:
                result = json.load(f)
        except (OSError, ValueError):
            return 0, 1, "kunit.py parse produced no result"
    counts = {"passed": 0, "failed": 0, "crashed": 0, "errors": 0}
    failed_cases = []

    def walk(group):
        for case in group.get("test_cases", []):
            if case["status"] == "PASS":
                counts["passed"] += 1
            elif case["status"] != "SKIP":
                counts["failed"] += 1
                failed_cases.append(case["name"])
        for sub in group.get("sub_groups", []):
            walk(sub)

    walk(result)
    misc = result.get("misc", {})
    problems = misc.get("crashed", 0) + misc.get("errors", 0)
    if proc.returncode != 0 and counts["failed"] == 0:
        # kunit.py saw something wrong (crash, missing plan) without a
        # failed case to show for it: count the suite as one failure.
        counts["failed"] = 1
        failed_cases.append("(suite did not complete)")
    elif problems and counts["failed"] == 0:
        counts["failed"] = problems
        failed_cases.append("(crashed)")
    detail = ", ".join(failed_cases)
    return counts["passed"], counts["failed"], detail


def data_lines(path):
    """Non-empty lines of a result file; '#' lines are comments (the
    recorded samples carry an SPDX line)."""
    with open(path, errors="backslashreplace") as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def dmesg_problems(path):
    try:
        with open(path, errors="backslashreplace") as f:
            return [line.rstrip() for line in f if DMESG_PROBLEMS.search(line)]
    except OSError:
        return None


def kmemleak_leaks(path):
    """The kmemleak report's leaks as (header, allocating function) pairs,
    or None when no report was saved (a kernel without kmemleak)."""
    try:
        with open(path, errors="backslashreplace") as f:
            lines = [l.rstrip() for l in f]
    except OSError:
        return None
    leaks = []
    for i, line in enumerate(lines):
        if not KMEMLEAK_OBJECT.match(line):
            continue
        caller = ""
        in_trace = False
        for follow in lines[i + 1 :]:
            if KMEMLEAK_OBJECT.match(follow):
                break
            if follow.strip().startswith("backtrace"):
                in_trace = True
            elif in_trace and follow.strip() and not ALLOCATOR_FRAME.match(follow.strip()):
                caller = follow.strip()
                break
        leaks.append((line.rstrip(":"), caller))
    return leaks


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", help="results directory written by guest-run.sh")
    ap.add_argument("--kunit-py", required=True, help="tools/testing/kunit/kunit.py")
    ap.add_argument("--suite", action="append", default=[], help="expected KUnit suite")
    ap.add_argument("--vm-test", action="append", default=[], help="expected tests/vm test")
    ap.add_argument("--vm-status", type=int, default=0, help="exit status of the VM run")
    ap.add_argument("--host-passed", type=int, default=0)
    ap.add_argument("--host-failed", type=int, default=0)
    args = ap.parse_args()

    passed, failed = args.host_passed, args.host_failed
    out = args.out

    def problem(msg):
        nonlocal failed
        failed += 1
        print(f"  FAIL  {msg}")

    print("KUnit suites:")
    ktap_dir = os.path.join(out, "ktap")
    ran = set()
    if os.path.isdir(ktap_dir):
        ran = {f[: -len(".ktap")] for f in os.listdir(ktap_dir) if f.endswith(".ktap")}
    for suite in sorted(set(args.suite) | ran):
        if suite not in ran:
            problem(f"{suite}: missing (the suite did not run)")
            continue
        p, f, detail = parse_suite(args.kunit_py, os.path.join(ktap_dir, suite + ".ktap"))
        passed += p
        failed += f
        mark = "ok  " if f == 0 else "FAIL"
        extra = f" ({detail})" if detail else ""
        print(f"  {mark}  {suite}: {p} passed, {f} failed{extra}")

    print("In-VM tests:")
    for name in sorted(args.vm_test):
        rc_path = os.path.join(out, "integration", name + ".rc")
        try:
            rc = int(data_lines(rc_path)[-1])
        except (OSError, ValueError, IndexError):
            problem(f"{name}: did not run")
            continue
        if rc == 0:
            passed += 1
            print(f"  ok    {name}")
        else:
            problem(f"{name}: exit status {rc} (log: {rc_path[:-3]}.log)")

    print("VM:")
    if args.vm_status == 124:
        problem("the VM timed out and was killed")
    elif args.vm_status != 0:
        problem(f"the VM exited with status {args.vm_status}")
    if not os.path.exists(os.path.join(out, "complete")):
        problem("the guest runner did not finish")
    try:
        for line in data_lines(os.path.join(out, "errors")):
            problem(f"module load/unload: {line}")
    except OSError:
        pass
    found = dmesg_problems(os.path.join(out, "dmesg"))
    if found is None:
        problem("no kernel log was saved")
    elif found:
        problem(f"kernel log reports {len(found)} problem line(s), first: {found[0]}")
    else:
        print("  ok    kernel log clean")
    leaks = kmemleak_leaks(os.path.join(out, "kmemleak"))
    if leaks:
        header, frame = leaks[0]
        where = f", allocated in {frame}" if frame else ""
        problem(f"kmemleak reports {len(leaks)} unreferenced object(s), first: {header}{where}")
    elif leaks is not None:
        print("  ok    kmemleak: no unreferenced object")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
