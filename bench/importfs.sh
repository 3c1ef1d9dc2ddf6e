#!/usr/bin/env bash
# importfs.sh - `cp -r` of an export folder into the import mount (impexfs
# -o import) against `cp -r` into a plain folder and into the FUSE ceiling
# (bench/minwfuse.c, a write-through FUSE file system), side by side in one
# run, with ratios and the goals at the end.
#
# Fixture (bench/lib.sh, shared with exportfs.sh): a store with one VM,
# "benchvm", a 2 GiB dynamic disk holding 1 GiB of data in the base and two
# differencing levels over it (3-level chain), and a 4th level, empty, the
# VM's current disk. `impex export` of the VM is the folder copied: its
# configuration, 3 snapshot configurations and the 4 files of the chain.
# A second, small export (a 64 MiB disk, 32 MiB of data) is imported first,
# for the daemon's peak memory before and after the big ones.
#
# Each case is `cp -r EXPORT DEST/runN`, RUNS times, interleaved (run 1 of
# every case, then run 2, ...), after `echo 3 > /proc/sys/vm/drop_caches`
# and a re-read of the export (so the source comes from the page cache):
#   plain:   DEST a folder next to the stores (same file system);
#   ceiling: DEST minwfuse's mount, writing through to a folder there;
#   import:  DEST the import mount of a new store there.
# Times: "cp" until cp exits; "durable" until cp and then `sync` have
# returned (cp into a plain folder or minwfuse leaves the data in the page
# cache; the import mount fsyncs each file at its close, as it must, so its
# cp time already holds the writeback); "registered" from cp's exit until
# the mount's status says the VM is registered (the settle time, 500 ms by
# default, is part of it; the sync runs first, and finds nothing to write). After each run the copy is removed (and the
# imported VM deleted with `impex vm delete --disks`), outside the timing.
# The first import's VM is checked: the base of its chain against the
# store's with qemu-img compare, its top merged content against the store's.
#
# Goals: import >= 0.8x the ceiling (durable); registered within 1 s of
# cp's exit; the daemon's peak memory the same for the small and the big.
#
# Needs root (drop_caches), /dev/fuse, fusermount3, cc, pkg-config and
# libfuse3-dev, python3, qemu-img. About 8 GB free under TMPDIR.
#
# Environment: IMPEX, IMPEXFS, RUNS (default 5), BENCH_DIR, as exportfs.sh.
#
# Reproduce (as root):
#   meson setup --buildtype=release build-release && ninja -C build-release &&
#   bench/importfs.sh
set -euo pipefail

REPO=$(cd -- "$(dirname -- "$0")/.." && pwd)
IMPEX=${IMPEX:-$REPO/build-release/tools/impex}
IMPEXFS=${IMPEXFS:-$REPO/build-release/fs/impexfs}
RUNS=${RUNS:-5}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "importfs.sh: RUNS must be a positive number" >&2; exit 2; }
SEED=2026
VM=benchvm
BENCH=importfs.sh
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

[[ $(id -u) -eq 0 ]] || die "needs root (drop_caches)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
for tool in fusermount3 mountpoint cc pkg-config python3 qemu-img; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
pkg-config --exists fuse3 || die "libfuse3-dev is not installed (pkg-config fuse3)"
[[ -x $IMPEX ]] || die "'$IMPEX' is not an executable; build impex or set IMPEX"
[[ -x $IMPEXFS ]] || die "'$IMPEXFS' is not an executable; build impexfs or set IMPEXFS"

bench_work
# shellcheck disable=SC2046  # pkg-config's flags are words
cc -O2 -Wall -o "$WORK/bin/minwfuse" "$REPO/bench/minwfuse.c" $(pkg-config --cflags --libs fuse3)
bench_machine
bench_fixture three-levels

EXPORT=$WORK/export
if [[ ! -d $EXPORT ]]; then
	"$IMPEX" export --store "$STORE" "$VM" "$EXPORT.part" >/dev/null
	mv -- "$EXPORT.part" "$EXPORT"
fi
bench_small_export
echo "== the export copied"
(cd "$EXPORT" && find . -type f -printf '%-70p %6s\n' | sort | awk '{ $NF = int($NF / 1048576) " MiB"; print }')
echo "data: $(($(du -s -B1 "$EXPORT" | cut -f1) >> 20)) MiB in $(find "$EXPORT" -type f | wc -l) files"

# ---- the three destinations ----

M=$WORK/mnt
TARGET=$WORK/target
rm -rf -- "$TARGET" "$WORK/plain" "$WORK/backing"
"$IMPEX" store init "$TARGET" >/dev/null
mkdir -p "$WORK/plain" "$WORK/backing"
start minwfuse "$M/ceiling" "$WORK/bin/minwfuse" -f "$WORK/backing" "$M/ceiling"
CEIL_PID=$LAST_PID
start impexfs "$M/import" "$IMPEXFS" -f -o import "$TARGET" "$M/import"
IMPORT_PID=$LAST_PID

# The import NAME's state and VM GUID, from the status file: "STATE GUID".
import_state() {
	python3 - "$M/import/.impex-status" "$1" <<'EOF'
import json
import sys

imports = [i for i in json.load(open(sys.argv[1]))["imports"] if i["folder"] == sys.argv[2]]
if not imports:
    print("none -")
else:
    i = imports[0]
    print(i["state"], (i["vm"] or {}).get("id", "-"))
    if i["state"] == "failed":
        print(json.dumps(i["errors"]), file=sys.stderr)
EOF
}

# Wait until import NAME is registered; prints its GUID.
registered() {
	local state guid i
	for ((i = 0; i < 6000; i++)); do
		read -r state guid < <(import_state "$1")
		[[ $state == registered ]] && { echo "$guid"; return 0; }
		[[ $state == failed ]] && die "import $1 failed"
		sleep 0.01
	done
	die "import $1: not registered after 60 s ($state)"
}

peak_kib() {
	awk '/^VmHWM/ { print $2 }' "/proc/$1/status"
}

echo "== the small import (64 MiB disk), for the daemon's memory"
cp -r -- "$SMALL" "$M/import/small"
registered small >/dev/null
PEAK_SMALL=$(peak_kib "$IMPORT_PID")
echo "impexfs peak RSS after it: $PEAK_SMALL KiB"

# ---- timing ----

RESULTS=$WORK/results.tsv
: >"$RESULTS"
prepare() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	find "$EXPORT" -type f -exec cat {} + >/dev/null
}
now() { date +%s%N; }
CHECKED=0
echo "== timing: 3 cases x $RUNS runs, interleaved"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((run = 1; run <= RUNS; run++)); do
	for c in plain ceiling import; do
		case $c in
		plain) dest=$WORK/plain/run$run ;;
		ceiling) dest=$M/ceiling/run$run ;;
		import) dest=$M/import/run$run ;;
		esac
		prepare
		t0=$(now)
		cp -r -- "$EXPORT" "$dest"
		t1=$(now)
		sync
		t2=$(now)
		reg=0
		if [[ $c == import ]]; then
			guid=$(registered "run$run")
			reg=$(($(now) - t1))
		fi
		printf '%s\t%d\t%d\t%d\t%d\n' "$c" "$run" $((t1 - t0)) $((t2 - t0)) "$reg" >>"$RESULTS"
		awk -v r="$run" -v c="$c" -v cp=$((t1 - t0)) -v d=$((t2 - t0)) -v g="$reg" \
			'BEGIN { printf "run %d  %-8s cp %6.2f s  durable %6.2f s%s\n", r, c, cp / 1e9, d / 1e9,
			         g ? sprintf("  registered %.0f ms after cp", g / 1e6) : "" }'
		# Checks (once), then the copy goes, outside the timing.
		if [[ $c == import ]]; then
			if ((!CHECKED)); then
				"$IMPEX" vm show --json --store "$TARGET" "$guid" >"$WORK/imported.json"
				"$IMPEX" vm show --json --store "$STORE" "$VM" >"$WORK/source.json"
				mapfile -t pair < <(python3 - "$WORK/imported.json" "$WORK/source.json" <<'EOF'
import json
import sys

a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["problem"] is None and len(a["snapshots"]) == len(b["snapshots"]) == 3, a
da, db = a["disks"][0], b["disks"][0]
assert da["chain_problem"] is None and len(da["chain"]) == len(db["chain"]) == 4, da
print(da["chain"][-1]); print(db["chain"][-1]); print(da["path"]); print(db["path"])
EOF
)
				qemu-img compare -q -f vpc -F vpc "${pair[0]}" "${pair[1]}" ||
					die "the imported base differs from the store's"
				cmp <("$IMPEX" vhd cat "${pair[2]}") <("$IMPEX" vhd cat "${pair[3]}") ||
					die "the imported VM's current content differs from the store's"
				echo "checked: the imported chain's base (qemu-img) and merged content equal the store's"
				CHECKED=1
			fi
			"$IMPEX" vm delete --store "$TARGET" --disks "$guid" >/dev/null
		elif [[ $c == plain ]]; then
			rm -rf -- "$dest"
		else
			rm -rf -- "$WORK/backing/run$run"
		fi
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
PEAK_BIG=$(peak_kib "$IMPORT_PID")
echo "== daemons"
echo "impexfs peak RSS: $PEAK_SMALL KiB after the small import, $PEAK_BIG KiB after $RUNS big ones"
echo "minwfuse peak RSS: $(peak_kib "$CEIL_PID") KiB"
"$IMPEX" status "$M/import" | head -n 4
for mnt in "$M/ceiling" "$M/import"; do
	fusermount3 -u -- "$mnt" || echo "fusermount3 -u $mnt failed"
done
for pid in "$CEIL_PID" "$IMPORT_PID"; do
	rc=0
	wait "$pid" || rc=$?
	((rc == 0)) || echo "daemon $pid: exit status $rc"
done
left=$(find "$TARGET" -name '*impex-import*' | wc -l)
((left == 0)) || echo "WARNING: $left temporary names left in the target store"

# ---- summary ----

python3 - "$RESULTS" "$PEAK_SMALL" "$PEAK_BIG" <<'EOF'
import statistics
import sys

rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
med = {}
for case in ("plain", "ceiling", "import"):
    mine = [r for r in rows if r[0] == case]
    med[case] = {k: statistics.median(int(r[i]) for r in mine) / 1e9
                 for k, i in (("cp", 2), ("durable", 3), ("registered", 4))}
print("== medians")
print("%-8s %10s %10s" % ("case", "cp s", "durable s"))
for case, m in med.items():
    print("%-8s %10.2f %10.2f" % (case, m["cp"], m["durable"]))
reg = med["import"]["registered"]
ratio = med["ceiling"]["durable"] / med["import"]["durable"]
print("== ratios (speed: the other's time over the import mount's)")
print("import vs ceiling, durable: %.2fx   cp alone: %.2fx" % (
    ratio, med["ceiling"]["cp"] / med["import"]["cp"]))
print("import vs plain folder, durable: %.2fx   cp alone: %.2fx" % (
    med["plain"]["durable"] / med["import"]["durable"], med["plain"]["cp"] / med["import"]["cp"]))
print("registered after cp's exit: %.0f ms (median)" % (reg * 1000))
small, big = int(sys.argv[2]), int(sys.argv[3])
print("== goals")
print("import >= 0.8x the ceiling (durable): %s (%.2fx)" % ("met" if ratio >= 0.8 else "NOT met", ratio))
print("registered within 1 s of the last close: %s (%.0f ms)" % ("met" if reg <= 1 else "NOT met", reg * 1000))
print("peak memory independent of disk size: %s (%d KiB with 64 MiB, %d KiB with 2 GiB)" % (
    "met" if big <= small * 1.25 + 1024 else "NOT met", small, big))
EOF
