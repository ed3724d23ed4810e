#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""/dev/hotswap-file end to end: real files cached by the FCM, every
system call, shared FCMs per inode, and bad input (run by cached_file.sh
with hotswap.ko, hotswap_fcm.ko and the FCM modules loaded). FileInfo
mirrors fcm/lib/abi/fcm_uapi.rs."""

import errno
import fcntl
import os
import random
import struct

DEV = "/dev/hotswap-file"
INFO = struct.Struct("<IIqQQQQQQQQQQq")
ATTACH = (1 << 30) | (4 << 16) | (0xB7 << 8) | 0x20
IOC_INFO = (2 << 30) | (INFO.size << 16) | (0xB7 << 8) | 0x21
PAGE = 4096


def attach(dev_fd, fd):
    fcntl.ioctl(dev_fd, ATTACH, struct.pack("I", fd))


def info(dev_fd):
    buf = bytearray(INFO.size)
    fcntl.ioctl(dev_fd, IOC_INFO, buf, True)
    names = ("object reserved size hits misses fills writebacks evictions cached dirty allocated freed "
             "wb_errors wb_errno").split()
    return dict(zip(names, INFO.unpack(buf)))


def expect_errno(code, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        assert e.errno == code, f"{fn.__name__}: expected {errno.errorcode[code]}, got {errno.errorcode.get(e.errno)}"
        return
    raise AssertionError(f"{fn.__name__}{args}: expected {errno.errorcode[code]}, succeeded")


def cached_open(path, mode=os.O_RDWR):
    backing = os.open(path, mode)
    dev = os.open(DEV, mode)
    attach(dev, backing)
    os.close(backing)  # the FCM holds its own reference
    return dev


def main():
    rng = random.Random(7)
    path = "/tmp/hotswap-backing"
    model = bytearray(rng.randbytes(3 * 1024 * 1024 + 123))
    with open(path, "wb") as f:
        f.write(model)

    dev = cached_open(path)
    assert os.read(dev, len(model) + 10) == model, "read of the whole file"
    st = info(dev)
    assert st["size"] == len(model) and st["fills"] == st["misses"] > 0, st
    assert os.read(dev, 10) == b"", "read at EOF"
    for pos in (0, 1, PAGE - 1, PAGE, 5 * PAGE + 17, len(model) - 3):
        assert os.pread(dev, 100, pos) == bytes(model[pos:pos + 100]), pos
    assert info(dev)["fills"] == st["fills"], "cached pages were read again"

    # Writes: inside, across pages, past EOF (the gap reads as zeros).
    for pos, n in ((10, 5), (PAGE - 3, 10), (2 * PAGE, 3 * PAGE)):
        data = rng.randbytes(n)
        assert os.pwrite(dev, data, pos) == n
        model[pos:pos + n] = data
    end = len(model) + 3 * PAGE + 5
    data = b"tail of the file"
    assert os.pwrite(dev, data, end) == len(data)
    model.extend(bytes(end - len(model)))
    model.extend(data)
    assert os.lseek(dev, 0, os.SEEK_END) == len(model)
    assert os.lseek(dev, -4, os.SEEK_END) == len(model) - 4
    assert os.read(dev, 100) == bytes(model[-4:])
    os.lseek(dev, 0, os.SEEK_SET)
    assert os.read(dev, len(model)) == model
    assert info(dev)["dirty"] > 0
    os.fsync(dev)
    assert info(dev)["dirty"] == 0
    with open(path, "rb") as f:
        assert f.read() == model, "fsync wrote the cache back"

    # A second opener of the same file shares the FCM.
    other = cached_open(path, os.O_RDONLY)
    assert info(other)["object"] == info(dev)["object"]
    more = b"written by the first opener"
    os.pwrite(dev, more, 100)
    model[100:100 + len(more)] = more
    assert os.pread(other, len(more), 100) == more
    expect_errno(errno.EBADF, os.write, other, b"x")
    os.close(other)

    # A reader that attaches first does not lock writers out: the FCM
    # takes the writer's file for write-back, and keeps it after the
    # writer closes, so the last (read-only) close still writes back.
    shared_path = "/tmp/hotswap-reader-first"
    with open(shared_path, "wb") as f:
        f.write(b"r" * (PAGE + 10))
    reader = cached_open(shared_path, os.O_RDONLY)
    expect_errno(errno.EBADF, os.write, reader, b"x")
    writer = cached_open(shared_path)
    assert info(writer)["object"] == info(reader)["object"]
    note = b"written after a read-only attach"
    assert os.pwrite(writer, note, PAGE - 5) == len(note)
    os.close(writer)
    assert os.pread(reader, len(note), PAGE - 5) == note
    os.close(reader)
    with open(shared_path, "rb") as f:
        assert f.read()[PAGE - 5:PAGE - 5 + len(note)] == note, "write-back through the writer's file"

    # Another writer of the backing file, directly: a one-byte write
    # through the device and its fsync keep the other writer's bytes of
    # that page (the FCM writes back only the bytes it was given).
    foreign_path = "/tmp/hotswap-foreign-writer"
    with open(foreign_path, "wb") as f:
        f.write(b"o" * (3 * PAGE))
    cached = cached_open(foreign_path)
    assert os.pread(cached, 3 * PAGE, 0) == b"o" * (3 * PAGE)
    with open(foreign_path, "r+b") as f:
        f.seek(PAGE)
        f.write(b"t" * (2 * PAGE))
    assert os.pwrite(cached, b"1", PAGE + 5) == 1
    os.fsync(cached)
    os.close(cached)
    with open(foreign_path, "rb") as f:
        got = f.read()
    want = b"o" * PAGE + b"t" * 5 + b"1" + b"t" * (2 * PAGE - 6)
    assert got == want, f"the other writer's bytes: {got.count(b't')} of {2 * PAGE - 1} left"

    # Page accounting holds.
    st = info(dev)
    assert st["allocated"] == st["freed"] + st["cached"], st

    # Bad input: clear errnos, nothing changes.
    expect_errno(errno.EBUSY, attach, dev, os.open(path, os.O_RDONLY))
    expect_errno(errno.EINVAL, os.lseek, dev, -1, os.SEEK_SET)
    assert os.pread(dev, 10, 1 << 62) == b""
    # Past the largest offset: the VFS refuses before the FCM sees it.
    expect_errno(errno.EINVAL, os.pwrite, dev, b"x" * 4096, (1 << 63) - 100)
    fresh = os.open(DEV, os.O_RDWR)
    expect_errno(errno.ENOTCONN, os.read, fresh, 1)
    expect_errno(errno.EISDIR, attach, fresh, os.open("/tmp", os.O_RDONLY))
    expect_errno(errno.EINVAL, attach, fresh, os.open("/dev/null", os.O_RDWR))
    r, w = os.pipe()
    expect_errno(errno.EINVAL, attach, fresh, r)
    expect_errno(errno.EINVAL, attach, fresh, os.open(DEV, os.O_RDWR))
    expect_errno(errno.EBADF, attach, fresh, os.open(path, os.O_WRONLY))
    expect_errno(errno.EBADF, attach, fresh, os.open(path, os.O_RDONLY))  # device is O_RDWR
    expect_errno(errno.EBADF, attach, fresh, 9999)
    os.close(fresh)

    # Last close writes back.
    last = rng.randbytes(PAGE + 1)
    os.pwrite(dev, last, 7 * PAGE - 1)
    model[7 * PAGE - 1:8 * PAGE] = last
    os.close(dev)
    with open(path, "rb") as f:
        assert f.read() == model, "last close wrote the cache back"
    print("cached-file device: ok")


if __name__ == "__main__":
    main()
