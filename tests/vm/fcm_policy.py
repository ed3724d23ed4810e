#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The FCM's decision policy (cpu_count) end to end (run by fcm_policy.sh,
which turned it on): an FCM read on both vCPUs is swapped to distributed
by itself, with the reason logged; read on one vCPU again, it goes back to
shared."""

import fcntl
import json
import os
import struct
import subprocess
import sys
import time

TOOL = sys.argv[1]
DEV = "/dev/hotswap-file"
ATTACH = (1 << 30) | (4 << 16) | (0xB7 << 8) | 0x20
INFO = struct.Struct("<IIqQQQQQQQQQQq")
IOC_INFO = (2 << 30) | (INFO.size << 16) | (0xB7 << 8) | 0x21
PAGES = 64


def open_cached(path):
    backing = os.open(path, os.O_RDONLY)
    dev = os.open(DEV, os.O_RDONLY)
    fcntl.ioctl(dev, ATTACH, struct.pack("I", backing))
    os.close(backing)
    return dev


def implementation(object_id):
    out = subprocess.run([TOOL, "--json", "status", str(object_id)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["implementation"]


def readers(path, cpus, seconds):
    pids = []
    for cpu in cpus:
        pid = os.fork()
        if pid == 0:
            os.sched_setaffinity(0, {cpu})
            dev = open_cached(path)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for page in range(PAGES):
                    os.pread(dev, 4096, page * 4096)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)


def wait_for(object_id, impl, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if implementation(object_id) == impl:
            return True
        time.sleep(0.2)
    return False


def main():
    path = "/tmp/hotswap-policy"
    with open(path, "wb") as f:
        f.write(os.urandom(PAGES * 4096))
    keeper = open_cached(path)
    buf = bytearray(INFO.size)
    fcntl.ioctl(keeper, IOC_INFO, buf, True)
    object_id = INFO.unpack(buf)[0]
    assert implementation(object_id) == "shared"
    readers(path, (0, 1), 4)
    assert wait_for(object_id, "distributed", 5), "two CPUs did not make it distributed"
    readers(path, (0,), 6)
    assert wait_for(object_id, "shared", 6), "one CPU did not bring it back to shared"
    os.close(keeper)
    print(f"object {object_id}: shared -> distributed -> shared by the policy")


if __name__ == "__main__":
    main()
