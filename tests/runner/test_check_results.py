# SPDX-License-Identifier: GPL-2.0
"""Self-tests of the test runner: scripts/check-results.py must fail a run
with a failing KUnit case, a missing or crashed suite, a kernel WARN, a
debug kernel's lockdep/RCU/KCSAN/UBSAN/SLUB/debugobjects report, a
kmemleak leak, a hung VM, or a failed in-VM test, and pass the recorded
good run.

samples/pass/ is a real run recorded from the test VM (KTAP from debugfs,
dmesg, in-VM test status); each bad case is that run with one defect.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHECK = os.path.join(ROOT, "scripts", "check-results.py")
SAMPLE = os.path.join(HERE, "samples", "pass")


def find_kunit_py():
    env = os.path.join(
        os.environ.get("HOTSWAP_CACHE", os.path.expanduser("~/.cache/hotswap")),
        "current-kernel.env",
    )
    with open(env) as f:
        for line in f:
            if line.startswith("SRC="):
                return os.path.join(line[4:].strip(), "tools/testing/kunit/kunit.py")
    raise RuntimeError("no kernel source: run make setup")


KUNIT_PY = find_kunit_py()
SUITES = sorted(f[:-5] for f in os.listdir(os.path.join(SAMPLE, "ktap")))
VM_TESTS = sorted(f[:-3] for f in os.listdir(os.path.join(SAMPLE, "integration")) if f.endswith(".rc"))


# /sys/kernel/debug/kmemleak after a scan found two leaks (the format of
# mm/kmemleak.c's __print_unreferenced in 7.3).
KMEMLEAK_REPORT = """\
unreferenced object 0xffff888104a3c600 (size 192):
  comm "insmod", pid 131, jiffies 4294940000
  hex dump (first 32 bytes):
    00 00 00 00 00 00 00 00 c0 c6 a3 04 81 88 ff ff  ................
    01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace (crc 5b1f0e2a):
    __kmalloc_cache_noprof+0x2f5/0x3c0
    hotswap_slot_new+0x45/0x120 [hotswap]
    do_one_initcall+0x5a/0x300
    do_init_module+0x60/0x230
unreferenced object (percpu) 0x00006007ffc01234 (size 8):
  comm "insmod", pid 131, jiffies 4294940002
  backtrace (crc 0):
    pcpu_alloc_noprof+0x5f4/0x9c0
    hotswap_percpu_alloc+0x12/0x30 [hotswap]
"""


class CheckResults(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.out = os.path.join(self.tmp, "out")
        shutil.copytree(SAMPLE, self.out)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def run_check(self, suites=None, vm_status=0):
        args = [sys.executable, CHECK, self.out, "--kunit-py", KUNIT_PY]
        args += [f"--vm-status={vm_status}"]
        for s in SUITES if suites is None else suites:
            args += ["--suite", s]
        for t in VM_TESTS:
            args += ["--vm-test", t]
        proc = subprocess.run(args, capture_output=True, text=True)
        last = proc.stdout.strip().splitlines()[-1]
        return proc.returncode, last, proc.stdout

    def edit(self, rel, fn):
        path = os.path.join(self.out, rel)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(fn(text))

    def assert_fails(self, **kw):
        rc, last, out = self.run_check(**kw)
        self.assertEqual(rc, 1, out)
        self.assertRegex(last, r"^\d+ passed, [1-9]\d* failed$")
        return out

    def test_recorded_run_passes(self):
        rc, last, out = self.run_check()
        self.assertEqual(rc, 0, out)
        self.assertRegex(last, r"^[1-9]\d* passed, 0 failed$")

    def test_failing_case_fails(self):
        suite = SUITES[0]
        # Flip the first test case's result line (indented "ok 1 ...").
        self.edit(f"ktap/{suite}.ktap", lambda t: t.replace("    ok 1 ", "    not ok 1 ", 1))
        out = self.assert_fails()
        self.assertIn(f"FAIL  {suite}", out)

    def test_missing_suite_fails(self):
        os.remove(os.path.join(self.out, "ktap", SUITES[-1] + ".ktap"))
        out = self.assert_fails()
        self.assertIn("missing", out)

    def test_crashed_suite_fails(self):
        # A suite cut off mid-way: the plan promises more than was reported.
        self.edit(f"ktap/{SUITES[0]}.ktap", lambda t: "\n".join(t.splitlines()[:6]) + "\n")
        self.assert_fails()

    def test_kernel_warn_fails(self):
        warn = "[   12.345678] WARNING: CPU: 1 PID: 77 at rust/hotswap/registry.rs:42\n"
        self.edit("dmesg", lambda t: t + warn)
        out = self.assert_fails()
        self.assertIn("kernel log reports", out)

    def test_kernel_oops_fails(self):
        oops = "[   12.3] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
        self.edit("dmesg", lambda t: t + oops)
        self.assert_fails()

    def test_debug_kernel_reports_fail(self):
        # One line of each report the debug kernel (configs/debug.config)
        # can print, as the kernel words them.
        reports = [
            "WARNING: possible circular locking dependency detected",
            "WARNING: inconsistent lock state",
            "inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage.",
            "WARNING: possible recursive locking detected",
            "WARNING: suspicious RCU usage",
            "rust/hotswap/domain.rs:88 suspicious rcu_dereference_check() usage!",
            "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
            "BUG: KCSAN: data-race in hotswap_call / hotswap_publish",
            "UBSAN: array-index-out-of-bounds in rust/hotswap/read_side.c:40:9",
            "BUG kmalloc-64 (Tainted: G           O      ): Poison overwritten",
            "ODEBUG: free active (active state 0) object: 00000000a1b2c3d4 object type: rcu_head",
            "WARNING: bad unlock balance detected!",
            "turning off the locking correctness validator.",
        ]
        for report in reports:
            with self.subTest(report=report):
                shutil.rmtree(self.out)
                shutil.copytree(SAMPLE, self.out)
                self.edit("dmesg", lambda t: t + f"[   42.000001] {report}\n")
                out = self.assert_fails()
                self.assertIn("kernel log reports", out)

    def test_kmemleak_leak_fails(self):
        with open(os.path.join(self.out, "kmemleak"), "w") as f:
            f.write(KMEMLEAK_REPORT)
        out = self.assert_fails()
        self.assertIn("kmemleak reports 2 unreferenced object(s)", out)
        self.assertIn("allocated in hotswap_slot_new+0x45/0x120 [hotswap]", out)

    def test_empty_kmemleak_report_passes(self):
        open(os.path.join(self.out, "kmemleak"), "w").close()
        rc, last, out = self.run_check()
        self.assertEqual(rc, 0, out)
        self.assertIn("kmemleak: no unreferenced object", out)

    def test_hung_vm_fails(self):
        os.remove(os.path.join(self.out, "complete"))
        out = self.assert_fails(vm_status=124)
        self.assertIn("timed out", out)

    def test_failed_vm_test_fails(self):
        self.edit(f"integration/{VM_TESTS[0]}.rc", lambda t: "1\n")
        self.assert_fails()

    def test_module_load_error_fails(self):
        self.edit("errors", lambda t: t + "insmod rust/hotswap/hotswap.ko failed\n")
        self.assert_fails()


class VmTimeout(unittest.TestCase):
    """scripts/vm.sh kills a VM that outlives its timeout and says 124."""

    def test_hung_vm_is_killed(self):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, HOTSWAP_VNG=os.path.join(HERE, "fake-vng-hang"),
                       HOTSWAP_VM_TIMEOUT="2", HOTSWAP_KVM="0", KDIR=tmp)
            proc = subprocess.run([os.path.join(ROOT, "scripts", "vm.sh"), "test", tmp],
                                  env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 124, proc.stderr)


if __name__ == "__main__":
    unittest.main()
