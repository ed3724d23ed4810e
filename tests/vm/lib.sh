# SPDX-License-Identifier: GPL-2.0
# Helpers for in-VM integration tests (tests/vm/*.sh). Source it:
#   . "$(dirname "$0")/lib.sh"
# A test is any executable tests/vm/NAME.sh: it runs as root in the test VM
# from the repository root with no module loaded, and passes by exiting 0.
# The runner unloads whatever it left loaded afterwards. A test with the
# line "# vm-phase: loaded" runs instead right after the KUnit phase, with
# every module of tests/modules loaded (`load` skips loaded modules).
# Each test gets 120 s; a line "# vm-timeout: SECONDS" gives it more.

HOTSWAP_ROOT=${HOTSWAP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# Where the .ko files are: the repository, or a kernel variant's own module
# build tree (set by tests/kunit/guest-run.sh).
HOTSWAP_MODULE_DIR=${HOTSWAP_MODULE_DIR:-$HOTSWAP_ROOT}
mapfile -t HOTSWAP_MODULES < <(grep -v '^#' "$HOTSWAP_ROOT/tests/modules")

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# module_path NAME: the .ko of a module by name (hotswap, fcm_shared, ...).
module_path() {
	local m
	for m in "${HOTSWAP_MODULES[@]}"; do
		[ "$(basename "$m" .ko)" = "$1" ] && { echo "$HOTSWAP_MODULE_DIR/$m"; return; }
	done
	fail "unknown module $1"
}

module_loaded() {
	grep -q "^$1 " /proc/modules
}

# load NAME...: insmod each (unless loaded), failing the test if one does
# not load.
load() {
	local m
	for m in "$@"; do
		module_loaded "$m" && continue
		insmod "$(module_path "$m")" || fail "insmod $m"
	done
}

# reload NAME ARGS...: (re)insert a module with parameters.
reload() {
	local m=$1
	shift
	! module_loaded "$m" || rmmod "$m" || fail "rmmod $m"
	insmod "$(module_path "$m")" "$@" || fail "insmod $m $*"
}

# load_all: every module of tests/modules, in order.
load_all() {
	local m
	for m in "${HOTSWAP_MODULES[@]}"; do
		insmod "$HOTSWAP_MODULE_DIR/$m" || fail "insmod $m"
	done
}

# unload_all: rmmod every loaded project module, in reverse order.
# Returns non-zero if one refused to go.
unload_all() {
	local i name rc=0
	for ((i = ${#HOTSWAP_MODULES[@]} - 1; i >= 0; i--)); do
		name=$(basename "${HOTSWAP_MODULES[$i]}" .ko)
		if module_loaded "$name"; then
			rmmod "$name" || { echo "rmmod $name failed" >&2; rc=1; }
		fi
	done
	return $rc
}

# expect_fail DESCRIPTION CMD...: CMD must fail.
expect_fail() {
	local what=$1
	shift
	if "$@" 2>/dev/null; then
		fail "$what: succeeded but should have failed"
	fi
}

# default_fcm IMPL: the implementation new FCMs start on (a swap-all with
# no objects yet only sets the default).
default_fcm() {
	/usr/bin/python3 - "$1" <<'PY' || fail "default fcm $1"
import os, sys
sys.path.insert(0, "tests/pylib")
import hotswap_uapi as uapi
uapi.swap(os.open(uapi.CONTROL, os.O_RDWR), "fcm", sys.argv[1])
PY
}

# ext4_on_loop DIR MIB: an ext4 filesystem of MIB MiB mounted at DIR/ext4,
# on a loop device over an image in a tmpfs at DIR/img (so a test can read
# what reached the "disk"). `mount -o loop` fails in the VM; losetup first
# works. ext4_off_loop DIR undoes it, quietly, whatever got done.
ext4_on_loop() {
	local dir=$1 mib=$2
	mkdir -p "$dir/img" "$dir/ext4"
	mount -t tmpfs -o "size=$((mib + mib / 4))m" none "$dir/img" || fail "mount the image's tmpfs"
	truncate -s "${mib}M" "$dir/img/ext4.img"
	mkfs.ext4 -q -F "$dir/img/ext4.img" || fail "mkfs.ext4 $dir/img/ext4.img"
	local dev
	dev=$(losetup -f --show "$dir/img/ext4.img") || fail "losetup $dir/img/ext4.img"
	mount -t ext4 "$dev" "$dir/ext4" || fail "mount ext4 ($dev)"
}

ext4_off_loop() {
	local dir=$1 dev
	umount "$dir/ext4" 2>/dev/null || true
	if [ -e "$dir/img/ext4.img" ]; then
		for dev in $(losetup -j "$dir/img/ext4.img" | cut -d: -f1); do
			losetup -d "$dev" 2>/dev/null || true
		done
	fi
	umount "$dir/img" 2>/dev/null || true
}
