#!/bin/bash
# Scale of the store code: a store of VMS VMs (default 1000) with SNAPSHOTS
# snapshots each (default 10), small disks, built once; then the time and
# peak memory of `impex vm list --json` over it. Goal: under 2 seconds and
# 100 MB. IMPEX names the impex binary (default build/tools/impex); BENCH_DIR
# keeps the store (default: a temporary folder, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
IMPEX=${IMPEX:-build/tools/impex}
VMS=${VMS:-1000}
SNAPSHOTS=${SNAPSHOTS:-10}
RUNS=${RUNS:-5}
if [ -n "${BENCH_DIR:-}" ]; then
	WORK=$BENCH_DIR
	mkdir -p "$WORK"
else
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/impex-scale.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
fi
STORE=$WORK/store

echo "== machine"
echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpus:   $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "fs:     $(stat -f -c %T "$WORK")"
echo "impex:  $("$IMPEX" --version)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"

if [ ! -d "$STORE/Virtual Machines" ]; then
	echo "== building a store of $VMS VMs x $SNAPSHOTS snapshots"
	start=$(date +%s)
	python3 bench/make_store.py "$STORE" "$VMS" "$SNAPSHOTS"
	echo "built in $(( $(date +%s) - start )) s: $(find "$STORE" -type f | wc -l) files"
fi

echo "== check"
"$IMPEX" vm list --json --store "$STORE" > "$WORK/list.json"
python3 - "$WORK/list.json" "$VMS" "$SNAPSHOTS" <<'PY'
import json, sys
vms = json.load(open(sys.argv[1]))
want_vms, want_snaps = int(sys.argv[2]), int(sys.argv[3])
assert len(vms) == want_vms, len(vms)
bad = [vm["name"] for vm in vms
       if vm["problem"] or len(vm["snapshots"]) != want_snaps
       or any(d["problem"] for d in vm["disks"])]
assert not bad, bad[:5]
print("%d VMs, %d snapshots each, no problem" % (len(vms), want_snaps))
PY

echo "== peak memory (/usr/bin/time -v)"
/usr/bin/time -v "$IMPEX" vm list --json --store "$STORE" 2> "$WORK/time.txt" > /dev/null
rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$WORK/time.txt")
echo "max RSS: $rss KiB"

echo "== time (hyperfine, $RUNS runs after a warm-up)"
hyperfine --warmup 1 --runs "$RUNS" --export-json "$WORK/times.json" \
	"$IMPEX vm list --json --store '$STORE' > /dev/null"
python3 - "$WORK/times.json" "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
median, rss = r["median"], int(sys.argv[2])
print("median %.3f s (min %.3f, max %.3f); max RSS %.1f MB" % (
    median, r["min"], r["max"], rss / 1024))
print("goal: under 2 s and 100 MB: %s" % ("met" if median < 2 and rss < 100 * 1024 else "NOT met"))
PY
