#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The cached-file device over real files: reads, writes, seeks, fsync,
# write-back on close, one FCM per inode, and bad input.
set -eu
. "$(dirname "$0")/lib.sh"

load hotswap hotswap_fcm fcm_shared fcm_distributed
/usr/bin/python3 tests/vm/cached_file.py

# An FCM module in use cannot be unloaded; the file stays readable.
printf 'pinned' >/tmp/hotswap-pinned
exec 3<>/dev/hotswap-file
/usr/bin/python3 - <<'PY'
import fcntl, os, struct
fd = os.open("/tmp/hotswap-pinned", os.O_RDWR)
fcntl.ioctl(3, (1 << 30) | (4 << 16) | (0xB7 << 8) | 0x20, struct.pack("I", fd))
PY
expect_fail "rmmod fcm_shared while an FCM uses it" rmmod fcm_shared
module_loaded fcm_shared || fail "fcm_shared went away while in use"
[ "$(head -c 6 <&3)" = pinned ] || fail "the cached file is not readable after the refused unload"
exec 3>&-
rmmod fcm_shared || fail "fcm_shared still pinned after its FCM went"
# With no FCM module left, an open /dev/hotswap-file (attached to nothing)
# still pins hotswap_fcm.
rmmod fcm_distributed || fail "rmmod fcm_distributed"
exec 4</dev/hotswap-file
expect_fail "rmmod hotswap_fcm while /dev/hotswap-file is open" rmmod hotswap_fcm
module_loaded hotswap_fcm || fail "hotswap_fcm went away while its device is open"
exec 4<&-
# Every FCM is gone once its last opener closed.
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "an FCM outlived its files"
echo "cached-file device: ok"
