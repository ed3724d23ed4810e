#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boots the cached kernel in a virtme-ng VM with the host filesystem shared
# read-only (the repository included) and one writable results directory.
#
#   scripts/vm.sh test OUT [GLOB]  run tests/kunit/guest-run.sh in the VM
#                            (in-VM tests tests/vm/GLOB.sh; "none" for none)
#   scripts/vm.sh shell      an interactive shell, modules and tool at hand
#   scripts/vm.sh exec CMD   run CMD in the VM
#   scripts/vm.sh accel      print how VMs run here: kvm or tcg
#
# Environment: HOTSWAP_VM_CPUS (2), HOTSWAP_VM_MEMORY (1G),
# HOTSWAP_VM_TIMEOUT seconds (900; 0 = none, shell only), HOTSWAP_VM_APPEND
# (extra kernel command line, e.g. kunit.filter_glob=SUITE), HOTSWAP_KVM
# (1/0 to skip the probe), HOTSWAP_VM_RWDIR (exec: a directory the guest
# may write, e.g. benchmark results), HOTSWAP_VNG (the vng command, for the
# runner's own tests), HOTSWAP_KERNEL_VARIANT (e.g. debug: that kernel and
# its modules, see scripts/env.sh); HOTSWAP_LIFECYCLE_LOOPS,
# HOTSWAP_STORM_SWAPS, HOTSWAP_STORM_SEED, HOTSWAP_FUZZ_REQUESTS, HOTSWAP_MEMORY_HOG_MIBS,
# HOTSWAP_FS_FULL (1: hotswapfs's tests in every shape), HOTSWAP_MMAP_SECONDS and
# HOTSWAP_VM_TEST_TIMEOUT (numbers) reach the guest's tests. Exit status:
# the command's, or 124 if the VM timed out.
set -euo pipefail
. "$(dirname "$0")/env.sh"

VNG=${HOTSWAP_VNG:-vng}
CPUS=${HOTSWAP_VM_CPUS:-2}
MEMORY=${HOTSWAP_VM_MEMORY:-1G}
TIMEOUT=${HOTSWAP_VM_TIMEOUT:-900}

# Nested KVM is broken on these machines (the guest dies with "KVM internal
# error" and hangs), so KVM is used only when a bounded probe boot proves
# it works. The verdict is cached per kernel build.
kvm_flag() {
	local verdict="$KDIR/.kvm-probe"
	if [ -n "${HOTSWAP_KVM:-}" ]; then
		[ "$HOTSWAP_KVM" = 1 ] && return
		echo --disable-kvm
		return
	fi
	if [ ! -f "$verdict" ]; then
		if [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
			timeout -k 5 45 "$VNG" -r "$BZIMAGE" --cpus 1 --memory 256M \
				--exec true </dev/null >/dev/null 2>&1; then
			echo 1 >"$verdict"
		else
			echo 0 >"$verdict"
		fi
	fi
	[ "$(cat "$verdict")" = 1 ] || echo --disable-kvm
}

run_vng() {
	local limit=$1
	shift
	# A big log buffer: swaps log one line per phase change, and a test
	# swapping thousands of objects must not push a WARN out of dmesg.
	local args=(-r "$BZIMAGE" --cpus "$CPUS" --memory "$MEMORY" --append log_buf_len=16M)
	read -r -a accel <<<"$(kvm_flag)"
	args+=("${accel[@]}")
	[ -n "${HOTSWAP_VM_APPEND:-}" ] && args+=(--append "$HOTSWAP_VM_APPEND")
	if [ "$limit" = 0 ]; then
		"$VNG" "${args[@]}" "$@"
	else
		# Not --foreground: vng forks qemu, and only a plain timeout signals
		# the whole process group. stdin is /dev/null so that qemu, now
		# outside the terminal's foreground group, never touches the tty.
		timeout -k 10 "$limit" "$VNG" "${args[@]}" "$@" </dev/null
	fi
}

if [ -z "${HOTSWAP_VNG:-}" ]; then
	load_kernel_env
	BZIMAGE="$KDIR/arch/x86/boot/bzImage"
else
	KDIR=${KDIR:-$(mktemp -d)}
	BZIMAGE=/dev/null
fi
cd "$HOTSWAP_ROOT"

case "${1:-}" in
test)
	out=${2:?usage: vm.sh test OUT [GLOB]}
	mkdir -p "$out"
	# Numeric test knobs set on the host reach the guest's tests.
	guest_env=
	for v in HOTSWAP_LIFECYCLE_LOOPS HOTSWAP_STORM_SWAPS HOTSWAP_STORM_SEED HOTSWAP_FUZZ_REQUESTS HOTSWAP_VM_TEST_TIMEOUT HOTSWAP_RACE_ROUNDS HOTSWAP_RACE_SEED HOTSWAP_MEMORY_HOG_MIBS HOTSWAP_FS_FULL HOTSWAP_MMAP_SECONDS; do
		[[ ${!v:-} =~ ^[0-9]+$ ]] && guest_env+="$v=${!v} "
	done
	# The console goes to a file: qemu reopens its stdout and would
	# truncate a log that the caller redirected it into.
	# The guest sees no host environment: hand it where the modules are
	# (the variant's own build tree) besides the numeric knobs.
	guest_env+="HOTSWAP_MODULE_DIR=$(printf %q "$HOTSWAP_MODULE_DIR")"
	run_vng "$TIMEOUT" --rwdir "$out" --exec "$guest_env tests/kunit/guest-run.sh $out '${3:-*}'" \
		>"$out/console.log" 2>&1
	;;
shell)
	echo "hotswap VM: modules under rust/hotswap/ and fcm/*/, tool at tools/hswapctl/target/release/hswapctl"
	[ "$HOTSWAP_MODULE_DIR" = "$HOTSWAP_ROOT" ] ||
		echo "  $HOTSWAP_KERNEL_VARIANT kernel: its modules are under $HOTSWAP_MODULE_DIR"
	echo "  load: tests/vm/lib.sh's order is insmod rust/hotswap/hotswap.ko, fcm/lib/hotswap_fcm.ko, then fcm/*/*.ko"
	run_vng 0
	;;
exec)
	shift
	rw=()
	[ -n "${HOTSWAP_VM_RWDIR:-}" ] && rw=(--rwdir "$HOTSWAP_VM_RWDIR")
	run_vng "$TIMEOUT" "${rw[@]}" --exec "$*"
	;;
accel)
	if [ -n "$(kvm_flag)" ]; then echo tcg; else echo kvm; fi
	;;
*)
	echo "usage: $0 test OUT | shell | exec CMD | accel" >&2
	exit 2
	;;
esac
