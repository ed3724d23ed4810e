# SPDX-License-Identifier: GPL-2.0
# Shared paths and tool locations for every hotswap script. Source it:
#   . "$(dirname "$0")/env.sh"
# Everything the project installs lives under $HOTSWAP_CACHE (outside the
# repository), so a clean clone reuses a kernel built by an earlier run.

HOTSWAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOTSWAP_CACHE=${HOTSWAP_CACHE:-$HOME/.cache/hotswap}
HOTSWAP_LIBCLANG_VERSION=18.1.1
export HOTSWAP_ROOT HOTSWAP_CACHE

# bindgen-cli is installed by cargo; virtme-ng lives in a private venv.
export PATH="$HOME/.cargo/bin:$HOTSWAP_CACHE/venv/bin:$PATH"
export LIBCLANG_PATH="$HOTSWAP_CACHE/libclang/libclang-$HOTSWAP_LIBCLANG_VERSION.data/platlib/clang/native"

die() { echo "hotswap: error: $*" >&2; exit 1; }
step() { printf '==> %s\n' "$*"; }

# The kernel build the modules are built against: written by
# scripts/build-kernel.sh as "KDIR=... SRC=... VERSION=...".
# HOTSWAP_KERNEL_VARIANT=NAME (e.g. debug) selects the kernel built with
# configs/hotswap.config + configs/NAME.config instead, and gives its
# modules their own build tree, build/modules-NAME (a copy of the module
# sources), so the default .ko files in the repository are never replaced
# by ones the default kernel cannot load. HOTSWAP_MODULE_DIR is the root
# the paths in tests/modules are relative to.
HOTSWAP_KERNEL_VARIANT=${HOTSWAP_KERNEL_VARIANT:-}
if [ -z "$HOTSWAP_KERNEL_VARIANT" ]; then
	HOTSWAP_KERNEL_ENV="$HOTSWAP_CACHE/current-kernel.env"
	HOTSWAP_MODULE_DIR=$HOTSWAP_ROOT
	hotswap_build_hint="run 'make setup'"
else
	[[ $HOTSWAP_KERNEL_VARIANT =~ ^[a-z0-9_]+$ ]] && [ -f "$HOTSWAP_ROOT/configs/$HOTSWAP_KERNEL_VARIANT.config" ] ||
		die "HOTSWAP_KERNEL_VARIANT=$HOTSWAP_KERNEL_VARIANT: no configs/$HOTSWAP_KERNEL_VARIANT.config"
	HOTSWAP_KERNEL_ENV="$HOTSWAP_CACHE/kernel-hotswap+$HOTSWAP_KERNEL_VARIANT.env"
	HOTSWAP_MODULE_DIR="$HOTSWAP_ROOT/build/modules-$HOTSWAP_KERNEL_VARIANT"
	hotswap_build_hint="run 'HOTSWAP_KERNEL_VARIANT=$HOTSWAP_KERNEL_VARIANT scripts/build-kernel.sh'"
fi
export HOTSWAP_KERNEL_VARIANT HOTSWAP_MODULE_DIR

# Loads KDIR, SRC and VERSION of the cached kernel build.
load_kernel_env() {
	[ -f "$HOTSWAP_KERNEL_ENV" ] || die "no kernel built yet: $hotswap_build_hint"
	# shellcheck disable=SC1090
	. "$HOTSWAP_KERNEL_ENV"
	[ -f "$KDIR/arch/x86/boot/bzImage" ] || die "kernel build in $KDIR is incomplete: $hotswap_build_hint"
	export KDIR SRC VERSION
}
