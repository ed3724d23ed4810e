#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Mappings of a hotswapfs file under fire (tests/vm/hotswapfs_mmap.py):
# MAP_SHARED and MAP_PRIVATE readers of the FCM's own pages, forked
# children on inherited mappings, while a writer rewrites every page, the
# FCM evicts all the time (capacity 16 pages), POSIX_FADV_DONTNEED and
# drop_caches drop its pages, a truncater cuts and regrows the tail and
# the FCM is swapped. No read may see a page older than the last finished
# generation. HOTSWAP_MMAP_SECONDS long (make test: 20; make stress: 300).
# vm-timeout: 900
set -eu
. "$(dirname "$0")/lib.sh"

work=/tmp/hsfs-mmap
cleanup() {
	umount "$work/mnt" 2>/dev/null || true
	ext4_off_loop "$work"
	rm -rf "$work"
}
trap cleanup EXIT

tool=$HOTSWAP_ROOT/tools/hswapctl/target/release/hswapctl
[ -x "$tool" ] || fail "build the tool first (make tool)"
load hotswap
reload hotswap_fcm capacity=16
load fcm_shared fcm_distributed
ext4_on_loop "$work" 64
mkdir -p "$work/mnt" "$work/ext4/lower"
mount -t hotswapfs -o lowerdir="$work/ext4/lower" none "$work/mnt"
HSFS_MNT=$work/mnt HSFS_LOWER=$work/ext4/lower HSFS_HSWAPCTL=$tool \
	/usr/bin/python3 "$HOTSWAP_ROOT/tests/vm/hotswapfs_mmap.py" "${HOTSWAP_MMAP_SECONDS:-20}"
umount "$work/mnt"
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "an FCM outlived the unmount"
echo "hotswapfs mmap: ok"
