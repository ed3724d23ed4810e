#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Installs everything hotswap needs on a fresh Debian 12 machine and builds
# the kernel. Idempotent: each step checks first and skips what is there.
# Sources: Debian (apt), crates.io (bindgen-cli), PyPI (libclang, virtme-ng).
set -euo pipefail
. "$(dirname "$0")/env.sh"
mkdir -p "$HOTSWAP_CACHE"

APT_PACKAGES=(gcc make flex bison bc libelf-dev libssl-dev cpio kmod python3
	qemu-system-x86 udev unzip xz-utils rsync
	# hotswapfs's tests run these unmodified programs on the mount
	postmark fio ripgrep attr e2fsprogs git)

install_apt_packages() {
	local missing=()
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		step "apt packages: all present"
		return
	fi
	step "apt packages: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_rust_src() {
	if rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
		step "rust-src: present"
	else
		step "rust-src: adding"
		rustup component add rust-src
	fi
}

install_bindgen() {
	if command -v bindgen >/dev/null && bindgen --version >/dev/null 2>&1; then
		step "bindgen: present ($(bindgen --version))"
	else
		step "bindgen: cargo install --locked bindgen-cli"
		cargo install --locked bindgen-cli
	fi
}

install_libclang() {
	if [ -f "$LIBCLANG_PATH/libclang.so" ]; then
		step "libclang: present ($HOTSWAP_LIBCLANG_VERSION)"
		return
	fi
	step "libclang: fetching the PyPI wheel $HOTSWAP_LIBCLANG_VERSION"
	local tmp
	tmp=$(mktemp -d)
	python3 -m pip download -q --no-deps --only-binary=:all: \
		-d "$tmp" "libclang==$HOTSWAP_LIBCLANG_VERSION"
	rm -rf "$HOTSWAP_CACHE/libclang"
	unzip -q "$tmp"/libclang-*.whl -d "$HOTSWAP_CACHE/libclang"
	rm -rf "$tmp"
	[ -f "$LIBCLANG_PATH/libclang.so" ] || die "libclang wheel has no libclang.so at $LIBCLANG_PATH"
}

install_virtme_ng() {
	if [ -x "$HOTSWAP_CACHE/venv/bin/vng" ]; then
		step "virtme-ng: present ($("$HOTSWAP_CACHE/venv/bin/vng" --version 2>/dev/null || echo '?'))"
		return
	fi
	step "virtme-ng: pip install into $HOTSWAP_CACHE/venv"
	python3 -m venv "$HOTSWAP_CACHE/venv"
	"$HOTSWAP_CACHE/venv/bin/pip" install -q virtme-ng
}

install_apt_packages
install_rust_src
install_bindgen
install_libclang
install_virtme_ng
"$HOTSWAP_ROOT/scripts/build-kernel.sh"

load_kernel_env
step "toolchain used:"
echo "    kernel   $VERSION ($KDIR)"
echo "    gcc      $(gcc -dumpfullversion)"
echo "    rustc    $(rustc --version | cut -d' ' -f2)"
echo "    bindgen  $(bindgen --version | cut -d' ' -f2)"
echo "    libclang $HOTSWAP_LIBCLANG_VERSION (PyPI wheel)"
echo "    qemu     $(qemu-system-x86_64 --version | head -1 | cut -d' ' -f4)"
echo "    vng      $(vng --version 2>/dev/null | tail -1)"
