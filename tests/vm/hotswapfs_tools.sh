#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Unmodified programs (Debian's, installed by scripts/setup.sh) through a
# hotswapfs mount on ext4: PostMark reports the same transactions as on
# the lower filesystem with the same seed; fio's crc32c verify passes
# while every FCM is swapped each second and the monitor comes and goes;
# rg counts the same with and without mmap; git init/add/commit/fsck/gc
# and a clone of the result; tar and cp -a round trips. (fio runs its
# jobs as threads: the test kernel has no System V shared memory.)
# vm-timeout: 1200
set -eu
. "$(dirname "$0")/lib.sh"

load hotswap hotswap_fcm fcm_shared fcm_distributed fcm_monitor
tool=$HOTSWAP_ROOT/tools/hswapctl/target/release/hswapctl
work=/tmp/hsfs-tools
# make test's sizes; make stress (HOTSWAP_FS_FULL=1) runs the full ones.
pm_files=100 pm_transactions=300 fio_size=4m
if [ "${HOTSWAP_FS_FULL:-0}" = 1 ]; then
	pm_files=500 pm_transactions=5000 fio_size=48m
fi
img=$work/ext4.img
lower=$work/lower
mnt=$work/mnt
swapper=

cleanup() {
	[ -z "$swapper" ] || kill "$swapper" 2>/dev/null || true
	wait 2>/dev/null || true
	cd /
	umount "$mnt" 2>/dev/null || true
	umount "$lower" 2>/dev/null || true
	[ -z "${loopdev:-}" ] || losetup -d "$loopdev" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

for prog in postmark fio rg git tar; do
	command -v "$prog" >/dev/null || fail "$prog is not installed (scripts/setup.sh installs it)"
done
mkdir -p "$lower" "$mnt"
truncate -s 512M "$img"
mkfs.ext4 -q -F "$img"
# `mount -o loop` fails in the VM ("already mounted"); losetup first works.
loopdev=$(losetup -f --show "$img")
mount -t ext4 "$loopdev" "$lower"
mount -t hotswapfs -o lowerdir="$lower" none "$mnt"

# PostMark, K42's benchmark: the same seed on the mount and on the lower
# filesystem makes the same transactions (its report's counts; it deletes
# its files at the end, so the tree is empty on both).
postmark_counts() {
	mkdir -p "$1"
	postmark <<PM | sed -n '/^Files:/,$p' | sed -E 's/ \([^)]*per second\)//' | grep -v '^pm>'
set location $1
set number $pm_files
set transactions $pm_transactions
set subdirectories 5
set seed 42
set size 500 20000
run
quit
PM
}
echo "== postmark" "(at ${SECONDS}s)"
on_mount=$(postmark_counts "$mnt/pm")
on_lower=$(postmark_counts "$lower/pm-lower")
[ -n "$on_mount" ] || fail "postmark printed no report"
[ "$on_mount" = "$on_lower" ] || fail "postmark's transactions differ on the mount:
$on_mount
--- on the lower filesystem:
$on_lower"
[ -z "$(ls -A "$mnt/pm")" ] || fail "postmark left files on the mount"
echo "$on_mount" | head -3

# fio: psync randrw with crc32c verify, while a swapper swaps every FCM
# each second and puts the monitor in front of them and takes it away.
echo "== fio under swaps" "(at ${SECONDS}s)"
(
	i=0
	while :; do
		case $((i % 4)) in
		0) "$tool" swap fcm distributed >/dev/null ;;
		1) "$tool" interpose fcm monitor >/dev/null ;;
		2) "$tool" swap fcm shared >/dev/null ;;
		3) "$tool" uninterpose fcm monitor >/dev/null ;;
		esac || echo "swapper: step $i failed" >&2
		i=$((i + 1))
		sleep 1
	done
) &
swapper=$!
fio --name=hsfs --thread --directory="$mnt" --ioengine=psync --rw=randrw --bs=4k \
	--size=$fio_size --numjobs=2 --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--runtime=30 --time_based=0 --output="$work/fio.out" ||
	{ cat "$work/fio.out"; fail "fio failed"; }
kill "$swapper"
wait "$swapper" 2>/dev/null || true
swapper=
grep -q 'err= 0' "$work/fio.out" || { cat "$work/fio.out"; fail "fio reported errors"; }
grep -Eq 'verify|READ' "$work/fio.out" || fail "fio did not read back"
echo "fio: verified"
"$tool" swap fcm shared >/dev/null
"$tool" uninterpose fcm monitor >/dev/null 2>&1 || true

# rg: a tree of this repository's sources, counted on the lower
# filesystem, then on the mount with read(2) and with mmap (read-only
# shared mappings of the FCMs' pages).
echo "== rg" "(at ${SECONDS}s)"
mkdir -p "$mnt/src"
cp -r "$HOTSWAP_ROOT/fcm" "$mnt/src/"
[ "${HOTSWAP_FS_FULL:-0}" = 1 ] && cp -r "$HOTSWAP_ROOT/rust" "$HOTSWAP_ROOT/tests" "$mnt/src/"
want=$(cd "$lower/src" && rg --no-mmap -c -g '*.rs' -g '*.c' SAFETY | sort)
[ -n "$want" ] || fail "rg found nothing on the lower filesystem"
got=$(cd "$mnt/src" && rg --no-mmap -c -g '*.rs' -g '*.c' SAFETY | sort)
[ "$got" = "$want" ] || fail "rg --no-mmap counts differ on the mount"
got=$(cd "$mnt/src" && rg --mmap -c -g '*.rs' -g '*.c' SAFETY | sort)
[ "$got" = "$want" ] || fail "rg --mmap counts differ on the mount"
echo "rg: $(echo "$want" | wc -l) files agree"

# git: a repository on the mount (git maps its packs and index privately).
echo "== git" "(at ${SECONDS}s)"
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
git init -q "$mnt/repo"
cp -r "$mnt/src/fcm" "$mnt/repo/"
git -C "$mnt/repo" add -A
git -C "$mnt/repo" commit -qm first
echo change >>"$mnt/repo/fcm/lib/Kbuild"
git -C "$mnt/repo" commit -qam second
git -C "$mnt/repo" gc -q
git -C "$mnt/repo" fsck --full --strict 2>&1 | grep -v '^Checking' && fail "git fsck complained" || true
[ "$(git -C "$mnt/repo" rev-list --count HEAD)" = 2 ] || fail "git lost a commit"
git clone -q "$mnt/repo" "$work/clone"
diff -r -x .git "$mnt/repo" "$work/clone" || fail "a clone of the repository differs"
git -C "$mnt/repo" status --porcelain | grep . && fail "git status not clean" || true
echo "git: ok"

# tar and cp -a round trips, checked by sha256sum.
echo "== tar, cp -a" "(at ${SECONDS}s)"
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
tar -C "$mnt/src" -cf "$work/src.tar" .
mkdir "$mnt/untar"
tar -C "$mnt/untar" -xf "$work/src.tar"
[ "$(sums "$mnt/untar")" = "$(sums "$mnt/src")" ] || fail "tar round trip differs"
cp -a "$mnt/src" "$mnt/copy"
[ "$(sums "$mnt/copy")" = "$(sums "$mnt/src")" ] || fail "cp -a copy differs"
[ "$(sums "$lower/copy")" = "$(sums "$mnt/src")" ] || fail "the lower filesystem's copy differs"
echo "tar, cp -a: ok"

umount "$mnt" || fail "umount with nothing open"
mount -t hotswapfs -o lowerdir="$lower" none "$mnt"
[ "$(sums "$mnt/copy")" = "$(sums "$lower/src")" ] || fail "remounted tree differs"
umount "$mnt"
grep -q 'interface=fcm' /sys/kernel/debug/hotswap/objects && fail "an FCM outlived the unmount"
echo "hotswapfs tools: ok (${SECONDS}s)"
