#!/usr/bin/env bash
# mount-scale.sh - the export mount over a big store: store-scale.sh's store
# of VMS VMs (default 1000) with SNAPSHOTS snapshots each (default 10), built
# once with bench/make_store.py, mounted RUNS times (default 5) with impexfs,
# each time on a fresh mount:
#   ready     from starting `impexfs -f STORE MNT` until `mountpoint -q MNT`
#   ls        `ls MNT/snapshots/` (the first listing of the mount's biggest
#             folder of folders; "not served yet" without it)
#   find      `find MNT | wc -l`, the whole tree, right after the ls
#   find 2    the same again (the kernel has the entries cached by then)
#   peak RSS  VmHWM of the daemon from /proc/<pid>/status, before unmounting
# and the same find on the ceiling: bench/mintree.c, a minimal FUSE file
# system serving a tree of the same shape from memory (the listing of the
# last impexfs mount), mounted fresh RUNS times in the same run.
# Medians are reported, and the largest peak RSS. Goals (issue 16): ready
# under 1 s, find at least 0.9x the ceiling's speed, the daemon under 100 MB.
#
# Needs /dev/fuse, fusermount3, python3. COLD=1 (as root) drops the page
# cache before each mount, so that the store is read from the disk.
#
# Environment:
#   IMPEXFS    the impexfs binary (default build-release/fs/impexfs in the repo)
#   VMS, SNAPSHOTS, RUNS   sizes and runs
#   COLD=1     drop the page cache before each mount (root only)
#   BENCH_DIR  keeps the store in BENCH_DIR/store (the same place as
#              store-scale.sh's, so one store serves both); default: a new
#              folder under TMPDIR or /tmp, removed at the end
#
# Reproduce:
#   meson setup --buildtype=release build-release && ninja -C build-release &&
#   BENCH_DIR=/var/tmp/impex-scale bench/mount-scale.sh
set -euo pipefail

REPO=$(cd -- "$(dirname -- "$0")/.." && pwd)
IMPEXFS=${IMPEXFS:-$REPO/build-release/fs/impexfs}
VMS=${VMS:-1000}
SNAPSHOTS=${SNAPSHOTS:-10}
RUNS=${RUNS:-5}
COLD=${COLD:-0}

die() {
	echo "mount-scale.sh: $*" >&2
	exit 1
}

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
for tool in fusermount3 mountpoint python3 find cc pkg-config; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
[[ -x $IMPEXFS ]] || die "'$IMPEXFS' is not an executable; build impexfs or set IMPEXFS"
((!COLD)) || [[ $(id -u) -eq 0 ]] || die "COLD=1 needs root (drop_caches)"

if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p -- "$BENCH_DIR"
	WORK=$(realpath -- "$BENCH_DIR")
	KEEP=1
else
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/impex-mount-scale.XXXXXX")
	KEEP=0
fi
STORE=$WORK/store
MNT=$WORK/mnt
PID='' # the running daemon, if any

# Unmount and stop what this script started, also on failure.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if mountpoint -q -- "$MNT" 2>/dev/null; then
		fusermount3 -u -- "$MNT" 2>/dev/null || fusermount3 -uz -- "$MNT" 2>/dev/null || true
	fi
	if [[ -n $PID ]]; then
		if kill -0 "$PID" 2>/dev/null; then
			sleep 0.2
			if kill -0 "$PID" 2>/dev/null; then
				kill "$PID" 2>/dev/null || true
			fi
		fi
		wait "$PID" 2>/dev/null || true
	fi
	if mountpoint -q -- "$MNT" 2>/dev/null; then
		echo "mount-scale.sh: $MNT is still mounted; $WORK left in place" >&2
	elif ((!KEEP)); then
		rm -rf -- "$WORK"
	else
		rmdir -- "$MNT" 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copy of the binary: a rebuild during the run changes nothing.
IMPEXFS_GIVEN=$(realpath -- "$IMPEXFS")
cp -- "$IMPEXFS" "$WORK/impexfs.bin"
IMPEXFS=$WORK/impexfs.bin

echo "== machine"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpus:    $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "fs:      $(df -T "$WORK" | awk 'NR == 2 { print $2 }')"
echo "impexfs: $("$IMPEXFS" --version 2>&1 | head -n1), $IMPEXFS_GIVEN"
echo "repo:    $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ ! -d "$STORE/Virtual Machines" ]]; then
	echo "== building a store of $VMS VMs x $SNAPSHOTS snapshots"
	start=$(date +%s)
	python3 "$REPO/bench/make_store.py" "$STORE" "$VMS" "$SNAPSHOTS"
	echo "built in $(($(date +%s) - start)) s: $(find "$STORE" -type f | wc -l) files"
fi
echo "store:   $(find "$STORE/Virtual Machines" -maxdepth 1 -name '*.xml' | wc -l) VMs," \
	"$(find "$STORE/Snapshots" -maxdepth 1 -name '*.xml' | wc -l) snapshots"
mkdir -p -- "$MNT"

now() { date +%s%N; }
ms() { # NS_FROM NS_TO
	echo $((($2 - $1) / 1000000))
}

RESULTS=$WORK/mount-scale.tsv
: >"$RESULTS"
echo "== $RUNS fresh mounts"
for ((run = 1; run <= RUNS; run++)); do
	if ((COLD)); then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	fi
	# ready: the daemon builds its tree, then mounts (-f: stays in the foreground)
	t0=$(now)
	"$IMPEXFS" -f "$STORE" "$MNT" 2>"$WORK/impexfs.log" &
	PID=$!
	until mountpoint -q -- "$MNT"; do
		kill -0 "$PID" 2>/dev/null || die "impexfs exited before mounting: $(cat "$WORK/impexfs.log")"
		(($(now) - t0 < 300000000000)) || die "impexfs: no mount after 300 s"
		sleep 0.01
	done
	t1=$(now)
	# ls: the first listing of snapshots/
	if [[ -d $MNT/snapshots ]]; then
		# shellcheck disable=SC2012  # ls is what is timed
		ls_count=$(ls -- "$MNT/snapshots/" | wc -l)
		t2=$(now)
		ls_ms=$(ms "$t1" "$t2")
	else
		ls_count=-1 ls_ms=-1
		t2=$(now)
	fi
	# find: the whole tree, then again
	find_count=$(find "$MNT" | wc -l)
	t3=$(now)
	find "$MNT" >/dev/null
	t4=$(now)
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")
	fusermount3 -u -- "$MNT"
	rc=0
	wait "$PID" || rc=$?
	PID=''
	((rc == 0)) || die "impexfs exited with status $rc: $(cat "$WORK/impexfs.log")"
	printf '%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n' "$run" "$(ms "$t0" "$t1")" "$ls_ms" "$ls_count" \
		"$(ms "$t2" "$t3")" "$find_count" "$(ms "$t3" "$t4")" "$hwm" >>"$RESULTS"
	printf 'run %d: ready %6d ms, ls snapshots/ %6s ms (%s entries), find %6d ms (%d entries), find 2 %6d ms, peak RSS %d KiB\n' \
		"$run" "$(ms "$t0" "$t1")" "$ls_ms" "$ls_count" "$(ms "$t2" "$t3")" "$find_count" \
		"$(ms "$t3" "$t4")" "$hwm"
done
if [[ -s $WORK/impexfs.log ]]; then
	echo "impexfs said (last run):"
	sed 's/^/  /' "$WORK/impexfs.log" | head -n 20
fi

# Wait until $PID (named $1) has mounted $MNT.
mounted() {
	until mountpoint -q -- "$MNT"; do
		kill -0 "$PID" 2>/dev/null || die "$1 exited before mounting"
		sleep 0.01
	done
}

# The ceiling: the same tree, from memory.
# shellcheck disable=SC2046  # pkg-config gives several words
cc -O2 -Wall -o "$WORK/mintree" "$REPO/bench/mintree.c" $(pkg-config --cflags --libs fuse3)
"$IMPEXFS" -f "$STORE" "$MNT" 2>>"$WORK/impexfs.log" &
PID=$!
mounted impexfs
find "$MNT" -mindepth 1 -printf '%y\t%s\t%l\t%P\n' >"$WORK/listing.tsv"
fusermount3 -u -- "$MNT"
wait "$PID" || die "impexfs exited with status $?"
PID=''
CEILING=$WORK/ceiling.tsv
: >"$CEILING"
for ((run = 1; run <= RUNS; run++)); do
	"$WORK/mintree" -f "$WORK/listing.tsv" "$MNT" &
	PID=$!
	mounted mintree
	t0=$(now)
	find_count=$(find "$MNT" | wc -l)
	t1=$(now)
	fusermount3 -u -- "$MNT"
	wait "$PID" || die "mintree exited with status $?"
	PID=''
	printf '%d\t%d\t%d\n' "$run" "$(ms "$t0" "$t1")" "$find_count" >>"$CEILING"
	printf 'ceiling run %d: find %6d ms (%d entries)\n' "$run" "$(ms "$t0" "$t1")" "$find_count"
done

# What the tree holds, top level by top level (one more mount, not timed).
echo "== the tree"
"$IMPEXFS" -f "$STORE" "$MNT" 2>>"$WORK/impexfs.log" &
PID=$!
mounted impexfs
for top in "$MNT"/*/; do
	printf '%-12s %7d folders, %7d files, %7d links\n' "$(basename -- "$top")/" \
		"$(find "$top" -mindepth 1 -type d | wc -l)" "$(find "$top" -type f | wc -l)" \
		"$(find "$top" -type l | wc -l)"
done
fusermount3 -u -- "$MNT"
wait "$PID" || die "impexfs exited with status $?"
PID=''

python3 - "$RESULTS" "$CEILING" <<'EOF'
import statistics
import sys

rows = [list(map(int, line.split("\t"))) for line in open(sys.argv[1])]
ceiling = [list(map(int, line.split("\t"))) for line in open(sys.argv[2])]
col = lambda i: [r[i] for r in rows]
med = lambda i: statistics.median(col(i))
print(f"\n== summary: medians of {len(rows)} fresh mounts")
print(f"{'measure':34} {'median':>10} {'min':>8} {'max':>8}")
for name, i in (("mount ready (ms)", 1), ("ls snapshots/ (ms)", 2), ("find | wc -l (ms)", 4),
                ("find again (ms)", 6)):
    if name.startswith("ls") and med(3) < 0:
        print(f"{name:34} {'not served yet':>10}")
        continue
    print(f"{name:34} {med(i):10.0f} {min(col(i)):8d} {max(col(i)):8d}")
print(f"{'entries: snapshots/, whole tree':34} {col(3)[0]:>10} {col(5)[0]:>8}")
hwm = max(col(7))
mb = hwm * 1024 / 1e6
print(f"{'daemon peak RSS (VmHWM), largest':34} {hwm:10d} KiB ({mb:.1f} MB)")
ceil_ms = statistics.median(r[1] for r in ceiling)
print(f"{'ceiling (mintree) find (ms)':34} {ceil_ms:10.0f} {min(r[1] for r in ceiling):8d} "
      f"{max(r[1] for r in ceiling):8d}")
if ceiling[0][2] != col(5)[0]:
    print(f"warning: the ceiling served {ceiling[0][2]} entries, impexfs {col(5)[0]}")
ready_s, find_s = med(1) / 1000, med(4) / 1000
speed = ceil_ms / med(4)
print(f"find speed / ceiling's: {speed:.2f}x")
ok = ready_s < 1 and speed >= 0.9 and mb < 100
print(f"\ngoals: ready under 1 s ({ready_s:.2f} s), find at least 0.9x the ceiling ({speed:.2f}x), "
      f"peak RSS under 100 MB ({mb:.1f} MB): " + ("met" if ok else "NOT met"))
EOF
