#!/usr/bin/env bash
# exportfs.sh - read throughput of the export mount (impexfs) against the
# FUSE ceiling (bench/minfuse.c) and vhdimount (libvhdi), side by side in one
# run, with ratios and goals at the end.
#
# Fixture (in a temporary folder, removed at the end): a store made with the
# impex CLI holding one VM, "benchvm", with one 2 GiB dynamic disk (2 MiB
# blocks) written with flatten.sh's layout (same seed), through
# `impex vm write`, one snapshot after each level:
#   level 0, the base disk:  1 GiB in 1 MiB pieces at scattered 1 MiB offsets
#   level 1, a differencing: 128 MiB in 256 KiB pieces at 4 KiB offsets
#   level 2, a differencing: 128 MiB in 128 KiB pieces at sector offsets, then
#                            zeros over 4 whole blocks
# Snapshot "three-levels" (taken after level 2) is the 3-level chain
# base <- level 1 <- level 2; the VM's current disk is a 4th, empty level.
#
# Read, each with `dd bs=1M of=/dev/null`, RUNS times, interleaved (run 1 of
# every case, then run 2, ...), after `echo 3 > /proc/sys/vm/drop_caches` and
# a re-read of the store's files that case reads (so the sources come from
# the page cache and what is measured is the FUSE path, not the disk; COLD=1
# skips the re-read). The store's files are also held in the page cache for
# the whole run (lib.sh's bench_lock; LOCK=0 does not): this machine pages out
# memory it finds cold, page cache included, between the re-read and the read:
#   a. passthrough: the base disk as MOUNT/vms/benchvm/Virtual Hard Disks/<base>
#      through impexfs; the same file through minfuse -s and minfuse (multi-
#      threaded), the faster being the ceiling; the raw content of the same
#      VHD through vhdimount (a raw image: its MB/s are of the data it makes).
#   b. merged: MOUNT/snapshots/benchvm/three-levels/Virtual Hard Disks/*.vhd
#      (the chain merged into one dynamic VHD) and
#      MOUNT/raw/benchvm/three-levels/*.img (its raw content), when impexfs
#      serves them ("not served yet" otherwise); vhdimount pointed at the
#      snapshot's top differencing disk (it follows the parents).
# impexfs and minfuse are read with the mount's read_ahead_kb as the kernel
# sets it (128, as minfuse's mount has it) and raised to RA_KB (1024), set
# through /sys/class/bdi/<dev>/ before each read, the same for both (whatever
# impexfs sets for itself when mounting); vhdimount too, like for like.
#
# Before timing, every file read is checked: passthrough files against the
# store's base disk (cmp), merged files against `impex vhd cat` of the
# snapshot's top disk in the store (a difference is fatal); vhdimount's
# output too (a difference is reported: libvhdi gets this chain wrong).
#
# Goals: passthrough >= 0.9x the ceiling; merged >= 0.7x the ceiling and
# >= 10x vhdimount. MB/s are of the bytes each file holds: for the merged
# files (and vhdimount's raw images) that includes the zeros of the blocks
# no level allocates, which cost no pread, so merged can beat the ceiling.
#
# Needs root (drop_caches, read_ahead_kb), /dev/fuse, fusermount3, cc,
# pkg-config and libfuse3-dev, python3; vhdimount (libvhdi-utils) for its
# rows (they are left out without it). About 5 GB free under TMPDIR.
#
# Environment:
#   IMPEX      the impex binary (default build-release/tools/impex in the repo)
#   IMPEXFS    the impexfs binary (default build-release/fs/impexfs in the repo)
#   RUNS       reads per case (default 5); medians are reported
#   RA_KB      the raised read_ahead_kb (default 1024)
#   COLD=1     do not re-read the sources after dropping caches (nor lock them)
#   LOCK=0     do not hold the sources in memory (bench_lock)
#   BASELINE   a build folder of another commit: its impexfs is mounted on the
#              same store beside this one, its passthrough and merged VHD are
#              read in the same rounds, and "this / baseline" ratios are added
#              (how a change moved the figures, whatever the machine's mood)
#   VHDIMOUNT=0  leave vhdimount out (its reads take most of the run's time)
#   BENCH_DIR  work folder, kept afterwards, its fixture reused by later runs
#              (default: a new folder under TMPDIR or /tmp, removed at exit)
#
# Reproduce (as root):
#   meson setup --buildtype=release build-release && ninja -C build-release &&
#   bench/exportfs.sh
# Compare with an older commit (built in a worktree beside this one):
#   BASELINE=../impex-old/build-release VHDIMOUNT=0 bench/exportfs.sh
set -euo pipefail

REPO=$(cd -- "$(dirname -- "$0")/.." && pwd)
IMPEX=${IMPEX:-$REPO/build-release/tools/impex}
IMPEXFS=${IMPEXFS:-$REPO/build-release/fs/impexfs}
RUNS=${RUNS:-5}
RA_KB=${RA_KB:-1024}
COLD=${COLD:-0}
BASELINE=${BASELINE:-}
VHDIMOUNT=${VHDIMOUNT:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "exportfs.sh: RUNS must be a positive number" >&2; exit 2; }
[[ $RA_KB =~ ^[1-9][0-9]*$ ]] || { echo "exportfs.sh: RA_KB must be a positive number" >&2; exit 2; }
SEED=2026
VM=benchvm
SNAP=three-levels
BENCH=exportfs.sh
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

# ---- tools ----

[[ $(id -u) -eq 0 ]] || die "needs root (drop_caches and read_ahead_kb)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
for tool in fusermount3 mountpoint cc pkg-config python3 dd cmp; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
pkg-config --exists fuse3 || die "libfuse3-dev is not installed (pkg-config fuse3)"
[[ -x $IMPEX ]] || die "'$IMPEX' is not an executable; build impex or set IMPEX"
[[ -x $IMPEXFS ]] || die "'$IMPEXFS' is not an executable; build impexfs or set IMPEXFS"
if [[ -n $BASELINE ]]; then
	[[ -x $BASELINE/fs/impexfs ]] || die "'$BASELINE/fs/impexfs' is not an executable"
fi
HAVE_VHDIMOUNT=0
if [[ $VHDIMOUNT == 0 ]]; then
	echo "exportfs.sh: VHDIMOUNT=0: vhdimount's rows are left out" >&2
elif command -v vhdimount >/dev/null; then
	HAVE_VHDIMOUNT=1
else
	echo "exportfs.sh: vhdimount not installed (apt-get install libvhdi-utils): its rows are left out" >&2
fi

bench_work
# shellcheck disable=SC2046  # pkg-config's flags are words
cc -O2 -Wall -o "$WORK/bin/minfuse" "$REPO/bench/minfuse.c" $(pkg-config --cflags --libs fuse3)
MINFUSE=$WORK/bin/minfuse

if [[ -n $BASELINE ]]; then
	cp -- "$BASELINE/fs/impexfs" "$WORK/bin/baseline-impexfs"
fi

bench_machine
echo "impexfs: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')"
[[ -z $BASELINE ]] ||
	echo "baseline impexfs: $(git -C "$BASELINE" describe --always --dirty 2>/dev/null || echo '?')"
((HAVE_VHDIMOUNT)) && echo "vhdimount: $(vhdimount -V 2>&1 | head -n1)"

# ---- fixture ----

bench_fixture "$SNAP"

# The snapshot's chain, top first, from the store's own description.
"$IMPEX" vm show --json --store "$STORE" "$VM" >"$WORK/vm.json"
mapfile -t CHAIN < <(python3 - "$WORK/vm.json" "$SNAP" <<'EOF'
import json
import sys

vm = json.load(open(sys.argv[1]))
snap = [s for s in vm["snapshots"] if s["name"] == sys.argv[2]]
assert len(snap) == 1 and not snap[0]["problem"], snap
disk = snap[0]["disks"][0]
assert not disk["problem"] and not disk["chain_problem"], disk
print("\n".join(disk["chain"]))
EOF
)
((${#CHAIN[@]} == 3)) || die "snapshot $SNAP: a chain of ${#CHAIN[@]} levels, not 3"
TOP=${CHAIN[0]}
BASE=${CHAIN[2]}
"$IMPEX" vhd check "$TOP" >/dev/null || die "impex vhd check '$TOP' failed"
for f in "${CHAIN[@]}"; do
	printf '%-60s %5d MiB, %4s of %s blocks allocated\n' "${f#"$STORE"/}" \
		$(($(stat -c %s "$f") >> 20)) \
		"$("$IMPEX" vhd info --json "$f" | python3 -c 'import json, sys; print(json.load(sys.stdin)["allocated_blocks"])')" \
		"$("$IMPEX" vhd info --json "$f" | python3 -c 'import json, sys; print(json.load(sys.stdin)["blocks"])')"
done
# The merged content, for the checks (a sparse file).
[[ -f $WORK/ref.raw ]] || "$IMPEX" vhd cat "$TOP" >"$WORK/ref.raw"
echo "merged content: $(($(stat -c %s "$WORK/ref.raw") >> 20)) MiB, $(($(du -B1 "$WORK/ref.raw" | cut -f1) >> 20)) MiB of data"

# ---- mounts ----

# The "major:minor" of a mount, as /sys/class/bdi/ names it.
bdi_of() {
	mountpoint -d -- "$1"
}

echo "== mounts"
declare -A PID_OF MNT_OF BDI_OF
M=$WORK/mnt
# mount NAME MOUNTPOINT COMMAND...: start, and remember pid and mount point.
mount_as() {
	local name=$1 mnt=$2
	shift 2
	start "$name" "$mnt" "$@"
	PID_OF[$name]=$LAST_PID
	MNT_OF[$name]=$mnt
}
mount_as impexfs "$M/impexfs" "$IMPEXFS" -f "$STORE" "$M/impexfs"
[[ -z $BASELINE ]] ||
	mount_as baseline "$M/baseline" "$WORK/bin/baseline-impexfs" -f "$STORE" "$M/baseline"
mount_as minfuse-st "$M/minfuse-st" "$MINFUSE" -f -s "$BASE" "$M/minfuse-st"
mount_as minfuse-mt "$M/minfuse-mt" "$MINFUSE" -f "$BASE" "$M/minfuse-mt"
if ((HAVE_VHDIMOUNT)); then
	# -v keeps vhdimount in the foreground (it prints nothing per read).
	mount_as vhdimount-base "$M/vhdi-base" vhdimount -v "$BASE" "$M/vhdi-base"
	mount_as vhdimount-chain "$M/vhdi-chain" vhdimount -v "$TOP" "$M/vhdi-chain"
fi
for name in impexfs minfuse-st minfuse-mt; do
	BDI_OF[$name]=$(bdi_of "$M/$name")
done
[[ -z $BASELINE ]] || BDI_OF[baseline]=$(bdi_of "$M/baseline")
if ((HAVE_VHDIMOUNT)); then
	BDI_OF[vhdimount-base]=$(bdi_of "$M/vhdi-base")
	BDI_OF[vhdimount-chain]=$(bdi_of "$M/vhdi-chain")
fi
# The kernel's default, as minfuse leaves it (impexfs may set its own).
RA_DEFAULT=$(cat "/sys/class/bdi/${BDI_OF[minfuse-st]}/read_ahead_kb")
((RA_DEFAULT != RA_KB)) || die "read_ahead_kb is already $RA_KB when mounted: set RA_KB to another value"
echo "read_ahead_kb as mounted: $RA_DEFAULT (minfuse), $(cat "/sys/class/bdi/${BDI_OF[impexfs]}/read_ahead_kb") (impexfs)"

BASE_NAME=$(basename -- "$BASE")
PASS=$M/impexfs/vms/$VM/Virtual\ Hard\ Disks/$BASE_NAME
[[ -f $PASS ]] || die "impexfs does not serve $PASS"
# The merged views: whatever the snapshot's folders hold (one disk).
MERGED_VHD=$(find "$M/impexfs/snapshots/$VM/$SNAP/Virtual Hard Disks" -maxdepth 1 -type f \
	\( -iname '*.vhd' -o -iname '*.avhd' \) 2>/dev/null | sort | head -n1 || true)
MERGED_RAW=$(find "$M/impexfs/raw/$VM/$SNAP" -maxdepth 1 -type f -name '*.img' 2>/dev/null |
	sort | head -n1 || true)
# The baseline's views: the same paths under its mount.
BASE_PASS='' BASE_MERGED=''
if [[ -n $BASELINE ]]; then
	BASE_PASS=$M/baseline/${PASS#"$M"/impexfs/}
	[[ -z $MERGED_VHD ]] || BASE_MERGED=$M/baseline/${MERGED_VHD#"$M"/impexfs/}
fi
VHDI_BASE='' VHDI_CHAIN=''
if ((HAVE_VHDIMOUNT)); then
	VHDI_BASE=$M/vhdi-base/vhdi1
	# vhdimount shows one file per level, vhdi1 the base: the last is the top.
	VHDI_CHAIN=$M/vhdi-chain/vhdi$(find "$M/vhdi-chain" -mindepth 1 -maxdepth 1 -name 'vhdi*' | wc -l)
	[[ $VHDI_CHAIN == */vhdi3 ]] || die "vhdimount shows $(ls "$M/vhdi-chain") for a 3-level chain"
fi

# ---- checks ----

echo "== checks"
cmp -- "$BASE" "$PASS" || die "impexfs: $PASS differs from $BASE"
cmp -- "$BASE" "$M/minfuse-st/$BASE_NAME" || die "minfuse -s: differs from $BASE"
cmp -- "$BASE" "$M/minfuse-mt/$BASE_NAME" || die "minfuse: differs from $BASE"
echo "passthrough: impexfs and minfuse serve $BASE_NAME byte for byte"
if [[ -n $BASELINE ]]; then
	cmp -- "$BASE" "$BASE_PASS" || die "baseline impexfs: $BASE_PASS differs from $BASE"
	[[ -z $BASE_MERGED ]] || cmp -- "$MERGED_VHD" "$BASE_MERGED" ||
		die "baseline impexfs: $BASE_MERGED differs from this build's"
	echo "baseline: the same passthrough${BASE_MERGED:+ and merged VHD} bytes"
fi
if [[ -n $MERGED_VHD ]]; then
	"$IMPEX" vhd check "$MERGED_VHD" >/dev/null || die "impex vhd check '$MERGED_VHD' failed"
	"$IMPEX" vhd cat "$MERGED_VHD" | cmp -- "$WORK/ref.raw" - ||
		die "impexfs: the content of $MERGED_VHD differs from the chain's"
	echo "merged VHD: ${MERGED_VHD#"$M"/}, the chain's content"
else
	echo "merged VHD: not served yet (no snapshots/$VM/$SNAP/Virtual Hard Disks/*.vhd)"
fi
if [[ -n $MERGED_RAW ]]; then
	cmp -- "$WORK/ref.raw" "$MERGED_RAW" || die "impexfs: $MERGED_RAW differs from the chain's content"
	echo "merged raw: ${MERGED_RAW#"$M"/}, the chain's content"
else
	echo "merged raw: not served yet (no raw/$VM/$SNAP/*.img)"
fi
# vhdimount is the peer, not the subject: a difference is reported, not fatal.
# (libvhdi 20210425 reads a differencing level's sectors 8 at a time, one
# bitmap byte, so the sectors between the end of a write that is not 4 KiB
# aligned and the next 4 KiB come out as zeros instead of the parent's.)
vhdi_check() { # WHAT REFERENCE FILE
	local n
	n=$(cmp -l -- "$2" "$3" 2>/dev/null | wc -l || true)
	if ((n == 0)); then
		echo "vhdimount: ${3#"$M"/} is $1"
	else
		echo "vhdimount: WARNING: ${3#"$M"/} differs from $1 in $n bytes"
	fi
}
if ((HAVE_VHDIMOUNT)); then
	vhdi_check "the base's content" <("$IMPEX" vhd cat "$BASE") "$VHDI_BASE"
	vhdi_check "the chain's content" "$WORK/ref.raw" "$VHDI_CHAIN"
fi

# ---- timing ----

((COLD)) || bench_lock "${CHAIN[@]}"

# One case a line: NAME|FILE|SOURCES|BDI|READ_AHEAD_KB, SOURCES "base" or
# "chain" (the store's files it reads), BDI empty: read-ahead left as it is.
CASES=()
add_case() {
	CASES+=("$1|$2|$3|$4|$5")
}
for ra in "$RA_DEFAULT" "$RA_KB"; do
	add_case "impexfs passthrough, ra $ra" "$PASS" base "${BDI_OF[impexfs]}" "$ra"
	add_case "minfuse -s, ra $ra" "$M/minfuse-st/$BASE_NAME" base "${BDI_OF[minfuse-st]}" "$ra"
	add_case "minfuse mt, ra $ra" "$M/minfuse-mt/$BASE_NAME" base "${BDI_OF[minfuse-mt]}" "$ra"
	[[ -z $MERGED_VHD ]] ||
		add_case "impexfs merged vhd, ra $ra" "$MERGED_VHD" chain "${BDI_OF[impexfs]}" "$ra"
	if [[ -n $BASELINE ]]; then
		add_case "baseline passthrough, ra $ra" "$BASE_PASS" base "${BDI_OF[baseline]}" "$ra"
		[[ -z $BASE_MERGED ]] ||
			add_case "baseline merged vhd, ra $ra" "$BASE_MERGED" chain "${BDI_OF[baseline]}" "$ra"
	fi
	[[ -z $MERGED_RAW ]] ||
		add_case "impexfs merged raw, ra $ra" "$MERGED_RAW" chain "${BDI_OF[impexfs]}" "$ra"
	# vhdimount at the same readahead: the comparison is like for like.
	if ((HAVE_VHDIMOUNT)); then
		add_case "vhdimount base, ra $ra" "$VHDI_BASE" base "${BDI_OF[vhdimount-base]}" "$ra"
		add_case "vhdimount chain, ra $ra" "$VHDI_CHAIN" chain "${BDI_OF[vhdimount-chain]}" "$ra"
	fi
done

# Drop every cache, re-read the store files the case reads (unless COLD=1),
# set the mount's read-ahead.
prepare() { # SOURCES BDI RA
	sync
	echo 3 >/proc/sys/vm/drop_caches
	if ((!COLD)); then
		if [[ $1 == base ]]; then
			cat -- "$BASE" >/dev/null
		else
			cat -- "${CHAIN[@]}" >/dev/null
		fi
	fi
	[[ -z $2 ]] || echo "$3" >"/sys/class/bdi/$2/read_ahead_kb"
}

RESULTS=$WORK/results.tsv
bench_read_cases "$RESULTS"

# ---- daemons: peak memory, unmount, exit status ----

echo "== daemons"
for name in "${!PID_OF[@]}"; do
	pid=${PID_OF[$name]}
	printf '%-16s peak RSS %8s KiB\n' "$name" \
		"$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo '?')"
done
for name in "${!PID_OF[@]}"; do
	fusermount3 -u -- "${MNT_OF[$name]}" || echo "$name: fusermount3 -u failed"
	rc=0
	wait "${PID_OF[$name]}" || rc=$?
	((rc == 0)) || echo "$name: exit status $rc"
	# What the daemon said, but vhdimount's banner.
	said=$(grep -Ev '^(vhdimount [0-9]+)?$' "$WORK/log/$name.log" | head -n 20 || true)
	# shellcheck disable=SC2001
	[[ -z $said ]] || printf '%s said:\n%s\n' "$name" "$(sed 's/^/  /' <<<"$said")"
done

# ---- summary ----

python3 - "$RESULTS" "$RA_DEFAULT" "$RA_KB" "$RUNS" "$([[ -n $MERGED_VHD ]] && echo 1 || echo 0)" \
	"$([[ -n $MERGED_RAW ]] && echo 1 || echo 0)" "$HAVE_VHDIMOUNT" \
	"$([[ -n $BASELINE ]] && echo 1 || echo 0)" <<'EOF'
import statistics
import sys

path, ra_def, ra_hi, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
have_vhd, have_raw, have_vhdi, have_base = (a == "1" for a in sys.argv[5:9])
times, size = {}, {}
for line in open(path):
    name, _, nbytes, ns = line.rstrip("\n").split("\t")
    times.setdefault(name, []).append(int(ns) / 1e9)
    size[name] = int(nbytes)

def mbs(name):  # MB/s of the median run
    return size[name] / statistics.median(times[name]) / 1e6 if name in times else None

print(f"\n== summary: medians of {runs} runs, sequential dd bs=1M, caches dropped before each")
print(f"{'case':34} {'MiB':>6} {'median s':>9} {'min s':>7} {'max s':>7} {'MB/s':>7}")
for name, t in times.items():
    print(f"{name:34} {size[name] >> 20:6d} {statistics.median(t):9.3f} {min(t):7.3f} "
          f"{max(t):7.3f} {mbs(name):7.0f}")

def line(label, value, goal=None):
    if value is None:
        print(f"{label:58} not served yet")
        return
    verdict = "" if goal is None else ("  goal >= %gx: %s" % (goal, "met" if value >= goal else "NOT met"))
    print(f"{label:58} {value:6.2f}x{verdict}")

def ratio(a, b):
    return mbs(a) / mbs(b) if mbs(a) is not None and mbs(b) is not None else None

print("\n== ratios (MB/s over MB/s)")
for ra in (ra_def, ra_hi):
    st, mt = mbs(f"minfuse -s, ra {ra}"), mbs(f"minfuse mt, ra {ra}")
    ceiling = f"minfuse -s, ra {ra}" if st >= mt else f"minfuse mt, ra {ra}"
    print(f"-- read_ahead_kb {ra}: ceiling = {ceiling} ({mbs(ceiling):.0f} MB/s)")
    line("passthrough / ceiling", ratio(f"impexfs passthrough, ra {ra}", ceiling), 0.9)
    line("merged vhd / ceiling", ratio(f"impexfs merged vhd, ra {ra}", ceiling), 0.7)
    line("merged raw / ceiling", ratio(f"impexfs merged raw, ra {ra}", ceiling), 0.7)
    if have_base:
        line("baseline passthrough / ceiling", ratio(f"baseline passthrough, ra {ra}", ceiling))
        line("baseline merged vhd / ceiling", ratio(f"baseline merged vhd, ra {ra}", ceiling))
        line("passthrough: this / baseline", ratio(f"impexfs passthrough, ra {ra}", f"baseline passthrough, ra {ra}"))
        line("merged vhd: this / baseline", ratio(f"impexfs merged vhd, ra {ra}", f"baseline merged vhd, ra {ra}"))
    if have_vhdi:
        line("passthrough / vhdimount base (raw of the same VHD)",
             ratio(f"impexfs passthrough, ra {ra}", f"vhdimount base, ra {ra}"))
        line("merged vhd / vhdimount chain", ratio(f"impexfs merged vhd, ra {ra}", f"vhdimount chain, ra {ra}"), 10)
        line("merged raw / vhdimount chain", ratio(f"impexfs merged raw, ra {ra}", f"vhdimount chain, ra {ra}"), 10)
print(f"-- read_ahead_kb {ra_hi} over {ra_def}")
for what in ("impexfs passthrough", "minfuse -s", "minfuse mt", "impexfs merged vhd", "impexfs merged raw"):
    r = ratio(f"{what}, ra {ra_hi}", f"{what}, ra {ra_def}")
    if r is not None or what.startswith("impexfs merged"):
        line(what, r)
EOF
