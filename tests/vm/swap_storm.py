#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""A swap storm (run by swap_storm.sh; `make stress` runs a long one).

    swap_storm.py SWAPS [SEED]

FILES real files, each cached by its own FCM through /dev/hotswap-file.
On every vCPU a writer and a reader run: writers write random 8-aligned
ranges of their own half of each file and keep a model of it; every 8-byte
word written at file offset o holds o/8 in its low 40 bits and the writer's
sequence number above, so readers check each word they read sits where it
belongs. Meanwhile the driver swaps the FCMs shared <-> distributed (batched
and one by one), interposes and removes the monitor, and toggles the
autonomic policy, until SWAPS swaps have completed. Then the files are
synced and closed and compared byte for byte with the writers' models, and
every FCM's page accounting must balance (allocated == freed + cached).
Prints one summary line; exits non-zero on any mismatch.
"""

import os
import random
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../pylib"))
import hotswap_uapi as uapi  # noqa: E402

FILES = 16
PAGE = 4096
PAGES = 32
SIZE = PAGES * PAGE
LOW = (1 << 40) - 1
DIR = "/tmp/hotswap-storm"


def words(offset, length, seq):
    """The bytes a writer puts at [offset, offset+length), both 8-aligned."""
    first = offset // 8
    return struct.pack(f"<{length // 8}Q",
                       *(((seq << 40) | (first + i)) for i in range(length // 8)))


def writer(cpu, writers, seed, stop):
    """Writes random ranges of its own slice of every file; returns its
    model (file index -> {offset: bytes}) through stdout as it exits."""
    os.sched_setaffinity(0, {cpu % os.cpu_count()})
    rng = random.Random(seed)
    devs = [uapi.open_cached(os.path.join(DIR, f"f{i}"), os.O_RDWR) for i in range(FILES)]
    span = SIZE // writers
    base = cpu * span
    model = [bytearray(initial(base, span)) for _ in range(FILES)]
    seq = 0
    while not os.path.exists(stop):
        seq += 1
        f = rng.randrange(FILES)
        length = rng.randrange(1, min(3 * PAGE, span) // 8) * 8
        offset = base + rng.randrange(0, (span - length) // 8 + 1) * 8
        data = words(offset, length, seq)
        if os.pwrite(devs[f], data, offset) != length:
            raise AssertionError(f"short write to file {f} at {offset}")
        model[f][offset - base:offset - base + length] = data
        if seq % 200 == 0:
            # Reopen now and then: openers come and go during swaps.
            os.close(devs[f])
            devs[f] = uapi.open_cached(os.path.join(DIR, f"f{f}"), os.O_RDWR)
    for dev in devs:
        os.close(dev)
    for f in range(FILES):
        with open(os.path.join(DIR, f"model{cpu}.{f}"), "wb") as out:
            out.write(model[f])
    return seq


def reader(cpu, seed, stop):
    os.sched_setaffinity(0, {cpu % os.cpu_count()})
    rng = random.Random(seed)
    devs = [uapi.open_cached(os.path.join(DIR, f"f{i}")) for i in range(FILES)]
    checked = 0
    while not os.path.exists(stop):
        f = rng.randrange(FILES)
        length = rng.randrange(1, 2 * PAGE // 8) * 8
        offset = rng.randrange(0, (SIZE - length) // 8 + 1) * 8
        data = os.pread(devs[f], length, offset)
        if len(data) != length:
            raise AssertionError(f"short read of file {f} at {offset}: {len(data)}")
        for i, w in enumerate(struct.unpack(f"<{length // 8}Q", data)):
            if w & LOW != offset // 8 + i:
                raise AssertionError(f"file {f} word at {offset + 8 * i} says {w & LOW}")
        checked += length
    for dev in devs:
        os.close(dev)
    return checked


def initial(offset, length):
    return words(offset, length, 0)


class Driver:
    """Swaps, interposes and toggles the policy, counting what happened."""

    def __init__(self, ctl, ids, seed):
        self.ctl = ctl
        self.ids = ids
        self.rng = random.Random(seed)
        self.done = self.aborted = self.busy = 0
        self.interposes = self.uninterposes = self.toggles = 0
        self.policy = False

    def count(self, summary, results):
        self.done += summary["completed"]
        for r in results:
            if r["outcome"] == uapi.OUTCOME_ABORTED:
                self.aborted += 1
            elif r["outcome"] == uapi.OUTCOME_NOT_STARTED:
                # Only a concurrent administrative operation (the policy's
                # own swap) may keep a swap from starting.
                if r["errno"] != -16:
                    raise AssertionError(f"swap of {r['id']} could not start: {r}")
                self.busy += 1

    def swap_all(self):
        target = self.rng.choice(["shared", "distributed"])
        self.count(*uapi.swap(self.ctl, "fcm", target, capacity=64))

    def swap_each(self):
        for object_id in self.ids:
            target = self.rng.choice(["shared", "distributed"])
            try:
                self.count(*uapi.swap(self.ctl, "fcm", target, object_id, capacity=1))
            except OSError as e:
                if e.errno != 16:  # EBUSY: the policy is swapping it
                    raise
                self.busy += 1

    def monitor(self):
        # Alternate, so monitors never pile up (the policy adds one too).
        on = self.interposes == self.uninterposes
        cmd = uapi.IOC_INTERPOSE if on else uapi.IOC_UNINTERPOSE
        try:
            uapi.call(self.ctl, cmd, uapi.INTERPOSE, b"fcm", b"monitor", 0, 0)
        except OSError as e:
            # ENOENT: no monitor to remove; EBUSY: an object is mid-swap.
            if e.errno not in (2, 16):
                raise
        if on:
            self.interposes += 1
        else:
            self.uninterposes += 1

    def toggle_policy(self):
        self.policy = not self.policy
        uapi.set_policy(self.ctl, "fcm", self.policy, up_cpus=2, up_windows=1, down_windows=2)
        self.toggles += 1

    def step(self):
        action = self.rng.random()
        if action < 0.6:
            self.swap_all()
        elif action < 0.8:
            self.swap_each()
        elif action < 0.93:
            self.monitor()
        else:
            self.toggle_policy()


def spawn(fn, *args):
    pid = os.fork()
    if pid == 0:
        # The load runs flat out on every vCPU; niced, it leaves the driver
        # enough CPU to swap at a useful rate (and the swaps still land in
        # the middle of its calls).
        os.nice(5)
        code = 0
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - report anything, then exit
            print(f"storm worker {fn.__name__}{args[:1]}: {e!r}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    return pid


def main():
    target = int(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else random.randrange(1 << 32)
    print(f"swap_storm: seed {seed} (replay: swap_storm.py {target} {seed})", flush=True)
    os.makedirs(DIR, exist_ok=True)
    cpus = os.cpu_count()
    for i in range(FILES):
        with open(os.path.join(DIR, f"f{i}"), "wb") as f:
            f.write(initial(0, SIZE))
    stop = os.path.join(DIR, "stop")
    if os.path.exists(stop):
        os.remove(stop)
    ctl = os.open(uapi.CONTROL, os.O_RDWR)
    keepers = [uapi.open_cached(os.path.join(DIR, f"f{i}"), os.O_RDWR) for i in range(FILES)]
    ids = [uapi.file_info(k)["object"] for k in keepers]

    workers = [spawn(writer, cpu, cpus, seed + cpu, stop) for cpu in range(cpus)]
    workers += [spawn(reader, cpu, seed + 100 + cpu, stop) for cpu in range(cpus)]
    driver = Driver(ctl, ids, seed)
    start = time.monotonic()
    failed = False
    try:
        while driver.done < target:
            driver.step()
            for pid in workers:
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    raise AssertionError("a worker died during the storm (see above)")
    except BaseException:
        failed = True
        raise
    finally:
        open(stop, "w").close()
        for pid in workers:
            try:
                _, status = os.waitpid(pid, 0)
                failed |= status != 0
            except ChildProcessError:
                pass
        uapi.set_policy(ctl, "fcm", False)
    took = time.monotonic() - start
    assert not failed, "a worker failed (see above)"

    unbalanced = []
    for f, keeper in enumerate(keepers):
        info = uapi.file_info(keeper)
        if info["allocated"] != info["freed"] + info["cached"]:
            unbalanced.append((f, info))
        os.fsync(keeper)
        os.close(keeper)
    verified = mismatches = 0
    span = SIZE // cpus
    for f in range(FILES):
        with open(os.path.join(DIR, f"f{f}"), "rb") as fh:
            data = fh.read()
        want = b"".join(open(os.path.join(DIR, f"model{c}.{f}"), "rb").read()
                        for c in range(cpus))
        want += initial(span * cpus, SIZE - span * cpus)
        verified += len(data)
        if data != want:
            mismatches += sum(a != b for a, b in zip(data, want)) + abs(len(data) - len(want))
    print(f"swap_storm: {driver.done} swaps done, {driver.aborted} aborted, {driver.busy} busy, "
          f"{driver.interposes}/{driver.uninterposes} monitor on/off, {driver.toggles} policy "
          f"toggles, {FILES} files, {verified} bytes verified, {mismatches} mismatches, "
          f"{took:.0f} s", flush=True)
    assert not unbalanced, f"page accounting broken: {unbalanced}"
    assert mismatches == 0, "the backing files differ from the writers' models"
    assert driver.aborted == 0, "swaps aborted without any fault injected"


if __name__ == "__main__":
    main()
