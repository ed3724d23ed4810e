# SPDX-License-Identifier: GPL-2.0
"""The ioctl ABI of /dev/hotswap and /dev/hotswap-file, for Python drivers
running in the VM (benchmarks, stress, fuzzing).

The layouts mirror rust/abi/uapi.rs (/dev/hotswap, hotswap.ko) and
fcm/lib/abi/fcm_uapi.rs (/dev/hotswap-file and FCM memory, hotswap_fcm.ko)
on purpose and are kept apart from them: tests/vm/control_device.py and
tests/vm/ioctl_fuzz.py check them against the kernel, so a drift fails a
test instead of passing silently.
"""

import ctypes
import fcntl
import os
import struct

CONTROL = "/dev/hotswap"
FILE_DEVICE = "/dev/hotswap-file"
IOC_TYPE = 0xB7
NAME_LEN = 32
R, W = 2, 1


def ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (IOC_TYPE << 8) | nr


VERSION = struct.Struct("<II")
LIST = struct.Struct("<QII")
IFACE = struct.Struct("<32s32sII")
IMPL = struct.Struct("<32s32s56sIIII")
IMPL_QUARANTINED = 1
OBJECT = struct.Struct("<II32s32sIIQ")
STATUS = struct.Struct("<II32s32s256sIIQQQIIiIqQQ256s")
SWAP = struct.Struct("<32s32sIIQIIIIIIQ")
RESULT = struct.Struct("<IIIiIIqQQ")
INTERPOSE = struct.Struct("<32s32sII")
TIMEOUT = struct.Struct("<II")
REPORT = struct.Struct("<II1024s")
# interface, policy, params[4], count, available[8] (UAPI_VERSION 5).
POLICY = struct.Struct("<32s32s4II" + "32s" * 8)
POLICY_PARAMS = 4
MAX_POLICIES = 8
FILE_INFO = struct.Struct("<IIqQQQQQQQQQQq")
FCM_MEMORY = struct.Struct("<QIIQQQQQQQ")
FCM_PAGES = struct.Struct("<IIQ")

IOC_VERSION = ioc(R, 0x01, VERSION.size)
IOC_LIST_INTERFACES = ioc(R | W, 0x02, LIST.size)
IOC_LIST_IMPLS = ioc(R | W, 0x03, LIST.size)
IOC_LIST_OBJECTS = ioc(R | W, 0x04, LIST.size)
IOC_STATUS = ioc(R | W, 0x05, STATUS.size)
IOC_SWAP = ioc(R | W, 0x06, SWAP.size)
IOC_INTERPOSE = ioc(R | W, 0x07, INTERPOSE.size)
IOC_UNINTERPOSE = ioc(R | W, 0x08, INTERPOSE.size)
IOC_SET_TIMEOUT = ioc(W, 0x09, TIMEOUT.size)
IOC_REPORT = ioc(R | W, 0x0A, REPORT.size)
IOC_SET_POLICY = ioc(W, 0x0B, POLICY.size)
IOC_GET_POLICY = ioc(R | W, 0x0C, POLICY.size)
# Gone from /dev/hotswap in UAPI_VERSION 5 (ENOTTY there): FCM memory is
# FILE_IOC_MEMORY and FILE_IOC_SET_BUDGET of /dev/hotswap-file now.
OLD_IOC_FCM_MEMORY = ioc(R | W, 0x0D, FCM_MEMORY.size)
OLD_IOC_SET_FCM_BUDGET = ioc(W, 0x0E, 8)
FILE_IOC_ATTACH = ioc(W, 0x20, 4)
FILE_IOC_INFO = ioc(R, 0x21, FILE_INFO.size)
FILE_IOC_TRUNCATE = ioc(W, 0x22, 8)
FILE_IOC_MEMORY = ioc(R | W, 0x23, FCM_MEMORY.size)
FILE_IOC_SET_BUDGET = ioc(W, 0x24, 8)

UAPI_VERSION = 6
CPU_COUNT_DEFAULTS = (2, 1, 3, 0)

OUTCOME_COMPLETED, OUTCOME_ABORTED, OUTCOME_UNCHANGED, OUTCOME_NOT_STARTED = 1, 2, 3, 4
INFO_FIELDS = ("object reserved size hits misses fills writebacks evictions "
               "cached dirty allocated freed wb_errors wb_errno").split()
RESULT_FIELDS = "id outcome phase errno format reserved in_flight duration_ns blocked_ns".split()
MEMORY_FIELDS = ("entries capacity count budget user_budget used refused reclaimed_pressure "
                 "reclaimed_budget page_size").split()


def name(text):
    return text.encode()


def text(field):
    return field.split(b"\0", 1)[0].decode()


def call(fd, cmd, packer, *values):
    """Issues `cmd` with a buffer packed from `values`; returns it unpacked."""
    buf = bytearray(packer.pack(*values))
    fcntl.ioctl(fd, cmd, buf, True)
    return packer.unpack(buf)


def attach(dev, backing):
    """Attaches the backing file descriptor `backing` to device descriptor `dev`."""
    fcntl.ioctl(dev, FILE_IOC_ATTACH, struct.pack("I", backing))


def open_cached(path, mode=os.O_RDONLY, dev_mode=None):
    """Opens /dev/hotswap-file (in `dev_mode`, default `mode`) attached to
    `path` opened in `mode`; returns the device descriptor."""
    backing = os.open(path, mode)
    try:
        dev = os.open(FILE_DEVICE, mode if dev_mode is None else dev_mode)
        try:
            fcntl.ioctl(dev, FILE_IOC_ATTACH, struct.pack("I", backing))
        except OSError:
            os.close(dev)
            raise
    finally:
        os.close(backing)
    return dev


def truncate(dev, size):
    """Sets the size of the file attached to `dev` (ftruncate through the FCM)."""
    fcntl.ioctl(dev, FILE_IOC_TRUNCATE, struct.pack("Q", size))


def file_info(dev):
    """The FileInfo of an attached /dev/hotswap-file descriptor, as a dict."""
    buf = bytearray(FILE_INFO.size)
    fcntl.ioctl(dev, FILE_IOC_INFO, buf, True)
    return dict(zip(INFO_FIELDS, FILE_INFO.unpack(buf)))


def swap(ctl, interface, implementation, object_id=0, capacity=0, timeout_ms=0):
    """Swaps one object (or, with object_id 0, every object of `interface`).

    Returns (summary dict, list of per-object result dicts)."""
    results = bytearray(RESULT.size * max(capacity, 1))
    address = 0
    if capacity:
        address = ctypes_address(results)
    out = call(ctl, IOC_SWAP, SWAP, name(interface), name(implementation), object_id,
               timeout_ms, address, capacity, 0, 0, 0, 0, 0, 0)
    summary = dict(zip("count completed aborted unchanged reserved total_ns".split(), out[6:]))
    per_object = [dict(zip(RESULT_FIELDS, RESULT.unpack_from(results, i * RESULT.size)))
                  for i in range(min(summary["count"], capacity))]
    return summary, per_object


def set_timeout(ctl, object_id, timeout_ms):
    """Sets one object's per-phase swap timeout."""
    fcntl.ioctl(ctl, IOC_SET_TIMEOUT, TIMEOUT.pack(object_id, timeout_ms))


def uninterpose(ctl, interface, implementation, object_id=0):
    """Removes interposer `implementation` from one object (0: every object
    of `interface`); returns how many objects it was removed from."""
    return call(ctl, IOC_UNINTERPOSE, INTERPOSE, name(interface), name(implementation),
                object_id, 0)[3]


def implementations(ctl, capacity=64):
    """Registered implementations: {(interface, name): {kind, users, quarantined}}."""
    buf = ctypes.create_string_buffer(IMPL.size * capacity)
    _, _, count = call(ctl, IOC_LIST_IMPLS, LIST, ctypes.addressof(buf), capacity, 0)
    out = {}
    for i in range(min(count, capacity)):
        iface, nm, _module, kind, users, flags, _ = IMPL.unpack_from(buf.raw, i * IMPL.size)
        out[(text(iface), text(nm))] = {"kind": kind, "users": users,
                                        "quarantined": bool(flags & IMPL_QUARANTINED)}
    return out


def ctypes_address(buf):
    """The address of a bytearray, for the `results`-style pointer fields."""
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


def pack_policy(interface, policy=b"", params=(0, 0, 0, 0), count=0, available=()):
    """A PolicyRequest from raw fields (bytes names; `available` up to 8)."""
    names = list(available) + [b""] * (MAX_POLICIES - len(available))
    return POLICY.pack(interface, policy, *params, count, *names)


def unpack_policy(data):
    """A PolicyRequest as a dict; `available` holds the names listed."""
    out = POLICY.unpack(data)
    count = out[6]
    return {"interface": text(out[0]), "policy": text(out[1]), "params": tuple(out[2:6]),
            "count": count, "available": [text(n) for n in out[7:7 + min(count, MAX_POLICIES)]],
            "unlisted": list(out[7 + min(count, MAX_POLICIES):])}


def set_policy(ctl, interface, policy, params=(0, 0, 0, 0)):
    """Sets `interface`'s decision policy: "off", or a policy's name with its
    params (all zero: the policy's defaults; cpu_count's are
    [up_cpus, up_windows, down_windows, 0])."""
    fcntl.ioctl(ctl, IOC_SET_POLICY, pack_policy(name(interface), name(policy), tuple(params)))


def get_policy(ctl, interface):
    """{policy, params, count, available} of `interface` ("off" if none)."""
    buf = bytearray(pack_policy(name(interface)))
    fcntl.ioctl(ctl, IOC_GET_POLICY, buf, True)
    return unpack_policy(bytes(buf))


def fcm_memory(dev, capacity=64):
    """FCM memory through any /dev/hotswap-file descriptor `dev`: the
    figures as a dict, and {object id: pages} of (up to `capacity`) FCMs."""
    entries = bytearray(FCM_PAGES.size * max(capacity, 1))
    buf = bytearray(FCM_MEMORY.pack(ctypes_address(entries), capacity, *([0] * 8)))
    fcntl.ioctl(dev, FILE_IOC_MEMORY, buf, True)
    figures = dict(zip(MEMORY_FIELDS, FCM_MEMORY.unpack(buf)))
    pages = dict(FCM_PAGES.unpack_from(entries, i * FCM_PAGES.size)[::2]
                 for i in range(min(figures["count"], capacity)))
    return figures, pages


def set_fcm_budget(dev, pages):
    """Sets the FCM memory budget (pages) through a /dev/hotswap-file descriptor."""
    fcntl.ioctl(dev, FILE_IOC_SET_BUDGET, struct.pack("<Q", pages))


def object_status(ctl, object_id):
    """Implementation, phase, calls, swaps, interposers and label of one object."""
    out = call(ctl, IOC_STATUS, STATUS, object_id, 0, b"", b"", b"", 0, 0, 0, 0, 0, 0, 0, 0,
               0, 0, 0, 0, b"")
    interposers = [text(out[4][i * NAME_LEN:(i + 1) * NAME_LEN]) for i in range(min(out[5], 8))]
    return {"implementation": text(out[3]), "phase": out[1], "calls": out[7],
            "swaps_done": out[8], "swaps_aborted": out[9], "interposers": interposers,
            "label": text(out[17])}
