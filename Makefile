# SPDX-License-Identifier: GPL-2.0
# hotswap — the human entry points. Kbuild (beside this file) is what the
# kernel's build reads for the modules; this Makefile drives the scripts.
#
#   make setup     install the toolchain and build the kernel (idempotent)
#   make test      setup + modules + tool + host checks + KUnit/in-VM tests
#   make test-debug  the debug kernel (configs/debug.config: lockdep,
#                  PROVE_RCU, KCSAN, kmemleak, ...) and its own module build
#                  (build/modules-debug), then the KUnit suites and the
#                  *swap_* in-VM tests on it; fails on any lockdep, RCU,
#                  KCSAN, UBSAN, kmemleak, WARN or BUG report
#   make modules   every .ko, out of tree, against the cached kernel
#   make tool      tools/hswapctl (release build)
#   make vm        an interactive VM with the modules and the tool
#   make demo      the FCM demo: live shared -> distributed -> shared swaps
#   make bench     benchmarks in a VM: JSON + PNG plots in bench/results
#   make stress    long reliability runs: 10,000-swap storm, 100,000-request
#                  ioctl fuzzing, 200 module load/unload rounds, faults
#   make kernel    (re)build just the kernel
#   make clean     remove module and tool build products

SHELL := /bin/bash
CARGO_TOOL := cargo build --release --manifest-path tools/hswapctl/Cargo.toml

.PHONY: all setup kernel modules tool test test-debug vm demo bench stress clean

all: modules tool

setup:
	@scripts/setup.sh

kernel:
	@scripts/build-kernel.sh

modules:
	@scripts/build-modules.sh

tool:
	@$(CARGO_TOOL) -q

# Sequential on purpose: each step needs the one before it.
test:
	@scripts/setup.sh
	@scripts/build-modules.sh
	@$(CARGO_TOOL) -q
	@scripts/test.sh

# The same steps against the debug kernel; the default build is untouched.
test-debug:
	@scripts/setup.sh
	@HOTSWAP_KERNEL_VARIANT=debug scripts/build-kernel.sh
	@HOTSWAP_KERNEL_VARIANT=debug scripts/build-modules.sh
	@$(CARGO_TOOL) -q
	@scripts/test-debug.sh

vm: modules tool
	@scripts/vm.sh shell

demo:
	@scripts/setup.sh >/dev/null
	@scripts/build-modules.sh >/dev/null
	@$(CARGO_TOOL) -q
	@scripts/demo.sh

stress:
	@scripts/setup.sh >/dev/null
	@scripts/build-modules.sh >/dev/null
	@$(CARGO_TOOL) -q
	@scripts/stress.sh

bench:
	@scripts/setup.sh >/dev/null
	@scripts/build-modules.sh >/dev/null
	@$(CARGO_TOOL) -q
	@scripts/bench.sh

clean:
	@if [ -f "$${HOTSWAP_CACHE:-$$HOME/.cache/hotswap}/current-kernel.env" ]; then \
		. scripts/env.sh && load_kernel_env && \
		$(MAKE) -s -C "$$KDIR" M="$(CURDIR)" clean; fi
	@cargo clean -q --manifest-path tools/hswapctl/Cargo.toml
	@cargo clean -q --manifest-path bench/searcher/Cargo.toml
	@rm -rf build
