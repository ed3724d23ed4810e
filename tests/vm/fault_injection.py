#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Fault injection during live FCM swaps (run by fault_injection.sh).

One file is cached through /dev/hotswap-file while reader and writer
threads keep using it; its FCM is swapped between shared, distributed and
the test-only faulty/faulty_desc (tests/faults/fcm_faulty.rs) with one
knob set at a time. After each case: the swap's outcome, phase and errno
are the expected ones, the slot is on the expected implementation, every
byte reads back right, allocated == freed + cached, the abort is counted
in the object's status (and a bad value in hotswap's misbehaviors), and
the threads are still making progress (none stayed blocked).

A misbehavior (an out-of-range result, a read that reports more bytes
than asked) quarantines the implementation: it is refused for swaps
(ENOTRECOVERABLE), the object is moved to the known-good `shared` on its
own, and reloading fcm_faulty reinstates it for the next case.
"""

import errno
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pylib"))
import hotswap_uapi as hs  # noqa: E402

PAGE = 4096
PAGES = 64
KNOBS = "/sys/kernel/debug/fcm_faulty"
FORWARD, BLOCKED, TRANSFER = 1, 2, 3
PAGEMAP, DESCRIPTORS = 1, 2


def knob(name, value=None):
    path = os.path.join(KNOBS, name)
    if value is None:
        with open(path) as f:
            return int(f.read())
    with open(path, "w") as f:
        f.write(str(value))


MODULE_DIR = os.environ.get("HOTSWAP_MODULE_DIR",
                            os.path.join(os.path.dirname(__file__), "..", ".."))


def misbehaviors():
    with open("/sys/kernel/debug/hotswap/stats") as f:
        fields = dict(kv.split("=") for kv in f.read().split())
    return int(fields["misbehaviors"])


def page_bytes(page, gen):
    return (page.to_bytes(4, "little") + gen.to_bytes(4, "little")) * (PAGE // 8)


def wait_for(what, seconds=10.0, why="condition"):
    end = time.monotonic() + seconds
    while not what():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {why}")
        time.sleep(0.01)


class File:
    """The cached file, the generation of each page, and its object."""

    def __init__(self, path, pages):
        self.path, self.pages = path, pages
        with open(path, "wb") as f:
            for p in range(pages):
                f.write(page_bytes(p, 0))
        self.gens = [0] * pages
        self.lock = threading.Lock()
        self.dev = hs.open_cached(path, os.O_RDWR)
        self.id = hs.file_info(self.dev)["object"]

    def write(self, page, gen, dev=None):
        with self.lock:
            n = os.pwrite(dev or self.dev, page_bytes(page, gen), page * PAGE)
            assert n == PAGE, n
            self.gens[page] = gen

    def verify(self):
        """Every page reads back as last written; the accounting balances."""
        with self.lock:
            data = os.pread(self.dev, self.pages * PAGE, 0)
            expected = b"".join(page_bytes(p, g) for p, g in enumerate(self.gens))
        assert data == expected, f"{self.path}: content differs from what was written"
        info = hs.file_info(self.dev)
        assert info["allocated"] == info["freed"] + info["cached"], info
        return info

    def status(self, ctl):
        out = hs.call(ctl, hs.IOC_STATUS, hs.STATUS, self.id, 0, b"", b"", b"", 0, 0, 0, 0,
                      0, 0, 0, 0, 0, 0, 0, 0, b"")
        return {"phase": out[1], "implementation": hs.text(out[3]), "swaps_done": out[8],
                "swaps_aborted": out[9]}


class Load:
    """Reader and writer threads on their own descriptors. Readers check
    that every page names itself; the writer rewrites pages with growing
    generations (so the state always holds dirty pages)."""

    def __init__(self, f):
        self.f, self.stop, self.errors = f, threading.Event(), []
        self.progress = [0, 0, 0]
        self.threads = [threading.Thread(target=self.reader, args=(i,)) for i in (0, 1)]
        self.threads.append(threading.Thread(target=self.writer))
        for t in self.threads:
            t.start()

    def reader(self, i):
        try:
            dev = hs.open_cached(self.f.path, os.O_RDONLY)
            while not self.stop.is_set():
                for p in range(i, self.f.pages, 2):
                    data = os.pread(dev, PAGE, p * PAGE)
                    assert data[:4] == p.to_bytes(4, "little"), f"page {p}: {data[:8]!r}"
                self.progress[i] += 1
            os.close(dev)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.errors.append(f"reader {i}: {e!r}")

    def writer(self):
        try:
            dev = hs.open_cached(self.f.path, os.O_RDWR)
            gen = 1000
            while not self.stop.is_set():
                gen += 1
                for p in range(0, self.f.pages, 7):
                    self.f.write(p, gen, dev)
                self.progress[2] += 1
            os.close(dev)
        except Exception as e:  # noqa: BLE001
            self.errors.append(f"writer: {e!r}")

    def moving(self):
        """Every thread gets through another round within a few seconds."""
        before = list(self.progress)
        wait_for(lambda: all(a > b for a, b in zip(self.progress, before)), 15,
                 "every load thread to make progress")
        assert not self.errors, self.errors

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(20)
            assert not t.is_alive(), "a load thread is stuck"
        assert not self.errors, self.errors


class Case:
    def __init__(self, ctl, f):
        self.ctl, self.f = ctl, f
        self.aborted = f.status(ctl)["swaps_aborted"]

    def on(self, target):
        """Puts the file's FCM on `target` unless it is there already."""
        if self.f.status(self.ctl)["implementation"] != target:
            self.swap(target, hs.OUTCOME_COMPLETED)

    def swap(self, target, outcome, phase=None, err=0, fmt=None, timeout_ms=0):
        """Swaps the file's FCM to `target`; checks how it ended."""
        summary, (r,) = hs.swap(self.ctl, "fcm", target, self.f.id, 1, timeout_ms)
        assert r["outcome"] == outcome, (target, r)
        if phase is not None:
            assert r["phase"] == phase, (target, r)
        assert r["errno"] == -err, (target, r, os.strerror(-r["errno"]) if r["errno"] else "")
        if fmt is not None:
            assert r["format"] == fmt, (target, r)
        status = self.f.status(self.ctl)
        if outcome == hs.OUTCOME_ABORTED:
            self.aborted += 1
        assert status["swaps_aborted"] == self.aborted, status
        assert status["phase"] == 0, status
        return r, status


def quarantined(ctl, impl="faulty"):
    return hs.implementations(ctl)[("fcm", impl)]["quarantined"]


def reinstate(case):
    """Reloads fcm_faulty (a fresh registration, not quarantined); its
    knobs start at 0 again."""
    end = time.monotonic() + 10
    while True:
        # The ejected FCM's old instance goes after a grace period.
        done = subprocess.run(["rmmod", "fcm_faulty"], capture_output=True)
        if done.returncode == 0:
            break
        assert time.monotonic() < end, f"rmmod fcm_faulty: {done.stderr!r}"
        time.sleep(0.1)
    subprocess.run(["insmod", os.path.join(MODULE_DIR, "tests/faults/fcm_faulty.ko")], check=True)
    assert not quarantined(case.ctl)


def expect_quarantine(case, f, bad, left_on):
    """After a misbehavior of faulty: counted, faulty quarantined, the
    object moved off it (to `left_on`), swaps to it refused, state intact;
    then faulty is reinstated."""
    assert misbehaviors() > bad, (bad, misbehaviors())
    assert quarantined(case.ctl), "faulty misbehaved but is not quarantined"
    wait_for(lambda: f.status(case.ctl)["implementation"] == left_on, 15,
             f"the object to be on {left_on}")
    def refused():
        # The ejecting swap may still hold the slot while it settles: EBUSY.
        try:
            _, (r,) = hs.swap(case.ctl, "fcm", "faulty", f.id, 1)
            err = -r["errno"]
            assert r["outcome"] == hs.OUTCOME_NOT_STARTED, r
        except OSError as e:
            err = e.errno
        assert err in (errno.EBUSY, errno.ENOTRECOVERABLE), os.strerror(err)
        return err == errno.ENOTRECOVERABLE
    wait_for(refused, 10, "a swap to faulty to be refused as quarantined")
    f.verify()
    # Swaps the ejection itself aborted (a knob still set) count too.
    case.aborted = f.status(case.ctl)["swaps_aborted"]
    reinstate(case)


def transfer_faults(case, f, load):
    """Failed and misreporting export/import: aborted in Transfer, old state
    kept; a misreporting one is quarantined and its object ejected."""
    case.swap("faulty", hs.OUTCOME_COMPLETED, fmt=PAGEMAP)
    bad = misbehaviors()
    for name, value, target, err in (
        # export fails before touching anything
        ("fail_export", errno.EIO, "distributed", errno.EIO),
        # import adopts everything (descriptors), gives it back and fails
        ("fail_import", errno.ENOMEM, "faulty_desc", errno.ENOMEM),
    ):
        injected = knob("injected")
        knob(name, value)
        try:
            _, status = case.swap(target, hs.OUTCOME_ABORTED, TRANSFER, err)
        finally:
            knob(name, 0)
        assert status["implementation"] == "faulty", status
        assert knob("injected") > injected, f"{name} never fired"
        f.verify()
        load.moving()
        print(f"{name}={value}: aborted in transfer ({os.strerror(err)}), state intact")
    # An errno is no misbehavior: nothing counted, nothing quarantined.
    assert misbehaviors() == bad and not quarantined(case.ctl)
    # export hands its page map out, then returns an out-of-range value:
    # hotswap gives it back, aborts, and quarantines faulty, whose object
    # then moves to the known-good shared.
    for value, target in ((7, "shared"), (-5000, "distributed")):
        case.on("faulty")
        bad = misbehaviors()
        knob("bogus_export", value)
        try:
            # Not `case.swap`: the ejection may already be under way when
            # the slot's status is read.
            _, (r,) = hs.swap(case.ctl, "fcm", target, f.id, 1)
        finally:
            knob("bogus_export", 0)
        assert (r["outcome"], r["phase"], r["errno"]) == \
            (hs.OUTCOME_ABORTED, TRANSFER, -errno.EPROTO), r
        expect_quarantine(case, f, bad, "shared")
        load.moving()
        print(f"bogus_export={value}: aborted in transfer, faulty quarantined, "
              "its object moved to shared")
    # The page-map import path, from distributed: an errno aborts alone...
    case.swap("distributed", hs.OUTCOME_COMPLETED, fmt=PAGEMAP)
    knob("fail_import", errno.EIO)
    try:
        _, status = case.swap("faulty", hs.OUTCOME_ABORTED, TRANSFER, errno.EIO)
    finally:
        knob("fail_import", 0)
    assert status["implementation"] == "distributed", status
    assert not quarantined(case.ctl)
    # ...an out-of-range import quarantines faulty; the object never left
    # distributed.
    bad = misbehaviors()
    knob("bogus_import", 7)
    try:
        _, (r,) = hs.swap(case.ctl, "fcm", "faulty", f.id, 1)
    finally:
        knob("bogus_import", 0)
    assert (r["outcome"], r["phase"], r["errno"]) == \
        (hs.OUTCOME_ABORTED, TRANSFER, -errno.EPROTO), r
    expect_quarantine(case, f, bad, "distributed")
    f.verify()
    load.moving()
    print("fail_import/bogus_import (page map): aborted in transfer, state intact, "
          "the misbehaving one quarantined")
    # Nothing was left half-done: the same swaps now complete.
    case.swap("faulty_desc", hs.OUTCOME_COMPLETED, fmt=DESCRIPTORS)
    case.swap("faulty", hs.OUTCOME_COMPLETED, fmt=DESCRIPTORS)
    f.verify()


def slow_calls(case, f, load):
    """Slow calls and a slow transfer: the swaps complete, callers wait and go on."""
    knob("delay_us", 3000)
    try:
        for target in ("distributed", "faulty", "shared", "faulty"):
            case.swap(target, hs.OUTCOME_COMPLETED)
            load.moving()
    finally:
        knob("delay_us", 0)
    knob("transfer_delay_ms", 400)
    try:
        r, _ = case.swap("shared", hs.OUTCOME_COMPLETED, fmt=PAGEMAP)
        assert r["duration_ns"] >= 400_000_000, r
        r, _ = case.swap("faulty_desc", hs.OUTCOME_COMPLETED, fmt=DESCRIPTORS)
        assert r["duration_ns"] >= 400_000_000, r
    finally:
        knob("transfer_delay_ms", 0)
    load.moving()
    f.verify()
    print("slow calls and slow transfers: swaps completed, callers went on")


def policy_during_swap(case, f):
    """A decision policy picked while an object is being swapped: once the
    swap ends the object has the policy's monitor, exactly one (the pick
    used to get EBUSY from the busy slot and leave it unmonitored, so the
    policy never decided for it; then it waited at most 4 x the slot's
    timeout + 1 s, here 1,004 ms, for a swap whose own timeout, 10 s, lets
    its transfer take 1.5 s)."""
    case.on("faulty")
    done = []
    hs.set_timeout(case.ctl, f.id, 1)
    knob("transfer_delay_ms", 1500)
    try:
        swapper = threading.Thread(target=lambda: done.append(
            hs.swap(hs_ctl_for_thread(), "fcm", "shared", f.id, 1, 10_000)))
        swapper.start()
        wait_for(lambda: f.status(case.ctl)["phase"] != 0, 5, "the swap to start")
        # Windows too long for the policy to decide anything meanwhile.
        hs.set_policy(case.ctl, "fcm", "cpu_count", (2, 1000, 2000, 0))
        swapper.join(20)
        assert not swapper.is_alive(), "the swap did not end"
    finally:
        knob("transfer_delay_ms", 0)
        hs.set_timeout(case.ctl, f.id, 2000)
        monitors = hs.object_status(case.ctl, f.id)["interposers"]
        hs.set_policy(case.ctl, "fcm", "off")
    (_, (r,)), = done
    assert r["outcome"] == hs.OUTCOME_COMPLETED, r
    assert monitors == ["monitor"], f"interposers after the pick: {monitors}"
    # Turning the policy off leaves its monitors (this file's and the
    # other one's); take them off again.
    assert hs.uninterpose(case.ctl, "fcm", "monitor") >= 1
    assert hs.object_status(case.ctl, f.id)["interposers"] == []
    f.verify()
    print("policy picked during a swap: the object got its monitor once the swap ended")


def misbehaving_read(f):
    """A read of `f` (on faulty) that reports one byte more than asked: the
    front end refuses it with EIO and reports the misbehavior."""
    knob("read_excess", 1)
    try:
        os.pread(f.dev, PAGE, 0)
        raise AssertionError("a read reporting more than it was asked for was accepted")
    except OSError as e:
        assert e.errno == errno.EIO, e
    finally:
        knob("read_excess", 0)


def quarantine_during_swap(case, f, other):
    """faulty is quarantined (another object's read misbehaves) while `f`
    is being swapped to it: the swap lands, and `f` must then be ejected
    too. The ejection used to look at faulty's objects once, before `f`
    arrived, and left `f` on the quarantined implementation for good."""
    case.on("shared")
    if other.status(case.ctl)["implementation"] != "faulty":
        hs.swap(case.ctl, "fcm", "faulty", other.id, 1)
    done = []
    bad = misbehaviors()
    knob("transfer_delay_ms", 1500)
    try:
        swapper = threading.Thread(target=lambda: done.append(
            hs.swap(hs_ctl_for_thread(), "fcm", "faulty", f.id, 1)))
        swapper.start()
        wait_for(lambda: f.status(case.ctl)["phase"] == TRANSFER, 5, "the swap's transfer")
        try:
            misbehaving_read(other)
        finally:
            # Only `f`'s transfer, already sleeping, is slow: the ejection
            # of `other` is over before `f` lands on faulty.
            knob("transfer_delay_ms", 0)
        swapper.join(20)
        assert not swapper.is_alive(), "the swap did not end"
    finally:
        knob("transfer_delay_ms", 0)
    assert misbehaviors() > bad and quarantined(case.ctl)
    (_, (r,)), = done
    assert r["outcome"] == hs.OUTCOME_COMPLETED, r
    for x in (other, f):
        wait_for(lambda: x.status(case.ctl)["implementation"] == "shared", 15,
                 f"object {x.id} to leave the quarantined faulty")
    f.verify()
    case.aborted = f.status(case.ctl)["swaps_aborted"]
    reinstate(case)
    print("quarantined during a swap to it: the swapped object was ejected too")


def out_of_range_read(case, f):
    """A read that reports more bytes than asked is refused (EIO), counted,
    and quarantines the FCM's implementation: the object moves to shared."""
    case.on("faulty")
    bad = misbehaviors()
    misbehaving_read(f)
    assert misbehaviors() == bad + 1
    expect_quarantine(case, f, bad, "shared")
    case.swap("faulty_desc", hs.OUTCOME_COMPLETED)
    print("read count out of range: refused with EIO, counted, faulty quarantined")


def reader_thread(path, page, results):
    def run():
        dev = hs.open_cached(path, os.O_RDONLY)
        results.append(os.pread(dev, PAGE, page * PAGE))
        os.close(dev)
    t = threading.Thread(target=run)
    t.start()
    return t


def stuck_call_in_forward(case, f, other):
    """A call held forever: the swap times out in Forward and stays on the
    old FCM, which keeps serving; another object swaps and serves meanwhile."""
    assert f.status(case.ctl)["implementation"] == "faulty_desc"
    ticket = knob("tickets")
    knob("hold", 1)
    got = []
    held = reader_thread(f.path, 3, got)
    wait_for(lambda: knob("held") == 1, why="the call to be held")
    r, status = case.swap("shared", hs.OUTCOME_ABORTED, FORWARD, errno.ETIMEDOUT,
                          timeout_ms=300)
    assert status["implementation"] == "faulty_desc", status
    # The slot is not blocked: other calls on it go on, on the old FCM.
    f.verify()
    # Other objects are not affected.
    other_case = Case(case.ctl, other)
    for target in ("distributed", "shared"):
        other_case.swap(target, hs.OUTCOME_COMPLETED)
        other.write(5, other.gens[5] + 1)
        other.verify()
    assert knob("held") == 1 and held.is_alive()
    knob("released", ticket + 1)
    held.join(10)
    assert not held.is_alive() and got == [page_bytes(3, f.gens[3])], "held reader"
    case.swap("shared", hs.OUTCOME_COMPLETED)
    f.verify()
    print(f"stuck call: swap timed out in forward after {r['duration_ns'] // 1000000} ms, "
          "slot back on faulty_desc, other object swapped meanwhile")


def stuck_call_in_blocked(case, f):
    """A tracked call held in Blocked: the swap times out there with the call
    in flight, and a caller blocked meanwhile is released onto the old FCM."""
    case.swap("faulty", hs.OUTCOME_COMPLETED)
    ticket = knob("tickets")
    knob("hold", 2)
    early_got, tracked_got, blocked_got = [], [], []
    early = reader_thread(f.path, 1, early_got)
    wait_for(lambda: knob("held") == 1, why="the early call to be held")
    result = {}

    def swapper():
        result["r"] = hs.swap(hs_ctl_for_thread(), "fcm", "shared", f.id, 1, 2500)[1][0]
    s = threading.Thread(target=swapper)
    s.start()
    wait_for(lambda: f.status(case.ctl)["phase"] == FORWARD, why="forward")
    time.sleep(0.5)  # past the grace period's flip: the next call is tracked
    tracked = reader_thread(f.path, 2, tracked_got)
    wait_for(lambda: knob("held") == 2, why="the tracked call to be held")
    knob("released", ticket + 1)  # the early call ends: Forward can end
    wait_for(lambda: f.status(case.ctl)["phase"] == BLOCKED or not s.is_alive(), why="blocked")
    blocked = reader_thread(f.path, 4, blocked_got)
    s.join(20)
    assert not s.is_alive(), "the swap never ended"
    r = result["r"]
    assert (r["outcome"], r["phase"], r["errno"]) == (hs.OUTCOME_ABORTED, BLOCKED,
                                                      -errno.ETIMEDOUT), r
    assert r["in_flight"] == 1, r
    assert r["blocked_ns"] > 0, f"no caller was blocked: {r}"
    case.aborted += 1
    blocked.join(10)
    assert not blocked.is_alive(), "a caller blocked in the aborted swap was never released"
    assert blocked_got == [page_bytes(4, f.gens[4])]
    status = f.status(case.ctl)
    assert (status["implementation"], status["swaps_aborted"]) == ("faulty", case.aborted)
    knob("released", ticket + 2)
    for t in (early, tracked):
        t.join(10)
        assert not t.is_alive()
    assert early_got == [page_bytes(1, f.gens[1])] and tracked_got == [page_bytes(2, f.gens[2])]
    case.swap("distributed", hs.OUTCOME_COMPLETED)
    f.verify()
    print("stuck tracked call: swap timed out in blocked with 1 in flight, "
          "the blocked caller was released")


_thread_ctl = threading.local()


def hs_ctl_for_thread():
    if not hasattr(_thread_ctl, "fd"):
        _thread_ctl.fd = os.open(hs.CONTROL, os.O_RDWR)
    return _thread_ctl.fd


def main():
    sys.stdout.reconfigure(line_buffering=True)  # progress shows even if killed
    start = time.monotonic()
    ctl = os.open(hs.CONTROL, os.O_RDWR)
    f = File("/tmp/hotswap-faults", PAGES)
    other = File("/tmp/hotswap-faults-other", 8)
    if f.status(ctl)["implementation"] != "shared":  # another test changed the default
        hs.swap(ctl, "fcm", "shared", f.id, 1)
    for p in range(0, PAGES, 3):
        f.write(p, 1)  # dirty pages in every state that moves
    case = Case(ctl, f)

    load = Load(f)
    try:
        transfer_faults(case, f, load)
        slow_calls(case, f, load)
    finally:
        load.end()
    f.verify()
    policy_during_swap(case, f)
    quarantine_during_swap(case, f, other)
    out_of_range_read(case, f)
    stuck_call_in_forward(case, f, other)
    stuck_call_in_blocked(case, f)

    info = f.verify()
    os.fsync(f.dev)
    os.close(f.dev)
    # No fsync: the last close writes the swapped FCM's dirty pages back.
    assert hs.file_info(other.dev)["dirty"] > 0
    os.close(other.dev)
    with open(other.path, "rb") as fh:
        assert fh.read() == b"".join(page_bytes(p, g) for p, g in enumerate(other.gens)), \
            "a swapped FCM did not write back on its last close"
    with open(f.path, "rb") as fh:
        data = fh.read()
    assert data == b"".join(page_bytes(p, g) for p, g in enumerate(f.gens)), \
        "backing file differs after fsync and close"
    print(f"{case.aborted} aborted swaps counted; {info['fills']} fills, "
          f"{info['writebacks']} write-backs; backing file exact "
          f"({time.monotonic() - start:.1f} s)")


if __name__ == "__main__":
    main()
