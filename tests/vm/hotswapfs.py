#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""hotswapfs end to end (run by hotswapfs.sh once per FCM implementation
and lower filesystem, with hotswap.ko, hotswap_fcm.ko and both FCMs
loaded, and MNT mounted: mount -t hotswapfs -o lowerdir=LOWER none MNT).
The namespace passes through to LOWER; every regular file's data goes
through its inode's FCM. Each case works in its own directory MNT/NAME
and checks LOWER beside the mount (never changing LOWER behind it); after
each case no FCM may be left in /sys/kernel/debug/hotswap/objects.

  mount_options   no, empty, missing, non-directory lowerdir, unknown
                  options and a hotswapfs lowerdir (stacking) are refused
                  and mount nothing; a good mount at the same place works
  nonroot_mount   user 65534 cannot mount it (mount(8) and mount(2):
                  EPERM); nor root in a user namespace, where there is one
  namespace       create, lookup, mkdir, unlink, rmdir, rename (over a
                  file, across directories, directories, RENAME_NOREPLACE
                  if supported), symlink/readlink, hard links, the umask,
                  and the errnos of the usual mistakes; LOWER agrees
  readdir         600 entries with long names (several getdents calls),
                  types and d_ino as lstat says; a tree entry by entry
                  against LOWER (modes, owners, sizes, links, mtimes, data)
  attributes      chmod, chown, lchown, utime, truncate by path, statvfs
                  (LOWER's figures, hotswapfs's own f_type), one st_dev
  lifetime        an FCM outlives its file's last close (a reopen reads
                  through the same FCM) and ends at unlink and at the
                  inode's eviction, with the data in LOWER; hswapctl
                  status labels it with the file's path on the mount
  lower_changed   the lower file changed behind the mount (bytes, growth,
                  truncation, a same-size rewrite) while no file of it is
                  open there: stat, the next open and its reads see the
                  lower's, a sync, chmod or truncate through the mount in
                  between too; a one-byte write keeps the lower's bytes
  data            read/write/pread/pwrite/readv/writev, lseek (SEEK_END,
                  SEEK_DATA/SEEK_HOLE), holes, EBADF, one FCM per inode
                  and on the default implementation, stat size growing
                  before any fsync, LOWER after fsync, fdatasync and close
                  (the writer's, with a reader still open), mtime moving
  append          O_APPEND: every write at the end (after lseek, pwrite,
                  another descriptor's growth); two processes appending
                  fixed-width lines at once keep every line, in order
  truncate        ftruncate shrinking and growing (zeros, no stale dirty
                  bytes), truncate(path) and O_TRUNC seen by an open
                  descriptor, O_TRUNC of a closed file, EINVAL read-only
  sync_writes     O_SYNC, O_DSYNC, RWF_SYNC, RWF_DSYNC: in LOWER at once
  direct_io       O_DIRECT opens and F_SETFL O_DIRECT fail with EINVAL
  copy            sendfile, copy_file_range and splice within the mount,
                  to and from another filesystem, of a file whose tail is
                  not written back yet: exact bytes (EXDEV allowed for
                  copy_file_range across filesystems, the kernel's rule)
  mmap            MAP_PRIVATE shows the current bytes (not yet fsynced),
                  its writes stay private; read-only MAP_SHARED (O_RDONLY
                  and O_RDWR descriptors) and MAP_PRIVATE map the FCM's
                  pages: later pwrites show at once, through the FCM
                  evicting every page, drop_caches and swaps; a truncation
                  SIGBUSes past the end; writable MAP_SHARED fails ENODEV,
                  mprotect(PROT_WRITE) of a read-only one EACCES
  exec            a copied /bin/true and /bin/false, scripts (one whose
                  interpreter is on the mount), EACCES for 0644, ETXTBSY
                  writing a running binary, its FCM while it runs
  permissions     user 65534 against root's files (0600, 0644, a 0755 and
                  a 0700 directory, 0700 and 0755 binaries) while root
                  holds them open; its files in a 0777 directory are its own
  churn           1,000 files created, renamed across directories, half
                  unlinked: listings and contents, mount and LOWER
  swap            hswapctl swaps every FCM shared <-> distributed while a
                  writer verifies what it wrote and a reader checks every
                  word's page; the file exact afterwards
  umount_busy     umount with a file open, a mapping or a working
                  directory in it fails (EBUSY), the mount stays usable;
                  then it unmounts, LOWER holds the data, a remount shows
                  the same tree
  xattrs          user.* set/get/list/remove, XATTR_CREATE/REPLACE, binary
                  and empty values, directories, descriptors, symlinks
  set_times       times set after a write (futimens, utimensat) survive
                  the close's write-back; a read-only open keeps them
  cp_tar          cp -a and tar round trips of a tree (sizes around a
                  page, 1 MiB, sparse, symlinks, a hard link, modes,
                  owners, mtimes) into, inside and out of the mount,
                  checked with sha256sum and in LOWER
  big_file        80 MiB (above an FCM's 64 MiB capacity) written, read
                  back while open, patched, checked with sha256sum through
                  the mount and in LOWER; only when named

Usage: hotswapfs.py [CASE...] (default: every case but big_file). Exits
non-zero on the first failed case.

Environment:
  HOTSWAPFS_LOWER     the lower directory (required)
  HOTSWAPFS_MNT       the mount point (required; mounted over LOWER if
                      it is not a hotswapfs mount yet, left mounted)
  HOTSWAPFS_SCRATCH   a directory on another filesystem, for copies
                      (default /tmp/hotswapfs-scratch)
  HOTSWAPFS_FCM       the implementation new FCMs start on (shared or
                      distributed); checked when set
  HOTSWAPFS_HSWAPCTL  the tool (default tools/hswapctl/target/release/hswapctl)
"""

import ctypes
import errno
import fcntl
import hashlib
import json
import mmap
import os
import random
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import traceback

PAGE = 4096
NOBODY = 65534
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
OBJECTS = "/sys/kernel/debug/hotswap/objects"
ONLY_BY_NAME = ("big_file",)

# Set by main() from the environment.
LOWER = MNT = ALT = SCRATCH = HSWAPCTL = ""
FCM_IMPL = None

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MAP_FAILED = ctypes.c_void_p(-1).value
AT_FDCWD = -100
RENAME_NOREPLACE = 1
SYS_RENAMEAT2_X86_64 = 316


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def ename(code):
    return errno.errorcode.get(code, str(code))


def expect_errno(codes, what, fn, *args, **kwargs):
    """fn(*args) must fail with one of `codes`; returns the errno."""
    codes = (codes,) if isinstance(codes, int) else tuple(codes)
    want = "/".join(map(ename, codes))
    try:
        result = fn(*args, **kwargs)
    except OSError as e:
        if e.errno not in codes:
            fail(f"{what}: expected {want}, got {ename(e.errno)} ({e})")
        return e.errno
    if fn is os.open:
        os.close(result)
    elif isinstance(result, mmap.mmap):
        result.close()
    fail(f"{what}: expected {want}, but it succeeded")


def same_bytes(got, want, what):
    if got == want:
        return
    got, want = bytes(got), bytes(want)
    n = min(len(got), len(want))
    first = n
    for start in range(0, n, PAGE):
        if got[start:start + PAGE] != want[start:start + PAGE]:
            first = next(i for i in range(start, min(start + PAGE, n)) if got[i] != want[i])
            break
    fail(f"{what}: {len(got)} bytes, expected {len(want)}; first difference at byte {first}: "
         f"got {got[first:first + 16]!r}, expected {want[first:first + 16]!r}")


def M(*parts):
    return os.path.join(MNT, *parts)


def L(*parts):
    return os.path.join(LOWER, *parts)


def fresh(name):
    """An empty directory MNT/name (made through the mount); returns name."""
    if os.path.lexists(M(name)):
        shutil.rmtree(M(name))
    os.mkdir(M(name), 0o755)
    os.chmod(M(name), 0o755)
    check(os.path.isdir(L(name)), f"mkdir {M(name)} made no directory in LOWER")
    return name


def fresh_scratch(name):
    path = os.path.join(SCRATCH, name)
    if os.path.lexists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def contents(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def write_all(fd, data, what="write"):
    n = os.write(fd, data)
    check(n == len(data), f"{what}: wrote {n} of {len(data)} bytes")


def make(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        write_all(fd, data, f"writing {path}")
    finally:
        os.close(fd)
    os.chmod(path, mode)


def run(cmd, **kwargs):
    r = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


# --- FCMs (debugfs) -------------------------------------------------------

def fcm_objects():
    """Every FCM in debugfs, as {key: value} of its line."""
    out = []
    with open(OBJECTS) as f:
        for line in f:
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if fields.get("interface") == "fcm":
                out.append(fields)
    return out


def evict_unused():
    """Evicts every unused dentry and inode (drop_caches 2). An upper inode
    keeps its FCM past the last close until it is evicted, as a page cache
    outlives descriptors; files open, mapped or running keep theirs."""
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


def expect_fcms(count, what, impl=None):
    """Exactly `count` FCMs, on `impl` (default: HOTSWAPFS_FCM), once the
    unused inodes are evicted. A surplus may be FCMs of evicted inodes
    that end a moment later (an end is deferred to a workqueue): it gets
    10 s to go; one that stays is a failure."""
    impl = impl or FCM_IMPL
    deadline = time.monotonic() + 10
    evict_unused()
    objs = fcm_objects()
    while len(objs) > count and time.monotonic() < deadline:
        time.sleep(0.05)
        evict_unused()
        objs = fcm_objects()
    if len(objs) != count:
        fail(f"{what}: {len(objs)} FCM(s) in {OBJECTS}, expected {count}: {objs}")
    for o in objs:
        if impl and o.get("impl") != impl:
            fail(f"{what}: an FCM on {o.get('impl')}, expected the default {impl}: {o}")
    return objs


def wait_no_fcm(what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        evict_unused()
        objs = fcm_objects()
        if not objs:
            return
        if time.monotonic() > deadline:
            fail(f"{what}: FCMs outlived their inodes ({timeout:.0f} s after the eviction): {objs}")
        time.sleep(0.05)


# --- mounts ---------------------------------------------------------------

def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts():
    """(mount point, fstype, source, super options) of every mount, in order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ", 1)
            fields, rest = left.split(), right.split()
            rest += [""] * (3 - len(rest))
            out.append((_unescape(fields[4]), rest[0], rest[1], rest[2]))
    return out


def mounted_at(path):
    """The top mount on `path`, or None."""
    found = [m for m in mounts() if m[0] == path]
    return found[-1] if found else None


def is_hotswapfs_mount(path):
    m = mounted_at(path)
    return m is not None and m[1] == "hotswapfs"


def hotswapfs_count():
    return sum(1 for m in mounts() if m[1] == "hotswapfs")


def mount_hotswapfs():
    run(["mount", "-t", "hotswapfs", "-o", f"lowerdir={LOWER}", "none", MNT])
    check(is_hotswapfs_mount(MNT), f"mount exited 0 but {MNT} is no hotswapfs mount: {mounted_at(MNT)}")


def expect_mount_refused(what, args, target):
    before = hotswapfs_count()
    r = subprocess.run(["mount", "-t", "hotswapfs", *args, "none", target],
                       capture_output=True, text=True)
    after, top = hotswapfs_count(), mounted_at(target)
    if top is not None:
        subprocess.run(["umount", target], capture_output=True)
    if r.returncode == 0 or after != before or top is not None:
        fail(f"mount with {what} ({' '.join(args) or 'no options'}): exited {r.returncode} "
             f"({r.stderr.strip()}), hotswapfs mounts {before} -> {after}, on {target}: {top}")


# --- children -------------------------------------------------------------

def drop_privileges():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def spawn(fn):
    """Runs fn in a child process; returns (pid, pipe of its failure message)."""
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            try:
                os.write(w, (str(e) or repr(e)).encode(errors="replace")[:4000])
            except OSError:
                pass
            code = 1
        os._exit(code)
    os.close(w)
    return pid, r


def reap(child, what):
    pid, r = child
    msg = b""
    while chunk := os.read(r, 4096):
        msg += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        fail(f"{what}: {msg.decode(errors='replace') or f'exit status {status:#x}'}")


def in_child(fn, what):
    reap(spawn(fn), what)


# --- trees ----------------------------------------------------------------

def _raise(e):
    raise e


def snapshot(root, hashes=True, cross=False):
    """{relative path: what lstat/readlink/the data say} of everything under
    root (root itself left out). cross: for another filesystem's copy
    (mtimes in seconds, no directory sizes)."""
    recs, by_ino = {}, {}
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            rec = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
            mtime = st.st_mtime_ns // 10**9 if cross else st.st_mtime_ns
            if stat.S_ISLNK(st.st_mode):
                rec["target"] = os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                rec.update(nlink=st.st_nlink, mtime=mtime)
                if not cross:
                    rec["size"] = st.st_size
            else:
                rec.update(size=st.st_size, nlink=st.st_nlink, mtime=mtime)
                if hashes and stat.S_ISREG(st.st_mode) and st.st_size <= 4 << 20:
                    rec["sha256"] = hashlib.sha256(contents(path)).hexdigest()
                if st.st_nlink > 1:
                    by_ino.setdefault(st.st_ino, []).append(rel)
            recs[rel] = rec
    for rels in by_ino.values():
        for rel in rels:
            recs[rel]["links"] = sorted(rels)
    return recs


def same_tree(got, want, what):
    if got == want:
        return
    extra = sorted(set(got) - set(want))[:5]
    missing = sorted(set(want) - set(got))[:5]
    differ = [(k, got[k], want[k]) for k in sorted(set(got) & set(want)) if got[k] != want[k]][:3]
    fail(f"{what}: trees differ: extra {extra}, missing {missing}, differing {differ}")


def sha256sum_tree(root):
    """{relative path: sha256sum's digest} of every regular file under root."""
    files = sorted(rel for rel, rec in snapshot(root, hashes=False).items()
                   if stat.S_ISREG(int(rec["mode"], 8)))
    if not files:
        return {}
    sums = {}
    for line in run(["sha256sum", "--", *files], cwd=root).splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    return sums


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# --- cases ----------------------------------------------------------------

def case_mount_options():
    d = fresh("mount_options")
    os.mkdir(M(d, "sub"))
    sd = fresh_scratch("mount_options")
    plain = os.path.join(sd, "plain-file")
    make(plain, b"not a directory\n")
    os.makedirs(ALT, exist_ok=True)
    for what, args in (
        ("no lowerdir", []),
        ("an empty lowerdir", ["-o", "lowerdir="]),
        ("a lowerdir that does not exist", ["-o", f"lowerdir={LOWER}/does-not-exist"]),
        ("a lowerdir that is a regular file", ["-o", f"lowerdir={plain}"]),
        ("an unknown option", ["-o", f"lowerdir={LOWER},no_such_option=1"]),
        ("an unknown flag", ["-o", f"lowerdir={LOWER},no_such_flag"]),
        ("a hotswapfs lowerdir (stacking)", ["-o", f"lowerdir={MNT}"]),
        ("a directory inside hotswapfs as lowerdir (stacking)", ["-o", f"lowerdir={M(d, 'sub')}"]),
    ):
        expect_mount_refused(what, args, ALT)
    # The same mount point takes a good mount: the refusals were the options'.
    lower2 = os.path.join(sd, "lower")
    os.mkdir(lower2)
    make(os.path.join(lower2, "hello"), b"hello from a second lower\n")
    run(["mount", "-t", "hotswapfs", "-o", f"lowerdir={lower2}", "none", ALT])
    try:
        check(is_hotswapfs_mount(ALT), f"a good mount at {ALT}: {mounted_at(ALT)}")
        check(os.listdir(ALT) == ["hello"], f"a second mount lists {os.listdir(ALT)}")
        same_bytes(contents(os.path.join(ALT, "hello")), b"hello from a second lower\n",
                   "a file of a second mount")
        make(os.path.join(ALT, "new"), b"new\n")
        same_bytes(contents(os.path.join(lower2, "new")), b"new\n", "a second mount's lower")
    finally:
        run(["umount", ALT])
    check(mounted_at(ALT) is None, f"{ALT} still mounted after umount")


def case_nonroot_mount():
    os.makedirs(ALT, exist_ok=True)
    before = hotswapfs_count()
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        "mount", "-t", "hotswapfs", "-o", f"lowerdir={LOWER}", "none", ALT],
                       capture_output=True, text=True)
    top = mounted_at(ALT)
    if top is not None:
        subprocess.run(["umount", ALT], capture_output=True)
    check(r.returncode != 0 and top is None and hotswapfs_count() == before,
          f"mount(8) as user 65534: exited {r.returncode}, on {ALT}: {top}")

    # mount(2) itself: mount(8) may refuse a non-root user on its own.
    def nobody_mounts():
        drop_privileges()
        rc = libc.mount(b"none", ALT.encode(), b"hotswapfs", 0, f"lowerdir={LOWER}".encode())
        err = ctypes.get_errno()
        if rc == 0:
            raise Failure("user 65534 mounted hotswapfs with mount(2)")
        if err != errno.EPERM:
            raise Failure(f"mount(2) by user 65534 failed with {ename(err)}, expected EPERM")

    try:
        in_child(nobody_mounts, "user 65534 calling mount(2)")
    finally:
        if mounted_at(ALT) is not None:
            subprocess.run(["umount", ALT], capture_output=True)
    check(hotswapfs_count() == before, "an unprivileged mount attempt left a mount")

    # Root of a user namespace has CAP_SYS_ADMIN there only: no
    # FS_USERNS_MOUNT, no mount. Only where the kernel has user namespaces.
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"  (no user namespaces here, that check skipped: {probe.stderr.strip()})")
        return
    script = (f"mount -t tmpfs none {ALT} || exit 3; umount {ALT}; "
              f"if mount -t hotswapfs -o lowerdir={LOWER} none {ALT} 2>/dev/null; "
              f"then echo MOUNTED; fi")
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                       capture_output=True, text=True)
    check(r.returncode != 3, f"the control (tmpfs in a user namespace) failed: {r.stderr}")
    check("MOUNTED" not in r.stdout, "root of a user namespace mounted hotswapfs")


def renameat2(old, new, flags):
    """0 or the errno of renameat2(2)."""
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        rc = fn(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags)
    else:
        rc = libc.syscall(SYS_RENAMEAT2_X86_64, AT_FDCWD, old.encode(), AT_FDCWD, new.encode(),
                          flags)
    return 0 if rc == 0 else ctypes.get_errno()


def both_absent(d, rel, what):
    check(not os.path.lexists(M(d, rel)), f"{what}: {rel} still through the mount")
    check(not os.path.lexists(L(d, rel)), f"{what}: {rel} still in LOWER")


def both_hold(d, rel, data, what):
    same_bytes(contents(M(d, rel)), data, f"{what}: {rel} through the mount")
    same_bytes(contents(L(d, rel)), data, f"{what}: {rel} in LOWER")


def case_namespace():
    d = fresh("namespace")
    # Create and look up.
    make(M(d, "a"), b"alpha")
    both_hold(d, "a", b"alpha", "a created file")
    check(stat.S_ISREG(os.stat(M(d, "a")).st_mode), "a created file is no regular file")
    expect_errno(errno.ENOENT, "stat of a missing name", os.stat, M(d, "missing"))
    expect_errno(errno.ENOTDIR, "a path through a regular file", os.stat, M(d, "a", "x"))
    expect_errno(errno.EEXIST, "O_CREAT|O_EXCL of an existing file", os.open, M(d, "a"),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    # The umask applies (once: 0666 & ~027 = 0640).
    old = os.umask(0o027)
    try:
        os.close(os.open(M(d, "umask-file"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.mkdir(M(d, "umask-dir"), 0o777)
    finally:
        os.umask(old)
    for rel, want in (("umask-file", 0o640), ("umask-dir", 0o750)):
        for side, where in ((M, "through the mount"), (L, "in LOWER")):
            got = mode_of(side(d, rel))
            check(got == want, f"{rel} made under umask 027: mode {got:o} {where}, expected {want:o}")

    # mkdir, nested.
    os.mkdir(M(d, "dir"), 0o755)
    os.makedirs(M(d, "dir/x/y/z"))
    check(os.path.isdir(L(d, "dir/x/y/z")), "nested mkdir: not in LOWER")
    expect_errno(errno.EEXIST, "mkdir of an existing directory", os.mkdir, M(d, "dir"))
    make(M(d, "dir/x/file"), b"nested")
    both_hold(d, "dir/x/file", b"nested", "a file in a nested directory")

    # unlink.
    os.unlink(M(d, "a"))
    both_absent(d, "a", "unlink")
    expect_errno(errno.ENOENT, "unlink of a removed file", os.unlink, M(d, "a"))
    expect_errno(errno.EISDIR, "unlink of a directory", os.unlink, M(d, "dir"))
    # An unlinked open file stays usable through its descriptor.
    make(M(d, "doomed"), b"doomed")
    fd = os.open(M(d, "doomed"), os.O_RDWR)
    try:
        os.unlink(M(d, "doomed"))
        both_absent(d, "doomed", "unlink of an open file")
        check(os.pwrite(fd, b"still", 0) == 5, "a write to an unlinked open file")
        same_bytes(os.pread(fd, 100, 0), b"stilld", "an unlinked open file")
        os.fsync(fd)
    finally:
        os.close(fd)
    both_absent(d, "doomed", "the unlinked file after its close")

    # rmdir.
    expect_errno(errno.ENOTEMPTY, "rmdir of a non-empty directory", os.rmdir, M(d, "dir"))
    os.rmdir(M(d, "dir/x/y/z"))
    both_absent(d, "dir/x/y/z", "rmdir")
    expect_errno(errno.ENOTDIR, "rmdir of a file", os.rmdir, M(d, "dir/x/file"))

    # rename.
    make(M(d, "src"), b"source")
    os.rename(M(d, "src"), M(d, "dst"))
    both_absent(d, "src", "rename")
    both_hold(d, "dst", b"source", "rename")
    # Over an existing file, which an open descriptor goes on reading.
    make(M(d, "old"), b"old contents")
    make(M(d, "new"), b"new contents")
    keep = os.open(M(d, "old"), os.O_RDONLY)
    try:
        os.rename(M(d, "new"), M(d, "old"))
        both_absent(d, "new", "rename over a file")
        both_hold(d, "old", b"new contents", "rename over a file")
        same_bytes(os.pread(keep, 100, 0), b"old contents", "a descriptor of the file renamed over")
    finally:
        os.close(keep)
    # Across directories; a directory with its contents.
    os.rename(M(d, "dst"), M(d, "dir/x/dst"))
    both_hold(d, "dir/x/dst", b"source", "rename across directories")
    os.rename(M(d, "dir/x"), M(d, "moved"))
    for side, where in ((M, "through the mount"), (L, "in LOWER")):
        got = sorted(os.listdir(side(d, "moved")))
        check(got == ["dst", "file", "y"], f"a renamed directory lists {got} {where}")
    both_absent(d, "dir/x", "rename of a directory")
    expect_errno(errno.EINVAL, "rename of a directory into itself", os.rename, M(d, "moved"),
                 M(d, "moved/y/inside"))
    os.mkdir(M(d, "full"))
    make(M(d, "full/f"), b"f")
    os.mkdir(M(d, "empty"))
    expect_errno(errno.ENOTEMPTY, "rename over a non-empty directory", os.rename, M(d, "moved"),
                 M(d, "full"))
    os.rename(M(d, "full"), M(d, "empty"))
    both_absent(d, "full", "rename over an empty directory")
    both_hold(d, "empty/f", b"f", "rename over an empty directory")
    make(M(d, "plain"), b"p")
    expect_errno(errno.EISDIR, "rename of a file over a directory", os.rename, M(d, "plain"),
                 M(d, "moved"))
    expect_errno(errno.ENOTDIR, "rename of a directory over a file", os.rename, M(d, "moved"),
                 M(d, "plain"))
    # RENAME_NOREPLACE: optional, but if taken it must hold.
    make(M(d, "keep"), b"keep")
    err = renameat2(M(d, "plain"), M(d, "keep"), RENAME_NOREPLACE)
    if err == errno.EINVAL:
        print("  (RENAME_NOREPLACE is not supported: allowed)")
    else:
        check(err == errno.EEXIST, f"RENAME_NOREPLACE over an existing file: {ename(err) if err else 'renamed'}, "
              "expected EEXIST")
        both_hold(d, "keep", b"keep", "a refused RENAME_NOREPLACE")
        both_hold(d, "plain", b"p", "a refused RENAME_NOREPLACE")
        err = renameat2(M(d, "plain"), M(d, "plain2"), RENAME_NOREPLACE)
        check(err == 0, f"RENAME_NOREPLACE to a new name: {ename(err)}")
        both_absent(d, "plain", "RENAME_NOREPLACE")
        both_hold(d, "plain2", b"p", "RENAME_NOREPLACE")

    # Symlinks.
    os.symlink("moved/dst", M(d, "ln"))
    for side, where in ((M, "through the mount"), (L, "in LOWER")):
        check(os.readlink(side(d, "ln")) == "moved/dst", f"readlink {where}: {os.readlink(side(d, 'ln'))!r}")
        check(stat.S_ISLNK(os.lstat(side(d, "ln")).st_mode), f"a symlink is no symlink {where}")
    same_bytes(contents(M(d, "ln")), b"source", "a read through a symlink")
    os.symlink("moved", M(d, "lndir"))
    check(sorted(os.listdir(M(d, "lndir"))) == sorted(os.listdir(M(d, "moved"))),
          "a listing through a symlink to a directory")
    os.symlink(f"../../{d}/moved/dst", M(d, "moved/up"))  # up to the mount's root and back
    same_bytes(contents(M(d, "moved/up")), b"source", "a read through a symlink with ..")
    os.symlink("nowhere/at/all", M(d, "dangling"))
    expect_errno(errno.ENOENT, "stat through a dangling symlink", os.stat, M(d, "dangling"))
    check(stat.S_ISLNK(os.lstat(M(d, "dangling")).st_mode), "lstat of a dangling symlink")
    target = "t" * 200 + "/" + "u" * 200 + "/" + "v" * 200
    os.symlink(target, M(d, "long"))
    check(os.readlink(M(d, "long")) == target and os.readlink(L(d, "long")) == target,
          "readlink of a 602-byte target")
    expect_errno(errno.EEXIST, "symlink over an existing name", os.symlink, "x", M(d, "ln"))

    # Hard links.
    make(M(d, "h1"), b"hard")
    os.link(M(d, "h1"), M(d, "h2"))
    s1, s2 = os.stat(M(d, "h1")), os.stat(M(d, "h2"))
    check(s1.st_nlink == 2 and s2.st_nlink == 2, f"a hard link: nlink {s1.st_nlink}, {s2.st_nlink}")
    check(s1.st_ino == s2.st_ino and s1.st_dev == s2.st_dev, "two names of one file: different inodes")
    l1, l2 = os.stat(L(d, "h1")), os.stat(L(d, "h2"))
    check(l1.st_nlink == 2 and l1.st_ino == l2.st_ino, "a hard link made through the mount, in LOWER")
    w = os.open(M(d, "h2"), os.O_WRONLY)
    r = os.open(M(d, "h1"), os.O_RDONLY)
    try:
        expect_fcms(1, "one file open under two names")
        check(os.pwrite(w, b"HARD", 0) == 4, "a write through a hard link")
        same_bytes(os.pread(r, 10, 0), b"HARD", "a write through one name, read through the other")
    finally:
        os.close(w)
        os.close(r)
    same_bytes(contents(L(d, "h1")), b"HARD", "a write through a hard link, in LOWER")
    os.unlink(M(d, "h1"))
    check(os.stat(M(d, "h2")).st_nlink == 1 and os.stat(L(d, "h2")).st_nlink == 1,
          "nlink after unlinking one of two names")
    expect_errno(errno.EPERM, "a hard link to a directory", os.link, M(d, "moved"), M(d, "dirlink"))
    expect_errno(errno.EEXIST, "a hard link over an existing name", os.link, M(d, "h2"), M(d, "keep"))

    check(sorted(os.listdir(M(d))) == sorted(os.listdir(L(d))),
          f"the listing {sorted(os.listdir(M(d)))} differs from LOWER's {sorted(os.listdir(L(d)))}")


def kind(st):
    mode = st.st_mode
    return ("d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode)
            else "f" if stat.S_ISREG(mode) else "?")


def case_readdir():
    d = fresh("readdir")
    names = []
    for i in range(600):
        name = f"entry-{i:04d}-" + "x" * (i % 97)
        path = M(d, name)
        if i % 4 == 0:
            make(path, b"%d\n" % i)
        elif i % 4 == 1:
            os.mkdir(path)
        elif i % 4 == 2:
            os.symlink(f"target-{i}", path)
        else:
            make(path, b"")
        names.append(name)
    got = os.listdir(M(d))
    check(len(got) == len(set(got)), f"readdir returned {len(got) - len(set(got))} duplicate(s)")
    extra, missing = sorted(set(got) - set(names))[:3], sorted(set(names) - set(got))[:3]
    check(not extra and not missing, f"readdir of 600 entries: extra {extra}, missing {missing}")
    check(sorted(os.listdir(L(d))) == sorted(got), "the listing differs from LOWER's")
    dfd = os.open(M(d), os.O_RDONLY | os.O_DIRECTORY)
    try:
        check(sorted(os.listdir(dfd)) == sorted(got), "a listing through a directory descriptor")
        expect_fcms(0, "a directory open")
    finally:
        os.close(dfd)
    for entry in os.scandir(M(d)):
        st = os.lstat(entry.path)
        by_readdir = ("d" if entry.is_dir(follow_symlinks=False) else "l" if entry.is_symlink()
                      else "f" if entry.is_file(follow_symlinks=False) else "?")
        check(by_readdir == kind(st), f"{entry.name}: readdir says {by_readdir}, lstat {kind(st)}")
        check(entry.inode() == st.st_ino, f"{entry.name}: d_ino {entry.inode()}, st_ino {st.st_ino}")
    os.mkdir(M(d, "empty"))
    check(os.listdir(M(d, "empty")) == [], "an empty directory lists entries")

    # A tree, entry by entry against LOWER.
    t = "tree"
    os.makedirs(M(d, t, "a/b/c"))
    make(M(d, t, "a/b/c/leaf"), b"leaf" * 1000)
    make(M(d, t, "a/page"), bytes(range(256)) * 16, 0o600)
    make(M(d, t, "top"), b"top\n", 0o755)
    os.chown(M(d, t, "top"), NOBODY, NOBODY)
    os.link(M(d, t, "top"), M(d, t, "a/top-again"))
    os.symlink("b/c", M(d, t, "a/to-c"))
    os.utime(M(d, t, "a/page"), (1_234_567_890, 1_234_567_890))
    same_tree(snapshot(M(d, t)), snapshot(L(d, t)), "a tree through the mount and in LOWER")


def case_attributes():
    d = fresh("attributes")
    f, lf = M(d, "f"), L(d, "f")
    make(f, b"attributes\n" * 10)
    for mode in (0o640, 0o4755, 0o600):
        os.chmod(f, mode)
        check(mode_of(f) == mode and mode_of(lf) == mode,
              f"chmod {mode:o}: {mode_of(f):o} through the mount, {mode_of(lf):o} in LOWER")
    os.mkdir(M(d, "dir"))
    os.chmod(M(d, "dir"), 0o711)
    check(mode_of(M(d, "dir")) == 0o711 and mode_of(L(d, "dir")) == 0o711, "chmod of a directory")
    for uid, gid, want in ((NOBODY, NOBODY, (NOBODY, NOBODY)), (-1, 0, (NOBODY, 0)), (0, -1, (0, 0))):
        os.chown(f, uid, gid)
        for path, where in ((f, "through the mount"), (lf, "in LOWER")):
            st = os.stat(path)
            check((st.st_uid, st.st_gid) == want,
                  f"chown {uid}:{gid}: {st.st_uid}:{st.st_gid} {where}, expected {want}")
    os.symlink("f", M(d, "ln"))
    os.chown(M(d, "ln"), NOBODY, NOBODY, follow_symlinks=False)
    check(os.lstat(M(d, "ln")).st_uid == NOBODY and os.lstat(L(d, "ln")).st_uid == NOBODY,
          "lchown of a symlink")
    check(os.stat(f).st_uid == 0, "lchown of a symlink changed its target")

    atime, mtime = 1_600_000_000, 1_650_000_000
    os.utime(f, ns=(atime * 10**9, mtime * 10**9))
    for path, where in ((f, "through the mount"), (lf, "in LOWER")):
        st = os.stat(path)
        check(st.st_atime_ns == atime * 10**9 and st.st_mtime_ns == mtime * 10**9,
              f"utime: atime {st.st_atime_ns}, mtime {st.st_mtime_ns} {where}")
    os.utime(M(d, "dir"), (atime, mtime))
    check(os.stat(M(d, "dir")).st_mtime == mtime and os.stat(L(d, "dir")).st_mtime == mtime,
          "utime of a directory")
    before = time.time()
    os.utime(f, None)
    check(os.stat(f).st_mtime >= before - 2 and os.stat(lf).st_mtime >= before - 2,
          f"utime(now): mtime {os.stat(f).st_mtime}, now {before}")
    c0 = os.stat(f).st_ctime_ns
    time.sleep(0.1)
    os.chmod(f, 0o644)
    check(os.stat(f).st_ctime_ns > c0, "chmod left the ctime")

    # truncate(2) by path, with no descriptor open.
    base = contents(f)
    os.truncate(f, 5)
    both_hold(d, "f", base[:5], "truncate(path) shrinking")
    os.truncate(f, 3 * PAGE + 1)
    both_hold(d, "f", base[:5] + bytes(3 * PAGE + 1 - 5), "truncate(path) growing")
    check(os.stat(f).st_size == 3 * PAGE + 1, "the size after truncate(path)")

    # statfs: LOWER's figures, hotswapfs's own type.
    sv, lv = os.statvfs(MNT), os.statvfs(LOWER)
    for field in ("f_bsize", "f_blocks", "f_files", "f_namemax"):
        check(getattr(sv, field) == getattr(lv, field),
              f"statvfs {field}: {getattr(sv, field)} on the mount, {getattr(lv, field)} on LOWER")
    check(os.statvfs(f).f_blocks == lv.f_blocks, "statvfs of a file on the mount")
    ftype = run(["stat", "-f", "-c", "%t", MNT]).strip()
    ltype = run(["stat", "-f", "-c", "%t", LOWER]).strip()
    check(ftype != ltype, f"statfs f_type {ftype} is the lower filesystem's")
    # One device for the whole mount.
    devs = {os.stat(p).st_dev for p in (MNT, M(d), f, M(d, "dir"))}
    check(len(devs) == 1, f"st_dev differs inside one mount: {devs}")


def fcm_ids():
    return sorted(int(o["id"]) for o in fcm_objects())


def case_lifetime():
    """An FCM outlives its file's last close (a reopen finds its pages),
    and ends when the upper inode goes: at unlink, at eviction, and the
    data is in LOWER by then."""
    d = fresh("lifetime")
    path, low = M(d, "f"), L(d, "f")
    data = random.Random(5).randbytes(3 * PAGE + 17)
    make(path, data)
    ids = fcm_ids()
    check(len(ids) == 1, f"one FCM for the file closed a moment ago, not {fcm_objects()}")
    # hswapctl status names the FCM's file: its path on the mount.
    st = json.loads(run([HSWAPCTL, "--json", "status", str(ids[0])]))
    check(st.get("label") == path, f"hswapctl status labels the FCM {st.get('label')!r}, not {path!r}")
    table = run([HSWAPCTL, "status"])
    check(any(line.split()[0] == str(ids[0]) and line.endswith(path) for line in table.splitlines()[1:]),
          f"hswapctl status's table does not show {path} for object {ids[0]}:\n{table}")
    same_bytes(contents(low), data, "LOWER after the close (the close writes back)")
    calls = int(fcm_objects()[0]["calls"])
    same_bytes(contents(path), data, "a reopen")
    check(fcm_ids() == ids, f"a reopen made a new FCM: {ids} then {fcm_ids()}")
    check(int(fcm_objects()[0]["calls"]) > calls, "the reopened file's reads did not reach its FCM")
    # The upper inode goes with its name: the FCM ends soon after (on a
    # workqueue), with nothing evicting anything.
    os.unlink(path)
    deadline = time.monotonic() + 10
    while fcm_objects() and time.monotonic() < deadline:
        time.sleep(0.05)
    check(not fcm_objects(), f"an unlinked file's FCM stayed: {fcm_objects()}")
    # Eviction of an unused inode ends its FCM; the file is intact and a
    # new open makes a new one.
    make(path, data)
    first = fcm_ids()
    check(len(first) == 1, f"one FCM for the recreated file, not {fcm_objects()}")
    wait_no_fcm("after evicting the closed file's inode")
    same_bytes(contents(low), data, "LOWER after the eviction")
    same_bytes(contents(path), data, "the file after its FCM ended")
    again = fcm_ids()
    check(len(again) == 1 and again != first, f"a new FCM after the eviction: {first} then {again}")
    os.unlink(path)
    # A program written through the mount and closed runs from LOWER: the
    # FCM it keeps holds no file open for writing (ETXTBSY otherwise), and
    # a writer reopening it writes through the FCM again.
    exe, lexe = M(d, "true"), L(d, "true")
    make(exe, contents("/bin/true"), 0o755)
    check(len(fcm_ids()) == 1, f"an FCM kept for the closed program: {fcm_objects()}")
    r = subprocess.run([lexe], capture_output=True)
    check(r.returncode == 0, f"{lexe}, written through the mount and closed, did not run: {r}")
    fd = os.open(exe, os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, b"\0" * 16, "an append after the program ran")
        os.fsync(fd)
    finally:
        os.close(fd)
    same_bytes(contents(lexe), contents("/bin/true") + b"\0" * 16, "LOWER after reopening for writing")
    os.unlink(exe)


def case_lower_changed():
    """The lower file changed behind the mount while no file of it is open
    there: the next stat and open see the lower's size and bytes (the
    FCM, kept past the close, drops its clean pages), a write through the
    mount then lands on the lower's current bytes, and with no change
    behind it a reopen keeps its cached pages."""
    d = fresh("lower_changed")
    path, low = M(d, "f"), L(d, "f")
    rng = random.Random(9)
    data = bytearray(rng.randbytes(3 * PAGE))
    make(path, bytes(data))
    same_bytes(contents(path), data, "the file through the mount")
    check(len(fcm_ids()) == 1, f"one FCM, kept past the close: {fcm_objects()}")
    # Another writer, behind the mount: bytes inside the second page and
    # a fourth page.
    theirs = rng.randbytes(PAGE)
    fd = os.open(low, os.O_WRONLY)
    try:
        os.pwrite(fd, theirs[:100], PAGE + 50)
        os.pwrite(fd, theirs, 3 * PAGE)
    finally:
        os.close(fd)
    data[PAGE + 50:PAGE + 150] = theirs[:100]
    data += theirs
    check(os.stat(path).st_size == len(data),
          f"stat after a change behind the mount: size {os.stat(path).st_size}, LOWER has {len(data)}")
    same_bytes(contents(path), data, "a read after a change behind the mount")
    # Shrunk behind it: the size and the bytes follow at the next open.
    os.truncate(low, PAGE + 77)
    del data[PAGE + 77:]
    fd = os.open(path, os.O_RDWR)
    try:
        check(os.fstat(fd).st_size == len(data), f"fstat after a truncation behind the mount: {os.fstat(fd).st_size}")
        same_bytes(os.pread(fd, 4 * PAGE, 0), data, "a read after a truncation behind the mount")
        check(os.lseek(fd, 0, os.SEEK_END) == len(data), "SEEK_END after a truncation behind the mount")
        # A one-byte write through the mount: the rest of its page is the
        # lower's bytes of now, not of before.
        os.pwrite(fd, b"#", PAGE + 3)
        data[PAGE + 3:PAGE + 4] = b"#"
    finally:
        os.close(fd)
    same_bytes(contents(low), data, "LOWER after a one-byte write through the mount")
    # Rewritten behind it, same size (only the times and bytes move).
    other = bytearray(rng.randbytes(len(data)))
    fd = os.open(low, os.O_WRONLY)
    try:
        os.pwrite(fd, other, 0)
    finally:
        os.close(fd)
    same_bytes(contents(path), other, "a read after a same-size rewrite behind the mount")
    # A sync, a chmod or a truncation through the mount between the change
    # behind it and the next open does not pass the change off as the
    # FCM's own.
    for what, between in (("sync", os.sync), ("chmod", lambda: os.chmod(path, 0o640)),
                          ("a truncation", lambda: os.truncate(path, len(other) + 5))):
        newer = rng.randbytes(len(other))
        fd = os.open(low, os.O_WRONLY)
        try:
            os.pwrite(fd, newer, 0)
        finally:
            os.close(fd)
        between()
        want = newer + (bytes(5) if what == "a truncation" else b"")
        same_bytes(contents(path), want, f"a read after a change behind the mount, then {what}")
        other = want


def case_data():
    d = fresh("data")
    rng = random.Random(11)
    path, low = M(d, "f"), L(d, "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    fds = [fd]
    try:
        expect_fcms(1, "a new file open on the mount")
        model = bytearray()
        # Writes in odd sizes; the size grows with each, before any fsync.
        for n in (1, PAGE - 1, 1, PAGE, 10000, 3 * PAGE + 3, 65536 + 7):
            chunk = rng.randbytes(n)
            write_all(fd, chunk)
            model += chunk
            check(os.fstat(fd).st_size == len(model),
                  f"fstat size {os.fstat(fd).st_size} after writing {len(model)} bytes (no fsync yet)")
            check(os.stat(path).st_size == len(model),
                  f"stat size {os.stat(path).st_size} after writing {len(model)} bytes (no fsync yet)")
        check(os.lseek(fd, 0, os.SEEK_CUR) == len(model), "the position after the writes")
        check(os.read(fd, 10) == b"", "a read at EOF returned data")
        check(os.lseek(fd, 0, os.SEEK_END) == len(model), "SEEK_END")
        check(os.lseek(fd, -10, os.SEEK_END) == len(model) - 10, "SEEK_END -10")
        same_bytes(os.read(fd, 100), model[-10:], "a read after SEEK_END -10")
        check(os.lseek(fd, 5, os.SEEK_SET) == 5 and os.lseek(fd, 7, os.SEEK_CUR) == 12, "SEEK_SET/SEEK_CUR")
        same_bytes(os.read(fd, 20), model[12:32], "a read after SEEK_SET + SEEK_CUR")
        expect_errno(errno.EINVAL, "lseek to a negative offset", os.lseek, fd, -1, os.SEEK_SET)
        os.lseek(fd, 0, os.SEEK_SET)
        same_bytes(os.read(fd, len(model) + 100), model, "a read of the whole file")
        for pos in (0, 1, PAGE - 1, PAGE, PAGE + 1, 5 * PAGE - 3, len(model) - 1):
            same_bytes(os.pread(fd, 100, pos), model[pos:pos + 100], f"pread at {pos}")
        check(os.pread(fd, 100, len(model)) == b"" and os.pread(fd, 1, len(model) + 5000) == b"",
              "pread past EOF returned data")
        # pwrite inside and across pages, then past EOF (a hole of zeros).
        for pos, n in ((10, 5), (PAGE - 3, 10), (2 * PAGE, 3 * PAGE)):
            chunk = rng.randbytes(n)
            check(os.pwrite(fd, chunk, pos) == n, "a short pwrite")
            model[pos:pos + n] = chunk
        end = len(model) + 3 * PAGE + 5
        tail = b"tail of the file"
        check(os.pwrite(fd, tail, end) == len(tail), "a short pwrite past EOF")
        model += bytes(end - len(model)) + tail
        check(os.fstat(fd).st_size == len(model), "the size after a pwrite past EOF")
        same_bytes(os.pread(fd, len(model) + 10, 0), model, "after pwrites (the hole reads as zeros)")
        # writev/preadv: several segments in one call.
        bufs = [rng.randbytes(n) for n in (3, PAGE, 777)]
        os.lseek(fd, 100, os.SEEK_SET)
        check(os.writev(fd, bufs) == sum(map(len, bufs)), "a short writev")
        joined = b"".join(bufs)
        model[100:100 + len(joined)] = joined
        a, b = bytearray(PAGE + 1), bytearray(2000)
        check(os.preadv(fd, [a, b], 50) == len(a) + len(b), "a short preadv")
        same_bytes(bytes(a) + bytes(b), model[50:50 + len(a) + len(b)], "preadv")
        # SEEK_DATA/SEEK_HOLE answer within the file, ENXIO at its end.
        check(os.lseek(fd, 0, os.SEEK_DATA) == 0, "SEEK_DATA from 0 of a file starting with data")
        hole = os.lseek(fd, 0, os.SEEK_HOLE)
        check(0 < hole <= len(model), f"SEEK_HOLE from 0: {hole} (size {len(model)})")
        expect_errno(errno.ENXIO, "SEEK_DATA at EOF", os.lseek, fd, len(model), os.SEEK_DATA)

        # A second descriptor shares the FCM and sees every byte at once.
        fd2 = os.open(path, os.O_RDONLY)
        fds.append(fd2)
        expect_fcms(1, "two descriptors of one file")
        same_bytes(os.pread(fd2, len(model) + 1, 0), model, "a second descriptor")
        check(os.fstat(fd2).st_size == len(model), "a second descriptor's size")
        expect_errno(errno.EBADF, "a write on an O_RDONLY descriptor", os.write, fd2, b"x")
        other = os.open(M(d, "other"), os.O_WRONLY | os.O_CREAT, 0o644)
        fds.append(other)
        expect_fcms(2, "two files open")
        expect_errno(errno.EBADF, "a read on an O_WRONLY descriptor", os.read, other, 1)
        fds.remove(other)
        os.close(other)
        dfd = os.open(M(d), os.O_RDONLY | os.O_DIRECTORY)
        try:
            expect_fcms(1, "a directory open besides the file")
            expect_errno(errno.EISDIR, "a read of a directory", os.read, dfd, 10)
        finally:
            os.close(dfd)

        # fsync: in LOWER while the file stays open; then fdatasync.
        os.fsync(fd)
        same_bytes(contents(low), model, "LOWER after fsync")
        chunk = b"after fsync"
        check(os.pwrite(fd, chunk, 7) == len(chunk), "a short pwrite")
        model[7:7 + len(chunk)] = chunk
        os.fdatasync(fd)
        same_bytes(contents(low), model, "LOWER after fdatasync")
        # A large unaligned write in one call.
        big = rng.randbytes((1 << 20) + 333)
        check(os.pwrite(fd, big, 12345) == len(big), "a short 1 MiB pwrite")
        model[12345:12345 + len(big)] = big
        same_bytes(os.pread(fd, len(model) + 1, 0), model, "after a 1 MiB write")
        # The writer's close writes back, with a reader still open.
        fds.remove(fd)
        os.close(fd)
        same_bytes(contents(low), model, "LOWER after the writer's close (a reader still open)")
        expect_fcms(1, "a reader left")
        same_bytes(os.pread(fd2, len(model) + 1, 0), model, "the reader after the writer's close")
    finally:
        for f in fds:
            os.close(f)
    same_bytes(contents(low), model, "LOWER after the last close")
    same_bytes(contents(path), model, "the file reopened")
    check(os.stat(path).st_size == len(model) == os.stat(low).st_size, "the size after the last close")

    # A write moves mtime and ctime.
    old = 1_500_000_000
    os.utime(path, (old, old))
    c0 = os.stat(path).st_ctime_ns
    t0 = time.time()
    fd = os.open(path, os.O_WRONLY)
    try:
        check(os.pwrite(fd, b"m", 0) == 1, "a short pwrite")
        model[0:1] = b"m"
        for st, how in ((os.fstat(fd), "fstat"), (os.stat(path), "stat")):
            check(st.st_mtime > old + 1 and st.st_mtime >= t0 - 2,
                  f"{how} mtime after a write: {st.st_mtime} (set to {old}, now {t0:.0f})")
            check(st.st_ctime_ns >= c0, f"{how} ctime went back after a write")
    finally:
        os.close(fd)
    check(os.stat(low).st_mtime >= t0 - 2, f"LOWER's mtime after a write: {os.stat(low).st_mtime}")
    same_bytes(contents(low), model, "LOWER after the last write")


def case_append():
    d = fresh("append")
    path, low = M(d, "log"), L(d, "log")
    make(path, b"head\n")
    want = bytearray(b"head\n")
    a = os.open(path, os.O_WRONLY | os.O_APPEND)
    b = os.open(path, os.O_WRONLY | os.O_APPEND)
    plain = os.open(path, os.O_RDWR)
    try:
        def append(fd, data, what):
            write_all(fd, data, what)
            want.extend(data)
            pos = os.lseek(fd, 0, os.SEEK_CUR)
            check(pos == len(want), f"{what}: the position after an O_APPEND write is {pos}, not the end {len(want)}")

        append(a, b"a1\n", "the first appender")
        append(b, b"b1\n", "the second appender")
        append(a, b"a2\n", "the first appender again")
        os.lseek(a, 0, os.SEEK_SET)
        append(a, b"a3 after lseek to 0\n", "an append after lseek to 0")
        rec = b"a4 pwrite at 0\n"
        check(os.pwrite(a, rec, 0) == len(rec), "a short pwrite")
        want.extend(rec)  # Linux: pwrite on an O_APPEND descriptor appends
        # Another descriptor grows the file: the next append goes after it.
        end = len(want) + 100
        check(os.pwrite(plain, b"X", end) == 1, "a short pwrite")
        want.extend(bytes(100) + b"X")
        append(b, b"b2\n", "an append after another descriptor grew the file")
        same_bytes(os.pread(plain, len(want) + 10, 0), want, "O_APPEND writes through two descriptors")
        check(os.fstat(plain).st_size == len(want), "the size after the appends")
    finally:
        for fd in (a, b, plain):
            os.close(fd)
    same_bytes(contents(low), want, "LOWER after closing the appenders")

    # Two processes append fixed-width lines at once.
    lines, width = 300, 32

    def appender(tag):
        def run_appender():
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            for i in range(lines):
                rec = f"{tag}:{i:06d}:".encode()
                rec += b"." * (width - 1 - len(rec)) + b"\n"
                n = os.write(fd, rec)
                if n != width:
                    raise Failure(f"appender {tag}: line {i}: wrote {n} of {width} bytes")
            os.close(fd)
        return run_appender

    children = [spawn(appender(tag)) for tag in "AB"]
    for child, tag in zip(children, "AB"):
        reap(child, f"appender {tag}")
    data = contents(path)
    same_bytes(data[:len(want)], want, "the file before the concurrent appends")
    body = data[len(want):]
    check(len(body) == 2 * lines * width, f"{len(body)} bytes appended, expected {2 * lines * width}")
    seen = {"A": [], "B": []}
    for k in range(0, len(body), width):
        m = re.fullmatch(rb"([AB]):(\d{6}):\.+\n", body[k:k + width])
        check(m, f"appended record {k // width} torn or misplaced: {body[k:k + width]!r}")
        seen[m.group(1).decode()].append(int(m.group(2)))
    for tag in "AB":
        check(seen[tag] == list(range(lines)),
              f"appender {tag}: {len(seen[tag])} of {lines} lines, in order: {seen[tag] == sorted(seen[tag])}")
    same_bytes(contents(low), data, "LOWER after the concurrent appends")


def case_truncate():
    d = fresh("truncate")
    path, low = M(d, "f"), L(d, "f")
    base = bytes((i * 7) % 251 + 1 for i in range(5 * PAGE))
    make(path, base)
    fd = os.open(path, os.O_RDWR)
    try:
        same_bytes(os.pread(fd, 5 * PAGE + 1, 0), base, "before the truncation")
        check(os.pwrite(fd, b"dirty past the cut", 4 * PAGE + 8) == 18, "a short pwrite")
        cut = 2 * PAGE + 10
        os.ftruncate(fd, cut)
        check(os.fstat(fd).st_size == cut and os.stat(path).st_size == cut, "the size after ftruncate shrinking")
        check(os.lseek(fd, 0, os.SEEK_END) == cut, "SEEK_END after ftruncate shrinking")
        same_bytes(os.pread(fd, 5 * PAGE, 0), base[:cut], "after ftruncate shrinking")
        os.ftruncate(fd, 3 * PAGE)
        want = base[:cut] + bytes(3 * PAGE - cut)
        same_bytes(os.pread(fd, 5 * PAGE, 0), want,
                   "after ftruncate growing (grown bytes read as zero, the dirty bytes past the old cut gone)")
        os.fsync(fd)
        same_bytes(contents(low), want, "LOWER after shrinking, growing and fsync")
        os.ftruncate(fd, 10 * PAGE + 3)
        want += bytes(10 * PAGE + 3 - len(want))
        same_bytes(os.pread(fd, 11 * PAGE, 0), want, "after ftruncate growing far")
        # truncate(path) while open: the descriptor sees it at once.
        os.truncate(path, PAGE + 1)
        want = want[:PAGE + 1]
        check(os.fstat(fd).st_size == PAGE + 1, f"an open descriptor's size after truncate(path): {os.fstat(fd).st_size}")
        same_bytes(os.pread(fd, 5 * PAGE, 0), want, "an open descriptor after truncate(path)")
        # O_TRUNC by another opener while this one is open.
        t = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            check(os.fstat(fd).st_size == 0 and os.stat(path).st_size == 0,
                  f"O_TRUNC: size {os.fstat(fd).st_size} through another descriptor")
            check(os.pread(fd, 100, 0) == b"", "O_TRUNC: another descriptor still reads data")
            write_all(t, b"after O_TRUNC")
        finally:
            os.close(t)
        same_bytes(os.pread(fd, 100, 0), b"after O_TRUNC", "written after O_TRUNC")
        os.ftruncate(fd, 0)
        check(os.pread(fd, 10, 0) == b"", "data after ftruncate to 0")
        check(os.pwrite(fd, b"new", 0) == 3, "a short pwrite")
        ro = os.open(path, os.O_RDONLY)
        try:
            expect_errno(errno.EINVAL, "ftruncate of an O_RDONLY descriptor", os.ftruncate, ro, 0)
        finally:
            os.close(ro)
    finally:
        os.close(fd)
    same_bytes(contents(low), b"new", "LOWER after the truncations and close")
    # O_TRUNC of a closed file.
    make(M(d, "g"), b"g" * 10000)
    fd = os.open(M(d, "g"), os.O_RDWR | os.O_TRUNC)
    try:
        check(os.fstat(fd).st_size == 0 and os.read(fd, 10) == b"", "O_TRUNC of a closed file")
    finally:
        os.close(fd)
    both_hold(d, "g", b"", "O_TRUNC of a closed file")
    make(M(d, "h"), b"long old contents\n" * 100)
    make(M(d, "h"), b"short")
    both_hold(d, "h", b"short", "O_CREAT|O_TRUNC over a longer file")


def case_sync_writes():
    d = fresh("sync_writes")
    path, low = M(d, "f"), L(d, "f")
    model = bytearray(b"s" * (2 * PAGE))
    make(path, bytes(model))
    keeper = os.open(path, os.O_RDONLY)  # the FCM stays between the openers below

    def put(fd, chunk, pos):
        check(os.pwrite(fd, chunk, pos) == len(chunk), "a short pwrite")
        if pos > len(model):
            model.extend(bytes(pos - len(model)))
        model[pos:pos + len(chunk)] = chunk

    try:
        for flag, name in ((os.O_SYNC, "O_SYNC"), (os.O_DSYNC, "O_DSYNC")):
            fd = os.open(path, os.O_WRONLY | flag)
            try:
                for pos, chunk in ((100, f"synced {name}".encode()), (PAGE - 2, b"across"),
                                   (len(model) + 10, b"past EOF " + name.encode())):
                    put(fd, chunk, pos)
                    same_bytes(contents(low), model, f"LOWER right after an {name} write at {pos} (no fsync, still open)")
            finally:
                os.close(fd)
        fd = os.open(path, os.O_WRONLY)
        try:
            for flag, name in ((os.RWF_DSYNC, "RWF_DSYNC"), (os.RWF_SYNC, "RWF_SYNC")):
                chunk = name.encode()
                pos = 300 if flag == os.RWF_DSYNC else len(model) + 1
                if pos > len(model):
                    model.extend(bytes(pos - len(model)))
                check(os.pwritev(fd, [chunk], pos, flag) == len(chunk), f"a short {name} pwritev2")
                model[pos:pos + len(chunk)] = chunk
                same_bytes(contents(low), model, f"LOWER right after a {name} write (no fsync, still open)")
        finally:
            os.close(fd)
        same_bytes(os.pread(keeper, len(model) + 1, 0), model, "a reader of the synchronous writes")
    finally:
        os.close(keeper)
    same_bytes(contents(low), model, "LOWER after the synchronous writes")


def case_direct_io():
    d = fresh("direct_io")
    path = M(d, "f")
    make(path, b"d" * (2 * PAGE))
    for flags, name in ((os.O_RDONLY, "O_RDONLY"), (os.O_RDWR, "O_RDWR"), (os.O_WRONLY, "O_WRONLY")):
        expect_errno(errno.EINVAL, f"open {name}|O_DIRECT of a regular file", os.open, path,
                     flags | os.O_DIRECT)
    fd = os.open(path, os.O_RDWR)
    try:
        expect_errno(errno.EINVAL, "fcntl(F_SETFL, O_DIRECT)", fcntl_setfl, fd, os.O_DIRECT)
        check(not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT, "a refused F_SETFL set O_DIRECT")
        same_bytes(os.pread(fd, 3 * PAGE, 0), b"d" * (2 * PAGE), "the file after refused O_DIRECT")
    finally:
        os.close(fd)
    both_hold(d, "f", b"d" * (2 * PAGE), "the file after refused O_DIRECT")


def fcntl_setfl(fd, flags):
    return fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | flags)


def sendfile_all(out_fd, in_fd, total, chunk=64 * 1024 + 1):
    off = 0
    while off < total:
        n = os.sendfile(out_fd, in_fd, off, min(chunk, total - off))
        check(n > 0, f"sendfile stopped at {off} of {total}")
        off += n
    check(os.sendfile(out_fd, in_fd, total, 100) == 0, "sendfile from EOF sent data")


def copy_range_all(in_fd, out_fd, count, src, dst):
    done = 0
    while done < count:
        n = os.copy_file_range(in_fd, out_fd, count - done, src + done, dst + done)
        check(n > 0, f"copy_file_range stopped at {done} of {count}")
        done += n


def splice_all(in_fd, out_fd, total):
    """in_fd -> a pipe -> out_fd, at explicit offsets."""
    pr, pw = os.pipe()
    try:
        off = 0
        while off < total:
            n = os.splice(in_fd, pw, min(65536, total - off), offset_src=off)
            check(n > 0, f"splice to a pipe stopped at {off} of {total}")
            moved = 0
            while moved < n:
                m = os.splice(pr, out_fd, n - moved, offset_dst=off + moved)
                check(m > 0, f"splice from a pipe stopped at {off + moved} of {total}")
                moved += m
            off += n
    finally:
        os.close(pr)
        os.close(pw)


def case_copy():
    d = fresh("copy")
    sd = fresh_scratch("copy")
    rng = random.Random(5)
    data = rng.randbytes(300 * 1024 + 123)
    src = M(d, "src")
    make(src, data)
    # A tail still in the FCM only: copies must see its bytes and its size.
    writer = os.open(src, os.O_WRONLY | os.O_APPEND)
    extra = rng.randbytes(5000)
    write_all(writer, extra)
    data += extra
    fds = [writer]

    def opened(path, flags=os.O_WRONLY | os.O_CREAT | os.O_EXCL):
        fd = os.open(path, flags, 0o644)
        fds.append(fd)
        return fd

    def closed(fd):
        fds.remove(fd)
        os.close(fd)

    try:
        i = opened(src, os.O_RDONLY)
        # sendfile within the mount, out of it, into it.
        o = opened(M(d, "sendfile"))
        sendfile_all(o, i, len(data))
        closed(o)
        both_hold(d, "sendfile", data, "sendfile within the mount")
        out = os.path.join(sd, "sendfile-out")
        o = opened(out)
        sendfile_all(o, i, len(data))
        closed(o)
        same_bytes(contents(out), data, "sendfile from the mount to another filesystem")
        other = os.path.join(sd, "in")
        make(other, data)
        i2 = opened(other, os.O_RDONLY)
        o = opened(M(d, "sendfile-in"))
        sendfile_all(o, i2, len(data))
        closed(o)
        both_hold(d, "sendfile-in", data, "sendfile from another filesystem into the mount")

        # copy_file_range within the mount: all of it, and a range to an offset.
        o = opened(M(d, "cfr"))
        copy_range_all(i, o, len(data), 0, 0)
        check(os.copy_file_range(i, o, 100, len(data), 0) == 0, "copy_file_range from EOF copied data")
        closed(o)
        both_hold(d, "cfr", data, "copy_file_range within the mount")
        o = opened(M(d, "cfr-range"))
        copy_range_all(i, o, 50000, 1000, 7)
        closed(o)
        both_hold(d, "cfr-range", bytes(7) + data[1000:51000], "copy_file_range of a range to offset 7")
        # Out of the mount: EXDEV (the kernel refuses cross-filesystem
        # copies without a shared ->copy_file_range), or an exact copy.
        out = os.path.join(sd, "cfr-out")
        o = opened(out)
        try:
            copy_range_all(i, o, len(data), 0, 0)
        except OSError as e:
            check(e.errno == errno.EXDEV, f"copy_file_range to another filesystem: {ename(e.errno)}, "
                  "expected EXDEV or a copy")
            check(os.fstat(o).st_size == 0, "a refused copy_file_range wrote data")
        else:
            same_bytes(contents(out), data, "copy_file_range to another filesystem")
        closed(o)

        # splice through a pipe, within the mount.
        o = opened(M(d, "splice"))
        splice_all(i, o, len(data))
        closed(o)
        both_hold(d, "splice", data, "splice within the mount")
    finally:
        for fd in fds:
            os.close(fd)
    both_hold(d, "src", data, "the source")


def case_mmap():
    d = fresh("mmap")
    path, low = M(d, "f"), L(d, "f")
    base = bytes((i * 13) % 251 for i in range(3 * PAGE + 100))
    make(path, base)
    model = bytearray(base)
    w = os.open(path, os.O_RDWR)
    r = os.open(path, os.O_RDONLY)
    try:
        check(os.pwrite(w, b"fresh bytes", PAGE + 5) == 11, "a short pwrite")  # not fsynced
        model[PAGE + 5:PAGE + 16] = b"fresh bytes"
        m = mmap.mmap(r, len(model), flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        try:
            same_bytes(m[:], model, "a MAP_PRIVATE read mapping (just written bytes not yet fsynced)")
        finally:
            m.close()
        m = mmap.mmap(r, PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ, offset=PAGE)
        try:
            same_bytes(m[:], model[PAGE:2 * PAGE], "a MAP_PRIVATE mapping at offset one page")
        finally:
            m.close()
        m = mmap.mmap(r, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        try:
            check(len(m) == len(model), f"a whole-file mapping has {len(m)} bytes, not {len(model)}")
            same_bytes(m[:], model, "a whole-file MAP_PRIVATE mapping")
        finally:
            m.close()
        # Writes to a private mapping stay in it.
        c = mmap.mmap(r, len(model), flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            c[0:7] = b"COWCOW!"
            c[2 * PAGE:2 * PAGE + 3] = b"xyz"
            check(c[0:7] == b"COWCOW!" and c[2 * PAGE:2 * PAGE + 3] == b"xyz", "a private mapping lost its writes")
            same_bytes(os.pread(r, len(model) + 1, 0), model, "the file after writes to a MAP_PRIVATE mapping")
        finally:
            c.close()
        os.fsync(w)
        same_bytes(contents(low), model, "LOWER after writes to a MAP_PRIVATE mapping and fsync")
    finally:
        os.close(w)
        os.close(r)
    same_bytes(contents(low), model, "LOWER after close")
    mmap_shared(d)


def fcm_of(path):
    """hswapctl status of the one FCM it labels `path` (id, implementation,
    pages cached...)."""
    mine = []
    for o in fcm_objects():
        r = subprocess.run([HSWAPCTL, "--json", "status", o["id"]], capture_output=True, text=True)
        # Another file's FCM may end meanwhile (its inode evicted).
        if r.returncode == 0 and json.loads(r.stdout).get("label") == path:
            mine.append(json.loads(r.stdout))
    check(len(mine) == 1, f"{len(mine)} FCMs labelled {path}: {fcm_objects()}")
    return mine[0]


def sigbus_at(m, offset, what):
    """Reading byte `offset` of mapping `m` must kill a child with SIGBUS."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        m[offset]
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    check(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS,
          f"{what}: a read at {offset} left status {status:#x}, not SIGBUS")


def mmap_shared(d):
    """Shared and private mappings of the FCM's own pages: they show every
    later write through the mount at once, survive the FCM dropping its
    pages, memory reclaim and swaps, and lose the pages a truncation cut."""
    path, low = M(d, "shared"), L(d, "shared")
    model = bytearray(bytes((i * 7 + 3) % 253 for i in range(3 * PAGE + 100)))
    make(path, model)
    w = os.open(path, os.O_RDWR)
    r = os.open(path, os.O_RDONLY)
    maps = []
    try:
        # Read-only MAP_SHARED through both kinds of descriptor (through an
        # O_RDONLY one the VMA has VM_MAYSHARE but not VM_SHARED).
        shared_r = mmap.mmap(r, len(model), flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        maps.append(shared_r)
        shared_w = mmap.mmap(w, len(model), flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        maps.append(shared_w)
        private = mmap.mmap(r, len(model), flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        maps.append(private)
        own = bytearray(model)

        def expect(what):
            same_bytes(shared_r[:], model, f"a read-only MAP_SHARED (O_RDONLY) {what}")
            same_bytes(shared_w[:], model, f"a read-only MAP_SHARED (O_RDWR) {what}")
            same_bytes(private[:], own, f"a MAP_PRIVATE {what}")

        def pwrite(data, at):
            check(os.pwrite(w, data, at) == len(data), "a short pwrite")
            model[at:at + len(data)] = data
            # The private mapping's own page 0 stays its own.
            if at + len(data) > PAGE:
                lo = max(at, PAGE)
                own[lo:at + len(data)] = data[lo - at:]

        expect("at first")
        private[0:9] = b"copied on"
        own[0:9] = b"copied on"
        pwrite(b"later bytes, not fsynced", 2 * PAGE + 7)
        pwrite(b"in page 0", 100)
        pwrite(b"across a page boundary", PAGE - 11)
        expect("after pwrites (no fsync)")
        same_bytes(contents(path), model, "the file read through the mount")
        check(fcm_of(path)["pages"] >= 4, f"the FCM caches fewer than the 4 mapped pages: {fcm_of(path)}")

        # Every page of the FCM goes (POSIX_FADV_DONTNEED writes back and
        # evicts, mapped or not): the mappings must fault the new pages in.
        os.posix_fadvise(r, 0, 0, os.POSIX_FADV_DONTNEED)
        gone = fcm_of(path)
        check(gone["pages"] == 0, f"pages left after POSIX_FADV_DONTNEED: {gone}")
        same_bytes(contents(low), model, "LOWER after POSIX_FADV_DONTNEED")
        pwrite(b"written after the eviction", PAGE + 300)
        expect("after the FCM evicted every page and a pwrite")

        # Memory reclaim leaves mapped pages be (unmapping them would wait
        # on the address space); the mappings stay right either way.
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        expect("after drop_caches")
        check(fcm_of(path)["pages"] >= 4, f"reclaim took mapped pages: {fcm_of(path)}")
        pwrite(b"written after reclaim", 3 * PAGE + 10)
        expect("after drop_caches and a pwrite")

        # Swaps move the very pages the mappings show.
        oid = fcm_of(path)["id"]
        for target in ("distributed", "shared", "distributed", FCM_IMPL or "shared"):
            r_ = subprocess.run([HSWAPCTL, "--json", "swap", "fcm", target], capture_output=True, text=True)
            check(r_.returncode == 0, f"hswapctl swap fcm {target} exited {r_.returncode}: {r_.stdout}{r_.stderr}")
            now = fcm_of(path)
            check(now["id"] == oid and now["implementation"] == target, f"after a swap to {target}: {now}")
            expect(f"after a swap to {target}")
            pwrite(f"on {target}".encode(), 2 * PAGE + 500)
            expect(f"after a swap to {target} and a pwrite")
            os.posix_fadvise(r, 0, 0, os.POSIX_FADV_DONTNEED)
            expect(f"on {target}, after the FCM evicted every page")

        # Writable shared mappings are refused; a read-only one of an
        # O_RDWR descriptor cannot be made writable.
        expect_errno(errno.ENODEV, "a writable MAP_SHARED", mmap.mmap, w, len(model),
                     flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        addr = libc.mmap(None, PAGE, mmap.PROT_READ, mmap.MAP_SHARED, w, 0)
        check(addr not in (None, MAP_FAILED), f"mmap: {ename(ctypes.get_errno())}")
        try:
            ret = libc.mprotect(addr, PAGE, mmap.PROT_READ | mmap.PROT_WRITE)
            err = ctypes.get_errno()
            check(ret == -1 and err == errno.EACCES,
                  f"mprotect(PROT_WRITE) of a read-only MAP_SHARED: {ret} ({ename(err)}), not EACCES")
        finally:
            libc.munmap(addr, PAGE)

        # A truncation takes the pages past the new end out of every
        # mapping (SIGBUS there, private copies included) and zeroes the
        # rest of the last page; growing again brings zeros.
        cut = PAGE + 50
        os.ftruncate(w, cut)
        del model[cut:]
        zeros = bytes(PAGE - 50)
        for m, what in ((shared_r, "MAP_SHARED"), (private, "MAP_PRIVATE")):
            sigbus_at(m, 2 * PAGE, f"a {what} after a truncation to {cut}")
            sigbus_at(m, 3 * PAGE + 1, f"a {what} after a truncation to {cut}")
            same_bytes(m[PAGE:cut], model[PAGE:cut], f"a {what}'s last page after a truncation")
            same_bytes(m[cut:2 * PAGE], zeros, f"a {what}'s last page past the new end")
        same_bytes(shared_r[:cut], model, "a MAP_SHARED after a truncation")
        os.ftruncate(w, 3 * PAGE)
        model += bytes(3 * PAGE - cut)
        same_bytes(shared_r[:3 * PAGE], model, "a MAP_SHARED after growing the file again")
        sigbus_at(shared_r, 3 * PAGE + 1, "a MAP_SHARED past the end after growing to 3 pages")
        os.fsync(w)
        same_bytes(contents(low), model, "LOWER at the end")
    finally:
        for m in maps:
            m.close()
        os.close(w)
        os.close(r)


def case_exec():
    d = fresh("exec")
    for name in ("true", "false", "sleep"):
        run(["cp", f"/bin/{name}", M(d, name)])
    same_bytes(contents(L(d, "true")), contents("/bin/true"), "a binary copied in, in LOWER")
    r = subprocess.run([M(d, "true")])
    check(r.returncode == 0, f"a copied /bin/true exited {r.returncode}")
    r = subprocess.run([M(d, "false")])
    check(r.returncode == 1, f"a copied /bin/false exited {r.returncode}")
    make(M(d, "script"), b'#!/bin/sh\necho "script:$1:$2"\n', 0o755)
    r = subprocess.run([M(d, "script"), "a", "b"], capture_output=True)
    check(r.returncode == 0 and r.stdout == b"script:a:b\n", f"a script: exit {r.returncode}, {r.stdout!r} {r.stderr!r}")
    make(M(d, "via"), f"#!{M(d, 'true')}\n".encode(), 0o755)
    r = subprocess.run([M(d, "via")])
    check(r.returncode == 0, f"a script whose interpreter is on the mount exited {r.returncode}")
    make(M(d, "noexec"), b"#!/bin/sh\nexit 0\n", 0o644)
    expect_errno(errno.EACCES, "exec of a 0644 file", subprocess.run, [M(d, "noexec")])
    # A running binary keeps its file open (and its FCM); it cannot be
    # opened for writing.
    p = subprocess.Popen([M(d, "sleep"), "60"])
    try:
        expect_fcms(1, "a binary running from the mount")
        expect_errno(errno.ETXTBSY, "opening a running binary for writing", os.open, M(d, "sleep"), os.O_WRONLY)
    finally:
        p.kill()
        p.wait()


def case_permissions():
    d = fresh("permissions")
    secret, public = M(d, "secret"), M(d, "public")
    make(secret, b"root only\n", 0o600)
    make(public, b"everyone reads\n", 0o644)
    os.mkdir(M(d, "open"))
    os.chmod(M(d, "open"), 0o777)
    os.mkdir(M(d, "emptydir"))
    os.mkdir(M(d, "closed"))
    make(M(d, "closed/inner"), b"inner\n")
    os.chmod(M(d, "closed"), 0o700)
    for name, mode in (("tool700", 0o700), ("tool755", 0o755)):
        shutil.copyfile("/bin/true", M(d, name))
        os.chmod(M(d, name), mode)

    def nobody():
        drop_privileges()
        expect_errno(errno.EACCES, "user 65534 opening a 0600 root file", os.open, secret, os.O_RDONLY)
        same_bytes(contents(public), b"everyone reads\n", "user 65534 reading a 0644 root file")
        for flags, name in ((os.O_WRONLY, "O_WRONLY"), (os.O_RDWR, "O_RDWR"),
                            (os.O_WRONLY | os.O_APPEND, "O_WRONLY|O_APPEND")):
            expect_errno(errno.EACCES, f"user 65534 opening a 0644 root file {name}", os.open, public, flags)
        expect_errno(errno.EACCES, "user 65534: truncate of a 0644 root file", os.truncate, public, 0)
        expect_errno(errno.EACCES, "user 65534: utime(now) of a 0644 root file", os.utime, public, None)
        expect_errno(errno.EPERM, "user 65534: utime(times) of a 0644 root file", os.utime, public, (1, 1))
        expect_errno(errno.EPERM, "user 65534: chmod of a root file", os.chmod, public, 0o666)
        expect_errno(errno.EPERM, "user 65534: chown of a root file", os.chown, public, NOBODY, NOBODY)
        expect_errno(errno.EACCES, "user 65534: a user.* xattr on a 0644 root file", os.setxattr,
                     public, "user.x", b"1")
        # A 0777 directory takes the user's files, owned by the user.
        fd = os.open(M(d, "open/mine"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, b"mine\n")
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if (st.st_uid, st.st_gid) != (NOBODY, NOBODY):
            raise Failure(f"a file user 65534 created is owned by {st.st_uid}:{st.st_gid}")
        os.chmod(M(d, "open/mine"), 0o600)
        os.mkdir(M(d, "open/mydir"))
        for what, fn, args in (
            ("create in a 0755 root directory", os.open, (M(d, "new"), os.O_WRONLY | os.O_CREAT, 0o644)),
            ("mkdir in a 0755 root directory", os.mkdir, (M(d, "newdir"),)),
            ("symlink in a 0755 root directory", os.symlink, ("public", M(d, "newlink"))),
            # Its own file: linking someone else's may be EPERM first
            # (fs.protected_hardlinks).
            ("link in a 0755 root directory", os.link, (M(d, "open/mine"), M(d, "newhard"))),
            ("unlink in a 0755 root directory", os.unlink, (public,)),
            ("rename in a 0755 root directory", os.rename, (public, M(d, "renamed"))),
            ("rmdir in a 0755 root directory", os.rmdir, (M(d, "emptydir"),)),
            ("listing a 0700 root directory", os.listdir, (M(d, "closed"),)),
            ("stat under a 0700 root directory", os.stat, (M(d, "closed/inner"),)),
            ("exec of a 0700 root binary", subprocess.run, ([M(d, "tool700")],)),
        ):
            expect_errno(errno.EACCES, f"user 65534: {what}", fn, *args)
        r = subprocess.run([M(d, "tool755")])
        if r.returncode != 0:
            raise Failure(f"user 65534 running a 0755 binary: exit {r.returncode}")

    # Root holds both files open: their FCMs exist while user 65534 tries.
    held = [os.open(secret, os.O_RDONLY), os.open(public, os.O_RDWR)]
    try:
        in_child(nobody, "permissions of user 65534")
    finally:
        for fd in held:
            os.close(fd)
    st = os.stat(L(d, "open/mine"))
    check((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o600),
          f"user 65534's file in LOWER: {st.st_uid}:{st.st_gid} mode {stat.S_IMODE(st.st_mode):o}")
    same_bytes(contents(L(d, "open/mine")), b"mine\n", "user 65534's file in LOWER")
    check(os.stat(L(d, "open/mydir")).st_uid == NOBODY, "user 65534's directory in LOWER")
    both_hold(d, "secret", b"root only\n", "a 0600 file after user 65534's attempts")
    both_hold(d, "public", b"everyone reads\n", "a 0644 file after user 65534's attempts")
    for rel in ("new", "newdir", "newlink", "newhard", "renamed"):
        both_absent(d, rel, "a refused change of user 65534")
    check(os.path.isdir(M(d, "emptydir")) and os.path.isdir(L(d, "emptydir")), "a refused rmdir removed the directory")


def case_churn():
    d = fresh("churn")
    rng = random.Random(99)
    dirs, count = 10, 1000
    for k in range(dirs):
        os.mkdir(M(d, f"s{k}"))
    model = {}
    for i in range(count):
        rel = f"s{i % dirs}/f{i:04d}"
        data = (f"churn file {i} {rng.getrandbits(64):016x}\n" * (1 + i % 5)).encode()
        make(M(d, rel), data)
        model[rel] = data
    renamed = {}
    for i in range(count):
        old, new = f"s{i % dirs}/f{i:04d}", f"s{(i + 3) % dirs}/g{i:04d}"
        os.rename(M(d, old), M(d, new))
        renamed[new] = model.pop(old)
    model = renamed
    for i in range(1, count, 2):
        rel = f"s{(i + 3) % dirs}/g{i:04d}"
        os.unlink(M(d, rel))
        del model[rel]
    check(len(model) == count // 2, "the model")
    for side, where in ((M, "through the mount"), (L, "in LOWER")):
        top = sorted(os.listdir(side(d)))
        check(top == sorted(f"s{k}" for k in range(dirs)), f"churn {where}: the top lists {top}")
        for k in range(dirs):
            want = sorted(rel.split("/")[1] for rel in model if rel.startswith(f"s{k}/"))
            got = sorted(os.listdir(side(d, f"s{k}")))
            if got != want:
                fail(f"churn {where}: s{k} lists {len(got)} names, expected {len(want)}: "
                     f"extra {sorted(set(got) - set(want))[:5]}, missing {sorted(set(want) - set(got))[:5]}")
        for rel, data in model.items():
            same_bytes(contents(side(d, rel)), data, f"churn {where}: {rel}")


def page_bytes(page, gen):
    return struct.pack("<II", page, gen) * (PAGE // 8)


def case_swap():
    check(os.access(HSWAPCTL, os.X_OK), f"no hswapctl at {HSWAPCTL} (make tool)")
    d = fresh("swap")
    path, low = M(d, "data"), L(d, "data")
    pages = 64
    make(path, b"".join(page_bytes(p, 0) for p in range(pages)))
    writer_fd = os.open(path, os.O_RDWR)
    reader_fd = os.open(path, os.O_RDONLY)
    errors, stop = [], threading.Event()
    progress = {"gen": 0, "reads": 0}

    def writer():
        try:
            gen = 0
            while not stop.is_set():
                gen += 1
                for p in range(pages):
                    n = os.pwrite(writer_fd, page_bytes(p, gen), p * PAGE)
                    if n != PAGE:
                        raise Failure(f"generation {gen}, page {p}: wrote {n} bytes")
                for p in range(pages):
                    got = os.pread(writer_fd, PAGE, p * PAGE)
                    if got != page_bytes(p, gen):
                        raise Failure(f"generation {gen}, page {p} read back {got[:8].hex()}... "
                                      f"({len(got)} bytes), not what was written")
                progress["gen"] = gen
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(f"writer: {e}")

    def reader():
        try:
            while not stop.is_set():
                for p in range(pages):
                    got = os.pread(reader_fd, PAGE, p * PAGE)
                    if len(got) != PAGE:
                        raise Failure(f"page {p}: read {len(got)} bytes")
                    for off in range(0, PAGE, 512):
                        wp, wg = struct.unpack_from("<II", got, off)
                        if wp != p or wg > progress["gen"] + 1:
                            raise Failure(f"page {p} word {off}: page {wp} generation {wg} "
                                          f"(writer at {progress['gen']})")
                progress["reads"] += 1
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(f"reader: {e}")

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    swaps = 0
    try:
        objs = expect_fcms(1, "the file to swap")
        oid, start = objs[0]["id"], objs[0]["impl"]
        others = {"shared": "distributed", "distributed": "shared"}
        check(start in others, f"the FCM is on {start}, neither shared nor distributed")
        for t in threads:
            t.start()

        def wait_progress(gen, what):
            deadline = time.monotonic() + 60
            while progress["gen"] < gen and not errors:
                if time.monotonic() > deadline:
                    fail(f"the writer made no progress {what} (at generation {progress['gen']})")
                time.sleep(0.01)

        wait_progress(1, "before the swaps")
        for target in [others[start], start] * 3:
            if errors:
                break
            gen = progress["gen"]
            r = subprocess.run([HSWAPCTL, "--json", "swap", "fcm", target], capture_output=True, text=True)
            check(r.returncode == 0, f"hswapctl swap fcm {target} exited {r.returncode}: {r.stdout}{r.stderr}")
            report = json.loads(r.stdout)
            check(report["aborted"] == 0, f"swap to {target} aborted: {report}")
            mine = [o for o in report["objects"] if str(o["id"]) == oid]
            check(mine and mine[0]["outcome"] == "completed", f"swap to {target}: the file's FCM {oid}: {report}")
            now = [o for o in fcm_objects() if o["id"] == oid]
            check(now and now[0]["impl"] == target, f"after a swap to {target}: {now}")
            swaps += 1
            wait_progress(gen + 2, f"after the swap to {target}")
    finally:
        stop.set()
        for t in threads:
            if t.is_alive() or t.ident is not None:
                t.join(120)
    if errors:
        fail(errors[0])
    check(swaps == 6, f"{swaps} swaps of 6")
    check(all(not t.is_alive() for t in threads), "a load thread did not stop")
    objs = expect_fcms(1, "after the swaps", impl=start)
    check(int(objs[0]["swaps"]) >= swaps, f"the FCM counts {objs[0]['swaps']} swaps, not {swaps}")
    last = progress["gen"]
    want = b"".join(page_bytes(p, last) for p in range(pages))
    try:
        os.fsync(writer_fd)
        same_bytes(contents(low), want, f"LOWER after {swaps} swaps and fsync (generation {last})")
    finally:
        os.close(writer_fd)
        os.close(reader_fd)
    same_bytes(contents(low), want, "LOWER after close")
    same_bytes(contents(path), want, "the file reopened")
    print(f"  {swaps} swaps under load: {last} generations written and verified, "
          f"{progress['reads']} reader passes")


def expect_umount_busy(what):
    r = subprocess.run(["umount", MNT], capture_output=True, text=True)
    check(r.returncode != 0, f"umount {what} succeeded")
    rc = libc.umount2(MNT.encode(), 0)
    err = ctypes.get_errno()
    check(rc != 0, f"umount2 {what} succeeded")
    check(err == errno.EBUSY, f"umount2 {what}: {ename(err)}, expected EBUSY")
    check(is_hotswapfs_mount(MNT), f"hotswapfs is gone after a refused umount {what}")


def case_umount_busy():
    d = fresh("umount_busy")
    path, low = M(d, "f"), L(d, "f")
    data = b"written before the umount\n" * 1000
    cwd = os.getcwd()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    addr = None
    try:
        write_all(fd, data)
        expect_umount_busy("with a file open (unwritten data)")
        make(M(d, "after"), b"still usable\n")
        same_bytes(contents(M(d, "after")), b"still usable\n", "a file made after a refused umount")
        check(sorted(os.listdir(M(d))) == ["after", "f"], "the listing after a refused umount")
        same_bytes(os.pread(fd, len(data) + 1, 0), data, "the open file after a refused umount")
        # A mapping alone keeps the mount busy.
        addr = libc.mmap(None, PAGE, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
        check(addr not in (None, MAP_FAILED), f"mmap: {ename(ctypes.get_errno())}")
        os.close(fd)
        fd = None
        expect_umount_busy("with only a mapping of a file")
        check(ctypes.string_at(addr, 26) == data[:26], "a mapping after a refused umount")
        libc.munmap(addr, PAGE)
        addr = None
        # So does a working directory.
        os.chdir(M(d))
        try:
            expect_umount_busy("with a working directory in the mount")
        finally:
            os.chdir(cwd)
    finally:
        if addr is not None:
            libc.munmap(addr, PAGE)
        if fd is not None:
            os.close(fd)
    wait_no_fcm("before the umount")
    before = snapshot(MNT, hashes=False)
    run(["umount", MNT])
    check(mounted_at(MNT) is None or not is_hotswapfs_mount(MNT), f"{MNT} still mounted after umount")
    check(not fcm_objects(), f"FCMs after the umount: {fcm_objects()}")
    same_bytes(contents(low), data, "LOWER after close and umount")
    same_bytes(contents(L(d, "after")), b"still usable\n", "LOWER after umount")
    mount_hotswapfs()
    same_tree(snapshot(MNT, hashes=False), before, "the tree after the remount")
    same_tree(snapshot(L(d)), snapshot(M(d)), "the remounted files and LOWER")
    same_bytes(contents(path), data, "the file after the remount")


def case_xattrs():
    d = fresh("xattrs")
    f, lf = M(d, "f"), L(d, "f")
    make(f, b"x")
    try:
        os.setxattr(f, "user.alpha", b"one")
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
        probe = os.path.join(os.path.dirname(LOWER), ".hotswapfs-xattr-probe")
        make(probe, b"")
        try:
            os.setxattr(probe, "user.probe", b"1")
            lower_has = True
        except OSError:
            lower_has = False
        finally:
            os.unlink(probe)
        fail("setxattr user.* through the mount: EOPNOTSUPP; " +
             ("the lower filesystem takes them" if lower_has else
              "the lower filesystem itself has no user.* xattrs (tmpfs: CONFIG_TMPFS_XATTR=y "
              "in configs/hotswap.config)"))
    for path, where in ((f, "through the mount"), (lf, "in LOWER")):
        check(os.getxattr(path, "user.alpha") == b"one", f"getxattr {where}")
    check("user.alpha" in os.listxattr(f), f"listxattr: {os.listxattr(f)}")
    os.setxattr(f, "user.alpha", b"two", os.XATTR_REPLACE)
    check(os.getxattr(f, "user.alpha") == b"two" and os.getxattr(lf, "user.alpha") == b"two", "XATTR_REPLACE")
    expect_errno(errno.EEXIST, "XATTR_CREATE of an existing xattr", os.setxattr, f, "user.alpha", b"x",
                 os.XATTR_CREATE)
    expect_errno(errno.ENODATA, "XATTR_REPLACE of a missing xattr", os.setxattr, f, "user.missing", b"x",
                 os.XATTR_REPLACE)
    expect_errno(errno.ENODATA, "getxattr of a missing xattr", os.getxattr, f, "user.missing")
    value = bytes(range(256)) + bytes(44)
    os.setxattr(f, "user.binary", value)
    check(os.getxattr(f, "user.binary") == value and os.getxattr(lf, "user.binary") == value, "a binary value")
    os.setxattr(f, "user.empty", b"")
    check(os.getxattr(f, "user.empty") == b"" and os.getxattr(lf, "user.empty") == b"", "an empty value")
    os.mkdir(M(d, "dir"))
    os.setxattr(M(d, "dir"), "user.dir", b"on a directory")
    check(os.getxattr(L(d, "dir"), "user.dir") == b"on a directory", "an xattr of a directory, in LOWER")
    fd = os.open(f, os.O_RDWR)
    try:
        expect_fcms(1, "a file open for its xattrs")
        os.setxattr(fd, "user.fd", b"through a descriptor")
        check(os.getxattr(fd, "user.fd") == b"through a descriptor", "fgetxattr")
        check(os.getxattr(lf, "user.fd") == b"through a descriptor", "fsetxattr, in LOWER")
    finally:
        os.close(fd)
    os.symlink("f", M(d, "ln"))
    expect_errno(errno.EPERM, "a user.* xattr on a symlink itself", os.setxattr, M(d, "ln"), "user.x", b"1",
                 follow_symlinks=False)
    os.setxattr(M(d, "ln"), "user.via_link", b"followed")
    check(os.getxattr(lf, "user.via_link") == b"followed", "setxattr through a symlink, on its target in LOWER")
    os.removexattr(f, "user.alpha")
    for path, where in ((f, "through the mount"), (lf, "in LOWER")):
        expect_errno(errno.ENODATA, f"getxattr of a removed xattr {where}", os.getxattr, path, "user.alpha")
        check("user.alpha" not in os.listxattr(path), f"a removed xattr still listed {where}")
    expect_errno(errno.ENODATA, "removexattr of a missing xattr", os.removexattr, f, "user.alpha")
    check(sorted(os.listxattr(f)) == sorted(os.listxattr(lf)),
          f"listxattr {sorted(os.listxattr(f))} differs from LOWER's {sorted(os.listxattr(lf))}")
    check(sorted(os.listxattr(f)) == ["user.binary", "user.empty", "user.fd", "user.via_link"],
          f"listxattr: {sorted(os.listxattr(f))}")


def case_set_times():
    d = fresh("set_times")
    path, low = M(d, "f"), L(d, "f")
    t = 1_400_000_000
    data = b"written, then stamped\n" * 500
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, data)
        os.utime(fd, ns=(t * 10**9, t * 10**9))  # futimens, as cp -a does before close
        check(os.fstat(fd).st_mtime_ns == t * 10**9, "futimens on a file with unwritten data")
    finally:
        os.close(fd)
    for p, where in ((path, "through the mount"), (low, "in LOWER")):
        got = os.stat(p).st_mtime_ns
        check(got == t * 10**9, f"mtime set by futimens after a write, then close: {got} {where}, "
              f"expected {t * 10**9} (did the close's write-back touch it?)")
    same_bytes(contents(low), data, "LOWER")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, b"more\n")
        data += b"more\n"
        os.utime(path, (t + 1, t + 1))  # utimensat by path while open
    finally:
        os.close(fd)
    for p, where in ((path, "through the mount"), (low, "in LOWER")):
        check(os.stat(p).st_mtime == t + 1, f"mtime set by utimensat while open: {os.stat(p).st_mtime} {where}")
    # A read-only open and close changes no time.
    same_bytes(contents(path), data, "the file")
    for p, where in ((path, "through the mount"), (low, "in LOWER")):
        check(os.stat(p).st_mtime == t + 1, f"a read changed the mtime {where}: {os.stat(p).st_mtime}")


def build_tree(root, rng):
    files = {
        "empty": b"", "one": b"1", "page-minus-one": rng.randbytes(PAGE - 1), "page": rng.randbytes(PAGE),
        "page-plus-one": rng.randbytes(PAGE + 1), "mid.bin": rng.randbytes(128 * 1024 + 17),
        "large.bin": rng.randbytes((1 << 20) + 5), "text/readme.txt": b"hotswapfs round trip\n" * 200,
        "sub/deep/nested/leaf": rng.randbytes(333), "secret": b"mode 0600\n", "owned": b"owned by 65534\n",
        "dir700/inside": b"in a 0700 directory\n", "hard-a": b"two names, one inode\n",
        "bin/run.sh": b"#!/bin/sh\necho ran\n",
    }
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        make(os.path.join(root, rel), data)
    os.chmod(os.path.join(root, "bin/run.sh"), 0o755)
    os.chmod(os.path.join(root, "secret"), 0o600)
    os.chown(os.path.join(root, "owned"), NOBODY, NOBODY)
    os.chmod(os.path.join(root, "dir700"), 0o700)
    os.link(os.path.join(root, "hard-a"), os.path.join(root, "hard-b"))
    for target, rel in (("text/readme.txt", "link-rel"), ("../../one", "sub/deep/link-up"),
                        ("nowhere/at/all", "dangling"), ("sub", "link-dir")):
        os.symlink(target, os.path.join(root, rel))
    fd = os.open(os.path.join(root, "sparse"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"the end of a sparse file", 1 << 20)
        os.ftruncate(fd, 2 << 20)
    finally:
        os.close(fd)
    # Old, distinct times, set last (nothing changes a directory after).
    t = 1_300_000_000
    for i, rel in enumerate(sorted(snapshot(root, hashes=False))):
        path = os.path.join(root, rel)
        if not os.path.islink(path):
            os.utime(path, (t + i, t + i))


def case_cp_tar():
    d = fresh("cp_tar")
    sd = fresh_scratch("cp_tar")
    src = os.path.join(sd, "src")
    os.mkdir(src)
    build_tree(src, random.Random(3))
    want, want_sums = snapshot(src, cross=True), sha256sum_tree(src)

    def same_as_src(root, what):
        same_tree(snapshot(root, cross=True), want, what)
        got = sha256sum_tree(root)
        check(got == want_sums, f"{what}: sha256sum differs for "
              f"{sorted(k for k in set(got) | set(want_sums) if got.get(k) != want_sums.get(k))[:5]}")

    run(["cp", "-a", src, M(d, "cpa")])
    same_as_src(M(d, "cpa"), "cp -a into the mount")
    same_as_src(L(d, "cpa"), "cp -a into the mount, in LOWER")
    run(["cp", "-a", M(d, "cpa"), M(d, "cpa2")])
    same_as_src(M(d, "cpa2"), "cp -a within the mount")
    run(["cp", "-a", M(d, "cpa2"), os.path.join(sd, "back")])
    same_as_src(os.path.join(sd, "back"), "cp -a out of the mount")

    tarball = os.path.join(sd, "src.tar")
    run(["tar", "-C", src, "-cf", tarball, "."])
    os.mkdir(M(d, "tarx"))
    run(["tar", "-C", M(d, "tarx"), "-xf", tarball])
    same_as_src(M(d, "tarx"), "tar x into the mount")
    same_as_src(L(d, "tarx"), "tar x into the mount, in LOWER")
    run(["tar", "-C", M(d, "tarx"), "-cf", M(d, "again.tar"), "."])
    sums = {p: run(["sha256sum", p]).split()[0] for p in (M(d, "again.tar"), L(d, "again.tar"))}
    check(len(set(sums.values())) == 1, f"a tarball made on the mount differs in LOWER: {sums}")
    os.mkdir(os.path.join(sd, "tarback"))
    run(["tar", "-C", os.path.join(sd, "tarback"), "-xf", M(d, "again.tar")])
    same_as_src(os.path.join(sd, "tarback"), "tar c on the mount, tar x elsewhere")


def big_block(first_page, pages):
    mask = (1 << 64) - 1
    return b"".join(struct.pack("<QQ", p, (p * 0x9E3779B97F4A7C15) & mask) * (PAGE // 16)
                    for p in range(first_page, first_page + pages))


def case_big_file():
    d = fresh("big_file")
    path, low = M(d, "big"), L(d, "big")
    size, chunk = 80 << 20, 1 << 20
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    marks = {0: b"first", (40 << 20) + 5: b"middle", size - 5: b"last!"}
    try:
        for off in range(0, size, chunk):
            write_all(fd, big_block(off // PAGE, chunk // PAGE), f"the big file at {off}")
            if (off // chunk) % 16 == 15:
                check(os.fstat(fd).st_size == off + chunk and os.stat(path).st_size == off + chunk,
                      f"the size while writing: {os.fstat(fd).st_size}, expected {off + chunk}")
        check(os.fstat(fd).st_size == size, "the big file's size")
        written = time.monotonic()
        # Read back through the same descriptor: most pages went out (were
        # written back and evicted) by now.
        for off in range(0, size, chunk):
            got = os.pread(fd, chunk, off)
            if got != big_block(off // PAGE, chunk // PAGE):
                same_bytes(got, big_block(off // PAGE, chunk // PAGE), f"the big file read back at {off}")
        for pos, mark in marks.items():
            check(os.pwrite(fd, mark, pos) == len(mark), "a short pwrite")
        for pos, mark in marks.items():
            check(os.pread(fd, len(mark), pos) == mark, f"a patch at {pos} read back")
        os.fsync(fd)
    finally:
        os.close(fd)
    h = hashlib.sha256()
    for off in range(0, size, chunk):
        block = bytearray(big_block(off // PAGE, chunk // PAGE))
        for pos, mark in marks.items():
            if off <= pos < off + chunk:
                block[pos - off:pos - off + len(mark)] = mark
        h.update(block)
    want = h.hexdigest()
    for p, where in ((path, "through the mount"), (low, "in LOWER")):
        got = run(["sha256sum", p]).split()[0]
        check(got == want, f"sha256sum of the big file {where}: {got}, expected {want}")
        check(os.stat(p).st_size == size, f"the big file's size {where}")
    print(f"  80 MiB: written in {written - t0:.1f} s, verified in {time.monotonic() - written:.1f} s")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}
ORDER = ["mount_options", "nonroot_mount", "namespace", "readdir", "attributes", "lifetime",
         "lower_changed", "data", "append", "truncate", "sync_writes", "direct_io", "copy", "mmap",
         "exec", "permissions", "churn", "swap", "umount_busy", "xattrs", "set_times", "cp_tar", "big_file"]
assert sorted(ORDER) == sorted(CASES), "ORDER and the case_ functions disagree"


def usage():
    return "Usage: hotswapfs.py [CASE...] (default: every case but big_file)\ncases: " + " ".join(ORDER)


def main():
    global LOWER, MNT, ALT, SCRATCH, FCM_IMPL, HSWAPCTL
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    unknown = [a for a in args if a not in CASES]
    if unknown:
        print(f"hotswapfs.py: unknown case(s): {' '.join(unknown)}\n{usage()}", file=sys.stderr)
        return 2
    missing = [v for v in ("HOTSWAPFS_LOWER", "HOTSWAPFS_MNT") if not os.environ.get(v)]
    if missing:
        print(f"hotswapfs.py: set {' and '.join(missing)}\n{usage()}", file=sys.stderr)
        return 2
    LOWER = os.path.realpath(os.environ["HOTSWAPFS_LOWER"])
    MNT = os.path.realpath(os.environ["HOTSWAPFS_MNT"])
    ALT = MNT + "-alt"
    SCRATCH = os.path.realpath(os.environ.get("HOTSWAPFS_SCRATCH") or "/tmp/hotswapfs-scratch")
    FCM_IMPL = os.environ.get("HOTSWAPFS_FCM") or None
    HSWAPCTL = os.environ.get("HOTSWAPFS_HSWAPCTL") or os.path.join(REPO, "tools/hswapctl/target/release/hswapctl")
    for path in (LOWER, MNT):
        if not os.path.isdir(path):
            print(f"hotswapfs.py: {path} is no directory", file=sys.stderr)
            return 2
    for inside in (LOWER, MNT):
        if SCRATCH == inside or SCRATCH.startswith(inside + "/"):
            print(f"hotswapfs.py: the scratch directory {SCRATCH} must be outside {inside}", file=sys.stderr)
            return 2
    if not os.path.exists(OBJECTS):
        print(f"hotswapfs.py: no {OBJECTS} (debugfs mounted? hotswap.ko loaded?)", file=sys.stderr)
        return 2
    os.makedirs(SCRATCH, exist_ok=True)
    os.umask(0o022)
    # HOTSWAPFS_SKIP: cases left out of a default run (hotswapfs.sh runs
    # the slow churn once per make test, not per shape).
    skip = os.environ.get("HOTSWAPFS_SKIP", "").split()
    names = args or [n for n in ORDER if n not in ONLY_BY_NAME and n not in skip]
    impl = f" (fcm/{FCM_IMPL})" if FCM_IMPL else ""
    print(f"hotswapfs: {MNT} over {LOWER}{impl}: {' '.join(names)}", flush=True)
    name = "setup"
    try:
        if not is_hotswapfs_mount(MNT):
            mount_hotswapfs()
        wait_no_fcm("before the first case")
        for name in names:
            t0 = time.monotonic()
            check(is_hotswapfs_mount(MNT), f"{MNT} is no hotswapfs mount before the case")
            CASES[name]()
            wait_no_fcm(f"after {name}")
            print(f"hotswapfs: {name}: ok ({time.monotonic() - t0:.1f} s)", flush=True)
    except Exception as e:  # noqa: BLE001 - reported, then a non-zero exit
        traceback.print_exc()
        print(f"hotswapfs: {name}: FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
