#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""A swap storm (run by swap_storm.sh; `make stress` runs a long one).

    swap_storm.py SWAPS [SEED]

FILES real files, each cached by its own FCM through /dev/hotswap-file
(the capacity, set by swap_storm.sh, is half a file: eviction runs all the
time). On every vCPU a writer and a reader run: writers write random
8-aligned ranges of their own slice of each file and keep a model of it;
every 8-byte word written at file offset o holds o/8 in its low 40 bits and
the writer's sequence number above, so readers check each word they read
sits where it belongs. Writers open their files in mixed modes (the backing
file O_RDWR or O_RDWR|O_APPEND, the device O_RDWR or O_WRONLY), fsync now
and then, and now and then write from a buffer whose tail is unmapped
(EFAULT or a short count; the model takes exactly what the write reports).
GROWERS more files grow and shrink: one worker each appends, writes past
the end (a hole of zeros), truncates through the device and fsyncs, with a
model of its own; readers accept a word of those files if it is zero or
sits where it belongs. A syncer fsyncs random files all the time. Memory
is under pressure all along: a hog holds half the memory available at the
start, and a reclaimer drops caches in a loop (the FCM shrinker runs
against every swap's transfer).

With HOTSWAP_STORM_MOUNT (a hotswapfs mount; HOTSWAP_STORM_LOWER its
lower directory) the same storm runs through the mount: the files are
created, written, read, truncated and fsynced on it by path (writers open
them O_RDWR or O_WRONLY, now and then O_DSYNC), the FCMs kept and counted
through /dev/hotswap-file descriptors of the lower files (the same FCMs:
one per lower inode), and at the end the lower files must match the
models too.

Meanwhile the driver swaps the FCMs shared <-> distributed (batched and one
by one), interposes and removes the monitor, and toggles the autonomic
policy (cpu_count), until SWAPS swaps have completed. Then the files are synced and
closed and compared byte for byte with the models, and every FCM's page
accounting must balance (allocated == freed + cached). Prints one summary
line; exits non-zero on any mismatch.
"""

import errno
import os
import random
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../pylib"))
import hotswap_mem as mem  # noqa: E402
import hotswap_uapi as uapi  # noqa: E402

FILES = 16
GROWERS = 4
GROW_MAX = 48 * 4096
PAGE = 4096
PAGES = 32
SIZE = PAGES * PAGE
LOW = (1 << 40) - 1
MOUNT = os.environ.get("HOTSWAP_STORM_MOUNT", "")
LOWER = os.environ.get("HOTSWAP_STORM_LOWER", "")
DIR = os.path.join(MOUNT, "storm") if MOUNT else "/tmp/hotswap-storm"
# Per-phase timeout of the driver's swaps. The default (2 s) is a hang
# detector for real machines; under TCG on a loaded 2-core host the VM is
# sometimes descheduled for over a second, so a Forward phase waiting for
# one in-flight call overran it with nothing wrong. A real hang still
# aborts at 10 s and fails the aborted == 0 assertion.
SWAP_TIMEOUT_MS = 10_000


class HoleyBuffer(mem.HoleyBuffer):
    """A write from here whose source runs past the end faults part-way."""

    def pwrite(self, fd, data, offset):
        """Writes `data` placed so that only its first `mapped` bytes are
        mapped; returns (bytes written or -errno, mapped)."""
        mapped = random.randrange(0, len(data) + 1) // 8 * 8
        return mem.raw_pwrite(fd, self.place(data, mapped), len(data), offset), mapped


def open_file(path, mode=os.O_RDONLY):
    """A descriptor whose reads and writes go through `path`'s FCM: the
    device attached to it, or (through a mount) the file itself."""
    if MOUNT:
        return os.open(path, mode)
    return uapi.open_cached(path, mode)


def truncate(fd, size):
    if MOUNT:
        os.ftruncate(fd, size)
    else:
        uapi.truncate(fd, size)


def open_mixed(path, rng):
    """A writer's descriptor of `path`, in one of the modes writers use."""
    if MOUNT:
        # (No O_APPEND: a pwrite through one appends, on any filesystem.)
        return os.open(path, rng.choice((os.O_RDWR, os.O_WRONLY))
                       | rng.choice((0, 0, 0, os.O_DSYNC)))
    return uapi.open_cached(path, rng.choice((os.O_RDWR, os.O_RDWR | os.O_APPEND)),
                            rng.choice((os.O_RDWR, os.O_WRONLY)))


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
    random.seed(seed)
    devs = [open_mixed(os.path.join(DIR, f"f{i}"), rng) for i in range(FILES)]
    holey = HoleyBuffer()
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
        if rng.random() < 0.05:
            n, mapped = holey.pwrite(devs[f], data, offset)
            if n == -errno.EFAULT:
                n = 0
            if not 0 <= n <= mapped:
                raise AssertionError(f"a write faulting after {mapped} bytes returned {n}")
            data = data[:n]
        elif os.pwrite(devs[f], data, offset) != length:
            raise AssertionError(f"short write to file {f} at {offset}")
        model[f][offset - base:offset - base + len(data)] = data
        if seq % 97 == 0:
            os.fsync(devs[f])
        if seq % 200 == 0:
            # Reopen now and then: openers come and go during swaps.
            os.close(devs[f])
            devs[f] = open_mixed(os.path.join(DIR, f"f{f}"), rng)
    for dev in devs:
        os.close(dev)
    for f in range(FILES):
        with open(os.path.join(DIR, f"model{cpu}.{f}"), "wb") as out:
            out.write(model[f])
    return seq


def grower(index, seed, stop):
    """Grows and shrinks file g{index}, keeping a model; writes it out as
    gmodel{index} when it stops."""
    os.sched_setaffinity(0, {index % os.cpu_count()})
    rng = random.Random(seed)
    path = os.path.join(DIR, f"g{index}")
    dev = open_file(path, os.O_RDWR)
    model = bytearray()
    seq = 0
    while not os.path.exists(stop):
        seq += 1
        action = rng.random()
        if action < 0.6 or not model:
            # Append, sometimes past the end (a hole of zeros first).
            gap = rng.choice((0, 0, 0, rng.randrange(1, 3 * PAGE // 8) * 8))
            offset = len(model) + gap
            length = rng.randrange(1, 2 * PAGE // 8) * 8
            if offset + length > GROW_MAX:
                truncate(dev, 0)
                del model[:]
                continue
            data = words(offset, length, seq)
            if os.pwrite(dev, data, offset) != length:
                raise AssertionError(f"short append to g{index} at {offset}")
            model.extend(bytes(gap))
            model.extend(data)
        elif action < 0.8:
            size = rng.randrange(0, len(model) // 8 + 1) * 8
            truncate(dev, size)
            del model[size:]
        else:
            os.fsync(dev)
        if os.lseek(dev, 0, os.SEEK_END) != len(model):
            raise AssertionError(f"g{index}: size {os.lseek(dev, 0, os.SEEK_END)}, model {len(model)}")
    os.close(dev)
    with open(os.path.join(DIR, f"gmodel{index}"), "wb") as out:
        out.write(model)


def syncer(seed, stop):
    """Fsyncs random files all the time, racing every writer."""
    rng = random.Random(seed)
    devs = [open_file(os.path.join(DIR, f"f{i}"), os.O_RDWR) for i in range(FILES)]
    devs += [open_file(os.path.join(DIR, f"g{i}"), os.O_RDWR) for i in range(GROWERS)]
    while not os.path.exists(stop):
        os.fsync(rng.choice(devs))
    for dev in devs:
        os.close(dev)


def reclaimer(stop):
    """Drops caches in a loop: the FCM shrinker races every swap."""
    drops = 0
    while not os.path.exists(stop):
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")
        drops += 1
        time.sleep(0.02)
    with open(os.path.join(DIR, "drops"), "w") as f:
        f.write(str(drops))


def hog(stop):
    """Holds half the memory available at the start until the storm ends."""
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            want = int(line.split()[1]) * 1024 // 2
    held = bytearray(want)
    for i in range(0, want, 4096):
        held[i] = 1
    while not os.path.exists(stop):
        time.sleep(0.1)


def reclaimed_pages():
    with open("/sys/kernel/debug/hotswap_fcm/memory") as f:
        first = f.readline()
    return int(first.split("reclaimed_pressure=")[1].split()[0])


def check_grown(dev, g, rng):
    """Reads a random range of grown file g: every word is zero or its own."""
    size = os.lseek(dev, 0, os.SEEK_END)
    if size < 8:
        return 0
    offset = rng.randrange(0, size // 8) * 8
    data = os.pread(dev, rng.randrange(1, 2 * PAGE // 8) * 8, offset)
    for i, w in enumerate(struct.unpack(f"<{len(data) // 8}Q", data[:len(data) // 8 * 8])):
        if w != 0 and w & LOW != offset // 8 + i:
            raise AssertionError(f"g{g} word at {offset + 8 * i} says {w & LOW}")
    return len(data)


def reader(cpu, seed, stop):
    os.sched_setaffinity(0, {cpu % os.cpu_count()})
    rng = random.Random(seed)
    devs = [open_file(os.path.join(DIR, f"f{i}")) for i in range(FILES)]
    grown = [open_file(os.path.join(DIR, f"g{i}")) for i in range(GROWERS)]
    checked = 0
    while not os.path.exists(stop):
        if rng.random() < 0.2:
            g = rng.randrange(GROWERS)
            checked += check_grown(grown[g], g, rng)
            continue
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
    for dev in devs + grown:
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
        self.count(*uapi.swap(self.ctl, "fcm", target, capacity=64, timeout_ms=SWAP_TIMEOUT_MS))

    def swap_each(self):
        for object_id in self.ids:
            target = self.rng.choice(["shared", "distributed"])
            try:
                self.count(*uapi.swap(self.ctl, "fcm", target, object_id, capacity=1,
                                      timeout_ms=SWAP_TIMEOUT_MS))
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
        # cpu_count's [up_cpus, up_windows, down_windows, 0].
        uapi.set_policy(self.ctl, "fcm", "cpu_count" if self.policy else "off", (2, 1, 2, 0))
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
    for i in range(GROWERS):
        open(os.path.join(DIR, f"g{i}"), "wb").close()
    stop = os.path.join(DIR, "stop")
    if os.path.exists(stop):
        os.remove(stop)
    ctl = os.open(uapi.CONTROL, os.O_RDWR)
    # Through a mount, the device on the lower files reaches the same FCMs.
    kept = os.path.join(LOWER, "storm") if MOUNT else DIR
    if MOUNT:
        # Made through the mount: their FCMs exist before the device's attach.
        held = [os.open(os.path.join(DIR, n), os.O_RDONLY)
                for n in [f"f{i}" for i in range(FILES)] + [f"g{i}" for i in range(GROWERS)]]
    keepers = [uapi.open_cached(os.path.join(kept, f"f{i}"), os.O_RDWR) for i in range(FILES)]
    keepers += [uapi.open_cached(os.path.join(kept, f"g{i}"), os.O_RDWR) for i in range(GROWERS)]
    if MOUNT:
        for fd in held:
            os.close(fd)
    ids = [uapi.file_info(k)["object"] for k in keepers]

    workers = [spawn(writer, cpu, cpus, seed + cpu, stop) for cpu in range(cpus)]
    workers += [spawn(reader, cpu, seed + 100 + cpu, stop) for cpu in range(cpus)]
    workers += [spawn(grower, g, seed + 200 + g, stop) for g in range(GROWERS)]
    workers.append(spawn(syncer, seed + 300, stop))
    workers.append(spawn(reclaimer, stop))
    workers.append(spawn(hog, stop))
    reclaimed_before = reclaimed_pages()
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
        uapi.set_policy(ctl, "fcm", "off")
    took = time.monotonic() - start
    assert not failed, "a worker failed (see above)"
    reclaimed = reclaimed_pages() - reclaimed_before
    drops = int(open(os.path.join(DIR, "drops")).read())

    unbalanced = []
    for f, keeper in enumerate(keepers):
        info = uapi.file_info(keeper)
        if info["allocated"] != info["freed"] + info["cached"]:
            unbalanced.append((f, info))
        os.fsync(keeper)
        os.close(keeper)
    verified = mismatches = 0
    for g in range(GROWERS):
        with open(os.path.join(DIR, f"g{g}"), "rb") as fh:
            data = fh.read()
        with open(os.path.join(DIR, f"gmodel{g}"), "rb") as fh:
            want = fh.read()
        verified += len(data)
        if data != want:
            mismatches += sum(a != b for a, b in zip(data, want)) + abs(len(data) - len(want))
    span = SIZE // cpus
    # Through a mount: the lower files after a sync must match too.
    if MOUNT:
        os.sync()
    for where in [DIR] + ([kept] if MOUNT else []):
        for f in range(FILES):
            with open(os.path.join(where, f"f{f}"), "rb") as fh:
                data = fh.read()
            want = b"".join(open(os.path.join(DIR, f"model{c}.{f}"), "rb").read()
                            for c in range(cpus))
            want += initial(span * cpus, SIZE - span * cpus)
            verified += len(data)
            if data != want:
                mismatches += sum(a != b for a, b in zip(data, want)) + abs(len(data) - len(want))
        if where == DIR:
            continue
        for g in range(GROWERS):
            with open(os.path.join(where, f"g{g}"), "rb") as fh:
                data = fh.read()
            want = open(os.path.join(DIR, f"gmodel{g}"), "rb").read()
            verified += len(data)
            if data != want:
                mismatches += sum(a != b for a, b in zip(data, want)) + abs(len(data) - len(want))
    print(f"swap_storm{' through ' + MOUNT if MOUNT else ''}: {driver.done} swaps done, {driver.aborted} aborted, {driver.busy} busy, "
          f"{driver.interposes}/{driver.uninterposes} monitor on/off, {driver.toggles} policy "
          f"toggles, {FILES}+{GROWERS} files, {verified} bytes verified, {mismatches} mismatches, "
          f"{drops} cache drops ({reclaimed} FCM pages reclaimed) beside a hog, {took:.0f} s",
          flush=True)
    assert reclaimed > 0, "the shrinker never took an FCM page during the storm"
    assert not unbalanced, f"page accounting broken: {unbalanced}"
    assert mismatches == 0, "the backing files differ from the writers' models"
    assert driver.aborted == 0, "swaps aborted without any fault injected"


if __name__ == "__main__":
    main()
