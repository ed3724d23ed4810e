#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Drives /dev/hotswap's ioctl ABI (rust/abi/uapi.rs) directly.

Run by control_device.sh with hotswap.ko, hotswap_fcm.ko (the `fcm`
interface and its decision policy), hotswap_core_test.ko (the `hstest`
interface) and hstest_objects.ko (count=3) loaded. `root` mode checks every command and every kind of
malformed request; `user` mode (as an unprivileged user) checks that reads
work and changes get EPERM. The layouts (tests/pylib/hotswap_uapi.py) mirror uapi.rs on
purpose: a drift between the two fails here.
"""

import ctypes
import errno
import fcntl
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../pylib"))
from hotswap_uapi import (  # noqa: E402 - the layouts, shared with the bench and stress drivers
    FCM_MEMORY, IFACE, IMPL, INTERPOSE, IOC_GET_POLICY, IOC_INTERPOSE, IOC_LIST_IMPLS,
    IOC_LIST_INTERFACES, IOC_LIST_OBJECTS, IOC_SET_POLICY, IOC_SET_TIMEOUT, IOC_STATUS, IOC_SWAP,
    IOC_UNINTERPOSE, IOC_VERSION, LIST, OBJECT, OLD_IOC_FCM_MEMORY, OLD_IOC_SET_FCM_BUDGET, POLICY,
    RESULT, STATUS, SWAP, TIMEOUT, UAPI_VERSION, VERSION, R, W, call, get_policy, ioc,
    pack_policy, set_policy, text,
)


def expect_errno(code, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        assert e.errno == code, f"expected {errno.errorcode[code]}, got {errno.errorcode.get(e.errno)}"
        return
    raise AssertionError(f"expected {errno.errorcode[code]}, but the call succeeded")


def list_entries(fd, cmd, entry, capacity=64):
    buf = ctypes.create_string_buffer(entry.size * capacity)
    _, _, count = call(fd, cmd, LIST, ctypes.addressof(buf), capacity, 0)
    return [entry.unpack_from(buf.raw, i * entry.size) for i in range(min(count, capacity))], count


def objects(fd):
    entries, _ = list_entries(fd, IOC_LIST_OBJECTS, OBJECT)
    return {e[0]: (text(e[3]), e[1], e[4]) for e in entries if text(e[2]) == "hstest"}


def status(fd, obj):
    return call(fd, IOC_STATUS, STATUS, obj, 0, b"", b"", b"", *([0] * 12), b"")


def swap(fd, impl, obj=0, timeout=0, iface=b"hstest", capacity=16):
    results = ctypes.create_string_buffer(RESULT.size * capacity)
    out = call(fd, IOC_SWAP, SWAP, iface, impl, obj, timeout, ctypes.addressof(results), capacity, 0, 0, 0, 0, 0, 0)
    per_object = [RESULT.unpack_from(results.raw, i * RESULT.size) for i in range(min(out[6], capacity))]
    return out, per_object


def interpose(fd, cmd, impl, obj=0):
    return call(fd, cmd, INTERPOSE, b"hstest", impl, obj, 0)[3]


def root_checks(fd):
    uapi, module_abi = call(fd, IOC_VERSION, VERSION, 0, 0)
    assert uapi == UAPI_VERSION and module_abi >= 5, (uapi, module_abi)

    ifaces, _ = list_entries(fd, IOC_LIST_INTERFACES, IFACE)
    names = {text(e[0]): e for e in ifaces}
    assert {"fcm", "hstest"} <= names.keys(), names.keys()
    assert names["hstest"][2] == 3, "three hstest objects expected"

    impls, _ = list_entries(fd, IOC_LIST_IMPLS, IMPL)
    kinds = {text(e[1]): (e[3], text(e[2])) for e in impls if text(e[0]) == "hstest"}
    assert kinds["alpha"] == (0, "hotswap_core_test"), kinds
    assert kinds["counter"][0] == 1, kinds

    # A list with room for one entry still reports the total.
    short, total = list_entries(fd, IOC_LIST_OBJECTS, OBJECT, capacity=1)
    assert len(short) == 1 and total >= 3

    objs = objects(fd)
    assert len(objs) == 3 and all(impl == "alpha" for impl, _, _ in objs.values()), objs
    ids = sorted(objs)

    # Swap all to beta (batched), then one back to alpha.
    out, results = swap(fd, b"beta")
    assert (out[6], out[7], out[8]) == (3, 3, 0), out
    assert all(r[1] == 1 and r[4] == 1 for r in results), results
    assert all(impl == "beta" for impl, _, _ in objects(fd).values())
    out, results = swap(fd, b"alpha", obj=ids[0])
    assert out[7] == 1 and results[0][0] == ids[0]
    st = status(fd, ids[0])
    assert text(st[3]) == "alpha" and st[8] >= 2 and st[10] == 1, st
    # Swapping to where it already is: unchanged.
    out, results = swap(fd, b"alpha", obj=ids[0])
    assert out[9] == 1 and results[0][1] == 3, (out, results)

    # Interpose on all, check status, remove from one, then all.
    assert interpose(fd, IOC_INTERPOSE, b"counter") == 3
    st = status(fd, ids[1])
    assert st[5] == 1 and text(st[4][:32]) == "counter", st
    assert interpose(fd, IOC_UNINTERPOSE, b"counter", obj=ids[1]) == 1
    assert status(fd, ids[1])[5] == 0
    assert interpose(fd, IOC_UNINTERPOSE, b"counter") == 2
    expect_errno(errno.ENOENT, interpose, fd, IOC_UNINTERPOSE, b"counter", ids[1])

    # Timeouts.
    call(fd, IOC_SET_TIMEOUT, TIMEOUT, ids[2], 1234)
    assert status(fd, ids[2])[6] == 1234
    expect_errno(errno.EINVAL, call, fd, IOC_SET_TIMEOUT, TIMEOUT, ids[2], 0)
    expect_errno(errno.EINVAL, call, fd, IOC_SET_TIMEOUT, TIMEOUT, ids[2], 3_600_001)

    # Malformed requests: each gets an errno and changes nothing.
    before = objects(fd)
    expect_errno(errno.ENOENT, swap, fd, b"nosuch")
    expect_errno(errno.ENOENT, swap, fd, b"beta", 999_999)
    expect_errno(errno.ENOENT, swap, fd, b"beta", 0, 0, b"nosuch")
    expect_errno(errno.EINVAL, swap, fd, b"a" * 32)
    expect_errno(errno.EINVAL, swap, fd, b"Beta")
    expect_errno(errno.EINVAL, swap, fd, b"counter")
    expect_errno(errno.EINVAL, swap, fd, b"beta", 0, 3_600_001)
    expect_errno(errno.ENOENT, status, fd, 999_999)
    expect_errno(errno.ENOENT, interpose, fd, IOC_INTERPOSE, b"nosuch")
    expect_errno(errno.EINVAL, interpose, fd, IOC_INTERPOSE, b"beta", ids[0])
    # Bad pointers: the request itself, a results array, a list array.
    expect_errno(errno.EFAULT, fcntl.ioctl, fd, IOC_STATUS, 16)
    buf = bytearray(SWAP.pack(b"hstest", b"beta", 0, 0, 8, 16, 0, 0, 0, 0, 0, 0))
    expect_errno(errno.EFAULT, fcntl.ioctl, fd, IOC_SWAP, buf, True)
    expect_errno(errno.EFAULT, call, fd, IOC_LIST_OBJECTS, LIST, 8, 16, 0)
    # Wrong size or unknown command.
    expect_errno(errno.ENOTTY, fcntl.ioctl, fd, ioc(R | W, 5, STATUS.size - 8), bytearray(STATUS.size))
    expect_errno(errno.ENOTTY, fcntl.ioctl, fd, ioc(R | W, 0x7F, 8), bytearray(8))
    # FCM memory moved to /dev/hotswap-file (UAPI_VERSION 5).
    expect_errno(errno.ENOTTY, fcntl.ioctl, fd, OLD_IOC_FCM_MEMORY, bytearray(FCM_MEMORY.size))
    expect_errno(errno.ENOTTY, fcntl.ioctl, fd, OLD_IOC_SET_FCM_BUDGET, bytearray(8))
    # The PolicyRequest of UAPI_VERSION 4 (interface, enabled, 3 thresholds).
    expect_errno(errno.ENOTTY, fcntl.ioctl, fd, ioc(R | W, 0x0C, 48), bytearray(48))
    assert objects(fd) == before, "a malformed request changed something"
    policies(fd)
    print("control device as root: ok")


def policies(fd):
    """Decision policies: hstest has none (off), fcm has cpu_count."""
    off = {"interface": "hstest", "policy": "off", "params": (0, 0, 0, 0), "count": 0,
           "available": [], "unlisted": [bytes(32)] * 8}
    assert get_policy(fd, "hstest") == off, get_policy(fd, "hstest")
    set_policy(fd, "hstest", "off")
    expect_errno(errno.ENOENT, set_policy, fd, "hstest", "cpu_count")
    expect_errno(errno.ENOENT, set_policy, fd, "nosuch", "off")
    expect_errno(errno.ENOENT, get_policy, fd, "nosuch")
    expect_errno(errno.EINVAL, set_policy, fd, "hstest", "Off")
    expect_errno(errno.EINVAL, get_policy, fd, "HSTEST")
    # Junk in the policy field and in the rest is no input of a read.
    buf = bytearray(POLICY.pack(b"hstest\0x", b"\xff" * 32, 1, 2, 3, 4, 99, *([b"\xee" * 32] * 8)))
    fcntl.ioctl(fd, IOC_GET_POLICY, buf, True)
    assert POLICY.unpack(buf)[1:] == POLICY.unpack(pack_policy(b"hstest", b"off"))[1:], POLICY.unpack(buf)
    assert get_policy(fd, "hstest") == off
    fcm = get_policy(fd, "fcm")
    assert fcm["count"] == 1 and fcm["available"] == ["cpu_count"], fcm
    # A refused SET changes nothing.
    expect_errno(errno.EINVAL, fcntl.ioctl, fd, IOC_SET_POLICY,
                 pack_policy(b"fcm", b"cpu_count", (1, 1, 3, 0)))
    assert get_policy(fd, "fcm") == fcm
    print("decision policies: ok")


def user_checks(fd):
    assert call(fd, IOC_VERSION, VERSION, 0, 0)[0] == UAPI_VERSION
    objs = objects(fd)
    assert len(objs) == 3
    status(fd, sorted(objs)[0])
    expect_errno(errno.EPERM, swap, fd, b"beta")
    expect_errno(errno.EPERM, interpose, fd, IOC_INTERPOSE, b"counter")
    expect_errno(errno.EPERM, call, fd, IOC_SET_TIMEOUT, TIMEOUT, 0, 100)
    policy = get_policy(fd, "fcm")
    expect_errno(errno.EPERM, set_policy, fd, "fcm", "cpu_count")
    expect_errno(errno.EPERM, set_policy, fd, "hstest", "off")
    expect_errno(errno.EPERM, set_policy, fd, "nosuch", "Bad name")
    assert get_policy(fd, "fcm") == policy
    assert objects(fd) == objs
    print("control device as an unprivileged user: ok")


def main():
    fd = os.open("/dev/hotswap", os.O_RDONLY)
    {"root": root_checks, "user": user_checks}[sys.argv[1]](fd)


if __name__ == "__main__":
    main()
