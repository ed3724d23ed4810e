# SPDX-License-Identifier: GPL-2.0
"""User memory the in-VM tests write from: raw pwrite(2) from an address,
and buffers whose tail is unmapped (a write from them faults part-way)."""

import ctypes

PAGE = 4096
PROT_RW = 3
MAP_PRIVATE_ANONYMOUS = 0x22

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.pwrite.restype = ctypes.c_ssize_t
libc.pwrite.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]


def raw_pwrite(fd, addr, length, pos):
    """pwrite(2) of `length` bytes at address `addr`: the count or -errno."""
    n = libc.pwrite(fd, addr, length, pos)
    return n if n >= 0 else -ctypes.get_errno()


class HoleyBuffer:
    """`pages` mapped pages followed by an unmapped one."""

    def __init__(self, pages=4):
        self.pages = pages
        self.addr = libc.mmap(None, (pages + 1) * PAGE, PROT_RW, MAP_PRIVATE_ANONYMOUS, -1, 0)
        if self.addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        libc.munmap(self.addr + pages * PAGE, PAGE)
        self.end = self.addr + pages * PAGE

    def place(self, data, mapped):
        """Copies the first `mapped` bytes of `data` so they end where the
        mapping does; returns the address the whole of `data` would start at."""
        start = self.end - mapped
        ctypes.memmove(start, data[:mapped], mapped)
        return start

    def close(self):
        libc.munmap(self.addr, self.pages * PAGE)
