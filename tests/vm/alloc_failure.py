#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Every allocation of a swap, failed in turn (run by alloc_failure.sh).

The kernel's fault injection fails the Nth allocation of this task
(/proc/thread-self/fail-nth, with failslab and fail_page_alloc told to
fail GFP_KERNEL allocations too). For N = 1, 2, ... until a swap makes
fewer than N allocations, a swap of a cached file's FCM runs with its Nth
allocation failed; after each one:

  - the outcome is one the ABI names (not started with an errno,
    completed, aborted), and the object is on the implementation it says,
    in phase normal, with no mediator left behind;
  - the file reads back exactly (dirty pages included), a write after it
    lands, and the next swap (with no failure) carries everything over;
  - the page accounting balances.

Shapes: shared <-> distributed (page-map transfer), and faulty_desc ->
faulty with the import made to fail (descriptor transfer, aborted, so
every failure lands in the abort's give-back too). Prints one line per
shape; exits non-zero on the first broken invariant.
"""

import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../pylib"))
import hotswap_uapi as uapi  # noqa: E402

PAGE = 4096
DIR = "/tmp/hotswap-allocfail"
KNOBS = {
    "failslab/ignore-gfp-wait": "N",
    "failslab/verbose": "0",
    "fail_page_alloc/ignore-gfp-wait": "N",
    "fail_page_alloc/ignore-gfp-highmem": "N",
    "fail_page_alloc/min-order": "0",
    "fail_page_alloc/verbose": "0",
}
FAULTY = "/sys/kernel/debug/fcm_faulty"


def knob(path, value):
    with open(path, "w") as f:
        f.write(value)


def swap_failing(ctl, oid, target, nth):
    """Swaps object `oid` to `target` with this task's `nth` allocation
    failed. Returns (outcome, errno, injected)."""
    fail = os.open("/proc/thread-self/fail-nth", os.O_RDWR)
    try:
        os.write(fail, str(nth).encode())
        try:
            summary, results = uapi.swap(ctl, "fcm", target, oid, capacity=1)
            outcome = results[0]["outcome"] if results else uapi.OUTCOME_UNCHANGED
            code = results[0]["errno"] if results else 0
        except OSError as e:
            outcome, code = None, -e.errno
        left = int(os.pread(fail, 32, 0))
        os.write(fail, b"0")
    finally:
        os.close(fail)
    return outcome, code, left == 0


class Shape:
    def __init__(self, ctl, name, start, other, rng):
        self.ctl, self.name, self.rng = ctl, name, rng
        self.path = os.path.join(DIR, name)
        self.model = bytearray(rng.randbytes(24 * PAGE + 100))
        with open(self.path, "wb") as f:
            f.write(self.model)
        # Create the FCM on `start`: it is the default while we attach.
        uapi.swap(ctl, "fcm", start)
        self.dev = uapi.open_cached(self.path, os.O_RDWR)
        self.oid = uapi.file_info(self.dev)["object"]
        self.impls = (start, other)
        os.pread(self.dev, len(self.model), 0)
        self.scribble()

    def scribble(self):
        """Dirty a few pages, so a swap has something to lose."""
        for _ in range(4):
            at = self.rng.randrange(len(self.model) - 64)
            data = self.rng.randbytes(64)
            assert os.pwrite(self.dev, data, at) == 64
            self.model[at:at + 64] = data

    def check(self, what):
        status = uapi.object_status(self.ctl, self.oid)
        if status["phase"] != 0:
            raise AssertionError(f"{what}: left in phase {status['phase']}")
        if os.pread(self.dev, len(self.model) + 10, 0) != self.model:
            raise AssertionError(f"{what}: the file reads back wrong")
        info = uapi.file_info(self.dev)
        if info["allocated"] != info["freed"] + info["cached"]:
            raise AssertionError(f"{what}: page accounting broken: {info}")
        return status["implementation"]

    def run(self, target_of):
        nth = 0
        counts = {}
        while True:
            nth += 1
            here = self.check(f"before failure {nth}")
            target = target_of(here)
            outcome, code, injected = swap_failing(self.ctl, self.oid, target, nth)
            now = self.check(f"after failing allocation {nth} (outcome {outcome}, errno {code})")
            want = target if outcome == uapi.OUTCOME_COMPLETED else here
            if now != want:
                raise AssertionError(f"failure {nth}: outcome {outcome} but the object is on {now}")
            if outcome not in (uapi.OUTCOME_COMPLETED, uapi.OUTCOME_ABORTED,
                               uapi.OUTCOME_NOT_STARTED, None):
                raise AssertionError(f"failure {nth}: outcome {outcome}")
            counts[outcome] = counts.get(outcome, 0) + 1
            self.scribble()
            # The next swap, unfailed, must carry all of it.
            back = self.impls[1] if now == self.impls[0] else self.impls[0]
            uapi.swap(self.ctl, "fcm", back, self.oid, capacity=1)
            self.check(f"after the swap following failure {nth}")
            if not injected:
                break
        os.fsync(self.dev)
        with open(self.path, "rb") as f:
            if f.read() != self.model:
                raise AssertionError(f"{self.name}: the backing file differs after fsync")
        return nth, counts

    def close(self):
        os.close(self.dev)
        with open(self.path, "rb") as f:
            if f.read() != self.model:
                raise AssertionError(f"{self.name}: the backing file differs after close")


def report(name, nth, counts):
    names = {uapi.OUTCOME_COMPLETED: "completed", uapi.OUTCOME_ABORTED: "aborted",
             uapi.OUTCOME_NOT_STARTED: "not started", None: "refused"}
    parts = ", ".join(f"{names.get(k, k)} {v}" for k, v in sorted(counts.items(), key=str))
    print(f"alloc_failure: {name}: {nth - 1} allocation(s) failed in turn: {parts}", flush=True)


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else random.randrange(1 << 32)
    print(f"alloc_failure: seed {seed}", flush=True)
    rng = random.Random(seed)
    os.makedirs(DIR, exist_ok=True)
    for path, value in KNOBS.items():
        knob(os.path.join("/sys/kernel/debug", path), value)
    ctl = os.open(uapi.CONTROL, os.O_RDWR)

    shape = Shape(ctl, "pagemap", "shared", "distributed", rng)
    flip = {"shared": "distributed", "distributed": "shared"}
    report("shared <-> distributed", *shape.run(lambda here: flip[here]))
    shape.close()

    knob(os.path.join(FAULTY, "fail_import"), "12")
    shape = Shape(ctl, "descriptors", "faulty_desc", "faulty", rng)
    # Every swap to `faulty` aborts in Transfer (its import fails) and the
    # descriptors go back; the follow-up swap (knob off) completes.
    def target(here):
        knob(os.path.join(FAULTY, "fail_import"), "12")
        return "faulty" if here == "faulty_desc" else "faulty_desc"
    orig_swap = uapi.swap

    def swap_then_disarm(*args, **kwargs):
        out = orig_swap(*args, **kwargs)
        knob(os.path.join(FAULTY, "fail_import"), "0")
        return out
    uapi.swap = swap_then_disarm
    report("faulty_desc -> faulty, import failing", *shape.run(target))
    uapi.swap = orig_swap
    shape.close()
    uapi.swap(ctl, "fcm", "shared")


if __name__ == "__main__":
    main()
