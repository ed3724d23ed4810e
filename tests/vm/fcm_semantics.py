#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""What a cached file promises, each case a defect once (run by
fcm_semantics.sh with hotswap.ko, hotswap_fcm.ko and both FCMs loaded; the FCM
implementation under test is the default, which the script sets):

  append_backing      a backing file opened O_RDWR|O_APPEND: write-back
                      lands where the cache says, not at EOF
  direct_backing      O_DIRECT backing file (ext4): plain write-back
  opener_dependent    proc, sysfs and debugfs files are refused (a PCI
                      config file shows root more than anyone else)
  faulting_buffers    a source buffer whose tail is unmapped: EFAULT or
                      a short count, and the cache holds exactly that
  write_limits        RLIMIT_FSIZE (SIGXFSZ, EFBIG, short writes) and the
                      backing filesystem's s_maxbytes
  write_back_errors   a full filesystem: fsync and close report ENOSPC,
                      once per opener, and the data is kept
  truncate            the truncate ioctl, shrinking and growing
  device_append       O_APPEND on the device: every write at the end
  frozen_neighbour    a close stuck writing back to a frozen filesystem
                      stalls no other file's users
  killed_closer       a closer killed while its last write-back waits:
                      the data still reaches the file
  append_only         a chattr +a file cannot be attached for writing
  shared_descriptor   two threads write(2) on one descriptor: no record
                      lands on another
  limited_reader      a reader with a small RLIMIT_FSIZE that makes dirty
                      pages go is neither signalled nor makes their
                      write-back fail

Usage: fcm_semantics.py [CASE...] (default: all). Exits non-zero on the
first failed case.
"""

import ctypes
import errno
import glob
import os
import resource
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../pylib"))
import hotswap_mem as mem  # noqa: E402
import hotswap_uapi as uapi  # noqa: E402

PAGE = 4096
TMP = "/tmp/hotswap-semantics"
EXT4 = "/tmp/hotswap-ext4"
SMALL = "/tmp/hotswap-small"

def fail(msg):
    raise AssertionError(msg)


def expect_errno(code, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        if e.errno != code:
            fail(f"{fn.__name__}: expected {errno.errorcode[code]}, got {errno.errorcode.get(e.errno)}")
        return
    fail(f"{fn.__name__}{args[:2]}: expected {errno.errorcode[code]}, succeeded")


def make(path, data):
    with open(path, "wb") as f:
        f.write(data)


def contents(path):
    with open(path, "rb") as f:
        return f.read()


attach = uapi.attach


def attached(path, backing_flags, dev_flags=os.O_RDWR):
    """A device descriptor attached to `path` opened with `backing_flags`."""
    return uapi.open_cached(path, backing_flags, dev_flags)


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def mount_ext4():
    if os.path.ismount(EXT4):
        return
    os.makedirs(EXT4, exist_ok=True)
    image = "/run/hotswap-ext4.img"  # /run is tmpfs in the guest
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    run("mkfs.ext4", "-q", "-F", image)
    # `mount -o loop` fails here ("Can't open blockdev"); losetup first works.
    loop = subprocess.run(["losetup", "-f", "--show", image], check=True,
                          capture_output=True, text=True).stdout.strip()
    run("mount", "-t", "ext4", loop, EXT4)


def case_append_backing():
    path = f"{TMP}/append"
    make(path, b"a" * (2 * PAGE))
    dev = attached(path, os.O_RDWR | os.O_APPEND)
    assert os.pwrite(dev, b"BEGIN", 0) == 5
    assert os.pwrite(dev, b"MIDDLE", PAGE + 7) == 6
    os.fsync(dev)
    data = contents(path)
    if len(data) != 2 * PAGE:
        fail(f"write-back through an O_APPEND file grew it to {len(data)} bytes")
    if data[:5] != b"BEGIN" or data[PAGE + 7:PAGE + 13] != b"MIDDLE":
        fail("write-back through an O_APPEND file misplaced the bytes")
    os.close(dev)


def case_direct_backing():
    mount_ext4()
    path = f"{EXT4}/direct"
    make(path, b"d" * (3 * PAGE))
    dev = attached(path, os.O_RDWR | os.O_DIRECT)
    # Unaligned, odd-sized: an O_DIRECT file would refuse these.
    assert os.pwrite(dev, b"unaligned", 3) == 9
    os.fsync(dev)
    os.close(dev)
    data = contents(path)
    assert data[3:12] == b"unaligned" and len(data) == 3 * PAGE, "write-back through O_DIRECT"


def case_opener_dependent():
    refused = ["/proc/self/status", "/proc/version"]
    refused += glob.glob("/sys/bus/pci/devices/*/config")[:2]
    refused += [p for p in ("/sys/kernel/debug/hotswap/objects",) if os.path.exists(p)]
    for path in refused:
        dev = os.open(uapi.FILE_DEVICE, os.O_RDONLY)
        backing = os.open(path, os.O_RDONLY)
        try:
            expect_errno(errno.EOPNOTSUPP, attach, dev, backing)
        finally:
            os.close(backing)
            os.close(dev)
    # Ordinary filesystems stay cacheable.
    mount_ext4()
    for path in (f"{TMP}/plain", f"{EXT4}/plain"):
        make(path, b"plain")
        dev = attached(path, os.O_RDONLY, os.O_RDONLY)
        assert os.pread(dev, 5, 0) == b"plain"
        os.close(dev)


def case_faulting_buffers():
    path = f"{TMP}/fault"
    base = bytes((i * 7) % 251 + 1 for i in range(4 * PAGE))
    make(path, base)
    dev = attached(path, os.O_RDWR)
    holey = mem.HoleyBuffer(1)
    addr = holey.place(b"\x5a" * PAGE, PAGE)  # one full page, then the hole
    # A whole page whose source runs into the hole: nothing is written.
    n = mem.raw_pwrite(dev, addr + PAGE // 2, PAGE, 0)
    if n != -errno.EFAULT:
        fail(f"a whole-page write from a half-mapped buffer returned {n}, not EFAULT")
    if os.pread(dev, PAGE, 0) != base[:PAGE]:
        fail("a faulting whole-page write left zeros (or anything) in the cache")
    # Half a page lands, then the source faults: a short write, exactly
    # that much cached and written back.
    n = mem.raw_pwrite(dev, addr + PAGE // 2, PAGE, PAGE + PAGE // 2)
    if n != PAGE // 2:
        fail(f"a write that faults half-way returned {n}, not {PAGE // 2}")
    want = bytearray(base)
    want[PAGE + PAGE // 2:2 * PAGE] = b"\x5a" * (PAGE // 2)
    # Past EOF: the file must not grow when nothing could be copied.
    n = mem.raw_pwrite(dev, addr + PAGE, 100, 10 * PAGE)
    if n != -errno.EFAULT:
        fail(f"a write past EOF from an unmapped buffer returned {n}")
    if os.lseek(dev, 0, os.SEEK_END) != 4 * PAGE:
        fail("a faulting write past EOF grew the file")
    if os.pread(dev, 4 * PAGE, 0) != want:
        fail("the cache does not hold exactly what the short write copied")
    os.fsync(dev)
    os.close(dev)
    if contents(path) != want:
        fail("the file does not hold exactly what the short write copied")
    holey.close()


def in_child(fn):
    """Runs `fn` in a child process; fails if it raised."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - report, then exit
            print(f"child: {e!r}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        fail(f"{fn.__name__} failed in a child (status {status})")


def case_write_limits():
    path = f"{TMP}/limits"
    make(path, b"l" * 100)

    def limited():
        # Blocked, so the signal stays pending where the test can see it.
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGXFSZ])
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
        dev = attached(path, os.O_RDWR)
        expect_errno(errno.EFBIG, os.pwrite, dev, b"x" * 100, 20_000)
        assert signal.SIGXFSZ in signal.sigpending(), "no SIGXFSZ past RLIMIT_FSIZE"
        signal.sigtimedwait([signal.SIGXFSZ], 0)
        n = os.pwrite(dev, b"y" * 100, 9_950)
        assert n == 50, f"a write across RLIMIT_FSIZE wrote {n} bytes, not 50"
        assert os.lseek(dev, 0, os.SEEK_END) == 10_000
        os.close(dev)

    in_child(limited)
    assert len(contents(path)) == 10_000
    # ext4's s_maxbytes (16 TiB with 4 KiB blocks) is below the VFS limit.
    mount_ext4()
    big = f"{EXT4}/big"
    make(big, b"b")
    dev = attached(big, os.O_RDWR)
    expect_errno(errno.EFBIG, os.pwrite, dev, b"z", 1 << 45)
    assert os.lseek(dev, 0, os.SEEK_END) == 1, "a refused write changed the size"
    os.close(dev)


def case_write_back_errors():
    os.makedirs(SMALL, exist_ok=True)
    if not os.path.ismount(SMALL):
        run("mount", "-t", "tmpfs", "-o", "size=64k", "none", SMALL)
    path = f"{SMALL}/full"
    make(path, b"")
    writer = attached(path, os.O_RDWR)
    other = attached(path, os.O_RDWR)
    payload = bytes(range(256)) * 1024  # 256 KiB: four times the filesystem
    assert os.pwrite(writer, payload, 0) == len(payload), "the cache takes the write"
    expect_errno(errno.ENOSPC, os.fsync, writer)
    # Each opener hears of each failure once; the data stays cached.
    expect_errno(errno.ENOSPC, os.fsync, other)
    assert os.pread(writer, 256, len(payload) - 256) == payload[-256:]
    info = uapi.file_info(writer)
    assert info["wb_errors"] > 0 and info["dirty"] > 0, info
    expect_errno(errno.ENOSPC, os.close, other)
    # Room again: the kept pages reach the file. The writer first hears of
    # the failures the other opener's fsync and close ran into.
    # mount(2) from this process: a forked mount(8) would close its copies
    # of our descriptors at exec, and that close (a flush, like any close
    # of a descriptor open for writing) would write back and run into the
    # full filesystem itself (it no longer takes the writer's report, as
    # hotswapfs_attacks' fsync_errors checks; the remount keeps this case
    # free of that write-back all the same).
    libc = mem.libc
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    if libc.mount(b"none", SMALL.encode(), b"tmpfs", 32, b"size=1m") != 0:  # MS_REMOUNT
        fail(f"remount failed: {os.strerror(ctypes.get_errno())}")
    expect_errno(errno.ENOSPC, os.fsync, writer)
    os.fsync(writer)
    os.close(writer)
    if contents(path) != payload:
        fail("pages kept after a failed write-back did not reach the file")
    os.remove(path)


def case_truncate():
    path = f"{TMP}/truncate"
    base = bytes((i * 3) % 251 + 1 for i in range(5 * PAGE))
    make(path, base)
    dev = attached(path, os.O_RDWR)
    assert os.pread(dev, 5 * PAGE, 0) == base
    os.pwrite(dev, b"dirty past the cut", 4 * PAGE + 8)
    uapi.truncate(dev, 2 * PAGE + 10)
    assert os.lseek(dev, 0, os.SEEK_END) == 2 * PAGE + 10
    assert os.pread(dev, 5 * PAGE, 0) == base[:2 * PAGE + 10]
    assert contents(path) == base[:2 * PAGE + 10], "the backing file is cut at once"
    uapi.truncate(dev, 3 * PAGE)
    assert os.pread(dev, PAGE, 2 * PAGE) == base[2 * PAGE:2 * PAGE + 10] + bytes(PAGE - 10)
    os.fsync(dev)
    assert contents(path) == base[:2 * PAGE + 10] + bytes(PAGE - 10)
    reader = attached(path, os.O_RDONLY, os.O_RDONLY)
    expect_errno(errno.EBADF, uapi.truncate, reader, 0)
    expect_errno(errno.EINVAL, uapi.truncate, dev, 1 << 63)
    info = uapi.file_info(dev)
    assert info["allocated"] == info["freed"] + info["cached"], info
    os.close(reader)
    os.close(dev)


def case_device_append():
    path = f"{TMP}/devappend"
    make(path, b"0123")
    dev = attached(path, os.O_RDWR, os.O_RDWR | os.O_APPEND)
    plain = attached(path, os.O_RDWR)
    os.write(dev, b"4567")
    os.pwrite(plain, b"89", 8)
    os.write(dev, b"ab")
    os.close(plain)
    os.close(dev)
    assert contents(path) == b"0123456789ab", contents(path)


def case_frozen_neighbour():
    mount_ext4()
    stuck = f"{EXT4}/frozen"
    make(stuck, b"f" * PAGE)
    elsewhere = f"{TMP}/elsewhere"
    make(elsewhere, b"e" * PAGE)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # Writes a page, then closes once the filesystem is frozen: the
        # close writes back and waits for the thaw.
        dev = attached(stuck, os.O_RDWR)
        os.pwrite(dev, b"written before the freeze", 0)
        os.write(ready_w, b"1")
        os.read(go_r, 1)
        os.close(dev)
        os._exit(0)
    os.read(ready_r, 1)
    run("fsfreeze", "-f", EXT4)
    try:
        os.write(go_w, b"1")
        time.sleep(1)
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            fail("the close did not wait for the frozen filesystem (nothing tested)")
        # Another file's users go on meanwhile: attach, read, write, close.
        helper = os.fork()
        if helper == 0:
            dev = attached(elsewhere, os.O_RDWR)
            ok = os.pread(dev, 4, 0) == b"eeee" and os.pwrite(dev, b"E", 0) == 1
            os.close(dev)
            os._exit(0 if ok else 1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(helper, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            fail("a close stuck on a frozen filesystem stalled another file's users")
        if status != 0:
            fail("the other file's users failed")
    finally:
        run("fsfreeze", "-u", EXT4)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        fail("the stuck close failed after the thaw")
    if not contents(stuck).startswith(b"written before the freeze"):
        fail("the write-back after the thaw lost the page")


def case_killed_closer():
    mount_ext4()
    path = f"{EXT4}/killed"
    make(path, b"k" * PAGE)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        dev = attached(path, os.O_RDWR)
        os.pwrite(dev, b"written before the kill", 0)
        os.write(ready_w, b"1")
        time.sleep(3600)
        os._exit(0)
    os.read(ready_r, 1)
    run("fsfreeze", "-f", EXT4)
    try:
        # Its exit closes the descriptor: the write-back waits for the thaw
        # with SIGKILL pending, and the writes it then makes fail (EINTR).
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
    finally:
        run("fsfreeze", "-u", EXT4)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 20
    while not contents(path).startswith(b"written before the kill"):
        if time.monotonic() > deadline:
            fail("a closer killed during its last write-back lost the data")
        time.sleep(0.2)


def case_append_only():
    mount_ext4()
    path = f"{EXT4}/log"
    make(path, b"log line\n")
    run("chattr", "+a", path)
    try:
        dev = os.open(uapi.FILE_DEVICE, os.O_RDWR)
        backing = os.open(path, os.O_RDWR | os.O_APPEND)
        try:
            expect_errno(errno.EPERM, attach, dev, backing)
        finally:
            os.close(backing)
            os.close(dev)
        reader = attached(path, os.O_RDONLY, os.O_RDONLY)
        assert os.pread(reader, 100, 0) == b"log line\n"
        os.close(reader)
        assert contents(path) == b"log line\n"
    finally:
        run("chattr", "-a", path)


def case_shared_descriptor():
    import threading
    path = f"{TMP}/shared_fd"
    make(path, b"")
    dev = attached(path, os.O_RDWR)
    per_thread, record = 2000, 8

    def writer(tag):
        for i in range(per_thread):
            os.write(dev, bytes([tag]) * record)

    threads = [threading.Thread(target=writer, args=(t,)) for t in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.fsync(dev)
    os.close(dev)
    data = contents(path)
    if len(data) != 2 * per_thread * record:
        fail(f"two writers on one descriptor wrote {len(data)} bytes, not {2 * per_thread * record}")
    counts = [data.count(bytes([t]) * record) for t in (1, 2)]
    if counts != [per_thread, per_thread]:
        fail(f"records overwrote each other: {counts}")


def case_limited_reader():
    path = f"{TMP}/limited_reader"
    make(path, b"r" * (64 * PAGE))
    writer = attached(path, os.O_RDWR)
    os.pwrite(writer, b"dirty far out", 40 * PAGE)

    def reader():
        # Default SIGXFSZ action: the reader would be killed.
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (PAGE, PAGE))
        dev = attached(path, os.O_RDONLY, os.O_RDONLY)
        os.posix_fadvise(dev, 0, 0, os.POSIX_FADV_DONTNEED)
        assert os.pread(dev, 13, 40 * PAGE) == b"dirty far out"
        os.close(dev)

    in_child(reader)
    os.fsync(writer)
    os.close(writer)
    assert contents(path)[40 * PAGE:40 * PAGE + 13] == b"dirty far out"


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    os.makedirs(TMP, exist_ok=True)
    names = sys.argv[1:] or list(CASES)
    for name in names:
        CASES[name]()
        print(f"fcm_semantics: {name}: ok", flush=True)
    if os.path.ismount(EXT4):
        run("umount", EXT4)
        run("losetup", "-D")
    if os.path.ismount(SMALL):
        run("umount", SMALL)


if __name__ == "__main__":
    main()
