#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The cross-module ABI as the module loader sees it: the fcm modules depend
# on hotswap, cannot load without it, register on load, keep hotswap pinned,
# and unregister on unload.
set -eu
. "$(dirname "$0")/lib.sh"

for m in fcm_shared fcm_distributed; do
	[ "$(modinfo -F depends "$(module_path $m)")" = hotswap ] ||
		fail "modinfo $m does not list hotswap as a dependency"
	expect_fail "insmod $m without hotswap" insmod "$(module_path $m)"
	! module_loaded $m || fail "$m is loaded although its insmod failed"
done

load hotswap fcm_shared fcm_distributed
dmesg | grep -q "hotswap: registered implementation fcm/shared$" ||
	fail "fcm_shared did not register"
dmesg | grep -q 'hotswap: registered implementation fcm/distributed$' ||
	fail "fcm_distributed did not register"
expect_fail "rmmod hotswap while fcm modules use it" rmmod hotswap
module_loaded hotswap || fail "hotswap went away while in use"

# Unload and load again: registration must be undone completely.
rmmod fcm_shared fcm_distributed
load fcm_shared fcm_distributed
rmmod fcm_shared fcm_distributed hotswap
echo "module dependencies, registration and pinning: ok"
