#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Races that lost writes in an FCM (run by fcm_races.sh, with a capacity
small enough that eviction runs all the time, under each FCM):

  evict_vs_write   a writer on one CPU fills every 64-byte record of its
                   pages once while a dropper on the other CPU evicts the
                   whole cache in a loop (posix_fadvise DONTNEED), and a
                   reader sweeps the rest of the file. fcm_distributed
                   wrote a page back and only then took it from the
                   per-CPU maps: a write that hit in between was freed
                   with the page.
  append_vs_fsync  an appender grows the file a record at a time, each in
                   a page of its own past the end (so each is the last
                   write its page gets), while another process fsyncs in
                   a loop. fcm_distributed marked the page dirty before it
                   grew the size: a write-back in between wrote the old
                   length and cleaned the page, and the record never
                   reached the file.

  attach_churn     an appender attaches, appends a record (O_APPEND on the
                   device) and closes, over and over, while a prober
                   attaches and closes the same file. A new FCM made while
                   the previous one was still live elsewhere could read
                   the size before the last append and put the next one
                   over it.

Every record carries its own offset; at the end the file is checked
record by record. Usage: fcm_races.py ROUNDS [SEED].
"""

import os
import random
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../pylib"))
import hotswap_uapi as uapi  # noqa: E402

PAGE = 4096
RECORD = 64
DIR = "/tmp/hotswap-races"


def record(offset, round_):
    """The record written at `offset`: its offset and the round, repeated."""
    return struct.pack("<QQ", offset, round_) * (RECORD // 16)


def pinned(cpu):
    os.sched_setaffinity(0, {cpu % os.cpu_count()})


def spawn(fn, *args):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - report, then exit
            print(f"race worker {fn.__name__}: {e!r}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    return pid


def wait_all(pids):
    failed = False
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        failed |= status != 0
    if failed:
        raise AssertionError("a race worker failed (see above)")


def missing(path, offsets, round_):
    """The offsets in `offsets` whose record is wrong in the file."""
    bad = []
    with open(path, "rb") as f:
        for at in offsets:
            f.seek(at)
            if f.read(RECORD) != record(at, round_):
                bad.append(at)
    return bad


def evict_vs_write(round_, pages, seed):
    path = os.path.join(DIR, f"evict{round_}")
    with open(path, "wb") as f:
        f.truncate(2 * pages * PAGE)
    stop = path + ".stop"

    def writer():
        pinned(0)
        dev = uapi.open_cached(path, os.O_RDWR)
        for at in range(0, pages * PAGE, RECORD):
            if os.pwrite(dev, record(at, round_), at) != RECORD:
                raise AssertionError(f"short write at {at}")
        os.close(dev)
        open(stop, "w").close()

    def dropper():
        pinned(1)
        rng = random.Random(seed)
        dev = uapi.open_cached(path)
        while not os.path.exists(stop):
            os.posix_fadvise(dev, 0, 0, os.POSIX_FADV_DONTNEED)
            page = pages + rng.randrange(pages)
            os.pread(dev, PAGE, page * PAGE)
        os.close(dev)

    keeper = uapi.open_cached(path)
    wait_all([spawn(writer), spawn(dropper)])
    evictions = uapi.file_info(keeper)["evictions"]
    os.close(keeper)
    return missing(path, range(0, pages * PAGE, RECORD), round_), evictions


def append_vs_fsync(round_, records):
    path = os.path.join(DIR, f"append{round_}")
    open(path, "wb").close()
    stop = path + ".stop"

    def appender():
        pinned(0)
        dev = uapi.open_cached(path, os.O_RDWR)
        for i in range(records):
            at = i * PAGE
            if os.pwrite(dev, record(at, round_), at) != RECORD:
                raise AssertionError(f"short append at {at}")
        os.close(dev)
        open(stop, "w").close()

    def syncer():
        pinned(1)
        dev = uapi.open_cached(path, os.O_RDWR)
        while not os.path.exists(stop):
            os.fsync(dev)
        os.close(dev)

    wait_all([spawn(appender), spawn(syncer)])
    size = os.path.getsize(path)
    if size != (records - 1) * PAGE + RECORD:
        return [f"size {size}"], 0
    return missing(path, range(0, records * PAGE, PAGE), round_), 0


def attach_churn(round_, records):
    path = os.path.join(DIR, f"churn{round_}")
    open(path, "wb").close()
    stop = path + ".stop"

    def appender():
        pinned(0)
        for i in range(records):
            dev = uapi.open_cached(path, os.O_RDWR, os.O_RDWR | os.O_APPEND)
            if os.write(dev, record(i * RECORD, round_)) != RECORD:
                raise AssertionError(f"short append {i}")
            os.close(dev)
        open(stop, "w").close()

    def prober():
        pinned(1)
        while not os.path.exists(stop):
            dev = uapi.open_cached(path)
            os.lseek(dev, 0, os.SEEK_END)
            time.sleep(0.003)  # the appender joins this FCM meanwhile
            os.close(dev)

    wait_all([spawn(appender), spawn(prober)])
    size = os.path.getsize(path)
    if size != records * RECORD:
        return [f"size {size}"]
    return missing(path, range(0, records * RECORD, RECORD), round_)


def main():
    rounds = int(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else random.randrange(1 << 32)
    print(f"fcm_races: seed {seed}", flush=True)
    os.makedirs(DIR, exist_ok=True)
    lost = 0
    for r in range(1, rounds + 1):
        bad, evictions = evict_vs_write(r, 16, seed + r)
        if bad:
            print(f"evict_vs_write round {r}: {len(bad)} record(s) lost, first at "
                  f"{bad[0]} ({evictions} evictions)", flush=True)
        lost += len(bad)
        bad, _ = append_vs_fsync(r, 512)
        if bad:
            print(f"append_vs_fsync round {r}: {len(bad)} record(s) lost, first at {bad[0]}",
                  flush=True)
        lost += len(bad)
        bad = attach_churn(r, 200)
        if bad:
            print(f"attach_churn round {r}: {len(bad)} record(s) lost, first at {bad[0]}",
                  flush=True)
        lost += len(bad)
    print(f"fcm_races: {rounds} round(s), {lost} record(s) lost", flush=True)
    assert lost == 0, "writes were lost"


if __name__ == "__main__":
    main()
