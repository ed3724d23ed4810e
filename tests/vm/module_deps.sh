#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The cross-module ABI as the module loader sees it: hotswap_fcm depends on
# hotswap, the FCM modules on hotswap_fcm (and hotswap); none loads without
# what it depends on, they register on load, each keeps what it depends on
# pinned, and they unregister on unload.
set -eu
. "$(dirname "$0")/lib.sh"

fcm_modules="fcm_shared fcm_distributed fcm_monitor"

[ "$(modinfo -F depends "$(module_path hotswap_fcm)")" = hotswap ] ||
	fail "modinfo hotswap_fcm does not list exactly hotswap as its dependency"
for m in fcm_shared fcm_distributed; do
	deps=$(modinfo -F depends "$(module_path $m)")
	case ",$deps," in
	*,hotswap_fcm,*) ;;
	*) fail "modinfo $m does not list hotswap_fcm as a dependency: '$deps'" ;;
	esac
	for d in ${deps//,/ }; do
		case $d in
		hotswap | hotswap_fcm) ;;
		*) fail "modinfo $m lists an unexpected dependency: '$deps'" ;;
		esac
	done
done

# Nothing loaded: neither hotswap_fcm nor an FCM module loads.
for m in hotswap_fcm $fcm_modules; do
	expect_fail "insmod $m without hotswap" insmod "$(module_path $m)"
	! module_loaded $m || fail "$m is loaded although its insmod failed"
done
# hotswap alone: still no FCM module (the fcm interface is hotswap_fcm's).
load hotswap
for m in $fcm_modules; do
	expect_fail "insmod $m without hotswap_fcm" insmod "$(module_path $m)"
	! module_loaded $m || fail "$m is loaded although its insmod failed"
done

load hotswap_fcm fcm_shared fcm_distributed
dmesg | grep -q "hotswap: registered implementation fcm/shared$" ||
	fail "fcm_shared did not register"
dmesg | grep -q 'hotswap: registered implementation fcm/distributed$' ||
	fail "fcm_distributed did not register"
expect_fail "rmmod hotswap_fcm while fcm modules use it" rmmod hotswap_fcm
module_loaded hotswap_fcm || fail "hotswap_fcm went away while in use"
expect_fail "rmmod hotswap while hotswap_fcm and fcm modules use it" rmmod hotswap
module_loaded hotswap || fail "hotswap went away while in use"

# Unload and load again: registration must be undone completely.
rmmod fcm_shared fcm_distributed
expect_fail "rmmod hotswap while hotswap_fcm uses it" rmmod hotswap
module_loaded hotswap || fail "hotswap went away while hotswap_fcm uses it"
load fcm_shared fcm_distributed
rmmod fcm_shared fcm_distributed
# hotswap_fcm too: it unregisters the fcm interface, and loads again.
rmmod hotswap_fcm
load hotswap_fcm fcm_shared
rmmod fcm_shared hotswap_fcm hotswap
echo "module dependencies, registration and pinning: ok"
