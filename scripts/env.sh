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

# The kernel build the modules are built against: written by
# scripts/build-kernel.sh as "KDIR=... SRC=... VERSION=...".
HOTSWAP_KERNEL_ENV="$HOTSWAP_CACHE/current-kernel.env"

die() { echo "hotswap: error: $*" >&2; exit 1; }
step() { printf '==> %s\n' "$*"; }

# Loads KDIR, SRC and VERSION of the cached kernel build.
load_kernel_env() {
	[ -f "$HOTSWAP_KERNEL_ENV" ] || die "no kernel built yet: run 'make setup'"
	# shellcheck disable=SC1090
	. "$HOTSWAP_KERNEL_ENV"
	[ -f "$KDIR/arch/x86/boot/bzImage" ] || die "kernel build in $KDIR is incomplete: run 'make setup'"
	export KDIR SRC VERSION
}
