#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Module lifecycle (run by module_lifecycle.sh; argument: loop count).

Loads and unloads with the finit_module/delete_module system calls, which
give the exact errno (and cost no process per load). An unload refused
because the module is in use fails with EWOULDBLOCK (EAGAIN): the module
has users (a reference count, or modules that link against it).
"""

import ctypes
import errno
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pylib"))
import hotswap_uapi as hs  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SYS_FINIT_MODULE, SYS_DELETE_MODULE = 313, 176  # x86_64
PAGE = 4096
PAGES = 32
KUNIT_GLOB = "/sys/module/kunit/parameters/filter_glob"
libc = ctypes.CDLL(None, use_errno=True)

with open(os.path.join(ROOT, "tests", "modules")) as _f:
    MODULES = {os.path.basename(line.strip())[:-3]: os.path.join(ROOT, line.strip())
               for line in _f if line.strip() and not line.startswith("#")}


def insmod(name):
    fd = os.open(MODULES[name], os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.syscall(SYS_FINIT_MODULE, fd, b"", 0) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"insmod {name}: {os.strerror(e)}")
    finally:
        os.close(fd)


def rmmod(name):
    """0, or the errno of a refused unload."""
    if libc.syscall(SYS_DELETE_MODULE, name.encode(), os.O_NONBLOCK) != 0:
        return ctypes.get_errno()
    return 0


def loaded(name):
    return os.path.exists(f"/sys/module/{name}/refcnt")


def refcnt(name):
    with open(f"/sys/module/{name}/refcnt") as f:
        return int(f.read())


def must_refuse(name, why):
    err = rmmod(name)
    assert err == errno.EWOULDBLOCK, f"rmmod {name} ({why}): {os.strerror(err) if err else 'ok'}"
    assert loaded(name), f"{name} went away ({why})"


def must_unload(name):
    err = rmmod(name)
    assert err == 0, f"rmmod {name}: {os.strerror(err)}"
    assert not loaded(name)


def page_bytes(page, tag):
    return (page.to_bytes(4, "little") + tag.to_bytes(4, "little")) * (PAGE // 8)


def swap(ctl, object_id, target):
    _, (r,) = hs.swap(ctl, "fcm", target, object_id, 1)
    assert r["outcome"] == hs.OUTCOME_COMPLETED, (target, r)


def hotswap_objects():
    with open("/sys/kernel/debug/hotswap/stats") as f:
        return int(dict(kv.split("=") for kv in f.read().split())["objects"])


def check(dev, tags):
    data = os.pread(dev, len(tags) * PAGE, 0)
    assert data == b"".join(page_bytes(p, t) for p, t in enumerate(tags)), "content differs"
    info = hs.file_info(dev)
    assert info["allocated"] == info["freed"] + info["cached"], info
    return info


def must_not_load(name, why):
    try:
        insmod(name)
    except OSError:
        assert not loaded(name), f"{name} is loaded although its insmod failed"
        return
    raise AssertionError(f"insmod {name} ({why}): loaded")


def refusals(path):
    """Who may load and unload when; the cached file stays exact throughout."""
    must_not_load("hotswap_fcm", "without hotswap")
    insmod("hotswap")
    for m in ("fcm_shared", "fcm_faulty"):
        must_not_load(m, "without hotswap_fcm: no fcm interface")
    insmod("hotswap_fcm")
    must_refuse("hotswap", "hotswap_fcm links against it")
    for m in ("fcm_shared", "fcm_distributed", "fcm_faulty"):
        insmod(m)
    must_refuse("hotswap_fcm", "FCM modules link against it")
    base = refcnt("hotswap")
    fcm_base = refcnt("hotswap_fcm")
    ctl = os.open(hs.CONTROL, os.O_RDWR)
    dev = hs.open_cached(path, os.O_RDWR)
    object_id = hs.file_info(dev)["object"]
    tags = [0] * PAGES
    os.pwrite(dev, page_bytes(0, 7), 0)  # a dirty page in the state
    tags[0] = 7
    check(dev, tags)
    assert refcnt("fcm_shared") == 1, "an FCM on shared pins fcm_shared once"
    assert refcnt("hotswap") >= base + 1, "the object pins hotswap"
    assert refcnt("hotswap_fcm") >= fcm_base + 1, "the open /dev/hotswap-file pins hotswap_fcm"

    must_refuse("fcm_shared", "its implementation serves a live object")
    must_refuse("hotswap_fcm", "a live FCM and an open /dev/hotswap-file")
    must_refuse("hotswap", "live objects")
    assert os.path.exists("/dev/hotswap-file") and os.path.exists(hs.CONTROL)
    check(dev, tags)

    swap(ctl, object_id, "distributed")
    assert refcnt("fcm_shared") == 0
    must_unload("fcm_shared")  # swapped away from: free to go
    check(dev, tags)
    must_refuse("fcm_distributed", "its implementation now serves the object")
    try:
        swap(ctl, object_id, "shared")
        raise AssertionError("swapped to an unloaded implementation")
    except OSError as e:
        assert e.errno == errno.ENOENT, e
    swap(ctl, object_id, "faulty")
    must_unload("fcm_distributed")
    insmod("fcm_shared")
    swap(ctl, object_id, "shared")
    must_unload("fcm_faulty")
    check(dev, tags)
    os.close(ctl)
    must_refuse("hotswap_fcm", "a live FCM")
    must_refuse("hotswap", "a live object")
    os.close(dev)  # the last opener: written back, object destroyed
    assert hotswap_objects() == 0
    must_refuse("hotswap_fcm", "fcm_shared links against it")
    must_unload("fcm_shared")
    must_refuse("hotswap", "hotswap_fcm links against it")
    must_unload("hotswap_fcm")
    must_unload("hotswap")
    with open(path, "rb") as f:
        assert f.read(8) == page_bytes(0, 7)[:8], "the dirty page was not written back"
    print("refusals: implementations without hotswap_fcm refused to load; in-use implementation, "
          "hotswap_fcm and hotswap refused to unload (EWOULDBLOCK); swapped-away implementations unloaded")


def one_round(path, n, tags):
    """Load the stack, cache the file, swap, unload a module mid-life, close, unload."""
    for m in ("hotswap", "hotswap_fcm", "fcm_shared", "fcm_distributed"):
        insmod(m)
    ctl = os.open(hs.CONTROL, os.O_RDWR)
    dev = hs.open_cached(path, os.O_RDWR)
    object_id = hs.file_info(dev)["object"]
    page = n % PAGES
    os.pwrite(dev, page_bytes(page, n), page * PAGE)
    tags[page] = n
    os.pread(dev, PAGES * PAGE, 0)
    swap(ctl, object_id, "distributed")
    must_unload("fcm_shared")
    info = check(dev, tags)
    assert info["cached"] == PAGES and info["dirty"] == 1, info
    os.close(ctl)
    os.close(dev)
    assert hotswap_objects() == 0
    must_unload("fcm_distributed")
    must_unload("hotswap_fcm")
    must_unload("hotswap")
    with open(path, "rb") as f:
        assert f.read() == b"".join(page_bytes(p, t) for p, t in enumerate(tags)), \
            f"round {n}: the backing file is not what was written"


def memory():
    """(slab bytes in use, free pages) now."""
    slab = 0
    with open("/proc/slabinfo") as f:
        for line in f.readlines()[2:]:
            fields = line.split()
            slab += int(fields[1]) * int(fields[3])
    with open("/proc/meminfo") as f:
        mem = dict(line.split(":") for line in f)
    return slab, int(mem["MemFree"].split()[0])


def main():
    sys.stdout.reconfigure(line_buffering=True)  # progress shows even if killed
    loops = int(sys.argv[1])
    start = time.monotonic()
    path = "/tmp/hotswap-lifecycle"
    with open(path, "wb") as f:
        for p in range(PAGES):
            f.write(page_bytes(p, 0))
    refusals(path)
    tags = [7] + [0] * (PAGES - 1)

    # Each load would rerun the modules' KUnit suites (already run and
    # saved by the runner): filter them all out while looping.
    with open(KUNIT_GLOB) as f:
        glob = f.read().strip()
    with open(KUNIT_GLOB, "w") as f:
        f.write("hotswap_lifecycle_runs_no_suite")
    try:
        warm = 3
        for n in range(1, warm + 1):
            one_round(path, n, tags)
        before = memory()
        t0 = time.monotonic()
        for n in range(warm + 1, warm + loops + 1):
            one_round(path, n, tags)
        per_round = (time.monotonic() - t0) / max(loops, 1)
        after = memory()
    finally:
        with open(KUNIT_GLOB, "w") as f:
            f.write("*" if glob == "(null)" else glob)
    slab_growth = after[0] - before[0]
    free_drop_kb = before[1] - after[1]
    print(f"{loops} rounds ({per_round * 1000:.0f} ms each): slab {before[0] // 1024} -> "
          f"{after[0] // 1024} KiB, free {before[1]} -> {after[1]} KiB")
    # A leak of one object per round shows as `loops` objects; a leaked
    # cache (PAGES pages) per round as loops * 128 KiB.
    assert slab_growth < 64 * 1024 + 512 * loops, f"slab grew by {slab_growth} bytes"
    assert free_drop_kb < 2048 + 16 * loops, f"free memory dropped by {free_drop_kb} KiB"
    print(f"module lifecycle: {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    main()
