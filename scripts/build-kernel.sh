#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Fetches the newest linux-source-7.3 from Debian (trixie-backports, through
# a private apt list so the system's sources are untouched) and builds it
# out of tree with allnoconfig + configs/*.config into
#   $HOTSWAP_CACHE/build/<kernel version>-<config hash>
# The hash covers the fragments and the compilers, so editing a fragment or
# upgrading rustc gives a fresh build while an unchanged tree is reused.
#
# Environment:
#   HOTSWAP_CONFIGS   fragments to merge, in order (default: "hotswap",
#                     or "hotswap $HOTSWAP_KERNEL_VARIANT" when that is set);
#                     "hotswap debug" builds the debug variant beside it.
#   HOTSWAP_REFRESH=1 ask Debian for a newer 7.3.y even if one is cached.
set -euo pipefail
. "$(dirname "$0")/env.sh"

CONFIGS=${HOTSWAP_CONFIGS:-hotswap${HOTSWAP_KERNEL_VARIANT:+ $HOTSWAP_KERNEL_VARIANT}}
APT_DIR="$HOTSWAP_CACHE/apt"
SRC_ROOT="$HOTSWAP_CACHE/src"
mkdir -p "$APT_DIR/lists/partial" "$SRC_ROOT" "$HOTSWAP_CACHE/build"

newest_cached_deb() {
	{ ls "$APT_DIR"/linux-source-7.3_*.deb 2>/dev/null || true; } | sort -V | tail -1
}

fetch_source_deb() {
	echo "deb http://deb.debian.org/debian trixie-backports main" >"$APT_DIR/sources.list"
	local opts=(-o "Dir::Etc::SourceList=$APT_DIR/sources.list"
		-o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::State::Lists=$APT_DIR/lists"
		-o "APT::Sandbox::User=root")
	step "kernel source: asking Debian trixie-backports for the newest linux-source-7.3"
	apt-get "${opts[@]}" update -qq
	(cd "$APT_DIR" && apt-get "${opts[@]}" download -qq linux-source-7.3)
}

deb=$(newest_cached_deb)
if [ -z "$deb" ] || [ "${HOTSWAP_REFRESH:-0}" = 1 ]; then
	fetch_source_deb
	deb=$(newest_cached_deb)
fi
[ -n "$deb" ] || die "could not download linux-source-7.3"
debver=$(basename "$deb" .deb | cut -d_ -f2)

SRC="$SRC_ROOT/linux-source-$debver"
if [ ! -f "$SRC/Makefile" ]; then
	step "kernel source: unpacking $(basename "$deb")"
	tmp=$(mktemp -d "$SRC_ROOT/unpack.XXXXXX")
	dpkg -x "$deb" "$tmp/deb"
	tar -C "$tmp" -xf "$tmp"/deb/usr/src/linux-source-7.3.tar.xz
	rm -rf "$SRC"
	mv "$tmp/linux-source-7.3" "$SRC"
	rm -rf "$tmp"
fi
VERSION=$(make -s -C "$SRC" kernelversion)

fragments=()
for c in $CONFIGS; do
	f="$HOTSWAP_ROOT/configs/$c.config"
	[ -f "$f" ] || die "no config fragment $f"
	fragments+=("$f")
done
hash=$( { cat "${fragments[@]}"; gcc --version | head -1; rustc --version; bindgen --version; } |
	sha256sum | cut -c1-12)
suffix=$(echo "$CONFIGS" | tr ' ' '+')
KDIR="$HOTSWAP_CACHE/build/$VERSION-$suffix-$hash"

if [ -f "$KDIR/.hotswap-built" ]; then
	step "kernel: $VERSION ($suffix) already built in $KDIR"
else
	step "kernel: configuring $VERSION with allnoconfig + $CONFIGS"
	mkdir -p "$KDIR"
	make -s -C "$SRC" O="$KDIR" rustavailable
	(cd "$SRC" && ./scripts/kconfig/merge_config.sh -n -O "$KDIR" "${fragments[@]}" >"$KDIR/merge.log")
	make -s -C "$SRC" O="$KDIR" olddefconfig
	# merge_config only warns when Kconfig drops a requested value; fail
	# loudly instead, since a silently missing CONFIG_RUST costs a build.
	for f in "${fragments[@]}"; do
		grep -E '^CONFIG_[A-Z0-9_]+=' "$f" | while IFS= read -r want; do
			grep -qx "$want" "$KDIR/.config" || die "Kconfig did not take '$want' (see $KDIR/merge.log)"
		done
	done
	step "kernel: building $VERSION ($suffix) on $(nproc) cores (about 8 minutes; with debug about 25)"
	start=$(date +%s)
	make -s -C "$SRC" O="$KDIR" -j"$(nproc)" >"$KDIR/build.log" 2>&1 ||
		{ tail -40 "$KDIR/build.log"; die "kernel build failed (log: $KDIR/build.log)"; }
	touch "$KDIR/.hotswap-built"
	step "kernel: built in $(($(date +%s) - start)) s"
fi

# Only the default variant becomes the one that 'make modules' uses; other
# variants are written beside it for their own targets.
env_file="$HOTSWAP_CACHE/kernel-$suffix.env"
printf 'KDIR=%q\nSRC=%q\nVERSION=%q\nDEBVER=%q\n' "$KDIR" "$SRC" "$VERSION" "$debver" >"$env_file"
[ "$suffix" = hotswap ] && cp "$env_file" "$HOTSWAP_KERNEL_ENV"
exit 0
