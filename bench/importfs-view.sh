#!/usr/bin/env bash
# importfs-view.sh - `ls -lR` of a registered import of 30,000 files through
# the import mount (impexfs -o import): the daemon's CPU time and the wall
# time, cold and warm, beside the same `ls -lR` of the same tree in a plain
# folder; and, in the same run, the same with a second build (BASELINE), such
# as one of the commit before a registered import's view was looked up by
# hash (issue 11, finding 8).
#
# Fixture (bench/lib.sh): the small export (VM "small", one 64 MiB disk with
# 32 MiB of data) plus FILES small files (default 30,000, about 40 bytes
# each) beside the VM, in nested folders: extra/dNN/dN/fNNNNN.txt, 100 files
# a folder, 331 folders. An import folder may hold files other than the
# VM's: they are written to the import's staging like the others, kept in
# its view after the commit, and dropped with its folder (docs/IMPORT.md);
# the bench checks that such an import registers, and that the mount lists
# the same names as the export.
#
# For each build: a new store, its import mount (`impexfs -f -o import`),
# `cp -r EXPORT MOUNT/view`, then wait until `impex status --json` says the
# import is registered. The cases, RUNS rounds (default 5), interleaved:
#   plain:    `ls -lR` of the export folder itself (same file system);
#   this:     `ls -lR MOUNT/view` with IMPEX and IMPEXFS;
#   baseline: the same with BASELINE's impex and impexfs (when given).
# Each round runs every case cold (`echo 2 > /proc/sys/vm/drop_caches` just
# before: the kernel forgets its dentries and inodes, the mount's included,
# so every name is looked up again) then warm (at once again). The import
# mount keeps no attributes in the kernel (attr_timeout 0), so a warm
# `ls -lR` still asks the daemon for every file's attributes.
# Daemon CPU is utime + stime of the daemon (/proc/PID/stat, every thread,
# in clock ticks of 10 ms), read just before and just after the `ls -lR`,
# shown apart too: user time is the daemon's own work (the view's look-ups
# among it), system time mostly the kernel's FUSE transport (reading each
# request from /dev/fuse and writing its reply). Medians of RUNS. Timings are
# figures, not assertions.
#
# Goal (issue 11): `ls -lR` of a 30,000-file import under 1 s of daemon CPU.
#
# Needs root (drop_caches), /dev/fuse, fusermount3, python3.
#
# Environment: IMPEX, IMPEXFS, BASELINE (a build folder of another commit:
# its tools/impex and fs/impexfs), FILES (default 30000), RUNS (default 5),
# BENCH_DIR (keep the work folder there).
#
# Reproduce (as root), with the commit before the change as the baseline:
#   meson setup --buildtype=release build-release && ninja -C build-release &&
#   git worktree add ../impex-old 906d21e &&
#   (cd ../impex-old && meson setup --buildtype=release build-release &&
#    ninja -C build-release) &&
#   BASELINE=../impex-old/build-release bench/importfs-view.sh
set -euo pipefail

REPO=$(cd -- "$(dirname -- "$0")/.." && pwd)
IMPEX=${IMPEX:-$REPO/build-release/tools/impex}
IMPEXFS=${IMPEXFS:-$REPO/build-release/fs/impexfs}
BASELINE=${BASELINE:-}
FILES=${FILES:-30000}
RUNS=${RUNS:-5}
BENCH=importfs-view.sh
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
[[ $FILES =~ ^[1-9][0-9]*$ ]] || die "FILES must be a positive number"
[[ $(id -u) -eq 0 ]] || die "needs root (drop_caches)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
for tool in fusermount3 mountpoint python3; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
[[ -x $IMPEX ]] || die "'$IMPEX' is not an executable; build impex or set IMPEX"
[[ -x $IMPEXFS ]] || die "'$IMPEXFS' is not an executable; build impexfs or set IMPEXFS"
if [[ -n $BASELINE ]]; then
	for b in tools/impex fs/impexfs; do
		[[ -x $BASELINE/$b ]] || die "'$BASELINE/$b' is not an executable"
	done
fi

bench_work
CASES=(this)
declare -A BUILD_IMPEX=([this]=$IMPEX) BUILD_IMPEXFS=([this]=$IMPEXFS)
declare -A BUILD_NAME=([this]="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')")
if [[ -n $BASELINE ]]; then
	CASES+=(baseline)
	cp -- "$BASELINE/tools/impex" "$WORK/bin/baseline-impex"
	cp -- "$BASELINE/fs/impexfs" "$WORK/bin/baseline-impexfs"
	BUILD_IMPEX[baseline]=$WORK/bin/baseline-impex
	BUILD_IMPEXFS[baseline]=$WORK/bin/baseline-impexfs
	BUILD_NAME[baseline]="$(git -C "$BASELINE" describe --always --dirty 2>/dev/null || echo '?')"
fi
bench_machine
for c in "${CASES[@]}"; do
	echo "build $c: ${BUILD_NAME[$c]}"
done

# ---- the export: the small VM and FILES files beside it ----

bench_small_export
EXPORT=$WORK/export-view
if [[ ! -f $WORK/export-view.done ]]; then
	rm -rf -- "$EXPORT"
	cp -r -- "$SMALL" "$EXPORT"
	python3 - "$EXPORT/extra" "$FILES" <<'EOF'
import os
import sys

root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    folder = os.path.join(root, "d%02d" % (i // 1000), "d%d" % (i // 100 % 10))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "f%05d.txt" % i), "w") as f:
        f.write("file %d of the import view bench\n" % i)
EOF
	touch "$WORK/export-view.done"
fi
echo "== the export: $(find "$EXPORT" -type f | wc -l) files, $(find "$EXPORT" -type d | wc -l) folders," \
	"$(($(du -s -B1 "$EXPORT" | cut -f1) >> 20)) MiB"

# ---- one import mount per build, the export copied in and registered ----

M=$WORK/mnt
declare -A DAEMON MOUNT
# The state of import "view" on the mount $1 with impex $2.
import_state() {
	"$2" status --json "$1" | python3 -c '
import json
import sys

imports = [i for i in json.load(sys.stdin)["imports"] if i["folder"] == "view"]
print(imports[0]["state"] if imports else "none")
if imports and imports[0]["state"] == "failed":
    print(json.dumps(imports[0]["errors"]), file=sys.stderr)'
}
now() { date +%s%N; }
for c in "${CASES[@]}"; do
	rm -rf -- "$WORK/store-$c"
	"${BUILD_IMPEX[$c]}" store init "$WORK/store-$c" >/dev/null
	start "impexfs-$c" "$M/$c" "${BUILD_IMPEXFS[$c]}" -f -o import "$WORK/store-$c" "$M/$c"
	DAEMON[$c]=$LAST_PID
	MOUNT[$c]=$M/$c
	t0=$(now)
	cp -r -- "$EXPORT" "$M/$c/view"
	t1=$(now)
	state=none
	for ((i = 0; i < 12000; i++)); do
		state=$(import_state "$M/$c" "${BUILD_IMPEX[$c]}")
		[[ $state == registered || $state == failed ]] && break
		sleep 0.05
	done
	[[ $state == registered ]] || die "$c: the import is '$state', not registered: $("${BUILD_IMPEX[$c]}" status "$M/$c")"
	t2=$(now)
	awk -v c="$c" -v cp=$((t1 - t0)) -v r=$((t2 - t1)) \
		'BEGIN { printf "%-8s cp -r %.1f s, registered %.1f s after\n", c, cp / 1e9, r / 1e9 }'
	cmp -s <(cd "$EXPORT" && find . | sort) <(cd "$M/$c/view" && find . | sort) ||
		die "$c: the mount does not list the export's names"
done
echo "checked: every import registered, and its folder lists the export's names"

# ---- timing ----

TICK=$(getconf CLK_TCK)
# "UTIME STIME" of process $1, in clock ticks (fields 14 and 15 of its stat,
# counted after the command name, which may hold spaces).
cpu_ticks() {
	local stat
	stat=$(<"/proc/$1/stat")
	stat=${stat##*) }
	# shellcheck disable=SC2086  # the fields are words
	set -- $stat
	echo "${12} ${13}"
}
RESULTS=$WORK/results.tsv
: >"$RESULTS"
# Time `ls -lR` of case $1's folder, $2 cold or warm: a line of RESULTS.
measure() {
	local c=$1 temp=$2 dir pid u0=0 s0=0 u1=0 s1=0 user sys t0 t1 lines
	if [[ $c == plain ]]; then
		dir=$EXPORT pid=
	else
		dir=${MOUNT[$c]}/view pid=${DAEMON[$c]}
	fi
	[[ $temp == cold ]] && { sync; echo 2 >/proc/sys/vm/drop_caches; }
	[[ -n $pid ]] && read -r u0 s0 < <(cpu_ticks "$pid")
	t0=$(now)
	# shellcheck disable=SC2012  # ls -lR is what is measured
	lines=$(ls -lR -- "$dir" | wc -l)
	t1=$(now)
	[[ -n $pid ]] && read -r u1 s1 < <(cpu_ticks "$pid")
	user=$(((u1 - u0) * 1000 / TICK)) sys=$(((s1 - s0) * 1000 / TICK))
	printf '%s\t%s\t%d\t%d\t%d\t%d\n' "$c" "$temp" $((t1 - t0)) "$user" "$sys" "$lines" >>"$RESULTS"
	awk -v c="$c" -v t="$temp" -v w=$((t1 - t0)) -v u="$user" -v s="$sys" -v p="$pid" -v l="$lines" \
		'BEGIN { printf "  %-8s %-4s wall %7.3f s  daemon CPU %s  (%d lines)\n", c, t, w / 1e9,
		         p ? sprintf("%6.2f s (user %.2f, system %.2f)", (u + s) / 1000, u / 1000, s / 1000) : "-", l }'
}
echo "== timing: ls -lR, ${#CASES[@]} import case(s) and plain, cold then warm, $RUNS rounds"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((run = 1; run <= RUNS; run++)); do
	echo "round $run"
	for c in plain "${CASES[@]}"; do
		measure "$c" cold
		measure "$c" warm
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

for c in "${CASES[@]}"; do
	fusermount3 -u -- "${MOUNT[$c]}" || echo "fusermount3 -u ${MOUNT[$c]} failed"
	rc=0
	wait "${DAEMON[$c]}" || rc=$?
	((rc == 0)) || echo "impexfs ($c): exit status $rc"
done

# ---- summary ----

python3 - "$RESULTS" "${BUILD_NAME[this]}" "${BUILD_NAME[baseline]:-}" "$FILES" <<'EOF'
import statistics
import sys

rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
names = {"plain": "plain folder", "this": "impexfs " + sys.argv[2], "baseline": "impexfs " + sys.argv[3]}
cases = [c for c in ("plain", "this", "baseline") if any(r[0] == c for r in rows)]
med = {}
for c in cases:
    for temp in ("cold", "warm"):
        mine = [r for r in rows if r[0] == c and r[1] == temp]
        med[c, temp] = {k: statistics.median(int(r[i]) for r in mine) / d
                        for k, i, d in (("wall", 2, 1e9), ("user", 3, 1e3), ("sys", 4, 1e3))}
        med[c, temp]["cpu"] = statistics.median(int(r[3]) + int(r[4]) for r in mine) / 1e3
runs = len([r for r in rows if r[0] == "plain" and r[1] == "cold"])
print("== medians of %d runs, ls -lR of an import holding %s extra files (seconds; daemon CPU ="
      " user + system, each a median of its own)" % (runs, sys.argv[4]))
print("| case | ls -lR | wall | daemon CPU | user | system | wall / plain |")
print("|---|---|---:|---:|---:|---:|---:|")
for c in cases:
    for temp in ("cold", "warm"):
        m = med[c, temp]
        cpu = ("%.2f | %.2f | %.2f" % (m["cpu"], m["user"], m["sys"])) if c != "plain" else "- | - | -"
        print("| %s | %s | %.3f | %s | %.1f |" % (names[c], temp, m["wall"], cpu,
                                                m["wall"] / med["plain", temp]["wall"]))
if "baseline" in cases:
    print("baseline / this: daemon CPU cold %.1fx, warm %.1fx; wall cold %.1fx, warm %.1fx" % tuple(
        [med["baseline", t]["cpu"] / max(med["this", t]["cpu"], 0.01) for t in ("cold", "warm")] +
        [med["baseline", t]["wall"] / med["this", t]["wall"] for t in ("cold", "warm")]))
worst = max(med["this", "cold"]["cpu"], med["this", "warm"]["cpu"])
print("== goal: ls -lR under 1 s of daemon CPU: %s (%.2f s cold, %.2f s warm)" % (
    "met" if worst < 1 else "NOT met", med["this", "cold"]["cpu"], med["this", "warm"]["cpu"]))
EOF
