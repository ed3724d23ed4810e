#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Builds every .ko of the project out of tree (one M= tree, see Kbuild)
# against the cached kernel, with the same rustc that built the kernel.
#
# With HOTSWAP_KERNEL_VARIANT=NAME (scripts/env.sh) the modules are built
# against that variant's kernel in build/modules-NAME: a copy of the module
# sources kept in step with rsync (ignored build products survive, so
# rebuilds are incremental). Kbuild's MO= cannot be used for this: it
# refuses a source tree that has its own in-tree build (modules.order).
set -euo pipefail
. "$(dirname "$0")/env.sh"
load_kernel_env

tree=$HOTSWAP_ROOT
if [ "$HOTSWAP_MODULE_DIR" != "$HOTSWAP_ROOT" ]; then
	tree=$HOTSWAP_MODULE_DIR
	mkdir -p "$tree"
	# Kbuild and the module sources only: every directory the top Kbuild
	# names. Ignored files (build products) are neither copied nor, on the
	# receiving side, deleted.
	(cd "$HOTSWAP_ROOT" && rsync -a --delete --exclude-from=.gitignore \
		--include=/Kbuild --include='/rust/***' --include='/fcm/***' \
		--include=/tests/ --include='/tests/kunit/***' --include='/tests/faults/***' \
		--include=/bench/ --include='/bench/kernel/***' --exclude='*' ./ "$tree/")
	step "modules: $HOTSWAP_KERNEL_VARIANT kernel, built in ${tree#"$HOTSWAP_ROOT"/}"
fi
# Warnings are errors, as in-tree Rust with CONFIG_WERROR.
make -s -C "$KDIR" M="$tree" -j"$(nproc)" KRUSTFLAGS="-D warnings" KCFLAGS=-Werror modules
find "$tree" -path "$tree/build" -prune -o -name '*.ko' -newer "$tree/Kbuild" -printf '    %P\n' | sort
