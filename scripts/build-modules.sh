#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Builds every .ko of the project out of tree (one M= tree, see Kbuild)
# against the cached kernel, with the same rustc that built the kernel.
set -euo pipefail
. "$(dirname "$0")/env.sh"
load_kernel_env
# Warnings are errors, as in-tree Rust with CONFIG_WERROR.
make -s -C "$KDIR" M="$HOTSWAP_ROOT" -j"$(nproc)" KRUSTFLAGS="-D warnings" KCFLAGS=-Werror modules
find "$HOTSWAP_ROOT" -name '*.ko' -newer "$HOTSWAP_ROOT/Kbuild" -printf '    %P\n' | sort
