#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make demo: boots the VM with the modules and the tool and runs
# tests/demo/guest-demo.sh (K42's FCM story; see tests/demo/demo.py).
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$HOTSWAP_ROOT"
HOTSWAP_VM_MEMORY=${HOTSWAP_VM_MEMORY:-1G} HOTSWAP_VM_TIMEOUT=${HOTSWAP_VM_TIMEOUT:-600} \
	exec scripts/vm.sh exec tests/demo/guest-demo.sh
