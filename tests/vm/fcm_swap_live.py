#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Live swaps of a File Cache Manager under load (run by fcm_swap_live.sh).

Two writers (one per vCPU) rewrite their halves of a file through
/dev/hotswap-file, generation after generation; two readers (one per vCPU)
check that every 8-byte word they read names the right page; meanwhile
hswapctl swaps the FCM shared <-> distributed again and again. Afterwards
the backing file must hold exactly the last generation, and no cached page
may have been read again from the file because of a swap.
"""

import fcntl
import json
import os
import struct
import subprocess
import sys
import time

DEV = "/dev/hotswap-file"
PAGE = 4096
PAGES = 256
GENERATIONS = 25
SWAPS = 16
ATTACH = (1 << 30) | (4 << 16) | (0xB7 << 8) | 0x20
INFO = struct.Struct("<IIqQQQQQQQQQQq")
IOC_INFO = (2 << 30) | (INFO.size << 16) | (0xB7 << 8) | 0x21
TOOL = sys.argv[1]


def tool(*args):
    out = subprocess.run([TOOL, *args], capture_output=True, text=True)
    assert out.returncode == 0, f"hswapctl {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def page_bytes(page, gen):
    return struct.pack("<II", page, gen) * (PAGE // 8)


def open_cached(path):
    backing = os.open(path, os.O_RDWR)
    dev = os.open(DEV, os.O_RDWR)
    fcntl.ioctl(dev, ATTACH, struct.pack("I", backing))
    os.close(backing)
    return dev


def info(dev):
    buf = bytearray(INFO.size)
    fcntl.ioctl(dev, IOC_INFO, buf, True)
    return INFO.unpack(buf)


def writer(path, cpu, first, count):
    os.sched_setaffinity(0, {cpu})
    dev = open_cached(path)
    for gen in range(1, GENERATIONS + 1):
        for page in range(first, first + count):
            assert os.pwrite(dev, page_bytes(page, gen), page * PAGE) == PAGE
    os.close(dev)


def reader(path, cpu, stop_file):
    os.sched_setaffinity(0, {cpu})
    dev = open_cached(path)
    checked = 0
    while not os.path.exists(stop_file):
        for page in range(cpu, PAGES, 3):
            data = os.pread(dev, PAGE, page * PAGE)
            assert len(data) == PAGE, (page, len(data))
            for off in range(0, PAGE, 512):
                p, g = struct.unpack_from("<II", data, off)
                assert p == page and g <= GENERATIONS, f"page {page} word {off}: page {p} gen {g}"
            checked += 1
    os.close(dev)
    print(f"reader on cpu {cpu}: {checked} pages checked")


def main():
    path = "/tmp/hotswap-live"
    stop = "/tmp/hotswap-live.stop"
    with open(path, "wb") as f:
        for page in range(PAGES):
            f.write(page_bytes(page, 0))
    if os.path.exists(stop):
        os.remove(stop)
    keeper = open_cached(path)
    assert len(os.pread(keeper, PAGES * PAGE, 0)) == PAGES * PAGE  # all cached
    object_id, fills_before = info(keeper)[0], info(keeper)[5]

    children = []
    for cpu in (0, 1):
        pid = os.fork()
        if pid == 0:
            reader(path, cpu, stop)
            os._exit(0)
        children.append(pid)
    writers = []
    for cpu in (0, 1):
        pid = os.fork()
        if pid == 0:
            writer(path, cpu, cpu * PAGES // 2, PAGES // 2)
            os._exit(0)
        writers.append(pid)

    swaps = 0
    monitored = []
    while swaps < SWAPS or any(os.waitpid(w, os.WNOHANG) == (0, 0) for w in writers):
        target = "distributed" if swaps % 2 == 0 else "shared"
        out = subprocess.run([TOOL, "swap", "fcm", target, "--object", str(object_id)],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        swaps += 1
        if swaps == 4:
            tool("interpose", "fcm", "monitor", "--object", str(object_id))
        if swaps == 10:
            report = json.loads(tool("--json", "status", str(object_id)))["reports"]["monitor"]
            figures = dict(kv.split("=") for kv in report.split())
            assert int(figures["calls"]) > 0 and int(figures["active_cpus"]) >= 1, report
            monitored.append(report)
            tool("uninterpose", "fcm", "monitor", "--object", str(object_id))
        if swaps > 400:
            raise AssertionError("writers never finished")
    for w in writers:
        try:
            _, status = os.waitpid(w, 0)
            assert status == 0, "a writer failed"
        except ChildProcessError:
            pass
    open(stop, "w").close()
    for r in children:
        _, status = os.waitpid(r, 0)
        assert status == 0, "a reader saw a wrong page"

    fills_after = info(keeper)[5]
    assert fills_after == fills_before, f"pages read again after swaps: {fills_before} -> {fills_after}"
    status = subprocess.run([TOOL, "--json", "status", str(object_id)], capture_output=True, text=True)
    print(status.stdout)
    os.fsync(keeper)
    os.close(keeper)
    with open(path, "rb") as f:
        data = f.read()
    expected = b"".join(page_bytes(p, GENERATIONS) for p in range(PAGES))
    assert data == expected, "backing file differs from the last generation"
    assert monitored, "the monitor was never interposed (writers too fast?)"
    print(f"monitor while swapping: {monitored[0]}")
    print(f"{swaps} live swaps, {PAGES * GENERATIONS} page writes, backing file verified byte for byte")

    # Closing the last opener while a swap runs: the swap finishes or finds
    # the object gone; either way the file stays exact and nothing leaks.
    for i in range(8):
        dev = open_cached(path)
        object_id = info(dev)[0]
        os.pwrite(dev, page_bytes(i, GENERATIONS), i * PAGE)
        target = "distributed" if i % 2 == 0 else "shared"
        swap = subprocess.Popen([TOOL, "swap", "fcm", target, "--object", str(object_id)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(dev)
        swap.wait()
    with open(path, "rb") as f:
        assert f.read() == expected, "closing during swaps changed the file"
    print("closing during swaps: file intact")


if __name__ == "__main__":
    main()
