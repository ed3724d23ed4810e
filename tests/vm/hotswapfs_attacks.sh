#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# hotswapfs against what a review found (tests/vm/hotswapfs_attacks.py):
# attributes changed behind the mount, lower renames, RWF_APPEND, truncate
# of a running program, trusted.* names, syncfs durability, set-uid kept
# through a write, lower write-back errors reaching every opener. Over ext4 on
# a loop device whose image lives in tmpfs (so the test can see what
# reached the "disk").
set -eu
. "$(dirname "$0")/lib.sh"

load hotswap hotswap_fcm fcm_shared fcm_distributed
base=/tmp/hsfs-attacks
cleanup() {
	cd /
	umount "$base/mnt" 2>/dev/null || true
	ext4_off_loop "$base"
	rm -rf "$base"
}
trap cleanup EXIT
mkdir -p "$base/mnt"
chmod 0755 "$base" "$base/mnt"
ext4_on_loop "$base" 128
mkdir -m 0755 "$base/ext4/lower"
mount -t hotswapfs -o lowerdir="$base/ext4/lower" none "$base/mnt"
HSFS_LOWER=$base/ext4/lower HSFS_MNT=$base/mnt HSFS_IMAGE=$base/img/ext4.img \
	/usr/bin/python3 tests/vm/hotswapfs_attacks.py "$@"
umount "$base/mnt"
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "an FCM outlived the unmount"
echo "hotswapfs attacks: ok"
