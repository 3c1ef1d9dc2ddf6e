#!/usr/bin/env bash
# exportfs-vhdx.sh - read throughput of a merged AVHDX snapshot served by the
# export mount (impexfs) against the FUSE ceiling (bench/minfuse.c serving a
# plain copy of the same file), at the same read-ahead.
#
# Fixture (lib.sh's bench_fixture, vhdx): a store made with the impex CLI
# holding one generation 2 VM, "benchvm", with one 1 GiB dynamic VHDX disk
# (32 MiB blocks), written through `impex vm write` in large pieces
# (chain_plan_large.py), one snapshot after each level:
#   level 0, the base VHDX:  ~512 MiB in 8-24 MiB pieces at scattered offsets
#   level 1, an AVHDX:       64 MiB in 8 MiB pieces at 4 KiB offsets
#   level 2, an AVHDX:       60 MiB in 2 MiB pieces at sector offsets, then
#                            zeros over 2 whole 2 MiB blocks
# Snapshot "three-levels" is the 3-level chain; impexfs serves it merged as
# MOUNT/snapshots/benchvm/three-levels/Virtual Hard Disks/<disk>.vhdx (a
# dynamic VHDX made on the fly from the chain). That file is checked against
# the fixture's reference (qemu-img compare; the reference is made by Python
# from the writes' plans, without impex), then copied to a plain file that
# minfuse -s and minfuse (multithreaded) serve; the faster is the ceiling.
#
# Read, each with `dd bs=1M of=/dev/null`, RUNS times, interleaved, after
# `echo 3 > /proc/sys/vm/drop_caches` and a re-read of the files the case
# reads (the store's VHDX and AVHDX files for impexfs, the copy for minfuse),
# so what is measured is the FUSE path, not the disk; those files are also
# held in the page cache for the whole run (lib.sh's bench_lock; LOCK=0 does
# not), as this machine pages out what it finds cold. Each case is read at
# the read_ahead_kb the kernel gives minfuse's mount and at RA_KB (1024), set
# through /sys/class/bdi/<dev>/ before each read, the same for both.
#
# Goal: merged VHDX >= 0.9x the ceiling at the same read-ahead.
#
# Needs root, /dev/fuse, fusermount3, cc, pkg-config and libfuse3-dev,
# python3, qemu-img. About 3 GB free under TMPDIR.
#
# Environment:
#   IMPEX      the impex binary (default build-release/tools/impex in the repo)
#   IMPEXFS    the impexfs binary (default build-release/fs/impexfs in the repo)
#   RUNS       reads per case (default 5); medians are reported
#   RA_KB      the raised read_ahead_kb (default 1024)
#   LOCK=0     do not hold the sources in memory
#   BENCH_DIR  work folder, kept afterwards, its fixture reused by later runs
#              (default: a new folder under TMPDIR or /tmp, removed at exit)
#
# Reproduce (as root):
#   meson setup --buildtype=release build-release && ninja -C build-release &&
#   bench/exportfs-vhdx.sh
set -euo pipefail

REPO=$(cd -- "$(dirname -- "$0")/.." && pwd)
IMPEX=${IMPEX:-$REPO/build-release/tools/impex}
IMPEXFS=${IMPEXFS:-$REPO/build-release/fs/impexfs}
RUNS=${RUNS:-5}
RA_KB=${RA_KB:-1024}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "exportfs-vhdx.sh: RUNS must be a positive number" >&2; exit 2; }
[[ $RA_KB =~ ^[1-9][0-9]*$ ]] || { echo "exportfs-vhdx.sh: RA_KB must be a positive number" >&2; exit 2; }
SEED=2026
VM=benchvm
SNAP=three-levels
BENCH=exportfs-vhdx.sh
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

[[ $(id -u) -eq 0 ]] || die "needs root (drop_caches and read_ahead_kb)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
for tool in fusermount3 mountpoint cc pkg-config python3 dd cmp qemu-img; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
pkg-config --exists fuse3 || die "libfuse3-dev is not installed (pkg-config fuse3)"
[[ -x $IMPEX ]] || die "'$IMPEX' is not an executable; build impex or set IMPEX"
[[ -x $IMPEXFS ]] || die "'$IMPEXFS' is not an executable; build impexfs or set IMPEXFS"

bench_work
# shellcheck disable=SC2046  # pkg-config's flags are words
cc -O2 -Wall -o "$WORK/bin/minfuse" "$REPO/bench/minfuse.c" $(pkg-config --cflags --libs fuse3)
MINFUSE=$WORK/bin/minfuse

bench_machine
bench_fixture "$SNAP" vhdx
mapfile -t SOURCES < <(find "$STORE" -type f \( -iname '*.vhdx' -o -iname '*.avhdx' \) | sort)
for f in "${SOURCES[@]}"; do
	printf '%-64s %5d MiB\n' "${f#"$STORE"/}" $(($(stat -c %s "$f") >> 20))
done

# ---- mounts ----

echo "== mounts"
M=$WORK/mnt
start impexfs "$M/impexfs" "$IMPEXFS" -f "$STORE" "$M/impexfs"
MERGED=$(find "$M/impexfs/snapshots/$VM/$SNAP/Virtual Hard Disks" -maxdepth 1 -type f \
	-iname '*.vhdx' | sort | head -n1)
[[ -n $MERGED ]] || die "impexfs serves no snapshots/$VM/$SNAP/Virtual Hard Disks/*.vhdx"
NAME=$(basename -- "$MERGED")

echo "== checks"
qemu-img compare -q -f vhdx -F raw "$MERGED" "$FIXTURE_REF" ||
	die "impexfs: $NAME differs from the snapshot's content"
echo "merged VHDX: ${MERGED#"$M"/}, $(($(stat -c %s "$MERGED") >> 20)) MiB, the snapshot's content"
mkdir -p -- "$WORK/copy"
COPY=$WORK/copy/$NAME
cp -- "$MERGED" "$COPY"
cmp -- "$MERGED" "$COPY" || die "the copy of $NAME differs"

start minfuse-st "$M/minfuse-st" "$MINFUSE" -f -s "$COPY" "$M/minfuse-st"
start minfuse-mt "$M/minfuse-mt" "$MINFUSE" -f "$COPY" "$M/minfuse-mt"
cmp -- "$COPY" "$M/minfuse-st/$NAME" || die "minfuse -s: differs from the copy"
cmp -- "$COPY" "$M/minfuse-mt/$NAME" || die "minfuse: differs from the copy"
declare -A BDI
for name in impexfs minfuse-st minfuse-mt; do
	BDI[$name]=$(mountpoint -d -- "$M/$name")
done
RA_DEFAULT=$(cat "/sys/class/bdi/${BDI[minfuse-st]}/read_ahead_kb")
((RA_DEFAULT != RA_KB)) || die "read_ahead_kb is already $RA_KB when mounted: set RA_KB to another value"
echo "read_ahead_kb as mounted: $RA_DEFAULT (minfuse), $(cat "/sys/class/bdi/${BDI[impexfs]}/read_ahead_kb") (impexfs)"

# ---- timing ----

# One case a line: NAME|FILE|SOURCES|BDI|READ_AHEAD_KB.
CASES=()
for ra in "$RA_DEFAULT" "$RA_KB"; do
	CASES+=("impexfs merged vhdx, ra $ra|$MERGED|store|${BDI[impexfs]}|$ra")
	CASES+=("minfuse -s, ra $ra|$M/minfuse-st/$NAME|copy|${BDI[minfuse-st]}|$ra")
	CASES+=("minfuse mt, ra $ra|$M/minfuse-mt/$NAME|copy|${BDI[minfuse-mt]}|$ra")
done

bench_lock "${SOURCES[@]}" "$COPY"

prepare() { # SOURCES BDI RA
	sync
	echo 3 >/proc/sys/vm/drop_caches
	if [[ $1 == store ]]; then
		cat -- "${SOURCES[@]}" >/dev/null
	else
		cat -- "$COPY" >/dev/null
	fi
	echo "$3" >"/sys/class/bdi/$2/read_ahead_kb"
}

RESULTS=$WORK/results.tsv
bench_read_cases "$RESULTS"
printf 'impexfs peak RSS: %s KiB\n' \
	"$(awk '/^VmHWM/ { print $2 }' "/proc/${PIDS[0]}/status" 2>/dev/null || echo '?')"

# ---- summary ----

python3 - "$RESULTS" "$RA_DEFAULT" "$RA_KB" "$RUNS" <<'EOF'
import statistics
import sys

path, ra_def, ra_hi, runs = sys.argv[1:5]
times, size = {}, {}
for line in open(path):
    name, _, nbytes, ns = line.rstrip("\n").split("\t")
    times.setdefault(name, []).append(int(ns) / 1e9)
    size[name] = int(nbytes)


def mbs(name):  # MB/s of the median run
    return size[name] / statistics.median(times[name]) / 1e6


print(f"\n== summary: medians of {runs} runs, sequential dd bs=1M, caches dropped before each")
print(f"{'case':30} {'MiB':>6} {'median s':>9} {'min s':>7} {'max s':>7} {'MB/s':>7}")
for name, t in times.items():
    print(f"{name:30} {size[name] >> 20:6d} {statistics.median(t):9.3f} {min(t):7.3f} "
          f"{max(t):7.3f} {mbs(name):7.0f}")
print("\n== ratios (MB/s over MB/s)")
for ra in (ra_def, ra_hi):
    st, mt = f"minfuse -s, ra {ra}", f"minfuse mt, ra {ra}"
    ceiling = st if mbs(st) >= mbs(mt) else mt
    r = mbs(f"impexfs merged vhdx, ra {ra}") / mbs(ceiling)
    print(f"read_ahead_kb {ra}: merged vhdx / ceiling ({ceiling}, {mbs(ceiling):.0f} MB/s) "
          f"{r:5.2f}x  goal >= 0.9x: {'met' if r >= 0.9 else 'NOT met'}")
EOF
