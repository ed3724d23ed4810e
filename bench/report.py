#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench, on the host: turns bench/results/*.json into a table and PNGs.

    report.py RESULTS [--no-plots]

The table goes to stdout (one line per goal, with the measured figure);
the plots are written beside the JSON: call_overhead.png, swap_blocked.png,
batched_swap.png, figure1.png. --no-plots needs no plotting library (the
runner's self-tests use it). Exit status 1 if a result file is malformed.
"""

import argparse
import json
import os
import sys

US = 1e3
MS = 1e6


def load(folder, name):
    path = os.path.join(folder, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def verdict(goal):
    return "met" if goal["met"] else "NOT met"


def table(results):
    """Lines of the summary table, one block per benchmark present."""
    lines = []
    meta = next((r["meta"] for r in results.values() if r), None)
    if meta is None:
        return ["no results"]
    lines.append(f"Linux {meta['kernel']}, {meta['vcpus']} vCPUs, {meta['accel'].upper()}, "
                 f"{meta['date']}{' (quick run)' if meta.get('quick') else ''}")
    r = results.get("call_overhead")
    if r:
        lines.append("call overhead (slot / direct, median of per-repetition ratios):")
        for call, c in r["calls"].items():
            lines.append(f"  {call:22} direct {c['direct_ns']['median']:9.1f} ns   slot "
                         f"{c['slot_ns']['median']:9.1f} ns   {c['ratio']['median']:.3f}x "
                         f"[{c['ratio']['min']:.3f}-{c['ratio']['max']:.3f}]")
        lines.append(f"  goal: {r['goal']['text']}: {r['goal']['value']:.3f}x, {verdict(r['goal'])}")
    r = results.get("swap_blocked")
    if r:
        lines.append(f"swap blocked window ({r['pages']} pages, {r['readers']} readers, "
                     f"{len(r['swaps'])} swaps):")
        lines.append(f"  longest blocked {r['blocked_ns']['max'] / US:.0f} us (median "
                     f"{r['blocked_ns']['median'] / US:.0f} us), whole swap median "
                     f"{r['duration_ns']['median'] / US:.0f} us, synchronize_rcu() median "
                     f"{r['synchronize_rcu_ns']['median'] / US:.0f} us")
        lines.append(f"  goal: {r['goal']['text']}: {verdict(r['goal'])}")
    r = results.get("batched_swap")
    if r:
        lines.append("batched swap (one request, N objects):")
        for b in r["batches"]:
            lines.append(f"  N={b['objects']:<5} {b['total_ns']['median'] / MS:9.2f} ms  "
                         f"{b['ratio']:.2f}x of N=1")
        lines.append(f"  goal: {r['goal']['text']}: {r['goal']['value']:.2f}x, {verdict(r['goal'])}")
    for name in ("figure1", "figure1_tools"):
        r = results.get(name)
        if not r:
            continue
        how = f"`{r['tool']}` through hotswapfs" if "tool" in r else "pread through the device"
        lines.append(f"figure 1 (search a {r['file_bytes'] >> 20} MB file, {how}, MB/s per variant):")
        variants = list(r["series"])
        lines.append("  p  " + "".join(f"{v:>13}" for v in variants))
        for i, point in enumerate(r["series"][variants[0]]):
            row = "".join(f"{r['series'][v][i]['mb_per_s']:13.1f}" for v in variants)
            lines.append(f"  {point['processes']:<3}{row}")
        g = r["goal"]
        lines.append(f"  goal: autonomic >= 0.97x best static: {g['autonomic_vs_best_static']:.3f}x; "
                     f"distributed >= 0.8x Linux: {g['distributed_vs_linux']:.3f}x; {verdict(g)}")
        if "contention" in r:
            lines.append("  waits on a contended FCM lock per 1,000 page hits (median [min-max] of the runs):")
            for v, points in r["contention"].items():
                cells = "  ".join(f"p={pt['processes']} {pt['lock_waits_per_1000_hits']['median']:.2f} "
                                  f"[{pt['lock_waits_per_1000_hits']['min']:.2f}-"
                                  f"{pt['lock_waits_per_1000_hits']['max']:.2f}]" for pt in points)
                lines.append(f"    {v:11} {cells}")
            cg = r["contention_goal"]
            lines.append(f"  goal: {cg['text']}: {cg['value']:.2f} at most, {verdict(cg)}")
    r = results.get("postmark")
    if r:
        lines.append(f"PostMark on hotswapfs ({r['files']} files, {r['transactions']} transactions, "
                     f"median of {r['repetitions']} interleaved runs; transactions/s):")
        for variant, t in r["transactions_per_s"].items():
            lines.append(f"  {variant:12} {t['median']:8.1f}  [{t['min']:.1f}-{t['max']:.1f}]")
        for name, q in r["ratios"].items():
            lines.append(f"  {name:26} {q['median']:.3f}x [{q['min']:.3f}-{q['max']:.3f}]")
        lines.append(f"  goal: {r['goal']['text']}: {r['goal']['value']:.3f}x, {verdict(r['goal'])}")
    r = results.get("swap_keeps_cache")
    if r:
        lines.append(f"swap keeps the cache: {r['swaps']} swaps of a {r['pages']}-page FCM: "
                     f"{r['refills']} pages re-read, accounting "
                     f"{'balanced' if r['accounting_ok'] else 'BROKEN'}; {verdict(r['goal'])}")
    return lines


def plot(folder, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(folder, name), dpi=110)
        plt.close(fig)

    meta = next(r["meta"] for r in results.values() if r)
    where = f"{meta['vcpus']} vCPUs, {meta['accel'].upper()}"

    r = results.get("call_overhead")
    if r:
        fig, ax = plt.subplots(figsize=(7, 4))
        calls = list(r["calls"])
        xs = range(len(calls))
        direct = [r["calls"][c]["direct_ns"]["median"] for c in calls]
        slot = [r["calls"][c]["slot_ns"]["median"] for c in calls]
        ax.bar([x - 0.2 for x in xs], direct, 0.4, label="direct call")
        ax.bar([x + 0.2 for x in xs], slot, 0.4, label="through a slot")
        for x, c in zip(xs, calls):
            ax.annotate(f"{r['calls'][c]['ratio']['median']:.3f}x", (x + 0.2, slot[x]),
                        ha="center", va="bottom")
        ax.set_xticks(list(xs), calls)
        ax.set_ylabel("ns per call (median)")
        ax.set_title(f"Call overhead ({where})")
        ax.legend()
        save(fig, "call_overhead.png")

    r = results.get("swap_blocked")
    if r:
        fig, ax = plt.subplots(figsize=(7, 4))
        n = range(1, len(r["swaps"]) + 1)
        ax.plot(n, [s["blocked_ns"] / US for s in r["swaps"]], "o-", label="longest blocked caller")
        ax.plot(n, [s["duration_ns"] / US for s in r["swaps"]], "s-", label="whole swap")
        ax.axhline(r["synchronize_rcu_ns"]["median"] / US, color="red", linestyle="--",
                   label="one synchronize_rcu() (median)")
        ax.set_xlabel("swap (alternating shared / distributed)")
        ax.set_ylabel("µs")
        ax.set_yscale("log")
        ax.set_title(f"Swapping a {r['pages']}-page FCM under {r['readers']} readers ({where})")
        ax.legend()
        save(fig, "swap_blocked.png")

    r = results.get("batched_swap")
    if r:
        fig, ax = plt.subplots(figsize=(7, 4))
        ns = [b["objects"] for b in r["batches"]]
        ax.plot(ns, [b["total_ns"]["median"] / MS for b in r["batches"]], "o-",
                label="one batched request")
        base = r["batches"][0]["total_ns"]["median"] / MS
        ax.plot(ns, [base * n for n in ns], ":", color="gray", label="N separate swaps (linear)")
        ax.plot(ns, [base * 3 for _ in ns], "--", color="red", label="goal: 3x one swap")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("objects swapped together (N)")
        ax.set_ylabel("ms (median)")
        ax.set_title(f"Batched swap ({where})")
        ax.legend()
        save(fig, "batched_swap.png")

    for name in ("figure1", "figure1_tools"):
        r = results.get(name)
        if not r:
            continue
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for variant, points in r["series"].items():
            ps = [p["processes"] for p in points]
            linux = "Linux page cache (rg of the lower file)" if "tool" in r else "Linux page cache (pread)"
            label = linux if variant == "linux" else variant
            left.plot(ps, [p["ns_per_page"] / US for p in points], "o-", label=label)
            right.plot(ps, [p["mb_per_s"] for p in points], "o-", label=label)
        left.set_xlabel("processes searching the file (one per vCPU)")
        left.set_ylabel("µs per page per process (median)")
        right.set_xlabel("processes searching the file (one per vCPU)")
        right.set_ylabel("MB/s, all processes together")
        for ax in (left, right):
            ax.set_xticks([p["processes"] for p in r["series"]["linux"]])
            ax.legend()
        how = f"{r['tool']} through hotswapfs" if "tool" in r else "pread through the device"
        fig.suptitle(f"Figure 1: searching a {r['file_bytes'] >> 20} MB file, {how} ({where})")
        save(fig, f"{name}.png")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    names = ["call_overhead", "swap_blocked", "batched_swap", "figure1", "figure1_tools",
             "swap_keeps_cache", "postmark"]
    try:
        results = {n: load(args.results, n) for n in names}
        lines = table(results)
    except (KeyError, TypeError, ValueError, IndexError, StopIteration) as e:
        print(f"bench results in {args.results} are malformed: {e!r}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    if not args.no_plots and any(results.values()):
        plot(args.results, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
