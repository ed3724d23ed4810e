#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# hotswapfs (fcm/lib/front/hotswapfs*, in hotswap_fcm.ko), a filesystem
# stacked on a lower directory whose regular files' data goes through
# their inodes' FCMs: mount options and privileges, the namespace passed
# through, file data, mmap and exec, permissions, umount with files open,
# a 1,000-file churn, live FCM swaps, xattrs, cp -a and tar
# (tests/vm/hotswapfs.py lists what each case checks). Under both FCMs,
# over a tmpfs and an ext4 lower directory (make test: two of the four
# pairs, HOTSWAP_FS_FULL=1 all); an 80 MiB file, larger than
# an FCM's capacity, once. While mounted hotswap_fcm cannot be unloaded,
# and while a file is open neither can its FCM's implementation; after
# the last umount every module unloads.
# vm-timeout: 600
set -eu
. "$(dirname "$0")/lib.sh"

py=/usr/bin/python3
tool=$HOTSWAP_ROOT/tools/hswapctl/target/release/hswapctl
objects=/sys/kernel/debug/hotswap/objects
base=/tmp/hotswapfs
mnt=$base/mnt
tmpfs_root=$base/tmpfs
ext4_root=$base/ext4
image=$tmpfs_root/ext4.img
scratch=$tmpfs_root/scratch
# The 80 MiB file once (the costliest case under TCG), not per FCM and lower.
big_impl=shared
big_fs=tmpfs

# is_mounted PATH [FSTYPE]: PATH is a mount point (of FSTYPE).
is_mounted() {
	awk -v m="$1" -v t="${2:-}" '$2 == m && (t == "" || $3 == t) { found = 1 }
		END { exit !found }' /proc/self/mounts
}

fcm_lines() {
	grep 'interface=fcm' "$objects" || true
}

# wait_no_fcm WHEN: every FCM goes with its file's last close (an end may
# be deferred a moment).
wait_no_fcm() {
	local i
	for i in $(seq 100); do
		[ -n "$(fcm_lines)" ] || return 0
		sleep 0.1
	done
	fail "FCMs outlived their files $1: $(fcm_lines)"
}

# Unmounts and removes everything under $base; quiet, never fails.
teardown() {
	local m dev
	for m in "$mnt-alt" "$mnt" "$ext4_root"; do
		while is_mounted "$m"; do
			umount "$m" 2>/dev/null || umount -l "$m" || break
		done
	done
	if [ -e "$image" ]; then
		for dev in $(losetup -j "$image" | cut -d: -f1); do
			losetup -d "$dev" || true
		done
	fi
	while is_mounted "$tmpfs_root"; do
		umount "$tmpfs_root" 2>/dev/null || umount -l "$tmpfs_root" || break
	done
	rm -rf --one-file-system "$base" || true
}

cleanup() {
	local rc=$?
	trap - EXIT
	exec 3<&-
	teardown
	exit "$rc"
}

# run_cases IMPL FS LOWER [CASE...]: hotswapfs.py over the mount at $mnt.
run_cases() {
	local impl=$1 fs=$2 lower=$3
	shift 3
	HOTSWAPFS_LOWER=$lower HOTSWAPFS_MNT=$mnt HOTSWAPFS_SCRATCH=$scratch HOTSWAPFS_SKIP=${HOTSWAPFS_SKIP:-} \
		HOTSWAPFS_FCM=$impl HOTSWAPFS_HSWAPCTL=$tool \
		$py "$HOTSWAP_ROOT/tests/vm/hotswapfs.py" "$@" ||
		fail "hotswapfs.py ${*:-(all cases)}: fcm/$impl over $fs"
}

# check_pins IMPL LOWER: hotswap_fcm (which registers hotswapfs) stays
# while mounted; the implementation an open file's FCM runs on stays while
# it is open, and the file stays readable.
check_pins() {
	local impl=$1 lower=$2
	expect_fail "rmmod hotswap_fcm while hotswapfs is mounted" rmmod hotswap_fcm
	module_loaded hotswap_fcm || fail "hotswap_fcm went away while hotswapfs was mounted"
	is_mounted "$mnt" hotswapfs || fail "hotswapfs went away after a refused rmmod"
	printf 'pinned' >"$mnt/pin"
	exec 3<"$mnt/pin"
	grep -q "interface=fcm impl=$impl " "$objects" ||
		fail "no fcm/$impl FCM for a file open on hotswapfs: $(fcm_lines)"
	expect_fail "rmmod fcm_$impl while a file on hotswapfs uses it" rmmod "fcm_$impl"
	module_loaded "fcm_$impl" || fail "fcm_$impl went away while a file on hotswapfs used it"
	[ "$(head -c 6 <&3)" = pinned ] || fail "the open file is not readable after the refused rmmod"
	exec 3<&-
	[ "$(cat "$lower/pin")" = pinned ] || fail "the file written through hotswapfs is not in the lower directory"
	rm "$mnt/pin"
	[ ! -e "$lower/pin" ] || fail "rm through hotswapfs left the lower file"
}

[ -x "$tool" ] || fail "build the tool first (make tool)"
load hotswap hotswap_fcm fcm_shared fcm_distributed
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
grep -qw hotswapfs /proc/filesystems || fail "no hotswapfs in /proc/filesystems with hotswap_fcm loaded"

teardown # what a run cut short left (by hand: the VM starts clean)
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
mkdir -p "$mnt" "$tmpfs_root" "$ext4_root"
chmod 0755 "$base" "$mnt" # user 65534 walks to the mount (permissions)
mount -t tmpfs -o size=768m,mode=0755 hotswapfs-lower "$tmpfs_root" || fail "mount the tmpfs"
mkdir -m 0755 "$scratch"
truncate -s 256M "$image"
mkfs.ext4 -q -F "$image" || fail "mkfs.ext4 $image"
# `mount -o loop` fails in the guest ("Can't open blockdev", "already
# mounted": fcm_semantics.py, hotswapfs_tools.sh); losetup first works.
loop=$(losetup -f --show "$image") || fail "losetup $image"
mount -t ext4 "$loop" "$ext4_root" || fail "mount ext4 ($loop)"
chmod 0755 "$ext4_root"

# make test: shared over tmpfs and distributed over ext4; make stress
# (HOTSWAP_FS_FULL=1): each FCM over each.
shapes="shared:tmpfs distributed:ext4"
[ "${HOTSWAP_FS_FULL:-0}" = 1 ] && shapes="shared:tmpfs shared:ext4 distributed:tmpfs distributed:ext4"
for shape in $shapes; do
	impl=${shape%:*} fs=${shape#*:}
	default_fcm "$impl"
	{
		echo "== hotswapfs: fcm/$impl over $fs"
		case $fs in
		tmpfs) lower=$tmpfs_root/lower-$impl ;;
		ext4) lower=$ext4_root/lower-$impl ;;
		esac
		mkdir -m 0755 "$lower"
		mount -t hotswapfs -o "lowerdir=$lower" none "$mnt" ||
			fail "mount -t hotswapfs -o lowerdir=$lower none $mnt"
		is_mounted "$mnt" hotswapfs || fail "mount exited 0 but no hotswapfs is on $mnt"
		run_cases "$impl" "$fs" "$lower"
		if [ "$impl" = "$big_impl" ] && [ "$fs" = "$big_fs" ]; then
			run_cases "$impl" "$fs" "$lower" big_file
		fi
		check_pins "$impl" "$lower"
		umount "$mnt" || fail "umount $mnt (fcm/$impl over $fs)"
		! is_mounted "$mnt" || fail "$mnt still mounted after umount"
		wait_no_fcm "after the umount (fcm/$impl over $fs)"
		rm -rf --one-file-system "$lower"
	}
done

trap - EXIT
teardown
unload_all || fail "a module did not unload after hotswapfs was unmounted"
echo "hotswapfs: ok"
