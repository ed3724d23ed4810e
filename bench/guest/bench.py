#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""make bench, inside the VM: runs each benchmark and writes OUT/<name>.json.

    bench.py OUT ACCEL [--quick] [--only NAME,...]

Every figure is taken side by side with its reference in the same run
(slot vs direct call, swap blocked window vs synchronize_rcu(), N objects vs
one, FCMs vs the Linux page cache), because under TCG absolute times mean
little and ratios are the result. --quick shrinks sizes and repetitions so
that `make test` can check the whole pipeline in seconds.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
sys.path.insert(0, os.path.join(ROOT, "tests/pylib"))
import hotswap_uapi as uapi  # noqa: E402

TOOL = os.path.join(ROOT, "tools/hswapctl/target/release/hswapctl")
SEARCH = os.path.join(ROOT, "bench/searcher/target/release/hotswap-search")
RUN = "/sys/kernel/debug/hotswap_bench/run"
FCMS = "/sys/kernel/debug/hotswap_fcm/fcms"
PAGE = 4096
WORK = "/tmp/hotswap-bench"


def say(text):
    print(text, flush=True)


def summary(values):
    """Median and spread of a list of numbers."""
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1],
            "n": len(values)}


def fcm_counters(object_id):
    """The counters FCM `object_id` keeps itself (hotswap_fcm's debugfs
    `fcms`: hits, misses, lock_waits, ...), carried across swaps."""
    with open(FCMS) as f:
        for line in f:
            fields = dict(kv.split("=", 1) for kv in line.split())
            if fields.get("object") == str(object_id):
                return {k: int(v) for k, v in fields.items()}
    raise AssertionError(f"no FCM {object_id} in {FCMS}")


def kernel_run(command):
    """Runs one hotswap_bench command; returns {name: [values]}."""
    with open(RUN, "w") as f:
        f.write(command)
    rows = {}
    with open(RUN) as f:
        for line in f:
            name, *values = line.split()
            rows[name] = [int(v) for v in values]
    return rows


def tool(*args):
    out = subprocess.run([TOOL, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"hswapctl {' '.join(args)}: {out.stdout}{out.stderr}")
    return out.stdout


def make_file(path, size):
    """A file of `size` bytes whose lines start with a needle now and then."""
    line = b"hotswap search line: the quick brown fox jumps over the lazy dog\n"
    other = b"plain line without the word, padding the page to its length..\n"
    block = (line + other * 7) * (PAGE * 16 // (len(line) * 8)) + b"\n"
    block = block[:PAGE * 16]
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = block[:size - written]
            f.write(chunk)
            written += len(chunk)


def read_through(dev, size, chunk=1 << 20):
    pos = 0
    while pos < size:
        data = os.pread(dev, chunk, pos)
        if not data:
            break
        pos += len(data)
    return pos


class Bench:
    def __init__(self, args):
        self.out = args.out
        self.quick = args.quick
        self.meta = {
            "kernel": platform.release(),
            "vcpus": os.cpu_count(),
            "accel": args.accel,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "quick": self.quick,
        }
        self.size = (8 if self.quick else 52) << 20
        self.ctl = os.open(uapi.CONTROL, os.O_RDWR)
        os.makedirs(WORK, exist_ok=True)
        self.path = os.path.join(WORK, "search.dat")
        make_file(self.path, self.size)

    def save(self, name, result):
        result = {"benchmark": name, "meta": self.meta, **result}
        with open(os.path.join(self.out, f"{name}.json"), "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")

    def swap_all(self, implementation):
        uapi.swap(self.ctl, "fcm", implementation)

    # 1. Call overhead ------------------------------------------------------
    def call_overhead(self):
        iters, reps = (20000, 5) if self.quick else (1000000, 15)
        rows = kernel_run(f"call {iters} {reps}")
        result = {"iterations": rows["iterations"][0], "page_iterations": rows["iterations"][1],
                  "repetitions": reps, "calls": {}}
        for call in ("null", "fcm_shared_hit", "fcm_distributed_hit"):
            direct, slot = rows[f"{call}_direct_ps"], rows[f"{call}_slot_ps"]
            ratios = [s / d for s, d in zip(slot, direct) if d > 0]
            result["calls"][call] = {
                "direct_ns": summary([v / 1000 for v in direct]),
                "slot_ns": summary([v / 1000 for v in slot]),
                "ratio": summary(ratios),
            }
        best_hit = min(result["calls"][c]["ratio"]["median"]
                       for c in ("fcm_shared_hit", "fcm_distributed_hit"))
        worst_hit = max(result["calls"][c]["ratio"]["median"]
                        for c in ("fcm_shared_hit", "fcm_distributed_hit"))
        result["goal"] = {"text": "page hit through a slot <= 1.03x a direct call",
                          "value": worst_hit, "met": worst_hit <= 1.03, "best": best_hit}
        self.save("call_overhead", result)
        for c, r in result["calls"].items():
            say(f"  {c}: direct {r['direct_ns']['median']:.1f} ns, slot "
                f"{r['slot_ns']['median']:.1f} ns, ratio {r['ratio']['median']:.3f}")

    # 2. Swap blocked window ------------------------------------------------
    def readers(self, path, size):
        """One reader process per vCPU, pinned, reading random cached pages
        until stopped; each reports its longest single read (ns)."""
        procs = []
        for cpu in range(os.cpu_count()):
            code = READER.format(pylib=os.path.join(ROOT, "tests/pylib"), path=path, size=size,
                                 cpu=cpu)
            procs.append(subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True))
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        return procs

    @staticmethod
    def stop(procs):
        longest, reads = [], 0
        for p in procs:
            out, _ = p.communicate("stop\n", timeout=120)
            ns, count = map(int, out.split())
            longest.append(ns)
            reads += count
        return max(longest), reads

    def swap_blocked(self):
        swaps = 4 if self.quick else 20
        keeper = uapi.open_cached(self.path, os.O_RDWR)
        object_id = uapi.file_info(keeper)["object"]
        read_through(keeper, self.size)
        pages = uapi.file_info(keeper)["cached"]
        procs = self.readers(self.path, self.size)
        time.sleep(0.5)
        records = []
        target = "distributed"
        for _ in range(swaps):
            summary_, per = uapi.swap(self.ctl, "fcm", target, object_id, capacity=1)
            r = per[0]
            assert r["outcome"] == uapi.OUTCOME_COMPLETED, f"swap did not complete: {r}"
            records.append({"to": target, "blocked_ns": r["blocked_ns"],
                            "duration_ns": r["duration_ns"], "request_ns": summary_["total_ns"],
                            "format": r["format"]})
            target = "shared" if target == "distributed" else "distributed"
            time.sleep(0.05)
        rcu = kernel_run(f"rcu {swaps}")["synchronize_rcu_ns"]
        longest_read, reads = self.stop(procs)
        info = uapi.file_info(keeper)
        os.close(keeper)
        blocked = [r["blocked_ns"] for r in records]
        result = {
            "pages": pages, "readers": len(procs), "swaps": records, "reads": reads,
            "blocked_ns": summary(blocked), "duration_ns": summary([r["duration_ns"] for r in records]),
            "synchronize_rcu_ns": summary(rcu),
            "longest_read_ns": longest_read,
            "fills_after": info["fills"],
            "goal": {"text": "longest blocked window < one synchronize_rcu() (median)",
                     "value": max(blocked), "reference": statistics.median(rcu),
                     "met": max(blocked) < statistics.median(rcu)},
        }
        self.save("swap_blocked", result)
        say(f"  {pages} pages, {len(procs)} readers: blocked max {max(blocked) / 1e3:.0f} us, "
            f"swap median {result['duration_ns']['median'] / 1e3:.0f} us, synchronize_rcu "
            f"median {statistics.median(rcu) / 1e3:.0f} us")

    # 3. Batched swap -------------------------------------------------------
    def batched_swap(self):
        counts = [1, 10, 100] if self.quick else [1, 10, 100, 1000]
        reps = 3 if self.quick else 7
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
        folder = os.path.join(WORK, "batch")
        os.makedirs(folder, exist_ok=True)
        rows = []
        for n in counts:
            fds = []
            for i in range(n):
                path = os.path.join(folder, f"f{i}")
                if not os.path.exists(path):
                    with open(path, "wb") as f:
                        f.write(bytes([i % 251]) * PAGE * 4)
                fd = uapi.open_cached(path)
                os.pread(fd, PAGE * 4, 0)
                fds.append(fd)
            times, target = [], "distributed"
            for _ in range(reps):
                s, _ = uapi.swap(self.ctl, "fcm", target)
                assert s["count"] == n and s["completed"] == n, f"batch of {n}: {s}"
                times.append(s["total_ns"])
                target = "shared" if target == "distributed" else "distributed"
            self.swap_all("shared")
            for fd in fds:
                os.close(fd)
            rows.append({"objects": n, "total_ns": summary(times)})
        base = rows[0]["total_ns"]["median"]
        for r in rows:
            r["ratio"] = r["total_ns"]["median"] / base
        last = rows[-1]
        result = {"repetitions": reps, "batches": rows,
                  "goal": {"text": f"swapping {last['objects']} objects <= 3x the time of one",
                           "value": last["ratio"], "met": last["ratio"] <= 3.0}}
        self.save("batched_swap", result)
        for r in rows:
            say(f"  N={r['objects']}: {r['total_ns']['median'] / 1e6:.2f} ms ({r['ratio']:.2f}x)")

    # 4. Figure 1 -----------------------------------------------------------
    def search_once(self, p, fcm):
        """p pinned searchers; returns the time until the last one finished."""
        procs = []
        for cpu in range(p):
            fd = uapi.open_cached(self.path) if fcm else os.open(self.path, os.O_RDONLY)
            procs.append(subprocess.Popen(
                [SEARCH, str(fd), str(self.size), str(PAGE)], pass_fds=[fd],
                stdout=subprocess.PIPE, text=True,
                preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu})))
            os.close(fd)
        start = time.monotonic_ns()
        matches = set()
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"searcher failed: {out}"
            fields = dict(kv.split("=") for kv in out.split())
            assert int(fields["bytes"]) == self.size, f"short search: {out}"
            matches.add(fields["matches"])
        assert len(matches) == 1, f"searchers disagree: {matches}"
        return time.monotonic_ns() - start

    def figure1(self):
        reps = 2 if self.quick else 5
        pages = self.size // PAGE
        keeper = uapi.open_cached(self.path, os.O_RDWR)
        object_id = uapi.file_info(keeper)["object"]
        read_through(keeper, self.size)
        with open(self.path, "rb") as f:
            while f.read(1 << 20):
                pass
        runs, impls = self.figure1_runs(
            object_id, reps, lambda p, variant: self.search_once(p, variant != "linux"))
        info = uapi.file_info(keeper)
        os.close(keeper)
        series, goals, goal = self.figure1_series(runs, impls)
        result = {"file_bytes": self.size, "pages": pages, "read_bytes": PAGE, "repetitions": reps,
                  "series": series, "per_p": goals, "fills": info["fills"], "goal": goal}
        self.save("figure1", result)

    def figure1_runs(self, object_id, reps, once):
        """Makespans `once(p, variant)` for every variant and p (the static
        ones interleaved within each repetition, so drift in the machine's
        speed hits them alike; the autonomic one after them, as the policy
        needs to watch the load for a while), and the implementation
        object `object_id` was on after each run."""
        vcpus = os.cpu_count()
        runs = {v: {p: [] for p in range(1, vcpus + 1)} for v in VARIANTS}
        impls = {v: {p: [] for p in range(1, vcpus + 1)} for v in VARIANTS}
        uapi.set_policy(self.ctl, "fcm", "off")
        try:
            for p in range(1, vcpus + 1):
                for _ in range(reps):
                    for variant in ("linux", "shared", "distributed"):
                        if variant != "linux":
                            self.swap_all(variant)
                        runs[variant][p].append(once(p, variant))
                        if variant != "linux":
                            impls[variant][p].append(
                                uapi.object_status(self.ctl, object_id)["implementation"])
            self.swap_all("shared")
            uapi.set_policy(self.ctl, "fcm", "cpu_count", (2, 1, 3, 0))
            for p in range(1, vcpus + 1):
                for _ in range(reps):
                    runs["autonomic"][p].append(once(p, "autonomic"))
                    impls["autonomic"][p].append(
                        uapi.object_status(self.ctl, object_id)["implementation"])
        finally:
            uapi.set_policy(self.ctl, "fcm", "off")
        return runs, impls

    def figure1_series(self, runs, impls):
        """Figure 1's points per variant and p from makespans, and its goal."""
        vcpus, pages = os.cpu_count(), self.size // PAGE
        series = {}
        for variant in VARIANTS:
            points = []
            for p in range(1, vcpus + 1):
                times = runs[variant][p]
                t = statistics.median(times)
                points.append({"processes": p, "makespan_ns": summary(times),
                               "ns_per_page": t / pages,
                               "mb_per_s": p * self.size / (1 << 20) / (t / 1e9),
                               "implementations": impls[variant][p]})
                say(f"  {variant:11} p={p}: {t / pages:8.0f} ns/page, "
                    f"{points[-1]['mb_per_s']:7.1f} MB/s {' '.join(points[-1]['implementations'])}")
            series[variant] = points
        goals = []
        for i in range(vcpus):
            best = max(series[v][i]["mb_per_s"] for v in ("shared", "distributed"))
            goals.append({"processes": i + 1,
                          "autonomic_vs_best_static": series["autonomic"][i]["mb_per_s"] / best,
                          "distributed_vs_linux": series["distributed"][i]["mb_per_s"]
                          / series["linux"][i]["mb_per_s"]})
        worst_auto = min(g["autonomic_vs_best_static"] for g in goals)
        worst_dist = min(g["distributed_vs_linux"] for g in goals)
        goal = {"text": "autonomic >= 0.97x the best static choice at every p; "
                        "distributed >= 0.8x the Linux page cache",
                "autonomic_vs_best_static": worst_auto, "distributed_vs_linux": worst_dist,
                "met": worst_auto >= 0.97 and worst_dist >= 0.8}
        return series, goals, goal

    # 1b. Figure 1 with an unmodified tool, through hotswapfs --------------
    def rg_once(self, p, path):
        """p pinned `rg -j1 --no-mmap -c` of `path` (process i on CPU i);
        the time until the last one finished."""
        procs = [subprocess.Popen(["rg", "-j1", "--no-mmap", "-c", "hotswap search", path],
                                  stdout=subprocess.PIPE, text=True,
                                  preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu}))
                 for cpu in range(p)]
        start = time.monotonic_ns()
        counts = set()
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"rg failed ({proc.returncode}): {out}"
            counts.add(out.strip())
        assert len(counts) == 1, f"rg runs disagree: {counts}"
        return time.monotonic_ns() - start

    def figure1_tools(self):
        """Figure 1 with ripgrep (Debian's, unmodified) on a hotswapfs mount
        over the file's directory: p = 1..vCPUs concurrent searches of the
        file through its FCM (shared, distributed, autonomic) and of the
        lower file (the Linux page cache)."""
        reps = 2 if self.quick else 5
        mnt = WORK + "-mnt"
        os.makedirs(mnt, exist_ok=True)
        subprocess.run(["mount", "-t", "hotswapfs", "-o", f"lowerdir={WORK}", "none", mnt],
                       check=True)
        upper = os.path.join(mnt, os.path.basename(self.path))
        keeper = os.open(upper, os.O_RDONLY)
        try:
            # Warm: the FCM and the lower page cache hold the whole file.
            for path in (upper, self.path):
                with open(path, "rb") as f:
                    while f.read(1 << 20):
                        pass
            object_id = next(s["id"] for s in json.loads(tool("--json", "status"))
                             if s.get("label") == upper)
            # The structural figure: waits on a contended FCM lock per
            # 1,000 page hits in each run of each FCM, counted by the FCM
            # itself. Not in the autonomic runs: asking the FCM for its
            # counters from this process's CPU is an access the policy
            # would count.
            statics = ("shared", "distributed")
            waits = {v: {p: [] for p in range(1, os.cpu_count() + 1)} for v in statics}

            def once(p, variant):
                # One untimed pass first, with the same p processes on the
                # same CPUs: a swap leaves a distributed FCM's per-CPU
                # representatives empty, and their first pass takes every
                # page from the master (the caches are to be warm).
                if variant == "linux":
                    self.rg_once(p, self.path)
                    return self.rg_once(p, self.path)
                self.rg_once(p, upper)
                if variant not in statics:
                    return self.rg_once(p, upper)
                before = fcm_counters(object_id)
                took = self.rg_once(p, upper)
                after = fcm_counters(object_id)
                hits = after["hits"] - before["hits"]
                assert hits > 0, f"no page hits in a warm run: {before} then {after}"
                waits[variant][p].append(1000 * (after["lock_waits"] - before["lock_waits"]) / hits)
                return took

            runs, impls = self.figure1_runs(object_id, reps, once)
        finally:
            self.swap_all("shared")
            os.close(keeper)
            subprocess.run(["umount", mnt])
        series, goals, goal = self.figure1_series(runs, impls)
        contention = {v: [{"processes": p, "lock_waits_per_1000_hits": summary(w)}
                          for p, w in waits[v].items()]
                      for v in waits}
        for v, points in contention.items():
            for point in points:
                w = point["lock_waits_per_1000_hits"]
                say(f"  {v:11} p={point['processes']}: {w['median']:8.2f} lock waits per 1,000 hits "
                    f"[{w['min']:.2f}-{w['max']:.2f}]")
        vcpus = os.cpu_count()
        at_vcpus = contention["distributed"][vcpus - 1]["lock_waits_per_1000_hits"]
        result = {"file_bytes": self.size, "pages": self.size // PAGE,
                  "tool": "rg -j1 --no-mmap -c", "repetitions": reps,
                  "series": series, "per_p": goals, "goal": goal, "contention": contention,
                  "contention_goal": {
                      "text": f"distributed: 0 lock waits per 1,000 hits at p = {vcpus}",
                      "value": at_vcpus["max"], "met": at_vcpus["max"] == 0}}
        self.save("figure1_tools", result)

    # 6. K42's PostMark experiment, through hotswapfs -----------------------
    def postmark_once(self, where, files, transactions):
        """One PostMark run (Debian's, unmodified) in `where`: transactions
        per second of the whole run (PostMark's own per-second figures are
        whole seconds, too coarse here)."""
        commands = (f"set location {where}\nset number {files}\n"
                    f"set transactions {transactions}\nset subdirectories 5\n"
                    f"set seed 42\nrun\nquit\n")
        start = time.monotonic_ns()
        proc = subprocess.run(["postmark"], input=commands, capture_output=True, text=True)
        elapsed = time.monotonic_ns() - start
        assert proc.returncode == 0 and "Deleting files" in proc.stdout, proc.stdout + proc.stderr
        return transactions / (elapsed / 1e9)

    @staticmethod
    def postmark_settle(timeout=60.0):
        """Waits until no FCM is left (evicting unused inodes): the last
        run's files end on a workqueue after their deletion, and those
        ends must not run during the next variant's run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2\n")
            with open("/sys/kernel/debug/hotswap/objects") as f:
                if not any("interface=fcm" in line for line in f):
                    return
            time.sleep(0.05)
        raise AssertionError("FCMs of an earlier PostMark run did not end")

    def postmark(self):
        reps = 2 if self.quick else 5
        files, transactions = (40, 200) if self.quick else (300, 10000)
        root = os.path.join(WORK, "postmark")
        lower, mnt = os.path.join(root, "lower"), os.path.join(root, "mnt")
        os.makedirs(lower, exist_ok=True)
        os.makedirs(mnt, exist_ok=True)
        subprocess.run(["mount", "-t", "hotswapfs", "-o", f"lowerdir={lower}", "none", mnt],
                       check=True)
        tps = {v: [] for v in VARIANTS}
        ratios = {"autonomic_vs_best_static": [], "distributed_vs_shared": [],
                  "shared_vs_linux": []}
        try:
            # Interleaved: each repetition runs every variant once, so drift
            # in the machine's speed hits them alike, each after the last
            # run's FCMs have ended. New FCMs start on the
            # swapped-to implementation (a swap-all sets the default);
            # autonomic starts them on shared with the cpu_count policy on.
            for rep in range(reps):
                run = {}
                # The order rotates: no variant always follows the same one.
                for variant in VARIANTS[rep % 4:] + VARIANTS[:rep % 4]:
                    self.postmark_settle()
                    if variant == "autonomic":
                        self.swap_all("shared")
                        uapi.set_policy(self.ctl, "fcm", "cpu_count", (2, 1, 3, 0))
                    elif variant != "linux":
                        uapi.set_policy(self.ctl, "fcm", "off")
                        self.swap_all(variant)
                    where = lower if variant == "linux" else mnt
                    run[variant] = self.postmark_once(where, files, transactions)
                    tps[variant].append(run[variant])
                uapi.set_policy(self.ctl, "fcm", "off")
                best = max(run["shared"], run["distributed"])
                ratios["autonomic_vs_best_static"].append(run["autonomic"] / best)
                ratios["distributed_vs_shared"].append(run["distributed"] / run["shared"])
                ratios["shared_vs_linux"].append(run["shared"] / run["linux"])
                say("  " + "  ".join(f"{v} {run[v]:7.1f}/s" for v in VARIANTS))
        finally:
            uapi.set_policy(self.ctl, "fcm", "off")
            self.swap_all("shared")
            subprocess.run(["umount", mnt])
        auto = summary(ratios["autonomic_vs_best_static"])
        result = {"files": files, "transactions": transactions, "repetitions": reps,
                  "transactions_per_s": {v: summary(t) for v, t in tps.items()},
                  "ratios": {k: summary(v) for k, v in ratios.items()},
                  "goal": {"text": "autonomic within 2% of the better static FCM "
                                   "(every repetition's ratio >= 0.98)",
                           "value": auto["median"], "met": auto["min"] >= 0.98}}
        self.save("postmark", result)

    # 5. Swap keeps the cache -----------------------------------------------
    def swap_keeps_cache(self):
        swaps = 4 if self.quick else 10
        keeper = uapi.open_cached(self.path, os.O_RDWR)
        object_id = uapi.file_info(keeper)["object"]
        read_through(keeper, self.size)
        before = uapi.file_info(keeper)
        target = "distributed"
        for _ in range(swaps):
            _, per = uapi.swap(self.ctl, "fcm", target, object_id, capacity=1)
            assert per[0]["outcome"] == uapi.OUTCOME_COMPLETED, per
            read_through(keeper, self.size)
            target = "shared" if target == "distributed" else "distributed"
        after = uapi.file_info(keeper)
        os.close(keeper)
        pages = self.size // PAGE
        refills = after["fills"] - before["fills"]
        result = {"pages": pages, "swaps": swaps, "cached_before": before["cached"],
                  "cached_after": after["cached"], "refills": refills,
                  "hits_during": after["hits"] - before["hits"],
                  "accounting_ok": after["allocated"] == after["freed"] + after["cached"],
                  "goal": {"text": "pages re-read from the file because of swaps = 0",
                           "value": refills, "met": refills == 0}}
        self.save("swap_keeps_cache", result)
        say(f"  {swaps} swaps of a {pages}-page FCM, each followed by a full re-read: "
            f"{refills} pages re-read from the file")


READER = """
import os, random, sys, time
sys.path.insert(0, {pylib!r})
import hotswap_uapi as uapi
os.sched_setaffinity(0, {{{cpu}}})
dev = uapi.open_cached({path!r})
pages = {size} // 4096
os.set_blocking(0, False)
print("ready", flush=True)
longest = count = 0
rng = random.Random({cpu})
while True:
    for _ in range(64):
        t = time.monotonic_ns()
        os.pread(dev, 4096, rng.randrange(pages) * 4096)
        longest = max(longest, time.monotonic_ns() - t)
        count += 1
    try:
        if os.read(0, 16):
            break
    except BlockingIOError:
        pass
print(longest, count, flush=True)
"""

VARIANTS = ("linux", "shared", "distributed", "autonomic")
BENCHMARKS = ["call_overhead", "swap_blocked", "batched_swap", "figure1", "figure1_tools",
              "swap_keeps_cache", "postmark"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("accel")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    args = parser.parse_args()
    chosen = args.only.split(",")
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    os.makedirs(args.out, exist_ok=True)
    bench = Bench(args)
    say(f"hotswap bench: Linux {bench.meta['kernel']}, {bench.meta['vcpus']} vCPUs, "
        f"{args.accel.upper()}{' (quick)' if args.quick else ''}")
    for name in BENCHMARKS:
        if name in chosen:
            say(f"{name}:")
            start = time.monotonic()
            getattr(bench, name)()
            say(f"  ({time.monotonic() - start:.0f} s)")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
