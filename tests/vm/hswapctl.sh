#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# hswapctl against the real /dev/hotswap (and /dev/hotswap-file for FCM
# memory): every command, text and --json, errors in words with the right
# exit codes, and an unprivileged user.
# vm-phase: loaded
set -eu
. "$(dirname "$0")/lib.sh"

tool=$HOTSWAP_ROOT/tools/hswapctl/target/release/hswapctl
py=/usr/bin/python3
[ -x "$tool" ] || fail "build the tool first (make tool)"

# expect STATUS PATTERN CMD...: exit status and a line of the output.
expect() {
	local want=$1 pattern=$2 out rc=0
	shift 2
	out=$("$@" 2>&1) || rc=$?
	[ "$rc" = "$want" ] || fail "$* exited $rc, expected $want: $out"
	printf '%s\n' "$out" | grep -q -- "$pattern" || fail "$*: no '$pattern' in: $out"
}

# No control device: what it says when hotswap.ko is not loaded.
expect 1 "hotswap is not loaded: insmod" "$tool" --device /dev/hotswap-missing list
load hotswap hotswap_fcm hotswap_core_test
reload hstest_objects count=2

expect 0 "hstest.*alpha.*object.*hotswap_core_test" "$tool" list
"$tool" --json list | $py -c '
import json, sys
d = json.load(sys.stdin)
objs = [o for o in d["objects"] if o["interface"] == "hstest"]
assert len(objs) == 2 and all(o["implementation"] == "alpha" for o in objs), objs
assert any(i["name"] == "counter" and i["kind"] == "interposer" for i in d["implementations"])
' || fail "list --json"
id=$("$tool" --json list | $py -c '
import json, sys
print([o["id"] for o in json.load(sys.stdin)["objects"] if o["interface"] == "hstest"][0])')

expect 0 "implementation  alpha" "$tool" status "$id"
expect 0 "ID.*INTERFACE.*IMPLEMENTATION.*PHASE" "$tool" status
expect 1 "object 999999: status: no such" "$tool" status 999999

# Swap all (batched), one back, one unchanged.
expect 0 "2 object(s): 2 completed, 0 aborted" "$tool" swap hstest beta
expect 0 "new hstest objects now start on beta" "$tool" swap hstest beta
expect 0 "object $id: beta -> alpha completed" "$tool" swap hstest alpha --object "$id" --timeout 500
"$tool" --json swap hstest alpha --object "$id" | $py -c '
import json, sys
r = json.load(sys.stdin)
assert r["unchanged"] == 1 and r["objects"][0]["outcome"] == "unchanged", r
' || fail "swap --json"
"$tool" --json status "$id" | $py -c '
import json, sys
s = json.load(sys.stdin)
assert s["implementation"] == "alpha" and s["swaps_done"] >= 2, s
assert s["last_swap"]["outcome"] == "completed", s
' || fail "status --json after swaps"
expect 1 'no object implementation "turbo" of interface "hstest"; available: alpha, beta, gamma' \
	"$tool" swap hstest turbo
expect 1 "aborted in transfer.*no common state format.*stayed on alpha" "$tool" swap hstest gamma --object "$id"
expect 1 "no interface \"nosuch\"" "$tool" swap nosuch beta

# Interposers.
expect 0 "interposed counter on 2 object(s)" "$tool" interpose hstest counter
expect 0 "interposers     counter" "$tool" status "$id"
expect 0 "removed counter on 1 object(s)" "$tool" uninterpose hstest counter --object "$id"
expect 1 "no such" "$tool" uninterpose hstest counter --object "$id"
expect 0 "removed counter on 1 object(s)" "$tool" uninterpose hstest counter
expect 1 "no interposer implementation \"beta\"" "$tool" interpose hstest beta

# Timeouts, watch (not a terminal: one snapshot), completions, man page.
expect 0 "swap timeout 1500 ms" "$tool" timeout 1500 --object "$id"
expect 0 "swap timeout    1500 ms" "$tool" status "$id"
expect 0 "ID.*RATE/S" "$tool" watch
"$tool" --json watch | $py -c 'import json, sys; assert len(json.load(sys.stdin)) >= 2' || fail "watch --json"
expect 0 "complete -F" "$tool" completions bash

# Decision policies: fcm has cpu_count (hotswap_fcm), hstest none.
expect 0 "^available: cpu_count$" "$tool" policy fcm show
expect 0 "^fcm policy: off$" "$tool" policy fcm off
expect 0 "^hstest policy: off$" "$tool" policy hstest show
expect 0 "^available: none$" "$tool" policy hstest show
expect 1 "hstest has no decision policy (is hotswap_fcm loaded?)" "$tool" policy hstest auto
expect 1 'no decision policy "turbo" of interface "fcm"; available: cpu_count' "$tool" policy fcm turbo
expect 1 "reading the nosuch policy: policy: no such" "$tool" policy nosuch show
expect 2 "invalid value 'Auto'" "$tool" policy fcm Auto
"$tool" --json policy hstest show | $py -c '
import json, sys
p = json.load(sys.stdin)
assert p == {"interface": "hstest", "policy": "off", "enabled": False, "params": [0, 0, 0, 0],
             "available": [], "up_cpus": 0, "up_windows": 0, "down_windows": 0}, p
' || fail "policy --json"
expect 0 '^.TH hswapctl' "$tool" man

# FCM memory: figures, the budget set (and restored), refusals in words.
budget=$("$tool" --json memory | $py -c '
import json, sys
m = json.load(sys.stdin)
assert m["page_size"] == 4096 and m["budget_pages"] >= 64 and m["used_pages"] >= 0, m
print(m["budget_pages"])')
expect 0 "FCM memory: .* of 32768 pages" "$tool" memory --budget 128M
[ "$(cat /sys/module/hotswap_fcm/parameters/budget_pages)" = 32768 ] || fail "memory --budget"
expect 1 "at least 1024" "$tool" memory --budget 1000
expect 1 "not a number of pages" "$tool" memory --budget lots
expect 0 "of 32768 pages" "$tool" memory
expect 0 "of $budget pages" "$tool" memory --budget "$budget"
# Without /dev/hotswap-file (hotswap_fcm not loaded): memory says so, list
# and status leave the pages out.
expect 1 "hotswap_fcm is not loaded: insmod fcm/lib/hotswap_fcm.ko" \
	"$tool" --file-device /dev/hotswap-file-missing memory
expect 0 "hstest" "$tool" --file-device /dev/hotswap-file-missing list
"$tool" --file-device /dev/hotswap-file-missing --json status | $py -c '
import json, sys
assert all(s["pages"] is None for s in json.load(sys.stdin))
' || fail "status --json without /dev/hotswap-file"

# Usage errors exit 2.
expect 2 "Usage" "$tool" swap hstest
expect 2 "Usage" "$tool" bogus

# An unprivileged user reads, and is told why changes fail.
chmod 0666 /dev/hotswap
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
expect 0 "hstest" as_nobody "$tool" list
expect 1 "needs CAP_SYS_ADMIN (run as root)" as_nobody "$tool" swap hstest beta
expect 1 "needs CAP_SYS_ADMIN (run as root)" as_nobody "$tool" interpose hstest counter
expect 0 "FCM memory" as_nobody "$tool" memory
# /dev/hotswap-file is open to every user: one without CAP_SYS_ADMIN sees
# the figures but not the FCMs other users created (which files they cache).
$py -c '
import os, sys, time
sys.path.insert(0, "tests/pylib")
import hotswap_uapi as hs
with open("/tmp/hswapctl-root-file", "wb") as f:
    f.write(b"x" * 4096)
dev = hs.open_cached("/tmp/hswapctl-root-file")
os.pread(dev, 4096, 0)
time.sleep(20)
' &
holder=$!
count_objects() { $py -c 'import json, sys; print(len(json.load(sys.stdin)["objects"]))'; }
for _ in $(seq 50); do
	[ "$("$tool" --json memory | count_objects)" -ge 1 ] && break
	sleep 0.1
done
root_sees=$("$tool" --json memory | count_objects)
nobody_sees=$(as_nobody "$tool" --json memory | count_objects)
kill "$holder"
wait "$holder" 2>/dev/null || true
[ "$root_sees" -ge 1 ] || fail "root sees no FCM"
[ "$nobody_sees" = 0 ] || fail "an unprivileged user sees another user's FCMs ($nobody_sees)"
expect 1 "needs CAP_SYS_ADMIN (run as root)" as_nobody "$tool" memory --budget 128M
expect 0 "^available: cpu_count$" as_nobody "$tool" policy fcm show
expect 1 "set policy: needs CAP_SYS_ADMIN (run as root)" as_nobody "$tool" policy fcm off
chmod 0600 /dev/hotswap
expect 1 "permission denied (run as root" as_nobody "$tool" list
echo "hswapctl: ok"
