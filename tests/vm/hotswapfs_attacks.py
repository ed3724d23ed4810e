#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""hotswapfs against the defects a review found, each case failing on the
tree without its fix (run by hotswapfs_attacks.sh over ext4; HSFS_LOWER,
HSFS_MNT, HSFS_IMAGE):

  stale_owner     a file chowned to root and chmodded behind the mount:
                  its former owner can no longer chown it back through
                  the mount (the upper inode's copy of the owner was stale)
  lower_rename    a name renamed away in the lower tree is gone through
                  the mount (d_revalidate compared no parent or name)
  rwf_append      pwritev2(RWF_APPEND) appends (it wrote at the offset)
  truncate_busy   truncating a program running from the lower path is
                  ETXTBSY (it went straight to notify_change)
  trusted_names   an unprivileged listxattr through the mount does not
                  show trusted.* names (listed with the mounter's rights)
  syncfs          syncfs on the mount puts a file written and closed
                  through it on the disk (the lower was never synced)
  suid_write      a set-uid bit given behind the mount to a file open for
                  writing goes at that descriptor's next write by its
                  (unprivileged) owner (the upper inode kept S_NOSEC)
  fsync_errors    the lower filesystem fails to write pages back (ext4
                  on a loop device over a full tmpfs): every opener's
                  fsync reports it, a sync(1) in between notwithstanding
                  (the first fsync of the shared lower file took it)

Usage: hotswapfs_attacks.py [CASE...] (default: all). Runs every case,
then exits non-zero if one failed.
"""

import errno
import os
import subprocess
import sys
import time

LOWER = os.environ["HSFS_LOWER"]
MNT = os.environ["HSFS_MNT"]
IMAGE = os.environ["HSFS_IMAGE"]
NOBODY = 65534


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def as_nobody(fn):
    """Runs fn() as uid/gid 65534 in a child; its exception text, or None."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = b""
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fn()
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            msg = f"{type(e).__name__}: {e}".encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    msg = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return msg or None


def make(path, data=b"x\n", mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def case_stale_owner():
    path = os.path.join(MNT, "owned")
    make(path)
    os.chown(path, NOBODY, NOBODY)
    st = os.stat(path)  # the upper inode now says: nobody's
    check(st.st_uid == NOBODY, f"chown through the mount: uid {st.st_uid}")
    low = os.path.join(LOWER, "owned")
    os.chown(low, 0, 0)
    os.chmod(low, 0o4755)
    err = as_nobody(lambda: os.chown(path, NOBODY, NOBODY))
    check(err is not None and "Operation not permitted" in err,
          f"the former owner chowned a root file back through the mount: {err}")
    check(os.stat(low).st_uid == 0, f"the lower file's owner is {os.stat(low).st_uid}")
    st = os.stat(path)
    check((st.st_uid, st.st_mode & 0o7777) == (0, 0o4755),
          f"through the mount: uid {st.st_uid}, mode {st.st_mode & 0o7777:o}")


def case_lower_rename():
    for d in ("pub", "priv"):
        os.makedirs(os.path.join(LOWER, d), exist_ok=True)
    make(os.path.join(LOWER, "pub", "report"), b"report\n")
    seen = os.path.join(MNT, "pub", "report")
    check(os.path.exists(seen), "the lower file is not seen through the mount")
    os.rename(os.path.join(LOWER, "pub", "report"), os.path.join(LOWER, "priv", "report"))
    check(not os.path.exists(seen), "a file renamed away in the lower tree still opens at its old name")
    check(os.path.exists(os.path.join(MNT, "priv", "report")), "the renamed file is not at its new name")
    os.rename(os.path.join(LOWER, "priv", "report"), os.path.join(LOWER, "priv", "renamed"))
    check(not os.path.exists(os.path.join(MNT, "priv", "report")),
          "a file renamed in its lower directory still opens at its old name")


def case_rwf_append():
    path = os.path.join(MNT, "log")
    make(path, b"abc")
    fd = os.open(path, os.O_WRONLY)
    try:
        n = os.pwritev(fd, [b"XY", b"Z"], 0, os.RWF_APPEND)
        check(n == 3, f"pwritev2(RWF_APPEND) wrote {n}")
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        got = f.read()
    check(got == b"abcXYZ", f"pwritev2(RWF_APPEND) at offset 0 left {got!r}")


def case_truncate_busy():
    prog = os.path.join(LOWER, "sleeper")
    with open("/bin/sleep", "rb") as src, open(prog, "wb") as dst:
        dst.write(src.read())
    os.chmod(prog, 0o755)
    child = subprocess.Popen([prog, "30"])
    try:
        time.sleep(0.5)
        try:
            os.truncate(os.path.join(MNT, "sleeper"), 0)
            raise Failure("truncating a running program through the mount succeeded")
        except OSError as e:
            check(e.errno == errno.ETXTBSY, f"truncate of a running program: {e}")
        check(os.path.getsize(prog) > 0, "the running program was truncated")
    finally:
        child.kill()
        child.wait()


def case_trusted_names():
    path = os.path.join(MNT, "labelled")
    make(path)
    os.setxattr(os.path.join(LOWER, "labelled"), "trusted.secret", b"1")
    os.setxattr(os.path.join(LOWER, "labelled"), "user.plain", b"1")
    check("trusted.secret" in os.listxattr(path), "root does not see trusted.* through the mount")
    got = []

    def listing():
        got.extend(os.listxattr(path))
        if "trusted.secret" in got:
            raise Failure(f"an unprivileged listxattr shows {got}")
        if "user.plain" not in got:
            raise Failure(f"an unprivileged listxattr lost user.*: {got}")

    err = as_nobody(listing)
    check(err is None, err or "")


def case_syncfs():
    marker = b"hotswapfs-syncfs-marker-%d-" % os.getpid()
    data = marker * (4096 // len(marker) + 1)
    path = os.path.join(MNT, "durable")
    with open(path, "wb") as f:
        f.write(data)

    def on_disk():
        with open(IMAGE, "rb") as img:
            return marker in img.read()

    if on_disk():
        print("  (the lower filesystem wrote the file back by itself already: inconclusive)")
    subprocess.run(["sync", "-f", MNT], check=True)
    check(on_disk(), "syncfs on the mount did not put a closed file's data on the disk")


def case_suid_write():
    path = os.path.join(MNT, "setuid")
    low = os.path.join(LOWER, "setuid")
    make(path, b"#!/bin/sh\n", 0o755)
    os.chown(path, NOBODY, NOBODY)
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.write(fd, b"# one\n")  # the upper inode learns: nothing to drop
            os.write(done_w, b"1")
            os.read(go_r, 1)  # the bit is given behind the mount meanwhile
            os.write(fd, b"# two\n")
            os.close(fd)
            code = 0
        finally:
            os._exit(code)
    os.read(done_r, 1)
    os.chmod(low, 0o4755)
    os.write(go_w, b"1")
    _, status = os.waitpid(pid, 0)
    check(status == 0, f"the writer failed: status {status}")
    mode = os.stat(low).st_mode & 0o7777
    check(not mode & 0o4000, f"a write by the owner kept the set-uid bit: mode {mode:o}")


def sh(*cmd):
    subprocess.run(cmd, check=True)


def case_fsync_errors():
    base = "/tmp/hsfs-eio"
    img, ext4, mnt = base + "/img", base + "/ext4", base + "/mnt"
    for d in (img, ext4, mnt):
        os.makedirs(d, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=20m", "none", img)
    loop = None
    try:
        sh("truncate", "-s", "64M", img + "/disk")
        # No journal: a failed data write only marks the file's pages.
        sh("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=1", img + "/disk")
        loop = subprocess.run(["losetup", "-f", "--show", img + "/disk"], check=True,
                              capture_output=True, text=True).stdout.strip()
        sh("mount", "-t", "ext4", loop, ext4)
        os.mkdir(ext4 + "/lower")
        sh("mount", "-t", "hotswapfs", "-o", f"lowerdir={ext4}/lower", "none", mnt)
        a = os.open(mnt + "/f", os.O_RDWR | os.O_CREAT, 0o644)
        b = os.open(mnt + "/f", os.O_RDWR)
        try:
            chunk = b"e" * (1 << 20)
            for _ in range(32):
                os.write(a, chunk)
            got = []
            for name, fd in (("first", a), ("second", b)):
                try:
                    os.fsync(fd)
                    got.append(0)
                except OSError as e:
                    got.append(e.errno)
                if name == "first":
                    sh("sync")
            check(got[0] != 0, "the first fsync after a failed lower write-back returned 0")
            check(got[1] != 0, f"the second opener's fsync returned 0 (first: {errno.errorcode[got[0]]})")
        finally:
            for fd in (a, b):
                try:
                    os.close(fd)
                except OSError:
                    pass
    finally:
        subprocess.run(["umount", mnt])
        subprocess.run(["umount", ext4])
        if loop:
            subprocess.run(["losetup", "-d", loop])
        subprocess.run(["umount", img])


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    failed = 0
    for name in sys.argv[1:] or list(CASES):
        try:
            CASES[name]()
        except Failure as e:
            print(f"hotswapfs_attacks: {name}: FAIL: {e}")
            failed += 1
            continue
        print(f"hotswapfs_attacks: {name}: ok")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
