#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""FCM memory behaves like page-cache memory (run by fcm_memory.sh):

  nobody       user 65534 reads 24 sparse 64 MiB files through the device
               at once (1.5 GiB, in a 1 GiB VM): no OOM kill and no
               allocation failure, FCM pages never above the budget (root
               samples debugfs meanwhile), nor above the user's share of
               it (hotswap_fcm.user_percent, set to 25), every byte right.
               Before the budget, 13 such files took the VM into the OOM
               killer.
  drop_caches  `echo 2 > drop_caches` frees an FCM's clean pages; its
               dirty pages stay (or are written back first) and every
               byte stays right, in the cache and, after fsync, on disk.
  cgroup       a reader in a cgroup with memory.max=64M reads a 200 MB
               file through an unbounded FCM: the cgroup stays within its
               limit with no OOM, the bytes are right, and an FCM of
               another cgroup keeps every page.
  hog          FCMs hold $HOTSWAP_MEMORY_HOG_MIBS (200; make stress: 300)
               MiB of dirty pages of files on a disk-backed filesystem when
               a hog takes 80% of RAM: no OOM, the FCMs shrink, and every
               dirty byte reaches its file.

Sparse files live in the guest's /tmp (holes cost no memory); the hog's
files on the host's disk ($HOTSWAP_SCRATCH: writing them back must not
take guest memory). Usage: fcm_memory.py CASE...
"""

import json
import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../pylib"))
import hotswap_uapi as uapi  # noqa: E402

PAGE = 4096
MIB = 1 << 20
MEMORY = "/sys/kernel/debug/hotswap_fcm/memory"
BUDGET = "/sys/module/hotswap_fcm/parameters/budget_pages"
USER_PERCENT = "/sys/module/hotswap_fcm/parameters/user_percent"
CGROUP = "/sys/fs/cgroup"


CHILDREN = []


def fail(msg):
    print("FAIL:", msg)
    for pid in CHILDREN:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def figures():
    """The global line of debugfs's memory file, as a dict of ints."""
    with open(MEMORY) as f:
        first = f.readline()
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", first)}


def marker(tag, mib):
    """The bytes at the start of MiB `mib` of file `tag` (the rest is a hole)."""
    return struct.pack("<QQ", tag, mib) * 4


def sparse_file(path, tag, mibs):
    """A sparse file of `mibs` MiB with a marker at the start of each MiB."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, mibs * MIB)
    for m in range(mibs):
        os.pwrite(fd, marker(tag, m), m * MIB)
    os.close(fd)


def expected_mib(tag, m):
    mark = marker(tag, m)
    return mark + bytes(MIB - len(mark))


def read_all_checked(dev, tag, mibs):
    """Reads a sparse_file through `dev` a MiB at a time and checks it."""
    for m in range(mibs):
        got = os.pread(dev, MIB, m * MIB)
        if got != expected_mib(tag, m):
            fail(f"file {tag}: MiB {m} read wrong ({len(got)} bytes)")


def kernel_log_since(mark):
    log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    return log[mark:], len(log)


def log_mark():
    return len(subprocess.run(["dmesg"], capture_output=True, text=True).stdout)


def check_no_oom(mark):
    log, _ = kernel_log_since(mark)
    for bad in ("page allocation failure", "Out of memory", "oom-kill", "invoked oom-killer"):
        check(bad not in log, f"kernel log: {bad!r}")


def sampler(stop_path, out_path):
    """Child: records the most FCM pages seen until `stop_path` exists."""
    most = 0
    while not os.path.exists(stop_path):
        most = max(most, figures()["used_pages"])
        time.sleep(0.05)
    with open(out_path, "w") as f:
        f.write(str(max(most, figures()["used_pages"])))


def spawn(fn, *args):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn(*args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException as e:  # noqa: BLE001 - report anything
            print("child failed:", repr(e))
            code = 1
        os._exit(code)
    CHILDREN.append(pid)
    return pid


def wait_ok(pid, what):
    _, status = os.waitpid(pid, 0)
    CHILDREN.remove(pid)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"{what} failed ({status:#x})")


def case_nobody(base):
    files, mibs = 24, 64
    d = os.path.join(base, "nobody")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    for i in range(files):
        sparse_file(f"{d}/f{i}", i, mibs)
    mark = log_mark()
    stop, most = f"{d}/stop", f"{d}/most"
    budget = figures()["budget_pages"]
    with open(USER_PERCENT, "w") as pct:
        pct.write("25\n")
    share = budget * 25 // 100
    # Room one 256 KiB segment makes for itself, and the slack past it.
    slack = 2 * (64 + 2) + share // 64
    sampling = spawn(sampler, stop, most)

    def reader():
        os.setgid(65534)
        os.setuid(65534)
        devs = [uapi.open_cached(f"{d}/f{i}") for i in range(files)]
        for i, dev in enumerate(devs):
            read_all_checked(dev, i, mibs)
        # Everything is still open: the budget, not closing, bounded it.
        total = sum(uapi.file_info(dev)["cached"] for dev in devs)
        check(total <= share + slack, f"{total} pages cached, user share {share}")
        for dev in devs:
            os.close(dev)

    wait_ok(spawn(reader), "reader as nobody")
    open(stop, "w").close()
    wait_ok(sampling, "sampler")
    seen = int(open(most).read())
    f = figures()
    print(f"nobody: {files} x {mibs} MiB read, most FCM pages {seen}, budget {budget}, "
          f"user share {share}, "
          f"reclaimed for the budget {f['reclaimed_budget']}, refused {f['refused']}")
    check(seen <= budget, f"FCM pages reached {seen}, budget {budget}")
    check(seen <= share + slack, f"user 65534's FCMs reached {seen} pages, share {share}")
    with open(USER_PERCENT, "w") as pct:
        pct.write("50\n")
    check(f["reclaimed_budget"] > 0, "nothing was reclaimed for the budget")
    check_no_oom(mark)
    for i in range(files):
        os.unlink(f"{d}/f{i}")


def case_drop_caches(base):
    path = os.path.join(base, "dropped")
    pages = 2048
    content = bytearray(os.urandom(pages * PAGE))
    with open(path, "wb") as f:
        f.write(content)
    dev = uapi.open_cached(path, os.O_RDWR)
    check(len(os.pread(dev, pages * PAGE, 0)) == pages * PAGE, "short read")
    dirty = list(range(0, pages, 20))
    for p in dirty:
        new = struct.pack("<Q", p) * (PAGE // 8)
        os.pwrite(dev, new, p * PAGE)
        content[p * PAGE:(p + 1) * PAGE] = new
    info = uapi.file_info(dev)
    check((info["cached"], info["dirty"]) == (pages, len(dirty)), f"before: {info}")
    # What hswapctl shows of it: the object's pages, in list and memory.
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "../../tools/hswapctl/target/release/hswapctl")
    listed = json.loads(subprocess.run([tool, "--json", "list"], capture_output=True,
                                       text=True, check=True).stdout)
    mine = [o for o in listed["objects"] if o["id"] == info["object"]]
    check(mine and mine[0]["pages"] == pages, f"hswapctl list: {mine}")
    shown = json.loads(subprocess.run([tool, "--json", "memory"], capture_output=True,
                                      text=True, check=True).stdout)
    check({"id": info["object"], "pages": pages} in shown["objects"], f"hswapctl memory: {shown}")
    check(shown["used_pages"] >= pages, f"hswapctl memory: {shown}")
    before = figures()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    info = uapi.file_info(dev)
    after = figures()
    freed = after["reclaimed_pressure"] - before["reclaimed_pressure"]
    print(f"drop_caches: {pages} pages, {len(dirty)} dirty -> cached {info['cached']}, "
          f"dirty {info['dirty']}, {freed} reclaimed")
    check(info["cached"] <= len(dirty), f"clean pages stayed: {info}")
    check(freed >= pages - len(dirty), f"only {freed} pages reclaimed")
    check(os.pread(dev, pages * PAGE, 0) == content, "bytes changed in the cache")
    os.fsync(dev)
    with open(path, "rb") as f:
        check(f.read() == content, "bytes on disk wrong after fsync")
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    check(uapi.file_info(dev)["cached"] == 0, "written-back pages were not dropped")
    os.close(dev)
    os.unlink(path)


def cgroup_dir(name):
    path = os.path.join(CGROUP, name)
    os.makedirs(path, exist_ok=True)
    return path


def case_cgroup(base):
    if not os.path.exists(os.path.join(CGROUP, "cgroup.controllers")):
        subprocess.run(["mount", "-t", "cgroup2", "none", CGROUP], check=True)
    with open(os.path.join(CGROUP, "cgroup.subtree_control"), "w") as f:
        f.write("+memory\n")
    small, other = cgroup_dir("hotswap-small"), cgroup_dir("hotswap-other")
    limit = 64 * MIB
    with open(os.path.join(small, "memory.max"), "w") as f:
        f.write(f"{limit}\n")
    d = os.path.join(base, "cgroup")
    os.makedirs(d, exist_ok=True)
    sparse_file(f"{d}/big", 1, 200)
    sparse_file(f"{d}/kept", 2, 32)
    r, w = os.pipe()
    go_r, go_w = os.pipe()

    def keeper():
        with open(os.path.join(other, "cgroup.procs"), "w") as f:
            f.write(f"{os.getpid()}\n")
        dev = uapi.open_cached(f"{d}/kept")
        read_all_checked(dev, 2, 32)
        before = uapi.file_info(dev)
        os.write(w, b"x")
        os.read(go_r, 1)
        after = uapi.file_info(dev)
        read_all_checked(dev, 2, 32)
        again = uapi.file_info(dev)
        check(after["cached"] == before["cached"] == 32 * MIB // PAGE,
              f"other cgroup's FCM lost pages: {before['cached']} -> {after['cached']}")
        check(again["fills"] == before["fills"], "other cgroup's FCM read pages again")

    def reader():
        with open(os.path.join(small, "cgroup.procs"), "w") as f:
            f.write(f"{os.getpid()}\n")
        dev = uapi.open_cached(f"{d}/big")
        read_all_checked(dev, 1, 200)
        info = uapi.file_info(dev)
        check(info["cached"] * PAGE < limit, f"{info['cached']} pages cached in a 64M cgroup")
        print(f"cgroup: 200 MB read in a 64M cgroup, {info['cached']} pages cached at the end, "
              f"{info['evictions']} evicted")

    keeping = spawn(keeper)
    os.read(r, 1)
    mark = log_mark()
    wait_ok(spawn(reader), "reader in the small cgroup")
    os.write(go_w, b"x")
    wait_ok(keeping, "keeper in the other cgroup")
    events = dict(line.split() for line in open(os.path.join(small, "memory.events")))
    peak_path = os.path.join(small, "memory.peak")
    peak = int(open(peak_path).read()) if os.path.exists(peak_path) else 0
    print(f"cgroup: peak {peak // MIB} MiB of {limit // MIB}, events {events}")
    check(int(events.get("oom_kill", 0)) == 0, f"OOM kill in the cgroup: {events}")
    check(peak <= limit, f"peak {peak} above the limit")
    check_no_oom(mark)
    os.rmdir(small)
    os.rmdir(other)
    os.unlink(f"{d}/big")
    os.unlink(f"{d}/kept")


def meminfo(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def hog(target):
    """Child: takes `target` bytes of anonymous memory, 16 MiB at a time."""
    chunks = []
    while sum(len(c) for c in chunks) < target:
        chunk = bytearray(16 * MIB)
        for i in range(0, len(chunk), PAGE):
            chunk[i] = 1
        chunks.append(chunk)
    print(f"hog: holding {sum(len(c) for c in chunks) // MIB} MiB")


def case_hog(base):
    mibs = 50
    files = max(1, int(os.environ.get("HOTSWAP_MEMORY_HOG_MIBS", "200")) // mibs)
    d = os.path.join(base, "hog")
    os.makedirs(d, exist_ok=True)
    with open(BUDGET) as f:
        old_budget = f.read().strip()
    with open(BUDGET, "w") as f:
        f.write(f"{(files * mibs + 40) * MIB // PAGE}\n")
    devs, patterns = [], []
    for i in range(files):
        path = f"{d}/f{i}"
        open(path, "wb").close()
        dev = uapi.open_cached(path, os.O_RDWR)
        block = struct.pack("<QQ", i, 0xDA7A) * (MIB // 16)
        for m in range(mibs):
            os.pwrite(dev, block, m * MIB)
        devs.append(dev)
        patterns.append(block)
    dirty = sum(uapi.file_info(dev)["dirty"] for dev in devs)
    check(dirty * PAGE >= files * mibs * MIB * 9 // 10, f"only {dirty} dirty pages")
    mark = log_mark()
    target = meminfo("MemTotal") * 8 // 10
    wait_ok(spawn(hog, target), "hog")
    cached = sum(uapi.file_info(dev)["cached"] for dev in devs)
    f = figures()
    print(f"hog: {dirty} dirty pages before, {cached} cached after a {target // MIB} MiB hog; "
          f"reclaimed under pressure {f['reclaimed_pressure']}")
    check(cached < dirty, "the FCMs did not shrink")
    check_no_oom(mark)
    for dev in devs:
        os.fsync(dev)
        os.close(dev)
    for i in range(files):
        with open(f"{d}/f{i}", "rb") as fh:
            for m in range(mibs):
                check(fh.read(MIB) == patterns[i], f"file {i}: MiB {m} did not reach the disk")
        os.unlink(f"{d}/f{i}")
    with open(BUDGET, "w") as f:
        f.write(old_budget + "\n")


def case_dirty_budget(base):
    """A writer fills the budget with dirty pages of one file; a reader of
    another file must still get its bytes (the budget writes the dirty
    pages back rather than fail the reader with ENOMEM)."""
    with open(BUDGET) as f:
        old_budget = f.read().strip()
    budget = 2048
    with open(BUDGET, "w") as f:
        f.write(f"{budget}\n")
    d = os.path.join(base, "dirty_budget")
    os.makedirs(d, exist_ok=True)
    written = f"{d}/written"
    open(written, "wb").close()
    wdev = uapi.open_cached(written, os.O_RDWR)
    block = struct.pack("<Q", 0x5EED) * (MIB // 8)
    for m in range(budget * PAGE // MIB + 4):
        os.pwrite(wdev, block, m * MIB)
    dirty = uapi.file_info(wdev)["dirty"]
    sparse_file(f"{d}/read", 3, 8)
    rdev = uapi.open_cached(f"{d}/read")
    try:
        read_all_checked(rdev, 3, 8)
    except OSError as e:
        fail(f"a reader failed with {e} while {dirty} dirty pages filled the budget")
    print(f"dirty_budget: {dirty} dirty pages of {budget} did not stop a reader")
    os.fsync(wdev)
    os.close(wdev)
    os.close(rdev)
    with open(written, "rb") as fh:
        check(fh.read() == block * (budget * PAGE // MIB + 4), "written file wrong")
    with open(BUDGET, "w") as f:
        f.write(old_budget + "\n")


CASES = {
    "dirty_budget": case_dirty_budget,
    "nobody": case_nobody,
    "drop_caches": case_drop_caches,
    "cgroup": case_cgroup,
    "hog": case_hog,
}

if __name__ == "__main__":
    scratch = os.environ.get("HOTSWAP_SCRATCH")
    if not scratch:
        fail("HOTSWAP_SCRATCH (a directory on a disk, not in memory) is not set")
    for name in sys.argv[1:]:
        base = scratch if name == "hog" else "/tmp/hotswap-memory"
        os.makedirs(base, exist_ok=True)
        started = time.monotonic()
        CASES[name](base)
        print(f"ok {name} ({time.monotonic() - started:.1f} s)")
