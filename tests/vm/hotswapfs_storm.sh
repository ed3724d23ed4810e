#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The swap storm (tests/vm/swap_storm.py) through a hotswapfs mount over
# ext4: writers, readers, growers (appends, holes, ftruncate) and a syncer
# on the mount's files while the FCMs are swapped, monitored and put under
# the policy, with capacity 16 pages (eviction all the time), faulting
# user buffers, O_DSYNC writers, a memory hog and cache drops (which also
# evict unused upper inodes). The files on the mount and the lower files
# after a sync must match the writers' models byte for byte. A fifth of
# HOTSWAP_STORM_SWAPS swaps (make test: 200; make stress: 2,000).
# vm-timeout: 600
set -eu
. "$(dirname "$0")/lib.sh"

work=/tmp/hsfs-storm
cleanup() {
	umount "$work/mnt" 2>/dev/null || true
	ext4_off_loop "$work"
	rm -rf "$work"
}
trap cleanup EXIT

# Half a file per FCM, as in swap_storm.sh; no FCM module loaded yet.
load hotswap
reload hotswap_fcm capacity=16
load fcm_shared fcm_distributed fcm_monitor
ext4_on_loop "$work" 128
mkdir -p "$work/mnt"
mkdir -p "$work/ext4/lower/storm"
mount -t hotswapfs -o lowerdir="$work/ext4/lower" none "$work/mnt"
HOTSWAP_STORM_MOUNT=$work/mnt HOTSWAP_STORM_LOWER=$work/ext4/lower \
	/usr/bin/python3 "$HOTSWAP_ROOT/tests/vm/swap_storm.py" $(( ${HOTSWAP_STORM_SWAPS:-1000} / 5 )) \
	${HOTSWAP_STORM_SEED:+"$HOTSWAP_STORM_SEED"}
umount "$work/mnt"
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "an FCM outlived the unmount"
echo "hotswapfs storm: ok"
