#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""An ioctl fuzzer for /dev/hotswap and /dev/hotswap-file (run by
ioctl_fuzz.sh with hotswap.ko, hotswap_fcm.ko and the FCM modules loaded).

    ioctl_fuzz.py root REQUESTS SEED DIR     the whole run (as root)
    ioctl_fuzz.py nobody REQUESTS SEED DIR   the unprivileged share (started
                                             by the root run through setpriv)

The root run:
1. crafted requests with nothing else running, each failing one checked to
   change nothing (objects, implementations, interposers, timeouts, the
   interface default and the decision policy), and the FCM memory requests
   of /dev/hotswap-file;
2. starts a racer (swaps every FCM shared <-> distributed, one object or
   all, and interposes/removes fcm_monitor through the real ioctls) and an
   I/O worker (writes and reads a real file through /dev/hotswap-file,
   checking every read against its model);
3. random and crafted requests as root, then the unprivileged share as
   user 65534, both while the racer and the worker run;
4. stops them, checks the racer swapped, the file holds exactly the
   worker's model, and cleans up (policy off, monitors off).

Each request's outcome must be success or an errno its command allows; a
mutation that works for the unprivileged user (or any errno but EPERM for
it), an errno outside the allowed set or any exception but OSError fails.
The seed decides every request (the racer's timing does not), so a failure
replays with HOTSWAP_FUZZ_SEED.

What an unprivileged user may do: /dev/hotswap (made 0666 by the test) for
reads only (version, lists, status, reports, the policy); every change
(swap, interpose, uninterpose, timeout, policy) is EPERM whatever its
fields. /dev/hotswap-file is 0666 and needs no privilege: the caller
attaches a descriptor it opened itself, so the backing file's own
permissions decide (it must be readable, and writable for a writable
attach); an O_PATH descriptor or one of another mode is refused. Any of
its descriptors, attached or not, reads FCM memory; setting the budget is
EPERM whatever its value.

The model of the policy request (UAPI_VERSION 5): SET takes an interface,
a policy name ("off" or a registered policy) and params; a malformed name
is EINVAL, an unknown interface or policy ENOENT, "off" ignores the
params, all-zero params are the policy's defaults, and params cpu_count
refuses are EINVAL. GET takes only the interface (the rest of the request
is ignored) and answers the policy ("off"), its params (zero when off)
and the registered policies, with nothing but zeros past them.
"""

import ctypes
import errno
import os
import random
import select
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import hotswap_uapi as U  # noqa: E402

E = errno
PAGE = 4096
NOBODY = 65534

# ---------------------------------------------------------------- libc

libc = ctypes.CDLL(None, use_errno=True)


def _fn(name, res, *args):
    f = getattr(libc, name)
    f.restype, f.argtypes = res, args
    return f


_ul, _ll, _sz, _ssz, _int = ctypes.c_ulong, ctypes.c_longlong, ctypes.c_size_t, ctypes.c_ssize_t, ctypes.c_int
c_ioctl = _fn("ioctl", _int, _int, _ul, _ul)
c_read = _fn("read", _ssz, _int, _ul, _sz)
c_write = _fn("write", _ssz, _int, _ul, _sz)
c_pread = _fn("pread64", _ssz, _int, _ul, _sz, _ll)
c_pwrite = _fn("pwrite64", _ssz, _int, _ul, _sz, _ll)
c_lseek = _fn("lseek64", _ll, _int, _ll, _int)
c_fsync = _fn("fsync", _int, _int)
c_mmap = _fn("mmap", ctypes.c_void_p, ctypes.c_void_p, _sz, _int, _int, _int, _ll)
c_munmap = _fn("munmap", _int, ctypes.c_void_p, _sz)
c_mprotect = _fn("mprotect", _int, ctypes.c_void_p, _sz, _int)
PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20


def ret(r):
    """A libc result: the value, or -errno."""
    return -ctypes.get_errno() if r == -1 else r


def ioctl(fd, cmd, arg):
    return ret(c_ioctl(fd, cmd, arg))


# ---------------------------------------------------------------- memory

class Arena:
    """Request memory: RW_PAGES writable pages, then one read-only page,
    then one PROT_NONE page; and, elsewhere, one page that was unmapped.
    Everything the kernel is asked to write lands in the writable pages or
    faults on the read-only or PROT_NONE page, never in Python's heap."""

    RW_PAGES = 16

    def __init__(self):
        size = (self.RW_PAGES + 2) * PAGE
        base = c_mmap(None, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        assert base not in (None, ctypes.c_void_p(-1).value), "mmap"
        self.rw = base
        self.rw_end = base + self.RW_PAGES * PAGE
        self.ro = self.rw_end
        self.guard = self.ro + PAGE
        assert c_mprotect(self.ro, PAGE, PROT_READ) == 0
        assert c_mprotect(self.guard, PAGE, PROT_NONE) == 0
        # An unmapped page between two PROT_NONE ones (nothing else fits
        # a one-page hole that Python would ask for).
        hole = c_mmap(None, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        assert c_munmap(hole + PAGE, PAGE) == 0
        self.unmapped = hole + PAGE

    def put(self, addr, data):
        ctypes.memmove(addr, data, len(data))

    def put_ro(self, offset, data):
        """Writes `data` at `offset` into the read-only page."""
        assert c_mprotect(self.ro, PAGE, PROT_READ | PROT_WRITE) == 0
        ctypes.memmove(self.ro + offset, data, len(data))
        assert c_mprotect(self.ro, PAGE, PROT_READ) == 0

    def get(self, addr, n):
        return ctypes.string_at(addr, n)

    def check_unmapped(self):
        with open("/proc/self/maps") as f:
            for line in f:
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                assert not lo <= self.unmapped < hi, "the unmapped page got mapped: " + line


# Addresses the kernel can neither read nor write.
KERNEL_PTRS = (0xFFFFFFFF81000000, 0xFFFF888000000000, 0xFFFFFFFFFFFFF000, 0xFFFFFFFFFFFFFFFF)
WILD_PTRS = (0, 1, 8, 0xFFF, 0x1000, 0x8000000000000000, 0xDEAD000000000000,
             0x00007FFFFFFFF000) + KERNEL_PTRS

# ---------------------------------------------------------------- fields

NAMES_VALID = (b"fcm", b"shared", b"distributed", b"monitor", b"nosuch", b"hstest", b"a" * 31,
               b"fcm\0junk after the nul")
NAMES_INVALID = (b"", b"\0fcm", b"a" * 32, b"FCM", b"Shared", b"fcm-x", b"fcm x", b"f\xc3\xa9",
                 b"\xff" * 32, b"fcm\n", b"../fcm", b"shared\x7f")
U32_EDGES = (0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
TIMEOUTS = (0, 1, 2, 1000, 3_600_000, 3_600_001, 0x7FFFFFFF, 0xFFFFFFFF)
KNOWN_IFACES = {b"fcm"}
IMPL_KIND = {b"shared": "object", b"distributed": "object", b"monitor": "interposer"}
# Decision policies by interface (hotswap_fcm registers cpu_count; its
# monitor, fcm_monitor, is loaded).
POLICIES = {b"fcm": (b"cpu_count",)}
POLICY_NAMES = (b"cpu_count", b"cpu_count", b"off", b"off", b"enabled", b"nosuch", b"shared",
                b"monitor", b"cpu_count\0junk", b"off\0x", b"a" * 31)
CPU_COUNT_DEFAULTS = U.CPU_COUNT_DEFAULTS


def cpu_count_refuses(params):
    """Whether cpu_count refuses `params` (all zero: its defaults, fine)."""
    if tuple(params) == (0, 0, 0, 0):
        return False
    up, upw, downw, rest = params
    return up < 2 or upw == 0 or downw <= upw or rest != 0


def set_policy_errnos(iface, policy, params):
    """What SET_POLICY with these fields may answer, as root."""
    if not is_valid_name(iface) or not is_valid_name(policy):
        return {E.EINVAL}
    iface, policy = name_text(iface), name_text(policy)
    if iface not in KNOWN_IFACES:
        return {E.ENOENT}
    if policy == b"off":
        return {0}
    if policy not in POLICIES.get(iface, ()):
        return {E.ENOENT}
    return {E.EINVAL} if cpu_count_refuses(params) else {0}


def get_policy_errnos(iface):
    """What GET_POLICY may answer (only the interface is input)."""
    if not is_valid_name(iface):
        return {E.EINVAL}
    return {0} if name_text(iface) in KNOWN_IFACES else {E.ENOENT}


def is_valid_name(b):
    field = b[:32].ljust(32, b"\0")
    if b"\0" not in field:
        return False
    s = field.split(b"\0", 1)[0]
    return 0 < len(s) < 32 and all(c in b"abcdefghijklmnopqrstuvwxyz0123456789_" for c in s)


def name_text(b):
    return b[:32].ljust(32, b"\0").split(b"\0", 1)[0]


def field32(b):
    return b[:32].ljust(32, b"\0")


# ---------------------------------------------------------------- state

def list_raw(ctl, cmd, entry, arena, cap=64):
    out = arena.rw + 8 * PAGE
    arena.put(arena.rw, U.LIST.pack(out, cap, 0))
    r = ioctl(ctl, cmd, arena.rw)
    assert r == 0, f"list {cmd:#x}: {r}"
    count = U.LIST.unpack(arena.get(arena.rw, U.LIST.size))[2]
    data = arena.get(out, entry.size * min(count, cap))
    return [entry.unpack_from(data, i * entry.size) for i in range(min(count, cap))]


def fcm_ids(ctl, arena):
    return [e[0] for e in list_raw(ctl, U.IOC_LIST_OBJECTS, U.OBJECT, arena) if U.text(e[2]) == "fcm"]


def status(ctl, arena, oid):
    arena.put(arena.rw, U.STATUS.pack(oid, 0, b"", b"", b"", *([0] * 12), b""))
    r = ioctl(ctl, U.IOC_STATUS, arena.rw)
    if r < 0:
        return None
    return U.STATUS.unpack(arena.get(arena.rw, U.STATUS.size))


def get_policy(ctl, arena):
    """fcm's policy, params, count and available names (the raw fields)."""
    arena.put(arena.rw, U.pack_policy(b"fcm"))
    assert ioctl(ctl, U.IOC_GET_POLICY, arena.rw) == 0
    return U.POLICY.unpack(arena.get(arena.rw, U.POLICY.size))[1:]


def policy_problem(out):
    """What is wrong with GET_POLICY's answer for fcm (None: nothing)."""
    policy, params, count, available = out[1], out[2:6], out[6], out[7:]
    if count != len(POLICIES[b"fcm"]):
        return f"count {count}"
    if any(a != field32(n) for a, n in zip(available, POLICIES[b"fcm"])):
        return f"available {available[:count]}"
    if any(a != bytes(32) for a in available[count:]):
        return "bytes past the listed policies"
    if policy == field32(b"off"):
        return None if params == (0, 0, 0, 0) else f"params {params} when off"
    if policy == field32(b"cpu_count"):
        # All zero were the defaults: the kernel answers what it uses.
        return None if not cpu_count_refuses(params) and params != (0, 0, 0, 0) else f"cpu_count params {params}"
    return f"policy {policy}"


def snapshot(ctl, arena):
    """Everything a control request can change."""
    objs = []
    for e in list_raw(ctl, U.IOC_LIST_OBJECTS, U.OBJECT, arena):
        st = status(ctl, arena, e[0])
        inter = tuple(U.text(st[4][i * 32:(i + 1) * 32]) for i in range(st[5])) if st else None
        objs.append((e[0], U.text(e[3]), inter, st and st[6]))
    ifaces = [(U.text(e[0]), U.text(e[1])) for e in list_raw(ctl, U.IOC_LIST_INTERFACES, U.IFACE, arena)]
    return sorted(objs), sorted(ifaces), get_policy(ctl, arena)


# ---------------------------------------------------------------- the fuzzer

class Unexpected(Exception):
    pass


class Fuzzer:
    def __init__(self, seed, root, workdir, log=None):
        self.rng = random.Random(seed)
        self.seed = seed
        self.root = root
        self.dir = workdir
        self.arena = Arena()
        self.ctl = os.open(U.CONTROL, os.O_RDWR if root else os.O_RDONLY)
        self.count = 0
        self.errnos = {}
        self.unexpected = []
        self.ids = []
        self.last_ids = 0
        self.log = log
        self._setup_files()

    # -- files for the cached-file device
    def _setup_files(self):
        d = self.dir
        self.scratch = os.path.join(d, "scratch")
        self.scratch2 = os.path.join(d, "scratch2")
        for p in (self.scratch, self.scratch2):
            if not os.path.exists(p):
                with open(p, "wb") as f:
                    f.write(os.urandom(3 * PAGE + 5))
        # Descriptors ATTACH is fed: name -> (fd, the errno it must give
        # on an unattached RDWR device, on an unattached RDONLY device).
        self.fds = {}

        def add(name, fd, rdwr, rdonly):
            self.fds[name] = (fd, rdwr, rdonly)
        add("dir", os.open(d, os.O_RDONLY), E.EISDIR, E.EISDIR)
        add("opath", os.open(self.scratch, os.O_PATH), E.EBADF, E.EBADF)
        add("null", os.open("/dev/null", os.O_RDWR), E.EINVAL, E.EINVAL)
        r, w = os.pipe()
        add("pipe", r, E.EINVAL, E.EINVAL)
        add("pipe_w", w, E.EINVAL, E.EINVAL)
        add("control", self.ctl, E.EINVAL, E.EINVAL)
        add("self_dev", os.open(U.FILE_DEVICE, os.O_RDONLY), E.EINVAL, E.EINVAL)
        add("wronly", os.open(self.scratch, os.O_WRONLY), E.EBADF, E.EBADF)
        add("rdonly", os.open(self.scratch, os.O_RDONLY), E.EBADF, 0)
        add("rdwr", os.open(self.scratch, os.O_RDWR), 0, 0)
        # Numbers no descriptor has (Python never gets near 999 here).
        for n, fd in (("closed", 999), ("big", 100_000), ("neg", 0xFFFFFFFF), ("huge", 0x7FFFFFFF)):
            add(n, fd, E.EBADF, E.EBADF)
        if not self.root and os.path.exists(os.path.join(d, "..", "root_only")):
            add("root_opath", os.open(os.path.join(d, "..", "root_only"), os.O_PATH), E.EBADF, E.EBADF)
        # Keeps the scratch FCM writable whoever attaches first.
        self.keeper = os.open(U.FILE_DEVICE, os.O_RDWR)
        assert ioctl(self.keeper, U.FILE_IOC_ATTACH, self._u32(self.fds["rdwr"][0])) == 0
        # The pool: device descriptors, attached or not, of either mode.
        self.pool = [self._open_dev() for _ in range(4)]

    def _u32(self, v):
        a = self.arena.rw + 15 * PAGE
        self.arena.put(a, struct.pack("<I", v))
        return a

    def _open_dev(self):
        mode = self.rng.choice((os.O_RDONLY, os.O_RDWR))
        return [os.open(U.FILE_DEVICE, mode), mode, False]

    # -- bookkeeping
    def check(self, what, r, allowed):
        self.count += 1
        code = 0 if r >= 0 else -r
        self.errnos[code] = self.errnos.get(code, 0) + 1
        ok = code in allowed
        if not ok:
            name = errno.errorcode.get(code, str(code)) if code else "success"
            want = sorted(errno.errorcode.get(a, "success") if a else "success" for a in allowed)
            msg = f"request {self.count}: {what}: got {name}, allowed {want}"
            self.unexpected.append(msg)
            print("UNEXPECTED " + msg, file=sys.stderr, flush=True)
        return r

    def fail(self, msg):
        """Counts an unexpected outcome that is not one request's errno."""
        self.unexpected.append(msg)
        print("UNEXPECTED " + msg, file=sys.stderr, flush=True)

    def refresh_ids(self):
        if self.count - self.last_ids >= 200 or not self.ids:
            self.ids = fcm_ids(self.ctl, self.arena)
            self.last_ids = self.count

    # -- field choices
    def r_name(self, kind=None):
        rng = self.rng
        x = rng.random()
        if kind is not None and x < 0.6:
            return kind
        return rng.choice(NAMES_INVALID) if x < 0.8 else rng.choice(NAMES_VALID)

    def r_id(self):
        rng = self.rng
        x = rng.random()
        if x < 0.45 and self.ids:
            return rng.choice(self.ids), "known"
        if x < 0.6:
            return 0, "all"
        return rng.choice((999_999, 0xFFFFFFFF, 0x80000000, rng.randrange(100_000, 1 << 32))), "unknown"

    def r_u32(self):
        return self.rng.choice(U32_EDGES) if self.rng.random() < 0.7 else self.rng.getrandbits(32)

    def r_ptr_out(self, room):
        """A pointer the kernel may write `room` bytes to, and whether it
        can: ('ok'), partly ('partial'), or not at all ('bad')."""
        a, rng = self.arena, self.rng
        x = rng.random()
        if x < 0.5:
            return a.rw + 8 * PAGE + rng.randrange(0, 64) * 8, "ok"
        if x < 0.65:
            return a.rw_end - rng.randrange(1, max(2, room)), "partial"
        if x < 0.75:
            return a.ro + rng.randrange(0, PAGE), "bad"
        if x < 0.8:
            return a.guard, "bad"
        if x < 0.85:
            return a.unmapped, "bad"
        return rng.choice(WILD_PTRS), "bad"

    def place(self, data):
        """Puts a request somewhere; returns (address, class): 'rw', 'ro'
        (readable, not writable) or 'bad' (not readable)."""
        a, rng = self.arena, self.rng
        x = rng.random()
        if x < 0.8:
            addr = a.rw + rng.randrange(0, 4) * 8 + rng.choice((0, 0, 0, 1, 3))
            a.put(addr, data)
            return addr, "rw"
        if x < 0.86:
            off = rng.randrange(0, PAGE - len(data) + 1)
            a.put_ro(off, data)
            return a.ro + off, "ro"
        if x < 0.9:
            # Ends inside the read-only page: reads fine, writes fail.
            n = rng.randrange(1, len(data))
            addr = a.rw_end - n
            a.put(addr, data[:n])
            a.put_ro(0, data[n:])
            return addr, "ro"
        if x < 0.94:
            n = rng.randrange(1, len(data))
            addr = a.guard - n
            a.put_ro(PAGE - n, data[:n])
            return addr, "bad"
        if x < 0.96:
            return a.unmapped, "bad"
        return rng.choice(WILD_PTRS), "bad"

    # -- requests built by the build_* methods
    def request(self, fd, cmd):
        """Builds request `cmd`, places it and issues it on `fd`."""
        code, data, mutation, allowed, write_back = getattr(self, "build_" + cmd)()
        addr, where = self.place(data)
        if not self.root and mutation:
            allowed = {E.EPERM}
        elif where == "bad":
            allowed = {E.EFAULT}
        elif where == "ro" and write_back:
            allowed = ({E.EFAULT} if mutation else (allowed - {0}) | {E.EFAULT})
        r = ioctl(fd, code, addr)
        self.check(f"{cmd} at {where} {data[:80].hex()}", r, allowed)
        if r == 0 and where == "rw":
            self.after(cmd, addr, data)

    # -- /dev/hotswap requests
    def control_request(self):
        self.refresh_ids()
        self.request(self.ctl, self.rng.choice(CONTROL_CMDS))

    def after(self, cmd, addr, data):
        """Checks what a successful request wrote back."""
        if cmd == "version":
            v = U.VERSION.unpack(self.arena.get(addr, U.VERSION.size))
            assert v[0] == U.UAPI_VERSION, v
        elif cmd == "get_policy" and name_text(data[:32]) == b"fcm":
            out = U.POLICY.unpack(self.arena.get(addr, U.POLICY.size))
            problem = policy_problem(out)
            if problem:
                self.check(f"get_policy answered {problem}", -E.ERANGE, set())
        elif cmd == "fcm_memory":
            m = dict(zip(U.MEMORY_FIELDS, U.FCM_MEMORY.unpack(self.arena.get(addr, U.FCM_MEMORY.size))))
            if m["page_size"] != PAGE or m["user_budget"] > m["budget"] or m["budget"] < 1024:
                self.check(f"fcm_memory answered {m}", -E.ERANGE, set())

    def build_version(self):
        return U.IOC_VERSION, bytes(U.VERSION.size), False, {0}, True

    def _list(self, code):
        ptr, how = self.r_ptr_out(88 * 8)
        cap = self.r_u32() if self.rng.random() < 0.5 else self.rng.randrange(0, 8)
        allowed = {0} if how == "ok" and cap <= 64 else {0, E.EFAULT}
        return code, U.LIST.pack(ptr, cap, self.r_u32()), False, allowed, True

    def build_list_interfaces(self):
        return self._list(U.IOC_LIST_INTERFACES)

    def build_list_impls(self):
        return self._list(U.IOC_LIST_IMPLS)

    def build_list_objects(self):
        return self._list(U.IOC_LIST_OBJECTS)

    def build_status(self):
        oid, kind = self.r_id()
        allowed = {E.ENOENT} if kind != "known" else {0, E.ENOENT}
        junk = self.rng.randbytes(U.STATUS.size - 4)
        return U.IOC_STATUS, struct.pack("<I", oid) + junk, False, allowed, True

    def build_report(self):
        oid, kind = self.r_id()
        allowed = {E.ENOENT} if kind != "known" else {0, E.ENOENT}
        return U.IOC_REPORT, U.REPORT.pack(oid, self.r_u32(), self.rng.randbytes(64)), False, allowed, True

    def _policy_fields(self):
        """interface, policy name and params of a policy request."""
        rng = self.rng
        iface = self.r_name(b"fcm")
        x = rng.random()
        if x < 0.75:
            policy = rng.choice(POLICY_NAMES)
        else:
            policy = rng.choice(NAMES_INVALID) if x < 0.9 else rng.choice(NAMES_VALID)
        x = rng.random()
        if x < 0.2:
            vals = [0, 0, 0, 0]
        elif x < 0.6:
            vals = [rng.choice((0, 1, 2, 3, 8)), rng.choice((0, 1, 2)), rng.choice((0, 1, 2, 3, 5, 100)),
                    rng.choice((0, 0, 0, 1))]
        else:
            vals = [rng.choice((0, 1, 2, 0xFFFFFFFF)) if rng.random() < 0.3 else rng.choice(U32_EDGES)
                    for _ in range(4)]
        return field32(iface), field32(policy), vals

    # FCM memory: requests of /dev/hotswap-file, on any of its descriptors.
    def build_fcm_memory(self):
        ptr, how = self.r_ptr_out(16 * 8)
        cap = self.r_u32() if self.rng.random() < 0.5 else self.rng.randrange(0, 8)
        # Cached files of the pool and the storm: far fewer than 64.
        allowed = {0} if how == "ok" and cap <= 64 else {0, E.EFAULT}
        head = U.FCM_MEMORY.pack(ptr, cap, self.r_u32(), *([0] * 7))
        return U.FILE_IOC_MEMORY, head, False, allowed, True

    def build_set_fcm_budget(self):
        ram = os.sysconf("SC_PHYS_PAGES")
        good = [1024, 4096, ram // 4, ram // 2]
        bad = [0, 1, 64, 1023, ram + 1, (1 << 64) - 1, 1 << 63]
        pages = self.rng.choice(good + bad)
        # The kernel's RAM count is a little below what sysconf sees.
        allowed = {0} if pages in good else {E.EINVAL}
        if pages == ram // 2:
            allowed = {0, E.EINVAL}
        return U.FILE_IOC_SET_BUDGET, struct.pack("<Q", pages), True, allowed, False

    def build_get_policy(self):
        iface, policy, vals = self._policy_fields()
        # Only the interface is input: the rest may hold anything.
        rest = [self.rng.randbytes(32) for _ in range(U.MAX_POLICIES)]
        data = U.pack_policy(iface, policy, vals, self.r_u32(), rest)
        return U.IOC_GET_POLICY, data, False, get_policy_errnos(iface), True

    def build_set_policy(self):
        iface, policy, vals = self._policy_fields()
        rest = [self.rng.randbytes(32) if self.rng.random() < 0.2 else b"" for _ in range(U.MAX_POLICIES)]
        data = U.pack_policy(iface, policy, vals, self.r_u32(), rest)
        return U.IOC_SET_POLICY, data, True, set_policy_errnos(iface, policy, vals), False

    def build_set_timeout(self):
        rng = self.rng
        oid, kind = self.r_id()
        t = rng.choice(TIMEOUTS) if rng.random() < 0.6 else rng.randrange(1, 5000)
        if not 1 <= t <= 3_600_000:
            allowed = {E.EINVAL}
        else:
            allowed = {0} if kind == "all" else {E.ENOENT} if kind == "unknown" else {0, E.ENOENT}
        return U.IOC_SET_TIMEOUT, U.TIMEOUT.pack(oid, t), True, allowed, False

    def _iface_impl(self, kind):
        iface = self.r_name(b"fcm")
        impl = self.r_name(kind)
        if not is_valid_name(iface) or not is_valid_name(impl):
            return iface, impl, {E.EINVAL}
        if name_text(iface) not in KNOWN_IFACES or name_text(impl) not in IMPL_KIND:
            return iface, impl, {E.ENOENT}
        return iface, impl, None

    def build_swap(self):
        rng = self.rng
        iface, impl, allowed = self._iface_impl(rng.choice((b"shared", b"distributed")))
        oid, kind = self.r_id()
        t = rng.choice(TIMEOUTS)
        ptr, how = self.r_ptr_out(48 * 4)
        cap = rng.choice((0, 1, 2, 64, 0xFFFFFFFF, rng.getrandbits(32)))
        if allowed is None:
            if IMPL_KIND[name_text(impl)] != "object" or t > 3_600_000:
                allowed = {E.EINVAL}
            elif kind == "unknown":
                allowed = {E.ENOENT}
            else:
                allowed = {0, E.ENOENT, E.EFAULT} if how != "ok" and cap else {0, E.ENOENT}
                if kind == "all":
                    allowed.discard(E.ENOENT)
        data = U.SWAP.pack(field32(iface), field32(impl), oid, t, ptr, cap, *(self.r_u32() for _ in range(6)))
        return U.IOC_SWAP, data, True, allowed, True

    def _interpose(self, code, add):
        iface, impl, allowed = self._iface_impl(b"monitor")
        oid, kind = self.r_id()
        if allowed is None:
            if kind == "unknown":
                allowed = {E.ENOENT}
            elif add:
                allowed = {0, E.EINVAL, E.EBUSY, E.ENOENT}
            else:
                allowed = {0, E.EBUSY, E.ENOENT}
        data = U.INTERPOSE.pack(field32(iface), field32(impl), oid, self.r_u32())
        return code, data, True, allowed, True

    def build_interpose(self):
        return self._interpose(U.IOC_INTERPOSE, True)

    def build_uninterpose(self):
        return self._interpose(U.IOC_UNINTERPOSE, False)

    # -- malformed command numbers
    def bad_command(self):
        """A command number the device does not know: ENOTTY. The other
        device's commands and those /dev/hotswap no longer has included."""
        rng = self.rng
        fd, dev = (self.ctl, "control") if rng.random() < 0.6 else (rng.choice(self.pool)[0], "file")
        known = CONTROL_CODES if dev == "control" else FILE_CODES
        x = rng.random()
        if x < 0.1:
            cmd = rng.choice(FILE_CODES if dev == "control" else CONTROL_CODES + GONE_CODES)
        elif x < 0.5:
            # A real command's number with the wrong size or direction.
            real = rng.choice(ALL_CMDS)
            nr, size, d = real & 0xFF, (real >> 16) & 0x3FFF, real >> 30
            if rng.random() < 0.6:
                size = rng.choice((0, 1, 4, size - 1, size + 1, size * 2, size - 8, 0x3FFF, rng.randrange(0x4000)))
            else:
                d = rng.choice([v for v in range(4) if v != d])
            cmd = (d << 30) | (size << 16) | (U.IOC_TYPE << 8) | nr
        elif x < 0.8:
            cmd = (rng.randrange(4) << 30) | (rng.randrange(0x4000) << 16) | (U.IOC_TYPE << 8) | rng.randrange(256)
        else:
            t = rng.choice([t for t in range(256) if t not in VFS_IOCTL_TYPES])
            cmd = (rng.randrange(4) << 30) | (rng.randrange(0x4000) << 16) | (t << 8) | rng.randrange(256)
        if cmd in known:
            return
        addr, _ = self.place(rng.randbytes(64))
        self.check(f"{dev} command {cmd:#x}", ioctl(fd, cmd, addr), {E.ENOTTY})

    # -- /dev/hotswap-file requests
    def file_request(self):
        rng = self.rng
        x = rng.random()
        if x < 0.03:
            self.churn()
            return
        if x < 0.08:
            i = rng.randrange(len(self.pool))
            os.close(self.pool[i][0])
            self.pool[i] = self._open_dev()
            return
        entry = rng.choice(self.pool)
        fd, mode, attached = entry
        if x < 0.14:
            # Attached or not, of either mode: any descriptor will do.
            self.request(fd, "fcm_memory" if rng.random() < 0.6 else "set_fcm_budget")
        elif x < 0.3:
            self.attach(entry)
        elif x < 0.38:
            ptr, how = self.r_ptr_out(U.FILE_INFO.size)
            if not attached:
                allowed = {E.ENOTCONN}
            else:
                allowed = {0} if how == "ok" else {E.EFAULT}
            r = self.check(f"INFO {how}", ioctl(fd, U.FILE_IOC_INFO, ptr), allowed)
            if r == 0 and how == "ok":
                info = dict(zip(U.INFO_FIELDS, U.FILE_INFO.unpack(self.arena.get(ptr, U.FILE_INFO.size))))
                assert info["object"] != 0 and info["allocated"] >= info["freed"], info
        else:
            self.io(entry)

    def attach(self, entry):
        rng = self.rng
        fd, mode, attached = entry
        name = rng.choice(list(self.fds))
        bfd, on_rdwr, on_rdonly = self.fds[name]
        want = on_rdwr if mode == os.O_RDWR else on_rdonly
        x = rng.random()
        if x < 0.8:
            addr, where = self._u32(bfd), "rw"
        else:
            addr, where = self.place(struct.pack("<I", bfd))
        if where == "bad":
            allowed = {E.EFAULT}
        elif attached:
            allowed = {E.EBUSY}
        else:
            allowed = {want}
        r = self.check(f"ATTACH {name} on {'rdwr' if mode == os.O_RDWR else 'rdonly'} "
                       f"{'attached' if attached else 'fresh'} at {where}", ioctl(fd, U.FILE_IOC_ATTACH, addr),
                       allowed)
        if r == 0:
            entry[2] = True

    def io(self, entry):
        rng = self.rng
        fd, mode, attached = entry
        a = self.arena
        op = rng.choice(("read", "pread", "write", "pwrite", "lseek", "fsync"))
        if op == "fsync":
            self.check("fsync", ret(c_fsync(fd)), {0} if attached else {E.ENOTCONN})
            return
        if op == "lseek":
            off = rng.choice((0, 1, -1, PAGE, 1 << 40, (1 << 63) - 1, -(1 << 63), rng.getrandbits(20)))
            whence = rng.choice((0, 1, 2, 3, 4, 5, 99))
            r = ret(c_lseek(fd, off, whence))
            if whence > 4:
                allowed = {E.EINVAL}
            elif not attached:
                allowed = {E.ENOTCONN}
            else:
                allowed = {0, E.EINVAL, E.ENXIO}
            self.check(f"lseek {off} {whence}", r, allowed)
            return
        # A buffer: writable, read-only, straddling into PROT_NONE, wild.
        x = rng.random()
        if x < 0.55:
            buf, kind = a.rw + rng.randrange(0, 8 * PAGE), "rw"
        elif x < 0.7:
            buf, kind = a.ro + rng.randrange(0, PAGE), "ro"
        elif x < 0.8:
            buf, kind = a.guard - rng.randrange(1, 64), "edge"
        else:
            buf, kind = rng.choice(WILD_PTRS + (a.unmapped, a.guard)), "bad"
        length = rng.choice((0, 1, 7, PAGE, PAGE + 1, 3 * PAGE, 1 << 31, 1 << 40, (1 << 63) - 1,
                             (1 << 64) - 1, rng.randrange(1, 2 * PAGE)))
        off = rng.choice((0, 1, PAGE - 1, 3 * PAGE + 4, 1 << 31, 1 << 40, 1 << 62, (1 << 63) - 1,
                          -1, -PAGE, rng.randrange(0, 8 * PAGE)))
        writing = op in ("write", "pwrite")
        if op.startswith("p") and off < 0:
            allowed = {E.EINVAL}
        elif writing and mode != os.O_RDWR:
            allowed = {E.EBADF}
        elif not attached:
            allowed = {E.ENOTCONN, E.EFAULT, E.EINVAL}
        else:
            allowed = {0, E.EFAULT, E.EINVAL, E.EFBIG, E.EOVERFLOW}
        if op == "read":
            r = ret(c_read(fd, buf, length))
        elif op == "pread":
            r = ret(c_pread(fd, buf, length, off))
        elif op == "write":
            r = ret(c_write(fd, buf, length))
        else:
            r = ret(c_pwrite(fd, buf, length, off))
        self.check(f"{op} {kind} len={length} off={off}", r, allowed)
        if r > length:
            self.check(f"{op} returned {r} for {length}", -E.ERANGE, set())
        if op in ("read", "pread") and r > 0 and kind == "rw" and buf + r > a.rw_end:
            self.check(f"{op} wrote {r} bytes past writable memory", -E.ERANGE, set())

    def churn(self):
        """A short-lived FCM: open, attach, one read, close (the object is
        created and destroyed while the racer swaps)."""
        fd = os.open(U.FILE_DEVICE, os.O_RDWR)
        try:
            b = os.open(self.scratch2, os.O_RDWR)
            self.check("churn ATTACH", ioctl(fd, U.FILE_IOC_ATTACH, self._u32(b)), {0})
            os.close(b)
            r = ret(c_pread(fd, self.arena.rw + 4 * PAGE, PAGE, self.rng.randrange(0, 4 * PAGE)))
            self.check("churn pread", r, {0})
        finally:
            os.close(fd)

    # -- the run
    def run(self, n):
        rng = self.rng
        start = time.monotonic()
        while self.count < n:
            x = rng.random()
            try:
                if x < 0.55:
                    self.control_request()
                elif x < 0.7:
                    self.bad_command()
                else:
                    self.file_request()
            except OSError as e:
                # A descriptor operation of the harness itself (open/close).
                raise Unexpected(f"request {self.count}: harness OSError {e}") from e
        return time.monotonic() - start

    def close(self):
        for fd, _, _ in self.pool:
            os.close(fd)
        os.close(self.keeper)
        self.arena.check_unmapped()

    def summary(self):
        return {errno.errorcode.get(k, "success") if k else "ok": v for k, v in sorted(self.errnos.items())}


CONTROL_CMDS = ("version", "list_interfaces", "list_impls", "list_objects", "status", "report",
                "get_policy", "set_policy", "set_timeout", "swap", "interpose", "uninterpose")
# What each device answers; everything else is ENOTTY on it.
CONTROL_CODES = (U.IOC_VERSION, U.IOC_LIST_INTERFACES, U.IOC_LIST_IMPLS, U.IOC_LIST_OBJECTS, U.IOC_STATUS,
                 U.IOC_SWAP, U.IOC_INTERPOSE, U.IOC_UNINTERPOSE, U.IOC_SET_TIMEOUT, U.IOC_REPORT,
                 U.IOC_SET_POLICY, U.IOC_GET_POLICY)
FILE_CODES = (U.FILE_IOC_ATTACH, U.FILE_IOC_INFO, U.FILE_IOC_TRUNCATE, U.FILE_IOC_MEMORY,
              U.FILE_IOC_SET_BUDGET)
# /dev/hotswap's FCM memory requests of UAPI_VERSION 4 (now FILE_IOC_*),
# and its old PolicyRequest (48 bytes).
GONE_CODES = (U.OLD_IOC_FCM_MEMORY, U.OLD_IOC_SET_FCM_BUDGET, U.ioc(U.W, 0x0B, 48), U.ioc(U.R | U.W, 0x0C, 48))
ALL_CMDS = CONTROL_CODES + FILE_CODES
# Types do_vfs_ioctl() answers itself before the driver sees the command.
VFS_IOCTL_TYPES = {0x00, 0x15, 0x54, 0x58, 0x66, 0x94}

# ---------------------------------------------------------------- crafted


def crafted(fz):
    """Crafted requests with nothing else running: each failing one must
    leave the snapshot as it was. Returns the number issued."""
    a, ctl = fz.arena, fz.ctl
    fz.refresh_ids()
    oid = fz.ids[0]
    fcm, shared, dist, mon = field32(b"fcm"), field32(b"shared"), field32(b"distributed"), field32(b"monitor")
    swap = lambda i, im, o=0, t=0, p=0, c=0: U.SWAP.pack(i, im, o, t, p, c, 0, 0, 0, 0, 0, 0)  # noqa: E731
    inter = lambda i, im, o=0: U.INTERPOSE.pack(i, im, o, 0)  # noqa: E731
    pol = lambda p=b"cpu_count", params=(2, 1, 3, 0), i=fcm: U.pack_policy(i, field32(p), params)  # noqa: E731
    bad_names = [field32(n) for n in NAMES_INVALID]
    cases = []  # (what, cmd, data, where, allowed)
    for where in ("rw", "ro", "straddle_ro"):
        w = lambda ok: ok if where == "rw" else {E.EFAULT}  # noqa: E731
        cases += [
            ("swap one to distributed", U.IOC_SWAP, swap(fcm, dist, oid), where, w({0})),
            ("swap all to distributed", U.IOC_SWAP, swap(fcm, dist), where, w({0})),
            ("interpose monitor", U.IOC_INTERPOSE, inter(fcm, mon, oid), where, w({0})),
            ("uninterpose monitor", U.IOC_UNINTERPOSE, inter(fcm, mon, oid), where, w({0})),
        ]
        if where != "rw":
            # Commands without IOC_READ have nothing to write back: a
            # read-only request is fine.
            cases += [
                ("set timeout on read-only memory", U.IOC_SET_TIMEOUT, U.TIMEOUT.pack(oid, 4242), where, {0}),
                ("set policy off on read-only memory", U.IOC_SET_POLICY, pol(b"off", (3, 2, 7, 0)), where, {0}),
            ]
    for n in bad_names:
        cases += [
            ("swap, bad interface name", U.IOC_SWAP, swap(n, dist), "rw", {E.EINVAL}),
            ("swap, bad implementation name", U.IOC_SWAP, swap(fcm, n), "rw", {E.EINVAL}),
            ("interpose, bad name", U.IOC_INTERPOSE, inter(fcm, n), "rw", {E.EINVAL}),
            ("uninterpose, bad name", U.IOC_UNINTERPOSE, inter(n, mon), "rw", {E.EINVAL}),
            ("set policy, bad interface name", U.IOC_SET_POLICY, pol(i=n), "rw", {E.EINVAL}),
            ("set policy off, bad interface name", U.IOC_SET_POLICY, pol(b"off", i=n), "rw", {E.EINVAL}),
            ("set policy, bad policy name", U.IOC_SET_POLICY, pol(n), "rw", {E.EINVAL}),
            ("set policy, bad policy name, unknown interface", U.IOC_SET_POLICY,
             pol(n, i=field32(b"nosuch")), "rw", {E.EINVAL}),
            ("get policy, bad interface name", U.IOC_GET_POLICY, pol(i=n), "rw", {E.EINVAL}),
            ("get policy, a bad policy name is no input", U.IOC_GET_POLICY, pol(n), "rw", {0}),
        ]
    cases += [
        ("swap to an unknown implementation", U.IOC_SWAP, swap(fcm, field32(b"nosuch")), "rw", {E.ENOENT}),
        ("swap an unknown interface", U.IOC_SWAP, swap(field32(b"nosuch"), dist), "rw", {E.ENOENT}),
        ("swap to an interposer", U.IOC_SWAP, swap(fcm, mon), "rw", {E.EINVAL}),
        ("swap an unknown object", U.IOC_SWAP, swap(fcm, dist, 999_999), "rw", {E.ENOENT}),
        ("swap object 2^32-1", U.IOC_SWAP, swap(fcm, dist, 0xFFFFFFFF), "rw", {E.ENOENT}),
        ("swap, timeout past an hour", U.IOC_SWAP, swap(fcm, dist, 0, 3_600_001), "rw", {E.EINVAL}),
        ("swap, results to NULL", U.IOC_SWAP, swap(fcm, dist, 0, 0, 0, 4), "rw", {E.EFAULT}),
        ("swap, results to a kernel address", U.IOC_SWAP, swap(fcm, dist, 0, 0, KERNEL_PTRS[0], 1), "rw",
         {E.EFAULT}),
        ("swap, results to read-only memory", U.IOC_SWAP, swap(fcm, dist, oid, 0, a.ro, 1), "rw", {E.EFAULT}),
        ("swap, results to an unmapped page", U.IOC_SWAP, swap(fcm, dist, oid, 0, a.unmapped, 0xFFFFFFFF), "rw",
         {E.EFAULT}),
        ("interpose an object implementation", U.IOC_INTERPOSE, inter(fcm, shared, oid), "rw", {E.EINVAL}),
        ("interpose an unknown implementation", U.IOC_INTERPOSE, inter(fcm, field32(b"nosuch")), "rw", {E.ENOENT}),
        ("interpose on an unknown object", U.IOC_INTERPOSE, inter(fcm, mon, 999_999), "rw", {E.ENOENT}),
        ("uninterpose what is not there", U.IOC_UNINTERPOSE, inter(fcm, mon, oid), "rw", {E.ENOENT}),
        ("uninterpose an unknown interface", U.IOC_UNINTERPOSE, inter(field32(b"nosuch"), mon), "rw", {E.ENOENT}),
        ("set timeout 0", U.IOC_SET_TIMEOUT, U.TIMEOUT.pack(oid, 0), "rw", {E.EINVAL}),
        ("set timeout past an hour", U.IOC_SET_TIMEOUT, U.TIMEOUT.pack(0, 3_600_001), "rw", {E.EINVAL}),
        ("set timeout 2^32-1", U.IOC_SET_TIMEOUT, U.TIMEOUT.pack(0, 0xFFFFFFFF), "rw", {E.EINVAL}),
        ("set timeout, unknown object", U.IOC_SET_TIMEOUT, U.TIMEOUT.pack(999_999, 100), "rw", {E.ENOENT}),
        ("cpu_count up_cpus 1", U.IOC_SET_POLICY, pol(params=(1, 1, 3, 0)), "rw", {E.EINVAL}),
        ("cpu_count up_cpus 0", U.IOC_SET_POLICY, pol(params=(0, 1, 3, 0)), "rw", {E.EINVAL}),
        ("cpu_count up_windows 0", U.IOC_SET_POLICY, pol(params=(2, 0, 3, 0)), "rw", {E.EINVAL}),
        ("cpu_count down <= up", U.IOC_SET_POLICY, pol(params=(2, 3, 3, 0)), "rw", {E.EINVAL}),
        ("cpu_count down 0", U.IOC_SET_POLICY, pol(params=(2, 1, 0, 0)), "rw", {E.EINVAL}),
        ("cpu_count params[3] 1", U.IOC_SET_POLICY, pol(params=(2, 1, 3, 1)), "rw", {E.EINVAL}),
        ("cpu_count params[3] only", U.IOC_SET_POLICY, pol(params=(0, 0, 0, 1)), "rw", {E.EINVAL}),
        ("cpu_count params 2^32-1", U.IOC_SET_POLICY, pol(params=(0xFFFFFFFF,) * 4), "rw", {E.EINVAL}),
        ("an unknown policy", U.IOC_SET_POLICY, pol(b"nosuch"), "rw", {E.ENOENT}),
        ("the policy of UAPI_VERSION 4's name", U.IOC_SET_POLICY, pol(b"enabled"), "rw", {E.ENOENT}),
        ("an implementation as policy", U.IOC_SET_POLICY, pol(b"shared"), "rw", {E.ENOENT}),
        ("an interposer as policy", U.IOC_SET_POLICY, pol(b"monitor"), "rw", {E.ENOENT}),
        ("policy of an unknown interface", U.IOC_SET_POLICY, pol(i=field32(b"hstest")), "rw", {E.ENOENT}),
        ("policy off of an unknown interface", U.IOC_SET_POLICY, pol(b"off", i=field32(b"nosuch")), "rw",
         {E.ENOENT}),
        ("get policy of an unknown interface", U.IOC_GET_POLICY, pol(i=field32(b"nosuch")), "rw", {E.ENOENT}),
        ("set policy off, params ignored", U.IOC_SET_POLICY, pol(b"off", (0xFFFFFFFF, 0, 1, 7)), "rw", {0}),
        ("set policy off, bytes after the NUL", U.IOC_SET_POLICY, pol(b"off\0junk", i=field32(b"fcm\0x")),
         "rw", {0}),
        ("status of object 0", U.IOC_STATUS, struct.pack("<I", 0) + bytes(U.STATUS.size - 4), "rw", {E.ENOENT}),
        ("report of an unknown object", U.IOC_REPORT, U.REPORT.pack(999_999, 0, b""), "rw", {E.ENOENT}),
        ("list objects into NULL", U.IOC_LIST_OBJECTS, U.LIST.pack(0, 8, 0), "rw", {E.EFAULT}),
        ("list objects into read-only memory", U.IOC_LIST_OBJECTS, U.LIST.pack(a.ro, 8, 0), "rw", {E.EFAULT}),
        ("list impls, capacity 2^32-1 into a kernel address", U.IOC_LIST_IMPLS,
         U.LIST.pack(KERNEL_PTRS[1], 0xFFFFFFFF, 0), "rw", {E.EFAULT}),
        ("get policy, bytes after the NUL", U.IOC_GET_POLICY, pol(i=field32(b"fcm\0junk")), "rw", {0}),
        ("swap, bytes after the NUL", U.IOC_SWAP, swap(field32(b"fcm\0x"), field32(b"shared\0y")), "rw", {0}),
        ("list interfaces, capacity 0 into NULL", U.IOC_LIST_INTERFACES, U.LIST.pack(0, 0, 0), "rw", {0}),
        ("version into read-only memory", U.IOC_VERSION, bytes(8), "ro", {E.EFAULT}),
        ("get policy into read-only memory", U.IOC_GET_POLICY, pol(), "ro", {E.EFAULT}),
    ]
    # What /dev/hotswap no longer has, and the cached-file device's
    # requests: not the control device's.
    for cmd in GONE_CODES + FILE_CODES:
        cases.append((f"command {cmd:#x} on /dev/hotswap", cmd, bytes(U.FCM_MEMORY.size), "rw", {E.ENOTTY}))
    for ptr in WILD_PTRS + (a.unmapped, a.guard):
        for cmd in CONTROL_CODES:
            cases.append((f"request at {ptr:#x}", cmd, None, ptr, {E.EFAULT}))
    issued = 0
    for what, cmd, data, where, allowed in cases:
        before = snapshot(ctl, a)
        if isinstance(where, int):
            addr = where
        elif where == "rw":
            addr = a.rw
            a.put(addr, data)
        elif where == "ro":
            a.put_ro(0, data)
            addr = a.ro
        else:  # straddle_ro: the last 8 bytes lie in the read-only page
            addr = a.rw_end - (len(data) - 8)
            a.put(addr, data[:len(data) - 8])
            a.put_ro(0, data[len(data) - 8:])
        r = fz.check(f"crafted: {what} ({where})", ioctl(ctl, cmd, addr), allowed)
        issued += 1
        if r < 0:
            after = snapshot(ctl, a)
            if after != before:
                fz.unexpected.append(f"crafted: {what} ({where}) failed with "
                                     f"{errno.errorcode.get(-r)} but changed {before} -> {after}")
                print("UNEXPECTED " + fz.unexpected[-1], file=sys.stderr, flush=True)
        elif cmd == U.IOC_SWAP:
            # Back to where the next case expects it (an interpose is
            # undone by the uninterpose case after it).
            U.swap(ctl, "fcm", "shared")
    return issued + crafted_cpu_count(fz)


def crafted_cpu_count(fz):
    """cpu_count on with its defaults (all-zero params), then off: GET
    answers what is used, every FCM gets the monitor, and keeps it after.
    Returns the number of requests issued."""
    a, ctl = fz.arena, fz.ctl
    ids = fcm_ids(ctl, a)

    def monitored():
        return {oid for oid in ids if (st := status(ctl, a, oid)) and
                "monitor" in (U.text(st[4][i * 32:(i + 1) * 32]) for i in range(st[5]))}

    def expect_policy(what, policy, params):
        out = get_policy(ctl, a)
        problem = policy_problem((b"fcm",) + out)
        if problem or (out[0], out[1:5]) != (field32(policy), params):
            fz.fail(f"crafted: {what}: get policy answered {out[:5]} ({problem})")

    a.put(a.rw, U.pack_policy(field32(b"fcm"), field32(b"cpu_count")))
    fz.check("crafted: cpu_count with its defaults", ioctl(ctl, U.IOC_SET_POLICY, a.rw), {0})
    expect_policy("cpu_count with its defaults", b"cpu_count", CPU_COUNT_DEFAULTS)
    if monitored() != set(ids):
        fz.fail(f"crafted: cpu_count on: monitors on {sorted(monitored())} of FCMs {ids}")
    a.put(a.rw, U.pack_policy(field32(b"fcm"), field32(b"cpu_count"), (3, 2, 9, 0)))
    fz.check("crafted: cpu_count 3 2 9", ioctl(ctl, U.IOC_SET_POLICY, a.rw), {0})
    expect_policy("cpu_count 3 2 9", b"cpu_count", (3, 2, 9, 0))
    a.put(a.rw, U.pack_policy(field32(b"fcm"), field32(b"off"), (3, 2, 9, 0)))
    fz.check("crafted: policy off", ioctl(ctl, U.IOC_SET_POLICY, a.rw), {0})
    expect_policy("policy off", b"off", (0, 0, 0, 0))
    if monitored() != set(ids):
        fz.fail(f"crafted: policy off removed monitors: left on {sorted(monitored())} of {ids}")
    # Back to no monitor, as the cases before expect.
    for _ in range(100):
        a.put(a.rw, U.INTERPOSE.pack(field32(b"fcm"), field32(b"monitor"), 0, 0))
        if ioctl(ctl, U.IOC_UNINTERPOSE, a.rw) != 0:
            break
    return 3


def crafted_file(fz):
    """The cached-file device's crafted cases: INFO, read, lseek and fsync
    before attaching; every kind of bad descriptor; a second ATTACH."""
    a = fz.arena
    dev = os.open(U.FILE_DEVICE, os.O_RDWR)
    try:
        fz.check("INFO before attach", ioctl(dev, U.FILE_IOC_INFO, a.rw), {E.ENOTCONN})
        fz.check("read before attach", ret(c_read(dev, a.rw, 10)), {E.ENOTCONN})
        fz.check("pwrite before attach", ret(c_pwrite(dev, a.rw, 10, 0)), {E.ENOTCONN})
        fz.check("lseek before attach", ret(c_lseek(dev, 0, 2)), {E.ENOTCONN})
        fz.check("fsync before attach", ret(c_fsync(dev)), {E.ENOTCONN})
        for name, (bfd, want, _) in fz.fds.items():
            if want:
                fz.check(f"ATTACH {name}", ioctl(dev, U.FILE_IOC_ATTACH, fz._u32(bfd)), {want})
        fz.check("ATTACH from NULL", ioctl(dev, U.FILE_IOC_ATTACH, 0), {E.EFAULT})
        fz.check("ATTACH from a kernel address", ioctl(dev, U.FILE_IOC_ATTACH, KERNEL_PTRS[0]), {E.EFAULT})
        fz.check("ATTACH rdwr", ioctl(dev, U.FILE_IOC_ATTACH, fz._u32(fz.fds["rdwr"][0])), {0})
        fz.check("second ATTACH", ioctl(dev, U.FILE_IOC_ATTACH, fz._u32(fz.fds["rdwr"][0])), {E.EBUSY})
        fz.check("INFO into read-only memory", ioctl(dev, U.FILE_IOC_INFO, a.ro), {E.EFAULT})
        fz.check("INFO into a kernel address", ioctl(dev, U.FILE_IOC_INFO, KERNEL_PTRS[0]), {E.EFAULT})
        fz.check("pread into read-only memory", ret(c_pread(dev, a.ro, 10, 0)), {E.EFAULT})
        fz.check("pread, negative offset", ret(c_pread(dev, a.rw, 10, -1)), {E.EINVAL})
        fz.check("pwrite past 2^63", ret(c_pwrite(dev, a.rw, PAGE, (1 << 63) - 100)), {E.EINVAL})
        fz.check("pwrite from NULL", ret(c_pwrite(dev, 0, 10, 0)), {E.EFAULT})
        fz.check("pwrite from a kernel address", ret(c_pwrite(dev, KERNEL_PTRS[0], 10, 0)), {E.EFAULT})
        fz.check("lseek to -1", ret(c_lseek(dev, -1, 0)), {E.EINVAL})
        fz.check("lseek whence 99", ret(c_lseek(dev, 0, 99)), {E.EINVAL})
        fz.check("read, length 2^64-1", ret(c_read(dev, a.rw, (1 << 64) - 1)), {E.EFAULT, E.EINVAL})
        fz.check("pread at 2^62", ret(c_pread(dev, a.rw, 10, 1 << 62)), {0})
    finally:
        os.close(dev)
    ro = os.open(U.FILE_DEVICE, os.O_RDONLY)
    try:
        fz.check("write on a read-only opener", ret(c_write(ro, a.rw, 1)), {E.EBADF})
    finally:
        os.close(ro)


def memory_figures(fz, fd, what):
    """FCM memory through /dev/hotswap-file descriptor `fd`: (figures,
    {object: pages}), or None if the request failed (counted unexpected)."""
    a = fz.arena
    out = a.rw + 8 * PAGE
    a.put(a.rw, U.FCM_MEMORY.pack(out, 64, *([0] * 8)))
    if fz.check(f"FCM memory ({what})", ioctl(fd, U.FILE_IOC_MEMORY, a.rw), {0}) != 0:
        return None
    m = dict(zip(U.MEMORY_FIELDS, U.FCM_MEMORY.unpack(a.get(a.rw, U.FCM_MEMORY.size))))
    n = min(m["count"], 64)
    pages = dict(U.FCM_PAGES.unpack_from(a.get(out, n * U.FCM_PAGES.size), i * U.FCM_PAGES.size)[::2]
                 for i in range(n))
    return m, pages


def crafted_memory(fz):
    """The FCM memory requests of /dev/hotswap-file, as root: on any
    descriptor; bad pointers EFAULT; budgets out of range EINVAL and a
    refused one changes nothing; /dev/hotswap's requests are not the file
    device's."""
    a = fz.arena
    ram = os.sysconf("SC_PHYS_PAGES")
    keeper_id = fz_info_object(fz, fz.keeper)
    fresh = os.open(U.FILE_DEVICE, os.O_RDONLY)  # attached to nothing
    try:
        got = {}
        for fd, what in ((fresh, "an unattached read-only descriptor"), (fz.keeper, "an attached one")):
            got[what] = memory_figures(fz, fd, what)
        if None in got.values():
            return
        m, pages = got["an unattached read-only descriptor"]
        if m["page_size"] != PAGE or not 1024 <= m["budget"] <= ram or m["user_budget"] > m["budget"]:
            fz.fail(f"crafted: FCM memory figures {m}")
        if keeper_id not in pages or m["count"] < 1:
            fz.fail(f"crafted: FCM memory lists {pages} ({m['count']}), not object {keeper_id}")
        start = m["budget"]
        head = lambda entries, cap: U.FCM_MEMORY.pack(entries, cap, *([0] * 8))  # noqa: E731
        budget = lambda pages: struct.pack("<Q", pages)  # noqa: E731
        cases = [  # (what, cmd, data, where, allowed)
            ("FCM memory, entries to NULL", U.FILE_IOC_MEMORY, head(0, 8), "rw", {E.EFAULT}),
            ("FCM memory, entries to read-only memory", U.FILE_IOC_MEMORY, head(a.ro, 8), "rw", {E.EFAULT}),
            ("FCM memory, entries to an unmapped page", U.FILE_IOC_MEMORY, head(a.unmapped, 1), "rw",
             {E.EFAULT}),
            ("FCM memory, capacity 2^32-1 into a kernel address", U.FILE_IOC_MEMORY,
             head(KERNEL_PTRS[1], 0xFFFFFFFF), "rw", {E.EFAULT}),
            ("FCM memory into read-only memory", U.FILE_IOC_MEMORY, head(a.rw + 8 * PAGE, 8), "ro", {E.EFAULT}),
            ("FCM memory, capacity 0 into NULL", U.FILE_IOC_MEMORY, head(0, 0), "rw", {0}),
            ("set budget 0", U.FILE_IOC_SET_BUDGET, budget(0), "rw", {E.EINVAL}),
            ("set budget 1023", U.FILE_IOC_SET_BUDGET, budget(1023), "rw", {E.EINVAL}),
            ("set budget past the RAM", U.FILE_IOC_SET_BUDGET, budget(ram + 1), "rw", {E.EINVAL}),
            ("set budget 2^63", U.FILE_IOC_SET_BUDGET, budget(1 << 63), "rw", {E.EINVAL}),
            ("set budget 2^64-1", U.FILE_IOC_SET_BUDGET, budget((1 << 64) - 1), "rw", {E.EINVAL}),
        ]
        for ptr in WILD_PTRS + (a.unmapped, a.guard):
            cases += [(f"FCM memory at {ptr:#x}", U.FILE_IOC_MEMORY, None, ptr, {E.EFAULT}),
                      (f"set budget at {ptr:#x}", U.FILE_IOC_SET_BUDGET, None, ptr, {E.EFAULT})]
        # The control device's requests, and those it no longer has.
        for cmd in CONTROL_CODES + GONE_CODES:
            cases.append((f"command {cmd:#x} on /dev/hotswap-file", cmd, bytes(U.SWAP.size), "rw", {E.ENOTTY}))
        for i, (what, cmd, data, where, allowed) in enumerate(cases):
            if isinstance(where, int):
                addr = where
            elif where == "rw":
                addr = a.rw
                a.put(addr, data)
            else:
                a.put_ro(0, data)
                addr = a.ro
            fd = (fresh, fz.keeper)[i % 2]
            fz.check(f"crafted: {what}", ioctl(fd, cmd, addr), allowed)
            now = memory_figures(fz, fresh, f"after {what}")
            if now and now[0]["budget"] != start:
                fz.fail(f"crafted: {what}: the budget went from {start} to {now[0]['budget']}")
        a.put(a.rw, budget(1024))
        fz.check("crafted: set budget 1024", ioctl(fz.keeper, U.FILE_IOC_SET_BUDGET, a.rw), {0})
        now = memory_figures(fz, fresh, "after the budget was set")
        if now and now[0]["budget"] != 1024:
            fz.fail(f"crafted: set budget 1024, but it is {now[0]['budget']}")
        # No IOC_READ: a request in read-only memory is fine.
        a.put_ro(0, budget(start))
        fz.check("crafted: set budget from read-only memory", ioctl(fresh, U.FILE_IOC_SET_BUDGET, a.ro), {0})
        now = memory_figures(fz, fresh, "after the budget was restored")
        if now and now[0]["budget"] != start:
            fz.fail(f"crafted: budget {now[0]['budget']} after restoring {start}")
    finally:
        os.close(fresh)


def fz_info_object(fz, dev):
    a = fz.arena
    assert ioctl(dev, U.FILE_IOC_INFO, a.rw) == 0
    return U.FILE_INFO.unpack(a.get(a.rw, U.FILE_INFO.size))[0]


def nobody_checks(fz):
    """Well-formed requests as the unprivileged user: reads work, every
    change is EPERM."""
    a, ctl = fz.arena, fz.ctl
    fz.refresh_ids()
    oid = fz.ids[0]
    fcm = field32(b"fcm")
    reads = [
        ("version", U.IOC_VERSION, bytes(U.VERSION.size)),
        ("list interfaces", U.IOC_LIST_INTERFACES, U.LIST.pack(a.rw + 8 * PAGE, 16, 0)),
        ("list implementations", U.IOC_LIST_IMPLS, U.LIST.pack(a.rw + 8 * PAGE, 16, 0)),
        ("list objects", U.IOC_LIST_OBJECTS, U.LIST.pack(a.rw + 8 * PAGE, 16, 0)),
        ("status", U.IOC_STATUS, struct.pack("<I", oid) + bytes(U.STATUS.size - 4)),
        ("reports", U.IOC_REPORT, U.REPORT.pack(oid, 0, b"")),
        ("get policy", U.IOC_GET_POLICY, U.pack_policy(fcm)),
        ("get policy, junk in the rest", U.IOC_GET_POLICY,
         U.pack_policy(fcm, b"\xff" * 32, (1, 2, 3, 4), 7, [b"\xee" * 32] * 8)),
    ]
    changes = [
        ("swap all", U.IOC_SWAP, U.SWAP.pack(fcm, field32(b"distributed"), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
        ("swap one", U.IOC_SWAP, U.SWAP.pack(fcm, field32(b"distributed"), oid, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
        ("interpose", U.IOC_INTERPOSE, U.INTERPOSE.pack(fcm, field32(b"monitor"), 0, 0)),
        ("uninterpose", U.IOC_UNINTERPOSE, U.INTERPOSE.pack(fcm, field32(b"monitor"), oid, 0)),
        ("set timeout", U.IOC_SET_TIMEOUT, U.TIMEOUT.pack(0, 100)),
        ("set policy cpu_count", U.IOC_SET_POLICY, U.pack_policy(fcm, field32(b"cpu_count"), (2, 1, 3, 0))),
        ("set policy cpu_count, defaults", U.IOC_SET_POLICY, U.pack_policy(fcm, field32(b"cpu_count"))),
        ("set policy off", U.IOC_SET_POLICY, U.pack_policy(fcm, field32(b"off"))),
        ("set policy, refused params", U.IOC_SET_POLICY, U.pack_policy(fcm, field32(b"cpu_count"), (1, 0, 0, 0))),
        ("set policy, unknown interface", U.IOC_SET_POLICY, U.pack_policy(field32(b"nosuch"), field32(b"off"))),
        ("set policy, bad name", U.IOC_SET_POLICY, U.pack_policy(fcm, field32(b"CPU"))),
    ]
    for what, cmd, data in reads + changes:
        a.put(a.rw, data)
        fz.check(f"unprivileged {what}", ioctl(ctl, cmd, a.rw), {0} if (what, cmd, data) in reads else {E.EPERM})
    for what, cmd, _ in changes:
        fz.check(f"unprivileged {what} from NULL", ioctl(ctl, cmd, 0), {E.EPERM})
    a.put(a.rw, U.pack_policy(fcm))
    if ioctl(ctl, U.IOC_GET_POLICY, a.rw) == 0:
        problem = policy_problem(U.POLICY.unpack(a.get(a.rw, U.POLICY.size)))
        if problem:
            fz.fail(f"unprivileged get policy answered {problem}")
    # /dev/hotswap-file: FCM memory reads on any descriptor; the budget
    # stays root's, whatever the value or the pointer.
    for mode in (os.O_RDONLY, os.O_RDWR):
        dev = os.open(U.FILE_DEVICE, mode)
        try:
            before = memory_figures(fz, dev, "unprivileged")
            for pages in (4096, 0, 1023, (1 << 64) - 1):
                a.put(a.rw, struct.pack("<Q", pages))
                fz.check(f"unprivileged set budget {pages}", ioctl(dev, U.FILE_IOC_SET_BUDGET, a.rw), {E.EPERM})
            for ptr in (0, KERNEL_PTRS[0], a.unmapped):
                fz.check(f"unprivileged set budget from {ptr:#x}", ioctl(dev, U.FILE_IOC_SET_BUDGET, ptr),
                         {E.EPERM})
            after = memory_figures(fz, dev, "unprivileged, after")
            if before and after and before[0]["budget"] != after[0]["budget"]:
                fz.fail(f"unprivileged: the budget went from {before[0]['budget']} to {after[0]['budget']}")
        finally:
            os.close(dev)


# ---------------------------------------------------------------- racer, worker

def racer(stop_fd, out_path, seed):
    """Swaps every FCM shared <-> distributed (all, or one object) and
    interposes/removes the monitor, through the real ioctls, until told
    to stop. Writes its counts to out_path."""
    rng = random.Random(seed ^ 0x5A5A)
    arena = Arena()
    ctl = os.open(U.CONTROL, os.O_RDWR)
    counts = {"swaps": 0, "completed": 0, "aborted": 0, "interposed": 0, "removed": 0, "busy": 0,
              "gone": 0}
    bad = []
    res = arena.rw + 4 * PAGE
    target = b"distributed"
    # Paced (the VM has two vCPUs, and the fuzzer needs one).
    while not select.select([stop_fd], [], [], 0.01)[0]:
        ids = fcm_ids(ctl, arena)
        x = rng.random()
        if x < 0.6:
            oid = 0 if rng.random() < 0.5 or not ids else rng.choice(ids)
            arena.put(arena.rw, U.SWAP.pack(field32(b"fcm"), field32(target), oid, 0, res, 64,
                                            0, 0, 0, 0, 0, 0))
            r = ioctl(ctl, U.IOC_SWAP, arena.rw)
            if r == 0:
                out = U.SWAP.unpack(arena.get(arena.rw, U.SWAP.size))
                counts["swaps"] += 1
                counts["completed"] += out[7]
                counts["aborted"] += out[8]
            elif r == -E.ENOENT and oid:
                counts["gone"] += 1
            else:
                bad.append(f"swap {oid} to {target}: {r}")
            target = b"shared" if target == b"distributed" else b"distributed"
        else:
            add = rng.random() < 0.5
            oid = 0 if rng.random() < 0.5 or not ids else rng.choice(ids)
            arena.put(arena.rw, U.INTERPOSE.pack(field32(b"fcm"), field32(b"monitor"), oid, 0))
            r = ioctl(ctl, U.IOC_INTERPOSE if add else U.IOC_UNINTERPOSE, arena.rw)
            if r == 0:
                counts["interposed" if add else "removed"] += 1
            elif r == -E.EBUSY:
                counts["busy"] += 1
            elif r == -E.ENOENT:
                counts["gone"] += 1
            else:
                bad.append(f"{'interpose' if add else 'uninterpose'} {oid}: {r}")
    with open(out_path, "w") as f:
        f.write(repr((counts, bad)))


def worker(stop_fd, path, out_path, seed):
    """Writes and reads `path` through /dev/hotswap-file, checking every
    read against the model, until told to stop; then saves the model."""
    rng = random.Random(seed ^ 0xA5A5)
    size = os.path.getsize(path)
    model = bytearray(open(path, "rb").read())
    dev = U.open_cached(path, os.O_RDWR)
    ops = 0
    bad = []
    while not select.select([stop_fd], [], [], 0.005)[0] and not bad:
        for _ in range(20):
            pos = rng.randrange(0, size - 64)
            n = rng.randrange(1, min(3 * PAGE, size - pos))
            if rng.random() < 0.4:
                data = rng.randbytes(n)
                if os.pwrite(dev, data, pos) != n:
                    bad.append(f"short pwrite at {pos}")
                model[pos:pos + n] = data
            else:
                got = os.pread(dev, n, pos)
                if got != model[pos:pos + n]:
                    bad.append(f"read at {pos}+{n} differs from the model")
            ops += 1
        if rng.random() < 0.05:
            os.fsync(dev)
    # Everything reads back through the cache; the last close writes back
    # what is dirty (the parent checks the file).
    if os.pread(dev, size + PAGE, 0) != model:
        bad.append("the cache differs from the model at the end")
    os.close(dev)
    with open(out_path + ".model", "wb") as f:
        f.write(model)
    with open(out_path, "w") as f:
        f.write(repr((ops, bad)))


STOP_PIPES = []


def spawn(fn, *args):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in STOP_PIPES + [w]:
            os.close(fd)
        code = 0
        try:
            fn(r, *args)
        except BaseException as e:  # noqa: BLE001 - reported through the exit code
            print(f"{fn.__name__}: {e!r}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    os.close(r)
    STOP_PIPES.append(w)
    return pid, w


def stop(pid, w):
    os.close(w)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# ---------------------------------------------------------------- main


def main():
    mode, n, seed, workdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if mode == "nobody":
        assert os.geteuid() == NOBODY
        fz = Fuzzer(seed, False, workdir)
        nobody_checks(fz)
        elapsed = fz.run(n)
        fz.close()
        print(repr({"count": fz.count, "errnos": fz.errnos, "unexpected": fz.unexpected,
                    "seconds": elapsed}))
        return

    root_n = n * 3 // 5
    user_n = n - root_n
    fz = Fuzzer(seed, True, os.path.join(workdir, "root"))
    t0 = time.monotonic()
    issued = crafted(fz)
    crafted_file(fz)
    crafted_memory(fz)
    print(f"crafted: {fz.count} requests ({issued} control, each checked to change nothing when refused)",
          flush=True)

    data = os.path.join(workdir, "data")
    with open(data, "wb") as f:
        f.write(random.Random(seed).randbytes(64 * PAGE + 100))
    racer_pid, racer_w = spawn(racer, os.path.join(workdir, "racer.out"), seed)
    worker_pid, worker_w = spawn(worker, data, os.path.join(workdir, "worker.out"), seed)
    try:
        t1 = time.monotonic()
        fz.run(root_n)
        t_root = time.monotonic() - t1
        print(f"root: {fz.count} requests in {t_root:.1f} s", flush=True)

        # Timeouts, policy and FCM budget the unprivileged share must not
        # change (the racer changes none). The policy is off: turned on,
        # it would swap FCMs under the racer.
        fz.refresh_ids()
        ctl = fz.ctl
        fz.arena.put(fz.arena.rw, U.TIMEOUT.pack(0, 4321))
        assert ioctl(ctl, U.IOC_SET_TIMEOUT, fz.arena.rw) == 0
        U.set_policy(ctl, "fcm", "off")
        policy = get_policy(ctl, fz.arena)
        U.set_fcm_budget(fz.keeper, 4321)
        keep = [oid for oid in fcm_ids(ctl, fz.arena)]
        t1 = time.monotonic()
        out = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             sys.executable, os.path.abspath(__file__), "nobody", str(user_n), str(seed + 1),
             os.path.join(workdir, "nobody")],
            capture_output=True, text=True)
        t_user = time.monotonic() - t1
        sys.stderr.write(out.stderr)
        assert out.returncode == 0, f"the unprivileged share exited {out.returncode}"
        user = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr
        print(f"nobody: {user['count']} requests in {t_user:.1f} s", flush=True)
        for oid in keep:
            st = status(ctl, fz.arena, oid)
            if st is not None and st[6] != 4321:
                fz.unexpected.append(f"object {oid}: timeout {st[6]} after the unprivileged share")
        if get_policy(ctl, fz.arena) != policy:
            fz.unexpected.append(f"policy {get_policy(ctl, fz.arena)[:6]} after the unprivileged share")
        if U.fcm_memory(fz.keeper)[0]["budget"] != 4321:
            fz.unexpected.append(f"FCM budget {U.fcm_memory(fz.keeper)[0]['budget']} after the unprivileged share")
    finally:
        racer_rc = stop(racer_pid, racer_w)
        worker_rc = stop(worker_pid, worker_w)

    counts, racer_bad = eval(open(os.path.join(workdir, "racer.out")).read())  # noqa: S307
    ops, worker_bad = eval(open(os.path.join(workdir, "worker.out")).read())  # noqa: S307
    model = open(os.path.join(workdir, "worker.out.model"), "rb").read()
    with open(data, "rb") as f:
        got = f.read()
    intact = got == model
    if not intact:
        pages = sorted({i // PAGE for i in range(min(len(got), len(model))) if got[i] != model[i]})
        print(f"data file: {len(got)} bytes, model {len(model)}; pages differing: {pages[:40]}",
              file=sys.stderr)
        if pages:
            p = pages[0] * PAGE
            print(f"page {pages[0]}: file {got[p:p + 32].hex()} model {model[p:p + 32].hex()}",
                  file=sys.stderr)
    # Clean up: policy off, every monitor off, default back to shared.
    U.set_policy(fz.ctl, "fcm", "off")
    U.swap(fz.ctl, "fcm", "shared")
    for _ in range(10_000):
        fz.arena.put(fz.arena.rw, U.INTERPOSE.pack(field32(b"fcm"), field32(b"monitor"), 0, 0))
        if ioctl(fz.ctl, U.IOC_UNINTERPOSE, fz.arena.rw) != 0:
            break
    fz.close()

    errnos = dict(fz.errnos)
    for k, v in user["errnos"].items():
        errnos[k] = errnos.get(k, 0) + v
    unexpected = fz.unexpected + user["unexpected"]
    total = fz.count + user["count"]
    names = {errno.errorcode.get(k, "ok") if k else "ok": v for k, v in sorted(errnos.items())}
    print(f"racer: {counts}; worker: {ops} checked reads/writes, file {'intact' if intact else 'CORRUPT'}")
    print(f"ioctl_fuzz: {total} requests (root {fz.count}, nobody {user['count']}), seed {seed}, "
          f"{time.monotonic() - t0:.1f} s, errnos {names}, {len(unexpected)} unexpected")
    problems = list(unexpected)
    problems += [f"racer: {b}" for b in racer_bad] + [f"worker: {b}" for b in worker_bad]
    if racer_rc or worker_rc:
        problems.append(f"racer exited {racer_rc}, worker {worker_rc}")
    if not intact:
        problems.append("the data file differs from the worker's model")
    if counts["completed"] == 0 or counts["interposed"] + counts["removed"] == 0:
        problems.append(f"the racer did not race: {counts}")
    if user["count"] < user_n or fz.count < root_n:
        problems.append("fewer requests than asked for")
    for p in problems[:50]:
        print("FAIL: " + p, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
