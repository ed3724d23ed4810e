#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Mappings of hotswapfs files under fire (run by hotswapfs_mmap.sh): the
FCM's pages are mapped into readers while a writer rewrites every page
through pwrite, the FCM evicts all the time (capacity 16 pages of a
48-page file, POSIX_FADV_DONTNEED of every page, drop_caches), a
truncater cuts and regrows the tail, forked children read through
inherited private mappings, and the FCM is swapped between
implementations.

Every page word holds (page, generation). A reader notes the writer's
last completed generation C, then reads a page through its mapping: each
word must name that page and a generation >= C (a mapping left on a page
the FCM freed shows an older one forever) and <= the writer's current
one + 1. Readers stay below the truncater's shortest size; the pages past
it must SIGBUS or show a valid word, checked in a child. At the end the
file through the mount and in LOWER after fsync must be the last
generation exactly.

Usage: hotswapfs_mmap.py SECONDS (HSFS_MNT, HSFS_LOWER, HSFS_HSWAPCTL).
"""

import ctypes
import mmap
import os
import random
import signal
import struct
import subprocess
import sys
import time

MNT = os.environ["HSFS_MNT"]
LOWER = os.environ["HSFS_LOWER"]
HSWAPCTL = os.environ["HSFS_HSWAPCTL"]
PAGE = mmap.PAGESIZE
PAGES = 48
STABLE = 32  # the truncater never cuts below this many pages
WORDS = (0, 8, 1024, 2048, PAGE - 8)


class Failure(Exception):
    pass


def page_bytes(p, gen):
    return struct.pack("<II", p, gen) * (PAGE // 8)


def word_ok(p, got_p, got_g, low, high):
    return got_p == p and low <= got_g <= high


def child(fn, *args):
    """Runs fn(*args) in a forked process; returns its pid."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported through the exit code
            print(f"FAIL ({fn.__name__}): {e}", flush=True)
            code = 1
        os._exit(code)
    return pid


class Progress:
    """The writer's generations, in memory shared with every child: the
    last one done and the one in progress, each one aligned 8-byte word
    (struct.pack_into zeroes its bytes before it packs: a racing reader
    could see 0)."""

    def __init__(self):
        self.mem = mmap.mmap(-1, PAGE)
        self._done = ctypes.c_uint64.from_buffer(self.mem, 0)
        self._doing = ctypes.c_uint64.from_buffer(self.mem, 8)

    def done(self):
        return self._done.value

    def doing(self):
        return self._doing.value

    def start(self, gen):
        self._doing.value = gen

    def finish(self, gen):
        self._done.value = gen


def writer(path, state, deadline):
    """Rewrites every page with the next generation, publishing it."""
    fd = os.open(path, os.O_RDWR)
    gen = state.done()
    while time.monotonic() < deadline:
        gen += 1
        state.start(gen)
        for p in range(PAGES):
            if os.pwrite(fd, page_bytes(p, gen), p * PAGE) != PAGE:
                raise Failure(f"generation {gen}: a short pwrite of page {p}")
        state.finish(gen)
        if gen % 8 == 0:
            os.fsync(fd)
    os.close(fd)


def check_page(m, p, state, what):
    """Page `p` of mapping `m` is a generation the writer finished or one
    it is writing. Byte copies may tear a word between two generations
    as they change, so a page is read up to 3 times: a stale mapping is
    stale every time."""
    for _ in range(3):
        done = state.done()
        data = m[p * PAGE:(p + 1) * PAGE]
        high = state.doing() + 1
        bad = [(off, *struct.unpack_from("<II", data, off)) for off in WORDS
               if not word_ok(p, *struct.unpack_from("<II", data, off), done, high)]
        if not bad:
            return
    off, got_p, got_g = bad[0]
    raise Failure(f"{what}: page {p} word {off}: page {got_p} generation {got_g}, "
                  f"expected page {p} generation {done}..{high}")


def reader(path, state, deadline, seed, private):
    """Reads the stable pages through a mapping, in a random order; with
    `private` a MAP_PRIVATE one, whose pages forked children check too
    (their page tables are copied from it)."""
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    flags = mmap.MAP_PRIVATE if private else mmap.MAP_SHARED
    m = mmap.mmap(fd, STABLE * PAGE, flags=flags, prot=mmap.PROT_READ)
    what = "a MAP_PRIVATE reader" if private else "a MAP_SHARED reader"
    rounds = 0
    while time.monotonic() < deadline:
        for p in rng.sample(range(STABLE), STABLE):
            check_page(m, p, state, what)
        rounds += 1
        if private and rounds % 10 == 0:
            pid = child(lambda: [check_page(m, p, state, "a forked child") for p in range(STABLE)])
            _, status = os.waitpid(pid, 0)
            if status != 0:
                raise Failure(f"a child reading an inherited mapping: status {status:#x}")
    m.close()
    os.close(fd)
    print(f"  {what}: {rounds} passes over {STABLE} pages", flush=True)


def tail_reader(m, deadline):
    """Reads the tail of `m`, a mapping of the whole file made before the
    truncater started (Python maps no more than the file's size), in
    children: each read is a valid word or SIGBUS (past a truncation)."""
    sigbus = reads = 0
    while time.monotonic() < deadline:
        def probe():
            for p in range(STABLE, PAGES):
                got_p, got_g = struct.unpack_from("<II", m, p * PAGE + 8)
                # A truncation zeroes a page's rest, a regrowth brings
                # zeros, and a read racing the rewrite may see half of it.
                if got_p not in (0, p):
                    raise Failure(f"tail page {p}: page {got_p} generation {got_g}")
        pid = child(probe)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS:
            sigbus += 1
        elif status != 0:
            raise Failure(f"a tail probe: status {status:#x}")
        reads += 1
    print(f"  tail probes: {reads}, {sigbus} ended by SIGBUS past a truncation", flush=True)


def truncater(path, deadline, seed):
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDWR)
    n = 0
    while time.monotonic() < deadline:
        os.ftruncate(fd, rng.randrange(STABLE * PAGE, PAGES * PAGE))
        time.sleep(0.05)
        n += 1
    os.close(fd)
    print(f"  truncations: {n}", flush=True)


def evictor(path, deadline):
    fd = os.open(path, os.O_RDONLY)
    n = 0
    while time.monotonic() < deadline:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        n += 1
        if n % 10 == 0:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        time.sleep(0.02)
    os.close(fd)
    print(f"  evictions of every page: {n}", flush=True)


def swapper(deadline):
    n = 0
    targets = ["distributed", "shared"]
    while time.monotonic() < deadline:
        r = subprocess.run([HSWAPCTL, "swap", "fcm", targets[n % 2]], capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure(f"hswapctl swap fcm {targets[n % 2]}: {r.stdout}{r.stderr}")
        n += 1
        time.sleep(0.3)
    print(f"  swaps: {n}", flush=True)


def main():
    seconds = float(sys.argv[1])
    path = os.path.join(MNT, "mapped")
    state = Progress()
    with open(path, "wb") as f:
        f.write(b"".join(page_bytes(p, 0) for p in range(PAGES)))
    fd = os.open(path, os.O_RDONLY)
    whole = mmap.mmap(fd, PAGES * PAGE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    os.close(fd)
    deadline = time.monotonic() + seconds
    pids = [child(writer, path, state, deadline),
            child(reader, path, state, deadline, 1, False),
            child(reader, path, state, deadline, 2, True),
            child(tail_reader, whole, deadline),
            child(truncater, path, deadline, 3),
            child(evictor, path, deadline),
            child(swapper, deadline)]
    failed = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        failed += status != 0
    whole.close()
    if failed:
        print(f"FAIL: {failed} process(es) failed", flush=True)
        return 1
    gen = state.done()
    # The truncater may have cut the tail after the last write.
    want = b"".join(page_bytes(p, gen) for p in range(PAGES))
    fd = os.open(path, os.O_RDWR)
    os.ftruncate(fd, PAGES * PAGE)
    for p in range(STABLE, PAGES):
        os.pwrite(fd, page_bytes(p, gen), p * PAGE)
    os.fsync(fd)
    os.close(fd)
    for where in (path, os.path.join(LOWER, "mapped")):
        with open(where, "rb") as f:
            got = f.read()
        if got != want:
            first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), None)
            print(f"FAIL: {where} is not generation {gen} (first difference at byte {first})", flush=True)
            return 1
    print(f"hotswapfs mmap: {gen} generations of {PAGES} pages written, "
          f"every mapped read verified, 0 mismatches", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
